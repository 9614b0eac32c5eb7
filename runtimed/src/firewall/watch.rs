//! nftables change notifications, straight from the kernel.
//!
//! Every committed nftables transaction (ours, `nft flush ruleset`, another
//! tool's) is multicast to the netfilter netlink group `NFNLGRP_NFTABLES`.
//! Listening there costs nothing while nothing changes, unlike polling the
//! ruleset, and needs no `nft monitor` child. The messages themselves are
//! not parsed: any change is only a reason to compare our table with what
//! it should hold (see `Firewall::repair`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    bind, recv, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use tokio::io::unix::AsyncFd;

/// `NFNLGRP_NFTABLES` from `linux/netfilter/nfnetlink.h`.
const NFNLGRP_NFTABLES: libc::c_int = 7;
/// Room for bursts (a big publish is one message per element); an overrun
/// is harmless anyway: it is reported as ENOBUFS and counts as a change.
const RECV_BUFFER: usize = 1 << 20;

/// A netlink socket subscribed to nftables changes in our network namespace.
pub struct NftEvents {
    fd: AsyncFd<OwnedFd>,
}

impl NftEvents {
    /// Subscribes; needs CAP_NET_ADMIN and a tokio runtime.
    pub fn open() -> io::Result<NftEvents> {
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        let proto = SockProtocol::NetlinkNetFilter;
        let fd = socket(AddressFamily::Netlink, SockType::Raw, flags, proto)?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        join_group(&fd, NFNLGRP_NFTABLES)?;
        // Best effort: the default buffer also works, it just overruns sooner.
        let _ = setsockopt(&fd, sockopt::RcvBuf, &RECV_BUFFER);
        // SAFETY: an OwnedFd is a valid open fd that stays the same and
        // open for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(NftEvents { fd })
    }

    /// Waits until at least one change has been reported, consuming every
    /// notification queued so far.
    pub async fn changed(&self) -> io::Result<()> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|fd| drain(fd.get_ref())) {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Lets a burst of changes end (`nft -f` of many commands, a flush
    /// followed by a reload) so it is handled once, then drops its
    /// notifications.
    pub async fn settle(&self, quiet: Duration) -> io::Result<()> {
        tokio::time::sleep(quiet).await;
        match drain(self.fd.get_ref()) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)` (nix has no
/// wrapper for it).
fn join_group(fd: &OwnedFd, group: libc::c_int) -> io::Result<()> {
    // SAFETY: the fd is a valid socket we own; the option value is a c_int
    // that lives for the duration of the call, with its size passed along.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            (&group as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Reads every queued message; the number read, or WouldBlock when there
/// was none (which is what clears tokio's readiness). ENOBUFS means the
/// kernel dropped some: still a change.
fn drain(fd: &impl AsFd) -> io::Result<usize> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut count = 0;
    loop {
        match recv(fd.as_fd().as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(_) => count += 1,
            Err(nix::errno::Errno::ENOBUFS) => count += 1,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) if count > 0 => return Ok(count),
            Err(e) => return Err(e.into()),
        }
    }
}
