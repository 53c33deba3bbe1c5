//! Neighbour resolution for next hops no logical port declares (a static route's next hop
//! that is a second address of a pod, an appliance behind a port with `unknown` addresses):
//! what OVN does with `arp { ... }` and `MAC_Binding`, here per chassis.
//!
//! - lr-neigh miss on router port P ([`crate::pipeline::l3`]): `controller(userdata=
//!   OP_ARP_RESOLVE P.MAC SWITCH_KEY LSP_KEY)`; [`handle_resolve`] reads the next hop (reg0)
//!   and the source address (reg1) from the packet-in and sends a broadcast ARP request from
//!   P into P's switch (packet-out: `metadata=SWITCH, reg14=LSP, resubmit(,l2-lookup)`). The
//!   packet that missed is dropped (OVN drops it too, or holds one).
//! - An ARP reply addressed to P (lr-input, `arp_op=2`, `reg14=P`): `controller(userdata=
//!   OP_ARP_LEARN ROUTER_KEY P_KEY)`; [`handle_learn`] turns it into a [`Learned`] binding
//!   the agent checks against its view (the router port exists, the address is on one of its
//!   networks) and keeps in [`Neighbours`]; P's flows are recompiled with an lr-neigh flow
//!   (`reg15=P, reg0=IP → eth_dst=MAC`, priority [`crate::pipeline::l3::PRIO_NEIGH_LEARNED`],
//!   below the view's bindings).
//!
//! Bindings are learned by each chassis for itself (routing runs on the source chassis, so a
//! chassis needs only the next hops its own pods use) rather than shared through the
//! controller as OVN's southbound `MAC_Binding` table is: no southbound traffic per ARP, and a
//! chassis that never routes there never holds the entry. They live [`NEIGH_TTL`] after the
//! last reply (then the next packet resolves again) and at most [`NEIGH_CAP`] are kept (the
//! oldest goes first). They are not persisted apart from the flows themselves: a restarted
//! agent recovers them from the learned lr-neigh flows it reads back ([`Neighbours::recover`],
//! before its first compile), so traffic to them goes on across the restart.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use weft_openflow::codec::{PacketIn, PacketOut};
use weft_openflow::flow::{ports, Action, Mac, Match, MatchField, SetField};

use super::{encode_arp, mac_at, parse_arp, Answer, ArpPacket, PinctrlError};
use crate::pipeline::{reg, Stage};

/// How long a learned binding lives after its last ARP reply.
pub const NEIGH_TTL: Duration = Duration::from_secs(600);
/// Most learned bindings one chassis keeps.
pub const NEIGH_CAP: usize = 4096;

/// A binding learned from an ARP reply, as the handler saw it (keys, not names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Learned {
    pub router_key: u32,
    pub lrp_key: u32,
    pub ip: Ipv4Addr,
    pub mac: Mac,
}

fn reg_of(pin: &PacketIn, index: u8) -> Option<u32> {
    pin.metadata.fields().iter().find_map(|f| match f {
        MatchField::Reg {
            index: i, value, ..
        } if *i == index => Some(*value),
        _ => None,
    })
}

/// The ARP request for the next hop in reg0, from the router port (args: MAC 6, switch
/// key 4, router-type switch port key 4; source address in reg1).
pub fn handle_resolve(pin: &PacketIn, args: &[u8]) -> Result<Answer, PinctrlError> {
    if args.len() < 14 {
        return Err(PinctrlError::BadArgs(
            "ARP resolve wants MAC + switch key + port key",
        ));
    }
    let mac = mac_at(args, 0);
    let sw = u32::from_be_bytes([args[6], args[7], args[8], args[9]]);
    let lsp = u32::from_be_bytes([args[10], args[11], args[12], args[13]]);
    let tpa = reg_of(pin, crate::pipeline::l3::REG_NEXT_HOP)
        .map(Ipv4Addr::from)
        .ok_or(PinctrlError::BadPacket(
            "no next hop (reg0) in the packet-in",
        ))?;
    let spa = reg_of(pin, crate::pipeline::l3::REG_SOURCE_IP)
        .map(Ipv4Addr::from)
        .ok_or(PinctrlError::BadPacket(
            "no source address (reg1) in the packet-in",
        ))?;
    if tpa.is_unspecified() || tpa.is_broadcast() || tpa.is_multicast() {
        return Err(PinctrlError::Ignored("next hop is not unicast"));
    }
    let req = ArpPacket {
        eth_dst: Mac([0xff; 6]),
        eth_src: mac,
        op: 1,
        sha: mac,
        spa,
        tha: Mac([0; 6]),
        tpa,
    };
    Ok(Answer::PacketOut(PacketOut {
        buffer_id: u32::MAX,
        matches: Match::new().with(MatchField::InPort(ports::CONTROLLER)),
        actions: vec![
            Action::SetField(SetField::Metadata(u64::from(sw))),
            Action::SetField(SetField::Reg {
                index: reg::INPORT,
                value: lsp,
            }),
            Action::SetField(SetField::Reg {
                index: reg::OUTPORT,
                value: 0,
            }),
            Action::Resubmit {
                table: Stage::L2Lookup.table(),
            },
        ],
        packet: encode_arp(&req),
    }))
}

/// An ARP reply to a router port (args: router key 4, port key 4) → the binding.
pub fn handle_learn(pin: &PacketIn, args: &[u8]) -> Result<Answer, PinctrlError> {
    if args.len() < 8 {
        return Err(PinctrlError::BadArgs(
            "ARP learn wants router key + port key",
        ));
    }
    let arp = parse_arp(&pin.packet)?;
    if arp.op != 2 {
        return Err(PinctrlError::Ignored("not an ARP reply"));
    }
    if arp.sha.is_multicast() || arp.sha == Mac([0; 6]) || arp.spa.is_unspecified() {
        return Err(PinctrlError::Ignored("not a unicast binding"));
    }
    Ok(Answer::Learn(Learned {
        router_key: u32::from_be_bytes([args[0], args[1], args[2], args[3]]),
        lrp_key: u32::from_be_bytes([args[4], args[5], args[6], args[7]]),
        ip: arp.spa,
        mac: arp.sha,
    }))
}

/// The userdata of the lr-neigh miss punt of a router port.
pub fn resolve_userdata(op: u32, mac: Mac, switch_key: u32, lsp_key: u32) -> Vec<u8> {
    let mut u = op.to_be_bytes().to_vec();
    u.extend_from_slice(&mac.0);
    u.extend_from_slice(&switch_key.to_be_bytes());
    u.extend_from_slice(&lsp_key.to_be_bytes());
    u
}

/// The userdata of the ARP reply punt of a router port.
pub fn learn_userdata(op: u32, router_key: u32, lrp_key: u32) -> Vec<u8> {
    let mut u = op.to_be_bytes().to_vec();
    u.extend_from_slice(&router_key.to_be_bytes());
    u.extend_from_slice(&lrp_key.to_be_bytes());
    u
}

/// The learned bindings of this chassis: (router key, router port key, IP) → MAC.
#[derive(Clone, Debug, Default)]
pub struct Neighbours {
    map: BTreeMap<(u32, u32, Ipv4Addr), (Mac, Instant)>,
}

/// No learned bindings (for compiles without a reconciler: tests, benchmarks).
pub static NO_NEIGHBOURS: Neighbours = Neighbours {
    map: BTreeMap::new(),
};

impl Neighbours {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keeps `l` (refreshing its time); true when the flows change (a new binding or a new
    /// MAC). At [`NEIGH_CAP`] the oldest binding goes; its port is returned as well.
    pub fn learn(&mut self, l: &Learned, now: Instant) -> (bool, Option<(u32, u32)>) {
        let key = (l.router_key, l.lrp_key, l.ip);
        let changed = self.map.get(&key).is_none_or(|(m, _)| *m != l.mac);
        let mut evicted = None;
        if !self.map.contains_key(&key) && self.map.len() >= NEIGH_CAP {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k)
            {
                self.map.remove(&oldest);
                evicted = Some((oldest.0, oldest.1));
            }
        }
        self.map.insert(key, (l.mac, now));
        (changed, evicted)
    }

    /// Drops the bindings older than [`NEIGH_TTL`]; returns the (router, port) keys whose
    /// flows change.
    pub fn expire(&mut self, now: Instant) -> Vec<(u32, u32)> {
        let old: Vec<(u32, u32, Ipv4Addr)> = self
            .map
            .iter()
            .filter(|(_, (_, t))| now.saturating_duration_since(*t) >= NEIGH_TTL)
            .map(|(k, _)| *k)
            .collect();
        let mut ports: Vec<(u32, u32)> = old.iter().map(|k| (k.0, k.1)).collect();
        ports.dedup();
        for k in old {
            self.map.remove(&k);
        }
        ports
    }

    /// Bindings recovered from the learned lr-neigh flows a switch holds (after an agent
    /// restart: the flows stayed installed, so the bindings carry on with a fresh TTL instead
    /// of being removed by the first reconcile and learned again).
    pub fn recover(&mut self, flows: &[weft_openflow::flow::Flow], now: Instant) -> usize {
        let mut n = 0;
        for f in flows {
            if f.table != Stage::LrNeigh.table()
                || f.priority != crate::pipeline::l3::PRIO_NEIGH_LEARNED
            {
                continue;
            }
            let (mut rk, mut pk, mut ip) = (None, None, None);
            for m in f.matches.fields() {
                match m {
                    MatchField::Metadata { value, mask: None } => rk = u32::try_from(*value).ok(),
                    MatchField::Reg {
                        index,
                        value,
                        mask: None,
                    } if *index == reg::OUTPORT => pk = Some(*value),
                    MatchField::Reg {
                        index,
                        value,
                        mask: None,
                    } if *index == crate::pipeline::l3::REG_NEXT_HOP => {
                        ip = Some(Ipv4Addr::from(*value))
                    }
                    _ => {}
                }
            }
            let mac = f.actions.iter().find_map(|a| match a {
                Action::SetField(SetField::EthDst(m)) => Some(*m),
                _ => None,
            });
            if let (Some(router_key), Some(lrp_key), Some(ip), Some(mac)) = (rk, pk, ip, mac) {
                let l = Learned {
                    router_key,
                    lrp_key,
                    ip,
                    mac,
                };
                if self.learn(&l, now).0 {
                    n += 1;
                }
            }
        }
        n
    }

    /// The bindings of router port `lrp_key` of router `router_key`.
    pub fn of_port(
        &self,
        router_key: u32,
        lrp_key: u32,
    ) -> impl Iterator<Item = (Ipv4Addr, Mac)> + '_ {
        self.map
            .range(
                (router_key, lrp_key, Ipv4Addr::UNSPECIFIED)
                    ..=(router_key, lrp_key, Ipv4Addr::BROADCAST),
            )
            .map(|((_, _, ip), (mac, _))| (*ip, *mac))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn pin(packet: Vec<u8>, regs: &[(u8, u32)]) -> PacketIn {
        let mut m = Match::new().with(MatchField::InPort(3));
        for (i, v) in regs {
            m = m.with(MatchField::Reg {
                index: *i,
                value: *v,
                mask: None,
            });
        }
        PacketIn {
            packet,
            metadata: m,
            ..Default::default()
        }
    }

    #[test]
    fn resolve_broadcasts_an_arp_request_into_the_switch() {
        let mac = Mac([0x0a, 0, 0, 0, 2, 1]);
        let args = &resolve_userdata(0, mac, 0x102, 7)[4..];
        let p = pin(
            Vec::new(),
            &[
                (0, u32::from(Ipv4Addr::new(10, 32, 0, 200))),
                (1, u32::from(Ipv4Addr::new(10, 32, 0, 1))),
            ],
        );
        let Answer::PacketOut(po) = handle_resolve(&p, args).unwrap() else {
            panic!("not a packet-out");
        };
        let arp = parse_arp(&po.packet).unwrap();
        assert_eq!(arp.eth_dst, Mac([0xff; 6]));
        assert_eq!((arp.op, arp.sha, arp.eth_src), (1, mac, mac));
        assert_eq!(arp.spa, Ipv4Addr::new(10, 32, 0, 1));
        assert_eq!(arp.tpa, Ipv4Addr::new(10, 32, 0, 200));
        assert_eq!(
            po.actions,
            vec![
                Action::SetField(SetField::Metadata(0x102)),
                Action::SetField(SetField::Reg {
                    index: 14,
                    value: 7
                }),
                Action::SetField(SetField::Reg {
                    index: 15,
                    value: 0
                }),
                Action::Resubmit { table: 50 },
            ]
        );
        // Without the registers, or short arguments: dropped, counted.
        assert!(handle_resolve(&pin(Vec::new(), &[]), args).is_err());
        assert!(matches!(
            handle_resolve(&p, &args[..5]),
            Err(PinctrlError::BadArgs(_))
        ));
    }

    #[test]
    fn learn_takes_replies_only() {
        let reply = ArpPacket {
            eth_dst: Mac([0x0a, 0, 0, 0, 2, 1]),
            eth_src: Mac([0x0a, 0, 0, 0, 9, 9]),
            op: 2,
            sha: Mac([0x0a, 0, 0, 0, 9, 9]),
            spa: Ipv4Addr::new(10, 32, 0, 200),
            tha: Mac([0x0a, 0, 0, 0, 2, 1]),
            tpa: Ipv4Addr::new(10, 32, 0, 1),
        };
        let args = &learn_userdata(0, 0x200, 2)[4..];
        let got = handle_learn(&pin(encode_arp(&reply), &[]), args).unwrap();
        assert_eq!(
            got,
            Answer::Learn(Learned {
                router_key: 0x200,
                lrp_key: 2,
                ip: reply.spa,
                mac: reply.sha
            })
        );
        let req = ArpPacket { op: 1, ..reply };
        assert!(handle_learn(&pin(encode_arp(&req), &[]), args).is_err());
        let bcast = ArpPacket {
            sha: Mac([0xff; 6]),
            ..reply
        };
        assert!(handle_learn(&pin(encode_arp(&bcast), &[]), args).is_err());
    }

    #[test]
    fn bindings_refresh_expire_and_are_capped() {
        let t0 = Instant::now();
        let l = |ip: u32, mac: u8| Learned {
            router_key: 1,
            lrp_key: 2,
            ip: Ipv4Addr::from(ip),
            mac: Mac([2, 0, 0, 0, 0, mac]),
        };
        let mut n = Neighbours::new();
        assert_eq!(n.learn(&l(5, 1), t0), (true, None));
        assert_eq!(
            n.learn(&l(5, 1), t0 + Duration::from_secs(300)),
            (false, None),
            "a refresh changes no flow"
        );
        assert_eq!(
            n.learn(&l(5, 2), t0 + Duration::from_secs(300)),
            (true, None),
            "a new MAC does"
        );
        assert_eq!(
            n.of_port(1, 2).collect::<Vec<_>>(),
            vec![(Ipv4Addr::from(5), Mac([2, 0, 0, 0, 0, 2]))]
        );
        assert_eq!(n.of_port(1, 3).count(), 0);
        // The refresh at 300 s keeps it past 600 s; gone at 900 s.
        assert!(n.expire(t0 + Duration::from_secs(700)).is_empty());
        assert_eq!(n.expire(t0 + Duration::from_secs(900)), vec![(1, 2)]);
        assert!(n.is_empty());
        // The cap evicts the oldest.
        for i in 0..NEIGH_CAP as u32 {
            n.learn(&l(100 + i, 1), t0 + Duration::from_millis(u64::from(i)));
        }
        let (changed, evicted) = n.learn(&l(1, 1), t0 + Duration::from_secs(1));
        assert!(changed);
        assert_eq!(evicted, Some((1, 2)));
        assert_eq!(n.len(), NEIGH_CAP);
        assert!(
            !n.of_port(1, 2).any(|(ip, _)| ip == Ipv4Addr::from(100)),
            "the oldest went"
        );
    }
}
