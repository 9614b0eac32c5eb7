//! Resolves `-u USER[:GROUP]` against the image's /etc/passwd and /etc/group,
//! like docker does. The files are the container's: they are read confined
//! to its rootfs (see `confined`).

use std::path::Path;

use super::confined;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

pub async fn resolve(rootfs: &Path, spec: &str) -> Result<User> {
    if spec.is_empty() {
        return Ok(User { uid: 0, gid: 0 });
    }
    let passwd = confined::read(rootfs, "/etc/passwd").await?.unwrap_or_default();
    let needs_group = spec.split_once(':').is_some_and(|(_, g)| g.parse::<u32>().is_err());
    let group = match needs_group {
        true => confined::read(rootfs, "/etc/group").await?.unwrap_or_default(),
        false => String::new(),
    };
    resolve_in(&passwd, &group, spec)
}

/// Resolves `spec` against the contents of passwd and group files.
fn resolve_in(passwd: &str, groups: &str, spec: &str) -> Result<User> {
    if spec.is_empty() {
        return Ok(User { uid: 0, gid: 0 });
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(uid) => (uid, lookup(passwd, 2, user).map(|f| f[3].parse().unwrap_or(uid)).unwrap_or(uid)),
        Err(_) => {
            let fields = lookup(passwd, 0, user).ok_or_else(|| {
                Error::InvalidArgument(format!("unable to find user {user}: no matching entries in passwd file"))
            })?;
            (parse_id(&fields[2])?, parse_id(&fields[3])?)
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let fields = lookup(groups, 0, g).ok_or_else(|| {
                    Error::InvalidArgument(format!("unable to find group {g}: no matching entries in group file"))
                })?;
                parse_id(&fields[2])?
            }
        },
    };
    Ok(User { uid, gid })
}

/// The colon-separated fields of the first line whose field `col` is `key`.
fn lookup(file: &str, col: usize, key: &str) -> Option<Vec<String>> {
    file.lines().map(|l| l.split(':').map(String::from).collect::<Vec<_>>()).find(|f| f.len() >= 4 && f[col] == key)
}

fn parse_id(s: &str) -> Result<u32> {
    s.parse().map_err(|_| Error::InvalidArgument(format!("invalid id {s} in image")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nweb:x:33:34::/:/bin/false\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\n";

    #[test]
    fn resolves_names_numbers_and_groups() {
        let r = |spec| resolve_in(PASSWD, GROUP, spec);
        assert_eq!(r("").unwrap(), User { uid: 0, gid: 0 });
        assert_eq!(r("web").unwrap(), User { uid: 33, gid: 34 });
        assert_eq!(r("1000").unwrap(), User { uid: 1000, gid: 1000 });
        assert_eq!(r("33").unwrap(), User { uid: 33, gid: 34 });
        assert_eq!(r("web:staff").unwrap(), User { uid: 33, gid: 50 });
        assert_eq!(r("1:2").unwrap(), User { uid: 1, gid: 2 });
        assert!(r("nobody").is_err());
        assert!(r("web:nogroup").is_err());
    }

    #[tokio::test]
    async fn reads_the_files_confined_to_the_rootfs() {
        let root = confined::test_root("user");
        std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(root.join("etc/group"), GROUP).unwrap();
        assert_eq!(resolve(&root, "web:staff").await.unwrap(), User { uid: 33, gid: 50 });
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        nix::unistd::mkfifo(&root.join("etc/passwd"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert!(resolve(&root, "web").await.is_err(), "a FIFO is refused, not waited on");
        std::fs::remove_dir_all(root).unwrap();
    }
}
