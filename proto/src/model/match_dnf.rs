//! ACL matches as flows-to-be: an [`Expr`] (with its address sets and port groups resolved)
//! becomes a disjunction of conjunctions ([`Dnf`]) where every conjunct constrains each
//! field to a set of masked values ([`Alt`]). Pure; used by the controller (to count the flows
//! an ACL needs and refuse it above a limit) and by the agent (to lower each conjunct to
//! OpenFlow, [`flow_count`] choosing the same shape).
//!
//! - `!` is pushed to the leaves (De Morgan); `FIELD != v` becomes one alternative per set
//!   bit of v's mask with that bit flipped, so it stays one dimension.
//! - Ranges (`<`, `<=`, `>`, `>=`) become prefix masks ([`range_prefixes`]).
//! - Sets (`{a, b}`, `$as`, `@pg`) become alternatives of one dimension.
//! - Every field brings its prerequisites (`tcp.dst` → `ip && ip.proto == 6`, `ip` →
//!   `eth.type == {0x800, 0x86dd}`); a prerequisite is never negated (`!tcp` is "not IP, or
//!   IP that is not TCP"; `ip.proto != 6` is "IP that is not TCP"), as in OVN.
//! - A conjunct with several multi-valued dimensions costs the product as plain flows or the
//!   sum plus one with OpenFlow `conjunction`; [`conjunct_flows`] picks the smaller.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::acl::{Direction, Entity};
use super::expr::{CmpOp, Expr, Value};

/// A field an ACL can match on, as the compiler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    InPort,
    OutPort,
    EthSrc,
    EthDst,
    EthType,
    IpProto,
    Ip4Src,
    Ip4Dst,
    Ip6Src,
    Ip6Dst,
    Icmp4Type,
    Icmp4Code,
    Icmp6Type,
    Icmp6Code,
    TcpSrc,
    TcpDst,
    UdpSrc,
    UdpDst,
    SctpSrc,
    SctpDst,
    /// 12 bits.
    TcpFlags,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    /// Conntrack state bits ([`ct_bits`]).
    CtState,
}

/// `ct_state` bits, as OVS numbers them.
pub mod ct_bits {
    pub const NEW: u128 = 0x01;
    pub const EST: u128 = 0x02;
    pub const REL: u128 = 0x04;
    pub const RPL: u128 = 0x08;
    pub const INV: u128 = 0x10;
    pub const TRK: u128 = 0x20;
}

impl Field {
    /// The field for a match-language name, or None when ACLs cannot use it.
    pub fn by_name(name: &str) -> Option<Field> {
        Some(match name {
            "inport" => Field::InPort,
            "outport" => Field::OutPort,
            "eth.src" => Field::EthSrc,
            "eth.dst" => Field::EthDst,
            "eth.type" => Field::EthType,
            "ip.proto" => Field::IpProto,
            "ip4.src" => Field::Ip4Src,
            "ip4.dst" => Field::Ip4Dst,
            "ip6.src" => Field::Ip6Src,
            "ip6.dst" => Field::Ip6Dst,
            "icmp4.type" => Field::Icmp4Type,
            "icmp4.code" => Field::Icmp4Code,
            "icmp6.type" => Field::Icmp6Type,
            "icmp6.code" => Field::Icmp6Code,
            "tcp.src" => Field::TcpSrc,
            "tcp.dst" => Field::TcpDst,
            "udp.src" => Field::UdpSrc,
            "udp.dst" => Field::UdpDst,
            "sctp.src" => Field::SctpSrc,
            "sctp.dst" => Field::SctpDst,
            "tcp.flags" => Field::TcpFlags,
            "arp.op" => Field::ArpOp,
            "arp.spa" => Field::ArpSpa,
            "arp.tpa" => Field::ArpTpa,
            "arp.sha" => Field::ArpSha,
            "arp.tha" => Field::ArpTha,
            _ => return None,
        })
    }

    /// Width in bits (port fields: 0, they hold names).
    pub fn width(self) -> u32 {
        match self {
            Field::InPort | Field::OutPort => 0,
            Field::EthSrc | Field::EthDst | Field::ArpSha | Field::ArpTha => 48,
            Field::EthType | Field::ArpOp => 16,
            Field::TcpSrc | Field::TcpDst | Field::UdpSrc | Field::UdpDst => 16,
            Field::SctpSrc | Field::SctpDst => 16,
            Field::TcpFlags => 12,
            Field::IpProto
            | Field::Icmp4Type
            | Field::Icmp4Code
            | Field::Icmp6Type
            | Field::Icmp6Code
            | Field::CtState => 8,
            Field::Ip4Src | Field::Ip4Dst | Field::ArpSpa | Field::ArpTpa => 32,
            Field::Ip6Src | Field::Ip6Dst => 128,
        }
    }

    fn full(self) -> u128 {
        match self.width() {
            128 => u128::MAX,
            w => (1u128 << w) - 1,
        }
    }
}

/// A value under a mask (bits outside `mask` are zero in `value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Masked {
    pub value: u128,
    pub mask: u128,
}

impl Masked {
    fn new(value: u128, mask: u128) -> Masked {
        Masked {
            value: value & mask,
            mask,
        }
    }
    fn intersect(&self, o: &Masked) -> Option<Masked> {
        if (self.value ^ o.value) & self.mask & o.mask != 0 {
            return None;
        }
        Some(Masked::new(self.value | o.value, self.mask | o.mask))
    }
    /// Whether every value `self` matches, `o` matches too (the rule [`simplify`] applies
    /// without pairwise comparisons; kept for its test).
    #[cfg(test)]
    fn within(&self, o: &Masked) -> bool {
        o.mask & self.mask == o.mask && (self.value & o.mask) == o.value
    }
}

/// One alternative of a dimension.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Alt {
    /// A masked value of a bit field.
    Bits(Masked),
    /// A logical port, by name (`inport`/`outport`).
    Port(String),
}

/// A conjunction: each field constrained to one of its alternatives.
pub type Conj = BTreeMap<Field, Vec<Alt>>;
/// A disjunction of conjunctions.
pub type Dnf = Vec<Conj>;

/// What the expansion needs to know about named sets.
pub trait Resolver {
    /// The addresses of an address set (including the implied `PG_ip4` / `PG_ip6`), or None
    /// when there is no such set.
    fn address_set(&self, name: &str) -> Option<Vec<String>>;
    /// The ports of a port group, or None when there is no such group.
    fn port_group(&self, name: &str) -> Option<Vec<String>>;
}

/// Why a match cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnfError {
    /// A field or form ACLs do not support.
    #[error("{0}")]
    Unsupported(String),
    /// `$NAME` names no address set.
    #[error("address set {0:?} not found")]
    UnknownSet(String),
    /// `@NAME` names no port group.
    #[error("port group {0:?} not found")]
    UnknownGroup(String),
    /// More than the limit of conjuncts or alternatives (at least this many).
    #[error("the match expands to {0} terms or more")]
    TooMany(usize),
}

/// Normal form with negations at the leaves.
enum N {
    Const(bool),
    Leaf {
        field: Field,
        alts: Vec<Alt>,
        negated: bool,
    },
    And(Vec<N>),
    Or(Vec<N>),
}

fn bits(field: Field, v: u128) -> Alt {
    Alt::Bits(Masked::new(v, field.full()))
}

fn eq(field: Field, v: u128) -> N {
    N::Leaf {
        field,
        alts: vec![bits(field, v)],
        negated: false,
    }
}

fn eth_types(types: &[u128]) -> N {
    N::Leaf {
        field: Field::EthType,
        alts: types.iter().map(|t| bits(Field::EthType, *t)).collect(),
        negated: false,
    }
}

fn proto(family: N, p: u128) -> N {
    N::And(vec![family, eq(Field::IpProto, p)])
}

/// What must hold for a field to be present (never negated).
fn prerequisite(f: Field) -> Option<N> {
    let ip = || eth_types(&[0x0800, 0x86dd]);
    Some(match f {
        Field::Ip4Src | Field::Ip4Dst => eth_types(&[0x0800]),
        Field::Ip6Src | Field::Ip6Dst => eth_types(&[0x86dd]),
        Field::IpProto => ip(),
        Field::Icmp4Type | Field::Icmp4Code => proto(eth_types(&[0x0800]), 1),
        Field::Icmp6Type | Field::Icmp6Code => proto(eth_types(&[0x86dd]), 58),
        Field::TcpSrc | Field::TcpDst | Field::TcpFlags => proto(ip(), 6),
        Field::SctpSrc | Field::SctpDst => proto(ip(), 132),
        Field::UdpSrc | Field::UdpDst => proto(ip(), 17),
        Field::ArpOp | Field::ArpSpa | Field::ArpTpa | Field::ArpSha | Field::ArpTha => {
            eth_types(&[0x0806])
        }
        Field::CtState => N::Leaf {
            field: Field::CtState,
            alts: vec![Alt::Bits(Masked::new(ct_bits::TRK, ct_bits::TRK))],
            negated: false,
        },
        _ => return None,
    })
}

fn with_prereq(f: Field, leaf: N) -> N {
    match prerequisite(f) {
        Some(p) => N::And(vec![p, leaf]),
        None => leaf,
    }
}

fn predicate(p: &str, neg: bool) -> Result<N, DnfError> {
    let ct = |bit: u128| -> N {
        let leaf = N::Leaf {
            field: Field::CtState,
            alts: vec![Alt::Bits(Masked::new(bit, bit))],
            negated: neg,
        };
        if bit == ct_bits::TRK {
            leaf
        } else {
            with_prereq(Field::CtState, leaf)
        }
    };
    let positive = |n: N| -> N {
        if neg {
            negate(n)
        } else {
            n
        }
    };
    let ip = || eth_types(&[0x0800, 0x86dd]);
    Ok(match p {
        "ct.new" => ct(ct_bits::NEW),
        "ct.est" => ct(ct_bits::EST),
        "ct.rel" => ct(ct_bits::REL),
        "ct.rpl" => ct(ct_bits::RPL),
        "ct.inv" => ct(ct_bits::INV),
        "ct.trk" => ct(ct_bits::TRK),
        "ip" => positive(ip()),
        "ip4" => positive(eth_types(&[0x0800])),
        "ip6" => positive(eth_types(&[0x86dd])),
        "arp" => positive(eth_types(&[0x0806])),
        "tcp" => positive(proto(ip(), 6)),
        "udp" => positive(proto(ip(), 17)),
        "sctp" => positive(proto(ip(), 132)),
        "icmp4" => positive(proto(eth_types(&[0x0800]), 1)),
        "icmp6" => positive(proto(eth_types(&[0x86dd]), 58)),
        "icmp" => positive(N::Or(vec![
            proto(eth_types(&[0x0800]), 1),
            proto(eth_types(&[0x86dd]), 58),
        ])),
        "eth.bcast" => positive(eq(Field::EthDst, 0xffff_ffff_ffff)),
        "eth.mcast" => positive(N::Leaf {
            field: Field::EthDst,
            alts: vec![Alt::Bits(Masked::new(1 << 40, 1 << 40))],
            negated: false,
        }),
        other => {
            return Err(DnfError::Unsupported(format!(
                "predicate {other:?} is not supported in ACLs"
            )))
        }
    })
}

/// Negates an expression built from leaves (prerequisites included: used only for the
/// protocol predicates, whose parts have no prerequisites of their own but `ip.proto`,
/// which is handled by building `family && proto` with the family kept positive).
fn negate(n: N) -> N {
    match n {
        N::Const(b) => N::Const(!b),
        N::Leaf {
            field,
            alts,
            negated,
        } => N::Leaf {
            field,
            alts,
            negated: !negated,
        },
        // !(family && proto == p) = !family || (family && proto != p)
        N::And(v) if v.len() == 2 => {
            let mut it = v.into_iter();
            let (Some(a), Some(b)) = (it.next(), it.next()) else {
                return N::Const(false);
            };
            let a2 = clone_n(&a);
            N::Or(vec![negate(a), N::And(vec![a2, negate(b)])])
        }
        N::And(v) => N::Or(v.into_iter().map(negate).collect()),
        N::Or(v) => N::And(v.into_iter().map(negate).collect()),
    }
}

fn clone_n(n: &N) -> N {
    match n {
        N::Const(b) => N::Const(*b),
        N::Leaf {
            field,
            alts,
            negated,
        } => N::Leaf {
            field: *field,
            alts: alts.clone(),
            negated: *negated,
        },
        N::And(v) => N::And(v.iter().map(clone_n).collect()),
        N::Or(v) => N::Or(v.iter().map(clone_n).collect()),
    }
}

/// The prefixes covering `lo..=hi` in a `width`-bit field.
pub fn range_prefixes(lo: u128, hi: u128, width: u32) -> Vec<Masked> {
    let full = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    let mut out = Vec::new();
    if lo > hi {
        return out;
    }
    let mut cur = lo;
    loop {
        // The largest aligned block starting at cur that stays within hi.
        let mut size_bits = if cur == 0 {
            width
        } else {
            cur.trailing_zeros().min(width)
        };
        loop {
            let span = if size_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << size_bits) - 1
            };
            if cur.checked_add(span).is_some_and(|end| end <= hi) {
                break;
            }
            size_bits -= 1;
        }
        let span = if size_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << size_bits) - 1
        };
        out.push(Masked::new(cur, full & !span));
        match cur.checked_add(span).and_then(|e| e.checked_add(1)) {
            Some(next) if next <= hi => cur = next,
            _ => break,
        }
    }
    out
}

fn parse_net(s: &str, v4: bool) -> Option<Masked> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u32>().ok()?)),
        None => (s, None),
    };
    if v4 {
        let ip: Ipv4Addr = a.parse().ok()?;
        let p = p.unwrap_or(32).min(32);
        let mask = if p == 0 {
            0
        } else {
            (u32::MAX << (32 - p)) as u128
        };
        Some(Masked::new(u32::from(ip) as u128, mask))
    } else {
        let ip: Ipv6Addr = a.parse().ok()?;
        let p = p.unwrap_or(128).min(128);
        let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
        Some(Masked::new(u128::from(ip), mask))
    }
}

fn value_alts(field: Field, v: &Value, r: &dyn Resolver) -> Result<Vec<Alt>, DnfError> {
    let v4 = matches!(
        field,
        Field::Ip4Src | Field::Ip4Dst | Field::ArpSpa | Field::ArpTpa
    );
    Ok(match v {
        Value::Int(n) => {
            if field.width() == 0 {
                return Err(DnfError::Unsupported(format!("{n} is not a port name")));
            }
            vec![bits(field, *n)]
        }
        Value::Str(s) => vec![Alt::Port(s.clone())],
        Value::PortGroup(g) => r
            .port_group(g)
            .ok_or_else(|| DnfError::UnknownGroup(g.clone()))?
            .into_iter()
            .map(Alt::Port)
            .collect(),
        Value::Mac(m) => {
            let mut x: u128 = 0;
            for b in m {
                x = (x << 8) | u128::from(*b);
            }
            vec![bits(field, x)]
        }
        Value::Ipv4(a, p) => vec![Alt::Bits(
            parse_net(&format!("{a}/{p}"), true).unwrap_or(Masked::new(0, 0)),
        )],
        Value::Ipv6(a, p) => vec![Alt::Bits(
            parse_net(&format!("{a}/{p}"), false).unwrap_or(Masked::new(0, 0)),
        )],
        Value::AddressSet(n) => r
            .address_set(n)
            .ok_or_else(|| DnfError::UnknownSet(n.clone()))?
            .iter()
            .filter(|a| a.contains(':') != v4)
            .filter_map(|a| parse_net(a, v4))
            .map(Alt::Bits)
            .collect(),
    })
}

fn lower(e: &Expr, neg: bool, r: &dyn Resolver) -> Result<N, DnfError> {
    Ok(match e {
        Expr::Const(b) => N::Const(*b != neg),
        Expr::Predicate(p) => predicate(p, neg)?,
        Expr::Not(x) => lower(x, !neg, r)?,
        Expr::And(v) => {
            let parts = v
                .iter()
                .map(|x| lower(x, neg, r))
                .collect::<Result<_, _>>()?;
            if neg {
                N::Or(parts)
            } else {
                N::And(parts)
            }
        }
        Expr::Or(v) => {
            let parts = v
                .iter()
                .map(|x| lower(x, neg, r))
                .collect::<Result<_, _>>()?;
            if neg {
                N::And(parts)
            } else {
                N::Or(parts)
            }
        }
        Expr::Cmp { field, op, value } => {
            let f = Field::by_name(field).ok_or_else(|| {
                DnfError::Unsupported(format!("field {field:?} is not supported in ACLs"))
            })?;
            let alts = value_alts(f, value, r)?;
            let op = if neg {
                match op {
                    CmpOp::Eq => CmpOp::Ne,
                    CmpOp::Ne => CmpOp::Eq,
                    CmpOp::Lt => CmpOp::Ge,
                    CmpOp::Le => CmpOp::Gt,
                    CmpOp::Gt => CmpOp::Le,
                    CmpOp::Ge => CmpOp::Lt,
                }
            } else {
                *op
            };
            let leaf = match op {
                CmpOp::Eq => N::Leaf {
                    field: f,
                    alts,
                    negated: false,
                },
                CmpOp::Ne => N::Leaf {
                    field: f,
                    alts,
                    negated: true,
                },
                _ => {
                    let Some(Alt::Bits(m)) = alts.first() else {
                        return Err(DnfError::Unsupported(format!(
                            "{field} cannot be compared with <, <=, > or >="
                        )));
                    };
                    let v = m.value;
                    let max = f.full();
                    let (lo, hi) = match op {
                        CmpOp::Lt if v == 0 => (1, 0),
                        CmpOp::Lt => (0, v - 1),
                        CmpOp::Le => (0, v),
                        CmpOp::Gt if v == max => (1, 0),
                        CmpOp::Gt => (v + 1, max),
                        _ => (v, max),
                    };
                    N::Leaf {
                        field: f,
                        alts: range_prefixes(lo, hi, f.width())
                            .into_iter()
                            .map(Alt::Bits)
                            .collect(),
                        negated: false,
                    }
                }
            };
            with_prereq(f, leaf)
        }
        Expr::InSet {
            field,
            negated,
            values,
        } => {
            let f = Field::by_name(field).ok_or_else(|| {
                DnfError::Unsupported(format!("field {field:?} is not supported in ACLs"))
            })?;
            let mut alts = Vec::new();
            for v in values {
                alts.extend(value_alts(f, v, r)?);
            }
            with_prereq(
                f,
                N::Leaf {
                    field: f,
                    alts,
                    negated: *negated != neg,
                },
            )
        }
    })
}

/// Removes duplicates and alternatives another one covers. Linear in the alternatives
/// times the number of distinct masks (one for a set of host addresses): `m` is covered
/// by some `o` with a strictly smaller mask exactly when `m.value & o.mask` is one of the
/// values under that mask (an equal mask covers only an equal value, a duplicate).
fn simplify(mut alts: Vec<Alt>) -> Vec<Alt> {
    alts.sort();
    alts.dedup();
    let mut by_mask: BTreeMap<u128, std::collections::HashSet<u128>> = BTreeMap::new();
    for a in &alts {
        if let Alt::Bits(m) = a {
            by_mask.entry(m.mask).or_default().insert(m.value);
        }
    }
    if by_mask.len() > 1 {
        alts.retain(|a| match a {
            Alt::Bits(m) => !by_mask.iter().any(|(mask, values)| {
                *mask != m.mask && mask & m.mask == *mask && values.contains(&(m.value & mask))
            }),
            Alt::Port(_) => true,
        });
    }
    alts
}

fn intersect(a: &[Alt], b: &[Alt], limit: usize) -> Result<Vec<Alt>, DnfError> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            match (x, y) {
                (Alt::Bits(p), Alt::Bits(q)) => {
                    if let Some(m) = p.intersect(q) {
                        out.push(Alt::Bits(m));
                    }
                }
                (Alt::Port(p), Alt::Port(q)) if p == q => out.push(x.clone()),
                _ => {}
            }
            if out.len() > limit {
                return Err(DnfError::TooMany(out.len()));
            }
        }
    }
    Ok(simplify(out))
}

fn complement(field: Field, alts: &[Alt], limit: usize) -> Result<Vec<Alt>, DnfError> {
    // Not any of them = for each, not it; not one masked value = some masked bit differs.
    let mut acc = vec![Alt::Bits(Masked::new(0, 0))];
    for a in alts {
        let Alt::Bits(m) = a else {
            return Err(DnfError::Unsupported(format!(
                "{field:?}: ports cannot be compared with !="
            )));
        };
        let mut c = Vec::new();
        for i in 0..128u32 {
            let bit = 1u128 << i;
            if m.mask & bit != 0 {
                c.push(Alt::Bits(Masked::new(!m.value & bit, bit)));
            }
        }
        acc = intersect(&acc, &c, limit)?;
    }
    Ok(acc)
}

fn and(a: Dnf, b: Dnf, limit: usize) -> Result<Dnf, DnfError> {
    let mut out = Vec::new();
    for x in &a {
        'next: for y in &b {
            let mut c = x.clone();
            for (f, alts) in y {
                let merged = match c.get(f) {
                    Some(have) => intersect(have, alts, limit)?,
                    None => alts.clone(),
                };
                if merged.is_empty() {
                    continue 'next;
                }
                c.insert(*f, merged);
            }
            out.push(c);
            if out.len() > limit {
                return Err(DnfError::TooMany(out.len()));
            }
        }
    }
    Ok(out)
}

fn dnf(n: N, limit: usize) -> Result<Dnf, DnfError> {
    Ok(match n {
        N::Const(true) => vec![Conj::new()],
        N::Const(false) => Vec::new(),
        N::Leaf {
            field,
            alts,
            negated,
        } => {
            let alts = if negated {
                complement(field, &alts, limit)?
            } else {
                simplify(alts)
            };
            if alts.is_empty() {
                Vec::new()
            } else {
                vec![Conj::from([(field, alts)])]
            }
        }
        N::And(v) => {
            let mut acc = vec![Conj::new()];
            for x in v {
                acc = and(acc, dnf(x, limit)?, limit)?;
            }
            acc
        }
        N::Or(v) => {
            let mut out = Vec::new();
            for x in v {
                out.extend(dnf(x, limit)?);
                if out.len() > limit {
                    return Err(DnfError::TooMany(out.len()));
                }
            }
            out
        }
    })
}

/// Fields other fields need in the same OpenFlow match (prerequisites): a conjunct is split
/// per alternative of these, so every flow, `conjunction` clauses included, carries them.
const SPLIT: [Field; 2] = [Field::EthType, Field::IpProto];

fn split(d: Dnf, limit: usize) -> Result<Dnf, DnfError> {
    let mut out = Vec::with_capacity(d.len());
    for c in d {
        let mut parts = vec![c];
        for f in SPLIT {
            let mut next = Vec::new();
            for p in parts {
                match p.get(&f) {
                    Some(alts) if alts.len() > 1 => {
                        for a in alts {
                            let mut q = p.clone();
                            q.insert(f, vec![a.clone()]);
                            next.push(q);
                        }
                    }
                    _ => next.push(p),
                }
            }
            parts = next;
        }
        out.extend(parts);
        if out.len() > limit {
            return Err(DnfError::TooMany(out.len()));
        }
    }
    Ok(out)
}

/// The DNF of a match, `limit` bounding the work (conjuncts and alternatives). Conjuncts
/// have one `eth.type` and one `ip.proto` at most (see [`SPLIT`]).
pub fn expand(e: &Expr, r: &dyn Resolver, limit: usize) -> Result<Dnf, DnfError> {
    split(dnf(lower(e, false, r)?, limit)?, limit)
}

/// The DNF of an ACL: its match, and for a port group its ports as `inport` (from-lport)
/// or `outport` (to-lport).
pub fn acl_dnf(
    entity: &Entity,
    direction: Direction,
    e: &Expr,
    r: &dyn Resolver,
    limit: usize,
) -> Result<Dnf, DnfError> {
    let d = expand(e, r, limit)?;
    match entity {
        Entity::Switch(_) => Ok(d),
        Entity::PortGroup(pg) => {
            let ports = r
                .port_group(pg)
                .ok_or_else(|| DnfError::UnknownGroup(pg.clone()))?;
            let field = match direction {
                Direction::FromLport => Field::InPort,
                Direction::ToLport => Field::OutPort,
            };
            if ports.is_empty() {
                return Ok(Vec::new());
            }
            let ports = vec![Conj::from([(
                field,
                ports.into_iter().map(Alt::Port).collect(),
            )])];
            split(and(d, ports, limit)?, limit)
        }
    }
}

/// How a conjunct becomes flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One flow per element of the cross product.
    Product(usize),
    /// OpenFlow `conjunction`: one flow per alternative of each multi-valued dimension, plus
    /// the `conj_id` flow.
    Conjunction(usize),
}

impl Shape {
    /// Number of flows.
    pub fn flows(self) -> usize {
        match self {
            Shape::Product(n) | Shape::Conjunction(n) => n,
        }
    }
}

/// The cheaper shape of one conjunct (`conjunction` only with two or more multi-valued
/// dimensions and when it saves flows).
pub fn conjunct_flows(c: &Conj) -> Shape {
    let multi: Vec<usize> = c.values().map(Vec::len).filter(|n| *n > 1).collect();
    let product = multi
        .iter()
        .try_fold(1usize, |a, n| a.checked_mul(*n))
        .unwrap_or(usize::MAX);
    let sum = multi.iter().sum::<usize>() + 1;
    if multi.len() >= 2 && sum < product {
        Shape::Conjunction(sum)
    } else {
        Shape::Product(product)
    }
}

/// Flows of a whole DNF.
pub fn flow_count(d: &Dnf) -> usize {
    d.iter()
        .map(|c| conjunct_flows(c).flows())
        .fold(0usize, usize::saturating_add)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::expr::parse;
    use std::collections::HashMap;

    struct R(HashMap<String, Vec<String>>, HashMap<String, Vec<String>>);
    impl Resolver for R {
        fn address_set(&self, n: &str) -> Option<Vec<String>> {
            self.0.get(n).cloned()
        }
        fn port_group(&self, n: &str) -> Option<Vec<String>> {
            self.1.get(n).cloned()
        }
    }
    fn r() -> R {
        let big: Vec<String> = (0..100)
            .map(|i| format!("10.1.{}.{}", i / 250, i % 250 + 1))
            .collect();
        R(
            HashMap::from([
                ("big".to_string(), big),
                (
                    "mixed".to_string(),
                    vec!["10.0.0.1".into(), "fd00::1".into()],
                ),
            ]),
            HashMap::from([("web".to_string(), vec!["w1".into(), "w2".into()])]),
        )
    }
    fn x(s: &str) -> Dnf {
        expand(&parse(s).unwrap(), &r(), 100_000).unwrap()
    }

    #[test]
    fn simplify_drops_covered_alternatives_as_the_pairwise_rule_did() {
        let net = |v: u128, len: u32| {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (32 - len) & 0xffff_ffff
            };
            Alt::Bits(Masked::new(v, mask))
        };
        // Pseudo-random mixes of /8../32 prefixes, duplicates and ports: same result as
        // the quadratic definition (every alternative another one covers is dropped).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..50 {
            let mut alts = Vec::new();
            for _ in 0..40 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = [8, 16, 24, 30, 32][(x % 5) as usize];
                alts.push(net(u128::from((x >> 8) as u32 & 0x0a0f_0f0f), len));
            }
            alts.push(Alt::Port("p1".into()));
            let want = {
                let mut a = alts.clone();
                a.sort();
                a.dedup();
                let bits: Vec<Masked> = a
                    .iter()
                    .filter_map(|a| match a {
                        Alt::Bits(m) => Some(*m),
                        Alt::Port(_) => None,
                    })
                    .collect();
                a.retain(|a| match a {
                    Alt::Bits(m) => !bits.iter().any(|o| o != m && m.within(o)),
                    Alt::Port(_) => true,
                });
                a
            };
            assert_eq!(simplify(alts), want);
        }
    }

    #[test]
    fn ranges_become_prefixes() {
        let p = range_prefixes(1024, 65535, 16);
        assert_eq!(p.len(), 6);
        assert_eq!(p[0], Masked::new(1024, 0xfc00));
        assert_eq!(range_prefixes(80, 80, 16), vec![Masked::new(80, 0xffff)]);
        assert_eq!(range_prefixes(0, 65535, 16), vec![Masked::new(0, 0)]);
        // Every value in range is covered exactly once; none outside.
        let p = range_prefixes(1000, 2000, 16);
        for v in 900u128..2100 {
            let n = p.iter().filter(|m| v & m.mask == m.value).count();
            assert_eq!(n, usize::from((1000..=2000).contains(&v)), "{v}");
        }
        assert_eq!(range_prefixes(0, u128::MAX, 128), vec![Masked::new(0, 0)]);
    }

    #[test]
    fn prerequisites_and_sets() {
        let d = x("tcp.dst == 80");
        assert_eq!(d.len(), 2, "ip means v4 or v6: one conjunct each");
        let c = &d[0];
        assert_eq!(c[&Field::EthType].len(), 1);
        assert_eq!(c[&Field::IpProto], vec![bits(Field::IpProto, 6)]);
        let d = x("ip4 && tcp.dst == {80, 443}");
        assert_eq!(d[0][&Field::EthType], vec![bits(Field::EthType, 0x800)]);
        assert_eq!(d[0][&Field::TcpDst].len(), 2);
        assert_eq!(flow_count(&d), 2);
        // Only the v4 entries of a set for ip4 fields.
        let d = x("ip4.src == $mixed");
        assert_eq!(d[0][&Field::Ip4Src].len(), 1);
        // Disjoint prerequisites make a conjunct impossible.
        assert!(x("ip4 && ip6").is_empty());
        assert!(x("tcp && udp").is_empty());
    }

    #[test]
    fn cross_products_use_conjunction() {
        let d = x("ip4.src == $big && tcp.dst == {80, 443}");
        assert_eq!(d.len(), 1);
        // eth.type {v4} after intersecting ip4 with ip; the product would be 200.
        assert_eq!(conjunct_flows(&d[0]), Shape::Conjunction(103));
        assert_eq!(flow_count(&d), 103);
    }

    #[test]
    fn negation_and_ranges() {
        let d = x("tcp.dst != 80");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0][&Field::TcpDst].len(), 16, "one alternative per bit");
        let d = x("!tcp");
        // not IP at all (every eth.type but the two, bit by bit), or IP with another
        // protocol: both are there.
        assert!(d.iter().any(|c| c.contains_key(&Field::IpProto)));
        assert!(d.iter().any(|c| !c.contains_key(&Field::IpProto)));
        let d = x("tcp.dst >= 1024 && tcp.dst < 2048");
        assert_eq!(
            d[0][&Field::TcpDst],
            vec![Alt::Bits(Masked::new(1024, 0xfc00))]
        );
        let d = x("ct.est && !ct.new");
        let ct = &d[0][&Field::CtState];
        assert_eq!(
            ct,
            &vec![Alt::Bits(Masked::new(
                ct_bits::EST | ct_bits::TRK,
                ct_bits::EST | ct_bits::TRK | ct_bits::NEW
            ))]
        );
        assert!(x("tcp.dst < 0").is_empty());
        let d = x("tcp.flags == 0x002 && sctp.dst == 5");
        assert!(d.is_empty(), "tcp and sctp at once");
        let d = x("ip4 && tcp.flags == 0x12");
        assert_eq!(d[0][&Field::TcpFlags], vec![bits(Field::TcpFlags, 0x12)]);
        assert_eq!(d[0][&Field::IpProto], vec![bits(Field::IpProto, 6)]);
        let d = x("ip4 && sctp && sctp.dst == {36412, 36422}");
        assert_eq!(d[0][&Field::SctpDst].len(), 2);
    }

    #[test]
    fn port_groups_and_limits() {
        let e = parse("tcp.dst == 80").unwrap();
        let d = acl_dnf(
            &Entity::PortGroup("web".into()),
            Direction::ToLport,
            &e,
            &r(),
            1000,
        )
        .unwrap();
        assert_eq!(d[0][&Field::OutPort].len(), 2);
        let e = parse("ip4.src == $nosuch").unwrap();
        assert_eq!(
            expand(&e, &r(), 1000).unwrap_err(),
            DnfError::UnknownSet("nosuch".into())
        );
        let e = parse("ip.ttl == 3").unwrap();
        assert!(matches!(
            expand(&e, &r(), 1000),
            Err(DnfError::Unsupported(_))
        ));
        let e = parse("ip4.src == $big || ip4.dst == $big").unwrap();
        assert!(
            matches!(expand(&e, &r(), 10), Err(DnfError::TooMany(_))) || {
                flow_count(&expand(&e, &r(), 10).unwrap()) > 10
            }
        );
    }
}
