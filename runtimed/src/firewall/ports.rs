//! Published ports as map elements.
//!
//! A port published on every local address is `proto . port` in
//! `dnat_any_addr` (-> container IP) and `dnat_any_port` (-> container port);
//! one bound to a host address is `host_ip . proto . port` in `dnat_ip_addr`
//! and `dnat_ip_port`. Publishing is adding those elements, so its cost and
//! the per-packet lookup do not depend on how many ports are published.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::schema::{NfListObject, Nftables};

use super::elements::{as_str, as_u16, element, listed, pair, parts, value};
use super::error::{FirewallError, Result};
use super::expr::{concat, number, string, Expr};
use super::table::{ANY_ADDR, ANY_PORT, IP_ADDR, IP_PORT};
use super::{PortMap, Proto};

/// Map key: the host address (None = every local address), proto, port.
type Key = (Option<Ipv4Addr>, Proto, u16);

/// Elements of one port mapping, grouped per map.
#[derive(Default)]
struct Elements {
    any_addr: Vec<Expr>,
    any_port: Vec<Expr>,
    ip_addr: Vec<Expr>,
    ip_port: Vec<Expr>,
}

impl Elements {
    fn of(maps: &[PortMap]) -> Self {
        let mut e = Elements::default();
        for m in maps {
            let (key, addr, port) = (key_expr(m), string(m.container_ip.to_string()), number(m.container_port));
            let (addrs, ports) = match host_ip(m) {
                None => (&mut e.any_addr, &mut e.any_port),
                Some(_) => (&mut e.ip_addr, &mut e.ip_port),
            };
            addrs.push(pair(key.clone(), addr));
            ports.push(pair(key, port));
        }
        e
    }

    /// One element command per non-empty map.
    fn commands(&self, table: &str) -> Vec<NfListObject<'static>> {
        [(ANY_ADDR, &self.any_addr), (ANY_PORT, &self.any_port), (IP_ADDR, &self.ip_addr), (IP_PORT, &self.ip_port)]
            .into_iter()
            .filter(|(_, elems)| !elems.is_empty())
            .map(|(name, elems)| element(table, name, elems.clone()))
            .collect()
    }
}

/// `0.0.0.0` means every address, like `None`.
fn host_ip(m: &PortMap) -> Option<Ipv4Addr> {
    m.host_ip.filter(|ip| !ip.is_unspecified())
}

fn key_expr(m: &PortMap) -> Expr {
    let tail = [string(m.proto.as_str()), number(m.host_port)];
    match host_ip(m) {
        None => concat(tail.to_vec()),
        Some(ip) => concat([vec![string(ip.to_string())], tail.to_vec()].concat()),
    }
}

/// Adds the elements of `maps`. Adding an identical element is a no-op; a
/// key already mapped elsewhere makes nft fail the whole transaction.
pub(super) fn publish_batch(table: &str, maps: &[PortMap]) -> Batch<'static> {
    let mut batch = Batch::new();
    for cmd in Elements::of(maps).commands(table) {
        batch.add(cmd);
    }
    batch
}

/// Deletes the elements of `maps`, adding them first so that missing ones
/// are no error (nft 1.0.6 has no `destroy`). Fails, changing nothing, if a
/// key is mapped to another container: the caller then falls back to
/// [`delete_batch`] of the exact matches.
pub(super) fn unpublish_batch(table: &str, maps: &[PortMap]) -> Batch<'static> {
    let cmds = Elements::of(maps).commands(table);
    let mut batch = Batch::new();
    cmds.iter().cloned().for_each(|c| batch.add(c));
    cmds.into_iter().for_each(|c| batch.delete(c));
    batch
}

/// Deletes elements known to be present.
pub(super) fn delete_batch(table: &str, maps: &[PortMap]) -> Batch<'static> {
    let mut batch = Batch::new();
    for cmd in Elements::of(maps).commands(table) {
        batch.delete(cmd);
    }
    batch
}

/// Element commands adding or deleting `maps`, one per non-empty map.
pub(super) fn commands(table: &str, maps: &[PortMap]) -> Vec<NfListObject<'static>> {
    Elements::of(maps).commands(table)
}

/// Every published port, from a `nft -j list table` answer.
pub(super) fn read(doc: &Nftables<'static>) -> Result<Vec<PortMap>> {
    read_maps(doc, true)
}

/// Like [`read`], but a missing map reads as empty (a damaged table).
pub(super) fn read_present(doc: &Nftables<'static>) -> Result<Vec<PortMap>> {
    read_maps(doc, false)
}

fn read_maps(doc: &Nftables<'static>, required: bool) -> Result<Vec<PortMap>> {
    let map = |name| entries(doc, name, required);
    let mut out = join(map(ANY_ADDR)?, map(ANY_PORT)?, required)?;
    out.extend(join(map(IP_ADDR)?, map(IP_PORT)?, required)?);
    out.sort_by_key(|m| (m.host_ip, m.proto as u8, m.host_port));
    Ok(out)
}

const READ: &str = "read the published ports";

/// `key -> data` of one of our maps.
fn entries<'a>(doc: &'a Nftables<'static>, map: &str, required: bool) -> Result<HashMap<Key, &'a Expr>> {
    let elems = match listed(doc, map) {
        Some(elems) => elems,
        None if !required => &[],
        None => return Err(FirewallError::output(READ, format!("no map {map}"))),
    };
    elems.iter().map(|e| entry(e).ok_or_else(|| FirewallError::output(READ, format!("{e:?}")))).collect()
}

fn entry(e: &Expr) -> Option<(Key, &Expr)> {
    let nftables::expr::Expression::List(kv) = value(e) else {
        return None;
    };
    let [k, data] = kv.as_slice() else {
        return None;
    };
    Some((key(parts(k)?)?, data))
}

fn key(parts: &[Expr]) -> Option<Key> {
    let (ip, rest) = match parts {
        [ip, rest @ ..] if rest.len() == 2 => (Some(as_str(ip)?.parse().ok()?), rest),
        rest => (None, rest),
    };
    let [proto, port] = rest else { return None };
    Some((ip, Proto::from_nft(as_str(proto)?)?, as_u16(port)?))
}

/// Pairs the address map with the port map (same keys, same transactions).
/// When not `strict`, a key found in only one of them is skipped.
fn join(addrs: HashMap<Key, &Expr>, ports: HashMap<Key, &Expr>, strict: bool) -> Result<Vec<PortMap>> {
    let bad = |k: &Key| FirewallError::output(READ, format!("address and port maps disagree on {k:?}"));
    let mut out = Vec::with_capacity(addrs.len());
    for (k, addr) in addrs {
        let port = ports.get(&k).and_then(|p| as_u16(p));
        let ip = as_str(addr).and_then(|a| a.parse().ok());
        let (Some(port), Some(ip)) = (port, ip) else {
            if strict {
                return Err(bad(&k));
            }
            continue;
        };
        out.push(PortMap { proto: k.1, host_ip: k.0, host_port: k.2, container_ip: ip, container_port: port });
    }
    if strict && out.len() != ports.len() {
        return Err(FirewallError::output(READ, "port map has keys the address map lacks"));
    }
    Ok(out)
}
