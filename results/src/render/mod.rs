//! Renderers: one type per file format, each an [`Exporter`], over the same matrix view; the
//! terminal table; and the history page, which spans several runs.

mod findings;
mod history;
mod html;
mod json;
mod junit;
mod markdown;
mod terminal;
mod view;

use std::path::Path;

use crate::{ResultsError, RunResults, write_atomically};

pub use self::findings::{Finding, findings};
pub use self::history::history_html;
pub(crate) use self::view::headline_text;

/// One file of a run folder, rendered from the run's results.
///
/// A run folder is rewritten after every cell (so an interrupted run leaves valid partial
/// results), and [`write_all`] does that by going through [`EXPORTERS`]: a new file format is
/// one type implementing this trait and one entry there.
pub trait Exporter {
    /// The file's name in a run folder, e.g. `matrix.md`.
    fn file_name(&self) -> &'static str;

    /// The file's contents.
    fn render(&self, results: &RunResults) -> String;
}

/// Every file [`write_all`] writes, in the order it writes them: `matrix.json` first, so a run
/// killed while writing has its source of truth up to date (`harness report` renders the
/// others again from it).
const EXPORTERS: [&dyn Exporter; 4] =
    [&json::Json, &markdown::Markdown, &html::Html, &junit::Junit];

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
    /// The exporter that writes this format's file; `None` for the terminal, the one format
    /// that is printed rather than written.
    pub fn exporter(self) -> Option<&'static dyn Exporter> {
        match self {
            Self::Json => Some(&json::Json),
            Self::Markdown => Some(&markdown::Markdown),
            Self::Html => Some(&html::Html),
            Self::Junit => Some(&junit::Junit),
            Self::Terminal => None,
        }
    }

    /// The file name in a run folder.
    pub fn file_name(self) -> Option<&'static str> {
        self.exporter().map(Exporter::file_name)
    }
}

/// Renders `results` as `format`.
pub fn render(results: &RunResults, format: Format) -> String {
    match format.exporter() {
        Some(exporter) => exporter.render(results),
        None => terminal::render(results),
    }
}

/// Writes every file format into `dir`, each atomically; a file that cannot be written keeps
/// its previous version, and the others are still tried. Returns the first failure.
pub fn write_all(results: &RunResults, dir: &Path) -> Result<(), ResultsError> {
    let mut first_failure = None;
    for exporter in EXPORTERS {
        let path = dir.join(exporter.file_name());
        if let Err(e) = write_atomically(&path, exporter.render(results).as_bytes()) {
            first_failure.get_or_insert(e);
        }
    }
    first_failure.map_or(Ok(()), Err)
}

/// The one HTML escaper of every page this crate writes. It escapes `"` as well because the
/// same text also goes into attribute values (`title="…"` in `matrix.html`).
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
