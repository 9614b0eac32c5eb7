//! A full network: 1,023 running containers on one bridge (all the ports a
//! Linux bridge has), every traffic flow between them and the world, a
//! daemon restart with all of them running, and the 1,024th refused in one
//! line. The only test in its binary, so it runs alone. Timings are
//! printed, never asserted (bench/scale.sh measures them beside runc).

use std::time::Instant;

use integration_tests::http::{client, get_from, get_in, serve_dir, start_web};
use integration_tests::{Bg, Daemon, World, EXT_IP, HOST_IP};

/// Containers a bridge holds.
const FULL: usize = 1023;
/// `runtimectl run` processes at once while filling the network.
const CLIENTS: usize = 4;

#[test]
fn a_full_network_keeps_every_flow_and_survives_a_restart() {
    raise_backlog();
    let mut w = World::new();
    let site = w.d.dir.join("site");
    serve_dir(&site);
    let _host_web = Bg::spawn(&w.d.ns, &format!("busybox httpd -f -p 8081 -h {}", site.display()));
    let _ext_web = Bg::spawn(&w.ext, &format!("busybox httpd -f -p 8082 -h {}", site.display()));
    w.d.ok(&["network", "create", "--subnet", "10.90.0.0/20", "big"]);
    start_web(&w.d, "web", &["--network", "big", "-p", "8080:80"]);
    let started = Instant::now();
    fill(&w.d);
    eprintln!("{FULL} containers running after {:.1?}", started.elapsed());
    let last = format!("s{}", FULL - 2);
    flows(&w, &last);

    let out = w.d.ctl(&["run", "--network", "big", "busybox", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("network big is full"), "{out:?}");
    assert_eq!(w.d.container_ids().len(), FULL, "the refused container is gone");

    let restart = Instant::now();
    w.d.stop();
    w.d.spawn();
    eprintln!("restart to ready with {FULL} containers: {:.1?}", restart.elapsed());
    let running = w.d.ok(&["ps", "-q"]).lines().count();
    assert_eq!(running, FULL, "every container still runs");
    flows(&w, &last);

    let removal = Instant::now();
    remove_all(&w.d);
    eprintln!("{FULL} containers removed in {:.1?}", removal.elapsed());
    assert!(w.d.container_ids().is_empty());
}

/// Starts sleepers s0, s1, ... on `big` until it holds FULL containers
/// (`web` is the first), from CLIENTS clients at once.
fn fill(d: &Daemon) {
    std::thread::scope(|s| {
        for first in 0..CLIENTS {
            s.spawn(move || {
                for i in (first..FULL - 1).step_by(CLIENTS) {
                    d.ok(&["run", "-d", "--name", &format!("s{i}"), "--network", "big", "busybox", "sleep", "3600"]);
                }
            });
        }
    });
}

fn remove_all(d: &Daemon) {
    let ids = d.container_ids();
    std::thread::scope(|s| {
        for chunk in ids.chunks(ids.len().div_ceil(CLIENTS)) {
            s.spawn(move || chunk.iter().for_each(|id| drop(d.ok(&["rm", "-f", id]))));
        }
    });
}

/// The reference page's flows, between the first container (`web`, port
/// 8080 published) and one started when the network was nearly full.
fn flows(w: &World, last: &str) {
    let d = &w.d;
    let web = ip_of(w, "web");
    // Container to container on the bridge.
    assert_eq!(get_in(d, last, &format!("http://{web}/")), "hello\n");
    // Container to the host, by its gateway and by its own address.
    assert_eq!(get_in(d, last, "http://10.90.0.1:8081/"), "outside\n");
    assert_eq!(get_in(d, last, &format!("http://{HOST_IP}:8081/")), "outside\n");
    // Container to another machine, masqueraded to the host's address.
    assert_eq!(client(get_in(d, last, &format!("http://{EXT_IP}:8082/cgi-bin/ip"))), HOST_IP);
    // Another machine to the container, routed, and to its published port.
    assert_eq!(client(get_from(&w.ext, &format!("http://{web}/cgi-bin/ip"))), EXT_IP);
    assert_eq!(get_from(&w.ext, &format!("http://{HOST_IP}:8080/")), "hello\n");
    // The host to the published port, and containers to it (hairpin).
    assert_eq!(get_from(&d.ns, "http://127.0.0.1:8080/"), "hello\n");
    assert_eq!(get_in(d, last, &format!("http://{HOST_IP}:8080/")), "hello\n");
    assert_eq!(get_in(d, "web", &format!("http://{HOST_IP}:8080/")), "hello\n");
}

/// Each CPU's receive backlog must hold a broadcast flooded to 1,022 veths
/// at once, or the oldest containers never see an ARP request. runtimed
/// raises it in the host's namespace (network/sysctl.rs); this test's
/// daemon runs in a namespace of its own, where the host-wide setting is
/// not visible, so the test raises it the same way: only ever up.
fn raise_backlog() {
    let path = "/proc/sys/net/core/netdev_max_backlog";
    let now: u64 = std::fs::read_to_string(path).unwrap().trim().parse().unwrap();
    if now < 4096 {
        std::fs::write(path, "4096").unwrap();
    }
}

fn ip_of(w: &World, name: &str) -> String {
    let c = w.d.inspect(name);
    c["NetworkSettings"]["Networks"]["big"]["IPAddress"].as_str().expect("an address on big").to_string()
}
