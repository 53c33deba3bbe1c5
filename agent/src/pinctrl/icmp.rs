//! The router's ICMP error handler: a packet whose TTL would expire at a router port is
//! punted (`controller(userdata=OP_ICMP_TIME_EXCEEDED IP MAC)`, see
//! [`crate::pipeline::punt::icmp_time_exceeded`] and [`crate::pipeline::l3`]) and answered
//! here with an ICMP time exceeded (type 11, code 0) from the router port's address, sent
//! out the port the packet came in on (the sender is on the router port's switch: routing
//! runs on the chassis where the packet enters).
//!
//! As RFC 1812 §4.3.2.7 (and OVN's `icmp4` action) say, no error is sent for an ICMP error,
//! a non-initial fragment, or a packet from an address that is not unicast. The error
//! quotes the original datagram from its IP header, as much as fits in 576 bytes.

use std::net::Ipv4Addr;

use weft_openflow::codec::{PacketIn, PacketOut};
use weft_openflow::flow::{ports, Action, Mac, Match, MatchField};

use super::{in_port, ip_at, mac_at, Answer, PinctrlError};

const ETH_TYPE_IPV4: u16 = 0x0800;
const ETH_HEADER: usize = 14;
const IP_PROTO_ICMP: u8 = 1;
/// ICMP time exceeded, code 0 "TTL exceeded in transit".
pub const ICMP_TIME_EXCEEDED: u8 = 11;
/// The TTL of the errors the router sends (OVN sends 254 after its own decrement; a fresh
/// packet from the router starts at 255).
pub const ERROR_TTL: u8 = 255;
/// The error's IP datagram is at most this long (RFC 1812 §4.3.2.3).
pub const MAX_ERROR_LEN: usize = 576;

/// The fields of an IPv4 packet the handler needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Header {
    pub eth_src: Mac,
    pub header_len: usize,
    pub total_len: usize,
    pub ttl: u8,
    pub proto: u8,
    pub frag_offset: u16,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

/// Parses an untagged Ethernet frame carrying IPv4.
pub fn parse_ipv4(b: &[u8]) -> Result<Ipv4Header, PinctrlError> {
    if b.len() < ETH_HEADER {
        return Err(PinctrlError::BadPacket("shorter than an Ethernet header"));
    }
    if u16::from_be_bytes([b[12], b[13]]) != ETH_TYPE_IPV4 {
        return Err(PinctrlError::BadPacket("not IPv4"));
    }
    let ip = &b[ETH_HEADER..];
    if ip.len() < 20 {
        return Err(PinctrlError::BadPacket("shorter than an IPv4 header"));
    }
    if ip[0] >> 4 != 4 {
        return Err(PinctrlError::BadPacket("IP version is not 4"));
    }
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if header_len < 20 || total_len < header_len || ip.len() < header_len {
        return Err(PinctrlError::BadPacket("bad IPv4 header or total length"));
    }
    Ok(Ipv4Header {
        eth_src: mac_at(b, 6),
        header_len,
        total_len: total_len.min(ip.len()),
        ttl: ip[8],
        proto: ip[9],
        frag_offset: u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff,
        src: ip_at(ip, 12),
        dst: ip_at(ip, 16),
    })
}

/// The Internet checksum of `b`.
pub fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// True for an ICMP message that is an error (no error is sent about an error).
fn is_icmp_error(icmp_type: u8) -> bool {
    matches!(icmp_type, 3 | 4 | 5 | 11 | 12)
}

/// The ICMP time exceeded for the Ethernet frame `frame` (IPv4), from `ip`/`mac`: an
/// Ethernet frame back to the sender.
pub fn time_exceeded(frame: &[u8], ip: Ipv4Addr, mac: Mac) -> Result<Vec<u8>, PinctrlError> {
    let h = parse_ipv4(frame)?;
    if h.ttl > 1 {
        return Err(PinctrlError::Ignored("TTL does not expire"));
    }
    error(frame, ICMP_TIME_EXCEEDED, 0, [0; 4], ip, mac)
}

/// An ICMP error (`icmp_type`/`code`, `rest` = the 4 header bytes after the checksum) about
/// the Ethernet frame `frame` (IPv4), from `ip`/`mac`, quoting the datagram: an Ethernet frame
/// back to the sender (`eth_dst` = the frame's `eth_src`). Refused as RFC 1812 says: about a
/// non-initial fragment, a non-unicast source or destination, or an ICMP error.
pub fn error(
    frame: &[u8],
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
    ip: Ipv4Addr,
    mac: Mac,
) -> Result<Vec<u8>, PinctrlError> {
    let h = parse_ipv4(frame)?;
    if h.frag_offset != 0 {
        return Err(PinctrlError::Ignored("not the first fragment"));
    }
    if h.src.is_unspecified()
        || h.src.is_broadcast()
        || h.src.is_multicast()
        || h.src.is_loopback()
        || h.dst.is_multicast()
        || h.dst.is_broadcast()
    {
        return Err(PinctrlError::Ignored(
            "source or destination is not unicast",
        ));
    }
    let orig = &frame[ETH_HEADER..ETH_HEADER + h.total_len];
    if h.proto == IP_PROTO_ICMP {
        let t = orig
            .get(h.header_len)
            .ok_or(PinctrlError::BadPacket("ICMP without its header"))?;
        if is_icmp_error(*t) {
            return Err(PinctrlError::Ignored("no ICMP error about an ICMP error"));
        }
    }
    let quoted = &orig[..orig.len().min(MAX_ERROR_LEN - 20 - 8)];
    let ip_len = 20 + 8 + quoted.len();
    let mut out = Vec::with_capacity(ETH_HEADER + ip_len);
    out.extend_from_slice(&h.eth_src.0);
    out.extend_from_slice(&mac.0);
    out.extend_from_slice(&ETH_TYPE_IPV4.to_be_bytes());
    let ip_start = out.len();
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&(ip_len as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // id, flags/fragment offset
    out.extend_from_slice(&[ERROR_TTL, IP_PROTO_ICMP, 0, 0]);
    out.extend_from_slice(&ip.octets());
    out.extend_from_slice(&h.src.octets());
    let c = checksum(&out[ip_start..ip_start + 20]);
    out[ip_start + 10..ip_start + 12].copy_from_slice(&c.to_be_bytes());
    let icmp_start = out.len();
    out.extend_from_slice(&[icmp_type, code, 0, 0]);
    out.extend_from_slice(&rest);
    out.extend_from_slice(quoted);
    let c = checksum(&out[icmp_start..]);
    out[icmp_start + 2..icmp_start + 4].copy_from_slice(&c.to_be_bytes());
    if out.len() < 60 {
        out.resize(60, 0);
    }
    Ok(out)
}

/// The handler: args = router port IPv4 (4) + MAC (6).
pub fn handle_time_exceeded(pin: &PacketIn, args: &[u8]) -> Result<Answer, PinctrlError> {
    if args.len() < 10 {
        return Err(PinctrlError::BadArgs("time exceeded wants IPv4 + MAC"));
    }
    let ip = ip_at(args, 0);
    let mac = mac_at(args, 4);
    let packet = time_exceeded(&pin.packet, ip, mac)?;
    let port = in_port(pin).ok_or(PinctrlError::NoInPort)?;
    Ok(Answer::PacketOut(PacketOut {
        buffer_id: u32::MAX,
        matches: Match::new().with(MatchField::InPort(ports::CONTROLLER)),
        actions: vec![Action::Output(port)],
        packet,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SENDER: Mac = Mac([0x0a, 0, 0, 0, 0, 5]);
    const ROUTER: Mac = Mac([0x0a, 0, 0, 0, 1, 1]);

    /// An Ethernet + IPv4 + UDP frame with `ttl`, `payload` bytes of UDP data.
    fn udp(ttl: u8, src: [u8; 4], dst: [u8; 4], payload: usize, frag: u16) -> Vec<u8> {
        let mut b = vec![0x0a, 0, 0, 0, 1, 1];
        b.extend_from_slice(&SENDER.0);
        b.extend_from_slice(&[0x08, 0]);
        let len = (20 + 8 + payload) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&len.to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34]);
        ip.extend_from_slice(&frag.to_be_bytes());
        ip.extend_from_slice(&[ttl, 17, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        b.extend_from_slice(&ip);
        b.extend_from_slice(&[0x82, 0x9a, 0x82, 0x9b]);
        b.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend((0..payload).map(|i| i as u8));
        b
    }

    #[test]
    fn time_exceeded_quotes_the_packet_with_valid_checksums() {
        let frame = udp(1, [10, 0, 1, 5], [10, 0, 2, 7], 32, 0x4000);
        let out = time_exceeded(&frame, Ipv4Addr::new(10, 0, 1, 1), ROUTER).unwrap();
        assert_eq!(&out[0..6], &SENDER.0, "back to the sender");
        assert_eq!(&out[6..12], &ROUTER.0);
        let ip = &out[14..];
        assert_eq!(checksum(&ip[..20]), 0, "IP checksum");
        assert_eq!(ip[8], ERROR_TTL);
        assert_eq!(ip[9], 1);
        assert_eq!(&ip[12..16], &[10, 0, 1, 1], "from the router port");
        assert_eq!(&ip[16..20], &[10, 0, 1, 5], "to the sender");
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert_eq!(total, 20 + 8 + 20 + 8 + 32);
        let icmp = &ip[20..total];
        assert_eq!((icmp[0], icmp[1]), (11, 0));
        assert_eq!(checksum(icmp), 0, "ICMP checksum");
        assert_eq!(
            &icmp[8..],
            &frame[14..],
            "quotes the whole original datagram"
        );
    }

    #[test]
    fn a_long_packet_is_quoted_up_to_576_bytes() {
        let frame = udp(0, [10, 0, 1, 5], [10, 0, 2, 7], 1400, 0);
        let out = time_exceeded(&frame, Ipv4Addr::new(10, 0, 1, 1), ROUTER).unwrap();
        assert_eq!(out.len(), 14 + MAX_ERROR_LEN);
        assert_eq!(checksum(&out[14 + 20..]), 0);
    }

    #[test]
    fn no_error_for_errors_fragments_or_non_unicast() {
        let r = Ipv4Addr::new(10, 0, 1, 1);
        for (frame, why) in [
            (udp(2, [10, 0, 1, 5], [10, 0, 2, 7], 8, 0), "ttl 2"),
            (udp(1, [10, 0, 1, 5], [10, 0, 2, 7], 8, 0x0010), "fragment"),
            (udp(1, [0, 0, 0, 0], [10, 0, 2, 7], 8, 0), "source 0"),
            (udp(1, [10, 0, 1, 5], [224, 0, 0, 5], 8, 0), "multicast"),
        ] {
            assert!(
                matches!(
                    time_exceeded(&frame, r, ROUTER),
                    Err(PinctrlError::Ignored(_))
                ),
                "{why}"
            );
        }
        // An ICMP error (port unreachable) with TTL 1.
        let mut f = udp(1, [10, 0, 1, 5], [10, 0, 2, 7], 8, 0);
        f[14 + 9] = 1;
        f[14 + 20] = 3;
        assert!(matches!(
            time_exceeded(&f, r, ROUTER),
            Err(PinctrlError::Ignored(_))
        ));
        // An echo request with TTL 1 is answered.
        f[14 + 20] = 8;
        assert!(time_exceeded(&f, r, ROUTER).is_ok());
        // Garbage.
        assert!(matches!(
            time_exceeded(&f[..20], r, ROUTER),
            Err(PinctrlError::BadPacket(_))
        ));
        let mut bad = f.clone();
        bad[14] = 0x44;
        assert!(matches!(
            time_exceeded(&bad, r, ROUTER),
            Err(PinctrlError::BadPacket(_))
        ));
    }
}
