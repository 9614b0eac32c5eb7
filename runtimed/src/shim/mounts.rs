//! A mount namespace of the shim's own, without the other containers'
//! mounts. libcontainer reads /proc/self/mountinfo many times per start,
//! and a container's mount namespace starts as a copy of its creator's:
//! with 1,000 containers (an overlay and a netns mount each) every start
//! paid for 2,000 mounts it does not use.

use std::path::PathBuf;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// Moves the shim into a new mount namespace (private: nothing done here
/// reaches the host, nor the host's changes here) and detaches every mount below the
/// `drop_under` directories except those below `keep`. Returns how many
/// were detached.
pub fn slim(drop_under: &[PathBuf], keep: &[PathBuf]) -> Result<usize, String> {
    if drop_under.is_empty() {
        return Ok(0);
    }
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare mount namespace: {e}"))?;
    // Private, not slave: the host's later mounts (other containers')
    // would otherwise propagate into every shim's namespace, a cost that
    // grows with the number of shims.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| format!("make / a private mount: {e}"))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("read mountinfo: {e}"))?;
    let mut dropped = 0;
    // Later lines are mounted on top of earlier ones: detach them first.
    for point in mount_points(&info).iter().rev() {
        let below = |dirs: &[PathBuf]| dirs.iter().any(|d| point.starts_with(d) && point != d);
        if below(drop_under)
            && !keep.iter().any(|k| point.starts_with(k))
            && umount2(point, MntFlags::MNT_DETACH).is_ok()
        {
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// The mount points of a mountinfo text (field 5, octal escapes undone).
fn mount_points(info: &str) -> Vec<PathBuf> {
    info.lines().filter_map(|l| l.split(' ').nth(4)).map(unescape).collect()
}

fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_and_unescaped() {
        let info = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
                    90 22 0:40 / /var/lib/rt/containers/a\\040b/rootfs rw - overlay overlay rw\n";
        assert_eq!(mount_points(info), [PathBuf::from("/"), PathBuf::from("/var/lib/rt/containers/a b/rootfs")]);
    }
}
