//! The socket keeper (`runtimed keeper`): a small process per daemon that
//! holds duplicates of the daemon's listening sockets, so they stay open
//! while the daemon restarts.
//!
//! Containers resolve names through the daemon's DNS servers. When the
//! daemon dies, a closed port makes every lookup fail at once ("Temporary
//! failure in name resolution"); a socket the keeper still holds instead
//! queues the queries, and the restarted daemon takes the same socket back
//! and answers them, within the resolvers' timeout.
//!
//! Protocol: one request per connection on a unix socket, a line of text
//! (`PUT key`, `GET key`, `DEL key`) with the file descriptor passed as
//! SCM_RIGHTS (with PUT, and in the answer to GET). The keeper leaves when
//! its socket file is removed.

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Longest request or answer line.
const MAX_LINE: usize = 512;
/// How often the keeper checks that its socket file still exists.
const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(clap::Args)]
pub struct KeeperArgs {
    /// The unix socket to serve on.
    #[arg(long)]
    socket: PathBuf,
}

/// The daemon's handle on its keeper.
#[derive(Clone, Debug)]
pub struct Keeper {
    socket: PathBuf,
}

impl Keeper {
    /// Connects to the keeper at `socket`, starting one (`exe keeper`) if
    /// none answers.
    pub fn ensure(exe: &Path, socket: &Path) -> std::io::Result<Keeper> {
        let keeper = Keeper { socket: socket.to_path_buf() };
        if UnixStream::connect(socket).is_ok() {
            return Ok(keeper);
        }
        let _ = std::fs::remove_file(socket);
        // The keeper forks away at once; waiting for it reaps the parent.
        std::process::Command::new(exe).arg("keeper").arg("--socket").arg(socket).status()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while UnixStream::connect(socket).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the socket keeper did not start"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(keeper)
    }

    /// Gives the keeper a duplicate of `fd` under `key`.
    pub fn put(&self, key: &str, fd: BorrowedFd) -> std::io::Result<()> {
        self.request(&format!("PUT {key}"), Some(fd)).map(drop)
    }

    /// The socket kept under `key`, if any.
    pub fn get(&self, key: &str) -> std::io::Result<Option<OwnedFd>> {
        self.request(&format!("GET {key}"), None)
    }

    /// Closes the keeper's copy of `key`.
    pub fn del(&self, key: &str) -> std::io::Result<()> {
        self.request(&format!("DEL {key}"), None).map(drop)
    }

    fn request(&self, line: &str, fd: Option<BorrowedFd>) -> std::io::Result<Option<OwnedFd>> {
        let conn = UnixStream::connect(&self.socket)?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        send(&conn, line, fd)?;
        let (answer, fd) = receive(&conn)?;
        match answer.as_str() {
            "OK" => Ok(fd),
            other => Err(std::io::Error::other(format!("socket keeper: {other}"))),
        }
    }
}

/// `runtimed keeper`: forks away from the daemon and serves until its
/// socket file is gone.
pub fn main(args: KeeperArgs) -> ExitCode {
    // SAFETY: called before any thread exists.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return ExitCode::SUCCESS,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(_) => return ExitCode::FAILURE,
    }
    let _ = nix::unistd::setsid();
    // Hold none of the daemon's output pipes: whoever reads them waits
    // for their end, which would come only when the keeper leaves.
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..=2 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let listener = match UnixListener::bind(&args.socket) {
        Ok(l) => l,
        Err(_) => return ExitCode::FAILURE,
    };
    let _ = listener.set_nonblocking(true);
    serve(&listener, &args.socket);
    ExitCode::SUCCESS
}

fn serve(listener: &UnixListener, path: &Path) {
    let mut kept: HashMap<String, OwnedFd> = HashMap::new();
    loop {
        let mut fds = [nix::poll::PollFd::new(listener.as_fd(), nix::poll::PollFlags::POLLIN)];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(CHECK_EVERY.as_millis() as u16));
        if !path.exists() {
            return;
        }
        while let Ok((conn, _)) = listener.accept() {
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = answer(&conn, &mut kept);
        }
    }
}

fn answer(conn: &UnixStream, kept: &mut HashMap<String, OwnedFd>) -> std::io::Result<()> {
    let (line, fd) = receive(conn)?;
    match line.split_once(' ') {
        Some(("PUT", key)) => match fd {
            Some(fd) => {
                kept.insert(key.to_string(), fd);
                send(conn, "OK", None)
            }
            None => send(conn, "PUT needs a file descriptor", None),
        },
        Some(("GET", key)) => send(conn, "OK", kept.get(key).map(|fd| fd.as_fd())),
        Some(("DEL", key)) => {
            kept.remove(key);
            send(conn, "OK", None)
        }
        _ => send(conn, "unknown request", None),
    }
}

fn send(conn: &UnixStream, line: &str, fd: Option<BorrowedFd>) -> std::io::Result<()> {
    let raw = fd.map(|f| [f.as_raw_fd()]);
    let cmsgs: Vec<ControlMessage> = raw.as_ref().map(|r| ControlMessage::ScmRights(r)).into_iter().collect();
    sendmsg::<()>(conn.as_raw_fd(), &[IoSlice::new(line.as_bytes())], &cmsgs, MsgFlags::empty(), None)?;
    Ok(())
}

fn receive(conn: &UnixStream) -> std::io::Result<(String, Option<OwnedFd>)> {
    let mut buf = [0u8; MAX_LINE];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fd = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: the kernel just installed these descriptors for us.
            fd = fds.first().map(|&raw| unsafe { OwnedFd::from_raw_fd(raw) });
        }
    }
    let len = msg.bytes;
    Ok((String::from_utf8_lossy(&buf[..len]).into_owned(), fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_socket_comes_back_and_goes_on_del() {
        let dir = std::env::temp_dir().join(format!("keeper-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let server_path = path.clone();
        let server = std::thread::spawn(move || serve(&listener, &server_path));
        let keeper = Keeper { socket: path.clone() };
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        keeper.put("dns-udp", udp.as_fd()).unwrap();
        drop(udp);
        let back = std::net::UdpSocket::from(keeper.get("dns-udp").unwrap().expect("kept"));
        assert_eq!(back.local_addr().unwrap(), addr);
        keeper.del("dns-udp").unwrap();
        assert!(keeper.get("dns-udp").unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
        server.join().unwrap();
    }
}
