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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

pub use model::ClientCause;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

#[derive(Deserialize)]
struct RawSource {
    id: i64,
    #[serde(rename = "type")]
    kind: u32,
}

#[derive(Deserialize)]
struct RawEvent {
    phase: u8,
    source: RawSource,
    time: Option<String>,
    #[serde(rename = "type")]
    kind: u32,
    params: Option<Value>,
}

const PHASE_BEGIN: u8 = 1;
const PHASE_END: u8 = 2;

/// What kind of request a requester is, from its own fields or event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RequesterKind {
    Preconnect,
    FirstAttempt,
    Restart,
}

impl RequesterKind {
    fn cause(self) -> ClientCause {
        match self {
            Self::Preconnect => ClientCause::Preconnect,
            Self::FirstAttempt => ClientCause::FirstAttempt,
            Self::Restart => ClientCause::RestartWithAllowedCert,
        }
    }
}

#[derive(Default)]
struct SocketState {
    /// `SOCKET_ALIVE`'s dependency: the connect job or stream attempt that made the socket.
    parent: Option<i64>,
    local_address: Option<String>,
    remote_address: Option<String>,
    connected_at_ms: Option<i64>,
    /// `TCP_CONNECT` began: the address it tried first, and when.
    connect_started: Option<(String, i64)>,
    net_error: Option<i64>,
    alert_sent: Option<(u8, u8)>,
    /// Stream jobs bound to it, and whether each took it as an existing (reused) socket.
    bound: Vec<(i64, bool)>,
    /// HTTP stream pool handles with a reused `reuse_type`.
    reused_handles: u32,
    is_tcp: bool,
}

#[derive(Default)]
struct ConnectJobState {
    source_type: u32,
    backup: bool,
    /// Stream jobs waiting in the job's group when it was created (`SOCKET_POOL_CONNECT_JOB_CREATED`).
    waiting_at_creation: Vec<i64>,
    /// Sockets this job started as the IPv6/IPv4 fallback connector.
    fallback_sockets: HashSet<i64>,
    /// Sockets this job started after `SSL_CONNECT_JOB_RESTART_WITH_ECH_CONFIG_LIST`.
    ech_sockets: HashSet<i64>,
    ech_restarted: bool,
    /// The first stream job the job was handed to.
    bound_to: Option<i64>,
}

#[derive(Default)]
struct StreamJobState {
    controller: Option<i64>,
    /// The group of its last `TCP_CLIENT_SOCKET_POOL_REQUESTED_SOCKET(S)`, and whether plural
    /// (only a preconnect asks for several sockets).
    requested: Option<(String, bool)>,
    /// Its `SOCKET_POOL` / `SOCKET_POOL_CONNECTING_N_SOCKETS` is open in this group.
    waiting_in: Option<String>,
    /// `SOCKET_POOL_REUSED_AN_EXISTING_SOCKET` since its last `SOCKET_POOL` began.
    reused: bool,
}

struct Controller {
    is_preconnect: bool,
    allowed_bad_certs: bool,
    url: Option<String>,
}

/// A stream attempt of the HTTP stream pool.
#[derive(Default)]
struct AttemptState {
    source_type: u32,
    began_at: usize,
    manager: Option<i64>,
}

/// One requester of an HTTP stream pool attempt manager.
struct PoolRequester {
    /// The source that names it: the preconnect's controller or the request's pool job.
    source: i64,
    kind: RequesterKind,
    event: u32,
    registered_at: usize,
}

fn dependency(params: &Option<Value>) -> Option<i64> {
    params
        .as_ref()?
        .get("source_dependency")?
        .get("id")?
        .as_i64()
}

fn param_str<'a>(params: &'a Option<Value>, key: &str) -> Option<&'a str> {
    params.as_ref()?.get(key)?.as_str()
}

fn param_bool(params: &Option<Value>, key: &str) -> bool {
    params
        .as_ref()
        .and_then(|p| p.get(key))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn nonempty_array(params: &Option<Value>, key: &str) -> bool {
    params
        .as_ref()
        .and_then(|p| p.get(key))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
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

/// The names of a NetLog's numeric event and source types.
struct Names {
    events: HashMap<String, u32>,
    event_names: HashMap<u32, String>,
    source_names: HashMap<u32, String>,
    sources: HashMap<String, u32>,
}

impl Names {
    fn ev(&self, name: &str) -> u32 {
        self.events.get(name).copied().unwrap_or(u32::MAX)
    }
    fn src(&self, name: &str) -> u32 {
        self.sources.get(name).copied().unwrap_or(u32::MAX)
    }
    fn evidence(&self, source_id: i64, source_type: u32, event: u32) -> Evidence {
        Evidence {
            source_id,
            source_type: self
                .source_names
                .get(&source_type)
                .cloned()
                .unwrap_or_else(|| source_type.to_string()),
            event: self
                .event_names
                .get(&event)
                .cloned()
                .unwrap_or_else(|| event.to_string()),
        }
    }
}

/// Parses a NetLog (possibly truncated) and classifies every client socket.
pub fn parse(bytes: &[u8]) -> Result<NetLogSummary, NetLogError> {
    let events_at = find(bytes, b"\"events\"")
        .ok_or_else(|| NetLogError::Format("no \"events\" array".into()))?;
    // Everything before `"events"` is `{"constants": {...},` — close it and parse it alone.
    let mut head = bytes[..events_at].to_vec();
    while head
        .last()
        .is_some_and(|b| b.is_ascii_whitespace() || *b == b',')
    {
        head.pop();
    }
    head.push(b'}');
    let head: Value = serde_json::from_slice(&head)
        .map_err(|e| NetLogError::Format(format!("constants: {e}")))?;
    let constants = head
        .get("constants")
        .ok_or_else(|| NetLogError::Format("no constants".into()))?;
    let ids = |table: &str| -> HashMap<String, u32> {
        constants
            .get(table)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), u32::try_from(v.as_u64()?).ok()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let events = ids("logEventTypes");
    let sources = ids("logSourceType");
    let names = Names {
        event_names: events.iter().map(|(k, v)| (*v, k.clone())).collect(),
        source_names: sources.iter().map(|(k, v)| (*v, k.clone())).collect(),
        events,
        sources,
    };
    let ev = |name: &str| names.ev(name);
    let tick_offset: i64 = constants
        .get("timeTickOffset")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(0);

    let mut summary = NetLogSummary {
        browser_version: constants
            .get("clientInfo")
            .and_then(|c| c.get("version"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        field_trials: constants
            .get("activeFieldTrialGroups")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
    };

    let socket_src = names.src("SOCKET");
    let connect_job_srcs = [
        names.src("SSL_CONNECT_JOB"),
        names.src("TRANSPORT_CONNECT_JOB"),
        names.src("TCP_CONNECT_JOB"),
    ];
    let attempt_srcs = [
        names.src("TLS_STREAM_ATTEMPT"),
        names.src("TCP_STREAM_ATTEMPT"),
    ];
    let mut sockets: BTreeMap<i64, SocketState> = BTreeMap::new();
    let mut jobs: HashMap<i64, ConnectJobState> = HashMap::new();
    let mut stream_jobs: HashMap<i64, StreamJobState> = HashMap::new();
    let mut controllers: HashMap<i64, Controller> = HashMap::new();
    // Stream jobs with an open socket request, per socket-pool group.
    let mut waiting: HashMap<String, BTreeSet<i64>> = HashMap::new();
    let mut attempts: HashMap<i64, AttemptState> = HashMap::new();
    let mut managers: HashMap<i64, Vec<PoolRequester>> = HashMap::new();
    // When a requester of the HTTP stream pool stopped waiting (its job or controller ended).
    let mut pool_requester_ended: HashMap<i64, usize> = HashMap::new();
    // A pool job's controller (`HTTP_STREAM_POOL_JOB_ALIVE`'s dependency).
    let mut pool_job_controller: HashMap<i64, i64> = HashMap::new();

    let mut pos = find(&bytes[events_at..], b"[")
        .map(|p| events_at + p + 1)
        .ok_or_else(|| NetLogError::Format("\"events\" is not an array".into()))?;
    loop {
        while pos < bytes.len() && (bytes[pos].is_ascii_whitespace() || bytes[pos] == b',') {
            pos += 1;
        }
        if pos >= bytes.len() {
            summary.truncated = true;
            break;
        }
        if bytes[pos] == b']' {
            break;
        }
        let mut stream =
            serde_json::Deserializer::from_slice(&bytes[pos..]).into_iter::<RawEvent>();
        let e = match stream.next() {
            Some(Ok(e)) => e,
            // A cut-off event (EOF inside it) or garbage after a crash: keep what we have.
            Some(Err(_)) | None => {
                summary.truncated = true;
                break;
            }
        };
        pos += stream.byte_offset();
        summary.events += 1;
        let at = summary.events;
        let id = e.source.id;
        let kind = e.kind;

        if e.source.kind == socket_src {
            let s = sockets.entry(id).or_default();
            if kind == ev("SOCKET_ALIVE") && e.phase == PHASE_BEGIN {
                s.parent = dependency(&e.params);
            } else if kind == ev("TCP_CONNECT") {
                s.is_tcp = true;
                if e.phase == PHASE_BEGIN {
                    let first = e
                        .params
                        .as_ref()
                        .and_then(|p| p.get("address_list"))
                        .and_then(|l| l.get(0))
                        .and_then(Value::as_str);
                    let time = e.time.as_deref().and_then(|t| t.parse::<i64>().ok());
                    if let (Some(first), Some(time)) = (first, time) {
                        s.connect_started = Some((first.to_owned(), time + tick_offset));
                    }
                }
                if e.phase == PHASE_END {
                    s.local_address = param_str(&e.params, "local_address").map(str::to_owned);
                    s.remote_address = param_str(&e.params, "remote_address").map(str::to_owned);
                    s.connected_at_ms = e
                        .time
                        .as_deref()
                        .and_then(|t| t.parse::<i64>().ok())
                        .map(|t| t + tick_offset);
                }
            } else if kind == ev("SSL_CONNECT") && e.phase == PHASE_END {
                s.net_error = e
                    .params
                    .as_ref()
                    .and_then(|p| p.get("net_error"))
                    .and_then(Value::as_i64);
            } else if kind == ev("SSL_ALERT_SENT") {
                let b64 = param_str(&e.params, "bytes").unwrap_or("");
                if let Some(b) = decode_base64(b64).filter(|b| b.len() == 2) {
                    s.alert_sent = Some((b[0], b[1]));
                }
            }
        } else if connect_job_srcs.contains(&e.source.kind) {
            let j = jobs.entry(id).or_default();
            j.source_type = e.source.kind;
            if kind == ev("SOCKET_POOL_CONNECT_JOB_CREATED") {
                j.backup = param_bool(&e.params, "backup_job");
                if let Some(group) = param_str(&e.params, "group_id") {
                    j.waiting_at_creation = waiting
                        .get(group)
                        .map(|w| w.iter().copied().collect())
                        .unwrap_or_default();
                }
            } else if kind == ev("SSL_CONNECT_JOB_RESTART_WITH_ECH_CONFIG_LIST") {
                j.ech_restarted = true;
            } else if kind == ev("TCP_CONNECT_JOB_CONNECTOR_CONNECT_START")
                && let Some(sock) = dependency(&e.params)
            {
                if param_str(&e.params, "connector") == Some("fallback") {
                    j.fallback_sockets.insert(sock);
                }
                if j.ech_restarted {
                    j.ech_sockets.insert(sock);
                }
            }
        } else if attempt_srcs.contains(&e.source.kind) {
            let a = attempts.entry(id).or_insert_with(|| AttemptState {
                began_at: at,
                ..Default::default()
            });
            a.source_type = e.source.kind;
            if kind == ev("TCP_BASED_ATTEMPT_BOUND_TO_POOL") {
                a.manager = dependency(&e.params);
            }
        } else if kind == ev("TCP_CLIENT_SOCKET_POOL_REQUESTED_SOCKET")
            || kind == ev("TCP_CLIENT_SOCKET_POOL_REQUESTED_SOCKETS")
        {
            if let Some(group) = param_str(&e.params, "group_id") {
                stream_jobs.entry(id).or_default().requested = Some((
                    group.to_owned(),
                    kind == ev("TCP_CLIENT_SOCKET_POOL_REQUESTED_SOCKETS"),
                ));
            }
        } else if kind == ev("SOCKET_POOL") || kind == ev("SOCKET_POOL_CONNECTING_N_SOCKETS") {
            let sj = stream_jobs.entry(id).or_default();
            match e.phase {
                PHASE_BEGIN => {
                    sj.reused = false;
                    if let Some((group, _)) = &sj.requested {
                        waiting.entry(group.clone()).or_default().insert(id);
                        sj.waiting_in = Some(group.clone());
                    }
                }
                PHASE_END => {
                    if let Some(group) = sj.waiting_in.take()
                        && let Some(w) = waiting.get_mut(&group)
                    {
                        w.remove(&id);
                    }
                }
                _ => {}
            }
        } else if kind == ev("SOCKET_POOL_REUSED_AN_EXISTING_SOCKET") {
            stream_jobs.entry(id).or_default().reused = true;
        } else if kind == ev("HTTP_STREAM_JOB") && e.phase == PHASE_BEGIN {
            if let Some(controller) = dependency(&e.params) {
                stream_jobs.entry(id).or_default().controller = Some(controller);
            }
        } else if kind == ev("HTTP_STREAM_REQUEST_STARTED_JOB") {
            if let Some(job) = dependency(&e.params) {
                stream_jobs.entry(job).or_default().controller = Some(id);
            }
        } else if kind == ev("SOCKET_POOL_BOUND_TO_CONNECT_JOB") {
            if let Some(job) = dependency(&e.params) {
                jobs.entry(job).or_default().bound_to.get_or_insert(id);
            }
        } else if kind == ev("SOCKET_POOL_BOUND_TO_SOCKET") {
            if let Some(sock) = dependency(&e.params) {
                let reused = stream_jobs.get(&id).is_some_and(|j| j.reused);
                sockets.entry(sock).or_default().bound.push((id, reused));
            }
        } else if kind == ev("HTTP_STREAM_JOB_CONTROLLER") && e.phase == PHASE_BEGIN {
            controllers.insert(
                id,
                Controller {
                    is_preconnect: param_bool(&e.params, "is_preconnect"),
                    allowed_bad_certs: nonempty_array(&e.params, "allowed_bad_certs"),
                    url: param_str(&e.params, "url").map(str::to_owned),
                },
            );
        } else if kind == ev("HTTP_STREAM_POOL_ATTEMPT_MANAGER_PRECONNECT") {
            if let Some(controller) = dependency(&e.params) {
                managers.entry(id).or_default().push(PoolRequester {
                    source: controller,
                    kind: RequesterKind::Preconnect,
                    event: kind,
                    registered_at: at,
                });
            }
        } else if kind == ev("HTTP_STREAM_POOL_ATTEMPT_MANAGER_REQUEST_STREAM") {
            if let Some(job) = dependency(&e.params) {
                managers.entry(id).or_default().push(PoolRequester {
                    source: job,
                    kind: if nonempty_array(&e.params, "allowed_bad_certs") {
                        RequesterKind::Restart
                    } else {
                        RequesterKind::FirstAttempt
                    },
                    event: kind,
                    registered_at: at,
                });
            }
        } else if kind == ev("HTTP_STREAM_POOL_JOB_ALIVE") {
            match e.phase {
                PHASE_BEGIN => {
                    if let Some(controller) = dependency(&e.params) {
                        pool_job_controller.insert(id, controller);
                    }
                }
                PHASE_END => {
                    pool_requester_ended.insert(id, at);
                }
                _ => {}
            }
        } else if kind == ev("HTTP_STREAM_POOL_JOB_CONTROLLER_ALIVE") && e.phase == PHASE_END {
            pool_requester_ended.insert(id, at);
        } else if kind == ev("HTTP_STREAM_POOL_GROUP_HANDLE_CREATED") {
            // `reuse_type` 0 is a socket never used; anything else was in use or idle before.
            let reused = e
                .params
                .as_ref()
                .and_then(|p| p.get("reuse_type"))
                .and_then(Value::as_i64)
                .is_some_and(|t| t != 0);
            if let (true, Some(sock)) = (reused, dependency(&e.params)) {
                sockets.entry(sock).or_default().reused_handles += 1;
            }
        }
    }

    let world = World {
        names: &names,
        jobs: &jobs,
        stream_jobs: &stream_jobs,
        controllers: &controllers,
        attempts: &attempts,
        managers: &managers,
        pool_requester_ended: &pool_requester_ended,
        pool_job_controller: &pool_job_controller,
    };
    for (id, s) in &sockets {
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
        let found = world.cause(*id, s);
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

/// Everything the log said, for following links after the last event.
struct World<'a> {
    names: &'a Names,
    jobs: &'a HashMap<i64, ConnectJobState>,
    stream_jobs: &'a HashMap<i64, StreamJobState>,
    controllers: &'a HashMap<i64, Controller>,
    attempts: &'a HashMap<i64, AttemptState>,
    managers: &'a HashMap<i64, Vec<PoolRequester>>,
    pool_requester_ended: &'a HashMap<i64, usize>,
    pool_job_controller: &'a HashMap<i64, i64>,
}

/// A cause with what it rests on.
struct Found {
    cause: ClientCause,
    unknown_reason: Option<String>,
    evidence: Vec<Evidence>,
    url: Option<String>,
}

impl Found {
    fn known(cause: ClientCause, evidence: Vec<Evidence>, url: Option<String>) -> Self {
        Self {
            cause,
            unknown_reason: None,
            evidence,
            url,
        }
    }
    fn unknown(reason: String, evidence: Vec<Evidence>) -> Self {
        Self {
            cause: ClientCause::Unknown,
            unknown_reason: Some(reason),
            evidence,
            url: None,
        }
    }
}

impl World<'_> {
    fn ev(&self, source_id: i64, source: &str, event: &str) -> Evidence {
        Evidence {
            source_id,
            source_type: source.into(),
            event: event.into(),
        }
    }

    fn cause(&self, socket: i64, s: &SocketState) -> Found {
        let mut evidence = vec![self.ev(socket, "SOCKET", "TCP_CONNECT")];
        let Some(parent) = s.parent else {
            return Found::unknown(
                format!("socket {socket} has no SOCKET_ALIVE source_dependency"),
                evidence,
            );
        };
        evidence.push(self.ev(socket, "SOCKET", "SOCKET_ALIVE"));
        if let Some(job) = self.jobs.get(&parent) {
            self.connect_job_cause(socket, s, parent, job, evidence)
        } else if let Some(attempt) = self.attempts.get(&parent) {
            self.attempt_cause(parent, attempt, evidence)
        } else {
            Found::unknown(
                format!(
                    "socket {socket}'s SOCKET_ALIVE names source {parent}, which is neither a \
                     connect job nor a stream attempt in this log"
                ),
                evidence,
            )
        }
    }

    /// The socket pool: the job's own fields, then the requests waiting in its group when it
    /// was created. The request it was handed to is only named in an `unknown` reason.
    fn connect_job_cause(
        &self,
        socket: i64,
        s: &SocketState,
        job_id: i64,
        job: &ConnectJobState,
        mut evidence: Vec<Evidence>,
    ) -> Found {
        let job_ev = |event: &str| {
            self.names
                .evidence(job_id, job.source_type, self.names.ev(event))
        };
        if job.backup {
            evidence.push(job_ev("SOCKET_POOL_CONNECT_JOB_CREATED"));
            return Found::known(ClientCause::ParallelAttempt, evidence, None);
        }
        if job.fallback_sockets.contains(&socket) {
            evidence.push(job_ev("TCP_CONNECT_JOB_CONNECTOR_CONNECT_START"));
            return Found::known(ClientCause::ParallelAttempt, evidence, None);
        }
        if job.ech_sockets.contains(&socket) {
            evidence.push(job_ev("SSL_CONNECT_JOB_RESTART_WITH_ECH_CONFIG_LIST"));
            evidence.push(job_ev("TCP_CONNECT_JOB_CONNECTOR_CONNECT_START"));
            return Found::known(ClientCause::EchRestart, evidence, None);
        }
        evidence.push(job_ev("SOCKET_POOL_CONNECT_JOB_CREATED"));
        let mut waiting_kinds = BTreeMap::new();
        let mut waiting_unknown = Vec::new();
        let mut waiting_evidence = Vec::new();
        for &sj in &job.waiting_at_creation {
            match self.stream_job_kind(sj) {
                Ok((kind, ev)) => {
                    waiting_kinds.entry(kind).or_insert_with(Vec::new).push(sj);
                    waiting_evidence.extend(ev);
                }
                Err(_) => waiting_unknown.push(sj),
            }
        }
        if waiting_unknown.is_empty() && waiting_kinds.len() == 1 {
            let (kind, _) = waiting_kinds.iter().next().expect("one kind");
            evidence.extend(waiting_evidence);
            let url = job
                .waiting_at_creation
                .iter()
                .find_map(|&sj| self.stream_job_url(sj));
            return Found::known(kind.cause(), evidence, url);
        }
        // Who was handed the job's outcome, or the socket as a new one.
        let handed = job
            .bound_to
            .map(|sj| (sj, "SOCKET_POOL_BOUND_TO_CONNECT_JOB"))
            .or_else(|| {
                s.bound
                    .iter()
                    .find(|(_, reused)| !reused)
                    .map(|(sj, _)| (*sj, "SOCKET_POOL_BOUND_TO_SOCKET"))
            });
        let waited = if job.waiting_at_creation.is_empty() {
            "no request was waiting in its group when it was created".to_owned()
        } else {
            let kinds: Vec<String> = waiting_kinds
                .iter()
                .map(|(k, ids)| format!("{} {ids:?}", k.cause().as_str()))
                .chain(
                    (!waiting_unknown.is_empty())
                        .then(|| format!("of unknown kind {waiting_unknown:?}")),
                )
                .collect();
            format!(
                "the requests waiting in its group when it was created differ ({})",
                kinds.join(", ")
            )
        };
        let Some((sj, event)) = handed else {
            return Found::unknown(
                format!(
                    "connect job {job_id}: {waited}, and no request was handed the job or \
                     socket {socket} (no SOCKET_POOL_BOUND_TO_CONNECT_JOB or \
                     SOCKET_POOL_BOUND_TO_SOCKET names them)"
                ),
                evidence,
            );
        };
        // Who was handed the connection is not who it was opened for: the pool gives a finished
        // job to whichever request is waiting then, and the job's SSL settings (the allowed bad
        // certificates among them) are those of the request it was created for. A full run
        // showed it: connections handed to a restart that carried the user's decision failed
        // with ERR_CERT_AUTHORITY_INVALID, because they were created before that restart
        // existed. So the request it was handed to is named in the reason, never the cause.
        evidence.push(self.ev(sj, "HTTP_STREAM_JOB", event));
        let handed_to = match self.stream_job_kind(sj) {
            Ok((kind, _)) => format!("stream job {sj} (a {} request)", kind.cause().as_str()),
            Err(why) => format!("stream job {sj} ({why})"),
        };
        Found::unknown(
            format!(
                "connect job {job_id}: {waited}; it was handed to {handed_to}, which the pool \
                 does not say it was created for"
            ),
            evidence,
        )
    }

    /// A stream job's kind: its controller's own fields, or for a preconnect's stream job
    /// (which logs no `HTTP_STREAM_JOB` begin, so names no controller) its plural socket request.
    fn stream_job_kind(&self, sj: i64) -> Result<(RequesterKind, Vec<Evidence>), String> {
        let job = self.stream_jobs.get(&sj);
        if let Some(c) = job.and_then(|j| j.controller) {
            let Some(controller) = self.controllers.get(&c) else {
                return Err(format!("its controller {c} never began in this log"));
            };
            let kind = match (controller.is_preconnect, controller.allowed_bad_certs) {
                (true, _) => RequesterKind::Preconnect,
                (false, true) => RequesterKind::Restart,
                (false, false) => RequesterKind::FirstAttempt,
            };
            return Ok((
                kind,
                vec![
                    self.ev(sj, "HTTP_STREAM_JOB", "HTTP_STREAM_JOB"),
                    self.ev(
                        c,
                        "HTTP_STREAM_JOB_CONTROLLER",
                        "HTTP_STREAM_JOB_CONTROLLER",
                    ),
                ],
            ));
        }
        match job.and_then(|j| j.requested.as_ref()) {
            Some((_, true)) => Ok((
                RequesterKind::Preconnect,
                vec![self.ev(
                    sj,
                    "HTTP_STREAM_JOB",
                    "TCP_CLIENT_SOCKET_POOL_REQUESTED_SOCKETS",
                )],
            )),
            _ => Err(format!("stream job {sj} names no job controller")),
        }
    }

    fn stream_job_url(&self, sj: i64) -> Option<String> {
        let c = self.stream_jobs.get(&sj)?.controller?;
        self.controllers.get(&c)?.url.clone()
    }

    /// The HTTP stream pool: the requesters the attempt's manager logged, still waiting when
    /// the attempt began.
    fn attempt_cause(
        &self,
        attempt_id: i64,
        attempt: &AttemptState,
        mut evidence: Vec<Evidence>,
    ) -> Found {
        let attempt_ev = |event: &str| {
            self.names
                .evidence(attempt_id, attempt.source_type, self.names.ev(event))
        };
        let Some(manager) = attempt.manager else {
            return Found::unknown(
                format!(
                    "stream attempt {attempt_id} names no attempt manager (no TCP_BASED_ATTEMPT_BOUND_TO_POOL)"
                ),
                evidence,
            );
        };
        evidence.push(attempt_ev("TCP_BASED_ATTEMPT_BOUND_TO_POOL"));
        let waiting: Vec<&PoolRequester> = self
            .managers
            .get(&manager)
            .into_iter()
            .flatten()
            .filter(|r| {
                r.registered_at < attempt.began_at
                    && self
                        .pool_requester_ended
                        .get(&r.source)
                        .is_none_or(|&end| end > attempt.began_at)
            })
            .collect();
        let kinds: BTreeSet<RequesterKind> = waiting.iter().map(|r| r.kind).collect();
        for r in &waiting {
            evidence.push(self.names.evidence(
                manager,
                self.names.src("HTTP_STREAM_POOL_ATTEMPT_MANAGER"),
                r.event,
            ));
        }
        if kinds.len() == 1 {
            let kind = *kinds.iter().next().expect("one kind");
            let url = waiting.iter().find_map(|r| {
                let controller = match r.kind {
                    RequesterKind::Preconnect => r.source,
                    _ => *self.pool_job_controller.get(&r.source)?,
                };
                self.controllers.get(&controller)?.url.clone()
            });
            return Found::known(kind.cause(), evidence, url);
        }
        let listed: Vec<String> = waiting
            .iter()
            .map(|r| format!("{} {}", r.kind.cause().as_str(), r.source))
            .collect();
        let reason = if waiting.is_empty() {
            format!(
                "attempt manager {manager} had no requester waiting when stream attempt \
                 {attempt_id} began"
            )
        } else {
            format!(
                "attempt manager {manager} had requesters of different kinds waiting when stream \
                 attempt {attempt_id} began ({}); the pool does not log which one an attempt is for",
                listed.join(", ")
            )
        };
        Found::unknown(reason, evidence)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | ALPHABET.iter().position(|&a| a == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_an_alert() {
        assert_eq!(decode_base64("Ai4="), Some(vec![2, 46]));
    }
}
