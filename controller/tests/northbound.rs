//! Northbound API against a real etcd: every RPC round-trips, bad input gets the right code
//! and a message naming field and value and leaves etcd byte-for-byte unchanged, IPAM reuse
//! and exhaustion, and a restarted controller serving identical state.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use support::*;
use tonic::Code;
use weft_proto::v1::*;

fn sw(name: &str, subnet: &str, vni: u32) -> CreateSwitchRequest {
    CreateSwitchRequest {
        switch: Some(LogicalSwitch {
            name: name.into(),
            subnet: subnet.into(),
            vni,
            ..Default::default()
        }),
        options: None,
    }
}

fn port(switch: &str, name: &str, addrs: &[&str]) -> CreatePortRequest {
    CreatePortRequest {
        port: Some(LogicalSwitchPort {
            name: name.into(),
            switch_name: switch.into(),
            addresses: addrs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
        options: None,
    }
}

fn opts(may_exist: bool, if_exists: bool) -> Option<WriteOptions> {
    Some(WriteOptions {
        may_exist,
        if_exists,
        ..Default::default()
    })
}

fn del(name: &str, if_exists: bool) -> DeleteRequest {
    DeleteRequest {
        name: name.into(),
        options: opts(false, if_exists),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_round_trips() {
    let etcd = start_etcd();
    let prefix = unique_prefix("rt");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;

    let s0 = c
        .create_switch(sw("sw0", "10.0.0.0/24", 0))
        .await
        .unwrap()
        .into_inner();
    let s0sw = s0.switch.clone().unwrap();
    assert!(s0.revision > 0);
    assert!(
        (1..=16_777_215).contains(&s0sw.vni),
        "allocated VNI {}",
        s0sw.vni
    );
    let s1 = c
        .create_switch(sw("sw1", "", 5000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s1.switch.as_ref().unwrap().vni, 5000);
    assert_eq!(
        c.get_switch(GetRequest { name: "sw0".into() })
            .await
            .unwrap()
            .into_inner(),
        s0sw
    );
    let list = c
        .list_switches(ListSwitchesRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = list.switches.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["sw0", "sw1"]);

    // may_exist returns the existing switch unchanged; without it: AlreadyExists.
    let mut again = sw("sw0", "10.9.0.0/16", 0);
    again.options = opts(true, false);
    let r = c.create_switch(again).await.unwrap().into_inner();
    assert_eq!(r.switch.unwrap(), s0sw);
    let e = c.create_switch(sw("sw0", "", 0)).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);

    // ports (the static one first, so the random dynamic address cannot take 10.0.0.10)
    let mut p2 = port("sw0", "p2", &["0A:00:00:00:00:10 10.0.0.10"]);
    p2.port.as_mut().unwrap().port_security = vec!["0a:00:00:00:00:10 10.0.0.10/32".into()];
    let p2 = c.create_port(p2).await.unwrap().into_inner().port.unwrap();
    assert_eq!(p2.addresses, ["0a:00:00:00:00:10 10.0.0.10"]);
    let p1 = c
        .create_port(port("sw0", "p1", &["dynamic"]))
        .await
        .unwrap()
        .into_inner();
    let p1 = p1.port.unwrap();
    let (mac, ip) = p1.dynamic_addresses.split_once(' ').expect("MAC IP");
    assert!(mac.starts_with("0a:"), "{mac}");
    let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    assert!(
        ip.starts_with("10.0.0.") && (2..=254).contains(&last) && last != 10,
        "{ip}"
    );
    assert!(p1.enabled);
    let got = c
        .get_port(GetRequest { name: "p1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, p1);
    assert!(!got.up);
    assert_eq!(got.chassis, "");
    let lp = c
        .list_ports(ListPortsRequest {
            switch_name: "sw0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = lp.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p1", "p2"]);
    let mut dup = port("sw0", "p1", &[]);
    dup.options = opts(true, false);
    assert_eq!(
        c.create_port(dup).await.unwrap().into_inner().port.unwrap(),
        p1
    );

    // set addresses: dynamic allocation is kept, old static claims released
    let r = c
        .set_port_addresses(SetPortAddressesRequest {
            port: "p1".into(),
            addresses: vec!["dynamic".into(), "unknown".into()],
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .port
        .unwrap();
    assert_eq!(r.dynamic_addresses, p1.dynamic_addresses);
    assert_eq!(r.addresses, ["dynamic", "unknown"]);
    c.set_port_addresses(SetPortAddressesRequest {
        port: "p2".into(),
        // any free address: p1's dynamic one is random (and so is its derived MAC:
        // 10.0.0.17 gives 0a:00:00:00:00:11)
        addresses: vec![format!(
            "0a:00:00:00:00:{} 10.0.0.{}",
            if mac == "0a:00:00:00:00:11" { 12 } else { 11 },
            if last == 11 { 12 } else { 11 }
        )],
        options: None,
    })
    .await
    .unwrap();
    // 10.0.0.10 and its MAC are free again
    c.create_port(port("sw0", "p3", &["0a:00:00:00:00:10 10.0.0.10"]))
        .await
        .unwrap();
    let r = c
        .set_port_security(SetPortSecurityRequest {
            port: "p2".into(),
            port_security: vec!["0A:00:00:00:00:11".into()],
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .port
        .unwrap();
    assert_eq!(r.port_security, ["0a:00:00:00:00:11"]);
    assert_eq!(
        c.get_port(GetRequest { name: "p2".into() })
            .await
            .unwrap()
            .into_inner()
            .port_security,
        ["0a:00:00:00:00:11"]
    );

    let ch = c
        .list_chassis(ListChassisRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(ch.chassis.is_empty());
    let show = c.show(ShowRequest {}).await.unwrap().into_inner();
    assert_eq!(show.switches.len(), 2);
    assert_eq!(show.switches[0].ports.len(), 3);
    assert!(show.switches[1].ports.is_empty());
    let sync = c
        .sync(SyncRequest {
            revision: 0,
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sync.revision, show.revision);
    // WAIT_HV with no live chassis returns at once
    let w = c
        .sync(SyncRequest {
            revision: 0,
            options: Some(WriteOptions {
                wait: WaitMode::WaitHv as i32,
                timeout_ms: 2000,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    assert_eq!(w.into_inner().revision, show.revision);

    // deletes
    c.delete_port(del("p3", false)).await.unwrap();
    c.delete_port(del("p3", true)).await.unwrap();
    assert_eq!(
        c.delete_port(del("p3", false)).await.unwrap_err().code(),
        Code::NotFound
    );
    c.delete_switch(del("sw0", false)).await.unwrap();
    assert_eq!(
        c.list_ports(ListPortsRequest {
            switch_name: "sw0".into()
        })
        .await
        .unwrap_err()
        .code(),
        Code::NotFound
    );
    assert_eq!(
        c.get_port(GetRequest { name: "p1".into() })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    c.delete_switch(del("sw0", true)).await.unwrap();
    // ls-del removed the ports, their claims, the VNI claim and the generation key
    let keys: Vec<String> = dump(&etcd.endpoint(), &prefix)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        keys.iter()
            .all(|k| !k.contains("sw0") && !k.contains("/p1") && !k.contains("/p2")),
        "{keys:?}"
    );
    let v1 = format!("{prefix}/v1/claims/vni/5000");
    assert!(keys.contains(&v1), "{keys:?}");
    // the same VNI can be used again
    let r = c
        .create_switch(sw("sw0", "10.0.0.0/24", s0sw.vni))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.switch.unwrap().vni, s0sw.vni);
    ctl.stop().await;
}

/// Asserts a call failed with `code` and a message containing every `needle`.
fn expect_err<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    needles: &[&str],
) {
    let e = r.expect_err("call must fail");
    assert_eq!(e.code(), code, "message: {}", e.message());
    for n in needles {
        assert!(e.message().contains(n), "{:?} not in {:?}", n, e.message());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_error_and_changes_nothing() {
    let etcd = start_etcd();
    let ep = etcd.endpoint();
    let prefix = unique_prefix("bad");
    let ctl = InProc::start(config(&ep, &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    let mut s = sb(&ctl.url()).await;
    c.create_switch(sw("sw", "10.0.0.0/24", 77)).await.unwrap();
    c.create_switch(sw("plain", "", 0)).await.unwrap();
    c.create_switch(sw("tiny", "10.1.0.0/30", 0)).await.unwrap();
    c.create_port(port("tiny", "t1", &["dynamic"]))
        .await
        .unwrap();
    c.create_port(port("sw", "p1", &["0a:00:00:00:00:10 10.0.0.10"]))
        .await
        .unwrap();

    let before = dump(&ep, &prefix).await;
    let check = |label: &str, after: &Vec<(String, Vec<u8>)>| {
        assert_eq!(&before, after, "{label}: a rejected write changed etcd");
    };

    expect_err(
        c.create_switch(sw("bad name", "", 0)).await,
        Code::InvalidArgument,
        &["switch.name", "\"bad name\""],
    );
    expect_err(
        c.create_switch(sw("", "", 0)).await,
        Code::InvalidArgument,
        &["switch.name"],
    );
    expect_err(
        c.create_switch(sw(&"x".repeat(64), "", 0)).await,
        Code::InvalidArgument,
        &["switch.name", "63"],
    );
    expect_err(
        c.create_switch(sw("s2", "10.0.0.1/24", 0)).await,
        Code::InvalidArgument,
        &["switch.subnet", "\"10.0.0.1/24\"", "10.0.0.0/24"],
    );
    expect_err(
        c.create_switch(sw("s2", "10.0.0.0/31", 0)).await,
        Code::InvalidArgument,
        &["switch.subnet", "10.0.0.0/31"],
    );
    expect_err(
        c.create_switch(sw("s2", "banana", 0)).await,
        Code::InvalidArgument,
        &["switch.subnet", "banana"],
    );
    expect_err(
        c.create_switch(sw("s2", "", 16_777_216)).await,
        Code::InvalidArgument,
        &["switch.vni", "16777216"],
    );
    expect_err(
        c.create_switch(sw("s2", "", 77)).await,
        Code::AlreadyExists,
        &["switch.vni", "77", "\"sw\""],
    );
    expect_err(
        c.create_switch(sw("sw", "", 0)).await,
        Code::AlreadyExists,
        &["\"sw\""],
    );
    let mut big = sw("s2", "", 0);
    for i in 0..65 {
        big.switch
            .as_mut()
            .unwrap()
            .other_config
            .insert(format!("k{i}"), "v".into());
    }
    expect_err(
        c.create_switch(big).await,
        Code::InvalidArgument,
        &["other_config"],
    );
    check("switches", &dump(&ep, &prefix).await);

    expect_err(
        c.create_port(port("nosuch", "p2", &[])).await,
        Code::NotFound,
        &["\"nosuch\""],
    );
    expect_err(
        c.create_port(port("sw", "p 2", &[])).await,
        Code::InvalidArgument,
        &["port.name", "\"p 2\""],
    );
    expect_err(
        c.create_port(port("sw", "p1", &[])).await,
        Code::AlreadyExists,
        &["\"p1\""],
    );
    expect_err(
        c.create_port(port("sw", "p2", &["zz:00:00:00:00:01 10.0.0.5"]))
            .await,
        Code::InvalidArgument,
        &[
            "addresses[0]",
            "\"zz:00:00:00:00:01 10.0.0.5\"",
            "invalid MAC \"zz:00:00:00:00:01\"",
        ],
    );
    expect_err(
        c.create_port(port("sw", "p2", &["01:00:00:00:00:01"]))
            .await,
        Code::InvalidArgument,
        &["addresses[0]", "multicast"],
    );
    expect_err(
        c.create_port(port("sw", "p2", &["unknown", "0a:00:00:00:00:20 10.9.9.9"]))
            .await,
        Code::InvalidArgument,
        &["addresses[1]", "10.9.9.9", "outside subnet 10.0.0.0/24"],
    );
    expect_err(
        c.create_port(port("sw", "p2", &["0a:00:00:00:00:20 10.0.0.10"]))
            .await,
        Code::AlreadyExists,
        &["addresses[0]", "10.0.0.10", "\"p1\""],
    );
    expect_err(
        c.create_port(port("sw", "p2", &["0a:00:00:00:00:10 10.0.0.20"]))
            .await,
        Code::AlreadyExists,
        &["addresses[0]", "0a:00:00:00:00:10", "\"p1\""],
    );
    // (`dynamic` on a switch without a subnet is a MAC-only allocation, as OVN: see
    // objects::tests and the weftctl tests.)
    expect_err(
        c.create_port(port("tiny", "t2", &["dynamic"])).await,
        Code::FailedPrecondition,
        &["10.1.0.0/30", "\"tiny\"", "exhausted"],
    );
    let many: Vec<&str> = vec!["unknown"; 65];
    expect_err(
        c.create_port(port("sw", "p2", &many)).await,
        Code::InvalidArgument,
        &["addresses", "too many"],
    );
    let long = format!("0a:00:00:00:00:20 {}", "10.0.0.5 ".repeat(600));
    expect_err(
        c.create_port(port("sw", "p2", &[&long])).await,
        Code::InvalidArgument,
        &["addresses[0]"],
    );
    let mut typed = port("sw", "p2", &[]);
    typed.port.as_mut().unwrap().r#type = "vtep".into();
    expect_err(
        c.create_port(typed).await,
        Code::InvalidArgument,
        &["port.type", "\"router\""],
    );
    let mut sec = port("sw", "p2", &[]);
    sec.port.as_mut().unwrap().port_security = vec!["0a:00:00:00:00:20 10.0.0.5/99".into()];
    expect_err(
        c.create_port(sec).await,
        Code::InvalidArgument,
        &["port_security[0]", "10.0.0.5/99"],
    );
    check("ports", &dump(&ep, &prefix).await);

    expect_err(
        c.set_port_addresses(SetPortAddressesRequest {
            port: "nosuch".into(),
            addresses: vec![],
            options: None,
        })
        .await,
        Code::NotFound,
        &["\"nosuch\""],
    );
    expect_err(
        c.set_port_addresses(SetPortAddressesRequest {
            port: "p1".into(),
            addresses: vec!["0a:00:00:00:00:11 10.0.0.300".into()],
            options: None,
        })
        .await,
        Code::InvalidArgument,
        &["addresses[0]", "10.0.0.300"],
    );
    expect_err(
        c.set_port_addresses(SetPortAddressesRequest {
            port: "t1".into(),
            addresses: vec!["0a:00:00:00:00:11 10.1.0.3".into()],
            options: None,
        })
        .await,
        Code::InvalidArgument,
        &["addresses[0]", "10.1.0.3", "broadcast"],
    );
    expect_err(
        c.set_port_security(SetPortSecurityRequest {
            port: "p1".into(),
            port_security: vec!["nope".into()],
            options: None,
        })
        .await,
        Code::InvalidArgument,
        &["port_security[0]", "\"nope\""],
    );
    expect_err(
        c.set_port_security(SetPortSecurityRequest {
            port: "nosuch".into(),
            port_security: vec![],
            options: None,
        })
        .await,
        Code::NotFound,
        &["\"nosuch\""],
    );
    expect_err(
        c.delete_switch(del("nosuch", false)).await,
        Code::NotFound,
        &["\"nosuch\""],
    );
    expect_err(
        c.delete_port(del("nosuch", false)).await,
        Code::NotFound,
        &["\"nosuch\""],
    );
    expect_err(
        c.get_switch(GetRequest {
            name: "nosuch".into(),
        })
        .await,
        Code::NotFound,
        &["\"nosuch\""],
    );
    expect_err(
        c.get_port(GetRequest { name: "a/b".into() }).await,
        Code::InvalidArgument,
        &["\"a/b\""],
    );
    expect_err(
        c.sync(SyncRequest {
            revision: -1,
            options: None,
        })
        .await,
        Code::InvalidArgument,
        &["-1"],
    );
    // southbound bad input
    let bad_chassis = Chassis {
        name: "hv1".into(),
        encap_ip: "not-an-ip".into(),
        encap_types: vec!["geneve".into()],
        ..Default::default()
    };
    let r = s
        .subscribe(SubscribeRequest {
            chassis: Some(bad_chassis),
        })
        .await;
    expect_err(
        r,
        Code::InvalidArgument,
        &["chassis.encap_ip", "\"not-an-ip\""],
    );
    let r = s
        .report_status(StatusReport {
            chassis: "ghost".into(),
            applied_revision: 1,
            ..Default::default()
        })
        .await;
    expect_err(
        r,
        Code::FailedPrecondition,
        &["\"ghost\"", "not registered"],
    );
    // oversize request (over the 1 MiB limit) is refused before it reaches any handler
    let huge = port("sw", "p2", &[&"a".repeat(2 << 20)]);
    let e = c.create_port(huge).await.unwrap_err();
    assert_ne!(e.code(), Code::Ok);
    check("everything", &dump(&ep, &prefix).await);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_skips_reserved_reuses_after_delete() {
    let etcd = start_etcd();
    let prefix = unique_prefix("ipam");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    c.create_switch(sw("s", "192.168.7.0/29", 0)).await.unwrap();
    let mut ips = HashMap::new();
    for i in 0..5 {
        let p = c
            .create_port(port("s", &format!("p{i}"), &["dynamic"]))
            .await
            .unwrap()
            .into_inner()
            .port
            .unwrap();
        let (mac, ip) = p.dynamic_addresses.split_once(' ').unwrap();
        ips.insert(ip.to_string(), mac.to_string());
    }
    let expected: HashSet<String> = (2..=6).map(|h| format!("192.168.7.{h}")).collect();
    assert_eq!(
        ips.keys().cloned().collect::<HashSet<_>>(),
        expected,
        "network .0, gateway .1, broadcast .7 skipped"
    );
    let macs: HashSet<_> = ips.values().collect();
    assert_eq!(macs.len(), 5);
    expect_err(
        c.create_port(port("s", "p5", &["dynamic"])).await,
        Code::FailedPrecondition,
        &["192.168.7.0/29", "\"s\""],
    );
    let freed = c
        .get_port(GetRequest { name: "p3".into() })
        .await
        .unwrap()
        .into_inner()
        .dynamic_addresses;
    c.delete_port(del("p3", false)).await.unwrap();
    let p = c
        .create_port(port("s", "p5", &["dynamic"]))
        .await
        .unwrap()
        .into_inner()
        .port
        .unwrap();
    assert_eq!(
        p.dynamic_addresses.split_once(' ').unwrap().1,
        freed.split_once(' ').unwrap().1
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_controller_serves_identical_state() {
    let etcd = start_etcd();
    let prefix = unique_prefix("restart");
    let mut first = BinCtl::start(&etcd.endpoint(), &prefix);
    let mut c = nb(&first.url()).await;
    c.create_switch(sw("a", "10.0.0.0/24", 0)).await.unwrap();
    c.create_switch(sw("b", "10.1.0.0/16", 42)).await.unwrap();
    for i in 0..10 {
        let sw_name = if i % 2 == 0 { "a" } else { "b" };
        c.create_port(port(sw_name, &format!("p{i}"), &["dynamic", "unknown"]))
            .await
            .unwrap();
    }
    c.set_port_security(SetPortSecurityRequest {
        port: "p0".into(),
        port_security: vec!["0a:00:00:00:00:01".into()],
        options: None,
    })
    .await
    .unwrap();
    let before = c.show(ShowRequest {}).await.unwrap().into_inner();
    first.kill();
    drop(c);
    let second = BinCtl::start(&etcd.endpoint(), &prefix);
    let mut c = nb(&second.url()).await;
    let mut after = None;
    for _ in 0..50 {
        match c.show(ShowRequest {}).await {
            Ok(r) => {
                after = Some(r.into_inner());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(after.expect("show after restart"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_serves_without_etcd() {
    // Nothing listens on port 1: the memory store must not need etcd at all.
    let mut cfg = config("http://127.0.0.1:1", "/weft");
    cfg.store = weft_controller::StoreKind::Memory;
    let ctl = InProc::start(cfg).await;
    let mut c = nb(&ctl.url()).await;
    let mut s = sb(&ctl.url()).await;
    c.create_switch(sw("sw", "10.0.0.0/24", 0)).await.unwrap();
    let p = c
        .create_port(port("sw", "p1", &["dynamic"]))
        .await
        .unwrap()
        .into_inner();
    assert!(!p.port.unwrap().dynamic_addresses.is_empty());
    expect_err(
        c.create_port(port("sw", "p1", &[])).await,
        Code::AlreadyExists,
        &["\"p1\""],
    );
    let mut st = s
        .subscribe(SubscribeRequest {
            chassis: Some(Chassis {
                name: "hv1".into(),
                encap_ip: "192.168.0.1".into(),
                encap_types: vec!["geneve".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let snap = tokio::time::timeout(Duration::from_secs(5), st.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(snap.snapshot);
    s.report_status(StatusReport {
        chassis: "hv1".into(),
        applied_revision: snap.revision,
        ports: vec![PortBinding {
            port: "p1".into(),
            chassis: "hv1".into(),
            up: true,
        }],
        last_error: String::new(),
    })
    .await
    .unwrap();
    let got = c
        .get_port(GetRequest { name: "p1".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(got.up);
    assert_eq!(got.chassis, "hv1");
    let u = tokio::time::timeout(Duration::from_secs(5), st.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        weft_controller::view::Delta::from_update(&u)
            .unwrap()
            .ports
            .len(),
        1
    );
    c.delete_switch(del("sw", false)).await.unwrap();
    assert!(c
        .show(ShowRequest {})
        .await
        .unwrap()
        .into_inner()
        .switches
        .is_empty());
    drop(st);
    ctl.stop().await;
}

/// `Transact` on real etcd: the chain is one revision; the same shape with a bad
/// last op (or an unknown column, or an unknown kind) leaves etcd byte-identical and names
/// the op; a dry run commits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transact_chains_are_atomic_on_etcd() {
    let etcd = start_etcd();
    let prefix = unique_prefix("transact");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    let obj = |k| Object { kind: Some(k) };
    let ins = |o: Object| Op {
        op: Some(op::Op::Insert(InsertOp {
            object: Some(o),
            may_exist: false,
        })),
    };
    let ls = |n: &str| {
        obj(object::Kind::LogicalSwitch(LogicalSwitch {
            name: n.into(),
            ..Default::default()
        }))
    };
    let lsp = |sw: &str, n: &str| {
        obj(object::Kind::LogicalSwitchPort(LogicalSwitchPort {
            name: n.into(),
            switch_name: sw.into(),
            ..Default::default()
        }))
    };
    let set_dynamic = |n: &str| Op {
        op: Some(op::Op::Update(UpdateOp {
            kind: "Logical_Switch_Port".into(),
            name: n.into(),
            columns: vec![ColumnOp {
                action: column_op::Action::Set as i32,
                column: "addresses".into(),
                key: String::new(),
                values: vec!["dynamic".into()],
            }],
            if_exists: false,
        })),
    };
    let tx = |ops: Vec<Op>, dry_run: bool| TransactRequest {
        ops,
        dry_run,
        ..Default::default()
    };
    let before_rev = c
        .sync(SyncRequest::default())
        .await
        .unwrap()
        .into_inner()
        .revision;
    let r = c
        .transact(tx(
            vec![
                ins(ls("a")),
                ins(lsp("a", "p1")),
                set_dynamic("p1"),
                ins(lsp("a", "p2")),
            ],
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.revision, before_rev + 1, "one etcd revision");
    assert_eq!(r.results.len(), 4);
    let before = dump(&etcd.endpoint(), &prefix).await;
    let bad_last = vec![
        ins(ls("b")),
        ins(lsp("b", "q1")),
        set_dynamic("q1"),
        ins(lsp("nosuch", "q2")),
    ];
    let mut bad_column = bad_last.clone();
    bad_column[3] = Op {
        op: Some(op::Op::Update(UpdateOp {
            kind: "logical_switch_port".into(),
            name: "q1".into(),
            columns: vec![ColumnOp {
                column: "colour".into(),
                values: vec!["red".into()],
                ..Default::default()
            }],
            if_exists: false,
        })),
    };
    let mut bad_kind = bad_last.clone();
    bad_kind[3] = Op {
        op: Some(op::Op::Delete(DeleteOp {
            kind: "Logical_Flow".into(),
            name: "x".into(),
            if_exists: false,
        })),
    };
    for (ops, code, needle) in [
        (bad_last, Code::NotFound, "nosuch"),
        (bad_column, Code::InvalidArgument, "colour"),
        (bad_kind, Code::InvalidArgument, "Logical_Flow"),
    ] {
        let e = c.transact(tx(ops, false)).await.unwrap_err();
        assert_eq!(e.code(), code, "{}", e.message());
        assert!(e.message().starts_with("ops[3]: "), "{}", e.message());
        assert!(e.message().contains(needle), "{}", e.message());
        assert_eq!(
            dump(&etcd.endpoint(), &prefix).await,
            before,
            "{}",
            e.message()
        );
    }
    let r = c
        .transact(tx(vec![ins(ls("c"))], true))
        .await
        .unwrap()
        .into_inner();
    assert!(
        r.changes.iter().any(|l| l == "put nb/switches/c"),
        "{:?}",
        r.changes
    );
    assert_eq!(dump(&etcd.endpoint(), &prefix).await, before, "dry run");
    ctl.stop().await;
}
