//! Why a socket was opened, by following the graph's explicit links from the socket to the
//! request it was opened for.
//!
//! Every cause rests on a link the log wrote down, and the links followed are returned as
//! [`Evidence`]; where the links stop, or lead to requests of different kinds, the cause is
//! `unknown` and the reason says where and why.

use std::collections::{BTreeMap, BTreeSet};

use super::events::EventType;
use super::graph::{Attempt, ConnectJob, Graph, PoolRequester, RequesterKind, Socket};
use super::{ClientCause, Evidence};

/// A cause with what it rests on.
#[derive(Debug)]
pub(super) struct Classified {
    pub(super) cause: ClientCause,
    /// For `unknown`: where the explicit links stop.
    pub(super) unknown_reason: Option<String>,
    pub(super) evidence: Vec<Evidence>,
    pub(super) url: Option<String>,
}

impl Classified {
    fn known(cause: ClientCause, evidence: Vec<Evidence>, url: Option<String>) -> Self {
        Self {
            cause,
            unknown_reason: None,
            evidence,
            url,
        }
    }

    fn unknown(reason: String, evidence: Vec<Evidence>) -> Self {
        Self {
            cause: ClientCause::Unknown,
            unknown_reason: Some(reason),
            evidence,
            url: None,
        }
    }
}

fn cause_of(kind: RequesterKind) -> ClientCause {
    match kind {
        RequesterKind::Preconnect => ClientCause::Preconnect,
        RequesterKind::FirstAttempt => ClientCause::FirstAttempt,
        RequesterKind::Restart => ClientCause::RestartWithAllowedCert,
    }
}

/// Evidence named by the caller, for sources and events whose type is fixed by the link
/// followed to them.
fn ev(source_id: i64, source: &str, event: &str) -> Evidence {
    Evidence {
        source_id,
        source_type: source.into(),
        event: event.into(),
    }
}

/// Evidence named in the log's own words, for sources whose type varies (connect jobs and
/// stream attempts come in several).
fn logged(graph: &Graph, source_id: i64, source_type: u32, event: EventType) -> Evidence {
    Evidence {
        source_id,
        source_type: graph.names.source_name(source_type),
        event: graph.names.event_name(event),
    }
}

/// Why socket `socket_id` was opened.
pub(super) fn classify(socket_id: i64, socket: &Socket, graph: &Graph) -> Classified {
    let mut evidence = vec![ev(socket_id, "SOCKET", "TCP_CONNECT")];
    let Some(parent) = socket.parent else {
        return Classified::unknown(
            format!("socket {socket_id} has no SOCKET_ALIVE source_dependency"),
            evidence,
        );
    };
    evidence.push(ev(socket_id, "SOCKET", "SOCKET_ALIVE"));
    if let Some(job) = graph.jobs.get(&parent) {
        connect_job_cause(graph, socket_id, socket, parent, job, evidence)
    } else if let Some(attempt) = graph.attempts.get(&parent) {
        attempt_cause(graph, parent, attempt, evidence)
    } else {
        Classified::unknown(
            format!(
                "socket {socket_id}'s SOCKET_ALIVE names source {parent}, which is neither a \
                 connect job nor a stream attempt in this log"
            ),
            evidence,
        )
    }
}

/// The socket pool: the job's own fields, then the requests waiting in its group when it
/// was created. The request it was handed to is only named in an `unknown` reason.
fn connect_job_cause(
    graph: &Graph,
    socket_id: i64,
    socket: &Socket,
    job_id: i64,
    job: &ConnectJob,
    mut evidence: Vec<Evidence>,
) -> Classified {
    let job_ev = |event| logged(graph, job_id, job.source_type, event);
    if job.backup {
        evidence.push(job_ev(EventType::ConnectJobCreated));
        return Classified::known(ClientCause::ParallelAttempt, evidence, None);
    }
    if job.fallback_sockets.contains(&socket_id) {
        evidence.push(job_ev(EventType::ConnectorConnectStart));
        return Classified::known(ClientCause::ParallelAttempt, evidence, None);
    }
    if job.ech_sockets.contains(&socket_id) {
        evidence.push(job_ev(EventType::RestartWithEchConfigList));
        evidence.push(job_ev(EventType::ConnectorConnectStart));
        return Classified::known(ClientCause::EchRestart, evidence, None);
    }
    evidence.push(job_ev(EventType::ConnectJobCreated));
    let mut waiting_kinds = BTreeMap::new();
    let mut waiting_unknown = Vec::new();
    let mut waiting_evidence = Vec::new();
    for &sj in &job.waiting_at_creation {
        match stream_job_kind(graph, sj) {
            Ok((kind, ev)) => {
                waiting_kinds.entry(kind).or_insert_with(Vec::new).push(sj);
                waiting_evidence.extend(ev);
            }
            Err(_) => waiting_unknown.push(sj),
        }
    }
    if waiting_unknown.is_empty() && waiting_kinds.len() == 1 {
        let (kind, _) = waiting_kinds.iter().next().expect("one kind");
        evidence.extend(waiting_evidence);
        let url = job
            .waiting_at_creation
            .iter()
            .find_map(|&sj| stream_job_url(graph, sj));
        return Classified::known(cause_of(*kind), evidence, url);
    }
    // Who was handed the job's outcome, or the socket as a new one.
    let handed = job
        .bound_to
        .map(|sj| (sj, "SOCKET_POOL_BOUND_TO_CONNECT_JOB"))
        .or_else(|| {
            socket
                .bound
                .iter()
                .find(|(_, reused)| !reused)
                .map(|(sj, _)| (*sj, "SOCKET_POOL_BOUND_TO_SOCKET"))
        });
    let waited = if job.waiting_at_creation.is_empty() {
        "no request was waiting in its group when it was created".to_owned()
    } else {
        let kinds: Vec<String> = waiting_kinds
            .iter()
            .map(|(k, ids)| format!("{} {ids:?}", cause_of(*k).as_str()))
            .chain(
                (!waiting_unknown.is_empty())
                    .then(|| format!("of unknown kind {waiting_unknown:?}")),
            )
            .collect();
        format!(
            "the requests waiting in its group when it was created differ ({})",
            kinds.join(", ")
        )
    };
    let Some((sj, event)) = handed else {
        return Classified::unknown(
            format!(
                "connect job {job_id}: {waited}, and no request was handed the job or \
                 socket {socket_id} (no SOCKET_POOL_BOUND_TO_CONNECT_JOB or \
                 SOCKET_POOL_BOUND_TO_SOCKET names them)"
            ),
            evidence,
        );
    };
    // Who was handed the connection is not who it was opened for: the pool gives a finished
    // job to whichever request is waiting then, and the job's SSL settings (the allowed bad
    // certificates among them) are those of the request it was created for. A full run
    // showed it: connections handed to a restart that carried the user's decision failed
    // with ERR_CERT_AUTHORITY_INVALID, because they were created before that restart
    // existed. So the request it was handed to is named in the reason, never the cause.
    evidence.push(ev(sj, "HTTP_STREAM_JOB", event));
    let handed_to = match stream_job_kind(graph, sj) {
        Ok((kind, _)) => format!("stream job {sj} (a {} request)", cause_of(kind).as_str()),
        Err(why) => format!("stream job {sj} ({why})"),
    };
    Classified::unknown(
        format!(
            "connect job {job_id}: {waited}; it was handed to {handed_to}, which the pool \
             does not say it was created for"
        ),
        evidence,
    )
}

/// A stream job's kind: its controller's own fields, or for a preconnect's stream job
/// (which logs no `HTTP_STREAM_JOB` begin, so names no controller) its plural socket request.
fn stream_job_kind(graph: &Graph, sj: i64) -> Result<(RequesterKind, Vec<Evidence>), String> {
    let job = graph.stream_jobs.get(&sj);
    if let Some(c) = job.and_then(|j| j.controller) {
        let Some(controller) = graph.controllers.get(&c) else {
            return Err(format!("its controller {c} never began in this log"));
        };
        let kind = match (controller.is_preconnect, controller.allowed_bad_certs) {
            (true, _) => RequesterKind::Preconnect,
            (false, true) => RequesterKind::Restart,
            (false, false) => RequesterKind::FirstAttempt,
        };
        return Ok((
            kind,
            vec![
                ev(sj, "HTTP_STREAM_JOB", "HTTP_STREAM_JOB"),
                ev(
                    c,
                    "HTTP_STREAM_JOB_CONTROLLER",
                    "HTTP_STREAM_JOB_CONTROLLER",
                ),
            ],
        ));
    }
    match job.and_then(|j| j.requested.as_ref()) {
        Some((_, true)) => Ok((
            RequesterKind::Preconnect,
            vec![ev(
                sj,
                "HTTP_STREAM_JOB",
                "TCP_CLIENT_SOCKET_POOL_REQUESTED_SOCKETS",
            )],
        )),
        _ => Err(format!("stream job {sj} names no job controller")),
    }
}

fn stream_job_url(graph: &Graph, sj: i64) -> Option<String> {
    let c = graph.stream_jobs.get(&sj)?.controller?;
    graph.controllers.get(&c)?.url.clone()
}

/// The HTTP stream pool: the requesters the attempt's manager logged, still waiting when
/// the attempt began.
fn attempt_cause(
    graph: &Graph,
    attempt_id: i64,
    attempt: &Attempt,
    mut evidence: Vec<Evidence>,
) -> Classified {
    let Some(manager) = attempt.manager else {
        return Classified::unknown(
            format!(
                "stream attempt {attempt_id} names no attempt manager (no TCP_BASED_ATTEMPT_BOUND_TO_POOL)"
            ),
            evidence,
        );
    };
    evidence.push(logged(
        graph,
        attempt_id,
        attempt.source_type,
        EventType::BoundToPool,
    ));
    let waiting: Vec<&PoolRequester> = graph
        .managers
        .get(&manager)
        .into_iter()
        .flatten()
        .filter(|r| {
            r.registered_at < attempt.began_at
                && graph
                    .pool_requester_ended
                    .get(&r.source)
                    .is_none_or(|&end| end > attempt.began_at)
        })
        .collect();
    let kinds: BTreeSet<RequesterKind> = waiting.iter().map(|r| r.kind).collect();
    let manager_type = graph.names.source_type("HTTP_STREAM_POOL_ATTEMPT_MANAGER");
    for r in &waiting {
        evidence.push(logged(graph, manager, manager_type, r.event));
    }
    if kinds.len() == 1 {
        let kind = *kinds.iter().next().expect("one kind");
        let url = waiting.iter().find_map(|r| {
            let controller = match r.kind {
                RequesterKind::Preconnect => r.source,
                _ => *graph.pool_job_controller.get(&r.source)?,
            };
            graph.controllers.get(&controller)?.url.clone()
        });
        return Classified::known(cause_of(kind), evidence, url);
    }
    let listed: Vec<String> = waiting
        .iter()
        .map(|r| format!("{} {}", cause_of(r.kind).as_str(), r.source))
        .collect();
    let reason = if waiting.is_empty() {
        format!(
            "attempt manager {manager} had no requester waiting when stream attempt \
             {attempt_id} began"
        )
    } else {
        format!(
            "attempt manager {manager} had requesters of different kinds waiting when stream \
             attempt {attempt_id} began ({}); the pool does not log which one an attempt is for",
            listed.join(", ")
        )
    };
    Classified::unknown(reason, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlog::events::Names;
    use crate::netlog::graph::{Controller, StreamJob};

    const SOCKET: i64 = 100;
    const JOB: i64 = 10;

    fn graph() -> Graph {
        Graph {
            names: Names::complete(),
            ..Default::default()
        }
    }

    fn socket(parent: i64) -> Socket {
        Socket {
            parent: Some(parent),
            ..Default::default()
        }
    }

    fn connect_job<'g>(g: &'g mut Graph, waiting: &[i64]) -> &'g mut ConnectJob {
        let source_type = g.names.source_type("SSL_CONNECT_JOB");
        g.jobs.entry(JOB).or_insert(ConnectJob {
            source_type,
            waiting_at_creation: waiting.to_vec(),
            ..Default::default()
        })
    }

    /// A stream job `sj` whose controller is `sj + 1`.
    fn request(g: &mut Graph, sj: i64, allowed_bad_certs: bool) {
        g.stream_jobs.insert(
            sj,
            StreamJob {
                controller: Some(sj + 1),
                ..Default::default()
            },
        );
        g.controllers.insert(
            sj + 1,
            Controller {
                is_preconnect: false,
                allowed_bad_certs,
                url: Some(format!("https://a.test/{sj}")),
            },
        );
    }

    fn events(c: &Classified) -> Vec<(i64, &str)> {
        c.evidence
            .iter()
            .map(|e| (e.source_id, e.event.as_str()))
            .collect()
    }

    #[test]
    fn a_socket_that_names_no_parent_is_unknown_and_says_so() {
        let c = classify(SOCKET, &Socket::default(), &graph());
        assert_eq!(c.cause, ClientCause::Unknown);
        assert_eq!(
            c.unknown_reason.as_deref(),
            Some("socket 100 has no SOCKET_ALIVE source_dependency")
        );
        assert_eq!(events(&c), [(SOCKET, "TCP_CONNECT")]);
    }

    #[test]
    fn a_backup_job_is_a_parallel_attempt_whoever_waited() {
        let mut g = graph();
        request(&mut g, 20, true);
        connect_job(&mut g, &[20]).backup = true;
        let c = classify(SOCKET, &socket(JOB), &g);
        assert_eq!(c.cause, ClientCause::ParallelAttempt);
        assert_eq!(
            c.evidence.last().map(|e| e.source_type.as_str()),
            Some("SSL_CONNECT_JOB")
        );
    }

    #[test]
    fn requests_of_one_kind_waiting_when_the_job_was_created_are_the_cause() {
        let mut g = graph();
        request(&mut g, 20, true);
        request(&mut g, 30, true);
        connect_job(&mut g, &[20, 30]);
        let c = classify(SOCKET, &socket(JOB), &g);
        assert_eq!(c.cause, ClientCause::RestartWithAllowedCert);
        assert_eq!(c.url.as_deref(), Some("https://a.test/20"));
        assert_eq!(
            events(&c),
            [
                (SOCKET, "TCP_CONNECT"),
                (SOCKET, "SOCKET_ALIVE"),
                (JOB, "SOCKET_POOL_CONNECT_JOB_CREATED"),
                (20, "HTTP_STREAM_JOB"),
                (21, "HTTP_STREAM_JOB_CONTROLLER"),
                (30, "HTTP_STREAM_JOB"),
                (31, "HTTP_STREAM_JOB_CONTROLLER"),
            ]
        );
    }

    #[test]
    fn the_request_a_job_was_handed_to_is_named_but_is_never_the_cause() {
        let mut g = graph();
        request(&mut g, 20, false);
        request(&mut g, 30, true);
        connect_job(&mut g, &[20, 30]).bound_to = Some(30);
        let c = classify(SOCKET, &socket(JOB), &g);
        assert_eq!(c.cause, ClientCause::Unknown);
        let reason = c.unknown_reason.as_deref().unwrap();
        assert!(
            reason.contains("differ (first-attempt [20], restart-with-allowed-cert [30])")
                && reason.contains("handed to stream job 30 (a restart-with-allowed-cert request)"),
            "{reason}"
        );
        assert_eq!(
            events(&c).last(),
            Some(&(30, "SOCKET_POOL_BOUND_TO_CONNECT_JOB"))
        );
    }

    #[test]
    fn an_attempt_counts_only_the_requesters_waiting_when_it_began() {
        let mut g = graph();
        let source_type = g.names.source_type("TLS_STREAM_ATTEMPT");
        let manager = 50;
        for (attempt, began_at) in [(60, 2), (61, 4), (62, 6)] {
            g.attempts.insert(
                attempt,
                Attempt {
                    source_type,
                    began_at,
                    manager: Some(manager),
                },
            );
        }
        // A preconnect waits over events 1..5, a first attempt from event 3 on.
        g.managers.insert(
            manager,
            vec![
                PoolRequester {
                    source: 70,
                    kind: RequesterKind::Preconnect,
                    event: EventType::ManagerPreconnect,
                    registered_at: 1,
                },
                PoolRequester {
                    source: 80,
                    kind: RequesterKind::FirstAttempt,
                    event: EventType::ManagerRequestStream,
                    registered_at: 3,
                },
            ],
        );
        g.pool_requester_ended.insert(70, 5);
        let cause = |attempt| classify(SOCKET, &socket(attempt), &g);
        assert_eq!(cause(60).cause, ClientCause::Preconnect);
        let both = cause(61);
        assert_eq!(both.cause, ClientCause::Unknown);
        assert!(
            both.unknown_reason
                .as_deref()
                .unwrap()
                .contains("(preconnect 70, first-attempt 80)")
        );
        let later = cause(62);
        assert_eq!(later.cause, ClientCause::FirstAttempt);
        assert_eq!(
            later.evidence.last(),
            Some(&Evidence {
                source_id: manager,
                source_type: "HTTP_STREAM_POOL_ATTEMPT_MANAGER".into(),
                event: "HTTP_STREAM_POOL_ATTEMPT_MANAGER_REQUEST_STREAM".into(),
            })
        );
    }
}
