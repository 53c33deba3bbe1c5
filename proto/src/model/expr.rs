//! OVN's match expression language, parsed once here into an AST: what `weftctl trace`
//! microflows are written in today and what ACL matches will be written in. Pure.
//!
//! Grammar (as `ovn-sb(5)` "Logical_Flow TABLE" describes it, without sub-fields yet):
//! ```text
//! expr   := or
//! or     := and ("||" and)*
//! and    := unary ("&&" unary)*
//! unary  := "!" unary | "(" expr ")" | "1" | "0" | FIELD [OP value | OP "{" value,* "}"]
//! OP     := "==" | "!=" | "<" | "<=" | ">" | ">="
//! value  := INT (decimal or 0x hex) | "string" | MAC | IPv4[/prefix] | IPv6[/prefix]
//!         | $address_set | @port_group
//! ```
//! A bare FIELD is a predicate (`ip4`, `tcp`, `arp`, `eth.bcast`, ...). Errors carry the
//! 1-based column of the offending character. Start with [`parse`].

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// What a field holds, for type checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A logical port name (`inport`, `outport`).
    Port,
    /// An Ethernet address.
    Mac,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// An integer of `bits` bits.
    Int(u8),
    /// A predicate (no value).
    Predicate,
}

/// The fields Weft knows, with their types.
pub const FIELDS: &[(&str, FieldType)] = &[
    ("inport", FieldType::Port),
    ("outport", FieldType::Port),
    ("eth.src", FieldType::Mac),
    ("eth.dst", FieldType::Mac),
    ("eth.type", FieldType::Int(16)),
    ("vlan.tci", FieldType::Int(16)),
    ("ip.proto", FieldType::Int(8)),
    ("ip.ttl", FieldType::Int(8)),
    ("ip.dscp", FieldType::Int(6)),
    ("ip4.src", FieldType::Ipv4),
    ("ip4.dst", FieldType::Ipv4),
    ("ip6.src", FieldType::Ipv6),
    ("ip6.dst", FieldType::Ipv6),
    ("arp.op", FieldType::Int(16)),
    ("arp.spa", FieldType::Ipv4),
    ("arp.tpa", FieldType::Ipv4),
    ("arp.sha", FieldType::Mac),
    ("arp.tha", FieldType::Mac),
    ("tcp.src", FieldType::Int(16)),
    ("tcp.dst", FieldType::Int(16)),
    ("tcp.flags", FieldType::Int(12)),
    ("udp.src", FieldType::Int(16)),
    ("udp.dst", FieldType::Int(16)),
    ("sctp.src", FieldType::Int(16)),
    ("sctp.dst", FieldType::Int(16)),
    ("icmp4.type", FieldType::Int(8)),
    ("icmp4.code", FieldType::Int(8)),
    ("icmp6.type", FieldType::Int(8)),
    ("icmp6.code", FieldType::Int(8)),
    ("nd.target", FieldType::Ipv6),
    ("nd.sll", FieldType::Mac),
    ("nd.tll", FieldType::Mac),
    ("eth.bcast", FieldType::Predicate),
    ("eth.mcast", FieldType::Predicate),
    ("vlan.present", FieldType::Predicate),
    ("ip", FieldType::Predicate),
    ("ip4", FieldType::Predicate),
    ("ip6", FieldType::Predicate),
    ("arp", FieldType::Predicate),
    ("rarp", FieldType::Predicate),
    ("icmp", FieldType::Predicate),
    ("icmp4", FieldType::Predicate),
    ("icmp6", FieldType::Predicate),
    ("tcp", FieldType::Predicate),
    ("udp", FieldType::Predicate),
    ("sctp", FieldType::Predicate),
    ("nd", FieldType::Predicate),
    ("nd_ns", FieldType::Predicate),
    ("nd_na", FieldType::Predicate),
    ("nd_rs", FieldType::Predicate),
    ("nd_ra", FieldType::Predicate),
    ("ct.new", FieldType::Predicate),
    ("ct.est", FieldType::Predicate),
    ("ct.rel", FieldType::Predicate),
    ("ct.rpl", FieldType::Predicate),
    ("ct.inv", FieldType::Predicate),
    ("ct.trk", FieldType::Predicate),
];

/// The type of a field, or None when Weft does not know it.
pub fn field_type(name: &str) -> Option<FieldType> {
    FIELDS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A constant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer.
    Int(u128),
    /// A quoted string (port names).
    Str(String),
    /// An Ethernet address.
    Mac([u8; 6]),
    /// An IPv4 address with a prefix length (32 when none was given).
    Ipv4(Ipv4Addr, u8),
    /// An IPv6 address with a prefix length (128 when none was given).
    Ipv6(Ipv6Addr, u8),
    /// `$name`: an address set.
    AddressSet(String),
    /// `@name`: a port group.
    PortGroup(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Mac(m) => write!(
                f,
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
            Value::Ipv4(a, 32) => write!(f, "{a}"),
            Value::Ipv4(a, p) => write!(f, "{a}/{p}"),
            Value::Ipv6(a, 128) => write!(f, "{a}"),
            Value::Ipv6(a, p) => write!(f, "{a}/{p}"),
            Value::AddressSet(n) => write!(f, "${n}"),
            Value::PortGroup(n) => write!(f, "@{n}"),
        }
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `1` or `0`.
    Const(bool),
    /// A predicate field (`ip4`, `tcp`, ...).
    Predicate(String),
    /// `FIELD OP value`.
    Cmp {
        /// Field name.
        field: String,
        /// Operator.
        op: CmpOp,
        /// Constant.
        value: Value,
    },
    /// `FIELD == {a, b}` (any of) or `FIELD != {a, b}` (none of).
    InSet {
        /// Field name.
        field: String,
        /// True for `!=`.
        negated: bool,
        /// The set.
        values: Vec<Value>,
    },
    /// `!e`.
    Not(Box<Expr>),
    /// `a && b && ...`.
    And(Vec<Expr>),
    /// `a || b || ...`.
    Or(Vec<Expr>),
}

/// A parse error at a 1-based column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ExprError {
    /// 1-based column (character offset) of the error.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Longest expression accepted.
pub const MAX_EXPR_LEN: usize = 8192;
/// Deepest nesting of parentheses and `!` accepted.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Word(String),
    AddrSet(String),
    PortGroup(String),
    Op(&'static str),
}

struct Lexer {
    toks: Vec<(Tok, usize)>,
}

fn err(column: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        column,
        message: message.into(),
    }
}

fn lex(s: &str) -> Result<Lexer, ExprError> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op2 = ["==", "!=", "<=", ">=", "&&", "||"]
            .into_iter()
            .find(|o| *o == two);
        if let Some(o) = op2 {
            toks.push((Tok::Op(o), col));
            i += 2;
            continue;
        }
        if let Some(o) = ["<", ">", "!", "(", ")", "{", "}", ","]
            .into_iter()
            .find(|o| o.starts_with(c))
        {
            toks.push((Tok::Op(o), col));
            i += 1;
            continue;
        }
        if c == '"' {
            let mut j = i + 1;
            let mut out = String::new();
            loop {
                match chars.get(j) {
                    None => return Err(err(col, "unterminated string")),
                    Some('"') => break,
                    Some('\\') => {
                        let Some(n) = chars.get(j + 1) else {
                            return Err(err(j + 1, "unterminated string"));
                        };
                        out.push(*n);
                        j += 2;
                    }
                    Some(ch) => {
                        out.push(*ch);
                        j += 1;
                    }
                }
            }
            toks.push((Tok::Str(out), col));
            i = j + 1;
            continue;
        }
        if c == '$' || c == '@' {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || "_.-".contains(chars[j]))
            {
                j += 1;
            }
            let name: String = chars[i + 1..j].iter().collect();
            if name.is_empty() {
                return Err(err(col, format!("{c} must be followed by a name")));
            }
            toks.push((
                if c == '$' {
                    Tok::AddrSet(name)
                } else {
                    Tok::PortGroup(name)
                },
                col,
            ));
            i = j;
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            // Identifiers (ip4.src), numbers, MACs and addresses share characters; words
            // starting with a letter and holding no ':' are identifiers unless they parse
            // as a hex number or address later.
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_ascii_alphanumeric() || "_.:/-".contains(chars[j]))
            {
                j += 1;
            }
            let w: String = chars[i..j].iter().collect();
            let ident = c.is_ascii_alphabetic()
                && !w.contains(':')
                && !w.contains('/')
                && !w.starts_with("0x");
            toks.push((if ident { Tok::Ident(w) } else { Tok::Word(w) }, col));
            i = j;
            continue;
        }
        return Err(err(col, format!("unexpected character {c:?}")));
    }
    Ok(Lexer { toks })
}

fn parse_value(w: &str, col: usize) -> Result<Value, ExprError> {
    if let Some(hex) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        return u128::from_str_radix(hex, 16)
            .map(Value::Int)
            .map_err(|_| err(col, format!("invalid hex number {w:?}")));
    }
    if w.bytes().all(|b| b.is_ascii_digit()) {
        return w
            .parse()
            .map(Value::Int)
            .map_err(|_| err(col, format!("number {w:?} too large")));
    }
    let (addr, prefix) = match w.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (w, None),
    };
    if let Ok(a) = addr.parse::<Ipv4Addr>() {
        let p = match prefix {
            None => 32,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or_else(|| err(col, format!("invalid IPv4 prefix length in {w:?}")))?,
        };
        return Ok(Value::Ipv4(a, p));
    }
    if let Ok(a) = addr.parse::<Ipv6Addr>() {
        let p = match prefix {
            None => 128,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 128)
                .ok_or_else(|| err(col, format!("invalid IPv6 prefix length in {w:?}")))?,
        };
        return Ok(Value::Ipv6(a, p));
    }
    let parts: Vec<&str> = w.split(':').collect();
    if parts.len() == 6 && prefix.is_none() {
        let mut m = [0u8; 6];
        for (k, p) in parts.iter().enumerate() {
            if p.is_empty() || p.len() > 2 {
                return Err(err(col, format!("invalid MAC {w:?}")));
            }
            m[k] = u8::from_str_radix(p, 16).map_err(|_| err(col, format!("invalid MAC {w:?}")))?;
        }
        return Ok(Value::Mac(m));
    }
    Err(err(col, format!("invalid constant {w:?}")))
}

fn value_fits(t: FieldType, v: &Value) -> bool {
    match (t, v) {
        (FieldType::Port, Value::Str(_) | Value::PortGroup(_)) => true,
        (FieldType::Mac, Value::Mac(_)) => true,
        (FieldType::Ipv4, Value::Ipv4(..) | Value::AddressSet(_)) => true,
        (FieldType::Ipv6, Value::Ipv6(..) | Value::AddressSet(_)) => true,
        (FieldType::Int(bits), Value::Int(n)) => bits >= 128 || *n < (1u128 << bits),
        _ => false,
    }
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }
    fn col(&self) -> usize {
        self.toks.get(self.pos).map(|(_, c)| *c).unwrap_or(self.end)
    }
    fn eat(&mut self, op: &str) -> bool {
        if self.peek()
            == Some(&Tok::Op(match op {
                "&&" => "&&",
                "||" => "||",
                "," => ",",
                ")" => ")",
                "}" => "}",
                _ => "",
            }))
        {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let mut v = vec![self.and(depth)?];
        while self.eat("||") {
            v.push(self.and(depth)?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::Or(v)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let mut v = vec![self.unary(depth)?];
        while self.eat("&&") {
            v.push(self.unary(depth)?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::And(v)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, ExprError> {
        if depth > MAX_DEPTH {
            return Err(err(self.col(), "expression nests too deep"));
        }
        let col = self.col();
        let Some((tok, _)) = self.toks.get(self.pos).cloned() else {
            return Err(err(col, "expression ends too early"));
        };
        self.pos += 1;
        match tok {
            Tok::Op("!") => Ok(Expr::Not(Box::new(self.unary(depth + 1)?))),
            Tok::Op("(") => {
                let e = self.or(depth + 1)?;
                if !self.eat(")") {
                    return Err(err(self.col(), "expected \")\""));
                }
                Ok(e)
            }
            Tok::Word(w) if w == "1" || w == "0" => Ok(Expr::Const(w == "1")),
            Tok::Ident(field) => self.after_field(field, col),
            other => Err(err(
                col,
                format!("expected a field, \"!\" or \"(\", found {}", show(&other)),
            )),
        }
    }

    fn value(&mut self, field: &str, t: FieldType) -> Result<Value, ExprError> {
        let col = self.col();
        let Some((tok, _)) = self.toks.get(self.pos).cloned() else {
            return Err(err(col, format!("{field}: expected a value")));
        };
        self.pos += 1;
        let v = match tok {
            Tok::Str(s) => Value::Str(s),
            Tok::Word(w) | Tok::Ident(w) => parse_value(&w, col)?,
            Tok::AddrSet(n) => Value::AddressSet(n),
            Tok::PortGroup(n) => Value::PortGroup(n),
            other => {
                return Err(err(
                    col,
                    format!("{field}: expected a value, found {}", show(&other)),
                ))
            }
        };
        if !value_fits(t, &v) {
            return Err(err(
                col,
                format!("{v} is not a valid value for {field} ({t:?})"),
            ));
        }
        Ok(v)
    }

    fn after_field(&mut self, field: String, col: usize) -> Result<Expr, ExprError> {
        let t = field_type(&field).ok_or_else(|| err(col, format!("unknown field {field:?}")))?;
        let op = match self.peek() {
            Some(Tok::Op("==")) => CmpOp::Eq,
            Some(Tok::Op("!=")) => CmpOp::Ne,
            Some(Tok::Op("<")) => CmpOp::Lt,
            Some(Tok::Op("<=")) => CmpOp::Le,
            Some(Tok::Op(">")) => CmpOp::Gt,
            Some(Tok::Op(">=")) => CmpOp::Ge,
            _ => {
                if t != FieldType::Predicate {
                    return Err(err(
                        self.col(),
                        format!("{field} needs a comparison (e.g. {field} == ...)"),
                    ));
                }
                return Ok(Expr::Predicate(field));
            }
        };
        let op_col = self.col();
        self.pos += 1;
        if t == FieldType::Predicate {
            return Err(err(
                op_col,
                format!("{field} is a predicate and takes no comparison"),
            ));
        }
        if !matches!(t, FieldType::Int(_)) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return Err(err(
                op_col,
                format!("{field} can only be compared with == or !="),
            ));
        }
        if self.peek() == Some(&Tok::Op("{")) {
            if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                return Err(err(op_col, "a set {...} needs == or !="));
            }
            self.pos += 1;
            let mut values = vec![self.value(&field, t)?];
            while self.eat(",") {
                if self.peek() == Some(&Tok::Op("}")) {
                    break;
                }
                values.push(self.value(&field, t)?);
            }
            if !self.eat("}") {
                return Err(err(self.col(), "expected \"}\""));
            }
            return Ok(Expr::InSet {
                field,
                negated: op == CmpOp::Ne,
                values,
            });
        }
        let value = self.value(&field, t)?;
        Ok(Expr::Cmp { field, op, value })
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Word(s) => format!("{s:?}"),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::AddrSet(s) => format!("${s}"),
        Tok::PortGroup(s) => format!("@{s}"),
        Tok::Op(o) => format!("{o:?}"),
    }
}

/// Parses an expression; errors name the column.
pub fn parse(s: &str) -> Result<Expr, ExprError> {
    if s.len() > MAX_EXPR_LEN {
        return Err(err(
            MAX_EXPR_LEN,
            format!("longer than {MAX_EXPR_LEN} bytes"),
        ));
    }
    let lx = lex(s)?;
    let mut p = Parser {
        toks: lx.toks,
        pos: 0,
        end: s.chars().count() + 1,
    };
    let e = p.or(0)?;
    if p.pos < p.toks.len() {
        let (t, c) = &p.toks[p.pos];
        return Err(err(
            *c,
            format!("unexpected {} (missing && or ||?)", show(t)),
        ));
    }
    Ok(e)
}

/// A microflow: one concrete packet, given as a conjunction of `FIELD == value` and
/// predicates (what `weftctl trace` takes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Microflow {
    /// Field values, in the order given.
    pub fields: Vec<(String, Value)>,
    /// Predicates given (`ip4`, `tcp`, ...).
    pub predicates: Vec<String>,
}

impl Microflow {
    /// The value given for `field`.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.iter().find(|(f, _)| f == field).map(|(_, v)| v)
    }
    /// Sets `field` unless it was given.
    pub fn or_default(&mut self, field: &str, v: Value) {
        if self.get(field).is_none() {
            self.fields.push((field.to_string(), v));
        }
    }
    /// Whether a predicate was given.
    pub fn has(&self, p: &str) -> bool {
        self.predicates.iter().any(|x| x == p)
    }
}

/// Parses a microflow: an expression that is only `&&` of `FIELD == constant` (one value,
/// no prefix) and predicates; anything else is an error naming the column.
pub fn parse_microflow(s: &str) -> Result<Microflow, ExprError> {
    let e = parse(s)?;
    let mut m = Microflow::default();
    let parts = match e {
        Expr::And(v) => v,
        other => vec![other],
    };
    for p in parts {
        match p {
            Expr::Cmp {
                field,
                op: CmpOp::Eq,
                value,
            } => {
                if matches!(value, Value::Ipv4(_, p) if p != 32)
                    || matches!(value, Value::Ipv6(_, p) if p != 128)
                    || matches!(value, Value::AddressSet(_) | Value::PortGroup(_))
                {
                    return Err(err(
                        1,
                        format!("{field}: a microflow needs one concrete value, not {value}"),
                    ));
                }
                if m.get(&field).is_some() {
                    return Err(err(1, format!("{field} is given twice")));
                }
                m.fields.push((field, value));
            }
            Expr::Predicate(p) => m.predicates.push(p),
            Expr::Const(true) => {}
            other => {
                return Err(err(
                    1,
                    format!("a microflow is FIELD == value terms joined by && (found {other:?})"),
                ))
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_ovn_matches() {
        let e = parse(r#"inport == "p1" && eth.src == 0a:00:00:00:00:01 && ip4.dst == 10.0.1.5 && tcp.dst == 80"#).unwrap();
        let Expr::And(v) = e else { panic!() };
        assert_eq!(v.len(), 4);
        assert_eq!(
            v[2],
            Expr::Cmp {
                field: "ip4.dst".into(),
                op: CmpOp::Eq,
                value: Value::Ipv4(Ipv4Addr::new(10, 0, 1, 5), 32)
            }
        );
        let e = parse("ip4.src == {10.0.0.0/24, $web} || !(tcp.dst >= 1024 && tcp)").unwrap();
        assert!(matches!(e, Expr::Or(ref v) if v.len() == 2));
        assert!(parse("ip6.dst == fd00::1/64 && icmp6").is_ok());
        assert!(parse("outport == @pg1 && eth.type == 0x800").is_ok());
        assert_eq!(parse("1").unwrap(), Expr::Const(true));
    }

    #[test]
    fn errors_point_at_the_column() {
        let cases = [
            ("ip4.dst == 10.0.0.300", 12, "invalid"),
            ("ip4.dsx == 10.0.0.1", 1, "unknown field"),
            ("tcp.dst == 70000", 12, "not a valid value"),
            ("eth.src == 10.0.0.1", 12, "not a valid value"),
            ("ip4.dst == 10.0.0.1 tcp", 21, "missing && or ||"),
            ("(ip4", 5, "expected \")\""),
            ("inport == \"p1", 11, "unterminated"),
            ("ip4 == 1", 5, "predicate"),
            ("eth.src < 0a:00:00:00:00:01", 9, "== or !="),
            ("tcp.dst ==", 11, "expected a value"),
            ("ip4.src == 1.2.3.4 && #", 23, "unexpected character"),
        ];
        for (s, col, needle) in cases {
            let e = parse(s).unwrap_err();
            assert_eq!(e.column, col, "{s}: {e}");
            assert!(e.message.contains(needle), "{s}: {e}");
        }
    }

    #[test]
    fn microflows_are_conjunctions_of_values() {
        let m = parse_microflow(r#"inport == "p1" && ip4 && ip4.dst == 10.0.0.5 && tcp.dst == 80"#)
            .unwrap();
        assert_eq!(m.get("inport"), Some(&Value::Str("p1".into())));
        assert_eq!(m.get("tcp.dst"), Some(&Value::Int(80)));
        assert!(m.has("ip4"));
        assert!(parse_microflow("ip4.dst == 10.0.0.0/24").is_err());
        assert!(parse_microflow("tcp.dst == 80 || tcp.dst == 81").is_err());
        assert!(parse_microflow("tcp.dst == 80 && tcp.dst == 81").is_err());
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet: Vec<char> = "ip4.src==&|!(){}, \"$@:/0x1a9fz-<>".chars().collect();
        for _ in 0..20_000 {
            let n = (x % 40) as usize;
            let s: String = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = parse(&s);
            let _ = parse_microflow(&s);
        }
        let deep = "(".repeat(200) + "ip4" + &")".repeat(200);
        assert!(parse(&deep).unwrap_err().message.contains("deep"));
    }
}
