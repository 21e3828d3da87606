//! The browser's side of a connection, as its own log tells it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why the browser opened a connection.
///
/// The variants are declared in the alphabetical order of their names, so that maps keyed by
/// cause (`failed_by_cause`) keep the order they had when the key was a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientCause {
    /// A connection restarted with a new ECH configuration.
    EchRestart,
    /// A request before any decision about the certificate.
    FirstAttempt,
    /// A parallel connect attempt (backup job, IPv6/IPv4 fallback race).
    ParallelAttempt,
    /// A speculative socket opened while a navigation starts; no allowed-bad-cert list.
    Preconnect,
    /// A request restarted after the user proceeded (or a DevTools override).
    RestartWithAllowedCert,
    /// Only in files written before schema 3: a socket reused by a later request. A server
    /// record is one TCP connection, opened once; reuse is now counted in `reused_by`.
    Reuse,
    /// The log has no explicit link to what opened it (its `unknown_reason` says where the
    /// links stop), or the log does not name the connection at all.
    Unknown,
}

impl ClientCause {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EchRestart => "ech-restart",
            Self::FirstAttempt => "first-attempt",
            Self::ParallelAttempt => "parallel-attempt",
            Self::Preconnect => "preconnect",
            Self::RestartWithAllowedCert => "restart-with-allowed-cert",
            Self::Reuse => "reuse",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ClientCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which browser log a trial captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientLogSource {
    /// Chromium's NetLog (`--log-net-log`).
    ChromiumNetlog,
    /// Firefox's `MOZ_LOG` of the socket transport.
    FirefoxMozLog,
    /// WebKitGTK's release log (`WEBKIT_DEBUG` channels, libsoup's message log among them),
    /// which it sends to the systemd journal; the harness receives it on a journal socket of
    /// the trial's own.
    WebkitJournal,
}

impl ClientLogSource {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChromiumNetlog => "chromium-netlog",
            Self::FirefoxMozLog => "firefox-moz-log",
            Self::WebkitJournal => "webkit-journal",
        }
    }
}

impl fmt::Display for ClientLogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_sort_as_their_names_do() {
        let all = [
            ClientCause::EchRestart,
            ClientCause::FirstAttempt,
            ClientCause::ParallelAttempt,
            ClientCause::Preconnect,
            ClientCause::RestartWithAllowedCert,
            ClientCause::Reuse,
            ClientCause::Unknown,
        ];
        let mut by_name = all;
        by_name.sort_by_key(|c| c.as_str());
        assert_eq!(all, by_name);
        for c in all {
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
        }
    }
}
