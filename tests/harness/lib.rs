//! Test worlds for integration tests.
//!
//! Each test gets a "host" network namespace running its own `runtimed`
//! (own root, run dir, socket and cgroup parent), so tests run in parallel
//! and never touch the machine's network. Everything is removed on drop,
//! whether the test passed or panicked.

mod cluster;
mod daemon;
pub mod http;
mod image;
mod netns;
pub mod nginx;
pub mod oci;
mod proxy;
mod pty;
mod registry;
mod world;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use cluster::{Cluster, Etcd, Node, ETCD_IP, NODE_TTL};
pub use daemon::{Daemon, Output};
pub use image::{image_dirs, import_tools};
pub use netns::Netns;
pub use proxy::CuttingProxy;
pub use pty::Pty;
pub use registry::{skopeo_inspect, Registry, REGISTRY_PORT};
pub use world::{Bg, World, EXT_IP, HOST_IP};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process and call, short enough for a netns
/// or interface name.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Directory holding the workspace's built binaries (target/debug).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RUNTIMED_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // The test executable lives in target/<profile>/deps.
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(|p| p.parent()).expect("target dir").to_path_buf()
}

/// Polls `probe` every 50 ms until it gives a value, panicking with `what`
/// after `timeout`: for servers that take a moment, and state that settles.
pub fn wait_for<T>(what: &str, timeout: std::time::Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs a shell command on the test machine (inside no namespace), panicking
/// on failure: only for building test topology.
pub fn sh(cmd: &str) -> String {
    let out = std::process::Command::new("sh").arg("-c").arg(cmd).output().expect("spawn sh");
    assert!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
