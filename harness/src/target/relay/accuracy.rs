//! How far the relay's records agree with the server's own, on the built-in backends that know
//! the truth: every connection of every `+relay` cell of a run, joined by the relay's upstream
//! port (the client port in the server's record), compared by outcome and cause kind.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use model::{Cause, ConnectionRecord, Outcome};
use results::{RunResults, StepWindow, attribute};

use super::super::{RELAY_SUFFIX, SERVER_RECORDS_FILE};

/// Agreement counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Compared.
    pub total: u64,
    /// Equal.
    pub agreed: u64,
}

impl Tally {
    fn add(&mut self, agreed: bool) {
        self.total += 1;
        self.agreed += u64::from(agreed);
    }

    /// Percent agreed (100 when nothing was compared).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            self.agreed as f64 * 100.0 / self.total as f64
        }
    }
}

/// The relay's accuracy over one run.
#[derive(Clone, Debug, Default)]
pub struct Accuracy {
    /// Per (TLS version, the server's outcome kind): connections whose relay record has the
    /// same outcome kind and cause kind.
    pub connections: BTreeMap<(String, String), Tally>,
    /// Per TLS version: steps (of trials that ran) whose retries, counted from the relay's
    /// records, equal those counted from the server's records in the same windows.
    pub retries: BTreeMap<String, Tally>,
    /// Relay records with no server record of the same connection, and the reverse.
    pub unmatched: Vec<String>,
    /// Disagreements, for a person to look at.
    pub disagreements: Vec<String>,
}

impl Accuracy {
    /// All connections together.
    pub fn connections_total(&self) -> Tally {
        self.connections
            .values()
            .fold(Tally::default(), |a, t| Tally {
                total: a.total + t.total,
                agreed: a.agreed + t.agreed,
            })
    }

    /// All steps together.
    pub fn retries_total(&self) -> Tally {
        self.retries.values().fold(Tally::default(), |a, t| Tally {
            total: a.total + t.total,
            agreed: a.agreed + t.agreed,
        })
    }
}

/// The outcome kind, cause kind and request count, as compared: an encrypted alert agrees
/// with any alert (its description is what the relay cannot read, and says so).
fn kind(o: &Outcome) -> String {
    let cause = |c: &Cause| match c {
        Cause::Alert { .. } | Cause::EncryptedAlert => "alert",
        Cause::Reset => "reset",
        Cause::Eof => "eof",
        Cause::Timeout => "timeout",
        Cause::Error { .. } => "error",
        Cause::ServerFault { .. } => "server-fault",
    };
    match o {
        Outcome::Established { requests } => format!("established ({requests} requests)"),
        Outcome::Idle => "idle".into(),
        Outcome::Rejected { cause: c } => format!("rejected {}", cause(c)),
        Outcome::RejectedAfterHandshake { cause: c } => {
            format!("rejected-after-handshake {}", cause(c))
        }
        Outcome::ErrorAfterHandshake { cause: c } => format!("error-after-handshake {}", cause(c)),
    }
}

fn read_jsonl(path: &Path) -> anyhow::Result<Vec<ConnectionRecord>> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("a record in {}", path.display())))
        .collect()
}

/// Compares every relayed trial of the run in `run_dir`.
pub fn accuracy(run_dir: &Path) -> anyhow::Result<Accuracy> {
    let run = RunResults::read(run_dir)?;
    let dir = if run_dir.is_dir() {
        run_dir.to_owned()
    } else {
        run_dir.parent().unwrap_or(Path::new(".")).to_owned()
    };
    let mut acc = Accuracy::default();
    for cell in run
        .cells
        .iter()
        .filter(|c| c.key.backend.ends_with(RELAY_SUFFIX))
    {
        let tls = cell.key.tls.clone();
        for trial in cell.trials.iter().filter(|t| t.error.is_none()) {
            let trial_dir = dir.join(&trial.log_dir);
            let relay = read_jsonl(&trial_dir.join("connections.jsonl"))?;
            let server = read_jsonl(&trial_dir.join(SERVER_RECORDS_FILE))?;
            let mut matched = vec![false; server.len()];
            let mut paired: Vec<ConnectionRecord> = Vec::new();
            for r in &relay {
                let up = r.relay.as_ref().and_then(|o| o.upstream_port);
                let found = server
                    .iter()
                    .enumerate()
                    .find(|(i, s)| !matched[*i] && Some(s.client_port) == up);
                let Some((i, s)) = found else {
                    acc.unmatched.push(format!(
                        "{} trial {}: relay record {} has no server record",
                        cell.key.backend, trial.index, r.id
                    ));
                    continue;
                };
                matched[i] = true;
                let (rk, sk) = (kind(&r.outcome), kind(&s.outcome));
                let agreed = rk == sk;
                acc.connections
                    .entry((tls.clone(), kind_outcome_only(&s.outcome)))
                    .or_default()
                    .add(agreed);
                if !agreed {
                    acc.disagreements.push(format!(
                        "{} / {} / {} / TLS {} trial {} connection {}: relay `{rk}`, server `{sk}`",
                        cell.key.scenario,
                        cell.key.backend,
                        cell.key.browser,
                        tls,
                        trial.index,
                        r.id
                    ));
                }
                // The server's record, at the relay's accept time, for the step windows.
                paired.push(ConnectionRecord {
                    accepted_at_us: r.accepted_at_us,
                    ..s.clone()
                });
            }
            for (i, s) in server.iter().enumerate().filter(|(i, _)| !matched[*i]) {
                let _ = i;
                acc.unmatched.push(format!(
                    "{} trial {}: server record {} has no relay record",
                    cell.key.backend, trial.index, s.id
                ));
            }
            // Retries per step, counted from each side's records in the same windows.
            let windows: Vec<StepWindow> = trial
                .steps
                .iter()
                .map(|s| StepWindow {
                    action: s.action,
                    shown: s.shown.clone(),
                    page_shown: s.page_shown,
                    started_at_us: s.started_at_us,
                    settled_at_us: s.settled_at_us,
                    settle_capped: s.settle_capped,
                })
                .collect();
            let end = relay.iter().map(|r| r.closed_at_us).max().unwrap_or(0) + 1;
            let from_relay = attribute(&relay, &windows, end);
            let from_server = attribute(&paired, &windows, end);
            for (a, b) in from_relay.steps.iter().zip(&from_server.steps) {
                let agreed = a.retries == b.retries && a.failed_handshakes == b.failed_handshakes;
                acc.retries.entry(tls.clone()).or_default().add(agreed);
                if !agreed {
                    acc.disagreements.push(format!(
                        "{} / {} / {} / TLS {} trial {} step {:?}: relay retries {:?} ({} failed), server {:?} ({} failed)",
                        cell.key.scenario,
                        cell.key.backend,
                        cell.key.browser,
                        tls,
                        trial.index,
                        a.action,
                        a.retries,
                        a.failed_handshakes,
                        b.retries,
                        b.failed_handshakes
                    ));
                }
            }
        }
    }
    Ok(acc)
}

fn kind_outcome_only(o: &Outcome) -> String {
    match o {
        Outcome::Established { .. } => "established",
        Outcome::Idle => "idle",
        Outcome::Rejected { .. } => "rejected",
        Outcome::RejectedAfterHandshake { .. } => "rejected-after-handshake",
        Outcome::ErrorAfterHandshake { .. } => "error-after-handshake",
    }
    .into()
}

impl fmt::Display for Accuracy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| TLS | server's outcome | connections | relay agrees |\n|---|---|---:|---:|"
        )?;
        for ((tls, outcome), t) in &self.connections {
            writeln!(
                f,
                "| {tls} | {outcome} | {} | {} ({:.1}%) |",
                t.total,
                t.agreed,
                t.percent()
            )?;
        }
        let c = self.connections_total();
        writeln!(
            f,
            "| all | all | {} | {} ({:.1}%) |",
            c.total,
            c.agreed,
            c.percent()
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| TLS | steps | retries and failed handshakes agree |\n|---|---:|---:|"
        )?;
        for (tls, t) in &self.retries {
            writeln!(
                f,
                "| {tls} | {} | {} ({:.1}%) |",
                t.total,
                t.agreed,
                t.percent()
            )?;
        }
        if !self.unmatched.is_empty() {
            writeln!(f, "\nunmatched records:")?;
            for u in &self.unmatched {
                writeln!(f, "- {u}")?;
            }
        }
        if !self.disagreements.is_empty() {
            writeln!(f, "\ndisagreements:")?;
            for d in &self.disagreements {
                writeln!(f, "- {d}")?;
            }
        }
        Ok(())
    }
}
