//! Driver processes: started in their own process group and PID namespace, stopped with
//! everything they spawned, and never outliving the harness.
//!
//! A WebDriver driver starts the browser, which starts its own helpers. Killing only the driver
//! leaves the browser running, so each driver leads a new process group and stopping it signals
//! the whole group; then any process whose command line still names the trial's directory is
//! killed too (a browser that moved itself to another group), and every child is reaped.
//!
//! The harness makes itself a child subreaper: browser processes orphaned by a dying driver
//! become its children instead of init's, so it can reap them at once. Otherwise they linger as
//! zombies until init gets round to them (slowly, in some containers).
//!
//! All of that needs the harness to run code. When it cannot — `kill -9`, the OOM killer, a CI
//! runner's timeout — the kernel must do it, see [`confine`].

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
    /// The supervisor between the harness and the driver (see [`confine`]), when the driver
    /// runs in a PID namespace of its own: a fork of the harness, so not counted as browser
    /// memory.
    supervisor: Option<i32>,
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
        // Marks every process of this run (the environment is inherited by the browser and
        // its helpers), so a later run can tell leftovers of a harness that is gone.
        command.env(MARK_PID, std::process::id().to_string());
        command.env(MARK_START, own_start_time());
        let isolated = pid_namespaces_work();
        let harness = std::process::id() as libc::pid_t;
        // SAFETY: `confine` calls only async-signal-safe functions (raw system calls).
        unsafe {
            command.pre_exec(move || confine(harness, isolated));
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let pgid = child.id().map(|p| p as i32);
        if let Some(pid) = pgid {
            owned().insert(pid);
        }
        // Owned from here on, so that a trial abandoned while the driver starts (interrupt,
        // timeout) still kills and reaps it in `Drop`.
        let mut me = Self {
            child: Some(child),
            pgid,
            supervisor: if isolated { pgid } else { None },
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

    /// Sum of VmHWM over the processes in the driver's process group, KiB.
    pub fn group_peak_rss_kib(&self) -> Option<u64> {
        let pgid = self.pgid?.to_string();
        let total = processes()
            .filter(|(pid, _)| Some(*pid) != self.supervisor)
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
            if let Some(pid) = pgid {
                owned().remove(&pid);
            }
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
            owned().remove(&pgid);
            reap_group_blocking(pgid);
        }
        reap_orphans();
    }
}

/// A server program serving one trial (lighttpd, nginx): like a driver, it leads its own
/// process group under [`confine`], and stopping it (or dropping it) ends the group and every
/// process naming the trial's folder. Synchronous, as targets start and stop.
pub struct ServerProcess {
    child: Option<std::process::Child>,
    pgid: Option<i32>,
}

impl ServerProcess {
    /// Spawns `binary args…` in `dir` in a new process group, output appended to `dir/log`,
    /// and waits (up to 10 s) until it accepts connections on 127.0.0.1:`port`.
    pub fn spawn(
        binary: &Path,
        args: &[String],
        dir: &Path,
        log: &str,
        port: u16,
    ) -> Result<Self, String> {
        use std::os::unix::process::CommandExt;
        let log = dir.join(log);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        become_subreaper();
        let mut command = std::process::Command::new(binary);
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .env(MARK_PID, std::process::id().to_string())
            .env(MARK_START, own_start_time());
        let harness = std::process::id() as libc::pid_t;
        // SAFETY: `confine` calls only async-signal-safe functions (raw system calls). No PID
        // namespace: a server is one process (or a master and its workers) in its own group.
        unsafe {
            command.pre_exec(move || confine(harness, false));
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let pgid = Some(child.id() as i32);
        if let Some(pid) = pgid {
            owned().insert(pid);
        }
        let mut me = Self {
            child: Some(child),
            pgid,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(me);
            }
            if let Some(Ok(Some(status))) = me.child.as_mut().map(std::process::Child::try_wait) {
                me.stop();
                return Err(format!(
                    "{} exited with {status} before listening; see {}",
                    binary.display(),
                    log.display()
                ));
            }
            if std::time::Instant::now() >= deadline {
                me.stop();
                return Err(format!(
                    "{} did not listen on port {port} within 10 s; see {}",
                    binary.display(),
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the group (SIGTERM, then SIGKILL after 2 s) and reaps it.
    pub fn stop(&mut self) {
        let Some(pgid) = self.pgid.take() else {
            return;
        };
        // SAFETY: signalling a process group we created; errors (already gone) are fine.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        if let Some(child) = &mut self.child {
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        owned().remove(&pgid);
        reap_group_blocking(pgid);
        reap_orphans();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reaps what is left of a process group we created, waiting up to a second (blocking: for
/// `Drop` and synchronous stops, where no runtime can be awaited), so that no zombie is left
/// for init, which may be slow to collect it.
fn reap_group_blocking(pgid: i32) {
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
        if names_dir(&cmdline, needle) {
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

/// Whether a NUL-separated command line names `dir` or a path inside it. The folder must end
/// where the match ends: `…/trial-1` is not `…/trial-16`, whose browser a sweep after trial 1
/// once killed while trial 16 of the same cell ran beside it.
fn names_dir(cmdline: &[u8], dir: &[u8]) -> bool {
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    (0..cmdline.len().saturating_sub(dir.len() - 1)).any(|i| {
        cmdline[i..].starts_with(dir) && matches!(cmdline.get(i + dir.len()), None | Some(b'/' | 0))
    })
}

/// Reaps zombie children we inherited as subreaper (e.g. Chromium's crash handler, which
/// detaches from the driver's process group). Children this process spawned itself — drivers
/// (or their supervisors), and `certutil` or `git` in our own process group — are left to
/// whoever waits for them: reaping them here would make their `wait` fail.
fn reap_orphans() {
    let me = std::process::id().to_string();
    // SAFETY: getpgrp has no preconditions.
    let our_group = unsafe { libc::getpgrp() }.to_string();
    for (pid, dir) in processes() {
        let Some(st) = stat(&dir) else { continue };
        let ours = st.pgrp == our_group || owned().contains(&pid);
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
    /// Clock ticks after boot at which the process started: with the pid, it names one
    /// process for good (pids are reused).
    start_time: String,
}

fn stat(dir: &Path) -> Option<Stat> {
    let text = std::fs::read_to_string(dir.join("stat")).ok()?;
    // `pid (comm) state ppid pgrp …`; comm may contain spaces and parentheses, so split at the
    // last ')'.
    let (head, tail) = text.rsplit_once(')')?;
    let fields: Vec<&str> = tail.split_whitespace().collect();
    // After `comm`, field 3 is the state; starttime is field 22 (proc(5)).
    Some(Stat {
        comm: head.split_once('(')?.1.to_owned(),
        state: (*fields.first()?).to_owned(),
        ppid: (*fields.get(1)?).to_owned(),
        pgrp: (*fields.get(2)?).to_owned(),
        start_time: (*fields.get(19)?).to_owned(),
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

/// Environment variables that mark every process a run starts: the harness's pid and its start
/// time (together they name one process, though pids are reused).
pub const MARK_PID: &str = "HM_HARNESS_PID";
/// See [`MARK_PID`].
pub const MARK_START: &str = "HM_HARNESS_START";

/// This process's start time (see [`MARK_START`]); empty without `/proc`.
pub(crate) fn own_start_time() -> String {
    stat(Path::new("/proc/self"))
        .map(|s| s.start_time)
        .unwrap_or_default()
}

/// Whether the harness that was process `pid`, started at `start_time`, is still running: the
/// pair names one process for good, and a zombie has ended. What such a harness left (its
/// processes, its temporary folders) is still its own.
pub(crate) fn harness_running(pid: &str, start_time: &str) -> bool {
    stat(&PathBuf::from(format!("/proc/{pid}")))
        .is_some_and(|s| s.start_time == start_time && s.state != "Z")
}

/// Pids of the children tokio waits for (drivers, or their supervisors): `reap_orphans` must
/// leave those alone.
fn owned() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<i32>> {
    static OWNED: std::sync::Mutex<std::collections::BTreeSet<i32>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    OWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Mounts a /proc of the calling process's PID namespace over /proc, in its own mount
/// namespace. A browser whose /proc shows another namespace's pids cannot find its own
/// children (Chromium then fails to start its renderers), so a PID namespace is used only
/// where this works.
///
/// # Safety
/// Async-signal-safe: raw system calls only.
unsafe fn own_proc() -> bool {
    // SAFETY: mount calls on our own mount namespace.
    unsafe {
        // A new mount namespace still shares mount events with the machine's: make the
        // existing /proc a slave first, so the mount below never propagates back. ("/" may
        // not be a mount point, e.g. in a chroot; /proc always is.)
        libc::mount(
            std::ptr::null(),
            c"/proc".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) == 0
            && libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ) == 0
    }
}

/// Whether this process may create PID and mount namespaces (root, or `CAP_SYS_ADMIN`) and
/// give them their own /proc: tried once with a throw-away child.
fn pid_namespaces_work() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        let mut probe = std::process::Command::new("/bin/true");
        // SAFETY: raw system calls only, as in `confine`.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut probe, || {
                if libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                match libc::fork() {
                    -1 => Err(std::io::Error::last_os_error()),
                    0 => libc::_exit(if own_proc() { 0 } else { 1 }),
                    child => {
                        let mut status = 0;
                        while libc::waitpid(child, &mut status, 0) == -1
                            && *libc::__errno_location() == libc::EINTR
                        {}
                        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                            Ok(())
                        } else {
                            Err(std::io::Error::from_raw_os_error(libc::EPERM))
                        }
                    }
                }
            });
        }
        match probe.status() {
            Ok(s) if s.success() => true,
            other => {
                tracing::warn!(
                    "cannot create PID namespaces with their own /proc ({}): a harness killed with SIGKILL leaves its \
                     browsers running until the next run stops them; run as root for the \
                     kernel's guarantee",
                    match other {
                        Ok(s) => s.to_string(),
                        Err(e) => e.to_string(),
                    }
                );
                false
            }
        }
    })
}

/// Runs in the forked child before the driver is executed: makes the driver and everything it
/// starts die with the harness, without the harness running any code at its death.
///
/// The choice: each driver is PID 1 of a PID namespace of its own, behind a supervisor.
/// - When a PID namespace's init dies, the kernel kills every process in the namespace: the
///   browser, its zygote and renderers, and Chromium's crash handler, which leaves the driver's
///   process group and so escapes a group kill. No process can leave a PID namespace.
/// - The supervisor (this fork, outside the namespace) and the driver both hold a parent-death
///   signal, so `kill -9` of the harness kills the supervisor, whose death kills the driver,
///   whose death empties the namespace. A parent-death signal alone reaches only direct
///   children, and is not inherited by the browser.
/// - The supervisor waits for the driver and exits with its status, so the runner sees the
///   driver's exit as before. Stopping the group (SIGTERM, then SIGKILL) ends the supervisor at
///   once, and with it the namespace.
/// - A mount namespace with a private /proc gives the browser a /proc that matches its own
///   pids; the harness keeps reading the machine's /proc.
///
/// A cgroup would also hold every process, but killing it needs a live manager (the harness,
/// or systemd, which CI containers lack). Without the privileges for namespaces the driver
/// still dies with the harness (parent-death signal) and the next run stops whatever the
/// driver left (`stop_leftovers`).
///
/// Caveat of parent-death signals: they fire when the *thread* that spawned the child exits.
/// Drivers are spawned from the tokio runtime's worker threads, which live as long as the run.
///
/// # Safety
/// Called between fork and exec of a multi-threaded process: only raw system calls, no
/// allocation, no locks.
unsafe fn confine(harness: libc::pid_t, isolated: bool) -> std::io::Result<()> {
    use std::io::Error;
    // SAFETY (whole body): system calls on our own process and on fds we created.
    unsafe {
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(Error::last_os_error());
        }
        // The harness may have died before the line above: then nothing will signal us.
        if libc::getppid() != harness {
            libc::_exit(1);
        }
        if !isolated {
            return Ok(());
        }
        if libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS) != 0 {
            return Err(Error::last_os_error());
        }
        // Open only while the supervisor lives: tells the driver whether it died meanwhile.
        let mut alive = [0; 2];
        if libc::pipe2(alive.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(Error::last_os_error());
        }
        let [alive_r, alive_w] = alive;
        match libc::fork() {
            -1 => Err(Error::last_os_error()),
            0 => {
                // PID 1 of the new namespace; it returns to exec the driver.
                libc::close(alive_w);
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                let mut poll = libc::pollfd {
                    fd: alive_r,
                    events: libc::POLLIN,
                    revents: 0,
                };
                if libc::poll(&mut poll, 1, 0) > 0 && poll.revents & libc::POLLHUP != 0 {
                    libc::_exit(1); // the supervisor is already gone
                }
                if !own_proc() {
                    libc::_exit(127); // the probe said this works; say so loudly if not
                }
                Ok(())
            }
            driver => {
                // The supervisor: a fork of the harness that never returns to Rust code.
                libc::close(alive_r);
                // The harness's signal handlers write to its own pipes: not ours to touch.
                for signal in 1..32 {
                    if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                        libc::signal(signal, libc::SIG_DFL);
                    }
                }
                // Every inherited descriptor but `alive_w`: the harness's sockets must not stay
                // open here, and the spawner waits for its exec-status pipe to close.
                close_range(3, alive_w as libc::c_uint - 1);
                close_range(alive_w as libc::c_uint + 1, libc::c_uint::MAX);
                let mut status = 0;
                loop {
                    let r = libc::waitpid(driver, &mut status, 0);
                    if r == driver {
                        break;
                    }
                    if r == -1 && *libc::__errno_location() != libc::EINTR {
                        libc::_exit(1);
                    }
                }
                libc::_exit(if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                });
            }
        }
    }
}

/// Closes descriptors `low..=high` (async-signal-safe).
unsafe fn close_range(low: libc::c_uint, high: libc::c_uint) {
    if low > high {
        return;
    }
    // SAFETY: closing descriptors of this process.
    unsafe {
        if libc::syscall(libc::SYS_close_range, low, high, 0) != 0 {
            // Kernels before 5.9: one by one, up to a generous limit.
            for fd in low..=high.min(65_536) {
                libc::close(fd as libc::c_int);
            }
        }
    }
}

/// Stops processes that earlier runs started and whose harness is gone (killed before it
/// could stop them, e.g. without the privileges for PID namespaces). Returns `pid name` of
/// each process stopped.
pub fn stop_leftovers() -> Vec<String> {
    let me = std::process::id() as i32;
    let mut stopped = Vec::new();
    for (pid, dir) in processes().filter(|(pid, _)| *pid != me) {
        let Ok(environ) = std::fs::read(dir.join("environ")) else {
            continue;
        };
        let var = |name: &str| {
            environ.split(|&b| b == 0).find_map(|entry| {
                let entry = std::str::from_utf8(entry).ok()?;
                entry
                    .strip_prefix(name)?
                    .strip_prefix('=')
                    .map(str::to_owned)
            })
        };
        let (Some(harness), Some(started)) = (var(MARK_PID), var(MARK_START)) else {
            continue;
        };
        if harness_running(&harness, &started) {
            continue; // a harness that is still running owns it
        }
        let name = stat(&dir).map(|s| s.comm).unwrap_or_default();
        // SAFETY: plain signal to a process an earlier run started and nobody owns.
        if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
            stopped.push(format!("{pid} {name}"));
        }
    }
    reap_orphans();
    stopped
}

#[cfg(test)]
mod tests {
    use super::names_dir;

    #[test]
    fn a_sweep_names_its_own_folder_and_nothing_that_merely_starts_like_it() {
        let dir = b"/runs/x/trials/report-close/rustls-chromium-tls1.3/trial-1";
        let args = |a: &[&str]| a.join("\0").into_bytes();
        let own = args(&[
            "chromium",
            "--user-data-dir=/runs/x/trials/report-close/rustls-chromium-tls1.3/trial-1/profile",
        ]);
        let sixteenth = args(&[
            "chromium",
            "--user-data-dir=/runs/x/trials/report-close/rustls-chromium-tls1.3/trial-16/profile",
        ]);
        let exact = args(&[
            "chromedriver",
            "/runs/x/trials/report-close/rustls-chromium-tls1.3/trial-1",
        ]);
        let at_end = b"geckodriver\0--profile-root=/runs/x/trials/report-close/rustls-chromium-tls1.3/trial-1";
        assert!(names_dir(&own, dir));
        assert!(names_dir(&exact, dir));
        assert!(names_dir(at_end, dir));
        assert!(
            !names_dir(&sixteenth, dir),
            "trial-16 is not inside trial-1"
        );
        assert!(names_dir(
            &own,
            b"/runs/x/trials/report-close/rustls-chromium-tls1.3/trial-1/"
        ));
    }
}
