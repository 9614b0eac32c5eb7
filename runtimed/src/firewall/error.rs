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
