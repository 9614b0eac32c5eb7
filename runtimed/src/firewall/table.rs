//! Our table: its sets, maps, chains and static rules.
//!
//! Every rule lives here and is written once by [`ensure_batch`]; networks and
//! published ports only add or delete *elements* of the sets and maps below.
//! That keeps the per-packet path a fixed handful of hash/interval lookups
//! whatever the number of networks and ports, and lets `ensure` rebuild the
//! chains atomically (flush + re-add in one transaction) without losing state.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::MetaKey::{Iifname, L4proto, Oifname};
use nftables::schema::{
    Chain, FlushObject, Map, NfCmd, NfListObject, Rule, Set, SetFlag, SetType, SetTypeValue, Table,
};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::expr::*;

/// Bridges of all our networks (`ifname`).
pub(super) const BRIDGES: &str = "bridges";
/// Bridges of internal networks (`ifname`).
pub(super) const INTERNAL: &str = "internal_bridges";
/// `bridge . bridge` for every network: traffic staying on one bridge.
pub(super) const INTRA: &str = "intra";
/// Subnets of all our networks (`ipv4_addr`, interval).
pub(super) const SUBNETS: &str = "subnets";
/// `subnet . bridge` for every network (interval); also the record from
/// which `remove_network(bridge)` learns the bridge's subnet.
pub(super) const SUBNET_BRIDGE: &str = "subnet_bridge";
/// `proto . port : container ip` for ports published on every local address.
pub(super) const ANY_ADDR: &str = "dnat_any_addr";
/// `proto . port : container port`, same keys as [`ANY_ADDR`].
pub(super) const ANY_PORT: &str = "dnat_any_port";
/// `host ip . proto . port : container ip` for ports bound to one host address.
pub(super) const IP_ADDR: &str = "dnat_ip_addr";
/// `host ip . proto . port : container port`, same keys as [`IP_ADDR`].
pub(super) const IP_PORT: &str = "dnat_ip_port";

const PUBLISHED: &str = "published";
const PREROUTING: &str = "prerouting";
const OUTPUT: &str = "output";
const POSTROUTING: &str = "postrouting";
const FORWARD: &str = "forward";

/// Every chain of ours, and every set and map: what a repair checks.
pub(super) const CHAINS: [&str; 5] = [PUBLISHED, PREROUTING, OUTPUT, POSTROUTING, FORWARD];
pub(super) const SETS: [&str; 9] =
    [BRIDGES, INTERNAL, INTRA, SUBNETS, SUBNET_BRIDGE, ANY_ADDR, ANY_PORT, IP_ADDR, IP_PORT];

/// Standard priorities, so our chains order well with other tables.
const PRIO_DSTNAT: i32 = -100;
const PRIO_SRCNAT: i32 = 100;
const PRIO_FILTER: i32 = 0;

/// One transaction creating whatever is missing and rewriting our chains.
pub(super) fn ensure_batch(table: &str) -> Batch<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(Table { family: NfFamily::IP, name: owned(table), handle: None }));
    for set in sets(table) {
        batch.add(set);
    }
    for (chain, rules) in chains(table) {
        batch.add(NfListObject::Chain(chain.clone()));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(chain.clone())));
        for expr in rules {
            batch.add(rule(table, &chain.name, expr));
        }
    }
    batch
}

fn owned(s: &str) -> Cow<'static, str> {
    Cow::Owned(s.to_string())
}

fn sets(table: &str) -> Vec<NfListObject<'static>> {
    use SetType::{Ifname, InetProto, InetService, Ipv4Addr as Addr};
    vec![
        set(table, BRIDGES, &[Ifname], false),
        set(table, INTERNAL, &[Ifname], false),
        set(table, INTRA, &[Ifname, Ifname], false),
        set(table, SUBNETS, &[Addr], true),
        set(table, SUBNET_BRIDGE, &[Addr, Ifname], true),
        map(table, ANY_ADDR, &[InetProto, InetService], Addr),
        map(table, ANY_PORT, &[InetProto, InetService], InetService),
        map(table, IP_ADDR, &[Addr, InetProto, InetService], Addr),
        map(table, IP_PORT, &[Addr, InetProto, InetService], InetService),
    ]
}

fn set_type(types: &[SetType]) -> SetTypeValue<'static> {
    match types {
        [single] => SetTypeValue::Single(*single),
        many => SetTypeValue::Concatenated(Cow::Owned(many.to_vec())),
    }
}

fn set(table: &str, name: &str, types: &[SetType], interval: bool) -> NfListObject<'static> {
    NfListObject::Set(Box::new(Set {
        family: NfFamily::IP,
        table: owned(table),
        name: owned(name),
        set_type: set_type(types),
        flags: interval.then(|| HashSet::from([SetFlag::Interval])),
        ..Set::default()
    }))
}

/// A data map. nft 1.0.6 cannot declare a map with a *concatenated* data
/// type from JSON (it rejects "ipv4_addr . inet_service" and silently makes a
/// plain set from an array), so address and port live in two maps with the
/// same keys, written in the same transaction.
fn map(table: &str, name: &str, key: &[SetType], data: SetType) -> NfListObject<'static> {
    NfListObject::Map(Box::new(Map {
        family: NfFamily::IP,
        table: owned(table),
        name: owned(name),
        set_type: set_type(key),
        map: SetTypeValue::Single(data),
        ..Map::default()
    }))
}

fn rule(table: &str, chain: &str, expr: Vec<Stmt>) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::IP,
        table: owned(table),
        chain: owned(chain),
        expr: Cow::Owned(expr),
        handle: None,
        index: None,
        comment: None,
    })
}

fn chain(table: &str, name: &str, hook: Option<(NfChainType, NfHook, i32)>) -> Chain<'static> {
    Chain {
        family: NfFamily::IP,
        table: owned(table),
        name: owned(name),
        _type: hook.map(|h| h.0),
        hook: hook.map(|h| h.1),
        prio: hook.map(|h| h.2),
        policy: hook.map(|_| NfChainPolicy::Accept),
        ..Chain::default()
    }
}

/// Our chains with their rules; regular chains first so jumps resolve.
fn chains(table: &str) -> Vec<(Chain<'static>, Vec<Vec<Stmt>>)> {
    use NfChainType::{Filter, NAT};
    use NfHook::{Forward, Output, Postrouting, Prerouting};
    let base = |name, kind, hook, prio| chain(table, name, Some((kind, hook, prio)));
    vec![
        (chain(table, PUBLISHED, None), published_rules()),
        (base(PREROUTING, NAT, Prerouting, PRIO_DSTNAT), to_local()),
        (base(OUTPUT, NAT, Output, PRIO_DSTNAT), to_local()),
        (base(POSTROUTING, NAT, Postrouting, PRIO_SRCNAT), postrouting_rules()),
        (base(FORWARD, Filter, Forward, PRIO_FILTER), forward_rules()),
    ]
}

/// prerouting (external clients and containers) and output (the host itself,
/// 127/8 included): only connections to one of the host's own addresses can
/// be published ports, so only those are looked up. nat chains see just the
/// first packet of a connection; conntrack translates the rest.
fn to_local() -> Vec<Vec<Stmt>> {
    vec![vec![eq(fib_daddr_type(), string("local")), jump(PUBLISHED)]]
}

/// DNAT by map lookup: one rule per map, never one per port. A miss leaves
/// the packet alone. Ports bound to a specific host address win over ports
/// published on all addresses.
fn published_rules() -> Vec<Vec<Stmt>> {
    let any = || concat(vec![meta(L4proto), payload("th", "dport")]);
    let ip = || concat(vec![payload("ip", "daddr"), meta(L4proto), payload("th", "dport")]);
    vec![
        vec![dnat(map_lookup(ip(), IP_ADDR), map_lookup(ip(), IP_PORT))],
        vec![dnat(map_lookup(any(), ANY_ADDR), map_lookup(any(), ANY_PORT))],
    ]
}

fn postrouting_rules() -> Vec<Vec<Stmt>> {
    let saddr = || payload("ip", "saddr");
    vec![
        // Hairpin and cross-network: a container reached a published port.
        // Without SNAT a target on the client's own bridge answers it
        // directly at L2 and the reply misses conntrack's reverse DNAT
        // (unless br_netfilter happens to be on). For other networks it
        // makes the target see its gateway, like any published-port client
        // coming through the host.
        vec![has(ct("status"), string("dnat")), eq(saddr(), set_ref(SUBNETS)), masquerade()],
        // Host -> 127.0.0.1:port: a loopback source is not routable on the
        // bridge (needs route_localnet, set by the daemon), so use the bridge IP.
        vec![eq(meta(Oifname), set_ref(BRIDGES)), eq(saddr(), prefix(Ipv4Addr::new(127, 0, 0, 0), 8)), masquerade()],
        // Egress: traffic from a network's subnet leaving by any interface
        // but that network's bridge goes out with the host's address.
        vec![
            eq(saddr(), set_ref(SUBNETS)),
            ne(concat(vec![saddr(), meta(Oifname)]), set_ref(SUBNET_BRIDGE)),
            masquerade(),
        ],
    ]
}

/// Filter for routed traffic. The policy stays accept so the host's own
/// forwarding is untouched; an accept here does not override drops of other
/// tables, a drop here is final. First match wins.
fn forward_rules() -> Vec<Vec<Stmt>> {
    let iif = || meta(Iifname);
    let oif = || meta(Oifname);
    vec![
        // Within one bridge (seen with br_netfilter, or hairpin): always fine,
        // also on internal networks.
        vec![eq(concat(vec![iif(), oif()]), set_ref(INTRA)), accept()],
        // Internal networks: nothing enters from or leaves to another
        // interface (no egress, no published ports, no other network).
        vec![eq(oif(), set_ref(INTERNAL)), drop()],
        vec![eq(iif(), set_ref(INTERNAL)), drop()],
        // Replies to connections the containers opened.
        vec![eq(oif(), set_ref(BRIDGES)), has(ct("state"), ct_states()), accept()],
        // Published ports, from outside and from other networks (DNAT was
        // done by our maps or by another table's rules).
        vec![eq(oif(), set_ref(BRIDGES)), has(ct("status"), string("dnat")), accept()],
        // Isolation: no new connection from one of our networks to another.
        vec![eq(iif(), set_ref(BRIDGES)), eq(oif(), set_ref(BRIDGES)), drop()],
        // Containers may reach anything else.
        vec![eq(iif(), set_ref(BRIDGES)), accept()],
    ]
}

fn ct_states() -> Expr {
    nftables::expr::Expression::List(vec![string("established"), string("related")])
}

#[cfg(test)]
/// Deletes our table; adding it first makes a missing table no error.
pub(super) fn delete_batch(table: &str) -> Batch<'static> {
    let obj = NfListObject::Table(Table { family: NfFamily::IP, name: owned(table), handle: None });
    let mut batch = Batch::new();
    batch.add(obj.clone());
    batch.delete(obj);
    batch
}
