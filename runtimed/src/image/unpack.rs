//! Unpacking one image layer into a directory overlayfs can stack: OCI
//! whiteouts (`.wh.NAME`) become 0/0 character devices, opaque markers
//! (`.wh..wh..opq`) the `trusted.overlay.opaque` xattr. A layer is written
//! by whoever built the image: no entry may land outside the directory,
//! through `..`, an absolute path or a symlink the layer itself made.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::room::Guarded;
use crate::error::{Error, IoContext, Result};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Unpacks the (uncompressed) layer tar `data` into `dest`; returns the
/// sha256 of the tar (its diff id, `sha256:...`) for the caller to check.
pub fn layer(data: impl Read, dest: &Path) -> Result<String> {
    let mut hashing = HashingReader { inner: Guarded::new(data, dest), hash: Sha256::new() };
    let unpacked = entries(&mut hashing, dest);
    if let Some(e) = hashing.inner.room.exceeded() {
        return Err(e);
    }
    unpacked?;
    // Whatever follows the archive's end is part of the blob, and the hash.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(bad)?;
    Ok(format!("sha256:{}", hex::encode(hashing.hash.finalize())))
}

fn entries(data: impl Read, dest: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(data);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let rel = relative(&path)?;
        match rel.file_name().map(OsStr::as_bytes) {
            Some(n) if n == OPAQUE.as_bytes() => mark_opaque(dest, rel.parent().unwrap_or(Path::new("")))?,
            Some(n) if n.starts_with(WHITEOUT.as_bytes()) => {
                let name = OsStr::from_bytes(&n[WHITEOUT.len()..]);
                whiteout(dest, &rel.with_file_name(name))?;
            }
            _ => {
                // tar refuses entries (and link targets) that would leave dest.
                let unpacked = entry.unpack_in(dest).map_err(|e| tar_error(&path, e))?;
                if !unpacked {
                    return Err(bad(format!("entry {} leaves the layer", path.display())));
                }
            }
        }
    }
    Ok(())
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("invalid image layer: {e}"))
}

/// A tar error with its cause (tar's own message names only the path),
/// or, for an entry a symlink would lead out, what it is.
fn tar_error(path: &Path, e: std::io::Error) -> Error {
    // tar's own words name our temporary directory, not the entry.
    if e.to_string().contains("outside of destination") {
        return bad(format!("entry {} leaves the layer through a symlink", path.display()));
    }
    match std::error::Error::source(&e) {
        Some(cause) => bad(format!("{e}: {cause}")),
        None => bad(e),
    }
}

/// The entry's path as a plain relative path: no root, no `..`.
fn relative(path: &Path) -> Result<PathBuf> {
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => rel.push(p),
            Component::CurDir => {}
            _ => return Err(bad(format!("entry {} leaves the layer", path.display()))),
        }
    }
    Ok(rel)
}

/// `dest/rel` as a real directory: every existing part must be a
/// directory, never a symlink (which could point anywhere on the host).
fn real_dir(dest: &Path, rel: &Path) -> Result<PathBuf> {
    let mut dir = dest.to_path_buf();
    for part in rel.components() {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(bad(format!("{} is not a directory", rel.display()))),
            Err(_) => std::fs::create_dir(&dir).ctx(|| format!("create {}", dir.display()))?,
        }
    }
    Ok(dir)
}

fn whiteout(dest: &Path, rel: &Path) -> Result<()> {
    let dir = real_dir(dest, rel.parent().unwrap_or(Path::new("")))?;
    let target = dir.join(rel.file_name().ok_or_else(|| bad("empty whiteout name"))?);
    if let Ok(m) = std::fs::symlink_metadata(&target) {
        let removed = if m.is_dir() { std::fs::remove_dir_all(&target) } else { std::fs::remove_file(&target) };
        removed.ctx(|| format!("remove {}", target.display()))?;
    }
    let dev = nix::sys::stat::makedev(0, 0);
    nix::sys::stat::mknod(&target, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), dev)
        .map_err(|e| Error::internal(format!("whiteout {}: {e}", target.display())))
}

fn mark_opaque(dest: &Path, rel: &Path) -> Result<()> {
    let dir = real_dir(dest, rel)?;
    xattr_set(&dir, "trusted.overlay.opaque", b"y")
}

fn xattr_set(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).map_err(Error::internal)?;
    let n = CString::new(name).map_err(Error::internal)?;
    // SAFETY: valid C strings and a value buffer of the given length;
    // lsetxattr never follows a symlink.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        return Err(Error::io(format!("set {name} on {}", path.display()), std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    /// A tar entry with any name, even one tar's builder would refuse.
    fn entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    fn finish(mut out: Vec<u8>) -> Vec<u8> {
        out.extend_from_slice(&[0; 1024]);
        out
    }

    struct Dirs {
        base: PathBuf,
        layer: PathBuf,
        outside: PathBuf,
    }

    fn dirs(test: &str) -> Dirs {
        let base = std::env::temp_dir().join(format!("unpack-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (layer, outside) = (base.join("layer"), base.join("outside"));
        std::fs::create_dir_all(&layer).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("victim"), b"safe").unwrap();
        Dirs { base, layer, outside }
    }

    impl Drop for Dirs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }

    #[test]
    fn whiteouts_and_opaque_dirs_become_overlayfs_markers() {
        let d = dirs("markers");
        let mut tar = Vec::new();
        entry(&mut tar, "etc/", tar::EntryType::Directory, "", b"");
        entry(&mut tar, "etc/.wh.gone", tar::EntryType::Regular, "", b"");
        entry(&mut tar, "data/.wh..wh..opq", tar::EntryType::Regular, "", b"");
        entry(&mut tar, "data/kept", tar::EntryType::Regular, "", b"kept");
        let tar = finish(tar);
        let diff_id = layer(&tar[..], &d.layer).unwrap();
        assert_eq!(diff_id, format!("sha256:{}", hex::encode(Sha256::digest(&tar))));
        let gone = std::fs::symlink_metadata(d.layer.join("etc/gone")).unwrap();
        assert!(gone.file_type().is_char_device());
        let mut value = [0u8; 4];
        let path = std::ffi::CString::new(d.layer.join("data").as_os_str().as_bytes()).unwrap();
        let name = c"trusted.overlay.opaque";
        // SAFETY: valid C strings and buffer.
        let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        assert_eq!(&value[..n.max(0) as usize], b"y");
        assert_eq!(std::fs::read(d.layer.join("data/kept")).unwrap(), b"kept");
    }

    #[test]
    fn hostile_entries_never_land_outside_the_layer() {
        let d = dirs("hostile");
        let outside = d.outside.to_str().unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dot-dot", {
                let mut t = Vec::new();
                entry(&mut t, "../outside/victim", tar::EntryType::Regular, "", b"owned");
                t
            }),
            ("absolute", {
                let mut t = Vec::new();
                entry(&mut t, &format!("{outside}/victim"), tar::EntryType::Regular, "", b"owned");
                t
            }),
            ("through a symlink", {
                let mut t = Vec::new();
                entry(&mut t, "link", tar::EntryType::Symlink, outside, b"");
                entry(&mut t, "link/victim", tar::EntryType::Regular, "", b"owned");
                t
            }),
            ("whiteout through a symlink", {
                let mut t = Vec::new();
                entry(&mut t, "link", tar::EntryType::Symlink, outside, b"");
                entry(&mut t, "link/.wh.victim", tar::EntryType::Regular, "", b"");
                t
            }),
            ("hard link out", {
                let mut t = Vec::new();
                entry(&mut t, "hard", tar::EntryType::Link, "../outside/victim", b"");
                t
            }),
        ];
        for (what, tar) in cases {
            assert!(layer(&finish(tar)[..], &d.layer).is_err(), "{what}: refused");
            let victim = std::fs::symlink_metadata(d.outside.join("victim")).unwrap();
            assert!(victim.is_file(), "{what}: the outside file was replaced");
            assert_eq!(std::fs::read(d.outside.join("victim")).unwrap(), b"safe", "{what}");
            assert_eq!(std::fs::read_dir(&d.outside).unwrap().count(), 1, "{what}");
            let hard = std::fs::symlink_metadata(d.layer.join("hard"));
            assert!(hard.is_err() || std::os::unix::fs::MetadataExt::nlink(&hard.unwrap()) == 1, "{what}");
        }
    }
}
