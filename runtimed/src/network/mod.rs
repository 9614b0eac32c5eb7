//! Container network modes. The daemon prepares a container's network
//! namespace before the container starts; the container joins it by path.

pub mod driver;
mod heal;
pub mod manager;
pub mod overlay;
pub mod record;
pub mod sysctl;
pub mod vxlan;

pub use crate::records::subnet;
pub use crate::store::{ipam, ports};
pub use manager::Networks;
pub use record::{Endpoint, NetworkRecord};
pub mod netns;

pub use crate::records::network::NetworkMode;
