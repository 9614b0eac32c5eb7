//! Choosing subnets that do not clash with the host's addresses, routes or
//! our other networks.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// What is already in use, and where it comes from (for error messages).
pub struct InUse {
    pub nets: Vec<(Ipv4Net, String)>,
}

impl InUse {
    fn clash(&self, candidate: &Ipv4Net) -> Option<&(Ipv4Net, String)> {
        self.nets.iter().find(|(n, _)| n.contains(&candidate.network()) || candidate.contains(&n.network()))
    }
}

/// The pool tried in order: 10.88-10.255/16, then 172.18-172.31/16.
fn pool() -> impl Iterator<Item = Ipv4Net> {
    let tens = (88u8..=255).map(|b| Ipv4Net::new([10, b, 0, 0].into(), 16).expect("valid"));
    let one72 = (18u8..=31).map(|b| Ipv4Net::new([172, b, 0, 0].into(), 16).expect("valid"));
    tens.chain(one72)
}

/// Overlay networks' pool: the /24s of 10.0.0.0 - 10.87.255.0, below the
/// bridge pool, so an overlay never takes a range a node's bridge may use.
fn overlay_pool() -> impl Iterator<Item = Ipv4Net> {
    (0u32..88 * 256).map(|n| Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (n << 8)), 24).expect("valid"))
}

/// A user-given subnet must not overlap anything in use.
pub fn check(subnet: Ipv4Net, in_use: &InUse) -> Result<()> {
    if subnet.prefix_len() > 30 {
        return Err(Error::InvalidArgument(format!("subnet {subnet} is too small (at most /30)")));
    }
    if let Some(kind) = reserved_kind(subnet) {
        return Err(Error::InvalidArgument(format!("subnet {subnet} is {kind}, not usable for a network")));
    }
    match in_use.clash(&subnet) {
        Some((net, what)) => Err(Error::InvalidArgument(format!("subnet {subnet} overlaps {net} ({what})"))),
        None => Ok(()),
    }
}

/// What a range is reserved for, if it overlaps one that cannot carry
/// container traffic (a bridge address there would break the host).
fn reserved_kind(subnet: Ipv4Net) -> Option<&'static str> {
    let reserved: [(&str, &str); 5] = [
        ("0.0.0.0/8", "the \"this network\" range"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved (class E and broadcast)"),
    ];
    reserved.iter().find_map(|(range, kind)| {
        let range: Ipv4Net = range.parse().expect("valid range");
        (range.contains(&subnet.network()) || subnet.contains(&range.network())).then_some(*kind)
    })
}

/// The first pool range that overlaps nothing in use.
pub fn choose(in_use: &InUse) -> Result<Ipv4Net> {
    first_free(pool(), in_use)
}

/// The same for an overlay network.
pub fn choose_overlay(in_use: &InUse) -> Result<Ipv4Net> {
    first_free(overlay_pool(), in_use)
}

fn first_free(mut pool: impl Iterator<Item = Ipv4Net>, in_use: &InUse) -> Result<Ipv4Net> {
    pool.find(|candidate| in_use.clash(candidate).is_none())
        .ok_or_else(|| Error::FailedPrecondition("no free subnet left in the address pool".into()))
}

/// The requested gateway if it is a host address of `subnet`, else the
/// subnet's first host address.
pub fn gateway(subnet: Ipv4Net, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
    match requested {
        Some(gw) if subnet.contains(&gw) && gw != subnet.network() && gw != subnet.broadcast() => Ok(gw),
        Some(gw) => Err(Error::InvalidArgument(format!("gateway {gw} is not a host address of {subnet}"))),
        None => subnet.hosts().next().ok_or_else(|| Error::InvalidArgument(format!("subnet {subnet} has no hosts"))),
    }
}

pub fn check_mtu(mtu: u32) -> Result<u32> {
    if (68..=65535).contains(&mtu) {
        Ok(mtu)
    } else {
        Err(Error::InvalidArgument(format!("invalid mtu {mtu}: use 68 to 65535")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(list: &[(&str, &str)]) -> InUse {
        InUse { nets: list.iter().map(|(n, w)| (n.parse().unwrap(), w.to_string())).collect() }
    }

    #[test]
    fn picks_the_next_free_range() {
        assert_eq!(choose(&used(&[])).unwrap().to_string(), "10.88.0.0/16");
        let busy = used(&[("10.88.5.0/24", "route via eth0"), ("10.89.0.1/16", "address of eth1")]);
        assert_eq!(choose(&busy).unwrap().to_string(), "10.90.0.0/16");
        // A wide host route covers the whole 10/8 pool.
        assert_eq!(choose(&used(&[("10.0.0.0/8", "route")])).unwrap().to_string(), "172.18.0.0/16");
        let overlays = used(&[("10.0.0.0/24", "a"), ("10.0.1.0/28", "b")]);
        assert_eq!(choose_overlay(&overlays).unwrap().to_string(), "10.0.2.0/24");
    }

    #[test]
    fn gateways_and_mtus() {
        let s: Ipv4Net = "10.0.5.0/24".parse().unwrap();
        assert_eq!(gateway(s, None).unwrap(), Ipv4Addr::new(10, 0, 5, 1));
        assert_eq!(gateway(s, Some(Ipv4Addr::new(10, 0, 5, 9))).unwrap(), Ipv4Addr::new(10, 0, 5, 9));
        assert!(gateway(s, Some(Ipv4Addr::new(10, 0, 5, 255))).is_err());
        assert!(check_mtu(1400).is_ok() && check_mtu(67).is_err());
    }

    #[test]
    fn reserved_ranges_are_refused() {
        let none = used(&[]);
        for (net, kind) in [("224.1.0.0/24", "multicast"), ("127.5.0.0/16", "loopback"), ("0.0.0.0/1", "this network")]
        {
            let err = check(net.parse().unwrap(), &none).unwrap_err().to_string();
            assert!(err.contains(kind), "{net}: {err}");
        }
        assert!(check("10.1.0.0/24".parse().unwrap(), &none).is_ok());
    }

    #[test]
    fn user_subnets_that_overlap_are_refused_with_the_clash_named() {
        let busy = used(&[("10.0.0.0/8", "route 10.0.0.0/8 dev eth0")]);
        let err = check("10.32.0.0/12".parse().unwrap(), &busy).unwrap_err().to_string();
        assert!(err.contains("10.0.0.0/8") && err.contains("dev eth0"), "{err}");
        assert!(check("192.168.7.0/24".parse().unwrap(), &busy).is_ok());
        assert!(check("192.168.7.0/31".parse().unwrap(), &busy).is_err());
    }
}
