//! Checks that this node's identity clashes with no live node: an explicit
//! `--node-name` must be unique among live nodes (a default hostname may
//! repeat), and our id must not be live elsewhere (a root copied with a
//! cloned machine carries its node id along).

use etcd_client::GetOptions;

use super::node_id::short;
use super::state::{self, ClusterState};
use super::{timed, Cluster};
use crate::error::{Error, Result};

impl Cluster {
    /// Reads the members and alive keys and refuses a clash; the store
    /// being unreachable is reported as `Unavailable`.
    pub async fn check_identity(&self) -> Result<()> {
        let seen = self.read_members().await?;
        self.clash(&seen).map_or(Ok(()), Err)
    }

    fn clash(&self, seen: &ClusterState) -> Option<Error> {
        self.id_clash(seen).or_else(|| self.name_clash(seen))
    }

    /// Our id, live at another address: two machines would share one
    /// registration, the very defect ids are for.
    fn id_clash(&self, seen: &ClusterState) -> Option<Error> {
        let id = self.node_id();
        let m = seen.members.get(id)?;
        if !seen.alive.contains(id) || m.address == self.advertise() {
            return None;
        }
        Some(Error::FailedPrecondition(format!(
            "node id {} is already used by live node {} at {}; was --root copied from that machine? \
             remove its node-id file here to get a new id",
            short(id),
            m.name,
            m.address
        )))
    }

    /// Our explicit name, held by another live node.
    fn name_clash(&self, seen: &ClusterState) -> Option<Error> {
        if !self.inner.cfg.name_explicit {
            return None;
        }
        let name = self.node_name();
        let other = seen.live_namesake(name, self.node_id())?;
        Some(Error::AlreadyExists(format!(
            "node name {name} is already used by live node {} at {}; pick another --node-name",
            short(&other.id),
            other.address
        )))
    }

    async fn read_members(&self) -> Result<ClusterState> {
        let mut client = self.client();
        let mut seen = ClusterState::default();
        for prefix in [state::members_prefix(), state::alives_prefix()] {
            let resp = timed(client.get(prefix.as_str(), Some(GetOptions::new().with_prefix()))).await?;
            for kv in resp.kvs() {
                seen.apply(&String::from_utf8_lossy(kv.key()), Some(kv.value()));
            }
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::cluster::{ClusterConfig, Member};

    async fn cluster(id: &str, name: &str, explicit: bool) -> Cluster {
        let cfg = ClusterConfig {
            endpoints: vec!["http://127.0.0.1:1".into()],
            advertise: Ipv4Addr::new(10, 0, 0, 1),
            node_id: id.into(),
            node_name: name.into(),
            name_explicit: explicit,
            ttl: 5,
        };
        Cluster::connect(cfg).await.expect("a lazy client")
    }

    fn seen(id: &str, name: &str, last: u8) -> ClusterState {
        let mut s = ClusterState::default();
        let m = Member { id: id.into(), name: name.into(), address: Ipv4Addr::new(10, 0, 0, last), joined_at: 1 };
        s.members.insert(id.into(), m);
        s.alive.insert(id.into());
        s
    }

    #[tokio::test]
    async fn an_explicit_name_or_our_id_live_elsewhere_clashes() {
        let other = seen("b", "n1", 2);
        assert!(matches!(cluster("a", "n1", true).await.clash(&other), Some(Error::AlreadyExists(_))));
        assert!(cluster("a", "n1", false).await.clash(&other).is_none(), "default names may repeat");
        assert!(cluster("b", "n1", true).await.clash(&seen("b", "n1", 1)).is_none(), "ourselves, restarted");
        let copied = cluster("b", "n2", false).await.clash(&other);
        assert!(matches!(copied, Some(Error::FailedPrecondition(_))), "our id at another address");
    }
}
