//! The recording relay changes nothing it measures (issue 15): one run measures every built-in
//! backend directly and through the relay, on the shipped click-through scenario of the
//! original report, with both browsers and both TLS versions. Per cell, the relay's headline
//! medians agree with the direct ones within the spread between repeats — the largest
//! difference between two repeats of one direct cell of that browser in the same run — and the
//! relay's record of every connection agrees with the server's own record of it.
//!
//! A real browser run (`scripts/setup.sh` installs both browsers and drivers): 48 trials.

use results::{CellStatus, RunResults};

mod common;
use common::shipped;

const REPEAT: &str = "2";

#[test]
fn through_the_relay_every_cell_measures_what_it_measures_directly() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let output = shipped(
        &run,
        &[
            "--matrix",
            "report-close",
            "--backend",
            "rustls,openssl,mbedtls",
            "--browser",
            "chromium,firefox",
            "--repeat",
            REPEAT,
            "--relay",
            "both",
        ],
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
    // How far repeats of one cell differ without the relay, per browser: what "agree" allows.
    let spread = |browser: &str| -> u32 {
        r.cells
            .iter()
            .filter(|c| c.key.browser == browser && !c.key.backend.ends_with("+relay"))
            .flat_map(|c| &c.headline)
            .filter_map(|h| h.retries)
            .map(|s| s.max - s.min)
            .max()
            .unwrap_or(0)
    };
    for relay in &relayed {
        let backend = relay.key.backend.trim_end_matches("+relay");
        let direct = twin(&r, relay, backend);
        assert!(
            matches!(relay.status, CellStatus::Measured)
                && matches!(direct.status, CellStatus::Measured),
            "{}: {:?} / {:?}",
            relay.key,
            relay.status,
            direct.status
        );
        assert_eq!(relay.headline.len(), direct.headline.len(), "{}", relay.key);
        for (d, v) in direct.headline.iter().zip(&relay.headline) {
            assert_eq!(
                d.trials_without_page, v.trials_without_page,
                "{}",
                relay.key
            );
        }
    }
    // Per browser, TLS version and headline step, every backend's trials pooled (Chromium's
    // retries vary by up to 3 between two trials of one cell, so two trials a cell say little
    // alone): the medians directly and through the relay agree within the spread between
    // repeats.
    for browser in ["chromium", "firefox"] {
        let allowed = spread(browser);
        for tls in ["1.2", "1.3"] {
            let pooled = |relayed: bool, step: usize| -> Vec<u32> {
                r.cells
                    .iter()
                    .filter(|c| {
                        c.key.browser == browser
                            && c.key.tls == tls
                            && c.key.backend.ends_with("+relay") == relayed
                    })
                    .flat_map(|c| {
                        let index = c.headline[step].step;
                        c.trials.iter().filter_map(move |t| t.steps[index].retries)
                    })
                    .collect()
            };
            let steps = relayed[0].headline.len();
            for step in 0..steps {
                let (d, v) = (median(pooled(false, step)), median(pooled(true, step)));
                assert!(
                    d.abs_diff(v) <= allowed,
                    "{browser} TLS {tls} headline step {step}: median {d} directly, {v} through the relay, while repeats of one {browser} cell differ by up to {allowed} in this run\n{text}"
                );
            }
        }
    }

    let acc = harness::target::relay::accuracy::accuracy(&run).expect("accuracy");
    let (c, s) = (acc.connections_total(), acc.retries_total());
    println!("{acc}");
    assert!(c.total > 0 && acc.unmatched.is_empty(), "{acc}");
    assert!(c.percent() >= 99.0, "{acc}");
    assert_eq!(s.agreed, s.total, "every step's retries agree\n{acc}");
}

/// The lower middle value, as the matrix reports medians.
fn median(mut v: Vec<u32>) -> u32 {
    assert!(!v.is_empty());
    v.sort_unstable();
    v[(v.len() - 1) / 2]
}

/// The direct cell measuring what `relay` measures through the relay.
fn twin<'a>(
    r: &'a RunResults,
    relay: &results::CellResult,
    backend: &str,
) -> &'a results::CellResult {
    r.cells
        .iter()
        .find(|c| {
            c.key.backend == backend
                && c.key.browser == relay.key.browser
                && c.key.tls == relay.key.tls
                && c.key.scenario == relay.key.scenario
        })
        .expect("the direct twin")
}

/// `--target` against a server started by hand, as the README shows it: `openssl s_server
/// -www` on loopback with its own self-signed certificate. Chromium clicks through (failed
/// handshakes, then the page) and pins the TLS version; every record comes from the relay.
#[test]
fn a_server_started_by_hand_is_measured_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl req");
    assert!(made.status.success(), "{made:?}");
    let port = harness::process::free_port().unwrap();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let run = dir.path().join("run");
    let url = format!("https://127.0.0.1:{port}/");
    let output = shipped(
        &run,
        &[
            "--matrix",
            "report-close,control-spki-pin",
            "--target",
            &url,
            "--target-name",
            "s_server",
            "--browser",
            "chromium",
            "--repeat",
            "1",
        ],
    )
    .output()
    .expect("harness runs");
    let _ = server.kill();
    let _ = server.wait();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{text}");
    let r = RunResults::read(&run).expect("matrix.json");
    assert_eq!(r.cells.len(), 4, "{text}");
    for c in &r.cells {
        assert_eq!(c.key.backend, "s_server");
        assert!(
            matches!(c.status, CellStatus::Measured),
            "{}: {:?}",
            c.key,
            c.status
        );
        assert_eq!(c.cert, "the target's own");
        let trial = &c.trials[0];
        let records: Vec<&model::ConnectionRecord> =
            trial.steps.iter().flat_map(|s| &s.connections).collect();
        assert!(!records.is_empty() && records.iter().all(|r| r.relay.is_some()));
        // The browser was pinned to the cell's version; the relay read it from the ServerHello.
        for rec in records.iter().filter(|r| r.session.version.is_some()) {
            assert_eq!(
                rec.session.version.as_deref(),
                Some(c.key.tls.as_str()),
                "{}",
                c.key
            );
        }
        // The relay's capture of the trial, decrypted with Chromium's own key log: one TCP
        // stream per record, and the page's request in clear.
        let capture = run.join(&trial.log_dir).join("capture.pcapng");
        let tshark = |filter: &[&str]| {
            let out = std::process::Command::new("tshark")
                .arg("-r")
                .arg(&capture)
                .args(filter)
                .output()
                .expect("tshark (scripts/setup.sh installs it)");
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let streams: std::collections::BTreeSet<String> =
            tshark(&["-T", "fields", "-e", "tcp.stream"])
                .lines()
                .map(str::to_owned)
                .collect();
        assert_eq!(
            streams.len(),
            records.len(),
            "{}: {}",
            c.key,
            capture.display()
        );
        assert!(
            tshark(&["-Y", "http.request"]).contains("GET / HTTP/1.1"),
            "{}: the page's request decrypted",
            c.key
        );
        let headline = &c.headline[0];
        let retries = headline.retries.expect("the page was shown");
        if c.key.scenario == "report-close" {
            assert!(
                retries.min >= 1,
                "{}: Chromium fails before the page",
                c.key
            );
        } else {
            assert_eq!(
                retries.max, 0,
                "{}: the pinned key is accepted in the handshake",
                c.key
            );
        }
    }
}
