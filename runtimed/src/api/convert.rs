//! Conversions between API messages and the daemon's own types.

use runtime_proto::v1 as pb;

use crate::container::{ContainerRecord, ContainerSpec, State};
use crate::error::{Error, Result};
use crate::image::ImageRecord;
use std::net::Ipv4Addr;

use crate::firewall::{PortMap, Proto};
use crate::network::ports::PortRequest;
use crate::network::record::{format_mac, parse_mac};
use crate::network::{Endpoint, NetworkMode, NetworkRecord};

/// Splits a requested config into the image reference and the stored spec.
pub fn spec_from_config(config: Option<pb::ContainerConfig>) -> Result<(String, ContainerSpec)> {
    let c = config.ok_or_else(|| Error::InvalidArgument("missing container config".into()))?;
    if !c.working_dir.is_empty() && !c.working_dir.starts_with('/') {
        return Err(Error::InvalidArgument(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            c.working_dir
        )));
    }
    let ports = c.ports.iter().map(port_request).collect::<Result<Vec<_>>>()?;
    let ip = parse_opt(&c.ip, "IP address")?;
    let mac = match c.mac_address.as_str() {
        "" => None,
        m => Some(parse_mac(m).ok_or_else(|| Error::InvalidArgument(format!("invalid MAC address: {m}")))?),
    };
    let dns = c.dns.iter().map(|d| parse_ip(d, "DNS server")).collect::<Result<Vec<_>>>()?;
    let extra_hosts = c.extra_hosts.iter().map(|h| parse_extra_host(h)).collect::<Result<Vec<_>>>()?;
    let spec = ContainerSpec {
        ports,
        ip,
        mac,
        aliases: c.network_aliases,
        dns,
        extra_hosts,
        cmd: c.cmd,
        env: c.env.into_iter().map(|kv| if kv.contains('=') { kv } else { format!("{kv}=") }).collect(),
        working_dir: c.working_dir,
        user: c.user,
        hostname: c.hostname,
        read_only: c.read_only,
        network: NetworkMode::parse(&c.network)?,
        auto_remove: c.auto_remove,
        open_stdin: c.open_stdin,
        tty: c.tty,
        entrypoint: c.override_entrypoint.then_some(c.entrypoint),
        publish_all: c.publish_all,
        stop_signal: String::new(),
        seccomp_unconfined: seccomp_unconfined(&c.security_opt)?,
    };
    Ok((c.image, spec))
}

/// Whether docker's `--security-opt` entries turn the syscall filter off;
/// options this runtime does not apply are refused, never ignored.
fn seccomp_unconfined(opts: &[String]) -> Result<bool> {
    let mut unconfined = false;
    for opt in opts {
        match opt.as_str() {
            "seccomp=unconfined" | "seccomp:unconfined" => unconfined = true,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unsupported security option \"{opt}\" (only seccomp=unconfined is supported)"
                )))
            }
        }
    }
    Ok(unconfined)
}

fn config_from_spec(image: &str, s: &ContainerSpec) -> pb::ContainerConfig {
    pb::ContainerConfig {
        image: image.to_string(),
        cmd: s.cmd.clone(),
        env: s.env.clone(),
        working_dir: s.working_dir.clone(),
        user: s.user.clone(),
        hostname: s.hostname.clone(),
        read_only: s.read_only,
        network: s.network.name(),
        auto_remove: s.auto_remove,
        open_stdin: s.open_stdin,
        tty: s.tty,
        ports: s.ports.iter().map(|p| binding(p.proto, p.host_ip, p.host_port, p.container_port)).collect(),
        ip: s.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        mac_address: s.mac.as_ref().map(format_mac).unwrap_or_default(),
        network_aliases: s.aliases.clone(),
        dns: s.dns.iter().map(|d| d.to_string()).collect(),
        extra_hosts: s.extra_hosts.iter().map(|(n, ip)| format!("{n}:{ip}")).collect(),
        entrypoint: s.entrypoint.clone().unwrap_or_default(),
        override_entrypoint: s.entrypoint.is_some(),
        publish_all: s.publish_all,
        security_opt: s.seccomp_unconfined.then(|| "seccomp=unconfined".to_string()).into_iter().collect(),
    }
}

fn parse_ip(s: &str, what: &str) -> Result<Ipv4Addr> {
    s.parse().map_err(|_| Error::InvalidArgument(format!("invalid {what}: {s}")))
}

fn parse_opt(s: &str, what: &str) -> Result<Option<Ipv4Addr>> {
    if s.is_empty() {
        Ok(None)
    } else {
        parse_ip(s, what).map(Some)
    }
}

fn parse_extra_host(s: &str) -> Result<(String, Ipv4Addr)> {
    let (name, ip) =
        s.split_once(':').ok_or_else(|| Error::InvalidArgument(format!("invalid --add-host {s}: use NAME:IP")))?;
    Ok((name.to_string(), parse_ip(ip, "--add-host address")?))
}

fn port_request(p: &pb::PortBinding) -> Result<PortRequest> {
    let proto = match p.protocol.as_str() {
        "" | "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => return Err(Error::InvalidArgument(format!("invalid protocol {other}: use tcp or udp"))),
    };
    let port = |n: u32, what: &str| -> Result<u16> {
        u16::try_from(n).map_err(|_| Error::InvalidArgument(format!("invalid {what} port {n}")))
    };
    Ok(PortRequest {
        host_ip: parse_opt(&p.host_ip, "host IP")?,
        host_port: port(p.host_port, "host")?,
        container_port: port(p.container_port, "container")?,
        proto,
    })
}

pub fn port_binding(p: &PortMap) -> pb::PortBinding {
    binding(p.proto, p.host_ip, p.host_port, p.container_port)
}

/// Requested (host port 0 = any) and assigned ports share one wire form.
fn binding(proto: Proto, host_ip: Option<Ipv4Addr>, host_port: u16, container_port: u16) -> pb::PortBinding {
    pb::PortBinding {
        host_ip: host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        host_port: host_port.into(),
        container_port: container_port.into(),
        protocol: proto.as_str().into(),
    }
}

pub fn endpoint_info(ep: &Endpoint, net: Option<&NetworkRecord>) -> pb::EndpointInfo {
    pb::EndpointInfo {
        network: ep.network.clone(),
        network_id: ep.network_id.clone(),
        interface: ep.ifname.clone(),
        ip_address: ep.ip.to_string(),
        prefix_len: net.map(|n| n.subnet.prefix_len().into()).unwrap_or(0),
        gateway: net.map(|n| n.gateway.to_string()).unwrap_or_default(),
        mac_address: format_mac(&ep.mac),
        aliases: ep.aliases.clone(),
    }
}

pub fn network_info(n: &NetworkRecord, containers: Vec<pb::NetworkContainer>) -> pb::NetworkInfo {
    pb::NetworkInfo {
        id: n.id.clone(),
        name: n.name.clone(),
        driver: n.driver.clone(),
        subnet: n.subnet.to_string(),
        gateway: n.gateway.to_string(),
        bridge: n.bridge.clone(),
        internal: n.internal,
        mtu: n.mtu,
        created_at: n.created_at,
        containers,
        scope: n.scope().into(),
        vni: n.vni.unwrap_or(0),
    }
}

pub fn container_info(
    rec: &ContainerRecord,
    netns: &str,
    rootfs: &str,
    networks: Vec<pb::EndpointInfo>,
) -> pb::ContainerInfo {
    let state = match rec.state {
        State::Created => pb::ContainerState::Created,
        State::Running => pb::ContainerState::Running,
        State::Exited => pb::ContainerState::Exited,
    };
    pb::ContainerInfo {
        id: rec.id.clone(),
        name: rec.name.clone(),
        config: Some(config_from_spec(&rec.image, &rec.spec)),
        state: state as i32,
        pid: rec.pid as i64,
        exit_code: rec.exit_code,
        created_at: rec.created_at,
        started_at: rec.started_at,
        finished_at: rec.finished_at,
        netns_path: netns.to_string(),
        rootfs: rootfs.to_string(),
        image_id: rec.image_id.clone(),
        networks,
        ports: rec.ports.iter().map(port_binding).collect(),
    }
}

pub fn image_info(img: &ImageRecord) -> pb::ImageInfo {
    pb::ImageInfo {
        id: img.id.clone(),
        name: img.name.clone(),
        size: img.size,
        created_at: img.created_at,
        names: img.names().cloned().collect(),
        digest: img.digest.clone().unwrap_or_default(),
        config: img.config.as_ref().map(|c| pb::ImageSettings {
            entrypoint: c.entrypoint.clone().unwrap_or_default(),
            cmd: c.cmd.clone().unwrap_or_default(),
            env: c.env.clone(),
            working_dir: c.working_dir.clone(),
            user: c.user.clone(),
            exposed_ports: c.exposed_ports.clone(),
            labels: c.labels.clone().into_iter().collect(),
            stop_signal: c.stop_signal.clone(),
        }),
        layers: img.layers.iter().map(|k| format!("sha256:{k}")).collect(),
    }
}
