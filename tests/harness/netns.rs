//! A network namespace made for one test, deleted on drop.

use crate::sh;

pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        sh(&format!("ip netns add {name}"));
        let ns = Netns { name: name.to_string() };
        ns.exec("ip link set lo up");
        ns
    }

    /// Runs a shell command inside the namespace.
    pub fn exec(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {} sh -c '{}'", self.name, cmd.replace('\'', "'\\''")))
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
