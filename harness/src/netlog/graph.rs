//! The sources of a NetLog and the explicit links between them, gathered in one pass.
//!
//! Only what a source logs about itself or names by id is kept. Event order is kept just where
//! a link is only valid over a span of time — the requests waiting in a socket-pool group when
//! a connect job was created, the requesters of an attempt manager still waiting when an
//! attempt began — because the log records those spans and nothing else says who waited.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::events::{Event, EventType, Names, Phase, SourceKind};

/// What kind of request a requester is, from its own fields or event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum RequesterKind {
    Preconnect,
    FirstAttempt,
    Restart,
}

#[derive(Default)]
pub(super) struct Socket {
    /// `SOCKET_ALIVE`'s dependency: the connect job or stream attempt that made the socket.
    pub(super) parent: Option<i64>,
    pub(super) local_address: Option<String>,
    pub(super) remote_address: Option<String>,
    pub(super) connected_at_ms: Option<i64>,
    /// `TCP_CONNECT` began: the address it tried first, and when.
    pub(super) connect_started: Option<(String, i64)>,
    pub(super) net_error: Option<i64>,
    pub(super) alert_sent: Option<(u8, u8)>,
    /// Stream jobs bound to it, and whether each took it as an existing (reused) socket.
    pub(super) bound: Vec<(i64, bool)>,
    /// HTTP stream pool handles with a reused `reuse_type`.
    pub(super) reused_handles: u32,
    pub(super) is_tcp: bool,
}

#[derive(Default)]
pub(super) struct ConnectJob {
    pub(super) source_type: u32,
    pub(super) backup: bool,
    /// Stream jobs waiting in the job's group when it was created (`SOCKET_POOL_CONNECT_JOB_CREATED`).
    pub(super) waiting_at_creation: Vec<i64>,
    /// Sockets this job started as the IPv6/IPv4 fallback connector.
    pub(super) fallback_sockets: HashSet<i64>,
    /// Sockets this job started after `SSL_CONNECT_JOB_RESTART_WITH_ECH_CONFIG_LIST`.
    pub(super) ech_sockets: HashSet<i64>,
    pub(super) ech_restarted: bool,
    /// The first stream job the job was handed to.
    pub(super) bound_to: Option<i64>,
}

#[derive(Default)]
pub(super) struct StreamJob {
    pub(super) controller: Option<i64>,
    /// The group of its last `TCP_CLIENT_SOCKET_POOL_REQUESTED_SOCKET(S)`, and whether plural
    /// (only a preconnect asks for several sockets).
    pub(super) requested: Option<(String, bool)>,
    /// Its `SOCKET_POOL` / `SOCKET_POOL_CONNECTING_N_SOCKETS` is open in this group.
    pub(super) waiting_in: Option<String>,
    /// `SOCKET_POOL_REUSED_AN_EXISTING_SOCKET` since its last `SOCKET_POOL` began.
    pub(super) reused: bool,
}

pub(super) struct Controller {
    pub(super) is_preconnect: bool,
    pub(super) allowed_bad_certs: bool,
    pub(super) url: Option<String>,
}

/// A stream attempt of the HTTP stream pool.
#[derive(Default)]
pub(super) struct Attempt {
    pub(super) source_type: u32,
    /// The [`Event::seq`] of its first event.
    pub(super) began_at: usize,
    pub(super) manager: Option<i64>,
}

/// One requester of an HTTP stream pool attempt manager.
pub(super) struct PoolRequester {
    /// The source that names it: the preconnect's controller or the request's pool job.
    pub(super) source: i64,
    pub(super) kind: RequesterKind,
    /// The manager's event that registered it.
    pub(super) event: EventType,
    pub(super) registered_at: usize,
}

/// Everything the log said, for following links after the last event.
#[derive(Default)]
pub(super) struct Graph {
    /// The log's names for its types, to write evidence with.
    pub(super) names: Names,
    pub(super) sockets: BTreeMap<i64, Socket>,
    pub(super) jobs: HashMap<i64, ConnectJob>,
    pub(super) stream_jobs: HashMap<i64, StreamJob>,
    pub(super) controllers: HashMap<i64, Controller>,
    pub(super) attempts: HashMap<i64, Attempt>,
    /// Attempt managers and their requesters, in the order they registered.
    pub(super) managers: HashMap<i64, Vec<PoolRequester>>,
    /// When a requester of the HTTP stream pool stopped waiting (its job or controller ended).
    pub(super) pool_requester_ended: HashMap<i64, usize>,
    /// A pool job's controller (`HTTP_STREAM_POOL_JOB_ALIVE`'s dependency).
    pub(super) pool_job_controller: HashMap<i64, i64>,
}

impl Graph {
    pub(super) fn build(names: Names, events: impl IntoIterator<Item = Event>) -> Self {
        let mut builder = Builder {
            graph: Self {
                names,
                ..Default::default()
            },
            waiting: HashMap::new(),
        };
        for e in events {
            match e.source.kind {
                SourceKind::Socket => builder.socket_event(&e),
                SourceKind::ConnectJob => builder.connect_job_event(&e),
                SourceKind::StreamAttempt => builder.attempt_event(&e),
                SourceKind::Other => builder.request_event(&e),
            }
        }
        builder.graph
    }
}

struct Builder {
    graph: Graph,
    /// Stream jobs with an open socket request, per socket-pool group.
    waiting: HashMap<String, BTreeSet<i64>>,
}

impl Builder {
    fn socket_event(&mut self, e: &Event) {
        let s = self.graph.sockets.entry(e.source.id).or_default();
        match e.kind {
            EventType::SocketAlive if e.phase == Phase::Begin => s.parent = e.dependency(),
            EventType::TcpConnect => {
                s.is_tcp = true;
                match e.phase {
                    Phase::Begin => {
                        if let (Some(first), Some(time)) =
                            (e.first_str("address_list"), e.time_ms())
                        {
                            s.connect_started = Some((first.to_owned(), time));
                        }
                    }
                    Phase::End => {
                        s.local_address = e.str_param("local_address").map(str::to_owned);
                        s.remote_address = e.str_param("remote_address").map(str::to_owned);
                        s.connected_at_ms = e.time_ms();
                    }
                    Phase::None => {}
                }
            }
            EventType::SslConnect if e.phase == Phase::End => {
                s.net_error = e.i64_param("net_error")
            }
            EventType::SslAlertSent => {
                if let Some(b) = e.bytes_param("bytes").filter(|b| b.len() == 2) {
                    s.alert_sent = Some((b[0], b[1]));
                }
            }
            _ => {}
        }
    }

    fn connect_job_event(&mut self, e: &Event) {
        let j = self.graph.jobs.entry(e.source.id).or_default();
        j.source_type = e.source.type_id;
        match e.kind {
            EventType::ConnectJobCreated => {
                j.backup = e.flag("backup_job");
                if let Some(group) = e.str_param("group_id") {
                    j.waiting_at_creation = self
                        .waiting
                        .get(group)
                        .map(|w| w.iter().copied().collect())
                        .unwrap_or_default();
                }
            }
            EventType::RestartWithEchConfigList => j.ech_restarted = true,
            EventType::ConnectorConnectStart => {
                if let Some(sock) = e.dependency() {
                    if e.str_param("connector") == Some("fallback") {
                        j.fallback_sockets.insert(sock);
                    }
                    if j.ech_restarted {
                        j.ech_sockets.insert(sock);
                    }
                }
            }
            _ => {}
        }
    }

    fn attempt_event(&mut self, e: &Event) {
        let a = self
            .graph
            .attempts
            .entry(e.source.id)
            .or_insert_with(|| Attempt {
                began_at: e.seq,
                ..Default::default()
            });
        a.source_type = e.source.type_id;
        if e.kind == EventType::BoundToPool {
            a.manager = e.dependency();
        }
    }

    /// Events of the requests and pools, read by type whichever source logged them.
    fn request_event(&mut self, e: &Event) {
        let g = &mut self.graph;
        let id = e.source.id;
        match e.kind {
            EventType::RequestedSocket | EventType::RequestedSockets => {
                if let Some(group) = e.str_param("group_id") {
                    g.stream_jobs.entry(id).or_default().requested =
                        Some((group.to_owned(), e.kind == EventType::RequestedSockets));
                }
            }
            EventType::SocketPool | EventType::ConnectingNSockets => {
                let sj = g.stream_jobs.entry(id).or_default();
                match e.phase {
                    Phase::Begin => {
                        sj.reused = false;
                        if let Some((group, _)) = &sj.requested {
                            self.waiting.entry(group.clone()).or_default().insert(id);
                            sj.waiting_in = Some(group.clone());
                        }
                    }
                    Phase::End => {
                        if let Some(group) = sj.waiting_in.take()
                            && let Some(w) = self.waiting.get_mut(&group)
                        {
                            w.remove(&id);
                        }
                    }
                    Phase::None => {}
                }
            }
            EventType::ReusedAnExistingSocket => g.stream_jobs.entry(id).or_default().reused = true,
            EventType::HttpStreamJob if e.phase == Phase::Begin => {
                if let Some(controller) = e.dependency() {
                    g.stream_jobs.entry(id).or_default().controller = Some(controller);
                }
            }
            EventType::RequestStartedJob => {
                if let Some(job) = e.dependency() {
                    g.stream_jobs.entry(job).or_default().controller = Some(id);
                }
            }
            EventType::BoundToConnectJob => {
                if let Some(job) = e.dependency() {
                    g.jobs.entry(job).or_default().bound_to.get_or_insert(id);
                }
            }
            EventType::BoundToSocket => {
                if let Some(sock) = e.dependency() {
                    let reused = g.stream_jobs.get(&id).is_some_and(|j| j.reused);
                    g.sockets.entry(sock).or_default().bound.push((id, reused));
                }
            }
            EventType::JobController if e.phase == Phase::Begin => {
                g.controllers.insert(
                    id,
                    Controller {
                        is_preconnect: e.flag("is_preconnect"),
                        allowed_bad_certs: e.has_items("allowed_bad_certs"),
                        url: e.str_param("url").map(str::to_owned),
                    },
                );
            }
            EventType::ManagerPreconnect => {
                if let Some(controller) = e.dependency() {
                    g.managers.entry(id).or_default().push(PoolRequester {
                        source: controller,
                        kind: RequesterKind::Preconnect,
                        event: e.kind,
                        registered_at: e.seq,
                    });
                }
            }
            EventType::ManagerRequestStream => {
                if let Some(job) = e.dependency() {
                    g.managers.entry(id).or_default().push(PoolRequester {
                        source: job,
                        kind: if e.has_items("allowed_bad_certs") {
                            RequesterKind::Restart
                        } else {
                            RequesterKind::FirstAttempt
                        },
                        event: e.kind,
                        registered_at: e.seq,
                    });
                }
            }
            EventType::PoolJobAlive => match e.phase {
                Phase::Begin => {
                    if let Some(controller) = e.dependency() {
                        g.pool_job_controller.insert(id, controller);
                    }
                }
                Phase::End => {
                    g.pool_requester_ended.insert(id, e.seq);
                }
                Phase::None => {}
            },
            EventType::PoolJobControllerAlive if e.phase == Phase::End => {
                g.pool_requester_ended.insert(id, e.seq);
            }
            EventType::GroupHandleCreated => {
                // `reuse_type` 0 is a socket never used; anything else was in use or idle before.
                let reused = e.i64_param("reuse_type").is_some_and(|t| t != 0);
                if let (true, Some(sock)) = (reused, e.dependency()) {
                    g.sockets.entry(sock).or_default().reused_handles += 1;
                }
            }
            _ => {}
        }
    }
}
