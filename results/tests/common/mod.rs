//! Builders shared by the results crate's tests.

use model::{ConnectionRecord, Outcome, SessionInfo};

/// A server record: connection `id` from `[::1]:40000+id`, accepted at `at` µs, closed 5 µs later.
pub(crate) fn record(id: u64, at: u64, outcome: Outcome) -> ConnectionRecord {
    ConnectionRecord {
        id,
        accepted_at_us: at,
        closed_at_us: at + 5,
        client: format!("[::1]:{}", 40000 + id),
        client_port: 40000 + id as u16,
        local: "[::1]:8443".into(),
        outcome,
        session: SessionInfo::default(),
        backend_code: None,
        queue_wait_ms: None,
        queue_wait_unknown: None,
    }
}
