//! Builds the default `busybox` image: a minimal root filesystem made from the
//! host's static busybox (Debian's `busybox-static`), so that a fresh machine
//! can run containers with nothing pulled.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's `busybox-static` installs its binary.
pub const DEFAULT_BUSYBOX: &str = "/bin/busybox";

/// Directories every image needs as mount points or for common tools.
const DIRS: &[&str] = &[
    "bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr/bin", "usr/sbin", "sbin", "var/tmp", "var/www",
    "run",
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
www-data:x:33:33:www-data:/var/www:/bin/false\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

const GROUP: &str = "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nnogroup:x:65534:\n";

/// Finds a busybox binary: `$RUNTIMED_BUSYBOX`, then the Debian path, then
/// `busybox` on `PATH`.
pub fn find_busybox() -> Option<PathBuf> {
    let candidates = std::env::var_os("RUNTIMED_BUSYBOX")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(DEFAULT_BUSYBOX), PathBuf::from("/usr/bin/busybox")]);
    candidates.into_iter().find(|p| p.is_file())
}

/// Writes a busybox root filesystem into `dest` (which must not exist yet).
///
/// The binary must be static: the image has no libc of its own.
pub fn build_busybox(busybox: &Path, dest: &Path) -> io::Result<()> {
    ensure_static(busybox)?;
    fs::create_dir_all(dest)?;
    for dir in DIRS {
        fs::create_dir_all(dest.join(dir))?;
    }
    fs::set_permissions(dest.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    let target = dest.join("bin/busybox");
    fs::copy(busybox, &target)?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
    for applet in applets(busybox)? {
        let link = dest.join(applet.trim_start_matches('/'));
        if link.exists() || link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        symlink("/bin/busybox", &link)?;
    }
    fs::write(dest.join("etc/passwd"), PASSWD)?;
    fs::write(dest.join("etc/group"), GROUP)?;
    fs::write(dest.join("etc/hostname"), "busybox\n")?;
    fs::write(dest.join("etc/hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost\n")?;
    fs::write(dest.join("etc/resolv.conf"), "")?;
    Ok(())
}

/// Applet paths as busybox reports them (`bin/sh`, `usr/bin/wget`, ...).
fn applets(busybox: &Path) -> io::Result<Vec<String>> {
    let out = Command::new(busybox).arg("--list-full").output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{} --list-full failed: {}",
            busybox.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

/// Refuses a dynamically linked binary by looking for an ELF interpreter.
fn ensure_static(binary: &Path) -> io::Result<()> {
    let bytes = fs::read(binary)?;
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(io::Error::other(format!("{} is not an ELF binary", binary.display())));
    }
    if bytes.windows(b"/ld-linux".len()).any(|w| w == b"/ld-linux") {
        return Err(io::Error::other(format!("{} is dynamically linked; install busybox-static", binary.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_rootfs_with_shell_and_users() {
        let Some(bb) = find_busybox() else {
            eprintln!("busybox not installed; skipping");
            return;
        };
        let dir = std::env::temp_dir().join(format!("rootfs-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        build_busybox(&bb, &dir).unwrap();
        assert!(dir.join("bin/busybox").is_file());
        assert_eq!(fs::read_link(dir.join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
        assert!(fs::read_to_string(dir.join("etc/passwd")).unwrap().starts_with("root:x:0:0"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_non_elf() {
        let f = std::env::temp_dir().join(format!("not-elf-{}", std::process::id()));
        fs::write(&f, "#!/bin/sh\n").unwrap();
        assert!(ensure_static(&f).is_err());
        fs::remove_file(&f).unwrap();
    }
}
