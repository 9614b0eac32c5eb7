//! Rendering of API objects for people (tables) and programs (JSON).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runtime_proto::v1 as pb;
use serde_json::{json, Value};

fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// "5 seconds", "3 minutes", ... like docker's human durations.
pub fn human_duration(nanos: i64) -> String {
    let secs = (nanos.max(0) / 1_000_000_000) as u64;
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

pub fn ago(at: i64) -> String {
    if at == 0 {
        return String::new();
    }
    format!("{} ago", human_duration(now_nanos() - at))
}

/// A time given on the command line, in Unix nanoseconds: RFC 3339, Unix
/// seconds, or a duration before now (`10m`), as docker's --since takes.
pub fn parse_time(text: &str, flag: &str) -> Result<i64, crate::error::CliError> {
    let nanos = |t: std::time::SystemTime| {
        t.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)).unwrap_or(0)
    };
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(nanos(t));
    }
    if let Ok(secs) = text.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    match humantime::parse_duration(text) {
        Ok(ago) => Ok(nanos(std::time::SystemTime::now() - ago)),
        Err(_) => Err(crate::error::CliError::new(format!(
            "invalid value for {flag}: {text} (use a time like 2026-01-02T15:04:05Z, Unix seconds or a duration like 10m)"
        ))),
    }
}

pub fn rfc3339(at: i64) -> String {
    if at <= 0 {
        return String::new();
    }
    let t = UNIX_EPOCH + Duration::from_nanos(at as u64);
    humantime::format_rfc3339_nanos(t).to_string()
}

pub fn state_name(state: i32) -> &'static str {
    match pb::ContainerState::try_from(state).unwrap_or(pb::ContainerState::Unspecified) {
        pb::ContainerState::Created => "created",
        pb::ContainerState::Running => "running",
        pb::ContainerState::Exited => "exited",
        pb::ContainerState::Unspecified => "unknown",
    }
}

/// The STATUS column: "Up 5 seconds", "Exited (0) 3 seconds ago", "Created".
pub fn status_text(c: &pb::ContainerInfo) -> String {
    match state_name(c.state) {
        "running" => format!("Up {}", human_duration(now_nanos() - c.started_at)),
        "exited" => format!("Exited ({}) {}", c.exit_code, ago(c.finished_at)),
        "created" => "Created".into(),
        other => other.into(),
    }
}

/// The short form of an id, as lists show it.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

pub fn command_text(c: &pb::ContainerInfo) -> String {
    let cmd = c.config.as_ref().map(|c| c.cmd.join(" ")).unwrap_or_default();
    let cmd = if cmd.is_empty() { "sh".to_string() } else { cmd };
    if cmd.chars().count() > 20 {
        format!("\"{}…\"", cmd.chars().take(19).collect::<String>())
    } else {
        format!("\"{cmd}\"")
    }
}

pub fn container_json(c: &pb::ContainerInfo) -> Value {
    let cfg = c.config.clone().unwrap_or_default();
    json!({
        "Id": c.id,
        "Name": c.name,
        "Image": cfg.image,
        "ImageId": c.image_id,
        "Created": rfc3339(c.created_at),
        "State": {
            "Status": state_name(c.state),
            "Running": state_name(c.state) == "running",
            "Pid": c.pid,
            "ExitCode": c.exit_code,
            "StartedAt": rfc3339(c.started_at),
            "FinishedAt": rfc3339(c.finished_at),
        },
        "Config": {
            "Cmd": cfg.cmd,
            "Env": cfg.env,
            "WorkingDir": cfg.working_dir,
            "User": cfg.user,
            "Hostname": cfg.hostname,
            "ReadOnly": cfg.read_only,
            "AutoRemove": cfg.auto_remove,
        },
        "NetworkSettings": {
            "Mode": cfg.network,
            "SandboxKey": c.netns_path,
            "Networks": c.networks.iter().map(|e| (e.network.clone(), json!({
                "NetworkID": e.network_id, "Interface": e.interface, "IPAddress": e.ip_address,
                "IPPrefixLen": e.prefix_len, "Gateway": e.gateway, "MacAddress": e.mac_address,
                "Aliases": e.aliases,
            }))).collect::<serde_json::Map<String, Value>>(),
            "Ports": c.ports.iter().map(|p| json!({
                "HostIp": p.host_ip, "HostPort": p.host_port, "ContainerPort": p.container_port, "Protocol": p.protocol,
            })).collect::<Vec<_>>(),
        },
        "Rootfs": c.rootfs,
    })
}

pub fn ps_json(c: &pb::ContainerInfo) -> Value {
    json!({
        "ID": c.id,
        "Names": c.name,
        "Image": c.config.as_ref().map(|c| c.image.clone()).unwrap_or_default(),
        "Command": c.config.as_ref().map(|c| c.cmd.join(" ")).unwrap_or_default(),
        "State": state_name(c.state),
        "Status": status_text(c),
        "ExitCode": c.exit_code,
        "Pid": c.pid,
        "CreatedAt": rfc3339(c.created_at),
        "Ports": c.ports.iter().map(crate::ports::display).collect::<Vec<_>>().join(", "),
        "Networks": c.networks.iter().map(|e| e.network.clone()).collect::<Vec<_>>().join(","),
    })
}

pub fn image_json(i: &pb::ImageInfo) -> Value {
    json!({
        "ID": i.id,
        "Name": i.name,
        "RepoTags": i.names,
        "Digest": i.digest,
        "Size": i.size,
        "CreatedAt": rfc3339(i.created_at),
    })
}

/// `image inspect`, in the shape of docker's.
pub fn image_inspect_json(i: &pb::ImageInfo) -> Value {
    let config = i.config.as_ref().map(|c| {
        let ports: serde_json::Map<String, Value> = c.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect();
        json!({
            "Entrypoint": if c.entrypoint.is_empty() { Value::Null } else { json!(c.entrypoint) },
            "Cmd": if c.cmd.is_empty() { Value::Null } else { json!(c.cmd) },
            "Env": c.env,
            "WorkingDir": c.working_dir,
            "User": c.user,
            "ExposedPorts": ports,
            "Labels": c.labels,
            "StopSignal": c.stop_signal,
        })
    });
    let (repo_digests, tags): (Vec<String>, Vec<String>) = (
        i.names
            .iter()
            .filter(|_| !i.digest.is_empty())
            .map(|n| format!("{}@{}", repo_and_tag(n).0, i.digest))
            .collect(),
        i.names.iter().filter(|n| !n.contains('@')).map(|n| repo_and_tag(n)).map(|(r, t)| format!("{r}:{t}")).collect(),
    );
    json!({
        "Id": format!("sha256:{}", i.id),
        "RepoTags": tags,
        "RepoDigests": repo_digests,
        "Created": rfc3339(i.created_at),
        "Size": i.size,
        "Config": config,
        "RootFS": { "Type": "layers", "Layers": i.layers },
    })
}

/// REPOSITORY and TAG columns of an image name as the daemon stores it
/// (`busybox`, `host:5000/app:v1`, `app@sha256:...`).
pub fn repo_and_tag(name: &str) -> (String, String) {
    if name.is_empty() {
        return ("<none>".into(), "<none>".into());
    }
    if let Some((repo, _)) = name.split_once('@') {
        return (repo.to_string(), "<none>".into());
    }
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (name.to_string(), "latest".to_string()),
    }
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}{}", UNITS[unit])
    }
}

/// Prints rows as left-aligned columns separated by three spaces.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let text: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| if i == last { c } else { format!("{c:<w$}", w = widths[i]) })
            .collect();
        println!("{}", text.join("   ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5_000_000_000), "5 seconds");
        assert_eq!(human_duration(180_000_000_000), "3 minutes");
    }

    #[test]
    fn sizes_use_decimal_units() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500_000), "1.500MB");
    }
}
