//! Stage lr-mtu (table 49) and its check at lr-exit: a router port's MTU
//! (`options:gateway_mtu`, as OVN's). A routed packet leaving the router by a port with an
//! MTU and longer than it is punted; the agent ([`crate::pinctrl::mtu`]) answers a packet with
//! DF set with an ICMP "fragmentation needed" (type 3 code 4, the next-hop MTU in the header)
//! from the router port the packet came in by, routed back to the sender, and fragments the
//! others (RFC 791/1191).
//!
//! Per router port Q with `gateway_mtu` M (owner = Q), when Q, its router and its attachment
//! are live:
//! - lr-exit, priority [`PRIO_CHECK`] (above [`super::l3::PRIO_EXIT`]): `ip, reg15=Q` →
//!   `check_pkt_larger(M + 14)->reg9[1]` (the Ethernet header counts), goto lr-mtu;
//! - lr-mtu, priority [`PRIO_TOO_BIG`], per router port P of the router (the input port):
//!   `ip, reg14=P, reg15=Q, reg9[1]=1` → `controller(userdata=OP_ICMP_FRAG_NEEDED M, P's
//!   first IP and MAC, router, P, Q's switch and router-type port)`, metered by
//!   `pinctrl-icmp`; the packet goes no further;
//! - lr-mtu, priority [`PRIO_FITS`]: `reg15=Q` → lr-exit's own actions (into Q's switch).
//!
//! No recirculation: `check_pkt_larger` writes a register bit and every jump is a
//! `goto_table` forward, so the userspace datapath's recirculation budget (6) is untouched.
//! The ICMP error and the fragments are new packets (packet-outs), each with a budget of its
//! own.

use std::net::Ipv4Addr;

use weft_openflow::codec::nxm::nxm_nx_reg;
use weft_openflow::flow::{Action, Controller, Flow, Mac, Match, MatchField, SubField};

use super::l3::{self, Attachment};
use super::{punt, reg, Stage};
use crate::ids::Ids;
use crate::view::ChassisView;

/// lr-exit: the length check, above the plain exit.
pub const PRIO_CHECK: u16 = 110;
/// lr-mtu: too big, per input port.
pub const PRIO_TOO_BIG: u16 = 100;
/// lr-mtu: fits.
pub const PRIO_FITS: u16 = 50;
/// The register and bit the check writes (OVN's REGBIT_PKT_LARGER is reg9[1]).
pub const REG_LARGER: u8 = 9;
pub const BIT_LARGER: u16 = 1;
/// The Ethernet header: `check_pkt_larger` counts it, an MTU does not.
pub const ETH_HEADER: u16 = 14;

/// The arguments of an [`punt::OP_ICMP_FRAG_NEEDED`] punt (after the opcode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooBig {
    pub mtu: u16,
    /// The input router port: the ICMP error's source, and where it re-enters the router.
    pub in_ip: Ipv4Addr,
    pub in_mac: Mac,
    pub router_key: u32,
    pub in_key: u32,
    /// The output port's switch and its router-type port (where fragments continue).
    pub out_switch_key: u32,
    pub out_lsp_key: u32,
}

/// The userdata of a too-big punt.
pub fn userdata(t: &TooBig) -> Vec<u8> {
    let mut u = punt::OP_ICMP_FRAG_NEEDED.to_be_bytes().to_vec();
    u.extend_from_slice(&t.mtu.to_be_bytes());
    u.extend_from_slice(&t.in_ip.octets());
    u.extend_from_slice(&t.in_mac.0);
    for k in [t.router_key, t.in_key, t.out_switch_key, t.out_lsp_key] {
        u.extend_from_slice(&k.to_be_bytes());
    }
    u
}

/// Parses the arguments of a too-big punt (the userdata after the opcode).
pub fn parse_args(a: &[u8]) -> Option<TooBig> {
    if a.len() < 32 - 4 {
        return None;
    }
    let u32_at = |i: usize| u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&a[6..12]);
    Some(TooBig {
        mtu: u16::from_be_bytes([a[0], a[1]]),
        in_ip: Ipv4Addr::new(a[2], a[3], a[4], a[5]),
        in_mac: Mac(mac),
        router_key: u32_at(12),
        in_key: u32_at(16),
        out_switch_key: u32_at(20),
        out_lsp_key: u32_at(24),
    })
}

fn larger() -> SubField {
    SubField::bits(nxm_nx_reg(REG_LARGER), BIT_LARGER, BIT_LARGER)
}

fn md(key: u32) -> MatchField {
    MatchField::Metadata {
        value: u64::from(key),
        mask: None,
    }
}

fn reg_is(index: u8, value: u32) -> MatchField {
    MatchField::Reg {
        index,
        value,
        mask: None,
    }
}

fn flow(stage: Stage, priority: u16, cookie: u64, matches: Match, actions: Vec<Action>) -> Flow {
    Flow {
        table: stage.table(),
        priority,
        cookie,
        matches,
        actions,
    }
}

/// The MTU flows owned by router port `name` (see the module docs); none without
/// `gateway_mtu`.
pub fn flows(view: &ChassisView, ids: &Ids, name: &str, cookie: u64) -> Vec<Flow> {
    let Some(q) = view.router_port(name) else {
        return Vec::new();
    };
    let Some(mtu) = q.gateway_mtu else {
        return Vec::new();
    };
    let Some(router) = view.router(&q.router).filter(|r| r.enabled && q.enabled) else {
        return Vec::new();
    };
    let Some(att): Option<Attachment<'_>> = l3::attachment(view, name) else {
        return Vec::new();
    };
    let Some(meter) = ids.meter(punt::METER_ICMP) else {
        return Vec::new();
    };
    let rk = router.key;
    let ip = MatchField::EthType(0x0800);
    let mut flows = vec![
        flow(
            Stage::LrExit,
            PRIO_CHECK,
            cookie,
            Match::from_fields([md(rk), reg_is(reg::OUTPORT, q.key), ip.clone()]),
            vec![
                Action::CheckPktLarger {
                    len: mtu.saturating_add(ETH_HEADER),
                    dst: larger(),
                },
                Stage::LrMtu.goto(),
            ],
        ),
        flow(
            Stage::LrMtu,
            PRIO_FITS,
            cookie,
            Match::from_fields([md(rk), reg_is(reg::OUTPORT, q.key)]),
            l3::exit_actions(att),
        ),
    ];
    for p in view.router_ports_of(&q.router).filter(|p| p.enabled) {
        let Some(n) = p.networks.first() else {
            continue;
        };
        let t = TooBig {
            mtu,
            in_ip: n.addr,
            in_mac: p.mac,
            router_key: rk,
            in_key: p.key,
            out_switch_key: att.switch.key,
            out_lsp_key: att.lsp_key,
        };
        flows.push(flow(
            Stage::LrMtu,
            PRIO_TOO_BIG,
            cookie,
            Match::from_fields([
                md(rk),
                reg_is(reg::INPORT, p.key),
                reg_is(reg::OUTPORT, q.key),
                MatchField::Reg {
                    index: REG_LARGER,
                    value: 1 << BIT_LARGER,
                    mask: Some(1 << BIT_LARGER),
                },
                ip.clone(),
            ]),
            vec![Action::Controller(Controller {
                max_len: u16::MAX,
                userdata: userdata(&t),
                meter_id: Some(meter),
                ..Controller::default()
            })],
        ));
    }
    flows
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn userdata_round_trips() {
        let t = TooBig {
            mtu: 1400,
            in_ip: Ipv4Addr::new(10, 31, 0, 1),
            in_mac: Mac([0x0a, 0, 0, 0x1f, 0, 1]),
            router_key: 7,
            in_key: 1,
            out_switch_key: 0x00ab_cdef,
            out_lsp_key: 3,
        };
        let u = userdata(&t);
        assert_eq!(u.len(), 32);
        assert_eq!(&u[..4], &punt::OP_ICMP_FRAG_NEEDED.to_be_bytes());
        assert_eq!(parse_args(&u[4..]), Some(t));
        assert_eq!(parse_args(&u[4..20]), None);
    }
}
