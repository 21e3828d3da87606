//! One trial: a fresh target and a fresh browser, the scenario's steps, each settled, then
//! the records attributed to the steps.

use std::path::Path;
use std::time::{Duration, Instant};

use certs::CertBundle;
use model::{Cause, ConnectionRecord, InferredField, Outcome, Step};
use results::{ClientLog, StepTiming, StepWindow, TrialResult, TrialTimings, attribute};

use super::client_log::client_log;
use super::{Cell, RunPlan, now_us};
use crate::browser::{BrowserSession, SessionPlan, Shown};
use crate::target::{RunningTarget, TrialServer};
use crate::timing::{Laps, ms};

/// Runs one trial; never panics or returns early without a result.
pub(super) async fn run_trial(plan: &RunPlan, cell: &Cell, index: usize) -> TrialResult {
    let dir = cell.dir(&plan.out).join(format!("trial-{index}"));
    let rel = dir
        .strip_prefix(&plan.out)
        .unwrap_or(&dir)
        .display()
        .to_string();
    let started = Instant::now();
    let mut trial = TrialResult {
        index,
        error: None,
        log_dir: rel,
        steps: Vec::new(),
        unattributed: Vec::new(),
        teardown: None,
        wall_ms: 0,
        browser_peak_rss_kib: None,
        client_log: None,
        client_log_problem: None,
        confirmation: false,
        capture: None,
        timings: None,
    };
    // A hung browser must not hang the run: bound the whole trial.
    let budget =
        Duration::from_secs(60) + Duration::from_secs(20) * cell.scenario.file.steps.len() as u32;
    match tokio::time::timeout(budget, trial_body(plan, cell, &dir)).await {
        Ok(Ok(out)) => {
            trial.steps = out.steps;
            trial.teardown = Some(out.teardown);
            trial.browser_peak_rss_kib = out.peak_rss_kib;
            trial.client_log = out.client_log;
            trial.client_log_problem = out.client_log_problem;
            trial.timings = Some(out.timings);
            trial.apply_client_causes();
        }
        Ok(Err(e)) => trial.error = Some(format!("{e:#}")),
        Err(_) => {
            trial.error = Some(format!(
                "trial did not finish within {} s",
                budget.as_secs()
            ))
        }
    }
    if !plan.keep_profiles {
        for sub in ["home", "profile"] {
            let _ = tokio::fs::remove_dir_all(dir.join(sub)).await;
        }
    }
    let capture = dir.join(CAPTURE_FILE);
    if tokio::fs::try_exists(&capture).await.unwrap_or(false) {
        trial.capture = Some(format!("{}/{CAPTURE_FILE}", trial.log_dir));
    }
    trial.wall_ms = started.elapsed().as_millis() as u64;
    trial
}

/// Each trial's packet capture, in its folder.
pub(super) const CAPTURE_FILE: &str = "capture.pcapng";

/// Writes what `recorder` holds as `capture.pcapng` in `dir`, atomically (a temporary file
/// renamed into place), so a person never opens half a file.
/// Returns the file's size.
fn write_capture(dir: &Path, recorder: &capture::Recorder) -> std::io::Result<u64> {
    let temporary = dir.join(format!("{CAPTURE_FILE}.tmp"));
    let mut bytes = Vec::new();
    capture::write_pcapng(&mut bytes, &recorder.snapshot())?;
    std::fs::write(&temporary, &bytes)?;
    std::fs::rename(&temporary, dir.join(CAPTURE_FILE))?;
    Ok(bytes.len() as u64)
}

/// What a trial that ran produced.
struct TrialOutput {
    steps: Vec<results::StepResult>,
    teardown: results::StepResult,
    peak_rss_kib: Option<u64>,
    client_log: Option<ClientLog>,
    client_log_problem: Option<String>,
    timings: TrialTimings,
}

async fn trial_body(plan: &RunPlan, cell: &Cell, dir: &Path) -> anyhow::Result<TrialOutput> {
    use anyhow::Context;
    let f = &cell.scenario.file;
    let mut timings = TrialTimings::default();
    let mut laps = Laps::start();
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut bundle = CertBundle::generate(f.cert)?;
    let mut files = bundle.write_to(&dir.join("certs"))?;
    timings.certificate_ms = laps.lap_ms();
    let server = cell.target.start(&TrialServer {
        scenario: f,
        cert: &bundle,
        tls: cell.tls,
        port: plan.server_port,
        dir,
    })?;
    timings.server_start_ms = laps.lap_ms();
    let url = server.url(f.host);
    let steering = server.steering(f.host);
    // A target that serves its own certificate: pin and trust that one, not the trial's.
    if let Some(served) = server.served_certificate() {
        bundle.leaf_spki_sha256 = served.spki_sha256;
        if let Some(anchor) = served.trust_anchor_pem {
            bundle.trust_anchor_pem = anchor;
            bundle.trust_anchor_is_ca = true;
        }
        files = bundle.write_to(&dir.join("certs"))?;
    }
    let binaries = cell.binaries(plan).map_err(|e| anyhow::anyhow!("{e}"))?;
    let template = match &plan.profile_templates {
        Some(templates) => templates
            .get(&cell.build(), binaries)
            .await
            .map_err(|e| anyhow::anyhow!(e))?,
        None => None,
    };
    // The first trials of a build wait here while its template is made.
    let template_ms = laps.lap_ms();
    let session_plan = SessionPlan {
        kind: cell.browser,
        binaries,
        trust: f.trust,
        cert: &bundle,
        cert_files: &files,
        knobs: &f.knobs,
        dir,
        steering: steering.as_ref(),
        tls_pin: server.browser_tls(),
        any_page: cell.target.own_certificate(),
        profile_template: template.as_deref(),
    };

    let mut windows = Vec::new();
    let mut peak = None;
    let outcome: anyhow::Result<()> = async {
        let session = BrowserSession::start(&session_plan).await?;
        let started = session.start_timings();
        (
            timings.profile_ms,
            timings.driver_start_ms,
            timings.session_start_ms,
        ) = (
            template_ms + ms(started.profile),
            ms(started.driver),
            ms(started.session),
        );
        laps.lap();
        let steps = async {
            for step in &f.steps {
                let started_at_us = now_us();
                let shown = match step {
                    Step::Visit | Step::Revisit => session.visit(&url).await?,
                    Step::Proceed => session.proceed().await?,
                };
                let action_ms = laps.lap_ms();
                let settled = settle(server.as_ref(), plan.quiet).await;
                timings.steps.push(StepTiming {
                    action_ms,
                    settle_ms: laps.lap_ms(),
                });
                windows.push(StepWindow {
                    action: (*step).into(),
                    page_shown: shown == Shown::Page,
                    shown: match &shown {
                        Shown::Page => "page".into(),
                        Shown::Warning { code } => format!("warning {code}"),
                        Shown::Other { detail } => detail.clone(),
                    },
                    started_at_us,
                    settled_at_us: now_us(),
                    settle_capped: settled == Settled::Capped,
                });
            }
            anyhow::Ok(())
        }
        .await;
        peak = session.peak_rss_kib();
        laps.lap();
        session.close().await;
        timings.session_close_ms = laps.lap_ms();
        steps
    }
    .await;
    laps.lap();
    let recorder = server.capture();
    let stopped = tokio::task::spawn_blocking(move || server.stop())
        .await
        .context("stopping the server")?;
    timings.server_stop_ms = laps.lap_ms();
    if let Some(recorder) = recorder {
        // The browser's own key log, where it wrote one, beside the server's.
        if let Ok(keys) = tokio::fs::read_to_string(dir.join(crate::browser::BROWSER_KEY_LOG)).await
        {
            for line in keys
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                recorder.key_log_line(line);
            }
        }
        let dir = dir.to_owned();
        let writing = Instant::now();
        let bytes = tokio::task::spawn_blocking(move || write_capture(&dir, &recorder))
            .await
            .context("writing the capture")?
            .with_context(|| format!("writing {CAPTURE_FILE}"))?;
        // The figures behind capturing by default (README, "Packet captures").
        tracing::debug!(
            bytes,
            write_us = writing.elapsed().as_micros() as u64,
            "capture written"
        );
    }
    timings.capture_ms = laps.lap_ms();
    let stopped_at_us = now_us();
    // Whatever was recorded is written, even when some connection was not: the file is where
    // a person looks to see what happened.
    let records = match &stopped {
        Ok(records) => records.clone(),
        Err(unrecorded) => unrecorded.records.clone(),
    };
    let jsonl: String = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("record serialises") + "\n")
        .collect();
    tokio::fs::write(dir.join("connections.jsonl"), jsonl)
        .await
        .context("writing connections.jsonl")?;
    outcome?;
    // A connection without a record has an unknown fate: counting the others would be a lie.
    stopped.map_err(|e| {
        anyhow::anyhow!(
            "the {} server: {e}; see connections.jsonl",
            cell.target.name()
        )
    })?;
    if let Some(why) = server_fault(cell.target.name(), &records) {
        anyhow::bail!(why);
    }
    laps.lap();
    let (client_log, client_log_problem) =
        match client_log(cell.browser, dir, &plan.out, records.clone()).await {
            Ok((log, cost)) => {
                timings.compress_ms = ms(cost.compress);
                timings.client_log_cpu_ms = ms(cost.cpu);
                (log, None)
            }
            Err(problem) => (None, Some(problem)),
        };
    timings.client_log_ms = laps.lap_ms().saturating_sub(timings.compress_ms);
    let mut records = records;
    if let Some(log) = &client_log
        && causes_from_browser_log(&mut records, log) > 0
    {
        let jsonl: String = records
            .iter()
            .map(|r| serde_json::to_string(r).expect("record serialises") + "\n")
            .collect();
        tokio::fs::write(dir.join("connections.jsonl"), jsonl)
            .await
            .context("writing connections.jsonl")?;
    }
    let attributed = attribute(&records, &windows, stopped_at_us);
    Ok(TrialOutput {
        steps: attributed.steps,
        teardown: attributed.teardown,
        peak_rss_kib: peak,
        client_log,
        client_log_problem,
        timings,
    })
}

/// A relay can only infer that an encrypted record was an alert; where the browser's own log
/// names the alert it sent on that connection, that is the authority: the record takes it,
/// and says where it came from. Returns how many records changed.
fn causes_from_browser_log(records: &mut [ConnectionRecord], log: &ClientLog) -> usize {
    let mut changed = 0;
    for r in records.iter_mut() {
        let Some(relay) = r.relay.as_mut() else {
            continue;
        };
        let Some((level, code)) = log
            .connections
            .get(&r.id)
            .and_then(|c| c.alert_sent.as_deref())
            .and_then(parse_alert_sent)
        else {
            continue;
        };
        let cause = match &mut r.outcome {
            Outcome::Rejected { cause } | Outcome::RejectedAfterHandshake { cause }
                if *cause == Cause::EncryptedAlert =>
            {
                cause
            }
            _ => continue,
        };
        *cause = Cause::alert(level, code);
        relay.inferred.retain(|i| i.field != InferredField::Cause);
        relay.cause_from_browser_log = true;
        changed += 1;
    }
    changed
}

/// `fatal certificate_unknown (46)` (as [`results::ClientSide::alert_sent`] writes it) → (2, 46).
fn parse_alert_sent(s: &str) -> Option<(u8, u8)> {
    let level = match s.split_whitespace().next()? {
        "fatal" => 2,
        "warning" => 1,
        _ => return None,
    };
    let code = s.rsplit_once('(')?.1.strip_suffix(')')?.parse().ok()?;
    Some((level, code))
}

/// Why a trial's records cannot be counted, if the server itself failed on a connection: that
/// handshake failed because of us, not the browser.
fn server_fault(target: &str, records: &[ConnectionRecord]) -> Option<String> {
    records.iter().find_map(|r| {
        let fault = r.server_fault()?;
        Some(format!(
            "the {target} server failed on connection {} ({fault}); see connections.jsonl",
            r.id
        ))
    })
}

/// The longest a step waits to settle.
pub const SETTLE_CAP: Duration = Duration::from_secs(10);

/// How a step's wait for quiet ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settled {
    /// `quiet` passed without a new connection and none was waiting.
    Quiet,
    /// [`SETTLE_CAP`] ended the wait while connections were still arriving or waiting.
    Capped,
}

/// Waits until no new connection has reached the server for `quiet` and none is waiting in its
/// accept queue, so that late connections (favicon, preconnects) are attributed to the step that
/// caused them — also when a one-at-a-time server accepts them late. Bounded by `SETTLE_CAP`;
/// a step cut off there is flagged, since later connections of it land in the next window.
async fn settle(server: &dyn RunningTarget, quiet: Duration) -> Settled {
    settle_within(
        || server.last_accept(),
        quiet,
        || server.queued(),
        SETTLE_CAP,
    )
    .await
}

async fn settle_within(
    last_accept: impl Fn() -> Option<Instant>,
    quiet: Duration,
    queued: impl Fn() -> u32,
    cap: Duration,
) -> Settled {
    let start = Instant::now();
    loop {
        let last = last_accept().map(|t| t.max(start)).unwrap_or(start);
        let idle = last.elapsed();
        if idle >= quiet && queued() == 0 {
            return Settled::Quiet;
        }
        if start.elapsed() >= cap {
            return Settled::Capped;
        }
        let wait = if idle < quiet {
            quiet - idle
        } else {
            Duration::from_millis(20)
        };
        tokio::time::sleep(wait.min(cap.saturating_sub(start.elapsed()))).await;
    }
}

#[cfg(test)]
mod tests {
    use model::ServerFault;

    use super::*;

    fn record(id: u64, outcome: Outcome) -> ConnectionRecord {
        model::testing::record(id, id, outcome)
    }

    #[tokio::test]
    async fn a_step_cut_off_by_the_cap_is_flagged_and_a_quiet_one_is_not() {
        let never = || None;
        let quiet = Duration::from_millis(30);
        let cap = Duration::from_millis(200);
        assert_eq!(settle_within(never, quiet, || 0, cap).await, Settled::Quiet);
        // A connection waiting in the accept queue for longer than the cap: still arriving.
        let started = Instant::now();
        assert_eq!(
            settle_within(never, quiet, || 1, cap).await,
            Settled::Capped
        );
        assert!(started.elapsed() >= cap && started.elapsed() < cap * 3);
    }

    #[test]
    fn the_browser_s_own_alert_replaces_the_relay_s_inference() {
        let relayed = |id, outcome| ConnectionRecord {
            relay: Some(model::RelayObservation {
                inferred: vec![model::Inference {
                    field: InferredField::Cause,
                    how: "19 bytes".into(),
                }],
                ..Default::default()
            }),
            ..record(id, outcome)
        };
        let encrypted = Outcome::Rejected {
            cause: Cause::EncryptedAlert,
        };
        let mut records = vec![
            relayed(1, encrypted.clone()),
            relayed(2, encrypted.clone()),
            record(3, encrypted.clone()),
        ];
        let side = |alert: &str| results::ClientSide {
            cause: model::ClientCause::FirstAttempt,
            unknown_reason: None,
            socket_source_id: None,
            evidence: Vec::new(),
            reused_by: 0,
            net_error: Some(-202),
            alert_sent: Some(alert.into()),
            url: None,
        };
        let log = ClientLog {
            source: model::ClientLogSource::ChromiumNetlog,
            file: String::new(),
            truncated: false,
            browser_version: None,
            field_trials: Vec::new(),
            connections: [
                (1, side("fatal certificate_unknown (46)")),
                (3, side("fatal x (46)")),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(causes_from_browser_log(&mut records, &log), 1);
        assert_eq!(
            records[0].outcome,
            Outcome::Rejected {
                cause: Cause::alert(2, 46)
            }
        );
        let relay = records[0].relay.as_ref().unwrap();
        assert!(relay.cause_from_browser_log && relay.inferred.is_empty());
        // No log entry: still inferred. Not a relay's record: never touched.
        assert_eq!(records[1].outcome, encrypted);
        assert_eq!(records[2].outcome, encrypted);
    }

    #[test]
    fn a_server_fault_voids_the_trial_and_a_client_error_does_not() {
        let garbage = Outcome::Rejected {
            cause: Cause::Error {
                message: "decode error".into(),
            },
        };
        let panic = Outcome::Rejected {
            cause: Cause::ServerFault {
                fault: ServerFault::BackendPanicked,
                message: "boom".into(),
            },
        };
        // As files before schema 4 spelled it.
        let old_panic = Outcome::Rejected {
            cause: Cause::Error {
                message: "server fault: backend panicked: boom".into(),
            },
        };
        let ok = Outcome::Established { requests: 1 };
        assert_eq!(
            server_fault(
                "rustls",
                &[record(1, garbage.clone()), record(2, ok.clone())]
            ),
            None
        );
        for panic in [panic, old_panic] {
            let why = server_fault(
                "openssl",
                &[
                    record(1, garbage.clone()),
                    record(2, panic),
                    record(3, ok.clone()),
                ],
            )
            .expect("a fault");
            assert!(
                why.starts_with(
                    "the openssl server failed on connection 2 (server fault: backend panicked: boom)"
                ),
                "{why}"
            );
        }
    }
}
