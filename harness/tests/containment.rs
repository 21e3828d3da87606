//! The harness's own sudden death leaves nothing behind, and nothing a run starts listens
//! beyond loopback (issue: killed harness).
//!
//! Real runs with real browsers. The kernel's guarantee (PID namespaces) needs root, which CI
//! has.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use results::RunResults;

mod common;
use common::{ONE_AT_A_TIME, browser_processes, harness_command, processes, shipped};

/// The harness on `report-close` (rustls, TLS 1.3, both browsers side by side), writing to
/// `run`, output discarded.
fn spawn_both_browsers(run: &Path) -> std::process::Child {
    shipped(
        run,
        &[
            "--matrix",
            "report-close",
            "--browser",
            "chromium,firefox",
            "--backend",
            "rustls",
            "--tls",
            "1.3",
            "--repeat",
            "2",
            "--jobs",
            "2",
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap()
}

/// Every process of the run of harness `harness` writing to `run`: the processes it marked
/// (drivers, browsers and their helpers) and those naming the run folder in their command line
/// (the harness, and the supervisors, which are forks of it). `pid → (name, state)`.
fn run_processes(harness: u32, run: &Path) -> BTreeMap<u32, (String, char)> {
    let mark = format!("HM_HARNESS_PID={harness}");
    let folder = run.display().to_string();
    processes()
        .filter(|(_, _, dir)| {
            let has = |file: &str, needle: &str| {
                std::fs::read(dir.join(file)).is_ok_and(|b| {
                    b.split(|&c| c == 0)
                        .any(|part| String::from_utf8_lossy(part).contains(needle))
                })
            };
            has("environ", &mark) || has("cmdline", &folder)
        })
        .map(|(pid, name, dir)| {
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim().chars().next())
                .unwrap_or('?');
            (pid, (name, state))
        })
        .collect()
}

/// Waits until `until` holds for the run's processes, or `timeout` passes; the last look.
fn watch(
    harness: u32,
    run: &Path,
    timeout: Duration,
    until: impl Fn(&BTreeMap<u32, (String, char)>) -> bool,
) -> BTreeMap<u32, (String, char)> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = run_processes(harness, run);
        if until(&now) || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn names(p: &BTreeMap<u32, (String, char)>) -> BTreeSet<&str> {
    p.values().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn a_harness_killed_with_sigkill_leaves_no_process_and_a_valid_partial_matrix() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut killed = Vec::new();
    // Mid-trial in each browser (the run does Chromium's cell first, then Firefox's); and
    // while a driver is still starting, before any browser.
    for moment in ["chromium mid-trial", "firefox mid-trial", "driver-starting"] {
        let before = browser_processes();
        let out = tempfile::tempdir().unwrap();
        let run = out.path().join("run");
        let mut child = spawn_both_browsers(&run);
        let harness = child.id();
        let seen = watch(harness, &run, Duration::from_secs(90), |p| {
            let n = names(p);
            match moment.split_once(' ') {
                Some((browser, _)) => n.iter().any(|n| n.starts_with(browser)),
                None => n.contains("chromedriver") || n.contains("geckodriver"),
            }
        });
        if moment.ends_with("mid-trial") {
            // Let the navigations get going.
            std::thread::sleep(Duration::from_millis(500));
        }
        let during = run_processes(harness, &run);
        assert!(
            during.len() > 2,
            "{moment}: the run had started its processes: {seen:?}"
        );
        // SAFETY: killing the harness we started.
        unsafe { libc::kill(harness as i32, libc::SIGKILL) };
        child.wait().unwrap();
        killed.push(harness);

        // The kernel ends them; init reaps them. A dying process has no command line or
        // environment left to recognise it by, so this follows the pids seen before the kill,
        // and any browser or driver process that did not exist before the run.
        // The kernel kills at once; the margin is for reaping on a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (left, strays) = loop {
            let left: Vec<String> = during
                .iter()
                .filter(|(pid, _)| Path::new(&format!("/proc/{pid}")).exists())
                .map(|(pid, (name, state))| format!("{pid} {name} [{state}]"))
                .collect();
            let strays: Vec<String> = browser_processes().difference(&before).cloned().collect();
            if (left.is_empty() && strays.is_empty()) || Instant::now() >= deadline {
                break (left, strays);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            left.is_empty() && strays.is_empty(),
            "{moment}: processes outlived the killed harness by 30 s: {left:?} {strays:?}"
        );

        let partial = RunResults::read(&run).expect("matrix.json of a killed run parses");
        assert!(partial.environment.ended_at.is_none());
        assert_eq!(partial.cells_requested, 2, "known from the start");
        assert!(partial.cells.len() < 2);
        let report = harness_command(&["report", run.to_str().unwrap()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&report.stdout);
        assert_eq!(report.status.code(), Some(1), "incomplete: {stdout}");
        assert!(
            stdout.contains("this run did not finish: it was interrupted or killed"),
            "{stdout}"
        );
    }

    // A killed run cannot remove its temporary folders (the profile templates, the trials'
    // TMPDIRs); the next run does, and it need not start a browser for that.
    let left_by = |pid: &u32| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("hm-{pid}."))
            })
            .map(|e| e.path())
            .collect()
    };
    let leftovers: Vec<_> = killed.iter().flat_map(left_by).collect();
    assert!(
        !leftovers.is_empty(),
        "the killed runs left temporary folders"
    );
    let out = tempfile::tempdir().unwrap();
    let next = shipped(
        &out.path().join("run"),
        &[
            "--matrix",
            "control-ignore-flag",
            "--browser",
            "firefox",
            "--backend",
            "rustls",
        ],
    )
    .output()
    .unwrap();
    assert!(next.status.success(), "{next:?}");
    let kept: Vec<_> = leftovers.iter().filter(|p| p.exists()).collect();
    assert!(kept.is_empty(), "the next run removed them: {kept:?}");
}

#[test]
fn a_run_stops_processes_left_by_a_harness_that_is_gone_and_only_those() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // A harness that is gone: a process that has exited (its pid is not reused this soon).
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let start = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(19)
            .unwrap()
            .to_owned()
    };
    let marked = |pid: u32, started: &str| {
        std::process::Command::new("sleep")
            .arg("120")
            .env("HM_HARNESS_PID", pid.to_string())
            .env("HM_HARNESS_START", started)
            .spawn()
            .unwrap()
    };
    let mut orphan = marked(gone_pid, "12345");
    // The same pid with another start time is another process: the mark's harness is gone.
    let me = std::process::id();
    let mut reused = marked(me, "1");
    // This test process is alive with exactly this start time: its processes are left alone.
    let mut owned = marked(me, &start(me));

    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let output = shipped(
        &run,
        &[
            "--matrix",
            "control-accept-insecure",
            "--browser",
            "chromium",
            "--backend",
            "rustls",
            "--tls",
            "1.3",
            "--repeat",
            "1",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let line = format!(
        "stopped 2 leftover processes of earlier runs whose harness is gone: {} sleep, {} sleep",
        orphan.id().min(reused.id()),
        orphan.id().max(reused.id())
    );
    assert!(stderr.contains(&line), "expected `{line}` in: {stderr}");
    for (what, child) in [("orphan", &mut orphan), ("reused pid", &mut reused)] {
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "{what}"
        );
    }
    assert!(
        owned.try_wait().unwrap().is_none(),
        "a live harness's process is left alone"
    );
    owned.kill().unwrap();
    owned.wait().unwrap();
}

/// A listening socket: its local address, and `tcp` or `udp`.
type Listener = (IpAddr, u16, &'static str);

/// Every listening TCP socket and every bound, unconnected UDP socket of the machine's network
/// namespace, by socket inode.
fn listening_sockets() -> BTreeMap<u64, Listener> {
    let mut sockets = BTreeMap::new();
    for (file, proto, v6) in [
        ("/proc/net/tcp", "tcp", false),
        ("/proc/net/tcp6", "tcp", true),
        ("/proc/net/udp", "udp", false),
        ("/proc/net/udp6", "udp", true),
    ] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state, inode) = (f[1], f[2], f[3], f[9]);
            let listening = match proto {
                "tcp" => state == "0A",
                _ => remote.split(':').next().unwrap().chars().all(|c| c == '0'),
            };
            if !listening {
                continue;
            }
            let (addr, port) = local.split_once(':').unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            // The kernel prints each 32-bit word of the address in host byte order.
            let words: Vec<u32> = (0..addr.len() / 8)
                .map(|i| {
                    u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16)
                        .unwrap()
                        .swap_bytes()
                })
                .collect();
            let ip = if v6 {
                let mut octets = [0u8; 16];
                for (i, w) in words.iter().enumerate() {
                    octets[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
                }
                IpAddr::V6(Ipv6Addr::from(octets))
            } else {
                IpAddr::V4(Ipv4Addr::from(words[0]))
            };
            sockets.insert(inode.parse().unwrap(), (ip, port, proto));
        }
    }
    sockets
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[test]
fn nothing_a_run_starts_listens_beyond_loopback() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let mut child = spawn_both_browsers(&run);
    let harness = child.id();
    // process name → every address it listened on, over the whole run.
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut exposed = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run did not finish");
        let sockets = listening_sockets();
        for pid in run_processes(harness, &run).keys() {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let target = target.display().to_string();
                let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u64>().ok())
                else {
                    continue;
                };
                if let Some(&(ip, port, proto)) = sockets.get(&inode) {
                    let entry = format!("{proto} {ip}:{port}");
                    if !is_loopback(ip) {
                        exposed.insert(format!("{} {entry}", name.trim()));
                    }
                    seen.entry(name.trim().to_owned())
                        .or_default()
                        .insert(entry);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        exposed.is_empty(),
        "listening beyond loopback: {exposed:?}; all: {seen:?}"
    );
    for who in ["harness", "chromedriver", "geckodriver"] {
        assert!(
            seen.contains_key(who),
            "{who} was watched listening (else this test saw nothing): {seen:?}"
        );
    }
    assert!(
        seen.keys()
            .any(|n| n.starts_with("chromium") || n.starts_with("firefox")),
        "a browser's own port (DevTools, Marionette) was watched: {seen:?}"
    );
    eprintln!("listening sockets of the run: {seen:?}");
}
