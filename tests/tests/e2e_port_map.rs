//! End-to-end: router load balancers and port mapping over real OVS on three hosts with a
//! provider network (`TestbedConfig::external`: an "outside" namespace at 172.16.0.254).
//!
//! Topology: router lr1 with ls1 (10.62.0.0/24) and ext (172.16.0.0/24, localnet on
//! physnet); the gateway port lr1-ext (172.16.0.1) has gateway chassis host1 only; SNAT of
//! ls1 to 172.16.0.10. Backend pods b2 on host2 and b3 on host3 (never the gateway host)
//! run a small Python server that answers every line with its name.
//!
//! - port mapping: `lr-port-map-add lr1 172.16.0.10:8080 B2:80` (the SNAT address, as
//!   `docker -p` on the host address would be): from the outside, connections to
//!   172.16.0.10:8080 all reach b2's port 80 on host2, and the replies come back through the
//!   gateway (the flow counters of host2's gateway redirect and host1's un-DNAT lookup move);
//!   SNAT keeps working; bad mappings are refused naming the value; after
//!   `lr-port-map-del` the port is closed again; no agent ever repairs drift (the router
//!   LB flows and groups read back from OVS equal what was compiled);
//! - a router LB on the gateway port's own address, 172.16.0.1:80 over b2 and b3 port 8080
//!   (`lb-add` + `lr-lb-add`): connections from the outside split over both; an
//!   established connection keeps its backend when that backend leaves the VIP, while new
//!   ones go to the other.
//!
//! python3 is a prerequisite, as for e2e_lb.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use weft_testbed::pod::Pod;
use weft_testbed::testbed::{Testbed, TestbedConfig};

const OUTSIDE: &str = "172.16.0.254";
const EXT_IP: &str = "172.16.0.10";
const GW_IP: &str = "172.16.0.1";

/// `NAME PORT...`: answers every line of every TCP connection on each PORT with NAME.
const SERVER: &str = r#"
import socket, sys, threading
name = sys.argv[1]
def conn(c):
    f = c.makefile("rb")
    for line in f:
        c.sendall((name + "\n").encode())
    c.close()
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(128)
    while True:
        c, _ = s.accept()
        threading.Thread(target=conn, args=(c,), daemon=True).start()
for p in sys.argv[3:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
serve(int(sys.argv[2]))
"#;

/// `IP PORT N TIMEOUT`: N short TCP connections; prints `NAME COUNT` lines (`failed COUNT`).
const CLIENT: &str = r#"
import socket, sys, collections
ip, port, n, t = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
c = collections.Counter()
for i in range(n):
    try:
        s = socket.create_connection((ip, port), timeout=t)
        s.sendall(b"hi\n")
        r = s.makefile("rb").readline().decode().strip()
        s.close()
        c[r if r else "failed"] += 1
    except Exception:
        c["failed"] += 1
for k, v in sorted(c.items()):
    print(k, v)
"#;

fn outside_connect(
    tb: &Testbed,
    ip: &str,
    port: u16,
    n: u32,
    timeout: &str,
) -> BTreeMap<String, u32> {
    let (port, n) = (port.to_string(), n.to_string());
    let out = tb
        .outside_exec(&["python3", "-c", CLIENT, ip, &port, &n, timeout])
        .expect("client runs in the outside namespace");
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Sum of n_packets of br-int flows on `host` whose text contains every needle.
fn packets(tb: &Testbed, host: usize, needles: &[&str]) -> u64 {
    let flows = tb
        .host(host)
        .expect("host")
        .dump_flows()
        .expect("dump-flows");
    flows
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .filter_map(|l| {
            l.split(", ")
                .find_map(|f| f.trim().strip_prefix("n_packets="))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

fn drift_repairs(addr: std::net::SocketAddr) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
        .expect("metrics");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out.lines()
        .find_map(|l| l.strip_prefix("weft_agent_drift_repairs_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no weft_agent_drift_repairs_total in {out}"))
}

fn topology(tb: &mut Testbed) -> (Pod, Pod) {
    ctl(tb, &["lr-add", "lr1"]);
    switch(tb, "ls1", "10.62.0.0/24");
    switch(tb, "ext", "172.16.0.0/24");
    ctl(
        tb,
        &[
            "lrp-add",
            "lr1",
            "lr1-ls1",
            "0a:00:00:3e:00:01",
            "10.62.0.1/24",
        ],
    );
    attach_router_port(tb, "ls1", "ls1-lr1", "lr1-ls1");
    ctl(
        tb,
        &[
            "lrp-add",
            "lr1",
            "lr1-ext",
            "0a:00:00:10:00:01",
            "172.16.0.1/24",
        ],
    );
    attach_router_port(tb, "ext", "ext-lr1", "lr1-ext");
    localnet_port(tb, "ext", "ln-ext", "physnet");
    ctl(tb, &["lrp-set-gateway-chassis", "lr1-ext", "host1", "20"]);
    ctl(tb, &["lr-nat-add", "lr1", "snat", EXT_IP, "10.62.0.0/24"]);
    for p in ["b2", "b3"] {
        dyn_port(tb, "ls1", p);
    }
    let b2 = pod(tb, 2, "b2");
    let b3 = pod(tb, 3, "b3");
    sync(tb);
    (b2, b3)
}

fn listening(p: &Pod, hex: &str) -> bool {
    p.exec(&["cat", "/proc/net/tcp"])
        .map(|t| t.contains(&format!(":{hex} ")))
        .unwrap_or(false)
}

#[test]
fn port_mapping_and_router_lb_from_the_outside() {
    let name = "port_mapping_and_router_lb_from_the_outside";
    // A short resync: the router LB flows and groups read back from OVS must equal what the
    // agent compiled.
    let cfg = TestbedConfig::new()
        .hosts(3)
        .controllers(1)
        .external(true)
        .agent_args(["--resync-interval", "2"]);
    if !ready(name, &cfg) {
        return;
    }
    let started = std::time::Instant::now();
    let mut tb = start(cfg);
    let (b2, b3) = topology(&mut tb);
    let mut servers = Vec::new();
    for b in [&b2, &b3] {
        servers.push(
            b.spawn(&["python3", "-c", SERVER, &b.lport, "80", "8080"])
                .expect("server starts"),
        );
        wait_for(10, "the backend to listen on 80 and 8080", || {
            listening(b, "0050") && listening(b, "1F90")
        });
    }
    // SNAT works (b3, host3, is redirected to the gateway host1).
    let r = b3.ping(OUTSIDE, 3).expect("ping runs");
    assert!(r.any(), "b3 cannot reach the outside through SNAT: {r:?}");

    // Port mapping: 172.16.0.10:8080 → b2:80.
    let logical = format!("{}:80", b2.ip);
    let ext = format!("{EXT_IP}:8080");
    ctl(&mut tb, &["lr-port-map-add", "lr1", &ext, &logical]);
    let listed = ctl(&mut tb, &["lr-port-map-list", "lr1"]);
    println!("lr-port-map-list lr1:\n{listed}");
    assert!(
        listed.contains(&ext) && listed.contains(&logical) && listed.contains("tcp"),
        "{listed}"
    );
    let lbs = ctl(&mut tb, &["lr-lb-list", "lr1"]);
    assert!(lbs.contains("pm-lr1-172.16.0.10-8080-tcp"), "{lbs}");
    sync(&mut tb);
    // Flow counters before: host2's redirect of lr1-ext traffic to the gateway, host1's
    // lookup of traffic leaving by lr1-ext (which un-DNATs the replies).
    // (A next hop host2 has not learned yet is redirected from lr-neigh with the other
    // marker.)
    let redirected = |tb: &Testbed| {
        packets(
            tb,
            2,
            &["table=47", "priority=200", "set_field:0x8000->reg14"],
        ) + packets(
            tb,
            2,
            &["table=46", "priority=10", "set_field:0x8001->reg14"],
        )
    };
    let undnat = ["table=47", "priority=100", "ct(table=80"];
    let (r0, u0) = (redirected(&tb), packets(&tb, 1, &undnat));
    let n = 50;
    let c = outside_connect(&tb, EXT_IP, 8080, n, "3");
    println!("port map {ext} -> {logical} (b2 on host2; gateway host1): {n} connections from the outside: {c:?}");
    assert_eq!(
        c.get("b2").copied(),
        Some(n),
        "every connection reaches b2: {c:?}"
    );
    // Flow statistics reach OpenFlow when the datapath's flows are revalidated.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (r1, u1) = (redirected(&tb), packets(&tb, 1, &undnat));
    if r1 - r0 < u64::from(n) || u1 - u0 < u64::from(n) {
        for h in [1, 2] {
            let f = tb.host(h).expect("host").dump_flows().expect("dump-flows");
            let f: Vec<&str> = f
                .lines()
                .filter(|l| {
                    l.contains("table=47")
                        || l.contains("table=46")
                        || l.contains("table=43")
                        || l.contains("table=42")
                })
                .collect();
            println!("host{h} flows 42/43/46/47:\n{}", f.join("\n"));
        }
    }
    println!(
        "replies through the gateway: host2 redirected {} packets, host1 un-DNATed {} leaving packets",
        r1 - r0,
        u1 - u0
    );
    assert!(
        r1 - r0 >= u64::from(n),
        "host2 sent the replies to the gateway: {r0} -> {r1}"
    );
    assert!(
        u1 - u0 >= u64::from(n),
        "host1 looked the replies up: {u0} -> {u1}"
    );
    // SNAT still applies with the mapping on its address.
    let r = b3.ping(OUTSIDE, 3).expect("ping runs");
    assert!(r.any(), "SNAT broken by the port mapping: {r:?}");

    // Bad mappings are refused, naming the value; nothing changes.
    for (args, needles) in [
        (
            vec![
                "lr-port-map-add",
                "lr1",
                "192.168.50.10:8080",
                "10.62.0.5:80",
            ],
            vec!["192.168.50.10", "on no gateway port"],
        ),
        (
            vec!["lr-port-map-add", "lr1", "172.16.0.10:8080", "10.62.0.9:80"],
            vec!["172.16.0.10:8080 tcp", "already maps it"],
        ),
        (
            vec!["lr-port-map-add", "lr1", "172.16.0.10:0", "10.62.0.5:80"],
            vec!["172.16.0.10:0"],
        ),
        (
            vec![
                "lr-port-map-add",
                "lr1",
                "172.16.0.10:8081",
                "10.62.0.5:80",
                "icmp",
            ],
            vec!["icmp"],
        ),
    ] {
        let e = tb.ctl(&args).expect_err("refused").to_string();
        println!("weftctl {}: {}", args.join(" "), e.trim());
        for n in needles {
            assert!(e.contains(n), "weftctl {args:?}: {e:?} lacks {n:?}");
        }
    }
    assert_eq!(ctl(&mut tb, &["lr-port-map-list", "lr1"]), listed);

    // A router LB with two backends on the gateway port's own address.
    let backends = format!("{}:8080,{}:8080", b2.ip, b3.ip);
    let vip = format!("{GW_IP}:80");
    ctl(&mut tb, &["lb-add", "rweb", &vip, &backends]);
    ctl(&mut tb, &["lr-lb-add", "lr1", "rweb"]);
    sync(&mut tb);
    let n = 100;
    let c = outside_connect(&tb, GW_IP, 80, n, "3");
    println!("router LB {vip} -> {backends}: {n} connections from the outside: {c:?}");
    assert_eq!(c.get("failed"), None, "every connection completes: {c:?}");
    assert!(
        c.get("b2").copied().unwrap_or(0) > 0 && c.get("b3").copied().unwrap_or(0) > 0,
        "both backends reached: {c:?}"
    );
    assert_eq!(c.values().sum::<u32>(), n);
    // An established connection keeps its backend when the VIP's backends change.
    let ns = tb.outside_netns().expect("external testbed");
    let mut long = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "python3",
            "-c",
            LONG_CLIENT,
            GW_IP,
            "80",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("long client starts");
    let mut stdin = long.stdin.take().expect("stdin");
    let mut lines = BufReader::new(long.stdout.take().expect("stdout")).lines();
    let mut ask = || {
        writeln!(stdin, "x").expect("write");
        stdin.flush().expect("flush");
        lines.next().expect("a line").expect("read")
    };
    let first = ask();
    assert!(first == "b2" || first == "b3", "first answer {first:?}");
    let other = if first == "b2" { &b3 } else { &b2 };
    let only_other = format!("{}:8080", other.ip);
    ctl(
        &mut tb,
        &["lb-add", "--may-exist", "rweb", &vip, &only_other],
    );
    sync(&mut tb);
    let again = ask();
    println!("established connection to {vip}: {first}, after its backend left the VIP: {again}");
    assert_eq!(again, first, "the established connection kept its backend");
    let c = outside_connect(&tb, GW_IP, 80, 10, "3");
    assert_eq!(
        c.get(other.lport.as_str()).copied(),
        Some(10),
        "new connections: {c:?}"
    );
    drop(ask);
    let _ = long.kill();
    let _ = long.wait();
    ctl(&mut tb, &["lb-add", "--may-exist", "rweb", &vip, &backends]);
    sync(&mut tb);

    // The router still answers ping on that address.
    assert!(
        tb.outside_exec(&["ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", GW_IP])
            .map(|o| !o.contains(" 100% packet loss"))
            .unwrap_or(false),
        "ping of the gateway port address"
    );

    // lr-port-map-del: the port is closed again; the router LB stays.
    ctl(&mut tb, &["lr-port-map-del", "lr1", &ext]);
    assert_eq!(ctl(&mut tb, &["lr-port-map-list", "lr1"]), "");
    sync(&mut tb);
    let c = outside_connect(&tb, EXT_IP, 8080, 2, "2");
    println!("after lr-port-map-del, 2 connections to {ext}: {c:?}");
    assert_eq!(c.get("failed").copied(), Some(2), "{c:?}");
    let c = outside_connect(&tb, GW_IP, 80, 10, "3");
    assert_eq!(c.get("failed"), None, "{c:?}");
    // Resyncs (every 2 s) read the router LB flows and groups back equal to what was
    // compiled: nothing was "repaired".
    std::thread::sleep(std::time::Duration::from_secs(3));
    for h in 1..=3 {
        let addr = tb.host(h).expect("host").metrics_addr;
        assert_eq!(drift_repairs(addr), 0.0, "host{h} repaired drift");
    }
    for mut s in servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    println!("test took {:.1} s", started.elapsed().as_secs_f64());
    tb.cleanup();
}
