//! End-to-end: deleting a port removes its flows on every host and its address stops
//! answering; a port moved to another host is reachable again after `--wait=hv`.

mod common;
use common::*;
use weft_testbed::testbed::TestbedConfig;

#[test]
fn delete_removes_flows_everywhere_and_move_reconnects() {
    let cfg = TestbedConfig::new().hosts(3).controllers(1);
    if !ready("delete_removes_flows_everywhere_and_move_reconnects", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw0", "10.70.0.0/24");
    for p in ["p1", "p2", "p3", "p4"] {
        dyn_port(&mut tb, "sw0", p);
    }
    let p1 = pod(&mut tb, 1, "p1");
    let p2 = pod(&mut tb, 2, "p2");
    let p3 = pod(&mut tb, 3, "p3");
    let p4 = pod(&mut tb, 2, "p4");
    sync(&mut tb);
    assert_ping(&p1, &p2);
    assert_ping(&p4, &p3);

    // p2's MAC is in the flow tables before deletion (at least on its own host).
    let mac = p2.mac.to_ascii_lowercase();
    let before: Vec<bool> = tb
        .hosts()
        .iter()
        .map(|h| {
            h.dump_flows()
                .expect("dump-flows")
                .to_ascii_lowercase()
                .contains(&mac)
        })
        .collect();
    assert!(before[1], "host2 has no flow mentioning p2's MAC {mac}");

    // Delete p2: no host keeps a flow for it, and its address stops answering.
    ctl(&mut tb, &["--wait=hv", "lsp-del", "p2"]);
    for h in tb.hosts() {
        let flows = h.dump_flows().expect("dump-flows").to_ascii_lowercase();
        assert!(
            !flows.contains(&mac),
            "{} still has flows for p2 ({mac}):\n{flows}",
            h.name
        );
        let ip = p2.ip.to_string();
        for pat in [format!("={ip},"), format!("={ip} "), format!("={ip}\n")] {
            assert!(
                !flows.contains(&pat),
                "{} still matches p2's IP {ip}:\n{flows}",
                h.name
            );
        }
    }
    assert_no_ping(&p1, p2.ip);

    // Move p3 from host3 to host1 (same logical port, same addresses).
    tb.del_pod("p3").expect("del pod p3");
    let p3 = pod(&mut tb, 1, "p3");
    wait_for(30, "p3 to be bound to host1", || {
        port_chassis(&mut tb, "p3") == "host1"
    });
    sync(&mut tb);
    assert_ping(&p4, &p3); // host2 -> host1 now
    assert_ping(&p1, &p3); // same host
}
