//! A daemon's host namespace plus an "external" machine linked to it by a
//! veth pair, with a route to container subnets via the host, so tests can
//! send real traffic from outside without touching the machine's network.

use std::process::{Child, Command, Stdio};

use crate::{sh, unique, Daemon, Netns};

/// Address of the host on the link to the external namespace.
pub const HOST_IP: &str = "10.210.0.1";
/// Address of the external machine.
pub const EXT_IP: &str = "10.210.0.2";

pub struct World {
    pub d: Daemon,
    pub ext: Netns,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> World {
        let d = Daemon::start();
        let ext = Netns::new(&unique("ext"));
        let (h, e) = (unique("vh"), unique("ve"));
        sh(&format!("ip link add {h} netns {} type veth peer name {e} netns {}", d.ns.name, ext.name));
        d.ns.exec(&format!("ip addr add {HOST_IP}/24 dev {h} && ip link set {h} up"));
        ext.exec(&format!("ip addr add {EXT_IP}/24 dev {e} && ip link set {e} up"));
        // The external machine reaches container subnets (10.0.0.0/8 pool) via the host.
        ext.exec(&format!("ip route add 10.64.0.0/10 via {HOST_IP}"));
        World { d, ext }
    }
}

/// A process kept running for a test (a server), killed on drop.
pub struct Bg {
    child: Child,
}

impl Bg {
    /// Runs `cmd` in the namespace `ns` in the background.
    pub fn spawn(ns: &Netns, cmd: &str) -> Bg {
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "sh", "-c", &format!("exec {cmd}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn background process");
        Bg { child }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
