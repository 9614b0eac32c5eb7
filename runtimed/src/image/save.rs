//! `save`: images as one tar that both `docker load` (`manifest.json`) and
//! OCI tools (`index.json`, `oci-layout`) read, as docker 25 writes it.
//! Layers go uncompressed, so each blob's digest is its diff id. An image
//! kept as one rootfs (imported, or the built-in busybox) is saved as one
//! layer made from that directory, with a config written from its record.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::layers::hex_of;
use super::{reference, ImageRecord, ImageStore};
use crate::error::{Error, IoContext, Result};

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

impl ImageStore {
    /// Writes the images `refs` name to `out` (blocking).
    pub fn save(&self, refs: &[String], out: impl Write) -> Result<()> {
        let mut tar = tar::Builder::new(out);
        let (mut written, mut docker, mut oci) = (HashSet::new(), Vec::new(), Vec::new());
        for r in refs {
            let image = self.resolve(r)?;
            let names = match image.names().any(|n| *n == super::normalize(r)) {
                true => vec![super::normalize(r)],
                false => image.names().cloned().collect(),
            };
            let (layers, config) = self.add_layers(&mut tar, &mut written, &image, r)?;
            let cfg_digest = sha(&config);
            add_blob(&mut tar, &mut written, &cfg_digest, &config)?;
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": { "mediaType": CONFIG, "digest": cfg_digest, "size": config.len() },
                "layers": layers.iter().map(|(d, size)| json!({ "mediaType": LAYER_TAR, "digest": d, "size": size })).collect::<Vec<_>>(),
            }))
            .map_err(Error::internal)?;
            let man_digest = sha(&manifest);
            add_blob(&mut tar, &mut written, &man_digest, &manifest)?;
            let tags: Vec<String> = names.iter().filter(|n| !n.contains('@')).map(|n| full_tag(n)).collect();
            docker.push(json!({
                "Config": blob_path(&cfg_digest)?,
                "RepoTags": tags,
                "Layers": layers.iter().map(|(d, _)| blob_path(d)).collect::<Result<Vec<_>>>()?,
            }));
            for tag in tags.iter().map(Some).chain(tags.is_empty().then_some(None)) {
                let mut desc = json!({ "mediaType": MANIFEST, "digest": man_digest, "size": manifest.len() });
                if let Some(t) = tag {
                    desc["annotations"] = json!({
                        "io.containerd.image.name": t,
                        "org.opencontainers.image.ref.name": t.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest"),
                    });
                }
                oci.push(desc);
            }
        }
        add_file(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index =
            json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": oci });
        add_file(&mut tar, "index.json", &serde_json::to_vec(&index).map_err(Error::internal)?)?;
        add_file(&mut tar, "manifest.json", &serde_json::to_vec(&docker).map_err(Error::internal)?)?;
        tar.into_inner().and_then(|mut w| w.flush()).ctx(|| "write the archive".into())
    }

    /// Writes the image's layers; returns each one's digest and size, and
    /// the image's config blob.
    fn add_layers(
        &self,
        tar: &mut tar::Builder<impl Write>,
        written: &mut HashSet<String>,
        image: &ImageRecord,
        r: &str,
    ) -> Result<(Vec<Written>, Vec<u8>)> {
        if image.layers.is_empty() {
            let rootfs = self.rootfs(image);
            let layer = self.spool(|out| {
                let mut b = tar::Builder::new(out);
                b.follow_symlinks(false);
                b.append_dir_all("", &rootfs)?;
                b.finish()
            })?;
            let config = super::config::to_oci(image, &layer.diff_id)?;
            return Ok((vec![append_layer(tar, written, layer)?], config));
        }
        if image.blobs.len() != image.layers.len() {
            return Err(Error::FailedPrecondition(format!(
                "image {r} is missing layer blobs; pull it again to save it"
            )));
        }
        let mut layers = Vec::new();
        for blob in &image.blobs {
            let path = self.layers.blob(&blob.digest)?;
            let mut data = super::open_blob(&path)?;
            let layer = self.spool(|out| std::io::copy(&mut data, out).map(drop))?;
            layers.push(append_layer(tar, written, layer)?);
        }
        let path = self.layers.blob(&format!("sha256:{}", image.id))?;
        let config = std::fs::read(&path).ctx(|| format!("read the config of {r}"))?;
        Ok((layers, config))
    }

    /// Writes a layer tar with `fill` to a temporary file, hashing it on the
    /// way: the archive needs its size and digest before its bytes.
    fn spool(&self, fill: impl FnOnce(&mut Hashing) -> std::io::Result<()>) -> Result<Spooled> {
        let file = crate::util::TempFile(self.layers.blob_tmp());
        let out = std::fs::File::create(&file.0).ctx(|| format!("create {}", file.0.display()))?;
        let mut hashing = Hashing { out: std::io::BufWriter::new(out), hash: Sha256::new(), size: 0 };
        fill(&mut hashing).and_then(|()| hashing.out.flush()).ctx(|| format!("write {}", file.0.display()))?;
        let diff_id = format!("sha256:{}", hex::encode(hashing.hash.finalize()));
        Ok(Spooled { file, diff_id, size: hashing.size })
    }
}

/// A layer as the archive holds it: its digest (the diff id) and size.
type Written = (String, u64);

/// A layer tar in a temporary file, with its digest and size.
struct Spooled {
    file: crate::util::TempFile,
    diff_id: String,
    size: u64,
}

/// A writer that hashes and counts what it passes on.
struct Hashing {
    out: std::io::BufWriter<std::fs::File>,
    hash: Sha256,
    size: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Adds a spooled layer to the archive, once per digest; returns its
/// digest (the diff id) and size.
fn append_layer(tar: &mut tar::Builder<impl Write>, written: &mut HashSet<String>, layer: Spooled) -> Result<Written> {
    if written.insert(layer.diff_id.clone()) {
        let mut header = tar::Header::new_gnu();
        header.set_size(layer.size);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        let file = std::fs::File::open(&layer.file.0).ctx(|| format!("open {}", layer.file.0.display()))?;
        tar.append_data(&mut header, blob_path(&layer.diff_id)?, file).ctx(|| "write the archive".into())?;
    }
    Ok((layer.diff_id, layer.size))
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn blob_path(digest: &str) -> Result<String> {
    Ok(format!("blobs/sha256/{}", hex_of(digest)?))
}

/// `name:tag` as docker writes RepoTags (`busybox` is `busybox:latest`).
fn full_tag(name: &str) -> String {
    match reference::parse(name) {
        Ok(r) => {
            let short = reference::familiar(&r);
            let tag = r.tag().unwrap_or("latest");
            match short.rsplit_once(':') {
                Some((_, t)) if !t.contains('/') => short,
                _ => format!("{short}:{tag}"),
            }
        }
        Err(_) => name.to_string(),
    }
}

fn add_blob(
    tar: &mut tar::Builder<impl Write>,
    written: &mut HashSet<String>,
    digest: &str,
    data: &[u8],
) -> Result<()> {
    if written.insert(digest.to_string()) {
        add_file(tar, &blob_path(digest)?, data)?;
    }
    Ok(())
}

fn add_file(tar: &mut tar::Builder<impl Write>, path: &str, data: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, Path::new(path), data).ctx(|| "write the archive".into())
}
