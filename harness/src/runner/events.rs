//! What the runner tells the rest of the harness while it runs, and the subscribers that act
//! on it.
//!
//! The runner only schedules trials and assembles cells; everything else a run does as it goes
//! (checking expectations, recording the browser's version, showing progress, writing the run
//! folder) is a [`Subscriber`]. They are called in order, so a subscriber sees what the ones
//! before it did to the results: the expectations are checked before the cell is shown or
//! written.

use std::path::PathBuf;

use model::ClientLogSource;
use results::{CellKey, RunResults, TrialResult};

use super::Cell;
use super::expectations::check_expectations;
use crate::progress::Progress;

/// Something that happened in a run.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// Before the first trial.
    Started {
        /// Cells requested.
        cells: usize,
        /// Trials requested, the cells that will not run included.
        trials: u64,
    },
    /// A trial ended (ran or failed); its cell may still be waiting for others.
    TrialFinished {
        /// Its cell.
        cell: &'a CellKey,
        /// The trial.
        trial: &'a TrialResult,
    },
    /// A cell is complete and summarised, and is in the results at `index`; `skipped_trials`
    /// of it never ran (an unsupported or unavailable combination).
    CellFinished {
        /// Where the cell is in `results.cells`.
        index: usize,
        /// What the cell was asked to measure.
        cell: &'a Cell,
        /// Trials the cell requested but did not run.
        skipped_trials: u64,
    },
    /// Every cell is finished.
    Finished,
}

/// Acts on the runner's events. It may amend the results (a subscriber later in the list sees
/// the change), but never removes a cell.
pub trait Subscriber {
    /// Called for every event, in order.
    fn on(&mut self, event: &RunEvent<'_>, results: &mut RunResults);
}

/// Checks a finished cell against its expectations.
pub struct ExpectationChecker;

impl Subscriber for ExpectationChecker {
    fn on(&mut self, event: &RunEvent<'_>, results: &mut RunResults) {
        if let RunEvent::CellFinished { index, cell, .. } = event {
            check_expectations(&mut results.cells[*index], cell);
        }
    }
}

/// Records the Chromium version and field trials of the run from the first NetLog.
pub struct BrowserVersionRecorder;

impl Subscriber for BrowserVersionRecorder {
    fn on(&mut self, event: &RunEvent<'_>, results: &mut RunResults) {
        if let RunEvent::TrialFinished { trial, .. } = event
            && results.environment.chromium_netlog.is_none()
            && let Some(log) = trial
                .client_log
                .as_ref()
                .filter(|l| l.source == ClientLogSource::ChromiumNetlog)
        {
            results.environment.chromium_netlog = Some(results::NetLogInfo {
                browser_version: log.browser_version.clone(),
                field_trials: log.field_trials.clone(),
            });
        }
    }
}

/// Shows the run's progress.
pub struct ProgressDisplay<'a>(pub &'a Progress);

impl Subscriber for ProgressDisplay<'_> {
    fn on(&mut self, event: &RunEvent<'_>, results: &mut RunResults) {
        match event {
            RunEvent::Started { cells, trials } => self.0.start(*trials, *cells),
            RunEvent::TrialFinished { cell, trial } => self.0.trial_done(cell, trial),
            RunEvent::CellFinished {
                index,
                skipped_trials,
                ..
            } => self.0.cell_done(&results.cells[*index], *skipped_trials),
            RunEvent::Finished => {}
        }
    }
}

/// Writes the run folder after every finished cell, so an interrupted run keeps what it
/// measured. The cells are kept in the order they were requested, whatever order their trials
/// finished in.
pub struct IncrementalWriter {
    /// The run folder.
    pub out: PathBuf,
}

impl Subscriber for IncrementalWriter {
    fn on(&mut self, event: &RunEvent<'_>, results: &mut RunResults) {
        if matches!(event, RunEvent::CellFinished { .. }) {
            write(results, &self.out);
        }
    }
}

fn write(results: &RunResults, out: &std::path::Path) {
    if let Err(e) = results::write_all(results, out) {
        tracing::error!("could not write results: {e:#}");
        eprintln!("error: could not write results to {}: {e}", out.display());
    }
}

/// The subscribers of a run from the command line, in the order they must see each event.
pub(super) fn standard(progress: &Progress, out: PathBuf) -> Vec<Box<dyn Subscriber + '_>> {
    vec![
        Box::new(ExpectationChecker),
        Box::new(BrowserVersionRecorder),
        Box::new(ProgressDisplay(progress)),
        Box::new(IncrementalWriter { out }),
    ]
}
