//! A sled tree holding one record type, keyed by id, stored as JSON.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Clone)]
pub struct Table<T> {
    tree: sled::Tree,
    _record: PhantomData<fn() -> T>,
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::internal(format!("encode record: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::internal(format!("decode record: {e}")))
}

impl<T: Serialize + DeserializeOwned> Table<T> {
    pub(super) fn new(tree: sled::Tree) -> Self {
        Table { tree, _record: PhantomData }
    }

    pub(super) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    pub fn get(&self, id: &str) -> Result<Option<T>> {
        self.tree.get(id.as_bytes())?.map(|v| decode(&v)).transpose()
    }

    /// Writes a record and flushes it to disk.
    pub async fn put(&self, id: &str, value: &T) -> Result<()> {
        self.tree.insert(id.as_bytes(), encode(value)?)?;
        self.tree.flush_async().await?;
        Ok(())
    }

    pub async fn remove(&self, id: &str) -> Result<()> {
        self.tree.remove(id.as_bytes())?;
        self.tree.flush_async().await?;
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<T>> {
        self.tree.iter().values().map(|v| decode(&v?)).collect()
    }

    /// Ids starting with `prefix` (for docker-style short ids).
    pub fn ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        self.tree
            .scan_prefix(prefix.as_bytes())
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }
}
