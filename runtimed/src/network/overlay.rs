//! Overlay networks on this node. The network itself lives in the cluster
//! store; here it is mirrored into the local store (so `network ls` and
//! restarts see it without etcd) and, while a local container uses it,
//! carried by a bridge with the gateway address and a VXLAN device. A task
//! follows the cluster state and keeps the VXLAN device's static FDB and
//! neighbour entries and the network's DNS names equal to what the store
//! says runs on the other nodes.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::manager::{dns_names, Networks};
use super::record::{format_mac, NetworkRecord};
use super::vxlan::Remote;
use crate::cluster::{Cluster, ClusterEndpoint, ClusterState};
use crate::error::{Error, Result};
use crate::firewall::NetworkRules;

/// Bytes VXLAN adds: outer Ethernet, IPv4, UDP and VXLAN headers.
const VXLAN_OVERHEAD: u32 = 50;

impl Networks {
    pub(super) fn cluster(&self) -> Result<&Cluster> {
        self.cluster.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(
                "overlay networks need a cluster: start runtimed with --cluster-store etcd://HOST:PORT --advertise ADDRESS"
                    .into(),
            )
        })
    }

    pub fn cluster_handle(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// The bridge and VXLAN device of `net`, created if missing; returns the
    /// bridge's index and the MTU containers get. Firewall rules and VXLAN
    /// entries outlive a daemon restart, so only a new data plane needs them.
    pub(super) async fn overlay_up(&self, net: &NetworkRecord) -> Result<(u32, u32)> {
        let cluster = self.cluster()?;
        let vni = net.vni.ok_or_else(|| Error::internal(format!("network {} has no VXLAN id", net.name)))?;
        let _one = self.overlay_lock.lock().await;
        let (underlay, underlay_mtu) = self.host.link_of_address(cluster.advertise()).await?;
        let mtu = if net.mtu == 0 { underlay_mtu - VXLAN_OVERHEAD } else { net.mtu };
        let fresh = self.host.link_index(&vxlan_name(vni)).await?.is_none();
        let bridge = self.host.ensure_bridge(&net.bridge, net.gateway_net(), mtu).await?;
        self.host.ensure_vxlan(&vxlan_name(vni), vni, underlay, cluster.advertise(), bridge, mtu).await?;
        if fresh {
            let rules = NetworkRules { bridge: net.bridge.clone(), subnet: net.subnet, internal: false };
            self.firewall_add_network(&rules)?;
            self.sync_network(net, &cluster.snapshot()).await;
        }
        self.start_dns(net).await?;
        Ok((bridge, mtu))
    }

    /// Removes the data plane of `net` once no local container uses it
    /// (as stored: callers update the container record first).
    pub(super) async fn overlay_down_if_unused(&self, net: &NetworkRecord) {
        let _one = self.overlay_lock.lock().await;
        let used = self
            .store
            .containers
            .list()
            .map(|all| all.iter().any(|c| c.endpoints.iter().any(|e| e.network_id == net.id)));
        if !matches!(used, Ok(false)) {
            return;
        }
        if let Some(vni) = net.vni {
            if let Ok(Some(index)) = self.host.link_index(&vxlan_name(vni)).await {
                self.programmed.lock().expect("programmed lock").remove(&index);
            }
            if let Err(e) = self.host.delete_link(&vxlan_name(vni)).await {
                tracing::warn!("{e}");
            }
        }
        self.teardown(net).await;
    }

    /// The record other nodes see for a local endpoint.
    pub(super) fn cluster_endpoint(
        &self,
        network_id: &str,
        ip: Ipv4Addr,
        mac: [u8; 6],
        container_id: &str,
        names: Vec<String>,
    ) -> Option<ClusterEndpoint> {
        let cluster = self.cluster.as_ref()?;
        Some(ClusterEndpoint {
            network_id: network_id.to_string(),
            ip,
            mac,
            container_id: container_id.to_string(),
            names,
            node: cluster.node_id().to_string(),
            vtep: cluster.advertise(),
        })
    }

    /// This node's endpoints on overlay networks, as the cluster stores them.
    fn local_endpoints(&self) -> Result<Vec<ClusterEndpoint>> {
        let mut out = Vec::new();
        for rec in self.store.containers.list()? {
            for ep in &rec.endpoints {
                if self.resolve(&ep.network_id).is_ok_and(|n| n.is_overlay()) {
                    let names = dns_names(&rec.name, &rec.id, &ep.aliases);
                    out.extend(self.cluster_endpoint(&ep.network_id, ep.ip, ep.mac, &rec.id, names));
                }
            }
        }
        Ok(out)
    }

    /// Joins the cluster with this node's endpoints (as stored) and follows it.
    pub fn start_cluster(&self) -> Result<()> {
        let Some(cluster) = self.cluster.clone() else { return Ok(()) };
        cluster.start(self.local_endpoints()?);
        let this = self.clone();
        let mut changes = cluster.subscribe();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let snap = cluster.snapshot();
                if snap.synced {
                    this.follow(&snap).await;
                }
            }
        });
        Ok(())
    }

    /// Mirrors overlay networks into the local store and reprograms every
    /// local overlay data plane.
    async fn follow(&self, snap: &ClusterState) {
        if let Err(e) = self.mirror(snap).await {
            tracing::warn!("mirror overlay networks: {e}");
        }
        // Not while a data plane is being set up or torn down.
        let _one = self.overlay_lock.lock().await;
        for net in snap.networks.values() {
            self.sync_network(net, snap).await;
        }
    }

    async fn mirror(&self, snap: &ClusterState) -> Result<()> {
        let local = self.store.networks.list()?;
        let known: HashSet<&str> = local.iter().map(|n| n.id.as_str()).collect();
        for net in snap.networks.values().filter(|n| !known.contains(n.id.as_str())) {
            if local.iter().any(|l| l.name == net.name) {
                tracing::warn!(
                    network = net.name,
                    "a local network has the name of this overlay network; the overlay is not usable here"
                );
                continue;
            }
            tracing::info!(network = net.name, vni = net.vni, "overlay network appeared");
            self.store.networks.put(&net.id, net).await?;
        }
        let live: HashSet<&str> = snap.networks.values().map(|n| n.id.as_str()).collect();
        for net in local.iter().filter(|n| n.is_overlay() && !live.contains(n.id.as_str())) {
            tracing::info!(network = net.name, "overlay network removed");
            self.store.networks.remove(&net.id).await?;
            self.overlay_down_if_unused(net).await;
        }
        Ok(())
    }

    /// Programs the VXLAN device of `net` (if this node carries it) with the
    /// endpoints of other nodes, and the DNS names with all endpoints.
    /// Callers hold `overlay_lock`.
    async fn sync_network(&self, net: &NetworkRecord, snap: &ClusterState) {
        let (Some(vni), Some(cluster)) = (net.vni, self.cluster.as_ref()) else { return };
        if !snap.synced {
            return;
        }
        let index = match self.host.link_index(&vxlan_name(vni)).await {
            Ok(Some(i)) => i,
            _ => return,
        };
        let records = self.records(&net.id);
        records.reset(snap.network_endpoints(&net.id).flat_map(|e| e.names.iter().map(|n| (n.clone(), e.ip))));
        let mut wanted: Vec<Remote> = snap
            .network_endpoints(&net.id)
            .filter(|e| e.node != cluster.node_id())
            .map(|e| Remote { mac: e.mac, ip: e.ip, vtep: e.vtep })
            .collect();
        wanted.sort();
        let programmed = self.programmed.lock().expect("programmed lock").get(&index) == Some(&wanted);
        if programmed {
            return;
        }
        let res = self.program(index, &wanted).await;
        let mut cache = self.programmed.lock().expect("programmed lock");
        match res {
            Ok(()) => cache.insert(index, wanted),
            Err(e) => {
                tracing::warn!(network = net.name, "program VXLAN entries: {e}");
                cache.remove(&index)
            }
        };
    }

    /// Deletes stale FDB and neighbour entries, then adds missing ones.
    async fn program(&self, index: u32, wanted: &[Remote]) -> Result<()> {
        let (fdb, neigh) = self.host.remotes(index).await?;
        let want_fdb: HashSet<([u8; 6], Ipv4Addr)> = wanted.iter().map(|r| (r.mac, r.vtep)).collect();
        let want_neigh: HashSet<(Ipv4Addr, [u8; 6])> = wanted.iter().map(|r| (r.ip, r.mac)).collect();
        for (mac, vtep) in &fdb {
            if !want_fdb.contains(&(*mac, *vtep)) {
                tracing::debug!(index, mac = format_mac(mac), %vtep, "drop FDB entry");
                self.host.delete_fdb(index, *mac, *vtep).await?;
            }
        }
        for (ip, mac) in &neigh {
            if !want_neigh.contains(&(*ip, *mac)) {
                self.host.delete_neighbour(index, *ip).await?;
            }
        }
        let (fdb, neigh): (HashSet<_>, HashSet<_>) = (fdb.into_iter().collect(), neigh.into_iter().collect());
        for r in wanted {
            if !fdb.contains(&(r.mac, r.vtep)) || !neigh.contains(&(r.ip, r.mac)) {
                tracing::debug!(index, ip = %r.ip, mac = format_mac(&r.mac), vtep = %r.vtep, "add FDB and neighbour entries");
                self.host.add_remote(index, r).await?;
            }
        }
        Ok(())
    }
}

pub fn vxlan_name(vni: u32) -> String {
    format!("ovx{vni}")
}
