//! How much does the harness add to the browser's own cost of a trial, and what does `--jobs`
//! buy? Run with `cargo bench -p harness --bench trial_floor`.
//!
//! Environment:
//! - `BENCH_TRIALS` — pairs per settle period (default 10);
//! - `BENCH_SETTLE_MS` — settle periods to measure, separated by commas (default `500,0`: the
//!   default `--quiet-ms` and none);
//! - `BENCH_JOBS` — `0` skips the `--jobs 1` / `--jobs 2` comparison (default: measure it);
//! - `BENCH_FIREFOX` — `0` skips the Firefox pairs (default: measure them when geckodriver is
//!   installed);
//! - `BENCH_REUSE` — `0` skips the browser-reuse ceiling (default: measure it, for every browser
//!   installed).
//!
//! **The floor** is one trial's browser work with none of the harness's measurement: inside
//! the timer it generates the certificate and starts the rustls server as a trial does
//! ([`target::Target::start`]), starts chromedriver and Chromium with the trial's own driver
//! command and capabilities ([`browser::driver_command`], [`browser::capabilities`]: the
//! functions trials use, so the bench holds no copy of Chromium's arguments, NetLog included),
//! navigates once, ends the session with the trial's teardown ([`browser::end_session`]: delete
//! the session, stop the driver, wait for every process of its group), stops the server and
//! removes the profile. What it leaves out is what the harness adds: waiting for the step to
//! settle, attributing connections, reading and compressing the NetLog, writing results.
//!
//! **The harness** is [`runner::run`] on the same scenario (Chromium, rustls, TLS 1.3,
//! `accept-insecure`, one `visit`), one trial at a time (`--repeat 1 --jobs 1`); its time is
//! the trial's own `wall_ms`.
//!
//! The two are interleaved — floor, harness, floor, harness, … and for each pair one of each
//! settle period — so a machine that slows down or speeds up during the bench moves both
//! sides of a pair alike. Per settle period it prints both medians and the spread
//! (min / median / max) of the per-pair ratio harness / floor, and where the harness trial's
//! time went (its `timings`: session start, the step's action and settle wait, close, log).
//!
//! **Firefox's profile template** (the speed issue): the same one-visit trial with Firefox,
//! interleaved from an empty profile (`--fresh-profiles`) and from the run's template (the
//! default), one template made before the pairs as a run makes it once.
//!
//! **What browser reuse could save at most** (the speed issue): the CPU time and wall time of a
//! trial's browser work — a new server, four visits to it — with a browser started and closed
//! for every trial (as trials do), against one browser kept open for all of them, each trial in
//! a new tab against a new server. CPU is this process's and every process it reaped: the
//! harness is a child subreaper, so a browser's CPU counts once its session has ended. The
//! machine is CPU-bound on the browsers in a run, so CPU per trial bounds how fast the fixed
//! workload can go; no settle wait and no measurement are in either side.
//!
//! **The fixed workload's floor**: those CPU figures times each browser's trials in
//! `--matrix baseline-2026` (counted from the shipped scenarios as a run counts them), over the
//! machine's cores — the least wall time any schedule could reach, for the browsers' starts and
//! closes alone with a browser per trial (DESIGN's trial: a fresh browser session), for their
//! whole work, and for one browser per engine.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::BackendName;
use certs::{CertBundle, CertFiles};
use fantoccini::ClientBuilder;
use harness::browser::{
    self, BrowserBinaries, BrowserKind, BrowserSession, ProfileTemplates, SessionPlan,
    binary_version,
};
use harness::process::{DriverProcess, free_port};
use harness::progress::Progress;
use harness::runner::{RelayMode, RunPlan, cells, precheck, run};
use harness::scenario::{self, Scenario};
use harness::target::{self, RunningTarget, TrialServer};
use harness::timing::CpuClock;
use model::TlsVersion;
use results::{Environment, RunResults, SCHEMA_VERSION, TrialResult};

const SCENARIO: &str = "description = \"bench\"\ncert = \"self-signed\"\ntrust = \"accept-insecure\"\nconnection = \"keep-alive\"\nsteps = [\"visit\"]\n";
const TLS: TlsVersion = TlsVersion::Tls13;

fn scenario() -> Scenario {
    Scenario::parse(Path::new("bench-visit.toml"), SCENARIO).expect("the bench scenario parses")
}

/// min, median, max.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[(v.len() - 1) / 2], v[v.len() - 1])
}

/// A trial's certificate, generated and written into `dir` as a trial does.
fn certificate(scenario: &Scenario, dir: &Path) -> (CertBundle, CertFiles) {
    let bundle = CertBundle::generate(scenario.file.cert).unwrap();
    let files = bundle.write_to(&dir.join("certs")).unwrap();
    (bundle, files)
}

/// A trial's server: its certificate, and the rustls server started as a trial does
/// ([`target::Target::start`]), in `dir`.
fn start_server(
    scenario: &Scenario,
    dir: &Path,
) -> (CertBundle, CertFiles, Box<dyn RunningTarget>) {
    let f = &scenario.file;
    let (bundle, files) = certificate(scenario, dir);
    let server = target::builtin(BackendName::Rustls)
        .start(&TrialServer {
            scenario: f,
            cert: &bundle,
            tls: TLS,
            port: None,
            dir,
        })
        .unwrap();
    (bundle, files, server)
}

/// The session plan of a bench trial in `dir`.
fn session_plan<'a>(
    kind: BrowserKind,
    bins: &'a BrowserBinaries,
    scenario: &'a Scenario,
    bundle: &'a CertBundle,
    files: &'a CertFiles,
    dir: &'a Path,
) -> SessionPlan<'a> {
    let f = &scenario.file;
    SessionPlan {
        kind,
        binaries: bins,
        trust: f.trust,
        cert: bundle,
        cert_files: files,
        knobs: &f.knobs,
        dir,
        steering: None,
        tls_pin: None,
        any_page: false,
        profile_template: None,
    }
}

/// One floor trial in its own folder; seconds.
async fn floor_trial(bins: &BrowserBinaries, scenario: &Scenario) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let start = Instant::now();
    let (bundle, files, server) = start_server(scenario, dir);
    let url = server.url(scenario.file.host);
    let plan = session_plan(BrowserKind::Chromium, bins, scenario, &bundle, &files, dir);
    let (home, profile) = browser::home_and_profile(dir);
    for d in [&home, &profile] {
        std::fs::create_dir_all(d).unwrap();
    }
    let tmp = harness::scratch::folder("bench").unwrap();
    let port = free_port().unwrap();
    let command = browser::driver_command(&plan, port, tmp.path());
    let mut driver = DriverProcess::spawn(
        command.name,
        &command.program,
        &command.args,
        &command.env,
        &command.log,
        port,
        vec![dir.to_owned(), tmp.path().to_owned()],
    )
    .await
    .unwrap_or_else(|e| panic!("chromedriver: {e}"));
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(browser::capabilities(&plan))
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    client.goto(&url).await.unwrap();
    browser::end_session(Some(client), &mut driver).await;
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap()
        .expect("every connection recorded");
    for d in [&home, &profile] {
        let _ = tokio::fs::remove_dir_all(d).await;
    }
    start.elapsed().as_secs_f64()
}

/// How a harness run of the bench is made.
struct HarnessRun<'a> {
    kind: BrowserKind,
    bins: &'a BrowserBinaries,
    templates: Option<Arc<ProfileTemplates>>,
}

/// The harness on `trials` trials of the bench scenario: each trial, and the wall time of the
/// whole run in seconds.
async fn harness_run(
    trials: u32,
    jobs: usize,
    quiet_ms: u64,
    how: &HarnessRun<'_>,
) -> (Vec<TrialResult>, f64) {
    let out = tempfile::tempdir().unwrap();
    let plan = RunPlan {
        tls: vec![TLS],
        repeat: Some(trials),
        jobs,
        out: out.path().to_owned(),
        quiet: Duration::from_millis(quiet_ms),
        profile_templates: how.templates.clone(),
        ..run_plan(
            vec![scenario()],
            vec![target::TargetName::Builtin(BackendName::Rustls)],
            vec![(how.kind, how.bins)],
        )
    };
    let empty = RunResults {
        schema_version: SCHEMA_VERSION,
        environment: Environment::default(),
        cells: vec![],
        cells_requested: 0,
    };
    let start = Instant::now();
    let r = run(plan, empty, &Progress::new()).await;
    let wall = start.elapsed().as_secs_f64();
    for c in &r.cells {
        for t in &c.trials {
            assert!(t.error.is_none(), "trial {} failed: {:?}", t.index, t.error);
        }
    }
    (r.cells.into_iter().flat_map(|c| c.trials).collect(), wall)
}

/// A run of `scenarios` against `backends` with these browsers, every other choice a run's
/// default (both TLS versions, each scenario's `repeat`, one job, no profile template).
fn run_plan(
    scenarios: Vec<Scenario>,
    backends: Vec<target::TargetName>,
    browsers: Vec<(BrowserKind, &BrowserBinaries)>,
) -> RunPlan {
    RunPlan {
        scenarios,
        backends,
        browsers: browsers.iter().map(|(kind, _)| *kind).collect(),
        tls: Vec::new(),
        repeat: None,
        jobs: 1,
        out: std::env::temp_dir(),
        binaries: browsers
            .into_iter()
            .map(|(kind, bins)| (kind.into(), Ok(bins.clone())))
            .collect(),
        quiet: Duration::from_millis(500),
        keep_profiles: false,
        server_port: None,
        only: None,
        relay: RelayMode::Off,
        external: Vec::new(),
        profile_templates: None,
    }
}

/// A trial's wall time in seconds.
fn seconds(t: &TrialResult) -> f64 {
    t.wall_ms as f64 / 1000.0
}

/// Median milliseconds of each part of `trials`' timings, as one line.
fn parts(trials: &[TrialResult]) -> String {
    let median = |f: &dyn Fn(&results::TrialTimings) -> u64| {
        let mut v: Vec<u64> = trials
            .iter()
            .filter_map(|t| t.timings.as_ref())
            .map(f)
            .collect();
        v.sort_unstable();
        v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
    };
    format!(
        "profile {} ms, driver {} ms, session start {} ms, action {} ms, settle {} ms, close {} ms, browser log {} ms",
        median(&|t| t.profile_ms),
        median(&|t| t.driver_start_ms),
        median(&|t| t.session_start_ms),
        median(&|t| t.steps.iter().map(|s| s.action_ms).sum()),
        median(&|t| t.steps.iter().map(|s| s.settle_ms).sum()),
        median(&|t| t.session_close_ms),
        median(&|t| t.client_log_ms + t.compress_ms),
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(str::to_owned))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {}; load average {}",
        mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn main() {
    // `cargo bench` passes `--bench`; everything else comes from the environment.
    let trials: usize = std::env::var("BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    let settles: Vec<u64> = std::env::var("BENCH_SETTLE_MS")
        .unwrap_or_else(|_| "500,0".into())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("BENCH_SETTLE_MS: {v:?} is not milliseconds"))
        })
        .collect();
    let compare_jobs = std::env::var("BENCH_JOBS").map_or(true, |v| v != "0");
    let bins =
        BrowserBinaries::find(BrowserKind::Chromium, None, None).unwrap_or_else(|e| panic!("{e}"));
    let scenario = scenario();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        println!("machine: {}", machine());
        println!(
            "browser: {} with {}",
            binary_version(&bins.browser).unwrap_or_default(),
            binary_version(&bins.driver).unwrap_or_default()
        );
        println!(
            "{trials} pairs per settle period, interleaved (floor, harness); Chromium, rustls, TLS 1.3, accept-insecure, one visit"
        );
        let chromium = HarnessRun {
            kind: BrowserKind::Chromium,
            bins: &bins,
            templates: None,
        };
        // (floor, harness) seconds per pair, per settle period, and the harness's trials.
        let mut pairs: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
        let mut harness_trials: BTreeMap<u64, Vec<TrialResult>> = BTreeMap::new();
        for i in 0..trials {
            for &settle in &settles {
                let floor = floor_trial(&bins, &scenario).await;
                let (mut harness, _) = harness_run(1, 1, settle, &chromium).await;
                let trial = harness.remove(0);
                eprintln!(
                    "pair {}/{trials}, settle {settle} ms: floor {floor:.3} s, harness {:.3} s",
                    i + 1,
                    seconds(&trial)
                );
                pairs.entry(settle).or_default().push((floor, seconds(&trial)));
                harness_trials.entry(settle).or_default().push(trial);
            }
        }
        for &settle in &settles {
            let p = &pairs[&settle];
            let (f_min, f_med, f_max) = spread(p.iter().map(|x| x.0).collect());
            let (h_min, h_med, h_max) = spread(p.iter().map(|x| x.1).collect());
            let (r_min, r_med, r_max) = spread(p.iter().map(|x| x.1 / x.0).collect());
            let label = if settle == 500 { " (default)" } else { "" };
            println!(
                "settle {settle} ms{label}: floor median {f_med:.3} s ({f_min:.3}–{f_max:.3}), harness median {h_med:.3} s ({h_min:.3}–{h_max:.3}); harness/floor per pair: min {r_min:.2}, median {r_med:.2}, max {r_max:.2}"
            );
            println!(
                "  harness trial, settle {settle} ms, medians: {}",
                parts(&harness_trials[&settle])
            );
        }
        if compare_jobs {
            for &settle in &settles {
                let (_, wall_1) = harness_run(trials as u32, 1, settle, &chromium).await;
                let (_, wall_2) = harness_run(trials as u32, 2, settle, &chromium).await;
                println!(
                    "matrix of {trials} trials, settle {settle} ms: --jobs 1 {wall_1:.1} s, --jobs 2 {wall_2:.1} s, ratio {:.2}",
                    wall_2 / wall_1
                );
            }
        }
        let firefox = std::env::var("BENCH_FIREFOX").map_or(true, |v| v != "0");
        let firefox_bins = BrowserBinaries::find(BrowserKind::Firefox, None, None);
        match &firefox_bins {
            Ok(ff) if firefox => firefox_pairs(trials, ff).await,
            Ok(_) => {}
            Err(e) => println!("Firefox pairs skipped: {e}"),
        }
        if std::env::var("BENCH_REUSE").map_or(true, |v| v != "0") {
            let mut cpu = vec![(
                BrowserKind::Chromium,
                reuse_ceiling(BrowserKind::Chromium, &bins, trials, &scenario).await,
            )];
            match &firefox_bins {
                Ok(ff) => {
                    cpu.push((
                        BrowserKind::Firefox,
                        reuse_ceiling(BrowserKind::Firefox, ff, trials, &scenario).await,
                    ));
                    workload_floor(&cpu, &bins, ff);
                }
                Err(e) => println!(
                    "Firefox reuse ceiling and the fixed workload's floor skipped: {e}"
                ),
            }
        }
    });
}

/// Firefox from an empty profile and from the run's template, interleaved, at the default
/// settle period.
async fn firefox_pairs(trials: usize, bins: &BrowserBinaries) {
    let fresh = HarnessRun {
        kind: BrowserKind::Firefox,
        bins,
        templates: None,
    };
    let templated = HarnessRun {
        kind: BrowserKind::Firefox,
        bins,
        templates: Some(Arc::new(ProfileTemplates::new().unwrap())),
    };
    // The template is made once per run; make it before the pairs, as a run's first trial does.
    let made = Instant::now();
    harness_run(1, 1, 500, &templated).await;
    println!(
        "Firefox: the profile template and one trial from it took {:.1} s",
        made.elapsed().as_secs_f64()
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..trials {
        let (mut x, _) = harness_run(1, 1, 500, &fresh).await;
        let (mut y, _) = harness_run(1, 1, 500, &templated).await;
        let (x, y) = (x.remove(0), y.remove(0));
        eprintln!(
            "Firefox pair {}/{trials}: empty profile {:.3} s, template {:.3} s",
            i + 1,
            seconds(&x),
            seconds(&y)
        );
        a.push(x);
        b.push(y);
    }
    let (_, fresh_med, _) = spread(a.iter().map(seconds).collect());
    let (_, tmpl_med, _) = spread(b.iter().map(seconds).collect());
    let (r_min, r_med, r_max) = spread(
        a.iter()
            .zip(&b)
            .map(|(x, y)| seconds(y) / seconds(x))
            .collect(),
    );
    println!(
        "Firefox, {trials} pairs, settle 500 ms: empty profile median {fresh_med:.3} s, template median {tmpl_med:.3} s; template/empty per pair: min {r_min:.2}, median {r_med:.2}, max {r_max:.2}"
    );
    println!("  empty profile, medians: {}", parts(&a));
    println!("  template, medians: {}", parts(&b));
}

/// Visits in one trial of the reuse ceiling: the fixed workload's scenarios have three or four
/// steps, each a navigation.
const VISITS: usize = 4;

/// One trial's browser work in an open session: a new server, [`VISITS`] visits, the server
/// stopped.
async fn visits(session: &BrowserSession, scenario: &Scenario) {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, server) = start_server(scenario, dir.path());
    let url = server.url(scenario.file.host);
    for _ in 0..VISITS {
        session.visit(&url).await.unwrap();
    }
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap()
        .expect("every connection recorded");
}

/// CPU seconds (this process and every process it reaped) and wall seconds since `clock`.
fn used(clock: CpuClock) -> (f64, f64) {
    let t = clock.since();
    (
        (t.user_ms + t.system_ms + t.children_ms) as f64 / 1000.0,
        t.wall_ms as f64 / 1000.0,
    )
}

/// CPU seconds of the reuse ceiling, all its trials together: a browser per trial, and one
/// browser for them all.
#[derive(Clone, Copy)]
struct CeilingCpu {
    trials: usize,
    fresh: f64,
    reused: f64,
}

impl CeilingCpu {
    /// One start and close of the browser: the fresh side has one per trial, the reused side
    /// one in all, and both did the same visits. `None` from a single trial.
    fn start_close(&self) -> Option<f64> {
        (self.trials > 1).then(|| (self.fresh - self.reused) / (self.trials - 1) as f64)
    }

    /// One trial's visits, without a start or close.
    fn visits(&self) -> Option<f64> {
        Some((self.reused - self.start_close()?) / self.trials as f64)
    }
}

/// A browser per trial against one browser for all trials: CPU and wall time per trial. Both
/// start their sessions as trials do ([`BrowserSession::start`]: Firefox from the run's profile
/// template, with the trial's prefs).
async fn reuse_ceiling(
    kind: BrowserKind,
    bins: &BrowserBinaries,
    trials: usize,
    scenario: &Scenario,
) -> CeilingCpu {
    let templates = ProfileTemplates::new().unwrap();
    let template = templates
        .get(&kind.into(), bins)
        .await
        .unwrap_or_else(|e| panic!("{kind:?}'s profile template: {e}"));
    let session = |dir: &Path| {
        let (bundle, files) = certificate(scenario, dir);
        let dir = dir.to_owned();
        let template = template.clone();
        async move {
            let plan = SessionPlan {
                profile_template: template.as_deref(),
                ..session_plan(kind, bins, scenario, &bundle, &files, &dir)
            };
            BrowserSession::start(&plan)
                .await
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"))
        }
    };

    let fresh = CpuClock::now();
    for _ in 0..trials {
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path()).await;
        visits(&s, scenario).await;
        s.close().await;
    }
    let (fresh_cpu, fresh_wall) = used(fresh);

    let reused = CpuClock::now();
    let dir = tempfile::tempdir().unwrap();
    let s = session(dir.path()).await;
    for i in 0..trials {
        if i > 0 {
            // A new tab for each trial and the last one closed: the least isolation reuse
            // would need.
            let tab = s.client().new_window(true).await.unwrap().handle;
            s.client().close_window().await.unwrap();
            s.client().switch_to_window(tab).await.unwrap();
        }
        visits(&s, scenario).await;
    }
    s.close().await;
    let (reused_cpu, reused_wall) = used(reused);

    let n = trials as f64;
    println!(
        "{kind:?}, {trials} trials of {VISITS} visits (rustls, TLS 1.3, accept-insecure, no settle wait):"
    );
    println!(
        "  a browser per trial (as trials do): {:.2} s CPU, {:.2} s wall per trial",
        fresh_cpu / n,
        fresh_wall / n
    );
    println!(
        "  one browser, a new tab and server per trial (its start and close counted once): {:.2} s CPU, {:.2} s wall per trial",
        reused_cpu / n,
        reused_wall / n
    );
    CeilingCpu {
        trials,
        fresh: fresh_cpu,
        reused: reused_cpu,
    }
}

/// The trials of each browser in the fixed workload (`--matrix baseline-2026`), counted from
/// the shipped scenarios the way a run counts them: every cell the runner would not mark
/// `unsupported` or `error`, at its scenario's `repeat`.
fn workload_trials(
    chromium: &BrowserBinaries,
    firefox: &BrowserBinaries,
) -> Vec<(BrowserKind, u32)> {
    let workload = scenario::workload("baseline-2026").expect("the fixed workload");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let all = scenario::load_dir(&dir).unwrap_or_else(|e| panic!("{}: {e:?}", dir.display()));
    let plan = run_plan(
        scenario::select(all, workload.name).expect("its scenarios are shipped"),
        workload.backends.to_vec(),
        vec![
            (BrowserKind::Chromium, chromium),
            (BrowserKind::Firefox, firefox),
        ],
    );
    let runnable: Vec<_> = cells(&plan)
        .into_iter()
        .filter(|c| precheck(c, &plan).is_none())
        .collect();
    workload
        .browsers
        .iter()
        .map(|&kind| {
            let trials = runnable
                .iter()
                .filter(|c| c.browser == kind)
                .map(|c| c.repeat)
                .sum();
            (kind, trials)
        })
        .collect()
}

/// What DESIGN's trial — a fresh browser session — costs the fixed workload at least, from the
/// reuse ceiling's CPU ([`CeilingCpu::start_close`], [`CeilingCpu::visits`]): the browsers'
/// starts and closes alone, and their whole work with no settle wait and no measurement; and
/// the whole work of one browser per engine. A run's wall time cannot be under CPU / cores,
/// however it schedules its trials.
fn workload_floor(
    cpu: &[(BrowserKind, CeilingCpu)],
    chromium: &BrowserBinaries,
    firefox: &BrowserBinaries,
) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (mut start_close, mut fresh, mut reused) = (0.0, 0.0, 0.0);
    let mut counts = Vec::new();
    for (kind, n) in workload_trials(chromium, firefox) {
        let Some((_, c)) = cpu.iter().find(|(k, _)| *k == kind) else {
            continue;
        };
        let (Some(one_start_close), Some(visits)) = (c.start_close(), c.visits()) else {
            println!("fixed workload's floor skipped: it needs BENCH_TRIALS of 2 or more");
            return;
        };
        let n = f64::from(n);
        start_close += n * one_start_close;
        fresh += n * (visits + one_start_close);
        // One browser per engine: its visits, and its one start and close.
        reused += n * visits + one_start_close;
        counts.push(format!("{n} {kind:?}"));
    }
    let minutes = |cpu: f64| cpu / cores / 60.0;
    println!(
        "fixed workload (baseline-2026: {} trials), at least, on this machine's {cores} cores:",
        counts.join(" + ")
    );
    println!(
        "  a browser per trial (DESIGN's trial): its starts and closes alone {:.1} min, its browsers' work {:.1} min",
        minutes(start_close),
        minutes(fresh)
    );
    println!(
        "  one browser per browser engine (reuse): its browsers' work {:.1} min",
        minutes(reused)
    );
}
