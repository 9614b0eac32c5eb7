//! An image's config, read from its OCI config blob, and applied to a new
//! container the way docker applies it.

use oci_spec::image::ImageConfiguration;
use serde_json::json;

use crate::error::{Error, Result};
use crate::records::container::ContainerSpec;
use crate::records::image::{ImageConfig, ImageRecord};
use crate::records::port::{PortRequest, Proto};

pub fn from_oci(c: &ImageConfiguration) -> ImageConfig {
    let Some(cfg) = c.config() else { return ImageConfig::default() };
    ImageConfig {
        entrypoint: cfg.entrypoint().clone(),
        cmd: cfg.cmd().clone(),
        env: cfg.env().clone().unwrap_or_default(),
        working_dir: cfg.working_dir().clone().unwrap_or_default(),
        user: cfg.user().clone().unwrap_or_default(),
        exposed_ports: cfg.exposed_ports().clone().unwrap_or_default(),
        labels: cfg.labels().clone().unwrap_or_default().into_iter().collect(),
        stop_signal: cfg.stop_signal().clone().unwrap_or_default(),
    }
}

/// An OCI config blob for an image kept as one rootfs directory (saved as
/// the one layer `diff_id`): what its record knows, in the fields docker
/// reads. An imported image has no Cmd, so it needs a command there too.
pub fn to_oci(image: &ImageRecord, diff_id: &str) -> Result<Vec<u8>> {
    let c = image.config.clone().unwrap_or_default();
    let mut config = serde_json::Map::new();
    let mut set = |key: &str, value: serde_json::Value| {
        if !(value.is_null() || value == json!("") || value == json!([]) || value == json!({})) {
            config.insert(key.into(), value);
        }
    };
    set("Entrypoint", json!(c.entrypoint));
    set("Cmd", json!(c.cmd));
    set("Env", json!(c.env));
    set("WorkingDir", json!(c.working_dir));
    set("User", json!(c.user));
    let ports: serde_json::Map<String, serde_json::Value> =
        c.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect();
    set("ExposedPorts", json!(ports));
    set("Labels", json!(c.labels));
    set("StopSignal", json!(c.stop_signal));
    let created = humantime::format_rfc3339_seconds(crate::util::time_of(image.created_at)).to_string();
    let blob = json!({
        "architecture": this_arch(),
        "os": "linux",
        "created": created,
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": created, "created_by": format!("runtimed: image {}", image.name) }],
    });
    serde_json::to_vec(&blob).map_err(Error::internal)
}

/// This machine's architecture in the OCI's (Go's) words.
pub fn this_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The user's request completed by the image's config:
/// - the command is the entrypoint followed by the arguments: the user's
///   `--entrypoint` (which also drops the image's Cmd) or the image's, then
///   the user's command or else the image's Cmd;
/// - the image's Env comes first, the user's `-e` wins;
/// - WorkingDir and User apply unless the user gave their own.
pub fn apply(image: Option<&ImageConfig>, spec: &mut ContainerSpec) -> Result<()> {
    let none = ImageConfig::default();
    let image = image.unwrap_or(&none);
    let entrypoint = match &spec.entrypoint {
        Some(e) => e.clone(),
        None => image.entrypoint.clone().unwrap_or_default(),
    };
    let args = match (spec.cmd.is_empty(), spec.entrypoint.is_some()) {
        (false, _) => spec.cmd.clone(),
        (true, true) => Vec::new(),
        (true, false) => image.cmd.clone().unwrap_or_default(),
    };
    let command: Vec<String> = entrypoint.into_iter().chain(args).collect();
    if command.is_empty() {
        return Err(Error::InvalidArgument("no command specified".into()));
    }
    spec.cmd = command;
    spec.entrypoint = None;
    spec.env = image.env.iter().chain(&spec.env).cloned().collect();
    if spec.working_dir.is_empty() {
        spec.working_dir = image.working_dir.clone();
    }
    if spec.user.is_empty() {
        spec.user = image.user.clone();
    }
    if spec.stop_signal.is_empty() {
        spec.stop_signal = image.stop_signal.clone();
    }
    Ok(())
}

/// `-P`: each port the image exposes, on a host port the daemon picks.
pub fn exposed_ports(image: Option<&ImageConfig>) -> Result<Vec<PortRequest>> {
    let ports = image.map(|i| i.exposed_ports.as_slice()).unwrap_or_default();
    ports
        .iter()
        .map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let bad = || Error::InvalidArgument(format!("the image exposes an invalid port \"{p}\""));
            let proto = match proto {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => return Err(bad()),
            };
            let container_port = port.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?;
            Ok(PortRequest { host_ip: None, host_port: 0, container_port, proto })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec!["echo hi".into()]),
            env: vec!["A=image".into(), "B=image".into()],
            working_dir: "/srv".into(),
            user: "1000".into(),
            ..Default::default()
        }
    }

    fn spec(cmd: &[&str], entrypoint: Option<&[&str]>) -> ContainerSpec {
        ContainerSpec {
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            entrypoint: entrypoint.map(|e| e.iter().map(|s| s.to_string()).collect()),
            env: vec!["B=user".into()],
            ..Default::default()
        }
    }

    #[test]
    fn docker_rules_combine_entrypoint_and_cmd() {
        let mut s = spec(&[], None);
        apply(Some(&image()), &mut s).unwrap();
        assert_eq!(s.cmd, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!((s.working_dir.as_str(), s.user.as_str()), ("/srv", "1000"));
        assert_eq!(s.env, ["A=image", "B=image", "B=user"]);

        let mut s = spec(&["echo bye"], None);
        apply(Some(&image()), &mut s).unwrap();
        assert_eq!(s.cmd, ["/bin/sh", "-c", "echo bye"]);

        let mut s = spec(&[], Some(&["/bin/env"]));
        apply(Some(&image()), &mut s).unwrap();
        assert_eq!(s.cmd, ["/bin/env"], "--entrypoint drops the image's Cmd");

        let mut s = spec(&["ls", "/"], Some(&[]));
        apply(Some(&image()), &mut s).unwrap();
        assert_eq!(s.cmd, ["ls", "/"], "--entrypoint '' clears it");
    }

    #[test]
    fn an_image_without_config_needs_a_command() {
        let mut s = spec(&[], None);
        let e = apply(None, &mut s).unwrap_err();
        assert_eq!(e.to_string(), "no command specified");
        let mut s = spec(&["true"], None);
        apply(None, &mut s).unwrap();
        assert_eq!(s.cmd, ["true"]);
    }
}
