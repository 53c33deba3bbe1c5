//! Stage lr-route (table 44), static routes: a router's `static_routes` (from
//! `lr-route-add`), owned by the router, next to the connected routes its ports install
//! ([`super::l3`]).
//!
//! A route `PREFIX NEXTHOP [PORT]` matches `ip, metadata=ROUTER, nw_dst=PREFIX` (policy
//! dst-ip) or `nw_src=PREFIX` (src-ip) at priority [`static_priority`]: longer prefixes
//! first, and at the same length a connected route before a dst-ip static route before a
//! src-ip one (OVN's order). Its actions are those of a connected route with the next hop
//! taken from the route: `dec_ttl`, `reg0 = NEXTHOP`, `reg1 = the output port's address on
//! the next hop's network` (else its first), `eth_src = port MAC`, `reg15 = port`, then
//! lr-policy; lr-neigh then resolves `reg0` on that port (bindings from the view: the next
//! hop is a logical port's address), and a next hop it does not know is dropped there.
//!
//! The output port is the route's `PORT`, or the router's enabled port whose network
//! contains the next hop (the longest such network). A next hop with no port on this
//! chassis' view is left out.
//!
//! Several routes for one policy and prefix are ECMP next hops: the route's flow does
//! `dec_ttl, group:G`, G a select group (`selection_method=hash`, fields [`HASH_FIELDS`]:
//! one flow always takes one next hop, and no `dp_hash` recirculation is spent) whose buckets
//! set the next hop's registers and `resubmit(,45)`. Group ids come from
//! [`crate::ids::Ids::ecmp_group`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use weft_openflow::flow::{
    Action, Flow, Group, GroupType, Match, MatchField, SelectGroup, SetField,
};
use weft_proto::model::route::{Policy, StaticRoute};

use super::{l3, reg, Stage};
use crate::ids::Ids;
use crate::view::{ChassisView, Router, RouterPort};

/// What an ECMP group hashes on: addresses and TCP/UDP ports (OVS hashes a field only
/// when the packet has it).
pub const HASH_FIELDS: [&str; 6] = [
    "ip_src", "ip_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst",
];

/// Priority of a static route: below a connected route of the same length
/// ([`l3::route_priority`]), dst-ip before src-ip
/// ([`weft_proto::model::route::static_priority`]).
pub fn static_priority(len: u8, policy: Policy) -> u16 {
    weft_proto::model::route::static_priority(len, policy)
}

/// The routes of `router` grouped by destination (policy, prefix), in stored order.
pub fn destinations(router: &Router) -> BTreeMap<(Policy, Ipv4Network), Vec<&StaticRoute>> {
    let mut m: BTreeMap<(Policy, Ipv4Network), Vec<&StaticRoute>> = BTreeMap::new();
    for r in &router.routes {
        m.entry((r.policy, r.prefix)).or_default().push(r);
    }
    m
}

/// The destinations of `router` with two next hops or more (each needs a group).
pub fn ecmp_destinations(router: &Router) -> Vec<(Policy, Ipv4Network)> {
    destinations(router)
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k)
        .collect()
}

/// A resolved next hop: the registers it sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hop<'a> {
    nexthop: Ipv4Addr,
    port: &'a RouterPort,
    source: Ipv4Addr,
}

/// The output port of `route` on `router` and the source address it uses.
fn resolve<'a>(view: &'a ChassisView, router: &Router, route: &StaticRoute) -> Option<Hop<'a>> {
    let ports = view.router_ports_of(&router.name).filter(|p| p.enabled);
    let port = match &route.output_port {
        Some(name) => ports.into_iter().find(|p| &p.name == name)?,
        None => ports
            .into_iter()
            .filter_map(|p| {
                p.networks
                    .iter()
                    .filter(|n| n.contains(route.nexthop))
                    .map(|n| n.len)
                    .max()
                    .map(|len| (len, p))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, p)| p)?,
    };
    let source = port
        .networks
        .iter()
        .find(|n| n.contains(route.nexthop))
        .or(port.networks.first())
        .map(|n| n.addr)?;
    Some(Hop {
        nexthop: route.nexthop,
        port,
        source,
    })
}

fn hop_actions(h: &Hop) -> Vec<Action> {
    vec![
        Action::SetField(SetField::Reg {
            index: l3::REG_NEXT_HOP,
            value: u32::from(h.nexthop),
        }),
        Action::SetField(SetField::Reg {
            index: l3::REG_SOURCE_IP,
            value: u32::from(h.source),
        }),
        Action::SetField(SetField::EthSrc(h.port.mac)),
        Action::SetField(SetField::Reg {
            index: reg::OUTPORT,
            value: h.port.key,
        }),
    ]
}

/// The static route flows and ECMP groups of `router` (none when it is disabled).
pub fn flows(
    view: &ChassisView,
    ids: &Ids,
    router: &Router,
    cookie: u64,
) -> (Vec<Flow>, Vec<Group>) {
    let mut flows = Vec::new();
    let mut groups = Vec::new();
    if !router.enabled {
        return (flows, groups);
    }
    for ((policy, prefix), routes) in destinations(router) {
        let hops: Vec<Hop> = routes
            .iter()
            .filter_map(|r| resolve(view, router, r))
            .collect();
        if hops.is_empty() {
            continue;
        }
        let addr = MatchField::Ipv4Dst {
            value: prefix.network(),
            mask: Some(prefix.mask()),
        };
        let addr = match (policy, addr) {
            (Policy::SrcIp, MatchField::Ipv4Dst { value, mask }) => {
                MatchField::Ipv4Src { value, mask }
            }
            (_, a) => a,
        };
        let matches = Match::from_fields([
            MatchField::Metadata {
                value: u64::from(router.key),
                mask: None,
            },
            MatchField::EthType(0x0800),
            addr,
        ]);
        let mut actions = vec![Action::DecTtl];
        if routes.len() == 1 {
            actions.extend(hop_actions(&hops[0]));
            actions.push(Stage::LrRoute.goto_next());
        } else {
            let Some(id) = ids.ecmp_group(&router.name, policy, prefix) else {
                continue;
            };
            groups.push(Group {
                id,
                kind: GroupType::Select(
                    SelectGroup {
                        hash_fields: HASH_FIELDS.iter().map(|s| s.to_string()).collect(),
                        hash_basis: 0,
                        weights: Vec::new(),
                    }
                    .canonical(),
                ),
                buckets: hops
                    .iter()
                    .map(|h| {
                        let mut b = hop_actions(h);
                        b.push(Action::Resubmit {
                            table: Stage::LrRoute.next(),
                        });
                        b
                    })
                    .collect(),
            });
            actions.push(Action::Group(id));
        }
        flows.push(Flow {
            table: Stage::LrRoute.table(),
            priority: static_priority(prefix.prefix(), policy),
            cookie,
            matches,
            actions,
        });
    }
    (flows, groups)
}
