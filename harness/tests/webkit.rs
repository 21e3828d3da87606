//! Real WebKitGTK (MiniBrowser through WebKitWebDriver, under an Xvfb of each trial's own)
//! against real backends, through the runner (issue: WebKit). `scripts/setup.sh` installs
//! `webkit2gtk-driver` and `xvfb`. Tests run one at a time (a process-wide lock) so the
//! process-leak check sees only its own trials.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use backends::BackendName;
use harness::browser::{BrowserBinaries, BrowserKind};
use harness::progress::Progress;
use harness::runner::{Binaries, RunPlan, run};
use harness::scenario::Scenario;
use model::{Cause, ClientLogSource, Outcome, TlsVersion};
use results::{CellStatus, Environment, RunResults, SCHEMA_VERSION};

mod common;
use common::{ONE_AT_A_TIME, cell};

fn shipped(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).expect("shipped scenario parses")
}

fn scenario(name: &str, toml: &str) -> Scenario {
    Scenario::parse(Path::new(&format!("{name}.toml")), toml).expect("valid scenario")
}

/// WebKit's cells of `scenarios` on `backends`, TLS 1.3, `repeat` trials each, two at a time.
fn run_webkit(
    scenarios: Vec<Scenario>,
    backends: Vec<BackendName>,
    repeat: u32,
) -> (RunResults, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let found =
        BrowserBinaries::find(BrowserKind::Webkit, None, None).unwrap_or_else(|e| panic!("{e}"));
    let binaries: Binaries = vec![(BrowserKind::Webkit.into(), Ok(found))];
    let plan = RunPlan {
        scenarios,
        backends: backends
            .into_iter()
            .map(harness::target::TargetName::Builtin)
            .collect(),
        browsers: vec![BrowserKind::Webkit],
        tls: vec![TlsVersion::Tls13],
        repeat: Some(repeat),
        jobs: 2,
        out: out.path().to_owned(),
        binaries,
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

/// The trial's WebKit journal, as kept.
fn journal(run: &Path, trial: &results::TrialResult) -> String {
    let log = trial.client_log.as_ref().expect("the journal log was kept");
    assert_eq!(log.source, ClientLogSource::WebkitJournal);
    assert!(
        log.connections.is_empty(),
        "the journal names no ports: nothing may be attributed"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(run.join(&log.file)).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Nothing accepts the certificate: GnuTLS rejects it and closes without an alert.
const NO_TRUST: &str = "description = \"d\"\ncert = \"self-signed\"\ntrust = \"none\"\nconnection = \"close\"\nsteps = [\"visit\"]\n";

#[test]
fn webkit_accepts_without_a_failed_handshake_and_its_rejection_is_a_failed_handshake_never_idle() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (r, out) = run_webkit(
        vec![
            shipped("control-accept-insecure"),
            shipped("control-webkit-host-certificate"),
            shipped("control-trusted-ca"),
            scenario("no-trust", NO_TRUST),
            shipped("report-close"),
        ],
        vec![BackendName::Rustls, BackendName::Openssl],
        1,
    );
    for scenario in [
        "control-accept-insecure",
        "control-webkit-host-certificate",
        "control-trusted-ca",
    ] {
        for backend in ["rustls", "openssl"] {
            let c = cell(&r, scenario, backend, "webkit");
            assert_eq!(c.status, CellStatus::Measured, "{}: {:?}", c.key, c.status);
            for t in &c.trials {
                for s in t.steps.iter().chain(&t.teardown) {
                    assert_eq!(
                        s.failed_handshakes, 0,
                        "{}: {} {:?}",
                        c.key, s.action, s.sequence
                    );
                }
                for s in &t.steps {
                    assert!(s.page_shown, "{}: {} showed {}", c.key, s.action, s.shown);
                    assert!(s.established >= 1, "{}: {}", c.key, s.action);
                }
                let journal = journal(out.path(), t);
                assert!(
                    journal.contains("> GET / HTTP/1.1"),
                    "{}: libsoup's message log is in the journal:\n{journal}",
                    c.key
                );
            }
        }
    }

    // GnuTLS closes without an alert: rustls reads the end of the stream, OpenSSL a reset
    // (the close finds the server's flight unread). Both are failed handshakes with that
    // cause, never `idle`.
    for (backend, cause) in [("rustls", Cause::Eof), ("openssl", Cause::Reset)] {
        let c = cell(&r, "no-trust", backend, "webkit");
        assert_eq!(c.status, CellStatus::Measured, "{}: {:?}", c.key, c.status);
        let visit = &c.trials[0].steps[0];
        assert!(!visit.page_shown, "{}: {}", c.key, visit.shown);
        assert!(
            visit.failed_handshakes >= 1,
            "{}: {:?}",
            c.key,
            visit.sequence
        );
        assert_eq!(visit.idle, 0, "{}: {:?}", c.key, visit.sequence);
        for record in &visit.connections {
            assert_eq!(
                record.outcome,
                Outcome::Rejected {
                    cause: cause.clone()
                },
                "{}: connection {}",
                c.key,
                record.id
            );
        }
    }

    // No WebKit browser here has a warning WebDriver can click: unsupported, saying why.
    for backend in ["rustls", "openssl"] {
        match &cell(&r, "report-close", backend, "webkit").status {
            CellStatus::Unsupported { reason } => assert!(
                reason.contains("MiniBrowser") && reason.contains("Epiphany"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn twenty_webkit_trials_leave_no_browser_driver_or_display_process() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Display sockets someone else has open are not ours: compare against what was there.
    let x11_before = x11_sockets();
    let (r, out) = run_webkit(
        vec![scenario(
            "visit-only",
            "description = \"d\"\ncert = \"self-signed\"\ntrust = \"accept-insecure\"\nconnection = \"keep-alive\"\nsteps = [\"visit\"]\n",
        )],
        vec![BackendName::Rustls],
        20,
    );
    let trials: usize = r.cells.iter().map(|c| c.trials.len()).sum();
    assert_eq!(trials, 20);
    assert!(
        r.complete(),
        "{:?}",
        r.cells.iter().map(|c| &c.status).collect::<Vec<_>>()
    );
    // Every process the run started carries its mark (the environment is inherited by the
    // driver, the display, the browser and its helpers); other runs on the machine do not.
    let marked: Vec<_> = common::processes()
        .filter(|(_, _, dir)| {
            std::fs::read(dir.join("environ")).is_ok_and(|env| has_our_mark(&env))
        })
        .map(|(pid, name, _)| format!("{pid} {name}"))
        .collect();
    assert!(
        marked.is_empty(),
        "processes of this run outlived it: {marked:?}"
    );
    let sockets: Vec<_> = x11_sockets().difference(&x11_before).cloned().collect();
    assert!(
        sockets.is_empty(),
        "display sockets left in /tmp/.X11-unix: {sockets:?}"
    );
    for t in &r.cells[0].trials {
        let log = std::fs::read_to_string(out.path().join(&t.log_dir).join("WebKitWebDriver.log"))
            .unwrap();
        assert!(
            log.contains("handshake-matrix: Xvfb (pid "),
            "each trial started its own display: {log}"
        );
    }
}

/// Whether `environ` (NUL-separated) carries the mark of this run (`process::MARK_PID`).
fn has_our_mark(environ: &[u8]) -> bool {
    let mark = format!("{}={}", harness::process::MARK_PID, std::process::id());
    environ.split(|&b| b == 0).any(|e| e == mark.as_bytes())
}

/// The display sockets (and X lock files) on the machine.
fn x11_sockets() -> std::collections::BTreeSet<String> {
    let sockets = std::fs::read_dir("/tmp/.X11-unix").into_iter().flatten();
    let locks = std::fs::read_dir("/tmp")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".X"))
        .map(Ok);
    sockets
        .chain(locks)
        .flatten()
        .map(|e| e.path().display().to_string())
        .collect()
}
