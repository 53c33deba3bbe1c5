//! pinctrl: packet-in handlers. The pipeline punts packets with `controller(userdata=OP
//! ARGS, meter_id=M)` (built in [`crate::pipeline::punt`]); the meter rate-limits each
//! handler in the datapath. The [`Dispatcher`] takes each `NXT_PACKET_IN2` from the OpenFlow
//! channel's bounded queue (`weft_openflow::channel::PACKET_IN_QUEUE`; packet-ins beyond it
//! are dropped and counted by the channel, reported here as `queue_dropped`), hands it to the
//! handler named by the userdata opcode, and returns the handler's [`Answer`]: a packet-out,
//! or a resume of a paused packet (`NXT_RESUME`).
//!
//! Malformed input is counted and dropped, never a panic: a packet-in without userdata or
//! with an unknown opcode, bad handler arguments, a truncated packet or one too short for
//! its headers. [`Stats`] has a counter for each.
//!
//! Handlers now: [`Op::ArpGateway`], the subnet gateway's ARP responder;
//! [`Op::IcmpTimeExceeded`], a router port's ICMP time exceeded ([`icmp`]);
//! [`Op::ArpResolve`] and [`Op::ArpLearn`], next-hop neighbour resolution ([`neigh`]);
//! [`Op::AclReject`] and [`Op::AclLog`], the ACL verdicts that need the agent ([`acl`]);
//! [`Op::IcmpFragNeeded`], a router port's MTU: ICMP fragmentation needed or fragments
//! ([`mtu`]).
//! [`Op::LbHealth`], answers to load balancer health probes ([`crate::lb_health`]).

pub mod acl;
pub mod garp;
pub mod icmp;
pub mod mtu;
pub mod neigh;

use std::net::Ipv4Addr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};
use weft_openflow::channel::OfChannel;
use weft_openflow::codec::{PacketIn, PacketOut};
use weft_openflow::flow::{ports, Action, Mac, Match, MatchField};

use crate::pipeline::punt::{
    OP_ACL_LOG, OP_ACL_REJECT, OP_ARP_GATEWAY, OP_ARP_LEARN, OP_ARP_RESOLVE, OP_ICMP_FRAG_NEEDED,
    OP_ICMP_TIME_EXCEEDED, OP_LB_HEALTH,
};

/// Why a packet-in was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinctrlError {
    #[error("packet-in without userdata")]
    NoUserdata,
    #[error("unknown userdata opcode {0:#x}")]
    UnknownOp(u32),
    #[error("bad handler arguments: {0}")]
    BadArgs(&'static str),
    #[error("packet truncated by the switch ({got} of {full} bytes)")]
    Truncated { got: usize, full: u32 },
    #[error("packet too short or malformed: {0}")]
    BadPacket(&'static str),
    #[error("packet-in without in_port")]
    NoInPort,
    #[error("not for this handler: {0}")]
    Ignored(&'static str),
}

/// Handler opcodes (the first 4 bytes of the userdata).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    ArpGateway,
    IcmpTimeExceeded,
    ArpResolve,
    ArpLearn,
    AclReject,
    AclLog,
    IcmpFragNeeded,
    LbHealth,
}

impl Op {
    pub fn from_code(c: u32) -> Option<Op> {
        match c {
            OP_ARP_GATEWAY => Some(Op::ArpGateway),
            OP_ICMP_TIME_EXCEEDED => Some(Op::IcmpTimeExceeded),
            OP_ARP_RESOLVE => Some(Op::ArpResolve),
            OP_ARP_LEARN => Some(Op::ArpLearn),
            OP_ACL_REJECT => Some(Op::AclReject),
            OP_ACL_LOG => Some(Op::AclLog),
            OP_ICMP_FRAG_NEEDED => Some(Op::IcmpFragNeeded),
            OP_LB_HEALTH => Some(Op::LbHealth),
            _ => None,
        }
    }
}

/// What a handler sends back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    PacketOut(PacketOut),
    /// Several packet-outs (fragments), in order.
    PacketOuts(Vec<PacketOut>),
    /// Continue the paused packet (`controller(pause)`).
    Resume(PacketIn),
    /// A neighbour binding for the agent (nothing is sent to the switch).
    Learn(neigh::Learned),
    /// Nothing to send: an ACL log record to write.
    Logged(acl::LogRecord),
    /// An answer to a load balancer health probe, for [`crate::lb_health`].
    Health(crate::lb_health::ProbeReply),
}

/// Counters of the dispatcher.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub answered: u64,
    pub no_userdata: u64,
    pub unknown_op: u64,
    pub bad_args: u64,
    pub truncated: u64,
    pub bad_packet: u64,
    pub ignored: u64,
    /// Answers the switch refused or that could not be sent.
    pub send_failed: u64,
    /// ACL rejects answered and ACL log records written (hits of `--log` ACLs).
    pub acl_rejected: u64,
    pub acl_logged: u64,
    /// Packet-ins dropped by the channel's bounded queue, and undecodable ones.
    pub queue_dropped: u64,
    pub undecodable: u64,
}

impl Stats {
    fn count(&mut self, e: &PinctrlError) {
        match e {
            PinctrlError::NoUserdata => self.no_userdata += 1,
            PinctrlError::UnknownOp(_) => self.unknown_op += 1,
            PinctrlError::BadArgs(_) => self.bad_args += 1,
            PinctrlError::Truncated { .. } => self.truncated += 1,
            PinctrlError::BadPacket(_) | PinctrlError::NoInPort => self.bad_packet += 1,
            PinctrlError::Ignored(_) => self.ignored += 1,
        }
    }

    /// Every packet-in that was dropped.
    pub fn dropped(&self) -> u64 {
        self.no_userdata
            + self.unknown_op
            + self.bad_args
            + self.truncated
            + self.bad_packet
            + self.ignored
    }
}

/// The pure dispatcher: packet-in in, answer out.
#[derive(Debug, Default)]
pub struct Dispatcher {
    pub stats: Stats,
}

impl Dispatcher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands one packet-in to its handler; counts and returns the reason when it is dropped.
    pub fn dispatch(&mut self, pin: &PacketIn) -> Result<Answer, PinctrlError> {
        self.stats.received += 1;
        let r = route(pin);
        match &r {
            Ok(Answer::Logged(_)) => self.stats.acl_logged += 1,
            Ok(_) if pin.userdata.get(..4) == Some(&OP_ACL_REJECT.to_be_bytes()[..]) => {
                self.stats.acl_rejected += 1
            }
            Ok(_) => self.stats.answered += 1,
            Err(e) => self.stats.count(e),
        }
        r
    }
}

fn route(pin: &PacketIn) -> Result<Answer, PinctrlError> {
    if pin.userdata.len() < 4 {
        return Err(PinctrlError::NoUserdata);
    }
    let code = u32::from_be_bytes([
        pin.userdata[0],
        pin.userdata[1],
        pin.userdata[2],
        pin.userdata[3],
    ]);
    let op = Op::from_code(code).ok_or(PinctrlError::UnknownOp(code))?;
    if let Some(full) = pin.full_len {
        if (full as usize) > pin.packet.len() {
            return Err(PinctrlError::Truncated {
                got: pin.packet.len(),
                full,
            });
        }
    }
    let args = &pin.userdata[4..];
    match op {
        Op::ArpGateway => arp_gateway(pin, args),
        Op::IcmpTimeExceeded => icmp::handle_time_exceeded(pin, args),
        Op::ArpResolve => neigh::handle_resolve(pin, args),
        Op::ArpLearn => neigh::handle_learn(pin, args),
        Op::AclReject => acl::reject(pin, args, in_port(pin)).map(Answer::PacketOut),
        Op::AclLog => acl::log(pin, args, in_port(pin)).map(Answer::Logged),
        Op::IcmpFragNeeded => mtu::handle(pin, args),
        Op::LbHealth => crate::lb_health::parse_reply(&pin.packet).map(Answer::Health),
    }
}

fn in_port(pin: &PacketIn) -> Option<u32> {
    pin.metadata.fields().iter().find_map(|f| match f {
        MatchField::InPort(p) => Some(*p),
        _ => None,
    })
}

/// An Ethernet + ARP (IPv4 over Ethernet) packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    pub eth_dst: Mac,
    pub eth_src: Mac,
    pub op: u16,
    pub sha: Mac,
    pub spa: Ipv4Addr,
    pub tha: Mac,
    pub tpa: Ipv4Addr,
}

const ETH_TYPE_ARP: u16 = 0x0806;
const ETH_TYPE_VLAN: u16 = 0x8100;
const ARP_LEN: usize = 28;

fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    Mac(m)
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Parses an Ethernet frame carrying an IPv4/Ethernet ARP message (no VLAN tag).
pub fn parse_arp(b: &[u8]) -> Result<ArpPacket, PinctrlError> {
    if b.len() < 14 {
        return Err(PinctrlError::BadPacket("shorter than an Ethernet header"));
    }
    let ethertype = u16::from_be_bytes([b[12], b[13]]);
    if ethertype == ETH_TYPE_VLAN {
        return Err(PinctrlError::BadPacket("VLAN-tagged"));
    }
    if ethertype != ETH_TYPE_ARP {
        return Err(PinctrlError::BadPacket("not ARP"));
    }
    let a = &b[14..];
    if a.len() < ARP_LEN {
        return Err(PinctrlError::BadPacket("shorter than an ARP message"));
    }
    let htype = u16::from_be_bytes([a[0], a[1]]);
    let ptype = u16::from_be_bytes([a[2], a[3]]);
    if htype != 1 || ptype != 0x0800 || a[4] != 6 || a[5] != 4 {
        return Err(PinctrlError::BadPacket("not IPv4-over-Ethernet ARP"));
    }
    Ok(ArpPacket {
        eth_dst: mac_at(b, 0),
        eth_src: mac_at(b, 6),
        op: u16::from_be_bytes([a[6], a[7]]),
        sha: mac_at(a, 8),
        spa: ip_at(a, 14),
        tha: mac_at(a, 18),
        tpa: ip_at(a, 24),
    })
}

/// Encodes an ARP packet as an Ethernet frame (60 bytes, zero padded).
pub fn encode_arp(p: &ArpPacket) -> Vec<u8> {
    let mut b = Vec::with_capacity(60);
    b.extend_from_slice(&p.eth_dst.0);
    b.extend_from_slice(&p.eth_src.0);
    b.extend_from_slice(&ETH_TYPE_ARP.to_be_bytes());
    b.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    b.extend_from_slice(&p.op.to_be_bytes());
    b.extend_from_slice(&p.sha.0);
    b.extend_from_slice(&p.spa.octets());
    b.extend_from_slice(&p.tha.0);
    b.extend_from_slice(&p.tpa.octets());
    b.resize(60, 0);
    b
}

/// The reply to `req` from `mac`/`ip`.
pub fn arp_reply(req: &ArpPacket, ip: Ipv4Addr, mac: Mac) -> ArpPacket {
    ArpPacket {
        eth_dst: req.eth_src,
        eth_src: mac,
        op: 2,
        sha: mac,
        spa: ip,
        tha: req.sha,
        tpa: req.spa,
    }
}

/// The gateway ARP handler: args = gateway IPv4 (4) + MAC (6).
fn arp_gateway(pin: &PacketIn, args: &[u8]) -> Result<Answer, PinctrlError> {
    if args.len() < 10 {
        return Err(PinctrlError::BadArgs("gateway ARP wants IPv4 + MAC"));
    }
    let ip = ip_at(args, 0);
    let mac = mac_at(args, 4);
    let req = parse_arp(&pin.packet)?;
    if req.op != 1 {
        return Err(PinctrlError::Ignored("not an ARP request"));
    }
    if req.tpa != ip {
        return Err(PinctrlError::Ignored("not for the gateway address"));
    }
    let port = in_port(pin).ok_or(PinctrlError::NoInPort)?;
    let reply = arp_reply(&req, ip, mac);
    Ok(Answer::PacketOut(PacketOut {
        buffer_id: u32::MAX,
        matches: Match::new().with(MatchField::InPort(ports::CONTROLLER)),
        actions: vec![Action::Output(port)],
        packet: encode_arp(&reply),
    }))
}

/// Runs the dispatcher over a channel's packet-ins until the channel closes; `stats`
/// receives the counters after every packet, `learned` the neighbour bindings (dropped when
/// the agent is behind: the next reply brings them again).
pub async fn run(
    chan: Arc<OfChannel>,
    mut rx: mpsc::Receiver<PacketIn>,
    stats: watch::Sender<Stats>,
    learned: mpsc::Sender<neigh::Learned>,
    health: mpsc::Sender<crate::lb_health::ProbeReply>,
) {
    let mut d = Dispatcher::new();
    while let Some(pin) = rx.recv().await {
        match d.dispatch(&pin) {
            Ok(Answer::PacketOut(po)) => {
                if let Err(e) = chan.packet_out(po).await {
                    d.stats.send_failed += 1;
                    warn!(error = %e, "pinctrl: packet-out failed");
                }
            }
            Ok(Answer::PacketOuts(pos)) => {
                for po in pos {
                    if let Err(e) = chan.packet_out(po).await {
                        d.stats.send_failed += 1;
                        warn!(error = %e, "pinctrl: packet-out failed");
                        break;
                    }
                }
            }
            Ok(Answer::Learn(l)) => {
                if learned.try_send(l).is_err() {
                    d.stats.send_failed += 1;
                }
            }
            Ok(Answer::Health(r)) => {
                if health.try_send(r).is_err() {
                    d.stats.send_failed += 1;
                }
            }
            Ok(Answer::Resume(p)) => {
                if let Err(e) = chan.resume(&p).await {
                    d.stats.send_failed += 1;
                    warn!(error = %e, "pinctrl: resume failed");
                }
            }
            Ok(Answer::Logged(rec)) => {
                tracing::info!(target: "weft_agent::acl", hits = d.stats.acl_logged, "acl_log {rec}");
            }
            Err(e) => debug!(error = %e, table = pin.table_id, "pinctrl: packet-in dropped"),
        }
        d.stats.queue_dropped = chan.dropped_packet_ins();
        d.stats.undecodable = chan.malformed_packet_ins();
        stats.send_replace(d.stats.clone());
    }
}

#[cfg(test)]
mod tests;
