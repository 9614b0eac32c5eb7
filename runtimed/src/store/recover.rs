//! Opening sled so that a full disk or a cut-off snapshot never leaves the
//! store unreadable.
//!
//! sled writes a snapshot at open; on a full disk that fails and leaves an
//! empty `snap.*.generating` file, which sled then refuses at every later
//! open. A reserve file keeps room for that snapshot: it is given back when
//! sled needs the space, and taken again once writes succeed. Should the
//! disk fill again before that, reads are served from a copy in memory.

use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Space kept for the snapshot sled writes when it (re)opens.
const RESERVE_BYTES: usize = 1 << 20;
const RESERVE_FILE: &str = "reserve";
/// How long a reopen waits for the old instance's last users to release
/// sled's file lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// An open database and its trees, in the order they were named.
pub(super) struct Open {
    pub db: sled::Db,
    pub trees: Vec<sled::Tree>,
}

/// Opens the database at `dir` and its trees `names`. Waits for sled's
/// file lock, gives back the reserve if sled needs room, and removes
/// unfinished snapshots sled refuses.
pub(super) fn open(dir: &Path, names: &[&str]) -> sled::Result<Open> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let err = match try_open(dir, names) {
            Ok(open) => return Ok(open),
            Err(e) => e,
        };
        let retry = if is_locked(&err) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            true
        } else if matches!(err, sled::Error::Corruption { .. }) {
            remove_unfinished_snapshots(dir) > 0
        } else {
            is_full(&err) && release_reserve(dir)
        };
        if !retry {
            return Err(err);
        }
    }
}

fn try_open(dir: &Path, names: &[&str]) -> sled::Result<Open> {
    let db = sled::open(dir)?;
    let trees = names.iter().map(|n| db.open_tree(n)).collect::<sled::Result<_>>()?;
    Ok(Open { db, trees })
}

/// Opens a copy of the database in memory (`/dev/shm`), for reads while
/// the disk is too full for sled to open the real one. Nothing is ever
/// written to it.
pub(super) fn open_copy(dir: &Path, names: &[&str]) -> std::io::Result<Open> {
    let copy = copy_dir(dir)?;
    let open = try_open(&copy, names);
    // sled keeps its files open; no one else needs the copy.
    let _ = std::fs::remove_dir_all(&copy);
    open.map_err(|e| std::io::Error::other(format!("open a copy of the store: {e}")))
}

/// Copies sled's files (not the reserve or unfinished snapshots) to a new
/// private directory in memory.
fn copy_dir(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static COPIES: AtomicUsize = AtomicUsize::new(0);
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() { base.to_path_buf() } else { std::env::temp_dir() };
    let n = COPIES.fetch_add(1, Ordering::Relaxed);
    let copy = base.join(format!("runtimed-store-copy-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::DirBuilder::new().mode(0o700).create(&copy)?;
    let copied = copy_files(dir, &copy);
    if copied.is_err() {
        let _ = std::fs::remove_dir_all(&copy);
    }
    copied.map(|()| copy)
}

fn copy_files(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if name_str == RESERVE_FILE || name_str.ends_with(".generating") {
            continue;
        }
        if entry.file_type()?.is_dir() {
            std::fs::create_dir(to.join(&name))?;
            copy_files(&entry.path(), &to.join(&name))?;
        } else {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// Another instance (the one being replaced) still holds the database.
fn is_locked(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == ErrorKind::Other && io.to_string().contains("could not acquire lock"))
}

/// The disk is full. sled passes on copies of io errors that keep only
/// the kind, so the kind is what is checked.
pub(super) fn is_full(e: &sled::Error) -> bool {
    let sled::Error::Io(io) = e else { return false };
    matches!(io.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded) || io.raw_os_error() == Some(libc::ENOSPC)
}

/// Removes `snap.*.generating` files: snapshots whose writing was cut off
/// (a completed one is renamed), which sled reads as corruption when they
/// sort last. Returns how many were removed.
pub(super) fn remove_unfinished_snapshots(dir: &Path) -> usize {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("snap.") && name.ends_with(".generating")) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::warn!(file = %entry.path().display(), "removed an unfinished store snapshot");
                removed += 1;
            }
            Err(e) => {
                tracing::error!(file = %entry.path().display(), "remove an unfinished store snapshot: {e}")
            }
        }
    }
    removed
}

/// Frees the reserve; true if there was one.
fn release_reserve(dir: &Path) -> bool {
    let freed = std::fs::remove_file(dir.join(RESERVE_FILE)).is_ok();
    if freed {
        tracing::warn!(dir = %dir.display(), "store disk full: released the reserved space to reopen the store");
    }
    freed
}

/// Makes sure the reserve exists; false if there is no room for it yet.
pub(super) fn ensure_reserve(dir: &Path) -> bool {
    let path = dir.join(RESERVE_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64) {
        return true;
    }
    let written = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path).and_then(
        |mut f| {
            f.write_all(&vec![0; RESERVE_BYTES])?;
            f.sync_all()
        },
    );
    if written.is_err() {
        // A partial reserve would hold space it cannot promise.
        let _ = std::fs::remove_file(&path);
    }
    written.is_ok()
}
