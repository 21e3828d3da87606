//! The change rule on real runs (issue: only real changes). An A/B with a real behaviour change
//! — `report-close` against the same scenario with Chromium's preconnects off — is flagged and
//! confirmed in every cell; an A/A of one build confirms nothing. Both run `harness diff
//! --confirm --confirm-old` (both builds side by side, so both sides are measured again).

use std::path::{Path, PathBuf};
use std::process::Output;

use results::{RunResults, Verdict};

mod common;
use common::{ONE_AT_A_TIME, harness_command};

fn shipped_scenario(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(format!("{name}.toml")),
    )
    .unwrap()
}

/// A scenarios folder holding `name` with `extra` appended.
fn scenarios(root: &Path, folder: &str, name: &str, extra: &str) -> PathBuf {
    let dir = root.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.toml")),
        shipped_scenario(name) + extra,
    )
    .unwrap();
    dir
}

fn run(scenarios: &Path, out: &Path, selection: &[&str]) {
    let mut args = vec!["--scenarios", scenarios.to_str().unwrap()];
    args.extend_from_slice(selection);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let o = harness_command(&args).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn diff_confirm(old: &Path, new: &Path, old_sc: &Path, new_sc: &Path, trials: &str) -> Output {
    harness_command(&[
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--confirm",
        "--confirm-trials",
        trials,
        "--confirm-old",
        "--scenarios",
        new_sc.to_str().unwrap(),
        "--old-scenarios",
        old_sc.to_str().unwrap(),
    ])
    .output()
    .unwrap()
}

#[test]
fn preconnects_off_is_flagged_and_confirmed_in_every_cell() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let a = scenarios(tmp.path(), "a", "report-close", "");
    let b = scenarios(
        tmp.path(),
        "b",
        "report-close",
        "\n[knobs]\nnetwork-prediction-options = 2\n",
    );
    let selection = [
        "--matrix",
        "report-close",
        "--browser",
        "chromium",
        "--backend",
        "rustls",
    ];
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    run(&a, &old, &selection);
    run(&b, &new, &selection);
    let o = diff_confirm(&old, &new, &a, &b, "5");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{stdout}");
    // Both cells (TLS 1.2 and 1.3): confirmed, with both sides measured again.
    let (old, new) = (
        RunResults::read(&old).unwrap(),
        RunResults::read(&new).unwrap(),
    );
    let d = results::diff(&old, &new);
    assert_eq!(d.changed.len(), 2, "{}", d.render());
    assert!(d.tested.iter().all(|t| t.verdict == Verdict::Confirmed));
    for r in [&old, &new] {
        for c in &r.cells {
            assert_eq!(c.trials.iter().filter(|t| t.confirmation).count(), 5);
        }
    }
    assert!(
        stdout.contains("changed: report-close / rustls / chromium / TLS 1.3"),
        "{stdout}"
    );
    assert!(stdout.contains("test: p = "), "{stdout}");
    assert!(stdout.contains("outcomes (exit 3):"), "{stdout}");
}

#[test]
fn one_build_against_itself_confirms_nothing() {
    // The false alarm was control-devtools-ignore / openssl / chromium / TLS 1.3.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenarios(tmp.path(), "s", "control-devtools-ignore", "");
    let selection = [
        "--matrix",
        "control-devtools-ignore",
        "--backend",
        "openssl",
    ];
    let (first, second) = (tmp.path().join("a1"), tmp.path().join("a2"));
    run(&sc, &first, &selection);
    run(&sc, &second, &selection);
    let o = diff_confirm(&first, &second, &sc, &sc, "5");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("changed:"), "{stdout}");
}
