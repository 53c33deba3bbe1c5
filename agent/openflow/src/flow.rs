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
    Metadata { value: u64, mask: Option<u64> },
    /// Nicira register reg0..reg15.
    Reg { index: u8, value: u32, mask: Option<u32> },
    /// Tunnel ID (VNI / GRE key).
    TunId { value: u64, mask: Option<u64> },
    /// Tunnel outer source IPv4.
    TunSrc(Ipv4Addr),
    /// Tunnel outer destination IPv4.
    TunDst(Ipv4Addr),
    EthSrc { value: Mac, mask: Option<Mac> },
    EthDst { value: Mac, mask: Option<Mac> },
    EthType(u16),
    ArpOp(u16),
    /// ARP sender protocol address, with an optional prefix mask.
    ArpSpa { value: Ipv4Addr, mask: Option<Ipv4Addr> },
    ArpTpa { value: Ipv4Addr, mask: Option<Ipv4Addr> },
    ArpSha(Mac),
    ArpTha(Mac),
    Ipv4Src { value: Ipv4Addr, mask: Option<Ipv4Addr> },
    Ipv4Dst { value: Ipv4Addr, mask: Option<Ipv4Addr> },
    IpProto(u8),
    /// A field Weft does not model (read back from the switch): the raw OXM/NXM TLV bytes.
    Other(Vec<u8>),
}

impl MatchField {
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
    pub fn push(&mut self, f: MatchField) {
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
    Reg { index: u8, value: u32 },
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
}

/// An OpenFlow group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Group {
    pub id: u32,
    pub kind: GroupType,
    /// Each bucket is a list of actions.
    pub buckets: Vec<Vec<Action>>,
}
