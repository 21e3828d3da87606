//! The system OpenSSL through the `openssl` crate, blocking I/O.
//!
//! rust-openssl does not wrap `SSL_CTX_set_info_callback`, which is where OpenSSL reports the
//! alert a peer sent (`SSL_CB_READ_ALERT`, value `level << 8 | description`), so it is declared
//! here. The callback runs on the thread doing the handshake, which owns the connection, so a
//! thread-local is enough to carry the alert back.

use std::cell::Cell;
use std::io::Write;
use std::os::raw::c_int;
use std::sync::Arc;

use openssl::pkey::PKey;
use openssl::ssl::{
    AlpnError, HandshakeError, NameType, SslAcceptor, SslMethod, SslOptions, SslSessionCacheMode,
    SslStream, SslVersion, select_next_proto,
};
use openssl::x509::X509;
use openssl_sys::{SSL, SSL_CTX};

use crate::iana::{cipher_suite_name, normalise_version};
use crate::{
    Acceptor, BackendError, BackendName, HandshakeFailure, ServerSpec, TlsBackend, TlsSession,
    TlsVersion, Wire, io_cause,
};
use model::{Cause, SessionInfo};

unsafe extern "C" {
    fn SSL_CTX_set_info_callback(
        ctx: *mut SSL_CTX,
        cb: Option<unsafe extern "C" fn(ssl: *const SSL, where_: c_int, ret: c_int)>,
    );
}

const SSL_CB_ALERT: c_int = 0x4000;
const SSL_CB_READ: c_int = 0x04;
/// OpenSSL's error-stack reason for a received alert is `SSL_AD_REASON_OFFSET + description`.
const SSL_AD_REASON_OFFSET: i32 = 1000;

thread_local! {
    static LAST_READ_ALERT: Cell<Option<(u8, u8)>> = const { Cell::new(None) };
}

unsafe extern "C" fn info_callback(_ssl: *const SSL, where_: c_int, ret: c_int) {
    if where_ & SSL_CB_ALERT != 0 && where_ & SSL_CB_READ != 0 {
        LAST_READ_ALERT.with(|a| a.set(Some(((ret >> 8) as u8, ret as u8))));
    }
}

/// The OpenSSL backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpensslBackend;

fn config_err(e: impl std::fmt::Display) -> BackendError {
    BackendError::Config {
        backend: BackendName::Openssl,
        message: e.to_string(),
    }
}

impl TlsBackend for OpensslBackend {
    fn name(&self) -> BackendName {
        BackendName::Openssl
    }

    fn library_version(&self) -> String {
        openssl::version::version().to_owned()
    }

    fn supports(&self, _tls: TlsVersion) -> Result<(), String> {
        Ok(())
    }

    fn acceptor(&self, spec: &ServerSpec) -> Result<Arc<dyn Acceptor>, BackendError> {
        let mut b =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(config_err)?;
        let mut chain = X509::stack_from_pem(spec.chain_pem.as_bytes())
            .map_err(config_err)?
            .into_iter();
        let leaf = chain
            .next()
            .ok_or_else(|| config_err("no certificate in chain"))?;
        b.set_certificate(&leaf).map_err(config_err)?;
        for extra in chain {
            b.add_extra_chain_cert(extra).map_err(config_err)?;
        }
        let key = PKey::private_key_from_pem(spec.key_pem.as_bytes()).map_err(config_err)?;
        b.set_private_key(&key).map_err(config_err)?;
        let v = |t: TlsVersion| match t {
            TlsVersion::Tls12 => SslVersion::TLS1_2,
            TlsVersion::Tls13 => SslVersion::TLS1_3,
        };
        b.set_min_proto_version(Some(v(spec.tls.min())))
            .map_err(config_err)?;
        b.set_max_proto_version(Some(v(spec.tls.max())))
            .map_err(config_err)?;
        b.set_alpn_select_callback(|_, client| {
            select_next_proto(b"\x08http/1.1", client).ok_or(AlpnError::NOACK)
        });
        if !spec.resumption {
            b.set_session_cache_mode(SslSessionCacheMode::OFF);
            b.set_options(SslOptions::NO_TICKET);
            b.set_num_tickets(0).map_err(config_err)?;
        }
        if let Some(recorder) = spec.capture.clone() {
            b.set_keylog_callback(move |_, line| recorder.key_log_line(line));
        }
        // SAFETY: the context pointer is valid for the builder's lifetime; the callback is a
        // plain function that only touches a thread-local.
        unsafe { SSL_CTX_set_info_callback(b.as_ptr(), Some(info_callback)) };
        Ok(Arc::new(OpensslAcceptor {
            acceptor: b.build(),
        }))
    }
}

struct OpensslAcceptor {
    acceptor: SslAcceptor,
}

/// Reads why an OpenSSL call failed: a received alert first, then the error stack, then I/O.
fn classify(error: &openssl::ssl::Error) -> HandshakeFailure {
    let alert = LAST_READ_ALERT.with(Cell::take);
    let backend_code = Some(error.to_string());
    if let Some((level, desc)) = alert {
        return HandshakeFailure {
            cause: Cause::alert(level, desc),
            backend_code,
        };
    }
    if let Some(stack) = error.ssl_error() {
        for e in stack.errors() {
            let reason = (e.code() & 0x7FFFFF) as i32;
            if (SSL_AD_REASON_OFFSET..SSL_AD_REASON_OFFSET + 256).contains(&reason) {
                let desc = (reason - SSL_AD_REASON_OFFSET) as u8;
                return HandshakeFailure {
                    cause: Cause::alert(2, desc),
                    backend_code,
                };
            }
            if e.reason().is_some_and(|r| r.contains("unexpected eof")) {
                return HandshakeFailure {
                    cause: Cause::Eof,
                    backend_code,
                };
            }
        }
    }
    let cause = match error.io_error() {
        Some(io) => io_cause(io),
        None if error.code() == openssl::ssl::ErrorCode::SYSCALL => Cause::Eof,
        None if error.code() == openssl::ssl::ErrorCode::WANT_READ => Cause::Timeout,
        None => Cause::Error {
            message: error.to_string(),
        },
    };
    HandshakeFailure {
        cause,
        backend_code,
    }
}

impl Acceptor for OpensslAcceptor {
    fn accept(&self, tcp: Wire) -> Result<Box<dyn TlsSession>, HandshakeFailure> {
        LAST_READ_ALERT.with(|a| a.set(None));
        match self.acceptor.accept(tcp) {
            Ok(stream) => Ok(Box::new(OpensslSession { stream })),
            Err(HandshakeError::Failure(mid)) => Err(classify(mid.error())),
            Err(HandshakeError::WouldBlock(mid)) => Err(HandshakeFailure {
                cause: Cause::Timeout,
                backend_code: Some(mid.error().to_string()),
            }),
            Err(HandshakeError::SetupFailure(stack)) => Err(HandshakeFailure {
                cause: Cause::Error {
                    message: stack.to_string(),
                },
                backend_code: None,
            }),
        }
    }
}

struct OpensslSession {
    stream: SslStream<Wire>,
}

impl TlsSession for OpensslSession {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HandshakeFailure> {
        LAST_READ_ALERT.with(|a| a.set(None));
        match self.stream.ssl_read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.code() == openssl::ssl::ErrorCode::ZERO_RETURN => Ok(0),
            Err(e) => Err(classify(&e)),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), HandshakeFailure> {
        self.stream
            .write_all(buf)
            .and_then(|_| self.stream.flush())
            .map_err(|e| HandshakeFailure {
                cause: io_cause(&e),
                backend_code: Some(e.to_string()),
            })
    }

    fn info(&self) -> SessionInfo {
        let ssl = self.stream.ssl();
        let cipher = ssl.current_cipher();
        let id = cipher.and_then(|c| {
            c.protocol_id()
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        });
        SessionInfo {
            version: Some(normalise_version(ssl.version_str())),
            cipher_suite_id: id,
            cipher_suite: id
                .and_then(cipher_suite_name)
                .map(str::to_owned)
                .or_else(|| cipher.and_then(|c| c.standard_name()).map(str::to_owned)),
            sni: ssl.servername(NameType::HOST_NAME).map(str::to_owned),
            alpn: ssl
                .selected_alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            resumed: Some(ssl.session_reused()),
        }
    }

    fn close(&mut self) {
        let _ = self.stream.shutdown();
    }
}
