//! The built-in TLS servers (rustls, OpenSSL, Mbed TLS), run inside the harness: they record
//! every connection themselves, from the library's own view.

use std::sync::Arc;
use std::time::Instant;

use backends::{BackendName, RunningServer, ServerSpec, TlsPin};
use model::{ConnectionRecord, TlsVersion};

use super::{RunningTarget, Target, TargetError, TrialServer, Unrecorded};
use crate::scenario::{Host, ScenarioFile};

/// One of the `backends` crate's servers.
#[derive(Clone, Copy, Debug)]
pub struct InProcess(pub BackendName);

impl Target for InProcess {
    fn name(&self) -> &str {
        self.0.as_str()
    }

    fn unavailable(&self) -> Option<String> {
        self.0.backend().unavailable()
    }

    fn supports(&self, _scenario: &ScenarioFile, tls: TlsVersion) -> Result<(), String> {
        self.0.backend().supports(tls)
    }

    fn start(&self, trial: &TrialServer<'_>) -> Result<Box<dyn RunningTarget>, TargetError> {
        let spec = server_spec(trial.scenario, trial.cert, trial.tls, trial.port);
        let server = self.0.backend().start(spec).map_err(|e| TargetError {
            target: self.name().to_owned(),
            cause: Box::new(e),
        })?;
        Ok(Box::new(server))
    }
}

/// The server a trial of scenario `f` starts: `bundle`'s certificate, pinned to `tls`, on
/// `port` (default: a free one).
fn server_spec(
    f: &ScenarioFile,
    bundle: &certs::CertBundle,
    tls: TlsVersion,
    port: Option<u16>,
) -> ServerSpec {
    let mut spec = ServerSpec::new(
        bundle.chain_pem.clone(),
        bundle.key_pem.clone(),
        TlsPin::Only(tls),
        f.connection,
    );
    spec.resumption = f.resumption;
    spec.concurrency = f.concurrency;
    spec.listen_backlog = f.listen_backlog;
    spec.port = port;
    // Every trial leaves a capture: a few hundred KiB and milliseconds per trial (README).
    spec.capture = Some(Arc::new(capture::Recorder::default()));
    spec
}

// `Self::x` below is the server's inherent method of the same name: inherent methods take
// precedence over trait methods in a path.
impl RunningTarget for RunningServer {
    fn url(&self, host: Host) -> String {
        Self::url(self, host.as_str())
    }

    fn last_accept(&self) -> Option<Instant> {
        self.log().last_accept()
    }

    fn queued(&self) -> u32 {
        Self::queued(self)
    }

    fn capture(&self) -> Option<Arc<capture::Recorder>> {
        Self::capture(self).cloned()
    }

    fn stop(self: Box<Self>) -> Result<Vec<ConnectionRecord>, Unrecorded> {
        Self::stop(*self).map_err(|e| Unrecorded {
            reason: e.to_string(),
            records: e.records,
        })
    }
}
