//! Overlay networks: across the cluster. The network and its addresses are
//! claimed in the cluster store (`cluster::ops`); on a node the data plane
//! is a bridge plus a VXLAN device, up only while local containers use it
//! (`network::overlay`). Containers leave through the gateway network.

use std::net::Ipv4Addr;

use futures::future::BoxFuture;

use super::{NetworkDriver, Scope};
use crate::cluster::ops::OverlayRequest;
use crate::error::{Error, Result};
use crate::network::manager::{dns_names, AttachRequest, NetworkRequest, Networks};
use crate::network::record::{Endpoint, NetworkRecord};
use crate::network::subnet;

pub struct OverlayDriver;

async fn create(nets: &Networks, req: NetworkRequest) -> Result<NetworkRecord> {
    let cluster = nets.cluster()?;
    if req.internal {
        return Err(Error::InvalidArgument("overlay networks cannot be internal".into()));
    }
    req.mtu.map(subnet::check_mtu).transpose()?;
    let local = nets.in_use().await?.nets;
    let ask = OverlayRequest { name: req.name, subnet: req.subnet, gateway: req.gateway, mtu: req.mtu };
    let rec = cluster.create_network(&ask, &local).await?;
    nets.store.networks.put(&rec.id, &rec).await?;
    Ok(rec)
}

/// Only a node that carried the network before the restart brings its data
/// plane back (its DNS server must run again); others wait for a container.
async fn restore(nets: &Networks, net: &NetworkRecord) -> Result<()> {
    if nets.host.link_index(&net.bridge).await?.is_none() {
        return Ok(());
    }
    nets.firewall_keep_overlay(net)?;
    if let Err(e) = nets.overlay_up(net).await {
        tracing::warn!(network = net.name, "overlay network: {e}");
    }
    Ok(())
}

/// Claims the address in the cluster with the names other nodes resolve.
async fn allocate(nets: &Networks, net: &NetworkRecord, container_id: &str, req: &AttachRequest) -> Result<Ipv4Addr> {
    let names = dns_names(&req.name, container_id, &req.aliases);
    let record =
        |ip| nets.cluster_endpoint(&net.id, ip, req.mac_for(ip), container_id, names.clone()).expect("cluster present");
    Ok(nets.cluster()?.allocate(net, req.ip, record).await?.ip)
}

/// A failed release is only logged: the address goes with this session's
/// lease.
async fn release(nets: &Networks, ep: &Endpoint) -> Result<()> {
    let res = match nets.cluster() {
        Ok(cluster) => cluster.release(&ep.network_id, ep.ip).await,
        Err(e) => Err(e),
    };
    if let Err(e) = res {
        tracing::warn!("release {} on {}: {e}", ep.ip, ep.network);
    }
    Ok(())
}

impl NetworkDriver for OverlayDriver {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn scope(&self) -> Scope {
        Scope::Global
    }

    fn create<'a>(&'a self, nets: &'a Networks, req: NetworkRequest) -> BoxFuture<'a, Result<NetworkRecord>> {
        Box::pin(create(nets, req))
    }

    fn remove<'a>(&'a self, nets: &'a Networks, net: &'a NetworkRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            nets.cluster()?.remove_network(net).await?;
            nets.store.networks.remove(&net.id).await?;
            nets.overlay_down_if_unused(net).await;
            Ok(())
        })
    }

    fn restore<'a>(&'a self, nets: &'a Networks, net: &'a NetworkRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(restore(nets, net))
    }

    fn allocate<'a>(
        &'a self,
        nets: &'a Networks,
        net: &'a NetworkRecord,
        container_id: &'a str,
        req: &'a AttachRequest,
    ) -> BoxFuture<'a, Result<Ipv4Addr>> {
        Box::pin(allocate(nets, net, container_id, req))
    }

    fn release<'a>(&'a self, nets: &'a Networks, ep: &'a Endpoint) -> BoxFuture<'a, Result<()>> {
        Box::pin(release(nets, ep))
    }

    fn data_plane<'a>(&'a self, nets: &'a Networks, net: &'a NetworkRecord) -> BoxFuture<'a, Result<(u32, u32)>> {
        Box::pin(nets.overlay_up(net))
    }

    /// Only the subnet goes through the overlay; the default route is the
    /// gateway leg's, whose ports are isolated from each other so it
    /// connects no two overlay networks.
    fn routes_default(&self) -> bool {
        false
    }

    fn needs_gateway_leg(&self) -> bool {
        true
    }

    fn endpoint_left<'a>(&'a self, nets: &'a Networks, net: &'a NetworkRecord) -> BoxFuture<'a, ()> {
        Box::pin(nets.overlay_down_if_unused(net))
    }
}
