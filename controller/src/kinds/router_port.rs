//! `Logical_Router_Port`: a port of a router, with its MAC and networks. A switch connects
//! to it the OVN way: a `Logical_Switch_Port` of type `router` with
//! `options:router-port=<this port>` (views follow that link). Its `gateway_chassis`
//! (`lrp-set-gateway-chassis`, OVN's Gateway_Chassis rows, "CHASSIS PRIORITY" each) make it
//! a distributed gateway port; setting the first one needs a localnet path: the switch the
//! port attaches must have a localnet port.

use std::collections::BTreeSet;

use ipnetwork::IpNetwork;
use prost::Message;
use weft_proto::model::nat::{apply_gateway_del, apply_gateway_set, by_priority, Gateway};
use weft_proto::v1::{column_op::Action, object, ColumnOp, ColumnType, LogicalRouterPort, Object};

use super::{check_map, not_settable, set_map, EXTERNAL_IDS};
use crate::error::{ApiError, ApiResult};
use crate::ipam;
use crate::objects::{object as wrap, ColumnDef, ColumnValue, Kind, OnDelete, Plan, Ref};
use crate::state::ClusterState;
use crate::validate::{parse_mac, validate_name, ValidationError, MAX_ENTRIES};

/// The kind.
pub struct RouterPortKind;

/// Kind name.
pub const NAME: &str = "Logical_Router_Port";

static COLUMNS: &[ColumnDef] = &[
    ColumnDef::fixed("name", ColumnType::Scalar),
    ColumnDef::ro("router", ColumnType::Scalar),
    ColumnDef::rw("mac", ColumnType::Scalar),
    ColumnDef::rw("networks", ColumnType::Set),
    ColumnDef::rw("peer", ColumnType::Scalar),
    ColumnDef::rw("enabled", ColumnType::Scalar),
    ColumnDef::rw("options", ColumnType::Map),
    EXTERNAL_IDS,
    ColumnDef::ro("tunnel_key", ColumnType::Scalar),
    ColumnDef::rw("gateway_chassis", ColumnType::Set),
];

/// The port's parsed gateway chassis.
fn gateways(p: &LogicalRouterPort) -> Result<Vec<Gateway>, ValidationError> {
    p.gateway_chassis
        .iter()
        .enumerate()
        .map(|(i, g)| Gateway::from_message(&format!("router_port.gateway_chassis[{i}]"), g))
        .collect()
}

fn gateway_texts(p: &LogicalRouterPort) -> Vec<String> {
    gateways(p)
        .map(|g| by_priority(&g).iter().map(Gateway::to_text).collect())
        .unwrap_or_default()
}

/// A port that gets gateway chassis must reach a provider network: the switch it attaches
/// must have a localnet port (else nothing could leave through the gateway).
fn check_gateway_path(p: &LogicalRouterPort, was_gateway: bool, plan: &mut Plan) -> ApiResult<()> {
    if p.gateway_chassis.is_empty() || was_gateway {
        return Ok(());
    }
    if super::port::localnet_of_router_port(plan, &p.name).is_none() {
        let g = &p.gateway_chassis[0];
        return Err(ValidationError::new(
            "router_port.gateway_chassis",
            &g.chassis_name,
            format!(
                "router port {:?} has no localnet path: attach it to a switch with a \
                 localnet port (lsp-set-type PORT localnet) first",
                p.name
            ),
        )
        .into());
    }
    Ok(())
}

/// Claim of a router port key.
pub fn key_claim(router: &str, key: u32) -> String {
    format!("claims/lrpk/{router}/{key}")
}

super::object_accessors!(LogicalRouterPort, LogicalRouterPort, lrp, lrp_mut);

/// The ports of `router` as the plan sees them (the transaction depends on each one read).
pub fn ports_of_router(plan: &mut Plan, router: &str) -> Vec<LogicalRouterPort> {
    let mut names: BTreeSet<String> = plan
        .base()
        .router_ports_by_router
        .get(router)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    for (n, o) in plan.overlay_of(&RouterPortKind) {
        match o.as_ref().and_then(lrp) {
            Some(p) if p.router == router => {
                names.insert(n);
            }
            _ => {
                names.remove(&n);
            }
        }
    }
    names
        .iter()
        .filter_map(|n| plan.get(&RouterPortKind, n))
        .filter_map(|o| lrp(&o).cloned())
        .filter(|p| p.router == router)
        .collect()
}

/// The router port named `name`, as the plan sees it.
pub fn get(plan: &mut Plan, name: &str) -> Option<LogicalRouterPort> {
    plan.get(&RouterPortKind, name)
        .and_then(|o| lrp(&o).cloned())
}

/// True when two networks share an address.
fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    match (a, b) {
        (IpNetwork::V4(a), IpNetwork::V4(b)) => a.contains(b.network()) || b.contains(a.network()),
        (IpNetwork::V6(a), IpNetwork::V6(b)) => a.contains(b.network()) || b.contains(a.network()),
        _ => false,
    }
}

/// A network of `p` that overlaps a network of another port of its router is refused
/// (routing to it would be ambiguous).
fn check_overlaps(p: &LogicalRouterPort, plan: &mut Plan) -> Result<(), ValidationError> {
    let others: Vec<LogicalRouterPort> = ports_of_router(plan, &p.router)
        .into_iter()
        .filter(|o| o.name != p.name)
        .collect();
    for (i, n) in p.networks.iter().enumerate() {
        let Ok(net) = n.parse::<IpNetwork>() else {
            continue;
        };
        for o in &others {
            for on in &o.networks {
                if on.parse::<IpNetwork>().is_ok_and(|x| overlaps(&net, &x)) {
                    return Err(ValidationError::new(
                        format!("router_port.networks[{i}]"),
                        n,
                        format!(
                            "overlaps network {on} of router port {:?} on router {:?}",
                            o.name, p.router
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Validates and normalizes a router port's fields.
fn check(p: &mut LogicalRouterPort) -> Result<(), ValidationError> {
    validate_name("router_port.name", &p.name)?;
    validate_name("router_port.router", &p.router)?;
    p.mac = parse_mac(&p.mac).map_err(|r| ValidationError::new("router_port.mac", &p.mac, r))?;
    if p.networks.is_empty() {
        return Err(ValidationError::new(
            "router_port.networks",
            "",
            "at least one network (e.g. 10.0.0.1/24) is required",
        ));
    }
    if p.networks.len() > MAX_ENTRIES {
        return Err(ValidationError::new(
            "router_port.networks",
            &format!("{} entries", p.networks.len()),
            format!("too many entries (at most {MAX_ENTRIES})"),
        ));
    }
    for (i, n) in p.networks.iter_mut().enumerate() {
        let net: IpNetwork = n.parse().map_err(|_| {
            ValidationError::new(
                format!("router_port.networks[{i}]"),
                n,
                "expected ADDRESS/PREFIX, e.g. 10.0.0.1/24 or fd00::1/64",
            )
        })?;
        if !n.contains('/') {
            return Err(ValidationError::new(
                format!("router_port.networks[{i}]"),
                n,
                "a prefix length is required (ADDRESS/PREFIX)",
            ));
        }
        *n = format!("{}/{}", net.ip(), net.prefix());
    }
    if !p.peer.is_empty() {
        validate_name("router_port.peer", &p.peer)?;
    }
    check_map("router_port.options", &p.options)?;
    weft_proto::model::validate::gateway_mtu(&p.options)?;
    check_map("router_port.external_ids", &p.external_ids)
}

impl Kind for RouterPortKind {
    fn name(&self) -> &'static str {
        NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["router port", "lrp"]
    }
    fn prefix(&self) -> &'static str {
        "nb/router_ports/"
    }
    fn columns(&self) -> &'static [ColumnDef] {
        COLUMNS
    }
    fn encode(&self, obj: &Object) -> Vec<u8> {
        lrp(obj).map(|p| p.encode_to_vec()).unwrap_or_default()
    }
    super::message_methods!(
        LogicalRouterPort,
        LogicalRouterPort,
        lrp,
        router_ports,
        store_router_port
    );
    fn get_column(&self, obj: &Object, column: &str, _state: &ClusterState) -> Option<ColumnValue> {
        let p = lrp(obj)?;
        Some(match column {
            "name" => ColumnValue::str(&p.name),
            "router" => ColumnValue::str(&p.router),
            "mac" => ColumnValue::str(&p.mac),
            "networks" => ColumnValue::set(&p.networks),
            "peer" => ColumnValue::str(&p.peer),
            "enabled" => ColumnValue::bool(p.enabled),
            "options" => ColumnValue::map(&p.options),
            "external_ids" => ColumnValue::map(&p.external_ids),
            "tunnel_key" => ColumnValue::int(p.tunnel_key),
            "gateway_chassis" => ColumnValue::Set(gateway_texts(p)),
            _ => return None,
        })
    }
    fn set_column(
        &self,
        obj: &mut Object,
        column: &str,
        v: ColumnValue,
    ) -> Result<(), ValidationError> {
        let Some(p) = lrp_mut(obj) else {
            return Err(not_settable(NAME, column));
        };
        match column {
            "mac" => p.mac = v.into_scalar(column)?,
            "networks" => p.networks = v.into_set(column)?,
            "peer" => p.peer = v.into_scalar(column)?,
            "enabled" => p.enabled = v.into_bool(column)?,
            "options" => set_map(&mut p.options, column, v)?,
            "external_ids" => set_map(&mut p.external_ids, column, v)?,
            "gateway_chassis" => {
                let mut out = Vec::new();
                for (i, t) in v.into_set(column)?.iter().enumerate() {
                    let field = format!("router_port.gateway_chassis[{i}]");
                    apply_gateway_set(&mut out, Gateway::parse_text(&field, t)?);
                }
                p.gateway_chassis = out.iter().map(Gateway::to_message).collect();
            }
            _ => return Err(not_settable(NAME, column)),
        }
        Ok(())
    }
    /// `gateway_chassis` add ("CHASSIS [PRIORITY]": adds or re-prioritizes, as
    /// `lrp-set-gateway-chassis`) and remove ("CHASSIS": must be there, as
    /// `lrp-del-gateway-chassis`).
    fn apply_op(
        &self,
        obj: &Object,
        column: &str,
        op: &ColumnOp,
    ) -> Option<Result<ColumnValue, ValidationError>> {
        if column != "gateway_chassis" {
            return None;
        }
        let action = Action::try_from(op.action).ok()?;
        if !matches!(action, Action::Add | Action::Remove) {
            return None;
        }
        let p = lrp(obj)?;
        Some((|| {
            let mut gs = gateways(p)?;
            let field = "router_port.gateway_chassis";
            for v in &op.values {
                match action {
                    Action::Add => apply_gateway_set(&mut gs, Gateway::parse_text(field, v)?),
                    _ => apply_gateway_del(&mut gs, v.trim(), &p.name, field)?,
                }
            }
            Ok(ColumnValue::Set(gs.iter().map(Gateway::to_text).collect()))
        })())
    }
    fn refs(&self, obj: &Object) -> Vec<Ref> {
        lrp(obj)
            .map(|p| {
                vec![Ref {
                    kind: super::router::NAME,
                    name: p.router.clone(),
                    column: "router",
                    on_delete: OnDelete::Cascade,
                }]
            })
            .unwrap_or_default()
    }
    fn insert(&self, obj: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        let p = lrp_mut(obj).ok_or_else(|| ApiError::Internal("not a router port".into()))?;
        check(p)?;
        p.enabled = true;
        let mine = p.clone();
        check_overlaps(&mine, plan)?;
        gateways(&mine)?;
        check_gateway_path(&mine, false, plan)?;
        let p = lrp_mut(obj).ok_or_else(|| ApiError::Internal("not a router port".into()))?;
        let router = p.router.clone();
        let name = p.name.clone();
        let key = ipam::pick_key(
            1,
            super::port::MAX_PORT_KEY,
            |k| plan.claim_owner(&key_claim(&router, k)).is_some(),
            &mut rand::rng(),
        )
        .ok_or_else(|| {
            ApiError::FailedPrecondition(format!("router {router:?} has no free port key"))
        })?;
        plan.claim(key_claim(&router, key), &name)
            .map_err(|o| ApiError::Internal(format!("router port key {key} taken by {o}")))?;
        p.tunnel_key = key;
        Ok(())
    }
    fn update(&self, old: &Object, new: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        let p = lrp_mut(new).ok_or_else(|| ApiError::Internal("not a router port".into()))?;
        check(p)?;
        let mine = p.clone();
        if lrp(old).map(|o| &o.networks) != Some(&mine.networks) {
            check_overlaps(&mine, plan)?;
        }
        gateways(&mine)?;
        let was_gateway = lrp(old).is_some_and(|o| !o.gateway_chassis.is_empty());
        check_gateway_path(&mine, was_gateway, plan)?;
        Ok(())
    }
    fn delete(&self, obj: &Object, plan: &mut Plan) -> ApiResult<()> {
        let p = lrp(obj).ok_or_else(|| ApiError::Internal("not a router port".into()))?;
        if p.tunnel_key != 0 {
            plan.release(key_claim(&p.router, p.tunnel_key));
        }
        Ok(())
    }
}
