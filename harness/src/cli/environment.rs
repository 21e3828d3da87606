//! What a run was measured with: the browser and driver binaries and their versions, the
//! backends' library versions, the OS and the harness's own revision.

use std::collections::BTreeMap;
use std::path::PathBuf;

use backends::BackendName;
use clap::Args;
use results::{Environment, ToolVersions};

use crate::browser::{BrowserBinaries, BrowserKind, binary_version};

#[derive(Debug, Args, Clone)]
pub(super) struct BinaryArgs {
    /// Chromium executable (default: `chromium` on PATH). Point it at a new Chromium build.
    #[arg(long, env = "HM_CHROMIUM")]
    pub(super) chromium_binary: Option<PathBuf>,
    /// chromedriver executable matching that Chromium (default: `chromedriver` on PATH).
    #[arg(long, env = "HM_CHROMEDRIVER")]
    pub(super) chromedriver: Option<PathBuf>,
    /// Firefox executable (default: `firefox-esr` or `firefox` on PATH).
    #[arg(long, env = "HM_FIREFOX")]
    pub(super) firefox_binary: Option<PathBuf>,
    /// geckodriver executable (default: `geckodriver` on PATH or in ~/.cargo/bin).
    #[arg(long, env = "HM_GECKODRIVER")]
    pub(super) geckodriver: Option<PathBuf>,
}

pub(super) fn resolve_binaries(
    args: &BinaryArgs,
) -> BTreeMap<BrowserKind, Result<BrowserBinaries, String>> {
    let find = |kind, browser: &Option<PathBuf>, driver: &Option<PathBuf>| {
        BrowserBinaries::find(kind, browser.as_deref(), driver.as_deref())
            .map_err(|e| e.to_string())
    };
    BTreeMap::from([
        (
            BrowserKind::Chromium,
            find(
                BrowserKind::Chromium,
                &args.chromium_binary,
                &args.chromedriver,
            ),
        ),
        (
            BrowserKind::Firefox,
            find(
                BrowserKind::Firefox,
                &args.firefox_binary,
                &args.geckodriver,
            ),
        ),
    ])
}

pub(super) fn tool_versions(
    binaries: &BTreeMap<BrowserKind, Result<BrowserBinaries, String>>,
) -> BTreeMap<String, ToolVersions> {
    binaries
        .iter()
        .map(|(kind, b)| {
            let v = match b {
                Ok(b) => match (binary_version(&b.browser), binary_version(&b.driver)) {
                    (Ok(browser), Ok(driver)) => ToolVersions {
                        browser: Some(browser),
                        driver: Some(driver),
                        unavailable: None,
                    },
                    (browser, driver) => ToolVersions {
                        browser: browser.as_ref().ok().cloned(),
                        driver: driver.as_ref().ok().cloned(),
                        unavailable: browser.err().or(driver.err()),
                    },
                },
                Err(e) => ToolVersions {
                    unavailable: Some(e.clone()),
                    ..Default::default()
                },
            };
            (kind.as_str().to_owned(), v)
        })
        .collect()
}

fn os_description() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| std::env::consts::OS.into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{pretty}, Linux {} ({})",
        kernel.trim(),
        std::env::consts::ARCH
    )
}

fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub(super) fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(super) fn environment(
    binaries: &BTreeMap<BrowserKind, Result<BrowserBinaries, String>>,
) -> Environment {
    Environment {
        harness_version: env!("CARGO_PKG_VERSION").into(),
        git_revision: git_revision(),
        command: std::env::args().collect(),
        os: os_description(),
        started_at: rfc3339_now(),
        ended_at: None,
        browsers: tool_versions(binaries),
        chromium_netlog: None,
        backends: BackendName::ALL
            .iter()
            .map(|b| (b.as_str().to_owned(), b.backend().library_version()))
            .collect(),
    }
}
