//! A sled tree holding one record type, keyed by id, stored as JSON.
//! Writes are flushed before they return; a failed one is rolled back by
//! the reopen it causes (see `database`).

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cell::TreeCell;
use crate::error::{Error, Result};

#[derive(Clone)]
pub struct Table<T> {
    cell: TreeCell,
    _record: PhantomData<fn() -> T>,
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::internal(format!("encode record: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::internal(format!("decode record: {e}")))
}

impl<T: Serialize + DeserializeOwned> Table<T> {
    pub(super) fn new(cell: TreeCell) -> Self {
        Table { cell, _record: PhantomData }
    }

    /// For changes made with other trees in one transaction.
    pub(super) fn cell(&self) -> &TreeCell {
        &self.cell
    }

    pub fn get(&self, id: &str) -> Result<Option<T>> {
        self.cell.read(|t| t.get(id.as_bytes()))?.map(|v| decode(&v)).transpose()
    }

    /// Writes a record and flushes it to disk.
    pub async fn put(&self, id: &str, value: &T) -> Result<()> {
        let value = encode(value)?;
        let (_, generation) = self.cell.write(|t| t.insert(id.as_bytes(), value.as_slice()))?;
        let flushed = self.cell.db().flush(generation).await;
        self.cell.saved_anyway(flushed, generation, id.as_bytes(), Some(&value))
    }

    pub async fn remove(&self, id: &str) -> Result<()> {
        let (_, generation) = self.cell.write(|t| t.remove(id.as_bytes()))?;
        let flushed = self.cell.db().flush(generation).await;
        self.cell.saved_anyway(flushed, generation, id.as_bytes(), None)
    }

    pub fn list(&self) -> Result<Vec<T>> {
        let values = self.cell.read(|t| t.iter().values().collect::<sled::Result<Vec<_>>>())?;
        values.iter().map(|v| decode(v)).collect()
    }

    /// Ids starting with `prefix` (for docker-style short ids).
    pub fn ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let keys = self.cell.read(|t| t.scan_prefix(prefix.as_bytes()).keys().collect::<sled::Result<Vec<_>>>())?;
        Ok(keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect())
    }
}
