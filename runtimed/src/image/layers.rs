//! Unpacked layers, each once, under `images/layers/<diff id hex>`, and
//! the blobs they came from under `images/blobs/sha256/<hex>`. Images that
//! share a layer share its directory. Everything is written under a
//! temporary name and renamed into place when complete, so a crash leaves
//! only temporaries, which `sweep` removes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, IoContext, Result};
use crate::ids::random_id;

const TMP: &str = ".tmp-";

#[derive(Clone)]
pub struct LayerStore {
    layers: PathBuf,
    blobs: PathBuf,
    /// Layers a pull is writing and has not yet recorded in an image: a
    /// sweep must not take them for unused.
    busy: Arc<Mutex<HashSet<String>>>,
}

/// Marks a layer busy while it lives.
pub struct Busy {
    key: String,
    set: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.set.lock().expect("busy layers").remove(&self.key);
    }
}

impl LayerStore {
    pub fn new(images_dir: &Path) -> Result<LayerStore> {
        let layers = images_dir.join("layers");
        let blobs = images_dir.join("blobs").join("sha256");
        for d in [&layers, &blobs] {
            crate::util::dir_with_mode(d, 0o700).ctx(|| format!("create {}", d.display()))?;
        }
        Ok(LayerStore { layers, blobs, busy: Arc::default() })
    }

    /// The key of a layer: the hex of its diff id.
    pub fn key(diff_id: &str) -> Result<String> {
        hex_of(diff_id)
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.layers.join(key)
    }

    pub fn has(&self, key: &str) -> bool {
        self.path(key).is_dir()
    }

    pub fn busy(&self, key: &str) -> Busy {
        self.busy.lock().expect("busy layers").insert(key.to_string());
        Busy { key: key.to_string(), set: self.busy.clone() }
    }

    pub fn blob(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.blobs.join(hex_of(digest)?))
    }

    /// A fresh temporary path for a blob being downloaded.
    pub fn blob_tmp(&self) -> PathBuf {
        self.blobs.join(format!("{TMP}{}", random_id()))
    }

    /// Unpacks a layer with `fill` into a temporary directory, then moves it
    /// into place. `fill` returns the diff id it computed, which must be
    /// the one the image's config promised.
    pub fn add(&self, key: &str, fill: impl FnOnce(&Path) -> Result<String>) -> Result<()> {
        let tmp = self.layers.join(format!("{TMP}{}", random_id()));
        let done = (|| {
            std::fs::create_dir(&tmp).ctx(|| format!("create {}", tmp.display()))?;
            let diff_id = fill(&tmp)?;
            if hex_of(&diff_id)? != key {
                return Err(Error::InvalidArgument(format!(
                    "layer content does not match its digest: expected sha256:{key}, got {diff_id}"
                )));
            }
            crate::failpoint::hit("pull:unpacked");
            std::fs::rename(&tmp, self.path(key)).ctx(|| format!("move layer {key} into place"))
        })();
        if done.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        done
    }

    /// Removes temporaries, and layers and blobs no image uses (`keep`).
    pub fn sweep(&self, keep_layers: &HashSet<String>, keep_blobs: &HashSet<String>) {
        let busy = self.busy.lock().expect("busy layers").clone();
        for (dir, keep) in [(&self.layers, keep_layers), (&self.blobs, keep_blobs)] {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let tmp = name.starts_with(TMP);
                if (tmp && dir == &self.blobs) || keep.contains(&name) || busy.contains(&name) {
                    // A blob temporary may be a download in progress; those
                    // left by a crash go at the next start (`sweep_all`).
                    continue;
                }
                remove(&entry.path());
            }
        }
    }

    /// At start, when nothing is in progress: temporaries go too.
    pub fn sweep_all(&self, keep_layers: &HashSet<String>, keep_blobs: &HashSet<String>) {
        if let Ok(entries) = std::fs::read_dir(&self.blobs) {
            for entry in entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(TMP)) {
                remove(&entry.path());
            }
        }
        self.sweep(keep_layers, keep_blobs);
    }
}

fn remove(path: &Path) {
    tracing::info!("removing unused image data {}", path.display());
    let removed = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    if let Err(e) = removed {
        tracing::warn!("cannot remove {}: {e}", path.display());
    }
}

/// The hex part of a `sha256:<64 hex>` digest; anything else is refused
/// (it names a file).
pub fn hex_of(digest: &str) -> Result<String> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Ok(h.to_string())
        }
        _ => Err(Error::InvalidArgument(format!("unsupported digest \"{digest}\": expected sha256:<64 hex digits>"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_digests_name_files() {
        let ok = format!("sha256:{}", "0f".repeat(32));
        assert_eq!(hex_of(&ok).unwrap(), "0f".repeat(32));
        assert!(hex_of("sha256:../../etc").is_err());
        assert!(hex_of(&format!("sha512:{}", "0".repeat(64))).is_err());
        assert!(hex_of(&format!("sha256:{}", "A".repeat(64))).is_err());
    }
}
