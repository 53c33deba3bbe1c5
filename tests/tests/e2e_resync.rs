//! End-to-end: the agents' periodic resync (issue 17) on two real hosts. The table is read
//! back in the background on a second OpenFlow connection and diffed while incremental
//! changes go on:
//! - a flow deleted by hand on host2 (the output flow of its pod) comes back at the next
//!   resync, and the pods ping again; the repair is counted in
//!   `weft_agent_drift_repairs_total`;
//! - ports added while resyncs run (every second) are programmed incrementally and no
//!   resync "repairs" them: the keys bundles wrote after a read-back began are left alone,
//!   so the drift counter does not move and every pod answers.

mod common;
use common::*;
use std::io::{Read, Write};
use weft_testbed::testbed::TestbedConfig;

/// A `weft_agent_*` counter of the agent listening on `addr` (`name` with its labels).
fn counter(addr: std::net::SocketAddr, name: &str) -> f64 {
    let (value, out) = try_counter(addr, name);
    value.unwrap_or_else(|| panic!("no {name} in {out}"))
}

/// The counter, or None while the agent has not exported it yet (a labelled histogram
/// appears with its first observation); also the whole response, for messages.
fn try_counter(addr: std::net::SocketAddr, name: &str) -> (Option<f64>, String) {
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
        .expect("metrics");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    let value = out
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok());
    (value, out)
}

fn output_flows(tb: &weft_testbed::testbed::Testbed, host: usize, cookie: &str) -> usize {
    let out = tb
        .host(host)
        .expect("host")
        .ovs()
        .ofctl(&[
            "-O",
            "OpenFlow15",
            "dump-flows",
            "br-int",
            &format!("table=70,cookie={cookie}/-1"),
        ])
        .expect("dump-flows");
    out.lines().filter(|l| l.contains("cookie=")).count()
}

#[test]
fn periodic_resync_repairs_drift_and_leaves_incremental_work_alone() {
    let cfg = TestbedConfig::new()
        .hosts(2)
        .controllers(1)
        .agent_args(["--resync-interval", "1"]);
    if !ready(
        "periodic_resync_repairs_drift_and_leaves_incremental_work_alone",
        &cfg,
    ) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw", "10.24.0.0/24");
    dyn_port(&mut tb, "sw", "r1");
    dyn_port(&mut tb, "sw", "r2");
    let a = pod(&mut tb, 1, "r1");
    let b = pod(&mut tb, 2, "r2");
    sync(&mut tb);
    assert_ping(&a, &b);
    let h2 = tb.host(2).expect("host2").metrics_addr;
    let repairs = "weft_agent_drift_repairs_total";
    let resyncs = "weft_agent_reconcile_duration_seconds_count{kind=\"resync\"}";
    wait_for(30, "host2's first periodic resync", || {
        try_counter(h2, resyncs).0.is_some_and(|n| n > 0.0)
    });
    let before = counter(h2, repairs);

    // Drift: r2's output flow deleted by hand on host2.
    let r2 = ctl(
        &mut tb,
        &["-f", "json", "flows", "r2", "--chassis", "host2"],
    );
    let r2: serde_json::Value = serde_json::from_str(&r2).expect("json");
    let cookie = r2["cookie"].as_str().expect("cookie").to_string();
    let n = output_flows(&tb, 2, &cookie);
    assert!(n > 0, "r2 has output flows on host2");
    tb.host(2)
        .expect("host2")
        .ovs()
        .ofctl(&[
            "-O",
            "OpenFlow15",
            "del-flows",
            "br-int",
            &format!("table=70,cookie={cookie}/-1"),
        ])
        .expect("del-flows");
    assert_eq!(output_flows(&tb, 2, &cookie), 0);
    let t = std::time::Instant::now();
    wait_for(30, "r2's output flows back on host2", || {
        output_flows(&tb, 2, &cookie) == n
    });
    println!("hand-deleted flow repaired after {:?}", t.elapsed());
    wait_for(10, "the repair counted", || counter(h2, repairs) > before);
    assert_ping(&a, &b);

    // Incremental work while resyncs run every second: no false repairs.
    let after_repair = counter(h2, repairs);
    let resyncs0 = counter(h2, resyncs);
    let mut pods = Vec::new();
    for k in 0..6 {
        let name = format!("r{}", k + 3);
        dyn_port(&mut tb, "sw", &name);
        pods.push(pod(&mut tb, 2, &name));
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    sync(&mut tb);
    wait_for(30, "two more resyncs on host2", || {
        counter(h2, resyncs) >= resyncs0 + 2.0
    });
    for p in &pods {
        assert_ping(&a, p);
    }
    assert_eq!(
        counter(h2, repairs),
        after_repair,
        "a resync repaired what incremental bundles had written"
    );
}
