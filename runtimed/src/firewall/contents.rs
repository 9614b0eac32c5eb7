//! What our sets and maps hold, as plain values.
//!
//! The daemon knows which networks and ports it has set up; comparing that
//! with what the kernel holds tells what someone else removed or added, and
//! the difference is written back as element commands in one transaction
//! (nothing is written when both agree, so a repair does not re-trigger
//! itself through its own change events).

use std::collections::BTreeSet;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::schema::Nftables;

use super::elements::{as_str, element, listed, parts};
use super::error::Result;
use super::expr::{string, Expr};
use super::network::{intra, net_expr, record, subnet, subnet_bridge};
use super::table::{BRIDGES, INTERNAL, INTRA, SUBNETS, SUBNET_BRIDGE};
use super::{normalized, ports, NetworkRules, PortMap};

/// Elements of our sets and maps (ports as [`Firewall::published`] reports
/// them).
///
/// [`Firewall::published`]: super::Firewall::published
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    bridges: BTreeSet<String>,
    internal: BTreeSet<String>,
    intra: BTreeSet<String>,
    subnets: BTreeSet<Ipv4Net>,
    subnet_bridge: BTreeSet<(Ipv4Net, String)>,
    ports: BTreeSet<PortMap>,
}

impl Contents {
    /// What the table must hold for these networks and published ports.
    pub fn wanted<'a>(
        networks: impl IntoIterator<Item = &'a NetworkRules>,
        ports: impl IntoIterator<Item = &'a PortMap>,
    ) -> Self {
        let mut c = Contents::default();
        for net in networks {
            let (bridge, subnet) = (net.bridge.clone(), net.subnet.trunc());
            if net.internal {
                c.internal.insert(bridge.clone());
            }
            c.intra.insert(bridge.clone());
            c.subnets.insert(subnet);
            c.subnet_bridge.insert((subnet, bridge.clone()));
            c.bridges.insert(bridge);
        }
        c.ports = ports.into_iter().map(normalized).collect();
        c
    }

    /// Reads a `nft -j list table` answer; a set or map missing from it
    /// reads as empty (it is re-created empty by a repair).
    pub(super) fn read(doc: &Nftables<'static>) -> Result<Self> {
        let elems = |name| listed(doc, name).unwrap_or_default();
        let names = |name| elems(name).iter().filter_map(|e| as_str(e).map(String::from));
        Ok(Contents {
            bridges: names(BRIDGES).collect(),
            internal: names(INTERNAL).collect(),
            intra: elems(INTRA).iter().filter_map(first_name).collect(),
            subnets: elems(SUBNETS).iter().filter_map(subnet).collect(),
            subnet_bridge: elems(SUBNET_BRIDGE).iter().filter_map(pair).collect(),
            ports: ports::read_present(doc)?.into_iter().collect(),
        })
    }

    /// What `self` holds and `other` does not.
    pub fn minus(&self, other: &Contents) -> Contents {
        fn diff<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> BTreeSet<T> {
            a.difference(b).cloned().collect()
        }
        Contents {
            bridges: diff(&self.bridges, &other.bridges),
            internal: diff(&self.internal, &other.internal),
            intra: diff(&self.intra, &other.intra),
            subnets: diff(&self.subnets, &other.subnets),
            subnet_bridge: diff(&self.subnet_bridge, &other.subnet_bridge),
            ports: diff(&self.ports, &other.ports),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Contents::default()
    }

    /// Networks with at least one element here (for logs).
    pub fn networks(&self) -> usize {
        let bridges = self.bridges.iter().chain(&self.internal).chain(&self.intra);
        let named = self.subnet_bridge.iter().map(|(_, b)| b);
        bridges.chain(named).collect::<BTreeSet<_>>().len()
    }

    pub fn ports(&self) -> usize {
        self.ports.len()
    }

    /// One element command per non-empty set or map.
    pub(super) fn commands(&self, table: &str) -> Vec<nftables::schema::NfListObject<'static>> {
        let sets: [(&str, Vec<Expr>); 5] = [
            (BRIDGES, self.bridges.iter().map(string).collect()),
            (INTERNAL, self.internal.iter().map(string).collect()),
            (INTRA, self.intra.iter().map(|b| intra(b)).collect()),
            (SUBNETS, self.subnets.iter().map(|s| net_expr(*s)).collect()),
            (SUBNET_BRIDGE, self.subnet_bridge.iter().map(|(s, b)| subnet_bridge(*s, b)).collect()),
        ];
        let ports: Vec<PortMap> = self.ports.iter().cloned().collect();
        sets.into_iter()
            .filter(|(_, elems)| !elems.is_empty())
            .map(|(name, elems)| element(table, name, elems))
            .chain(ports::commands(table, &ports))
            .collect()
    }

    /// Deletes `stale` (known present) then adds `missing`, in one batch.
    pub(super) fn apply(batch: &mut Batch<'static>, table: &str, stale: &Self, missing: &Self) {
        stale.commands(table).into_iter().for_each(|c| batch.delete(c));
        missing.commands(table).into_iter().for_each(|c| batch.add(c));
    }
}

/// `bridge . bridge` -> bridge.
fn first_name(e: &Expr) -> Option<String> {
    as_str(parts(e)?.first()?).map(String::from)
}

/// `subnet . bridge` -> (subnet, bridge).
fn pair(e: &Expr) -> Option<(Ipv4Net, String)> {
    record(e).map(|(bridge, subnet)| (subnet, bridge))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Proto;

    fn net(bridge: &str, subnet: &str, internal: bool) -> NetworkRules {
        NetworkRules { bridge: bridge.into(), subnet: subnet.parse().unwrap(), internal }
    }

    fn port(host_ip: Option<&str>, host_port: u16, container: &str) -> PortMap {
        PortMap {
            proto: Proto::Tcp,
            host_ip: host_ip.map(|ip| ip.parse().unwrap()),
            host_port,
            container_ip: container.parse().unwrap(),
            container_port: 80,
        }
    }

    #[test]
    fn firewall_diff_of_wanted_and_actual_contents() {
        let (a, b) = (net("br-a", "10.1.0.1/24", false), net("br-b", "10.2.0.0/24", true));
        let wanted =
            Contents::wanted([&a, &b], &[port(Some("0.0.0.0"), 8080, "10.1.0.2"), port(None, 8081, "10.1.0.3")]);
        let actual = Contents::wanted([&a], &[port(None, 8080, "10.1.0.2"), port(None, 9, "10.1.0.9")]);

        let missing = wanted.minus(&actual);
        assert_eq!(missing.networks(), 1, "br-b is missing: {missing:?}");
        assert_eq!(missing.ports(), 1, "8080 on 0.0.0.0 is 8080 on every address");
        assert!(missing.internal.contains("br-b") && missing.subnets.contains(&"10.2.0.0/24".parse().unwrap()));
        let stale = actual.minus(&wanted);
        assert_eq!((stale.networks(), stale.ports()), (0, 1));
        assert!(wanted.minus(&wanted).is_empty());
    }

    #[test]
    fn firewall_a_port_mapped_elsewhere_is_both_stale_and_missing() {
        let wanted = Contents::wanted([], &[port(None, 8080, "10.1.0.2")]);
        let actual = Contents::wanted([], &[port(None, 8080, "10.1.0.3")]);
        assert_eq!(wanted.minus(&actual).ports(), 1);
        assert_eq!(actual.minus(&wanted).ports(), 1);
    }
}
