//! Snapshot tests of every renderer on a fixed results file, and the atomic writer.

mod common;

use std::collections::BTreeMap;

use model::{Cause, Outcome, StepAction};
use results::{
    CellKey, CellResult, CellStatus, Environment, Format, RunResults, SCHEMA_VERSION, StepWindow,
    ToolVersions, TrialResult, attribute, render, write_all,
};

use common::record;

fn fixed() -> RunResults {
    let alert = || Outcome::Rejected {
        cause: Cause::alert(2, 46),
    };
    let records = vec![
        record(1, 100, alert()),
        record(2, 101, alert()),
        record(3, 1100, alert()),
        record(4, 1101, alert()),
        record(5, 1102, Outcome::Established { requests: 1 }),
        record(6, 2100, alert()),
        record(7, 2101, Outcome::Established { requests: 1 }),
    ];
    let window = |action, shown: &str, start: u64, settle_capped| StepWindow {
        action,
        shown: shown.into(),
        page_shown: shown == "page",
        started_at_us: start,
        settled_at_us: start + 1000,
        settle_capped,
    };
    let warning = "warning ERR_CERT_AUTHORITY_INVALID";
    let first = attribute(
        &records,
        &[
            window(StepAction::Visit, warning, 0, false),
            window(StepAction::Proceed, "page", 1000, false),
            window(StepAction::Revisit, "page", 2000, false),
        ],
        4000,
    );
    // Trial 2: the click-through never reached the page, the revisit was still busy at the
    // settle cap, and a connection failed while the session closed.
    let second_records = vec![
        record(1, 100, alert()),
        record(2, 1100, alert()),
        record(3, 1101, alert()),
        record(4, 2100, alert()),
        record(5, 2101, Outcome::Established { requests: 1 }),
        record(
            6,
            3500,
            Outcome::Rejected {
                cause: Cause::Reset,
            },
        ),
    ];
    let second = attribute(
        &second_records,
        &[
            window(StepAction::Visit, warning, 0, false),
            window(StepAction::Proceed, warning, 1000, false),
            window(StepAction::Revisit, "page", 2000, true),
        ],
        4000,
    );
    let trial = |index: usize, a: results::Attributed| TrialResult {
        index,
        error: None,
        log_dir: format!("trials/report-close/mbedtls-chromium-tls1.3/trial-{index}"),
        steps: a.steps,
        unattributed: Vec::new(),
        teardown: Some(a.teardown),
        wall_ms: 2500,
        browser_peak_rss_kib: Some(412_000),
        confirmation: false,
        capture: None,
        timings: None,
        client_log: None,
        client_log_problem: None,
    };
    let key = |backend: &str, browser: &str| CellKey {
        scenario: "report-close".into(),
        backend: backend.into(),
        browser: browser.into(),
        label: None,
        tls: "1.3".into(),
    };
    let mut measured = CellResult {
        // As the runner checks it (harness/src/runner/expectations.rs, `page_expectation`).
        expectations: vec![results::ExpectationCheck {
            rule: "every trial shows the page".into(),
            reason: "the trust mode accepts the certificate".into(),
            broken: Some(
                "step 2 (proceed): 1 of 2 trials showed the page; trial 2 showed warning ERR_CERT_AUTHORITY_INVALID".into(),
            ),
        }],
        trials: vec![trial(1, first), trial(2, second)],
        ..CellResult::new(
            key("mbedtls", "chromium"),
            "self-signed",
            "click-through",
            "close",
        )
    };
    measured.summarise();
    let unsupported = CellResult {
        status: CellStatus::Unsupported {
            reason: "spki-pin is a Chromium mechanism".into(),
        },
        ..CellResult::new(
            CellKey {
                scenario: "control-spki-pin".into(),
                ..key("mbedtls", "firefox")
            },
            "self-signed",
            "spki-pin",
            "close",
        )
    };
    let error = CellResult {
        status: CellStatus::Error {
            reason: "trial 1: geckodriver did not start".into(),
            log: Some("trials/x".into()),
        },
        ..CellResult::new(
            key("mbedtls", "firefox"),
            "self-signed",
            "click-through",
            "close",
        )
    };
    RunResults {
        schema_version: SCHEMA_VERSION,
        environment: Environment {
            harness_version: "0.1.0".into(),
            git_revision: Some("abc1234".into()),
            command: vec!["harness".into(), "--matrix".into(), "all".into()],
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            started_at: "2026-11-26T18:00:00Z".into(),
            ended_at: Some("2026-11-26T18:10:00Z".into()),
            browsers: BTreeMap::from([(
                "chromium".into(),
                ToolVersions {
                    browser: Some("Chromium 156.0.8078.108".into()),
                    driver: Some("ChromeDriver 156.0.8078.108".into()),
                    unavailable: None,
                },
            )]),
            backends: BTreeMap::from([("mbedtls".into(), "Mbed TLS 3.6.6".into())]),
            chromium_netlog: None,
            scenario_knobs: BTreeMap::new(),
            harness_cpu: None,
        },
        cells: vec![measured, error, unsupported],
        cells_requested: 3,
    }
}

#[test]
fn headline_is_the_first_page_step_and_each_revisit() {
    let r = fixed();
    let h = &r.cells[0].headline;
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].action.as_str(), h[0].retries.unwrap().median),
        ("proceed", 2)
    );
    assert_eq!(
        (h[1].action.as_str(), h[1].retries.unwrap().median),
        ("revisit", 1)
    );
    assert_eq!((h[0].trials_without_page, h[1].trials_without_page), (1, 0));
    assert!(!r.complete(), "an error cell makes the run incomplete");
}

#[test]
fn every_output_shows_trials_without_the_page_the_teardown_and_the_settle_cap() {
    let r = fixed();
    for format in [
        Format::Terminal,
        Format::Markdown,
        Format::Html,
        Format::Junit,
    ] {
        let text = render(&r, format);
        for needle in ["1 of 2 trials showed the page", "teardown", "settle cap"] {
            assert!(
                text.contains(needle),
                "{format:?} lacks {needle:?}:\n{text}"
            );
        }
    }
    let junit = render(&r, Format::Junit);
    assert!(
        junit.contains("<failure") && junit.contains("every trial shows the page"),
        "a trial without the page fails the cell's test case: {junit}"
    );
}

#[test]
fn terminal() {
    insta::assert_snapshot!(render(&fixed(), Format::Terminal));
}

#[test]
fn markdown() {
    insta::assert_snapshot!(render(&fixed(), Format::Markdown));
}

#[test]
fn html() {
    insta::assert_snapshot!(render(&fixed(), Format::Html));
}

#[test]
fn junit() {
    insta::assert_snapshot!(render(&fixed(), Format::Junit));
}

#[test]
fn json_round_trips_and_files_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let r = fixed();
    write_all(&r, dir.path()).unwrap();
    for f in ["matrix.json", "matrix.md", "matrix.html", "junit.xml"] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    assert_eq!(RunResults::read(dir.path()).unwrap(), r);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files remain");
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("matrix.json"), r#"{"schema_version": 99}"#).unwrap();
    let e = RunResults::read(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("schema_version Some(99), this harness reads [1, 2, 3, 4, 5, 6]"),
        "{e}"
    );
}

#[test]
fn knobs_are_shown_and_a_cell_without_them_writes_no_new_key() {
    let mut r = fixed();
    let plain = serde_json::to_string(&r).unwrap();
    for key in [
        "chromium_features",
        "chromium_disabled_features",
        "firefox_prefs",
        "scenario_knobs",
    ] {
        assert!(!plain.contains(key), "{key} written without knobs: {plain}");
    }
    r.cells[0].chromium_features = vec!["HappyEyeballsV3".into(), "Preview".into()];
    r.cells[0].chromium_disabled_features = vec!["Other".into()];
    r.cells[1].firefox_prefs = BTreeMap::from([
        (
            "network.http.happy_eyeballs_enabled".into(),
            model::PrefValue::Bool(true),
        ),
        ("a.b".into(), model::PrefValue::String("x\"y".into())),
    ]);
    r.environment.scenario_knobs = BTreeMap::from([(
        "report-close".into(),
        BTreeMap::from([(
            "chromium".into(),
            vec!["--enable-features=HappyEyeballsV3,Preview".into()],
        )]),
    )]);
    let json = serde_json::to_string(&r).unwrap();
    let back: RunResults = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r, "knobs round-trip through matrix.json");
    for format in [Format::Markdown, Format::Html] {
        let text = render(&r, format);
        for needle in [
            "report-close on chromium: features on HappyEyeballsV3, Preview; features off Other",
            "report-close on firefox: prefs a.b = ",
            "network.http.happy_eyeballs_enabled = true",
        ] {
            assert!(
                text.contains(needle),
                "{format:?} lacks {needle:?}:\n{text}"
            );
        }
    }
}

#[test]
fn a_trial_capture_is_linked_and_a_trial_without_one_writes_no_new_key() {
    let mut r = fixed();
    let plain = serde_json::to_string(&r).unwrap();
    assert!(!plain.contains("\"capture\""), "{plain}");
    let path = format!("{}/capture.pcapng", r.cells[0].trials[0].log_dir);
    r.cells[0].trials[0].capture = Some(path.clone());
    let html = render(&r, Format::Html);
    // The trial view is drawn from the data embedded in the page; its link is made there.
    assert!(html.contains(&format!("\"cap\":\"{path}\"")), "{html}");
    assert!(html.contains("el(\"a\", { href: t.cap }"), "{html}");
    let dir = tempfile::tempdir().unwrap();
    write_all(&r, dir.path()).unwrap();
    assert_eq!(RunResults::read(dir.path()).unwrap(), r);
}

#[test]
fn a_relay_record_shows_what_was_inferred_and_how() {
    let mut r = fixed();
    let record = &mut r.cells[0].trials[0].steps[0].connections[0];
    record.outcome = Outcome::Rejected {
        cause: Cause::EncryptedAlert,
    };
    record.relay = Some(model::RelayObservation {
        inferred: vec![model::Inference {
            field: model::InferredField::Cause,
            how: "a 19-byte record instead of the Finished".into(),
        }],
        client_bytes: 1917,
        server_bytes: 1321,
        upstream_port: Some(44000),
        cause_from_browser_log: false,
    });
    let html = render(&r, Format::Html);
    for needle in [
        "rejected (failed handshake): alert(encrypted)",
        "recorded by the relay: 1917 bytes from the client, 1321 from the server",
        "inferred cause: a 19-byte record instead of the Finished",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
}
