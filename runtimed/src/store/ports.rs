//! Published ports: choosing host ports and refusing ones already taken by
//! another container or by a process listening on the host.
//!
//! Who holds which host port is kept in an index (sled tree `ports`), written
//! in the same transaction as the container record, so checking or picking
//! a port costs a lookup or two however many ports are already published.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sled::transaction::{TransactionalTree, UnabortableTransactionError};

use crate::error::{Error, Result};
use crate::records::port::{PortMap, Proto};
use crate::store::TreeCell;

pub use crate::records::port::PortRequest;

/// Where the daemon picks host ports for `-p CONTAINER_PORT`.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 49153..=65535;

/// A published port as held: protocol, host address (None = all) and port.
type Key = (Proto, Option<Ipv4Addr>, u16);

/// No host address, or 0.0.0.0: every address of the host.
fn on_all_addresses(k: &Key) -> bool {
    k.1.is_none_or(|ip| ip.is_unspecified())
}

fn clashes(a: &Key, b: &Key) -> bool {
    a.0 == b.0 && a.2 == b.2 && (on_all_addresses(a) || on_all_addresses(b) || a.1 == b.1)
}

/// Index key: protocol, port, then host address (0.0.0.0 = all), so the
/// holders of one port are neighbours under a 3-byte prefix.
fn index_key((proto, ip, port): Key) -> [u8; 7] {
    let p = port.to_be_bytes();
    let a = ip.unwrap_or(Ipv4Addr::UNSPECIFIED).octets();
    [proto_byte(proto), p[0], p[1], a[0], a[1], a[2], a[3]]
}

fn proto_byte(proto: Proto) -> u8 {
    match proto {
        Proto::Tcp => 6,
        Proto::Udp => 17,
    }
}

fn key_of(p: &PortMap) -> Key {
    (p.proto, p.host_ip, p.host_port)
}

/// Which container holds each published host port.
#[derive(Clone)]
pub struct PortIndex {
    cell: TreeCell,
    /// Where the next pick in [`EPHEMERAL`] starts, so picks do not rescan
    /// the ports handed out before.
    cursor: Arc<AtomicUsize>,
}

impl PortIndex {
    pub fn new(cell: TreeCell) -> Self {
        PortIndex { cell, cursor: Arc::new(AtomicUsize::new(0)) }
    }

    /// Whether a container already holds a port that clashes with `key`.
    fn held(&self, key: Key) -> Result<bool> {
        self.cell.read(|t| {
            if on_all_addresses(&key) {
                return Ok(t.scan_prefix(&index_key(key)[..3]).next().transpose()?.is_some());
            }
            Ok(t.contains_key(index_key(key))? || t.contains_key(index_key((key.0, None, key.2)))?)
        })
    }

    /// Records `ports` as held by `owner`, inside the caller's transaction.
    pub fn hold_in(
        tx: &TransactionalTree,
        ports: &[PortMap],
        owner: &str,
    ) -> std::result::Result<(), UnabortableTransactionError> {
        for p in ports {
            tx.insert(&index_key(key_of(p))[..], owner.as_bytes())?;
        }
        Ok(())
    }

    /// Frees the `ports` that `owner` holds, inside the caller's transaction.
    pub fn release_in(
        tx: &TransactionalTree,
        ports: &[PortMap],
        owner: &str,
    ) -> std::result::Result<(), UnabortableTransactionError> {
        for p in ports {
            let k = index_key(key_of(p));
            if tx.get(k)?.is_some_and(|v| v.as_ref() == owner.as_bytes()) {
                tx.remove(&k[..])?;
            }
        }
        Ok(())
    }

    /// Rewrites the index from the containers' records (at open: a store
    /// written before the index existed, or any drift, is repaired).
    pub fn rebuild<'a>(&self, held: impl Iterator<Item = (&'a str, &'a [PortMap])>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for k in self.cell.read(|t| t.iter().keys().collect::<sled::Result<Vec<_>>>())? {
            batch.remove(k);
        }
        for (owner, ports) in held {
            for p in ports {
                batch.insert(&index_key(key_of(p))[..], owner.as_bytes());
            }
        }
        // Not flushed: it is rebuilt from the records at every open.
        self.cell.write(|t| t.apply_batch(batch))?;
        Ok(())
    }

    /// Turns requests into mappings to `container_ip`, refusing ports held
    /// by other containers or bound by a host process.
    pub fn assign(&self, requests: &[PortRequest], container_ip: Ipv4Addr) -> Result<Vec<PortMap>> {
        let mut out: Vec<PortMap> = Vec::with_capacity(requests.len());
        for r in requests {
            if r.container_port == 0 {
                return Err(Error::InvalidArgument("container port 0 is not a port".into()));
            }
            let mine: Vec<Key> = out.iter().map(key_of).collect();
            let host_port = if r.host_port == 0 { self.pick(r, &mine)? } else { self.check(r, &mine)? };
            out.push(PortMap {
                proto: r.proto,
                host_ip: r.host_ip,
                host_port,
                container_ip,
                container_port: r.container_port,
            });
        }
        Ok(out)
    }

    fn check(&self, r: &PortRequest, mine: &[Key]) -> Result<u16> {
        let key = (r.proto, r.host_ip, r.host_port);
        let addr = r.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let what = format!("port {addr}:{}/{}", r.host_port, r.proto.as_str());
        if mine.iter().any(|m| clashes(m, &key)) {
            return Err(Error::InvalidArgument(format!("{what} is published twice")));
        }
        if self.held(key)? {
            return Err(Error::AlreadyExists(format!("{what} is already published by another container")));
        }
        match bind_error(r.proto, r.host_ip, r.host_port) {
            None => Ok(r.host_port),
            Some(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                Err(Error::InvalidArgument(format!("cannot publish {what}: {addr} is not an address of this host")))
            }
            Some(_) => Err(Error::AlreadyExists(format!("{what} is already in use by a process on the host"))),
        }
    }

    fn pick(&self, r: &PortRequest, mine: &[Key]) -> Result<u16> {
        let len = EPHEMERAL.len();
        let start = self.cursor.load(Ordering::Relaxed);
        for i in 0..len {
            let offset = (start + i) % len;
            let port = EPHEMERAL.start() + offset as u16;
            let key = (r.proto, r.host_ip, port);
            if !mine.iter().any(|m| clashes(m, &key))
                && !self.held(key)?
                && bind_error(r.proto, r.host_ip, port).is_none()
            {
                self.cursor.store(offset + 1, Ordering::Relaxed);
                return Ok(port);
            }
        }
        Err(Error::FailedPrecondition("no free host port left to publish".into()))
    }
}

/// A port is free when we can bind it ourselves in the host namespace;
/// otherwise why not (in use, or not an address of this host).
fn bind_error(proto: Proto, ip: Option<Ipv4Addr>, port: u16) -> Option<std::io::Error> {
    let addr = SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
    match proto {
        Proto::Tcp => TcpListener::bind(addr).err(),
        Proto::Udp => UdpSocket::bind(addr).err(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host_port: u16, container_port: u16) -> PortRequest {
        PortRequest { host_ip: None, host_port, container_port, proto: Proto::Tcp }
    }

    fn index() -> PortIndex {
        let (cell, dir) = crate::store::testing::cell("ports");
        // sled keeps its files open; nothing else needs the directory.
        std::fs::remove_dir_all(dir).unwrap();
        PortIndex::new(cell)
    }

    impl PortIndex {
        fn tree(&self) -> sled::Tree {
            self.cell.tree().unwrap().0
        }
    }

    /// What `Store::insert_container` does with the index.
    fn hold(index: &PortIndex, ports: &[PortMap], owner: &str) {
        index
            .tree()
            .transaction(|tx| {
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(PortIndex::hold_in(tx, ports, owner)?)
            })
            .unwrap();
    }

    fn release(index: &PortIndex, ports: &[PortMap], owner: &str) {
        index
            .tree()
            .transaction(|tx| {
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(PortIndex::release_in(tx, ports, owner)?)
            })
            .unwrap();
    }

    const IP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);

    #[test]
    fn picks_free_ports_and_refuses_taken_ones() {
        let ix = index();
        let got = ix.assign(&[req(0, 80), req(0, 81)], IP).unwrap();
        assert!(EPHEMERAL.contains(&got[0].host_port) && got[0].host_port != got[1].host_port);
        let taken = ix.assign(&[req(18080, 80)], IP).unwrap();
        hold(&ix, &taken, "a");
        let err = ix.assign(&[req(18080, 80)], IP).unwrap_err().to_string();
        assert!(err.contains("already published"), "{err}");
        let udp = PortRequest { proto: Proto::Udp, ..req(18080, 80) };
        assert!(ix.assign(&[udp], IP).is_ok(), "udp and tcp are separate");
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = ix.assign(&[req(port, 80)], IP).unwrap_err().to_string();
        assert!(err.contains("in use by a process"), "{err}");
        let err = ix.assign(&[req(18081, 80), req(18081, 81)], IP).unwrap_err().to_string();
        assert!(err.contains("published twice"), "{err}");
        release(&ix, &taken, "a");
        assert!(ix.assign(&[req(18080, 80)], IP).is_ok(), "released");
    }

    #[test]
    fn one_address_clashes_with_all_addresses_but_not_with_another() {
        let ix = index();
        let on = |ip: [u8; 4]| PortRequest { host_ip: Some(Ipv4Addr::from(ip)), ..req(18090, 80) };
        let one = ix.assign(&[on([127, 0, 0, 1])], IP).unwrap();
        hold(&ix, &one, "a");
        assert!(ix.assign(&[req(18090, 80)], IP).is_err(), "all addresses include 127.0.0.1");
        assert!(ix.assign(&[on([127, 0, 0, 1])], IP).is_err());
        assert!(ix.assign(&[on([127, 0, 0, 2])], IP).is_ok(), "another address is free");
        release(&ix, &one, "a");
        let all = ix.assign(&[req(18090, 80)], IP).unwrap();
        hold(&ix, &all, "b");
        assert!(ix.assign(&[on([127, 0, 0, 2])], IP).is_err(), "taken on every address");
        assert!(ix.assign(&[on([0, 0, 0, 0])], IP).is_err(), "0.0.0.0 is every address");
    }

    #[test]
    fn release_frees_only_the_owners_ports_and_rebuild_restores_the_rest() {
        let ix = index();
        let a = ix.assign(&[req(18100, 80)], IP).unwrap();
        hold(&ix, &a, "a");
        release(&ix, &a, "b");
        assert!(ix.held(key_of(&a[0])).unwrap(), "b does not hold it");
        ix.rebuild(std::iter::empty()).unwrap();
        assert!(!ix.held(key_of(&a[0])).unwrap());
        ix.rebuild([("a", a.as_slice())].into_iter()).unwrap();
        assert!(ix.held(key_of(&a[0])).unwrap());
    }

    #[test]
    fn picks_move_on_instead_of_rescanning() {
        let ix = index();
        let first = ix.assign(&[req(0, 80)], IP).unwrap();
        let second = ix.assign(&[req(0, 80)], IP).unwrap();
        assert!(second[0].host_port > first[0].host_port, "{first:?} {second:?}");
    }
}
