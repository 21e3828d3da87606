//! The loopback listeners and the connection handling shared by every backend: a worker thread
//! per connection (`parallel`), or one thread that serves one connection at a time across both
//! listeners (`one-at-a-time`, like Mbed TLS's `ssl_server`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::http::{ResponseStyle, serve_as};
use crate::log::ConnectionLog;
use crate::tap::{Tap, Wire};
use crate::{Acceptor, BackendError, BackendName, Concurrency, ConnectionPolicy, ServerSpec};
use model::{Cause, ConnectionRecord, Ending, Outcome, ServerFault, SessionInfo};

/// A server accepting on 127.0.0.1 and (where the machine has IPv6) [::1], on one port.
///
/// Dropping it stops it; [`RunningServer::stop`] also returns the final log.
pub struct RunningServer {
    backend: BackendName,
    port: u16,
    addrs: Vec<SocketAddr>,
    log: Arc<ConnectionLog>,
    shared: Arc<Shared>,
    /// Each listener with its accept thread (`parallel`; `None` for `one-at-a-time`).
    listeners: Vec<(TcpListener, Option<JoinHandle<()>>)>,
    /// The one thread of a `one-at-a-time` server, serving both listeners.
    serial: Option<JoinHandle<()>>,
    watchdog: Option<JoinHandle<()>>,
    concurrency: Concurrency,
    capture: Option<Arc<capture::Recorder>>,
}

/// A listener's accept queue, as the kernel reports it (`TCP_INFO` on the listening socket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenQueue {
    /// The listener's address.
    pub addr: SocketAddr,
    /// Established connections waiting to be accepted.
    pub waiting: u32,
    /// The backlog `listen(2)` was given; Linux queues up to this + 1.
    pub backlog: u32,
}

/// What every connection's handling shares.
#[derive(Clone)]
struct Context {
    log: Arc<ConnectionLog>,
    shared: Arc<Shared>,
    acceptor: Arc<dyn Acceptor>,
    spec: Arc<ServerSpec>,
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
    /// Set just before the server itself cuts the connection, so that the capture does not
    /// take the end of reading that follows for the client's FIN or reset.
    cut: Arc<AtomicBool>,
}

impl OpenConnection {
    /// Ends the connection from the server's side (both directions).
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
    }
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
    if spec.concurrency == Concurrency::OneAtATime && spec.connection == ConnectionPolicy::KeepAlive
    {
        return Err(BackendError::Spec(
            "a one-at-a-time server answers HTTP/1.0 and closes after every response, like ssl_server; it cannot keep connections alive (use connection close)".into(),
        ));
    }
    let listeners = bind_loopback_pair(spec.port)?;
    if let Some(backlog) = spec.backlog() {
        for listener in &listeners {
            // Linux lets listen(2) on a listening socket change its backlog; nobody knows the
            // port yet, so no connection can have queued under the old one.
            let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
            // SAFETY: the fd is owned by `listener`, which outlives this call.
            if unsafe { libc::listen(listener.as_raw_fd(), backlog) } != 0 {
                return Err(BackendError::Bind(std::io::Error::last_os_error()));
            }
        }
    }
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
    let concurrency = spec.concurrency;
    let capture = spec.capture.clone();
    let ctx = Context {
        log: log.clone(),
        shared: shared.clone(),
        acceptor,
        spec: Arc::new(spec),
    };
    // Built before any thread starts: if a later thread cannot start, dropping it stops the
    // ones that did.
    let mut server = RunningServer {
        backend,
        port,
        addrs: Vec::new(),
        log,
        shared: shared.clone(),
        listeners: Vec::new(),
        serial: None,
        watchdog: None,
        concurrency,
        capture,
    };
    server.watchdog = Some({
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("{backend}-watchdog"))
            .spawn(move || watchdog(&shared))
            .map_err(BackendError::Bind)?
    });
    let mut serial_side = Vec::new();
    for listener in listeners {
        server
            .addrs
            .push(listener.local_addr().map_err(BackendError::Bind)?);
        let accept_side = listener.try_clone().map_err(BackendError::Bind)?;
        let handle = match concurrency {
            Concurrency::Parallel => {
                let ctx = ctx.clone();
                Some(
                    std::thread::Builder::new()
                        .name(format!("{backend}-accept"))
                        .spawn(move || accept_loop(accept_side, ctx))
                        .map_err(BackendError::Bind)?,
                )
            }
            Concurrency::OneAtATime => {
                serial_side.push(accept_side);
                None
            }
        };
        server.listeners.push((listener, handle));
    }
    if concurrency == Concurrency::OneAtATime {
        server.serial = Some(
            std::thread::Builder::new()
                .name(format!("{backend}-serial"))
                .spawn(move || one_at_a_time_loop(serial_side, ctx))
                .map_err(BackendError::Bind)?,
        );
    }
    tracing::debug!(%backend, port, %concurrency, "server listening");
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
                conn.cut();
            }
        }
        std::thread::park_timeout(WATCHDOG_TICK);
    }
}

/// How long stopping a `one-at-a-time` server waits for its accept queue to empty and its
/// connection in hand to end.
const DRAIN_QUEUE_FOR: Duration = Duration::from_secs(2);

/// How long `stop` waits for the workers' records after it cut their connections.
const WAIT_FOR_RECORDS: Duration = Duration::from_secs(5);

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

/// `parallel`: accepts on one listener and gives every connection its own worker thread.
fn accept_loop(listener: TcpListener, ctx: Context) {
    loop {
        let (tcp, peer) = match listener.accept() {
            Ok(x) => x,
            Err(_) if ctx.shared.stopping.load(Ordering::SeqCst) => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE and friends: back off rather than spin; the client sees a refused
                // or queued connection, which we cannot record because we never held it.
                tracing::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let accepted = Accepted::note(tcp, peer, &ctx);
        let fault = accepted.record();
        let worker = {
            let ctx = ctx.clone();
            std::thread::Builder::new()
                .name(format!("conn-{}", fault.id))
                .spawn(move || accepted.serve(&ctx))
        };
        match worker {
            Ok(handle) => {
                let mut workers = ctx.shared.workers.lock().unwrap_or_else(|e| e.into_inner());
                workers.retain(|h| !h.is_finished());
                workers.push(handle);
            }
            Err(e) => {
                ctx.shared.open().remove(&fault.id);
                ctx.log.push(ConnectionRecord {
                    closed_at_us: now_us(),
                    local: String::new(),
                    outcome: Outcome::Rejected {
                        cause: Cause::ServerFault {
                            fault: ServerFault::NoWorkerThread,
                            message: e.to_string(),
                        },
                    },
                    ..fault
                });
            }
        }
    }
}

/// How long a `one-at-a-time` server waits in poll(2) before looking at `stopping` again.
const POLL_TICK_MS: libc::c_int = 100;

/// `one-at-a-time`: one thread polls both listeners, accepts one connection, serves it to its
/// close, and only then accepts the next. Connections opened meanwhile wait in the kernel's
/// accept queue. When both listeners have one waiting, they take turns.
fn one_at_a_time_loop(listeners: Vec<TcpListener>, ctx: Context) {
    for l in &listeners {
        // poll(2) says when to accept; a connection the client gave up on between poll and
        // accept must not block the loop.
        let _ = l.set_nonblocking(true);
    }
    let mut turn = 0;
    while !ctx.shared.stopping.load(Ordering::SeqCst) {
        let mut fds: Vec<libc::pollfd> = listeners
            .iter()
            .map(|l| libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
        let ready =
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, POLL_TICK_MS) };
        if ready <= 0 {
            // A timeout, or EINTR: look at `stopping` again.
            continue;
        }
        for k in 0..listeners.len() {
            let i = (turn + k) % listeners.len();
            if fds[i].revents == 0 {
                continue;
            }
            match listeners[i].accept() {
                Ok((tcp, peer)) => {
                    turn = i + 1;
                    let _ = tcp.set_nonblocking(false);
                    Accepted::note(tcp, peer, &ctx).serve(&ctx);
                    break;
                }
                Err(_) if ctx.shared.stopping.load(Ordering::SeqCst) => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// A connection just accepted: counted in the log, registered with the watchdog, its queue
/// wait read.
struct Accepted {
    tcp: TcpStream,
    peer: SocketAddr,
    id: u64,
    accepted_at_us: u64,
    local: String,
    queue_wait: Result<u32, String>,
    expired: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
}

impl Accepted {
    fn note(tcp: TcpStream, peer: SocketAddr, ctx: &Context) -> Self {
        // First, before this socket sends anything: the figure is the time since it last did.
        let queue_wait = queue_wait_ms(&tcp);
        let accepted_at_us = now_us();
        let id = ctx.log.note_accept();
        let local = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let expired = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        if let Ok(stream) = tcp.try_clone() {
            ctx.shared.open().insert(
                id,
                OpenConnection {
                    stream,
                    handshake_deadline: Some(Instant::now() + ctx.spec.handshake_timeout),
                    expired: expired.clone(),
                    cut: cut.clone(),
                },
            );
        }
        Self {
            tcp,
            peer,
            id,
            accepted_at_us,
            local,
            queue_wait,
            expired,
            cut,
        }
    }

    /// The record as far as the accept knows it.
    fn record(&self) -> ConnectionRecord {
        let (queue_wait_ms, queue_wait_unknown) = match &self.queue_wait {
            Ok(ms) => (Some(*ms), None),
            Err(why) => (None, Some(why.clone())),
        };
        ConnectionRecord {
            id: self.id,
            accepted_at_us: self.accepted_at_us,
            closed_at_us: 0,
            client: self.peer.to_string(),
            client_port: self.peer.port(),
            local: self.local.clone(),
            outcome: Outcome::Idle,
            session: SessionInfo::default(),
            backend_code: None,
            queue_wait_ms,
            queue_wait_unknown,
            relay: None,
        }
    }

    /// Handshake, requests, close; then the one record. A panicking backend still yields one.
    fn serve(self, ctx: &Context) {
        let base = self.record();
        let Self {
            tcp,
            id,
            expired,
            cut,
            ..
        } = self;
        let handshaken = || {
            if let Some(conn) = ctx.shared.open().get_mut(&id) {
                conn.handshake_deadline = None;
            }
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handle_connection(
                tcp,
                &*ctx.acceptor,
                &ctx.spec,
                &expired,
                &cut,
                handshaken,
                base.clone(),
            )
        }));
        let mut record = result.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "backend panicked".into());
            ConnectionRecord {
                outcome: Outcome::Rejected {
                    cause: Cause::ServerFault {
                        fault: ServerFault::BackendPanicked,
                        message,
                    },
                },
                ..base
            }
        });
        record.closed_at_us = now_us();
        ctx.shared.open().remove(&id);
        ctx.log.push(record);
    }
}

/// `TCP_INFO` of a socket.
fn tcp_info(fd: RawFd) -> std::io::Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain integers; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes and `len` is a valid socklen_t.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Every field we read lies before tcpi_pmtu; an older kernel may fill less than the struct.
    if (len as usize) < std::mem::offset_of!(libc::tcp_info, tcpi_pmtu) {
        return Err(std::io::Error::other(format!(
            "the kernel's TCP_INFO has {len} bytes, too few for tcpi_last_data_sent"
        )));
    }
    Ok(info)
}

/// How long an accepted socket waited in the accept queue, in ms: `tcpi_last_data_sent`, the
/// time since it last sent data — for a socket that has sent nothing yet, since the kernel
/// created it when the client's TCP handshake completed. `Err` says why it is unknown.
fn queue_wait_ms(tcp: &TcpStream) -> Result<u32, String> {
    tcp_info(tcp.as_raw_fd())
        .map(|info| info.tcpi_last_data_sent)
        .map_err(|e| format!("getsockopt(TCP_INFO) on the accepted socket failed: {e}"))
}

fn handle_connection(
    tcp: TcpStream,
    acceptor: &dyn Acceptor,
    spec: &ServerSpec,
    expired: &AtomicBool,
    cut: &Arc<AtomicBool>,
    handshaken: impl FnOnce(),
    mut record: ConnectionRecord,
) -> ConnectionRecord {
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(spec.handshake_timeout));
    let _ = tcp.set_write_timeout(Some(spec.handshake_timeout));
    let control = tcp.try_clone().ok();
    let tap = spec.capture.as_ref().and_then(|recorder| {
        let conversation = capture::Conversation::new(
            record.id,
            tcp.peer_addr().ok()?,
            tcp.local_addr().ok()?,
            // The client's connect completed when the connection entered the accept queue.
            record
                .accepted_at_us
                .saturating_sub(u64::from(record.queue_wait_ms.unwrap_or(0)) * 1000),
        );
        Some(Tap::new(recorder.clone(), conversation, cut.clone()))
    });
    let wire = match &tap {
        Some(tap) => Wire::tapped(tcp, tap.clone()),
        None => Wire::new(tcp),
    };
    // However the connection ends, the capture gets it with the server's own close.
    let _close_in_capture = CloseInCapture {
        tcp: tap
            .is_some()
            .then(|| control.as_ref().and_then(|c| c.try_clone().ok()))
            .flatten(),
        tap,
    };
    let mut session = match acceptor.accept(wire) {
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
    let style = match spec.concurrency {
        Concurrency::Parallel => ResponseStyle::Http11(spec.connection),
        Concurrency::OneAtATime => ResponseStyle::Http10,
    };
    let served = serve_as(session.as_mut(), style, spec.request_timeout);
    if let Some(c) = control {
        let _ = c.shutdown(Shutdown::Both);
    }
    (record.outcome, record.backend_code) = Outcome::classify(Ending::Served {
        requests: served.requests,
        failure: served.failure,
    });
    record
}

/// Hands a connection's recording to the capture when the connection's handling ends (also
/// by a panic), with the server's FIN or reset as it closes the socket.
struct CloseInCapture {
    tap: Option<Arc<Tap>>,
    tcp: Option<TcpStream>,
}

impl Drop for CloseInCapture {
    fn drop(&mut self) {
        if let Some(tap) = &self.tap {
            tap.close(self.tcp.as_ref());
        }
    }
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

    /// Where the bytes of every connection and the TLS key log go, if the spec asked for it;
    /// complete once the server has stopped.
    pub fn capture(&self) -> Option<&Arc<capture::Recorder>> {
        self.capture.as_ref()
    }

    /// Parallel or one at a time.
    pub fn concurrency(&self) -> Concurrency {
        self.concurrency
    }

    /// Each listener's accept queue now, as the kernel reports it.
    pub fn listen_queues(&self) -> std::io::Result<Vec<ListenQueue>> {
        self.listeners
            .iter()
            .zip(&self.addrs)
            .map(|((listener, _), addr)| {
                // On a listening socket the kernel reports the queue in these two fields.
                let info = tcp_info(listener.as_raw_fd())?;
                Ok(ListenQueue {
                    addr: *addr,
                    waiting: info.tcpi_unacked,
                    backlog: info.tcpi_sacked,
                })
            })
            .collect()
    }

    /// Connections waiting in the accept queues now (0 when the kernel does not say).
    pub fn queued(&self) -> u32 {
        self.listen_queues()
            .map(|q| q.iter().map(|q| q.waiting).sum())
            .unwrap_or(0)
    }

    /// Stops accepting, ends open connections, waits for their records, and returns them all;
    /// an error (still holding every record made) names any accepted connection left without
    /// one.
    pub fn stop(mut self) -> Result<Vec<ConnectionRecord>, crate::UnrecordedConnections> {
        self.shutdown();
        let records = self.log.records();
        let ids = self.log.unrecorded();
        if ids.is_empty() {
            Ok(records)
        } else {
            Err(crate::UnrecordedConnections {
                ids,
                waited: WAIT_FOR_RECORDS,
                records,
            })
        }
    }

    fn shutdown(&mut self) {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        if self.concurrency == Concurrency::OneAtATime {
            // Like ssl_server, serve what is already queued before stopping (closing the
            // listener would drop it unrecorded), and let the connection in hand end by itself:
            // a client that gave up on a queued connection shows as the reset the server
            // finally sees, not as our own cut. Bounded: what is still open then is cut below.
            let deadline = Instant::now() + DRAIN_QUEUE_FOR;
            while (self.queued() > 0 || self.log.open() > 0) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
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
        if let Some(serial) = self.serial.take() {
            // The serving thread may be inside a connection: end it (and any it accepted just
            // before `stopping`) until the thread sees `stopping`.
            while !serial.is_finished() {
                for conn in self.shared.open().values() {
                    conn.cut();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = serial.join();
        }
        if let Some(w) = self.watchdog.take() {
            w.thread().unpark();
            let _ = w.join();
        }
        for (_, conn) in self.shared.open().drain() {
            conn.cut();
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
        // What is still missing after this is reported by `stop`, by id.
        self.log.wait_all_recorded(WAIT_FOR_RECORDS);
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
