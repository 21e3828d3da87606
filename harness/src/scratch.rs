//! A run's temporary folders (each trial's short TMPDIR, the profile templates) live in the
//! system's temporary folder. A run removes its own when it ends; a run killed hard (SIGKILL, a
//! CI job's timeout) cannot, and every such run used to leave them behind for good. So each
//! folder is named after the process that owns it — `hm-<pid>.<start>-<what>-XXXXXX`, `<start>`
//! the process's start time since boot, so that a reused pid does not pass for the owner — and
//! every run begins by removing the folders whose owner is gone ([`sweep`], right after
//! [`process::stop_leftovers`] has stopped the processes that could still write there, with the
//! same test of whether a harness is running). Folders of another run still going are never
//! touched, as long as runs sharing a temporary folder also share a PID namespace (a container
//! with its own PIDs needs its own `/tmp`, which `scripts/fresh-debian.sh` gives its root).

use std::path::Path;
use std::sync::OnceLock;

use crate::process;

/// A new temporary folder of this process for `what` (a short word: `trial`, `templates`).
pub fn folder(what: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("hm-{}-{what}-", owner()))
        .tempdir()
}

/// Removes the temporary folders whose owning process is gone; returns how many.
pub fn sweep() -> usize {
    sweep_in(&std::env::temp_dir())
}

/// `<pid>.<start>` of this process.
fn owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| format!("{}.{}", std::process::id(), process::own_start_time()))
}

/// The owner a folder's name gives: `hm-<pid>.<start>-…` → (pid, start).
fn owner_of(name: &str) -> Option<(u32, u64)> {
    let (owner, _) = name.strip_prefix("hm-")?.split_once('-')?;
    let (pid, start) = owner.split_once('.')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

fn sweep_in(tmp: &Path) -> usize {
    // Without /proc no owner can be checked, and a live run's folders would look orphaned.
    if process::own_start_time().is_empty() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start)) = name.to_str().and_then(owner_of) else {
            continue;
        };
        if process::harness_running(&pid.to_string(), &start.to_string()) || !entry.path().is_dir()
        {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                tracing::debug!(folder = %entry.path().display(), "removed a killed run's folder");
                removed += 1;
            }
            // Another user's, or one going away under us: not ours to insist on.
            Err(e) => tracing::debug!(folder = %entry.path().display(), "not removed: {e}"),
        }
    }
    if removed > 0 {
        tracing::info!("removed {removed} temporary folders that killed runs left");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_whose_owner_is_gone_is_removed_and_a_live_one_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        // A process that has ended: its pid is free (or reused, by a process that started
        // later than the first clock tick).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = child.id();
        child.wait().unwrap();
        let dead = tmp.path().join(format!("hm-{gone_pid}.1-trial-abc123"));
        let live = tmp.path().join(format!("hm-{}-templates-def456", owner()));
        // A folder of the scheme before this one, and someone else's: no owner to check.
        let old = tmp.path().join("hm-Xy12Zq");
        let other = tmp.path().join("other-folder");
        for d in [&dead, &live, &old, &other] {
            std::fs::create_dir_all(d.join("profile")).unwrap();
        }

        assert_eq!(sweep_in(tmp.path()), 1);
        assert!(!dead.exists(), "the killed run's folder is removed");
        assert!(live.exists() && old.exists() && other.exists());
    }

    #[test]
    fn this_process_names_its_folders_after_itself() {
        let dir = folder("trial").unwrap();
        let name = dir.path().file_name().unwrap().to_str().unwrap().to_owned();
        let (pid, start) = owner_of(&name).unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(start.to_string(), process::own_start_time());
        assert!(name.contains("-trial-"));
    }
}
