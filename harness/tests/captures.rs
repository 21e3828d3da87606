//! Every trial's `capture.pcapng`, read by Debian's tshark (`scripts/setup.sh` installs it):
//! one real Chromium click-through trial per backend and TLS version. The capture holds one TCP
//! stream per connection record, shows the alerts and resets the records name (TLS 1.3 alerts
//! only through the embedded secrets) and the decrypted HTTP of every established connection;
//! with the Decryption Secrets Block removed, the HTTP is gone — the control that shows the
//! secrets are what decrypt it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::browser::{BrowserBinaries, BrowserKind};
use harness::progress::Progress;
use harness::runner::{RunPlan, run};
use harness::scenario::Scenario;
use model::{Cause, ConnectionRecord, Outcome, TlsVersion};
use results::{Environment, RunResults, SCHEMA_VERSION};

mod common;
use common::ONE_AT_A_TIME;

/// What tshark shows of one TCP stream.
#[derive(Debug, Default)]
struct Stream {
    client_port: Option<u16>,
    /// Alert descriptions the client sent (decrypted where TLS 1.3 encrypts them).
    client_alerts: BTreeSet<u8>,
    client_reset: bool,
    requests: Vec<String>,
    responses: Vec<String>,
}

/// Every TCP stream of a capture file, by tshark's stream index.
fn tcp_streams(file: &Path) -> BTreeMap<u32, Stream> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"])
        .args([
            "-e",
            "tcp.stream",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.flags.syn",
        ])
        .args(["-e", "tcp.flags.ack", "-e", "tcp.flags.reset"])
        .args(["-e", "tls.alert_message.desc", "-e", "http.request.method"])
        .args(["-e", "http.response.code"])
        .output()
        .expect("tshark runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut streams: BTreeMap<u32, Stream> = BTreeMap::new();
    let mut frames = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (stream, port) = (f[0].parse::<u32>().unwrap(), f[1].parse::<u16>().unwrap());
        let flag = |i: usize| f[i] == "1" || f[i] == "True";
        if flag(2) && !flag(3) {
            streams.entry(stream).or_default().client_port = Some(port);
        }
        frames.push((
            stream,
            port,
            flag(4),
            f[5].to_owned(),
            f[6].to_owned(),
            f[7].to_owned(),
        ));
    }
    for (stream, port, reset, alerts, request, response) in frames {
        let s = streams.entry(stream).or_default();
        let from_client = s.client_port == Some(port);
        if from_client {
            s.client_reset |= reset;
            s.client_alerts
                .extend(alerts.split(',').filter_map(|a| a.parse::<u8>().ok()));
        }
        if !request.is_empty() {
            s.requests.push(request);
        }
        if !response.is_empty() {
            s.responses.push(response);
        }
    }
    streams
}

#[test]
fn every_trial_capture_opens_decrypted_in_tshark_with_one_stream_per_record() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let scenario = Scenario::parse(
        Path::new("capture-click-through.toml"),
        r#"
description = "Clicked through a self-signed certificate, server closes after every response."
cert = "self-signed"
trust = "click-through"
connection = "close"
steps = ["visit", "proceed"]
"#,
    )
    .expect("valid scenario");
    let chromium =
        BrowserBinaries::find(BrowserKind::Chromium, None, None).unwrap_or_else(|e| panic!("{e}"));
    let plan = RunPlan {
        scenarios: vec![scenario],
        backends: harness::target::TargetName::builtins(),
        browsers: vec![BrowserKind::Chromium],
        tls: TlsVersion::ALL.to_vec(),
        repeat: Some(1),
        jobs: 2,
        out: out.path().to_owned(),
        binaries: vec![(BrowserKind::Chromium.into(), Ok(chromium))],
        quiet: Duration::from_millis(500),
        keep_profiles: false,
        server_port: None,
        only: None,
        relay: harness::runner::RelayMode::Off,
        external: Vec::new(),
        profile_templates: None,
    };
    let empty = RunResults {
        schema_version: SCHEMA_VERSION,
        environment: Environment::default(),
        cells: Vec::new(),
        cells_requested: 0,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let results = rt.block_on(run(plan, empty, &Progress::new()));
    assert_eq!(results.cells.len(), 6);
    // The TLS versions in which some record names Chromium's alert 46 (certificate_unknown).
    let mut alerted = BTreeSet::new();
    for cell in &results.cells {
        let key = format!("{}/TLS {}", cell.key.backend, cell.key.tls);
        let trial = &cell.trials[0];
        assert_eq!(trial.error, None, "{key}");
        let file = out
            .path()
            .join(trial.capture.as_ref().expect("the trial names its capture"));
        let records: Vec<ConnectionRecord> =
            std::fs::read_to_string(out.path().join(&trial.log_dir).join("connections.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        let streams = tcp_streams(&file);
        assert_eq!(
            streams.len(),
            records.len(),
            "{key}: one TCP stream per record"
        );
        let by_port: BTreeMap<u16, &Stream> = streams
            .values()
            .map(|s| (s.client_port.expect("every stream opens with a SYN"), s))
            .collect();
        let mut established = 0;
        for r in &records {
            let s = by_port
                .get(&r.client_port)
                .unwrap_or_else(|| panic!("{key}: no stream from port {}", r.client_port));
            let what = format!(
                "{key}: connection {} ({:?}) shows as {s:?}",
                r.id, r.outcome
            );
            match &r.outcome {
                Outcome::Rejected { cause } | Outcome::RejectedAfterHandshake { cause } => {
                    match cause {
                        Cause::Alert { code, .. } => {
                            assert!(s.client_alerts.contains(code), "{what}")
                        }
                        Cause::Reset => assert!(s.client_reset, "{what}"),
                        _ => {}
                    }
                    assert!(s.requests.is_empty(), "{what}");
                }
                Outcome::Established { requests } => {
                    established += 1;
                    assert_eq!(s.requests.len(), *requests as usize, "{what}");
                    assert!(s.requests.iter().all(|m| m == "GET"), "{what}");
                    assert_eq!(s.responses.len(), *requests as usize, "{what}");
                }
                _ => {}
            }
        }
        assert!(established >= 1, "{key}: the page came over a connection");
        if records.iter().any(|r| {
            matches!(
                &r.outcome,
                Outcome::Rejected {
                    cause: Cause::Alert { code: 46, .. }
                }
            )
        }) {
            alerted.insert(cell.key.tls.clone());
        }

        // The control: without the secrets, no HTTP and (TLS 1.3) no alert is readable.
        let stripped = file.with_extension("no-secrets.pcapng");
        let status = Command::new("editcap")
            .arg("--discard-all-secrets")
            .arg(&file)
            .arg(&stripped)
            .status()
            .expect("editcap runs");
        assert!(status.success());
        let blind = tcp_streams(&stripped);
        assert_eq!(blind.len(), records.len(), "{key}");
        assert!(
            blind
                .values()
                .all(|s| s.requests.is_empty() && s.responses.is_empty()),
            "{key}: HTTP readable without the secrets: {blind:?}"
        );
        if cell.key.tls == "1.3" {
            assert!(
                blind.values().all(|s| s.client_alerts.is_empty()),
                "{key}: a TLS 1.3 alert readable without the secrets: {blind:?}"
            );
        }
    }
    // Each version's alert was checked in its capture at least once (with TLS 1.2, Mbed TLS
    // often sees a reset instead; the other backends see the alert).
    assert_eq!(
        alerted,
        BTreeSet::from(["1.2".to_owned(), "1.3".to_owned()])
    );
}
