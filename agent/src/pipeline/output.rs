//! Table 70, output: deliver to the ofport in reg15 (a local VIF or a tunnel port). A packet
//! whose reg15 is its own in_port is dropped by OpenFlow's no-hairpin rule.

use weft_openflow::flow::{Action, Flow, Match, MatchField};

use super::{reg, table};

/// Priority of the delivery flows.
pub const PRIO_DELIVER: u16 = 100;

/// `reg15=OFPORT → output:OFPORT`.
pub fn deliver(ofport: u32, cookie: u64) -> Flow {
    Flow {
        table: table::OUTPUT,
        priority: PRIO_DELIVER,
        cookie,
        matches: Match::new().with(MatchField::Reg {
            index: reg::OUTPORT,
            value: ofport,
            mask: None,
        }),
        actions: vec![Action::Output(ofport)],
    }
}
