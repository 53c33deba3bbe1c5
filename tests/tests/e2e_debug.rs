//! End-to-end: the agents' debug service through the controller, on two real hosts.
//! `trace --physical` between pods on different hosts runs ofproto/trace on both chassis
//! with each flow named by its owner; a flow deleted by hand on the destination chassis
//! makes it flag the disagreement (the agents' resync is set far away, so the test runs
//! before any repair); `flows PORT` lists the port's flows on every chassis that has them,
//! with counters that grow while the pods ping; `agent-info` answers for both chassis.

mod common;
use common::*;
use weft_testbed::testbed::TestbedConfig;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

/// Packets counted on every chassis' flows of `port`: chassis → packets.
fn flow_packets(v: &serde_json::Value) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for c in v["chassis"].as_array().expect("chassis") {
        let n: u64 = c["flows"]
            .as_array()
            .map(|f| f.iter().map(|f| f["packets"].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0);
        let flows = c["flows"].as_array().map(Vec::len).unwrap_or(0);
        if flows > 0 {
            out.insert(c["chassis"].as_str().unwrap_or("").to_string(), n);
        }
    }
    out
}

#[test]
fn physical_trace_flows_and_agent_info() {
    let cfg = TestbedConfig::new()
        .hosts(2)
        .controllers(1)
        .agent_args(["--resync-interval", "900"]);
    if !ready("physical_trace_flows_and_agent_info", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw", "10.22.0.0/24");
    dyn_port(&mut tb, "sw", "d1");
    dyn_port(&mut tb, "sw", "d2");
    let a = pod(&mut tb, 1, "d1");
    let b = pod(&mut tb, 2, "d2");
    sync(&mut tb);
    assert_ping(&a, &b);
    let to = b.ip.to_string();

    // agent-info: both chassis answer, ready, with OVS' version and datapath features.
    let info = json(&ctl(&mut tb, &["-f", "json", "agent-info"]));
    let info = info.as_array().expect("array");
    assert_eq!(info.len(), 2, "{info:?}");
    for c in info {
        assert_eq!(c["error"], "", "{c}");
        assert_eq!(c["info"]["ready"], true, "{c}");
        assert!(c["info"]["flows"].as_u64().unwrap_or(0) > 0, "{c}");
        assert!(
            c["info"]["ovs_version"]
                .as_str()
                .unwrap_or("")
                .contains("Open vSwitch"),
            "{c}"
        );
        assert!(
            c["info"]["dp_features"].as_array().is_some_and(|f| f
                .iter()
                .any(|l| l.as_str().is_some_and(|l| l.starts_with("Recirc")))),
            "{c}"
        );
    }
    let text = ctl(&mut tb, &["agent-info", "host2"]);
    assert!(text.starts_with("host2 (alive): weft-agent"), "{text}");

    // trace --physical: both chassis, cookies named, no disagreement.
    let raw = ctl(
        &mut tb,
        &[
            "-f",
            "json",
            "trace",
            "d1",
            "--to",
            &to,
            "--icmp",
            "--physical",
        ],
    );
    eprintln!("{raw}");
    let out = ctl(
        &mut tb,
        &["trace", "d1", "--to", &to, "--icmp", "--physical"],
    );
    assert!(
        out.contains("verdict: delivered (delivered to d2 on host2)"),
        "{out}"
    );
    assert!(
        out.contains("physical on host1 (port d1): tunnelled"),
        "{out}"
    );
    assert!(
        out.contains("physical on host2 (tunnel from host1"),
        "{out}"
    );
    assert!(out.contains("delivered to d2"), "{out}");
    assert!(!out.contains("DISAGREEMENT"), "{out}");
    let j = json(&ctl(
        &mut tb,
        &[
            "-f",
            "json",
            "trace",
            "d1",
            "--to",
            &to,
            "--icmp",
            "--physical",
        ],
    ));
    let parts = j["physical"].as_array().expect("physical");
    assert_eq!(parts.len(), 2, "{j}");
    let owners = |i: usize| -> Vec<String> {
        parts[i]["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|h| {
                format!(
                    "{} {}",
                    h["owner"]["kind"].as_str().unwrap_or(""),
                    h["owner"]["name"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    assert!(
        owners(0).contains(&"Logical_Switch_Port d1".to_string()),
        "{:?}",
        owners(0)
    );
    assert!(
        owners(0).contains(&"Logical_Switch_Port d2".to_string()),
        "{:?}",
        owners(0)
    );
    assert!(
        owners(1).contains(&"Logical_Switch_Port d2".to_string()),
        "{:?}",
        owners(1)
    );
    assert!(
        owners(1).iter().all(|o| o != " "),
        "unnamed cookie: {:?}",
        owners(1)
    );

    // flows PORT: on both chassis (d1's own flows on host1, its L2 flow on host2), and the
    // counters grow while the pods ping.
    let before = flow_packets(&json(&ctl(&mut tb, &["-f", "json", "flows", "port", "d1"])));
    assert_eq!(
        before.keys().cloned().collect::<Vec<_>>(),
        ["host1", "host2"],
        "{before:?}"
    );
    let r = a.ping(b.ip, 5).expect("ping runs");
    assert!(r.any(), "{r:?}");
    let after = flow_packets(&json(&ctl(&mut tb, &["-f", "json", "flows", "d1"])));
    assert!(
        after["host1"] > before["host1"],
        "host1 {before:?} -> {after:?}"
    );
    assert!(
        after["host2"] > before["host2"],
        "host2 {before:?} -> {after:?}"
    );
    let text = ctl(&mut tb, &["flows", "port", "d2", "--chassis", "host2"]);
    assert!(
        text.starts_with("flows of Logical_Switch_Port d2 (cookie 0x2"),
        "{text}"
    );
    assert!(
        text.contains("host2: ") && text.contains("n_packets="),
        "{text}"
    );
    assert!(!text.contains("host1"), "{text}");

    // Delete d2's output flow by hand on host2: the physical trace flags it.
    let d2 = json(&ctl(
        &mut tb,
        &["-f", "json", "flows", "d2", "--chassis", "host2"],
    ));
    let cookie = d2["cookie"].as_str().expect("cookie").to_string();
    let h2 = tb.host(2).expect("host2");
    h2.ovs()
        .ofctl(&[
            "-O",
            "OpenFlow15",
            "del-flows",
            "br-int",
            &format!("table=70,cookie={cookie}/-1"),
        ])
        .expect("del-flows");
    let out = ctl(
        &mut tb,
        &["trace", "d1", "--to", &to, "--icmp", "--physical"],
    );
    assert!(out.contains("verdict: delivered"), "{out}");
    assert!(
        out.contains("DISAGREEMENT: logical trace delivers to d2 on host2, but the flows there end in dropped at table 70's default flow"),
        "{out}"
    );

    // support-bundle: show, agent-info, every chassis' flows (groups too) and metrics.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("bundle");
    let dir_s = dir.to_str().expect("utf-8 path").to_string();
    let cm = tb.controller_metrics_urls()[0].clone();
    let out = ctl(&mut tb, &["support-bundle", &dir_s, "--metrics", &cm]);
    assert!(out.starts_with("wrote 7 files"), "{out}");
    let read =
        |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    assert!(read("show.txt").contains("switch sw"));
    assert!(read("agent-info.txt").contains("host2 (alive)"));
    let f1 = read("flows-host1.txt");
    assert!(
        f1.contains("n_packets=") && f1.contains("group_id="),
        "{f1}"
    );
    assert!(read("metrics-host2.txt").contains("weft_agent_flows_installed"));
    assert!(read("metrics-controller1.txt").contains("weft_controller_requests_total"));
    assert!(tmp.path().join("bundle.tar.gz").exists());

    // An unknown chassis or object names itself.
    let e = tb
        .ctl(&["agent-info", "nohost"])
        .expect_err("unknown chassis");
    assert!(format!("{e:#}").contains("\"nohost\""), "{e:#}");
    let e = tb
        .ctl(&["flows", "port", "nope"])
        .expect_err("unknown port");
    assert!(format!("{e:#}").contains("\"nope\""), "{e:#}");
}
