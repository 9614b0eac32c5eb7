//! Cluster membership and shared state in etcd, for overlay networks.
//!
//! A node joins under a lease it keeps alive; everything it owns in the
//! store (its "alive" key, the addresses its containers hold) is written
//! under that lease, so a node that dies disappears after the TTL. One task
//! per daemon ([`Cluster::start`]) runs sessions: grant a lease, register,
//! re-write this node's endpoints, read everything, then follow the watch.
//! When etcd is unreachable the session ends and a new one starts once it
//! answers again, which is how the node catches up. A node is known by an
//! id it generates once ([`node_id`]); its name is only displayed, since
//! hostnames of cloned machines repeat. The kernel state
//! (bridges, FDB entries) is never touched while unsynced, so running
//! containers keep talking.

mod identity;
pub mod node_id;
pub mod ops;
pub mod state;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use etcd_client::{Client, GetOptions, PutOptions, WatchOptions};
use tokio::sync::watch;

pub use state::{ClusterEndpoint, ClusterState, Member};

use crate::error::{Error, Result};
use crate::util::now_nanos;

/// How long one store request may take before the store counts as down.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between sessions while the store is unreachable.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `host:port` of each etcd member.
    pub endpoints: Vec<String>,
    pub advertise: Ipv4Addr,
    /// This node's generated id ([`node_id`]): what the store keys it by.
    pub node_id: String,
    /// Display name: `--node-name` or the hostname.
    pub node_name: String,
    /// Whether the name was given with `--node-name`, which must then be
    /// unique among live nodes (hostnames of cloned machines may repeat).
    pub name_explicit: bool,
    /// Seconds a node stays listed after its daemon stops renewing.
    pub ttl: i64,
}

impl ClusterConfig {
    /// Parses `etcd://HOST:PORT[,HOST:PORT...]`.
    pub fn parse_store(url: &str) -> Result<Vec<String>> {
        let rest = url.strip_prefix("etcd://").ok_or_else(|| {
            Error::InvalidArgument(format!("cluster store {url}: only etcd://HOST:PORT is supported"))
        })?;
        let endpoints: Vec<String> = rest.split(',').filter(|e| !e.is_empty()).map(|e| format!("http://{e}")).collect();
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument(format!("cluster store {url} names no etcd endpoint")));
        }
        Ok(endpoints)
    }
}

#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ClusterConfig,
    client: Client,
    state: RwLock<ClusterState>,
    /// The lease of the live session, if any.
    lease: Mutex<Option<i64>>,
    /// The lease of the last session, revoked once a new one registered.
    last_lease: Mutex<Option<i64>>,
    changed: watch::Sender<u64>,
    /// This node's endpoints, re-written at each new session.
    local: Mutex<BTreeMap<(String, Ipv4Addr), ClusterEndpoint>>,
}

impl Cluster {
    /// Prepares the client; connections are made lazily, so a daemon starts
    /// even while etcd is down.
    pub async fn connect(cfg: ClusterConfig) -> Result<Cluster> {
        let opts = etcd_client::ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), REQUEST_TIMEOUT);
        let client = Client::connect(&cfg.endpoints, Some(opts)).await.map_err(store_err)?;
        Ok(Cluster {
            inner: Arc::new(Inner {
                cfg,
                client,
                state: RwLock::new(ClusterState::default()),
                lease: Mutex::new(None),
                last_lease: Mutex::new(None),
                changed: watch::channel(0).0,
                local: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.inner.cfg.node_id
    }
    pub fn node_name(&self) -> &str {
        &self.inner.cfg.node_name
    }
    pub fn advertise(&self) -> Ipv4Addr {
        self.inner.cfg.advertise
    }

    /// A copy of the cached cluster state.
    pub fn snapshot(&self) -> ClusterState {
        self.inner.state.read().expect("cluster state").clone()
    }

    /// Ticks whenever the cached state changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Runs sessions forever, starting with this node's known endpoints.
    pub fn start(&self, local: Vec<ClusterEndpoint>) {
        {
            let mut map = self.inner.local.lock().expect("local endpoints");
            for ep in local {
                map.insert((ep.network_id.clone(), ep.ip), ep);
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.session().await {
                    tracing::warn!("cluster store: {e}; retrying");
                }
                *this.inner.lease.lock().expect("lease") = None;
                this.update(|s| s.synced = false);
                tokio::time::sleep(RETRY).await;
            }
        });
    }

    /// One session: register under a fresh lease, read all, follow changes.
    async fn session(&self) -> Result<()> {
        let mut client = self.inner.client.clone();
        let ttl = self.inner.cfg.ttl;
        // A clash that arose while we were away is not joined into.
        self.check_identity().await?;
        let lease = timed(client.lease_grant(ttl, None)).await?.id();
        self.register(lease).await?;
        *self.inner.lease.lock().expect("lease") = Some(lease);
        let previous = self.inner.last_lease.lock().expect("lease").replace(lease);
        if let Some(old) = previous {
            // Drops what only the old session held (addresses freed while away).
            let _ = timed(client.lease_revoke(old)).await;
        }
        let (mut keeper, mut acks) = timed(client.lease_keep_alive(lease)).await?;
        let revision = self.reload().await?;
        let opts = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
        let mut watch = timed(client.watch(state::PREFIX, Some(opts))).await?;
        tracing::info!(node = self.node_name(), id = self.node_id(), lease, "joined the cluster");
        let mut renew = tokio::time::interval(Duration::from_secs((ttl as u64 / 3).max(1)));
        loop {
            tokio::select! {
                _ = renew.tick() => {
                    keeper.keep_alive().await.map_err(store_err)?;
                    match timed(acks.message()).await? {
                        Some(ack) if ack.ttl() > 0 => {}
                        _ => return Err(Error::Unavailable("the node's lease expired".into())),
                    }
                }
                msg = watch.message() => {
                    let resp = msg.map_err(store_err)?.ok_or_else(|| Error::Unavailable("watch closed".into()))?;
                    if resp.canceled() {
                        return Err(Error::Unavailable(format!("watch canceled: {}", resp.cancel_reason())));
                    }
                    self.update(|s| {
                        for ev in resp.events() {
                            if let Some(kv) = ev.kv() {
                                let deleted = ev.event_type() == etcd_client::EventType::Delete;
                                s.apply(&String::from_utf8_lossy(kv.key()), (!deleted).then(|| kv.value()));
                            }
                        }
                    });
                }
            }
        }
    }

    /// Writes this node's member record, alive key and endpoints under
    /// `lease`. An address another node took while we were away stays
    /// theirs; ours is reported.
    async fn register(&self, lease: i64) -> Result<()> {
        let mut client = self.inner.client.clone();
        let member = Member {
            id: self.node_id().to_string(),
            name: self.node_name().to_string(),
            address: self.advertise(),
            joined_at: now_nanos(),
        };
        timed(client.put(state::member_key(self.node_id()), json(&member), None)).await?;
        let leased = Some(PutOptions::new().with_lease(lease));
        timed(client.put(state::alive_key(self.node_id()), "{}", leased.clone())).await?;
        let local: Vec<ClusterEndpoint> = self.inner.local.lock().expect("local endpoints").values().cloned().collect();
        for ep in local {
            if let Err(e) = self.claim(&ep, lease).await {
                tracing::error!("address {} of container {}: {e}", ep.ip, crate::ids::short_id(&ep.container_id));
            }
        }
        Ok(())
    }

    /// Replaces the cache with a full read; returns the read's revision.
    async fn reload(&self) -> Result<i64> {
        let mut client = self.inner.client.clone();
        let resp = timed(client.get(state::PREFIX, Some(GetOptions::new().with_prefix()))).await?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let mut fresh = ClusterState { synced: true, ..Default::default() };
        for kv in resp.kvs() {
            fresh.apply(&String::from_utf8_lossy(kv.key()), Some(kv.value()));
        }
        self.update(|s| *s = fresh);
        Ok(revision)
    }

    fn update(&self, f: impl FnOnce(&mut ClusterState)) {
        f(&mut self.inner.state.write().expect("cluster state"));
        self.inner.changed.send_modify(|n| *n += 1);
    }

    /// The live session's lease, or why there is none.
    fn lease(&self) -> Result<i64> {
        self.inner.lease.lock().expect("lease").ok_or_else(|| {
            Error::Unavailable(format!(
                "cluster store {} is unreachable",
                self.inner.cfg.endpoints.join(",").replace("http://", "")
            ))
        })
    }

    fn client(&self) -> Client {
        self.inner.client.clone()
    }

    /// How messages name a node: its name and short id.
    pub fn node_label(&self, id: &str) -> String {
        let s = self.inner.state.read().expect("cluster state");
        match s.members.get(id).map(|m| &m.name) {
            Some(name) => format!("{name} ({})", node_id::short(id)),
            None => node_id::short(id).to_string(),
        }
    }

    /// Members with whether their lease is alive, by id.
    pub fn nodes(&self) -> Vec<(Member, bool)> {
        let s = self.inner.state.read().expect("cluster state");
        s.members.values().map(|m| (m.clone(), s.alive.contains(&m.id))).collect()
    }
}

/// A store request with a deadline, its error typed as unavailable.
async fn timed<T>(fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(res) => res.map_err(store_err),
        Err(_) => Err(Error::Unavailable("cluster store did not answer in time".into())),
    }
}

fn store_err(e: etcd_client::Error) -> Error {
    Error::Unavailable(format!("cluster store: {e}"))
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializable record")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        assert_eq!(
            ClusterConfig::parse_store("etcd://10.0.0.1:2379,10.0.0.2:2379").unwrap(),
            vec!["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert!(ClusterConfig::parse_store("consul://x:1").is_err());
        assert!(ClusterConfig::parse_store("etcd://").is_err());
    }
}
