//! The sled database behind the store, reopened from disk when a write
//! fails.
//!
//! After an IO error (a full disk) sled 0.34 refuses every later write
//! until it is reopened, and keeps the failed change readable in memory.
//! So on such an error every handle is dropped (sled holds a file lock) and
//! the database is opened again: what is on disk is the truth. Nothing
//! keeps a tree between operations; [`TreeCell`]s look it up each time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use super::cell::TreeCell;
use super::recover::{self, Open};
use crate::error::{Error, Result};

/// The shared database; clones are handles to the same one.
#[derive(Clone)]
pub struct Database(Arc<Inner>);

struct Inner {
    dir: PathBuf,
    names: &'static [&'static str],
    state: RwLock<State>,
    /// The reserve was given back to sled; take it again after a write
    /// succeeds.
    reserve_missing: AtomicBool,
}

struct State {
    /// None after a reopen failed: the next use tries again.
    open: Option<Open>,
    /// `open` is a copy in memory, for reads while the disk is too full to
    /// open the real database: writes first try to reopen that.
    read_only: bool,
    /// Bumped at each reopen: a change made on an older instance is lost,
    /// and its failure must not reopen the newer one again.
    generation: u64,
}

impl Open {
    fn tree(&self, names: &[&str], name: &str) -> sled::Tree {
        let i = names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("unknown store tree {name}"));
        self.trees[i].clone()
    }
}

impl Database {
    /// Opens the database at `dir` with the trees `names`.
    pub fn open(dir: &Path, names: &'static [&'static str]) -> Result<Database> {
        let open = recover::open(dir, names).map_err(|e| classify(dir, e))?;
        let reserve_missing = AtomicBool::new(!recover::ensure_reserve(dir));
        let state = RwLock::new(State { open: Some(open), read_only: false, generation: 0 });
        Ok(Database(Arc::new(Inner { dir: dir.to_path_buf(), names, state, reserve_missing })))
    }

    pub fn cell(&self, name: &'static str) -> TreeCell {
        assert!(self.0.names.contains(&name), "unknown store tree {name}");
        TreeCell::new(self.clone(), name)
    }

    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    pub(super) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// The trees `names` to read; reopens the database if an earlier
    /// reopen failed.
    pub fn trees<const N: usize>(&self, names: [&str; N]) -> Result<[sled::Tree; N]> {
        Ok(self.trees_for(names, false)?.0)
    }

    /// The trees `names` to change, and the generation to flush; reopens
    /// the database if it is closed or a read-only copy.
    pub fn trees_to_write<const N: usize>(&self, names: [&str; N]) -> Result<([sled::Tree; N], u64)> {
        self.trees_for(names, true)
    }

    fn trees_for<const N: usize>(&self, names: [&str; N], write: bool) -> Result<([sled::Tree; N], u64)> {
        if let Some(found) = self.lookup(names, write) {
            return Ok(found);
        }
        self.reopen(None)?;
        self.lookup(names, write).ok_or_else(|| Error::internal("the store closed again while it was being reopened"))
    }

    fn lookup<const N: usize>(&self, names: [&str; N], write: bool) -> Option<([sled::Tree; N], u64)> {
        let state = self.state();
        let open = state.open.as_ref().filter(|_| !(write && state.read_only))?;
        Some((names.map(|n| open.tree(self.0.names, n)), state.generation))
    }

    fn state(&self) -> RwLockReadGuard<'_, State> {
        self.0.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Our error for a sled error met on `generation`. An IO error poisons
    /// sled, so the database is reopened (blocking; callers hold no tree).
    pub fn failed(&self, generation: u64, e: sled::Error) -> Error {
        if matches!(e, sled::Error::Io(_)) {
            tracing::warn!(dir = %self.0.dir.display(), "store write failed ({e}); reopening the store from disk");
            if let Err(reopen) = self.reopen(Some(generation)) {
                tracing::error!(dir = %self.0.dir.display(), "reopen the store: {reopen}; retrying at the next use");
            }
        }
        classify(&self.0.dir, e)
    }

    /// [`Database::failed`] off the async workers.
    pub async fn failed_async(&self, generation: u64, e: sled::Error) -> Error {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.failed(generation, e)).await.unwrap_or_else(Error::internal)
    }

    /// Reopens the database, unless it was reopened since `seen` (or, with
    /// no `seen`, unless it is open and writable). If the disk is too full
    /// for that, reads go to a copy in memory.
    fn reopen(&self, seen: Option<u64>) -> Result<()> {
        let mut state = self.0.state.write().unwrap_or_else(PoisonError::into_inner);
        let current = match seen {
            Some(g) => g == state.generation,
            None => state.open.is_none() || state.read_only,
        };
        if !current {
            return Ok(());
        }
        state.generation += 1;
        if !state.read_only {
            // sled's lock is released once the last in-flight user lets go.
            drop(state.open.take());
        }
        self.0.reserve_missing.store(true, Ordering::Relaxed);
        match recover::open(&self.0.dir, self.0.names) {
            Ok(open) => {
                (state.open, state.read_only) = (Some(open), false);
                tracing::info!(dir = %self.0.dir.display(), generation = state.generation, "store reopened from disk");
                Ok(())
            }
            Err(e) => {
                if recover::is_full(&e) && state.open.is_none() {
                    self.open_copy(&mut state);
                }
                Err(classify(&self.0.dir, e))
            }
        }
    }

    fn open_copy(&self, state: &mut State) {
        match recover::open_copy(&self.0.dir, self.0.names) {
            Ok(copy) => {
                (state.open, state.read_only) = (Some(copy), true);
                tracing::warn!(dir = %self.0.dir.display(), "store disk full: serving reads from a copy in memory until writes fit again");
            }
            Err(e) => {
                tracing::error!(dir = %self.0.dir.display(), "store disk full, and {e}: the store is closed until there is room")
            }
        }
    }

    /// Makes the changes made on `generation` durable; fails if the
    /// database was reopened since (they were lost). Blocks.
    pub fn flush_blocking(&self, generation: u64) -> Result<()> {
        let db = {
            let state = self.state();
            match &state.open {
                Some(open) if state.generation == generation && !state.read_only => open.db.clone(),
                _ => return Err(lost()),
            }
        };
        let res = db.flush();
        drop(db);
        tracing::debug!(ok = res.is_ok(), "store flush");
        match res {
            Ok(_) => {
                keep_reserve(&self.0);
                Ok(())
            }
            Err(e) => Err(self.failed(generation, e)),
        }
    }

    /// [`Database::flush_blocking`] off the async workers.
    pub async fn flush(&self, generation: u64) -> Result<()> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.flush_blocking(generation)).await.map_err(Error::internal)?
    }

    /// Flushes whatever the current instance holds.
    pub async fn flush_current(&self) -> Result<()> {
        let generation = self.state().generation;
        self.flush(generation).await
    }
}

/// Takes the reserve again once writes go through.
fn keep_reserve(inner: &Inner) {
    if inner.reserve_missing.load(Ordering::Relaxed) && recover::ensure_reserve(&inner.dir) {
        inner.reserve_missing.store(false, Ordering::Relaxed);
    }
}

fn lost() -> Error {
    Error::internal("the store was reopened after another write failed; this change was not saved, try again")
}

/// A full disk gets its own error, saying what to do.
pub fn classify(dir: &Path, e: sled::Error) -> Error {
    if recover::is_full(&e) {
        return Error::StoreFull(dir.to_path_buf());
    }
    Error::Store(e)
}
