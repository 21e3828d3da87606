//! Helpers shared by the test binaries that run real browsers.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Mutex;

/// Tests in one binary run one at a time, so a process-leak check sees only its own trials.
pub(crate) static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The built `harness` binary with `args`, progress as plain lines.
pub(crate) fn harness_command(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_harness"));
    command.args(args).env("CI", "true");
    command
}

/// Every browser or driver process on the machine, as `pid name`.
pub(crate) fn browser_processes() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some(format!("{pid} {}", comm.trim()))
        })
        .filter(|c| {
            let name = c.split_once(' ').map(|x| x.1).unwrap_or_default();
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
            ]
            .iter()
            .any(|n| name.starts_with(n))
        })
        .collect()
}
