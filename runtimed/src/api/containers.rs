//! The `runtime.v1.Containers` service.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use runtime_proto::v1 as pb;
use runtime_proto::v1::containers_server::Containers;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{container_info, endpoint_info, spec_from_config};
use super::detach::to_completion;
use super::stdio::{self, Output};
use crate::container::logs::{LogLine, Stream as LogStream};
use crate::container::{Attached, ContainerRecord, ExecOptions, ExecSession, Manager, RunEnd};
use crate::network::NetworkMode;
use crate::shim::frame::Attach;

type GrpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

const DEFAULT_STOP_TIMEOUT: u32 = 10;

/// Output limit of ExecContainerSync (documented in the proto): the reply
/// must fit any client's default 4 MiB message limit.
const EXEC_SYNC_CAP: usize = 3 << 20;

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
    let stream = match line.stream {
        LogStream::Stdout => pb::Stream::Stdout,
        LogStream::Stderr => pb::Stream::Stderr,
    };
    pb::LogEntry { stream: stream as i32, data: line.log.clone().into(), time: line.time }
}

/// The rest of a direct-stdio exec: the shim's socket, then the exit code
/// once the process has exited.
fn direct_exec(m: Manager, sock: std::path::PathBuf, exec_id: String) -> GrpcStream<pb::ExecContainerResponse> {
    use pb::exec_container_response::Event;
    let socket = Event::StdioSocket(sock.to_string_lossy().into_owned());
    let exit = async move { m.wait_exec(&exec_id).await.map(Event::ExitCode).map_err(Status::from) };
    let events = futures::stream::once(async move { Ok(socket) }).chain(futures::stream::once(exit));
    Box::pin(events.map(|e| e.map(|event| pb::ExecContainerResponse { event: Some(event) })))
}

/// How a `run` went on once its container was created.
enum Started {
    Detached,
    /// The client hands the shim at this socket its own stdio.
    Direct(std::path::PathBuf, RunEnd),
    Attached(Attached),
}

/// The rest of a direct-stdio run: the shim's socket, then the exit code
/// once the run is over and handled (`--rm` included).
fn direct_run(sock: std::path::PathBuf, end: RunEnd) -> GrpcStream<pb::RunContainerResponse> {
    use pb::run_container_response::Event;
    let socket = pb::RunContainerResponse { event: Some(Event::StdioSocket(sock.to_string_lossy().into_owned())) };
    let exit = async move {
        let event = end.exit_code().await.map(Event::ExitCode).map_err(Status::from)?;
        Ok(pb::RunContainerResponse { event: Some(event) })
    };
    Box::pin(futures::stream::once(async move { Ok(socket) }).chain(futures::stream::once(exit)))
}

#[tonic::async_trait]
impl Containers for ContainersApi {
    async fn create_container(
        &self,
        req: Request<pb::CreateContainerRequest>,
    ) -> Result<Response<pb::CreateContainerResponse>, Status> {
        let r = req.into_inner();
        let (image, spec) = spec_from_config(r.config)?;
        let m = self.m.clone();
        let rec = to_completion(async move { m.create(&r.name, &image, spec).await }).await?;
        Ok(Response::new(pb::CreateContainerResponse { id: rec.id }))
    }

    async fn start_container(
        &self,
        req: Request<pb::StartContainerRequest>,
    ) -> Result<Response<pb::StartContainerResponse>, Status> {
        let (m, container) = (self.m.clone(), req.into_inner().container);
        let rec = to_completion(async move { m.start(&container).await }).await?;
        Ok(Response::new(pb::StartContainerResponse { pid: rec.pid as i64 }))
    }

    type RunContainerStream = GrpcStream<pb::RunContainerResponse>;

    async fn run_container(
        &self,
        req: Request<Streaming<pb::RunContainerRequest>>,
    ) -> Result<Response<Self::RunContainerStream>, Status> {
        use pb::run_container_response::Event;
        let mut input = req.into_inner();
        let first = input.message().await?.ok_or_else(|| Status::invalid_argument("empty request stream"))?;
        let (image, spec) = spec_from_config(first.config)?;
        let (size, detach) = (stdio::size(first.size), first.detach);
        let direct = first.direct_stdio && !detach && !spec.tty;
        let attach = Attach { stdin: spec.open_stdin, stdout: true, stderr: true };
        let m = self.m.clone();
        let (id, started) = to_completion(async move {
            let rec = m.create(&first.name, &image, spec).await?;
            let started = match (detach, direct) {
                (true, _) => m.start(&rec.id).await.map(|_| Started::Detached),
                (false, true) => m.start_direct(&rec.id).await.map(|(sock, end)| Started::Direct(sock, end)),
                (false, false) => m.attach(&rec.id, attach, size, true).await.map(Started::Attached),
            };
            match started {
                Ok(attached) => Ok((rec.id, attached)),
                Err(e) => {
                    // A run that cannot start leaves nothing behind.
                    if let Err(rm) = m.remove(&rec.id, true).await {
                        tracing::error!(id = rec.short_id(), "cleanup after failed run: {rm}");
                    }
                    Err(e)
                }
            }
        })
        .await?;
        let first = futures::stream::once(async move { Ok(pb::RunContainerResponse { event: Some(Event::Id(id)) }) });
        let Attached { conn, end, .. } = match started {
            Started::Detached => return Ok(Response::new(Box::pin(first))),
            Started::Direct(sock, end) => return Ok(Response::new(Box::pin(first.chain(direct_run(sock, end))))),
            Started::Attached(attached) => attached,
        };
        let wrap = |out| {
            let event = match out {
                Output::Stdout(d) => Event::Stdout(d),
                Output::Stderr(d) => Event::Stderr(d),
                Output::Exit(code) => Event::ExitCode(code),
            };
            pb::RunContainerResponse { event: Some(event) }
        };
        let rx = stdio::relay(conn, input, |r: pb::RunContainerRequest| r.input, wrap, |_| end.exit_code());
        Ok(Response::new(Box::pin(first.chain(ReceiverStream::new(rx)))))
    }

    type AttachContainerStream = GrpcStream<pb::AttachContainerResponse>;

    async fn attach_container(
        &self,
        req: Request<Streaming<pb::AttachContainerRequest>>,
    ) -> Result<Response<Self::AttachContainerStream>, Status> {
        use pb::attach_container_response::Event;
        let mut input = req.into_inner();
        let r = input.message().await?.ok_or_else(|| Status::invalid_argument("empty request stream"))?;
        let attach = Attach { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr };
        let (m, size) = (self.m.clone(), stdio::size(r.size));
        let Attached { conn, end, .. } =
            to_completion(async move { m.attach(&r.container, attach, size, r.start).await }).await?;
        let wrap = |out| {
            let event = match out {
                Output::Stdout(d) => Event::Stdout(d),
                Output::Stderr(d) => Event::Stderr(d),
                Output::Exit(code) => Event::ExitCode(code),
            };
            pb::AttachContainerResponse { event: Some(event) }
        };
        let rx = stdio::relay(conn, input, |r: pb::AttachContainerRequest| r.input, wrap, |_| end.exit_code());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn stop_container(
        &self,
        req: Request<pb::StopContainerRequest>,
    ) -> Result<Response<pb::StopContainerResponse>, Status> {
        let r = req.into_inner();
        let secs = r.timeout_seconds.unwrap_or(DEFAULT_STOP_TIMEOUT);
        let m = self.m.clone();
        to_completion(async move { m.stop(&r.container, Duration::from_secs(secs.into())).await }).await?;
        Ok(Response::new(pb::StopContainerResponse {}))
    }

    async fn kill_container(
        &self,
        req: Request<pb::KillContainerRequest>,
    ) -> Result<Response<pb::KillContainerResponse>, Status> {
        let r = req.into_inner();
        self.m.kill(&r.container, &r.signal).await?;
        Ok(Response::new(pb::KillContainerResponse {}))
    }

    async fn remove_container(
        &self,
        req: Request<pb::RemoveContainerRequest>,
    ) -> Result<Response<pb::RemoveContainerResponse>, Status> {
        let r = req.into_inner();
        let m = self.m.clone();
        let rec = to_completion(async move { m.remove(&r.container, r.force).await }).await?;
        Ok(Response::new(pb::RemoveContainerResponse { id: rec.id }))
    }

    async fn list_containers(
        &self,
        req: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        let list = self.m.list(req.into_inner().all)?;
        let containers = list.iter().map(|c| summary(self.info(c))).collect();
        Ok(Response::new(pb::ListContainersResponse { containers }))
    }

    async fn inspect_container(
        &self,
        req: Request<pb::InspectContainerRequest>,
    ) -> Result<Response<pb::InspectContainerResponse>, Status> {
        let rec = self.m.resolve(&req.into_inner().container)?;
        Ok(Response::new(pb::InspectContainerResponse { container: Some(self.info(&rec)) }))
    }

    async fn wait_container(
        &self,
        req: Request<pb::WaitContainerRequest>,
    ) -> Result<Response<pb::WaitContainerResponse>, Status> {
        let exit_code = self.m.wait(&req.into_inner().container).await?;
        Ok(Response::new(pb::WaitContainerResponse { exit_code }))
    }

    type ContainerLogsStream = GrpcStream<pb::ContainerLogsResponse>;

    async fn container_logs(
        &self,
        req: Request<pb::ContainerLogsRequest>,
    ) -> Result<Response<Self::ContainerLogsStream>, Status> {
        let r = req.into_inner();
        let tail = r.tail.filter(|n| *n >= 0).map(|n| n as usize);
        let rx = self.m.logs(&r.container, r.follow, tail)?;
        let stream =
            ReceiverStream::new(rx).map(|line| Ok(pb::ContainerLogsResponse { entry: Some(log_entry(&line)) }));
        Ok(Response::new(Box::pin(stream)))
    }

    type ExecContainerStream = GrpcStream<pb::ExecContainerResponse>;

    async fn exec_container(
        &self,
        req: Request<Streaming<pb::ExecContainerRequest>>,
    ) -> Result<Response<Self::ExecContainerStream>, Status> {
        use pb::exec_container_response::Event;
        let mut input = req.into_inner();
        let r = input.message().await?.ok_or_else(|| Status::invalid_argument("empty request stream"))?;
        let opts = ExecOptions {
            cmd: r.cmd,
            env: r.env,
            working_dir: r.working_dir,
            user: r.user,
            stdin: r.stdin,
            tty: r.tty,
            detach: r.detach,
            privileged: r.privileged,
            size: stdio::size(r.size),
            direct: r.direct_stdio && !r.tty && !r.detach,
        };
        let ExecSession { exec_id, conn, socket } = self.m.exec(&r.container, &opts).await?;
        let id = exec_id.clone();
        let first =
            futures::stream::once(async move { Ok(pb::ExecContainerResponse { event: Some(Event::ExecId(id)) }) });
        if opts.direct {
            return Ok(Response::new(Box::pin(first.chain(direct_exec(self.m.clone(), socket, exec_id)))));
        }
        let Some(conn) = conn else { return Ok(Response::new(Box::pin(first))) };
        let wrap = |out| {
            let event = match out {
                Output::Stdout(d) => Event::Stdout(d),
                Output::Stderr(d) => Event::Stderr(d),
                Output::Exit(code) => Event::ExitCode(code),
            };
            pb::ExecContainerResponse { event: Some(event) }
        };
        let finish = |code: Option<i32>| async move {
            code.ok_or_else(|| crate::error::Error::internal("the exec process's shim ended without its exit code"))
        };
        let rx = stdio::relay(conn, input, |r: pb::ExecContainerRequest| r.input, wrap, finish);
        Ok(Response::new(Box::pin(first.chain(ReceiverStream::new(rx)))))
    }

    async fn resize_exec(
        &self,
        req: Request<pb::ResizeExecRequest>,
    ) -> Result<Response<pb::ResizeExecResponse>, Status> {
        let r = req.into_inner();
        let (rows, cols) = stdio::size(r.size).ok_or_else(|| Status::invalid_argument("a size of rows and cols"))?;
        self.m.resize_exec(&r.exec_id, rows, cols).await?;
        Ok(Response::new(pb::ResizeExecResponse {}))
    }

    async fn wait_exec(&self, req: Request<pb::WaitExecRequest>) -> Result<Response<pb::WaitExecResponse>, Status> {
        let exit_code = self.m.wait_exec(&req.into_inner().exec_id).await?;
        Ok(Response::new(pb::WaitExecResponse { exit_code }))
    }

    async fn exec_container_sync(
        &self,
        req: Request<pb::ExecContainerSyncRequest>,
    ) -> Result<Response<pb::ExecContainerSyncResponse>, Status> {
        let r = req.into_inner();
        let opts =
            ExecOptions { cmd: r.cmd, env: r.env, working_dir: r.working_dir, user: r.user, ..Default::default() };
        let session = self.m.exec(&r.container, &opts).await?;
        let conn = session.conn.ok_or_else(|| Status::internal("exec has no output connection"))?;
        let timeout = (r.timeout_seconds > 0).then(|| Duration::from_secs(r.timeout_seconds.into()));
        let out = stdio::collect(conn, EXEC_SYNC_CAP, timeout).await?;
        Ok(Response::new(pb::ExecContainerSyncResponse {
            exit_code: out.exit_code,
            stdout: out.stdout.into(),
            stderr: out.stderr.into(),
        }))
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
