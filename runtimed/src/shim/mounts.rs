//! A mount namespace of the shim's own, without the other containers'
//! mounts. libcontainer reads /proc/self/mountinfo many times per start,
//! and a container's mount namespace starts as a copy of its creator's:
//! with 1,000 containers (an overlay and a netns mount each) every start
//! paid for 2,000 mounts it does not use.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// Moves the shim into a new mount namespace (private: nothing done here
/// reaches the host, nor the host's changes here) without the mounts below
/// the `drop_under` directories except the `keep` mounts: a copy of the
/// `template` ([`super::template`]) if there is one, else a copy of the
/// host's with them detached. Returns how many directories or mounts were
/// detached (none from the template).
pub fn slim(drop_under: &[PathBuf], keep: &[PathBuf], template: Option<&Path>) -> Result<usize, String> {
    if drop_under.is_empty() {
        return Ok(0);
    }
    if let Some(file) = template {
        match super::template::enter(file, keep) {
            Ok(()) => {
                tracing::debug!("copied the mount template {}", file.display());
                return Ok(0);
            }
            Err(e) => tracing::warn!("{e}; detaching the other containers' mounts instead"),
        }
    }
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare mount namespace: {e}"))?;
    // Private, not slave: the host's later mounts (other containers')
    // would otherwise propagate into every shim's namespace, a cost that
    // grows with the number of shims.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| format!("make / a private mount: {e}"))?;
    if drop_under.iter().all(|d| is_mount_root(d) == Some(true)) {
        if let Some(n) = detach_whole(drop_under, keep) {
            return Ok(n);
        }
    }
    detach_one_by_one(drop_under, keep)
}

/// Reads the cgroup v1 mount points once, before libcontainer forks.
/// libcgroups (patched, third_party/libcgroups) keeps them for the
/// process and its children: the intermediate and init processes and the
/// removal no longer read the whole mount table, each once per
/// controller this host lacks (ten full reads per start, a host with a
/// thousand mounts of its own made a start twice as slow). Nothing to read
/// on a cgroup v2 host; an error here is libcontainer's to report.
pub fn read_cgroup_mounts_once() {
    use libcgroups::common::{get_cgroup_setup, CgroupSetup};
    if matches!(get_cgroup_setup(), Ok(CgroupSetup::Legacy | CgroupSetup::Hybrid)) {
        let _ = libcgroups::v1::util::list_subsystem_mount_points();
    }
}

/// The slow way, for directories that are not mounts of their own (an
/// older daemon's): every mount below them, one `umount2` each.
fn detach_one_by_one(drop_under: &[PathBuf], keep: &[PathBuf]) -> Result<usize, String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("read mountinfo: {e}"))?;
    let mut dropped = 0;
    // Later lines are mounted on top of earlier ones: detach them first.
    for point in mount_points(&info).iter().rev() {
        let below = |dirs: &[PathBuf]| dirs.iter().any(|d| point.starts_with(d) && point != d);
        if below(drop_under)
            && !keep.iter().any(|k| point.starts_with(k))
            && umount2(point, MntFlags::MNT_DETACH).is_ok()
        {
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// The fast way, when each `drop_under` directory is a mount of its own
/// ([`prepare_drop_dir`]): the kept mounts are cloned aside, each directory
/// is detached with everything below it in one call (with a thousand
/// containers, 2,000 single detaches took ~120 ms per start), and the
/// clones go back in place. Nothing reads the mount table, whose size
/// grows with the number of containers. None if any step failed
/// (open_tree needs Linux 5.2): the caller then detaches what is left one
/// by one.
fn detach_whole(drop_under: &[PathBuf], keep: &[PathBuf]) -> Option<usize> {
    let kept: Vec<(OwnedFd, &PathBuf)> = keep
        .iter()
        .filter(|k| is_mount_root(k) == Some(true))
        .map(|k| clone_tree(k).map(|fd| (fd, k)))
        .collect::<Option<_>>()?;
    let detached = drop_under.iter().filter(|d| umount2(*d, MntFlags::MNT_DETACH).is_ok()).count();
    // Back in place whatever happened: a kept tree detached with its
    // directory would leave the container without its rootfs.
    let restored = kept.iter().all(|(fd, path)| move_tree(fd, path).is_some());
    (detached == drop_under.len() && restored).then_some(detached)
}

/// Whether `path` is the root of a mount (statx's STATX_ATTR_MOUNT_ROOT,
/// Linux 5.8); None when the kernel cannot tell.
pub(super) fn is_mount_root(path: &Path) -> Option<bool> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statx fills the zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), libc::AT_SYMLINK_NOFOLLOW, 0, &mut st) };
    let attr = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (r == 0 && st.stx_attributes_mask & attr != 0).then_some(st.stx_attributes & attr != 0)
}

/// A detached copy of the mounts at and below `path` (open_tree(2)).
pub(super) fn clone_tree(path: &Path) -> Option<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: a plain syscall on a NUL-terminated path; the fd it returns
    // is owned here.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches the detached tree `fd` at `path` (move_mount(2)).
pub(super) fn move_tree(fd: &OwnedFd, path: &Path) -> Option<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let (empty, to) = (CString::default(), CString::new(path.as_os_str().as_bytes()).ok()?);
    // SAFETY: a plain syscall on NUL-terminated paths and an fd we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    (r == 0).then_some(())
}

/// The daemon's half of the fast way: `dir` becomes a mount of its own (a
/// bind onto itself), so a shim can detach all it holds in one call. Done
/// only while nothing is mounted below it; an older daemon's containers
/// keep the slow way until their mounts are gone.
///
/// The mount is private. On a host whose /run is shared (systemd's), a bind
/// joins the peer group of its source: every netns or rootfs mount made in
/// `dir` would be copied onto the shadowed directory below the bind (two
/// host mounts per mount) and into every namespace that is a slave of /run
/// (systemd's sandboxed services), where a netns held by such a copy lives
/// on after its container.
pub fn prepare_drop_dir(dir: &Path) -> Result<(), String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("read mountinfo: {e}"))?;
    let points = mount_points(&info);
    if points.iter().any(|p| p.starts_with(dir) && p != dir) {
        return Ok(());
    }
    if is_mount_root(dir) != Some(true) {
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| format!("bind {} onto itself: {e}", dir.display()))?;
    }
    mount(None::<&str>, dir, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| format!("make {} a private mount: {e}", dir.display()))
}

/// The mount points of a mountinfo text (field 5, octal escapes undone).
pub(super) fn mount_points(info: &str) -> Vec<PathBuf> {
    info.lines().filter_map(|l| l.split(' ').nth(4)).map(unescape).collect()
}

fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_roots_are_told_apart() {
        assert_eq!(is_mount_root(Path::new("/")), Some(true));
        assert_eq!(is_mount_root(Path::new("/proc")), Some(true));
        assert_eq!(is_mount_root(Path::new("/proc/self")), Some(false));
    }

    #[test]
    fn mount_points_are_read_and_unescaped() {
        let info = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
                    90 22 0:40 / /var/lib/rt/containers/a\\040b/rootfs rw - overlay overlay rw\n";
        assert_eq!(mount_points(info), [PathBuf::from("/"), PathBuf::from("/var/lib/rt/containers/a b/rootfs")]);
    }
}
