//! Planner and Transact tests on the in-memory store: ops see earlier ops, one revision per
//! chain, a bad op anywhere changes nothing, claims, restrict/cascade, retries after a lost
//! race, chunked deletes, and the generic columns of every registered kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use weft_proto::v1::{
    column_op::Action, object, op, Chassis, ColumnOp, LogicalRouter, LogicalRouterPort,
    LogicalSwitch, LogicalSwitchPort, Object, Op, UpdateOp,
};

use super::transact::Oversize;
use crate::error::ApiError;
use crate::intent::{delete, insert, set, Intent, Limits};
use crate::kinds;
use crate::store::memory::MemoryStore;

fn intent() -> Intent {
    Intent::new(Arc::new(MemoryStore::new()), "/t")
}

fn ls(name: &str, subnet: &str) -> Object {
    super::object(object::Kind::LogicalSwitch(LogicalSwitch {
        name: name.into(),
        subnet: subnet.into(),
        ..Default::default()
    }))
}

fn lsp(sw: &str, name: &str, addresses: &[&str]) -> Object {
    super::object(object::Kind::LogicalSwitchPort(LogicalSwitchPort {
        name: name.into(),
        switch_name: sw.into(),
        addresses: addresses.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }))
}

fn lr(name: &str) -> Object {
    super::object(object::Kind::LogicalRouter(LogicalRouter {
        name: name.into(),
        ..Default::default()
    }))
}

fn lrp(router: &str, name: &str, mac: &str, net: &str) -> Object {
    super::object(object::Kind::LogicalRouterPort(LogicalRouterPort {
        name: name.into(),
        router: router.into(),
        mac: mac.into(),
        networks: vec![net.into()],
        ..Default::default()
    }))
}

fn update(kind: &str, name: &str, action: Action, column: &str, key: &str, values: &[&str]) -> Op {
    Op {
        op: Some(op::Op::Update(UpdateOp {
            kind: kind.into(),
            name: name.into(),
            columns: vec![ColumnOp {
                action: action as i32,
                column: column.into(),
                key: key.into(),
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

async fn run(i: &Intent, ops: &[Op]) -> super::transact::Outcome {
    i.transact(ops, false, Oversize::Refuse).await.unwrap()
}

fn port(o: &Option<Object>) -> LogicalSwitchPort {
    match o.as_ref().and_then(|o| o.kind.clone()) {
        Some(object::Kind::LogicalSwitchPort(p)) => p,
        other => panic!("not a port: {other:?}"),
    }
}

#[tokio::test]
async fn a_chain_is_one_revision_and_ops_see_earlier_ops() {
    let i = intent();
    let before = i.current_revision().await.unwrap();
    let ops = [
        insert(ls("a", "10.0.0.0/24"), false),
        insert(lsp("a", "p1", &[]), false),
        set(kinds::port::NAME, "p1", "addresses", vec!["dynamic".into()]),
        insert(lsp("a", "p2", &[]), false),
    ];
    let out = run(&i, &ops).await;
    assert!(out.committed);
    assert_eq!(
        out.revision,
        before + 1,
        "one etcd revision for the whole chain"
    );
    let p1 = port(&out.results[2].object);
    assert!(p1.dynamic_addresses.contains("10.0.0."), "{p1:?}");
    assert!(p1.tunnel_key >= 1);
    let st = i.load().await.unwrap();
    assert_eq!(st.ports.len(), 2);
    let ip = p1.dynamic_addresses.split(' ').nth(1).unwrap();
    assert_eq!(st.claims[&format!("claims/ip/a/{ip}")], "p1");
    assert!(st.switches["a"].tunnel_key >= 1);
}

/// The issue's own chain, on a switch without a subnet: `dynamic` gets a MAC only (as OVN).
#[tokio::test]
async fn dynamic_without_a_subnet_is_a_mac_only() {
    let i = intent();
    let out = run(
        &i,
        &[
            insert(ls("a", ""), false),
            insert(lsp("a", "p1", &[]), false),
            set(kinds::port::NAME, "p1", "addresses", vec!["dynamic".into()]),
            insert(lsp("a", "p2", &[]), false),
        ],
    )
    .await;
    let p1 = port(&out.results[2].object);
    assert_eq!(p1.dynamic_addresses.len(), 17, "{p1:?}");
    let st = i.load().await.unwrap();
    assert_eq!(
        st.claims[&format!("claims/mac/a/{}", p1.dynamic_addresses)],
        "p1"
    );
    assert_eq!(st.resolved["p1"].addresses[0].mac, p1.dynamic_addresses);
    assert!(st.resolved["p1"].addresses[0].ips.is_empty());
    // Setting the same addresses again keeps the MAC.
    let again = run(
        &i,
        &[set(
            kinds::port::NAME,
            "p1",
            "addresses",
            vec!["dynamic".into(), "unknown".into()],
        )],
    )
    .await;
    assert_eq!(
        port(&again.results[0].object).dynamic_addresses,
        p1.dynamic_addresses
    );
}

/// A kind kept in the generic object map: addresses normalised and checked, set semantics.
#[tokio::test]
async fn address_sets_normalise_and_validate() {
    let i = intent();
    let a = |addrs: &[&str]| {
        super::object(object::Kind::AddressSet(weft_proto::v1::AddressSet {
            name: if addrs.len() == 1 { "bad" } else { "web" }.into(),
            addresses: addrs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }))
    };
    let out = run(
        &i,
        &[insert(
            a(&["10.0.0.5/32", "10.0.1.7/24", "fd00::1", "10.0.0.5"]),
            false,
        )],
    )
    .await;
    let Some(object::Kind::AddressSet(s)) = out.results[0].object.clone().and_then(|o| o.kind)
    else {
        panic!("{out:?}")
    };
    assert_eq!(s.addresses, ["10.0.0.5", "10.0.1.0/24", "fd00::1"]);
    let e = i
        .transact(
            &[insert(a(&["10.0.0.300"]), false)],
            false,
            Oversize::Refuse,
        )
        .await
        .unwrap_err();
    assert!(e.error.to_string().contains("addresses[0]"), "{e:?}");
    run(
        &i,
        &[update(
            "as",
            "web",
            Action::Add,
            "addresses",
            "",
            &["10.9.9.9"],
        )],
    )
    .await;
    let st = i.load().await.unwrap();
    let k = super::by_name("Address_Set").unwrap();
    let v = k
        .get_column(&k.load(&st, "web").unwrap(), "addresses", &st)
        .unwrap();
    assert_eq!(
        v,
        super::ColumnValue::Set(vec![
            "10.0.0.5".into(),
            "10.0.1.0/24".into(),
            "fd00::1".into(),
            "10.9.9.9".into()
        ])
    );
}

#[tokio::test]
async fn a_bad_op_anywhere_changes_nothing() {
    let i = intent();
    run(&i, &[insert(ls("s", "10.0.0.0/24"), false)]).await;
    let before = dump(&i).await;
    let cases: Vec<(Vec<Op>, &str)> = vec![
        (
            vec![
                insert(lsp("s", "p1", &["dynamic"]), false),
                insert(lsp("s", "p2", &["0a:00:00:00:00:99 10.0.0.300"]), false),
            ],
            "10.0.0.300",
        ),
        (
            vec![
                insert(lsp("s", "p1", &[]), false),
                insert(lsp("s", "p1", &[]), false),
            ],
            "already exists",
        ),
        (
            vec![
                insert(lsp("s", "p1", &["0a:00:00:00:00:05 10.0.0.5"]), false),
                insert(lsp("s", "p2", &["0a:00:00:00:00:06 10.0.0.5"]), false),
            ],
            "IP 10.0.0.5 already used by port \"p1\"",
        ),
        (
            vec![
                insert(lsp("s", "p1", &[]), false),
                update(kinds::port::NAME, "p1", Action::Set, "nosuch", "", &["x"]),
            ],
            "nosuch",
        ),
        (
            vec![
                insert(lsp("s", "p1", &[]), false),
                delete("Logical_Flow", "x", false),
            ],
            "Logical_Flow",
        ),
        (
            vec![
                insert(lsp("s", "p1", &[]), false),
                update(
                    kinds::port::NAME,
                    "p1",
                    Action::Set,
                    "tunnel_key",
                    "",
                    &["5"],
                ),
            ],
            "read-only",
        ),
        (
            vec![insert(
                lsp("s", "p1", &["0a:00:00:00:00:01 10.0.0.1"]),
                false,
            )],
            "gateway",
        ),
    ];
    for (ops, needle) in cases {
        let e = i.transact(&ops, false, Oversize::Refuse).await.unwrap_err();
        let msg = e.clone().with_op_prefix().to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        assert!(msg.starts_with("ops["), "names the op: {msg}");
        assert_eq!(dump(&i).await, before, "{msg}");
    }
}

#[tokio::test]
async fn dry_run_commits_nothing_and_says_what_would_change() {
    let i = intent();
    let before = dump(&i).await;
    let out = i
        .transact(&[insert(ls("a", ""), false)], true, Oversize::Refuse)
        .await
        .unwrap();
    assert!(!out.committed);
    assert!(
        out.changes.iter().any(|c| c == "put nb/switches/a"),
        "{:?}",
        out.changes
    );
    assert_eq!(dump(&i).await, before);
}

#[tokio::test]
async fn references_cascade_or_restrict() {
    let i = intent();
    run(
        &i,
        &[
            insert(ls("a", "10.0.0.0/24"), false),
            insert(lsp("a", "p1", &["dynamic"]), false),
            insert(lsp("a", "p2", &["0a:00:00:00:00:07 10.0.0.7"]), false),
            insert(lr("r"), false),
            insert(lrp("r", "r-a", "0a:00:00:00:01:01", "10.0.0.1/24"), false),
        ],
    )
    .await;
    // A port on a missing switch, a router port on a missing router: NotFound naming it.
    let e = i
        .transact(
            &[insert(lsp("nosuch", "p9", &[]), false)],
            false,
            Oversize::Refuse,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e.error, ApiError::NotFound(ref m) if m.contains("nosuch")),
        "{e:?}"
    );
    let e = i
        .transact(
            &[insert(
                lrp("ghost", "g-1", "0a:00:00:00:01:02", "10.9.0.1/24"),
                false,
            )],
            false,
            Oversize::Refuse,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e.error, ApiError::NotFound(ref m) if m.contains("ghost")),
        "{e:?}"
    );
    // ls-del cascades to the ports and releases every claim.
    run(&i, &[delete(kinds::switch::NAME, "a", false)]).await;
    let st = i.load().await.unwrap();
    assert!(st.ports.is_empty() && st.switches.is_empty());
    assert!(
        st.claims.keys().all(|k| !k.starts_with("claims/ip/a/")
            && !k.starts_with("claims/mac/a/")
            && !k.starts_with("claims/pk/a/")
            && !k.starts_with("claims/vni/")),
        "{:?}",
        st.claims
    );
    // lr-del cascades to its ports; only the router's datapath key claim is left of it.
    run(&i, &[delete(kinds::router::NAME, "r", false)]).await;
    let st = i.load().await.unwrap();
    assert!(st.routers.is_empty() && st.router_ports.is_empty());
    assert!(st.claims.is_empty(), "{:?}", st.claims);
    // Destroying a chassis whose agent is alive is refused (restrict on liveness).
    let c = Chassis {
        name: "hv1".into(),
        encap_ip: "192.0.2.1".into(),
        encap_types: vec!["geneve".into()],
        ..Default::default()
    };
    let lease = i.store().lease_grant(10).await.unwrap();
    i.register_chassis(&c, lease).await.unwrap();
    let e = i
        .transact(&[delete("chassis", "hv1", false)], false, Oversize::Refuse)
        .await
        .unwrap_err();
    assert!(
        matches!(e.error, ApiError::FailedPrecondition(ref m) if m.contains("alive")),
        "{e:?}"
    );
}

#[tokio::test]
async fn concurrent_chains_retry_and_never_share_a_claim() {
    let i = intent();
    run(&i, &[insert(ls("a", "10.0.0.0/26"), false)]).await;
    let mut tasks = Vec::new();
    for n in 0..40 {
        let i = i.clone();
        tasks.push(tokio::spawn(async move {
            let ops = [
                insert(ls("a", "10.0.0.0/26"), true),
                insert(lsp("a", &format!("p{n}"), &["dynamic"]), false),
            ];
            i.transact(&ops, false, Oversize::Refuse).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let st = i.load().await.unwrap();
    assert_eq!(st.ports.len(), 40);
    let ips: std::collections::BTreeSet<_> = st
        .ports
        .values()
        .map(|p| p.dynamic_addresses.clone())
        .collect();
    assert_eq!(ips.len(), 40, "no duplicate dynamic address");
    let keys: std::collections::BTreeSet<_> = st.ports.values().map(|p| p.tunnel_key).collect();
    assert_eq!(keys.len(), 40, "no duplicate port key");
}

#[tokio::test]
async fn oversize_transactions_are_refused_or_chunked() {
    let i = intent().with_limits(Limits {
        max_txn_ops: 32,
        max_batch: 1000,
        ..Limits::default()
    });
    run(&i, &[insert(ls("big", "10.1.0.0/16"), false)]).await;
    for b in 0..10 {
        let ops: Vec<Op> = (0..6)
            .map(|k| insert(lsp("big", &format!("p{b}-{k}"), &["dynamic"]), false))
            .collect();
        run(&i, &ops).await;
    }
    let ops: Vec<Op> = (0..20)
        .map(|k| insert(lsp("big", &format!("q{k}"), &["dynamic"]), false))
        .collect();
    let e = i.transact(&ops, false, Oversize::Refuse).await.unwrap_err();
    assert!(e.error.to_string().contains("limit is 32"), "{e:?}");
    // ls-del of 60 ports does not fit in 32 ops: the sugar deletes in chunks.
    i.delete_switch("big", false).await.unwrap();
    let st = i.load().await.unwrap();
    assert!(
        st.ports.is_empty() && st.switches.is_empty() && st.claims.is_empty(),
        "{:?}",
        st.claims
    );
}

/// A sample object of each registered kind; a new kind must add one here (the test fails
/// naming it otherwise).
fn sample(kind: &str) -> Option<Vec<Op>> {
    Some(match kind {
        kinds::switch::NAME => vec![insert(ls("x", "10.5.0.0/24"), false)],
        kinds::port::NAME => vec![
            insert(ls("x", "10.5.0.0/24"), false),
            insert(lsp("x", "x", &[]), false),
        ],
        kinds::router::NAME => vec![insert(lr("x"), false)],
        kinds::router_port::NAME => vec![
            insert(lr("xr"), false),
            insert(lrp("xr", "x", "0a:00:00:00:02:01", "10.6.0.1/24"), false),
        ],
        kinds::address_set::NAME => vec![insert(
            super::object(object::Kind::AddressSet(weft_proto::v1::AddressSet {
                name: "x".into(),
                addresses: vec!["10.0.0.5".into()],
                ..Default::default()
            })),
            false,
        )],
        kinds::port_group::NAME => vec![
            insert(ls("x", "10.5.0.0/24"), false),
            insert(lsp("x", "xp", &[]), false),
            insert(
                super::object(object::Kind::PortGroup(weft_proto::v1::PortGroup {
                    name: "x".into(),
                    ports: vec!["xp".into()],
                    ..Default::default()
                })),
                false,
            ),
        ],
        kinds::acl::NAME => vec![
            insert(ls("xs", "10.5.0.0/24"), false),
            insert(
                super::object(object::Kind::Acl(weft_proto::v1::Acl {
                    switch: "xs".into(),
                    direction: "to-lport".into(),
                    priority: 100,
                    r#match: "tcp.dst == 80".into(),
                    action: "allow".into(),
                    ..Default::default()
                })),
                false,
            ),
        ],
        kinds::load_balancer::NAME => vec![insert(
            super::object(object::Kind::LoadBalancer(weft_proto::v1::LoadBalancer {
                name: "x".into(),
                vips: [("10.96.0.10:80".to_string(), "10.0.0.5:80".to_string())].into(),
                ..Default::default()
            })),
            false,
        )],
        kinds::meter::NAME => vec![insert(
            super::object(object::Kind::Meter(weft_proto::v1::Meter {
                name: "x".into(),
                unit: "pktps".into(),
                rate: 10,
                ..Default::default()
            })),
            false,
        )],
        // Registered by its agent, not created.
        kinds::chassis::NAME => vec![],
        _ => return None,
    })
}

/// The name the sample of `kind` has ("x", or an ACL's derived key).
fn sample_name(kind: &str) -> String {
    if kind == kinds::acl::NAME {
        weft_proto::model::acl::acl_key(
            &weft_proto::model::acl::Entity::Switch("xs".into()),
            weft_proto::model::acl::Direction::ToLport,
            100,
            "tcp.dst == 80",
        )
    } else {
        "x".into()
    }
}

#[tokio::test]
async fn external_ids_and_columns_round_trip_on_every_kind() {
    for kind in super::all() {
        let i = intent();
        let ops = sample(kind.name())
            .unwrap_or_else(|| panic!("add a sample object for kind {} to this test", kind.name()));
        if ops.is_empty() {
            let c = Chassis {
                name: "x".into(),
                encap_ip: "192.0.2.9".into(),
                encap_types: vec!["vxlan".into()],
                ..Default::default()
            };
            i.register_chassis(&c, 0).await.unwrap();
        } else {
            run(&i, &ops).await;
        }
        // Case-insensitive kind names.
        let k = kind.name().to_ascii_lowercase();
        let x = sample_name(kind.name());
        let x = x.as_str();
        run(
            &i,
            &[update(
                &k,
                x,
                Action::Set,
                "external_ids",
                "owner",
                &["cni"],
            )],
        )
        .await;
        run(
            &i,
            &[update(
                &k,
                x,
                Action::Add,
                "external_ids",
                "",
                &["a=1", "b=2"],
            )],
        )
        .await;
        run(
            &i,
            &[update(&k, x, Action::Remove, "external_ids", "", &["a"])],
        )
        .await;
        let st = i.load().await.unwrap();
        let obj = kind.load(&st, x).unwrap();
        let v = kind.get_column(&obj, "external_ids", &st).unwrap();
        let super::ColumnValue::Map(m) = v else {
            panic!("{v:?}")
        };
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            vec![
                ("b".to_string(), "2".to_string()),
                ("owner".to_string(), "cni".to_string())
            ],
            "{}",
            kind.name()
        );
        // Every column has a value; unknown ones are refused naming them.
        for c in kind.columns() {
            assert!(
                kind.get_column(&obj, c.name, &st).is_some(),
                "{}.{}",
                kind.name(),
                c.name
            );
        }
        let e = i
            .transact(
                &[update(&k, x, Action::Set, "bogus", "", &["1"])],
                false,
                Oversize::Refuse,
            )
            .await
            .unwrap_err();
        assert!(e.error.to_string().contains("bogus"), "{e:?}");
        run(&i, &[update(&k, x, Action::Clear, "external_ids", "", &[])]).await;
        if kind.name() != kinds::chassis::NAME {
            run(&i, &[delete(&k, x, false)]).await;
            assert!(kind.load(&i.load().await.unwrap(), x).is_none());
        }
    }
}
