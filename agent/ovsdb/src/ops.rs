//! Builders for RFC 7047 §5.2 transaction operations (`insert`, `update`, `mutate`,
//! `delete`, `select`, `wait`, `comment`) and conditions/mutations, plus
//! [`check_transact_reply`], which turns a `transact` result array into per-op results or
//! a typed [`TransactError`] naming the failed operation.
//!
//! Everything here is pure JSON building; see [`crate::vswitch`] for how they combine.

use serde_json::{json, Map, Value};

use crate::atom::snippet;

/// A `transact` that the server accepted but that failed (or a reply that is not a valid
/// result array).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransactError {
    /// Operation `index` failed (`index == ops.len()` means the commit itself failed, e.g. a
    /// referential-integrity or unique-index violation).
    #[error("transact op {index} ({op}) failed: {error}: {details}")]
    OpFailed {
        index: usize,
        op: String,
        error: String,
        details: String,
    },
    #[error("malformed transact reply: {reason}: {value}")]
    Malformed { reason: &'static str, value: String },
}

impl TransactError {
    /// The OVSDB error string (`"constraint violation"`, `"timed out"`, ...), if an op failed.
    pub fn ovsdb_error(&self) -> Option<&str> {
        match self {
            TransactError::OpFailed { error, .. } => Some(error),
            TransactError::Malformed { .. } => None,
        }
    }
}

/// Checks a `transact` result against the operations sent. Returns the per-op results.
///
/// RFC 7047 §4.1.3: the result has one element per op; a failed op holds an object with
/// `error` (and usually `details`), the ops after it are `null`; if every op succeeded but
/// the commit failed, one extra element holds the error.
pub fn check_transact_reply(ops: &[Value], reply: Value) -> Result<Vec<Value>, TransactError> {
    let Value::Array(results) = reply else {
        return Err(TransactError::Malformed {
            reason: "result is not an array",
            value: snippet(&reply),
        });
    };
    for (index, r) in results.iter().enumerate() {
        if let Some(err) = r.get("error") {
            if err.is_null() {
                continue;
            }
            let op = ops
                .get(index)
                .and_then(|o| o.get("op"))
                .and_then(Value::as_str)
                .map(|s| {
                    let table = ops[index].get("table").and_then(Value::as_str);
                    match table {
                        Some(t) => format!("{s} {t}"),
                        None => s.to_string(),
                    }
                })
                .unwrap_or_else(|| "commit".to_string());
            return Err(TransactError::OpFailed {
                index,
                op,
                error: err
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| err.to_string()),
                details: r
                    .get("details")
                    .map(|d| {
                        d.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| d.to_string())
                    })
                    .unwrap_or_default(),
            });
        }
    }
    if results.len() < ops.len() {
        return Err(TransactError::Malformed {
            reason: "fewer results than operations",
            value: snippet(&Value::Array(results)),
        });
    }
    if let Some(bad) = results.iter().take(ops.len()).find(|r| !r.is_object()) {
        return Err(TransactError::Malformed {
            reason: "operation result is not an object",
            value: snippet(bad),
        });
    }
    Ok(results)
}

/// The `uuid` of an `insert` result (`{"uuid": ["uuid", "..."]}`).
pub fn inserted_uuid(result: &Value) -> Option<crate::atom::Uuid> {
    let u = result.get("uuid")?;
    match crate::atom::Atom::from_json(u).ok()? {
        crate::atom::Atom::Uuid(u) => Some(u),
        _ => None,
    }
}

/// The `rows` of a `select` result.
pub fn selected_rows(result: &Value) -> Result<Vec<crate::atom::Row>, crate::atom::DataError> {
    let rows = result
        .get("rows")
        .and_then(Value::as_array)
        .ok_or_else(|| crate::atom::DataError::WrongType {
            column: "rows".into(),
            expected: "array of rows",
            value: snippet(result),
        })?;
    rows.iter().map(crate::atom::row_from_json).collect()
}

/// `[column, function, value]`; function is one of `==`, `!=`, `<`, `<=`, `>`, `>=`,
/// `includes`, `excludes`.
pub fn cond(column: &str, function: &str, value: Value) -> Value {
    json!([column, function, value])
}

/// `[column, "==", value]`
pub fn eq(column: &str, value: Value) -> Value {
    cond(column, "==", value)
}

/// `[column, mutator, value]`; mutator is one of `+=`, `-=`, `*=`, `/=`, `%=`, `insert`,
/// `delete`.
pub fn mutation(column: &str, mutator: &str, value: Value) -> Value {
    json!([column, mutator, value])
}

/// `insert`: `row` is a JSON object column → value; `uuid_name` lets later ops refer to
/// the new row as `["named-uuid", name]`.
pub fn insert(table: &str, row: Map<String, Value>, uuid_name: Option<&str>) -> Value {
    let mut op = json!({"op": "insert", "table": table, "row": row});
    if let (Some(name), Some(obj)) = (uuid_name, op.as_object_mut()) {
        obj.insert("uuid-name".into(), json!(name));
    }
    op
}

pub fn update(table: &str, where_: Vec<Value>, row: Map<String, Value>) -> Value {
    json!({"op": "update", "table": table, "where": where_, "row": row})
}

pub fn mutate(table: &str, where_: Vec<Value>, mutations: Vec<Value>) -> Value {
    json!({"op": "mutate", "table": table, "where": where_, "mutations": mutations})
}

pub fn delete(table: &str, where_: Vec<Value>) -> Value {
    json!({"op": "delete", "table": table, "where": where_})
}

/// `select`; `columns: None` selects every column.
pub fn select(table: &str, where_: Vec<Value>, columns: Option<&[&str]>) -> Value {
    let mut op = json!({"op": "select", "table": table, "where": where_});
    if let (Some(cols), Some(obj)) = (columns, op.as_object_mut()) {
        obj.insert("columns".into(), json!(cols));
    }
    op
}

/// `wait` until the rows matching `where_`, projected on `columns`, are (`until: "=="`) or
/// are not (`"!="`) exactly `rows`. `timeout_ms: Some(0)` fails at once instead of
/// blocking, which is what a compare-and-swap guard wants.
pub fn wait(
    table: &str,
    where_: Vec<Value>,
    columns: &[&str],
    until: &str,
    rows: Vec<Value>,
    timeout_ms: Option<u64>,
) -> Value {
    let mut op = json!({
        "op": "wait", "table": table, "where": where_, "columns": columns,
        "until": until, "rows": rows,
    });
    if let (Some(t), Some(obj)) = (timeout_ms, op.as_object_mut()) {
        obj.insert("timeout".into(), json!(t));
    }
    op
}

pub fn comment(text: &str) -> Value {
    json!({"op": "comment", "comment": text})
}

/// Builds a row object from `(column, value)` pairs.
pub fn row<I: IntoIterator<Item = (&'static str, Value)>>(cols: I) -> Map<String, Value> {
    cols.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_shapes() {
        assert_eq!(
            insert("Port", row([("name", json!("p"))]), Some("newport")),
            json!({"op":"insert","table":"Port","row":{"name":"p"},"uuid-name":"newport"})
        );
        assert_eq!(
            mutate(
                "Open_vSwitch",
                vec![],
                vec![mutation("bridges", "insert", json!(["named-uuid", "b"]))]
            ),
            json!({"op":"mutate","table":"Open_vSwitch","where":[],
                   "mutations":[["bridges","insert",["named-uuid","b"]]]})
        );
        assert_eq!(
            wait(
                "Bridge",
                vec![eq("name", json!("br"))],
                &["name"],
                "==",
                vec![],
                Some(0)
            ),
            json!({"op":"wait","table":"Bridge","where":[["name","==","br"]],
                   "columns":["name"],"until":"==","rows":[],"timeout":0})
        );
        assert_eq!(
            select("Bridge", vec![], Some(&["name", "_uuid"])),
            json!({"op":"select","table":"Bridge","where":[],"columns":["name","_uuid"]})
        );
        assert_eq!(
            select("Bridge", vec![], None),
            json!({"op":"select","table":"Bridge","where":[]})
        );
    }

    #[test]
    fn transact_reply_success() {
        let ops = vec![comment("x"), select("Bridge", vec![], None)];
        let r = check_transact_reply(&ops, json!([{}, {"rows": []}])).expect("ok");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn transact_reply_op_error_names_the_op() {
        let ops = vec![
            wait("Bridge", vec![], &["name"], "==", vec![], Some(0)),
            insert("Bridge", row([("name", json!("b"))]), None),
        ];
        let err = check_transact_reply(
            &ops,
            json!([{"error":"timed out","details":"\"wait\" timed out"}, null]),
        )
        .expect_err("must fail");
        assert_eq!(
            err,
            TransactError::OpFailed {
                index: 0,
                op: "wait Bridge".into(),
                error: "timed out".into(),
                details: "\"wait\" timed out".into()
            }
        );
        assert_eq!(err.ovsdb_error(), Some("timed out"));
    }

    #[test]
    fn transact_reply_commit_error() {
        let ops = vec![insert("Port", row([("name", json!("p"))]), None)];
        let err = check_transact_reply(
            &ops,
            json!([{"uuid":["uuid","36bf5ab1-6d52-4b19-9a3e-2f9e6d1b9b0a"]},
                   {"error":"referential integrity violation","details":"x"}]),
        )
        .expect_err("must fail");
        assert!(
            matches!(err, TransactError::OpFailed { index: 1, ref op, .. } if op == "commit"),
            "{err:?}"
        );
    }

    #[test]
    fn transact_reply_malformed() {
        let ops = vec![comment("a"), comment("b")];
        for bad in [json!({}), json!([{}]), json!([{}, 5]), json!("x")] {
            assert!(
                matches!(
                    check_transact_reply(&ops, bad.clone()),
                    Err(TransactError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn result_helpers() {
        let u = inserted_uuid(&json!({"uuid":["uuid","36bf5ab1-6d52-4b19-9a3e-2f9e6d1b9b0a"]}));
        assert!(u.is_some());
        assert!(inserted_uuid(&json!({"uuid":"nope"})).is_none());
        let rows = selected_rows(&json!({"rows":[{"name":"a"}]})).expect("rows");
        assert_eq!(rows.len(), 1);
        assert!(selected_rows(&json!({"rows":5})).is_err());
    }
}
