//! OCI image layouts built on disk in Rust (oci-layout, index.json,
//! blobs/sha256/…), so pull tests control every byte of what a registry
//! serves: whiteouts, opaque dirs, links, setuid bits, multi-arch indexes.
//!
//! Output is deterministic (fixed mtimes, owners and gzip header), so the
//! same layer entries always give the same digest: images built from a
//! shared base layer share that blob.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::unique;

pub const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Every entry's mtime: fixed, so layer digests never change between runs.
const MTIME: u64 = 1_700_000_000;

/// One tar entry of a layer. Paths are relative ("bin/sh").
#[derive(Clone, Debug)]
pub enum Entry {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// A hard link to `target`, an earlier entry of the same layer.
    HardLink {
        path: String,
        target: String,
    },
    /// `DIR/.wh.NAME`: deletes `path` from the layers below.
    Whiteout(String),
    /// `DIR/.wh..wh..opq`: hides everything the layers below put in `dir`.
    Opaque(String),
    /// A regular file whose name goes into the header as given, even one
    /// tar's builder refuses (`../x`, `/etc/x`): what a hostile image holds.
    Raw {
        path: String,
        data: Vec<u8>,
    },
}

impl Entry {
    /// A regular file, mode 0644.
    pub fn file(path: &str, data: impl Into<Vec<u8>>) -> Entry {
        Entry::file_mode(path, data, 0o644)
    }

    /// A regular file with any mode bits, e.g. 0o4755 for setuid.
    pub fn file_mode(path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Entry {
        Entry::File { path: path.into(), data: data.into(), mode }
    }

    /// A directory, mode 0755.
    pub fn dir(path: &str) -> Entry {
        Entry::Dir { path: path.into(), mode: 0o755 }
    }

    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry::Symlink { path: path.into(), target: target.into() }
    }

    pub fn hardlink(path: &str, target: &str) -> Entry {
        Entry::HardLink { path: path.into(), target: target.into() }
    }

    pub fn whiteout(path: &str) -> Entry {
        Entry::Whiteout(path.into())
    }

    pub fn opaque(dir: &str) -> Entry {
        Entry::Opaque(dir.into())
    }
}

/// An image to build: its layers, bottom first, and the `config` object of
/// its image config (Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts,
/// Labels, StopSignal: written as given).
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub layers: Vec<Vec<Entry>>,
    pub config: Value,
    pub architecture: String,
    pub os: String,
}

/// A content-addressed blob as a manifest or index refers to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    /// "sha256:…"
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    pub fn to_json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

/// What [`Layout::add_image`] wrote, for tests to compare with what a
/// registry or the daemon reports.
#[derive(Clone, Debug)]
pub struct Built {
    pub manifest: Descriptor,
    pub config: Descriptor,
    /// Compressed layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
    /// "sha256:…" of each uncompressed layer tar, as in the config's rootfs.
    pub diff_ids: Vec<String>,
}

/// An OCI image layout in its own directory under /tmp, removed on drop.
pub struct Layout {
    pub dir: PathBuf,
}

impl Default for Layout {
    fn default() -> Self {
        Layout::new()
    }
}

impl Layout {
    pub fn new() -> Layout {
        let dir = PathBuf::from(format!("/tmp/{}", unique("oci")));
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
        let layout = Layout { dir };
        layout.write_index(&[]);
        layout
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes the image's blobs and tags its manifest `tag` in index.json.
    pub fn add_image(&self, spec: &ImageSpec, tag: &str) -> Built {
        let built = self.write_image(spec);
        self.tag(&built.manifest, tag);
        built
    }

    /// Writes each image and an image index over them (one manifest per
    /// image, with its platform), tagged `tag`: a multi-arch image.
    pub fn add_index(&self, specs: &[ImageSpec], tag: &str) -> (Descriptor, Vec<Built>) {
        let built: Vec<Built> = specs.iter().map(|s| self.write_image(s)).collect();
        let manifests: Vec<Value> = specs
            .iter()
            .zip(&built)
            .map(|(s, b)| {
                let mut d = b.manifest.to_json();
                d["platform"] = json!({ "architecture": s.architecture, "os": s.os });
                d
            })
            .collect();
        let index = json!({ "schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": manifests });
        let desc = self.blob(MEDIA_INDEX, &serde_json::to_vec(&index).unwrap());
        self.tag(&desc, tag);
        (desc, built)
    }

    /// The bytes of blob `digest` ("sha256:…").
    pub fn read_blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        std::fs::read(self.dir.join("blobs/sha256").join(hex)).expect("blob")
    }

    fn write_image(&self, spec: &ImageSpec) -> Built {
        let (mut layers, mut diff_ids) = (Vec::new(), Vec::new());
        for entries in &spec.layers {
            let tar = layer_tar(entries);
            diff_ids.push(sha256(&tar));
            layers.push(self.blob(MEDIA_LAYER, &gzip(&tar)));
        }
        let history: Vec<Value> = layers.iter().map(|_| json!({ "created": "2024-01-01T00:00:00Z" })).collect();
        let config = json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": spec.architecture,
            "os": spec.os,
            "config": spec.config,
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": history,
        });
        let config = self.blob(MEDIA_CONFIG, &serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config.to_json(),
            "layers": layers.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
        });
        let manifest = self.blob(MEDIA_MANIFEST, &serde_json::to_vec(&manifest).unwrap());
        Built { manifest, config, layers, diff_ids }
    }

    /// Stores `data` under its digest (once, however often it is added).
    fn blob(&self, media_type: &str, data: &[u8]) -> Descriptor {
        let digest = sha256(data);
        let path = self.dir.join("blobs/sha256").join(&digest["sha256:".len()..]);
        if !path.exists() {
            std::fs::write(path, data).expect("write blob");
        }
        Descriptor { media_type: media_type.into(), digest, size: data.len() as u64 }
    }

    /// Points `tag` at `desc` in index.json (replacing any earlier image of that tag).
    fn tag(&self, desc: &Descriptor, tag: &str) {
        let index: Value = serde_json::from_slice(&std::fs::read(self.dir.join("index.json")).unwrap()).unwrap();
        let ref_name = "org.opencontainers.image.ref.name";
        let mut manifests: Vec<Value> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["annotations"][ref_name] != tag)
            .cloned()
            .collect();
        let mut d = desc.to_json();
        d["annotations"] = json!({ ref_name: tag });
        manifests.push(d);
        self.write_index(&manifests);
    }

    fn write_index(&self, manifests: &[Value]) {
        let index = json!({ "schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": manifests });
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&index).unwrap()).expect("index.json");
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// "sha256:" and the hex SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The uncompressed tar of a layer: root-owned entries, fixed mtime.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(0);
        let r = match entry {
            Entry::File { path, data, mode } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data.as_slice())
            }
            Entry::Dir { path, mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                b.append_data(&mut h, format!("{}/", path.trim_end_matches('/')), std::io::empty())
            }
            Entry::Symlink { path, target } | Entry::HardLink { path, target } => {
                let kind =
                    if matches!(entry, Entry::Symlink { .. }) { tar::EntryType::Symlink } else { tar::EntryType::Link };
                h.set_entry_type(kind);
                h.set_mode(0o777);
                b.append_link(&mut h, path, target)
            }
            Entry::Whiteout(path) => {
                let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
                let wh = if dir.is_empty() { format!(".wh.{name}") } else { format!("{dir}/.wh.{name}") };
                h.set_mode(0o644);
                b.append_data(&mut h, wh, std::io::empty())
            }
            Entry::Opaque(dir) => {
                h.set_mode(0o644);
                b.append_data(&mut h, format!("{}/.wh..wh..opq", dir.trim_end_matches('/')), std::io::empty())
            }
            Entry::Raw { path, data } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, data.as_slice())
            }
        };
        r.unwrap_or_else(|e| panic!("tar entry {entry:?}: {e}"));
    }
    b.into_inner().expect("finish tar")
}

/// Gzip with a zero mtime in its header, so equal input gives equal bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// Busybox applets the test image links in bin/.
pub const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sleep", "ls", "httpd", "env", "id", "pwd", "printenv", "stat", "readlink", "wc", "touch",
    "mkdir", "rm", "kill", "ps", "true", "false", "test", "hostname", "wget",
];

/// The base layer: the host's static busybox (package busybox-static) with
/// applet symlinks, /etc/passwd and /etc/group, so containers can run.
pub fn base_layer() -> Vec<Entry> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (apt-get install busybox-static)");
    let mut layer = vec![
        Entry::dir("bin"),
        Entry::dir("etc"),
        Entry::dir("tmp"),
        Entry::file_mode("bin/busybox", busybox, 0o755),
        Entry::file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"),
        Entry::file("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ];
    layer.extend(APPLETS.iter().map(|a| Entry::symlink(&format!("bin/{a}"), "busybox")));
    layer
}

/// The test image for `architecture` (only the marker file
/// /etc/platform, "linux/ARCH", and the config's architecture differ):
///
/// 1. [`base_layer`]: busybox and its applets;
/// 2. /srv/index.html, a symlink /srv/link -> index.html, a hard link
///    /srv/hard to index.html, a setuid (04755) /bin/suid,
///    /etc/deleted.txt and /data/old/{a,b}.txt;
/// 3. a whiteout deleting /etc/deleted.txt, /data/old made opaque (a.txt
///    and b.txt gone) holding only c.txt, and the marker.
///
/// Config: Entrypoint ["/bin/sh","-c"], Cmd ["echo $GREETING from $(pwd)"],
/// Env GREETING=hello, WorkingDir /srv, ExposedPorts 80/tcp, a label and
/// StopSignal SIGTERM: run, it prints "hello from /srv".
pub fn test_image_for(architecture: &str) -> ImageSpec {
    let files = vec![
        Entry::dir("srv"),
        Entry::file("srv/index.html", "<h1>hello from the test image</h1>\n"),
        Entry::symlink("srv/link", "index.html"),
        Entry::hardlink("srv/hard", "srv/index.html"),
        Entry::file_mode("bin/suid", "#!/bin/sh\necho suid\n", 0o4755),
        Entry::file("etc/deleted.txt", "deleted by a whiteout\n"),
        Entry::dir("data"),
        Entry::dir("data/old"),
        Entry::file("data/old/a.txt", "a\n"),
        Entry::file("data/old/b.txt", "b\n"),
    ];
    let changes = vec![
        Entry::whiteout("etc/deleted.txt"),
        Entry::opaque("data/old"),
        Entry::file("data/old/c.txt", "c\n"),
        Entry::file("etc/platform", format!("linux/{architecture}\n")),
    ];
    ImageSpec {
        layers: vec![base_layer(), files, changes],
        config: json!({
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo $GREETING from $(pwd)"],
            "Env": ["PATH=/bin", "GREETING=hello"],
            "WorkingDir": "/srv",
            "ExposedPorts": { "80/tcp": {} },
            "Labels": { "org.example.test": "registry-harness" },
            "StopSignal": "SIGTERM",
        }),
        architecture: architecture.into(),
        os: "linux".into(),
    }
}

/// The amd64 test image (see [`test_image_for`]).
pub fn test_image() -> ImageSpec {
    test_image_for("amd64")
}

/// The test image for linux/amd64 and linux/arm64; the index lists amd64 first.
pub fn test_index() -> Vec<ImageSpec> {
    vec![test_image_for("amd64"), test_image_for("arm64")]
}

/// A second image on the same base layer as [`test_image`] (identical
/// bytes, so the same blob digest) plus one layer of its own holding
/// /etc/second; it runs `cat /etc/second`.
pub fn shared_base_image() -> ImageSpec {
    ImageSpec {
        layers: vec![base_layer(), vec![Entry::file("etc/second", "second image\n")]],
        config: json!({ "Cmd": ["cat", "/etc/second"], "Env": ["PATH=/bin"] }),
        architecture: "amd64".into(),
        os: "linux".into(),
    }
}
