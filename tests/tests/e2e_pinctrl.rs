//! End-to-end: the agent's packet-in path and the Geneve port-key option, against real OVS.
//!
//! - `pod_arp_for_gateway_is_answered_by_pinctrl`: a pod resolves its default gateway (the
//!   subnet's first host, which no port owns). The ARP request is punted by the table-20
//!   `controller(userdata=...,meter_id=...)` flow, the agent's pinctrl handler answers with a
//!   packet-out, and the pod's neighbour table gets the gateway MAC `0a:58:` + gateway IP.
//!   The punt flow's and the meter's counters show the packet went that way.
//! - `geneve_carries_port_keys_to_the_egress_stage`: with Geneve, the receiving chassis
//!   takes the destination port key from the tunnel option (`tun_metadata0`): its classify
//!   flow that moves the option into reg15 and its output flow for the destination port count
//!   packets, while its L2 lookup flow for that MAC counts none (the receiver skipped L2).

mod common;
use common::*;
use weft_testbed::testbed::{Encap, TestbedConfig};

/// `n_packets=N` of a dump-flows line.
fn n_packets(line: &str) -> u64 {
    line.split("n_packets=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn pod_arp_for_gateway_is_answered_by_pinctrl() {
    let name = "pod_arp_for_gateway_is_answered_by_pinctrl";
    let cfg = TestbedConfig::new().hosts(1).controllers(1);
    if !ready(name, &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw0", "10.30.0.0/24");
    dyn_port(&mut tb, "sw0", "p1");
    let p1 = pod(&mut tb, 1, "p1");
    sync(&mut tb);
    let gw = "10.30.0.1";
    // Resolving the gateway: ping (there is no ICMP responder) makes the kernel ARP for it.
    let _ = p1.ping(gw, 2);
    let mut neigh = String::new();
    wait_for(10, "the gateway's neighbour entry in the pod", || {
        let _ = p1.ping(gw, 1);
        neigh = p1.exec(&["ip", "neigh", "show", gw]).unwrap_or_default();
        neigh.contains("lladdr")
    });
    assert!(
        neigh.contains("0a:58:0a:1e:00:01"),
        "gateway answered with the wrong MAC: {neigh}"
    );
    let host = tb.host(1).expect("host1");
    let flows = host.dump_flows().expect("dump-flows");
    let punt = flows
        .lines()
        .find(|l| l.contains("arp_tpa=10.30.0.1") && l.contains("controller("))
        .unwrap_or_else(|| panic!("no gateway ARP punt flow:\n{flows}"));
    assert!(n_packets(punt) > 0, "punt flow never hit: {punt}");
    let meters = host
        .ovs()
        .ofctl(&["-O", "OpenFlow15", "meter-stats", "br-int"])
        .expect("meter-stats");
    // Summed over every meter: the reply lists them in no particular order.
    let seen: u64 = meters
        .split("packet_in_count:")
        .skip(1)
        .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .filter_map(|s| s.parse::<u64>().ok())
        .sum();
    assert!(seen > 0, "the pinctrl meter saw no packets:\n{meters}");
    tb.cleanup();
}

#[test]
fn geneve_carries_port_keys_to_the_egress_stage() {
    let name = "geneve_carries_port_keys_to_the_egress_stage";
    let cfg = TestbedConfig::new()
        .hosts(2)
        .controllers(1)
        .encap(Encap::Geneve);
    if !ready(name, &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw0", "10.31.0.0/24");
    dyn_port(&mut tb, "sw0", "p1");
    dyn_port(&mut tb, "sw0", "p2");
    let p1 = pod(&mut tb, 1, "p1");
    let p2 = pod(&mut tb, 2, "p2");
    sync(&mut tb);
    assert_ping(&p1, &p2);

    let host2 = tb.host(2).expect("host2");
    let ofport = host2
        .ovs()
        .vsctl(&["get", "interface", &p2.veth, "ofport"])
        .expect("ofport")
        .trim()
        .to_string();
    let flows = host2.dump_flows().expect("dump-flows");
    let ingress = flows
        .lines()
        .find(|l| l.contains("move:NXM_NX_TUN_METADATA0[0..15]->NXM_NX_REG15[0..15]"))
        .unwrap_or_else(|| panic!("no Geneve ingress flow on host2:\n{flows}"));
    assert!(
        n_packets(ingress) > 0,
        "the port-key ingress flow was never hit: {ingress}"
    );
    let output = flows
        .lines()
        .find(|l| l.contains("table=70") && l.ends_with(&format!("actions=output:{ofport}")))
        .unwrap_or_else(|| panic!("no output flow for p2 (ofport {ofport}):\n{flows}"));
    assert!(
        n_packets(output) > 0,
        "p2's output flow never hit: {output}"
    );
    let l2 = flows
        .lines()
        .find(|l| l.contains("table=50") && l.contains(&format!("dl_dst={}", p2.mac)))
        .unwrap_or_else(|| panic!("no L2 flow for p2's MAC:\n{flows}"));
    assert_eq!(
        n_packets(l2),
        0,
        "host2 re-ran L2 lookup for p2's traffic instead of using the option's key: {l2}"
    );
    tb.cleanup();
}
