//! Relays between a gRPC stream and a shim connection: a client's input
//! requests become frames to the shim, the shim's frames become responses.
//! Bytes pass through untouched.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use runtime_proto::v1 as pb;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::container::shim_client::{FrameReader, FrameWriter, ShimConn};
use crate::error::{Error, Result};
use crate::shim::frame::{Frame, MAX_PAYLOAD};

/// What a stream tells its client.
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
    Exit(i32),
}

/// Responses of an attached stream, in the caller's message type.
pub type Responses<T> = mpsc::Receiver<std::result::Result<T, Status>>;

/// Relays until the process exits (then `finish` turns the shim's exit
/// code, if it sent one, into the code the client gets), the client
/// detaches, or the client goes away.
pub fn relay<Req, Resp, Fut>(
    conn: ShimConn,
    input: Streaming<Req>,
    take: fn(Req) -> Option<pb::StreamInput>,
    wrap: fn(Output) -> Resp,
    finish: impl FnOnce(Option<i32>) -> Fut + Send + 'static,
) -> Responses<Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    Fut: Future<Output = Result<i32>> + Send,
{
    let (tx, rx) = mpsc::channel(16);
    let (detach_tx, detach_rx) = mpsc::channel(1);
    tokio::spawn(forward_input(input, take, conn.writer, detach_tx));
    tokio::spawn(async move {
        let code = match forward_output(conn.reader, &tx, wrap, detach_rx).await {
            Some(code) => code,
            None => return,
        };
        let last = finish(code).await.map(|c| wrap(Output::Exit(c))).map_err(Status::from);
        let _ = tx.send(last).await;
    });
    rx
}

/// Copies the shim's output to the client. `None` when the stream should
/// end without an exit code (detach, client gone); else the shim's code.
async fn forward_output<Resp>(
    mut reader: FrameReader,
    tx: &mpsc::Sender<std::result::Result<Resp, Status>>,
    wrap: fn(Output) -> Resp,
    mut detached: mpsc::Receiver<()>,
) -> Option<Option<i32>> {
    loop {
        let frame = tokio::select! {
            f = reader.recv() => f,
            Some(()) = detached.recv() => return None,
            _ = tx.closed() => return None,
        };
        let out = match frame {
            Ok(Some(Frame::Stdout(d))) => Output::Stdout(d),
            Ok(Some(Frame::Stderr(d))) => Output::Stderr(d),
            Ok(Some(Frame::Exit(code))) => return Some(Some(code)),
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return Some(None),
        };
        if tx.send(Ok(wrap(out))).await.is_err() {
            return None;
        }
    }
}

/// Copies the client's input to the shim. The writer is kept until the
/// output ends: dropping it would shut the socket down, and the shim would
/// take that for a client that left.
async fn forward_input<Req>(
    mut input: Streaming<Req>,
    take: fn(Req) -> Option<pb::StreamInput>,
    mut w: FrameWriter,
    detach: mpsc::Sender<()>,
) {
    use pb::stream_input::Input;
    loop {
        let msg = match input.message().await {
            Ok(Some(msg)) => msg,
            // The client has nothing more to send: its stdin ended.
            Ok(None) => {
                let _ = w.send(&Frame::CloseStdin).await;
                detach.closed().await;
                return;
            }
            Err(_) => {
                let _ = detach.send(()).await;
                return;
            }
        };
        let sent = match take(msg).and_then(|i| i.input) {
            Some(Input::Stdin(data)) => send_stdin(&mut w, &data).await,
            Some(Input::CloseStdin(true)) => w.send(&Frame::CloseStdin).await,
            Some(Input::Resize(size)) => w.send(&resize(&size)).await,
            Some(Input::Detach(true)) => {
                let _ = detach.send(()).await;
                return;
            }
            _ => Ok(()),
        };
        if sent.is_err() {
            return;
        }
    }
}

async fn send_stdin(w: &mut FrameWriter, data: &[u8]) -> std::io::Result<()> {
    for chunk in data.chunks(MAX_PAYLOAD) {
        w.send_stdin(chunk).await?;
    }
    Ok(())
}

fn resize(size: &pb::TerminalSize) -> Frame {
    Frame::Resize { rows: clamp(size.rows), cols: clamp(size.cols) }
}

fn clamp(n: u32) -> u16 {
    n.min(u16::MAX as u32) as u16
}

/// A terminal size from a request, if it gave one.
pub fn size(size: Option<pb::TerminalSize>) -> Option<(u16, u16)> {
    size.filter(|s| s.rows > 0 && s.cols > 0).map(|s| (clamp(s.rows), clamp(s.cols)))
}

/// Output of a process collected whole.
pub struct Collected {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Collects a process's output until it exits; past `cap` bytes or
/// `timeout`, kills it (through its shim) and fails.
pub async fn collect(conn: ShimConn, cap: usize, timeout: Option<Duration>) -> Result<Collected> {
    let ShimConn { mut reader, mut writer } = conn;
    let mut out = Collected { exit_code: 0, stdout: Vec::new(), stderr: Vec::new() };
    let read_all = async {
        loop {
            match reader.recv().await {
                Ok(Some(Frame::Stdout(d))) => out.stdout.extend_from_slice(&d),
                Ok(Some(Frame::Stderr(d))) => out.stderr.extend_from_slice(&d),
                Ok(Some(Frame::Exit(code))) => return Ok(code),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    return Err(Error::internal("the exec process's shim ended without its exit code"))
                }
            }
            if out.stdout.len() + out.stderr.len() > cap {
                return Err(Error::OutOfRange(format!(
                    "exec output exceeds {} MiB; use the streaming ExecContainer",
                    cap >> 20
                )));
            }
        }
    };
    let result = match timeout {
        Some(t) => tokio::time::timeout(t, read_all)
            .await
            .unwrap_or_else(|_| Err(Error::DeadlineExceeded(format!("exec did not finish within {}s", t.as_secs())))),
        None => read_all.await,
    };
    match result {
        Ok(code) => Ok(Collected { exit_code: code, ..out }),
        Err(e) => {
            let _ = writer.send(&Frame::Signal(libc::SIGKILL)).await;
            Err(e)
        }
    }
}
