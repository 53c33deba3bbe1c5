//! End-to-end: a router port's MTU (`options:gateway_mtu`, set with the generic `set`). Two
//! switches on one router over two hosts; the port towards ls2 gets an MTU 100 bytes below
//! the pods'. A ping with DF set that is too big gets ICMP "fragmentation needed" naming
//! that MTU from the router (`ping -M do` prints `Frag needed and DF set (mtu = N)`), one that
//! fits passes, one without DF is fragmented by the router and answered, and the sender's
//! path MTU follows (the next oversized DF ping fails locally with the learned MTU). A bad
//! MTU is refused naming the field and the value, and changes nothing.

mod common;
use common::*;
use weft_testbed::pod::Pod;
use weft_testbed::testbed::{Testbed, TestbedConfig};

fn attach(tb: &mut Testbed, r: &str, sw: &str, subnet: &str, mac: &str) {
    switch(tb, sw, subnet);
    let lrp = format!("{r}-{sw}");
    let lsp = format!("{sw}-{r}");
    ctl(
        tb,
        &["lrp-add", r, &lrp, mac, &subnet.replace(".0/24", ".1/24")],
    );
    attach_router_port(tb, sw, &lsp, &lrp);
}

/// `ping -M MODE -s SIZE` (2 probes); stdout + stderr.
fn ping_sized(from: &Pod, to: &str, mode: &str, size: u32) -> (bool, String) {
    let out = from
        .exec_output(&[
            "ping",
            "-n",
            "-c",
            "2",
            "-i",
            "0.3",
            "-W",
            "2",
            "-M",
            mode,
            "-s",
            &size.to_string(),
            to,
        ])
        .expect("ping runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = weft_testbed::pod::parse_ping(&text).is_some_and(|r| r.any());
    (ok, text)
}

#[test]
fn router_port_mtu_sends_frag_needed_and_fragments() {
    let name = "router_port_mtu_sends_frag_needed_and_fragments";
    let cfg = TestbedConfig::new().hosts(2).controllers(1);
    if !ready(name, &cfg) {
        return;
    }
    let mut tb = start(cfg);
    ctl(&mut tb, &["lr-add", "lr1"]);
    attach(&mut tb, "lr1", "ls1", "10.41.0.0/24", "0a:00:00:29:00:01");
    attach(&mut tb, "lr1", "ls2", "10.42.0.0/24", "0a:00:00:2a:00:01");
    dyn_port(&mut tb, "ls1", "a1");
    dyn_port(&mut tb, "ls2", "b2");
    let a1 = pod(&mut tb, 1, "a1");
    let b2 = pod(&mut tb, 2, "b2");
    sync(&mut tb);
    assert_ping(&a1, &b2);
    let pod_mtu = tb.pod_mtu();
    let mtu = pod_mtu - 100;

    // A bad MTU is refused, naming the field and the value; nothing changes.
    let before = ctl(
        &mut tb,
        &["get", "Logical_Router_Port", "lr1-ls2", "options"],
    );
    for bad in ["12", "abc", "70000"] {
        let e = tb
            .ctl(&[
                "set",
                "Logical_Router_Port",
                "lr1-ls2",
                &format!("options:gateway_mtu={bad}"),
            ])
            .expect_err("bad MTU refused");
        let e = format!("{e:#}");
        assert!(e.contains("gateway_mtu") && e.contains(bad), "{e}");
    }
    assert_eq!(
        ctl(
            &mut tb,
            &["get", "Logical_Router_Port", "lr1-ls2", "options"]
        ),
        before
    );

    ctl(
        &mut tb,
        &[
            "set",
            "Logical_Router_Port",
            "lr1-ls2",
            &format!("options:gateway_mtu={mtu}"),
        ],
    );
    sync(&mut tb);
    let b = b2.ip.to_string();
    // Fits exactly (IP datagram = MTU): passes.
    let (ok, out) = ping_sized(&a1, &b, "do", mtu - 28);
    assert!(ok, "a DF ping of exactly the MTU must pass: {out}");
    // One byte more, DF set: frag needed from the router port a1 came in by.
    let (ok, out) = ping_sized(&a1, &b, "do", mtu - 28 + 1);
    println!("a1 ping -M do -s {}:\n{out}", mtu - 28 + 1);
    assert!(!ok, "a too-big DF ping must not pass: {out}");
    assert!(
        out.contains(&format!("Frag needed and DF set (mtu = {mtu})"))
            || out.contains(&format!("mtu={mtu}")),
        "frag needed with mtu {mtu}: {out}"
    );
    assert!(
        out.contains("From 10.41.0.1") || out.contains(&format!("mtu={mtu}")),
        "from the router port: {out}"
    );
    // The sender learned the path MTU: the next one fails locally naming it.
    let (_, out) = ping_sized(&a1, &b, "do", pod_mtu - 28);
    assert!(
        out.contains(&format!("mtu={mtu}")) || out.contains(&format!("mtu = {mtu}")),
        "{out}"
    );
    // Without DF the router fragments; the reply (the other way, no MTU) comes back whole.
    let (ok, out) = ping_sized(&a1, &b, "dont", pod_mtu - 28);
    assert!(
        ok,
        "a non-DF ping over the MTU is fragmented and answered: {out}"
    );
    // The other direction has no MTU: full-size DF pings pass.
    let (ok, out) = ping_sized(&b2, &a1.ip.to_string(), "do", pod_mtu - 28);
    assert!(ok, "b2 -> a1 full MTU: {out}");

    // Clearing the option removes the limit.
    ctl(
        &mut tb,
        &[
            "remove",
            "Logical_Router_Port",
            "lr1-ls2",
            "options",
            "gateway_mtu",
        ],
    );
    sync(&mut tb);
    let flows = tb.host(1).expect("host1").dump_flows().expect("flows");
    assert!(!flows.contains("check_pkt_larger"), "{flows}");
}
