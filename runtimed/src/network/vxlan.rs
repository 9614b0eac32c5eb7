//! Netlink work of the overlay data plane: the VXLAN device, its static
//! FDB entries (remote MAC -> remote node) and neighbour entries (remote IP
//! -> MAC, answered locally thanks to the device's `proxy` flag), and the
//! underlay link.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{LinkUnspec, LinkVxlan};

use crate::error::{Error, Result};
use crate::netlink::{nl_err, Netlink};

/// IANA's VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

/// One remote endpoint as the kernel should know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Remote {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    /// The node (VXLAN tunnel endpoint) the endpoint lives on.
    pub vtep: Ipv4Addr,
}

impl Netlink {
    /// Index and MTU of the link holding `addr` (the underlay).
    pub async fn link_of_address(&self, addr: Ipv4Addr) -> Result<(u32, u32)> {
        let index =
            self.addresses().await?.into_iter().find(|(_, net)| net.addr() == addr).map(|(i, _)| i).ok_or_else(
                || Error::InvalidArgument(format!("no interface of this host has the advertised address {addr}")),
            )?;
        let mut links = self.handle.link().get().match_index(index).execute();
        let link = links.try_next().await.map_err(nl_err("get underlay link"))?;
        let mtu = link
            .and_then(|l| {
                l.attributes.into_iter().find_map(|a| if let LinkAttribute::Mtu(m) = a { Some(m) } else { None })
            })
            .unwrap_or(1500);
        Ok((index, mtu))
    }

    /// Creates the VXLAN device unless present (no learning: every entry is
    /// static; proxy: ARP for remote containers is answered locally), plugs
    /// it into `bridge` and brings it up.
    pub async fn ensure_vxlan(
        &self,
        name: &str,
        vni: u32,
        underlay: u32,
        local: Ipv4Addr,
        bridge: u32,
        mtu: u32,
    ) -> Result<u32> {
        let index = match self.link_index(name).await? {
            Some(i) => i,
            None => {
                let msg = LinkVxlan::new(name, vni)
                    .dev(underlay)
                    .local(local)
                    .port(VXLAN_PORT)
                    .learning(false)
                    .proxy(true)
                    .mtu(mtu)
                    .build();
                self.handle.link().add(msg).execute().await.map_err(nl_err(format!("add vxlan {name}")))?;
                self.require_index(name).await?
            }
        };
        self.set(LinkUnspec::new_with_index(index).controller(bridge).mtu(mtu).up().build(), name).await?;
        Ok(index)
    }

    /// The static remotes programmed on the VXLAN device `index`: FDB
    /// entries with a destination, matched with neighbour entries by MAC.
    pub async fn remotes(&self, index: u32) -> Result<(Vec<([u8; 6], Ipv4Addr)>, Vec<(Ipv4Addr, [u8; 6])>)> {
        let mut fdb = Vec::new();
        let _slot = self.dump_slot().await;
        let mut dump = self.handle.neighbours().get().set_address_family(AddressFamily::Bridge).execute();
        while let Some(msg) = dump.try_next().await.map_err(nl_err("list fdb"))? {
            if msg.header.ifindex == index {
                if let (Some(mac), Some(dst)) = (lladdr(&msg), destination(&msg)) {
                    fdb.push((mac, dst));
                }
            }
        }
        let mut neigh = Vec::new();
        let mut dump = self.handle.neighbours().get().set_address_family(AddressFamily::Inet).execute();
        while let Some(msg) = dump.try_next().await.map_err(nl_err("list neighbours"))? {
            if msg.header.ifindex == index {
                if let (Some(ip), Some(mac)) = (destination(&msg), lladdr(&msg)) {
                    neigh.push((ip, mac));
                }
            }
        }
        Ok((fdb, neigh))
    }

    /// `bridge fdb replace MAC dev VXLAN dst VTEP self permanent` and
    /// `ip neigh replace IP lladdr MAC dev VXLAN`.
    pub async fn add_remote(&self, index: u32, r: &Remote) -> Result<()> {
        self.handle
            .neighbours()
            .add_bridge(index, &r.mac)
            .destination(IpAddr::V4(r.vtep))
            .flags(NeighbourFlags::Own)
            .replace()
            .execute()
            .await
            .map_err(nl_err(format!("fdb entry for {}", r.ip)))?;
        self.handle
            .neighbours()
            .add(index, IpAddr::V4(r.ip))
            .link_layer_address(&r.mac)
            .replace()
            .execute()
            .await
            .map_err(nl_err(format!("neighbour entry for {}", r.ip)))
    }

    pub async fn delete_fdb(&self, index: u32, mac: [u8; 6], vtep: Ipv4Addr) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Own;
        msg.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        msg.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(vtep)));
        self.handle.neighbours().del(msg).execute().await.map_err(nl_err("delete fdb entry"))
    }

    pub async fn delete_neighbour(&self, index: u32, ip: Ipv4Addr) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        self.handle.neighbours().del(msg).execute().await.map_err(nl_err(format!("delete neighbour {ip}")))
    }
}

fn lladdr(msg: &NeighbourMessage) -> Option<[u8; 6]> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => b.as_slice().try_into().ok(),
        _ => None,
    })
}

/// The destination address; in AF_BRIDGE (FDB) messages the library
/// leaves it as raw bytes.
fn destination(msg: &NeighbourMessage) -> Option<Ipv4Addr> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
            <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from)
        }
        _ => None,
    })
}
