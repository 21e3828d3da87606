//! Confirmation (`--confirm`): the cells a diff flags on the first pass are measured again with
//! more trials, the new trials are added to the run (marked `confirmation`), and the diff is
//! computed again with all trials. Only what the second diff confirms is a change.
//!
//! The confirmation trials of a run folder live in `confirm-N/` inside it (its own trial
//! folders and a `matrix.json` of just those trials); the run's own `matrix.json` gets them
//! appended to the flagged cells, numbered after the first-pass trials.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use results::{CellKey, CellStatus, Diff, Rule, RunResults, SCHEMA_VERSION};

use crate::progress::Progress;
use crate::runner::{Binaries, RunPlan, cells, run};
use crate::scenario::Scenario;

/// Trials per flagged cell by default. With a 3-trial baseline that cannot be measured again,
/// 3 + 20 new trials make a complete separation reach p = 1 / C(26, 3) = 0.00038, below Holm's
/// first threshold 0.05 / 120 for the whole shipped matrix.
pub const DEFAULT_CONFIRM_TRIALS: u32 = 20;

/// One side to measure again: its run folder and how to run it.
#[derive(Clone, Debug)]
pub struct Side {
    /// The run folder; confirmation trials go into `confirm-N/` inside it.
    pub dir: PathBuf,
    /// Scenarios (the same names as the run's cells).
    pub scenarios: Vec<Scenario>,
    /// Browser binaries of this side's build (with the run's labels, for a labelled run).
    pub binaries: Binaries,
}

/// How to confirm.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Trials per flagged cell and side.
    pub trials: u32,
    /// Trials at once.
    pub jobs: usize,
    /// Settle time of a step.
    pub quiet: Duration,
    /// The change rule.
    pub rule: Rule,
    /// Trials start from their browser's profile template (see `--fresh-profiles`).
    pub profile_templates: bool,
}

/// What confirmation did: the final diff and anything that went wrong on the way.
pub struct Confirmed {
    /// The diff over all trials.
    pub diff: Diff,
    /// Cells measured again.
    pub measured_again: usize,
    /// Problems (a confirmation cell in error, a scenario that is missing, a write that failed).
    pub problems: Vec<String>,
}

/// Diffs `old` against `new`; measures the flagged cells of `new` (and of `old` when `old_side`
/// is given: both builds are available) again and diffs with all trials.
pub async fn confirm(
    old: &mut RunResults,
    old_side: Option<&Side>,
    new: &mut RunResults,
    new_side: &Side,
    settings: &Settings,
) -> Confirmed {
    let first = results::diff_with(old, new, settings.rule);
    let flagged: BTreeSet<CellKey> = first.flagged().into_iter().cloned().collect();
    let mut problems = Vec::new();
    if flagged.is_empty() {
        return Confirmed {
            diff: first,
            measured_again: 0,
            problems,
        };
    }
    eprintln!(
        "confirming {} flagged cells with {} more trials each{}: {}",
        flagged.len(),
        settings.trials,
        if old_side.is_some() {
            " on both sides"
        } else {
            ""
        },
        flagged
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    measure_again(new, new_side, &flagged, settings, &mut problems).await;
    if let Some(side) = old_side {
        measure_again(old, side, &flagged, settings, &mut problems).await;
    }
    Confirmed {
        diff: results::diff_with(old, new, settings.rule),
        measured_again: flagged.len(),
        problems,
    }
}

/// The flagged cells the plan has no cell for, each as a problem: a cell that is not measured
/// again must not pass for one that was and did not change. A missing scenario is reported
/// once, by the caller; the usual other cause is a `--target` server, which confirmation does
/// not start again (it starts the scenarios' own backends).
fn not_measurable(plan: &RunPlan, keys: &BTreeSet<CellKey>, dir: &Path) -> Vec<String> {
    let planned: BTreeSet<CellKey> = cells(plan).iter().map(|c| c.key()).collect();
    keys.iter()
        .filter(|k| !planned.contains(k))
        .filter(|k| plan.scenarios.iter().any(|s| s.name == k.scenario))
        .map(|k| {
            let backend = k
                .backend
                .strip_suffix(crate::target::RELAY_SUFFIX)
                .unwrap_or(&k.backend);
            let why = if backend.parse::<crate::target::TargetName>().is_err() {
                format!(
                    "`{}` is not a backend of the scenarios (a `--target` of the run?), and confirmation starts only theirs; measure it again with the run's `--target` and `--repeat`, then diff",
                    k.backend
                )
            } else {
                "the scenarios in the folder no longer have this backend, browser or TLS version"
                    .to_owned()
            };
            format!(
                "confirmation of {k} in {} was not measured: {why}",
                dir.display()
            )
        })
        .collect()
}

fn free_folder(dir: &Path) -> PathBuf {
    (1..)
        .map(|n| dir.join(format!("confirm-{n}")))
        .find(|p| !p.exists())
        .expect("a free folder name")
}

async fn measure_again(
    results: &mut RunResults,
    side: &Side,
    keys: &BTreeSet<CellKey>,
    settings: &Settings,
    problems: &mut Vec<String>,
) {
    let names: BTreeSet<&str> = keys.iter().map(|k| k.scenario.as_str()).collect();
    for n in &names {
        if !side.scenarios.iter().any(|s| s.name == *n) {
            problems.push(format!(
                "confirmation: scenario {n} is not in the scenarios folder, its flagged cells were not measured again"
            ));
        }
    }
    let out = free_folder(&side.dir);
    let sub_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Err(e) = std::fs::create_dir_all(&out) {
        problems.push(format!(
            "confirmation: cannot create {}: {e}",
            out.display()
        ));
        return;
    }
    let plan = RunPlan {
        scenarios: side
            .scenarios
            .iter()
            .filter(|s| names.contains(s.name.as_str()))
            .cloned()
            .collect(),
        backends: Vec::new(),
        browsers: Vec::new(),
        tls: Vec::new(),
        repeat: Some(settings.trials),
        jobs: settings.jobs.max(1),
        out: out.clone(),
        binaries: side.binaries.clone(),
        quiet: settings.quiet,
        keep_profiles: false,
        server_port: None,
        only: Some(keys.clone()),
        relay: crate::runner::RelayMode::Both,
        external: Vec::new(),
        profile_templates: settings
            .profile_templates
            .then(crate::browser::ProfileTemplates::for_run)
            .flatten(),
    };
    problems.extend(not_measurable(&plan, keys, &side.dir));
    let sub = RunResults {
        schema_version: SCHEMA_VERSION,
        environment: results.environment.clone(),
        cells: Vec::new(),
        cells_requested: 0,
    };
    let progress = Progress::new();
    let sub = run(plan, sub, &progress).await;
    progress.finish();
    for c in sub.cells {
        let Some(cell) = results.cells.iter_mut().find(|x| x.key == c.key) else {
            continue;
        };
        if c.status != CellStatus::Measured {
            let reason = match &c.status {
                CellStatus::Error { reason, .. } | CellStatus::Unsupported { reason } => {
                    reason.clone()
                }
                CellStatus::Measured => String::new(),
            };
            problems.push(format!(
                "confirmation of {} in {} was not measured: {reason}",
                c.key,
                side.dir.display()
            ));
            continue;
        }
        let offset = cell.trials.iter().map(|t| t.index).max().unwrap_or(0);
        for mut t in c.trials {
            t.index += offset;
            t.log_dir = format!("{sub_name}/{}", t.log_dir);
            t.confirmation = true;
            cell.trials.push(t);
        }
        cell.summarise();
    }
    if let Err(e) = results::write_all(results, &side.dir) {
        problems.push(format!(
            "confirmation: could not write {}: {e}",
            side.dir.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(backend: &str, tls: &str) -> CellKey {
        CellKey {
            scenario: "report".into(),
            backend: backend.into(),
            browser: "chromium".into(),
            label: None,
            tls: tls.into(),
        }
    }

    #[test]
    fn a_flagged_cell_the_scenarios_cannot_run_again_is_a_problem_not_a_silent_pass() {
        let scenario = Scenario::parse(
            Path::new("scenarios/report.toml"),
            "description = \"d\"\ncert = \"self-signed\"\ntrust = \"click-through\"\nconnection = \"close\"\nsteps = [\"visit\", \"proceed\"]\nbackends = [\"rustls\"]\ntls = [\"1.3\"]\n",
        )
        .unwrap();
        let plan = RunPlan {
            scenarios: vec![scenario],
            backends: Vec::new(),
            browsers: Vec::new(),
            tls: Vec::new(),
            repeat: Some(1),
            jobs: 1,
            out: PathBuf::from("/nonexistent"),
            binaries: Vec::new(),
            quiet: Duration::from_millis(500),
            keep_profiles: false,
            server_port: None,
            only: None,
            relay: crate::runner::RelayMode::Both,
            external: Vec::new(),
            profile_templates: None,
        };
        let keys: BTreeSet<CellKey> = [
            key("rustls", "1.3"),
            key("rustls+relay", "1.3"),
            key("s_server", "1.3"),
            key("rustls", "1.2"),
            CellKey {
                scenario: "gone".into(),
                ..key("rustls", "1.3")
            },
        ]
        .into();
        let problems = not_measurable(&plan, &keys, Path::new("run"));
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems.iter().any(|p| p.starts_with(
                "confirmation of report / rustls / chromium / TLS 1.2 in run was not measured: the scenarios"
            )),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`s_server` is not a backend of the scenarios")),
            "{problems:#?}"
        );
    }
}
