//! Typed errors of the firewall module.

use nftables::helper::NftablesError;

/// What went wrong while talking to nftables.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// `nft` ran and rejected the request; `message` is nft's own stderr
    /// (e.g. "Could not process rule: File exists" for a port already
    /// published to another container). The whole transaction was rolled back.
    #[error("nft could not {action}: {message}")]
    Nft { action: &'static str, message: String },
    /// `nft` could not be started or its output was not UTF-8.
    #[error("could not run nft to {action}: {source}")]
    Exec {
        action: &'static str,
        #[source]
        source: NftablesError,
    },
    /// The JSON ruleset could not be handed to `nft` (memfd creation or write).
    #[error("could not pass the ruleset to nft: {0}")]
    Payload(#[from] std::io::Error),
    /// Another bridge of ours already uses an overlapping subnet.
    #[error("subnet {subnet} overlaps {other} of bridge {bridge}")]
    SubnetOverlap { subnet: ipnet::Ipv4Net, other: ipnet::Ipv4Net, bridge: String },
    /// `nft` answered with JSON we did not expect.
    #[error("unexpected nft output while trying to {action}: {detail}")]
    Output { action: &'static str, detail: String },
}

/// Result of every firewall operation.
pub type Result<T> = std::result::Result<T, FirewallError>;

impl FirewallError {
    /// Wraps an error of the `nftables` crate, keeping nft's message.
    pub(super) fn from_nft(action: &'static str, err: NftablesError) -> Self {
        match err {
            NftablesError::NftFailed { stdout, stderr, .. } => {
                let message = if stderr.trim().is_empty() { stdout } else { stderr };
                FirewallError::Nft { action, message: message.trim().to_string() }
            }
            source => FirewallError::Exec { action, source },
        }
    }

    pub(super) fn output(action: &'static str, detail: impl std::fmt::Display) -> Self {
        FirewallError::Output { action, detail: detail.to_string() }
    }
}

/// At the daemon's edge a firewall error keeps its meaning: an overlap is
/// the caller's mistake, an `nft` that cannot run is the host's, the rest
/// is ours.
impl From<FirewallError> for crate::error::Error {
    fn from(err: FirewallError) -> Self {
        use crate::error::Error;
        let message = format!("firewall: {err}");
        match err {
            FirewallError::SubnetOverlap { .. } => Error::InvalidArgument(message),
            FirewallError::Exec { .. } => Error::Unavailable(message),
            FirewallError::Nft { .. } | FirewallError::Payload(_) | FirewallError::Output { .. } => {
                Error::Internal(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn firewall_errors_keep_their_meaning_at_the_edge() {
        let overlap = FirewallError::SubnetOverlap {
            subnet: "10.1.0.0/24".parse().unwrap(),
            other: "10.1.0.0/16".parse().unwrap(),
            bridge: "br0".into(),
        };
        assert!(matches!(Error::from(overlap), Error::InvalidArgument(m) if m.contains("overlaps")));
        let nft = FirewallError::Nft { action: "publish ports", message: "File exists".into() };
        assert!(
            matches!(Error::from(nft), Error::Internal(m) if m == "firewall: nft could not publish ports: File exists")
        );
    }
}
