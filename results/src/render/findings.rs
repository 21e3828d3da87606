//! Findings: a few sentences per browser, generated from the cells (never written by hand), so
//! that the prose of a report (and of the README) cannot drift from its numbers.

use std::collections::BTreeSet;

use model::StepAction;

use crate::{CellResult, CellStatus, RunResults, TrialResult};

/// One generated sentence and the cells it rests on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The browser build it is about (`chromium`, `chromium@candidate`).
    pub browser: String,
    /// The sentence, e.g. `click-through, close (…): 1–4 retries (median 3) …`.
    pub text: String,
    /// Indexes into [`RunResults::cells`] of the cells behind it.
    pub cells: Vec<usize>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.browser, self.text)
    }
}

/// The findings of a run: per browser build (in the order the run names them), one sentence
/// per way of reaching the page (trust mode, connection policy, and the scenario's browser
/// knobs, which change the numbers), and `no data` where no cell was measured.
pub fn findings(results: &RunResults) -> Vec<Finding> {
    let mut browsers: Vec<String> = results.environment.browsers.keys().cloned().collect();
    for c in &results.cells {
        let b = c.key.browser_column();
        if !browsers.contains(&b) {
            browsers.push(b);
        }
    }
    let mut out = Vec::new();
    for browser in browsers {
        let of_browser: Vec<usize> = (0..results.cells.len())
            .filter(|&i| results.cells[i].key.browser_column() == browser)
            .collect();
        if !of_browser
            .iter()
            .any(|&i| results.cells[i].status == CellStatus::Measured)
        {
            let why = results
                .environment
                .browsers
                .get(&browser)
                .and_then(|v| v.unavailable.clone())
                .map(|u| format!(" (unavailable: {u})"))
                .unwrap_or_else(|| {
                    if of_browser.is_empty() {
                        " (no cell of this run)".into()
                    } else {
                        " (no cell measured)".into()
                    }
                });
            out.push(Finding {
                browser,
                text: format!("no data{why}"),
                cells: of_browser,
            });
            continue;
        }
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for &i in &of_browser {
            let name = group_name(results, &results.cells[i]);
            match groups.iter_mut().find(|(n, _)| *n == name) {
                Some((_, cells)) => cells.push(i),
                None => groups.push((name, vec![i])),
            }
        }
        for (name, cells) in groups {
            out.push(Finding {
                browser: browser.clone(),
                text: format!("{name}: {}", group_text(results, &cells)),
                cells,
            });
        }
    }
    out
}

/// What the numbers of a cell depend on besides backend and TLS version: `click-through,
/// close`, and the scenario's name when it changes a browser setting.
fn group_name(results: &RunResults, c: &CellResult) -> String {
    let recorded = results
        .environment
        .scenario_knobs
        .get(&c.key.scenario)
        .and_then(|per_browser| per_browser.get(&c.key.browser))
        .is_some_and(|k| !k.is_empty());
    let knobs = recorded
        || !(c.chromium_features.is_empty()
            && c.chromium_disabled_features.is_empty()
            && c.firefox_prefs.is_empty());
    if knobs {
        format!("{}, {} ({})", c.trust, c.connection, c.key.scenario)
    } else {
        format!("{}, {}", c.trust, c.connection)
    }
}

/// `1–4 (median 3) retries`, `1 retry`.
fn counted(values: &[u32], one: &str, many: &str) -> String {
    let r = range(values);
    if r == "1" {
        format!("1 {one}")
    } else {
        format!("{r} {many}")
    }
}

/// `1–4 (median 3)`, or `3` when every value is 3.
fn range(values: &[u32]) -> String {
    let mut v = values.to_vec();
    v.sort_unstable();
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (Some(lo), Some(hi)) => format!("{lo}–{hi} (median {})", v[(v.len() - 1) / 2]),
        _ => "no data".into(),
    }
}

/// Per trial of a measured cell: the index of the step that first shows the page in the cell
/// (its headline's first step).
fn first_page_step(c: &CellResult) -> Option<usize> {
    c.headline.first().map(|h| h.step)
}

fn group_text(results: &RunResults, cells: &[usize]) -> String {
    let all: Vec<&CellResult> = cells.iter().map(|&i| &results.cells[i]).collect();
    let measured: Vec<&CellResult> = all
        .iter()
        .copied()
        .filter(|c| c.status == CellStatus::Measured)
        .collect();
    let unsupported = all
        .iter()
        .find_map(|c| match &c.status {
            CellStatus::Unsupported { reason } => Some(reason.clone()),
            _ => None,
        })
        .map(|r| format!("unsupported ({r})"));
    let errors = all
        .iter()
        .filter(|c| matches!(c.status, CellStatus::Error { .. }))
        .count();
    if measured.is_empty() {
        return match (unsupported, errors) {
            (Some(u), 0) => format!("no data — {u}"),
            (_, e) => format!("no data — {e} cell(s) error"),
        };
    }
    let backends: BTreeSet<&str> = measured.iter().map(|c| c.key.backend.as_str()).collect();
    let tls: BTreeSet<&str> = measured.iter().map(|c| c.key.tls.as_str()).collect();
    let trials: Vec<&TrialResult> = measured.iter().flat_map(|c| &c.trials).collect();
    let mut parts = Vec::new();
    let (mut first, mut revisit, mut before, mut first_view) = (vec![], vec![], vec![], vec![]);
    let mut first_action: BTreeSet<&str> = BTreeSet::new();
    let mut before_actions: BTreeSet<&str> = BTreeSet::new();
    let mut without_page = 0;
    let mut revisit_reused = false;
    for c in &measured {
        let Some(f) = first_page_step(c) else {
            without_page += c.trials.len();
            continue;
        };
        for t in &c.trials {
            let Some(step) = t.steps.get(f) else { continue };
            first_action.insert(step.action.as_str());
            if step.page_shown {
                first.extend(step.retries);
            } else {
                without_page += 1;
            }
            let earlier = &t.steps[..f];
            before_actions.extend(earlier.iter().map(|s| s.action.as_str()));
            if !earlier.is_empty() {
                before.push(earlier.iter().map(|s| s.failed_handshakes).sum());
            }
            first_view.push(t.steps[..=f].iter().map(|s| s.failed_handshakes).sum());
            for s in t
                .steps
                .iter()
                .skip(f + 1)
                .filter(|s| s.action == StepAction::Revisit && s.page_shown)
            {
                revisit.extend(s.retries);
                revisit_reused |= s.page_on_reused_connection;
            }
        }
    }
    let action = first_action.into_iter().collect::<Vec<_>>().join("/");
    if first.is_empty() {
        parts.push("no trial showed the page".to_owned());
    } else {
        parts.push(format!(
            "{} before the page on {action}",
            counted(&first, "retry", "retries")
        ));
    }
    if !before.is_empty() {
        let before_actions = before_actions.into_iter().collect::<Vec<_>>().join("/");
        parts.push(format!(
            "{} on the {before_actions} that shows the warning",
            counted(&before, "failed handshake", "failed handshakes")
        ));
        parts.push(format!(
            "{} per first page view in all",
            counted(&first_view, "failed handshake", "failed handshakes")
        ));
    }
    if !revisit.is_empty() {
        let reused = if revisit_reused {
            " (the page came over an earlier connection: every failed handshake of the step)"
        } else {
            ""
        };
        parts.push(format!(
            "{} per revisit{reused}",
            counted(&revisit, "retry", "retries")
        ));
    }
    if without_page > 0 {
        parts.push(format!(
            "{without_page} of {} trials without the page",
            trials.len()
        ));
    }
    let mut text = format!(
        "{} — {} ({} × TLS {}), {}",
        parts.join("; "),
        plural(measured.len(), "cell"),
        backends.into_iter().collect::<Vec<_>>().join(", "),
        tls.into_iter().collect::<Vec<_>>().join(", "),
        plural(trials.len(), "trial")
    );
    if errors > 0 {
        text += &format!("; {errors} cell(s) error, not counted");
    }
    text
}

/// `1 cell`, `3 cells`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `- chromium — click-through, close: …`, one line per finding, as `matrix.md`, the terminal
/// and the README print them.
pub(super) fn finding_lines(results: &RunResults) -> Vec<String> {
    findings(results)
        .iter()
        .map(|f| format!("- {} — {}", f.browser, f.text))
        .collect()
}
