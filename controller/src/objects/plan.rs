//! The transaction planner: runs a list of ops against a base [`ClusterState`] (a
//! consistent snapshot at one revision) plus an overlay of what the earlier ops did, and
//! turns the result into ONE store transaction. Pure: no I/O.
//!
//! Every key an op relied on becomes a compare (its mod_revision in the base, 0 for "absent"),
//! every change a put or delete. If another writer changed any of those keys in between, the
//! transaction fails as a whole and [`super::transact`] re-plans on a fresher state. Claims
//! (`claims/...` keys: IPs, MACs, VNIs, datapath and port keys) are the uniqueness rules: a
//! new claim is compared absent, so two replicas can never both take one.

use std::collections::{BTreeMap, BTreeSet};

use weft_proto::v1::{column_op::Action, ColumnOp, Object, OpResult};

use super::{column, column_def, kind_of, kind_or_err, Kind, OnDelete};
use crate::error::{ApiError, ApiResult};
use crate::state::{ClusterState, Keys};
use crate::store::{Compare, Op as StoreOp, Txn};
use crate::validate::ValidationError;

/// One planned op, with what it did.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The object after the op (None after a delete).
    pub object: Option<Object>,
    /// False when the op changed nothing.
    pub changed: bool,
}

impl From<Planned> for OpResult {
    fn from(p: Planned) -> Self {
        OpResult {
            object: p.object,
            changed: p.changed,
        }
    }
}

/// The planner's state for one attempt of one transaction.
pub struct Plan<'a> {
    base: &'a ClusterState,
    keys: &'a Keys,
    /// Objects as the earlier ops left them: Some = exists (possibly changed), None = deleted.
    objects: BTreeMap<(&'static str, String), Option<Object>>,
    /// Claims as the earlier ops left them (relative `claims/...` keys): Some(owner) or None.
    claims: BTreeMap<String, Option<String>>,
    /// Claims the transaction's inserts take by value ([`Kind::reserved_claims`]): dynamic
    /// allocation avoids them.
    reserved: BTreeSet<String>,
    /// Relative key → expected mod_revision (0 = absent).
    compares: BTreeMap<String, i64>,
    /// Relative key → Some(value) to put, None to delete; in key order.
    writes: BTreeMap<String, Option<Vec<u8>>>,
    /// Relative prefixes deleted as a whole.
    prefix_deletes: BTreeSet<String>,
    /// Largest store transaction (compares or ops).
    max_ops: usize,
    acl_max_flows: usize,
}

/// Relative key of an object.
pub fn object_key<K: Kind + ?Sized>(kind: &K, name: &str) -> String {
    format!("{}{name}", kind.prefix())
}

impl<'a> Plan<'a> {
    /// A plan over `base`.
    pub fn new(base: &'a ClusterState, keys: &'a Keys) -> Self {
        Plan {
            base,
            keys,
            objects: BTreeMap::new(),
            claims: BTreeMap::new(),
            reserved: BTreeSet::new(),
            compares: BTreeMap::new(),
            writes: BTreeMap::new(),
            prefix_deletes: BTreeSet::new(),
            max_ops: usize::MAX,
            acl_max_flows: weft_proto::model::acl::DEFAULT_MAX_FLOWS,
        }
    }

    /// The same plan limited to `max_ops` compares or ops (etcd's `--max-txn-ops`).
    pub fn with_max_ops(mut self, max_ops: usize) -> Self {
        self.max_ops = max_ops;
        self
    }

    /// The same plan with this ACL flow limit (`--acl-max-flows`).
    pub fn with_acl_max_flows(mut self, n: usize) -> Self {
        self.acl_max_flows = n;
        self
    }

    /// The largest number of flows one ACL may compile to.
    pub fn acl_max_flows(&self) -> usize {
        self.acl_max_flows
    }

    /// Whether `n` more compares and ops still fit (optional work, like binding a port from
    /// a sighting, is skipped when they do not).
    pub fn has_room(&self, n: usize) -> bool {
        let (c, o) = self.size();
        c.max(o) + n <= self.max_ops
    }

    /// What earlier ops wrote to a raw key: Some(Some(value)) put, Some(None) deleted, None
    /// untouched.
    pub fn raw(&self, rel: &str) -> Option<Option<&Vec<u8>>> {
        self.writes.get(rel).map(|v| v.as_ref())
    }

    /// The base state (what was read, before this transaction).
    pub fn base(&self) -> &ClusterState {
        self.base
    }

    /// Revision of the base state.
    pub fn revision(&self) -> i64 {
        self.base.revision
    }

    /// Records that the plan relies on `rel` having its base mod_revision.
    pub fn depend(&mut self, rel: &str) {
        if self.compares.contains_key(rel) {
            return;
        }
        let rev = self.base.revs.get(rel).copied().unwrap_or(0);
        self.compares.insert(rel.to_string(), rev);
    }

    /// Records that the plan relies on `rel` having exactly `mod_revision`.
    pub fn compare_raw(&mut self, rel: &str, mod_revision: i64) {
        self.compares.insert(rel.to_string(), mod_revision);
    }

    /// Puts a raw key (relative).
    pub fn put_raw(&mut self, rel: String, value: Vec<u8>) {
        self.writes.insert(rel, Some(value));
    }

    /// Deletes a raw key (relative).
    pub fn delete_raw(&mut self, rel: String) {
        self.writes.insert(rel, None);
    }

    /// Deletes every key under a relative prefix.
    pub fn delete_prefix(&mut self, rel: String) {
        self.prefix_deletes.insert(rel);
    }

    /// The object as the plan sees it, without depending on it.
    pub fn peek<K: Kind + ?Sized>(&self, kind: &K, name: &str) -> Option<Object> {
        match self.objects.get(&(kind.name(), name.to_string())) {
            Some(o) => o.clone(),
            None => kind.load(self.base, name),
        }
    }

    /// The object as the plan sees it; the transaction depends on it (exists unchanged, or
    /// stays absent).
    pub fn get<K: Kind + ?Sized>(&mut self, kind: &K, name: &str) -> Option<Object> {
        if !self.objects.contains_key(&(kind.name(), name.to_string())) {
            self.depend(&object_key(kind, name));
        }
        self.peek(kind, name)
    }

    /// Names of every object of `kind` as the plan sees them, sorted.
    pub fn names<K: Kind + ?Sized>(&self, kind: &K) -> Vec<String> {
        let mut set: BTreeSet<String> = kind.names(self.base).into_iter().collect();
        for ((k, n), o) in &self.objects {
            if *k == kind.name() {
                if o.is_some() {
                    set.insert(n.clone());
                } else {
                    set.remove(n);
                }
            }
        }
        set.into_iter().collect()
    }

    /// Objects of `kind` created or changed by earlier ops (name, object).
    pub fn overlay_of<K: Kind + ?Sized>(&self, kind: &K) -> Vec<(String, Option<Object>)> {
        self.objects
            .iter()
            .filter(|((k, _), _)| *k == kind.name())
            .map(|((_, n), o)| (n.clone(), o.clone()))
            .collect()
    }

    /// Writes an object.
    pub fn put<K: Kind + ?Sized>(&mut self, kind: &K, obj: Object) {
        let name = kind.object_name(&obj).to_string();
        self.writes
            .insert(object_key(kind, &name), Some(kind.encode(&obj)));
        self.objects.insert((kind.name(), name), Some(obj));
    }

    /// Deletes an object.
    pub fn remove<K: Kind + ?Sized>(&mut self, kind: &K, name: &str) {
        self.writes.insert(object_key(kind, name), None);
        self.objects.insert((kind.name(), name.to_string()), None);
    }

    /// Who holds a claim (relative `claims/...` key), as the plan sees it.
    pub fn claim_owner(&self, rel: &str) -> Option<String> {
        match self.claims.get(rel) {
            Some(o) => o.clone(),
            None => self.base.claims.get(rel).cloned(),
        }
    }

    /// Reserves the claims of every insert in `ops` that its kind takes by value, before any
    /// op runs (see [`Kind::reserved_claims`]).
    pub fn reserve_inserts<'o>(&mut self, objects: impl IntoIterator<Item = &'o Object>) {
        for obj in objects {
            if let Some(kind) = kind_of(obj) {
                self.reserved.extend(kind.reserved_claims(obj));
            }
        }
    }

    /// Whether a dynamic allocation must avoid `rel`: someone holds it, or an insert in this
    /// transaction asks for it by value.
    pub fn is_claimed_or_reserved(&self, rel: &str) -> bool {
        self.reserved.contains(rel) || self.claim_owner(rel).is_some()
    }

    /// Takes a claim for `owner`. Err(current owner) when someone else holds it. A claim
    /// the owner already holds is kept as it is.
    pub fn claim(&mut self, rel: String, owner: &str) -> Result<(), String> {
        match self.claim_owner(&rel) {
            Some(o) if o == owner => Ok(()),
            Some(o) => Err(o),
            None => {
                if !self.base.claims.contains_key(&rel) {
                    self.compares.entry(rel.clone()).or_insert(0);
                }
                self.writes
                    .insert(rel.clone(), Some(owner.as_bytes().to_vec()));
                self.claims.insert(rel, Some(owner.to_string()));
                Ok(())
            }
        }
    }

    /// Releases a claim.
    pub fn release(&mut self, rel: String) {
        self.writes.insert(rel.clone(), None);
        self.claims.insert(rel, None);
    }

    /// Number of compares and of ops the store transaction will hold.
    pub fn size(&self) -> (usize, usize) {
        (
            self.compares.len(),
            self.writes.len() + self.prefix_deletes.len(),
        )
    }

    /// Whether the plan writes anything.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.prefix_deletes.is_empty()
    }

    /// The changes as text lines, for `--dry-run`.
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .writes
            .iter()
            .map(|(k, v)| match v {
                Some(_) => format!("put {k}"),
                None => format!("delete {k}"),
            })
            .collect();
        out.extend(
            self.prefix_deletes
                .iter()
                .map(|p| format!("delete prefix {p}")),
        );
        out
    }

    /// The store transaction: compares, then deletes of prefixes, then puts and deletes.
    pub fn to_txn(&self) -> Txn {
        let root = self.keys.root();
        let mut ops: Vec<StoreOp> = self
            .prefix_deletes
            .iter()
            .map(|p| StoreOp::DeletePrefix(format!("{root}{p}")))
            .collect();
        for (k, v) in &self.writes {
            // A key under a prefix deleted as a whole needs no delete of its own.
            if v.is_none()
                && self
                    .prefix_deletes
                    .iter()
                    .any(|p| k.starts_with(p.as_str()))
            {
                continue;
            }
            ops.push(match v {
                Some(v) => StoreOp::put(format!("{root}{k}"), v.clone()),
                None => StoreOp::Delete(format!("{root}{k}")),
            });
        }
        Txn {
            compares: self
                .compares
                .iter()
                .map(|(k, r)| Compare::ModRevision(format!("{root}{k}"), *r))
                .collect(),
            ops,
        }
    }

    // ---- the three generic ops ----

    /// Creates `obj` (its kind's insert hook validates, allocates and claims).
    pub fn insert(&mut self, mut obj: Object, may_exist: bool) -> ApiResult<Planned> {
        let kind = kind_of(&obj).ok_or_else(|| {
            ApiError::InvalidArgument("invalid object \"\": no kind set".to_string())
        })?;
        let name = kind.object_name(&obj).to_string();
        if let Some(existing) = self.get(kind, &name) {
            if may_exist && kind.may_exist_matches(&existing, &obj) {
                return Ok(Planned {
                    object: Some(kind.with_status(existing, self)),
                    changed: false,
                });
            }
            return Err(kind.already_exists(&existing));
        }
        kind.insert(&mut obj, self)?;
        self.check_refs(kind, &obj)?;
        self.put(kind, obj.clone());
        Ok(Planned {
            object: Some(kind.with_status(obj, self)),
            changed: true,
        })
    }

    /// Applies column ops to an existing object.
    pub fn update(
        &mut self,
        kind_name: &str,
        name: &str,
        columns: &[ColumnOp],
        if_exists: bool,
    ) -> ApiResult<Planned> {
        let kind = kind_or_err("kind", kind_name)?;
        let Some(old) = self.get(kind, name) else {
            if if_exists {
                return Ok(Planned {
                    object: None,
                    changed: false,
                });
            }
            return Err(not_found(kind, name));
        };
        let mut new = old.clone();
        for (i, op) in columns.iter().enumerate() {
            let def = column_def(kind, &op.column)?;
            if def.read_only || def.name == "name" {
                return Err(ValidationError::new(
                    format!("columns[{i}].column"),
                    &op.column,
                    format!("column {} of {} is read-only", def.name, kind.name()),
                )
                .into());
            }
            let current = kind
                .get_column(&new, def.name, self.base)
                .ok_or_else(|| ApiError::Internal(format!("column {} has no value", def.name)))?;
            let value = match kind.apply_op(&new, def.name, op) {
                Some(v) => v?,
                None => column::apply(&def, current.clone(), op)?,
            };
            if def.immutable && value != current {
                let action = Action::try_from(op.action).unwrap_or(Action::Set);
                return Err(ValidationError::new(
                    def.name,
                    &op.values.join(","),
                    format!(
                        "column {} of {} is set when it is created and cannot be changed ({})",
                        def.name,
                        kind.name(),
                        action.as_str_name().to_ascii_lowercase()
                    ),
                )
                .into());
            }
            kind.set_column(&mut new, def.name, value)?;
        }
        if new == old {
            return Ok(Planned {
                object: Some(kind.with_status(old, self)),
                changed: false,
            });
        }
        kind.update(&old, &mut new, self)?;
        self.check_refs(kind, &new)?;
        self.put(kind, new.clone());
        Ok(Planned {
            object: Some(kind.with_status(new, self)),
            changed: true,
        })
    }

    /// Deletes an object; referrers that cascade go with it, referrers that restrict make it
    /// fail, naming them.
    pub fn delete(&mut self, kind_name: &str, name: &str, if_exists: bool) -> ApiResult<Planned> {
        let kind = kind_or_err("kind", kind_name)?;
        if let Some(names) = kind.expand_delete(self, name)? {
            for n in &names {
                self.depend(&object_key(kind, n));
                self.delete_object(kind, n, 0)?;
            }
            return Ok(Planned {
                object: None,
                changed: !names.is_empty(),
            });
        }
        if self.get(kind, name).is_none() {
            if if_exists {
                return Ok(Planned {
                    object: None,
                    changed: false,
                });
            }
            return Err(not_found(kind, name));
        }
        self.delete_object(kind, name, 0)?;
        Ok(Planned {
            object: None,
            changed: true,
        })
    }

    fn delete_object(&mut self, kind: &dyn Kind, name: &str, depth: usize) -> ApiResult<()> {
        if depth > 8 {
            return Err(ApiError::FailedPrecondition(format!(
                "cascading delete of {} {name:?} nests too deep",
                kind.name()
            )));
        }
        let Some(obj) = self.get(kind, name) else {
            return Ok(());
        };
        for other in super::all() {
            for r in other.referrers(self, kind.name(), name) {
                let Some(ro) = self.get(*other, &r) else {
                    continue;
                };
                let how = other
                    .refs(&ro)
                    .into_iter()
                    .find(|x| x.kind == kind.name() && x.name == name);
                match how {
                    Some(x) if x.on_delete == OnDelete::Restrict => {
                        return Err(ApiError::FailedPrecondition(format!(
                            "cannot delete {} {name:?}: {} {r:?} refers to it ({})",
                            kind.name(),
                            other.name(),
                            x.column
                        )));
                    }
                    Some(x) if x.on_delete == OnDelete::Unlink => {
                        let mut ro = ro;
                        other.unlink(&mut ro, kind.name(), name);
                        self.put(*other, ro);
                    }
                    Some(_) => self.delete_object(*other, &r, depth + 1)?,
                    None => {}
                }
            }
        }
        kind.delete(&obj, self)?;
        self.remove(kind, name);
        Ok(())
    }

    fn check_refs(&mut self, kind: &dyn Kind, obj: &Object) -> ApiResult<()> {
        for r in kind.refs(obj) {
            let Some(target) = super::by_name(r.kind) else {
                continue;
            };
            if self.get(target, &r.name).is_none() {
                return Err(ApiError::NotFound(format!(
                    "{} {:?} not found ({} of {} {:?})",
                    human(target),
                    r.name,
                    r.column,
                    kind.name(),
                    kind.object_name(obj)
                )));
            }
        }
        Ok(())
    }
}

/// How messages name a kind ("switch", "port", ... for the kinds that had messages before
/// the generic layer; the table name otherwise).
pub fn human<K: Kind + ?Sized>(kind: &K) -> &'static str {
    kind.aliases().first().copied().unwrap_or(kind.name())
}

/// NotFound for `kind`/`name`.
pub fn not_found<K: Kind + ?Sized>(kind: &K, name: &str) -> ApiError {
    ApiError::NotFound(format!("{} {name:?} not found", human(kind)))
}
