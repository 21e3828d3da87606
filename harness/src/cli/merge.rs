//! `harness merge`: combine slices of one matrix run measured on different machines.

use std::path::{Path, PathBuf};

use anyhow::Context;
use results::Format;

use super::{Failure, exit_code, read_run, usage};

pub(super) fn merge_runs(runs: &[PathBuf], out: &Path) -> Result<u8, Failure> {
    let slices = runs
        .iter()
        .map(|r| Ok((r.display().to_string(), read_run(r)?)))
        .collect::<Result<Vec<_>, Failure>>()?;
    if out.join("matrix.json").exists() {
        return Err(usage(anyhow::anyhow!(
            "{} already holds a run; choose another --out",
            out.display()
        )));
    }
    let (merged, notes) = match results::merge(&slices) {
        Ok(m) => m,
        Err(e) => {
            // A merged run names one version per browser and library; slices that disagree
            // would make it misstate what some cells measured. Nothing is written.
            if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
                let one_line = e.to_string().replace('\n', " ");
                println!("::error title=handshake-matrix merge::{one_line}");
            }
            return Err(usage(e));
        }
    };
    for n in &notes {
        eprintln!("note: {n}");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    results::write_all(&merged, out).context("writing the merged run")?;
    println!("{}", results::render(&merged, Format::Terminal));
    println!("merged {} runs into {}", runs.len(), out.display());
    Ok(exit_code(&merged, false, false))
}
