//! Scenario files (`scenarios/*.toml`), parsed strictly: unknown keys and unknown names are
//! errors that point at `file:line:col` and list what is valid.

use std::path::{Path, PathBuf};

use backends::{BackendName, Concurrency, ConnectionPolicy};

use crate::target::TargetName;
use certs::CertKind;
use serde::{Deserialize, Serialize};

use model::{Knobs, Step, TlsVersion, TrustMode};

use crate::browser::BrowserKind;

/// The host name the browser is pointed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Host {
    /// `localhost` (browsers try ::1 first).
    #[serde(rename = "localhost")]
    Localhost,
    /// `127.0.0.1`.
    #[serde(rename = "127.0.0.1")]
    Ipv4,
}

impl Host {
    /// As written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Localhost => "localhost",
            Self::Ipv4 => "127.0.0.1",
        }
    }
}

fn default_backends() -> Vec<TargetName> {
    TargetName::builtins()
}
fn default_browsers() -> Vec<BrowserKind> {
    BrowserKind::ALL.to_vec()
}
fn default_tls() -> Vec<TlsVersion> {
    TlsVersion::ALL.to_vec()
}
fn default_repeat() -> u32 {
    3
}
fn default_host() -> Host {
    Host::Localhost
}

/// The largest `listen-backlog` a scenario may ask for (Linux's default `somaxconn`, which
/// caps it anyway).
pub const MAX_BACKLOG: u32 = 4096;

/// A scenario as written in its file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScenarioFile {
    /// What the scenario shows and why it exists.
    pub description: String,
    /// What the server presents.
    pub cert: CertKind,
    /// How the browser accepts it.
    pub trust: TrustMode,
    /// What the server does after a response.
    pub connection: ConnectionPolicy,
    /// Whether the server serves connections in parallel (default) or one at a time, like
    /// Mbed TLS's `ssl_server` (HTTP/1.0, body ending at close; needs `connection = "close"`).
    #[serde(default)]
    pub concurrency: Concurrency,
    /// The server's `listen(2)` backlog (default: the standard library's for `parallel`, 10 —
    /// Mbed TLS's — for `one-at-a-time`).
    #[serde(default)]
    pub listen_backlog: Option<u32>,
    /// Whether the server offers session resumption.
    #[serde(default)]
    pub resumption: bool,
    /// The host in the URL.
    #[serde(default = "default_host")]
    pub host: Host,
    /// The user's actions, in order.
    pub steps: Vec<Step>,
    /// Trials per cell.
    #[serde(default = "default_repeat")]
    pub repeat: u32,
    /// Backends to run (default: all).
    #[serde(default = "default_backends")]
    pub backends: Vec<TargetName>,
    /// Browsers to run (default: all).
    #[serde(default = "default_browsers")]
    pub browsers: Vec<BrowserKind>,
    /// TLS versions to run (default: both).
    #[serde(default = "default_tls")]
    pub tls: Vec<TlsVersion>,
    /// Browser settings (default: the browser's own).
    #[serde(default)]
    pub knobs: Knobs,
    /// What the results must show, each with a reason; a broken one fails the run.
    #[serde(default)]
    pub expect: Vec<Expectation>,
}

/// An expectation on the cells it applies to, checked in every trial. (Every cell also expects
/// the page in every headline step of every trial; that needs no `[[expect]]`.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expectation {
    /// Every headline step of every trial that shows the page does so with at most this many
    /// retries.
    pub max_retries: Option<u32>,
    /// Every headline step of every trial that shows the page has at least this many retries.
    pub min_retries: Option<u32>,
    /// Every trial has at most this many failed handshakes in all — every step and the
    /// teardown, not only the headline (a control that says no handshake fails means none).
    pub max_failed: Option<u32>,
    /// Why this is expected (required: an expectation without a reason cannot be judged later).
    pub reason: String,
    /// Only these browsers (default: all of the scenario's).
    pub browsers: Option<Vec<BrowserKind>>,
    /// Only these backends.
    pub backends: Option<Vec<TargetName>>,
    /// Only these TLS versions.
    pub tls: Option<Vec<TlsVersion>>,
}

impl Expectation {
    /// Whether it applies to a cell.
    pub fn applies(&self, target: &str, browser: BrowserKind, tls: TlsVersion) -> bool {
        self.browsers.as_ref().is_none_or(|b| b.contains(&browser))
            && self
                .backends
                .as_ref()
                .is_none_or(|b| b.iter().any(|b| b.as_str() == target))
            && self.tls.as_ref().is_none_or(|t| t.contains(&tls))
    }

    /// The rule in words, e.g. `retries ≤ 0, failed handshakes ≤ 0 per trial`.
    pub fn rule(&self) -> String {
        let retries = match (self.min_retries, self.max_retries) {
            (Some(lo), Some(hi)) if lo == hi => Some(format!("retries = {lo}")),
            (Some(lo), Some(hi)) => Some(format!("{lo} ≤ retries ≤ {hi}")),
            (None, Some(hi)) => Some(format!("retries ≤ {hi}")),
            (Some(lo), None) => Some(format!("retries ≥ {lo}")),
            (None, None) => None,
        };
        let failed = self
            .max_failed
            .map(|m| format!("failed handshakes ≤ {m} per trial"));
        let parts: Vec<String> = retries.into_iter().chain(failed).collect();
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join(", ")
        }
    }
}

/// A parsed, validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The file stem, e.g. `report-close`.
    pub name: String,
    /// Where it came from.
    pub path: PathBuf,
    /// Its contents.
    pub file: ScenarioFile,
}

/// A scenario that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, an unknown name, or a semantic rule, at a position.
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong, and what is valid.
        message: String,
    },
    /// A scenario name given on the command line does not exist.
    #[error("unknown scenario `{name}`; valid: {}", valid.join(", "))]
    Unknown {
        /// The name given.
        name: String,
        /// The names that exist.
        valid: Vec<String>,
    },
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Position of `key = ` in the text, for semantic errors that serde cannot place.
fn key_offset(text: &str, key: &str) -> usize {
    // Byte offsets of the real line starts: `lines()` would hide a `\r` per CRLF line.
    text.split_inclusive('\n')
        .scan(0, |off, l| {
            let start = *off;
            *off += l.len();
            Some((start, l))
        })
        .find(|(_, l)| {
            l.trim_start().starts_with(key)
                && l.trim_start()[key.len()..].trim_start().starts_with('=')
        })
        .map(|(start, l)| start + (l.len() - l.trim_start().len()))
        .unwrap_or(0)
}

impl Scenario {
    /// Parses `text` as the scenario file at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let invalid = |offset: usize, message: String| {
            let (line, col) = line_col(text, offset);
            ScenarioError::Invalid {
                path: shown.clone(),
                line,
                col,
                message,
            }
        };
        let file: ScenarioFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            invalid(offset, e.message().trim().to_owned())
        })?;
        if file.steps.is_empty() {
            return Err(invalid(
                key_offset(text, "steps"),
                "`steps` is empty; give at least `[\"visit\"]`".into(),
            ));
        }
        if file.steps[0] == Step::Proceed {
            return Err(invalid(
                key_offset(text, "steps"),
                "the first step must be `visit`: there is no warning to proceed from yet".into(),
            ));
        }
        if file.steps.contains(&Step::Proceed) && file.trust != TrustMode::ClickThrough {
            return Err(invalid(
                key_offset(text, "steps"),
                format!(
                    "`proceed` clicks through the warning page, which only `trust = \"click-through\"` shows (this scenario has `{}`)",
                    file.trust.as_str()
                ),
            ));
        }
        for (key, empty) in [
            ("backends", file.backends.is_empty()),
            ("browsers", file.browsers.is_empty()),
            ("tls", file.tls.is_empty()),
        ] {
            if empty {
                return Err(invalid(
                    key_offset(text, key),
                    format!("`{key}` is empty: the scenario would select no cell"),
                ));
            }
        }
        for e in &file.expect {
            if e.max_retries.is_none() && e.min_retries.is_none() && e.max_failed.is_none() {
                return Err(invalid(
                    key_offset(text, "reason"),
                    "an `[[expect]]` needs `max-retries`, `min-retries` or `max-failed`".into(),
                ));
            }
            if e.reason.trim().is_empty() {
                return Err(invalid(
                    key_offset(text, "reason"),
                    "an `[[expect]]` needs a non-empty `reason`".into(),
                ));
            }
        }
        if file.concurrency == Concurrency::OneAtATime
            && file.connection == ConnectionPolicy::KeepAlive
        {
            return Err(invalid(
                key_offset(text, "concurrency"),
                "`concurrency = \"one-at-a-time\"` answers HTTP/1.0 and closes after every response, like ssl_server; it needs `connection = \"close\"`".into(),
            ));
        }
        if file
            .listen_backlog
            .is_some_and(|b| !(1..=MAX_BACKLOG).contains(&b))
        {
            return Err(invalid(
                key_offset(text, "listen-backlog"),
                format!("`listen-backlog` must be between 1 and {MAX_BACKLOG}"),
            ));
        }
        if let Err(conflict) = file.knobs.check() {
            return Err(invalid(key_offset(text, conflict.key), conflict.message));
        }
        if file.repeat == 0 {
            return Err(invalid(
                key_offset(text, "repeat"),
                "`repeat` must be at least 1".into(),
            ));
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            name,
            path: path.to_owned(),
            file,
        })
    }

    /// Reads and parses one file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(path, &text)
    }
}

/// Loads every `*.toml` in `dir`, sorted by name. All errors are returned, not just the first.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            return Err(vec![ScenarioError::Read {
                path: dir.display().to_string(),
                source,
            }]);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let (ok, errors): (Vec<_>, Vec<_>) = paths
        .iter()
        .map(|p| Scenario::load(p))
        .partition(Result::is_ok);
    if errors.is_empty() {
        Ok(ok.into_iter().map(Result::unwrap).collect())
    } else {
        Err(errors.into_iter().map(|e| e.unwrap_err()).collect())
    }
}

/// A fixed workload: scenarios, backends and browsers pinned by name, so that how long it
/// takes can be measured again at any later time while `all` grows (`--matrix baseline-2026`).
/// `--backend`, `--browser` and `--tls` still narrow it.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it is, for `harness list`.
    pub description: &'static str,
    /// Its scenarios (each at its own `repeat`).
    pub scenarios: &'static [&'static str],
    /// Its backends.
    pub backends: &'static [TargetName],
    /// Its browsers.
    pub browsers: &'static [BrowserKind],
}

/// Every named workload.
pub const WORKLOADS: [Workload; 1] = [Workload {
    name: "baseline-2026",
    description: "the matrix of November 2026 before server programs and WebKit: the ten scenarios of then, the three built-in backends, Chromium and Firefox, both TLS versions (306 trials); the speed figures in the README are for it",
    scenarios: &[
        "control-accept-insecure",
        "control-devtools-ignore",
        "control-ignore-flag",
        "control-spki-pin",
        "control-trusted-ca",
        "private-ca-click-through",
        "report-close",
        "report-keep-alive",
        "report-no-prediction",
        "report-resumption",
    ],
    backends: &[
        TargetName::Builtin(BackendName::Rustls),
        TargetName::Builtin(BackendName::Openssl),
        TargetName::Builtin(BackendName::Mbedtls),
    ],
    browsers: &[BrowserKind::Chromium, BrowserKind::Firefox],
}];

/// The named workload `matrix` names, if it names one.
pub fn workload(matrix: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == matrix.trim())
}

/// Picks scenarios by `all`, a [`Workload`]'s name or a comma-separated list of names.
pub fn select(all: Vec<Scenario>, matrix: &str) -> Result<Vec<Scenario>, ScenarioError> {
    if matrix == "all" {
        return Ok(all);
    }
    if let Some(w) = workload(matrix) {
        return select(all, &w.scenarios.join(","));
    }
    let valid: Vec<String> = all
        .iter()
        .map(|s| s.name.clone())
        .chain(WORKLOADS.iter().map(|w| format!("{} (a workload)", w.name)))
        .collect();
    matrix
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|name| {
            all.iter()
                .find(|s| s.name == name)
                .cloned()
                .ok_or_else(|| ScenarioError::Unknown {
                    name: name.to_owned(),
                    valid: valid.clone(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Scenario::parse(Path::new("scenarios/x.toml"), text)
            .unwrap_err()
            .to_string()
    }

    const OK: &str = "description = \"d\"\ncert = \"self-signed\"\ntrust = \"click-through\"\nconnection = \"close\"\nsteps = [\"visit\", \"proceed\"]\n";

    #[test]
    fn a_valid_file_parses_with_defaults() {
        let s = Scenario::parse(Path::new("scenarios/report.toml"), OK).unwrap();
        assert_eq!(s.name, "report");
        assert_eq!(s.file.repeat, 3);
        assert_eq!(s.file.backends, TargetName::builtins());
        assert_eq!(s.file.host, Host::Localhost);
    }

    #[test]
    fn knobs_parse_listed_and_unlisted_features_and_firefox_prefs() {
        use model::{ChromiumFeature, PrefValue};
        let s = Scenario::parse(
            Path::new("scenarios/x.toml"),
            &format!(
                "{OK}[knobs]\nnetwork-prediction-options = 2\n\
                 chromium-features = [\"HappyEyeballsV3\", {{ unlisted = \"SomePreview_2\" }}]\n\
                 chromium-disabled-features = [{{ unlisted = \"Other\" }}]\n\
                 [knobs.firefox-prefs]\n\
                 \"network.http.speculative-parallel-limit\" = 0\n\
                 \"network.http.happy_eyeballs_enabled\" = true\n\
                 \"general.useragent.override\" = \"x \\\" y\"\n"
            ),
        )
        .unwrap();
        let k = &s.file.knobs;
        assert_eq!(k.network_prediction_options, Some(2));
        assert_eq!(
            k.chromium_features,
            [
                ChromiumFeature::HappyEyeballsV3,
                ChromiumFeature::Unlisted("SomePreview_2".into())
            ]
        );
        assert_eq!(
            k.chromium_disabled_features,
            [ChromiumFeature::Unlisted("Other".into())]
        );
        let prefs: Vec<(String, PrefValue)> = k.firefox_prefs().into_iter().collect();
        assert_eq!(
            prefs,
            [
                (
                    "general.useragent.override".into(),
                    PrefValue::String("x \" y".into())
                ),
                (
                    "network.http.happy_eyeballs_enabled".into(),
                    PrefValue::Bool(true)
                ),
                (
                    "network.http.speculative-parallel-limit".into(),
                    PrefValue::Int(0)
                ),
            ]
        );
    }

    #[test]
    fn the_prefs_table_says_what_report_no_prediction_says() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let old = Scenario::load(&dir.join("report-no-prediction.toml")).unwrap();
        let new = Scenario::parse(
            Path::new("scenarios/x.toml"),
            &format!(
                "{OK}[knobs]\nnetwork-prediction-options = 2\n\
                 [knobs.firefox-prefs]\n\"network.http.speculative-parallel-limit\" = 0\n"
            ),
        )
        .unwrap();
        assert_eq!(
            old.file.knobs.firefox_prefs(),
            new.file.knobs.firefox_prefs()
        );
        assert!(!old.file.knobs.firefox_prefs().is_empty());
    }

    #[test]
    fn a_feature_typo_fails_with_the_list_and_the_escape_hatch() {
        // A typo must fail the scenario, not silently measure the default browser.
        let e = err(&format!(
            "{OK}[knobs]\nchromium-features = [\"HappyEyeballV3\"]\n"
        ));
        assert_eq!(
            e,
            "scenarios/x.toml:7:22: unknown Chromium feature `HappyEyeballV3`, listed: `HappyEyeballsV3`; a feature the harness does not list is written `{ unlisted = \"HappyEyeballV3\" }`"
        );
        let e = err(&format!(
            "{OK}[knobs]\nchromium-disabled-features = [\"Nope\"]\n"
        ));
        assert!(
            e.starts_with("scenarios/x.toml:7:31: unknown Chromium feature `Nope`"),
            "{e}"
        );
        // A listed feature has one spelling, so the record is the same in every cell.
        let e = err(&format!(
            "{OK}[knobs]\nchromium-features = [{{ unlisted = \"HappyEyeballsV3\" }}]\n"
        ));
        assert!(
            e.starts_with("scenarios/x.toml:7:22: `HappyEyeballsV3` is listed"),
            "{e}"
        );
        let e = err(&format!(
            "{OK}[knobs]\nchromium-features = [{{ unlisted = \"X\", also = 1 }}]\n"
        ));
        assert!(
            e.contains("unknown field `also`, expected `unlisted`"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_name_or_value_points_at_line_and_column() {
        // Nothing that Chromium's switch syntax or the user.js syntax gives a meaning passes.
        for bad in ["A,B", "A<Trial", "A:p/1", "--x", "A B"] {
            let e = err(&format!(
                "{OK}[knobs]\nchromium-features = [{{ unlisted = \"{bad}\" }}]\n"
            ));
            assert_eq!(
                e,
                format!(
                    "scenarios/x.toml:7:22: `{bad}` is not a Chromium feature name (a letter, then letters, digits or `_`)"
                )
            );
        }
        for bad in ["a\\\");user_pref(\\\"b", "a..b", "a b", ""] {
            let e = err(&format!("{OK}[knobs.firefox-prefs]\n\"{bad}\" = 1\n"));
            assert!(
                e.starts_with("scenarios/x.toml:7:1: `")
                    && e.contains("is not a Firefox pref name"),
                "{bad}: {e}"
            );
        }
        let e = err(&format!("{OK}[knobs.firefox-prefs]\n\"a.b\" = 1.5\n"));
        assert!(
            e.starts_with("scenarios/x.toml:7:9: Firefox prefs have no floats"),
            "{e}"
        );
        let e = err(&format!(
            "{OK}[knobs.firefox-prefs]\n\"a.b\" = 4294967296\n"
        ));
        assert!(
            e.starts_with("scenarios/x.toml:7:9: 4294967296 does not fit a Firefox integer pref"),
            "{e}"
        );
        let e = err(&format!("{OK}[knobs.firefox-prefs]\n\"a.b\" = \"x\\ny\"\n"));
        assert!(
            e.starts_with(
                "scenarios/x.toml:7:9: a Firefox pref string may not contain control characters"
            ),
            "{e}"
        );
        let e = err(&format!("{OK}[knobs.firefox-prefs]\n\"a.b\" = [1]\n"));
        assert!(e.starts_with("scenarios/x.toml:7:9: "), "{e}");
    }

    #[test]
    fn contradicting_knobs_point_at_the_second() {
        let e = err(&format!(
            "{OK}[knobs]\nchromium-features = [\"HappyEyeballsV3\"]\nchromium-disabled-features = [\"HappyEyeballsV3\"]\n"
        ));
        assert!(
            e.starts_with("scenarios/x.toml:8:1: `HappyEyeballsV3` is both in `chromium-features` and in `chromium-disabled-features`"),
            "{e}"
        );
        let e = err(&format!(
            "{OK}[knobs]\nspeculative-parallel-limit = 0\n[knobs.firefox-prefs]\n\"network.http.speculative-parallel-limit\" = 0\n"
        ));
        assert!(
            e.starts_with(
                "scenarios/x.toml:7:1: `speculative-parallel-limit` and `firefox-prefs` both set"
            ),
            "{e}"
        );
        let e = err(&format!("{OK}[knobs]\nchromium-prefs = {{}}\n"));
        assert!(
            e.starts_with("scenarios/x.toml:7:1: unknown field `chromium-prefs`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_points_at_line_and_column() {
        let e = err(&format!("{OK}colour = \"red\"\n"));
        assert!(
            e.starts_with("scenarios/x.toml:6:1: unknown field `colour`, expected one of"),
            "{e}"
        );
    }

    #[test]
    fn a_windows_edited_file_points_at_the_right_line() {
        // Found by the scenario_file fuzz target: CRLF offsets used to drift a byte per line
        // and could land inside a character (a panic instead of an error).
        let text = OK
            .replace("\n", "\r\n")
            .replace("[\"visit\", \"proceed\"]", "[]");
        let text = format!("# é\r\n{text}");
        let e = err(&text);
        assert!(
            e.starts_with("scenarios/x.toml:6:1: `steps` is empty"),
            "{e}"
        );
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let e = err(&OK.replace("click-through", "click"));
        assert!(
            e.starts_with("scenarios/x.toml:3:9: unknown variant `click`, expected one of"),
            "{e}"
        );
        assert!(
            e.contains("`click-through`") && e.contains("`trusted-ca`"),
            "{e}"
        );
        let e = err(&format!("{OK}backends = [\"gnutls\"]\n"));
        assert!(
            e.contains("6:") && e.contains("`rustls`, `openssl`, `mbedtls`"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_points_at_position() {
        let e = err("description = \"d\"\ncert = \n");
        assert!(e.starts_with("scenarios/x.toml:2:"), "{e}");
    }

    #[test]
    fn proceed_needs_click_through() {
        let e = err(&OK.replace("click-through", "trusted-ca"));
        assert!(
            e.starts_with("scenarios/x.toml:5:1: `proceed` clicks through"),
            "{e}"
        );
    }

    #[test]
    fn expectations_need_a_rule_and_a_reason() {
        let e = err(&format!("{OK}[[expect]]\nreason = \"r\"\n"));
        assert!(
            e.starts_with(
                "scenarios/x.toml:7:1: an `[[expect]]` needs `max-retries`, `min-retries` or `max-failed`"
            ),
            "{e}"
        );
        let e = err(&format!("{OK}[[expect]]\nmax-retries = 0\nreason = \"\"\n"));
        assert!(e.contains("needs a non-empty `reason`"), "{e}");
        let e = err(&format!(
            "{OK}[[expect]]\nmax-retires = 0\nreason = \"r\"\n"
        ));
        assert!(
            e.starts_with("scenarios/x.toml:7:1: unknown field `max-retires`"),
            "{e}"
        );
    }

    #[test]
    fn concurrency_is_strict_and_one_at_a_time_needs_close() {
        let s = Scenario::parse(
            Path::new("scenarios/x.toml"),
            &format!("{OK}concurrency = \"one-at-a-time\"\nlisten-backlog = 4\n"),
        )
        .unwrap();
        assert_eq!(s.file.concurrency, Concurrency::OneAtATime);
        assert_eq!(s.file.listen_backlog, Some(4));
        let parallel = Scenario::parse(Path::new("scenarios/x.toml"), OK).unwrap();
        assert_eq!(parallel.file.concurrency, Concurrency::Parallel);
        assert_eq!(parallel.file.listen_backlog, None);

        let e = err(&format!("{OK}concurrency = \"serial\"\n"));
        assert_eq!(
            e,
            "scenarios/x.toml:6:15: unknown variant `serial`, expected `parallel` or `one-at-a-time`"
        );
        let e = err(&format!(
            "{}concurrency = \"one-at-a-time\"\n",
            OK.replace("\"close\"", "\"keep-alive\"")
        ));
        assert!(
            e.starts_with(
                "scenarios/x.toml:6:1: `concurrency = \"one-at-a-time\"` answers HTTP/1.0"
            ),
            "{e}"
        );
        let e = err(&format!("{OK}listen-backlog = 0\n"));
        assert!(
            e.starts_with("scenarios/x.toml:6:1: `listen-backlog` must be between 1 and 4096"),
            "{e}"
        );
        let e = err(&format!("{OK}listen-backlog = -1\n"));
        assert!(e.starts_with("scenarios/x.toml:6:18: "), "{e}");
    }

    #[test]
    fn unknown_scenario_name_lists_valid_ones() {
        let s = Scenario::parse(Path::new("scenarios/report.toml"), OK).unwrap();
        let e = select(vec![s], "report,nope").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown scenario `nope`; valid: report, baseline-2026 (a workload)"
        );
    }

    #[test]
    fn a_named_workload_selects_its_shipped_scenarios() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let all = load_dir(&dir).unwrap_or_else(|e| panic!("{e:?}"));
        for w in WORKLOADS {
            let names: Vec<String> = select(all.clone(), w.name)
                .unwrap_or_else(|e| panic!("{}: {e}", w.name))
                .into_iter()
                .map(|s| s.name)
                .collect();
            assert_eq!(names, w.scenarios, "{}", w.name);
        }
        assert_eq!(
            workload(" baseline-2026").map(|w| w.scenarios.len()),
            Some(10)
        );
        assert!(workload("report-close").is_none());
    }

    #[test]
    fn shipped_scenarios_all_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let all = load_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert!(all.len() >= 11, "{}", all.len());
        let one = all
            .iter()
            .find(|s| s.name == "report-one-at-a-time")
            .expect("report-one-at-a-time is shipped");
        assert_eq!(one.file.concurrency, Concurrency::OneAtATime);
    }
}
