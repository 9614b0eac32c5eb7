//! Networks and container endpoints as stored.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

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

    /// How far it reaches ("local", "global"), as its driver says.
    pub fn scope(&self) -> &'static str {
        super::driver::of(self).map_or("local", |d| d.scope().as_str())
    }

    /// Its address space, as IPAM sees it.
    pub fn pool(&self) -> super::ipam::Pool<'_> {
        super::ipam::Pool { network_id: &self.id, network_name: &self.name, subnet: self.subnet, gateway: self.gateway }
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
}
