//! The DNS service of every user-defined network: its names and its server
//! on the gateway. One owner, so the network layer only says when a network
//! comes or goes and which names an endpoint answers to.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use super::{upstreams_from_resolv_conf, DnsServer, Records};
use crate::keeper::Keeper;

#[derive(Clone)]
pub struct Resolvers {
    networks: Arc<Mutex<HashMap<String, NetworkDns>>>,
    /// Keeps the servers' sockets open while the daemon restarts.
    keeper: Keeper,
}

#[derive(Default)]
struct NetworkDns {
    records: Records,
    server: Option<DnsServer>,
}

impl Resolvers {
    pub fn new(keeper: Keeper) -> Self {
        Resolvers { networks: Arc::new(Mutex::new(HashMap::new())), keeper }
    }

    /// Serves the network's names on `gateway`, port 53, relaying other
    /// names to the host's resolvers; a no-op if it already serves.
    pub async fn serve(&self, network_id: &str, gateway: Ipv4Addr) -> io::Result<()> {
        if self.lock().get(network_id).is_some_and(|d| d.server.is_some()) {
            return Ok(());
        }
        let records = self.records(network_id);
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let upstreams = upstreams_from_resolv_conf(&resolv, false);
        let bind = SocketAddr::from((gateway, 53));
        let server = DnsServer::start_kept(bind, records, upstreams, self.keeper.clone()).await?;
        self.lock().entry(network_id.to_string()).or_default().server = Some(server);
        Ok(())
    }

    /// The network's names (made empty on first use).
    pub fn records(&self, network_id: &str) -> Records {
        self.lock().entry(network_id.to_string()).or_default().records.clone()
    }

    /// Makes `names` resolve to `ip` on the network.
    pub fn add(&self, network_id: &str, names: &[String], ip: Ipv4Addr) {
        let records = self.records(network_id);
        for name in names {
            records.add(name, ip);
        }
    }

    /// Names the client at `ip` asks that are not the network's go to
    /// `servers` (`--dns`) rather than the host's resolvers.
    pub fn forward_for(&self, network_id: &str, ip: Ipv4Addr, servers: &[Ipv4Addr]) {
        let upstreams = servers.iter().map(|s| SocketAddr::from((*s, 53))).collect();
        self.records(network_id).set_forwarders(ip, upstreams);
    }

    /// Forgets the network: its names, and its server once stopped.
    pub async fn stop(&self, network_id: &str) {
        let dns = self.lock().remove(network_id);
        if let Some(server) = dns.and_then(|d| d.server) {
            server.shutdown().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, NetworkDns>> {
        self.networks.lock().expect("dns lock")
    }
}
