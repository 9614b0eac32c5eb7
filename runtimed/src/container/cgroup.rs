//! A container's cgroup is the truth about which processes are its. A
//! recorded pid may be stale or reused, and a start cut off by a crash
//! leaves processes that no record knows; the cgroup holds them all.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How long `kill_all` keeps killing before it gives up (a process in
/// uninterruptible sleep may take a while to die).
const KILL_DEADLINE: Duration = Duration::from_secs(5);

/// Fails when no cgroup hierarchy is visible, which is what a daemon
/// started with `ip netns exec` sees: that command remounts /sys for the
/// namespace, hiding /sys/fs/cgroup, and every start would then fail.
pub fn check_visible() -> Result<(), String> {
    let visible = std::fs::read_dir(CGROUP_ROOT).map(|mut d| d.next().is_some()).unwrap_or(false);
    match visible {
        true => Ok(()),
        false => Err(format!(
            "no cgroup hierarchy is visible at {CGROUP_ROOT}; if the daemon was started with `ip netns exec`, \
             which remounts /sys, start it with `nsenter --net=/run/netns/NAME` instead"
        )),
    }
}

/// Every hierarchy's directory of the container `id` under `parent`, in
/// cgroup v1 (one per controller), v2 or the hybrid `unified` tree.
pub fn dirs(parent: &str, id: &str) -> Vec<PathBuf> {
    parent_dirs(parent).into_iter().map(|p| p.join(id)).filter(|d| d.is_dir()).collect()
}

/// Ids of containers that have a cgroup under `parent`.
pub fn ids(parent: &str) -> HashSet<String> {
    parent_dirs(parent)
        .iter()
        .flat_map(|p| std::fs::read_dir(p).into_iter().flatten().flatten())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The processes in the container's cgroups.
pub fn pids(parent: &str, id: &str) -> HashSet<i32> {
    dirs(parent, id).iter().flat_map(|d| procs(d)).collect()
}

/// SIGKILLs every process of the container until none is left (or the
/// deadline passes); returns how many were killed.
pub fn kill_all(parent: &str, id: &str) -> usize {
    let deadline = Instant::now() + KILL_DEADLINE;
    let mut killed = HashSet::new();
    loop {
        let live = pids(parent, id);
        if live.is_empty() || Instant::now() > deadline {
            if !live.is_empty() {
                tracing::error!(id, "processes survive SIGKILL: {live:?}");
            }
            return killed.len();
        }
        for pid in live {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            killed.insert(pid);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes the container's (empty) cgroup directories.
pub fn remove(parent: &str, id: &str) {
    for dir in dirs(parent, id) {
        if let Err(e) = std::fs::remove_dir(&dir) {
            tracing::warn!(id, "remove cgroup {}: {e}", dir.display());
        }
    }
}

fn parent_dirs(parent: &str) -> Vec<PathBuf> {
    let root = Path::new(CGROUP_ROOT);
    let parent = parent.trim_start_matches('/');
    let mut dirs = vec![root.join(parent)];
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        // v1 controllers and the hybrid `unified` tree; symlinked aliases
        // (`cpu` -> `cpu,cpuacct`) repeat a directory harmlessly.
        dirs.push(entry.path().join(parent));
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}
