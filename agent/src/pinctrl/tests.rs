//! Unit tests of the dispatcher and the packet parsers, with a fixed-seed fuzz run.

use super::*;
use crate::pipeline::punt::{arp_gateway_userdata, gateway_mac};

fn request(tpa: Ipv4Addr) -> ArpPacket {
    ArpPacket {
        eth_dst: Mac([0xff; 6]),
        eth_src: Mac([0x0a, 0, 0, 0, 0, 2]),
        op: 1,
        sha: Mac([0x0a, 0, 0, 0, 0, 2]),
        spa: Ipv4Addr::new(10, 0, 0, 2),
        tha: Mac([0; 6]),
        tpa,
    }
}

fn pin(packet: Vec<u8>, userdata: Vec<u8>) -> PacketIn {
    PacketIn {
        packet,
        table_id: 20,
        reason: 1,
        metadata: Match::new().with(MatchField::InPort(7)),
        userdata,
        ..Default::default()
    }
}

#[test]
fn gateway_arp_is_answered_out_the_input_port() {
    let gw = Ipv4Addr::new(10, 0, 0, 1);
    let mac = gateway_mac(gw);
    let mut d = Dispatcher::new();
    let a = d
        .dispatch(&pin(
            encode_arp(&request(gw)),
            arp_gateway_userdata(gw, mac),
        ))
        .unwrap();
    let Answer::PacketOut(po) = a else {
        panic!("{a:?}")
    };
    assert_eq!(po.actions, vec![Action::Output(7)]);
    let reply = parse_arp(&po.packet).unwrap();
    assert_eq!(reply.op, 2);
    assert_eq!(reply.sha, mac);
    assert_eq!(reply.spa, gw);
    assert_eq!(reply.tpa, Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(reply.eth_dst, Mac([0x0a, 0, 0, 0, 0, 2]));
    assert_eq!(d.stats.answered, 1);
}

#[test]
fn malformed_packet_ins_are_counted_and_dropped() {
    let gw = Ipv4Addr::new(10, 0, 0, 1);
    let ud = arp_gateway_userdata(gw, gateway_mac(gw));
    let good = encode_arp(&request(gw));
    let mut d = Dispatcher::new();
    assert_eq!(
        d.dispatch(&pin(good.clone(), vec![])),
        Err(PinctrlError::NoUserdata)
    );
    assert_eq!(
        d.dispatch(&pin(good.clone(), vec![0, 0, 0, 99])),
        Err(PinctrlError::UnknownOp(99))
    );
    assert!(matches!(
        d.dispatch(&pin(good.clone(), ud[..6].to_vec())),
        Err(PinctrlError::BadArgs(_))
    ));
    assert!(matches!(
        d.dispatch(&pin(good[..20].to_vec(), ud.clone())),
        Err(PinctrlError::BadPacket(_))
    ));
    let mut truncated = pin(good[..30].to_vec(), ud.clone());
    truncated.full_len = Some(60);
    assert!(matches!(
        d.dispatch(&truncated),
        Err(PinctrlError::Truncated { .. })
    ));
    let other = encode_arp(&request(Ipv4Addr::new(10, 0, 0, 9)));
    assert!(matches!(
        d.dispatch(&pin(other, ud.clone())),
        Err(PinctrlError::Ignored(_))
    ));
    let mut no_port = pin(good, ud);
    no_port.metadata = Match::new();
    assert_eq!(d.dispatch(&no_port), Err(PinctrlError::NoInPort));
    assert_eq!(d.stats.received, 7);
    assert_eq!(d.stats.dropped(), 7);
    assert_eq!(d.stats.answered, 0);
}

/// xorshift64*: a fixed-seed generator, so the fuzz run is the same in every CI run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random and mutated packets and userdata through the parsers and the dispatcher, and
/// random bytes through the OpenFlow packet-in decoder: nothing panics.
#[test]
fn fuzz_packet_parsers_fixed_seed() {
    let gw = Ipv4Addr::new(10, 0, 0, 1);
    let ud = arp_gateway_userdata(gw, gateway_mac(gw));
    let good = encode_arp(&request(gw));
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut d = Dispatcher::new();
    for i in 0..20_000 {
        let mut packet = if i % 2 == 0 {
            good.clone()
        } else {
            (0..rng.below(80)).map(|_| rng.next() as u8).collect()
        };
        for _ in 0..rng.below(4) {
            if !packet.is_empty() {
                let at = rng.below(packet.len());
                packet[at] = rng.next() as u8;
            }
        }
        packet.truncate(rng.below(packet.len() + 1).max(packet.len() / 2));
        let mut userdata = ud.clone();
        if rng.below(4) == 0 {
            userdata.truncate(rng.below(userdata.len() + 1));
        }
        if rng.below(8) == 0 && !userdata.is_empty() {
            userdata[0] = rng.next() as u8;
        }
        let mut p = pin(packet.clone(), userdata);
        if rng.below(8) == 0 {
            p.full_len = Some(rng.next() as u32 % 200);
        }
        let _ = d.dispatch(&p);
        let _ = parse_arp(&packet);
        // The wire decoder of NXT_PACKET_IN2 bodies: random bytes, never a panic.
        let mut msg = vec![6u8, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0x23, 0x20, 0, 0, 0, 30];
        msg.extend(packet.iter().copied());
        let len = msg.len() as u16;
        msg[2..4].copy_from_slice(&len.to_be_bytes());
        let _ = weft_openflow::codec::decode(&msg);
    }
    assert_eq!(d.stats.received, 20_000);
    assert!(
        d.stats.answered > 0 && d.stats.dropped() > 0,
        "{:?}",
        d.stats
    );
}
