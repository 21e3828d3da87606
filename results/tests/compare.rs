//! `diff`, `merge` and `history` on crafted results.

use std::collections::BTreeMap;

use results::{
    CellKey, CellResult, CellStatus, Environment, HeadlineStep, HistoryEntry, RunResults,
    SCHEMA_VERSION, Spread, ToolVersions, diff, history_table, merge,
};

fn key(scenario: &str, backend: &str) -> CellKey {
    CellKey {
        scenario: scenario.into(),
        backend: backend.into(),
        browser: "chromium".into(),
        tls: "1.3".into(),
    }
}

fn cell(scenario: &str, backend: &str, spreads: &[(u32, u32, u32)]) -> CellResult {
    CellResult {
        key: key(scenario, backend),
        cert: "self-signed".into(),
        trust: "click-through".into(),
        connection: "close".into(),
        status: CellStatus::Measured,
        headline: spreads
            .iter()
            .enumerate()
            .map(|(i, &(min, median, max))| HeadlineStep {
                step: i + 1,
                action: if i == 0 {
                    "proceed".into()
                } else {
                    "revisit".into()
                },
                retries: Some(Spread { min, median, max }),
                failed_handshakes: Spread { min, median, max },
                trials_without_page: 0,
                failed_by_cause: Default::default(),
            })
            .collect(),
        trials: Vec::new(),
        expectations: Vec::new(),
    }
}

fn run(chromium: &str, cells: Vec<CellResult>) -> RunResults {
    RunResults {
        schema_version: SCHEMA_VERSION,
        environment: Environment {
            browsers: BTreeMap::from([(
                "chromium".into(),
                ToolVersions {
                    browser: Some(format!("Chromium {chromium}")),
                    driver: Some(format!("ChromeDriver {chromium}")),
                    unavailable: None,
                },
            )]),
            backends: BTreeMap::from([("mbedtls".into(), "Mbed TLS 3.6.6".into())]),
            ..Environment::default()
        },
        cells_requested: cells.len(),
        cells,
    }
}

#[test]
fn spread_within_overlapping_ranges_is_unchanged() {
    let old = run(
        "156",
        vec![cell("report-close", "mbedtls", &[(2, 3, 4), (2, 3, 3)])],
    );
    let new = run(
        "156",
        vec![cell("report-close", "mbedtls", &[(3, 4, 4), (1, 2, 3)])],
    );
    let d = diff(&old, &new);
    assert!(!d.has_changes());
    insta::assert_snapshot!(d.render(), @"no cell changed (within the spread seen across repeats)");
}

#[test]
fn a_median_that_moved_by_more_than_one_is_a_change() {
    let old = run("156", vec![cell("report-close", "mbedtls", &[(1, 3, 4)])]);
    let new = run("156", vec![cell("report-close", "mbedtls", &[(1, 1, 4)])]);
    insta::assert_snapshot!(diff(&old, &new).render(), @"changed: report-close / mbedtls / chromium / TLS 1.3: proceed (step 2) retries 3 (1–4) → 1 (1–4)");
}

#[test]
fn ranges_that_no_longer_overlap_are_a_change() {
    let old = run("156", vec![cell("report-close", "mbedtls", &[(3, 3, 4)])]);
    let new = run("157", vec![cell("report-close", "mbedtls", &[(1, 2, 2)])]);
    let d = diff(&old, &new);
    assert!(d.has_changes());
    insta::assert_snapshot!(d.render(), @r"
    changed: report-close / mbedtls / chromium / TLS 1.3: proceed (step 2) retries 3 (3–4) → 2 (1–2)
    version: chromium browser: Chromium 156 → Chromium 157
    version: chromium driver: ChromeDriver 156 → ChromeDriver 157
    ");
}

#[test]
fn new_removed_and_status_changes_are_reported() {
    let mut broken = cell("report-close", "openssl", &[]);
    broken.status = CellStatus::Error {
        reason: "x".into(),
        log: None,
    };
    let old = run(
        "156",
        vec![
            cell("report-close", "mbedtls", &[(1, 1, 1)]),
            cell("report-close", "openssl", &[(1, 1, 1)]),
        ],
    );
    let new = run(
        "156",
        vec![broken, cell("control-trusted-ca", "mbedtls", &[(0, 0, 0)])],
    );
    insta::assert_snapshot!(diff(&old, &new).render(), @r"
    changed: report-close / openssl / chromium / TLS 1.3: measured → error
    added:   control-trusted-ca / mbedtls / chromium / TLS 1.3
    removed: report-close / mbedtls / chromium / TLS 1.3
    ");
}

#[test]
fn a_version_change_alone_is_listed_but_not_a_change() {
    let old = run("156", vec![cell("report-close", "mbedtls", &[(1, 1, 1)])]);
    let new = run("157", vec![cell("report-close", "mbedtls", &[(1, 1, 1)])]);
    let d = diff(&old, &new);
    assert!(!d.has_changes());
    assert_eq!(d.versions.len(), 2);
}

#[test]
fn merging_slices_gives_the_cells_of_the_whole_run() {
    let a = cell("report-close", "mbedtls", &[(1, 1, 1)]);
    let b = cell("report-close", "openssl", &[(2, 2, 2)]);
    let whole = run("156", vec![a.clone(), b.clone()]);
    let (merged, conflicts) = merge(&[
        ("slice-a".into(), run("156", vec![a])),
        ("slice-b".into(), run("156", vec![b])),
    ]);
    assert!(conflicts.is_empty(), "{conflicts:?}");
    assert_eq!(merged.cells, whole.cells);
    assert_eq!(merged.cells_requested, 2);
    assert!(!diff(&whole, &merged).has_changes());
}

#[test]
fn merging_different_browser_versions_reports_the_conflict() {
    let (_, conflicts) = merge(&[
        (
            "slice-a".into(),
            run("156", vec![cell("report-close", "mbedtls", &[(1, 1, 1)])]),
        ),
        (
            "slice-b".into(),
            run("157", vec![cell("report-close", "openssl", &[(1, 1, 1)])]),
        ),
    ]);
    assert_eq!(
        conflicts,
        [
            "slice-b: chromium browser: Chromium 156 → Chromium 157",
            "slice-b: chromium driver: ChromeDriver 156 → ChromeDriver 157"
        ]
    );
}

#[test]
fn history_puts_browser_versions_in_the_column_headers() {
    let (headers, rows) = history_table(&[
        HistoryEntry {
            label: "night-1".into(),
            results: run("156", vec![cell("report-close", "mbedtls", &[(3, 3, 3)])]),
        },
        HistoryEntry {
            label: "night-2".into(),
            results: run("157", vec![cell("report-close", "mbedtls", &[(1, 1, 1)])]),
        },
    ]);
    assert_eq!(
        headers,
        ["night-1 (Chromium 156)", "night-2 (Chromium 157)"]
    );
    assert_eq!(rows[0].1, ["3", "1"]);
}
