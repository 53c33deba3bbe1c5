//! Stage port-sec-in (table 10), port security (anti-spoofing) for local ports with
//! `port_security` set.
//!
//! For each allowed entry `MAC [IP/len ...]` of the port in reg14:
//! - priority 90: `ip, dl_src=MAC, nw_src=IP/len` → next (one per prefix);
//! - priority 90: `arp, dl_src=MAC, arp_sha=MAC[, arp_spa=IP/len]` → next;
//! - priority 80: `arp, dl_src=MAC` → drop, and `ip, dl_src=MAC` → drop when IPs are listed;
//! - priority 70: `dl_src=MAC` → next (other ethertypes from an allowed MAC);
//!
//! and priority 60: anything else from the port → drop. Ports without port security fall
//! through to the table default (next table). Not covered yet: IPv6 sources and DHCP
//! discovery from 0.0.0.0 (no ip is accepted from a MAC with IPs but a listed source).

use weft_openflow::flow::{Flow, Match, MatchField};

use super::{reg, Stage};
use crate::view::{Ipv4Prefix, Port, Switch};

pub const PRIO_ALLOW_L3: u16 = 90;
pub const PRIO_DROP_L3: u16 = 80;
pub const PRIO_ALLOW_MAC: u16 = 70;
pub const PRIO_DROP_PORT: u16 = 60;

const ETH_TYPE_IP: u16 = 0x0800;
const ETH_TYPE_ARP: u16 = 0x0806;

fn flow(priority: u16, cookie: u64, matches: Match, allow: bool) -> Flow {
    Flow {
        table: Stage::PortSecIn.table(),
        priority,
        cookie,
        matches,
        actions: if allow {
            vec![Stage::PortSecIn.goto_next()]
        } else {
            Vec::new()
        },
    }
}

fn prefix_mask(p: &Ipv4Prefix) -> Option<std::net::Ipv4Addr> {
    (!p.is_host()).then(|| p.mask())
}

/// The port-security flows of a local port (empty when it has no port security).
pub fn flows(sw: &Switch, port: &Port, cookie: u64) -> Vec<Flow> {
    if port.port_security.is_empty() {
        return Vec::new();
    }
    let inport = [
        MatchField::Metadata {
            value: u64::from(sw.key),
            mask: None,
        },
        MatchField::Reg {
            index: reg::INPORT,
            value: port.key,
            mask: None,
        },
    ];
    let mut out = Vec::new();
    for entry in &port.port_security {
        let from_mac = Match::from_fields(inport.clone()).with(MatchField::EthSrc {
            value: entry.mac,
            mask: None,
        });
        let ip = from_mac.clone().with(MatchField::EthType(ETH_TYPE_IP));
        let arp = from_mac.clone().with(MatchField::EthType(ETH_TYPE_ARP));
        let arp_sha = arp.clone().with(MatchField::ArpSha(entry.mac));
        for prefix in &entry.ips {
            out.push(flow(
                PRIO_ALLOW_L3,
                cookie,
                ip.clone().with(MatchField::Ipv4Src {
                    value: prefix.addr,
                    mask: prefix_mask(prefix),
                }),
                true,
            ));
            out.push(flow(
                PRIO_ALLOW_L3,
                cookie,
                arp_sha.clone().with(MatchField::ArpSpa {
                    value: prefix.addr,
                    mask: prefix_mask(prefix),
                }),
                true,
            ));
        }
        if entry.ips.is_empty() {
            out.push(flow(PRIO_ALLOW_L3, cookie, arp_sha, true));
        } else {
            out.push(flow(PRIO_DROP_L3, cookie, ip, false));
        }
        out.push(flow(PRIO_DROP_L3, cookie, arp, false));
        out.push(flow(PRIO_ALLOW_MAC, cookie, from_mac, true));
    }
    out.push(flow(
        PRIO_DROP_PORT,
        cookie,
        Match::from_fields(inport),
        false,
    ));
    out
}
