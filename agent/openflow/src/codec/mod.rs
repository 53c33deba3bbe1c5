//! The OpenFlow 1.5 wire codec (pure: no sockets, no tokio).
//!
//! [`encode`] appends one message to a buffer; [`decode`] parses exactly one framed message
//! (use [`frame_len`] to find message boundaries in a byte stream). Flows and groups travel
//! as the typed model in [`crate::flow`]; anything the model does not cover decodes to an
//! `Other` variant with its raw bytes. Malformed input returns a [`CodecError`], never
//! panics.
//!
//! Message coverage: hello (version bitmap), error, echo, features, get/set config,
//! flow_mod, group_mod (OpenFlow 1.5 buckets, select-group weights and selection method),
//! meter_mod, barrier, bundle_control, bundle_add_message, multipart flow-desc, group-desc,
//! meter-config and meter-stats, packet-out, set-async, and the Nicira packet-in2, resume,
//! set-packet-in-format, ct-flush-zone and TLV-table messages. Submodules: [`oxm`]
//! (matches), [`actions`] (actions and instructions), [`nxm`] (field headers by name),
//! [`nx`] (Nicira messages and the packet path), [`errors`] (error names).

pub mod actions;
pub mod errors;
pub mod nx;
pub mod nxm;
pub mod oxm;
mod wire;

use crate::flow::{Action, Flow, FlowKey, Group, GroupType, Match};
use crate::meter::{self as meter_model, BandStats, Meter, MeterStats};
pub use errors::ErrorMsg;
pub use nx::{
    packet_in_reason, PacketIn, PacketOut, TlvMap, TlvTableCommand, TlvTableMod, TlvTableReply,
};
use wire::{
    len16, pad8_from, patch_u16, put_u16, put_u32, put_u64, put_u8, put_zeros, round8, Reader,
};

/// The OpenFlow 1.5 version number.
pub const OFP15_VERSION: u8 = 0x06;
/// Size of the common OpenFlow header.
pub const OFP_HEADER_LEN: usize = 8;

/// OpenFlow 1.5 message types.
pub mod msg_type {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const FLOW_MOD: u8 = 14;
    pub const GROUP_MOD: u8 = 15;
    pub const PACKET_IN: u8 = 10;
    pub const PACKET_OUT: u8 = 13;
    pub const METER_MOD: u8 = 29;
    pub const SET_ASYNC: u8 = 28;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
    pub const BUNDLE_CONTROL: u8 = 33;
    pub const BUNDLE_ADD_MESSAGE: u8 = 34;
}

/// Multipart types used here.
pub const OFPMP_FLOW_DESC: u16 = 1;
/// Per-table statistics (`dump-tables`): one `ofp_table_stats` of 24 bytes per table.
pub const OFPMP_TABLE_STATS: u16 = 3;
pub const OFPMP_GROUP_DESC: u16 = 7;
pub const OFPMP_METER_STATS: u16 = 9;
pub const OFPMP_METER_CONFIG: u16 = 10;
/// Multipart flag: more replies (or requests) follow.
pub const OFPMPF_MORE: u16 = 1;

/// `table_id` meaning every table (deletes, stats requests).
pub const OFPTT_ALL: u8 = 0xff;
/// `group_id` meaning every group (group desc request, delete all).
pub const OFPG_ALL: u32 = 0xffff_fffc;
/// `group_id`/`out_group` wildcard.
pub const OFPG_ANY: u32 = 0xffff_ffff;
/// `buffer_id` meaning "no buffered packet".
pub const OFP_NO_BUFFER: u32 = 0xffff_ffff;
/// The number of flows in each table, from the body of a table stats reply
/// (`ofp_table_stats`: table_id, 3 pad, active_count, lookup_count, matched_count; 24 bytes
/// each). Tables without flows are left out.
pub fn decode_table_flow_counts(body: &[u8]) -> Result<Vec<(u8, u32)>, CodecError> {
    if body.len() % 24 != 0 {
        return Err(CodecError::BadLength {
            what: "table stats",
            len: body.len(),
        });
    }
    Ok(body
        .chunks_exact(24)
        .map(|c| (c[0], u32::from_be_bytes([c[4], c[5], c[6], c[7]])))
        .filter(|&(_, n)| n > 0)
        .collect())
}

/// `command_bucket_id` meaning all buckets.
pub const OFPG15_BUCKET_ALL: u32 = 0xffff_ffff;

/// Bundle flags.
pub const OFPBF_ATOMIC: u16 = 1;
pub const OFPBF_ORDERED: u16 = 2;

/// Hello element type carrying the version bitmap.
const OFPHET_VERSIONBITMAP: u16 = 1;

/// Errors decoding or encoding OpenFlow messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("bad length {len} for {what}")]
    BadLength { what: &'static str, len: usize },
    #[error("invalid {what}: {value:#x}")]
    Invalid { what: &'static str, value: u64 },
    #[error("{what} too long for OpenFlow: {len} bytes")]
    TooLong { what: &'static str, len: usize },
    #[error("cannot encode {what}: {value}")]
    Unencodable { what: &'static str, value: String },
}

/// The common OpenFlow header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    pub length: u16,
    pub xid: u32,
}

/// Reads the header at the start of `buf`, if 8 bytes are there.
pub fn peek_header(buf: &[u8]) -> Option<Header> {
    let h = buf.get(..OFP_HEADER_LEN)?;
    Some(Header {
        version: h[0],
        msg_type: h[1],
        length: u16::from_be_bytes([h[2], h[3]]),
        xid: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
    })
}

/// The length of the first complete message in `buf`: `Ok(None)` when more bytes are
/// needed, an error when the header's length field is impossible (< 8).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, CodecError> {
    let Some(h) = peek_header(buf) else {
        return Ok(None);
    };
    let len = usize::from(h.length);
    if len < OFP_HEADER_LEN {
        return Err(CodecError::BadLength {
            what: "OpenFlow message",
            len,
        });
    }
    Ok((buf.len() >= len).then_some(len))
}

/// Switch features (`OFPT_FEATURES_REPLY`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    pub auxiliary_id: u8,
    pub capabilities: u32,
}

/// Switch configuration (`OFPT_GET_CONFIG_REPLY` / `OFPT_SET_CONFIG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchConfig {
    pub flags: u16,
    pub miss_send_len: u16,
}

/// `ofp_flow_mod_command`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowModCommand {
    Add = 0,
    Modify = 1,
    ModifyStrict = 2,
    Delete = 3,
    DeleteStrict = 4,
}

impl FlowModCommand {
    fn from_u8(v: u8) -> Result<Self, CodecError> {
        Ok(match v {
            0 => Self::Add,
            1 => Self::Modify,
            2 => Self::ModifyStrict,
            3 => Self::Delete,
            4 => Self::DeleteStrict,
            _ => {
                return Err(CodecError::Invalid {
                    what: "flow_mod command",
                    value: u64::from(v),
                })
            }
        })
    }
}

/// A flow table modification. `flow` carries table, priority, cookie, match and actions.
///
/// OpenFlow 1.1+ semantics worth knowing: `Add` of a flow whose (table, priority, match)
/// exists replaces it (cookie included); `Modify*` replaces the actions but keeps the old
/// cookie; `Delete` matches the cookie under `cookie_mask`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowMod {
    pub command: FlowModCommand,
    pub flow: Flow,
    pub cookie_mask: u64,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub out_port: u32,
    pub out_group: u32,
    pub flags: u16,
    pub importance: u16,
}

impl FlowMod {
    fn with(command: FlowModCommand, flow: Flow) -> Self {
        FlowMod {
            command,
            flow,
            cookie_mask: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            out_port: crate::flow::ports::ANY,
            out_group: OFPG_ANY,
            flags: 0,
            importance: 0,
        }
    }

    /// Adds (or replaces) a flow.
    pub fn add(flow: Flow) -> Self {
        Self::with(FlowModCommand::Add, flow)
    }

    /// Replaces the actions of exactly this (table, priority, match).
    pub fn modify_strict(flow: Flow) -> Self {
        Self::with(FlowModCommand::ModifyStrict, flow)
    }

    /// Deletes exactly this (table, priority, match).
    pub fn delete_strict(key: &FlowKey) -> Self {
        Self::with(
            FlowModCommand::DeleteStrict,
            Flow {
                table: key.table,
                priority: key.priority,
                cookie: 0,
                matches: key.matches.clone(),
                actions: vec![],
            },
        )
    }

    /// Deletes every flow in `table` (or all tables for [`OFPTT_ALL`]) whose match is a
    /// superset of `matches` and whose cookie equals `cookie` under `cookie_mask`.
    pub fn delete(table: u8, matches: Match, cookie: u64, cookie_mask: u64) -> Self {
        let mut fm = Self::with(
            FlowModCommand::Delete,
            Flow {
                table,
                priority: 0,
                cookie,
                matches,
                actions: vec![],
            },
        );
        fm.cookie_mask = cookie_mask;
        fm
    }
}

/// `ofp_group_mod_command` (the subset Weft uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupModCommand {
    Add = 0,
    Modify = 1,
    Delete = 2,
}

/// A group table modification. For `Delete` only `group.id` matters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMod {
    pub command: GroupModCommand,
    pub group: Group,
}

/// `ofp_bundle_ctrl_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BundleCtrlType {
    OpenRequest = 0,
    OpenReply = 1,
    CloseRequest = 2,
    CloseReply = 3,
    CommitRequest = 4,
    CommitReply = 5,
    DiscardRequest = 6,
    DiscardReply = 7,
}

impl BundleCtrlType {
    fn from_u16(v: u16) -> Result<Self, CodecError> {
        use BundleCtrlType::*;
        Ok(match v {
            0 => OpenRequest,
            1 => OpenReply,
            2 => CloseRequest,
            3 => CloseReply,
            4 => CommitRequest,
            5 => CommitReply,
            6 => DiscardRequest,
            7 => DiscardReply,
            _ => {
                return Err(CodecError::Invalid {
                    what: "bundle_control type",
                    value: u64::from(v),
                })
            }
        })
    }
}

/// `ofp_meter_mod_command`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeterModCommand {
    Add = 0,
    Modify = 1,
    Delete = 2,
}

/// `OFPT_METER_MOD`. For `Delete` only `meter.id` matters (bands are not sent, as
/// ovs-ofctl does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterMod {
    pub command: MeterModCommand,
    pub meter: Meter,
}

/// `OFPT_BUNDLE_CONTROL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleControl {
    pub bundle_id: u32,
    pub ctrl_type: BundleCtrlType,
    pub flags: u16,
    /// Raw bundle properties (none are used by Weft).
    pub properties: Vec<u8>,
}

/// `OFPT_BUNDLE_ADD_MESSAGE`: `message` is sent with the same xid as the outer message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleAdd {
    pub bundle_id: u32,
    pub flags: u16,
    pub message: Box<Message>,
}

/// Flow-desc multipart request (`ofp_flow_stats_request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStatsRequest {
    pub table_id: u8,
    pub out_port: u32,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub matches: Match,
}

impl FlowStatsRequest {
    /// Every flow in every table.
    pub fn all() -> Self {
        FlowStatsRequest {
            table_id: OFPTT_ALL,
            out_port: crate::flow::ports::ANY,
            out_group: OFPG_ANY,
            cookie: 0,
            cookie_mask: 0,
            matches: Match::new(),
        }
    }
}

/// Body of a multipart request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartRequestBody {
    FlowDesc(FlowStatsRequest),
    GroupDesc {
        group_id: u32,
    },
    /// Meter configuration (`dump-meters`); `meter_id` may be [`crate::meter::OFPM_ALL`].
    MeterConfig {
        meter_id: u32,
    },
    /// Meter statistics (`meter-stats`).
    MeterStats {
        meter_id: u32,
    },
    Other {
        mp_type: u16,
        body: Vec<u8>,
    },
}

/// Body of a multipart reply. Flow statistics are dropped; only the flows are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartReplyBody {
    FlowDesc(Vec<Flow>),
    GroupDesc(Vec<Group>),
    MeterConfig(Vec<Meter>),
    MeterStats(Vec<MeterStats>),
    Other { mp_type: u16, body: Vec<u8> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartRequest {
    pub flags: u16,
    pub body: MultipartRequestBody,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartReply {
    pub flags: u16,
    pub body: MultipartReplyBody,
}

impl MultipartReply {
    /// Whether more replies to the same request follow.
    pub fn more(&self) -> bool {
        self.flags & OFPMPF_MORE != 0
    }
}

/// One OpenFlow message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Hello; `versions` is the peer's version bitmap (empty when it sent none).
    Hello {
        versions: Vec<u8>,
    },
    Error(ErrorMsg),
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    FeaturesRequest,
    FeaturesReply(Features),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    FlowMod(FlowMod),
    GroupMod(GroupMod),
    MeterMod(MeterMod),
    MultipartRequest(MultipartRequest),
    MultipartReply(MultipartReply),
    BarrierRequest,
    BarrierReply,
    BundleControl(BundleControl),
    BundleAdd(BundleAdd),
    /// `NXT_PACKET_IN2` (switch to controller).
    PacketIn2(PacketIn),
    /// `NXT_RESUME`: continue a paused packet-in.
    Resume(PacketIn),
    /// `OFPT_PACKET_OUT` (OpenFlow 1.5 form, with a match).
    PacketOut(PacketOut),
    /// `NXT_SET_PACKET_IN_FORMAT` ([`nx::NXPIF_NXT_PACKET_IN2`] for packet-in2).
    SetPacketInFormat(u32),
    /// `OFPT_SET_ASYNC` (OpenFlow 1.4+): `(property type, reason mask)` pairs.
    SetAsync(Vec<(u16, u32)>),
    /// `NXT_CT_FLUSH_ZONE`: drop every connection in a conntrack zone.
    CtFlushZone(u16),
    TlvTableMod(TlvTableMod),
    TlvTableRequest,
    TlvTableReply(TlvTableReply),
    /// Any other message (or any message of another version than 1.5): raw body.
    Other {
        version: u8,
        msg_type: u8,
        body: Vec<u8>,
    },
}

impl Message {
    /// The OpenFlow message type this encodes to.
    pub fn msg_type(&self) -> u8 {
        use msg_type as t;
        match self {
            Message::Hello { .. } => t::HELLO,
            Message::Error(_) => t::ERROR,
            Message::EchoRequest(_) => t::ECHO_REQUEST,
            Message::EchoReply(_) => t::ECHO_REPLY,
            Message::FeaturesRequest => t::FEATURES_REQUEST,
            Message::FeaturesReply(_) => t::FEATURES_REPLY,
            Message::GetConfigRequest => t::GET_CONFIG_REQUEST,
            Message::GetConfigReply(_) => t::GET_CONFIG_REPLY,
            Message::SetConfig(_) => t::SET_CONFIG,
            Message::FlowMod(_) => t::FLOW_MOD,
            Message::GroupMod(_) => t::GROUP_MOD,
            Message::MeterMod(_) => t::METER_MOD,
            Message::MultipartRequest(_) => t::MULTIPART_REQUEST,
            Message::MultipartReply(_) => t::MULTIPART_REPLY,
            Message::BarrierRequest => t::BARRIER_REQUEST,
            Message::BarrierReply => t::BARRIER_REPLY,
            Message::BundleControl(_) => t::BUNDLE_CONTROL,
            Message::BundleAdd(_) => t::BUNDLE_ADD_MESSAGE,
            Message::PacketOut(_) => t::PACKET_OUT,
            Message::SetAsync(_) => t::SET_ASYNC,
            Message::PacketIn2(_)
            | Message::Resume(_)
            | Message::SetPacketInFormat(_)
            | Message::CtFlushZone(_)
            | Message::TlvTableMod(_)
            | Message::TlvTableRequest
            | Message::TlvTableReply(_) => t::EXPERIMENTER,
            Message::Other { msg_type, .. } => *msg_type,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Encoding

/// Appends `msg` with transaction id `xid` to `out`. On error `out` is left unchanged.
pub fn encode(xid: u32, msg: &Message, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    let r = encode_inner(xid, msg, out, start);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

/// Encodes `msg` into a new buffer.
pub fn encode_to_vec(xid: u32, msg: &Message) -> Result<Vec<u8>, CodecError> {
    let mut v = Vec::new();
    encode(xid, msg, &mut v)?;
    Ok(v)
}

/// Appends an `OFPT_BUNDLE_ADD_MESSAGE` wrapping `inner` without cloning it (the inner
/// message uses the same xid). On error `out` is left unchanged.
pub fn encode_bundle_add(
    xid: u32,
    bundle_id: u32,
    flags: u16,
    inner: &Message,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let start = out.len();
    let r = (|| {
        put_header(out, msg_type::BUNDLE_ADD_MESSAGE, xid);
        put_u32(out, bundle_id);
        put_u16(out, 0);
        put_u16(out, flags);
        let inner_start = out.len();
        encode_inner(xid, inner, out, inner_start)?;
        pad8_from(out, start);
        finish(out, start)
    })();
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn put_header(out: &mut Vec<u8>, t: u8, xid: u32) {
    put_u8(out, OFP15_VERSION);
    put_u8(out, t);
    put_u16(out, 0);
    put_u32(out, xid);
}

fn finish(out: &mut [u8], start: usize) -> Result<(), CodecError> {
    let len = len16(out.len() - start, "OpenFlow message")?;
    patch_u16(out, start + 2, len);
    Ok(())
}

fn encode_inner(
    xid: u32,
    msg: &Message,
    out: &mut Vec<u8>,
    start: usize,
) -> Result<(), CodecError> {
    put_header(out, msg.msg_type(), xid);
    match msg {
        Message::Hello { versions } => {
            if !versions.is_empty() {
                let mut bitmap = [0u32; 8];
                for v in versions {
                    bitmap[usize::from(*v / 32)] |= 1 << (v % 32);
                }
                let words = bitmap.iter().rposition(|w| *w != 0).map_or(0, |i| i + 1);
                let elem_start = out.len();
                put_u16(out, OFPHET_VERSIONBITMAP);
                put_u16(out, len16(4 + 4 * words, "hello element")?);
                for w in &bitmap[..words] {
                    put_u32(out, *w);
                }
                pad8_from(out, elem_start);
            }
        }
        Message::Error(e) => {
            put_u16(out, e.err_type);
            put_u16(out, e.code);
            if let Some(exp) = e.experimenter {
                put_u32(out, exp);
            }
            out.extend_from_slice(&e.data);
        }
        Message::EchoRequest(d) | Message::EchoReply(d) => out.extend_from_slice(d),
        Message::FeaturesRequest
        | Message::GetConfigRequest
        | Message::BarrierRequest
        | Message::BarrierReply => {}
        Message::FeaturesReply(f) => {
            put_u64(out, f.datapath_id);
            put_u32(out, f.n_buffers);
            put_u8(out, f.n_tables);
            put_u8(out, f.auxiliary_id);
            put_zeros(out, 2);
            put_u32(out, f.capabilities);
            put_u32(out, 0);
        }
        Message::GetConfigReply(c) | Message::SetConfig(c) => {
            put_u16(out, c.flags);
            put_u16(out, c.miss_send_len);
        }
        Message::FlowMod(fm) => encode_flow_mod(out, fm)?,
        Message::GroupMod(gm) => {
            put_u16(out, gm.command as u16);
            put_u8(out, group_type_code(&gm.group.kind));
            put_u8(out, 0);
            put_u32(out, gm.group.id);
            let len_at = out.len();
            put_u16(out, 0);
            put_zeros(out, 2);
            put_u32(out, OFPG15_BUCKET_ALL);
            let buckets_start = out.len();
            encode_buckets(out, &gm.group)?;
            let blen = len16(out.len() - buckets_start, "group buckets")?;
            patch_u16(out, len_at, blen);
            encode_group_props(out, &gm.group)?;
        }
        Message::MultipartRequest(req) => {
            let mp_type = match &req.body {
                MultipartRequestBody::FlowDesc(_) => OFPMP_FLOW_DESC,
                MultipartRequestBody::GroupDesc { .. } => OFPMP_GROUP_DESC,
                MultipartRequestBody::MeterConfig { .. } => OFPMP_METER_CONFIG,
                MultipartRequestBody::MeterStats { .. } => OFPMP_METER_STATS,
                MultipartRequestBody::Other { mp_type, .. } => *mp_type,
            };
            put_u16(out, mp_type);
            put_u16(out, req.flags);
            put_zeros(out, 4);
            match &req.body {
                MultipartRequestBody::FlowDesc(f) => {
                    put_u8(out, f.table_id);
                    put_zeros(out, 3);
                    put_u32(out, f.out_port);
                    put_u32(out, f.out_group);
                    put_zeros(out, 4);
                    put_u64(out, f.cookie);
                    put_u64(out, f.cookie_mask);
                    oxm::encode_match(out, &f.matches)?;
                }
                MultipartRequestBody::GroupDesc { group_id } => {
                    put_u32(out, *group_id);
                    put_zeros(out, 4);
                }
                MultipartRequestBody::MeterConfig { meter_id }
                | MultipartRequestBody::MeterStats { meter_id } => {
                    put_u32(out, *meter_id);
                    put_zeros(out, 4);
                }
                MultipartRequestBody::Other { body, .. } => out.extend_from_slice(body),
            }
        }
        Message::MultipartReply(rep) => {
            let mp_type = match &rep.body {
                MultipartReplyBody::FlowDesc(_) => OFPMP_FLOW_DESC,
                MultipartReplyBody::GroupDesc(_) => OFPMP_GROUP_DESC,
                MultipartReplyBody::MeterConfig(_) => OFPMP_METER_CONFIG,
                MultipartReplyBody::MeterStats(_) => OFPMP_METER_STATS,
                MultipartReplyBody::Other { mp_type, .. } => *mp_type,
            };
            put_u16(out, mp_type);
            put_u16(out, rep.flags);
            put_zeros(out, 4);
            match &rep.body {
                MultipartReplyBody::FlowDesc(flows) => {
                    for f in flows {
                        encode_flow_desc(out, f)?;
                    }
                }
                MultipartReplyBody::GroupDesc(groups) => {
                    for g in groups {
                        let gstart = out.len();
                        put_u16(out, 0);
                        put_u8(out, group_type_code(&g.kind));
                        put_u8(out, 0);
                        put_u32(out, g.id);
                        let blen_at = out.len();
                        put_u16(out, 0);
                        put_zeros(out, 6);
                        let bstart = out.len();
                        encode_buckets(out, g)?;
                        let blen = len16(out.len() - bstart, "group buckets")?;
                        patch_u16(out, blen_at, blen);
                        encode_group_props(out, g)?;
                        let glen = len16(out.len() - gstart, "group desc")?;
                        patch_u16(out, gstart, glen);
                    }
                }
                MultipartReplyBody::MeterConfig(meters) => {
                    for m in meters {
                        let mstart = out.len();
                        put_u16(out, 0);
                        put_u16(out, m.flags());
                        put_u32(out, m.id);
                        meter_model::encode_bands(out, m)?;
                        let len = len16(out.len() - mstart, "meter config")?;
                        patch_u16(out, mstart, len);
                    }
                }
                MultipartReplyBody::MeterStats(stats) => {
                    for ms in stats {
                        put_u32(out, ms.meter_id);
                        put_u16(out, len16(40 + 16 * ms.bands.len(), "meter stats")?);
                        put_zeros(out, 6);
                        put_u32(out, ms.flow_count);
                        put_u64(out, ms.packet_in_count);
                        put_u64(out, ms.byte_in_count);
                        put_u32(out, ms.duration_sec);
                        put_u32(out, ms.duration_nsec);
                        for b in &ms.bands {
                            put_u64(out, b.packet_count);
                            put_u64(out, b.byte_count);
                        }
                    }
                }
                MultipartReplyBody::Other { body, .. } => out.extend_from_slice(body),
            }
        }
        Message::MeterMod(mm) => {
            put_u16(out, mm.command as u16);
            if mm.command == MeterModCommand::Delete {
                put_u16(out, 0);
                put_u32(out, mm.meter.id);
            } else {
                put_u16(out, mm.meter.flags());
                put_u32(out, mm.meter.id);
                meter_model::encode_bands(out, &mm.meter)?;
            }
        }
        Message::BundleControl(bc) => {
            put_u32(out, bc.bundle_id);
            put_u16(out, bc.ctrl_type as u16);
            put_u16(out, bc.flags);
            out.extend_from_slice(&bc.properties);
        }
        Message::BundleAdd(ba) => {
            put_u32(out, ba.bundle_id);
            put_u16(out, 0);
            put_u16(out, ba.flags);
            let inner_start = out.len();
            encode_inner(xid, &ba.message, out, inner_start)?;
            pad8_from(out, start);
        }
        Message::Other { version, body, .. } => {
            out[start] = *version;
            out.extend_from_slice(body);
        }
        Message::PacketOut(po) => nx::encode_packet_out(out, po)?,
        Message::SetAsync(props) => nx::encode_async(out, props),
        Message::PacketIn2(p) => {
            put_nx_subtype(out, nx::NXT_PACKET_IN2);
            nx::encode_packet_in(out, p, false)?;
        }
        Message::Resume(p) => {
            put_nx_subtype(out, nx::NXT_RESUME);
            nx::encode_packet_in(out, p, true)?;
        }
        Message::SetPacketInFormat(f) => {
            put_nx_subtype(out, nx::NXT_SET_PACKET_IN_FORMAT);
            put_u32(out, *f);
        }
        Message::CtFlushZone(z) => {
            put_nx_subtype(out, nx::NXT_CT_FLUSH_ZONE);
            nx::encode_ct_flush_zone(out, *z);
        }
        Message::TlvTableMod(m) => {
            put_nx_subtype(out, nx::NXT_TLV_TABLE_MOD);
            put_u16(out, m.command as u16);
            put_zeros(out, 6);
            nx::encode_tlv_maps(out, &m.maps);
        }
        Message::TlvTableRequest => put_nx_subtype(out, nx::NXT_TLV_TABLE_REQUEST),
        Message::TlvTableReply(m) => {
            put_nx_subtype(out, nx::NXT_TLV_TABLE_REPLY);
            put_u32(out, m.max_option_space);
            put_u16(out, m.max_fields);
            put_zeros(out, 10);
            nx::encode_tlv_maps(out, &m.maps);
        }
    }
    finish(out, start)
}

fn put_nx_subtype(out: &mut Vec<u8>, subtype: u32) {
    put_u32(out, nx::NX_VENDOR_ID);
    put_u32(out, subtype);
}

fn group_type_code(t: &GroupType) -> u8 {
    match t {
        GroupType::All => 0,
        GroupType::Select(_) => 1,
        GroupType::Other(t) => *t,
    }
}

/// `OFPGBPT15_WEIGHT` bucket property.
const OFPGBPT15_WEIGHT: u16 = 0;
/// `OFPGPT15_EXPERIMENTER` group property type and the Netronome selection-method property.
const OFPGPT15_EXPERIMENTER: u16 = 0xffff;
const NTR_VENDOR_ID: u32 = 0x0000_154d;
const NTRT_SELECTION_METHOD: u32 = 1;

/// Fields a select group can hash on (`selection_method=hash,fields(...)`), in the order
/// OVS keeps and prints them, with their OXM header (no mask bit).
pub const HASH_FIELDS: &[(&str, u32)] = &[
    (
        "eth_src",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_ETH_SRC, false, 6),
    ),
    (
        "eth_dst",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_ETH_DST, false, 6),
    ),
    (
        "eth_type",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_ETH_TYPE, false, 2),
    ),
    (
        "ip_src",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_IPV4_SRC, false, 4),
    ),
    (
        "ip_dst",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_IPV4_DST, false, 4),
    ),
    (
        "ipv6_src",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_IPV6_SRC, false, 16),
    ),
    (
        "ipv6_dst",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_IPV6_DST, false, 16),
    ),
    (
        "nw_proto",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_IP_PROTO, false, 1),
    ),
    (
        "tcp_src",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_TCP_SRC, false, 2),
    ),
    (
        "tcp_dst",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_TCP_DST, false, 2),
    ),
    (
        "udp_src",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_UDP_SRC, false, 2),
    ),
    (
        "udp_dst",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, oxm::OFPXMT_UDP_DST, false, 2),
    ),
    (
        "sctp_src",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, 17, false, 2),
    ),
    (
        "sctp_dst",
        oxm::oxm_header(oxm::OFPXMC_OPENFLOW_BASIC, 18, false, 2),
    ),
];

fn encode_buckets(out: &mut Vec<u8>, group: &Group) -> Result<(), CodecError> {
    for (i, actions) in group.buckets.iter().enumerate() {
        let bstart = out.len();
        put_u16(out, 0);
        put_u16(out, 0);
        put_u32(out, u32::try_from(i).unwrap_or(u32::MAX));
        let astart = out.len();
        for a in actions {
            actions::encode_action(out, a)?;
        }
        let alen = len16(out.len() - astart, "bucket actions")?;
        patch_u16(out, bstart + 2, alen);
        if let GroupType::Select(sel) = &group.kind {
            put_u16(out, OFPGBPT15_WEIGHT);
            put_u16(out, 8);
            put_u16(out, sel.weight(i));
            put_u16(out, 0);
        }
        let blen = len16(out.len() - bstart, "bucket")?;
        patch_u16(out, bstart, blen);
    }
    Ok(())
}

/// Group properties after the buckets: the selection method of a select group.
fn encode_group_props(out: &mut Vec<u8>, group: &Group) -> Result<(), CodecError> {
    let GroupType::Select(sel) = &group.kind else {
        return Ok(());
    };
    if sel.hash_fields.is_empty() {
        if sel.hash_basis != 0 {
            return Err(CodecError::Unencodable {
                what: "select group",
                value: "selection_method_param needs hash fields".into(),
            });
        }
        return Ok(());
    }
    let start = out.len();
    put_u16(out, OFPGPT15_EXPERIMENTER);
    put_u16(out, 0);
    put_u32(out, NTR_VENDOR_ID);
    put_u32(out, NTRT_SELECTION_METHOD);
    put_zeros(out, 4);
    let mut name = [0u8; 16];
    name[..4].copy_from_slice(b"hash");
    out.extend_from_slice(&name);
    put_u64(out, sel.hash_basis);
    for f in &sel.hash_fields {
        let Some((_, h)) = HASH_FIELDS.iter().find(|(n, _)| n == f) else {
            return Err(CodecError::Unencodable {
                what: "select group hash field",
                value: f.clone(),
            });
        };
        put_u32(out, *h);
        put_zeros(out, (h & 0xff) as usize);
        let l = out.len();
        out[l - (h & 0xff) as usize..].fill(0xff);
    }
    let len = len16(out.len() - start, "selection method property")?;
    patch_u16(out, start + 2, len);
    pad8_from(out, start);
    Ok(())
}

/// Decodes the group properties following the buckets into the select group's method.
fn decode_group_props(r: &mut Reader<'_>, kind: &mut GroupType) -> Result<(), CodecError> {
    while r.remaining() >= 4 {
        let ptype = r.u16()?;
        let plen = usize::from(r.u16()?);
        if plen < 4 {
            return Err(CodecError::BadLength {
                what: "group property",
                len: plen,
            });
        }
        let mut p = r.sub(plen - 4, "group property")?;
        r.skip((round8(plen) - plen).min(r.remaining()))?;
        if ptype != OFPGPT15_EXPERIMENTER || p.remaining() < 36 {
            continue;
        }
        let exp = p.u32()?;
        let exp_type = p.u32()?;
        if exp != NTR_VENDOR_ID || exp_type != NTRT_SELECTION_METHOD {
            continue;
        }
        p.skip(4)?;
        let method = p.bytes(16)?;
        let basis = p.u64()?;
        let mut fields = Vec::new();
        while p.remaining() >= 4 {
            let h = p.u32()?;
            let n = (h & 0xff) as usize;
            let mask = p.bytes(n)?;
            let name = HASH_FIELDS
                .iter()
                .find(|(_, fh)| *fh == h & !0x100)
                .map(|(n, _)| n.to_string())
                .unwrap_or_else(|| format!("{h:#010x}"));
            if mask.iter().any(|b| *b != 0xff) {
                return Err(CodecError::Invalid {
                    what: "select group hash field mask (only whole fields are modelled)",
                    value: u64::from(h),
                });
            }
            fields.push(name);
        }
        if let GroupType::Select(sel) = kind {
            if &method[..4] == b"hash" && method[4..].iter().all(|b| *b == 0) {
                sel.hash_fields = fields;
                sel.hash_basis = basis;
            }
        }
    }
    Ok(())
}

fn encode_flow_mod(out: &mut Vec<u8>, fm: &FlowMod) -> Result<(), CodecError> {
    put_u64(out, fm.flow.cookie);
    put_u64(out, fm.cookie_mask);
    put_u8(out, fm.flow.table);
    put_u8(out, fm.command as u8);
    put_u16(out, fm.idle_timeout);
    put_u16(out, fm.hard_timeout);
    put_u16(out, fm.flow.priority);
    put_u32(out, OFP_NO_BUFFER);
    put_u32(out, fm.out_port);
    put_u32(out, fm.out_group);
    put_u16(out, fm.flags);
    put_u16(out, fm.importance);
    oxm::encode_match(out, &fm.flow.matches)?;
    if matches!(
        fm.command,
        FlowModCommand::Add | FlowModCommand::Modify | FlowModCommand::ModifyStrict
    ) {
        actions::encode_instructions(out, &fm.flow.actions)?;
    }
    Ok(())
}

fn encode_flow_desc(out: &mut Vec<u8>, f: &Flow) -> Result<(), CodecError> {
    let start = out.len();
    put_u16(out, 0);
    put_zeros(out, 2);
    put_u8(out, f.table);
    put_u8(out, 0);
    put_u16(out, f.priority);
    put_zeros(out, 8); // idle, hard, flags, importance
    put_u64(out, f.cookie);
    oxm::encode_match(out, &f.matches)?;
    // Empty ofp_stats (reserved, length=4) padded to 8.
    put_u16(out, 0);
    put_u16(out, 4);
    put_zeros(out, 4);
    actions::encode_instructions(out, &f.actions)?;
    let len = len16(out.len() - start, "flow desc")?;
    patch_u16(out, start, len);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Decoding

/// Decodes exactly one message (`buf` must hold the whole frame, as [`frame_len`] says).
/// Messages of other versions than 1.5 decode as [`Message::Other`], except hello and error.
pub fn decode(buf: &[u8]) -> Result<(Header, Message), CodecError> {
    let h = peek_header(buf).ok_or(CodecError::Truncated {
        what: "OpenFlow header",
        need: OFP_HEADER_LEN,
        have: buf.len(),
    })?;
    let len = usize::from(h.length);
    if len < OFP_HEADER_LEN || len != buf.len() {
        return Err(CodecError::BadLength {
            what: "OpenFlow message",
            len,
        });
    }
    let mut r = Reader::new(&buf[OFP_HEADER_LEN..], "OpenFlow message body");
    let msg =
        if h.version != OFP15_VERSION && !matches!(h.msg_type, msg_type::HELLO | msg_type::ERROR) {
            Message::Other {
                version: h.version,
                msg_type: h.msg_type,
                body: r.rest().to_vec(),
            }
        } else {
            decode_body(&h, &mut r)?
        };
    Ok((h, msg))
}

fn decode_body(h: &Header, r: &mut Reader<'_>) -> Result<Message, CodecError> {
    use msg_type as t;
    Ok(match h.msg_type {
        t::HELLO => {
            let mut versions = Vec::new();
            while r.remaining() >= 4 {
                let etype = r.u16()?;
                let elen = usize::from(r.u16()?);
                if elen < 4 {
                    return Err(CodecError::BadLength {
                        what: "hello element",
                        len: elen,
                    });
                }
                let mut e = r.sub(elen - 4, "hello element")?;
                r.skip((round8(elen) - elen).min(r.remaining()))?;
                if etype == OFPHET_VERSIONBITMAP {
                    let mut word = 0u8;
                    while e.remaining() >= 4 {
                        let w = e.u32()?;
                        for bit in 0..32u8 {
                            if w & (1 << bit) != 0 {
                                versions.push(word.saturating_mul(32).saturating_add(bit));
                            }
                        }
                        word = word.saturating_add(1);
                    }
                }
            }
            Message::Hello { versions }
        }
        t::ERROR => {
            let err_type = r.u16()?;
            let code = r.u16()?;
            let experimenter = if err_type == errors::OFPET_EXPERIMENTER {
                Some(r.u32()?)
            } else {
                None
            };
            Message::Error(ErrorMsg {
                err_type,
                code,
                experimenter,
                data: r.rest().to_vec(),
            })
        }
        t::ECHO_REQUEST => Message::EchoRequest(r.rest().to_vec()),
        t::ECHO_REPLY => Message::EchoReply(r.rest().to_vec()),
        t::FEATURES_REQUEST => Message::FeaturesRequest,
        t::FEATURES_REPLY => {
            let datapath_id = r.u64()?;
            let n_buffers = r.u32()?;
            let n_tables = r.u8()?;
            let auxiliary_id = r.u8()?;
            r.skip(2)?;
            let capabilities = r.u32()?;
            r.skip(4)?;
            Message::FeaturesReply(Features {
                datapath_id,
                n_buffers,
                n_tables,
                auxiliary_id,
                capabilities,
            })
        }
        t::GET_CONFIG_REQUEST => Message::GetConfigRequest,
        t::GET_CONFIG_REPLY | t::SET_CONFIG => {
            let c = SwitchConfig {
                flags: r.u16()?,
                miss_send_len: r.u16()?,
            };
            if h.msg_type == t::SET_CONFIG {
                Message::SetConfig(c)
            } else {
                Message::GetConfigReply(c)
            }
        }
        t::FLOW_MOD => Message::FlowMod(decode_flow_mod(r)?),
        t::GROUP_MOD => {
            let command = match r.u16()? {
                0 => GroupModCommand::Add,
                1 => GroupModCommand::Modify,
                2 => GroupModCommand::Delete,
                c => {
                    return Err(CodecError::Invalid {
                        what: "group_mod command",
                        value: u64::from(c),
                    })
                }
            };
            let mut kind = decode_group_type(r.u8()?);
            r.skip(1)?;
            let id = r.u32()?;
            let blen = usize::from(r.u16()?);
            r.skip(2)?;
            let _command_bucket_id = r.u32()?;
            let mut b = r.sub(blen, "group buckets")?;
            let buckets = decode_buckets(&mut b, &mut kind)?;
            decode_group_props(r, &mut kind)?;
            Message::GroupMod(GroupMod {
                command,
                group: Group { id, kind, buckets },
            })
        }
        t::MULTIPART_REQUEST => {
            let mp_type = r.u16()?;
            let flags = r.u16()?;
            r.skip(4)?;
            let body = match mp_type {
                OFPMP_FLOW_DESC => {
                    let table_id = r.u8()?;
                    r.skip(3)?;
                    let out_port = r.u32()?;
                    let out_group = r.u32()?;
                    r.skip(4)?;
                    let cookie = r.u64()?;
                    let cookie_mask = r.u64()?;
                    let matches = oxm::decode_match(r)?;
                    MultipartRequestBody::FlowDesc(FlowStatsRequest {
                        table_id,
                        out_port,
                        out_group,
                        cookie,
                        cookie_mask,
                        matches,
                    })
                }
                OFPMP_GROUP_DESC => {
                    let group_id = r.u32()?;
                    r.skip(4)?;
                    MultipartRequestBody::GroupDesc { group_id }
                }
                OFPMP_METER_CONFIG => {
                    let meter_id = r.u32()?;
                    r.skip(4)?;
                    MultipartRequestBody::MeterConfig { meter_id }
                }
                OFPMP_METER_STATS => {
                    let meter_id = r.u32()?;
                    r.skip(4)?;
                    MultipartRequestBody::MeterStats { meter_id }
                }
                _ => MultipartRequestBody::Other {
                    mp_type,
                    body: r.rest().to_vec(),
                },
            };
            Message::MultipartRequest(MultipartRequest { flags, body })
        }
        t::MULTIPART_REPLY => {
            let mp_type = r.u16()?;
            let flags = r.u16()?;
            r.skip(4)?;
            let body = match mp_type {
                OFPMP_FLOW_DESC => {
                    let mut flows = Vec::new();
                    while !r.is_empty() {
                        let len = usize::from(r.peek_u16()?);
                        if len < 24 {
                            return Err(CodecError::BadLength {
                                what: "flow desc",
                                len,
                            });
                        }
                        let mut fr = r.sub(len, "flow desc")?;
                        flows.push(decode_flow_desc(&mut fr)?);
                    }
                    MultipartReplyBody::FlowDesc(flows)
                }
                OFPMP_GROUP_DESC => {
                    let mut groups = Vec::new();
                    while !r.is_empty() {
                        let len = usize::from(r.peek_u16()?);
                        if len < 16 {
                            return Err(CodecError::BadLength {
                                what: "group desc",
                                len,
                            });
                        }
                        let mut g = r.sub(len, "group desc")?;
                        g.skip(2)?;
                        let mut kind = decode_group_type(g.u8()?);
                        g.skip(1)?;
                        let id = g.u32()?;
                        let blen = usize::from(g.u16()?);
                        g.skip(6)?;
                        let mut b = g.sub(blen, "group buckets")?;
                        let buckets = decode_buckets(&mut b, &mut kind)?;
                        decode_group_props(&mut g, &mut kind)?;
                        groups.push(Group { id, kind, buckets });
                    }
                    MultipartReplyBody::GroupDesc(groups)
                }
                OFPMP_METER_CONFIG => {
                    let mut meters = Vec::new();
                    while !r.is_empty() {
                        let len = usize::from(r.peek_u16()?);
                        if len < 8 {
                            return Err(CodecError::BadLength {
                                what: "meter config",
                                len,
                            });
                        }
                        let mut m = r.sub(len, "meter config")?;
                        m.skip(2)?;
                        let flags = m.u16()?;
                        let id = m.u32()?;
                        let bands = meter_model::decode_bands(m.rest())?;
                        meters.push(meter_model::meter_from_parts(id, flags, bands));
                    }
                    MultipartReplyBody::MeterConfig(meters)
                }
                OFPMP_METER_STATS => {
                    let mut stats = Vec::new();
                    while !r.is_empty() {
                        let mut peek = *r;
                        peek.skip(4)?;
                        let len = usize::from(peek.u16()?);
                        if len < 40 || (len - 40) % 16 != 0 {
                            return Err(CodecError::BadLength {
                                what: "meter stats",
                                len,
                            });
                        }
                        let mut m = r.sub(len, "meter stats")?;
                        let meter_id = m.u32()?;
                        m.skip(8)?;
                        let mut ms = MeterStats {
                            meter_id,
                            flow_count: m.u32()?,
                            packet_in_count: m.u64()?,
                            byte_in_count: m.u64()?,
                            duration_sec: m.u32()?,
                            duration_nsec: m.u32()?,
                            bands: Vec::new(),
                        };
                        while !m.is_empty() {
                            ms.bands.push(BandStats {
                                packet_count: m.u64()?,
                                byte_count: m.u64()?,
                            });
                        }
                        stats.push(ms);
                    }
                    MultipartReplyBody::MeterStats(stats)
                }
                _ => MultipartReplyBody::Other {
                    mp_type,
                    body: r.rest().to_vec(),
                },
            };
            Message::MultipartReply(MultipartReply { flags, body })
        }
        t::METER_MOD => {
            let command = match r.u16()? {
                0 => MeterModCommand::Add,
                1 => MeterModCommand::Modify,
                2 => MeterModCommand::Delete,
                c => {
                    return Err(CodecError::Invalid {
                        what: "meter_mod command",
                        value: u64::from(c),
                    })
                }
            };
            let flags = r.u16()?;
            let id = r.u32()?;
            let bands = meter_model::decode_bands(r.rest())?;
            Message::MeterMod(MeterMod {
                command,
                meter: meter_model::meter_from_parts(id, flags, bands),
            })
        }
        t::PACKET_OUT => Message::PacketOut(nx::decode_packet_out(r)?),
        t::SET_ASYNC => Message::SetAsync(nx::decode_async(r)?),
        t::EXPERIMENTER if r.remaining() >= 8 && r.peek_u32()? == nx::NX_VENDOR_ID => {
            let mut body = *r;
            body.skip(4)?;
            let subtype = body.u32()?;
            match subtype {
                nx::NXT_PACKET_IN2 => Message::PacketIn2(nx::decode_packet_in(&mut body)?),
                nx::NXT_RESUME => Message::Resume(nx::decode_packet_in(&mut body)?),
                nx::NXT_SET_PACKET_IN_FORMAT => Message::SetPacketInFormat(body.u32()?),
                nx::NXT_CT_FLUSH_ZONE => {
                    body.skip(6)?;
                    Message::CtFlushZone(body.u16()?)
                }
                nx::NXT_TLV_TABLE_MOD => {
                    let command = match body.u16()? {
                        0 => TlvTableCommand::Add,
                        1 => TlvTableCommand::Delete,
                        2 => TlvTableCommand::Clear,
                        c => {
                            return Err(CodecError::Invalid {
                                what: "tlv_table_mod command",
                                value: u64::from(c),
                            })
                        }
                    };
                    body.skip(6)?;
                    Message::TlvTableMod(TlvTableMod {
                        command,
                        maps: nx::decode_tlv_maps(&mut body)?,
                    })
                }
                nx::NXT_TLV_TABLE_REQUEST => Message::TlvTableRequest,
                nx::NXT_TLV_TABLE_REPLY => {
                    let max_option_space = body.u32()?;
                    let max_fields = body.u16()?;
                    body.skip(10)?;
                    Message::TlvTableReply(TlvTableReply {
                        max_option_space,
                        max_fields,
                        maps: nx::decode_tlv_maps(&mut body)?,
                    })
                }
                _ => Message::Other {
                    version: h.version,
                    msg_type: h.msg_type,
                    body: r.rest().to_vec(),
                },
            }
        }
        t::BARRIER_REQUEST => Message::BarrierRequest,
        t::BARRIER_REPLY => Message::BarrierReply,
        t::BUNDLE_CONTROL => {
            let bundle_id = r.u32()?;
            let ctrl_type = BundleCtrlType::from_u16(r.u16()?)?;
            let flags = r.u16()?;
            Message::BundleControl(BundleControl {
                bundle_id,
                ctrl_type,
                flags,
                properties: r.rest().to_vec(),
            })
        }
        t::BUNDLE_ADD_MESSAGE => {
            let bundle_id = r.u32()?;
            r.skip(2)?;
            let flags = r.u16()?;
            let inner = r.rest();
            let ih = peek_header(inner).ok_or(CodecError::Truncated {
                what: "bundled message header",
                need: OFP_HEADER_LEN,
                have: inner.len(),
            })?;
            let ilen = usize::from(ih.length);
            if ilen < OFP_HEADER_LEN || ilen > inner.len() {
                return Err(CodecError::BadLength {
                    what: "bundled message",
                    len: ilen,
                });
            }
            let (_, message) = decode(&inner[..ilen])?;
            Message::BundleAdd(BundleAdd {
                bundle_id,
                flags,
                message: Box::new(message),
            })
        }
        _ => Message::Other {
            version: h.version,
            msg_type: h.msg_type,
            body: r.rest().to_vec(),
        },
    })
}

fn decode_group_type(t: u8) -> GroupType {
    match t {
        0 => GroupType::All,
        1 => GroupType::Select(crate::flow::SelectGroup::default()),
        t => GroupType::Other(t),
    }
}

fn decode_flow_mod(r: &mut Reader<'_>) -> Result<FlowMod, CodecError> {
    let cookie = r.u64()?;
    let cookie_mask = r.u64()?;
    let table = r.u8()?;
    let command = FlowModCommand::from_u8(r.u8()?)?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = r.u16()?;
    let _buffer_id = r.u32()?;
    let out_port = r.u32()?;
    let out_group = r.u32()?;
    let flags = r.u16()?;
    let importance = r.u16()?;
    let matches = oxm::decode_match(r)?;
    let actions = actions::decode_instructions(r)?;
    Ok(FlowMod {
        command,
        flow: Flow {
            table,
            priority,
            cookie,
            matches,
            actions,
        },
        cookie_mask,
        idle_timeout,
        hard_timeout,
        out_port,
        out_group,
        flags,
        importance,
    })
}

fn decode_flow_desc(r: &mut Reader<'_>) -> Result<Flow, CodecError> {
    r.skip(4)?; // length (already used), pad2
    let table = r.u8()?;
    r.skip(1)?;
    let priority = r.u16()?;
    r.skip(8)?; // idle_timeout, hard_timeout, flags, importance
    let cookie = r.u64()?;
    let matches = oxm::decode_match(r)?;
    // ofp_stats: reserved, length (covering its header and OXS TLVs), padded to 8.
    r.skip(2)?;
    let slen = usize::from(r.u16()?);
    if slen < 4 {
        return Err(CodecError::BadLength {
            what: "ofp_stats",
            len: slen,
        });
    }
    r.skip(round8(slen) - 4)?;
    let actions = actions::decode_instructions(r)?;
    Ok(Flow {
        table,
        priority,
        cookie,
        matches,
        actions,
    })
}

fn decode_buckets(
    r: &mut Reader<'_>,
    kind: &mut GroupType,
) -> Result<Vec<Vec<Action>>, CodecError> {
    let mut buckets = Vec::new();
    let mut weights = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.u16()?);
        let alen = usize::from(r.u16()?);
        let _bucket_id = r.u32()?;
        if len < 8 + alen {
            return Err(CodecError::BadLength {
                what: "bucket",
                len,
            });
        }
        let mut a = r.sub(alen, "bucket actions")?;
        buckets.push(actions::decode_actions(&mut a)?);
        let mut props = r.sub(len - 8 - alen, "bucket properties")?;
        let mut weight = 1;
        while props.remaining() >= 4 {
            let ptype = props.u16()?;
            let plen = usize::from(props.u16()?);
            if plen < 4 {
                return Err(CodecError::BadLength {
                    what: "bucket property",
                    len: plen,
                });
            }
            let mut p = props.sub(plen - 4, "bucket property")?;
            props.skip((round8(plen) - plen).min(props.remaining()))?;
            if ptype == OFPGBPT15_WEIGHT {
                weight = p.u16()?;
            }
        }
        weights.push(weight);
    }
    if let GroupType::Select(sel) = kind {
        sel.weights = weights;
        *sel = std::mem::take(sel).canonical();
    }
    Ok(buckets)
}

#[cfg(test)]
mod tests;
