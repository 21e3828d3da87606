//! A target observed through the recording relay: the browser's connections reach the relay,
//! which forwards them to the real server and writes the records.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use model::{ConnectionRecord, TlsVersion};

use super::relay::{Route, RunningRelay};
use super::{RunningTarget, Target, TargetError, TrialServer, Unrecorded};
use crate::scenario::{Host, ScenarioFile};

/// Beside `connections.jsonl` (the relay's records) when the server behind the relay keeps
/// records of its own (a built-in backend): the truth the relay's records are checked against.
pub const SERVER_RECORDS_FILE: &str = "server-connections.jsonl";

/// `inner`, with a relay in front of it.
#[derive(Debug)]
pub struct Relayed {
    inner: Arc<dyn Target>,
    name: String,
    /// The inner target keeps records of its own (the truth the relay is checked against).
    inner_records: bool,
}

/// What a built-in backend's column name gets behind the relay: `rustls+relay`.
pub const RELAY_SUFFIX: &str = "+relay";

impl Relayed {
    /// A built-in backend behind the relay, to check the relay against it: its column is
    /// `<inner>+relay`, and the backend's own records are kept beside the relay's.
    pub fn new(inner: Arc<dyn Target>) -> Self {
        let name = format!("{}{RELAY_SUFFIX}", inner.name());
        Self {
            inner,
            name,
            inner_records: true,
        }
    }

    /// A server that keeps no records the harness can read, observed by the relay alone: its
    /// column is its own name.
    pub fn observing(inner: Arc<dyn Target>) -> Self {
        Self {
            name: inner.name().to_owned(),
            inner,
            inner_records: false,
        }
    }
}

impl Target for Relayed {
    fn name(&self) -> &str {
        &self.name
    }

    fn unavailable(&self) -> Option<String> {
        self.inner.unavailable()
    }

    fn supports(&self, scenario: &ScenarioFile, tls: TlsVersion) -> Result<(), String> {
        self.inner.supports(scenario, tls)
    }

    fn start(&self, trial: &TrialServer<'_>) -> Result<Box<dyn RunningTarget>, TargetError> {
        let fail = |cause: String| TargetError {
            target: self.name.clone(),
            cause: cause.into(),
        };
        // The server on a port of its own; the relay takes the port the URL names (the
        // trial's, if given). The browser is started exactly as for the server itself.
        let inner = self.inner.start(&TrialServer {
            port: None,
            ..*trial
        })?;
        let server_port = url::Url::parse(&inner.url(Host::Ipv4))
            .ok()
            .and_then(|u| u.port())
            .ok_or_else(|| fail("the server behind the relay has no port in its URL".into()))?;
        let listen = trial.port.unwrap_or(0);
        // Both loopback families, each to the same family of the server, so the browser's
        // choice of address family reaches the server unchanged.
        let mut routes = vec![Route {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen),
            upstream: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), server_port),
        }];
        if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
            routes.push(Route {
                listen: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen),
                upstream: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), server_port),
            });
        }
        let relay = RunningRelay::start(&routes).map_err(|e| fail(format!("the relay: {e}")))?;
        // The server's own capture where it records one (with its keys); else the relay's.
        let capture = inner.capture().unwrap_or_else(|| relay.recorder());
        Ok(Box::new(RunningRelayed {
            capture,
            inner: Some(inner),
            relay: Some(relay),
            records_file: self
                .inner_records
                .then(|| trial.dir.join(SERVER_RECORDS_FILE)),
        }))
    }
}

struct RunningRelayed {
    capture: Arc<capture::Recorder>,
    inner: Option<Box<dyn RunningTarget>>,
    relay: Option<RunningRelay>,
    /// Where the inner target's own records go, if it keeps any.
    records_file: Option<PathBuf>,
}

impl RunningTarget for RunningRelayed {
    fn url(&self, host: Host) -> String {
        let url = self.inner.as_ref().expect("running").url(host);
        let port = self.relay.as_ref().expect("running").port();
        let Ok(mut u) = url::Url::parse(&url) else {
            return url;
        };
        match u.set_port(Some(port)) {
            Ok(()) => u.to_string(),
            Err(()) => url,
        }
    }

    fn last_accept(&self) -> Option<Instant> {
        self.relay.as_ref().and_then(RunningRelay::last_accept)
    }

    fn queued(&self) -> u32 {
        // The relay accepts at once; what waits, waits in the server's queue.
        self.inner.as_ref().map_or(0, |i| i.queued())
    }

    fn capture(&self) -> Option<Arc<capture::Recorder>> {
        Some(self.capture.clone())
    }

    fn stop(mut self: Box<Self>) -> Result<Vec<ConnectionRecord>, Unrecorded> {
        // The relay first: closing its sockets lets the server see every connection end, as
        // it would have seen the browser close it.
        let (records, mut problems) = match self.relay.take().expect("running").stop() {
            Ok(records) => (records, Vec::new()),
            Err(e) => (e.records, vec![e.reason]),
        };
        let server = self.inner.take().expect("running").stop();
        let server_records = match server {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("the server behind the relay: {e}"));
                e.records
            }
        };
        if let Some(fault) = server_records
            .iter()
            .find_map(ConnectionRecord::server_fault)
        {
            problems.push(format!("the server behind the relay failed: {fault}"));
        }
        if let Some(file) = &self.records_file {
            let jsonl: String = server_records
                .iter()
                .map(|r| serde_json::to_string(r).expect("record serialises") + "\n")
                .collect();
            if let Err(e) = std::fs::write(file, jsonl) {
                tracing::warn!("writing {}: {e}", file.display());
            }
        }
        Unrecorded::unless_any(problems, records)
    }
}
