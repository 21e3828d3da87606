//! Attributing the server's connection records to the steps of a trial (DESIGN.md).

use backends::{ConnectionRecord, Outcome};

use crate::StepResult;

/// What the harness knows about a step before attribution.
#[derive(Clone, Debug)]
pub struct StepWindow {
    /// `visit`, `proceed`, `revisit`.
    pub action: String,
    /// What the browser showed.
    pub shown: String,
    /// Whether it was the server's page.
    pub page_shown: bool,
    /// Step start, µs since the Unix epoch.
    pub started_at_us: u64,
    /// Step settled, µs since the Unix epoch.
    pub settled_at_us: u64,
}

/// Assigns each record to the step whose window (start ..= settled) contains its accept time.
/// Returns the per-step results and the ids of records that fell in no window.
pub fn attribute(
    records: &[ConnectionRecord],
    windows: &[StepWindow],
) -> (Vec<StepResult>, Vec<u64>) {
    let mut steps: Vec<StepResult> = windows
        .iter()
        .map(|w| StepResult {
            action: w.action.clone(),
            shown: w.shown.clone(),
            page_shown: w.page_shown,
            started_at_us: w.started_at_us,
            settled_at_us: w.settled_at_us,
            failed_handshakes: 0,
            retries: None,
            page_on_reused_connection: false,
            idle: 0,
            established: 0,
            requests: 0,
            alerts: Vec::new(),
            sequence: Vec::new(),
            connections: Vec::new(),
            failed_by_cause: Default::default(),
        })
        .collect();
    let mut unattributed = Vec::new();
    let mut sorted: Vec<&ConnectionRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.accepted_at_us, r.id));
    for record in sorted {
        let at = record.accepted_at_us;
        let Some(step) = windows
            .iter()
            .position(|w| (w.started_at_us..=w.settled_at_us).contains(&at))
        else {
            unattributed.push(record.id);
            continue;
        };
        let s = &mut steps[step];
        match &record.outcome {
            Outcome::Established { requests } => {
                if s.established == 0 {
                    s.retries = Some(s.failed_handshakes);
                }
                s.established += 1;
                s.requests += requests;
            }
            Outcome::Idle => s.idle += 1,
            Outcome::Rejected { cause } | Outcome::RejectedAfterHandshake { cause } => {
                s.failed_handshakes += 1;
                if let backends::Cause::Alert { description, .. } = cause {
                    s.alerts.push(description.clone());
                }
            }
        }
        s.sequence.push(record.outcome.short());
        s.connections.push(record.clone());
    }
    for s in &mut steps {
        // The page came over a connection opened earlier (keep-alive reuse): no handshake was
        // needed, so every failure of the step counts as paid before the page.
        if s.page_shown && s.established == 0 {
            s.retries = Some(s.failed_handshakes);
            s.page_on_reused_connection = true;
        }
    }
    (steps, unattributed)
}

#[cfg(test)]
mod tests {
    use backends::{Cause, SessionInfo};

    use super::*;

    fn record(id: u64, at: u64, outcome: Outcome) -> ConnectionRecord {
        ConnectionRecord {
            id,
            accepted_at_us: at,
            closed_at_us: at + 1,
            client: "127.0.0.1:1".into(),
            client_port: 1,
            local: "127.0.0.1:2".into(),
            outcome,
            session: SessionInfo::default(),
            backend_code: None,
            queue_wait_ms: None,
            queue_wait_unknown: None,
        }
    }

    fn window(action: &str, start: u64, end: u64, page: bool) -> StepWindow {
        StepWindow {
            action: action.into(),
            shown: String::new(),
            page_shown: page,
            started_at_us: start,
            settled_at_us: end,
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
        let (steps, unattributed) = attribute(
            &records,
            &[
                window("visit", 0, 100, false),
                window("proceed", 100, 200, true),
            ],
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
        assert_eq!(unattributed, [8]);
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
        let (steps, _) = attribute(
            &records,
            &[
                window("visit", 0, 100, true),
                window("revisit", 100, 200, true),
            ],
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
