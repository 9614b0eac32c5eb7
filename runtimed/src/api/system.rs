//! The `runtime.v1.System` service.

use std::pin::Pin;

use futures::Stream;
use runtime_proto::v1 as pb;
use runtime_proto::v1::system_server::System;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use crate::container::Manager;

pub struct SystemApi {
    m: Manager,
}

impl SystemApi {
    pub fn new(m: Manager) -> Self {
        SystemApi { m }
    }
}

fn kernel() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

#[tonic::async_trait]
impl System for SystemApi {
    async fn version(&self, _: Request<pb::VersionRequest>) -> Result<Response<pb::VersionResponse>, Status> {
        Ok(Response::new(pb::VersionResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            api_version: "runtime.v1".to_string(),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            kernel: kernel(),
        }))
    }

    async fn info(&self, _: Request<pb::InfoRequest>) -> Result<Response<pb::InfoResponse>, Status> {
        let all = self.m.list(true)?;
        let running = all.iter().filter(|c| c.is_running()).count() as u32;
        let cfg = self.m.config();
        Ok(Response::new(pb::InfoResponse {
            containers: all.len() as u32,
            running,
            stopped: all.len() as u32 - running,
            images: self.m.images().list()?.len() as u32,
            root: cfg.root.display().to_string(),
            run_dir: cfg.run_dir.display().to_string(),
            cgroup_parent: cfg.cgroup_parent.clone(),
            cgroup_version: cgroup_version().to_string(),
            kernel: kernel(),
        }))
    }

    async fn disk_usage(&self, _: Request<pb::DiskUsageRequest>) -> Result<Response<pb::DiskUsageResponse>, Status> {
        let m = self.m.clone();
        let usage = tokio::task::spawn_blocking(move || -> crate::error::Result<pb::DiskUsageResponse> {
            let containers = m.list(true)?;
            let active: std::collections::HashSet<String> = containers.iter().map(|c| c.image_id.clone()).collect();
            let images = m.images().list()?;
            let (size, reclaimable) = m.images().disk_usage(&active)?;
            let sizes: Vec<(bool, u64)> =
                containers.iter().map(|c| (c.is_running(), crate::image::dir_size(&m.paths(&c.id).upper()))).collect();
            Ok(pb::DiskUsageResponse {
                images: Some(pb::DiskUsage {
                    total: images.len() as u32,
                    active: images.iter().filter(|i| active.contains(&i.id)).count() as u32,
                    size,
                    reclaimable,
                }),
                containers: Some(pb::DiskUsage {
                    total: sizes.len() as u32,
                    active: sizes.iter().filter(|(running, _)| *running).count() as u32,
                    size: sizes.iter().map(|(_, s)| s).sum(),
                    reclaimable: sizes.iter().filter(|(running, _)| !running).map(|(_, s)| s).sum(),
                }),
            })
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(usage))
    }

    async fn list_nodes(&self, _: Request<pb::ListNodesRequest>) -> Result<Response<pb::ListNodesResponse>, Status> {
        let cluster = self.m.networks().cluster_handle().ok_or_else(|| {
            Status::failed_precondition(
                "this daemon is not part of a cluster (start it with --cluster-store and --advertise)",
            )
        })?;
        let nodes = cluster
            .nodes()
            .into_iter()
            .map(|(m, alive)| pb::NodeInfo {
                self_: m.id == cluster.node_id(),
                id: m.id,
                name: m.name,
                address: m.address.to_string(),
                alive,
                joined_at: m.joined_at,
            })
            .collect();
        Ok(Response::new(pb::ListNodesResponse { nodes }))
    }

    type EventsStream = Pin<Box<dyn Stream<Item = Result<pb::EventsResponse, Status>> + Send>>;

    async fn events(&self, _: Request<pb::EventsRequest>) -> Result<Response<Self::EventsStream>, Status> {
        let stream = BroadcastStream::new(self.m.events().subscribe()).filter_map(|e| match e {
            Ok(event) => Some(Ok(pb::EventsResponse { event: Some(event) })),
            // A slow reader loses old events rather than stalling the daemon.
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                tracing::warn!("events subscriber lagged by {n}");
                None
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
