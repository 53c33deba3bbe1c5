//! End-to-end: static routes through a distributed router, over real OVS on three hosts.
//! Two pods on ls2 stand for routers of networks behind them (addresses on their loopback,
//! forwarding off): a static route sends a prefix to one of them, a longer prefix wins over
//! a shorter one, ECMP spreads destinations over both next hops (and keeps one flow on one
//! of them), a src-ip route routes by source, a route deleted stops routing, and refused
//! routes change nothing (the revision stays the same).

mod common;
use common::*;
use serde_json::Value;
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

fn lo_addr(p: &Pod, ip: &str) {
    p.exec(&["ip", "addr", "add", &format!("{ip}/32"), "dev", "lo"])
        .unwrap_or_else(|e| panic!("{}: ip addr add {ip}: {e:#}", p.name));
}

fn pings(from: &Pod, ip: &str) -> bool {
    from.ping(ip, 2).expect("ping runs").any()
}

/// The revision `lr-route-list -f json` reads at.
fn revision(tb: &mut Testbed) -> i64 {
    let v: Value =
        serde_json::from_str(&ctl(tb, &["-f", "json", "lr-route-list", "lr1"])).expect("json");
    v["revision"].as_i64().expect("revision")
}

#[test]
fn static_routes_lpm_ecmp_and_policy() {
    let name = "static_routes_lpm_ecmp_and_policy";
    let cfg = TestbedConfig::new().hosts(3).controllers(1);
    if !ready(name, &cfg) {
        return;
    }
    let mut tb = start(cfg);
    ctl(&mut tb, &["lr-add", "lr1"]);
    attach(&mut tb, "lr1", "ls1", "10.41.0.0/24", "0a:00:00:29:00:01");
    attach(&mut tb, "lr1", "ls2", "10.42.0.0/24", "0a:00:00:2a:00:01");
    for (sw, p) in [("ls1", "a1"), ("ls1", "a2"), ("ls2", "n1"), ("ls2", "n2")] {
        dyn_port(&mut tb, sw, p);
    }
    let a1 = pod(&mut tb, 1, "a1");
    let a2 = pod(&mut tb, 2, "a2");
    let n1 = pod(&mut tb, 2, "n1");
    let n2 = pod(&mut tb, 3, "n2");
    sync(&mut tb);
    for n in [&n1, &n2] {
        n.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=0"])
            .expect("sysctl");
    }
    lo_addr(&n1, "192.168.77.1");
    lo_addr(&n2, "192.168.77.2");
    for i in 1..=16 {
        lo_addr(&n1, &format!("192.168.78.{i}"));
        lo_addr(&n2, &format!("192.168.78.{i}"));
    }
    lo_addr(&n1, "192.168.79.1");
    let n1_ip = n1.ip.to_string();
    let n2_ip = n2.ip.to_string();

    // No route yet: the router drops it.
    assert!(!pings(&a1, "192.168.77.1"), "routed without a route");

    // A /24 to n1: both ls1 pods (host1 and host2) reach n1's address behind it.
    ctl(
        &mut tb,
        &[
            "--wait=hv",
            "lr-route-add",
            "lr1",
            "192.168.77.0/24",
            &n1_ip,
        ],
    );
    assert!(pings(&a1, "192.168.77.1"), "a1 → 192.168.77.1 via n1");
    assert!(pings(&a2, "192.168.77.1"), "a2 → 192.168.77.1 via n1");
    // .2 goes to n1 as well, which does not forward it.
    assert!(!pings(&a1, "192.168.77.2"), "n1 forwarded .2");
    // Longest prefix wins: a /32 to n2.
    ctl(
        &mut tb,
        &[
            "--wait=hv",
            "lr-route-add",
            "lr1",
            "192.168.77.2/32",
            &n2_ip,
        ],
    );
    assert!(pings(&a1, "192.168.77.2"), "a1 → 192.168.77.2 via n2 (/32)");
    assert!(pings(&a1, "192.168.77.1"), "the /24 still routes .1 to n1");

    // ECMP: 192.168.78.0/24 over n1 and n2. Sixteen destinations spread over both; one
    // destination's pings all take one next hop.
    ctl(&mut tb, &["lr-route-add", "lr1", "192.168.78.0/24", &n1_ip]);
    let e = tb
        .ctl(&["lr-route-add", "lr1", "192.168.78.0/24", &n2_ip])
        .expect_err("a second next hop needs --ecmp");
    assert!(format!("{e:#}").contains("duplicate prefix"), "{e:#}");
    ctl(
        &mut tb,
        &[
            "--wait=hv",
            "lr-route-add",
            "--ecmp",
            "lr1",
            "192.168.78.0/24",
            &n2_ip,
        ],
    );
    let list = ctl(&mut tb, &["lr-route-list", "lr1"]);
    println!("{list}");
    assert!(
        list.contains(&format!("192.168.78.0/24 {:>25} dst-ip ecmp", n1_ip))
            && list.contains(&format!("192.168.78.0/24 {:>25} dst-ip ecmp", n2_ip)),
        "{list}"
    );
    let echos = |p: &Pod| p.icmp_in_echos().expect("snmp");
    let (b1, b2) = (echos(&n1), echos(&n2));
    let mut answered = 0;
    for i in 1..=16 {
        if a1.ping(format!("192.168.78.{i}"), 1).expect("ping").any() {
            answered += 1;
        }
    }
    let (d1, d2) = (echos(&n1) - b1, echos(&n2) - b2);
    println!("ECMP: 16 destinations, n1 got {d1} echos, n2 got {d2}");
    assert_eq!(answered, 16, "every ECMP destination answers");
    assert_eq!(d1 + d2, 16, "each echo reached one next hop");
    assert!(d1 > 0 && d2 > 0, "ECMP used one next hop only: {d1}/{d2}");
    let (b1, b2) = (echos(&n1), echos(&n2));
    assert!(a1
        .ping_interval("192.168.78.1", 5, 200)
        .expect("ping")
        .all());
    let (d1, d2) = (echos(&n1) - b1, echos(&n2) - b2);
    assert!(
        (d1, d2) == (5, 0) || (d1, d2) == (0, 5),
        "one flow split: {d1}/{d2}"
    );

    // Source routing: everything from ls1 with no better route goes to n1.
    assert!(!pings(&a1, "192.168.79.1"));
    ctl(
        &mut tb,
        &[
            "--wait=hv",
            "lr-route-add",
            "--policy=src-ip",
            "lr1",
            "10.41.0.0/24",
            &n1_ip,
        ],
    );
    assert!(pings(&a1, "192.168.79.1"), "src-ip route to n1");
    // Connected routes still win at the same length: ls1 → ls2 direct.
    assert_ping(&a1, &n2);

    // A next hop no logical port declares: n2's second address 10.42.0.200 (on its eth0,
    // not in the view). The router ARPs for it from the chassis that routes (host1 for a1,
    // host2 for a2), the first packets being dropped meanwhile; n2's reply (on host3) is
    // learned there and flooded to every chassis of ls2, which learn it too.
    n2.exec(&["ip", "addr", "add", "10.42.0.200/24", "dev", "eth0"])
        .expect("second address");
    lo_addr(&n2, "192.168.90.1");
    ctl(
        &mut tb,
        &[
            "--wait=hv",
            "lr-route-add",
            "lr1",
            "192.168.90.0/24",
            "10.42.0.200",
        ],
    );
    for (who, p) in [("a1 (host1)", &a1), ("a2 (host2)", &a2)] {
        let mut ok = false;
        for _ in 0..20 {
            if p.ping("192.168.90.1", 1).expect("ping").any() {
                ok = true;
                break;
            }
        }
        if !ok {
            for h in 1..=3 {
                let f = tb.host(h).expect("host").dump_flows().unwrap_or_default();
                let rel: Vec<&str> = f
                    .lines()
                    .filter(|l| {
                        l.contains("table=46") || l.contains("arp_op=2") || l.contains("table=41")
                    })
                    .collect();
                eprintln!("host{h}:\n{}", rel.join("\n"));
            }
        }
        assert!(ok, "{who}: the ARP-resolved next hop never answered");
        let r = p.ping("192.168.90.1", 5).expect("ping");
        assert!(r.all(), "{who}: once resolved every echo crosses: {r:?}");
    }

    // Refused routes change nothing.
    let before = revision(&mut tb);
    for (args, needle) in [
        (
            vec!["lr-route-add", "lr1", "10.50.0.0/16", "172.16.0.1"],
            "nexthop \"172.16.0.1\"",
        ),
        (
            vec![
                "lr-route-add",
                "lr1",
                "10.50.0.0/16",
                "172.16.0.1",
                "nosuch",
            ],
            "output_port \"nosuch\"",
        ),
        (
            vec!["lr-route-add", "--ecmp", "lr1", "192.168.78.0/24", &n2_ip],
            "duplicate nexthop",
        ),
        (
            vec!["lr-route-del", "lr1", "10.51.0.0/16"],
            "no matching route",
        ),
        (
            vec!["lr-route-add", "nosuch", "10.50.0.0/16", &n1_ip],
            "nosuch",
        ),
    ] {
        let e = tb.ctl(&args).expect_err("refused");
        assert!(format!("{e:#}").contains(needle), "{args:?}: {e:#}");
    }
    assert_eq!(
        revision(&mut tb),
        before,
        "a refused route changed the database"
    );

    // Deleting the /32 sends .2 back to n1 (which drops it); --if-exists of a missing one is
    // fine.
    ctl(
        &mut tb,
        &["--wait=hv", "lr-route-del", "lr1", "192.168.77.2/32"],
    );
    assert!(!pings(&a1, "192.168.77.2"), "the deleted /32 still routes");
    ctl(
        &mut tb,
        &["lr-route-del", "--if-exists", "lr1", "192.168.77.2/32"],
    );
    // One ECMP next hop removed: all of the prefix goes to n2.
    ctl(
        &mut tb,
        &[
            "--wait=hv",
            "lr-route-del",
            "lr1",
            "192.168.78.0/24",
            &n1_ip,
        ],
    );
    let b1 = echos(&n1);
    for i in 1..=4 {
        assert!(pings(&a1, &format!("192.168.78.{i}")));
    }
    assert_eq!(echos(&n1), b1, "n1 still gets ECMP traffic");
    // Everything.
    ctl(&mut tb, &["--wait=hv", "lr-route-del", "lr1"]);
    assert_eq!(ctl(&mut tb, &["lr-route-list", "lr1"]), "");
    assert!(!pings(&a1, "192.168.77.1"));
}

/// Restarting the source host's agent (gracefully, then SIGKILL + start) while a pod pings
/// across the router, through an ECMP static route (the select group) and to a connected
/// network, loses no echo: routing flows, the ECMP group and the ICMP meter are read back
/// and kept, never flushed, and a binding learned by ARP is recovered from the switch.
#[test]
fn agent_restart_keeps_routed_and_ecmp_traffic() {
    const COUNT: u32 = 1000;
    const INTERVAL_MS: u32 = 20;
    let name = "agent_restart_keeps_routed_and_ecmp_traffic";
    let cfg = TestbedConfig::new().hosts(3).controllers(1);
    if !ready(name, &cfg) {
        return;
    }
    let mut tb = start(cfg);
    ctl(&mut tb, &["lr-add", "lr1"]);
    attach(&mut tb, "lr1", "ls1", "10.43.0.0/24", "0a:00:00:2b:00:01");
    attach(&mut tb, "lr1", "ls2", "10.44.0.0/24", "0a:00:00:2c:00:01");
    for (sw, p) in [("ls1", "a1"), ("ls2", "n1"), ("ls2", "n2")] {
        dyn_port(&mut tb, sw, p);
    }
    let a1 = pod(&mut tb, 1, "a1");
    let n1 = pod(&mut tb, 2, "n1");
    let n2 = pod(&mut tb, 3, "n2");
    sync(&mut tb);
    lo_addr(&n1, "192.168.88.1");
    lo_addr(&n2, "192.168.88.1");
    ctl(
        &mut tb,
        &["lr-route-add", "lr1", "192.168.88.0/24", &n1.ip.to_string()],
    );
    ctl(
        &mut tb,
        &[
            "--wait=hv",
            "lr-route-add",
            "--ecmp",
            "lr1",
            "192.168.88.0/24",
            &n2.ip.to_string(),
        ],
    );
    assert!(pings(&a1, "192.168.88.1"), "ECMP destination answers");
    assert_ping(&a1, &n2);
    // And a next hop resolved by ARP (n2's undeclared second address): its learned binding
    // must survive the restart (recovered from the switch's flows).
    n2.exec(&["ip", "addr", "add", "10.44.0.200/24", "dev", "eth0"])
        .expect("second address");
    lo_addr(&n2, "192.168.89.1");
    ctl(
        &mut tb,
        &[
            "--wait=hv",
            "lr-route-add",
            "lr1",
            "192.168.89.0/24",
            "10.44.0.200",
        ],
    );
    wait_for(20, "the ARP-resolved next hop answers", || {
        a1.ping("192.168.89.1", 1).expect("ping").any()
    });
    for (how, graceful) in [("graceful restart", true), ("SIGKILL + start", false)] {
        let mut ecmp = a1
            .ping_background("192.168.88.1", COUNT, INTERVAL_MS)
            .expect("ping starts");
        let mut direct = a1
            .ping_background(n2.ip, COUNT, INTERVAL_MS)
            .expect("ping starts");
        let mut resolved = a1
            .ping_background("192.168.89.1", COUNT, INTERVAL_MS)
            .expect("ping starts");
        std::thread::sleep(std::time::Duration::from_secs(1));
        if graceful {
            tb.restart_agent(1).expect("restart agent on host1");
        } else {
            tb.kill_agent(1).expect("kill agent");
            tb.start_agent(1).expect("start agent");
            tb.wait_chassis_alive(&["host1".to_string()], std::time::Duration::from_secs(30))
                .expect("host1 back");
        }
        sync(&mut tb);
        assert!(
            ecmp.is_running() && direct.is_running() && resolved.is_running(),
            "{how}: restart + sync outlasted the ping window; the test proves nothing"
        );
        for (what, p) in [
            ("ECMP route", ecmp),
            ("connected route", direct),
            ("ARP-resolved next hop", resolved),
        ] {
            let r = p.wait().expect("ping finishes");
            println!("{how}, {what}: {r:?}");
            assert_eq!(r.transmitted, COUNT, "{how} {what}: {r:?}");
            assert_eq!(r.lost(), 0, "{how} {what}: lost {} of {COUNT}", r.lost());
        }
    }
}
