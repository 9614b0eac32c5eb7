//! An image as stored: a root filesystem under `--root/images/<id>`.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ImageRecord {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub created_at: i64,
}
