//! The pipeline compiler: a pure function from the chassis view (plus the local VIF and tunnel
//! ofports) to the desired OpenFlow flows and groups of `br-int`.
//!
//! Start with [`compile_all`] (the whole desired state) and [`recompile`] (after a
//! [`ViewChange`]: recompiles only the owners the change touches and returns the effective
//! before/after of every flow and group it touched, for [`crate::diff::diff_delta`]).
//!
//! ```text
//!  packet from a local VIF                      packet from a tunnel port
//!          |                                             |
//!  +-------v-------------------------------------------- v---------------------------+
//!  |  0 classify   in_port=VIF  -> metadata=VNI, reg14=ofport      -> 10              |
//!  |               in_port=tun,tun_id=VNI -> metadata=VNI, reg10|=FROM_TUNNEL -> 50   |
//!  |               anything else -> drop; disabled VIF -> drop                        |
//!  +-------+--------------------------------------------------------------------------+
//!          v                                                         |
//!  10 port-sec     port_security set: allowed eth_src (+ nw_src for ip,              |
//!                  arp_spa/arp_sha for arp) -> 20, rest from that port dropped;      |
//!                  no port_security -> 20                                            |
//!          v                                                         |
//!  20 arp          ARP request for a known logical IP on this switch -> reply        |
//!                  out IN_PORT (not for the IP's own port) ; else -> 30              |
//!          v                                                         |
//!  30 acl-in       (pass-through for now) -> 40                                      |
//!  40 l3           (pass-through for now) -> 50                                      |
//!          v                                                         v
//!  50 l2-lookup    eth_dst=local port MAC  -> reg15=ofport                     -> 60
//!                  eth_dst=remote port MAC -> tun_id=VNI, tun_dst=chassis IP,
//!                                             reg15=tunnel ofport              -> 60
//!                  eth_dst multicast  -> group FLOOD (local ports + one bucket per remote
//!                                        chassis), or FLOOD_LOCAL when FROM_TUNNEL
//!                  unknown unicast    -> group UNKNOWN / UNKNOWN_LOCAL (ports with
//!                                        `unknown`), none -> drop
//!                  (group buckets set reg15 [+ tun_id, tun_dst] and resubmit(,60))
//!          v
//!  60 acl-out      (pass-through for now) -> 70
//!  70 output       reg15=ofport -> output:ofport ; else drop
//! ```
//!
//! Registers and metadata (see [`reg`]):
//! - `metadata` = the logical switch's VNI (the datapath of the packet);
//! - `reg14` = logical input port = the local VIF's ofport (0 for tunnel traffic);
//! - `reg15` = logical output port = the ofport to deliver to (a VIF or a tunnel port);
//! - `reg10` = flags; bit 0 ([`reg::FLAG_FROM_TUNNEL`]) = the packet came in on a tunnel,
//!   so it was already checked at its source and is flooded to local ports only.
//!
//! Cookies name the owner of a flow (see [`Owner::cookie`]): the high byte is the kind
//! (`0x01` switch, `0x02` port, `0x03` tunnel, `0xff` static), the low 56 bits the FNV-1a
//! 64-bit hash of the owner's name, truncated to 56 bits (stable across runs and versions).
//!
//! Group ids: `VNI * 4 + k` with k = 0 flood, 1 flood-local, 2 unknown, 3 unknown-local
//! (see [`group_id`]); unique because VNIs are unique in a view.
//!
//! Each feature is a function returning flows: [`classify`], [`port_security`], [`arp`],
//! [`l2`], [`output`], [`defaults`]. Desired state is organised by [`Owner`] in
//! [`DesiredState`] so a change costs what it touches.

pub mod arp;
pub mod classify;
pub mod defaults;
pub mod l2;
pub mod output;
pub mod port_security;
mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use weft_openflow::flow::{Flow, Group};

use crate::view::{Chassis, ChassisView, Port, ViewChange};

pub use state::{DesiredDelta, DesiredState};

/// Table numbers (DESIGN §4).
pub mod table {
    pub const CLASSIFY: u8 = 0;
    pub const PORT_SEC: u8 = 10;
    pub const ARP: u8 = 20;
    pub const ACL_IN: u8 = 30;
    pub const L3: u8 = 40;
    pub const L2_LOOKUP: u8 = 50;
    pub const ACL_OUT: u8 = 60;
    pub const OUTPUT: u8 = 70;
}

/// Register use.
pub mod reg {
    /// Flag bits.
    pub const FLAGS: u8 = 10;
    /// Logical input port: the local VIF's ofport.
    pub const INPORT: u8 = 14;
    /// Logical output port: the ofport to deliver to.
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

/// What owns a set of flows and groups; its cookie identifies the flows on the switch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// Table defaults.
    Static,
    /// The table-70 output flow of one tunnel port.
    Tunnel(Encap),
    /// Per-switch flows: tunnel classification, flood/unknown flows and groups.
    Switch(String),
    /// Per-port flows: classification, port security, ARP responder, L2 unicast, output.
    Port(String),
}

/// Cookie kinds (the cookie's high byte).
pub mod cookie_kind {
    pub const SWITCH: u8 = 0x01;
    pub const PORT: u8 = 0x02;
    pub const TUNNEL: u8 = 0x03;
    pub const STATIC: u8 = 0xff;
}

impl Owner {
    /// `kind << 56 | fnv1a64(name) & 0x00ff_ffff_ffff_ffff` (static: name "").
    pub fn cookie(&self) -> u64 {
        let (kind, name) = match self {
            Owner::Static => (cookie_kind::STATIC, ""),
            Owner::Tunnel(e) => (cookie_kind::TUNNEL, e.as_str()),
            Owner::Switch(n) => (cookie_kind::SWITCH, n.as_str()),
            Owner::Port(n) => (cookie_kind::PORT, n.as_str()),
        };
        (u64::from(kind) << 56) | (fnv1a64(name.as_bytes()) & 0x00ff_ffff_ffff_ffff)
    }

    /// The kind byte of a cookie (see [`cookie_kind`]).
    pub fn cookie_kind(cookie: u64) -> u8 {
        (cookie >> 56) as u8
    }
}

pub use weft_proto::model::fnv1a64;

/// The four groups of a switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// Broadcast/multicast from a local port: every local port + every remote chassis.
    Flood = 0,
    /// Broadcast/multicast from a tunnel: local ports only.
    FloodLocal = 1,
    /// Unknown unicast from a local port: local `unknown` ports + chassis that have one.
    Unknown = 2,
    /// Unknown unicast from a tunnel: local `unknown` ports only.
    UnknownLocal = 3,
}

/// `vni * 4 + kind`.
pub fn group_id(vni: u32, kind: GroupKind) -> u32 {
    vni * 4 + kind as u32
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
}

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

/// The flows and groups of one owner, as the view says they should be now (empty when the
/// owner no longer exists).
pub fn compile_owner(input: &CompileInput, owner: &Owner) -> (Vec<Flow>, Vec<Group>) {
    let cookie = owner.cookie();
    match owner {
        Owner::Static => (defaults::flows(cookie), Vec::new()),
        Owner::Tunnel(e) => match input.tunnels.get(e) {
            Some(ofport) => (vec![output::deliver(*ofport, cookie)], Vec::new()),
            None => (Vec::new(), Vec::new()),
        },
        Owner::Switch(name) => match input.view.switch(name) {
            Some(sw) => {
                let mut flows = classify::tunnels(sw, input.tunnels, cookie);
                let (l2_flows, groups) = l2::flood(input, sw, cookie);
                flows.extend(l2_flows);
                (flows, groups)
            }
            None => (Vec::new(), Vec::new()),
        },
        Owner::Port(name) => (port_flows(input, name, cookie), Vec::new()),
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
        flows.push(classify::vif(sw, ofport, cookie));
        flows.extend(port_security::flows(port, ofport, cookie));
    }
    flows.extend(arp::responder(sw, port, local_ofport, cookie));
    match location {
        Location::Local { ofport } => {
            flows.extend(l2::unicast_local(sw, port, ofport, cookie));
            flows.push(output::deliver(ofport, cookie));
        }
        Location::Remote(target) => flows.extend(l2::unicast_remote(sw, port, &target, cookie)),
        Location::Nowhere => {}
    }
    flows
}

/// Every owner the input has flows for.
fn all_owners(input: &CompileInput) -> BTreeSet<Owner> {
    let mut owners = BTreeSet::new();
    owners.insert(Owner::Static);
    owners.extend(input.tunnels.keys().map(|e| Owner::Tunnel(*e)));
    owners.extend(input.view.switches().map(|s| Owner::Switch(s.name.clone())));
    owners.extend(input.view.ports().map(|p| Owner::Port(p.name.clone())));
    owners
}

/// The whole desired state for `input`.
pub fn compile_all(input: &CompileInput) -> DesiredState {
    let mut state = DesiredState::new(input.chassis, input.tunnels);
    for owner in all_owners(input) {
        let (flows, groups) = compile_owner(input, &owner);
        state.set_owner(input, owner, flows, groups, None);
    }
    state
}

/// What [`recompile`] did.
#[derive(Clone, Debug, Default)]
pub struct Recompiled {
    /// The owners that were recompiled.
    pub owners: BTreeSet<Owner>,
    /// True when everything was recompiled (the chassis name or the tunnel ports changed).
    pub full: bool,
    /// Effective before/after of every flow key and group id those owners touched.
    pub delta: DesiredDelta,
}

/// The owners a change affects:
/// - a switch: the switch and every port on it (the VNI is in every port's flows);
/// - a port: the port, the switch it was compiled into and the switch it is on now;
/// - a chassis: every port bound to it and their switches (tun_dst, flood buckets).
pub fn affected_owners(
    state: &DesiredState,
    input: &CompileInput,
    change: &ViewChange,
) -> BTreeSet<Owner> {
    let mut owners = BTreeSet::new();
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
    for c in &change.chassis {
        for p in input.view.ports_on_chassis(c) {
            owners.insert(Owner::Port(p.name.clone()));
            owners.insert(Owner::Switch(p.switch.clone()));
        }
    }
    owners
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
        let (flows, groups) = compile_owner(input, owner);
        state.set_owner(input, owner.clone(), flows, groups, Some(&mut delta));
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
