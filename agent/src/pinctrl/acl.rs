//! ACL packet-in handlers (pure): `reject` answers and `--log` records.
//!
//! **Reject** (opcode [`crate::pipeline::punt::OP_ACL_REJECT`], args: direction byte, ACL
//! cookie): a TCP segment gets a RST (`seq` = its ack when it had ACK, else `seq` 0 with
//! `ack` = its seq + length, as RFC 793 says), anything else over IPv4 an ICMP destination
//! unreachable (code 3 port unreachable for UDP, 13 administratively prohibited otherwise),
//! over IPv6 an ICMPv6 destination unreachable (code 4 for UDP, 1 otherwise), quoting the
//! packet. A RST, an ICMP/ICMPv6 error, a packet from a multicast or broadcast address and a
//! fragment other than the first are never answered ([`reject_reply`] returns None). The
//! answer goes back the way the packet came: for a from-lport ACL straight out of the VIF it
//! entered on; for a to-lport ACL (the destination's chassis) into l2-lookup of the packet's
//! switch (`metadata`), addressed to the sender's MAC, with the destination as inport, so it
//! reaches the sender locally or over a tunnel through the sender's egress stages (its
//! conntrack zone sees the reply of the connection it committed).
//!
//! **Log** (opcode [`crate::pipeline::punt::OP_ACL_LOG`], args: direction, verdict, ACL cookie,
//! severity, name and key, each length-prefixed): one [`LogRecord`] per packet, the agent
//! prints it as one structured line (target `weft_agent::acl`) and counts it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use weft_openflow::codec::{PacketIn, PacketOut};
use weft_openflow::flow::{ports, Action, Match, MatchField, SetField};

use super::PinctrlError;
use crate::pipeline::{reg, Stage};

const ETH_IP: u16 = 0x0800;
const ETH_IP6: u16 = 0x86dd;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMP6: u8 = 58;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// The parts of a packet the handlers need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub ttl: u8,
    /// Offset of the IP header and of the L4 header in the frame.
    pub l3: usize,
    pub l4: usize,
    /// End of the IP packet in the frame (trailing padding excluded).
    pub end: usize,
    /// Not the first fragment (IPv4 offset != 0).
    pub later_fragment: bool,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    pub tcp_payload: u32,
    pub icmp_type: u8,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an untagged Ethernet frame carrying IPv4 or IPv6 (no IPv6 extension headers).
pub fn parse(b: &[u8]) -> Result<Parsed, PinctrlError> {
    if b.len() < 14 {
        return Err(PinctrlError::BadPacket("shorter than an Ethernet header"));
    }
    let mut eth_dst = [0u8; 6];
    let mut eth_src = [0u8; 6];
    eth_dst.copy_from_slice(&b[0..6]);
    eth_src.copy_from_slice(&b[6..12]);
    let l3 = 14;
    let (src, dst, proto, ttl, l4, end, later_fragment) = match be16(b, 12) {
        ETH_IP => {
            if b.len() < l3 + 20 {
                return Err(PinctrlError::BadPacket("shorter than an IPv4 header"));
            }
            let ihl = usize::from(b[l3] & 0x0f) * 4;
            let total = usize::from(be16(b, l3 + 2));
            if b[l3] >> 4 != 4 || ihl < 20 || total < ihl || b.len() < l3 + total {
                return Err(PinctrlError::BadPacket("bad IPv4 header"));
            }
            let src = Ipv4Addr::new(b[l3 + 12], b[l3 + 13], b[l3 + 14], b[l3 + 15]);
            let dst = Ipv4Addr::new(b[l3 + 16], b[l3 + 17], b[l3 + 18], b[l3 + 19]);
            let frag = be16(b, l3 + 6) & 0x1fff != 0;
            (
                IpAddr::V4(src),
                IpAddr::V4(dst),
                b[l3 + 9],
                b[l3 + 8],
                l3 + ihl,
                l3 + total,
                frag,
            )
        }
        ETH_IP6 => {
            if b.len() < l3 + 40 {
                return Err(PinctrlError::BadPacket("shorter than an IPv6 header"));
            }
            let plen = usize::from(be16(b, l3 + 4));
            if b.len() < l3 + 40 + plen {
                return Err(PinctrlError::BadPacket("IPv6 payload truncated"));
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&b[l3 + 8..l3 + 24]);
            d.copy_from_slice(&b[l3 + 24..l3 + 40]);
            (
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                b[l3 + 6],
                b[l3 + 7],
                l3 + 40,
                l3 + 40 + plen,
                false,
            )
        }
        _ => return Err(PinctrlError::BadPacket("not IP")),
    };
    let mut p = Parsed {
        eth_dst,
        eth_src,
        src,
        dst,
        proto,
        ttl,
        l3,
        l4,
        end,
        later_fragment,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        tcp_seq: 0,
        tcp_ack: 0,
        tcp_payload: 0,
        icmp_type: 0,
    };
    if later_fragment {
        return Ok(p);
    }
    match proto {
        TCP => {
            if end < l4 + 20 {
                return Err(PinctrlError::BadPacket("shorter than a TCP header"));
            }
            p.sport = be16(b, l4);
            p.dport = be16(b, l4 + 2);
            p.tcp_seq = be32(b, l4 + 4);
            p.tcp_ack = be32(b, l4 + 8);
            let off = usize::from(b[l4 + 12] >> 4) * 4;
            p.tcp_flags = b[l4 + 13];
            p.tcp_payload = end.saturating_sub(l4 + off) as u32;
        }
        UDP => {
            if end < l4 + 8 {
                return Err(PinctrlError::BadPacket("shorter than a UDP header"));
            }
            p.sport = be16(b, l4);
            p.dport = be16(b, l4 + 2);
        }
        ICMP | ICMP6 => {
            if end < l4 + 4 {
                return Err(PinctrlError::BadPacket("shorter than an ICMP header"));
            }
            p.icmp_type = b[l4];
        }
        _ => {}
    }
    Ok(p)
}

/// The ones' complement sum of `data` (16-bit words) added to `acc`.
pub(crate) fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// A ones' complement sum folded to 16 bits and complemented: the checksum.
pub(crate) fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The sum of the IPv4 / IPv6 pseudo header of an L4 checksum.
pub(crate) fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut acc = sum16(&s.octets(), 0);
            acc = sum16(&d.octets(), acc);
            acc + u32::from(proto) + len as u32
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut acc = sum16(&s.octets(), 0);
            acc = sum16(&d.octets(), acc);
            acc + u32::from(proto) + len as u32
        }
        _ => 0,
    }
}

/// An Ethernet + IP frame from `src` to `dst` with this L4 payload (checksummed by the
/// caller where the L4 checksum needs the pseudo header: pass `csum_at`).
fn frame(p: &Parsed, proto: u8, mut l4: Vec<u8>, csum_at: Option<usize>) -> Vec<u8> {
    // The answer goes from the packet's destination back to its source.
    let (src, dst) = (p.dst, p.src);
    if let Some(at) = csum_at {
        l4[at] = 0;
        l4[at + 1] = 0;
        let c = fold(sum16(&l4, pseudo(src, dst, proto, l4.len())));
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let mut b = Vec::with_capacity(14 + 40 + l4.len());
    b.extend_from_slice(&p.eth_src);
    b.extend_from_slice(&p.eth_dst);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b.extend_from_slice(&ETH_IP.to_be_bytes());
            let total = (20 + l4.len()) as u16;
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = fold(sum16(&h, 0));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            b.extend_from_slice(&h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            b.extend_from_slice(&ETH_IP6.to_be_bytes());
            b.extend_from_slice(&[0x60, 0, 0, 0]);
            b.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            b.extend_from_slice(&[proto, 64]);
            b.extend_from_slice(&s.octets());
            b.extend_from_slice(&d.octets());
        }
        _ => {}
    }
    b.extend_from_slice(&l4);
    if b.len() < 60 {
        b.resize(60, 0);
    }
    b
}

fn is_group(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_multicast() || v.is_broadcast() || v.is_unspecified(),
        IpAddr::V6(v) => v.is_multicast() || v.is_unspecified(),
    }
}

/// The answer to a rejected packet, or None when it must not be answered.
pub fn reject_reply(b: &[u8], p: &Parsed) -> Option<Vec<u8>> {
    if p.later_fragment || is_group(p.src) || p.eth_src[0] & 1 == 1 {
        return None;
    }
    let v6 = p.src.is_ipv6();
    match p.proto {
        TCP => {
            if p.tcp_flags & TCP_RST != 0 {
                return None;
            }
            let (seq, ack, flags) = if p.tcp_flags & TCP_ACK != 0 {
                (p.tcp_ack, 0, TCP_RST)
            } else {
                let extra =
                    u32::from(p.tcp_flags & TCP_SYN != 0) + u32::from(p.tcp_flags & TCP_FIN != 0);
                (
                    0,
                    p.tcp_seq.wrapping_add(p.tcp_payload).wrapping_add(extra),
                    TCP_RST | TCP_ACK,
                )
            };
            let mut t = Vec::with_capacity(20);
            t.extend_from_slice(&p.dport.to_be_bytes());
            t.extend_from_slice(&p.sport.to_be_bytes());
            t.extend_from_slice(&seq.to_be_bytes());
            t.extend_from_slice(&ack.to_be_bytes());
            t.extend_from_slice(&[0x50, flags, 0, 0, 0, 0, 0, 0]);
            Some(frame(p, TCP, t, Some(16)))
        }
        ICMP if !v6 => {
            // Errors (unreachable, source quench, redirect, time exceeded, parameter
            // problem) are never answered.
            if matches!(p.icmp_type, 3 | 4 | 5 | 11 | 12) {
                return None;
            }
            Some(icmp4_unreachable(b, p, 13))
        }
        ICMP6 if v6 => {
            if p.icmp_type < 128 {
                return None;
            }
            Some(icmp6_unreachable(b, p, 1))
        }
        UDP if v6 => Some(icmp6_unreachable(b, p, 4)),
        UDP => Some(icmp4_unreachable(b, p, 3)),
        _ if v6 => Some(icmp6_unreachable(b, p, 1)),
        _ => Some(icmp4_unreachable(b, p, 13)),
    }
}

fn icmp4_unreachable(b: &[u8], p: &Parsed, code: u8) -> Vec<u8> {
    // The IP header and the first 8 bytes of its payload (RFC 792), more up to 576 bytes.
    let quote_end = p.end.min(p.l3 + 576 - 28);
    let mut m = vec![3, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&b[p.l3..quote_end]);
    let c = fold(sum16(&m, 0));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    frame(p, ICMP, m, None)
}

fn icmp6_unreachable(b: &[u8], p: &Parsed, code: u8) -> Vec<u8> {
    let quote_end = p.end.min(p.l3 + 1280 - 48);
    let mut m = vec![1, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&b[p.l3..quote_end]);
    frame(p, ICMP6, m, Some(2))
}

fn field_u32(pin: &PacketIn, index: u8) -> Option<u32> {
    pin.metadata.fields().iter().find_map(|f| match f {
        MatchField::Reg {
            index: i, value, ..
        } if *i == index => Some(*value),
        _ => None,
    })
}

fn metadata(pin: &PacketIn) -> Option<u64> {
    pin.metadata.fields().iter().find_map(|f| match f {
        MatchField::Metadata { value, .. } => Some(*value),
        _ => None,
    })
}

/// The reject handler: the answer as a packet-out (see the module docs).
pub fn reject(
    pin: &PacketIn,
    args: &[u8],
    in_port: Option<u32>,
) -> Result<PacketOut, PinctrlError> {
    let Some(&dir) = args.first() else {
        return Err(PinctrlError::BadArgs("reject wants a direction"));
    };
    let p = parse(&pin.packet)?;
    let reply = reject_reply(&pin.packet, &p).ok_or(PinctrlError::Ignored(
        "never answer a RST, an ICMP error, a later fragment or a group address",
    ))?;
    let actions = if dir == 0 {
        vec![Action::Output(in_port.ok_or(PinctrlError::NoInPort)?)]
    } else {
        let dp = metadata(pin).ok_or(PinctrlError::BadArgs("to-lport reject without metadata"))?;
        let out = field_u32(pin, reg::OUTPORT).unwrap_or(0);
        vec![
            Action::SetField(SetField::Metadata(dp)),
            Action::SetField(SetField::Reg {
                index: reg::INPORT,
                value: out,
            }),
            Action::Resubmit {
                table: Stage::L2Lookup.table(),
            },
        ]
    };
    Ok(PacketOut {
        buffer_id: u32::MAX,
        matches: Match::new().with(MatchField::InPort(ports::CONTROLLER)),
        actions,
        packet: reply,
    })
}

/// One logged packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub name: String,
    pub key: String,
    pub verdict: &'static str,
    pub direction: &'static str,
    pub severity: String,
    pub proto: u8,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub sport: u16,
    pub dport: u16,
    /// Logical datapath key and the input / output port keys.
    pub datapath: u64,
    pub inport: u32,
    pub outport: u32,
    /// The OpenFlow port it came in on.
    pub in_port: Option<u32>,
}

impl fmt::Display for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = |a: &Option<IpAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
        write!(
            f,
            "name={:?} verdict={} direction={} severity={} proto={} src={} dst={} sport={} dport={} datapath={} inport={} outport={} key={:?}",
            self.name,
            self.verdict,
            self.direction,
            self.severity,
            self.proto,
            ip(&self.src),
            ip(&self.dst),
            self.sport,
            self.dport,
            self.datapath,
            self.inport,
            self.outport,
            self.key
        )
    }
}

fn take_str(args: &[u8], at: &mut usize) -> Result<String, PinctrlError> {
    let n = usize::from(
        *args
            .get(*at)
            .ok_or(PinctrlError::BadArgs("log args truncated"))?,
    );
    let s = args
        .get(*at + 1..*at + 1 + n)
        .ok_or(PinctrlError::BadArgs("log args truncated"))?;
    *at += 1 + n;
    Ok(String::from_utf8_lossy(s).into_owned())
}

/// The log handler: the record of one packet.
pub fn log(pin: &PacketIn, args: &[u8], in_port: Option<u32>) -> Result<LogRecord, PinctrlError> {
    if args.len() < 10 {
        return Err(PinctrlError::BadArgs(
            "log wants direction, verdict, cookie",
        ));
    }
    let direction = if args[0] == 0 {
        "from-lport"
    } else {
        "to-lport"
    };
    let verdict = crate::pipeline::acl::verdict_of(args[1])
        .ok_or(PinctrlError::BadArgs("unknown verdict code"))?
        .as_str();
    let mut at = 10;
    let severity = take_str(args, &mut at)?;
    let name = take_str(args, &mut at)?;
    let key = take_str(args, &mut at)?;
    let parsed = parse(&pin.packet).ok();
    Ok(LogRecord {
        name,
        key,
        verdict,
        direction,
        severity,
        proto: parsed.as_ref().map(|p| p.proto).unwrap_or(0),
        src: parsed.as_ref().map(|p| p.src),
        dst: parsed.as_ref().map(|p| p.dst),
        sport: parsed.as_ref().map(|p| p.sport).unwrap_or(0),
        dport: parsed.as_ref().map(|p| p.dport).unwrap_or(0),
        datapath: metadata(pin).unwrap_or(0),
        inport: field_u32(pin, reg::INPORT).unwrap_or(0),
        outport: field_u32(pin, reg::OUTPORT).unwrap_or(0),
        in_port,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ipv4_tcp(flags: u8, seq: u32, ack: u32, payload: usize) -> Vec<u8> {
        let mut b = vec![0x0a, 0, 0, 0, 0, 2, 0x0a, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = (20 + 20 + payload) as u16;
        b.extend_from_slice(&[0x45, 0]);
        b.extend_from_slice(&total.to_be_bytes());
        b.extend_from_slice(&[0, 1, 0x40, 0, 64, TCP, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        b.extend_from_slice(&40000u16.to_be_bytes());
        b.extend_from_slice(&22u16.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&ack.to_be_bytes());
        b.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        b.extend(std::iter::repeat_n(0xaa, payload));
        b
    }

    #[test]
    fn a_syn_gets_a_rst_ack_with_valid_checksums() {
        let b = ipv4_tcp(TCP_SYN, 1000, 0, 0);
        let p = parse(&b).unwrap();
        let r = reject_reply(&b, &p).unwrap();
        let q = parse(&r).unwrap();
        assert_eq!((q.src, q.dst), (p.dst, p.src));
        assert_eq!((q.sport, q.dport), (22, 40000));
        assert_eq!(q.tcp_flags, TCP_RST | TCP_ACK);
        assert_eq!(q.tcp_ack, 1001);
        assert_eq!(&r[0..6], &p.eth_src);
        // IPv4 header checksum and TCP checksum verify to zero.
        assert_eq!(fold(sum16(&r[14..34], 0)), 0);
        let tcp = &r[34..54];
        assert_eq!(fold(sum16(tcp, pseudo(q.src, q.dst, TCP, tcp.len()))), 0);
        // An established segment: RST with seq = its ack.
        let b = ipv4_tcp(TCP_ACK, 5, 777, 10);
        let q = parse(&reject_reply(&b, &parse(&b).unwrap()).unwrap()).unwrap();
        assert_eq!((q.tcp_flags, q.tcp_seq), (TCP_RST, 777));
        // A RST is never answered.
        let b = ipv4_tcp(TCP_RST | TCP_ACK, 5, 7, 0);
        assert!(reject_reply(&b, &parse(&b).unwrap()).is_none());
    }

    #[test]
    fn udp_gets_port_unreachable_and_icmp_errors_nothing() {
        let mut b = ipv4_tcp(0, 0, 0, 0);
        b[14 + 9] = UDP;
        b.truncate(14 + 20 + 12);
        b[16..18].copy_from_slice(&32u16.to_be_bytes());
        let p = parse(&b).unwrap();
        let r = reject_reply(&b, &p).unwrap();
        let q = parse(&r).unwrap();
        assert_eq!((q.proto, q.icmp_type, r[q.l4 + 1]), (ICMP, 3, 3));
        assert_eq!(fold(sum16(&r[q.l4..q.end], 0)), 0, "ICMP checksum");
        // The quote holds the original IP header.
        assert_eq!(&r[q.l4 + 8..q.l4 + 28], &b[14..34]);
        // The answer itself (an ICMP error) is never answered.
        assert!(reject_reply(&r, &q).is_none());
        // Nor a packet from a broadcast address.
        let mut bc = b.clone();
        bc[26..30].copy_from_slice(&[255, 255, 255, 255]);
        assert!(reject_reply(&bc, &parse(&bc).unwrap()).is_none());
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x1234_5678;
        for n in 0..3000usize {
            let mut b = ipv4_tcp(TCP_SYN, 1, 2, n % 40);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % b.len();
            b[i] = (x >> 8) as u8;
            b.truncate((x as usize >> 16) % (b.len() + 1));
            if let Ok(p) = parse(&b) {
                let _ = reject_reply(&b, &p);
            }
        }
    }
}
