//! `Meter`: a named rate limit with one drop band (OVN's `Meter`, `ovn-nbctl meter-add`),
//! used by ACLs' `--meter` for their log packets. Kept in the state's generic object map;
//! the rules are in [`weft_proto::model::meter`]. An ACL naming a meter that does not exist
//! uses the agent's own log meter, as OVN does (the name is not a strong reference).

use prost::Message;
use weft_proto::model::meter::validate_meter;
use weft_proto::v1::{object, ColumnType, Meter, Object};

use super::{check_map, not_settable, set_map, EXTERNAL_IDS};
use crate::error::{ApiError, ApiResult};
use crate::objects::{object as wrap, ColumnDef, ColumnValue, Kind, Plan};
use crate::state::ClusterState;
use crate::validate::ValidationError;

/// The kind.
pub struct MeterKind;

/// Kind name.
pub const NAME: &str = "Meter";

static COLUMNS: &[ColumnDef] = &[
    ColumnDef::fixed("name", ColumnType::Scalar),
    ColumnDef::rw("action", ColumnType::Scalar),
    ColumnDef::rw("unit", ColumnType::Scalar),
    ColumnDef::rw("rate", ColumnType::Scalar),
    ColumnDef::rw("burst", ColumnType::Scalar),
    ColumnDef::rw("fair", ColumnType::Scalar),
    EXTERNAL_IDS,
];

super::object_accessors!(Meter, Meter, meter, meter_mut);

fn check(m: &mut Meter) -> Result<(), ValidationError> {
    validate_meter(m)?;
    check_map("meter.external_ids", &m.external_ids)
}

impl Kind for MeterKind {
    fn name(&self) -> &'static str {
        NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["meter"]
    }
    fn prefix(&self) -> &'static str {
        "nb/meters/"
    }
    fn columns(&self) -> &'static [ColumnDef] {
        COLUMNS
    }
    fn encode(&self, obj: &Object) -> Vec<u8> {
        meter(obj).map(|m| m.encode_to_vec()).unwrap_or_default()
    }
    super::generic_methods!(Meter, Meter, meter);
    fn get_column(&self, obj: &Object, column: &str, _state: &ClusterState) -> Option<ColumnValue> {
        let m = meter(obj)?;
        Some(match column {
            "name" => ColumnValue::str(&m.name),
            "action" => ColumnValue::str(&m.action),
            "unit" => ColumnValue::str(&m.unit),
            "rate" => ColumnValue::int(m.rate),
            "burst" => ColumnValue::int(m.burst),
            "fair" => ColumnValue::bool(m.fair),
            "external_ids" => ColumnValue::map(&m.external_ids),
            _ => return None,
        })
    }
    fn set_column(
        &self,
        obj: &mut Object,
        column: &str,
        v: ColumnValue,
    ) -> Result<(), ValidationError> {
        let Some(m) = meter_mut(obj) else {
            return Err(not_settable(NAME, column));
        };
        match column {
            "action" => m.action = v.into_scalar(column)?,
            "unit" => m.unit = v.into_scalar(column)?,
            "rate" => m.rate = v.into_u32(column)?,
            "burst" => m.burst = v.into_u32(column)?,
            "fair" => m.fair = v.into_bool(column)?,
            "external_ids" => set_map(&mut m.external_ids, column, v)?,
            _ => return Err(not_settable(NAME, column)),
        }
        Ok(())
    }
    fn insert(&self, obj: &mut Object, _plan: &mut Plan) -> ApiResult<()> {
        check(meter_mut(obj).ok_or_else(|| ApiError::Internal("not a meter".into()))?)?;
        Ok(())
    }
    fn update(&self, _old: &Object, new: &mut Object, _plan: &mut Plan) -> ApiResult<()> {
        check(meter_mut(new).ok_or_else(|| ApiError::Internal("not a meter".into()))?)?;
        Ok(())
    }
    fn delete(&self, _obj: &Object, _plan: &mut Plan) -> ApiResult<()> {
        Ok(())
    }
}
