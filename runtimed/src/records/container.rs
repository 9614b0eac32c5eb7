//! A container as stored: what the user asked for, and what it became.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::network::{Endpoint, NetworkMode};
use super::port::{PortMap, PortRequest};

/// What the user asked for; stored as given so a restart rebuilds the same.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub hostname: String,
    pub read_only: bool,
    pub network: NetworkMode,
    pub auto_remove: bool,
    #[serde(default)]
    pub ports: Vec<PortRequest>,
    /// Static address on the network (`--ip`).
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub mac: Option<[u8; 6]>,
    /// Extra DNS names on user-defined networks (`--network-alias`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--dns` servers for resolv.conf.
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// `--add-host NAME:IP` lines for /etc/hosts.
    #[serde(default)]
    pub extra_hosts: Vec<(String, Ipv4Addr)>,
    /// Stdin stays open for attached clients (`-i`).
    #[serde(default)]
    pub open_stdin: bool,
    /// The process gets a pseudo-terminal (`-t`).
    #[serde(default)]
    pub tty: bool,
    /// `--entrypoint` as given (`Some(empty)` clears the image's); folded
    /// into `cmd` at create, so stored records hold `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Signal that `stop` sends first (the image's StopSignal); SIGTERM
    /// when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// `-P`: the image's exposed ports go on random host ports at create.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_all: bool,
    /// `--security-opt seccomp=unconfined`: no syscall filter.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub seccomp_unconfined: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Exited,
}

/// One container in the store.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    pub image_id: String,
    pub spec: ContainerSpec,
    pub state: State,
    /// Host pid of the container's init while running.
    pub pid: i32,
    /// Pid of the shim supervising it while running.
    pub shim_pid: i32,
    pub exit_code: i32,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    /// Interfaces on networks, kept so they come back after a restart.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Published ports as assigned (host ports chosen).
    #[serde(default)]
    pub ports: Vec<PortMap>,
}

impl ContainerRecord {
    pub fn new(id: String, name: String, image: String, spec: ContainerSpec) -> Self {
        ContainerRecord {
            id,
            name,
            image,
            image_id: String::new(),
            spec,
            state: State::Created,
            pid: 0,
            shim_pid: 0,
            exit_code: 0,
            created_at: crate::util::now_nanos(),
            started_at: 0,
            finished_at: 0,
            endpoints: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// Running by its record: its ports are published and its shim watched.
    pub fn is_running(&self) -> bool {
        self.state == State::Running
    }

    /// `rm` takes a running container only with force.
    pub fn can_remove(&self, force: bool) -> bool {
        force || !self.is_running()
    }

    /// Records a start: the container's init and the shim supervising it.
    pub fn mark_started(&mut self, pid: i32, shim_pid: i32, at: i64) {
        self.state = State::Running;
        (self.pid, self.shim_pid, self.started_at) = (pid, shim_pid, at);
        (self.exit_code, self.finished_at) = (0, 0);
    }

    /// Records an exit; the pids no longer mean anything.
    pub fn mark_exited(&mut self, exit_code: i32, at: i64) {
        self.state = State::Exited;
        (self.exit_code, self.finished_at) = (exit_code, at);
        (self.pid, self.shim_pid) = (0, 0);
    }

    pub fn short_id(&self) -> &str {
        crate::ids::short_id(&self.id)
    }
}
