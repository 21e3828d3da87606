//! The connection log shared by a server's workers and whoever watches it.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::record::ConnectionRecord;

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
