//! The byte tap: what went over each connection's socket, in each direction, when the server
//! saw it — for the trial's capture file. It sits between the TLS library and the socket and
//! only watches: every read and write passes through unchanged, errors included.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use capture::{Conversation, Recorder, Segment, Side};

use crate::server::now_us;

/// The socket a backend runs its handshake and records over. With a tap, every byte read and
/// written, the client's FIN (a read of 0) and its reset are recorded on the way through.
pub struct Wire {
    tcp: TcpStream,
    tap: Option<Arc<Tap>>,
}

impl Wire {
    /// A socket without a tap.
    pub fn new(tcp: TcpStream) -> Self {
        Self { tcp, tap: None }
    }

    pub(crate) fn tapped(tcp: TcpStream, tap: Arc<Tap>) -> Self {
        Self {
            tcp,
            tap: Some(tap),
        }
    }

    /// The socket, for backends that do their own I/O on its descriptor (Mbed TLS's shim),
    /// and the tap they must report that I/O to.
    #[cfg_attr(hm_mbedtls_missing, allow(dead_code))]
    pub(crate) fn into_parts(self) -> (TcpStream, Option<Arc<Tap>>) {
        (self.tcp, self.tap)
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.tcp.read(buf);
        if let Some(tap) = &self.tap {
            match &result {
                Ok(n) => tap.received(&buf[..*n], buf.is_empty()),
                Err(e) => tap.failed(e),
            }
        }
        result
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.tcp.write(buf);
        if let Some(tap) = &self.tap {
            match &result {
                Ok(n) => tap.sent(&buf[..*n]),
                Err(e) => tap.failed(e),
            }
        }
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

impl AsRawFd for Wire {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.tcp.as_raw_fd()
    }
}

/// One connection's recording, and the trial's recorder it goes to when the connection ends.
#[derive(Debug)]
pub(crate) struct Tap {
    conversation: Mutex<Conversation>,
    recorder: Arc<Recorder>,
    /// Set when the server cut the connection itself (handshake deadline, stop): what reads
    /// and writes see after that is our own doing, not the client's.
    cut_by_server: Arc<AtomicBool>,
}

impl Tap {
    pub(crate) fn new(
        recorder: Arc<Recorder>,
        conversation: Conversation,
        cut_by_server: Arc<AtomicBool>,
    ) -> Arc<Self> {
        Arc::new(Self {
            conversation: Mutex::new(conversation),
            recorder,
            cut_by_server,
        })
    }

    fn cut(&self) -> bool {
        self.cut_by_server.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Conversation> {
        self.conversation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server read `bytes`; nothing read into a non-empty buffer is the client's FIN.
    pub(crate) fn received(&self, bytes: &[u8], empty_buffer: bool) {
        let segment = match (bytes.is_empty(), empty_buffer) {
            (false, _) => Segment::Data(bytes.to_vec()),
            (true, false) if !self.cut() => Segment::Fin,
            (true, _) => return,
        };
        self.lock().push(now_us(), Side::Client, segment);
    }

    /// The server wrote `bytes`.
    pub(crate) fn sent(&self, bytes: &[u8]) {
        self.lock()
            .push(now_us(), Side::Server, Segment::Data(bytes.to_vec()));
    }

    /// A read or write failed; a reset (or a write into a reset connection) is the client's.
    /// Timeouts and other errors put nothing on the wire.
    pub(crate) fn failed(&self, err: &io::Error) {
        use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        if matches!(err.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) && !self.cut() {
            self.lock().push(now_us(), Side::Client, Segment::Reset);
        }
    }

    /// A TLS key log line from a library that hands secrets per connection (Mbed TLS).
    #[cfg_attr(hm_mbedtls_missing, allow(dead_code))]
    pub(crate) fn key_log_line(&self, line: &str) {
        self.recorder.key_log_line(line);
    }

    /// The server is closing `tcp`: a FIN, or a reset when unread bytes are still in the
    /// socket's receive queue (Linux resets a connection closed with data unread). Then the
    /// conversation goes to the trial's recorder.
    pub(crate) fn close(&self, tcp: Option<&TcpStream>) {
        let mut c = self.lock();
        if !c.was_reset() {
            let unread = tcp.map(unread_bytes).unwrap_or(0);
            let segment = if unread > 0 {
                Segment::Reset
            } else {
                Segment::Fin
            };
            c.push(now_us(), Side::Server, segment);
        }
        self.recorder.push(c.clone());
    }
}

/// Bytes received that nobody has read yet (`FIONREAD`); 0 when the kernel does not say.
fn unread_bytes(tcp: &TcpStream) -> libc::c_int {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int to the valid pointer; the fd is owned by `tcp`.
    let rc = unsafe { libc::ioctl(tcp.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc == 0 { n } else { 0 }
}
