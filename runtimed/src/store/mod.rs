//! All daemon state, in sled under `--root/store`.
//!
//! Each record type has its own tree (a typed [`Table`]); values are JSON so
//! records can grow fields. The `meta` tree holds the schema version, checked
//! at open so an older daemon never misreads a newer store. Every write is
//! flushed before the caller reports the change as done; one that fails
//! (a full disk) is reported and rolled back by reopening the database
//! from disk, so the store takes writes again once there is room.

mod cell;
mod database;
#[cfg(test)]
mod full_disk_tests;
pub mod ipam;
pub mod ports;
mod recover;
mod table;

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::error::{Error, Result};
use crate::records::container::ContainerRecord;
use crate::records::image::ImageRecord;
use crate::records::network::NetworkRecord;
#[cfg(test)]
pub use cell::testing;
pub use cell::TreeCell;
pub use database::Database;
use ports::PortIndex;
pub use table::Table;

/// Bump when a record changes in a way old code cannot read.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";

/// Every tree of the store, opened (and reopened) together.
const TREES: &[&str] = &["meta", "containers", "container_names", "images", "networks", "ipam", "ports"];
/// The trees a container's create and remove change in one transaction.
const CONTAINER_TREES: [&str; 3] = ["containers", "container_names", "ports"];

#[derive(Clone)]
pub struct Store {
    db: Database,
    pub containers: Table<ContainerRecord>,
    /// Container name -> id; keeps names unique.
    names: TreeCell,
    pub images: Table<ImageRecord>,
    pub networks: Table<NetworkRecord>,
    /// IP allocations, owned by `network::ipam`.
    pub ipam: ipam::Ipam,
    /// Published host ports -> container, owned by `network::ports`.
    pub ports: PortIndex,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        let db = Database::open(dir, TREES)?;
        check_schema(&db.cell("meta"))?;
        let store = Store {
            containers: Table::new(db.cell("containers")),
            names: db.cell("container_names"),
            images: Table::new(db.cell("images")),
            networks: Table::new(db.cell("networks")),
            ipam: ipam::Ipam::new(db.cell("ipam")),
            ports: PortIndex::new(db.cell("ports")),
            db,
        };
        let containers = store.containers.list()?;
        store.ports.rebuild(containers.iter().map(|c| (c.id.as_str(), c.ports.as_slice())))?;
        Ok(store)
    }

    /// Inserts a new container, claims its name and its published ports in
    /// one transaction.
    pub async fn insert_container(&self, rec: &ContainerRecord) -> Result<()> {
        let value = table::encode(rec)?;
        let (trees, generation) = self.db.trees_to_write(CONTAINER_TREES)?;
        let [c, n, p] = &trees;
        let res = (c, n, p).transaction(|(containers, names, ports)| {
            if names.get(rec.name.as_bytes())?.is_some() {
                return Err(ConflictableTransactionError::Abort(()));
            }
            names.insert(rec.name.as_bytes(), rec.id.as_bytes())?;
            containers.insert(rec.id.as_bytes(), value.as_slice())?;
            PortIndex::hold_in(ports, &rec.ports, &rec.id)?;
            Ok(())
        });
        drop(trees);
        match res {
            Ok(()) => {
                let flushed = self.db.flush(generation).await;
                self.containers.cell().saved_anyway(flushed, generation, rec.id.as_bytes(), Some(&value))
            }
            Err(TransactionError::Abort(())) => {
                Err(Error::AlreadyExists(format!("the container name \"{}\" is already in use", rec.name)))
            }
            Err(TransactionError::Storage(e)) => Err(self.db.failed_async(generation, e).await),
        }
    }

    /// Deletes a container record and frees its name and ports in one
    /// transaction.
    pub async fn remove_container(&self, rec: &ContainerRecord) -> Result<()> {
        let (trees, generation) = self.db.trees_to_write(CONTAINER_TREES)?;
        let [c, n, p] = &trees;
        let res: Result<(), TransactionError<()>> = (c, n, p).transaction(|(containers, names, ports)| {
            containers.remove(rec.id.as_bytes())?;
            names.remove(rec.name.as_bytes())?;
            PortIndex::release_in(ports, &rec.ports, &rec.id)?;
            Ok(())
        });
        drop(trees);
        match res {
            Ok(()) => {
                let flushed = self.db.flush(generation).await;
                self.containers.cell().saved_anyway(flushed, generation, rec.id.as_bytes(), None)
            }
            Err(TransactionError::Storage(e)) => Err(self.db.failed_async(generation, e).await),
            Err(TransactionError::Abort(())) => Err(Error::internal("remove aborted")),
        }
    }

    pub fn container_id_by_name(&self, name: &str) -> Result<Option<String>> {
        Ok(self.names.read(|t| t.get(name.as_bytes()))?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}

fn check_schema(meta: &TreeCell) -> Result<()> {
    match meta.read(|t| t.get(SCHEMA_KEY))? {
        None => {
            let (_, generation) = meta.write(|t| t.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()))?;
            meta.db().flush_blocking(generation)?;
            Ok(())
        }
        Some(v) => {
            let found = u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]));
            if found > SCHEMA_VERSION {
                return Err(Error::FailedPrecondition(format!(
                    "store schema version {found} is newer than this daemon's {SCHEMA_VERSION}"
                )));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::container::{ContainerRecord, ContainerSpec};

    fn temp_store(tag: &str) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::open(&dir).unwrap(), dir)
    }

    fn record(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord::new(id.into(), name.into(), "img".into(), ContainerSpec::default())
    }

    #[tokio::test]
    async fn names_are_unique_and_freed_on_remove() {
        let (store, dir) = temp_store("names");
        let a = record("aaa", "web");
        store.insert_container(&a).await.unwrap();
        let err = store.insert_container(&record("bbb", "web")).await.unwrap_err();
        assert!(matches!(err, Error::AlreadyExists(_)));
        assert!(store.containers.get("bbb").unwrap().is_none());
        store.remove_container(&a).await.unwrap();
        store.insert_container(&record("bbb", "web")).await.unwrap();
        assert_eq!(store.container_id_by_name("web").unwrap().as_deref(), Some("bbb"));
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn records_survive_reopen() {
        let (store, dir) = temp_store("reopen");
        store.insert_container(&record("ccc", "db")).await.unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.containers.get("ccc").unwrap().unwrap().name, "db");
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn an_unfinished_snapshot_does_not_keep_the_store_shut() {
        let (store, dir) = temp_store("snap");
        store.insert_container(&record("ddd", "snap")).await.unwrap();
        drop(store);
        // What a snapshot cut off by a full disk leaves; it sorts last.
        std::fs::write(dir.join("snap.FFFFFFFFFFFFFFFF.generating"), b"").unwrap();
        assert!(sled::open(&dir).is_err(), "sled refuses it by itself");
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.containers.get("ddd").unwrap().unwrap().name, "snap");
        assert!(!dir.join("snap.FFFFFFFFFFFFFFFF.generating").exists());
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
