//! Reading one relayed connection's bytes at the TLS record layer, and deciding its outcome in
//! the servers' vocabulary (DESIGN.md). Everything here is a pure function of the transcript,
//! so the rules are tested without sockets.
//!
//! What the record layer shows in clear: the ClientHello and ServerHello (versions, SNI,
//! ALPN), alerts sent before encryption, ChangeCipherSpec, and every record's type and length.
//! What it hides: in TLS 1.3 everything after the ServerHello (Finished messages, alerts,
//! requests all travel as `application_data`), in TLS 1.2 the contents of records after
//! ChangeCipherSpec. Every conclusion drawn from a hidden record's length or timing is listed
//! as an [`Inference`].

use model::{Cause, Inference, InferredField, Outcome, SessionInfo};

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// The encrypted record of a two-byte alert in TLS 1.3: alert (2) + inner content type (1) +
/// AEAD tag (16), for every cipher suite browsers offer. TLS 1.2 AEAD suites add an 8-byte
/// explicit nonce (26); ChaCha20-Poly1305 has none (18).
const TLS13_ALERT_LEN: usize = 19;

/// How soon after its side of the handshake an encrypted alert must follow to count as a
/// rejection rather than the close_notify of an idle connection: both are alert records of
/// the same length, so only timing tells them apart. A browser that rejects the certificate
/// after the handshake does so as soon as verification returns (milliseconds); an idle
/// connection is closed when the browser drops it, at the earliest after a step's quiet time.
pub(crate) const LATE_ALERT_WINDOW_US: u64 = 250_000;

/// Which way bytes went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Browser to server.
    FromClient,
    /// Server to browser.
    FromServer,
}

/// How one direction of a connection ended, as the relay saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// An orderly close (FIN).
    Eof,
    /// A reset (RST).
    Reset,
    /// The relay ended it (the trial was over).
    Stopped,
    /// Any other read error.
    Error(String),
}

/// Bytes as they arrived at the relay, in order across both directions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Transcript {
    /// Each read, with when it arrived (µs since the epoch).
    pub chunks: Vec<(Direction, u64, Vec<u8>)>,
    /// How the client's side ended, and when.
    pub client_end: Option<(StreamEnd, u64)>,
    /// How the server's side ended, and when.
    pub server_end: Option<(StreamEnd, u64)>,
}

/// One TLS record as it passed.
#[derive(Clone, Debug)]
struct Record {
    content_type: u8,
    payload: Vec<u8>,
    /// When its last byte arrived.
    at_us: u64,
    /// Position of that arrival among all chunks of both directions.
    order: usize,
}

/// Splits one direction into records. `Err` when the bytes are not TLS records at all.
fn records(t: &Transcript, dir: Direction) -> (Vec<Record>, Option<&'static str>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for (order, (d, at, bytes)) in t.chunks.iter().enumerate() {
        if *d != dir {
            continue;
        }
        buf.extend_from_slice(bytes);
        loop {
            if buf.len() < 5 {
                break;
            }
            let content_type = buf[0];
            if !(CHANGE_CIPHER_SPEC..=APPLICATION_DATA).contains(&content_type) || buf[1] != 3 {
                return (out, Some("not a TLS record"));
            }
            let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
            if buf.len() < 5 + len {
                break;
            }
            out.push(Record {
                content_type,
                payload: buf[5..5 + len].to_vec(),
                at_us: *at,
                order,
            });
            buf.drain(..5 + len);
        }
    }
    (out, None)
}

/// What a hello message says.
#[derive(Debug, Default)]
struct Hello {
    legacy_version: u16,
    cipher_suite: Option<u16>,
    sni: Option<String>,
    alpn: Vec<String>,
    /// ServerHello: the selected version; ClientHello: unused.
    selected_version: Option<u16>,
}

/// Parses the first handshake message of `records` if it is a ClientHello (1) or ServerHello
/// (2). Hellos larger than one record are joined.
fn hello(records: &[Record], want: u8) -> Option<Hello> {
    let mut msg = Vec::new();
    for r in records.iter().take_while(|r| r.content_type == HANDSHAKE) {
        msg.extend_from_slice(&r.payload);
        if msg.len() >= 4 {
            let len =
                (usize::from(msg[1]) << 16) | (usize::from(msg[2]) << 8) | usize::from(msg[3]);
            if msg.len() >= 4 + len {
                break;
            }
        }
    }
    if msg.first() != Some(&want) {
        return None;
    }
    let mut r = Reader(&msg[4..]);
    let mut h = Hello {
        legacy_version: r.u16()?,
        ..Hello::default()
    };
    r.skip(32)?; // random
    let session_id = r.u8()?;
    r.skip(usize::from(session_id))?;
    if want == 1 {
        let suites = r.u16()?;
        r.skip(usize::from(suites))?;
        let compression = r.u8()?;
        r.skip(usize::from(compression))?;
    } else {
        h.cipher_suite = Some(r.u16()?);
        r.skip(1)?; // compression method
    }
    let Some(ext_len) = r.u16() else {
        return Some(h); // no extensions
    };
    let mut exts = Reader(r.take(usize::from(ext_len))?);
    while let (Some(kind), Some(len)) = (exts.u16(), exts.u16()) {
        let mut body = Reader(exts.take(usize::from(len))?);
        match kind {
            0 if want == 1 => {
                // server_name: list length, then (type, name) entries.
                body.u16()?;
                if body.u8()? == 0 {
                    let n = body.u16()?;
                    h.sni = Some(String::from_utf8_lossy(body.take(usize::from(n))?).into_owned());
                }
            }
            16 => {
                let list = body.u16()?;
                let mut list = Reader(body.take(usize::from(list))?);
                while let Some(n) = list.u8() {
                    let name = list.take(usize::from(n))?;
                    h.alpn.push(String::from_utf8_lossy(name).into_owned());
                }
            }
            43 if want == 2 => h.selected_version = body.u16(),
            _ => {}
        }
    }
    Some(h)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// What the relay concludes about one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The outcome in the servers' vocabulary.
    pub outcome: Outcome,
    /// Version, suite, SNI and ALPN as far as they travel in clear.
    pub session: SessionInfo,
    /// What the relay could only infer, and how.
    pub inferred: Vec<Inference>,
    /// Bytes each way.
    pub client_bytes: u64,
    /// See `client_bytes`.
    pub server_bytes: u64,
}

fn version_name(v: u16) -> String {
    match v {
        0x0304 => "1.3".into(),
        0x0303 => "1.2".into(),
        0x0302 => "1.1".into(),
        0x0301 => "1.0".into(),
        other => format!("0x{other:04x}"),
    }
}

fn inference(field: InferredField, how: impl Into<String>) -> Inference {
    Inference {
        field,
        how: how.into(),
    }
}

/// Reads a transcript into an outcome.
pub(crate) fn classify(t: &Transcript) -> Verdict {
    let bytes = |dir| -> u64 {
        t.chunks
            .iter()
            .filter(|(d, ..)| *d == dir)
            .map(|(.., b)| b.len() as u64)
            .sum()
    };
    let mut v = Verdict {
        outcome: Outcome::Idle,
        session: SessionInfo::default(),
        inferred: Vec::new(),
        client_bytes: bytes(Direction::FromClient),
        server_bytes: bytes(Direction::FromServer),
    };
    let client_close = match &t.client_end {
        Some((StreamEnd::Reset, _)) => Cause::Reset,
        Some((StreamEnd::Error(e), _)) => Cause::Error {
            message: format!("relay: reading from the client: {e}"),
        },
        _ => Cause::Eof,
    };
    let (client, client_garbage) = records(t, Direction::FromClient);
    let (server, server_garbage) = records(t, Direction::FromServer);
    let rejected = |cause| Outcome::Rejected { cause };
    if let Some(what) = client_garbage {
        v.outcome = rejected(Cause::Error {
            message: format!("relay: the client sent {what}"),
        });
        return v;
    }
    let Some(ch) = hello(&client, 1) else {
        // Nothing, or no complete ClientHello: the client gave up before the handshake began.
        v.outcome = rejected(client_close);
        return v;
    };
    v.session.sni = ch.sni;
    if let Some(what) = server_garbage {
        v.outcome = rejected(Cause::Error {
            message: format!("relay: the server sent {what}: is the target a TLS server?"),
        });
        return v;
    }
    // A plaintext alert from the client before encryption: read in clear.
    let client_ccs = client
        .iter()
        .position(|r| r.content_type == CHANGE_CIPHER_SPEC);
    let Some(sh) = hello(&server, 2) else {
        if let Some(a) = client
            .iter()
            .find(|r| r.content_type == ALERT && r.payload.len() == 2)
        {
            v.outcome = rejected(Cause::alert(a.payload[0], a.payload[1]));
        } else if let Some(a) = server
            .iter()
            .find(|r| r.content_type == ALERT && r.payload.len() == 2)
        {
            v.outcome = rejected(Cause::Error {
                message: format!(
                    "relay: the server refused the ClientHello with alert {} ({})",
                    model::alert_name(a.payload[1]),
                    a.payload[1]
                ),
            });
        } else if t
            .server_end
            .as_ref()
            .is_some_and(|(_, s)| t.client_end.as_ref().is_none_or(|(_, c)| s < c))
        {
            v.outcome = rejected(Cause::Error {
                message: "relay: the server closed before its ServerHello".into(),
            });
        } else {
            v.outcome = rejected(client_close);
        }
        return v;
    };
    let version = sh.selected_version.unwrap_or(sh.legacy_version);
    v.session.version = Some(version_name(version));
    v.session.cipher_suite_id = sh.cipher_suite;
    let tls13 = version == 0x0304;
    if !tls13 {
        v.session.alpn = sh.alpn.into_iter().next();
    }
    // Client records after the ServerHello that matter: alerts and application data.
    let sh_order = server.first().map(|r| r.order).unwrap_or(0);
    let after: Vec<&Record> = client
        .iter()
        .filter(|r| r.order >= sh_order && r.content_type != CHANGE_CIPHER_SPEC)
        .collect();

    // Where the client's side of the handshake ended, and what followed it.
    let (finished, rest): (Option<&Record>, Vec<&Record>) = if tls13 {
        let enc: Vec<&Record> = after
            .iter()
            .copied()
            .filter(|r| matches!(r.content_type, APPLICATION_DATA | ALERT))
            .collect();
        // A plaintext alert after the ServerHello but before encryption on the client's side
        // (it could not read the server's flight) is still in clear.
        if let Some(a) = enc
            .first()
            .filter(|r| r.content_type == ALERT && r.payload.len() == 2)
        {
            v.outcome = rejected(Cause::alert(a.payload[0], a.payload[1]));
            return v;
        }
        match enc.split_first() {
            None => {
                v.outcome = rejected(client_close);
                return v;
            }
            Some((first, _)) if first.payload.len() <= TLS13_ALERT_LEN => {
                v.outcome = rejected(Cause::EncryptedAlert);
                v.inferred.push(inference(
                    InferredField::Cause,
                    format!(
                        "the client's first encrypted record was {} bytes, an alert's size, instead of its Finished",
                        first.payload.len()
                    ),
                ));
                return v;
            }
            Some((first, rest)) => {
                v.inferred.push(inference(
                    InferredField::HandshakeCompleted,
                    format!(
                        "the client's first encrypted record was {} bytes, a Finished message's size",
                        first.payload.len()
                    ),
                ));
                (Some(*first), rest.to_vec())
            }
        }
    } else {
        // TLS 1.2: a plaintext alert before the client's ChangeCipherSpec is read in clear.
        let before_ccs = client_ccs.map_or(client.len(), |i| i);
        if let Some(a) = client[..before_ccs]
            .iter()
            .find(|r| r.content_type == ALERT && r.payload.len() == 2)
        {
            v.outcome = rejected(Cause::alert(a.payload[0], a.payload[1]));
            return v;
        }
        let server_ccs = server
            .iter()
            .position(|r| r.content_type == CHANGE_CIPHER_SPEC);
        let (Some(c), Some(s)) = (client_ccs, server_ccs) else {
            v.outcome = rejected(client_close);
            return v;
        };
        // Each side's Finished is the record after its ChangeCipherSpec.
        if client.get(c + 1).is_none() || server.get(s + 1).is_none() {
            v.outcome = rejected(client_close);
            return v;
        }
        (client.get(c + 1), client[c + 2..].iter().collect())
    };

    // After the handshake: requests, or an alert before any.
    let finished_at = finished.map_or(0, |f| f.at_us);
    let is_alert =
        |r: &Record| r.content_type == ALERT || (tls13 && r.payload.len() <= TLS13_ALERT_LEN);
    let requests: Vec<&&Record> = rest
        .iter()
        .filter(|r| r.content_type == APPLICATION_DATA && !is_alert(r))
        .collect();
    if !requests.is_empty() {
        v.outcome = Outcome::Established {
            requests: u32::try_from(requests.len()).unwrap_or(u32::MAX),
        };
        v.inferred.push(inference(
            InferredField::Requests,
            format!(
                "{} encrypted record(s) from the client after its Finished, each taken as one request",
                requests.len()
            ),
        ));
        return v;
    }
    match rest.iter().find(|r| is_alert(r)) {
        Some(a) if a.at_us.saturating_sub(finished_at) <= LATE_ALERT_WINDOW_US => {
            v.outcome = Outcome::RejectedAfterHandshake {
                cause: Cause::EncryptedAlert,
            };
            v.inferred.push(inference(
                InferredField::Cause,
                format!(
                    "an encrypted alert record {} ms after the client's Finished, before any request: taken as fatal (a close_notify has the same length)",
                    a.at_us.saturating_sub(finished_at) / 1000
                ),
            ));
        }
        Some(a) => {
            v.outcome = Outcome::Idle;
            v.inferred.push(inference(
                InferredField::Cause,
                format!(
                    "an encrypted alert record {} ms after the client's Finished, before any request: taken as close_notify (a fatal alert has the same length)",
                    a.at_us.saturating_sub(finished_at) / 1000
                ),
            ));
        }
        None if matches!(client_close, Cause::Reset) => {
            v.outcome = Outcome::RejectedAfterHandshake {
                cause: Cause::Reset,
            };
        }
        None => v.outcome = Outcome::Idle,
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record header plus `len` bytes of `fill`.
    fn rec(content_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![content_type, 3, 3];
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn hs(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind, 0, (body.len() >> 8) as u8, body.len() as u8];
        m.extend_from_slice(body);
        rec(HANDSHAKE, &m)
    }

    fn ext(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut v = kind.to_be_bytes().to_vec();
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn client_hello(sni: &str) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[0; 32]);
        b.push(0); // session id
        b.extend_from_slice(&[0, 2, 0x13, 0x01]); // suites
        b.extend_from_slice(&[1, 0]); // compression
        let mut name = vec![0];
        name.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        name.extend_from_slice(sni.as_bytes());
        let mut list = ((name.len()) as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&name);
        let alpn = [0, 9, 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1'];
        let exts = [ext(0, &list), ext(16, &alpn)].concat();
        b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        b.extend_from_slice(&exts);
        hs(1, &b)
    }

    fn server_hello(tls13: bool) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[0; 32]);
        b.push(0);
        b.extend_from_slice(&[0x13, 0x01, 0]);
        let exts = if tls13 {
            ext(43, &[3, 4])
        } else {
            ext(
                16,
                &[0, 9, 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1'],
            )
        };
        b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        b.extend_from_slice(&exts);
        hs(2, &b)
    }

    struct T(Transcript, u64);
    impl T {
        fn new() -> Self {
            Self(Transcript::default(), 1_000_000)
        }
        fn c(mut self, bytes: Vec<u8>) -> Self {
            self.1 += 1000;
            self.0.chunks.push((Direction::FromClient, self.1, bytes));
            self
        }
        fn s(mut self, bytes: Vec<u8>) -> Self {
            self.1 += 1000;
            self.0.chunks.push((Direction::FromServer, self.1, bytes));
            self
        }
        fn wait_ms(mut self, ms: u64) -> Self {
            self.1 += ms * 1000;
            self
        }
        fn end(mut self, client: StreamEnd) -> Verdict {
            self.0.client_end = Some((client, self.1 + 1));
            self.0.server_end = Some((StreamEnd::Eof, self.1 + 2));
            classify(&self.0)
        }
    }

    fn opened(tls13: bool) -> T {
        T::new().c(client_hello("localhost")).s(server_hello(tls13))
    }

    #[test]
    fn tls12_plaintext_alert_is_read_in_clear() {
        let v = opened(false).c(rec(ALERT, &[2, 46])).end(StreamEnd::Eof);
        assert_eq!(
            v.outcome,
            Outcome::Rejected {
                cause: Cause::alert(2, 46)
            }
        );
        assert!(v.inferred.is_empty());
        assert_eq!(v.session.version.as_deref(), Some("1.2"));
        assert_eq!(v.session.sni.as_deref(), Some("localhost"));
        assert_eq!(v.session.alpn.as_deref(), Some("http/1.1"));
    }

    #[test]
    fn tls12_reset_and_eof_mid_handshake() {
        let v = opened(false).end(StreamEnd::Reset);
        assert_eq!(
            v.outcome,
            Outcome::Rejected {
                cause: Cause::Reset
            }
        );
        let v = T::new().end(StreamEnd::Eof);
        assert_eq!(v.outcome, Outcome::Rejected { cause: Cause::Eof });
    }

    fn tls12_handshake() -> T {
        opened(false)
            .c(rec(CHANGE_CIPHER_SPEC, &[1]))
            .c(rec(HANDSHAKE, &[0; 40]))
            .s(rec(CHANGE_CIPHER_SPEC, &[1]))
            .s(rec(HANDSHAKE, &[0; 40]))
    }

    #[test]
    fn tls12_requests_and_idle_and_late_alert() {
        let v = tls12_handshake()
            .c(rec(APPLICATION_DATA, &[0; 300]))
            .s(rec(APPLICATION_DATA, &[0; 300]))
            .end(StreamEnd::Eof);
        assert_eq!(v.outcome, Outcome::Established { requests: 1 });
        assert_eq!(v.inferred[0].field, InferredField::Requests);
        assert_eq!(tls12_handshake().end(StreamEnd::Eof).outcome, Outcome::Idle);
        let late = tls12_handshake()
            .c(rec(ALERT, &[0; 26]))
            .end(StreamEnd::Eof);
        assert_eq!(
            late.outcome,
            Outcome::RejectedAfterHandshake {
                cause: Cause::EncryptedAlert
            }
        );
        let close_notify = tls12_handshake()
            .wait_ms(2000)
            .c(rec(ALERT, &[0; 26]))
            .end(StreamEnd::Eof);
        assert_eq!(close_notify.outcome, Outcome::Idle);
        assert_eq!(close_notify.inferred[0].field, InferredField::Cause);
    }

    #[test]
    fn tls13_encrypted_alert_instead_of_finished_is_an_inferred_rejection() {
        let v = opened(true)
            .s(rec(APPLICATION_DATA, &[0; 900]))
            .c(rec(CHANGE_CIPHER_SPEC, &[1]))
            .c(rec(APPLICATION_DATA, &[0; 19]))
            .end(StreamEnd::Eof);
        assert_eq!(
            v.outcome,
            Outcome::Rejected {
                cause: Cause::EncryptedAlert
            }
        );
        assert_eq!(v.inferred.len(), 1);
        assert_eq!(v.inferred[0].field, InferredField::Cause);
        assert_eq!(v.session.version.as_deref(), Some("1.3"));
    }

    #[test]
    fn tls13_finished_then_request_is_established() {
        let v = opened(true)
            .s(rec(APPLICATION_DATA, &[0; 900]))
            .c(rec(APPLICATION_DATA, &[0; 53]))
            .c(rec(APPLICATION_DATA, &[0; 400]))
            .s(rec(APPLICATION_DATA, &[0; 400]))
            .c(rec(APPLICATION_DATA, &[0; 19]))
            .end(StreamEnd::Eof);
        assert_eq!(v.outcome, Outcome::Established { requests: 1 });
        let fields: Vec<_> = v.inferred.iter().map(|i| i.field).collect();
        assert_eq!(
            fields,
            [InferredField::HandshakeCompleted, InferredField::Requests]
        );
    }

    #[test]
    fn not_tls_is_an_error_not_a_count() {
        let v = T::new()
            .c(b"GET / HTTP/1.1\r\n\r\n".to_vec())
            .end(StreamEnd::Eof);
        assert!(
            matches!(
                v.outcome,
                Outcome::Rejected {
                    cause: Cause::Error { .. }
                }
            ),
            "{v:?}"
        );
        let v = T::new()
            .c(client_hello("x"))
            .s(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec())
            .end(StreamEnd::Eof);
        match v.outcome {
            Outcome::Rejected {
                cause: Cause::Error { message },
            } => {
                assert!(message.contains("is the target a TLS server"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
