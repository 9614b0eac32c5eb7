//! Small helpers shared across modules.

use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Current time in Unix nanoseconds, the unit of every timestamp in the API.
pub fn now_nanos() -> i64 {
    nanos_of(SystemTime::now())
}

/// Nanoseconds since the epoch (0 before it).
pub fn nanos_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// The time `nanos` Unix nanoseconds name (the epoch for negatives).
pub fn time_of(nanos: i64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// Writes a file so that readers see the old or the new content, never half.
/// The file is private to root, like everything the daemon keeps.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = create_private(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A pidfd for `pid`: it becomes readable when the process exits, and it
/// cannot be confused with a later process that reuses the pid.
pub fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if pid <= 0 {
        return None;
    }
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Creates (or truncates) a file only root may read or write: specs and
/// logs hold a container's environment and output.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.set_permissions(Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Opens a file for appending, creating it private to root.
pub fn append_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// Creates `dir` (and its parents) and gives it `mode`, repairing the mode
/// of one that already exists.
pub fn dir_with_mode(dir: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(mode))
}

/// stderr for log output that never reports a failure. tracing-subscriber
/// panics when its writer fails (it reports the error with `eprintln!`,
/// which fails too), and a full disk under the log must cost log lines,
/// not the process.
pub struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A unix socket path in `dir` that fits `sun_path` (108 bytes) however
/// long `dir` is: `/proc/self/fd/N/name` through an `O_PATH` handle on the
/// directory. The handle must stay open while the path is used.
pub struct SocketPath {
    _dir: File,
    pub path: std::path::PathBuf,
}

impl SocketPath {
    pub fn new(dir: &Path, name: &str) -> std::io::Result<SocketPath> {
        use std::os::fd::AsRawFd;
        let dir_file = OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_DIRECTORY).open(dir)?;
        let path = format!("/proc/self/fd/{}/{name}", dir_file.as_raw_fd()).into();
        Ok(SocketPath { _dir: dir_file, path })
    }
}

/// A temporary file (a spool, a download), removed when dropped; a no-op
/// once it was renamed into place.
pub struct TempFile(pub std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
