//! OVSDB data values (RFC 7047 §5.1): atoms (`integer`, `real`, `boolean`, `string`, `uuid`,
//! `named-uuid`) and data (a set of atoms or a map of atom pairs), their JSON encoding and
//! decoding, and small JSON builders for transaction operations.
//!
//! Start with [`Datum::from_json`] (decoding what the server sends) and [`json_uuid`],
//! [`json_named_uuid`], [`json_set`], [`json_map`], [`json_str_map`] (encoding what we send).
//! A one-element set is encoded as the bare atom, as the RFC allows and ovsdb-server does.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Value};

/// Decoding errors. Each names the offending value (truncated for logs).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("invalid uuid {value:?}")]
    InvalidUuid { value: String },
    #[error("invalid OVSDB atom {value}")]
    InvalidAtom { value: String },
    #[error("invalid OVSDB set {value}")]
    InvalidSet { value: String },
    #[error("invalid OVSDB map {value}")]
    InvalidMap { value: String },
    #[error("column {column:?}: expected {expected}, got {value}")]
    WrongType {
        column: String,
        expected: &'static str,
        value: String,
    },
}

/// Renders a JSON value for an error message, cut to a readable length.
pub(crate) fn snippet(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

/// A row UUID in canonical text form (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower case).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(String);

impl Uuid {
    /// Parses and validates the 8-4-4-4-12 hex form; stores it lower-cased.
    pub fn parse(s: &str) -> Result<Uuid, DataError> {
        let bad = || DataError::InvalidUuid {
            value: s.chars().take(80).collect(),
        };
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(bad());
        }
        for (i, c) in b.iter().enumerate() {
            let ok = match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            };
            if !ok {
                return Err(bad());
            }
        }
        Ok(Uuid(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `["uuid", "<uuid>"]`
    pub fn to_json(&self) -> Value {
        json_uuid(self)
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One OVSDB atom.
#[derive(Debug, Clone)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
    /// Only valid inside a transaction that defines the name with `uuid-name`.
    NamedUuid(String),
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a == b,
            (Atom::Real(a), Atom::Real(b)) => a.to_bits() == b.to_bits() || a == b,
            (Atom::Boolean(a), Atom::Boolean(b)) => a == b,
            (Atom::String(a), Atom::String(b)) => a == b,
            (Atom::Uuid(a), Atom::Uuid(b)) => a == b,
            (Atom::NamedUuid(a), Atom::NamedUuid(b)) => a == b,
            _ => false,
        }
    }
}

impl Atom {
    pub fn from_json(v: &Value) -> Result<Atom, DataError> {
        let bad = || DataError::InvalidAtom { value: snippet(v) };
        match v {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Atom::Integer(i))
                } else if n.is_f64() {
                    n.as_f64().map(Atom::Real).ok_or_else(bad)
                } else {
                    // A u64 beyond i64::MAX is not an OVSDB integer.
                    Err(bad())
                }
            }
            Value::Bool(b) => Ok(Atom::Boolean(*b)),
            Value::String(s) => Ok(Atom::String(s.clone())),
            Value::Array(a) => match (a.first().and_then(Value::as_str), a.get(1), a.len()) {
                (Some("uuid"), Some(Value::String(s)), 2) => Ok(Atom::Uuid(Uuid::parse(s)?)),
                (Some("named-uuid"), Some(Value::String(s)), 2) => Ok(Atom::NamedUuid(s.clone())),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json_uuid(u),
            Atom::NamedUuid(n) => json_named_uuid(n),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_uuid(&self) -> Option<&Uuid> {
        match self {
            Atom::Uuid(u) => Some(u),
            _ => None,
        }
    }
}

/// A column value: a set of atoms (a scalar is a one-element set) or a map.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Set(Vec<Atom>),
    Map(Vec<(Atom, Atom)>),
}

impl Default for Datum {
    fn default() -> Self {
        Datum::Set(Vec::new())
    }
}

impl Datum {
    /// Decodes `atom`, `["set", [atom...]]` or `["map", [[k, v]...]]`.
    pub fn from_json(v: &Value) -> Result<Datum, DataError> {
        if let Value::Array(a) = v {
            match a.first().and_then(Value::as_str) {
                Some("set") => {
                    let elems = match (a.get(1), a.len()) {
                        (Some(Value::Array(e)), 2) => e,
                        _ => return Err(DataError::InvalidSet { value: snippet(v) }),
                    };
                    let atoms = elems
                        .iter()
                        .map(Atom::from_json)
                        .collect::<Result<Vec<_>, _>>()?;
                    return Ok(Datum::Set(atoms));
                }
                Some("map") => {
                    let bad = || DataError::InvalidMap { value: snippet(v) };
                    let pairs = match (a.get(1), a.len()) {
                        (Some(Value::Array(e)), 2) => e,
                        _ => return Err(bad()),
                    };
                    let mut out = Vec::with_capacity(pairs.len());
                    for p in pairs {
                        match p.as_array().map(Vec::as_slice) {
                            Some([k, val]) => {
                                out.push((Atom::from_json(k)?, Atom::from_json(val)?))
                            }
                            _ => return Err(bad()),
                        }
                    }
                    return Ok(Datum::Map(out));
                }
                _ => {}
            }
        }
        Ok(Datum::Set(vec![Atom::from_json(v)?]))
    }

    pub fn to_json(&self) -> Value {
        match self {
            Datum::Set(atoms) if atoms.len() == 1 => atoms[0].to_json(),
            Datum::Set(atoms) => {
                json!(["set", atoms.iter().map(Atom::to_json).collect::<Vec<_>>()])
            }
            Datum::Map(pairs) => json!([
                "map",
                pairs
                    .iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// The atoms of a set (empty for a map).
    pub fn atoms(&self) -> &[Atom] {
        match self {
            Datum::Set(a) => a,
            Datum::Map(_) => &[],
        }
    }

    /// The single string of a scalar or optional string column.
    pub fn as_str(&self) -> Option<&str> {
        match self.atoms() {
            [a] => a.as_str(),
            _ => None,
        }
    }

    /// The single integer of a scalar or optional integer column.
    pub fn as_i64(&self) -> Option<i64> {
        match self.atoms() {
            [a] => a.as_i64(),
            _ => None,
        }
    }

    /// The strings of a set-of-strings column (non-strings skipped).
    pub fn strings(&self) -> Vec<String> {
        self.atoms()
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect()
    }

    /// The UUIDs of a set-of-uuids column (non-uuids skipped).
    pub fn uuids(&self) -> Vec<Uuid> {
        self.atoms()
            .iter()
            .filter_map(|a| a.as_uuid().cloned())
            .collect()
    }

    /// A string→string map (pairs of other types skipped). An empty set reads as an empty map.
    pub fn str_map(&self) -> BTreeMap<String, String> {
        match self {
            Datum::Map(pairs) => pairs
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect(),
            Datum::Set(_) => BTreeMap::new(),
        }
    }
}

/// A row as decoded from the server: column name → value. Columns the server omitted (an
/// update2 `insert`/`initial` leaves out default values) are absent; read them through
/// [`RowExt`], which treats absence as the empty default.
pub type Row = BTreeMap<String, Datum>;

/// Convenient column accessors on a [`Row`]; a missing column reads as empty/None.
pub trait RowExt {
    fn str_col(&self, col: &str) -> Option<&str>;
    fn i64_col(&self, col: &str) -> Option<i64>;
    fn str_map_col(&self, col: &str) -> BTreeMap<String, String>;
    fn strings_col(&self, col: &str) -> Vec<String>;
    fn uuids_col(&self, col: &str) -> Vec<Uuid>;
}

impl RowExt for Row {
    fn str_col(&self, col: &str) -> Option<&str> {
        self.get(col).and_then(Datum::as_str)
    }
    fn i64_col(&self, col: &str) -> Option<i64> {
        self.get(col).and_then(Datum::as_i64)
    }
    fn str_map_col(&self, col: &str) -> BTreeMap<String, String> {
        self.get(col).map(Datum::str_map).unwrap_or_default()
    }
    fn strings_col(&self, col: &str) -> Vec<String> {
        self.get(col).map(Datum::strings).unwrap_or_default()
    }
    fn uuids_col(&self, col: &str) -> Vec<Uuid> {
        self.get(col).map(Datum::uuids).unwrap_or_default()
    }
}

/// Decodes a `<row>` JSON object (column → value).
pub fn row_from_json(v: &Value) -> Result<Row, DataError> {
    let obj = v.as_object().ok_or_else(|| DataError::WrongType {
        column: "<row>".into(),
        expected: "object",
        value: snippet(v),
    })?;
    obj.iter()
        .map(|(k, val)| {
            Datum::from_json(val)
                .map(|d| (k.clone(), d))
                .map_err(|e| match e {
                    DataError::InvalidAtom { value }
                    | DataError::InvalidSet { value }
                    | DataError::InvalidMap { value } => DataError::WrongType {
                        column: k.clone(),
                        expected: "OVSDB value",
                        value,
                    },
                    other => other,
                })
        })
        .collect()
}

/// `["uuid", "<uuid>"]`
pub fn json_uuid(u: &Uuid) -> Value {
    json!(["uuid", u.as_str()])
}

/// `["named-uuid", "<name>"]`
pub fn json_named_uuid(name: &str) -> Value {
    json!(["named-uuid", name])
}

/// `["set", [...]]` (always the explicit form, valid for any set size).
pub fn json_set<I: IntoIterator<Item = Value>>(items: I) -> Value {
    json!(["set", items.into_iter().collect::<Vec<_>>()])
}

/// `["set", ["a", "b"]]` from strings.
pub fn json_str_set<I, S>(items: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    json_set(items.into_iter().map(|s| Value::String(s.into())))
}

/// `["map", [[k, v], ...]]`
pub fn json_map<I: IntoIterator<Item = (Value, Value)>>(pairs: I) -> Value {
    json!([
        "map",
        pairs
            .into_iter()
            .map(|(k, v)| json!([k, v]))
            .collect::<Vec<_>>()
    ])
}

/// `["map", [["k", "v"], ...]]` from a string map.
pub fn json_str_map(m: &BTreeMap<String, String>) -> Value {
    json_map(
        m.iter()
            .map(|(k, v)| (Value::String(k.clone()), Value::String(v.clone()))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "36bf5ab1-6d52-4b19-9a3e-2f9e6d1b9b0a";

    #[test]
    fn uuid_validation() {
        assert!(Uuid::parse(U).is_ok());
        assert_eq!(
            Uuid::parse(&U.to_uppercase()).map(|u| u.to_string()),
            Ok(U.to_string())
        );
        for bad in ["", "xyz", &U[1..], &U.replace('-', "x"), &format!("{U}0")] {
            assert!(
                matches!(Uuid::parse(bad), Err(DataError::InvalidUuid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn atoms_round_trip() {
        for v in [
            json!(5),
            json!(-7),
            json!(1.5),
            json!(true),
            json!("s"),
            json!(["uuid", U]),
            json!(["named-uuid", "row1"]),
        ] {
            let a = Atom::from_json(&v).expect("atom");
            assert_eq!(a.to_json(), v);
        }
    }

    #[test]
    fn bad_atoms_are_errors() {
        for v in [
            json!(null),
            json!({}),
            json!(["uuid"]),
            json!(["uuid", "nope"]),
            json!(["uuid", U, 1]),
            json!(["weird", "x"]),
            json!(u64::MAX),
        ] {
            assert!(Atom::from_json(&v).is_err(), "{v}");
        }
    }

    #[test]
    fn datum_forms() {
        let single = Datum::from_json(&json!("x")).expect("single");
        assert_eq!(single, Datum::Set(vec![Atom::String("x".into())]));
        assert_eq!(single.to_json(), json!("x"));
        let empty = Datum::from_json(&json!(["set", []])).expect("empty");
        assert_eq!(empty.atoms().len(), 0);
        assert_eq!(empty.to_json(), json!(["set", []]));
        let set = Datum::from_json(&json!(["set", ["a", "b"]])).expect("set");
        assert_eq!(set.strings(), vec!["a", "b"]);
        let map = Datum::from_json(&json!(["map", [["k", "v"], ["k2", "v2"]]])).expect("map");
        assert_eq!(map.str_map().get("k2").map(String::as_str), Some("v2"));
        assert_eq!(map.to_json(), json!(["map", [["k", "v"], ["k2", "v2"]]]));
        let uu = Datum::from_json(&json!(["set", [["uuid", U]]])).expect("uuids");
        assert_eq!(uu.uuids().len(), 1);
    }

    #[test]
    fn bad_data_are_errors() {
        for v in [
            json!(["set"]),
            json!(["set", "a"]),
            json!(["set", [null]]),
            json!(["map", [["k"]]]),
            json!(["map", [["k", "v", "w"]]]),
            json!(["map", {}]),
            json!(["map", [[["set", []], "v"]]]),
        ] {
            assert!(Datum::from_json(&v).is_err(), "{v}");
        }
    }

    #[test]
    fn row_decoding_names_the_column() {
        let err = row_from_json(&json!({"name": "a", "ofport": {"x": 1}})).expect_err("must fail");
        assert!(err.to_string().contains("ofport"), "{err}");
        let row = row_from_json(&json!({"name": "a", "ofport": 3})).expect("row");
        assert_eq!(row.str_col("name"), Some("a"));
        assert_eq!(row.i64_col("ofport"), Some(3));
        assert!(row.str_map_col("external_ids").is_empty());
    }

    #[test]
    fn builders() {
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), "1".to_string());
        assert_eq!(json_str_map(&m), json!(["map", [["a", "1"]]]));
        assert_eq!(json_str_set(["x"]), json!(["set", ["x"]]));
        assert_eq!(json_named_uuid("n"), json!(["named-uuid", "n"]));
        let u = Uuid::parse(U).expect("uuid");
        assert_eq!(u.to_json(), json!(["uuid", U]));
    }
}
