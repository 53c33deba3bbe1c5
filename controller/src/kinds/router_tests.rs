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

// ---- router load balancers (lr-lb-add) and port mappings (lr-port-map-add) ----

fn lb_column_op(router: &str, action: Action, values: &[&str]) -> Op {
    Op {
        op: Some(op::Op::Update(UpdateOp {
            kind: "Logical_Router".into(),
            name: router.into(),
            columns: vec![ColumnOp {
                action: action as i32,
                column: "load_balancer".into(),
                key: String::new(),
                values: values.iter().map(|s| s.to_string()).collect(),
            }],
            if_exists: false,
        })),
    }
}

fn lbo(name: &str, vip: &str, backends: &str) -> Object {
    obj(object::Kind::LoadBalancer(weft_proto::v1::LoadBalancer {
        name: name.into(),
        vips: HashMap::from([(vip.to_string(), backends.to_string())]),
        ..Default::default()
    }))
}

fn pm_lb(router: &str, ext: &str, logical: &str, proto: &str) -> weft_proto::v1::LoadBalancer {
    weft_proto::model::port_map::PortMap::parse(router, ext, logical, proto)
        .unwrap()
        .to_load_balancer()
}

/// The two ops of `lr-port-map-add`.
fn port_map_ops(lb: weft_proto::v1::LoadBalancer, router: &str) -> Vec<Op> {
    let name = lb.name.clone();
    vec![
        insert(obj(object::Kind::LoadBalancer(lb)), false),
        lb_column_op(router, Action::Add, &[&name]),
    ]
}

async fn router_lbs(i: &Intent, router: &str) -> Vec<String> {
    i.load().await.unwrap().routers[router]
        .load_balancer
        .clone()
}

/// lr1 with an internal port (10.31.0.1/24) and a gateway port on 172.16.0.1/24 (gateway
/// chassis hv1), two LBs.
async fn gateway_router() -> Intent {
    let i = Intent::new(Arc::new(MemoryStore::new()), "/t");
    let mut localnet = router_lsp("ext", "ln-ext", "");
    if let Some(object::Kind::LogicalSwitchPort(p)) = &mut localnet.kind {
        p.r#type = "localnet".into();
        p.addresses = vec!["unknown".into()];
        p.options = HashMap::from([("network_name".to_string(), "physnet".to_string())]);
    }
    run(
        &i,
        &[
            insert(lr("lr1"), false),
            insert(lr("lr2"), false),
            insert(
                lrp("lr1", "lr1-in", "0a:00:00:00:08:01", &["10.31.0.1/24"], ""),
                false,
            ),
            insert(
                lrp(
                    "lr1",
                    "lr1-ext",
                    "0a:00:00:00:09:01",
                    &["172.16.0.1/24"],
                    "",
                ),
                false,
            ),
            insert(ls("ext"), false),
            insert(router_lsp("ext", "ext-lr1", "lr1-ext"), false),
            insert(localnet, false),
            Op {
                op: Some(op::Op::Update(UpdateOp {
                    kind: "Logical_Router_Port".into(),
                    name: "lr1-ext".into(),
                    columns: vec![ColumnOp {
                        action: Action::Add as i32,
                        column: "gateway_chassis".into(),
                        key: String::new(),
                        values: vec!["hv1 10".into()],
                    }],
                    if_exists: false,
                })),
            },
            insert(
                lbo("web", "172.16.0.50:80", "10.31.0.5:80,10.31.0.6:80"),
                false,
            ),
            insert(lbo("dns", "172.16.0.53:53", "10.31.0.7:53"), false),
        ],
    )
    .await;
    i
}

#[tokio::test]
async fn lr_lb_add_del_and_refusals_leave_etcd_unchanged() {
    let i = gateway_router().await;
    run(&i, &[lb_column_op("lr1", Action::Add, &["web", "dns"])]).await;
    assert_eq!(router_lbs(&i, "lr1").await, ["dns", "web"]);
    // Adding one again is no error and no change (--may-exist).
    run(&i, &[lb_column_op("lr1", Action::Add, &["web"])]).await;
    assert_eq!(router_lbs(&i, "lr1").await, ["dns", "web"]);
    let before = dump(&i).await;
    for (ops, needles) in [
        (
            vec![lb_column_op("lr1", Action::Add, &["nope"])],
            &["load_balancer", "nope", "not found"][..],
        ),
        (
            vec![lb_column_op("lr9", Action::Add, &["web"])],
            &["lr9", "not found"][..],
        ),
        (
            vec![lb_column_op("lr1", Action::Add, &["bad/name"])],
            &["router.load_balancer[", "bad/name"][..],
        ),
    ] {
        let e = i.transact(&ops, false, Oversize::Refuse).await.unwrap_err();
        let msg = e.clone().with_op_prefix().to_string();
        for n in needles {
            assert!(msg.contains(n), "{msg:?} lacks {n:?}");
        }
        assert_eq!(dump(&i).await, before, "{msg}");
    }
    run(&i, &[lb_column_op("lr1", Action::Remove, &["dns"])]).await;
    assert_eq!(router_lbs(&i, "lr1").await, ["web"]);
    // Deleting the LB removes it from the router, which stays.
    run(&i, &[delete("Load_Balancer", "web", false)]).await;
    assert!(router_lbs(&i, "lr1").await.is_empty());
    run(&i, &[lb_column_op("lr1", Action::Add, &["dns"])]).await;
    run(
        &i,
        &[Op {
            op: Some(op::Op::Update(UpdateOp {
                kind: "Logical_Router".into(),
                name: "lr1".into(),
                columns: vec![ColumnOp {
                    action: Action::Clear as i32,
                    column: "load_balancer".into(),
                    key: String::new(),
                    values: vec![],
                }],
                if_exists: false,
            })),
        }],
    )
    .await;
    assert!(router_lbs(&i, "lr1").await.is_empty());
}

#[tokio::test]
async fn port_maps_are_checked_by_the_controller() {
    let i = gateway_router().await;
    let good = pm_lb("lr1", "172.16.0.10:8080", "10.31.0.5:80", "tcp");
    let name = good.name.clone();
    run(&i, &port_map_ops(good.clone(), "lr1")).await;
    assert_eq!(router_lbs(&i, "lr1").await, std::slice::from_ref(&name));
    // The same external IP and port over udp is another mapping.
    run(
        &i,
        &port_map_ops(
            pm_lb("lr1", "172.16.0.10:8080", "10.31.0.5:80", "udp"),
            "lr1",
        ),
    )
    .await;
    let before = dump(&i).await;
    let mut bad_port = good.clone();
    bad_port.name = "pm-lr1-172.16.0.10-0-tcp".into();
    bad_port.vips = HashMap::from([("172.16.0.10:0".into(), "10.31.0.5:80".into())]);
    let mut bad_proto = pm_lb("lr1", "172.16.0.10:9090", "10.31.0.5:80", "tcp");
    bad_proto.protocol = "sctp".into();
    let mut two_backends = pm_lb("lr1", "172.16.0.10:9091", "10.31.0.5:80", "tcp");
    two_backends.vips = HashMap::from([(
        "172.16.0.10:9091".into(),
        "10.31.0.5:80,10.31.0.6:80".into(),
    )]);
    let cases: Vec<(Vec<Op>, Vec<&str>)> = vec![
        // An external IP on no gateway port network (10.31.0.0/24 is on a plain port).
        (
            port_map_ops(
                pm_lb("lr1", "192.168.9.9:8080", "10.31.0.5:80", "tcp"),
                "lr1",
            ),
            vec!["port_map.external_ip", "192.168.9.9", "on no gateway port"],
        ),
        (
            port_map_ops(
                pm_lb("lr1", "10.31.0.99:8080", "10.31.0.5:80", "tcp"),
                "lr1",
            ),
            vec!["port_map.external_ip", "10.31.0.99", "on no gateway port"],
        ),
        // lr2 has no gateway port at all.
        (
            port_map_ops(
                pm_lb("lr2", "172.16.0.10:8080", "10.31.0.5:80", "tcp"),
                "lr2",
            ),
            vec!["port_map.external_ip", "172.16.0.10"],
        ),
        // A mapping made for another router.
        (
            port_map_ops(
                pm_lb("lr2", "172.16.0.11:8080", "10.31.0.5:80", "tcp"),
                "lr1",
            ),
            vec!["load_balancer[", "belongs to router \"lr2\""],
        ),
        // Duplicate: the same external IP, port and protocol.
        (
            port_map_ops(
                pm_lb("lr1", "172.16.0.10:8080", "10.31.0.9:80", "tcp"),
                "lr1",
            ),
            vec![
                "port_map.external",
                "172.16.0.10:8080 tcp",
                "already maps it",
            ],
        ),
        (port_map_ops(bad_port, "lr1"), vec!["172.16.0.10:0"]),
        (
            port_map_ops(bad_proto, "lr1"),
            vec!["port_map.protocol", "sctp"],
        ),
        (
            port_map_ops(two_backends, "lr1"),
            vec!["port_map.logical", "10.31.0.5:80,10.31.0.6:80"],
        ),
    ];
    for (ops, needles) in cases {
        let e = i.transact(&ops, false, Oversize::Refuse).await.unwrap_err();
        let msg = e.clone().with_op_prefix().to_string();
        for n in &needles {
            assert!(msg.contains(n), "{msg:?} lacks {n:?}");
        }
        assert_eq!(dump(&i).await, before, "{msg}");
    }
    // lr-port-map-del: the LB goes, and with it the router's reference.
    run(&i, &[delete("Load_Balancer", &name, false)]).await;
    assert_eq!(router_lbs(&i, "lr1").await, ["pm-lr1-172.16.0.10-8080-udp"]);
}
