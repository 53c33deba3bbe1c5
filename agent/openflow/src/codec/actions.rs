//! Actions and instructions: OpenFlow 1.5 `output`, `group`, `set_field`, `copy_field`,
//! `dec_nw_ttl`, `meter`; the Nicira `ct` (with nested `nat` and `exec` actions),
//! `ct_clear`, `conjunction`, `controller2` and `learn` actions;
//! (how [`Action::Move`] is encoded: Open vSwitch rejects NXAST_REG_MOVE in OpenFlow 1.5 with
//! OFPBAC_BAD_EXP_TYPE), the Nicira NXAST_RESUBMIT_TABLE, decoding of NXAST_REG_MOVE,
//! NXAST_REG_LOAD and NXAST_REG_LOAD2, and the `apply_actions` / `goto_table` instructions.
//!
//! Encoding puts every [`Action`] except [`Action::GotoTable`] into one `apply_actions`
//! instruction, followed by `goto_table`. Decoding reverses that; anything unknown becomes
//! [`Action::Other`] with its raw bytes. A raw instruction (not an action) is recognisable
//! because its type is 1..=7, which no OpenFlow 1.1+ action uses.

use super::nxm;
use super::oxm::{
    decode_set_field_tlv, encode_set_field_tlv, field_header, header_field, set_field_from_load,
    OxmHeader,
};
use super::wire::put_u64;
use super::wire::{len16, pad8_from, patch_u16, put_u16, put_u32, put_u8, put_zeros, Reader};
use super::CodecError;
use crate::flow::{
    ports, Action, Controller, Ct, CtZone, Learn, LearnSpec, Nat, NatKind, SubField,
};
use crate::render::field_width;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const OFPAT_OUTPUT: u16 = 0;
pub const OFPAT_GROUP: u16 = 22;
pub const OFPAT_SET_FIELD: u16 = 25;
pub const OFPAT_COPY_FIELD: u16 = 28;
pub const OFPAT_DEC_NW_TTL: u16 = 24;
pub const OFPAT_METER: u16 = 29;
pub const OFPAT_EXPERIMENTER: u16 = 0xffff;

pub const OFPIT_GOTO_TABLE: u16 = 1;
pub const OFPIT_APPLY_ACTIONS: u16 = 4;

/// Nicira's experimenter ID.
pub const NX_VENDOR_ID: u32 = 0x0000_2320;
pub const NXAST_RESUBMIT: u16 = 1;
pub const NXAST_REG_MOVE: u16 = 6;
pub const NXAST_REG_LOAD: u16 = 7;
pub const NXAST_RESUBMIT_TABLE: u16 = 14;
pub const NXAST_REG_LOAD2: u16 = 33;
pub const NXAST_LEARN: u16 = 16;
pub const NXAST_CONTROLLER: u16 = 20;
pub const NXAST_CONJUNCTION: u16 = 34;
pub const NXAST_CT: u16 = 35;
pub const NXAST_NAT: u16 = 36;
pub const NXAST_CONTROLLER2: u16 = 37;
pub const NXAST_CT_CLEAR: u16 = 43;
pub const NXAST_CHECK_PKT_LARGER: u16 = 49;

/// `ct(table=...)` value meaning "do not recirculate".
const NX_CT_RECIRC_NONE: u8 = 0xff;
const NX_CT_F_COMMIT: u16 = 1;
const NX_CT_F_FORCE: u16 = 2;
const NX_NAT_F_SRC: u16 = 1;
const NX_NAT_F_DST: u16 = 2;
const NX_NAT_F_PERSISTENT: u16 = 4;
const NX_NAT_F_PROTO_HASH: u16 = 8;
const NX_NAT_F_PROTO_RANDOM: u16 = 16;
const NX_NAT_RANGE_IPV4_MIN: u16 = 1;
const NX_NAT_RANGE_IPV4_MAX: u16 = 2;
const NX_NAT_RANGE_IPV6_MIN: u16 = 4;
const NX_NAT_RANGE_IPV6_MAX: u16 = 8;
const NX_NAT_RANGE_PROTO_MIN: u16 = 16;
const NX_NAT_RANGE_PROTO_MAX: u16 = 32;
/// NXAC2PT_* controller2 property types.
const NXAC2PT_MAX_LEN: u16 = 0;
const NXAC2PT_CONTROLLER_ID: u16 = 1;
const NXAC2PT_REASON: u16 = 2;
const NXAC2PT_USERDATA: u16 = 3;
const NXAC2PT_PAUSE: u16 = 4;
const NXAC2PT_METER_ID: u16 = 5;
/// Learn spec header bits.
const NX_LEARN_SRC_IMMEDIATE: u16 = 1 << 13;
const NX_LEARN_DST_LOAD: u16 = 1 << 11;
const NX_LEARN_DST_OUTPUT: u16 = 2 << 11;
const NX_LEARN_DST_MASK: u16 = 3 << 11;
const NX_LEARN_N_BITS_MASK: u16 = 0x3ff;

/// 16-bit `OFPP_IN_PORT`, used by `resubmit(,TABLE)` to mean "keep the in_port".
const OFPP_IN_PORT_16: u16 = 0xfff8;
/// `max_len` for output to the controller: send the whole packet.
const OFPCML_NO_BUFFER: u16 = 0xffff;

/// Whether a raw `Other` blob is an instruction rather than an action.
fn is_raw_instruction(raw: &[u8]) -> bool {
    raw.len() >= 2 && matches!(u16::from_be_bytes([raw[0], raw[1]]), 1..=7)
}

/// Appends one action.
pub fn encode_action(out: &mut Vec<u8>, a: &Action) -> Result<(), CodecError> {
    let start = out.len();
    match a {
        Action::Output(port) => {
            put_u16(out, OFPAT_OUTPUT);
            put_u16(out, 16);
            put_u32(out, *port);
            put_u16(
                out,
                if *port == ports::CONTROLLER {
                    OFPCML_NO_BUFFER
                } else {
                    0
                },
            );
            put_zeros(out, 6);
        }
        Action::Group(g) => {
            put_u16(out, OFPAT_GROUP);
            put_u16(out, 8);
            put_u32(out, *g);
        }
        Action::SetField(sf) => {
            put_u16(out, OFPAT_SET_FIELD);
            put_u16(out, 0);
            encode_set_field_tlv(out, sf)?;
            pad8_from(out, start);
            let len = len16(out.len() - start, "set_field action")?;
            patch_u16(out, start + 2, len);
        }
        Action::Move { src, dst } => {
            // OpenFlow 1.5 copy_field; Open vSwitch only accepts NXAST_REG_MOVE up to 1.4.
            let n_bits = field_width(*src).min(field_width(*dst));
            put_u16(out, OFPAT_COPY_FIELD);
            put_u16(out, 24);
            put_u16(out, n_bits);
            put_u16(out, 0); // src_offset
            put_u16(out, 0); // dst_offset
            put_zeros(out, 2);
            put_u32(out, field_header(*src)?);
            put_u32(out, field_header(*dst)?);
            put_zeros(out, 4);
        }
        Action::MoveBits { src, dst } => {
            put_u16(out, OFPAT_COPY_FIELD);
            put_u16(out, 24);
            put_u16(out, src.n_bits.min(dst.n_bits));
            put_u16(out, src.ofs);
            put_u16(out, dst.ofs);
            put_zeros(out, 2);
            put_u32(out, src.header);
            put_u32(out, dst.header);
            put_zeros(out, 4);
        }
        Action::Resubmit { table } => {
            put_u16(out, OFPAT_EXPERIMENTER);
            put_u16(out, 16);
            put_u32(out, NX_VENDOR_ID);
            put_u16(out, NXAST_RESUBMIT_TABLE);
            put_u16(out, OFPP_IN_PORT_16);
            put_u8(out, *table);
            put_zeros(out, 3);
        }
        Action::DecTtl => {
            put_u16(out, OFPAT_DEC_NW_TTL);
            put_u16(out, 8);
            put_zeros(out, 4);
        }
        Action::Meter(id) => {
            put_u16(out, OFPAT_METER);
            put_u16(out, 8);
            put_u32(out, *id);
        }
        Action::CtClear => {
            put_nx_header(out, 16, NXAST_CT_CLEAR);
            put_zeros(out, 6);
        }
        Action::Conjunction {
            id,
            clause,
            n_clauses,
        } => {
            if *clause == 0 || clause > n_clauses || *n_clauses < 2 || *n_clauses > 64 {
                return Err(CodecError::Unencodable {
                    what: "conjunction",
                    value: format!("conjunction({id},{clause}/{n_clauses})"),
                });
            }
            put_nx_header(out, 16, NXAST_CONJUNCTION);
            put_u8(out, clause - 1);
            put_u8(out, *n_clauses);
            put_u32(out, *id);
        }
        Action::CheckPktLarger { len, dst } => {
            if dst.n_bits != 1 {
                return Err(CodecError::Unencodable {
                    what: "check_pkt_larger",
                    value: format!("destination of {} bits (must be 1)", dst.n_bits),
                });
            }
            put_nx_header(out, 24, NXAST_CHECK_PKT_LARGER);
            put_u16(out, *len);
            put_u16(out, dst.ofs);
            put_u32(out, dst.header);
            put_zeros(out, 6);
        }
        Action::Ct(ct) => encode_ct(out, ct)?,
        Action::Controller(c) => encode_controller(out, c)?,
        Action::Learn(l) => encode_learn(out, l)?,
        Action::GotoTable(t) => {
            return Err(CodecError::Unencodable {
                what: "action",
                value: format!("goto_table:{t} is an instruction and must be the last action"),
            })
        }
        Action::Other(raw) => {
            if raw.len() < 4 || raw.len() % 8 != 0 {
                return Err(CodecError::Unencodable {
                    what: "raw action",
                    value: format!("{} bytes (must be a multiple of 8, at least 8)", raw.len()),
                });
            }
            out.extend_from_slice(raw);
        }
    }
    Ok(())
}

fn put_nx_header(out: &mut Vec<u8>, len: u16, subtype: u16) {
    put_u16(out, OFPAT_EXPERIMENTER);
    put_u16(out, len);
    put_u32(out, NX_VENDOR_ID);
    put_u16(out, subtype);
}

fn patch_len(out: &mut Vec<u8>, start: usize, what: &'static str) -> Result<(), CodecError> {
    pad8_from(out, start);
    let len = len16(out.len() - start, what)?;
    patch_u16(out, start + 2, len);
    Ok(())
}

fn encode_ct(out: &mut Vec<u8>, ct: &Ct) -> Result<(), CodecError> {
    let start = out.len();
    put_nx_header(out, 0, NXAST_CT);
    let mut flags = 0;
    if ct.commit {
        flags |= NX_CT_F_COMMIT;
    }
    if ct.force {
        flags |= NX_CT_F_FORCE;
    }
    put_u16(out, flags);
    match ct.zone {
        CtZone::Imm(z) => {
            put_u32(out, 0);
            put_u16(out, z);
        }
        CtZone::Field(sf) => {
            if sf.n_bits != 16 {
                return Err(CodecError::Unencodable {
                    what: "ct zone",
                    value: format!("{} (a zone is 16 bits)", nxm::format_subfield(&sf)),
                });
            }
            put_u32(out, sf.header);
            put_u16(out, nxm::encode_ofs_nbits(sf.ofs, sf.n_bits));
        }
    }
    match ct.table {
        Some(NX_CT_RECIRC_NONE) => {
            return Err(CodecError::Unencodable {
                what: "ct table",
                value: "255 (means no recirculation; use None)".into(),
            })
        }
        Some(t) => put_u8(out, t),
        None => put_u8(out, NX_CT_RECIRC_NONE),
    }
    put_zeros(out, 3);
    put_u16(out, ct.alg);
    if let Some(nat) = &ct.nat {
        encode_nat(out, nat)?;
    }
    for a in &ct.exec {
        if matches!(a, Action::GotoTable(_)) {
            return Err(CodecError::Unencodable {
                what: "ct exec action",
                value: "goto_table".into(),
            });
        }
        encode_action(out, a)?;
    }
    let len = len16(out.len() - start, "ct action")?;
    patch_u16(out, start + 2, len);
    Ok(())
}

fn encode_nat(out: &mut Vec<u8>, nat: &Nat) -> Result<(), CodecError> {
    let start = out.len();
    put_nx_header(out, 0, NXAST_NAT);
    put_zeros(out, 2);
    let mut flags = 0;
    match nat.kind {
        Some(NatKind::Src) => flags |= NX_NAT_F_SRC,
        Some(NatKind::Dst) => flags |= NX_NAT_F_DST,
        None => {}
    }
    if nat.persistent {
        flags |= NX_NAT_F_PERSISTENT;
    }
    if nat.hash {
        flags |= NX_NAT_F_PROTO_HASH;
    }
    if nat.random {
        flags |= NX_NAT_F_PROTO_RANDOM;
    }
    put_u16(out, flags);
    let present_at = out.len();
    put_u16(out, 0);
    let bad = |why: &str| CodecError::Unencodable {
        what: "nat",
        value: why.to_string(),
    };
    let mut present = 0;
    match (nat.addr_min, nat.addr_max) {
        (None, None) => {}
        (Some(IpAddr::V4(min)), max) => {
            out.extend_from_slice(&min.octets());
            present |= NX_NAT_RANGE_IPV4_MIN;
            match max {
                Some(IpAddr::V4(max)) => {
                    out.extend_from_slice(&max.octets());
                    present |= NX_NAT_RANGE_IPV4_MAX;
                }
                None => {}
                Some(IpAddr::V6(_)) => return Err(bad("IPv4 minimum with an IPv6 maximum")),
            }
        }
        (Some(IpAddr::V6(min)), max) => {
            out.extend_from_slice(&min.octets());
            present |= NX_NAT_RANGE_IPV6_MIN;
            match max {
                Some(IpAddr::V6(max)) => {
                    out.extend_from_slice(&max.octets());
                    present |= NX_NAT_RANGE_IPV6_MAX;
                }
                None => {}
                Some(IpAddr::V4(_)) => return Err(bad("IPv6 minimum with an IPv4 maximum")),
            }
        }
        (None, Some(_)) => return Err(bad("address maximum without a minimum")),
    }
    if nat.port_min.is_some() || nat.port_max.is_some() {
        if nat.addr_min.is_none() {
            return Err(bad("ports need an address range"));
        }
        let Some(min) = nat.port_min else {
            return Err(bad("port maximum without a minimum"));
        };
        put_u16(out, min);
        present |= NX_NAT_RANGE_PROTO_MIN;
        if let Some(max) = nat.port_max {
            put_u16(out, max);
            present |= NX_NAT_RANGE_PROTO_MAX;
        }
    }
    patch_u16(out, present_at, present);
    patch_len(out, start, "nat action")
}

fn put_prop(out: &mut Vec<u8>, ptype: u16, payload: &[u8]) -> Result<(), CodecError> {
    let start = out.len();
    put_u16(out, ptype);
    put_u16(out, len16(4 + payload.len(), "controller property")?);
    out.extend_from_slice(payload);
    pad8_from(out, start);
    Ok(())
}

/// NXAST_CONTROLLER2 when userdata, pause or a meter is set (as OVS encodes it), else the
/// 16-byte NXAST_CONTROLLER. (`Controller::default()` is what OVS itself turns into plain
/// `output:CONTROLLER`; use [`Action::Output`] with [`ports::CONTROLLER`] for that.)
fn encode_controller(out: &mut Vec<u8>, c: &Controller) -> Result<(), CodecError> {
    let start = out.len();
    if c.userdata.is_empty() && !c.pause && c.meter_id.is_none() {
        put_nx_header(out, 16, NXAST_CONTROLLER);
        put_u16(out, c.max_len);
        put_u16(out, c.controller_id);
        put_u8(out, c.reason);
        put_u8(out, 0);
        return Ok(());
    }
    put_nx_header(out, 0, NXAST_CONTROLLER2);
    put_zeros(out, 6);
    if c.max_len != u16::MAX {
        put_prop(out, NXAC2PT_MAX_LEN, &c.max_len.to_be_bytes())?;
    }
    if c.controller_id != 0 {
        put_prop(out, NXAC2PT_CONTROLLER_ID, &c.controller_id.to_be_bytes())?;
    }
    if c.reason != 1 {
        put_prop(out, NXAC2PT_REASON, &[c.reason])?;
    }
    if !c.userdata.is_empty() {
        put_prop(out, NXAC2PT_USERDATA, &c.userdata)?;
    }
    if c.pause {
        put_prop(out, NXAC2PT_PAUSE, &[])?;
    }
    if let Some(m) = c.meter_id {
        put_prop(out, NXAC2PT_METER_ID, &m.to_be_bytes())?;
    }
    patch_len(out, start, "controller action")
}

/// Bytes an immediate of `n_bits` takes in a learn spec (whole 16-bit units).
fn learn_imm_len(n_bits: u16) -> usize {
    usize::from(n_bits).div_ceil(16) * 2
}

fn put_learn_subfield(out: &mut Vec<u8>, sf: &SubField) {
    put_u32(out, sf.header);
    put_u16(out, sf.ofs);
}

fn encode_learn(out: &mut Vec<u8>, l: &Learn) -> Result<(), CodecError> {
    let start = out.len();
    put_nx_header(out, 0, NXAST_LEARN);
    put_u16(out, l.idle_timeout);
    put_u16(out, l.hard_timeout);
    put_u16(out, l.priority);
    put_u64(out, l.cookie);
    put_u16(out, l.flags);
    put_u8(out, l.table);
    put_u8(out, 0);
    put_u16(out, l.fin_idle_timeout);
    put_u16(out, l.fin_hard_timeout);
    let check = |n_bits: u16| {
        if n_bits == 0 || n_bits > 128 {
            Err(CodecError::Unencodable {
                what: "learn spec",
                value: format!("{n_bits} bits"),
            })
        } else {
            Ok(n_bits)
        }
    };
    let put_imm = |out: &mut Vec<u8>, value: u128, n_bits: u16| {
        let n = learn_imm_len(n_bits);
        let v = if n_bits >= 128 {
            value
        } else {
            value & ((1u128 << n_bits) - 1)
        };
        out.extend_from_slice(&v.to_be_bytes()[16 - n..]);
    };
    for spec in &l.specs {
        match spec {
            LearnSpec::Match { dst, src } => {
                put_u16(out, check(dst.n_bits)?);
                put_learn_subfield(out, src);
                put_learn_subfield(out, dst);
            }
            LearnSpec::MatchImm { dst, value } => {
                put_u16(out, NX_LEARN_SRC_IMMEDIATE | check(dst.n_bits)?);
                put_imm(out, *value, dst.n_bits);
                put_learn_subfield(out, dst);
            }
            LearnSpec::Load { src, dst } => {
                put_u16(out, NX_LEARN_DST_LOAD | check(dst.n_bits)?);
                put_learn_subfield(out, src);
                put_learn_subfield(out, dst);
            }
            LearnSpec::LoadImm { value, dst } => {
                put_u16(
                    out,
                    NX_LEARN_SRC_IMMEDIATE | NX_LEARN_DST_LOAD | check(dst.n_bits)?,
                );
                put_imm(out, *value, dst.n_bits);
                put_learn_subfield(out, dst);
            }
            LearnSpec::Output { src } => {
                put_u16(out, NX_LEARN_DST_OUTPUT | check(src.n_bits)?);
                put_learn_subfield(out, src);
            }
        }
    }
    patch_len(out, start, "learn action")
}

/// Appends the instructions for an action list (apply_actions, raw instructions, goto_table).
pub fn encode_instructions(out: &mut Vec<u8>, actions: &[Action]) -> Result<(), CodecError> {
    let mut goto = None;
    let applies: Vec<&Action> = actions
        .iter()
        .filter(|a| match a {
            Action::GotoTable(_) => false,
            Action::Other(raw) => !is_raw_instruction(raw),
            _ => true,
        })
        .collect();
    for (i, a) in actions.iter().enumerate() {
        if let Action::GotoTable(t) = a {
            if i + 1 != actions.len() || goto.is_some() {
                return Err(CodecError::Unencodable {
                    what: "actions",
                    value: format!("goto_table:{t} must be the last action and appear once"),
                });
            }
            goto = Some(*t);
        }
    }
    if !applies.is_empty() {
        let start = out.len();
        put_u16(out, OFPIT_APPLY_ACTIONS);
        put_u16(out, 0);
        put_zeros(out, 4);
        for a in applies {
            encode_action(out, a)?;
        }
        let len = len16(out.len() - start, "apply_actions instruction")?;
        patch_u16(out, start + 2, len);
    }
    for a in actions {
        if let Action::Other(raw) = a {
            if is_raw_instruction(raw) {
                out.extend_from_slice(raw);
            }
        }
    }
    if let Some(t) = goto {
        put_u16(out, OFPIT_GOTO_TABLE);
        put_u16(out, 8);
        put_u8(out, t);
        put_zeros(out, 3);
    }
    Ok(())
}

/// Decodes a list of actions filling the whole reader.
pub(crate) fn decode_actions(r: &mut Reader<'_>) -> Result<Vec<Action>, CodecError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = {
            let mut peek = *r;
            peek.skip(2)?;
            usize::from(peek.u16()?)
        };
        if len < 8 || len % 8 != 0 {
            return Err(CodecError::BadLength {
                what: "action",
                len,
            });
        }
        let mut a = r.sub(len, "action")?;
        let raw = a.rest();
        out.push(decode_action(&mut a).unwrap_or_else(|| Action::Other(raw.to_vec())));
    }
    Ok(out)
}

/// Decodes one action (the reader holds exactly its bytes); `None` means "keep it raw".
fn decode_action(a: &mut Reader<'_>) -> Option<Action> {
    let atype = a.u16().ok()?;
    let _len = a.u16().ok()?;
    match atype {
        OFPAT_OUTPUT => {
            let port = a.u32().ok()?;
            let max_len = a.u16().ok()?;
            let expected = if port == ports::CONTROLLER {
                OFPCML_NO_BUFFER
            } else {
                0
            };
            (max_len == expected).then_some(Action::Output(port))
        }
        OFPAT_GROUP => Some(Action::Group(a.u32().ok()?)),
        OFPAT_DEC_NW_TTL => Some(Action::DecTtl),
        OFPAT_METER => Some(Action::Meter(a.u32().ok()?)),
        OFPAT_SET_FIELD => {
            let h = OxmHeader::parse(a.u32().ok()?);
            let payload = a.bytes(usize::from(h.len)).ok()?;
            decode_set_field_tlv(&h, payload).map(Action::SetField)
        }
        OFPAT_COPY_FIELD => {
            let n_bits = a.u16().ok()?;
            let src_ofs = a.u16().ok()?;
            let dst_ofs = a.u16().ok()?;
            a.skip(2).ok()?;
            let src = a.u32().ok()?;
            let dst = a.u32().ok()?;
            whole_move(n_bits, src_ofs, dst_ofs, src, dst)
        }
        OFPAT_EXPERIMENTER => {
            if a.u32().ok()? != NX_VENDOR_ID {
                return None;
            }
            match a.u16().ok()? {
                NXAST_REG_MOVE => {
                    let n_bits = a.u16().ok()?;
                    let src_ofs = a.u16().ok()?;
                    let dst_ofs = a.u16().ok()?;
                    let src = a.u32().ok()?;
                    let dst = a.u32().ok()?;
                    whole_move(n_bits, src_ofs, dst_ofs, src, dst)
                }
                NXAST_RESUBMIT_TABLE => {
                    let in_port = a.u16().ok()?;
                    let table = a.u8().ok()?;
                    (in_port == OFPP_IN_PORT_16 && table != 0xff)
                        .then_some(Action::Resubmit { table })
                }
                NXAST_REG_LOAD => {
                    let ofs_nbits = a.u16().ok()?;
                    let dst = a.u32().ok()?;
                    let value = a.u64().ok()?;
                    let ofs = ofs_nbits >> 6;
                    let n_bits = (ofs_nbits & 0x3f) + 1;
                    let width = u16::from(OxmHeader::parse(dst).len) * 8;
                    if ofs != 0 || n_bits != width {
                        return None;
                    }
                    set_field_from_load(dst, value).map(Action::SetField)
                }
                NXAST_REG_LOAD2 => {
                    let h = OxmHeader::parse(a.u32().ok()?);
                    let payload = a.bytes(usize::from(h.len)).ok()?;
                    decode_set_field_tlv(&h, payload).map(Action::SetField)
                }
                NXAST_CT_CLEAR => Some(Action::CtClear),
                NXAST_CHECK_PKT_LARGER => {
                    let len = a.u16().ok()?;
                    let ofs = a.u16().ok()?;
                    let header = a.u32().ok()?;
                    Some(Action::CheckPktLarger {
                        len,
                        dst: SubField {
                            header,
                            ofs,
                            n_bits: 1,
                        },
                    })
                }
                NXAST_CONJUNCTION => {
                    let clause = a.u8().ok()?;
                    let n_clauses = a.u8().ok()?;
                    let id = a.u32().ok()?;
                    (clause < n_clauses).then_some(Action::Conjunction {
                        id,
                        clause: clause + 1,
                        n_clauses,
                    })
                }
                NXAST_CT => decode_ct(a).map(Action::Ct),
                NXAST_CONTROLLER2 => decode_controller(a).map(Action::Controller),
                NXAST_CONTROLLER => {
                    let max_len = a.u16().ok()?;
                    let controller_id = a.u16().ok()?;
                    let reason = a.u8().ok()?;
                    Some(Action::Controller(Controller {
                        max_len,
                        controller_id,
                        reason,
                        ..Controller::default()
                    }))
                }
                NXAST_LEARN => decode_learn(a).map(Action::Learn),
                _ => None,
            }
        }
        _ => None,
    }
}

fn decode_ct(a: &mut Reader<'_>) -> Option<Ct> {
    let flags = a.u16().ok()?;
    if flags & !(NX_CT_F_COMMIT | NX_CT_F_FORCE) != 0 {
        return None;
    }
    let zone_src = a.u32().ok()?;
    let zone_v = a.u16().ok()?;
    let zone = if zone_src == 0 {
        CtZone::Imm(zone_v)
    } else {
        let (ofs, n_bits) = nxm::decode_ofs_nbits(zone_v);
        CtZone::Field(SubField {
            header: zone_src,
            ofs,
            n_bits,
        })
    };
    let table = match a.u8().ok()? {
        NX_CT_RECIRC_NONE => None,
        t => Some(t),
    };
    a.skip(3).ok()?;
    let alg = a.u16().ok()?;
    let mut nested = decode_actions(a).ok()?;
    let nat = match nested.first() {
        Some(Action::Other(raw)) => match decode_nat(raw) {
            Some(n) => {
                nested.remove(0);
                Some(n)
            }
            None => None,
        },
        _ => None,
    };
    Some(Ct {
        commit: flags & NX_CT_F_COMMIT != 0,
        force: flags & NX_CT_F_FORCE != 0,
        table,
        zone,
        alg,
        nat,
        exec: nested,
    })
}

/// Decodes a raw NXAST_NAT action (it only appears nested in `ct`).
fn decode_nat(raw: &[u8]) -> Option<Nat> {
    let mut a = Reader::new(raw, "nat action");
    if a.u16().ok()? != OFPAT_EXPERIMENTER {
        return None;
    }
    let _len = a.u16().ok()?;
    if a.u32().ok()? != NX_VENDOR_ID || a.u16().ok()? != NXAST_NAT {
        return None;
    }
    a.skip(2).ok()?;
    let flags = a.u16().ok()?;
    let present = a.u16().ok()?;
    let known = NX_NAT_F_SRC
        | NX_NAT_F_DST
        | NX_NAT_F_PERSISTENT
        | NX_NAT_F_PROTO_HASH
        | NX_NAT_F_PROTO_RANDOM;
    if flags & !known != 0 || (flags & NX_NAT_F_SRC != 0 && flags & NX_NAT_F_DST != 0) {
        return None;
    }
    let kind = if flags & NX_NAT_F_SRC != 0 {
        Some(NatKind::Src)
    } else if flags & NX_NAT_F_DST != 0 {
        Some(NatKind::Dst)
    } else {
        None
    };
    let v4 =
        |a: &mut Reader<'_>| -> Option<IpAddr> { Some(IpAddr::V4(Ipv4Addr::from(a.u32().ok()?))) };
    let v6 = |a: &mut Reader<'_>| -> Option<IpAddr> {
        let b = a.bytes(16).ok()?;
        let mut o = [0u8; 16];
        o.copy_from_slice(b);
        Some(IpAddr::V6(Ipv6Addr::from(o)))
    };
    let mut nat = Nat {
        kind,
        persistent: flags & NX_NAT_F_PERSISTENT != 0,
        hash: flags & NX_NAT_F_PROTO_HASH != 0,
        random: flags & NX_NAT_F_PROTO_RANDOM != 0,
        ..Nat::default()
    };
    let has = |bit: u16| present & bit != 0;
    if has(NX_NAT_RANGE_IPV4_MIN) {
        nat.addr_min = Some(v4(&mut a)?);
        if has(NX_NAT_RANGE_IPV4_MAX) {
            nat.addr_max = Some(v4(&mut a)?);
        }
    } else if has(NX_NAT_RANGE_IPV6_MIN) {
        nat.addr_min = Some(v6(&mut a)?);
        if has(NX_NAT_RANGE_IPV6_MAX) {
            nat.addr_max = Some(v6(&mut a)?);
        }
    }
    if has(NX_NAT_RANGE_PROTO_MIN) {
        nat.port_min = Some(a.u16().ok()?);
        if has(NX_NAT_RANGE_PROTO_MAX) {
            nat.port_max = Some(a.u16().ok()?);
        }
    }
    // Re-encoding must give the same bytes, or this is not a form the model covers.
    let mut again = Vec::new();
    encode_nat(&mut again, &nat).ok()?;
    (again == raw).then_some(nat)
}

fn decode_controller(a: &mut Reader<'_>) -> Option<Controller> {
    if a.bytes(6).ok()?.iter().any(|b| *b != 0) {
        return None;
    }
    let mut c = Controller::default();
    while a.remaining() >= 4 {
        let ptype = a.u16().ok()?;
        let plen = usize::from(a.u16().ok()?);
        if plen < 4 {
            return None;
        }
        let mut p = a.sub(plen - 4, "controller property").ok()?;
        let pad = super::wire::round8(plen) - plen;
        a.skip(pad.min(a.remaining())).ok()?;
        match ptype {
            NXAC2PT_MAX_LEN => c.max_len = p.u16().ok()?,
            NXAC2PT_CONTROLLER_ID => c.controller_id = p.u16().ok()?,
            NXAC2PT_REASON => c.reason = p.u8().ok()?,
            NXAC2PT_USERDATA => c.userdata = p.rest().to_vec(),
            NXAC2PT_PAUSE => c.pause = true,
            NXAC2PT_METER_ID => c.meter_id = Some(p.u32().ok()?),
            _ => return None,
        }
    }
    a.rest().iter().all(|b| *b == 0).then_some(c)
}

fn decode_learn(a: &mut Reader<'_>) -> Option<Learn> {
    let mut l = Learn {
        idle_timeout: a.u16().ok()?,
        hard_timeout: a.u16().ok()?,
        priority: a.u16().ok()?,
        cookie: a.u64().ok()?,
        flags: a.u16().ok()?,
        ..Learn::default()
    };
    if l.flags & !3 != 0 {
        return None; // write_result and unknown flags are not modelled
    }
    l.table = a.u8().ok()?;
    a.skip(1).ok()?;
    l.fin_idle_timeout = a.u16().ok()?;
    l.fin_hard_timeout = a.u16().ok()?;
    let sub = |a: &mut Reader<'_>, n_bits: u16| -> Option<SubField> {
        Some(SubField {
            header: a.u32().ok()?,
            ofs: a.u16().ok()?,
            n_bits,
        })
    };
    let imm = |a: &mut Reader<'_>, n_bits: u16| -> Option<u128> {
        let n = learn_imm_len(n_bits);
        if n > 16 {
            return None;
        }
        let b = a.bytes(n).ok()?;
        let mut o = [0u8; 16];
        o[16 - n..].copy_from_slice(b);
        Some(u128::from_be_bytes(o))
    };
    while a.remaining() >= 2 {
        let h = a.u16().ok()?;
        if h == 0 {
            break;
        }
        let n_bits = h & NX_LEARN_N_BITS_MASK;
        if h & !(NX_LEARN_SRC_IMMEDIATE | NX_LEARN_DST_MASK | NX_LEARN_N_BITS_MASK) != 0
            || n_bits == 0
        {
            return None;
        }
        let src_imm = h & NX_LEARN_SRC_IMMEDIATE != 0;
        let spec = match (src_imm, h & NX_LEARN_DST_MASK) {
            (false, 0) => {
                let src = sub(a, n_bits)?;
                LearnSpec::Match {
                    src,
                    dst: sub(a, n_bits)?,
                }
            }
            (true, 0) => {
                let value = imm(a, n_bits)?;
                LearnSpec::MatchImm {
                    value,
                    dst: sub(a, n_bits)?,
                }
            }
            (false, NX_LEARN_DST_LOAD) => {
                let src = sub(a, n_bits)?;
                LearnSpec::Load {
                    src,
                    dst: sub(a, n_bits)?,
                }
            }
            (true, NX_LEARN_DST_LOAD) => {
                let value = imm(a, n_bits)?;
                LearnSpec::LoadImm {
                    value,
                    dst: sub(a, n_bits)?,
                }
            }
            (false, NX_LEARN_DST_OUTPUT) => LearnSpec::Output {
                src: sub(a, n_bits)?,
            },
            _ => return None,
        };
        l.specs.push(spec);
    }
    a.rest().iter().all(|b| *b == 0).then_some(l)
}

fn whole_move(n_bits: u16, src_ofs: u16, dst_ofs: u16, src: u32, dst: u32) -> Option<Action> {
    if let (Some(s), Some(d)) = (header_field(src), header_field(dst)) {
        let whole = field_width(s).min(field_width(d));
        if src_ofs == 0 && dst_ofs == 0 && n_bits == whole {
            return Some(Action::Move { src: s, dst: d });
        }
    }
    if n_bits == 0 {
        return None;
    }
    let sub = |header: u32, ofs: u16| SubField {
        header: crate::codec::nxm::canonical_header(header),
        ofs,
        n_bits,
    };
    Some(Action::MoveBits {
        src: sub(src, src_ofs),
        dst: sub(dst, dst_ofs),
    })
}

/// Decodes the instructions filling the reader into the model's action list.
pub(crate) fn decode_instructions(r: &mut Reader<'_>) -> Result<Vec<Action>, CodecError> {
    let mut actions = Vec::new();
    let mut others = Vec::new();
    let mut goto = None;
    while !r.is_empty() {
        let len = {
            let mut peek = *r;
            peek.skip(2)?;
            usize::from(peek.u16()?)
        };
        if len < 8 || len % 8 != 0 {
            return Err(CodecError::BadLength {
                what: "instruction",
                len,
            });
        }
        let mut ins = r.sub(len, "instruction")?;
        let raw = ins.rest();
        let itype = ins.u16()?;
        ins.skip(2)?;
        match itype {
            OFPIT_APPLY_ACTIONS => {
                ins.skip(4)?;
                actions.extend(decode_actions(&mut ins)?);
            }
            OFPIT_GOTO_TABLE if len == 8 => goto = Some(ins.u8()?),
            _ => others.push(Action::Other(raw.to_vec())),
        }
    }
    actions.extend(others);
    if let Some(t) = goto {
        actions.push(Action::GotoTable(t));
    }
    Ok(actions)
}
