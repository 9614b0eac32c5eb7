//! One tree of the store's database, looked up at each use so that it
//! follows reopens.

use super::database::{classify, Database};
use crate::error::Result;

/// One tree of the database.
#[derive(Clone)]
pub struct TreeCell {
    db: Database,
    name: &'static str,
}

impl TreeCell {
    pub(super) fn new(db: Database, name: &'static str) -> Self {
        TreeCell { db, name }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The tree to change, and its generation.
    pub fn tree(&self) -> Result<(sled::Tree, u64)> {
        let ([tree], generation) = self.db.trees_to_write([self.name])?;
        Ok((tree, generation))
    }

    /// Runs a read.
    pub fn read<R>(&self, f: impl FnOnce(&sled::Tree) -> sled::Result<R>) -> Result<R> {
        let [tree] = self.db.trees([self.name])?;
        f(&tree).map_err(|e| classify(self.db.dir(), e))
    }

    /// The outcome of flushing a write of `key` (to `expected`; None:
    /// removed) made on `generation`. sled may write a change to disk and
    /// still fail the flush on a later one: once the store was reopened
    /// from disk, a change found there was saved after all.
    pub fn saved_anyway(
        &self,
        flushed: Result<()>,
        generation: u64,
        key: &[u8],
        expected: Option<&[u8]>,
    ) -> Result<()> {
        let Err(e) = flushed else { return Ok(()) };
        let reopened = self.db.generation() != generation;
        if reopened && self.read(|t| t.get(key)).is_ok_and(|v| v.as_deref() == expected) {
            tracing::info!(key = %String::from_utf8_lossy(key), "the store saved the change before its error");
            return Ok(());
        }
        Err(e)
    }

    /// Runs a write, not yet durable: returns the generation to flush.
    pub fn write<R>(&self, f: impl FnOnce(&sled::Tree) -> sled::Result<R>) -> Result<(R, u64)> {
        let (tree, generation) = self.tree()?;
        let res = f(&tree);
        // The reopen waits for every handle to the old instance.
        drop(tree);
        match res {
            Ok(r) => Ok((r, generation)),
            Err(e) => Err(self.db.failed(generation, e)),
        }
    }
}

#[cfg(test)]
pub mod testing {
    use std::path::PathBuf;

    use super::*;

    /// A tree in a database of its own, in a fresh directory.
    pub fn cell(name: &'static str) -> (TreeCell, PathBuf) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("store-cell-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let names: &'static [&'static str] = Box::leak(vec![name].into_boxed_slice());
        (Database::open(&dir, names).unwrap().cell(name), dir)
    }
}
