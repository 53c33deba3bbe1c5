//! End-to-end: ovs-vswitchd on a host is killed and started again (its flow table is empty
//! then). The agent notices the lost OpenFlow connection at once, reconnects and reinstalls
//! through the usual read-back, diff and bundle: ping between pods resumes within seconds.
//! The measured gap is printed.

mod common;
use common::*;
use std::time::{Duration, Instant};
use weft_testbed::testbed::TestbedConfig;

#[test]
fn vswitchd_restart_recovers_in_seconds() {
    let cfg = TestbedConfig::new().hosts(2).controllers(1);
    if !ready("vswitchd_restart_recovers_in_seconds", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw", "10.41.0.0/24");
    dyn_port(&mut tb, "sw", "r1");
    dyn_port(&mut tb, "sw", "r2");
    let a = pod(&mut tb, 1, "r1");
    let b = pod(&mut tb, 2, "r2");
    sync(&mut tb);
    assert_ping(&a, &b);

    let flows_before = tb
        .host(2)
        .expect("host2")
        .dump_flows()
        .expect("dump-flows")
        .lines()
        .filter(|l| l.contains("table="))
        .count();
    tb.stop_vswitchd(2).expect("kill ovs-vswitchd");
    tb.start_vswitchd(2).expect("start ovs-vswitchd");
    let back = Instant::now();
    // Flows back: polled every 20 ms (the ping below waits up to 2 s per lost echo, so it
    // alone would measure in 2 s steps).
    let mut flows_back = None;
    while back.elapsed() < Duration::from_secs(20) {
        let n = tb
            .host(2)
            .expect("host2")
            .dump_flows()
            .map(|f| f.lines().filter(|l| l.contains("table=")).count())
            .unwrap_or(0);
        if n >= flows_before {
            flows_back = Some(back.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "all {flows_before} flows back {flows_back:?} after ovs-vswitchd accepted connections again"
    );
    let flows_back = flows_back.expect("the flows never came back");
    assert!(
        flows_back <= Duration::from_secs(2),
        "flows back after {flows_back:?}"
    );
    let mut ok = false;
    while back.elapsed() < Duration::from_secs(20) {
        if a.ping_interval(b.ip, 1, 200)
            .map(|r| r.any())
            .unwrap_or(false)
        {
            ok = true;
            break;
        }
    }
    let gap = back.elapsed();
    println!(
        "ping resumed {:.2} s after ovs-vswitchd accepted connections again",
        gap.as_secs_f64()
    );
    assert!(ok, "ping never resumed after the ovs-vswitchd restart");
    // Issue 16 asks for flows back within ~1 s; a loaded 2-core machine needs slack, but the
    // 30 s resync it used to take is far beyond this bound.
    assert!(gap < Duration::from_secs(8), "recovery took {gap:?}");
}
