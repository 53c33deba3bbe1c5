//! Actions and instructions: OpenFlow 1.5 `output`, `group`, `set_field`, `copy_field`
//! (how [`Action::Move`] is encoded: Open vSwitch rejects NXAST_REG_MOVE in OpenFlow 1.5 with
//! OFPBAC_BAD_EXP_TYPE), the Nicira NXAST_RESUBMIT_TABLE, decoding of NXAST_REG_MOVE,
//! NXAST_REG_LOAD and NXAST_REG_LOAD2, and the `apply_actions` / `goto_table` instructions.
//!
//! Encoding puts every [`Action`] except [`Action::GotoTable`] into one `apply_actions`
//! instruction, followed by `goto_table`. Decoding reverses that; anything unknown becomes
//! [`Action::Other`] with its raw bytes. A raw instruction (not an action) is recognisable
//! because its type is 1..=7, which no OpenFlow 1.1+ action uses.

use super::oxm::{
    decode_set_field_tlv, encode_set_field_tlv, field_header, header_field, set_field_from_load,
    OxmHeader,
};
use super::wire::{len16, pad8_from, patch_u16, put_u16, put_u32, put_u8, put_zeros, Reader};
use super::CodecError;
use crate::flow::{ports, Action, Field};
use crate::render::field_width;

pub const OFPAT_OUTPUT: u16 = 0;
pub const OFPAT_GROUP: u16 = 22;
pub const OFPAT_SET_FIELD: u16 = 25;
pub const OFPAT_COPY_FIELD: u16 = 28;
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
        Action::Resubmit { table } => {
            put_u16(out, OFPAT_EXPERIMENTER);
            put_u16(out, 16);
            put_u32(out, NX_VENDOR_ID);
            put_u16(out, NXAST_RESUBMIT_TABLE);
            put_u16(out, OFPP_IN_PORT_16);
            put_u8(out, *table);
            put_zeros(out, 3);
        }
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
                _ => None,
            }
        }
        _ => None,
    }
}

fn whole_move(n_bits: u16, src_ofs: u16, dst_ofs: u16, src: u32, dst: u32) -> Option<Action> {
    let src: Field = header_field(src)?;
    let dst: Field = header_field(dst)?;
    let whole = field_width(src).min(field_width(dst));
    (src_ofs == 0 && dst_ofs == 0 && n_bits == whole).then_some(Action::Move { src, dst })
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
