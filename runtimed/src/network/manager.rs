//! Networks: the default bridge, user-defined networks of any driver (see
//! `driver/`), what the drivers share (store, netlink, firewall, DNS), and
//! container endpoints on them.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ipnet::Ipv4Net;

use super::driver::{self, BridgeDriver, NetworkDriver};
use super::heal::{publish_locked, unpublish_locked, FirewallState};
use super::ipam::Ipam;
use super::record::{mac_from_ip, Endpoint, NetworkRecord, DEFAULT_NETWORK, GATEWAY_BRIDGE, GATEWAY_NETWORK};
use super::subnet::InUse;
use super::sysctl::{self, write_sysctl};
use crate::cluster::Cluster;
use crate::dns::{Records, Resolvers};
use crate::error::{Error, Result};
use crate::firewall::{Firewall, PortMap};
use crate::ids::{self, Kind};
use crate::keeper::Keeper;
use crate::netlink::Netlink;
use crate::records::port::PortRequest;
use crate::store::Store;

/// How long the kernel gets to remove a deleted namespace's veths.
const VETH_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Interfaces a Linux bridge takes (the kernel numbers its ports 1..=1023).
const BRIDGE_PORTS: u32 = 1023;

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NetworkRequest {
    pub name: String,
    /// "bridge" (or empty) or "overlay".
    pub driver: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub internal: bool,
    pub mtu: Option<u32>,
}

/// What a container asks of one network.
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    /// The container's name (overlay endpoints carry it for DNS).
    pub name: String,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    pub aliases: Vec<String>,
    /// The container's own network (from create): it also gets what its
    /// driver needs for egress and published ports.
    pub primary: bool,
}

impl AttachRequest {
    /// The requested MAC, else docker's MAC for the address.
    pub fn mac_for(&self, ip: Ipv4Addr) -> [u8; 6] {
        self.mac.unwrap_or_else(|| mac_from_ip(ip))
    }
}

/// What a container got on one network.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The network's endpoint first, then any legs its driver added.
    pub endpoints: Vec<Endpoint>,
    /// Where the container's published ports lead.
    pub ports_to: Ipv4Addr,
}

impl Attachment {
    /// The endpoint on the network asked for.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoints[0]
    }
}

#[derive(Clone)]
pub struct Networks {
    pub(super) store: Store,
    pub(super) ipam: Ipam,
    pub(super) host: Netlink,
    firewall: Firewall,
    pub(super) cluster: Option<Cluster>,
    /// One overlay data-plane change at a time.
    pub(super) overlay_lock: Arc<tokio::sync::Mutex<()>>,
    /// What each VXLAN device (by index) was last programmed with, so a
    /// cluster change re-reads the kernel only for networks it touches.
    pub(super) programmed: Arc<Mutex<HashMap<u32, Vec<super::vxlan::Remote>>>>,
    /// One firewall change at a time, and what the table must hold.
    fw_state: Arc<Mutex<FirewallState>>,
    default_bridge: String,
    /// Name records and the DNS server of each user-defined network.
    pub(super) dns: Resolvers,
    /// Held from choosing host ports until they are stored, so two creates
    /// never pick the same one.
    ports_lock: Arc<tokio::sync::Mutex<()>>,
}

/// Proof that the caller holds the host-port lock (see `lock_ports`).
pub struct PortsLock {
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Networks {
    pub fn new(
        store: Store,
        firewall: Firewall,
        default_bridge: String,
        cluster: Option<Cluster>,
        keeper: Keeper,
    ) -> Result<Self> {
        Ok(Networks {
            ports_lock: Arc::new(tokio::sync::Mutex::new(())),
            ipam: store.ipam.clone(),
            store,
            host: Netlink::host()?,
            firewall,
            cluster,
            overlay_lock: Arc::new(tokio::sync::Mutex::new(())),
            programmed: Arc::new(Mutex::new(HashMap::new())),
            fw_state: Arc::new(Mutex::new(FirewallState::default())),
            default_bridge,
            dns: Resolvers::new(keeper),
        })
    }

    /// Runs one firewall change at a time (some read the table before
    /// writing it), with what the table must hold.
    pub(super) fn with_state<T>(
        &self,
        f: impl FnOnce(&Firewall, &mut FirewallState) -> crate::firewall::Result<T>,
    ) -> Result<T> {
        let mut state = self.fw_state.lock().expect("firewall lock");
        f(&self.firewall, &mut state).map_err(Error::from)
    }

    /// Takes the host-port lock; keep it until the assigned ports are in
    /// the store (the index is written with the container's record).
    pub async fn lock_ports(&self) -> PortsLock {
        PortsLock { _guard: self.ports_lock.clone().lock_owned().await }
    }

    /// Chooses host ports for `requests`, leading to `target`: the ones
    /// asked for if free, else free ones from the ephemeral range.
    pub fn assign_ports(&self, _held: &PortsLock, requests: &[PortRequest], target: Ipv4Addr) -> Result<Vec<PortMap>> {
        self.store.ports.assign(requests, target)
    }

    /// Publishes one container's ports in one transaction.
    pub async fn publish(&self, ports: &[PortMap]) -> Result<()> {
        self.ports_change(ports, publish_locked).await
    }

    pub async fn unpublish(&self, ports: &[PortMap]) -> Result<()> {
        self.ports_change(ports, unpublish_locked).await
    }

    /// `nft` runs as a process, so port changes run off the async workers.
    async fn ports_change(
        &self,
        ports: &[PortMap],
        change: fn(&Firewall, &mut FirewallState, &[PortMap]) -> crate::firewall::Result<()>,
    ) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let ports = ports.to_vec();
        self.blocking(move |this| this.with_state(|fw, st| change(fw, st, &ports))).await
    }

    /// Publishes exactly the ports of running containers (dropping those of
    /// containers gone after a crash between steps, restoring those lost
    /// to a flushed table) and frees addresses of unknown containers.
    ///
    /// An address or host interface is kept only if a stored endpoint owns
    /// it (`endpoints`: each known container's): a create, connect or
    /// disconnect cut off between its steps leaves them otherwise.
    pub async fn release_orphans(
        &self,
        live_ports: &[PortMap],
        endpoints: &HashMap<String, Vec<Endpoint>>,
    ) -> Result<()> {
        self.heal_at_start(live_ports).await?;
        for net in self.store.networks.list()? {
            for (ip, owner) in self.ipam.allocations(&net.id)? {
                let eps = endpoints.get(&owner).map(Vec::as_slice).unwrap_or_default();
                if !eps.iter().any(|e| e.network_id == net.id && e.ip == ip) {
                    tracing::warn!("releasing {ip} on {}: no endpoint of container {owner} holds it", net.name);
                    self.ipam.release(&net.id, ip)?;
                }
            }
        }
        for (id, eps) in endpoints {
            self.remove_stray_links(id, eps).await?;
        }
        self.ipam.flush().await
    }

    /// Deletes host ends of veths named for an interface the container's
    /// record does not have (an interrupted connect or disconnect); the
    /// kernel removes the container's end with it.
    async fn remove_stray_links(&self, container_id: &str, eps: &[Endpoint]) -> Result<()> {
        for n in 0..=eps.len() {
            let ifname = format!("eth{n}");
            if eps.iter().any(|e| e.ifname == ifname) {
                continue;
            }
            let host = host_ifname(container_id, &ifname);
            if self.host.link_index(&host).await?.is_some() {
                tracing::warn!("deleting {host}: container {container_id} has no {ifname} on record");
                self.host.delete_link(&host).await?;
            }
        }
        Ok(())
    }

    /// At daemon start: forwarding on, our firewall table, the default
    /// network, and every network's bridge and rules (re)created.
    pub async fn init(&self) -> Result<()> {
        write_sysctl("net/ipv4/ip_forward", "1")?;
        sysctl::raise_host_limits();
        self.firewall_ensure()?;
        if self.find(DEFAULT_NETWORK)?.is_none() {
            let req = NetworkRequest { name: DEFAULT_NETWORK.into(), ..Default::default() };
            BridgeDriver.create_on(self, req, self.default_bridge.clone()).await?;
        }
        if self.cluster.is_some() && self.find(GATEWAY_NETWORK)?.is_none() {
            let req = NetworkRequest { name: GATEWAY_NETWORK.into(), ..Default::default() };
            BridgeDriver.create_on(self, req, GATEWAY_BRIDGE.into()).await?;
        }
        for net in self.store.networks.list()? {
            driver::of(&net)?.restore(self, &net).await?;
        }
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<NetworkRecord>> {
        let mut nets = self.store.networks.list()?;
        nets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nets)
    }

    /// The network whose full id or name is `reference`.
    fn find(&self, reference: &str) -> Result<Option<NetworkRecord>> {
        if let Some(net) = self.store.networks.get(reference)? {
            return Ok(Some(net));
        }
        Ok(self.store.networks.list()?.into_iter().find(|n| n.name == reference))
    }

    /// By full id, name or unique id prefix (see `ids`).
    pub fn resolve(&self, reference: &str) -> Result<NetworkRecord> {
        let by_prefix = |r: &str| -> Result<Vec<NetworkRecord>> {
            Ok(self.store.networks.list()?.into_iter().filter(|n| n.id.starts_with(r)).collect())
        };
        ids::resolve(Kind::Network, reference, |r| self.find(r), by_prefix)
    }

    pub async fn create(&self, req: NetworkRequest) -> Result<NetworkRecord> {
        validate_name(&req.name)?;
        if self.find(&req.name)?.is_some() {
            return Err(Error::AlreadyExists(format!("network with name {} already exists", req.name)));
        }
        driver::lookup(&req.driver)?.create(self, req).await
    }

    /// Subnets of host addresses, host routes and our networks.
    pub(super) async fn in_use(&self) -> Result<InUse> {
        let mut nets = Vec::new();
        for n in self.store.networks.list()? {
            nets.push((n.subnet, format!("network {}", n.name)));
        }
        let ours: Vec<String> = nets.iter().map(|(n, _)| n.to_string()).collect();
        for (_, addr) in self.host.addresses().await? {
            if !addr.addr().is_loopback() && !ours.contains(&addr.trunc().to_string()) {
                nets.push((addr.trunc(), format!("address {addr} of this host")));
            }
        }
        for route in self.host.routes().await? {
            if !ours.contains(&route.to_string()) {
                nets.push((route, format!("route to {route} on this host")));
            }
        }
        Ok(InUse { nets })
    }

    /// Serves the network's names on its gateway address (user-defined
    /// networks only, as docker does).
    pub(super) async fn start_dns(&self, net: &NetworkRecord) -> Result<()> {
        if !net.has_dns() {
            return Ok(());
        }
        let gateway = net.gateway;
        self.dns.serve(&net.id, gateway).await.map_err(|e| Error::io(format!("DNS server on {gateway}:53"), e))
    }

    pub(super) fn records(&self, network_id: &str) -> Records {
        self.dns.records(network_id)
    }

    /// Makes `names` resolve to the endpoint's address on its network.
    pub fn dns_add(&self, ep: &Endpoint, names: &[String]) {
        self.dns.add(&ep.network_id, names, ep.ip);
    }

    /// Other names this endpoint asks go to `servers` (`--dns`) rather
    /// than the host's resolvers, as docker's embedded DNS does.
    pub fn dns_forwarders(&self, ep: &Endpoint, servers: &[Ipv4Addr]) {
        self.dns.forward_for(&ep.network_id, ep.ip, servers);
    }

    pub(super) async fn teardown(&self, net: &NetworkRecord) {
        self.dns.stop(&net.id).await;
        if let Err(e) = self.firewall_remove_network(&net.bridge) {
            tracing::warn!("firewall rules of {}: {e}", net.name);
        }
        if let Err(e) = self.host.delete_link(&net.bridge).await {
            tracing::warn!("{e}");
        }
    }

    /// Removes a network nobody uses; the default network stays.
    pub async fn remove(&self, reference: &str) -> Result<NetworkRecord> {
        let net = self.resolve(reference)?;
        if net.name == DEFAULT_NETWORK || net.name == GATEWAY_NETWORK {
            return Err(Error::FailedPrecondition(format!(
                "the network {} is the daemon's own and cannot be removed",
                net.name
            )));
        }
        driver::of(&net)?.remove(self, &net).await?;
        Ok(net)
    }

    /// Plugs the container (namespace `netns`, already holding `existing`)
    /// into `net`: its endpoint there and, for its own network on a driver
    /// that does not route out, a leg on the gateway network. Nothing is
    /// left behind on failure.
    pub async fn attach(
        &self,
        net: &NetworkRecord,
        container_id: &str,
        netns: &Path,
        existing: &[Endpoint],
        req: &AttachRequest,
    ) -> Result<Attachment> {
        let driver = driver::of(net)?;
        let ep = self.attach_one(driver, net, container_id, netns, &next_ifname(existing), req).await?;
        if !(req.primary && driver.needs_gateway_leg()) {
            return Ok(Attachment { ports_to: ep.ip, endpoints: vec![ep] });
        }
        let taken: Vec<Endpoint> = existing.iter().chain([&ep]).cloned().collect();
        match self.attach_gateway_leg(container_id, netns, &next_ifname(&taken), req).await {
            Ok(leg) => Ok(Attachment { ports_to: leg.ip, endpoints: vec![ep, leg] }),
            Err(e) => {
                if let Err(undo) = self.detach(&ep).await {
                    tracing::warn!("detach from {} after a failed gateway leg: {undo}", ep.network);
                }
                Err(e)
            }
        }
    }

    /// Egress and published ports for a container whose network does not
    /// route out (docker's `docker_gwbridge`).
    async fn attach_gateway_leg(
        &self,
        container_id: &str,
        netns: &Path,
        ifname: &str,
        req: &AttachRequest,
    ) -> Result<Endpoint> {
        let gw = self.resolve(GATEWAY_NETWORK)?;
        let req = AttachRequest { name: req.name.clone(), ..Default::default() };
        self.attach_one(driver::of(&gw)?, &gw, container_id, netns, ifname, &req).await
    }

    /// Allocates an address and plugs a new interface `ifname` into the
    /// network. The first interface (eth0) gets the default route if the
    /// driver routes out.
    async fn attach_one(
        &self,
        driver: &dyn NetworkDriver,
        net: &NetworkRecord,
        container_id: &str,
        netns: &Path,
        ifname: &str,
        req: &AttachRequest,
    ) -> Result<Endpoint> {
        let ip = driver.allocate(self, net, container_id, req).await?;
        let ep = Endpoint {
            network_id: net.id.clone(),
            network: net.name.clone(),
            ifname: ifname.to_string(),
            host_ifname: host_ifname(container_id, ifname),
            ip,
            mac: req.mac_for(ip),
            aliases: req.aliases.clone(),
        };
        if let Err(e) = self.plug(driver, net, &ep, netns).await {
            let _ = driver.release(self, &ep).await;
            return Err(e);
        }
        self.ipam.flush().await?;
        Ok(ep)
    }

    /// Re-creates the interface of a stored endpoint (after a reboot wiped
    /// the namespace), keeping its address.
    pub async fn replug(&self, ep: &Endpoint, netns: &Path) -> Result<()> {
        let net = self.resolve(&ep.network_id)?;
        self.plug(driver::of(&net)?, &net, ep, netns).await
    }

    /// The gateway network's interfaces get the default route whatever
    /// their name, and its bridge ports are isolated from each other.
    async fn plug(&self, driver: &dyn NetworkDriver, net: &NetworkRecord, ep: &Endpoint, netns: &Path) -> Result<()> {
        let (bridge, mtu) = driver.data_plane(self, net).await?;
        let peer = format!("{}p", ep.host_ifname);
        let gw_bridge = net.name == GATEWAY_NETWORK;
        self.host.add_veth_to_bridge(&ep.host_ifname, &peer, bridge, mtu, netns, gw_bridge).await.map_err(
            |e| match e {
                Error::Exhausted(_) => Error::Exhausted(format!(
                    "network {} is full: its Linux bridge takes at most {BRIDGE_PORTS} interfaces, \
                     so at most {BRIDGE_PORTS} containers; create another network for more",
                    net.name
                )),
                e => e,
            },
        )?;
        let inside = Netlink::in_netns(netns)?;
        let addr = Ipv4Net::new(ep.ip, net.subnet.prefix_len()).map_err(Error::internal)?;
        let routed = (ep.ifname == "eth0" || gw_bridge) && !net.internal && driver.routes_default();
        let gateway = routed.then_some(net.gateway);
        let res = inside.configure_interface(&peer, &ep.ifname, ep.mac, addr, gateway).await;
        if res.is_err() {
            let _ = self.host.delete_link(&ep.host_ifname).await;
        }
        res
    }

    /// Unplugs an interface and frees its address.
    pub async fn detach(&self, ep: &Endpoint) -> Result<()> {
        self.host.delete_link(&ep.host_ifname).await?;
        self.release(ep).await
    }

    /// Deletes, after a grace period and off the reply path, any of these
    /// host veths the kernel has not removed with their namespace (if
    /// something still held the namespace, they would stay otherwise).
    pub fn reap_veths_later(&self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        let host = self.host.clone();
        tokio::spawn(async move {
            tokio::time::sleep(VETH_GRACE).await;
            for name in names {
                match host.link_index(&name).await {
                    Ok(Some(_)) => {
                        tracing::debug!("{name} outlived its namespace; deleting it");
                        if let Err(e) = host.delete_link(&name).await {
                            tracing::warn!("{e}");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        });
    }

    /// Frees an endpoint whose namespace is about to be deleted: the kernel
    /// then removes the veth pair in the background. Deleting the host end
    /// here would wait ~18 ms in the kernel's rcu_barrier on the reply path,
    /// holding the rtnl lock every other link change on the host needs.
    pub async fn release(&self, ep: &Endpoint) -> Result<()> {
        self.records(&ep.network_id).remove_addr(ep.ip);
        match self.resolve(&ep.network_id) {
            Ok(net) => {
                let driver = driver::of(&net)?;
                driver.release(self, ep).await?;
                driver.endpoint_left(self, &net).await;
            }
            // Removed meanwhile (an overlay network, by another node): at
            // most a local allocation is left.
            Err(_) => self.ipam.release(&ep.network_id, ep.ip)?,
        }
        self.ipam.flush().await
    }
}

/// The first ethN not among `existing`.
fn next_ifname(existing: &[Endpoint]) -> String {
    (0..)
        .map(|n| format!("eth{n}"))
        .find(|name| !existing.iter().any(|e| &e.ifname == name))
        .expect("an unused interface name")
}

/// The names an endpoint answers to: container name, short id, aliases.
pub fn dns_names(name: &str, container_id: &str, aliases: &[String]) -> Vec<String> {
    let mut names = vec![name.to_string(), ids::short_id(container_id).to_string()];
    names.extend(aliases.iter().cloned());
    names.retain(|n| !n.is_empty());
    names
}

/// Host-side veth name: short, unique per container and interface.
fn host_ifname(container_id: &str, ifname: &str) -> String {
    let n = ifname.trim_start_matches("eth");
    format!("vrt{}{n}", &container_id[..9])
}

fn validate_name(name: &str) -> Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 64;
    if ok && name != "none" && name != "host" && !name.starts_with("container") {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("invalid network name \"{name}\"")))
    }
}
