//! End-to-end: the host management port (`--mgmt-switch`). Three hosts, each agent with a
//! management port on switch `mgmt` (10.61.0.0/24) and routes for the cluster subnets
//! (10.62.0.0/24, 10.63.0.0/24: pods on two other switches) through the router port of
//! `mgmt` on router lr1. Each host pings a pod on another host through the router and opens
//! a TCP connection to it (the kubelet probe path), pods reach their host's management
//! address, and an agent restart keeps the path up (0 lost pings, same port, same address).

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;
use weft_testbed::pod::{parse_ping, PingResult};
use weft_testbed::testbed::{Testbed, TestbedConfig};

const MGMT: &str = "10.61.0.0/24";
const LS1: &str = "10.62.0.0/24";
const LS2: &str = "10.63.0.0/24";

/// Attaches `sw` (subnet `subnet`, created unless `exists`) to router `r` with `r-sw` = .1.
fn attach(tb: &mut Testbed, r: &str, sw: &str, subnet: &str, mac: &str, exists: bool) {
    if !exists {
        switch(tb, sw, subnet);
    }
    let lrp = format!("{r}-{sw}");
    let lsp = format!("{sw}-{r}");
    let gw = subnet.replace(".0/24", ".1/24");
    ctl(tb, &["lrp-add", r, &lrp, mac, &gw]);
    attach_router_port(tb, sw, &lsp, &lrp);
}

/// `ping` from host `n`'s own namespace.
fn host_ping(tb: &Testbed, n: usize, ip: &str, count: u32, interval: &str) -> PingResult {
    let ns = tb.host(n).expect("host").netns.clone();
    let c = count.to_string();
    let out = Command::new("ip")
        .args([
            "netns", "exec", &ns, "ping", "-n", "-c", &c, "-i", interval, "-W", "2", ip,
        ])
        .output()
        .expect("ping runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    parse_ping(&stdout).unwrap_or_else(|| panic!("host{n} ping {ip}: {stdout}"))
}

fn mgmt_ip(tb: &mut Testbed, n: usize) -> String {
    tb.weftctl()
        .and_then(|c| c.port_address(&format!("mgmt-host{n}")))
        .unwrap_or_else(|e| panic!("mgmt-host{n}: {e:#}"))
        .ip
        .to_string()
}

#[test]
fn host_reaches_pods_through_its_management_port() {
    let name = "host_reaches_pods_through_its_management_port";
    let cfg = TestbedConfig::new()
        .hosts(3)
        .controllers(1)
        .mgmt("mgmt", MGMT, &[LS1, LS2]);
    if !ready(name, &cfg) {
        return;
    }
    let mut tb = start(cfg);
    ctl(&mut tb, &["lr-add", "lr1"]);
    attach(&mut tb, "lr1", "mgmt", MGMT, "0a:00:00:3d:00:01", true);
    attach(&mut tb, "lr1", "ls1", LS1, "0a:00:00:3e:00:01", false);
    attach(&mut tb, "lr1", "ls2", LS2, "0a:00:00:3f:00:01", false);
    for (sw, p) in [("ls1", "a1"), ("ls1", "a2"), ("ls2", "b3")] {
        dyn_port(&mut tb, sw, p);
    }
    let a1 = pod(&mut tb, 1, "a1");
    let a2 = pod(&mut tb, 2, "a2");
    let b3 = pod(&mut tb, 3, "b3");

    // Every host gets its port, its address and the routes via the router port.
    for n in 1..=3 {
        let h = tb.host(n).expect("host");
        wait_for(60, &format!("host{n}'s routes via weft-mp0"), || {
            [LS1, LS2].iter().all(|s| {
                h.exec(&["ip", "-4", "route", "show", s])
                    .is_ok_and(|r| r.contains("via 10.61.0.1 dev weft-mp0"))
            })
        });
    }
    sync(&mut tb);
    let ips: Vec<String> = (1..=3).map(|n| mgmt_ip(&mut tb, n)).collect();
    for (n, ip) in ips.iter().enumerate() {
        let h = tb.host(n + 1).expect("host");
        let addr = h
            .exec(&["ip", "-4", "addr", "show", "dev", "weft-mp0"])
            .expect("ip addr");
        assert!(
            addr.contains(&format!("{ip}/24")),
            "host{} weft-mp0: {addr}",
            n + 1
        );
        println!("host{}: management address {ip}", n + 1);
    }
    assert_eq!(port_chassis(&mut tb, "mgmt-host2"), "host2");

    // Each host pings a pod on another host, through the router.
    for (n, p) in [(1, &a2), (2, &b3), (3, &a1)] {
        let r = host_ping(&tb, n, &p.ip.to_string(), 3, "0.2");
        assert!(r.all(), "host{n} -> {} ({}): {r:?}", p.name, p.ip);
    }
    // The kubelet probe case: a TCP connection from host1 to a pod on host3.
    let tcpcheck = env!("CARGO_BIN_EXE_weft-tcpcheck");
    let addr = format!("{}:8080", b3.ip);
    let bytes = (1024 * 1024).to_string();
    let srv = b3
        .spawn(&[tcpcheck, "server", &addr, &bytes])
        .expect("server");
    wait_for(10, "tcpcheck server to listen", || {
        b3.exec(&["cat", "/proc/net/tcp"])
            .is_ok_and(|t| t.contains(":1F90 "))
    });
    let ns1 = tb.host(1).expect("host1").netns.clone();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns1, tcpcheck, "client", &addr, &bytes])
        .output()
        .expect("client runs");
    let srv_out = srv.wait_with_output().expect("server exits");
    assert!(
        out.status.success(),
        "host1 -> b3 TCP: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        srv_out.status.success(),
        "b3 server: {}",
        String::from_utf8_lossy(&srv_out.stderr)
    );
    assert!(String::from_utf8_lossy(&srv_out.stdout).contains(&format!("ok {bytes}")));

    // Pods reach their host's management address (and another host's).
    for (p, n) in [(&a1, 1), (&b3, 3), (&a2, 1)] {
        let r = p.ping(&ips[n - 1], 3).expect("ping");
        assert!(r.all(), "{} -> host{n} ({}): {r:?}", p.name, ips[n - 1]);
    }

    // Agent restart: the path stays up (the port, its address and routes are reused).
    let before = tb
        .host(1)
        .expect("h1")
        .exec(&["ip", "-d", "link", "show", "weft-mp0"])
        .expect("link");
    let ping = std::thread::spawn({
        let ns = ns1.clone();
        let ip = a2.ip.to_string();
        move || {
            let out = Command::new("ip")
                .args([
                    "netns", "exec", &ns, "ping", "-n", "-c", "150", "-i", "0.05", "-W", "2", &ip,
                ])
                .output()
                .expect("ping runs");
            parse_ping(&String::from_utf8_lossy(&out.stdout)).expect("ping summary")
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    tb.restart_agent(1).expect("agent restarts");
    let r = ping.join().expect("ping thread");
    println!("host1 -> a2 across an agent restart: {r:?}");
    assert_eq!(r.lost(), 0, "pings lost across the agent restart: {r:?}");
    assert_eq!(
        mgmt_ip(&mut tb, 1),
        ips[0],
        "same address after the restart"
    );
    let after = tb
        .host(1)
        .expect("h1")
        .exec(&["ip", "-d", "link", "show", "weft-mp0"])
        .expect("link");
    let ifindex = |s: &str| s.split(':').next().unwrap_or("").to_string();
    assert_eq!(
        ifindex(&before),
        ifindex(&after),
        "the same link: {before} / {after}"
    );
    let ports = ctl(&mut tb, &["lsp-list", "mgmt"]);
    assert_eq!(
        ports.matches("mgmt-host1").count(),
        1,
        "one port for host1: {ports}"
    );
    let r = host_ping(&tb, 1, &b3.ip.to_string(), 3, "0.2");
    assert!(r.all(), "host1 -> b3 after the restart: {r:?}");
}
