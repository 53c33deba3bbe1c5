//! Integration tests of the building blocks: a real etcd and a real ovsdb-server/ovs-vswitchd.

use std::io::{Read, Write};
use std::net::TcpStream;
use weft_testbed::etcd::Etcd;
use weft_testbed::ovs::{Ovs, OvsConfig};

/// POST a JSON body to etcd's v3 gRPC gateway, return the response body.
fn etcd_post(endpoint: &str, path: &str, body: &str) -> anyhow::Result<String> {
    let hostport = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(hostport)?;
    let req = format!(
        "POST {path} HTTP/1.0\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

// base64("weft-key") = d2VmdC1rZXk=, base64("v1") = djE=
const PUT: &str = r#"{"key":"d2VmdC1rZXk=","value":"djE="}"#;
const GET: &str = r#"{"key":"d2VmdC1rZXk="}"#;

#[test]
fn etcd_start_stop_restart_keeps_data() {
    let mut etcd = Etcd::start().expect("etcd starts");
    let ep = etcd.endpoint();
    assert!(ep.starts_with("http://127.0.0.1:"), "{ep}");
    let put = etcd_post(&ep, "/v3/kv/put", PUT).expect("put");
    assert!(put.contains("200 OK"), "{put}");

    etcd.stop();
    assert!(!etcd.is_running());
    assert!(
        etcd_post(&ep, "/v3/kv/range", GET).is_err(),
        "etcd must be unreachable while stopped"
    );

    etcd.restart().expect("restart");
    assert_eq!(etcd.endpoint(), ep, "same port after restart");
    let got = etcd_post(&ep, "/v3/kv/range", GET).expect("range");
    assert!(got.contains("djE="), "value survives restart: {got}");
}

#[test]
fn two_etcds_at_once_use_different_ports() {
    let a = Etcd::start().expect("etcd a");
    let b = Etcd::start().expect("etcd b");
    assert_ne!(a.endpoint(), b.endpoint());
    let pid = a.pid().expect("pid");
    drop(a);
    assert!(!weft_testbed::process::pid_alive(pid), "drop kills etcd");
}

#[test]
fn ovs_netdev_bridge_and_flows() {
    let mut ovs = Ovs::start(OvsConfig::default()).expect("ovs starts");
    ovs.vsctl(&[
        "add-br",
        "br-int",
        "--",
        "set",
        "bridge",
        "br-int",
        "datapath_type=netdev",
    ])
    .expect("add netdev bridge");
    assert!(ovs.mgmt_socket("br-int").exists(), "br-int.mgmt in rundir");
    assert!(ovs.mgmt_socket("br-int").starts_with(ovs.rundir()));

    ovs.ofctl(&[
        "-O",
        "OpenFlow15",
        "add-flow",
        "br-int",
        "table=10,priority=5,actions=drop",
    ])
    .expect("add-flow");
    let flows = ovs
        .ofctl(&["-O", "OpenFlow15", "dump-flows", "br-int"])
        .expect("dump-flows");
    assert!(flows.contains("table=10"), "{flows}");

    // vswitchd restart: ovsdb keeps the bridge, the mgmt socket comes back.
    ovs.stop_vswitchd();
    assert!(!ovs.vswitchd_running());
    assert!(ovs.ofctl(&["dump-flows", "br-int"]).is_err());
    ovs.start_vswitchd().expect("vswitchd restarts");
    let br = ovs.vsctl(&["list-br"]).expect("list-br");
    assert_eq!(br.trim(), "br-int");
    let flows = ovs
        .ofctl(&["dump-flows", "br-int"])
        .expect("dump-flows after restart");
    assert!(flows.contains("NORMAL"), "default flow back: {flows}");
}

#[test]
fn ovs_instances_in_parallel_do_not_collide() {
    let a = Ovs::start(OvsConfig::default()).expect("ovs a");
    let b = Ovs::start(OvsConfig::default()).expect("ovs b");
    for o in [&a, &b] {
        o.vsctl(&[
            "add-br",
            "br-int",
            "--",
            "set",
            "bridge",
            "br-int",
            "datapath_type=netdev",
        ])
        .expect("add-br");
    }
    assert_ne!(a.rundir(), b.rundir());
    assert_ne!(a.netns(), b.netns());
    a.vsctl(&[
        "add-br",
        "br-a",
        "--",
        "set",
        "bridge",
        "br-a",
        "datapath_type=netdev",
    ])
    .expect("add br-a");
    assert!(!b.vsctl(&["list-br"]).expect("list").contains("br-a"));
    let ns = a.netns().expect("private netns").to_string();
    drop(a);
    let list = weft_testbed::process::run("ip", &["netns", "list"]).expect("ip netns");
    assert!(!list.contains(&ns), "private netns removed on drop");
}
