//! End-to-end: distributed logical routing between switches. Two switches with different
//! subnets on one router whose ports are the subnets' gateways (.1); pods on both switches
//! on three hosts ping each other across hosts through the router, the TTL drops by one,
//! the router port IPs answer ping, an expiring TTL gets an ICMP time exceeded from the
//! router port (`traceroute` names it), and a second router with the same (overlapping)
//! subnets stays isolated from the first. Run over Geneve and over VXLAN.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use weft_testbed::pod::Pod;
use weft_testbed::testbed::{Encap, Testbed, TestbedConfig};

/// `lr-add R`, then for each (switch, subnet, router port MAC): the switch, a router port
/// `R-SW` with the subnet's .1, and the switch's router-type port `SW-R` attached to it.
fn router(tb: &mut Testbed, r: &str, nets: &[(&str, &str, &str)]) {
    ctl(tb, &["lr-add", r]);
    for (sw, subnet, mac) in nets {
        switch(tb, sw, subnet);
        let lrp = format!("{r}-{sw}");
        let lsp = format!("{sw}-{r}");
        let gw = subnet.replace(".0/24", ".1/24");
        ctl(tb, &["lrp-add", r, &lrp, mac, &gw]);
        attach_router_port(tb, sw, &lsp, &lrp);
    }
}

/// The TTL of the first echo reply of `ping -c 1`.
fn reply_ttl(from: &Pod, ip: &str) -> u8 {
    let out = from
        .exec(&["ping", "-n", "-c", "1", "-W", "2", ip])
        .unwrap_or_else(|e| panic!("{} ping {ip}: {e:#}", from.name));
    let ttl = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ttl="))
        .unwrap_or_else(|| panic!("no ttl in {out:?}"));
    ttl.parse().expect("ttl is a number")
}

/// Pings `ip` with IP TTL `ttl`; true when a reply came back.
fn ping_with_ttl(from: &Pod, ip: &str, ttl: u8) -> bool {
    let out = from
        .exec_output(&[
            "ping",
            "-n",
            "-c",
            "2",
            "-i",
            "0.3",
            "-W",
            "1",
            "-t",
            &ttl.to_string(),
            ip,
        ])
        .expect("ping runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    weft_testbed::pod::parse_ping(&stdout).is_some_and(|r| r.any())
}

/// The hops `traceroute -n` from `from` to `ip` reports (one probe per hop, `*` for none).
fn traceroute(from: &Pod, ip: &str, icmp: bool) -> Vec<String> {
    let mut args = vec!["traceroute", "-n", "-q", "1", "-w", "2", "-m", "4"];
    if icmp {
        args.push("-I");
    }
    args.push(ip);
    let out = from
        .exec(&args)
        .unwrap_or_else(|e| panic!("{} traceroute {ip}: {e:#}", from.name));
    println!(
        "{} traceroute{} {ip}:\n{out}",
        from.name,
        if icmp { " -I" } else { "" }
    );
    out.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// `weft_agent_drift_repairs_total` of the agent listening on `addr`.
fn drift_repairs(addr: SocketAddr) -> f64 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out.lines()
        .find_map(|l| l.strip_prefix("weft_agent_drift_repairs_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no weft_agent_drift_repairs_total in {out}"))
}

fn routing_over(encap: Encap) {
    let name = format!("routing_over_{encap}");
    // A short resync: the routing flows read back from OVS must equal what the agent
    // compiled (else every resync would "repair" them).
    let cfg = TestbedConfig::new()
        .hosts(3)
        .controllers(1)
        .encap(encap)
        .agent_args(["--resync-interval", "2"]);
    if !ready(&name, &cfg)
        || !weft_testbed::skip::require_tools(
            &name,
            &[(
                "traceroute",
                "apt-get install traceroute (scripts/setup.sh)",
            )],
        )
    {
        return;
    }
    let mut tb = start(cfg);
    router(
        &mut tb,
        "lr1",
        &[
            ("ls1", "10.31.0.0/24", "0a:00:00:1f:00:01"),
            ("ls2", "10.32.0.0/24", "0a:00:00:20:00:01"),
        ],
    );
    // A second router with the same subnets: must not reach the first one's pods.
    router(
        &mut tb,
        "lr2",
        &[
            ("ls3", "10.31.0.0/24", "0a:00:01:1f:00:01"),
            ("ls4", "10.32.0.0/24", "0a:00:01:20:00:01"),
        ],
    );
    let ls1 = [("a1", 1), ("a2", 2)];
    let ls2 = [("b1", 1), ("b2", 2), ("b3", 3)];
    let ls3 = [("c1", 3)];
    let ls4 = [("d1", 1)];
    for (sw, pods) in [
        ("ls1", &ls1[..]),
        ("ls2", &ls2[..]),
        ("ls3", &ls3[..]),
        ("ls4", &ls4[..]),
    ] {
        for (p, _) in pods {
            dyn_port(&mut tb, sw, p);
        }
    }
    let mk = |tb: &mut Testbed, pods: &[(&str, usize)]| -> Vec<Pod> {
        pods.iter().map(|(p, h)| pod(tb, *h, p)).collect()
    };
    let a = mk(&mut tb, &ls1);
    let b = mk(&mut tb, &ls2);
    let c = mk(&mut tb, &ls3);
    let d = mk(&mut tb, &ls4);
    sync(&mut tb);
    for p in a.iter().chain(&b).chain(&c).chain(&d) {
        let gw = p
            .gateway
            .expect("pods get the subnet's first address as gateway");
        assert_eq!(gw.octets()[3], 1, "{}: gateway {gw}", p.name);
    }

    // Across the router, same host and across hosts, both directions.
    for x in &a {
        for y in &b {
            assert_ping(x, y);
            assert_ping(y, x);
        }
    }
    // The second router routes its own pods.
    assert_ping(&c[0], &d[0]);
    assert_ping(&d[0], &c[0]);

    // The router port IPs answer ping: the local one and the far one.
    for ip in ["10.31.0.1", "10.32.0.1"] {
        let r = a[1].ping(ip, 3).expect("ping runs");
        assert!(r.any(), "a2 cannot ping router port {ip}: {r:?}");
    }
    assert_eq!(
        reply_ttl(&a[0], "10.31.0.1"),
        64,
        "the router replies with TTL 64"
    );
    // The gateway's ARP was answered by the router port (its MAC), not by pinctrl's
    // 0a:58:... responder.
    let neigh = a[0]
        .exec(&["ip", "neigh", "show", "10.31.0.1"])
        .expect("ip neigh");
    assert!(
        neigh.contains("0a:00:00:1f:00:01"),
        "a1's gateway entry: {neigh:?}"
    );
    let neigh = b[2]
        .exec(&["ip", "neigh", "show", "10.32.0.1"])
        .expect("ip neigh");
    assert!(
        neigh.contains("0a:00:00:20:00:01"),
        "b3's gateway entry: {neigh:?}"
    );

    // TTL: one router hop takes one off (64 → 63 on arrival, 63 seen on the reply too).
    // a1 (host1) → b3 (host3): b3's reply crosses the router once as well.
    assert_eq!(
        reply_ttl(&a[0], &b[2].ip.to_string()),
        63,
        "a1 → b3 reply TTL"
    );
    // The logical trace names the router and the route taken; the physical trace runs the
    // router's flows on the source chassis and names their owners.
    let to = b[2].ip.to_string();
    let t = ctl(&mut tb, &["trace", "a1", "--to", &to, "--icmp"]);
    assert!(
        t.contains("lr-route") && t.contains("lr1"),
        "no route in:\n{t}"
    );
    assert!(
        t.contains("verdict: delivered (delivered to b3 on host3)"),
        "{t}"
    );
    let p = ctl(
        &mut tb,
        &["trace", "--physical", "a1", "--to", &to, "--icmp"],
    );
    assert!(
        p.contains("Logical_Router"),
        "router flows not named in:\n{p}"
    );
    assert!(!p.contains("DISAGREEMENT"), "{p}");
    // On the same switch nothing decrements.
    assert_eq!(
        reply_ttl(&b[0], &b[1].ip.to_string()),
        64,
        "b1 → b2 reply TTL"
    );
    // A packet sent with TTL 1 dies at the router, which says so (ICMP time exceeded from
    // the input port's address); with TTL 2 it arrives.
    assert!(
        !ping_with_ttl(&a[0], &b[1].ip.to_string(), 1),
        "TTL 1 crossed the router"
    );
    let out = a[0]
        .exec_output(&[
            "ping",
            "-n",
            "-c",
            "1",
            "-W",
            "2",
            "-t",
            "1",
            &b[1].ip.to_string(),
        ])
        .expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("From 10.31.0.1") && text.contains("Time to live exceeded"),
        "no time exceeded from the router port in {text:?}"
    );
    assert!(
        ping_with_ttl(&a[0], &b[1].ip.to_string(), 2),
        "TTL 2 did not cross the router"
    );
    // traceroute (UDP probes, and ICMP echo probes with -I) names the router port facing
    // the sender as hop 1 and the destination as hop 2: a1 (host1) → b3 (host3), b2 → a2.
    for (from, to, hop1) in [(&a[0], &b[2], "10.31.0.1"), (&b[1], &a[1], "10.32.0.1")] {
        for icmp in [false, true] {
            let hops = traceroute(from, &to.ip.to_string(), icmp);
            assert_eq!(
                hops,
                vec![hop1.to_string(), to.ip.to_string()],
                "traceroute{} {} → {}",
                if icmp { " -I" } else { "" },
                from.name,
                to.name
            );
        }
    }

    // Isolation: lr1's and lr2's pods share addresses but never reach each other. c1
    // (ls3, 10.31.0.x on lr2) pings the addresses of lr1's ls2 pods: only lr2's own ls4
    // pod may answer, and only for its own address.
    for y in &b {
        if y.ip != d[0].ip {
            assert_no_ping(&c[0], y.ip);
        }
    }
    for x in &a {
        if x.ip != c[0].ip && x.ip != d[0].ip {
            assert_no_ping(&d[0], x.ip);
        }
    }
    // And a counter proof: the pods of lr1 saw no echo from lr2's pods. Pings between lr1
    // pods are done; count the echoes b's pods receive while c1 and d1 ping.
    let before: Vec<u64> = b.iter().map(|p| p.icmp_in_echos().expect("snmp")).collect();
    for y in &b {
        let _ = c[0].ping(y.ip, 2);
    }
    let after: Vec<u64> = b.iter().map(|p| p.icmp_in_echos().expect("snmp")).collect();
    assert_eq!(before, after, "lr2's pod reached lr1's pods");

    // Several resyncs later, no agent has repaired anything: OVS reports the router flows
    // back exactly as compiled.
    std::thread::sleep(Duration::from_secs(5));
    for h in 1..=3 {
        let addr = tb.host(h).expect("host").metrics_addr;
        assert_eq!(drift_repairs(addr), 0.0, "host{h} repaired drift");
    }
}

#[test]
fn routing_over_geneve() {
    routing_over(Encap::Geneve);
}

#[test]
fn routing_over_vxlan() {
    routing_over(Encap::Vxlan);
}
