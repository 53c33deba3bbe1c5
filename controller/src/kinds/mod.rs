//! One file per northbound object kind, each implementing [`crate::objects::Kind`]. To add a
//! kind: add its message to `proto/weft/v1/types.proto` (and an arm to `Object`), write
//! `kinds/<kind>.rs`, list it in [`ALL`], and add its weftctl noun file
//! (`cli/src/cmd/<noun>.rs`). See docs/architecture.md, "How to add an object kind".

/// `get`/`get_mut`: a kind's message inside an [`Object`](weft_proto::v1::Object).
macro_rules! object_accessors {
    ($variant:ident, $msg:ty, $get:ident, $get_mut:ident) => {
        fn $get(obj: &Object) -> Option<&$msg> {
            match &obj.kind {
                Some(object::Kind::$variant(m)) => Some(m),
                _ => None,
            }
        }

        fn $get_mut(obj: &mut Object) -> Option<&mut $msg> {
            match &mut obj.kind {
                Some(object::Kind::$variant(m)) => Some(m),
                _ => None,
            }
        }
    };
}
pub(crate) use object_accessors;

/// The [`Kind`] methods that only wrap and unwrap a kind's message.
macro_rules! codec_methods {
    ($variant:ident, $msg:ty, $get:ident) => {
        fn is(&self, obj: &Object) -> bool {
            $get(obj).is_some()
        }
        fn object_name<'a>(&self, obj: &'a Object) -> &'a str {
            $get(obj).map(|m| m.name.as_str()).unwrap_or("")
        }
        fn decode(&self, bytes: &[u8]) -> Result<Object, prost::DecodeError> {
            Ok(wrap(object::Kind::$variant(
                <$msg as prost::Message>::decode(bytes)?,
            )))
        }
    };
}
pub(crate) use codec_methods;

/// The [`Kind`] methods of a kind with its own map in the cached state (`$field`, kept by
/// `ClusterState::$store`, for kinds the views and indexes read).
macro_rules! message_methods {
    ($variant:ident, $msg:ty, $get:ident, $field:ident, $store:ident) => {
        super::codec_methods!($variant, $msg, $get);
        fn load(&self, state: &ClusterState, name: &str) -> Option<Object> {
            state
                .$field
                .get(name)
                .map(|m| wrap(object::Kind::$variant(m.clone())))
        }
        fn names(&self, state: &ClusterState) -> Vec<String> {
            state.$field.keys().cloned().collect()
        }
        fn store(&self, state: &mut ClusterState, name: &str, obj: Option<Object>, revision: i64) {
            let m = obj.and_then(|o| match o.kind {
                Some(object::Kind::$variant(m)) => Some(m),
                _ => None,
            });
            state.$store(name, m, revision);
        }
    };
}
pub(crate) use message_methods;

/// The [`Kind`] methods of a kind kept in the state's generic `objects` map: a new kind
/// needs no edit of `state.rs` until something has to index it.
macro_rules! generic_methods {
    ($variant:ident, $msg:ty, $get:ident) => {
        super::codec_methods!($variant, $msg, $get);
        fn load(&self, state: &ClusterState, name: &str) -> Option<Object> {
            state
                .objects
                .get(self.name())
                .and_then(|m| m.get(name))
                .cloned()
        }
        fn names(&self, state: &ClusterState) -> Vec<String> {
            state
                .objects
                .get(self.name())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        }
        fn store(&self, state: &mut ClusterState, name: &str, obj: Option<Object>, revision: i64) {
            state.store_object(self.name(), name, obj, revision);
        }
    };
}
pub(crate) use generic_methods;

pub mod acl;
pub mod address_set;
pub mod chassis;
pub mod load_balancer;
pub mod meter;
pub mod port;
pub mod port_group;
pub mod router;
pub mod router_port;
pub mod switch;

use std::collections::HashMap;

use weft_proto::v1::ColumnType;

use crate::objects::{ColumnDef, ColumnValue, Kind};
use crate::validate::{validate_map, ValidationError};

/// The registry: every kind, in dependency order (a kind before the kinds that refer to it).
pub static ALL: &[&dyn Kind] = &[
    &switch::SwitchKind,
    &port::PortKind,
    &chassis::ChassisKind,
    &router::RouterKind,
    &router_port::RouterPortKind,
    &address_set::AddressSetKind,
    &port_group::PortGroupKind,
    &acl::AclKind,
    &load_balancer::LoadBalancerKind,
    &meter::MeterKind,
];

/// The `external_ids` column every kind has.
pub const EXTERNAL_IDS: ColumnDef = ColumnDef::rw("external_ids", ColumnType::Map);

/// Validates a map column of `kind` (`field` like `port.external_ids`).
pub fn check_map(field: &str, m: &HashMap<String, String>) -> Result<(), ValidationError> {
    validate_map(field, m.iter())
}

/// Sets a map field from a column value.
pub fn set_map(
    target: &mut HashMap<String, String>,
    column: &str,
    v: ColumnValue,
) -> Result<(), ValidationError> {
    *target = v.into_map(column)?;
    Ok(())
}

/// An error for a column the kind does not set (the planner checked existence, so this is
/// a read-only or computed one).
pub fn not_settable(kind: &str, column: &str) -> ValidationError {
    ValidationError::new(
        "column",
        column,
        format!("column {column} of {kind} is read-only"),
    )
}
