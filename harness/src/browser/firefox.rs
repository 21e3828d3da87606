//! Firefox ESR (Debian's `firefox-esr`) through geckodriver: prefs in the profile's `user.js`,
//! its own NSS database in the profile, and the MOZ_LOG of its sockets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::Client;
use model::{ClientLogSource, ConnectionRecord, Knobs, PrefValue, TlsVersion, TrustMode};
use results::{CellResult, ClientLog};
use serde_json::{Value, json};

use super::{
    BoxFuture, Browser, BrowserError, SessionPlan, WEBKIT_ONLY, cmd, gzip, home_and_profile,
};
use crate::target::Steering;

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
            TrustMode::WebkitHostCertificate => Err(WEBKIT_ONLY.into()),
            _ => Ok(()),
        }
    }

    fn nss_database(&self, _home: &Path, profile: &Path) -> Option<PathBuf> {
        // Firefox reads the profile's own database.
        Some(profile.to_owned())
    }

    fn profile_template_skips(&self) -> Option<&'static [&'static str]> {
        // Firefox's first start in an empty profile takes seconds (databases, built-in add-ons,
        // the start-up cache). What could carry a decision about a site or a connection from
        // the template's start into a trial is left out, though the template visits no page:
        // certificate exceptions, HSTS and client-certificate decisions, alternative
        // services, permissions, storage, the HTTP cache, the session; and what a running
        // Firefox holds (locks, its Marionette port) or a trial writes itself (user.js).
        Some(&[
            "lock",
            ".parentlock",
            "MarionetteActivePort",
            "user.js",
            "cert_override.txt",
            "SiteSecurityServiceState.bin",
            "SiteSecurityServiceState.txt",
            "ClientAuthRememberList.bin",
            "ClientAuthRememberList.txt",
            "AlternateServices.bin",
            "AlternateServices.txt",
            "permissions.sqlite",
            "content-prefs.sqlite",
            "cookies.sqlite",
            "storage",
            "cache2",
            "sessionstore.jsonlz4",
            "sessionstore-backups",
            "sessionCheckpoints.json",
            "crashes",
            "minidumps",
            "datareporting",
            "saved-telemetry-pings",
        ])
    }

    fn prepare_profile<'a>(
        &'a self,
        plan: &'a SessionPlan<'a>,
        profile: &'a Path,
    ) -> BoxFuture<'a, Result<(), BrowserError>> {
        Box::pin(async move {
            let mut prefs = prefs(plan.knobs);
            prefs.extend(steering_prefs(plan.steering));
            if let Some(v) = plan.tls_pin {
                // NSS numbers: 3 is TLS 1.2, 4 is TLS 1.3.
                let n = match v {
                    TlsVersion::Tls12 => 3,
                    TlsVersion::Tls13 => 4,
                };
                for pref in ["security.tls.version.min", "security.tls.version.max"] {
                    prefs.insert(pref.to_owned(), PrefValue::Int(n));
                }
            }
            let user_js = user_js(&prefs);
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

    fn record_knobs(&self, knobs: &Knobs, cell: &mut CellResult) {
        cell.firefox_prefs = knobs.firefox_prefs();
    }

    fn knob_settings(&self, knobs: &Knobs) -> Vec<String> {
        user_js(&knobs.firefox_prefs())
            .lines()
            .map(str::to_owned)
            .collect()
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
/// telemetry, MITM priming), so every connection the server sees comes from the scenario; then
/// the scenario's prefs, which win over these (and are recorded on the cell).
fn prefs(knobs: &Knobs) -> BTreeMap<String, PrefValue> {
    use PrefValue::{Bool, Int, String as Str};
    let mut prefs: BTreeMap<String, PrefValue> = [
        ("security.dialog_enable_delay", Int(0)),
        ("network.captive-portal-service.enabled", Bool(false)),
        ("network.connectivity-service.enabled", Bool(false)),
        ("network.trr.mode", Int(5)),
        ("network.dns.disablePrefetch", Bool(true)),
        ("network.prefetch-next", Bool(false)),
        ("browser.safebrowsing.malware.enabled", Bool(false)),
        ("browser.safebrowsing.phishing.enabled", Bool(false)),
        ("browser.safebrowsing.downloads.enabled", Bool(false)),
        ("browser.safebrowsing.blockedURIs.enabled", Bool(false)),
        (
            "browser.safebrowsing.provider.mozilla.updateURL",
            Str(String::new()),
        ),
        (
            "browser.safebrowsing.provider.google4.updateURL",
            Str(String::new()),
        ),
        ("security.certerrors.mitm.priming.enabled", Bool(false)),
        (
            "security.certerrors.mitm.auto_enable_enterprise_roots",
            Bool(false),
        ),
        ("security.enterprise_roots.enabled", Bool(false)),
        (
            "security.remote_settings.crlite_filters.enabled",
            Bool(false),
        ),
        (
            "security.remote_settings.intermediates.enabled",
            Bool(false),
        ),
        ("security.OCSP.enabled", Int(0)),
        (
            "services.settings.server",
            Str("data:,#remote-settings-dummy/v1".into()),
        ),
        ("datareporting.policy.dataSubmissionEnabled", Bool(false)),
        ("datareporting.healthreport.uploadEnabled", Bool(false)),
        ("toolkit.telemetry.enabled", Bool(false)),
        ("browser.newtabpage.enabled", Bool(false)),
        ("browser.startup.page", Int(0)),
        ("browser.region.network.url", Str(String::new())),
        ("geo.provider.network.url", Str(String::new())),
        ("extensions.update.enabled", Bool(false)),
        ("extensions.getAddons.cache.enabled", Bool(false)),
        ("app.update.auto", Bool(false)),
        ("network.http.http3.enable", Bool(false)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    prefs.extend(knobs.firefox_prefs());
    prefs
}

/// With a relay: Firefox remaps the URL's port to the relay's at the socket level
/// (`network.socket.forcePort`, which applies to IP literals too: measured), and, when the
/// relay is elsewhere than the URL's host, resolves every name to the relay's address.
fn steering_prefs(steering: Option<&Steering>) -> Vec<(String, PrefValue)> {
    let Some(s) = steering else {
        return Vec::new();
    };
    let mut prefs = vec![(
        "network.socket.forcePort".to_owned(),
        PrefValue::String(format!("{}={}", s.port, s.to_port)),
    )];
    if s.to_host != s.host {
        prefs.push((
            "network.dns.forceResolve".to_owned(),
            PrefValue::String(s.to_host.clone()),
        ));
    }
    prefs
}

/// `prefs` as `user.js`: one `user_pref(name, value);` line each, sorted by name.
fn user_js(prefs: &BTreeMap<String, PrefValue>) -> String {
    prefs
        .iter()
        .map(|(name, value)| {
            let value = match value {
                PrefValue::Bool(b) => b.to_string(),
                PrefValue::Int(n) => n.to_string(),
                PrefValue::String(s) => pref_string(s),
            };
            format!("user_pref({}, {value});\n", pref_string(name))
        })
        .collect()
}

/// A string literal of Firefox's prefs parser (`modules/libpref/parser`): in double quotes,
/// with `\` and `"` escaped, and line breaks escaped too although a scenario cannot write them
/// (control characters are rejected when the scenario is read), so that no value can end the
/// literal or the line and start a pref of its own. Other characters are written as UTF-8, as
/// the parser reads them.
fn pref_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::{BrowserKind, home_and_profile, tests::*};

    #[test]
    fn the_prefs_table_is_written_to_user_js_escaped_and_over_the_harness_prefs() {
        let dir = tempfile::tempdir().unwrap();
        let knobs = every_knob();
        let user_js = with_plan(BrowserKind::Firefox, &knobs, dir.path(), |plan| {
            let (_, profile) = home_and_profile(plan.dir);
            std::fs::create_dir_all(&profile).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(Firefox.prepare_profile(plan, &profile))
                .unwrap();
            std::fs::read_to_string(profile.join("user.js")).unwrap()
        });
        let knob_lines = [
            r#"user_pref("network.http.happy_eyeballs_enabled", true);"#,
            // The scenario's value replaces the harness's 5.
            r#"user_pref("network.trr.mode", 0);"#,
            r#"user_pref("x.quote", "a\"b\\c'); user_pref(\"y\", 1");"#,
            r#"user_pref("x.utf8", "é");"#,
        ];
        for line in knob_lines {
            assert_eq!(
                user_js.lines().filter(|l| *l == line).count(),
                1,
                "{line} in:\n{user_js}"
            );
        }
        assert!(!user_js.contains("\"network.trr.mode\", 5"), "{user_js}");
        // Every line is one call: nothing a value holds can start a second.
        assert!(
            user_js
                .lines()
                .all(|l| l.starts_with("user_pref(\"") && l.ends_with(");")),
            "{user_js}"
        );
        assert_eq!(user_js.lines().count(), prefs(&Knobs::default()).len() + 3);
        assert_eq!(Firefox.knob_settings(&knobs), knob_lines);
        // Firefox takes none of Chromium's knobs.
        let caps = with_plan(BrowserKind::Firefox, &knobs, dir.path(), |plan| {
            Firefox.capabilities(plan)
        });
        assert!(!serde_json::to_string(&caps).unwrap().contains("features"));
    }

    #[test]
    fn the_old_knob_and_the_table_write_the_same_line() {
        let old = Knobs {
            speculative_parallel_limit: Some(0),
            ..Knobs::default()
        };
        let table: Knobs =
            toml::from_str("[firefox-prefs]\n\"network.http.speculative-parallel-limit\" = 0\n")
                .unwrap();
        assert_eq!(user_js(&prefs(&old)), user_js(&prefs(&table)));
        assert_eq!(
            Firefox.knob_settings(&old),
            [r#"user_pref("network.http.speculative-parallel-limit", 0);"#]
        );
    }
}
