//! Distributed gateway ports (a router port with gateway chassis, `lrp-set-gateway-chassis`):
//! what OVN's chassisredirect port does. The port is *resident* on its active gateway
//! chassis (the controller puts the alive gateway chassis of the highest priority in the
//! view, [`RouterPort::active_gateway`]); everywhere else its traffic is tunnelled there.
//!
//! On a chassis where the port is not resident ([`resident`] false), owned by the port:
//! - l3-entry, priority [`super::l3::PRIO_ENTRY`]: `metadata=SWITCH, dl_dst=LRP MAC` → drop
//!   (only the gateway takes packets in from the provider network), and
//!   [`super::l3::router_port_flows`] leaves out the port's ARP replies on its switch;
//! - lr-snat, priority [`PRIO_REDIRECT`]: `metadata=ROUTER, reg15=LRP` → redirect with
//!   marker [`REDIRECT_RESOLVED`] (the next hop's MAC is already in `eth_dst`);
//! - lr-neigh, priority [`super::l3::PRIO_NEIGH_MISS`] (instead of the ARP request): redirect
//!   with marker [`REDIRECT_UNRESOLVED`] (the gateway routes the packet again and resolves
//!   the next hop itself: such a packet has its TTL decremented twice).
//!
//! A redirect is a Geneve packet to the active gateway with `tun_id` = the VNI of the port's
//! switch and the port-key option = `marker << 16 | LRP key`: the marker sits where the
//! input port key goes and has bit 15 set, which no port key has (keys are < 0x8000). No
//! active gateway, or no Geneve tunnel to it: the packets are dropped. VXLAN and GRE carry no
//! option, so redirecting needs Geneve (as OVN's does for its chassisredirect ports).
//!
//! On the resident chassis, classify priority [`PRIO_REDIRECT_RX`], per Geneve tunnel port:
//! `tun_id=VNI, option=RESOLVED<<16|LRP` → `metadata=ROUTER, reg15=LRP`, goto lr-snat;
//! `option=UNRESOLVED<<16|LRP` → `metadata=ROUTER`, goto lr-route. Neither sets
//! FROM_TUNNEL: the packet leaves by the provider network like a local one.

use weft_openflow::codec::nxm::{nxm_nx_reg, nxm_nx_tun_metadata};
use weft_openflow::flow::{Action, Flow, Match, MatchField, SetField, SubField};

use super::{l2, l3, reg, CompileInput, Encap, Stage, TunnelTarget};
use crate::physical::TUN_METADATA_INDEX;
use crate::view::{ChassisView, Router, RouterPort};

/// lr-snat / lr-neigh redirect priority (above every NAT and neighbour flow of the port,
/// below the distributed NAT flows of [`super::nat`]).
pub const PRIO_REDIRECT: u16 = 200;
/// classify: a redirected packet (above the tunnel multicast flow).
pub const PRIO_REDIRECT_RX: u16 = 120;
/// Marker in the option's input-port bits: `eth_dst` resolved, resume at lr-snat.
pub const REDIRECT_RESOLVED: u32 = 0x8000;
/// Marker: next hop unresolved, route again at lr-route.
pub const REDIRECT_UNRESOLVED: u32 = 0x8001;

/// True when `lrp`'s traffic is handled on `chassis`: it is no gateway port, or `chassis` is
/// its active gateway.
pub fn resident(chassis: &str, lrp: &RouterPort) -> bool {
    !lrp.is_gateway() || lrp.active_gateway.as_deref() == Some(chassis)
}

/// The router's gateway port (the first by name with gateway chassis, enabled).
pub fn gateway_port<'a>(view: &'a ChassisView, router: &Router) -> Option<&'a RouterPort> {
    view.router_ports_of(&router.name)
        .find(|p| p.enabled && p.is_gateway())
}

/// The Geneve tunnel to `lrp`'s active gateway, when there is one and it is another chassis.
fn target(input: &CompileInput, lrp: &RouterPort) -> Option<TunnelTarget> {
    let c = input.view.chassis(lrp.active_gateway.as_deref()?)?;
    let ofport = *input.tunnels.get(&Encap::Geneve)?;
    c.encap_types
        .contains(&Encap::Geneve)
        .then_some(TunnelTarget {
            encap: Encap::Geneve,
            ofport,
            remote_ip: c.encap_ip,
        })
}

fn option_value(marker: u32, key: u32) -> u32 {
    (marker << 16) | key
}

/// The actions that tunnel a router packet (reg15 = the port) to the gateway.
fn redirect_actions(vni: u32, t: &TunnelTarget, marker: u32) -> Vec<Action> {
    let opt = |a, b| SubField::bits(nxm_nx_tun_metadata(TUN_METADATA_INDEX), a, b);
    vec![
        Action::SetField(SetField::Reg {
            index: reg::INPORT,
            value: marker,
        }),
        Action::SetField(SetField::TunId(u64::from(vni))),
        Action::SetField(SetField::TunDst(t.remote_ip)),
        Action::MoveBits {
            src: SubField::bits(nxm_nx_reg(reg::INPORT), 0, 15),
            dst: opt(16, 31),
        },
        Action::MoveBits {
            src: SubField::bits(nxm_nx_reg(reg::OUTPORT), 0, 15),
            dst: opt(0, 15),
        },
        Action::Output(t.ofport),
    ]
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

/// The gateway flows of router port `lrp` of `router` (see the module docs); none for a
/// port without gateway chassis or not attached to a switch.
pub fn flows(input: &CompileInput, router: &Router, lrp: &RouterPort, cookie: u64) -> Vec<Flow> {
    if !lrp.is_gateway() {
        return Vec::new();
    }
    let Some(att) = l3::attachment(input.view, &lrp.name) else {
        return Vec::new();
    };
    let sw = att.switch;
    let mut out = Vec::new();
    if resident(input.chassis, lrp) {
        let Some(ofport) = input.tunnels.get(&Encap::Geneve) else {
            return out;
        };
        for (marker, stage, outport) in [
            (REDIRECT_RESOLVED, Stage::LrSnat, lrp.key),
            (REDIRECT_UNRESOLVED, Stage::LrRoute, 0),
        ] {
            out.push(Flow {
                table: Stage::Classify.table(),
                priority: PRIO_REDIRECT_RX,
                cookie,
                matches: Match::from_fields([
                    MatchField::InPort(*ofport),
                    MatchField::TunId {
                        value: u64::from(sw.vni),
                        mask: None,
                    },
                    MatchField::TunMetadata {
                        index: TUN_METADATA_INDEX,
                        value: option_value(marker, lrp.key).to_be_bytes().to_vec(),
                        mask: None,
                    },
                ]),
                actions: vec![
                    Action::SetField(SetField::Metadata(u64::from(router.key))),
                    Action::SetField(SetField::Reg {
                        index: reg::INPORT,
                        value: 0,
                    }),
                    Action::SetField(SetField::Reg {
                        index: reg::OUTPORT,
                        value: outport,
                    }),
                    stage.goto(),
                ],
            });
        }
        return out;
    }
    out.push(Flow {
        table: Stage::L3Entry.table(),
        priority: l3::PRIO_ENTRY,
        cookie,
        matches: Match::from_fields([
            l2::metadata(sw),
            MatchField::EthDst {
                value: lrp.mac,
                mask: None,
            },
        ]),
        actions: Vec::new(),
    });
    let t = target(input, lrp);
    for (stage, priority, marker) in [
        (Stage::LrSnat, PRIO_REDIRECT, REDIRECT_RESOLVED),
        (Stage::LrNeigh, l3::PRIO_NEIGH_MISS, REDIRECT_UNRESOLVED),
    ] {
        out.push(Flow {
            table: stage.table(),
            priority,
            cookie,
            matches: Match::from_fields([md(router.key), reg_is(reg::OUTPORT, lrp.key)]),
            actions: t
                .map(|t| redirect_actions(sw.vni, &t, marker))
                .unwrap_or_default(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The markers never look like port keys.
    const _: () = assert!(REDIRECT_RESOLVED > crate::view::MAX_PORT_KEY);
    const _: () = assert!(REDIRECT_UNRESOLVED > crate::view::MAX_PORT_KEY);

    #[test]
    fn markers_sit_above_the_port_key() {
        assert_eq!(option_value(REDIRECT_RESOLVED, 5), 0x8000_0005);
    }
}
