//! Load: 10,000 connections per backend, 200 at a time, mixed — good requests, resets
//! mid-handshake, clients that reject the certificate, garbage bytes, half-open clients that
//! never speak. Every connection gets exactly one record and the server keeps answering.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use backends::{BackendName, ConnectionPolicy, RunningServer, ServerSpec, TlsPin};
use certs::{CertBundle, CertKind};
use model::{Cause, Outcome, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const TOTAL: usize = 10_000;
const AT_ONCE: usize = 200;

#[derive(Clone, Copy, Debug)]
enum Client {
    Good,
    Reset,
    Rejecting,
    Garbage,
    Silent,
}

fn config(anchor: Option<&str>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in anchor
        .into_iter()
        .flat_map(|a| CertificateDer::pem_slice_iter(a.as_bytes()))
    {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

fn drive(
    port: u16,
    kind: Client,
    trusting: &Arc<rustls::ClientConfig>,
    rejecting: &Arc<rustls::ClientConfig>,
) {
    let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let name = ServerName::try_from("localhost").unwrap();
    match kind {
        Client::Good => {
            let conn = rustls::ClientConnection::new(trusting.clone(), name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let _ =
                tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            let mut sink = Vec::new();
            let _ = tls.read_to_end(&mut sink);
        }
        Client::Rejecting => {
            let conn = rustls::ClientConnection::new(rejecting.clone(), name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let _ = tls.write_all(b"GET / HTTP/1.1\r\n\r\n");
        }
        Client::Reset => {
            let mut conn = rustls::ClientConnection::new(trusting.clone(), name).unwrap();
            let _ = conn.write_tls(&mut tcp);
            let mut buf = [0u8; 256];
            let _ = tcp.read(&mut buf);
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: valid fd and option size; makes close() send RST.
            unsafe {
                libc::setsockopt(
                    tcp.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    size_of::<libc::linger>() as u32,
                )
            };
        }
        Client::Garbage => {
            let _ = tcp.write_all(b"\x16\x03\x01\x00\x05hello this is not TLS at all\r\n\r\n");
            let mut buf = [0u8; 64];
            let _ = tcp.read(&mut buf);
        }
        Client::Silent => {
            // Half-open: connects and says nothing until the server's handshake timeout.
            let mut buf = [0u8; 64];
            let _ = tcp.read(&mut buf);
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn load(backend: BackendName) {
    let bundle = CertBundle::generate(CertKind::SelfSigned).unwrap();
    let mut spec = ServerSpec::new(
        bundle.chain_pem.clone(),
        bundle.key_pem.clone(),
        TlsPin::Only(TlsVersion::Tls13),
        ConnectionPolicy::Close,
    );
    spec.handshake_timeout = Duration::from_secs(1);
    spec.request_timeout = Duration::from_secs(1);
    let server: RunningServer = backend.backend().start(spec).unwrap();
    let port = server.port();
    let trusting = config(Some(&bundle.trust_anchor_pem));
    let rejecting = config(None);
    let kinds = [
        Client::Good,
        Client::Good,
        Client::Reset,
        Client::Rejecting,
        Client::Garbage,
        Client::Silent,
    ];
    let rss_start = rss_kib();
    let mut rss_peak = rss_start;
    let mut next = 0usize;
    // Silent clients wait out the 1 s handshake timeout beside the batches, not in them.
    let mut silent = Vec::new();
    while next < TOTAL {
        let mut batch = Vec::new();
        for i in next..(next + AT_ONCE).min(TOTAL) {
            let (t, r) = (trusting.clone(), rejecting.clone());
            let kind = if i % 50 == 0 {
                Client::Silent
            } else {
                kinds[i % (kinds.len() - 1)]
            };
            let handle = std::thread::spawn(move || drive(port, kind, &t, &r));
            if matches!(kind, Client::Silent) {
                silent.push(handle)
            } else {
                batch.push(handle)
            }
        }
        next = (next + AT_ONCE).min(TOTAL);
        for h in batch {
            h.join().unwrap();
        }
        rss_peak = rss_peak.max(rss_kib());
    }
    for h in silent {
        h.join().unwrap();
    }
    // The server still answers after the storm.
    let conn =
        rustls::ClientConnection::new(trusting.clone(), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(("127.0.0.1", port)).unwrap());
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    let _ = tls.read_to_string(&mut body);
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{backend}: {body}");

    std::thread::sleep(Duration::from_millis(1200));
    let records = server.stop().expect("every connection recorded");
    assert_eq!(
        records.len(),
        TOTAL + 1,
        "{backend}: one record per connection"
    );
    let ids: std::collections::BTreeSet<u64> = records.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), TOTAL + 1, "{backend}: ids unique");
    let count = |f: &dyn Fn(&Outcome) -> bool| records.iter().filter(|r| f(&r.outcome)).count();
    // i % 50 == 0 is silent (200); otherwise i % 5 picks good, good, reset, rejecting, garbage.
    let silent_n = TOTAL / 50;
    let established = count(&|o| matches!(o, Outcome::Established { requests: 1 }));
    let alerts = count(&|o| {
        matches!(
            o,
            Outcome::Rejected {
                cause: Cause::Alert { code: 48, .. }
            }
        )
    });
    let resets = count(&|o| {
        matches!(
            o,
            Outcome::Rejected {
                cause: Cause::Reset
            }
        )
    });
    let garbage = count(&|o| {
        matches!(
            o,
            Outcome::Rejected {
                cause: Cause::Error { .. }
            }
        )
    });
    let timeouts = count(&|o| {
        matches!(
            o,
            Outcome::Rejected {
                cause: Cause::Timeout
            }
        )
    });
    let summary = format!(
        "{established} established, {alerts} alerts, {resets} resets, {garbage} errors, {timeouts} timeouts"
    );
    assert_eq!(
        established,
        TOTAL * 2 / 5 - silent_n + 1,
        "{backend}: {summary}"
    );
    assert_eq!(alerts, TOTAL / 5, "{backend}: {summary}");
    assert_eq!(resets, TOTAL / 5, "{backend}: {summary}");
    assert_eq!(garbage, TOTAL / 5, "{backend}: {summary}");
    assert_eq!(
        timeouts, silent_n,
        "{backend}: every silent client times out: {summary}"
    );
    let grew_mib = rss_peak.saturating_sub(rss_start) / 1024;
    assert!(grew_mib < 200, "{backend}: memory grew by {grew_mib} MiB");
    eprintln!(
        "{backend}: {} records: {summary}; RSS +{grew_mib} MiB",
        records.len()
    );
}

#[test]
fn ten_thousand_mixed_connections_rustls() {
    load(BackendName::Rustls);
}

#[test]
fn ten_thousand_mixed_connections_openssl() {
    load(BackendName::Openssl);
}

#[test]
fn ten_thousand_mixed_connections_mbedtls() {
    load(BackendName::Mbedtls);
}
