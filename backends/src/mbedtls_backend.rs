//! Mbed TLS 3.6.x through the C shim in `csrc/mbedtls_shim.c`, linked statically.
//!
//! How Mbed TLS shows a rejected certificate (background.md): `MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE`
//! (-0x7780) with the alert read back by the shim; with a plaintext TLS 1.3 alert, -0x7180
//! (invalid MAC) with the alert read from the record header; with TLS 1.2 often a reset
//! (-0x0050, `MBEDTLS_ERR_NET_CONN_RESET`).

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_uchar, c_void};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use crate::iana::{cipher_suite_name, normalise_version};
use crate::tap::Tap;
use crate::{
    Acceptor, BackendError, BackendName, HandshakeFailure, ServerSpec, TlsBackend, TlsSession,
    TlsVersion, Wire,
};
use model::{Cause, SessionInfo};

#[repr(C)]
struct HmServer {
    _opaque: [u8; 0],
}
#[repr(C)]
struct HmConn {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn hm_version(buf: *mut c_char, len: usize);
    fn hm_strerror(code: c_int, buf: *mut c_char, len: usize);
    fn hm_server_new(
        chain_pem: *const c_char,
        key_pem: *const c_char,
        min_minor: c_int,
        max_minor: c_int,
        resumption: c_int,
        err: *mut c_int,
    ) -> *mut HmServer;
    fn hm_server_free(s: *mut HmServer);
    fn hm_conn_new(
        s: *mut HmServer,
        fd: c_int,
        tap_io: Option<TapIoFn>,
        tap_key: Option<TapKeyFn>,
        tap: *const c_void,
        err: *mut c_int,
    ) -> *mut HmConn;
    fn hm_conn_free(c: *mut HmConn);
    fn hm_conn_handshake(c: *mut HmConn) -> c_int;
    fn hm_conn_alert(c: *mut HmConn, ret: c_int, level: *mut c_uchar, desc: *mut c_uchar) -> c_int;
    fn hm_conn_read(c: *mut HmConn, buf: *mut c_uchar, len: usize) -> c_int;
    fn hm_conn_write(c: *mut HmConn, buf: *const c_uchar, len: usize) -> c_int;
    fn hm_conn_close_notify(c: *mut HmConn);
    fn hm_conn_version(c: *mut HmConn) -> *const c_char;
    fn hm_conn_suite_id(c: *mut HmConn) -> c_int;
    fn hm_conn_suite_name(c: *mut HmConn) -> *const c_char;
    fn hm_conn_sni(c: *mut HmConn) -> *const c_char;
    fn hm_conn_alpn(c: *mut HmConn) -> *const c_char;
}

type TapIoFn =
    unsafe extern "C" fn(tap: *const c_void, direction: c_int, buf: *const u8, n: c_long);
type TapKeyFn = unsafe extern "C" fn(tap: *const c_void, line: *const c_char);

/// The shim's recv/send, reported to the connection's tap (`hm_tap_io_fn` in the shim).
unsafe extern "C" fn tap_io(tap: *const c_void, direction: c_int, buf: *const u8, n: c_long) {
    // SAFETY: `tap` is the `Arc<Tap>` the session holds for as long as the connection lives.
    let tap = unsafe { &*tap.cast::<Tap>() };
    if n < 0 {
        let err = std::io::Error::from_raw_os_error(-n as i32);
        tap.failed(&err);
        return;
    }
    let bytes = if n == 0 {
        &[][..]
    } else {
        // SAFETY: the shim passes the buffer recv/send just used, valid for `n` bytes.
        unsafe { std::slice::from_raw_parts(buf, n as usize) }
    };
    match direction {
        0 => tap.received(bytes, false),
        _ => tap.sent(bytes),
    }
}

/// One key log line from the shim's export-keys callback (`hm_tap_key_fn`).
unsafe extern "C" fn tap_key(tap: *const c_void, line: *const c_char) {
    // SAFETY: as in `tap_io`; the shim passes a NUL-terminated line.
    let (tap, line) = unsafe { (&*tap.cast::<Tap>(), CStr::from_ptr(line)) };
    tap.key_log_line(&line.to_string_lossy());
}

// Error codes from mbedtls/ssl.h and mbedtls/net_sockets.h (stable across 3.x).
const ERR_NET_CONN_RESET: c_int = -0x0050;
const ERR_SSL_CONN_EOF: c_int = -0x7280;
const ERR_SSL_PEER_CLOSE_NOTIFY: c_int = -0x7880;
const ERR_SSL_TIMEOUT: c_int = -0x6800;

/// The Mbed TLS backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct MbedtlsBackend;

/// `-0x7780 SSL - A fatal alert message was received from our peer`.
fn describe(code: c_int) -> String {
    let mut buf = [0 as c_char; 200];
    // SAFETY: the buffer is writable for its length; strerror always NUL-terminates.
    unsafe { hm_strerror(code, buf.as_mut_ptr(), buf.len()) };
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    let sign = if code < 0 { "-" } else { "" };
    format!("{sign}0x{:04X} {text}", code.unsigned_abs())
}

fn opt_str(p: *const c_char) -> Option<String> {
    // SAFETY: the shim returns NULL or a NUL-terminated string owned by the connection.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

impl TlsBackend for MbedtlsBackend {
    fn name(&self) -> BackendName {
        BackendName::Mbedtls
    }

    fn library_version(&self) -> String {
        let mut buf = [0 as c_char; 64];
        // SAFETY: as in `describe`.
        unsafe { hm_version(buf.as_mut_ptr(), buf.len()) };
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    fn supports(&self, _tls: TlsVersion) -> Result<(), String> {
        Ok(())
    }

    fn acceptor(&self, spec: &ServerSpec) -> Result<Arc<dyn Acceptor>, BackendError> {
        let cfg = |message: String| BackendError::Config {
            backend: BackendName::Mbedtls,
            message,
        };
        let chain = CString::new(spec.chain_pem.as_str()).map_err(|e| cfg(e.to_string()))?;
        let key = CString::new(spec.key_pem.as_str()).map_err(|e| cfg(e.to_string()))?;
        let minor = |v: TlsVersion| match v {
            TlsVersion::Tls12 => 3,
            TlsVersion::Tls13 => 4,
        };
        let mut err = 0;
        // SAFETY: both strings are NUL-terminated and outlive the call; the shim copies them.
        let server = unsafe {
            hm_server_new(
                chain.as_ptr(),
                key.as_ptr(),
                minor(spec.tls.min()),
                minor(spec.tls.max()),
                spec.resumption.into(),
                &mut err,
            )
        };
        if server.is_null() {
            return Err(cfg(describe(err)));
        }
        Ok(Arc::new(MbedtlsAcceptor {
            server: Arc::new(ServerHandle(server)),
        }))
    }
}

struct ServerHandle(*mut HmServer);
// SAFETY: after setup the ssl_config is only read; the RNG and ticket keys it points to are
// guarded by Mbed TLS's own mutexes (MBEDTLS_THREADING_PTHREAD is on in Debian's build).
unsafe impl Send for ServerHandle {}
unsafe impl Sync for ServerHandle {}
impl Drop for ServerHandle {
    fn drop(&mut self) {
        // SAFETY: every connection holds an Arc to this handle, so none outlives it.
        unsafe { hm_server_free(self.0) }
    }
}

struct MbedtlsAcceptor {
    server: Arc<ServerHandle>,
}

struct MbedtlsSession {
    conn: *mut HmConn,
    // Field order matters: the connection must be freed before the socket closes, before the
    // tap it reports to and before the server config it points into.
    _tcp: TcpStream,
    _tap: Option<Arc<Tap>>,
    _server: Arc<ServerHandle>,
}
// SAFETY: a session is used by one thread at a time (it moves into its worker).
unsafe impl Send for MbedtlsSession {}

impl Drop for MbedtlsSession {
    fn drop(&mut self) {
        // SAFETY: conn came from hm_conn_new and is freed once.
        unsafe { hm_conn_free(self.conn) }
    }
}

impl MbedtlsSession {
    fn failure(&self, ret: c_int) -> HandshakeFailure {
        let (mut level, mut desc) = (0u8, 0u8);
        // SAFETY: conn is live; the out-pointers are valid.
        let alert = unsafe { hm_conn_alert(self.conn, ret, &mut level, &mut desc) } == 1;
        let cause = if alert {
            Cause::alert(level, desc)
        } else {
            match ret {
                ERR_NET_CONN_RESET => Cause::Reset,
                ERR_SSL_CONN_EOF => Cause::Eof,
                ERR_SSL_TIMEOUT => Cause::Timeout,
                _ => Cause::Error {
                    message: describe(ret),
                },
            }
        };
        HandshakeFailure {
            cause,
            backend_code: Some(describe(ret)),
        }
    }
}

impl Acceptor for MbedtlsAcceptor {
    fn accept(&self, wire: Wire) -> Result<Box<dyn TlsSession>, HandshakeFailure> {
        let (tcp, tap) = wire.into_parts();
        let (io, key, tap_ptr): (Option<TapIoFn>, Option<TapKeyFn>, *const c_void) = match &tap {
            Some(t) => (Some(tap_io), Some(tap_key), Arc::as_ptr(t).cast()),
            None => (None, None, std::ptr::null()),
        };
        let mut err = 0;
        // SAFETY: the server handle is live; the fd and the tap stay alive for the session's
        // lifetime (both are fields of the session, dropped after the connection is freed).
        let conn =
            unsafe { hm_conn_new(self.server.0, tcp.as_raw_fd(), io, key, tap_ptr, &mut err) };
        if conn.is_null() {
            return Err(HandshakeFailure {
                cause: Cause::Error {
                    message: describe(err),
                },
                backend_code: Some(describe(err)),
            });
        }
        let session = MbedtlsSession {
            conn,
            _tcp: tcp,
            _tap: tap,
            _server: self.server.clone(),
        };
        // SAFETY: conn is live.
        let ret = unsafe { hm_conn_handshake(conn) };
        if ret != 0 {
            return Err(session.failure(ret));
        }
        Ok(Box::new(session))
    }
}

impl TlsSession for MbedtlsSession {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HandshakeFailure> {
        // SAFETY: conn is live; buf is writable for its length.
        let ret = unsafe { hm_conn_read(self.conn, buf.as_mut_ptr(), buf.len()) };
        match ret {
            n if n >= 0 => Ok(n as usize),
            ERR_SSL_PEER_CLOSE_NOTIFY => Ok(0),
            err => Err(self.failure(err)),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), HandshakeFailure> {
        // SAFETY: conn is live; buf is readable for its length.
        match unsafe { hm_conn_write(self.conn, buf.as_ptr(), buf.len()) } {
            0 => Ok(()),
            err => Err(self.failure(err)),
        }
    }

    fn info(&self) -> SessionInfo {
        // SAFETY: conn is live and its handshake completed.
        unsafe {
            let id = u16::try_from(hm_conn_suite_id(self.conn))
                .ok()
                .filter(|&id| id != 0);
            SessionInfo {
                version: opt_str(hm_conn_version(self.conn)).map(|v| normalise_version(&v)),
                cipher_suite_id: id,
                cipher_suite: id
                    .and_then(cipher_suite_name)
                    .map(str::to_owned)
                    .or_else(|| opt_str(hm_conn_suite_name(self.conn))),
                sni: opt_str(hm_conn_sni(self.conn)),
                alpn: opt_str(hm_conn_alpn(self.conn)),
                // Mbed TLS has no public server-side getter for this.
                resumed: None,
            }
        }
    }

    fn close(&mut self) {
        // SAFETY: conn is live.
        unsafe { hm_conn_close_notify(self.conn) }
    }
}
