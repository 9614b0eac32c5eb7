//! A mount namespace to start shims from: the host's mounts without the
//! containers' (the netns and bundles dirs detached) and without those a
//! container start never uses ([`Scope`]), kept at a file in the run dir.
//! A shim that copies the host's namespace and then detaches the
//! other containers' mounts pays for all of them twice, in the copy and in
//! the detach: with 1,000 containers the kernel's part of a start took
//! 7.1 ms that way and 3.6 ms from here (2.1 and 2.1 with none; measured
//! step by step with bench/kernel-floor.py's system calls). Copied from
//! here, a shim's namespace holds only the host's own mounts, and its
//! container's mounts (cloned in the host's namespace first) are moved in.
//!
//! The template is a copy of the host's mounts when the daemon started and
//! a slave of them: what the host mounts later on a shared mount (systemd's)
//! appears in it too, on a private one it does not. So a host path that a
//! container is to see must be cloned in the host's namespace, as the
//! container's own mounts are. The containers' dirs are private mounts
//! (`prepare_drop_dir`), so their mounts never reach the template.

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::mounts::{clone_tree, is_mount_root, mount_points, move_tree};

/// Which of the host's mounts the template keeps: those on the way to the
/// `needed` dirs (the daemon's root and run dirs) and below them, and the
/// kernel's (below /proc, /sys and /dev), except the `drop_under` dirs.
/// Every other host mount goes: a start copies the template's mounts twice
/// (the shim's namespace, then the container's) and libcontainer reads
/// its mount table, so a host with many mounts of its own (a kubelet's,
/// another runtime's) would make every start slower.
#[derive(Clone)]
pub struct Scope {
    pub needed: Vec<PathBuf>,
    pub drop_under: Vec<PathBuf>,
}

/// What the kernel serves and libcontainer uses: cgroups, namespaces,
/// devices.
const KERNEL_TREES: [&str; 3] = ["/proc", "/sys", "/dev"];

impl Scope {
    fn keeps(&self, point: &Path) -> bool {
        self.needed.iter().any(|n| n.starts_with(point) || point.starts_with(n))
            || KERNEL_TREES.iter().any(|k| point.starts_with(k))
    }
}

/// Makes the template at `file`, replacing an earlier daemon's: a new mount
/// namespace, a slave of this one, with the mounts `scope` keeps. Made on
/// a throwaway thread (`unshare` moves only the calling thread); this
/// thread then binds it to `file`, which keeps it alive. Returns how many
/// host mounts it left out (each with the mounts below it).
pub fn create(file: &Path, scope: &Scope) -> Result<usize, String> {
    let _ = umount2(file, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(file)
        .map_err(|e| format!("create {}: {e}", file.display()))?;
    let (made_tx, made_rx) = mpsc::channel();
    let (bound_tx, bound_rx) = mpsc::channel::<()>();
    let scope = scope.clone();
    let maker = std::thread::spawn(move || {
        let _ = made_tx.send(make(&scope));
        // The namespace lives as long as this thread until it is bound.
        let _ = bound_rx.recv();
    });
    let bound = made_rx.recv().map_err(|_| "the template thread died".to_string()).and_then(|made| {
        let (tid, left_out) = made?;
        let ns = format!("/proc/self/task/{tid}/ns/mnt");
        mount(Some(ns.as_str()), file, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| format!("bind the mount template to {}: {e}", file.display()))?;
        Ok(left_out)
    });
    drop(bound_tx);
    let _ = maker.join();
    bound
}

/// The thread's half: its own namespace, a slave of the host's, with the
/// mounts `scope` keeps. Returns the thread's id and how many host mounts
/// it left out.
fn make(scope: &Scope) -> Result<(i32, usize), String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare mount namespace: {e}"))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(|e| format!("make / a slave mount: {e}"))?;
    for dir in &scope.drop_under {
        umount2(dir, MntFlags::MNT_DETACH).map_err(|e| format!("detach {}: {e}", dir.display()))?;
    }
    // This thread's table: /proc/self is the main thread's, the host's.
    let info = std::fs::read_to_string("/proc/thread-self/mountinfo").map_err(|e| format!("read mountinfo: {e}"))?;
    // Parents first: a detach takes the mounts below along, and they are
    // skipped, so no path is resolved through a mount that went.
    let mut points = mount_points(&info);
    points.sort_by_key(|p| p.components().count());
    let (mut gone, mut left_out) = (Vec::new(), 0);
    for point in points {
        if scope.keeps(&point) || gone.iter().any(|g| point.starts_with(g)) {
            continue;
        }
        // A mount stacked under this one shows when it goes: it goes next.
        while umount2(&point, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW).is_ok() {
            left_out += 1;
        }
        gone.push(point);
    }
    Ok((nix::unistd::gettid().as_raw(), left_out))
}

/// The shim's half: moves into a copy of the template at `file`, private,
/// with the `keep` mounts (its container's rootfs and netns, cloned here in
/// the host's namespace first) in place. On failure the shim is back in
/// the namespace it started in, for the caller's slower way.
pub fn enter(file: &Path, keep: &[PathBuf]) -> Result<(), String> {
    let template = File::open(file).map_err(|e| format!("open {}: {e}", file.display()))?;
    let kept: Vec<(OwnedFd, &PathBuf)> = keep
        .iter()
        .filter(|k| is_mount_root(k) == Some(true))
        .map(|k| clone_tree(k).map(|fd| (fd, k)).ok_or_else(|| format!("clone the mount at {}", k.display())))
        .collect::<Result<_, _>>()?;
    let host = File::open("/proc/self/ns/mnt").map_err(|e| format!("open own mount namespace: {e}"))?;
    let entered = enter_copy(&template, &kept);
    if entered.is_err() {
        setns(&host, CloneFlags::CLONE_NEWNS).map_err(|e| format!("return to the host's mount namespace: {e}"))?;
    }
    entered
}

fn enter_copy(template: &File, kept: &[(OwnedFd, &PathBuf)]) -> Result<(), String> {
    setns(template, CloneFlags::CLONE_NEWNS).map_err(|e| format!("enter the mount template: {e}"))?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare mount namespace: {e}"))?;
    // Private, as the slow way's: nothing done here reaches the host.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| format!("make / a private mount: {e}"))?;
    for (fd, path) in kept {
        move_tree(fd, path).ok_or_else(|| format!("move the mount of {} in", path.display()))?;
    }
    Ok(())
}
