//! Router load balancers (`lr-lb-add`, and port mappings, `lr-port-map-add`): the VIPs of
//! each load balancer a router names are DNATed in the router's conntrack zone
//! ([`super::nat::zone_owner`], the NAT zone) on the router's *active gateway chassis*, for
//! traffic entering from the gateway port (from the outside), as OVN does with `ct_lb` in
//! a gateway router's lr_in_dnat. A new connection picks a backend in a
//! `selection_method=hash` select group (no recirculation), whose buckets commit the DNAT
//! and go on to lr-route; replies are un-DNATed by the router's own lr-snat lookup on the
//! way back out of the gateway port (from any chassis: the gateway redirect brings them
//! there), and then still pass lr-snat-commit, so SNAT rules keep applying to other traffic.
//!
//! Owner: one per (router, LB) ([`super::router_lb_owner`]), so a backend change recompiles
//! that LB on that router only. On the active gateway chassis of the router's gateway port
//! G (zone Z), per IPv4 VIP (priority [`PRIO_VIP_PORT`] with a port, [`PRIO_VIP`] without):
//! - lr-dnat, `metadata=ROUTER, reg14=G, ip, nw_dst=VIP[, tcp|udp, tp_dst=PORT],
//!   ct_state=+new+trk` → `group:N` (one bucket per live backend:
//!   `ct(commit, zone=Z, nat(dst=BACKEND[:PORT]), table=lr-route)`); no live backend → drop.
//!   Established connections got their DNAT from lr-ct's lookup (owned by the router,
//!   [`super::nat`], which installs the lookups for a router with NAT rules or LBs) and
//!   never reach the group, so they keep their backend when the backends change;
//! - lr-input, priority [`PRIO_INPUT_VIP`] (above the drop of traffic to the router's own
//!   addresses): a VIP that is an address of the router, from G, → on to lr-ct;
//! - arp-nd on G's switch: ARP for a VIP that is not one of the router's addresses is
//!   answered with G's MAC (as for centralized NAT external IPs).
//!
//! Recirculations on the gateway chassis: a new connection 2 (lr-ct lookup, the bucket's
//! commit), later packets 1; a reply 1 (lr-snat lookup). IPv6 VIPs, SCTP VIPs with a
//! port, `options:reject` and `options:affinity_timeout` get no router flows yet.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use weft_openflow::flow::{
    ct_state, Action, Ct, CtZone, Flow, Group, GroupType, Match, MatchField, Nat, NatKind,
    SelectGroup,
};
use weft_proto::model::load_balancer::{Endpoint, VipRule};

use super::{arp, gateway, l3, lb, reg, CompileInput, Stage};
use crate::view::{LoadBalancer, Router};

/// lr-dnat priority of a VIP with a port (above the router's DNAT rules, 100, and the drop
/// of new connections to SNAT-only external IPs, 90).
pub const PRIO_VIP_PORT: u16 = 120;
/// lr-dnat priority of a port-less VIP.
pub const PRIO_VIP: u16 = 110;
/// lr-input: a VIP on one of the router's own addresses goes on (above
/// [`l3::PRIO_INPUT_OWN_IP`], below the router's ARP and ping replies).
pub const PRIO_INPUT_VIP: u16 = 85;

fn md(key: u32) -> MatchField {
    MatchField::Metadata {
        value: u64::from(key),
        mask: None,
    }
}

/// The match of traffic from the gateway port `g` of router `rk` to `vip` (IPv4 only;
/// `None` for an SCTP port, which the OpenFlow layer cannot match).
fn vip_match(
    rk: u32,
    g: u32,
    vip: Ipv4Addr,
    port: Option<u16>,
    protocol: &str,
) -> Option<Vec<MatchField>> {
    let mut m = vec![
        md(rk),
        MatchField::Reg {
            index: reg::INPORT,
            value: g,
            mask: None,
        },
        MatchField::EthType(0x0800),
        MatchField::Ipv4Dst {
            value: vip,
            mask: None,
        },
    ];
    if let Some(p) = port {
        let proto = lb::ip_proto(protocol);
        m.push(MatchField::IpProto(proto));
        m.push(match proto {
            lb::PROTO_TCP => MatchField::TcpDst {
                value: p,
                mask: None,
            },
            lb::PROTO_UDP => MatchField::UdpDst {
                value: p,
                mask: None,
            },
            _ => return None,
        });
    }
    Some(m)
}

/// One backend's bucket: commit the DNAT in the router zone, then route.
fn bucket(zone: u16, backend: &Endpoint) -> Vec<Action> {
    vec![Action::Ct(Ct {
        commit: true,
        table: Some(Stage::LrRoute.table()),
        zone: CtZone::Imm(zone),
        nat: Some(Nat {
            kind: Some(NatKind::Dst),
            addr_min: Some(backend.ip),
            port_min: backend.port,
            ..Nat::default()
        }),
        ..Ct::default()
    })]
}

/// The flows and select groups of load balancer `lb` on `router` on this chassis (see the
/// module docs): nothing off the router's active gateway chassis.
pub fn flows(
    input: &CompileInput,
    router: &Router,
    lb: &LoadBalancer,
    cookie: u64,
) -> (Vec<Flow>, Vec<Group>) {
    let mut out = Vec::new();
    let mut groups = Vec::new();
    if !router.enabled {
        return (out, groups);
    }
    let Some(gw) = gateway::gateway_port(input.view, router) else {
        return (out, groups);
    };
    if !gateway::resident(input.chassis, gw) {
        return (out, groups);
    }
    let Some(att) = l3::attachment(input.view, &gw.name) else {
        return (out, groups);
    };
    let Some(zone) = input.ids.zone(&super::nat::zone_owner(&router.name)) else {
        return (out, groups);
    };
    let (rk, g) = (router.key, gw.key);
    let protocol = lb.rules.protocol;
    let own: BTreeSet<Ipv4Addr> = input
        .view
        .router_ports_of(&router.name)
        .flat_map(|p| p.networks.iter().map(|n| n.addr))
        .collect();
    let mut arp_done = BTreeSet::new();
    for rule in &lb.rules.vips {
        let IpAddr::V4(vip) = rule.vip.ip else {
            continue;
        };
        let Some(m) = vip_match(rk, g, vip, rule.vip.port, protocol) else {
            continue;
        };
        let live = VipRule {
            vip: rule.vip,
            backends: lb.live_backends(rule).into_iter().copied().collect(),
        };
        let mut new = m.clone();
        new.push(MatchField::CtState {
            value: ct_state::NEW | ct_state::TRK,
            mask: Some(ct_state::NEW | ct_state::TRK),
        });
        let actions = match input
            .ids
            .router_lb_group(&router.name, &lb.name, &vip_text(rule))
        {
            Some(id) if !live.backends.is_empty() => {
                groups.push(Group {
                    id,
                    kind: GroupType::Select(SelectGroup {
                        hash_fields: lb::hash_fields(&rule.vip, protocol),
                        ..SelectGroup::default()
                    }),
                    buckets: live
                        .backends
                        .iter()
                        .filter(|b| b.ip.is_ipv4())
                        .map(|b| bucket(zone, b))
                        .collect(),
                });
                vec![Action::Group(id)]
            }
            // No live backend (or no group id yet): new connections are dropped.
            _ => Vec::new(),
        };
        let priority = if rule.vip.port.is_some() {
            PRIO_VIP_PORT
        } else {
            PRIO_VIP
        };
        out.push(Flow {
            table: Stage::LrDnat.table(),
            priority,
            cookie,
            matches: Match::from_fields(new),
            actions,
        });
        if own.contains(&vip) {
            out.push(Flow {
                table: Stage::LrInput.table(),
                priority: PRIO_INPUT_VIP,
                cookie,
                matches: Match::from_fields(m),
                actions: vec![Stage::LrInput.goto_next()],
            });
        } else if arp_done.insert(vip) {
            out.push(Flow {
                table: Stage::ArpNd.table(),
                priority: arp::PRIO_REPLY,
                cookie,
                matches: arp::request_for(att.switch, vip),
                actions: arp::reply_actions(gw.mac, vip),
            });
        }
    }
    (out, groups)
}

/// The VIP's canonical text (the group owner's name part).
pub fn vip_text(rule: &VipRule) -> String {
    rule.vip.to_string()
}
