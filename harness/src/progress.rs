//! Progress on long runs: a bar on a terminal, plain lines otherwise (CI logs).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use results::{CellKey, CellResult, CellStatus, TrialResult};

/// Reports trials and cells as they finish.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar when stderr is a terminal and not CI; plain lines otherwise.
    pub fn new() -> Self {
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bar = interactive.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trials, ETA {eta} {wide_msg}")
                    .expect("valid template"),
            );
            bar
        });
        Self { bar }
    }

    fn line(&self, s: String) {
        match &self.bar {
            Some(bar) => bar.println(s),
            None => eprintln!("{s}"),
        }
    }

    pub(crate) fn start(&self, trials: u64, cells: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(trials);
        }
        self.line(format!("running {cells} cells, {trials} trials"));
    }

    pub(crate) fn trial_done(&self, key: &CellKey, trial: &TrialResult) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(key.to_string());
        }
        if let Some(e) = &trial.error {
            self.line(format!("  trial {} of {key} failed: {e}", trial.index));
        }
    }

    pub(crate) fn cell_done(&self, cell: &CellResult, skipped_trials: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(skipped_trials);
        }
        let what = match &cell.status {
            CellStatus::Measured => {
                let h: Vec<String> = cell
                    .headline
                    .iter()
                    .map(|h| {
                        format!(
                            "{} {}",
                            h.action,
                            h.retries
                                .map(|r| r.to_string())
                                .unwrap_or_else(|| "no page".into())
                        )
                    })
                    .collect();
                format!(
                    "retries: {}",
                    if h.is_empty() {
                        "no page shown".into()
                    } else {
                        h.join(", ")
                    }
                )
            }
            CellStatus::Unsupported { reason } => format!("unsupported: {reason}"),
            CellStatus::Error { reason, .. } => format!("error: {reason}"),
        };
        self.line(format!("{}: {what}", cell.key));
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
