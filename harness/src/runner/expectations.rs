//! Checking a finished cell against what its scenario expects, and against the expectation
//! every cell has from its trust mode: the page in every headline step of every trial, or —
//! where nothing accepts the certificate — the page in none.

use model::TrustMode;
use results::{CellResult, CellStatus};

use super::Cell;

/// Checks the expectations of a measured cell in every trial: first the page (every cell
/// expects it, or with trust `none` expects it nowhere), then the scenario's own that apply.
pub(super) fn check_expectations(result: &mut CellResult, cell: &Cell) {
    if result.status != CellStatus::Measured {
        return;
    }
    result.expectations.push(match cell.scenario.file.trust {
        TrustMode::None => no_page_expectation(result),
        _ => page_expectation(result),
    });
    for e in cell
        .scenario
        .file
        .expect
        .iter()
        .filter(|e| e.applies(cell.target.name(), cell.browser, cell.tls))
    {
        result.expectations.push(results::ExpectationCheck {
            rule: e.rule(),
            reason: e.reason.clone(),
            broken: broken_by(e, result),
        });
    }
}

/// The page in every headline step of every trial. A trust mode accepts the certificate, so a
/// trial whose steps never reach the page (a click-through that used up its budget, say) is a
/// finding, and its cell is not clean even when the other trials' numbers look fine.
fn page_expectation(result: &CellResult) -> results::ExpectationCheck {
    let trials = result.trials.len();
    let broken = if result.headline.is_empty() {
        Some(format!("no step showed the page in any of {trials} trials"))
    } else {
        result.headline.iter().find_map(|h| {
            let without: Vec<String> = result
                .trials
                .iter()
                .filter(|t| t.steps.get(h.step).is_none_or(|s| !s.page_shown))
                .map(|t| {
                    let shown = t.steps.get(h.step).map_or("nothing", |s| s.shown.as_str());
                    format!("trial {} showed {shown}", t.index)
                })
                .collect();
            (!without.is_empty()).then(|| {
                format!(
                    "step {} ({}): {} of {trials} trials showed the page; {}",
                    h.step + 1,
                    h.action,
                    trials - without.len(),
                    without.join(", ")
                )
            })
        })
    };
    results::ExpectationCheck {
        rule: "every trial shows the page".into(),
        reason:
            "the trust mode accepts the certificate, so every headline step must reach the page"
                .into(),
        broken,
    }
}

/// Trust `none`: nothing accepts the certificate, so the warning page is the end state (DESIGN)
/// and a step that shows the page is a finding — the browser took an untrusted certificate.
fn no_page_expectation(result: &CellResult) -> results::ExpectationCheck {
    let shown: Vec<String> = result
        .trials
        .iter()
        .flat_map(|t| {
            t.steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.page_shown)
                .map(move |(i, s)| format!("trial {} step {} ({})", t.index, i + 1, s.action))
        })
        .collect();
    results::ExpectationCheck {
        rule: "no trial shows the page".into(),
        reason:
            "nothing accepts the certificate (trust `none`), so the warning page is the end state"
                .into(),
        broken: (!shown.is_empty()).then(|| format!("the page was shown: {}", shown.join(", "))),
    }
}

/// What breaks `e` in the cell's trials, if anything: the first trial that does.
fn broken_by(e: &crate::scenario::Expectation, result: &CellResult) -> Option<String> {
    let on_retries = e.max_retries.is_some() || e.min_retries.is_some();
    if on_retries && result.headline.is_empty() {
        return Some("no step showed the page".to_owned());
    }
    for t in &result.trials {
        if on_retries {
            for h in &result.headline {
                // A step without the page breaks the page expectation, not this one.
                let Some(r) = t
                    .steps
                    .get(h.step)
                    .filter(|s| s.page_shown)
                    .and_then(|s| s.retries)
                else {
                    continue;
                };
                if e.max_retries.is_some_and(|m| r > m) || e.min_retries.is_some_and(|m| r < m) {
                    return Some(format!(
                        "trial {} step {} ({}) had {r} retries",
                        t.index,
                        h.step + 1,
                        h.action
                    ));
                }
            }
        }
        if let Some(m) = e.max_failed {
            let failed = t.failed_handshakes();
            if failed > m {
                let per_step: Vec<String> = t
                    .steps_and_teardown()
                    .filter(|s| s.failed_handshakes > 0)
                    .map(|s| format!("{} {}", s.failed_handshakes, s.action))
                    .collect();
                return Some(format!(
                    "trial {} had {failed} failed handshakes ({})",
                    t.index,
                    per_step.join(", ")
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use model::{Cause, ConnectionRecord, Outcome, TlsVersion};
    use results::{StepWindow, TrialResult, attribute};

    use super::*;
    use crate::browser::BrowserKind;
    use crate::scenario::Scenario;

    fn record(id: u64, outcome: Outcome) -> ConnectionRecord {
        model::testing::record(id, id, outcome)
    }

    /// A measured `report-close`-like cell with `expect` from scenario text, one trial per
    /// entry of `trials`: per step whether it showed the page and its outcomes, then the
    /// teardown's outcomes.
    /// Per step: whether it showed the page, and its connections' outcomes.
    type Steps<'a> = &'a [(bool, &'a [Outcome])];

    fn checked(expect: &str, trials: &[(Steps<'_>, &[Outcome])]) -> CellResult {
        checked_with(
            "trust = \"click-through\"\nsteps = [\"visit\", \"proceed\"]",
            expect,
            trials,
        )
    }

    /// [`checked`] with its own `trust` and `steps` lines (`how`).
    fn checked_with(how: &str, expect: &str, trials: &[(Steps<'_>, &[Outcome])]) -> CellResult {
        let text = format!(
            "description = \"d\"\ncert = \"self-signed\"\nconnection = \"close\"\n{how}\n{expect}"
        );
        let scenario = Scenario::parse(Path::new("scenarios/x.toml"), &text).expect("valid");
        let cell = Cell {
            scenario,
            target: crate::target::builtin(backends::BackendName::Rustls),
            browser: BrowserKind::Chromium,
            label: None,
            tls: TlsVersion::Tls13,
            repeat: trials.len() as u32,
        };
        let mut result = CellResult::new(cell.key(), "self-signed", "click-through", "close");
        for (n, (steps, teardown)) in trials.iter().enumerate() {
            let mut records = Vec::new();
            let mut windows = Vec::new();
            for (i, (page, outcomes)) in steps.iter().enumerate() {
                let start = 1000 * i as u64;
                windows.push(StepWindow {
                    action: cell.scenario.file.steps[i].into(),
                    shown: if *page {
                        "page".into()
                    } else {
                        "warning ERR_CERT_AUTHORITY_INVALID".into()
                    },
                    page_shown: *page,
                    started_at_us: start,
                    settled_at_us: start + 900,
                    settle_capped: false,
                });
                for (j, o) in outcomes.iter().enumerate() {
                    records.push(record_at(
                        records.len() as u64 + 1,
                        start + j as u64,
                        o.clone(),
                    ));
                }
            }
            for o in teardown.iter() {
                records.push(record_at(records.len() as u64 + 1, 5000, o.clone()));
            }
            let a = attribute(&records, &windows, 6000);
            result.trials.push(TrialResult {
                index: n + 1,
                error: None,
                log_dir: String::new(),
                steps: a.steps,
                unattributed: Vec::new(),
                teardown: Some(a.teardown),
                wall_ms: 0,
                client_log: None,
                client_log_problem: None,
                browser_peak_rss_kib: None,
                confirmation: false,
                capture: None,
                timings: None,
            });
        }
        result.summarise();
        check_expectations(&mut result, &cell);
        result
    }

    fn record_at(id: u64, at: u64, outcome: Outcome) -> ConnectionRecord {
        ConnectionRecord {
            accepted_at_us: at,
            ..record(id, outcome)
        }
    }

    #[test]
    fn a_trial_without_the_page_breaks_the_page_expectation_and_only_that() {
        let alert = || Outcome::Rejected {
            cause: Cause::alert(2, 46),
        };
        let ok = Outcome::Established { requests: 1 };
        let page: &[(bool, &[Outcome])] = &[(false, &[alert()]), (true, &[alert(), ok.clone()])];
        let no_page: &[(bool, &[Outcome])] = &[(false, &[alert()]), (false, &[alert(), alert()])];
        let c = checked(
            "[[expect]]\nmin-retries = 1\nreason = \"r\"\n",
            &[(page, &[]), (no_page, &[]), (page, &[])],
        );
        let page_check = &c.expectations[0];
        assert_eq!(page_check.rule, "every trial shows the page");
        assert_eq!(
            page_check.broken.as_deref(),
            Some(
                "step 2 (proceed): 2 of 3 trials showed the page; trial 2 showed warning ERR_CERT_AUTHORITY_INVALID"
            )
        );
        assert_eq!(
            c.expectations[1].broken, None,
            "retries are judged where the page was shown"
        );
        let fine = checked("", &[(page, &[]), (page, &[])]);
        assert_eq!(fine.expectations.len(), 1);
        assert_eq!(fine.expectations[0].broken, None);
    }

    #[test]
    fn with_trust_none_the_page_is_expected_nowhere() {
        let alert = || Outcome::Rejected {
            cause: Cause::alert(2, 46),
        };
        let warning: &[(bool, &[Outcome])] = &[(false, &[alert()]), (false, &[alert()])];
        let page: &[(bool, &[Outcome])] = &[(false, &[alert()]), (true, &[alert()])];
        let none = "trust = \"none\"\nsteps = [\"visit\", \"revisit\"]";
        let clean = checked_with(none, "", &[(warning, &[]), (warning, &[])]);
        assert_eq!(clean.expectations.len(), 1);
        assert_eq!(clean.expectations[0].rule, "no trial shows the page");
        assert_eq!(clean.expectations[0].broken, None);
        let shown = checked_with(none, "", &[(warning, &[]), (page, &[])]);
        assert_eq!(
            shown.expectations[0].broken.as_deref(),
            Some("the page was shown: trial 2 step 2 (revisit)")
        );
    }

    #[test]
    fn max_failed_counts_every_step_and_the_teardown() {
        let ok = Outcome::Established { requests: 1 };
        let ok = std::slice::from_ref(&ok);
        let clean: &[(bool, &[Outcome])] = &[(true, ok), (true, ok)];
        let expect = "[[expect]]\nmax-failed = 0\nreason = \"no handshake can fail\"\n";
        let holds = checked(expect, &[(clean, &[Outcome::Idle])]);
        assert_eq!(
            holds.expectations[1].rule,
            "failed handshakes ≤ 0 per trial"
        );
        assert_eq!(holds.expectations[1].broken, None);
        let reset = Outcome::Rejected {
            cause: Cause::Reset,
        };
        let broken = checked(expect, &[(clean, &[]), (clean, &[reset])]);
        assert_eq!(
            broken.expectations[1].broken.as_deref(),
            Some("trial 2 had 1 failed handshakes (1 teardown)")
        );
        assert_eq!(
            broken
                .headline
                .iter()
                .map(|h| h.failed_handshakes.max)
                .max(),
            Some(0),
            "the teardown is never in a headline"
        );
    }
}
