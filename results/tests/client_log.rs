//! What the outputs say about the browser's log: causes over only the trials with a NetLog, a
//! missing or unreadable log on its cell, and each cause's evidence in the HTML.

mod common;

use std::collections::BTreeMap;

use model::{Cause, ClientCause, ClientLogSource, Outcome, StepAction};
use results::{
    CellKey, CellResult, ClientLog, ClientSide, Environment, Evidence, Format, RunResults,
    SCHEMA_VERSION, StepWindow, TrialResult, attribute, render,
};

use common::record;

fn trial(index: usize, log: Option<ClientLog>, problem: Option<&str>) -> TrialResult {
    let records = vec![
        record(
            1,
            1100,
            Outcome::Rejected {
                cause: Cause::alert(2, 46),
            },
        ),
        record(2, 1101, Outcome::Established { requests: 1 }),
    ];
    let windows = vec![StepWindow {
        action: StepAction::Visit,
        shown: "page".into(),
        page_shown: true,
        started_at_us: 1000,
        settled_at_us: 2000,
        settle_capped: false,
    }];
    let attributed = attribute(&records, &windows, 3000);
    let mut t = TrialResult {
        index,
        error: None,
        log_dir: format!("trials/x/trial-{index}"),
        steps: attributed.steps,
        unattributed: Vec::new(),
        teardown: Some(attributed.teardown),
        wall_ms: 1,
        client_log: log,
        client_log_problem: problem.map(str::to_owned),
        browser_peak_rss_kib: None,
        confirmation: false,
        capture: None,
        timings: None,
    };
    t.apply_client_causes();
    t
}

fn unknown_side() -> ClientSide {
    ClientSide {
        cause: ClientCause::Unknown,
        unknown_reason: Some("attempt manager 49 had requesters of different kinds".into()),
        socket_source_id: Some(62),
        evidence: vec![Evidence {
            source_id: 61,
            source_type: "TLS_STREAM_ATTEMPT".into(),
            event: "TCP_BASED_ATTEMPT_BOUND_TO_POOL".into(),
        }],
        reused_by: 0,
        net_error: Some(-202),
        alert_sent: None,
        url: None,
    }
}

fn results() -> RunResults {
    let log = ClientLog {
        source: ClientLogSource::ChromiumNetlog,
        file: "trials/x/trial-1/netlog.json.gz".into(),
        truncated: false,
        browser_version: Some("156.0.8078.108".into()),
        field_trials: Vec::new(),
        connections: BTreeMap::from([(1, unknown_side())]),
    };
    let mut cell = CellResult {
        chromium_features: vec!["HappyEyeballsV3".into()],
        trials: vec![
            trial(1, Some(log), None),
            trial(2, None, Some("Chromium wrote no NetLog (netlog.json)")),
        ],
        ..CellResult::new(
            CellKey {
                scenario: "report-close".into(),
                backend: "rustls".into(),
                browser: "chromium".into(),
                label: None,
                tls: "1.3".into(),
            },
            "self-signed",
            "click-through",
            "close",
        )
    };
    cell.summarise();
    RunResults {
        schema_version: SCHEMA_VERSION,
        environment: Environment::default(),
        cells: vec![cell],
        cells_requested: 1,
    }
}

#[test]
fn causes_count_only_trials_with_a_netlog_and_say_so() {
    let r = results();
    assert_eq!(
        r.cells[0].headline[0].failed_by_cause,
        BTreeMap::from([(ClientCause::Unknown, 1)]),
        "the trial without a log adds no cause, not even unknown"
    );
    for format in [Format::Terminal, Format::Markdown] {
        let text = render(&r, format);
        assert!(
            text.contains("(step 1): 1 failed handshake (all of the step's, not only retries) in 1 of 2 trials with a NetLog = 1 unknown"),
            "{format:?}:\n{text}"
        );
    }
}

#[test]
fn a_missing_netlog_is_visible_on_its_cell() {
    let r = results();
    for format in [Format::Terminal, Format::Markdown, Format::Html] {
        let text = render(&r, format);
        assert!(
            text.contains("(no NetLog in 1 of 2)"),
            "{format:?}:\n{text}"
        );
        assert!(
            text.contains("Chromium wrote no NetLog (netlog.json)"),
            "{format:?}:\n{text}"
        );
    }
}

#[test]
fn the_html_shows_each_cause_with_its_reason_and_evidence_on_hover() {
    let html = render(&results(), Format::Html);
    // The page's script shows a connection's record on hover or click, from the lines the
    // page embeds.
    assert!(
        html.contains("why the browser opened it: unknown") && html.contains("NetLog socket 62"),
        "{html}"
    );
    assert!(html.contains("unknown because: attempt manager 49 had requesters"));
    assert!(html.contains("TLS_STREAM_ATTEMPT 61 TCP_BASED_ATTEMPT_BOUND_TO_POOL"));
}

#[test]
fn older_client_logs_without_evidence_still_read() {
    let old = r#"{"cause":"preconnect","net_error":-202,"alert_sent":null,"url":null}"#;
    let side: ClientSide = serde_json::from_str(old).unwrap();
    assert_eq!(side.cause, ClientCause::Preconnect);
    assert!(side.evidence.is_empty() && side.unknown_reason.is_none());
}
