//! The Mbed TLS backend of a build that could not find Mbed TLS 3.6 (see `build.rs`): it runs
//! nothing and says why, so that its cells are `error` with the fix while the other backends
//! are measured.

use std::sync::Arc;

use model::TlsVersion;

use crate::{Acceptor, BackendError, BackendName, ServerSpec, TlsBackend};

/// The Mbed TLS backend, unavailable in this build.
#[derive(Debug, Default, Clone, Copy)]
pub struct MbedtlsBackend;

const REASON: &str = env!("HM_MBEDTLS_MISSING");

impl TlsBackend for MbedtlsBackend {
    fn name(&self) -> BackendName {
        BackendName::Mbedtls
    }

    fn library_version(&self) -> String {
        "Mbed TLS (not built in)".into()
    }

    fn unavailable(&self) -> Option<String> {
        Some(REASON.into())
    }

    fn supports(&self, _tls: TlsVersion) -> Result<(), String> {
        Ok(())
    }

    fn acceptor(&self, _spec: &ServerSpec) -> Result<Arc<dyn Acceptor>, BackendError> {
        Err(BackendError::Unavailable {
            backend: BackendName::Mbedtls,
            reason: REASON.into(),
        })
    }
}
