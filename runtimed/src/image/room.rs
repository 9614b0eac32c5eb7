//! How far a layer may fill the image store's disk. A layer is written by
//! whoever built the image, and a small blob can expand without end (a
//! gzip bomb), so unpacking stops before the disk's free space drops under
//! a reserve: room stays for the daemon's records and for the rest of the
//! host, and the error names the cause instead of a full disk.

use std::path::{Path, PathBuf};

/// Free space kept: a twentieth of the disk, at most this.
const MAX_RESERVE: u64 = 512 << 20;
/// Bytes unpacked between two looks at the free space.
const CHECK_EVERY: u64 = 4 << 20;

pub struct Room {
    dir: PathBuf,
    reserve: u64,
    next_check: u64,
    exceeded: bool,
}

impl Room {
    /// The room for unpacking into `dir`.
    pub fn new(dir: &Path) -> Room {
        let total = space(dir).map(|(total, _)| total).unwrap_or(0);
        Room {
            dir: dir.to_path_buf(),
            reserve: (total / 20).min(MAX_RESERVE),
            next_check: CHECK_EVERY,
            exceeded: false,
        }
    }

    /// Checks the free space now and then, given the bytes unpacked so
    /// far; fails once it is under the reserve.
    pub fn check(&mut self, unpacked: u64) -> std::io::Result<()> {
        if unpacked < self.next_check {
            return Ok(());
        }
        self.next_check = unpacked + CHECK_EVERY;
        match space(&self.dir) {
            Some((_, free)) if free < self.reserve => {
                self.exceeded = true;
                Err(std::io::Error::new(std::io::ErrorKind::StorageFull, self.message()))
            }
            _ => Ok(()),
        }
    }

    /// The error to report if unpacking stopped for want of room.
    pub fn exceeded(&self) -> Option<crate::error::Error> {
        self.exceeded.then(|| crate::error::Error::Exhausted(self.message()))
    }

    fn message(&self) -> String {
        format!(
            "the layer expands past the room on the image store's disk ({} MiB are kept free); \
             it may be a decompression bomb, or the disk needs room",
            self.reserve >> 20
        )
    }
}

/// A reader of a layer (or a tarball) being unpacked into `room`: it stops
/// once the disk runs short.
pub struct Guarded<R> {
    inner: R,
    read: u64,
    pub room: Room,
}

impl<R> Guarded<R> {
    pub fn new(inner: R, dest: &Path) -> Guarded<R> {
        Guarded { inner, read: 0, room: Room::new(dest) }
    }
}

impl<R: std::io::Read> std::io::Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.room.check(self.read)?;
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Total and available bytes of the filesystem holding `dir`.
fn space(dir: &Path) -> Option<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let unit = s.fragment_size() as u64;
    Some((s.blocks() as u64 * unit, s.blocks_available() as u64 * unit))
}
