//! Choosing subnets that do not clash with the host's addresses, routes or
//! our other networks.

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

/// A user-given subnet must not overlap anything in use.
pub fn check(subnet: Ipv4Net, in_use: &InUse) -> Result<()> {
    if subnet.prefix_len() > 30 {
        return Err(Error::InvalidArgument(format!("subnet {subnet} is too small (at most /30)")));
    }
    match in_use.clash(&subnet) {
        Some((net, what)) => Err(Error::InvalidArgument(format!(
            "subnet {subnet} overlaps {net} ({what})"
        ))),
        None => Ok(()),
    }
}

/// The first pool range that overlaps nothing in use.
pub fn choose(in_use: &InUse) -> Result<Ipv4Net> {
    pool()
        .find(|candidate| in_use.clash(candidate).is_none())
        .ok_or_else(|| Error::FailedPrecondition("no free subnet left in the address pool".into()))
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
