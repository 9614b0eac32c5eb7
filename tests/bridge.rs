//! Bridge networking with real traffic: the six flows of the reference page,
//! port publishing, user-defined networks, DNS and teardown.

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use integration_tests::http::{body, client, eventually, get_from, get_in, http_cmd, serve_dir, start_web};
use integration_tests::{bin_dir, import_tools, wait_for, Bg, Daemon, Netns, World, EXT_IP, HOST_IP};

fn ip_of(d: &Daemon, name: &str) -> String {
    let c = d.inspect(name);
    let nets = c["NetworkSettings"]["Networks"].as_object().unwrap();
    nets.values().next().unwrap()["IPAddress"].as_str().unwrap().to_string()
}

fn fails_in(d: &Daemon, container: &str, url: &str) -> bool {
    body(&d.ctl(&["exec", container, "sh", "-c", &http_cmd(url)]).stdout).is_none()
}

/// Looks a name up inside a container with busybox nslookup (its own DNS
/// client: the static busybox cannot use glibc's resolver): the server it
/// asked and the address it got.
fn lookup_in(d: &Daemon, container: &str, name: &str) -> (String, Option<String>) {
    let out = d.ctl(&["exec", container, "nslookup", name]).stdout;
    let server = out.lines().find_map(|l| l.strip_prefix("Server:")).unwrap_or_default().trim().to_string();
    let answer = out.split_once("Name:").and_then(|(_, answer)| {
        answer.lines().find_map(|l| l.trim().strip_prefix("Address:").map(|a| a.trim().to_string()))
    });
    (server, answer)
}

fn resolve_in(d: &Daemon, container: &str, name: &str) -> Option<String> {
    lookup_in(d, container, name).1
}

#[test]
fn default_bridge_wires_eth0_with_address_route_and_mac() {
    let w = World::new();
    let d = &w.d;
    let out = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; ip route; cat /sys/class/net/eth0/address /sys/class/net/eth0/mtu",
    ]);
    let addr = out.lines().next().unwrap();
    assert!(addr.contains("inet 10.88.0."), "{out}");
    assert!(out.contains("default via 10.88.0.1 dev eth0"), "{out}");
    assert!(out.contains("02:42:0a:58:00:"), "MAC derived from the IP: {out}");
    assert!(out.lines().any(|l| l == "1500"), "{out}");
    assert_eq!(d.ns.exec("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert!(d.ns.exec("ip -o addr show runtime0").contains("10.88.0.1/16"));
}

#[test]
fn the_six_traffic_flows() {
    let w = World::new();
    let d = &w.d;
    let site = d.dir.join("site");
    serve_dir(&site);
    let _host_web = Bg::spawn(&d.ns, &format!("busybox httpd -f -p 8081 -h {}", site.display()));
    let _ext_web = Bg::spawn(&w.ext, &format!("busybox httpd -f -p 8082 -h {}", site.display()));
    start_web(d, "a", &[]);
    d.ok(&["run", "-d", "--name", "b", "busybox", "sleep", "600"]);
    let a = ip_of(d, "a");
    // 1. container -> container on the same bridge.
    assert_eq!(get_in(d, "b", &format!("http://{a}/")), "hello\n");
    // 2. container -> gateway address (host INPUT).
    assert_eq!(get_in(d, "b", "http://10.88.0.1:8081/"), "outside\n");
    // 3. container -> the host's own LAN address.
    assert_eq!(get_in(d, "b", &format!("http://{HOST_IP}:8081/")), "outside\n");
    // 4. host -> container IP, from the bridge address.
    assert_eq!(client(get_from(&d.ns, &format!("http://{a}/cgi-bin/ip"))), "10.88.0.1");
    // 5. container -> another machine: masqueraded to the host's address.
    assert_eq!(client(get_in(d, "b", &format!("http://{EXT_IP}:8082/cgi-bin/ip"))), HOST_IP);
    // 6. another machine -> container IP via its route to the host: no NAT.
    assert_eq!(client(get_from(&w.ext, &format!("http://{a}/cgi-bin/ip"))), EXT_IP);
}

#[test]
fn published_ports_answer_in_every_case() {
    let w = World::new();
    let d = &w.d;
    start_web(d, "web", &["-p", "8080:80"]);
    d.ok(&["run", "-d", "--name", "peer", "busybox", "sleep", "600"]);
    d.ok(&["network", "create", "other"]);
    d.ok(&["run", "-d", "--name", "stranger", "--network", "other", "busybox", "sleep", "600"]);
    let url = format!("http://{HOST_IP}:8080/");
    // External host -> host IP:port.
    assert_eq!(get_from(&w.ext, &url), "hello\n");
    assert_eq!(client(get_from(&w.ext, &format!("{url}cgi-bin/ip"))), EXT_IP, "no source NAT from outside");
    // The host itself -> its own address, and -> 127.0.0.1.
    assert_eq!(get_from(&d.ns, &url), "hello\n");
    assert_eq!(get_from(&d.ns, "http://127.0.0.1:8080/"), "hello\n");
    // A container on the same bridge -> host IP:port (hairpin), and itself.
    assert_eq!(get_in(d, "peer", &url), "hello\n");
    assert_eq!(get_in(d, "web", &url), "hello\n");
    // A container on another network -> host IP:port.
    assert_eq!(get_in(d, "stranger", &url), "hello\n");
    let ps = d.ok(&["ps"]);
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    assert_eq!(d.ok(&["port", "web"]), "80/tcp -> 0.0.0.0:8080\n");
}

#[test]
fn port_ranges_random_ports_and_conflicts() {
    let w = World::new();
    let d = &w.d;
    start_web(d, "r", &["-p", "9000-9002:80-82", "-p", "80"]);
    let ports = d.ok(&["port", "r"]);
    assert!(ports.contains("80/tcp -> 0.0.0.0:9000") && ports.contains("82/tcp -> 0.0.0.0:9002"), "{ports}");
    let random: u16 = ports
        .lines()
        .find(|l| !l.contains(":900"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("a chosen host port");
    assert!(random >= 49153, "{ports}");
    assert_eq!(get_from(&w.ext, &format!("http://{HOST_IP}:9000/")), "hello\n");
    assert_eq!(get_from(&w.ext, &format!("http://{HOST_IP}:{random}/")), "hello\n");
    // Another container cannot take a published port...
    let out = d.ctl(&["run", "-d", "-p", "9001:80", "busybox", "true"]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("already published"), "{out:?}");
    // ...nor one a host process listens on.
    let _listener = Bg::spawn(&d.ns, "busybox nc -ll -p 9100 -e true");
    std::thread::sleep(Duration::from_millis(300));
    let out = d.ctl(&["run", "-d", "-p", "9100:80", "busybox", "true"]);
    assert!(out.code == 125 && out.stderr.contains("in use by a process"), "{out:?}");
    assert_eq!(d.container_ids().len(), 1, "refused containers leave nothing");
}

#[test]
fn container_mode_shares_the_namespace() {
    let mut w = World::new();
    let d = &w.d;
    start_web(d, "owner", &[]);
    d.ok(&["run", "-d", "--name", "side", "--network", "container:owner", "busybox", "sleep", "600"]);
    assert_eq!(get_in(d, "side", "http://127.0.0.1/"), "hello\n");
    let side_ip = d.ok(&["exec", "side", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(side_ip.contains(&ip_of(d, "owner")), "{side_ip}");
    // As in docker, the joiner has the owner's hostname and /etc files.
    assert_eq!(d.ok(&["exec", "side", "hostname"]), d.ok(&["exec", "owner", "hostname"]));
    let hosts = d.ok(&["exec", "side", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{}\t", ip_of(d, "owner"))), "{hosts}");
    let out = d.ctl(&["run", "-d", "--network", "container:owner", "--hostname", "x", "busybox", "true"]);
    assert!(out.code == 125 && out.stderr.contains("conflicting options: --hostname"), "{out:?}");
    let out = d.ctl(&["rm", "-f", "owner"]);
    assert!(out.code == 125 && out.stderr.contains("uses its network namespace"), "{out:?}");
    // A restarted daemon knows the joiner too.
    w.d.kill9();
    w.d.spawn();
    let d = &w.d;
    let out = d.ctl(&["rm", "-f", "owner"]);
    assert!(out.code == 125 && out.stderr.contains("container side uses"), "{out:?}");
    d.ok(&["rm", "-f", "side"]);
    d.ok(&["rm", "-f", "owner"]);
}

#[test]
fn user_networks_are_isolated_and_resolve_names() {
    let w = World::new();
    let d = &w.d;
    d.ok(&["network", "create", "--subnet", "10.99.1.0/24", "net1"]);
    d.ok(&["network", "create", "--subnet", "10.99.2.0/24", "net2"]);
    start_web(d, "web1", &["--network", "net1", "--network-alias", "www"]);
    start_web(d, "web2", &["--network", "net2"]);
    d.ok(&["run", "-d", "--name", "c1", "--network", "net1", "busybox", "sleep", "600"]);
    let web1 = ip_of(d, "web1");
    assert_eq!(resolve_in(d, "c1", "web1").as_deref(), Some(web1.as_str()), "names resolve on a user network");
    assert_eq!(resolve_in(d, "c1", "www").as_deref(), Some(web1.as_str()), "aliases too");
    assert_eq!(get_in(d, "c1", &format!("http://{web1}/")), "hello\n");
    let web2 = ip_of(d, "web2");
    assert!(fails_in(d, "c1", &format!("http://{web2}/")), "net1 cannot reach net2");
    assert_eq!(resolve_in(d, "c1", "web2"), None, "net2's names are not on net1");
    let resolv = d.ok(&["exec", "c1", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.99.1.1"), "{resolv}");
    // Connect c1 to net2: eth1 appears, web2 is reachable, and it survives a restart.
    d.ok(&["network", "connect", "net2", "c1"]);
    assert!(d.ok(&["exec", "c1", "ip", "-o", "-4", "addr", "show", "eth1"]).contains("10.99.2."));
    assert_eq!(get_in(d, "c1", &format!("http://{web2}/")), "hello\n");
    let hosts = d.ok(&["exec", "c1", "cat", "/etc/hosts"]);
    assert!(hosts.contains("10.99.1.") && hosts.contains("10.99.2."), "/etc/hosts follows connect: {hosts}");
    d.ok(&["stop", "-t", "1", "c1"]);
    d.ok(&["start", "c1"]);
    assert!(d.ok(&["exec", "c1", "ip", "-o", "-4", "addr", "show", "eth1"]).contains("10.99.2."));
    d.ok(&["network", "disconnect", "net2", "c1"]);
    assert_ne!(d.ctl(&["exec", "c1", "ip", "addr", "show", "eth1"]).code, 0, "eth1 is gone");
    let hosts = d.ok(&["exec", "c1", "cat", "/etc/hosts"]);
    assert!(hosts.contains("10.99.1.") && !hosts.contains("10.99.2."), "and disconnect: {hosts}");
    let out = d.ctl(&["network", "rm", "net1"]);
    assert!(out.code == 125 && out.stderr.contains("in use"), "{out:?}");
}

#[test]
fn internal_networks_have_no_egress() {
    let w = World::new();
    let d = &w.d;
    let site = d.dir.join("site");
    serve_dir(&site);
    let _ext_web = Bg::spawn(&w.ext, &format!("busybox httpd -f -p 8082 -h {}", site.display()));
    d.ok(&["network", "create", "--internal", "--subnet", "10.99.3.0/24", "closed"]);
    d.ok(&["run", "-d", "--name", "in", "--network", "closed", "busybox", "sleep", "600"]);
    d.ok(&["run", "-d", "--name", "out", "busybox", "sleep", "600"]);
    assert_eq!(get_in(d, "out", &format!("http://{EXT_IP}:8082/")), "outside\n");
    assert!(fails_in(d, "in", &format!("http://{EXT_IP}:8082/")), "internal: no egress");
    let out = d.ctl(&["run", "-d", "--network", "closed", "-p", "8085:80", "busybox", "true"]);
    assert!(out.code == 125 && out.stderr.contains("internal"), "{out:?}");
}

#[test]
fn bad_network_input_is_refused_clearly() {
    let w = World::new();
    let d = &w.d;
    // Overlaps the host's link to the external machine.
    let out = d.ctl(&["network", "create", "--subnet", "10.210.0.0/16", "clash"]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("overlaps") && out.stderr.contains("10.210.0."), "{out:?}");
    d.ok(&["network", "create", "--subnet", "10.99.9.0/30", "tiny"]);
    d.ok(&["run", "-d", "--name", "first", "--network", "tiny", "busybox", "sleep", "600"]);
    let out = d.ctl(&["run", "-d", "--network", "tiny", "busybox", "sleep", "600"]);
    assert!(out.code == 125 && out.stderr.contains("no available IP addresses"), "{out:?}");
    let out = d.ctl(&["run", "-d", "--network", "tiny", "--ip", "10.99.9.2", "busybox", "true"]);
    assert!(out.code == 125 && out.stderr.contains("already in use"), "{out:?}");
    let out = d.ctl(&["run", "-d", "--network", "nowhere", "busybox", "true"]);
    assert!(out.code == 125 && out.stderr.contains("network nowhere not found"), "{out:?}");
    let out = d.ctl(&["network", "create", "tiny"]);
    assert!(out.code == 125 && out.stderr.contains("already exists"), "{out:?}");
    assert_eq!(d.container_ids().len(), 1);
}

#[test]
fn static_ip_and_mac_are_honoured() {
    let w = World::new();
    let d = &w.d;
    d.ok(&["network", "create", "--subnet", "10.99.4.0/24", "fixed"]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        "10.99.4.77",
        "--mac-address",
        "02:aa:bb:cc:dd:ee",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; cat /sys/class/net/eth0/address",
    ]);
    assert!(out.contains("10.99.4.77/24") && out.contains("02:aa:bb:cc:dd:ee"), "{out}");
}

#[test]
fn removal_leaves_no_links_addresses_rules_or_namespaces() {
    let w = World::new();
    let d = &w.d;
    d.ok(&["network", "create", "net1"]);
    start_web(d, "p1", &["-p", "8090:80", "-p", "8091:80/udp"]);
    d.ok(&["run", "-d", "--name", "p2", "--network", "net1", "busybox", "sleep", "600"]);
    d.ok(&["network", "connect", "bridge", "p2"]);
    let links_before = d.ns.exec("ip -o link");
    assert!(links_before.contains("vrt"), "{links_before}");
    d.ok(&["rm", "-f", "p1", "p2"]);
    // The kernel deletes a removed container's veths with its namespace,
    // in the background.
    wait_for("the removed containers' veths to go", Duration::from_secs(5), || {
        (!d.ns.exec("ip -o link").contains("vrt")).then_some(())
    });
    let nft = d.ns.exec("nft list table ip runtimed");
    assert!(!nft.contains("8090") && !nft.contains("8091"), "port elements remain: {nft}");
    d.ok(&["network", "rm", "net1"]);
    assert!(!d.ns.exec("ip -o link").contains("rt-"), "the network's bridge is gone");
    let net: serde_json::Value = serde_json::from_str(&d.ok(&["network", "inspect", "bridge"])).unwrap();
    assert!(net[0]["Containers"].as_object().unwrap().is_empty(), "no allocations remain");
    assert!(d.leftovers().is_empty(), "leftovers: {:?}", d.leftovers());
}

/// Asks the `udp-echo` server at `target` (HOST:PORT) from a network
/// namespace, until it answers; returns the answer.
fn udp_ask_from(ns: &Netns, target: &str) -> String {
    let ask = format!("{} ask {target} ping", bin_dir().join("udp-echo").display());
    eventually(&format!("udp {target} from {}", ns.name), || {
        let out = std::process::Command::new("ip").args(["netns", "exec", &ns.name, "sh", "-c", &ask]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
}

/// The same from inside a container of the `tools` image.
fn udp_ask_in(d: &Daemon, container: &str, target: &str) -> String {
    eventually(&format!("udp {target} from {container}"), || {
        let out = d.ctl(&["exec", container, "udp-echo", "ask", target, "ping"]);
        (out.code == 0).then_some(out.stdout)
    })
}

#[test]
fn udp_ports_are_published_too() {
    let w = World::new();
    let d = &w.d;
    import_tools(d);
    d.ok(&["run", "-d", "--name", "echo", "-p", "5300:53/udp", "tools", "udp-echo", "serve", "53"]);
    d.ok(&["run", "-d", "--name", "peer", "tools", "sleep", "600"]);
    d.ok(&["network", "create", "other"]);
    d.ok(&["run", "-d", "--name", "stranger", "--network", "other", "tools", "sleep", "600"]);
    let target = format!("{HOST_IP}:5300");
    // External host -> host IP:port.
    assert_eq!(udp_ask_from(&w.ext, &target), "echo:ping\n");
    // The host itself -> its own address, and -> 127.0.0.1.
    assert_eq!(udp_ask_from(&d.ns, &target), "echo:ping\n");
    assert_eq!(udp_ask_from(&d.ns, "127.0.0.1:5300"), "echo:ping\n");
    // A container on the same bridge -> host IP:port (hairpin), and itself.
    assert_eq!(udp_ask_in(d, "peer", &target), "echo:ping\n");
    assert_eq!(udp_ask_in(d, "echo", &target), "echo:ping\n");
    // A container on another network -> host IP:port.
    assert_eq!(udp_ask_in(d, "stranger", &target), "echo:ping\n");
    assert_eq!(d.ok(&["port", "echo"]), "53/udp -> 0.0.0.0:5300\n");
}

/// What the fake DNS server answers to every A question.
const FAKE_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

/// A DNS server on `ip`:53 in a namespace, answering every A question with
/// FAKE_ANSWER (and other questions with no records), until dropped.
struct FakeDns {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeDns {
    fn start(ns: &Netns, ip: &str) -> FakeDns {
        let (path, bind) = (ns.path(), format!("{ip}:53"));
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let (ready, started) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            // setns moves only this thread into the namespace.
            let ns = std::fs::File::open(&path).expect("open netns");
            assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {path}");
            let sock = UdpSocket::bind(&bind).expect("bind DNS server");
            sock.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
            ready.send(()).expect("ready");
            let mut buf = [0u8; 512];
            while !stopping.load(Ordering::SeqCst) {
                if let Ok((n, peer)) = sock.recv_from(&mut buf) {
                    if let Some(reply) = dns_reply(&buf[..n]) {
                        let _ = sock.send_to(&reply, peer);
                    }
                }
            }
        });
        started.recv().expect("the DNS server thread failed");
        FakeDns { stop, thread: Some(thread) }
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The answer to a one-question DNS query: FAKE_ANSWER for type A.
fn dns_reply(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[4..6] != [0, 1] {
        return None;
    }
    // The question: labels up to the root label, then type and class.
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + query[end] as usize;
    }
    let question = query.get(12..end + 5)?;
    let is_a = question[question.len() - 4..question.len() - 2] == [0, 1];
    let mut reply = query[..2].to_vec();
    // QR and the query's RD; RA; one question, an answer for A.
    reply.extend_from_slice(&[0x80 | (query[2] & 1), 0x80, 0, 1, 0, is_a as u8, 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if is_a {
        // Name (pointer to the question's), type A, class IN, TTL 60, 4 bytes.
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&FAKE_ANSWER.octets());
    }
    Some(reply)
}

/// The nameserver lines of a container's /etc/resolv.conf.
fn nameservers(d: &Daemon, container: &str) -> Vec<String> {
    let resolv = d.ok(&["exec", container, "cat", "/etc/resolv.conf"]);
    resolv.lines().filter(|l| l.starts_with("nameserver")).map(String::from).collect()
}

#[test]
fn dns_add_host_and_hostname_reach_the_container() {
    let w = World::new();
    let d = &w.d;
    // The external machine serves DNS; containers reach it masqueraded.
    let _dns = FakeDns::start(&w.ext, EXT_IP);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "named",
        "--add-host",
        "db.example:10.1.2.3",
        "--hostname",
        "myhost",
        "--dns",
        EXT_IP,
        "busybox",
        "sleep",
        "600",
    ]);
    let ip = ip_of(d, "named");
    let hosts = d.ok(&["exec", "named", "cat", "/etc/hosts"]);
    assert!(hosts.lines().any(|l| l == "10.1.2.3\tdb.example"), "--add-host: {hosts}");
    assert!(hosts.lines().any(|l| l == format!("{ip}\tmyhost")), "own address under --hostname: {hosts}");
    assert!(hosts.lines().any(|l| l.starts_with("127.0.0.1") && l.contains("localhost")), "{hosts}");
    assert_eq!(d.ok(&["exec", "named", "cat", "/etc/hostname"]), "myhost\n");
    assert_eq!(d.ok(&["exec", "named", "hostname"]), "myhost\n");
    assert_eq!(nameservers(d, "named"), [format!("nameserver {EXT_IP}")]);
    // Names are resolved by the --dns server.
    let by_fake_dns = (EXT_IP.to_string(), Some(FAKE_ANSWER.to_string()));
    assert_eq!(lookup_in(d, "named", "anything.example"), by_fake_dns);

    // On a user-defined network, as with docker's embedded DNS, the
    // container keeps the network's DNS server (its gateway), which answers
    // container names and forwards the rest to the container's --dns server.
    d.ok(&["network", "create", "--subnet", "10.99.5.0/24", "net1"]);
    d.ok(&["run", "-d", "--name", "plain", "--network", "net1", "busybox", "sleep", "600"]);
    d.ok(&["run", "-d", "--name", "custom", "--network", "net1", "--dns", EXT_IP, "busybox", "sleep", "600"]);
    assert_eq!(nameservers(d, "custom"), ["nameserver 10.99.5.1"]);
    assert_eq!(nameservers(d, "plain"), ["nameserver 10.99.5.1"]);
    let via_gateway = ("10.99.5.1".to_string(), Some(FAKE_ANSWER.to_string()));
    assert_eq!(lookup_in(d, "custom", "anything.example"), via_gateway);
    assert_eq!(resolve_in(d, "custom", "plain"), Some(ip_of(d, "plain")), "container names still resolve");
    assert_eq!(resolve_in(d, "plain", "custom"), Some(ip_of(d, "custom")));
    // --add-host also applies with the host's network.
    let hosts = d.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--add-host",
        "db.example:10.1.2.3",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(hosts.contains("10.1.2.3\tdb.example"), "{hosts}");
}

#[test]
fn networking_survives_a_daemon_crash() {
    let mut w = World::new();
    start_web(&w.d, "web", &["-p", "8080:80"]);
    let url = format!("http://{HOST_IP}:8080/");
    assert_eq!(get_from(&w.ext, &url), "hello\n");
    let ip = ip_of(&w.d, "web");
    w.d.kill9();
    assert_eq!(get_from(&w.ext, &url), "hello\n", "published port answers while the daemon is down");
    w.d.spawn();
    assert_eq!(get_from(&w.ext, &url), "hello\n");
    assert_eq!(ip_of(&w.d, "web"), ip);
    let other = w.d.ok(&["run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(!other.contains(&format!("{ip}/")), "the address is not handed out twice: {other}");
    let out = w.d.ctl(&["run", "-d", "-p", "8080:80", "busybox", "true"]);
    assert!(out.code == 125 && out.stderr.contains("already published"), "nor the port: {out:?}");
    w.d.ok(&["rm", "-f", "web"]);
    w.d.ok(&["run", "-d", "--name", "next", "-p", "8080:80", "busybox", "sleep", "600"]);
}

#[test]
fn a_full_bridge_is_a_clear_error_that_leaves_nothing() {
    let d = Daemon::start();
    d.ok(&["network", "create", "--subnet", "10.77.0.0/16", "crowd"]);
    let net: serde_json::Value = serde_json::from_str(&d.ok(&["network", "inspect", "crowd"])).unwrap();
    let bridge = net[0]["Options"]["bridge"].as_str().unwrap().to_string();
    // A Linux bridge numbers its ports 1..=1023: take them all but one
    // with veth ends, which is quicker than 1,022 containers.
    let batch = d.dir.join("fill.batch");
    let lines: String = (0..1022)
        .map(|i| format!("link add fill{i} type veth peer name fill{i}p\nlink set fill{i} master {bridge}\n"))
        .collect();
    std::fs::write(&batch, lines).unwrap();
    d.ns.exec(&format!("ip -batch {}", batch.display()));
    d.ok(&["run", "-d", "--name", "last", "--network", "crowd", "busybox", "sleep", "300"]);
    let out = d.ctl(&["run", "--name", "one-too-many", "--network", "crowd", "busybox", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("network crowd is full") && out.stderr.contains("1023"), "{out:?}");
    assert_eq!(d.container_ids().len(), 1, "the refused container is gone");
    let links = d.ns.exec(&format!("ip -o link show master {bridge} | wc -l"));
    assert_eq!(links.trim(), "1023", "no half-plugged interface is left");
    d.ns.exec("ip link del fill0");
    d.ok(&["run", "--rm", "--network", "crowd", "busybox", "true"]);
    d.ok(&["rm", "-f", "last"]);
    let del = d.dir.join("empty.batch");
    std::fs::write(&del, (1..1022).map(|i| format!("link del fill{i}\n")).collect::<String>()).unwrap();
    d.ns.exec(&format!("ip -batch {}", del.display()));
    d.ok(&["network", "rm", "crowd"]);
}
