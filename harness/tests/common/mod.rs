//! Helpers shared by the test binaries that run real browsers.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::sync::Mutex;

use results::{CellResult, RunResults};

/// Tests in one binary run one at a time, so a process-leak check sees only its own trials.
pub(crate) static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The built `harness` binary with `args`, progress as plain lines.
pub(crate) fn harness_command(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_harness"));
    command.args(args).env("CI", "true");
    command
}

/// The harness on the shipped scenarios, writing to `run`.
pub(crate) fn shipped(run: &std::path::Path, args: &[&str]) -> std::process::Command {
    let scenarios = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut command = harness_command(&["--scenarios", scenarios.to_str().unwrap()]);
    command.args(args).arg("--out").arg(run);
    command
}

/// The cell `scenario`/`backend`/`browser` of a run; panics when there is none.
pub(crate) fn cell<'a>(
    r: &'a RunResults,
    scenario: &str,
    backend: &str,
    browser: &str,
) -> &'a CellResult {
    r.cells
        .iter()
        .find(|c| {
            c.key.scenario == scenario && c.key.backend == backend && c.key.browser == browser
        })
        .unwrap_or_else(|| panic!("no cell {scenario}/{backend}/{browser}"))
}

/// Every process on the machine: pid, name, and its `/proc` folder.
pub(crate) fn processes() -> impl Iterator<Item = (u32, String, PathBuf)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some((pid, comm.trim().to_owned(), e.path()))
        })
}

/// Every browser, driver or display process on the machine, as `pid name`.
pub(crate) fn browser_processes() -> std::collections::BTreeSet<String> {
    processes()
        .filter(|(_, name, _)| {
            [
                "chromium",
                "chrome",
                "chromedriver",
                "firefox",
                "geckodriver",
                "Web Content",
                "Isolated Web Co",
                "WebExtensions",
                "RDD Process",
                "Socket Process",
                "Utility Process",
                "forkserver",
                // WebKit: the driver, MiniBrowser, its helpers (names cut to 15 characters),
                // the sandbox and the trial's display.
                "WebKitWebDriver",
                "MiniBrowser",
                "WebKitNetworkPr",
                "WebKitWebProces",
                "WebKitGPUProces",
                "bwrap",
                "xdg-dbus-proxy",
                "Xvfb",
            ]
            .iter()
            .any(|n| name.starts_with(n))
        })
        .map(|(pid, name, _)| format!("{pid} {name}"))
        .collect()
}
