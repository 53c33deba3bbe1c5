//! CreatePorts against a real etcd: a batch round-trips (one revision, request order, dynamic
//! addresses, may_exist per port), a batch with one bad port changes nothing, two replicas
//! allocating 100-port dynamic batches concurrently never hand out an address twice, and
//! batches beyond --max-batch, the controller's --etcd-max-txn-ops or etcd's own limit are
//! refused with InvalidArgument. Also: a status report with more bindings than one
//! transaction takes is split and fully recorded, and ls-del of a switch with more ports than
//! one transaction takes deletes it in chunks.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::*;
use tonic::Code;
use weft_proto::v1::*;

fn sw(name: &str, subnet: &str) -> CreateSwitchRequest {
    CreateSwitchRequest {
        switch: Some(LogicalSwitch {
            name: name.into(),
            subnet: subnet.into(),
            ..Default::default()
        }),
        options: None,
    }
}

fn lsp(switch: &str, name: &str, addrs: &[&str]) -> LogicalSwitchPort {
    LogicalSwitchPort {
        name: name.into(),
        switch_name: switch.into(),
        addresses: addrs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn batch(ports: Vec<LogicalSwitchPort>, may_exist: bool) -> CreatePortsRequest {
    CreatePortsRequest {
        ports,
        options: Some(WriteOptions {
            may_exist,
            ..Default::default()
        }),
    }
}

fn dynamic_batch(switch: &str, tag: &str, n: usize) -> CreatePortsRequest {
    batch(
        (0..n)
            .map(|i| lsp(switch, &format!("{tag}-{i}"), &["dynamic"]))
            .collect(),
        false,
    )
}

/// A dynamic port ahead of static ones in one batch never takes what they ask for: a /29
/// has 5 allocatable addresses, the static port asks for 4 of them and for the MAC derived
/// from the fifth, so the dynamic port must get the fifth IP and a random MAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_allocation_avoids_static_addresses_later_in_the_batch() {
    let etcd = start_etcd();
    let prefix = unique_prefix("batch-res");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    c.create_switch(sw("a", "10.0.0.0/29")).await.unwrap();
    let r = c
        .create_ports(batch(
            vec![
                lsp("a", "dyn", &["dynamic"]),
                lsp(
                    "a",
                    "stat",
                    &["0a:00:00:00:00:06 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5"],
                ),
            ],
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    let (mac, ip) = r.ports[0].dynamic_addresses.split_once(' ').unwrap();
    assert_eq!(ip, "10.0.0.6");
    assert_ne!(mac, "0a:00:00:00:00:06");
    assert!(mac.starts_with("0a:"), "{mac}");
    // The same through the generic transaction path (`lsp-add ... -- lsp-add ...`).
    c.create_switch(sw("b", "10.0.1.0/29")).await.unwrap();
    let ins = |p: LogicalSwitchPort| Op {
        op: Some(op::Op::Insert(InsertOp {
            object: Some(Object {
                kind: Some(object::Kind::LogicalSwitchPort(p)),
            }),
            may_exist: false,
        })),
    };
    c.transact(TransactRequest {
        ops: vec![
            ins(lsp("b", "dyn2", &["dynamic"])),
            ins(lsp(
                "b",
                "stat2",
                &["0a:00:00:00:01:06 10.0.1.2 10.0.1.3 10.0.1.4 10.0.1.5"],
            )),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let got = c
        .get_port(GetRequest {
            name: "dyn2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.dynamic_addresses.ends_with(" 10.0.1.6"), "{got:?}");
    assert!(
        !got.dynamic_addresses.starts_with("0a:00:00:00:01:06"),
        "{got:?}"
    );
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_round_trips() {
    let etcd = start_etcd();
    let prefix = unique_prefix("batch-rt");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    c.create_switch(sw("a", "10.0.0.0/24")).await.unwrap();
    c.create_switch(sw("b", "")).await.unwrap();

    let mut req = batch(
        vec![
            lsp("a", "p1", &["dynamic"]),
            lsp("b", "p2", &["0a:00:00:00:00:02", "unknown"]),
            lsp("a", "p3", &["0a:00:00:00:00:03 10.0.0.30"]),
            lsp("a", "p4", &["dynamic", "unknown"]),
        ],
        false,
    );
    req.ports[2].port_security = vec!["0a:00:00:00:00:03 10.0.0.30".into()];
    // WAIT_HV with no chassis at all returns at once.
    req.options.as_mut().unwrap().wait = WaitMode::WaitHv as i32;
    let r = c.create_ports(req).await.unwrap().into_inner();
    let names: Vec<&str> = r.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p1", "p2", "p3", "p4"], "request order");
    assert!(r.ports.iter().all(|p| p.enabled), "stored enabled");
    assert!(!r.ports[0].dynamic_addresses.is_empty());
    assert!(!r.ports[3].dynamic_addresses.is_empty());
    assert_ne!(r.ports[0].dynamic_addresses, r.ports[3].dynamic_addresses);
    assert_eq!(r.ports[1].addresses, ["0a:00:00:00:00:02", "unknown"]);
    assert_eq!(r.ports[2].port_security, ["0a:00:00:00:00:03 10.0.0.30"]);
    // All in one transaction: every port key has the reply's revision.
    let raw = dump(&etcd.endpoint(), &prefix).await;
    assert_eq!(
        raw.iter().filter(|(k, _)| k.contains("/nb/ports/")).count(),
        4
    );
    for p in &r.ports {
        let got = c
            .get_port(GetRequest {
                name: p.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&got, p);
    }
    let ports_a = c
        .list_ports(ListPortsRequest {
            switch_name: "a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ports_a.revision, r.revision,
        "nothing written after the batch"
    );

    // may_exist: existing ports come back unchanged, new ones are created.
    let r2 = c
        .create_ports(batch(
            vec![lsp("a", "p1", &["dynamic"]), lsp("a", "p5", &["dynamic"])],
            true,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r2.ports[0], r.ports[0]);
    assert_eq!(r2.ports[1].name, "p5");
    assert!(r2.revision > r.revision);
    // Only existing ports: nothing written, the read revision comes back.
    let r3 = c
        .create_ports(batch(vec![lsp("a", "p1", &[])], true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r3.revision, r2.revision);
    // Without may_exist: AlreadyExists naming the index.
    let e = c
        .create_ports(batch(vec![lsp("a", "p9", &[]), lsp("a", "p1", &[])], false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{}", e.message());
    assert!(e.message().contains("ports[1]"), "{}", e.message());
    // On another switch, may_exist does not help.
    let e = c
        .create_ports(batch(vec![lsp("b", "p1", &[])], true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{}", e.message());
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_one_bad_port_changes_nothing() {
    let etcd = start_etcd();
    let prefix = unique_prefix("batch-bad");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    c.create_switch(sw("a", "10.0.0.0/24")).await.unwrap();
    c.create_switch(sw("n", "")).await.unwrap();
    c.create_ports(batch(
        vec![lsp("a", "old", &["0a:00:00:00:00:10 10.0.0.10"])],
        false,
    ))
    .await
    .unwrap();
    let before = dump(&etcd.endpoint(), &prefix).await;
    let good = |i: usize| lsp("a", &format!("g{i}"), &["dynamic"]);
    let cases: Vec<(Vec<LogicalSwitchPort>, Code, &[&str])> = vec![
        (
            vec![
                good(0),
                good(1),
                lsp("a", "bad", &["zz:00:00:00:00:01 10.0.0.5"]),
            ],
            Code::InvalidArgument,
            &["ports[2].addresses[0]", "zz:00:00:00:00:01"],
        ),
        (
            vec![good(0), lsp("a", "bad name", &[])],
            Code::InvalidArgument,
            &["ports[1].name", "bad name"],
        ),
        (
            vec![good(0), lsp("", "x", &[])],
            Code::InvalidArgument,
            &["ports[1].switch_name"],
        ),
        (
            vec![good(0), good(1), good(0)],
            Code::InvalidArgument,
            &["ports[2].name", "g0", "ports[0]"],
        ),
        (
            vec![good(0), {
                let mut p = lsp("a", "ps", &[]);
                p.port_security = vec!["nonsense".into()];
                p
            }],
            Code::InvalidArgument,
            &["ports[1].port_security[0]", "nonsense"],
        ),
        (
            vec![good(0), lsp("a", "out", &["0a:00:00:00:00:20 10.9.9.9"])],
            Code::InvalidArgument,
            &["ports[1].addresses[0]", "10.9.9.9"],
        ),
        (
            vec![good(0), lsp("nosuch", "x", &[])],
            Code::NotFound,
            &["nosuch", "ports[1].switch_name"],
        ),
        // (`dynamic` on switch "n" without a subnet is a MAC-only allocation, as OVN.)
        // Clashes with a stored claim.
        (
            vec![good(0), lsp("a", "x", &["02:00:00:00:00:99 10.0.0.10"])],
            Code::AlreadyExists,
            &["ports[1].addresses[0]", "10.0.0.10", "old"],
        ),
        // Clashes within the batch.
        (
            vec![
                lsp("a", "x1", &["0a:00:00:00:00:31 10.0.0.31"]),
                good(1),
                lsp("a", "x2", &["0a:00:00:00:00:31 10.0.0.32"]),
            ],
            Code::AlreadyExists,
            &["ports[2].addresses[0]", "0a:00:00:00:00:31", "x1"],
        ),
        (vec![], Code::InvalidArgument, &["ports"]),
    ];
    for (ports, code, needles) in cases {
        let e = c
            .create_ports(batch(ports.clone(), false))
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{ports:?}: {}", e.message());
        for n in needles {
            assert!(e.message().contains(n), "{:?} lacks {n:?}", e.message());
        }
        assert_eq!(
            dump(&etcd.endpoint(), &prefix).await,
            before,
            "rejected batch changed etcd: {}",
            e.message()
        );
    }
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_batch_dynamic_ports_without_duplicates() {
    let etcd = start_etcd();
    let prefix = unique_prefix("batch-race");
    let c1 = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let c2 = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut n1 = nb(&c1.url()).await;
    let mut n2 = nb(&c2.url()).await;
    // A /23 (509 free addresses) for 400 ports: collisions between the replicas' random
    // picks are likely, so the retry path runs.
    n1.create_switch(sw("s", "10.3.0.0/23")).await.unwrap();
    let mut all = Vec::new();
    for round in 0..2 {
        let a = dynamic_batch("s", &format!("r{round}a"), 100);
        let b = dynamic_batch("s", &format!("r{round}b"), 100);
        let (ra, rb) = tokio::join!(n1.create_ports(a), n2.create_ports(b));
        all.extend(ra.unwrap().into_inner().ports);
        all.extend(rb.unwrap().into_inner().ports);
    }
    assert_eq!(all.len(), 400);
    let addrs: HashSet<&str> = all.iter().map(|p| p.dynamic_addresses.as_str()).collect();
    let ips: HashSet<&str> = all
        .iter()
        .map(|p| p.dynamic_addresses.split(' ').nth(1).unwrap())
        .collect();
    let macs: HashSet<&str> = all
        .iter()
        .map(|p| p.dynamic_addresses.split(' ').next().unwrap())
        .collect();
    assert_eq!(addrs.len(), 400, "duplicate dynamic addresses");
    assert_eq!(ips.len(), 400, "duplicate IPs");
    assert_eq!(macs.len(), 400, "duplicate MACs");
    // What is stored agrees: one claim per IP and MAC, each naming its port.
    let raw = dump(&etcd.endpoint(), &prefix).await;
    let ip_claims = raw
        .iter()
        .filter(|(k, _)| k.contains("/claims/ip/s/"))
        .count();
    let mac_claims = raw
        .iter()
        .filter(|(k, _)| k.contains("/claims/mac/s/"))
        .count();
    assert_eq!((ip_claims, mac_claims), (400, 400));
    let listed = n1
        .list_ports(ListPortsRequest {
            switch_name: "s".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .ports;
    assert_eq!(listed.len(), 400);
    c1.stop().await;
    c2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_batches_are_refused() {
    let etcd = start_etcd();
    let prefix = unique_prefix("batch-big");
    // The controller believes etcd takes 128 ops (etcd's default).
    let mut cfg = config(&etcd.endpoint(), &prefix);
    cfg.etcd_max_txn_ops = 128;
    cfg.max_batch = 500;
    let ctl = InProc::start(cfg).await;
    let mut c = nb(&ctl.url()).await;
    c.create_switch(sw("s", "10.4.0.0/16")).await.unwrap();
    let before = dump(&etcd.endpoint(), &prefix).await;
    let e = c
        .create_ports(dynamic_batch("s", "p", 100))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    // 1 (switch) + 4 per dynamic port (port, IP, MAC, port key): 31 ports need 125 ops.
    for n in ["ports", "401", "128", "first 31", "--max-txn-ops"] {
        assert!(e.message().contains(n), "{:?} lacks {n:?}", e.message());
    }
    let e = c
        .create_ports(dynamic_batch("s", "p", 501))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("--max-batch"), "{}", e.message());
    assert_eq!(dump(&etcd.endpoint(), &prefix).await, before);
    // 31 fit.
    c.create_ports(dynamic_batch("s", "p", 31)).await.unwrap();

    // A status report binding more ports than one transaction takes is split: 130 bindings
    // with a 128-op limit.
    let mut ports = Vec::new();
    for k in 0..5 {
        ports.extend(
            c.create_ports(dynamic_batch("s", &format!("q{k}"), 30))
                .await
                .unwrap()
                .into_inner()
                .ports,
        );
    }
    let mut s = sb(&ctl.url()).await;
    let mut st = s
        .subscribe(SubscribeRequest {
            chassis: Some(Chassis {
                name: "hv1".into(),
                encap_ip: "192.168.0.1".into(),
                encap_types: vec!["geneve".into()],
                datapath_type: "netdev".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let first = st.message().await.unwrap().unwrap();
    let bound: Vec<PortBinding> = ports
        .iter()
        .take(130)
        .map(|p| PortBinding {
            port: p.name.clone(),
            chassis: "hv1".into(),
            up: true,
        })
        .collect();
    s.report_status(StatusReport {
        chassis: "hv1".into(),
        applied_revision: first.revision,
        ports: bound,
        last_error: String::new(),
    })
    .await
    .unwrap();
    let raw = dump(&etcd.endpoint(), &prefix).await;
    assert_eq!(
        raw.iter()
            .filter(|(k, _)| k.contains("/status/bindings/"))
            .count(),
        130
    );
    drop(st);
    ctl.stop().await;

    // The controller allows more than etcd does: etcd's refusal becomes InvalidArgument.
    let mut cfg = config(&etcd.endpoint(), &prefix);
    cfg.etcd_max_txn_ops = 100_000;
    cfg.max_batch = 1000;
    let ctl = InProc::start(cfg).await;
    let mut c = nb(&ctl.url()).await;
    let port_keys = |raw: Vec<(String, Vec<u8>)>| {
        raw.into_iter()
            .filter(|(k, _)| k.contains("/nb/ports/") || k.contains("/claims/"))
            .collect::<Vec<_>>()
    };
    let before = port_keys(dump(&etcd.endpoint(), &prefix).await);
    let e = tokio::time::timeout(
        Duration::from_secs(60),
        c.create_ports(dynamic_batch("s", "big", 1000)),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("--max-txn-ops"), "{}", e.message());
    let after = port_keys(dump(&etcd.endpoint(), &prefix).await);
    assert_eq!(after, before, "etcd refused, nothing written");
    ctl.stop().await;
}

/// ls-del of a switch with more ports than one etcd transaction takes (controller limit
/// 128): ports go in chunks, the switch last; nothing of it is left, and a chassis' view
/// never holds a port whose switch it does not have (the agent rejects such an update).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_switch_larger_than_one_transaction() {
    let etcd = start_etcd();
    let prefix = unique_prefix("lsdel");
    let mut cfg = config(&etcd.endpoint(), &prefix);
    cfg.etcd_max_txn_ops = 128;
    let ctl = InProc::start(cfg).await;
    let mut c = nb(&ctl.url()).await;
    c.create_switch(sw("big", "10.1.0.0/16")).await.unwrap();
    c.create_switch(sw("small", "10.2.0.0/24")).await.unwrap();
    // 300 ports, 30 per call (4 ops each + 1 fits in 128).
    for b in 0..10 {
        let ports = (0..30)
            .map(|i| b * 30 + i)
            .filter(|i| *i < 300)
            .map(|i| lsp("big", &format!("b{i}"), &["dynamic"]))
            .collect();
        c.create_ports(batch(ports, false)).await.unwrap();
    }
    c.create_ports(batch(vec![lsp("small", "s0", &["dynamic"])], false))
        .await
        .unwrap();
    // A chassis with one port of each switch bound: its view holds both switches.
    let mut s = sb(&ctl.url()).await;
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
    let first = st.message().await.unwrap().unwrap();
    let mut bound: Vec<PortBinding> = (0..300)
        .step_by(7)
        .map(|i| PortBinding {
            port: format!("b{i}"),
            chassis: "hv1".into(),
            up: true,
        })
        .collect();
    bound.push(PortBinding {
        port: "s0".into(),
        chassis: "hv1".into(),
        up: true,
    });
    s.report_status(StatusReport {
        chassis: "hv1".into(),
        applied_revision: first.revision,
        ports: bound,
        last_error: String::new(),
    })
    .await
    .unwrap();
    let mut v = weft_controller::view::View::default();
    weft_controller::view::apply(&mut v, &first);
    let check = |v: &weft_controller::view::View| {
        for p in v.ports.values() {
            assert!(
                v.switches.contains_key(&p.switch_name),
                "port {} of switch {} without its switch in the view",
                p.name,
                p.switch_name
            );
        }
    };
    while v.ports.len() < 301 {
        let u = tokio::time::timeout(Duration::from_secs(5), st.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        weft_controller::view::apply(&mut v, &u);
        check(&v);
    }
    let before = c
        .sync(SyncRequest {
            revision: 0,
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .revision;
    let r = c
        .delete_switch(DeleteRequest {
            name: "big".into(),
            options: None,
        })
        .await
        .expect("ls-del of a 300-port switch with --etcd-max-txn-ops 128")
        .into_inner();
    while v.switches.contains_key("big") {
        let u = tokio::time::timeout(Duration::from_secs(5), st.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        weft_controller::view::apply(&mut v, &u);
        check(&v);
    }
    assert_eq!(v.ports.keys().collect::<Vec<_>>(), vec!["s0"]);
    let raw = dump(&etcd.endpoint(), &prefix).await;
    let left: Vec<&String> = raw
        .iter()
        .map(|(k, _)| k)
        .filter(|k| {
            k.contains("/nb/switches/big")
                || k.contains("/nb/ports/b")
                || k.contains("/claims/ip/big/")
                || k.contains("/claims/mac/big/")
                || k.contains("/status/bindings/b")
                || k.contains("/gen/big")
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // The other switch is untouched, and exactly one VNI claim (its) is left.
    let vnis = raw
        .iter()
        .filter(|(k, _)| k.contains("/claims/vni/"))
        .count();
    assert_eq!(vnis, 1);
    let small = c
        .list_ports(ListPortsRequest {
            switch_name: "small".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(small.ports.len(), 1);
    assert_eq!(small.ports[0].chassis, "hv1");
    // 300 ports × (port, binding, IP, MAC) = 1,200 deletes: at least 10 transactions of
    // at most 128, then the switch's own.
    assert!(
        r.revision - before >= 10,
        "deleted in {} revisions",
        r.revision - before
    );
    // The name is free again.
    c.create_switch(sw("big", "10.1.0.0/16")).await.unwrap();
    let e = c
        .delete_switch(DeleteRequest {
            name: "nosuch".into(),
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    drop(st);
    ctl.stop().await;
}
