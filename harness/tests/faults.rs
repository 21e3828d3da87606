//! Faults injected into real runs: signals, killed browsers and drivers, a folder that is
//! read-only or full, a server port another program holds. Each fails only what it hits, says
//! why, and the run goes on (issue: reliability).
//!
//! The folder faults mount small tmpfs file systems, so these tests need root (CI has it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use results::{CellStatus, RunResults};

mod common;
use common::{ONE_AT_A_TIME, browser_processes, cell, harness_command, processes, shipped};

/// Starts the harness on `report-close` with the shipped scenarios, output discarded.
fn spawn_report_close(run: &Path, extra: &[&str]) -> std::process::Child {
    let mut args = vec![
        "--matrix",
        "report-close",
        "--backend",
        "rustls",
        "--jobs",
        "1",
    ];
    args.extend_from_slice(extra);
    shipped(run, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn sigint_and_sigterm_leave_a_valid_partial_matrix_and_no_process() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let before = browser_processes();
        let out = tempfile::tempdir().unwrap();
        let run = out.path().join("run");
        let mut child = spawn_report_close(&run, &["--tls", "1.3", "--repeat", "3"]);
        // Wait for the first finished cell, then interrupt mid-run.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while RunResults::read(&run)
            .map(|r| r.cells.is_empty())
            .unwrap_or(true)
        {
            assert!(std::time::Instant::now() < deadline, "no cell finished");
            std::thread::sleep(Duration::from_millis(200));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(1),
            "signal {signal}: an interrupted run is incomplete"
        );
        let partial = RunResults::read(&run).expect("matrix.json is valid after the interrupt");
        assert!(
            partial.cells.len() < partial.cells_requested,
            "{} of {}",
            partial.cells.len(),
            partial.cells_requested
        );
        assert!(partial.environment.ended_at.is_none());
        // The harness is gone, so its last orphans are init's to reap: give that a moment.
        let mut left = Vec::new();
        for _ in 0..50 {
            left = browser_processes().difference(&before).cloned().collect();
            if left.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let states: Vec<String> = left
            .iter()
            .map(|p| {
                let pid = p.split(' ').next().unwrap_or_default();
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                format!(
                    "{p} [{}]",
                    stat.rsplit_once(')')
                        .map(|x| x.1.trim().chars().next().unwrap_or('?'))
                        .unwrap_or('?')
                )
            })
            .collect();
        assert!(
            left.is_empty(),
            "signal {signal}: processes outlived the run: {states:?}"
        );
    }
}

/// Pids of processes named `name` whose command line or environment mentions `needle`
/// (geckodriver's command line names no trial folder; its HOME does).
fn pids_of(name: &str, needle: &str) -> Vec<i32> {
    processes()
        .filter(|(_, comm, dir)| {
            let mentions = |file: &str| {
                std::fs::read(dir.join(file))
                    .is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
            };
            comm == name && (mentions("cmdline") || mentions("environ"))
        })
        .map(|(pid, _, _)| pid as i32)
        .collect()
}

#[test]
fn a_browser_or_driver_killed_mid_trial_fails_that_cell_and_the_run_goes_on() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for (browser, victim) in [
        ("chromium", "chromium"),
        ("chromium", "chromedriver"),
        ("firefox", "firefox-esr"),
        ("firefox", "geckodriver"),
    ] {
        let before = browser_processes();
        let out = tempfile::tempdir().unwrap();
        let run = out.path().join("run");
        // Two cells, one trial each, one at a time: the first is killed, the second must run.
        let mut child = spawn_report_close(&run, &["--browser", browser, "--repeat", "1"]);
        let needle = run.join("trials").display().to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let killed = loop {
            let pids = pids_of(victim, &needle);
            if let Some(&pid) = pids.first() {
                // Let the trial get going (the browser up, the first navigation under way).
                std::thread::sleep(Duration::from_millis(700));
                // SAFETY: killing a process of the harness we started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break pid;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {victim} process appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(1),
            "{browser} {victim} {killed}: the run is incomplete"
        );
        let r = RunResults::read(&run).unwrap();
        assert_eq!(r.cells.len(), 2, "both cells are in the matrix");
        let errors: Vec<_> = r
            .cells
            .iter()
            .filter(|c| matches!(c.status, CellStatus::Error { .. }))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "{victim}: exactly the killed trial's cell is `error`: {:?}",
            r.cells.iter().map(|c| &c.status).collect::<Vec<_>>()
        );
        assert!(
            errors[0].headline.is_empty(),
            "an error cell reports no number"
        );
        assert!(
            matches!(&errors[0].status, CellStatus::Error { log: Some(_), .. }),
            "the error names its log folder"
        );
        let measured = r
            .cells
            .iter()
            .find(|c| c.status == CellStatus::Measured)
            .expect("the other cell was measured");
        assert!(!measured.headline.is_empty());
        let left: Vec<_> = browser_processes().difference(&before).cloned().collect();
        assert!(
            left.is_empty(),
            "{victim}: processes outlived the run: {left:?}"
        );
    }
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test simulates a read-only or full disk with a tmpfs mount and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_owned())
    }

    /// Fills the file system until the kernel says it is full.
    fn fill(self) -> Self {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        let err = loop {
            if let Err(e) = filler.write_all(&block) {
                break e;
            }
        };
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        self
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Runs `command`; its exit status and output, and the run's results if they are readable.
fn finish(
    mut command: std::process::Command,
    run: &Path,
) -> (std::process::Output, Option<RunResults>) {
    let output = command.output().expect("harness runs");
    (output, RunResults::read(run).ok())
}

/// Runs the quick `control-accept-insecure` scenario in Chromium, TLS 1.3, one trial a cell.
fn run_accept_insecure(run: &Path, extra: &[&str]) -> (std::process::Output, Option<RunResults>) {
    let mut args = vec![
        "--matrix",
        "control-accept-insecure",
        "--browser",
        "chromium",
        "--tls",
        "1.3",
        "--repeat",
        "1",
        "--jobs",
        "1",
    ];
    args.extend_from_slice(extra);
    finish(shipped(run, &args), run)
}

/// The status of `backend`'s cell in a [`run_accept_insecure`] run.
fn status_of<'a>(r: &'a RunResults, backend: &str) -> &'a CellStatus {
    &cell(r, "control-accept-insecure", backend, "chromium").status
}

#[test]
fn a_read_only_or_full_trial_folder_fails_that_cell_and_the_others_are_measured() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let cells = run.join("trials/control-accept-insecure");
    let _read_only = Tmpfs::mount(&cells.join("rustls-chromium-tls1.3"), "ro,size=256k");
    let _full = Tmpfs::mount(&cells.join("openssl-chromium-tls1.3"), "size=256k").fill();
    let (output, results) = run_accept_insecure(&run, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "incomplete run: {stderr}");
    let r = results.expect("matrix.json is valid");
    assert_eq!(r.cells.len(), 3, "every cell is in the matrix");
    for (backend, why) in [
        ("rustls", "Read-only file system"),
        ("openssl", "No space left on device"),
    ] {
        match status_of(&r, backend) {
            CellStatus::Error {
                reason,
                log: Some(log),
            } => {
                assert!(reason.contains(why), "{backend}: {reason}");
                assert!(
                    log.starts_with(&format!("trials/control-accept-insecure/{backend}-")),
                    "{log}"
                );
            }
            other => panic!("{backend}: {other:?}"),
        }
    }
    assert_eq!(status_of(&r, "mbedtls"), &CellStatus::Measured, "{stderr}");
    let measured = cell(&r, "control-accept-insecure", "mbedtls", "chromium");
    assert!(!measured.headline.is_empty());
}

#[test]
fn an_output_folder_that_cannot_be_written_stops_the_run_before_any_browser() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = browser_processes();
    let out = tempfile::tempdir().unwrap();
    let read_only = Tmpfs::mount(&out.path().join("ro"), "ro,size=256k");
    let full = Tmpfs::mount(&out.path().join("full"), "size=256k").fill();
    for (run, why) in [
        (read_only.0.join("run"), "Read-only file system"),
        (read_only.0.clone(), "Read-only file system"),
        (full.0.clone(), "No space left on device"),
    ] {
        let (output, results) = run_accept_insecure(&run, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}: {stderr}", run.display());
        assert!(stderr.contains(why), "{}: {stderr}", run.display());
        assert!(results.is_none(), "nothing half-written");
        assert!(
            std::fs::read_dir(&run)
                .map(|d| d.flatten().all(|e| e.file_name() == "filler"))
                .unwrap_or(true),
            "{}: no leftovers",
            run.display()
        );
    }
    assert!(browser_processes().difference(&before).next().is_none());
}

#[test]
fn a_server_port_in_use_fails_those_trials_with_the_reason_and_a_free_one_is_used() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = squatter.local_addr().unwrap().port().to_string();

    let parallel = out.path().join("parallel");
    let output = harness_command(&[
        "--matrix",
        "control-accept-insecure",
        "--server-port",
        &port,
        "--jobs",
        "2",
        "--out",
        parallel.to_str().unwrap(),
    ])
    .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("add `--jobs 1`"), "{stderr}");
    assert!(
        !parallel.exists(),
        "no run folder for a rejected command line"
    );

    let held = out.path().join("held");
    // Both runs: the same command on the same fixed port, first held by another socket.
    let on_port = [
        "--server-port",
        port.as_str(),
        "--backend",
        "rustls,openssl",
    ];
    let (output, results) = run_accept_insecure(&held, &on_port);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let r = results.expect("matrix.json is valid");
    assert_eq!(r.cells.len(), 2);
    for backend in ["rustls", "openssl"] {
        match status_of(&r, backend) {
            CellStatus::Error {
                reason,
                log: Some(_),
            } => assert!(
                reason.contains(&format!("127.0.0.1:{port} is already in use")),
                "{reason}"
            ),
            other => panic!("{backend}: {other:?}"),
        }
    }

    drop(squatter);
    let free = out.path().join("free");
    let (output, results) = run_accept_insecure(&free, &on_port);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let r = results.expect("matrix.json is valid");
    for c in &r.cells {
        assert_eq!(c.status, CellStatus::Measured);
        let log = free.join(&c.trials[0].log_dir).join("connections.jsonl");
        let records = std::fs::read_to_string(&log).unwrap();
        assert!(
            records.lines().count() > 0
                && records.lines().all(|l| l.contains(&format!(":{port}\""))),
            "every connection reached port {port}: {records}"
        );
    }
}

#[test]
fn a_missing_certutil_fails_only_the_trusted_ca_cells_and_names_the_setup_script() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // A PATH with every program of this machine except certutil.
    let out = tempfile::tempdir().unwrap();
    let bin = out.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let cargo_bin = Path::new(&std::env::var("HOME").unwrap()).join(".cargo/bin");
    for dir in [
        Path::new("/usr/local/bin"),
        Path::new("/usr/bin"),
        Path::new("/usr/sbin"),
        &cargo_bin,
    ] {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let link = bin.join(entry.file_name());
            if entry.file_name() != "certutil" && !link.exists() {
                std::os::unix::fs::symlink(entry.path(), link).unwrap();
            }
        }
    }
    let run = out.path().join("run");
    let mut command = shipped(
        &run,
        &[
            "--matrix",
            "control-trusted-ca,control-accept-insecure",
            "--browser",
            "chromium",
            "--backend",
            "rustls",
            "--tls",
            "1.3",
            "--repeat",
            "1",
        ],
    );
    command.env("PATH", &bin);
    let (output, results) = finish(command, &run);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let r = results.expect("matrix.json is valid");
    let status = |scenario: &str| &cell(&r, scenario, "rustls", "chromium").status;
    match status("control-trusted-ca") {
        CellStatus::Error { reason, .. } => assert!(
            reason.contains("certutil") && reason.contains("scripts/setup.sh"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(status("control-accept-insecure"), &CellStatus::Measured);
}

#[test]
fn a_missing_browser_or_driver_fails_its_cells_naming_the_setup_script() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let list = harness_command(&["list", "--chromium-binary", "/nonexistent/chromium"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.lines().any(|l| l.contains("chromium")
            && l.contains("unavailable: Chromium not found (/nonexistent/chromium)")
            && l.contains("scripts/setup.sh")),
        "{listed}"
    );

    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let (output, results) = finish(
        shipped(
            &run,
            &[
                "--matrix",
                "control-accept-insecure",
                // WebKit has tests of its own (`webkit.rs`); this one is about the two here.
                "--browser",
                "chromium,firefox",
                "--backend",
                "rustls",
                "--tls",
                "1.3",
                "--repeat",
                "1",
                "--geckodriver",
                "/nonexistent/geckodriver",
            ],
        ),
        &run,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("warning: firefox cells will be `error`: geckodriver not found"),
        "{stderr}"
    );
    let r = results.expect("matrix.json is valid");
    for c in &r.cells {
        match (c.key.browser.as_str(), &c.status) {
            ("firefox", CellStatus::Error { reason, .. }) => assert!(
                reason.contains("/nonexistent/geckodriver") && reason.contains("scripts/setup.sh"),
                "{reason}"
            ),
            ("chromium", CellStatus::Measured) => assert!(!c.headline.is_empty()),
            other => panic!("{other:?}"),
        }
    }
}
