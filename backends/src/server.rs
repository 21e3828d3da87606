//! The loopback listener and per-connection workers shared by every backend.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::http::serve;
use crate::log::ConnectionLog;
use crate::record::{
    Cause, ConnectionRecord, Ending, Outcome, SERVER_FAULT_NO_WORKER, SERVER_FAULT_PANIC,
    SessionInfo,
};
use crate::{Acceptor, BackendError, BackendName, ServerSpec};

/// A server accepting on 127.0.0.1 and (where the machine has IPv6) [::1], on one port.
///
/// Dropping it stops it; [`RunningServer::stop`] also returns the final log.
pub struct RunningServer {
    backend: BackendName,
    port: u16,
    addrs: Vec<SocketAddr>,
    log: Arc<ConnectionLog>,
    shared: Arc<Shared>,
    listeners: Vec<(TcpListener, Option<JoinHandle<()>>)>,
    watchdog: Option<JoinHandle<()>>,
}

struct Shared {
    stopping: AtomicBool,
    /// Open connections, so that stopping (or the watchdog) can end them and every record
    /// gets written.
    open: Mutex<HashMap<u64, OpenConnection>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, OpenConnection>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct OpenConnection {
    stream: TcpStream,
    /// Until the handshake finishes: when the watchdog ends it. The socket's read timeout
    /// bounds each read only, and a client trickling one byte per read would otherwise hold
    /// a worker for as long as it likes inside the TLS library's handshake loop.
    handshake_deadline: Option<Instant>,
    expired: Arc<AtomicBool>,
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Starts `acceptor` behind loopback listeners.
pub fn start(
    backend: BackendName,
    acceptor: Arc<dyn Acceptor>,
    spec: ServerSpec,
) -> Result<RunningServer, BackendError> {
    let listeners = bind_loopback_pair(spec.port)?;
    let port = listeners[0]
        .local_addr()
        .map_err(BackendError::Bind)?
        .port();
    let log = Arc::new(ConnectionLog::default());
    let shared = Arc::new(Shared {
        stopping: AtomicBool::new(false),
        open: Mutex::new(HashMap::new()),
        workers: Mutex::new(Vec::new()),
    });
    let spec = Arc::new(spec);
    // Built before any thread starts: if a later thread cannot start, dropping it stops the
    // ones that did.
    let mut server = RunningServer {
        backend,
        port,
        addrs: Vec::new(),
        log: log.clone(),
        shared: shared.clone(),
        listeners: Vec::new(),
        watchdog: None,
    };
    server.watchdog = Some({
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("{backend}-watchdog"))
            .spawn(move || watchdog(&shared))
            .map_err(BackendError::Bind)?
    });
    for listener in listeners {
        server
            .addrs
            .push(listener.local_addr().map_err(BackendError::Bind)?);
        let accept_side = listener.try_clone().map_err(BackendError::Bind)?;
        let (log, shared, acceptor, spec) =
            (log.clone(), shared.clone(), acceptor.clone(), spec.clone());
        let handle = std::thread::Builder::new()
            .name(format!("{backend}-accept"))
            .spawn(move || accept_loop(accept_side, log, shared, acceptor, spec))
            .map_err(BackendError::Bind)?;
        server.listeners.push((listener, Some(handle)));
    }
    tracing::debug!(%backend, port, "server listening");
    Ok(server)
}

/// Ends handshakes that outlive their deadline; their records say `timeout`.
fn watchdog(shared: &Shared) {
    while !shared.stopping.load(Ordering::SeqCst) {
        let now = Instant::now();
        for conn in shared.open().values_mut() {
            if conn.handshake_deadline.is_some_and(|d| d <= now) {
                conn.handshake_deadline = None;
                conn.expired.store(true, Ordering::SeqCst);
                let _ = conn.stream.shutdown(Shutdown::Both);
            }
        }
        std::thread::park_timeout(WATCHDOG_TICK);
    }
}

/// How late past its deadline a handshake may be ended.
const WATCHDOG_TICK: Duration = Duration::from_millis(50);

/// Binds 127.0.0.1, then [::1] on the same port: `port`, or a free one (retried when only
/// the v6 half is taken).
fn bind_loopback_pair(port: Option<u16>) -> Result<Vec<TcpListener>, BackendError> {
    let in_use = |addr: SocketAddr| {
        move |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                BackendError::PortInUse { addr }
            } else {
                BackendError::Bind(e)
            }
        }
    };
    let mut last_err = None;
    for _ in 0..20 {
        let v4_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port.unwrap_or(0)));
        let v4 = TcpListener::bind(v4_addr).map_err(in_use(v4_addr))?;
        let chosen = v4.local_addr().map_err(BackendError::Bind)?.port();
        let v6_addr = SocketAddr::from((Ipv6Addr::LOCALHOST, chosen));
        match TcpListener::bind(v6_addr) {
            Ok(v6) => return Ok(vec![v4, v6]),
            // No IPv6 on this machine: browsers then use 127.0.0.1 only.
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => return Ok(vec![v4]),
            Err(e) if port.is_some() => return Err(in_use(v6_addr)(e)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(BackendError::Bind(last_err.unwrap_or_else(|| {
        std::io::Error::other("no free loopback port")
    })))
}

fn accept_loop(
    listener: TcpListener,
    log: Arc<ConnectionLog>,
    shared: Arc<Shared>,
    acceptor: Arc<dyn Acceptor>,
    spec: Arc<ServerSpec>,
) {
    loop {
        let (tcp, peer) = match listener.accept() {
            Ok(x) => x,
            Err(_) if shared.stopping.load(Ordering::SeqCst) => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE and friends: back off rather than spin; the client sees a refused
                // or queued connection, which we cannot record because we never held it.
                tracing::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let accepted_at_us = now_us();
        let id = log.note_accept();
        let local = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let expired = Arc::new(AtomicBool::new(false));
        if let Ok(stream) = tcp.try_clone() {
            shared.open().insert(
                id,
                OpenConnection {
                    stream,
                    handshake_deadline: Some(Instant::now() + spec.handshake_timeout),
                    expired: expired.clone(),
                },
            );
        }
        let (log2, shared2, acceptor, spec) =
            (log.clone(), shared.clone(), acceptor.clone(), spec.clone());
        let worker = std::thread::Builder::new()
            .name(format!("conn-{id}"))
            .spawn(move || {
                let base = ConnectionRecord {
                    id,
                    accepted_at_us,
                    closed_at_us: 0,
                    client: peer.to_string(),
                    client_port: peer.port(),
                    local,
                    outcome: Outcome::Idle,
                    session: SessionInfo::default(),
                    backend_code: None,
                };
                // A panicking backend must still yield a record (DESIGN: never silence).
                let handshaken = || {
                    if let Some(conn) = shared2.open().get_mut(&id) {
                        conn.handshake_deadline = None;
                    }
                };
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle_connection(tcp, &*acceptor, &spec, &expired, handshaken, base.clone())
                }));
                let mut record = result.unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "backend panicked".into());
                    ConnectionRecord {
                        outcome: Outcome::Rejected {
                            cause: Cause::Error {
                                message: format!("{SERVER_FAULT_PANIC}{message}"),
                            },
                        },
                        ..base
                    }
                });
                record.closed_at_us = now_us();
                shared2.open().remove(&id);
                log2.push(record);
            });
        match worker {
            Ok(handle) => {
                let mut workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
                workers.retain(|h| !h.is_finished());
                workers.push(handle);
            }
            Err(e) => {
                shared.open().remove(&id);
                log.push(ConnectionRecord {
                    id,
                    accepted_at_us,
                    closed_at_us: now_us(),
                    client: peer.to_string(),
                    client_port: peer.port(),
                    local: String::new(),
                    outcome: Outcome::Rejected {
                        cause: Cause::Error {
                            message: format!("{SERVER_FAULT_NO_WORKER}{e}"),
                        },
                    },
                    session: SessionInfo::default(),
                    backend_code: None,
                });
            }
        }
    }
}

fn handle_connection(
    tcp: TcpStream,
    acceptor: &dyn Acceptor,
    spec: &ServerSpec,
    expired: &AtomicBool,
    handshaken: impl FnOnce(),
    mut record: ConnectionRecord,
) -> ConnectionRecord {
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(spec.handshake_timeout));
    let _ = tcp.set_write_timeout(Some(spec.handshake_timeout));
    let control = tcp.try_clone().ok();
    let mut session = match acceptor.accept(tcp) {
        Ok(s) => s,
        Err(failure) => {
            let deadline = expired
                .load(Ordering::SeqCst)
                .then_some(spec.handshake_timeout);
            (record.outcome, record.backend_code) =
                Outcome::classify(Ending::HandshakeFailed { failure, deadline });
            return record;
        }
    };
    handshaken();
    record.session = session.info();
    if let Some(c) = &control {
        let _ = c.set_read_timeout(Some(spec.request_timeout));
    }
    let served = serve(session.as_mut(), spec.connection, spec.request_timeout);
    if let Some(c) = control {
        let _ = c.shutdown(Shutdown::Both);
    }
    (record.outcome, record.backend_code) = Outcome::classify(Ending::Served {
        requests: served.requests,
        failure: served.failure,
    });
    record
}

impl RunningServer {
    /// Which backend serves.
    pub fn backend(&self) -> BackendName {
        self.backend
    }

    /// The shared port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound addresses.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `https://HOST:PORT/`.
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/", self.port)
    }

    /// The live connection log.
    pub fn log(&self) -> &Arc<ConnectionLog> {
        &self.log
    }

    /// Stops accepting, ends open connections, waits for their records, and returns them all.
    pub fn stop(mut self) -> Vec<ConnectionRecord> {
        self.shutdown();
        self.log.records()
    }

    fn shutdown(&mut self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        for (listener, handle) in &mut self.listeners {
            // shutdown(2) on a listening socket wakes a blocked accept(2) on Linux.
            // SAFETY: the fd is owned by `listener`, which outlives this call.
            unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
        if let Some(w) = self.watchdog.take() {
            w.thread().unpark();
            let _ = w.join();
        }
        for (_, conn) in self.shared.open().drain() {
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
        let workers = std::mem::take(
            &mut *self
                .shared
                .workers
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for w in workers {
            let _ = w.join();
        }
        if !self.log.wait_all_recorded(Duration::from_secs(5)) {
            tracing::error!("connections without a record after stop; this is a bug");
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
