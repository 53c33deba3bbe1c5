//! OXM/NXM match fields: the `ofp_match` structure of OpenFlow 1.5 and the TLVs inside it,
//! plus the field headers used by `set_field` and `move`.
//!
//! Encoding uses the OpenFlow basic class (0x8000) where OpenFlow defines the field and the
//! Nicira class NXM_NX (0x0001) for registers and tunnel IPv4 addresses. Decoding also
//! accepts NXM_OF (0x0000) forms and the OpenFlow 1.5 packet-register class (0x8001, the
//! 64-bit `xreg`s Open vSwitch uses to report `reg0..reg15` in OpenFlow 1.5 flow stats).

use std::net::Ipv4Addr;

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

// NXM_NX (class 1) field numbers.
/// reg0..reg15 are fields 0..15.
const NXM_NX_TUN_ID: u8 = 16;
const NXM_NX_ARP_SHA: u8 = 17;
const NXM_NX_ARP_THA: u8 = 18;
const NXM_NX_TUN_IPV4_SRC: u8 = 31;
const NXM_NX_TUN_IPV4_DST: u8 = 32;

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
        MatchField::Other(raw) => out.extend_from_slice(raw),
    }
    Ok(())
}

/// Appends an `ofp_match` (type OXM, padded to 8 bytes). Prerequisite fields (eth_type,
/// then ip_proto) go first because Open vSwitch checks prerequisites field by field.
pub fn encode_match(out: &mut Vec<u8>, m: &Match) -> Result<(), CodecError> {
    let start = out.len();
    put_u16(out, OFPMT_OXM);
    put_u16(out, 0); // length, patched below
    let rank = |f: &MatchField| match f {
        MatchField::EthType(_) => 0,
        MatchField::IpProto(_) => 1,
        MatchField::Other(_) => 3,
        _ => 2,
    };
    for r in 0..4 {
        for f in m.fields().iter().filter(|f| rank(f) == r) {
            encode_field(out, f)?;
        }
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
    }
    Ok(())
}

/// Decodes the OXM TLV of a `set_field` into the model, `None` when it is not one Weft models
/// (including any masked set_field).
pub fn decode_set_field_tlv(h: &OxmHeader, payload: &[u8]) -> Option<SetField> {
    if h.has_mask {
        return None;
    }
    let fields = decode_known(h, payload)?;
    let [f] = fields.as_slice() else {
        return None;
    };
    Some(match f {
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
