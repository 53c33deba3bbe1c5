//! OXM/NXM match fields: the `ofp_match` structure of OpenFlow 1.5 and the TLVs inside it,
//! plus the field headers used by `set_field` and `move`.
//!
//! Encoding uses the OpenFlow basic class (0x8000) where OpenFlow defines the field and the
//! Nicira class NXM_NX (0x0001) for registers and tunnel IPv4 addresses. Decoding also
//! accepts NXM_OF (0x0000) forms and the OpenFlow 1.5 packet-register class (0x8001, the
//! 64-bit `xreg`s Open vSwitch uses to report `reg0..reg15` in OpenFlow 1.5 flow stats).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::wire::{len16, pad8_from, patch_u16, put_u16, put_u32, Reader};
use super::CodecError;
use crate::flow::{Field, Mac, Match, MatchField, SetField};

pub const OFPXMC_NXM_0: u16 = 0x0000;
pub const OFPXMC_NXM_1: u16 = 0x0001;
pub const OFPXMC_OPENFLOW_BASIC: u16 = 0x8000;
pub const OFPXMC_PACKET_REGS: u16 = 0x8001;
pub const OFPXMC_EXPERIMENTER: u16 = 0xffff;

/// `ofp_match` type for OXM matches.
pub const OFPMT_OXM: u16 = 1;

// OpenFlow basic field numbers.
pub const OFPXMT_IN_PORT: u8 = 0;
pub const OFPXMT_METADATA: u8 = 2;
pub const OFPXMT_ETH_DST: u8 = 3;
pub const OFPXMT_ETH_SRC: u8 = 4;
pub const OFPXMT_ETH_TYPE: u8 = 5;
pub const OFPXMT_IP_PROTO: u8 = 10;
pub const OFPXMT_IPV4_SRC: u8 = 11;
pub const OFPXMT_IPV4_DST: u8 = 12;
pub const OFPXMT_ARP_OP: u8 = 21;
pub const OFPXMT_ARP_SPA: u8 = 22;
pub const OFPXMT_ARP_TPA: u8 = 23;
pub const OFPXMT_ARP_SHA: u8 = 24;
pub const OFPXMT_ARP_THA: u8 = 25;
pub const OFPXMT_TUNNEL_ID: u8 = 38;
pub const OFPXMT_TCP_SRC: u8 = 13;
pub const OFPXMT_TCP_DST: u8 = 14;
pub const OFPXMT_UDP_SRC: u8 = 15;
pub const OFPXMT_UDP_DST: u8 = 16;
pub const OFPXMT_SCTP_SRC: u8 = 17;
pub const OFPXMT_SCTP_DST: u8 = 18;
/// OpenFlow 1.5.
pub const OFPXMT_TCP_FLAGS: u8 = 42;
pub const OFPXMT_ICMPV4_TYPE: u8 = 19;
pub const OFPXMT_ICMPV4_CODE: u8 = 20;
pub const OFPXMT_IPV6_SRC: u8 = 26;
pub const OFPXMT_IPV6_DST: u8 = 27;
pub const OFPXMT_ICMPV6_TYPE: u8 = 29;
pub const OFPXMT_ICMPV6_CODE: u8 = 30;
pub const OFPXMT_IPV6_ND_TARGET: u8 = 31;
pub const OFPXMT_IPV6_ND_SLL: u8 = 32;
pub const OFPXMT_IPV6_ND_TLL: u8 = 33;

// NXM_OF (class 0) field numbers.
const NXM_OF_IN_PORT: u8 = 0;
const NXM_OF_ETH_DST: u8 = 1;
const NXM_OF_ETH_SRC: u8 = 2;
const NXM_OF_ETH_TYPE: u8 = 3;
const NXM_OF_IP_PROTO: u8 = 6;
const NXM_OF_IP_SRC: u8 = 7;
const NXM_OF_IP_DST: u8 = 8;
const NXM_OF_ARP_OP: u8 = 15;
const NXM_OF_ARP_SPA: u8 = 16;
const NXM_OF_ARP_TPA: u8 = 17;
const NXM_OF_TCP_SRC: u8 = 9;
const NXM_OF_TCP_DST: u8 = 10;
const NXM_OF_UDP_SRC: u8 = 11;
const NXM_OF_UDP_DST: u8 = 12;
const NXM_OF_ICMP_TYPE: u8 = 13;
const NXM_OF_ICMP_CODE: u8 = 14;

// NXM_NX (class 1) field numbers.
/// reg0..reg15 are fields 0..15.
const NXM_NX_TUN_ID: u8 = 16;
const NXM_NX_ARP_SHA: u8 = 17;
const NXM_NX_ARP_THA: u8 = 18;
const NXM_NX_TUN_IPV4_SRC: u8 = 31;
const NXM_NX_TUN_IPV4_DST: u8 = 32;
const NXM_NX_IPV6_SRC: u8 = 19;
const NXM_NX_IPV6_DST: u8 = 20;
const NXM_NX_ICMPV6_TYPE: u8 = 21;
const NXM_NX_ICMPV6_CODE: u8 = 22;
const NXM_NX_ND_TARGET: u8 = 23;
const NXM_NX_ND_SLL: u8 = 24;
const NXM_NX_ND_TLL: u8 = 25;
pub const NXM_NX_CONJ_ID: u8 = 37;
/// `nw_ttl`.
pub const NXM_NX_IP_TTL: u8 = 29;
/// `tun_metadata0` is field 40; `tun_metadataN` is 40 + N (N < 64).
pub const NXM_NX_TUN_METADATA0: u8 = 40;
/// Number of `tun_metadata` fields.
pub const N_TUN_METADATA: u8 = 64;
pub const NXM_NX_CT_STATE: u8 = 105;
pub const NXM_NX_CT_ZONE: u8 = 106;
pub const NXM_NX_CT_MARK: u8 = 107;
pub const NXM_NX_CT_LABEL: u8 = 108;
pub const NXM_NX_CT_NW_PROTO: u8 = 119;
pub const NXM_NX_CT_NW_SRC: u8 = 120;
pub const NXM_NX_CT_NW_DST: u8 = 121;
pub const NXM_NX_CT_TP_SRC: u8 = 124;
pub const NXM_NX_CT_TP_DST: u8 = 125;

/// Number of Nicira registers (`reg0..reg15`).
pub const N_REGS: u8 = 16;

/// Builds a 32-bit OXM header.
pub const fn oxm_header(class: u16, field: u8, has_mask: bool, len: u8) -> u32 {
    ((class as u32) << 16) | ((field as u32) << 9) | ((has_mask as u32) << 8) | len as u32
}

/// The parts of an OXM header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OxmHeader {
    pub class: u16,
    pub field: u8,
    pub has_mask: bool,
    /// Payload length in bytes (value, plus mask when `has_mask`).
    pub len: u8,
}

impl OxmHeader {
    pub fn parse(h: u32) -> Self {
        OxmHeader {
            class: (h >> 16) as u16,
            field: ((h >> 9) & 0x7f) as u8,
            has_mask: (h >> 8) & 1 == 1,
            len: (h & 0xff) as u8,
        }
    }
}

fn put_tlv(out: &mut Vec<u8>, class: u16, field: u8, value: &[u8], mask: Option<&[u8]>) {
    let len = value.len() + mask.map_or(0, |m| m.len());
    // Lengths here are at most 16 bytes: the cast cannot truncate.
    put_u32(out, oxm_header(class, field, mask.is_some(), len as u8));
    out.extend_from_slice(value);
    if let Some(m) = mask {
        out.extend_from_slice(m);
    }
}

fn check_reg(index: u8) -> Result<(), CodecError> {
    if index >= N_REGS {
        return Err(CodecError::Unencodable {
            what: "register index",
            value: format!("reg{index} (only reg0..reg15 exist)"),
        });
    }
    Ok(())
}

/// Appends one match field TLV.
pub fn encode_field(out: &mut Vec<u8>, f: &MatchField) -> Result<(), CodecError> {
    const B: u16 = OFPXMC_OPENFLOW_BASIC;
    const NX: u16 = OFPXMC_NXM_1;
    match f {
        MatchField::InPort(p) => put_tlv(out, B, OFPXMT_IN_PORT, &p.to_be_bytes(), None),
        MatchField::Metadata { value, mask } => put_tlv(
            out,
            B,
            OFPXMT_METADATA,
            &value.to_be_bytes(),
            mask.map(u64::to_be_bytes).as_ref().map(|m| &m[..]),
        ),
        MatchField::Reg { index, value, mask } => {
            check_reg(*index)?;
            put_tlv(
                out,
                OFPXMC_NXM_1,
                *index,
                &value.to_be_bytes(),
                mask.map(u32::to_be_bytes).as_ref().map(|m| &m[..]),
            )
        }
        MatchField::TunId { value, mask } => put_tlv(
            out,
            B,
            OFPXMT_TUNNEL_ID,
            &value.to_be_bytes(),
            mask.map(u64::to_be_bytes).as_ref().map(|m| &m[..]),
        ),
        MatchField::TunSrc(ip) => {
            put_tlv(out, OFPXMC_NXM_1, NXM_NX_TUN_IPV4_SRC, &ip.octets(), None)
        }
        MatchField::TunDst(ip) => {
            put_tlv(out, OFPXMC_NXM_1, NXM_NX_TUN_IPV4_DST, &ip.octets(), None)
        }
        MatchField::EthSrc { value, mask } => put_tlv(
            out,
            B,
            OFPXMT_ETH_SRC,
            &value.0,
            mask.as_ref().map(|m| &m.0[..]),
        ),
        MatchField::EthDst { value, mask } => put_tlv(
            out,
            B,
            OFPXMT_ETH_DST,
            &value.0,
            mask.as_ref().map(|m| &m.0[..]),
        ),
        MatchField::EthType(t) => put_tlv(out, B, OFPXMT_ETH_TYPE, &t.to_be_bytes(), None),
        MatchField::ArpOp(op) => put_tlv(out, B, OFPXMT_ARP_OP, &op.to_be_bytes(), None),
        MatchField::ArpSpa { value, mask } => put_tlv(
            out,
            B,
            OFPXMT_ARP_SPA,
            &value.octets(),
            mask.map(|m| m.octets()).as_ref().map(|m| &m[..]),
        ),
        MatchField::ArpTpa { value, mask } => put_tlv(
            out,
            B,
            OFPXMT_ARP_TPA,
            &value.octets(),
            mask.map(|m| m.octets()).as_ref().map(|m| &m[..]),
        ),
        MatchField::ArpSha(m) => put_tlv(out, B, OFPXMT_ARP_SHA, &m.0, None),
        MatchField::ArpTha(m) => put_tlv(out, B, OFPXMT_ARP_THA, &m.0, None),
        MatchField::Ipv4Src { value, mask } => put_tlv(
            out,
            B,
            OFPXMT_IPV4_SRC,
            &value.octets(),
            mask.map(|m| m.octets()).as_ref().map(|m| &m[..]),
        ),
        MatchField::Ipv4Dst { value, mask } => put_tlv(
            out,
            B,
            OFPXMT_IPV4_DST,
            &value.octets(),
            mask.map(|m| m.octets()).as_ref().map(|m| &m[..]),
        ),
        MatchField::IpProto(p) => put_tlv(out, B, OFPXMT_IP_PROTO, &[*p], None),
        MatchField::NwTtl(t) => put_tlv(out, NX, NXM_NX_IP_TTL, &[*t], None),
        MatchField::ConjId(id) => put_tlv(out, NX, NXM_NX_CONJ_ID, &id.to_be_bytes(), None),
        MatchField::CtState { value, mask } => put_tlv(
            out,
            NX,
            NXM_NX_CT_STATE,
            &u32::from(*value).to_be_bytes(),
            mask.map(|m| u32::from(m).to_be_bytes())
                .as_ref()
                .map(|m| &m[..]),
        ),
        MatchField::CtZone(z) => put_tlv(out, NX, NXM_NX_CT_ZONE, &z.to_be_bytes(), None),
        MatchField::CtMark { value, mask } => put_tlv(
            out,
            NX,
            NXM_NX_CT_MARK,
            &value.to_be_bytes(),
            mask.map(u32::to_be_bytes).as_ref().map(|m| &m[..]),
        ),
        MatchField::CtLabel { value, mask } => put_tlv(
            out,
            NX,
            NXM_NX_CT_LABEL,
            &value.to_be_bytes(),
            mask.map(u128::to_be_bytes).as_ref().map(|m| &m[..]),
        ),
        MatchField::CtNwSrc { value, mask } => put_ip(out, NX, NXM_NX_CT_NW_SRC, value, mask),
        MatchField::CtNwDst { value, mask } => put_ip(out, NX, NXM_NX_CT_NW_DST, value, mask),
        MatchField::CtNwProto(p) => put_tlv(out, NX, NXM_NX_CT_NW_PROTO, &[*p], None),
        MatchField::CtTpSrc { value, mask } => put_u16m(out, NX, NXM_NX_CT_TP_SRC, *value, mask),
        MatchField::CtTpDst { value, mask } => put_u16m(out, NX, NXM_NX_CT_TP_DST, *value, mask),
        MatchField::Ipv6Src { value, mask } => put_tlv(
            out,
            B,
            OFPXMT_IPV6_SRC,
            &value.octets(),
            mask.map(|m| m.octets()).as_ref().map(|m| &m[..]),
        ),
        MatchField::Ipv6Dst { value, mask } => put_tlv(
            out,
            B,
            OFPXMT_IPV6_DST,
            &value.octets(),
            mask.map(|m| m.octets()).as_ref().map(|m| &m[..]),
        ),
        MatchField::IcmpType(t) => put_tlv(out, B, OFPXMT_ICMPV4_TYPE, &[*t], None),
        MatchField::IcmpCode(c) => put_tlv(out, B, OFPXMT_ICMPV4_CODE, &[*c], None),
        MatchField::Icmpv6Type(t) => put_tlv(out, B, OFPXMT_ICMPV6_TYPE, &[*t], None),
        MatchField::Icmpv6Code(c) => put_tlv(out, B, OFPXMT_ICMPV6_CODE, &[*c], None),
        MatchField::NdTarget(a) => put_tlv(out, B, OFPXMT_IPV6_ND_TARGET, &a.octets(), None),
        MatchField::NdSll(m) => put_tlv(out, B, OFPXMT_IPV6_ND_SLL, &m.0, None),
        MatchField::NdTll(m) => put_tlv(out, B, OFPXMT_IPV6_ND_TLL, &m.0, None),
        MatchField::TcpSrc { value, mask } => put_u16m(out, B, OFPXMT_TCP_SRC, *value, mask),
        MatchField::TcpDst { value, mask } => put_u16m(out, B, OFPXMT_TCP_DST, *value, mask),
        MatchField::UdpSrc { value, mask } => put_u16m(out, B, OFPXMT_UDP_SRC, *value, mask),
        MatchField::UdpDst { value, mask } => put_u16m(out, B, OFPXMT_UDP_DST, *value, mask),
        MatchField::SctpSrc { value, mask } => put_u16m(out, B, OFPXMT_SCTP_SRC, *value, mask),
        MatchField::SctpDst { value, mask } => put_u16m(out, B, OFPXMT_SCTP_DST, *value, mask),
        MatchField::TcpFlags { value, mask } => put_u16m(out, B, OFPXMT_TCP_FLAGS, *value, mask),
        MatchField::TunMetadata { index, value, mask } => {
            check_tun_metadata(*index, value, mask.as_deref())?;
            put_tlv(
                out,
                NX,
                NXM_NX_TUN_METADATA0 + *index,
                value,
                mask.as_deref(),
            )
        }
        MatchField::Other(raw) => out.extend_from_slice(raw),
    }
    Ok(())
}

fn put_ip(out: &mut Vec<u8>, class: u16, field: u8, v: &Ipv4Addr, m: &Option<Ipv4Addr>) {
    put_tlv(
        out,
        class,
        field,
        &v.octets(),
        m.map(|m| m.octets()).as_ref().map(|m| &m[..]),
    )
}

fn put_u16m(out: &mut Vec<u8>, class: u16, field: u8, v: u16, m: &Option<u16>) {
    put_tlv(
        out,
        class,
        field,
        &v.to_be_bytes(),
        m.map(u16::to_be_bytes).as_ref().map(|m| &m[..]),
    )
}

fn check_tun_metadata(index: u8, value: &[u8], mask: Option<&[u8]>) -> Result<(), CodecError> {
    if index >= N_TUN_METADATA {
        return Err(CodecError::Unencodable {
            what: "tun_metadata index",
            value: format!("tun_metadata{index} (only 0..63 exist)"),
        });
    }
    if value.is_empty() || value.len() > 124 {
        return Err(CodecError::Unencodable {
            what: "tun_metadata value",
            value: format!("{} bytes (must be 1..124)", value.len()),
        });
    }
    if let Some(m) = mask {
        if m.len() != value.len() {
            return Err(CodecError::Unencodable {
                what: "tun_metadata mask",
                value: format!("{} bytes for a {}-byte value", m.len(), value.len()),
            });
        }
    }
    Ok(())
}

/// The position of a field in the match Open vSwitch itself encodes (`nx_put_raw` in
/// lib/nx-match.c): prerequisites come before the fields that need them, and using the same
/// order makes our flow_mods byte-identical to `ovs-ofctl`'s.
fn encode_rank(f: &MatchField) -> u16 {
    use MatchField as F;
    match f {
        F::ConjId(_) => 0,
        F::InPort(_) => 1,
        F::EthSrc { .. } => 2,
        F::EthDst { .. } => 3,
        F::EthType(_) => 4,
        F::Ipv4Src { .. } => 10,
        F::Ipv4Dst { .. } => 11,
        F::Ipv6Src { .. } => 12,
        F::Ipv6Dst { .. } => 13,
        F::NwTtl(_) => 13,
        F::IpProto(_) => 14,
        F::TcpSrc { .. } => 15,
        F::TcpDst { .. } => 16,
        F::UdpSrc { .. } => 17,
        F::UdpDst { .. } => 18,
        F::SctpSrc { .. } => 26,
        F::SctpDst { .. } => 27,
        F::TcpFlags { .. } => 28,
        F::IcmpType(_) => 19,
        F::IcmpCode(_) => 20,
        F::Icmpv6Type(_) => 21,
        F::Icmpv6Code(_) => 22,
        F::NdTarget(_) => 23,
        F::NdSll(_) => 24,
        F::NdTll(_) => 25,
        F::ArpOp(_) => 30,
        F::ArpSpa { .. } => 31,
        F::ArpTpa { .. } => 32,
        F::ArpSha(_) => 33,
        F::ArpTha(_) => 34,
        F::TunId { .. } => 40,
        F::TunSrc(_) => 41,
        F::TunDst(_) => 42,
        F::TunMetadata { index, .. } => 50 + u16::from(*index),
        F::Reg { index, .. } => 120 + u16::from(*index),
        F::CtState { .. } => 140,
        F::CtZone(_) => 141,
        F::CtMark { .. } => 142,
        F::CtLabel { .. } => 143,
        F::CtNwSrc { .. } => 144,
        F::CtNwDst { .. } => 145,
        F::CtNwProto(_) => 146,
        F::CtTpSrc { .. } => 147,
        F::CtTpDst { .. } => 148,
        F::Metadata { .. } => 150,
        F::Other(_) => 1000,
    }
}

/// Appends an `ofp_match` (type OXM, padded to 8 bytes), fields in Open vSwitch's own order
/// (`nx_put_raw` in lib/nx-match.c).
pub fn encode_match(out: &mut Vec<u8>, m: &Match) -> Result<(), CodecError> {
    let start = out.len();
    put_u16(out, OFPMT_OXM);
    put_u16(out, 0); // length, patched below
    let mut fields: Vec<&MatchField> = m.fields().iter().collect();
    fields.sort_by_key(|f| encode_rank(f));
    for f in fields {
        encode_field(out, f)?;
    }
    let len = len16(out.len() - start, "match")?;
    patch_u16(out, start + 2, len);
    pad8_from(out, start);
    Ok(())
}

/// Decodes an `ofp_match` at the reader's position, consuming it and its padding.
pub(crate) fn decode_match(r: &mut Reader<'_>) -> Result<Match, CodecError> {
    let mtype = r.u16()?;
    let len = usize::from(r.u16()?);
    if mtype != OFPMT_OXM {
        return Err(CodecError::Invalid {
            what: "ofp_match type",
            value: u64::from(mtype),
        });
    }
    if len < 4 {
        return Err(CodecError::BadLength {
            what: "ofp_match",
            len,
        });
    }
    let mut body = r.sub(len - 4, "ofp_match fields")?;
    // Padding to 8 bytes; tolerate a missing pad at the very end of a buffer.
    let pad = super::wire::round8(len) - len;
    r.skip(pad.min(r.remaining()))?;
    let mut fields = Vec::new();
    while !body.is_empty() {
        decode_tlv(&mut body, &mut fields)?;
    }
    Ok(Match::from_fields(fields))
}

/// Decodes bare OXM/NXM TLVs filling the reader (no `ofp_match` header), as in the
/// packet-in2 metadata property.
pub(crate) fn decode_fields(r: &mut Reader<'_>) -> Result<Match, CodecError> {
    let mut fields = Vec::new();
    while !r.is_empty() {
        decode_tlv(r, &mut fields)?;
    }
    Ok(Match::from_fields(fields))
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}
fn mac(b: &[u8]) -> Mac {
    Mac([b[0], b[1], b[2], b[3], b[4], b[5]])
}
fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be_u128(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u128::from_be_bytes(a)
}
fn ip6(b: &[u8]) -> Ipv6Addr {
    Ipv6Addr::from(be_u128(b))
}
fn u16m(h: &OxmHeader, payload: &[u8]) -> Option<(u16, Option<u16>)> {
    let (v, m) = split(h, payload, 2)?;
    Some((be_u16(&v), m.map(|m| be_u16(&m))))
}
fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Splits a TLV payload into value and optional mask, checking the value width.
fn split(h: &OxmHeader, payload: &[u8], width: usize) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if h.has_mask {
        (payload.len() == 2 * width)
            .then(|| (payload[..width].to_vec(), Some(payload[width..].to_vec())))
    } else {
        (payload.len() == width).then(|| (payload.to_vec(), None))
    }
}

/// Decodes one TLV and pushes the field(s) it describes.
fn decode_tlv(r: &mut Reader<'_>, out: &mut Vec<MatchField>) -> Result<(), CodecError> {
    let start = *r;
    let h = OxmHeader::parse(r.u32()?);
    let payload = r.bytes(usize::from(h.len))?;
    let raw = &start.rest()[..4 + usize::from(h.len)];
    match decode_known(&h, payload) {
        Some(fields) => out.extend(fields),
        None => out.push(MatchField::Other(raw.to_vec())),
    }
    Ok(())
}

fn decode_known(h: &OxmHeader, payload: &[u8]) -> Option<Vec<MatchField>> {
    use MatchField as F;
    let one = |f: MatchField| Some(vec![f]);
    match (h.class, h.field) {
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_IN_PORT) => {
            let (v, m) = split(h, payload, 4)?;
            if m.is_some() {
                return None;
            }
            one(F::InPort(be_u32(&v)))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_METADATA) => {
            let (v, m) = split(h, payload, 8)?;
            one(F::Metadata {
                value: be_u64(&v),
                mask: m.map(|m| be_u64(&m)),
            })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_TUNNEL_ID) | (OFPXMC_NXM_1, NXM_NX_TUN_ID) => {
            let (v, m) = split(h, payload, 8)?;
            one(F::TunId {
                value: be_u64(&v),
                mask: m.map(|m| be_u64(&m)),
            })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ETH_DST) | (OFPXMC_NXM_0, NXM_OF_ETH_DST) => {
            let (v, m) = split(h, payload, 6)?;
            one(F::EthDst {
                value: mac(&v),
                mask: m.map(|m| mac(&m)),
            })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ETH_SRC) | (OFPXMC_NXM_0, NXM_OF_ETH_SRC) => {
            let (v, m) = split(h, payload, 6)?;
            one(F::EthSrc {
                value: mac(&v),
                mask: m.map(|m| mac(&m)),
            })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ETH_TYPE) | (OFPXMC_NXM_0, NXM_OF_ETH_TYPE) => {
            let (v, m) = split(h, payload, 2)?;
            if m.is_some() {
                return None;
            }
            one(F::EthType(be_u16(&v)))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_IP_PROTO) | (OFPXMC_NXM_0, NXM_OF_IP_PROTO) => {
            let (v, m) = split(h, payload, 1)?;
            if m.is_some() {
                return None;
            }
            one(F::IpProto(v[0]))
        }
        (OFPXMC_NXM_1, NXM_NX_IP_TTL) => {
            let (v, m) = split(h, payload, 1)?;
            if m.is_some() {
                return None;
            }
            one(F::NwTtl(v[0]))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_IPV4_SRC) | (OFPXMC_NXM_0, NXM_OF_IP_SRC) => {
            let (v, m) = split(h, payload, 4)?;
            one(F::Ipv4Src {
                value: ip(&v),
                mask: m.map(|m| ip(&m)),
            })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_IPV4_DST) | (OFPXMC_NXM_0, NXM_OF_IP_DST) => {
            let (v, m) = split(h, payload, 4)?;
            one(F::Ipv4Dst {
                value: ip(&v),
                mask: m.map(|m| ip(&m)),
            })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ARP_OP) | (OFPXMC_NXM_0, NXM_OF_ARP_OP) => {
            let (v, m) = split(h, payload, 2)?;
            if m.is_some() {
                return None;
            }
            one(F::ArpOp(be_u16(&v)))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ARP_SPA) | (OFPXMC_NXM_0, NXM_OF_ARP_SPA) => {
            let (v, m) = split(h, payload, 4)?;
            one(F::ArpSpa {
                value: ip(&v),
                mask: m.map(|m| ip(&m)),
            })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ARP_TPA) | (OFPXMC_NXM_0, NXM_OF_ARP_TPA) => {
            let (v, m) = split(h, payload, 4)?;
            one(F::ArpTpa {
                value: ip(&v),
                mask: m.map(|m| ip(&m)),
            })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ARP_SHA) | (OFPXMC_NXM_1, NXM_NX_ARP_SHA) => {
            let (v, m) = split(h, payload, 6)?;
            full_mask_only(m.as_deref())?;
            one(F::ArpSha(mac(&v)))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ARP_THA) | (OFPXMC_NXM_1, NXM_NX_ARP_THA) => {
            let (v, m) = split(h, payload, 6)?;
            full_mask_only(m.as_deref())?;
            one(F::ArpTha(mac(&v)))
        }
        (OFPXMC_NXM_0, NXM_OF_IN_PORT) => {
            let (v, m) = split(h, payload, 2)?;
            if m.is_some() {
                return None;
            }
            let p = be_u16(&v);
            // 16-bit reserved ports 0xfff8.. map to the 32-bit ones 0xfffffff8..
            let p32 = if p >= 0xfff8 {
                0xffff_0000 | u32::from(p)
            } else {
                u32::from(p)
            };
            one(F::InPort(p32))
        }
        (OFPXMC_NXM_1, NXM_NX_TUN_IPV4_SRC) => {
            let (v, m) = split(h, payload, 4)?;
            full_mask_only(m.as_deref())?;
            one(F::TunSrc(ip(&v)))
        }
        (OFPXMC_NXM_1, NXM_NX_TUN_IPV4_DST) => {
            let (v, m) = split(h, payload, 4)?;
            full_mask_only(m.as_deref())?;
            one(F::TunDst(ip(&v)))
        }
        (OFPXMC_NXM_1, i) if i < N_REGS => {
            let (v, m) = split(h, payload, 4)?;
            one(F::Reg {
                index: i,
                value: be_u32(&v),
                mask: m.map(|m| be_u32(&m)),
            })
        }
        (OFPXMC_NXM_1, NXM_NX_CONJ_ID) => {
            let (v, m) = split(h, payload, 4)?;
            full_mask_only(m.as_deref())?;
            one(F::ConjId(be_u32(&v)))
        }
        (OFPXMC_NXM_1, NXM_NX_CT_STATE) => {
            let (v, m) = split(h, payload, 4)?;
            let v = u8::try_from(be_u32(&v)).ok()?;
            // OVS keeps 8 state bits; a wider mask is the same match.
            let m = m.map(|m| (be_u32(&m) & 0xff) as u8);
            one(F::CtState { value: v, mask: m })
        }
        (OFPXMC_NXM_1, NXM_NX_CT_ZONE) => {
            let (v, m) = split(h, payload, 2)?;
            full_mask_only(m.as_deref())?;
            one(F::CtZone(be_u16(&v)))
        }
        (OFPXMC_NXM_1, NXM_NX_CT_MARK) => {
            let (v, m) = split(h, payload, 4)?;
            one(F::CtMark {
                value: be_u32(&v),
                mask: m.map(|m| be_u32(&m)),
            })
        }
        (OFPXMC_NXM_1, NXM_NX_CT_LABEL) => {
            let (v, m) = split(h, payload, 16)?;
            one(F::CtLabel {
                value: be_u128(&v),
                mask: m.map(|m| be_u128(&m)),
            })
        }
        (OFPXMC_NXM_1, NXM_NX_CT_NW_SRC) => {
            let (v, m) = split(h, payload, 4)?;
            one(F::CtNwSrc {
                value: ip(&v),
                mask: m.map(|m| ip(&m)),
            })
        }
        (OFPXMC_NXM_1, NXM_NX_CT_NW_DST) => {
            let (v, m) = split(h, payload, 4)?;
            one(F::CtNwDst {
                value: ip(&v),
                mask: m.map(|m| ip(&m)),
            })
        }
        (OFPXMC_NXM_1, NXM_NX_CT_NW_PROTO) => {
            let (v, m) = split(h, payload, 1)?;
            full_mask_only(m.as_deref())?;
            one(F::CtNwProto(v[0]))
        }
        (OFPXMC_NXM_1, NXM_NX_CT_TP_SRC) => {
            let (value, mask) = u16m(h, payload)?;
            one(F::CtTpSrc { value, mask })
        }
        (OFPXMC_NXM_1, NXM_NX_CT_TP_DST) => {
            let (value, mask) = u16m(h, payload)?;
            one(F::CtTpDst { value, mask })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_IPV6_SRC) | (OFPXMC_NXM_1, NXM_NX_IPV6_SRC) => {
            let (v, m) = split(h, payload, 16)?;
            one(F::Ipv6Src {
                value: ip6(&v),
                mask: m.map(|m| ip6(&m)),
            })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_IPV6_DST) | (OFPXMC_NXM_1, NXM_NX_IPV6_DST) => {
            let (v, m) = split(h, payload, 16)?;
            one(F::Ipv6Dst {
                value: ip6(&v),
                mask: m.map(|m| ip6(&m)),
            })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ICMPV4_TYPE) | (OFPXMC_NXM_0, NXM_OF_ICMP_TYPE) => {
            let (v, m) = split(h, payload, 1)?;
            full_mask_only(m.as_deref())?;
            one(F::IcmpType(v[0]))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ICMPV4_CODE) | (OFPXMC_NXM_0, NXM_OF_ICMP_CODE) => {
            let (v, m) = split(h, payload, 1)?;
            full_mask_only(m.as_deref())?;
            one(F::IcmpCode(v[0]))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ICMPV6_TYPE) | (OFPXMC_NXM_1, NXM_NX_ICMPV6_TYPE) => {
            let (v, m) = split(h, payload, 1)?;
            full_mask_only(m.as_deref())?;
            one(F::Icmpv6Type(v[0]))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_ICMPV6_CODE) | (OFPXMC_NXM_1, NXM_NX_ICMPV6_CODE) => {
            let (v, m) = split(h, payload, 1)?;
            full_mask_only(m.as_deref())?;
            one(F::Icmpv6Code(v[0]))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_IPV6_ND_TARGET) | (OFPXMC_NXM_1, NXM_NX_ND_TARGET) => {
            let (v, m) = split(h, payload, 16)?;
            full_mask_only(m.as_deref())?;
            one(F::NdTarget(ip6(&v)))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_IPV6_ND_SLL) | (OFPXMC_NXM_1, NXM_NX_ND_SLL) => {
            let (v, m) = split(h, payload, 6)?;
            full_mask_only(m.as_deref())?;
            one(F::NdSll(mac(&v)))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_IPV6_ND_TLL) | (OFPXMC_NXM_1, NXM_NX_ND_TLL) => {
            let (v, m) = split(h, payload, 6)?;
            full_mask_only(m.as_deref())?;
            one(F::NdTll(mac(&v)))
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_TCP_SRC) | (OFPXMC_NXM_0, NXM_OF_TCP_SRC) => {
            let (value, mask) = u16m(h, payload)?;
            one(F::TcpSrc { value, mask })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_TCP_DST) | (OFPXMC_NXM_0, NXM_OF_TCP_DST) => {
            let (value, mask) = u16m(h, payload)?;
            one(F::TcpDst { value, mask })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_UDP_SRC) | (OFPXMC_NXM_0, NXM_OF_UDP_SRC) => {
            let (value, mask) = u16m(h, payload)?;
            one(F::UdpSrc { value, mask })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_UDP_DST) | (OFPXMC_NXM_0, NXM_OF_UDP_DST) => {
            let (value, mask) = u16m(h, payload)?;
            one(F::UdpDst { value, mask })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_SCTP_SRC) => {
            let (value, mask) = u16m(h, payload)?;
            one(F::SctpSrc { value, mask })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_SCTP_DST) => {
            let (value, mask) = u16m(h, payload)?;
            one(F::SctpDst { value, mask })
        }
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_TCP_FLAGS) => {
            let (value, mask) = u16m(h, payload)?;
            one(F::TcpFlags { value, mask })
        }
        (OFPXMC_NXM_1, f)
            if (NXM_NX_TUN_METADATA0..NXM_NX_TUN_METADATA0 + N_TUN_METADATA).contains(&f) =>
        {
            let n = usize::from(h.len);
            let width = if h.has_mask { n / 2 } else { n };
            if width == 0 || (h.has_mask && n % 2 != 0) {
                return None;
            }
            let (v, m) = split(h, payload, width)?;
            one(F::TunMetadata {
                index: f - NXM_NX_TUN_METADATA0,
                value: v,
                mask: m,
            })
        }
        (OFPXMC_PACKET_REGS, x) if x < N_REGS / 2 => {
            // xreg N = reg(2N) in the high half, reg(2N+1) in the low half.
            let (v, m) = split(h, payload, 8)?;
            let v = be_u64(&v);
            let m = m.map_or(u64::MAX, |m| be_u64(&m));
            let mut fields = Vec::new();
            for (index, shift) in [(2 * x, 32), (2 * x + 1, 0)] {
                let value = (v >> shift) as u32;
                let mask = (m >> shift) as u32;
                if mask != 0 {
                    fields.push(F::Reg {
                        index,
                        value,
                        mask: (mask != u32::MAX).then_some(mask),
                    });
                }
            }
            Some(fields)
        }
        _ => None,
    }
}

/// `Some(())` when there is no mask or the mask is all ones (the model has no mask there).
fn full_mask_only(m: Option<&[u8]>) -> Option<()> {
    match m {
        Some(m) if m.iter().any(|b| *b != 0xff) => None,
        _ => Some(()),
    }
}

/// The OXM TLV (header and value) a `set_field` action carries.
pub fn encode_set_field_tlv(out: &mut Vec<u8>, sf: &SetField) -> Result<(), CodecError> {
    const B: u16 = OFPXMC_OPENFLOW_BASIC;
    match sf {
        SetField::EthSrc(m) => put_tlv(out, B, OFPXMT_ETH_SRC, &m.0, None),
        SetField::EthDst(m) => put_tlv(out, B, OFPXMT_ETH_DST, &m.0, None),
        SetField::ArpOp(op) => put_tlv(out, B, OFPXMT_ARP_OP, &op.to_be_bytes(), None),
        SetField::ArpSha(m) => put_tlv(out, B, OFPXMT_ARP_SHA, &m.0, None),
        SetField::ArpTha(m) => put_tlv(out, B, OFPXMT_ARP_THA, &m.0, None),
        SetField::ArpSpa(a) => put_tlv(out, B, OFPXMT_ARP_SPA, &a.octets(), None),
        SetField::ArpTpa(a) => put_tlv(out, B, OFPXMT_ARP_TPA, &a.octets(), None),
        SetField::Reg { index, value } => {
            check_reg(*index)?;
            put_tlv(out, OFPXMC_NXM_1, *index, &value.to_be_bytes(), None)
        }
        SetField::Metadata(v) => put_tlv(out, B, OFPXMT_METADATA, &v.to_be_bytes(), None),
        SetField::TunId(v) => put_tlv(out, B, OFPXMT_TUNNEL_ID, &v.to_be_bytes(), None),
        SetField::TunDst(a) => put_tlv(out, OFPXMC_NXM_1, NXM_NX_TUN_IPV4_DST, &a.octets(), None),
        SetField::RegMasked { index, value, mask } => {
            check_reg(*index)?;
            put_tlv(
                out,
                OFPXMC_NXM_1,
                *index,
                &value.to_be_bytes(),
                Some(&mask.to_be_bytes()),
            )
        }
        SetField::MetadataMasked { value, mask } => put_tlv(
            out,
            B,
            OFPXMT_METADATA,
            &value.to_be_bytes(),
            Some(&mask.to_be_bytes()),
        ),
        SetField::CtMark { value, mask } => encode_field(
            out,
            &MatchField::CtMark {
                value: *value,
                mask: *mask,
            },
        )?,
        SetField::CtLabel { value, mask } => encode_field(
            out,
            &MatchField::CtLabel {
                value: *value,
                mask: *mask,
            },
        )?,
        SetField::TunSrc(a) => put_tlv(out, OFPXMC_NXM_1, NXM_NX_TUN_IPV4_SRC, &a.octets(), None),
        SetField::Ipv4Src(a) => put_tlv(out, B, OFPXMT_IPV4_SRC, &a.octets(), None),
        SetField::Ipv4Dst(a) => put_tlv(out, B, OFPXMT_IPV4_DST, &a.octets(), None),
        SetField::Ipv6Src(a) => put_tlv(out, B, OFPXMT_IPV6_SRC, &a.octets(), None),
        SetField::Ipv6Dst(a) => put_tlv(out, B, OFPXMT_IPV6_DST, &a.octets(), None),
        SetField::NdTarget(a) => put_tlv(out, B, OFPXMT_IPV6_ND_TARGET, &a.octets(), None),
        SetField::NdSll(m) => put_tlv(out, B, OFPXMT_IPV6_ND_SLL, &m.0, None),
        SetField::NdTll(m) => put_tlv(out, B, OFPXMT_IPV6_ND_TLL, &m.0, None),
        SetField::Icmpv6Type(t) => put_tlv(out, B, OFPXMT_ICMPV6_TYPE, &[*t], None),
        SetField::IcmpType(t) => put_tlv(out, B, OFPXMT_ICMPV4_TYPE, &[*t], None),
        SetField::Icmpv6Code(c) => put_tlv(out, B, OFPXMT_ICMPV6_CODE, &[*c], None),
        SetField::TunMetadata { index, value, mask } => encode_field(
            out,
            &MatchField::TunMetadata {
                index: *index,
                value: value.clone(),
                mask: mask.clone(),
            },
        )?,
    }
    Ok(())
}

/// Decodes the OXM TLV of a `set_field` into the model, `None` when it is not one Weft models
/// (including any masked set_field).
pub fn decode_set_field_tlv(h: &OxmHeader, payload: &[u8]) -> Option<SetField> {
    let fields = decode_known(h, payload)?;
    let [f] = fields.as_slice() else {
        return None;
    };
    if h.has_mask {
        // Masked set_field: only where the model has a mask. A full mask is the plain form.
        let full = |m: &[u8]| m.iter().all(|b| *b == 0xff);
        let mask_bytes = &payload[payload.len() / 2..];
        if full(mask_bytes) {
            let plain = OxmHeader {
                has_mask: false,
                len: h.len / 2,
                ..*h
            };
            return decode_set_field_tlv(&plain, &payload[..payload.len() / 2]);
        }
        return Some(match f {
            MatchField::Reg {
                index,
                value,
                mask: Some(mask),
            } => SetField::RegMasked {
                index: *index,
                value: *value,
                mask: *mask,
            },
            MatchField::Metadata {
                value,
                mask: Some(mask),
            } => SetField::MetadataMasked {
                value: *value,
                mask: *mask,
            },
            MatchField::CtMark { value, mask } => SetField::CtMark {
                value: *value,
                mask: *mask,
            },
            MatchField::CtLabel { value, mask } => SetField::CtLabel {
                value: *value,
                mask: *mask,
            },
            MatchField::TunMetadata { index, value, mask } => SetField::TunMetadata {
                index: *index,
                value: value.clone(),
                mask: mask.clone(),
            },
            _ => return None,
        });
    }
    Some(match f {
        MatchField::CtMark { value, mask: None } => SetField::CtMark {
            value: *value,
            mask: None,
        },
        MatchField::CtLabel { value, mask: None } => SetField::CtLabel {
            value: *value,
            mask: None,
        },
        // OVS reports a tun_metadata set_field with its minimal length (leading zero bytes
        // dropped); that is the canonical form of the model.
        MatchField::TunMetadata {
            index,
            value,
            mask: None,
        } => {
            let first = value
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(value.len() - 1);
            SetField::TunMetadata {
                index: *index,
                value: value[first..].to_vec(),
                mask: None,
            }
        }
        MatchField::TunSrc(a) => SetField::TunSrc(*a),
        MatchField::Ipv4Src { value, mask: None } => SetField::Ipv4Src(*value),
        MatchField::Ipv4Dst { value, mask: None } => SetField::Ipv4Dst(*value),
        MatchField::Ipv6Src { value, mask: None } => SetField::Ipv6Src(*value),
        MatchField::Ipv6Dst { value, mask: None } => SetField::Ipv6Dst(*value),
        MatchField::NdTarget(a) => SetField::NdTarget(*a),
        MatchField::NdSll(m) => SetField::NdSll(*m),
        MatchField::NdTll(m) => SetField::NdTll(*m),
        MatchField::Icmpv6Type(t) => SetField::Icmpv6Type(*t),
        MatchField::IcmpType(t) => SetField::IcmpType(*t),
        MatchField::Icmpv6Code(c) => SetField::Icmpv6Code(*c),
        MatchField::EthSrc { value, mask: None } => SetField::EthSrc(*value),
        MatchField::EthDst { value, mask: None } => SetField::EthDst(*value),
        MatchField::ArpOp(op) => SetField::ArpOp(*op),
        MatchField::ArpSha(m) => SetField::ArpSha(*m),
        MatchField::ArpTha(m) => SetField::ArpTha(*m),
        MatchField::ArpSpa { value, mask: None } => SetField::ArpSpa(*value),
        MatchField::ArpTpa { value, mask: None } => SetField::ArpTpa(*value),
        MatchField::Reg {
            index,
            value,
            mask: None,
        } => SetField::Reg {
            index: *index,
            value: *value,
        },
        MatchField::Metadata { value, mask: None } => SetField::Metadata(*value),
        MatchField::TunId { value, mask: None } => SetField::TunId(*value),
        MatchField::TunDst(a) => SetField::TunDst(*a),
        _ => return None,
    })
}

/// The header (without mask bit) naming a whole field in `copy_field`: the OpenFlow basic
/// OXM where one exists (as Open vSwitch itself encodes it), else the Nicira NXM_NX one.
pub fn field_header(f: Field) -> Result<u32, CodecError> {
    const B: u16 = OFPXMC_OPENFLOW_BASIC;
    Ok(match f {
        Field::EthSrc => oxm_header(B, OFPXMT_ETH_SRC, false, 6),
        Field::EthDst => oxm_header(B, OFPXMT_ETH_DST, false, 6),
        Field::Ipv4Src => oxm_header(B, OFPXMT_IPV4_SRC, false, 4),
        Field::Ipv4Dst => oxm_header(B, OFPXMT_IPV4_DST, false, 4),
        Field::ArpSha => oxm_header(B, OFPXMT_ARP_SHA, false, 6),
        Field::ArpTha => oxm_header(B, OFPXMT_ARP_THA, false, 6),
        Field::ArpSpa => oxm_header(B, OFPXMT_ARP_SPA, false, 4),
        Field::ArpTpa => oxm_header(B, OFPXMT_ARP_TPA, false, 4),
        Field::Reg(i) => {
            check_reg(i)?;
            oxm_header(OFPXMC_NXM_1, i, false, 4)
        }
        Field::Metadata => oxm_header(B, OFPXMT_METADATA, false, 8),
        Field::TunId => oxm_header(B, OFPXMT_TUNNEL_ID, false, 8),
        Field::TunDst => oxm_header(OFPXMC_NXM_1, NXM_NX_TUN_IPV4_DST, false, 4),
        Field::InPort => oxm_header(B, OFPXMT_IN_PORT, false, 4),
    })
}

/// The whole field a `move`/`copy_field` header names (NXM or OXM form), if Weft models it.
pub fn header_field(h: u32) -> Option<Field> {
    let h = OxmHeader::parse(h);
    if h.has_mask {
        return None;
    }
    Some(match (h.class, h.field, h.len) {
        (OFPXMC_NXM_0, NXM_OF_ETH_SRC, 6) | (OFPXMC_OPENFLOW_BASIC, OFPXMT_ETH_SRC, 6) => {
            Field::EthSrc
        }
        (OFPXMC_NXM_0, NXM_OF_ETH_DST, 6) | (OFPXMC_OPENFLOW_BASIC, OFPXMT_ETH_DST, 6) => {
            Field::EthDst
        }
        (OFPXMC_NXM_0, 7, 4) | (OFPXMC_OPENFLOW_BASIC, OFPXMT_IPV4_SRC, 4) => Field::Ipv4Src,
        (OFPXMC_NXM_0, 8, 4) | (OFPXMC_OPENFLOW_BASIC, OFPXMT_IPV4_DST, 4) => Field::Ipv4Dst,
        (OFPXMC_NXM_1, NXM_NX_ARP_SHA, 6) | (OFPXMC_OPENFLOW_BASIC, OFPXMT_ARP_SHA, 6) => {
            Field::ArpSha
        }
        (OFPXMC_NXM_1, NXM_NX_ARP_THA, 6) | (OFPXMC_OPENFLOW_BASIC, OFPXMT_ARP_THA, 6) => {
            Field::ArpTha
        }
        (OFPXMC_NXM_0, NXM_OF_ARP_SPA, 4) | (OFPXMC_OPENFLOW_BASIC, OFPXMT_ARP_SPA, 4) => {
            Field::ArpSpa
        }
        (OFPXMC_NXM_0, NXM_OF_ARP_TPA, 4) | (OFPXMC_OPENFLOW_BASIC, OFPXMT_ARP_TPA, 4) => {
            Field::ArpTpa
        }
        (OFPXMC_NXM_1, i, 4) if i < N_REGS => Field::Reg(i),
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_METADATA, 8) => Field::Metadata,
        (OFPXMC_NXM_1, NXM_NX_TUN_ID, 8) | (OFPXMC_OPENFLOW_BASIC, OFPXMT_TUNNEL_ID, 8) => {
            Field::TunId
        }
        (OFPXMC_NXM_1, NXM_NX_TUN_IPV4_DST, 4) => Field::TunDst,
        (OFPXMC_OPENFLOW_BASIC, OFPXMT_IN_PORT, 4) => Field::InPort,
        _ => return None,
    })
}

/// The `set_field` equivalent of an NXAST_REG_LOAD of `value` into the whole field `dst`.
pub(crate) fn set_field_from_load(dst: u32, value: u64) -> Option<SetField> {
    let h = OxmHeader::parse(dst);
    let width = usize::from(h.len);
    if h.has_mask || width == 0 || width > 8 {
        return None;
    }
    if width < 8 && value >> (width * 8) != 0 {
        return None;
    }
    let bytes = value.to_be_bytes();
    decode_set_field_tlv(&h, &bytes[8 - width..])
}

/// Convenience for tests and callers: encode a single field TLV into a fresh buffer.
pub fn field_tlv(f: &MatchField) -> Result<Vec<u8>, CodecError> {
    let mut v = Vec::new();
    encode_field(&mut v, f)?;
    Ok(v)
}
