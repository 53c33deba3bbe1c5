//! ACLs, port groups and address sets against a real etcd: every bad input of the issue is
//! refused with the right code and a message naming the field (or column) and the value,
//! leaving etcd byte-for-byte unchanged; duplicates and `--may-exist`; bulk `acl-del`; the
//! cascade of a switch or port group delete and the restrict of a referenced set or group;
//! one ACL is one etcd key.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;
use tonic::Code;
use weft_proto::model::acl::{acl_key, Entity};
use weft_proto::v1::*;

fn obj(k: object::Kind) -> Object {
    Object { kind: Some(k) }
}

fn ins(k: object::Kind, may_exist: bool) -> Op {
    Op {
        op: Some(op::Op::Insert(InsertOp {
            object: Some(obj(k)),
            may_exist,
        })),
    }
}

fn del(kind: &str, name: &str) -> Op {
    Op {
        op: Some(op::Op::Delete(DeleteOp {
            kind: kind.into(),
            name: name.into(),
            if_exists: false,
        })),
    }
}

fn acl(switch: &str, pg: &str, dir: &str, prio: u32, m: &str, verdict: &str) -> object::Kind {
    let key = match weft_proto::model::acl::parse_direction(dir) {
        Ok(d) if prio <= 32767 => {
            let ent = if pg.is_empty() {
                Entity::Switch(switch.into())
            } else {
                Entity::PortGroup(pg.into())
            };
            acl_key(&ent, d, prio, m)
        }
        _ => String::new(),
    };
    object::Kind::Acl(Acl {
        key,
        switch: switch.into(),
        port_group: pg.into(),
        direction: dir.into(),
        priority: prio,
        r#match: m.into(),
        action: verdict.into(),
        ..Default::default()
    })
}

fn meter(name: &str, action: &str, rate: u32, unit: &str) -> object::Kind {
    object::Kind::Meter(weft_proto::v1::Meter {
        name: name.into(),
        action: action.into(),
        rate,
        unit: unit.into(),
        ..Default::default()
    })
}

fn tx(ops: Vec<Op>) -> TransactRequest {
    TransactRequest {
        ops,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_bad_input_is_refused_naming_field_and_value_and_changes_nothing() {
    let etcd = start_etcd();
    let prefix = unique_prefix("acl");
    let mut cfg = config(&etcd.endpoint(), &prefix);
    cfg.acl_max_flows = 500;
    let ctl = InProc::start(cfg).await;
    let mut c = nb(&ctl.url()).await;
    let setup = vec![
        ins(
            object::Kind::LogicalSwitch(LogicalSwitch {
                name: "sw".into(),
                subnet: "10.0.0.0/24".into(),
                ..Default::default()
            }),
            false,
        ),
        ins(
            object::Kind::LogicalSwitchPort(LogicalSwitchPort {
                name: "w1".into(),
                switch_name: "sw".into(),
                addresses: vec!["0a:00:00:00:00:11 10.0.0.11".into()],
                ..Default::default()
            }),
            false,
        ),
        ins(
            object::Kind::PortGroup(PortGroup {
                name: "web".into(),
                ports: vec!["w1".into()],
                ..Default::default()
            }),
            false,
        ),
        ins(
            object::Kind::AddressSet(AddressSet {
                name: "big".into(),
                addresses: (0..300)
                    .map(|i| format!("10.9.{}.{}", i / 200, i % 200 + 1))
                    .collect(),
                ..Default::default()
            }),
            false,
        ),
        ins(
            acl(
                "",
                "web",
                "to-lport",
                1000,
                "tcp.dst == 80",
                "allow-related",
            ),
            false,
        ),
    ];
    c.transact(tx(setup)).await.unwrap();
    let before = dump(&etcd.endpoint(), &prefix).await;
    let cases: Vec<(Op, Code, Vec<&str>)> = vec![
        (
            ins(
                acl("sw", "", "to-lport", 10, "tcp.dst == 80 &&", "drop"),
                false,
            ),
            Code::InvalidArgument,
            vec!["acl.match", "column", "ends too early"],
        ),
        (
            ins(
                acl("sw", "", "to-lport", 10, "tcp.dts == 80", "drop"),
                false,
            ),
            Code::InvalidArgument,
            vec!["acl.match", "tcp.dts", "column 1"],
        ),
        (
            ins(
                acl("sw", "", "to-lport", 10, "tcp.dst == 10.0.0.1", "drop"),
                false,
            ),
            Code::InvalidArgument,
            vec!["acl.match", "10.0.0.1", "column 12"],
        ),
        (
            ins(
                acl("sw", "", "to-lport", 10, "ip4.src == $nosuch", "drop"),
                false,
            ),
            Code::NotFound,
            vec!["address set", "nosuch"],
        ),
        (
            ins(
                acl("sw", "", "to-lport", 10, "outport == @nopg", "drop"),
                false,
            ),
            Code::NotFound,
            vec!["port group", "nopg"],
        ),
        (
            ins(acl("", "nopg", "to-lport", 10, "ip", "drop"), false),
            Code::NotFound,
            vec!["nopg"],
        ),
        (
            ins(acl("sw", "", "to-lport", 32768, "ip", "drop"), false),
            Code::InvalidArgument,
            vec!["acl.priority", "32768"],
        ),
        (
            ins(acl("sw", "", "to-lport", 10, "ip", "accept"), false),
            Code::InvalidArgument,
            vec!["acl.action", "accept"],
        ),
        (
            ins(acl("sw", "", "sideways", 10, "ip", "drop"), false),
            Code::InvalidArgument,
            vec!["acl.direction", "sideways"],
        ),
        (
            ins(acl("nosw", "", "to-lport", 10, "ip", "drop"), false),
            Code::NotFound,
            vec!["nosw"],
        ),
        (
            ins(
                acl(
                    "",
                    "web",
                    "to-lport",
                    1000,
                    "tcp.dst == 80",
                    "allow-related",
                ),
                false,
            ),
            Code::AlreadyExists,
            vec!["already exists", "tcp.dst == 80"],
        ),
        (
            ins(
                object::Kind::AddressSet(AddressSet {
                    name: "bad".into(),
                    addresses: vec!["10.0.0.1".into(), "10.0.0.300".into()],
                    ..Default::default()
                }),
                false,
            ),
            Code::InvalidArgument,
            vec!["address_set.addresses[1]", "10.0.0.300"],
        ),
        (
            // 300 × 2 ports as a plain product would be 600; conjunction: 303. With a
            // third multi-valued dimension the sum passes 500.
            ins(
                acl(
                    "sw",
                    "",
                    "to-lport",
                    10,
                    "ip4.src == $big && ip4.dst == $big && tcp.dst == {80, 443}",
                    "drop",
                ),
                false,
            ),
            Code::InvalidArgument,
            vec!["acl.match", "603", "at most 500"],
        ),
        (
            ins(
                object::Kind::PortGroup(PortGroup {
                    name: "db".into(),
                    ports: vec!["w1".into(), "ghost".into()],
                    ..Default::default()
                }),
                false,
            ),
            Code::NotFound,
            vec!["ghost", "port_group.ports[1]"],
        ),
        (del("Address_Set", "nosuch"), Code::NotFound, vec!["nosuch"]),
        // Meters (meter-add NAME ACTION RATE UNIT [BURST]).
        (
            ins(meter("m1", "drop", 10, "pps"), false),
            Code::InvalidArgument,
            vec!["meter.unit", "pps"],
        ),
        (
            ins(meter("m1", "drop", 0, "pktps"), false),
            Code::InvalidArgument,
            vec!["meter.rate", "0"],
        ),
        (
            ins(meter("m1", "remark", 10, "kbps"), false),
            Code::InvalidArgument,
            vec!["meter.action", "remark"],
        ),
        (
            ins(meter("m 1", "drop", 10, "kbps"), false),
            Code::InvalidArgument,
            vec!["meter.name", "m 1"],
        ),
        (del("Meter", "nosuch"), Code::NotFound, vec!["nosuch"]),
    ];
    for (i, (op, code, needles)) in cases.into_iter().enumerate() {
        let e = c.transact(tx(vec![op])).await.expect_err("must fail");
        assert_eq!(e.code(), code, "case {i}: {}", e.message());
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
    // --may-exist: the duplicate is no error and changes nothing.
    c.transact(tx(vec![ins(
        acl(
            "",
            "web",
            "to-lport",
            1000,
            "tcp.dst == 80",
            "allow-related",
        ),
        true,
    )]))
    .await
    .unwrap();
    assert_eq!(dump(&etcd.endpoint(), &prefix).await, before);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_one_key_each_and_follow_their_entity() {
    let etcd = start_etcd();
    let prefix = unique_prefix("aclkeys");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    c.transact(tx(vec![
        ins(
            object::Kind::LogicalSwitch(LogicalSwitch {
                name: "sw".into(),
                ..Default::default()
            }),
            false,
        ),
        ins(
            object::Kind::LogicalSwitchPort(LogicalSwitchPort {
                name: "w1".into(),
                switch_name: "sw".into(),
                ..Default::default()
            }),
            false,
        ),
        ins(
            object::Kind::PortGroup(PortGroup {
                name: "web".into(),
                ports: vec!["w1".into()],
                ..Default::default()
            }),
            false,
        ),
        ins(
            object::Kind::AddressSet(AddressSet {
                name: "clients".into(),
                addresses: vec!["10.0.0.0/24".into()],
                ..Default::default()
            }),
            false,
        ),
    ]))
    .await
    .unwrap();
    let count = |d: &[(String, Vec<u8>)]| d.iter().filter(|(k, _)| k.contains("/nb/acls/")).count();
    let base = dump(&etcd.endpoint(), &prefix).await.len();
    for p in 0..5 {
        c.transact(tx(vec![ins(
            acl("sw", "", "from-lport", p, "ip4.src == $clients", "allow"),
            false,
        )]))
        .await
        .unwrap();
    }
    c.transact(tx(vec![ins(
        acl(
            "",
            "web",
            "to-lport",
            100,
            "ip4.src == $web_ip4 || tcp.dst == 22",
            "drop",
        ),
        false,
    )]))
    .await
    .unwrap();
    let d = dump(&etcd.endpoint(), &prefix).await;
    assert_eq!(d.len(), base + 6, "one key per ACL, nothing else rewritten");
    assert_eq!(count(&d), 6);
    // A referenced address set or port group cannot go.
    let e = c
        .transact(tx(vec![del("Address_Set", "clients")]))
        .await
        .expect_err("restricted");
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    assert!(e.message().contains("clients"), "{}", e.message());
    // acl-del SWITCH DIRECTION: the key range.
    c.transact(tx(vec![del("ACL", "ls:sw:to-lport:")]))
        .await
        .unwrap();
    assert_eq!(count(&dump(&etcd.endpoint(), &prefix).await), 6);
    c.transact(tx(vec![del("ACL", "ls:sw:from-lport:")]))
        .await
        .unwrap();
    assert_eq!(count(&dump(&etcd.endpoint(), &prefix).await), 1);
    let e = c
        .transact(tx(vec![del("ACL", "ls:nosw:")]))
        .await
        .expect_err("no switch");
    assert_eq!(e.code(), Code::NotFound);
    // Deleting the port group takes its ACL with it; then the set can go.
    c.transact(tx(vec![del("Port_Group", "web")]))
        .await
        .unwrap();
    assert_eq!(count(&dump(&etcd.endpoint(), &prefix).await), 0);
    c.transact(tx(vec![del("Address_Set", "clients")]))
        .await
        .unwrap();
    // A switch delete cascades to its ACLs.
    c.transact(tx(vec![ins(
        acl("sw", "", "to-lport", 1, "ip", "drop"),
        false,
    )]))
    .await
    .unwrap();
    c.delete_switch(DeleteRequest {
        name: "sw".into(),
        options: None,
    })
    .await
    .unwrap();
    assert_eq!(count(&dump(&etcd.endpoint(), &prefix).await), 0);
    ctl.stop().await;
}
