//! Real TLS servers behind one trait, and the connection log that is the project's source of truth.
//!
//! A [`TlsBackend`] turns a [`ServerSpec`] into an [`Acceptor`] — the library's configured server
//! context — and [`start`] wraps any acceptor in the same loopback listener, the same HTTP/1.1
//! responder and the same [`ConnectionLog`]. Only the handshake, record I/O and the reading of
//! *why* a connection failed differ between libraries; that is exactly what the trait hides.

pub mod http;
mod iana;
pub mod log;
// A build without Mbed TLS 3.6 gets a stand-in that says why (build.rs).
#[cfg_attr(hm_mbedtls_missing, path = "mbedtls_missing.rs")]
pub mod mbedtls_backend;
pub mod openssl_backend;
pub mod rustls_backend;
mod server;
mod tap;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use model::{Cause, ConnectionRecord, HandshakeFailure, SessionInfo, TlsVersion};
use serde::{Deserialize, Serialize};

pub use crate::log::ConnectionLog;
pub use crate::server::{ListenQueue, RunningServer, start};
pub use crate::tap::Wire;

/// A TLS server library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendName {
    /// rustls (ring provider).
    Rustls,
    /// The system OpenSSL through the `openssl` crate.
    Openssl,
    /// Mbed TLS 3.6.x through a C shim.
    Mbedtls,
}

impl BackendName {
    /// Every backend, in report order.
    pub const ALL: [Self; 3] = [Self::Rustls, Self::Openssl, Self::Mbedtls];

    /// The name used on the command line, in scenarios and in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rustls => "rustls",
            Self::Openssl => "openssl",
            Self::Mbedtls => "mbedtls",
        }
    }

    /// The backend implementation for this name.
    pub fn backend(self) -> Box<dyn TlsBackend> {
        match self {
            Self::Rustls => Box::new(rustls_backend::RustlsBackend),
            Self::Openssl => Box::new(openssl_backend::OpensslBackend),
            Self::Mbedtls => Box::new(mbedtls_backend::MbedtlsBackend),
        }
    }
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which versions a server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsPin {
    /// Only this version; a client that cannot speak it is rejected.
    Only(TlsVersion),
    /// TLS 1.2 and 1.3, the library's usual server.
    Both,
}

impl TlsPin {
    /// The lowest accepted version.
    pub fn min(self) -> TlsVersion {
        match self {
            Self::Only(v) => v,
            Self::Both => TlsVersion::Tls12,
        }
    }
    /// The highest accepted version.
    pub fn max(self) -> TlsVersion {
        match self {
            Self::Only(v) => v,
            Self::Both => TlsVersion::Tls13,
        }
    }
}

/// What the server does after answering a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionPolicy {
    /// Keep the connection open for further requests (HTTP/1.1 default).
    KeepAlive,
    /// `Connection: close` and close after every response, like Mbed TLS's `ssl_server` and
    /// `openssl s_server -www`: every later request needs a new handshake.
    Close,
}

impl ConnectionPolicy {
    /// `keep-alive` or `close`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeepAlive => "keep-alive",
            Self::Close => "close",
        }
    }
}

/// How a server takes its connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Concurrency {
    /// Every accepted connection gets its own thread at once; the accept queue stays empty.
    #[default]
    Parallel,
    /// Like Mbed TLS's `programs/ssl/ssl_server.c` and many embedded servers: accept one
    /// connection, do the handshake, read one request, answer HTTP/1.0 with the body ending at
    /// close, send close_notify, close, and only then accept the next. Connections opened
    /// meanwhile wait in the kernel's accept queue (bounded by the listen backlog). One thread
    /// serves both listeners (127.0.0.1 and [::1]).
    OneAtATime,
}

impl Concurrency {
    /// Both, the default first.
    pub const ALL: [Self; 2] = [Self::Parallel, Self::OneAtATime];

    /// `parallel` or `one-at-a-time`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parallel => "parallel",
            Self::OneAtATime => "one-at-a-time",
        }
    }

    /// The listen backlog used when the spec does not set one: the standard library's for
    /// `parallel` (`None`: left as bound), Mbed TLS's `MBEDTLS_NET_LISTEN_BACKLOG` (10) for
    /// `one-at-a-time`.
    pub fn default_backlog(self) -> Option<u32> {
        match self {
            Self::Parallel => None,
            Self::OneAtATime => Some(MBEDTLS_NET_LISTEN_BACKLOG),
        }
    }
}

impl fmt::Display for Concurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The backlog `mbedtls_net_bind` passes to `listen(2)` (`library/net_sockets.c`), and so the
/// one `ssl_server` runs with.
pub const MBEDTLS_NET_LISTEN_BACKLOG: u32 = 10;

/// Everything a backend needs to start a server.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// Leaf certificate first, then intermediates/CA, PEM.
    pub chain_pem: String,
    /// The leaf's private key, PEM.
    pub key_pem: String,
    /// Accepted TLS versions.
    pub tls: TlsPin,
    /// Keep-alive or close after each response. A `one-at-a-time` server answers HTTP/1.0 and
    /// always closes, so it needs [`ConnectionPolicy::Close`].
    pub connection: ConnectionPolicy,
    /// Serve connections in parallel, or one at a time like `ssl_server`.
    pub concurrency: Concurrency,
    /// The `listen(2)` backlog of each listener; `None`: [`Concurrency::default_backlog`]. Linux
    /// queues up to backlog + 1 fully established connections per listener.
    pub listen_backlog: Option<u32>,
    /// Offer session resumption (tickets, session cache).
    pub resumption: bool,
    /// How long a handshake may take before the connection is recorded as `timeout`.
    pub handshake_timeout: Duration,
    /// How long a connection may wait for (the rest of) a request.
    pub request_timeout: Duration,
    /// The loopback port to listen on; `None` takes a free one. A fixed port that is taken
    /// fails the start with [`BackendError::PortInUse`].
    pub port: Option<u16>,
    /// Where every connection's bytes (both directions, as the server saw them) and the TLS
    /// key log go, for the trial's capture file; `None` records nothing. Only what a server
    /// holds in memory until it stops, so a long-running server leaves it off.
    pub capture: Option<Arc<capture::Recorder>>,
}

impl ServerSpec {
    /// A spec with the usual timeouts.
    pub fn new(
        chain_pem: String,
        key_pem: String,
        tls: TlsPin,
        connection: ConnectionPolicy,
    ) -> Self {
        Self {
            chain_pem,
            key_pem,
            tls,
            connection,
            concurrency: Concurrency::Parallel,
            listen_backlog: None,
            resumption: false,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            port: None,
            capture: None,
        }
    }
}

impl ServerSpec {
    /// The backlog each listener gets: the spec's, or the concurrency's default.
    pub fn backlog(&self) -> Option<u32> {
        self.listen_backlog
            .or_else(|| self.concurrency.default_backlog())
    }
}

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend cannot do what the spec asks (e.g. a TLS version it was built without).
    #[error("{backend} does not support {what}")]
    Unsupported {
        /// The backend.
        backend: BackendName,
        /// What it cannot do.
        what: String,
    },
    /// The library refused the certificate, key or settings.
    #[error("{backend} rejected the server configuration: {message}")]
    Config {
        /// The backend.
        backend: BackendName,
        /// The library's words.
        message: String,
    },
    /// This build has no such library (see [`TlsBackend::unavailable`]).
    #[error("{backend} is unavailable: {reason}")]
    Unavailable {
        /// The backend.
        backend: BackendName,
        /// Why, and how to fix it.
        reason: String,
    },
    /// No loopback port could be bound.
    #[error("failed to bind a loopback listener")]
    Bind(#[source] std::io::Error),
    /// The fixed port asked for is taken by another socket.
    #[error(
        "{addr} is already in use by another program; choose another port or let the server pick one"
    )]
    PortInUse {
        /// The address that could not be bound.
        addr: std::net::SocketAddr,
    },
    /// The settings contradict each other (e.g. keep-alive on a one-at-a-time server).
    #[error("invalid server settings: {0}")]
    Spec(String),
}

/// A server stopped with connections it accepted but never recorded: their fate is unknown, so
/// the trial they belong to cannot be counted. The records it did make are kept.
#[derive(Debug, thiserror::Error)]
#[error(
    "connection{} {} accepted but never recorded when the server stopped (a worker did not finish within {} s)",
    if .ids.len() == 1 { "" } else { "s" },
    .ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
    .waited.as_secs()
)]
pub struct UnrecordedConnections {
    /// The ids the log handed out at accept and never received a record for.
    pub ids: Vec<u64>,
    /// How long the stop waited for them.
    pub waited: Duration,
    /// Every record that was made.
    pub records: Vec<ConnectionRecord>,
}

/// One TLS server library. Implementations are stateless; all state lives in the acceptor.
pub trait TlsBackend: Send + Sync {
    /// Which library this is.
    fn name(&self) -> BackendName;
    /// The linked library's own version string, read at run time (e.g. `Mbed TLS 3.6.6`).
    fn library_version(&self) -> String;
    /// Why this build cannot run the backend at all (its library was not found), if so.
    fn unavailable(&self) -> Option<String> {
        None
    }
    /// Whether a server can be pinned to `tls`; `Err` carries the reason.
    fn supports(&self, tls: TlsVersion) -> Result<(), String>;
    /// Builds the library's server context for `spec`.
    fn acceptor(&self, spec: &ServerSpec) -> Result<Arc<dyn Acceptor>, BackendError>;
    /// Starts a server on loopback (127.0.0.1 and ::1, one port) and returns it running.
    fn start(&self, spec: ServerSpec) -> Result<RunningServer, BackendError> {
        let acceptor = self.acceptor(&spec)?;
        start(self.name(), acceptor, spec)
    }
}

/// A configured server context that runs the server side of handshakes.
pub trait Acceptor: Send + Sync {
    /// Runs one handshake over `wire`, blocking (the socket's read timeout bounds it). All
    /// I/O goes through `wire` (or is reported to its tap), so that the capture sees it.
    ///
    /// On failure, the [`Cause`] says why and `backend_code` keeps the library's own code.
    fn accept(&self, wire: Wire) -> Result<Box<dyn TlsSession>, HandshakeFailure>;
}

/// An established TLS connection.
pub trait TlsSession: Send {
    /// Reads application data. `Ok(0)` is an orderly close (close_notify).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HandshakeFailure>;
    /// Writes all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> Result<(), HandshakeFailure>;
    /// What was negotiated.
    fn info(&self) -> SessionInfo;
    /// Sends close_notify, best effort.
    fn close(&mut self);
}

/// Classifies an OS-level I/O error the same way for every backend.
pub(crate) fn io_cause(err: &std::io::Error) -> Cause {
    use std::io::ErrorKind::*;
    match err.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe => Cause::Reset,
        UnexpectedEof => Cause::Eof,
        WouldBlock | TimedOut => Cause::Timeout,
        _ => Cause::Error {
            message: err.to_string(),
        },
    }
}
