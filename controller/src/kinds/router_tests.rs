//! Router, router port and router-type switch port rules on the in-memory store: static
//! routes with ovn-nbctl's lr-route-add/del semantics, and every refused router input
//! leaving the store byte-identical.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use weft_proto::v1::{
    column_op::Action, object, op, ColumnOp, LogicalRouter, LogicalRouterPort, LogicalSwitch,
    LogicalSwitchPort, Object, Op, UpdateOp,
};

use crate::intent::{delete, insert, Intent};
use crate::objects::transact::Oversize;
use crate::store::memory::MemoryStore;

fn obj(k: object::Kind) -> Object {
    crate::objects::object(k)
}

fn lr(name: &str) -> Object {
    obj(object::Kind::LogicalRouter(LogicalRouter {
        name: name.into(),
        ..Default::default()
    }))
}

fn lrp(router: &str, name: &str, mac: &str, nets: &[&str], peer: &str) -> Object {
    obj(object::Kind::LogicalRouterPort(LogicalRouterPort {
        name: name.into(),
        router: router.into(),
        mac: mac.into(),
        networks: nets.iter().map(|s| s.to_string()).collect(),
        peer: peer.into(),
        ..Default::default()
    }))
}

fn ls(name: &str) -> Object {
    obj(object::Kind::LogicalSwitch(LogicalSwitch {
        name: name.into(),
        ..Default::default()
    }))
}

fn router_lsp(sw: &str, name: &str, rp: &str) -> Object {
    obj(object::Kind::LogicalSwitchPort(LogicalSwitchPort {
        name: name.into(),
        switch_name: sw.into(),
        r#type: "router".into(),
        addresses: vec!["router".into()],
        options: HashMap::from([("router-port".to_string(), rp.to_string())]),
        ..Default::default()
    }))
}

fn routes_op(router: &str, action: Action, values: &[&str]) -> Op {
    Op {
        op: Some(op::Op::Update(UpdateOp {
            kind: "Logical_Router".into(),
            name: router.into(),
            columns: vec![ColumnOp {
                action: action as i32,
                column: "static_routes".into(),
                key: String::new(),
                values: values.iter().map(|s| s.to_string()).collect(),
            }],
            if_exists: false,
        })),
    }
}

async fn dump(i: &Intent) -> Vec<(String, Vec<u8>)> {
    i.store()
        .range("/")
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
}

async fn run(i: &Intent, ops: &[Op]) -> crate::objects::transact::Outcome {
    i.transact(ops, false, Oversize::Refuse).await.unwrap()
}

async fn routes_of(i: &Intent, router: &str) -> Vec<String> {
    let st = i.load().await.unwrap();
    st.routers[router]
        .static_routes
        .iter()
        .map(|r| {
            weft_proto::model::route::StaticRoute::from_message("r", r)
                .unwrap()
                .to_text()
        })
        .collect()
}

/// lr1 with ports on 10.0.1.0/24 and 10.0.2.0/24.
async fn router() -> Intent {
    let i = Intent::new(Arc::new(MemoryStore::new()), "/t");
    run(
        &i,
        &[
            insert(lr("lr1"), false),
            insert(
                lrp("lr1", "lr1-a", "0a:00:00:00:01:01", &["10.0.1.1/24"], ""),
                false,
            ),
            insert(
                lrp("lr1", "lr1-b", "0a:00:00:00:02:01", &["10.0.2.1/24"], ""),
                false,
            ),
            insert(lr("lr2"), false),
            insert(
                lrp(
                    "lr2",
                    "lr2-x",
                    "0a:00:00:00:03:01",
                    &["10.0.1.1/24"],
                    "lr1-b",
                ),
                false,
            ),
            insert(ls("sw"), false),
        ],
    )
    .await;
    i
}

#[tokio::test]
async fn routes_add_ecmp_and_delete_as_ovn_nbctl() {
    let i = router().await;
    run(
        &i,
        &[
            routes_op(
                "lr1",
                Action::Add,
                &["--policy=dst-ip 10.9.7.7/16 10.0.2.5"],
            ),
            routes_op(
                "lr1",
                Action::Add,
                &["--ecmp --policy=dst-ip 10.9.0.0/16 10.0.2.6"],
            ),
            // Another network via an explicit port: no connected network needed.
            routes_op(
                "lr1",
                Action::Add,
                &["--policy=dst-ip 0.0.0.0/0 192.0.2.1 lr1-a"],
            ),
            routes_op(
                "lr1",
                Action::Add,
                &["--policy=src-ip 10.0.1.0/24 10.0.2.5"],
            ),
        ],
    )
    .await;
    assert_eq!(
        routes_of(&i, "lr1").await,
        [
            "10.9.0.0/16 10.0.2.5",
            "10.9.0.0/16 10.0.2.6",
            "0.0.0.0/0 192.0.2.1 lr1-a",
            "10.0.1.0/24 10.0.2.5 policy=src-ip",
        ]
    );
    // --may-exist replaces the next hop of a prefix.
    run(
        &i,
        &[routes_op(
            "lr1",
            Action::Add,
            &["--may-exist --policy=dst-ip 0.0.0.0/0 10.0.1.254"],
        )],
    )
    .await;
    assert!(routes_of(&i, "lr1")
        .await
        .contains(&"0.0.0.0/0 10.0.1.254".to_string()));
    // One next hop of the ECMP route, then the whole prefix (any policy).
    run(
        &i,
        &[routes_op("lr1", Action::Remove, &["10.9.0.0/16 10.0.2.6"])],
    )
    .await;
    assert_eq!(routes_of(&i, "lr1").await.len(), 3);
    run(&i, &[routes_op("lr1", Action::Remove, &["10.0.1.0/24"])]).await;
    assert_eq!(
        routes_of(&i, "lr1").await,
        ["10.9.0.0/16 10.0.2.5", "0.0.0.0/0 10.0.1.254"]
    );
    // A route whose port is later deleted stays (as in OVN); lr-del takes routes and ports.
    run(&i, &[delete("Logical_Router", "lr1", false)]).await;
    let st = i.load().await.unwrap();
    assert!(!st.routers.contains_key("lr1"));
    assert!(!st.router_ports.contains_key("lr1-a"));
    assert!(!st.router_ports.contains_key("lr1-b"));
}

#[tokio::test]
async fn bad_router_input_is_refused_and_changes_nothing() {
    let i = router().await;
    run(
        &i,
        &[
            routes_op("lr1", Action::Add, &["10.9.0.0/16 10.0.2.5"]),
            insert(router_lsp("sw", "sw-lr1", "lr1-a"), false),
        ],
    )
    .await;
    let before = dump(&i).await;
    let cases: Vec<(Vec<Op>, &str)> = vec![
        (
            vec![routes_op("lr1", Action::Add, &["10.8.0.0/16 172.16.0.1"])],
            "static_routes[1].nexthop \"172.16.0.1\": the next hop of route 10.8.0.0/16 172.16.0.1 is on no network of router \"lr1\"",
        ),
        (
            vec![routes_op("lr1", Action::Add, &["10.8.0.0/16 172.16.0.1 lr2-x"])],
            "static_routes[1].output_port \"lr2-x\": no router port of that name on router \"lr1\"",
        ),
        (
            vec![routes_op("lr1", Action::Add, &["10.9.0.0/16 10.0.2.6"])],
            "duplicate prefix: 10.9.0.0/16 (policy: dst-ip)",
        ),
        (
            vec![routes_op("lr1", Action::Add, &["--ecmp 10.9.0.0/16 10.0.2.5"])],
            "duplicate nexthop",
        ),
        (
            vec![routes_op("lr1", Action::Add, &["10.9.0.0/40 10.0.2.5"])],
            "10.9.0.0/40",
        ),
        (
            vec![routes_op("lr1", Action::Remove, &["10.7.0.0/16"])],
            "no matching route: policy 'any', prefix '10.7.0.0/16'",
        ),
        (
            vec![insert(
                lrp("lr1", "lr1-c", "0a:00:00:00:04:01", &["10.0.2.129/25"], ""),
                false,
            )],
            "router_port.networks[0] \"10.0.2.129/25\": overlaps network 10.0.2.1/24 of router port \"lr1-b\" on router \"lr1\"",
        ),
        (
            vec![insert(
                lrp("lr1", "lr1-c", "01:00:5e:00:00:01", &["10.0.3.1/24"], ""),
                false,
            )],
            "multicast",
        ),
        (
            vec![Op {
                op: Some(op::Op::Update(UpdateOp {
                    kind: "Logical_Router_Port".into(),
                    name: "lr1-a".into(),
                    columns: vec![ColumnOp {
                        action: Action::Set as i32,
                        column: "options".into(),
                        key: "gateway_mtu".into(),
                        values: vec!["67".into()],
                    }],
                    if_exists: false,
                })),
            }],
            "router_port.options:gateway_mtu \"67\": expected an MTU in 68..=65535",
        ),
        (
            vec![insert(router_lsp("sw", "sw-x", "nosuch"), false)],
            "port.options:router-port \"nosuch\": no such router port",
        ),
        (
            vec![insert(router_lsp("sw", "sw-y", "lr1-a"), false)],
            "router port \"lr1-a\" is already attached by switch port \"sw-lr1\"",
        ),
        (
            vec![insert(router_lsp("sw", "sw-z", "lr2-x"), false)],
            "router port \"lr2-x\" is already peered with router port \"lr1-b\"",
        ),
    ];
    for (ops, needle) in cases {
        let e = i.transact(&ops, false, Oversize::Refuse).await.unwrap_err();
        let msg = e.clone().with_op_prefix().to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        assert_eq!(dump(&i).await, before, "{msg}");
    }
    // The same port re-attaching its own router port is fine; a network that does not
    // overlap is fine.
    run(
        &i,
        &[insert(
            lrp("lr1", "lr1-c", "0a:00:00:00:04:01", &["10.0.3.1/24"], ""),
            false,
        )],
    )
    .await;
}
