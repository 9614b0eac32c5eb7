//! The shared records: what the store persists and every layer passes
//! around (containers, images, networks, endpoints, ports). The bottom
//! layer: it imports nothing of the daemon but its error type, so the
//! store, firewall and cluster can use these without reaching up into the
//! services that manage them.

pub mod container;
pub mod image;
pub mod network;
pub mod port;
pub mod subnet;
