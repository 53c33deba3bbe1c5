//! End-to-end: pods on different switches cannot reach each other, even when their IPs are
//! in the same range (and even the same IP) on different switches.

mod common;
use common::*;
use weft_testbed::testbed::TestbedConfig;

#[test]
fn switches_are_isolated_even_with_overlapping_subnets() {
    let cfg = TestbedConfig::new().hosts(2).controllers(1);
    if !ready("switches_are_isolated_even_with_overlapping_subnets", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "red", "10.50.0.0/24");
    switch(&mut tb, "blue", "10.50.0.0/24");
    static_port(&mut tb, "red", "red1", "02:00:00:50:00:10", "10.50.0.10");
    static_port(&mut tb, "red", "red2", "02:00:00:50:00:20", "10.50.0.20");
    static_port(&mut tb, "blue", "blue1", "02:00:00:50:01:30", "10.50.0.30");
    static_port(&mut tb, "blue", "blue2", "02:00:00:50:01:40", "10.50.0.40");
    // Same IP as red1, on the other switch.
    static_port(&mut tb, "blue", "blue3", "02:00:00:50:01:10", "10.50.0.10");
    let red1 = pod(&mut tb, 1, "red1");
    let red2 = pod(&mut tb, 2, "red2");
    let blue1 = pod(&mut tb, 1, "blue1");
    let blue2 = pod(&mut tb, 2, "blue2");
    let blue3 = pod(&mut tb, 2, "blue3");
    sync(&mut tb);

    // Controls: each switch works, across hosts.
    assert_ping(&red1, &red2);
    assert_ping(&blue1, &blue2);

    // red -> blue: same host and across hosts.
    assert_no_ping(&red1, blue1.ip);
    assert_no_ping(&red1, blue2.ip);
    assert_no_ping(&red2, blue1.ip);
    assert_no_ping(&blue2, red2.ip);

    // 10.50.0.10 from blue reaches blue3, never red1.
    let red1_before = red1.icmp_in_echos().expect("counter");
    let blue3_before = blue3.icmp_in_echos().expect("counter");
    let r = blue1.ping(blue3.ip, 3).expect("ping");
    assert!(r.any(), "blue1 -> blue3 (10.50.0.10): {r:?}");
    assert_eq!(
        red1.icmp_in_echos().expect("counter"),
        red1_before,
        "red1 got blue's echo"
    );
    assert!(blue3.icmp_in_echos().expect("counter") > blue3_before);
}
