//! `Chassis`: a host running weft-agent. Registered by its agent (Subscribe, see
//! [`crate::status`]); through the generic commands only `external_ids` can be set, and a
//! destroy is `chassis-del` (refused while the agent is connected; its bindings go with it).

use prost::Message;
use weft_proto::v1::{object, Chassis, ColumnType, Object};

use super::port::{binding_key, sighting_key};
use super::{check_map, not_settable, set_map, EXTERNAL_IDS};
use crate::error::{ApiError, ApiResult};
use crate::objects::{object as wrap, ColumnDef, ColumnValue, Kind, Plan};
use crate::state::ClusterState;
use crate::validate::ValidationError;

/// The kind.
pub struct ChassisKind;

/// Kind name.
pub const NAME: &str = "Chassis";

static COLUMNS: &[ColumnDef] = &[
    ColumnDef::fixed("name", ColumnType::Scalar),
    ColumnDef::ro("encap_ip", ColumnType::Scalar),
    ColumnDef::ro("encap_types", ColumnType::Set),
    ColumnDef::ro("datapath_type", ColumnType::Scalar),
    ColumnDef::ro("version", ColumnType::Scalar),
    ColumnDef::ro("alive", ColumnType::Scalar),
    ColumnDef::ro("applied_revision", ColumnType::Scalar),
    ColumnDef::ro("last_error", ColumnType::Scalar),
    ColumnDef::ro("debug_addr", ColumnType::Scalar),
    ColumnDef::ro("bridge_mappings", ColumnType::Map),
    EXTERNAL_IDS,
];

/// Liveness key of a chassis (on its lease).
pub fn alive_key(name: &str) -> String {
    format!("status/alive/{name}")
}

super::object_accessors!(Chassis, Chassis, ch, ch_mut);

impl Kind for ChassisKind {
    fn name(&self) -> &'static str {
        NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["chassis"]
    }
    fn prefix(&self) -> &'static str {
        "chassis/"
    }
    fn columns(&self) -> &'static [ColumnDef] {
        COLUMNS
    }
    fn encode(&self, obj: &Object) -> Vec<u8> {
        ch(obj)
            .map(|c| {
                let mut c = c.clone();
                c.alive = false;
                c.applied_revision = 0;
                c.last_error.clear();
                c.encode_to_vec()
            })
            .unwrap_or_default()
    }
    super::message_methods!(Chassis, Chassis, ch, chassis, store_chassis);
    fn get_column(&self, obj: &Object, column: &str, state: &ClusterState) -> Option<ColumnValue> {
        let c = ch(obj)?;
        Some(match column {
            "name" => ColumnValue::str(&c.name),
            "encap_ip" => ColumnValue::str(&c.encap_ip),
            "encap_types" => ColumnValue::set(&c.encap_types),
            "datapath_type" => ColumnValue::str(&c.datapath_type),
            "version" => ColumnValue::str(&c.version),
            "debug_addr" => ColumnValue::str(&c.debug_addr),
            "bridge_mappings" => ColumnValue::map(&c.bridge_mappings),
            "alive" => ColumnValue::bool(state.alive.contains(&c.name)),
            "applied_revision" => {
                ColumnValue::int(state.applied.get(&c.name).copied().unwrap_or(0))
            }
            "last_error" => {
                ColumnValue::str(state.errors.get(&c.name).map(String::as_str).unwrap_or(""))
            }
            "external_ids" => ColumnValue::map(&c.external_ids),
            _ => return None,
        })
    }
    fn set_column(
        &self,
        obj: &mut Object,
        column: &str,
        v: ColumnValue,
    ) -> Result<(), ValidationError> {
        let Some(c) = ch_mut(obj) else {
            return Err(not_settable(NAME, column));
        };
        match column {
            "external_ids" => set_map(&mut c.external_ids, column, v),
            _ => Err(not_settable(NAME, column)),
        }
    }
    fn insert(&self, obj: &mut Object, _plan: &mut Plan) -> ApiResult<()> {
        Err(ApiError::FailedPrecondition(format!(
            "chassis {:?}: chassis are registered by their weft-agent, not created",
            self.object_name(obj)
        )))
    }
    fn update(&self, _old: &Object, new: &mut Object, _plan: &mut Plan) -> ApiResult<()> {
        let c = ch(new).ok_or_else(|| ApiError::Internal("not a chassis".into()))?;
        check_map("chassis.external_ids", &c.external_ids)?;
        Ok(())
    }
    fn delete(&self, obj: &Object, plan: &mut Plan) -> ApiResult<()> {
        let name = self.object_name(obj).to_string();
        if plan.base().alive.contains(&name) {
            return Err(ApiError::FailedPrecondition(format!(
                "chassis {name:?} is alive (its agent is connected): stop the agent and wait \
                 for its lease to expire before deleting it"
            )));
        }
        plan.compare_raw(&alive_key(&name), 0);
        let bound: Vec<String> = plan
            .base()
            .bindings
            .iter()
            .filter(|(_, b)| b.chassis == name)
            .map(|(p, _)| p.clone())
            .collect();
        for p in bound {
            plan.depend(&binding_key(&p));
            plan.delete_raw(binding_key(&p));
        }
        let seen: Vec<String> = plan
            .base()
            .sightings
            .iter()
            .filter(|(_, s)| s.chassis == name)
            .map(|(p, _)| p.clone())
            .collect();
        for p in seen {
            plan.depend(&sighting_key(&p));
            plan.delete_raw(sighting_key(&p));
        }
        plan.delete_raw(format!("status/applied/{name}"));
        plan.delete_raw(format!("status/error/{name}"));
        Ok(())
    }
}
