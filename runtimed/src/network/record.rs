//! What the network layer adds to the stored network records: the
//! driver's scope and the IPAM view of a network.

pub use crate::records::network::*;

impl NetworkRecord {
    /// How far it reaches ("local", "global"), as its driver says.
    pub fn scope(&self) -> &'static str {
        super::driver::of(self).map_or("local", |d| d.scope().as_str())
    }

    /// Its address space, as IPAM sees it.
    pub fn pool(&self) -> super::ipam::Pool<'_> {
        super::ipam::Pool { network_id: &self.id, network_name: &self.name, subnet: self.subnet, gateway: self.gateway }
    }
}
