//! The results of a handshake-matrix run: a versioned, explicitly keyed model, the attribution
//! of server connection records to steps, and renderers (terminal, Markdown, HTML, JUnit, the
//! history page).
//!
//! Numbers mean what `DESIGN.md` says: *failed handshakes* are `rejected` and
//! `rejected-after-handshake` records; *retries* are the failed handshakes of a step before its
//! first `established` connection. A cell that was not measured carries no numbers at all.

mod attribution;
mod compare;
mod render;
pub mod stats;
mod timings;

use std::collections::BTreeMap;
use std::path::Path;

use model::{ClientCause, ClientLogSource, ConnectionRecord, StepAction};
use serde::{Deserialize, Serialize};

pub use crate::attribution::{Attributed, StepWindow, attribute};
pub use crate::compare::{
    CellChange, CellTest, Component, Diff, HistoryEntry, MergeError, Rule, Verdict,
    VersionConflict, diff, diff_with, history_table, merge,
};
pub use crate::render::{Exporter, Finding, Format, findings, history_html, render, write_all};
pub use crate::timings::timings_summary;

/// Bumped whenever a field is added, removed or changes meaning.
///
/// 2: trials carry `confirmation` (measured again by `--confirm`). Version 1 files are read
/// (every trial a first-pass trial).
///
/// 3: trials carry `teardown` (and `unattributed` is always empty) and `client_log_problem`,
/// steps `settle_capped` and `errors_after_handshake`, connection outcomes may be
/// `error-after-handshake`; a client log's connections carry `evidence`, `unknown_reason`,
/// `socket_source_id` and `reused_by` (the cause `reuse` is gone); cells carry
/// `chromium_features`. Versions 1 and 2 are read (no teardown, no flags, no evidence).
///
/// 4: a connection the server itself failed on has the cause `server-fault` (with `fault`:
/// `backend-panicked` or `no-worker-thread`, and `message`) instead of an `error` whose
/// message begins `server fault: `. Versions 1 to 3 are read (and such an `error` is still
/// recognised as a server fault).
///
/// Within 4, a cell key may carry a `label` (builds of one browser side by side, e.g.
/// `--chromium candidate=…`) and `environment.browsers` then names such a build
/// `chromium@candidate`. It is left out when absent, so a run without labels is written
/// byte for byte as before, and every file written before reads unchanged.
///
/// Also within 4, cells carry `chromium_disabled_features` and `firefox_prefs` (the scenario's
/// knobs), and `chromium_features` may name features the harness does not list; the
/// environment carries `scenario_knobs`, every knob's setting as handed to each browser. Each
/// is left out when empty, so a run without knobs is written as before.
///
/// Also within 4, a trial may name its packet capture (`capture`), left out when there is none.
///
/// 5: a connection record may come from a recording relay in front of a server the harness
/// does not own (`relay`: which fields it inferred, and how), and its cause may then be
/// `encrypted-alert`. A reader of 4 would take such a record as the server's own, with every
/// field observed, hence the bump. Files of 1 to 4 read unchanged.
///
/// 6: a trial says where its wall time went (`timings`), and the environment how much CPU the
/// harness itself used (`harness_cpu`). A reader of 5 refuses unknown fields, hence the bump;
/// files of 1 to 5 read unchanged, without either.
pub const SCHEMA_VERSION: u32 = 6;

/// Schema versions this harness reads.
pub const READS_SCHEMA_VERSIONS: [u32; 6] = [1, 2, 3, 4, 5, 6];

/// One run: its environment and every requested cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunResults {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Where and how the run happened.
    pub environment: Environment,
    /// Every requested cell, in run order; unfinished cells are absent, not zero.
    pub cells: Vec<CellResult>,
    /// Cells requested in total (so a partial file says how partial it is).
    pub cells_requested: usize,
}

/// Versions and circumstances of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The harness crate version.
    pub harness_version: String,
    /// `git describe --always --dirty` of the checkout, when available.
    pub git_revision: Option<String>,
    /// The exact command line.
    pub command: Vec<String>,
    /// `PRETTY_NAME` from /etc/os-release and the kernel release.
    pub os: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 end time; absent while the run is in progress or was interrupted.
    pub ended_at: Option<String>,
    /// Per browser build (`chromium`, or `chromium@candidate` for a labelled build; see
    /// [`CellKey::browser_column`]): its version and its driver's, or why it is unavailable.
    pub browsers: BTreeMap<String, ToolVersions>,
    /// Chromium's version and active field-trial groups as its NetLog reports them.
    #[serde(default)]
    pub chromium_netlog: Option<NetLogInfo>,
    /// Per backend: the linked library's own version string.
    pub backends: BTreeMap<String, String>,
    /// Per scenario with knobs, per browser: each knob's setting exactly as the browser got it,
    /// e.g. `--enable-features=HappyEyeballsV3` or
    /// `user_pref("network.http.speculative-parallel-limit", 0);`. Absent when no scenario of
    /// the run changes a browser setting.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scenario_knobs: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// CPU time of the harness process itself (its in-process servers included) and of the
    /// processes it waited for, over the run; absent while the run is in progress (schema 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_cpu: Option<CpuTime>,
}

/// CPU time used over a run, milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuTime {
    /// Wall time the figures below were taken over.
    pub wall_ms: u64,
    /// The harness process: user time (its threads: runner, in-process TLS servers, relays,
    /// NetLog parsing, compression).
    pub user_ms: u64,
    /// The harness process: system time.
    pub system_ms: u64,
    /// Children the harness reaped (drivers, server programs, certutil), user + system. Browsers
    /// are their drivers' children and count only where a driver waited for them.
    pub children_ms: u64,
}

/// Where one trial's wall time went, milliseconds, in the order the trial spends it (schema 6).
/// The parts do not add up to `wall_ms` exactly: what is left is the runner's own bookkeeping
/// between them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialTimings {
    /// Generating the certificate and writing its files.
    pub certificate_ms: u64,
    /// Starting the server (and the relay in front of it).
    pub server_start_ms: u64,
    /// The profile and HOME: folders, the NSS trust store, prefs.
    pub profile_ms: u64,
    /// Starting the WebDriver server until it answers.
    pub driver_start_ms: u64,
    /// Creating the WebDriver session (the browser starts) and trust set up through it.
    pub session_start_ms: u64,
    /// Per step, in order.
    pub steps: Vec<StepTiming>,
    /// Ending the WebDriver session and waiting for every browser process to exit.
    pub session_close_ms: u64,
    /// Stopping the server and collecting its records.
    pub server_stop_ms: u64,
    /// Writing the packet capture.
    pub capture_ms: u64,
    /// Reading and joining the browser's log (wall time, compression excluded).
    pub client_log_ms: u64,
    /// Compressing the browser's log.
    pub compress_ms: u64,
    /// CPU time of reading, joining and compressing the browser's log (its thread's own).
    pub client_log_cpu_ms: u64,
}

/// One step's wall time: what the browser did, then the wait for the server to be quiet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepTiming {
    /// The WebDriver command until it returned what the browser shows.
    pub action_ms: u64,
    /// The settle wait after it.
    pub settle_ms: u64,
}

/// What a Chromium NetLog says about the browser itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetLogInfo {
    /// `clientInfo.version`.
    pub browser_version: Option<String>,
    /// `activeFieldTrialGroups` (features can change behaviour between runs of one version).
    pub field_trials: Vec<String>,
}

/// The browser's side of one server connection, from its own log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSide {
    /// Why the browser opened it: `preconnect`, `first-attempt`, `restart-with-allowed-cert`,
    /// `parallel-attempt`, `ech-restart`, `unknown` (older files may say `reuse`).
    pub cause: ClientCause,
    /// For `unknown`: where the log's explicit links stop (or why no socket in the log is this
    /// connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// The log's socket joined to this connection (its NetLog source id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_source_id: Option<i64>,
    /// The NetLog sources and event types the cause rests on, from the socket up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// Requests that went out on this connection after the first (keep-alive reuse).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reused_by: u32,
    /// The browser's net error for the handshake, e.g. -202 (`ERR_CERT_AUTHORITY_INVALID`).
    pub net_error: Option<i64>,
    /// The alert the browser sent, e.g. `fatal certificate_unknown (46)`.
    pub alert_sent: Option<String>,
    /// The request URL, where the log names it.
    pub url: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One NetLog event a cause rests on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// The NetLog source id.
    pub source_id: i64,
    /// The source's type, e.g. `SSL_CONNECT_JOB`.
    pub source_type: String,
    /// The event type, e.g. `SOCKET_POOL_BOUND_TO_CONNECT_JOB`.
    pub event: String,
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.source_type, self.source_id, self.event)
    }
}

/// A browser log of one trial, joined to the server's records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientLog {
    /// `chromium-netlog`, `firefox-moz-log` or `webkit-journal`.
    pub source: ClientLogSource,
    /// The kept (compressed) log, relative to the run folder.
    pub file: String,
    /// The log ended early (the browser did not exit cleanly); what was there was used.
    pub truncated: bool,
    /// The browser version the log names.
    pub browser_version: Option<String>,
    /// Active field-trial groups the log names.
    pub field_trials: Vec<String>,
    /// Per server record id: the browser's side. Records without an entry were not found in
    /// the log (`unknown`).
    pub connections: BTreeMap<u64, ClientSide>,
}

/// A browser and its driver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolVersions {
    /// e.g. `Chromium 156.0.8078.108`.
    pub browser: Option<String>,
    /// e.g. `ChromeDriver 156.0.8078.108`.
    pub driver: Option<String>,
    /// Why the browser cannot be used, if it cannot.
    pub unavailable: Option<String>,
}

/// What identifies a cell.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellKey {
    /// Scenario name (its file stem).
    pub scenario: String,
    /// `rustls`, `openssl`, `mbedtls`.
    pub backend: String,
    /// `chromium`, `firefox`: the engine, whichever build of it measured the cell.
    pub browser: String,
    /// The build's label when several builds of one browser are measured side by side
    /// (`--chromium candidate=…`), e.g. `candidate`; absent otherwise, so a run without labels
    /// is written exactly as before labels existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `1.2`, `1.3`.
    pub tls: String,
}

impl CellKey {
    /// The matrix column's browser and the key of [`Environment::browsers`]: `chromium`, or
    /// `chromium@candidate` for a labelled build.
    pub fn browser_column(&self) -> String {
        browser_column(&self.browser, self.label.as_deref())
    }
}

/// `browser`, or `browser@label`: how a build is named in a matrix column, in
/// [`Environment::browsers`] and in a cell's name.
pub fn browser_column(browser: &str, label: Option<&str>) -> String {
    match label {
        Some(l) => format!("{browser}@{l}"),
        None => browser.to_owned(),
    }
}

impl std::fmt::Display for CellKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} / {} / {} / TLS {}",
            self.scenario,
            self.backend,
            self.browser_column(),
            self.tls
        )
    }
}

/// Whether a cell was measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CellStatus {
    /// Every trial ran.
    Measured,
    /// The combination cannot be run (e.g. a Chromium-only flag in Firefox).
    Unsupported {
        /// Why.
        reason: String,
    },
    /// At least one trial failed to run; no numbers are reported for the cell.
    Error {
        /// What went wrong.
        reason: String,
        /// Where the logs are.
        log: Option<String>,
    },
}

/// One cell: scenario × backend × browser × TLS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellResult {
    /// The key.
    pub key: CellKey,
    /// The scenario's certificate kind.
    pub cert: String,
    /// The scenario's trust mode.
    pub trust: String,
    /// The server's connection policy.
    pub connection: String,
    /// Chromium features the scenario switched on (`--enable-features`), e.g.
    /// `HappyEyeballsV3`, listed or not; absent when none (the browser's defaults). They change
    /// how connections are pooled and logged, so a cell's numbers depend on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chromium_features: Vec<String>,
    /// Chromium features the scenario switched off (`--disable-features`), beyond the ones the
    /// harness switches off in every trial; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chromium_disabled_features: Vec<String>,
    /// Firefox prefs the scenario set (`firefox-prefs` and `speculative-parallel-limit`), over
    /// the harness's own; absent when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub firefox_prefs: BTreeMap<String, model::PrefValue>,
    /// Measured, unsupported or error.
    pub status: CellStatus,
    /// Per headline step: retries over the trials. Empty unless measured.
    pub headline: Vec<HeadlineStep>,
    /// Every trial, kept.
    pub trials: Vec<TrialResult>,
    /// The scenario's expectations that apply to this cell, each checked.
    #[serde(default)]
    pub expectations: Vec<ExpectationCheck>,
}

/// One expectation from a scenario, checked against a cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectationCheck {
    /// The rule, e.g. `retries ≤ 0 in every trial`.
    pub rule: String,
    /// Why the scenario expects it.
    pub reason: String,
    /// `None` when it holds; what broke it otherwise.
    pub broken: Option<String>,
}

/// min / median / max over trials.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// Smallest.
    pub min: u32,
    /// Median (the lower middle value for an even count, so it is always an observed value).
    pub median: u32,
    /// Largest.
    pub max: u32,
}

impl Spread {
    /// The spread of `values`, or `None` when empty.
    pub fn of(values: &[u32]) -> Option<Self> {
        let mut v = values.to_vec();
        v.sort_unstable();
        Some(Self {
            min: *v.first()?,
            median: v[(v.len() - 1) / 2],
            max: *v.last()?,
        })
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.median)
        } else {
            write!(f, "{} ({}–{})", self.median, self.min, self.max)
        }
    }
}

/// The headline numbers of one step across the trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadlineStep {
    /// Index of the step in the scenario.
    pub step: usize,
    /// `visit`, `proceed`, `revisit` (`teardown` for the pseudo-step after the last).
    pub action: StepAction,
    /// Retries before the page was shown; absent when no trial showed the page in this step.
    pub retries: Option<Spread>,
    /// All failed handshakes of the step.
    pub failed_handshakes: Spread,
    /// Trials in which this step did not show the page.
    pub trials_without_page: usize,
    /// Failed handshakes of this step by cause, summed over the trials.
    #[serde(default)]
    pub failed_by_cause: BTreeMap<ClientCause, u32>,
}

/// One trial: a fresh browser against a fresh server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialResult {
    /// 1-based.
    pub index: usize,
    /// `None` when the trial ran; the reason when it did not.
    pub error: Option<String>,
    /// The trial's folder (connection log, driver logs), relative to the run folder.
    pub log_dir: String,
    /// Per step, in order.
    pub steps: Vec<StepResult>,
    /// Connections whose accept time fell in no step window. Empty by construction since
    /// schema 3 (the windows are contiguous and `teardown` takes the rest); kept so older files
    /// read.
    pub unattributed: Vec<u64>,
    /// The pseudo-step after the last step: connections accepted while the session closed and
    /// the server stopped. Counted in the trial's totals, never in a headline (schema 3).
    #[serde(default)]
    pub teardown: Option<StepResult>,
    /// Wall time of the trial, milliseconds.
    pub wall_ms: u64,
    /// The browser's own log joined to the records, when captured.
    #[serde(default)]
    pub client_log: Option<ClientLog>,
    /// Why the browser's log is missing or unreadable, for a browser that should write one
    /// (Chromium's NetLog); its connections then have no cause at all, not `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_log_problem: Option<String>,
    /// Peak resident memory of the browser and its driver (sum of each process's peak, KiB),
    /// read just before the session closed; absent if the session never started.
    pub browser_peak_rss_kib: Option<u64>,
    /// Measured again by `--confirm` after the first pass flagged the cell (schema 2).
    #[serde(default)]
    pub confirmation: bool,
    /// The trial's packet capture with its TLS key log (`…/capture.pcapng`), relative to the
    /// run folder, when one was written. Left out when absent (within schema 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
    /// Where the wall time went (schema 6); absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<TrialTimings>,
}

/// One step of one trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepResult {
    /// `visit`, `proceed`, `revisit` (`teardown` for the pseudo-step after the last).
    pub action: StepAction,
    /// What the browser showed: `page`, `warning ERR_…`, or other.
    pub shown: String,
    /// Whether the server's page was shown.
    pub page_shown: bool,
    /// Step start, µs since the Unix epoch.
    pub started_at_us: u64,
    /// Step settled, µs since the Unix epoch.
    pub settled_at_us: u64,
    /// Connections were still arriving when the settle cap ended the step: later ones may
    /// belong to it but were counted in the next step or the teardown (schema 3).
    #[serde(default)]
    pub settle_capped: bool,
    /// `rejected` + `rejected-after-handshake` records.
    pub failed_handshakes: u32,
    /// Failed handshakes before the first established connection. When the page came over a
    /// connection opened in an earlier step (keep-alive), every failed handshake of the step.
    /// `None` when the page was not shown and no connection was established.
    pub retries: Option<u32>,
    /// The page was shown without a new connection (an earlier one was reused).
    pub page_on_reused_connection: bool,
    /// Idle connections.
    pub idle: u32,
    /// Established connections.
    pub established: u32,
    /// `error-after-handshake` records: a completed handshake, then an I/O or library error
    /// before any request (schema 3).
    #[serde(default)]
    pub errors_after_handshake: u32,
    /// HTTP requests served.
    pub requests: u32,
    /// Alert names seen, in order (with repeats).
    pub alerts: Vec<String>,
    /// Connection outcomes in accept order, e.g. `alert(46) alert(46) ok(1)`.
    pub sequence: Vec<String>,
    /// The connection records of this step.
    pub connections: Vec<ConnectionRecord>,
    /// Failed handshakes by why the browser opened them (from its log; `unknown` when the log
    /// does not say, empty when no log was captured).
    #[serde(default)]
    pub failed_by_cause: BTreeMap<ClientCause, u32>,
}

impl TrialResult {
    /// The steps and then the teardown, if any.
    pub fn steps_and_teardown(&self) -> impl Iterator<Item = &StepResult> {
        self.steps.iter().chain(self.teardown.as_ref())
    }

    /// Failed handshakes of the whole trial, the teardown's included.
    pub fn failed_handshakes(&self) -> u32 {
        self.steps_and_teardown().map(|s| s.failed_handshakes).sum()
    }

    /// Fills each step's `failed_by_cause` from the client log.
    pub fn apply_client_causes(&mut self) {
        let Some(log) = &self.client_log else { return };
        for step in self.steps.iter_mut().chain(self.teardown.as_mut()) {
            step.failed_by_cause.clear();
            for r in step
                .connections
                .iter()
                .filter(|r| r.outcome.is_failed_handshake())
            {
                let cause = log
                    .connections
                    .get(&r.id)
                    .map_or(ClientCause::Unknown, |c| c.cause);
                *step.failed_by_cause.entry(cause).or_insert(0) += 1;
            }
        }
    }
}

impl CellResult {
    /// A cell about to be measured: no knobs, no trials, no headline, no
    /// expectation checked yet.
    pub fn new(
        key: CellKey,
        cert: impl Into<String>,
        trust: impl Into<String>,
        connection: impl Into<String>,
    ) -> Self {
        Self {
            key,
            cert: cert.into(),
            trust: trust.into(),
            connection: connection.into(),
            chromium_features: Vec::new(),
            chromium_disabled_features: Vec::new(),
            firefox_prefs: BTreeMap::new(),
            status: CellStatus::Measured,
            headline: Vec::new(),
            trials: Vec::new(),
            expectations: Vec::new(),
        }
    }

    /// Computes the headline from the trials: the step that first shows the page (for
    /// click-through that is `proceed`) and every `revisit`.
    pub fn summarise(&mut self) {
        self.headline.clear();
        if self.status != CellStatus::Measured || self.trials.is_empty() {
            return;
        }
        let steps = self.trials[0].steps.len();
        let first_page_step = (0..steps).find(|&i| {
            self.trials
                .iter()
                .any(|t| t.steps.get(i).is_some_and(|s| s.page_shown))
        });
        for i in 0..steps {
            let action = self.trials[0].steps[i].action;
            let headline = Some(i) == first_page_step
                || (action == StepAction::Revisit && first_page_step.is_some_and(|f| i > f));
            if !headline {
                continue;
            }
            let of = |f: &dyn Fn(&StepResult) -> Option<u32>| -> Vec<u32> {
                self.trials
                    .iter()
                    .filter_map(|t| t.steps.get(i))
                    .filter_map(f)
                    .collect()
            };
            let retries = of(&|s| s.retries.filter(|_| s.page_shown));
            let failed = of(&|s| Some(s.failed_handshakes));
            let mut failed_by_cause = BTreeMap::new();
            for s in self.trials.iter().filter_map(|t| t.steps.get(i)) {
                for (cause, n) in &s.failed_by_cause {
                    *failed_by_cause.entry(*cause).or_insert(0) += n;
                }
            }
            self.headline.push(HeadlineStep {
                step: i,
                action,
                retries: Spread::of(&retries),
                failed_handshakes: Spread::of(&failed).unwrap_or(Spread {
                    min: 0,
                    median: 0,
                    max: 0,
                }),
                trials_without_page: self.trials.len() - retries.len(),
                failed_by_cause,
            });
        }
    }
}

/// Errors reading or writing results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultsError {
    /// File I/O.
    #[error("failed to {what} {path}")]
    Io {
        /// read, write, rename.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not a results file, or a newer schema.
    #[error("{path} is not a valid matrix.json: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl RunResults {
    /// Reads `matrix.json` (or a run folder containing it).
    pub fn read(path: &Path) -> Result<Self, ResultsError> {
        let file = if path.is_dir() {
            path.join("matrix.json")
        } else {
            path.to_owned()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ResultsError::Io {
            what: "read",
            path: file.display().to_string(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ResultsError::Parse {
                path: file.display().to_string(),
                message: e.to_string(),
            })?;
        let version = value.get("schema_version").and_then(|v| v.as_u64());
        if !version.is_some_and(|v| READS_SCHEMA_VERSIONS.iter().any(|&r| u64::from(r) == v)) {
            return Err(ResultsError::Parse {
                path: file.display().to_string(),
                message: format!(
                    "schema_version {version:?}, this harness reads {READS_SCHEMA_VERSIONS:?}"
                ),
            });
        }
        serde_json::from_value(value).map_err(|e| ResultsError::Parse {
            path: file.display().to_string(),
            message: e.to_string(),
        })
    }

    /// The labels of the run's builds, sorted (empty for a run without labels).
    pub fn labels(&self) -> std::collections::BTreeSet<&str> {
        self.cells
            .iter()
            .filter_map(|c| c.key.label.as_deref())
            .collect()
    }

    /// One labelled build of the run as a run of its own: the cells measured under `label`
    /// with the label taken off their keys, and the versions of that build under the
    /// engine's name (`chromium@candidate` → `chromium`). Two builds of one run then compare
    /// with [`diff`] as two runs do, cell for cell. Browsers measured without labels are
    /// left out (their cells are in neither build).
    pub fn label_view(&self, label: &str) -> Self {
        let mut view = self.clone();
        view.cells = self
            .cells
            .iter()
            .filter(|c| c.key.label.as_deref() == Some(label))
            .cloned()
            .map(|mut c| {
                c.key.label = None;
                c
            })
            .collect();
        view.cells_requested = view.cells.len();
        let suffix = format!("@{label}");
        view.environment.browsers = self
            .environment
            .browsers
            .iter()
            .filter_map(|(name, v)| {
                name.strip_suffix(&suffix)
                    .map(|engine| (engine.to_owned(), v.clone()))
            })
            .collect();
        view
    }

    /// Cells with at least one broken expectation.
    pub fn broken_expectations(&self) -> Vec<&CellResult> {
        self.cells
            .iter()
            .filter(|c| c.expectations.iter().any(|e| e.broken.is_some()))
            .collect()
    }

    /// Whether every requested cell is present and measured or unsupported.
    pub fn complete(&self) -> bool {
        self.cells.len() == self.cells_requested
            && self
                .cells
                .iter()
                .all(|c| !matches!(c.status, CellStatus::Error { .. }))
    }
}

/// Writes `contents` to `path` atomically (temporary file in the same folder, then rename), so a
/// reader or an interrupted run never sees half a file.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), ResultsError> {
    use std::io::Write;
    let io = |what, source| ResultsError::Io {
        what,
        path: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir).map_err(|e| io("create a temporary file for", e))?;
    let written = tmp
        .1
        .write_all(contents)
        .map_err(|e| io("write", e))
        .and_then(|()| tmp.1.sync_all().map_err(|e| io("sync", e)))
        .and_then(|()| std::fs::rename(&tmp.0, path).map_err(|e| io("rename into", e)));
    if written.is_err() {
        // A full disk must not also keep our half-written copy.
        let _ = std::fs::remove_file(&tmp.0);
    }
    written
}

fn tempfile_in(dir: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    for n in 0..100u32 {
        let p = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary file name"))
}
