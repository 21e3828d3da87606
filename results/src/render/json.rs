//! `matrix.json`.

use super::Exporter;
use crate::RunResults;

/// `matrix.json`, the source of truth: every other file can be rendered again from it
/// (`harness report`).
pub(crate) struct Json;

impl Exporter for Json {
    fn file_name(&self) -> &'static str {
        "matrix.json"
    }

    fn render(&self, results: &RunResults) -> String {
        serde_json::to_string_pretty(results).expect("results serialise") + "\n"
    }
}
