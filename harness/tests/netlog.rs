//! The NetLog parser on whole, untrimmed NetLogs recorded from real Chromium 156 runs on this
//! machine (gzip'd, as the run folder keeps them), each with the server's records of the same
//! trial. Each fixture has a golden file, `<name>.causes`, written by reading the log by hand
//! once: per server record its client port, the cause and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use harness::netlog::{self, ClientCause, ClientSocket, MAX_JOIN_DISTANCE_MS};
use model::{ConnectionRecord, Outcome};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/netlog")
        .join(name)
}

fn records(fixture: &str) -> Vec<ConnectionRecord> {
    std::fs::read_to_string(data(&format!("{fixture}.connections.jsonl")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn joined(fixture: &str) -> BTreeMap<u64, Result<ClientSocket, String>> {
    let log = netlog::read(&data(&format!("{fixture}.netlog.json.gz"))).unwrap();
    assert!(!log.truncated, "{fixture}: a whole log");
    assert_eq!(
        log.browser_version
            .as_deref()
            .map(|v| v.starts_with("156.")),
        Some(true)
    );
    let records = records(fixture);
    let mut joined = netlog::join(&records, &log.sockets);
    netlog::explain_unjoined(&mut joined, &records, &log.unconnected);
    joined
}

/// `record port cause` per line of the golden file; `#` starts a comment (the why).
fn golden(fixture: &str) -> BTreeMap<u64, (u16, String)> {
    std::fs::read_to_string(data(&format!("{fixture}.causes")))
        .unwrap()
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                (f[1].parse().unwrap(), f[2].to_owned()),
            )
        })
        .collect()
}

/// Every record's cause equals the golden file's, record by record.
fn matches_golden(fixture: &str) {
    let records = records(fixture);
    let joined = joined(fixture);
    let expected = golden(fixture);
    let mut table = String::new();
    let mut wrong = Vec::new();
    for r in &records {
        let (cause, why) = match &joined[&r.id] {
            Ok(s) => (
                s.cause.as_str().to_owned(),
                format!(
                    "socket {} {}{}",
                    s.source_id,
                    s.unknown_reason.as_deref().unwrap_or(""),
                    s.evidence
                        .iter()
                        .map(|e| format!(" {}:{}", e.source_id, e.event))
                        .collect::<String>()
                ),
            ),
            Err(reason) => ("unknown".to_owned(), reason.clone()),
        };
        table += &format!(
            "{} {} {cause} # {} {why}\n",
            r.id,
            r.client_port,
            r.outcome.short()
        );
        match expected.get(&r.id) {
            Some((port, c)) if *port == r.client_port && *c == cause => {}
            other => wrong.push(format!(
                "record {} port {}: got {cause}, golden {other:?}",
                r.id, r.client_port
            )),
        }
    }
    assert_eq!(
        expected.len(),
        records.len(),
        "{fixture}: one golden line per record\n{table}"
    );
    assert!(
        wrong.is_empty(),
        "{fixture}:\n{}\n\ncomputed:\n{table}",
        wrong.join("\n")
    );
}

#[test]
fn click_through_causes_match_the_hand_read_log() {
    matches_golden("click-through");
}

#[test]
fn private_ca_click_through_causes_match_the_hand_read_log() {
    matches_golden("private-ca");
}

#[test]
fn no_prediction_causes_match_the_hand_read_log() {
    matches_golden("no-prediction");
}

#[test]
fn keep_alive_causes_match_the_hand_read_log() {
    matches_golden("keep-alive");
}

#[test]
fn a_connection_handed_to_a_restart_is_not_caused_by_it() {
    // control-devtools-ignore, rustls, TLS 1.2, from a full run: the revisit's connect job 86
    // was created before the restart's controller 88 existed and was then handed to its stream
    // job 89; the handshake failed with ERR_CERT_AUTHORITY_INVALID, which a connection carrying
    // the allowed certificate cannot. It was counted as `restart-with-allowed-cert` when the
    // request it was handed to decided the cause.
    matches_golden("devtools-handed");
}

#[test]
fn a_racing_attempt_closed_before_its_connect_completed_stays_unknown_and_says_why() {
    // HappyEyeballsV3, report-close, rustls, TLS 1.3: socket 161 began TCP_CONNECT to the
    // server 2.6 ms before record 16 was accepted and was closed 1 ms later without a
    // TCP_CONNECT end, so the log never names its local port. The server saw the connection
    // (eof); the log cannot be joined to it.
    matches_golden("hev3-cancelled");
    let reason = joined("hev3-cancelled")[&16].clone().unwrap_err();
    assert!(
        reason.starts_with("no socket in the NetLog connected from [::1]:45304 to [::1]:33427")
            && reason.contains("socket 161 to [::1]:33427 began to connect in the join window"),
        "{reason}"
    );
}

#[test]
fn happy_eyeballs_v3_causes_match_the_hand_read_log() {
    matches_golden("hev3");
}

#[test]
fn a_truncated_log_is_parsed_as_far_as_it_goes() {
    // Cut the real log mid-event, as a crashed browser leaves it (no trimmed copy on disk).
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(
            std::fs::File::open(data("click-through.netlog.json.gz")).unwrap(),
        ),
        &mut plain,
    )
    .unwrap();
    let full = netlog::parse(&plain).unwrap();
    let cut = netlog::parse(&plain[..plain.len() * 2 / 3]).unwrap();
    assert!(!full.truncated && cut.truncated);
    assert!(cut.events > 0 && cut.events < full.events);
    assert!(!cut.sockets.is_empty());
    for s in &cut.sockets {
        let same = full
            .sockets
            .iter()
            .find(|f| f.source_id == s.source_id)
            .expect("same socket in the full log");
        assert_eq!(same.local_address, s.local_address);
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(netlog::parse(b"not json at all").is_err());
    assert!(
        netlog::parse(b"{\"constants\": {}, \"events\": [")
            .unwrap()
            .truncated
    );
}

fn record(id: u64, client: &str, server: &str, accepted_ms: u64) -> ConnectionRecord {
    ConnectionRecord {
        client: client.into(),
        client_port: client.rsplit(':').next().unwrap().parse().unwrap(),
        local: server.into(),
        ..model::testing::record(id, accepted_ms * 1000, Outcome::Idle)
    }
}

fn socket(id: i64, local: &str, remote: &str, at_ms: i64) -> ClientSocket {
    ClientSocket {
        source_id: id,
        local_address: local.into(),
        remote_address: remote.into(),
        connected_at_ms: Some(at_ms),
        cause: ClientCause::FirstAttempt,
        unknown_reason: None,
        evidence: Vec::new(),
        reused_by: 0,
        url: None,
        net_error: None,
        alert_sent: None,
    }
}

#[test]
fn the_join_needs_the_address_pair_and_a_near_connect_time() {
    let server = "[::1]:443";
    let records = vec![
        record(1, "[::1]:5000", server, 1_000),
        record(2, "[::1]:5000", server, 900_000),
        record(3, "[::1]:6000", server, 2_000),
        record(4, "127.0.0.1:7000", "127.0.0.1:443", 3_000),
        record(5, "[::1]:8000", server, 4_000),
        record(6, "[::1]:5000", server, 900_100),
    ];
    let sockets = vec![
        socket(10, "[::1]:5000", server, 995),
        // Port 5000 again, long after: only a connect just before the accept is the same one.
        socket(11, "[::1]:5000", server, 899_990),
        // The same client port to another server is another connection.
        socket(12, "[::1]:6000", "[::1]:8443", 1_990),
        // An IPv4 server record written as a mapped address is still that address.
        socket(13, "[::ffff:127.0.0.1]:7000", "127.0.0.1:443", 2_999),
        // Connected more than the bound before the accept.
        socket(14, "[::1]:8000", server, 4_000 - MAX_JOIN_DISTANCE_MS - 1),
    ];
    let joined = netlog::join(&records, &sockets);
    let id = |r: u64| joined[&r].as_ref().map(|s| s.source_id).ok();
    assert_eq!(id(1), Some(10));
    assert_eq!(id(2), Some(11));
    assert_eq!(id(3), None, "{:?}", joined[&3]);
    assert_eq!(id(4), Some(13));
    assert_eq!(id(5), None, "{:?}", joined[&5]);
    assert_eq!(id(6), None, "no socket is used twice: {:?}", joined[&6]);
    assert!(joined[&3].as_ref().unwrap_err().contains("no socket"));
}

#[test]
fn keep_alive_reuse_is_counted_on_the_connection_not_a_cause() {
    // Record 6 served the proceed and both revisits over one connection: the NetLog binds
    // three later requests to its socket as an existing one.
    let joined = joined("keep-alive");
    let s = joined[&6].as_ref().unwrap();
    assert_eq!(s.cause, ClientCause::RestartWithAllowedCert);
    assert_eq!(s.reused_by, 3);
}

#[test]
fn every_cause_names_its_evidence_and_every_unknown_its_reason() {
    for fixture in [
        "click-through",
        "private-ca",
        "no-prediction",
        "keep-alive",
        "hev3",
    ] {
        for (id, j) in joined(fixture) {
            let s = j.unwrap_or_else(|e| panic!("{fixture} record {id}: {e}"));
            assert!(s.evidence.len() >= 3, "{fixture} record {id}: {s:?}");
            assert_eq!(
                s.unknown_reason.is_some(),
                s.cause == ClientCause::Unknown,
                "{fixture} record {id}"
            );
        }
    }
}
