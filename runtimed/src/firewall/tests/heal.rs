//! Repairing our table after someone else flushed or edited it, and the
//! kernel's change notifications that trigger a repair.

use std::time::Duration;

use super::netns::in_netns;
use super::{firewall, net, nft, port, rule_count, TABLE};
use crate::firewall::{Contents, NftEvents, Proto};

#[test]
fn firewall_repair_restores_a_flushed_ruleset_once() {
    in_netns(|| {
        let fw = firewall();
        let reference = fw.shape().unwrap().expect("table exists");
        let rules = rule_count();
        let (net, ports) = (net("br-a", "172.30.0.0/24", false), vec![port(Proto::Tcp, 8080, "172.30.0.2", 80)]);
        fw.add_network(&net).unwrap();
        fw.publish(&ports).unwrap();
        let wanted = Contents::wanted([&net], &ports);
        assert!(fw.repair(&reference, &wanted).unwrap().is_none(), "intact");

        nft(&["flush", "ruleset"]);
        let repair = fw.repair(&reference, &wanted).unwrap().expect("repaired");
        assert!(repair.rebuilt);
        assert_eq!((repair.added.networks(), repair.added.ports()), (1, 1));
        assert_eq!(fw.published().unwrap(), ports);
        assert_eq!(rule_count(), rules);
        assert!(fw.repair(&reference, &wanted).unwrap().is_none(), "no loop");
    });
}

#[test]
fn firewall_repair_fixes_elements_and_rules_others_changed() {
    in_netns(|| {
        let fw = firewall();
        let reference = fw.shape().unwrap().unwrap();
        let ports = vec![port(Proto::Tcp, 8080, "172.30.0.2", 80)];
        fw.publish(&[port(Proto::Udp, 53, "172.30.0.9", 53)]).unwrap();
        nft(&["flush", "chain", "ip", TABLE, "prerouting"]);

        let repair = fw.repair(&reference, &Contents::wanted([], &ports)).unwrap();
        let repair = repair.expect("repaired");
        assert!(repair.rebuilt, "the flushed chain is rewritten");
        assert_eq!((repair.added.ports(), repair.removed.ports()), (1, 1));
        assert_eq!(fw.published().unwrap(), ports);
        assert_eq!(fw.shape().unwrap().unwrap(), reference);
    });
}

#[test]
fn firewall_events_report_changes_of_any_table() {
    in_netns(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let events = NftEvents::open().expect("subscribe");
            let quiet = tokio::time::timeout(Duration::from_millis(200), events.changed()).await;
            assert!(quiet.is_err(), "no change yet");
            nft(&["add", "table", "ip", "other"]);
            tokio::time::timeout(Duration::from_secs(2), events.changed()).await.expect("a change within 2s").unwrap();
            events.settle(Duration::from_millis(50)).await.unwrap();
        });
    });
}
