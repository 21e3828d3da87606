//! The matrix view and the text every format shares: headlines, the legend, and the sections
//! listing what a cell's numbers do not show.

use model::{ClientCause, Outcome};

use crate::{CellResult, CellStatus, RunResults, StepResult, TrialResult};

/// The matrix view: rows scenario × backend, columns browser × TLS, in first-seen order.
pub(super) struct Matrix<'a> {
    pub(super) rows: Vec<(String, String)>,
    pub(super) columns: Vec<(String, String)>,
    cells: &'a [CellResult],
}

impl<'a> Matrix<'a> {
    pub(super) fn new(results: &'a RunResults) -> Self {
        let mut rows = Vec::new();
        let mut columns = Vec::new();
        for c in &results.cells {
            let row = (c.key.scenario.clone(), c.key.backend.clone());
            let col = (c.key.browser_column(), c.key.tls.clone());
            if !rows.contains(&row) {
                rows.push(row);
            }
            if !columns.contains(&col) {
                columns.push(col);
            }
        }
        Self {
            rows,
            columns,
            cells: &results.cells,
        }
    }

    pub(super) fn cell(
        &self,
        row: &(String, String),
        col: &(String, String),
    ) -> Option<&'a CellResult> {
        self.cells.iter().find(|c| {
            c.key.scenario == row.0
                && c.key.backend == row.1
                && c.key.browser_column() == col.0
                && c.key.tls == col.1
        })
    }
}

/// `2 / 1 / 1`: median retries of the step that first shows the page, then of each revisit;
/// `–` where no trial showed the page in that step; `↺` after a number: in some trial the page
/// came over a connection opened in an earlier step (keep-alive), so the number counts every
/// failed handshake of the step. `⚑k/n` after a step: only k of the n
/// trials showed the page there (the number is over those k); `⏱` after the cell: a step was cut
/// off by the settle cap; `✗` an expectation broke.
pub(crate) fn headline_text(cell: &CellResult) -> String {
    let broken = if cell.expectations.iter().any(|e| e.broken.is_some()) {
        " ✗"
    } else {
        ""
    };
    let capped = if capped_steps(cell).next().is_some() {
        " ⏱"
    } else {
        ""
    };
    let n = cell.trials.len();
    let text = match &cell.status {
        CellStatus::Measured if cell.headline.is_empty() => "no page".into(),
        CellStatus::Measured => cell
            .headline
            .iter()
            .map(|h| {
                let reused = cell.trials.iter().any(|t| {
                    t.steps
                        .get(h.step)
                        .is_some_and(|s| s.page_on_reused_connection)
                });
                let number = h
                    .retries
                    .map(|r| format!("{r}{}", if reused { "↺" } else { "" }))
                    .unwrap_or_else(|| "–".into());
                if h.trials_without_page > 0 {
                    format!("{number} ⚑{}/{n}", n - h.trials_without_page)
                } else {
                    number
                }
            })
            .collect::<Vec<_>>()
            .join(" / "),
        CellStatus::Unsupported { .. } => "unsupported".into(),
        CellStatus::Error { .. } => "error".into(),
    };
    let without_log = cell
        .trials
        .iter()
        .filter(|t| t.client_log_problem.is_some())
        .count();
    let netlog = if without_log > 0 {
        format!(" (no NetLog in {without_log} of {})", cell.trials.len())
    } else {
        String::new()
    };
    format!("{text}{capped}{broken}{netlog}")
}

/// `(trial, step)` of every step that the settle cap cut off, the teardown excluded.
fn capped_steps(cell: &CellResult) -> impl Iterator<Item = (&TrialResult, usize, &StepResult)> {
    cell.trials.iter().flat_map(|t| {
        t.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.settle_capped)
            .map(move |(i, s)| (t, i, s))
    })
}

/// `- cell proceed: 2 of 3 trials showed the page (trial 2 showed warning ERR_…)`.
pub(super) fn without_page_lines(cell: &CellResult) -> Vec<String> {
    let n = cell.trials.len();
    cell.headline
        .iter()
        .filter(|h| h.trials_without_page > 0)
        .map(|h| {
            let which: Vec<String> = cell
                .trials
                .iter()
                .filter_map(|t| match t.steps.get(h.step) {
                    Some(s) if s.page_shown => None,
                    Some(s) => Some(format!("trial {} showed {}", t.index, s.shown)),
                    None => Some(format!("trial {} did not reach it", t.index)),
                })
                .collect();
            format!(
                "- {} {} (step {}): {} of {n} trials showed the page ({})",
                cell.key,
                h.action,
                h.step + 1,
                n - h.trials_without_page,
                which.join(", ")
            )
        })
        .collect()
}

/// `- cell trial 2 revisit (step 4): still busy at the settle cap`.
pub(super) fn capped_lines(cell: &CellResult) -> Vec<String> {
    capped_steps(cell)
        .map(|(t, i, s)| {
            format!(
                "- {} trial {} {} (step {}): connections still arriving at the settle cap",
                cell.key,
                t.index,
                s.action,
                i + 1
            )
        })
        .collect()
}

/// `- cell: 2 connections in 1 of 3 trials, 1 failed handshake (trial 2: reset idle)`.
pub(super) fn teardown_lines(cell: &CellResult) -> Vec<String> {
    let with: Vec<(&TrialResult, &StepResult)> = cell
        .trials
        .iter()
        .filter_map(|t| t.teardown.as_ref().map(|s| (t, s)))
        .filter(|(_, s)| !s.connections.is_empty())
        .collect();
    if with.is_empty() {
        return Vec::new();
    }
    let connections: usize = with.iter().map(|(_, s)| s.connections.len()).sum();
    let failed: u32 = with.iter().map(|(_, s)| s.failed_handshakes).sum();
    let detail: Vec<String> = with
        .iter()
        .map(|(t, s)| format!("trial {}: {}", t.index, s.sequence.join(" ")))
        .collect();
    vec![format!(
        "- {}: {} during teardown in {} of {} trials, {} ({})",
        cell.key,
        plural(connections, "connection"),
        with.len(),
        cell.trials.len(),
        plural(failed as usize, "failed handshake"),
        detail.join("; ")
    )]
}

/// `- cell trial 1 visit: late-error (Broken pipe)`: connections that completed the handshake
/// and then failed with an error, neither idle nor a failed handshake.
pub(super) fn error_after_handshake_lines(cell: &CellResult) -> Vec<String> {
    let mut out = Vec::new();
    for t in &cell.trials {
        for s in t.steps_and_teardown() {
            for r in &s.connections {
                if let Outcome::ErrorAfterHandshake { cause } = &r.outcome {
                    out.push(format!(
                        "- {} trial {} {}: connection {} {cause}",
                        cell.key, t.index, s.action, r.id
                    ));
                }
            }
        }
    }
    out
}

/// Every section that lists what a cell's numbers do not show, in the order people should
/// read them: (title, lines). Sections without lines are left out.
pub(super) fn finding_sections(results: &RunResults) -> Vec<(&'static str, Vec<String>)> {
    let each = |f: fn(&CellResult) -> Vec<String>| -> Vec<String> {
        results.cells.iter().flat_map(f).collect()
    };
    [
        (
            "Browser settings the scenario changed (its knobs; every other cell runs the browser's defaults)",
            knob_lines(results),
        ),
        (
            "Trials without the page (⚑k/n: the step's number is over the k trials that showed it)",
            each(without_page_lines),
        ),
        (
            "Steps cut off by the settle cap (⏱: connections still arrived after 10 s; later ones were counted in the next step or the teardown)",
            each(capped_lines),
        ),
        (
            "Connections during teardown (after the last step settled; in each trial's totals, never in a headline)",
            each(teardown_lines),
        ),
        (
            "Errors after a completed handshake (neither idle nor a failed handshake)",
            each(error_after_handshake_lines),
        ),
    ]
    .into_iter()
    .filter(|(_, lines)| !lines.is_empty())
    .collect()
}

/// `- preview-happy-eyeballs-v3 on chromium: features on HappyEyeballsV3`, once per scenario
/// and browser whose cells record knobs.
pub(super) fn knob_lines(results: &RunResults) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in &results.cells {
        let mut parts = Vec::new();
        if !c.chromium_features.is_empty() {
            parts.push(format!("features on {}", c.chromium_features.join(", ")));
        }
        if !c.chromium_disabled_features.is_empty() {
            parts.push(format!(
                "features off {}",
                c.chromium_disabled_features.join(", ")
            ));
        }
        if !c.firefox_prefs.is_empty() {
            let prefs: Vec<String> = c
                .firefox_prefs
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            parts.push(format!("prefs {}", prefs.join(", ")));
        }
        if parts.is_empty() {
            continue;
        }
        let line = format!(
            "- {} on {}: {}",
            c.key.scenario,
            c.key.browser,
            parts.join("; ")
        );
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

/// `Teardown: 3 connections, 1 failed handshake in 306 trials.` — always printed, so a reader
/// knows it was looked at.
fn teardown_total(results: &RunResults) -> String {
    let trials: Vec<&TrialResult> = results.cells.iter().flat_map(|c| &c.trials).collect();
    let with_teardown = trials.iter().filter(|t| t.teardown.is_some()).count();
    if with_teardown == 0 && !trials.is_empty() {
        return "Teardown: not recorded (results written before schema 3).\n".into();
    }
    let (connections, failed) = trials
        .iter()
        .filter_map(|t| t.teardown.as_ref())
        .fold((0, 0), |(c, f), s| {
            (c + s.connections.len(), f + s.failed_handshakes as usize)
        });
    format!(
        "Teardown (after the last step settled, never in a headline): {}, {} in {with_teardown} trials.\n",
        plural(connections, "connection"),
        plural(failed, "failed handshake")
    )
}

/// `1 connection`, `2 connections`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Trials of `cell` whose browser log was read (only they say why connections were opened).
fn trials_with_log(cell: &CellResult) -> usize {
    cell.trials
        .iter()
        .filter(|t| t.client_log.is_some())
        .count()
}

/// `- cell trial 2: Chromium wrote no NetLog (netlog.json)` for every trial whose log is
/// missing or unreadable.
pub(super) fn missing_log_lines(results: &RunResults) -> Vec<String> {
    results
        .cells
        .iter()
        .flat_map(|c| {
            c.trials.iter().filter_map(move |t| {
                t.client_log_problem
                    .as_ref()
                    .map(|p| format!("- {} trial {}: {p}", c.key, t.index))
            })
        })
        .collect()
}

/// `- cell proceed (step 2): 9 failed handshakes (…) in 3 of 3 trials with a NetLog = 6
/// preconnect + 3 first-attempt`,
/// from browser logs: only trials with a log are counted, and the count says how many that is.
pub(super) fn cause_lines(results: &RunResults) -> Vec<String> {
    let mut out = Vec::new();
    for c in results
        .cells
        .iter()
        .filter(|c| c.status == CellStatus::Measured)
    {
        for h in c.headline.iter().filter(|h| !h.failed_by_cause.is_empty()) {
            let total: u32 = h.failed_by_cause.values().sum();
            let mut parts: Vec<(&ClientCause, &u32)> = h.failed_by_cause.iter().collect();
            parts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let parts: Vec<String> = parts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            out.push(format!(
                "- {} {} (step {}): {} (all of the step's, not only retries) in {} of {} trials with a NetLog = {}",
                c.key,
                h.action,
                h.step + 1,
                plural(total as usize, "failed handshake"),
                trials_with_log(c),
                c.trials.len(),
                parts.join(" + ")
            ));
        }
    }
    out
}

/// `- cell: reason — what broke it` for every broken expectation.
pub(super) fn broken_lines(results: &RunResults) -> Vec<String> {
    results
        .cells
        .iter()
        .flat_map(|c| {
            c.expectations.iter().filter_map(move |e| {
                e.broken
                    .as_ref()
                    .map(|b| format!("- {}: expected {} ({}) — {b}", c.key, e.rule, e.reason))
            })
        })
        .collect()
}

pub(super) fn legend(results: &RunResults) -> String {
    let env = &results.environment;
    let mut s = format!(
        "Each cell: median retries (failed handshakes before the page) of the step that first shows \
         the page, then of each revisit — `min–max` in brackets when trials differ; `↺` the page \
         came over a connection opened in an earlier step (keep-alive), so that number is every \
         failed handshake of the step; `⚑k/n` only k of n trials showed the page; `⏱` a step hit \
         the settle cap; `✗` an expectation broke. {} of {} cells.\n\
         Connection tokens: `ok(n)` established, n requests served; `idle` handshake done, no \
         request; `alert(46)`, `reset`, `eof`, `timeout`, `error` rejected (a failed handshake); \
         `late-…` after a completed handshake: `late-alert(42)`, `late-reset` are \
         rejected-after-handshake (a failed handshake), `late-error` error-after-handshake (not \
         one); `[preconnect]` why the browser opened it, from its log.\n",
        results.cells.len(),
        results.cells_requested
    );
    s += &step_lines(results);
    s += &teardown_total(results);
    for (name, v) in &env.browsers {
        let versions = [v.browser.as_deref(), v.driver.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        let unavailable = v
            .unavailable
            .as_deref()
            .map(|u| format!(" — unavailable: {u}"))
            .unwrap_or_default();
        s += &format!("- {name}: {versions}{unavailable}\n");
    }
    for (name, v) in &env.backends {
        s += &format!("- {name}: {v}\n");
    }
    s
}

/// `Steps of report-close: 1 visit, 2 proceed, 3 revisit, 4 revisit; its cells show 2 proceed /
/// 3 revisit / 4 revisit.`, once per scenario: which number is which step.
fn step_lines(results: &RunResults) -> String {
    let mut seen: Vec<&str> = Vec::new();
    let mut s = String::new();
    for c in &results.cells {
        if seen.contains(&c.key.scenario.as_str()) || c.headline.is_empty() {
            continue;
        }
        let Some(t) = c.trials.iter().find(|t| !t.steps.is_empty()) else {
            continue;
        };
        seen.push(&c.key.scenario);
        let steps: Vec<String> = t
            .steps
            .iter()
            .enumerate()
            .map(|(i, st)| format!("{} {}", i + 1, st.action))
            .collect();
        let shown: Vec<String> = c
            .headline
            .iter()
            .map(|h| format!("{} {}", h.step + 1, h.action))
            .collect();
        s += &format!(
            "Steps of {}: {}; its cells show {}.\n",
            c.key.scenario,
            steps.join(", "),
            shown.join(" / ")
        );
    }
    s
}

/// The lower median (an observed value, as [`crate::Spread`]).
fn median(mut v: Vec<u32>) -> Option<u32> {
    v.sort_unstable();
    v.get(v.len().checked_sub(1)? / 2).copied()
}

/// What a person pays, step by step: `1 visit 2 · 2 proceed 4 · 3 revisit 3` (the median
/// failed handshakes of every step over the trials), and per page view `6 · 3` (the first view:
/// every step up to the one that first shows the page; then each revisit). `None` for a cell
/// without a trial that ran.
pub(super) fn every_step(cell: &CellResult) -> Option<(String, Option<String>)> {
    let first = cell.trials.iter().find(|t| t.error.is_none())?;
    let medians: Vec<Option<u32>> = (0..first.steps.len())
        .map(|i| {
            median(
                cell.trials
                    .iter()
                    .filter_map(|t| t.steps.get(i))
                    .map(|s| s.failed_handshakes)
                    .collect(),
            )
        })
        .collect();
    let text = |v: &Option<u32>| v.map_or("–".into(), |v| v.to_string());
    let steps: Vec<String> = first
        .steps
        .iter()
        .zip(&medians)
        .enumerate()
        .map(|(i, (st, m))| format!("{} {} {}", i + 1, st.action, text(m)))
        .collect();
    let views = cell.headline.first().map(|h| {
        let f = h.step;
        let mut views = vec![median(
            cell.trials
                .iter()
                .filter(|t| t.steps.len() > f)
                .map(|t| t.steps[..=f].iter().map(|s| s.failed_handshakes).sum())
                .collect(),
        )];
        views.extend(
            first
                .steps
                .iter()
                .enumerate()
                .skip(f + 1)
                .filter(|(_, st)| st.action == model::StepAction::Revisit)
                .map(|(i, _)| medians[i]),
        );
        views.iter().map(text).collect::<Vec<_>>().join(" · ")
    });
    Some((steps.join(" · "), views))
}
