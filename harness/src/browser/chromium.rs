//! Chromium (Debian's `chromium`) through chromedriver: a flag or a DevTools call for every
//! trust mode, and the NetLog, which says why each connection was opened.

use std::path::{Path, PathBuf};

use fantoccini::{Client, Locator};
use model::{ClientCause, ClientLogSource, ConnectionRecord, Knobs, TrustMode};
use results::{ClientLog, ClientSide};
use serde_json::{Value, json};

use super::{BoxFuture, Browser, BrowserError, SessionPlan, cmd, gzip, home_and_profile};
use crate::netlog;

/// Chromium with chromedriver.
pub(super) struct Chromium;

/// Chromium's NetLog of a trial, in the trial folder.
const NETLOG_FILE: &str = "netlog.json";

/// Every trial's flags: headless, and no background traffic (updates, sync, safe browsing,
/// QUIC, DNS), so that every connection the server sees comes from the scenario.
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
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
];

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
        let features = self.enabled_features(plan.knobs);
        if !features.is_empty() {
            args.push(format!("--enable-features={}", features.join(",")));
        }
        let mut options = json!({
            "binary": plan.binaries.browser.display().to_string(),
            "args": args,
        });
        if let Some(v) = plan.knobs.network_prediction_options {
            options["prefs"] = json!({"net": {"network_prediction_options": v}});
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        caps
    }

    fn supports(&self, _: TrustMode) -> Result<(), String> {
        Ok(())
    }

    fn nss_database(&self, home: &Path, _profile: &Path) -> PathBuf {
        // Chromium on Linux reads the user's database, not one in its profile.
        home.join(".pki/nssdb")
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

    fn enabled_features(&self, knobs: &Knobs) -> Vec<&'static str> {
        knobs.chromium_features.iter().map(|f| f.as_str()).collect()
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
