//! `harness history`: the trend of every cell across runs.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Failure, read_run, usage};

/// Run folders in `paths`: each a run folder, or a folder whose subfolders are run folders.
fn run_folders(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut out = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(usage(anyhow::anyhow!("{} does not exist", p.display())));
        }
        if p.join("matrix.json").is_file() || p.is_file() {
            out.push(p.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| format!("reading {}", p.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|d| d.join("matrix.json").is_file())
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

pub(super) fn history(paths: &[PathBuf], html: Option<&Path>) -> Result<u8, Failure> {
    let folders = run_folders(paths)?;
    if folders.is_empty() {
        let given: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(usage(anyhow::anyhow!(
            "no run folders (with matrix.json) in {}",
            given.join(", ")
        )));
    }
    let mut entries = Vec::new();
    for f in &folders {
        let results = read_run(f)?;
        let label = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        entries.push(results::HistoryEntry { label, results });
    }
    entries.sort_by(|a, b| {
        a.results
            .environment
            .started_at
            .cmp(&b.results.environment.started_at)
    });
    let (headers, rows) = results::history_table(&entries);
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(std::iter::once("cell".to_owned()).chain(headers.iter().cloned()));
    for (key, values) in &rows {
        table.add_row(std::iter::once(key.to_string()).chain(values.iter().cloned()));
    }
    println!("{table}");
    let html_path = html.map(Path::to_path_buf).unwrap_or_else(|| {
        let base = if paths[0].is_dir() {
            paths[0].clone()
        } else {
            PathBuf::from(".")
        };
        base.join("history.html")
    });
    let page = results::history_html(&entries);
    results::write_atomically(&html_path, page.as_bytes()).context("writing history.html")?;
    println!("history: {}", html_path.display());
    Ok(0)
}
