//! Load balancer health checks (OVN's service monitors), run on the chassis where each
//! backend's port lives.
//!
//! For every VIP with a `health_check` ([`weft_proto::model::load_balancer::HealthCheck`])
//! and every backend whose address is on a VIF bound here ([`targets`]), the agent sends a
//! probe every `interval` seconds, as a packet-out straight into the backend's VIF, from the
//! service address ([`SVC_MONITOR_IP`], [`SVC_MONITOR_MAC`]):
//! - TCP: a SYN to the backend's port; a SYN-ACK is a success (the agent then resets the
//!   half-open connection with a RST), a RST or no answer within `timeout` a failure;
//! - UDP: a datagram; an ICMP port unreachable is a failure, an answer or silence until
//!   `timeout` a success (as OVN does: UDP servers need not answer).
//!
//! The backend's answer goes to its default gateway (the service address is link-local,
//! on no subnet); the punt stage catches anything to [`SVC_MONITOR_IP`] on a switch whose
//! LBs have health checks ([`crate::pipeline::lb::svc_monitor_flows`], opcode
//! [`crate::pipeline::punt::OP_LB_HEALTH`]) and pinctrl hands it here as a [`ProbeReply`].
//!
//! `success` consecutive successes make a backend online, `failure` consecutive failures
//! offline ([`Monitor`], pure). Changes are reported to the controller (`ReportHealth`),
//! which stores them in etcd and sends the LB again to every chassis that has it; there an
//! offline backend leaves the VIP's select group. All states are reported again every
//! [`REREPORT`] (a controller or etcd that lost them gets them back).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use weft_openflow::channel::OfChannel;
use weft_openflow::codec::PacketOut;
use weft_openflow::flow::{ports, Action, Mac, Match, MatchField};
use weft_proto::model::load_balancer::{
    Endpoint, HealthCheck, STATUS_OFFLINE, STATUS_ONLINE, SVC_MONITOR_IP, SVC_MONITOR_MAC,
};
use weft_proto::v1::{BackendHealth, HealthReport};

use crate::pinctrl::acl::{fold, pseudo, sum16};
use crate::pinctrl::PinctrlError;
use crate::view::ChassisView;

/// How often every known state is reported again.
pub const REREPORT: Duration = Duration::from_secs(30);
/// The scheduler's tick.
const TICK: Duration = Duration::from_millis(100);
/// Source ports of probes.
const SPORT_MIN: u16 = 33000;
const SPORT_MAX: u16 = 60999;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// One backend to check from this chassis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub lb: String,
    pub vip: Endpoint,
    pub backend: Ipv4Addr,
    /// The port probed: the backend's, else the VIP's.
    pub port: u16,
    /// Whether the backend was written with its port.
    pub port_given: bool,
    pub udp: bool,
    pub hc: HealthCheck,
    /// The backend's VIF and MAC.
    pub ofport: u32,
    pub mac: Mac,
}

impl Target {
    /// `(LB, VIP, BACKEND)` in canonical text, as the LB writes them: what is reported.
    pub fn key(&self) -> (String, String, String) {
        let backend = Endpoint {
            ip: IpAddr::V4(self.backend),
            port: self.port_given.then_some(self.port),
        };
        (self.lb.clone(), self.vip.to_string(), backend.to_string())
    }
}

/// The backends this chassis checks: for every LB of the view, every VIP with a health
/// check, every IPv4 backend that is an address of a VIF bound to `chassis` with an ofport
/// in `vifs` (IPv6 backends are not checked yet).
///
/// Cost: the load balancers with health checks, then the local VIFs; nothing when no load
/// balancer has a health check (this runs after every reconcile).
pub fn targets(view: &ChassisView, chassis: &str, vifs: &BTreeMap<String, u32>) -> Vec<Target> {
    if !view
        .all_load_balancers()
        .any(|lb| !lb.rules.health_checks.is_empty())
    {
        return Vec::new();
    }
    let mut by_ip: HashMap<Ipv4Addr, (u32, Mac)> = HashMap::new();
    for (name, &ofport) in vifs {
        let Some(p) = view.port(name) else {
            continue;
        };
        if p.chassis.as_deref() != Some(chassis) {
            continue;
        }
        for a in &p.addresses {
            for ip in &a.ips {
                by_ip.entry(*ip).or_insert((ofport, a.mac));
            }
        }
    }
    let mut out = Vec::new();
    for lb in view.all_load_balancers() {
        for (vip, hc) in &lb.rules.health_checks {
            let Some(rule) = lb.rules.vips.iter().find(|r| r.vip == *vip) else {
                continue;
            };
            for b in &rule.backends {
                let IpAddr::V4(ip) = b.ip else { continue };
                let Some(&(ofport, mac)) = by_ip.get(&ip) else {
                    continue;
                };
                let Some(port) = b.port.or(vip.port) else {
                    continue;
                };
                out.push(Target {
                    lb: lb.name.clone(),
                    vip: *vip,
                    backend: ip,
                    port,
                    port_given: b.port.is_some(),
                    udp: lb.rules.protocol == "udp",
                    hc: *hc,
                    ofport,
                    mac,
                });
            }
        }
    }
    out
}

/// What came back to the service address (parsed by [`parse_reply`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeReply {
    /// The backend's address and port, and the probe's source port.
    pub backend: Ipv4Addr,
    pub backend_port: u16,
    pub probe_port: u16,
    pub kind: ReplyKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// SYN-ACK: the port listens. `ack` is what the RST that closes it must carry as seq.
    SynAck {
        ack: u32,
    },
    Rst,
    /// A UDP answer.
    Udp,
    /// ICMP destination unreachable quoting the probe.
    Unreachable,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Parses an answer to a probe: IPv4 to [`SVC_MONITOR_IP`], TCP with SYN+ACK or RST, UDP,
/// or ICMP unreachable quoting a UDP or TCP probe.
pub fn parse_reply(b: &[u8]) -> Result<ProbeReply, PinctrlError> {
    let p = crate::pinctrl::acl::parse(b)?;
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (p.src, p.dst) else {
        return Err(PinctrlError::Ignored("not IPv4"));
    };
    if dst != SVC_MONITOR_IP {
        return Err(PinctrlError::Ignored("not to the service address"));
    }
    let kind = match p.proto {
        TCP if p.tcp_flags & TCP_RST != 0 => ReplyKind::Rst,
        TCP if p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK => {
            ReplyKind::SynAck { ack: p.tcp_ack }
        }
        UDP => ReplyKind::Udp,
        ICMP if p.icmp_type == 3 => {
            // The quoted probe: IPv4 header, then its first 8 bytes (ports).
            let q = p.l4 + 8;
            if b.len() < q + 20 {
                return Err(PinctrlError::BadPacket("ICMP quote too short"));
            }
            let ihl = usize::from(b[q] & 0x0f) * 4;
            if b.len() < q + ihl + 4 {
                return Err(PinctrlError::BadPacket("ICMP quote too short"));
            }
            let qdst = Ipv4Addr::new(b[q + 16], b[q + 17], b[q + 18], b[q + 19]);
            return Ok(ProbeReply {
                backend: qdst,
                backend_port: be16(b, q + ihl + 2),
                probe_port: be16(b, q + ihl),
                kind: ReplyKind::Unreachable,
            });
        }
        _ => return Err(PinctrlError::Ignored("not an answer to a probe")),
    };
    Ok(ProbeReply {
        backend: src,
        backend_port: p.sport,
        probe_port: p.dport,
        kind,
    })
}

/// An Ethernet + IPv4 frame from the service address to `t` with this L4 payload; the L4
/// checksum at `csum_at` is filled in.
fn probe_frame(t: &Target, proto: u8, mut l4: Vec<u8>, csum_at: usize) -> Vec<u8> {
    let (src, dst) = (IpAddr::V4(SVC_MONITOR_IP), IpAddr::V4(t.backend));
    let c = fold(sum16(&l4, pseudo(src, dst, proto, l4.len())));
    l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    let mut b = Vec::with_capacity(14 + 20 + l4.len());
    b.extend_from_slice(&t.mac.0);
    b.extend_from_slice(&SVC_MONITOR_MAC);
    b.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + l4.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&SVC_MONITOR_IP.octets());
    h.extend_from_slice(&t.backend.octets());
    let c = fold(sum16(&h, 0));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    b.extend_from_slice(&h);
    b.extend_from_slice(&l4);
    if b.len() < 60 {
        b.resize(60, 0);
    }
    b
}

fn tcp_segment(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

/// The probe of `t` from source port `sport`: a TCP SYN (sequence `seq`) or a UDP datagram.
pub fn probe(t: &Target, sport: u16, seq: u32) -> Vec<u8> {
    if t.udp {
        let payload = b"weft-health-check";
        let mut u = Vec::with_capacity(8 + payload.len());
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&t.port.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        probe_frame(t, UDP, u, 6)
    } else {
        probe_frame(t, TCP, tcp_segment(sport, t.port, seq, 0, TCP_SYN), 16)
    }
}

/// The RST that closes a probe's half-open connection (`seq` = the SYN-ACK's ack).
pub fn reset(t: &Target, sport: u16, seq: u32) -> Vec<u8> {
    probe_frame(t, TCP, tcp_segment(sport, t.port, seq, 0, TCP_RST), 16)
}

/// A probe in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    sport: u16,
    deadline: Instant,
}

/// One backend's check state (pure: the caller brings the time).
#[derive(Clone, Debug)]
pub struct Monitor {
    pub target: Target,
    next_due: Instant,
    pending: Option<Pending>,
    successes: u32,
    failures: u32,
    /// Online (`Some(true)`), offline, or not decided yet.
    pub status: Option<bool>,
}

impl Monitor {
    pub fn new(target: Target, now: Instant) -> Self {
        Monitor {
            target,
            next_due: now,
            pending: None,
            successes: 0,
            failures: 0,
            status: None,
        }
    }

    /// Counts one probe result; returns the new status when it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        self.pending = None;
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let new = if self.successes >= self.target.hc.success {
            Some(true)
        } else if self.failures >= self.target.hc.failure {
            Some(false)
        } else {
            self.status
        };
        if new != self.status {
            self.status = new;
            return new;
        }
        None
    }

    /// A probe whose time is up: TCP failed, UDP succeeded (no ICMP error came).
    pub fn expired(&mut self, now: Instant) -> Option<Option<bool>> {
        let p = self.pending?;
        if now < p.deadline {
            return None;
        }
        Some(self.record(self.target.udp))
    }

    /// Whether a probe is due (and none is in flight).
    pub fn due(&self, now: Instant) -> bool {
        self.pending.is_none() && now >= self.next_due
    }

    /// A probe from `sport` leaves now.
    pub fn sent(&mut self, sport: u16, now: Instant) {
        let hc = self.target.hc;
        self.pending = Some(Pending {
            sport,
            deadline: now + Duration::from_secs(u64::from(hc.timeout)),
        });
        self.next_due = now + Duration::from_secs(u64::from(hc.interval));
    }

    /// The source port of the probe in flight.
    pub fn pending_port(&self) -> Option<u16> {
        self.pending.map(|p| p.sport)
    }
}

fn health(t: &Target, online: bool) -> BackendHealth {
    let (lb, vip, backend) = t.key();
    BackendHealth {
        load_balancer: lb,
        vip,
        backend,
        status: if online {
            STATUS_ONLINE
        } else {
            STATUS_OFFLINE
        }
        .to_string(),
    }
}

fn packet_out(ofport: u32, packet: Vec<u8>) -> PacketOut {
    PacketOut {
        buffer_id: u32::MAX,
        matches: Match::new().with(MatchField::InPort(ports::CONTROLLER)),
        actions: vec![Action::Output(ofport)],
        packet,
    }
}

/// Runs the checks until `targets` closes: probes go out on the current OpenFlow channel
/// (`chan`), answers come from pinctrl (`replies`), state changes go to the controllers.
pub async fn run(
    chassis: String,
    endpoints: Vec<String>,
    mut chan: watch::Receiver<Option<Arc<OfChannel>>>,
    mut targets: watch::Receiver<Vec<Target>>,
    mut replies: mpsc::Receiver<ProbeReply>,
) {
    let mut reporter = crate::southbound::StatusReporter::new(endpoints);
    let mut monitors: BTreeMap<(String, String, String), Monitor> = BTreeMap::new();
    let mut unreported: BTreeMap<(String, String, String), BackendHealth> = BTreeMap::new();
    let mut by_port: HashMap<u16, (String, String, String)> = HashMap::new();
    let mut next_sport = SPORT_MIN;
    let mut seq: u32 = 0x5745_4654;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rereport = Instant::now() + REREPORT;
    let mut retry_at = Instant::now();
    loop {
        tokio::select! {
            r = targets.changed() => {
                if r.is_err() {
                    return;
                }
                let now = Instant::now();
                let want: BTreeMap<_, _> = targets
                    .borrow_and_update()
                    .iter()
                    .map(|t| (t.key(), t.clone()))
                    .collect();
                monitors.retain(|k, m| {
                    let keep = want.get(k).is_some_and(|t| *t == m.target);
                    if !keep {
                        if let Some(p) = m.pending_port() {
                            by_port.remove(&p);
                        }
                    }
                    keep
                });
                unreported.retain(|k, _| want.contains_key(k));
                for (k, t) in want {
                    monitors.entry(k).or_insert_with(|| Monitor::new(t, now));
                }
                debug!(n = monitors.len(), "health check targets");
            }
            Some(r) = replies.recv() => {
                let Some(k) = by_port.get(&r.probe_port).cloned() else { continue };
                let Some(m) = monitors.get_mut(&k) else { continue };
                if m.target.backend != r.backend || m.target.port != r.backend_port {
                    continue;
                }
                by_port.remove(&r.probe_port);
                let ok = match r.kind {
                    ReplyKind::SynAck { ack } => {
                        let rst = reset(&m.target, r.probe_port, ack);
                        let c = chan.borrow().clone();
                        if let Some(c) = c {
                            let _ = c.packet_out(packet_out(m.target.ofport, rst)).await;
                        }
                        true
                    }
                    ReplyKind::Udp => true,
                    ReplyKind::Rst | ReplyKind::Unreachable => false,
                };
                if let Some(s) = m.record(ok) {
                    info!(lb = %k.0, vip = %k.1, backend = %k.2, online = s, "backend health changed");
                    unreported.insert(k.clone(), health(&m.target, s));
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let c = chan.borrow_and_update().clone();
                for (k, m) in monitors.iter_mut() {
                    if let Some(p) = m.pending_port() {
                        if let Some(Some(s)) = m.expired(now) {
                            info!(lb = %k.0, vip = %k.1, backend = %k.2, online = s, "backend health changed");
                            unreported.insert(k.clone(), health(&m.target, s));
                        }
                        if m.pending_port().is_none() {
                            by_port.remove(&p);
                        }
                    }
                    let Some(c) = &c else { continue };
                    if !m.due(now) {
                        continue;
                    }
                    let sport = next_sport;
                    next_sport = if next_sport >= SPORT_MAX { SPORT_MIN } else { next_sport + 1 };
                    seq = seq.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let pkt = probe(&m.target, sport, seq);
                    if let Err(e) = c.packet_out(packet_out(m.target.ofport, pkt)).await {
                        debug!(error = %e, "health probe not sent");
                        continue;
                    }
                    m.sent(sport, now);
                    by_port.insert(sport, k.clone());
                }
                if now >= rereport {
                    rereport = now + REREPORT;
                    for (k, m) in &monitors {
                        if let Some(s) = m.status {
                            unreported.insert(k.clone(), health(&m.target, s));
                        }
                    }
                }
                if !unreported.is_empty() && now >= retry_at {
                    let report = HealthReport {
                        chassis: chassis.clone(),
                        backends: unreported.values().cloned().collect(),
                    };
                    match reporter.report_health(&report).await {
                        Ok(_) => unreported.clear(),
                        Err(e) => {
                            warn!(error = %e, "health report failed; will retry");
                            retry_at = now + Duration::from_millis(500);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn target(udp: bool) -> Target {
        Target {
            lb: "web".into(),
            vip: weft_proto::model::load_balancer::parse_endpoint("v", "10.96.0.10:80").unwrap(),
            backend: Ipv4Addr::new(10, 0, 0, 5),
            port: 8080,
            port_given: true,
            udp,
            hc: HealthCheck {
                interval: 1,
                timeout: 1,
                success: 2,
                failure: 2,
            },
            ofport: 7,
            mac: Mac([0, 0, 0, 0, 0, 5]),
        }
    }

    #[test]
    fn monitors_count_consecutive_results() {
        let now = Instant::now();
        let mut m = Monitor::new(target(false), now);
        assert!(m.due(now));
        m.sent(40000, now);
        assert!(!m.due(now));
        assert_eq!(m.record(true), None);
        assert_eq!(m.record(true), Some(true));
        assert_eq!(m.record(false), None);
        assert_eq!(m.record(true), None);
        assert_eq!(m.record(false), None);
        assert_eq!(m.record(false), Some(false));
        // A TCP probe without an answer fails at its deadline; a UDP one succeeds.
        m.sent(40001, now);
        assert_eq!(m.expired(now), None);
        assert_eq!(m.expired(now + Duration::from_secs(2)), Some(None));
        let mut u = Monitor::new(target(true), now);
        u.sent(40002, now);
        u.expired(now + Duration::from_secs(2));
        u.sent(40003, now);
        assert_eq!(u.expired(now + Duration::from_secs(2)), Some(Some(true)));
    }

    #[test]
    fn probes_and_their_answers_parse() {
        let t = target(false);
        let syn = probe(&t, 40000, 77);
        let p = crate::pinctrl::acl::parse(&syn).unwrap();
        assert_eq!(p.src, IpAddr::V4(SVC_MONITOR_IP));
        assert_eq!((p.sport, p.dport, p.tcp_flags), (40000, 8080, TCP_SYN));
        // Checksums verify: summing a header with its checksum gives 0xffff.
        assert_eq!(fold(sum16(&syn[14..34], 0)), 0);
        let l4 = &syn[34..54];
        assert_eq!(
            fold(sum16(l4, pseudo(p.src, p.dst, TCP, l4.len()))),
            0,
            "TCP checksum"
        );
        // The backend's SYN-ACK (built by swapping the probe's ends).
        let mut ans = syn.clone();
        ans[26..30].copy_from_slice(&t.backend.octets());
        ans[30..34].copy_from_slice(&SVC_MONITOR_IP.octets());
        ans[34..36].copy_from_slice(&8080u16.to_be_bytes());
        ans[36..38].copy_from_slice(&40000u16.to_be_bytes());
        ans[42..46].copy_from_slice(&78u32.to_be_bytes());
        ans[47] = TCP_SYN | TCP_ACK;
        let r = parse_reply(&ans).unwrap();
        assert_eq!(
            r,
            ProbeReply {
                backend: t.backend,
                backend_port: 8080,
                probe_port: 40000,
                kind: ReplyKind::SynAck { ack: 78 },
            }
        );
        ans[47] = TCP_RST | TCP_ACK;
        assert_eq!(parse_reply(&ans).unwrap().kind, ReplyKind::Rst);
        // Not to the service address: ignored.
        ans[30..34].copy_from_slice(&[10, 0, 0, 9]);
        assert!(parse_reply(&ans).is_err());
        // A UDP probe's ICMP port unreachable, quoting it.
        let u = target(true);
        let dgram = probe(&u, 40001, 0);
        let mut icmp = dgram[..14].to_vec();
        let quote = &dgram[14..14 + 28];
        let mut m = vec![3, 3, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(quote);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + m.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, ICMP, 0, 0]);
        ip.extend_from_slice(&u.backend.octets());
        ip.extend_from_slice(&SVC_MONITOR_IP.octets());
        icmp.extend_from_slice(&ip);
        icmp.extend_from_slice(&m);
        let r = parse_reply(&icmp).unwrap();
        assert_eq!(
            (r.backend, r.backend_port, r.probe_port, r.kind),
            (u.backend, 8080, 40001, ReplyKind::Unreachable)
        );
    }
}
