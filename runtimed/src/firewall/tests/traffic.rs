//! Real traffic through our rules, between network namespaces the test
//! creates: the test thread is the "host", other [`Node`]s are an external
//! machine on the host's LAN and containers on bridges. Servers answer with
//! the peer address they see, which shows whether and how NAT happened.
//!
//! ```text
//!   ext 10.99.0.2 ── ext0 10.99.0.1 (+10.99.0.3)  [host]
//!   br0 172.30.0.1/24: c1 .2 (server), c2 .3
//!   br1 172.31.0.1/24: c3 .2
//!   br2 172.32.0.1/24 (internal): c4 .2 (server)
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::netns::{in_netns, Node};
use super::{firewall, net, port, sh};
use crate::firewall::{Firewall, PortMap, Proto};

const TIMEOUT: Duration = Duration::from_millis(1500);

/// Sets up the topology above inside the current (test) namespace.
struct Lab {
    ext: Node,
    c1: Node,
    c2: Node,
    c3: Node,
    c4: Node,
}

impl Lab {
    /// `br_netfilter`: whether bridged (L2) traffic also goes through the
    /// IP hooks, where the kernel has it; the rules must work both ways.
    /// The sysctl is per network namespace on current kernels (checked on
    /// 6.18), so only the test's namespace is changed.
    fn new(br_netfilter: bool) -> Lab {
        sh("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        if std::path::Path::new("/proc/sys/net/bridge").exists() {
            let value = format!("net.bridge.bridge-nf-call-iptables={}", u8::from(br_netfilter));
            sh("sysctl", &["-qw", &value]);
        }
        for (br, gw) in [("br0", "172.30.0.1/24"), ("br1", "172.31.0.1/24"), ("br2", "172.32.0.1/24")] {
            sh("ip", &["link", "add", br, "type", "bridge"]);
            sh("ip", &["addr", "add", gw, "dev", br]);
            sh("ip", &["link", "set", br, "up"]);
        }
        // What the daemon does for host -> 127.0.0.1:port.
        sh("sysctl", &["-qw", "net.ipv4.conf.br0.route_localnet=1"]);
        let lab =
            Lab { ext: Node::spawn(), c1: Node::spawn(), c2: Node::spawn(), c3: Node::spawn(), c4: Node::spawn() };
        lab.wire_external();
        container(&lab.c1, "br0", "veth-c1", "172.30.0.2/24", "172.30.0.1");
        container(&lab.c2, "br0", "veth-c2", "172.30.0.3/24", "172.30.0.1");
        container(&lab.c3, "br1", "veth-c3", "172.31.0.2/24", "172.31.0.1");
        container(&lab.c4, "br2", "veth-c4", "172.32.0.2/24", "172.32.0.1");
        lab
    }

    fn wire_external(&self) {
        sh("ip", &["link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns", &self.ext.tid()]);
        sh("ip", &["addr", "add", "10.99.0.1/24", "dev", "ext0"]);
        sh("ip", &["addr", "add", "10.99.0.3/24", "dev", "ext0"]);
        sh("ip", &["link", "set", "ext0", "up"]);
        self.ext.sh("ip", &["addr", "add", "10.99.0.2/24", "dev", "eth0"]);
        self.ext.sh("ip", &["link", "set", "eth0", "up"]);
        // Flow 6: a LAN machine with a route to the container subnets.
        self.ext.sh("ip", &["route", "add", "172.30.0.0/16", "via", "10.99.0.1"]);
    }
}

fn container(node: &Node, bridge: &str, host_if: &str, addr: &str, gw: &str) {
    sh("ip", &["link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", &node.tid()]);
    sh("ip", &["link", "set", host_if, "master", bridge, "up"]);
    node.sh("ip", &["addr", "add", addr, "dev", "eth0"]);
    node.sh("ip", &["link", "set", "eth0", "up"]);
    node.sh("ip", &["route", "add", "default", "via", gw]);
}

/// A TCP or UDP server answering every client with the client's address.
struct Server(Arc<AtomicBool>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn serve_tcp(node: &Node, port: u16) -> Server {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    node.run(move || {
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind tcp");
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => drop(s.write_all(peer.ip().to_string().as_bytes())),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    });
    Server(stop)
}

fn serve_udp(node: &Node, port: u16) -> Server {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    node.run(move || {
        let sock = UdpSocket::bind(("0.0.0.0", port)).expect("bind udp");
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(peer.ip().to_string().as_bytes(), peer);
                }
            }
        });
    });
    Server(stop)
}

/// Connects to `to` and returns what the server said (its view of our
/// address), or None if the connection failed or timed out.
fn tcp_get(to: &str) -> Option<String> {
    let addr: SocketAddr = to.parse().unwrap();
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn udp_get(to: &str) -> Option<String> {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    sock.send_to(b"hi", to).ok()?;
    let mut buf = [0u8; 64];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// `tcp_get` run from inside `node`.
fn tcp_from(node: &Node, to: &'static str) -> Option<String> {
    node.run(move || tcp_get(to))
}

fn publish_all(fw: &Firewall) -> Vec<PortMap> {
    let bound = PortMap { host_ip: Some("10.99.0.1".parse().unwrap()), ..port(Proto::Tcp, 8081, "172.30.0.2", 80) };
    let maps = vec![
        port(Proto::Tcp, 8080, "172.30.0.2", 80),
        bound,
        port(Proto::Udp, 5353, "172.30.0.2", 5353),
        port(Proto::Tcp, 8082, "172.32.0.2", 80),
    ];
    fw.publish(&maps[..3]).unwrap(); // container c1
    fw.publish(&maps[3..]).unwrap(); // container c4, internal network
    maps
}

#[test]
fn firewall_traffic_through_published_ports() {
    in_netns(|| traffic(false));
}

#[test]
fn firewall_traffic_through_published_ports_with_br_netfilter() {
    in_netns(|| traffic(true));
}

fn traffic(br_netfilter: bool) {
    let lab = Lab::new(br_netfilter);
    let fw = firewall();
    fw.add_network(&net("br0", "172.30.0.0/24", false)).unwrap();
    fw.add_network(&net("br1", "172.31.0.0/24", false)).unwrap();
    fw.add_network(&net("br2", "172.32.0.0/24", true)).unwrap();
    let _servers =
        [serve_tcp(&lab.c1, 80), serve_udp(&lab.c1, 5353), serve_tcp(&lab.c4, 80), serve_tcp(&lab.ext, 9000)];
    let maps = publish_all(&fw);

    check_published_ports(&lab);
    check_networks(&lab);

    fw.unpublish(&maps).unwrap();
    assert_eq!(tcp_from(&lab.ext, "10.99.0.1:8080"), None, "unpublished port still open");
    assert_eq!(tcp_get("127.0.0.1:8080"), None);
}

fn check_published_ports(lab: &Lab) {
    // External host -> host IP:port (prerouting DNAT), client address kept.
    assert_eq!(tcp_from(&lab.ext, "10.99.0.1:8080").as_deref(), Some("10.99.0.2"));
    assert_eq!(lab.ext.run(|| udp_get("10.99.0.1:5353")).as_deref(), Some("10.99.0.2"));
    // Bound to 10.99.0.1 only: the host's other address does not forward it.
    assert_eq!(tcp_from(&lab.ext, "10.99.0.1:8081").as_deref(), Some("10.99.0.2"));
    assert_eq!(tcp_from(&lab.ext, "10.99.0.3:8081"), None);
    assert_eq!(tcp_from(&lab.ext, "10.99.0.3:8080").as_deref(), Some("10.99.0.2"));
    // The host itself -> its own IP:port (output DNAT).
    assert_eq!(tcp_get("10.99.0.1:8080").as_deref(), Some("10.99.0.1"));
    // The host -> 127.0.0.1:port (output DNAT + masquerade to the bridge IP).
    assert_eq!(tcp_get("127.0.0.1:8080").as_deref(), Some("172.30.0.1"));
    // Hairpin: a container on the same bridge -> host IP:port.
    assert_eq!(tcp_from(&lab.c2, "10.99.0.1:8080").as_deref(), Some("172.30.0.1"));
    // A container on another network -> host IP:port.
    assert_eq!(tcp_from(&lab.c3, "10.99.0.1:8080").as_deref(), Some("172.30.0.1"));
    // Published port of a container on an internal network: unreachable.
    assert_eq!(tcp_from(&lab.ext, "10.99.0.1:8082"), None);
}

fn check_networks(lab: &Lab) {
    // Egress is masqueraded to the host's address.
    assert_eq!(tcp_from(&lab.c1, "10.99.0.2:9000").as_deref(), Some("10.99.0.1"));
    // A LAN machine routing to the container subnet reaches it without NAT.
    assert_eq!(tcp_from(&lab.ext, "172.30.0.2:80").as_deref(), Some("10.99.0.2"));
    // Same bridge: direct; other network: isolated.
    assert_eq!(tcp_from(&lab.c2, "172.30.0.2:80").as_deref(), Some("172.30.0.3"));
    assert_eq!(tcp_from(&lab.c3, "172.30.0.2:80"), None);
    // Internal network: no egress, nothing in from other networks; the
    // host itself still reaches it.
    assert_eq!(tcp_from(&lab.c4, "10.99.0.2:9000"), None);
    assert_eq!(tcp_from(&lab.c1, "172.32.0.2:80"), None);
    assert_eq!(tcp_get("172.32.0.2:80").as_deref(), Some("172.32.0.1"));
}
