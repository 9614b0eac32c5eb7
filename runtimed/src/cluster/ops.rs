//! Cluster-wide changes, each made race-free by one etcd transaction:
//! creating and removing overlay networks (VXLAN id and subnet claimed with
//! the name) and taking and freeing addresses on them.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use ipnet::Ipv4Net;

use super::state::{self, ClusterEndpoint};
use super::{json, timed, Cluster};
use crate::error::{Error, Result};
use crate::ids::random_id;
use crate::records::network::NetworkRecord;
use crate::records::subnet::{self, InUse};
use crate::store::ipam::check_assignable;
use crate::util::now_nanos;

/// The first VXLAN id handed out (docker's overlay starts at 256 too).
const FIRST_VNI: u32 = 256;
/// How often a transaction that lost a race is retried with fresh data.
const ATTEMPTS: usize = 32;

/// What `network create --driver overlay` asks for.
#[derive(Debug, Clone)]
pub struct OverlayRequest {
    pub name: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// None: each node derives it from its underlay (MTU - 50).
    pub mtu: Option<u32>,
}

impl Cluster {
    /// Creates an overlay network with a VXLAN id and subnet nobody else
    /// holds. `local` lists this node's subnets in use (host routes and
    /// addresses, local networks) with what uses them.
    pub async fn create_network(&self, req: &OverlayRequest, local: &[(Ipv4Net, String)]) -> Result<NetworkRecord> {
        self.lease()?;
        for _ in 0..ATTEMPTS {
            let nets = self.read_networks().await?;
            if nets.iter().any(|n| n.name == req.name) {
                return Err(Error::AlreadyExists(format!("network with name {} already exists", req.name)));
            }
            let mut used = InUse { nets: local.to_vec() };
            used.nets.extend(nets.iter().map(|n| (n.subnet, format!("overlay network {}", n.name))));
            let subnet = match req.subnet {
                Some(s) => subnet::check(s.trunc(), &used).map(|()| s.trunc())?,
                None => subnet::choose_overlay(&used)?,
            };
            let gateway = subnet::gateway(subnet, req.gateway)?;
            let vni = self.free_vni(&nets).await?;
            let rec = NetworkRecord {
                id: random_id(),
                name: req.name.clone(),
                driver: "overlay".into(),
                subnet,
                gateway,
                bridge: format!("ovbr{vni}"),
                internal: false,
                mtu: req.mtu.unwrap_or(0),
                created_at: now_nanos(),
                vni: Some(vni),
            };
            let keys = [state::network_key(&rec.name), state::vni_key(vni), state::subnet_key(&subnet)];
            let txn = Txn::new()
                .when(keys.iter().map(|k| Compare::version(k.as_str(), CompareOp::Equal, 0)).collect::<Vec<_>>())
                .and_then(vec![
                    TxnOp::put(keys[0].as_str(), json(&rec), None),
                    TxnOp::put(keys[1].as_str(), rec.name.as_str(), None),
                    TxnOp::put(keys[2].as_str(), rec.name.as_str(), None),
                ]);
            if timed(self.client().txn(txn)).await?.succeeded() {
                return Ok(rec);
            }
            tracing::debug!(name = rec.name, vni, %subnet, "network create lost a race; retrying");
        }
        Err(Error::Unavailable("could not create the network: too much contention".into()))
    }

    /// Removes an overlay network nobody on any node uses.
    pub async fn remove_network(&self, net: &NetworkRecord) -> Result<()> {
        self.lease()?;
        let prefix = state::endpoints_prefix(&net.id);
        let resp = timed(self.client().get(prefix.as_str(), Some(GetOptions::new().with_prefix()))).await?;
        if let Some(kv) = resp.kvs().first() {
            let ep: ClusterEndpoint = serde_json::from_slice(kv.value()).map_err(Error::internal)?;
            return Err(Error::FailedPrecondition(format!(
                "network {} is in use by container {} on node {} ({})",
                net.name,
                crate::ids::short_id(&ep.container_id),
                self.node_label(&ep.node),
                ep.ip
            )));
        }
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let mut ops = vec![TxnOp::delete(state::network_key(&net.name), None)];
        if let Some(vni) = net.vni {
            ops.push(TxnOp::delete(state::vni_key(vni), None));
        }
        ops.push(TxnOp::delete(state::subnet_key(&net.subnet), None));
        // No endpoint may have appeared since the read above.
        let txn = Txn::new()
            .when(vec![Compare::mod_revision(prefix.as_str(), CompareOp::Less, revision + 1).with_prefix()])
            .and_then(ops);
        if timed(self.client().txn(txn)).await?.succeeded() {
            Ok(())
        } else {
            Err(Error::FailedPrecondition(format!("network {} just got a container", net.name)))
        }
    }

    /// Takes an address on `net` for an endpoint built by `make`: `requested`
    /// if given and free, else the lowest free host address.
    pub async fn allocate(
        &self,
        net: &NetworkRecord,
        requested: Option<Ipv4Addr>,
        make: impl Fn(Ipv4Addr) -> ClusterEndpoint,
    ) -> Result<ClusterEndpoint> {
        let lease = self.lease()?;
        if let Some(ip) = requested {
            check_assignable(&net.pool(), ip)?;
        }
        for _ in 0..ATTEMPTS {
            let taken = self.taken(&net.id).await?;
            let ip = match requested {
                Some(ip) if taken.contains(&ip) => {
                    return Err(Error::AlreadyExists(format!("address {ip} is already in use on network {}", net.name)))
                }
                Some(ip) => ip,
                None => first_free(net, &taken)?,
            };
            let ep = make(ip);
            let key = state::endpoint_key(&net.id, ip);
            let txn = Txn::new()
                .when(vec![
                    Compare::version(state::network_key(&net.name), CompareOp::Greater, 0),
                    Compare::version(key.as_str(), CompareOp::Equal, 0),
                ])
                .and_then(vec![TxnOp::put(key.as_str(), json(&ep), Some(PutOptions::new().with_lease(lease)))]);
            if timed(self.client().txn(txn)).await?.succeeded() {
                self.remember(&ep);
                return Ok(ep);
            }
            if !self.read_networks().await?.iter().any(|n| n.id == net.id) {
                return Err(Error::NotFound(format!("network {} was removed", net.name)));
            }
        }
        Err(Error::Unavailable(format!("could not take an address on {}: too much contention", net.name)))
    }

    /// (Re)writes an endpoint this node holds under `lease`, unless another
    /// container took its address meanwhile.
    pub(super) async fn claim(&self, ep: &ClusterEndpoint, lease: i64) -> Result<()> {
        let key = state::endpoint_key(&ep.network_id, ep.ip);
        let put = TxnOp::put(key.as_str(), json(ep), Some(PutOptions::new().with_lease(lease)));
        let txn = Txn::new()
            .when(vec![Compare::version(key.as_str(), CompareOp::Equal, 0)])
            .and_then(vec![put.clone()])
            .or_else(vec![TxnOp::get(key.as_str(), None)]);
        let resp = timed(self.client().txn(txn)).await?;
        if resp.succeeded() {
            return Ok(());
        }
        let current = resp.op_responses().into_iter().find_map(|r| match r {
            etcd_client::TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        let holder: Option<ClusterEndpoint> = current.and_then(|v| serde_json::from_slice(&v).ok());
        match holder {
            Some(h) if h.container_id == ep.container_id => {
                timed(self.client().txn(Txn::new().and_then(vec![put]))).await?;
                Ok(())
            }
            Some(h) => Err(Error::AlreadyExists(format!(
                "taken by container {} on node {}",
                h.container_id,
                self.node_label(&h.node)
            ))),
            None => Err(Error::Internal("unreadable endpoint record".into())),
        }
    }

    /// Frees an address. If the store is down, the address goes when this
    /// session's lease does (the next session does not re-write it).
    pub async fn release(&self, network_id: &str, ip: Ipv4Addr) -> Result<()> {
        self.inner.local.lock().expect("local endpoints").remove(&(network_id.to_string(), ip));
        timed(self.client().delete(state::endpoint_key(network_id, ip), None)).await?;
        Ok(())
    }

    fn remember(&self, ep: &ClusterEndpoint) {
        self.inner.local.lock().expect("local endpoints").insert((ep.network_id.clone(), ep.ip), ep.clone());
    }

    async fn taken(&self, network_id: &str) -> Result<BTreeSet<Ipv4Addr>> {
        let prefix = state::endpoints_prefix(network_id);
        let opts = GetOptions::new().with_prefix().with_keys_only();
        let resp = timed(self.client().get(prefix.as_str(), Some(opts))).await?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| String::from_utf8_lossy(kv.key()).strip_prefix(&prefix)?.parse().ok())
            .collect())
    }

    async fn read_networks(&self) -> Result<Vec<NetworkRecord>> {
        let resp = timed(self.client().get(state::network_key(""), Some(GetOptions::new().with_prefix()))).await?;
        Ok(resp.kvs().iter().filter_map(|kv| serde_json::from_slice(kv.value()).ok()).collect())
    }

    async fn free_vni(&self, nets: &[NetworkRecord]) -> Result<u32> {
        let resp =
            timed(self.client().get(state::vnis_prefix(), Some(GetOptions::new().with_prefix().with_keys_only())))
                .await?;
        let mut used: BTreeSet<u32> = nets.iter().filter_map(|n| n.vni).collect();
        used.extend(
            resp.kvs()
                .iter()
                .filter_map(|kv| String::from_utf8_lossy(kv.key()).rsplit('/').next()?.parse::<u32>().ok()),
        );
        Ok((FIRST_VNI..).find(|v| !used.contains(v)).expect("a free VXLAN id"))
    }
}

fn first_free(net: &NetworkRecord, taken: &BTreeSet<Ipv4Addr>) -> Result<Ipv4Addr> {
    net.subnet.hosts().find(|ip| *ip != net.gateway && !taken.contains(ip)).ok_or_else(|| {
        Error::FailedPrecondition(format!("no free address left on network {} ({})", net.name, net.subnet))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_free_skips_gateway_and_taken() {
        let s: Ipv4Net = "10.0.5.0/24".parse().unwrap();
        let net = NetworkRecord {
            id: "x".into(),
            name: "n".into(),
            driver: "overlay".into(),
            subnet: s,
            gateway: Ipv4Addr::new(10, 0, 5, 1),
            bridge: "ovbr256".into(),
            internal: false,
            mtu: 0,
            created_at: 0,
            vni: Some(256),
        };
        let taken: BTreeSet<_> = [Ipv4Addr::new(10, 0, 5, 2)].into();
        assert_eq!(first_free(&net, &taken).unwrap(), Ipv4Addr::new(10, 0, 5, 3));
        let full: BTreeSet<_> = net.subnet.hosts().collect();
        assert!(first_free(&net, &full).is_err());
    }
}
