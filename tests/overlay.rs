//! Overlay networks across nodes: each node a namespace with its own
//! `runtimed`, all on one underlay bridge, sharing a real etcd.

use std::time::{Duration, Instant};

use integration_tests::{Cluster, Daemon};

fn ip_on(d: &Daemon, container: &str, network: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", container])).unwrap();
    v[0]["NetworkSettings"]["Networks"][network]["IPAddress"].as_str().expect("address on the network").to_string()
}

/// Waits (up to `secs`) until `check` holds.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {secs}s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pings(d: &Daemon, container: &str, target: &str) -> bool {
    d.ctl(&["exec", container, "ping", "-c", "1", "-W", "1", target]).code == 0
}

fn sleeper(d: &Daemon, name: &str, network: &str) {
    d.ok(&["run", "-d", "--name", name, "--network", network, "busybox", "sleep", "600"]);
}

#[test]
fn two_nodes_share_an_overlay_network() {
    let c = Cluster::new(2);
    let (n1, n2) = (&c.node(1).d, &c.node(2).d);
    eventually(10, "both nodes listed alive", || {
        let out = n1.ok(&["node", "ls"]);
        out.lines().filter(|l| l.contains("alive")).count() == 2
    });
    n1.ok(&["network", "create", "--driver", "overlay", "net1"]);
    eventually(10, "net1 visible on n2", || n2.ok(&["network", "ls"]).contains("net1"));
    sleeper(n1, "a1", "net1");
    sleeper(n2, "a2", "net1");
    let a2 = ip_on(n2, "a2", "net1");
    eventually(10, "a1 pings a2 by address", || pings(n1, "a1", &a2));
    eventually(10, "a1 pings a2 by name", || pings(n1, "a1", "a2"));
    assert!(pings(n2, "a2", "a1"), "and back");
    let mtu = n1.ok(&["exec", "a1", "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(mtu.trim(), "1450", "underlay MTU minus VXLAN's 50 bytes");
}
