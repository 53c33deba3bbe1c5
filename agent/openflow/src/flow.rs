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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    /// IPv4 TTL / IPv6 hop limit (`nw_ttl`, NXM_NX_IP_TTL).
    NwTtl(u8),
    /// Conjunctive match id (`conj_id=N`), set by `conjunction(N,k/n)` actions.
    ConjId(u32),
    /// Connection tracking state bits ([`ct_state`]), optionally masked: `ct_state=+trk-new`.
    CtState {
        value: u8,
        mask: Option<u8>,
    },
    /// Conntrack zone the packet was last looked up in.
    CtZone(u16),
    CtMark {
        value: u32,
        mask: Option<u32>,
    },
    /// 128-bit conntrack label.
    CtLabel {
        value: u128,
        mask: Option<u128>,
    },
    /// Original-direction IPv4 source of the tracked connection.
    CtNwSrc {
        value: Ipv4Addr,
        mask: Option<Ipv4Addr>,
    },
    CtNwDst {
        value: Ipv4Addr,
        mask: Option<Ipv4Addr>,
    },
    /// Original-direction IP protocol of the tracked connection.
    CtNwProto(u8),
    /// Original-direction transport ports (OVS prints them only with `ct_nw_proto`).
    CtTpSrc {
        value: u16,
        mask: Option<u16>,
    },
    CtTpDst {
        value: u16,
        mask: Option<u16>,
    },
    Ipv6Src {
        value: Ipv6Addr,
        mask: Option<Ipv6Addr>,
    },
    Ipv6Dst {
        value: Ipv6Addr,
        mask: Option<Ipv6Addr>,
    },
    /// ICMPv4 type/code (`icmp_type`, `icmp_code`).
    IcmpType(u8),
    IcmpCode(u8),
    /// ICMPv6 type/code (OVS prints these as `icmp_type`, `icmp_code` under `icmp6`).
    Icmpv6Type(u8),
    Icmpv6Code(u8),
    /// IPv6 neighbour discovery target address.
    NdTarget(Ipv6Addr),
    /// ND source / target link-layer address options.
    NdSll(Mac),
    NdTll(Mac),
    TcpSrc {
        value: u16,
        mask: Option<u16>,
    },
    TcpDst {
        value: u16,
        mask: Option<u16>,
    },
    UdpSrc {
        value: u16,
        mask: Option<u16>,
    },
    UdpDst {
        value: u16,
        mask: Option<u16>,
    },
    SctpSrc {
        value: u16,
        mask: Option<u16>,
    },
    SctpDst {
        value: u16,
        mask: Option<u16>,
    },
    /// TCP flags (12 bits; OpenFlow 1.5 `OXM_OF_TCP_FLAGS`). A mask covering all 12 bits is
    /// an exact match.
    TcpFlags {
        value: u16,
        mask: Option<u16>,
    },
    /// Geneve option mapped to `tun_metadata<index>` by the switch's TLV table (see
    /// [`crate::codec::TlvTableMod`]). `value` has the mapped option's length in bytes.
    TunMetadata {
        index: u8,
        value: Vec<u8>,
        mask: Option<Vec<u8>>,
    },
    /// A field Weft does not model (read back from the switch): the raw OXM/NXM TLV bytes.
    Other(Vec<u8>),
}

/// `ct_state` bits, as OVS names them.
pub mod ct_state {
    pub const NEW: u8 = 0x01;
    pub const EST: u8 = 0x02;
    pub const REL: u8 = 0x04;
    pub const RPL: u8 = 0x08;
    pub const INV: u8 = 0x10;
    pub const TRK: u8 = 0x20;
    pub const SNAT: u8 = 0x40;
    pub const DNAT: u8 = 0x80;
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
        fn mask_n<T>(value: T, mask: Option<T>, full: T, zero: T) -> Option<(T, Option<T>)>
        where
            T: Copy + PartialEq + std::ops::BitAnd<Output = T>,
        {
            match mask {
                None => Some((value, None)),
                Some(m) if m == zero => None,
                Some(m) if m == full => Some((value, None)),
                Some(m) => Some((value & m, Some(m))),
            }
        }
        fn mask_ip6(
            value: Ipv6Addr,
            mask: Option<Ipv6Addr>,
        ) -> Option<(Ipv6Addr, Option<Ipv6Addr>)> {
            let (v, m) = mask_n(u128::from(value), mask.map(u128::from), u128::MAX, 0)?;
            Some((Ipv6Addr::from(v), m.map(Ipv6Addr::from)))
        }
        Some(match self {
            MatchField::CtState { value, mask } => {
                let (value, mask) = mask_n(value, mask, u8::MAX, 0)?;
                MatchField::CtState { value, mask }
            }
            MatchField::CtMark { value, mask } => {
                let (value, mask) = mask_n(value, mask, u32::MAX, 0)?;
                MatchField::CtMark { value, mask }
            }
            MatchField::CtLabel { value, mask } => {
                let (value, mask) = mask_n(value, mask, u128::MAX, 0)?;
                MatchField::CtLabel { value, mask }
            }
            MatchField::CtNwSrc { value, mask } => {
                let (value, mask) = mask_ip(value, mask)?;
                MatchField::CtNwSrc { value, mask }
            }
            MatchField::CtNwDst { value, mask } => {
                let (value, mask) = mask_ip(value, mask)?;
                MatchField::CtNwDst { value, mask }
            }
            MatchField::CtTpSrc { value, mask } => {
                let (value, mask) = mask_n(value, mask, u16::MAX, 0)?;
                MatchField::CtTpSrc { value, mask }
            }
            MatchField::CtTpDst { value, mask } => {
                let (value, mask) = mask_n(value, mask, u16::MAX, 0)?;
                MatchField::CtTpDst { value, mask }
            }
            MatchField::TcpSrc { value, mask } => {
                let (value, mask) = mask_n(value, mask, u16::MAX, 0)?;
                MatchField::TcpSrc { value, mask }
            }
            MatchField::TcpDst { value, mask } => {
                let (value, mask) = mask_n(value, mask, u16::MAX, 0)?;
                MatchField::TcpDst { value, mask }
            }
            MatchField::UdpSrc { value, mask } => {
                let (value, mask) = mask_n(value, mask, u16::MAX, 0)?;
                MatchField::UdpSrc { value, mask }
            }
            MatchField::SctpSrc { value, mask } => {
                let (value, mask) = mask_n(value, mask, u16::MAX, 0)?;
                MatchField::SctpSrc { value, mask }
            }
            MatchField::SctpDst { value, mask } => {
                let (value, mask) = mask_n(value, mask, u16::MAX, 0)?;
                MatchField::SctpDst { value, mask }
            }
            MatchField::TcpFlags { value, mask } => {
                let mask = mask.map(|m| m & 0x0fff);
                let (value, mask) = mask_n(value & 0x0fff, mask, 0x0fff, 0)?;
                MatchField::TcpFlags { value, mask }
            }
            MatchField::UdpDst { value, mask } => {
                let (value, mask) = mask_n(value, mask, u16::MAX, 0)?;
                MatchField::UdpDst { value, mask }
            }
            MatchField::Ipv6Src { value, mask } => {
                let (value, mask) = mask_ip6(value, mask)?;
                MatchField::Ipv6Src { value, mask }
            }
            MatchField::Ipv6Dst { value, mask } => {
                let (value, mask) = mask_ip6(value, mask)?;
                MatchField::Ipv6Dst { value, mask }
            }
            MatchField::TunMetadata { index, value, mask } => match mask {
                None => MatchField::TunMetadata { index, value, mask },
                Some(m) if m.iter().all(|b| *b == 0) => return None,
                Some(m) if m.iter().all(|b| *b == 0xff) => MatchField::TunMetadata {
                    index,
                    value,
                    mask: None,
                },
                Some(m) => MatchField::TunMetadata {
                    index,
                    value: value
                        .iter()
                        .zip(m.iter().chain(std::iter::repeat(&0xff)))
                        .map(|(v, m)| v & m)
                        .collect(),
                    mask: Some(m),
                },
            },
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
            MatchField::NwTtl(_) => (71, 0),
            MatchField::Ipv4Src { .. } => (80, 0),
            MatchField::Ipv4Dst { .. } => (81, 0),
            MatchField::ArpOp(_) => (90, 0),
            MatchField::ArpSpa { .. } => (91, 0),
            MatchField::ArpTpa { .. } => (92, 0),
            MatchField::ArpSha(_) => (93, 0),
            MatchField::ArpTha(_) => (94, 0),
            MatchField::ConjId(_) => (1, 0),
            MatchField::CtState { .. } => (2, 0),
            MatchField::CtZone(_) => (3, 0),
            MatchField::CtMark { .. } => (4, 0),
            MatchField::CtLabel { .. } => (5, 0),
            MatchField::CtNwSrc { .. } => (6, 0),
            MatchField::CtNwDst { .. } => (7, 0),
            MatchField::CtNwProto(_) => (8, 0),
            MatchField::CtTpSrc { .. } => (9, 0),
            MatchField::CtTpDst { .. } => (9, 1),
            MatchField::TunMetadata { index, .. } => (23, *index),
            MatchField::Ipv6Src { .. } => (82, 0),
            MatchField::Ipv6Dst { .. } => (83, 0),
            MatchField::IcmpType(_) => (100, 0),
            MatchField::IcmpCode(_) => (101, 0),
            MatchField::Icmpv6Type(_) => (102, 0),
            MatchField::Icmpv6Code(_) => (103, 0),
            MatchField::NdTarget(_) => (104, 0),
            MatchField::NdSll(_) => (105, 0),
            MatchField::NdTll(_) => (106, 0),
            MatchField::TcpSrc { .. } => (110, 0),
            MatchField::TcpDst { .. } => (111, 0),
            MatchField::UdpSrc { .. } => (112, 0),
            MatchField::UdpDst { .. } => (113, 0),
            MatchField::TcpFlags { .. } => (114, 0),
            MatchField::SctpSrc { .. } => (115, 0),
            MatchField::SctpDst { .. } => (116, 0),
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
    /// IPv4 source / destination address (`NXM_OF_IP_SRC` / `NXM_OF_IP_DST`).
    Ipv4Src,
    Ipv4Dst,
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
    /// Part of a register: only the bits in `mask` are written (`set_field:V/M->regN`, the
    /// OpenFlow 1.5 form of `load:V->NXM_NX_REGn[a..b]`).
    RegMasked {
        index: u8,
        value: u32,
        mask: u32,
    },
    MetadataMasked {
        value: u64,
        mask: u64,
    },
    /// Connection mark; valid inside `ct(commit,exec(...))`.
    CtMark {
        value: u32,
        mask: Option<u32>,
    },
    /// Connection label; valid inside `ct(commit,exec(...))`.
    CtLabel {
        value: u128,
        mask: Option<u128>,
    },
    TunSrc(Ipv4Addr),
    Ipv4Src(Ipv4Addr),
    Ipv4Dst(Ipv4Addr),
    Ipv6Src(Ipv6Addr),
    Ipv6Dst(Ipv6Addr),
    NdTarget(Ipv6Addr),
    NdSll(Mac),
    NdTll(Mac),
    Icmpv6Type(u8),
    Icmpv6Code(u8),
    /// ICMPv4 type (`set_field:0->icmp_type`; OVS updates the checksum).
    IcmpType(u8),
    /// `tun_metadata<index>`. Unmasked values are canonical without leading zero bytes
    /// (`[5]`, not `[0, 0, 0, 5]`): that is how OVS reports them back.
    TunMetadata {
        index: u8,
        value: Vec<u8>,
        mask: Option<Vec<u8>>,
    },
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
    /// Copy a bit range of one field to a bit range of another (OpenFlow 1.5 copy_field),
    /// e.g. `move:NXM_NX_REG14[0..14]->NXM_NX_TUN_METADATA0[16..30]`; both ranges have
    /// `src.n_bits` bits. Decoded for every copy that is not a [`Action::Move`] of whole
    /// fields.
    MoveBits { src: SubField, dst: SubField },
    /// Nicira `resubmit(,TABLE)`: run the packet through another table, then continue.
    Resubmit { table: u8 },
    /// Apply a group (for flooding).
    Group(u32),
    /// The OpenFlow goto-table instruction; must be last.
    GotoTable(u8),
    /// Send the packet through the connection tracker (NXAST_CT): `ct(commit,zone=...,
    /// table=...,nat(...),exec(...))`.
    Ct(Ct),
    /// Forget the packet's conntrack state (NXAST_CT_CLEAR).
    CtClear,
    /// Decrement the IP TTL / hop limit (OpenFlow `dec_nw_ttl`); a packet whose TTL
    /// expires goes to the controller with reason `invalid_ttl`.
    DecTtl,
    /// One clause of a conjunctive match (NXAST_CONJUNCTION). `clause` is 1-based as
    /// printed (`conjunction(id,clause/n_clauses)`); OVS allows only other conjunctions in
    /// the same action list.
    Conjunction { id: u32, clause: u8, n_clauses: u8 },
    /// Pass the packet through a meter (OpenFlow 1.5 `meter` action). OVS requires it to be
    /// the first action.
    Meter(u32),
    /// Send to the controller with extra options (NXAST_CONTROLLER2).
    Controller(Controller),
    /// Add or refresh a flow built from this packet (NXAST_LEARN).
    Learn(Learn),
    /// `check_pkt_larger(LEN)->DST` (NXAST_CHECK_PKT_LARGER): sets the one bit `dst` to 1
    /// when the packet (Ethernet header included) is longer than `len` bytes, else to 0.
    CheckPktLarger { len: u16, dst: SubField },
    /// An action Weft does not model (read back from the switch): raw action bytes.
    Other(Vec<u8>),
}

/// A bit range of a field, as NXM/OXM names it: `NXM_NX_REG13[0..15]`. `header` is the
/// field's NXM/OXM header without the mask bit (see [`crate::codec::nxm`] for constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubField {
    pub header: u32,
    pub ofs: u16,
    pub n_bits: u16,
}

impl SubField {
    /// The whole field named by `header` (its width is the header's length).
    pub const fn whole(header: u32) -> SubField {
        SubField {
            header,
            ofs: 0,
            n_bits: (header & 0xff) as u16 * 8,
        }
    }
    /// Bits `start..=end` of the field (as written `FIELD[start..end]`).
    pub const fn bits(header: u32, start: u16, end: u16) -> SubField {
        SubField {
            header,
            ofs: start,
            n_bits: end - start + 1,
        }
    }
    /// Width in bits of the whole field.
    pub const fn field_bits(&self) -> u16 {
        (self.header & 0xff) as u16 * 8
    }
}

/// The conntrack zone of a `ct` action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtZone {
    /// A constant zone (0 is the default zone and is not printed).
    Imm(u16),
    /// 16 bits taken from a field, e.g. `NXM_NX_REG13[0..15]`.
    Field(SubField),
}

impl Default for CtZone {
    fn default() -> Self {
        CtZone::Imm(0)
    }
}

/// `ct(...)`: commit/lookup in the connection tracker. `table: None` means the packet is
/// not recirculated (OVS's `NX_CT_RECIRC_NONE`). `nat` is printed outside `exec(...)`, as
/// OVS does; `exec` holds the other nested actions (set_field of ct_mark / ct_label).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ct {
    pub commit: bool,
    pub force: bool,
    pub table: Option<u8>,
    pub zone: CtZone,
    /// Application-layer gateway port (21 ftp, 69 tftp), 0 for none.
    pub alg: u16,
    pub nat: Option<Nat>,
    pub exec: Vec<Action>,
}

/// Which side `nat(...)` rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    Src,
    Dst,
}

/// `nat` inside `ct(...)` (NXAST_NAT). `kind: None` is bare `nat`: apply the NAT already
/// set up for the connection (un-NAT replies). Addresses and ports are kept as sent
/// (`max: None` = a single address / port), so the value round-trips through the switch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Nat {
    pub kind: Option<NatKind>,
    pub addr_min: Option<IpAddr>,
    pub addr_max: Option<IpAddr>,
    pub port_min: Option<u16>,
    pub port_max: Option<u16>,
    pub persistent: bool,
    pub hash: bool,
    pub random: bool,
}

/// `controller(...)` (NXAST_CONTROLLER2). `reason` is an OFPR_* code (see
/// [`crate::codec::packet_in_reason`]); `max_len` 65535 means the whole packet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Controller {
    pub max_len: u16,
    pub controller_id: u16,
    pub reason: u8,
    pub userdata: Vec<u8>,
    pub pause: bool,
    pub meter_id: Option<u32>,
}

impl Default for Controller {
    fn default() -> Self {
        Controller {
            max_len: u16::MAX,
            controller_id: 0,
            reason: 1, // OFPR_ACTION
            userdata: Vec::new(),
            pause: false,
            meter_id: None,
        }
    }
}

/// `learn(...)`. Timeouts 0 mean permanent; `priority` defaults to 32768 in OVS's text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Learn {
    pub table: u8,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub cookie: u64,
    /// NX_LEARN_F_*: 1 send_flow_rem, 2 delete_learned.
    pub flags: u16,
    pub fin_idle_timeout: u16,
    pub fin_hard_timeout: u16,
    pub specs: Vec<LearnSpec>,
}

impl Default for Learn {
    fn default() -> Self {
        Learn {
            table: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 32768,
            cookie: 0,
            flags: 0,
            fin_idle_timeout: 0,
            fin_hard_timeout: 0,
            specs: Vec::new(),
        }
    }
}

/// One spec of a `learn` action. Immediates are truncated to the destination's `n_bits`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LearnSpec {
    /// The learned flow matches `dst` equal to this packet's `src`: `DST[]=SRC[]`
    /// (printed as `DST[]` alone when both are the same bits of the same field).
    Match { dst: SubField, src: SubField },
    /// The learned flow matches `dst` equal to a constant: `DST[..]=0x..`.
    MatchImm { dst: SubField, value: u128 },
    /// The learned flow loads this packet's `src` into `dst`: `load:SRC[]->DST[]`.
    Load { src: SubField, dst: SubField },
    /// The learned flow loads a constant: `load:0x..->DST[]`.
    LoadImm { value: u128, dst: SubField },
    /// The learned flow outputs to the port in `src`: `output:SRC[]`.
    Output { src: SubField },
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
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// Every bucket is executed (flooding).
    All,
    /// One bucket is chosen per packet (load balancing); see [`SelectGroup`].
    Select(SelectGroup),
    /// Another OpenFlow group type (select=1, indirect=2, fast failover=3), read back from a
    /// switch; Weft never creates these.
    Other(u8),
}

/// How a select group picks a bucket, and each bucket's weight.
///
/// `hash_fields` empty means OVS's default selection method (a datapath hash, `dp_hash`);
/// otherwise `selection_method=hash,fields(...)` (the NTR_SELECTION_METHOD group property)
/// with these field names (`ip_src`, `ip_dst`, `tcp_src`, `eth_type`, `nw_proto`, ...), and
/// `hash_basis` as `selection_method_param`. `weights[i]` is bucket i's weight; a missing
/// entry means OVS's default of 1, and trailing 1s are dropped so values compare canonically
/// (use [`SelectGroup::weight`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SelectGroup {
    pub hash_fields: Vec<String>,
    pub hash_basis: u64,
    pub weights: Vec<u16>,
}

impl SelectGroup {
    /// Bucket `i`'s weight (1 when not given).
    pub fn weight(&self, i: usize) -> u16 {
        self.weights.get(i).copied().unwrap_or(1)
    }
    /// Drops trailing default weights (the canonical form the codec decodes to).
    pub fn canonical(mut self) -> Self {
        while self.weights.last() == Some(&1) {
            self.weights.pop();
        }
        self
    }
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
