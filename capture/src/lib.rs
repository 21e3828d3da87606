//! What went over each connection of a trial, and the pcapng file that shows it in Wireshark.
//!
//! A [`Conversation`] is one TCP connection as one end saw it: the bytes each side sent, in the
//! order and at the times that end saw them, and how each side ended it (FIN or reset). Whoever
//! holds the bytes fills it — the in-process servers (`backends`) or a relay — through a
//! [`Recorder`], together with the TLS key log. [`write_pcapng`] frames the conversations as
//! TCP/IP packets with their real addresses and ports and embeds the key log in a Decryption
//! Secrets Block, so Wireshark (and tshark) open the file decrypted with no settings.

mod pcapng;

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

pub use crate::pcapng::write_pcapng;

/// One end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The end that connected (the browser).
    Client,
    /// The end that accepted (the TLS server).
    Server,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

/// What one side put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Bytes, in order.
    Data(Vec<u8>),
    /// An orderly end of this side's sending (FIN).
    Fin,
    /// The connection reset by this side (RST).
    Reset,
}

/// One thing one side did, when the recording end saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireEvent {
    /// Microseconds since the Unix epoch.
    pub at_us: u64,
    /// Who sent it.
    pub from: Side,
    /// What was sent.
    pub segment: Segment,
}

/// One TCP connection as one of its ends (or a relay between them) saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// The connection's id in the trial's connection records, so that a frame can be traced to
    /// its record (written as the pcapng packet comment of its SYN).
    pub id: u64,
    /// The client's address and port.
    pub client: SocketAddr,
    /// The server's address and port.
    pub server: SocketAddr,
    /// When the TCP handshake completed, microseconds since the Unix epoch.
    pub opened_at_us: u64,
    /// What each side sent, in the order the recording end saw it.
    pub events: Vec<WireEvent>,
}

impl Conversation {
    /// A connection with nothing sent yet.
    pub fn new(id: u64, client: SocketAddr, server: SocketAddr, opened_at_us: u64) -> Self {
        Self {
            id,
            client,
            server,
            opened_at_us,
            events: Vec::new(),
        }
    }

    /// Appends what `from` sent at `at_us`. An event after that side's FIN or after either
    /// side's reset is not possible on the wire and is dropped; so is an empty data segment.
    pub fn push(&mut self, at_us: u64, from: Side, segment: Segment) {
        if matches!(&segment, Segment::Data(d) if d.is_empty()) || !self.is_open(from) {
            return;
        }
        self.events.push(WireEvent {
            at_us,
            from,
            segment,
        });
    }

    /// Whether `side` may still send: it has sent no FIN and nobody reset the connection.
    pub fn is_open(&self, side: Side) -> bool {
        !self
            .events
            .iter()
            .any(|e| e.segment == Segment::Reset || (e.from == side && e.segment == Segment::Fin))
    }

    /// Whether the connection was reset by either side.
    pub fn was_reset(&self) -> bool {
        self.events.iter().any(|e| e.segment == Segment::Reset)
    }
}

/// A trial's capture as it fills: the conversations that ended and the TLS key log. Shared by
/// the threads that serve connections; cheap to lock (one push per connection, one line per
/// secret).
#[derive(Debug, Default)]
pub struct Recorder {
    state: Mutex<Capture>,
}

/// Everything a capture file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capture {
    /// Every recorded connection.
    pub conversations: Vec<Conversation>,
    /// The TLS key log, NSS format (`LABEL <client random hex> <secret hex>` per line).
    pub key_log: String,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Capture> {
        // A thread that panicked mid-push cannot leave a Vec or String inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection that ended.
    pub fn push(&self, conversation: Conversation) {
        self.lock().conversations.push(conversation);
    }

    /// Adds one key log line in NSS format; the line break is added here.
    pub fn key_log_line(&self, line: &str) {
        let mut s = self.lock();
        s.key_log.push_str(line.trim_end());
        s.key_log.push('\n');
    }

    /// Adds one secret as a key log line: `label`, the handshake's client random, the secret.
    pub fn key_log_secret(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        self.key_log_line(&format!("{label} {} {}", hex(client_random), hex(secret)));
    }

    /// A copy of what was recorded so far, conversations in id order.
    pub fn snapshot(&self) -> Capture {
        let mut capture = self.lock().clone();
        capture.conversations.sort_by_key(|c| c.id);
        capture
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
