//! Kernel settings the daemon writes through /proc/sys: per-interface
//! ones, and the host-wide limits a thousand containers on one bridge
//! need, raised the way large hosts raise them.

use crate::error::{Error, Result};

/// Host-wide limits and the least each must be. They exist only in the
/// initial network namespace, so a daemon in another one leaves them as
/// they are; they are only ever raised, never lowered.
/// - The ARP table: past the default hard limit of 1,024 entries, new
///   neighbours are refused and traffic fails with "No route to host".
/// - Each CPU's receive backlog: a broadcast (an ARP request) on a bridge
///   of 1,023 containers is copied to 1,022 veths at once, each copy queued
///   on the sending CPU. With the default of 1,000, the copies for the
///   oldest ports (flooded last) are dropped every time, and those
///   containers answer no ARP: their neighbours fail with "No route to host".
const HOST_LIMITS: [(&str, u64); 4] = [
    ("net/ipv4/neigh/default/gc_thresh1", 4096),
    ("net/ipv4/neigh/default/gc_thresh2", 8192),
    ("net/ipv4/neigh/default/gc_thresh3", 16384),
    ("net/core/netdev_max_backlog", 4096),
];

pub fn raise_host_limits() {
    for (key, want) in HOST_LIMITS {
        let Ok(now) = std::fs::read_to_string(format!("/proc/sys/{key}")) else { continue };
        if let Some(value) = raised(now.trim(), want) {
            match write_sysctl(key, &value) {
                Ok(()) => tracing::info!("raised {key} from {} to {value}", now.trim()),
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }
}

/// The value to write, if `current` is below `want`.
fn raised(current: &str, want: u64) -> Option<String> {
    let current: u64 = current.parse().ok()?;
    (current < want).then(|| want.to_string())
}

pub fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{key}");
    std::fs::write(&path, value).map_err(|e| Error::io(format!("write {path}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_limits_are_only_raised() {
        assert_eq!(raised("1024", 16384), Some("16384".to_string()));
        assert_eq!(raised("100000", 16384), None);
        assert_eq!(raised("garbage", 16384), None);
    }
}
