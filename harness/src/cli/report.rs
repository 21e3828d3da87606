//! `harness report`: re-render a run folder from its `matrix.json`.

use std::path::Path;

use anyhow::Context;
use results::{Format, RunResults};

use super::{Failure, exit_code, usage};

pub(super) fn report(run_dir: &Path) -> Result<u8, Failure> {
    if !run_dir.exists() {
        return Err(usage(anyhow::anyhow!(
            "{} does not exist",
            run_dir.display()
        )));
    }
    let results = RunResults::read(run_dir).map_err(usage)?;
    let dir = if run_dir.is_dir() {
        run_dir.to_owned()
    } else {
        run_dir.parent().unwrap_or(Path::new(".")).to_owned()
    };
    results::write_all(&results, &dir).context("writing results")?;
    println!("{}", results::render(&results, Format::Terminal));
    if results.environment.ended_at.is_none() {
        println!(
            "this run did not finish: it was interrupted or killed (or is still running); {} of {} cells are in it",
            results.cells.len(),
            results.cells_requested
        );
    }
    Ok(exit_code(&results, false, false))
}
