//! Real browsers through WebDriver: Chromium (chromedriver) and Firefox ESR (geckodriver).
//!
//! A [`BrowserSession`] is one trial's browser: its own driver process, its own profile and
//! HOME (where Chromium keeps its NSS database), its own way of trusting the certificate.
//! What the browser *showed* after each step is read from the page, never assumed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use certs::{CertBundle, CertFiles};
use fantoccini::{Client, ClientBuilder, Locator};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use model::{Knobs, PAGE_TITLE, TrustMode};

use crate::process::{DriverProcess, free_port};

/// A browser the harness can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrowserKind {
    /// Debian's `chromium` with `chromedriver`.
    Chromium,
    /// Debian's `firefox-esr` with `geckodriver`.
    Firefox,
}

impl BrowserKind {
    /// Both browsers, in report order.
    pub const ALL: [Self; 2] = [Self::Chromium, Self::Firefox];

    /// `chromium` or `firefox`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chromium => "chromium",
            Self::Firefox => "firefox",
        }
    }
}

impl std::fmt::Display for BrowserKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Err(reason)` when `browser` cannot accept a certificate this way.
pub fn trust_support(mode: TrustMode, browser: BrowserKind) -> Result<(), String> {
    match (mode, browser) {
        (
            TrustMode::IgnoreFlag | TrustMode::SpkiPin | TrustMode::DevtoolsIgnore,
            BrowserKind::Firefox,
        ) => Err(format!(
            "{} is a Chromium mechanism; Firefox has no equivalent command-line flag or DevTools call",
            mode.as_str()
        )),
        _ => Ok(()),
    }
}

/// Where the browser and driver binaries are.
#[derive(Clone, Debug)]
pub struct BrowserBinaries {
    /// The browser executable.
    pub browser: PathBuf,
    /// chromedriver or geckodriver.
    pub driver: PathBuf,
}

/// Errors starting or driving a browser.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// A binary is not installed.
    #[error("{what} not found ({path}); install it with `sudo scripts/setup.sh`")]
    Missing {
        /// Which binary.
        what: &'static str,
        /// Where it was looked for.
        path: String,
    },
    /// The driver did not start or answer.
    #[error("{driver} did not start: {reason} (log: {log})")]
    DriverStart {
        /// Which driver.
        driver: &'static str,
        /// What went wrong.
        reason: String,
        /// The driver's log.
        log: String,
    },
    /// The WebDriver session could not be created.
    #[error("could not create a {browser} session (driver log: {log})")]
    Session {
        /// Which browser.
        browser: BrowserKind,
        /// The driver's error.
        #[source]
        source: fantoccini::error::NewSessionError,
        /// The driver's log.
        log: String,
    },
    /// A WebDriver command failed.
    #[error("webdriver command `{what}` failed")]
    Command {
        /// The command.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: fantoccini::error::CmdError,
    },
    /// `certutil` failed to build the trust store.
    #[error("certutil failed: {0}; install it with `sudo scripts/setup.sh` (libnss3-tools)")]
    Certutil(String),
    /// Local I/O (trial directories, logs).
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The page did not reach the expected state in time.
    #[error("{0}")]
    Stuck(String),
}

fn cmd(what: &'static str) -> impl FnOnce(fantoccini::error::CmdError) -> BrowserError {
    move |source| BrowserError::Command { what, source }
}

/// What the browser showed at the end of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Shown {
    /// The server's page loaded.
    Page,
    /// The certificate warning page, with the browser's error code.
    Warning {
        /// e.g. `ERR_CERT_AUTHORITY_INVALID`, `MOZILLA_PKIX_ERROR_SELF_SIGNED_CERT`.
        code: String,
    },
    /// Anything else (a network error page, a blank page).
    Other {
        /// The page title and URL, for the log.
        detail: String,
    },
}

/// Resolves a binary from an explicit path or PATH.
fn find_binary(
    explicit: Option<&Path>,
    names: &[&str],
    what: &'static str,
) -> Result<PathBuf, BrowserError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(BrowserError::Missing {
                what,
                path: p.display().to_string(),
            })
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    for name in names {
        for dir in &dirs {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(BrowserError::Missing {
        what,
        path: format!("{} on PATH", names.join(" or ")),
    })
}

impl BrowserBinaries {
    /// Finds `kind`'s browser and driver: the explicit paths when given, PATH (and
    /// ~/.cargo/bin) otherwise.
    pub fn find(
        kind: BrowserKind,
        browser: Option<&Path>,
        driver: Option<&Path>,
    ) -> Result<Self, BrowserError> {
        let (browser_names, browser_what, driver_name): (&[&str], _, _) = match kind {
            BrowserKind::Chromium => (
                &["chromium", "chromium-browser"],
                "Chromium",
                "chromedriver",
            ),
            BrowserKind::Firefox => (&["firefox-esr", "firefox"], "Firefox", "geckodriver"),
        };
        Ok(Self {
            browser: find_binary(browser, browser_names, browser_what)?,
            driver: find_binary(driver, &[driver_name], driver_name)?,
        })
    }
}

/// Reads `--version` of a binary: `Chromium 156.0.…`, `ChromeDriver 156.…`, `geckodriver 0.37.1`.
pub fn binary_version(path: &Path) -> Result<String, String> {
    let out = std::process::Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    // chromedriver appends its git revision in parentheses and Debian's Chromium says where it
    // was built; keep the name and version.
    let line = line.split(" (").next().unwrap_or(line);
    let line = line.split(" built on ").next().unwrap_or(line);
    if line.is_empty() {
        Err(format!("{} --version printed nothing", path.display()))
    } else {
        Ok(line.to_owned())
    }
}

/// Everything one trial's browser needs.
pub struct SessionPlan<'a> {
    /// Which browser.
    pub kind: BrowserKind,
    /// Its binaries.
    pub binaries: &'a BrowserBinaries,
    /// How it accepts the certificate.
    pub trust: TrustMode,
    /// The certificate the server presents.
    pub cert: &'a CertBundle,
    /// The certificate files on disk.
    pub cert_files: &'a CertFiles,
    /// Scenario knobs.
    pub knobs: &'a Knobs,
    /// The trial's private directory (profile, HOME, logs).
    pub dir: &'a Path,
}

/// A running browser with a WebDriver session.
pub struct BrowserSession {
    kind: BrowserKind,
    client: Option<Client>,
    driver: DriverProcess,
    driver_url: String,
    session_id: String,
    /// Removed when the session is dropped, after the driver is stopped.
    _tmp: tempfile::TempDir,
}

/// Chromium's NetLog of a trial, in the trial folder.
pub const NETLOG_FILE: &str = "netlog.json";
/// Firefox's MOZ_LOG of a trial (Firefox adds suffixes per process).
pub const MOZ_LOG_FILE: &str = "firefox.moz_log";

const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
];

/// Firefox prefs that stop background traffic (captive portal, Safe Browsing, remote settings,
/// telemetry, MITM priming), so every connection the server sees comes from the scenario.
fn firefox_prefs(knobs: &Knobs) -> serde_json::Map<String, Value> {
    let mut prefs = serde_json::Map::new();
    for (k, v) in [
        ("security.dialog_enable_delay", json!(0)),
        ("network.captive-portal-service.enabled", json!(false)),
        ("network.connectivity-service.enabled", json!(false)),
        ("network.trr.mode", json!(5)),
        ("network.dns.disablePrefetch", json!(true)),
        ("network.prefetch-next", json!(false)),
        ("browser.safebrowsing.malware.enabled", json!(false)),
        ("browser.safebrowsing.phishing.enabled", json!(false)),
        ("browser.safebrowsing.downloads.enabled", json!(false)),
        ("browser.safebrowsing.blockedURIs.enabled", json!(false)),
        ("browser.safebrowsing.provider.mozilla.updateURL", json!("")),
        ("browser.safebrowsing.provider.google4.updateURL", json!("")),
        ("security.certerrors.mitm.priming.enabled", json!(false)),
        (
            "security.certerrors.mitm.auto_enable_enterprise_roots",
            json!(false),
        ),
        ("security.enterprise_roots.enabled", json!(false)),
        (
            "security.remote_settings.crlite_filters.enabled",
            json!(false),
        ),
        (
            "security.remote_settings.intermediates.enabled",
            json!(false),
        ),
        ("security.OCSP.enabled", json!(0)),
        (
            "services.settings.server",
            json!("data:,#remote-settings-dummy/v1"),
        ),
        ("datareporting.policy.dataSubmissionEnabled", json!(false)),
        ("datareporting.healthreport.uploadEnabled", json!(false)),
        ("toolkit.telemetry.enabled", json!(false)),
        ("browser.newtabpage.enabled", json!(false)),
        ("browser.startup.page", json!(0)),
        ("browser.region.network.url", json!("")),
        ("geo.provider.network.url", json!("")),
        ("extensions.update.enabled", json!(false)),
        ("extensions.getAddons.cache.enabled", json!(false)),
        ("app.update.auto", json!(false)),
        ("network.http.http3.enable", json!(false)),
    ] {
        prefs.insert(k.into(), v);
    }
    if let Some(limit) = knobs.speculative_parallel_limit {
        prefs.insert(
            "network.http.speculative-parallel-limit".into(),
            json!(limit),
        );
    }
    prefs
}

async fn create_dir(dir: &Path) -> Result<(), BrowserError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| BrowserError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })
}

/// Creates an NSS database in `db_dir` and, with `trust`, imports the trust anchor.
async fn nss_database(db_dir: &Path, plan: &SessionPlan<'_>) -> Result<(), BrowserError> {
    create_dir(db_dir).await?;
    let db = format!("sql:{}", db_dir.display());
    let run = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("certutil")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| BrowserError::Certutil(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(BrowserError::Certutil(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ))
        }
    };
    if !db_dir.join("cert9.db").exists() {
        run(vec![
            "-N".into(),
            "-d".into(),
            db.clone(),
            "--empty-password".into(),
        ])
        .await?;
    }
    // `C,,` trusts a CA to issue server certificates; `P,,` trusts a leaf as a peer.
    let flags = if plan.cert.trust_anchor_is_ca {
        "C,,"
    } else {
        "P,,"
    };
    run(vec![
        "-A".into(),
        "-d".into(),
        db,
        "-n".into(),
        "handshake-matrix".into(),
        "-t".into(),
        flags.into(),
        "-i".into(),
        plan.cert_files.trust_anchor.display().to_string(),
    ])
    .await
}

/// A chromedriver-only command: run a DevTools method in the session's page.
#[derive(Debug)]
struct CdpExecute {
    method: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for CdpExecute {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"cmd": self.method, "params": self.params}).to_string()),
        )
    }
}

/// Finds the browser's certificate error code in the page, including inside shadow roots
/// (Firefox renders its error page in the `net-error-card` shadow DOM).
const ERROR_CODE_SCRIPT: &str = r#"
try { const code = document.getFailedCertSecurityInfo().errorCodeString; if (code) return code; } catch (e) {}
function text(node) {
  let t = node.textContent || '';
  for (const el of node.querySelectorAll('*')) { if (el.shadowRoot) t += ' ' + text(el.shadowRoot); }
  return t;
}
const all = text(document.documentElement) + ' ' + decodeURIComponent(location.href);
const m = all.match(/(MOZILLA_PKIX_ERROR_[A-Z_]+|SEC_ERROR_[A-Z_]+|SSL_ERROR_[A-Z_]+|ERR_CERT_[A-Z_]+|ERR_[A-Z_]+)/);
return m ? m[1] : '';
"#;

impl BrowserSession {
    /// Starts the driver and a WebDriver session for one trial.
    pub async fn start(plan: &SessionPlan<'_>) -> Result<Self, BrowserError> {
        let (home, profile) = home_and_profile(plan.dir);
        for d in [&home, &profile] {
            create_dir(d).await?;
        }
        if plan.trust == TrustMode::TrustedCa {
            // Chromium reads $HOME/.pki/nssdb; Firefox reads the profile's own database.
            let db = match plan.kind {
                BrowserKind::Chromium => home.join(".pki/nssdb"),
                BrowserKind::Firefox => profile.clone(),
            };
            nss_database(&db, plan).await?;
        }

        if plan.kind == BrowserKind::Firefox {
            let user_js: String = firefox_prefs(plan.knobs)
                .into_iter()
                .map(|(k, v)| format!("user_pref({}, {v});\n", Value::String(k)))
                .collect();
            let path = profile.join("user.js");
            tokio::fs::write(&path, user_js)
                .await
                .map_err(|source| BrowserError::Io {
                    what: format!("writing {}", path.display()),
                    source,
                })?;
        }

        // A short TMPDIR of its own: Chromium's singleton socket path must fit in 108 bytes,
        // which a temporary folder inside a deep run folder does not.
        let tmp = tempfile::Builder::new()
            .prefix("hm-")
            .tempdir()
            .map_err(|source| BrowserError::Io {
                what: "creating a temporary folder".into(),
                source,
            })?;
        let mut attempt = 0;
        let (driver, port, log) = loop {
            attempt += 1;
            let port = free_port().map_err(|source| BrowserError::Io {
                what: "finding a free port".into(),
                source,
            })?;
            let DriverCommand {
                name: driver_name,
                args,
                env,
                log,
            } = driver_command(plan, port, tmp.path());
            let sweep = vec![plan.dir.to_owned(), tmp.path().to_owned()];
            match DriverProcess::spawn(
                driver_name,
                &plan.binaries.driver,
                &args,
                &env,
                &log,
                port,
                sweep,
            )
            .await
            {
                Ok(driver) => break (driver, port, log),
                // Another process (a parallel trial's server) can take the probed port before
                // the driver binds it; nothing has been measured yet, so try another port.
                Err(reason) if attempt < 3 => {
                    tracing::debug!("{driver_name} attempt {attempt}: {reason}")
                }
                Err(reason) => {
                    return Err(BrowserError::DriverStart {
                        driver: driver_name,
                        reason,
                        log: log.display().to_string(),
                    });
                }
            }
        };

        let caps = capabilities(plan);
        let driver_url = format!("http://127.0.0.1:{port}");
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .map_err(|source| BrowserError::Session {
                browser: plan.kind,
                source,
                log: log.display().to_string(),
            })?;
        let session_id = client
            .session_id()
            .await
            .map_err(cmd("session id"))?
            .unwrap_or_default();
        let session = Self {
            kind: plan.kind,
            client: Some(client),
            driver,
            driver_url,
            session_id,
            _tmp: tmp,
        };
        if plan.trust == TrustMode::DevtoolsIgnore {
            session
                .client()
                .issue_cmd(CdpExecute {
                    method: "Security.setIgnoreCertificateErrors",
                    params: json!({"ignore": true}),
                })
                .await
                .map_err(cmd("Security.setIgnoreCertificateErrors"))?;
        }
        Ok(session)
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("client lives until close")
    }

    /// Sum of the peak resident memory (VmHWM) of the driver and every browser process in its
    /// process group, KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.driver.group_peak_rss_kib()
    }

    /// Navigates to `url` and reports what is shown.
    pub async fn visit(&self, url: &str) -> Result<Shown, BrowserError> {
        match self.client().goto(url).await {
            Ok(()) => {}
            // geckodriver answers a navigation to an untrusted certificate with this error;
            // the warning page is nevertheless what the user sees.
            Err(e) if e.is_insecure_certificate() => {}
            Err(e) => {
                return Err(BrowserError::Command {
                    what: "navigate",
                    source: e,
                });
            }
        }
        self.shown().await
    }

    /// Reads what the browser shows now.
    pub async fn shown(&self) -> Result<Shown, BrowserError> {
        let title = self.client().title().await.map_err(cmd("get title"))?;
        if title == PAGE_TITLE {
            return Ok(Shown::Page);
        }
        let url = self.client().current_url().await.map_err(cmd("get url"))?;
        let code = self
            .client()
            .execute(ERROR_CODE_SCRIPT, vec![])
            .await
            .map_err(cmd("read error code"))?;
        let code = code
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("NET::")
            .to_owned();
        let is_cert_error = url.as_str().starts_with("about:certerror")
            || code.contains("CERT")
            || code.starts_with("MOZILLA_PKIX")
            || code.starts_with("SEC_ERROR")
            || code.starts_with("SSL_ERROR");
        if is_cert_error {
            Ok(Shown::Warning { code })
        } else {
            Ok(Shown::Other {
                detail: format!("title {title:?} at {url} {code}").trim().to_owned(),
            })
        }
    }

    /// Clicks through the certificate warning as a user does, then waits for the page.
    pub async fn proceed(&self) -> Result<Shown, BrowserError> {
        let c = self.client();
        match self.kind {
            BrowserKind::Chromium => {
                c.find(Locator::Css("#details-button"))
                    .await
                    .map_err(cmd("find #details-button"))?
                    .click()
                    .await
                    .map_err(cmd("click #details-button"))?;
                c.find(Locator::Css("#proceed-link"))
                    .await
                    .map_err(cmd("find #proceed-link"))?
                    .click()
                    .await
                    .map_err(cmd("click #proceed-link"))?;
            }
            BrowserKind::Firefox => {
                // Firefox's error page keeps its buttons (`moz-button` elements) in the
                // `net-error-card` shadow root. A WebDriver pointer click on them does nothing in
                // headless Firefox ESR 153 (observed), so the button's own click() is invoked,
                // which runs the same handler a user's click runs.
                // The exception button is wired up a moment after the advanced panel opens, and a
                // click before that is silently ignored: click, and click again while the warning
                // is still shown.
                let script = "const card = document.querySelector('net-error-card'); \
                     const root = card && card.shadowRoot; if (!root) return 'gone'; \
                     const ex = root.querySelector('#exception-button'); \
                     if (ex && ex.checkVisibility()) { ex.click(); return 'exception'; } \
                     const adv = root.querySelector('#advanced-button'); \
                     if (adv && !ex) { adv.click(); return 'advanced'; } return 'waiting';";
                let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
                loop {
                    let step = c
                        .execute(script, vec![])
                        .await
                        .map_err(cmd("click Firefox warning button"));
                    let step = match step {
                        Ok(v) => v.as_str().unwrap_or_default().to_owned(),
                        // The page is navigating away: the click worked.
                        Err(_) => "gone".into(),
                    };
                    if step == "gone" {
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(BrowserError::Stuck(format!(
                            "Firefox's warning page did not proceed (last: {step})"
                        )));
                    }
                    let pause = if step == "exception" { 500 } else { 150 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
        }
        self.wait_for_page(Duration::from_secs(15)).await
    }

    /// Polls until the server's page is shown or `timeout` passes; returns what is shown.
    pub async fn wait_for_page(&self, timeout: Duration) -> Result<Shown, BrowserError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Navigation in progress can make a command fail transiently; retry until the deadline.
            let shown = self.shown().await;
            if let Ok(Shown::Page) = shown {
                return Ok(Shown::Page);
            }
            if tokio::time::Instant::now() >= deadline {
                return shown;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deletes the WebDriver session, then stops the driver and every process it left.
    pub async fn close(mut self) {
        let client = self.client.take();
        end_session(client, &mut self.driver).await;
        tracing::trace!(url = %self.driver_url, session = %self.session_id, "session closed");
    }
}

/// A trial's teardown: deletes the WebDriver session (bounded: a hung browser must not hang
/// the run), then stops the driver and waits for every process of its group. Public so that
/// the benchmark's floor (`benches/trial_floor.rs`) ends its sessions exactly as a trial does.
pub async fn end_session(client: Option<Client>, driver: &mut DriverProcess) {
    if let Some(client) = client {
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
    }
    driver.stop().await;
}

/// A trial's browser HOME and profile folders inside its folder `dir`.
pub fn home_and_profile(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("home"), dir.join("profile"))
}

/// How to start a trial's WebDriver server.
pub struct DriverCommand {
    /// `chromedriver` or `geckodriver`.
    pub name: &'static str,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its environment, passed on to the browser it starts.
    pub env: Vec<(&'static str, PathBuf)>,
    /// Where its (and, for Chromium, the browser's) log goes.
    pub log: PathBuf,
}

/// The driver's arguments and environment for one trial listening on `port`, with `tmp` as the
/// browser's TMPDIR. Public, with [`capabilities`], so that the benchmark's floor starts the
/// same browser the same way as a trial (no copy of the arguments there).
pub fn driver_command(plan: &SessionPlan<'_>, port: u16, tmp: &Path) -> DriverCommand {
    let (home, _) = home_and_profile(plan.dir);
    let log = plan.dir.join(match plan.kind {
        BrowserKind::Chromium => "chromedriver.log",
        BrowserKind::Firefox => "geckodriver.log",
    });
    let name = match plan.kind {
        BrowserKind::Chromium => "chromedriver",
        BrowserKind::Firefox => "geckodriver",
    };
    let mut env = vec![
        ("HOME", home.clone()),
        ("XDG_CONFIG_HOME", home.join(".config")),
        ("XDG_CACHE_HOME", home.join(".cache")),
        ("TMPDIR", tmp.to_owned()),
    ];
    if plan.kind == BrowserKind::Firefox {
        // Firefox's own account of its connections (the driver passes its environment on).
        env.push(("MOZ_LOG", "timestamp,nsHttp:5,nsSocketTransport:5".into()));
        // Release builds honour `services.settings.server` only with this set; without it
        // Firefox fetches remote settings from its own servers at start-up.
        env.push(("MOZ_REMOTE_SETTINGS_DEVTOOLS", "1".into()));
        env.push(("MOZ_LOG_FILE", plan.dir.join(MOZ_LOG_FILE)));
    }
    let args: Vec<String> = match plan.kind {
        // No `--allowed-ips`: with it chromedriver binds every interface (and only
        // filters by peer address); without it, it binds 127.0.0.1 and ::1 alone. A
        // WebDriver endpoint can start any program, so it must not be reachable at all.
        BrowserKind::Chromium => vec![
            format!("--port={port}"),
            "--enable-chrome-logs".into(),
            format!("--log-path={}", log.display()),
        ],
        BrowserKind::Firefox => {
            vec![
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--log".into(),
                "info".into(),
            ]
        }
    };
    DriverCommand {
        name,
        args,
        env,
        log,
    }
}

/// Whether the system resolver lists ::1 first for `localhost` (as chromedriver sees it).
fn localhost_resolves_to_ipv6_first() -> bool {
    use std::net::ToSocketAddrs;
    ("localhost", 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|a| a.is_ipv6())
}

/// The WebDriver capabilities of a trial's session: the browser's binary and every argument
/// (Chromium's flags, NetLog, trust-mode flags) or Firefox's profile. The one place they are
/// made: trials and the benchmark's floor both use it.
pub fn capabilities(plan: &SessionPlan<'_>) -> serde_json::Map<String, Value> {
    let (_, profile) = home_and_profile(plan.dir);
    let profile = profile.as_path();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "acceptInsecureCerts".into(),
        json!(plan.trust == TrustMode::AcceptInsecure),
    );
    caps.insert("pageLoadStrategy".into(), json!("normal"));
    match plan.kind {
        BrowserKind::Chromium => {
            let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| (*s).to_owned()).collect();
            args.push(format!("--user-data-dir={}", profile.display()));
            // The client side of every connection, to say why each one was opened.
            args.push(format!(
                "--log-net-log={}",
                plan.dir.join(NETLOG_FILE).display()
            ));
            args.push("--net-log-capture-mode=Everything".into());
            // chromedriver reaches Chromium's DevTools at `localhost` and tries only the first
            // address the system resolver gives, while DevTools listens on 127.0.0.1 alone.
            // Where `localhost` resolves to ::1 first (Debian's default /etc/hosts, container
            // images) every session failed with "unable to connect to renderer": listen
            // where chromedriver will look. Still loopback only.
            if localhost_resolves_to_ipv6_first() {
                args.push("--remote-debugging-address=::1".into());
            }
            match plan.trust {
                TrustMode::IgnoreFlag => args.push("--ignore-certificate-errors".into()),
                TrustMode::SpkiPin => args.push(format!(
                    "--ignore-certificate-errors-spki-list={}",
                    plan.cert.leaf_spki_sha256
                )),
                _ => {}
            }
            if !plan.knobs.chromium_features.is_empty() {
                let features: Vec<&str> = plan
                    .knobs
                    .chromium_features
                    .iter()
                    .map(|f| f.as_str())
                    .collect();
                args.push(format!("--enable-features={}", features.join(",")));
            }
            let mut options = json!({
                "binary": plan.binaries.browser.display().to_string(),
                "args": args,
            });
            if let Some(v) = plan.knobs.network_prediction_options {
                options["prefs"] = json!({"net": {"network_prediction_options": v}});
            }
            caps.insert("browserName".into(), json!("chrome"));
            caps.insert("goog:chromeOptions".into(), options);
        }
        BrowserKind::Firefox => {
            caps.insert("browserName".into(), json!("firefox"));
            caps.insert(
                "moz:firefoxOptions".into(),
                json!({
                    "binary": plan.binaries.browser.display().to_string(),
                    // With `-profile` geckodriver uses the directory as it is; its prefs are in
                    // the user.js that `BrowserSession::start` wrote.
                    "args": ["-headless", "-profile", profile.display().to_string()],
                    "log": {"level": "info"},
                }),
            );
        }
    }
    caps
}
