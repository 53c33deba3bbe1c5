//! End-to-end: killing the only controller leaves the data plane forwarding; with two
//! controllers, killing one moves the agents to the other (writes with `--wait=hv` through
//! the survivor still complete, so every chassis is connected to it).

mod common;
use common::*;
use std::time::Duration;
use weft_testbed::testbed::TestbedConfig;

#[test]
fn data_plane_survives_the_only_controller() {
    let cfg = TestbedConfig::new().hosts(2).controllers(1);
    if !ready("data_plane_survives_the_only_controller", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw0", "10.90.0.0/24");
    dyn_port(&mut tb, "sw0", "p1");
    dyn_port(&mut tb, "sw0", "p2");
    let p1 = pod(&mut tb, 1, "p1");
    let p2 = pod(&mut tb, 2, "p2");
    sync(&mut tb);
    assert_ping(&p1, &p2);

    tb.kill_controller(1).expect("kill controller");
    // Give the agents time to notice and retry; they must keep their flows.
    std::thread::sleep(Duration::from_secs(3));
    let r = p1.ping_interval(p2.ip, 50, 50).expect("ping");
    assert_eq!(r.lost(), 0, "forwarding without a controller: {r:?}");

    // The controller comes back and the agents resubscribe.
    tb.start_controller(1).expect("restart controller");
    let all = vec!["host1".to_string(), "host2".to_string()];
    tb.wait_chassis_alive(&all, Duration::from_secs(60))
        .expect("agents back");
    dyn_port(&mut tb, "sw0", "p3");
    let p3 = pod(&mut tb, 2, "p3");
    sync(&mut tb);
    assert_ping(&p1, &p3);
}

#[test]
fn agents_move_to_the_surviving_controller() {
    let cfg = TestbedConfig::new().hosts(2).controllers(2);
    if !ready("agents_move_to_the_surviving_controller", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw0", "10.91.0.0/24");
    dyn_port(&mut tb, "sw0", "p1");
    dyn_port(&mut tb, "sw0", "p2");
    let p1 = pod(&mut tb, 1, "p1");
    let p2 = pod(&mut tb, 2, "p2");
    sync(&mut tb);
    assert_ping(&p1, &p2);

    // Kill each controller in turn (one of them had the agents' streams), each time proving
    // via the survivor that every chassis is alive and applies new writes.
    let all = ["host1".to_string(), "host2".to_string()];
    for (dead, alive, port) in [(1, 2, "q1"), (2, 1, "q2")] {
        tb.kill_controller(dead).expect("kill");
        let via = tb.weftctl_via(alive).expect("weftctl");
        wait_for(
            60,
            &format!("both chassis alive via controller {alive}"),
            || {
                via.alive_chassis()
                    .map(|a| all.iter().all(|n| a.contains(n)))
                    .unwrap_or(false)
            },
        );
        via.run(&["lsp-add", "sw0", port]).expect("lsp-add");
        via.run(&["lsp-set-addresses", port, "dynamic"])
            .expect("set addresses");
        let q = pod(&mut tb, 2, port);
        via.run(&["--wait=hv", "--timeout=60", "sync"])
            .expect("--wait=hv through the surviving controller");
        assert_ping(&p1, &q);
        assert_ping(&p2, &p1);
        tb.start_controller(dead).expect("restart");
    }
}
