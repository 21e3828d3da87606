//! WebKitGTK (Debian's `libwebkit2gtk-4.1-0`) through WebKitWebDriver, driving MiniBrowser
//! under an Xvfb display of the trial's own, with WebKit's release log received on a journal
//! socket of the trial's own.
//!
//! WebKitGTK has no headless mode, so the driver is started by a small launcher
//! ([`MOUNT_NAMESPACE`], [`LAUNCHER`]) that first starts Xvfb. Both run inside the driver's process group and PID namespace
//! (`process.rs`): Xvfb is stopped, swept and killed with the harness exactly like the
//! browser, and no display outlives its trial. One display per trial rather than per worker
//! keeps trials independent; it costs the Xvfb start (tens of milliseconds).
//!
//! WebKit sends its release log (`WEBKIT_DEBUG` channels) to the systemd journal, at the fixed
//! path `/run/systemd/journal/socket`. The launcher gives the driver a mount namespace of its
//! own in which the trial's folder is mounted over `/run`, so the log reaches a socket the
//! harness reads ([`JournalReceiver`]), and the machine's journal (if any) sees nothing. The same
//! namespace puts a trial's CA bundle in place of `/etc/ssl/certs` for `trusted-ca`: GnuTLS reads
//! its system trust from there, and the machine's store is never touched.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fantoccini::Client;
use model::{ClientLogSource, ConnectionRecord, TrustMode};
use results::ClientLog;
use serde_json::{Value, json};

use super::{BoxFuture, Browser, BrowserBinaries, BrowserError, SessionPlan, gzip};

/// WebKitGTK's MiniBrowser with WebKitWebDriver.
pub(super) struct Webkit;

/// Where Debian installs MiniBrowser (in the library's folder, not on PATH).
const MINIBROWSER: &str = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";

/// The trial's file of WebKit's journal messages, one line each.
const JOURNAL_FILE: &str = "webkit-journal.log";

/// The folder, inside the trial's TMPDIR, that the launcher mounts over `/run`.
const RUN_DIR: &str = "run";

/// The environment variable that tells the launcher where the trial's CA bundle folder is.
const CA_DIR_VAR: &str = "HM_WEBKIT_CA_DIR";

/// WebKit's release-log channels: `Network` turns on libsoup's message log (requests,
/// responses, the `Soup-Debug` line naming the session, message and socket), the others log
/// loads and their failures.
const LOG_CHANNELS: &str = "Network,NetworkSession,Loading,ResourceLoading";

/// The launcher's first half: gives the rest ([`LAUNCHER`]) a mount namespace of its own where
/// one can be made (`--propagation slave` keeps every mount inside it), and says which.
const MOUNT_NAMESPACE: &str = r#"
launcher=$1
shift
if unshare --mount --propagation slave true 2>/dev/null; then
  exec unshare --mount --propagation slave -- /bin/sh -c "$launcher" webkit-launcher private "$@"
fi
exec /bin/sh -c "$launcher" webkit-launcher shared "$@"
"#;

/// Starts Xvfb, then the driver (`"$@"`) with `DISPLAY` set. In a private mount namespace the
/// trial's folders replace `/run` (the journal socket), `/tmp/.X11-unix` (the display's socket,
/// so nothing of the display outlives the trial's TMPDIR and no trial sees another's) and, for
/// `trusted-ca`, `/etc/ssl/certs` (the CA bundle). Messages start with `handshake-matrix:`
/// and go to the driver's log.
///
/// WebKit's sandbox is bubblewrap; where bubblewrap cannot create its namespaces (an
/// unprivileged container) a sandboxed web process aborts, so the launcher tries bubblewrap
/// first and turns the sandbox off only then, saying so in the log. (MiniBrowser sandboxes its
/// web process only with `--enable-sandbox`, which the harness does not pass; the probe is for
/// a browser binary that does.)
const LAUNCHER: &str = r#"
mounts=$1
shift
xvfb_options="-nolisten tcp"
if [ "$mounts" = private ]; then
  if mount --bind "$TMPDIR/run" /run; then
    echo "handshake-matrix: WebKit's journal goes to the trial's socket" >&2
  else
    echo "handshake-matrix: cannot mount the trial folder over /run: WebKit's journal log is not captured" >&2
  fi
  mkdir -p -m 1777 "$TMPDIR/x11"
  if ! mount --bind "$TMPDIR/x11" /tmp/.X11-unix 2>/dev/null; then
    mkdir -p -m 1777 /tmp/.X11-unix && mount --bind "$TMPDIR/x11" /tmp/.X11-unix || exit 1
  fi
  # The display's socket is the trial's own: no lock file, no abstract socket (those are
  # shared by every trial on the machine).
  xvfb_options="$xvfb_options -nolisten local -nolock"
else
  echo "handshake-matrix: no mount namespace here: WebKit's journal log is not captured and the display's socket is in the machine's /tmp/.X11-unix" >&2
fi
if [ -n "${HM_WEBKIT_CA_DIR:-}" ]; then
  if [ "$mounts" != private ] || ! mount --bind "$HM_WEBKIT_CA_DIR" /etc/ssl/certs; then
    echo "handshake-matrix: trusted-ca needs the trial's CA bundle mounted over /etc/ssl/certs, which failed" >&2
    exit 1
  fi
fi
display_file="$TMPDIR/xvfb-display"
# shellcheck disable=SC2086
Xvfb -displayfd 3 $xvfb_options -screen 0 1280x1024x24 3>"$display_file" &
xvfb=$!
tries=0
until [ -s "$display_file" ]; do
  if ! kill -0 "$xvfb" 2>/dev/null || [ "$tries" -ge 200 ]; then
    echo "handshake-matrix: Xvfb did not start within 10 s" >&2
    exit 1
  fi
  tries=$((tries + 1))
  sleep 0.05
done
DISPLAY=":$(cat "$display_file")"
XDG_RUNTIME_DIR="$TMPDIR/xdg"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
export DISPLAY XDG_RUNTIME_DIR
echo "handshake-matrix: Xvfb (pid $xvfb) on display $DISPLAY" >&2
if ! bwrap --unshare-all --share-net --ro-bind / / --proc /proc --dev /dev true 2>/dev/null; then
  echo "handshake-matrix: bubblewrap cannot create its namespaces here, so WebKit's sandbox is off (WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS=1)" >&2
  WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS=1
  export WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS
fi
exec "$@"
"#;

impl Browser for Webkit {
    fn name(&self) -> &'static str {
        "WebKit"
    }

    fn binary_names(&self) -> &'static [&'static str] {
        // An absolute name is taken as it is (joining it to a PATH folder yields itself).
        &["MiniBrowser", MINIBROWSER]
    }

    fn driver_name(&self) -> &'static str {
        "WebKitWebDriver"
    }

    fn install_hint(&self) -> &'static str {
        "install it with `sudo scripts/setup.sh` (webkit2gtk-driver, xvfb)"
    }

    fn driver_args(&self, port: u16, _log: &Path) -> Vec<String> {
        // WebKitWebDriver and the browser log to their output, which the driver process writes
        // to `log`.
        vec![format!("--port={port}"), "--host=127.0.0.1".into()]
    }

    fn driver_program(&self, driver: &Path, args: Vec<String>) -> (PathBuf, Vec<String>) {
        let mut launch = vec![
            "-c".to_owned(),
            MOUNT_NAMESPACE.to_owned(),
            "webkit-launcher".to_owned(),
            LAUNCHER.to_owned(),
            driver.display().to_string(),
        ];
        launch.extend(args);
        ("/bin/sh".into(), launch)
    }

    fn driver_env(&self, plan: &SessionPlan<'_>) -> Vec<(&'static str, PathBuf)> {
        let mut env = vec![
            ("WEBKIT_DEBUG", LOG_CHANNELS.into()),
            // No accessibility bus: it would start a D-Bus daemon for every trial.
            ("NO_AT_BRIDGE", "1".into()),
            ("GDK_BACKEND", "x11".into()),
        ];
        if plan.trust == TrustMode::TrustedCa {
            env.push((CA_DIR_VAR, ca_dir(plan.dir)));
        }
        env
    }

    fn capabilities(&self, plan: &SessionPlan<'_>) -> serde_json::Map<String, Value> {
        let mut options = serde_json::Map::new();
        options.insert(
            "binary".into(),
            json!(plan.binaries.browser.display().to_string()),
        );
        options.insert("args".into(), json!(["--automation"]));
        if plan.trust == TrustMode::WebkitHostCertificate {
            // The leaf names every host the harness points a browser at; WebKit matches the
            // URL's host exactly.
            let file = plan.cert_files.chain.display().to_string();
            let certificates: Vec<Value> = ["localhost", "127.0.0.1", "::1"]
                .into_iter()
                .map(|host| json!({"host": host, "certificateFile": file}))
                .collect();
            options.insert("certificates".into(), Value::Array(certificates));
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("MiniBrowser"));
        caps.insert("webkitgtk:browserOptions".into(), Value::Object(options));
        caps
    }

    fn supports(&self, trust: TrustMode) -> Result<(), String> {
        match trust {
            TrustMode::ClickThrough => Err(CLICK_THROUGH_UNSUPPORTED.into()),
            TrustMode::IgnoreFlag | TrustMode::SpkiPin | TrustMode::DevtoolsIgnore => Err(format!(
                "{} is a Chromium mechanism; WebKitWebDriver has no equivalent flag or DevTools call",
                trust.as_str()
            )),
            _ => Ok(()),
        }
    }

    fn nss_database(&self, _home: &Path, _profile: &Path) -> Option<PathBuf> {
        // WebKit's TLS is GnuTLS, which reads no NSS database: `prepare_profile` writes the
        // trial's CA bundle instead.
        None
    }

    fn prepare_profile<'a>(
        &'a self,
        plan: &'a SessionPlan<'a>,
        _profile: &'a Path,
    ) -> BoxFuture<'a, Result<(), BrowserError>> {
        Box::pin(async move {
            if plan.trust != TrustMode::TrustedCa {
                return Ok(());
            }
            // The bundle holds the trust anchor alone: the browser trusts nothing else in
            // the trial, which talks to loopback only.
            let dir = ca_dir(plan.dir);
            let io = |what: String| move |source| BrowserError::Io { what, source };
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(io(format!("creating {}", dir.display())))?;
            let bundle = dir.join("ca-certificates.crt");
            tokio::fs::copy(&plan.cert_files.trust_anchor, &bundle)
                .await
                .map_err(io(format!("writing {}", bundle.display())))?;
            Ok(())
        })
    }

    fn session_helpers(
        &self,
        plan: &SessionPlan<'_>,
        tmp: &Path,
    ) -> Result<Option<Box<dyn Send + Sync>>, BrowserError> {
        let receiver = JournalReceiver::start(&tmp.join(RUN_DIR), &plan.dir.join(JOURNAL_FILE))
            .map_err(|source| BrowserError::Io {
                what: format!("starting the journal receiver in {}", tmp.display()),
                source,
            })?;
        Ok(Some(Box::new(receiver)))
    }

    fn versions(
        &self,
        binaries: &BrowserBinaries,
    ) -> (Result<String, String>, Result<String, String>) {
        // Neither MiniBrowser (it needs a display first) nor WebKitWebDriver has `--version`;
        // the Debian packages that installed them say which WebKitGTK they are.
        (
            package_version("MiniBrowser", &binaries.browser),
            package_version("WebKitWebDriver", &binaries.driver),
        )
    }

    fn proceed<'a>(&'a self, _c: &'a Client) -> BoxFuture<'a, Result<(), BrowserError>> {
        // Unreachable through the runner: `supports` rejects click-through.
        Box::pin(async { Err(BrowserError::Stuck(CLICK_THROUGH_UNSUPPORTED.into())) })
    }

    fn client_log_source(&self) -> ClientLogSource {
        ClientLogSource::WebkitJournal
    }

    fn client_log(
        &self,
        dir: &Path,
        rel_dir: &str,
        _records: &[ConnectionRecord],
    ) -> anyhow::Result<Option<ClientLog>> {
        // libsoup's log names its sockets by a counter (`GSocket 1`), never by address or
        // port, so no line links a server connection to what opened it: connections stay
        // `unknown`, and the log is kept for reading.
        let path = dir.join(JOURNAL_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let kept = gzip(&path)?;
        Ok(Some(ClientLog {
            source: self.client_log_source(),
            file: format!(
                "{rel_dir}/{}",
                kept.file_name().unwrap_or_default().to_string_lossy()
            ),
            truncated: false,
            browser_version: None,
            field_trials: Vec::new(),
            connections: Default::default(),
        }))
    }
}

/// Why WebKit has no click-through cell: tried and observed on Debian 12, WebKitGTK 2.50.6.
const CLICK_THROUGH_UNSUPPORTED: &str = "no WebKitGTK browser here shows a certificate warning WebDriver can act on: \
MiniBrowser reports a TLS error in a native GTK info bar outside the page (through WebDriver the navigation ends on \
about:blank with an empty title and nothing to click); Epiphany 43.1 with --automation-mode (under a D-Bus session bus; without one it hangs) \
aborts when WebKitWebDriver creates its window (assertion EPHY_IS_EMBED_CONTAINER in ephy_embed_container_get_active_child, \"Unknown error creating \
top level browsing context\")";

/// The trial's CA bundle folder (mounted over `/etc/ssl/certs` for `trusted-ca`).
fn ca_dir(trial: &Path) -> PathBuf {
    trial.join("webkit-ca")
}

/// `name (package version)` of the Debian package that installed `path`.
fn package_version(name: &str, path: &Path) -> Result<String, String> {
    let path = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let query = |args: &[&str]| -> Result<String, String> {
        let out = std::process::Command::new("dpkg-query")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("dpkg-query: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "dpkg-query {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let owner = query(&["-S", &path.display().to_string()])?;
    let package = owner
        .split(':')
        .next()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("no Debian package owns {}", path.display()))?;
    let version = query(&["-W", "-f=${Version}", package])?;
    Ok(format!("{name} ({package} {version})"))
}

/// Receives WebKit's journal messages on `<run>/systemd/journal/socket` and appends them to a
/// file, one line each, until dropped.
pub(super) struct JournalReceiver {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl JournalReceiver {
    fn start(run: &Path, out: &Path) -> std::io::Result<Self> {
        let dir = run.join("systemd/journal");
        std::fs::create_dir_all(&dir)?;
        let socket = UnixDatagram::bind(dir.join("socket"))?;
        // A short timeout, so that the thread sees `stop` soon after the session ends.
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("webkit-journal".into())
            .spawn(move || {
                let mut buf = vec![0; 1 << 18];
                loop {
                    match socket.recv(&mut buf) {
                        Ok(n) => {
                            let _ = writeln!(file, "{}", journal_line(&buf[..n]));
                        }
                        // Timeout: stop only once the queue is drained.
                        Err(_) if stopping.load(Ordering::Relaxed) => break,
                        Err(_) => {}
                    }
                }
                let _ = file.flush();
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for JournalReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One journal datagram as a line: the receive time (ms since the epoch), WebKit's channel and
/// the message. The native protocol (systemd's `journal-native-protocol`) is `KEY=value\n`
/// fields, or `KEY\n`, a little-endian u64 length and the raw value for values holding a line
/// break; line breaks in the message are written as `\n`. An empty datagram is a message
/// passed as a file descriptor (too large for a datagram), which is not read.
fn journal_line(datagram: &[u8]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let (mut channel, mut message) = (String::new(), None);
    let mut rest = datagram;
    while !rest.is_empty() {
        let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let field = &rest[..line_end];
        let (key, value, next) = match field.iter().position(|&b| b == b'=') {
            Some(eq) => (&field[..eq], &field[eq + 1..], line_end + 1),
            None => {
                // Binary form: the length follows the key's line break.
                let start = line_end + 1;
                let Some(len) = rest
                    .get(start..start + 8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_le_bytes)
                    .and_then(|l| usize::try_from(l).ok())
                else {
                    break;
                };
                let value = rest
                    .get(start + 8..)
                    .map(|v| &v[..len.min(v.len())])
                    .unwrap_or_default();
                (field, value, start + 8 + len + 1)
            }
        };
        match key {
            b"MESSAGE" => message = Some(String::from_utf8_lossy(value).replace('\n', "\\n")),
            b"WEBKIT_CHANNEL" => channel = String::from_utf8_lossy(value).into_owned(),
            _ => {}
        }
        rest = rest.get(next..).unwrap_or_default();
    }
    match message {
        Some(m) => format!("{now} [{channel}] {m}"),
        None if datagram.is_empty() => {
            format!("{now} [] (a message passed as a file descriptor, not read)")
        }
        None => format!("{now} [{channel}] (no MESSAGE field)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_datagrams_of_both_forms_become_one_line_each() {
        let plain = b"PRIORITY=6\nWEBKIT_CHANNEL=Network\nMESSAGE=> GET / HTTP/1.1\nCODE_LINE=1\n";
        let line = journal_line(plain);
        assert!(line.ends_with(" [Network] > GET / HTTP/1.1"), "{line}");
        let mut binary = b"WEBKIT_CHANNEL=Loading\nMESSAGE\n".to_vec();
        binary.extend(5u64.to_le_bytes());
        binary.extend(b"a\nb=c\n");
        binary.extend(b"CODE_FUNC=f\n");
        let line = journal_line(&binary);
        assert!(line.ends_with(" [Loading] a\\nb=c"), "{line}");
        assert!(journal_line(b"").contains("file descriptor"));
    }

    #[test]
    fn the_journal_receiver_writes_what_it_receives_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join(JOURNAL_FILE);
        let receiver = JournalReceiver::start(&dir.path().join(RUN_DIR), &out).unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        let socket = dir.path().join("run/systemd/journal/socket");
        sender
            .send_to(b"WEBKIT_CHANNEL=Network\nMESSAGE=one\n", &socket)
            .unwrap();
        sender.send_to(b"MESSAGE=two\n", &socket).unwrap();
        drop(receiver);
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(" [Network] one") && lines[1].ends_with(" [] two"));
    }
}
