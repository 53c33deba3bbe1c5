//! Column values and the database-command semantics on them (`set`, `add`, `remove`,
//! `clear`, as ovn-nbctl applies them to OVSDB columns). Pure.

use std::collections::{BTreeMap, HashMap};

use weft_proto::v1::{column_op::Action, Column, ColumnOp, ColumnType};

use super::ColumnDef;
use crate::validate::ValidationError;

/// A column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnValue {
    /// One value as text ("true", "42", "10.0.0.0/24").
    Scalar(String),
    /// A set of values, in order.
    Set(Vec<String>),
    /// A string map.
    Map(BTreeMap<String, String>),
}

impl ColumnValue {
    /// From a bool.
    pub fn bool(b: bool) -> Self {
        ColumnValue::Scalar(b.to_string())
    }
    /// From an integer.
    pub fn int(n: impl ToString) -> Self {
        ColumnValue::Scalar(n.to_string())
    }
    /// From a string.
    pub fn str(s: &str) -> Self {
        ColumnValue::Scalar(s.to_string())
    }
    /// From a set.
    pub fn set(v: &[String]) -> Self {
        ColumnValue::Set(v.to_vec())
    }
    /// From a proto map.
    pub fn map(m: &HashMap<String, String>) -> Self {
        ColumnValue::Map(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// As the proto `Column` named `name`.
    pub fn to_column(&self, name: &str) -> Column {
        match self {
            ColumnValue::Scalar(s) => Column {
                name: name.to_string(),
                r#type: ColumnType::Scalar as i32,
                values: vec![s.clone()],
                map: HashMap::new(),
            },
            ColumnValue::Set(v) => Column {
                name: name.to_string(),
                r#type: ColumnType::Set as i32,
                values: v.clone(),
                map: HashMap::new(),
            },
            ColumnValue::Map(m) => Column {
                name: name.to_string(),
                r#type: ColumnType::Map as i32,
                values: Vec::new(),
                map: m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            },
        }
    }

    /// The scalar text (error naming the column otherwise).
    pub fn into_scalar(self, column: &str) -> Result<String, ValidationError> {
        match self {
            ColumnValue::Scalar(s) => Ok(s),
            other => Err(ValidationError::new(
                column,
                &format!("{other:?}"),
                "expected one value",
            )),
        }
    }
    /// The scalar as a bool.
    pub fn into_bool(self, column: &str) -> Result<bool, ValidationError> {
        let s = self.into_scalar(column)?;
        match s.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ValidationError::new(column, &s, "expected true or false")),
        }
    }
    /// The scalar as an unsigned integer.
    pub fn into_u32(self, column: &str) -> Result<u32, ValidationError> {
        let s = self.into_scalar(column)?;
        s.parse()
            .map_err(|_| ValidationError::new(column, &s, "expected a non-negative integer"))
    }
    /// The set elements.
    pub fn into_set(self, column: &str) -> Result<Vec<String>, ValidationError> {
        match self {
            ColumnValue::Set(v) => Ok(v),
            ColumnValue::Scalar(s) => Err(ValidationError::new(column, &s, "expected a set")),
            ColumnValue::Map(_) => Err(ValidationError::new(column, "{...}", "expected a set")),
        }
    }
    /// The map.
    pub fn into_map(self, column: &str) -> Result<HashMap<String, String>, ValidationError> {
        match self {
            ColumnValue::Map(m) => Ok(m.into_iter().collect()),
            ColumnValue::Scalar(s) => Err(ValidationError::new(column, &s, "expected a map")),
            ColumnValue::Set(_) => Err(ValidationError::new(column, "[...]", "expected a map")),
        }
    }
}

/// Splits a map element "KEY=VALUE".
fn pair(column: &str, s: &str) -> Result<(String, String), ValidationError> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| ValidationError::new(column, s, "expected KEY=VALUE"))?;
    if k.is_empty() {
        return Err(ValidationError::new(column, s, "empty key"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Applies one column op to the column's current value; `def` tells its type.
pub fn apply(
    def: &ColumnDef,
    current: ColumnValue,
    op: &ColumnOp,
) -> Result<ColumnValue, ValidationError> {
    let col = def.name;
    let action = Action::try_from(op.action)
        .map_err(|_| ValidationError::new("action", &op.action.to_string(), "unknown action"))?;
    if !op.key.is_empty() && (def.ty != ColumnType::Map || action != Action::Set) {
        return Err(ValidationError::new(
            format!("{col}:{}", op.key),
            &op.values.join(","),
            "COLUMN:KEY=VALUE is only for setting one entry of a map column",
        ));
    }
    match (def.ty, action) {
        (ColumnType::Scalar, Action::Set) => match op.values.as_slice() {
            [v] => Ok(ColumnValue::Scalar(v.clone())),
            _ => Err(ValidationError::new(
                col,
                &op.values.join(","),
                "a scalar column takes exactly one value",
            )),
        },
        (ColumnType::Scalar, _) => Err(ValidationError::new(
            col,
            &op.values.join(","),
            "add, remove and clear apply to set and map columns only (use set)",
        )),
        (ColumnType::Set, a) => {
            let mut cur = current.into_set(col)?;
            match a {
                Action::Set => Ok(ColumnValue::Set(op.values.clone())),
                Action::Add => {
                    for v in &op.values {
                        if !cur.contains(v) {
                            cur.push(v.clone());
                        }
                    }
                    Ok(ColumnValue::Set(cur))
                }
                Action::Remove => {
                    cur.retain(|x| !op.values.contains(x));
                    Ok(ColumnValue::Set(cur))
                }
                Action::Clear => Ok(ColumnValue::Set(Vec::new())),
            }
        }
        (ColumnType::Map, a) => {
            let ColumnValue::Map(mut cur) = current else {
                return Err(ValidationError::new(col, "", "expected a map"));
            };
            match a {
                Action::Set if !op.key.is_empty() => {
                    let [v] = op.values.as_slice() else {
                        return Err(ValidationError::new(
                            format!("{col}:{}", op.key),
                            &op.values.join(","),
                            "exactly one value",
                        ));
                    };
                    cur.insert(op.key.clone(), v.clone());
                    Ok(ColumnValue::Map(cur))
                }
                Action::Set => {
                    let mut m = BTreeMap::new();
                    for v in &op.values {
                        let (k, v) = pair(col, v)?;
                        m.insert(k, v);
                    }
                    Ok(ColumnValue::Map(m))
                }
                Action::Add => {
                    // ovsdb `add` keeps an existing key's value.
                    for v in &op.values {
                        let (k, v) = pair(col, v)?;
                        cur.entry(k).or_insert(v);
                    }
                    Ok(ColumnValue::Map(cur))
                }
                Action::Remove => {
                    for v in &op.values {
                        match v.split_once('=') {
                            Some((k, val)) => {
                                if cur.get(k).is_some_and(|x| x == val) {
                                    cur.remove(k);
                                }
                            }
                            None => {
                                cur.remove(v.as_str());
                            }
                        }
                    }
                    Ok(ColumnValue::Map(cur))
                }
                Action::Clear => Ok(ColumnValue::Map(BTreeMap::new())),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn op(action: Action, key: &str, values: &[&str]) -> ColumnOp {
        ColumnOp {
            action: action as i32,
            column: "c".into(),
            key: key.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn set_semantics() {
        let d = ColumnDef::rw("addresses", ColumnType::Set);
        let cur = ColumnValue::Set(vec!["a".into()]);
        let v = apply(&d, cur.clone(), &op(Action::Add, "", &["b", "a"])).unwrap();
        assert_eq!(v, ColumnValue::Set(vec!["a".into(), "b".into()]));
        let v = apply(&d, v, &op(Action::Remove, "", &["a"])).unwrap();
        assert_eq!(v, ColumnValue::Set(vec!["b".into()]));
        assert_eq!(
            apply(&d, v, &op(Action::Clear, "", &[])).unwrap(),
            ColumnValue::Set(vec![])
        );
        assert!(apply(&d, cur, &op(Action::Set, "k", &["x"])).is_err());
    }

    #[test]
    fn map_semantics() {
        let d = ColumnDef::rw("external_ids", ColumnType::Map);
        let cur = ColumnValue::Map(BTreeMap::new());
        let v = apply(&d, cur, &op(Action::Set, "a", &["1"])).unwrap();
        let v = apply(&d, v, &op(Action::Add, "", &["a=2", "b=3"])).unwrap();
        let ColumnValue::Map(m) = &v else { panic!() };
        assert_eq!(m["a"], "1", "add keeps an existing key");
        assert_eq!(m["b"], "3");
        let v = apply(&d, v, &op(Action::Remove, "", &["a=9", "b"])).unwrap();
        let ColumnValue::Map(m) = &v else { panic!() };
        assert_eq!(m.len(), 1, "a=9 does not match a=1; b removed by key");
        let e = apply(&d, v, &op(Action::Add, "", &["novalue"])).unwrap_err();
        assert!(e.to_string().contains("KEY=VALUE"));
    }

    #[test]
    fn scalar_semantics() {
        let d = ColumnDef::rw("enabled", ColumnType::Scalar);
        let cur = ColumnValue::bool(true);
        assert_eq!(
            apply(&d, cur.clone(), &op(Action::Set, "", &["false"])).unwrap(),
            ColumnValue::Scalar("false".into())
        );
        assert!(apply(&d, cur.clone(), &op(Action::Set, "", &["a", "b"])).is_err());
        assert!(apply(&d, cur, &op(Action::Add, "", &["x"])).is_err());
        assert!(ColumnValue::str("maybe").into_bool("enabled").is_err());
    }
}
