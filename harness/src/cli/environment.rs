//! What a run was measured with: the browser and driver binaries and their versions, the
//! backends' library versions, the OS and the harness's own revision.

use std::collections::BTreeMap;
use std::path::PathBuf;

use backends::BackendName;
use clap::Args;
use results::{Environment, ToolVersions};

use crate::browser::{BrowserBinaries, BrowserBuild, BrowserKind, Label};
use crate::runner::Binaries;
use crate::target::ServerProgram;

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
    /// WebKitGTK browser (default: Debian's MiniBrowser,
    /// /usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser).
    #[arg(long, env = "HM_WEBKIT")]
    pub(super) webkit_binary: Option<PathBuf>,
    /// WebKitWebDriver executable (default: `WebKitWebDriver` on PATH).
    #[arg(long, env = "HM_WEBKITWEBDRIVER")]
    pub(super) webkitwebdriver: Option<PathBuf>,
    /// A labelled Chromium build; give it once per build to measure several side by side in
    /// one run, each in columns of its own (`chromium@LABEL`), e.g. `--chromium
    /// stable=/usr/bin/chromium,/usr/bin/chromedriver --chromium
    /// candidate=/opt/new/chrome,/opt/new/chromedriver`. LABEL: up to 32 of a-z 0-9 . _ -.
    /// Chromium is then measured only under these labels (not with --chromium-binary).
    #[arg(long, value_name = "LABEL=CHROMIUM,CHROMEDRIVER", value_parser = BuildSpec::parse)]
    pub(super) chromium: Vec<BuildSpec>,
    /// A labelled Firefox build, as `--chromium`: `--firefox esr=/usr/bin/firefox-esr,/usr/bin/geckodriver`.
    #[arg(long, value_name = "LABEL=FIREFOX,GECKODRIVER", value_parser = BuildSpec::parse)]
    pub(super) firefox: Vec<BuildSpec>,
    /// A labelled WebKit build, as `--chromium`: `--webkit LABEL=MINIBROWSER,WEBKITWEBDRIVER`.
    #[arg(long, value_name = "LABEL=MINIBROWSER,WEBKITWEBDRIVER", value_parser = BuildSpec::parse)]
    pub(super) webkit: Vec<BuildSpec>,
}

/// One `--chromium`/`--firefox` value: `LABEL=BROWSER,DRIVER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BuildSpec {
    label: Label,
    browser: PathBuf,
    driver: PathBuf,
}

impl BuildSpec {
    fn parse(text: &str) -> Result<Self, String> {
        let form =
            "expected LABEL=BROWSER,DRIVER, e.g. candidate=/opt/new/chrome,/opt/new/chromedriver";
        let (label, paths) = text
            .split_once('=')
            .ok_or_else(|| format!("no `=` in `{text}`: {form}"))?;
        let label = Label::parse(label)?;
        let (browser, driver) = paths.split_once(',').ok_or_else(|| {
            format!("no `,` between the browser and the driver in `{text}`: {form}")
        })?;
        if browser.is_empty() || driver.is_empty() || driver.contains(',') {
            return Err(format!(
                "`{text}` does not name one browser and one driver: {form}"
            ));
        }
        Ok(Self {
            label,
            browser: browser.into(),
            driver: driver.into(),
        })
    }
}

/// Every browser build the command line asks for, each with its binaries or why it has none
/// (a missing binary fails that build's cells, as it always did). An engine given labels
/// (`--chromium LABEL=…`) is measured as those builds, in the order given; every other engine
/// as its one unlabelled build. A label given twice for one engine, or labels next to the
/// engine's unlabelled flags, is an error.
pub(super) fn resolve_binaries(args: &BinaryArgs) -> anyhow::Result<Binaries> {
    let find = |kind, browser: Option<&std::path::Path>, driver: Option<&std::path::Path>| {
        BrowserBinaries::find(kind, browser, driver).map_err(|e| e.to_string())
    };
    let engines = [
        (
            BrowserKind::Chromium,
            &args.chromium,
            &args.chromium_binary,
            &args.chromedriver,
            "--chromium-binary (HM_CHROMIUM) or --chromedriver (HM_CHROMEDRIVER)",
        ),
        (
            BrowserKind::Firefox,
            &args.firefox,
            &args.firefox_binary,
            &args.geckodriver,
            "--firefox-binary (HM_FIREFOX) or --geckodriver (HM_GECKODRIVER)",
        ),
        (
            BrowserKind::Webkit,
            &args.webkit,
            &args.webkit_binary,
            &args.webkitwebdriver,
            "--webkit-binary (HM_WEBKIT) or --webkitwebdriver (HM_WEBKITWEBDRIVER)",
        ),
    ];
    let mut out = Vec::new();
    for (kind, specs, browser, driver, flags) in engines {
        if specs.is_empty() {
            out.push((
                BrowserBuild::unlabelled(kind),
                find(kind, browser.as_deref(), driver.as_deref()),
            ));
            continue;
        }
        if browser.is_some() || driver.is_some() {
            anyhow::bail!(
                "--{kind} LABEL=… names every {kind} build of the run, so {flags} cannot be given too: add that build as one more `--{kind} LABEL=BROWSER,DRIVER`"
            );
        }
        for (i, spec) in specs.iter().enumerate() {
            if specs[..i].iter().any(|s| s.label == spec.label) {
                anyhow::bail!(
                    "the label `{}` is given to two --{kind} builds; give each build its own label",
                    spec.label
                );
            }
            out.push((
                BrowserBuild {
                    kind,
                    label: Some(spec.label.clone()),
                },
                find(kind, Some(&spec.browser), Some(&spec.driver)),
            ));
        }
    }
    Ok(out)
}

/// Each build's browser and driver version (or why it has none), under its column's name:
/// `chromium`, or `chromium@candidate` for a labelled build.
pub(super) fn tool_versions(binaries: &Binaries) -> BTreeMap<String, ToolVersions> {
    binaries
        .iter()
        .map(|(build, b)| {
            let v = match b {
                Ok(b) => match build.kind.engine().versions(b) {
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
            (build.to_string(), v)
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

pub(super) fn environment(binaries: &Binaries) -> Environment {
    Environment {
        harness_version: env!("CARGO_PKG_VERSION").into(),
        git_revision: git_revision(),
        command: std::env::args().collect(),
        os: os_description(),
        started_at: rfc3339_now(),
        ended_at: None,
        browsers: tool_versions(binaries),
        chromium_netlog: None,
        scenario_knobs: BTreeMap::new(),
        harness_cpu: None,
        backends: BackendName::ALL
            .iter()
            .map(|b| (b.as_str().to_owned(), b.backend().library_version()))
            .chain(
                ServerProgram::ALL
                    .iter()
                    .filter_map(|p| Some((p.as_str().to_owned(), p.version().ok()?))),
            )
            .collect(),
    }
}
