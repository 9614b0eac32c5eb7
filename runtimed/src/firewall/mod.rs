//! nftables rules owned by the daemon (being written).
#![allow(dead_code)]
