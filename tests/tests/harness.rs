//! The testbed harness itself, without Weft binaries: hosts, fabric, management network,
//! pods on br-int (standalone OVS, NORMAL forwarding), teardown and stale clean-up.

use weft_testbed::net;
use weft_testbed::process::pid_alive;
use weft_testbed::testbed::TestbedConfig;
use weft_testbed::weftctl::PortAddress;

fn bare(hosts: usize) -> TestbedConfig {
    TestbedConfig::new()
        .hosts(hosts)
        .controllers(0)
        .agents(false)
}

fn addr(mac: &str, ip: [u8; 4]) -> PortAddress {
    PortAddress {
        mac: mac.into(),
        ip: ip.into(),
        prefix_len: 24,
        gateway: None,
    }
}

#[test]
fn two_hosts_underlay_ping_and_teardown() {
    let tb = bare(2).start().expect("testbed starts");
    let prefix = tb.prefix().to_string();
    let h1 = tb.host(1).expect("host1");
    let h2 = tb.host(2).expect("host2");
    assert_ne!(h1.underlay_ip, h2.underlay_ip);

    // Underlay: host1's br-phy IP to host2's, across the fabric bridge.
    let out = h1
        .exec(&[
            "ping",
            "-n",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            &h2.underlay_ip.to_string(),
        ])
        .expect("underlay ping succeeds");
    assert!(out.contains("3 received"), "{out}");
    // The underlay IP really sits on the OVS bridge br-phy, with ul0 as its port.
    let ports = h1
        .ovs()
        .vsctl(&["list-ports", "br-phy"])
        .expect("list-ports");
    assert_eq!(ports.trim(), "ul0");
    let addrs = h1
        .exec(&["ip", "-4", "-o", "addr", "show", "dev", "br-phy"])
        .expect("ip addr");
    assert!(addrs.contains(&h1.underlay_ip.to_string()), "{addrs}");

    // Management: every host reaches the root-namespace controller address.
    let mgmt = tb.mgmt_subnet().expect("mgmt subnet");
    let ctl_ip = net::addr_in(mgmt, 1).to_string();
    for h in tb.hosts() {
        let out = h
            .exec(&["ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", &ctl_ip])
            .expect("mgmt ping");
        assert!(out.contains("2 received"), "{}: {out}", h.name);
    }

    // Owned run: files under /tmp/weft-testbed/PFX, namespaces named after the prefix.
    let dir = tb.dir().to_path_buf();
    assert!(dir.join("owner.pid").exists());
    let (ovsdb_pid, vswitchd_pid) = h1.ovs().pids();
    let pids = [
        ovsdb_pid.expect("ovsdb pid"),
        vswitchd_pid.expect("vswitchd pid"),
    ];
    let etcd_pid = tb.etcd().and_then(|e| e.pid()).expect("etcd pid");

    drop(tb);
    let left: Vec<String> = net::netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(!net::link_exists(&format!("{prefix}-m")), "root link left");
    for pid in pids.into_iter().chain([etcd_pid]) {
        assert!(!pid_alive(pid), "pid {pid} still alive");
    }
    assert!(!dir.exists(), "run dir removed");
}

#[test]
fn pods_on_one_host_ping_and_tcp() {
    let mut tb = bare(1).start().expect("testbed starts");
    let a = tb
        .add_pod_with_address(1, "lp-a", "a", addr("02:00:00:00:0a:01", [10, 77, 0, 11]))
        .expect("pod a");
    let b = tb
        .add_pod_with_address(1, "lp-b", "b", addr("02:00:00:00:0a:02", [10, 77, 0, 12]))
        .expect("pod b");

    // Plumbing: iface-id, MAC, MTU, offload.
    let h = tb.host(1).expect("host1");
    let iface = h
        .ovs()
        .vsctl(&["get", "interface", &a.veth, "external_ids:iface-id"])
        .expect("iface-id");
    assert_eq!(iface.trim().trim_matches('"'), "lp-a");
    let link = a.exec(&["ip", "-o", "link", "show", "eth0"]).expect("link");
    assert!(link.contains("02:00:00:00:0a:01"), "{link}");
    assert!(link.contains(&format!("mtu {}", tb.pod_mtu())), "{link}");
    let offload = a.exec(&["ethtool", "-k", "eth0"]).expect("ethtool -k");
    assert!(offload.contains("tx-checksumming: off"), "{offload}");

    // Without an agent br-int is a standalone learning switch: same-host pods talk.
    let r = a.ping(b.ip, 3).expect("ping");
    assert!(r.all(), "{r:?}");

    // TCP across the OVS netdev bridge (needs tx checksum offload off).
    let tcpcheck = env!("CARGO_BIN_EXE_weft-tcpcheck");
    let listen = format!("{}:5201", b.ip);
    let mut server = b
        .spawn(&[tcpcheck, "server", &listen, "1000000"])
        .expect("server");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let client = a.exec(&[tcpcheck, "client", &listen, "1000000"]);
    let status = server.wait().expect("server exits");
    client.expect("tcp transfer succeeds");
    assert!(status.success());

    tb.del_pod("a").expect("del pod");
    assert!(!net::netns_exists(&a.netns));
    let ports = tb
        .host(1)
        .expect("host1")
        .ovs()
        .vsctl(&["list-ports", "br-int"])
        .expect("ports");
    assert!(!ports.contains(&a.veth), "{ports}");
    assert!(
        tb.del_pod("a").is_err(),
        "second delete reports the missing pod"
    );
}

#[test]
fn cleanup_stale_removes_a_crashed_run() {
    let tb = bare(1).start().expect("testbed starts");
    let prefix = tb.prefix().to_string();
    // Simulate a crash: forget everything without tearing down.
    let leaked = tb.leak();
    let pids = leaked.pids();
    assert!(!pids.is_empty());
    assert!(net::netns_exists(&format!("{prefix}-h1")));

    net::cleanup_stale(&prefix).expect("cleanup");
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} survived cleanup_stale");
    }
    assert!(!net::netns_exists(&format!("{prefix}-h1")));
    assert!(!net::netns_exists(&format!("{prefix}-fab")));
    assert!(!net::link_exists(&format!("{prefix}-m")));
    let _ = std::fs::remove_dir_all(&leaked.dir);
}

#[test]
fn config_errors_name_the_field() {
    let e = bare(0).start().expect_err("0 hosts rejected").to_string();
    assert!(e.contains("hosts"), "{e}");
    let e = TestbedConfig::new()
        .controllers(0)
        .agents(true)
        .start()
        .expect_err("rejected");
    assert!(e.to_string().contains("controllers"), "{e}");
    let e = bare(1)
        .prefix("Bad-Prefix")
        .start()
        .expect_err("rejected")
        .to_string();
    assert!(e.contains("Bad-Prefix"), "{e}");
}
