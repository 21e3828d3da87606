//! Chromium (Debian's `chromium`) through chromedriver: a flag or a DevTools call for every
//! trust mode, and the NetLog, which says why each connection was opened.

use std::path::{Path, PathBuf};

use fantoccini::{Client, Locator};
use model::{ClientCause, ClientLogSource, ConnectionRecord, Knobs, TlsVersion, TrustMode};
use results::{CellResult, ClientLog, ClientSide};
use serde_json::{Value, json};

use super::{
    BoxFuture, Browser, BrowserError, SessionPlan, WEBKIT_ONLY, cmd, gzip, home_and_profile,
};
use crate::netlog;
use crate::target::Steering;

/// Chromium with chromedriver.
pub(super) struct Chromium;

/// Chromium's NetLog of a trial, in the trial folder.
const NETLOG_FILE: &str = "netlog.json";

/// Every trial's flags: headless, and no background traffic (updates, sync, safe browsing,
/// QUIC, DNS), so that every connection the server sees comes from the scenario. The features
/// switched off for the same reason are [`QUIET_FEATURES`], in the one `--disable-features`.
const ARGS: &[&str] = &[
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
];

/// `--host-resolver-rules`: no name resolves but `localhost`, so nothing reaches the network;
/// with a relay, the URL's `host:port` first goes to the relay's. A `host:port` rule also
/// applies to an IP literal (measured: `MAP 127.0.0.1:P 127.0.0.1:R` reaches R). An `EXCLUDE`
/// rule wins over every `MAP`, so steering `localhost` drops the exclusion; every other name
/// and port still maps to nothing.
fn host_resolver_rules(steering: Option<&Steering>) -> String {
    match steering {
        None => "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost".into(),
        Some(s) if s.host == "localhost" => format!(
            "--host-resolver-rules=MAP {}:{} {}:{}, MAP * ~NOTFOUND",
            s.host, s.port, s.to_host, s.to_port
        ),
        Some(s) => format!(
            "--host-resolver-rules=MAP {}:{} {}:{}, MAP * ~NOTFOUND, EXCLUDE localhost",
            s.host, s.port, s.to_host, s.to_port
        ),
    }
}

/// Features every trial switches off, so that they make no background connections.
const QUIET_FEATURES: &[&str] = &[
    "OptimizationHints",
    "MediaRouter",
    "Translate",
    "AutofillServerCommunication",
    "CertificateTransparencyComponentUpdater",
];

/// The `--enable-features` and `--disable-features` arguments of a trial: the scenario's
/// features on; [`QUIET_FEATURES`] and the scenario's features off, less any the scenario
/// switches on (its choice wins, and is recorded). One argument each, never two: Chromium keeps
/// only the last of a repeated switch, so a second `--disable-features` would silently drop the
/// first. The names are checked (`model::is_chromium_feature_name`), so none can add a switch
/// or a field trial.
fn feature_args(knobs: &Knobs) -> Vec<String> {
    let on: Vec<&str> = knobs.chromium_features.iter().map(|f| f.as_str()).collect();
    let off: Vec<&str> = QUIET_FEATURES
        .iter()
        .copied()
        .filter(|f| !on.contains(f))
        .chain(knobs.chromium_disabled_features.iter().map(|f| f.as_str()))
        .collect();
    let mut args = Vec::new();
    if !on.is_empty() {
        args.push(format!("--enable-features={}", on.join(",")));
    }
    if !off.is_empty() {
        args.push(format!("--disable-features={}", off.join(",")));
    }
    args
}

/// The Chromium prefs (`goog:chromeOptions.prefs`) the knobs set, if any.
fn prefs(knobs: &Knobs) -> Option<Value> {
    knobs
        .network_prediction_options
        .map(|v| json!({"net": {"network_prediction_options": v}}))
}

impl Browser for Chromium {
    fn name(&self) -> &'static str {
        "Chromium"
    }

    fn binary_names(&self) -> &'static [&'static str] {
        &["chromium", "chromium-browser"]
    }

    fn driver_name(&self) -> &'static str {
        "chromedriver"
    }

    fn install_hint(&self) -> &'static str {
        "install it with `sudo scripts/setup.sh`"
    }

    fn driver_args(&self, port: u16, log: &Path) -> Vec<String> {
        // No `--allowed-ips`: with it chromedriver binds every interface (and only
        // filters by peer address); without it, it binds 127.0.0.1 and ::1 alone. A
        // WebDriver endpoint can start any program, so it must not be reachable at all.
        vec![
            format!("--port={port}"),
            "--enable-chrome-logs".into(),
            format!("--log-path={}", log.display()),
        ]
    }

    fn capabilities(&self, plan: &SessionPlan<'_>) -> serde_json::Map<String, Value> {
        let (_, profile) = home_and_profile(plan.dir);
        let mut args: Vec<String> = ARGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(host_resolver_rules(plan.steering));
        if let Some(v) = plan.tls_pin {
            let v = match v {
                TlsVersion::Tls12 => "tls1.2",
                TlsVersion::Tls13 => "tls1.3",
            };
            args.push(format!("--ssl-version-min={v}"));
            args.push(format!("--ssl-version-max={v}"));
        }
        args.push(format!("--user-data-dir={}", profile.display()));
        // The client side of every connection, to say why each one was opened.
        args.push(format!(
            "--log-net-log={}",
            plan.dir.join(NETLOG_FILE).display()
        ));
        args.push("--net-log-capture-mode=Everything".into());
        // The TLS secrets of every connection, for the trial's capture: the only keys there are
        // when the server is not the harness's own (a server program, `--target`).
        args.push(format!(
            "--ssl-key-log-file={}",
            plan.dir.join(super::BROWSER_KEY_LOG).display()
        ));
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
        args.extend(feature_args(plan.knobs));
        let mut options = json!({
            "binary": plan.binaries.browser.display().to_string(),
            "args": args,
        });
        if let Some(prefs) = prefs(plan.knobs) {
            options["prefs"] = prefs;
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        caps
    }

    fn supports(&self, trust: TrustMode) -> Result<(), String> {
        match trust {
            TrustMode::WebkitHostCertificate => Err(WEBKIT_ONLY.into()),
            _ => Ok(()),
        }
    }

    fn nss_database(&self, home: &Path, _profile: &Path) -> Option<PathBuf> {
        // Chromium on Linux reads the user's database, not one in its profile.
        Some(home.join(".pki/nssdb"))
    }

    fn session_started<'a>(
        &'a self,
        client: &'a Client,
        plan: &'a SessionPlan<'a>,
    ) -> BoxFuture<'a, Result<(), BrowserError>> {
        Box::pin(async move {
            if plan.trust == TrustMode::DevtoolsIgnore {
                client
                    .issue_cmd(CdpExecute {
                        method: "Security.setIgnoreCertificateErrors",
                        params: json!({"ignore": true}),
                    })
                    .await
                    .map_err(cmd("Security.setIgnoreCertificateErrors"))?;
            }
            Ok(())
        })
    }

    fn proceed<'a>(&'a self, c: &'a Client) -> BoxFuture<'a, Result<(), BrowserError>> {
        Box::pin(async move {
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
            Ok(())
        })
    }

    fn record_knobs(&self, knobs: &Knobs, cell: &mut CellResult) {
        let names = |list: &[model::ChromiumFeature]| -> Vec<String> {
            list.iter().map(|f| f.as_str().to_owned()).collect()
        };
        cell.chromium_features = names(&knobs.chromium_features);
        cell.chromium_disabled_features = names(&knobs.chromium_disabled_features);
    }

    fn knob_settings(&self, knobs: &Knobs) -> Vec<String> {
        // The `--disable-features` argument is a knob's only when the scenario changed it.
        let unchanged = feature_args(&Knobs::default());
        let mut settings: Vec<String> = feature_args(knobs)
            .into_iter()
            .filter(|a| !unchanged.contains(a))
            .collect();
        if let Some(prefs) = prefs(knobs) {
            settings.push(format!("goog:chromeOptions.prefs = {prefs}"));
        }
        settings
    }

    fn client_log_source(&self) -> ClientLogSource {
        ClientLogSource::ChromiumNetlog
    }

    fn client_log(
        &self,
        dir: &Path,
        rel_dir: &str,
        records: &[ConnectionRecord],
    ) -> anyhow::Result<Option<ClientLog>> {
        let path = dir.join(NETLOG_FILE);
        if !path.exists() {
            anyhow::bail!("Chromium wrote no NetLog ({NETLOG_FILE})");
        }
        let summary = netlog::read(&path)?;
        let mut joined = netlog::join(records, &summary.sockets);
        netlog::explain_unjoined(&mut joined, records, &summary.unconnected);
        let connections = joined
            .into_iter()
            .map(|(id, joined)| (id, client_side(joined)))
            .collect();
        let file = gzip(&path)?;
        Ok(Some(ClientLog {
            source: self.client_log_source(),
            file: format!(
                "{rel_dir}/{}",
                file.file_name().unwrap_or_default().to_string_lossy()
            ),
            truncated: summary.truncated,
            browser_version: summary.browser_version,
            field_trials: summary.field_trials,
            connections,
        }))
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

/// The browser's side of one server record, as `matrix.json` keeps it.
fn client_side(joined: Result<netlog::ClientSocket, String>) -> ClientSide {
    match joined {
        Ok(s) => ClientSide {
            cause: s.cause,
            unknown_reason: s.unknown_reason,
            socket_source_id: Some(s.source_id),
            evidence: s
                .evidence
                .into_iter()
                .map(|e| results::Evidence {
                    source_id: e.source_id,
                    source_type: e.source_type,
                    event: e.event,
                })
                .collect(),
            reused_by: s.reused_by,
            net_error: s.net_error,
            alert_sent: s.alert_sent.map(|(level, code)| {
                let level = if level == 2 { "fatal" } else { "warning" };
                format!("{level} {} ({code})", model::alert_name(code))
            }),
            url: s.url,
        },
        Err(reason) => ClientSide {
            cause: ClientCause::Unknown,
            unknown_reason: Some(reason),
            socket_source_id: None,
            evidence: Vec::new(),
            reused_by: 0,
            net_error: None,
            alert_sent: None,
            url: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::{BrowserKind, capabilities, tests::*};

    fn args(knobs: &Knobs) -> (Vec<String>, Value) {
        let dir = tempfile::tempdir().unwrap();
        let caps = with_plan(BrowserKind::Chromium, knobs, dir.path(), capabilities);
        let options = caps["goog:chromeOptions"].clone();
        let args = serde_json::from_value(options["args"].clone()).unwrap();
        (args, options)
    }

    fn features(args: &[String]) -> Vec<&String> {
        args.iter().filter(|a| a.contains("-features")).collect()
    }

    #[test]
    fn the_knobs_are_one_argument_each_and_the_prefs_a_capability() {
        let (args, options) = args(&every_knob());
        // One switch each (Chromium keeps only the last of a repeated one); a feature the
        // scenario switches on leaves the harness's list of switched-off ones.
        assert_eq!(
            features(&args),
            [
                "--enable-features=HappyEyeballsV3,Preview_2,Translate",
                "--disable-features=OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater,Other",
            ]
        );
        assert_eq!(
            options["prefs"],
            json!({"net": {"network_prediction_options": 2}})
        );
        let mut cell = CellResult::new(
            results::CellKey {
                scenario: "s".into(),
                backend: "rustls".into(),
                browser: "chromium".into(),
                tls: "1.3".into(),
                label: None,
            },
            "self-signed",
            "click-through",
            "close",
        );
        Chromium.record_knobs(&every_knob(), &mut cell);
        assert_eq!(
            cell.chromium_features,
            ["HappyEyeballsV3", "Preview_2", "Translate"]
        );
        assert_eq!(cell.chromium_disabled_features, ["Other"]);
        assert!(
            cell.firefox_prefs.is_empty(),
            "Firefox's prefs are not Chromium's"
        );
        assert_eq!(
            Chromium.knob_settings(&every_knob()),
            [
                features(&args)[0].clone(),
                features(&args)[1].clone(),
                r#"goog:chromeOptions.prefs = {"net":{"network_prediction_options":2}}"#.into(),
            ]
        );
    }

    #[test]
    fn without_knobs_only_the_quiet_features_are_switched_off() {
        let (args, options) = args(&Knobs::default());
        assert_eq!(
            features(&args),
            [
                "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater"
            ]
        );
        assert!(options.get("prefs").is_none());
        assert!(Chromium.knob_settings(&Knobs::default()).is_empty());
        // An enable list alone leaves the disable argument as it was: not a knob's setting.
        let on = Knobs {
            chromium_features: vec![model::ChromiumFeature::HappyEyeballsV3],
            ..Knobs::default()
        };
        assert_eq!(
            Chromium.knob_settings(&on),
            ["--enable-features=HappyEyeballsV3"]
        );
    }
}
