//! An image as stored: its read-only layers (or, for images built or
//! imported before layers existed, one rootfs under `--root/images/<id>`)
//! and the settings its config gives containers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ImageRecord {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub created_at: i64,
    /// Layer keys (the sha256 of each uncompressed layer), lowest first.
    /// Empty for an image kept as one rootfs directory.
    #[serde(default)]
    pub layers: Vec<String>,
    /// Settings from the image's config; `None` for an imported tarball,
    /// which has none (a container then needs a command).
    #[serde(default)]
    pub config: Option<ImageConfig>,
    /// Digest of the manifest it was pulled by (`sha256:...`).
    #[serde(default)]
    pub digest: Option<String>,
    /// Further names of the same image (`tag`, or pulled by another name).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The layer blobs as fetched (compressed or not), kept for `save`,
    /// lowest first; their unpacked forms are `layers`.
    #[serde(default)]
    pub blobs: Vec<LayerBlob>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    pub digest: String,
    pub media_type: String,
}

/// What an image's config sets for its containers (the OCI image config's
/// `config` object, as docker applies it).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub user: String,
    /// `80/tcp`, `53/udp`, ...
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub stop_signal: String,
}
