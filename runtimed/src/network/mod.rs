//! Container network modes. The daemon prepares a container's network
//! namespace before the container starts; the container joins it by path.

pub mod dns;
pub mod netns;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// Own namespace with only `lo`, up.
    #[default]
    None,
    /// The daemon's own network namespace.
    Host,
}

impl NetworkMode {
    /// Parses `--network`; empty means the default mode.
    pub fn parse(s: &str) -> Result<NetworkMode> {
        match s {
            "" | "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            other => Err(Error::NotFound(format!("network {other} not found"))),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        }
    }

    /// Whether the container gets a namespace of its own from the daemon.
    pub fn owns_netns(&self) -> bool {
        matches!(self, NetworkMode::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        assert_eq!(NetworkMode::parse("").unwrap(), NetworkMode::None);
        assert_eq!(NetworkMode::parse("host").unwrap(), NetworkMode::Host);
        assert!(matches!(NetworkMode::parse("nope"), Err(Error::NotFound(_))));
    }
}
