//! The HTTP responder every backend shares: a page at `/`, a favicon, 404 otherwise — as
//! HTTP/1.1 (parallel servers) or as HTTP/1.0 with the body ending at close (one-at-a-time
//! servers, like Mbed TLS's `ssl_server`).

use std::time::{Duration, Instant};

use model::{Cause, HandshakeFailure, PAGE_TITLE};

use crate::{ConnectionPolicy, TlsSession};

/// Largest request head accepted; a larger one ends the connection.
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

fn page() -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{PAGE_TITLE}</title>\
         <link rel=\"icon\" href=\"/favicon.ico\"></head>\
         <body><h1 id=\"loaded\">{PAGE_TITLE}</h1><p>The TLS handshake succeeded.</p></body></html>"
    )
}

/// A 16×16 single-colour ICO, so browsers fetch a real favicon (another connection under `close`).
fn favicon() -> Vec<u8> {
    let mut ico = Vec::new();
    // ICONDIR + one ICONDIRENTRY pointing at a 32-bit BMP.
    let bmp_len: u32 = 40 + 16 * 16 * 4 + 16 * 4;
    ico.extend_from_slice(&[0, 0, 1, 0, 1, 0]);
    ico.extend_from_slice(&[16, 16, 0, 0, 1, 0, 32, 0]);
    ico.extend_from_slice(&bmp_len.to_le_bytes());
    ico.extend_from_slice(&22u32.to_le_bytes());
    // BITMAPINFOHEADER, height doubled for the AND mask.
    ico.extend_from_slice(&40u32.to_le_bytes());
    ico.extend_from_slice(&16i32.to_le_bytes());
    ico.extend_from_slice(&32i32.to_le_bytes());
    ico.extend_from_slice(&1u16.to_le_bytes());
    ico.extend_from_slice(&32u16.to_le_bytes());
    ico.extend_from_slice(&[0; 24]);
    for _ in 0..16 * 16 {
        ico.extend_from_slice(&[0x40, 0x80, 0x20, 0xff]);
    }
    ico.extend_from_slice(&[0; 16 * 4]);
    ico
}

/// How serving a connection ended.
pub struct Served {
    /// Requests answered.
    pub requests: u32,
    /// The failure that ended it, if it was not an orderly close.
    pub failure: Option<HandshakeFailure>,
}

/// How responses are framed and when the connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseStyle {
    /// HTTP/1.1 with `Content-Length` and a `Connection` header; the connection stays open or
    /// closes after each response as the policy (or the client's `Connection: close`) says.
    Http11(ConnectionPolicy),
    /// HTTP/1.0 like `ssl_server`: no `Content-Length`, the body ends at close. One request per
    /// connection, then close_notify and close.
    Http10,
}

/// Answers HTTP/1.1 requests on `session` until the peer closes, the policy closes, or an
/// error; [`serve_as`] with [`ResponseStyle::Http11`].
pub fn serve(
    session: &mut dyn TlsSession,
    policy: ConnectionPolicy,
    head_deadline: Duration,
) -> Served {
    serve_as(session, ResponseStyle::Http11(policy), head_deadline)
}

/// Answers requests on `session` in `style` until the peer closes, the style closes, or an
/// error.
///
/// A request head must be complete within `head_deadline` of its first byte: a client that
/// trickles bytes (slowloris) would otherwise reset the socket's per-read timeout forever.
pub fn serve_as(
    session: &mut dyn TlsSession,
    style: ResponseStyle,
    head_deadline: Duration,
) -> Served {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut requests = 0;
    loop {
        let mut head_started: Option<Instant> = None;
        // Read until a complete head is buffered.
        let (head_len, path, client_wants_close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let close = req.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("connection")
                            && String::from_utf8_lossy(h.value).eq_ignore_ascii_case("close")
                    }) || req.version == Some(0);
                    break (n, req.path.unwrap_or("/").to_owned(), close);
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => {
                    let message = format!("request head larger than {MAX_HEAD} bytes");
                    return bad_request(session, style, requests, message);
                }
                Err(e) => {
                    let message = format!("malformed request: {e}");
                    return bad_request(session, style, requests, message);
                }
            }
            if head_started.is_some_and(|t| t.elapsed() > head_deadline) {
                let failure = HandshakeFailure {
                    cause: Cause::Timeout,
                    backend_code: Some(format!(
                        "timeout: request head incomplete after {} s",
                        head_deadline.as_secs_f32()
                    )),
                };
                return Served {
                    requests,
                    failure: Some(failure),
                };
            }
            let mut chunk = [0u8; 4096];
            match session.read(&mut chunk) {
                Ok(0) => {
                    return Served {
                        requests,
                        failure: None,
                    };
                }
                Ok(n) => {
                    head_started.get_or_insert_with(Instant::now);
                    buf.extend_from_slice(&chunk[..n]);
                }
                // A connection that is idle between requests and then ends is not a failure.
                Err(f)
                    if buf.is_empty()
                        && requests > 0
                        && !matches!(f.cause, Cause::Alert { .. }) =>
                {
                    return Served {
                        requests,
                        failure: None,
                    };
                }
                Err(f) => {
                    return Served {
                        requests,
                        failure: Some(f),
                    };
                }
            }
        };
        buf.drain(..head_len);
        requests += 1;
        let close = match style {
            ResponseStyle::Http11(policy) => {
                policy == ConnectionPolicy::Close || client_wants_close
            }
            ResponseStyle::Http10 => true,
        };
        let (status, content_type, body) = match path.split('?').next().unwrap_or("/") {
            "/" | "/index.html" => ("200 OK", "text/html; charset=utf-8", page().into_bytes()),
            "/favicon.ico" => ("200 OK", "image/x-icon", favicon()),
            _ => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
        };
        let head = match style {
            ResponseStyle::Http11(_) => format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 Cache-Control: no-store\r\nConnection: {}\r\n\r\n",
                body.len(),
                if close { "close" } else { "keep-alive" }
            ),
            // The body ends where the connection does.
            ResponseStyle::Http10 => format!(
                "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nCache-Control: no-store\r\n\r\n"
            ),
        };
        let mut response = head.into_bytes();
        response.extend_from_slice(&body);
        if let Err(f) = session.write_all(&response) {
            return Served {
                requests,
                failure: Some(f),
            };
        }
        if close {
            session.close();
            return Served {
                requests,
                failure: None,
            };
        }
    }
}

fn bad_request(
    session: &mut dyn TlsSession,
    style: ResponseStyle,
    requests: u32,
    message: String,
) -> Served {
    let response: &[u8] = match style {
        ResponseStyle::Http11(_) => {
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        ResponseStyle::Http10 => b"HTTP/1.0 400 Bad Request\r\n\r\n",
    };
    let _ = session.write_all(response);
    session.close();
    // The request was answered (with 400); the message is for the log, not a handshake failure.
    tracing::debug!("answered 400: {message}");
    Served {
        requests: requests + 1,
        failure: None,
    }
}
