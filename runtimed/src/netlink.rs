//! Link, address and route work through rtnetlink, in the daemon's own
//! network namespace or inside a container's.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::{Error, Result};

pub fn nl_err(what: impl std::fmt::Display) -> impl FnOnce(rtnetlink::Error) -> Error {
    move |e| classify(&what.to_string(), e)
}

/// A refused netlink request as the error its errno means: a link that
/// exists, one that is gone, a busy kernel, or (anything else) our fault.
fn classify(what: &str, err: rtnetlink::Error) -> Error {
    let errno = match &err {
        rtnetlink::Error::NetlinkError(m) => m.to_io().raw_os_error(),
        _ => None,
    };
    let message = format!("netlink: {what}: {err}");
    match errno {
        Some(libc::EEXIST) => Error::AlreadyExists(message),
        Some(libc::ENOENT) | Some(libc::ENODEV) => Error::NotFound(message),
        Some(libc::EBUSY) | Some(libc::EAGAIN) => Error::Unavailable(message),
        // A bridge with no free port number left.
        Some(libc::EXFULL) => Error::Exhausted(message),
        _ => Error::Internal(message),
    }
}

/// A netlink connection bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    pub(super) handle: Handle,
    /// The kernel runs one dump at a time per socket (EBUSY otherwise).
    dumping: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Netlink {
    /// The daemon's own namespace ("the host").
    pub fn host() -> Result<Netlink> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| Error::io("netlink socket", e))?;
        tokio::spawn(conn);
        Ok(Netlink::with(handle))
    }

    fn with(handle: Handle) -> Netlink {
        Netlink { handle, dumping: Default::default() }
    }

    /// Holds the socket's one dump slot while listing.
    pub(super) async fn dump_slot(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.dumping.lock().await
    }

    /// A connection inside the namespace at `path`. The socket is opened on
    /// a throwaway thread that joined the namespace; a socket keeps the
    /// namespace it was created in.
    pub fn in_netns(path: &Path) -> Result<Netlink> {
        let path = path.to_path_buf();
        let rt = tokio::runtime::Handle::current();
        let (conn, handle, _) = std::thread::spawn(move || {
            let _guard = rt.enter();
            let ns = std::fs::File::open(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::internal(format!("join {}: {e}", path.display())))?;
            rtnetlink::new_connection().map_err(|e| Error::io("netlink socket", e))
        })
        .join()
        .map_err(|_| Error::internal("netns thread panicked"))??;
        tokio::spawn(conn);
        Ok(Netlink::with(handle))
    }

    pub async fn link_index(&self, name: &str) -> Result<Option<u32>> {
        let mut links = self.handle.link().get().match_name(name.to_string()).execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(Some(link.header.index)),
            Ok(None) => Ok(None),
            // The kernel answers ENODEV for an unknown name.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
            Err(e) => Err(nl_err(format!("get link {name}"))(e)),
        }
    }

    pub(super) async fn require_index(&self, name: &str) -> Result<u32> {
        self.link_index(name).await?.ok_or_else(|| Error::NotFound(format!("link {name} disappeared")))
    }

    /// Creates the bridge unless present, gives it `gateway`, sets its MTU
    /// and brings it up. Idempotent.
    pub async fn ensure_bridge(&self, name: &str, gateway: Ipv4Net, mtu: u32) -> Result<u32> {
        let index = match self.link_index(name).await? {
            Some(i) => i,
            None => {
                let msg = LinkBridge::new(name).mtu(mtu).build();
                self.handle.link().add(msg).execute().await.map_err(nl_err(format!("add bridge {name}")))?;
                self.require_index(name).await?
            }
        };
        if !self.addresses_of(index).await?.contains(&gateway) {
            self.handle
                .address()
                .add(index, gateway.addr().into(), gateway.prefix_len())
                .execute()
                .await
                .map_err(nl_err(format!("add {gateway} to {name}")))?;
        }
        self.set(LinkUnspec::new_with_index(index).mtu(mtu).up().build(), name).await?;
        Ok(index)
    }

    pub(super) async fn set(&self, msg: LinkMessage, what: &str) -> Result<()> {
        self.handle.link().set(msg).execute().await.map_err(nl_err(format!("set {what}")))
    }

    /// Creates a veth pair with the host end plugged into `bridge` (up,
    /// hairpin on, so a container can reach itself through a published port)
    /// and moves the peer into the namespace `netns`.
    /// `isolated` ports cannot talk to each other, only to the bridge itself
    /// and non-isolated ports (the gateway bridge of overlay networks).
    pub async fn add_veth_to_bridge(
        &self,
        host: &str,
        peer: &str,
        bridge: u32,
        mtu: u32,
        netns: &Path,
        isolated: bool,
    ) -> Result<()> {
        // The peer is born inside the container's namespace: moving it
        // there afterwards (RTM_SETLINK with a netns fd) waits ~18 ms in the
        // kernel's rcu_barrier while holding the rtnl lock.
        let ns = std::fs::File::open(netns).map_err(|e| Error::io(format!("open {}", netns.display()), e))?;
        let peer_msg = LinkUnspec::new_with_name(peer).mtu(mtu).setns_by_fd(ns.as_raw_fd()).build();
        let msg = LinkVeth::new(host, peer)
            .mtu(mtu)
            .controller(bridge)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.handle.link().add(msg).execute().await.map_err(nl_err(format!("add veth {host}")))?;
        let res = self.bridge_port(host, isolated).await;
        if res.is_err() {
            let _ = self.delete_link(host).await;
        }
        res
    }

    /// Hairpin (a container reaches itself through a published port) and,
    /// on the gateway bridge, isolation from the other ports.
    async fn bridge_port(&self, host: &str, isolated: bool) -> Result<()> {
        let host_idx = self.require_index(host).await?;
        let port = LinkBridgePort::new(host_idx).hairpin(true).isolated(isolated).build();
        self.handle.link().set_port(port).execute().await.map_err(nl_err(format!("hairpin {host}")))
    }

    /// Inside a container namespace: renames `from` to `to`, sets MAC,
    /// address and brings it up; with `gateway`, adds the default route.
    pub async fn configure_interface(
        &self,
        from: &str,
        to: &str,
        mac: [u8; 6],
        addr: Ipv4Net,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        let idx = self.require_index(from).await?;
        let msg = LinkUnspec::new_with_index(idx).name(to.to_string()).address(mac.to_vec()).build();
        self.set(msg, from).await?;
        self.handle
            .address()
            .add(idx, addr.addr().into(), addr.prefix_len())
            .execute()
            .await
            .map_err(nl_err(format!("add {addr} to {to}")))?;
        self.set(LinkUnspec::new_with_index(idx).up().build(), to).await?;
        if let Some(gw) = gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build();
            self.handle.route().add(route).execute().await.map_err(nl_err(format!("default route via {gw}")))?;
        }
        Ok(())
    }

    /// Deletes a link; a missing one is fine.
    pub async fn delete_link(&self, name: &str) -> Result<()> {
        match self.link_index(name).await? {
            Some(idx) => self.handle.link().del(idx).execute().await.map_err(nl_err(format!("delete {name}"))),
            None => Ok(()),
        }
    }

    async fn addresses_of(&self, index: u32) -> Result<Vec<Ipv4Net>> {
        let all = self.addresses().await?;
        Ok(all.into_iter().filter(|(i, _)| *i == index).map(|(_, n)| n).collect())
    }

    /// Every IPv4 address of the namespace with its link index.
    pub async fn addresses(&self) -> Result<Vec<(u32, Ipv4Net)>> {
        let mut out = Vec::new();
        let _slot = self.dump_slot().await;
        let mut stream = self.handle.address().get().execute();
        while let Some(msg) = stream.try_next().await.map_err(nl_err("list addresses"))? {
            for attr in &msg.attributes {
                if let AddressAttribute::Address(std::net::IpAddr::V4(ip)) = attr {
                    if let Ok(net) = Ipv4Net::new(*ip, msg.header.prefix_len) {
                        out.push((msg.header.index, net));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Destinations of the main table's IPv4 routes (the default route is
    /// skipped: it overlaps everything).
    pub async fn routes(&self) -> Result<Vec<Ipv4Net>> {
        let mut out = Vec::new();
        let req = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let _slot = self.dump_slot().await;
        let mut stream = self.handle.route().get(req).execute();
        while let Some(msg) = stream.try_next().await.map_err(nl_err("list routes"))? {
            if msg.header.destination_prefix_length == 0 || msg.header.table != 254 {
                continue;
            }
            for attr in &msg.attributes {
                if let RouteAttribute::Destination(RouteAddress::Inet(ip)) = attr {
                    if let Ok(net) = Ipv4Net::new(*ip, msg.header.destination_prefix_length) {
                        out.push(net);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod classify_tests {
    use super::*;

    fn refused(errno: i32) -> rtnetlink::Error {
        let mut msg = rtnetlink::packet_core::ErrorMessage::default();
        msg.code = std::num::NonZeroI32::new(-errno);
        rtnetlink::Error::NetlinkError(msg)
    }

    #[test]
    fn errnos_keep_their_meaning() {
        assert!(matches!(nl_err("add veth")(refused(libc::EEXIST)), Error::AlreadyExists(_)));
        assert!(matches!(nl_err("del veth")(refused(libc::ENODEV)), Error::NotFound(_)));
        assert!(matches!(nl_err("dump")(refused(libc::EBUSY)), Error::Unavailable(_)));
        let other = nl_err("set mtu")(refused(libc::EINVAL));
        assert!(matches!(&other, Error::Internal(m) if m.starts_with("netlink: set mtu: ")), "{other}");
    }
}
