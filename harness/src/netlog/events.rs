//! The NetLog file as a stream of typed events.
//!
//! A NetLog numbers its event and source types and names them once, in its `constants`; the
//! numbers differ between Chromium builds, so they are resolved here, once per log, and
//! nothing past this module compares a raw number. Events are read one at a time because a
//! browser that crashed leaves the file cut off mid-event: everything before the cut is still
//! good.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::NetLogError;

macro_rules! event_types {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// The event types the graph is built from, by their Chromium names.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(super) enum EventType {
            $($(#[$doc])* $variant,)*
            /// Any type the graph does not read (it still counts, and still makes its source
            /// known).
            Other,
        }

        impl EventType {
            const NAMED: &[Self] = &[$(Self::$variant,)*];

            /// The name in the log's constants; `Other` has none.
            pub(super) fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                    Self::Other => "",
                }
            }
        }
    };
}

event_types! {
    SocketAlive = "SOCKET_ALIVE",
    TcpConnect = "TCP_CONNECT",
    SslConnect = "SSL_CONNECT",
    SslAlertSent = "SSL_ALERT_SENT",
    ConnectJobCreated = "SOCKET_POOL_CONNECT_JOB_CREATED",
    RestartWithEchConfigList = "SSL_CONNECT_JOB_RESTART_WITH_ECH_CONFIG_LIST",
    ConnectorConnectStart = "TCP_CONNECT_JOB_CONNECTOR_CONNECT_START",
    BoundToPool = "TCP_BASED_ATTEMPT_BOUND_TO_POOL",
    RequestedSocket = "TCP_CLIENT_SOCKET_POOL_REQUESTED_SOCKET",
    /// Only a preconnect asks for several sockets at once.
    RequestedSockets = "TCP_CLIENT_SOCKET_POOL_REQUESTED_SOCKETS",
    SocketPool = "SOCKET_POOL",
    ConnectingNSockets = "SOCKET_POOL_CONNECTING_N_SOCKETS",
    ReusedAnExistingSocket = "SOCKET_POOL_REUSED_AN_EXISTING_SOCKET",
    HttpStreamJob = "HTTP_STREAM_JOB",
    RequestStartedJob = "HTTP_STREAM_REQUEST_STARTED_JOB",
    BoundToConnectJob = "SOCKET_POOL_BOUND_TO_CONNECT_JOB",
    BoundToSocket = "SOCKET_POOL_BOUND_TO_SOCKET",
    JobController = "HTTP_STREAM_JOB_CONTROLLER",
    ManagerPreconnect = "HTTP_STREAM_POOL_ATTEMPT_MANAGER_PRECONNECT",
    ManagerRequestStream = "HTTP_STREAM_POOL_ATTEMPT_MANAGER_REQUEST_STREAM",
    PoolJobAlive = "HTTP_STREAM_POOL_JOB_ALIVE",
    PoolJobControllerAlive = "HTTP_STREAM_POOL_JOB_CONTROLLER_ALIVE",
    GroupHandleCreated = "HTTP_STREAM_POOL_GROUP_HANDLE_CREATED",
}

/// The source types whose events are read by who logged them rather than by event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SourceKind {
    /// `SOCKET`.
    Socket,
    /// The socket pool's `SSL_CONNECT_JOB`, `TRANSPORT_CONNECT_JOB`, `TCP_CONNECT_JOB`.
    ConnectJob,
    /// The HTTP stream pool's `TLS_STREAM_ATTEMPT`, `TCP_STREAM_ATTEMPT`.
    StreamAttempt,
    Other,
}

impl SourceKind {
    const NAMED: &[(Self, &str)] = &[
        (Self::Socket, "SOCKET"),
        (Self::ConnectJob, "SSL_CONNECT_JOB"),
        (Self::ConnectJob, "TRANSPORT_CONNECT_JOB"),
        (Self::ConnectJob, "TCP_CONNECT_JOB"),
        (Self::StreamAttempt, "TLS_STREAM_ATTEMPT"),
        (Self::StreamAttempt, "TCP_STREAM_ATTEMPT"),
    ];
}

/// The log's own names for its numeric event and source types, kept after reading so that
/// evidence is written in the log's words.
#[derive(Default)]
pub(super) struct Names {
    events: HashMap<String, u32>,
    event_names: HashMap<u32, String>,
    sources: HashMap<String, u32>,
    source_names: HashMap<u32, String>,
}

impl Names {
    pub(super) fn new(events: HashMap<String, u32>, sources: HashMap<String, u32>) -> Self {
        Self {
            event_names: events.iter().map(|(k, v)| (*v, k.clone())).collect(),
            source_names: sources.iter().map(|(k, v)| (*v, k.clone())).collect(),
            events,
            sources,
        }
    }

    /// A type the log does not name gets a number no event has.
    pub(super) fn source_type(&self, name: &str) -> u32 {
        self.sources.get(name).copied().unwrap_or(u32::MAX)
    }

    /// The log's name for a source type, or its number when it has none.
    pub(super) fn source_name(&self, source_type: u32) -> String {
        self.source_names
            .get(&source_type)
            .cloned()
            .unwrap_or_else(|| source_type.to_string())
    }

    /// The log's name for an event type; a log that does not name it gets the number no
    /// event has, as a source type it does not name gets its number.
    pub(super) fn event_name(&self, event: EventType) -> String {
        let number = self.events.get(event.name()).copied().unwrap_or(u32::MAX);
        self.event_names
            .get(&number)
            .cloned()
            .unwrap_or_else(|| number.to_string())
    }

    fn event_types(&self) -> HashMap<u32, EventType> {
        let mut types = HashMap::new();
        for &t in EventType::NAMED {
            if let Some(&number) = self.events.get(t.name()) {
                types.entry(number).or_insert(t);
            }
        }
        types
    }

    fn source_kinds(&self) -> HashMap<u32, SourceKind> {
        let mut kinds = HashMap::new();
        for &(kind, name) in SourceKind::NAMED {
            if let Some(&number) = self.sources.get(name) {
                kinds.entry(number).or_insert(kind);
            }
        }
        kinds
    }

    /// Every type this module knows, numbered in order: a log as complete as Chromium's.
    #[cfg(test)]
    pub(super) fn complete() -> Self {
        let events = EventType::NAMED
            .iter()
            .zip(0..)
            .map(|(t, n)| (t.name().to_owned(), n))
            .collect();
        let sources = SourceKind::NAMED
            .iter()
            .map(|(_, name)| *name)
            .chain(["HTTP_STREAM_POOL_ATTEMPT_MANAGER"])
            .zip(0..)
            .map(|(name, n)| (name.to_owned(), n))
            .collect();
        Self::new(events, sources)
    }
}

/// What the log says about the browser, from its `constants`.
pub(super) struct Header {
    /// `clientInfo.version`.
    pub(super) browser_version: Option<String>,
    /// `activeFieldTrialGroups`.
    pub(super) field_trials: Vec<String>,
}

/// A NetLog opened for reading: its constants, and its events still to be read.
pub(super) struct Log<'a> {
    pub(super) header: Header,
    pub(super) names: Names,
    pub(super) events: Events<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Begin,
    End,
    /// A point event (or a phase this reader does not know).
    None,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Source {
    pub(super) id: i64,
    /// The log's number for the source type, for naming it in evidence.
    pub(super) type_id: u32,
    pub(super) kind: SourceKind,
}

/// One event, with its type resolved and its parameters left as the log wrote them.
pub(super) struct Event {
    /// Its position in the log, from 1: the order the graph compares times by.
    pub(super) seq: usize,
    pub(super) phase: Phase,
    pub(super) source: Source,
    pub(super) kind: EventType,
    ticks: Option<i64>,
    tick_offset: i64,
    params: Option<Value>,
}

impl Event {
    /// When it was logged, ms since the Unix epoch.
    pub(super) fn time_ms(&self) -> Option<i64> {
        Some(self.ticks? + self.tick_offset)
    }

    /// The source named by `source_dependency`: the links the graph is made of.
    pub(super) fn dependency(&self) -> Option<i64> {
        self.param("source_dependency")?.get("id")?.as_i64()
    }

    pub(super) fn str_param(&self, key: &str) -> Option<&str> {
        self.param(key)?.as_str()
    }

    /// An absent flag is false.
    pub(super) fn flag(&self, key: &str) -> bool {
        self.param(key).and_then(Value::as_bool).unwrap_or(false)
    }

    pub(super) fn i64_param(&self, key: &str) -> Option<i64> {
        self.param(key)?.as_i64()
    }

    /// A list parameter with at least one item.
    pub(super) fn has_items(&self, key: &str) -> bool {
        self.param(key)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    }

    /// The first string of a list parameter.
    pub(super) fn first_str(&self, key: &str) -> Option<&str> {
        self.param(key)?.get(0)?.as_str()
    }

    /// A parameter holding bytes, which NetLog writes as base64.
    pub(super) fn bytes_param(&self, key: &str) -> Option<Vec<u8>> {
        decode_base64(self.str_param(key)?)
    }

    fn param(&self, key: &str) -> Option<&Value> {
        self.params.as_ref()?.get(key)
    }
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

/// The events of a log, one at a time, until its closing bracket or where it was cut off.
pub(super) struct Events<'a> {
    bytes: &'a [u8],
    pos: usize,
    event_types: HashMap<u32, EventType>,
    source_kinds: HashMap<u32, SourceKind>,
    tick_offset: i64,
    read: usize,
    truncated: bool,
    done: bool,
}

impl Events<'_> {
    /// Events read so far.
    pub(super) fn read(&self) -> usize {
        self.read
    }

    /// The log ended before its closing bracket; meaningful once the events are exhausted.
    pub(super) fn truncated(&self) -> bool {
        self.truncated
    }
}

impl Iterator for Events<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let bytes = self.bytes;
        while self.pos < bytes.len()
            && (bytes[self.pos].is_ascii_whitespace() || bytes[self.pos] == b',')
        {
            self.pos += 1;
        }
        if self.pos >= bytes.len() {
            self.truncated = true;
            self.done = true;
            return None;
        }
        if bytes[self.pos] == b']' {
            self.done = true;
            return None;
        }
        let mut stream =
            serde_json::Deserializer::from_slice(&bytes[self.pos..]).into_iter::<RawEvent>();
        let Some(Ok(e)) = stream.next() else {
            // A cut-off event (EOF inside it) or garbage after a crash: keep what we have.
            self.truncated = true;
            self.done = true;
            return None;
        };
        self.pos += stream.byte_offset();
        self.read += 1;
        Some(Event {
            seq: self.read,
            phase: match e.phase {
                1 => Phase::Begin,
                2 => Phase::End,
                _ => Phase::None,
            },
            source: Source {
                id: e.source.id,
                type_id: e.source.kind,
                kind: self
                    .source_kinds
                    .get(&e.source.kind)
                    .copied()
                    .unwrap_or(SourceKind::Other),
            },
            kind: self
                .event_types
                .get(&e.kind)
                .copied()
                .unwrap_or(EventType::Other),
            ticks: e.time.as_deref().and_then(|t| t.parse().ok()),
            tick_offset: self.tick_offset,
            params: e.params,
        })
    }
}

/// Reads the constants of a NetLog (possibly truncated) and positions at its first event.
pub(super) fn open(bytes: &[u8]) -> Result<Log<'_>, NetLogError> {
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
    let names = Names::new(ids("logEventTypes"), ids("logSourceType"));
    let tick_offset = constants
        .get("timeTickOffset")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(0);
    let header = Header {
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
    };
    let pos = find(&bytes[events_at..], b"[")
        .map(|p| events_at + p + 1)
        .ok_or_else(|| NetLogError::Format("\"events\" is not an array".into()))?;
    Ok(Log {
        header,
        events: Events {
            bytes,
            pos,
            event_types: names.event_types(),
            source_kinds: names.source_kinds(),
            tick_offset,
            read: 0,
            truncated: false,
            done: false,
        },
        names,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_an_alert() {
        assert_eq!(decode_base64("Ai4="), Some(vec![2, 46]));
    }

    #[test]
    fn types_are_resolved_by_the_logs_own_numbers() {
        let log = br#"{"constants": {"logEventTypes": {"TCP_CONNECT": 7, "SOCKET_ALIVE": 3},
            "logSourceType": {"SOCKET": 9}, "timeTickOffset": "1000"},
            "events": [
              {"phase": 1, "source": {"id": 5, "type": 9}, "time": "20", "type": 7},
              {"phase": 0, "source": {"id": 6, "type": 2}, "type": 3}
            ]}"#;
        let mut events = open(log).unwrap().events;
        let first = events.next().unwrap();
        assert_eq!(
            (first.kind, first.source.kind, first.phase, first.time_ms()),
            (
                EventType::TcpConnect,
                SourceKind::Socket,
                Phase::Begin,
                Some(1020)
            )
        );
        let second = events.next().unwrap();
        assert_eq!((second.seq, second.kind), (2, EventType::SocketAlive));
        assert_eq!(second.source.kind, SourceKind::Other);
        assert!(events.next().is_none() && !events.truncated());
        assert_eq!(events.read(), 2);
    }
}
