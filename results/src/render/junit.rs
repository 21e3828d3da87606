//! `junit.xml`.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::Exporter;
use super::view::{
    capped_lines, error_after_handshake_lines, headline_text, teardown_lines, without_page_lines,
};
use crate::{CellStatus, RunResults};

/// `junit.xml`: one test suite per scenario, one test case per cell, so CI shows a broken
/// expectation as a failure and an `error` cell as an error.
pub(crate) struct Junit;

impl Exporter for Junit {
    fn file_name(&self) -> &'static str {
        "junit.xml"
    }

    fn render(&self, results: &RunResults) -> String {
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
                cell.key.backend,
                cell.key.browser_column(),
                cell.key.tls
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
}
