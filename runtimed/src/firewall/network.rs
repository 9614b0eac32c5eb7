//! A network is a handful of set elements (see `table.rs` for the rules
//! reading them): its bridge in `bridges` (and `internal_bridges` if
//! internal), `bridge . bridge` in `intra`, its subnet in `subnets` and
//! `subnet . bridge` in `subnet_bridge`. Adding or removing a network is one
//! transaction and never touches a rule.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{Expression, NamedExpression};

use super::elements::{as_str, element, listed, parts, value};
use super::error::{FirewallError, Result};
use super::expr::{concat, prefix, string, Expr};
use super::table::{BRIDGES, INTERNAL, INTRA, SUBNETS, SUBNET_BRIDGE};
use super::NetworkRules;

/// `(bridge, subnet)` of every network, read from `subnet_bridge`.
pub(super) fn recorded(table: &str) -> Result<Vec<(String, Ipv4Net)>> {
    const ACTION: &str = "list the networks";
    let doc = super::nft::list(ACTION, &["list", "set", "ip", table, SUBNET_BRIDGE])?;
    let elems =
        listed(&doc, SUBNET_BRIDGE).ok_or_else(|| FirewallError::output(ACTION, "no subnet_bridge set in answer"))?;
    elems.iter().map(|e| record(e).ok_or_else(|| FirewallError::output(ACTION, format!("{e:?}")))).collect()
}

/// `{"concat": [<prefix or address>, "<bridge>"]}` -> `(bridge, subnet)`.
pub(super) fn record(e: &Expr) -> Option<(String, Ipv4Net)> {
    let [net, bridge] = parts(e)? else {
        return None;
    };
    Some((as_str(bridge)?.to_string(), subnet(net)?))
}

pub(super) fn subnet(e: &Expr) -> Option<Ipv4Net> {
    match value(e) {
        Expression::Named(NamedExpression::Prefix(p)) => {
            let addr: Ipv4Addr = as_str(&p.addr)?.parse().ok()?;
            Ipv4Net::new(addr, u8::try_from(p.len).ok()?).ok()
        }
        other => Some(Ipv4Net::from(as_str(other)?.parse::<Ipv4Addr>().ok()?)),
    }
}

/// Replaces the elements of `net.bridge` (recorded with `old` subnets).
pub(super) fn add_batch(table: &str, net: &NetworkRules, old: &[Ipv4Net]) -> Batch<'static> {
    let bridge = net.bridge.as_str();
    let subnet = net.subnet.trunc();
    let mut batch = Batch::new();
    for stale in old.iter().filter(|s| **s != subnet) {
        delete_subnet(&mut batch, table, bridge, *stale);
    }
    batch.add(element(table, BRIDGES, vec![string(bridge)]));
    batch.add(element(table, INTRA, vec![intra(bridge)]));
    if net.internal {
        batch.add(element(table, INTERNAL, vec![string(bridge)]));
    } else {
        delete_if_present(&mut batch, table, INTERNAL, string(bridge));
    }
    if !old.contains(&subnet) {
        batch.add(element(table, SUBNETS, vec![net_expr(subnet)]));
        batch.add(element(table, SUBNET_BRIDGE, vec![subnet_bridge(subnet, bridge)]));
    }
    batch
}

/// Deletes every element of `bridge`; a no-op for an unknown bridge.
pub(super) fn remove_batch(table: &str, bridge: &str, old: &[Ipv4Net]) -> Batch<'static> {
    let mut batch = Batch::new();
    for stale in old {
        delete_subnet(&mut batch, table, bridge, *stale);
    }
    delete_if_present(&mut batch, table, BRIDGES, string(bridge));
    delete_if_present(&mut batch, table, INTERNAL, string(bridge));
    delete_if_present(&mut batch, table, INTRA, intra(bridge));
    batch
}

/// The subnet another bridge already uses that overlaps `net`, if any.
pub(super) fn overlap<'a>(net: &NetworkRules, recorded: &'a [(String, Ipv4Net)]) -> Option<&'a (String, Ipv4Net)> {
    let s = net.subnet.trunc();
    recorded
        .iter()
        .find(|(bridge, other)| *bridge != net.bridge && (other.contains(&s.network()) || s.contains(&other.network())))
}

fn delete_subnet(batch: &mut Batch<'static>, table: &str, bridge: &str, subnet: Ipv4Net) {
    batch.delete(element(table, SUBNETS, vec![net_expr(subnet)]));
    batch.delete(element(table, SUBNET_BRIDGE, vec![subnet_bridge(subnet, bridge)]));
}

/// nft 1.0.6 has no `destroy`: adding first makes the delete always valid,
/// and both happen in the same transaction.
fn delete_if_present(batch: &mut Batch<'static>, table: &str, set: &str, elem: Expr) {
    batch.add(element(table, set, vec![elem.clone()]));
    batch.delete(element(table, set, vec![elem]));
}

pub(super) fn intra(bridge: &str) -> Expr {
    concat(vec![string(bridge), string(bridge)])
}

pub(super) fn net_expr(subnet: Ipv4Net) -> Expr {
    prefix(subnet.network(), subnet.prefix_len())
}

pub(super) fn subnet_bridge(subnet: Ipv4Net, bridge: &str) -> Expr {
    concat(vec![net_expr(subnet), string(bridge)])
}
