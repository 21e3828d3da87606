//! `history.html`: the trend of every cell across runs.

use super::esc;
use crate::{CellKey, HistoryEntry, Spread, history_table};

/// `history.html`: the table of [`history_table`] as a self-contained page (no script, no
/// network), each value that differs from the run before highlighted, and beside each cell its
/// trend as a chart: one point per run with the browser versions on the x axis, the median
/// retries of the step that first shows the page, and a bar from the fewest to the most.
///
/// A plain function rather than an [`Exporter`](super::Exporter): an exporter renders one
/// run into that run's own folder and [`write_all`](super::write_all) rewrites it after every
/// cell, while the history spans many runs and is written once where the caller says.
pub fn history_html(entries: &[HistoryEntry]) -> String {
    let (headers, rows) = history_table(entries);
    let versions: Vec<String> = entries.iter().map(versions_of).collect();
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>handshake-matrix history</title>\
         <style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #bbb;padding:4px 8px}.changed{background:#ffd2a0}\
         svg{display:block}svg text{font:10px system-ui,sans-serif;fill:#444}\
         .median{fill:#1f5fbf}.range{stroke:#1f5fbf;stroke-width:2;opacity:.45}\
         .trend{fill:none;stroke:#1f5fbf;stroke-width:1}.axis{stroke:#999}</style></head>\
         <body><h1>handshake-matrix history</h1><table><tr><th>cell</th><th>trend</th>",
    );
    for h in &headers {
        page += &format!("<th>{}</th>", esc(h));
    }
    page += "</tr>";
    for (key, values) in &rows {
        let points: Vec<Option<Spread>> = entries.iter().map(|e| first_retries(e, key)).collect();
        // A labelled build's trend is along its own versions (`chromium@beta`'s, not every
        // build's of the run).
        let axis: Vec<String> = entries
            .iter()
            .zip(&versions)
            .map(|(e, run)| build_version(e, key).unwrap_or_else(|| run.clone()))
            .collect();
        page += &format!(
            "<tr><td>{}</td><td>{}</td>",
            esc(&key.to_string()),
            trend_svg(&points, &axis)
        );
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
             each revisit. Orange: different from the run before. The trend plots the first of \
             them per run (dot: median; bar: fewest to most over the trials; a gap: not measured \
             or no page), with the run's browser versions below.</p></body></html>\n";
    page
}

/// The browser versions a run measured, e.g. `156.0.8078.108`, for the x axis.
fn versions_of(e: &HistoryEntry) -> String {
    let v: Vec<String> = e
        .results
        .environment
        .browsers
        .values()
        .filter_map(|t| t.browser.as_deref())
        .map(|b| b.rsplit(' ').next().unwrap_or(b).to_owned())
        .collect();
    if v.is_empty() {
        e.label.clone()
    } else {
        v.join(" / ")
    }
}

/// For a labelled build's cell, the version that build had in the run, e.g. `148.0.7778.5`.
fn build_version(e: &HistoryEntry, key: &CellKey) -> Option<String> {
    key.label.as_ref()?;
    let b = e
        .results
        .environment
        .browsers
        .get(&key.browser_column())?
        .browser
        .as_deref()?;
    Some(b.rsplit(' ').next().unwrap_or(b).to_owned())
}

/// The retries of the step that first shows the page, in the run's cell `key`.
fn first_retries(e: &HistoryEntry, key: &CellKey) -> Option<Spread> {
    e.results
        .cells
        .iter()
        .find(|c| &c.key == key)?
        .headline
        .first()?
        .retries
}

const STEP_X: usize = 56;
const PLOT_H: usize = 60;
const TOP: usize = 8;
const LEFT: usize = 22;

/// One cell's trend as an inline SVG.
fn trend_svg(points: &[Option<Spread>], versions: &[String]) -> String {
    let max = points
        .iter()
        .flatten()
        .map(|s| s.max)
        .max()
        .unwrap_or(0)
        .max(1);
    let width = LEFT + STEP_X * points.len().max(1);
    let height = TOP + PLOT_H + 26;
    let x = |i: usize| LEFT + STEP_X * i + STEP_X / 2;
    let y = |v: u32| TOP + PLOT_H - (v as usize * PLOT_H) / max as usize;
    let mut svg = format!(
        "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{width}\" y2=\"{bottom}\"/>\
         <text x=\"2\" y=\"{top_text}\">{max}</text><text x=\"2\" y=\"{bottom}\">0</text>",
        bottom = y(0),
        top_text = TOP + 4,
    );
    // The line joins consecutive measured runs only: a gap stays a gap.
    let mut segment: Vec<String> = Vec::new();
    let flush = |segment: &mut Vec<String>, svg: &mut String| {
        if segment.len() > 1 {
            *svg += &format!(
                "<polyline class=\"trend\" points=\"{}\"/>",
                segment.join(" ")
            );
        }
        segment.clear();
    };
    for (i, p) in points.iter().enumerate() {
        match p {
            Some(s) => segment.push(format!("{},{}", x(i), y(s.median))),
            None => flush(&mut segment, &mut svg),
        }
    }
    flush(&mut segment, &mut svg);
    for (i, (p, version)) in points.iter().zip(versions).enumerate() {
        if let Some(s) = p {
            svg += &format!(
                "<g><title>{}: {s}</title><line class=\"range\" x1=\"{cx}\" y1=\"{}\" x2=\"{cx}\" y2=\"{}\"/>\
                 <circle class=\"median\" cx=\"{cx}\" cy=\"{}\" r=\"3\"/></g>",
                esc(version),
                y(s.min),
                y(s.max),
                y(s.median),
                cx = x(i),
            );
        }
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(i),
            height - 4,
            esc(&short(version))
        );
    }
    svg + "</svg>"
}

/// A version short enough for the axis: `156.0.8078.108` → `156.0.8078`.
fn short(version: &str) -> String {
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() > 3 && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())) {
        parts[..3].join(".")
    } else {
        version.chars().take(12).collect()
    }
}
