//! The README's results are the recorded full run's (issue #18): its table and its findings
//! are exactly what the harness renders from that run's `matrix.json`, and the figures its
//! prose quotes are that run's, so prose and table cannot drift apart.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use model::ClientCause;
use results::{Format, RunResults, render};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The full run the README describes, trimmed (see `results/tests/fixtures/README.md`).
fn recorded_run() -> RunResults {
    let path = root().join("results/tests/fixtures/full-run.json.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("matrix.json"), text).unwrap();
    RunResults::read(dir.path()).unwrap()
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The lines of `text` between `<!-- begin NAME -->` and `<!-- end NAME -->`.
fn block(text: &str, name: &str) -> String {
    let begin = format!("<!-- begin {name}");
    let start = text
        .find(&begin)
        .unwrap_or_else(|| panic!("README has no block {name}"));
    let start = start + text[start..].find('\n').unwrap() + 1;
    let end = start
        + text[start..]
            .find(&format!("<!-- end {name} -->"))
            .unwrap_or_else(|| panic!("README's block {name} has no end"));
    text[start..end].trim().to_owned()
}

#[test]
fn the_readme_table_and_findings_are_the_recorded_run_s() {
    let run = recorded_run();
    let markdown = render(&run, Format::Markdown);
    // The matrix is the first table of `matrix.md` (the second is every step).
    let table: Vec<&str> = markdown
        .lines()
        .skip_while(|l| !l.starts_with("| "))
        .take_while(|l| l.starts_with('|'))
        .collect();
    let text = readme();
    assert_eq!(
        block(&text, "results-table"),
        table.join("\n"),
        "README's table is not the recorded run's: paste it from the run's matrix.md"
    );
    let findings: Vec<String> = results::findings(&run)
        .iter()
        .map(|f| format!("- {} — {}", f.browser, f.text))
        .collect();
    assert_eq!(
        block(&text, "findings"),
        findings.join("\n"),
        "README's findings are not the recorded run's: paste them from the run's matrix.md"
    );
}

#[test]
fn the_readme_s_figures_are_the_recorded_run_s() {
    let run = recorded_run();
    let trials: usize = run.cells.iter().map(|c| c.trials.len()).sum();
    let confirmation = run
        .cells
        .iter()
        .flat_map(|c| &c.trials)
        .filter(|t| t.confirmation)
        .count();
    let mut causes: BTreeMap<ClientCause, u32> = BTreeMap::new();
    for c in run.cells.iter().filter(|c| c.key.browser == "chromium") {
        for t in &c.trials {
            for s in t.steps_and_teardown() {
                for (cause, n) in &s.failed_by_cause {
                    *causes.entry(*cause).or_default() += n;
                }
            }
        }
    }
    let failed: u32 = causes.values().sum();
    let measured = run
        .cells
        .iter()
        .filter(|c| c.status == results::CellStatus::Measured)
        .count();
    let without_page: usize = run
        .cells
        .iter()
        .flat_map(|c| &c.headline)
        .map(|h| h.trials_without_page)
        .sum();
    let capped = run
        .cells
        .iter()
        .flat_map(|c| &c.trials)
        .flat_map(|t| &t.steps)
        .filter(|s| s.settle_capped)
        .count();
    let teardown: usize = run
        .cells
        .iter()
        .flat_map(|c| &c.trials)
        .filter_map(|t| t.teardown.as_ref())
        .map(|s| s.connections.len() + s.failed_handshakes as usize)
        .sum();
    assert_eq!(
        (
            without_page,
            capped,
            teardown,
            run.broken_expectations().len()
        ),
        (0, 0, 0, 0),
        "the README says every trial showed the page, none was capped, the teardown was empty and nothing broke"
    );
    // Line breaks in the README are only layout.
    let text = block(&readme(), "figures")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let expected = [
        format!("{} cells: {measured} measured", run.cells.len()),
        format!("{trials} trials"),
        format!("{confirmation} of them confirmation trials"),
        format!("of the {failed} failed Chromium handshakes"),
        format!("{} were preconnect", causes[&ClientCause::Preconnect]),
        format!("{} first attempts", causes[&ClientCause::FirstAttempt]),
        format!("{} `unknown`", causes[&ClientCause::Unknown]),
    ];
    for e in expected {
        assert!(
            text.contains(&e),
            "README's figures do not say {e:?}:\n{text}"
        );
    }
    assert!(
        !causes.contains_key(&ClientCause::RestartWithAllowedCert),
        "the README says no failed handshake was a restart with the user's decision"
    );
}
