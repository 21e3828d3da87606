//! Comparing two runs (`harness diff`, `--baseline`), merging slices (`harness merge`) and the
//! history of many runs (`harness history`).
//!
//! **The change rule.** Trials of one cell spread (Chromium's preconnect races make a cell read
//! `3 (2–4)`), so a nightly must not flag that spread as a change. A measured cell is *changed*
//! when, for some headline step, the old and new min–max ranges of retries do not overlap, or
//! the median moved by more than 1. A cell whose status changed (measured ↔ error ↔
//! unsupported), or whose headline steps differ (a page no longer shown), is changed too.
//! Cells only in the new run are *added*, only in the old run *removed*. Browser, driver and
//! library version changes are listed; they are the likely cause, not a change by themselves.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::{CellKey, CellResult, CellStatus, Environment, RunResults, Spread};

/// One changed cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellChange {
    /// Which cell.
    pub key: CellKey,
    /// Old → new, in words.
    pub what: String,
}

/// The differences between two runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// Cells whose result changed under the rule above.
    pub changed: Vec<CellChange>,
    /// Cells only in the new run.
    pub added: Vec<CellKey>,
    /// Cells only in the old run.
    pub removed: Vec<CellKey>,
    /// `name: old → new` for browsers, drivers and backend libraries.
    pub versions: Vec<String>,
}

impl Diff {
    /// Whether any cell changed, appeared or disappeared.
    pub fn has_changes(&self) -> bool {
        !(self.changed.is_empty() && self.added.is_empty() && self.removed.is_empty())
    }

    /// A report for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.has_changes() {
            s += "no cell changed (within the spread seen across repeats)\n";
        }
        for c in &self.changed {
            let _ = writeln!(s, "changed: {}: {}", c.key, c.what);
        }
        for k in &self.added {
            let _ = writeln!(s, "added:   {k}");
        }
        for k in &self.removed {
            let _ = writeln!(s, "removed: {k}");
        }
        for v in &self.versions {
            let _ = writeln!(s, "version: {v}");
        }
        s
    }
}

fn status_word(s: &CellStatus) -> &'static str {
    match s {
        CellStatus::Measured => "measured",
        CellStatus::Unsupported { .. } => "unsupported",
        CellStatus::Error { .. } => "error",
    }
}

fn spread_text(s: Option<Spread>) -> String {
    s.map(|s| s.to_string()).unwrap_or_else(|| "no page".into())
}

/// Why `new` differs from `old` under the change rule, or `None`.
fn cell_change(old: &CellResult, new: &CellResult) -> Option<String> {
    if status_word(&old.status) != status_word(&new.status) {
        return Some(format!(
            "{} → {}",
            status_word(&old.status),
            status_word(&new.status)
        ));
    }
    if old.status != CellStatus::Measured {
        return None;
    }
    let steps = |c: &CellResult| {
        c.headline
            .iter()
            .map(|h| (h.step, h.action.clone()))
            .collect::<Vec<_>>()
    };
    if steps(old) != steps(new) {
        let names = |c: &CellResult| {
            c.headline
                .iter()
                .map(|h| h.action.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Some(format!(
            "headline steps [{}] → [{}]",
            names(old),
            names(new)
        ));
    }
    let mut reasons = Vec::new();
    for (o, n) in old.headline.iter().zip(&new.headline) {
        let moved = match (o.retries, n.retries) {
            (Some(a), Some(b)) => a.max < b.min || b.max < a.min || a.median.abs_diff(b.median) > 1,
            (None, None) => false,
            _ => true,
        };
        if moved {
            reasons.push(format!(
                "{} (step {}) retries {} → {}",
                o.action,
                o.step + 1,
                spread_text(o.retries),
                spread_text(n.retries)
            ));
        }
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

fn version_changes(old: &Environment, new: &Environment) -> Vec<String> {
    let mut out = Vec::new();
    let names: std::collections::BTreeSet<&String> =
        old.browsers.keys().chain(new.browsers.keys()).collect();
    for name in names {
        let (o, n) = (old.browsers.get(name), new.browsers.get(name));
        for (what, a, b) in [
            (
                "browser",
                o.and_then(|v| v.browser.clone()),
                n.and_then(|v| v.browser.clone()),
            ),
            (
                "driver",
                o.and_then(|v| v.driver.clone()),
                n.and_then(|v| v.driver.clone()),
            ),
        ] {
            if a != b {
                out.push(format!(
                    "{name} {what}: {} → {}",
                    a.unwrap_or("-".into()),
                    b.unwrap_or("-".into())
                ));
            }
        }
    }
    let names: std::collections::BTreeSet<&String> =
        old.backends.keys().chain(new.backends.keys()).collect();
    for name in names {
        let (a, b) = (old.backends.get(name), new.backends.get(name));
        if a != b {
            out.push(format!(
                "{name}: {} → {}",
                a.map(String::as_str).unwrap_or("-"),
                b.map(String::as_str).unwrap_or("-")
            ));
        }
    }
    out
}

/// Compares `new` against `old`.
pub fn diff(old: &RunResults, new: &RunResults) -> Diff {
    let old_cells: BTreeMap<&CellKey, &CellResult> =
        old.cells.iter().map(|c| (&c.key, c)).collect();
    let new_cells: BTreeMap<&CellKey, &CellResult> =
        new.cells.iter().map(|c| (&c.key, c)).collect();
    let mut d = Diff {
        versions: version_changes(&old.environment, &new.environment),
        ..Diff::default()
    };
    for (key, n) in &new_cells {
        match old_cells.get(key) {
            Some(o) => {
                if let Some(what) = cell_change(o, n) {
                    d.changed.push(CellChange {
                        key: (*key).clone(),
                        what,
                    });
                }
            }
            None => d.added.push((*key).clone()),
        }
    }
    d.removed = old_cells
        .keys()
        .filter(|k| !new_cells.contains_key(*k))
        .map(|k| (*k).clone())
        .collect();
    d
}

/// Combines slices of one matrix run on different machines. Cells are taken from every slice
/// (a key in two slices keeps the first and is reported); differing environments are reported
/// in `conflicts`, never hidden.
pub fn merge(slices: &[(String, RunResults)]) -> (RunResults, Vec<String>) {
    let mut conflicts = Vec::new();
    let Some((_, first)) = slices.first() else {
        return (
            RunResults {
                schema_version: crate::SCHEMA_VERSION,
                environment: Environment::default(),
                cells: Vec::new(),
                cells_requested: 0,
            },
            conflicts,
        );
    };
    let mut merged = RunResults {
        schema_version: crate::SCHEMA_VERSION,
        environment: first.environment.clone(),
        cells: Vec::new(),
        cells_requested: 0,
    };
    merged.environment.ended_at = None;
    let mut seen: BTreeMap<CellKey, String> = BTreeMap::new();
    for (name, slice) in slices {
        merged.cells_requested += slice.cells_requested;
        let env = &slice.environment;
        for v in version_changes(&merged.environment, env) {
            // A browser or library only one slice used is not a conflict; a different version is.
            if !v.contains("→ -") && !v.contains(": - →") {
                conflicts.push(format!("{name}: {v}"));
            }
        }
        for (k, v) in &env.browsers {
            merged
                .environment
                .browsers
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        for (k, v) in &env.backends {
            merged
                .environment
                .backends
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        if env.started_at < merged.environment.started_at {
            merged.environment.started_at = env.started_at.clone();
        }
        if env.ended_at > merged.environment.ended_at {
            merged.environment.ended_at = env.ended_at.clone();
        }
        for cell in &slice.cells {
            if let Some(other) = seen.get(&cell.key) {
                conflicts.push(format!(
                    "{name}: cell {} is also in {other}; kept {other}'s",
                    cell.key
                ));
                merged.cells_requested -= 1;
                continue;
            }
            seen.insert(cell.key.clone(), name.clone());
            merged.cells.push(cell.clone());
        }
    }
    merged.cells.sort_by(|a, b| a.key.cmp(&b.key));
    (merged, conflicts)
}

/// One run in a history: its label and results.
pub struct HistoryEntry {
    /// e.g. the run folder name.
    pub label: String,
    /// The run.
    pub results: RunResults,
}

/// The trend of every cell across runs: one row per cell, one column per run (oldest first),
/// each the cell's headline (`proceed / revisit …` medians). Column headers name the browser
/// versions so "since Chromium N this cell went from 3 to 1" is one glance.
pub fn history_table(entries: &[HistoryEntry]) -> (Vec<String>, Vec<(CellKey, Vec<String>)>) {
    let headers: Vec<String> = entries
        .iter()
        .map(|e| {
            let versions: Vec<String> = e
                .results
                .environment
                .browsers
                .values()
                .filter_map(|v| v.browser.clone())
                .collect();
            format!("{} ({})", e.label, versions.join(", "))
        })
        .collect();
    let mut keys: Vec<CellKey> = entries
        .iter()
        .flat_map(|e| e.results.cells.iter().map(|c| c.key.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    let rows = keys
        .into_iter()
        .map(|k| {
            let values = entries
                .iter()
                .map(|e| {
                    e.results
                        .cells
                        .iter()
                        .find(|c| c.key == k)
                        .map(crate::render::headline_text)
                        .unwrap_or_default()
                })
                .collect();
            (k, values)
        })
        .collect();
    (headers, rows)
}
