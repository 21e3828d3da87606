//! The loopback listener and per-connection workers shared by every backend.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::serve;
use crate::log::ConnectionLog;
use crate::record::{Cause, ConnectionRecord, Outcome, SessionInfo};
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
}

struct Shared {
    stopping: AtomicBool,
    /// Clones of open sockets, so that stopping can end them and every record gets written.
    open: Mutex<HashMap<u64, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
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
    let listeners = bind_loopback_pair().map_err(BackendError::Bind)?;
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
    let mut addrs = Vec::new();
    let mut running = Vec::new();
    for listener in listeners {
        addrs.push(listener.local_addr().map_err(BackendError::Bind)?);
        let accept_side = listener.try_clone().map_err(BackendError::Bind)?;
        let (log, shared, acceptor, spec) =
            (log.clone(), shared.clone(), acceptor.clone(), spec.clone());
        let handle = std::thread::Builder::new()
            .name(format!("{backend}-accept"))
            .spawn(move || accept_loop(accept_side, log, shared, acceptor, spec))
            .map_err(BackendError::Bind)?;
        running.push((listener, Some(handle)));
    }
    tracing::debug!(%backend, port, "server listening");
    Ok(RunningServer {
        backend,
        port,
        addrs,
        log,
        shared,
        listeners: running,
    })
}

/// Binds 127.0.0.1:0, then [::1] on the same port; retries when the v6 port is taken.
fn bind_loopback_pair() -> std::io::Result<Vec<TcpListener>> {
    let mut last_err = None;
    for _ in 0..20 {
        let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = v4.local_addr()?.port();
        match TcpListener::bind((Ipv6Addr::LOCALHOST, port)) {
            Ok(v6) => return Ok(vec![v4, v6]),
            // No IPv6 on this machine: browsers then use 127.0.0.1 only.
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => return Ok(vec![v4]),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free loopback port")))
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
        if let Ok(clone) = tcp.try_clone() {
            shared
                .open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, clone);
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
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle_connection(tcp, &*acceptor, &spec, base.clone())
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
                                message: format!("panic: {message}"),
                            },
                        },
                        ..base
                    }
                });
                record.closed_at_us = now_us();
                shared2
                    .open
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                log2.push(record);
            });
        match worker {
            Ok(handle) => {
                let mut workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
                workers.retain(|h| !h.is_finished());
                workers.push(handle);
            }
            Err(e) => {
                shared
                    .open
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                log.push(ConnectionRecord {
                    id,
                    accepted_at_us,
                    closed_at_us: now_us(),
                    client: peer.to_string(),
                    client_port: peer.port(),
                    local: String::new(),
                    outcome: Outcome::Rejected {
                        cause: Cause::Error {
                            message: format!("no worker thread: {e}"),
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
    mut record: ConnectionRecord,
) -> ConnectionRecord {
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(spec.handshake_timeout));
    let _ = tcp.set_write_timeout(Some(spec.handshake_timeout));
    let control = tcp.try_clone().ok();
    let mut session = match acceptor.accept(tcp) {
        Ok(s) => s,
        Err(failure) => {
            record.outcome = Outcome::Rejected {
                cause: failure.cause,
            };
            record.backend_code = failure.backend_code;
            return record;
        }
    };
    record.session = session.info();
    if let Some(c) = &control {
        let _ = c.set_read_timeout(Some(spec.request_timeout));
    }
    let served = serve(session.as_mut(), spec.connection, spec.request_timeout);
    if let Some(c) = control {
        let _ = c.shutdown(Shutdown::Both);
    }
    record.outcome = match (served.requests, served.failure) {
        (0, Some(f))
            if matches!(f.cause, Cause::Alert { .. } | Cause::Reset)
                && !f.cause.is_close_notify() =>
        {
            record.backend_code = f.backend_code;
            Outcome::RejectedAfterHandshake { cause: f.cause }
        }
        (0, other) => {
            // Closed (eof, close_notify) or timed out without a request.
            record.backend_code = other.and_then(|f| f.backend_code.or(Some(f.cause.to_string())));
            Outcome::Idle
        }
        (requests, other) => {
            record.backend_code = other.and_then(|f| f.backend_code);
            Outcome::Established { requests }
        }
    };
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
        for (_, stream) in self
            .shared
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            let _ = stream.shutdown(Shutdown::Both);
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
