//! IP address management: which address of which network belongs to whom.
//!
//! Allocations live in sled (`ipam` tree, key `<network-id>/<ip>`, value the
//! owner), claimed with compare-and-swap so an address is never handed out
//! twice, also across restarts and crashes. The network address, the
//! broadcast address and the gateway are never handed out.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};
use crate::store::TreeCell;

#[derive(Clone)]
pub struct Ipam {
    cell: TreeCell,
    /// Store generation of the oldest change not yet flushed, plus one (0:
    /// none), so a flush after the store was reopened reports that change
    /// as lost.
    unflushed: Arc<AtomicU64>,
}

/// One network's address space.
pub struct Pool<'a> {
    pub network_id: &'a str,
    pub network_name: &'a str,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
}

fn key(network_id: &str, ip: Ipv4Addr) -> String {
    format!("{network_id}/{ip}")
}

impl Ipam {
    pub fn new(cell: TreeCell) -> Self {
        Ipam { cell, unflushed: Arc::new(AtomicU64::new(0)) }
    }

    /// Runs a write, remembering its generation for [`Ipam::flush`].
    fn write<R>(&self, f: impl FnOnce(&sled::Tree) -> sled::Result<R>) -> Result<R> {
        let (r, generation) = self.cell.write(f)?;
        let _ = self.unflushed.compare_exchange(0, generation + 1, Ordering::AcqRel, Ordering::Acquire);
        Ok(r)
    }

    /// Claims `requested`, or the next free address after the last one handed
    /// out (so a released address is not reused at once).
    pub fn allocate(&self, pool: &Pool, requested: Option<Ipv4Addr>, owner: &str) -> Result<Ipv4Addr> {
        if let Some(ip) = requested {
            check_assignable(pool, ip)?;
            return match self.claim(pool.network_id, ip, owner)? {
                true => Ok(ip),
                false => Err(Error::AlreadyExists(format!(
                    "address {ip} is already in use on network {}",
                    pool.network_name
                ))),
            };
        }
        let hosts: Vec<Ipv4Addr> = pool.subnet.hosts().filter(|ip| *ip != pool.gateway).collect();
        let cursor_key = format!("{}/cursor", pool.network_id);
        let start = match self.cell.read(|t| t.get(&cursor_key))? {
            Some(v) => hosts.iter().position(|ip| ip.octets() == v.as_ref()).map_or(0, |i| i + 1),
            None => 0,
        };
        for i in 0..hosts.len() {
            let ip = hosts[(start + i) % hosts.len()];
            if self.claim(pool.network_id, ip, owner)? {
                self.write(|t| t.insert(cursor_key.as_bytes(), &ip.octets()))?;
                return Ok(ip);
            }
        }
        Err(Error::FailedPrecondition(format!(
            "no available IP addresses on network {} ({})",
            pool.network_name, pool.subnet
        )))
    }

    fn claim(&self, network_id: &str, ip: Ipv4Addr, owner: &str) -> Result<bool> {
        let res =
            self.write(|t| t.compare_and_swap(key(network_id, ip), None as Option<&[u8]>, Some(owner.as_bytes())))?;
        Ok(res.is_ok())
    }

    /// Frees an address; freeing one that is not held is fine.
    pub fn release(&self, network_id: &str, ip: Ipv4Addr) -> Result<()> {
        self.write(|t| t.remove(key(network_id, ip)))?;
        Ok(())
    }

    /// All allocations of a network as (address, owner).
    pub fn allocations(&self, network_id: &str) -> Result<Vec<(Ipv4Addr, String)>> {
        let prefix = format!("{network_id}/");
        let mut out = Vec::new();
        for (k, v) in self.cell.read(|t| t.scan_prefix(prefix.as_bytes()).collect::<sled::Result<Vec<_>>>())? {
            let k = String::from_utf8_lossy(&k);
            if let Some(Ok(ip)) = k.strip_prefix(&prefix).map(str::parse::<Ipv4Addr>) {
                out.push((ip, String::from_utf8_lossy(&v).into_owned()));
            }
        }
        Ok(out)
    }

    /// Forgets a network's cursor (when the network is removed).
    pub fn forget_network(&self, network_id: &str) -> Result<()> {
        for (ip, _) in self.allocations(network_id)? {
            self.release(network_id, ip)?;
        }
        self.write(|t| t.remove(format!("{network_id}/cursor")))?;
        Ok(())
    }

    /// Makes the changes so far durable; fails if the store was reopened
    /// since the oldest of them (it was lost).
    pub async fn flush(&self) -> Result<()> {
        match self.unflushed.swap(0, Ordering::AcqRel) {
            0 => self.cell.db().flush_current().await,
            g => self.cell.db().flush(g - 1).await,
        }
    }
}

/// A static address must be a host address of the subnet, not the gateway.
pub fn check_assignable(pool: &Pool, ip: Ipv4Addr) -> Result<()> {
    if !pool.subnet.contains(&ip) {
        return Err(Error::InvalidArgument(format!(
            "address {ip} is outside network {}'s subnet {}",
            pool.network_name, pool.subnet
        )));
    }
    if ip == pool.subnet.network() || ip == pool.subnet.broadcast() || ip == pool.gateway {
        return Err(Error::InvalidArgument(format!(
            "address {ip} is reserved on network {} (network, broadcast or gateway)",
            pool.network_name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(tag: &str) -> (Ipam, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("ipam-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = crate::store::Database::open(&dir, &["ipam"]).unwrap();
        (Ipam::new(db.cell("ipam")), dir)
    }

    fn pool(subnet: &str) -> Pool<'static> {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        let gateway = subnet.hosts().next().unwrap();
        Pool { network_id: "n1", network_name: "net1", subnet, gateway }
    }

    #[test]
    fn hands_out_each_address_once_and_never_gateway_or_broadcast() {
        let (ipam, dir) = ipam("once");
        let p = pool("10.1.0.0/29"); // hosts .1-.6, gateway .1
        let got: Vec<Ipv4Addr> = (0..5).map(|i| ipam.allocate(&p, None, &format!("c{i}")).unwrap()).collect();
        let expected: Vec<Ipv4Addr> = (2..=6).map(|o| Ipv4Addr::new(10, 1, 0, o)).collect();
        assert_eq!(got, expected);
        let err = ipam.allocate(&p, None, "c9").unwrap_err();
        assert!(err.to_string().contains("no available IP addresses"), "{err}");
        ipam.release("n1", Ipv4Addr::new(10, 1, 0, 4)).unwrap();
        assert_eq!(ipam.allocate(&p, None, "c9").unwrap(), Ipv4Addr::new(10, 1, 0, 4));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn static_addresses_are_checked() {
        let (ipam, dir) = ipam("static");
        let p = pool("10.2.0.0/24");
        let ip = Ipv4Addr::new(10, 2, 0, 50);
        assert_eq!(ipam.allocate(&p, Some(ip), "a").unwrap(), ip);
        assert!(matches!(ipam.allocate(&p, Some(ip), "b"), Err(Error::AlreadyExists(_))));
        assert!(ipam.allocate(&p, Some(Ipv4Addr::new(10, 3, 0, 1)), "b").is_err());
        assert!(ipam.allocate(&p, Some(Ipv4Addr::new(10, 2, 0, 1)), "b").is_err(), "gateway");
        assert!(ipam.allocate(&p, Some(Ipv4Addr::new(10, 2, 0, 255)), "b").is_err(), "broadcast");
        assert_eq!(ipam.allocations("n1").unwrap(), vec![(ip, "a".to_string())]);
        ipam.forget_network("n1").unwrap();
        assert!(ipam.allocations("n1").unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
