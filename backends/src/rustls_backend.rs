//! rustls (ring provider), blocking I/O.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache};
use rustls::{KeyLog, ServerConfig, ServerConnection};

use crate::iana::cipher_suite_name;
use crate::{
    Acceptor, BackendError, BackendName, HandshakeFailure, ServerSpec, TlsBackend, TlsSession,
    TlsVersion, Wire, io_cause,
};
use model::{AlertLevel, Cause, SessionInfo};

/// The rustls backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct RustlsBackend;

fn config_err(e: impl std::fmt::Display) -> BackendError {
    BackendError::Config {
        backend: BackendName::Rustls,
        message: e.to_string(),
    }
}

impl TlsBackend for RustlsBackend {
    fn name(&self) -> BackendName {
        BackendName::Rustls
    }

    fn library_version(&self) -> String {
        // rustls has no run-time version call; the linked crate's version is fixed at build time
        // and recorded by Cargo in the lockfile.
        format!("rustls {}", env!("HM_RUSTLS_VERSION"))
    }

    fn supports(&self, _tls: TlsVersion) -> Result<(), String> {
        Ok(())
    }

    fn acceptor(&self, spec: &ServerSpec) -> Result<Arc<dyn Acceptor>, BackendError> {
        let chain = CertificateDer::pem_slice_iter(spec.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(config_err)?;
        let key = PrivateKeyDer::from_pem_slice(spec.key_pem.as_bytes()).map_err(config_err)?;
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = TlsVersion::ALL
            .into_iter()
            .filter(|v| (spec.tls.min()..=spec.tls.max()).contains(v))
            .map(|v| match v {
                TlsVersion::Tls12 => &rustls::version::TLS12,
                TlsVersion::Tls13 => &rustls::version::TLS13,
            })
            .collect();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(config_err)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(config_err)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if let Some(recorder) = &spec.capture {
            config.key_log = Arc::new(RecorderKeyLog(recorder.clone()));
        }
        if spec.resumption {
            config.session_storage = ServerSessionMemoryCache::new(1024);
            config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(config_err)?;
        } else {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Ok(Arc::new(RustlsAcceptor {
            config: Arc::new(config),
        }))
    }
}

/// rustls's secrets, as key log lines, into the trial's capture.
#[derive(Debug)]
struct RecorderKeyLog(Arc<capture::Recorder>);

impl KeyLog for RecorderKeyLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        self.0.key_log_secret(label, client_random, secret);
    }
}

struct RustlsAcceptor {
    config: Arc<ServerConfig>,
}

fn failure(err: &std::io::Error) -> HandshakeFailure {
    let tls_error = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    let cause = match tls_error {
        Some(rustls::Error::AlertReceived(desc)) => {
            let code = u8::from(*desc);
            // rustls does not surface the level; TLS 1.3 alerts are all fatal, and a warning
            // alert (other than close_notify) never ends a rustls handshake.
            Cause::Alert {
                level: AlertLevel::Fatal,
                code,
                description: model::alert_name(code).into(),
            }
        }
        Some(other) => Cause::Error {
            message: other.to_string(),
        },
        None => io_cause(err),
    };
    HandshakeFailure {
        cause,
        backend_code: Some(format!("{err}")),
    }
}

impl Acceptor for RustlsAcceptor {
    fn accept(&self, mut tcp: Wire) -> Result<Box<dyn TlsSession>, HandshakeFailure> {
        let mut conn =
            ServerConnection::new(self.config.clone()).map_err(|e| HandshakeFailure {
                cause: Cause::Error {
                    message: e.to_string(),
                },
                backend_code: None,
            })?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                // Flush our own alert, if rustls queued one, before the socket closes.
                let _ = conn.write_tls(&mut tcp);
                return Err(failure(&e));
            }
        }
        Ok(Box::new(RustlsSession { conn, tcp }))
    }
}

struct RustlsSession {
    conn: ServerConnection,
    tcp: Wire,
}

impl TlsSession for RustlsSession {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HandshakeFailure> {
        rustls::Stream::new(&mut self.conn, &mut self.tcp)
            .read(buf)
            .map_err(|e| failure(&e))
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), HandshakeFailure> {
        let mut stream = rustls::Stream::new(&mut self.conn, &mut self.tcp);
        stream
            .write_all(buf)
            .and_then(|_| stream.flush())
            .map_err(|e| failure(&e))
    }

    fn info(&self) -> SessionInfo {
        let suite = self
            .conn
            .negotiated_cipher_suite()
            .map(|s| u16::from(s.suite()));
        SessionInfo {
            version: self.conn.protocol_version().map(|v| match v {
                rustls::ProtocolVersion::TLSv1_2 => "1.2".into(),
                rustls::ProtocolVersion::TLSv1_3 => "1.3".into(),
                other => format!("{other:?}"),
            }),
            cipher_suite_id: suite,
            cipher_suite: suite.map(|id| {
                cipher_suite_name(id)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("0x{id:04X}"))
            }),
            sni: self.conn.server_name().map(str::to_owned),
            alpn: self
                .conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            resumed: self
                .conn
                .handshake_kind()
                .map(|k| k == rustls::HandshakeKind::Resumed),
        }
    }

    fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.conn.complete_io(&mut self.tcp);
    }
}
