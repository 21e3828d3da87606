//! `harness diff`: compare two runs, optionally measuring the flagged cells again; or two
//! labelled builds of one run (`--labels stable,candidate`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::environment::{BinaryArgs, resolve_binaries};
use super::{
    Failure, default_jobs, load_scenarios, read_run, report_outcomes, report_outcomes_of, usage,
};
use crate::browser::Label;

#[derive(Debug, Args)]
pub(super) struct DiffArgs {
    /// The earlier run folder (or matrix.json): the accepted baseline. With `--labels`: the
    /// run whose two builds are compared.
    old: PathBuf,
    /// The later run folder (or matrix.json); not with `--labels`.
    #[arg(required_unless_present = "labels", conflicts_with = "labels")]
    new: Option<PathBuf>,
    /// Compare two labelled builds of one run (`--chromium stable=… --chromium
    /// candidate=…`), OLD,NEW: every cell under the second label against the same cell under
    /// the first, by the same rule as two runs. Prints one table of every cell under both
    /// labels naming the cells that differ; exit 3 on a change.
    #[arg(long, value_name = "OLD,NEW", conflicts_with = "confirm")]
    labels: Option<String>,
    /// Measure the flagged cells of NEW again (NEW's folder gets the trials) and diff with all
    /// trials; only confirmed changes exit 3. Needs the browsers (and, for NEW's build, the
    /// same binary flags as NEW's run).
    #[arg(long)]
    confirm: bool,
    /// Trials per flagged cell and side when confirming.
    #[arg(long, default_value_t = crate::confirm::DEFAULT_CONFIRM_TRIALS)]
    confirm_trials: u32,
    /// Both builds are available: measure OLD's flagged cells again too (OLD's folder gets the
    /// trials), with `--old-scenarios` and `--old-chromium-binary`/`--old-chromedriver`.
    #[arg(long, requires = "confirm")]
    confirm_old: bool,
    /// Folder of scenario files for NEW's confirmation.
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
    /// Folder of scenario files for OLD's confirmation (default: `--scenarios`).
    #[arg(long, requires = "confirm_old")]
    old_scenarios: Option<PathBuf>,
    /// OLD's Chromium (default: NEW's).
    #[arg(long, requires = "confirm_old")]
    old_chromium_binary: Option<PathBuf>,
    /// OLD's chromedriver (default: NEW's).
    #[arg(long, requires = "confirm_old")]
    old_chromedriver: Option<PathBuf>,
    /// Trials run at once when confirming.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// A step is settled once no new connection arrived for this many milliseconds (at least
    /// 1; 0 would end every step at once and count its late connections — preconnects, the
    /// favicon — in the next step or the teardown). A step still busy after 10 s is cut off
    /// and flagged.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    quiet_ms: u64,
    /// With `--confirm`: every measured trial starts its browser from an empty profile (see
    /// `harness --help`).
    #[arg(long)]
    fresh_profiles: bool,
    #[command(flatten)]
    binaries: BinaryArgs,
}

pub(super) async fn diff_runs(args: DiffArgs) -> Result<u8, Failure> {
    if let Some(labels) = &args.labels {
        return diff_labels(&args.old, labels);
    }
    let new_path = args
        .new
        .clone()
        .expect("clap requires NEW without --labels");
    let (mut old, mut new) = (read_run(&args.old)?, read_run(&new_path)?);
    let mut problems = Vec::new();
    let d = if args.confirm {
        // Absolute, as for a run: Firefox needs an absolute profile path.
        let folder = |p: &Path| {
            let dir = if p.is_dir() {
                p.to_owned()
            } else {
                p.parent().unwrap_or(Path::new(".")).to_owned()
            };
            std::path::absolute(&dir).unwrap_or(dir)
        };
        let settings = crate::confirm::Settings {
            trials: args.confirm_trials.max(1),
            jobs: args.jobs.max(1),
            quiet: Duration::from_millis(args.quiet_ms),
            rule: results::Rule::default(),
            profile_templates: !args.fresh_profiles,
        };
        let new_side = crate::confirm::Side {
            dir: folder(&new_path),
            scenarios: load_scenarios(&args.scenarios)?,
            binaries: resolve_binaries(&args.binaries).map_err(usage)?,
        };
        let old_side = if args.confirm_old {
            let mut b = args.binaries.clone();
            if args.old_chromium_binary.is_some() {
                b.chromium_binary = args.old_chromium_binary.clone();
            }
            if args.old_chromedriver.is_some() {
                b.chromedriver = args.old_chromedriver.clone();
            }
            Some(crate::confirm::Side {
                dir: folder(&args.old),
                scenarios: load_scenarios(
                    args.old_scenarios.as_deref().unwrap_or(&args.scenarios),
                )?,
                binaries: resolve_binaries(&b).map_err(usage)?,
            })
        } else {
            None
        };
        let c =
            crate::confirm::confirm(&mut old, old_side.as_ref(), &mut new, &new_side, &settings)
                .await;
        problems = c.problems;
        c.diff
    } else {
        results::diff(&old, &new)
    };
    print!("{}", d.render());
    if new_path.is_dir() {
        write_comparison(&d, &args.old, &new_path);
    }
    Ok(report_outcomes(&new, Some(&d), &problems))
}

/// `harness diff RUN --labels OLD,NEW`: each cell of the build labelled NEW against the same
/// cell of the build labelled OLD, as a diff of two runs ([`results::RunResults::label_view`]).
/// One table shows every cell under both labels and what the rule says about it; the usual
/// report (trial values of flagged cells, versions, the rule) and the outcomes follow.
fn diff_labels(run_path: &Path, labels: &str) -> Result<u8, Failure> {
    let (old_label, new_label) = parse_label_pair(labels).map_err(usage)?;
    let run = read_run(run_path)?;
    let present = run.labels();
    for l in [&old_label, &new_label] {
        if !present.contains(l.as_str()) {
            let known = if present.is_empty() {
                "it has no labelled builds (measure them with `--chromium LABEL=BROWSER,DRIVER`)"
                    .to_owned()
            } else {
                format!(
                    "its labels: {}",
                    present.iter().copied().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(usage(anyhow::anyhow!(
                "no cell of {} is labelled `{l}`; {known}",
                run_path.display()
            )));
        }
    }
    let (old, new) = (
        run.label_view(old_label.as_str()),
        run.label_view(new_label.as_str()),
    );
    let d = results::diff(&old, &new);
    println!("{new_label} vs {old_label} in {}:", run_path.display());
    println!("{}", label_table(&old, &new, &d, &old_label, &new_label));
    print!("{}", d.render());
    let dir = if run_path.is_dir() {
        Some(run_path.to_owned())
    } else {
        run_path.parent().map(Path::to_owned)
    };
    if let Some(dir) = dir {
        let file = dir.join(format!("comparison-{old_label}-{new_label}.html"));
        let page = d.render_html(
            &format!("{} @{old_label}", run_path.display()),
            &format!("{} @{new_label}", run_path.display()),
        );
        match results::write_atomically(&file, page.as_bytes()) {
            Ok(()) => println!("comparison: {}", file.display()),
            Err(e) => eprintln!("warning: could not write {}: {e}", file.display()),
        }
    }
    // The whole run decides completeness (a cell in error under either label fails it).
    let build = |label: &str| {
        let suffix = format!("@{label}");
        let names: Vec<String> = run
            .environment
            .browsers
            .iter()
            .filter(|(name, _)| name.ends_with(&suffix))
            .map(|(name, v)| match &v.browser {
                Some(version) => format!("{name} {version}"),
                None => name.clone(),
            })
            .collect();
        names.join(", ")
    };
    let builds = format!(
        "{} vs {}",
        build(new_label.as_str()),
        build(old_label.as_str())
    );
    Ok(report_outcomes_of(&run, Some(&d), &[], Some(&builds)))
}

/// `stable,candidate` → the two labels, checked.
fn parse_label_pair(text: &str) -> anyhow::Result<(Label, Label)> {
    let parts: Vec<&str> = text.split(',').collect();
    let [old, new] = parts[..] else {
        anyhow::bail!("--labels takes two labels, OLD,NEW (e.g. `stable,candidate`), not `{text}`");
    };
    let (old, new) = (
        Label::parse(old).map_err(anyhow::Error::msg)?,
        Label::parse(new).map_err(anyhow::Error::msg)?,
    );
    if old == new {
        anyhow::bail!("--labels {text} compares `{old}` with itself; name two different builds");
    }
    Ok((old, new))
}

/// One row per cell measured under either label: its headline under each, and the verdict —
/// `changed`, `flagged`, `added`/`removed` (under one label only), or `same`.
fn label_table(
    old: &results::RunResults,
    new: &results::RunResults,
    d: &results::Diff,
    old_label: &Label,
    new_label: &Label,
) -> comfy_table::Table {
    let entries = [
        results::HistoryEntry {
            label: old_label.to_string(),
            results: old.clone(),
        },
        results::HistoryEntry {
            label: new_label.to_string(),
            results: new.clone(),
        },
    ];
    let (headers, rows) = results::history_table(&entries);
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(
        std::iter::once("cell".to_owned())
            .chain(headers)
            .chain(std::iter::once(format!("{new_label} vs {old_label}"))),
    );
    for (key, values) in rows {
        let verdict = if d.changed.iter().any(|c| c.key == key) {
            "changed"
        } else if d.added.contains(&key) {
            "only under the new label"
        } else if d.removed.contains(&key) {
            "only under the old label"
        } else {
            match d.tested.iter().find(|t| t.key == key).map(|t| t.verdict) {
                Some(results::Verdict::Flagged) => "flagged, not confirmed",
                Some(results::Verdict::NotConfirmed) => "not confirmed (noise)",
                Some(results::Verdict::Confirmed) => "changed",
                None => "no change",
            }
        };
        table.add_row(
            std::iter::once(key.to_string())
                .chain(values)
                .chain(std::iter::once(verdict.to_owned())),
        );
    }
    table
}

/// Writes `comparison.html` into the new run's folder (next to its `matrix.html`).
pub(super) fn write_comparison(d: &results::Diff, old: &Path, new_dir: &Path) {
    let page = d.render_html(&old.display().to_string(), &new_dir.display().to_string());
    match results::write_atomically(&new_dir.join("comparison.html"), page.as_bytes()) {
        Ok(()) => println!("comparison: {}", new_dir.join("comparison.html").display()),
        Err(e) => eprintln!("warning: could not write comparison.html: {e}"),
    }
}
