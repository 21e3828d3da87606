//! Renderers: one function per format over the same matrix view.

use std::path::Path;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use model::{ClientCause, Outcome, StepAction};

use crate::{
    CellResult, CellStatus, ResultsError, RunResults, StepResult, TrialResult, write_atomically,
};

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `matrix.json`, the source of truth.
    Json,
    /// `matrix.md`.
    Markdown,
    /// `matrix.html`, self-contained.
    Html,
    /// `junit.xml`: one test case per cell.
    Junit,
    /// The terminal table.
    Terminal,
}

impl Format {
    /// The file name in a run folder.
    pub fn file_name(self) -> Option<&'static str> {
        match self {
            Self::Json => Some("matrix.json"),
            Self::Markdown => Some("matrix.md"),
            Self::Html => Some("matrix.html"),
            Self::Junit => Some("junit.xml"),
            Self::Terminal => None,
        }
    }
}

/// Renders `results` as `format`.
pub fn render(results: &RunResults, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(results).expect("results serialise") + "\n",
        Format::Markdown => markdown(results),
        Format::Html => html(results),
        Format::Junit => junit(results),
        Format::Terminal => terminal(results),
    }
}

/// Writes every file format into `dir`, each atomically; a file that cannot be written keeps
/// its previous version, and the others are still tried. Returns the first failure.
pub fn write_all(results: &RunResults, dir: &Path) -> Result<(), ResultsError> {
    let mut first_failure = None;
    for format in [Format::Json, Format::Markdown, Format::Html, Format::Junit] {
        let name = format.file_name().expect("file formats have names");
        if let Err(e) = write_atomically(&dir.join(name), render(results, format).as_bytes()) {
            first_failure.get_or_insert(e);
        }
    }
    first_failure.map_or(Ok(()), Err)
}

/// The matrix view: rows scenario × backend, columns browser × TLS, in first-seen order.
struct Matrix<'a> {
    rows: Vec<(String, String)>,
    columns: Vec<(String, String)>,
    cells: &'a [CellResult],
}

impl<'a> Matrix<'a> {
    fn new(results: &'a RunResults) -> Self {
        let mut rows = Vec::new();
        let mut columns = Vec::new();
        for c in &results.cells {
            let row = (c.key.scenario.clone(), c.key.backend.clone());
            let col = (c.key.browser.clone(), c.key.tls.clone());
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

    fn cell(&self, row: &(String, String), col: &(String, String)) -> Option<&'a CellResult> {
        self.cells.iter().find(|c| {
            c.key.scenario == row.0
                && c.key.backend == row.1
                && c.key.browser == col.0
                && c.key.tls == col.1
        })
    }
}

/// `2 / 1 / 1`: median retries of the step that first shows the page, then of each revisit;
/// `–` where no trial showed the page in that step. `⚑k/n` after a step: only k of the n
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
                let number = h
                    .retries
                    .map(|r| r.to_string())
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
fn without_page_lines(cell: &CellResult) -> Vec<String> {
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
fn capped_lines(cell: &CellResult) -> Vec<String> {
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
fn teardown_lines(cell: &CellResult) -> Vec<String> {
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
fn error_after_handshake_lines(cell: &CellResult) -> Vec<String> {
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
fn finding_sections(results: &RunResults) -> Vec<(&'static str, Vec<String>)> {
    let each = |f: fn(&CellResult) -> Vec<String>| -> Vec<String> {
        results.cells.iter().flat_map(f).collect()
    };
    [
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
fn missing_log_lines(results: &RunResults) -> Vec<String> {
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

/// `- cell proceed: 9 failed in 3 of 3 trials with a NetLog = 6 preconnect + 3 first-attempt`,
/// from browser logs: only trials with a log are counted, and the count says how many that is.
fn cause_lines(results: &RunResults) -> Vec<String> {
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
                "- {} {}: {total} failed in {} of {} trials with a NetLog = {}",
                c.key,
                h.action,
                trials_with_log(c),
                c.trials.len(),
                parts.join(" + ")
            ));
        }
    }
    out
}

/// `- cell: reason — what broke it` for every broken expectation.
fn broken_lines(results: &RunResults) -> Vec<String> {
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

fn legend(results: &RunResults) -> String {
    let env = &results.environment;
    let mut s = format!(
        "Each cell: median retries (failed handshakes before the page) of the step that first shows \
         the page, then of each revisit — `min–max` in brackets when trials differ; `⚑k/n` only k \
         of n trials showed the page; `⏱` a step hit the settle cap; `✗` an expectation broke. \
         {} of {} cells.\n",
        results.cells.len(),
        results.cells_requested
    );
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

fn terminal(results: &RunResults) -> String {
    let m = Matrix::new(results);
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    let mut header = vec!["scenario".to_owned(), "backend".to_owned()];
    header.extend(m.columns.iter().map(|(b, t)| format!("{b} TLS {t}")));
    table.set_header(header);
    for row in &m.rows {
        let mut cells = vec![row.0.clone(), row.1.clone()];
        cells.extend(
            m.columns
                .iter()
                .map(|col| m.cell(row, col).map(headline_text).unwrap_or_default()),
        );
        table.add_row(cells);
    }
    let findings: String = finding_sections(results)
        .into_iter()
        .map(|(title, lines)| text_section(title, &lines))
        .collect();
    let causes = text_section(
        "why handshakes failed (browser logs)",
        &cause_lines(results),
    );
    let missing = text_section(
        "browser log missing or unreadable (those trials say nothing about causes)",
        &missing_log_lines(results),
    );
    let broken = text_section("broken expectations (✗)", &broken_lines(results));
    format!(
        "{table}\n{}{findings}{causes}{missing}{broken}",
        legend(results)
    )
}

fn markdown(results: &RunResults) -> String {
    let m = Matrix::new(results);
    let env = &results.environment;
    let mut s = format!(
        "# handshake-matrix results\n\nStarted {} · ended {} · harness {} ({}) · {}\n\n",
        env.started_at,
        env.ended_at
            .as_deref()
            .unwrap_or("(interrupted or running)"),
        env.harness_version,
        env.git_revision.as_deref().unwrap_or("no git revision"),
        env.os
    );
    s += &legend(results);
    s += "\n| scenario | backend |";
    for (b, t) in &m.columns {
        s += &format!(" {b} TLS {t} |");
    }
    s += "\n|---|---|";
    s += &"---|".repeat(m.columns.len());
    s += "\n";
    for row in &m.rows {
        s += &format!("| {} | {} |", row.0, row.1);
        for col in &m.columns {
            s += &format!(
                " {} |",
                m.cell(row, col).map(headline_text).unwrap_or_default()
            );
        }
        s += "\n";
    }
    let notes: Vec<String> = results
        .cells
        .iter()
        .filter_map(|c| match &c.status {
            CellStatus::Measured => None,
            CellStatus::Unsupported { reason } => {
                Some(format!("- {}: unsupported — {reason}", c.key))
            }
            CellStatus::Error { reason, log } => Some(format!(
                "- {}: error — {reason}{}",
                c.key,
                log.as_deref()
                    .map(|l| format!(" (logs: `{l}`)"))
                    .unwrap_or_default()
            )),
        })
        .collect();
    for (title, lines) in finding_sections(results) {
        s += &markdown_section(title, &lines);
    }
    s += &markdown_section(
        "Why handshakes failed (browser logs)",
        &cause_lines(results),
    );
    s += &markdown_section(
        "Browser log missing or unreadable",
        &missing_log_lines(results),
    );
    s += &markdown_section("Broken expectations (✗)", &broken_lines(results));
    s += &markdown_section("Not measured", &notes);
    s
}

/// `title:` and the lines under it, or nothing when there are none (terminal).
fn text_section(title: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("{title}:\n{}\n", lines.join("\n"))
    }
}

/// `## title` and the lines under it, or nothing when there are none (`matrix.md`).
fn markdown_section(title: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("\n## {title}\n\n{}\n", lines.join("\n"))
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The hover text of one connection: its cause, the reason when unknown, and the NetLog
/// sources and events the cause rests on.
fn cause_title(record: u64, side: Option<&crate::ClientSide>) -> String {
    let Some(side) = side else {
        return format!("record {record}: unknown — not in the browser's log");
    };
    let mut t = format!("record {record}: {}", side.cause);
    if let Some(socket) = side.socket_source_id {
        t += &format!(" (NetLog socket {socket})");
    }
    if let Some(why) = &side.unknown_reason {
        t += &format!("\nunknown because: {why}");
    }
    if !side.evidence.is_empty() {
        t += "\nevidence:";
        for e in &side.evidence {
            t += &format!("\n  {e}");
        }
    }
    if side.reused_by > 0 {
        t += &format!("\nreused by {} later request(s)", side.reused_by);
    }
    t
}

fn html(results: &RunResults) -> String {
    let m = Matrix::new(results);
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>handshake-matrix results</title><style>\
         body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #bbb;padding:4px 8px;vertical-align:top}\
         .r0{background:#c8f0c8}.r1{background:#fff3b0}.r2{background:#ffd2a0}.r3{background:#ffb0a0}\
         .unsupported{background:#eee;color:#666}.error{background:#f88}\
         details summary{cursor:pointer;font-weight:bold}code{font-size:12px}\
         .why{text-decoration:underline dotted;cursor:help}</style></head><body>\
         <h1>handshake-matrix results</h1>",
    );
    s += &format!("<pre>{}</pre>", esc(&legend(results)));
    s += "<table><tr><th>scenario</th><th>backend</th>";
    for (b, t) in &m.columns {
        s += &format!("<th>{} TLS {}</th>", esc(b), esc(t));
    }
    s += "</tr>";
    for row in &m.rows {
        s += &format!("<tr><td>{}</td><td>{}</td>", esc(&row.0), esc(&row.1));
        for col in &m.columns {
            let Some(cell) = m.cell(row, col) else {
                s += "<td></td>";
                continue;
            };
            let class = match &cell.status {
                CellStatus::Measured => {
                    let r = cell
                        .headline
                        .first()
                        .and_then(|h| h.retries)
                        .map(|r| r.median)
                        .unwrap_or(3);
                    format!("r{}", r.min(3))
                }
                CellStatus::Unsupported { .. } => "unsupported".into(),
                CellStatus::Error { .. } => "error".into(),
            };
            s += &format!(
                "<td class=\"{class}\"><details><summary>{}</summary>",
                esc(&headline_text(cell))
            );
            match &cell.status {
                CellStatus::Unsupported { reason } => s += &format!("<p>{}</p>", esc(reason)),
                CellStatus::Error { reason, log } => {
                    s += &format!(
                        "<p>{}</p><p>logs: <code>{}</code></p>",
                        esc(reason),
                        esc(log.as_deref().unwrap_or(""))
                    )
                }
                CellStatus::Measured => {}
            }
            for e in &cell.expectations {
                let verdict = e
                    .broken
                    .as_deref()
                    .map(|b| format!("✗ broken: {b}"))
                    .unwrap_or_else(|| "✓ holds".into());
                s += &format!(
                    "<p>expect {} ({}): {}</p>",
                    esc(&e.rule),
                    esc(&e.reason),
                    esc(&verdict)
                );
            }
            for t in &cell.trials {
                let memory = t
                    .browser_peak_rss_kib
                    .map(|k| format!(", browser peak {} MiB", k / 1024))
                    .unwrap_or_default();
                s += &format!(
                    "<p>trial {} ({} ms{memory}; {} failed handshakes in all, the teardown's included)",
                    t.index,
                    t.wall_ms,
                    t.failed_handshakes()
                );
                if let Some(e) = &t.error {
                    s += &format!(" — error: {}", esc(e));
                }
                if let Some(p) = &t.client_log_problem {
                    s += &format!(" — <b>browser log: {}</b>", esc(p));
                }
                s += "</p><ul>";
                for step in t.steps_and_teardown() {
                    // Each connection's fate, and why the browser opened it when its log says;
                    // hovering (or tapping) a token shows what the cause rests on.
                    let tokens: Vec<String> = step
                        .connections
                        .iter()
                        .map(|r| {
                            let Some(log) = &t.client_log else {
                                return esc(&r.outcome.short());
                            };
                            let side = log.connections.get(&r.id);
                            let cause = side.map_or(ClientCause::Unknown, |c| c.cause);
                            format!(
                                "<span class=\"why\" tabindex=\"0\" title=\"{}\">{}[{}]</span>",
                                esc(&cause_title(r.id, side)),
                                esc(&r.outcome.short()),
                                esc(cause.as_str())
                            )
                        })
                        .collect();
                    let shown = if step.action == StepAction::Teardown {
                        "(session closing)"
                    } else {
                        step.shown.as_str()
                    };
                    let capped = if step.settle_capped {
                        " ⏱ cut off by the settle cap"
                    } else {
                        ""
                    };
                    s += &format!(
                        "<li>{} → {}{capped}: <code>{}</code></li>",
                        esc(step.action.as_str()),
                        esc(shown),
                        tokens.join(" ")
                    );
                }
                s += "</ul>";
            }
            s += "</details></td>";
        }
        s += "</tr>";
    }
    s += "</table>";
    for (title, lines) in finding_sections(results) {
        s += &format!("<h2>{}</h2><ul>", esc(title));
        for l in lines {
            s += &format!("<li>{}</li>", esc(l.trim_start_matches("- ")));
        }
        s += "</ul>";
    }
    s += "</body></html>\n";
    s
}

fn junit(results: &RunResults) -> String {
    let mut report = Report::new("handshake-matrix");
    let mut suites: Vec<TestSuite> = Vec::new();
    for cell in &results.cells {
        let idx = match suites
            .iter()
            .position(|s| s.name.as_str() == cell.key.scenario.as_str())
        {
            Some(i) => i,
            None => {
                suites.push(TestSuite::new(cell.key.scenario.clone()));
                suites.len() - 1
            }
        };
        let name = format!(
            "{}/{}/tls{}",
            cell.key.backend, cell.key.browser, cell.key.tls
        );
        let broken: Vec<String> = cell
            .expectations
            .iter()
            .filter_map(|e| {
                e.broken
                    .as_ref()
                    .map(|b| format!("expected {} ({}): {b}", e.rule, e.reason))
            })
            .collect();
        let status = match &cell.status {
            CellStatus::Measured if !broken.is_empty() => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(broken.join("; "));
                s
            }
            CellStatus::Measured => TestCaseStatus::success(),
            CellStatus::Unsupported { reason } => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(reason.clone());
                s
            }
            CellStatus::Error { reason, .. } => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message(reason.clone());
                s
            }
        };
        let mut case = TestCase::new(name, status);
        let mut out = vec![headline_text(cell)];
        out.extend(without_page_lines(cell));
        out.extend(capped_lines(cell));
        let teardown = teardown_lines(cell);
        let no_teardown_connections =
            teardown.is_empty() && cell.trials.iter().any(|t| t.teardown.is_some());
        out.extend(teardown);
        out.extend(error_after_handshake_lines(cell));
        if no_teardown_connections {
            out.push("teardown: no connections".into());
        }
        case.set_system_out(out.join("\n"));
        suites[idx].add_test_case(case);
    }
    report.add_test_suites(suites);
    report.to_string().expect("junit serialises")
}
