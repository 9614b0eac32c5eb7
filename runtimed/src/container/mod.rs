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

pub use attach::{Attached, RunEnd};
pub use cgroup::check_visible as check_cgroups_visible;
pub use exec::{ExecOptions, ExecSession};
pub use manager::Manager;

pub use crate::records::container::{ContainerRecord, ContainerSpec, State};

/// Where a container's files live; all derived from its id.
#[derive(Debug, Clone)]
pub struct ContainerPaths {
    /// `<root>/containers/<id>`: the writable layer, bundle and logs.
    pub dir: PathBuf,
    pub netns: PathBuf,
}

impl ContainerPaths {
    pub fn new(containers_dir: &Path, netns_dir: &Path, id: &str) -> Self {
        ContainerPaths { dir: containers_dir.join(id), netns: netns_dir.join(id) }
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// The OCI bundle is the container directory (`config.json` + `rootfs`).
    pub fn bundle(&self) -> &Path {
        &self.dir
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("container.log")
    }
    pub fn exit_file(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    pub fn shim_log(&self) -> PathBuf {
        self.dir.join("shim.log")
    }
    /// Generated /etc/hosts, /etc/hostname and /etc/resolv.conf.
    pub fn etc_file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
