//! Container network modes. The daemon prepares a container's network
//! namespace before the container starts; the container joins it by path.

pub mod dns;
pub mod driver;
mod heal;
pub mod ipam;
pub mod manager;
pub mod netlink;
pub mod overlay;
pub mod ports;
pub mod record;
pub(crate) mod subnet;
pub mod vxlan;

pub use manager::Networks;
pub use record::{Endpoint, NetworkRecord};
pub mod netns;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Own namespace with only `lo`, up.
    None,
    /// The daemon's own network namespace.
    Host,
    /// Own namespace with `eth0` on a bridge network (by name as given).
    Bridge(String),
    /// The namespace of another container (by id).
    Container(String),
}

impl Default for NetworkMode {
    fn default() -> Self {
        NetworkMode::Bridge(record::DEFAULT_NETWORK.to_string())
    }
}

impl NetworkMode {
    /// Parses `--network`; empty means the default bridge network. Bridge
    /// network names and container references are checked at create.
    pub fn parse(s: &str) -> Result<NetworkMode> {
        match s {
            "" => Ok(NetworkMode::default()),
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            other => match other.strip_prefix("container:") {
                Some("") => Err(Error::InvalidArgument("--network container: needs a container name or id".into())),
                Some(c) => Ok(NetworkMode::Container(c.to_string())),
                None => Ok(NetworkMode::Bridge(other.to_string())),
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            NetworkMode::None => "none".into(),
            NetworkMode::Host => "host".into(),
            NetworkMode::Bridge(n) => n.clone(),
            NetworkMode::Container(c) => format!("container:{c}"),
        }
    }

    /// Whether the container gets a namespace of its own from the daemon.
    pub fn owns_netns(&self) -> bool {
        matches!(self, NetworkMode::None | NetworkMode::Bridge(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        assert_eq!(NetworkMode::parse("").unwrap(), NetworkMode::Bridge("bridge".into()));
        assert_eq!(NetworkMode::parse("none").unwrap(), NetworkMode::None);
        assert_eq!(NetworkMode::parse("host").unwrap(), NetworkMode::Host);
        assert_eq!(NetworkMode::parse("container:web").unwrap(), NetworkMode::Container("web".into()));
        assert!(NetworkMode::parse("container:").is_err());
        assert_eq!(NetworkMode::parse("net1").unwrap().name(), "net1");
    }
}
