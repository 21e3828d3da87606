//! The browser's own log of a trial, read, joined to the server's records and kept: how is the
//! engine's ([`crate::browser::Browser::client_log`]); the thread, the wording of a failure and
//! the run folder's relative names are here.

use std::path::Path;
use std::time::Duration;

use model::ConnectionRecord;
use results::ClientLog;

use crate::browser::BrowserKind;

/// What reading the log cost, beside its wall time.
pub(super) struct ReadingCost {
    /// Compressing the log.
    pub(super) compress: Duration,
    /// The reading thread's CPU time, compression included.
    pub(super) cpu: Duration,
}

/// Reads the browser's own log of the trial, joins it to the server's records and keeps it
/// compressed, as its engine does. A Chromium NetLog that is missing or cannot be read is the
/// error, which the trial carries so that its cell shows it (its connections then have no cause
/// at all).
pub(super) async fn client_log(
    browser: BrowserKind,
    dir: &Path,
    out: &Path,
    records: Vec<ConnectionRecord>,
) -> Result<(Option<ClientLog>, ReadingCost), String> {
    let engine = browser.engine();
    let dir = dir.to_owned();
    let rel = |p: &Path| p.strip_prefix(out).unwrap_or(p).display().to_string();
    let rel_dir = rel(&dir);
    let shown_dir = rel_dir.clone();
    let result = tokio::task::spawn_blocking(move || {
        // A blocking thread is reused: start its counts here.
        crate::timing::take_compressing();
        let cpu = crate::timing::thread_cpu();
        let log = engine.client_log(&dir, &rel_dir, &records);
        let cost = ReadingCost {
            compress: crate::timing::take_compressing(),
            cpu: crate::timing::thread_cpu().saturating_sub(cpu),
        };
        log.map(|log| (log, cost))
    })
    .await;
    match result {
        Ok(Ok(read)) => Ok(read),
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
