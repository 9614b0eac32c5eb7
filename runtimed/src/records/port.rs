//! Published ports: what `-p` asks for and what was assigned.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// nft's name of the protocol (`inet_proto`).
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port: `host_ip:host_port/proto` -> `container_ip:container_port`.
/// `host_ip` None (or `0.0.0.0`) means every local address of the host;
/// The firewall's list of published ports reports both as None.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMap {
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// A `-p` request as the user gave it (host_port 0: pick one).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}
