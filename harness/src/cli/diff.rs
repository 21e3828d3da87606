//! `harness diff`: compare two runs, optionally measuring the flagged cells again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::environment::{BinaryArgs, resolve_binaries};
use super::{Failure, default_jobs, load_scenarios, read_run, report_outcomes};

#[derive(Debug, Args)]
pub(super) struct DiffArgs {
    /// The earlier run folder (or matrix.json): the accepted baseline.
    old: PathBuf,
    /// The later run folder (or matrix.json).
    new: PathBuf,
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
    #[command(flatten)]
    binaries: BinaryArgs,
}

pub(super) async fn diff_runs(args: DiffArgs) -> Result<u8, Failure> {
    let (mut old, mut new) = (read_run(&args.old)?, read_run(&args.new)?);
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
        };
        let new_side = crate::confirm::Side {
            dir: folder(&args.new),
            scenarios: load_scenarios(&args.scenarios)?,
            binaries: resolve_binaries(&args.binaries),
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
                binaries: resolve_binaries(&b),
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
    if args.new.is_dir() {
        write_comparison(&d, &args.old, &args.new);
    }
    Ok(report_outcomes(&new, Some(&d), &problems))
}

/// Writes `comparison.html` into the new run's folder (next to its `matrix.html`).
pub(super) fn write_comparison(d: &results::Diff, old: &Path, new_dir: &Path) {
    let page = d.render_html(&old.display().to_string(), &new_dir.display().to_string());
    match results::write_atomically(&new_dir.join("comparison.html"), page.as_bytes()) {
        Ok(()) => println!("comparison: {}", new_dir.join("comparison.html").display()),
        Err(e) => eprintln!("warning: could not write comparison.html: {e}"),
    }
}
