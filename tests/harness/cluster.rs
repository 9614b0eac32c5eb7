//! A multi-node cluster on one machine: an "underlay" namespace holding a
//! bridge (the physical network) and a real etcd, and N nodes, each a
//! namespace with its own `runtimed`, linked to the underlay by a veth.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{sh, unique, Daemon, Netns};

/// The underlay's address, where etcd listens.
pub const ETCD_IP: &str = "10.220.0.1";
/// Seconds a node's lease lives without renewal (short, for the tests).
pub const NODE_TTL: u64 = 4;

/// The cluster store: one etcd member in the underlay namespace.
pub struct Etcd {
    ns: String,
    dir: String,
    child: Option<Child>,
}

impl Etcd {
    fn new(ns: &Netns) -> Etcd {
        let dir = format!("/tmp/{}", unique("etcd"));
        let mut etcd = Etcd { ns: ns.name.clone(), dir, child: None };
        etcd.start();
        etcd
    }

    /// Starts etcd (keeping its data) and waits until it serves.
    pub fn start(&mut self) {
        let client = format!("http://{ETCD_IP}:2379");
        let log = std::fs::File::create(format!("{}.log", self.dir)).expect("etcd log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "etcd", "--name", "e1", "--data-dir", &self.dir])
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-cluster", "e1=http://127.0.0.1:2380"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd (apt-get install etcd-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let health = format!("ip netns exec {} etcdctl --endpoints {client} endpoint health >/dev/null 2>&1", self.ns);
        while Instant::now() < deadline {
            if Command::new("sh").arg("-c").arg(&health).status().is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etcd did not come up:\n{}", std::fs::read_to_string(format!("{}.log", self.dir)).unwrap_or_default());
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `etcdctl` in the underlay; returns stdout.
    pub fn ctl(&self, args: &str) -> String {
        sh(&format!("ip netns exec {} etcdctl --endpoints http://{ETCD_IP}:2379 {args}", self.ns))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(format!("{}.log", self.dir));
    }
}

pub struct Node {
    pub name: String,
    /// Underlay address (the VXLAN tunnel endpoint).
    pub addr: String,
    pub d: Daemon,
}

pub struct Cluster {
    // Field order is drop order: daemons first, then etcd, then the underlay.
    pub nodes: Vec<Node>,
    pub etcd: Etcd,
    pub underlay: Netns,
}

impl Cluster {
    /// `n` nodes named n1..nN with addresses 10.220.0.11.., all joined.
    pub fn new(n: usize) -> Cluster {
        Cluster::build(n, true)
    }

    /// `n` nodes started without `--node-name`: they all take the
    /// machine's hostname (the namespaces share its UTS namespace), like
    /// cloned VMs.
    pub fn unnamed(n: usize) -> Cluster {
        Cluster::build(n, false)
    }

    fn build(n: usize, named: bool) -> Cluster {
        let underlay = Netns::new(&unique("ul"));
        underlay
            .exec(&format!("ip link add br0 type bridge && ip addr add {ETCD_IP}/24 dev br0 && ip link set br0 up"));
        let etcd = Etcd::new(&underlay);
        let mut c = Cluster { nodes: Vec::new(), etcd, underlay };
        for _ in 0..n {
            let node = c.try_add(named.then(|| format!("n{}", c.nodes.len() + 1)).as_deref());
            c.nodes.push(node.unwrap_or_else(|e| panic!("{e}")));
        }
        c
    }

    /// Starts one more node (address 10.220.0.1N, N = its number) named
    /// `name` (None: the hostname), without adding it to `nodes`; the error
    /// says how its daemon exited, with its log.
    pub fn try_add(&self, name: Option<&str>) -> Result<Node, String> {
        node(&self.underlay, self.nodes.len() + 1, name)
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i - 1]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i - 1]
    }

    /// Node `i` and etcd stop hearing each other (both directions), while
    /// the underlay still bridges VXLAN between the nodes.
    pub fn cut_from_etcd(&self, i: usize) {
        self.node(i).d.ns.exec(&format!("ip route add blackhole {ETCD_IP}/32"));
        self.underlay.exec(&format!("ip route add blackhole {}/32", self.node(i).addr));
    }

    pub fn heal(&self, i: usize) {
        self.node(i).d.ns.exec(&format!("ip route del blackhole {ETCD_IP}/32"));
        self.underlay.exec(&format!("ip route del blackhole {}/32", self.node(i).addr));
    }
}

fn node(underlay: &Netns, i: usize, name: Option<&str>) -> Result<Node, String> {
    let addr = format!("10.220.0.{}", 10 + i);
    let store = format!("etcd://{ETCD_IP}:2379");
    let mut args: Vec<String> = ["--cluster-store", &store, "--advertise", &addr, "--node-ttl", &NODE_TTL.to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(name) = name {
        args.extend(["--node-name".to_string(), name.to_string()]);
    }
    let wire = |ns: &Netns| {
        let (outer, inner) = (unique("ulp"), unique("uln"));
        sh(&format!("ip link add {outer} netns {} type veth peer name {inner} netns {}", underlay.name, ns.name));
        underlay.exec(&format!("ip link set {outer} master br0 up"));
        ns.exec(&format!("ip addr add {addr}/24 dev {inner} && ip link set {inner} up"));
    };
    let d = Daemon::try_start_with(wire, args)?;
    let name = name.map_or_else(|| sh("hostname").trim().to_string(), String::from);
    Ok(Node { name, addr, d })
}
