//! The NetLog parser on excerpts recorded from real Chromium 156 runs on this machine
//! (trimmed with `scripts/trim-netlog.py`), each with the server's records of the same trial.

use std::collections::HashSet;
use std::path::Path;

use backends::{ConnectionRecord, SessionInfo};
use harness::netlog::{self, ClientSocket, ConnectCause};

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/netlog")
        .join(name)
}

fn records(name: &str) -> Vec<ConnectionRecord> {
    std::fs::read_to_string(data(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn click_through_every_failed_handshake_has_a_cause() {
    let log = netlog::read(&data("click-through.json")).unwrap();
    assert!(!log.truncated);
    assert_eq!(
        log.browser_version
            .as_deref()
            .map(|v| v.starts_with("156.")),
        Some(true)
    );
    let records = records("click-through.connections.jsonl");
    let joined = netlog::join(&records, &log.sockets);
    for r in &records {
        let side = joined
            .get(&r.id)
            .unwrap_or_else(|| panic!("record {} (port {}) has no socket", r.id, r.client_port));
        if r.outcome.is_failed_handshake() {
            assert_ne!(side.cause, ConnectCause::Unknown, "record {}", r.id);
            assert_eq!(side.net_error, Some(-202), "ERR_CERT_AUTHORITY_INVALID");
            assert_eq!(
                side.alert_sent,
                Some((2, 46)),
                "Chromium sent fatal certificate_unknown"
            );
        } else {
            assert_eq!(
                side.net_error, None,
                "an established connection has no TLS error"
            );
        }
    }
    let causes: HashSet<ConnectCause> = joined.values().map(|s| s.cause).collect();
    assert!(causes.contains(&ConnectCause::Preconnect), "{causes:?}");
    assert!(causes.contains(&ConnectCause::FirstAttempt), "{causes:?}");
    assert!(
        causes.contains(&ConnectCause::RestartWithAllowedCert),
        "the restarts carry the user's decision: {causes:?}"
    );
    // What fails after the decision is never the restart itself.
    for r in records.iter().filter(|r| r.outcome.is_failed_handshake()) {
        assert_ne!(
            joined[&r.id].cause,
            ConnectCause::RestartWithAllowedCert,
            "record {}",
            r.id
        );
    }
}

#[test]
fn without_prediction_there_is_no_preconnect() {
    let log = netlog::read(&data("no-prediction.json")).unwrap();
    let records = records("no-prediction.connections.jsonl");
    let joined = netlog::join(&records, &log.sockets);
    assert_eq!(joined.len(), records.len());
    assert!(
        joined
            .values()
            .all(|s| s.cause != ConnectCause::Preconnect && s.cause != ConnectCause::Unknown),
        "{joined:#?}"
    );
}

#[test]
fn a_truncated_log_is_parsed_as_far_as_it_goes() {
    let full = netlog::read(&data("click-through.json")).unwrap();
    let cut = netlog::read(&data("truncated.json")).unwrap();
    assert!(cut.truncated);
    assert!(
        cut.events > 0 && cut.events < full.events,
        "{} of {}",
        cut.events,
        full.events
    );
    assert!(!cut.sockets.is_empty());
    for s in &cut.sockets {
        let same = full
            .sockets
            .iter()
            .find(|f| f.source_id == s.source_id)
            .expect("same socket in the full log");
        assert_eq!(same.local_port, s.local_port);
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

fn record(id: u64, port: u16, accepted_ms: u64) -> ConnectionRecord {
    ConnectionRecord {
        id,
        accepted_at_us: accepted_ms * 1000,
        closed_at_us: accepted_ms * 1000 + 1,
        client: format!("[::1]:{port}"),
        client_port: port,
        local: "[::1]:443".into(),
        outcome: backends::Outcome::Idle,
        session: SessionInfo::default(),
        backend_code: None,
        queue_wait_ms: None,
        queue_wait_unknown: None,
    }
}

fn socket(id: i64, port: u16, at_ms: i64, cause: ConnectCause) -> ClientSocket {
    ClientSocket {
        source_id: id,
        local_port: port,
        connected_at_ms: Some(at_ms),
        cause,
        url: None,
        net_error: None,
        alert_sent: None,
    }
}

#[test]
fn the_join_never_gives_one_server_connection_two_sockets_or_one_socket_two_connections() {
    // Port 5000 reused: two records and two sockets, matched by time; a third record on the
    // same port finds no socket left rather than sharing one.
    let records = vec![
        record(1, 5000, 1_000),
        record(2, 5000, 9_000),
        record(3, 5000, 9_500),
        record(4, 6000, 2_000),
    ];
    let sockets = vec![
        socket(10, 5000, 8_990, ConnectCause::Preconnect),
        socket(11, 5000, 995, ConnectCause::FirstAttempt),
        socket(12, 6000, 1_990, ConnectCause::RestartWithAllowedCert),
    ];
    let joined = netlog::join(&records, &sockets);
    assert_eq!(joined[&1].source_id, 11);
    assert_eq!(joined[&2].source_id, 10);
    assert!(!joined.contains_key(&3), "no socket is used twice");
    assert_eq!(joined[&4].source_id, 12);
    let used: Vec<i64> = joined.values().map(|s| s.source_id).collect();
    assert_eq!(used.len(), used.iter().collect::<HashSet<_>>().len());
}

#[test]
fn a_connect_job_whose_request_took_another_socket_keeps_its_creator() {
    // Recorded in a full matrix run: a request's socket request created a connect job, was then
    // served by an earlier preconnect's socket, and the orphaned job connected and failed.
    // Its cause is the request that created it, not `unknown`.
    let log = netlog::read(&data("orphan-connect-job.json")).unwrap();
    let records = records("orphan-connect-job.connections.jsonl");
    let joined = netlog::join(&records, &log.sockets);
    for r in records.iter().filter(|r| r.outcome.is_failed_handshake()) {
        assert_ne!(
            joined[&r.id].cause,
            ConnectCause::Unknown,
            "record {} port {}",
            r.id,
            r.client_port
        );
    }
}
