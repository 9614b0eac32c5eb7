//! Named network namespaces, bind-mounted under the daemon's run directory
//! (like `ip netns add`), so they exist before the container and outlive
//! its processes until the container is removed.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::error::{Error, IoContext, Result};

/// Creates a namespace at `path` with `lo` up. Runs on a throwaway thread,
/// because `unshare` changes the namespace of the calling thread only.
pub fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    }
    File::create(path).ctx(|| format!("create {}", path.display()))?;
    let target: PathBuf = path.to_path_buf();
    let res = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::internal(format!("unshare network namespace: {e}")))?;
        mount(Some("/proc/thread-self/ns/net"), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| Error::internal(format!("bind mount netns {}: {e}", target.display())))?;
        loopback_up()
    })
    .join()
    .map_err(|_| Error::internal("netns thread panicked"))?;
    if res.is_err() {
        let _ = remove(path);
    }
    res
}

/// Unmounts and deletes a namespace file; a missing one is not an error.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::internal(format!("unmount {}: {e}", path.display()))),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

/// Whether `path` is a mounted namespace (not just the empty placeholder).
pub fn exists(path: &Path) -> bool {
    let Ok(f) = File::open(path) else { return false };
    nix::sys::statfs::fstatfs(&f).map(|s| s.filesystem_type().0 == NSFS_MAGIC).unwrap_or(false)
}

const NSFS_MAGIC: libc::c_long = 0x6e73_6673;

/// Sets `IFF_UP` on `lo` in the calling thread's namespace (libcontainer
/// leaves it down, runc does not).
fn loopback_up() -> Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::internal(format!("socket: {e}")))?;
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    let fd = sock.as_raw_fd();
    unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(Error::io("get lo flags", std::io::Error::last_os_error()));
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(Error::io("set lo up", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}
