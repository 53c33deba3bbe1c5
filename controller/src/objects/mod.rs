//! The generic object layer: every northbound object kind declares itself once (a
//! [`Kind`] in `controller/src/kinds/<kind>.rs`, listed in [`crate::kinds::ALL`]) and the
//! rest of the controller works on any kind through this trait: the one transaction
//! planner ([`plan::Plan`]) and its retry loop ([`transact`]), the generic database
//! commands (columns), the cache ([`crate::state`]) and the views.
//!
//! A kind says: its ovn-nbctl table name and etcd prefix, its columns, how it validates,
//! allocates and claims against the state as the transaction has left it so far
//! ([`Kind::insert`], [`Kind::update`], [`Kind::delete`]), and which other objects it refers
//! to, with what a delete of the target does ([`Ref`]). Start with [`plan::Plan`].

pub mod column;
pub mod plan;
pub mod transact;

#[cfg(test)]
mod tests;

use weft_proto::v1::{object, ColumnType, Object};

use crate::error::ApiResult;
use crate::state::ClusterState;
use crate::validate::ValidationError;

pub use column::ColumnValue;
pub use plan::Plan;

/// One column of a kind's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDef {
    /// Column name, as ovn-nbctl spells it.
    pub name: &'static str,
    /// Scalar, set or map.
    pub ty: ColumnType,
    /// Computed or status columns that `set`/`add`/`remove`/`clear` refuse.
    pub read_only: bool,
    /// Columns fixed at creation (a change is refused, naming the column).
    pub immutable: bool,
}

impl ColumnDef {
    /// A writable column.
    pub const fn rw(name: &'static str, ty: ColumnType) -> Self {
        ColumnDef {
            name,
            ty,
            read_only: false,
            immutable: false,
        }
    }
    /// A read-only column.
    pub const fn ro(name: &'static str, ty: ColumnType) -> Self {
        ColumnDef {
            name,
            ty,
            read_only: true,
            immutable: false,
        }
    }
    /// A column set at creation only.
    pub const fn fixed(name: &'static str, ty: ColumnType) -> Self {
        ColumnDef {
            name,
            ty,
            read_only: false,
            immutable: true,
        }
    }
}

/// What deleting the target of a reference does to the referrer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// The delete is refused, naming the referrer.
    Restrict,
    /// The referrer is deleted with the target (a switch's ports).
    Cascade,
    /// The reference is removed from the referrer, which stays (OVSDB's weak references: a
    /// switch's `load_balancer` entry when the LB is deleted). See [`Kind::unlink`].
    Unlink,
}

/// A reference from one object to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    /// Kind of the target.
    pub kind: &'static str,
    /// Name of the target.
    pub name: String,
    /// Referring column (for messages).
    pub column: &'static str,
    /// What a delete of the target does.
    pub on_delete: OnDelete,
}

/// One object kind. Implementations are stateless unit structs in `kinds/`.
pub trait Kind: Send + Sync + 'static {
    /// ovn-nbctl table name, e.g. `Logical_Switch_Port` (matched case-insensitively).
    fn name(&self) -> &'static str;
    /// Other accepted spellings (also case-insensitive).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// etcd key prefix under `{prefix}/v1/`, e.g. `nb/ports/`.
    fn prefix(&self) -> &'static str;
    /// Columns in schema order (`name` first).
    fn columns(&self) -> &'static [ColumnDef];
    /// Whether `obj` is of this kind.
    fn is(&self, obj: &Object) -> bool;
    /// The object's name.
    fn object_name<'a>(&self, obj: &'a Object) -> &'a str;
    /// Decodes a stored value.
    fn decode(&self, bytes: &[u8]) -> Result<Object, prost::DecodeError>;
    /// Encodes for storage (status fields cleared).
    fn encode(&self, obj: &Object) -> Vec<u8>;
    /// The stored object named `name` in `state`.
    fn load(&self, state: &ClusterState, name: &str) -> Option<Object>;
    /// Names of every stored object of this kind in `state`, sorted.
    fn names(&self, state: &ClusterState) -> Vec<String>;
    /// Keeps `state`'s maps in step with a put (`Some`) or delete (`None`) of `name`.
    fn store(&self, state: &mut ClusterState, name: &str, obj: Option<Object>, revision: i64);
    /// A column's value (`None`: no such column).
    fn get_column(&self, obj: &Object, column: &str, state: &ClusterState) -> Option<ColumnValue>;
    /// Sets a writable column (already checked to exist and be writable).
    fn set_column(
        &self,
        obj: &mut Object,
        column: &str,
        value: ColumnValue,
    ) -> Result<(), ValidationError>;
    /// A column whose add/remove ops have the kind's own semantics (a router's
    /// `static_routes`: `lr-route-add --ecmp`, `lr-route-del PREFIX`): the column's new
    /// value, or `None` for the generic set/map semantics of [`column::apply`].
    fn apply_op(
        &self,
        _obj: &Object,
        _column: &str,
        _op: &weft_proto::v1::ColumnOp,
    ) -> Option<Result<ColumnValue, ValidationError>> {
        None
    }
    /// References this object holds.
    fn refs(&self, _obj: &Object) -> Vec<Ref> {
        Vec::new()
    }
    /// Names of the objects of this kind that refer to `target_kind`/`target` as the plan
    /// sees it. The default scans every object of the kind; kinds with an index override.
    fn referrers(&self, plan: &Plan, target_kind: &str, target: &str) -> Vec<String> {
        plan.names(self)
            .into_iter()
            .filter(|n| {
                plan.peek(self, n).is_some_and(|o| {
                    self.refs(&o)
                        .iter()
                        .any(|r| r.kind == target_kind && r.name == target)
                })
            })
            .collect()
    }
    /// For a delete of `name`: the names it stands for when it is a pattern the kind knows
    /// (ACLs: `ls:SWITCH:` = every ACL of the switch, `ls:SWITCH:DIRECTION:` = those of one
    /// direction), else None (a plain name).
    fn expand_delete(&self, _plan: &Plan, _name: &str) -> ApiResult<Option<Vec<String>>> {
        Ok(None)
    }
    /// Removes the reference to `target_kind`/`target` from `obj` (for [`OnDelete::Unlink`]).
    fn unlink(&self, _obj: &mut Object, _target_kind: &str, _target: &str) {}
    /// With `may_exist`, whether an existing object counts as the one asked for (a port must
    /// be on the same switch).
    fn may_exist_matches(&self, _existing: &Object, _new: &Object) -> bool {
        true
    }
    /// The error for creating an object that exists.
    fn already_exists(&self, existing: &Object) -> crate::error::ApiError {
        crate::error::ApiError::AlreadyExists(format!(
            "{} {:?} already exists",
            plan::human(self),
            self.object_name(existing)
        ))
    }
    /// The claims a new `obj` takes by value (a port's static IPs and MACs). The planner
    /// reserves those of every insert in a transaction before running it, so a dynamic
    /// allocation by an earlier op never takes what a later op asks for by name.
    fn reserved_claims(&self, _obj: &Object) -> Vec<String> {
        Vec::new()
    }
    /// Validates and completes a new object (allocations, claims, side keys).
    fn insert(&self, obj: &mut Object, plan: &mut Plan) -> ApiResult<()>;
    /// Validates a changed object against its old form (claims moved, side keys).
    fn update(&self, old: &Object, new: &mut Object, plan: &mut Plan) -> ApiResult<()>;
    /// Releases what a deleted object held (claims, side keys). Referrers are handled by the
    /// planner before this is called.
    fn delete(&self, obj: &Object, plan: &mut Plan) -> ApiResult<()>;
    /// The object with its read-only status filled in as the plan sees it (a port's binding).
    fn with_status(&self, obj: Object, _plan: &Plan) -> Object {
        obj
    }
}

/// Every registered kind (see [`crate::kinds::ALL`]).
pub fn all() -> &'static [&'static dyn Kind] {
    crate::kinds::ALL
}

/// The kind named `name` (table name or alias, case-insensitive).
pub fn by_name(name: &str) -> Option<&'static dyn Kind> {
    all().iter().copied().find(|k| {
        k.name().eq_ignore_ascii_case(name)
            || k.aliases().iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

/// The kind named `name`, or an InvalidArgument naming it and listing the kinds.
pub fn kind_or_err(field: &str, name: &str) -> Result<&'static dyn Kind, ValidationError> {
    by_name(name).ok_or_else(|| {
        let known: Vec<&str> = all().iter().map(|k| k.name()).collect();
        ValidationError::new(
            field,
            name,
            format!("unknown kind (one of {})", known.join(", ")),
        )
    })
}

/// The kind of an object.
pub fn kind_of(obj: &Object) -> Option<&'static dyn Kind> {
    all().iter().copied().find(|k| k.is(obj))
}

/// The kind whose prefix `rel` (a key relative to `{prefix}/v1/`) is under, with the name.
pub fn by_key(rel: &str) -> Option<(&'static dyn Kind, &str)> {
    all()
        .iter()
        .copied()
        .find_map(|k| rel.strip_prefix(k.prefix()).map(|n| (k, n)))
}

/// The column definition, or an InvalidArgument naming it.
pub fn column_def(kind: &dyn Kind, column: &str) -> Result<ColumnDef, ValidationError> {
    kind.columns()
        .iter()
        .copied()
        .find(|c| c.name == column)
        .ok_or_else(|| {
            let known: Vec<&str> = kind.columns().iter().map(|c| c.name).collect();
            ValidationError::new(
                "column",
                column,
                format!(
                    "no such column in {} (columns: {})",
                    kind.name(),
                    known.join(", ")
                ),
            )
        })
}

/// Wraps a kind's message into an [`Object`].
pub fn object(k: object::Kind) -> Object {
    Object { kind: Some(k) }
}
