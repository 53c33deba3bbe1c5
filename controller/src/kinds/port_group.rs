//! `Port_Group`: a named set of switch ports (OVN's), for ACLs placed on it
//! (`acl-add --type=port-group PG ...`) and for matches (`outport == @PG`, `$PG_ip4`). Kept
//! in the state's generic object map.
//!
//! The ports must exist when the group is written (`port_group.ports[i]` names the missing
//! one); afterwards they are weak references, as in OVN: deleting a port drops it from the
//! group's effect (views and the implied `PG_ip4`/`PG_ip6` sets skip ports that no longer
//! exist) without touching the group. Deleting the group deletes its ACLs; a group that
//! other ACLs' matches name cannot be deleted.

use prost::Message;
use weft_proto::model::acl::check_port_group_name;
use weft_proto::v1::{object, ColumnType, Object, PortGroup};

use super::{check_map, not_settable, set_map, EXTERNAL_IDS};
use crate::error::{ApiError, ApiResult};
use crate::objects::{object as wrap, ColumnDef, ColumnValue, Kind, Plan};
use crate::state::ClusterState;
use crate::validate::{validate_name, ValidationError};

/// The kind.
pub struct PortGroupKind;

/// Kind name.
pub const NAME: &str = "Port_Group";

/// Largest number of ports in one group.
pub const MAX_PORTS: usize = 16384;

static COLUMNS: &[ColumnDef] = &[
    ColumnDef::fixed("name", ColumnType::Scalar),
    ColumnDef::rw("ports", ColumnType::Set),
    EXTERNAL_IDS,
];

super::object_accessors!(PortGroup, PortGroup, pg, pg_mut);

/// Validates the group (name, ports existing, duplicates dropped) as the plan sees it.
fn check(g: &mut PortGroup, plan: &mut Plan) -> ApiResult<()> {
    check_port_group_name(&g.name)?;
    if g.ports.len() > MAX_PORTS {
        return Err(ValidationError::new(
            "port_group.ports",
            &format!("{} entries", g.ports.len()),
            format!("too many ports (at most {MAX_PORTS})"),
        )
        .into());
    }
    let mut out: Vec<String> = Vec::with_capacity(g.ports.len());
    for (i, p) in g.ports.iter().enumerate() {
        let p = p.trim();
        validate_name(&format!("port_group.ports[{i}]"), p)?;
        if plan.get(&super::port::PortKind, p).is_none() {
            return Err(ApiError::NotFound(format!(
                "port {p:?} not found (port_group.ports[{i}] of {:?})",
                g.name
            )));
        }
        if !out.iter().any(|x| x == p) {
            out.push(p.to_string());
        }
    }
    g.ports = out;
    check_map("port_group.external_ids", &g.external_ids)?;
    Ok(())
}

impl Kind for PortGroupKind {
    fn name(&self) -> &'static str {
        NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["port group", "pg"]
    }
    fn prefix(&self) -> &'static str {
        "nb/port_groups/"
    }
    fn columns(&self) -> &'static [ColumnDef] {
        COLUMNS
    }
    fn encode(&self, obj: &Object) -> Vec<u8> {
        pg(obj).map(|g| g.encode_to_vec()).unwrap_or_default()
    }
    super::generic_methods!(PortGroup, PortGroup, pg);
    fn get_column(&self, obj: &Object, column: &str, _state: &ClusterState) -> Option<ColumnValue> {
        let g = pg(obj)?;
        Some(match column {
            "name" => ColumnValue::str(&g.name),
            "ports" => ColumnValue::set(&g.ports),
            "external_ids" => ColumnValue::map(&g.external_ids),
            _ => return None,
        })
    }
    fn set_column(
        &self,
        obj: &mut Object,
        column: &str,
        v: ColumnValue,
    ) -> Result<(), ValidationError> {
        let Some(g) = pg_mut(obj) else {
            return Err(not_settable(NAME, column));
        };
        match column {
            "ports" => g.ports = v.into_set(column)?,
            "external_ids" => set_map(&mut g.external_ids, column, v)?,
            _ => return Err(not_settable(NAME, column)),
        }
        Ok(())
    }
    fn insert(&self, obj: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        check(
            pg_mut(obj).ok_or_else(|| ApiError::Internal("not a port group".into()))?,
            plan,
        )
    }
    fn update(&self, _old: &Object, new: &mut Object, plan: &mut Plan) -> ApiResult<()> {
        check(
            pg_mut(new).ok_or_else(|| ApiError::Internal("not a port group".into()))?,
            plan,
        )
    }
    fn delete(&self, _obj: &Object, _plan: &mut Plan) -> ApiResult<()> {
        Ok(())
    }
}
