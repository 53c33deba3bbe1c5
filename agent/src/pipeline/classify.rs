//! Stage classify (table 0) for local VIFs: which logical datapath (`metadata` = the
//! switch's datapath key), logical input port (`reg14` = the port key) and conntrack zone
//! (`reg13` = the port's zone) a packet from a VIF belongs to. Tunnel ingress is in
//! [`crate::physical::tunnel_ingress`].

use weft_openflow::flow::{Action, Flow, Match, MatchField, SetField};

use super::{reg, Stage};
use crate::view::{Port, Switch};

/// Priority of the per-port and per-tunnel classification flows.
pub const PRIO_CLASSIFY: u16 = 100;

/// `metadata=DP` for a switch.
pub fn set_datapath(sw: &Switch) -> Action {
    Action::SetField(SetField::Metadata(u64::from(sw.key)))
}

/// A local VIF: `in_port=OFPORT → metadata=DP, reg14=PORT, reg13=ZONE, goto punt`.
pub fn vif(sw: &Switch, port: &Port, ofport: u32, zone: u16, cookie: u64) -> Flow {
    Flow {
        table: Stage::Classify.table(),
        priority: PRIO_CLASSIFY,
        cookie,
        matches: Match::new().with(MatchField::InPort(ofport)),
        actions: vec![
            set_datapath(sw),
            Action::SetField(SetField::Reg {
                index: reg::INPORT,
                value: port.key,
            }),
            Action::SetField(SetField::Reg {
                index: reg::ZONE,
                value: u32::from(zone),
            }),
            Stage::Classify.goto_next(),
        ],
    }
}

/// A disabled local VIF: everything it sends is dropped.
pub fn vif_disabled(ofport: u32, cookie: u64) -> Flow {
    Flow {
        table: Stage::Classify.table(),
        priority: PRIO_CLASSIFY,
        cookie,
        matches: Match::new().with(MatchField::InPort(ofport)),
        actions: Vec::new(),
    }
}
