//! `Logical_Switch_Port`: a port on a switch (a VIF, or the switch end of a router port).
//! Claims its IPs and MACs on the switch (static ones checked, `dynamic` allocated) and a port
//! key; binds at once to the chassis that already reported its VIF (a sighting).

use std::net::Ipv4Addr;

use prost::Message;
use weft_proto::v1::{object, ColumnType, LogicalSwitchPort, Object, PortAddress, PortBinding};

use super::switch::{gen_key, SwitchKind};
use super::{check_map, not_settable, set_map, EXTERNAL_IDS};
use crate::error::{ApiError, ApiResult};
use crate::ipam;
use crate::objects::{object as wrap, ColumnDef, ColumnValue, Kind, OnDelete, Plan, Ref};
use crate::state::ClusterState;
use crate::validate::{
    self, parse_addresses, parse_port_security, validate_name, AddressEntry, ValidationError,
};

/// The kind.
pub struct PortKind;

/// Kind name.
pub const NAME: &str = "Logical_Switch_Port";

/// Largest port key (15 bits, as OVN's logical port keys in the Geneve option).
pub const MAX_PORT_KEY: u32 = 32767;

static COLUMNS: &[ColumnDef] = &[
    ColumnDef::fixed("name", ColumnType::Scalar),
    ColumnDef::ro("switch", ColumnType::Scalar),
    ColumnDef::rw("addresses", ColumnType::Set),
    ColumnDef::rw("port_security", ColumnType::Set),
    ColumnDef::rw("type", ColumnType::Scalar),
    ColumnDef::rw("options", ColumnType::Map),
    ColumnDef::rw("enabled", ColumnType::Scalar),
    ColumnDef::ro("dynamic_addresses", ColumnType::Scalar),
    ColumnDef::ro("up", ColumnType::Scalar),
    ColumnDef::ro("chassis", ColumnType::Scalar),
    EXTERNAL_IDS,
    ColumnDef::ro("tunnel_key", ColumnType::Scalar),
];

/// Claim of an IP on a switch.
pub fn ip_claim(switch: &str, ip: &str) -> String {
    format!("claims/ip/{switch}/{ip}")
}
/// Claim of a MAC on a switch.
pub fn mac_claim(switch: &str, mac: &str) -> String {
    format!("claims/mac/{switch}/{mac}")
}
/// Claim of a port key on a switch.
pub fn key_claim(switch: &str, key: u32) -> String {
    format!("claims/pk/{switch}/{key}")
}
/// Binding key of a port.
pub fn binding_key(port: &str) -> String {
    format!("status/bindings/{port}")
}
/// Sighting key of a port.
pub fn sighting_key(port: &str) -> String {
    format!("status/sightings/{port}")
}

super::object_accessors!(LogicalSwitchPort, LogicalSwitchPort, lsp, lsp_mut);

fn entry_string(e: &AddressEntry) -> String {
    match e {
        AddressEntry::Dynamic => "dynamic".into(),
        AddressEntry::Unknown => "unknown".into(),
        AddressEntry::Router => "router".into(),
        AddressEntry::Static { mac, ips } => {
            let mut s = mac.clone();
            for ip in ips {
                s.push(' ');
                s.push_str(&ip.to_string());
            }
            s
        }
    }
}

/// "MAC IP..." text of a port-security entry.
pub fn security_string(a: &PortAddress) -> String {
    let mut s = a.mac.clone();
    for ip in &a.ips {
        s.push(' ');
        s.push_str(ip);
    }
    s
}

/// IPs and MACs a stored port holds claims on.
pub fn claims_of(p: &LogicalSwitchPort) -> (Vec<String>, Vec<String>) {
    let v = crate::view::resolve_port(p, "");
    let mut ips = Vec::new();
    let mut macs = Vec::new();
    for a in v.addresses {
        macs.push(a.mac);
        ips.extend(a.ips);
    }
    (ips, macs)
}

/// The router port a router-type port attaches (`options:router-port`).
fn router_link(p: &LogicalSwitchPort) -> Option<&str> {
    (p.r#type == "router")
        .then(|| p.options.get("router-port").map(String::as_str))
        .flatten()
}

/// The switch ports (as the plan sees them) of type `router` attaching router port `rp`.
fn attaching_ports(plan: &mut Plan, rp: &str) -> Vec<LogicalSwitchPort> {
    let mut names: std::collections::BTreeSet<String> = plan
        .base()
        .router_port_links
        .get(rp)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    for (n, o) in plan.overlay_of(&PortKind) {
        if o.as_ref().and_then(lsp).and_then(router_link) == Some(rp) {
            names.insert(n);
        }
    }
    names
        .iter()
        .filter_map(|n| plan.get(&PortKind, n))
        .filter_map(|o| lsp(&o).cloned())
        .filter(|p| router_link(p) == Some(rp))
        .collect()
}

/// The localnet port (as the plan sees it) of the switch that router port `rp` attaches
/// (through a router-type switch port), if any: the port's path to a provider network.
pub fn localnet_of_router_port(plan: &mut Plan, rp: &str) -> Option<LogicalSwitchPort> {
    for att in attaching_ports(plan, rp) {
        let mut names: std::collections::BTreeSet<String> = plan
            .base()
            .ports_by_switch
            .get(&att.switch_name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for (n, o) in plan.overlay_of(&PortKind) {
            if o.as_ref()
                .and_then(lsp)
                .is_some_and(|p| p.switch_name == att.switch_name)
            {
                names.insert(n);
            }
        }
        for n in names {
            if let Some(p) = plan.get(&PortKind, &n).and_then(|o| lsp(&o).cloned()) {
                if p.switch_name == att.switch_name && p.r#type == "localnet" {
                    return Some(p);
                }
            }
        }
    }
    None
}

/// A router-type port's `router-port` must name an existing router port that no other
/// switch port attaches and that is not peered with another router port.
fn check_router_link(p: &LogicalSwitchPort, plan: &mut Plan) -> ApiResult<()> {
    let Some(rp) = router_link(p) else {
        return Ok(());
    };
    let field = "port.options:router-port";
    let Some(lrp) = super::router_port::get(plan, rp) else {
        return Err(ValidationError::new(field, rp, "no such router port").into());
    };
    if !lrp.peer.is_empty() {
        return Err(ValidationError::new(
            field,
            rp,
            format!(
                "router port {rp:?} is already peered with router port {:?}",
                lrp.peer
            ),
        )
        .into());
    }
    let mut attached: std::collections::BTreeSet<String> = plan
        .base()
        .router_port_links
        .get(rp)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    for (n, o) in plan.overlay_of(&PortKind) {
        match o.as_ref().and_then(lsp).and_then(router_link) {
            Some(x) if x == rp => {
                attached.insert(n);
            }
            _ => {
                attached.remove(&n);
            }
        }
    }
    attached.remove(&p.name);
    if let Some(other) = attached.iter().next() {
        let other = other.clone();
        // The index may be stale for a port this plan has not read: confirm.
        let still = plan
            .get(&PortKind, &other)
            .and_then(|o| lsp(&o).and_then(router_link).map(|x| x == rp))
            .unwrap_or(false);
        if still {
            return Err(ValidationError::new(
                field,
                rp,
                format!("router port {rp:?} is already attached by switch port {other:?}"),
            )
            .into());
        }
    }
    Ok(())
}

/// Validates the port's own fields (no state).
fn validate_fields(p: &LogicalSwitchPort) -> ApiResult<Vec<PortAddress>> {
    validate_name("port.name", &p.name)?;
    validate_name("port.switch_name", &p.switch_name)?;
    validate::validate_port_type(&p.r#type)?;
    check_map("port.options", &p.options)?;
    check_map("port.external_ids", &p.external_ids)?;
    if p.r#type == "router" {
        if let Some(rp) = p.options.get("router-port") {
            validate_name("port.options:router-port", rp)?;
        }
    }
    if p.r#type == "localnet" {
        let key = weft_proto::model::LOCALNET_NETWORK_NAME;
        if let Some(n) = p.options.get(key) {
            validate_name(&format!("port.options:{key}"), n)?;
        }
    }
    let security = parse_port_security(&p.port_security)?;
    if p.addresses.len() > validate::MAX_ENTRIES {
        parse_addresses(&p.addresses, None, &p.switch_name)?;
    }
    Ok(security)
}

/// Resolves `p`'s addresses on its switch: normalizes them, keeps (`old_dynamic`) or
/// allocates the dynamic address, and claims every IP and MAC (releasing those of `old`).
fn claim_addresses(
    p: &mut LogicalSwitchPort,
    old: Option<&LogicalSwitchPort>,
    plan: &mut Plan,
) -> ApiResult<()> {
    let switch = p.switch_name.clone();
    let sw = plan
        .get(&SwitchKind, &switch)
        .and_then(|o| match o.kind {
            Some(object::Kind::LogicalSwitch(s)) => Some(s),
            _ => None,
        })
        .ok_or_else(|| {
            ApiError::NotFound(format!("switch {switch:?} not found (port.switch_name)"))
        })?;
    let subnet = validate::stored_subnet(&sw);
    let entries = parse_addresses(&p.addresses, subnet, &switch)?;
    let (old_ips, old_macs) = old.map(claims_of).unwrap_or_default();
    let old_dynamic = old
        .filter(|o| o.addresses.iter().any(|a| a == "dynamic"))
        .and_then(|o| validate::parse_dynamic(&o.dynamic_addresses));
    let name = p.name.clone();
    let mut ips: Vec<String> = Vec::new();
    let mut macs: Vec<String> = Vec::new();
    let taken_by_other = |plan: &Plan, rel: &str| plan.claim_owner(rel).filter(|o| *o != name);
    for (i, e) in entries.iter().enumerate() {
        if let AddressEntry::Static { mac, ips: eips } = e {
            let field = format!("addresses[{i}]");
            let value = entry_string(e);
            if let Some(owner) = taken_by_other(plan, &mac_claim(&switch, mac)) {
                return Err(ApiError::AlreadyExists(
                    ValidationError::new(
                        field,
                        &value,
                        format!("MAC {mac} already used by port {owner:?} on switch {switch:?}"),
                    )
                    .to_string(),
                ));
            }
            macs.push(mac.clone());
            for ip in eips {
                let ip = ip.to_string();
                if let Some(owner) = taken_by_other(plan, &ip_claim(&switch, &ip)) {
                    return Err(ApiError::AlreadyExists(
                        ValidationError::new(
                            field,
                            &value,
                            format!("IP {ip} already used by port {owner:?} on switch {switch:?}"),
                        )
                        .to_string(),
                    ));
                }
                ips.push(ip);
            }
        }
    }
    let mut dynamic = String::new();
    if entries.contains(&AddressEntry::Dynamic) {
        let free = |plan: &Plan, mac: &str, ip: Option<Ipv4Addr>| {
            !macs.iter().any(|m| m == mac)
                && taken_by_other(plan, &mac_claim(&switch, mac)).is_none()
                && ip.is_none_or(|ip| {
                    let s = ip.to_string();
                    !ips.contains(&s) && taken_by_other(plan, &ip_claim(&switch, &s)).is_none()
                })
        };
        // Keep the previous allocation when it still fits (same subnet, still free).
        let keep = old_dynamic.filter(|(mac, ip)| match (subnet, ip) {
            (Some(net), Some(ip)) => net.contains(*ip) && free(plan, mac, Some(*ip)),
            (None, None) => free(plan, mac, None),
            _ => false,
        });
        let mut rng = rand::rng();
        let (mac, ip) = match (keep, subnet) {
            (Some(k), _) => k,
            (None, Some(subnet)) => {
                let ip = ipam::pick_ip_with(
                    &switch,
                    subnet,
                    |ip: Ipv4Addr| {
                        let s = ip.to_string();
                        ips.contains(&s) || plan.is_claimed_or_reserved(&ip_claim(&switch, &s))
                    },
                    &mut rng,
                )?;
                let mac = ipam::pick_mac_with(
                    &switch,
                    ip,
                    |m| {
                        macs.iter().any(|x| x == m)
                            || plan.is_claimed_or_reserved(&mac_claim(&switch, m))
                    },
                    &mut rng,
                )?;
                (mac, Some(ip))
            }
            // No subnet: a MAC only, as OVN.
            (None, None) => {
                let mac = ipam::pick_random_mac(
                    &switch,
                    |m| {
                        macs.iter().any(|x| x == m)
                            || plan.is_claimed_or_reserved(&mac_claim(&switch, m))
                    },
                    &mut rng,
                )?;
                (mac, None)
            }
        };
        match ip {
            Some(ip) => {
                dynamic = format!("{mac} {ip}");
                ips.push(ip.to_string());
            }
            None => dynamic = mac.clone(),
        }
        macs.push(mac);
    }
    for ip in old_ips.iter().filter(|ip| !ips.contains(ip)) {
        plan.release(ip_claim(&switch, ip));
    }
    for mac in old_macs.iter().filter(|m| !macs.contains(m)) {
        plan.release(mac_claim(&switch, mac));
    }
    for ip in &ips {
        plan.claim(ip_claim(&switch, ip), &name)
            .map_err(|o| ApiError::Internal(format!("IP {ip} claimed by {o}")))?;
    }
    for mac in &macs {
        plan.claim(mac_claim(&switch, mac), &name)
            .map_err(|o| ApiError::Internal(format!("MAC {mac} claimed by {o}")))?;
    }
    p.addresses = entries.iter().map(entry_string).collect();
    p.dynamic_addresses = dynamic;
    Ok(())
}

impl Kind for PortKind {
    fn name(&self) -> &'static str {
        NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["port", "lsp"]
    }
    fn prefix(&self) -> &'static str {
        "nb/ports/"
    }
    fn columns(&self) -> &'static [ColumnDef] {
        COLUMNS
    }
    fn reserved_claims(&self, obj: &Object) -> Vec<String> {
        let Some(p) = lsp(obj) else { return Vec::new() };
        // Unparsable addresses are the insert's own error to report; nothing to reserve.
        let entries = parse_addresses(&p.addresses, None, &p.switch_name).unwrap_or_default();
        let mut out = Vec::new();
        for e in entries {
            if let AddressEntry::Static { mac, ips } = e {
                out.push(mac_claim(&p.switch_name, &mac));
                out.extend(
                    ips.iter()
                        .map(|ip| ip_claim(&p.switch_name, &ip.to_string())),
                );
            }
        }
        out
    }
    fn encode(&self, obj: &Object) -> Vec<u8> {
        lsp(obj)
            .map(|p| {
                let mut p = p.clone();
                p.up = false;
                p.chassis.clear();
                p.encode_to_vec()
            })
            .unwrap_or_default()
    }
    super::message_methods!(LogicalSwitchPort, LogicalSwitchPort, lsp, ports, store_port);
    fn get_column(&self, obj: &Object, column: &str, state: &ClusterState) -> Option<ColumnValue> {
        let p = lsp(obj)?;
        let p = state.port_with_status(p);
        Some(match column {
            "name" => ColumnValue::str(&p.name),
            "switch" => ColumnValue::str(&p.switch_name),
            "addresses" => ColumnValue::set(&p.addresses),
            "port_security" => ColumnValue::set(&p.port_security),
            "type" => ColumnValue::str(&p.r#type),
            "options" => ColumnValue::map(&p.options),
            "enabled" => ColumnValue::bool(p.enabled),
            "dynamic_addresses" => ColumnValue::str(&p.dynamic_addresses),
            "up" => ColumnValue::bool(p.up),
            "chassis" => ColumnValue::str(&p.chassis),
            "external_ids" => ColumnValue::map(&p.external_ids),
            "tunnel_key" => ColumnValue::int(p.tunnel_key),
            _ => return None,
        })
    }
    fn set_column(
        &self,
        obj: &mut Object,
        column: &str,
        v: ColumnValue,
    ) -> Result<(), ValidationError> {
        let Some(p) = lsp_mut(obj) else {
            return Err(not_settable(NAME, column));
        };
        match column {
            "addresses" => p.addresses = v.into_set(column)?,
            "port_security" => p.port_security = v.into_set(column)?,
            "type" => p.r#type = v.into_scalar(column)?,
            "options" => set_map(&mut p.options, column, v)?,
            "enabled" => p.enabled = v.into_bool(column)?,
            "external_ids" => set_map(&mut p.external_ids, column, v)?,
            _ => return Err(not_settable(NAME, column)),
        }
        Ok(())
    }
    fn refs(&self, obj: &Object) -> Vec<Ref> {
        lsp(obj)
            .map(|p| {
                vec![Ref {
                    kind: super::switch::NAME,
                    name: p.switch_name.clone(),
                    column: "switch",
                    on_delete: OnDelete::Cascade,
                }]
            })
            .unwrap_or_default()
    }
    fn referrers(&self, plan: &Plan, target_kind: &str, target: &str) -> Vec<String> {
        if target_kind != super::switch::NAME {
            return Vec::new();
        }
        let mut names: std::collections::BTreeSet<String> = plan
            .base()
            .ports_by_switch
            .get(target)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for (n, o) in plan.overlay_of(self) {
            match o.as_ref().and_then(lsp) {
                Some(p) if p.switch_name == target => {
                    names.insert(n);
                }
                _ => {
                    names.remove(&n);
                }
            }
        }
        names.into_iter().collect()
    }
    fn may_exist_matches(&self, existing: &Object, new: &Object) -> bool {
        lsp(existing).map(|p| &p.switch_name) == lsp(new).map(|p| &p.switch_name)
    }
    fn already_exists(&self, existing: &Object) -> ApiError {
        let p = lsp(existing);
        ApiError::AlreadyExists(format!(
            "port {:?} already exists on switch {:?}",
            p.map(|p| p.name.as_str()).unwrap_or(""),
            p.map(|p| p.switch_name.as_str()).unwrap_or("")
        ))
    }
    fn insert(&self, obj: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        let p = lsp_mut(obj).ok_or_else(|| ApiError::Internal("not a port".into()))?;
        let security = validate_fields(p)?;
        check_router_link(p, plan)?;
        let p = lsp_mut(obj).ok_or_else(|| ApiError::Internal("not a port".into()))?;
        p.port_security = security.iter().map(security_string).collect();
        p.up = false;
        p.chassis.clear();
        // Ports are created enabled (lsp-set-enabled disables them).
        p.enabled = true;
        claim_addresses(p, None, plan)?;
        let switch = p.switch_name.clone();
        let name = p.name.clone();
        let key = ipam::pick_key(
            1,
            MAX_PORT_KEY,
            |k| plan.claim_owner(&key_claim(&switch, k)).is_some(),
            &mut rand::rng(),
        )
        .ok_or_else(|| {
            ApiError::FailedPrecondition(format!(
                "switch {switch:?} has no free port key (at most {MAX_PORT_KEY} ports)"
            ))
        })?;
        plan.claim(key_claim(&switch, key), &name)
            .map_err(|o| ApiError::Internal(format!("port key {key} taken by {o}")))?;
        p.tunnel_key = key;
        plan.put_raw(gen_key(&switch), Vec::new());
        // Its VIF is already on a chassis: bind in this transaction, so the create's revision
        // carries the binding and --wait=hv covers every host's flows for it.
        let sighting = plan.base().sightings.get(&name).cloned();
        if let Some(s) = sighting {
            if plan.raw(&binding_key(&name)).is_none() && plan.has_room(2) {
                let b = PortBinding {
                    port: name.clone(),
                    chassis: s.chassis.clone(),
                    up: false,
                };
                plan.compare_raw(&sighting_key(&name), s.mod_revision);
                plan.put_raw(binding_key(&name), b.encode_to_vec());
                plan.delete_raw(sighting_key(&name));
            }
        }
        Ok(())
    }
    fn update(&self, old: &Object, new: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        let old = lsp(old).ok_or_else(|| ApiError::Internal("not a port".into()))?;
        let p = lsp_mut(new).ok_or_else(|| ApiError::Internal("not a port".into()))?;
        let security = validate_fields(p)?;
        if router_link(p) != router_link(old) {
            check_router_link(p, plan)?;
        }
        let p = lsp_mut(new).ok_or_else(|| ApiError::Internal("not a port".into()))?;
        p.port_security = security.iter().map(security_string).collect();
        if p.addresses != old.addresses {
            claim_addresses(p, Some(old), plan)?;
        }
        Ok(())
    }
    fn delete(&self, obj: &Object, plan: &mut Plan) -> ApiResult<()> {
        let p = lsp(obj).ok_or_else(|| ApiError::Internal("not a port".into()))?;
        let (ips, macs) = claims_of(p);
        for ip in ips {
            plan.release(ip_claim(&p.switch_name, &ip));
        }
        for mac in macs {
            plan.release(mac_claim(&p.switch_name, &mac));
        }
        if p.tunnel_key != 0 {
            plan.release(key_claim(&p.switch_name, p.tunnel_key));
        }
        plan.delete_raw(binding_key(&p.name));
        plan.put_raw(gen_key(&p.switch_name), Vec::new());
        Ok(())
    }
    fn with_status(&self, mut obj: Object, plan: &Plan) -> Object {
        if let Some(p) = lsp_mut(&mut obj) {
            let binding = match plan.raw(&binding_key(&p.name)) {
                Some(Some(bytes)) => PortBinding::decode(bytes.as_slice()).ok(),
                Some(None) => None,
                None => plan.base().bindings.get(&p.name).cloned(),
            };
            p.up = binding.as_ref().is_some_and(|b| b.up);
            p.chassis = binding.map(|b| b.chassis).unwrap_or_default();
        }
        obj
    }
}
