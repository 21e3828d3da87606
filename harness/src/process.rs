//! Driver processes: started in their own process group, stopped with everything they spawned.
//!
//! A WebDriver driver starts the browser, which starts its own helpers. Killing only the driver
//! leaves the browser running, so each driver leads a new process group and stopping it signals
//! the whole group; then any process whose command line still names the trial's directory is
//! killed too (a browser that moved itself to another group), and every child is reaped.

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
    sweep: PathBuf,
}

impl DriverProcess {
    /// Spawns `binary args…` with `env` in a new process group, output appended to `log`, and
    /// waits until it accepts connections on `port`.
    pub async fn spawn(
        name: &str,
        binary: &Path,
        args: &[String],
        env: &[(&str, PathBuf)],
        log: &Path,
        port: u16,
    ) -> Result<Self, String> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
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
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let pgid = child.id().map(|p| p as i32);
        let sweep = log.parent().map(Path::to_path_buf).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(Self {
                    child: Some(child),
                    pgid,
                    sweep,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{name} exited with {status} before listening"));
            }
            if tokio::time::Instant::now() >= deadline {
                let mut me = Self {
                    child: Some(child),
                    pgid,
                    sweep,
                };
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

    /// Stops the driver's process group and every process naming the trial directory.
    pub async fn stop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
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
        kill_processes_naming(&self.sweep);
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: as in `stop`; the runtime may be gone, so no waiting here.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        kill_processes_naming(&self.sweep);
    }
}

/// Kills every process whose command line contains `dir`. (Such processes are the driver's
/// descendants, re-parented to init once the driver died; tokio reaps the driver itself.)
pub fn kill_processes_naming(dir: &Path) {
    let needle = dir.as_os_str().as_encoded_bytes();
    if needle.len() < 8 {
        return; // never sweep with a short, too general path
    }
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid as u32 == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            // SAFETY: plain signal to a process we identified by its command line.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
