//! The terminal table, printed at the end of a run, `report` and `merge`.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::findings::finding_lines;
use super::view::{
    Matrix, broken_lines, cause_lines, finding_sections, headline_text, legend, missing_log_lines,
};
use crate::RunResults;

/// The table and every section, sized to the terminal.
pub(super) fn render(results: &RunResults) -> String {
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
    let summary = text_section("findings", &finding_lines(results));
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
        "{table}\n{}{summary}{findings}{causes}{missing}{broken}",
        legend(results)
    )
}

/// `title:` and the lines under it, or nothing when there are none (terminal).
fn text_section(title: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("{title}:\n{}\n", lines.join("\n"))
    }
}
