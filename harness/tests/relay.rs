//! The recording relay changes nothing it measures (issue 15): one run measures every built-in
//! backend directly and through the relay, on the shipped click-through scenario of the
//! original report, with both browsers and both TLS versions. Per cell, the relay's headline
//! medians agree with the direct ones within the spread between repeats, and the relay's
//! record of every connection agrees with the server's own record of it.
//!
//! A real browser run (`scripts/setup.sh` installs both browsers and drivers): 72 trials.

use results::{CellStatus, RunResults};

mod common;
use common::shipped;

const REPEAT: &str = "3";

#[test]
fn through_the_relay_every_cell_measures_what_it_measures_directly() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let output = shipped(
        &run,
        &["--matrix", "report-close", "--repeat", REPEAT, "--relay", "both"],
    )
    .output()
    .expect("harness runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{text}");
    let r = RunResults::read(&run).expect("matrix.json");
    let relayed: Vec<_> = r
        .cells
        .iter()
        .filter(|c| c.key.backend.ends_with("+relay"))
        .collect();
    // 3 backends × 2 browsers × 2 TLS versions.
    assert_eq!(relayed.len(), 12, "{text}");
    for relay in relayed {
        let backend = relay.key.backend.trim_end_matches("+relay");
        let direct = r
            .cells
            .iter()
            .find(|c| {
                c.key.backend == backend
                    && c.key.browser == relay.key.browser
                    && c.key.tls == relay.key.tls
                    && c.key.scenario == relay.key.scenario
            })
            .expect("the direct twin");
        assert!(
            matches!(relay.status, CellStatus::Measured) && matches!(direct.status, CellStatus::Measured),
            "{}: {:?} / {:?}",
            relay.key,
            relay.status,
            direct.status
        );
        assert_eq!(relay.headline.len(), direct.headline.len(), "{}", relay.key);
        for (d, v) in direct.headline.iter().zip(&relay.headline) {
            assert_eq!(d.trials_without_page, v.trials_without_page, "{}", relay.key);
            let (Some(d), Some(v)) = (d.retries, v.retries) else {
                panic!("{}: no retries", relay.key);
            };
            let spread = (d.max - d.min).max(v.max - v.min);
            assert!(
                d.median.abs_diff(v.median) <= spread,
                "{}: median {} directly, {} through the relay, spread between repeats {spread}\n{text}",
                relay.key,
                d.median,
                v.median
            );
        }
    }

    let acc = harness::target::relay::accuracy::accuracy(&run).expect("accuracy");
    let (c, s) = (acc.connections_total(), acc.retries_total());
    println!("{acc}");
    assert!(c.total > 0 && acc.unmatched.is_empty(), "{acc}");
    assert!(c.percent() >= 99.0, "{acc}");
    assert_eq!(s.agreed, s.total, "every step's retries agree\n{acc}");
}
