//! Nicira extension messages and the packet path: `NXT_PACKET_IN2` ([`PacketIn`]),
//! `NXT_RESUME`, `NXT_SET_PACKET_IN_FORMAT`, `NXT_CT_FLUSH_ZONE`, the TLV table
//! (`NXT_TLV_TABLE_MOD` / `_REQUEST` / `_REPLY`), plus OpenFlow 1.5 `OFPT_PACKET_OUT`
//! ([`PacketOut`]) and `OFPT_SET_ASYNC`. Properties follow OVS's `ofpprop` layout (4-byte
//! header, padded to 8; nested properties padded after the header). Decoding never panics.

use super::wire::{pad8_from, patch_u16, put_u16, put_u32, put_u8, put_zeros, Reader};
use super::{actions, oxm, CodecError};
use crate::flow::{Action, Match};

/// Nicira experimenter id and message subtypes.
pub const NX_VENDOR_ID: u32 = 0x0000_2320;
pub const NXT_SET_PACKET_IN_FORMAT: u32 = 16;
pub const NXT_TLV_TABLE_MOD: u32 = 24;
pub const NXT_TLV_TABLE_REQUEST: u32 = 25;
pub const NXT_TLV_TABLE_REPLY: u32 = 26;
pub const NXT_RESUME: u32 = 28;
pub const NXT_CT_FLUSH_ZONE: u32 = 29;
pub const NXT_PACKET_IN2: u32 = 30;
/// `NXT_SET_PACKET_IN_FORMAT` value selecting `NXT_PACKET_IN2`.
pub const NXPIF_NXT_PACKET_IN2: u32 = 2;

const NXPINT_PACKET: u16 = 0;
const NXPINT_FULL_LEN: u16 = 1;
const NXPINT_BUFFER_ID: u16 = 2;
const NXPINT_TABLE_ID: u16 = 3;
const NXPINT_COOKIE: u16 = 4;
const NXPINT_REASON: u16 = 5;
const NXPINT_METADATA: u16 = 6;
const NXPINT_USERDATA: u16 = 7;
const NXPINT_CONTINUATION: u16 = 8;

/// `OFPT_SET_ASYNC` property types (OpenFlow 1.4+) for packet-ins.
pub const OFPACPT_PACKET_IN_SLAVE: u16 = 0;
pub const OFPACPT_PACKET_IN_MASTER: u16 = 1;

/// Packet-in reasons (`OFPR_*`).
pub mod packet_in_reason {
    pub const NO_MATCH: u8 = 0;
    pub const ACTION: u8 = 1;
    pub const INVALID_TTL: u8 = 2;
    pub const ACTION_SET: u8 = 3;
    pub const GROUP: u8 = 4;
    pub const PACKET_OUT: u8 = 5;
}

/// An `NXT_PACKET_IN2` (also the body of `NXT_RESUME`). `metadata` holds the pipeline
/// fields OVS reports (in_port, metadata, registers, tunnel and ct fields); `continuation`
/// is set when the flow's `controller(...,pause)` paused the pipeline, and must be sent back
/// unchanged in [`PacketIn::resume`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketIn {
    pub packet: Vec<u8>,
    /// The packet's length before truncation to `max_len`, when it was truncated.
    pub full_len: Option<u32>,
    pub buffer_id: Option<u32>,
    pub table_id: u8,
    /// The cookie of the flow that sent the packet (`None`: OVS sent none).
    pub cookie: Option<u64>,
    pub reason: u8,
    pub metadata: Match,
    pub userdata: Vec<u8>,
    pub continuation: Option<Vec<u8>>,
}

impl PacketIn {
    /// The `NXT_RESUME` that continues this paused packet, optionally with a modified packet.
    pub fn resume(&self) -> crate::codec::Message {
        let mut p = self.clone();
        p.userdata.clear();
        crate::codec::Message::Resume(p)
    }
}

/// OpenFlow 1.5 `OFPT_PACKET_OUT`: the packet runs through `actions` as if it had matched
/// `matches` (usually just `in_port`; [`crate::flow::ports::CONTROLLER`] when none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketOut {
    pub buffer_id: u32,
    pub matches: Match,
    pub actions: Vec<Action>,
    pub packet: Vec<u8>,
}

/// One TLV-table entry: Geneve option (class, type, length in bytes) ↔ `tun_metadata<index>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TlvMap {
    pub option_class: u16,
    pub option_type: u8,
    pub option_len: u8,
    pub index: u16,
}

/// `NXTTMC_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlvTableCommand {
    Add = 0,
    Delete = 1,
    Clear = 2,
}

/// `NXT_TLV_TABLE_MOD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlvTableMod {
    pub command: TlvTableCommand,
    pub maps: Vec<TlvMap>,
}

/// `NXT_TLV_TABLE_REPLY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlvTableReply {
    pub max_option_space: u32,
    pub max_fields: u16,
    pub maps: Vec<TlvMap>,
}

fn put_prop(out: &mut Vec<u8>, t: u16, payload: &[u8]) -> Result<(), CodecError> {
    let start = out.len();
    put_u16(out, t);
    put_u16(out, super::wire::len16(4 + payload.len(), "property")?);
    out.extend_from_slice(payload);
    pad8_from(out, start);
    Ok(())
}

/// Encodes the packet-in2 / resume properties. `resume` omits the userdata (as OVS does).
pub(crate) fn encode_packet_in(
    out: &mut Vec<u8>,
    p: &PacketIn,
    resume: bool,
) -> Result<(), CodecError> {
    put_prop(out, NXPINT_PACKET, &p.packet)?;
    if let Some(l) = p.full_len {
        put_prop(out, NXPINT_FULL_LEN, &l.to_be_bytes())?;
    }
    if let Some(b) = p.buffer_id {
        put_prop(out, NXPINT_BUFFER_ID, &b.to_be_bytes())?;
    }
    put_prop(out, NXPINT_TABLE_ID, &[p.table_id])?;
    if let Some(c) = p.cookie {
        let mut v = vec![0; 4];
        v.extend_from_slice(&c.to_be_bytes());
        put_prop(out, NXPINT_COOKIE, &v)?;
    }
    put_prop(out, NXPINT_REASON, &[p.reason])?;
    let mut md = Vec::new();
    for f in p.metadata.fields() {
        oxm::encode_field(&mut md, f)?;
    }
    put_prop(out, NXPINT_METADATA, &md)?;
    if !resume && !p.userdata.is_empty() {
        put_prop(out, NXPINT_USERDATA, &p.userdata)?;
    }
    if let Some(c) = &p.continuation {
        let mut v = vec![0; 4];
        v.extend_from_slice(c);
        put_prop(out, NXPINT_CONTINUATION, &v)?;
    }
    Ok(())
}

/// Decodes packet-in2 / resume properties filling the reader.
pub(crate) fn decode_packet_in(r: &mut Reader<'_>) -> Result<PacketIn, CodecError> {
    let mut p = PacketIn::default();
    let mut have_packet = false;
    while !r.is_empty() {
        let t = r.u16()?;
        let len = usize::from(r.u16()?);
        if len < 4 {
            return Err(CodecError::BadLength {
                what: "packet-in property",
                len,
            });
        }
        let mut v = r.sub(len - 4, "packet-in property")?;
        let pad = super::wire::round8(len) - len;
        r.skip(pad.min(r.remaining()))?;
        match t {
            NXPINT_PACKET => {
                p.packet = v.rest().to_vec();
                have_packet = true;
            }
            NXPINT_FULL_LEN => p.full_len = Some(v.u32()?),
            NXPINT_BUFFER_ID => p.buffer_id = Some(v.u32()?),
            NXPINT_TABLE_ID => p.table_id = v.u8()?,
            NXPINT_COOKIE => {
                v.skip(4)?;
                p.cookie = Some(v.u64()?);
            }
            NXPINT_REASON => p.reason = v.u8()?,
            NXPINT_METADATA => p.metadata = oxm::decode_fields(&mut v)?,
            NXPINT_USERDATA => p.userdata = v.rest().to_vec(),
            NXPINT_CONTINUATION => {
                v.skip(4)?;
                p.continuation = Some(v.rest().to_vec());
            }
            _ => {} // unknown properties are ignored, as OVS does for loose ones
        }
    }
    if !have_packet {
        return Err(CodecError::Invalid {
            what: "packet-in without a packet property",
            value: 0,
        });
    }
    Ok(p)
}

pub(crate) fn encode_packet_out(out: &mut Vec<u8>, po: &PacketOut) -> Result<(), CodecError> {
    put_u32(out, po.buffer_id);
    let alen_at = out.len();
    put_u16(out, 0);
    put_zeros(out, 2);
    oxm::encode_match(out, &po.matches)?;
    let astart = out.len();
    for a in &po.actions {
        actions::encode_action(out, a)?;
    }
    let alen = super::wire::len16(out.len() - astart, "packet-out actions")?;
    patch_u16(out, alen_at, alen);
    out.extend_from_slice(&po.packet);
    Ok(())
}

pub(crate) fn decode_packet_out(r: &mut Reader<'_>) -> Result<PacketOut, CodecError> {
    let buffer_id = r.u32()?;
    let alen = usize::from(r.u16()?);
    r.skip(2)?;
    let matches = oxm::decode_match(r)?;
    let mut a = r.sub(alen, "packet-out actions")?;
    let actions = actions::decode_actions(&mut a)?;
    Ok(PacketOut {
        buffer_id,
        matches,
        actions,
        packet: r.rest().to_vec(),
    })
}

pub(crate) fn encode_tlv_maps(out: &mut Vec<u8>, maps: &[TlvMap]) {
    for m in maps {
        put_u16(out, m.option_class);
        put_u8(out, m.option_type);
        put_u8(out, m.option_len);
        put_u16(out, m.index);
        put_zeros(out, 2);
    }
}

pub(crate) fn decode_tlv_maps(r: &mut Reader<'_>) -> Result<Vec<TlvMap>, CodecError> {
    let mut maps = Vec::new();
    while !r.is_empty() {
        let m = TlvMap {
            option_class: r.u16()?,
            option_type: r.u8()?,
            option_len: r.u8()?,
            index: r.u16()?,
        };
        r.skip(2)?;
        maps.push(m);
    }
    Ok(maps)
}

/// Appends `ct_flush_zone` body: six zero bytes and the zone.
pub(crate) fn encode_ct_flush_zone(out: &mut Vec<u8>, zone: u16) {
    put_zeros(out, 6);
    put_u16(out, zone);
}

/// Appends `OFPT_SET_ASYNC` properties `(type, mask)`.
pub(crate) fn encode_async(out: &mut Vec<u8>, props: &[(u16, u32)]) {
    for (t, mask) in props {
        put_u16(out, *t);
        put_u16(out, 8);
        put_u32(out, *mask);
    }
}

pub(crate) fn decode_async(r: &mut Reader<'_>) -> Result<Vec<(u16, u32)>, CodecError> {
    let mut props = Vec::new();
    while !r.is_empty() {
        let t = r.u16()?;
        let len = r.u16()?;
        if len != 8 {
            return Err(CodecError::BadLength {
                what: "async config property",
                len: usize::from(len),
            });
        }
        props.push((t, r.u32()?));
    }
    Ok(props)
}
