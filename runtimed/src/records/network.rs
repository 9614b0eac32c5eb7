//! Networks, container endpoints and network modes as stored.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of the default network and its bridge.
pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_MTU: u32 = 1500;
/// The local bridge network giving overlay containers egress and published
/// ports (docker's `docker_gwbridge`).
pub const GATEWAY_NETWORK: &str = "gwbridge";
pub const GATEWAY_BRIDGE: &str = "runtime_gw";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// The Linux bridge carrying the network.
    pub bridge: String,
    /// No traffic in or out of the bridge but between its containers.
    pub internal: bool,
    /// 0 for overlay networks: each node derives it from its underlay.
    pub mtu: u32,
    pub created_at: i64,
    /// VXLAN id of an overlay network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
}

impl NetworkRecord {
    /// The gateway with the subnet's prefix, as set on the bridge.
    pub fn gateway_net(&self) -> Ipv4Net {
        Ipv4Net::new(self.gateway, self.subnet.prefix_len()).expect("prefix from a valid subnet")
    }

    /// User-defined networks get name resolution, like docker's.
    pub fn has_dns(&self) -> bool {
        self.name != DEFAULT_NETWORK && self.name != GATEWAY_NETWORK
    }

    /// Overlay networks are mirrored from the cluster; the follower in
    /// `overlay.rs` tells them from local ones by this.
    pub fn is_overlay(&self) -> bool {
        self.vni.is_some()
    }
}

/// A container's interface on one network.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub network_id: String,
    pub network: String,
    /// Name inside the container (eth0, eth1...).
    pub ifname: String,
    /// Name of the host end on the bridge.
    pub host_ifname: String,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub aliases: Vec<String>,
}

/// docker's convention: 02:42 followed by the IPv4 address.
pub fn mac_from_ip(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s.split(':').map(|p| u8::from_str_radix(p, 16)).collect::<Result<_, _>>().ok()?;
    let mac: [u8; 6] = parts.try_into().ok()?;
    // Unicast only (multicast bit clear).
    (mac[0] & 1 == 0).then_some(mac)
}

/// How a container is networked (`--network`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Own namespace with only `lo`, up.
    None,
    /// The daemon's own network namespace.
    Host,
    /// Own namespace with `eth0` on a bridge network (by name as given).
    Bridge(String),
    /// The namespace of another container (by id).
    Container(String),
}

impl Default for NetworkMode {
    fn default() -> Self {
        NetworkMode::Bridge(DEFAULT_NETWORK.to_string())
    }
}

impl NetworkMode {
    /// Parses `--network`; empty means the default bridge network. Bridge
    /// network names and container references are checked at create.
    pub fn parse(s: &str) -> Result<NetworkMode> {
        match s {
            "" => Ok(NetworkMode::default()),
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            other => match other.strip_prefix("container:") {
                Some("") => Err(Error::InvalidArgument("--network container: needs a container name or id".into())),
                Some(c) => Ok(NetworkMode::Container(c.to_string())),
                None => Ok(NetworkMode::Bridge(other.to_string())),
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            NetworkMode::None => "none".into(),
            NetworkMode::Host => "host".into(),
            NetworkMode::Bridge(n) => n.clone(),
            NetworkMode::Container(c) => format!("container:{c}"),
        }
    }

    /// Whether the container gets a namespace of its own from the daemon.
    pub fn owns_netns(&self) -> bool {
        matches!(self, NetworkMode::None | NetworkMode::Bridge(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        let mac = mac_from_ip(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(format_mac(&mac), "02:42:ac:11:00:02");
        assert_eq!(parse_mac("02:42:ac:11:00:02"), Some(mac));
        assert_eq!(parse_mac("01:00:00:00:00:01"), None, "multicast refused");
        assert_eq!(parse_mac("zz"), None);
    }

    #[test]
    fn parses_modes() {
        assert_eq!(NetworkMode::parse("").unwrap(), NetworkMode::Bridge("bridge".into()));
        assert_eq!(NetworkMode::parse("none").unwrap(), NetworkMode::None);
        assert_eq!(NetworkMode::parse("host").unwrap(), NetworkMode::Host);
        assert_eq!(NetworkMode::parse("container:web").unwrap(), NetworkMode::Container("web".into()));
        assert!(NetworkMode::parse("container:").is_err());
        assert_eq!(NetworkMode::parse("net1").unwrap().name(), "net1");
    }
}
