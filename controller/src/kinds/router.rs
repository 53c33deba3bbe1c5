//! `Logical_Router`: a router datapath. Its ports cascade (lr-del deletes them, as
//! ovn-nbctl's lr-del does). Its static routes live in the router (`static_routes`, OVN's
//! Logical_Router_Static_Route rows): `lr-route-add` and `lr-route-del` are add/remove ops
//! on that column with ovn-nbctl's semantics ([`weft_proto::model::route`]), and a new
//! route's next hop must be on a network of one of the router's ports unless it names its
//! output port, which must be a port of this router. Its NAT rules live in the router too
//! (`nat`, OVN's NAT rows): `lr-nat-add` / `lr-nat-del` are add/remove ops on that column
//! ([`weft_proto::model::nat`]), and a new rule's external IP must be on a network of one of
//! the router's gateway ports (a port with gateway chassis). Its load balancers
//! (`load_balancer`, `lr-lb-add`) are weak references, as a switch's: deleting the LB removes
//! it from the router. A port mapping LB ([`weft_proto::model::port_map`]) added to it must
//! belong to this router and have its external IP on a network of a gateway port.

use prost::Message;
use weft_proto::model::nat::{self, NatAdd, NatDel, NatRule};
use weft_proto::model::port_map::PortMap;
use weft_proto::model::route::{apply_add, apply_del, RouteAdd, RouteDel, StaticRoute};
use weft_proto::v1::{column_op::Action, object, ColumnOp, ColumnType, LogicalRouter, Object};

use super::switch::{allocate_datapath_key, datapath_claim};
use super::{check_map, not_settable, set_map, EXTERNAL_IDS};
use crate::error::{ApiError, ApiResult};
use crate::objects::{object as wrap, ColumnDef, ColumnValue, Kind, Plan, Ref};
use crate::state::ClusterState;
use crate::validate::{validate_name, ValidationError};

/// The kind.
pub struct RouterKind;

/// Kind name.
pub const NAME: &str = "Logical_Router";

static COLUMNS: &[ColumnDef] = &[
    ColumnDef::fixed("name", ColumnType::Scalar),
    ColumnDef::rw("enabled", ColumnType::Scalar),
    ColumnDef::rw("options", ColumnType::Map),
    EXTERNAL_IDS,
    ColumnDef::ro("tunnel_key", ColumnType::Scalar),
    ColumnDef::ro("ports", ColumnType::Set),
    ColumnDef::rw("static_routes", ColumnType::Set),
    ColumnDef::rw("nat", ColumnType::Set),
    ColumnDef::rw("load_balancer", ColumnType::Set),
];

super::object_accessors!(LogicalRouter, LogicalRouter, lr, lr_mut);

fn check(r: &LogicalRouter) -> Result<(), ValidationError> {
    validate_name("router.name", &r.name)?;
    check_map("router.options", &r.options)?;
    check_map("router.external_ids", &r.external_ids)?;
    routes(r)?;
    nat_rules(r)?;
    for (i, lb) in r.load_balancer.iter().enumerate() {
        validate_name(&format!("router.load_balancer[{i}]"), lb)?;
    }
    Ok(())
}

/// Sorted, without duplicates: the stored form of the `load_balancer` column.
fn normalize_lbs(r: &mut LogicalRouter) {
    super::load_balancer::normalize_column(&mut r.load_balancer);
}

/// Each load balancer `r` names that `old` did not: a port mapping must be this router's
/// and its external IP on a network of one of the router's gateway ports. (A missing LB is
/// refused by the planner's reference check.)
fn check_new_lbs(r: &LogicalRouter, old: &[String], plan: &mut Plan) -> ApiResult<()> {
    let new: Vec<(usize, &String)> = r
        .load_balancer
        .iter()
        .enumerate()
        .filter(|(_, l)| !old.contains(l))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let lb_kind: &dyn Kind = &super::load_balancer::LoadBalancerKind;
    let mut gateway_nets: Option<Vec<ipnetwork::Ipv4Network>> = None;
    for (i, name) in new {
        let Some(obj) = plan.get(lb_kind, name) else {
            continue;
        };
        let Some(Ok(pm)) = (match &obj.kind {
            Some(object::Kind::LoadBalancer(l)) => PortMap::from_load_balancer(l),
            _ => None,
        }) else {
            continue;
        };
        if pm.router != r.name {
            return Err(ValidationError::new(
                format!("load_balancer[{i}]"),
                name,
                format!(
                    "the port mapping belongs to router {:?}, not {:?}",
                    pm.router, r.name
                ),
            )
            .into());
        }
        let nets = gateway_nets.get_or_insert_with(|| {
            super::router_port::ports_of_router(plan, &r.name)
                .iter()
                .filter(|p| !p.gateway_chassis.is_empty())
                .flat_map(|p| p.networks.iter())
                .filter_map(|n| n.parse::<ipnetwork::Ipv4Network>().ok())
                .collect()
        });
        pm.check_on_gateway(nets.iter())?;
    }
    Ok(())
}

/// The router's parsed NAT rules.
fn nat_rules(r: &LogicalRouter) -> Result<Vec<NatRule>, ValidationError> {
    r.nat
        .iter()
        .enumerate()
        .map(|(i, m)| NatRule::from_message(&format!("nat[{i}]"), m))
        .collect()
}

fn nat_texts(r: &LogicalRouter) -> Vec<String> {
    nat_rules(r)
        .map(|rs| rs.iter().map(NatRule::to_text).collect())
        .unwrap_or_default()
}

/// Each NAT rule `r` has that `old` had not: its external IP must be on a network of a
/// gateway port of the router (a port with gateway chassis), where it is answered and
/// translated; no two rules may be the same.
fn check_new_nat(r: &LogicalRouter, old: &[NatRule], plan: &mut Plan) -> ApiResult<()> {
    let rules = nat_rules(r)?;
    for (i, a) in rules.iter().enumerate() {
        if let Some(j) = rules[..i].iter().position(|b| b == a) {
            return Err(ValidationError::new(
                format!("nat[{i}]"),
                &a.to_text(),
                format!("the same NAT rule as nat[{j}]"),
            )
            .into());
        }
    }
    let new: Vec<(usize, &NatRule)> = rules
        .iter()
        .enumerate()
        .filter(|(_, x)| !old.contains(x))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let ports = super::router_port::ports_of_router(plan, &r.name);
    for (i, rule) in new {
        let on_gateway = ports
            .iter()
            .filter(|p| !p.gateway_chassis.is_empty())
            .any(|p| {
                p.networks.iter().any(|n| {
                    n.parse::<ipnetwork::IpNetwork>()
                        .is_ok_and(|n| n.contains(rule.external_ip.into()))
                })
            });
        if !on_gateway {
            return Err(ValidationError::new(
                format!("nat[{i}].external_ip"),
                &rule.external_ip.to_string(),
                format!(
                    "on no network of a gateway port of router {:?} (set one with \
                     lrp-set-gateway-chassis)",
                    r.name
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// The router's parsed static routes.
fn routes(r: &LogicalRouter) -> Result<Vec<StaticRoute>, ValidationError> {
    r.static_routes
        .iter()
        .enumerate()
        .map(|(i, m)| StaticRoute::from_message(&format!("static_routes[{i}]"), m))
        .collect()
}

fn route_texts(r: &LogicalRouter) -> Vec<String> {
    routes(r)
        .map(|rs| rs.iter().map(StaticRoute::to_text).collect())
        .unwrap_or_default()
}

/// Each route `r` has that `old` had not: its output port must be a port of the router, and
/// without one its next hop must be on a network of a port of the router.
fn check_new_routes(r: &LogicalRouter, old: &[StaticRoute], plan: &mut Plan) -> ApiResult<()> {
    let new: Vec<(usize, StaticRoute)> = routes(r)?
        .into_iter()
        .enumerate()
        .filter(|(_, x)| !old.contains(x))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let ports = super::router_port::ports_of_router(plan, &r.name);
    for (i, route) in new {
        let field = format!("static_routes[{i}]");
        match &route.output_port {
            Some(p) => {
                if !ports.iter().any(|x| &x.name == p) {
                    return Err(ValidationError::new(
                        format!("{field}.output_port"),
                        p,
                        format!("no router port of that name on router {:?}", r.name),
                    )
                    .into());
                }
            }
            None => {
                let on_net = ports.iter().any(|p| {
                    p.networks.iter().any(|n| {
                        n.parse::<ipnetwork::IpNetwork>()
                            .is_ok_and(|n| n.contains(route.nexthop.into()))
                    })
                });
                if !on_net {
                    return Err(ValidationError::new(
                        format!("{field}.nexthop"),
                        &route.nexthop.to_string(),
                        format!(
                            "the next hop of route {} is on no network of router {:?}; \
                             give the output port",
                            route.to_text(),
                            r.name
                        ),
                    )
                    .into());
                }
            }
        }
    }
    Ok(())
}

impl Kind for RouterKind {
    fn name(&self) -> &'static str {
        NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["router", "lr"]
    }
    fn prefix(&self) -> &'static str {
        "nb/routers/"
    }
    fn columns(&self) -> &'static [ColumnDef] {
        COLUMNS
    }
    fn encode(&self, obj: &Object) -> Vec<u8> {
        lr(obj).map(|r| r.encode_to_vec()).unwrap_or_default()
    }
    super::message_methods!(LogicalRouter, LogicalRouter, lr, routers, store_router);
    fn get_column(&self, obj: &Object, column: &str, state: &ClusterState) -> Option<ColumnValue> {
        let r = lr(obj)?;
        Some(match column {
            "name" => ColumnValue::str(&r.name),
            "enabled" => ColumnValue::bool(r.enabled),
            "options" => ColumnValue::map(&r.options),
            "external_ids" => ColumnValue::map(&r.external_ids),
            "tunnel_key" => ColumnValue::int(r.tunnel_key),
            "static_routes" => ColumnValue::Set(route_texts(r)),
            "nat" => ColumnValue::Set(nat_texts(r)),
            "load_balancer" => ColumnValue::set(&r.load_balancer),
            "ports" => ColumnValue::Set(
                state
                    .router_ports_by_router
                    .get(&r.name)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default(),
            ),
            _ => return None,
        })
    }
    fn set_column(
        &self,
        obj: &mut Object,
        column: &str,
        v: ColumnValue,
    ) -> Result<(), ValidationError> {
        let Some(r) = lr_mut(obj) else {
            return Err(not_settable(NAME, column));
        };
        match column {
            "enabled" => r.enabled = v.into_bool(column)?,
            "options" => set_map(&mut r.options, column, v)?,
            "external_ids" => set_map(&mut r.external_ids, column, v)?,
            "static_routes" => {
                let mut out = Vec::new();
                for (i, t) in v.into_set(column)?.iter().enumerate() {
                    let route = StaticRoute::parse_text(&format!("static_routes[{i}]"), t)?;
                    if !out.contains(&route) {
                        out.push(route);
                    }
                }
                r.static_routes = out.iter().map(StaticRoute::to_message).collect();
            }
            "nat" => {
                let mut out = Vec::new();
                for (i, t) in v.into_set(column)?.iter().enumerate() {
                    let field = format!("nat[{i}]");
                    let add = NatAdd {
                        rule: NatRule::parse_text(&field, t)?,
                        may_exist: false,
                    };
                    nat::apply_add(&mut out, &add, &field)?;
                }
                r.nat = out.iter().map(NatRule::to_message).collect();
            }
            "load_balancer" => r.load_balancer = v.into_set(column)?,
            _ => return Err(not_settable(NAME, column)),
        }
        Ok(())
    }
    fn apply_op(
        &self,
        obj: &Object,
        column: &str,
        op: &ColumnOp,
    ) -> Option<Result<ColumnValue, ValidationError>> {
        if column != "static_routes" && column != "nat" {
            return None;
        }
        let action = Action::try_from(op.action).ok()?;
        if !matches!(action, Action::Add | Action::Remove) {
            return None;
        }
        let r = lr(obj)?;
        if column == "nat" {
            return Some((|| {
                let mut rs = nat_rules(r)?;
                for v in &op.values {
                    match action {
                        Action::Add => {
                            nat::apply_add(&mut rs, &NatAdd::parse_text(column, v)?, column)?
                        }
                        _ => nat::apply_del(&mut rs, &NatDel::parse_text(column, v)?, column)?,
                    }
                }
                Ok(ColumnValue::Set(rs.iter().map(NatRule::to_text).collect()))
            })());
        }
        Some((|| {
            let mut rs = routes(r)?;
            for v in &op.values {
                match action {
                    Action::Add => apply_add(&mut rs, &RouteAdd::parse_text(column, v)?, column)?,
                    _ => apply_del(&mut rs, &RouteDel::parse_text(column, v)?, column)?,
                }
            }
            Ok(ColumnValue::Set(
                rs.iter().map(StaticRoute::to_text).collect(),
            ))
        })())
    }
    fn insert(&self, obj: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        let r = lr_mut(obj).ok_or_else(|| ApiError::Internal("not a router".into()))?;
        check(r)?;
        normalize_lbs(r);
        r.enabled = true;
        let mine = r.clone();
        check_new_routes(&mine, &[], plan)?;
        check_new_nat(&mine, &[], plan)?;
        check_new_lbs(&mine, &[], plan)?;
        let name = r.name.clone();
        let key = allocate_datapath_key(plan, &format!("router:{name}"))?;
        if let Some(r) = lr_mut(obj) {
            r.tunnel_key = key;
        }
        Ok(())
    }
    fn update(&self, old: &Object, new: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        let r = lr_mut(new).ok_or_else(|| ApiError::Internal("not a router".into()))?;
        check(r)?;
        normalize_lbs(r);
        let r = &*r;
        let old_routes = lr(old).map(routes).transpose()?.unwrap_or_default();
        let mine = r.clone();
        check_new_routes(&mine, &old_routes, plan)?;
        let old_nat = lr(old).map(nat_rules).transpose()?.unwrap_or_default();
        check_new_nat(&mine, &old_nat, plan)?;
        let old_lbs = lr(old).map(|o| o.load_balancer.clone()).unwrap_or_default();
        check_new_lbs(&mine, &old_lbs, plan)?;
        Ok(())
    }
    fn refs(&self, obj: &Object) -> Vec<Ref> {
        lr(obj)
            .map(|r| super::load_balancer::column_refs(&r.load_balancer))
            .unwrap_or_default()
    }
    fn unlink(&self, obj: &mut Object, target_kind: &str, target: &str) {
        if let Some(r) = lr_mut(obj) {
            super::load_balancer::unlink_from_column(&mut r.load_balancer, target_kind, target);
        }
    }
    fn delete(&self, obj: &Object, plan: &mut Plan) -> ApiResult<()> {
        let r = lr(obj).ok_or_else(|| ApiError::Internal("not a router".into()))?;
        if r.tunnel_key != 0 {
            plan.release(datapath_claim(r.tunnel_key));
        }
        plan.delete_prefix(format!("claims/lrpk/{}/", r.name));
        Ok(())
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
