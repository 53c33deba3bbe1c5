//! End-to-end: the agent's /metrics, /healthz and /readyz (--metrics-listen) on a real host.
//! /metrics parses with a Prometheus text-format parser and the key series move when a pod
//! comes up; /readyz is 503 while the agent has no snapshot applied (its controller is down)
//! and 200 once it has one.

mod common;
use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use weft_testbed::testbed::TestbedConfig;

/// GET `path` from `addr`: (status, body); None when nothing listens yet.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((
        head.split_whitespace().nth(1)?.parse().ok()?,
        body.to_string(),
    ))
}

/// name{sorted labels} → value (histograms: their count).
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (code, body) = get(addr, "/metrics").expect("metrics answer");
    assert_eq!(code, 200);
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format");
    let mut out = HashMap::new();
    for s in parsed.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => h.last().map(|b| b.count).unwrap_or(0.0),
            prometheus_parse::Value::Summary(_) => 0.0,
        };
        out.insert(format!("{}{{{}}}", s.metric, labels.join(",")), v);
    }
    out
}

fn v(m: &HashMap<String, f64>, k: &str) -> f64 {
    m.get(k).copied().unwrap_or(0.0)
}

#[test]
fn agent_metrics_and_readiness() {
    let cfg = TestbedConfig::new().hosts(1).controllers(1);
    if !ready("agent_metrics_and_readiness", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    let addr = tb.host(1).expect("host1").metrics_addr;
    wait_for(30, "agent /readyz 200", || {
        get(addr, "/readyz").is_some_and(|(c, _)| c == 200)
    });
    assert_eq!(get(addr, "/healthz").expect("healthz").0, 200);
    let m0 = scrape(addr);
    for k in [
        "weft_agent_flows_installed{}",
        "weft_agent_resyncs_total{}",
        "weft_agent_drift_repairs_total{}",
    ] {
        assert!(
            m0.contains_key(k),
            "{k} missing: {:?}",
            m0.keys().collect::<Vec<_>>()
        );
    }

    switch(&mut tb, "sw", "10.23.0.0/24");
    dyn_port(&mut tb, "sw", "m1");
    let p = pod(&mut tb, 1, "m1");
    sync(&mut tb);
    // The port's flows follow its VIF, which the agent may see after the sync returned.
    let f0 = v(&m0, "weft_agent_flows_installed{}");
    wait_for(30, "weft_agent_flows_installed to grow", || {
        v(&scrape(addr), "weft_agent_flows_installed{}") > f0
    });
    let m1 = scrape(addr);
    assert!(
        v(&m1, "weft_agent_flows_installed{}") > v(&m0, "weft_agent_flows_installed{}"),
        "flows {} -> {}",
        v(&m0, "weft_agent_flows_installed{}"),
        v(&m1, "weft_agent_flows_installed{}")
    );
    assert!(v(&m1, "weft_agent_groups_installed{}") > 0.0);
    assert!(
        v(&m1, "weft_agent_bundles_total{result=ok}")
            > v(&m0, "weft_agent_bundles_total{result=ok}")
    );
    assert!(
        v(
            &m1,
            "weft_agent_reconcile_duration_seconds{kind=incremental}"
        ) > v(
            &m0,
            "weft_agent_reconcile_duration_seconds{kind=incremental}"
        )
    );
    assert!(v(&m1, "weft_agent_bundle_duration_seconds{}") > 0.0);

    // A gateway ARP answered by pinctrl counts as a handled packet-in.
    let handled = "weft_agent_packet_ins_total{handler=gateway-arp,result=handled}";
    wait_for(20, "a handled gateway-arp packet-in", || {
        let _ = p.ping("10.23.0.1", 1);
        v(&scrape(addr), handled) > 0.0
    });

    // Without a controller a restarted agent gets no snapshot: not ready, with the reason.
    tb.stop_controller(1).expect("stop controller");
    tb.stop_agent(1).expect("stop agent");
    tb.start_agent(1).expect("start agent");
    wait_for(30, "restarted agent's /readyz", || {
        get(addr, "/readyz").is_some()
    });
    let (code, body) = get(addr, "/readyz").expect("readyz");
    assert_eq!(
        (code, body.as_str()),
        (503, "not ready: no view snapshot applied to OVS yet\n")
    );
    assert_eq!(get(addr, "/healthz").expect("healthz").0, 200);
    tb.start_controller(1).expect("start controller");
    wait_for(60, "agent /readyz 200 after the snapshot", || {
        get(addr, "/readyz").is_some_and(|(c, _)| c == 200)
    });
}
