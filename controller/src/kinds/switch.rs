//! `Logical_Switch`: an L2 domain with an optional IPv4 subnet, a VNI and a datapath key.
//! Its ports cascade: deleting a switch deletes them (and their claims and bindings).

use std::collections::HashSet;

use prost::Message;
use weft_proto::v1::{object, ColumnType, LogicalSwitch, Object};

use super::{check_map, not_settable, set_map, EXTERNAL_IDS};
use crate::error::{ApiError, ApiResult};
use crate::ipam;
use crate::objects::{object as wrap, ColumnDef, ColumnValue, Kind, Plan, Ref};
use crate::state::ClusterState;
use crate::validate::{self, ValidationError, MAX_VNI};

/// The kind.
pub struct SwitchKind;

/// Kind name.
pub const NAME: &str = "Logical_Switch";

static COLUMNS: &[ColumnDef] = &[
    ColumnDef::fixed("name", ColumnType::Scalar),
    ColumnDef::fixed("subnet", ColumnType::Scalar),
    ColumnDef::fixed("vni", ColumnType::Scalar),
    ColumnDef::rw("mtu", ColumnType::Scalar),
    ColumnDef::rw("other_config", ColumnType::Map),
    EXTERNAL_IDS,
    ColumnDef::ro("tunnel_key", ColumnType::Scalar),
    ColumnDef::ro("ports", ColumnType::Set),
    ColumnDef::rw("load_balancer", ColumnType::Set),
];

/// Claim of a VNI.
pub fn vni_claim(vni: u32) -> String {
    format!("claims/vni/{vni}")
}

/// Claim of a datapath key (switches and routers share the space).
pub fn datapath_claim(key: u32) -> String {
    format!("claims/dp/{key}")
}

/// Port-set generation key of a switch: rewritten by every port create/delete; a switch
/// delete compares it, so a port added meanwhile is never orphaned.
pub fn gen_key(switch: &str) -> String {
    format!("gen/{switch}")
}

super::object_accessors!(LogicalSwitch, LogicalSwitch, sw, sw_mut);

/// Allocates a datapath key for `owner` (a switch or router name, for the claim's value).
pub fn allocate_datapath_key(plan: &mut Plan, owner: &str) -> ApiResult<u32> {
    let key = ipam::pick_key(
        1,
        MAX_VNI,
        |k| plan.claim_owner(&datapath_claim(k)).is_some(),
        &mut rand::rng(),
    )
    .ok_or_else(|| ApiError::FailedPrecondition("no free datapath key left".into()))?;
    plan.claim(datapath_claim(key), owner)
        .map_err(|o| ApiError::Internal(format!("datapath key {key} taken by {o}")))?;
    Ok(key)
}

fn validate_common(s: &LogicalSwitch) -> Result<(), ValidationError> {
    if s.mtu != 0 && !(68..=65535).contains(&s.mtu) {
        return Err(ValidationError::new(
            "switch.mtu",
            &s.mtu.to_string(),
            "must be 0 (default) or 68..=65535",
        ));
    }
    check_map("switch.other_config", &s.other_config)?;
    check_map("switch.external_ids", &s.external_ids)?;
    for (i, lb) in s.load_balancer.iter().enumerate() {
        validate::validate_name(&format!("switch.load_balancer[{i}]"), lb)?;
    }
    Ok(())
}

/// Sorted, without duplicates: the stored form of the `load_balancer` column.
fn normalize_lbs(s: &mut LogicalSwitch) {
    super::load_balancer::normalize_column(&mut s.load_balancer);
}

impl Kind for SwitchKind {
    fn name(&self) -> &'static str {
        NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["switch", "ls"]
    }
    fn prefix(&self) -> &'static str {
        "nb/switches/"
    }
    fn columns(&self) -> &'static [ColumnDef] {
        COLUMNS
    }
    fn encode(&self, obj: &Object) -> Vec<u8> {
        sw(obj).map(|s| s.encode_to_vec()).unwrap_or_default()
    }
    super::message_methods!(LogicalSwitch, LogicalSwitch, sw, switches, store_switch);
    fn get_column(&self, obj: &Object, column: &str, state: &ClusterState) -> Option<ColumnValue> {
        let s = sw(obj)?;
        Some(match column {
            "name" => ColumnValue::str(&s.name),
            "subnet" => ColumnValue::str(&s.subnet),
            "vni" => ColumnValue::int(s.vni),
            "mtu" => ColumnValue::int(s.mtu),
            "other_config" => ColumnValue::map(&s.other_config),
            "external_ids" => ColumnValue::map(&s.external_ids),
            "tunnel_key" => ColumnValue::int(s.tunnel_key),
            "load_balancer" => ColumnValue::set(&s.load_balancer),
            "ports" => ColumnValue::Set(
                state
                    .ports_by_switch
                    .get(&s.name)
                    .map(|set| set.iter().cloned().collect())
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
        let Some(s) = sw_mut(obj) else {
            return Err(not_settable(NAME, column));
        };
        match column {
            "subnet" => s.subnet = v.into_scalar(column)?,
            "vni" => s.vni = v.into_u32(column)?,
            "mtu" => s.mtu = v.into_u32(column)?,
            "other_config" => set_map(&mut s.other_config, column, v)?,
            "external_ids" => set_map(&mut s.external_ids, column, v)?,
            "load_balancer" => s.load_balancer = v.into_set(column)?,
            _ => return Err(not_settable(NAME, column)),
        }
        Ok(())
    }
    fn insert(&self, obj: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        let s = sw_mut(obj).ok_or_else(|| ApiError::Internal("not a switch".into()))?;
        let subnet = validate::validate_switch(s)?;
        validate_common(s)?;
        normalize_lbs(s);
        s.subnet = subnet.map(|n| n.to_string()).unwrap_or_default();
        let name = s.name.clone();
        if s.vni != 0 {
            let vni = s.vni;
            plan.claim(vni_claim(vni), &name).map_err(|owner| {
                ApiError::AlreadyExists(
                    ValidationError::new(
                        "switch.vni",
                        &vni.to_string(),
                        format!("VNI already used by switch {owner:?}"),
                    )
                    .to_string(),
                )
            })?;
        } else {
            let used: HashSet<u32> = plan
                .base()
                .claims
                .range("claims/vni/".to_string()..)
                .take_while(|(k, _)| k.starts_with("claims/vni/"))
                .filter_map(|(k, _)| k.strip_prefix("claims/vni/")?.parse().ok())
                .collect();
            let mut vni;
            loop {
                vni = ipam::pick_vni(&used, &mut rand::rng())?;
                if plan.claim_owner(&vni_claim(vni)).is_none() {
                    break;
                }
            }
            plan.claim(vni_claim(vni), &name)
                .map_err(|o| ApiError::Internal(format!("VNI {vni} taken by {o}")))?;
            s.vni = vni;
        }
        s.tunnel_key = 0;
        let key = allocate_datapath_key(plan, &name)?;
        if let Some(s) = sw_mut(obj) {
            s.tunnel_key = key;
        }
        Ok(())
    }
    fn update(&self, _old: &Object, new: &mut Object, _plan: &mut Plan) -> ApiResult<()> {
        let s = sw_mut(new).ok_or_else(|| ApiError::Internal("not a switch".into()))?;
        validate_common(s)?;
        normalize_lbs(s);
        Ok(())
    }
    fn refs(&self, obj: &Object) -> Vec<Ref> {
        sw(obj)
            .map(|s| super::load_balancer::column_refs(&s.load_balancer))
            .unwrap_or_default()
    }
    fn unlink(&self, obj: &mut Object, target_kind: &str, target: &str) {
        if let Some(s) = sw_mut(obj) {
            super::load_balancer::unlink_from_column(&mut s.load_balancer, target_kind, target);
        }
    }
    fn delete(&self, obj: &Object, plan: &mut Plan) -> ApiResult<()> {
        let s = sw(obj).ok_or_else(|| ApiError::Internal("not a switch".into()))?;
        let gen = gen_key(&s.name);
        let gen_rev = plan.base().revs.get(&gen).copied().unwrap_or(0);
        plan.compare_raw(&gen, gen_rev);
        plan.delete_raw(gen);
        for p in ["ip", "mac", "pk"] {
            plan.delete_prefix(format!("claims/{p}/{}/", s.name));
        }
        if s.vni != 0 {
            plan.release(vni_claim(s.vni));
        }
        if s.tunnel_key != 0 {
            plan.release(datapath_claim(s.tunnel_key));
        }
        Ok(())
    }
}
