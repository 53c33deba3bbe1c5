//! End-to-end: `weftctl trace` (the controller's logical trace) between pods on two real
//! hosts: delivered across the tunnel, naming every stage; dropped at a disabled port; and
//! the destination's chassis reported down once its agent is gone.

mod common;
use common::*;
use weft_testbed::testbed::TestbedConfig;

#[test]
fn trace_reports_stages_and_verdicts() {
    let cfg = TestbedConfig::new().hosts(2).controllers(1);
    if !ready("trace_reports_stages_and_verdicts", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw", "10.21.0.0/24");
    dyn_port(&mut tb, "sw", "t1");
    dyn_port(&mut tb, "sw", "t2");
    let a = pod(&mut tb, 1, "t1");
    let b = pod(&mut tb, 2, "t2");
    sync(&mut tb);
    assert_ping(&a, &b);
    let to = b.ip.to_string();

    let out = ctl(&mut tb, &["trace", "t1", "--to", &to, "--tcp", "80"]);
    for stage in [
        "ingress",
        "port-security",
        "acl-in",
        "l3",
        "l2-lookup",
        "acl-out",
        "output",
    ] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(stage)),
            "no {stage} in:\n{out}"
        );
    }
    assert!(out.contains("tunnel host1 → host2"), "{out}");
    assert!(
        out.contains("verdict: delivered (delivered to t2 on host2)"),
        "{out}"
    );
    let j: serde_json::Value = serde_json::from_str(&ctl(
        &mut tb,
        &["-f", "json", "trace", "t1", &format!("ip4.dst == {to}")],
    ))
    .expect("json");
    assert_eq!(j["verdict"], "delivered");
    assert_eq!(j["outputs"][0]["chassis"], "host2");

    // A malformed microflow points at the column.
    let err = tb
        .ctl(&["trace", "t1", "ip4.dst == 10.21.0.300"])
        .expect_err("bad microflow");
    assert!(format!("{err:#}").contains("column 12"), "{err:#}");

    // A disabled destination port.
    ctl(&mut tb, &["lsp-set-enabled", "t2", "disabled"]);
    let out = ctl(&mut tb, &["trace", "t1", "--to", &to]);
    assert!(
        out.contains("verdict: dropped") && out.contains("t2 is disabled"),
        "{out}"
    );
    ctl(&mut tb, &["lsp-set-enabled", "t2", "enabled"]);

    // The destination's host goes down: the trace names its chassis.
    tb.stop_agent(2).expect("stop agent");
    let mut last = String::new();
    wait_for(30, "trace to report host2 down", || {
        last = ctl(&mut tb, &["trace", "t1", "--to", &to]);
        last.contains("verdict: chassis-down (chassis host2 down (port t2))")
    });
    assert!(last.contains("host2"), "{last}");
}
