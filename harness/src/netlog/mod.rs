//! Why Chromium opened each connection, read from its NetLog.
//!
//! The server sees *that* a handshake failed; the NetLog says *why the browser opened that
//! connection*. Each client socket is joined to the server's record by the address pair
//! (`TCP_CONNECT`'s `local_address` / `remote_address` against the record's client / local
//! address) within [`MAX_JOIN_DISTANCE_MS`], then followed along explicit links only — source
//! ids in `source_dependency` parameters and the fields the sources log about themselves —
//! to the request it was opened for. Nothing is inferred from event order or proximity; where
//! the links stop, the cause is `unknown` with the reason. Every cause carries the sources and
//! event types it rests on ([`Evidence`]).
//!
//! Two pools, two sets of links (both in Chromium 156):
//!
//! - **Socket pool** (the default): `SOCKET_ALIVE` names the socket's connect job; the job's
//!   `SOCKET_POOL_CONNECT_JOB_CREATED` names its group (`group_id`) and whether it is a
//!   `backup_job`; `TCP_CONNECT_JOB_CONNECTOR_CONNECT_START` with `connector: "fallback"` names
//!   a socket of the IPv6/IPv4 race. The pool creates a connect job only for requests waiting
//!   in that group, and each waiting request names the group itself
//!   (`TCP_CLIENT_SOCKET_POOL_REQUESTED_SOCKET` for a request, `…_REQUESTED_SOCKETS` for a
//!   preconnect) while its `SOCKET_POOL` / `SOCKET_POOL_CONNECTING_N_SOCKETS` is open. When
//!   every request waiting in the job's group at its creation is of one kind, that is the
//!   cause; a request's kind comes from its job controller (`HTTP_STREAM_JOB`'s dependency, or
//!   the controller's `HTTP_STREAM_REQUEST_STARTED_JOB`) and the controller's own
//!   `is_preconnect` and `allowed_bad_certs`. Otherwise the cause is `unknown`: the request the
//!   job or socket was handed to (`SOCKET_POOL_BOUND_TO_CONNECT_JOB`,
//!   `SOCKET_POOL_BOUND_TO_SOCKET`) is named in the reason, but it is not what opened the
//!   connection — the pool hands a finished job to whichever request waits.
//! - **HTTP stream pool** (`--enable-features=HappyEyeballsV3`): `SOCKET_ALIVE` names the
//!   stream attempt, `TCP_BASED_ATTEMPT_BOUND_TO_POOL` its attempt manager, and the manager
//!   logs every requester itself (`HTTP_STREAM_POOL_ATTEMPT_MANAGER_PRECONNECT` naming the
//!   preconnect's controller, `HTTP_STREAM_POOL_ATTEMPT_MANAGER_REQUEST_STREAM` naming the
//!   request's job, with its `allowed_bad_certs`). The manager does not log which requester an
//!   attempt was started for, so a cause exists only when every requester still waiting when
//!   the attempt began is of one kind.
//!
//! A connection that carried the user's decision is `restart-with-allowed-cert`; `preconnect`
//! and `first-attempt` carry none, so they fail on an untrusted certificate. The file is parsed
//! event by event, and a log cut short by a crashed browser is parsed as far as it goes and
//! reported as truncated.
//!
//! One step per module, so that the rule above is checked in one place: `events` turns the
//! bytes into typed events, `graph` keeps the sources and the links they log, and `classify`
//! follows those links from a socket and nothing else.

mod classify;
mod events;
mod graph;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

pub use model::ClientCause;
use serde::{Deserialize, Serialize};

use self::classify::classify;
use self::graph::Graph;

/// One NetLog event a cause rests on: the source that logged it and the event type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Evidence {
    /// The NetLog source id.
    pub source_id: i64,
    /// The source's type, e.g. `SSL_CONNECT_JOB`.
    pub source_type: String,
    /// The event type, e.g. `SOCKET_POOL_BOUND_TO_CONNECT_JOB`.
    pub event: String,
}

/// The farthest apart a socket's `TCP_CONNECT` end and the server's accept may be for the two
/// to be one connection. The accept follows the connect by the time the connection waits in
/// the kernel's accept queue (up to about 0.5 s seen with the one-at-a-time server); both
/// clocks are this machine's, so anything beyond a few seconds is a different connection on a
/// reused port.
pub const MAX_JOIN_DISTANCE_MS: i64 = 5_000;

/// How much earlier than the logged connect the server's accept may be: Chromium logs
/// `TCP_CONNECT`'s end when its network thread gets to it, which on this loaded 2-core machine
/// was up to 8 ms after the server had accepted. A reused client port is minutes apart.
const JOIN_CLOCK_SLACK_MS: i64 = 250;

/// One client TCP socket from the NetLog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSocket {
    /// NetLog source id of the socket (negative ids exist).
    pub source_id: i64,
    /// `TCP_CONNECT`'s `local_address`, e.g. `[::1]:39852`.
    pub local_address: String,
    /// `TCP_CONNECT`'s `remote_address`, e.g. `[::1]:44909`.
    pub remote_address: String,
    /// When TCP connected, ms since the Unix epoch.
    pub connected_at_ms: Option<i64>,
    /// Why it was opened.
    pub cause: ClientCause,
    /// For `unknown`: where the explicit links stop.
    pub unknown_reason: Option<String>,
    /// The sources and event types the cause rests on.
    pub evidence: Vec<Evidence>,
    /// Requests that went out on this socket after an earlier one (keep-alive reuse), by
    /// `SOCKET_POOL_REUSED_AN_EXISTING_SOCKET` or a handle with a reused `reuse_type`.
    pub reused_by: u32,
    /// The request URL, where known.
    pub url: Option<String>,
    /// The net error of the TLS handshake, e.g. -202 (`ERR_CERT_AUTHORITY_INVALID`).
    pub net_error: Option<i64>,
    /// The alert Chromium sent, `(level, description)`.
    pub alert_sent: Option<(u8, u8)>,
}

/// What a NetLog says about a trial.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetLogSummary {
    /// `clientInfo.version`.
    pub browser_version: Option<String>,
    /// `activeFieldTrialGroups`.
    pub field_trials: Vec<String>,
    /// The file ended before its closing bracket (the browser did not exit cleanly).
    pub truncated: bool,
    /// Events parsed.
    pub events: usize,
    /// Every client TCP socket with a local and a remote address.
    pub sockets: Vec<ClientSocket>,
    /// Sockets whose `TCP_CONNECT` began but never ended (closed before Chromium saw the
    /// connect complete): the kernel may have completed it, so the server saw a connection,
    /// but the log names no local port to join it by.
    #[serde(default)]
    pub unconnected: Vec<UnconnectedSocket>,
}

/// A socket that began to connect and was closed before its connect completed in Chromium.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnconnectedSocket {
    /// NetLog source id.
    pub source_id: i64,
    /// The first address it tried, e.g. `[::1]:44909`.
    pub remote_address: String,
    /// When `TCP_CONNECT` began, ms since the Unix epoch.
    pub started_at_ms: i64,
}

/// Says more about records `join` left unjoined when the log has sockets to the same server
/// that were closed before their connect completed (HappyEyeballsV3 cancels racing attempts
/// this way): such a socket names no port, so the record stays `unknown`, but the reason lists
/// the candidates instead of claiming the log has nothing.
pub fn explain_unjoined(
    joined: &mut BTreeMap<u64, Result<ClientSocket, String>>,
    records: &[model::ConnectionRecord],
    unconnected: &[UnconnectedSocket],
) {
    for r in records {
        let Some(Err(reason)) = joined.get_mut(&r.id) else {
            continue;
        };
        let accepted_ms = (r.accepted_at_us / 1000) as i64;
        let server = normalised(&r.local);
        let candidates: Vec<String> = unconnected
            .iter()
            .filter(|u| server.is_some() && normalised(&u.remote_address) == server)
            .filter(|u| {
                (-JOIN_CLOCK_SLACK_MS..=MAX_JOIN_DISTANCE_MS)
                    .contains(&(accepted_ms - u.started_at_ms))
            })
            .map(|u| u.source_id.to_string())
            .collect();
        if !candidates.is_empty() {
            *reason = format!(
                "{reason}; socket {} to {} began to connect in the join window and was closed \
                 before its connect completed, so the log names no port for it",
                candidates.join(", "),
                r.local
            );
        }
    }
}

/// A NetLog that cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetLogError {
    /// No `constants` / `events` structure.
    #[error("not a Chromium NetLog: {0}")]
    Format(String),
    /// I/O.
    #[error("cannot read the NetLog")]
    Io(#[from] std::io::Error),
}

/// Reads `path` (plain, or gzip'd as the run folder keeps it) and summarises it.
pub fn read(path: &Path) -> Result<NetLogSummary, NetLogError> {
    let bytes = std::fs::read(path)?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        // A kept log cut short (a full disk) still gives what it has, like a truncated one.
        let mut plain = Vec::new();
        let _ = std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(bytes.as_slice()),
            &mut plain,
        );
        return parse(&plain);
    }
    parse(&bytes)
}

/// Parses a NetLog (possibly truncated) and classifies every client socket.
pub fn parse(bytes: &[u8]) -> Result<NetLogSummary, NetLogError> {
    let events::Log {
        header,
        names,
        mut events,
    } = events::open(bytes)?;
    let graph = Graph::build(names, &mut events);
    let mut summary = NetLogSummary {
        browser_version: header.browser_version,
        field_trials: header.field_trials,
        truncated: events.truncated(),
        events: events.read(),
        ..Default::default()
    };
    for (id, s) in &graph.sockets {
        let (Some(local), Some(remote), true) = (&s.local_address, &s.remote_address, s.is_tcp)
        else {
            if let (Some((remote, started_at_ms)), None) = (&s.connect_started, &s.local_address) {
                summary.unconnected.push(UnconnectedSocket {
                    source_id: *id,
                    remote_address: remote.clone(),
                    started_at_ms: *started_at_ms,
                });
            }
            continue;
        };
        let found = classify(*id, s, &graph);
        summary.sockets.push(ClientSocket {
            source_id: *id,
            local_address: local.clone(),
            remote_address: remote.clone(),
            connected_at_ms: s.connected_at_ms,
            cause: found.cause,
            unknown_reason: found.unknown_reason,
            evidence: found.evidence,
            reused_by: s.bound.iter().filter(|(_, reused)| *reused).count() as u32
                + s.reused_handles,
            url: found.url,
            net_error: s.net_error,
            alert_sent: s.alert_sent,
        });
    }
    Ok(summary)
}

/// The same address however it is written: `[::ffff:127.0.0.1]:1` is `127.0.0.1:1`.
fn normalised(address: &str) -> Option<std::net::SocketAddr> {
    let a: std::net::SocketAddr = address.parse().ok()?;
    Some(match a {
        std::net::SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => std::net::SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    })
}

/// Joins server records to client sockets: a socket belongs to a record when its local address
/// is the record's client address, its remote address the record's local address, and its
/// connect time at most [`MAX_JOIN_DISTANCE_MS`] before the accept. Each socket is used for at
/// most one record and each record gets at most one socket (the nearest in time, when a port
/// was reused). A record without a socket gets the reason.
pub fn join(
    records: &[model::ConnectionRecord],
    sockets: &[ClientSocket],
) -> BTreeMap<u64, Result<ClientSocket, String>> {
    let mut used: HashSet<i64> = HashSet::new();
    let mut out = BTreeMap::new();
    let mut by_time: Vec<&model::ConnectionRecord> = records.iter().collect();
    by_time.sort_by_key(|r| (r.accepted_at_us, r.id));
    for r in by_time {
        let accepted_ms = (r.accepted_at_us / 1000) as i64;
        let (client, server) = (normalised(&r.client), normalised(&r.local));
        let same_pair: Vec<&ClientSocket> = sockets
            .iter()
            .filter(|s| {
                client.is_some()
                    && normalised(&s.local_address) == client
                    && normalised(&s.remote_address) == server
            })
            .collect();
        let best = same_pair
            .iter()
            .filter(|s| !used.contains(&s.source_id))
            .filter_map(|s| {
                let lead = accepted_ms - s.connected_at_ms?;
                (-JOIN_CLOCK_SLACK_MS..=MAX_JOIN_DISTANCE_MS)
                    .contains(&lead)
                    .then_some((lead, *s))
            })
            .min_by_key(|(lead, _)| *lead);
        let joined = match best {
            Some((_, s)) => {
                used.insert(s.source_id);
                Ok(s.clone())
            }
            None if same_pair.is_empty() => Err(format!(
                "no socket in the NetLog connected from {} to {}",
                r.client, r.local
            )),
            None => Err(format!(
                "the NetLog's sockets from {} to {} ({}) connected more than {MAX_JOIN_DISTANCE_MS} \
                 ms before the accept, after it, or belong to another record",
                r.client,
                r.local,
                same_pair
                    .iter()
                    .map(|s| s.source_id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        out.insert(r.id, joined);
    }
    out
}
