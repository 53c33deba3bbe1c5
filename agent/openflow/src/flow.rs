//! The typed flow model: what the pipeline compiler produces, what the codec encodes to the
//! wire and decodes from flow-stats replies, and what renders to `ovs-ofctl dump-flows` text.
//!
//! Only the match fields and actions Weft's pipeline uses are modelled. Anything else read
//! back from a switch (a flow someone added by hand) decodes as [`MatchField::Other`] /
//! [`Action::Other`] carrying the raw bytes, so it can still be deleted strictly.
//!
//! Invariant the reconciler relies on: `decode(encode(flow)) == flow` for every flow the
//! pipeline builds, and the flows OVS reports back decode to the same value as the flows we
//! sent. [`Match`] keeps its fields sorted by [`MatchField::key`] so equality is canonical.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);
    /// The multicast bit (01:00:00:00:00:00), used as a mask to match broadcast+multicast.
    pub const MULTICAST_BIT: Mac = Mac([1, 0, 0, 0, 0, 0]);

    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

/// Error parsing a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets separated by ':'")]
pub struct MacParseError(pub String);

impl FromStr for Mac {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || p.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

/// Well-known port numbers (OpenFlow 1.1+ 32-bit space).
pub mod ports {
    /// Send back out the packet's input port (`IN_PORT`).
    pub const IN_PORT: u32 = 0xffff_fff8;
    /// Local port of the bridge (`LOCAL`).
    pub const LOCAL: u32 = 0xffff_fffe;
    /// Controller port.
    pub const CONTROLLER: u32 = 0xffff_fffd;
    /// Wildcard used in deletes/stats requests.
    pub const ANY: u32 = 0xffff_ffff;
}

/// One match field. Masked variants carry `Some(mask)`; a full mask is normalised to `None`
/// by the constructors in [`Match`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MatchField {
    /// OpenFlow port number the packet came in on.
    InPort(u32),
    /// 64-bit OpenFlow metadata register.
    Metadata {
        value: u64,
        mask: Option<u64>,
    },
    /// Nicira register reg0..reg15.
    Reg {
        index: u8,
        value: u32,
        mask: Option<u32>,
    },
    /// Tunnel ID (VNI / GRE key).
    TunId {
        value: u64,
        mask: Option<u64>,
    },
    /// Tunnel outer source IPv4.
    TunSrc(Ipv4Addr),
    /// Tunnel outer destination IPv4.
    TunDst(Ipv4Addr),
    EthSrc {
        value: Mac,
        mask: Option<Mac>,
    },
    EthDst {
        value: Mac,
        mask: Option<Mac>,
    },
    EthType(u16),
    ArpOp(u16),
    /// ARP sender protocol address, with an optional prefix mask.
    ArpSpa {
        value: Ipv4Addr,
        mask: Option<Ipv4Addr>,
    },
    ArpTpa {
        value: Ipv4Addr,
        mask: Option<Ipv4Addr>,
    },
    ArpSha(Mac),
    ArpTha(Mac),
    Ipv4Src {
        value: Ipv4Addr,
        mask: Option<Ipv4Addr>,
    },
    Ipv4Dst {
        value: Ipv4Addr,
        mask: Option<Ipv4Addr>,
    },
    IpProto(u8),
    /// A field Weft does not model (read back from the switch): the raw OXM/NXM TLV bytes.
    Other(Vec<u8>),
}

impl MatchField {
    /// The field as a switch reports it back: value ANDed with the mask, a full mask as
    /// `None`; `None` when the mask is all zeros (the field matches anything).
    pub fn normalized(self) -> Option<MatchField> {
        fn mask_u64(value: u64, mask: Option<u64>, full: u64) -> Option<(u64, Option<u64>)> {
            match mask {
                None => Some((value, None)),
                Some(0) => None,
                Some(m) if m & full == full => Some((value, None)),
                Some(m) => Some((value & m, Some(m))),
            }
        }
        fn mask_mac(value: Mac, mask: Option<Mac>) -> Option<(Mac, Option<Mac>)> {
            let v = u64::from_be_bytes([
                0, 0, value.0[0], value.0[1], value.0[2], value.0[3], value.0[4], value.0[5],
            ]);
            let m = mask.map(|m| {
                u64::from_be_bytes([0, 0, m.0[0], m.0[1], m.0[2], m.0[3], m.0[4], m.0[5]])
            });
            let (v, m) = mask_u64(v, m, 0xffff_ffff_ffff)?;
            let to_mac = |x: u64| {
                let b = x.to_be_bytes();
                Mac([b[2], b[3], b[4], b[5], b[6], b[7]])
            };
            Some((to_mac(v), m.map(to_mac)))
        }
        fn mask_ip(
            value: Ipv4Addr,
            mask: Option<Ipv4Addr>,
        ) -> Option<(Ipv4Addr, Option<Ipv4Addr>)> {
            let (v, m) = mask_u64(
                u64::from(u32::from(value)),
                mask.map(|m| u64::from(u32::from(m))),
                u64::from(u32::MAX),
            )?;
            // Values fit: both were built from u32s and masking only clears bits.
            let ip = |x: u64| Ipv4Addr::from(x as u32);
            Some((ip(v), m.map(ip)))
        }
        Some(match self {
            MatchField::Metadata { value, mask } => {
                let (value, mask) = mask_u64(value, mask, u64::MAX)?;
                MatchField::Metadata { value, mask }
            }
            MatchField::TunId { value, mask } => {
                let (value, mask) = mask_u64(value, mask, u64::MAX)?;
                MatchField::TunId { value, mask }
            }
            MatchField::Reg { index, value, mask } => {
                let (value, mask) =
                    mask_u64(u64::from(value), mask.map(u64::from), u64::from(u32::MAX))?;
                MatchField::Reg {
                    index,
                    value: value as u32,
                    mask: mask.map(|m| m as u32),
                }
            }
            MatchField::EthSrc { value, mask } => {
                let (value, mask) = mask_mac(value, mask)?;
                MatchField::EthSrc { value, mask }
            }
            MatchField::EthDst { value, mask } => {
                let (value, mask) = mask_mac(value, mask)?;
                MatchField::EthDst { value, mask }
            }
            MatchField::ArpSpa { value, mask } => {
                let (value, mask) = mask_ip(value, mask)?;
                MatchField::ArpSpa { value, mask }
            }
            MatchField::ArpTpa { value, mask } => {
                let (value, mask) = mask_ip(value, mask)?;
                MatchField::ArpTpa { value, mask }
            }
            MatchField::Ipv4Src { value, mask } => {
                let (value, mask) = mask_ip(value, mask)?;
                MatchField::Ipv4Src { value, mask }
            }
            MatchField::Ipv4Dst { value, mask } => {
                let (value, mask) = mask_ip(value, mask)?;
                MatchField::Ipv4Dst { value, mask }
            }
            other => other,
        })
    }

    /// Sort key giving [`Match`] a canonical field order (roughly the order ovs-ofctl prints).
    pub fn key(&self) -> (u16, u8) {
        match self {
            MatchField::Reg { index, .. } => (10, *index),
            MatchField::TunId { .. } => (20, 0),
            MatchField::TunSrc(_) => (21, 0),
            MatchField::TunDst(_) => (22, 0),
            MatchField::Metadata { .. } => (30, 0),
            MatchField::InPort(_) => (40, 0),
            MatchField::EthType(_) => (50, 0),
            MatchField::EthSrc { .. } => (60, 0),
            MatchField::EthDst { .. } => (61, 0),
            MatchField::IpProto(_) => (70, 0),
            MatchField::Ipv4Src { .. } => (80, 0),
            MatchField::Ipv4Dst { .. } => (81, 0),
            MatchField::ArpOp(_) => (90, 0),
            MatchField::ArpSpa { .. } => (91, 0),
            MatchField::ArpTpa { .. } => (92, 0),
            MatchField::ArpSha(_) => (93, 0),
            MatchField::ArpTha(_) => (94, 0),
            MatchField::Other(_) => (1000, 0),
        }
    }
}

/// A set of match fields, kept sorted by [`MatchField::key`] (and raw bytes for `Other`) so
/// two matches with the same fields compare equal whatever order they were built in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Match {
    fields: Vec<MatchField>,
}

impl Match {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a match from fields in any order.
    pub fn from_fields(fields: impl IntoIterator<Item = MatchField>) -> Self {
        let mut m = Match::new();
        for f in fields {
            m.push(f);
        }
        m
    }

    /// Adds a field, keeping the canonical order. A field with the same key replaces the old.
    /// Masks are normalised the way a switch reports them back: a full mask becomes `None`,
    /// the value is ANDed with the mask, and a field with an all-zero mask (a wildcard) is
    /// not added at all.
    pub fn push(&mut self, f: MatchField) {
        let Some(f) = f.normalized() else {
            return;
        };
        if !matches!(f, MatchField::Other(_)) {
            if let Some(existing) = self.fields.iter_mut().find(|e| e.key() == f.key()) {
                *existing = f;
                return;
            }
        }
        self.fields.push(f);
        self.fields.sort_by(|a, b| match (a, b) {
            (MatchField::Other(x), MatchField::Other(y)) => x.cmp(y),
            _ => a.key().cmp(&b.key()),
        });
    }

    /// Builder form of [`Match::push`].
    pub fn with(mut self, f: MatchField) -> Self {
        self.push(f);
        self
    }

    pub fn fields(&self) -> &[MatchField] {
        &self.fields
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// A destination or source of a `move` / `set_field` that addresses a whole field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    EthSrc,
    EthDst,
    ArpSha,
    ArpTha,
    ArpSpa,
    ArpTpa,
    Reg(u8),
    Metadata,
    TunId,
    TunDst,
    InPort,
}

/// The value of a `set_field` action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SetField {
    EthSrc(Mac),
    EthDst(Mac),
    ArpOp(u16),
    ArpSha(Mac),
    ArpTha(Mac),
    ArpSpa(Ipv4Addr),
    ArpTpa(Ipv4Addr),
    /// Whole 32-bit register.
    Reg {
        index: u8,
        value: u32,
    },
    Metadata(u64),
    TunId(u64),
    TunDst(Ipv4Addr),
}

/// One action (or, for [`Action::GotoTable`], the goto-table instruction).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Output to an OpenFlow port (use [`ports::IN_PORT`] for `IN_PORT`).
    Output(u32),
    /// Set a field to a constant.
    SetField(SetField),
    /// Copy a whole field to another field of the same width (NXAST_REG_MOVE).
    Move { src: Field, dst: Field },
    /// Nicira `resubmit(,TABLE)`: run the packet through another table, then continue.
    Resubmit { table: u8 },
    /// Apply a group (for flooding).
    Group(u32),
    /// The OpenFlow goto-table instruction; must be last.
    GotoTable(u8),
    /// An action Weft does not model (read back from the switch): raw action bytes.
    Other(Vec<u8>),
}

/// One flow: a table entry. `actions` empty means drop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub table: u8,
    pub priority: u16,
    /// Owner of the flow; see the agent's pipeline for the cookie layout.
    pub cookie: u64,
    pub matches: Match,
    pub actions: Vec<Action>,
}

/// The identity of a flow inside a switch: OpenFlow treats (table, priority, match) as the
/// key; a second add with the same key replaces the first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub table: u8,
    pub priority: u16,
    pub matches: Match,
}

impl Flow {
    pub fn key(&self) -> FlowKey {
        FlowKey {
            table: self.table,
            priority: self.priority,
            matches: self.matches.clone(),
        }
    }
}

/// Group types Weft uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// Every bucket is executed (flooding).
    All,
    /// Another OpenFlow group type (select=1, indirect=2, fast failover=3), read back from a
    /// switch; Weft never creates these.
    Other(u8),
}

/// An OpenFlow group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Group {
    pub id: u32,
    pub kind: GroupType,
    /// Each bucket is a list of actions.
    pub buckets: Vec<Vec<Action>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_normalises_masks_like_the_switch() {
        let m = Match::new()
            .with(MatchField::Reg {
                index: 1,
                value: 0x1234,
                mask: Some(0xff),
            })
            .with(MatchField::Metadata {
                value: 7,
                mask: Some(u64::MAX),
            })
            .with(MatchField::TunId {
                value: 7,
                mask: Some(0),
            })
            .with(MatchField::EthSrc {
                value: Mac([1, 2, 3, 4, 5, 6]),
                mask: Some(Mac([0xff, 0xff, 0xff, 0xff, 0xff, 0])),
            })
            .with(MatchField::Ipv4Src {
                value: Ipv4Addr::new(10, 1, 2, 3),
                mask: Some(Ipv4Addr::new(255, 255, 0, 0)),
            });
        assert_eq!(
            m.fields(),
            &[
                MatchField::Reg {
                    index: 1,
                    value: 0x34,
                    mask: Some(0xff)
                },
                MatchField::Metadata {
                    value: 7,
                    mask: None
                },
                MatchField::EthSrc {
                    value: Mac([1, 2, 3, 4, 5, 0]),
                    mask: Some(Mac([0xff, 0xff, 0xff, 0xff, 0xff, 0])),
                },
                MatchField::Ipv4Src {
                    value: Ipv4Addr::new(10, 1, 0, 0),
                    mask: Some(Ipv4Addr::new(255, 255, 0, 0)),
                },
            ]
        );
    }
}
