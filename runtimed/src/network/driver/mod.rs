//! Network drivers: what differs between kinds of networks (where addresses
//! come from, what carries the packets, how far the network reaches) sits
//! behind one trait, picked once from the network record's `driver` field.
//! `Networks` keeps what all drivers share (the store, netlink, firewall,
//! DNS) and hands it to the driver; nothing else asks which driver it is.
//!
//! A new driver is a file implementing [`NetworkDriver`] and a line in
//! [`DRIVERS`].

mod bridge;
mod overlay;

use std::net::Ipv4Addr;

use futures::future::BoxFuture;

use super::manager::{AttachRequest, NetworkRequest, Networks};
use super::record::{Endpoint, NetworkRecord};
use crate::error::{Error, Result};

pub use bridge::BridgeDriver;
pub use overlay::OverlayDriver;

/// Every driver the daemon knows, by the name records carry.
const DRIVERS: &[&dyn NetworkDriver] = &[&BridgeDriver, &OverlayDriver];

/// How far a network reaches, as `network inspect` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This node only.
    Local,
    /// Every node of the cluster.
    Global,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Local => "local",
            Scope::Global => "global",
        }
    }
}

/// One kind of network. Methods get the shared machinery (`nets`) rather
/// than owning it, so drivers stay stateless and registration is one line.
/// Futures are boxed so that drivers can be chosen at run time.
pub trait NetworkDriver: Send + Sync {
    /// The name `network create --driver` takes and records keep.
    fn name(&self) -> &'static str;

    fn scope(&self) -> Scope;

    /// Creates the network and stores its record.
    fn create<'a>(&'a self, nets: &'a Networks, req: NetworkRequest) -> BoxFuture<'a, Result<NetworkRecord>>;

    /// Removes a network (not the daemon's own) and its record, or refuses
    /// while containers use it.
    fn remove<'a>(&'a self, nets: &'a Networks, net: &'a NetworkRecord) -> BoxFuture<'a, Result<()>>;

    /// At daemon start: brings back what the network needs on this host.
    fn restore<'a>(&'a self, nets: &'a Networks, net: &'a NetworkRecord) -> BoxFuture<'a, Result<()>>;

    /// Takes an address for a container's endpoint: `req.ip` if given.
    fn allocate<'a>(
        &'a self,
        nets: &'a Networks,
        net: &'a NetworkRecord,
        container_id: &'a str,
        req: &'a AttachRequest,
    ) -> BoxFuture<'a, Result<Ipv4Addr>>;

    /// Frees an endpoint's address.
    fn release<'a>(&'a self, nets: &'a Networks, ep: &'a Endpoint) -> BoxFuture<'a, Result<()>>;

    /// Brings the data plane up (if needed) and returns the index of the
    /// bridge containers plug into and the MTU they get.
    fn data_plane<'a>(&'a self, nets: &'a Networks, net: &'a NetworkRecord) -> BoxFuture<'a, Result<(u32, u32)>>;

    /// Whether a container's first interface on it takes the default route.
    fn routes_default(&self) -> bool;

    /// Whether containers also need a leg on the local gateway network for
    /// egress and published ports (the network itself does not route out).
    fn needs_gateway_leg(&self) -> bool;

    /// After an endpoint left (its container's record already updated):
    /// frees what only endpoints needed.
    fn endpoint_left<'a>(&'a self, nets: &'a Networks, net: &'a NetworkRecord) -> BoxFuture<'a, ()>;
}

/// The driver named `name`; empty means bridge, as in docker.
pub fn lookup(name: &str) -> Result<&'static dyn NetworkDriver> {
    let name = if name.is_empty() { BridgeDriver.name() } else { name };
    DRIVERS.iter().copied().find(|d| d.name() == name).ok_or_else(|| {
        let known: Vec<&str> = DRIVERS.iter().map(|d| d.name()).collect();
        Error::InvalidArgument(format!("network driver {name} is not supported (use {})", known.join(" or ")))
    })
}

/// The driver of a stored network.
pub fn of(net: &NetworkRecord) -> Result<&'static dyn NetworkDriver> {
    lookup(&net.driver).map_err(|_| Error::internal(format!("network {} has unknown driver {}", net.name, net.driver)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_by_name() {
        assert_eq!(lookup("").unwrap().name(), "bridge");
        assert_eq!(lookup("overlay").unwrap().scope(), Scope::Global);
        let err = lookup("macvlan").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("network driver macvlan is not supported (use bridge or overlay)"));
    }
}
