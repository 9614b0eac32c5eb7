//! Overlay networks across nodes: each node a namespace with its own
//! `runtimed`, all on one underlay bridge, sharing a real etcd.

use std::time::Duration;

use integration_tests::{wait_for, Cluster, Daemon};

/// A field of the container's endpoint on `network`, from `inspect`.
fn endpoint_field(d: &Daemon, container: &str, network: &str, field: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", container])).unwrap();
    v[0]["NetworkSettings"]["Networks"][network][field].as_str().expect("an endpoint on the network").to_string()
}

fn ip_on(d: &Daemon, container: &str, network: &str) -> String {
    endpoint_field(d, container, network, "IPAddress")
}

fn mac_on(d: &Daemon, container: &str, network: &str) -> String {
    endpoint_field(d, container, network, "MacAddress")
}

/// Creates an overlay network on node 1 (with `extra` flags) and waits
/// until every node lists it.
fn overlay(c: &Cluster, name: &str, extra: &[&str]) {
    let mut args = vec!["network", "create", "--driver", "overlay"];
    args.extend_from_slice(extra);
    args.push(name);
    c.node(1).d.ok(&args);
    for n in &c.nodes {
        eventually(10, &format!("{name} on {}", n.name), || n.d.ok(&["network", "ls"]).contains(name));
    }
}

/// Waits (up to `secs`) until `check` holds.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    wait_for(what, Duration::from_secs(secs), || check().then_some(()));
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
    overlay(&c, "net1", &[]);
    sleeper(n1, "a1", "net1");
    sleeper(n2, "a2", "net1");
    let a2 = ip_on(n2, "a2", "net1");
    eventually(10, "a1 pings a2 by address", || pings(n1, "a1", &a2));
    eventually(10, "a1 pings a2 by name", || pings(n1, "a1", "a2"));
    assert!(pings(n2, "a2", "a1"), "and back");
    let mtu = n1.ok(&["exec", "a1", "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(mtu.trim(), "1450", "underlay MTU minus VXLAN's 50 bytes");

    // The data plane goes with a node's last container; the network with rm.
    assert!(n1.ns.exec("ip -o link").contains("ovx256"));
    n1.ok(&["rm", "-f", "a1"]);
    let links = n1.ns.exec("ip -o link");
    assert!(!links.contains("ovx256") && !links.contains("ovbr256"), "{links}");
    n2.ok(&["rm", "-f", "a2"]);
    n2.ok(&["network", "rm", "net1"]);
    eventually(10, "net1 gone on n1", || !n1.ok(&["network", "ls"]).contains("net1"));
}

/// busybox httpd answering `name` on port 80.
fn web(d: &Daemon, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    let serve = format!("mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -p 80 -h /www");
    args.extend_from_slice(&["busybox", "sh", "-c", &serve]);
    d.ok(&args);
}

/// `GET /` from inside a container with busybox nc; the body if a 200.
fn fetch_in(d: &Daemon, container: &str, host: &str, port: u16) -> Option<String> {
    let cmd = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}");
    let out = d.ctl(&["exec", container, "sh", "-c", &cmd]).stdout;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.trim().to_string())
}

/// MACs the VXLAN device of `network` sends to a remote node.
fn fdb_macs(d: &Daemon, network: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["network", "inspect", network])).unwrap();
    let vni = v[0]["Options"]["vni"].as_u64().expect("vni");
    d.ns.exec(&format!("bridge fdb show dev ovx{vni} | grep ' dst ' || true"))
}

#[test]
fn three_nodes_talk_by_name_and_networks_stay_apart() {
    let c = Cluster::new(3);
    let (n1, n2, n3) = (&c.node(1).d, &c.node(2).d, &c.node(3).d);
    n1.ok(&["network", "create", "--driver", "overlay", "net1"]);
    n2.ok(&["network", "create", "--driver", "overlay", "--subnet", "10.0.42.0/24", "net2"]);
    eventually(10, "both networks on n3", || {
        let ls = n3.ok(&["network", "ls"]);
        ls.contains("net1") && ls.contains("net2") && ls.contains("global")
    });
    sleeper(n1, "a1", "net1");
    web(n2, "a2", &["--network", "net1", "--network-alias", "www"]);
    web(n3, "a3", &["--network", "net1"]);
    web(n2, "b2", &["--network", "net2"]);
    sleeper(n3, "b3", "net2");
    eventually(10, "a1 pings a2 and a3 by name", || pings(n1, "a1", "a2") && pings(n1, "a1", "a3"));
    eventually(10, "TCP to a2 by alias", || fetch_in(n1, "a1", "www", 80).as_deref() == Some("a2"));
    eventually(10, "TCP to a3 by address", || {
        fetch_in(n1, "a1", &ip_on(n3, "a3", "net1"), 80).as_deref() == Some("a3")
    });
    eventually(10, "b3 reaches b2 on net2", || fetch_in(n3, "b3", "b2", 80).as_deref() == Some("b2"));
    let b2 = ip_on(n2, "b2", "net2");
    assert!(b2.starts_with("10.0.42."), "{b2}");
    // net1 cannot reach net2: across nodes, on the same node, or by name.
    assert!(fetch_in(n1, "a1", &b2, 80).is_none(), "a1 (n1, net1) reached b2 (n2, net2)");
    assert!(fetch_in(n3, "a3", &ip_on(n3, "b3", "net2"), 80).is_none() && !pings(n3, "a3", &ip_on(n3, "b3", "net2")));
    assert!(!pings(n2, "a2", &b2), "a2 reached b2 on the same node");
    assert!(!pings(n1, "a1", "b2"), "net2's names resolve on net1");
    // Removal is refused while any node has a container on the network.
    let out = n1.ctl(&["network", "rm", "net2"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("in use"), "{out:?}");
}

#[test]
fn overlay_containers_have_egress_and_published_ports() {
    let c = Cluster::new(2);
    let (n1, n2) = (&c.node(1).d, &c.node(2).d);
    overlay(&c, "net1", &[]);
    web(n2, "web", &["--network", "net1", "-p", "8080:80"]);
    sleeper(n1, "client", "net1");
    // Published on n2's underlay address, fetched from a container on n1
    // (its egress goes out through n1's gateway bridge).
    let url_host = &c.node(2).addr;
    eventually(10, "published port from another node", || {
        fetch_in(n1, "client", url_host, 8080).as_deref() == Some("web")
    });
    let route = n1.ok(&["exec", "client", "ip", "route"]);
    assert!(route.contains("default via") && route.contains("dev eth1"), "egress on eth1: {route}");
    assert!(pings(n1, "client", integration_tests::ETCD_IP), "the underlay (outside world) answers");
    // A container on the default bridge joins the overlay as eth1, and leaves.
    n1.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "600"]);
    n1.ok(&["network", "connect", "net1", "plain"]);
    let web = ip_on(n2, "web", "net1");
    eventually(10, "connected container reaches web", || fetch_in(n1, "plain", &web, 80).as_deref() == Some("web"));
    n1.ok(&["network", "disconnect", "net1", "plain"]);
    assert!(fetch_in(n1, "plain", &web, 80).is_none());
}

#[test]
fn concurrent_starts_on_two_nodes_never_share_an_address() {
    let c = Cluster::new(2);
    overlay(&c, "small", &["--subnet", "10.0.50.0/28"]);
    let names: Vec<(usize, String)> = (0..10).map(|i| (1 + i % 2, format!("c{i}"))).collect();
    std::thread::scope(|s| {
        for (node, name) in &names {
            let d = &c.node(*node).d;
            s.spawn(move || sleeper(d, name, "small"));
        }
    });
    let mut ips: Vec<String> = names.iter().map(|(node, name)| ip_on(&c.node(*node).d, name, "small")).collect();
    ips.sort();
    let before = ips.len();
    ips.dedup();
    assert_eq!(ips.len(), before, "an address was handed out twice: {ips:?}");
    // A /28 has 13 addresses for containers; three more fit, then it is full.
    for i in 0..3 {
        sleeper(&c.node(1).d, &format!("x{i}"), "small");
    }
    let out = c.node(2).d.ctl(&["run", "-d", "--network", "small", "busybox", "true"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("no free address"), "{out:?}");
    // rm frees the address for any node.
    let freed = ip_on(&c.node(1).d, "x0", "small");
    c.node(1).d.ok(&["rm", "-f", "x0"]);
    sleeper(&c.node(2).d, "y", "small");
    assert_eq!(ip_on(&c.node(2).d, "y", "small"), freed);
}

#[test]
fn a_dead_node_leaves_the_others_fdb() {
    let mut c = Cluster::new(2);
    overlay(&c, "net1", &[]);
    sleeper(&c.node(1).d, "a1", "net1");
    sleeper(&c.node(2).d, "a2", "net1");
    let mac = mac_on(&c.node(2).d, "a2", "net1");
    eventually(10, "n1 knows a2's MAC", || fdb_macs(&c.node(1).d, "net1").contains(&mac));
    c.node_mut(2).d.kill9();
    let ttl = integration_tests::NODE_TTL;
    eventually(ttl + 10, "a2's entry gone from n1 after the lease", || !fdb_macs(&c.node(1).d, "net1").contains(&mac));
    let nodes = node_ls(&c.node(1).d);
    assert!(nodes.iter().any(|n| n["Name"] == "n2" && n["Alive"] == false), "{nodes:?}");
    // Back up: it re-registers and its container is reachable again.
    c.node_mut(2).d.spawn();
    eventually(10, "a2 back in n1's FDB", || fdb_macs(&c.node(1).d, "net1").contains(&mac));
    eventually(10, "a1 pings a2 again", || pings(&c.node(1).d, "a1", "a2"));
    eventually(10, "n2's DNS answers again after its restart", || pings(&c.node(2).d, "a2", "a1"));
}

/// `node ls` as JSON documents (ID, Name, Address, Alive, Self).
fn node_ls(d: &Daemon) -> Vec<serde_json::Value> {
    serde_json::from_str(&d.ok(&["node", "ls", "--format", "json"])).expect("node ls JSON")
}

/// The id `node ls` on `d` gives the daemon itself, once it lists it.
fn own_id(d: &Daemon) -> String {
    let mut id = None;
    eventually(10, "the daemon lists itself", || {
        id = node_ls(d).iter().find(|n| n["Self"] == true).and_then(|n| n["ID"].as_str().map(String::from));
        id.is_some()
    });
    id.expect("an id")
}

#[test]
fn nodes_with_the_same_hostname_are_two_nodes() {
    let c = Cluster::unnamed(2);
    let (n1, n2) = (&c.node(1).d, &c.node(2).d);
    assert_eq!(c.node(1).name, c.node(2).name, "the harness nodes share the hostname");
    eventually(10, "both nodes listed alive", || node_ls(n1).iter().filter(|n| n["Alive"] == true).count() == 2);
    let nodes = node_ls(n1);
    assert!(nodes.iter().all(|n| n["Name"] == c.node(1).name.as_str()), "{nodes:?}");
    assert_ne!(own_id(n1), own_id(n2));
    let table = n1.ok(&["node", "ls"]);
    assert!(table.starts_with("ID ") && table.contains(&own_id(n2)[..12]), "{table}");
    overlay(&c, "net1", &[]);
    sleeper(n1, "a1", "net1");
    sleeper(n2, "a2", "net1");
    eventually(10, "a1 pings a2 by name", || pings(n1, "a1", "a2"));
    assert!(pings(n2, "a2", "a1"), "and back");
    // A member of the old layout (keyed by name) is skipped, not fatal.
    c.etcd.ctl(r#"put /runtimed/members/old '{"name":"old","address":"10.220.0.99","joined_at":1}'"#);
    c.etcd.ctl("put /runtimed/alive/old '{}'");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(node_ls(n1).len(), 2, "the old record is not listed");
    assert!(n1.log().contains("not of this layout"), "a warning says why");
}

#[test]
fn an_explicit_name_held_by_a_live_node_is_refused() {
    let mut c = Cluster::new(2);
    let n1 = own_id(&c.node(1).d);
    let err = c.try_add(Some("n1")).err().expect("a second n1 is refused");
    let want = format!("node name n1 is already used by live node {} at {}", &n1[..12], c.node(1).addr);
    assert!(err.contains(&want) && err.contains("pick another --node-name"), "{err}");
    assert!(!err.contains("exit status: 0"), "the daemon exits non-zero: {err}");
    // Once n1 is dead (its lease gone), its name is free again.
    c.node_mut(1).d.kill9();
    let ttl = integration_tests::NODE_TTL;
    eventually(ttl + 10, "n1 down", || node_ls(&c.node(2).d).iter().any(|n| n["Name"] == "n1" && n["Alive"] == false));
    let new = c.try_add(Some("n1")).expect("a dead node's name is reused");
    assert_ne!(own_id(&new.d), n1);
}

#[test]
fn a_restarted_node_keeps_its_id() {
    let mut c = Cluster::new(2);
    let id = own_id(&c.node(2).d);
    let file = c.node(2).d.root().join("node-id");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    c.node_mut(2).d.stop();
    c.node_mut(2).d.spawn();
    assert_eq!(own_id(&c.node(2).d), id);
    eventually(10, "n1 lists n2 alive under the same id, once", || {
        let nodes = node_ls(&c.node(1).d);
        nodes.len() == 2 && nodes.iter().any(|n| n["ID"] == id.as_str() && n["Name"] == "n2" && n["Alive"] == true)
    });
}

#[test]
fn etcd_outage_keeps_traffic_and_catches_up() {
    let mut c = Cluster::new(2);
    overlay(&c, "net1", &[]);
    sleeper(&c.node(1).d, "a1", "net1");
    sleeper(&c.node(1).d, "gone", "net1");
    sleeper(&c.node(2).d, "a2", "net1");
    let gone = mac_on(&c.node(1).d, "gone", "net1");
    eventually(10, "a1 pings a2", || pings(&c.node(1).d, "a1", "a2"));
    eventually(10, "n2 knows gone", || fdb_macs(&c.node(2).d, "net1").contains(&gone));

    c.etcd.stop();
    let a2 = ip_on(&c.node(2).d, "a2", "net1");
    assert!(pings(&c.node(1).d, "a1", &a2), "running containers keep talking");
    let out = c.node(1).d.ctl(&["run", "-d", "--name", "late", "--network", "net1", "busybox", "sleep", "60"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("cluster store"), "a clear error: {out:?}");
    assert!(c.node(1).d.ctl(&["inspect", "late"]).code != 0, "nothing left of the failed create");
    c.node(1).d.ok(&["rm", "-f", "gone"]);

    c.etcd.start();
    eventually(20, "n2 drops the container removed during the outage", || {
        !fdb_macs(&c.node(2).d, "net1").contains(&gone)
    });
    sleeper(&c.node(1).d, "late", "net1");
    eventually(10, "a2 reaches the new container", || pings(&c.node(2).d, "a2", "late"));
}

#[test]
fn overlay_needs_a_cluster() {
    let d = Daemon::start();
    let out = d.ctl(&["network", "create", "--driver", "overlay", "net1"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("--cluster-store"), "{out:?}");
    let out = d.ctl(&["node", "ls"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("not part of a cluster"), "{out:?}");
}

#[test]
fn a_node_cut_off_from_etcd_catches_up() {
    let c = Cluster::new(2);
    let (n1, n2) = (&c.node(1).d, &c.node(2).d);
    overlay(&c, "net1", &[]);
    sleeper(n1, "old", "net1");
    sleeper(n2, "b", "net1");
    let old = mac_on(n1, "old", "net1");
    eventually(10, "n2 knows old", || fdb_macs(n2, "net1").contains(&old));

    // n2 loses etcd (not the underlay: VXLAN still flows); n1 changes things.
    c.cut_from_etcd(2);
    n1.ok(&["rm", "-f", "old"]);
    n1.ok(&["run", "-d", "--name", "new", "--network", "net1", "--ip", "10.0.0.77", "busybox", "sleep", "600"]);
    let new = mac_on(n1, "new", "net1");
    assert!(fdb_macs(n2, "net1").contains(&old), "n2 cannot have heard of it yet");

    c.heal(2);
    eventually(20, "n2 reconciled", || {
        let fdb = fdb_macs(n2, "net1");
        fdb.contains(&new) && !fdb.contains(&old)
    });
    eventually(10, "b reaches new by its static address", || pings(n2, "b", "10.0.0.77"));
}
