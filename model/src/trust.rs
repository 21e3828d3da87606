//! How a browser comes to accept the certificate, and the browser settings a scenario may
//! change: scenario vocabulary, read by the browsers that implement it.

use serde::{Deserialize, Serialize};

/// How the browser comes to accept the certificate (DESIGN.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustMode {
    /// No flags; the harness clicks through the warning page as a user does.
    ClickThrough,
    /// The WebDriver capability `acceptInsecureCerts`.
    AcceptInsecure,
    /// Chromium `--ignore-certificate-errors`.
    IgnoreFlag,
    /// Chromium `--ignore-certificate-errors-spki-list=<sha256 of the key>`.
    SpkiPin,
    /// Chromium DevTools `Security.setIgnoreCertificateErrors`.
    DevtoolsIgnore,
    /// The CA (or the self-signed leaf) in the browser's NSS database.
    TrustedCa,
    /// Nothing accepts it: the warning page is the end state.
    None,
}

impl TrustMode {
    /// The name used in scenarios and results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClickThrough => "click-through",
            Self::AcceptInsecure => "accept-insecure",
            Self::IgnoreFlag => "ignore-flag",
            Self::SpkiPin => "spki-pin",
            Self::DevtoolsIgnore => "devtools-ignore",
            Self::TrustedCa => "trusted-ca",
            Self::None => "none",
        }
    }
}

/// Browser settings a scenario may change. `None` keeps the browser's own default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Knobs {
    /// Chromium pref `net.network_prediction_options` (2 disables preconnects).
    pub network_prediction_options: Option<i64>,
    /// Firefox pref `network.http.speculative-parallel-limit` (0 disables speculative connections).
    pub speculative_parallel_limit: Option<i64>,
    /// Chromium features to enable (`--enable-features`), from a fixed list: a typo must fail
    /// the scenario, not silently measure the default browser.
    #[serde(default)]
    pub chromium_features: Vec<ChromiumFeature>,
}

/// A Chromium feature a scenario may switch on. Only features whose effect on connections the
/// harness knows how to read are listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ChromiumFeature {
    /// The newer HTTP stream pool (`net/http/http_stream_pool*.cc`), off by default in 156.
    HappyEyeballsV3,
}

impl ChromiumFeature {
    /// The name Chromium knows the feature by.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HappyEyeballsV3 => "HappyEyeballsV3",
        }
    }
}
