//! Ruleset-level tests: what ends up in the kernel after each call.

use std::time::{Duration, Instant};

use super::netns::in_netns;
use super::{firewall, net, nft, port, rule_count, set_text, TABLE};
use crate::firewall::{Firewall, FirewallError, PortMap, Proto};

#[test]
fn firewall_ensure_is_idempotent_and_leaves_foreign_tables_alone() {
    in_netns(|| {
        nft(&["add", "table", "ip", "foreign"]);
        nft(&["add", "chain", "ip", "foreign", "c", "{ type filter hook forward priority 0; policy accept; }"]);
        nft(&["add", "rule", "ip", "foreign", "c", "iifname \"x\" counter drop"]);
        let foreign = nft(&["-a", "list", "table", "ip", "foreign"]);

        let fw = firewall();
        let first = nft(&["list", "table", "ip", TABLE]);
        fw.publish(&[port(Proto::Tcp, 8080, "10.0.0.2", 80)]).unwrap();
        fw.ensure().unwrap();
        fw.ensure().unwrap();

        assert_eq!(nft(&["-a", "list", "table", "ip", "foreign"]), foreign);
        assert_eq!(fw.published().unwrap().len(), 1, "ensure must keep published ports");
        fw.unpublish(&[port(Proto::Tcp, 8080, "10.0.0.2", 80)]).unwrap();
        assert_eq!(nft(&["list", "table", "ip", TABLE]), first);
        for chain in ["prerouting", "output", "postrouting", "forward"] {
            assert!(first.contains(&format!("chain {chain} {{")), "{first}");
        }
    });
}

#[test]
fn firewall_add_and_remove_network() {
    in_netns(|| {
        let fw = firewall();
        fw.add_network(&net("br-a", "172.30.0.0/24", false)).unwrap();
        fw.add_network(&net("br-b", "172.31.0.1/24", false)).unwrap();
        let subnets = set_text("subnet_bridge", "set");
        assert!(subnets.contains("172.30.0.0/24 . \"br-a\""), "{subnets}");
        assert!(subnets.contains("172.31.0.0/24 . \"br-b\""), "host bits dropped: {subnets}");

        // Same bridge again, new subnet: replaces, does not accumulate.
        fw.add_network(&net("br-a", "172.29.0.0/24", false)).unwrap();
        fw.add_network(&net("br-a", "172.29.0.0/24", false)).unwrap();
        let subnets = set_text("subnets", "set");
        assert!(subnets.contains("172.29.0.0/24") && !subnets.contains("172.30.0.0"), "{subnets}");

        fw.remove_network("br-a").unwrap();
        fw.remove_network("br-a").unwrap();
        fw.remove_network("never-added").unwrap();
        assert!(!set_text("bridges", "set").contains("br-a"));
        assert!(!set_text("intra", "set").contains("br-a"));
        assert!(!set_text("subnet_bridge", "set").contains("br-a"));
        assert!(set_text("bridges", "set").contains("br-b"));
        assert!(set_text("subnets", "set").contains("172.31.0.0/24"));
    });
}

#[test]
fn firewall_rejects_overlapping_subnets() {
    in_netns(|| {
        let fw = firewall();
        fw.add_network(&net("br-a", "172.30.0.0/16", false)).unwrap();
        let err = fw.add_network(&net("br-b", "172.30.5.0/24", false)).unwrap_err();
        assert!(matches!(err, FirewallError::SubnetOverlap { .. }), "{err}");
    });
}

#[test]
fn firewall_internal_network_rules() {
    in_netns(|| {
        let fw = firewall();
        fw.add_network(&net("br-i", "172.30.0.0/24", true)).unwrap();
        let internal = set_text("internal_bridges", "set");
        assert!(internal.contains("\"br-i\""), "{internal}");
        assert!(set_text("intra", "set").contains("\"br-i\" . \"br-i\""));
        let forward = nft(&["list", "chain", "ip", TABLE, "forward"]);
        assert!(forward.contains("oifname @internal_bridges drop"), "{forward}");
        assert!(forward.contains("iifname @internal_bridges drop"), "{forward}");

        // Turning it into a normal network takes it out of the internal set.
        fw.add_network(&net("br-i", "172.30.0.0/24", false)).unwrap();
        assert!(!set_text("internal_bridges", "set").contains("br-i"));
        fw.add_network(&net("br-i", "172.30.0.0/24", true)).unwrap();
        fw.remove_network("br-i").unwrap();
        assert!(!set_text("internal_bridges", "set").contains("br-i"));
    });
}

fn many_ports(n: u16) -> Vec<PortMap> {
    (0..n)
        .map(|i| {
            let proto = if i % 2 == 0 { Proto::Tcp } else { Proto::Udp };
            let host_ip = (i % 3 == 0).then(|| "192.0.2.1".parse().unwrap());
            let ip = format!("10.1.{}.{}", i / 200, i % 200 + 2);
            PortMap { host_ip, ..port(proto, 10_000 + i, &ip, 80 + i % 7) }
        })
        .collect()
}

fn sorted(mut v: Vec<PortMap>) -> Vec<PortMap> {
    v.sort_by_key(|m| (m.host_ip, m.proto as u8, m.host_port));
    v
}

fn timed_publish(fw: &Firewall, maps: &[PortMap]) -> Duration {
    let start = Instant::now();
    fw.publish(maps).unwrap();
    start.elapsed()
}

/// Median time of publishing one port, over 9 single-port calls (the
/// probe ports are unpublished again afterwards).
fn median_single_publish(fw: &Firewall) -> Duration {
    let probes: Vec<PortMap> = (0..9).map(|i| port(Proto::Tcp, 60_000 + i, "10.9.9.9", 80)).collect();
    let mut times: Vec<Duration> = probes.iter().map(|p| timed_publish(fw, std::slice::from_ref(p))).collect();
    fw.unpublish(&probes).unwrap();
    times.sort();
    times[times.len() / 2]
}

#[test]
fn firewall_publish_one_and_two_thousand_ports() {
    in_netns(|| {
        let fw = firewall();
        let rules_before = rule_count();
        let t_empty = median_single_publish(&fw);
        let one = PortMap { host_ip: Some("127.0.0.1".parse().unwrap()), ..port(Proto::Tcp, 80, "10.9.0.2", 8080) };
        fw.publish(std::slice::from_ref(&one)).unwrap();
        assert_eq!(fw.published().unwrap(), vec![one.clone()]);

        let many = many_ports(2000);
        let t_many = timed_publish(&fw, &many);
        let t_full = median_single_publish(&fw);
        let extra = port(Proto::Udp, 53, "10.9.0.3", 53);
        fw.publish(std::slice::from_ref(&extra)).unwrap();
        eprintln!("publish(1 port), 0 already published: median {t_empty:?}");
        eprintln!("publish(2000 ports) in one call: {t_many:?}");
        eprintln!("publish(1 port), 2001 already published: median {t_full:?}");

        let mut all = many.clone();
        all.extend([one.clone(), extra.clone()]);
        assert_eq!(fw.published().unwrap(), sorted(all));
        assert_eq!(rule_count(), rules_before, "ports must not add rules");

        // Unpublish removes exactly those, and missing ones are fine.
        let start = Instant::now();
        fw.unpublish(&many).unwrap();
        eprintln!("unpublish(2000 ports) in one call: {:?}", start.elapsed());
        fw.unpublish(&many[..10]).unwrap();
        assert_eq!(fw.published().unwrap(), sorted(vec![one, extra]));
    });
}

#[test]
fn firewall_publish_conflict_and_unpublish_of_other_target() {
    in_netns(|| {
        let fw = firewall();
        let a = port(Proto::Tcp, 8080, "10.0.0.2", 80);
        fw.publish(std::slice::from_ref(&a)).unwrap();
        fw.publish(std::slice::from_ref(&a)).unwrap(); // identical: no-op
        let b = port(Proto::Tcp, 8080, "10.0.0.3", 80);
        let c = port(Proto::Tcp, 8081, "10.0.0.3", 80);
        let err = fw.publish(&[c.clone(), b.clone()]).unwrap_err();
        assert!(matches!(&err, FirewallError::Nft { message, .. } if message.contains("File exists")), "{err}");
        assert_eq!(fw.published().unwrap(), vec![a.clone()], "failed call must change nothing");

        // b's key belongs to a: unpublishing b must keep a.
        fw.unpublish(&[b, c]).unwrap();
        assert_eq!(fw.published().unwrap(), vec![a.clone()]);
        let any = PortMap { host_ip: Some("0.0.0.0".parse().unwrap()), ..a };
        fw.unpublish(&[any]).unwrap();
        assert!(fw.published().unwrap().is_empty());
    });
}

#[test]
fn firewall_delete_table_removes_only_ours() {
    in_netns(|| {
        nft(&["add", "table", "ip", "foreign"]);
        let fw = firewall();
        fw.add_network(&net("br-a", "172.30.0.0/24", false)).unwrap();
        fw.publish(&many_ports(10)).unwrap();
        assert!(nft(&["list", "tables"]).contains(TABLE));
        fw.delete_table().unwrap();
        fw.delete_table().unwrap();
        let tables = nft(&["list", "tables"]);
        assert!(!tables.contains(TABLE), "{tables}");
        assert!(tables.contains("table ip foreign"), "{tables}");
    });
}

#[test]
fn firewall_errors_carry_nft_message() {
    in_netns(|| {
        let fw = Firewall::new(TABLE); // no ensure(): the maps do not exist
        let err = fw.publish(&[port(Proto::Tcp, 1, "10.0.0.2", 1)]).unwrap_err();
        let FirewallError::Nft { message, .. } = &err else { panic!("{err:?}") };
        assert!(message.contains("No such file or directory"), "{message}");
    });
}
