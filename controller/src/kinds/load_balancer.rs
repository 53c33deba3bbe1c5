//! `Load_Balancer`: VIPs spread over backends (OVN's), applied on the switches whose
//! `load_balancer` column names it (`ls-lb-add`). The rules (VIP and backend grammar,
//! protocols, `options:affinity_timeout` and `options:reject`, the `health_check` map of
//! `lb-hc-add`) are [`weft_proto::model::load_balancer`]'s; this file stores the canonical
//! form. Backend health reported by agents is status, not intent: see
//! [`crate::lb_health`]. A port mapping (`lr-port-map-add`, marked in `external_ids`) must
//! have the shape [`weft_proto::model::port_map`] gives it. Kept in the
//! state's generic object map: views look LBs up by name from their switches and routers.

use prost::Message;
use weft_proto::model::load_balancer::{
    canonical_health_checks, canonical_vips, validate_load_balancer,
};
use weft_proto::model::port_map::PortMap;
use weft_proto::v1::{object, ColumnType, LoadBalancer, Object};

use super::{check_map, not_settable, set_map, EXTERNAL_IDS};
use crate::error::{ApiError, ApiResult};
use crate::objects::{object as wrap, ColumnDef, ColumnValue, Kind, Plan};
use crate::state::ClusterState;
use crate::validate::{validate_name, ValidationError};

/// The kind.
pub struct LoadBalancerKind;

/// Kind name.
pub const NAME: &str = "Load_Balancer";

static COLUMNS: &[ColumnDef] = &[
    ColumnDef::fixed("name", ColumnType::Scalar),
    ColumnDef::rw("vips", ColumnType::Map),
    ColumnDef::rw("protocol", ColumnType::Scalar),
    ColumnDef::rw("options", ColumnType::Map),
    ColumnDef::rw("health_check", ColumnType::Map),
    ColumnDef::ro("status", ColumnType::Map),
    EXTERNAL_IDS,
];

super::object_accessors!(LoadBalancer, LoadBalancer, lb, lb_mut);

/// The `load_balancer` column of a switch or router, stored sorted without duplicates.
pub fn normalize_column(names: &mut Vec<String>) {
    names.sort();
    names.dedup();
}

/// The references of a switch's or router's `load_balancer` column (unlinked when the LB
/// is deleted).
pub fn column_refs(names: &[String]) -> Vec<crate::objects::Ref> {
    names
        .iter()
        .map(|lb| crate::objects::Ref {
            kind: NAME,
            name: lb.clone(),
            column: "load_balancer",
            on_delete: crate::objects::OnDelete::Unlink,
        })
        .collect()
}

/// Drops `target` from a `load_balancer` column when it is a deleted LB.
pub fn unlink_from_column(names: &mut Vec<String>, target_kind: &str, target: &str) {
    if target_kind == NAME {
        names.retain(|lb| lb != target);
    }
}

/// Validates and normalizes (canonical VIP and backend text, protocol spelled out).
fn check(l: &mut LoadBalancer) -> Result<(), ValidationError> {
    validate_name("load_balancer.name", &l.name)?;
    let rules = validate_load_balancer(&l.vips, &l.protocol, &l.options, &l.health_check)?;
    l.vips = canonical_vips(&rules);
    l.health_check = canonical_health_checks(&rules);
    // Status is reported by agents and filled in when listed, never stored as intent.
    l.status.clear();
    l.protocol = rules.protocol.to_string();
    check_map("load_balancer.external_ids", &l.external_ids)?;
    if let Some(pm) = PortMap::from_load_balancer(l) {
        pm?;
    }
    Ok(())
}

impl Kind for LoadBalancerKind {
    fn name(&self) -> &'static str {
        NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["load balancer", "lb"]
    }
    fn prefix(&self) -> &'static str {
        "nb/load_balancers/"
    }
    fn columns(&self) -> &'static [ColumnDef] {
        COLUMNS
    }
    fn encode(&self, obj: &Object) -> Vec<u8> {
        lb(obj).map(|l| l.encode_to_vec()).unwrap_or_default()
    }
    super::generic_methods!(LoadBalancer, LoadBalancer, lb);
    fn get_column(&self, obj: &Object, column: &str, state: &ClusterState) -> Option<ColumnValue> {
        let l = lb(obj)?;
        if column == "status" {
            return Some(ColumnValue::map(&crate::lb_health::view_status(state, l)));
        }
        Some(match column {
            "name" => ColumnValue::str(&l.name),
            "vips" => ColumnValue::map(&l.vips),
            "protocol" => ColumnValue::str(&l.protocol),
            "options" => ColumnValue::map(&l.options),
            "health_check" => ColumnValue::map(&l.health_check),
            "external_ids" => ColumnValue::map(&l.external_ids),
            _ => return None,
        })
    }
    fn set_column(
        &self,
        obj: &mut Object,
        column: &str,
        v: ColumnValue,
    ) -> Result<(), ValidationError> {
        let Some(l) = lb_mut(obj) else {
            return Err(not_settable(NAME, column));
        };
        match column {
            "vips" => set_map(&mut l.vips, column, v)?,
            "protocol" => l.protocol = v.into_scalar(column)?,
            "options" => set_map(&mut l.options, column, v)?,
            "health_check" => set_map(&mut l.health_check, column, v)?,
            "external_ids" => set_map(&mut l.external_ids, column, v)?,
            _ => return Err(not_settable(NAME, column)),
        }
        Ok(())
    }
    fn insert(&self, obj: &mut Object, _plan: &mut Plan) -> ApiResult<()> {
        check(lb_mut(obj).ok_or_else(|| ApiError::Internal("not a load balancer".into()))?)?;
        Ok(())
    }
    fn update(&self, _old: &Object, new: &mut Object, _plan: &mut Plan) -> ApiResult<()> {
        check(lb_mut(new).ok_or_else(|| ApiError::Internal("not a load balancer".into()))?)?;
        Ok(())
    }
    fn delete(&self, _obj: &Object, _plan: &mut Plan) -> ApiResult<()> {
        Ok(())
    }
    fn already_exists(&self, existing: &Object) -> ApiError {
        match lb(existing).and_then(PortMap::from_load_balancer) {
            Some(Ok(pm)) => ApiError::AlreadyExists(
                ValidationError::new(
                    "port_map.external",
                    &format!("{} {}", pm.external_text(), pm.protocol),
                    format!(
                        "router {:?} already maps it (to {})",
                        pm.router,
                        pm.logical_text()
                    ),
                )
                .to_string(),
            ),
            _ => ApiError::AlreadyExists(format!(
                "load balancer {:?} already exists",
                lb(existing).map(|l| l.name.as_str()).unwrap_or("")
            )),
        }
    }
    fn with_status(&self, mut obj: Object, plan: &Plan) -> Object {
        if let Some(l) = lb_mut(&mut obj) {
            l.status = crate::lb_health::view_status(plan.base(), l);
        }
        obj
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use weft_proto::v1::{column_op::Action, op, ColumnOp, LogicalSwitch, Op, UpdateOp};

    use super::*;
    use crate::intent::{delete, insert, Intent};
    use crate::objects::transact::Oversize;
    use crate::store::memory::MemoryStore;

    fn intent() -> Intent {
        Intent::new(Arc::new(MemoryStore::new()), "/t")
    }

    fn lbo(name: &str, vips: &[(&str, &str)], proto: &str) -> Object {
        wrap(object::Kind::LoadBalancer(LoadBalancer {
            name: name.into(),
            vips: vips
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            protocol: proto.into(),
            ..Default::default()
        }))
    }

    fn upd(kind: &str, name: &str, action: Action, column: &str, key: &str, v: &[&str]) -> Op {
        Op {
            op: Some(op::Op::Update(UpdateOp {
                kind: kind.into(),
                name: name.into(),
                columns: vec![ColumnOp {
                    action: action as i32,
                    column: column.into(),
                    key: key.into(),
                    values: v.iter().map(|s| s.to_string()).collect(),
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

    async fn run(i: &Intent, ops: &[Op]) {
        i.transact(ops, false, Oversize::Refuse).await.unwrap();
    }

    async fn refused(i: &Intent, ops: &[Op]) -> String {
        let before = dump(i).await;
        let e = i
            .transact(ops, false, Oversize::Refuse)
            .await
            .unwrap_err()
            .error
            .to_string();
        assert_eq!(dump(i).await, before, "a refused write changed etcd: {e}");
        e
    }

    async fn get_lb(i: &Intent, name: &str) -> LoadBalancer {
        let st = i.load().await.unwrap();
        match LoadBalancerKind.load(&st, name).and_then(|o| o.kind) {
            Some(object::Kind::LoadBalancer(l)) => l,
            other => panic!("no LB {name}: {other:?}"),
        }
    }

    async fn switch_lbs(i: &Intent, sw: &str) -> Vec<String> {
        i.load().await.unwrap().switches[sw].load_balancer.clone()
    }

    #[tokio::test]
    async fn stored_canonical_and_every_bad_input_refused() {
        let i = intent();
        run(
            &i,
            &[insert(
                lbo(
                    "web",
                    &[("10.96.0.10:80", "10.0.0.5:8080, 10.0.1.5:8080")],
                    "TCP",
                ),
                false,
            )],
        )
        .await;
        let l = get_lb(&i, "web").await;
        assert_eq!(l.protocol, "tcp");
        assert_eq!(l.vips["10.96.0.10:80"], "10.0.0.5:8080,10.0.1.5:8080");
        for (vips, proto, field, value) in [
            (
                ("10.96.0.300:80", "10.0.0.5"),
                "tcp",
                "vip",
                "10.96.0.300:80",
            ),
            (("10.96.0.11:0", "10.0.0.5"), "tcp", "vip", "10.96.0.11:0"),
            (
                ("10.96.0.11:80", "10.0.0.5:70000"),
                "tcp",
                "[0]",
                "10.0.0.5:70000",
            ),
            (
                ("10.96.0.11:80", "10.0.0.5:80,[fd00::5]:80"),
                "tcp",
                "[10.96.0.11:80]",
                "10.0.0.5:80,[fd00::5]:80",
            ),
            (("10.96.0.11:80", "10.0.0.5:80"), "icmp", "protocol", "icmp"),
            (
                ("10.96.0.11", "10.0.0.5:80"),
                "tcp",
                "[10.96.0.11]",
                "10.0.0.5:80",
            ),
        ] {
            let e = refused(&i, &[insert(lbo("bad", &[vips], proto), false)]).await;
            assert!(
                e.contains(field) && e.contains(value),
                "{vips:?} {proto}: {e}"
            );
        }
        // Options through the generic set, checked.
        run(
            &i,
            &[upd(
                NAME,
                "web",
                Action::Set,
                "options",
                "affinity_timeout",
                &["60"],
            )],
        )
        .await;
        run(
            &i,
            &[upd(
                NAME,
                "web",
                Action::Set,
                "options",
                "reject",
                &["true"],
            )],
        )
        .await;
        let l = get_lb(&i, "web").await;
        assert_eq!(l.options["affinity_timeout"], "60");
        for (k, v) in [
            ("affinity_timeout", "0"),
            ("affinity_timeout", "50000"),
            ("reject", "1"),
        ] {
            let e = refused(&i, &[upd("lb", "web", Action::Set, "options", k, &[v])]).await;
            assert!(e.contains(k) && e.contains(v), "{e}");
        }
        // Health checks: on a VIP the LB has (canonical text stored), else refused.
        run(
            &i,
            &[upd(
                NAME,
                "web",
                Action::Set,
                "health_check",
                "10.96.0.10:80",
                &["failure=2,interval=1"],
            )],
        )
        .await;
        assert_eq!(
            get_lb(&i, "web").await.health_check["10.96.0.10:80"],
            "interval=1,timeout=3,success=1,failure=2"
        );
        for (k, v, needle) in [
            ("10.96.0.99:80", "", "10.96.0.99:80"),
            ("10.96.0.10:80", "timeout=0", "timeout"),
            ("10.96.0.10:80", "bogus=1", "bogus"),
        ] {
            let e = refused(
                &i,
                &[upd(NAME, "web", Action::Set, "health_check", k, &[v])],
            )
            .await;
            assert!(e.contains("health_check") && e.contains(needle), "{e}");
        }
        // Replacing one VIP's backends (lb-add --may-exist).
        run(
            &i,
            &[upd(
                NAME,
                "web",
                Action::Set,
                "vips",
                "10.96.0.10:80",
                &["10.0.2.5:8080"],
            )],
        )
        .await;
        assert_eq!(
            get_lb(&i, "web").await.vips["10.96.0.10:80"],
            "10.0.2.5:8080"
        );
    }

    #[tokio::test]
    async fn switches_reference_lbs_and_lb_delete_unlinks() {
        let i = intent();
        let sw = wrap(object::Kind::LogicalSwitch(LogicalSwitch {
            name: "ls1".into(),
            ..Default::default()
        }));
        run(
            &i,
            &[
                insert(sw, false),
                insert(lbo("a", &[("10.96.0.10:80", "10.0.0.5:80")], ""), false),
                insert(lbo("b", &[("10.96.0.11:53", "10.0.0.6:53")], "udp"), false),
            ],
        )
        .await;
        let sw_ls = crate::kinds::switch::NAME;
        run(
            &i,
            &[upd(
                sw_ls,
                "ls1",
                Action::Add,
                "load_balancer",
                "",
                &["b", "a"],
            )],
        )
        .await;
        assert_eq!(switch_lbs(&i, "ls1").await, ["a", "b"]);
        // Missing LB, missing switch: refused, nothing changed.
        let e = refused(
            &i,
            &[upd(
                sw_ls,
                "ls1",
                Action::Add,
                "load_balancer",
                "",
                &["nope"],
            )],
        )
        .await;
        assert!(e.contains("nope") && e.contains("not found"), "{e}");
        let e = refused(
            &i,
            &[upd(sw_ls, "ls9", Action::Add, "load_balancer", "", &["a"])],
        )
        .await;
        assert!(e.contains("ls9"), "{e}");
        // Deleting an LB removes it from the switch, which stays.
        run(&i, &[delete(NAME, "a", false)]).await;
        assert_eq!(switch_lbs(&i, "ls1").await, ["b"]);
        run(
            &i,
            &[upd(
                sw_ls,
                "ls1",
                Action::Remove,
                "load_balancer",
                "",
                &["b"],
            )],
        )
        .await;
        assert!(switch_lbs(&i, "ls1").await.is_empty());
        assert_eq!(get_lb(&i, "b").await.protocol, "udp");
    }
}
