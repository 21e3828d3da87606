//! Builders for tests across the workspace (feature `testing`), so that no crate keeps its own
//! copy of a record with every field spelled out.

use crate::{ConnectionRecord, Outcome, SessionInfo};

/// A server record: connection `id` from `[::1]:40000+id` to `[::1]:8443`, accepted at `at`
/// µs, closed 5 µs later, with nothing negotiated. Change other fields with struct update
/// syntax: `ConnectionRecord { client: …, ..record(1, 0, Outcome::Idle) }`.
pub fn record(id: u64, at: u64, outcome: Outcome) -> ConnectionRecord {
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
        relay: None,
    }
}
