//! Table 0, classification: which logical switch (metadata = VNI) and logical input port
//! (reg14) a packet belongs to. Local VIFs continue to port security; tunnel traffic, which was
//! already checked at its source chassis, jumps to L2 lookup with the FROM_TUNNEL flag.

use std::collections::BTreeMap;

use weft_openflow::flow::{Action, Flow, Match, MatchField, SetField};

use super::{reg, table, Encap};
use crate::view::Switch;

/// Priority of the per-port and per-tunnel classification flows.
pub const PRIO_CLASSIFY: u16 = 100;

/// A local VIF: `in_port=OFPORT → metadata=VNI, reg14=OFPORT, goto port-sec`.
pub fn vif(sw: &Switch, ofport: u32, cookie: u64) -> Flow {
    Flow {
        table: table::CLASSIFY,
        priority: PRIO_CLASSIFY,
        cookie,
        matches: Match::new().with(MatchField::InPort(ofport)),
        actions: vec![
            Action::SetField(SetField::Metadata(u64::from(sw.vni))),
            Action::SetField(SetField::Reg {
                index: reg::INPORT,
                value: ofport,
            }),
            Action::GotoTable(table::PORT_SEC),
        ],
    }
}

/// A disabled local VIF: everything it sends is dropped.
pub fn vif_disabled(ofport: u32, cookie: u64) -> Flow {
    Flow {
        table: table::CLASSIFY,
        priority: PRIO_CLASSIFY,
        cookie,
        matches: Match::new().with(MatchField::InPort(ofport)),
        actions: Vec::new(),
    }
}

/// One flow per tunnel port: `in_port=TUN,tun_id=VNI → metadata=VNI, reg10=FROM_TUNNEL,
/// goto l2-lookup`.
pub fn tunnels(sw: &Switch, tunnels: &BTreeMap<Encap, u32>, cookie: u64) -> Vec<Flow> {
    tunnels
        .values()
        .map(|ofport| Flow {
            table: table::CLASSIFY,
            priority: PRIO_CLASSIFY,
            cookie,
            matches: Match::from_fields([
                MatchField::InPort(*ofport),
                MatchField::TunId {
                    value: u64::from(sw.vni),
                    mask: None,
                },
            ]),
            actions: vec![
                Action::SetField(SetField::Metadata(u64::from(sw.vni))),
                Action::SetField(SetField::Reg {
                    index: reg::FLAGS,
                    value: reg::FLAG_FROM_TUNNEL,
                }),
                Action::GotoTable(table::L2_LOOKUP),
            ],
        })
        .collect()
}
