//! The browser's own log of a trial, read, joined to the server's records and kept.

use std::path::{Path, PathBuf};

use model::{ClientCause, ClientLogSource, ConnectionRecord};
use results::{ClientLog, ClientSide};

use crate::browser::{BrowserKind, NETLOG_FILE};
use crate::netlog;

/// Reads the browser's own log of the trial, joins it to the server's records and keeps it
/// compressed. A Chromium NetLog that is missing or cannot be read is the error, which the
/// trial carries so that its cell shows it (its connections then have no cause at all).
pub(super) async fn client_log(
    browser: BrowserKind,
    dir: &Path,
    out: &Path,
    records: Vec<ConnectionRecord>,
) -> Result<Option<ClientLog>, String> {
    let dir = dir.to_owned();
    let rel = |p: &Path| p.strip_prefix(out).unwrap_or(p).display().to_string();
    let rel_dir = rel(&dir);
    let shown_dir = rel_dir.clone();
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<ClientLog>> {
        match browser {
            BrowserKind::Chromium => {
                let path = dir.join(NETLOG_FILE);
                if !path.exists() {
                    anyhow::bail!("Chromium wrote no NetLog ({NETLOG_FILE})");
                }
                let summary = netlog::read(&path)?;
                let mut joined = netlog::join(&records, &summary.sockets);
                netlog::explain_unjoined(&mut joined, &records, &summary.unconnected);
                let connections = joined
                    .into_iter()
                    .map(|(id, joined)| (id, client_side(joined)))
                    .collect();
                let file = gzip(&path)?;
                Ok(Some(ClientLog {
                    source: ClientLogSource::ChromiumNetlog,
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
            BrowserKind::Firefox => {
                // Firefox's log names no client ports, so its connections cannot be joined to
                // the server's records: they stay `unknown`. The log is kept for reading.
                let mut kept = Vec::new();
                for entry in std::fs::read_dir(&dir)?.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with("firefox")
                        && name.contains(".moz_log")
                        && !name.ends_with(".gz")
                    {
                        kept.push(gzip(&entry.path())?);
                    }
                }
                kept.sort();
                Ok(kept.first().map(|f| ClientLog {
                    source: ClientLogSource::FirefoxMozLog,
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
    })
    .await;
    match result {
        Ok(Ok(log)) => Ok(log),
        Ok(Err(e)) => {
            tracing::warn!("browser log of {shown_dir} unreadable: {e:#}");
            Err(format!("NetLog unreadable: {e:#}"))
        }
        Err(e) => {
            tracing::warn!("browser log of {shown_dir}: {e}");
            Err(format!("NetLog not read: {e}"))
        }
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

/// Compresses `path` to `path.gz` and removes the original; returns the new path.
fn gzip(path: &Path) -> std::io::Result<PathBuf> {
    let target = PathBuf::from(format!("{}.gz", path.display()));
    let mut input = std::fs::File::open(path)?;
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&target)?, flate2::Compression::fast());
    std::io::copy(&mut input, &mut encoder)?;
    encoder.finish()?;
    std::fs::remove_file(path)?;
    Ok(target)
}
