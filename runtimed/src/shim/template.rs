//! A mount namespace to start shims from: the host's mounts without the
//! containers' (the netns and bundles dirs detached), kept at a file in the
//! run dir. A shim that copies the host's namespace and then detaches the
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

use super::mounts::{clone_tree, is_mount_root, move_tree};

/// Makes the template at `file`, replacing an earlier daemon's: a new mount
/// namespace, a slave of this one, without the `drop_under` directories.
/// Made on a throwaway thread (`unshare` moves only the calling thread);
/// this thread then binds it to `file`, which keeps it alive.
pub fn create(file: &Path, drop_under: &[PathBuf]) -> Result<(), String> {
    let _ = umount2(file, MntFlags::MNT_DETACH);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(file)
        .map_err(|e| format!("create {}: {e}", file.display()))?;
    let (made_tx, made_rx) = mpsc::channel();
    let (bound_tx, bound_rx) = mpsc::channel::<()>();
    let drop_under = drop_under.to_vec();
    let maker = std::thread::spawn(move || {
        let _ = made_tx.send(make(&drop_under));
        // The namespace lives as long as this thread until it is bound.
        let _ = bound_rx.recv();
    });
    let bound = made_rx.recv().map_err(|_| "the template thread died".to_string()).and_then(|made| {
        let tid = made?;
        let ns = format!("/proc/self/task/{tid}/ns/mnt");
        mount(Some(ns.as_str()), file, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| format!("bind the mount template to {}: {e}", file.display()))
    });
    drop(bound_tx);
    let _ = maker.join();
    bound
}

/// The thread's half: its own namespace, a slave of the host's, without
/// `drop_under`. Returns the thread's id.
fn make(drop_under: &[PathBuf]) -> Result<i32, String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare mount namespace: {e}"))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(|e| format!("make / a slave mount: {e}"))?;
    for dir in drop_under {
        umount2(dir, MntFlags::MNT_DETACH).map_err(|e| format!("detach {}: {e}", dir.display()))?;
    }
    Ok(nix::unistd::gettid().as_raw())
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
