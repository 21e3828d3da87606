//! Real browsers through WebDriver, one engine per module behind [`Browser`]: Chromium
//! (chromedriver, `chromium.rs`), Firefox ESR (geckodriver, `firefox.rs`) and WebKitGTK's
//! MiniBrowser (WebKitWebDriver under a display of its own, `webkit.rs`).
//!
//! A [`BrowserSession`] is one trial's browser: its own driver process, its own profile and
//! HOME, its own way of trusting the certificate. What the browser *showed* after each step is
//! read from the page, never assumed. This module is the same for every engine; where engines
//! differ it asks the engine ([`BrowserKind::engine`]), never matches on the kind.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use certs::{CertBundle, CertFiles};
use fantoccini::{Client, ClientBuilder};
use model::{ClientLogSource, ConnectionRecord, Knobs, PAGE_TITLE, TlsVersion, TrustMode};
use results::{CellResult, ClientLog};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::process::{DriverProcess, free_port};
use crate::target::Steering;

mod build;
mod chromium;
mod firefox;
mod template;
mod webkit;

pub use self::build::{BrowserBuild, Label};
pub use self::template::ProfileTemplates;

/// Where a browser that can writes its TLS key log (NSS format) in the trial's folder.
pub const BROWSER_KEY_LOG: &str = "browser-keys.log";

/// Declares the engines: the [`BrowserKind`] enum (one variant per engine, named in
/// scenarios, results and on the command line by its literal), [`BrowserKind::ALL`],
/// `as_str` and [`BrowserKind::engine`]. Adding an engine is its module and one line here; the
/// command line still lists its `--browser` value and binary flags by hand (`cli`).
macro_rules! browsers {
    ($($(#[$doc:meta])* $kind:ident = $name:literal => $engine:path),+ $(,)?) => {
        /// A browser the harness can drive.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum BrowserKind {
            $($(#[$doc])* #[serde(rename = $name)] $kind,)+
        }

        impl BrowserKind {
            /// Every browser, in report order.
            pub const ALL: [Self; [$($name),+].len()] = [$(Self::$kind),+];

            /// The name in scenarios, results and on the command line: `chromium`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$kind => $name,)+
                }
            }

            /// The engine that drives this browser.
            pub fn engine(self) -> &'static dyn Browser {
                match self {
                    $(Self::$kind => &$engine,)+
                }
            }
        }

        // `--browser` takes the same names, so a new engine is on the command line too.
        impl clap::ValueEnum for BrowserKind {
            fn value_variants<'a>() -> &'a [Self] {
                &Self::ALL
            }

            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(self.as_str()))
            }
        }
    };
}

browsers! {
    /// Debian's `chromium` with `chromedriver`.
    Chromium = "chromium" => chromium::Chromium,
    /// Debian's `firefox-esr` with `geckodriver`.
    Firefox = "firefox" => firefox::Firefox,
    /// Debian's WebKitGTK MiniBrowser with `WebKitWebDriver`.
    Webkit = "webkit" => webkit::Webkit,
}

impl std::fmt::Display for BrowserKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A boxed future, so that [`Browser`]'s async methods keep the trait object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One browser engine: everything the harness does differently for it. The session, the
/// driver process and the runner are the same for every engine and ask it through this trait.
///
/// Engines are used as `&'static dyn Browser` ([`BrowserKind::engine`]) rather than as a type
/// parameter because which engine a trial uses is data — a scenario's `browsers`, a cell's key,
/// a `--browser` flag — picked at run time per cell: a generic session would need a `match` on
/// the kind wherever one is made, the very match this trait removes. An engine holds no state,
/// so `'static` costs nothing and it can move onto a blocking thread (where the client log is
/// read). The async methods return a [`BoxFuture`] for object safety.
///
/// Trust is set up in three places, each where the browser needs it: [`Browser::prepare_profile`]
/// (and the NSS database at [`Browser::nss_database`]) before the browser starts, the
/// capabilities (flags) at its start, [`Browser::session_started`] through the live session.
pub trait Browser: Send + Sync {
    /// The product's name in messages: `Chromium`.
    fn name(&self) -> &'static str;

    /// The browser's executable names, looked up on PATH in this order.
    fn binary_names(&self) -> &'static [&'static str];

    /// The WebDriver server's executable name; its log in the trial folder is `<name>.log`.
    fn driver_name(&self) -> &'static str;

    /// What to do about a missing browser or driver, said after "not found".
    fn install_hint(&self) -> &'static str;

    /// The driver's arguments: listen on `port` of loopback alone (a WebDriver endpoint can
    /// start any program), log to `log`.
    fn driver_args(&self, port: u16, log: &Path) -> Vec<String>;

    /// The program that runs the driver and its arguments, given the driver's binary and
    /// [`Browser::driver_args`]: the driver itself by default. An engine whose browser needs
    /// more around it (a display) starts it here, inside the driver's process group and PID
    /// namespace, so that it is owned, stopped and swept exactly like the browser.
    fn driver_program(&self, driver: &Path, args: Vec<String>) -> (PathBuf, Vec<String>) {
        (driver.to_owned(), args)
    }

    /// What the engine runs beside the session for as long as it lives (a log receiver),
    /// given the trial's private TMPDIR `tmp`; dropping the value stops it. Nothing by default.
    fn session_helpers(
        &self,
        plan: &SessionPlan<'_>,
        tmp: &Path,
    ) -> Result<Option<Box<dyn Send + Sync>>, BrowserError> {
        let _ = (plan, tmp);
        Ok(None)
    }

    /// The browser's and the driver's versions (or why unknown): `--version` of each by
    /// default ([`binary_version`]).
    fn versions(
        &self,
        binaries: &BrowserBinaries,
    ) -> (Result<String, String>, Result<String, String>) {
        (
            binary_version(&binaries.browser),
            binary_version(&binaries.driver),
        )
    }

    /// Environment the driver passes on to the browser, beyond the trial's HOME and TMPDIR.
    fn driver_env(&self, plan: &SessionPlan<'_>) -> Vec<(&'static str, PathBuf)> {
        let _ = plan;
        Vec::new()
    }

    /// The engine's own WebDriver capabilities, added to the common ones: its `browserName` and
    /// options (binary, arguments, profile, prefs from the knobs, trust-mode flags).
    fn capabilities(&self, plan: &SessionPlan<'_>) -> serde_json::Map<String, Value>;

    /// `Err(reason)` when the engine has no way to accept a certificate by `trust`: its cells
    /// are unsupported (with the reason), not failed.
    fn supports(&self, trust: TrustMode) -> Result<(), String>;

    /// The NSS database the browser reads, given the trial's HOME and profile folders;
    /// [`TrustMode::TrustedCa`] imports the trust anchor there. `None`: the browser reads no
    /// NSS database (its engine sets up `trusted-ca` in [`Browser::prepare_profile`]).
    fn nss_database(&self, home: &Path, profile: &Path) -> Option<PathBuf>;

    /// `Some`: the engine's first start in an empty profile does work every start can reuse,
    /// so a run makes a profile template once ([`ProfileTemplates`]) and copies it into each
    /// trial's profile, less these files and folders (anything that could carry a decision
    /// about a site or a connection, and the running browser's locks). `None` (the default):
    /// every trial starts from an empty profile.
    fn profile_template_skips(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Writes what the profile needs before the browser starts (prefs from the knobs).
    fn prepare_profile<'a>(
        &'a self,
        plan: &'a SessionPlan<'a>,
        profile: &'a Path,
    ) -> BoxFuture<'a, Result<(), BrowserError>> {
        let _ = (plan, profile);
        Box::pin(async { Ok(()) })
    }

    /// Trust set up through the live session (a DevTools call), right after it started.
    fn session_started<'a>(
        &'a self,
        client: &'a Client,
        plan: &'a SessionPlan<'a>,
    ) -> BoxFuture<'a, Result<(), BrowserError>> {
        let _ = (client, plan);
        Box::pin(async { Ok(()) })
    }

    /// Clicks through the certificate warning as a user does; the session then waits for the
    /// page.
    fn proceed<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<(), BrowserError>>;

    /// Reads a page that is not the server's (its title is `title`): the certificate warning
    /// with the browser's code, or something else. The default reads both Chromium's and
    /// Firefox's error pages ([`read_error_page`]); an engine whose warning reads differently
    /// overrides it.
    fn read_warning<'a>(
        &'a self,
        client: &'a Client,
        title: String,
    ) -> BoxFuture<'a, Result<Shown, BrowserError>> {
        Box::pin(read_error_page(client, title))
    }

    /// Records on `cell` what the scenario's `knobs` change in this browser (the engine's own
    /// fields: `chromium_features`, `chromium_disabled_features`, `firefox_prefs`). Nothing by
    /// default: an engine ignores knobs that are not its own.
    fn record_knobs(&self, knobs: &Knobs, cell: &mut CellResult) {
        let _ = (knobs, cell);
    }

    /// Each of the `knobs` this browser applies, exactly as it gets it (an argument, a
    /// capability, a `user.js` line), for the run's environment. Empty by default.
    fn knob_settings(&self, knobs: &Knobs) -> Vec<String> {
        let _ = knobs;
        Vec::new()
    }

    /// Which of the browser's own logs a trial captures.
    fn client_log_source(&self) -> ClientLogSource;

    /// Reads the trial's client log from its folder `dir`, joins it to the server's `records`
    /// and keeps it compressed, named `<rel_dir>/<file>` in the results. `Ok(None)`: there was
    /// none to keep. Blocking: the runner calls it on a blocking thread.
    fn client_log(
        &self,
        dir: &Path,
        rel_dir: &str,
        records: &[ConnectionRecord],
    ) -> anyhow::Result<Option<ClientLog>>;
}

/// Why Chromium and Firefox do not support [`TrustMode::WebkitHostCertificate`].
const WEBKIT_ONLY: &str = "webkit-host-certificate is WebKitGTK's per-host certificate capability (webkitgtk:browserOptions → certificates); this browser's driver has no such capability";

/// Where the browser and driver binaries are.
#[derive(Clone, Debug)]
pub struct BrowserBinaries {
    /// The browser executable.
    pub browser: PathBuf,
    /// chromedriver, geckodriver or WebKitWebDriver.
    pub driver: PathBuf,
}

/// Errors starting or driving a browser.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// A binary is not installed.
    #[error("{what} not found ({path}); {hint}")]
    Missing {
        /// Which binary.
        what: &'static str,
        /// Where it was looked for.
        path: String,
        /// How to install it ([`Browser::install_hint`]).
        hint: &'static str,
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
    hint: &'static str,
) -> Result<PathBuf, BrowserError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(BrowserError::Missing {
                what,
                path: p.display().to_string(),
                hint,
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
        hint,
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
        let engine = kind.engine();
        let (driver_name, hint) = (engine.driver_name(), engine.install_hint());
        Ok(Self {
            browser: find_binary(browser, engine.binary_names(), engine.name(), hint)?,
            driver: find_binary(driver, &[driver_name], driver_name, hint)?,
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
    /// Where to send the connections to the URL's host and port instead (a relay).
    pub steering: Option<&'a Steering>,
    /// Pin the browser to this TLS version (for a server the harness cannot pin).
    pub tls_pin: Option<TlsVersion>,
    /// Any page that is not a warning or an error is the server's page (a target that serves
    /// its own page).
    pub any_page: bool,
    /// A profile to copy into the trial's before anything else is written there
    /// ([`ProfileTemplates`]); `None`: an empty profile.
    pub profile_template: Option<&'a Path>,
}

/// A running browser with a WebDriver session.
pub struct BrowserSession {
    engine: &'static dyn Browser,
    client: Option<Client>,
    driver: DriverProcess,
    driver_url: String,
    session_id: String,
    /// The engine's helpers ([`Browser::session_helpers`]), stopped when the session is
    /// dropped, after the driver and before `_tmp` is removed.
    _helpers: Option<Box<dyn Send + Sync>>,
    /// Removed when the session is dropped, after the driver is stopped.
    _tmp: tempfile::TempDir,
    /// Any page that is neither a warning nor an error counts as the page (a server the user
    /// names serves its own, without the harness's title).
    any_page: bool,
    /// How long each part of [`BrowserSession::start`] took.
    started: StartTimings,
}

/// How long each part of starting a session took.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartTimings {
    /// Folders, the NSS trust store, the engine's profile preparation.
    pub profile: Duration,
    /// The driver process until it answered.
    pub driver: Duration,
    /// The WebDriver session (the browser's start) and trust set up through it.
    pub session: Duration,
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
        let mut laps = crate::timing::Laps::start();
        let mut started = StartTimings::default();
        let (home, profile) = home_and_profile(plan.dir);
        for d in [&home, &profile] {
            create_dir(d).await?;
        }
        if let Some(template) = plan.profile_template {
            let (from, to) = (template.to_owned(), profile.clone());
            tokio::task::spawn_blocking(move || template::copy_tree(&from, &to))
                .await
                .map_err(|e| BrowserError::Stuck(format!("copying the profile template: {e}")))?
                .map_err(|source| BrowserError::Io {
                    what: format!("copying the profile template {}", template.display()),
                    source,
                })?;
        }
        let engine = plan.kind.engine();
        let trust_store = engine.nss_database(&home, &profile);
        if let (TrustMode::TrustedCa, Some(db)) = (plan.trust, trust_store) {
            nss_database(&db, plan).await?;
        }
        engine.prepare_profile(plan, &profile).await?;
        started.profile = laps.lap();

        // A short TMPDIR of its own: Chromium's singleton socket path must fit in 108 bytes,
        // which a temporary folder inside a deep run folder does not.
        let tmp = crate::scratch::folder("trial").map_err(|source| BrowserError::Io {
            what: "creating a temporary folder".into(),
            source,
        })?;
        let helpers = engine.session_helpers(plan, tmp.path())?;
        let mut attempt = 0;
        let (driver, port, log) = loop {
            attempt += 1;
            let port = free_port().map_err(|source| BrowserError::Io {
                what: "finding a free port".into(),
                source,
            })?;
            let DriverCommand {
                name: driver_name,
                program,
                args,
                env,
                log,
            } = driver_command(plan, port, tmp.path());
            let sweep = vec![plan.dir.to_owned(), tmp.path().to_owned()];
            match DriverProcess::spawn(driver_name, &program, &args, &env, &log, port, sweep).await
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

        started.driver = laps.lap();
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
        let mut session = Self {
            engine,
            client: Some(client),
            driver,
            driver_url,
            session_id,
            _helpers: helpers,
            _tmp: tmp,
            any_page: plan.any_page,
            started,
        };
        engine.session_started(session.client(), plan).await?;
        session.started.session = laps.lap();
        Ok(session)
    }

    /// How long each part of starting this session took.
    pub fn start_timings(&self) -> StartTimings {
        self.started
    }

    /// The session's WebDriver client, for what the steps do not cover (the benchmark opens
    /// tabs with it).
    pub fn client(&self) -> &Client {
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
        let shown = self.engine.read_warning(self.client(), title).await?;
        if self.any_page && matches!(shown, Shown::Other { .. }) {
            let url = self.client().current_url().await.map_err(cmd("get url"))?;
            // Error pages live elsewhere (chrome-error://, about:neterror).
            if url.scheme() == "https" {
                return Ok(Shown::Page);
            }
        }
        Ok(shown)
    }

    /// Clicks through the certificate warning as a user does, then waits for the page.
    pub async fn proceed(&self) -> Result<Shown, BrowserError> {
        self.engine.proceed(self.client()).await?;
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
    /// `chromedriver`, `geckodriver` or `WebKitWebDriver`.
    pub name: &'static str,
    /// The program to run: the driver, or what starts it ([`Browser::driver_program`]).
    pub program: PathBuf,
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
    let engine = plan.kind.engine();
    let (home, _) = home_and_profile(plan.dir);
    let name = engine.driver_name();
    let log = plan.dir.join(format!("{name}.log"));
    let mut env = vec![
        ("HOME", home.clone()),
        ("XDG_CONFIG_HOME", home.join(".config")),
        ("XDG_CACHE_HOME", home.join(".cache")),
        ("TMPDIR", tmp.to_owned()),
    ];
    env.extend(engine.driver_env(plan));
    let (program, args) =
        engine.driver_program(&plan.binaries.driver, engine.driver_args(port, &log));
    DriverCommand {
        name,
        program,
        args,
        env,
        log,
    }
}

/// The WebDriver capabilities of a trial's session: the common ones, then the engine's (its
/// binary and every argument, or its profile). The one place they are made: trials and the
/// benchmark's floor both use it.
pub fn capabilities(plan: &SessionPlan<'_>) -> serde_json::Map<String, Value> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "acceptInsecureCerts".into(),
        json!(plan.trust == TrustMode::AcceptInsecure),
    );
    caps.insert("pageLoadStrategy".into(), json!("normal"));
    caps.extend(plan.kind.engine().capabilities(plan));
    caps
}

/// Reads an error page in the session (its title is `title`): the certificate warning with the
/// browser's code, or something else. The default of [`Browser::read_warning`]: the script and
/// the codes cover Chromium's and Firefox's error pages alike.
pub async fn read_error_page(client: &Client, title: String) -> Result<Shown, BrowserError> {
    let url = client.current_url().await.map_err(cmd("get url"))?;
    let code = client
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

/// Compresses `path` to `path.gz` and removes the original; returns the new path. Engines keep
/// their client logs this way.
fn gzip(path: &Path) -> std::io::Result<PathBuf> {
    crate::timing::compressing(|| {
        let target = PathBuf::from(format!("{}.gz", path.display()));
        let mut input = std::fs::File::open(path)?;
        let mut encoder = flate2::write::GzEncoder::new(
            std::fs::File::create(&target)?,
            flate2::Compression::fast(),
        );
        std::io::copy(&mut input, &mut encoder)?;
        encoder.finish()?;
        std::fs::remove_file(path)?;
        Ok(target)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trial's plan for the engine tests, its folder in `dir`: nothing is started.
    pub(super) fn with_plan<T>(
        kind: BrowserKind,
        knobs: &Knobs,
        dir: &Path,
        f: impl FnOnce(&SessionPlan<'_>) -> T,
    ) -> T {
        let cert = CertBundle::generate(certs::CertKind::SelfSigned).unwrap();
        let cert_files = cert.write_to(&dir.join("certs")).unwrap();
        let binaries = BrowserBinaries {
            browser: "/opt/browser".into(),
            driver: "/opt/driver".into(),
        };
        f(&SessionPlan {
            kind,
            binaries: &binaries,
            trust: TrustMode::ClickThrough,
            cert: &cert,
            cert_files: &cert_files,
            knobs,
            dir,
            steering: None,
            tls_pin: None,
            any_page: false,
            profile_template: None,
        })
    }

    /// Knobs of every kind, with names at the edge of what the checks let through.
    pub(super) fn every_knob() -> Knobs {
        let toml = r#"
            network-prediction-options = 2
            chromium-features = ["HappyEyeballsV3", { unlisted = "Preview_2" }, { unlisted = "Translate" }]
            chromium-disabled-features = [{ unlisted = "Other" }]
            [firefox-prefs]
            "network.http.happy_eyeballs_enabled" = true
            "network.trr.mode" = 0
            "x.quote" = '''a"b\c'); user_pref("y", 1'''
            "x.utf8" = "é"
        "#;
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn every_engine_is_named_alike_in_files_messages_and_code() {
        for kind in BrowserKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""), "serde and as_str agree");
            assert_eq!(serde_json::from_str::<BrowserKind>(&json).unwrap(), kind);
            let engine = kind.engine();
            assert!(
                engine.name().eq_ignore_ascii_case(kind.as_str()),
                "{kind} is driven by {}",
                engine.name()
            );
            assert!(!engine.binary_names().is_empty());
        }
    }
}
