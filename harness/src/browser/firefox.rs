//! Firefox ESR (Debian's `firefox-esr`) through geckodriver: prefs in the profile's `user.js`,
//! its own NSS database in the profile, and the MOZ_LOG of its sockets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::Client;
use model::{ClientLogSource, ConnectionRecord, Knobs, TrustMode};
use results::ClientLog;
use serde_json::{Value, json};

use super::{BoxFuture, Browser, BrowserError, SessionPlan, cmd, gzip, home_and_profile};

/// Firefox ESR with geckodriver.
pub(super) struct Firefox;

/// Firefox's MOZ_LOG of a trial (Firefox adds suffixes per process).
const MOZ_LOG_FILE: &str = "firefox.moz_log";

impl Browser for Firefox {
    fn name(&self) -> &'static str {
        "Firefox"
    }

    fn binary_names(&self) -> &'static [&'static str] {
        &["firefox-esr", "firefox"]
    }

    fn driver_name(&self) -> &'static str {
        "geckodriver"
    }

    fn install_hint(&self) -> &'static str {
        "install it with `sudo scripts/setup.sh`"
    }

    fn driver_args(&self, port: u16, _log: &Path) -> Vec<String> {
        // geckodriver logs to its output, which the driver process writes to `log`.
        vec![
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--log".into(),
            "info".into(),
        ]
    }

    fn driver_env(&self, plan: &SessionPlan<'_>) -> Vec<(&'static str, PathBuf)> {
        vec![
            // Firefox's own account of its connections (the driver passes its environment on).
            ("MOZ_LOG", "timestamp,nsHttp:5,nsSocketTransport:5".into()),
            // Release builds honour `services.settings.server` only with this set; without it
            // Firefox fetches remote settings from its own servers at start-up.
            ("MOZ_REMOTE_SETTINGS_DEVTOOLS", "1".into()),
            ("MOZ_LOG_FILE", plan.dir.join(MOZ_LOG_FILE)),
        ]
    }

    fn capabilities(&self, plan: &SessionPlan<'_>) -> serde_json::Map<String, Value> {
        let (_, profile) = home_and_profile(plan.dir);
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("firefox"));
        caps.insert(
            "moz:firefoxOptions".into(),
            json!({
                "binary": plan.binaries.browser.display().to_string(),
                // With `-profile` geckodriver uses the directory as it is; its prefs are in
                // the user.js that `prepare_profile` wrote.
                "args": ["-headless", "-profile", profile.display().to_string()],
                "log": {"level": "info"},
            }),
        );
        caps
    }

    fn supports(&self, trust: TrustMode) -> Result<(), String> {
        match trust {
            TrustMode::IgnoreFlag | TrustMode::SpkiPin | TrustMode::DevtoolsIgnore => Err(format!(
                "{} is a Chromium mechanism; Firefox has no equivalent command-line flag or DevTools call",
                trust.as_str()
            )),
            _ => Ok(()),
        }
    }

    fn nss_database(&self, _home: &Path, profile: &Path) -> PathBuf {
        // Firefox reads the profile's own database.
        profile.to_owned()
    }

    fn prepare_profile<'a>(
        &'a self,
        plan: &'a SessionPlan<'a>,
        profile: &'a Path,
    ) -> BoxFuture<'a, Result<(), BrowserError>> {
        Box::pin(async move {
            let user_js: String = prefs(plan.knobs)
                .into_iter()
                .map(|(k, v)| format!("user_pref({}, {v});\n", Value::String(k)))
                .collect();
            let path = profile.join("user.js");
            tokio::fs::write(&path, user_js)
                .await
                .map_err(|source| BrowserError::Io {
                    what: format!("writing {}", path.display()),
                    source,
                })
        })
    }

    fn proceed<'a>(&'a self, c: &'a Client) -> BoxFuture<'a, Result<(), BrowserError>> {
        Box::pin(async move {
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
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(BrowserError::Stuck(format!(
                        "Firefox's warning page did not proceed (last: {step})"
                    )));
                }
                let pause = if step == "exception" { 500 } else { 150 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        })
    }

    fn client_log_source(&self) -> ClientLogSource {
        ClientLogSource::FirefoxMozLog
    }

    fn client_log(
        &self,
        dir: &Path,
        rel_dir: &str,
        _records: &[ConnectionRecord],
    ) -> anyhow::Result<Option<ClientLog>> {
        // Firefox's log names no client ports, so its connections cannot be joined to
        // the server's records: they stay `unknown`. The log is kept for reading.
        let mut kept = Vec::new();
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("firefox") && name.contains(".moz_log") && !name.ends_with(".gz") {
                kept.push(gzip(&entry.path())?);
            }
        }
        kept.sort();
        Ok(kept.first().map(|f| ClientLog {
            source: self.client_log_source(),
            file: format!(
                "{rel_dir}/{}",
                f.file_name().unwrap_or_default().to_string_lossy()
            ),
            truncated: false,
            browser_version: None,
            field_trials: Vec::new(),
            connections: Default::default(),
        }))
    }
}

/// Firefox prefs that stop background traffic (captive portal, Safe Browsing, remote settings,
/// telemetry, MITM priming), so every connection the server sees comes from the scenario.
fn prefs(knobs: &Knobs) -> serde_json::Map<String, Value> {
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
