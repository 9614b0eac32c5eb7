//! What the cluster store holds and this node's cached copy of it.
//!
//! Key layout (all under [`PREFIX`]):
//! - `members/<node id>`: a node that joined once (kept, so `node ls` can
//!   say it is down). Keyed by the node's generated id, not its name, since
//!   names (hostnames of cloned machines) may repeat;
//! - `alive/<node id>`: present while the node's lease lives;
//! - `networks/<name>`: an overlay network (a [`NetworkRecord`]);
//! - `vnis/<vni>` and `subnets/<cidr>`: claims that make VXLAN ids and
//!   subnets unique (created in the same transaction as the network);
//! - `endpoints/<network id>/<ip>`: an address in use, with the container
//!   and node (id) holding it. Written under the holder's lease, so a dead node's
//!   addresses (and its FDB entries everywhere) go away with its lease.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::records::network::NetworkRecord;

pub const PREFIX: &str = "/runtimed/";

pub fn members_prefix() -> String {
    format!("{PREFIX}members/")
}
pub fn member_key(node_id: &str) -> String {
    format!("{}{node_id}", members_prefix())
}
pub fn alives_prefix() -> String {
    format!("{PREFIX}alive/")
}
pub fn alive_key(node_id: &str) -> String {
    format!("{}{node_id}", alives_prefix())
}
pub fn network_key(name: &str) -> String {
    format!("{PREFIX}networks/{name}")
}
pub fn vnis_prefix() -> String {
    format!("{PREFIX}vnis/")
}
pub fn vni_key(vni: u32) -> String {
    format!("{}{vni}", vnis_prefix())
}
pub fn subnet_key(subnet: &ipnet::Ipv4Net) -> String {
    format!("{PREFIX}subnets/{}", subnet.to_string().replace('/', "_"))
}
pub fn endpoints_prefix(network_id: &str) -> String {
    format!("{PREFIX}endpoints/{network_id}/")
}
pub fn endpoint_key(network_id: &str, ip: Ipv4Addr) -> String {
    format!("{}{ip}", endpoints_prefix(network_id))
}

/// A node as registered.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Member {
    /// The generated id (the key); records of the old layout, keyed by
    /// name, lack it and are skipped.
    pub id: String,
    /// Display name: `--node-name` or the hostname; may repeat.
    pub name: String,
    /// Underlay address: the VXLAN tunnel endpoint of this node.
    pub address: Ipv4Addr,
    pub joined_at: i64,
}

/// An address taken on an overlay network.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ClusterEndpoint {
    pub network_id: String,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub container_id: String,
    /// Names it resolves by: container name, short id, aliases.
    pub names: Vec<String>,
    /// Id of the node holding it (its FDB entries point at `vtep`).
    pub node: String,
    pub vtep: Ipv4Addr,
}

/// This node's copy of the store, kept current by the watch.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// By node id.
    pub members: BTreeMap<String, Member>,
    /// Ids of the nodes whose lease lives.
    pub alive: BTreeSet<String>,
    pub networks: BTreeMap<String, NetworkRecord>,
    /// `(network id, ip)` -> endpoint.
    pub endpoints: BTreeMap<(String, Ipv4Addr), ClusterEndpoint>,
    /// Whether the copy reflects the store (false until the first full read
    /// and while the store is unreachable).
    pub synced: bool,
}

impl ClusterState {
    /// Applies a put (`Some(value)`) or delete of `key`; unknown keys are
    /// ignored so newer nodes may add kinds of keys.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        let Some(rest) = key.strip_prefix(PREFIX) else { return };
        let Some((kind, name)) = rest.split_once('/') else { return };
        match kind {
            "members" => self.apply_member(name, value),
            "alive" => {
                if value.is_some() {
                    self.alive.insert(name.to_string());
                } else {
                    self.alive.remove(name);
                }
            }
            "networks" => update(&mut self.networks, name.to_string(), value),
            "endpoints" => {
                let Some((net, ip)) = name.split_once('/') else { return };
                let Ok(ip) = ip.parse() else { return };
                update(&mut self.endpoints, (net.to_string(), ip), value);
            }
            _ => {}
        }
    }

    /// Members are keyed by id; a record whose key is not its id (the old
    /// layout, keyed by name) is left out with a warning.
    fn apply_member(&mut self, id: &str, value: Option<&[u8]>) {
        let Some(value) = value else {
            self.members.remove(id);
            return;
        };
        match serde_json::from_slice::<Member>(value) {
            Ok(m) if m.id == id => {
                self.members.insert(m.id.clone(), m);
            }
            _ => tracing::warn!("cluster store: member record {id} is not of this layout (keyed by node id); ignored"),
        }
    }

    /// The live member named `name` whose id is not `id`, if any.
    pub fn live_namesake(&self, name: &str, id: &str) -> Option<&Member> {
        self.members.values().find(|m| m.name == name && m.id != id && self.alive.contains(&m.id))
    }

    pub fn network_endpoints<'a>(&'a self, network_id: &'a str) -> impl Iterator<Item = &'a ClusterEndpoint> + 'a {
        self.endpoints.values().filter(move |e| e.network_id == network_id)
    }
}

fn update<K: Ord, V: serde::de::DeserializeOwned>(map: &mut BTreeMap<K, V>, key: K, value: Option<&[u8]>) {
    match value.map(serde_json::from_slice::<V>) {
        Some(Ok(v)) => {
            map.insert(key, v);
        }
        Some(Err(e)) => tracing::warn!("cluster store: unreadable value: {e}"),
        None => {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_puts_and_deletes() {
        let mut s = ClusterState::default();
        let m = Member { id: "id1".into(), name: "n1".into(), address: Ipv4Addr::new(10, 0, 0, 1), joined_at: 1 };
        s.apply(&member_key("id1"), Some(&serde_json::to_vec(&m).unwrap()));
        s.apply(&alive_key("id1"), Some(b"{}"));
        let ep = ClusterEndpoint {
            network_id: "abc".into(),
            ip: Ipv4Addr::new(10, 0, 1, 2),
            mac: [2, 0x42, 10, 0, 1, 2],
            container_id: "c1".into(),
            names: vec!["web".into()],
            node: "id1".into(),
            vtep: m.address,
        };
        s.apply(&endpoint_key("abc", ep.ip), Some(&serde_json::to_vec(&ep).unwrap()));
        assert_eq!(s.members["id1"], m);
        assert!(s.alive.contains("id1"));
        assert_eq!(s.network_endpoints("abc").count(), 1);
        s.apply(&alive_key("id1"), None);
        s.apply(&endpoint_key("abc", ep.ip), None);
        s.apply("/other/key", Some(b"x"));
        assert!(s.alive.is_empty());
        assert_eq!(s.network_endpoints("abc").count(), 0);
        assert_eq!(subnet_key(&"10.0.1.0/24".parse().unwrap()), "/runtimed/subnets/10.0.1.0_24");
    }

    #[test]
    fn skips_members_of_the_old_layout() {
        let mut s = ClusterState::default();
        s.apply(&member_key("n1"), Some(br#"{"name":"n1","address":"10.0.0.1","joined_at":1}"#));
        let m = Member { id: "id2".into(), name: "n2".into(), address: Ipv4Addr::new(10, 0, 0, 2), joined_at: 1 };
        s.apply(&member_key("other"), Some(&serde_json::to_vec(&m).unwrap()));
        assert!(s.members.is_empty());
    }

    #[test]
    fn a_namesake_counts_only_while_alive_and_not_ourselves() {
        let mut s = ClusterState::default();
        for (id, addr) in [("a", 1), ("b", 2)] {
            let m = Member { id: id.into(), name: "n1".into(), address: Ipv4Addr::new(10, 0, 0, addr), joined_at: 1 };
            s.apply(&member_key(id), Some(&serde_json::to_vec(&m).unwrap()));
        }
        assert!(s.live_namesake("n1", "a").is_none(), "b is dead");
        s.apply(&alive_key("a"), Some(b"{}"));
        assert!(s.live_namesake("n1", "a").is_none(), "a is ourselves");
        assert_eq!(s.live_namesake("n1", "b").map(|m| m.id.as_str()), Some("a"));
        assert!(s.live_namesake("n2", "b").is_none());
    }
}
