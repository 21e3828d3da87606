//! `history.html`: the trend of every cell across runs.

use super::esc;
use crate::CellKey;

/// `history.html`: the table of [`history_table`](crate::history_table) as a self-contained
/// page, each value that differs from the run before highlighted.
///
/// A plain function rather than an [`Exporter`](super::Exporter): an exporter renders one
/// run into that run's own folder and [`write_all`](super::write_all) rewrites it after every
/// cell, while the history spans many runs, is written once where the caller says, and is
/// drawn from a table the caller also prints.
pub fn history_html(headers: &[String], rows: &[(CellKey, Vec<String>)]) -> String {
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>handshake-matrix history</title>\
         <style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #bbb;padding:4px 8px}.changed{background:#ffd2a0}</style></head>\
         <body><h1>handshake-matrix history</h1><table><tr><th>cell</th>",
    );
    for h in headers {
        page += &format!("<th>{}</th>", esc(h));
    }
    page += "</tr>";
    for (key, values) in rows {
        page += &format!("<tr><td>{}</td>", esc(&key.to_string()));
        for (i, v) in values.iter().enumerate() {
            let class = if i > 0 && values[i - 1] != *v {
                " class=\"changed\""
            } else {
                ""
            };
            page += &format!("<td{class}>{}</td>", esc(v));
        }
        page += "</tr>";
    }
    page += "</table><p>Each cell: median retries of the step that first shows the page, then of \
             each revisit. Orange: different from the run before.</p></body></html>\n";
    page
}
