//! nftables rules owned by the daemon: bridge-network NAT and filtering, and
//! port publishing.
//!
//! Everything lives in one table of family `ip` whose name is configurable
//! (several daemons can coexist); nothing outside it is ever read or changed.
//!
//! Design:
//! - All rules are static and written by [`Firewall::ensure`] (see
//!   `table.rs`, which documents why each one exists). Networks and published
//!   ports are *elements* of named sets and maps that those rules look up, so
//!   the per-packet cost is a fixed number of hash/interval lookups and an
//!   update is one small transaction, however many ports are published.
//! - DNAT uses data maps keyed by `proto . port` (any local address) and
//!   `host ip . proto . port` (one host address), applied as
//!   `dnat ip to <key> map @..._addr : <key> map @..._port` in a chain jumped
//!   to from prerouting and output when `fib daddr type local`.
//!   One map with the concatenated data type `ipv4_addr . inet_service` would
//!   be nicer, but nft 1.0.6 (Debian 12) cannot declare such a map from JSON,
//!   so address and port are two maps with identical keys that are always
//!   written in the same transaction.
//! - Every rule and element is built with the `nftables` crate's typed
//!   schema; it covers all expressions we need (concatenations, map lookups
//!   in `dnat`, `fib`, `ct`, set references). It is applied as JSON by
//!   `nft -j`, one `nft` run = one atomic kernel transaction (see `nft.rs`
//!   for why the crate's `get_current_ruleset_raw` is used to run it).
//! - nft 1.0.6 has no `destroy`; "delete if present" is done by adding the
//!   element and deleting it in the same transaction.
//! - Anyone can flush or edit the table (`nft flush ruleset`). The daemon
//!   keeps what it should hold and calls [`Firewall::repair`] at start and
//!   whenever [`NftEvents`] reports a change; a repair compares first and
//!   writes only a difference, so its own change events end the cycle.

mod contents;
mod elements;
mod error;
mod expr;
mod network;
mod nft;
mod ports;
mod shape;
mod table;
#[cfg(test)]
mod tests;
mod watch;

pub use contents::Contents;
pub use error::{FirewallError, Result};
pub use shape::Shape;
pub use watch::NftEvents;

pub use crate::records::port::{PortMap, Proto};

impl Proto {
    fn from_nft(s: &str) -> Option<Self> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// What the firewall needs to know about one bridge network.
#[derive(Clone, Debug)]
pub struct NetworkRules {
    pub bridge: String,
    pub subnet: ipnet::Ipv4Net,
    pub internal: bool,
}

/// Handle on the daemon's nftables table. Cheap; holds only the table name.
/// Calls are not serialized here: the daemon must not run two of them on the
/// same table concurrently (`add_network` reads then writes).
#[derive(Clone, Debug)]
pub struct Firewall {
    table: String,
}

impl Firewall {
    pub fn new(table: impl Into<String>) -> Self {
        Firewall { table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates our table (family `ip`), its base chains, sets and maps if
    /// missing, and rewrites our chains' rules, all in one transaction.
    /// Idempotent; keeps every network and published port (they are set and
    /// map elements); never flushes or edits anything outside our own table.
    pub fn ensure(&self) -> Result<()> {
        nft::apply("create the firewall table", table::ensure_batch(&self.table))
    }

    /// Rules of one bridge network: masquerade for traffic from `subnet`
    /// leaving by any interface but `bridge`; forward accept for
    /// established/related traffic to the bridge and for traffic from the
    /// bridge; isolation from our other bridges; for `internal` networks no
    /// traffic leaves or enters the bridge from other interfaces at all.
    /// Idempotent: calling it again for the same bridge replaces that
    /// network's rules. Fails if another bridge of ours has an overlapping
    /// subnet.
    pub fn add_network(&self, net: &NetworkRules) -> Result<()> {
        let recorded = network::recorded(&self.table)?;
        if let Some((bridge, other)) = network::overlap(net, &recorded) {
            let (subnet, other, bridge) = (net.subnet, *other, bridge.clone());
            return Err(FirewallError::SubnetOverlap { subnet, other, bridge });
        }
        let old = subnets_of(&recorded, &net.bridge);
        nft::apply("add the network", network::add_batch(&self.table, net, &old))
    }

    /// Removes the network of `bridge`; unknown bridges are not an error.
    pub fn remove_network(&self, bridge: &str) -> Result<()> {
        let old = subnets_of(&network::recorded(&self.table)?, bridge);
        nft::apply("remove the network", network::remove_batch(&self.table, bridge, &old))
    }

    /// Publishes the ports of ONE container in ONE nft transaction: only
    /// elements are added to maps, no rule is added per port. Re-publishing
    /// an identical mapping is a no-op; a host port already mapped to
    /// something else fails the whole call (nft: "File exists").
    pub fn publish(&self, maps: &[PortMap]) -> Result<()> {
        if maps.is_empty() {
            return Ok(());
        }
        nft::apply("publish ports", ports::publish_batch(&self.table, maps))
    }

    /// Removes these mappings; missing elements are not an error, and a host
    /// port now mapped to another container is left alone.
    pub fn unpublish(&self, maps: &[PortMap]) -> Result<()> {
        if maps.is_empty() {
            return Ok(());
        }
        let fast = nft::apply("unpublish ports", ports::unpublish_batch(&self.table, maps));
        match fast {
            Ok(()) => Ok(()),
            Err(err) => {
                tracing::debug!(%err, "unpublish: falling back to exact matches");
                self.unpublish_exact(maps)
            }
        }
    }

    /// Deletes only the mappings currently present with the same target.
    fn unpublish_exact(&self, maps: &[PortMap]) -> Result<()> {
        let current: std::collections::HashSet<PortMap> = self.published()?.into_iter().collect();
        let present: Vec<PortMap> = maps.iter().map(normalized).filter(|m| current.contains(m)).collect();
        if present.is_empty() {
            return Ok(());
        }
        nft::apply("unpublish ports", ports::delete_batch(&self.table, &present))
    }

    /// Every published port, read back from the kernel.
    pub fn published(&self) -> Result<Vec<PortMap>> {
        let doc = nft::list("read the published ports", &["list", "table", "ip", &self.table])?;
        ports::read(&doc)
    }

    /// [`Firewall::ensure`], then the structure it wrote: the reference
    /// for [`Firewall::repair`].
    pub fn ensure_shape(&self) -> Result<Shape> {
        self.ensure()?;
        self.shape()?.ok_or_else(|| FirewallError::output("create the firewall table", "table missing after creation"))
    }

    /// The structure of our table as the kernel holds it now (None when
    /// the table is missing): the reference for [`Firewall::repair`].
    pub fn shape(&self) -> Result<Option<Shape>> {
        Ok(self.read()?.as_ref().map(Shape::of))
    }

    /// Makes our table have the structure `reference` and hold exactly
    /// `wanted`, in one transaction, writing only if something differs:
    /// None means the table was already right. Someone else's flush or
    /// edit (`nft flush ruleset`) is undone this way without a loop, since
    /// a table that matches is never written.
    pub fn repair(&self, reference: &Shape, wanted: &Contents) -> Result<Option<Repair>> {
        let doc = self.read()?;
        let shape = doc.as_ref().map(Shape::of);
        let actual = doc.as_ref().map(Contents::read).transpose()?;
        let actual = actual.unwrap_or_default();
        let rebuilt = shape.as_ref() != Some(reference);
        let (removed, added) = (actual.minus(wanted), wanted.minus(&actual));
        if !rebuilt && removed.is_empty() && added.is_empty() {
            return Ok(None);
        }
        let mut batch = match rebuilt {
            true => table::ensure_batch(&self.table),
            false => nftables::batch::Batch::new(),
        };
        Contents::apply(&mut batch, &self.table, &removed, &added);
        nft::apply("repair the firewall table", batch)?;
        Ok(Some(Repair { rebuilt, added, removed }))
    }

    /// Our whole table in one `nft list`; None when it does not exist.
    fn read(&self) -> Result<Option<nftables::schema::Nftables<'static>>> {
        let listed = nft::list("read the table", &["list", "table", "ip", &self.table]);
        match listed {
            Ok(doc) => Ok(Some(doc)),
            Err(FirewallError::Nft { message, .. }) if message.contains("No such file or directory") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes our whole table; a missing table is not an error.
    #[cfg(test)]
    pub fn delete_table(&self) -> Result<()> {
        nft::apply("delete the firewall table", table::delete_batch(&self.table))
    }
}

/// What [`Firewall::repair`] changed.
#[derive(Debug)]
pub struct Repair {
    /// Table, sets, maps or rules were missing or altered and were rewritten.
    pub rebuilt: bool,
    pub added: Contents,
    pub removed: Contents,
}

fn subnets_of(recorded: &[(String, ipnet::Ipv4Net)], bridge: &str) -> Vec<ipnet::Ipv4Net> {
    recorded.iter().filter(|(b, _)| b == bridge).map(|(_, s)| *s).collect()
}

/// The form [`Firewall::published`] reports: `0.0.0.0` becomes None.
pub fn normalized(m: &PortMap) -> PortMap {
    PortMap { host_ip: m.host_ip.filter(|ip| !ip.is_unspecified()), ..m.clone() }
}
