//! The `runtime.v1.Containers` service.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use runtime_proto::v1 as pb;
use runtime_proto::v1::containers_server::Containers;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::convert::{container_info, endpoint_info, spec_from_config};
use super::detach::to_completion;
use crate::container::logs::{LogLine, Stream as LogStream};
use crate::container::{ContainerRecord, Follow, Manager};
use crate::network::NetworkMode;

type GrpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

const DEFAULT_STOP_TIMEOUT: u32 = 10;

pub struct ContainersApi {
    m: Manager,
}

impl ContainersApi {
    pub fn new(m: Manager) -> Self {
        ContainersApi { m }
    }

    fn info(&self, rec: &ContainerRecord) -> pb::ContainerInfo {
        let paths = self.m.paths(&rec.id);
        let netns = match &rec.spec.network {
            NetworkMode::Host => String::new(),
            NetworkMode::Container(owner) => self.m.paths(owner).netns.display().to_string(),
            NetworkMode::None | NetworkMode::Bridge(_) => paths.netns.display().to_string(),
        };
        let networks = rec
            .endpoints
            .iter()
            .map(|ep| endpoint_info(ep, self.m.networks().resolve(&ep.network_id).ok().as_ref()))
            .collect();
        container_info(rec, &netns, &paths.rootfs().display().to_string(), networks)
    }
}

fn log_entry(line: &LogLine) -> pb::LogEntry {
    let stream = match line.stream() {
        LogStream::Stdout => pb::Stream::Stdout,
        LogStream::Stderr => pb::Stream::Stderr,
    };
    pb::LogEntry { stream: stream as i32, data: line.log.clone().into_bytes(), time: line.time_nanos() }
}

#[tonic::async_trait]
impl Containers for ContainersApi {
    async fn create(&self, req: Request<pb::CreateRequest>) -> Result<Response<pb::CreateResponse>, Status> {
        let r = req.into_inner();
        let (image, spec) = spec_from_config(r.config)?;
        let m = self.m.clone();
        let rec = to_completion(async move { m.create(&r.name, &image, spec).await }).await?;
        Ok(Response::new(pb::CreateResponse { id: rec.id }))
    }

    async fn start(&self, req: Request<pb::StartRequest>) -> Result<Response<pb::StartResponse>, Status> {
        let (m, container) = (self.m.clone(), req.into_inner().container);
        let rec = to_completion(async move { m.start(&container).await }).await?;
        Ok(Response::new(pb::StartResponse { pid: rec.pid as i64 }))
    }

    type RunStream = GrpcStream<pb::RunResponse>;

    async fn run(&self, req: Request<pb::RunRequest>) -> Result<Response<Self::RunStream>, Status> {
        use pb::run_response::Event;
        let r = req.into_inner();
        let (image, spec) = spec_from_config(r.config)?;
        let m = self.m.clone();
        let (rec, output) = to_completion(async move {
            let rec = m.create(&r.name, &image, spec).await?;
            let output = if r.detach { None } else { Some(m.follow(&rec, true, None, true)?) };
            if let Err(e) = m.start(&rec.id).await {
                // A run that cannot start leaves nothing behind.
                if let Err(rm) = m.remove(&rec.id, true).await {
                    tracing::error!(id = rec.short_id(), "cleanup after failed run: {rm}");
                }
                return Err(e);
            }
            Ok((rec, output))
        })
        .await?;
        let first = futures::stream::once(async move { Ok(pb::RunResponse { event: Some(Event::Id(rec.id)) }) });
        let Some(output) = output else { return Ok(Response::new(Box::pin(first))) };
        let rest = ReceiverStream::new(output).map(|item| {
            let event = match item {
                Follow::Line(line) => Event::Output(log_entry(&line)),
                Follow::Exited(code) => Event::ExitCode(code),
            };
            Ok(pb::RunResponse { event: Some(event) })
        });
        Ok(Response::new(Box::pin(first.chain(rest))))
    }

    async fn stop(&self, req: Request<pb::StopRequest>) -> Result<Response<pb::StopResponse>, Status> {
        let r = req.into_inner();
        let secs = r.timeout_seconds.unwrap_or(DEFAULT_STOP_TIMEOUT);
        let m = self.m.clone();
        to_completion(async move { m.stop(&r.container, Duration::from_secs(secs.into())).await }).await?;
        Ok(Response::new(pb::StopResponse {}))
    }

    async fn kill(&self, req: Request<pb::KillRequest>) -> Result<Response<pb::KillResponse>, Status> {
        let r = req.into_inner();
        self.m.kill(&r.container, &r.signal).await?;
        Ok(Response::new(pb::KillResponse {}))
    }

    async fn remove(&self, req: Request<pb::RemoveRequest>) -> Result<Response<pb::RemoveResponse>, Status> {
        let r = req.into_inner();
        let m = self.m.clone();
        let rec = to_completion(async move { m.remove(&r.container, r.force).await }).await?;
        Ok(Response::new(pb::RemoveResponse { id: rec.id }))
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>, Status> {
        let list = self.m.list(req.into_inner().all)?;
        let containers = list.iter().map(|c| summary(self.info(c))).collect();
        Ok(Response::new(pb::ListResponse { containers }))
    }

    async fn inspect(&self, req: Request<pb::InspectRequest>) -> Result<Response<pb::ContainerInfo>, Status> {
        let rec = self.m.resolve(&req.into_inner().container)?;
        Ok(Response::new(self.info(&rec)))
    }

    async fn wait(&self, req: Request<pb::WaitRequest>) -> Result<Response<pb::WaitResponse>, Status> {
        let exit_code = self.m.wait(&req.into_inner().container).await?;
        Ok(Response::new(pb::WaitResponse { exit_code }))
    }

    type LogsStream = GrpcStream<pb::LogEntry>;

    async fn logs(&self, req: Request<pb::LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let r = req.into_inner();
        let tail = r.tail.filter(|n| *n >= 0).map(|n| n as usize);
        let rx = self.m.logs(&r.container, r.follow, tail)?;
        let stream = ReceiverStream::new(rx).filter_map(|item| match item {
            Follow::Line(line) => Some(Ok(log_entry(&line))),
            Follow::Exited(_) => None,
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn exec(&self, req: Request<pb::ExecRequest>) -> Result<Response<pb::ExecResponse>, Status> {
        let r = req.into_inner();
        let out = self.m.exec(&r.container, &r.cmd, &r.env, &r.working_dir, &r.user).await?;
        Ok(Response::new(pb::ExecResponse { exit_code: out.exit_code, stdout: out.stdout, stderr: out.stderr }))
    }
}

/// A list entry leaves out the environment (`inspect` has it), so one
/// container with a large one cannot push a list past the message limit.
fn summary(mut info: pb::ContainerInfo) -> pb::ContainerInfo {
    if let Some(config) = info.config.as_mut() {
        config.env.clear();
    }
    info
}
