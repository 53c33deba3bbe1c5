//! ovn-nbctl / ovs-vsctl value syntax, both ways. Pure: no I/O.
//!
//! Parsing turns what the user typed into the plain strings of the wire contract
//! (`ColumnOp.values`: one string per scalar or set element, `"KEY=VALUE"` per map entry):
//!
//! | typed | values |
//! |---|---|
//! | `sw1`, `"a b"` | `["sw1"]`, `["a b"]` |
//! | `a,b`, `[a, b]`, `'["x","y"]'`, `[]` | `["a","b"]`, `["a","b"]`, `["x","y"]`, `[]` |
//! | `k=v`, `{k=v, k2="a b"}`, `{}` | `["k=v"]`, `["k=v","k2=a b"]`, `[]` |
//!
//! Quoted strings use JSON escapes. Formatting goes the other way, as OVSDB prints data:
//! strings are quoted unless they look like an identifier (`"sw1"`, `router`, `""`), numbers
//! and booleans are bare, sets are `[a, b]`, maps `{k=v}`.

use std::collections::BTreeMap;

use thiserror::Error;

/// A value that does not follow the syntax.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("{input:?}: unterminated quoted string")]
    Unterminated { input: String },
    #[error("{input:?}: invalid escape in quoted string")]
    BadEscape { input: String },
    #[error("{input:?}: missing closing {close:?}")]
    Unclosed { input: String, close: char },
    #[error("{input:?}: unexpected {found:?} after the value")]
    Trailing { input: String, found: String },
    #[error("{input:?}: empty element")]
    EmptyElement { input: String },
    #[error("{input:?}: map entry {entry:?} is not KEY=VALUE")]
    NotAPair { input: String, entry: String },
    #[error("{input:?}: expected COLUMN{what}")]
    Column { input: String, what: &'static str },
    #[error("{input:?}: expected COLUMN[:KEY]OP VALUE with OP one of = != < > <= >= {{=}} {{!=}} {{<}} {{>}} {{<=}} {{>=}}")]
    Condition { input: String },
}

/// Parses a whole value: `[...]` (set), `{...}` (map), or a comma-separated list of atoms
/// and `KEY=VALUE` pairs. An empty unbracketed value is one empty string.
pub fn parse_values(input: &str) -> Result<Vec<String>, ValueError> {
    let t = input.trim();
    if let Some(rest) = t.strip_prefix('[') {
        let inner = rest.strip_suffix(']').ok_or_else(|| ValueError::Unclosed {
            input: input.into(),
            close: ']',
        })?;
        return elements(inner, input, false);
    }
    if let Some(rest) = t.strip_prefix('{') {
        let inner = rest.strip_suffix('}').ok_or_else(|| ValueError::Unclosed {
            input: input.into(),
            close: '}',
        })?;
        return elements(inner, input, true);
    }
    if t.is_empty() {
        return Ok(vec![String::new()]);
    }
    elements(t, input, false)
}

/// Parses one atom: a quoted string (unquoted here) or the text as typed, trimmed.
pub fn parse_atom(input: &str) -> Result<String, ValueError> {
    let t = input.trim();
    if t.starts_with('"') {
        let mut lx = Lexer::new(t, input);
        let s = lx.quoted()?;
        if !lx.rest().trim().is_empty() {
            return Err(ValueError::Trailing {
                input: input.into(),
                found: lx.rest().trim().into(),
            });
        }
        return Ok(s);
    }
    Ok(t.to_string())
}

/// Comma-separated elements of a set or map body. Each element is atoms and bare text; a
/// top-level `=` makes it a pair, whose key and value are unquoted separately.
fn elements(body: &str, input: &str, map: bool) -> Result<Vec<String>, ValueError> {
    if body.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut lx = Lexer::new(body, input);
    loop {
        let (key, value) = lx.element()?;
        match value {
            Some(v) => out.push(format!("{key}={v}")),
            None if map => {
                return Err(ValueError::NotAPair {
                    input: input.into(),
                    entry: key,
                })
            }
            None => out.push(key),
        }
        if !lx.eat(',') {
            break;
        }
    }
    if !lx.rest().trim().is_empty() {
        return Err(ValueError::Trailing {
            input: input.into(),
            found: lx.rest().trim().into(),
        });
    }
    Ok(out)
}

/// A cursor over a value's text.
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
    input: &'a str,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str, input: &'a str) -> Self {
        Lexer { s, pos: 0, input }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// A quoted string starting at the cursor, with JSON escapes.
    fn quoted(&mut self) -> Result<String, ValueError> {
        let unterminated = || ValueError::Unterminated {
            input: self.input.into(),
        };
        let bad = || ValueError::BadEscape {
            input: self.input.into(),
        };
        if !self.eat('"') {
            return Err(unterminated());
        }
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => {
                    let (_, e) = chars.next().ok_or_else(unterminated)?;
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'u' => {
                            let hex: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                            let code = (hex.len() == 4)
                                .then(|| u32::from_str_radix(&hex, 16).ok())
                                .flatten()
                                .and_then(char::from_u32)
                                .ok_or_else(bad)?;
                            out.push(code);
                        }
                        _ => return Err(bad()),
                    }
                }
                c => out.push(c),
            }
        }
        Err(unterminated())
    }

    /// One element: text up to a top-level `,` (quotes protect commas and `=`). Returns the
    /// key (or the whole atom) and, for `KEY=VALUE`, the value.
    fn element(&mut self) -> Result<(String, Option<String>), ValueError> {
        let (key, quoted) = self.part(true)?;
        let value = if self.eat('=') {
            Some(self.part(false)?.0)
        } else {
            None
        };
        if key.is_empty() && !quoted && value.is_none() {
            return Err(ValueError::EmptyElement {
                input: self.input.into(),
            });
        }
        Ok((key, value))
    }

    /// Quoted strings and bare text concatenated, up to `,` (or `=` when `stop_at_eq`),
    /// bare text trimmed at both ends; also whether any of it was quoted.
    fn part(&mut self, stop_at_eq: bool) -> Result<(String, bool), ValueError> {
        // Pieces of bare (false) and quoted (true) text; only bare text at the ends is trimmed.
        let mut pieces: Vec<(String, bool)> = Vec::new();
        loop {
            match self.peek() {
                None | Some(',') => break,
                Some('=') if stop_at_eq => break,
                Some('"') => pieces.push((self.quoted()?, true)),
                Some(c) => {
                    self.pos += c.len_utf8();
                    match pieces.last_mut() {
                        Some((s, false)) => s.push(c),
                        _ => pieces.push((c.to_string(), false)),
                    }
                }
            }
        }
        if let Some((s, false)) = pieces.first_mut() {
            *s = s.trim_start().to_string();
        }
        if let Some((s, false)) = pieces.last_mut() {
            *s = s.trim_end().to_string();
        }
        let quoted = pieces.iter().any(|(_, q)| *q);
        Ok((pieces.into_iter().map(|(s, _)| s).collect(), quoted))
    }
}

/// `COLUMN[:KEY][=VALUE]` split into its parts (the value still in value syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnArg {
    pub column: String,
    pub key: Option<String>,
    pub value: Option<String>,
}

/// Splits `COLUMN[:KEY][=VALUE]`. COLUMN is `[A-Za-z0-9_]+`; KEY may be quoted (it may then
/// contain `=` or `:`).
pub fn parse_column_arg(input: &str) -> Result<ColumnArg, ValueError> {
    let col_end = input
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(input.len());
    let column = &input[..col_end];
    if column.is_empty() {
        return Err(ValueError::Column {
            input: input.into(),
            what: "[:KEY][=VALUE]",
        });
    }
    let mut rest = &input[col_end..];
    let mut key = None;
    if let Some(r) = rest.strip_prefix(':') {
        let (k, after) = split_key(r, input, |s| s.strip_prefix('=').map(|_| 0))?;
        key = Some(k);
        rest = after;
    }
    let value = match rest.strip_prefix('=') {
        Some(v) => Some(v.to_string()),
        None if rest.is_empty() => None,
        None => {
            return Err(ValueError::Column {
                input: input.into(),
                what: "[:KEY][=VALUE]",
            })
        }
    };
    Ok(ColumnArg {
        column: column.to_string(),
        key,
        value,
    })
}

/// Reads a key (quoted, or bare up to where `stop` matches) and returns it with the rest.
fn split_key<'a>(
    s: &'a str,
    input: &str,
    stop: impl Fn(&str) -> Option<usize>,
) -> Result<(String, &'a str), ValueError> {
    if s.starts_with('"') {
        let mut lx = Lexer::new(s, input);
        let k = lx.quoted()?;
        return Ok((k, &s[lx.pos..]));
    }
    let mut end = s.len();
    for (i, _) in s.char_indices() {
        if stop(&s[i..]).is_some() {
            end = i;
            break;
        }
    }
    Ok((s[..end].to_string(), &s[end..]))
}

/// Comparison operators of `find` (ovs-vsctl's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    SetEq,
    SetNe,
    SubsetLt,
    SupersetGt,
    SubsetLe,
    SupersetGe,
}

/// Operators, longest first so that `<=` wins over `<`.
const OPS: [(&str, Op); 12] = [
    ("{!=}", Op::SetNe),
    ("{<=}", Op::SubsetLe),
    ("{>=}", Op::SupersetGe),
    ("{=}", Op::SetEq),
    ("{<}", Op::SubsetLt),
    ("{>}", Op::SupersetGt),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("=", Op::Eq),
    ("<", Op::Lt),
    (">", Op::Gt),
];

fn op_at(s: &str) -> Option<(Op, usize)> {
    OPS.iter()
        .find(|(t, _)| s.starts_with(t))
        .map(|(t, op)| (*op, t.len()))
}

/// A `find` condition: `COLUMN[:KEY]OP VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub column: String,
    pub key: Option<String>,
    pub op: Op,
    /// With a key: one atom; otherwise the parsed values.
    pub values: Vec<String>,
}

/// Parses a `find` condition.
pub fn parse_condition(input: &str) -> Result<Condition, ValueError> {
    let bad = || ValueError::Condition {
        input: input.into(),
    };
    let col_end = input
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .ok_or_else(bad)?;
    let column = &input[..col_end];
    if column.is_empty() {
        return Err(bad());
    }
    let mut rest = &input[col_end..];
    let mut key = None;
    if let Some(r) = rest.strip_prefix(':') {
        let (k, after) = split_key(r, input, |s| op_at(s).map(|(_, n)| n))?;
        key = Some(k);
        rest = after;
    }
    let (op, n) = op_at(rest).ok_or_else(bad)?;
    let text = &rest[n..];
    let values = if key.is_some() {
        vec![parse_atom(text)?]
    } else {
        parse_values(text)?
    };
    Ok(Condition {
        column: column.to_string(),
        key,
        op,
        values,
    })
}

/// Whether OVSDB would quote this string: anything but `[A-Za-z_][A-Za-z_.-]*` (digits
/// included, as ovsdb-client does), and the words `true`/`false`.
fn needs_quotes(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return true,
    }
    if !chars.all(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '-' | '.')) {
        return true;
    }
    s == "true" || s == "false"
}

fn is_number(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s);
    !d.is_empty() && d.chars().all(|c| c.is_ascii_digit())
}

/// One atom as OVSDB prints it. The contract sends every value as text, so a value that
/// reads as an integer or a boolean is printed bare (as OVSDB prints those types).
pub fn format_atom(s: &str) -> String {
    if is_number(s) || s == "true" || s == "false" || !needs_quotes(s) {
        s.to_string()
    } else {
        quote(s)
    }
}

/// A JSON-quoted string.
pub fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A set as OVSDB prints it: `[a, "b c"]`.
pub fn format_set<S: AsRef<str>>(items: &[S]) -> String {
    let v: Vec<String> = items.iter().map(|s| format_atom(s.as_ref())).collect();
    format!("[{}]", v.join(", "))
}

/// A map as OVSDB prints it, sorted by key: `{k=v, "a b"="1"}`.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    let v: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}={}", format_atom(k), format_atom(v)))
        .collect();
    format!("{{{}}}", v.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(s: &str) -> Vec<String> {
        parse_values(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn atoms_sets_and_maps() {
        assert_eq!(vals("sw1"), ["sw1"]);
        assert_eq!(vals(r#""a b""#), ["a b"]);
        assert_eq!(
            vals(r#"  "0a:00:00:00:00:01 10.0.0.2"  "#),
            ["0a:00:00:00:00:01 10.0.0.2"]
        );
        assert_eq!(vals("a,b"), ["a", "b"]);
        assert_eq!(vals("[a, b]"), ["a", "b"]);
        assert_eq!(vals(r#"["x","y"]"#), ["x", "y"]);
        assert_eq!(vals(r#"["a,b", c]"#), ["a,b", "c"]);
        assert_eq!(vals("[]"), Vec::<String>::new());
        assert_eq!(vals("[ ]"), Vec::<String>::new());
        assert_eq!(vals("{}"), Vec::<String>::new());
        assert_eq!(vals("k=v"), ["k=v"]);
        assert_eq!(vals(r#"{k=v, k2="a b"}"#), ["k=v", "k2=a b"]);
        assert_eq!(vals(r#"{"a=b"=c}"#), ["a=b=c"]);
        assert_eq!(vals(r#"{k="x,y"}"#), ["k=x,y"]);
        assert_eq!(vals(r#""""#), [""]);
        assert_eq!(vals(""), [""]);
        assert_eq!(vals("ip4.src==10.0.0.1"), ["ip4.src==10.0.0.1"]);
        assert_eq!(vals(r#""tab\there\"\u0041""#), ["tab\there\"A"]);
        assert_eq!(vals("[dynamic, unknown]"), ["dynamic", "unknown"]);
        // Blanks inside quotes are kept; around bare text they are not.
        assert_eq!(vals(r#"[" a ", b ]"#), [" a ", "b"]);
        assert_eq!(vals(r#"{k=" v "}"#), ["k= v "]);
        assert_eq!(vals(r#""x"y"#), ["xy"]);
    }

    #[test]
    fn value_syntax_errors_name_the_input() {
        for (s, want) in [
            ("\"abc", "unterminated"),
            ("[a, b", "closing ']'"),
            ("{k=v", "closing '}'"),
            ("{k}", "not KEY=VALUE"),
            ("[a,,b]", "empty element"),
            ("[a,]", "empty element"),
            (r#""a\q""#, "invalid escape"),
            (r#""\u12""#, "invalid escape"),
        ] {
            let e = parse_values(s).expect_err(s).to_string();
            assert!(e.contains(want), "{s}: {e}");
            assert!(e.contains(&format!("{s:?}")), "{s}: {e}");
        }
    }

    #[test]
    fn single_atoms() {
        assert_eq!(parse_atom("v"), Ok("v".into()));
        assert_eq!(parse_atom("a,b"), Ok("a,b".into()));
        assert_eq!(parse_atom(r#""a b""#), Ok("a b".into()));
        assert!(parse_atom(r#""a" b"#).is_err());
    }

    #[test]
    fn column_arguments() {
        let ca = |s: &str| parse_column_arg(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(
            ca("external_ids:k=v"),
            ColumnArg {
                column: "external_ids".into(),
                key: Some("k".into()),
                value: Some("v".into())
            }
        );
        assert_eq!(
            ca("addresses=[a, b]"),
            ColumnArg {
                column: "addresses".into(),
                key: None,
                value: Some("[a, b]".into())
            }
        );
        assert_eq!(
            ca(r#"external_ids:"k8s.io/x=y"="1""#),
            ColumnArg {
                column: "external_ids".into(),
                key: Some("k8s.io/x=y".into()),
                value: Some(r#""1""#.into())
            }
        );
        assert_eq!(
            ca("name"),
            ColumnArg {
                column: "name".into(),
                key: None,
                value: None
            }
        );
        assert_eq!(
            ca("options:router-port"),
            ColumnArg {
                column: "options".into(),
                key: Some("router-port".into()),
                value: None
            }
        );
        assert_eq!(ca("type=").value.as_deref(), Some(""));
        assert!(parse_column_arg("=x").is_err());
        assert!(parse_column_arg("na-me=x").is_err());
    }

    #[test]
    fn conditions() {
        let c = |s: &str| parse_condition(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let got = c("external_ids:owner=cni");
        assert_eq!(
            (got.column.as_str(), got.key.as_deref(), got.op, got.values),
            (
                "external_ids",
                Some("owner"),
                Op::Eq,
                vec!["cni".to_string()]
            )
        );
        assert_eq!(c("vni>=10").op, Op::Ge);
        assert_eq!(c("vni<10").op, Op::Lt);
        assert_eq!(c("name!=sw1").op, Op::Ne);
        let s = c("addresses{>=}[dynamic]");
        assert_eq!(
            (s.op, s.values),
            (Op::SupersetGe, vec!["dynamic".to_string()])
        );
        assert_eq!(c("encap_types{=}geneve,vxlan").values, ["geneve", "vxlan"]);
        assert_eq!(c(r#"external_ids:"a=b"="x y""#).key.as_deref(), Some("a=b"));
        assert_eq!(c(r#"external_ids:k="x y""#).values, ["x y"]);
        for bad in ["name", "=x", "name~x", ""] {
            assert!(parse_condition(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ovsdb_formatting() {
        assert_eq!(format_atom("sw1"), r#""sw1""#);
        assert_eq!(format_atom("router"), "router");
        assert_eq!(format_atom("iface-id"), "iface-id");
        assert_eq!(format_atom(""), r#""""#);
        assert_eq!(format_atom("1001"), "1001");
        assert_eq!(format_atom("-3"), "-3");
        assert_eq!(format_atom("true"), "true");
        assert_eq!(format_atom("a b"), r#""a b""#);
        assert_eq!(format_atom("a\"b"), r#""a\"b""#);
        assert_eq!(format_set(&["geneve", "vxlan"]), "[geneve, vxlan]");
        assert_eq!(
            format_set(&["0a:00:00:00:00:01 10.0.0.2"]),
            r#"["0a:00:00:00:00:01 10.0.0.2"]"#
        );
        assert_eq!(format_set::<&str>(&[]), "[]");
        let m: BTreeMap<String, String> = [("z", "1"), ("owner", "cni x")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert_eq!(format_map(&m), r#"{owner="cni x", z=1}"#);
        assert_eq!(format_map(&BTreeMap::new()), "{}");
    }

    #[test]
    fn formatted_values_parse_back() {
        for items in [
            vec!["a b", "c,d", "x\"y", "sw1", ""],
            vec!["dynamic"],
            vec![],
        ] {
            let text = format_set(&items);
            assert_eq!(vals(&text), items, "{text}");
        }
        let m: BTreeMap<String, String> = [("k,1", "v=1"), ("b", "")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let text = format_map(&m);
        assert_eq!(vals(&text), ["b=", "k,1=v=1"], "{text}");
    }
}
