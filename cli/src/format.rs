//! Output rendering shared by every command. Pure: no I/O.
//!
//! Commands that print rows build a [`Table`] and hand it to [`render_table`], which applies
//! the list-output options ([`Out`]: `-f table|list|csv`, `--bare`, `--columns`,
//! `--no-headings`). JSON goes through [`json_text`]. [`oneline`] is ovs-vsctl's
//! `--oneline` escaping, used for every command of a `--` chain.

use std::collections::BTreeMap;

use serde::Serialize;
use thiserror::Error;

use crate::args::{Format, GlobalOpts};
use crate::value;

/// Rendering failures.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error("unknown column {column:?} in --columns (columns: {known})")]
    UnknownColumn { column: String, known: String },
    #[error("cannot render the reply as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// How output is to look, from the global options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Out {
    /// `-f`, when given.
    pub format: Option<Format>,
    pub bare: bool,
    pub columns: Option<Vec<String>>,
    pub no_headings: bool,
    /// JSON on one line (chains and `--oneline`).
    pub compact: bool,
}

impl Out {
    pub fn from_global(g: &GlobalOpts, compact: bool) -> Out {
        Out {
            format: g.format,
            bare: g.bare,
            columns: g.columns.clone(),
            no_headings: g.no_headings,
            compact,
        }
    }

    /// `-f json`?
    pub fn json(&self) -> bool {
        self.format == Some(Format::Json)
    }
}

/// One cell of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Plain text (the fixed tables: ls-list, lsp-list, ...). Empty prints `-` in a table.
    Text(String),
    /// OVSDB data (list, find): printed in OVSDB syntax, or bare with `--bare`.
    Scalar(String),
    Set(Vec<String>),
    Map(BTreeMap<String, String>),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// The cell as OVSDB prints it, or bare (`--bare`): what `get` prints per value.
    pub fn render(&self, bare: bool) -> String {
        self.display(bare, false)
    }

    /// The cell as typed data would print it (`format` for tables, csv and list).
    fn display(&self, bare: bool, dash: bool) -> String {
        match (self, bare) {
            (Cell::Text(s), _) if s.is_empty() && dash && !bare => "-".to_string(),
            (Cell::Text(s), _) => s.clone(),
            (Cell::Scalar(s), true) => s.clone(),
            (Cell::Scalar(s), false) => value::format_atom(s),
            (Cell::Set(v), true) => v.join(" "),
            (Cell::Set(v), false) => value::format_set(v),
            (Cell::Map(m), true) => m
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            (Cell::Map(m), false) => value::format_map(m),
        }
    }

    /// The cell as JSON: strings, arrays of strings, objects of strings.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Cell::Text(s) | Cell::Scalar(s) => serde_json::Value::String(s.clone()),
            Cell::Set(v) => serde_json::json!(v),
            Cell::Map(m) => serde_json::json!(m),
        }
    }
}

/// Rows with headings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub headings: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(headings: &[&str]) -> Table {
        Table {
            headings: headings.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Only `columns`, in that order (matched case-insensitively against the headings).
    pub fn select(&self, columns: &[String]) -> Result<Table, RenderError> {
        let mut idx = Vec::new();
        for c in columns {
            let c = c.trim();
            match self.headings.iter().position(|h| h.eq_ignore_ascii_case(c)) {
                Some(i) => idx.push(i),
                None => {
                    return Err(RenderError::UnknownColumn {
                        column: c.to_string(),
                        known: self.headings.join(", "),
                    })
                }
            }
        }
        Ok(Table {
            headings: idx.iter().map(|&i| self.headings[i].clone()).collect(),
            rows: self
                .rows
                .iter()
                .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
                .collect(),
        })
    }
}

/// Renders a table in the requested form; `default` is the command's own form when `-f` is
/// not given. Nothing at all for no rows (so `awk 'NR>1'` and `wc -l` stay simple).
pub fn render_table(t: &Table, out: &Out, default: Format) -> Result<String, RenderError> {
    let t = match &out.columns {
        Some(c) => t.select(c)?,
        None => t.clone(),
    };
    if t.rows.is_empty() {
        return Ok(String::new());
    }
    let format = out.format.unwrap_or(default);
    let headings = !out.no_headings && !out.bare;
    Ok(match format {
        Format::List => list(&t, headings, out.bare),
        Format::Csv => csv(&t, headings, out.bare),
        Format::Table | Format::Json | Format::Svg | Format::Dot if out.bare => bare_rows(&t),
        Format::Table | Format::Json | Format::Svg | Format::Dot => aligned(&t, headings),
    })
}

/// Aligned columns separated by two spaces, no trailing blanks.
fn aligned(t: &Table, headings: bool) -> String {
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| r.iter().map(|c| c.display(false, true)).collect())
        .collect();
    let mut widths: Vec<usize> = if headings {
        t.headings.iter().map(|h| h.chars().count()).collect()
    } else {
        vec![0; t.headings.len()]
    };
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let head = headings.then(|| t.headings.clone());
    for row in head.iter().chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths.get(i).copied().unwrap_or(0) - cell.chars().count();
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `--bare` rows: cells separated by one space, one row per line.
fn bare_rows(t: &Table) -> String {
    t.rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = r.iter().map(|c| c.display(true, false)).collect();
            format!("{}\n", cells.join(" "))
        })
        .collect()
}

/// ovs-vsctl's list form: `column              : value` (heading padded to 20), a blank
/// line between records; with `--bare`, values only.
fn list(t: &Table, headings: bool, bare: bool) -> String {
    let mut out = String::new();
    for (i, row) in t.rows.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (h, c) in t.headings.iter().zip(row) {
            if headings {
                out.push_str(&format!("{h:<20}: "));
            }
            out.push_str(&c.display(bare, false));
            out.push('\n');
        }
    }
    out
}

/// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
fn csv(t: &Table, headings: bool, bare: bool) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    if headings {
        let h: Vec<String> = t.headings.iter().map(|h| field(h)).collect();
        out.push_str(&h.join(","));
        out.push('\n');
    }
    for r in &t.rows {
        let cells: Vec<String> = r.iter().map(|c| field(&c.display(bare, false))).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// `v` as JSON text ending in a newline: pretty, or on one line when `out.compact`.
pub fn json_text<T: Serialize>(v: &T, out: &Out) -> Result<String, RenderError> {
    let mut s = if out.compact {
        serde_json::to_string(v)?
    } else {
        serde_json::to_string_pretty(v)?
    };
    s.push('\n');
    Ok(s)
}

/// Lines, each followed by a newline.
pub fn lines<S: AsRef<str>>(v: &[S]) -> String {
    v.iter().map(|l| format!("{}\n", l.as_ref())).collect()
}

/// One command's output as one line (ovs-vsctl `--oneline`): the final newline dropped,
/// `\` written `\\` and every other newline `\n`. Empty output is an empty line.
pub fn oneline(s: &str) -> String {
    let body = s.strip_suffix('\n').unwrap_or(s);
    body.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `["a", "b"]` with each entry JSON-quoted, as ovn-nbctl show prints sets of strings.
pub fn quoted_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let quoted: Vec<String> = items.into_iter().map(|s| value::quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// Collapses every run of whitespace (newlines included) into one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["NAME", "VNI", "SUBNET"]);
        t.rows.push(vec![
            Cell::text("sw1"),
            Cell::text("1001"),
            Cell::text("10.0.0.0/24"),
        ]);
        t.rows.push(vec![
            Cell::text("backend-long-name"),
            Cell::text("2"),
            Cell::text(""),
        ]);
        t
    }

    fn render(t: &Table, out: &Out, default: Format) -> String {
        render_table(t, out, default).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn aligned_table_with_dashes() {
        assert_eq!(
            render(&sample(), &Out::default(), Format::Table),
            "\
NAME               VNI   SUBNET
sw1                1001  10.0.0.0/24
backend-long-name  2     -
"
        );
        assert_eq!(
            render(&Table::new(&["NAME"]), &Out::default(), Format::Table),
            ""
        );
    }

    #[test]
    fn columns_bare_and_no_headings() {
        let out = Out {
            columns: Some(vec!["name".into()]),
            bare: true,
            ..Default::default()
        };
        assert_eq!(
            render(&sample(), &out, Format::Table),
            "sw1\nbackend-long-name\n"
        );
        let out = Out {
            columns: Some(vec!["subnet".into(), "NAME".into()]),
            no_headings: true,
            ..Default::default()
        };
        assert_eq!(
            render(&sample(), &out, Format::Table),
            "10.0.0.0/24  sw1\n-            backend-long-name\n"
        );
        let out = Out {
            columns: Some(vec!["nope".into()]),
            ..Default::default()
        };
        let e = render_table(&sample(), &out, Format::Table).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "unknown column \"nope\" in --columns (columns: NAME, VNI, SUBNET)"
        );
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut t = Table::new(&["name", "addresses", "external_ids"]);
        t.rows.push(vec![
            Cell::Scalar("p1".into()),
            Cell::Set(vec!["a b".into(), "unknown".into()]),
            Cell::Map([("k".to_string(), "v".to_string())].into_iter().collect()),
        ]);
        let out = Out {
            format: Some(Format::Csv),
            ..Default::default()
        };
        assert_eq!(
            render(&t, &out, Format::Table),
            "name,addresses,external_ids\n\"\"\"p1\"\"\",\"[\"\"a b\"\", unknown]\",{k=v}\n"
        );
        let out = Out {
            format: Some(Format::Csv),
            bare: true,
            ..Default::default()
        };
        assert_eq!(render(&t, &out, Format::Table), "p1,a b unknown,k=v\n");
        // Plain text cells stay as they are (no dash) in csv.
        let out = Out {
            format: Some(Format::Csv),
            no_headings: true,
            ..Default::default()
        };
        assert_eq!(
            render(&sample(), &out, Format::Table),
            "sw1,1001,10.0.0.0/24\nbackend-long-name,2,\n"
        );
    }

    #[test]
    fn list_form_like_ovn_nbctl() {
        let mut t = Table::new(&["name", "ports", "vni"]);
        t.rows.push(vec![
            Cell::Scalar("sw1".into()),
            Cell::Set(vec!["p1".into()]),
            Cell::Scalar("7".into()),
        ]);
        t.rows.push(vec![
            Cell::Scalar("sw2".into()),
            Cell::Set(vec![]),
            Cell::Scalar("8".into()),
        ]);
        assert_eq!(
            render(&t, &Out::default(), Format::List),
            "\
name                : \"sw1\"
ports               : [\"p1\"]
vni                 : 7

name                : \"sw2\"
ports               : []
vni                 : 8
"
        );
        let out = Out {
            bare: true,
            columns: Some(vec!["name".into()]),
            ..Default::default()
        };
        assert_eq!(render(&t, &out, Format::List), "sw1\n\nsw2\n");
        // -f table overrides a command's list default.
        let out = Out {
            format: Some(Format::Table),
            ..Default::default()
        };
        assert_eq!(
            render(&t, &out, Format::List),
            "name   ports   vni\n\"sw1\"  [\"p1\"]  7\n\"sw2\"  []      8\n"
        );
    }

    #[test]
    fn oneline_escapes() {
        assert_eq!(oneline(""), "");
        assert_eq!(oneline("\n"), "");
        assert_eq!(oneline("up\n"), "up");
        assert_eq!(oneline("a\nb\n"), "a\\nb");
        assert_eq!(oneline("c:\\x\n"), "c:\\\\x");
    }

    #[test]
    fn json_pretty_or_compact() {
        let v = serde_json::json!({"a": [1]});
        let pretty = json_text(&v, &Out::default()).unwrap_or_default();
        assert!(pretty.contains("\n  \"a\""), "{pretty}");
        let compact = json_text(
            &v,
            &Out {
                compact: true,
                ..Default::default()
            },
        )
        .unwrap_or_default();
        assert_eq!(compact, "{\"a\":[1]}\n");
    }
}
