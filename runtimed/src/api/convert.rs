//! Conversions between API messages and the daemon's own types.

use runtime_proto::v1 as pb;

use crate::container::{ContainerRecord, ContainerSpec, State};
use crate::error::{Error, Result};
use crate::image::ImageRecord;
use crate::network::NetworkMode;

/// Splits a requested config into the image reference and the stored spec.
pub fn spec_from_config(config: Option<pb::ContainerConfig>) -> Result<(String, ContainerSpec)> {
    let c = config.ok_or_else(|| Error::InvalidArgument("missing container config".into()))?;
    for kv in &c.env {
        if kv.is_empty() || kv.starts_with('=') {
            return Err(Error::InvalidArgument(format!("invalid environment variable: {kv:?}")));
        }
    }
    if !c.working_dir.is_empty() && !c.working_dir.starts_with('/') {
        return Err(Error::InvalidArgument(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            c.working_dir
        )));
    }
    let spec = ContainerSpec {
        cmd: c.cmd,
        env: c.env.into_iter().map(|kv| if kv.contains('=') { kv } else { format!("{kv}=") }).collect(),
        working_dir: c.working_dir,
        user: c.user,
        hostname: c.hostname,
        read_only: c.read_only,
        network: NetworkMode::parse(&c.network)?,
        auto_remove: c.auto_remove,
    };
    Ok((c.image, spec))
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
        network: s.network.as_str().to_string(),
        auto_remove: s.auto_remove,
    }
}

pub fn container_info(rec: &ContainerRecord, netns: &str, rootfs: &str) -> pb::ContainerInfo {
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
    }
}

pub fn image_info(img: &ImageRecord) -> pb::ImageInfo {
    pb::ImageInfo { id: img.id.clone(), name: img.name.clone(), size: img.size, created_at: img.created_at }
}
