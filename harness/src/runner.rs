//! The runner: scenarios → cells → trials, run in parallel with full isolation, attributed,
//! summarised and written after every cell.
//!
//! Every trial owns a fresh server (own port), a fresh certificate, a fresh driver process and
//! a fresh profile/HOME, so trials can run side by side (`--jobs`) and a crashed browser fails
//! one trial — and so one cell — never the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{BackendName, ServerSpec, TlsPin};
use certs::CertBundle;
use model::{ClientCause, ClientLogSource, ConnectionRecord, Step, TlsVersion};
use results::{
    CellKey, CellResult, CellStatus, ClientLog, ClientSide, RunResults, StepWindow, TrialResult,
    attribute,
};
use tokio::sync::{Semaphore, mpsc};

use crate::browser::{
    BrowserBinaries, BrowserKind, BrowserSession, NETLOG_FILE, SessionPlan, Shown,
};
use crate::netlog;
use crate::progress::Progress;
use crate::scenario::{Scenario, ScenarioFile};

/// How a run is set up (the validated command line).
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// Scenarios to run.
    pub scenarios: Vec<Scenario>,
    /// Only these backends (empty: the scenario's).
    pub backends: Vec<BackendName>,
    /// Only these browsers (empty: the scenario's).
    pub browsers: Vec<BrowserKind>,
    /// Only these TLS versions (empty: the scenario's).
    pub tls: Vec<TlsVersion>,
    /// Override every scenario's repeat.
    pub repeat: Option<u32>,
    /// Trials at once.
    pub jobs: usize,
    /// The run folder.
    pub out: PathBuf,
    /// Per browser: its binaries, or why it cannot run.
    pub binaries: BTreeMap<BrowserKind, Result<BrowserBinaries, String>>,
    /// A step is settled after this long without a new connection.
    pub quiet: Duration,
    /// Keep each trial's profile and HOME (they are large).
    pub keep_profiles: bool,
    /// Serve every trial on this loopback port (for packet captures); `None`: a free one.
    pub server_port: Option<u16>,
    /// Only these cells (`--confirm` measures the flagged cells again); `None`: every cell.
    pub only: Option<std::collections::BTreeSet<CellKey>>,
}

/// One cell to run.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The scenario.
    pub scenario: Scenario,
    /// The backend.
    pub backend: BackendName,
    /// The browser.
    pub browser: BrowserKind,
    /// The TLS version the server is pinned to.
    pub tls: TlsVersion,
    /// Trials.
    pub repeat: u32,
}

impl Cell {
    fn key(&self) -> CellKey {
        CellKey {
            scenario: self.scenario.name.clone(),
            backend: self.backend.as_str().into(),
            browser: self.browser.as_str().into(),
            tls: self.tls.as_str().into(),
        }
    }

    fn dir(&self, out: &Path) -> PathBuf {
        out.join("trials")
            .join(&self.scenario.name)
            .join(format!("{}-{}-tls{}", self.backend, self.browser, self.tls))
    }
}

/// Expands the plan into cells, in a stable order.
pub fn cells(plan: &RunPlan) -> Vec<Cell> {
    let mut cells = Vec::new();
    for s in &plan.scenarios {
        for &backend in &s.file.backends {
            if !plan.backends.is_empty() && !plan.backends.contains(&backend) {
                continue;
            }
            for &browser in &s.file.browsers {
                if !plan.browsers.is_empty() && !plan.browsers.contains(&browser) {
                    continue;
                }
                for &tls in &s.file.tls {
                    if !plan.tls.is_empty() && !plan.tls.contains(&tls) {
                        continue;
                    }
                    let repeat = plan.repeat.unwrap_or(s.file.repeat);
                    let cell = Cell {
                        scenario: s.clone(),
                        backend,
                        browser,
                        tls,
                        repeat,
                    };
                    if plan.only.as_ref().is_some_and(|o| !o.contains(&cell.key())) {
                        continue;
                    }
                    cells.push(cell);
                }
            }
        }
    }
    cells
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Why a cell is not run at all, if it is not.
fn precheck(cell: &Cell, plan: &RunPlan) -> Option<CellStatus> {
    if let Err(reason) = crate::browser::trust_support(cell.scenario.file.trust, cell.browser) {
        return Some(CellStatus::Unsupported { reason });
    }
    let backend = cell.backend.backend();
    if let Some(reason) = backend.unavailable() {
        return Some(CellStatus::Error { reason, log: None });
    }
    if let Err(reason) = backend.supports(cell.tls) {
        return Some(CellStatus::Unsupported { reason });
    }
    match plan.binaries.get(&cell.browser) {
        Some(Ok(_)) => None,
        Some(Err(reason)) => Some(CellStatus::Error {
            reason: reason.clone(),
            log: None,
        }),
        None => Some(CellStatus::Error {
            reason: format!("{} was not set up", cell.browser),
            log: None,
        }),
    }
}

/// Runs every cell; writes the run folder after each finished cell. Returns the final results.
pub async fn run(plan: RunPlan, mut results: RunResults, progress: &Progress) -> RunResults {
    let cells = cells(&plan);
    results.cells_requested = cells.len();
    let trials_total: u64 = cells.iter().map(|c| u64::from(c.repeat)).sum();
    progress.start(trials_total, cells.len());
    let plan = Arc::new(plan);
    let permits = Arc::new(Semaphore::new(plan.jobs.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, TrialResult)>();
    let mut pending: Vec<Option<CellResult>> = Vec::with_capacity(cells.len());
    let mut outstanding = 0usize;
    let order: BTreeMap<CellKey, usize> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key(), i))
        .collect();
    for (i, cell) in cells.iter().enumerate() {
        let f = &cell.scenario.file;
        let mut result = CellResult {
            key: cell.key(),
            cert: f.cert.as_str().into(),
            trust: f.trust.as_str().into(),
            connection: f.connection.as_str().into(),
            chromium_features: if cell.browser == BrowserKind::Chromium {
                f.knobs
                    .chromium_features
                    .iter()
                    .map(|f| f.as_str().to_owned())
                    .collect()
            } else {
                Vec::new()
            },
            status: CellStatus::Measured,
            headline: Vec::new(),
            trials: Vec::new(),
            expectations: Vec::new(),
        };
        if let Some(status) = precheck(cell, &plan) {
            result.status = status;
            progress.cell_done(&result, u64::from(cell.repeat));
            results.cells.push(result);
            pending.push(None);
            continue;
        }
        pending.push(Some(result));
        for n in 1..=cell.repeat {
            outstanding += 1;
            let (plan, cell, tx, permits) =
                (plan.clone(), cell.clone(), tx.clone(), permits.clone());
            tokio::spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let trial = run_trial(&plan, &cell, n as usize).await;
                let _ = tx.send((i, trial));
            });
        }
    }
    drop(tx);
    if results.cells.len() == cells.len() {
        write(&results, &plan.out);
    }
    while outstanding > 0 {
        let Some((i, trial)) = rx.recv().await else {
            break;
        };
        outstanding -= 1;
        progress.trial_done(&cells[i].key(), &trial);
        if results.environment.chromium_netlog.is_none()
            && let Some(log) = trial
                .client_log
                .as_ref()
                .filter(|l| l.source == ClientLogSource::ChromiumNetlog)
        {
            results.environment.chromium_netlog = Some(results::NetLogInfo {
                browser_version: log.browser_version.clone(),
                field_trials: log.field_trials.clone(),
            });
        }
        let Some(cell) = pending[i].as_mut() else {
            continue;
        };
        cell.trials.push(trial);
        if cell.trials.len() == cells[i].repeat as usize {
            let mut cell = pending[i].take().expect("present");
            cell.trials.sort_by_key(|t| t.index);
            if let Some(failed) = cell.trials.iter().find(|t| t.error.is_some()) {
                cell.status = CellStatus::Error {
                    reason: format!(
                        "trial {}: {}",
                        failed.index,
                        failed.error.as_deref().unwrap_or_default()
                    ),
                    log: Some(failed.log_dir.clone()),
                };
            }
            cell.summarise();
            check_expectations(&mut cell, &cells[i]);
            progress.cell_done(&cell, 0);
            results.cells.push(cell);
            // Keep the file in cell order, whatever order trials finished in.
            results
                .cells
                .sort_by_key(|c| order.get(&c.key).copied().unwrap_or(usize::MAX));
            write(&results, &plan.out);
        }
    }
    results
}

/// Checks the expectations of a measured cell in every trial: first the page (every cell
/// expects it), then the scenario's own that apply.
fn check_expectations(result: &mut CellResult, cell: &Cell) {
    if result.status != CellStatus::Measured {
        return;
    }
    result.expectations.push(page_expectation(result));
    for e in cell
        .scenario
        .file
        .expect
        .iter()
        .filter(|e| e.applies(cell.backend, cell.browser, cell.tls))
    {
        result.expectations.push(results::ExpectationCheck {
            rule: e.rule(),
            reason: e.reason.clone(),
            broken: broken_by(e, result),
        });
    }
}

/// The page in every headline step of every trial. A trust mode accepts the certificate, so a
/// trial whose steps never reach the page (a click-through that used up its budget, say) is a
/// finding, and its cell is not clean even when the other trials' numbers look fine.
fn page_expectation(result: &CellResult) -> results::ExpectationCheck {
    let trials = result.trials.len();
    let broken = if result.headline.is_empty() {
        Some(format!("no step showed the page in any of {trials} trials"))
    } else {
        result.headline.iter().find_map(|h| {
            let without: Vec<String> = result
                .trials
                .iter()
                .filter(|t| t.steps.get(h.step).is_none_or(|s| !s.page_shown))
                .map(|t| {
                    let shown = t.steps.get(h.step).map_or("nothing", |s| s.shown.as_str());
                    format!("trial {} showed {shown}", t.index)
                })
                .collect();
            (!without.is_empty()).then(|| {
                format!(
                    "step {} ({}): {} of {trials} trials showed the page; {}",
                    h.step + 1,
                    h.action,
                    trials - without.len(),
                    without.join(", ")
                )
            })
        })
    };
    results::ExpectationCheck {
        rule: "every trial shows the page".into(),
        reason:
            "the trust mode accepts the certificate, so every headline step must reach the page"
                .into(),
        broken,
    }
}

/// What breaks `e` in the cell's trials, if anything: the first trial that does.
fn broken_by(e: &crate::scenario::Expectation, result: &CellResult) -> Option<String> {
    let on_retries = e.max_retries.is_some() || e.min_retries.is_some();
    if on_retries && result.headline.is_empty() {
        return Some("no step showed the page".to_owned());
    }
    for t in &result.trials {
        if on_retries {
            for h in &result.headline {
                // A step without the page breaks the page expectation, not this one.
                let Some(r) = t
                    .steps
                    .get(h.step)
                    .filter(|s| s.page_shown)
                    .and_then(|s| s.retries)
                else {
                    continue;
                };
                if e.max_retries.is_some_and(|m| r > m) || e.min_retries.is_some_and(|m| r < m) {
                    return Some(format!(
                        "trial {} step {} ({}) had {r} retries",
                        t.index,
                        h.step + 1,
                        h.action
                    ));
                }
            }
        }
        if let Some(m) = e.max_failed {
            let failed = t.failed_handshakes();
            if failed > m {
                let per_step: Vec<String> = t
                    .steps_and_teardown()
                    .filter(|s| s.failed_handshakes > 0)
                    .map(|s| format!("{} {}", s.failed_handshakes, s.action))
                    .collect();
                return Some(format!(
                    "trial {} had {failed} failed handshakes ({})",
                    t.index,
                    per_step.join(", ")
                ));
            }
        }
    }
    None
}

fn write(results: &RunResults, out: &Path) {
    if let Err(e) = results::write_all(results, out) {
        tracing::error!("could not write results: {e:#}");
        eprintln!("error: could not write results to {}: {e}", out.display());
    }
}

/// Runs one trial; never panics or returns early without a result.
async fn run_trial(plan: &RunPlan, cell: &Cell, index: usize) -> TrialResult {
    let dir = cell.dir(&plan.out).join(format!("trial-{index}"));
    let rel = dir
        .strip_prefix(&plan.out)
        .unwrap_or(&dir)
        .display()
        .to_string();
    let started = Instant::now();
    let mut trial = TrialResult {
        index,
        error: None,
        log_dir: rel,
        steps: Vec::new(),
        unattributed: Vec::new(),
        teardown: None,
        wall_ms: 0,
        browser_peak_rss_kib: None,
        client_log: None,
        client_log_problem: None,
        confirmation: false,
    };
    // A hung browser must not hang the run: bound the whole trial.
    let budget =
        Duration::from_secs(60) + Duration::from_secs(20) * cell.scenario.file.steps.len() as u32;
    match tokio::time::timeout(budget, trial_body(plan, cell, &dir)).await {
        Ok(Ok(out)) => {
            trial.steps = out.steps;
            trial.teardown = Some(out.teardown);
            trial.browser_peak_rss_kib = out.peak_rss_kib;
            trial.client_log = out.client_log;
            trial.client_log_problem = out.client_log_problem;
            trial.apply_client_causes();
        }
        Ok(Err(e)) => trial.error = Some(format!("{e:#}")),
        Err(_) => {
            trial.error = Some(format!(
                "trial did not finish within {} s",
                budget.as_secs()
            ))
        }
    }
    if !plan.keep_profiles {
        for sub in ["home", "profile"] {
            let _ = tokio::fs::remove_dir_all(dir.join(sub)).await;
        }
    }
    trial.wall_ms = started.elapsed().as_millis() as u64;
    trial
}

/// The server a trial of scenario `f` starts: `bundle`'s certificate, pinned to `tls`, on
/// `port` (default: a free one). Public so that the benchmark's floor starts the same server.
pub fn server_spec(
    f: &ScenarioFile,
    bundle: &CertBundle,
    tls: TlsVersion,
    port: Option<u16>,
) -> ServerSpec {
    let mut spec = ServerSpec::new(
        bundle.chain_pem.clone(),
        bundle.key_pem.clone(),
        TlsPin::Only(tls),
        f.connection,
    );
    spec.resumption = f.resumption;
    spec.concurrency = f.concurrency;
    spec.listen_backlog = f.listen_backlog;
    spec.port = port;
    spec
}

/// What a trial that ran produced.
struct TrialOutput {
    steps: Vec<results::StepResult>,
    teardown: results::StepResult,
    peak_rss_kib: Option<u64>,
    client_log: Option<ClientLog>,
    client_log_problem: Option<String>,
}

async fn trial_body(plan: &RunPlan, cell: &Cell, dir: &Path) -> anyhow::Result<TrialOutput> {
    use anyhow::Context;
    let f = &cell.scenario.file;
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("creating {}", dir.display()))?;
    let bundle = CertBundle::generate(f.cert)?;
    let files = bundle.write_to(&dir.join("certs"))?;
    let spec = server_spec(f, &bundle, cell.tls, plan.server_port);
    let server = cell
        .backend
        .backend()
        .start(spec)
        .with_context(|| format!("starting the {} server", cell.backend))?;
    let log = server.log().clone();
    let url = server.url(f.host.as_str());
    let binaries = plan.binaries[&cell.browser]
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let session_plan = SessionPlan {
        kind: cell.browser,
        binaries,
        trust: f.trust,
        cert: &bundle,
        cert_files: &files,
        knobs: &f.knobs,
        dir,
    };

    let mut windows = Vec::new();
    let mut peak = None;
    let outcome: anyhow::Result<()> = async {
        let session = BrowserSession::start(&session_plan).await?;
        let steps = async {
            for step in &f.steps {
                let started_at_us = now_us();
                let shown = match step {
                    Step::Visit | Step::Revisit => session.visit(&url).await?,
                    Step::Proceed => session.proceed().await?,
                };
                let settled = settle(&log, plan.quiet, || server.queued()).await;
                windows.push(StepWindow {
                    action: (*step).into(),
                    page_shown: shown == Shown::Page,
                    shown: match &shown {
                        Shown::Page => "page".into(),
                        Shown::Warning { code } => format!("warning {code}"),
                        Shown::Other { detail } => detail.clone(),
                    },
                    started_at_us,
                    settled_at_us: now_us(),
                    settle_capped: settled == Settled::Capped,
                });
            }
            anyhow::Ok(())
        }
        .await;
        peak = session.peak_rss_kib();
        session.close().await;
        steps
    }
    .await;
    let stopped = tokio::task::spawn_blocking(move || server.stop())
        .await
        .context("stopping the server")?;
    let stopped_at_us = now_us();
    // Whatever was recorded is written, even when some connection was not: the file is where
    // a person looks to see what happened.
    let records = match &stopped {
        Ok(records) => records.clone(),
        Err(unrecorded) => unrecorded.records.clone(),
    };
    let jsonl: String = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("record serialises") + "\n")
        .collect();
    tokio::fs::write(dir.join("connections.jsonl"), jsonl)
        .await
        .context("writing connections.jsonl")?;
    outcome?;
    // A connection without a record has an unknown fate: counting the others would be a lie.
    stopped
        .map_err(|e| anyhow::anyhow!("the {} server: {e}; see connections.jsonl", cell.backend))?;
    if let Some(why) = server_fault(cell.backend, &records) {
        anyhow::bail!(why);
    }
    let attributed = attribute(&records, &windows, stopped_at_us);
    let (client_log, client_log_problem) =
        match client_log(cell.browser, dir, &plan.out, records).await {
            Ok(log) => (log, None),
            Err(problem) => (None, Some(problem)),
        };
    Ok(TrialOutput {
        steps: attributed.steps,
        teardown: attributed.teardown,
        peak_rss_kib: peak,
        client_log,
        client_log_problem,
    })
}

/// Why a trial's records cannot be counted, if the server itself failed on a connection: that
/// handshake failed because of us, not the browser.
fn server_fault(backend: BackendName, records: &[ConnectionRecord]) -> Option<String> {
    records.iter().find_map(|r| {
        let fault = r.server_fault()?;
        Some(format!(
            "the {backend} server failed on connection {} ({fault}); see connections.jsonl",
            r.id
        ))
    })
}

/// Reads the browser's own log of the trial, joins it to the server's records and keeps it
/// compressed. A Chromium NetLog that is missing or cannot be read is the error, which the
/// trial carries so that its cell shows it (its connections then have no cause at all).
async fn client_log(
    browser: BrowserKind,
    dir: &Path,
    out: &Path,
    records: Vec<ConnectionRecord>,
) -> Result<Option<ClientLog>, String> {
    let dir = dir.to_owned();
    let rel = |p: &Path| p.strip_prefix(out).unwrap_or(p).display().to_string();
    let rel_dir = rel(&dir);
    let shown_dir = rel_dir.clone();
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<ClientLog>> {
        match browser {
            BrowserKind::Chromium => {
                let path = dir.join(NETLOG_FILE);
                if !path.exists() {
                    anyhow::bail!("Chromium wrote no NetLog ({NETLOG_FILE})");
                }
                let summary = netlog::read(&path)?;
                let mut joined = netlog::join(&records, &summary.sockets);
                netlog::explain_unjoined(&mut joined, &records, &summary.unconnected);
                let connections = joined
                    .into_iter()
                    .map(|(id, joined)| (id, client_side(joined)))
                    .collect();
                let file = gzip(&path)?;
                Ok(Some(ClientLog {
                    source: ClientLogSource::ChromiumNetlog,
                    file: format!(
                        "{rel_dir}/{}",
                        file.file_name().unwrap_or_default().to_string_lossy()
                    ),
                    truncated: summary.truncated,
                    browser_version: summary.browser_version,
                    field_trials: summary.field_trials,
                    connections,
                }))
            }
            BrowserKind::Firefox => {
                // Firefox's log names no client ports, so its connections cannot be joined to
                // the server's records: they stay `unknown`. The log is kept for reading.
                let mut kept = Vec::new();
                for entry in std::fs::read_dir(&dir)?.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with("firefox")
                        && name.contains(".moz_log")
                        && !name.ends_with(".gz")
                    {
                        kept.push(gzip(&entry.path())?);
                    }
                }
                kept.sort();
                Ok(kept.first().map(|f| ClientLog {
                    source: ClientLogSource::FirefoxMozLog,
                    file: format!(
                        "{rel_dir}/{}",
                        f.file_name().unwrap_or_default().to_string_lossy()
                    ),
                    truncated: false,
                    browser_version: None,
                    field_trials: Vec::new(),
                    connections: Default::default(),
                }))
            }
        }
    })
    .await;
    match result {
        Ok(Ok(log)) => Ok(log),
        Ok(Err(e)) => {
            tracing::warn!("browser log of {shown_dir} unreadable: {e:#}");
            Err(format!("NetLog unreadable: {e:#}"))
        }
        Err(e) => {
            tracing::warn!("browser log of {shown_dir}: {e}");
            Err(format!("NetLog not read: {e}"))
        }
    }
}

/// The browser's side of one server record, as `matrix.json` keeps it.
fn client_side(joined: Result<netlog::ClientSocket, String>) -> ClientSide {
    match joined {
        Ok(s) => ClientSide {
            cause: s.cause,
            unknown_reason: s.unknown_reason,
            socket_source_id: Some(s.source_id),
            evidence: s
                .evidence
                .into_iter()
                .map(|e| results::Evidence {
                    source_id: e.source_id,
                    source_type: e.source_type,
                    event: e.event,
                })
                .collect(),
            reused_by: s.reused_by,
            net_error: s.net_error,
            alert_sent: s.alert_sent.map(|(level, code)| {
                let level = if level == 2 { "fatal" } else { "warning" };
                format!("{level} {} ({code})", model::alert_name(code))
            }),
            url: s.url,
        },
        Err(reason) => ClientSide {
            cause: ClientCause::Unknown,
            unknown_reason: Some(reason),
            socket_source_id: None,
            evidence: Vec::new(),
            reused_by: 0,
            net_error: None,
            alert_sent: None,
            url: None,
        },
    }
}

/// Compresses `path` to `path.gz` and removes the original; returns the new path.
fn gzip(path: &Path) -> std::io::Result<PathBuf> {
    let target = PathBuf::from(format!("{}.gz", path.display()));
    let mut input = std::fs::File::open(path)?;
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&target)?, flate2::Compression::fast());
    std::io::copy(&mut input, &mut encoder)?;
    encoder.finish()?;
    std::fs::remove_file(path)?;
    Ok(target)
}

/// The longest a step waits to settle.
pub const SETTLE_CAP: Duration = Duration::from_secs(10);

/// How a step's wait for quiet ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settled {
    /// `quiet` passed without a new connection and none was waiting.
    Quiet,
    /// [`SETTLE_CAP`] ended the wait while connections were still arriving or waiting.
    Capped,
}

/// Waits until no new connection has reached the server for `quiet` and none is waiting in its
/// accept queue, so that late connections (favicon, preconnects) are attributed to the step that
/// caused them — also when a one-at-a-time server accepts them late. Bounded by `SETTLE_CAP`;
/// a step cut off there is flagged, since later connections of it land in the next window.
async fn settle(
    log: &backends::ConnectionLog,
    quiet: Duration,
    queued: impl Fn() -> u32,
) -> Settled {
    settle_within(log, quiet, queued, SETTLE_CAP).await
}

async fn settle_within(
    log: &backends::ConnectionLog,
    quiet: Duration,
    queued: impl Fn() -> u32,
    cap: Duration,
) -> Settled {
    let start = Instant::now();
    loop {
        let last = log.last_accept().map(|t| t.max(start)).unwrap_or(start);
        let idle = last.elapsed();
        if idle >= quiet && queued() == 0 {
            return Settled::Quiet;
        }
        if start.elapsed() >= cap {
            return Settled::Capped;
        }
        let wait = if idle < quiet {
            quiet - idle
        } else {
            Duration::from_millis(20)
        };
        tokio::time::sleep(wait.min(cap.saturating_sub(start.elapsed()))).await;
    }
}

#[cfg(test)]
mod tests {
    use model::{Cause, Outcome, ServerFault, SessionInfo, StepAction};

    use super::*;

    fn record(id: u64, outcome: Outcome) -> ConnectionRecord {
        ConnectionRecord {
            id,
            accepted_at_us: id,
            closed_at_us: id + 1,
            client: "127.0.0.1:1".into(),
            client_port: 1,
            local: "127.0.0.1:2".into(),
            outcome,
            session: SessionInfo::default(),
            backend_code: None,
            queue_wait_ms: None,
            queue_wait_unknown: None,
        }
    }

    /// A measured `report-close`-like cell with `expect` from scenario text, one trial per
    /// entry of `trials`: per step whether it showed the page and its outcomes, then the
    /// teardown's outcomes.
    /// Per step: whether it showed the page, and its connections' outcomes.
    type Steps<'a> = &'a [(bool, &'a [Outcome])];

    fn checked(expect: &str, trials: &[(Steps<'_>, &[Outcome])]) -> CellResult {
        let text = format!(
            "description = \"d\"\ncert = \"self-signed\"\ntrust = \"click-through\"\nconnection = \"close\"\nsteps = [\"visit\", \"proceed\"]\n{expect}"
        );
        let scenario = Scenario::parse(Path::new("scenarios/x.toml"), &text).expect("valid");
        let cell = Cell {
            scenario,
            backend: BackendName::Rustls,
            browser: BrowserKind::Chromium,
            tls: TlsVersion::Tls13,
            repeat: trials.len() as u32,
        };
        let mut result = CellResult {
            key: cell.key(),
            cert: "self-signed".into(),
            trust: "click-through".into(),
            connection: "close".into(),
            chromium_features: Vec::new(),
            status: CellStatus::Measured,
            headline: Vec::new(),
            trials: Vec::new(),
            expectations: Vec::new(),
        };
        for (n, (steps, teardown)) in trials.iter().enumerate() {
            let mut records = Vec::new();
            let mut windows = Vec::new();
            for (i, (page, outcomes)) in steps.iter().enumerate() {
                let start = 1000 * i as u64;
                windows.push(StepWindow {
                    action: [StepAction::Visit, StepAction::Proceed][i],
                    shown: if *page {
                        "page".into()
                    } else {
                        "warning ERR_CERT_AUTHORITY_INVALID".into()
                    },
                    page_shown: *page,
                    started_at_us: start,
                    settled_at_us: start + 900,
                    settle_capped: false,
                });
                for (j, o) in outcomes.iter().enumerate() {
                    records.push(record_at(
                        records.len() as u64 + 1,
                        start + j as u64,
                        o.clone(),
                    ));
                }
            }
            for o in teardown.iter() {
                records.push(record_at(records.len() as u64 + 1, 5000, o.clone()));
            }
            let a = attribute(&records, &windows, 6000);
            result.trials.push(TrialResult {
                index: n + 1,
                error: None,
                log_dir: String::new(),
                steps: a.steps,
                unattributed: Vec::new(),
                teardown: Some(a.teardown),
                wall_ms: 0,
                client_log: None,
                client_log_problem: None,
                browser_peak_rss_kib: None,
                confirmation: false,
            });
        }
        result.summarise();
        check_expectations(&mut result, &cell);
        result
    }

    fn record_at(id: u64, at: u64, outcome: Outcome) -> ConnectionRecord {
        ConnectionRecord {
            accepted_at_us: at,
            ..record(id, outcome)
        }
    }

    #[test]
    fn a_trial_without_the_page_breaks_the_page_expectation_and_only_that() {
        let alert = || Outcome::Rejected {
            cause: Cause::alert(2, 46),
        };
        let ok = Outcome::Established { requests: 1 };
        let page: &[(bool, &[Outcome])] = &[(false, &[alert()]), (true, &[alert(), ok.clone()])];
        let no_page: &[(bool, &[Outcome])] = &[(false, &[alert()]), (false, &[alert(), alert()])];
        let c = checked(
            "[[expect]]\nmin-retries = 1\nreason = \"r\"\n",
            &[(page, &[]), (no_page, &[]), (page, &[])],
        );
        let page_check = &c.expectations[0];
        assert_eq!(page_check.rule, "every trial shows the page");
        assert_eq!(
            page_check.broken.as_deref(),
            Some(
                "step 2 (proceed): 2 of 3 trials showed the page; trial 2 showed warning ERR_CERT_AUTHORITY_INVALID"
            )
        );
        assert_eq!(
            c.expectations[1].broken, None,
            "retries are judged where the page was shown"
        );
        let fine = checked("", &[(page, &[]), (page, &[])]);
        assert_eq!(fine.expectations.len(), 1);
        assert_eq!(fine.expectations[0].broken, None);
    }

    #[test]
    fn max_failed_counts_every_step_and_the_teardown() {
        let ok = Outcome::Established { requests: 1 };
        let ok = std::slice::from_ref(&ok);
        let clean: &[(bool, &[Outcome])] = &[(true, ok), (true, ok)];
        let expect = "[[expect]]\nmax-failed = 0\nreason = \"no handshake can fail\"\n";
        let holds = checked(expect, &[(clean, &[Outcome::Idle])]);
        assert_eq!(
            holds.expectations[1].rule,
            "failed handshakes ≤ 0 per trial"
        );
        assert_eq!(holds.expectations[1].broken, None);
        let reset = Outcome::Rejected {
            cause: Cause::Reset,
        };
        let broken = checked(expect, &[(clean, &[]), (clean, &[reset])]);
        assert_eq!(
            broken.expectations[1].broken.as_deref(),
            Some("trial 2 had 1 failed handshakes (1 teardown)")
        );
        assert_eq!(
            broken
                .headline
                .iter()
                .map(|h| h.failed_handshakes.max)
                .max(),
            Some(0),
            "the teardown is never in a headline"
        );
    }

    #[tokio::test]
    async fn a_step_cut_off_by_the_cap_is_flagged_and_a_quiet_one_is_not() {
        let log = backends::ConnectionLog::default();
        let quiet = Duration::from_millis(30);
        let cap = Duration::from_millis(200);
        assert_eq!(settle_within(&log, quiet, || 0, cap).await, Settled::Quiet);
        // A connection waiting in the accept queue for longer than the cap: still arriving.
        let started = Instant::now();
        assert_eq!(settle_within(&log, quiet, || 1, cap).await, Settled::Capped);
        assert!(started.elapsed() >= cap && started.elapsed() < cap * 3);
    }

    #[test]
    fn a_server_fault_voids_the_trial_and_a_client_error_does_not() {
        let garbage = Outcome::Rejected {
            cause: Cause::Error {
                message: "decode error".into(),
            },
        };
        let panic = Outcome::Rejected {
            cause: Cause::ServerFault {
                fault: ServerFault::BackendPanicked,
                message: "boom".into(),
            },
        };
        // As files before schema 4 spelled it.
        let old_panic = Outcome::Rejected {
            cause: Cause::Error {
                message: "server fault: backend panicked: boom".into(),
            },
        };
        let ok = Outcome::Established { requests: 1 };
        assert_eq!(
            server_fault(
                BackendName::Rustls,
                &[record(1, garbage.clone()), record(2, ok.clone())]
            ),
            None
        );
        for panic in [panic, old_panic] {
            let why = server_fault(
                BackendName::Openssl,
                &[
                    record(1, garbage.clone()),
                    record(2, panic),
                    record(3, ok.clone()),
                ],
            )
            .expect("a fault");
            assert!(
                why.starts_with(
                    "the openssl server failed on connection 2 (server fault: backend panicked: boom)"
                ),
                "{why}"
            );
        }
    }
}
