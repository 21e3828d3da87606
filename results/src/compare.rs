//! Comparing two runs (`harness diff`, `--baseline`), merging slices (`harness merge`) and the
//! history of many runs (`harness history`).
//!
//! **The change rule** (README, "How a change is decided"). Trials of one cell spread
//! (Chromium's preconnect races make a cell read `3 (2–4)`), and with three trials a side two
//! summaries of one build often look different by chance. So the rule works on the trials:
//!
//! * Per measured cell, every trial is a vector: for each headline step its retries (its failed
//!   handshakes when the step showed no page) and its failed handshakes, and — when some trial
//!   on either side did not show the page — whether it showed the page (1 or 0), so that fewer
//!   trials reaching the page is a change like more retries. The two sides are
//!   compared with an exact two-sided permutation test ([`crate::stats`]) whose statistic is the
//!   largest difference of component means — one test, one p-value per cell.
//! * **Effect floor**: some component's median must move by at least [`Rule::min_effect`] (one
//!   handshake).
//! * **Screening** (first pass): floor and p ≤ [`Rule::screen_alpha`], uncorrected. A screened
//!   cell is only *flagged*: it is a candidate to measure again (`--confirm`), never a failure.
//! * **Confirmation**: a cell is *changed* when the floor holds and Holm's procedure over every
//!   cell compared (family size `m`, the cells measured on both sides) rejects at
//!   [`Rule::alpha`], with the p-value of all trials (first pass and confirmation). Cells that
//!   were not measured again enter Holm with p = 1. So the chance that a diff of two runs of one
//!   build reports any confirmed change is at most `alpha`, given exchangeable trials: Holm on
//!   the p-values every cell would have with its confirmation trials bounds it under any
//!   dependence, and counting the cells not measured again as p = 1 can only remove rejections.
//!   A flagged cell whose confirmation does not confirm is *not confirmed (noise)*.
//! * A cell whose status changed (measured ↔ error ↔ unsupported), or whose headline steps
//!   differ, or a step that shows the page on one side and on no trial of the other, is changed
//!   without a test. Cells only in the new run are *added*, only in the old run *removed*.
//!   Browser, driver and library version changes are listed; they are the likely cause, not a
//!   change by themselves.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::render::esc;
use crate::stats::{Permutation, holm, holm_first_threshold, median, permutation_test};
use crate::{CellKey, CellResult, CellStatus, Environment, RunResults, Spread};

/// The parameters of the change rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    /// Family-wise error bound of a whole diff: P(any confirmed change between two runs of one
    /// build) ≤ `alpha`.
    pub alpha: f64,
    /// Uncorrected p-value below which a cell (that also passes the floor) is flagged for
    /// confirmation. A cost knob (how many cells are measured again), not part of the bound.
    pub screen_alpha: f64,
    /// The smallest move of a median, in handshakes, that counts.
    pub min_effect: f64,
}

impl Default for Rule {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            screen_alpha: 0.4,
            min_effect: 1.0,
        }
    }
}

/// A status change, or a confirmed change of counts, of one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellChange {
    /// Which cell.
    pub key: CellKey,
    /// Old → new, in words.
    pub what: String,
}

/// One compared quantity of a cell: its per-trial values on both sides.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    /// e.g. `proceed (step 2) retries`.
    pub label: String,
    /// Old side, one value per trial, first-pass trials first.
    pub old: Vec<u32>,
    /// How many of `old` are first-pass trials (the rest are confirmation trials).
    pub old_first_pass: usize,
    /// New side, as `old`.
    pub new: Vec<u32>,
    /// How many of `new` are first-pass trials.
    pub new_first_pass: usize,
}

impl Component {
    /// |median(new) − median(old)|.
    pub fn effect(&self) -> f64 {
        match (median(&self.old), median(&self.new)) {
            (Some(a), Some(b)) => (b - a).abs(),
            _ => 0.0,
        }
    }
}

/// What the rule says about a cell whose counts were tested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Floor met and Holm rejects: a real change (exit 3).
    Confirmed,
    /// Screened on the first pass, not (yet) measured again: run the confirmation.
    Flagged,
    /// Screened, measured again, and not confirmed: noise.
    NotConfirmed,
}

/// The test of one cell's counts.
#[derive(Clone, Debug, PartialEq)]
pub struct CellTest {
    /// Which cell.
    pub key: CellKey,
    /// Per headline step and quantity, the trial values.
    pub components: Vec<Component>,
    /// The permutation test over all trials.
    pub test: Permutation,
    /// The largest move of a median, handshakes.
    pub effect: f64,
    /// The threshold Holm applied to this cell's p-value (α / (m − rank)); for a cell not yet
    /// measured again, the first threshold α / m it would have to meet.
    pub holm_threshold: f64,
    /// The verdict.
    pub verdict: Verdict,
}

/// The differences between two runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// Confirmed changes and status changes: these fail a nightly (exit 3).
    pub changed: Vec<CellChange>,
    /// Every cell the rule looked at more closely: confirmed, flagged, or not confirmed.
    pub tested: Vec<CellTest>,
    /// Cells compared by the test (measured on both sides with the same headline steps): the
    /// family size of Holm's procedure.
    pub compared: usize,
    /// The rule used.
    pub rule: Option<Rule>,
    /// Cells only in the new run.
    pub added: Vec<CellKey>,
    /// Cells only in the old run.
    pub removed: Vec<CellKey>,
    /// `name: old → new` for browsers, drivers and backend libraries.
    pub versions: Vec<String>,
}

impl Diff {
    /// Whether any cell changed (confirmed or by status), appeared or disappeared.
    pub fn has_changes(&self) -> bool {
        !(self.changed.is_empty() && self.added.is_empty() && self.removed.is_empty())
    }

    /// Cells flagged on the first pass that still need confirmation.
    pub fn flagged(&self) -> Vec<&CellKey> {
        self.tested
            .iter()
            .filter(|t| t.verdict == Verdict::Flagged)
            .map(|t| &t.key)
            .collect()
    }

    /// A report for people: every changed cell, then every flagged or unconfirmed cell with its
    /// trial values and the test's verdict.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.has_changes() {
            s += "no cell changed\n";
        }
        for c in &self.changed {
            let _ = writeln!(s, "changed: {}: {}", c.key, c.what);
            if let Some(t) = self.tested.iter().find(|t| t.key == c.key) {
                render_test(&mut s, t);
            }
        }
        for t in &self.tested {
            let word = match t.verdict {
                Verdict::Confirmed => continue,
                Verdict::Flagged => "flagged, not confirmed (measure again: --confirm)",
                Verdict::NotConfirmed => "not confirmed (noise)",
            };
            let _ = writeln!(s, "{word}: {}: {}", t.key, moves(t));
            render_test(&mut s, t);
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
        if let Some(rule) = self.rule {
            let _ = writeln!(
                s,
                "rule: {} cells compared; changed = median moved ≥ {} handshake and Holm over {} cells at α = {} (P(any false change in this diff) ≤ {}, given exchangeable trials); flagged = floor and p ≤ {} uncorrected",
                self.compared,
                rule.min_effect,
                self.compared,
                rule.alpha,
                rule.alpha,
                rule.screen_alpha
            );
        }
        s
    }
}

impl Diff {
    /// The same report as [`Diff::render`] as a self-contained page (`comparison.html` next to
    /// the new run's `matrix.html`): one table per tested cell with every trial value of both
    /// sides (confirmation trials marked) and the test's verdict.
    pub fn render_html(&self, old_label: &str, new_label: &str) -> String {
        let mut h = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>handshake-matrix comparison</title>\
             <style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
             td,th{border:1px solid #bbb;padding:3px 6px;text-align:left}.c{background:#ffd2a0}\
             .n{background:#e8f0e0}.f{background:#fff6c0}i{color:#777}</style></head><body>",
        );
        let _ = write!(
            h,
            "<h1>Comparison</h1><p>old: <code>{}</code><br>new: <code>{}</code></p>",
            esc(old_label),
            esc(new_label)
        );
        h += &self.grid_html();
        let _ = write!(h, "<pre>{}</pre>", esc(&self.render()));
        for t in &self.tested {
            let (class, word) = match t.verdict {
                Verdict::Confirmed => ("c", "changed (confirmed)"),
                Verdict::Flagged => ("f", "flagged, not confirmed"),
                Verdict::NotConfirmed => ("n", "not confirmed (noise)"),
            };
            let _ = write!(
                h,
                "<h2 class=\"{class}\">{word}: {}</h2><p>p = {:.3e} ({}), Holm threshold {:.3e}, largest median move {}</p>\
                 <table><tr><th>quantity</th><th>old trials</th><th>old median</th><th>new trials</th><th>new median</th></tr>",
                esc(&t.key.to_string()),
                t.test.p,
                t.test.method,
                t.holm_threshold,
                t.effect
            );
            for c in &t.components {
                let cells = |v: &[u32], first: usize| {
                    v.iter()
                        .enumerate()
                        .map(|(i, x)| {
                            if i >= first {
                                format!("<i>{x}</i>")
                            } else {
                                x.to_string()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&c.label),
                    cells(&c.old, c.old_first_pass),
                    median_text(&c.old),
                    cells(&c.new, c.new_first_pass),
                    median_text(&c.new)
                );
            }
            h += "</table>";
        }
        h += "<p><i>Italic</i>: confirmation trials. The rule and its bound: README, \"How a change is decided\".</p></body></html>\n";
        h
    }
}

impl Diff {
    /// The cells the comparison says something about, laid out as the matrix (rows scenario ×
    /// backend, columns browser × TLS), each with its before → after and highlighted by what
    /// the rule decided; the cells that did not move are counted below it.
    fn grid_html(&self) -> String {
        let mut cells: Vec<(&CellKey, &'static str, String)> = Vec::new();
        for c in &self.changed {
            if !self.tested.iter().any(|t| t.key == c.key) {
                cells.push((&c.key, "c", format!("changed: {}", c.what)));
            }
        }
        for t in &self.tested {
            let (class, word) = match t.verdict {
                Verdict::Confirmed => ("c", "changed"),
                Verdict::Flagged => ("f", "flagged"),
                Verdict::NotConfirmed => ("n", "noise"),
            };
            let moved: Vec<String> = t
                .components
                .iter()
                .filter(|c| c.label.ends_with(" retries"))
                .map(|c| {
                    format!(
                        "{}: {} → {}",
                        c.label.trim_end_matches(" retries"),
                        median_text(&c.old),
                        median_text(&c.new)
                    )
                })
                .collect();
            cells.push((&t.key, class, format!("{word}: {}", moved.join("; "))));
        }
        for k in &self.added {
            cells.push((k, "c", "new cell".into()));
        }
        for k in &self.removed {
            cells.push((k, "c", "cell removed".into()));
        }
        if cells.is_empty() {
            return format!(
                "<p>No cell changed, was flagged or came and went ({} compared).</p>",
                self.compared
            );
        }
        let mut rows: Vec<(&str, &str)> = Vec::new();
        let mut columns: Vec<(String, &str)> = Vec::new();
        for (k, _, _) in &cells {
            let row = (k.scenario.as_str(), k.backend.as_str());
            let col = (k.browser_column(), k.tls.as_str());
            if !rows.contains(&row) {
                rows.push(row);
            }
            if !columns.contains(&col) {
                columns.push(col);
            }
        }
        rows.sort();
        columns.sort();
        let mut h = String::from(
            "<h2>Cells before → after (median retries per headline step)</h2>\
             <table class=\"grid\"><tr><th>scenario</th><th>backend</th>",
        );
        for (b, t) in &columns {
            let _ = write!(h, "<th>{} TLS {}</th>", esc(b), esc(t));
        }
        h += "</tr>";
        for (scenario, backend) in &rows {
            let _ = write!(h, "<tr><td>{}</td><td>{}</td>", esc(scenario), esc(backend));
            for (b, t) in &columns {
                match cells.iter().find(|(k, _, _)| {
                    k.scenario == *scenario
                        && k.backend == *backend
                        && k.browser_column() == *b
                        && k.tls == *t
                }) {
                    Some((_, class, text)) => {
                        let _ = write!(h, "<td class=\"{class}\">{}</td>", esc(text));
                    }
                    None => h += "<td></td>",
                }
            }
            h += "</tr>";
        }
        let quiet = self.compared.saturating_sub(self.tested.len());
        let _ = write!(
            h,
            "</table><p>Orange: changed (confirmed, or its status or headline steps changed); \
             yellow: flagged, not yet measured again; green: flagged, measured again, noise. \
             {quiet} more compared cells did not move enough to be looked at; empty: not among \
             them.</p>"
        );
        h
    }
}

fn values_text(v: &[u32], first_pass: usize) -> String {
    let join = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
    if first_pass >= v.len() {
        join(v)
    } else {
        format!("{} + {}", join(&v[..first_pass]), join(&v[first_pass..]))
    }
}

fn median_text(v: &[u32]) -> String {
    median(v).map(|m| format!("{m}")).unwrap_or("-".into())
}

/// `proceed (step 2) retries 3 → 1; …` for the components whose median moved.
fn moves(t: &CellTest) -> String {
    let parts: Vec<String> = t
        .components
        .iter()
        .filter(|c| c.effect() > 0.0)
        .map(|c| {
            format!(
                "{} median {} → {}",
                c.label,
                median_text(&c.old),
                median_text(&c.new)
            )
        })
        .collect();
    if parts.is_empty() {
        "no median moved".into()
    } else {
        parts.join("; ")
    }
}

fn render_test(s: &mut String, t: &CellTest) {
    for c in &t.components {
        let _ = writeln!(
            s,
            "    {:<36} old {:<24} new {}",
            c.label,
            values_text(&c.old, c.old_first_pass),
            values_text(&c.new, c.new_first_pass)
        );
    }
    let verdict = match t.verdict {
        Verdict::Confirmed => "confirmed",
        Verdict::Flagged => "needs confirmation",
        Verdict::NotConfirmed => "not confirmed",
    };
    let _ = writeln!(
        s,
        "    test: p = {:.3e} ({}), Holm threshold {:.3e}, largest median move {} → {verdict}",
        t.test.p, t.test.method, t.holm_threshold, t.effect
    );
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

/// Why `new` differs from `old` in status (not counts), or `None`.
fn status_change(old: &CellResult, new: &CellResult) -> Option<String> {
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
            .map(|h| (h.step, h.action))
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
        if o.retries.is_some() != n.retries.is_some() {
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

/// Whether some trial of `c` did not show the page in a headline step.
fn some_trial_without_page(c: &CellResult) -> bool {
    c.trials.iter().filter(|t| t.error.is_none()).any(|t| {
        c.headline
            .iter()
            .any(|h| t.steps.get(h.step).is_none_or(|s| !s.page_shown))
    })
}

/// The per-trial values of a measured cell: per headline step, retries (failed handshakes when
/// the step showed no page in that trial) and failed handshakes, and — with `page` — whether
/// the step showed the page (1) or not (0), so that "3 of 3 trials showed the page" → "1 of 3"
/// is tested like any count. Trials that did not run are left out. Returns the components
/// (labels, values) and the number of first-pass trials.
fn trial_vectors(c: &CellResult, page: bool) -> (Vec<String>, Vec<Vec<u32>>, usize) {
    let labels = c
        .headline
        .iter()
        .flat_map(|h| {
            let mut l = vec![
                format!("{} (step {}) retries", h.action, h.step + 1),
                format!("{} (step {}) failed", h.action, h.step + 1),
            ];
            if page {
                l.push(format!("{} (step {}) page shown", h.action, h.step + 1));
            }
            l
        })
        .collect();
    let mut trials: Vec<&crate::TrialResult> =
        c.trials.iter().filter(|t| t.error.is_none()).collect();
    // First-pass trials first, whatever order the file keeps them in.
    trials.sort_by_key(|t| (t.confirmation, t.index));
    let first_pass = trials.iter().filter(|t| !t.confirmation).count();
    let vectors = trials
        .iter()
        .filter_map(|t| {
            c.headline
                .iter()
                .map(|h| {
                    let s = t.steps.get(h.step)?;
                    let retries = s
                        .retries
                        .filter(|_| s.page_shown)
                        .unwrap_or(s.failed_handshakes);
                    let mut v = vec![retries, s.failed_handshakes];
                    if page {
                        v.push(u32::from(s.page_shown));
                    }
                    Some(v)
                })
                .collect::<Option<Vec<_>>>()
                .map(|v| v.concat())
        })
        .collect();
    (labels, vectors, first_pass)
}

fn count_test(key: &CellKey, old: &CellResult, new: &CellResult) -> Option<CellTest> {
    let page = some_trial_without_page(old) || some_trial_without_page(new);
    let (labels, a, a_first) = trial_vectors(old, page);
    let (_, b, b_first) = trial_vectors(new, page);
    if a.is_empty() || b.is_empty() || labels.is_empty() {
        return None;
    }
    let components: Vec<Component> = labels
        .iter()
        .enumerate()
        .map(|(d, label)| Component {
            label: label.clone(),
            old: a.iter().map(|t| t[d]).collect(),
            old_first_pass: a_first.min(a.len()),
            new: b.iter().map(|t| t[d]).collect(),
            new_first_pass: b_first.min(b.len()),
        })
        .collect();
    let effect = components.iter().map(Component::effect).fold(0.0, f64::max);
    Some(CellTest {
        key: key.clone(),
        components,
        test: permutation_test(&a, &b),
        effect,
        holm_threshold: 0.0,
        verdict: Verdict::Flagged,
    })
}

/// Compares `new` against `old` under the default [`Rule`].
pub fn diff(old: &RunResults, new: &RunResults) -> Diff {
    diff_with(old, new, Rule::default())
}

/// Compares `new` against `old` under `rule`.
pub fn diff_with(old: &RunResults, new: &RunResults, rule: Rule) -> Diff {
    let old_cells: BTreeMap<&CellKey, &CellResult> =
        old.cells.iter().map(|c| (&c.key, c)).collect();
    let new_cells: BTreeMap<&CellKey, &CellResult> =
        new.cells.iter().map(|c| (&c.key, c)).collect();
    let mut d = Diff {
        versions: version_changes(&old.environment, &new.environment),
        rule: Some(rule),
        ..Diff::default()
    };
    let mut tests = Vec::new();
    for (key, n) in &new_cells {
        match old_cells.get(key) {
            Some(o) => {
                if let Some(what) = status_change(o, n) {
                    d.changed.push(CellChange {
                        key: (*key).clone(),
                        what,
                    });
                } else if n.status == CellStatus::Measured
                    && let Some(t) = count_test(key, o, n)
                {
                    tests.push(t);
                }
            }
            None => d.added.push((*key).clone()),
        }
    }
    d.compared = tests.len();
    // A cell enters Holm with its p-value only once it was measured again (it has confirmation
    // trials on a side); every other cell counts as p = 1. See the module documentation.
    let confirmed_data = |t: &CellTest| {
        t.components
            .iter()
            .any(|c| c.old.len() > c.old_first_pass || c.new.len() > c.new_first_pass)
    };
    let floor = |t: &CellTest| t.effect >= rule.min_effect - 1e-9;
    let candidates: Vec<usize> = (0..tests.len())
        .filter(|&i| confirmed_data(&tests[i]) && floor(&tests[i]))
        .collect();
    let p: Vec<f64> = candidates.iter().map(|&i| tests[i].test.p).collect();
    let rejected = holm(&p, d.compared, rule.alpha);
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    for (rank, &j) in order.iter().enumerate() {
        let t = &mut tests[candidates[j]];
        t.holm_threshold = rule.alpha / (d.compared - rank) as f64;
        t.verdict = if rejected[j] {
            Verdict::Confirmed
        } else {
            Verdict::NotConfirmed
        };
    }
    for t in tests {
        let measured_again = confirmed_data(&t);
        let screened = floor(&t) && t.test.p <= rule.screen_alpha;
        match (measured_again, t.verdict) {
            (true, Verdict::Confirmed) => {
                d.changed.push(CellChange {
                    key: t.key.clone(),
                    what: format!("{} (confirmed, p = {:.3e})", moves(&t), t.test.p),
                });
                d.tested.push(t);
            }
            (true, _) => {
                let mut t = t;
                t.verdict = Verdict::NotConfirmed;
                if t.holm_threshold == 0.0 {
                    t.holm_threshold = holm_first_threshold(d.compared, rule.alpha);
                }
                d.tested.push(t);
            }
            (false, _) if screened => {
                let mut t = t;
                t.verdict = Verdict::Flagged;
                t.holm_threshold = holm_first_threshold(d.compared, rule.alpha);
                d.tested.push(t);
            }
            (false, _) => {}
        }
    }
    d.changed.sort_by(|a, b| a.key.cmp(&b.key));
    d.removed = old_cells
        .keys()
        .filter(|k| !new_cells.contains_key(*k))
        .map(|k| (*k).clone())
        .collect();
    d
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

/// One browser, driver or library that two slices measured with different versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionConflict {
    /// e.g. `chromium browser`, `chromium driver`, `mbedtls`.
    pub what: String,
    /// The slice whose version the merged run would have claimed, and that version.
    pub first: (String, String),
    /// A slice that measured with another version, and that version.
    pub other: (String, String),
}

impl std::fmt::Display for VersionConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} in {}, but {} in {}",
            self.what, self.first.1, self.first.0, self.other.1, self.other.0
        )
    }
}

/// Why slices cannot be merged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// The slices measured with different browser, driver or library versions: a merged run
    /// has one version of each, so it would misstate what some of its cells measured.
    #[error(
        "the slices were measured with different versions, so they are not one run:\n  {}\n\
         measure every slice with the same browsers and libraries, or merge only the slices that agree",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
    )]
    VersionConflict(Vec<VersionConflict>),
}

/// The versions a slice measured with: for each browser its cells used, `<name> browser` and
/// `<name> driver`; for each backend its cells used, the library version. A version the
/// environment records for a browser or library no cell of the slice used measured nothing,
/// so it cannot conflict (every slice records every installed browser and library).
fn versions_used(run: &RunResults) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for cell in &run.cells {
        let browser = cell.key.browser_column();
        if let Some(v) = run.environment.browsers.get(&browser) {
            for (what, version) in [("browser", &v.browser), ("driver", &v.driver)] {
                if let Some(version) = version {
                    out.insert(format!("{browser} {what}"), version.clone());
                }
            }
        }
        if let Some(version) = run.environment.backends.get(&cell.key.backend) {
            out.insert(cell.key.backend.clone(), version.clone());
        }
    }
    out
}

/// Combines slices of one matrix run on different machines. Cells are taken from every slice
/// (a key in two slices keeps the first and is reported in the returned notes). Slices whose
/// cells measured with different versions of a browser, driver or library are not one run:
/// that is an error naming both versions and their slices, never a note.
pub fn merge(slices: &[(String, RunResults)]) -> Result<(RunResults, Vec<String>), MergeError> {
    let mut notes = Vec::new();
    let Some((_, first)) = slices.first() else {
        return Ok((
            RunResults {
                schema_version: crate::SCHEMA_VERSION,
                environment: Environment::default(),
                cells: Vec::new(),
                cells_requested: 0,
            },
            notes,
        ));
    };
    // The first slice that used each browser, driver and library, with its version.
    let mut claimed: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for (name, slice) in slices {
        for (what, version) in versions_used(slice) {
            match claimed.get(&what) {
                None => {
                    claimed.insert(what, (name.clone(), version));
                }
                Some(first) if first.1 != version => conflicts.push(VersionConflict {
                    what,
                    first: first.clone(),
                    other: (name.clone(), version),
                }),
                Some(_) => {}
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(MergeError::VersionConflict(conflicts));
    }
    let mut merged = RunResults {
        schema_version: crate::SCHEMA_VERSION,
        environment: first.environment.clone(),
        cells: Vec::new(),
        cells_requested: 0,
    };
    merged.environment.ended_at = None;
    merged.environment.browsers.clear();
    merged.environment.backends.clear();
    // Each browser's and library's version comes from a slice that measured with it, else
    // from the first slice that records it.
    let claimant = |what: &str| {
        claimed
            .get(what)
            .and_then(|(n, _)| slices.iter().find(|(name, _)| name == n))
            .map(|(_, s)| &s.environment)
    };
    for (_, slice) in slices {
        for (k, v) in &slice.environment.browsers {
            let from = claimant(&format!("{k} browser"))
                .or_else(|| claimant(&format!("{k} driver")))
                .and_then(|e| e.browsers.get(k))
                .unwrap_or(v);
            merged
                .environment
                .browsers
                .entry(k.clone())
                .or_insert_with(|| from.clone());
        }
        for (k, v) in &slice.environment.backends {
            let from = claimant(k).and_then(|e| e.backends.get(k)).unwrap_or(v);
            merged
                .environment
                .backends
                .entry(k.clone())
                .or_insert_with(|| from.clone());
        }
    }
    let mut seen: BTreeMap<CellKey, String> = BTreeMap::new();
    for (name, slice) in slices {
        merged.cells_requested += slice.cells_requested;
        let env = &slice.environment;
        if env.started_at < merged.environment.started_at {
            merged.environment.started_at = env.started_at.clone();
        }
        if env.ended_at > merged.environment.ended_at {
            merged.environment.ended_at = env.ended_at.clone();
        }
        for cell in &slice.cells {
            if let Some(other) = seen.get(&cell.key) {
                notes.push(format!(
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
    Ok((merged, notes))
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
/// versions so "since Chromium N this cell went from 3 to 1" is one glance. A labelled build's
/// cells are rows of their own (the label is part of the key), and its version is named with
/// its label.
pub fn history_table(entries: &[HistoryEntry]) -> (Vec<String>, Vec<(CellKey, Vec<String>)>) {
    let headers: Vec<String> = entries
        .iter()
        .map(|e| {
            let versions: Vec<String> = e
                .results
                .environment
                .browsers
                .iter()
                .filter_map(|(name, v)| {
                    // A labelled build says which: `candidate Chromium 148.0.…`.
                    let label = name.split_once('@').map(|(_, l)| format!("{l} "));
                    Some(format!(
                        "{}{}",
                        label.unwrap_or_default(),
                        v.browser.as_ref()?
                    ))
                })
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
