//! The runner: scenarios → cells → trials, run in parallel with full isolation, attributed,
//! summarised and written after every cell.
//!
//! Every trial owns a fresh server (own port), a fresh certificate, a fresh driver process and
//! a fresh profile/HOME, so trials can run side by side (`--jobs`) and a crashed browser fails
//! one trial — and so one cell — never the run.

mod client_log;
mod events;
mod expectations;
mod trial;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use model::TlsVersion;
use results::{CellKey, CellResult, CellStatus, RunResults, TrialResult};
use tokio::sync::{Semaphore, mpsc};

pub use self::events::{
    BrowserVersionRecorder, ExpectationChecker, IncrementalWriter, ProgressDisplay, RunEvent,
    Subscriber,
};
pub use self::trial::SETTLE_CAP;
use crate::browser::{BrowserBinaries, BrowserBuild, BrowserKind, Label, ProfileTemplates};
use crate::progress::Progress;
use crate::scenario::Scenario;
use crate::target::{Target, TargetName};

/// Every browser build of a run with its binaries, or why it cannot run, in the order the
/// command line gave them: one unlabelled build per engine, or the engine's labelled builds
/// (`--chromium stable=… --chromium candidate=…`).
pub type Binaries = Vec<(BrowserBuild, Result<BrowserBinaries, String>)>;

/// How a run is set up (the validated command line).
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// Scenarios to run.
    pub scenarios: Vec<Scenario>,
    /// Only these backends (empty: the scenario's).
    pub backends: Vec<TargetName>,
    /// Only these browsers (empty: the scenario's); every build of each.
    pub browsers: Vec<BrowserKind>,
    /// Only these TLS versions (empty: the scenario's).
    pub tls: Vec<TlsVersion>,
    /// Override every scenario's repeat.
    pub repeat: Option<u32>,
    /// Trials at once.
    pub jobs: usize,
    /// The run folder.
    pub out: PathBuf,
    /// Per browser build: its binaries, or why it cannot run. An engine a scenario names with
    /// no build here is run as its unlabelled build (and its cells are `error`: not set up).
    pub binaries: Binaries,
    /// A step is settled after this long without a new connection.
    pub quiet: Duration,
    /// Keep each trial's profile and HOME (they are large).
    pub keep_profiles: bool,
    /// Serve every trial on this loopback port (for packet captures); `None`: a free one.
    pub server_port: Option<u16>,
    /// Only these cells (`--confirm` measures the flagged cells again); `None`: every cell.
    pub only: Option<std::collections::BTreeSet<CellKey>>,
    /// Whether the built-in backends are measured directly, through the recording relay, or
    /// both side by side.
    pub relay: RelayMode,
    /// `--target`: servers the user names, measured instead of the scenarios' backends.
    pub external: Vec<Arc<dyn Target>>,
    /// Each trial's profile starts as a copy of one its browser made once in this run
    /// ([`ProfileTemplates`]); `None`: every trial starts from an empty profile
    /// (`--fresh-profiles`).
    pub profile_templates: Option<Arc<ProfileTemplates>>,
}

/// How the built-in backends are reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RelayMode {
    /// Directly (the backend column is `rustls`, …).
    #[default]
    Off,
    /// Through the recording relay only (`rustls+relay`, …).
    Only,
    /// Both, as separate columns, to compare them in one run.
    Both,
}

/// One cell to run.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The scenario.
    pub scenario: Scenario,
    /// What the browser talks to (the backend column).
    pub target: Arc<dyn Target>,
    /// The browser engine.
    pub browser: BrowserKind,
    /// The build's label, when builds of this engine are measured side by side.
    pub label: Option<Label>,
    /// The TLS version the server is pinned to.
    pub tls: TlsVersion,
    /// Trials.
    pub repeat: u32,
}

impl Cell {
    pub(crate) fn key(&self) -> CellKey {
        CellKey {
            scenario: self.scenario.name.clone(),
            backend: self.target.name().into(),
            browser: self.browser.as_str().into(),
            label: self.label.as_ref().map(ToString::to_string),
            tls: self.tls.as_str().into(),
        }
    }

    /// The browser build that measures the cell.
    pub fn build(&self) -> BrowserBuild {
        BrowserBuild {
            kind: self.browser,
            label: self.label.clone(),
        }
    }

    /// The cell's browser binaries, or why there are none.
    fn binaries<'p>(&self, plan: &'p RunPlan) -> Result<&'p BrowserBinaries, String> {
        let build = self.build();
        match plan.binaries.iter().find(|(b, _)| *b == build) {
            Some((_, Ok(binaries))) => Ok(binaries),
            Some((_, Err(reason))) => Err(reason.clone()),
            None => Err(format!("{build} was not set up")),
        }
    }

    fn dir(&self, out: &Path) -> PathBuf {
        out.join("trials").join(&self.scenario.name).join(format!(
            "{}-{}-tls{}",
            self.target.name(),
            self.build(),
            self.tls
        ))
    }
}

/// Expands the plan into cells, in a stable order: a scenario's browser becomes a column per
/// build of it (its labelled builds in the order given, else its one unlabelled build).
pub fn cells(plan: &RunPlan) -> Vec<Cell> {
    let mut cells = Vec::new();
    for s in &plan.scenarios {
        let named: Vec<Arc<dyn Target>> = plan.external.clone();
        let backends: Vec<Option<TargetName>> = if named.is_empty() {
            s.file.backends.iter().copied().map(Some).collect()
        } else {
            vec![None; named.len()]
        };
        for (n, backend) in backends.into_iter().enumerate() {
            if let Some(b) = backend
                && !plan.backends.is_empty()
                && !plan.backends.contains(&b)
            {
                continue;
            }
            for &browser in &s.file.browsers {
                if !plan.browsers.is_empty() && !plan.browsers.contains(&browser) {
                    continue;
                }
                let mut labels: Vec<Option<Label>> = plan
                    .binaries
                    .iter()
                    .filter(|(b, _)| b.kind == browser)
                    .map(|(b, _)| b.label.clone())
                    .collect();
                if labels.is_empty() {
                    labels.push(None);
                }
                for label in labels {
                    for &tls in &s.file.tls {
                        if !plan.tls.is_empty() && !plan.tls.contains(&tls) {
                            continue;
                        }
                        let repeat = plan.repeat.unwrap_or(s.file.repeat);
                        // A server program is always behind the relay; the mode is about the
                        // built-in backends.
                        let targets = match (backend, plan.relay) {
                            (None, _) => vec![named[n].clone()],
                            (Some(b), _) if !b.is_builtin() => vec![b.target(true)],
                            (Some(b), RelayMode::Off) => vec![b.target(false)],
                            (Some(b), RelayMode::Only) => vec![b.target(true)],
                            (Some(b), RelayMode::Both) => vec![b.target(false), b.target(true)],
                        };
                        for target in targets {
                            let cell = Cell {
                                scenario: s.clone(),
                                target,
                                browser,
                                label: label.clone(),
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
        }
    }
    cells
}

pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Writes each scenario's knobs into the environment, per browser, as the browser gets them.
fn record_knob_settings(cells: &[Cell], results: &mut RunResults) {
    for cell in cells {
        let settings = cell
            .browser
            .engine()
            .knob_settings(&cell.scenario.file.knobs);
        if !settings.is_empty() {
            results
                .environment
                .scenario_knobs
                .entry(cell.scenario.name.clone())
                .or_default()
                .insert(cell.browser.as_str().to_owned(), settings);
        }
    }
}

/// Why a cell is not run at all, if it is not: `unsupported` (a trust mode the browser lacks,
/// a TLS version or serving policy the target lacks) or `error` (no target, no browser).
pub fn precheck(cell: &Cell, plan: &RunPlan) -> Option<CellStatus> {
    if let Err(reason) = cell.browser.engine().supports(cell.scenario.file.trust) {
        return Some(CellStatus::Unsupported { reason });
    }
    if let Some(reason) = cell.target.unavailable() {
        return Some(CellStatus::Error { reason, log: None });
    }
    if let Err(reason) = cell.target.supports(&cell.scenario.file, cell.tls) {
        return Some(CellStatus::Unsupported { reason });
    }
    if let Err(reason) = cell
        .target
        .supports_browser(cell.browser, cell.scenario.file.trust)
    {
        return Some(CellStatus::Unsupported { reason });
    }
    cell.binaries(plan)
        .err()
        .map(|reason| CellStatus::Error { reason, log: None })
}

/// Runs every cell with the [`events::standard`] subscribers: expectations checked, the
/// browser's version recorded, progress shown, the run folder written after each finished
/// cell. Returns the final results.
pub async fn run(plan: RunPlan, results: RunResults, progress: &Progress) -> RunResults {
    let mut subscribers = events::standard(progress, plan.out.clone());
    run_with(plan, results, &mut subscribers).await
}

/// Runs every cell, telling `subscribers` (in order) what happens.
pub async fn run_with(
    plan: RunPlan,
    mut results: RunResults,
    subscribers: &mut [Box<dyn Subscriber + '_>],
) -> RunResults {
    let cells = cells(&plan);
    results.cells_requested = cells.len();
    record_knob_settings(&cells, &mut results);
    let trials: u64 = cells.iter().map(|c| u64::from(c.repeat)).sum();
    let mut run = Assembly {
        results,
        subscribers,
        order: cells
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key(), i))
            .collect(),
    };
    run.emit(&RunEvent::Started {
        cells: cells.len(),
        trials,
    });
    let plan = Arc::new(plan);
    let permits = Arc::new(Semaphore::new(plan.jobs.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, TrialResult)>();
    let mut pending: Vec<Option<CellResult>> = Vec::with_capacity(cells.len());
    let mut outstanding = 0usize;
    for (i, cell) in cells.iter().enumerate() {
        let f = &cell.scenario.file;
        // A server the user names serves its own certificate and keeps its own connections:
        // the scenario's `cert` and `connection` say nothing about it.
        let own = cell.target.own_certificate();
        let mut result = CellResult::new(
            cell.key(),
            if own {
                "the target's own"
            } else {
                f.cert.as_str()
            },
            f.trust.as_str(),
            if own {
                "the target's own"
            } else {
                f.connection.as_str()
            },
        );
        cell.browser.engine().record_knobs(&f.knobs, &mut result);
        if let Some(status) = precheck(cell, &plan) {
            result.status = status;
            run.finish(result, cell, u64::from(cell.repeat));
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
                let trial = trial::run_trial(&plan, &cell, n as usize).await;
                let _ = tx.send((i, trial));
            });
        }
    }
    drop(tx);
    while outstanding > 0 {
        let Some((i, trial)) = rx.recv().await else {
            break;
        };
        outstanding -= 1;
        run.emit(&RunEvent::TrialFinished {
            cell: &cells[i].key(),
            trial: &trial,
        });
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
            run.finish(cell, &cells[i], 0);
        }
    }
    run.emit(&RunEvent::Finished);
    run.results
}

/// The results as they grow, and who hears about it.
struct Assembly<'s, 'p> {
    results: RunResults,
    subscribers: &'s mut [Box<dyn Subscriber + 'p>],
    /// Each requested cell's place in the run order.
    order: BTreeMap<CellKey, usize>,
}

impl Assembly<'_, '_> {
    fn emit(&mut self, event: &RunEvent<'_>) {
        for s in self.subscribers.iter_mut() {
            s.on(event, &mut self.results);
        }
    }

    /// Puts a finished cell where the requested order puts it, whatever order trials finished
    /// in, and says so.
    fn finish(&mut self, cell: CellResult, spec: &Cell, skipped_trials: u64) {
        let rank = |key: &CellKey| self.order.get(key).copied().unwrap_or(usize::MAX);
        let index = self
            .results
            .cells
            .partition_point(|c| rank(&c.key) <= rank(&cell.key));
        self.results.cells.insert(index, cell);
        self.emit(&RunEvent::CellFinished {
            index,
            cell: spec,
            skipped_trials,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A plan of one scenario with every selection left to it, one job at a time.
    fn plan(scenario: Scenario, out: PathBuf, binaries: Binaries) -> RunPlan {
        RunPlan {
            scenarios: vec![scenario],
            backends: Vec::new(),
            browsers: Vec::new(),
            tls: Vec::new(),
            repeat: None,
            jobs: 1,
            out,
            binaries,
            quiet: Duration::from_millis(1),
            keep_profiles: false,
            server_port: None,
            only: None,
            relay: RelayMode::Off,
            external: Vec::new(),
            profile_templates: None,
        }
    }

    /// Remembers what it heard, and where the cell was when it heard it.
    struct Heard<'a>(&'a mut Vec<String>);

    impl Subscriber for Heard<'_> {
        fn on(&mut self, event: &RunEvent<'_>, results: &mut RunResults) {
            self.0.push(match event {
                RunEvent::Started { cells, trials } => {
                    format!("started {cells} cells {trials} trials")
                }
                RunEvent::TrialFinished { cell, trial } => {
                    format!("trial {} of {cell}", trial.index)
                }
                RunEvent::CellFinished {
                    index,
                    skipped_trials,
                    ..
                } => format!(
                    "cell {index} {} skipped {skipped_trials} expectations {}",
                    results.cells[*index].key,
                    results.cells[*index].expectations.len()
                ),
                RunEvent::Finished => "finished".into(),
            });
        }
    }

    /// A browser with labelled builds is a column per build, in the order given; an engine
    /// without builds in the plan is its one unlabelled build; `--browser` and `only` select
    /// builds like any cell.
    #[test]
    fn labelled_builds_are_columns_of_their_own_in_the_order_given() {
        let text = "description = \"d\"\ncert = \"self-signed\"\ntrust = \"trusted-ca\"\nconnection = \"close\"\nsteps = [\"visit\"]\nbackends = [\"rustls\"]\ntls = [\"1.3\"]\n";
        let scenario = Scenario::parse(Path::new("scenarios/s.toml"), text).expect("valid");
        let build = |label: &str| BrowserBuild {
            kind: BrowserKind::Chromium,
            label: Some(Label::parse(label).unwrap()),
        };
        let mut plan = plan(
            scenario,
            PathBuf::from("/nonexistent"),
            vec![
                (build("stable"), Err("missing".into())),
                (build("candidate"), Err("missing".into())),
            ],
        );
        let names = |plan: &RunPlan| {
            cells(plan)
                .iter()
                .map(|c| c.key().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&plan),
            [
                "s / rustls / chromium@stable / TLS 1.3",
                "s / rustls / chromium@candidate / TLS 1.3",
                "s / rustls / firefox / TLS 1.3",
                "s / rustls / webkit / TLS 1.3",
            ]
        );
        let c = &cells(&plan)[1];
        assert_eq!(c.key().label.as_deref(), Some("candidate"));
        assert!(
            c.dir(Path::new("/run"))
                .ends_with("rustls-chromium@candidate-tls1.3")
        );
        assert_eq!(c.binaries(&plan).unwrap_err(), "missing");
        assert_eq!(
            cells(&plan)[2].binaries(&plan).unwrap_err(),
            "firefox was not set up"
        );
        plan.browsers = vec![BrowserKind::Chromium];
        assert_eq!(names(&plan).len(), 2);
        plan.only = Some([c.key()].into());
        assert_eq!(names(&plan), ["s / rustls / chromium@candidate / TLS 1.3"]);
    }

    /// Cells that cannot run need no browser: the run still tells every subscriber about each,
    /// in order, and the writer leaves a complete run folder.
    #[tokio::test]
    async fn subscribers_hear_every_cell_in_order_and_the_folder_is_written() {
        let text = "description = \"d\"\ncert = \"self-signed\"\ntrust = \"ignore-flag\"\nconnection = \"close\"\nsteps = [\"visit\"]\nbrowsers = [\"firefox\"]\nbackends = [\"rustls\", \"openssl\"]\ntls = [\"1.3\"]\nrepeat = 2\n";
        let scenario = Scenario::parse(Path::new("scenarios/flag.toml"), text).expect("valid");
        let out = tempfile::tempdir().unwrap();
        let plan = plan(scenario, out.path().to_owned(), Vec::new());
        let empty = RunResults {
            schema_version: results::SCHEMA_VERSION,
            environment: Default::default(),
            cells: Vec::new(),
            cells_requested: 0,
        };
        let mut heard = Vec::new();
        let mut subscribers: Vec<Box<dyn Subscriber + '_>> = vec![
            Box::new(ExpectationChecker),
            Box::new(Heard(&mut heard)),
            Box::new(IncrementalWriter {
                out: out.path().to_owned(),
            }),
        ];
        let results = run_with(plan, empty, &mut subscribers).await;
        assert_eq!(results.cells.len(), 2);
        assert!(results.complete());
        assert!(
            results
                .cells
                .iter()
                .all(|c| matches!(c.status, CellStatus::Unsupported { .. }))
        );
        assert_eq!(RunResults::read(out.path()).unwrap(), results);
        drop(subscribers);
        assert_eq!(
            heard,
            [
                "started 2 cells 4 trials",
                "cell 0 flag / rustls / firefox / TLS 1.3 skipped 2 expectations 0",
                "cell 1 flag / openssl / firefox / TLS 1.3 skipped 2 expectations 0",
                "finished",
            ]
        );
    }
}
