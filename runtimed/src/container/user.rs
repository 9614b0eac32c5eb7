//! Resolves `-u USER[:GROUP]` against the image's /etc/passwd and /etc/group,
//! like docker does.

use std::path::Path;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

pub fn resolve(rootfs: &Path, spec: &str) -> Result<User> {
    if spec.is_empty() {
        return Ok(User { uid: 0, gid: 0 });
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(uid) => (uid, lookup(&passwd, 2, user).map(|f| f[3].parse().unwrap_or(uid)).unwrap_or(uid)),
        Err(_) => {
            let fields = lookup(&passwd, 0, user).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unable to find user {user}: no matching entries in passwd file"
                ))
            })?;
            (parse_id(&fields[2])?, parse_id(&fields[3])?)
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let groups = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
                let fields = lookup(&groups, 0, g).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?;
                parse_id(&fields[2])?
            }
        },
    };
    Ok(User { uid, gid })
}

/// The colon-separated fields of the first line whose field `col` is `key`.
fn lookup(file: &str, col: usize, key: &str) -> Option<Vec<String>> {
    file.lines()
        .map(|l| l.split(':').map(String::from).collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[col] == key)
}

fn parse_id(s: &str) -> Result<u32> {
    s.parse().map_err(|_| Error::InvalidArgument(format!("invalid id {s} in image")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("user-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nweb:x:33:34::/:/bin/false\n").unwrap();
        std::fs::write(dir.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        dir
    }

    #[test]
    fn resolves_names_numbers_and_groups() {
        let r = rootfs();
        assert_eq!(resolve(&r, "").unwrap(), User { uid: 0, gid: 0 });
        assert_eq!(resolve(&r, "web").unwrap(), User { uid: 33, gid: 34 });
        assert_eq!(resolve(&r, "1000").unwrap(), User { uid: 1000, gid: 1000 });
        assert_eq!(resolve(&r, "33").unwrap(), User { uid: 33, gid: 34 });
        assert_eq!(resolve(&r, "web:staff").unwrap(), User { uid: 33, gid: 50 });
        assert_eq!(resolve(&r, "1:2").unwrap(), User { uid: 1, gid: 2 });
        assert!(resolve(&r, "nobody").is_err());
        assert!(resolve(&r, "web:nogroup").is_err());
    }
}
