//! What the fuzz targets check, as plain functions: `cargo fuzz` (see `scripts/fuzz.sh`) feeds
//! them generated inputs, and `cargo test` replays the seeds and every input that once failed
//! (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`).
//!
//! Each function panics when a property the rest of the tool relies on does not hold; a panic
//! is what the fuzzer reports as a crash.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use backends::http::{ResponseStyle, serve_as};
use backends::{ConnectionPolicy, TlsSession};
use harness::scenario::{Scenario, ScenarioError};
use model::{Cause, ConnectionRecord, Ending, HandshakeFailure, Outcome, SessionInfo, Step};

/// A target's check: panics when a property does not hold for the input.
pub type Check = fn(&[u8]);

/// The targets by name, as folders under `fuzz/seeds` and `fuzz/regressions`.
pub const TARGETS: [(&str, Check); 3] = [
    ("http_request", http_request),
    ("connection_outcome", connection_outcome),
    ("scenario_file", scenario_file),
];

/// A TLS session whose peer sends `chunks`, then ends with `end`; it keeps what is written.
struct ScriptedPeer {
    chunks: VecDeque<Vec<u8>>,
    end: Result<(), HandshakeFailure>,
    written: Vec<u8>,
    closed: bool,
}

impl TlsSession for ScriptedPeer {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HandshakeFailure> {
        assert!(!self.closed, "read after close");
        let Some(mut chunk) = self.chunks.pop_front() else {
            return self.end.clone().map(|()| 0);
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            self.chunks.push_front(chunk.split_off(n));
        }
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), HandshakeFailure> {
        assert!(!self.closed, "write after close");
        self.written.extend_from_slice(buf);
        Ok(())
    }

    fn info(&self) -> SessionInfo {
        SessionInfo::default()
    }

    fn close(&mut self) {
        self.closed = true;
    }
}

/// The HTTP responder on arbitrary client bytes. The first byte shapes the delivery: low four
/// bits the read size (0: everything at once), bit 4 the `close` policy, bit 5 a reset at the
/// end instead of an orderly close, bit 6 the HTTP/1.0 style of a one-at-a-time server.
///
/// Properties: it never panics or hangs; only the peer's own failure is reported as a failure.
/// HTTP/1.1: everything written parses as a sequence of complete HTTP/1.1 responses (200, 404
/// or 400, with a body of the stated length); one response per request it counts; nothing
/// after a `Connection: close` response, which also closes the session. HTTP/1.0: at most one
/// request is counted; its response is one `HTTP/1.0` response (200, 404 or 400) without
/// `Content-Length` or `Connection`, whose body runs to the end, and the session is closed.
pub fn http_request(data: &[u8]) {
    let Some((&shape, input)) = data.split_first() else {
        return;
    };
    let size = match usize::from(shape & 0x0f) {
        0 => input.len().max(1),
        n => n,
    };
    let policy = if shape & 0x10 != 0 {
        ConnectionPolicy::Close
    } else {
        ConnectionPolicy::KeepAlive
    };
    let reset = HandshakeFailure {
        cause: Cause::Reset,
        backend_code: None,
    };
    let mut peer = ScriptedPeer {
        chunks: input.chunks(size).map(<[u8]>::to_vec).collect(),
        end: if shape & 0x20 != 0 {
            Err(reset)
        } else {
            Ok(())
        },
        written: Vec::new(),
        closed: false,
    };
    if shape & 0x40 != 0 {
        let served = serve_as(&mut peer, ResponseStyle::Http10, Duration::from_secs(3600));
        assert!(served.requests <= 1, "one request per connection");
        if served.requests == 1 {
            http10_response(&peer.written);
            assert!(
                peer.closed,
                "the body ends at close: the session must close"
            );
            assert!(served.failure.is_none());
        } else {
            assert!(
                peer.written.is_empty(),
                "a response without a counted request"
            );
        }
        if let Some(f) = &served.failure {
            assert_eq!(
                f.cause,
                Cause::Reset,
                "only the peer's reset can end it badly"
            );
        }
        return;
    }
    let served = serve_as(
        &mut peer,
        ResponseStyle::Http11(policy),
        Duration::from_secs(3600),
    );

    let responses = parse_responses(&peer.written);
    assert_eq!(
        responses.len(),
        served.requests as usize,
        "one response per counted request"
    );
    for (i, r) in responses.iter().enumerate() {
        assert!(matches!(r.status, 200 | 404 | 400), "status {}", r.status);
        let last = i + 1 == responses.len();
        assert!(!r.close || last, "a response after `Connection: close`");
        if r.status == 400 {
            assert!(r.close && last, "a 400 ends the connection");
        }
        if policy == ConnectionPolicy::Close {
            assert!(r.close, "the close policy says so in every response");
        }
    }
    if responses.last().is_some_and(|r| r.close) {
        assert!(peer.closed, "`Connection: close` without closing");
        assert!(served.failure.is_none());
    }
    if let Some(f) = &served.failure {
        assert_eq!(
            f.cause,
            Cause::Reset,
            "only the peer's reset can end it badly"
        );
    }
}

struct Response {
    status: u16,
    close: bool,
}

/// Splits what the responder wrote into responses; panics on anything malformed or cut short.
fn parse_responses(mut bytes: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(bytes) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("not a complete response head: {other:?}"),
        };
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let length: usize = header("content-length")
            .expect("Content-Length")
            .parse()
            .expect("a number");
        let connection = header("connection").expect("Connection");
        assert!(
            connection == "close" || connection == "keep-alive",
            "{connection}"
        );
        assert!(bytes.len() >= head + length, "body cut short");
        out.push(Response {
            status: response.code.expect("status"),
            close: connection == "close",
        });
        bytes = &bytes[head + length..];
    }
    out
}

/// Checks that `bytes` is one HTTP/1.0 response whose body runs to the end.
fn http10_response(bytes: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("not a complete response head: {other:?}"),
    };
    assert_eq!(response.version, Some(0), "HTTP/1.0");
    let status = response.code.expect("status");
    assert!(matches!(status, 200 | 404 | 400), "status {status}");
    for name in ["content-length", "connection"] {
        assert!(
            !response
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(name)),
            "{name} in an HTTP/1.0 response whose body ends at close"
        );
    }
    if status != 400 {
        assert!(bytes.len() > head, "a body");
    }
}

/// Reads fuzzer bytes as a small structured value, defaulting when they run out.
struct Bytes<'a>(std::slice::Iter<'a, u8>);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }

    fn text(&mut self) -> String {
        let len = usize::from(self.byte() % 24);
        let raw: Vec<u8> = (0..len).map(|_| self.byte()).collect();
        String::from_utf8_lossy(&raw).into_owned()
    }

    fn cause(&mut self) -> Cause {
        match self.byte() % 5 {
            0 => Cause::alert(self.byte(), self.byte()),
            1 => Cause::Reset,
            2 => Cause::Eof,
            3 => Cause::Timeout,
            _ => Cause::Error {
                message: self.text(),
            },
        }
    }

    fn failure(&mut self) -> HandshakeFailure {
        HandshakeFailure {
            cause: self.cause(),
            backend_code: (self.byte() & 1 == 0).then(|| self.text()),
        }
    }
}

/// The classifier that turns how a connection ended into its one outcome (DESIGN.md).
///
/// Properties: a failed handshake is `rejected` (with `timeout` when the server's deadline
/// ended it) and keeps the library's code; after a completed handshake, requests make it
/// `established`, an alert (not close_notify) or reset before any request makes it
/// `rejected-after-handshake`, anything else `idle`; only `rejected*` counts as a failed
/// handshake; the record survives a JSON round trip unchanged.
pub fn connection_outcome(data: &[u8]) {
    let mut b = Bytes(data.iter());
    let ending = match b.byte() % 3 {
        0 => Ending::HandshakeFailed {
            failure: b.failure(),
            deadline: None,
        },
        1 => Ending::HandshakeFailed {
            failure: b.failure(),
            deadline: Some(Duration::from_millis(u64::from(b.byte()) * 100)),
        },
        _ => Ending::Served {
            requests: u32::from_le_bytes([b.byte(), b.byte(), 0, 0]) % 4,
            failure: (b.byte() & 1 == 0).then(|| b.failure()),
        },
    };
    let (outcome, code) = Outcome::classify(ending.clone());
    match &ending {
        Ending::HandshakeFailed {
            deadline: Some(_), ..
        } => {
            assert_eq!(
                outcome,
                Outcome::Rejected {
                    cause: Cause::Timeout
                }
            );
            assert!(
                code.as_deref()
                    .is_some_and(|c| c.starts_with("handshake unfinished after"))
            );
        }
        Ending::HandshakeFailed {
            failure,
            deadline: None,
        } => {
            assert_eq!(
                outcome,
                Outcome::Rejected {
                    cause: failure.cause.clone()
                }
            );
            assert_eq!(code, failure.backend_code);
        }
        Ending::Served { requests, .. } if *requests > 0 => {
            assert_eq!(
                outcome,
                Outcome::Established {
                    requests: *requests
                }
            );
        }
        Ending::Served {
            failure: Some(f), ..
        } if matches!(f.cause, Cause::Alert { code, .. } if code != 0)
            || f.cause == Cause::Reset =>
        {
            assert_eq!(
                outcome,
                Outcome::RejectedAfterHandshake {
                    cause: f.cause.clone()
                }
            );
        }
        Ending::Served {
            failure: Some(f), ..
        } if matches!(f.cause, Cause::Error { .. }) => {
            assert_eq!(
                outcome,
                Outcome::ErrorAfterHandshake {
                    cause: f.cause.clone()
                }
            );
        }
        Ending::Served { .. } => assert_eq!(outcome, Outcome::Idle),
    }
    let failed = matches!(
        outcome,
        Outcome::Rejected { .. } | Outcome::RejectedAfterHandshake { .. }
    );
    assert_eq!(outcome.is_failed_handshake(), failed);
    assert!(!outcome.short().is_empty());

    let (queue_wait_ms, queue_wait_unknown) = match b.byte() % 3 {
        0 => (
            Some(u32::from_le_bytes([b.byte(), b.byte(), b.byte(), 0])),
            None,
        ),
        1 => (None, Some(b.text())),
        _ => (None, None),
    };
    let record = ConnectionRecord {
        id: u64::from(b.byte()),
        accepted_at_us: 1,
        closed_at_us: 2,
        client: b.text(),
        client_port: u16::from(b.byte()),
        local: b.text(),
        outcome,
        session: SessionInfo::default(),
        backend_code: code,
        queue_wait_ms,
        queue_wait_unknown,
        relay: None,
    };
    let json = serde_json::to_string(&record).expect("serialises");
    let back: ConnectionRecord = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, record, "{json}");
}

/// The scenario parser on arbitrary text.
///
/// Properties: it never panics; a refused file is always `fuzz.toml:LINE:COL: message` with a
/// position inside the text; an accepted one obeys the rules the runner relies on (steps start
/// with a visit, `proceed` only with click-through, repeat ≥ 1, no empty selection).
pub fn scenario_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Scenario::parse(Path::new("fuzz.toml"), text) {
        Ok(s) => {
            let f = &s.file;
            assert_eq!(s.name, "fuzz");
            assert!(f.steps.first().is_some_and(|s| *s != Step::Proceed));
            assert!(f.repeat >= 1);
            assert!(!f.backends.is_empty() && !f.browsers.is_empty() && !f.tls.is_empty());
            if f.steps.contains(&Step::Proceed) {
                assert_eq!(f.trust.as_str(), "click-through");
            }
        }
        Err(
            ref e @ ScenarioError::Invalid {
                ref path,
                line,
                col,
                ref message,
            },
        ) => {
            assert_eq!(path, "fuzz.toml");
            let lines = text.split('\n').count();
            assert!(line >= 1 && line <= lines, "line {line} of {lines}");
            let width = text
                .split('\n')
                .nth(line - 1)
                .map_or(0, |l| l.chars().count());
            assert!(col >= 1 && col <= width + 1, "col {col} of {width}");
            assert!(!message.trim().is_empty());
            assert!(
                e.to_string()
                    .starts_with(&format!("fuzz.toml:{line}:{col}: "))
            );
        }
        Err(other) => panic!("a parse error without a position: {other}"),
    }
}
