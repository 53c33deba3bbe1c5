//! Monitor data, pure: the database schema's column kinds ([`DbSchema`]), monitor request
//! building ([`MonitorRequest`]), and a local [`Replica`] of the monitored tables that applies
//! `update` (RFC 7047 `monitor`) and `update2` (`monitor_cond`) notifications and reports
//! every change as a [`RowChange`] with the full old and new rows.
//!
//! `update2` sends `modify` as a *diff* whose meaning depends on the column type (ovsdb-server
//! (7)): a column that holds at most one value carries its new value; a set carries the
//! elements to toggle; a map carries keys to remove (same value), change (new value) or add.
//! That is why the replica needs the schema.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::atom::{row_from_json, snippet, Atom, DataError, Datum, Row, Uuid};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MonitorError {
    #[error("malformed schema: {reason}: {value}")]
    BadSchema { reason: &'static str, value: String },
    #[error("malformed table update for table {table:?}: {reason}: {value}")]
    BadUpdate {
        table: String,
        reason: &'static str,
        value: String,
    },
    #[error(transparent)]
    Data(#[from] DataError),
}

/// How a column's value is shaped, which decides how an update2 diff applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `max == 1`: scalar or optional value; a diff is the new value.
    Single,
    /// `max > 1` set; a diff toggles elements.
    Set,
    /// A map; a diff removes/changes/adds keys.
    Map,
}

/// The parts of a database schema (RFC 7047 §3.2) this crate needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DbSchema {
    pub name: String,
    pub version: String,
    /// table → column → kind
    pub tables: BTreeMap<String, BTreeMap<String, ColumnKind>>,
}

impl DbSchema {
    pub fn from_json(v: &Value) -> Result<DbSchema, MonitorError> {
        let bad = |reason, v: &Value| MonitorError::BadSchema {
            reason,
            value: snippet(v),
        };
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("missing name", v))?
            .to_string();
        let version = v
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let tables_json = v
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("missing tables", v))?;
        let mut tables = BTreeMap::new();
        for (tname, t) in tables_json {
            let cols = t
                .get("columns")
                .and_then(Value::as_object)
                .ok_or_else(|| bad("table without columns", t))?;
            let mut kinds = BTreeMap::new();
            for (cname, c) in cols {
                let ty = c.get("type").ok_or_else(|| bad("column without type", c))?;
                kinds.insert(
                    cname.clone(),
                    column_kind(ty).ok_or_else(|| bad("bad column type", ty))?,
                );
            }
            tables.insert(tname.clone(), kinds);
        }
        Ok(DbSchema {
            name,
            version,
            tables,
        })
    }

    pub fn column_kind(&self, table: &str, column: &str) -> Option<ColumnKind> {
        self.tables.get(table)?.get(column).copied()
    }
}

fn column_kind(ty: &Value) -> Option<ColumnKind> {
    match ty {
        Value::String(_) => Some(ColumnKind::Single),
        Value::Object(o) => {
            if o.contains_key("value") {
                return Some(ColumnKind::Map);
            }
            match o.get("max") {
                None => Some(ColumnKind::Single),
                Some(Value::String(s)) if s == "unlimited" => Some(ColumnKind::Set),
                Some(Value::Number(n)) => match n.as_u64()? {
                    0 => None,
                    1 => Some(ColumnKind::Single),
                    _ => Some(ColumnKind::Set),
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// What to monitor in one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorRequest {
    /// Columns to report; `None` means all.
    pub columns: Option<Vec<String>>,
    /// `monitor_cond` conditions (clauses are OR-ed by ovsdb-server). Ignored when the server
    /// only knows `monitor`: then every row is reported.
    pub where_: Option<Vec<Value>>,
}

impl MonitorRequest {
    pub fn columns<I: IntoIterator<Item = S>, S: Into<String>>(cols: I) -> Self {
        MonitorRequest {
            columns: Some(cols.into_iter().map(Into::into).collect()),
            where_: None,
        }
    }

    /// The `<monitor-request>` (or `<monitor-cond-request>`) JSON.
    pub fn to_json(&self, with_where: bool) -> Value {
        let mut m = Map::new();
        if let Some(c) = &self.columns {
            m.insert("columns".into(), json!(c));
        }
        if with_where {
            if let Some(w) = &self.where_ {
                m.insert("where".into(), json!(w));
            }
        }
        Value::Object(m)
    }
}

/// Which notification format a monitor speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateFormat {
    /// `monitor` / `update`: rows as `{"old": .., "new": ..}`.
    Update,
    /// `monitor_cond` / `update2`: `initial`/`insert`/`delete`/`modify` (diff).
    Update2,
}

/// One row that changed: `old: None` is an insert, `new: None` a delete.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub table: String,
    pub uuid: Uuid,
    pub old: Option<Row>,
    pub new: Option<Row>,
}

/// A local copy of the monitored rows.
#[derive(Debug, Clone, Default)]
pub struct Replica {
    schema: DbSchema,
    tables: BTreeMap<String, BTreeMap<Uuid, Row>>,
}

impl Replica {
    pub fn new(schema: DbSchema) -> Self {
        Replica {
            schema,
            tables: BTreeMap::new(),
        }
    }

    /// Replaces the schema (after a reconnect) and keeps the rows, so the next
    /// [`Replica::reset`] reports differences against them.
    pub fn set_schema(&mut self, schema: DbSchema) {
        self.schema = schema;
    }

    pub fn schema(&self) -> &DbSchema {
        &self.schema
    }

    pub fn table(&self, name: &str) -> Option<&BTreeMap<Uuid, Row>> {
        self.tables.get(name)
    }

    pub fn tables(&self) -> &BTreeMap<String, BTreeMap<Uuid, Row>> {
        &self.tables
    }

    /// Replaces the whole content with a monitor's initial reply (after a (re)connect) and
    /// returns what changed relative to the previous content, so consumers can resync.
    pub fn reset(
        &mut self,
        format: UpdateFormat,
        initial: &Value,
    ) -> Result<Vec<RowChange>, MonitorError> {
        let mut fresh = Replica::new(self.schema.clone());
        fresh.apply(format, initial)?;
        let mut changes = Vec::new();
        for (tname, rows) in &self.tables {
            let new_rows = fresh.tables.get(tname);
            for (uuid, old) in rows {
                match new_rows.and_then(|t| t.get(uuid)) {
                    None => changes.push(RowChange {
                        table: tname.clone(),
                        uuid: uuid.clone(),
                        old: Some(old.clone()),
                        new: None,
                    }),
                    Some(new) if new != old => changes.push(RowChange {
                        table: tname.clone(),
                        uuid: uuid.clone(),
                        old: Some(old.clone()),
                        new: Some(new.clone()),
                    }),
                    Some(_) => {}
                }
            }
        }
        for (tname, rows) in &fresh.tables {
            let old_rows = self.tables.get(tname);
            for (uuid, new) in rows {
                if old_rows.and_then(|t| t.get(uuid)).is_none() {
                    changes.push(RowChange {
                        table: tname.clone(),
                        uuid: uuid.clone(),
                        old: None,
                        new: Some(new.clone()),
                    });
                }
            }
        }
        self.tables = fresh.tables;
        Ok(changes)
    }

    /// Applies a `<table-updates>` / `<table-updates2>` object. On error nothing changes.
    pub fn apply(
        &mut self,
        format: UpdateFormat,
        updates: &Value,
    ) -> Result<Vec<RowChange>, MonitorError> {
        if updates.is_null() {
            return Ok(Vec::new());
        }
        let obj = updates.as_object().ok_or_else(|| MonitorError::BadUpdate {
            table: String::new(),
            reason: "table-updates is not an object",
            value: snippet(updates),
        })?;
        // Compute every change first, then commit, so a bad update changes nothing.
        let mut changes = Vec::new();
        for (tname, rows) in obj {
            let bad = |reason, v: &Value| MonitorError::BadUpdate {
                table: tname.clone(),
                reason,
                value: snippet(v),
            };
            let rows = rows.as_object().ok_or_else(|| bad("not an object", rows))?;
            for (uuid_s, ru) in rows {
                let uuid = Uuid::parse(uuid_s)?;
                let current = self.tables.get(tname).and_then(|t| t.get(&uuid));
                let ru_obj = ru
                    .as_object()
                    .ok_or_else(|| bad("row update is not an object", ru))?;
                let new = match format {
                    UpdateFormat::Update => match ru_obj.get("new") {
                        None | Some(Value::Null) => None,
                        Some(n) => {
                            let mut row = current.cloned().unwrap_or_default();
                            row.extend(row_from_json(n)?);
                            Some(row)
                        }
                    },
                    UpdateFormat::Update2 => {
                        if let Some(r) = ru_obj.get("initial").or_else(|| ru_obj.get("insert")) {
                            Some(row_from_json(r)?)
                        } else if ru_obj.contains_key("delete") {
                            None
                        } else if let Some(diff) = ru_obj.get("modify") {
                            let Some(cur) = current else {
                                return Err(bad("modify of unknown row", ru));
                            };
                            Some(self.apply_diff(tname, cur, &row_from_json(diff)?))
                        } else {
                            return Err(bad(
                                "row update2 without initial/insert/delete/modify",
                                ru,
                            ));
                        }
                    }
                };
                if current.is_none() && new.is_none() {
                    continue;
                }
                changes.push(RowChange {
                    table: tname.clone(),
                    uuid,
                    old: current.cloned(),
                    new,
                });
            }
        }
        for c in &changes {
            let t = self.tables.entry(c.table.clone()).or_default();
            match &c.new {
                Some(r) => {
                    t.insert(c.uuid.clone(), r.clone());
                }
                None => {
                    t.remove(&c.uuid);
                }
            }
        }
        Ok(changes)
    }

    fn apply_diff(&self, table: &str, cur: &Row, diff: &Row) -> Row {
        let mut out = cur.clone();
        for (col, d) in diff {
            let kind = self.schema.column_kind(table, col).unwrap_or(match d {
                Datum::Map(_) => ColumnKind::Map,
                Datum::Set(_) => ColumnKind::Single,
            });
            let old = cur.get(col).cloned().unwrap_or_default();
            let new = match kind {
                ColumnKind::Single => d.clone(),
                ColumnKind::Set => {
                    let mut atoms: Vec<Atom> = old.atoms().to_vec();
                    for a in d.atoms() {
                        if let Some(i) = atoms.iter().position(|x| x == a) {
                            atoms.remove(i);
                        } else {
                            atoms.push(a.clone());
                        }
                    }
                    Datum::Set(atoms)
                }
                ColumnKind::Map => {
                    let mut pairs = match old {
                        Datum::Map(p) => p,
                        Datum::Set(_) => Vec::new(),
                    };
                    if let Datum::Map(dp) = d {
                        for (k, v) in dp {
                            match pairs.iter().position(|(pk, _)| pk == k) {
                                Some(i) if pairs[i].1 == *v => {
                                    pairs.remove(i);
                                }
                                Some(i) => pairs[i].1 = v.clone(),
                                None => pairs.push((k.clone(), v.clone())),
                            }
                        }
                    }
                    Datum::Map(pairs)
                }
            };
            out.insert(col.clone(), new);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atom::RowExt;

    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";

    fn schema() -> DbSchema {
        DbSchema::from_json(&json!({
            "name": "T", "version": "1.0.0",
            "tables": {"Interface": {"columns": {
                "name": {"type": "string"},
                "ofport": {"type": {"key": "integer", "min": 0, "max": 1}},
                "tags": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
                "external_ids": {"type": {"key": "string", "value": "string",
                                          "min": 0, "max": "unlimited"}}
            }}}
        }))
        .expect("schema")
    }

    #[test]
    fn schema_kinds() {
        let s = schema();
        assert_eq!(s.column_kind("Interface", "name"), Some(ColumnKind::Single));
        assert_eq!(
            s.column_kind("Interface", "ofport"),
            Some(ColumnKind::Single)
        );
        assert_eq!(s.column_kind("Interface", "tags"), Some(ColumnKind::Set));
        assert_eq!(
            s.column_kind("Interface", "external_ids"),
            Some(ColumnKind::Map)
        );
        assert!(DbSchema::from_json(&json!({"name": "x"})).is_err());
        assert!(DbSchema::from_json(
            &json!({"name":"x","tables":{"T":{"columns":{"c":{"type":{"key":"string","max":0}}}}}})
        )
        .is_err());
    }

    #[test]
    fn update2_initial_insert_modify_delete() {
        let mut r = Replica::new(schema());
        let ch = r
            .reset(
                UpdateFormat::Update2,
                &json!({"Interface": {U1: {"initial": {"name": "a", "tags": ["set", ["x", "y"]],
                    "external_ids": ["map", [["iface-id", "lp1"], ["k", "v"]]]}}}}),
            )
            .expect("initial");
        assert_eq!(ch.len(), 1);
        assert!(ch[0].old.is_none());

        let ch = r
            .apply(
                UpdateFormat::Update2,
                &json!({"Interface": {U1: {"modify": {
                    "ofport": 7,
                    "tags": ["set", ["x", "z"]],
                    "external_ids": ["map", [["iface-id", "lp2"], ["k", "v"], ["n", "1"]]]
                }}}}),
            )
            .expect("modify");
        assert_eq!(ch.len(), 1);
        let row = r
            .table("Interface")
            .and_then(|t| t.get(&Uuid::parse(U1).expect("u")))
            .expect("row");
        assert_eq!(row.i64_col("ofport"), Some(7));
        let mut tags = row.strings_col("tags");
        tags.sort();
        assert_eq!(tags, vec!["y", "z"]);
        let ext = row.str_map_col("external_ids");
        assert_eq!(ext.get("iface-id").map(String::as_str), Some("lp2"));
        assert_eq!(ext.get("n").map(String::as_str), Some("1"));
        assert!(!ext.contains_key("k"));
        assert_eq!(ch[0].old.as_ref().and_then(|o| o.i64_col("ofport")), None);

        // Optional column cleared: the diff is the new (empty) value.
        r.apply(
            UpdateFormat::Update2,
            &json!({"Interface": {U1: {"modify": {"ofport": ["set", []]}}}}),
        )
        .expect("clear");
        let row = r
            .table("Interface")
            .and_then(|t| t.get(&Uuid::parse(U1).expect("u")))
            .expect("row");
        assert_eq!(row.i64_col("ofport"), None);

        let ch = r
            .apply(
                UpdateFormat::Update2,
                &json!({"Interface": {U1: {"delete": null}}}),
            )
            .expect("delete");
        assert!(ch[0].new.is_none());
        assert!(r.table("Interface").map(|t| t.is_empty()).unwrap_or(true));
    }

    #[test]
    fn update_v1_old_new() {
        let mut r = Replica::new(schema());
        r.apply(
            UpdateFormat::Update,
            &json!({"Interface": {U1: {"new": {"name": "a", "ofport": 1}}}}),
        )
        .expect("insert");
        let ch = r
            .apply(
                UpdateFormat::Update,
                &json!({"Interface": {U1: {"old": {"ofport": 1}, "new": {"name": "a", "ofport": 2}}}}),
            )
            .expect("modify");
        assert_eq!(
            ch[0].new.as_ref().and_then(|n| n.i64_col("ofport")),
            Some(2)
        );
        let ch = r
            .apply(
                UpdateFormat::Update,
                &json!({"Interface": {U1: {"old": {"name": "a"}}}}),
            )
            .expect("delete");
        assert!(ch[0].new.is_none());
    }

    #[test]
    fn reset_reports_differences() {
        let mut r = Replica::new(schema());
        r.reset(
            UpdateFormat::Update2,
            &json!({"Interface": {U1: {"initial": {"name": "a"}}, U2: {"initial": {"name": "b"}}}}),
        )
        .expect("first");
        let ch = r
            .reset(
                UpdateFormat::Update2,
                &json!({"Interface": {U2: {"initial": {"name": "b2"}}}}),
            )
            .expect("second");
        assert_eq!(ch.len(), 2);
        assert!(ch.iter().any(|c| c.uuid.as_str() == U1 && c.new.is_none()));
        assert!(ch
            .iter()
            .any(|c| c.uuid.as_str() == U2 && c.new.is_some() && c.old.is_some()));
    }

    #[test]
    fn bad_updates_change_nothing() {
        let mut r = Replica::new(schema());
        r.apply(
            UpdateFormat::Update2,
            &json!({"Interface": {U1: {"insert": {"name": "a"}}}}),
        )
        .expect("insert");
        for bad in [
            json!([1]),
            json!({"Interface": 5}),
            json!({"Interface": {"not-a-uuid": {"insert": {}}}}),
            json!({"Interface": {U2: {"modify": {"name": "x"}}}}),
            json!({"Interface": {U2: {"bogus": {}}}}),
            json!({"Interface": {U1: {"delete": null}, U2: {"insert": {"name": {"x": 1}}}}}),
        ] {
            assert!(r.apply(UpdateFormat::Update2, &bad).is_err(), "{bad}");
            assert_eq!(r.table("Interface").map(|t| t.len()), Some(1), "{bad}");
        }
    }
}
