//! The testbed with real controllers but no agents: weftctl reaches the controllers over the
//! management network, pods take their MAC/IP from the logical port, and a second controller
//! serves the same state (etcd is the source of truth).

mod common;
use common::*;
use weft_testbed::testbed::TestbedConfig;

#[test]
fn pods_take_addresses_from_logical_ports() {
    let cfg = TestbedConfig::new().hosts(1).controllers(2).agents(false);
    if !ready("pods_take_addresses_from_logical_ports", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw0", "10.60.0.0/24");
    dyn_port(&mut tb, "sw0", "p1");
    static_port(&mut tb, "sw0", "p2", "02:00:00:00:60:02", "10.60.0.50");

    // Both controllers see the same intent.
    let via2 = tb.weftctl_via(2).expect("weftctl via 2");
    let a1 = tb
        .weftctl()
        .expect("weftctl")
        .port_address("p1")
        .expect("p1 via 1");
    let a2 = via2.port_address("p1").expect("p1 via 2");
    assert_eq!(a1, a2);
    assert_eq!(a1.prefix_len, 24);

    let p1 = pod(&mut tb, 1, "p1");
    let p2 = pod(&mut tb, 1, "p2");
    assert_eq!(p1.ip, a1.ip);
    assert_eq!(p2.ip.to_string(), "10.60.0.50");
    assert_eq!(p2.mac, "02:00:00:00:60:02");
    let got = p1
        .exec(&["ip", "-o", "link", "show", "eth0"])
        .expect("ip link");
    assert!(got.contains(&p1.mac), "{got}");
    // No agent: br-int is still a standalone learning switch, so same-host pods talk.
    let r = p1.ping(p2.ip, 3).expect("ping");
    assert!(r.any(), "{r:?}");

    // Kill controller 1: weftctl() moves to controller 2.
    tb.kill_controller(1).expect("kill");
    assert!(!tb.controller_running(1).expect("state"));
    let url = tb.weftctl().expect("weftctl").controller;
    assert_eq!(url, tb.controller_url(2).expect("url 2"));
    tb.start_controller(1).expect("restart controller 1");
    ctl(&mut tb, &["ls-list"]);
}
