//! Commands attached to a process's stdio: `run`, `start -a`, `attach` and
//! `exec`. Each sends one first request, then this terminal's input
//! (stdin bytes, its size, a detach); output is written as it arrives,
//! byte for byte, and the exit code becomes ours.

use std::fs::File;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use runtime_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::container::config;
use super::direct;
use super::terminal::{self, DetachKeys, RawMode};
use crate::cli::{AttachArgs, ExecArgs, RunArgs, StartArgs};
use crate::client::Client;
use crate::error::{CliError, Result};

/// Largest read from our stdin, and so the largest stdin message.
const STDIN_CHUNK: usize = 256 * 1024;

/// How this client takes part in a stream.
struct Attach {
    stdin: bool,
    tty: bool,
    keys: Vec<u8>,
}

impl Attach {
    fn new(stdin: bool, tty: bool, keys: &str) -> Result<Attach> {
        if stdin && tty && !terminal::stdin_is_tty() {
            return Err(CliError { message: "the input device is not a TTY".into(), exit_code: 1 });
        }
        Ok(Attach { stdin, tty, keys: terminal::parse_detach_keys(keys)? })
    }

    fn size(&self) -> Option<pb::TerminalSize> {
        self.tty.then(terminal::size).flatten().map(|(rows, cols)| pb::TerminalSize { rows, cols })
    }
}

/// The request side of a stream. While it lives the stream stays open (for
/// resizes) and the terminal stays raw.
struct Input<Req> {
    _tx: mpsc::Sender<Req>,
    detached: Arc<AtomicBool>,
    _raw: Option<RawMode>,
}

fn open_input<Req: Send + 'static>(
    first: Req,
    a: &Attach,
    wrap: fn(pb::StreamInput) -> Req,
) -> Result<(Input<Req>, ReceiverStream<Req>)> {
    use pb::stream_input::Input as In;
    let (tx, rx) = mpsc::channel(16);
    tx.try_send(first).map_err(|_| CliError::new("request queue"))?;
    let detached = Arc::new(AtomicBool::new(false));
    let raw = (a.tty && a.stdin).then(RawMode::enter).transpose()?;
    let send = move |tx: &mpsc::Sender<Req>, input: In| tx.blocking_send(wrap(pb::StreamInput { input: Some(input) }));
    if a.stdin {
        let (tx, detached) = (tx.clone(), detached.clone());
        // Detach keys only from a terminal: piped bytes pass untouched.
        let mut keys = DetachKeys::new(if a.tty { a.keys.clone() } else { Vec::new() });
        std::thread::spawn(move || {
            let mut buf = vec![0u8; STDIN_CHUNK];
            let mut stdin = std::io::stdin().lock();
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (data, detach) = keys.feed(&buf[..n]);
                if !data.is_empty() && send(&tx, In::Stdin(data.into())).is_err() {
                    return;
                }
                if detach {
                    detached.store(true, Ordering::SeqCst);
                    let _ = send(&tx, In::Detach(true));
                    return;
                }
            }
            let _ = send(&tx, In::CloseStdin(true));
        });
    }
    if a.tty {
        forward_resizes(tx.clone(), wrap);
    }
    Ok((Input { _tx: tx, detached, _raw: raw }, ReceiverStream::new(rx)))
}

/// The container's terminal follows this one's size.
fn forward_resizes<Req: Send + 'static>(tx: mpsc::Sender<Req>, wrap: fn(pb::StreamInput) -> Req) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut winch) = signal(SignalKind::window_change()) else { return };
    tokio::spawn(async move {
        while winch.recv().await.is_some() {
            let Some((rows, cols)) = terminal::size() else { continue };
            let input = pb::stream_input::Input::Resize(pb::TerminalSize { rows, cols });
            if tx.send(wrap(pb::StreamInput { input: Some(input) })).await.is_err() {
                return;
            }
        }
    });
}

/// One response, whatever the RPC.
enum Event {
    Id(String),
    /// The shim's socket, for a direct-stdio client.
    Socket(String),
    Stdout(Bytes),
    Stderr(Bytes),
    Exit(i32),
    Other,
}

/// Writes output until the exit code arrives; `None` after a detach.
async fn pump<Resp, Req>(
    client: &Client,
    mut stream: tonic::Streaming<Resp>,
    classify: fn(Resp) -> Event,
    input: &Input<Req>,
    mut proxy: Option<SigProxy>,
    proxy_on_id: bool,
) -> Result<Option<i32>> {
    loop {
        let msg = tokio::select! {
            msg = stream.next() => msg,
            Some((sig, id)) = next_signal(&mut proxy) => {
                forward_signal(client, id, sig);
                continue;
            }
        };
        let Some(msg) = msg else { break };
        match classify(msg?) {
            Event::Id(id) if proxy_on_id => proxy = Some(SigProxy::new(id)?),
            Event::Stdout(data) => write_fd(1, &data),
            Event::Stderr(data) => write_fd(2, &data),
            Event::Exit(code) => return Ok(Some(code)),
            Event::Id(_) | Event::Socket(_) | Event::Other => {}
        }
    }
    if input.detached.load(Ordering::SeqCst) {
        return Ok(None);
    }
    Err(CliError::new("the daemon ended the stream before the process exited"))
}

/// Writes straight to the descriptor: std's stdout would split binary
/// output at newlines and copy the rest into its line buffer.
fn write_fd(fd: RawFd, data: &[u8]) {
    // SAFETY: fd 1 or 2 stays open for the life of the process, and
    // ManuallyDrop keeps this File from closing it.
    let mut out = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    let _ = out.write_all(data);
}

pub async fn run(client: &Client, a: RunArgs) -> Result<i32> {
    use pb::run_container_response::Event as E;
    let c = &a.create;
    let attach = Attach::new(c.interactive && !a.detach, c.tty, &a.keys.detach_keys)?;
    super::pull::before_create(client, c).await?;
    let first = pb::RunContainerRequest {
        name: c.name.clone().unwrap_or_default(),
        config: Some(config(c)?),
        detach: a.detach,
        size: attach.size(),
        input: None,
        direct_stdio: false,
    };
    let classify = |r: pb::RunContainerResponse| match r.event {
        Some(E::Id(id)) => Event::Id(id),
        Some(E::Stdout(d)) => Event::Stdout(d),
        Some(E::Stderr(d)) => Event::Stderr(d),
        Some(E::ExitCode(code)) => Event::Exit(code),
        Some(E::StdioSocket(_)) | None => Event::Other,
    };
    if a.detach {
        let requests = tokio_stream::once(first);
        let mut stream = client.containers().run_container(requests).await?.into_inner();
        while let Some(msg) = stream.next().await {
            if let Event::Id(id) = classify(msg?) {
                println!("{id}");
            }
        }
        return Ok(0);
    }
    // With a terminal, Ctrl-C is a byte for the container, not a signal here.
    let proxy = a.sig_proxy && !c.tty;
    if !c.tty && direct::eligible(attach.stdin) {
        let first = pb::RunContainerRequest { direct_stdio: true, ..first };
        return run_direct(client, first, attach.stdin, proxy, &a.keys.detach_keys).await;
    }
    let wrap = |i| pb::RunContainerRequest { input: Some(i), ..Default::default() };
    let (input, requests) = open_input(first, &attach, wrap)?;
    let stream = client.containers().run_container(requests).await?.into_inner();
    Ok(pump(client, stream, classify, &input, None, proxy).await?.unwrap_or(0))
}

/// A foreground `run` whose stdio the container's shim takes over
/// (`direct`); a client that cannot reach the shim attaches through the
/// daemon instead.
async fn run_direct(
    client: &Client,
    first: pb::RunContainerRequest,
    stdin: bool,
    proxy: bool,
    keys: &str,
) -> Result<i32> {
    use pb::run_container_response::Event as E;
    let stream = client.containers().run_container(tokio_stream::once(first)).await?.into_inner();
    let classify = |r: pb::RunContainerResponse| match r.event {
        Some(E::Id(id)) => Event::Id(id),
        Some(E::StdioSocket(path)) => Event::Socket(path),
        Some(E::ExitCode(code)) => Event::Exit(code),
        _ => Event::Other,
    };
    match direct_stream(client, stream, classify, stdin, proxy).await? {
        Ok(code) => Ok(code),
        Err(id) => attach_to(client, id, stdin, proxy, false, keys).await,
    }
}

/// A stream whose process's stdio the shim takes over (`direct`): the
/// daemon's stream carries the id, the shim's socket and the exit code;
/// the shim's connection says when the output is complete. `Err(id)` when
/// the shim cannot be reached (before anything ran on our stdio).
async fn direct_stream<Resp>(
    client: &Client,
    mut stream: tonic::Streaming<Resp>,
    classify: fn(Resp) -> Event,
    stdin: bool,
    proxy: bool,
) -> Result<std::result::Result<i32, String>> {
    let ended = || CliError::new("the daemon ended the stream before the process exited");
    let (mut id, mut sock) = (None, None);
    while sock.is_none() {
        match stream.next().await.transpose()?.map(classify) {
            Some(Event::Id(i)) => id = Some(i),
            Some(Event::Socket(path)) => sock = Some(path),
            _ => return Err(ended()),
        }
    }
    let (Some(id), Some(sock)) = (id, sock) else { return Err(ended()) };
    // Signals are ours to forward before the first output can appear.
    let mut sig_proxy = proxy.then(|| SigProxy::new(id.clone())).transpose()?;
    let Ok(mut link) = direct::ShimLink::connect(&sock, stdin) else { return Ok(Err(id)) };
    // The shim's code once our output is all written; the daemon's once
    // the process is handled (`--rm` included), which is the one we return.
    let mut shim: Option<Option<i32>> = None;
    loop {
        tokio::select! {
            code = link.exit_code(), if shim.is_none() => shim = Some(code),
            msg = stream.next() => {
                let daemon = match msg.map(|m| m.map(classify)) {
                    Some(Ok(Event::Exit(code))) => Some(code),
                    Some(Ok(_)) => continue,
                    // The daemon went away: the shim still knows the code.
                    Some(Err(_)) | None => None,
                };
                let shim = match shim {
                    Some(code) => code,
                    None => link.exit_code().await,
                };
                return daemon.or(shim).map(Ok).ok_or_else(ended);
            }
            Some((sig, id)) = next_signal(&mut sig_proxy) => forward_signal(client, id, sig),
        }
    }
}

/// `start`: each container in turn; with `-a`, one, attached.
pub async fn start(client: &Client, a: StartArgs) -> Result<i32> {
    if !a.attach && !a.interactive {
        return super::for_each(a.containers, |container| async move {
            client.containers().start_container(pb::StartContainerRequest { container: container.clone() }).await?;
            println!("{container}");
            Ok(())
        })
        .await;
    }
    let [container] = <[String; 1]>::try_from(a.containers)
        .map_err(|_| CliError::new("you cannot start and attach multiple containers at once"))?;
    attach_to(client, container, a.interactive, true, true, &a.keys.detach_keys).await
}

pub async fn attach(client: &Client, a: AttachArgs) -> Result<i32> {
    attach_to(client, a.container, !a.no_stdin, a.sig_proxy, false, &a.keys.detach_keys).await
}

async fn attach_to(
    client: &Client,
    container: String,
    stdin: bool,
    sig_proxy: bool,
    start: bool,
    keys: &str,
) -> Result<i32> {
    use pb::attach_container_response::Event as E;
    let req = pb::InspectContainerRequest { container: container.clone() };
    let info = client.containers().inspect_container(req).await?.into_inner().container.unwrap_or_default();
    let cfg = info.config.unwrap_or_default();
    // As docker: stdin is attached only if the container keeps it open.
    let attach = Attach::new(stdin && cfg.open_stdin, cfg.tty, keys)?;
    let first = pb::AttachContainerRequest {
        container: info.id.clone(),
        stdin: attach.stdin,
        stdout: true,
        stderr: true,
        start,
        size: attach.size(),
        input: None,
    };
    let wrap = |i| pb::AttachContainerRequest { input: Some(i), ..Default::default() };
    let (input, requests) = open_input(first, &attach, wrap)?;
    let stream = client.containers().attach_container(requests).await?.into_inner();
    let classify = |r: pb::AttachContainerResponse| match r.event {
        Some(E::Stdout(d)) => Event::Stdout(d),
        Some(E::Stderr(d)) => Event::Stderr(d),
        Some(E::ExitCode(code)) => Event::Exit(code),
        None => Event::Other,
    };
    let proxy = (sig_proxy && !cfg.tty).then(|| SigProxy::new(info.id)).transpose()?;
    Ok(pump(client, stream, classify, &input, proxy, false).await?.unwrap_or(0))
}

pub async fn exec(client: &Client, a: ExecArgs) -> Result<i32> {
    use pb::exec_container_response::Event as E;
    let attach = Attach::new(a.interactive && !a.detach, a.tty, &a.keys.detach_keys)?;
    let first = pb::ExecContainerRequest {
        container: a.container,
        cmd: a.cmd,
        env: super::container::env_entries(&a.env),
        working_dir: a.workdir.unwrap_or_default(),
        user: a.user.unwrap_or_default(),
        stdin: attach.stdin,
        tty: a.tty,
        detach: a.detach,
        privileged: a.privileged,
        size: attach.size(),
        input: None,
        direct_stdio: false,
    };
    let classify = |r: pb::ExecContainerResponse| match r.event {
        Some(E::ExecId(id)) => Event::Id(id),
        Some(E::StdioSocket(path)) => Event::Socket(path),
        Some(E::Stdout(d)) => Event::Stdout(d),
        Some(E::Stderr(d)) => Event::Stderr(d),
        Some(E::ExitCode(code)) => Event::Exit(code),
        None => Event::Other,
    };
    if a.detach {
        let mut stream = client.containers().exec_container(tokio_stream::once(first)).await?.into_inner();
        while let Some(msg) = stream.next().await {
            msg?;
        }
        return Ok(0);
    }
    // An exec has no relay to fall back on once started: only a client
    // that can reach the shim's socket (root) asks for the direct path.
    if !a.tty && direct::eligible(attach.stdin) && direct::may_reach_shims() {
        let first = pb::ExecContainerRequest { direct_stdio: true, ..first };
        let stream = client.containers().exec_container(tokio_stream::once(first)).await?.into_inner();
        let unreachable = |_| CliError::new("cannot reach the exec's shim; try RUNTIMECTL_DIRECT_STDIO=0");
        return direct_stream(client, stream, classify, attach.stdin, false).await?.map_err(unreachable);
    }
    let wrap = |i| pb::ExecContainerRequest { input: Some(i), ..Default::default() };
    let (input, requests) = open_input(first, &attach, wrap)?;
    let stream = client.containers().exec_container(requests).await?.into_inner();
    Ok(pump(client, stream, classify, &input, None, false).await?.unwrap_or(0))
}

/// Signals a user sends to a foreground client go to the container, as
/// with docker's `--sig-proxy` (the default): Ctrl-C stops the container
/// rather than leaving it running without its client.
struct SigProxy {
    id: String,
    rx: mpsc::UnboundedReceiver<&'static str>,
}

impl SigProxy {
    fn new(id: String) -> Result<SigProxy> {
        use tokio::signal::unix::{signal, SignalKind};
        let (tx, rx) = mpsc::unbounded_channel();
        let kinds = [
            (SignalKind::interrupt(), "INT"),
            (SignalKind::terminate(), "TERM"),
            (SignalKind::hangup(), "HUP"),
            (SignalKind::quit(), "QUIT"),
            (SignalKind::user_defined1(), "USR1"),
            (SignalKind::user_defined2(), "USR2"),
        ];
        for (kind, name) in kinds {
            let mut stream = signal(kind).map_err(|e| CliError::new(format!("listen for SIG{name}: {e}")))?;
            let tx = tx.clone();
            tokio::spawn(async move { while stream.recv().await.is_some() && tx.send(name).is_ok() {} });
        }
        Ok(SigProxy { id, rx })
    }
}

/// The next signal to forward, and to which container; pending forever
/// when not proxying.
async fn next_signal(proxy: &mut Option<SigProxy>) -> Option<(&'static str, String)> {
    match proxy {
        Some(p) => p.rx.recv().await.map(|sig| (sig, p.id.clone())),
        None => std::future::pending().await,
    }
}

fn forward_signal(client: &Client, container: String, signal: &'static str) {
    let mut containers = client.containers();
    tokio::spawn(async move {
        let req = pb::KillContainerRequest { container, signal: signal.to_string() };
        if let Err(status) = containers.kill_container(req).await {
            eprintln!("runtimectl: forward SIG{signal}: {}", status.message());
        }
    });
}
