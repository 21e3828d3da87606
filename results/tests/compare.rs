//! `diff`, `merge` and `history` on crafted results.

use std::collections::BTreeMap;

use model::StepAction;
use results::{
    CellKey, CellResult, CellStatus, Environment, HistoryEntry, MergeError, RunResults,
    SCHEMA_VERSION, StepResult, ToolVersions, TrialResult, Verdict, diff, history_table, merge,
};

fn key(scenario: &str, backend: &str) -> CellKey {
    CellKey {
        scenario: scenario.into(),
        backend: backend.into(),
        browser: "chromium".into(),
        label: None,
        tls: "1.3".into(),
    }
}

fn step(action: StepAction, retries: u32) -> StepResult {
    StepResult {
        action,
        shown: "page".into(),
        page_shown: true,
        started_at_us: 0,
        settled_at_us: 0,
        settle_capped: false,
        failed_handshakes: retries,
        retries: Some(retries),
        page_on_reused_connection: false,
        idle: 0,
        established: 1,
        errors_after_handshake: 0,
        requests: 1,
        alerts: Vec::new(),
        sequence: Vec::new(),
        connections: Vec::new(),
        failed_by_cause: Default::default(),
    }
}

/// A measured click-through cell: `visit` (no page), then `proceed` and one `revisit` per
/// entry of `per_step` — each entry the retries of every trial. Trials from `confirm_from`
/// (1-based) on are confirmation trials.
fn cell_with(
    scenario: &str,
    backend: &str,
    per_step: &[&[u32]],
    confirm_from: Option<usize>,
) -> CellResult {
    let trials = per_step.first().map_or(0, |s| s.len());
    let mut c = CellResult {
        trials: (0..trials)
            .map(|t| {
                let mut visit = step(StepAction::Visit, 1);
                visit.page_shown = false;
                visit.shown = "warning ERR_CERT_AUTHORITY_INVALID".into();
                visit.retries = None;
                visit.established = 0;
                let mut steps = vec![visit];
                for (i, values) in per_step.iter().enumerate() {
                    steps.push(step(
                        if i == 0 {
                            StepAction::Proceed
                        } else {
                            StepAction::Revisit
                        },
                        values[t],
                    ));
                }
                TrialResult {
                    index: t + 1,
                    error: None,
                    log_dir: format!("trials/trial-{}", t + 1),
                    steps,
                    unattributed: Vec::new(),
                    teardown: None,
                    wall_ms: 0,
                    client_log: None,
                    client_log_problem: None,
                    browser_peak_rss_kib: None,
                    confirmation: confirm_from.is_some_and(|f| t + 1 >= f),
                    capture: None,
                    timings: None,
                }
            })
            .collect(),
        ..CellResult::new(
            key(scenario, backend),
            "self-signed",
            "click-through",
            "close",
        )
    };
    c.summarise();
    c
}

fn cell(scenario: &str, backend: &str, per_step: &[&[u32]]) -> CellResult {
    cell_with(scenario, backend, per_step, None)
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
fn fewer_trials_reaching_the_page_is_a_change() {
    // The same retries everywhere; only whether `proceed` reached the page moves: 10 of 10
    // trials → 2 of 10. That must be confirmed like any count.
    let old = run(
        "156",
        vec![cell_with("report-close", "mbedtls", &[&[2; 10]], Some(4))],
    );
    let mut new_cell = cell_with("report-close", "mbedtls", &[&[2; 10]], Some(4));
    for t in new_cell.trials.iter_mut().skip(2) {
        let proceed = &mut t.steps[1];
        proceed.page_shown = false;
        proceed.shown = "warning ERR_CERT_AUTHORITY_INVALID".into();
        proceed.retries = None;
        proceed.established = 0;
    }
    new_cell.summarise();
    assert_eq!(new_cell.headline[0].trials_without_page, 8);
    let d = diff(&old, &run("156", vec![new_cell]));
    assert_eq!(d.changed.len(), 1, "{}", d.render());
    let text = d.render();
    assert!(
        text.contains("proceed (step 2) page shown median 1 → 0 (confirmed")
            && text.contains("new 1 1 0 + 0 0 0 0 0 0 0"),
        "{text}"
    );
}

#[test]
fn spread_between_trials_of_one_build_is_no_change() {
    let old = run(
        "156",
        vec![cell("report-close", "mbedtls", &[&[2, 3, 4], &[2, 3, 3]])],
    );
    let new = run(
        "156",
        vec![cell("report-close", "mbedtls", &[&[3, 4, 4], &[1, 2, 3]])],
    );
    let d = diff(&old, &new);
    assert!(!d.has_changes());
    insta::assert_snapshot!(d.render());
}

#[test]
fn the_issue_s_false_alarm_is_only_flagged() {
    // control-devtools-ignore / openssl / chromium / TLS 1.3: revisit 3 → 2 with three trials a
    // side used to exit 3. Now it is a candidate for confirmation, not a change.
    let old = run(
        "156",
        vec![cell(
            "control-devtools-ignore",
            "openssl",
            &[&[2, 2, 2], &[3, 3, 3]],
        )],
    );
    let new = run(
        "156",
        vec![cell(
            "control-devtools-ignore",
            "openssl",
            &[&[2, 2, 2], &[2, 2, 2]],
        )],
    );
    let d = diff(&old, &new);
    assert!(!d.has_changes());
    assert_eq!(d.flagged().len(), 1);
    insta::assert_snapshot!(d.render());
}

#[test]
fn a_flagged_cell_measured_again_like_before_is_noise() {
    let old = run("156", vec![cell("report-close", "openssl", &[&[3, 3, 3]])]);
    let mut values = vec![2, 2, 2];
    values.extend([3, 3, 2, 3, 3, 3, 2, 3, 3, 3, 3, 2, 3, 3, 3, 3, 3, 2, 3, 3]);
    let new = run(
        "156",
        vec![cell_with("report-close", "openssl", &[&values], Some(4))],
    );
    let d = diff(&old, &new);
    assert!(!d.has_changes());
    assert_eq!(d.tested[0].verdict, Verdict::NotConfirmed);
    insta::assert_snapshot!(d.render());
}

#[test]
fn a_real_change_measured_again_is_confirmed() {
    // report-close without preconnects: 3 → 1 on every step, 3 + 20 trials.
    let old = run(
        "156",
        vec![cell("report-close", "rustls", &[&[3, 3, 2], &[3, 4, 3]])],
    );
    let ones = vec![1; 23];
    let new = run(
        "157",
        vec![cell_with(
            "report-close",
            "rustls",
            &[&ones, &ones],
            Some(4),
        )],
    );
    let d = diff(&old, &new);
    assert!(d.has_changes());
    assert_eq!(d.tested[0].verdict, Verdict::Confirmed);
    insta::assert_snapshot!(d.render());
    // The page highlights the changed cell in the matrix's layout, with before and after.
    let page = d.render_html("old", "new");
    let grid = &page[page.find("<table class=\"grid\">").expect("a grid")..];
    assert!(
        grid.contains(
            "<td class=\"c\">changed: proceed (step 2): 3 → 1; revisit (step 3): 3 → 1</td>"
        ),
        "{grid}"
    );
}

#[test]
fn holm_counts_every_cell_compared() {
    // The same confirmed move, but among 120 compared cells: with 10 confirmation trials
    // 1 / C(16, 3) = 0.0018 is above 0.05 / 120, so it is not confirmed; with 20
    // (1 / C(26, 3) = 0.00038) it is.
    let quiet = |i: usize| cell(&format!("quiet-{i:03}"), "rustls", &[&[0, 0, 0]]);
    let mut old: Vec<CellResult> = (0..119).map(quiet).collect();
    let mut new = old.clone();
    old.push(cell("report-close", "rustls", &[&[3, 3, 2]]));
    new.push(cell_with("report-close", "rustls", &[&[1; 13]], Some(4)));
    let d = diff(&run("156", old.clone()), &run("156", new.clone()));
    assert_eq!(d.compared, 120);
    assert!(!d.has_changes(), "{}", d.render());
    assert!((d.tested[0].test.p - 1.0 / 560.0).abs() < 1e-12);
    new.pop();
    new.push(cell_with("report-close", "rustls", &[&[1; 23]], Some(4)));
    let d = diff(&run("156", old), &run("156", new));
    assert!(d.has_changes(), "{}", d.render());
}

#[test]
fn new_removed_and_status_changes_are_reported() {
    let mut broken = cell("report-close", "openssl", &[]);
    broken.status = CellStatus::Error {
        reason: "x".into(),
        log: None,
    };
    let mut no_page = cell("report-resumption", "openssl", &[&[3, 3, 3]]);
    for t in &mut no_page.trials {
        t.steps[1].page_shown = false;
    }
    no_page.summarise();
    let old = run(
        "156",
        vec![
            cell("report-close", "mbedtls", &[&[1, 1, 1]]),
            cell("report-close", "openssl", &[&[1, 1, 1]]),
            cell("report-resumption", "openssl", &[&[3, 3, 3]]),
        ],
    );
    let new = run(
        "156",
        vec![
            broken,
            cell("control-trusted-ca", "mbedtls", &[&[0, 0, 0]]),
            no_page,
        ],
    );
    insta::assert_snapshot!(diff(&old, &new).render());
}

#[test]
fn a_version_change_alone_is_listed_but_not_a_change() {
    let old = run("156", vec![cell("report-close", "mbedtls", &[&[1, 1, 1]])]);
    let new = run("157", vec![cell("report-close", "mbedtls", &[&[1, 1, 1]])]);
    let d = diff(&old, &new);
    assert!(!d.has_changes());
    assert_eq!(d.versions.len(), 2);
}

#[test]
fn merging_slices_gives_the_cells_of_the_whole_run() {
    let a = cell("report-close", "mbedtls", &[&[1, 1, 1]]);
    let b = cell("report-close", "openssl", &[&[2, 2, 2]]);
    let whole = run("156", vec![a.clone(), b.clone()]);
    let (merged, notes) = merge(&[
        ("slice-a".into(), run("156", vec![a])),
        ("slice-b".into(), run("156", vec![b])),
    ])
    .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(merged.cells, whole.cells);
    assert_eq!(merged.cells_requested, 2);
    assert_eq!(merged.environment.browsers, whole.environment.browsers);
    assert!(!diff(&whole, &merged).has_changes());
}

#[test]
fn merging_different_browser_versions_fails_naming_both() {
    let e = merge(&[
        (
            "slice-a".into(),
            run("156", vec![cell("report-close", "mbedtls", &[&[1, 1, 1]])]),
        ),
        (
            "slice-b".into(),
            run("157", vec![cell("report-close", "openssl", &[&[1, 1, 1]])]),
        ),
    ])
    .unwrap_err();
    let MergeError::VersionConflict(conflicts) = &e else {
        panic!("{e}")
    };
    let lines: Vec<String> = conflicts.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "chromium browser: Chromium 156 in slice-a, but Chromium 157 in slice-b",
            "chromium driver: ChromeDriver 156 in slice-a, but ChromeDriver 157 in slice-b",
        ]
    );
    let text = e.to_string();
    assert!(
        text.contains("not one run") && text.contains(&lines[0]),
        "{text}"
    );
}

#[test]
fn merging_different_library_versions_fails_naming_both() {
    let mut b = run(
        "156",
        vec![cell("report-resumption", "mbedtls", &[&[1, 1, 1]])],
    );
    b.environment
        .backends
        .insert("mbedtls".into(), "Mbed TLS 3.6.7".into());
    let e = merge(&[
        (
            "slice-a".into(),
            run("156", vec![cell("report-close", "mbedtls", &[&[1, 1, 1]])]),
        ),
        ("slice-b".into(), b),
    ])
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("mbedtls: Mbed TLS 3.6.6 in slice-a, but Mbed TLS 3.6.7 in slice-b"),
        "{e}"
    );
}

#[test]
fn a_version_no_cell_of_a_slice_used_is_no_conflict() {
    // Every slice records every installed browser and library. A Firefox slice's machine may
    // have another Chromium: no cell of that slice measured it, and the merged run names the
    // Chromium its Chromium cells used.
    let mut firefox_cell = cell("report-close", "mbedtls", &[&[0, 0, 0]]);
    firefox_cell.key.browser = "firefox".into();
    let mut firefox_slice = run("157", vec![firefox_cell]);
    firefox_slice.environment.browsers.insert(
        "firefox".into(),
        ToolVersions {
            browser: Some("Mozilla Firefox 153.7.0esr".into()),
            driver: Some("geckodriver 0.37.1".into()),
            unavailable: None,
        },
    );
    let (merged, notes) = merge(&[
        ("slice-firefox".into(), firefox_slice),
        (
            "slice-chromium".into(),
            run("156", vec![cell("report-close", "mbedtls", &[&[1, 1, 1]])]),
        ),
    ])
    .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        merged.environment.browsers["chromium"].browser.as_deref(),
        Some("Chromium 156")
    );
    assert_eq!(
        merged.environment.browsers["firefox"].browser.as_deref(),
        Some("Mozilla Firefox 153.7.0esr")
    );
}

#[test]
fn history_puts_browser_versions_in_the_column_headers() {
    let (headers, rows) = history_table(&[
        HistoryEntry {
            label: "night-1".into(),
            results: run("156", vec![cell("report-close", "mbedtls", &[&[3, 3, 3]])]),
        },
        HistoryEntry {
            label: "night-2".into(),
            results: run("157", vec![cell("report-close", "mbedtls", &[&[1, 1, 1]])]),
        },
    ]);
    assert_eq!(
        headers,
        ["night-1 (Chromium 156)", "night-2 (Chromium 157)"]
    );
    assert_eq!(rows[0].1, ["3", "1"]);
}

#[test]
fn the_history_page_draws_each_cells_trend_over_the_versions() {
    let entries = [
        HistoryEntry {
            label: "night-1".into(),
            results: run(
                "156.0.8078.108",
                vec![cell("report-close", "mbedtls", &[&[3, 2, 4]])],
            ),
        },
        // The cell was not measured that night: a gap, not a zero.
        HistoryEntry {
            label: "night-2".into(),
            results: run("157.0.1.2", Vec::new()),
        },
        HistoryEntry {
            label: "night-3".into(),
            results: run(
                "158.0.9.9",
                vec![cell("report-close", "mbedtls", &[&[1, 1, 1]])],
            ),
        },
    ];
    let page = results::history_html(&entries);
    assert_eq!(page.matches("<svg").count(), 1, "one chart per cell");
    assert_eq!(
        page.matches("<circle").count(),
        2,
        "one dot per measured run"
    );
    assert!(!page.contains("<polyline"), "no line across the gap");
    assert!(
        page.contains("<title>156.0.8078.108: 3 (2–4)</title>"),
        "{page}"
    );
    for axis in [">156.0.8078<", ">157.0.1<", ">158.0.9<"] {
        assert!(page.contains(axis), "x axis names {axis}");
    }
    assert!(!page.contains("http"), "self-contained: {page}");
}

/// Recorded runs (trimmed copies of real `matrix.json` files, see `fixtures/README.md`).
fn recorded(name: &str) -> RunResults {
    RunResults::read(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("{name}.json")),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn recorded_runs_of_one_build_confirm_no_change() {
    // The Chromium cells of report-close, private-ca-click-through and control-devtools-ignore
    // from a full `--matrix all` run (schema 1, written before confirmation existed), and the
    // same cells of the same build 15–45 minutes later (schema 2): first pass, then after
    // `harness diff --confirm` measured its flagged cells again with 20 more trials.
    let (first, second) = (recorded("aa-run-1"), recorded("aa-run-2"));
    assert_eq!(first.schema_version, 1);
    let d = diff(&first, &second);
    assert_eq!(d.compared, 18);
    assert!(!d.has_changes(), "{}", d.render());
    assert_eq!(d.flagged().len(), 6, "{}", d.render());
    // Among them the issue's false alarm: control-devtools-ignore / openssl / TLS 1.3 revisit.
    assert!(
        d.flagged()
            .iter()
            .any(|k| k.scenario == "control-devtools-ignore" && k.backend == "openssl"),
        "{}",
        d.render()
    );
    let d = diff(&first, &recorded("aa-run-2-confirmed"));
    assert!(!d.has_changes(), "{}", d.render());
    assert!(d.flagged().is_empty(), "{}", d.render());
    assert_eq!(d.tested.len(), 6, "{}", d.render());
    assert!(
        d.tested.iter().all(|t| t.verdict == Verdict::NotConfirmed),
        "{}",
        d.render()
    );
}

#[test]
fn recorded_ab_with_preconnects_off_is_confirmed_in_every_chromium_cell() {
    // report-close, Chromium, all backends, both TLS versions, both sides after
    // `harness diff --confirm --confirm-old --confirm-trials 10`.
    let d = diff(&recorded("ab-old-confirmed"), &recorded("ab-new-confirmed"));
    assert_eq!(d.changed.len(), 6, "{}", d.render());
    assert!(d.tested.iter().all(|t| t.verdict == Verdict::Confirmed));
}

/// `cell` under a labelled build of Chromium.
fn labelled(label: &str, c: CellResult) -> CellResult {
    let mut c = c;
    c.key.label = Some(label.into());
    c
}

/// A run of two labelled Chromium builds: each cell under `stable` and under `candidate`.
fn two_builds(stable: (&str, Vec<CellResult>), candidate: (&str, Vec<CellResult>)) -> RunResults {
    let mut r = run("-", Vec::new());
    r.environment.browsers.clear();
    for (label, (version, cells)) in [("stable", stable), ("candidate", candidate)] {
        r.environment.browsers.insert(
            format!("chromium@{label}"),
            ToolVersions {
                browser: Some(format!("Chromium {version}")),
                driver: Some(format!("ChromeDriver {version}")),
                unavailable: None,
            },
        );
        r.cells
            .extend(cells.into_iter().map(|c| labelled(label, c)));
    }
    r.cells_requested = r.cells.len();
    r
}

#[test]
fn a_label_is_part_of_the_key_and_left_out_of_the_file_when_absent() {
    let plain = cell("report-close", "mbedtls", &[&[2, 2, 2]]);
    let json = serde_json::to_string(&plain.key).unwrap();
    assert_eq!(
        json, r#"{"scenario":"report-close","backend":"mbedtls","browser":"chromium","tls":"1.3"}"#,
        "an unlabelled key is written as before labels existed"
    );
    let c = labelled("candidate", plain.clone());
    let json = serde_json::to_string(&c.key).unwrap();
    assert!(
        json.contains(r#""browser":"chromium","label":"candidate""#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<CellKey>(&json).unwrap(), c.key);
    assert_ne!(c.key, plain.key);
    assert_eq!(c.key.browser_column(), "chromium@candidate");
    assert_eq!(
        c.key.to_string(),
        "report-close / mbedtls / chromium@candidate / TLS 1.3"
    );
}

#[test]
fn one_build_against_another_of_the_same_run_is_a_diff_of_two_runs() {
    let r = two_builds(
        (
            "147.0.1",
            vec![
                cell("report-close", "mbedtls", &[&[2, 2, 3], &[0, 0, 0]]),
                cell("report-close", "rustls", &[&[2, 3, 2]]),
            ],
        ),
        (
            "148.0.2",
            vec![
                cell("report-close", "mbedtls", &[&[2, 3, 2], &[0, 0, 0]]),
                cell("report-close", "rustls", &[&[3, 2, 2]]),
            ],
        ),
    );
    assert_eq!(
        r.labels().into_iter().collect::<Vec<_>>(),
        ["candidate", "stable"]
    );
    let (old, new) = (r.label_view("stable"), r.label_view("candidate"));
    assert_eq!(old.cells.len(), 2);
    assert!(old.cells.iter().all(|c| c.key.label.is_none()));
    assert_eq!(
        old.environment.browsers["chromium"].browser.as_deref(),
        Some("Chromium 147.0.1")
    );
    let d = diff(&old, &new);
    assert!(!d.has_changes(), "{}", d.render());
    assert_eq!(d.compared, 2);
    assert_eq!(
        d.versions,
        [
            "chromium browser: Chromium 147.0.1 → Chromium 148.0.2",
            "chromium driver: ChromeDriver 147.0.1 → ChromeDriver 148.0.2"
        ]
    );

    // A cell measured under one label only is added or removed, as between two runs.
    let mut r = r;
    r.cells
        .retain(|c| !(c.key.label.as_deref() == Some("candidate") && c.key.backend == "rustls"));
    let d = diff(&r.label_view("stable"), &r.label_view("candidate"));
    assert_eq!(d.removed, [key("report-close", "rustls")]);
}

#[test]
fn labelled_builds_are_columns_and_history_rows_of_their_own() {
    let r = two_builds(
        ("147", vec![cell("report-close", "mbedtls", &[&[2, 2, 2]])]),
        ("148", vec![cell("report-close", "mbedtls", &[&[1, 1, 1]])]),
    );
    let md = results::render(&r, results::Format::Markdown);
    assert!(
        md.contains("chromium@stable") && md.contains("chromium@candidate"),
        "{md}"
    );
    let entries = [HistoryEntry {
        label: "night-1".into(),
        results: r,
    }];
    // Each build's trend is drawn along its own version.
    let page = results::history_html(&entries);
    assert!(page.contains(">147<") && page.contains(">148<"), "{page}");
    let (headers, rows) = history_table(&entries);
    assert_eq!(
        headers,
        ["night-1 (candidate Chromium 148, stable Chromium 147)"]
    );
    let names: Vec<String> = rows.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(
        names,
        [
            "report-close / mbedtls / chromium@candidate / TLS 1.3",
            "report-close / mbedtls / chromium@stable / TLS 1.3"
        ]
    );
    assert_eq!(rows[0].1, ["1"]);
    assert_eq!(rows[1].1, ["2"]);
}
