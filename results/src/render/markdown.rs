//! `matrix.md`.

use super::Exporter;
use super::findings::finding_lines;
use super::view::{
    Matrix, broken_lines, cause_lines, every_step, finding_sections, headline_text, legend,
    missing_log_lines,
};
use crate::{CellStatus, RunResults};

/// `matrix.md`: the table and every section, for a pull request or an issue.
pub(crate) struct Markdown;

impl Exporter for Markdown {
    fn file_name(&self) -> &'static str {
        "matrix.md"
    }

    fn render(&self, results: &RunResults) -> String {
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
        s += &markdown_section(
            "Findings (per browser, from the cells below)",
            &finding_lines(results),
        );
        s += "\n";
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
        s += "\n## Every step (median failed handshakes of each step, numbered from 1; per page view: the first, up to the page, then each revisit)\n\n| scenario | backend |";
        for (b, t) in &m.columns {
            s += &format!(" {b} TLS {t} |");
        }
        s += "\n|---|---|";
        s += &"---|".repeat(m.columns.len());
        s += "\n";
        for row in &m.rows {
            s += &format!("| {} | {} |", row.0, row.1);
            for col in &m.columns {
                let text = match m.cell(row, col).and_then(every_step) {
                    Some((steps, Some(views))) => format!("{steps}; per view {views}"),
                    Some((steps, None)) => steps,
                    None => String::new(),
                };
                s += &format!(" {text} |");
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
}

/// `## title` and the lines under it, or nothing when there are none (`matrix.md`).
fn markdown_section(title: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("\n## {title}\n\n{}\n", lines.join("\n"))
    }
}
