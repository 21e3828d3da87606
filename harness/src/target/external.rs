//! A server the user names (`--target https://HOST[:PORT]/[PATH]`): their dev server, their
//! device. The harness does not start it and cannot read its records, so every trial puts the
//! recording relay on loopback between the browser and it, and steers the browser there
//! without changing the URL (see [`super::Steering`]). The TLS version is pinned in the
//! browser, since the server's own settings are the server's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use model::{ConnectionRecord, TlsVersion, TrustMode};

use super::relay::{Route, RunningRelay};
use super::{
    RunningTarget, ServedCertificate, Steering, Target, TargetError, TrialServer, Unrecorded,
};
use crate::browser::BrowserKind;
use crate::scenario::{Host, ScenarioFile};

/// How long the probe waits for the target's TCP accept and its ServerHello.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a probe of the target found, once, before the run.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The leaf certificate's SubjectPublicKeyInfo, SHA-256, base64 (for `spki-pin`).
    pub spki_sha256: String,
    /// Why the certificate does not name the URL's host, if it does not.
    pub name_mismatch: Option<String>,
}

/// An external HTTPS server.
#[derive(Debug)]
pub struct External {
    url: url::Url,
    name: String,
    host: String,
    port: u16,
    upstream: SocketAddr,
    probe: Probe,
    /// `--target-ca`: the CA (or self-signed certificate) that `trusted-ca` installs.
    ca_pem: Option<String>,
}

impl External {
    /// Checks the URL and the target before any browser starts: one clear error for a bad
    /// URL, an unreachable target, a target that is not TLS, and one that stalls.
    pub fn new(url: &str, name: Option<String>, ca: Option<&Path>) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("--target {url}: not a URL: {e}"))?;
        if parsed.scheme() != "https" {
            return Err(format!(
                "--target {url}: only https:// URLs can be measured"
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("--target {url}: no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let upstream = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("--target {url}: cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("--target {url}: {host} has no address"))?;
        let probe = probe(upstream, &host).map_err(|e| format!("--target {url}: {e}"))?;
        let ca_pem = match ca {
            None => None,
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| format!("--target-ca {}: {e}", p.display()))?,
            ),
        };
        Ok(Self {
            name: name.unwrap_or_else(|| format!("{host}:{port}")),
            url: parsed,
            host,
            port,
            upstream,
            probe,
            ca_pem,
        })
    }

    /// What the probe found.
    pub fn probe(&self) -> &Probe {
        &self.probe
    }
}

/// Connects, sends a ClientHello, and reads the certificate, without verifying it.
fn probe(addr: SocketAddr, host: &str) -> Result<Probe, String> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let tcp = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(PROBE_TIMEOUT)).ok();
    tcp.set_write_timeout(Some(PROBE_TIMEOUT)).ok();
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    builder.set_verify(SslVerifyMode::NONE);
    let connector = builder.build();
    let mut config = connector.configure().map_err(|e| e.to_string())?;
    config.set_verify_hostname(false);
    let started = Instant::now();
    let tls = config.connect(host, tcp).map_err(|e| {
        let text = e.to_string();
        if started.elapsed() >= PROBE_TIMEOUT - Duration::from_millis(100) {
            format!(
                "{addr} accepted the connection but sent no ServerHello within {} s",
                PROBE_TIMEOUT.as_secs()
            )
        } else if text.contains("wrong version number") || text.contains("packet length too long") {
            format!("{addr} is not a TLS server (it answered a ClientHello with something else)")
        } else {
            format!("no TLS handshake with {addr}: {text}")
        }
    })?;
    let cert = tls
        .ssl()
        .peer_certificate()
        .ok_or_else(|| format!("{addr} sent no certificate"))?;
    let spki = cert
        .public_key()
        .and_then(|k| k.public_key_to_der())
        .map_err(|e| e.to_string())?;
    use base64::Engine as _;
    let spki_sha256 = base64::engine::general_purpose::STANDARD.encode(openssl::sha::sha256(&spki));
    let names: Vec<String> = cert
        .subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|n| {
                    n.dnsname()
                        .map(str::to_owned)
                        .or_else(|| n.ipaddress().and_then(ip_text))
                })
                .collect()
        })
        .unwrap_or_default();
    let matches = names.iter().any(|n| {
        n.eq_ignore_ascii_case(host)
            || n.strip_prefix("*.").is_some_and(|suffix| {
                host.split_once('.')
                    .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(suffix))
            })
    });
    Ok(Probe {
        spki_sha256,
        name_mismatch: (!matches).then(|| {
            format!(
                "its certificate names {} but not {host}: browsers will also report a name mismatch",
                if names.is_empty() { "no host".to_owned() } else { names.join(", ") }
            )
        }),
    })
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

impl Target for External {
    fn name(&self) -> &str {
        &self.name
    }

    fn unavailable(&self) -> Option<String> {
        None
    }

    fn supports(&self, _scenario: &ScenarioFile, _tls: TlsVersion) -> Result<(), String> {
        Ok(())
    }

    fn supports_browser(&self, browser: BrowserKind, trust: TrustMode) -> Result<(), String> {
        if trust == TrustMode::TrustedCa && self.ca_pem.is_none() {
            return Err("trusted-ca needs the target's CA: give it with --target-ca FILE".into());
        }
        if browser == BrowserKind::Firefox {
            if trust == TrustMode::ClickThrough {
                return Err("Firefox reaches the relay through `network.socket.forcePort`, and an exception added on its warning page then does not hold for the next connection (measured: the warning comes back); measure Firefox click-through against the server directly".into());
            }
            let literal = self.host.parse::<IpAddr>();
            if literal.is_ok_and(|ip| !ip.is_loopback()) {
                return Err(format!(
                    "Firefox cannot be steered away from an IP address ({}) without a proxy: `network.dns.forceResolve` applies to names only",
                    self.host
                ));
            }
        }
        Ok(())
    }

    fn own_certificate(&self) -> bool {
        true
    }

    fn start(&self, trial: &TrialServer<'_>) -> Result<Box<dyn RunningTarget>, TargetError> {
        let fail = |cause: String| TargetError {
            target: self.name.clone(),
            cause: cause.into(),
        };
        // The relay on a loopback address: the URL's own if it is one, else 127.0.0.1.
        let listen_ip = match self.host.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => ip,
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let relay = RunningRelay::start(&[Route {
            listen: SocketAddr::new(listen_ip, trial.port.unwrap_or(0)),
            upstream: self.upstream,
        }])
        .map_err(|e| fail(format!("the relay: {e}")))?;
        Ok(Box::new(RunningExternal {
            capture: relay.recorder(),
            url: self.url.to_string(),
            steering: Steering {
                host: self.host.clone(),
                port: self.port,
                to_host: listen_ip.to_string(),
                to_port: relay.port(),
            },
            relay: Some(relay),
            tls: trial.tls,
            spki_sha256: self.probe.spki_sha256.clone(),
            ca_pem: self.ca_pem.clone(),
        }))
    }
}

struct RunningExternal {
    capture: std::sync::Arc<capture::Recorder>,
    url: String,
    steering: Steering,
    relay: Option<RunningRelay>,
    tls: TlsVersion,
    spki_sha256: String,
    ca_pem: Option<String>,
}

impl RunningTarget for RunningExternal {
    fn url(&self, _host: Host) -> String {
        self.url.clone()
    }

    fn last_accept(&self) -> Option<Instant> {
        self.relay.as_ref().and_then(RunningRelay::last_accept)
    }

    fn queued(&self) -> u32 {
        0
    }

    fn steering(&self, _host: Host) -> Option<Steering> {
        Some(self.steering.clone())
    }

    fn browser_tls(&self) -> Option<TlsVersion> {
        Some(self.tls)
    }

    fn capture(&self) -> Option<std::sync::Arc<capture::Recorder>> {
        Some(self.capture.clone())
    }

    fn served_certificate(&self) -> Option<ServedCertificate> {
        Some(ServedCertificate {
            spki_sha256: self.spki_sha256.clone(),
            trust_anchor_pem: self.ca_pem.clone(),
        })
    }

    fn stop(mut self: Box<Self>) -> Result<Vec<ConnectionRecord>, Unrecorded> {
        self.relay.take().expect("running").stop()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn bad_targets_are_one_line_errors_before_the_run() {
        for (url, says) in [
            ("http://127.0.0.1:1/", "only https:// URLs"),
            ("not a url", "not a URL"),
        ] {
            let e = External::new(url, None, None).unwrap_err();
            assert!(e.contains(says) && !e.contains('\n'), "{e}");
        }
        // Nothing listens on a port we just closed.
        let port = crate::process::free_port().unwrap();
        let e = External::new(&format!("https://127.0.0.1:{port}/"), None, None).unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
        // Not TLS: a listener that answers in plain HTTP.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let plain = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        });
        let e = External::new(&format!("https://{addr}/"), None, None).unwrap_err();
        assert!(e.contains("not a TLS server"), "{e}");
        plain.join().unwrap();
    }

    #[test]
    fn a_target_that_stalls_is_an_error_after_the_probe_timeout() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let started = Instant::now();
        let e = External::new(&format!("https://{addr}/"), None, None).unwrap_err();
        assert!(e.contains("no ServerHello within"), "{e}");
        assert!(started.elapsed() < PROBE_TIMEOUT * 2);
        drop(l);
    }
}
