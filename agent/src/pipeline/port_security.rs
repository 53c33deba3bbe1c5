//! Stage port-sec-in (table 10): port security (anti-spoofing) for local ports with
//! `port_security` set, and the rogue-server filter of every local VIF.
//!
//! Every local VIF (type "") without `options:allow-ra-dhcp-server=true`
//! ([`OPT_ALLOW_SERVER`]), with or without port security:
//! - priority 110: IPv6 router advertisements (`icmp6, icmp_type=134`), DHCPv4 server
//!   replies (`udp, tp_src=67, tp_dst=68`) and DHCPv6 server replies
//!   (`udp6, tp_src=547, tp_dst=546`) → drop.
//!
//! For each allowed entry `MAC [IP[/len] ...]` (IPv4 or IPv6) of a port with port security,
//! in reg14. The IPv6 sources are the listed ones plus the MAC's EUI-64 link-local address
//! ([`link_local`], always allowed):
//! - priority 100, neighbour discovery that may pass: NS (`icmp_type=135, icmp_code=0`) from
//!   an allowed IPv6 source with `nd_sll` = MAC or no source link-layer option
//!   (`nd_sll=00:00:00:00:00:00`), NS from `::` to `ff02::/16` without the option (DAD);
//!   NA (`icmp_type=136, icmp_code=0`) from an allowed source (for a host address also
//!   `nd_target` = that address) with `nd_tll` = MAC or no option. An entry without IPs
//!   checks only the link-layer options;
//! - priority 95: any other NS or NA from the MAC → drop;
//! - priority 90: `ip, nw_src=IP/len`, `ipv6, ipv6_src=IP/len` (listed and link-local), `arp,
//!   arp_sha=MAC, arp_spa=IP/len`, DHCPv4 discovery (`udp, nw_src=0.0.0.0,
//!   nw_dst=255.255.255.255, tp_src=68, tp_dst=67`) and MLD from `::` to `ff02::/16`
//!   (`icmp_type=131` and `143`, sent before an address is configured) → next. An entry
//!   without IPs allows any `ip` and `ipv6` from the MAC and `arp` with `arp_sha`=MAC;
//!
//! and priority 60: anything else from the port → drop, so frames that are neither IPv4,
//! IPv6 nor ARP never pass. Ports without port security fall through to the table default
//! (next table) once past the rogue-server filter.

use std::net::{Ipv4Addr, Ipv6Addr};

use weft_openflow::flow::{Flow, Mac, Match, MatchField};

use super::{reg, Stage};
use crate::view::{Ipv4Prefix, Ipv6Prefix, Port, PortKind, SecurityAddress, Switch};

/// The port option that lets a VIF send router advertisements and DHCP server replies.
pub const OPT_ALLOW_SERVER: &str = "allow-ra-dhcp-server";

pub const PRIO_DROP_SERVER: u16 = 110;
pub const PRIO_ALLOW_ND: u16 = 100;
pub const PRIO_DROP_ND: u16 = 95;
pub const PRIO_ALLOW_L3: u16 = 90;
pub const PRIO_DROP_PORT: u16 = 60;

const ETH_TYPE_IP: u16 = 0x0800;
const ETH_TYPE_ARP: u16 = 0x0806;
const ETH_TYPE_IPV6: u16 = 0x86dd;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const ICMPV6_MLD_REPORT: u8 = 131;
const ICMPV6_RA: u8 = 134;
const ICMPV6_NS: u8 = 135;
const ICMPV6_NA: u8 = 136;
const ICMPV6_MLD2_REPORT: u8 = 143;
const NO_LLADDR: Mac = Mac([0; 6]);

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

fn prefix_mask(p: &Ipv4Prefix) -> Option<Ipv4Addr> {
    (!p.is_host()).then(|| p.mask())
}

fn ipv6_src(p: &Ipv6Prefix) -> MatchField {
    MatchField::Ipv6Src {
        value: p.network(),
        mask: (!p.is_host()).then(|| p.mask()),
    }
}

/// The IPv6 link-local address derived from `mac` (modified EUI-64 in `fe80::/64`).
pub fn link_local(mac: Mac) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// Whether the port may send router advertisements and DHCP server replies.
pub fn allows_servers(port: &Port) -> bool {
    port.options.get(OPT_ALLOW_SERVER).map(String::as_str) == Some("true")
}

fn icmp6(base: &Match, t: u8) -> Match {
    base.clone()
        .with(MatchField::EthType(ETH_TYPE_IPV6))
        .with(MatchField::IpProto(PROTO_ICMPV6))
        .with(MatchField::Icmpv6Type(t))
}

fn nd(base: &Match, t: u8) -> Match {
    icmp6(base, t).with(MatchField::Icmpv6Code(0))
}

fn all_nodes_scope() -> MatchField {
    MatchField::Ipv6Dst {
        value: Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0),
        mask: Some(Ipv6Addr::new(0xffff, 0, 0, 0, 0, 0, 0, 0)),
    }
}

/// The rogue-server drops of a VIF (priority 110): RAs, DHCPv4 and DHCPv6 server replies.
fn server_drops(inport: &Match, cookie: u64) -> Vec<Flow> {
    let udp = |eth: u16, src: u16, dst: u16| {
        inport
            .clone()
            .with(MatchField::EthType(eth))
            .with(MatchField::IpProto(PROTO_UDP))
            .with(MatchField::UdpSrc {
                value: src,
                mask: None,
            })
            .with(MatchField::UdpDst {
                value: dst,
                mask: None,
            })
    };
    vec![
        flow(PRIO_DROP_SERVER, cookie, icmp6(inport, ICMPV6_RA), false),
        flow(PRIO_DROP_SERVER, cookie, udp(ETH_TYPE_IP, 67, 68), false),
        flow(PRIO_DROP_SERVER, cookie, udp(ETH_TYPE_IPV6, 547, 546), false),
    ]
}

/// The flows of one port-security entry.
fn entry_flows(inport: &Match, entry: &SecurityAddress, cookie: u64, out: &mut Vec<Flow>) {
    let mac = entry.mac;
    let from_mac = inport.clone().with(MatchField::EthSrc {
        value: mac,
        mask: None,
    });
    let ip = from_mac.clone().with(MatchField::EthType(ETH_TYPE_IP));
    let ipv6 = from_mac.clone().with(MatchField::EthType(ETH_TYPE_IPV6));
    let arp_sha = from_mac
        .clone()
        .with(MatchField::EthType(ETH_TYPE_ARP))
        .with(MatchField::ArpSha(mac));
    let allow = |prio, m| flow(prio, cookie, m, true);
    let ns = nd(&from_mac, ICMPV6_NS);
    let na = nd(&from_mac, ICMPV6_NA);

    if entry.ips.is_empty() && entry.ipv6.is_empty() {
        // Only the MAC is checked, and the link-layer options of ND.
        for ll in [mac, NO_LLADDR] {
            out.push(allow(PRIO_ALLOW_ND, ns.clone().with(MatchField::NdSll(ll))));
            out.push(allow(PRIO_ALLOW_ND, na.clone().with(MatchField::NdTll(ll))));
        }
    } else {
        let ll = Ipv6Prefix {
            addr: link_local(mac),
            len: 128,
        };
        let sources: Vec<Ipv6Prefix> = std::iter::once(ll)
            .chain(entry.ipv6.iter().copied().filter(|p| *p != ll))
            .collect();
        for s in &sources {
            for opt in [mac, NO_LLADDR] {
                out.push(allow(
                    PRIO_ALLOW_ND,
                    ns.clone().with(ipv6_src(s)).with(MatchField::NdSll(opt)),
                ));
            }
            for opt in [mac, NO_LLADDR] {
                let mut m = na.clone().with(ipv6_src(s));
                if s.is_host() {
                    m = m.with(MatchField::NdTarget(s.addr));
                }
                out.push(allow(PRIO_ALLOW_ND, m.with(MatchField::NdTll(opt))));
            }
        }
        // DAD: NS from the unspecified address, without a source link-layer option.
        out.push(allow(
            PRIO_ALLOW_ND,
            ns.clone()
                .with(MatchField::Ipv6Src {
                    value: Ipv6Addr::UNSPECIFIED,
                    mask: None,
                })
                .with(all_nodes_scope())
                .with(MatchField::NdSll(NO_LLADDR)),
        ));
        for s in &sources {
            out.push(allow(PRIO_ALLOW_L3, ipv6.clone().with(ipv6_src(s))));
        }
        // MLD reports sent before an address is configured.
        for t in [ICMPV6_MLD_REPORT, ICMPV6_MLD2_REPORT] {
            out.push(allow(
                PRIO_ALLOW_L3,
                icmp6(&from_mac, t)
                    .with(MatchField::Ipv6Src {
                        value: Ipv6Addr::UNSPECIFIED,
                        mask: None,
                    })
                    .with(all_nodes_scope()),
            ));
        }
    }
    out.push(flow(PRIO_DROP_ND, cookie, icmp6(&from_mac, ICMPV6_NS), false));
    out.push(flow(PRIO_DROP_ND, cookie, icmp6(&from_mac, ICMPV6_NA), false));

    if entry.ips.is_empty() && entry.ipv6.is_empty() {
        out.push(allow(PRIO_ALLOW_L3, ip));
        out.push(allow(PRIO_ALLOW_L3, ipv6));
        out.push(allow(PRIO_ALLOW_L3, arp_sha));
        return;
    }
    for prefix in &entry.ips {
        let mask = prefix_mask(prefix);
        out.push(allow(
            PRIO_ALLOW_L3,
            ip.clone().with(MatchField::Ipv4Src {
                value: prefix.addr,
                mask,
            }),
        ));
        out.push(allow(
            PRIO_ALLOW_L3,
            arp_sha.clone().with(MatchField::ArpSpa {
                value: prefix.addr,
                mask,
            }),
        ));
    }
    if !entry.ips.is_empty() {
        // DHCPv4 discovery/request before the address is configured.
        out.push(allow(
            PRIO_ALLOW_L3,
            ip.clone()
                .with(MatchField::IpProto(PROTO_UDP))
                .with(MatchField::Ipv4Src {
                    value: Ipv4Addr::UNSPECIFIED,
                    mask: None,
                })
                .with(MatchField::Ipv4Dst {
                    value: Ipv4Addr::BROADCAST,
                    mask: None,
                })
                .with(MatchField::UdpSrc {
                    value: 68,
                    mask: None,
                })
                .with(MatchField::UdpDst {
                    value: 67,
                    mask: None,
                }),
        ));
    }
}

/// The port-security flows of a local port: the rogue-server drops of a VIF (unless
/// [`OPT_ALLOW_SERVER`]) and, when it has port security, the allowed sources.
pub fn flows(sw: &Switch, port: &Port, cookie: u64) -> Vec<Flow> {
    let inport = Match::from_fields([
        MatchField::Metadata {
            value: u64::from(sw.key),
            mask: None,
        },
        MatchField::Reg {
            index: reg::INPORT,
            value: port.key,
            mask: None,
        },
    ]);
    let mut out = Vec::new();
    if port.kind == PortKind::Vif && !allows_servers(port) {
        out.extend(server_drops(&inport, cookie));
    }
    if port.port_security.is_empty() {
        return out;
    }
    for entry in &port.port_security {
        entry_flows(&inport, entry, cookie, &mut out);
    }
    out.push(flow(PRIO_DROP_PORT, cookie, inport, false));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_is_modified_eui64() {
        let mac: Mac = "0a:58:0a:00:00:05".parse().expect("mac");
        assert_eq!(
            link_local(mac),
            "fe80::858:aff:fe00:5".parse::<Ipv6Addr>().expect("ip")
        );
        let mac: Mac = "00:00:00:00:00:01".parse().expect("mac");
        assert_eq!(
            link_local(mac),
            "fe80::200:ff:fe00:1".parse::<Ipv6Addr>().expect("ip")
        );
    }
}
