//! NAT rules and gateway chassis against a real etcd: every bad input of the issue is
//! refused with InvalidArgument and a message naming the field and the value, leaving etcd
//! byte-for-byte unchanged (a NAT external IP on no gateway port's network, a duplicate NAT,
//! a gateway chassis on a port with no localnet path, malformed IPs, MACs, types and
//! priorities); good ones are stored as ovn-nbctl would.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;
use tonic::Code;
use weft_proto::v1::*;

fn ins(k: object::Kind) -> Op {
    Op {
        op: Some(op::Op::Insert(InsertOp {
            object: Some(Object { kind: Some(k) }),
            may_exist: false,
        })),
    }
}

fn col(kind: &str, name: &str, action: column_op::Action, column: &str, v: &str) -> Op {
    Op {
        op: Some(op::Op::Update(UpdateOp {
            kind: kind.into(),
            name: name.into(),
            columns: vec![ColumnOp {
                action: action as i32,
                column: column.into(),
                key: String::new(),
                values: vec![v.into()],
            }],
            if_exists: false,
        })),
    }
}

fn nat_add(v: &str) -> Op {
    col("Logical_Router", "lr1", column_op::Action::Add, "nat", v)
}

fn gw_set(port: &str, v: &str) -> Op {
    col(
        "Logical_Router_Port",
        port,
        column_op::Action::Add,
        "gateway_chassis",
        v,
    )
}

fn tx(ops: Vec<Op>) -> TransactRequest {
    TransactRequest {
        ops,
        ..Default::default()
    }
}

fn lsp(name: &str, sw: &str, t: &str, opt: (&str, &str)) -> object::Kind {
    object::Kind::LogicalSwitchPort(LogicalSwitchPort {
        name: name.into(),
        switch_name: sw.into(),
        r#type: t.into(),
        addresses: if t == "router" {
            vec!["router".into()]
        } else {
            vec![]
        },
        options: [(opt.0.to_string(), opt.1.to_string())].into(),
        ..Default::default()
    })
}

fn lrp(name: &str, mac: &str, net: &str) -> object::Kind {
    object::Kind::LogicalRouterPort(LogicalRouterPort {
        name: name.into(),
        router: "lr1".into(),
        mac: mac.into(),
        networks: vec![net.into()],
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_and_gateway_bad_input_is_refused_and_changes_nothing() {
    let etcd = start_etcd();
    let prefix = unique_prefix("nat");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    let sw = |n: &str, s: &str| {
        ins(object::Kind::LogicalSwitch(LogicalSwitch {
            name: n.into(),
            subnet: s.into(),
            ..Default::default()
        }))
    };
    let setup = vec![
        ins(object::Kind::LogicalRouter(LogicalRouter {
            name: "lr1".into(),
            ..Default::default()
        })),
        sw("ext", "172.16.0.0/24"),
        sw("ls1", "10.1.0.0/24"),
        ins(lrp("lr1-ext", "0a:00:00:00:10:01", "172.16.0.1/24")),
        ins(lrp("lr1-ls1", "0a:00:00:00:11:01", "10.1.0.1/24")),
        ins(lsp("ext-lr1", "ext", "router", ("router-port", "lr1-ext"))),
        ins(lsp("ls1-lr1", "ls1", "router", ("router-port", "lr1-ls1"))),
        ins(lsp(
            "ln-ext",
            "ext",
            "localnet",
            ("network_name", "physnet"),
        )),
    ];
    c.transact(tx(setup)).await.unwrap();

    // A gateway chassis on a port with no localnet path (ls1 has no localnet port).
    let before = dump(&etcd.endpoint(), &prefix).await;
    let e = c
        .transact(tx(vec![gw_set("lr1-ls1", "hv1 10")]))
        .await
        .expect_err("no localnet path");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    for n in ["router_port.gateway_chassis", "hv1", "localnet"] {
        assert!(e.message().contains(n), "{n:?} not in {:?}", e.message());
    }
    assert_eq!(dump(&etcd.endpoint(), &prefix).await, before);

    // A NAT before any gateway port: its external IP is on no gateway port's network.
    let e = c
        .transact(tx(vec![nat_add("snat 172.16.0.1 10.1.0.0/24")]))
        .await
        .expect_err("no gateway port");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    for n in ["nat[0].external_ip", "172.16.0.1", "gateway port"] {
        assert!(e.message().contains(n), "{n:?} not in {:?}", e.message());
    }
    assert_eq!(dump(&etcd.endpoint(), &prefix).await, before);

    // With a gateway chassis (and a bad priority refused first).
    let e = c
        .transact(tx(vec![gw_set("lr1-ext", "hv1 40000")]))
        .await
        .expect_err("bad priority");
    assert!(
        e.message().contains("priority") && e.message().contains("40000"),
        "{}",
        e.message()
    );
    assert_eq!(dump(&etcd.endpoint(), &prefix).await, before);
    c.transact(tx(vec![
        gw_set("lr1-ext", "hv1 20"),
        gw_set("lr1-ext", "hv2 10"),
    ]))
    .await
    .unwrap();
    c.transact(tx(vec![
        nat_add("snat 172.16.0.1 10.1.0.0/24"),
        nat_add("dnat_and_snat 172.16.0.50 10.1.0.5 p5 0a:00:00:00:00:05"),
    ]))
    .await
    .unwrap();

    let before = dump(&etcd.endpoint(), &prefix).await;
    let cases: Vec<(Op, Vec<&str>)> = vec![
        (
            nat_add("snat 172.16.0.1 10.1.0.0/24"),
            vec!["already exists", "172.16.0.1"],
        ),
        (
            nat_add("snat 172.16.0.2 10.1.0.0/24"),
            vec!["logical_ip", "10.1.0.0/24"],
        ),
        (
            nat_add("dnat 172.16.0.50 10.1.0.6"),
            vec!["external_ip", "172.16.0.50"],
        ),
        (
            nat_add("snat 192.168.9.1 10.2.0.0/24"),
            vec!["external_ip", "192.168.9.1", "gateway port"],
        ),
        (
            nat_add("masquerade 172.16.0.9 10.1.0.0/24"),
            vec!["type", "masquerade"],
        ),
        (
            nat_add("snat 172.16.0.300 10.1.0.0/24"),
            vec!["external_ip", "172.16.0.300"],
        ),
        (
            nat_add("dnat 172.16.0.9 10.1.0.0/24"),
            vec!["logical_ip", "10.1.0.0/24"],
        ),
        (
            nat_add("dnat_and_snat 172.16.0.9 10.1.0.9 p9 01:00:5e:00:00:01"),
            vec!["external_mac", "01:00:5e:00:00:01"],
        ),
        (
            nat_add("dnat_and_snat 172.16.0.9 10.1.0.9 p9 zz:00:00:00:00:01"),
            vec!["external_mac", "zz:00:00:00:00:01"],
        ),
        (
            col(
                "Logical_Router",
                "lr1",
                column_op::Action::Remove,
                "nat",
                "snat 10.9.0.0/24",
            ),
            vec!["no matching NAT", "10.9.0.0/24"],
        ),
        (
            col(
                "Logical_Router_Port",
                "lr1-ext",
                column_op::Action::Remove,
                "gateway_chassis",
                "hv9",
            ),
            vec!["hv9", "is not added to logical port lr1-ext"],
        ),
        (
            gw_set("lr1-ext", "bad/name 5"),
            vec!["chassis_name", "bad/name"],
        ),
    ];
    for (i, (op, needles)) in cases.into_iter().enumerate() {
        let e = c.transact(tx(vec![op])).await.expect_err("must fail");
        assert_eq!(e.code(), Code::InvalidArgument, "case {i}: {}", e.message());
        for n in needles {
            assert!(
                e.message().contains(n),
                "case {i}: {n:?} not in {:?}",
                e.message()
            );
        }
        assert_eq!(
            dump(&etcd.endpoint(), &prefix).await,
            before,
            "case {i} changed etcd"
        );
    }
    // --may-exist and --if-exists change nothing.
    c.transact(tx(vec![
        nat_add("--may-exist snat 172.16.0.1 10.1.0.0/24"),
        col(
            "Logical_Router",
            "lr1",
            column_op::Action::Remove,
            "nat",
            "--if-exists snat 10.9.0.0/24",
        ),
    ]))
    .await
    .unwrap();
    let r = c
        .list_objects(ListObjectsRequest {
            kind: "Logical_Router".into(),
            names: vec!["lr1".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let Some(object::Kind::LogicalRouter(lr)) =
        r.records[0].object.as_ref().and_then(|o| o.kind.clone())
    else {
        panic!("not a router")
    };
    assert_eq!(lr.nat.len(), 2, "{:?}", lr.nat);
    ctl.stop().await;
}
