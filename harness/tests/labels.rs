//! Builds side by side (issue 16): two labelled builds of Chromium in one run and one matrix,
//! and `harness diff --labels` between them. Both labels point at the installed Chromium, so
//! the two builds are one and the diff must find no change beyond the spread.
//!
//! A real browser run (`scripts/setup.sh` installs Chromium and chromedriver), kept short:
//! two small shipped scenarios, rustls, TLS 1.3, three trials a cell.

use std::time::Instant;

use results::{CellStatus, RunResults};

mod common;
use common::{harness_command, shipped};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const REPEAT: usize = 3;

#[test]
fn two_labelled_builds_of_one_chromium_measure_every_cell_and_differ_by_no_more_than_the_spread() {
    let started = Instant::now();
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let stable = format!("stable={CHROMIUM},{CHROMEDRIVER}");
    let candidate = format!("candidate={CHROMIUM},{CHROMEDRIVER}");
    let output = shipped(
        &run,
        &[
            "--matrix",
            "report-close,control-trusted-ca",
            "--backend",
            "rustls",
            "--browser",
            "chromium",
            "--tls",
            "1.3",
            "--repeat",
            &REPEAT.to_string(),
            "--chromium",
            &stable,
            "--chromium",
            &candidate,
        ],
    )
    .output()
    .expect("harness runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{text}");
    let r = RunResults::read(&run).expect("matrix.json");

    // Each label records its own browser and driver version, read from the binaries.
    let version =
        |b: &str| harness::browser::binary_version(std::path::Path::new(b)).expect("--version");
    for label in ["stable", "candidate"] {
        let v = &r.environment.browsers[&format!("chromium@{label}")];
        assert_eq!(v.browser.as_deref(), Some(version(CHROMIUM).as_str()));
        assert_eq!(v.driver.as_deref(), Some(version(CHROMEDRIVER).as_str()));
        assert!(v.browser.as_deref().unwrap().starts_with("Chromium "));
    }
    assert!(
        !r.environment.browsers.contains_key("chromium"),
        "only the labelled builds"
    );

    // Every cell measured under both labels, in the order the labels were given; the
    // scenarios' Chromium expectations apply to every build of Chromium.
    let keys: Vec<String> = r.cells.iter().map(|c| c.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "report-close / rustls / chromium@stable / TLS 1.3",
            "report-close / rustls / chromium@candidate / TLS 1.3",
            "control-trusted-ca / rustls / chromium@stable / TLS 1.3",
            "control-trusted-ca / rustls / chromium@candidate / TLS 1.3",
        ],
        "{text}"
    );
    assert_eq!(r.cells_requested, 4);
    for c in &r.cells {
        assert_eq!(c.status, CellStatus::Measured, "{}", c.key);
        assert_eq!(c.key.browser, "chromium");
        assert_eq!(c.trials.len(), REPEAT, "{}", c.key);
        assert!(!c.headline.is_empty(), "{}", c.key);
        assert!(!c.expectations.is_empty(), "{}: expectations apply", c.key);
        let label = c.key.label.as_deref().expect("labelled");
        for t in &c.trials {
            assert!(t.error.is_none(), "{}: {:?}", c.key, t.error);
            assert!(
                t.log_dir.contains(&format!("chromium@{label}")),
                "{}: {}",
                c.key,
                t.log_dir
            );
        }
    }
    let json = std::fs::read_to_string(run.join("matrix.json")).unwrap();
    assert_eq!(json.matches("\"label\": \"stable\"").count(), 2, "{json}");
    assert_eq!(json.matches("\"label\": \"candidate\"").count(), 2);
    let md = std::fs::read_to_string(run.join("matrix.md")).unwrap();
    assert!(
        md.contains("chromium@stable") && md.contains("chromium@candidate"),
        "{md}"
    );

    // One build against itself: no change beyond the spread, exit 0.
    let diff = harness_command(&[
        "diff",
        run.to_str().unwrap(),
        "--labels",
        "stable,candidate",
    ])
    .output()
    .expect("harness diff runs");
    let text = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(text.contains("no cell changed"), "{text}");
    assert!(!text.contains("│ changed"), "{text}");
    for scenario in ["report-close", "control-trusted-ca"] {
        assert!(
            text.contains(&format!("{scenario} / rustls / chromium / TLS 1.3")),
            "{text}"
        );
    }
    assert!(text.contains("outcomes (exit 0):"), "{text}");
    eprintln!(
        "two labelled builds: run and diff in {:?}",
        started.elapsed()
    );
}
