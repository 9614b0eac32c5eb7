//! This node's identity in the cluster: a random id made once and kept in
//! the root, so two machines with the same hostname (cloned VMs) are still
//! two nodes, and a restarted daemon is still the same node.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Bytes of randomness in an id (printed as twice as many hex digits).
const ID_BYTES: usize = 16;

/// Where the id lives under `--root`.
pub fn path(root: &Path) -> PathBuf {
    root.join("node-id")
}

/// The id stored under `root`, made and stored first if there is none.
pub fn load_or_create(root: &Path) -> Result<String> {
    let file = path(root);
    match std::fs::read_to_string(&file) {
        Ok(text) => return parse(&file, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("read {}", file.display()), e)),
    }
    create(&file)?;
    let text = std::fs::read_to_string(&file).ctx(|| format!("read {}", file.display()))?;
    parse(&file, &text)
}

/// Writes a fresh id to a private temporary file, then links it into
/// place: the file appears whole or not at all, and if another process
/// made one meanwhile, theirs wins (the link fails) and is the one read.
fn create(file: &Path) -> Result<()> {
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .ctx(|| format!("create {}", tmp.display()))?;
    let written = f.write_all(format!("{}\n", generate()).as_bytes()).and_then(|()| f.sync_all());
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, file));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(format!("write {}", file.display()), e)),
    }
}

fn generate() -> String {
    let mut bytes = [0u8; ID_BYTES];
    getrandom::fill(&mut bytes).expect("kernel random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A damaged file is an error, not a new id: silently becoming another
/// node would leave the old registration behind.
fn parse(file: &Path, text: &str) -> Result<String> {
    let id = text.trim();
    if id.len() == 2 * ID_BYTES && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(id.to_ascii_lowercase());
    }
    Err(Error::FailedPrecondition(format!(
        "{} does not hold a node id ({} hex digits); remove it to make a new one",
        file.display(),
        2 * ID_BYTES
    )))
}

/// The first 12 digits, as `node ls` and messages show it.
pub fn short(id: &str) -> &str {
    crate::ids::short_id(id)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn made_once_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("node-id-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let id = load_or_create(&dir).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(load_or_create(&dir).unwrap(), id);
        let mode = std::fs::metadata(path(&dir)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        std::fs::write(path(&dir), "garbage").unwrap();
        assert!(load_or_create(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
