//! The generic database commands of ovn-nbctl, on every kind: `list`, `find`, `get` (reads,
//! answered from `ListObjects` and rendered from the typed columns) and `set`, `add`,
//! `remove`, `clear`, `destroy` (one `UpdateOp` / `DeleteOp` each).
//!
//! KIND is a table name as ovn-nbctl spells it (`Logical_Switch`, `Logical_Switch_Port`,
//! `Chassis`, `Logical_Router`, `Logical_Router_Port`), case-insensitive: the controller
//! resolves it and names unknown kinds and columns.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use clap::Subcommand;
use weft_proto::v1 as pb;

use super::{
    column_op, delete, render_results, update, Call, CmdError, Noun, PlanCtx, Read, Reply, Step,
    Write,
};
use crate::args::Format;
use crate::format::{json_text, render_table, Cell, Out, Table};
use crate::value::{self, Condition, Op};
use pb::column_op::Action;

const KIND_HELP: &str = "Table: Logical_Switch, Logical_Switch_Port, Chassis, Logical_Router, \
                         Logical_Router_Port (case-insensitive)";

#[derive(Debug, Clone, Subcommand)]
pub enum DbCmd {
    /// List records of KIND (all, or the named ones), every column.
    List {
        #[arg(value_name = "KIND", help = KIND_HELP)]
        kind: String,
        /// Record names (default: all).
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// List the records of KIND matching every condition COLUMN[:KEY]OP VALUE
    /// (OP: = != < > <= >= {=} {!=} {<} {>} {<=} {>=}).
    Find {
        #[arg(value_name = "KIND", help = KIND_HELP)]
        kind: String,
        /// Conditions, e.g. external_ids:owner=cni, vni>=100, addresses{>=}dynamic.
        #[arg(value_name = "CONDITION", allow_hyphen_values = true)]
        conditions: Vec<String>,
    },
    /// Print the value of each COLUMN (or map entry COLUMN:KEY) of one record, one per line.
    Get {
        #[arg(value_name = "KIND", help = KIND_HELP)]
        kind: String,
        /// Record name.
        name: String,
        /// Columns, each COLUMN or COLUMN:KEY.
        #[arg(value_name = "COLUMN[:KEY]", required = true)]
        columns: Vec<String>,
        /// A missing record or key prints nothing instead of failing.
        #[arg(long)]
        if_exists: bool,
    },
    /// Set columns (or map entries) of one record: COLUMN=VALUE or COLUMN:KEY=VALUE.
    Set {
        #[arg(value_name = "KIND", help = KIND_HELP)]
        kind: String,
        /// Record name.
        name: String,
        /// Assignments, e.g. external_ids:owner=cni, addresses='["0a:00:00:00:00:01 10.0.0.2"]'.
        #[arg(
            value_name = "COLUMN[:KEY]=VALUE",
            required = true,
            allow_hyphen_values = true
        )]
        assignments: Vec<String>,
        /// A missing record is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// Add values to a set column, or KEY=VALUE pairs to a map column.
    Add {
        #[arg(value_name = "KIND", help = KIND_HELP)]
        kind: String,
        /// Record name.
        name: String,
        /// Column name.
        column: String,
        /// Values (a set element, KEY=VALUE, or [..] / {..} lists).
        #[arg(value_name = "VALUE", required = true, allow_hyphen_values = true)]
        values: Vec<String>,
        /// A missing record is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// Remove values from a set column, or keys (KEY) / pairs (KEY=VALUE) from a map column.
    Remove {
        #[arg(value_name = "KIND", help = KIND_HELP)]
        kind: String,
        /// Record name.
        name: String,
        /// Column name.
        column: String,
        /// Values, KEYs or KEY=VALUE pairs.
        #[arg(value_name = "VALUE", required = true, allow_hyphen_values = true)]
        values: Vec<String>,
        /// A missing record is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// Empty set or map columns of one record.
    Clear {
        #[arg(value_name = "KIND", help = KIND_HELP)]
        kind: String,
        /// Record name.
        name: String,
        /// Column names.
        #[arg(value_name = "COLUMN", required = true)]
        columns: Vec<String>,
        /// A missing record is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// Delete records (references restrict or cascade as the kind declares).
    Destroy {
        #[arg(value_name = "KIND", help = KIND_HELP)]
        kind: String,
        /// Record names.
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
        /// Missing records are not an error.
        #[arg(long)]
        if_exists: bool,
    },
}

impl Noun for DbCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        let write = |ops: Vec<pb::Op>| {
            Step::Write(Box::new(Write {
                ops,
                sugar: None,
                render: Box::new(render_results),
            }))
        };
        Ok(match self {
            DbCmd::List { kind, names } => Step::Read(Read {
                calls: vec![list_request(kind, names)],
                render: Box::new(|replies, out| render_records(records_of(replies, 0)?, None, out)),
            }),
            DbCmd::Find { kind, conditions } => {
                let conds: Vec<Condition> = conditions
                    .iter()
                    .map(|c| value::parse_condition(c))
                    .collect::<Result<_, _>>()?;
                Step::Read(Read {
                    calls: vec![list_request(kind, &[])],
                    render: Box::new(move |replies, out| {
                        let reply = records_of(replies, 0)?;
                        for c in &conds {
                            check_column(reply, &c.column)?;
                        }
                        let mut keep = Vec::new();
                        for rec in &reply.records {
                            if matches_all(reply, rec, &conds)? {
                                keep.push(rec.name.clone());
                            }
                        }
                        render_records(reply, Some(&keep), out)
                    }),
                })
            }
            DbCmd::Get {
                kind,
                name,
                columns,
                if_exists,
            } => {
                let mut wanted = Vec::new();
                for c in columns {
                    let ca = value::parse_column_arg(c)?;
                    if ca.value.is_some() {
                        return Err(CmdError::Usage {
                            command: "get",
                            reason: format!("{c:?}: expected COLUMN or COLUMN:KEY (no value)"),
                        });
                    }
                    wanted.push((ca.column, ca.key));
                }
                let name = name.clone();
                let if_exists = *if_exists;
                // With --if-exists a missing record is not an error, so list them all.
                let names = if if_exists {
                    Vec::new()
                } else {
                    vec![name.clone()]
                };
                Step::Read(Read {
                    calls: vec![list_request(kind, &names)],
                    render: Box::new(move |replies, out| {
                        render_get(records_of(replies, 0)?, &name, &wanted, if_exists, out)
                    }),
                })
            }
            DbCmd::Set {
                kind,
                name,
                assignments,
                if_exists,
            } => {
                let mut cols = Vec::new();
                for a in assignments {
                    let ca = value::parse_column_arg(a)?;
                    let Some(v) = ca.value else {
                        return Err(CmdError::Usage {
                            command: "set",
                            reason: format!("{a:?}: expected COLUMN[:KEY]=VALUE"),
                        });
                    };
                    cols.push(match ca.key {
                        Some(k) => column_op(
                            Action::Set,
                            &ca.column,
                            Some(&k),
                            vec![value::parse_atom(&v)?],
                        ),
                        None => column_op(Action::Set, &ca.column, None, value::parse_values(&v)?),
                    });
                }
                write(vec![update(kind, name, cols, *if_exists)])
            }
            DbCmd::Add {
                kind,
                name,
                column,
                values,
                if_exists,
            } => write(vec![update(
                kind,
                name,
                vec![column_op(
                    Action::Add,
                    plain_column("add", column)?,
                    None,
                    parse_all(values)?,
                )],
                *if_exists,
            )]),
            DbCmd::Remove {
                kind,
                name,
                column,
                values,
                if_exists,
            } => write(vec![update(
                kind,
                name,
                vec![column_op(
                    Action::Remove,
                    plain_column("remove", column)?,
                    None,
                    parse_all(values)?,
                )],
                *if_exists,
            )]),
            DbCmd::Clear {
                kind,
                name,
                columns,
                if_exists,
            } => {
                let cols = columns
                    .iter()
                    .map(|c| {
                        Ok(column_op(
                            Action::Clear,
                            plain_column("clear", c)?,
                            None,
                            vec![],
                        ))
                    })
                    .collect::<Result<_, CmdError>>()?;
                write(vec![update(kind, name, cols, *if_exists)])
            }
            DbCmd::Destroy {
                kind,
                names,
                if_exists,
            } => write(names.iter().map(|n| delete(kind, n, *if_exists)).collect()),
        })
    }
}

/// A bare column name (no `:KEY`, no `=VALUE`).
fn plain_column<'a>(command: &'static str, c: &'a str) -> Result<&'a str, CmdError> {
    let ca = value::parse_column_arg(c)?;
    if ca.key.is_some() || ca.value.is_some() {
        return Err(CmdError::Usage {
            command,
            reason: format!("{c:?}: expected a column name"),
        });
    }
    Ok(c)
}

/// Every VALUE argument in value syntax, concatenated.
fn parse_all(values: &[String]) -> Result<Vec<String>, CmdError> {
    let mut out = Vec::new();
    for v in values {
        out.extend(value::parse_values(v)?);
    }
    Ok(out)
}

/// ListObjects for `kind` (and only `names`, when not empty).
pub fn list_request(kind: &str, names: &[String]) -> Call {
    Call::ListObjects(pb::ListObjectsRequest {
        kind: kind.to_string(),
        names: names.to_vec(),
    })
}

/// The `i`-th reply, which must be a ListObjects reply.
/// The record named `name` that `pick` recognises in the `i`-th reply (a ListObjects), and
/// the reply's revision; NotFound naming `what` when it is not there.
pub fn named_record<'a, T: 'a>(
    replies: &'a [Reply],
    i: usize,
    what: &'static str,
    name: &str,
    pick: impl Fn(&'a pb::object::Kind) -> Option<(&'a str, &'a T)>,
) -> Result<(&'a T, i64), CmdError> {
    let reply = records_of(replies, i)?;
    reply
        .records
        .iter()
        .find_map(|rec| {
            let (n, t) = pick(rec.object.as_ref()?.kind.as_ref()?)?;
            (n == name).then_some(t)
        })
        .map(|t| (t, reply.revision))
        .ok_or_else(|| CmdError::NotFound {
            what,
            name: name.to_string(),
        })
}

pub fn records_of(replies: &[Reply], i: usize) -> Result<&pb::ListObjectsReply, CmdError> {
    match replies.get(i) {
        Some(Reply::Objects(r)) => Ok(r),
        Some(_) => Err(CmdError::MalformedReply("not a ListObjects reply")),
        None => Err(CmdError::MalformedReply("missing ListObjects reply")),
    }
}

/// The objects of reply `i`'s records as one kind's messages (`pick` unwraps the kind), with
/// the reply's revision; a record of any other kind makes the reply malformed (`what`).
pub fn objects_of<T: Clone>(
    replies: &[Reply],
    i: usize,
    pick: impl Fn(&pb::object::Kind) -> Option<&T>,
    what: &'static str,
) -> Result<(Vec<T>, i64), CmdError> {
    let reply = records_of(replies, i)?;
    let out = reply
        .records
        .iter()
        .map(|rec| {
            rec.object
                .as_ref()
                .and_then(|o| o.kind.as_ref())
                .and_then(&pick)
                .cloned()
                .ok_or(CmdError::MalformedReply(what))
        })
        .collect::<Result<Vec<T>, CmdError>>()?;
    Ok((out, reply.revision))
}

/// A record's column by name.
pub fn column<'a>(rec: &'a pb::Record, name: &str) -> Option<&'a pb::Column> {
    rec.columns.iter().find(|c| c.name == name)
}

/// The kind's column names: the reply's schema list, else the first record's.
fn column_names(reply: &pb::ListObjectsReply) -> Vec<String> {
    if !reply.columns.is_empty() {
        return reply.columns.clone();
    }
    reply
        .records
        .first()
        .map(|r| r.columns.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

fn check_column(reply: &pb::ListObjectsReply, name: &str) -> Result<(), CmdError> {
    let names = column_names(reply);
    if names.iter().any(|n| n == name) || (names.is_empty() && reply.records.is_empty()) {
        return Ok(());
    }
    Err(CmdError::UnknownColumn {
        kind: reply.kind.clone(),
        column: name.to_string(),
        known: names.join(", "),
    })
}

fn col_type(c: &pb::Column) -> pb::ColumnType {
    pb::ColumnType::try_from(c.r#type).unwrap_or(pb::ColumnType::Scalar)
}

fn map_of(c: &pb::Column) -> BTreeMap<String, String> {
    c.map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A column as a table cell.
pub fn cell(c: &pb::Column) -> Cell {
    match col_type(c) {
        pb::ColumnType::Scalar => match c.values.first() {
            Some(v) => Cell::Scalar(v.clone()),
            None => Cell::Set(Vec::new()),
        },
        pb::ColumnType::Set => Cell::Set(c.values.clone()),
        pb::ColumnType::Map => Cell::Map(map_of(c)),
    }
}

/// The records (only those named in `keep`, when given) as a table in schema column order.
fn records_table(reply: &pb::ListObjectsReply, keep: Option<&[String]>) -> Table {
    let headings = column_names(reply);
    let mut t = Table {
        headings: headings.clone(),
        rows: Vec::new(),
    };
    for rec in &reply.records {
        if keep.is_some_and(|k| !k.contains(&rec.name)) {
            continue;
        }
        t.rows.push(
            headings
                .iter()
                .map(|h| column(rec, h).map_or(Cell::Set(Vec::new()), cell))
                .collect(),
        );
    }
    t
}

/// list / find output: ovn-nbctl's list form by default; `-f table|csv`; `-f json` prints
/// `{"kind", "columns", "records": [{COLUMN: value}], "revision"}`.
fn render_records(
    reply: &pb::ListObjectsReply,
    keep: Option<&[String]>,
    out: &Out,
) -> Result<String, CmdError> {
    let mut t = records_table(reply, keep);
    if let Some(cols) = &out.columns {
        t = t.select(cols)?;
    }
    if out.json() {
        let records: Vec<serde_json::Map<String, serde_json::Value>> = t
            .rows
            .iter()
            .map(|r| {
                t.headings
                    .iter()
                    .cloned()
                    .zip(r.iter().map(Cell::to_json))
                    .collect()
            })
            .collect();
        let v = serde_json::json!({
            "kind": reply.kind,
            "columns": t.headings,
            "records": records,
            "revision": reply.revision,
        });
        return Ok(json_text(&v, out)?);
    }
    let plain = Out {
        columns: None,
        ..out.clone()
    };
    Ok(render_table(&t, &plain, Format::List)?)
}

/// get: one line per requested column, OVSDB syntax (bare with `--bare`); JSON: an array.
fn render_get(
    reply: &pb::ListObjectsReply,
    name: &str,
    wanted: &[(String, Option<String>)],
    if_exists: bool,
    out: &Out,
) -> Result<String, CmdError> {
    let Some(rec) = reply.records.iter().find(|r| r.name == name) else {
        if if_exists {
            return Ok(String::new());
        }
        return Err(CmdError::NotFound {
            what: "record",
            name: name.to_string(),
        });
    };
    let mut cells = Vec::new();
    for (col, key) in wanted {
        check_column(reply, col)?;
        let Some(c) = column(rec, col) else {
            return Err(CmdError::MalformedReply(
                "a record lacks a column of its kind",
            ));
        };
        match key {
            None => cells.push(cell(c)),
            Some(k) => {
                if col_type(c) != pb::ColumnType::Map {
                    return Err(CmdError::BadColumnUse {
                        kind: reply.kind.clone(),
                        column: col.clone(),
                        reason: format!("not a map, so it has no key {k:?}"),
                    });
                }
                match c.map.get(k) {
                    Some(v) => cells.push(Cell::Scalar(v.clone())),
                    None if if_exists => {}
                    None => {
                        return Err(CmdError::NoKey {
                            kind: reply.kind.clone(),
                            name: name.to_string(),
                            column: col.clone(),
                            key: k.clone(),
                        })
                    }
                }
            }
        }
    }
    if out.json() {
        let v: Vec<serde_json::Value> = cells.iter().map(Cell::to_json).collect();
        return Ok(json_text(&v, out)?);
    }
    Ok(cells
        .iter()
        .map(|c| format!("{}\n", c.render(out.bare)))
        .collect())
}

fn matches_all(
    reply: &pb::ListObjectsReply,
    rec: &pb::Record,
    conds: &[Condition],
) -> Result<bool, CmdError> {
    for c in conds {
        let Some(col) = column(rec, &c.column) else {
            return Ok(false);
        };
        if !matches(&reply.kind, col, c)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Integers compare as numbers, anything else as text.
fn atom_cmp(a: &str, b: &str) -> Ordering {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// Whether one column satisfies one condition (ovs-vsctl `find` semantics).
pub fn matches(kind: &str, col: &pb::Column, c: &Condition) -> Result<bool, CmdError> {
    let bad = |reason: String| CmdError::BadColumnUse {
        kind: kind.to_string(),
        column: col.name.clone(),
        reason,
    };
    // The record's side and the condition's side as sets of atoms (maps: "KEY=VALUE").
    let (have, want): (Vec<String>, Vec<String>) = match (&c.key, col_type(col)) {
        (Some(k), pb::ColumnType::Map) => (
            col.map.get(k).cloned().into_iter().collect(),
            c.values.clone(),
        ),
        (Some(k), _) => return Err(bad(format!("not a map, so it has no key {k:?}"))),
        (None, pb::ColumnType::Map) => {
            let mut have: Vec<String> = map_of(col)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            have.sort();
            (have, c.values.clone())
        }
        (None, _) => (col.values.clone(), c.values.clone()),
    };
    let h: BTreeSet<&str> = have.iter().map(String::as_str).collect();
    let w: BTreeSet<&str> = want.iter().map(String::as_str).collect();
    let ordered = |f: fn(Ordering) -> bool| -> Result<bool, CmdError> {
        match (have.as_slice(), want.as_slice()) {
            ([a], [b]) => Ok(f(atom_cmp(a, b))),
            ([], [_]) => Ok(false),
            _ => Err(bad(format!(
                "{:?} compares single values; use {{<}} {{>}} {{<=}} {{>=}} for sets",
                op_text(c.op)
            ))),
        }
    };
    Ok(match c.op {
        Op::Eq | Op::SetEq => h == w,
        Op::Ne | Op::SetNe => h != w,
        Op::Lt => ordered(|o| o == Ordering::Less)?,
        Op::Gt => ordered(|o| o == Ordering::Greater)?,
        Op::Le => ordered(|o| o != Ordering::Greater)?,
        Op::Ge => ordered(|o| o != Ordering::Less)?,
        Op::SubsetLe => h.is_subset(&w),
        Op::SubsetLt => h.is_subset(&w) && h != w,
        Op::SupersetGe => h.is_superset(&w),
        Op::SupersetGt => h.is_superset(&w) && h != w,
    })
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Gt => ">",
        Op::Le => "<=",
        Op::Ge => ">=",
        Op::SetEq => "{=}",
        Op::SetNe => "{!=}",
        Op::SubsetLt => "{<}",
        Op::SupersetGt => "{>}",
        Op::SubsetLe => "{<=}",
        Op::SupersetGe => "{>=}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    fn scalar(name: &str, v: &str) -> pb::Column {
        pb::Column {
            name: name.into(),
            r#type: pb::ColumnType::Scalar as i32,
            values: vec![v.into()],
            ..Default::default()
        }
    }

    fn set(name: &str, v: &[&str]) -> pb::Column {
        pb::Column {
            name: name.into(),
            r#type: pb::ColumnType::Set as i32,
            values: v.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn map(name: &str, kv: &[(&str, &str)]) -> pb::Column {
        pb::Column {
            name: name.into(),
            r#type: pb::ColumnType::Map as i32,
            map: kv
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn switches() -> Reply {
        let rec = |name: &str, vni: &str, ports: &[&str], ids: &[(&str, &str)]| pb::Record {
            kind: "Logical_Switch".into(),
            name: name.into(),
            columns: vec![
                scalar("name", name),
                scalar("subnet", ""),
                scalar("vni", vni),
                map("external_ids", ids),
                set("ports", ports),
            ],
            object: None,
        };
        Reply::Objects(pb::ListObjectsReply {
            kind: "Logical_Switch".into(),
            columns: ["name", "subnet", "vni", "external_ids", "ports"]
                .map(String::from)
                .to_vec(),
            records: vec![
                rec(
                    "sw1",
                    "1001",
                    &["p1", "p2"],
                    &[("owner", "cni"), ("x", "a b")],
                ),
                rec("sw2", "7", &[], &[]),
            ],
            revision: 12,
        })
    }

    fn render(args: &[&str], o: &Out) -> String {
        render_read(&read(args), &[switches()], o)
    }

    fn render_err(args: &[&str]) -> CmdError {
        match (read(args).render)(&[switches()], &out(false)) {
            Ok(s) => panic!("{args:?} rendered {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn list_prints_ovn_nbctl_records() {
        let r = read(&["list", "logical_switch", "sw1"]);
        assert_eq!(
            r.calls,
            vec![Call::ListObjects(pb::ListObjectsRequest {
                kind: "logical_switch".into(),
                names: vec!["sw1".into()]
            })]
        );
        assert_eq!(
            render(&["list", "Logical_Switch"], &out(false)),
            "\
name                : \"sw1\"
subnet              : \"\"
vni                 : 1001
external_ids        : {owner=cni, x=\"a b\"}
ports               : [\"p1\", \"p2\"]

name                : \"sw2\"
subnet              : \"\"
vni                 : 7
external_ids        : {}
ports               : []
"
        );
        let bare_names = Out {
            bare: true,
            columns: Some(vec!["name".into()]),
            ..Default::default()
        };
        assert_eq!(
            render(&["list", "Logical_Switch"], &bare_names),
            "sw1\n\nsw2\n"
        );
        let table = Out {
            format: Some(Format::Table),
            columns: Some(vec!["name".into(), "vni".into()]),
            ..Default::default()
        };
        assert_eq!(
            render(&["list", "Logical_Switch"], &table),
            "name   vni\n\"sw1\"  1001\n\"sw2\"  7\n"
        );
        let v = json(&render(&["list", "Logical_Switch"], &out(true)));
        assert_eq!(v["records"][0]["external_ids"]["owner"], "cni");
        assert_eq!(v["records"][0]["ports"], serde_json::json!(["p1", "p2"]));
        assert_eq!(v["records"][1]["vni"], "7");
        assert_eq!(v["kind"], "Logical_Switch");
        assert_eq!(v["revision"], 12);
    }

    #[test]
    fn find_filters_client_side() {
        let names = Out {
            bare: true,
            columns: Some(vec!["name".into()]),
            ..Default::default()
        };
        let find = |conds: &[&str]| {
            let mut args = vec!["find", "Logical_Switch"];
            args.extend_from_slice(conds);
            render(&args, &names)
        };
        assert_eq!(find(&["external_ids:owner=cni"]), "sw1\n");
        assert_eq!(find(&["external_ids:owner!=cni"]), "sw2\n");
        assert_eq!(find(&["vni>100"]), "sw1\n");
        assert_eq!(find(&["vni<=7"]), "sw2\n");
        assert_eq!(find(&["ports{>=}p1"]), "sw1\n");
        assert_eq!(find(&["ports=[]"]), "sw2\n");
        assert_eq!(find(&["ports=[p2,p1]"]), "sw1\n");
        assert_eq!(find(&["ports{<=}[p1,p2,p3]"]), "sw1\n\nsw2\n");
        assert_eq!(find(&["external_ids{>=}{owner=cni}"]), "sw1\n");
        assert_eq!(find(&[r#"external_ids:x="a b""#, "name=sw1"]), "sw1\n");
        assert_eq!(find(&["name=sw3"]), "");
        assert_eq!(find(&[]), "sw1\n\nsw2\n");
        let e = render_err(&["find", "Logical_Switch", "bogus=1"]);
        assert!(
            e.to_string()
                .starts_with("Logical_Switch has no column \"bogus\""),
            "{e}"
        );
        let e = render_err(&["find", "Logical_Switch", "ports<3"]);
        assert!(e.to_string().contains("compares single values"), "{e}");
        let e = render_err(&["find", "Logical_Switch", "vni:k=1"]);
        assert!(e.to_string().contains("not a map"), "{e}");
        assert_eq!(plan_err(&["find", "Logical_Switch", "name"]).exit_code(), 2);
    }

    #[test]
    fn get_prints_values_one_per_line() {
        assert_eq!(
            render(
                &[
                    "get",
                    "Logical_Switch",
                    "sw1",
                    "name",
                    "vni",
                    "external_ids:owner",
                    "ports"
                ],
                &out(false)
            ),
            "\"sw1\"\n1001\ncni\n[\"p1\", \"p2\"]\n"
        );
        let bare = Out {
            bare: true,
            ..Default::default()
        };
        assert_eq!(
            render(
                &[
                    "get",
                    "Logical_Switch",
                    "sw1",
                    "name",
                    "external_ids",
                    "ports"
                ],
                &bare
            ),
            "sw1\nowner=cni x=a b\np1 p2\n"
        );
        let v = json(&render(
            &["get", "Logical_Switch", "sw1", "external_ids:x", "ports"],
            &out(true),
        ));
        assert_eq!(v, serde_json::json!(["a b", ["p1", "p2"]]));
        let e = render_err(&["get", "Logical_Switch", "sw2", "external_ids:owner"]);
        assert_eq!(
            e.to_string(),
            "Logical_Switch \"sw2\" column external_ids: no key \"owner\""
        );
        let e = render_err(&["get", "Logical_Switch", "sw1", "nope"]);
        assert!(e.to_string().contains("no column \"nope\""), "{e}");
        assert_eq!(e.exit_code(), 1);
        // --if-exists: a missing key or record prints nothing.
        let r = read(&[
            "get",
            "--if-exists",
            "Logical_Switch",
            "sw2",
            "external_ids:owner",
        ]);
        assert_eq!(
            r.calls,
            vec![Call::ListObjects(pb::ListObjectsRequest {
                kind: "Logical_Switch".into(),
                names: vec![]
            })]
        );
        assert_eq!(render_read(&r, &[switches()], &out(false)), "");
        assert_eq!(
            render(
                &["get", "--if-exists", "Logical_Switch", "sw9", "name"],
                &out(false)
            ),
            ""
        );
        assert_eq!(
            plan_err(&["get", "Logical_Switch", "sw1", "name=x"]).exit_code(),
            2
        );
    }

    #[test]
    fn writes_become_column_ops() {
        let w = write(&[
            "set",
            "Logical_Switch_Port",
            "p1",
            "external_ids:owner=cni",
            r#"addresses=["0a:00:00:00:00:01 10.0.0.2", dynamic]"#,
            "options={a=1,b=2}",
            "enabled=false",
            r#"external_ids:"k 8"="x,y""#,
        ]);
        assert_eq!(
            w.ops,
            vec![update(
                "Logical_Switch_Port",
                "p1",
                vec![
                    column_op(
                        Action::Set,
                        "external_ids",
                        Some("owner"),
                        vec!["cni".into()]
                    ),
                    column_op(
                        Action::Set,
                        "addresses",
                        None,
                        vec!["0a:00:00:00:00:01 10.0.0.2".into(), "dynamic".into()]
                    ),
                    column_op(
                        Action::Set,
                        "options",
                        None,
                        vec!["a=1".into(), "b=2".into()]
                    ),
                    column_op(Action::Set, "enabled", None, vec!["false".into()]),
                    column_op(Action::Set, "external_ids", Some("k 8"), vec!["x,y".into()]),
                ],
                false
            )]
        );
        assert_eq!(
            write(&["add", "Chassis", "hv1", "external_ids", "a=1", "{b=2}"]).ops,
            vec![update(
                "Chassis",
                "hv1",
                vec![column_op(
                    Action::Add,
                    "external_ids",
                    None,
                    vec!["a=1".into(), "b=2".into()]
                )],
                false
            )]
        );
        assert_eq!(
            write(&[
                "--if-exists",
                "remove",
                "Logical_Switch",
                "sw1",
                "external_ids",
                "a",
                "b=2"
            ])
            .ops,
            vec![update(
                "Logical_Switch",
                "sw1",
                vec![column_op(
                    Action::Remove,
                    "external_ids",
                    None,
                    vec!["a".into(), "b=2".into()]
                )],
                true
            )]
        );
        assert_eq!(
            write(&[
                "clear",
                "Logical_Switch_Port",
                "p1",
                "addresses",
                "external_ids"
            ])
            .ops,
            vec![update(
                "Logical_Switch_Port",
                "p1",
                vec![
                    column_op(Action::Clear, "addresses", None, vec![]),
                    column_op(Action::Clear, "external_ids", None, vec![]),
                ],
                false
            )]
        );
        assert_eq!(
            write(&["destroy", "--if-exists", "Logical_Switch", "a", "b"]).ops,
            vec![
                delete("Logical_Switch", "a", true),
                delete("Logical_Switch", "b", true)
            ]
        );
        // Writes print nothing; JSON is the generic results.
        let w = write(&["destroy", "Logical_Switch", "a"]);
        assert_eq!(render_write(&w, 3, &[pb::OpResult::default()], false), "");
        let v = json(&render_write(&w, 3, &[pb::OpResult::default()], true));
        assert_eq!(
            v,
            serde_json::json!({"revision": 3, "results": [{"object": null, "changed": false}]})
        );
    }

    #[test]
    fn malformed_db_arguments_are_usage_errors() {
        for args in [
            &["set", "Logical_Switch", "sw1", "external_ids"][..],
            &["set", "Logical_Switch", "sw1", "name=\"x"],
            &["add", "Logical_Switch", "sw1", "external_ids:k", "v"],
            &["clear", "Logical_Switch", "sw1", "a=b"],
            &["add", "Logical_Switch", "sw1", "ports", "[a"],
        ] {
            assert_eq!(plan_err(args).exit_code(), 2, "{args:?}");
        }
    }
}
