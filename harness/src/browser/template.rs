//! Profile templates: a browser's first start in an empty profile does one-time work (Firefox
//! creates its databases, registers its built-in add-ons, fills its start-up cache) that every
//! trial would otherwise repeat. A run starts each such browser once, in a profile of its own,
//! closes it, and copies that profile into every trial's — less anything that could carry a
//! decision about a site or a connection from one start to the next (the engine lists it:
//! [`super::Browser::profile_template_skips`]). `--fresh-profiles` turns this off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use certs::{CertBundle, CertKind};
use model::{Knobs, TrustMode};
use tokio::sync::OnceCell;

use super::{BrowserBinaries, BrowserBuild, BrowserError, BrowserSession, SessionPlan};

/// A build's template profile once made, or why it could not be.
type Made = Arc<OnceCell<Result<PathBuf, String>>>;

/// One run's profile templates, made on first use, one per browser build that uses them.
#[derive(Debug)]
pub struct ProfileTemplates {
    dir: tempfile::TempDir,
    made: Mutex<BTreeMap<BrowserBuild, Made>>,
}

impl ProfileTemplates {
    /// Templates kept in a temporary folder of their own until the value is dropped.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            dir: crate::scratch::folder("templates")?,
            made: Mutex::new(BTreeMap::new()),
        })
    }

    /// A run's templates, or none (with a warning) where no temporary folder can be made:
    /// its trials then start from empty profiles, which is slower and measures the same.
    pub fn for_run() -> Option<Arc<Self>> {
        match Self::new() {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                tracing::warn!("no profile templates (a temporary folder: {e}); empty profiles");
                None
            }
        }
    }

    /// The template profile of `build`, made the first time it is asked for (concurrent
    /// callers wait for the one making it). `Ok(None)`: its engine uses no template.
    /// `Err`: making it failed, and every trial of the build says why.
    pub async fn get(
        &self,
        build: &BrowserBuild,
        binaries: &BrowserBinaries,
    ) -> Result<Option<PathBuf>, String> {
        if build.kind.engine().profile_template_skips().is_none() {
            return Ok(None);
        }
        let cell = self
            .made
            .lock()
            .expect("no panic while holding it")
            .entry(build.clone())
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            let dir = self.dir.path().join(build.to_string());
            make(build, binaries, &dir)
                .await
                .map_err(|e| format!("making {build}'s profile template: {e}"))
        })
        .await
        .clone()
        .map(Some)
    }
}

/// Starts `build` once in `dir` (a throwaway certificate, no page visited), closes it, and
/// removes what the engine skips. Returns the profile folder.
async fn make(
    build: &BrowserBuild,
    binaries: &BrowserBinaries,
    dir: &Path,
) -> Result<PathBuf, BrowserError> {
    let certificate = |e: &dyn std::fmt::Display| {
        BrowserError::Stuck(format!("a certificate for the template: {e}"))
    };
    let cert = CertBundle::generate(CertKind::SelfSigned).map_err(|e| certificate(&e))?;
    let cert_files = cert
        .write_to(&dir.join("certs"))
        .map_err(|e| certificate(&e))?;
    let knobs = Knobs::default();
    let plan = SessionPlan {
        kind: build.kind,
        binaries,
        trust: TrustMode::ClickThrough,
        cert: &cert,
        cert_files: &cert_files,
        knobs: &knobs,
        dir,
        steering: None,
        tls_pin: None,
        any_page: false,
        profile_template: None,
    };
    let started = std::time::Instant::now();
    BrowserSession::start(&plan).await?.close().await;
    let (_, profile) = super::home_and_profile(dir);
    let skips = build.kind.engine().profile_template_skips().unwrap_or(&[]);
    for name in skips {
        let path = profile.join(name);
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                return Err(BrowserError::Io {
                    what: format!("removing {}", path.display()),
                    source,
                });
            }
            _ => {}
        }
    }
    tracing::info!(
        "{build}: profile template made in {} ms ({})",
        started.elapsed().as_millis(),
        profile.display()
    );
    Ok(profile)
}

/// Copies the folder `from` into `to` (which exists), recursively; symbolic links as links.
pub(super) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&source, &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source)?, &target)?;
        } else {
            std::fs::copy(&source, &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_copied_whole_with_its_links() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(from.path().join("a/b")).unwrap();
        std::fs::write(from.path().join("a/b/c.txt"), "c").unwrap();
        std::fs::write(from.path().join("top"), "t").unwrap();
        std::os::unix::fs::symlink("top", from.path().join("link")).unwrap();
        copy_tree(from.path(), to.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(to.path().join("a/b/c.txt")).unwrap(),
            "c"
        );
        assert_eq!(
            std::fs::read_link(to.path().join("link")).unwrap(),
            Path::new("top")
        );
    }
}
