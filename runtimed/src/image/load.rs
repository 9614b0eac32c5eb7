//! `load`: images from a tar that `docker save` (manifest.json), an OCI
//! tool (index.json) or our own `save` wrote. The archive is unpacked in
//! a temporary directory next to the images; every path its JSON names
//! must stay inside it (the archive may hold symlinks anywhere), every
//! layer's content must match the config's diff id.

use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::layers::{hex_of, Busy, LayerStore};
use super::{config, reference, ImageRecord, ImageStore};
use crate::error::{Error, IoContext, Result};
use crate::records::image::LayerBlob;

/// One image of a docker archive's manifest.json.
#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// An image found in the archive: its names, config file and layer files.
struct Found {
    names: Vec<String>,
    config: PathBuf,
    layers: Vec<PathBuf>,
}

impl ImageStore {
    /// Loads every image of the archive at `archive` and records it under
    /// its names.
    pub async fn load(&self, archive: PathBuf) -> Result<Vec<ImageRecord>> {
        let me = self.clone();
        let loaded =
            tokio::task::spawn_blocking(move || me.load_blocking(&archive)).await.map_err(Error::internal)??;
        let mut records = Vec::new();
        for (image, _busy) in loaded {
            records.push(self.record_all(image).await?);
        }
        Ok(records)
    }

    fn load_blocking(&self, archive: &Path) -> Result<Vec<(ImageRecord, Vec<Busy>)>> {
        let dir = PathBuf::from(format!("{}.d", archive.display()));
        let loaded = (|| {
            unpack_archive(archive, &dir)?;
            let found = read_index(&dir)?;
            found.into_iter().map(|f| self.load_one(&dir, f)).collect::<Result<Vec<_>>>()
        })();
        let _ = std::fs::remove_dir_all(&dir);
        loaded
    }

    /// Unpacks one image's layers and keeps its blobs; the busy marks keep
    /// a sweep off them until the image is recorded.
    fn load_one(&self, dir: &Path, f: Found) -> Result<(ImageRecord, Vec<Busy>)> {
        let config_bytes = std::fs::read(inside(dir, &f.config)?).ctx(|| "read the image config".into())?;
        let image_config: ImageConfiguration =
            serde_json::from_slice(&config_bytes).map_err(|e| bad(format!("invalid image config: {e}")))?;
        let diff_ids = image_config.rootfs().diff_ids().clone();
        if diff_ids.len() != f.layers.len() {
            return Err(bad(format!("{} layers but the config has {} diff ids", f.layers.len(), diff_ids.len())));
        }
        let keys = diff_ids.iter().map(|d| LayerStore::key(d)).collect::<Result<Vec<_>>>()?;
        let mut busy: Vec<_> = keys.iter().map(|k| self.layers.busy(k)).collect();
        let mut blobs = Vec::new();
        for (path, key) in f.layers.iter().zip(&keys) {
            let path = inside(dir, path)?;
            let media_type = media_type_of(&path)?;
            if !self.layers.has(key) {
                self.layers.add(key, |dest| super::unpack::layer(super::open_blob(&path)?, dest))?;
            }
            let digest = self.keep_blob(&path)?;
            busy.push(self.layers.busy(&hex_of(&digest)?));
            blobs.push(LayerBlob { digest, media_type });
        }
        let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&config_bytes)));
        std::fs::write(self.layers.blob(&config_digest)?, &config_bytes).ctx(|| "store the image config".into())?;
        let created = image_config.created().as_deref().and_then(|c| humantime::parse_rfc3339(c).ok());
        let names: Vec<String> = f.names.iter().filter_map(|n| reference::normalize(n)).collect();
        let image = ImageRecord {
            id: hex_of(&config_digest)?,
            name: names.first().cloned().unwrap_or_default(),
            size: keys.iter().map(|k| super::dir_size(&self.layers.path(k))).sum(),
            created_at: created.map(crate::util::nanos_of).unwrap_or_else(crate::util::now_nanos),
            layers: keys,
            config: Some(config::from_oci(&image_config)),
            digest: None,
            tags: names.into_iter().skip(1).collect(),
            blobs,
        };
        Ok((image, busy))
    }

    /// Moves a layer file into the blob store under its digest.
    fn keep_blob(&self, path: &Path) -> Result<String> {
        use std::io::Read;
        let mut file = std::fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).ctx(|| format!("read {}", path.display()))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        let digest = format!("sha256:{}", hex::encode(hash.finalize()));
        let blob = self.layers.blob(&digest)?;
        if !blob.exists() {
            std::fs::rename(path, &blob).ctx(|| format!("store layer {digest}"))?;
        }
        Ok(digest)
    }
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("not an image archive: {e}"))
}

/// Unpacks the (possibly compressed) archive; tar keeps every entry
/// inside `dir`.
fn unpack_archive(archive: &Path, dir: &Path) -> Result<()> {
    let file = std::fs::File::open(archive).ctx(|| format!("open {}", archive.display()))?;
    let mut tar = tar::Archive::new(super::decompressed(file).ctx(|| "read the archive".into())?);
    tar.set_preserve_permissions(false);
    tar.set_unpack_xattrs(false);
    std::fs::create_dir(dir).ctx(|| format!("create {}", dir.display()))?;
    tar.unpack(dir).map_err(bad)
}

/// The images the archive lists: docker's manifest.json, else the OCI
/// index.json.
fn read_index(dir: &Path) -> Result<Vec<Found>> {
    let docker = Path::new("manifest.json");
    if std::fs::symlink_metadata(dir.join(docker)).is_ok() {
        let data = std::fs::read(inside(dir, docker)?).ctx(|| "read manifest.json".into())?;
        let entries: Vec<DockerEntry> =
            serde_json::from_slice(&data).map_err(|e| bad(format!("manifest.json: {e}")))?;
        return Ok(entries
            .into_iter()
            .map(|e| Found {
                names: e.repo_tags.unwrap_or_default(),
                config: PathBuf::from(e.config),
                layers: e.layers.into_iter().map(PathBuf::from).collect(),
            })
            .collect());
    }
    let data = std::fs::read(inside(dir, Path::new("index.json"))?)
        .map_err(|_| bad("it has neither manifest.json nor index.json"))?;
    let index: oci_spec::image::ImageIndex =
        serde_json::from_slice(&data).map_err(|e| bad(format!("index.json: {e}")))?;
    let mut found = Vec::new();
    for desc in index.manifests() {
        let manifest = manifest_for_here(dir, desc.digest().as_ref(), 0)?;
        let annotations = desc.annotations().clone().unwrap_or_default();
        let name = annotations.get("io.containerd.image.name").cloned();
        found.push(Found {
            names: name.into_iter().collect(),
            config: blob_path(manifest.config().digest().as_ref())?,
            layers: manifest.layers().iter().map(|l| blob_path(l.digest().as_ref())).collect::<Result<_>>()?,
        });
    }
    Ok(found)
}

/// How deep indexes may nest: a multi-platform image is an index inside
/// index.json; a loop of indexes must end.
const MAX_NESTING: usize = 3;

/// The image manifest `digest` names, or, if it names an index (a
/// multi-platform image), the manifest in it for this machine, as docker
/// loads only the platform it runs.
fn manifest_for_here(dir: &Path, digest: &str, depth: usize) -> Result<oci_spec::image::ImageManifest> {
    let data = std::fs::read(inside(dir, &blob_path(digest)?)?).ctx(|| format!("read manifest {digest}"))?;
    let value: serde_json::Value = serde_json::from_slice(&data).map_err(|e| bad(format!("manifest {digest}: {e}")))?;
    if value.get("manifests").is_none() {
        return serde_json::from_value(value).map_err(|e| bad(format!("manifest {digest}: {e}")));
    }
    if depth >= MAX_NESTING {
        return Err(bad(format!("index {digest} nests deeper than {MAX_NESTING} levels")));
    }
    let index: oci_spec::image::ImageIndex =
        serde_json::from_value(value).map_err(|e| bad(format!("index {digest}: {e}")))?;
    let arch = config::this_arch();
    let here = index.manifests().iter().find(|m| {
        m.platform().as_ref().is_some_and(|p| p.os().to_string() == "linux" && p.architecture().to_string() == arch)
    });
    match here {
        Some(m) => manifest_for_here(dir, m.digest().as_ref(), depth + 1),
        None => Err(Error::NotFound(format!("no manifest for platform linux/{arch} in index {digest}"))),
    }
}

fn blob_path(digest: &str) -> Result<PathBuf> {
    Ok(PathBuf::from(format!("blobs/sha256/{}", hex_of(digest)?)))
}

/// `rel` inside `dir`, symlinks resolved: an archive's symlink may point
/// anywhere on the host.
fn inside(dir: &Path, rel: &Path) -> Result<PathBuf> {
    let root = dir.canonicalize().ctx(|| format!("resolve {}", dir.display()))?;
    let path = match root.join(rel).canonicalize() {
        Ok(p) => p,
        Err(_) => return Err(bad(format!("{} is missing", rel.display()))),
    };
    if !path.starts_with(&root) || !path.is_file() {
        return Err(bad(format!("{} is not a file inside the archive", rel.display())));
    }
    Ok(path)
}

/// The media type of a layer file, by its first bytes.
fn media_type_of(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut head = [0u8; 6];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).ctx(|| format!("read {}", path.display()))?;
    let base = "application/vnd.oci.image.layer.v1.tar";
    Ok(match super::Compression::sniff(&head[..n]) {
        super::Compression::Gzip => format!("{base}+gzip"),
        super::Compression::Zstd => format!("{base}+zstd"),
        super::Compression::Xz => return Err(bad("xz-compressed layers are not supported")),
        super::Compression::None => base.to_string(),
    })
}
