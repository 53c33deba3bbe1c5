//! Stage l2-lookup (table 50): destination MAC → logical output port in reg15 (then
//! dispatch), or a flood group for broadcast/multicast and unknown unicast.
//!
//! Per port (owner = the port), priority 50, `metadata=DP,dl_dst=MAC`: enabled and located
//! (local, or remote and reachable) → `reg15=PORT, goto dispatch`; disabled → drop. Per
//! switch (owner = the switch), four groups (see [`super::GroupKind`], ids from
//! [`crate::ids::Ids`]). Local buckets set reg15 and `resubmit` to pre-ct-out, so flooded
//! packets run the egress stages of each local port; one bucket per remote chassis tunnels
//! the packet with out-port key [`crate::physical::KEY_MULTICAST`] (the egress stages run
//! there):
//! - priority 100 `reg10=FROM_TUNNEL,dl_dst=multicast` → FLOOD_LOCAL (local ports only);
//! - priority 90 `dl_dst=multicast` → FLOOD (local ports + one bucket per remote chassis);
//! - with any `unknown` port: priority 20 FROM_TUNNEL → UNKNOWN_LOCAL (or drop when no local
//!   port has `unknown`), priority 10 → UNKNOWN (local `unknown` ports + the remote chassis
//!   that have one). Without one, unknown unicast hits the table default: drop.

use std::collections::BTreeMap;

use weft_openflow::flow::{Action, Flow, Group, GroupType, Mac, Match, MatchField, SetField};

use super::{reg, CompileInput, GroupKind, Location, Stage, TunnelTarget};
use crate::physical;
use crate::view::{Port, Switch};

pub const PRIO_FLOOD_FROM_TUNNEL: u16 = 100;
pub const PRIO_FLOOD: u16 = 90;
pub const PRIO_UNICAST: u16 = 50;
pub const PRIO_UNKNOWN_FROM_TUNNEL: u16 = 20;
pub const PRIO_UNKNOWN: u16 = 10;

/// `metadata=DP`.
pub fn metadata(sw: &Switch) -> MatchField {
    MatchField::Metadata {
        value: u64::from(sw.key),
        mask: None,
    }
}

/// `reg10=FROM_TUNNEL/FROM_TUNNEL`.
pub fn from_tunnel() -> MatchField {
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

/// `set_field:KEY->reg15`.
pub fn set_outport(key: u32) -> Action {
    Action::SetField(SetField::Reg {
        index: reg::OUTPORT,
        value: key,
    })
}

fn unicast_with(sw: &Switch, port: &Port, cookie: u64, actions: &[Action]) -> Vec<Flow> {
    port.addresses
        .iter()
        .map(|a| Flow {
            table: Stage::L2Lookup.table(),
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

/// `dl_dst=MAC → reg15=PORT, goto dispatch` for each MAC of a located port.
pub fn unicast(sw: &Switch, port: &Port, cookie: u64) -> Vec<Flow> {
    unicast_with(
        sw,
        port,
        cookie,
        &[set_outport(port.key), Stage::L2Lookup.goto_next()],
    )
}

/// `dl_dst=MAC → drop` for each MAC of a disabled port.
pub fn unicast_drop(sw: &Switch, port: &Port, cookie: u64) -> Vec<Flow> {
    unicast_with(sw, port, cookie, &[])
}

/// Who a switch floods to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloodMembers {
    /// Enabled local ports' keys, by port name.
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
            Location::Local { .. } => {
                local.push(port.key);
                if port.unknown {
                    unknown_local.push(port.key);
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

fn group(sw: &Switch, id: u32, local: &[u32], remote: &[TunnelTarget]) -> Group {
    let resubmit = Action::Resubmit {
        table: Stage::PreCtOut.table(),
    };
    let mut buckets: Vec<Vec<Action>> = local
        .iter()
        .map(|key| vec![set_outport(*key), resubmit.clone()])
        .collect();
    buckets.extend(remote.iter().map(|t| physical::flood_bucket(sw, t)));
    Group {
        id,
        kind: GroupType::All,
        buckets,
    }
}

fn to_group(priority: u16, cookie: u64, m: Match, g: Option<u32>) -> Flow {
    Flow {
        table: Stage::L2Lookup.table(),
        priority,
        cookie,
        matches: m,
        actions: g.map(Action::Group).into_iter().collect(),
    }
}

/// The switch's flood and unknown-unicast flows and groups (none until its group ids are
/// allocated).
pub fn flood(input: &CompileInput, sw: &Switch, cookie: u64) -> (Vec<Flow>, Vec<Group>) {
    let id = |k| input.ids.group(&sw.name, k);
    let ids = (
        id(GroupKind::Flood),
        id(GroupKind::FloodLocal),
        id(GroupKind::Unknown),
        id(GroupKind::UnknownLocal),
    );
    let (Some(flood), Some(flood_local), Some(unknown), Some(unknown_local)) = ids else {
        return (Vec::new(), Vec::new());
    };
    flood_for(
        sw,
        &members(input, sw),
        [flood, flood_local, unknown, unknown_local],
        cookie,
    )
}

/// [`flood`] from already collected members and the ids of the four groups (in
/// [`GroupKind`] order).
pub fn flood_for(
    sw: &Switch,
    m: &FloodMembers,
    ids: [u32; 4],
    cookie: u64,
) -> (Vec<Flow>, Vec<Group>) {
    let [flood, flood_local, unknown, unknown_local] = ids;
    let mut groups = vec![
        group(sw, flood, &m.local, &m.remote),
        group(sw, flood_local, &m.local, &[]),
    ];
    let mut flows = vec![
        to_group(
            PRIO_FLOOD_FROM_TUNNEL,
            cookie,
            Match::from_fields([metadata(sw), from_tunnel(), multicast()]),
            Some(flood_local),
        ),
        to_group(
            PRIO_FLOOD,
            cookie,
            Match::from_fields([metadata(sw), multicast()]),
            Some(flood),
        ),
    ];
    if !m.unknown_local.is_empty() || !m.unknown_remote.is_empty() {
        groups.push(group(sw, unknown, &m.unknown_local, &m.unknown_remote));
        let local_group = if m.unknown_local.is_empty() {
            None
        } else {
            groups.push(group(sw, unknown_local, &m.unknown_local, &[]));
            Some(unknown_local)
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
            Some(unknown),
        ));
    }
    (flows, groups)
}
