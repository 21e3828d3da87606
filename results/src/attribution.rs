//! Attributing the server's connection records to the steps of a trial (DESIGN.md).

use model::{ConnectionRecord, Outcome, StepAction};

use crate::StepResult;

/// What the harness knows about a step before attribution.
#[derive(Clone, Debug)]
pub struct StepWindow {
    /// `visit`, `proceed`, `revisit`.
    pub action: StepAction,
    /// What the browser showed.
    pub shown: String,
    /// Whether it was the server's page.
    pub page_shown: bool,
    /// Step start, µs since the Unix epoch.
    pub started_at_us: u64,
    /// Step settled, µs since the Unix epoch.
    pub settled_at_us: u64,
    /// Connections were still arriving when the settle cap ended the step.
    pub settle_capped: bool,
}

/// Every record of a trial, in a step or in the teardown.
#[derive(Clone, Debug, PartialEq)]
pub struct Attributed {
    /// Per step, in order.
    pub steps: Vec<StepResult>,
    /// Connections accepted after the last step settled (while the session closed and the
    /// server stopped).
    pub teardown: StepResult,
}

/// Assigns each record to a step by its accept time. The windows are made contiguous so that
/// no record can fall between them: a step owns everything from its start to the next step's
/// start (a connection that arrives after a step settled but before the next began was caused
/// by that step or by nothing we did), the first step also owns anything before it began (none
/// is expected: the server is new and only this trial knows its port), and the `teardown`
/// pseudo-step owns everything after the last step settled, up to `stopped_at_us`.
pub fn attribute(
    records: &[ConnectionRecord],
    windows: &[StepWindow],
    stopped_at_us: u64,
) -> Attributed {
    let empty =
        |action, shown: &str, page_shown, started_at_us, settled_at_us, settle_capped| StepResult {
            action,
            shown: shown.to_owned(),
            page_shown,
            started_at_us,
            settled_at_us,
            settle_capped,
            failed_handshakes: 0,
            retries: None,
            page_on_reused_connection: false,
            idle: 0,
            established: 0,
            errors_after_handshake: 0,
            requests: 0,
            alerts: Vec::new(),
            sequence: Vec::new(),
            connections: Vec::new(),
            failed_by_cause: Default::default(),
        };
    let mut steps: Vec<StepResult> = windows
        .iter()
        .map(|w| {
            empty(
                w.action,
                &w.shown,
                w.page_shown,
                w.started_at_us,
                w.settled_at_us,
                w.settle_capped,
            )
        })
        .collect();
    let teardown_from = windows.last().map_or(0, |w| w.settled_at_us);
    let mut teardown = empty(
        StepAction::Teardown,
        "",
        false,
        teardown_from,
        stopped_at_us.max(teardown_from),
        false,
    );
    let mut sorted: Vec<&ConnectionRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.accepted_at_us, r.id));
    for record in sorted {
        let at = record.accepted_at_us;
        let s = if windows.is_empty() || at > teardown_from {
            &mut teardown
        } else {
            // The last window whose start is not after the record; the first one otherwise.
            let i = windows
                .iter()
                .rposition(|w| w.started_at_us <= at)
                .unwrap_or(0);
            &mut steps[i]
        };
        count(s, record);
    }
    for s in &mut steps {
        // The page came over a connection opened earlier (keep-alive reuse): no handshake was
        // needed, so every failure of the step counts as paid before the page.
        if s.page_shown && s.established == 0 {
            s.retries = Some(s.failed_handshakes);
            s.page_on_reused_connection = true;
        }
    }
    Attributed { steps, teardown }
}

fn count(s: &mut StepResult, record: &ConnectionRecord) {
    match &record.outcome {
        Outcome::Established { requests } => {
            if s.established == 0 {
                s.retries = Some(s.failed_handshakes);
            }
            s.established += 1;
            s.requests += requests;
        }
        Outcome::Idle => s.idle += 1,
        Outcome::ErrorAfterHandshake { .. } => s.errors_after_handshake += 1,
        Outcome::Rejected { cause } | Outcome::RejectedAfterHandshake { cause } => {
            s.failed_handshakes += 1;
            if let model::Cause::Alert { description, .. } = cause {
                s.alerts.push(description.clone());
            }
        }
    }
    s.sequence.push(record.outcome.short());
    s.connections.push(record.clone());
}

#[cfg(test)]
mod tests {
    use model::Cause;
    use model::testing::record;

    use super::*;

    fn window(action: StepAction, start: u64, end: u64, page: bool) -> StepWindow {
        StepWindow {
            action,
            shown: String::new(),
            page_shown: page,
            started_at_us: start,
            settled_at_us: end,
            settle_capped: false,
        }
    }

    #[test]
    fn retries_count_failures_before_the_first_established() {
        let alert = || Outcome::Rejected {
            cause: Cause::alert(2, 46),
        };
        let records = vec![
            record(1, 10, alert()),
            record(2, 11, alert()),
            record(3, 110, alert()),
            record(4, 111, alert()),
            record(5, 112, Outcome::Established { requests: 1 }),
            record(6, 113, alert()),
            record(7, 114, Outcome::Idle),
            record(8, 500, alert()),
        ];
        let Attributed { steps, teardown } = attribute(
            &records,
            &[
                window(StepAction::Visit, 0, 100, false),
                window(StepAction::Proceed, 100, 200, true),
            ],
            600,
        );
        assert_eq!(steps[0].failed_handshakes, 2);
        assert_eq!(
            steps[0].retries, None,
            "no established connection in the visit step"
        );
        assert_eq!(steps[1].failed_handshakes, 3);
        assert_eq!(steps[1].retries, Some(2));
        assert_eq!(steps[1].idle, 1);
        assert_eq!(
            steps[1].sequence,
            ["alert(46)", "alert(46)", "ok(1)", "alert(46)", "idle"]
        );
        assert_eq!(steps[1].alerts, ["certificate_unknown"; 3]);
        assert_eq!(teardown.action, StepAction::Teardown);
        assert_eq!(teardown.sequence, ["alert(46)"], "after the last settle");
        assert_eq!((teardown.started_at_us, teardown.settled_at_us), (200, 600));
        assert_eq!(teardown.retries, None, "never a headline");
    }

    #[test]
    fn every_record_lands_in_a_step_or_the_teardown() {
        // Gaps between windows, a record before the first step, one exactly on each edge, and
        // some after the last settle: none may be left out.
        let windows = [
            window(StepAction::Visit, 100, 200, false),
            window(StepAction::Proceed, 250, 300, true),
            window(StepAction::Revisit, 400, 450, true),
        ];
        let times = [
            0, 99, 100, 150, 200, 201, 249, 250, 300, 301, 399, 400, 450, 451, 9_999,
        ];
        let records: Vec<ConnectionRecord> = times
            .iter()
            .enumerate()
            .map(|(i, &at)| record(i as u64 + 1, at, Outcome::Idle))
            .collect();
        let a = attribute(&records, &windows, 10_000);
        let ids = |s: &StepResult| {
            s.connections
                .iter()
                .map(|r| r.accepted_at_us)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a.steps[0]), [0, 99, 100, 150, 200, 201, 249]);
        assert_eq!(ids(&a.steps[1]), [250, 300, 301, 399]);
        assert_eq!(ids(&a.steps[2]), [400, 450]);
        assert_eq!(ids(&a.teardown), [451, 9_999]);
        let no_steps = attribute(&records, &[], 10_000);
        assert_eq!(no_steps.teardown.connections.len(), records.len());
    }

    #[test]
    fn an_error_after_the_handshake_is_neither_idle_nor_a_failed_handshake() {
        let records = vec![record(
            1,
            10,
            Outcome::ErrorAfterHandshake {
                cause: Cause::Error {
                    message: "Broken pipe".into(),
                },
            },
        )];
        let a = attribute(&records, &[window(StepAction::Visit, 0, 100, false)], 200);
        let s = &a.steps[0];
        assert_eq!(
            (s.idle, s.failed_handshakes, s.errors_after_handshake),
            (0, 0, 1)
        );
        assert_eq!(s.sequence, ["late-error"]);
    }

    #[test]
    fn a_page_over_a_reused_connection_has_the_step_failures_as_retries() {
        let records = vec![
            record(1, 10, Outcome::Established { requests: 2 }),
            record(
                2,
                110,
                Outcome::Rejected {
                    cause: Cause::alert(2, 46),
                },
            ),
        ];
        let Attributed { steps, .. } = attribute(
            &records,
            &[
                window(StepAction::Visit, 0, 100, true),
                window(StepAction::Revisit, 100, 200, true),
            ],
            300,
        );
        assert_eq!(
            (steps[1].retries, steps[1].page_on_reused_connection),
            (Some(1), true)
        );
        assert_eq!(
            (steps[0].retries, steps[0].page_on_reused_connection),
            (Some(0), false)
        );
    }
}
