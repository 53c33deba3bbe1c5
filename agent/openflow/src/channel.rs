//! An async OpenFlow 1.5 connection to a switch's management socket (`RUNDIR/BRIDGE.mgmt`).
//!
//! [`OfChannel::connect`] does the hello exchange (OpenFlow 1.5 is required) and spawns two
//! tasks: a writer fed by a bounded queue of encoded chunks, and a reader that answers echo
//! requests and routes replies to waiting requests by xid (multipart replies are assembled).
//! Requests: [`OfChannel::barrier`], [`OfChannel::dump_flows`], [`OfChannel::dump_groups`],
//! [`OfChannel::features`], [`OfChannel::echo`] and the main one,
//! [`OfChannel::apply_bundle`]: an ATOMIC|ORDERED bundle that either applies every op or
//! leaves the switch as it was, reporting which op failed. Meters: [`OfChannel::meter_mod`],
//! [`OfChannel::dump_meters`], [`OfChannel::meter_stats`] (meter ops in `apply_bundle` run
//! around the bundle: OVS 3.1 refuses meter_mods inside one). Packet path:
//! [`OfChannel::enable_packet_in`], [`OfChannel::take_packet_ins`] (an mpsc receiver of
//! decoded packet-in2s, bounded, overflow dropped and counted), [`OfChannel::packet_out`],
//! [`OfChannel::resume`], [`OfChannel::ct_flush_zone`], [`OfChannel::tlv_table_mod`],
//! [`OfChannel::tlv_table`].
//!
//! A lost connection fails every pending and later request with [`OfError::Disconnected`];
//! the caller reconnects with a new `OfChannel`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::codec::nx::{NXPIF_NXT_PACKET_IN2, OFPACPT_PACKET_IN_MASTER, OFPACPT_PACKET_IN_SLAVE};
use crate::codec::{
    self, BundleControl, BundleCtrlType, CodecError, ErrorMsg, Features, FlowMod, FlowStatsRequest,
    GroupMod, GroupModCommand, Message, MultipartReplyBody, MultipartRequest, MultipartRequestBody,
    OFP15_VERSION, OFPBF_ATOMIC, OFPBF_ORDERED, OFPG_ALL,
};
use crate::codec::{MeterMod, MeterModCommand, PacketIn, PacketOut, TlvTableMod, TlvTableReply};
use crate::flow::{Flow, FlowKey, Group, GroupType};
use crate::meter::{Meter, MeterStats, OFPM_ALL};
use std::sync::atomic::AtomicU64;

/// Tuning for an [`OfChannel`].
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// How long to wait for the hello and for each reply (a bundle commit of many flows can
    /// take seconds).
    pub request_timeout: Duration,
    /// Target size of each write when streaming a bundle.
    pub write_chunk_bytes: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            request_timeout: Duration::from_secs(120),
            write_chunk_bytes: 256 * 1024,
        }
    }
}

/// Errors from an [`OfChannel`].
#[derive(Debug, thiserror::Error)]
pub enum OfError {
    #[error("connecting to OpenFlow socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("OpenFlow version negotiation failed: {0}")]
    Version(String),
    #[error("OpenFlow connection closed")]
    Disconnected,
    #[error("OpenFlow I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("OpenFlow encoding/decoding error: {0}")]
    Codec(#[from] CodecError),
    #[error("cannot encode bundle op {index}: {source}")]
    Encode { index: usize, source: CodecError },
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        what: &'static str,
        timeout: Duration,
    },
    #[error("switch rejected {request}: {error}")]
    Switch {
        request: &'static str,
        error: ErrorMsg,
    },
    #[error("unexpected reply to {request}: {got}")]
    Unexpected { request: &'static str, got: String },
    /// A bundle was rejected because of one of its messages; nothing was applied.
    /// `index` is the position in the ops passed to [`OfChannel::apply_bundle`] of the first
    /// failure; `failures` lists every failure the switch reported.
    #[error("bundle op {index} rejected: {error} (bundle discarded, switch unchanged)")]
    BundleOp {
        index: usize,
        error: ErrorMsg,
        failures: Vec<(usize, ErrorMsg)>,
    },
}

/// One change inside a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleOp {
    /// Add a flow, replacing any flow with the same (table, priority, match), cookie included.
    FlowAdd(Flow),
    /// Replace the actions of exactly this (table, priority, match). OpenFlow 1.1+ keeps the
    /// installed cookie on modify; use `FlowAdd` when the cookie changes.
    FlowModifyStrict(Flow),
    /// Delete exactly this (table, priority, match). Foreign flows can be deleted too: their
    /// unmodelled match fields are kept as raw bytes in [`crate::flow::MatchField::Other`].
    FlowDeleteStrict(FlowKey),
    GroupAdd(Group),
    GroupModify(Group),
    GroupDelete(u32),
    /// Meter changes. Open vSwitch 3.1 refuses meter_mods inside a bundle
    /// (`OFPBFC_MSG_UNSUP`, checked by the `meters_are_refused_inside_a_bundle` test), so
    /// [`OfChannel::apply_bundle`] applies them around the bundle, not in it: every
    /// `MeterAdd`/`MeterModify` first (each confirmed by a barrier; a failure stops before
    /// the bundle is sent), then the bundle of flow and group ops, then every `MeterDelete`
    /// once the bundle committed. So flows never reference a missing meter; a failed bundle
    /// can leave newly added meters behind (unused, and removed by the next full diff).
    MeterAdd(Meter),
    MeterModify(Meter),
    MeterDelete(u32),
}

impl BundleOp {
    /// The OpenFlow message this op sends (inside the bundle, or around it for meters).
    pub fn to_message(&self) -> Message {
        match self {
            BundleOp::FlowAdd(f) => Message::FlowMod(FlowMod::add(f.clone())),
            BundleOp::FlowModifyStrict(f) => Message::FlowMod(FlowMod::modify_strict(f.clone())),
            BundleOp::FlowDeleteStrict(k) => Message::FlowMod(FlowMod::delete_strict(k)),
            BundleOp::GroupAdd(g) => Message::GroupMod(GroupMod {
                command: GroupModCommand::Add,
                group: g.clone(),
            }),
            BundleOp::GroupModify(g) => Message::GroupMod(GroupMod {
                command: GroupModCommand::Modify,
                group: g.clone(),
            }),
            BundleOp::GroupDelete(id) => Message::GroupMod(GroupMod {
                command: GroupModCommand::Delete,
                group: Group {
                    id: *id,
                    kind: GroupType::All,
                    buckets: vec![],
                },
            }),
            BundleOp::MeterAdd(m) => Message::MeterMod(MeterMod {
                command: MeterModCommand::Add,
                meter: m.clone(),
            }),
            BundleOp::MeterModify(m) => Message::MeterMod(MeterMod {
                command: MeterModCommand::Modify,
                meter: m.clone(),
            }),
            BundleOp::MeterDelete(id) => Message::MeterMod(MeterMod {
                command: MeterModCommand::Delete,
                meter: Meter {
                    id: *id,
                    ..Meter::default()
                },
            }),
        }
    }

    fn is_meter(&self) -> bool {
        matches!(
            self,
            BundleOp::MeterAdd(_) | BundleOp::MeterModify(_) | BundleOp::MeterDelete(_)
        )
    }
}

type Reply = Result<Message, OfError>;

enum Pending {
    /// One reply (or an error) completes the request.
    Single(oneshot::Sender<Reply>),
    /// Multipart replies accumulate until one arrives without the MORE flag.
    Multi {
        parts: Vec<MultipartReplyBody>,
        tx: oneshot::Sender<Result<Vec<MultipartReplyBody>, OfError>>,
    },
}

/// Errors for a block of xids (the messages of one bundle).
struct XidRange {
    start: u32,
    len: u32,
    errors: Vec<(usize, ErrorMsg)>,
}

/// How many decoded packet-ins the channel buffers for [`OfChannel::take_packet_ins`];
/// beyond that they are dropped and counted ([`OfChannel::dropped_packet_ins`]).
pub const PACKET_IN_QUEUE: usize = 1024;

struct Shared {
    packet_in_tx: mpsc::Sender<PacketIn>,
    packet_in_dropped: AtomicU64,
    packet_in_bad: AtomicU64,
    pending: Mutex<HashMap<u32, Pending>>,
    ranges: Mutex<HashMap<u64, XidRange>>,
    closed: AtomicBool,
    /// Woken when `closed` turns true.
    closed_notify: tokio::sync::Notify,
    next_xid: AtomicU32,
}

impl Shared {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Pending>> {
        // A poisoned lock only means another task panicked mid-update of a map of senders;
        // the map itself is still usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn lock_ranges(&self) -> std::sync::MutexGuard<'_, HashMap<u64, XidRange>> {
        self.ranges.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn xids(&self, n: u32) -> u32 {
        self.next_xid.fetch_add(n, Ordering::Relaxed)
    }
}

/// Removes a bundle's xid range when the bundle call ends, however it ends.
struct RangeGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for RangeGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock_ranges().remove(&self.id);
    }
}

/// An OpenFlow 1.5 connection. Cheap to share by reference; all methods take `&self`.
pub struct OfChannel {
    shared: Arc<Shared>,
    packet_ins: Mutex<Option<mpsc::Receiver<PacketIn>>>,
    tx: mpsc::Sender<Vec<u8>>,
    config: ChannelConfig,
    next_bundle: AtomicU32,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    path: PathBuf,
}

impl Drop for OfChannel {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl std::fmt::Debug for OfChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfChannel")
            .field("path", &self.path)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl OfChannel {
    /// Connects with the default [`ChannelConfig`].
    pub async fn connect(path: &Path) -> Result<OfChannel, OfError> {
        Self::connect_with(path, ChannelConfig::default()).await
    }

    /// Connects to a unix socket (e.g. `RUNDIR/br-int.mgmt`) and negotiates OpenFlow 1.5.
    pub async fn connect_with(path: &Path, config: ChannelConfig) -> Result<OfChannel, OfError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| OfError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        let (mut rd, mut wr) = stream.into_split();
        let mut buf = BytesMut::with_capacity(64 * 1024);

        let hello = codec::encode_to_vec(
            0,
            &Message::Hello {
                versions: vec![OFP15_VERSION],
            },
        )?;
        wr.write_all(&hello).await?;
        let timeout = config.request_timeout;
        tokio::time::timeout(timeout, handshake(&mut rd, &mut wr, &mut buf))
            .await
            .map_err(|_| OfError::Timeout {
                what: "OpenFlow hello",
                timeout,
            })??;

        let (packet_in_tx, packet_in_rx) = mpsc::channel(PACKET_IN_QUEUE);
        let shared = Arc::new(Shared {
            packet_in_tx,
            packet_in_dropped: AtomicU64::new(0),
            packet_in_bad: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            ranges: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            closed_notify: tokio::sync::Notify::new(),
            next_xid: AtomicU32::new(1),
        });
        let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
        let writer = tokio::spawn(write_loop(wr, rx, shared.clone()));
        let reader = tokio::spawn(read_loop(rd, buf, shared.clone(), tx.clone()));
        tracing::debug!(path = %path.display(), "OpenFlow 1.5 channel connected");
        Ok(OfChannel {
            shared,
            packet_ins: Mutex::new(Some(packet_in_rx)),
            tx,
            config,
            next_bundle: AtomicU32::new(1),
            reader,
            writer,
            path: path.to_path_buf(),
        })
    }

    /// Whether the connection has been lost.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Completes when the connection is lost (at once if it already is), so a caller notices
    /// a restarted switch without waiting for its next request.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.closed_notify.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    async fn send(&self, bytes: Vec<u8>) -> Result<(), OfError> {
        if self.is_closed() {
            return Err(OfError::Disconnected);
        }
        self.tx.send(bytes).await.map_err(|_| OfError::Disconnected)
    }

    async fn wait<T>(
        &self,
        what: &'static str,
        rx: oneshot::Receiver<Result<T, OfError>>,
        xid: u32,
    ) -> Result<T, OfError> {
        let timeout = self.config.request_timeout;
        let r = tokio::time::timeout(timeout, rx).await;
        match r {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(OfError::Disconnected),
            Err(_) => {
                self.shared.lock_pending().remove(&xid);
                Err(OfError::Timeout { what, timeout })
            }
        }
    }

    /// Sends `msg` and registers for its single reply (the caller awaits `rx`).
    async fn start_request(
        &self,
        msg: &Message,
    ) -> Result<(u32, oneshot::Receiver<Reply>), OfError> {
        let xid = self.shared.xids(1);
        let bytes = codec::encode_to_vec(xid, msg)?;
        let (tx, rx) = oneshot::channel();
        self.shared.lock_pending().insert(xid, Pending::Single(tx));
        if let Err(e) = self.send(bytes).await {
            self.shared.lock_pending().remove(&xid);
            return Err(e);
        }
        Ok((xid, rx))
    }

    async fn request(&self, what: &'static str, msg: &Message) -> Result<Message, OfError> {
        let (xid, rx) = self.start_request(msg).await?;
        match self.wait(what, rx, xid).await? {
            Message::Error(error) => Err(OfError::Switch {
                request: what,
                error,
            }),
            m => Ok(m),
        }
    }

    async fn multipart(
        &self,
        what: &'static str,
        body: MultipartRequestBody,
    ) -> Result<Vec<MultipartReplyBody>, OfError> {
        let xid = self.shared.xids(1);
        let bytes = codec::encode_to_vec(
            xid,
            &Message::MultipartRequest(MultipartRequest { flags: 0, body }),
        )?;
        let (tx, rx) = oneshot::channel();
        self.shared.lock_pending().insert(
            xid,
            Pending::Multi {
                parts: Vec::new(),
                tx,
            },
        );
        if let Err(e) = self.send(bytes).await {
            self.shared.lock_pending().remove(&xid);
            return Err(e);
        }
        self.wait(what, rx, xid).await
    }

    /// Sends a barrier and waits for its reply: every earlier message has been processed.
    pub async fn barrier(&self) -> Result<(), OfError> {
        match self.request("barrier", &Message::BarrierRequest).await? {
            Message::BarrierReply => Ok(()),
            m => Err(unexpected("barrier", &m)),
        }
    }

    /// Sends an echo request and returns the echoed payload.
    pub async fn echo(&self, payload: Vec<u8>) -> Result<Vec<u8>, OfError> {
        match self.request("echo", &Message::EchoRequest(payload)).await? {
            Message::EchoReply(d) => Ok(d),
            m => Err(unexpected("echo", &m)),
        }
    }

    /// The switch's features (datapath id, number of tables).
    pub async fn features(&self) -> Result<Features, OfError> {
        match self
            .request("features request", &Message::FeaturesRequest)
            .await?
        {
            Message::FeaturesReply(f) => Ok(f),
            m => Err(unexpected("features request", &m)),
        }
    }

    /// Every flow in every table (statistics dropped).
    pub async fn dump_flows(&self) -> Result<Vec<Flow>, OfError> {
        let parts = self
            .multipart(
                "flow stats",
                MultipartRequestBody::FlowDesc(FlowStatsRequest::all()),
            )
            .await?;
        let mut flows = Vec::new();
        for p in parts {
            match p {
                MultipartReplyBody::FlowDesc(f) => flows.extend(f),
                other => return Err(unexpected_part("flow stats", &other)),
            }
        }
        Ok(flows)
    }

    /// Every group.
    pub async fn dump_groups(&self) -> Result<Vec<Group>, OfError> {
        let parts = self
            .multipart(
                "group desc",
                MultipartRequestBody::GroupDesc { group_id: OFPG_ALL },
            )
            .await?;
        let mut groups = Vec::new();
        for p in parts {
            match p {
                MultipartReplyBody::GroupDesc(g) => groups.extend(g),
                other => return Err(unexpected_part("group desc", &other)),
            }
        }
        Ok(groups)
    }

    /// Applies `ops` in one ATOMIC|ORDERED bundle: all of them, or (on any error) none.
    ///
    /// The ops are encoded first (an op that cannot be encoded fails the call before
    /// anything is sent), then open + every add + a barrier are streamed in large writes
    /// without waiting per message. If the switch rejected any message the bundle is
    /// discarded; otherwise it is committed. A failure names the op index and the decoded
    /// OpenFlow error ([`OfError::BundleOp`]). An empty `ops` is a no-op.
    ///
    /// Meter ops are applied around the bundle (see [`BundleOp::MeterAdd`]); an error from
    /// one is reported as [`OfError::BundleOp`] with its index in `ops`.
    pub async fn apply_bundle(&self, ops: Vec<BundleOp>) -> Result<(), OfError> {
        if !ops.iter().any(BundleOp::is_meter) {
            return self.apply_bundle_inner(ops).await;
        }
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut rest = Vec::new();
        let mut rest_index = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                BundleOp::MeterDelete(_) => after.push((i, op)),
                BundleOp::MeterAdd(_) | BundleOp::MeterModify(_) => before.push((i, op)),
                op => {
                    rest_index.push(i);
                    rest.push(op);
                }
            }
        }
        for (i, op) in &before {
            self.meter_op(*i, op).await?;
        }
        if let Err(e) = self.apply_bundle_inner(rest).await {
            return Err(match e {
                OfError::BundleOp {
                    index,
                    error,
                    failures,
                } => OfError::BundleOp {
                    index: rest_index.get(index).copied().unwrap_or(index),
                    error,
                    failures: failures
                        .into_iter()
                        .map(|(i, e)| (rest_index.get(i).copied().unwrap_or(i), e))
                        .collect(),
                },
                e => e,
            });
        }
        for (i, op) in &after {
            self.meter_op(*i, op).await?;
        }
        Ok(())
    }

    async fn meter_op(&self, index: usize, op: &BundleOp) -> Result<(), OfError> {
        match self.send_checked("meter mod", op.to_message()).await {
            Err(OfError::Switch { error, .. }) => Err(OfError::BundleOp {
                index,
                error: error.clone(),
                failures: vec![(index, error)],
            }),
            r => r,
        }
    }

    /// Sends a message that has no reply on success, followed by a barrier; returns the
    /// switch's error for it, if any, once the barrier answered.
    pub async fn send_checked(&self, what: &'static str, msg: Message) -> Result<(), OfError> {
        let xid = self.shared.xids(2);
        let barrier_xid = xid.wrapping_add(1);
        let mut bytes = codec::encode_to_vec(xid, &msg)?;
        codec::encode(barrier_xid, &Message::BarrierRequest, &mut bytes)?;
        let (tx, mut rx) = oneshot::channel();
        let (btx, brx) = oneshot::channel();
        {
            let mut p = self.shared.lock_pending();
            p.insert(xid, Pending::Single(tx));
            p.insert(barrier_xid, Pending::Single(btx));
        }
        if let Err(e) = self.send(bytes).await {
            let mut p = self.shared.lock_pending();
            p.remove(&xid);
            p.remove(&barrier_xid);
            return Err(e);
        }
        let barrier = self.wait(what, brx, barrier_xid).await;
        self.shared.lock_pending().remove(&xid);
        let answer = rx.try_recv();
        barrier?;
        match answer {
            Ok(Ok(Message::Error(error))) => Err(OfError::Switch {
                request: what,
                error,
            }),
            Ok(Ok(m)) => Err(unexpected(what, &m)),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(()),
        }
    }

    /// The receiver of asynchronous packet-ins (`NXT_PACKET_IN2`, decoded); `None` after the
    /// first call. Packet-ins never interfere with request/reply matching. Call
    /// [`OfChannel::enable_packet_in`] so the switch sends them on this connection.
    pub fn take_packet_ins(&self) -> Option<mpsc::Receiver<PacketIn>> {
        self.packet_ins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Packet-ins dropped because the receiver was full (or never taken).
    pub fn dropped_packet_ins(&self) -> u64 {
        self.shared.packet_in_dropped.load(Ordering::Relaxed)
    }

    /// Packet-ins that failed to decode (counted and dropped).
    pub fn malformed_packet_ins(&self) -> u64 {
        self.shared.packet_in_bad.load(Ordering::Relaxed)
    }

    /// Asks the switch to send packet-ins to this (management-socket) connection, as
    /// `NXT_PACKET_IN2`: sets the packet-in format and the async config (OVS enables no
    /// asynchronous messages on service connections by default), every reason enabled.
    pub async fn enable_packet_in(&self) -> Result<(), OfError> {
        self.send_checked(
            "set packet-in format",
            Message::SetPacketInFormat(NXPIF_NXT_PACKET_IN2),
        )
        .await?;
        self.send_checked(
            "set async config",
            Message::SetAsync(vec![
                (OFPACPT_PACKET_IN_SLAVE, 0x3f),
                (OFPACPT_PACKET_IN_MASTER, 0x3f),
            ]),
        )
        .await
    }

    /// Sends a packet-out (confirmed by a barrier).
    pub async fn packet_out(&self, po: PacketOut) -> Result<(), OfError> {
        self.send_checked("packet out", Message::PacketOut(po))
            .await
    }

    /// Resumes a packet paused by `controller(pause)` (confirmed by a barrier).
    pub async fn resume(&self, pin: &PacketIn) -> Result<(), OfError> {
        self.send_checked("resume", pin.resume()).await
    }

    /// Flushes every conntrack entry of `zone` (NXT_CT_FLUSH_ZONE).
    pub async fn ct_flush_zone(&self, zone: u16) -> Result<(), OfError> {
        self.send_checked("ct flush zone", Message::CtFlushZone(zone))
            .await
    }

    /// Changes the Geneve TLV table (NXT_TLV_TABLE_MOD).
    pub async fn tlv_table_mod(&self, m: TlvTableMod) -> Result<(), OfError> {
        self.send_checked("tlv table mod", Message::TlvTableMod(m))
            .await
    }

    /// The switch's Geneve TLV table.
    pub async fn tlv_table(&self) -> Result<TlvTableReply, OfError> {
        match self
            .request("tlv table request", &Message::TlvTableRequest)
            .await?
        {
            Message::TlvTableReply(r) => Ok(r),
            m => Err(unexpected("tlv table request", &m)),
        }
    }

    /// Adds, modifies or deletes a meter (outside any bundle), confirmed by a barrier.
    pub async fn meter_mod(&self, command: MeterModCommand, meter: Meter) -> Result<(), OfError> {
        self.send_checked("meter mod", Message::MeterMod(MeterMod { command, meter }))
            .await
    }

    /// Every meter's configuration (`dump-meters`).
    pub async fn dump_meters(&self) -> Result<Vec<Meter>, OfError> {
        let parts = self
            .multipart(
                "meter config",
                MultipartRequestBody::MeterConfig { meter_id: OFPM_ALL },
            )
            .await?;
        let mut out = Vec::new();
        for p in parts {
            match p {
                MultipartReplyBody::MeterConfig(m) => out.extend(m),
                other => return Err(unexpected_part("meter config", &other)),
            }
        }
        Ok(out)
    }

    /// The number of flows in each table that has any (`dump-tables`): O(tables) for the
    /// switch, where a flow dump is O(flows).
    pub async fn table_flow_counts(&self) -> Result<Vec<(u8, u32)>, OfError> {
        let parts = self
            .multipart(
                "table stats",
                MultipartRequestBody::Other {
                    mp_type: crate::codec::OFPMP_TABLE_STATS,
                    body: Vec::new(),
                },
            )
            .await?;
        let mut out = Vec::new();
        for p in parts {
            match p {
                MultipartReplyBody::Other {
                    mp_type: crate::codec::OFPMP_TABLE_STATS,
                    body,
                } => out.extend(crate::codec::decode_table_flow_counts(&body)?),
                other => return Err(unexpected_part("table stats", &other)),
            }
        }
        Ok(out)
    }

    /// Every meter's statistics (`meter-stats`).
    pub async fn meter_stats(&self) -> Result<Vec<MeterStats>, OfError> {
        let parts = self
            .multipart(
                "meter stats",
                MultipartRequestBody::MeterStats { meter_id: OFPM_ALL },
            )
            .await?;
        let mut out = Vec::new();
        for p in parts {
            match p {
                MultipartReplyBody::MeterStats(m) => out.extend(m),
                other => return Err(unexpected_part("meter stats", &other)),
            }
        }
        Ok(out)
    }

    async fn apply_bundle_inner(&self, ops: Vec<BundleOp>) -> Result<(), OfError> {
        if ops.is_empty() {
            return Ok(());
        }
        let n = u32::try_from(ops.len()).map_err(|_| OfError::Encode {
            index: ops.len(),
            source: CodecError::TooLong {
                what: "bundle",
                len: ops.len(),
            },
        })?;
        let bundle_id = self.next_bundle.fetch_add(1, Ordering::Relaxed);
        let flags = OFPBF_ATOMIC | OFPBF_ORDERED;
        // xids: open, n adds, barrier.
        let base = self.shared.xids(n + 2);
        let open_xid = base;
        let add_base = base.wrapping_add(1);
        let barrier_xid = add_base.wrapping_add(n);

        // Encode everything before sending anything.
        let chunk = self.config.write_chunk_bytes.max(4096);
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut cur = Vec::with_capacity(chunk + 4096);
        codec::encode(
            open_xid,
            &bundle_ctrl(bundle_id, BundleCtrlType::OpenRequest),
            &mut cur,
        )?;
        for (i, op) in ops.iter().enumerate() {
            let xid = add_base.wrapping_add(i as u32);
            codec::encode_bundle_add(xid, bundle_id, flags, &op.to_message(), &mut cur)
                .map_err(|source| OfError::Encode { index: i, source })?;
            if cur.len() >= chunk {
                chunks.push(std::mem::replace(
                    &mut cur,
                    Vec::with_capacity(chunk + 4096),
                ));
            }
        }
        codec::encode(barrier_xid, &Message::BarrierRequest, &mut cur)?;
        chunks.push(cur);

        let range_id = u64::from(bundle_id) | (u64::from(open_xid) << 32);
        self.shared.lock_ranges().insert(
            range_id,
            XidRange {
                start: add_base,
                len: n,
                errors: Vec::new(),
            },
        );
        let _guard = RangeGuard {
            shared: &self.shared,
            id: range_id,
        };
        let (open_tx, open_rx) = oneshot::channel();
        let (barrier_tx, barrier_rx) = oneshot::channel();
        {
            let mut p = self.shared.lock_pending();
            p.insert(open_xid, Pending::Single(open_tx));
            p.insert(barrier_xid, Pending::Single(barrier_tx));
        }
        tracing::debug!(
            bundle_id,
            ops = ops.len(),
            bytes = chunks.iter().map(Vec::len).sum::<usize>(),
            "sending bundle"
        );
        for c in chunks {
            if let Err(e) = self.send(c).await {
                let mut p = self.shared.lock_pending();
                p.remove(&open_xid);
                p.remove(&barrier_xid);
                return Err(e);
            }
        }

        let open = self.wait("bundle open", open_rx, open_xid).await;
        let barrier = self.wait("bundle barrier", barrier_rx, barrier_xid).await;
        match open? {
            Message::BundleControl(BundleControl {
                ctrl_type: BundleCtrlType::OpenReply,
                ..
            }) => {}
            Message::Error(error) => {
                return Err(OfError::Switch {
                    request: "bundle open",
                    error,
                });
            }
            m => return Err(unexpected("bundle open", &m)),
        }
        barrier?;

        if let Some(err) = self.take_bundle_error(range_id) {
            tracing::warn!(bundle_id, error = %err, "bundle message rejected; discarding bundle");
            // Best effort: OVS also drops the bundle when the connection closes.
            let _ = self
                .request(
                    "bundle discard",
                    &bundle_ctrl(bundle_id, BundleCtrlType::DiscardRequest),
                )
                .await;
            return Err(err);
        }

        let commit = self
            .request(
                "bundle commit",
                &bundle_ctrl(bundle_id, BundleCtrlType::CommitRequest),
            )
            .await;
        match commit {
            Ok(Message::BundleControl(BundleControl {
                ctrl_type: BundleCtrlType::CommitReply,
                ..
            })) => {
                tracing::debug!(bundle_id, ops = ops.len(), "bundle committed");
                Ok(())
            }
            Ok(m) => Err(unexpected("bundle commit", &m)),
            Err(OfError::Switch { request, error }) => {
                // Message errors found at commit time arrive before the commit's own error.
                match self.take_bundle_error(range_id) {
                    Some(e) => {
                        tracing::warn!(bundle_id, error = %e, "bundle commit failed");
                        Err(e)
                    }
                    None => Err(OfError::Switch { request, error }),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn take_bundle_error(&self, range_id: u64) -> Option<OfError> {
        let mut ranges = self.shared.lock_ranges();
        let r = ranges.get_mut(&range_id)?;
        if r.errors.is_empty() {
            return None;
        }
        let mut failures = std::mem::take(&mut r.errors);
        failures.sort_by_key(|(i, _)| *i);
        let (index, error) = failures[0].clone();
        Some(OfError::BundleOp {
            index,
            error,
            failures,
        })
    }
}

fn bundle_ctrl(bundle_id: u32, ctrl_type: BundleCtrlType) -> Message {
    Message::BundleControl(BundleControl {
        bundle_id,
        ctrl_type,
        flags: OFPBF_ATOMIC | OFPBF_ORDERED,
        properties: vec![],
    })
}

fn unexpected(request: &'static str, m: &Message) -> OfError {
    let mut got = format!("{m:?}");
    got.truncate(200);
    OfError::Unexpected { request, got }
}

fn unexpected_part(request: &'static str, p: &MultipartReplyBody) -> OfError {
    let mut got = format!("{p:?}");
    got.truncate(200);
    OfError::Unexpected { request, got }
}

/// Reads one complete message from `rd` (buffered in `buf`).
async fn read_frame(rd: &mut OwnedReadHalf, buf: &mut BytesMut) -> Result<BytesMut, OfError> {
    loop {
        if let Some(n) = codec::frame_len(buf)? {
            return Ok(buf.split_to(n));
        }
        if buf.capacity() - buf.len() < 8192 {
            buf.reserve(64 * 1024);
        }
        if rd.read_buf(buf).await? == 0 {
            return Err(OfError::Disconnected);
        }
    }
}

/// Waits for the peer's hello (answering echoes meanwhile) and checks the version.
async fn handshake(
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    buf: &mut BytesMut,
) -> Result<(), OfError> {
    loop {
        let frame = read_frame(rd, buf).await?;
        let (h, msg) = codec::decode(&frame)?;
        match msg {
            Message::Hello { versions } => {
                let ok = if versions.is_empty() {
                    h.version >= OFP15_VERSION
                } else {
                    versions.contains(&OFP15_VERSION)
                };
                if !ok {
                    let offered = if versions.is_empty() {
                        format!("version {:#04x}", h.version)
                    } else {
                        format!("versions {versions:?}")
                    };
                    let err = Message::Error(ErrorMsg {
                        err_type: codec::errors::OFPET_HELLO_FAILED,
                        code: 0,
                        experimenter: None,
                        data: b"OpenFlow 1.5 required".to_vec(),
                    });
                    if let Ok(b) = codec::encode_to_vec(h.xid, &err) {
                        let _ = wr.write_all(&b).await;
                    }
                    return Err(OfError::Version(format!(
                        "switch offers {offered}; Weft requires OpenFlow 1.5 (0x06) — set the \
                         bridge's protocols to include OpenFlow15"
                    )));
                }
                return Ok(());
            }
            Message::EchoRequest(d) => {
                let b = codec::encode_to_vec(h.xid, &Message::EchoReply(d))?;
                wr.write_all(&b).await?;
            }
            Message::Error(e) => {
                return Err(OfError::Version(format!(
                    "switch sent an error instead of hello: {e}"
                )))
            }
            other => {
                tracing::debug!(msg_type = other.msg_type(), "ignoring message before hello");
            }
        }
    }
}

async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>, shared: Arc<Shared>) {
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = wr.write_all(&chunk).await {
            tracing::warn!(error = %e, "OpenFlow write failed; closing channel");
            break;
        }
    }
    shared.closed.store(true, Ordering::Release);
    shared.closed_notify.notify_waiters();
    let _ = wr.shutdown().await;
}

async fn read_loop(
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Vec<u8>>,
) {
    loop {
        let frame = match read_frame(&mut rd, &mut buf).await {
            Ok(f) => f,
            Err(OfError::Disconnected) => {
                tracing::info!("OpenFlow connection closed by the switch");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "OpenFlow read failed; closing channel");
                break;
            }
        };
        dispatch(&frame, &shared, &tx);
    }
    shared.closed.store(true, Ordering::Release);
    shared.closed_notify.notify_waiters();
    // Fail everything still waiting: dropping the senders makes each waiter see Disconnected.
    shared.lock_pending().clear();
}

fn dispatch(frame: &[u8], shared: &Shared, tx: &mpsc::Sender<Vec<u8>>) {
    let (h, msg) = match codec::decode(frame) {
        Ok(x) => x,
        Err(e) if is_packet_in2(frame) => {
            shared.packet_in_bad.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "malformed packet-in dropped");
            return;
        }
        Err(e) => {
            let xid = codec::peek_header(frame).map(|h| h.xid);
            tracing::warn!(error = %e, ?xid, "undecodable OpenFlow message from switch");
            if let Some(xid) = xid {
                if let Some(p) = shared.lock_pending().remove(&xid) {
                    fail(p, OfError::Codec(e));
                }
            }
            return;
        }
    };
    match msg {
        Message::PacketIn2(pin) => {
            if shared.packet_in_tx.try_send(pin).is_err() {
                shared.packet_in_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Message::EchoRequest(d) => {
            if let Ok(b) = codec::encode_to_vec(h.xid, &Message::EchoReply(d)) {
                // Queue behind any bulk writes without blocking the reader.
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(b).await;
                });
            }
        }
        Message::MultipartReply(rep) => {
            let mut pending = shared.lock_pending();
            match pending.remove(&h.xid) {
                Some(Pending::Multi { mut parts, tx }) => {
                    let more = rep.more();
                    parts.push(rep.body);
                    if more {
                        pending.insert(h.xid, Pending::Multi { parts, tx });
                    } else {
                        let _ = tx.send(Ok(parts));
                    }
                }
                Some(Pending::Single(tx)) => {
                    let _ = tx.send(Ok(Message::MultipartReply(rep)));
                }
                None => tracing::debug!(xid = h.xid, "unsolicited multipart reply"),
            }
        }
        Message::Error(e) => {
            if let Some(p) = shared.lock_pending().remove(&h.xid) {
                match p {
                    Pending::Single(tx) => {
                        let _ = tx.send(Ok(Message::Error(e)));
                    }
                    Pending::Multi { tx, .. } => {
                        let _ = tx.send(Err(OfError::Switch {
                            request: "multipart request",
                            error: e,
                        }));
                    }
                }
                return;
            }
            let mut ranges = shared.lock_ranges();
            for r in ranges.values_mut() {
                let off = h.xid.wrapping_sub(r.start);
                if off < r.len {
                    r.errors.push((off as usize, e));
                    return;
                }
            }
            tracing::warn!(xid = h.xid, error = %e, "OpenFlow error for no pending request");
        }
        other => {
            if let Some(p) = shared.lock_pending().remove(&h.xid) {
                match p {
                    Pending::Single(tx) => {
                        let _ = tx.send(Ok(other));
                    }
                    Pending::Multi { tx, .. } => {
                        let _ = tx.send(Err(unexpected("multipart request", &other)));
                    }
                }
            } else {
                tracing::debug!(
                    xid = h.xid,
                    msg_type = other.msg_type(),
                    "unsolicited OpenFlow message"
                );
            }
        }
    }
}

/// Whether a raw frame is an NXT_PACKET_IN2 (checked without decoding it).
fn is_packet_in2(frame: &[u8]) -> bool {
    frame.len() >= 16
        && frame[1] == codec::msg_type::EXPERIMENTER
        && frame[8..12] == codec::nx::NX_VENDOR_ID.to_be_bytes()
        && frame[12..16] == codec::nx::NXT_PACKET_IN2.to_be_bytes()
}

fn fail(p: Pending, e: OfError) {
    match p {
        Pending::Single(tx) => {
            let _ = tx.send(Err(e));
        }
        Pending::Multi { tx, .. } => {
            let _ = tx.send(Err(e));
        }
    }
}
