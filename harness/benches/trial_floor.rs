//! How much does the harness add to the browser's own cost of a trial, and what does `--jobs`
//! buy? Run with `cargo bench -p harness --bench trial_floor` (env `BENCH_TRIALS`, default 10).
//!
//! 1. The floor: a bare loop — start chromedriver, create a WebDriver session, navigate to a
//!    rustls server, quit — with no harness logic (no certificate, profile or attribution work).
//! 2. The harness's per-trial time for the same step (`visit`, accept-insecure, Chromium), with
//!    the default 500 ms settle period and with none (the settle period is deliberate: it is
//!    what attributes late connections to the right step).
//! 3. Their ratio, and the wall time of the same matrix at `--jobs 1` and `--jobs 2`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use backends::{BackendName, ConnectionPolicy, ServerSpec, TlsPin, TlsVersion};
use fantoccini::ClientBuilder;
use harness::browser::{BrowserBinaries, BrowserKind};
use harness::progress::Progress;
use harness::runner::{RunPlan, run};
use harness::scenario::Scenario;
use results::{Environment, RunResults, SCHEMA_VERSION};
use serde_json::json;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[(v.len() - 1) / 2]
}

async fn floor(trials: usize, chromium: &BrowserBinaries, url: &str) -> Vec<f64> {
    let mut times = Vec::new();
    for _ in 0..trials {
        let start = Instant::now();
        let port = harness::process::free_port().unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut driver = tokio::process::Command::new(&chromium.driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium.browser, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", format!("--user-data-dir={}", profile.path().display())]}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        client.goto(url).await.unwrap();
        client.close().await.unwrap();
        driver.kill().await.unwrap();
        times.push(start.elapsed().as_secs_f64());
    }
    times
}

async fn harness_run(
    trials: u32,
    jobs: usize,
    quiet_ms: u64,
    bins: &BrowserBinaries,
) -> (Vec<f64>, f64) {
    let scenario = Scenario::parse(
        Path::new("bench-visit.toml"),
        "description = \"bench\"\ncert = \"self-signed\"\ntrust = \"accept-insecure\"\nconnection = \"keep-alive\"\nsteps = [\"visit\"]\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let plan = RunPlan {
        scenarios: vec![scenario],
        backends: vec![BackendName::Rustls],
        browsers: vec![BrowserKind::Chromium],
        tls: vec![TlsVersion::Tls13],
        repeat: Some(trials),
        jobs,
        out: out.path().to_owned(),
        binaries: BTreeMap::from([(BrowserKind::Chromium, Ok(bins.clone()))]),
        quiet: Duration::from_millis(quiet_ms),
        keep_profiles: false,
        server_port: None,
        only: None,
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
    format!(
        "{cores} cores ({cpu}), {}",
        mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    )
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let trials: usize = std::env::var("BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let bins =
        BrowserBinaries::find(BrowserKind::Chromium, None, None).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bundle = certs::CertBundle::generate(certs::CertKind::SelfSigned).unwrap();
        let server = BackendName::Rustls
            .backend()
            .start(ServerSpec::new(bundle.chain_pem.clone(), bundle.key_pem.clone(), TlsPin::Only(TlsVersion::Tls13), ConnectionPolicy::KeepAlive))
            .unwrap();
        let floor = median(floor(trials, &bins, &server.url("localhost")).await);
        let (settled, wall_1) = harness_run(trials as u32, 1, 500, &bins).await;
        let (_, wall_2) = harness_run(trials as u32, 2, 500, &bins).await;
        let (unsettled, wall_1_unsettled) = harness_run(trials as u32, 1, 0, &bins).await;
        let (_, wall_2_unsettled) = harness_run(trials as u32, 2, 0, &bins).await;
        let (settled, unsettled) = (median(settled), median(unsettled));
        println!("machine: {}", machine());
        println!("trials per measurement: {trials} (Chromium, rustls, TLS 1.3, accept-insecure, one visit)");
        println!("floor (bare WebDriver loop), median per trial: {floor:.3} s");
        println!("harness per trial, settle 500 ms (default):  {settled:.3} s  ratio {:.2}", settled / floor);
        println!("harness per trial, settle 0 ms:              {unsettled:.3} s  ratio {:.2}", unsettled / floor);
        println!("matrix wall time, settle 500 ms: --jobs 1 {wall_1:.1} s, --jobs 2 {wall_2:.1} s, ratio {:.2}", wall_2 / wall_1);
        println!(
            "matrix wall time, settle 0 ms:   --jobs 1 {wall_1_unsettled:.1} s, --jobs 2 {wall_2_unsettled:.1} s, ratio {:.2}",
            wall_2_unsettled / wall_1_unsettled
        );
        drop(server);
    });
}
