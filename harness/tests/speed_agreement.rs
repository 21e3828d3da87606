//! The agreement gate of the speed-ups (issue: speed). A speed-up that could change what a
//! browser does ships only if this passes: the shipped click-through and control scenarios,
//! measured the old way (empty profiles, `--jobs 2`) and the new way (the defaults) one after
//! the other in this test, and `harness diff OLD NEW --confirm` finds no change.
//!
//! The one such speed-up today is Firefox's profile template, so the gate measures Firefox
//! (Chromium's trials are the same both ways); a speed-up for another browser adds it here.
//! TLS 1.3 only: the template is made before any connection and knows no TLS version. The
//! whole fixed workload, both ways, agreed too (README, "Speed").
//!
//! A real browser run (`scripts/setup.sh` installs Firefox and geckodriver): 40 trials.

use std::time::Instant;

use results::{CellStatus, RunResults};

mod common;
use common::{harness_command, shipped};

/// Click-through scenarios (the original report, keep-alive, a private CA) and the controls
/// Firefox supports (its own exception, a trusted CA in the profile's NSS database), on one
/// backend: every mechanism the template could disturb.
const SCENARIOS: &str = "report-close,report-keep-alive,private-ca-click-through,control-accept-insecure,control-trusted-ca";
/// Trials per cell and side: enough for `diff`'s permutation test to see a move of one
/// handshake (and `--confirm` measures a flagged cell again with more).
const REPEAT: &str = "4";

fn measure(run: &std::path::Path, extra: &[&str]) -> (RunResults, f64) {
    let mut args = vec![
        "--matrix",
        SCENARIOS,
        "--backend",
        "rustls",
        "--browser",
        "firefox",
        "--tls",
        "1.3",
        "--repeat",
        REPEAT,
    ];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let output = shipped(run, &args).output().expect("harness runs");
    let seconds = started.elapsed().as_secs_f64();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{extra:?}: {text}");
    let r = RunResults::read(run).expect("matrix.json");
    for c in &r.cells {
        assert!(
            matches!(
                c.status,
                CellStatus::Measured | CellStatus::Unsupported { .. }
            ),
            "{}: {:?}",
            c.key,
            c.status
        );
    }
    (r, seconds)
}

#[test]
fn the_new_way_measures_what_the_old_way_measures() {
    let _one = common::ONE_AT_A_TIME.lock();
    let out = tempfile::tempdir().unwrap();
    let (old_dir, new_dir) = (out.path().join("old"), out.path().join("new"));
    let (old, old_s) = measure(&old_dir, &["--fresh-profiles", "--jobs", "2"]);
    let (new, new_s) = measure(&new_dir, &[]);
    let trials = |r: &RunResults| r.cells.iter().map(|c| c.trials.len()).sum::<usize>();
    eprintln!(
        "old way: {} trials in {old_s:.0} s; new way: {} trials in {new_s:.0} s",
        trials(&old),
        trials(&new)
    );
    assert_eq!(old.cells.len(), new.cells.len());
    assert!(trials(&new) > 0 && trials(&new) == trials(&old));

    let scenarios = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let diff = harness_command(&[
        "diff",
        old_dir.to_str().unwrap(),
        new_dir.to_str().unwrap(),
        "--confirm",
        "--scenarios",
        scenarios.to_str().unwrap(),
    ])
    .output()
    .expect("harness diff runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&diff.stdout),
        String::from_utf8_lossy(&diff.stderr)
    );
    assert_eq!(diff.status.code(), Some(0), "harness diff: {text}");
    assert!(text.contains("no cell changed"), "{text}");
    assert!(
        !text.contains("added:") && !text.contains("removed:"),
        "{text}"
    );

    // Every trial of the new way says where its time went, and the parts fit in it.
    for c in &new.cells {
        for t in &c.trials {
            let timings = t.timings.as_ref().expect("timings in a schema-6 trial");
            let steps: u64 = timings
                .steps
                .iter()
                .map(|s| s.action_ms + s.settle_ms)
                .sum();
            let parts = timings.profile_ms
                + timings.driver_start_ms
                + timings.session_start_ms
                + steps
                + timings.session_close_ms;
            assert!(
                timings.session_start_ms > 0 && parts <= t.wall_ms,
                "{} trial {}: {timings:?} in {} ms",
                c.key,
                t.index,
                t.wall_ms
            );
            assert_eq!(timings.steps.len(), t.steps.len(), "{}", c.key);
        }
    }
}
