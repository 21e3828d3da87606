//! `matrix.html`: findings, the matrix with every step, and per cell (on click) the
//! distribution of its trials and each trial's connection timeline.

use model::{ConnectionRecord, Outcome, StepAction};
use serde_json::{Value, json};

use super::findings::findings;
use super::view::{
    Matrix, broken_lines, cause_lines, every_step, finding_sections, headline_text, legend,
    missing_log_lines,
};
use super::{Exporter, esc};
use crate::{CellResult, CellStatus, ClientSide, RunResults, TrialResult};

/// `matrix.html`, self-contained (inline style and script, no network, works from a file):
/// the findings, the matrix, and per cell the detail drawn on click from the data embedded in
/// the page, so the page stays small until someone looks.
pub(crate) struct Html;

const STYLE: &str = include_str!("matrix.css");
const SCRIPT: &str = include_str!("matrix.js");

impl Exporter for Html {
    fn file_name(&self) -> &'static str {
        "matrix.html"
    }

    fn render(&self, results: &RunResults) -> String {
        let m = Matrix::new(results);
        let mut s = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>handshake-matrix results</title>\
             <style>{STYLE}</style></head><body><h1>handshake-matrix results</h1>"
        );
        s += &findings_html(results);
        s += &format!(
            "<details class=\"legend\"><summary>How to read the numbers, versions</summary><pre>{}</pre></details>",
            esc(&legend(results))
        );
        s += "<p class=\"hint\">Each cell: <b>retries</b> (failed handshakes before the page) of \
              the step that first shows the page, then of each revisit; below, the median \
              <b>failed handshakes</b> of every step, numbered from 1, and per page view. Click a \
              cell for every trial: its distribution and each trial's connection timeline.</p>";
        s += "<table id=\"matrix\"><tr><th>scenario</th><th>backend</th>";
        for (b, t) in &m.columns {
            s += &format!("<th>{} TLS {}</th>", esc(b), esc(t));
        }
        s += "</tr>";
        for row in &m.rows {
            s += &format!("<tr><td>{}</td><td>{}</td>", esc(&row.0), esc(&row.1));
            for col in &m.columns {
                match m.cell(row, col) {
                    Some(cell) => s += &cell_html(results, cell),
                    None => s += "<td></td>",
                }
            }
            s += "</tr>";
        }
        s += "</table>";
        let mut sections = finding_sections(results);
        sections.push((
            "Why handshakes failed (browser logs; every failed handshake of the step, not only retries)",
            cause_lines(results),
        ));
        sections.push((
            "Browser log missing or unreadable",
            missing_log_lines(results),
        ));
        sections.push(("Broken expectations (✗)", broken_lines(results)));
        for (title, lines) in sections.into_iter().filter(|(_, l)| !l.is_empty()) {
            s += &format!("<h2>{}</h2><ul>", esc(title));
            for l in lines {
                s += &format!("<li>{}</li>", esc(l.trim_start_matches("- ")));
            }
            s += "</ul>";
        }
        // `<` never appears outside a JSON string, so escaping it keeps `</script>` out of
        // the data without changing what it parses to.
        let data = serde_json::to_string(&page_data(results))
            .expect("page data serialises")
            .replace('<', "\\u003c");
        s += &format!(
            "<script type=\"application/json\" id=\"hm-data\">{data}</script><script>{SCRIPT}</script></body></html>\n"
        );
        s
    }
}

/// The findings, per browser, each linking to the cells behind it.
fn findings_html(results: &RunResults) -> String {
    let mut s = String::from("<section id=\"findings\"><h2>Findings</h2>");
    let all = findings(results);
    if all.is_empty() {
        s += "<p>no data</p>";
    }
    let mut browser: Option<&str> = None;
    for f in &all {
        if browser != Some(f.browser.as_str()) {
            if browser.is_some() {
                s += "</ul>";
            }
            s += &format!("<h3>{}</h3><ul>", esc(&f.browser));
            browser = Some(&f.browser);
        }
        let cells: Vec<String> = f.cells.iter().map(|i| format!("c{i}")).collect();
        s += &format!(
            "<li class=\"finding\" data-cells=\"{}\">{} <a href=\"#{}\">{} cell{}</a></li>",
            cells.join(" "),
            esc(&f.text),
            cells.first().map(String::as_str).unwrap_or("matrix"),
            f.cells.len(),
            if f.cells.len() == 1 { "" } else { "s" }
        );
    }
    if browser.is_some() {
        s += "</ul>";
    }
    s + "</section>"
}

/// One matrix cell: the headline, every step's median failed handshakes, per page view.
fn cell_html(results: &RunResults, cell: &CellResult) -> String {
    let index = results
        .cells
        .iter()
        .position(|c| std::ptr::eq(c, cell))
        .unwrap_or(0);
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
    let mut s = format!(
        "<td id=\"c{index}\" class=\"cell {class}\" data-cell=\"{index}\" tabindex=\"0\" title=\"{}\"><b>{}</b>",
        esc(&cell.key.to_string()),
        esc(&headline_text(cell))
    );
    if let Some((steps, views)) = every_step(cell) {
        s += &format!(
            "<div class=\"steps\" title=\"median failed handshakes of every step (all of them, before and after the page)\">{}</div>",
            esc(&steps)
        );
        if let Some(views) = views {
            s += &format!(
                "<div class=\"views\" title=\"median failed handshakes per page view: the first (every step up to the page), then each revisit\">per view {}</div>",
                esc(&views)
            );
        }
    }
    s + "</td>"
}

/// What the script draws from: per cell its trials, their steps on a time axis, and every
/// connection record with why the browser opened it.
fn page_data(results: &RunResults) -> Value {
    let mut lines = Lines::default();
    let cells: Vec<Value> = results
        .cells
        .iter()
        .map(|c| {
            let reason = match &c.status {
                CellStatus::Measured => None,
                CellStatus::Unsupported { reason } => Some(format!("unsupported: {reason}")),
                CellStatus::Error { reason, log } => Some(format!(
                    "error: {reason}{}",
                    log.as_deref()
                        .map(|l| format!(" (logs: {l})"))
                        .unwrap_or_default()
                )),
            };
            json!({
                "key": c.key.to_string(),
                "browser": c.key.browser_column(),
                "reason": reason,
                "headline": c.headline.iter().map(|h| h.step).collect::<Vec<_>>(),
                "trials": c.trials.iter().map(|t| trial_data(t, &mut lines)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "cells": cells, "lines": lines.all })
}

/// Every distinct line of the records' texts once: most lines (a library's words, a net error,
/// a NetLog event) repeat across thousands of records, and a full run's page would otherwise
/// be mostly those repeats.
#[derive(Default)]
struct Lines {
    all: Vec<String>,
    index: std::collections::HashMap<String, usize>,
}

impl Lines {
    fn of(&mut self, text: &str) -> Vec<usize> {
        text.lines()
            .map(|l| {
                if let Some(&i) = self.index.get(l) {
                    return i;
                }
                self.all.push(l.to_owned());
                self.index.insert(l.to_owned(), self.all.len() - 1);
                self.all.len() - 1
            })
            .collect()
    }
}

fn trial_data(t: &TrialResult, lines: &mut Lines) -> Value {
    let origin = t
        .steps_and_teardown()
        .flat_map(|s| {
            std::iter::once(s.started_at_us).chain(s.connections.iter().map(|r| r.accepted_at_us))
        })
        .min()
        .unwrap_or(0);
    let ms = |us: u64| (us.saturating_sub(origin) as f64 / 100.0).round() / 10.0;
    let mut steps = Vec::new();
    let mut conns = Vec::new();
    for (i, s) in t.steps_and_teardown().enumerate() {
        steps.push(json!({
            "a": s.action.as_str(),
            "sh": if s.action == StepAction::Teardown { "session closing" } else { s.shown.as_str() },
            "t0": ms(s.started_at_us),
            "t1": ms(s.settled_at_us),
            "f": s.failed_handshakes,
            "r": s.retries,
            "p": s.page_shown,
            "reused": s.page_on_reused_connection,
            "capped": s.settle_capped,
        }));
        for r in &s.connections {
            let side = t.client_log.as_ref().map(|l| l.connections.get(&r.id));
            let why = match side {
                None => None,
                Some(None) => Some("unknown".to_owned()),
                Some(Some(c)) => Some(c.cause.as_str().to_owned()),
            };
            let (kind, cause) = outcome_kind(&r.outcome);
            conns.push(json!({
                "id": r.id,
                "s": i,
                "a": ms(r.accepted_at_us),
                "c": ms(r.closed_at_us.max(r.accepted_at_us)),
                "o": kind,
                "k": cause,
                "tok": r.outcome.short(),
                "f": r.outcome.is_failed_handshake(),
                "why": why,
                "d": lines.of(&record_text(r, side)),
            }));
        }
    }
    json!({
        "i": t.index,
        "err": t.error,
        "ms": t.wall_ms,
        "logp": t.client_log_problem,
        "conf": t.confirmation,
        "log": t.client_log.as_ref().map(|l| l.file.clone()),
        "dir": t.log_dir,
        "cap": t.capture,
        "steps": steps,
        "conns": conns,
    })
}

/// The outcome's kind and its cause's kind as `matrix.json` spells them (`rejected`, `alert`),
/// so the page's classes follow the data.
fn outcome_kind(o: &Outcome) -> (String, Option<String>) {
    let v = serde_json::to_value(o).unwrap_or(Value::Null);
    let kind = v["kind"].as_str().unwrap_or("unknown").to_owned();
    let cause = v["cause"]["kind"].as_str().map(str::to_owned);
    (kind, cause)
}

/// The record as a person reads it: outcome, times, what the handshake negotiated, the
/// library's words, and the browser's side with the evidence its cause rests on.
/// `side` is `None` without a browser log, `Some(None)` when the log does not name the
/// connection.
fn record_text(r: &ConnectionRecord, side: Option<Option<&ClientSide>>) -> String {
    let outcome = match &r.outcome {
        Outcome::Established { requests } => format!("established, {requests} request(s) served"),
        Outcome::Idle => "idle (handshake done, closed without a request)".into(),
        Outcome::Rejected { cause } => format!("rejected (failed handshake): {cause}"),
        Outcome::RejectedAfterHandshake { cause } => {
            format!("rejected-after-handshake (failed handshake): {cause}")
        }
        Outcome::ErrorAfterHandshake { cause } => format!("error-after-handshake: {cause}"),
    };
    // The record's id and times are the script's to add: they differ in every record.
    let mut t = format!("{outcome}\nclient {} → {}", r.client, r.local);
    let ss = &r.session;
    let negotiated: Vec<String> = [
        ss.version.as_ref().map(|v| format!("TLS {v}")),
        ss.cipher_suite.clone(),
        ss.alpn.as_ref().map(|a| format!("ALPN {a}")),
        ss.sni.as_ref().map(|a| format!("SNI {a}")),
        ss.resumed
            .map(|r| if r { "resumed" } else { "full handshake" }.to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !negotiated.is_empty() {
        t += &format!("\nnegotiated: {}", negotiated.join(", "));
    }
    if let Some(code) = &r.backend_code {
        t += &format!("\nlibrary: {code}");
    }
    if let Some(w) = r.queue_wait_ms {
        t += &format!("\naccept queue wait: {w} ms");
    }
    if let Some(relay) = &r.relay {
        t += &format!(
            "\nrecorded by the relay: {} bytes from the client, {} from the server",
            relay.client_bytes, relay.server_bytes
        );
        if relay.cause_from_browser_log {
            t += "\ncause: the alert the browser's log says it sent";
        }
        for i in &relay.inferred {
            t += &format!("\ninferred {}: {}", i.field.as_str(), i.how);
        }
    }
    match side {
        None => {}
        Some(None) => t += "\nwhy the browser opened it: unknown — not in the browser's log",
        Some(Some(c)) => {
            t += &format!("\nwhy the browser opened it: {}", c.cause);
            if let Some(e) = c.net_error {
                t += &format!("\nbrowser net error: {e}");
            }
            if let Some(a) = &c.alert_sent {
                t += &format!("\nbrowser sent alert: {a}");
            }
            if let Some(u) = &c.url {
                t += &format!("\nurl: {u}");
            }
            if let Some(why) = &c.unknown_reason {
                t += &format!("\nunknown because: {why}");
            }
            if c.reused_by > 0 {
                t += &format!("\nreused by {} later request(s)", c.reused_by);
            }
            if let Some(socket) = c.socket_source_id {
                t += &format!("\nNetLog socket {socket}");
            }
            if !c.evidence.is_empty() {
                t += "\nevidence:";
                for e in &c.evidence {
                    t += &format!("\n  {e}");
                }
            }
        }
    }
    t
}
