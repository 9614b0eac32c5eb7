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
    /// the one the image's config promised. If another unpack of the same
    /// layer got there first (a failed pull's, which runs on after the pull
    /// gave up on it), that one stays: the same digest, the same content.
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
        done.or_else(|e| if self.has(key) { Ok(()) } else { Err(e) })
    }

    /// Removes the layers and blobs that no image uses: `in_use` returns
    /// the layers and blobs to keep. The choice is made holding the busy
    /// set, and `in_use` is read only then: a pull marks what it writes
    /// busy before it writes, and records its image before it unmarks, so
    /// nothing a pull needs is taken, whichever runs first. (With a copy of
    /// the set taken before, a pull that started meanwhile lost the layer
    /// it had just unpacked.) What goes is renamed away under the lock and
    /// deleted after it. Temporaries may be a pull's work in progress:
    /// those a crash left go at the next start (`sweep_all`).
    pub fn sweep(&self, in_use: impl FnOnce() -> Result<(HashSet<String>, HashSet<String>)>) -> Result<()> {
        let doomed = {
            let busy = self.busy.lock().expect("busy layers");
            let (keep_layers, keep_blobs) = in_use()?;
            let mut doomed = Vec::new();
            for (dir, keep) in [(&self.layers, &keep_layers), (&self.blobs, &keep_blobs)] {
                let Ok(entries) = std::fs::read_dir(dir) else { continue };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with(TMP) || keep.contains(&name) || busy.contains(&name) {
                        continue;
                    }
                    let away = dir.join(format!("{TMP}{}", random_id()));
                    match std::fs::rename(entry.path(), &away) {
                        Ok(()) => doomed.push((entry.path(), away)),
                        Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
                    }
                }
            }
            doomed
        };
        for (was, away) in doomed {
            remove(&was, &away);
        }
        Ok(())
    }

    /// At start, when nothing is in progress: temporaries go too.
    pub fn sweep_all(&self, in_use: impl FnOnce() -> Result<(HashSet<String>, HashSet<String>)>) -> Result<()> {
        for dir in [&self.layers, &self.blobs] {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for entry in entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(TMP)) {
                remove(&entry.path(), &entry.path());
            }
        }
        self.sweep(in_use)
    }
}

/// Deletes `path`, which was `was` (logged by that name).
fn remove(was: &Path, path: &Path) {
    tracing::info!("removing unused image data {}", was.display());
    let removed = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    if let Err(e) = removed {
        tracing::warn!("cannot remove {}: {e}", was.display());
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

    fn scratch(test: &str) -> (PathBuf, LayerStore) {
        let dir = std::env::temp_dir().join(format!("layers-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = LayerStore::new(&dir).unwrap();
        (dir, store)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<_> =
            std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        n.sort();
        n
    }

    #[test]
    fn a_sweep_keeps_what_is_used_busy_or_in_progress() {
        let (dir, store) = scratch("keeps");
        for l in ["used", "busy", "unused", ".tmp-unpacking"] {
            std::fs::create_dir_all(store.path(l).join("bin")).unwrap();
        }
        for b in ["used", "unused", ".tmp-downloading"] {
            std::fs::write(store.blobs.join(b), b"x").unwrap();
        }
        let _busy = store.busy("busy");
        let keep = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<HashSet<_>>();
        store.sweep(|| Ok((keep(&["used"]), keep(&["used"])))).unwrap();
        assert_eq!(names(&store.layers), [".tmp-unpacking", "busy", "used"]);
        assert_eq!(names(&store.blobs), [".tmp-downloading", "used"]);
        // At start nothing is in progress: temporaries go too.
        store.sweep_all(|| Ok((keep(&["used"]), keep(&["used"])))).unwrap();
        assert_eq!(names(&store.layers), ["busy", "used"]);
        assert_eq!(names(&store.blobs), ["used"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_layer_unpacked_twice_keeps_the_first() {
        let (dir, store) = scratch("twice");
        let key = "ab".repeat(32);
        let fill = |file: &'static str| {
            let key = key.clone();
            move |dest: &Path| {
                std::fs::write(dest.join(file), b"x").unwrap();
                Ok(format!("sha256:{key}"))
            }
        };
        store.add(&key, fill("first")).unwrap();
        store.add(&key, fill("second")).unwrap();
        assert_eq!(names(&store.path(&key)), ["first"]);
        assert_eq!(names(&store.layers), [key.as_str()], "no temporary left");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// What images use is read while the busy set is held: a pull that
    /// unmarks its layers has recorded its image by then, so neither
    /// the set nor the records miss it.
    #[test]
    fn a_sweep_reads_what_is_used_holding_the_busy_set() {
        let (dir, store) = scratch("holds");
        let held = store.clone();
        store
            .sweep(|| {
                assert!(held.busy.try_lock().is_err(), "the busy set is held");
                Ok(Default::default())
            })
            .unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn only_sha256_digests_name_files() {
        let ok = format!("sha256:{}", "0f".repeat(32));
        assert_eq!(hex_of(&ok).unwrap(), "0f".repeat(32));
        assert!(hex_of("sha256:../../etc").is_err());
        assert!(hex_of(&format!("sha512:{}", "0".repeat(64))).is_err());
        assert!(hex_of(&format!("sha256:{}", "A".repeat(64))).is_err());
    }
}
