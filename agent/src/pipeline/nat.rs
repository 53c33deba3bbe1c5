//! Stages lr-ct, lr-dnat (42, 43), lr-snat (47) and lr-snat-commit (80): a router's NAT
//! rules (`lr-nat-add`), with conntrack in one zone per router per chassis
//! ([`zone_owner`], allocated by [`crate::ids`] and kept across agent restarts).
//!
//! A router with load balancers and no NAT rule gets the same lookups (lr-ct, lr-snat,
//! lr-snat-commit's default) on its gateway chassis: [`super::router_lb`] DNATs VIPs in the
//! same zone between them.
//!
//! Where rules run: every rule on the active gateway chassis of the router's gateway port
//! ([`super::gateway`], *centralized*); a distributed rule (dnat_and_snat with a logical
//! port and external MAC) also on the chassis where its logical port is local. The flows,
//! owned by the router (G = the gateway port, Z = the zone):
//! - lr-ct, priority 100: `metadata=ROUTER, reg14=G, ip` → `ct(zone=Z, nat, table=lr-dnat)`:
//!   replies of SNATed connections get their destination back, established DNATed ones
//!   their translation;
//! - lr-dnat, priority 100 per dnat / dnat_and_snat rule: `reg14=G, ip, nw_dst=EXTERNAL,
//!   ct_state=+new+trk` → `ct(commit, zone=Z, nat(dst=LOGICAL), table=lr-route)`; priority
//!   90 per other external IP (snat only), new → drop (nothing to reach there);
//! - lr-snat, priority 100 (centralized): `reg15=G, ip` → `ct(zone=Z, nat,
//!   table=lr-snat-commit)`; priority [`PRIO_DISTRIBUTED`] (distributed, where the logical
//!   port is): `reg15=G, ip, nw_src=LOGICAL` → `eth_src=EXTERNAL_MAC`, the same `ct` (above
//!   the redirect to the gateway, [`super::gateway::PRIO_REDIRECT`]);
//! - lr-snat-commit, priority `100 + prefix length` per snat / dnat_and_snat rule:
//!   `reg15=G, ip, nw_src=LOGICAL, ct_state=+new+trk` → `ct(commit, zone=Z,
//!   nat(src=EXTERNAL), table=lr-exit)`; priority 1 → `resubmit(,lr-exit)` (established:
//!   already translated);
//! - arp-nd on the gateway port's switch: ARP for an external IP is answered with the
//!   gateway port's MAC on the gateway chassis (centralized rules), with EXTERNAL_MAC on the
//!   logical port's chassis (distributed rules); l3-entry, priority 100 on that chassis:
//!   `dl_dst=EXTERNAL_MAC` → into the router as from G; lr-neigh, priority
//!   [`PRIO_NEIGH_RESOLVE`]: the FIP's traffic to an unknown next hop → ARP request from the
//!   FIP and EXTERNAL_MAC (pinctrl), so the reply comes back to this chassis.
//!
//! Recirculations: two per direction on the chassis that translates (the lookup and the
//! commit of a new connection, one lookup for later packets): within the userspace
//! datapath's limit of 6 even with the switches' own conntrack stages. Conntrack fixes the
//! IP and TCP/UDP checksums.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use weft_openflow::flow::{
    ct_state, Action, Ct, CtZone, Flow, Match, MatchField, Nat, NatKind, SetField,
};
use weft_proto::model::nat::{NatRule, NatType};

use super::{arp, gateway, l2, l3, punt, reg, CompileInput, Location, Stage};
use crate::pinctrl::neigh;
use crate::view::Router;

/// Whether `router` needs its NAT zone: it has NAT rules or load balancers
/// ([`super::router_lb`] DNATs in the same zone, with these stages' lookups).
pub fn needs_zone(router: &Router) -> bool {
    !router.nat.is_empty() || !router.load_balancers.is_empty()
}

/// Zone owner name of router `router`'s NAT conntrack zone (`/` is in no port name).
pub fn zone_owner(router: &str) -> String {
    format!("lr-nat/{router}")
}

pub const PRIO_CT: u16 = 100;
pub const PRIO_DNAT: u16 = 100;
pub const PRIO_DNAT_DROP: u16 = 90;
pub const PRIO_SNAT: u16 = 100;
/// Distributed SNAT on the logical port's chassis: above the gateway redirect.
pub const PRIO_DISTRIBUTED: u16 = 210;
pub const PRIO_COMMIT_BASE: u16 = 100;
/// lr-neigh: a distributed FIP's unknown next hop, resolved locally (above the port's
/// miss, [`super::l3::PRIO_NEIGH_MISS`], below learned bindings).
pub const PRIO_NEIGH_RESOLVE: u16 = 11;
pub const PRIO_COMMIT_DEFAULT: u16 = 1;

fn md(key: u32) -> MatchField {
    MatchField::Metadata {
        value: u64::from(key),
        mask: None,
    }
}

fn reg_is(index: u8, value: u32) -> MatchField {
    MatchField::Reg {
        index,
        value,
        mask: None,
    }
}

fn ipv4() -> MatchField {
    MatchField::EthType(0x0800)
}

fn new_trk() -> MatchField {
    MatchField::CtState {
        value: ct_state::NEW | ct_state::TRK,
        mask: Some(ct_state::NEW | ct_state::TRK),
    }
}

fn ct(zone: u16, commit: bool, nat: Nat, table: Stage) -> Action {
    Action::Ct(Ct {
        commit,
        force: false,
        table: Some(table.table()),
        zone: CtZone::Imm(zone),
        alg: 0,
        nat: Some(nat),
        exec: Vec::new(),
    })
}

fn nat_to(kind: NatKind, ip: Ipv4Addr) -> Nat {
    Nat {
        kind: Some(kind),
        addr_min: Some(IpAddr::V4(ip)),
        ..Nat::default()
    }
}

fn flow(stage: Stage, priority: u16, cookie: u64, matches: Match, actions: Vec<Action>) -> Flow {
    Flow {
        table: stage.table(),
        priority,
        cookie,
        matches,
        actions,
    }
}

/// The NAT flows of `router` on this chassis (see the module docs).
pub fn flows(input: &CompileInput, router: &Router, cookie: u64) -> Vec<Flow> {
    if !router.enabled || !needs_zone(router) {
        return Vec::new();
    }
    let Some(gw) = gateway::gateway_port(input.view, router) else {
        return Vec::new();
    };
    let Some(att) = l3::attachment(input.view, &gw.name) else {
        return Vec::new();
    };
    let Some(zone) = input.ids.zone(&zone_owner(&router.name)) else {
        return Vec::new();
    };
    let central = gateway::resident(input.chassis, gw);
    let is_local = |r: &NatRule| {
        r.logical_port
            .as_deref()
            .and_then(|p| input.view.port(p))
            .is_some_and(|p| matches!(input.locate(p), Location::Local { .. }))
    };
    let distributed: Vec<&NatRule> = router
        .nat
        .iter()
        .filter(|r| r.is_distributed() && is_local(r))
        .collect();
    let rules: Vec<&NatRule> = if central {
        router.nat.iter().collect()
    } else {
        distributed.clone()
    };
    // Router load balancers need the lookups on the gateway chassis, rules or not.
    if rules.is_empty() && (!central || router.load_balancers.is_empty()) {
        return Vec::new();
    }
    let (rk, g) = (router.key, gw.key);
    let sw = att.switch;
    let mut out = Vec::new();

    // lr-ct: the lookup of everything that comes in through the gateway port.
    out.push(flow(
        Stage::LrCt,
        PRIO_CT,
        cookie,
        Match::from_fields([md(rk), reg_is(reg::INPORT, g), ipv4()]),
        vec![ct(zone, false, Nat::default(), Stage::LrDnat)],
    ));
    // lr-dnat.
    let mut dnat_ips = BTreeSet::new();
    for r in rules.iter().filter(|r| r.kind.is_dnat()) {
        dnat_ips.insert(r.external_ip);
        out.push(flow(
            Stage::LrDnat,
            PRIO_DNAT,
            cookie,
            Match::from_fields([
                md(rk),
                reg_is(reg::INPORT, g),
                ipv4(),
                MatchField::Ipv4Dst {
                    value: r.external_ip,
                    mask: None,
                },
                new_trk(),
            ]),
            vec![ct(
                zone,
                true,
                nat_to(NatKind::Dst, r.logical_ip.ip()),
                Stage::LrRoute,
            )],
        ));
    }
    let snat_only: BTreeSet<Ipv4Addr> = rules
        .iter()
        .filter(|r| r.kind == NatType::Snat)
        .map(|r| r.external_ip)
        .filter(|ip| !dnat_ips.contains(ip))
        .collect();
    for ip in &snat_only {
        out.push(flow(
            Stage::LrDnat,
            PRIO_DNAT_DROP,
            cookie,
            Match::from_fields([
                md(rk),
                reg_is(reg::INPORT, g),
                ipv4(),
                MatchField::Ipv4Dst {
                    value: *ip,
                    mask: None,
                },
                new_trk(),
            ]),
            Vec::new(),
        ));
    }
    // lr-snat: the lookup of everything that leaves through the gateway port.
    let to_commit = |out: &mut Vec<Flow>, extra: Vec<MatchField>, actions: Vec<Action>, prio| {
        let mut m = Match::from_fields([md(rk), reg_is(reg::OUTPORT, g), ipv4()]);
        for f in extra {
            m = m.with(f);
        }
        let mut a = actions;
        a.push(ct(zone, false, Nat::default(), Stage::LrSnatCommit));
        out.push(flow(Stage::LrSnat, prio, cookie, m, a));
    };
    if central {
        to_commit(&mut out, Vec::new(), Vec::new(), PRIO_SNAT);
    }
    for r in &distributed {
        let Some(mac) = r.external_mac.as_deref().and_then(|m| m.parse().ok()) else {
            continue;
        };
        to_commit(
            &mut out,
            vec![MatchField::Ipv4Src {
                value: r.logical_ip.ip(),
                mask: None,
            }],
            vec![Action::SetField(SetField::EthSrc(mac))],
            PRIO_DISTRIBUTED,
        );
    }
    // lr-neigh, distributed: an unknown next hop of the FIP's traffic is resolved from
    // here, from the FIP and its MAC (the reply comes back to this chassis), instead of
    // redirecting to the gateway (OVN resolves distributed NAT traffic the same way).
    for r in &distributed {
        let Some(mac) = r.external_mac.as_deref().and_then(|m| m.parse().ok()) else {
            continue;
        };
        let resolve = neigh::resolve_userdata(punt::OP_ARP_RESOLVE, mac, sw.key, att.lsp_key);
        if let Some(a) = punt::neigh(input.ids, resolve) {
            out.push(flow(
                Stage::LrNeigh,
                PRIO_NEIGH_RESOLVE,
                cookie,
                Match::from_fields([
                    md(rk),
                    reg_is(reg::OUTPORT, g),
                    ipv4(),
                    MatchField::Ipv4Src {
                        value: r.logical_ip.ip(),
                        mask: None,
                    },
                ]),
                vec![
                    Action::SetField(SetField::Reg {
                        index: l3::REG_SOURCE_IP,
                        value: u32::from(r.external_ip),
                    }),
                    a,
                ],
            ));
        }
    }
    // lr-snat-commit.
    for r in rules.iter().filter(|r| r.kind.is_snat()) {
        out.push(flow(
            Stage::LrSnatCommit,
            PRIO_COMMIT_BASE + u16::from(r.logical_ip.prefix()),
            cookie,
            Match::from_fields([
                md(rk),
                reg_is(reg::OUTPORT, g),
                ipv4(),
                MatchField::Ipv4Src {
                    value: r.logical_ip.network(),
                    mask: Some(r.logical_ip.mask()),
                },
                new_trk(),
            ]),
            vec![ct(
                zone,
                true,
                nat_to(NatKind::Src, r.external_ip),
                Stage::LrExit,
            )],
        ));
    }
    out.push(flow(
        Stage::LrSnatCommit,
        PRIO_COMMIT_DEFAULT,
        cookie,
        Match::from_fields([md(rk)]),
        vec![Action::Resubmit {
            table: Stage::LrExit.table(),
        }],
    ));
    // ARP for the external IPs, and the way in for the distributed ones.
    let own: Vec<Ipv4Addr> = gw.networks.iter().map(|n| n.addr).collect();
    let mut answered = BTreeSet::new();
    for r in &distributed {
        let Some(mac) = r.external_mac.as_deref().and_then(|m| m.parse().ok()) else {
            continue;
        };
        answered.insert(r.external_ip);
        out.push(flow(
            Stage::ArpNd,
            arp::PRIO_REPLY,
            cookie,
            arp::request_for(sw, r.external_ip),
            arp::reply_actions(mac, r.external_ip),
        ));
        out.push(flow(
            Stage::L3Entry,
            l3::PRIO_ENTRY,
            cookie,
            Match::from_fields([
                l2::metadata(sw),
                MatchField::EthDst {
                    value: mac,
                    mask: None,
                },
            ]),
            vec![
                Action::SetField(SetField::Metadata(u64::from(rk))),
                Action::SetField(SetField::Reg {
                    index: reg::INPORT,
                    value: g,
                }),
                Action::SetField(SetField::Reg {
                    index: reg::OUTPORT,
                    value: 0,
                }),
                Stage::LrInput.goto(),
            ],
        ));
    }
    if central {
        for r in router.nat.iter().filter(|r| !r.is_distributed()) {
            if own.contains(&r.external_ip) || !answered.insert(r.external_ip) {
                continue;
            }
            out.push(flow(
                Stage::ArpNd,
                arp::PRIO_REPLY,
                cookie,
                arp::request_for(sw, r.external_ip),
                arp::reply_actions(gw.mac, r.external_ip),
            ));
        }
    }
    out
}
