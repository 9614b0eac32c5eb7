//! Parsing docker's `-p` syntax:
//! `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|/udp]`.

use runtime_proto::v1::PortBinding;

pub fn parse(spec: &str) -> Result<Vec<PortBinding>, String> {
    let bad = |why: &str| format!("invalid port spec {spec:?}: {why}");
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, p @ ("tcp" | "udp"))) => (b, p),
        Some(_) => return Err(bad("protocol must be tcp or udp")),
        None => (spec, "tcp"),
    };
    let parts: Vec<&str> = body.split(':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => return Err(bad("too many colons")),
    };
    if !host_ip.is_empty() && host_ip.parse::<std::net::Ipv4Addr>().is_err() {
        return Err(bad("host IP is not an IPv4 address"));
    }
    let container = range(container).ok_or_else(|| bad("container port must be 1-65535 or a range"))?;
    let host = if host.is_empty() {
        None
    } else {
        Some(range(host).ok_or_else(|| bad("host port must be 1-65535 or a range"))?)
    };
    if let Some(h) = host {
        if h.1 - h.0 != container.1 - container.0 {
            return Err(bad("host and container ranges differ in size"));
        }
    }
    Ok((0..=container.1 - container.0)
        .map(|i| PortBinding {
            host_ip: host_ip.to_string(),
            host_port: host.map(|h| u32::from(h.0 + i)).unwrap_or(0),
            container_port: u32::from(container.0 + i),
            protocol: proto.to_string(),
        })
        .collect())
}

fn range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a > 0 && a <= b).then_some((a, b))
}

/// "0.0.0.0:8080->80/tcp", as `docker ps` shows it.
pub fn display(p: &PortBinding) -> String {
    let ip = if p.host_ip.is_empty() { "0.0.0.0" } else { &p.host_ip };
    format!("{ip}:{}->{}/{}", p.host_port, p.container_port, p.protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> (String, u32, u32, String) {
        let p = parse(spec).unwrap().remove(0);
        (p.host_ip, p.host_port, p.container_port, p.protocol)
    }

    #[test]
    fn parses_docker_forms() {
        assert_eq!(one("8080:80"), ("".into(), 8080, 80, "tcp".into()));
        assert_eq!(one("127.0.0.1:8080:80/udp"), ("127.0.0.1".into(), 8080, 80, "udp".into()));
        assert_eq!(one("80"), ("".into(), 0, 80, "tcp".into()));
        assert_eq!(one("10.0.0.1::53/udp"), ("10.0.0.1".into(), 0, 53, "udp".into()));
        let r = parse("8000-8009:9000-9009").unwrap();
        assert_eq!(r.len(), 10);
        assert_eq!((r[9].host_port, r[9].container_port), (8009, 9009));
        for bad in ["", "0", "8000-8001:80", "a:80", "1:2:3:4", "80/sctp", "70000", "host:80:80"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
