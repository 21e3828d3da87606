//! The connection record: exactly one per accepted TCP connection (DESIGN.md).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Alert level byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertLevel {
    /// 1.
    Warning,
    /// 2.
    Fatal,
    /// Anything else a broken peer might send.
    Unknown,
}

impl AlertLevel {
    /// From the wire byte.
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::Warning,
            2 => Self::Fatal,
            _ => Self::Unknown,
        }
    }
}

/// RFC 8446 (and RFC 5246) name of an alert description, e.g. 46 → `certificate_unknown`.
pub fn alert_name(code: u8) -> &'static str {
    match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        121 => "ech_required",
        _ => "unknown_alert",
    }
}

/// Why a connection failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Cause {
    /// The peer sent an alert.
    Alert {
        /// Warning or fatal.
        level: AlertLevel,
        /// The numeric description, e.g. 46.
        code: u8,
        /// Its RFC 8446 name, e.g. `certificate_unknown`.
        description: String,
    },
    /// The peer sent a record the size of an alert after encryption began, then closed: an
    /// alert whose description only the two ends can read (TLS 1.3, or TLS 1.2 after
    /// ChangeCipherSpec). Only a relay reports it, and always as an inference (schema 5).
    EncryptedAlert,
    /// The peer reset the connection (RST), or the write side broke.
    Reset,
    /// The peer closed the TCP connection without an alert.
    Eof,
    /// Nothing arrived within the server's timeout.
    Timeout,
    /// Anything else the library reported.
    Error {
        /// The library's words.
        message: String,
    },
    /// The server itself failed on this connection (schema 4; older files spell it as an
    /// `error` whose message begins `server fault: `). Says nothing about the client.
    ServerFault {
        /// What failed.
        fault: ServerFault,
        /// The details (the panic message, the OS error).
        message: String,
    },
}

/// A failure of the server on one connection, not of the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerFault {
    /// The TLS backend panicked while serving the connection.
    BackendPanicked,
    /// No worker thread could be started for the connection.
    NoWorkerThread,
}

impl ServerFault {
    /// In words.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BackendPanicked => "backend panicked",
            Self::NoWorkerThread => "no worker thread",
        }
    }
}

impl Cause {
    /// An alert cause from the two wire bytes.
    pub fn alert(level: u8, code: u8) -> Self {
        Self::Alert {
            level: AlertLevel::from_byte(level),
            code,
            description: alert_name(code).to_owned(),
        }
    }

    /// Whether this is an orderly close_notify rather than a failure.
    pub fn is_close_notify(&self) -> bool {
        matches!(self, Self::Alert { code: 0, .. })
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Alert {
                level,
                code,
                description,
            } => {
                let level = match level {
                    AlertLevel::Warning => "warning",
                    AlertLevel::Fatal => "fatal",
                    AlertLevel::Unknown => "unknown",
                };
                write!(f, "alert({level}, {description} ({code}))")
            }
            Self::EncryptedAlert => f.write_str("alert(encrypted)"),
            Self::Reset => f.write_str("reset"),
            Self::Eof => f.write_str("eof"),
            Self::Timeout => f.write_str("timeout"),
            Self::Error { message } => write!(f, "error({message})"),
            Self::ServerFault { fault, message } => {
                write!(f, "server fault: {}: {message}", fault.as_str())
            }
        }
    }
}

/// The single fate of one TCP connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    /// Handshake completed and at least one HTTP request was served.
    Established {
        /// Requests served on this connection (≥ 1).
        requests: u32,
    },
    /// Handshake completed, closed without a request (typically a preconnect).
    Idle,
    /// The handshake failed.
    Rejected {
        /// Why.
        cause: Cause,
    },
    /// Handshake completed, then a fatal alert or reset arrived before any request.
    RejectedAfterHandshake {
        /// Why.
        cause: Cause,
    },
    /// Handshake completed, then the connection failed before any request with something that
    /// is neither the peer's alert or reset nor an orderly close or timeout (an I/O or library
    /// error). Not a failed handshake and not `idle`: counted on its own, so it stays visible.
    ErrorAfterHandshake {
        /// What the library reported.
        cause: Cause,
    },
}

/// Why a handshake (or the serving after it) failed, as a TLS library reported it.
#[derive(Clone, Debug)]
pub struct HandshakeFailure {
    /// The normalised cause.
    pub cause: Cause,
    /// What the library reported, verbatim (e.g. `-0x7780 SSL - A fatal alert message was received`).
    pub backend_code: Option<String>,
}

/// How a connection ended, as the server saw it: what [`Outcome::classify`] decides from.
#[derive(Clone, Debug)]
pub enum Ending {
    /// The handshake failed.
    HandshakeFailed {
        /// What the library reported.
        failure: HandshakeFailure,
        /// Set when the server's handshake deadline ended it (the library then reports the
        /// closed socket, not the reason).
        deadline: Option<std::time::Duration>,
    },
    /// The handshake completed and the responder ran.
    Served {
        /// Requests answered.
        requests: u32,
        /// What ended serving, unless it was an orderly close.
        failure: Option<HandshakeFailure>,
    },
}

impl Outcome {
    /// The one outcome of a connection, and the library's code to keep beside it (DESIGN.md:
    /// a failed handshake is `rejected`; an alert or reset after a completed handshake but
    /// before any request is `rejected-after-handshake`; a clean close or timeout without a
    /// request is `idle`).
    pub fn classify(ending: Ending) -> (Self, Option<String>) {
        match ending {
            Ending::HandshakeFailed {
                failure,
                deadline: Some(after),
            } => (
                Self::Rejected {
                    cause: Cause::Timeout,
                },
                Some(format!(
                    "handshake unfinished after {} s, ended by the server; the library then said: {}",
                    after.as_secs_f32(),
                    failure
                        .backend_code
                        .unwrap_or_else(|| failure.cause.to_string())
                )),
            ),
            Ending::HandshakeFailed {
                failure,
                deadline: None,
            } => (
                Self::Rejected {
                    cause: failure.cause,
                },
                failure.backend_code,
            ),
            Ending::Served {
                requests: 0,
                failure: Some(f),
            } if matches!(f.cause, Cause::Alert { .. } | Cause::Reset)
                && !f.cause.is_close_notify() =>
            {
                (
                    Self::RejectedAfterHandshake { cause: f.cause },
                    f.backend_code,
                )
            }
            // Only an orderly end without a request is idle: eof, close_notify, or the server's
            // idle timeout. Anything else would hide a failure among preconnects.
            Ending::Served {
                requests: 0,
                failure: None,
            } => (Self::Idle, None),
            Ending::Served {
                requests: 0,
                failure: Some(f),
            } if matches!(f.cause, Cause::Eof | Cause::Timeout) || f.cause.is_close_notify() => (
                Self::Idle,
                Some(f.backend_code.unwrap_or_else(|| f.cause.to_string())),
            ),
            Ending::Served {
                requests: 0,
                failure: Some(f),
            } => (Self::ErrorAfterHandshake { cause: f.cause }, f.backend_code),
            Ending::Served { requests, failure } => (
                Self::Established { requests },
                failure.and_then(|f| f.backend_code),
            ),
        }
    }

    /// Whether this counts as a failed handshake (DESIGN.md).
    pub fn is_failed_handshake(&self) -> bool {
        matches!(
            self,
            Self::Rejected { .. } | Self::RejectedAfterHandshake { .. }
        )
    }

    /// The alert code, if the failure was an alert.
    pub fn alert_code(&self) -> Option<u8> {
        match self {
            Self::Rejected {
                cause: Cause::Alert { code, .. },
            }
            | Self::RejectedAfterHandshake {
                cause: Cause::Alert { code, .. },
            } => Some(*code),
            _ => None,
        }
    }

    /// A compact token for connection sequences: `ok(2)`, `idle`, `alert(46)`, `reset`, …;
    /// failures after a completed handshake are prefixed with `late-`.
    pub fn short(&self) -> String {
        fn cause(c: &Cause) -> String {
            match c {
                Cause::Alert { code, .. } => format!("alert({code})"),
                Cause::EncryptedAlert => "alert(?)".into(),
                Cause::Reset => "reset".into(),
                Cause::Eof => "eof".into(),
                Cause::Timeout => "timeout".into(),
                Cause::Error { .. } => "error".into(),
                Cause::ServerFault { .. } => "server-fault".into(),
            }
        }
        match self {
            Self::Established { requests } => format!("ok({requests})"),
            Self::Idle => "idle".into(),
            Self::Rejected { cause: c } => cause(c),
            Self::RejectedAfterHandshake { cause: c } => format!("late-{}", cause(c)),
            Self::ErrorAfterHandshake { cause: c } => format!("late-{}", cause(c)),
        }
    }
}

/// What a completed handshake negotiated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// `1.2` or `1.3` (or the library's own string for anything else).
    pub version: Option<String>,
    /// IANA cipher suite id, e.g. 0x1301.
    pub cipher_suite_id: Option<u16>,
    /// IANA cipher suite name, e.g. `TLS_AES_128_GCM_SHA256`.
    pub cipher_suite: Option<String>,
    /// The server name the client asked for.
    pub sni: Option<String>,
    /// The negotiated application protocol.
    pub alpn: Option<String>,
    /// Whether the session was resumed; `None` where the library cannot say.
    pub resumed: Option<bool>,
}

/// One accepted TCP connection and its fate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// Sequence number within one server, from 1, in accept order.
    pub id: u64,
    /// Accept time, microseconds since the Unix epoch.
    pub accepted_at_us: u64,
    /// When the connection was closed and recorded, microseconds since the Unix epoch.
    pub closed_at_us: u64,
    /// The client's address, `ip:port`.
    pub client: String,
    /// The client's port, for joining with client-side logs.
    pub client_port: u16,
    /// The listener's address the client reached (`127.0.0.1:…` or `[::1]:…`).
    pub local: String,
    /// What happened.
    pub outcome: Outcome,
    /// What the handshake negotiated (empty when it did not complete).
    pub session: SessionInfo,
    /// The library's own error code and words, when it reported one.
    pub backend_code: Option<String>,
    /// Milliseconds the connection waited in the kernel's accept queue: from the kernel
    /// completing the TCP handshake (when the client's `connect` returned) to the server's
    /// `accept(2)`. Read from `TCP_INFO` on the accepted socket right after `accept`:
    /// `tcpi_last_data_sent`, the time since the socket last sent data, which for a socket that
    /// has sent nothing yet is the time since the kernel created it. Kernel-tick resolution
    /// (1000 / `CONFIG_HZ` ms: 4 ms with HZ 250, so `0` means under one tick). A lower bound when the queue was full as the client connected: the
    /// kernel then creates the connection only when a later segment of the client finds room.
    /// `None` when the kernel did not tell (then `queue_wait_unknown` says why), and in records
    /// written before the field existed.
    #[serde(default)]
    pub queue_wait_ms: Option<u32>,
    /// Why `queue_wait_ms` is `None`, when the server asked and the kernel did not tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_wait_unknown: Option<String>,
    /// Set when a recording relay wrote this record instead of the TLS server itself: what the
    /// relay could only infer, and how to find the server's own record of the same connection
    /// (schema 5). `None`: the server's own record, every field observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayObservation>,
}

/// What a recording relay adds to a record it wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayObservation {
    /// Every field the relay read from the shape of encrypted traffic rather than saw in clear,
    /// with how. Empty: every field was seen in clear (or named by the browser's own log).
    pub inferred: Vec<Inference>,
    /// Bytes the client sent, and bytes the server sent, through the relay.
    pub client_bytes: u64,
    /// See `client_bytes`.
    pub server_bytes: u64,
    /// The relay's own port on its connection to the server: a server that records its
    /// connections names this as the client port of the same connection.
    pub upstream_port: Option<u16>,
    /// The failure's cause was taken from the browser's own log (the alert it says it sent),
    /// replacing the relay's inference.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cause_from_browser_log: bool,
}

/// One inferred field of a relay's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inference {
    /// Which field.
    pub field: InferredField,
    /// The observation it rests on, in words.
    pub how: String,
}

/// The fields a relay may have to infer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InferredField {
    /// That the handshake completed (both Finished messages are encrypted in TLS 1.3).
    HandshakeCompleted,
    /// The failure's cause (an encrypted alert).
    Cause,
    /// The number of HTTP requests (application data is encrypted).
    Requests,
}

impl InferredField {
    /// As in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HandshakeCompleted => "handshake-completed",
            Self::Cause => "cause",
            Self::Requests => "requests",
        }
    }
}

impl ConnectionRecord {
    /// The fields of this record a relay inferred (empty for a server's own record).
    pub fn inferred(&self) -> impl Iterator<Item = InferredField> + '_ {
        self.relay
            .iter()
            .flat_map(|r| r.inferred.iter().map(|i| i.field))
    }

    /// When the server itself failed on this connection (a panicking backend, no thread),
    /// what went wrong. Such a record says nothing about the client: a trial containing one
    /// cannot be counted. Records from before schema 4 spelled it as an `error` cause whose
    /// message begins `server fault: `; those are still recognised.
    pub fn server_fault(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Rejected {
                cause: cause @ Cause::ServerFault { .. },
            } => Some(cause.to_string()),
            Outcome::Rejected {
                cause: Cause::Error { message },
            } if message.starts_with("server fault: ") => Some(message.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DESIGN.md's outcome table, one row per line: how the connection ended → its outcome.
    #[test]
    fn every_row_of_the_outcome_table() {
        use std::time::Duration;

        let failure = |cause: Cause| HandshakeFailure {
            cause,
            backend_code: Some("library words".into()),
        };
        let failed = |cause: Cause| Ending::HandshakeFailed {
            failure: failure(cause),
            deadline: None,
        };
        let served = |requests, cause: Option<Cause>| Ending::Served {
            requests,
            failure: cause.map(failure),
        };
        let io = || Cause::Error {
            message: "Broken pipe (os error 32)".into(),
        };
        let rows: Vec<(&str, Ending, Outcome)> = vec![
            (
                "established: served a request",
                served(2, None),
                Outcome::Established { requests: 2 },
            ),
            (
                "established: served, then reset",
                served(1, Some(Cause::Reset)),
                Outcome::Established { requests: 1 },
            ),
            (
                "idle: handshake, then eof",
                served(0, Some(Cause::Eof)),
                Outcome::Idle,
            ),
            (
                "idle: handshake, then orderly close",
                served(0, None),
                Outcome::Idle,
            ),
            (
                "idle: handshake, then close_notify",
                served(0, Some(Cause::alert(1, 0))),
                Outcome::Idle,
            ),
            (
                "idle: handshake, then the idle timeout",
                served(0, Some(Cause::Timeout)),
                Outcome::Idle,
            ),
            (
                "rejected: alert",
                failed(Cause::alert(2, 46)),
                Outcome::Rejected {
                    cause: Cause::alert(2, 46),
                },
            ),
            (
                "rejected: reset",
                failed(Cause::Reset),
                Outcome::Rejected {
                    cause: Cause::Reset,
                },
            ),
            (
                "rejected: eof",
                failed(Cause::Eof),
                Outcome::Rejected { cause: Cause::Eof },
            ),
            (
                "rejected: error",
                failed(io()),
                Outcome::Rejected { cause: io() },
            ),
            (
                "rejected: timeout (the whole handshake exceeded the deadline)",
                Ending::HandshakeFailed {
                    failure: failure(Cause::Eof),
                    deadline: Some(Duration::from_secs(10)),
                },
                Outcome::Rejected {
                    cause: Cause::Timeout,
                },
            ),
            (
                "rejected-after-handshake: fatal alert before any request",
                served(0, Some(Cause::alert(2, 42))),
                Outcome::RejectedAfterHandshake {
                    cause: Cause::alert(2, 42),
                },
            ),
            (
                "rejected-after-handshake: reset before any request",
                served(0, Some(Cause::Reset)),
                Outcome::RejectedAfterHandshake {
                    cause: Cause::Reset,
                },
            ),
            (
                "error-after-handshake: an I/O error before any request is neither idle nor a failed handshake",
                served(0, Some(io())),
                Outcome::ErrorAfterHandshake { cause: io() },
            ),
        ];
        for (row, ending, expected) in rows {
            assert_eq!(Outcome::classify(ending).0, expected, "{row}");
        }
        assert!(!Outcome::ErrorAfterHandshake { cause: io() }.is_failed_handshake());
        assert_eq!(
            Outcome::ErrorAfterHandshake { cause: io() }.short(),
            "late-error"
        );
    }

    #[test]
    fn a_record_written_before_queue_wait_still_reads() {
        // A schema-1 record as runs wrote it before the queue wait existed.
        let old = r#"{"id":1,"accepted_at_us":10,"closed_at_us":20,"client":"127.0.0.1:5","client_port":5,"local":"127.0.0.1:443","outcome":{"kind":"rejected","cause":{"kind":"reset"}},"session":{"version":null,"cipher_suite_id":null,"cipher_suite":null,"sni":null,"alpn":null,"resumed":null},"backend_code":"-0x0050"}"#;
        let r: ConnectionRecord = serde_json::from_str(old).unwrap();
        assert_eq!(
            (r.queue_wait_ms, r.queue_wait_unknown.as_deref()),
            (None, None)
        );
        let known = serde_json::to_string(&ConnectionRecord {
            queue_wait_ms: Some(4),
            ..r.clone()
        })
        .unwrap();
        assert!(
            known.ends_with(r#""queue_wait_ms":4}"#),
            "the unknown reason is left out when the wait is known: {known}"
        );
        let unknown = serde_json::to_string(&ConnectionRecord {
            queue_wait_unknown: Some("getsockopt(TCP_INFO) failed".into()),
            ..r
        })
        .unwrap();
        assert!(
            unknown.contains(r#""queue_wait_ms":null,"queue_wait_unknown":"getsockopt"#),
            "{unknown}"
        );
    }

    #[test]
    fn a_server_fault_has_its_own_cause_kind() {
        let cause = Cause::ServerFault {
            fault: ServerFault::NoWorkerThread,
            message: "Resource temporarily unavailable".into(),
        };
        assert_eq!(
            serde_json::to_string(&cause).unwrap(),
            r#"{"kind":"server-fault","fault":"no-worker-thread","message":"Resource temporarily unavailable"}"#
        );
        assert_eq!(
            cause.to_string(),
            "server fault: no worker thread: Resource temporarily unavailable"
        );
    }
}
