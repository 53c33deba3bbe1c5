//! The stage framework: every table of br-int declared once, in pipeline order, in
//! [`STAGES`]. Table numbers ([`Stage::table`]), next-table wiring ([`Stage::next`]) and the
//! table defaults ([`default_flows`]) all come from that one list, and a unit test checks it
//! against the ASCII map at the top of `pipeline/mod.rs` (the map is the source; the list
//! must say the same). Builders write `Stage::L2Lookup.table()` / `Stage::PortSecIn.next()`,
//! never a literal number.
//!
//! A stage's default says what a packet that matches nothing else does there: `Next` (pass
//! to the next stage: every stage that has no feature yet is a pass-through), `Goto` (skip
//! ahead), `Drop`, or `Empty` (no default flow: lookup tables only reached by `resubmit`).

use weft_openflow::flow::{Action, Flow, Match};

/// Priority of the table defaults.
pub const PRIO_DEFAULT: u16 = 0;

/// One stage (= one OpenFlow table) of the pipeline. The discriminant is the table number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Stage {
    Classify = 0,
    Punt = 5,
    PortSecIn = 10,
    ArpNd = 20,
    PreCtIn = 25,
    CtIn = 26,
    CtStateIn = 27,
    AclIn = 30,
    AclInAct = 31,
    QosIn = 32,
    LbAffinity = 33,
    LbVip = 34,
    LbLearn = 35,
    LbDnat = 36,
    LbHairpin = 37,
    CommitIn = 38,
    L3Entry = 40,
    LrInput = 41,
    LrCt = 42,
    LrDnat = 43,
    LrRoute = 44,
    LrPolicy = 45,
    LrNeigh = 46,
    LrSnat = 47,
    LrExit = 48,
    LrMtu = 49,
    L2Lookup = 50,
    Dispatch = 58,
    PreCtOut = 60,
    CtOut = 61,
    AclOut = 62,
    AclOutAct = 63,
    QosOut = 64,
    LbOut = 65,
    CommitOut = 66,
    PortSecOut = 68,
    Output = 70,
    LrSnatCommit = 80,
    MacBinding = 90,
    LearnedHairpin = 91,
}

/// What a stage does with a packet no other flow matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageDefault {
    /// Pass to the next stage in [`STAGES`].
    Next,
    /// Skip ahead to this stage.
    Goto(Stage),
    Drop,
    /// No default flow (lookup tables reached by `resubmit` only).
    Empty,
}

/// A stage's declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageDecl {
    pub stage: Stage,
    /// The name in the table map (`l2-lookup`).
    pub name: &'static str,
    pub default: StageDefault,
}

const fn decl(stage: Stage, name: &'static str, default: StageDefault) -> StageDecl {
    StageDecl {
        stage,
        name,
        default,
    }
}

use StageDefault::{Drop, Empty, Goto, Next};

/// Every stage, in pipeline (and table-number) order.
pub const STAGES: &[StageDecl] = &[
    decl(Stage::Classify, "classify", Drop),
    decl(Stage::Punt, "punt", Next),
    decl(Stage::PortSecIn, "port-sec-in", Next),
    decl(Stage::ArpNd, "arp-nd", Next),
    decl(Stage::PreCtIn, "pre-ct-in", Next),
    decl(Stage::CtIn, "ct-in", Next),
    decl(Stage::CtStateIn, "ct-state-in", Next),
    decl(Stage::AclIn, "acl-in", Next),
    decl(Stage::AclInAct, "acl-in-act", Next),
    decl(Stage::QosIn, "qos-in", Goto(Stage::LbVip)),
    decl(Stage::LbAffinity, "lb-affinity", Empty),
    decl(Stage::LbVip, "lb-vip", Next),
    decl(Stage::LbLearn, "lb-learn", Next),
    decl(Stage::LbDnat, "lb-dnat", Next),
    decl(Stage::LbHairpin, "lb-hairpin", Next),
    decl(Stage::CommitIn, "commit-in", Next),
    decl(Stage::L3Entry, "l3-entry", Goto(Stage::L2Lookup)),
    decl(Stage::LrInput, "lr-input", Next),
    decl(Stage::LrCt, "lr-ct", Next),
    decl(Stage::LrDnat, "lr-dnat", Next),
    decl(Stage::LrRoute, "lr-route", Next),
    decl(Stage::LrPolicy, "lr-policy", Next),
    decl(Stage::LrNeigh, "lr-neigh", Next),
    decl(Stage::LrSnat, "lr-snat", Next),
    decl(Stage::LrExit, "lr-exit", Next),
    decl(Stage::LrMtu, "lr-mtu", Next),
    decl(Stage::L2Lookup, "l2-lookup", Drop),
    decl(Stage::Dispatch, "dispatch", Next),
    decl(Stage::PreCtOut, "pre-ct-out", Next),
    decl(Stage::CtOut, "ct-out", Next),
    decl(Stage::AclOut, "acl-out", Next),
    decl(Stage::AclOutAct, "acl-out-act", Next),
    decl(Stage::QosOut, "qos-out", Next),
    decl(Stage::LbOut, "lb-out", Next),
    decl(Stage::CommitOut, "commit-out", Next),
    decl(Stage::PortSecOut, "port-sec-out", Next),
    decl(Stage::Output, "output", Drop),
    decl(Stage::LrSnatCommit, "lr-snat-commit", Empty),
    decl(Stage::MacBinding, "mac-binding", Empty),
    decl(Stage::LearnedHairpin, "learned-hairpin", Empty),
];

impl Stage {
    /// The OpenFlow table number.
    pub const fn table(self) -> u8 {
        self as u8
    }

    fn index(self) -> usize {
        STAGES
            .iter()
            .position(|d| d.stage == self)
            .expect("every stage is declared")
    }

    /// The stage's declaration.
    pub fn decl(self) -> &'static StageDecl {
        &STAGES[self.index()]
    }

    /// The next stage's table (what `goto_table` a stage that passes a packet on uses).
    /// The last stage has no next one; asking for it is a bug.
    pub fn next(self) -> u8 {
        STAGES[self.index() + 1].stage.table()
    }

    /// `goto_table:<next stage>`.
    pub fn goto_next(self) -> Action {
        Action::GotoTable(self.next())
    }

    /// `goto_table:<this stage>`.
    pub fn goto(self) -> Action {
        Action::GotoTable(self.table())
    }

    pub fn name(self) -> &'static str {
        self.decl().name
    }
}

/// The default flow of every stage that has one (owner: static).
pub fn default_flows(cookie: u64) -> Vec<Flow> {
    STAGES
        .iter()
        .filter_map(|d| {
            let actions = match d.default {
                Next => vec![d.stage.goto_next()],
                Goto(s) => vec![s.goto()],
                Drop => Vec::new(),
                Empty => return None,
            };
            Some(Flow {
                table: d.stage.table(),
                priority: PRIO_DEFAULT,
                cookie,
                matches: Match::new(),
                actions,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_in_table_order_and_wired_forward() {
        for w in STAGES.windows(2) {
            assert!(w[0].stage.table() < w[1].stage.table(), "{w:?}");
        }
        for d in STAGES {
            if let Goto(s) = d.default {
                assert!(s.table() > d.stage.table(), "{d:?} jumps backwards");
            }
        }
        assert_eq!(Stage::Classify.next(), 5);
        assert_eq!(Stage::Dispatch.next(), Stage::PreCtOut.table());
        assert_eq!(Stage::PortSecOut.next(), Stage::Output.table());
    }

    /// The ASCII map at the top of pipeline/mod.rs names every stage with its table number,
    /// and nothing else: the declaration and the map cannot drift apart.
    #[test]
    fn the_table_map_matches_the_declaration() {
        let src = include_str!("mod.rs");
        let map: String = src
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let start = map.find("```text").expect("table map");
        let end = map[start + 7..].find("```").expect("end of map") + start + 7;
        let text = &map[start..end];
        let mut found = Vec::new();
        // Every "NN name" pair in the map.
        let words: Vec<&str> = text.split_whitespace().collect();
        for pair in words.windows(2) {
            if let Ok(n) = pair[0].parse::<u8>() {
                if let Some(d) = STAGES.iter().find(|d| d.name == pair[1]) {
                    found.push((n, d.stage));
                }
            }
        }
        for d in STAGES {
            assert!(
                found.contains(&(d.stage.table(), d.stage)),
                "stage {} (table {}) is not in the map as \"{} {}\"",
                d.name,
                d.stage.table(),
                d.stage.table(),
                d.name
            );
        }
        for (n, s) in found {
            assert_eq!(n, s.table(), "the map gives {} table {n}", s.name());
        }
    }
}
