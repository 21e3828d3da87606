//! Where a run's time went: per browser build, the median of each part of a trial and its
//! share of all trials' wall time, from the trials' `timings` (schema 6), and the harness's own
//! CPU time. `harness --timings` prints it after a run, `harness timings RUN` for any run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{RunResults, TrialResult, TrialTimings};

/// One part of a trial, read from its timings.
type Part = fn(&TrialTimings) -> u64;

/// The parts of a trial, in the order it spends them, as the summary names them.
const PARTS: [(&str, Part); 13] = [
    ("certificate", |t| t.certificate_ms),
    ("server start", |t| t.server_start_ms),
    ("profile", |t| t.profile_ms),
    ("driver start", |t| t.driver_start_ms),
    ("session start", |t| t.session_start_ms),
    ("steps: action", |t| {
        t.steps.iter().map(|s| s.action_ms).sum()
    }),
    ("steps: settle wait", |t| {
        t.steps.iter().map(|s| s.settle_ms).sum()
    }),
    ("session close", |t| t.session_close_ms),
    ("server stop", |t| t.server_stop_ms),
    ("capture", |t| t.capture_ms),
    ("browser log", |t| t.client_log_ms),
    ("compression", |t| t.compress_ms),
    ("browser log CPU (within the two above)", |t| {
        t.client_log_cpu_ms
    }),
];

/// The summary as text, or a line saying why there is none (a run older than schema 6).
pub fn timings_summary(run: &RunResults) -> String {
    let mut by_build: BTreeMap<String, Vec<(&TrialResult, &TrialTimings)>> = BTreeMap::new();
    for cell in &run.cells {
        for trial in cell.trials.iter().filter(|t| t.error.is_none()) {
            if let Some(t) = &trial.timings {
                by_build
                    .entry(cell.key.browser_column())
                    .or_default()
                    .push((trial, t));
            }
        }
    }
    let mut out = String::new();
    if by_build.is_empty() {
        out.push_str(
            "no trial of this run says where its time went (timings are written since schema 6)\n",
        );
        return out;
    }
    let _ = writeln!(
        out,
        "where a trial's time went: median per trial, and the part's share of all those trials' wall time"
    );
    let builds: Vec<&String> = by_build.keys().collect();
    let _ = write!(out, "{:<40}", "part");
    for b in &builds {
        let _ = write!(
            out,
            "{:>24}",
            format!("{b} ({} trials)", by_build[*b].len())
        );
    }
    out.push('\n');
    let row = |out: &mut String, name: &str, f: &dyn Fn(&TrialResult, &TrialTimings) -> u64| {
        let _ = write!(out, "{name:<40}");
        for b in &builds {
            let trials = &by_build[*b];
            let mut values: Vec<u64> = trials.iter().map(|(r, t)| f(r, t)).collect();
            let total: u64 = values.iter().sum();
            let wall: u64 = trials.iter().map(|(r, _)| r.wall_ms).sum();
            values.sort_unstable();
            let median = values[values.len() / 2];
            let share = if wall == 0 {
                0.0
            } else {
                100.0 * total as f64 / wall as f64
            };
            let _ = write!(out, "{:>24}", format!("{median} ms {share:5.1} %"));
        }
        out.push('\n');
    };
    for (name, part) in PARTS {
        row(&mut out, name, &|_, t| part(t));
    }
    row(&mut out, "other (between the parts)", &|r, t| {
        let counted: u64 = PARTS[..PARTS.len() - 1].iter().map(|(_, p)| p(t)).sum();
        r.wall_ms.saturating_sub(counted)
    });
    row(&mut out, "trial", &|r, _| r.wall_ms);
    if let Some(cpu) = &run.environment.harness_cpu {
        let busy = cpu.user_ms + cpu.system_ms;
        let _ = writeln!(
            out,
            "harness process: {:.1} s CPU ({:.1} s user, {:.1} s system) over {:.1} s, {:.0} % of one core; reaped children {:.1} s",
            busy as f64 / 1000.0,
            cpu.user_ms as f64 / 1000.0,
            cpu.system_ms as f64 / 1000.0,
            cpu.wall_ms as f64 / 1000.0,
            100.0 * busy as f64 / cpu.wall_ms.max(1) as f64,
            cpu.children_ms as f64 / 1000.0,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CellKey, CellResult, CpuTime, Environment, StepTiming};

    fn trial(index: usize, wall_ms: u64, session_start_ms: u64, settle_ms: u64) -> TrialResult {
        TrialResult {
            index,
            error: None,
            log_dir: String::new(),
            steps: Vec::new(),
            unattributed: Vec::new(),
            teardown: None,
            wall_ms,
            client_log: None,
            client_log_problem: None,
            browser_peak_rss_kib: None,
            confirmation: false,
            capture: None,
            timings: Some(TrialTimings {
                session_start_ms,
                steps: vec![
                    StepTiming {
                        action_ms: 100,
                        settle_ms,
                    };
                    2
                ],
                ..TrialTimings::default()
            }),
        }
    }

    fn run(trials: Vec<TrialResult>) -> RunResults {
        let key = CellKey {
            scenario: "s".into(),
            backend: "rustls".into(),
            browser: "firefox".into(),
            label: None,
            tls: "1.3".into(),
        };
        let mut cell = CellResult::new(key, "self-signed", "click-through", "close");
        cell.trials = trials;
        RunResults {
            schema_version: crate::SCHEMA_VERSION,
            environment: Environment {
                harness_cpu: Some(CpuTime {
                    wall_ms: 10_000,
                    user_ms: 1_500,
                    system_ms: 500,
                    children_ms: 30_000,
                }),
                ..Environment::default()
            },
            cells: vec![cell],
            cells_requested: 1,
        }
    }

    #[test]
    fn each_part_s_median_and_share_of_the_wall_time() {
        let text = timings_summary(&run(vec![
            trial(1, 4000, 1000, 500),
            trial(2, 6000, 3000, 500),
            trial(3, 5000, 2000, 500),
        ]));
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .split_whitespace()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
        };
        // 6000 ms of session start in 15000 ms of trials.
        assert_eq!(line("session start"), ["%", "40.0", "ms", "2000"]);
        assert_eq!(line("steps: settle wait"), ["%", "20.0", "ms", "1000"]);
        assert_eq!(line("trial"), ["%", "100.0", "ms", "5000"]);
        // 15000 − 6000 − 600 − 3000 counted.
        assert_eq!(line("other"), ["%", "36.0", "ms", "1800"]);
        assert!(text.contains("firefox (3 trials)"), "{text}");
        assert!(
            text.contains("harness process: 2.0 s CPU (1.5 s user, 0.5 s system) over 10.0 s, 20 % of one core; reaped children 30.0 s"),
            "{text}"
        );
    }

    #[test]
    fn a_run_without_timings_says_so() {
        let mut old = trial(1, 4000, 1000, 500);
        old.timings = None;
        assert!(timings_summary(&run(vec![old])).starts_with("no trial of this run says"));
    }
}
