//! The router port MTU handler ([`crate::pipeline::mtu`]): a routed packet longer than its
//! output port's `gateway_mtu` was punted (`OP_ICMP_FRAG_NEEDED`).
//! - With DF set: an ICMP destination unreachable, code 4 "fragmentation needed and DF set",
//!   with the next-hop MTU (RFC 1191 §4), from the input router port's first address, quoting
//!   the datagram ([`super::icmp::error`]; none for an ICMP error, a non-initial fragment or a
//!   non-unicast address). It re-enters the router at lr-input as if it came in by the input
//!   port (`metadata=ROUTER, reg14=PORT`), so the router routes it back to the sender.
//! - Without DF: the packet is fragmented ([`fragment`], RFC 791) and the fragments continue
//!   into the output switch at l2-lookup (`metadata=SWITCH, reg14=the router-type port`).

use weft_openflow::codec::{PacketIn, PacketOut};
use weft_openflow::flow::{ports, Action, Match, MatchField, SetField};

use super::icmp::{self, parse_ipv4};
use super::{Answer, PinctrlError};
use crate::pipeline::{mtu, reg, Stage};

/// ICMP destination unreachable.
pub const ICMP_DEST_UNREACH: u8 = 3;
/// Code 4: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;
const ETH_HEADER: usize = 14;
const DF: u16 = 0x4000;
const MF: u16 = 0x2000;

/// Splits the IPv4 packet in Ethernet frame `frame` into fragments whose IP datagrams are at
/// most `mtu` bytes (data in multiples of 8 bytes, header copied, total length, offset, MF
/// and checksum set; an already fragmented packet keeps its offset base and MF).
pub fn fragment(frame: &[u8], mtu: u16) -> Result<Vec<Vec<u8>>, PinctrlError> {
    let h = parse_ipv4(frame)?;
    let ip = &frame[ETH_HEADER..ETH_HEADER + h.total_len];
    let flags = u16::from_be_bytes([ip[6], ip[7]]);
    if flags & DF != 0 {
        return Err(PinctrlError::Ignored("DF set: not fragmented"));
    }
    let hl = h.header_len;
    let room = (usize::from(mtu).saturating_sub(hl)) / 8 * 8;
    if room == 0 {
        return Err(PinctrlError::Ignored("MTU too small for the IP header"));
    }
    let data = &ip[hl..];
    let base = usize::from(flags & 0x1fff);
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let n = room.min(data.len() - at);
        let last = at + n == data.len();
        let mut f = Vec::with_capacity(ETH_HEADER + hl + n);
        f.extend_from_slice(&frame[..ETH_HEADER]);
        f.extend_from_slice(&ip[..hl]);
        f.extend_from_slice(&data[at..at + n]);
        let i = &mut f[ETH_HEADER..];
        i[2..4].copy_from_slice(&((hl + n) as u16).to_be_bytes());
        let mf = if last { flags & MF } else { MF };
        let off = (base + at / 8) as u16 & 0x1fff;
        i[6..8].copy_from_slice(&(mf | off).to_be_bytes());
        i[10..12].copy_from_slice(&[0, 0]);
        let c = icmp::checksum(&i[..hl]);
        i[10..12].copy_from_slice(&c.to_be_bytes());
        if f.len() < 60 {
            f.resize(60, 0);
        }
        out.push(f);
        at += n;
    }
    Ok(out)
}

fn packet_out(packet: Vec<u8>, datapath: u32, inport: u32, table: Stage) -> PacketOut {
    PacketOut {
        buffer_id: u32::MAX,
        matches: Match::new().with(MatchField::InPort(ports::CONTROLLER)),
        actions: vec![
            Action::SetField(SetField::Metadata(u64::from(datapath))),
            Action::SetField(SetField::Reg {
                index: reg::INPORT,
                value: inport,
            }),
            Action::SetField(SetField::Reg {
                index: reg::OUTPORT,
                value: 0,
            }),
            Action::Resubmit {
                table: table.table(),
            },
        ],
        packet,
    }
}

/// The handler (args: [`mtu::parse_args`]).
pub fn handle(pin: &PacketIn, args: &[u8]) -> Result<Answer, PinctrlError> {
    let t = mtu::parse_args(args).ok_or(PinctrlError::BadArgs(
        "frag needed wants MTU, IPv4, MAC and four keys",
    ))?;
    let h = parse_ipv4(&pin.packet)?;
    if h.total_len <= usize::from(t.mtu) {
        return Err(PinctrlError::Ignored("fits the MTU"));
    }
    let ip = &pin.packet[ETH_HEADER..];
    let df = u16::from_be_bytes([ip[6], ip[7]]) & DF != 0;
    if df {
        let m = t.mtu.to_be_bytes();
        let err = icmp::error(
            &pin.packet,
            ICMP_DEST_UNREACH,
            CODE_FRAG_NEEDED,
            [0, 0, m[0], m[1]],
            t.in_ip,
            t.in_mac,
        )?;
        return Ok(Answer::PacketOut(packet_out(
            err,
            t.router_key,
            t.in_key,
            Stage::LrInput,
        )));
    }
    let frags = fragment(&pin.packet, t.mtu)?;
    Ok(Answer::PacketOuts(
        frags
            .into_iter()
            .map(|f| packet_out(f, t.out_switch_key, t.out_lsp_key, Stage::L2Lookup))
            .collect(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use weft_openflow::flow::Mac;

    /// Ethernet + IPv4 (flags `flags`) + ICMP echo with `payload` bytes.
    fn echo(payload: usize, flags: u16) -> Vec<u8> {
        let mut b = vec![0x0a, 0, 0, 0, 0, 9, 0x0a, 0, 0, 0x20, 0, 1, 0x08, 0];
        let len = (20 + 8 + payload) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&len.to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34]);
        ip.extend_from_slice(&flags.to_be_bytes());
        ip.extend_from_slice(&[63, 1, 0, 0, 10, 31, 0, 5, 10, 32, 0, 7]);
        let c = icmp::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        b.extend_from_slice(&ip);
        b.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
        b.extend((0..payload).map(|i| i as u8));
        b
    }

    fn args(mtu: u16) -> Vec<u8> {
        mtu::userdata(&mtu::TooBig {
            mtu,
            in_ip: Ipv4Addr::new(10, 31, 0, 1),
            in_mac: Mac([0x0a, 0, 0, 0x1f, 0, 1]),
            router_key: 77,
            in_key: 1,
            out_switch_key: 88,
            out_lsp_key: 2,
        })[4..]
            .to_vec()
    }

    fn pin(packet: Vec<u8>) -> PacketIn {
        PacketIn {
            packet,
            ..PacketIn::default()
        }
    }

    #[test]
    fn df_set_gets_frag_needed_with_the_mtu_back_into_the_router() {
        let p = echo(1472, DF);
        let Answer::PacketOut(po) = handle(&pin(p.clone()), &args(1400)).unwrap() else {
            panic!("one packet-out");
        };
        let ip = &po.packet[14..];
        assert_eq!(&ip[12..16], &[10, 31, 0, 1], "from the input router port");
        assert_eq!(&ip[16..20], &[10, 31, 0, 5], "to the sender");
        assert_eq!(icmp::checksum(&ip[..20]), 0);
        let icmp_len = usize::from(u16::from_be_bytes([ip[2], ip[3]])) - 20;
        let m = &ip[20..20 + icmp_len];
        assert_eq!((m[0], m[1]), (3, 4));
        assert_eq!(u16::from_be_bytes([m[6], m[7]]), 1400, "next-hop MTU");
        assert_eq!(icmp::checksum(m), 0);
        assert_eq!(&m[8..28], &p[14..34], "quotes the header");
        assert_eq!(
            po.actions,
            packet_out(vec![], 77, 1, Stage::LrInput).actions,
            "re-enters the router by the input port"
        );
        // A packet that fits is not answered.
        assert!(matches!(
            handle(&pin(echo(1372, DF)), &args(1400)),
            Err(PinctrlError::Ignored(_))
        ));
        assert!(matches!(
            handle(&pin(p), &args(1400)[..10]),
            Err(PinctrlError::BadArgs(_))
        ));
    }

    #[test]
    fn without_df_the_packet_is_fragmented() {
        let p = echo(3000, 0);
        let Answer::PacketOuts(pos) = handle(&pin(p.clone()), &args(1400)).unwrap() else {
            panic!("fragments");
        };
        assert_eq!(pos.len(), 3);
        let mut data = Vec::new();
        for (i, po) in pos.iter().enumerate() {
            let ip = &po.packet[14..];
            let len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            assert!(len <= 1400, "fragment {i}: {len}");
            assert_eq!(icmp::checksum(&ip[..20]), 0);
            let fo = u16::from_be_bytes([ip[6], ip[7]]);
            assert_eq!(fo & MF != 0, i < 2, "MF on all but the last");
            assert_eq!(usize::from(fo & 0x1fff) * 8, data.len(), "offset");
            data.extend_from_slice(&ip[20..len]);
            assert_eq!(
                po.actions,
                packet_out(vec![], 88, 2, Stage::L2Lookup).actions
            );
        }
        assert_eq!(data, &p[34..], "the fragments carry the whole payload");
    }
}
