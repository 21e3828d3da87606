//! A recording relay: a TCP relay on loopback that every connection of a trial passes through
//! on its way to a server the harness does not read from inside (a server program, a device,
//! or — to prove the relay changes nothing — a built-in backend). It writes one record per
//! connection in the servers' vocabulary from what the TLS record layer shows ([`tls`]);
//! what it could only infer is marked so in the record.
//!
//! How the browser reaches it without changing what is measured: for a server the harness
//! starts, the relay takes the port the URL names and the server sits on another one, so the
//! browser runs exactly as it would against the server itself (same flags, same URL, same
//! Host, SNI and name check), and the relay listens on both loopback families, each forwarded
//! to the same family, so the address the browser picks reaches the same kind of address.
//! A server the harness does not start keeps its address; the browser is then steered to the
//! relay ([`super::Steering`]).

pub mod accuracy;
mod tls;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use model::{Cause, ConnectionRecord, Outcome, RelayObservation};

use super::Unrecorded;

pub(crate) use self::tls::{Direction, StreamEnd, Transcript};

/// How long the relay waits for the target to accept its connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a relay listener forwards to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Route {
    /// The loopback address the relay listens on (port 0: any free one, the same for all).
    pub listen: SocketAddr,
    /// Where its connections go.
    pub upstream: SocketAddr,
}

/// A relay serving one trial.
pub(crate) struct RunningRelay {
    port: u16,
    shared: Arc<Shared>,
    /// Every connection's bytes as the relay saw them, for the trial's `capture.pcapng`.
    recorder: Arc<capture::Recorder>,
    listeners: Vec<(TcpListener, Option<JoinHandle<()>>)>,
}

struct Shared {
    stopping: AtomicBool,
    next_id: AtomicU64,
    last_accept: Mutex<Option<Instant>>,
    conns: Mutex<Vec<Conn>>,
    /// Sockets to shut down when the relay stops, by connection id.
    open: Mutex<HashMap<u64, (TcpStream, Option<TcpStream>)>>,
}

struct Conn {
    record: ConnectionRecord,
    transcript: Arc<Mutex<Transcript>>,
    pumps: Vec<JoinHandle<()>>,
    /// Why the relay could not reach the target for this connection.
    upstream_error: Option<String>,
}

impl RunningRelay {
    /// Starts listening on every route's address, on one port for all.
    pub(crate) fn start(routes: &[Route]) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            last_accept: Mutex::new(None),
            conns: Mutex::new(Vec::new()),
            open: Mutex::new(HashMap::new()),
        });
        let mut listeners: Vec<(TcpListener, Route)> = Vec::new();
        let mut port = 0;
        'retry: for _ in 0..20 {
            listeners.clear();
            port = 0;
            for route in routes {
                let mut addr = route.listen;
                if port != 0 {
                    addr.set_port(port);
                }
                match TcpListener::bind(addr) {
                    Ok(l) => {
                        port = l.local_addr()?.port();
                        listeners.push((l, *route));
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::AddrInUse
                            && route.listen.port() == 0 =>
                    {
                        continue 'retry;
                    }
                    Err(e) => return Err(e),
                }
            }
            break;
        }
        let mut relay = Self {
            port,
            shared: shared.clone(),
            recorder: Arc::default(),
            listeners: Vec::new(),
        };
        for (listener, route) in listeners {
            let accept = listener.try_clone()?;
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name("relay-accept".into())
                .spawn(move || accept_loop(accept, route.upstream, shared))?;
            relay.listeners.push((listener, Some(handle)));
        }
        Ok(relay)
    }

    /// The port the relay listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Where the relay records the bytes of every connection (complete once stopped). It holds
    /// no keys: the servers behind a relay cannot give theirs, and the browser's own key log
    /// is added by the trial where the browser writes one.
    pub(crate) fn recorder(&self) -> Arc<capture::Recorder> {
        self.recorder.clone()
    }

    /// When the last connection arrived.
    pub(crate) fn last_accept(&self) -> Option<Instant> {
        *lock(&self.shared.last_accept)
    }

    /// Ends every connection still open, waits for the pumps, and returns one record per
    /// connection; or, when some connection reached no server, the records (those saying so)
    /// and why.
    pub(crate) fn stop(mut self) -> Result<Vec<ConnectionRecord>, Unrecorded> {
        self.shutdown();
        let conns = std::mem::take(&mut *lock(&self.shared.conns));
        let mut records = Vec::new();
        let mut unreachable = Vec::new();
        for mut c in conns {
            for p in c.pumps.drain(..) {
                let _ = p.join();
            }
            let t = lock(&c.transcript).clone();
            self.recorder.push(conversation(&c.record, &t));
            let v = tls::classify(&t);
            let mut r = c.record;
            r.closed_at_us = [t.client_end.as_ref(), t.server_end.as_ref()]
                .into_iter()
                .flatten()
                .map(|(_, at)| *at)
                .max()
                .unwrap_or(r.accepted_at_us);
            r.outcome = match c.upstream_error.take() {
                Some(why) => {
                    let outcome = Outcome::Rejected {
                        cause: Cause::Error {
                            message: format!("relay: the target could not be reached: {why}"),
                        },
                    };
                    unreachable.push(format!(
                        "connection {}: the relay could not reach the target: {why}",
                        r.id
                    ));
                    outcome
                }
                None => v.outcome,
            };
            r.session = v.session;
            let relay = r.relay.get_or_insert_with(RelayObservation::default);
            relay.inferred = v.inferred;
            relay.client_bytes = v.client_bytes;
            relay.server_bytes = v.server_bytes;
            records.push(r);
        }
        records.sort_by_key(|r| r.id);
        Unrecorded::unless_any(unreachable, records)
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for (listener, _) in &self.listeners {
            // SAFETY: the fd is owned by `listener`, which outlives this call. shutdown(2) on a
            // listening socket wakes a blocked accept(2) on Linux.
            unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
        }
        for (_, handle) in &mut self.listeners {
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
        for (_, (client, upstream)) in lock(&self.shared.open).drain() {
            let _ = client.shutdown(Shutdown::Both);
            if let Some(u) = upstream {
                let _ = u.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for RunningRelay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One relayed connection as the browser's side of the relay saw it: the browser's address and
/// the relay's (where the browser connected), the bytes each way, and how each side ended.
fn conversation(record: &ConnectionRecord, t: &Transcript) -> capture::Conversation {
    use capture::{Segment, Side};
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut c = capture::Conversation::new(
        record.id,
        record.client.parse().unwrap_or(unspecified),
        record.local.parse().unwrap_or(unspecified),
        record.accepted_at_us,
    );
    let mut events: Vec<(u64, Side, Segment)> = t
        .chunks
        .iter()
        .map(|(dir, at, bytes)| {
            let side = match dir {
                Direction::FromClient => Side::Client,
                Direction::FromServer => Side::Server,
            };
            (*at, side, Segment::Data(bytes.clone()))
        })
        .collect();
    for (side, end) in [(Side::Client, &t.client_end), (Side::Server, &t.server_end)] {
        match end {
            Some((StreamEnd::Reset, at)) => events.push((*at, side, Segment::Reset)),
            Some((StreamEnd::Eof, at)) => events.push((*at, side, Segment::Fin)),
            // Ended by the relay itself, or unreadable: nothing the peer sent.
            _ => {}
        }
    }
    events.sort_by_key(|(at, ..)| *at);
    for (at, side, segment) in events {
        c.push(at, side, segment);
    }
    c
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let (client, peer) = match listener.accept() {
            Ok(x) => x,
            Err(_) if shared.stopping.load(Ordering::SeqCst) => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("relay accept failed: {e}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let accepted_at_us = crate::runner::now_us();
        *lock(&shared.last_accept) = Some(Instant::now());
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let _ = client.set_nodelay(true);
        let local = client
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let record = ConnectionRecord {
            id,
            accepted_at_us,
            closed_at_us: 0,
            client: peer.to_string(),
            client_port: peer.port(),
            local,
            outcome: Outcome::Idle,
            session: model::SessionInfo::default(),
            backend_code: None,
            queue_wait_ms: None,
            queue_wait_unknown: Some("a relay does not read the accept queue".into()),
            relay: Some(RelayObservation::default()),
        };
        let transcript = Arc::new(Mutex::new(Transcript::default()));
        let mut conn = Conn {
            record,
            transcript: transcript.clone(),
            pumps: Vec::new(),
            upstream_error: None,
        };
        match TcpStream::connect_timeout(&upstream, UPSTREAM_CONNECT_TIMEOUT) {
            Err(e) => {
                conn.upstream_error = Some(format!("connecting to {upstream}: {e}"));
                let mut t = lock(&transcript);
                t.client_end = Some((StreamEnd::Stopped, crate::runner::now_us()));
                drop(t);
                set_linger_zero(&client);
                drop(client);
            }
            Ok(server) => {
                let _ = server.set_nodelay(true);
                if let Some(r) = conn.record.relay.as_mut() {
                    r.upstream_port = server.local_addr().ok().map(|a| a.port());
                }
                match pumps(&client, &server, &transcript) {
                    Ok(p) => conn.pumps = p,
                    Err(e) => conn.upstream_error = Some(format!("relay thread: {e}")),
                }
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    lock(&shared.open).insert(id, (c, Some(s)));
                }
            }
        }
        lock(&shared.conns).push(conn);
    }
}

/// One thread per direction, each copying and recording until its side ends.
fn pumps(
    client: &TcpStream,
    server: &TcpStream,
    transcript: &Arc<Mutex<Transcript>>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let spawn = |from: TcpStream, to: TcpStream, dir: Direction| {
        let t = transcript.clone();
        std::thread::Builder::new()
            .name("relay-pump".into())
            .spawn(move || pump(from, to, dir, &t))
    };
    Ok(vec![
        spawn(
            client.try_clone()?,
            server.try_clone()?,
            Direction::FromClient,
        )?,
        spawn(
            server.try_clone()?,
            client.try_clone()?,
            Direction::FromServer,
        )?,
    ])
}

fn pump(mut from: TcpStream, mut to: TcpStream, dir: Direction, t: &Mutex<Transcript>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut forwarding = true;
    let end = loop {
        match from.read(&mut buf) {
            Ok(0) => break StreamEnd::Eof,
            Ok(n) => {
                // Recorded before it is forwarded, so the transcript's order is the order in
                // which the relay received bytes from either side.
                lock(t)
                    .chunks
                    .push((dir, crate::runner::now_us(), buf[..n].to_vec()));
                // The other side may be gone; what this side still sends is recorded anyway.
                if forwarding && to.write_all(&buf[..n]).is_err() {
                    forwarding = false;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break StreamEnd::Reset,
            Err(e) => break StreamEnd::Error(e.to_string()),
        }
    };
    let at = crate::runner::now_us();
    {
        let mut t = lock(t);
        let slot = match dir {
            Direction::FromClient => &mut t.client_end,
            Direction::FromServer => &mut t.server_end,
        };
        if slot.is_none() {
            *slot = Some((end.clone(), at));
        }
    }
    // Pass the end on as it came: a reset as a reset, a close as a half-close, so the other
    // side sees what it would have seen without the relay.
    match end {
        StreamEnd::Reset => reset(&to),
        _ => {
            let _ = to.shutdown(Shutdown::Write);
        }
    }
}

/// Resets `s` now (RST), whatever other handles to the socket exist: `connect(2)` with
/// `AF_UNSPEC` disconnects a TCP socket, and Linux sends RST when doing so.
fn reset(s: &TcpStream) {
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC is a valid argument of its own size.
    unsafe {
        let mut addr: libc::sockaddr = std::mem::zeroed();
        addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        libc::connect(
            s.as_raw_fd(),
            &raw const addr,
            size_of::<libc::sockaddr>() as libc::socklen_t,
        );
    }
}

/// Makes the close of `s`'s last handle send RST instead of FIN.
fn set_linger_zero(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is owned by `s`; the option value is a valid `linger` of the given size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
