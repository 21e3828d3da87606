//! The shared vocabulary of handshake-matrix, with no TLS library and no browser behind it.
//!
//! The servers (`backends`), the results files (`results`) and the harness speak it, so
//! reading or comparing a results file links neither OpenSSL nor Mbed TLS, and a new engine
//! or target reuses the same words. Every enum keeps the JSON spelling of the strings it
//! replaced.

mod client;
mod record;
mod step;
mod trust;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::client::{ClientCause, ClientLogSource};
pub use crate::record::{
    AlertLevel, Cause, ConnectionRecord, Ending, HandshakeFailure, Inference, InferredField,
    Outcome, RelayObservation, ServerFault, SessionInfo, alert_name,
};
pub use crate::step::{Step, StepAction};
pub use crate::trust::{
    ChromiumFeature, FirefoxPref, KnobConflict, Knobs, PrefValue, SPECULATIVE_PARALLEL_LIMIT,
    TrustMode, is_chromium_feature_name, is_firefox_pref_name,
};

/// The `<title>` of the page every target serves: how a browser tells the page from a
/// warning or an error page.
pub const PAGE_TITLE: &str = "handshake-matrix";

/// A TLS protocol version a server can be pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsVersion {
    /// Both versions, oldest first.
    pub const ALL: [Self; 2] = [Self::Tls12, Self::Tls13];

    /// `1.2` or `1.3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
