//! Why Chromium opened each connection, read from its NetLog.
//!
//! The server sees *that* a handshake failed; the NetLog says *why the browser opened that
//! connection*. Each client socket is joined to the server's record by the client port (the
//! local address of `TCP_CONNECT`), then followed up its source dependencies to what created it:
//!
//! - a connect job created inside a socket pool's `SOCKET_POOL_CONNECTING_N_SOCKETS` window, or
//!   for an `HTTP_STREAM_JOB_CONTROLLER` with `is_preconnect`, is a **preconnect** — it carries
//!   no allowed-bad-certificate list, so it fails even after the user proceeded;
//! - a connect job bound to a request whose controller lists `allowed_bad_certs` is a
//!   **restart-with-allowed-cert** (`RestartIgnoringLastError` after the user's decision);
//! - one bound to a request without that list is a **first-attempt**;
//! - a backup connect job or a fallback connector (::1 vs 127.0.0.1 race) is a
//!   **parallel-attempt**; a connect job that restarted for ECH is an **ech-restart**.
//!
//! Chromium 156 emits the stream-factory / socket-pool events above. Builds that use the newer
//! HTTP stream pool are handled by a generic walk over source dependencies that looks for the
//! same markers (`is_preconnect`, `allowed_bad_certs`); what neither finds is `unknown`, never
//! guessed. The file is parsed event by event, and a log cut short by a crashed browser is
//! parsed as far as it goes and reported as truncated.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why the browser opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectCause {
    /// A speculative socket opened while a navigation starts; no allowed-bad-cert list.
    Preconnect,
    /// A request before any decision about the certificate.
    FirstAttempt,
    /// A request restarted after the user proceeded (or a DevTools override).
    RestartWithAllowedCert,
    /// A socket handed to a request other than the one that opened it.
    Reuse,
    /// A parallel connect attempt (backup job, IPv6/IPv4 fallback race).
    ParallelAttempt,
    /// A connection restarted with a new ECH configuration.
    EchRestart,
    /// The log does not say.
    Unknown,
}

impl ConnectCause {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preconnect => "preconnect",
            Self::FirstAttempt => "first-attempt",
            Self::RestartWithAllowedCert => "restart-with-allowed-cert",
            Self::Reuse => "reuse",
            Self::ParallelAttempt => "parallel-attempt",
            Self::EchRestart => "ech-restart",
            Self::Unknown => "unknown",
        }
    }
}

/// One client TCP socket from the NetLog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSocket {
    /// NetLog source id of the socket (negative ids exist).
    pub source_id: i64,
    /// The socket's local port (joins with the server's `client_port`).
    pub local_port: u16,
    /// When TCP connected, ms since the Unix epoch (to break ties between reused ports).
    pub connected_at_ms: Option<i64>,
    /// Why it was opened.
    pub cause: ConnectCause,
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
    /// Every client TCP socket with a local port.
    pub sockets: Vec<ClientSocket>,
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

#[derive(Default)]
struct SocketState {
    connect_job: Option<i64>,
    local_port: Option<u16>,
    connected_at_ms: Option<i64>,
    net_error: Option<i64>,
    alert_sent: Option<(u8, u8)>,
    fallback: bool,
    bound_jobs: Vec<i64>,
    is_tcp: bool,
}

#[derive(Default)]
struct ConnectJobState {
    in_preconnect_window: bool,
    /// The stream job whose socket request created this job (its SSL config, and so its
    /// allowed-bad-cert list, is the one the job connects with).
    creator_stream_job: Option<i64>,
    backup: bool,
    ech_restart: bool,
    bound_stream_job: Option<i64>,
}

struct Controller {
    is_preconnect: bool,
    allowed_bad_certs: bool,
    url: Option<String>,
}

fn dependency(params: &Option<Value>) -> Option<i64> {
    params
        .as_ref()?
        .get("source_dependency")?
        .get("id")?
        .as_i64()
}

fn port_of(address: &str) -> Option<u16> {
    address.rsplit(':').next()?.parse().ok()
}

/// Reads `path` and summarises it.
pub fn read(path: &Path) -> Result<NetLogSummary, NetLogError> {
    parse(&std::fs::read(path)?)
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
    let event_ids = ids("logEventTypes");
    let source_ids = ids("logSourceType");
    let event_names: HashMap<u32, &str> = event_ids.iter().map(|(k, v)| (*v, k.as_str())).collect();
    let ev = |name: &str| event_ids.get(name).copied().unwrap_or(u32::MAX);
    let src = |name: &str| source_ids.get(name).copied().unwrap_or(u32::MAX);
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

    let (socket_src, connect_job_srcs) = (
        src("SOCKET"),
        [
            src("SSL_CONNECT_JOB"),
            src("TRANSPORT_CONNECT_JOB"),
            src("TCP_CONNECT_JOB"),
        ],
    );
    let mut sockets: BTreeMap<i64, SocketState> = BTreeMap::new();
    let mut jobs: HashMap<i64, ConnectJobState> = HashMap::new();
    let mut stream_job_controller: HashMap<i64, i64> = HashMap::new();
    let mut controllers: HashMap<i64, Controller> = HashMap::new();
    let mut preconnect_windows: HashSet<i64> = HashSet::new();
    // Every source_dependency edge, for the generic walk.
    let mut edges: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut markers: HashMap<i64, (bool, bool)> = HashMap::new();
    // A socket request (`SOCKET_POOL` begin on a stream job) that creates a connect job logs the
    // job's `CONNECT_JOB` begin right after it, synchronously.
    let mut pending_request: Option<(i64, usize)> = None;

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

        let id = e.source.id;
        if let Some(dep) = dependency(&e.params) {
            edges.entry(id).or_default().push(dep);
            edges.entry(dep).or_default().push(id);
        }
        if let Some(p) = e.params.as_ref() {
            let pre = p
                .get("is_preconnect")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let allowed = p
                .get("allowed_bad_certs")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if pre || allowed {
                let m = markers.entry(id).or_default();
                m.0 |= pre;
                m.1 |= allowed;
            }
        }
        let kind = e.kind;
        let name = event_names.get(&kind).copied().unwrap_or("");

        if kind == ev("SOCKET_POOL") && e.phase == PHASE_BEGIN {
            pending_request = Some((id, summary.events));
        }
        if e.source.kind == socket_src {
            let s = sockets.entry(id).or_default();
            if kind == ev("SOCKET_ALIVE") && e.phase == PHASE_BEGIN {
                s.connect_job = dependency(&e.params);
            } else if kind == ev("TCP_CONNECT") {
                s.is_tcp = true;
                if e.phase == PHASE_END {
                    let local = e
                        .params
                        .as_ref()
                        .and_then(|p| p.get("local_address"))
                        .and_then(Value::as_str);
                    s.local_port = local.and_then(port_of);
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
                let b64 = e
                    .params
                    .as_ref()
                    .and_then(|p| p.get("bytes"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if let Some(b) = decode_base64(b64).filter(|b| b.len() == 2) {
                    s.alert_sent = Some((b[0], b[1]));
                }
            }
        } else if connect_job_srcs.contains(&e.source.kind) {
            let j = jobs.entry(id).or_default();
            if kind == ev("CONNECT_JOB") && e.phase == PHASE_BEGIN {
                if let Some((stream_job, at)) = pending_request.take()
                    && summary.events - at <= 3
                {
                    j.creator_stream_job = Some(stream_job);
                }
            } else if kind == ev("SOCKET_POOL_CONNECT_JOB_CREATED") {
                j.in_preconnect_window = !preconnect_windows.is_empty();
                j.backup = e
                    .params
                    .as_ref()
                    .and_then(|p| p.get("backup_job"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
            } else if name.contains("ECH") && (name.contains("RESTART") || name.contains("RETRY")) {
                j.ech_restart = true;
            } else if kind == ev("TCP_CONNECT_JOB_CONNECTOR_CONNECT_START") {
                let fallback = e
                    .params
                    .as_ref()
                    .and_then(|p| p.get("connector"))
                    .and_then(Value::as_str)
                    == Some("fallback");
                if let (true, Some(sock)) = (fallback, dependency(&e.params)) {
                    sockets.entry(sock).or_default().fallback = true;
                }
            }
        } else if kind == ev("SOCKET_POOL_CONNECTING_N_SOCKETS") {
            // RequestSockets (a preconnect) creates its connect jobs inside this window; the
            // network thread logs sequentially, so "created while open" means "created by it".
            match e.phase {
                PHASE_BEGIN => {
                    preconnect_windows.insert(id);
                }
                PHASE_END => {
                    preconnect_windows.remove(&id);
                }
                _ => {}
            }
        } else if kind == ev("HTTP_STREAM_JOB") && e.phase == PHASE_BEGIN {
            if let Some(controller) = dependency(&e.params) {
                stream_job_controller.insert(id, controller);
            }
        } else if kind == ev("SOCKET_POOL_BOUND_TO_CONNECT_JOB") {
            if let Some(job) = dependency(&e.params) {
                jobs.entry(job).or_default().bound_stream_job = Some(id);
            }
        } else if kind == ev("SOCKET_POOL_BOUND_TO_SOCKET") {
            if let Some(sock) = dependency(&e.params) {
                sockets.entry(sock).or_default().bound_jobs.push(id);
            }
        } else if kind == ev("HTTP_STREAM_JOB_CONTROLLER") && e.phase == PHASE_BEGIN {
            let p = e.params.as_ref();
            controllers.insert(
                id,
                Controller {
                    is_preconnect: p
                        .and_then(|p| p.get("is_preconnect"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    allowed_bad_certs: p
                        .and_then(|p| p.get("allowed_bad_certs"))
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty()),
                    url: p
                        .and_then(|p| p.get("url"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                },
            );
        }
    }

    for (id, s) in sockets {
        let (Some(local_port), true) = (s.local_port, s.is_tcp) else {
            continue;
        };
        let job = s.connect_job.and_then(|j| jobs.get(&j));
        let controller = job
            .and_then(|j| j.creator_stream_job.or(j.bound_stream_job))
            .or_else(|| s.bound_jobs.first().copied())
            .and_then(|sj| stream_job_controller.get(&sj))
            .and_then(|c| controllers.get(c));
        let cause = if s.fallback || job.is_some_and(|j| j.backup) {
            ConnectCause::ParallelAttempt
        } else if job.is_some_and(|j| j.ech_restart) {
            ConnectCause::EchRestart
        } else if job.is_some_and(|j| j.in_preconnect_window) {
            ConnectCause::Preconnect
        } else if let Some(c) = controller {
            match (c.is_preconnect, c.allowed_bad_certs) {
                (true, _) => ConnectCause::Preconnect,
                (false, true) => ConnectCause::RestartWithAllowedCert,
                (false, false) => ConnectCause::FirstAttempt,
            }
        } else {
            generic_cause(id, &edges, &markers)
        };
        summary.sockets.push(ClientSocket {
            source_id: id,
            local_port,
            connected_at_ms: s.connected_at_ms,
            cause,
            url: controller.and_then(|c| c.url.clone()),
            net_error: s.net_error,
            alert_sent: s.alert_sent,
        });
    }
    Ok(summary)
}

/// For logs without the stream-factory events: walk the dependency graph from the socket and
/// look for the same markers on any source within a few hops.
fn generic_cause(
    socket: i64,
    edges: &HashMap<i64, Vec<i64>>,
    markers: &HashMap<i64, (bool, bool)>,
) -> ConnectCause {
    let mut seen = HashSet::from([socket]);
    let mut frontier = vec![socket];
    for _ in 0..4 {
        let mut next = Vec::new();
        for s in frontier {
            for &n in edges.get(&s).into_iter().flatten() {
                if seen.insert(n) {
                    next.push(n);
                }
            }
        }
        let found: Vec<(bool, bool)> = next
            .iter()
            .filter_map(|n| markers.get(n).copied())
            .collect();
        if found.iter().any(|m| m.0) {
            return ConnectCause::Preconnect;
        }
        if found.iter().any(|m| m.1) {
            return ConnectCause::RestartWithAllowedCert;
        }
        frontier = next;
    }
    ConnectCause::Unknown
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

/// Joins server records to client sockets by client port. Each socket is used for at most one
/// record and each record gets at most one socket; when a port appears twice (reused within a
/// trial), the socket whose connect time is nearest the record's accept time wins.
pub fn join(
    records: &[backends::ConnectionRecord],
    sockets: &[ClientSocket],
) -> BTreeMap<u64, ClientSocket> {
    let mut used: HashSet<i64> = HashSet::new();
    let mut out = BTreeMap::new();
    let mut by_time: Vec<&backends::ConnectionRecord> = records.iter().collect();
    by_time.sort_by_key(|r| r.accepted_at_us);
    for r in by_time {
        let accepted_ms = (r.accepted_at_us / 1000) as i64;
        let best = sockets
            .iter()
            .filter(|s| s.local_port == r.client_port && !used.contains(&s.source_id))
            .min_by_key(|s| {
                s.connected_at_ms
                    .map(|t| (t - accepted_ms).abs())
                    .unwrap_or(i64::MAX)
            });
        if let Some(s) = best {
            used.insert(s.source_id);
            out.insert(r.id, s.clone());
        }
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
