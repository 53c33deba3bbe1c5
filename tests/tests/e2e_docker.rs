//! Docker on Weft, end to end: a real dockerd (Debian's docker.io) on each of two simulated
//! hosts, each using its host's weft-agent as network driver and IPAM driver (`-d weft
//! --ipam-driver weft`) over the plugin socket. Shows containers on two hosts pinging and
//! talking TCP on one Weft switch, unique addresses across hosts, `--ip`, `network connect`
//! / `disconnect` on a running container, Docker's embedded DNS, a podman (CNI) container and
//! a docker container of one agent on one switch, dockerd and agent restarts, and bad input
//! refused with a clear message and nothing left behind.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{ctl, ready, start, switch, wait_for};
use serde_json::{json, Value};
use weft_testbed::docker::{self, Dockerd};
use weft_testbed::testbed::{Testbed, TestbedConfig};

const SUBNET: &str = "10.66.0.0/24";

fn docker_ready(test: &str, cfg: &TestbedConfig) -> bool {
    ready(test, cfg) && weft_testbed::skip::require(test, &docker::missing())
}

fn must(d: &Dockerd, args: &[&str]) -> String {
    match d.docker(args) {
        Ok(o) => o,
        Err(e) => panic!("{e:#}"),
    }
}

/// `docker ARGS` that must fail; its stderr.
fn refused(d: &Dockerd, args: &[&str]) -> String {
    let o = d.docker_output(args).expect("docker runs");
    assert!(
        !o.status.success(),
        "docker {} succeeded: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn create_blue(d: &Dockerd) {
    must(
        d,
        &[
            "network",
            "create",
            "-d",
            "weft",
            "--ipam-driver",
            "weft",
            "--subnet",
            SUBNET,
            "-o",
            "weft.switch=blue",
            "blue",
        ],
    );
}

fn ip_on(d: &Dockerd, container: &str, network: &str) -> String {
    let f = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    must(d, &["inspect", "-f", &f, container])
}

fn pings(d: &Dockerd, container: &str, ip: &str) -> bool {
    d.docker(&["exec", container, "ping", "-c", "1", "-W", "2", ip])
        .is_ok()
}

fn assert_ping(d: &Dockerd, container: &str, ip: &str) {
    let ok = (0..3).any(|_| pings(d, container, ip));
    if !ok {
        let addr = d
            .docker(&["exec", container, "ip", "addr"])
            .unwrap_or_else(|e| e.to_string());
        let route = d
            .docker(&["exec", container, "ip", "route"])
            .unwrap_or_else(|e| e.to_string());
        let neigh = d
            .docker(&["exec", container, "ip", "neigh"])
            .unwrap_or_else(|e| e.to_string());
        panic!(
            "{container} on host{} cannot ping {ip}\naddr: {addr}\nroute: {route}\nneigh: {neigh}",
            d.host
        );
    }
}

/// (sent, received) of `ping -c N` output.
fn ping_counts(out: &str) -> (u32, u32) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_default();
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
    )
}

fn ports_of(tb: &mut Testbed, sw: &str) -> Vec<String> {
    ctl(tb, &["lsp-list", sw])
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(1)
                .map(|s| s.trim_matches(['(', ')']).to_string())
        })
        .collect()
}

fn agent_log(tb: &Testbed, n: usize) -> String {
    tb.host(n)
        .ok()
        .and_then(|h| h.agent_log())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}

/// `docker ARGS` from one whitespace-separated string (no quoting needed by the callers).
fn dk(d: &Dockerd, args: &str) -> String {
    must(d, &args.split_whitespace().collect::<Vec<_>>())
}

/// Two hosts, one Weft switch `blue`, a Docker network on each host attached to it.
#[test]
fn docker_containers_on_two_hosts() {
    let cfg = TestbedConfig::new().hosts(2).docker(true);
    if !docker_ready("docker_containers_on_two_hosts", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "blue", SUBNET);
    let t = Instant::now();
    let mut d1 = tb.start_dockerd(1).expect("dockerd host1");
    let d2 = tb.start_dockerd(2).expect("dockerd host2");
    println!("two dockerds up with busybox in {:?}", t.elapsed());
    create_blue(&d1);
    create_blue(&d2);
    let f = "{{.Driver}} {{.IPAM.Driver}} {{(index .IPAM.Config 0).Subnet}}";
    let inspect = must(&d1, &["network", "inspect", "blue", "-f", f]);
    assert_eq!(
        inspect, "weft weft 10.66.0.0/24",
        "docker network inspect blue"
    );

    let t = Instant::now();
    dk(
        &d1,
        "run -d --restart always --name a1 --network blue busybox sleep 3600",
    );
    println!(
        "docker run a1 (Join waits for flows) took {:?}",
        t.elapsed()
    );
    dk(&d1, "run -d --name a2 --network blue busybox sleep 3600");
    dk(&d2, "run -d --name b1 --network blue busybox sleep 3600");
    dk(
        &d2,
        "run -d --name b2 --network blue --ip 10.66.0.200 busybox sleep 3600",
    );
    let a1 = ip_on(&d1, "a1", "blue");
    let a2 = ip_on(&d1, "a2", "blue");
    let b1 = ip_on(&d2, "b1", "blue");
    let b2 = ip_on(&d2, "b2", "blue");
    println!("addresses: a1 {a1} a2 {a2} (host1), b1 {b1} b2 {b2} (host2)");
    let all: BTreeSet<&str> = [a1.as_str(), a2.as_str(), b1.as_str(), b2.as_str()].into();
    assert_eq!(
        all.len(),
        4,
        "addresses must be unique across hosts: {all:?}"
    );
    assert_eq!(b2, "10.66.0.200", "--ip");
    assert!(
        !all.contains("10.66.0.1"),
        "the gateway address went to a container"
    );
    // The gateway Join returned (no router on blue: the subnet's first address).
    let f = "{{(index .NetworkSettings.Networks \"blue\").Gateway}}";
    assert_eq!(
        must(&d1, &["inspect", "-f", f, "a1"]),
        "10.66.0.1",
        "a1's gateway"
    );
    let routes = dk(&d1, "exec a1 ip route");
    assert!(
        routes.contains("default via 10.66.0.1"),
        "a1 routes: {routes}"
    );

    // Warm the underlay first (OVS's userspace tunnels drop the packet that triggers the
    // ARP for the remote tunnel endpoint), then: the first ping from a new container the
    // moment `docker run` returned is never lost, since Join waited for the flows.
    assert_ping(&d1, "a2", &b2);
    assert_ping(&d2, "b2", &a2);
    let mut lost = Vec::new();
    let mut run_ms = Vec::new();
    for i in 0..5 {
        let name = format!("f{i}");
        let t = Instant::now();
        dk(
            &d1,
            &format!("run -d --name {name} --network blue busybox sleep 3600"),
        );
        run_ms.push(t.elapsed().as_millis());
        if !pings(&d1, &name, &b1) {
            lost.push(name.clone());
        }
        dk(&d1, &format!("rm -f {name}"));
    }
    println!("5 docker runs: {run_ms:?} ms; first pings to host2 lost: {lost:?}");
    assert!(
        lost.is_empty(),
        "first ping after docker run lost from {lost:?}"
    );
    assert_ping(&d1, "a1", &b1);
    assert_ping(&d1, "a1", &b2);
    assert_ping(&d2, "b1", &a2);
    assert_ping(&d1, "a1", &a2);

    // TCP across hosts (busybox nc).
    must(
        &d2,
        &[
            "exec",
            "-d",
            "b1",
            "sh",
            "-c",
            "echo weft-tcp-ok | nc -l -p 7000",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = must(
        &d1,
        &[
            "exec",
            "a1",
            "sh",
            "-c",
            &format!("nc -w 5 {b1} 7000 </dev/null"),
        ],
    );
    assert_eq!(got, "weft-tcp-ok", "TCP a1 -> b1:7000");

    // Docker's embedded DNS resolves a container of the same host by name.
    let ns = dk(&d1, "exec a1 nslookup a2");
    assert!(ns.contains(&a2), "nslookup a2 from a1: {ns}");
    assert_ping(&d1, "a1", "a2");

    // `network connect` / `disconnect` on a running container: lone starts on green and
    // joins blue. `--gateway` shows in `docker network inspect`.
    switch(&mut tb, "green", "10.67.0.0/24");
    dk(&d1, "network create -d weft --ipam-driver weft --subnet 10.67.0.0/24 --gateway 10.67.0.1 -o weft.switch=green green");
    let f = "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}";
    let inspect = must(&d1, &["network", "inspect", "green", "-f", f]);
    assert_eq!(
        inspect, "10.67.0.0/24 10.67.0.1",
        "docker network inspect green"
    );
    dk(&d1, "run -d --name lone --network green busybox sleep 3600");
    assert!(!pings(&d1, "lone", &b1), "lone reaches blue before connect");
    let before = ports_of(&mut tb, "blue").len();
    dk(&d1, "network connect blue lone");
    let lone_blue = ip_on(&d1, "lone", "blue");
    assert_ping(&d1, "lone", &b1);
    assert_eq!(
        ports_of(&mut tb, "blue").len(),
        before + 1,
        "connect adds one port to blue"
    );
    dk(&d1, "network disconnect blue lone");
    assert!(
        !pings(&d1, "lone", &b1),
        "lone still reaches blue after disconnect"
    );
    assert_eq!(
        ports_of(&mut tb, "blue").len(),
        before,
        "disconnect releases lone's {lone_blue}"
    );
    dk(&d1, "rm -f lone");
    dk(&d1, "network rm green");
    assert!(
        ctl(&mut tb, &["ls-list"]).contains("green"),
        "network rm must not delete a switch it did not create"
    );

    // Restarting the agents does not disturb running containers: 0 lost pings.
    let ping_from = d1.socket();
    let target = b1.clone();
    let pinger = std::thread::spawn(move || {
        docker::cli(
            &ping_from,
            &["exec", "a1", "ping", "-c", "150", "-i", "0.1", &target],
        )
        .expect("ping runs")
    });
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    tb.restart_agent(1).expect("restart agent 1");
    tb.restart_agent(2).expect("restart agent 2");
    println!(
        "both agents restarted in {:?} under a 10 pps ping",
        t.elapsed()
    );
    let out = pinger.join().expect("pinger");
    let (sent, got) = ping_counts(&String::from_utf8_lossy(&out.stdout));
    println!("ping a1 -> b1 during agent restarts: {got}/{sent} received");
    assert!(
        sent >= 100,
        "ping did not run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sent,
        got,
        "agent restarts lost {} of {sent} pings",
        sent - got
    );
    // The restarted agent still serves Docker (its driver state survived).
    dk(&d1, "run -d --name a3 --network blue busybox sleep 3600");
    assert_ping(&d1, "a3", &b1);
    dk(&d1, "rm -f a3 a2");

    // Restarting dockerd (live-restore off) brings a1 (--restart always) back on its address.
    let t = Instant::now();
    d1.restart().expect("dockerd restart");
    wait_for(60, "a1 running again after the dockerd restart", || {
        d1.docker(&["inspect", "-f", "{{.State.Running}}", "a1"])
            .is_ok_and(|s| s == "true")
    });
    println!("dockerd restart until a1 runs again: {:?}", t.elapsed());
    let a1_after = ip_on(&d1, "a1", "blue");
    assert_eq!(a1_after, a1, "a1 came back on another address");
    assert_ping(&d1, "a1", &b1);
    assert_ping(&d2, "b1", &a1);

    // Everything removed: no container port is left on blue.
    d1.shutdown();
    let mut d2 = d2;
    d2.shutdown();
    drop((d1, d2));
    let left = ports_of(&mut tb, "blue");
    assert!(
        left.is_empty(),
        "ports left on blue after every container was removed: {left:?}"
    );
    let log = agent_log(&tb, 1);
    assert!(!log.contains("panicked"), "agent 1 panicked:\n{log}");
}
