//! Real browsers against real backends, through the runner (issues: browsers, runner).
//!
//! These start headless Chromium and Firefox; `scripts/setup.sh` installs them. Tests run one
//! at a time (a process-wide lock) so the process-leak check sees only its own trials.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use backends::BackendName;
use harness::browser::{BrowserBinaries, BrowserKind};
use harness::progress::Progress;
use harness::runner::{Binaries, RunPlan, run};
use harness::scenario::Scenario;
use model::{ClientCause, StepAction, TlsVersion};
use results::{CellResult, CellStatus, Environment, RunResults, SCHEMA_VERSION, StepResult};

mod common;
use common::{ONE_AT_A_TIME, browser_processes, cell, harness_command};

/// What these tests cover; WebKit has tests of its own (`webkit.rs`).
const CHROMIUM_AND_FIREFOX: [BrowserKind; 2] = [BrowserKind::Chromium, BrowserKind::Firefox];

fn binaries() -> Binaries {
    BrowserKind::ALL
        .into_iter()
        .map(|kind| {
            let found = BrowserBinaries::find(kind, None, None).unwrap_or_else(|e| panic!("{e}"));
            (kind.into(), Ok(found))
        })
        .collect()
}

fn scenario(name: &str, toml: &str) -> Scenario {
    Scenario::parse(Path::new(&format!("{name}.toml")), toml).expect("valid scenario")
}

fn shipped(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).expect("shipped scenario parses")
}

struct Selection {
    scenarios: Vec<Scenario>,
    backends: Vec<BackendName>,
    browsers: Vec<BrowserKind>,
    repeat: u32,
    binaries: Binaries,
    jobs: usize,
}

fn run_matrix(sel: Selection) -> (RunResults, tempfile::TempDir) {
    run_matrix_on(sel, vec![TlsVersion::Tls13])
}

fn run_matrix_on(sel: Selection, tls: Vec<TlsVersion>) -> (RunResults, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let plan = RunPlan {
        scenarios: sel.scenarios,
        backends: sel
            .backends
            .into_iter()
            .map(harness::target::TargetName::Builtin)
            .collect(),
        browsers: sel.browsers,
        tls,
        repeat: Some(sel.repeat),
        jobs: sel.jobs,
        out: out.path().to_owned(),
        binaries: sel.binaries,
        quiet: Duration::from_millis(500),
        keep_profiles: false,
        server_port: None,
        only: None,
        relay: harness::runner::RelayMode::Off,
        external: Vec::new(),
        profile_templates: None,
    };
    let results = RunResults {
        schema_version: SCHEMA_VERSION,
        environment: Environment::default(),
        cells: Vec::new(),
        cells_requested: 0,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let results = rt.block_on(run(plan, results, &Progress::new()));
    (results, out)
}

fn steps(cell: &CellResult) -> Vec<&StepResult> {
    assert_eq!(
        cell.status,
        CellStatus::Measured,
        "{}: {:?}",
        cell.key,
        cell.status
    );
    cell.trials.iter().flat_map(|t| &t.steps).collect()
}

/// Host names the browser tried to resolve or connect to, from the trial's kept logs.
fn hosts_looked_up(run: &Path, trial: &results::TrialResult) -> Vec<String> {
    use std::io::Read;
    let dir = run.join(&trial.log_dir);
    let mut hosts = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".gz") {
            continue;
        }
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(entry.path()).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        if name.starts_with("netlog") {
            let log: serde_json::Value = serde_json::from_str(&text).unwrap();
            let id = log["constants"]["logEventTypes"]["HOST_RESOLVER_MANAGER_REQUEST"]
                .as_u64()
                .unwrap();
            for e in log["events"].as_array().unwrap() {
                if e["type"].as_u64() == Some(id)
                    && let Some(h) = e["params"]["host"].as_str()
                {
                    hosts.push(h.to_owned());
                }
            }
        } else {
            // MOZ_LOG: `nsHttp host=NAME` for every channel.
            for line in text.lines() {
                if let Some(rest) = line.split(" host=").nth(1) {
                    hosts.push(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
        }
    }
    hosts
}

#[test]
fn trusted_ca_and_accept_insecure_load_without_a_failed_handshake() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (r, out) = run_matrix(Selection {
        scenarios: vec![
            shipped("control-trusted-ca"),
            shipped("control-accept-insecure"),
        ],
        backends: vec![BackendName::Rustls],
        browsers: CHROMIUM_AND_FIREFOX.to_vec(),
        repeat: 1,
        binaries: binaries(),
        jobs: 2,
    });
    assert_eq!(r.cells.len(), 4);
    for c in &r.cells {
        for s in steps(c) {
            assert!(s.page_shown, "{}: {} showed {}", c.key, s.action, s.shown);
            assert_eq!(
                s.failed_handshakes, 0,
                "{}: {} {:?}",
                c.key, s.action, s.sequence
            );
            assert!(s.established >= 1, "{}: {}", c.key, s.action);
        }
        assert!(
            c.trials.iter().all(|t| t.unattributed.is_empty()),
            "{}: every connection is explained by a step",
            c.key
        );
        // Every name the browser resolved is the server's, or one Chromium's host-resolver
        // rules mapped to `~notfound` without a DNS query.
        for t in &c.trials {
            let hosts = hosts_looked_up(out.path(), t);
            assert!(!hosts.is_empty(), "{}: the browser log was kept", c.key);
            let outside: Vec<_> = hosts
                .iter()
                .filter(|h| {
                    !(h.contains("localhost") || h.contains("127.0.0.1") || h.contains("~notfound"))
                })
                .collect();
            assert!(
                outside.is_empty(),
                "{}: looked up outside hosts {outside:?}",
                c.key
            );
        }
    }
}

#[test]
fn chromium_click_through_fails_with_certificate_unknown_then_succeeds() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (r, _out) = run_matrix(Selection {
        scenarios: vec![shipped("report-close")],
        backends: vec![BackendName::Openssl],
        browsers: vec![BrowserKind::Chromium],
        repeat: 1,
        binaries: binaries(),
        jobs: 2,
    });
    let s = steps(cell(&r, "report-close", "openssl", "chromium"));
    assert_eq!(s[0].action, StepAction::Visit);
    assert_eq!(s[0].shown, "warning ERR_CERT_AUTHORITY_INVALID");
    assert!(s[0].failed_handshakes >= 1);
    let proceed = s[1];
    assert_eq!(
        (proceed.action.as_str(), proceed.page_shown),
        ("proceed", true)
    );
    assert!(proceed.retries.unwrap() >= 1, "{:?}", proceed.sequence);
    let first_ok = proceed
        .sequence
        .iter()
        .position(|x| x.starts_with("ok"))
        .unwrap();
    assert!(
        proceed.sequence[..first_ok]
            .iter()
            .all(|x| x == "alert(46)"),
        "{:?}",
        proceed.sequence
    );
    assert!(proceed.alerts.iter().all(|a| a == "certificate_unknown"));
}

#[test]
fn firefox_click_through_rejects_before_proceeding_and_not_after() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (r, _out) = run_matrix(Selection {
        scenarios: vec![shipped("report-close")],
        backends: vec![BackendName::Mbedtls],
        browsers: vec![BrowserKind::Firefox],
        repeat: 1,
        binaries: binaries(),
        jobs: 2,
    });
    let s = steps(cell(&r, "report-close", "mbedtls", "firefox"));
    assert!(
        s[0].shown
            .starts_with("warning MOZILLA_PKIX_ERROR_SELF_SIGNED_CERT"),
        "{}",
        s[0].shown
    );
    assert!(
        s[0].failed_handshakes >= 1 && s[0].alerts.iter().all(|a| a == "bad_certificate"),
        "{:?}",
        s[0].sequence
    );
    for after in &s[1..] {
        assert!(after.page_shown, "{} showed {}", after.action, after.shown);
        assert_eq!(
            after.failed_handshakes, 0,
            "{}: {:?}",
            after.action, after.sequence
        );
    }
}

#[test]
fn chromium_only_trust_modes_load_the_page_and_are_unsupported_in_firefox() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (r, _out) = run_matrix(Selection {
        scenarios: vec![
            shipped("control-devtools-ignore"),
            shipped("control-ignore-flag"),
            shipped("control-spki-pin"),
        ],
        backends: vec![BackendName::Rustls],
        browsers: CHROMIUM_AND_FIREFOX.to_vec(),
        repeat: 1,
        binaries: binaries(),
        jobs: 2,
    });
    for name in [
        "control-devtools-ignore",
        "control-ignore-flag",
        "control-spki-pin",
    ] {
        let chromium = cell(&r, name, "rustls", "chromium");
        for s in steps(chromium) {
            assert!(s.page_shown, "{name}: {} showed {}", s.action, s.shown);
        }
        let firefox = cell(&r, name, "rustls", "firefox");
        assert!(
            matches!(&firefox.status, CellStatus::Unsupported { reason } if reason.contains("Chromium")),
            "{:?}",
            firefox.status
        );
        assert!(
            firefox.trials.is_empty(),
            "an unsupported cell runs nothing"
        );
    }
    // The flag and the pin accept inside the handshake: nothing fails.
    for name in ["control-ignore-flag", "control-spki-pin"] {
        assert!(
            steps(cell(&r, name, "rustls", "chromium"))
                .iter()
                .all(|s| s.failed_handshakes == 0),
            "{name}"
        );
    }
}

#[test]
fn a_browser_that_cannot_start_fails_its_cells_and_the_run_finishes_the_others() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut bins = binaries();
    let chromium = bins
        .iter_mut()
        .find(|(b, _)| b.kind == BrowserKind::Chromium)
        .expect("chromium");
    let broken = BrowserBinaries {
        browser: "/bin/false".into(),
        driver: chromium.1.as_ref().unwrap().driver.clone(),
    };
    chromium.1 = Ok(broken);
    let (r, out) = run_matrix(Selection {
        scenarios: vec![shipped("control-trusted-ca")],
        backends: vec![BackendName::Rustls],
        browsers: CHROMIUM_AND_FIREFOX.to_vec(),
        repeat: 1,
        binaries: bins,
        jobs: 2,
    });
    let chromium = cell(&r, "control-trusted-ca", "rustls", "chromium");
    assert!(
        matches!(&chromium.status, CellStatus::Error { reason, .. } if reason.contains("session")),
        "{:?}",
        chromium.status
    );
    assert!(
        chromium.headline.is_empty(),
        "an error cell reports no number"
    );
    steps(cell(&r, "control-trusted-ca", "rustls", "firefox"));
    assert!(!r.complete());
    let on_disk = RunResults::read(out.path()).unwrap();
    assert_eq!(on_disk.cells.len(), 2, "the matrix on disk has both cells");
}

/// Browser and driver processes as `pid name` (zombies included: an unreaped child is a leak too).
#[test]
fn twenty_trials_leave_no_browser_process_and_no_profile() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Browsers a developer has open are not ours: compare against what ran before.
    let before = browser_processes();
    let (r, out) = run_matrix(Selection {
        scenarios: vec![scenario(
            "visit-only",
            "description = \"d\"\ncert = \"private-ca\"\ntrust = \"trusted-ca\"\nconnection = \"keep-alive\"\nsteps = [\"visit\"]\n",
        )],
        backends: vec![BackendName::Rustls],
        browsers: CHROMIUM_AND_FIREFOX.to_vec(),
        repeat: 10,
        binaries: binaries(),
        jobs: 2,
    });
    let trials: usize = r.cells.iter().map(|c| c.trials.len()).sum();
    assert_eq!(trials, 20);
    assert!(
        r.complete(),
        "{:?}",
        r.cells.iter().map(|c| &c.status).collect::<Vec<_>>()
    );
    let left: Vec<_> = browser_processes().difference(&before).cloned().collect();
    assert!(left.is_empty(), "processes outlived their trials: {left:?}");
    let leftovers: Vec<_> = walk(out.path())
        .into_iter()
        .filter(|p| p.ends_with("home") || p.ends_with("profile"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
            out.push(p);
        }
    }
    out
}

#[test]
fn parallel_trials_agree_with_serial_trials() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Scenarios whose counts are stable from trial to trial, so any difference is parallelism's.
    let selection = |jobs| Selection {
        scenarios: vec![
            shipped("report-no-prediction"),
            shipped("control-trusted-ca"),
        ],
        backends: vec![BackendName::Rustls],
        browsers: CHROMIUM_AND_FIREFOX.to_vec(),
        repeat: 2,
        binaries: binaries(),
        jobs,
    };
    let (serial, _a) = run_matrix(selection(1));
    let (parallel, _b) = run_matrix(selection(2));
    assert_eq!(serial.cells.len(), parallel.cells.len());
    for (s, p) in serial.cells.iter().zip(&parallel.cells) {
        assert_eq!(s.key, p.key);
        assert_eq!(s.status, CellStatus::Measured, "{}: {:?}", s.key, s.status);
        assert_eq!(p.status, CellStatus::Measured, "{}: {:?}", p.key, p.status);
        assert_eq!(s.headline.len(), p.headline.len(), "{}", s.key);
        for (hs, hp) in s.headline.iter().zip(&p.headline) {
            let (a, b) = (
                hs.retries.expect("page shown"),
                hp.retries.expect("page shown"),
            );
            assert_eq!(
                a.median, b.median,
                "{} {}: jobs 1 {a} vs jobs 2 {b}",
                s.key, hs.action
            );
            assert!(
                a.min <= b.max && b.min <= a.max,
                "{} {}: ranges do not overlap: {a} vs {b}",
                s.key,
                hs.action
            );
        }
        for t in s.trials.iter().chain(&p.trials) {
            assert!(
                t.browser_peak_rss_kib.is_some_and(|k| k > 10_000),
                "peak memory recorded: {:?}",
                t.browser_peak_rss_kib
            );
        }
    }
}

fn harness_bin(args: &[&str]) -> std::process::Output {
    harness_command(args).output().expect("harness runs")
}

#[test]
fn a_broken_expectation_fails_the_run_with_exit_4_and_a_junit_failure() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let scenarios = tempfile::tempdir().unwrap();
    std::fs::write(
        scenarios.path().join("wrong.toml"),
        "description = \"d\"\ncert = \"self-signed\"\ntrust = \"click-through\"\nconnection = \"close\"\n\
         steps = [\"visit\", \"proceed\"]\n\n[[expect]]\nmax-retries = 0\n\
         reason = \"deliberately wrong: Chromium always retries after click-through\"\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let o = harness_bin(&[
        "--scenarios",
        scenarios.path().to_str().unwrap(),
        "--matrix",
        "wrong",
        "--backend",
        "rustls",
        "--browser",
        "chromium",
        "--tls",
        "1.3",
        "--repeat",
        "1",
        "--out",
        run.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("✗") && stdout.contains("deliberately wrong"),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(run.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<failure") && junit.contains("expected retries ≤ 0"),
        "{junit}"
    );
}

#[test]
fn a_real_run_compared_to_itself_as_baseline_reports_no_change() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (out.path().join("a"), out.path().join("b"));
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let common = [
        "--scenarios",
        scenarios.to_str().unwrap(),
        "--matrix",
        "control-trusted-ca",
        "--backend",
        "rustls",
        "--browser",
        "chromium",
        "--tls",
        "1.3",
        "--repeat",
        "1",
    ];
    let o = harness_bin(&[&common[..], &["--out", a.to_str().unwrap()]].concat());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = harness_bin(&["diff", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no cell changed"));
    let o = harness_bin(
        &[
            &common[..],
            &[
                "--out",
                b.to_str().unwrap(),
                "--baseline",
                a.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("against the baseline:\nno cell changed"),
        "{stdout}"
    );
}

#[test]
fn chromium_netlog_explains_every_failed_handshake_and_prediction_off_removes_preconnects() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (r, out) = run_matrix(Selection {
        scenarios: vec![shipped("report-close"), shipped("report-no-prediction")],
        backends: vec![BackendName::Mbedtls],
        browsers: vec![BrowserKind::Chromium],
        repeat: 1,
        binaries: binaries(),
        jobs: 2,
    });
    for name in ["report-close", "report-no-prediction"] {
        let c = cell(&r, name, "mbedtls", "chromium");
        let trial = &c.trials[0];
        let log = trial.client_log.as_ref().expect("a NetLog was captured");
        assert!(!log.truncated, "Chromium exited cleanly");
        assert!(
            out.path().join(&log.file).is_file(),
            "the compressed NetLog is kept: {}",
            log.file
        );
        let mut causes = BTreeMap::new();
        for s in steps(c) {
            assert_eq!(
                s.failed_by_cause.values().sum::<u32>(),
                s.failed_handshakes,
                "{name} {}",
                s.action
            );
            for (k, n) in &s.failed_by_cause {
                *causes.entry(*k).or_insert(0) += n;
            }
        }
        // Every connection has a side from the log: a cause with its evidence, or `unknown`
        // with where the explicit links stop.
        for r in steps(c).iter().flat_map(|s| &s.connections) {
            let side = &log.connections[&r.id];
            if side.cause == ClientCause::Unknown {
                assert!(side.unknown_reason.is_some(), "{name} record {}", r.id);
            } else {
                assert!(!side.evidence.is_empty(), "{name} record {}", r.id);
            }
        }
        if name == "report-no-prediction" {
            assert!(!causes.contains_key(&ClientCause::Unknown), "{causes:?}");
        }
        if name == "report-no-prediction" {
            assert!(!causes.contains_key(&ClientCause::Preconnect), "{causes:?}");
        }
    }
    let version = r
        .environment
        .chromium_netlog
        .as_ref()
        .and_then(|n| n.browser_version.clone());
    assert!(
        version.is_some_and(|v| v.split('.').count() == 4),
        "the NetLog's browser version is recorded"
    );
}

#[test]
fn happy_eyeballs_v3_connections_are_attributed_from_the_stream_pool_links() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/scenarios-hev3/report-close-hev3.toml");
    let (r, _out) = run_matrix(Selection {
        scenarios: vec![Scenario::load(&path).expect("test scenario parses")],
        backends: vec![BackendName::Rustls],
        browsers: vec![BrowserKind::Chromium],
        repeat: 1,
        binaries: binaries(),
        jobs: 1,
    });
    let c = cell(&r, "report-close-hev3", "rustls", "chromium");
    assert_eq!(c.status, CellStatus::Measured, "{:?}", c.status);
    assert_eq!(
        c.chromium_features,
        ["HappyEyeballsV3"],
        "recorded on the cell"
    );
    let log = c.trials[0]
        .client_log
        .as_ref()
        .expect("a NetLog was captured");
    let mut stream_pool_links = 0;
    for r in steps(c).iter().flat_map(|s| &s.connections) {
        let side = &log.connections[&r.id];
        // Joined, except an attempt the pool cancelled before Chromium saw its connect
        // complete: the log names no port for it, and the reason says so.
        assert!(
            side.socket_source_id.is_some()
                || side
                    .unknown_reason
                    .as_deref()
                    .is_some_and(|w| w.contains("closed before its connect completed")),
            "record {} joined: {r:?}\n{side:?}",
            r.id
        );
        if side
            .evidence
            .iter()
            .any(|e| e.source_type == "HTTP_STREAM_POOL_ATTEMPT_MANAGER")
        {
            stream_pool_links += 1;
        }
        match side.cause {
            // The two gaps in the stream pool's log: an attempt manager with requesters of
            // several kinds does not say which one an attempt is for, and an attempt cancelled
            // before its connect completed names no port.
            ClientCause::Unknown => assert!(
                side.unknown_reason.as_deref().is_some_and(|w| {
                    w.contains("requesters of different kinds")
                        || w.contains("closed before its connect completed")
                }),
                "record {}: {side:?}",
                r.id
            ),
            ClientCause::RestartWithAllowedCert => assert!(
                !r.outcome.is_failed_handshake(),
                "the user's decision never fails: record {}",
                r.id
            ),
            _ => {}
        }
    }
    assert!(stream_pool_links > 0, "the new pool's links were used");
}

#[test]
fn chromium_click_through_on_a_one_at_a_time_mbedtls_server_is_served_one_connection_at_a_time() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (r, out) = run_matrix_on(
        Selection {
            scenarios: vec![shipped("report-one-at-a-time")],
            backends: vec![BackendName::Mbedtls],
            browsers: vec![BrowserKind::Chromium],
            repeat: 1,
            binaries: binaries(),
            jobs: 2,
        },
        TlsVersion::ALL.to_vec(),
    );
    assert_eq!(r.cells.len(), 2);
    for tls in TlsVersion::ALL {
        let c = r
            .cells
            .iter()
            .find(|c| c.key.tls == tls.as_str())
            .unwrap_or_else(|| panic!("no TLS {tls} cell"));
        let s = steps(c);
        assert_eq!(
            s[0].shown, "warning ERR_CERT_AUTHORITY_INVALID",
            "TLS {tls}"
        );
        assert!(s[1].page_shown, "TLS {tls}: proceed showed {}", s[1].shown);
        let trial = &c.trials[0];
        let jsonl =
            std::fs::read_to_string(out.path().join(&trial.log_dir).join("connections.jsonl"))
                .unwrap();
        let records: Vec<model::ConnectionRecord> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // Exactly one record per accepted connection, each in a step or in the teardown.
        let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            (1..=records.len() as u64).collect::<Vec<_>>(),
            "TLS {tls}"
        );
        assert!(trial.unattributed.is_empty(), "TLS {tls}: by construction");
        let attributed: usize = trial
            .steps_and_teardown()
            .map(|s| s.connections.len())
            .sum();
        assert_eq!(attributed, records.len(), "TLS {tls}");
        assert_eq!(
            trial.teardown.as_ref().map(|t| t.action.as_str()),
            Some("teardown"),
            "TLS {tls}: every trial records its teardown"
        );
        assert!(
            records
                .iter()
                .filter(|r| r.outcome.is_failed_handshake())
                .count()
                >= 2,
            "TLS {tls}: the visit and the proceed each fail at least once: {records:#?}"
        );
        for r in &records {
            assert!(
                r.queue_wait_ms.is_some() && r.queue_wait_unknown.is_none(),
                "TLS {tls}: connection {} has no queue wait: {r:#?}",
                r.id
            );
        }
        // One at a time: in accept order, each connection was accepted after the previous
        // one closed.
        let mut by_accept: Vec<_> = records.iter().collect();
        by_accept.sort_by_key(|r| r.accepted_at_us);
        for pair in by_accept.windows(2) {
            assert!(
                pair[1].accepted_at_us >= pair[0].closed_at_us,
                "TLS {tls}: connection {} accepted before connection {} closed",
                pair[1].id,
                pair[0].id
            );
        }
        let waits: Vec<String> = by_accept
            .iter()
            .map(|r| format!("{}:{}ms", r.outcome.short(), r.queue_wait_ms.unwrap_or(0)))
            .collect();
        eprintln!("TLS {tls}: {}", waits.join(" "));
    }
}
