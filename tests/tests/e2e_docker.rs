//! Docker on Weft, end to end: a real dockerd (Debian's docker.io) on each of two simulated
//! hosts, each using its host's weft-agent as network driver and IPAM driver (`-d weft
//! --ipam-driver weft`) over the plugin socket. Shows containers on two hosts pinging and
//! talking TCP on one Weft switch, unique addresses across hosts, `--ip`, `network connect`
//! / `disconnect` on a running container, Docker's embedded DNS, a podman (CNI) container and
//! a docker container of one agent on one switch, dockerd and agent restarts, a published
//! port (`-p 8080:80`) answering on the host's own address from another host and from the
//! host itself, and bad input refused with a clear message and nothing left behind.

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
    ctl(tb, &["--bare", "--columns=name", "lsp-list", sw])
        .split_whitespace()
        .map(str::to_string)
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
    // joins blue. green is attached to router lr0 (router port 10.67.0.254/24), so its
    // gateway is the router port's address, for IPAM (`--gateway`, which `docker network
    // inspect` shows) and for Join (the default route).
    switch(&mut tb, "green", "10.67.0.0/24");
    ctl(&mut tb, &["lr-add", "lr0"]);
    ctl(
        &mut tb,
        &[
            "lrp-add",
            "lr0",
            "lrp-green",
            "0a:00:00:00:67:fe",
            "10.67.0.254/24",
        ],
    );
    ctl(&mut tb, &["lsp-add", "green", "green-lr0"]);
    ctl(&mut tb, &["lsp-set-type", "green-lr0", "router"]);
    ctl(
        &mut tb,
        &["lsp-set-options", "green-lr0", "router-port=lrp-green"],
    );
    // The router port's address is claimed on the switch, so IPAM never hands it out.
    ctl(
        &mut tb,
        &[
            "lsp-set-addresses",
            "green-lr0",
            "0a:00:00:00:67:fe 10.67.0.254",
        ],
    );
    let err = refused(
        &d1,
        &[
            "network",
            "create",
            "-d",
            "weft",
            "--ipam-driver",
            "weft",
            "--subnet",
            "10.67.0.0/24",
            "--gateway",
            "10.67.0.1",
            "-o",
            "weft.switch=green",
            "green",
        ],
    );
    assert!(
        err.contains("10.67.0.254"),
        "--gateway other than the router port's: {err}"
    );
    dk(&d1, "network create -d weft --ipam-driver weft --subnet 10.67.0.0/24 --gateway 10.67.0.254 -o weft.switch=green green");
    let f = "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}";
    let inspect = must(&d1, &["network", "inspect", "green", "-f", f]);
    assert_eq!(
        inspect, "10.67.0.0/24 10.67.0.254",
        "docker network inspect green"
    );
    dk(&d1, "run -d --name lone --network green busybox sleep 3600");
    let routes = dk(&d1, "exec lone ip route");
    assert!(
        routes.contains("default via 10.67.0.254"),
        "lone routes (router gateway): {routes}"
    );
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

/// One raw request on the plugin socket: (HTTP status, JSON body).
fn raw(sock: &Path, request: &[u8]) -> (u16, Value) {
    let mut s = UnixStream::connect(sock).expect("plugin socket");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(request);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |b| b.1);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn post(method: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /{method} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The ports of `sw` with their addresses (`weftctl show`'s port and address lines).
fn show_switch(tb: &mut Testbed, sw: &str) -> String {
    let all = ctl(tb, &["show"]);
    let mut on = false;
    let mut out = Vec::new();
    for l in all.lines() {
        if l.starts_with("switch ") {
            on = l.starts_with(&format!("switch {sw} "));
        } else if l.starts_with("chassis ") || l.starts_with("router ") {
            on = false;
        }
        if on {
            out.push(l.split(" (up on").next().unwrap_or(l).to_string());
        }
    }
    out.join("\n")
}

/// Bad input from Docker (driver and IPAM options, subnets, addresses, port bindings) and
/// from anything else on the plugin socket (malformed JSON, unknown methods, oversize bodies)
/// gets an error naming the field and value, and changes nothing in Weft. Then one agent,
/// both runtimes: a podman (CNI) container and a docker container on the same switch of
/// host1 ping each other and a container on host2.
#[test]
fn bad_input_and_both_runtimes() {
    let cfg = TestbedConfig::new().hosts(2).docker(true).cni(true);
    if !docker_ready("bad_input_and_both_runtimes", &cfg)
        || !weft_testbed::skip::require_tools(
            "bad_input_and_both_runtimes",
            &[(
                "podman",
                "apt-get install podman containernetworking-plugins runc",
            )],
        )
    {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "blue", SUBNET);
    ctl(&mut tb, &["lsp-add", "blue", "held"]);
    ctl(
        &mut tb,
        &["lsp-set-addresses", "held", "0a:58:0a:42:00:63 10.66.0.99"],
    );
    let d1 = tb.start_dockerd(1).expect("dockerd host1");
    let d2 = tb.start_dockerd(2).expect("dockerd host2");
    let sock = d1.plugins.join("weft.sock");
    let before = show_switch(&mut tb, "blue");
    let switches = ctl(&mut tb, &["ls-list"]);

    // The plugin socket survives garbage and answers each with an error.
    let (st, b) = raw(&sock, &post("NetworkDriver.CreateNetwork", "{not json"));
    assert_eq!(st, 400, "{b}");
    assert!(
        b["Err"]
            .as_str()
            .is_some_and(|m| m.contains("malformed JSON")),
        "{b}"
    );
    let (st, b) = raw(&sock, &post("NetworkDriver.Teleport", "{}"));
    assert_eq!(st, 404, "{b}");
    assert!(
        b["Err"].as_str().is_some_and(|m| m.contains("Teleport")),
        "{b}"
    );
    let (st, b) = raw(
        &sock,
        b"POST /Plugin.Activate HTTP/1.1\r\nContent-Length: 50000000\r\n\r\n",
    );
    assert_eq!(st, 413, "{b}");
    assert!(
        b["Err"].as_str().is_some_and(|m| m.contains("50000000")),
        "{b}"
    );
    let (st, b) = raw(&sock, b"\x00\x01garbage\r\n\r\n");
    assert_eq!(st, 400, "{b}");
    let (st, b) = raw(&sock, &post("Plugin.Activate", ""));
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["Implements"], json!(["NetworkDriver", "IpamDriver"]));
    let (st, b) = raw(
        &sock,
        &post(
            "IpamDriver.RequestAddress",
            r#"{"PoolID":"weft/10.66.0.0/24","Address":"10.66.1.7"}"#,
        ),
    );
    assert_eq!(st, 200);
    assert!(
        b["Error"]
            .as_str()
            .is_some_and(|m| m.contains("10.66.1.7") && m.contains("outside")),
        "{b}"
    );

    // docker network create with bad options: refused, nothing created.
    let cases: &[(&str, &[&str])] = &[
        ("-o weft.swtich=blue", &["weft.swtich"]),
        (
            "-o weft.switch=nosuch",
            &["nosuch", "no such Weft logical switch"],
        ),
        (
            "-o weft.switch=blue --subnet 10.99.0.0/24",
            &["10.99.0.0/24", "10.66.0.0/24", "blue"],
        ),
        ("--ipam-opt color=red -o weft.switch=blue", &["color"]),
        (
            "--ip-range 10.66.0.0/25 -o weft.switch=blue",
            &["--ip-range", "10.66.0.0/25"],
        ),
        // Without -o weft.switch the driver would create a switch, which the agent's
        // certificate (role agent) may not.
        (
            "",
            &[
                "PermissionDenied",
                "weftctl ls-add dk-10.66.0.0-24",
                "weft.switch",
            ],
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["network", "create", "-d", "weft", "--ipam-driver", "weft"];
        if !extra.contains("--subnet") {
            args.extend(["--subnet", SUBNET]);
        }
        args.extend(extra.split_whitespace());
        args.push("bad");
        let err = refused(&d1, &args);
        println!("docker network create {extra}: {}", err.trim());
        for w in *want {
            assert!(
                err.contains(w),
                "`{extra}`: error does not name {w:?}: {err}"
            );
        }
        assert!(refused(&d1, &["network", "inspect", "bad"]).contains("No such network"));
    }
    assert_eq!(
        ctl(&mut tb, &["ls-list"]),
        switches,
        "a refused network create changed switches"
    );
    assert_eq!(
        show_switch(&mut tb, "blue"),
        before,
        "a refused network create changed blue"
    );

    create_blue(&d1);
    create_blue(&d2);
    // An address taken by another Weft port, or outside the pool.
    let err = refused(
        &d1,
        &[
            "run",
            "-d",
            "--name",
            "x1",
            "--network",
            "blue",
            "--ip",
            "10.66.0.99",
            "busybox",
            "sleep",
            "60",
        ],
    );
    println!("docker run --ip 10.66.0.99 (held): {}", err.trim());
    assert!(err.contains("10.66.0.99") && err.contains("held"), "{err}");
    let err = refused(
        &d1,
        &[
            "run",
            "-d",
            "--name",
            "x2",
            "--network",
            "blue",
            "--ip",
            "10.77.0.5",
            "busybox",
            "sleep",
            "60",
        ],
    );
    println!("docker run --ip 10.77.0.5 (outside): {}", err.trim());
    assert!(err.contains("10.77.0.5"), "{err}");
    assert_eq!(
        show_switch(&mut tb, "blue"),
        before,
        "a refused docker run left a port behind"
    );

    // Without a management port (none here) a published port cannot be realised: refused,
    // naming what to configure, and nothing left behind.
    let err = refused(
        &d1,
        &[
            "run",
            "-d",
            "--name",
            "web1",
            "--network",
            "blue",
            "-p",
            "8080:80",
            "busybox",
            "sleep",
            "3600",
        ],
    );
    println!("-p without a management port: {}", err.trim());
    assert!(
        err.contains("8080") && err.contains("--mgmt-switch"),
        "{err}"
    );
    let _ = d1.docker(&["rm", "-f", "web1"]);
    assert_eq!(
        show_switch(&mut tb, "blue"),
        before,
        "a refused -p left a port behind"
    );

    // One agent, both runtimes, on blue: podman (weft-cni) and docker on host1, docker on
    // host2. blue is attached to a router first: both runtimes get the router port's
    // address as their default gateway.
    ctl(&mut tb, &["lr-add", "lr1"]);
    ctl(
        &mut tb,
        &[
            "lrp-add",
            "lr1",
            "lrp-blue",
            "0a:00:00:00:66:fe",
            "10.66.0.254/24",
        ],
    );
    ctl(&mut tb, &["lsp-add", "blue", "blue-lr1"]);
    ctl(&mut tb, &["lsp-set-type", "blue-lr1", "router"]);
    ctl(
        &mut tb,
        &["lsp-set-options", "blue-lr1", "router-port=lrp-blue"],
    );
    ctl(
        &mut tb,
        &[
            "lsp-set-addresses",
            "blue-lr1",
            "0a:00:00:00:66:fe 10.66.0.254",
        ],
    );
    let podman = Podman::new(
        &tb.dir().join("podman"),
        tb.host(1)
            .expect("h1")
            .cni_socket
            .as_deref()
            .expect("cni socket"),
    );
    podman.import_busybox();
    let out = podman.run(&[
        "run",
        "-d",
        "--name",
        "pod1",
        "--network",
        "weftnet",
        "localhost/busybox",
        "sleep",
        "3600",
    ]);
    let _ = out;
    let pod_ip = podman.run(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.weftnet.IPAddress}}",
        "pod1",
    ]);
    dk(&d1, "run -d --name dock1 --network blue busybox sleep 3600");
    dk(&d2, "run -d --name dock2 --network blue busybox sleep 3600");
    let dock1 = ip_on(&d1, "dock1", "blue");
    let dock2 = ip_on(&d2, "dock2", "blue");
    println!(
        "podman pod1 {pod_ip} and docker dock1 {dock1} on host1, docker dock2 {dock2} on host2"
    );
    let routes = podman.run(&["exec", "pod1", "ip", "route"]);
    assert!(
        routes.contains("default via 10.66.0.254"),
        "podman pod1 routes: {routes}"
    );
    let routes = dk(&d1, "exec dock1 ip route");
    assert!(
        routes.contains("default via 10.66.0.254"),
        "docker dock1 routes: {routes}"
    );
    assert_ping(&d1, "dock1", &pod_ip);
    assert_ping(&d2, "dock2", &pod_ip);
    assert_ping(&d2, "dock2", &dock1);
    let ok =
        (0..3).any(|_| podman.try_run(&["exec", "pod1", "ping", "-c", "1", "-W", "2", &dock1]));
    assert!(ok, "podman pod1 cannot ping docker dock1");
    let ok =
        (0..3).any(|_| podman.try_run(&["exec", "pod1", "ping", "-c", "1", "-W", "2", &dock2]));
    assert!(ok, "podman pod1 cannot ping docker dock2 on host2");
    podman.run(&["rm", "-f", "pod1"]);
}

/// podman 4.3 with its CNI backend and the shipped conflist pointed at `blue` and an agent.
struct Podman {
    state: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl Podman {
    fn new(state: &Path, agent_socket: &Path) -> Podman {
        for d in ["cni-bin", "cni.d", "tmp", "rootfs/bin"] {
            std::fs::create_dir_all(state.join(d)).expect("podman dirs");
        }
        let s = state.display().to_string();
        std::fs::write(
            state.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
                 netns = \"bridge\"\nlog_driver = \"k8s-file\"\n\n[network]\n\
                 network_backend = \"cni\"\ncni_plugin_dirs = [\"{s}/cni-bin\", \"/usr/lib/cni\"]\n\
                 network_config_dir = \"{s}/cni.d\"\n\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\nevents_logfile_path = \"{s}/events.log\"\n\
                 runtime = \"runc\"\ntmp_dir = \"{s}/tmp\"\n"
            ),
        )
        .expect("containers.conf");
        std::fs::write(
            state.join("storage.conf"),
            format!("[storage]\ndriver = \"overlay\"\ngraphroot = \"{s}/storage\"\nrunroot = \"{s}/runroot\"\n"),
        )
        .expect("storage.conf");
        let cni = weft_testbed::find_bin("weft-cni").expect("weft-cni built");
        std::fs::copy(cni, state.join("cni-bin/weft-cni")).expect("copy weft-cni");
        let mut conflist: Value =
            serde_json::from_str(include_str!("../../deploy/cni/10-weft.conflist"))
                .expect("conflist");
        conflist["name"] = json!("weftnet");
        conflist["plugins"][0]["switch"] = json!("blue");
        conflist["plugins"][0]["agentSocket"] = json!(agent_socket.display().to_string());
        std::fs::write(state.join("cni.d/weftnet.conflist"), conflist.to_string())
            .expect("conflist");
        Podman {
            state: state.to_path_buf(),
            env: vec![
                ("CONTAINERS_CONF".into(), format!("{s}/containers.conf")),
                (
                    "CONTAINERS_STORAGE_CONF".into(),
                    format!("{s}/storage.conf"),
                ),
            ],
        }
    }

    fn output(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("podman")
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("podman runs")
    }

    fn run(&self, args: &[&str]) -> String {
        let o = self.output(args);
        assert!(
            o.status.success(),
            "podman {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn try_run(&self, args: &[&str]) -> bool {
        self.output(args).status.success()
    }

    fn import_busybox(&self) {
        let tar = docker::busybox_tar(&self.state).expect("busybox tar");
        self.run(&[
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            &tar.display().to_string(),
            "localhost/busybox",
        ]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.output(&["rm", "-af", "-t", "0"]);
        let _ = self.output(&["system", "reset", "--force"]);
    }
}

/// docs/docker.md's walk-through with the real `weft-sandbox` binary: `up --hosts 2
/// --docker`, the same network on both hosts, a container on each pinging the other,
/// `status` listing the dockerds, and `down` stopping them and leaving nothing behind.
#[test]
fn sandbox_up_docker_as_documented() {
    let cfg = TestbedConfig::new().docker(true);
    if !docker_ready("sandbox_up_docker_as_documented", &cfg) {
        return;
    }
    let sandbox_bin = env!("CARGO_BIN_EXE_weft-sandbox");
    let tmp = tempfile::Builder::new()
        .prefix("wsdk-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let dir = tmp.path().join("sb");
    let sb = |args: &[&str]| {
        let o = std::process::Command::new(sandbox_bin)
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .output()
            .expect("weft-sandbox runs");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    type Sb<'a> = &'a dyn Fn(&[&str]) -> (bool, String, String);
    struct Down<'a>(Sb<'a>);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down"]);
        }
    }
    let _down = Down(&sb);
    let t = Instant::now();
    let (ok, out, err) = sb(&["up", "--hosts", "2", "--docker"]);
    assert!(ok, "up --docker: {out}\n{err}");
    println!("weft-sandbox up --hosts 2 --docker took {:?}", t.elapsed());
    assert!(err.contains("starting dockerd on host2"), "{err}");
    let exports: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let weftctl = weft_testbed::find_bin("weftctl").expect("weftctl");
    let o = std::process::Command::new(&weftctl)
        .envs(exports.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["ls-add", "blue", "--subnet", SUBNET])
        .output()
        .expect("weftctl");
    assert!(o.status.success(), "weftctl ls-add: {o:?}");
    for h in ["host1", "host2"] {
        let (ok, out, err) = sb(&[
            "docker",
            h,
            "--",
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
        ]);
        assert!(ok, "network create on {h}: {out}\n{err}");
    }
    let run = |h: &str, name: &str| {
        let (ok, out, err) = sb(&[
            "docker",
            h,
            "--",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "blue",
            "busybox",
            "sleep",
            "3600",
        ]);
        assert!(ok, "docker run {name} on {h}: {out}\n{err}");
    };
    run("host1", "a1");
    run("host2", "b1");
    let (_, b1, _) = sb(&[
        "docker",
        "host2",
        "--",
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.blue.IPAddress}}",
        "b1",
    ]);
    assert!(b1.starts_with("10.66.0."), "b1's address: {b1:?}");
    // The first packet between two fresh hosts may go to the tunnel endpoint's ARP.
    let ok = (0..3).any(|_| {
        sb(&[
            "docker", "host1", "--", "exec", "a1", "ping", "-c", "1", "-W", "2", &b1,
        ])
        .0
    });
    assert!(ok, "a1 on host1 cannot ping b1 {b1} on host2");
    let (_, status, _) = sb(&["status"]);
    assert_eq!(status.matches("dockerd ").count(), 2, "status: {status}");
    assert!(
        status.contains("(running; weft-sandbox docker host1"),
        "status: {status}"
    );
    let (ok, _, err) = sb(&["docker", "host3", "--", "ps"]);
    assert!(
        !ok && err.contains("host3"),
        "docker on a host without dockerd: {err}"
    );

    let pids: Vec<u32> = std::fs::read_to_string(dir.join("state.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["docker"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d["pid"].as_u64().map(|p| p as u32))
        .collect();
    assert_eq!(pids.len(), 2, "two dockerd pids in the state file");
    let (ok, out, err) = sb(&["down"]);
    assert!(ok, "down: {out}\n{err}");
    assert!(err.contains("stopping dockerd on host1"), "{err}");
    for p in pids {
        assert!(
            !weft_testbed::process::pid_alive(p),
            "dockerd {p} still runs after down"
        );
    }
    assert!(!dir.exists(), "down left {}", dir.display());
}

/// Without `-o weft.switch` a Docker network gets the switch named after its subnet,
/// created by the first Docker host (here without TLS, where agents may create switches)
/// and shared by every host that creates a network with that subnet. `docker network rm`
/// deletes it only once no port of any host is left on it.
#[test]
fn switch_from_subnet_shared_and_deleted_last() {
    let cfg = TestbedConfig::new().hosts(2).docker(true).insecure(true);
    if !docker_ready("switch_from_subnet_shared_and_deleted_last", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    let d1 = tb.start_dockerd(1).expect("dockerd host1");
    let d2 = tb.start_dockerd(2).expect("dockerd host2");
    for d in [&d1, &d2] {
        dk(
            d,
            "network create -d weft --ipam-driver weft --subnet 10.68.0.0/24 red",
        );
    }
    let sw = "dk-10.68.0.0-24";
    assert!(ctl(&mut tb, &["ls-list"]).contains(sw), "no switch {sw}");
    dk(&d1, "run -d --name r1 --network red busybox sleep 3600");
    dk(&d2, "run -d --name r2 --network red busybox sleep 3600");
    let r2 = ip_on(&d2, "r2", "red");
    assert_ping(&d1, "r1", &r2);
    // host1 leaves: host2's container still uses the switch, so it stays.
    dk(&d1, "rm -f r1");
    dk(&d1, "network rm red");
    assert!(
        ctl(&mut tb, &["ls-list"]).contains(sw),
        "{sw} deleted while host2 uses it"
    );
    assert_eq!(ports_of(&mut tb, sw).len(), 1, "host2's port");
    // host2 leaves last: the switch goes.
    dk(&d2, "rm -f r2");
    dk(&d2, "network rm red");
    assert!(
        !ctl(&mut tb, &["ls-list"]).contains(sw),
        "{sw} left after the last network rm"
    );
}

/// `curl` of `url` from network namespace `ns` (the machine's static busybox's wget
/// crashes resolving outside a container): the body, or None when it fails.
fn fetch(ns: &str, url: &str) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sS", "--max-time", "3", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `n` fetches of `url` from `ns`: how many returned `body`.
fn fetch_count(ns: &str, url: &str, body: &str, n: u32) -> u32 {
    (0..n)
        .filter(|_| fetch(ns, url).is_some_and(|b| b.contains(body)))
        .count() as u32
}

const WEB_BODY: &str = "weft-published-ok";

/// `docker run -p 8080:80` on host1, every agent with a management port on blue: the port
/// answers on host1's own address from host2 and from host1 itself, keeps answering across
/// an agent restart (the rules are re-derived, not flushed), a second `-p 8080` on the host
/// is refused, and `docker rm -f` takes the rules away (the port no longer answers).
#[test]
fn published_port_answers_on_the_host_address() {
    let name = "published_port_answers_on_the_host_address";
    let cfg = TestbedConfig::new()
        .hosts(2)
        .docker(true)
        .mgmt("blue", SUBNET, &[]);
    if !docker_ready(name, &cfg)
        || !weft_testbed::skip::require_tools(
            name,
            &[
                ("iptables", "apt-get install iptables"),
                ("iptables-restore", "apt-get install iptables"),
                ("curl", "apt-get install curl"),
            ],
        )
    {
        return;
    }
    let mut tb = start(cfg);
    let d1 = tb.start_dockerd(1).expect("dockerd host1");
    create_blue(&d1);
    let (ns1, ns2, addr1, ul1) = {
        let h1 = tb.host(1).expect("host1");
        let h2 = tb.host(2).expect("host2");
        (
            h1.netns.clone(),
            h2.netns.clone(),
            h1.mgmt_ip,
            h1.underlay_ip,
        )
    };
    wait_for(60, "host1's management port address on blue", || {
        tb.host(1)
            .and_then(|h| h.exec(&["ip", "-4", "addr", "show", "dev", "weft-mp0"]))
            .is_ok_and(|a| a.contains("inet 10.66.0."))
    });
    let script = format!(
        "mkdir -p /www && echo {WEB_BODY} > /www/index.html && exec httpd -f -p 80 -h /www"
    );
    let t = Instant::now();
    must(
        &d1,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "blue",
            "-p",
            "8080:80",
            "busybox",
            "sh",
            "-c",
            &script,
        ],
    );
    println!("docker run -p 8080:80 web took {:?}", t.elapsed());
    let web_ip = ip_on(&d1, "web", "blue");
    let url = format!("http://{addr1}:8080/");
    let t = Instant::now();
    let up = weft_testbed::process::wait_until(
        Duration::from_secs(30),
        Duration::from_millis(250),
        || fetch(&ns1, &url).is_some_and(|b| b.contains(WEB_BODY)),
    );
    if !up {
        let h1 = tb.host(1).expect("host1");
        let sh = |c: &[&str]| h1.exec(c).unwrap_or_else(|e| format!("{e:#}"));
        let direct = fetch(&ns1, &format!("http://{web_ip}:80/"));
        let log: String = agent_log(&tb, 1)
            .lines()
            .filter(|l| l.contains("port") && (l.contains("WARN") || l.contains("publish")))
            .collect::<Vec<_>>()
            .join("\n");
        panic!(
            "{url} does not answer from host1\ndirect {web_ip}:80 from host1: {direct:?}\n\
             nat: {}\nfilter: {}\nroute: {}\nweft-mp0: {}\nping: {}\nps: {}\nagent: {log}",
            sh(&["iptables", "-t", "nat", "-S"]),
            sh(&["iptables", "-S"]),
            sh(&["ip", "route", "get", &web_ip]),
            sh(&["ip", "-4", "addr", "show", "dev", "weft-mp0"]),
            sh(&["ping", "-c", "2", "-W", "1", &web_ip]),
            d1.docker(&["ps", "-a"]).unwrap_or_default(),
        );
    }
    println!("web ({web_ip}) answered on {url} after {:?}", t.elapsed());

    let n = 20;
    let from2 = fetch_count(&ns2, &url, WEB_BODY, n);
    let from1 = fetch_count(&ns1, &url, WEB_BODY, n);
    let ul_url = format!("http://{ul1}:8080/");
    let from1_ul = fetch_count(&ns1, &ul_url, WEB_BODY, n);
    let from2_ul = fetch_count(&ns2, &ul_url, WEB_BODY, n);
    println!(
        "{url} (management network) from host2: {from2}/{n}; from host1: {from1}/{n}; \
         {ul_url} (underlay) from host1: {from1_ul}/{n}; from host2: {from2_ul}/{n}"
    );
    assert_eq!(from2, n, "{url} from host2");
    assert_eq!(from1, n, "{url} from host1");
    assert_eq!(from1_ul, n, "{ul_url} from host1");
    assert_eq!(from2_ul, n, "{ul_url} from host2");

    let rules = |tb: &Testbed| {
        let h = tb.host(1).expect("host1");
        let nat = h
            .exec(&["iptables", "-t", "nat", "-S"])
            .expect("iptables -t nat -S");
        let filter = h
            .exec(&["iptables", "-t", "filter", "-S", "WEFT-PORTMAP"])
            .expect("iptables -S WEFT-PORTMAP");
        format!("{nat}\n{filter}")
    };
    let before = rules(&tb);
    println!("host1's NAT rules:\n{before}");
    assert!(
        before.contains("--dport 8080")
            && before.contains(&format!("--to-destination {web_ip}:80")),
        "no DNAT for web: {before}"
    );

    // The same host port again on host1: refused, nothing left behind.
    let ports = ports_of(&mut tb, "blue");
    let err = refused(
        &d1,
        &[
            "run",
            "-d",
            "--name",
            "web2",
            "--network",
            "blue",
            "-p",
            "8080:81",
            "busybox",
            "sleep",
            "3600",
        ],
    );
    println!("second -p 8080: {}", err.trim());
    assert!(
        err.contains("8080") && err.contains("already bound"),
        "{err}"
    );
    let _ = d1.docker(&["rm", "-f", "web2"]);
    assert_eq!(ports_of(&mut tb, "blue"), ports, "refused -p left a port");
    assert_eq!(rules(&tb), before, "a refused -p changed the rules");

    // An agent restart under a fetch loop from host2: every fetch answers, and the rules
    // are the same afterwards.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looper = std::thread::spawn({
        let (stop, ns2, url) = (stop.clone(), ns2.clone(), url.clone());
        move || {
            let (mut ok, mut all) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                all += 1;
                if fetch(&ns2, &url).is_some_and(|b| b.contains(WEB_BODY)) {
                    ok += 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (ok, all)
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    let resynced = |tb: &Testbed| {
        agent_log(tb, 1)
            .lines()
            .filter(|l| l.contains("published ports' rules in place") && l.contains("rules=4"))
            .count()
    };
    let resynced_before = resynced(&tb);
    tb.restart_agent(1).expect("restart agent 1");
    println!("agent 1 restarted in {:?}", t.elapsed());
    // Let the restarted agent re-derive its rules (it does so as it starts serving Docker).
    let log_has_sync = || resynced(&tb) > resynced_before;
    wait_for(
        30,
        "the restarted agent re-deriving its rules",
        log_has_sync,
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, all) = looper.join().expect("fetch loop");
    println!("fetches from host2 across the agent restart: {ok}/{all} answered");
    assert!(all >= 5, "the fetch loop hardly ran: {all}");
    assert_eq!(ok, all, "fetches failed across the agent restart");
    assert_eq!(rules(&tb), before, "the restart changed the rules");
    assert_eq!(
        fetch_count(&ns1, &url, WEB_BODY, 3),
        3,
        "from host1 after the restart"
    );

    // The container goes: so do its rules, and the port no longer answers.
    dk(&d1, "rm -f web");
    let after = rules(&tb);
    println!("host1's NAT rules after docker rm -f web:\n{after}");
    assert!(
        !after.contains("--dport 8080") && !after.contains(&web_ip),
        "rules left after docker rm: {after}"
    );
    let gone2 = fetch_count(&ns2, &url, WEB_BODY, 3);
    let gone1 = fetch_count(&ns1, &url, WEB_BODY, 3);
    println!("after docker rm -f web: {url} answered {gone2}/3 from host2, {gone1}/3 from host1");
    assert_eq!(
        (gone2, gone1),
        (0, 0),
        "the removed container's port still answers"
    );
    let log = agent_log(&tb, 1);
    assert!(!log.contains("panicked"), "agent 1 panicked:\n{log}");
}

/// The published-port walk-through of docs/docker.md with the real `weft-sandbox`: `up
/// --docker --mgmt-switch blue`, `docker run -p 8080:80` on host1, `curl` of host1's
/// underlay address from host2 and from host1 (`host-exec`), the DNAT rule, and the rule gone
/// after `docker rm -f`.
#[test]
fn sandbox_published_port_as_documented() {
    let name = "sandbox_published_port_as_documented";
    let cfg = TestbedConfig::new().docker(true);
    if !docker_ready(name, &cfg)
        || !weft_testbed::skip::require_tools(
            name,
            &[
                ("iptables", "apt-get install iptables"),
                ("curl", "apt-get install curl"),
            ],
        )
    {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("wsdp-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let sb = Sandbox {
        bin: env!("CARGO_BIN_EXE_weft-sandbox"),
        dir: tmp.path().join("sb"),
    };
    let t = Instant::now();
    sb.must(&[
        "up",
        "--hosts",
        "2",
        "--docker",
        "--mgmt-switch",
        "blue",
        "--mgmt-subnet",
        SUBNET,
    ]);
    println!(
        "weft-sandbox up --docker --mgmt-switch blue took {:?}",
        t.elapsed()
    );
    for h in ["host1", "host2"] {
        sb.must(&[
            "docker",
            h,
            "--",
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
        ]);
    }
    sb.must(&[
        "docker",
        "host1",
        "--",
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "blue",
        "-p",
        "8080:80",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let url = "http://172.31.0.11:8080/";
    let curl = |h: &str| sb.run(&["host-exec", h, "--", "curl", "-sS", "--max-time", "3", url]);
    wait_for(30, "web answering on host1's address", || {
        curl("host1").1 == "hello from web"
    });
    for h in ["host2", "host1"] {
        let (ok, out, err) = curl(h);
        println!("curl {url} on {h}: {out}");
        assert!(ok && out == "hello from web", "curl on {h}: {out}\n{err}");
    }
    let nat = sb.must(&[
        "host-exec",
        "host1",
        "--",
        "iptables",
        "-t",
        "nat",
        "-S",
        "WEFT-PORTMAP",
    ]);
    println!("{nat}");
    assert!(
        nat.contains("--dport 8080") && nat.contains("-j DNAT --to-destination 10.66.0."),
        "{nat}"
    );
    sb.must(&["docker", "host1", "--", "rm", "-f", "web"]);
    let nat = sb.must(&[
        "host-exec",
        "host1",
        "--",
        "iptables",
        "-t",
        "nat",
        "-S",
        "WEFT-PORTMAP",
    ]);
    assert!(!nat.contains("DNAT"), "rules left after docker rm: {nat}");
    let (ok, out, _) = curl("host2");
    assert!(!ok, "port 8080 answers after docker rm: {out}");
}

/// A `weft-sandbox --dir DIR` that is brought down on drop.
struct Sandbox {
    bin: &'static str,
    dir: std::path::PathBuf,
}

impl Sandbox {
    /// (success, trimmed stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let o = std::process::Command::new(self.bin)
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("weft-sandbox runs");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn must(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "weft-sandbox {}: {out}\n{err}", args.join(" "));
        out
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}
