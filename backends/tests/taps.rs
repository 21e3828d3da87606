//! The byte tap and the key logs behind each trial's capture: for every backend and TLS
//! version, a real rustls client whose own record of the wire is compared with the server's
//! capture byte for byte, whose own key log must be found in the server's, and a client that
//! resets, which the capture must show as the record says.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backends::{BackendName, ConnectionPolicy, RunningServer, ServerSpec, TlsPin};
use capture::{Capture, Recorder, Segment, Side};
use certs::{CertBundle, CertKind};
use model::{Cause, Outcome, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

fn start(backend: BackendName, tls: TlsVersion) -> (RunningServer, CertBundle, Arc<Recorder>) {
    let bundle = CertBundle::generate(CertKind::SelfSigned).unwrap();
    let mut spec = ServerSpec::new(
        bundle.chain_pem.clone(),
        bundle.key_pem.clone(),
        TlsPin::Only(tls),
        ConnectionPolicy::Close,
    );
    let recorder = Arc::new(Recorder::default());
    spec.capture = Some(recorder.clone());
    let server = backend.backend().start(spec).expect("server starts");
    (server, bundle, recorder)
}

/// The client's own key log.
#[derive(Debug, Default)]
struct ClientKeys(Mutex<Vec<String>>);

impl rustls::KeyLog for ClientKeys {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        self.0
            .lock()
            .unwrap()
            .push(format!("{label} {} {}", hex(client_random), hex(secret)));
    }
}

fn client_config(
    tls: TlsVersion,
    anchor_pem: Option<&str>,
    keys: Arc<ClientKeys>,
) -> Arc<rustls::ClientConfig> {
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
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.key_log = keys;
    Arc::new(cfg)
}

/// The client's socket, keeping every byte it wrote and read.
struct Recording {
    tcp: TcpStream,
    wrote: Vec<u8>,
    read: Vec<u8>,
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.read.extend(&buf[..n]);
        Ok(n)
    }
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.tcp.write(buf)?;
        self.wrote.extend(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

fn connect(server: &RunningServer) -> TcpStream {
    let tcp = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp
}

/// Everything `side` sent in a conversation, in order.
fn sent_by(capture: &Capture, id: u64, side: Side) -> Vec<u8> {
    let c = capture.conversations.iter().find(|c| c.id == id).unwrap();
    c.events
        .iter()
        .filter(|e| e.from == side)
        .flat_map(|e| match &e.segment {
            Segment::Data(d) => d.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn stop(server: RunningServer) -> Vec<model::ConnectionRecord> {
    // Let the server see the client's close first, so that the record is the client's doing.
    std::thread::sleep(Duration::from_millis(150));
    server.stop().expect("every connection recorded")
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

fn the_capture_holds_the_bytes_both_ways_and_the_secrets(backend: BackendName, tls: TlsVersion) {
    let (server, bundle, recorder) = start(backend, tls);
    let keys = Arc::new(ClientKeys::default());
    let cfg = client_config(tls, Some(&bundle.trust_anchor_pem), keys.clone());
    let conn =
        rustls::ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
    let wire = Recording {
        tcp: connect(&server),
        wrote: Vec::new(),
        read: Vec::new(),
    };
    let mut tls_stream = rustls::StreamOwned::new(conn, wire);
    tls_stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    // The server closes after its response (close_notify, then FIN); read everything.
    let _ = tls_stream.read_to_end(&mut response);
    assert!(response.starts_with(b"HTTP/1.1 200 OK"));
    // No close_notify of ours: the server has closed and would never read it.
    let wire = tls_stream.sock;
    drop(wire.tcp);

    // A second client sends its ClientHello, reads the first flight, and resets.
    let mut hello = rustls::ClientConnection::new(
        client_config(tls, None, Arc::new(ClientKeys::default())),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut tcp = connect(&server);
    hello.write_tls(&mut tcp).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 8192];
    while matches!(tcp.read(&mut buf), Ok(n) if n > 0) {}
    set_linger_zero(&tcp);
    drop(tcp);

    let records = stop(server);
    let capture = recorder.snapshot();
    assert_eq!(
        capture.conversations.len(),
        2,
        "one conversation per record"
    );
    assert_eq!(records[0].outcome, Outcome::Established { requests: 1 });
    assert_eq!(
        sent_by(&capture, 1, Side::Client),
        wire.wrote,
        "{backend}: the client's bytes, exactly"
    );
    assert_eq!(
        sent_by(&capture, 1, Side::Server),
        wire.read,
        "{backend}: the server's bytes, exactly"
    );
    let first = &capture.conversations[0];
    assert_eq!(first.client.port(), records[0].client_port);
    assert!(
        first
            .events
            .iter()
            .any(|e| e.from == Side::Server && e.segment == Segment::Fin),
        "{backend}: the server's close: {:?}",
        first.events.last()
    );

    // The second connection: the record says reset, so does the capture.
    let second = &capture.conversations[1];
    if let Outcome::Rejected {
        cause: Cause::Reset,
    } = &records[1].outcome
    {
        assert_eq!(
            second.events.last().map(|e| (e.from, &e.segment)),
            Some((Side::Client, &Segment::Reset)),
            "{backend}"
        );
    }
    assert!(
        second
            .events
            .iter()
            .any(|e| e.from == Side::Client && e.segment == Segment::Reset),
        "{backend}: {:?} with {:?}",
        records[1].outcome,
        second.events.last()
    );

    // Every secret the client derived for the established connection is in the server's log.
    let wanted = [
        "CLIENT_RANDOM",
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ];
    let client_lines: Vec<String> = keys
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| wanted.iter().any(|w| l.starts_with(&format!("{w} "))))
        .cloned()
        .collect();
    let expected = match tls {
        TlsVersion::Tls12 => 1,
        TlsVersion::Tls13 => 4,
    };
    assert_eq!(client_lines.len(), expected, "{client_lines:?}");
    for line in client_lines {
        assert!(
            capture.key_log.lines().any(|l| l == line),
            "{backend}: {line} missing from the server's key log:\n{}",
            capture.key_log
        );
    }
}

macro_rules! tap_tests {
    ($($name:ident => $backend:expr, $tls:expr;)*) => {$(
        #[test]
        fn $name() {
            the_capture_holds_the_bytes_both_ways_and_the_secrets($backend, $tls);
        }
    )*};
}

tap_tests! {
    rustls_tls12 => BackendName::Rustls, TlsVersion::Tls12;
    rustls_tls13 => BackendName::Rustls, TlsVersion::Tls13;
    openssl_tls12 => BackendName::Openssl, TlsVersion::Tls12;
    openssl_tls13 => BackendName::Openssl, TlsVersion::Tls13;
    mbedtls_tls12 => BackendName::Mbedtls, TlsVersion::Tls12;
    mbedtls_tls13 => BackendName::Mbedtls, TlsVersion::Tls13;
}
