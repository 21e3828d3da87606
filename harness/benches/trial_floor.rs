//! How much does the harness add to the browser's own cost of a trial, and what does `--jobs`
//! buy? Run with `cargo bench -p harness --bench trial_floor`.
//!
//! Environment:
//! - `BENCH_TRIALS` — pairs per settle period (default 10);
//! - `BENCH_SETTLE_MS` — settle periods to measure, separated by commas (default `500,0`: the
//!   default `--quiet-ms` and none);
//! - `BENCH_JOBS` — `0` skips the `--jobs 1` / `--jobs 2` comparison (default: measure it).
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
//! (min / median / max) of the per-pair ratio harness / floor.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use backends::BackendName;
use certs::CertBundle;
use fantoccini::ClientBuilder;
use harness::browser::{self, BrowserBinaries, BrowserKind, SessionPlan, binary_version};
use harness::process::{DriverProcess, free_port};
use harness::progress::Progress;
use harness::runner::{RelayMode, RunPlan, run};
use harness::scenario::Scenario;
use harness::target::{self, TrialServer};
use model::TlsVersion;
use results::{Environment, RunResults, SCHEMA_VERSION};

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

/// One floor trial in its own folder; seconds.
async fn floor_trial(bins: &BrowserBinaries, scenario: &Scenario) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let f = &scenario.file;
    let start = Instant::now();
    let bundle = CertBundle::generate(f.cert).unwrap();
    let files = bundle.write_to(&dir.join("certs")).unwrap();
    let server = target::builtin(BackendName::Rustls)
        .start(&TrialServer {
            scenario: f,
            cert: &bundle,
            tls: TLS,
            port: None,
            dir,
        })
        .unwrap();
    let url = server.url(f.host);
    let plan = SessionPlan {
        kind: BrowserKind::Chromium,
        binaries: bins,
        trust: f.trust,
        cert: &bundle,
        cert_files: &files,
        knobs: &f.knobs,
        dir,
        steering: None,
        tls_pin: None,
        any_page: false,
    };
    let (home, profile) = browser::home_and_profile(dir);
    for d in [&home, &profile] {
        std::fs::create_dir_all(d).unwrap();
    }
    let tmp = tempfile::Builder::new().prefix("hm-").tempdir().unwrap();
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

/// The harness on `trials` trials of the bench scenario; each trial's `wall_ms` in seconds, and
/// the wall time of the whole run.
async fn harness_run(
    trials: u32,
    jobs: usize,
    quiet_ms: u64,
    bins: &BrowserBinaries,
) -> (Vec<f64>, f64) {
    let out = tempfile::tempdir().unwrap();
    let plan = RunPlan {
        scenarios: vec![scenario()],
        backends: vec![target::TargetName::Builtin(BackendName::Rustls)],
        browsers: vec![BrowserKind::Chromium],
        tls: vec![TLS],
        repeat: Some(trials),
        jobs,
        out: out.path().to_owned(),
        binaries: vec![(BrowserKind::Chromium.into(), Ok(bins.clone()))],
        quiet: Duration::from_millis(quiet_ms),
        keep_profiles: false,
        server_port: None,
        only: None,
        relay: RelayMode::Off,
        external: Vec::new(),
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
    (
        r.cells
            .iter()
            .flat_map(|c| &c.trials)
            .map(|t| t.wall_ms as f64 / 1000.0)
            .collect(),
        wall,
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
        // (floor, harness) seconds per pair, per settle period.
        let mut pairs: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
        for i in 0..trials {
            for &settle in &settles {
                let floor = floor_trial(&bins, &scenario).await;
                let (harness, _) = harness_run(1, 1, settle, &bins).await;
                eprintln!(
                    "pair {}/{trials}, settle {settle} ms: floor {floor:.3} s, harness {:.3} s",
                    i + 1,
                    harness[0]
                );
                pairs.entry(settle).or_default().push((floor, harness[0]));
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
        }
        if compare_jobs {
            for &settle in &settles {
                let (_, wall_1) = harness_run(trials as u32, 1, settle, &bins).await;
                let (_, wall_2) = harness_run(trials as u32, 2, settle, &bins).await;
                println!(
                    "matrix of {trials} trials, settle {settle} ms: --jobs 1 {wall_1:.1} s, --jobs 2 {wall_2:.1} s, ratio {:.2}",
                    wall_2 / wall_1
                );
            }
        }
    });
}
