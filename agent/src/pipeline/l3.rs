//! Stages l3-entry .. lr-exit (tables 40–48): distributed logical routing between the
//! switches attached to a router, on the chassis where the packet enters (as OVN does).
//! Connected networks here; static routes in [`super::static_routes`]; gateway ports in
//! [`super::gateway`], NAT in [`super::nat`].
//!
//! A router-type switch port (`options:router-port=LRP`, addresses `router`) stands for the
//! router port's MAC on its switch. Per router port (owner = the router port), when it, its
//! router and the attaching switch port are enabled:
//! - arp-nd (switch datapath), priority 50: ARP requests for the router port's IPs (and for
//!   the switch's gateway address when a network of the port contains it) are answered with
//!   the router port's MAC (the pinctrl gateway punt is then not installed for the switch);
//! - l3-entry, priority 100: `metadata=SWITCH, dl_dst=LRP MAC` → `metadata=ROUTER,
//!   reg14=LRP, reg15=0`, goto lr-input;
//! - lr-input, priority 90 with `reg14=LRP`: ARP requests for the port's IPs → reply from
//!   its MAC, out the input port; ICMP echo requests to any IP of the router → echo reply
//!   (MACs and IPs swapped, `icmp_type=0`), out the input port; priority 80: any other IPv4
//!   packet to the port's IPs → drop; priority 70: an IPv4 packet with `nw_ttl` 0 or 1 (it
//!   would expire here) → `controller(userdata=ICMP time exceeded from the port's first IP
//!   and MAC)` ([`crate::pinctrl::icmp`] answers with an ICMP time exceeded out the input
//!   port, as OVN's `icmp4 { icmp4.type = 11; ... }`), so `traceroute` names the port;
//! - lr-route, priority [`route_priority`] (longer prefixes first): `ip, nw_dst=NETWORK` →
//!   `dec_ttl` (cannot expire: lr-input took TTL 0 and 1), `reg0 = ip4.dst` (next hop),
//!   `reg1 = port IP`, `eth_src = LRP MAC`, `reg15 = LRP`, goto the next stage;
//! - lr-neigh, priority 100: `reg15=LRP, reg0=IP` → `eth_dst = MAC` for every address of a
//!   port of the attached switch inside one of the port's networks (static bindings from
//!   the view; dynamic addresses are resolved there); priority [`PRIO_NEIGH_LEARNED`]: the
//!   bindings this chassis learned by ARP ([`crate::pinctrl::neigh`]); priority
//!   [`PRIO_NEIGH_MISS`] `reg15=LRP` → `controller(ARP request for reg0 from reg1)`, the
//!   packet is dropped; lr-input priority 90 `arp, arp_op=2, reg14=LRP` → `controller(learn)`;
//!   an ARP reply to the port's MAC from a local port is also sent to every other chassis
//!   of the view on the port's switch ([`arp_reply_flood`], owned by the router: arp-nd,
//!   priority [`PRIO_ARP_REPLY_FLOOD`], one tunnel output per chassis, then l3-entry), and
//!   one from a tunnel goes straight into the router (l2-lookup, same priority,
//!   `resubmit(,41)`), so every
//!   chassis that routes through the port learns the binding;
//! - lr-exit, priority 100: `reg15=LRP` → `metadata=SWITCH, reg14=the router-type switch
//!   port, reg15=0`, goto l2-lookup: the destination switch's pipeline delivers locally or
//!   tunnels (only that switch tunnels).
//!
//! Per router (owner = the router), when enabled: lr-input priority 50 `ip` → next, priority
//! 1 → drop (ARP replies, anything not IPv4); lr-route and lr-neigh priority 1 → drop (no
//! route, unknown next hop).
//!
//! Every jump is a `goto_table` forward: routing costs no recirculation.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use weft_openflow::flow::{ports, Action, Field, Flow, Match, MatchField, SetField};

use super::{arp, l2, punt, reg, Stage};
use crate::ids::Ids;
use crate::pinctrl::neigh::{self, Neighbours};
use crate::view::{router_port_option, ChassisView, PortKind, Router, RouterPort, Switch};

pub const PRIO_ENTRY: u16 = 100;
pub const PRIO_INPUT_REPLY: u16 = 90;
pub const PRIO_INPUT_OWN_IP: u16 = 80;
/// Below the router's own addresses: a ping to the router with TTL 1 is answered.
pub const PRIO_INPUT_TTL: u16 = 70;
pub const PRIO_INPUT_IP: u16 = 50;
pub const PRIO_MISS: u16 = 1;
pub const PRIO_NEIGH: u16 = 100;
/// A binding learned by ARP ([`crate::pinctrl::neigh`]): below the view's.
pub const PRIO_NEIGH_LEARNED: u16 = 90;
/// lr-neigh miss on a port: ARP for the next hop (above the router's drop).
pub const PRIO_NEIGH_MISS: u16 = 10;
/// arp-nd / l2-lookup: an ARP reply to a router port (flooded to the switch's chassis from
/// a local port, into the router from a tunnel); above the ARP responders and multicast.
pub const PRIO_ARP_REPLY_FLOOD: u16 = 115;
pub const PRIO_EXIT: u16 = 100;

/// Register holding the next hop IPv4 (OVN's reg0).
pub const REG_NEXT_HOP: u8 = 0;
/// Register holding the router source IPv4 (OVN's reg1).
pub const REG_SOURCE_IP: u8 = 1;

const ETH_TYPE_IP: u16 = 0x0800;
const IP_PROTO_ICMP: u8 = 1;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;

/// Priority of a connected route: longer prefixes win (`100 + 10 * len`, the shared
/// model's [`weft_proto::model::route::connected_priority`]).
pub fn route_priority(len: u8) -> u16 {
    weft_proto::model::route::connected_priority(len)
}

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

fn set_reg(index: u8, value: u32) -> Action {
    Action::SetField(SetField::Reg { index, value })
}

fn ipv4() -> MatchField {
    MatchField::EthType(ETH_TYPE_IP)
}

fn ip_dst(ip: Ipv4Addr, mask: Option<Ipv4Addr>) -> MatchField {
    MatchField::Ipv4Dst { value: ip, mask }
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

/// The router's own flows (see the module docs); none when it is disabled or absent.
pub fn router_flows(router: Option<&Router>, cookie: u64) -> Vec<Flow> {
    let Some(r) = router.filter(|r| r.enabled) else {
        return Vec::new();
    };
    vec![
        flow(
            Stage::LrInput,
            PRIO_INPUT_IP,
            cookie,
            Match::from_fields([md(r.key), ipv4()]),
            vec![Stage::LrInput.goto_next()],
        ),
        flow(
            Stage::LrInput,
            PRIO_MISS,
            cookie,
            Match::from_fields([md(r.key)]),
            Vec::new(),
        ),
        flow(
            Stage::LrRoute,
            PRIO_MISS,
            cookie,
            Match::from_fields([md(r.key)]),
            Vec::new(),
        ),
        flow(
            Stage::LrNeigh,
            PRIO_MISS,
            cookie,
            Match::from_fields([md(r.key)]),
            Vec::new(),
        ),
    ]
}

/// Where a router port attaches: its switch and the router-type switch port there.
#[derive(Clone, Copy, Debug)]
pub struct Attachment<'a> {
    pub switch: &'a Switch,
    /// Key of the router-type switch port (reg14 when entering the switch).
    pub lsp_key: u32,
}

/// The enabled attachment of `lrp` in the view.
pub fn attachment<'a>(view: &'a ChassisView, lrp: &str) -> Option<Attachment<'a>> {
    let lsp = view.attached_lsp(lrp)?;
    if !lsp.enabled || lsp.kind != PortKind::Router {
        return None;
    }
    Some(Attachment {
        switch: view.switch(&lsp.switch)?,
        lsp_key: lsp.key,
    })
}

/// The addresses `lrp` answers ARP for on its switch: its own IPs, and the switch's gateway
/// address when one of its networks contains it.
pub fn switch_arp_ips(sw: &Switch, lrp: &RouterPort) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = lrp.networks.iter().map(|n| n.addr).collect();
    if let Some(gw) = punt::gateway_ip(sw) {
        let in_subnet = sw.subnet.is_some_and(|s| s.contains(gw));
        if in_subnet && lrp.networks.iter().any(|n| n.contains(gw)) && !ips.contains(&gw) {
            ips.push(gw);
        }
    }
    ips
}

/// True when an enabled router port attached to `sw` answers ARP for the switch's gateway
/// address (the pinctrl gateway punt is then left out).
pub fn gateway_owned_by_router(view: &ChassisView, sw: &Switch) -> bool {
    let Some(gw) = punt::gateway_ip(sw) else {
        return false;
    };
    view.router_lsps_of_switch(&sw.name).any(|lsp| {
        router_port_option(lsp)
            .and_then(|n| view.router_port(n))
            .filter(|lrp| live(view, lrp) && attachment(view, &lrp.name).is_some())
            .is_some_and(|lrp| switch_arp_ips(sw, lrp).contains(&gw))
    })
}

/// The port and its router are enabled.
fn live(view: &ChassisView, lrp: &RouterPort) -> bool {
    lrp.enabled && view.router(&lrp.router).is_some_and(|r| r.enabled)
}

/// Every flow owned by router port `name` (see the module docs).
pub fn router_port_flows(
    view: &ChassisView,
    ids: &Ids,
    neighbours: &Neighbours,
    chassis: &str,
    name: &str,
    cookie: u64,
) -> Vec<Flow> {
    let Some(lrp) = view.router_port(name) else {
        return Vec::new();
    };
    let Some(router) = view.router(&lrp.router).filter(|_| live(view, lrp)) else {
        return Vec::new();
    };
    let rk = router.key;
    let mut flows = Vec::new();
    // A gateway port off its gateway chassis takes nothing in from its switch and resolves
    // no next hop ([`super::gateway`] redirects its traffic).
    let resident = super::gateway::resident(chassis, lrp);

    // lr-input: ARP for the port's IPs, ping to any IP of the router, drop the rest.
    for n in &lrp.networks {
        let m = Match::from_fields([
            md(rk),
            reg_is(reg::INPORT, lrp.key),
            MatchField::EthType(0x0806),
            MatchField::ArpOp(1),
            MatchField::ArpTpa {
                value: n.addr,
                mask: None,
            },
        ]);
        flows.push(flow(
            Stage::LrInput,
            PRIO_INPUT_REPLY,
            cookie,
            m,
            arp::reply_actions(lrp.mac, n.addr),
        ));
        // A NAT external IP that is also the port's address lets translated replies in.
        if !router.nat.iter().any(|r| r.external_ip == n.addr) {
            flows.push(flow(
                Stage::LrInput,
                PRIO_INPUT_OWN_IP,
                cookie,
                Match::from_fields([md(rk), ipv4(), ip_dst(n.addr, None)]),
                Vec::new(),
            ));
        }
    }
    // TTL about to expire: ICMP time exceeded from the input port's first address.
    if let Some(n) = lrp.networks.first() {
        if let Some(punt) = punt::icmp_time_exceeded(ids, n.addr, lrp.mac) {
            for ttl in [0, 1] {
                flows.push(flow(
                    Stage::LrInput,
                    PRIO_INPUT_TTL,
                    cookie,
                    Match::from_fields([
                        md(rk),
                        reg_is(reg::INPORT, lrp.key),
                        ipv4(),
                        MatchField::NwTtl(ttl),
                    ]),
                    vec![punt.clone()],
                ));
            }
        }
    }
    for other in view.router_ports_of(&lrp.router).filter(|p| p.enabled) {
        for n in &other.networks {
            flows.push(flow(
                Stage::LrInput,
                PRIO_INPUT_REPLY,
                cookie,
                Match::from_fields([
                    md(rk),
                    reg_is(reg::INPORT, lrp.key),
                    ipv4(),
                    MatchField::IpProto(IP_PROTO_ICMP),
                    ip_dst(n.addr, None),
                    MatchField::IcmpType(ICMP_ECHO_REQUEST),
                    MatchField::IcmpCode(0),
                ]),
                echo_reply_actions(lrp, n.addr),
            ));
        }
    }

    let Some(att) = attachment(view, name) else {
        return flows;
    };
    let sw = att.switch;

    // arp-nd on the switch.
    for ip in switch_arp_ips(sw, lrp).into_iter().filter(|_| resident) {
        flows.push(flow(
            Stage::ArpNd,
            arp::PRIO_REPLY,
            cookie,
            arp::request_for(sw, ip),
            arp::reply_actions(lrp.mac, ip),
        ));
    }
    // l3-entry.
    flows.extend(resident.then(|| {
        flow(
            Stage::L3Entry,
            PRIO_ENTRY,
            cookie,
            Match::from_fields([
                l2::metadata(sw),
                MatchField::EthDst {
                    value: lrp.mac,
                    mask: None,
                },
            ]),
            vec![
                Action::SetField(SetField::Metadata(u64::from(rk))),
                set_reg(reg::INPORT, lrp.key),
                set_reg(reg::OUTPORT, 0),
                Stage::LrInput.goto(),
            ],
        )
    }));
    // lr-route: connected networks.
    for n in &lrp.networks {
        flows.push(flow(
            Stage::LrRoute,
            route_priority(n.len),
            cookie,
            Match::from_fields([md(rk), ipv4(), ip_dst(n.network(), Some(n.mask()))]),
            vec![
                Action::DecTtl,
                Action::Move {
                    src: Field::Ipv4Dst,
                    dst: Field::Reg(REG_NEXT_HOP),
                },
                set_reg(REG_SOURCE_IP, u32::from(n.addr)),
                Action::SetField(SetField::EthSrc(lrp.mac)),
                set_reg(reg::OUTPORT, lrp.key),
                Stage::LrRoute.goto_next(),
            ],
        ));
    }
    // lr-neigh: static bindings from the attached switch's ports.
    let mut bindings: BTreeMap<Ipv4Addr, weft_openflow::flow::Mac> = BTreeMap::new();
    for p in view.ports_of_switch(&sw.name) {
        if p.kind != PortKind::Vif {
            continue;
        }
        for a in &p.addresses {
            for ip in &a.ips {
                if lrp.networks.iter().any(|n| n.contains(*ip)) {
                    bindings.entry(*ip).or_insert(a.mac);
                }
            }
        }
    }
    for (&ip, &mac) in &bindings {
        flows.push(flow(
            Stage::LrNeigh,
            PRIO_NEIGH,
            cookie,
            Match::from_fields([
                md(rk),
                reg_is(reg::OUTPORT, lrp.key),
                reg_is(REG_NEXT_HOP, u32::from(ip)),
            ]),
            vec![
                Action::SetField(SetField::EthDst(mac)),
                Stage::LrNeigh.goto_next(),
            ],
        ));
    }
    // lr-neigh: bindings learned by ARP on this chassis, then the miss: ARP for it.
    for (ip, mac) in neighbours.of_port(rk, lrp.key) {
        if bindings.contains_key(&ip) {
            continue;
        }
        flows.push(flow(
            Stage::LrNeigh,
            PRIO_NEIGH_LEARNED,
            cookie,
            Match::from_fields([
                md(rk),
                reg_is(reg::OUTPORT, lrp.key),
                reg_is(REG_NEXT_HOP, u32::from(ip)),
            ]),
            vec![
                Action::SetField(SetField::EthDst(mac)),
                Stage::LrNeigh.goto_next(),
            ],
        ));
    }
    let resolve = neigh::resolve_userdata(punt::OP_ARP_RESOLVE, lrp.mac, sw.key, att.lsp_key);
    if let Some(a) = punt::neigh(ids, resolve).filter(|_| resident) {
        flows.push(flow(
            Stage::LrNeigh,
            PRIO_NEIGH_MISS,
            cookie,
            Match::from_fields([md(rk), reg_is(reg::OUTPORT, lrp.key)]),
            vec![a],
        ));
    }
    // An ARP reply to this port from a local port is learned here and flooded to the
    // switch's other chassis, which learn it too (routing runs on every source chassis, and
    // the reply to one chassis' request comes in on the replier's): the data-plane
    // counterpart of OVN's shared MAC_Binding.
    let from_tunnel = |set: bool| MatchField::Reg {
        index: reg::FLAGS,
        value: if set { reg::FLAG_FROM_TUNNEL } else { 0 },
        mask: Some(reg::FLAG_FROM_TUNNEL),
    };
    let reply_to_lrp = |set: bool| arp_reply_to(sw, lrp, from_tunnel(set));
    flows.push(flow(
        Stage::L2Lookup,
        PRIO_ARP_REPLY_FLOOD,
        cookie,
        reply_to_lrp(true),
        vec![
            Action::SetField(SetField::Metadata(u64::from(rk))),
            set_reg(reg::INPORT, lrp.key),
            set_reg(reg::OUTPORT, 0),
            // Back to an earlier table: a resubmit (goto_table only goes forward).
            Action::Resubmit {
                table: Stage::LrInput.table(),
            },
        ],
    ));
    // lr-input: ARP replies to this port are learned.
    let learn = neigh::learn_userdata(punt::OP_ARP_LEARN, rk, lrp.key);
    if let Some(a) = punt::neigh(ids, learn) {
        flows.push(flow(
            Stage::LrInput,
            PRIO_INPUT_REPLY,
            cookie,
            Match::from_fields([
                md(rk),
                reg_is(reg::INPORT, lrp.key),
                MatchField::EthType(0x0806),
                MatchField::ArpOp(2),
            ]),
            vec![a],
        ));
    }
    // lr-exit: into the attached switch, at l2-lookup.
    flows.push(flow(
        Stage::LrExit,
        PRIO_EXIT,
        cookie,
        Match::from_fields([md(rk), reg_is(reg::OUTPORT, lrp.key)]),
        exit_actions(att),
    ));
    flows
}

/// Out of the router into the attached switch, at l2-lookup (lr-exit's actions; also
/// [`super::mtu`]'s for packets that fit).
pub fn exit_actions(att: Attachment<'_>) -> Vec<Action> {
    vec![
        Action::SetField(SetField::Metadata(u64::from(att.switch.key))),
        set_reg(reg::INPORT, att.lsp_key),
        set_reg(reg::OUTPORT, 0),
        Stage::L2Lookup.goto(),
    ]
}

/// ARP replies to `lrp`'s MAC on its switch `sw`, with the from-tunnel flag `flag`.
fn arp_reply_to(sw: &Switch, lrp: &RouterPort, flag: MatchField) -> Match {
    Match::from_fields([
        l2::metadata(sw),
        flag,
        MatchField::EthType(0x0806),
        MatchField::ArpOp(2),
        MatchField::EthDst {
            value: lrp.mac,
            mask: None,
        },
    ])
}

/// Owned by the router (recompiled when the view's chassis change): per attached port, an
/// ARP reply to the port from a local port is sent to every other chassis of the view (each
/// may route through the router and have asked) as a flood on the port's switch, then
/// learned here (l3-entry → lr-input). Arp-nd, priority [`PRIO_ARP_REPLY_FLOOD`].
pub fn arp_reply_flood(input: &super::CompileInput, router: &Router, cookie: u64) -> Vec<Flow> {
    if !router.enabled {
        return Vec::new();
    }
    let targets: Vec<super::TunnelTarget> = input
        .view
        .all_chassis()
        .filter_map(|c| input.tunnel_to(c))
        .collect();
    let mut flows = Vec::new();
    for lrp in input
        .view
        .router_ports_of(&router.name)
        .filter(|p| p.enabled)
    {
        let Some(att) = attachment(input.view, &lrp.name) else {
            continue;
        };
        let local = MatchField::Reg {
            index: reg::FLAGS,
            value: 0,
            mask: Some(reg::FLAG_FROM_TUNNEL),
        };
        let mut actions = Vec::new();
        for t in &targets {
            actions.extend(crate::physical::flood_bucket(att.switch, t));
        }
        actions.push(Stage::L3Entry.goto());
        flows.push(flow(
            Stage::ArpNd,
            PRIO_ARP_REPLY_FLOOD,
            cookie,
            arp_reply_to(att.switch, lrp, local),
            actions,
        ));
    }
    flows
}

/// An ICMP echo request to `ip` (an address of the router) arriving on `inport` becomes the
/// reply, sent back out the input port.
fn echo_reply_actions(inport: &RouterPort, ip: Ipv4Addr) -> Vec<Action> {
    vec![
        Action::Move {
            src: Field::EthSrc,
            dst: Field::EthDst,
        },
        Action::SetField(SetField::EthSrc(inport.mac)),
        Action::Move {
            src: Field::Ipv4Src,
            dst: Field::Ipv4Dst,
        },
        Action::SetField(SetField::Ipv4Src(ip)),
        Action::SetField(SetField::IcmpType(ICMP_ECHO_REPLY)),
        Action::Output(ports::IN_PORT),
    ]
}
