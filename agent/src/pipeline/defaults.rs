//! Table defaults (owner [`super::Owner::Static`]): what a packet that matches nothing else
//! does in each table. Classification, L2 lookup and output drop; the other tables pass the
//! packet to the next one (port security without port_security, ARP not for us, and the
//! ACL and L3 tables that are pass-through for now).

use weft_openflow::flow::{Action, Flow, Match};

use super::table;

/// Priority of the defaults.
pub const PRIO_DEFAULT: u16 = 0;

fn default_flow(t: u8, next: Option<u8>, cookie: u64) -> Flow {
    Flow {
        table: t,
        priority: PRIO_DEFAULT,
        cookie,
        matches: Match::new(),
        actions: next.map(Action::GotoTable).into_iter().collect(),
    }
}

/// The eight table defaults.
pub fn flows(cookie: u64) -> Vec<Flow> {
    vec![
        default_flow(table::CLASSIFY, None, cookie),
        default_flow(table::PORT_SEC, Some(table::ARP), cookie),
        default_flow(table::ARP, Some(table::ACL_IN), cookie),
        default_flow(table::ACL_IN, Some(table::L3), cookie),
        default_flow(table::L3, Some(table::L2_LOOKUP), cookie),
        default_flow(table::L2_LOOKUP, None, cookie),
        default_flow(table::ACL_OUT, Some(table::OUTPUT), cookie),
        default_flow(table::OUTPUT, None, cookie),
    ]
}
