//! Daemon state is private to root. A container's writable layer holds
//! whatever the container wrote, setuid-root binaries included, and its
//! spec and log hold its environment and output: no host user may reach
//! them. Directories are created with their modes, and the modes of an
//! existing tree (written by an older daemon) are repaired at start.

use std::path::Path;

use crate::config::DaemonConfig;
use crate::util::dir_with_mode;

/// Owner-only directories.
const PRIVATE_DIR: u32 = 0o700;
/// The run dir holds the API socket, whose own mode decides who connects:
/// others may pass through but not list it.
const PASSAGE_DIR: u32 = 0o711;
/// Files of a container directory or bundle that carry secrets.
const SECRET_FILES: [&str; 4] = ["config.json", "container.log", "shim.log", "exit.json"];

/// Creates the state directories with private modes and repairs old ones.
pub fn secure(cfg: &DaemonConfig) -> std::io::Result<()> {
    dir_with_mode(&cfg.root, PRIVATE_DIR)?;
    dir_with_mode(&cfg.run_dir, PASSAGE_DIR)?;
    let containers = [cfg.containers_dir(), cfg.bundles_dir()];
    for dir in [cfg.store_dir(), cfg.images_dir(), cfg.netns_dir(), cfg.libcontainer_root()].iter().chain(&containers) {
        dir_with_mode(dir, PRIVATE_DIR)?;
    }
    for entry in containers.iter().flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten()) {
        repair_container_dir(&entry.path())?;
    }
    Ok(())
}

/// Makes one container directory and its secret files owner-only.
pub fn repair_container_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.is_dir() {
        return Ok(());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR))?;
    for name in SECRET_FILES {
        match std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn an_old_open_tree_is_made_private() {
        let base = std::env::temp_dir().join(format!("private-test-{}", std::process::id()));
        #[derive(clap::Parser)]
        struct Args {
            #[command(flatten)]
            cfg: DaemonConfig,
        }
        let (root, run) = (base.join("root"), base.join("run"));
        let args = ["runtimed", "--root", root.to_str().unwrap(), "--run-dir", run.to_str().unwrap()];
        let cfg = <Args as clap::Parser>::parse_from(args).cfg;
        let ctr = cfg.containers_dir().join("abc");
        std::fs::create_dir_all(ctr.join("upper")).unwrap();
        std::fs::write(ctr.join("config.json"), "{}").unwrap();
        std::fs::set_permissions(&ctr, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(ctr.join("config.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
        secure(&cfg).unwrap();
        assert_eq!(mode(&cfg.root), 0o700);
        assert_eq!(mode(&cfg.run_dir), 0o711);
        assert_eq!(mode(&cfg.containers_dir()), 0o700);
        assert_eq!(mode(&ctr), 0o700);
        assert_eq!(mode(&ctr.join("config.json")), 0o600);
        std::fs::remove_dir_all(base).unwrap();
    }
}
