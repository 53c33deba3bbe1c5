//! `ACL`: an access control entry on a switch or a port group, as OVN's (`acl-add`).
//!
//! Each ACL is one etcd key, `nb/acls/<key>`, with the key derived from (entity, direction,
//! priority, match) by [`weft_proto::model::acl::acl_key`]: `ls:SW:to-lport:1000:<hash>`.
//! So adding or deleting an ACL writes one key (not a list column of the switch rewritten per
//! add), a duplicate is an existing key (AlreadyExists, or nothing with `--may-exist`), and
//! the ACLs of one entity are one range of names (`ls:SW:`), which is what `acl-del SWITCH
//! [DIRECTION]` deletes ([`Kind::expand_delete`]).
//!
//! Insert checks, each naming the field and the value: the entity (exactly one of switch and
//! port group; it must exist), direction, priority (0..32767), verdict, severity, name, the
//! match (parse and type errors with the column), every `$set` (an address set, or
//! `PG_ip4`/`PG_ip6` of an existing port group) and `@group` it names, and the number of flows
//! it would compile to with today's sets (at most `--acl-max-flows`). A switch or port group
//! delete takes its ACLs with it; an address set or port group a match names cannot be
//! deleted while the ACL exists.

use prost::Message;
use weft_proto::model::acl::{
    self, acl_key, check_flow_count, check_priority, check_severity, implied_port_group,
    parse_direction, parse_match, parse_verdict, references, Entity,
};
use weft_proto::model::match_dnf::Resolver;
use weft_proto::v1::{object, Acl, ColumnType, Object};

use super::{check_map, not_settable, set_map, EXTERNAL_IDS};
use crate::error::{ApiError, ApiResult};
use crate::objects::{object as wrap, ColumnDef, ColumnValue, Kind, OnDelete, Plan, Ref};
use crate::state::ClusterState;
use crate::validate::{no_control_chars, ValidationError, MAX_NAME_LEN};

/// The kind.
pub struct AclKind;

/// Kind name.
pub const NAME: &str = "ACL";

static COLUMNS: &[ColumnDef] = &[
    ColumnDef::fixed("key", ColumnType::Scalar),
    ColumnDef::fixed("switch", ColumnType::Scalar),
    ColumnDef::fixed("port_group", ColumnType::Scalar),
    ColumnDef::fixed("direction", ColumnType::Scalar),
    ColumnDef::fixed("priority", ColumnType::Scalar),
    ColumnDef::fixed("match", ColumnType::Scalar),
    ColumnDef::rw("action", ColumnType::Scalar),
    ColumnDef::rw("log", ColumnType::Scalar),
    ColumnDef::rw("name", ColumnType::Scalar),
    ColumnDef::rw("severity", ColumnType::Scalar),
    ColumnDef::rw("meter", ColumnType::Scalar),
    ColumnDef::rw("label", ColumnType::Scalar),
    ColumnDef::rw("options", ColumnType::Map),
    EXTERNAL_IDS,
];

super::object_accessors!(Acl, Acl, acl_of, acl_mut);

/// Address sets and port groups as the plan sees them (what the flow count expands).
pub struct PlanResolver<'p, 'a>(pub &'p Plan<'a>);

impl Resolver for PlanResolver<'_, '_> {
    fn address_set(&self, name: &str) -> Option<Vec<String>> {
        let Some((pg, v4)) = implied_port_group(name) else {
            return match self.0.peek(&super::address_set::AddressSetKind, name)?.kind {
                Some(object::Kind::AddressSet(a)) => Some(a.addresses),
                _ => None,
            };
        };
        let ports = self.port_group(pg)?;
        let mut out = Vec::new();
        for p in ports {
            let Some(Object {
                kind: Some(object::Kind::LogicalSwitchPort(lsp)),
            }) = self.0.peek(&super::port::PortKind, &p)
            else {
                continue;
            };
            for a in crate::view::resolve_port(&lsp, "").addresses {
                out.extend(a.ips.into_iter().filter(|ip| ip.contains(':') != v4));
            }
        }
        Some(out)
    }
    fn port_group(&self, name: &str) -> Option<Vec<String>> {
        match self.0.peek(&super::port_group::PortGroupKind, name)?.kind {
            Some(object::Kind::PortGroup(g)) => Some(g.ports),
            _ => None,
        }
    }
}

fn entity(a: &Acl) -> Result<Entity, ValidationError> {
    Entity::of(&a.switch, &a.port_group)
}

/// Validates and completes an ACL (its key derived), as the plan sees the sets it names.
fn check(a: &mut Acl, plan: &Plan) -> ApiResult<()> {
    let ent = entity(a)?;
    let dir = parse_direction(&a.direction)?;
    let prio = check_priority(i64::from(a.priority))?;
    parse_verdict(&a.action)?;
    check_severity(&a.severity)?;
    if a.name.len() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            "acl.name",
            &a.name,
            format!("longer than {MAX_NAME_LEN} characters"),
        )
        .into());
    }
    no_control_chars("acl.name", &a.name)?;
    no_control_chars("acl.meter", &a.meter)?;
    let e = parse_match(&a.r#match)?;
    let (sets, groups) = references(&e);
    let r = PlanResolver(plan);
    for s in &sets {
        if r.address_set(s).is_none() {
            return Err(ApiError::NotFound(format!(
                "address set {s:?} not found (acl.match {:?})",
                a.r#match
            )));
        }
    }
    for g in &groups {
        if r.port_group(g).is_none() {
            return Err(ApiError::NotFound(format!(
                "port group {g:?} not found (acl.match {:?})",
                a.r#match
            )));
        }
    }
    if let Entity::PortGroup(pg) = &ent {
        if r.port_group(pg).is_none() {
            return Err(ApiError::NotFound(format!(
                "port group {pg:?} not found (acl.port_group)"
            )));
        }
    }
    check_flow_count(&ent, dir, &e, &r, plan.acl_max_flows())?;
    let key = acl_key(&ent, dir, prio, &a.r#match);
    if !a.key.is_empty() && a.key != key {
        return Err(ValidationError::new(
            "acl.key",
            &a.key,
            format!("does not match the ACL (expected {key})"),
        )
        .into());
    }
    a.key = key;
    a.r#match = a.r#match.trim().to_string();
    check_map("acl.options", &a.options)?;
    check_map("acl.external_ids", &a.external_ids)?;
    Ok(())
}

impl Kind for AclKind {
    fn name(&self) -> &'static str {
        NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["acl"]
    }
    fn prefix(&self) -> &'static str {
        "nb/acls/"
    }
    fn columns(&self) -> &'static [ColumnDef] {
        COLUMNS
    }
    fn is(&self, obj: &Object) -> bool {
        acl_of(obj).is_some()
    }
    fn object_name<'a>(&self, obj: &'a Object) -> &'a str {
        acl_of(obj).map(|a| a.key.as_str()).unwrap_or("")
    }
    fn decode(&self, bytes: &[u8]) -> Result<Object, prost::DecodeError> {
        Ok(wrap(object::Kind::Acl(Acl::decode(bytes)?)))
    }
    fn encode(&self, obj: &Object) -> Vec<u8> {
        acl_of(obj).map(|a| a.encode_to_vec()).unwrap_or_default()
    }
    fn load(&self, state: &ClusterState, name: &str) -> Option<Object> {
        state.objects.get(NAME).and_then(|m| m.get(name)).cloned()
    }
    fn names(&self, state: &ClusterState) -> Vec<String> {
        state
            .objects
            .get(NAME)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
    fn store(&self, state: &mut ClusterState, name: &str, obj: Option<Object>, revision: i64) {
        state.store_object(NAME, name, obj, revision);
    }
    fn get_column(&self, obj: &Object, column: &str, _state: &ClusterState) -> Option<ColumnValue> {
        let a = acl_of(obj)?;
        Some(match column {
            "key" => ColumnValue::str(&a.key),
            "switch" => ColumnValue::str(&a.switch),
            "port_group" => ColumnValue::str(&a.port_group),
            "direction" => ColumnValue::str(&a.direction),
            "priority" => ColumnValue::int(a.priority),
            "match" => ColumnValue::str(&a.r#match),
            "action" => ColumnValue::str(&a.action),
            "log" => ColumnValue::bool(a.log),
            "name" => ColumnValue::str(&a.name),
            "severity" => ColumnValue::str(&a.severity),
            "meter" => ColumnValue::str(&a.meter),
            "label" => ColumnValue::int(a.label),
            "options" => ColumnValue::map(&a.options),
            "external_ids" => ColumnValue::map(&a.external_ids),
            _ => return None,
        })
    }
    fn set_column(
        &self,
        obj: &mut Object,
        column: &str,
        v: ColumnValue,
    ) -> Result<(), ValidationError> {
        let Some(a) = acl_mut(obj) else {
            return Err(not_settable(NAME, column));
        };
        match column {
            "action" => a.action = v.into_scalar(column)?,
            "log" => a.log = v.into_bool(column)?,
            "name" => a.name = v.into_scalar(column)?,
            "severity" => a.severity = v.into_scalar(column)?,
            "meter" => a.meter = v.into_scalar(column)?,
            "label" => a.label = v.into_u32(column)?,
            "options" => set_map(&mut a.options, column, v)?,
            "external_ids" => set_map(&mut a.external_ids, column, v)?,
            _ => return Err(not_settable(NAME, column)),
        }
        Ok(())
    }
    fn refs(&self, obj: &Object) -> Vec<Ref> {
        let Some(a) = acl_of(obj) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if !a.switch.is_empty() {
            out.push(Ref {
                kind: super::switch::NAME,
                name: a.switch.clone(),
                column: "switch",
                on_delete: OnDelete::Cascade,
            });
        }
        if !a.port_group.is_empty() {
            out.push(Ref {
                kind: super::port_group::NAME,
                name: a.port_group.clone(),
                column: "port_group",
                on_delete: OnDelete::Cascade,
            });
        }
        if let Ok(e) = weft_proto::model::expr::parse(&a.r#match) {
            let (sets, groups) = references(&e);
            for s in sets {
                // An implied PG_ip4 set refers to the port group (address set names ending
                // in _ip4/_ip6 are reserved for these).
                if let Some((pg, _)) = implied_port_group(&s) {
                    if pg != a.port_group {
                        out.push(Ref {
                            kind: super::port_group::NAME,
                            name: pg.to_string(),
                            column: "match",
                            on_delete: OnDelete::Restrict,
                        });
                    }
                    continue;
                }
                out.push(Ref {
                    kind: super::address_set::NAME,
                    name: s,
                    column: "match",
                    on_delete: OnDelete::Restrict,
                });
            }
            for g in groups {
                if g != a.port_group {
                    out.push(Ref {
                        kind: super::port_group::NAME,
                        name: g,
                        column: "match",
                        on_delete: OnDelete::Restrict,
                    });
                }
            }
        }
        out
    }
    fn referrers(&self, plan: &Plan, target_kind: &str, target: &str) -> Vec<String> {
        // The entity's own ACLs are one range of names; others refer through the match.
        let own = match target_kind {
            super::switch::NAME => Some(format!("ls:{target}:")),
            super::port_group::NAME => Some(format!("pg:{target}:")),
            _ => None,
        };
        plan.names(self)
            .into_iter()
            .filter(|n| {
                own.as_ref().is_some_and(|p| n.starts_with(p.as_str()))
                    || (target_kind != super::switch::NAME
                        && plan.peek(self, n).is_some_and(|o| {
                            self.refs(&o)
                                .iter()
                                .any(|r| r.kind == target_kind && r.name == target)
                        }))
            })
            .collect()
    }
    fn expand_delete(&self, plan: &Plan, name: &str) -> ApiResult<Option<Vec<String>>> {
        if !name.ends_with(':') {
            return Ok(None);
        }
        let mut parts = name.trim_end_matches(':').splitn(3, ':');
        let (kind, ent) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let target: &dyn Kind = match kind {
            "ls" => &super::switch::SwitchKind,
            "pg" => &super::port_group::PortGroupKind,
            _ => {
                return Err(ValidationError::new(
                    "name",
                    name,
                    "expected ls:SWITCH:[DIRECTION:] or pg:GROUP:[DIRECTION:]",
                )
                .into())
            }
        };
        if let Some(d) = parts.next() {
            parse_direction(d)?;
        }
        if plan.peek(target, ent).is_none() {
            return Err(crate::objects::plan::not_found(target, ent));
        }
        Ok(Some(
            plan.names(self)
                .into_iter()
                .filter(|n| n.starts_with(name))
                .collect(),
        ))
    }
    fn may_exist_matches(&self, existing: &Object, new: &Object) -> bool {
        // The key already says same entity, direction, priority and match.
        let _ = (existing, new);
        true
    }
    fn insert(&self, obj: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        let a = acl_mut(obj).ok_or_else(|| ApiError::Internal("not an ACL".into()))?;
        let name_given = !a.key.is_empty();
        check(a, plan)?;
        if !name_given {
            // The planner looked the object up by its (empty) name before the key existed.
            let key = a.key.clone();
            if let Some(existing) = plan.get(self, &key) {
                return Err(self.already_exists(&existing));
            }
        }
        if a.severity.is_empty() && a.log {
            a.severity = "info".into();
        }
        Ok(())
    }
    fn already_exists(&self, existing: &Object) -> ApiError {
        let a = acl_of(existing).cloned().unwrap_or_default();
        let on = if a.switch.is_empty() {
            format!("port group {:?}", a.port_group)
        } else {
            format!("switch {:?}", a.switch)
        };
        ApiError::AlreadyExists(format!(
            "an ACL with the same direction, priority and match already exists on {on}: {} {} {:?} (acl.key {:?}; --may-exist to ignore)",
            a.direction, a.priority, a.r#match, a.key
        ))
    }
    fn update(&self, _old: &Object, new: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        let a = acl_mut(new).ok_or_else(|| ApiError::Internal("not an ACL".into()))?;
        check(a, plan)
    }
    fn delete(&self, _obj: &Object, _plan: &mut Plan) -> ApiResult<()> {
        Ok(())
    }
}

/// Re-exported for weftctl-side checks and tests.
pub use acl::MAX_PRIORITY;
