//! `save`: images as one tar that both `docker load` (`manifest.json`) and
//! OCI tools (`index.json`, `oci-layout`) read, as docker 25 writes it.
//! Layers go uncompressed, so each blob's digest is its diff id.

use std::io::{Read, Write};
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
    /// Writes the images `refs` name to `out` (blocking). Only pulled or
    /// loaded images can be saved: they have a config and layer blobs.
    pub fn save(&self, refs: &[String], out: impl Write) -> Result<()> {
        let mut tar = tar::Builder::new(out);
        let (mut written, mut docker, mut oci) = (std::collections::HashSet::new(), Vec::new(), Vec::new());
        for r in refs {
            let image = self.resolve(r)?;
            let config = self.saveable(&image, r)?;
            let names = match image.names().any(|n| *n == super::normalize(r)) {
                true => vec![super::normalize(r)],
                false => image.names().cloned().collect(),
            };
            let cfg_digest = sha(&config);
            add_blob(&mut tar, &mut written, &cfg_digest, &config)?;
            let mut layers = Vec::new();
            for blob in &image.blobs {
                layers.push(self.add_layer(&mut tar, &mut written, &blob.digest)?);
            }
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

    /// The image's config blob, if it can be saved.
    fn saveable(&self, image: &ImageRecord, r: &str) -> Result<Vec<u8>> {
        if image.blobs.is_empty() || image.blobs.len() != image.layers.len() {
            return Err(Error::FailedPrecondition(format!(
                "image {r} was imported or built here and has no layers to save; pull or load images to save them"
            )));
        }
        let path = self.layers.blob(&format!("sha256:{}", image.id))?;
        std::fs::read(&path).ctx(|| format!("read the config of {r}"))
    }

    /// Adds a layer uncompressed (spooled to learn its size); returns its
    /// digest (the diff id) and size.
    fn add_layer(
        &self,
        tar: &mut tar::Builder<impl Write>,
        written: &mut std::collections::HashSet<String>,
        digest: &str,
    ) -> Result<(String, u64)> {
        let blob = self.layers.blob(digest)?;
        let mut data = super::open_blob(&blob)?;
        let spool = crate::util::TempFile(self.layers.blob_tmp());
        let mut out = std::fs::File::create(&spool.0).ctx(|| format!("create {}", spool.0.display()))?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = data.read(&mut buf).ctx(|| format!("read layer {digest}"))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            out.write_all(&buf[..n]).ctx(|| format!("write {}", spool.0.display()))?;
            size += n as u64;
        }
        let diff_id = format!("sha256:{}", hex::encode(hash.finalize()));
        if written.insert(diff_id.clone()) {
            let mut header = tar::Header::new_gnu();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            let file = std::fs::File::open(&spool.0).ctx(|| format!("open {}", spool.0.display()))?;
            tar.append_data(&mut header, blob_path(&diff_id)?, file).ctx(|| "write the archive".into())?;
        }
        Ok((diff_id, size))
    }
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
    written: &mut std::collections::HashSet<String>,
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
