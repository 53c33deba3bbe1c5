//! Stage arp-nd (table 20), the local ARP responder: an ARP request from a local port for the IPv4 address
//! of any enabled port on the same switch (local or remote) is answered here, OVN style,
//! and sent back out the input port. A request from the port that owns the address goes on
//! unanswered (duplicate address detection, gratuitous ARP).

use std::net::Ipv4Addr;

use weft_openflow::flow::{ports, Action, Field, Flow, Mac, Match, MatchField, SetField};

use super::{reg, Stage};
use crate::view::{Port, Switch};

pub const PRIO_OWN_REQUEST: u16 = 60;
pub const PRIO_REPLY: u16 = 50;

const ETH_TYPE_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

pub fn request_for(sw: &Switch, ip: Ipv4Addr) -> Match {
    Match::from_fields([
        MatchField::Metadata {
            value: u64::from(sw.key),
            mask: None,
        },
        MatchField::EthType(ETH_TYPE_ARP),
        MatchField::ArpOp(ARP_REQUEST),
        MatchField::ArpTpa {
            value: ip,
            mask: None,
        },
    ])
}

/// The actions turning a request for `ip` into a reply from `mac`, out the input port.
pub fn reply_actions(mac: Mac, ip: Ipv4Addr) -> Vec<Action> {
    vec![
        Action::Move {
            src: Field::EthSrc,
            dst: Field::EthDst,
        },
        Action::SetField(SetField::EthSrc(mac)),
        Action::SetField(SetField::ArpOp(ARP_REPLY)),
        Action::Move {
            src: Field::ArpSha,
            dst: Field::ArpTha,
        },
        Action::SetField(SetField::ArpSha(mac)),
        Action::Move {
            src: Field::ArpSpa,
            dst: Field::ArpTpa,
        },
        Action::SetField(SetField::ArpSpa(ip)),
        Action::Output(ports::IN_PORT),
    ]
}

/// The responder flows for every MAC+IPv4 of `port` (`local`: the port is bound here, and
/// its own requests are not answered).
pub fn responder(sw: &Switch, port: &Port, local: bool, cookie: u64) -> Vec<Flow> {
    let mut out = Vec::new();
    for addr in &port.addresses {
        for ip in &addr.ips {
            let m = request_for(sw, *ip);
            if local {
                out.push(Flow {
                    table: Stage::ArpNd.table(),
                    priority: PRIO_OWN_REQUEST,
                    cookie,
                    matches: m.clone().with(MatchField::Reg {
                        index: reg::INPORT,
                        value: port.key,
                        mask: None,
                    }),
                    actions: vec![Stage::ArpNd.goto_next()],
                });
            }
            out.push(Flow {
                table: Stage::ArpNd.table(),
                priority: PRIO_REPLY,
                cookie,
                matches: m,
                actions: reply_actions(addr.mac, *ip),
            });
        }
    }
    out
}
