//! Published ports: choosing host ports and refusing ones already taken by
//! another container or by a process listening on the host.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::firewall::{PortMap, Proto};

/// A `-p` request as the user gave it (host_port 0: pick one).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

/// Where the daemon picks host ports for `-p CONTAINER_PORT`.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 49153..=65535;

/// A published port as held: protocol, host address (None = all) and port.
type Key = (Proto, Option<Ipv4Addr>, u16);

fn clashes(a: &Key, b: &Key) -> bool {
    a.0 == b.0 && a.2 == b.2 && (a.1.is_none() || b.1.is_none() || a.1 == b.1)
}

/// Turns requests into mappings to `container_ip`, refusing ports held by
/// `taken` (other containers) or bound by a host process.
pub fn assign(requests: &[PortRequest], container_ip: Ipv4Addr, taken: &[PortMap]) -> Result<Vec<PortMap>> {
    let mut held: Vec<Key> = taken.iter().map(|p| (p.proto, p.host_ip, p.host_port)).collect();
    let mut out = Vec::with_capacity(requests.len());
    let mut seen = HashSet::new();
    for r in requests {
        if r.container_port == 0 {
            return Err(Error::InvalidArgument("container port 0 is not a port".into()));
        }
        let host_port = if r.host_port == 0 { pick(r, &held)? } else { check(r, &held)? };
        let key = (r.proto, r.host_ip, host_port);
        if !seen.insert(key) {
            return Err(Error::InvalidArgument(format!("port {host_port}/{} is published twice", proto_name(r.proto))));
        }
        held.push(key);
        out.push(PortMap { proto: r.proto, host_ip: r.host_ip, host_port, container_ip, container_port: r.container_port });
    }
    Ok(out)
}

fn check(r: &PortRequest, held: &[Key]) -> Result<u16> {
    let key = (r.proto, r.host_ip, r.host_port);
    let addr = r.host_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "0.0.0.0".into());
    if held.iter().any(|h| clashes(h, &key)) {
        return Err(Error::AlreadyExists(format!(
            "port {addr}:{}/{} is already published by another container",
            r.host_port,
            proto_name(r.proto)
        )));
    }
    if !free_on_host(r.proto, r.host_ip, r.host_port) {
        return Err(Error::AlreadyExists(format!(
            "port {addr}:{}/{} is already in use by a process on the host",
            r.host_port,
            proto_name(r.proto)
        )));
    }
    Ok(r.host_port)
}

fn pick(r: &PortRequest, held: &[Key]) -> Result<u16> {
    EPHEMERAL
        .clone()
        .find(|&port| {
            let key = (r.proto, r.host_ip, port);
            !held.iter().any(|h| clashes(h, &key)) && free_on_host(r.proto, r.host_ip, port)
        })
        .ok_or_else(|| Error::FailedPrecondition("no free host port left to publish".into()))
}

/// A port is free when we can bind it ourselves in the host namespace.
fn free_on_host(proto: Proto, ip: Option<Ipv4Addr>, port: u16) -> bool {
    let addr = SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
    match proto {
        Proto::Tcp => TcpListener::bind(addr).is_ok(),
        Proto::Udp => UdpSocket::bind(addr).is_ok(),
    }
}

pub fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host_port: u16, container_port: u16) -> PortRequest {
        PortRequest { host_ip: None, host_port, container_port, proto: Proto::Tcp }
    }

    #[test]
    fn picks_free_ports_and_refuses_taken_ones() {
        let ip = Ipv4Addr::new(10, 88, 0, 2);
        let got = assign(&[req(0, 80), req(0, 81)], ip, &[]).unwrap();
        assert!(EPHEMERAL.contains(&got[0].host_port) && got[0].host_port != got[1].host_port);
        let taken = assign(&[req(18080, 80)], ip, &[]).unwrap();
        let err = assign(&[req(18080, 80)], ip, &taken).unwrap_err().to_string();
        assert!(err.contains("already published"), "{err}");
        let udp = PortRequest { proto: Proto::Udp, ..req(18080, 80) };
        assert!(assign(&[udp], ip, &taken).is_ok(), "udp and tcp are separate");
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = assign(&[req(port, 80)], ip, &[]).unwrap_err().to_string();
        assert!(err.contains("in use by a process"), "{err}");
        assert!(assign(&[req(18081, 80), req(18081, 81)], ip, &[]).is_err());
    }
}
