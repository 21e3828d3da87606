//! Real clients against every backend × TLS version: one test body, instantiated per pair —
//! against the parallel server and against the one-at-a-time server (issue #21).
//!
//! Clients: rustls (in process) and `openssl s_client` (a process). No mock stands in for a
//! server or a client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use backends::{
    BackendError, BackendName, Concurrency, ConnectionPolicy, RunningServer, ServerSpec, TlsPin,
};
use certs::{CertBundle, CertKind};
use model::{Cause, ConnectionRecord, Outcome, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

fn start(
    backend: BackendName,
    tls: TlsVersion,
    policy: ConnectionPolicy,
) -> (RunningServer, CertBundle) {
    let bundle = CertBundle::generate(CertKind::SelfSigned).unwrap();
    let spec = ServerSpec::new(
        bundle.chain_pem.clone(),
        bundle.key_pem.clone(),
        TlsPin::Only(tls),
        policy,
    );
    (
        backend.backend().start(spec).expect("server starts"),
        bundle,
    )
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client config for `tls` that trusts `anchor_pem`, or nothing when `None`.
fn client_config(tls: TlsVersion, anchor_pem: Option<&str>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = anchor_pem {
        for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let version = match tls {
        TlsVersion::Tls12 => &rustls::version::TLS12,
        TlsVersion::Tls13 => &rustls::version::TLS13,
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

fn connect(server: &RunningServer) -> TcpStream {
    let tcp = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp
}

/// Does one rustls handshake and then `requests` GETs on the same connection.
fn rustls_get(
    server: &RunningServer,
    cfg: Arc<rustls::ClientConfig>,
    requests: usize,
) -> std::io::Result<Vec<String>> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, connect(server));
    let mut responses = Vec::new();
    for i in 0..requests {
        let close = if i + 1 == requests {
            "close"
        } else {
            "keep-alive"
        };
        write!(
            tls,
            "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: {close}\r\n\r\n"
        )?;
        responses.push(read_response(&mut tls)?);
    }
    Ok(responses)
}

/// Reads one HTTP response (head plus Content-Length body).
fn read_response(stream: &mut impl Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok(head + &String::from_utf8_lossy(&body))
}

fn records(server: RunningServer) -> Vec<ConnectionRecord> {
    // Give the server a moment to see the client's close before stopping it, so the record
    // reflects the client, not our shutdown.
    std::thread::sleep(Duration::from_millis(150));
    server.stop().expect("every connection recorded")
}

fn only(records: &[ConnectionRecord]) -> &ConnectionRecord {
    assert_eq!(
        records.len(),
        1,
        "expected exactly one connection: {records:#?}"
    );
    &records[0]
}

fn set_linger_zero(tcp: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// Sends a real ClientHello, waits for the server's first flight, then ends the TCP connection.
fn hello_then(server: &RunningServer, tls: TlsVersion, reset: bool) {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(client_config(tls, None), name).unwrap();
    let mut tcp = connect(server);
    conn.write_tls(&mut tcp).unwrap();
    // Drain the server's whole first flight: closing with unread data would send RST itself.
    tcp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while matches!(tcp.read(&mut buf), Ok(n) if n > 0) {}
    if reset {
        set_linger_zero(&tcp);
    }
    drop(tcp);
}

fn s_client(
    server: &RunningServer,
    tls: TlsVersion,
    extra: &[&str],
    stdin: &str,
) -> std::process::Output {
    let version = match tls {
        TlsVersion::Tls12 => "-tls1_2",
        TlsVersion::Tls13 => "-tls1_3",
    };
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", server.port()),
            "-servername",
            "localhost",
        ])
        .args([version, "-ign_eof", "-msg"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client runs (apt-get install openssl)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A one-at-a-time server (HTTP/1.0, close) with its certificate; `tune` adjusts the spec.
fn start_one_at_a_time(
    backend: BackendName,
    tls: TlsVersion,
    tune: impl FnOnce(&mut ServerSpec),
) -> (RunningServer, CertBundle) {
    let bundle = CertBundle::generate(CertKind::SelfSigned).unwrap();
    let mut spec = ServerSpec::new(
        bundle.chain_pem.clone(),
        bundle.key_pem.clone(),
        TlsPin::Only(tls),
        ConnectionPolicy::Close,
    );
    spec.concurrency = Concurrency::OneAtATime;
    tune(&mut spec);
    (
        backend.backend().start(spec).expect("server starts"),
        bundle,
    )
}

/// A rustls client whose handshake has completed (so the server holds it), no request yet.
fn handshaken(
    server: &RunningServer,
    cfg: Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, connect(server));
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// Reads an answer to its end, which must be the server's close_notify
/// (rustls reports a close without one as an error).
fn get_to_close(tls: &mut impl Read) -> std::io::Result<String> {
    let mut body = Vec::new();
    tls.read_to_end(&mut body)?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// One connection: handshake, GET, the whole answer up to close_notify.
fn http10_get(server: &RunningServer, cfg: Arc<rustls::ClientConfig>) -> std::io::Result<String> {
    http10_get_via(server, cfg, server.addrs()[0])
}

/// As [`http10_get`], to one of the server's listeners.
fn http10_get_via(
    server: &RunningServer,
    cfg: Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
) -> std::io::Result<String> {
    assert!(server.addrs().contains(&addr));
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    get_to_close(&mut tls)
}

/// Waits (up to 5 s) until the server's accept queues hold `n` connections.
fn wait_queued(server: &RunningServer, n: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.queued() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} queued, expected {n}: {:?}",
            server.queued(),
            server.listen_queues()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// No two records overlap between accept and close, in accept order.
fn assert_one_at_a_time(records: &[ConnectionRecord]) {
    let mut by_accept: Vec<&ConnectionRecord> = records.iter().collect();
    by_accept.sort_by_key(|r| r.accepted_at_us);
    for pair in by_accept.windows(2) {
        assert!(
            pair[1].accepted_at_us >= pair[0].closed_at_us,
            "connection {} was accepted before connection {} closed: {records:#?}",
            pair[1].id,
            pair[0].id
        );
    }
}

fn alert_code(record: &ConnectionRecord) -> Option<u8> {
    record.outcome.alert_code()
}

macro_rules! backend_tests {
    ($($module:ident => $backend:expr, $tls:expr;)*) => {$(
        mod $module {
            use super::*;
            const BACKEND: BackendName = $backend;
            const TLS: TlsVersion = $tls;

            #[test]
            fn rustls_client_is_established_with_pinned_version() {
                let (server, bundle) = start(BACKEND, TLS, ConnectionPolicy::KeepAlive);
                let responses = rustls_get(&server, client_config(TLS, Some(&bundle.trust_anchor_pem)), 1).unwrap();
                assert!(responses[0].starts_with("HTTP/1.1 200 OK"), "{}", responses[0]);
                assert!(responses[0].contains("<title>handshake-matrix</title>"));
                let records = records(server);
                let r = only(&records);
                assert_eq!(r.outcome, Outcome::Established { requests: 1 }, "{r:#?}");
                assert_eq!(r.session.version.as_deref(), Some(TLS.as_str()));
                let id = r.session.cipher_suite_id.expect("suite id");
                assert!(r.session.cipher_suite.as_deref().unwrap().starts_with("TLS_"), "{r:#?}");
                assert_eq!(TLS == TlsVersion::Tls13, (0x1301..=0x1305).contains(&id));
                assert_eq!(r.session.sni.as_deref(), Some("localhost"));
                assert_eq!(r.session.alpn.as_deref(), Some("http/1.1"));
            }

            #[test]
            fn s_client_is_established() {
                let (server, _bundle) = start(BACKEND, TLS, ConnectionPolicy::Close);
                let out = s_client(&server, TLS, &[], "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(stdout.contains("HTTP/1.1 200 OK"), "{stdout}");
                let records = records(server);
                let r = only(&records);
                assert_eq!(r.outcome, Outcome::Established { requests: 1 }, "{r:#?}");
                assert_eq!(r.session.version.as_deref(), Some(TLS.as_str()));
            }

            #[test]
            fn rustls_client_rejecting_the_cert_is_an_alert() {
                let (server, _bundle) = start(BACKEND, TLS, ConnectionPolicy::KeepAlive);
                let err = rustls_get(&server, client_config(TLS, None), 1).unwrap_err();
                assert!(err.to_string().contains("UnknownIssuer"), "{err}");
                let records = records(server);
                let r = only(&records);
                match &r.outcome {
                    Outcome::Rejected { cause: Cause::Alert { level, code: 48, description } } => {
                        assert_eq!(*level, model::AlertLevel::Fatal);
                        assert_eq!(description, "unknown_ca");
                    }
                    other => panic!("expected rejected alert(fatal, unknown_ca): {other:?} {r:#?}"),
                }
            }

            #[test]
            fn s_client_rejecting_the_cert_is_the_alert_it_sent() {
                let (server, _bundle) = start(BACKEND, TLS, ConnectionPolicy::KeepAlive);
                let out = s_client(&server, TLS, &["-verify_return_error", "-no-CAfile", "-no-CApath", "-no-CAstore"], "");
                let stdout = String::from_utf8_lossy(&out.stdout);
                // `-msg` prints what s_client sent: ">>> ... Alert [length 0002], fatal unknown_ca".
                let sent = stdout
                    .lines()
                    .skip_while(|l| !(l.starts_with(">>>") && l.contains("Alert")))
                    .nth(1)
                    .and_then(|hex| u8::from_str_radix(hex.split_whitespace().nth(1)?, 16).ok())
                    .unwrap_or_else(|| panic!("s_client sent no alert:\n{stdout}"));
                let records = records(server);
                let r = only(&records);
                assert!(matches!(r.outcome, Outcome::Rejected { .. }), "{r:#?}");
                assert_eq!(alert_code(r), Some(sent), "{r:#?}");
            }

            #[test]
            fn reset_mid_handshake_is_reset() {
                let (server, _bundle) = start(BACKEND, TLS, ConnectionPolicy::KeepAlive);
                hello_then(&server, TLS, true);
                let records = records(server);
                let r = only(&records);
                assert_eq!(r.outcome, Outcome::Rejected { cause: Cause::Reset }, "{r:#?}");
            }

            #[test]
            fn close_mid_handshake_is_eof() {
                let (server, _bundle) = start(BACKEND, TLS, ConnectionPolicy::KeepAlive);
                hello_then(&server, TLS, false);
                let records = records(server);
                let r = only(&records);
                assert_eq!(r.outcome, Outcome::Rejected { cause: Cause::Eof }, "{r:#?}");
            }

            #[test]
            fn version_mismatch_is_rejected() {
                let other = if TLS == TlsVersion::Tls12 { TlsVersion::Tls13 } else { TlsVersion::Tls12 };
                let (server, bundle) = start(BACKEND, TLS, ConnectionPolicy::KeepAlive);
                assert!(rustls_get(&server, client_config(other, Some(&bundle.trust_anchor_pem)), 1).is_err());
                let records = records(server);
                let r = only(&records);
                assert!(matches!(r.outcome, Outcome::Rejected { .. }), "{r:#?}");
            }

            #[test]
            fn handshake_then_close_is_idle() {
                let (server, bundle) = start(BACKEND, TLS, ConnectionPolicy::KeepAlive);
                let name = ServerName::try_from("localhost").unwrap();
                let conn = rustls::ClientConnection::new(client_config(TLS, Some(&bundle.trust_anchor_pem)), name).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, connect(&server));
                while tls.conn.is_handshaking() {
                    tls.conn.complete_io(&mut tls.sock).unwrap();
                }
                tls.conn.send_close_notify();
                tls.conn.complete_io(&mut tls.sock).unwrap();
                drop(tls);
                let records = records(server);
                let r = only(&records);
                assert_eq!(r.outcome, Outcome::Idle, "{r:#?}");
                assert_eq!(r.session.version.as_deref(), Some(TLS.as_str()));
            }

            #[test]
            fn close_policy_needs_a_connection_per_request() {
                let (server, bundle) = start(BACKEND, TLS, ConnectionPolicy::Close);
                let cfg = client_config(TLS, Some(&bundle.trust_anchor_pem));
                // The server closes after the first response, so the second request fails on
                // that connection and needs a new one.
                let responses = rustls_get(&server, cfg.clone(), 1).unwrap();
                assert!(responses[0].contains("Connection: close"));
                rustls_get(&server, cfg, 1).unwrap();
                let records = records(server);
                assert_eq!(records.len(), 2, "{records:#?}");
                assert!(records.iter().all(|r| r.outcome == Outcome::Established { requests: 1 }));
            }

            #[test]
            fn keep_alive_serves_two_requests_on_one_connection() {
                let (server, bundle) = start(BACKEND, TLS, ConnectionPolicy::KeepAlive);
                let responses = rustls_get(&server, client_config(TLS, Some(&bundle.trust_anchor_pem)), 2).unwrap();
                assert!(responses[0].contains("Connection: keep-alive"));
                let records = records(server);
                assert_eq!(only(&records).outcome, Outcome::Established { requests: 2 });
            }

            #[test]
            fn thousand_connections_hundred_at_a_time_give_thousand_records() {
                let (server, bundle) = start(BACKEND, TLS, ConnectionPolicy::Close);
                let cfg = client_config(TLS, Some(&bundle.trust_anchor_pem));
                let server = Arc::new(server);
                for _batch in 0..10 {
                    let handles: Vec<_> = (0..100)
                        .map(|_| {
                            let (server, cfg) = (server.clone(), cfg.clone());
                            std::thread::spawn(move || rustls_get(&server, cfg, 1).map(|_| ()))
                        })
                        .collect();
                    for h in handles {
                        h.join().expect("client thread").expect("request succeeds");
                    }
                }
                let server = Arc::into_inner(server).unwrap();
                let records = records(server);
                assert_eq!(records.len(), 1000);
                let ids: std::collections::BTreeSet<u64> = records.iter().map(|r| r.id).collect();
                assert_eq!(ids.len(), 1000, "ids are unique");
                assert!(records.iter().all(|r| r.outcome == Outcome::Established { requests: 1 }));
            }

            #[test]
            fn a_slowloris_request_ends_in_a_timeout_record() {
                let bundle = CertBundle::generate(CertKind::SelfSigned).unwrap();
                let mut spec = ServerSpec::new(bundle.chain_pem.clone(), bundle.key_pem.clone(), TlsPin::Only(TLS), ConnectionPolicy::KeepAlive);
                spec.request_timeout = Duration::from_secs(1);
                let server = BACKEND.backend().start(spec).unwrap();
                let name = ServerName::try_from("localhost").unwrap();
                let conn = rustls::ClientConnection::new(client_config(TLS, Some(&bundle.trust_anchor_pem)), name).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, connect(&server));
                // One byte every 200 ms: each read resets the socket timeout, only the head
                // deadline ends it.
                let started = std::time::Instant::now();
                for b in b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".iter().cycle() {
                    if tls.write_all(&[*b]).and_then(|_| tls.flush()).is_err() || started.elapsed() > Duration::from_secs(5) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                let elapsed = started.elapsed();
                let records = records(server);
                let r = only(&records);
                assert_eq!(r.outcome, Outcome::Idle, "{r:#?}");
                assert!(r.backend_code.as_deref().is_some_and(|c| c.contains("request head incomplete")), "{r:#?}");
                assert!(elapsed < Duration::from_secs(4), "the server ended the connection after {elapsed:?}: {r:#?}");
            }

            #[test]
            fn a_trickled_handshake_ends_in_a_timeout_record() {
                let bundle = CertBundle::generate(CertKind::SelfSigned).unwrap();
                let mut spec = ServerSpec::new(bundle.chain_pem.clone(), bundle.key_pem.clone(), TlsPin::Only(TLS), ConnectionPolicy::KeepAlive);
                spec.handshake_timeout = Duration::from_secs(1);
                let server = BACKEND.backend().start(spec).unwrap();
                let name = ServerName::try_from("localhost").unwrap();
                let mut conn = rustls::ClientConnection::new(client_config(TLS, None), name).unwrap();
                let mut hello = Vec::new();
                conn.write_tls(&mut hello).unwrap();
                // One byte of a real ClientHello every 200 ms: every read succeeds well within
                // the socket timeout, so only the whole-handshake deadline can end it.
                let mut tcp = connect(&server);
                let started = std::time::Instant::now();
                for b in &hello {
                    if tcp.write_all(&[*b]).is_err() || started.elapsed() > Duration::from_secs(8) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                let elapsed = started.elapsed();
                let records = records(server);
                let r = only(&records);
                assert_eq!(r.outcome, Outcome::Rejected { cause: Cause::Timeout }, "{r:#?}");
                assert!(r.backend_code.as_deref().is_some_and(|c| c.contains("handshake unfinished after 1 s")), "{r:#?}");
                assert!(elapsed < Duration::from_secs(4), "the server ended the handshake after {elapsed:?} ({} hello bytes): {r:#?}", hello.len());
            }

            #[test]
            fn a_parallel_server_records_a_queue_wait_too() {
                let (server, bundle) = start(BACKEND, TLS, ConnectionPolicy::Close);
                rustls_get(&server, client_config(TLS, Some(&bundle.trust_anchor_pem)), 1).unwrap();
                let records = records(server);
                let r = only(&records);
                assert!(r.queue_wait_ms.is_some_and(|ms| ms < 1000), "{r:#?}");
                assert_eq!(r.queue_wait_unknown, None);
            }

            #[test]
            fn one_at_a_time_serves_queued_clients_in_turn_each_with_its_queue_wait() {
                let (server, bundle) = start_one_at_a_time(BACKEND, TLS, |_| {});
                let cfg = client_config(TLS, Some(&bundle.trust_anchor_pem));
                let server = Arc::new(server);
                // The first client holds the server after its handshake...
                let mut first = handshaken(&server, cfg.clone());
                // ...so five more wait in the kernel's accept queues, on both listeners
                // (127.0.0.1 and [::1]) where the machine has IPv6: one thread serves both.
                let queued: Vec<_> = (0..5)
                    .map(|i| {
                        let (server, cfg) = (server.clone(), cfg.clone());
                        let addr = server.addrs()[i % server.addrs().len()];
                        std::thread::spawn(move || http10_get_via(&server, cfg, addr))
                    })
                    .collect();
                wait_queued(&server, 5);
                let queues = server.listen_queues().unwrap();
                assert!(queues.iter().all(|q| q.backlog == backends::MBEDTLS_NET_LISTEN_BACKLOG), "{queues:?}");
                std::thread::sleep(Duration::from_millis(400));
                first.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n").unwrap();
                let answers: Vec<String> = std::iter::once(get_to_close(&mut first).unwrap())
                    .chain(queued.into_iter().map(|h| h.join().expect("client thread").expect("answered, then close_notify")))
                    .collect();
                for a in &answers {
                    assert!(a.starts_with("HTTP/1.0 200 OK\r\n"), "{a}");
                    assert!(!a.contains("Content-Length") && !a.contains("Connection:"), "{a}");
                    assert!(a.ends_with("</html>"), "the body ends at close: {a}");
                }
                let server = Arc::into_inner(server).unwrap();
                let server_had_ipv6 = server.addrs().len() == 2;
                let records = records(server);
                assert_eq!(records.len(), 6, "{records:#?}");
                if server_had_ipv6 {
                    assert!(records.iter().any(|r| r.local.starts_with("[::1]")), "{records:#?}");
                }
                assert!(records.iter().all(|r| r.outcome == Outcome::Established { requests: 1 }), "{records:#?}");
                assert_one_at_a_time(&records);
                let waits: Vec<u32> = records
                    .iter()
                    .map(|r| r.queue_wait_ms.unwrap_or_else(|| panic!("no queue wait: {r:#?}")))
                    .collect();
                assert!(waits[0] < 300, "the first was accepted at once: {waits:?}");
                assert!(waits[1..].iter().all(|&w| w >= 350), "the others waited behind it: {waits:?}");
            }

            #[test]
            fn one_at_a_time_times_out_a_trickled_handshake_then_serves_the_queue() {
                let (server, bundle) = start_one_at_a_time(BACKEND, TLS, |spec| {
                    spec.handshake_timeout = Duration::from_secs(1);
                    spec.listen_backlog = Some(3);
                });
                let queues = server.listen_queues().unwrap();
                assert!(queues.iter().all(|q| q.backlog == 3 && q.waiting == 0), "{queues:?}");
                // A client that sends one byte and nothing more holds the only serving thread
                // until the handshake deadline.
                let mut stalled = connect(&server);
                stalled.write_all(&[0x16]).unwrap();
                while server.log().accepted() == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let started = std::time::Instant::now();
                let answer = http10_get(&server, client_config(TLS, Some(&bundle.trust_anchor_pem))).unwrap();
                let waited = started.elapsed();
                assert!(answer.starts_with("HTTP/1.0 200 OK"), "{answer}");
                assert!(waited >= Duration::from_millis(700) && waited < Duration::from_secs(4), "{waited:?}");
                drop(stalled);
                let records = records(server);
                assert_eq!(records.len(), 2, "{records:#?}");
                assert_eq!(records[0].outcome, Outcome::Rejected { cause: Cause::Timeout }, "{records:#?}");
                assert_eq!(records[1].outcome, Outcome::Established { requests: 1 }, "{records:#?}");
                assert!(records[1].queue_wait_ms.is_some_and(|ms| ms >= 600), "{records:#?}");
                assert_one_at_a_time(&records);
            }

            #[test]
            fn one_at_a_time_stop_ends_an_idle_connection_and_records_it() {
                let (server, bundle) = start_one_at_a_time(BACKEND, TLS, |_| {});
                // Handshake done, no request: the server waits for one (request timeout 30 s).
                let _idle = handshaken(&server, client_config(TLS, Some(&bundle.trust_anchor_pem)));
                // The client is done before the server has read its Finished (and, with TLS
                // 1.3, sent its tickets): give the server's side time to finish.
                std::thread::sleep(Duration::from_millis(300));
                let started = std::time::Instant::now();
                let records = server.stop().expect("every connection recorded");
                assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
                let r = only(&records);
                assert_eq!(r.outcome, Outcome::Idle, "{r:#?}");
                assert!(r.queue_wait_ms.is_some(), "{r:#?}");
            }

            #[test]
            fn one_at_a_time_with_keep_alive_is_refused() {
                let bundle = CertBundle::generate(CertKind::SelfSigned).unwrap();
                let mut spec = ServerSpec::new(bundle.chain_pem.clone(), bundle.key_pem.clone(), TlsPin::Only(TLS), ConnectionPolicy::KeepAlive);
                spec.concurrency = Concurrency::OneAtATime;
                match BACKEND.backend().start(spec) {
                    Err(BackendError::Spec(why)) => assert!(why.contains("HTTP/1.0"), "{why}"),
                    Err(other) => panic!("{other}"),
                    Ok(_) => panic!("a one-at-a-time keep-alive server started"),
                }
            }

            #[test]
            fn reports_the_library_version() {
                let v = BACKEND.backend().library_version();
                let expected = match BACKEND {
                    BackendName::Rustls => "rustls 0.23.",
                    BackendName::Openssl => "OpenSSL 3.",
                    BackendName::Mbedtls => "Mbed TLS 3.6.",
                };
                assert!(v.starts_with(expected), "{v}");
            }
        }
    )*};
}

backend_tests! {
    rustls_tls12 => BackendName::Rustls, TlsVersion::Tls12;
    rustls_tls13 => BackendName::Rustls, TlsVersion::Tls13;
    openssl_tls12 => BackendName::Openssl, TlsVersion::Tls12;
    openssl_tls13 => BackendName::Openssl, TlsVersion::Tls13;
    mbedtls_tls12 => BackendName::Mbedtls, TlsVersion::Tls12;
    mbedtls_tls13 => BackendName::Mbedtls, TlsVersion::Tls13;
}
