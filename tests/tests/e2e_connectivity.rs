//! End-to-end: 3 hosts, 2 switches. Every pair of pods on the same switch can ping, on the
//! same host and across hosts, with full-MTU packets.

mod common;
use common::*;
use weft_testbed::testbed::TestbedConfig;

#[test]
fn every_pair_on_a_switch_pings() {
    let cfg = TestbedConfig::new().hosts(3).controllers(1);
    if !ready("every_pair_on_a_switch_pings", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw1", "10.11.0.0/24");
    switch(&mut tb, "sw2", "10.12.0.0/24");
    // sw1: two pods on host1 (same-host pair), one each on host2 and host3.
    let sw1 = [("a1", 1), ("a2", 1), ("a3", 2), ("a4", 3)];
    // sw2: one pod per host.
    let sw2 = [("b1", 1), ("b2", 2), ("b3", 3)];
    for (p, _) in sw1 {
        dyn_port(&mut tb, "sw1", p);
    }
    for (p, _) in sw2 {
        dyn_port(&mut tb, "sw2", p);
    }
    let pods1: Vec<_> = sw1.iter().map(|(p, h)| pod(&mut tb, *h, p)).collect();
    let pods2: Vec<_> = sw2.iter().map(|(p, h)| pod(&mut tb, *h, p)).collect();
    sync(&mut tb);

    for pods in [&pods1, &pods2] {
        for (i, a) in pods.iter().enumerate() {
            for b in &pods[i + 1..] {
                assert_ping(a, b);
                assert_ping(b, a);
            }
        }
    }
    // Full-size packets fit the pod MTU (underlay MTU minus encap overhead) across hosts.
    assert_full_mtu(&pods1[0], &pods1[2]);
    assert_full_mtu(&pods2[1], &pods2[2]);
    // Every port is reported up and bound to the host its pod is on.
    for (p, h) in sw1.iter().chain(sw2.iter()) {
        assert_eq!(
            port_chassis(&mut tb, p),
            format!("host{h}"),
            "binding of {p}"
        );
    }
}
