//! Two controller processes on one etcd allocating concurrently (no duplicate IP or MAC),
//! and etcd outages: Unavailable while etcd is down, recovery without a controller restart.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::*;
use tonic::Code;
use weft_proto::v1::*;

const PORTS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_allocate_no_duplicates() {
    let etcd = start_etcd();
    let prefix = unique_prefix("replicas");
    let a = BinCtl::start(&etcd.endpoint(), &prefix);
    let b = BinCtl::start(&etcd.endpoint(), &prefix);
    let ca = nb(&a.url()).await;
    let cb = nb(&b.url()).await;
    let mut c = ca.clone();
    // wait until both answer
    for client in [ca.clone(), cb.clone()] {
        let ok = eventually(Duration::from_secs(10), || {
            let mut cl = client.clone();
            async move { cl.list_switches(ListSwitchesRequest {}).await.is_ok() }
        })
        .await;
        assert!(ok, "controller did not come up");
    }
    c.create_switch(CreateSwitchRequest {
        switch: Some(LogicalSwitch {
            name: "big".into(),
            subnet: "10.20.0.0/22".into(),
            ..Default::default()
        }),
        options: None,
    })
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..PORTS {
        let mut client = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        tasks.push(tokio::spawn(async move {
            client
                .create_port(CreatePortRequest {
                    port: Some(LogicalSwitchPort {
                        name: format!("p{i}"),
                        switch_name: "big".into(),
                        addresses: vec!["dynamic".into()],
                        ..Default::default()
                    }),
                    options: None,
                })
                .await
                .map(|r| r.into_inner().port.unwrap_or_default().dynamic_addresses)
        }));
    }
    let mut replied = Vec::new();
    for t in tasks {
        replied.push(t.await.expect("task").expect("create_port"));
    }
    let ports = c
        .list_ports(ListPortsRequest {
            switch_name: "big".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .ports;
    assert_eq!(ports.len(), PORTS);
    let mut ips = HashSet::new();
    let mut macs = HashSet::new();
    for p in &ports {
        let (mac, ip) = p.dynamic_addresses.split_once(' ').expect("allocated");
        assert!(ips.insert(ip.to_string()), "duplicate IP {ip}");
        assert!(macs.insert(mac.to_string()), "duplicate MAC {mac}");
        assert!(ip.starts_with("10.20."), "{ip}");
        assert_ne!(ip, "10.20.0.1", "gateway allocated");
    }
    let stored: HashSet<String> = ports.iter().map(|p| p.dynamic_addresses.clone()).collect();
    let answered: HashSet<String> = replied.into_iter().collect();
    assert_eq!(stored, answered, "replies match what is stored");
    // Exactly one claim per allocated IP and MAC.
    let keys: Vec<String> = dump(&etcd.endpoint(), &prefix)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let ip_claims = keys
        .iter()
        .filter(|k| k.contains("/claims/ip/big/"))
        .count();
    let mac_claims = keys
        .iter()
        .filter(|k| k.contains("/claims/mac/big/"))
        .count();
    assert_eq!((ip_claims, mac_claims), (PORTS, PORTS));
}

fn obj(k: object::Kind) -> Object {
    Object { kind: Some(k) }
}

fn insert(o: Object, may_exist: bool) -> Op {
    Op {
        op: Some(op::Op::Insert(InsertOp {
            object: Some(o),
            may_exist,
        })),
    }
}

/// 200 chains of the shape `ls-add a -- lsp-add a pN -- lsp-set-addresses pN dynamic --
/// lsp-add a qN` (with --may-exist on the ls-add), half through each of two controller
/// processes at once: each chain is one revision, and no IP, MAC or port key is handed out
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_run_concurrent_chains_without_duplicates() {
    const CHAINS: usize = 200;
    let etcd = start_etcd();
    let prefix = unique_prefix("chains");
    let a = BinCtl::start(&etcd.endpoint(), &prefix);
    let b = BinCtl::start(&etcd.endpoint(), &prefix);
    let ca = nb(&a.url()).await;
    let cb = nb(&b.url()).await;
    for client in [ca.clone(), cb.clone()] {
        let ok = eventually(Duration::from_secs(10), || {
            let mut cl = client.clone();
            async move { cl.list_switches(ListSwitchesRequest {}).await.is_ok() }
        })
        .await;
        assert!(ok, "controller did not come up");
    }
    let mut tasks = Vec::new();
    for i in 0..CHAINS {
        let mut client = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        tasks.push(tokio::spawn(async move {
            let port = |name: String| {
                obj(object::Kind::LogicalSwitchPort(LogicalSwitchPort {
                    name,
                    switch_name: "a".into(),
                    ..Default::default()
                }))
            };
            let ops = vec![
                insert(
                    obj(object::Kind::LogicalSwitch(LogicalSwitch {
                        name: "a".into(),
                        subnet: "10.30.0.0/22".into(),
                        ..Default::default()
                    })),
                    true,
                ),
                insert(port(format!("p{i}")), false),
                Op {
                    op: Some(op::Op::Update(UpdateOp {
                        kind: "Logical_Switch_Port".into(),
                        name: format!("p{i}"),
                        columns: vec![ColumnOp {
                            action: column_op::Action::Set as i32,
                            column: "addresses".into(),
                            key: String::new(),
                            values: vec!["dynamic".into()],
                        }],
                        if_exists: false,
                    })),
                },
                insert(port(format!("q{i}")), false),
            ];
            client
                .transact(TransactRequest {
                    ops,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut revisions = HashSet::new();
    for t in tasks {
        let r = t.await.expect("task").expect("transact");
        assert_eq!(r.results.len(), 4);
        assert!(
            revisions.insert(r.revision),
            "two chains share revision {}",
            r.revision
        );
    }
    let mut c = ca.clone();
    let ports = c
        .list_ports(ListPortsRequest {
            switch_name: "a".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .ports;
    assert_eq!(ports.len(), 2 * CHAINS);
    let mut ips = HashSet::new();
    let mut macs = HashSet::new();
    let mut keys = HashSet::new();
    for p in &ports {
        assert!(
            keys.insert(p.tunnel_key),
            "duplicate port key {}",
            p.tunnel_key
        );
        if p.name.starts_with('p') {
            let (mac, ip) = p.dynamic_addresses.split_once(' ').expect("allocated");
            assert!(ips.insert(ip.to_string()), "duplicate IP {ip}");
            assert!(macs.insert(mac.to_string()), "duplicate MAC {mac}");
        }
    }
    assert_eq!(ips.len(), CHAINS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_gives_unavailable_then_recovers() {
    let mut etcd = start_etcd();
    let prefix = unique_prefix("outage");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    let mut s = sb(&ctl.url()).await;
    c.create_switch(CreateSwitchRequest {
        switch: Some(LogicalSwitch {
            name: "sw".into(),
            subnet: "10.0.0.0/24".into(),
            ..Default::default()
        }),
        options: None,
    })
    .await
    .unwrap();
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
    let first = tokio::time::timeout(Duration::from_secs(5), st.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.snapshot);

    etcd.stop();
    let e = c.list_switches(ListSwitchesRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    assert!(e.message().contains("etcd unavailable"), "{}", e.message());
    let e = c
        .create_port(CreatePortRequest {
            port: Some(LogicalSwitchPort {
                name: "p1".into(),
                switch_name: "sw".into(),
                addresses: vec!["dynamic".into()],
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    let e = c.show(ShowRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    let e = s
        .subscribe(SubscribeRequest {
            chassis: Some(Chassis {
                name: "hv2".into(),
                encap_ip: "192.168.0.2".into(),
                encap_types: vec!["geneve".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    let e = c
        .sync(SyncRequest {
            revision: 0,
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);

    etcd.restart().expect("restart etcd");
    let recovered = eventually(Duration::from_secs(15), || {
        let mut c = c.clone();
        async move {
            c.create_port(CreatePortRequest {
                port: Some(LogicalSwitchPort {
                    name: "p1".into(),
                    switch_name: "sw".into(),
                    addresses: vec!["dynamic".into()],
                    ..Default::default()
                }),
                options: Some(WriteOptions {
                    may_exist: true,
                    ..Default::default()
                }),
            })
            .await
            .is_ok()
        }
    })
    .await;
    assert!(recovered, "controller did not recover after etcd came back");
    let show = c.show(ShowRequest {}).await.unwrap().into_inner();
    assert_eq!(show.switches[0].ports.len(), 1);
    // The open stream survives the outage and sees the new port's revision.
    let mut saw = false;
    for _ in 0..20 {
        match tokio::time::timeout(Duration::from_secs(5), st.message()).await {
            Ok(Ok(Some(u))) if u.revision >= show.revision => {
                saw = true;
                break;
            }
            Ok(Ok(Some(_))) => continue,
            other => panic!("stream broken after outage: {other:?}"),
        }
    }
    assert!(saw, "stream did not catch up after the outage");
    ctl.stop().await;
}
