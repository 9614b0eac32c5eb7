//! Crash consistency: a daemon killed at any step of create, start, rm or
//! import, or a client killed in the middle of a request, leaves nothing
//! that no record owns once the daemon is back.

use std::time::Duration;

use integration_tests::{sh, Daemon};

/// Every failpoint of the container lifecycle, in the order a run meets them.
const LIFECYCLE: [&str; 13] = [
    "create:layer",
    "create:netns",
    "create:attached",
    "create:prepared",
    "create:stored",
    "start:mounted",
    "start:shim",
    "start:published",
    "start:stored",
    "stop:signalled",
    "rm:killed",
    "rm:unstored",
    "rm:released",
];

const PORT: &str = "18080";

fn states(d: &Daemon) -> Vec<(String, bool)> {
    let out = d.ok(&["ps", "-a", "--format", "json"]);
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|l| match serde_json::from_str::<serde_json::Value>(l).expect("ps JSON") {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        })
        .map(|c| (c["ID"].as_str().unwrap_or_default().to_string(), c["State"] == "running"))
        .collect()
}

/// What the daemon says matches what runs: a container has processes
/// exactly when it is running, and no process runs for an unknown one.
fn assert_consistent(d: &Daemon, when: &str) {
    let states = states(d);
    for cg in d.cgroups() {
        let id = cg.file_name().unwrap().to_string_lossy().into_owned();
        let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
        let running = states.iter().any(|(i, r)| *i == id && *r);
        assert!(running || procs.trim().is_empty(), "{when}: processes of {id}, which is not running: {procs}");
    }
    let shims = sh("pgrep -af 'runtimed shim run' || true");
    for line in shims.lines() {
        let owner = states.iter().find(|(id, _)| line.contains(id.as_str()));
        let ours = line.contains(&d.dir.display().to_string());
        assert!(!ours || owner.is_some_and(|(_, r)| *r), "{when}: a shim of no running container: {line}");
    }
}

/// The veths in the daemon's namespace once there are `want` of them or
/// five seconds have passed: the kernel removes a removed container's veths
/// with its namespace, in the background (the daemon deletes any left after
/// two seconds).
fn veths_settled(d: &Daemon, want: usize) -> String {
    for _ in 0..50 {
        let veths = d.ns.exec("ip -o link show type veth");
        if veths.lines().count() == want {
            return veths;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    d.ns.exec("ip -o link show type veth")
}

/// After removing everything: no file, mount, cgroup, veth, DNAT element
/// or held port is left.
fn assert_clean(d: &Daemon, when: &str) {
    for (id, _) in states(d) {
        d.ok(&["rm", "-f", &id]);
    }
    assert!(d.leftovers().is_empty(), "{when}: leftovers {:?}", d.leftovers());
    let veths = veths_settled(d, 0);
    assert!(veths.trim().is_empty(), "{when}: veths left: {veths}");
    let nft = d.ns.exec("nft list table ip runtimed");
    assert!(!nft.contains(PORT), "{when}: DNAT elements left: {nft}");
    // The port and an address are free again.
    d.ok(&["run", "-d", "--name", "probe", "-p", &format!("{PORT}:80"), "busybox", "sleep", "60"]);
    d.ok(&["rm", "-f", "probe"]);
}

#[test]
fn a_daemon_killed_at_any_step_leaves_nothing_orphaned() {
    let mut d = Daemon::start();
    let run = ["run", "-d", "--name", "victim", "-p", "18080:80", "busybox", "sleep", "600"];
    for point in LIFECYCLE {
        let (creates, _) = point.split_once(':').unwrap();
        if creates == "rm" || creates == "stop" {
            d.ok(&run);
        }
        d.stop();
        d.spawn_crashing_at(point);
        let out = match creates {
            "rm" => d.ctl(&["rm", "-f", "victim"]),
            "stop" => d.ctl(&["stop", "victim"]),
            _ => d.ctl(&run),
        };
        assert!(d.wait_exited(Duration::from_secs(20)), "{point}: the daemon did not crash: {out:?}");
        d.spawn();
        assert_consistent(&d, point);
        // Whatever was kept works: start it, or it is gone.
        if states(&d).iter().any(|(_, running)| !running) {
            d.ok(&["start", "victim"]);
            assert_consistent(&d, point);
        }
        assert_clean(&d, point);
    }
}

/// The options of the overlay a running container's root is.
fn root_mount(d: &Daemon, name: &str) -> String {
    let pid = d.inspect(name)["State"]["Pid"].as_i64().unwrap();
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    info.lines().find(|l| l.split(' ').nth(4) == Some("/")).unwrap().to_string()
}

/// A `--rm` container's layer goes with it, so its overlay is volatile:
/// the kernel does not sync the host's disk when it ends. A volatile layer
/// is marked against a second mount; a daemon killed once the layer was
/// mounted still starts the container after its restart.
#[test]
fn a_disposable_layer_is_volatile_and_mounts_again_after_a_crash() {
    let mut d = Daemon::start();
    d.stop();
    d.spawn_crashing_at("start:mounted");
    let out = d.ctl(&["run", "-d", "--rm", "--name", "victim", "busybox", "sleep", "600"]);
    assert!(d.wait_exited(Duration::from_secs(20)), "the daemon did not crash: {out:?}");
    d.spawn();
    d.ok(&["start", "victim"]);
    let root = root_mount(&d, "victim");
    assert!(root.contains("volatile"), "{root}");
    d.ok(&["run", "-d", "--name", "kept", "busybox", "sleep", "600"]);
    let root = root_mount(&d, "kept");
    assert!(root.contains(" - overlay ") && !root.contains("volatile"), "{root}");
    d.ok(&["rm", "-f", "victim", "kept"]);
    assert!(d.leftovers().is_empty(), "leftovers {:?}", d.leftovers());
}

#[test]
fn a_client_killed_mid_request_leaves_a_whole_container_or_none() {
    let d = Daemon::start();
    for (i, delay_ms) in [0u64, 20, 50, 80, 120, 200].iter().enumerate() {
        let name = format!("c{i}");
        let port = format!("{}:80", 18090 + i);
        let mut client =
            d.ctl_cmd(&["run", "-d", "--name", &name, "-p", &port, "busybox", "sleep", "600"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(*delay_ms));
        let _ = client.kill();
        let _ = client.wait();
    }
    // The requests finish on their own: each container ends up running.
    // A request still being served may not be listed yet, so wait until
    // the list holds still for a second, all running.
    let mut last = Vec::new();
    integration_tests::wait_for("requests to settle", Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(500));
        let now = states(&d);
        let stable = now == last && now.iter().all(|(_, running)| *running);
        last = now;
        stable.then_some(())
    });
    assert_consistent(&d, "after killed clients");
    for (id, running) in states(&d) {
        assert!(running, "container {id} was left half-made");
    }
    assert_clean(&d, "after killed clients");
}

#[test]
fn an_import_cut_off_leaves_no_spool_or_partial_image() {
    let mut d = Daemon::start();
    let tar = d.dir.join("img.tar");
    let busybox = integration_tests::image_dirs(&d)[0].clone();
    sh(&format!("tar -C {}/rootfs -cf {} .", busybox.display(), tar.display()));
    for point in ["import:spooled", "import:unpacked"] {
        d.stop();
        d.spawn_crashing_at(point);
        let out = d.ctl(&["image", "import", "img", tar.to_str().unwrap()]);
        assert!(d.wait_exited(Duration::from_secs(20)), "{point}: the daemon did not crash: {out:?}");
        d.spawn();
        let entries = integration_tests::image_dirs(&d);
        assert_eq!(entries.len(), 1, "{point}: only busybox is left: {entries:?}");
        let images = d.ok(&["image", "ls"]);
        assert!(!images.contains("img"), "{point}: {images}");
    }
    d.ok(&["image", "import", "img", tar.to_str().unwrap()]);
}

fn shim_of(d: &Daemon, name: &str) -> i32 {
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", name])).unwrap();
    let id = v[0]["Id"].as_str().unwrap().to_string();
    let line = sh(&format!("pgrep -f 'runtimed shim run .*{id}' | head -n 1"));
    line.trim().parse().expect("a shim pid")
}

#[test]
fn a_container_whose_shim_dies_is_killed_not_orphaned() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "s", "busybox", "sleep", "600"]);
    let shim = shim_of(&d, "s");
    sh(&format!("kill -9 {shim}"));
    assert_eq!(d.ok(&["wait", "s"]).trim(), "255");
    assert_consistent(&d, "after the shim died");
    assert_clean(&d, "after the shim died");
}

#[test]
fn a_full_disk_loses_output_not_containers() {
    let mut d = Daemon::start();
    d.restart_on_small_disk(24);
    let root = d.root();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "busybox",
        "sh",
        "-c",
        "while true; do echo 0123456789012345678901234567890123456789; done",
    ]);
    let full = || sh(&format!("df --output=avail {} | tail -n 1", root.display())).trim().parse::<u64>().unwrap() < 64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !full() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(full(), "the log filled the disk");
    std::thread::sleep(Duration::from_secs(1));
    // The shim lives on and relays; the daemon still answers.
    assert_eq!(states(&d), vec![(states(&d)[0].0.clone(), true)], "still running on a full disk");
    d.ok(&["ps", "-a"]);
    // Stopping works and frees nothing by itself; removing frees the log.
    let out = d.ctl(&["stop", "-t", "1", "chatty"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_consistent(&d, "stopped on a full disk");
    let out = d.ctl(&["rm", "-f", "chatty"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!full(), "rm freed the space");
    // Writes work again without a restart.
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    let left: Vec<String> = d.leftovers().into_iter().filter(|l| *l != root.display().to_string()).collect();
    assert!(left.is_empty(), "leftovers after the disk was full: {left:?}");
}

#[test]
fn names_resolve_while_the_daemon_restarts() {
    let mut d = Daemon::start();
    d.ok(&["network", "create", "--subnet", "10.99.7.0/24", "dnsnet"]);
    d.ok(&["run", "-d", "--name", "target", "--network", "dnsnet", "busybox", "sleep", "600"]);
    // Looks the name up every 100 ms for about 6 s and logs each outcome.
    let script = "for i in $(seq 1 60); do \
        if nslookup target >/dev/null 2>&1; then echo ok; else echo fail; fi; sleep 0.1; done; echo done";
    d.ok(&["run", "-d", "--name", "asker", "--network", "dnsnet", "busybox", "sh", "-c", script]);
    std::thread::sleep(Duration::from_millis(1000));
    d.kill9();
    std::thread::sleep(Duration::from_millis(1500));
    d.spawn();
    assert_eq!(d.ok(&["wait", "asker"]).trim(), "0");
    let log = d.ok(&["logs", "asker"]);
    let fails = log.lines().filter(|l| *l == "fail").count();
    let oks = log.lines().filter(|l| *l == "ok").count();
    assert!(log.ends_with("done\n"), "{log}");
    assert_eq!(fails, 0, "{oks} lookups answered, {fails} failed across the restart");
}

#[test]
fn a_daemon_killed_mid_connect_or_disconnect_leaves_no_stray_interface() {
    let mut d = Daemon::start();
    d.ok(&["network", "create", "--subnet", "10.99.8.0/24", "side"]);
    d.ok(&["run", "-d", "--name", "victim", "busybox", "sleep", "600"]);
    let connect = ["network", "connect", "side", "victim"];
    let disconnect = ["network", "disconnect", "side", "victim"];
    for point in ["connect:attached", "disconnect:stored"] {
        let eth1_ip = |d: &Daemon| {
            let addr = d.ok(&["exec", "victim", "ip", "-o", "-4", "addr", "show", "eth1"]);
            addr.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_string()
        };
        // The address the interrupted step holds (the network's first).
        let mut held = "10.99.8.2".to_string();
        if point.starts_with("disconnect") {
            d.ok(&connect);
            held = eth1_ip(&d);
        }
        d.stop();
        d.spawn_crashing_at(point);
        let out = d.ctl(if point.starts_with("connect") { &connect } else { &disconnect });
        assert!(d.wait_exited(Duration::from_secs(20)), "{point}: the daemon did not crash: {out:?}");
        d.spawn();
        // Both interrupted steps end with no eth1, on record or in the container.
        let inspect = d.ok(&["inspect", "victim"]);
        assert!(!inspect.contains("10.99.8."), "{point}: the record lists side: {inspect}");
        let eth1 = d.ctl(&["exec", "victim", "ip", "link", "show", "eth1"]);
        assert_ne!(eth1.code, 0, "{point}: eth1 is still in the container: {eth1:?}");
        let veths = veths_settled(&d, 1);
        assert_eq!(veths.lines().count(), 1, "{point}: only eth0's veth is left: {veths}");
        // The address was freed: another container may take it.
        let out = d.ctl(&["run", "--rm", "--network", "side", "--ip", &held, "busybox", "true"]);
        assert_eq!(out.code, 0, "{point}: {held} is still held: {out:?}");
    }
    assert_consistent(&d, "after connect crashes");
    assert_clean(&d, "after connect crashes");
}

/// Names and states (running or not) of every container, by `ps -a`.
fn named_states(d: &Daemon) -> Vec<(String, bool)> {
    let out = d.ok(&["ps", "-a", "--format", "json"]);
    let mut found: Vec<(String, bool)> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|l| match serde_json::from_str::<serde_json::Value>(l).expect("ps JSON") {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        })
        .map(|c| {
            let name = c["Names"].as_str().unwrap_or_default();
            (name.trim_start_matches('/').to_string(), c["State"] == "running")
        })
        .collect();
    found.sort();
    found
}

/// Creates containers until the daemon refuses one for lack of space;
/// returns the names it took and the refusal. Their records are large
/// (100 kB of environment) to use up the room sled's log already holds.
fn create_until_refused(d: &Daemon, tag: &str) -> (Vec<String>, String, integration_tests::Output) {
    let env = format!("BIG={}", "x".repeat(100_000));
    let mut taken = Vec::new();
    for i in 0..50 {
        let name = format!("c{tag}x{i}");
        let out = d.ctl(&["create", "--name", &name, "-e", &env, "busybox", "true"]);
        if out.code != 0 {
            return (taken, name, out);
        }
        taken.push(name);
    }
    panic!("{tag}: the daemon never ran out of space");
}

/// Fills the disk with `filler`, then checks the daemon refuses a create
/// with the full-disk error and does not list it; returns the containers
/// created before the refusal.
fn fill_until_refused(d: &Daemon, filler: &std::path::Path, tag: &str) -> Vec<String> {
    sh(&format!("dd if=/dev/zero of={} bs=64k 2>/dev/null; true", filler.display()));
    let (taken, refused, out) = create_until_refused(d, tag);
    assert_eq!(out.code, 125, "{tag}: {out:?}");
    let store = d.root().join("store");
    let expected =
        format!("no space left on the device holding {}: free some space; the change was not saved", store.display());
    assert!(out.stderr.contains(&expected), "{tag}: {out:?}");
    let names = named_states(d);
    assert!(!names.iter().any(|(n, _)| *n == refused), "{tag}: {names:?}");
    taken
}

#[test]
fn a_full_store_disk_refuses_changes_and_recovers_without_a_restart() {
    let mut d = Daemon::start();
    d.restart_on_small_disk(40);
    let root = d.root();
    d.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "600"]);
    let (filler, filler2) = (root.join("filler"), root.join("filler2"));
    for round in 0..3 {
        let mut taken = fill_until_refused(&d, &filler, &format!("{round}a"));
        // Fill again whatever the daemon freed to reopen its store: it
        // still answers, and stop works (an exit the store refuses is
        // written once there is room).
        taken.extend(fill_until_refused(&d, &filler2, &format!("{round}b")));
        let out = d.ctl(&["stop", "-t", "1", "up"]);
        assert_eq!(out.code, 0, "round {round}: {out:?}");
        d.ok(&["ps", "-a"]);
        d.ok(&["inspect", "up"]);
        // Room again: every change works without a restart.
        std::fs::remove_file(&filler).unwrap();
        std::fs::remove_file(&filler2).unwrap();
        for name in &taken {
            d.ok(&["rm", "-f", name]);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while named_states(&d) != [("up".to_string(), false)] && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(named_states(&d), [("up".to_string(), false)], "round {round}: the exit was recorded");
        let name = format!("ok{round}");
        d.ok(&["create", "--name", &name, "busybox", "sleep", "600"]);
        d.ok(&["start", &name]);
        d.ok(&["rm", "-f", &name]);
        d.ok(&["start", "up"]);
        assert_eq!(named_states(&d), [("up".to_string(), true)], "round {round}");
    }
    // The store opens after a restart and holds exactly what was saved.
    d.stop();
    d.spawn();
    assert_eq!(named_states(&d), [("up".to_string(), true)]);
    assert_consistent(&d, "after the disk was full three times");
    d.ok(&["rm", "-f", "up"]);
    let left: Vec<String> = d.leftovers().into_iter().filter(|l| *l != root.display().to_string()).collect();
    assert!(left.is_empty(), "leftovers after the disk was full: {left:?}");
}
