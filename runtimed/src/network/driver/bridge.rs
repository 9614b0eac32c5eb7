//! Bridge networks: this node only. Addresses come from the local IPAM (in
//! the store), a Linux bridge holds the gateway address, firewall rules NAT
//! the subnet out, and user-defined networks get a DNS server.

use std::net::Ipv4Addr;

use futures::future::BoxFuture;

use super::{NetworkDriver, Scope};
use crate::error::{Error, Result};
use crate::firewall::NetworkRules;
use crate::ids::random_id;
use crate::network::manager::{AttachRequest, NetworkRequest, Networks};
use crate::network::record::{Endpoint, NetworkRecord, DEFAULT_MTU};
use crate::network::subnet;
use crate::network::sysctl::write_sysctl;
use crate::util::now_nanos;

pub struct BridgeDriver;

impl BridgeDriver {
    /// Creates a bridge network on the Linux bridge `bridge` (the daemon's
    /// own networks have fixed bridge names).
    pub async fn create_on(&self, nets: &Networks, req: NetworkRequest, bridge: String) -> Result<NetworkRecord> {
        let in_use = nets.in_use().await?;
        let subnet = match req.subnet {
            Some(s) => subnet::check(s.trunc(), &in_use).map(|()| s.trunc())?,
            None => subnet::choose(&in_use)?,
        };
        let rec = NetworkRecord {
            id: random_id(),
            name: req.name,
            driver: self.name().into(),
            subnet,
            gateway: subnet::gateway(subnet, req.gateway)?,
            bridge,
            internal: req.internal,
            mtu: subnet::check_mtu(req.mtu.unwrap_or(DEFAULT_MTU))?,
            created_at: now_nanos(),
            vni: None,
        };
        if let Err(e) = setup(nets, &rec).await {
            nets.teardown(&rec).await;
            return Err(e);
        }
        nets.store.networks.put(&rec.id, &rec).await?;
        Ok(rec)
    }
}

/// Bridge up with the gateway address, local-net routing for published
/// ports on 127.0.0.1, and the network's firewall rules.
async fn setup(nets: &Networks, net: &NetworkRecord) -> Result<()> {
    nets.host.ensure_bridge(&net.bridge, net.gateway_net(), net.mtu).await?;
    write_sysctl(&format!("net/ipv4/conf/{}/route_localnet", net.bridge), "1")?;
    let rules = NetworkRules { bridge: net.bridge.clone(), subnet: net.subnet, internal: net.internal };
    nets.firewall_add_network(&rules)?;
    nets.start_dns(net).await
}

/// Refuses to remove a network while any container holds an address on it.
fn check_unused(nets: &Networks, net: &NetworkRecord) -> Result<()> {
    match nets.ipam.allocations(&net.id)?.first() {
        Some((ip, owner)) => Err(Error::FailedPrecondition(format!(
            "network {} is in use by container {} ({ip})",
            net.name,
            &owner[..owner.len().min(12)]
        ))),
        None => Ok(()),
    }
}

impl NetworkDriver for BridgeDriver {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn scope(&self) -> Scope {
        Scope::Local
    }

    fn create<'a>(&'a self, nets: &'a Networks, req: NetworkRequest) -> BoxFuture<'a, Result<NetworkRecord>> {
        Box::pin(async move {
            let bridge = format!("rt-{}", &random_id()[..10]);
            self.create_on(nets, req, bridge).await
        })
    }

    fn remove<'a>(&'a self, nets: &'a Networks, net: &'a NetworkRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            check_unused(nets, net)?;
            nets.store.networks.remove(&net.id).await?;
            nets.ipam.forget_network(&net.id)?;
            nets.teardown(net).await;
            Ok(())
        })
    }

    fn restore<'a>(&'a self, nets: &'a Networks, net: &'a NetworkRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(setup(nets, net))
    }

    fn allocate<'a>(
        &'a self,
        nets: &'a Networks,
        net: &'a NetworkRecord,
        container_id: &'a str,
        req: &'a AttachRequest,
    ) -> BoxFuture<'a, Result<Ipv4Addr>> {
        Box::pin(async move { nets.ipam.allocate(&net.pool(), req.ip, container_id) })
    }

    fn release<'a>(&'a self, nets: &'a Networks, ep: &'a Endpoint) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { nets.ipam.release(&ep.network_id, ep.ip) })
    }

    fn data_plane<'a>(&'a self, nets: &'a Networks, net: &'a NetworkRecord) -> BoxFuture<'a, Result<(u32, u32)>> {
        Box::pin(async move { Ok((nets.host.ensure_bridge(&net.bridge, net.gateway_net(), net.mtu).await?, net.mtu)) })
    }

    fn routes_default(&self) -> bool {
        true
    }

    fn needs_gateway_leg(&self) -> bool {
        false
    }

    fn endpoint_left<'a>(&'a self, _nets: &'a Networks, _net: &'a NetworkRecord) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}
