//! The daemon's nftables table heals: after `nft flush ruleset` (while the
//! daemon runs, or while it is down) published ports answer again and new
//! ones can be published. And a container's lifecycle changes the table
//! (and the store) no more often than it must.

use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::{Netns, World, HOST_IP};

const WEB: &str = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www";
const REPAIRED: &str = "was flushed or altered";

/// One HTTP GET with busybox `nc` from `ns`; the body if it was a 200.
fn fetch(ns: &Netns, port: u16) -> Option<String> {
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 {HOST_IP} {port}");
    let out = Command::new("ip").args(["netns", "exec", &ns.name, "busybox", "sh", "-c", &get]).output().ok()?;
    let response = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.lines().next()?;
    (status.starts_with("HTTP/1.") && status.contains(" 200 ")).then(|| body.to_string())
}

/// Polls `fetch` until it answers or `within` has passed.
fn answers_within(ns: &Netns, port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if fetch(ns, port).as_deref() == Some("hello\n") {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_web(w: &World, name: &str, publish: &str) {
    w.d.ok(&["run", "-d", "--name", name, "-p", publish, "busybox", "sh", "-c", WEB]);
    assert!(answers_within(&w.ext, publish_port(publish), Duration::from_secs(10)), "{name} never answered");
}

fn publish_port(publish: &str) -> u16 {
    publish.split(':').next().unwrap().parse().unwrap()
}

fn repairs(w: &World) -> usize {
    w.d.log().matches(REPAIRED).count()
}

#[test]
fn published_ports_come_back_after_a_ruleset_flush() {
    let w = World::new();
    start_web(&w, "web", "8080:80");
    w.d.ok(&["run", "--rm", "-p", "8082:80", "busybox", "true"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!w.d.log().contains("firewall table"), "nothing to repair yet:\n{}", w.d.log());
    w.d.ns.exec("nft flush ruleset");
    assert!(answers_within(&w.ext, 8080, Duration::from_secs(3)), "no answer after the flush:\n{}", w.d.log());
    assert_eq!(repairs(&w), 1, "{}", w.d.log());
    start_web(&w, "next", "8081:80");
    assert!(answers_within(&w.ext, 8080, Duration::from_secs(1)));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(repairs(&w), 1, "our own changes are no reason to repair:\n{}", w.d.log());
}

#[test]
fn published_ports_come_back_after_a_flush_while_the_daemon_is_down() {
    let mut w = World::new();
    start_web(&w, "web", "8080:80");
    w.d.kill9();
    w.d.ns.exec("nft flush ruleset");
    assert!(fetch(&w.ext, 8080).is_none(), "the flush took the port away");
    w.d.spawn();
    assert!(answers_within(&w.ext, 8080, Duration::from_secs(3)), "no answer after the restart:\n{}", w.d.log());
    assert!(w.d.ok(&["ps"]).contains("0.0.0.0:8080->80/tcp"));
    start_web(&w, "next", "8081:80");
}

/// Counts of the daemon's debug log lines `nft apply` (one nft
/// transaction) and `store flush` (one durable store write).
fn changes(d: &integration_tests::Daemon) -> (usize, usize) {
    let log = d.log();
    (log.matches("nft apply").count(), log.matches("store flush").count())
}

/// Each step changes the firewall and the store as often as it must and
/// no more: one transaction per publish or unpublish, one durable write
/// per record it changes.
#[test]
fn each_lifecycle_step_changes_the_firewall_and_the_store_once() {
    let filter = "info,runtimed::firewall::nft=debug,runtimed::store::database=debug";
    let d = integration_tests::Daemon::start_with(|_| {}, vec!["--log-level".into(), filter.into()]);
    let mut seen = changes(&d);
    let mut step = |args: &[&str], nft: usize, flushes: usize| {
        d.ok(args);
        let now = changes(&d);
        assert_eq!((now.0 - seen.0, now.1 - seen.1), (nft, flushes), "{args:?} (nft, store):\n{}", d.log());
        seen = now;
    };
    // The address, then the record.
    step(&["create", "--name", "web", "-p", "8080:80", "busybox", "sleep", "600"], 0, 2);
    step(&["start", "web"], 1, 1);
    step(&["stop", "-t", "1", "web"], 1, 1);
    step(&["start", "web"], 1, 1);
    // The exit, the record's removal, the address's release.
    step(&["rm", "-f", "web"], 1, 3);
    step(&["run", "--rm", "-p", "8081:80", "busybox", "true"], 2, 6);
    step(&["run", "-d", "--name", "b", "busybox", "sleep", "600"], 0, 3);
    step(&["rm", "-f", "b"], 0, 3);
}
