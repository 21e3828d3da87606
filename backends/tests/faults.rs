//! Faults inside the server: a backend that panics, a port that is taken. Every backend runs
//! the same body; the panics are injected around the real library's acceptor, which still does
//! every handshake that is not made to fail.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backends::{
    Acceptor, BackendError, BackendName, ConnectionPolicy, ServerSpec, TlsPin, TlsSession, Wire,
};
use certs::{CertBundle, CertKind};
use model::{HandshakeFailure, Outcome, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// The real acceptor, except that every `every`-th connection panics before the handshake.
struct PanicEvery {
    inner: Arc<dyn Acceptor>,
    every: u64,
    seen: AtomicU64,
}

impl Acceptor for PanicEvery {
    fn accept(&self, tcp: Wire) -> Result<Box<dyn TlsSession>, HandshakeFailure> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n.checked_rem(self.every) == Some(0) {
            panic!("injected fault on connection {n}");
        }
        self.inner.accept(tcp)
    }
}

fn spec(bundle: &CertBundle) -> ServerSpec {
    ServerSpec::new(
        bundle.chain_pem.clone(),
        bundle.key_pem.clone(),
        TlsPin::Only(TlsVersion::Tls13),
        ConnectionPolicy::Close,
    )
}

/// One GET over a fresh connection; the response's status line, or why there was none.
fn get(port: u16, anchor_pem: &str) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(anchor_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    let _ = tls.read_to_string(&mut response);
    response
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/1.1"))
        .map(str::to_owned)
        .ok_or_else(|| format!("no response: {response:?}"))
}

#[test]
fn a_panicking_backend_yields_a_server_fault_record_and_keeps_serving() {
    for backend in BackendName::ALL {
        let bundle = CertBundle::generate(CertKind::SelfSigned).unwrap();
        let spec = spec(&bundle);
        let inner = backend.backend().acceptor(&spec).unwrap();
        let acceptor = Arc::new(PanicEvery {
            inner,
            every: 3,
            seen: AtomicU64::new(0),
        });
        let server = backends::start(backend, acceptor, spec).unwrap();
        let answers: Vec<_> = (0..30)
            .map(|_| get(server.port(), &bundle.trust_anchor_pem))
            .collect();
        // Every third connection panicked: the client sees the connection end, nothing else.
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(
                a.is_ok(),
                (i + 1) % 3 != 0,
                "{backend} connection {}: {a:?}",
                i + 1
            );
        }
        std::thread::sleep(Duration::from_millis(100));
        let records = server.stop().expect("every connection recorded");
        assert_eq!(records.len(), 30, "{backend}: {records:#?}");
        let faults: Vec<_> = records.iter().filter_map(|r| r.server_fault()).collect();
        assert_eq!(faults.len(), 10, "{backend}: {records:#?}");
        assert!(
            faults
                .iter()
                .all(|f| f.starts_with("server fault: backend panicked: injected fault")),
            "{faults:?}"
        );
        let established = records
            .iter()
            .filter(|r| r.outcome == Outcome::Established { requests: 1 })
            .count();
        assert_eq!(established, 20, "{backend}: {records:#?}");
    }
}

#[test]
fn a_fixed_port_that_is_taken_is_a_clear_error_and_a_free_one_serves() {
    let bundle = CertBundle::generate(CertKind::SelfSigned).unwrap();
    let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = squatter.local_addr().unwrap().port();
    for backend in BackendName::ALL {
        let mut spec = spec(&bundle);
        spec.port = Some(port);
        match backend.backend().start(spec) {
            Err(e @ BackendError::PortInUse { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains(&format!("127.0.0.1:{port} is already in use")),
                    "{message}"
                );
            }
            Err(e) => panic!("{backend}: wrong error: {e}"),
            Ok(_) => panic!("{backend}: bound a port another socket holds"),
        }
    }
    drop(squatter);
    for backend in BackendName::ALL {
        let mut spec = spec(&bundle);
        spec.port = Some(port);
        let server = backend
            .backend()
            .start(spec)
            .expect("the port is free again");
        assert_eq!(server.port(), port);
        assert_eq!(
            get(port, &bundle.trust_anchor_pem).as_deref(),
            Ok("HTTP/1.1 200 OK")
        );
        drop(server);
    }
}
