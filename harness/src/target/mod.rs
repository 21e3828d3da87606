//! What a trial talks to: a server the browser's connections reach, each of which ends up as
//! exactly one connection record (DESIGN.md).
//!
//! The runner knows only these two traits. The built-in TLS servers are one implementation
//! ([`in_process`]); a server the harness does not start itself, observed through a recording
//! relay, is another. Adding one is a new module here and one line in [`builtin`] (or in the
//! command line's own list of targets).

mod external;
mod in_process;
mod program;
pub mod relay;
mod relayed;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use backends::BackendName;
use certs::CertBundle;
use model::{ConnectionRecord, TlsVersion, TrustMode};

use crate::browser::BrowserKind;
use crate::scenario::{Host, ScenarioFile};

pub use self::external::{External, Probe};
pub use self::in_process::InProcess;
pub use self::program::ServerProgram;
pub use self::relayed::{RELAY_SUFFIX, Relayed, SERVER_RECORDS_FILE};

/// A kind of server a cell can measure; [`Target::start`] gives each trial its own instance.
pub trait Target: Send + Sync + fmt::Debug {
    /// The name in the matrix's backend column (`rustls`, …).
    fn name(&self) -> &str;
    /// Why no trial can run against it at all (a library not linked in, a program not
    /// installed). Such cells are `error` with this reason.
    fn unavailable(&self) -> Option<String>;
    /// `Err(reason)` when it cannot be pinned to `tls` or cannot serve the way `scenario` asks:
    /// the cell is `unsupported`.
    fn supports(&self, scenario: &ScenarioFile, tls: TlsVersion) -> Result<(), String>;
    /// Starts serving one trial.
    fn start(&self, trial: &TrialServer<'_>) -> Result<Box<dyn RunningTarget>, TargetError>;
    /// `Err(reason)` when `browser` cannot measure it with `trust`: the cell is `unsupported`.
    fn supports_browser(&self, _browser: BrowserKind, _trust: TrustMode) -> Result<(), String> {
        Ok(())
    }
    /// It serves its own certificate and connection policy, not the scenario's.
    fn own_certificate(&self) -> bool {
        false
    }
}

/// The certificate a target serves when it is not the trial's own: what `spki-pin` pins and
/// what `trusted-ca` installs.
#[derive(Clone, Debug)]
pub struct ServedCertificate {
    /// The leaf's SubjectPublicKeyInfo, SHA-256, base64.
    pub spki_sha256: String,
    /// The CA (or self-signed certificate) to trust, when the user gave one.
    pub trust_anchor_pem: Option<String>,
}

/// What one trial asks of its server.
#[derive(Clone, Copy, Debug)]
pub struct TrialServer<'a> {
    /// The scenario (connection policy, concurrency, resumption, backlog).
    pub scenario: &'a ScenarioFile,
    /// This trial's certificate and key.
    pub cert: &'a CertBundle,
    /// The one TLS version to accept.
    pub tls: TlsVersion,
    /// Serve on this loopback port; `None`: a free one.
    pub port: Option<u16>,
    /// The trial's folder, for what a target keeps beside the records.
    pub dir: &'a Path,
}

/// How the browser is pointed at a relay in place of the server without changing the URL:
/// connections to `host:port` go to `to_host:to_port` (DESIGN.md, *target*).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Steering {
    /// The URL's host, as written in it (`localhost`, `127.0.0.1`).
    pub host: String,
    /// The URL's port.
    pub port: u16,
    /// Where those connections go instead: the same host (the relay listens on its loopback
    /// addresses), or a loopback address.
    pub to_host: String,
    /// The relay's port.
    pub to_port: u16,
}

/// A target serving one trial.
pub trait RunningTarget: Send + Sync {
    /// The URL the browser opens, with `host` as its host name.
    fn url(&self, host: Host) -> String;
    /// When the last connection arrived (so a step is settled only once they stop coming).
    fn last_accept(&self) -> Option<Instant>;
    /// Connections the kernel accepted that the server has not taken yet.
    fn queued(&self) -> u32;
    /// Where the browser's connections must be steered (a relay in front of the server);
    /// `None`: the URL leads to the server itself.
    fn steering(&self, _host: Host) -> Option<Steering> {
        None
    }
    /// The TLS version the browser must be pinned to, when the server cannot be (a server the
    /// harness does not configure); `None`: the server is pinned.
    fn browser_tls(&self) -> Option<TlsVersion> {
        None
    }
    /// The certificate it serves, when that is not the trial's.
    fn served_certificate(&self) -> Option<ServedCertificate> {
        None
    }
    /// Where the bytes of every connection and the TLS key log are recorded for the trial's
    /// `capture.pcapng` (complete once stopped); `None` for a target that records no bytes.
    fn capture(&self) -> Option<Arc<capture::Recorder>> {
        None
    }
    /// Stops serving and returns every connection's record; or, when some connection has no
    /// record, the ones there are and why the rest are missing.
    fn stop(self: Box<Self>) -> Result<Vec<ConnectionRecord>, Unrecorded>;
}

/// Some connections ended without a record: their fate is unknown, so the trial cannot count.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct Unrecorded {
    /// Why, in words.
    pub reason: String,
    /// The records there are (written for a person to read, never counted).
    pub records: Vec<ConnectionRecord>,
}

impl Unrecorded {
    /// `records` when nothing went unrecorded, else every reason in `problems` with them.
    pub fn unless_any(
        problems: Vec<String>,
        records: Vec<ConnectionRecord>,
    ) -> Result<Vec<ConnectionRecord>, Self> {
        if problems.is_empty() {
            Ok(records)
        } else {
            Err(Self {
                reason: problems.join("; "),
                records,
            })
        }
    }
}

/// A target that could not start.
#[derive(Debug, thiserror::Error)]
#[error("starting the {target} server: {cause}")]
pub struct TargetError {
    /// The target's name.
    pub target: String,
    /// What went wrong. Not a `#[source]`: the message already says it, and error chains
    /// printed with `{:#}` would say it twice.
    pub cause: Box<dyn std::error::Error + Send + Sync>,
}

/// What a scenario's `backends` entry (and `--backend`) names: a built-in backend, or a server
/// program observed through the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetName {
    /// `rustls`, `openssl`, `mbedtls`.
    Builtin(BackendName),
    /// `lighttpd-openssl`, …, `nginx`.
    Program(ServerProgram),
}

impl TargetName {
    /// The built-in backends: a scenario's default.
    pub fn builtins() -> Vec<Self> {
        BackendName::ALL.iter().map(|&b| Self::Builtin(b)).collect()
    }

    /// Every name, built-in backends first.
    pub fn all() -> Vec<Self> {
        let mut all = Self::builtins();
        all.extend(ServerProgram::ALL.iter().map(|&p| Self::Program(p)));
        all
    }

    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Builtin(b) => b.as_str(),
            Self::Program(p) => p.as_str(),
        }
    }

    /// The target, reached as `relay` says (a program is always behind the relay).
    pub fn target(self, relayed: bool) -> Arc<dyn Target> {
        match self {
            Self::Builtin(b) if relayed => builtin_relayed(b),
            Self::Builtin(b) => builtin(b),
            Self::Program(p) => program::target(p),
        }
    }

    /// Whether it is a built-in backend.
    pub fn is_builtin(self) -> bool {
        matches!(self, Self::Builtin(_))
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TargetName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::all()
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let valid: Vec<String> =
                    Self::all().into_iter().map(|t| format!("`{t}`")).collect();
                format!(
                    "unknown backend `{s}`, expected one of {}",
                    valid.join(", ")
                )
            })
    }
}

impl<'de> serde::Deserialize<'de> for TargetName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for TargetName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The built-in target a scenario's `backends` entry names.
pub fn builtin(backend: BackendName) -> Arc<dyn Target> {
    Arc::new(InProcess(backend))
}

/// The built-in target, observed through a recording relay (to show that the relay changes
/// nothing, and how far its records agree with the server's own).
pub fn builtin_relayed(backend: BackendName) -> Arc<dyn Target> {
    Arc::new(Relayed::new(builtin(backend)))
}
