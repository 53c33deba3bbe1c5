//! Table 50, L2 lookup: destination MAC → output port in reg15 (then acl-out and output), or
//! a flood group for broadcast/multicast and unknown unicast.
//!
//! Per port (owner = the port), priority 50, `metadata=VNI,dl_dst=MAC`:
//! local → `reg15=ofport`; remote → `tun_id=VNI, tun_dst=chassis IP, reg15=tunnel ofport`;
//! disabled → drop. Per switch (owner = the switch), four groups (see [`super::GroupKind`])
//! whose buckets set reg15 (and the tunnel fields) and `resubmit(,60)`, so flooded packets
//! also go through acl-out and output:
//! - priority 100 `reg10=FROM_TUNNEL,dl_dst=multicast` → FLOOD_LOCAL (local ports only);
//! - priority 90 `dl_dst=multicast` → FLOOD (local ports + one bucket per remote chassis);
//! - with any `unknown` port: priority 20 FROM_TUNNEL → UNKNOWN_LOCAL (or drop when no local
//!   port has `unknown`), priority 10 → UNKNOWN (local `unknown` ports + the remote chassis
//!   that have one). Without one, unknown unicast hits the table default: drop.

use std::collections::BTreeMap;

use weft_openflow::flow::{Action, Flow, Group, GroupType, Mac, Match, MatchField, SetField};

use super::{group_id, reg, table, CompileInput, GroupKind, Location, TunnelTarget};
use crate::view::{Port, Switch};

pub const PRIO_FLOOD_FROM_TUNNEL: u16 = 100;
pub const PRIO_FLOOD: u16 = 90;
pub const PRIO_UNICAST: u16 = 50;
pub const PRIO_UNKNOWN_FROM_TUNNEL: u16 = 20;
pub const PRIO_UNKNOWN: u16 = 10;

fn metadata(sw: &Switch) -> MatchField {
    MatchField::Metadata {
        value: u64::from(sw.vni),
        mask: None,
    }
}

fn from_tunnel() -> MatchField {
    MatchField::Reg {
        index: reg::FLAGS,
        value: reg::FLAG_FROM_TUNNEL,
        mask: Some(reg::FLAG_FROM_TUNNEL),
    }
}

fn multicast() -> MatchField {
    MatchField::EthDst {
        value: Mac::MULTICAST_BIT,
        mask: Some(Mac::MULTICAST_BIT),
    }
}

fn set_outport(ofport: u32) -> Action {
    Action::SetField(SetField::Reg {
        index: reg::OUTPORT,
        value: ofport,
    })
}

/// The tunnel header fields for a packet of `sw` to `t`.
pub fn tunnel_actions(sw: &Switch, t: &TunnelTarget) -> [Action; 3] {
    [
        Action::SetField(SetField::TunId(u64::from(sw.vni))),
        Action::SetField(SetField::TunDst(t.remote_ip)),
        set_outport(t.ofport),
    ]
}

fn unicast(sw: &Switch, port: &Port, cookie: u64, actions: &[Action]) -> Vec<Flow> {
    port.addresses
        .iter()
        .map(|a| Flow {
            table: table::L2_LOOKUP,
            priority: PRIO_UNICAST,
            cookie,
            matches: Match::from_fields([
                metadata(sw),
                MatchField::EthDst {
                    value: a.mac,
                    mask: None,
                },
            ]),
            actions: actions.to_vec(),
        })
        .collect()
}

/// `dl_dst=MAC → reg15=ofport, goto acl-out` for each MAC of a local port.
pub fn unicast_local(sw: &Switch, port: &Port, ofport: u32, cookie: u64) -> Vec<Flow> {
    unicast(
        sw,
        port,
        cookie,
        &[set_outport(ofport), Action::GotoTable(table::ACL_OUT)],
    )
}

/// `dl_dst=MAC → tun_id, tun_dst, reg15=tunnel, goto acl-out` for each MAC of a remote port.
pub fn unicast_remote(sw: &Switch, port: &Port, t: &TunnelTarget, cookie: u64) -> Vec<Flow> {
    let mut actions = tunnel_actions(sw, t).to_vec();
    actions.push(Action::GotoTable(table::ACL_OUT));
    unicast(sw, port, cookie, &actions)
}

/// `dl_dst=MAC → drop` for each MAC of a disabled port.
pub fn unicast_drop(sw: &Switch, port: &Port, cookie: u64) -> Vec<Flow> {
    unicast(sw, port, cookie, &[])
}

/// Who a switch floods to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloodMembers {
    /// Enabled local ports' ofports, by port name.
    pub local: Vec<u32>,
    /// Remote chassis with at least one enabled port on the switch, by chassis name.
    pub remote: Vec<TunnelTarget>,
    /// Enabled local ports with `unknown`.
    pub unknown_local: Vec<u32>,
    /// Remote chassis with an enabled `unknown` port on the switch.
    pub unknown_remote: Vec<TunnelTarget>,
}

/// Collects the flood members of `sw` (cost: the ports of this switch).
pub fn members(input: &CompileInput, sw: &Switch) -> FloodMembers {
    let mut local = Vec::new();
    let mut unknown_local = Vec::new();
    let mut remote: BTreeMap<&str, TunnelTarget> = BTreeMap::new();
    let mut unknown_remote: BTreeMap<&str, TunnelTarget> = BTreeMap::new();
    for port in input.view.ports_of_switch(&sw.name) {
        if !port.enabled {
            continue;
        }
        match input.locate(port) {
            Location::Local { ofport } => {
                local.push(ofport);
                if port.unknown {
                    unknown_local.push(ofport);
                }
            }
            Location::Remote(t) => {
                let chassis = port.chassis.as_deref().unwrap_or_default();
                remote.insert(chassis, t);
                if port.unknown {
                    unknown_remote.insert(chassis, t);
                }
            }
            Location::Nowhere => {}
        }
    }
    FloodMembers {
        local,
        remote: remote.into_values().collect(),
        unknown_local,
        unknown_remote: unknown_remote.into_values().collect(),
    }
}

fn group(sw: &Switch, kind: GroupKind, local: &[u32], remote: &[TunnelTarget]) -> Group {
    let resubmit = Action::Resubmit {
        table: table::ACL_OUT,
    };
    let mut buckets: Vec<Vec<Action>> = local
        .iter()
        .map(|ofport| vec![set_outport(*ofport), resubmit.clone()])
        .collect();
    buckets.extend(remote.iter().map(|t| {
        let mut b = tunnel_actions(sw, t).to_vec();
        b.push(resubmit.clone());
        b
    }));
    Group {
        id: group_id(sw.vni, kind),
        kind: GroupType::All,
        buckets,
    }
}

fn to_group(priority: u16, cookie: u64, m: Match, g: Option<u32>) -> Flow {
    Flow {
        table: table::L2_LOOKUP,
        priority,
        cookie,
        matches: m,
        actions: g.map(Action::Group).into_iter().collect(),
    }
}

/// The switch's flood and unknown-unicast flows and groups.
pub fn flood(input: &CompileInput, sw: &Switch, cookie: u64) -> (Vec<Flow>, Vec<Group>) {
    flood_for(sw, &members(input, sw), cookie)
}

/// [`flood`] from already collected members.
pub fn flood_for(sw: &Switch, m: &FloodMembers, cookie: u64) -> (Vec<Flow>, Vec<Group>) {
    let mut groups = vec![
        group(sw, GroupKind::Flood, &m.local, &m.remote),
        group(sw, GroupKind::FloodLocal, &m.local, &[]),
    ];
    let mut flows = vec![
        to_group(
            PRIO_FLOOD_FROM_TUNNEL,
            cookie,
            Match::from_fields([metadata(sw), from_tunnel(), multicast()]),
            Some(group_id(sw.vni, GroupKind::FloodLocal)),
        ),
        to_group(
            PRIO_FLOOD,
            cookie,
            Match::from_fields([metadata(sw), multicast()]),
            Some(group_id(sw.vni, GroupKind::Flood)),
        ),
    ];
    if !m.unknown_local.is_empty() || !m.unknown_remote.is_empty() {
        groups.push(group(
            sw,
            GroupKind::Unknown,
            &m.unknown_local,
            &m.unknown_remote,
        ));
        let local_group = if m.unknown_local.is_empty() {
            None
        } else {
            groups.push(group(sw, GroupKind::UnknownLocal, &m.unknown_local, &[]));
            Some(group_id(sw.vni, GroupKind::UnknownLocal))
        };
        flows.push(to_group(
            PRIO_UNKNOWN_FROM_TUNNEL,
            cookie,
            Match::from_fields([metadata(sw), from_tunnel()]),
            local_group,
        ));
        flows.push(to_group(
            PRIO_UNKNOWN,
            cookie,
            Match::new().with(metadata(sw)),
            Some(group_id(sw.vni, GroupKind::Unknown)),
        ));
    }
    (flows, groups)
}
