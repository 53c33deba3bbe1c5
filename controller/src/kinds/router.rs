//! `Logical_Router`: a router datapath. Its ports cascade (lr-del deletes them). Routing
//! itself comes with the routers issue; the object exists so views follow switch → router →
//! switch reachability already.

use prost::Message;
use weft_proto::v1::{object, ColumnType, LogicalRouter, Object};

use super::switch::{allocate_datapath_key, datapath_claim};
use super::{check_map, not_settable, set_map, EXTERNAL_IDS};
use crate::error::{ApiError, ApiResult};
use crate::objects::{object as wrap, ColumnDef, ColumnValue, Kind, Plan};
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
];

super::object_accessors!(LogicalRouter, LogicalRouter, lr, lr_mut);

fn check(r: &LogicalRouter) -> Result<(), ValidationError> {
    validate_name("router.name", &r.name)?;
    check_map("router.options", &r.options)?;
    check_map("router.external_ids", &r.external_ids)
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
            _ => return Err(not_settable(NAME, column)),
        }
        Ok(())
    }
    fn insert(&self, obj: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        let r = lr_mut(obj).ok_or_else(|| ApiError::Internal("not a router".into()))?;
        check(r)?;
        r.enabled = true;
        let name = r.name.clone();
        let key = allocate_datapath_key(plan, &format!("router:{name}"))?;
        if let Some(r) = lr_mut(obj) {
            r.tunnel_key = key;
        }
        Ok(())
    }
    fn update(&self, _old: &Object, new: &mut Object, _plan: &mut Plan) -> ApiResult<()> {
        check(lr(new).ok_or_else(|| ApiError::Internal("not a router".into()))?)?;
        Ok(())
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
