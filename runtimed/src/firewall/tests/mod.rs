//! Tests against the real kernel, each inside fresh network namespaces so the
//! machine's own ruleset and interfaces are never touched. Need root.

mod heal;
mod netns;
mod rules;
mod traffic;

use std::process::Command;

use super::{Firewall, NetworkRules, PortMap, Proto};

pub(super) const TABLE: &str = "runtimed_test";

/// Runs a command (inside the caller's network namespace) and returns stdout;
/// panics with its stderr on failure.
pub(super) fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd} {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `nft <args>` in the caller's namespace (used only to inspect the ruleset
/// and to create a foreign table).
pub(super) fn nft(args: &[&str]) -> String {
    sh("nft", args)
}

pub(super) fn firewall() -> Firewall {
    let fw = Firewall::new(TABLE);
    fw.ensure().expect("ensure");
    fw
}

pub(super) fn net(bridge: &str, subnet: &str, internal: bool) -> NetworkRules {
    NetworkRules { bridge: bridge.into(), subnet: subnet.parse().unwrap(), internal }
}

pub(super) fn port(proto: Proto, host_port: u16, container: &str, container_port: u16) -> PortMap {
    PortMap { proto, host_ip: None, host_port, container_ip: container.parse().unwrap(), container_port }
}

/// Elements of one of our sets/maps as nft prints them.
pub(super) fn set_text(name: &str, kind: &str) -> String {
    nft(&["list", kind, "ip", TABLE, name])
}

/// Number of rules in our table.
pub(super) fn rule_count() -> usize {
    let doc: serde_json::Value = serde_json::from_str(&nft(&["-j", "list", "table", "ip", TABLE])).unwrap();
    doc["nftables"].as_array().unwrap().iter().filter(|o| o.get("rule").is_some()).count()
}
