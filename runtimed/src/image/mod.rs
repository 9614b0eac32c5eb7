//! The image store, described in sled: pulled images as layers shared
//! between images (`layers`), imported tarballs and the built-in `busybox`
//! (built from the host's static busybox on first start) as one read-only
//! rootfs under `--root/images/<id>`.

pub mod config;
mod download;
mod layers;
mod load;
pub mod pull;
pub mod reference;
mod room;
mod save;
mod unpack;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use layers::LayerStore;

use crate::error::{Error, IoContext, Result};
use crate::ids::{self, random_id, Kind};
use crate::records::image::ImageConfig;
use crate::store::Store;
use crate::util::now_nanos;

pub const DEFAULT_IMAGE: &str = "busybox";

pub use crate::records::image::ImageRecord;

/// A container that uses an image, as `rmi` needs to know it.
pub struct ImageUser {
    pub container: String,
    /// A running container's image is never removed, even by force.
    pub running: bool,
}

#[derive(Clone)]
pub struct ImageStore {
    dir: PathBuf,
    store: Store,
    layers: LayerStore,
    /// Registries reached over plain HTTP (`--insecure-registry`).
    insecure: Arc<Vec<String>>,
}

impl ImageStore {
    pub fn new(dir: PathBuf, store: Store, insecure: Vec<String>) -> Result<Self> {
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        remove_partial(&dir, &store)?;
        let layers = LayerStore::new(&dir)?;
        let images = ImageStore { dir, store, layers, insecure: Arc::new(insecure) };
        images.layers.sweep_all(|| images.in_use())?;
        Ok(images)
    }

    /// The read-only directories of an image's rootfs, top layer first
    /// (overlayfs's lowerdir order).
    pub fn lowerdirs(&self, image: &ImageRecord) -> Vec<PathBuf> {
        if image.layers.is_empty() {
            return vec![self.rootfs(image)];
        }
        image.layers.iter().rev().map(|k| self.layers.path(k)).collect()
    }

    /// Bytes on disk of all images, each shared layer once, and of those
    /// no image in `active` (ids) needs.
    pub fn disk_usage(&self, active: &HashSet<String>) -> Result<(u64, u64)> {
        let images = self.store.images.list()?;
        let mut sizes: std::collections::HashMap<PathBuf, (u64, bool)> = std::collections::HashMap::new();
        for image in &images {
            for dir in self.lowerdirs(image) {
                let entry = sizes.entry(dir.clone()).or_insert_with(|| (dir_size(&dir), false));
                entry.1 |= active.contains(&image.id);
            }
        }
        let total = sizes.values().map(|(s, _)| s).sum();
        let reclaimable = sizes.values().filter(|(_, used)| !used).map(|(s, _)| s).sum();
        Ok((total, reclaimable))
    }

    /// The config's history, oldest first, each step that made a layer
    /// with that layer's size; one step for a one-directory image.
    pub fn history(&self, image: &ImageRecord) -> Result<Vec<HistoryStep>> {
        if image.layers.is_empty() {
            let size = dir_size(&self.rootfs(image));
            let by = if image.name == DEFAULT_IMAGE { "built from the host's busybox" } else { "imported" };
            return Ok(vec![HistoryStep {
                created: image.created_at,
                created_by: by.into(),
                size,
                comment: String::new(),
            }]);
        }
        let data =
            std::fs::read(self.layers.blob(&format!("sha256:{}", image.id))?).ctx(|| "read the image config".into())?;
        let cfg: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(&data).map_err(|e| Error::internal(format!("stored image config: {e}")))?;
        let mut layers = image.layers.iter();
        let steps = cfg.history().clone().unwrap_or_default().into_iter().map(|h| {
            let size = match h.empty_layer() {
                Some(true) => 0,
                _ => layers.next().map(|k| dir_size(&self.layers.path(k))).unwrap_or(0),
            };
            let created = h.created().as_deref().and_then(|c| humantime::parse_rfc3339(c).ok());
            HistoryStep {
                created: created.map(crate::util::nanos_of).unwrap_or(0),
                created_by: h.created_by().clone().unwrap_or_default(),
                size,
                comment: h.comment().clone().unwrap_or_default(),
            }
        });
        Ok(steps.collect())
    }

    /// Layers and blobs (configs and layers as fetched) that recorded
    /// images use.
    fn in_use(&self) -> Result<(HashSet<String>, HashSet<String>)> {
        let images = self.store.images.list()?;
        let layers = images.iter().flat_map(|i| i.layers.iter().cloned()).collect();
        let configs = images.iter().filter(|i| !i.layers.is_empty()).map(|i| i.id.clone());
        let fetched = images.iter().flat_map(|i| &i.blobs).filter_map(|b| layers::hex_of(&b.digest).ok());
        Ok((layers, configs.chain(fetched).collect()))
    }

    /// Records a loaded image under each of its names (none: unnamed).
    async fn record_all(&self, image: ImageRecord) -> Result<ImageRecord> {
        let names: Vec<String> = image.names().cloned().collect();
        let Some((first, rest)) = names.split_first() else {
            if self.store.images.get(&image.id)?.is_none() {
                self.store.images.put(&image.id, &image).await?;
            }
            return Ok(image);
        };
        let mut record = self.record(ImageRecord { name: first.clone(), tags: Vec::new(), ..image }).await?;
        for name in rest {
            record = self.record(ImageRecord { name: name.clone(), ..record }).await?;
        }
        Ok(record)
    }

    /// Records a pulled image under its name. The name moves from any image
    /// that had it; an image already stored gains the name as a tag.
    async fn record(&self, new: ImageRecord) -> Result<ImageRecord> {
        for mut other in self.store.images.list()? {
            if other.id != new.id && other.names().any(|n| *n == new.name) {
                other.untag(&new.name);
                self.store.images.put(&other.id, &other).await?;
            }
        }
        let record = match self.store.images.get(&new.id)? {
            Some(mut existing) => {
                existing.tag(&new.name);
                existing.digest = new.digest.clone();
                existing
            }
            None => new,
        };
        self.store.images.put(&record.id, &record).await?;
        Ok(record)
    }

    /// A new place for an import to spool its tarball: next to the images,
    /// named so that one left by a crash is found and removed at start.
    pub fn spool_path(&self) -> PathBuf {
        self.dir.join(format!(".import-{}.tar", random_id()))
    }

    pub fn rootfs(&self, image: &ImageRecord) -> PathBuf {
        self.dir.join(&image.id).join("rootfs")
    }

    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let mut images = self.store.images.list()?;
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    /// Finds an image by any of its names (`busybox`, `busybox:latest`,
    /// `docker.io/library/busybox`) or an id prefix (`sha256:` optional).
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord> {
        // `sha256:ID`, as `load` and `images --digests` print ids.
        let reference = match reference.strip_prefix("sha256:") {
            Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => hex,
            _ => reference,
        };
        let exact = |r: &str| -> Result<Option<ImageRecord>> {
            let name = normalize(r);
            let images = self.store.images.list()?;
            Ok(images.into_iter().find(|i| i.id == r || i.names().any(|n| *n == name)))
        };
        let by_prefix = |r: &str| -> Result<Vec<ImageRecord>> {
            Ok(self.store.images.list()?.into_iter().filter(|i| i.id.starts_with(r)).collect())
        };
        ids::resolve(Kind::Image, reference, exact, by_prefix)
    }

    /// Builds the default image unless it exists. Leaves nothing behind on
    /// failure.
    pub async fn ensure_busybox(&self) -> Result<()> {
        if let Ok(mut image) = self.resolve(DEFAULT_IMAGE) {
            if image.config.is_none() && image.layers.is_empty() {
                // Built before images had configs: it runs `sh`, as before.
                image.config = Some(busybox_config());
                self.store.images.put(&image.id, &image).await?;
            }
            return Ok(());
        }
        let Some(busybox) = rootfs::find_busybox() else {
            tracing::warn!("no busybox binary found (install busybox-static); no default image");
            return Ok(());
        };
        let build = move |dest: &Path| rootfs::build_busybox(&busybox, dest).ctx(|| "build busybox image".into());
        self.add(DEFAULT_IMAGE, Some(busybox_config()), build).await?;
        tracing::info!("built the default busybox image");
        Ok(())
    }

    /// Imports a rootfs tarball as image `name`.
    pub async fn import(&self, name: &str, tarball: PathBuf) -> Result<ImageRecord> {
        self.add(name, None, move |dest| unpack(&tarball, dest)).await
    }

    /// Creates an image directory with `fill`, then records it; the directory
    /// is removed if anything fails.
    async fn add<F>(&self, name: &str, config: Option<ImageConfig>, fill: F) -> Result<ImageRecord>
    where
        F: FnOnce(&Path) -> Result<()> + Send + 'static,
    {
        let name = normalize(name);
        validate_name(&name)?;
        if self.resolve(&name).map(|i| i.name == name).unwrap_or(false) {
            return Err(Error::AlreadyExists(format!("image {name} already exists; remove it first")));
        }
        let id = random_id();
        let dir = self.dir.join(&id);
        let rootfs = dir.join("rootfs");
        let result = tokio::task::spawn_blocking(move || -> Result<u64> {
            std::fs::create_dir_all(&rootfs).ctx(|| format!("create {}", rootfs.display()))?;
            fill(&rootfs)?;
            crate::failpoint::hit("import:unpacked");
            Ok(dir_size(&rootfs))
        })
        .await
        .map_err(Error::internal)
        .and_then(|r| r);
        let record = match result {
            Ok(size) => ImageRecord {
                id: id.clone(),
                name,
                size,
                created_at: now_nanos(),
                layers: Vec::new(),
                config,
                digest: None,
                tags: Vec::new(),
                blobs: Vec::new(),
            },
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        if let Err(e) = self.store.images.put(&id, &record).await {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(record)
    }

    /// `tag`: one more name for the image `source` names.
    pub async fn tag(&self, source: &str, target: &str) -> Result<ImageRecord> {
        let image = self.resolve(source)?;
        let name = normalize(target);
        validate_name(&name)?;
        self.record(ImageRecord { name, ..image }).await
    }

    /// Removes one name of an image; the image itself goes with its last
    /// name (or when named by id), unless `in_use` says a container needs
    /// it: then `force` (docker's `rmi -f`) takes only its names, if that
    /// container is stopped. Layers and blobs no other image uses go with
    /// it.
    pub async fn remove(&self, reference: &str, in_use: Option<ImageUser>, force: bool) -> Result<ImageRecord> {
        let mut image = self.resolve(reference)?;
        let name = normalize(reference);
        if image.names().count() > 1 && image.names().any(|n| *n == name) {
            image.untag(&name);
            self.store.images.put(&image.id, &image).await?;
            return Ok(image);
        }
        if let Some(user) = in_use {
            if user.running || !force {
                let (why, state) =
                    if user.running { ("cannot be forced", "running") } else { ("must force", "stopped") };
                return Err(Error::FailedPrecondition(format!(
                    "unable to remove image {reference} ({why}): image is being used by {state} container {}",
                    user.container
                )));
            }
            // The container refers to the image by id: it keeps working,
            // and `image prune` takes the image once it is gone.
            (image.name, image.tags) = (String::new(), Vec::new());
            self.store.images.put(&image.id, &image).await?;
            return Ok(image);
        }
        self.store.images.remove(&image.id).await?;
        let dir = self.dir.join(&image.id);
        tokio::task::spawn_blocking(move || -> Result<()> {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).ctx(|| format!("remove {}", dir.display()))?;
            }
            Ok(())
        })
        .await
        .map_err(Error::internal)??;
        self.sweep().await;
        Ok(image)
    }

    /// Removes layers and blobs that no image uses and no pull is writing.
    async fn sweep(&self) {
        let me = self.clone();
        let swept = tokio::task::spawn_blocking(move || me.layers.sweep(|| me.in_use())).await;
        if let Ok(Err(e)) | Err(e) = swept.map_err(Error::internal) {
            tracing::warn!("sweeping unused image data: {e}");
        }
    }
}

impl ImageRecord {
    /// Every name of the image: its first, then its tags.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.name).filter(|n| !n.is_empty()).chain(&self.tags)
    }

    fn tag(&mut self, name: &str) {
        if !self.names().any(|n| n == name) {
            self.tags.push(name.to_string());
        }
    }

    fn untag(&mut self, name: &str) {
        self.tags.retain(|t| t != name);
        if self.name == name {
            self.name = if self.tags.is_empty() { String::new() } else { self.tags.remove(0) };
        }
    }
}

/// One step of an image's history.
pub struct HistoryStep {
    pub created: i64,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
}

/// The built-in busybox image runs a shell, as docker's does.
fn busybox_config() -> ImageConfig {
    ImageConfig { cmd: Some(vec!["sh".into()]), ..Default::default() }
}

/// A name as stored whichever way it was typed (`name:latest` and `name`
/// are the same image); ids and prefixes pass unchanged.
fn normalize(name: &str) -> String {
    reference::normalize(name).unwrap_or_else(|| name.to_string())
}

fn validate_name(name: &str) -> Result<()> {
    match reference::normalize(name) {
        Some(n) if n == name && !name.contains('@') && name.len() <= 255 => Ok(()),
        _ => Err(Error::InvalidArgument(format!(
            "invalid image name \"{name}\": use lowercase letters, digits and ._/- with an optional :tag"
        ))),
    }
}

/// Deletes what an import cut off by a crash left: its spooled tarball
/// (`.import-*`) and image directories the store does not know.
fn remove_partial(dir: &Path, store: &Store) -> Result<()> {
    for entry in std::fs::read_dir(dir).ctx(|| format!("read {}", dir.display()))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "layers" || name == "blobs" {
            continue;
        }
        let partial = name.starts_with(".import-") || store.images.get(&name)?.is_none();
        if !partial {
            continue;
        }
        tracing::warn!("removing {name}, left by an interrupted image import");
        let path = entry.path();
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.ctx(|| format!("remove {}", path.display()))?;
    }
    Ok(())
}

fn unpack(tarball: &Path, dest: &Path) -> Result<()> {
    let file = std::fs::File::open(tarball).ctx(|| format!("open {}", tarball.display()))?;
    let data = room::Guarded::new(decompressed(file).ctx(|| format!("read {}", tarball.display()))?, dest);
    let mut archive = tar::Archive::new(data);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let unpacked = archive.unpack(dest);
    if let Some(e) = archive.into_inner().room.exceeded() {
        return Err(e);
    }
    unpacked.map_err(|e| Error::InvalidArgument(format!("not a valid rootfs tarball: {e}")))?;
    if std::fs::read_dir(dest).map(|mut d| d.next().is_none()).unwrap_or(true) {
        return Err(Error::InvalidArgument("the tarball is empty".into()));
    }
    Ok(())
}

/// A stored layer blob's tar, decompressed by what its bytes start with
/// (sniffed, so a registry's wrong media type does not matter).
fn open_blob(path: &Path) -> Result<Box<dyn Read>> {
    let file = std::fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
    decompressed(file).ctx(|| format!("read {}", path.display()))
}

/// The tarball's bytes, decompressed if they start like gzip, zstd or xz
/// (`docker import` takes all three).
fn decompressed(file: std::fs::File) -> std::io::Result<Box<dyn Read>> {
    let mut reader = BufReader::new(file);
    let head = reader.fill_buf()?;
    Ok(match Compression::sniff(head) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::Decoder::with_buffer(reader)?),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader)),
        Compression::None => Box::new(reader),
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Compression {
    Gzip,
    Zstd,
    Xz,
    None,
}

impl Compression {
    fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }
}

pub(crate) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_tarballs_are_recognised() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(Compression::sniff(b"\xfd7zXZ\x00\x00"), Compression::Xz);
        assert_eq!(Compression::sniff(b"bin/\0\0\0"), Compression::None);
    }

    #[test]
    fn names_follow_docker_rules() {
        assert!(validate_name("busybox").is_ok());
        assert!(validate_name("my/app:1.0").is_ok());
        assert!(validate_name("Upper").is_err());
        assert!(validate_name("bad name").is_err());
        assert!(validate_name("x:").is_err());
        assert!(validate_name("127.0.0.1:5000/app:v1").is_ok());
        assert_eq!(normalize("busybox:latest"), "busybox");
        assert_eq!(normalize("docker.io/library/busybox"), "busybox");
    }
}
