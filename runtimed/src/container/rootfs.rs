//! The container's root filesystem: an overlay of a writable layer over the
//! image's read-only rootfs, so one image serves many containers.

use std::path::{Path, PathBuf};

/// The kernel takes at most a page of mount options.
const MAX_MOUNT_DATA: usize = 4096;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::ContainerPaths;
use crate::error::{Error, IoContext, Result};

/// Creates the writable layer's and the bundle's directories (idempotent).
/// Both are owner-only: the layer may hold setuid files the container
/// made, and the bundle its environment, which no host user may reach.
pub fn prepare(paths: &ContainerPaths) -> Result<()> {
    for dir in [&paths.dir, paths.bundle()] {
        crate::util::dir_with_mode(dir, 0o700).ctx(|| format!("create {}", dir.display()))?;
    }
    for dir in [paths.upper(), paths.work(), paths.rootfs()] {
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
    }
    Ok(())
}

/// ext4's "top of directory hierarchies" attribute (`chattr +T`).
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// Tells the filesystem that the directories in `dir` (the containers')
/// are unrelated, as `chattr +T` does: ext4 then spreads them over its
/// block groups instead of packing them into the group of `dir`. Each
/// start makes a container's layer directories there (and the overlay its
/// scratch files), each removal deletes them, and an ext4 without a
/// journal reads every inode of the group freed in the last minutes
/// before it hands out a new one: packed into one group, the churn of the
/// last minutes made every start slower. Other filesystems ignore or
/// refuse the attribute; either is fine.
pub fn spread_layers(dir: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(dir);
    if let Err(e) = opened.and_then(|d| set_topdir(&d)) {
        tracing::debug!("{} keeps its allocation hints: {e}", dir.display());
    }
}

fn set_topdir(dir: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int at the pointer.
    if unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if flags & FS_TOPDIR_FL != 0 {
        return Ok(());
    }
    flags |= FS_TOPDIR_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int at the pointer.
    if unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Mounts the overlay (`lower`: the image's layers, top first) unless it
/// is already mounted. A `disposable` layer (a `--rm` container's, which
/// goes with the container) is mounted `volatile` where the kernel has it
/// (Linux 5.10): the overlay then skips the sync of the whole upper
/// filesystem when it goes, which made every `--rm` container end by
/// waiting for all the disk's dirty data to be written (its own log
/// included: a `run -i` of 200 MB ran at 0.6 of the speed).
pub fn mount_overlay(paths: &ContainerPaths, lower: &[PathBuf], disposable: bool) -> Result<()> {
    let target = paths.rootfs();
    if is_mounted(&target) {
        return Ok(());
    }
    if let Some(missing) = lower.iter().find(|l| !l.is_dir()) {
        return Err(Error::FailedPrecondition(format!("image layer {} is missing", missing.display())));
    }
    let lowerdir: Vec<String> = lower.iter().map(|l| l.display().to_string()).collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        paths.upper().display(),
        paths.work().display()
    );
    if opts.len() + VOLATILE.len() >= MAX_MOUNT_DATA {
        return Err(Error::FailedPrecondition(format!(
            "the image has too many layers ({}) to mount in one overlay",
            lower.len()
        )));
    }
    let mount_with = |opts: &str| mount(Some("overlay"), &target, Some("overlay"), MsFlags::empty(), Some(opts));
    // A volatile overlay leaves a mark that refuses any later mount of the
    // layer (a start after a crash that followed the mount); what is under
    // the work directory is the overlay's scratch.
    let _ = std::fs::remove_dir_all(paths.work().join("work").join("incompat").join("volatile"));
    let mounted = match disposable {
        true => mount_with(&format!("{opts}{VOLATILE}")).or_else(|_| mount_with(&opts)),
        false => mount_with(&opts),
    };
    mounted.map_err(|e| Error::internal(format!("mount overlay on {}: {e}", target.display())))
}

const VOLATILE: &str = ",volatile";

/// Unmounts the overlay if mounted.
pub fn unmount(paths: &ContainerPaths) -> Result<()> {
    let target = paths.rootfs();
    if !is_mounted(&target) {
        return Ok(());
    }
    umount2(&target, MntFlags::MNT_DETACH).map_err(|e| Error::internal(format!("unmount {}: {e}", target.display())))
}

/// Removes the container's directories (layer, bundle, logs).
pub fn remove_all(paths: &ContainerPaths) -> Result<()> {
    unmount(paths)?;
    for dir in [paths.bundle(), &paths.dir] {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("remove {}", dir.display()), e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A directory is a mount point when its device differs from its parent's
/// (an overlay has its own device number).
fn is_mounted(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Some(Ok(parent))) = (dir.metadata(), dir.parent().map(|p| p.metadata())) else {
        return false;
    };
    me.dev() != parent.dev()
}
