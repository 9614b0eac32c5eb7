//! A "tools" image for tests: the daemon's busybox rootfs plus host-built
//! binaries and the shared libraries they need (found with ldd).

use std::path::Path;

use crate::{bin_dir, sh, Daemon};

/// Imports image `tools` into the daemon: busybox plus `udp-echo` and
/// `clone-probe`.
pub fn import_tools(d: &Daemon) {
    let busybox = image_dirs(d).into_iter().next().expect("busybox image");
    let dir = d.dir.join("tools-rootfs");
    sh(&format!("cp -a {}/rootfs {}", busybox.display(), dir.display()));
    add_binary(&dir, &bin_dir().join("udp-echo"), "bin/udp-echo");
    add_binary(&dir, &bin_dir().join("clone-probe"), "bin/clone-probe");
    let tar = d.dir.join("tools.tar");
    sh(&format!("tar -C {} -cf {} .", dir.display(), tar.display()));
    d.ok(&["image", "import", "tools", tar.to_str().unwrap()]);
}

fn add_binary(root: &Path, binary: &Path, dest: &str) {
    sh(&format!("cp {} {}", binary.display(), root.join(dest).display()));
    let libs = sh(&format!("ldd {} | grep -o '/[^ ]*' || true", binary.display()));
    for lib in libs.lines().filter(|l| !l.is_empty()) {
        sh(&format!("cp --parents -L {lib} {}", root.display()));
    }
}

/// The one-directory images (built-in and imported) under a daemon's root,
/// leaving out the shared layer and blob stores of pulled images.
pub fn image_dirs(d: &Daemon) -> Vec<std::path::PathBuf> {
    let images = d.root().join("images");
    let entries = std::fs::read_dir(&images).expect("images dir").flatten();
    entries.map(|e| e.path()).filter(|p| !p.ends_with("layers") && !p.ends_with("blobs")).collect()
}
