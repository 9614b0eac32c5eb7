//! Reads files inside a container's root filesystem from the host side.
//!
//! Whoever controls the container writes its rootfs: any path there may be a
//! symlink to a host file, a FIFO that blocks a reader forever, or a file of
//! gigabytes. So a read resolves the path as if the rootfs were `/`
//! (`openat2` with `RESOLVE_IN_ROOT`), refuses magic links, opens without
//! blocking, accepts regular files only, caps the size, and runs off the
//! async workers with a deadline.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// Largest file read from a rootfs (an /etc/passwd of 64k users fits).
pub const MAX_FILE: u64 = 4 << 20;
/// A read that takes longer than this is abandoned.
const DEADLINE: Duration = Duration::from_secs(5);

/// The file at `path` (absolute, as seen inside the container), or `None`
/// when it does not exist.
pub async fn read(rootfs: &Path, path: &str) -> Result<Option<String>> {
    let (root, rel) = (rootfs.to_path_buf(), path.to_string());
    let task = tokio::task::spawn_blocking(move || read_blocking(&root, &rel));
    match tokio::time::timeout(DEADLINE, task).await {
        Ok(joined) => joined.map_err(Error::internal)?,
        Err(_) => Err(Error::FailedPrecondition(format!("reading {path} in the container timed out"))),
    }
}

/// The blocking part of [`read`], for callers already off the workers.
pub fn read_blocking(rootfs: &Path, path: &str) -> Result<Option<String>> {
    let refuse = |why: &str| Error::FailedPrecondition(format!("{path} in the container {why}"));
    let file = match open_in_root(rootfs, path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(refuse("is a symlink loop or a magic link")),
        Err(e) => return Err(Error::io(format!("open {path} in the container"), e)),
    };
    let meta = file.metadata().map_err(|e| Error::io(format!("stat {path} in the container"), e))?;
    if !meta.file_type().is_file() {
        return Err(refuse("is not a regular file"));
    }
    if meta.len() > MAX_FILE {
        return Err(refuse(&format!("is larger than {MAX_FILE} bytes")));
    }
    let mut data = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::io(format!("read {path} in the container"), e))?;
    if data.len() as u64 > MAX_FILE {
        return Err(refuse(&format!("is larger than {MAX_FILE} bytes")));
    }
    Ok(Some(String::from_utf8_lossy(&data).into_owned()))
}

/// Creates the directory `path` and its missing parents inside the rootfs
/// (docker creates a missing `-w` directory). Each existing prefix is
/// resolved inside the root, and each new directory is made by name in its
/// resolved parent, so a symlink planted in the path cannot lead outside.
pub fn mkdir_all(rootfs: &Path, path: &str) -> Result<()> {
    use std::os::fd::AsRawFd;
    let fail = |e: std::io::Error| Error::io(format!("create directory {path} in the container"), e);
    let mut prefix = String::new();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let parent = open_dir_in_root(rootfs, &prefix).map_err(fail)?;
        prefix = format!("{prefix}/{part}");
        if part == ".." {
            continue;
        }
        let name = CString::new(part).map_err(|_| fail(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        // SAFETY: `name` is a valid C string and `parent` an open directory.
        let rc = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) };
        let err = std::io::Error::last_os_error();
        if rc != 0 && err.raw_os_error() != Some(libc::EEXIST) {
            return Err(fail(err));
        }
    }
    open_dir_in_root(rootfs, &prefix).map(drop).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTDIR) => Error::InvalidArgument(format!("{path} in the container is not a directory")),
        _ => fail(e),
    })
}

fn open_dir_in_root(rootfs: &Path, path: &str) -> std::io::Result<std::fs::File> {
    open_with(rootfs, path, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
}

/// Opens `path` for reading with `rootfs` as the root of every lookup: `..`
/// and absolute symlinks stay inside, magic links (`/proc/self/...`) fail.
fn open_in_root(rootfs: &Path, path: &str) -> std::io::Result<std::fs::File> {
    open_with(rootfs, path, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
}

fn open_with(rootfs: &Path, path: &str, flags: libc::c_int) -> std::io::Result<std::fs::File> {
    let root = std::fs::File::open(rootfs)?;
    let rel = match path.trim_start_matches('/') {
        "" => CString::from(c"."),
        p => CString::new(p).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?,
    };
    // SAFETY: open_how is plain integers; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    use std::os::fd::AsRawFd;
    // SAFETY: `how` and `rel` outlive the call; the kernel copies them.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

/// A directory under the test's temp dir (for unit tests here and in users).
#[cfg(test)]
pub fn test_root(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("confined-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = test_root("symlink");
        std::fs::write(root.join("etc/shadow"), "inside\n").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", root.join("etc/passwd")).unwrap();
        assert_eq!(read_blocking(&root, "/etc/passwd").unwrap().as_deref(), Some("inside\n"));
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/hostname", root.join("etc/passwd")).unwrap();
        assert_eq!(read_blocking(&root, "/etc/passwd").unwrap(), None);
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root/etc/hostname", root.join("etc/passwd")).unwrap();
        assert_eq!(read_blocking(&root, "/etc/passwd").unwrap(), None, "no /proc inside the root");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn fifos_and_directories_are_refused_at_once() {
        let root = test_root("fifo");
        nix::unistd::mkfifo(&root.join("etc/passwd"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = read_blocking(&root, "/etc/passwd").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::create_dir(root.join("etc/group")).unwrap();
        assert!(read_blocking(&root, "/etc/group").is_err());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn working_directories_are_made_inside_the_root() {
        let root = test_root("mkdir");
        let outside = std::env::temp_dir().join(format!("confined-outside-{}", std::process::id()));
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
        assert!(mkdir_all(&root, "/out/deep").is_err(), "the link dangles inside the root");
        assert!(!outside.join("deep").exists(), "the symlink was followed out of the root");
        std::fs::create_dir(root.join("inside")).unwrap();
        std::os::unix::fs::symlink("/inside", root.join("in")).unwrap();
        mkdir_all(&root, "/in/deep/er").unwrap();
        assert!(root.join("inside/deep/er").is_dir());
        mkdir_all(&root, "/a/b/../c").unwrap();
        assert!(root.join("a/b").is_dir() && root.join("a/c").is_dir());
        std::fs::write(root.join("file"), "").unwrap();
        assert!(mkdir_all(&root, "/file/x").is_err());
        std::fs::remove_dir_all(root).unwrap();
        std::fs::remove_dir_all(outside).unwrap();
    }

    #[test]
    fn huge_files_are_refused() {
        let root = test_root("huge");
        let f = std::fs::File::create(root.join("etc/passwd")).unwrap();
        f.set_len(MAX_FILE + 1).unwrap();
        assert!(read_blocking(&root, "/etc/passwd").unwrap_err().to_string().contains("larger"));
        std::fs::remove_dir_all(root).unwrap();
    }
}
