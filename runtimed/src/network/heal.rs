//! Keeps the daemon's nftables table as the daemon set it up.
//!
//! Anyone may run `nft flush ruleset` or edit our table; published ports
//! then stop answering and later publishes fail. So the daemon remembers
//! what the table must hold ([`FirewallState`]), repairs the table at start
//! (from the store: its networks and the ports of running containers) and
//! again whenever the kernel reports an nftables change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::manager::Networks;
use super::record::NetworkRecord;
use crate::error::{Error, Result};
use crate::firewall::{self, Contents, Firewall, NetworkRules, NftEvents, PortMap, Repair, Shape};

/// How long a burst of nftables changes may last before we look.
const SETTLE: Duration = Duration::from_millis(150);
/// Pause before trying a failed repair again.
const RETRY: Duration = Duration::from_secs(1);

/// What the daemon has put in its table: the reference a repair restores.
///
/// Kept in memory and changed under the firewall lock together with the
/// table, because the store cannot say at every instant what the table
/// holds: a container's ports are published before its Running state is
/// stored and unpublished before its exit is, and an overlay network's
/// rules exist only on nodes carrying it.
#[derive(Default)]
pub(super) struct FirewallState {
    networks: BTreeMap<String, NetworkRules>,
    ports: BTreeSet<PortMap>,
    /// The table's structure right after we wrote it.
    shape: Option<Shape>,
}

impl FirewallState {
    fn wanted(&self) -> Contents {
        Contents::wanted(self.networks.values(), &self.ports)
    }

    pub(super) fn add_network(&mut self, rules: &NetworkRules) {
        self.networks.insert(rules.bridge.clone(), rules.clone());
    }

    pub(super) fn remove_network(&mut self, bridge: &str) {
        self.networks.remove(bridge);
    }

    fn set_ports(&mut self, ports: &[PortMap]) {
        self.ports = ports.iter().map(firewall::normalized).collect();
    }

    fn add_ports(&mut self, ports: &[PortMap]) {
        self.ports.extend(ports.iter().map(firewall::normalized));
    }

    /// `0.0.0.0` and no address are the same mapping, as in nft.
    fn remove_ports(&mut self, ports: &[PortMap]) {
        for p in ports {
            self.ports.remove(&firewall::normalized(p));
        }
    }
}

impl Networks {
    /// Creates our table and records its structure as the reference.
    pub(super) fn firewall_ensure(&self) -> Result<()> {
        self.with_state(|fw, st| {
            st.shape = Some(fw.ensure_shape()?);
            Ok(())
        })
    }

    /// Adds a network's rules and remembers them.
    pub(super) fn firewall_add_network(&self, rules: &NetworkRules) -> Result<()> {
        self.with_state(|fw, st| {
            fw.add_network(rules)?;
            st.add_network(rules);
            Ok(())
        })
    }

    pub(super) fn firewall_remove_network(&self, bridge: &str) -> Result<()> {
        self.with_state(|fw, st| {
            st.remove_network(bridge);
            fw.remove_network(bridge)
        })
    }

    /// Remembers the rules of an overlay network carried since before a
    /// restart (they were written then, and are repaired if lost).
    pub(super) fn firewall_keep_overlay(&self, net: &NetworkRecord) -> Result<()> {
        let rules = NetworkRules { bridge: net.bridge.clone(), subnet: net.subnet, internal: false };
        self.with_state(|_, st| {
            st.add_network(&rules);
            Ok(())
        })
    }

    /// At start, after the networks are set up: the running containers'
    /// ports (as stored) become exactly the published ones.
    pub(super) async fn heal_at_start(&self, live: &[PortMap]) -> Result<()> {
        let live = live.to_vec();
        self.blocking(move |this| {
            this.with_state(|fw, st| {
                st.set_ports(&live);
                heal_locked(fw, st).map(drop)
            })
        })
        .await
    }

    /// Compares the table with what it should hold and repairs it if needed.
    pub async fn heal_firewall(&self) -> Result<Option<Repair>> {
        self.blocking(|this| this.with_state(heal_locked)).await
    }

    /// Repairs the table whenever nftables changes, until the daemon exits.
    pub fn watch_firewall(&self) {
        let this = self.clone();
        tokio::spawn(async move { this.watch_loop().await });
    }

    async fn watch_loop(self) {
        let events = match NftEvents::open() {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!("cannot watch nftables changes ({e}); the firewall is repaired only at start");
                return;
            }
        };
        // Check once right away: a change may have come before we listened.
        let mut dirty = true;
        loop {
            if !dirty {
                if let Err(e) = events.changed().await {
                    tracing::warn!("watching nftables changes failed ({e}); the firewall is no longer repaired");
                    return;
                }
            }
            let _ = events.settle(SETTLE).await;
            dirty = match self.heal_firewall().await {
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!("firewall repair failed, retrying: {e}");
                    tokio::time::sleep(RETRY).await;
                    true
                }
            };
        }
    }

    /// Runs `f` off the async workers: nft runs as a child process.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Networks) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this)).await.map_err(Error::internal)?
    }
}

/// Publishes `ports`; when nft refuses, repairs a broken table (a `run -p`
/// right after a flush, before the watcher noticed) and tries once more.
pub(super) fn publish_locked(fw: &Firewall, st: &mut FirewallState, ports: &[PortMap]) -> firewall::Result<()> {
    if let Err(e) = fw.publish(ports) {
        if heal_locked(fw, st)?.is_none() {
            return Err(e);
        }
        fw.publish(ports)?;
    }
    st.add_ports(ports);
    Ok(())
}

/// Unpublishes `ports`; they are no longer wanted even if nft fails.
pub(super) fn unpublish_locked(fw: &Firewall, st: &mut FirewallState, ports: &[PortMap]) -> firewall::Result<()> {
    st.remove_ports(ports);
    fw.unpublish(ports)
}

/// Repairs the table if it differs from `st`, logging what was restored.
fn heal_locked(fw: &Firewall, st: &mut FirewallState) -> firewall::Result<Option<Repair>> {
    let reference = match &st.shape {
        Some(shape) => shape.clone(),
        None => st.shape.insert(fw.ensure_shape()?).clone(),
    };
    let repair = fw.repair(&reference, &st.wanted())?;
    if let Some(r) = &repair {
        log_repair(fw.table(), r);
    }
    Ok(repair)
}

fn log_repair(table: &str, r: &Repair) {
    let (networks, ports) = (r.added.networks(), r.added.ports());
    let (gone_networks, gone_ports) = (r.removed.networks(), r.removed.ports());
    if r.rebuilt {
        tracing::warn!(
            "firewall table {table} was flushed or altered; restored its rules, {networks} networks, \
             {ports} published ports"
        );
    } else {
        tracing::warn!(
            "firewall table {table} differed from the daemon's state; restored {networks} networks, \
             {ports} published ports; removed {gone_networks} networks, {gone_ports} published ports"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Proto;

    fn port(host_ip: Option<&str>, host_port: u16) -> PortMap {
        PortMap {
            proto: Proto::Tcp,
            host_ip: host_ip.map(|ip| ip.parse().unwrap()),
            host_port,
            container_ip: "10.88.0.2".parse().unwrap(),
            container_port: 80,
        }
    }

    #[test]
    fn firewall_state_forgets_a_port_however_its_address_is_spelled() {
        let mut st = FirewallState::default();
        st.set_ports(&[port(Some("0.0.0.0"), 8080), port(None, 8081)]);
        st.add_ports(&[port(None, 8080)]);
        st.remove_ports(&[port(None, 8080), port(Some("0.0.0.0"), 8081)]);
        assert_eq!(st.wanted(), Contents::default());
    }

    #[test]
    fn firewall_state_keeps_one_entry_per_bridge() {
        let mut st = FirewallState::default();
        let rules =
            |subnet: &str| NetworkRules { bridge: "br0".into(), subnet: subnet.parse().unwrap(), internal: false };
        st.add_network(&rules("10.1.0.0/24"));
        st.add_network(&rules("10.2.0.0/24"));
        assert_eq!(st.wanted(), Contents::wanted([&rules("10.2.0.0/24")], []));
        st.remove_network("br0");
        assert!(st.wanted().is_empty());
    }
}
