//! Driver processes: started in their own process group, stopped with everything they spawned.
//!
//! A WebDriver driver starts the browser, which starts its own helpers. Killing only the driver
//! leaves the browser running, so each driver leads a new process group and stopping it signals
//! the whole group; then any process whose command line still names the trial's directory is
//! killed too (a browser that moved itself to another group), and every child is reaped.
//!
//! The harness makes itself a child subreaper: browser processes orphaned by a dying driver
//! become its children instead of init's, so it can reap them at once. Otherwise they linger as
//! zombies until init gets round to them (slowly, in some containers).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A free loopback port (the OS picks it; the listener is closed before the driver binds it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A running driver.
pub struct DriverProcess {
    child: Option<Child>,
    pgid: Option<i32>,
    /// Folders whose appearance in a command line marks a process as this trial's.
    sweep: Vec<PathBuf>,
}

impl DriverProcess {
    /// Spawns `binary args…` with `env` in a new process group, output appended to `log`, and
    /// waits until it accepts connections on `port`. `sweep` lists the folders (trial folder,
    /// private TMPDIR) that mark leftover processes as this driver's when it stops.
    pub async fn spawn(
        name: &str,
        binary: &Path,
        args: &[String],
        env: &[(&str, PathBuf)],
        log: &Path,
        port: u16,
        sweep: Vec<PathBuf>,
    ) -> Result<Self, String> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        become_subreaper();
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let pgid = child.id().map(|p| p as i32);
        // Owned from here on, so that a trial abandoned while the driver starts (interrupt,
        // timeout) still kills and reaps it in `Drop`.
        let mut me = Self {
            child: Some(child),
            pgid,
            sweep,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(me);
            }
            if let Some(Ok(Some(status))) = me.child.as_mut().map(Child::try_wait) {
                me.stop().await;
                return Err(format!("{name} exited with {status} before listening"));
            }
            if tokio::time::Instant::now() >= deadline {
                me.stop().await;
                return Err(format!("{name} did not listen on port {port} within 20 s"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The driver's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Sum of VmHWM over the processes in the driver's process group, KiB.
    pub fn group_peak_rss_kib(&self) -> Option<u64> {
        let pgid = self.pgid?.to_string();
        let total = processes()
            .filter(|(_, dir)| stat(dir).is_some_and(|s| s.pgrp == pgid))
            .filter_map(|(_, dir)| std::fs::read_to_string(dir.join("status")).ok())
            .filter_map(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .sum();
        Some(total)
    }

    /// Stops the driver's process group and every process naming the trial directory.
    pub async fn stop(&mut self) {
        let pgid = self.pgid.take();
        if let Some(pgid) = pgid {
            // SAFETY: signalling a process group we created; errors (already gone) are fine.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            if let Some(child) = &mut self.child {
                let _ = tokio::time::timeout(Duration::from_secs(3), child.wait()).await;
            }
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
        // The driver is reaped by tokio above; now the rest of its group (our children, as
        // subreaper). Poll without blocking the runtime's thread for long.
        if let Some(pgid) = pgid {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            loop {
                // SAFETY: waitpid on our own children in that process group.
                let r = unsafe { libc::waitpid(-pgid, std::ptr::null_mut(), libc::WNOHANG) };
                if r < 0 || tokio::time::Instant::now() >= deadline {
                    break; // ECHILD: none left
                }
                if r == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        for dir in &self.sweep {
            kill_processes_naming(dir);
        }
        reap_orphans();
    }
}

impl Drop for DriverProcess {
    /// Reached when a trial is abandoned (interrupt, timeout): the runtime may be gone, so this
    /// blocks briefly instead of awaiting.
    fn drop(&mut self) {
        let pgid = self.pgid.take();
        if let Some(pgid) = pgid {
            // SAFETY: as in `stop`.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        for dir in &self.sweep {
            kill_processes_naming(dir);
        }
        // Reap the group (driver included: nobody will await it now) so that no zombie is
        // left for init, which may be slow to collect it.
        if let Some(pgid) = pgid {
            for _ in 0..100 {
                // SAFETY: waitpid on our own children in that process group.
                let r = unsafe { libc::waitpid(-pgid, std::ptr::null_mut(), libc::WNOHANG) };
                if r < 0 {
                    break; // ECHILD: none left
                }
                if r == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        reap_orphans();
    }
}

/// Kills every process whose command line contains `dir`, and reaps those that are our children
/// (orphans we inherited as subreaper); tokio reaps the drivers themselves.
pub fn kill_processes_naming(dir: &Path) {
    let needle = dir.as_os_str().as_encoded_bytes();
    if needle.len() < 8 {
        return; // never sweep with a short, too general path
    }
    let me = std::process::id() as i32;
    let mut killed = Vec::new();
    for (pid, dir) in processes().filter(|(pid, _)| *pid != me) {
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            // SAFETY: plain signal to a process we identified by its command line.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed.push(pid);
        }
    }
    for pid in killed {
        for _ in 0..50 {
            // SAFETY: waitpid on one pid; ECHILD (not ours) ends the loop at once.
            let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            if r != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Reaps zombie children we inherited as subreaper (e.g. Chromium's crash handler, which
/// detaches from the driver's process group). Children this process spawned itself — drivers,
/// and `certutil` or `git` in our own process group — are left to whoever waits for them:
/// reaping them here would make their `wait` fail.
fn reap_orphans() {
    let me = std::process::id().to_string();
    // SAFETY: getpgrp has no preconditions.
    let our_group = unsafe { libc::getpgrp() }.to_string();
    for (pid, dir) in processes() {
        let Some(st) = stat(&dir) else { continue };
        let ours = st.pgrp == our_group || st.comm.ends_with("driver");
        if st.state == "Z" && st.ppid == me && !ours {
            // SAFETY: reaping one zombie child of ours.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        }
    }
}

/// Every process: its pid and its /proc folder.
fn processes() -> impl Iterator<Item = (i32, PathBuf)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
}

/// The fields of /proc/PID/stat this module reads.
struct Stat {
    comm: String,
    state: String,
    ppid: String,
    pgrp: String,
}

fn stat(dir: &Path) -> Option<Stat> {
    let text = std::fs::read_to_string(dir.join("stat")).ok()?;
    // `pid (comm) state ppid pgrp …`; comm may contain spaces and parentheses, so split at the
    // last ')'.
    let (head, tail) = text.rsplit_once(')')?;
    let mut fields = tail.split_whitespace().map(str::to_owned);
    Some(Stat {
        comm: head.split_once('(')?.1.to_owned(),
        state: fields.next()?,
        ppid: fields.next()?,
        pgrp: fields.next()?,
    })
}

/// Makes this process the reaper of its orphaned descendants (Linux `PR_SET_CHILD_SUBREAPER`).
fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with an integer argument; failure only means orphans go to init.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            tracing::debug!(
                "PR_SET_CHILD_SUBREAPER failed: {}",
                std::io::Error::last_os_error()
            );
        }
    });
}
