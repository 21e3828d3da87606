//! The connection log shared by a server's workers and whoever watches it.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use model::ConnectionRecord;

/// Every connection a server accepted, recorded when it closes.
///
/// Accepts are counted as they happen (so a watcher can tell when the browser has gone quiet)
/// and records arrive when each connection ends. `accepted() == records().len()` once every
/// connection has closed, and always after [`crate::RunningServer::stop`].
#[derive(Debug, Default)]
pub struct ConnectionLog {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    records: Vec<ConnectionRecord>,
    accepted: u64,
    last_accept: Option<Instant>,
    subscribers: Vec<Sender<ConnectionRecord>>,
}

impl ConnectionLog {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked mid-push cannot leave the Vec inconsistent; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts an accept; returns the connection's id (1-based).
    pub(crate) fn note_accept(&self) -> u64 {
        let mut s = self.lock();
        s.accepted += 1;
        s.last_accept = Some(Instant::now());
        s.accepted
    }

    /// Adds a finished connection's record.
    pub(crate) fn push(&self, record: ConnectionRecord) {
        let mut s = self.lock();
        s.subscribers.retain(|tx| tx.send(record.clone()).is_ok());
        s.records.push(record);
        drop(s);
        self.changed.notify_all();
    }

    /// A copy of every record so far, sorted by id (accept order).
    pub fn records(&self) -> Vec<ConnectionRecord> {
        let mut r = self.lock().records.clone();
        r.sort_by_key(|r| r.id);
        r
    }

    /// Ids handed out at accept that have no record yet, in order.
    pub fn unrecorded(&self) -> Vec<u64> {
        let s = self.lock();
        let recorded: std::collections::HashSet<u64> = s.records.iter().map(|r| r.id).collect();
        (1..=s.accepted)
            .filter(|id| !recorded.contains(id))
            .collect()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.lock().accepted
    }

    /// When the last connection was accepted.
    pub fn last_accept(&self) -> Option<Instant> {
        self.lock().last_accept
    }

    /// Connections accepted but not yet recorded.
    pub fn open(&self) -> u64 {
        let s = self.lock();
        s.accepted - s.records.len() as u64
    }

    /// Receives every record pushed from now on.
    pub fn subscribe(&self) -> Receiver<ConnectionRecord> {
        let (tx, rx) = channel();
        self.lock().subscribers.push(tx);
        rx
    }

    /// Waits until every accepted connection has a record, or `timeout` passes.
    /// Returns whether all are recorded.
    pub fn wait_all_recorded(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if s.records.len() as u64 == s.accepted {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accepted_connection_without_a_record_is_named() {
        let log = ConnectionLog::default();
        let (a, b, c) = (log.note_accept(), log.note_accept(), log.note_accept());
        let mut record: ConnectionRecord = serde_json::from_str(
            r#"{"id":1,"accepted_at_us":10,"closed_at_us":20,"client":"127.0.0.1:5","client_port":5,"local":"127.0.0.1:443","outcome":{"kind":"idle"},"session":{"version":null,"cipher_suite_id":null,"cipher_suite":null,"sni":null,"alpn":null,"resumed":null},"backend_code":null}"#,
        )
        .unwrap();
        record.id = a;
        log.push(record.clone());
        record.id = c;
        log.push(record);
        assert_eq!(log.unrecorded(), [b]);
        assert!(!log.wait_all_recorded(Duration::from_millis(10)));
        let error = crate::UnrecordedConnections {
            ids: vec![b, 7],
            waited: Duration::from_secs(5),
            records: log.records(),
        };
        assert_eq!(
            error.to_string(),
            "connections 2, 7 accepted but never recorded when the server stopped (a worker did not finish within 5 s)"
        );
    }
}
