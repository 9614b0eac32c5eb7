//! Containers: their stored record, their files, and the manager that runs
//! their lifecycle through the shim.

mod attach;
mod cgroup;
mod confined;
mod connect;
mod control;
mod etc;
mod exec;
pub mod logs;
mod manager;
mod monitor;
mod names;
mod rootfs;
pub mod shim_client;
mod spec;
mod user;
mod validate;

use std::path::{Path, PathBuf};

use crate::config::DaemonConfig;

pub use attach::{Attached, RunEnd};
pub use cgroup::check_visible as check_cgroups_visible;
pub use exec::{ExecOptions, ExecSession};
pub use manager::Manager;

pub use crate::records::container::{ContainerRecord, ContainerSpec, State};

/// Where a container's files live; all derived from its id.
#[derive(Debug, Clone)]
pub struct ContainerPaths {
    /// `<root>/containers/<id>`: what outlives a reboot (the writable
    /// layer and the log).
    pub dir: PathBuf,
    /// `<run-dir>/containers/<id>`: the OCI bundle and what else each
    /// start makes again, the exit status included (which the daemon
    /// records as soon as it sees the shim end). A file made and deleted
    /// per container on a disk costs more than on a tmpfs, much more on an
    /// ext4 without a journal, which rescans every recently freed inode
    /// for each new one.
    bundle: PathBuf,
    pub netns: PathBuf,
}

impl ContainerPaths {
    pub fn new(cfg: &DaemonConfig, id: &str) -> Self {
        let dir = cfg.containers_dir().join(id);
        // A container an older daemon made keeps its bundle in `dir`.
        let bundle = match dir.join("config.json").exists() {
            true => dir.clone(),
            false => cfg.bundles_dir().join(id),
        };
        ContainerPaths { dir, bundle, netns: cfg.netns_dir().join(id) }
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }
    /// The OCI bundle (`config.json` + `rootfs`), which also holds the
    /// shims' control sockets and the execs' files.
    pub fn bundle(&self) -> &Path {
        &self.bundle
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("container.log")
    }
    pub fn exit_file(&self) -> PathBuf {
        self.bundle.join("exit.json")
    }
    /// Where a shim an older daemon started writes its exit status.
    pub fn old_exit_file(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    pub fn shim_log(&self) -> PathBuf {
        self.bundle.join("shim.log")
    }
    /// Generated /etc/hosts, /etc/hostname and /etc/resolv.conf.
    pub fn etc_file(&self, name: &str) -> PathBuf {
        self.bundle.join(name)
    }
}
