//! Real server programs from Debian, started per trial with the trial's certificate on
//! loopback and observed through the recording relay: lighttpd with each of its TLS modules,
//! and nginx. They keep no record the harness can read, so the relay's records are the only
//! ones (and say which fields they inferred).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use backends::{Concurrency, ConnectionPolicy};
use model::{ConnectionRecord, TlsVersion};

use super::{Relayed, RunningTarget, Target, TargetError, TrialServer, Unrecorded};
use crate::process::ServerProcess;
use crate::scenario::{Host, ScenarioFile};

/// A server program the harness can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerProgram {
    /// lighttpd with `mod_openssl` (OpenSSL 3.0).
    LighttpdOpenssl,
    /// lighttpd with `mod_gnutls` (GnuTLS 3.7).
    LighttpdGnutls,
    /// lighttpd with `mod_wolfssl` (wolfSSL 5.5, common on embedded devices).
    LighttpdWolfssl,
    /// lighttpd with `mod_mbedtls` (Debian 12's Mbed TLS 2.28: TLS 1.2 only).
    LighttpdMbedtls,
    /// nginx (`nginx-light`, OpenSSL 3.0).
    Nginx,
}

impl ServerProgram {
    /// Every program, in the matrix's order.
    pub const ALL: [Self; 5] = [
        Self::LighttpdOpenssl,
        Self::LighttpdGnutls,
        Self::LighttpdWolfssl,
        Self::LighttpdMbedtls,
        Self::Nginx,
    ];

    /// The name in scenarios, `--backend` and the matrix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LighttpdOpenssl => "lighttpd-openssl",
            Self::LighttpdGnutls => "lighttpd-gnutls",
            Self::LighttpdWolfssl => "lighttpd-wolfssl",
            Self::LighttpdMbedtls => "lighttpd-mbedtls",
            Self::Nginx => "nginx",
        }
    }

    /// Its name's program, and (lighttpd) its TLS module.
    fn parts(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::LighttpdOpenssl => ("lighttpd", Some("openssl")),
            Self::LighttpdGnutls => ("lighttpd", Some("gnutls")),
            Self::LighttpdWolfssl => ("lighttpd", Some("wolfssl")),
            Self::LighttpdMbedtls => ("lighttpd", Some("mbedtls")),
            Self::Nginx => ("nginx", None),
        }
    }

    fn binary(self) -> PathBuf {
        PathBuf::from(format!("/usr/sbin/{}", self.parts().0))
    }

    fn module(self) -> Option<PathBuf> {
        self.parts()
            .1
            .map(|m| PathBuf::from(format!("/usr/lib/lighttpd/mod_{m}.so")))
    }

    /// The Debian package that provides it.
    fn package(self) -> String {
        match self.parts() {
            ("lighttpd", Some(m)) => format!("lighttpd lighttpd-mod-{m}"),
            _ => "nginx-light".into(),
        }
    }

    /// Why it cannot run here, if it cannot.
    pub fn unavailable(self) -> Option<String> {
        for path in [Some(self.binary()), self.module()].into_iter().flatten() {
            if !path.exists() {
                return Some(format!(
                    "{} not found: install it with `sudo scripts/setup.sh` (Debian: apt-get install {})",
                    path.display(),
                    self.package()
                ));
            }
        }
        None
    }

    /// The version as the program reports it (`lighttpd -v`, `nginx -v`), with the TLS module.
    pub fn version(self) -> Result<String, String> {
        if let Some(why) = self.unavailable() {
            return Err(why);
        }
        let out = std::process::Command::new(self.binary())
            .arg("-v")
            .output()
            .map_err(|e| format!("{}: {e}", self.binary().display()))?;
        let text = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
        Ok(match self.parts().1 {
            Some(m) => format!("{text}, mod_{m}"),
            None => text,
        })
    }
}

impl fmt::Display for ServerProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `program`, observed through the relay.
pub(super) fn target(program: ServerProgram) -> Arc<dyn Target> {
    Arc::new(Relayed::observing(Arc::new(Program(program))))
}

/// A server program as a target (behind the relay: see [`target`]).
#[derive(Debug)]
struct Program(ServerProgram);

impl Target for Program {
    fn name(&self) -> &str {
        self.0.as_str()
    }

    fn unavailable(&self) -> Option<String> {
        self.0.unavailable()
    }

    fn supports(&self, scenario: &ScenarioFile, tls: TlsVersion) -> Result<(), String> {
        if self.0 == ServerProgram::LighttpdMbedtls && tls == TlsVersion::Tls13 {
            return Err(
                "Debian 12's lighttpd-mod-mbedtls links Mbed TLS 2.28, which has no TLS 1.3".into(),
            );
        }
        if scenario.concurrency == Concurrency::OneAtATime {
            return Err(format!(
                "{} serves connections in parallel; one-at-a-time is a built-in backend's mode",
                self.0
            ));
        }
        Ok(())
    }

    fn start(&self, trial: &TrialServer<'_>) -> Result<Box<dyn RunningTarget>, TargetError> {
        let fail = |cause: String| TargetError {
            target: self.0.as_str().to_owned(),
            cause: cause.into(),
        };
        let dir = trial.dir.join("server");
        let www = dir.join("www");
        std::fs::create_dir_all(&www).map_err(|e| fail(format!("{}: {e}", www.display())))?;
        std::fs::write(
            www.join("index.html"),
            format!(
                "<!doctype html><html><head><title>{}</title></head><body>served by {}</body></html>\n",
                model::PAGE_TITLE,
                self.0
            ),
        )
        .map_err(|e| fail(format!("writing the page: {e}")))?;
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let anchor = dir.join("trust-anchor.pem");
        std::fs::write(&cert, &trial.cert.chain_pem)
            .and_then(|()| std::fs::write(&key, &trial.cert.key_pem))
            .and_then(|()| std::fs::write(&anchor, &trial.cert.trust_anchor_pem))
            .map_err(|e| fail(format!("writing the certificate: {e}")))?;
        let port = free_loopback_port().map_err(|e| fail(format!("no free port: {e}")))?;
        let conf = match self.0.parts() {
            ("lighttpd", Some(module)) => lighttpd_conf(
                module,
                &www,
                &dir,
                [&cert, &key, &anchor],
                port,
                trial.tls,
                trial.scenario.connection,
            ),
            _ => nginx_conf(&www, &dir, &cert, &key, port, trial.tls, trial.scenario),
        };
        std::fs::write(dir.join("server.conf"), conf)
            .map_err(|e| fail(format!("writing its config: {e}")))?;
        // Paths relative to the server's folder (its working directory): a command line that
        // names the trial's folder would be taken for the browser's leftover and killed when
        // the browser's session ends.
        let args: Vec<String> = match self.0.parts().0 {
            "lighttpd" => ["-D", "-f", "server.conf"].map(String::from).to_vec(),
            _ => ["-e", "error.log", "-p", "./", "-c", "server.conf"]
                .map(String::from)
                .to_vec(),
        };
        let process = ServerProcess::spawn(&self.0.binary(), &args, &dir, "output.log", port)
            .map_err(fail)?;
        Ok(Box::new(RunningProgram { process, port }))
    }
}

/// A port free on both 127.0.0.1 and ::1.
fn free_loopback_port() -> std::io::Result<u16> {
    for _ in 0..20 {
        let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = v4.local_addr()?.port();
        if TcpListener::bind((Ipv6Addr::LOCALHOST, port)).is_ok() || !ipv6_loopback() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other(
        "no port free on both loopback families",
    ))
}

fn ipv6_loopback() -> bool {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

fn tls_name(tls: TlsVersion) -> &'static str {
    match tls {
        TlsVersion::Tls12 => "TLSv1.2",
        TlsVersion::Tls13 => "TLSv1.3",
    }
}

/// lighttpd: both loopback families, the TLS version pinned through `ssl-conf-cmd` (which
/// every lighttpd TLS module reads), keep-alive or one request per connection. HTTP/1.1 only,
/// like the built-in servers and nginx here: lighttpd offers HTTP/2 by default, where one
/// connection carries every request and "close after each response" has no meaning.
///
/// mod_wolfssl (wolfSSL 5.5) checks its own certificate chain whenever a client asks for OCSP
/// stapling, which both browsers do, and fails the handshake without a ServerHello when it
/// cannot (measured with `openssl s_client -status`: `SSL: -275 ASN self-signed certificate
/// error` for a self-signed certificate, `-188 certificate verify failed` for a private CA's
/// leaf). Given the certificate's trust anchor as `ssl.ca-file` it serves: that file is where
/// lighttpd looks for client-certificate issuers, and without `ssl.verifyclient` it asks
/// nothing of the client.
fn lighttpd_conf(
    module: &str,
    www: &Path,
    dir: &Path,
    [cert, key, anchor]: [&Path; 3],
    port: u16,
    tls: TlsVersion,
    connection: ConnectionPolicy,
) -> String {
    let v = tls_name(tls);
    let keep_alive = match connection {
        ConnectionPolicy::KeepAlive => 100,
        ConnectionPolicy::Close => 0,
    };
    let mut conf = format!(
        r#"server.modules = ("mod_{module}")
server.document-root = "{www}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{dir}/error.log"
server.max-keep-alive-requests = {keep_alive}
index-file.names = ("index.html")
mimetype.assign = (".html" => "text/html")
server.feature-flags = ("server.h2proto" => "disable")
ssl.engine = "enable"
ssl.pemfile = "{cert}"
ssl.privkey = "{key}"
ssl.openssl.ssl-conf-cmd = ("MinProtocol" => "{v}", "MaxProtocol" => "{v}")
"#,
        www = www.display(),
        dir = dir.display(),
        cert = cert.display(),
        key = key.display(),
    );
    if module == "wolfssl" {
        conf.push_str(&format!("ssl.ca-file = \"{}\"\n", anchor.display()));
    }
    if ipv6_loopback() {
        conf.push_str(&format!(
            "$SERVER[\"socket\"] == \"[::1]:{port}\" {{ ssl.engine = \"enable\" }}\n"
        ));
    }
    conf
}

/// nginx in the foreground, one process, everything it writes inside the trial's folder.
fn nginx_conf(
    www: &Path,
    dir: &Path,
    cert: &Path,
    key: &Path,
    port: u16,
    tls: TlsVersion,
    scenario: &ScenarioFile,
) -> String {
    let keepalive = match scenario.connection {
        ConnectionPolicy::KeepAlive => "75s",
        ConnectionPolicy::Close => "0",
    };
    let tickets = if scenario.resumption { "on" } else { "off" };
    let v6 = if ipv6_loopback() {
        format!("    listen [::1]:{port} ssl;\n")
    } else {
        String::new()
    };
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp;
  proxy_temp_path {dir}/tmp;
  fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp;
  scgi_temp_path {dir}/tmp;
  keepalive_timeout {keepalive};
  server {{
    listen 127.0.0.1:{port} ssl;
{v6}    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols {v};
    ssl_session_tickets {tickets};
    root {www};
  }}
}}
"#,
        dir = dir.display(),
        cert = cert.display(),
        key = key.display(),
        www = www.display(),
        v = tls_name(tls),
    )
}

struct RunningProgram {
    process: ServerProcess,
    port: u16,
}

impl RunningTarget for RunningProgram {
    fn url(&self, host: Host) -> String {
        match host {
            Host::Localhost => format!("https://localhost:{}/", self.port),
            Host::Ipv4 => format!("https://127.0.0.1:{}/", self.port),
        }
    }

    fn last_accept(&self) -> Option<Instant> {
        // Only the relay in front sees connections arrive.
        None
    }

    fn queued(&self) -> u32 {
        0
    }

    fn stop(mut self: Box<Self>) -> Result<Vec<ConnectionRecord>, Unrecorded> {
        let crashed = !self.process.running();
        self.process.stop();
        if crashed {
            return Err(Unrecorded {
                reason: "the server program exited during the trial; see server/output.log and server/error.log".into(),
                records: Vec::new(),
            });
        }
        Ok(Vec::new())
    }
}
