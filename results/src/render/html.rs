//! `matrix.html`.

use model::{ClientCause, StepAction};

use super::view::{Matrix, finding_sections, headline_text, legend};
use super::{Exporter, esc};
use crate::{CellStatus, RunResults};

/// `matrix.html`, self-contained: the table, and in each cell every trial's steps and
/// connections with why the browser opened them.
pub(crate) struct Html;

impl Exporter for Html {
    fn file_name(&self) -> &'static str {
        "matrix.html"
    }

    fn render(&self, results: &RunResults) -> String {
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
                    if let Some(c) = &t.capture {
                        s += &format!(" — <a href=\"{}\">capture.pcapng</a>", esc(c));
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
