//! Per-container /etc/hosts, /etc/hostname and /etc/resolv.conf, generated
//! at start and bind-mounted over the image's, as docker does. Files are
//! rewritten in place (the bind mounts hold their inodes), so a running
//! container sees /etc/hosts change on `network connect`, and a container
//! that joins another's network namespace shares the owner's three files.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::{ContainerPaths, ContainerRecord};
use crate::error::{IoContext, Result};
use crate::network::NetworkMode;

/// What `write` returns: (file on the host, path in the container).
pub type EtcFiles = Vec<(PathBuf, &'static str)>;

const FILES: [(&str, &str); 3] =
    [("hosts", "/etc/hosts"), ("hostname", "/etc/hostname"), ("resolv.conf", "/etc/resolv.conf")];

/// `--hostname`, else the short id, as docker names containers' hosts.
pub fn hostname(rec: &ContainerRecord) -> String {
    match rec.spec.hostname.is_empty() {
        true => rec.short_id().to_string(),
        false => rec.spec.hostname.clone(),
    }
}

/// The files of the container whose network namespace is joined
/// (`--network container:X`), as docker shares them.
pub fn shared(owner: &ContainerPaths) -> EtcFiles {
    FILES.iter().map(|(name, target)| (owner.etc_file(name), *target)).collect()
}

/// Brings a running container's /etc/hosts up to date with its endpoints.
pub fn rewrite_hosts(paths: &ContainerPaths, rec: &ContainerRecord) -> Result<()> {
    let path = paths.etc_file("hosts");
    std::fs::write(&path, hosts_file(rec, &hostname(rec))).ctx(|| format!("write {}", path.display()))
}

/// Writes the container's files; returns the mounts for its spec.
pub fn write(
    paths: &ContainerPaths,
    rec: &ContainerRecord,
    hostname: &str,
    nameserver: Option<Ipv4Addr>,
) -> Result<EtcFiles> {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let hosts = match rec.spec.network {
        NetworkMode::Host => std::fs::read_to_string("/etc/hosts").unwrap_or_default() + &extra_hosts(rec),
        _ => hosts_file(rec, hostname),
    };
    let resolv = resolv_conf(&host_resolv, &rec.spec.dns, nameserver);
    for ((name, _), content) in FILES.iter().zip([hosts, format!("{hostname}\n"), resolv]) {
        let path = paths.etc_file(name);
        std::fs::write(&path, content).ctx(|| format!("write {}", path.display()))?;
    }
    Ok(shared(paths))
}

fn hosts_file(rec: &ContainerRecord, hostname: &str) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for ep in &rec.endpoints {
        out.push_str(&format!("{}\t{hostname}\n", ep.ip));
    }
    out + &extra_hosts(rec)
}

/// `--add-host` lines.
fn extra_hosts(rec: &ContainerRecord) -> String {
    rec.spec.extra_hosts.iter().map(|(name, ip)| format!("{ip}\t{name}\n")).collect()
}

/// The network's own DNS server (which forwards to `--dns` servers for this
/// container, as docker's embedded DNS does); else `--dns`; else the host's
/// resolvers, minus loopback ones that mean nothing inside the container.
fn resolv_conf(host: &str, dns: &[Ipv4Addr], network_dns: Option<Ipv4Addr>) -> String {
    let mut out = String::new();
    for line in host.lines().map(str::trim) {
        if line.starts_with("search ") || line.starts_with("options ") {
            out.push_str(line);
            out.push('\n');
        }
    }
    let servers: Vec<String> = if let Some(ip) = network_dns {
        vec![ip.to_string()]
    } else if !dns.is_empty() {
        dns.iter().map(|ip| ip.to_string()).collect()
    } else {
        host.lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .map(|s| s.trim().to_string())
            .filter(|s| s.parse::<Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
            .collect()
    };
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_prefers_network_then_dns_flag_then_host() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n";
        assert_eq!(resolv_conf(host, &[], None), "search example.org\nnameserver 192.0.2.1\n");
        let gw = Ipv4Addr::new(10, 90, 0, 1);
        assert_eq!(resolv_conf(host, &[], Some(gw)), "search example.org\nnameserver 10.90.0.1\n");
        let dns = [Ipv4Addr::new(192, 0, 2, 53)];
        assert_eq!(resolv_conf(host, &dns, Some(gw)), "search example.org\nnameserver 10.90.0.1\n");
        assert_eq!(resolv_conf(host, &dns, None), "search example.org\nnameserver 192.0.2.53\n");
    }
}
