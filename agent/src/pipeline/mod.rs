//! The pipeline compiler: a pure function from the chassis view (plus the local VIF and tunnel
//! ofports and the allocated ids) to the desired OpenFlow flows, groups and meters of br-int.
//!
//! Start with [`compile_all`] (the whole desired state) and [`recompile`] (after a
//! [`ViewChange`]: recompiles only the owners the change touches and returns the effective
//! before/after of every flow, group and meter it touched, for [`crate::diff::diff_delta`]).
//!
//! The table map below is the source of truth: [`framework::STAGES`] declares the same
//! stages (a unit test checks the two agree) and every table number and `goto_table` comes
//! from it. Stages marked `-` have no feature yet and pass packets to the next stage.
//!
//! ```text
//!  packet from a local VIF                       packet from a tunnel port
//!          |                                              |
//!   0 classify     in_port=VIF -> metadata=DP, reg14=PORT, reg13=ZONE -> 5
//!                  VXLAN/GRE in_port=tun,tun_id=VNI -> metadata=DP, FROM_TUNNEL -> 50
//!                  Geneve: tun_id=VNI -> metadata=DP, FROM_TUNNEL, reg14/reg15 <- option;
//!                          out key 0x8000 (flood) -> 50, port key -> 60
//!   5 punt         LB health: ip4.dst=svc monitor IP ->     |
//!                  controller (lb_health answers)           |
//! 10 port-sec-in  VIF: RA, DHCP replies -> drop unless      |
//!                 allow-ra-dhcp-server; port_security:      |
//!                 allowed eth_src + ip/ipv6/arp src, ND     |
//!                 sll/tll, EUI-64 LL, DAD; rest -> drop    |
//!  20 arp-nd       ARP for a port IP -> reply; for the      |
//!                  gateway -> controller(meter) (pinctrl)   |
//!  25 pre-ct-in    -                                        |
//!  26 ct-in        stateful switch (acl): ip ->             |
//!                  ct(zone=reg13, nat, table=27)            |
//!  27 ct-state-in  -                                        |
//!  30 acl-in       stateful: ct.inv -> drop; est+rpl or rel |
//!                  -> reg8[1]=1 (no commit), 32; from-lport |
//!                  ACLs at 1000+prio (acl, acl_match)       |
//!  31 acl-in-act -   32 qos-in (-> 34)                      |
//!  33 lb-affinity  learned flows only (cookie kind LEARNED, |
//!                  never diffed): client+VIP -> reg2=backend|
//!                  key; reached by resubmit from 35         |
//!  34 lb-vip       VIP, ct_state=-trk -> ct(zone=reg13,nat, |
//!                  table=35): established get their DNAT    |
//!  35 lb-learn     affinity VIP, +new: reg2=0,resubmit(,33) |
//!  36 lb-dnat      VIP, +new+trk -> group (hash select):    |
//!                  ct(commit,zone=reg13,nat(dst=EP),->37)   |
//!                  (affinity: bucket reg2=key,resubmit(,36);|
//!                  reg2=key -> learn(33), ct(commit,..EP)); |
//!                  no live backend -> drop, or              |
//!                  reject=true -> controller (ACL reject)   |
//!  37 lb-hairpin   backend to itself via its VIP: SNAT to   |
//!                  the VIP (hairpin zone); replies un-DNAT  |
//!  38 commit-in    stateful: ip, reg8[1]=0 ->               |
//!                  ct(commit, zone=reg13)                   |
//!  40 l3-entry     dl_dst=router port MAC -> metadata=LR,   |
//!                  reg14=LRP -> 41; default -> 50           |
//!  41 lr-input     ARP/ping for router IPs -> reply; other  |
//!                  to router IPs -> drop; TTL 0/1 ->        |
//!                  controller (time exceeded); ip -> next   |
//!  42 lr-ct        NAT (gateway / FIP chassis): from the    |
//!                  gateway port -> ct(zone=router,nat,->43) |
//!  43 lr-dnat      +new to a dnat external IP ->            |
//!                  ct(commit,nat(dst=logical),->44) (nat);  |
//!                  +new to a router LB VIP from the gateway |
//!                  port -> group (hash select): ct(commit,  |
//!                  zone=router,nat(dst=EP),->44) (router_lb)|
//!  44 lr-route     connected nets, longest prefix first:    |
//!                  dec_ttl, reg0=ip4.dst, reg1=LRP IP,      |
//!                  eth_src=LRP MAC, reg15=LRP; static       |
//!                  routes: reg0=next hop; ECMP: select      |
//!                  group (hash), buckets resubmit(,45)      |
//!  45 lr-policy -                                           |
//!  46 lr-neigh     reg15,reg0 -> eth_dst (view bindings,    |
//!                  then learned ones); unknown ->           |
//!                  controller (ARP request), drop           |
//!  47 lr-snat      gateway port off its gateway chassis ->  |
//!                  Geneve redirect (gateway); on it: to the |
//!                  gateway port -> ct(zone=router,nat,->80) |
//!  48 lr-exit      reg15=LRP -> metadata=LS, reg14=LSP -> 50;|
//!                  LRP with gateway_mtu: check_pkt_larger   |
//!                  -> reg9[1], -> 49                        |
//!  49 lr-mtu       reg9[1]=1 -> controller (ICMP frag       |
//!                  needed / fragment); else as lr-exit      |
//!          v                                              v
//!  50 l2-lookup    dl_dst=port MAC -> reg15=PORT -> 58; multicast -> FLOOD group
//!                  (FLOOD_LOCAL when FROM_TUNNEL); unknown -> UNKNOWN(_LOCAL) or drop
//!  58 dispatch     reg15=remote port -> 70 (egress runs on its chassis); else -> 60
//!          v                                              |
//!  60 pre-ct-out   stateful: reg15=local port -> reg13=its zone, reg8[1]=0
//!  61 ct-out       stateful: ip -> ct(zone=reg13, nat, table=62)
//!  62 acl-out      as acl-in, with the to-lport ACLs   63 acl-out-act -
//!  64 qos-out      -
//!  65 lb-out       switch with LBs: reg15=local port, -trk -> ct(zone=ZONE(port),nat,->66)
//!  66 commit-out (as commit-in)   68 port-sec-out -
//!          v
//!  70 output       local: metadata=DP,reg15=PORT -> output:VIF (LB switch: from the
//!                  VIF itself, hairpin -> IN_PORT)
//!                  remote: not FROM_TUNNEL -> tun_id=VNI, tun_dst, Geneve option, output:tun
//!                  anything else -> drop (a tunnelled packet is never re-tunnelled)
//!  80 lr-snat-commit  +new from a snat logical IP -> ct(commit,nat(src=external),->48);
//!                  else resubmit(,48) (reached only by ct recirculation from lr-snat)
//!  90 mac-binding  (empty: resubmit lookups)   91 learned-hairpin (empty)
//! ```
//!
//! Registers and metadata (see [`reg`]; OVN-compatible where OVN has a choice):
//! - `metadata` = the logical datapath key (`SwitchView.tunnel_key`, 1..2^24-1);
//! - `reg14` / `reg15` = logical input / output port key (`PortView.tunnel_key`, 1..32767;
//!   [`crate::physical::KEY_MULTICAST`] 0x8000 = "flood on the receiver");
//! - `reg13[0..15]` = conntrack zone of the input port ([`crate::ids`]);
//! - `reg10` = flags; bit 0 ([`reg::FLAG_FROM_TUNNEL`]) = came in on a tunnel;
//! - `reg0` / `reg1` on a router datapath = next hop IPv4 / router source IP ([`l3`]);
//! - `reg9[1]` = the routed packet is longer than its output port's `gateway_mtu` (set at
//!   lr-exit, read at lr-mtu: [`mtu`]; OVN's REGBIT_PKT_LARGER);
//! - `reg2` on a switch datapath = the LB session-affinity backend key ([`lb`], lb-learn
//!   to lb-dnat; 0 = none);
//! - reserved for the features to come: reg4 LB original VIP, reg11/reg12 router zones
//!   (NAT uses one constant zone per router, [`nat::zone_owner`]).
//! - `reg3` = an allowing ACL's `--label` ([`acl`]).
//! - a Geneve redirect to a gateway chassis carries a marker with bit 15 set in the
//!   option's input-port bits ([`gateway`]).
//! - `reg8` ACL bits ([`acl`]): bit 1 = do not commit (replies, related, allow-stateless),
//!   bit 2 = labelled (commit writes reg3 to `ct_label[96..127]`);
//!   `reg13` is reloaded with the output port's zone at pre-ct-out on stateful switches.
//! - `ct_mark` bits (reserved): 0 blocked, 1 natted, 2 skip-snat, 3 force-snat, 4 hairpin;
//!   `ct_label[96..127]` = the ACL label (OVN's `ct_label.label`).
//!
//! Cookies name the owner of a flow (see [`Owner::cookie`]): the high byte is the kind
//! (`0x01` switch, `0x02` port, `0x04` router, `0x05` router port, `0x06` ACL, `0x0c` a load
//! balancer on a switch, `0x0d` a load balancer on a router, `0xfe` learned by the datapath, `0xff` static; `0x03`
//! was the tunnel kind), the low 56 bits
//! the FNV-1a 64-bit hash of the owner's name, truncated to 56 bits.
//!
//! Group and meter ids come from [`crate::ids::Ids`] (per owner, persisted in OVSDB).
//!
//! Each feature is a file returning flows (and groups, meters): [`classify`],
//! [`port_security`], [`arp`], [`lb`] (switch load balancers), [`l3`] (routing), [`static_routes`],
//! [`gateway`] (distributed gateway ports), [`nat`], [`router_lb`] (router load balancers
//! and port mapping), [`mtu`] (router port MTU), [`l2`],
//! [`crate::physical`] (dispatch, output, tunnels, localnet ports),
//! [`punt`] (controller actions and their meters), [`framework`] (the defaults).
pub mod acl;
pub mod acl_match;
pub mod arp;
pub mod classify;
pub mod framework;
pub mod gateway;
pub mod l2;
pub mod l3;
pub mod lb;
pub mod mtu;
pub mod nat;
pub mod port_security;
pub mod punt;
pub mod router_lb;
mod state;
pub mod static_routes;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use weft_openflow::flow::{Flow, Group};
use weft_openflow::meter::Meter;

pub use framework::Stage;
pub use state::{DesiredDelta, DesiredState};

use crate::ids::Ids;
use crate::view::{Chassis, ChassisView, Port, ViewChange};

/// Register use.
pub mod reg {
    /// Conntrack zone of the input port (bits 0..15).
    pub const ZONE: u8 = 13;
    /// Flag bits.
    pub const FLAGS: u8 = 10;
    /// Logical input port key.
    pub const INPORT: u8 = 14;
    /// Logical output port key.
    pub const OUTPORT: u8 = 15;
    /// In [`FLAGS`]: the packet came in on a tunnel.
    pub const FLAG_FROM_TUNNEL: u32 = 1;
}

/// An encapsulation type, one flow-based tunnel port each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encap {
    Geneve,
    Vxlan,
    Gre,
}

impl Encap {
    pub const ALL: [Encap; 3] = [Encap::Geneve, Encap::Vxlan, Encap::Gre];

    pub fn as_str(&self) -> &'static str {
        match self {
            Encap::Geneve => "geneve",
            Encap::Vxlan => "vxlan",
            Encap::Gre => "gre",
        }
    }
}

impl fmt::Display for Encap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown encapsulation name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown encapsulation {0:?}: expected geneve, vxlan or gre")]
pub struct EncapParseError(pub String);

impl FromStr for Encap {
    type Err = EncapParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "geneve" => Ok(Encap::Geneve),
            "vxlan" => Ok(Encap::Vxlan),
            "gre" => Ok(Encap::Gre),
            _ => Err(EncapParseError(s.to_string())),
        }
    }
}

/// What owns a set of flows, groups and meters; its cookie identifies the flows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// Table defaults and the pinctrl meters.
    Static,
    /// Per-switch flows: tunnel classification, flood/unknown flows and groups, the gateway
    /// ARP punt.
    Switch(String),
    /// Per-port flows: classification, port security, ARP responder, L2 unicast, dispatch,
    /// output.
    Port(String),
    /// Per-router flows: the router datapath's defaults ([`l3::router_flows`]).
    Router(String),
    /// Per-router-port flows: entry, ARP/ping, routes, neighbours, exit
    /// ([`l3::router_port_flows`]).
    RouterPort(String),
    /// One ACL's flows, by key ([`acl::acl_flows`]).
    Acl(String),
    /// One load balancer on one switch, `SWITCH/LB` ([`lb::lb_flows`]): its VIPs' flows
    /// and select groups, so a backend change recompiles one LB, not the switch's others.
    LoadBalancer(String),
    /// One load balancer on one router, `ROUTER/LB` ([`router_lb::flows`]): its VIPs'
    /// DNAT flows and select groups on the router's gateway chassis.
    RouterLoadBalancer(String),
}

/// The [`Owner::RouterLoadBalancer`] name of `lb` on router `r`.
pub fn router_lb_owner(r: &str, lb: &str) -> Owner {
    Owner::RouterLoadBalancer(format!("{r}/{lb}"))
}

/// The [`Owner::LoadBalancer`] name of `lb` on switch `sw` (`/` is in no switch name).
pub fn lb_owner(sw: &str, lb: &str) -> Owner {
    Owner::LoadBalancer(format!("{sw}/{lb}"))
}

/// Cookie kinds (the cookie's high byte).
pub mod cookie_kind {
    pub const SWITCH: u8 = 0x01;
    pub const PORT: u8 = 0x02;
    pub const ROUTER: u8 = 0x04;
    pub const ROUTER_PORT: u8 = 0x05;
    pub const ACL: u8 = weft_proto::model::acl::COOKIE_KIND;
    pub const LOAD_BALANCER: u8 = 0x0c;
    pub const ROUTER_LOAD_BALANCER: u8 = 0x0d;
    pub const STATIC: u8 = 0xff;
    /// Flows the datapath learns (`learn` actions: LB session affinity in lb-affinity). The
    /// agent never installs, modifies or deletes them: the full diff skips installed flows
    /// of this kind, so resyncs and agent restarts leave them until their timeout.
    pub const LEARNED: u8 = 0xfe;
}

impl Owner {
    /// `kind << 56 | fnv1a64(name) & 0x00ff_ffff_ffff_ffff` (static: name "").
    pub fn cookie(&self) -> u64 {
        let (kind, name) = match self {
            Owner::Static => (cookie_kind::STATIC, ""),
            Owner::Switch(n) => (cookie_kind::SWITCH, n.as_str()),
            Owner::Port(n) => (cookie_kind::PORT, n.as_str()),
            Owner::Router(n) => (cookie_kind::ROUTER, n.as_str()),
            Owner::RouterPort(n) => (cookie_kind::ROUTER_PORT, n.as_str()),
            Owner::Acl(n) => (cookie_kind::ACL, n.as_str()),
            Owner::LoadBalancer(n) => (cookie_kind::LOAD_BALANCER, n.as_str()),
            Owner::RouterLoadBalancer(n) => (cookie_kind::ROUTER_LOAD_BALANCER, n.as_str()),
        };
        (u64::from(kind) << 56) | (fnv1a64(name.as_bytes()) & 0x00ff_ffff_ffff_ffff)
    }

    /// The kind byte of a cookie (see [`cookie_kind`]).
    pub fn cookie_kind(cookie: u64) -> u8 {
        (cookie >> 56) as u8
    }
}

pub use weft_proto::model::fnv1a64;

/// The four groups of a switch (ids from [`Ids::group`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKind {
    /// Broadcast/multicast from a local port: every local port + every remote chassis.
    Flood,
    /// Broadcast/multicast from a tunnel: local ports only.
    FloodLocal,
    /// Unknown unicast from a local port: local `unknown` ports + chassis that have one.
    Unknown,
    /// Unknown unicast from a tunnel: local `unknown` ports only.
    UnknownLocal,
}

/// Everything the compiler reads.
#[derive(Clone, Copy, Debug)]
pub struct CompileInput<'a> {
    /// This chassis' name (ports bound here are local).
    pub chassis: &'a str,
    pub view: &'a ChassisView,
    /// Logical port name → ofport of its VIF on br-int.
    pub vifs: &'a BTreeMap<String, u32>,
    /// Tunnel ofport of each enabled encap type.
    pub tunnels: &'a BTreeMap<Encap, u32>,
    /// Zones, group and meter ids.
    pub ids: &'a Ids,
    /// Next-hop bindings learned by ARP ([`crate::pinctrl::neigh`]).
    pub neighbours: &'a crate::pinctrl::neigh::Neighbours,
    /// Provider network (a localnet port's `network_name`) → ofport of its patch port on
    /// br-int (from `--bridge-mappings`).
    pub localnets: &'a BTreeMap<String, u32>,
}

/// No localnet patch ports (for inputs built without bridge mappings).
pub static NO_LOCALNETS: BTreeMap<String, u32> = BTreeMap::new();

/// How to reach a remote chassis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelTarget {
    pub encap: Encap,
    /// Ofport of the flow-based tunnel port.
    pub ofport: u32,
    pub remote_ip: Ipv4Addr,
}

/// Where a port lives, from this chassis' point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// Bound here and its VIF is on br-int.
    Local { ofport: u32 },
    /// Bound on a remote chassis we have a usable tunnel to.
    Remote(TunnelTarget),
    /// Unbound, bound here without a VIF yet, or on a chassis we cannot reach.
    Nowhere,
}

impl<'a> CompileInput<'a> {
    /// Where `port` lives.
    pub fn locate(&self, port: &Port) -> Location {
        if port.kind == crate::view::PortKind::Localnet {
            return match crate::view::localnet_network(port).and_then(|n| self.localnets.get(n)) {
                Some(ofport) => Location::Local { ofport: *ofport },
                None => Location::Nowhere,
            };
        }
        match port.chassis.as_deref() {
            None => Location::Nowhere,
            Some(c) if c == self.chassis => match self.vifs.get(&port.name) {
                Some(ofport) => Location::Local { ofport: *ofport },
                None => Location::Nowhere,
            },
            Some(c) => match self.view.chassis(c).and_then(|c| self.tunnel_to(c)) {
                Some(t) => Location::Remote(t),
                None => Location::Nowhere,
            },
        }
    }

    /// The first of the chassis' encap types (its preference order) we have a tunnel port for.
    pub fn tunnel_to(&self, chassis: &Chassis) -> Option<TunnelTarget> {
        if chassis.name == self.chassis {
            return None;
        }
        chassis.encap_types.iter().find_map(|e| {
            self.tunnels.get(e).map(|ofport| TunnelTarget {
                encap: *e,
                ofport: *ofport,
                remote_ip: chassis.encap_ip,
            })
        })
    }
}

/// What one owner compiles to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    pub flows: Vec<Flow>,
    pub groups: Vec<Group>,
    pub meters: Vec<Meter>,
}

/// The flows, groups and meters of one owner, as the view says they should be now (empty
/// when the owner no longer exists).
pub fn compile_owner(input: &CompileInput, owner: &Owner) -> Compiled {
    let cookie = owner.cookie();
    match owner {
        Owner::Static => Compiled {
            flows: framework::default_flows(cookie),
            groups: Vec::new(),
            meters: punt::meters(input.ids),
        },
        Owner::Switch(name) => match input.view.switch(name) {
            Some(sw) => {
                let mut flows = crate::physical::tunnel_ingress(sw, input.tunnels, cookie);
                let (l2_flows, groups) = l2::flood(input, sw, cookie);
                flows.extend(l2_flows);
                if !l3::gateway_owned_by_router(input.view, sw) {
                    flows.extend(punt::gateway_arp(sw, input.ids, cookie));
                }
                flows.extend(acl::switch_flows(input, sw, cookie));
                Compiled {
                    flows,
                    groups,
                    meters: Vec::new(),
                }
            }
            None => Compiled::default(),
        },
        Owner::Port(name) => Compiled {
            flows: port_flows(input, name, cookie),
            ..Compiled::default()
        },
        Owner::Router(name) => {
            let router = input.view.router(name);
            let mut flows = l3::router_flows(router, cookie);
            let mut groups = Vec::new();
            if let Some(r) = router {
                flows.extend(l3::arp_reply_flood(input, r, cookie));
                let (f, g) = static_routes::flows(input.view, input.ids, r, cookie);
                flows.extend(f);
                groups = g;
                flows.extend(nat::flows(input, r, cookie));
            }
            Compiled {
                flows,
                groups,
                meters: Vec::new(),
            }
        }
        Owner::RouterPort(name) => {
            let mut flows = l3::router_port_flows(
                input.view,
                input.ids,
                input.neighbours,
                input.chassis,
                name,
                cookie,
            );
            if let Some(lrp) = input.view.router_port(name) {
                if let Some(r) = input.view.router(&lrp.router).filter(|r| r.enabled) {
                    if lrp.enabled {
                        flows.extend(gateway::flows(input, r, lrp, cookie));
                    }
                }
            }
            flows.extend(mtu::flows(input.view, input.ids, name, cookie));
            Compiled {
                flows,
                ..Compiled::default()
            }
        }
        Owner::LoadBalancer(key) => {
            let found = key.split_once('/').and_then(|(sw, lb)| {
                let sw = input.view.switch(sw)?;
                if !sw.load_balancers.iter().any(|l| l == lb) {
                    return None;
                }
                Some((sw, input.view.load_balancer(lb)?))
            });
            match found {
                Some((sw, lb)) => {
                    let (flows, groups) = lb::lb_flows(input, sw, lb, cookie);
                    Compiled {
                        flows,
                        groups,
                        meters: Vec::new(),
                    }
                }
                None => Compiled::default(),
            }
        }
        Owner::RouterLoadBalancer(key) => {
            let found = key.split_once('/').and_then(|(r, lb)| {
                let r = input.view.router(r)?;
                if !r.load_balancers.iter().any(|l| l == lb) {
                    return None;
                }
                Some((r, input.view.load_balancer(lb)?))
            });
            match found {
                Some((r, lb)) => {
                    let (flows, groups) = router_lb::flows(input, r, lb, cookie);
                    Compiled {
                        flows,
                        groups,
                        meters: Vec::new(),
                    }
                }
                None => Compiled::default(),
            }
        }
        Owner::Acl(key) => Compiled {
            flows: acl::acl_flows(input, key).unwrap_or_else(|e| {
                tracing::warn!(acl = %key, error = %e, "ACL not installed");
                Vec::new()
            }),
            meters: acl::acl_meters(input, key),
            ..Compiled::default()
        },
    }
}

/// Every flow of one port.
fn port_flows(input: &CompileInput, name: &str, cookie: u64) -> Vec<Flow> {
    let Some(port) = input.view.port(name) else {
        return Vec::new();
    };
    let Some(sw) = input.view.switch(&port.switch) else {
        return Vec::new();
    };
    let location = input.locate(port);
    if !port.enabled {
        let mut flows = Vec::new();
        if let Location::Local { ofport } = location {
            flows.push(classify::vif_disabled(ofport, cookie));
        }
        flows.extend(l2::unicast_drop(sw, port, cookie));
        return flows;
    }
    let mut flows = Vec::new();
    let local_ofport = match location {
        Location::Local { ofport } => Some(ofport),
        _ => None,
    };
    if let Some(ofport) = local_ofport {
        let zone = input.ids.zone(&port.name).unwrap_or(0);
        flows.push(classify::vif(sw, port, ofport, zone, cookie));
        flows.extend(port_security::flows(sw, port, cookie));
        flows.extend(acl::port_flows(input, sw, port, cookie));
        flows.extend(lb::port_out_flows(sw, port, zone, ofport, cookie));
    }
    flows.extend(arp::responder(sw, port, local_ofport.is_some(), cookie));
    match location {
        Location::Local { ofport } => {
            flows.extend(l2::unicast(sw, port, cookie));
            flows.push(crate::physical::output_local(sw, port, ofport, cookie));
        }
        Location::Remote(target) => {
            flows.extend(l2::unicast(sw, port, cookie));
            flows.push(crate::physical::dispatch_remote(sw, port, cookie));
            flows.push(crate::physical::output_remote(sw, port, &target, cookie));
        }
        Location::Nowhere => {}
    }
    flows
}

/// Every owner the input has flows for.
fn all_owners(input: &CompileInput) -> BTreeSet<Owner> {
    let mut owners = BTreeSet::new();
    owners.insert(Owner::Static);
    owners.extend(input.view.switches().map(|s| Owner::Switch(s.name.clone())));
    owners.extend(input.view.ports().map(|p| Owner::Port(p.name.clone())));
    owners.extend(input.view.routers().map(|r| Owner::Router(r.name.clone())));
    owners.extend(
        input
            .view
            .router_ports()
            .map(|p| Owner::RouterPort(p.name.clone())),
    );
    owners.extend(input.view.acl().acls().map(|a| Owner::Acl(a.key.clone())));
    for sw in input.view.switches() {
        owners.extend(sw.load_balancers.iter().map(|l| lb_owner(&sw.name, l)));
    }
    for r in input.view.routers() {
        owners.extend(r.load_balancers.iter().map(|l| router_lb_owner(&r.name, l)));
    }
    owners
}

/// The whole desired state for `input`.
pub fn compile_all(input: &CompileInput) -> DesiredState {
    let mut state = DesiredState::new(input.chassis, input.tunnels);
    for owner in all_owners(input) {
        let c = compile_owner(input, &owner);
        state.set_owner(input, owner, c, None);
    }
    state.refresh_fingerprint();
    state
}

/// What [`recompile`] did.
#[derive(Clone, Debug, Default)]
pub struct Recompiled {
    /// The owners that were recompiled.
    pub owners: BTreeSet<Owner>,
    /// True when everything was recompiled (the chassis name or the tunnel ports changed).
    pub full: bool,
    /// Effective before/after of every flow key, group and meter id those owners touched.
    pub delta: DesiredDelta,
}

/// The owners a change affects:
/// - a switch: the switch and every port on it (its keys are in every port's flows);
/// - a port: the port, the switch it was compiled into and the switch it is on now;
/// - a chassis: every port bound to it and their switches (tun_dst, flood buckets);
/// - a switch or port also touches the router ports attached to the switch(es) (entry, exit
///   and neighbour flows) and, for a router-type port, the router port it attaches (now and
///   when last compiled);
/// - a router: the router and its ports; a router port: every port of its router (ping
///   replies list all of the router's IPs, now and when last compiled) and the switch it
///   attaches (gateway ARP); a chassis: every router (ARP reply floods to every chassis);
///   every router port touched touches its router (the flood of replies to it).
pub fn affected_owners(
    state: &DesiredState,
    input: &CompileInput,
    change: &ViewChange,
) -> BTreeSet<Owner> {
    let mut owners = BTreeSet::new();
    acl_owners(input, change, &mut owners);
    for s in &change.switches {
        owners.insert(Owner::Switch(s.clone()));
        owners.extend(
            input
                .view
                .ports_of_switch(s)
                .map(|p| Owner::Port(p.name.clone())),
        );
    }
    for p in &change.ports {
        owners.insert(Owner::Port(p.clone()));
        if let Some(old) = state.compiled_switch_of(p) {
            owners.insert(Owner::Switch(old.to_string()));
        }
        if let Some(now) = input.view.port(p) {
            owners.insert(Owner::Switch(now.switch.clone()));
        }
    }
    // A load balancer: its (switch, LB) owners, not the switches' other LBs.
    if !change.load_balancers.is_empty() {
        for sw in input.view.switches() {
            for l in sw
                .load_balancers
                .iter()
                .filter(|l| change.load_balancers.contains(*l))
            {
                owners.insert(lb_owner(&sw.name, l));
            }
        }
        // Switches that named it when compiled (the LB is gone from the view).
        for o in state.owners() {
            if let Owner::LoadBalancer(k) = o {
                if k.split_once('/')
                    .is_some_and(|(_, l)| change.load_balancers.contains(l))
                {
                    owners.insert(o.clone());
                }
            }
        }
    }
    for c in &change.chassis {
        for p in input.view.ports_on_chassis(c) {
            owners.insert(Owner::Port(p.name.clone()));
            owners.insert(Owner::Switch(p.switch.clone()));
        }
    }
    // A chassis change re-targets every router's ARP reply flood (l3::arp_reply_flood).
    let mut routers: BTreeSet<String> = change.routers.clone();
    if !change.chassis.is_empty() {
        routers.extend(input.view.routers().map(|r| r.name.clone()));
    }
    // Routing: the router ports attached to every switch touched so far.
    let switches: Vec<String> = owners
        .iter()
        .filter_map(|o| match o {
            Owner::Switch(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    // A touched switch: its LBs now and as compiled (its load_balancer list may change).
    let touched: BTreeSet<&String> = switches.iter().collect();
    if !touched.is_empty() {
        for o in state.owners() {
            if let Owner::LoadBalancer(k) = o {
                if k.split_once('/')
                    .is_some_and(|(sw, _)| touched.contains(&sw.to_string()))
                {
                    owners.insert(o.clone());
                }
            }
        }
        for s in &switches {
            if let Some(sw) = input.view.switch(s) {
                owners.extend(sw.load_balancers.iter().map(|l| lb_owner(s, l)));
            }
        }
    }
    for s in &switches {
        for lsp in input.view.router_lsps_of_switch(s) {
            if let Some(lrp) = crate::view::router_port_option(lsp) {
                owners.insert(Owner::RouterPort(lrp.to_string()));
            }
        }
    }
    for p in &change.ports {
        if let Some(lrp) = input.view.port(p).and_then(crate::view::router_port_option) {
            owners.insert(Owner::RouterPort(lrp.to_string()));
        }
        if let Some(lrp) = state.compiled_router_port_of_lsp(p) {
            owners.insert(Owner::RouterPort(lrp.to_string()));
        }
    }
    for rp in &change.router_ports {
        owners.insert(Owner::RouterPort(rp.clone()));
        if let Some(r) = input.view.router_port(rp) {
            routers.insert(r.router.clone());
        }
        if let Some(r) = state.compiled_router_of(rp) {
            routers.insert(r.to_string());
        }
    }
    for r in &routers {
        owners.insert(Owner::Router(r.clone()));
        owners.extend(
            input
                .view
                .router_ports_of(r)
                .map(|p| Owner::RouterPort(p.name.clone())),
        );
    }
    for rp in state.compiled_ports_of_routers(&routers) {
        owners.insert(Owner::RouterPort(rp));
    }
    // The switches those router ports attach (now and when last compiled): gateway ARP.
    let rps: Vec<String> = owners
        .iter()
        .filter_map(|o| match o {
            Owner::RouterPort(rp) => Some(rp.clone()),
            _ => None,
        })
        .collect();
    for rp in &rps {
        if let Some(lsp) = input.view.attached_lsp(rp) {
            owners.insert(Owner::Switch(lsp.switch.clone()));
        }
        // Its router floods ARP replies to it (l3::arp_reply_flood).
        if let Some(r) = input.view.router_port(rp) {
            owners.insert(Owner::Router(r.router.clone()));
        }
        if let Some(r) = state.compiled_router_of(rp) {
            owners.insert(Owner::Router(r.to_string()));
        }
        if let Some(s) = state.compiled_lsp_switch_of(rp) {
            owners.insert(Owner::Switch(s.to_string()));
        }
    }
    router_lb_owners(state, input, change, &mut owners);
    owners
}

/// Router load balancers: the (router, LB) owners of a changed LB, and those of every router
/// touched so far (its LB list, gateway port, zone or keys may have changed), now and as
/// compiled.
fn router_lb_owners(
    state: &DesiredState,
    input: &CompileInput,
    change: &ViewChange,
    owners: &mut BTreeSet<Owner>,
) {
    let routers: BTreeSet<String> = owners
        .iter()
        .filter_map(|o| match o {
            Owner::Router(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    let wanted = |r: &str, l: &str| routers.contains(r) || change.load_balancers.contains(l);
    for r in input.view.routers() {
        for l in &r.load_balancers {
            if wanted(&r.name, l) {
                owners.insert(router_lb_owner(&r.name, l));
            }
        }
    }
    for o in state.owners() {
        if let Owner::RouterLoadBalancer(k) = o {
            if k.split_once('/').is_some_and(|(r, l)| wanted(r, l)) {
                owners.insert(o.clone());
            }
        }
    }
}

/// ACLs: a changed ACL; the ACLs naming a changed address set or port group, or a changed
/// port (directly or through a group); the ACLs of a changed switch and of its ports; a
/// switch that became or stopped being stateful with its ports (conntrack flows).
fn acl_owners(input: &CompileInput, change: &ViewChange, owners: &mut BTreeSet<Owner>) {
    let acl = input.view.acl();
    owners.extend(change.acls.iter().map(|k| Owner::Acl(k.clone())));
    for s in &change.address_sets {
        owners.extend(acl.using_set(s).map(|k| Owner::Acl(k.clone())));
    }
    for g in &change.port_groups {
        owners.extend(acl.using_group(g).map(|k| Owner::Acl(k.clone())));
    }
    for p in &change.ports {
        owners.extend(acl.using_port(p).into_iter().map(Owner::Acl));
    }
    for s in &change.switches {
        owners.extend(acl.on_switch(s).map(|k| Owner::Acl(k.clone())));
        for p in input.view.ports_of_switch(s) {
            owners.extend(acl.using_port(&p.name).into_iter().map(Owner::Acl));
        }
    }
    for s in &change.stateful_switches {
        owners.insert(Owner::Switch(s.clone()));
        owners.extend(
            input
                .view
                .ports_of_switch(s)
                .map(|p| Owner::Port(p.name.clone())),
        );
    }
}

/// Brings `state` up to date with `input` after `change`, recompiling only the affected
/// owners (everything when the chassis name or the tunnel ports changed). The agent adds to
/// `change.ports` the ports whose VIF appeared, disappeared or changed ofport.
pub fn recompile(
    state: &mut DesiredState,
    input: &CompileInput,
    change: &ViewChange,
) -> Recompiled {
    let full = state.chassis() != input.chassis || state.tunnels() != input.tunnels;
    let owners = if full {
        let mut owners = all_owners(input);
        owners.extend(state.owners().cloned());
        state.set_inputs(input.chassis, input.tunnels);
        owners
    } else {
        affected_owners(state, input, change)
    };
    let mut delta = DesiredDelta::default();
    for owner in &owners {
        let c = compile_owner(input, owner);
        state.set_owner(input, owner.clone(), c, Some(&mut delta));
    }
    state.finish_delta(&mut delta);
    Recompiled {
        owners,
        full,
        delta,
    }
}

#[cfg(test)]
mod tests;
