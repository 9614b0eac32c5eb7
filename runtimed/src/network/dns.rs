//! Per-network DNS server (being written).
#![allow(dead_code)]
