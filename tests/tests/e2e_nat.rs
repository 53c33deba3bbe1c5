//! End-to-end: the external network, gateway chassis and NAT, over real OVS on three hosts
//! with a provider network (`TestbedConfig::external`: every host's `br-ex`, mapped as
//! `physnet`, and an "outside" namespace at 172.16.0.254 with 198.51.100.1 behind it).
//!
//! Topology: router lr1 with ls1 (10.61.0.0/24) and ext (172.16.0.0/24, a localnet port
//! on physnet); the gateway port lr1-ext has gateway chassis host1 (priority 20) and host2
//! (10). Pods a1 on host1, a2 on host2, a3 on host3.
//!
//! - `snat_dnat_floating_ip_and_routes`: SNAT (a pod on a non-gateway host pings the outside;
//!   a TCP transfer to the outside works and the outside sees the SNAT address); a static
//!   route to the network behind the outside; DNAT (the outside reaches a3 by a dnat
//!   address); a distributed floating IP of a3 handled on host3 (flow counters there; the
//!   outside sees a3's connections from the floating IP); `show`, `lr-nat-list` and
//!   `lrp-get-gateway-chassis` print them.
//! - `gateway_restart_and_failover`: the gateway host's agent restarts while a pod pings
//!   through SNAT and holds a TCP connection through it: no ping lost, the connection
//!   survives; then the gateway host's agent and OVS are killed: SNAT traffic resumes through
//!   the next-priority chassis (the gap is measured and printed) while the floating IP
//!   (host3) keeps working.

mod common;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_testbed::pod::Pod;
use weft_testbed::testbed::{Testbed, TestbedConfig, BEYOND_IP};

const OUTSIDE: &str = "172.16.0.254";
const SNAT_IP: &str = "172.16.0.10";
const DNAT_IP: &str = "172.16.0.20";
const FIP: &str = "172.16.0.30";
const FIP_MAC: &str = "0a:00:00:00:f1:03";

fn attach(tb: &mut Testbed, sw: &str, lrp: &str, mac: &str, net: &str) {
    let lsp = format!("{sw}-lr1");
    ctl(tb, &["lrp-add", "lr1", lrp, mac, net]);
    attach_router_port(tb, sw, &lsp, &lrp);
}

/// lr1, ls1 and the external switch with its localnet port and gateway chassis; pods a1..a3.
fn topology(tb: &mut Testbed) -> (Pod, Pod, Pod) {
    ctl(tb, &["lr-add", "lr1"]);
    switch(tb, "ls1", "10.61.0.0/24");
    switch(tb, "ext", "172.16.0.0/24");
    attach(tb, "ls1", "lr1-ls1", "0a:00:00:3d:00:01", "10.61.0.1/24");
    attach(tb, "ext", "lr1-ext", "0a:00:00:10:00:01", "172.16.0.1/24");
    localnet_port(tb, "ext", "ln-ext", "physnet");
    ctl(tb, &["lrp-set-gateway-chassis", "lr1-ext", "host1", "20"]);
    ctl(tb, &["lrp-set-gateway-chassis", "lr1-ext", "host2", "10"]);
    for p in ["a1", "a2", "a3"] {
        dyn_port(tb, "ls1", p);
    }
    let a1 = pod(tb, 1, "a1");
    let a2 = pod(tb, 2, "a2");
    let a3 = pod(tb, 3, "a3");
    ctl(tb, &["lr-nat-add", "lr1", "snat", SNAT_IP, "10.61.0.0/24"]);
    ctl(
        tb,
        &[
            "lr-nat-add",
            "lr1",
            "dnat_and_snat",
            FIP,
            &a3.ip.to_string(),
            "a3",
            FIP_MAC,
        ],
    );
    sync(tb);
    (a1, a2, a3)
}

fn outside_spawn(tb: &Testbed, cmd: &[&str]) -> Child {
    let ns = tb.outside_netns().expect("external testbed");
    Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn in the outside namespace")
}

fn outside_pings(tb: &Testbed, ip: &str) -> bool {
    tb.outside_exec(&["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", ip])
        .map(|o| o.contains(" 0% packet loss") || !o.contains(" 100% packet loss"))
        .unwrap_or(false)
}

fn listening(tb: &Testbed, port_hex: &str) -> bool {
    tb.outside_exec(&["cat", "/proc/net/tcp"])
        .map(|t| t.contains(&format!(":{port_hex} ")))
        .unwrap_or(false)
}

/// A TCP transfer from `from` to the outside; returns the peer the outside saw.
fn tcp_to_outside(tb: &Testbed, from: &Pod, port: u16) -> String {
    let tcpcheck = env!("CARGO_BIN_EXE_weft-tcpcheck");
    let addr = format!("{OUTSIDE}:{port}");
    let bytes = (2 * 1024 * 1024).to_string();
    let srv = outside_spawn(tb, &[tcpcheck, "server", &addr, &bytes]);
    let hex = format!("{port:04X}");
    wait_for(10, "the outside tcpcheck server to listen", || {
        listening(tb, &hex)
    });
    let out = from
        .exec_output(&[tcpcheck, "client", &addr, &bytes])
        .expect("client runs");
    let srv_out = srv.wait_with_output().expect("server exits");
    assert!(
        out.status.success(),
        "{} → outside TCP failed: {} / server: {}",
        from.name,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&srv_out.stderr)
    );
    let s = String::from_utf8_lossy(&srv_out.stdout).to_string();
    let line = s
        .lines()
        .find(|l| l.starts_with(&format!("ok {bytes} from ")))
        .unwrap_or_else(|| panic!("server did not get the transfer: {s}"))
        .to_string();
    line.rsplit(' ').next().unwrap_or("").to_string()
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
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("metrics");
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

#[test]
fn snat_dnat_floating_ip_and_routes() {
    let name = "snat_dnat_floating_ip_and_routes";
    // A short resync: the gateway, NAT and localnet flows read back from OVS must equal
    // what the agent compiled (else every resync would "repair" them).
    let cfg = TestbedConfig::new()
        .hosts(3)
        .controllers(1)
        .external(true)
        .agent_args(["--resync-interval", "2"]);
    if !ready(name, &cfg) {
        return;
    }
    let mut tb = start(cfg);
    let (a1, a2, a3) = topology(&mut tb);

    // SNAT from the gateway host and from one that is not (redirected to host1).
    for p in [&a1, &a2] {
        let r = p.ping(OUTSIDE, 5).expect("ping runs");
        assert!(r.any(), "{} cannot reach the outside: {r:?}", p.name);
    }
    let peer = tcp_to_outside(&tb, &a2, 5301);
    assert!(
        peer.starts_with(&format!("{SNAT_IP}:")),
        "the outside saw a2's connection from {peer}, not the SNAT address {SNAT_IP}"
    );
    println!("SNAT: a2 (host2) → outside seen from {peer}");

    // A network behind the outside: unreachable until a static route says where it is.
    assert!(
        !a2.ping(BEYOND_IP, 2).expect("ping runs").any(),
        "reached {BEYOND_IP} without a route"
    );
    ctl(
        &mut tb,
        &[
            "--wait=hv",
            "lr-route-add",
            "lr1",
            "198.51.100.0/24",
            OUTSIDE,
        ],
    );
    let r = a2.ping(BEYOND_IP, 5).expect("ping runs");
    assert!(r.any(), "a2 → {BEYOND_IP} via the static route: {r:?}");

    // DNAT: the outside reaches a1 by DNAT_IP (answered and translated on host1).
    ctl(
        &mut tb,
        &[
            "--wait=hv",
            "lr-nat-add",
            "lr1",
            "dnat",
            DNAT_IP,
            &a1.ip.to_string(),
        ],
    );
    let before = a1.icmp_in_echos().expect("snmp");
    assert!(
        outside_pings(&tb, DNAT_IP),
        "the outside cannot ping {DNAT_IP}"
    );
    assert!(
        a1.icmp_in_echos().expect("snmp") > before,
        "{DNAT_IP} did not reach a1"
    );

    // The distributed floating IP of a3: handled on host3 (its l3-entry and SNAT flows
    // count the packets), not on the gateway.
    let entry = format!("dl_dst={FIP_MAC}");
    let src = format!("nw_src={}", a3.ip);
    let (e0, s0) = (
        packets(&tb, 3, &["table=40", &entry]),
        packets(&tb, 3, &["table=47", &src]),
    );
    let before = a3.icmp_in_echos().expect("snmp");
    assert!(
        outside_pings(&tb, FIP),
        "the outside cannot ping the FIP {FIP}"
    );
    assert!(
        a3.icmp_in_echos().expect("snmp") > before,
        "{FIP} did not reach a3"
    );
    // Userspace datapath flow stats lag by up to a revalidator round.
    std::thread::sleep(Duration::from_millis(1500));
    let (e1, s1) = (
        packets(&tb, 3, &["table=40", &entry]),
        packets(&tb, 3, &["table=47", &src]),
    );
    if s1 == s0 {
        let flows = tb.host(3).expect("host3").dump_flows().unwrap_or_default();
        let rel: Vec<&str> = flows
            .lines()
            .filter(|l| l.contains("table=46") || l.contains("table=47") || l.contains("table=80"))
            .collect();
        eprintln!("host3 tables 46/47/80:\n{}", rel.join("\n"));
    }
    println!("FIP on host3: l3-entry packets {e0} → {e1}, distributed SNAT packets {s0} → {s1}");
    assert!(
        e1 > e0,
        "host3's FIP entry flow counted nothing ({e0} → {e1})"
    );
    assert!(
        s1 > s0,
        "host3's FIP SNAT flow counted nothing ({s0} → {s1})"
    );
    assert_eq!(
        packets(&tb, 1, &["table=40", &entry]),
        0,
        "the gateway took FIP traffic in"
    );
    let peer = tcp_to_outside(&tb, &a3, 5302);
    assert!(
        peer.starts_with(&format!("{FIP}:")),
        "the outside saw a3's connection from {peer}, not its FIP {FIP}"
    );

    // What the CLI prints.
    let list = ctl(&mut tb, &["lr-nat-list", "lr1"]);
    assert!(list.starts_with("TYPE"), "{list}");
    for n in [SNAT_IP, DNAT_IP, FIP, FIP_MAC, "10.61.0.0/24"] {
        assert!(list.contains(n), "lr-nat-list lacks {n}: {list}");
    }
    assert_eq!(
        ctl(&mut tb, &["lrp-get-gateway-chassis", "lr1-ext"]),
        "lr1-ext-host1    20\nlr1-ext-host2    10\n"
    );
    let shown = ctl(&mut tb, &["show"]);
    assert!(shown.contains("gateway chassis: [host1 host2]"), "{shown}");
    assert!(
        shown.contains(&format!("external ip: \"{FIP}\"")),
        "{shown}"
    );

    // Several resyncs later no agent repaired anything.
    std::thread::sleep(Duration::from_secs(5));
    for h in 1..=3 {
        let addr = tb.host(h).expect("host").metrics_addr;
        assert_eq!(drift_repairs(addr), 0.0, "host{h} repaired drift");
    }
    tb.cleanup();
}

/// Timestamps (seconds) of the replies in `ping -D` output.
fn reply_times(out: &str) -> Vec<f64> {
    out.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            l.strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .and_then(|t| t.parse::<f64>().ok())
        })
        .collect()
}

#[test]
fn gateway_restart_and_failover() {
    let name = "gateway_restart_and_failover";
    let cfg = TestbedConfig::new().hosts(3).controllers(1).external(true);
    if !ready(name, &cfg) {
        return;
    }
    let mut tb = start(cfg);
    let (_a1, a2, a3) = topology(&mut tb);
    let r = a2.ping(OUTSIDE, 5).expect("ping runs");
    assert!(r.any(), "a2 cannot reach the outside: {r:?}");
    // A centralized DNAT to a2: inbound through the active gateway.
    ctl(
        &mut tb,
        &[
            "--wait=hv",
            "lr-nat-add",
            "lr1",
            "dnat",
            DNAT_IP,
            &a2.ip.to_string(),
        ],
    );
    assert!(
        outside_pings(&tb, DNAT_IP),
        "the outside cannot ping {DNAT_IP}"
    );

    // Agent restart on the gateway (host1) under SNAT traffic: a ping every 100 ms and an
    // established TCP connection through SNAT.
    let tcpcheck = env!("CARGO_BIN_EXE_weft-tcpcheck");
    let addr = format!("{OUTSIDE}:5303");
    let srv = outside_spawn(&tb, &[tcpcheck, "hold-server", &addr, "60"]);
    wait_for(10, "the hold server to listen", || listening(&tb, "14B7"));
    let client = a2
        .spawn(&[tcpcheck, "hold-client", &addr, "12"])
        .expect("hold client");
    let ping = a2.ping_background(OUTSIDE, 100, 100).expect("ping");
    std::thread::sleep(Duration::from_secs(2));
    tb.restart_agent(1).expect("restart host1's agent");
    let r = ping.wait().expect("ping summary");
    println!("SNAT pings across the gateway agent's restart: {r:?}");
    assert_eq!(
        r.lost(),
        0,
        "pings lost across the gateway agent restart: {r:?}"
    );
    let out = client.wait_with_output().expect("client exits");
    assert!(
        out.status.success(),
        "the TCP connection through SNAT broke across the restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let srv_out = srv.wait_with_output().expect("server exits");
    let srv_text = String::from_utf8_lossy(&srv_out.stdout);
    assert!(
        srv_text.contains(&format!("from {SNAT_IP}:")),
        "hold server: {srv_text}"
    );

    // Failover: kill host1's agent and OVS while a2 pings the outside through SNAT every
    // 200 ms (timestamped replies give the gap).
    let ping = a2
        .spawn(&[
            "ping", "-D", "-n", "-i", "0.2", "-W", "1", "-w", "60", OUTSIDE,
        ])
        .expect("ping");
    std::thread::sleep(Duration::from_secs(3));
    let killed = Instant::now();
    let t_kill = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    tb.kill_agent(1).expect("kill host1's agent");
    tb.stop_vswitchd(1).expect("stop host1's ovs-vswitchd");
    tb.stop_ovsdb(1).expect("stop host1's ovsdb-server");
    // SNAT traffic resumes through host2.
    let mut resumed = false;
    while killed.elapsed() < Duration::from_secs(45) {
        if a3.ping(OUTSIDE, 1).map(|r| r.any()).unwrap_or(false)
            && a2.ping(OUTSIDE, 1).map(|r| r.any()).unwrap_or(false)
        {
            resumed = true;
            break;
        }
    }
    assert!(
        resumed,
        "SNAT traffic did not resume through host2 within 45 s"
    );
    std::thread::sleep(Duration::from_secs(2));
    let _ = Command::new("kill")
        .args(["-INT", &ping.id().to_string()])
        .status();
    let out = ping.wait_with_output().expect("ping exits");
    let times = reply_times(&String::from_utf8_lossy(&out.stdout));
    let before = times
        .iter()
        .copied()
        .filter(|t| *t < t_kill)
        .fold(f64::MIN, f64::max);
    let after = times.iter().copied().find(|t| *t > t_kill);
    let after = after.expect("a reply after the gateway died");
    let gap = after - before.max(t_kill - 0.2);
    println!(
        "GATEWAY FAILOVER: SNAT replies stopped at {:.2}, resumed at {:.2}: gap {gap:.2} s \
         (gateway agent+OVS killed; lease TTL 10 s)",
        before - t_kill,
        after - t_kill
    );
    // The next priority is active now and announced itself (gratuitous ARPs for the port
    // and the NAT addresses); the outside reaches the DNAT address through it, the FIP (on
    // host3) directly, and a2's TCP leaves from the SNAT address through host2.
    let log = tb
        .host(2)
        .expect("host2")
        .agent_log()
        .expect("agent log")
        .to_path_buf();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("gateway port active here; gratuitous ARPs sent"),
        "host2 sent no GARPs on taking over"
    );
    assert!(outside_pings(&tb, DNAT_IP), "DNAT down after the failover");
    assert!(outside_pings(&tb, FIP), "FIP down after the failover");
    let peer = tcp_to_outside(&tb, &a2, 5304);
    assert!(
        peer.starts_with(&format!("{SNAT_IP}:")),
        "after failover: {peer}"
    );
    tb.cleanup();
}
