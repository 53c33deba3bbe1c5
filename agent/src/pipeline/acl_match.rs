//! ACL match → OpenFlow matches (pure). The expansion into conjuncts of masked field values
//! is the shared model's ([`weft_proto::model::match_dnf`], the same the controller counts
//! flows with); this file resolves names against the chassis view and lowers each conjunct:
//!
//! - a field's alternatives become `MatchField`s (masked where OpenFlow allows a mask; a
//!   masked value of a field OpenFlow cannot mask, like `ip_proto`, becomes one match per
//!   value, at most 256);
//! - `inport`/`outport` alternatives become `metadata=DP,reg14|reg15=KEY` of ports in the view;
//!   the port a stage runs for (`inport` in from-lport, `outport` in to-lport ACLs) is always
//!   local there, so those alternatives keep only this chassis' ports (as ovn-controller does
//!   for port groups): a group of 400 ports costs a chassis its own 100;
//! - a conjunct with several multi-valued dimensions becomes `conjunction(ID,k/n)` flows, one
//!   per alternative, and one `conj_id=ID` flow with the verdict, when that is fewer flows
//!   than the cross product ([`match_dnf::conjunct_flows`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use weft_openflow::flow::{Mac, MatchField};
use weft_proto::model::acl::{implied_port_group, Direction, Entity};
use weft_proto::model::expr::Expr;
use weft_proto::model::match_dnf::{self, Alt, Conj, DnfError, Field, Masked, Resolver, Shape};

use super::reg;
use crate::view::ChassisView;

/// One lowered conjunct: the fields every flow of it has, and the multi-valued dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lowered {
    /// Fields shared by every flow of the conjunct.
    pub common: Vec<MatchField>,
    /// Each dimension's alternatives, each a set of fields.
    pub dims: Vec<Vec<Vec<MatchField>>>,
    /// How to emit it.
    pub shape: Shape,
}

/// Why an ACL compiles to nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    #[error(transparent)]
    Dnf(#[from] DnfError),
    #[error("{0}")]
    Unsupported(String),
}

/// Names resolved against the chassis view.
pub struct ViewResolver<'a>(pub &'a ChassisView);

impl Resolver for ViewResolver<'_> {
    fn address_set(&self, name: &str) -> Option<Vec<String>> {
        match implied_port_group(name) {
            Some((pg, v4)) => {
                let g = self.0.acl().port_group(pg)?;
                Some(if v4 { g.ip4.clone() } else { g.ip6.clone() })
            }
            None => self.0.acl().address_set(name).cloned(),
        }
    }
    fn port_group(&self, name: &str) -> Option<Vec<String>> {
        self.0.acl().port_group(name).map(|g| g.ports.clone())
    }
}

fn mac(v: u128) -> Mac {
    let b = (v as u64).to_be_bytes();
    Mac([b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn full(field: Field) -> u128 {
    match field.width() {
        128 => u128::MAX,
        w => (1u128 << w) - 1,
    }
}

/// Every concrete value of a masked value (for fields OpenFlow cannot mask).
fn values(field: Field, m: Masked) -> Result<Vec<u128>, LowerError> {
    let free = full(field) & !m.mask;
    if free.count_ones() > 8 {
        return Err(LowerError::Unsupported(format!(
            "{field:?} cannot be matched with a mask"
        )));
    }
    let bits: Vec<u32> = (0..128).filter(|i| free & (1u128 << i) != 0).collect();
    Ok((0u32..(1 << bits.len()))
        .map(|n| {
            let mut v = m.value;
            for (j, b) in bits.iter().enumerate() {
                if n & (1 << j) != 0 {
                    v |= 1u128 << b;
                }
            }
            v
        })
        .collect())
}

fn opt<T>(m: Masked, field: Field, f: impl Fn(u128) -> T) -> Option<T> {
    (m.mask != full(field)).then(|| f(m.mask))
}

/// Where an ACL is lowered: the chassis and the field of the stage's own (local) port.
#[derive(Clone, Copy, Debug)]
pub struct Place<'a> {
    pub chassis: &'a str,
    pub local_field: Field,
}

/// The OpenFlow form of one alternative (several for unmaskable fields; none for a port not
/// in the view, or not local when it is the stage's own port).
fn lower_alt(
    view: &ChassisView,
    place: Place,
    field: Field,
    alt: &Alt,
) -> Result<Vec<Vec<MatchField>>, LowerError> {
    let m = match alt {
        Alt::Port(name) => {
            let Some(p) = view.port(name) else {
                return Ok(Vec::new());
            };
            if field == place.local_field && p.chassis.as_deref() != Some(place.chassis) {
                return Ok(Vec::new());
            }
            let Some(sw) = view.switch(&p.switch) else {
                return Ok(Vec::new());
            };
            let index = if field == Field::InPort {
                reg::INPORT
            } else {
                reg::OUTPORT
            };
            return Ok(vec![vec![
                MatchField::Metadata {
                    value: u64::from(sw.key),
                    mask: None,
                },
                MatchField::Reg {
                    index,
                    value: p.key,
                    mask: None,
                },
            ]]);
        }
        Alt::Bits(m) => *m,
    };
    let one = |f: MatchField| Ok(vec![vec![f]]);
    let each = |mk: &dyn Fn(u128) -> MatchField| -> Result<Vec<Vec<MatchField>>, LowerError> {
        Ok(values(field, m)?.into_iter().map(|v| vec![mk(v)]).collect())
    };
    match field {
        Field::InPort | Field::OutPort => Ok(Vec::new()),
        Field::EthSrc => one(MatchField::EthSrc {
            value: mac(m.value),
            mask: opt(m, field, mac),
        }),
        Field::EthDst => one(MatchField::EthDst {
            value: mac(m.value),
            mask: opt(m, field, mac),
        }),
        Field::EthType => each(&|v| MatchField::EthType(v as u16)),
        Field::IpProto => each(&|v| MatchField::IpProto(v as u8)),
        Field::Ip4Src => one(MatchField::Ipv4Src {
            value: Ipv4Addr::from(m.value as u32),
            mask: opt(m, field, |x| Ipv4Addr::from(x as u32)),
        }),
        Field::Ip4Dst => one(MatchField::Ipv4Dst {
            value: Ipv4Addr::from(m.value as u32),
            mask: opt(m, field, |x| Ipv4Addr::from(x as u32)),
        }),
        Field::Ip6Src => one(MatchField::Ipv6Src {
            value: Ipv6Addr::from(m.value),
            mask: opt(m, field, Ipv6Addr::from),
        }),
        Field::Ip6Dst => one(MatchField::Ipv6Dst {
            value: Ipv6Addr::from(m.value),
            mask: opt(m, field, Ipv6Addr::from),
        }),
        Field::Icmp4Type => each(&|v| MatchField::IcmpType(v as u8)),
        Field::Icmp4Code => each(&|v| MatchField::IcmpCode(v as u8)),
        Field::Icmp6Type => each(&|v| MatchField::Icmpv6Type(v as u8)),
        Field::Icmp6Code => each(&|v| MatchField::Icmpv6Code(v as u8)),
        Field::TcpSrc => one(MatchField::TcpSrc {
            value: m.value as u16,
            mask: opt(m, field, |x| x as u16),
        }),
        Field::TcpDst => one(MatchField::TcpDst {
            value: m.value as u16,
            mask: opt(m, field, |x| x as u16),
        }),
        Field::UdpSrc => one(MatchField::UdpSrc {
            value: m.value as u16,
            mask: opt(m, field, |x| x as u16),
        }),
        Field::UdpDst => one(MatchField::UdpDst {
            value: m.value as u16,
            mask: opt(m, field, |x| x as u16),
        }),
        Field::SctpSrc => one(MatchField::SctpSrc {
            value: m.value as u16,
            mask: opt(m, field, |x| x as u16),
        }),
        Field::SctpDst => one(MatchField::SctpDst {
            value: m.value as u16,
            mask: opt(m, field, |x| x as u16),
        }),
        Field::TcpFlags => one(MatchField::TcpFlags {
            value: m.value as u16,
            mask: opt(m, field, |x| x as u16),
        }),
        Field::ArpOp => each(&|v| MatchField::ArpOp(v as u16)),
        Field::ArpSpa => one(MatchField::ArpSpa {
            value: Ipv4Addr::from(m.value as u32),
            mask: opt(m, field, |x| Ipv4Addr::from(x as u32)),
        }),
        Field::ArpTpa => one(MatchField::ArpTpa {
            value: Ipv4Addr::from(m.value as u32),
            mask: opt(m, field, |x| Ipv4Addr::from(x as u32)),
        }),
        Field::ArpSha | Field::ArpTha => {
            if m.mask != full(field) {
                return Err(LowerError::Unsupported(format!(
                    "{field:?} cannot be matched with a mask"
                )));
            }
            one(if field == Field::ArpSha {
                MatchField::ArpSha(mac(m.value))
            } else {
                MatchField::ArpTha(mac(m.value))
            })
        }
        Field::CtState => one(MatchField::CtState {
            value: m.value as u8,
            mask: opt(m, field, |x| x as u8),
        }),
    }
}

fn lower_conj(view: &ChassisView, place: Place, c: &Conj) -> Result<Option<Lowered>, LowerError> {
    let mut common = Vec::new();
    let mut dims = Vec::new();
    for (field, alts) in c {
        let mut lowered: Vec<Vec<MatchField>> = Vec::new();
        for a in alts {
            lowered.extend(lower_alt(view, place, *field, a)?);
        }
        match lowered.len() {
            0 => return Ok(None),
            1 => common.extend(lowered.remove(0)),
            _ => dims.push(lowered),
        }
    }
    let sizes: Vec<usize> = dims.iter().map(Vec::len).collect();
    let product = sizes
        .iter()
        .try_fold(1usize, |a, n| a.checked_mul(*n))
        .unwrap_or(usize::MAX);
    let sum = sizes.iter().sum::<usize>() + 1;
    let shape = if sizes.len() >= 2 && sum < product {
        Shape::Conjunction(sum)
    } else {
        Shape::Product(product)
    };
    Ok(Some(Lowered {
        common,
        dims,
        shape,
    }))
}

/// The lowered conjuncts of an ACL as the view resolves it.
pub fn lower(
    view: &ChassisView,
    chassis: &str,
    entity: &Entity,
    direction: Direction,
    expr: &Expr,
    limit: usize,
) -> Result<Vec<Lowered>, LowerError> {
    let dnf = match_dnf::acl_dnf(entity, direction, expr, &ViewResolver(view), limit)?;
    let place = Place {
        chassis,
        local_field: match direction {
            Direction::FromLport => Field::InPort,
            Direction::ToLport => Field::OutPort,
        },
    };
    let mut out = Vec::new();
    for c in &dnf {
        if let Some(l) = lower_conj(view, place, c)? {
            out.push(l);
        }
    }
    let total: usize = out
        .iter()
        .map(|l| l.shape.flows())
        .fold(0, usize::saturating_add);
    if total > limit {
        return Err(LowerError::Dnf(DnfError::TooMany(total)));
    }
    Ok(out)
}
