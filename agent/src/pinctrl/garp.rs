//! Gratuitous ARP from a gateway chassis that became active (OVN's GARPs for a
//! chassisredirect port and its NAT addresses): the provider network's switches learn that
//! the gateway port's MAC (and a distributed FIP's MAC) now lives here, so inbound traffic
//! (DNAT, replies) stops going to the old gateway's port at once instead of after the
//! provider bridge's MAC ageing. Not a packet-in handler: the agent sends these packet-outs
//! after an apply that made a gateway port resident here ([`announcements`]).
//!
//! Each announcement is an ARP request with sender = target = the address and the port's
//! MAC, broadcast, put into the gateway port's switch at l2-lookup as if from the
//! router-type switch port, so it floods out of this chassis' localnet port.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use weft_openflow::codec::PacketOut;
use weft_openflow::flow::{ports, Action, Mac, Match, MatchField, SetField};

use super::{encode_arp, ArpPacket};
use crate::pipeline::{gateway, l3, reg, Stage};
use crate::view::ChassisView;

/// The gateway ports resident on `chassis` (enabled, attached, active here).
pub fn resident_gateways(view: &ChassisView, chassis: &str) -> BTreeSet<String> {
    view.router_ports()
        .filter(|p| p.enabled && p.is_gateway() && gateway::resident(chassis, p))
        .filter(|p| l3::attachment(view, &p.name).is_some())
        .map(|p| p.name.clone())
        .collect()
}

/// The GARPs of gateway port `lrp`: its addresses and its router's centralized NAT external
/// IPs, with its MAC.
pub fn announcements(view: &ChassisView, lrp: &str) -> Vec<PacketOut> {
    let Some(p) = view.router_port(lrp) else {
        return Vec::new();
    };
    let Some(att) = l3::attachment(view, lrp) else {
        return Vec::new();
    };
    let mut ips: BTreeSet<Ipv4Addr> = p.networks.iter().map(|n| n.addr).collect();
    if let Some(r) = view.router(&p.router) {
        ips.extend(
            r.nat
                .iter()
                .filter(|n| !n.is_distributed())
                .filter(|n| p.networks.iter().any(|net| net.contains(n.external_ip)))
                .map(|n| n.external_ip),
        );
    }
    ips.into_iter()
        .map(|ip| garp(p.mac, ip, att.switch.key, att.lsp_key))
        .collect()
}

fn garp(mac: Mac, ip: Ipv4Addr, switch_key: u32, lsp_key: u32) -> PacketOut {
    let arp = ArpPacket {
        eth_dst: Mac([0xff; 6]),
        eth_src: mac,
        op: 1,
        sha: mac,
        spa: ip,
        tha: Mac([0; 6]),
        tpa: ip,
    };
    PacketOut {
        buffer_id: u32::MAX,
        matches: Match::new().with(MatchField::InPort(ports::CONTROLLER)),
        actions: vec![
            Action::SetField(SetField::Metadata(u64::from(switch_key))),
            Action::SetField(SetField::Reg {
                index: reg::INPORT,
                value: lsp_key,
            }),
            Action::SetField(SetField::Reg {
                index: reg::OUTPORT,
                value: 0,
            }),
            Action::Resubmit {
                table: Stage::L2Lookup.table(),
            },
        ],
        packet: encode_arp(&arp),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use weft_proto::model::view::ViewDelta;
    use weft_proto::v1::{GatewayChassis, PortView, RouterPortView, RouterView, SwitchView};

    fn view(active: &str) -> ChassisView {
        let mut v = ChassisView::new();
        let nat = weft_proto::model::nat::NatRule::parse_text("n", "snat 172.16.0.10 10.0.0.0/24")
            .unwrap()
            .to_message();
        v.apply(&ViewDelta {
            revision: 1,
            snapshot: true,
            switches: vec![SwitchView {
                name: "ext".into(),
                vni: 3,
                tunnel_key: 3,
                subnet: "172.16.0.0/24".into(),
                ..Default::default()
            }],
            ports: vec![PortView {
                name: "ext-lr1".into(),
                switch_name: "ext".into(),
                r#type: "router".into(),
                options: [("router-port".to_string(), "lr1-ext".to_string())].into(),
                enabled: true,
                tunnel_key: 2,
                ..Default::default()
            }],
            routers: vec![RouterView {
                name: "lr1".into(),
                tunnel_key: 9,
                enabled: true,
                nat: vec![nat],
                ..Default::default()
            }],
            router_ports: vec![RouterPortView {
                name: "lr1-ext".into(),
                router: "lr1".into(),
                mac: "0a:00:00:00:10:01".into(),
                networks: vec!["172.16.0.1/24".into()],
                tunnel_key: 1,
                enabled: true,
                gateway_chassis: vec![GatewayChassis {
                    chassis_name: "hv1".into(),
                    priority: 1,
                }],
                active_gateway: active.into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
        v
    }

    #[test]
    fn the_active_gateway_announces_its_port_and_nat_addresses() {
        let v = view("hv1");
        assert_eq!(resident_gateways(&v, "hv1"), ["lr1-ext".to_string()].into());
        assert!(resident_gateways(&v, "hv2").is_empty());
        assert!(resident_gateways(&view("hv2"), "hv1").is_empty());
        let a = announcements(&v, "lr1-ext");
        assert_eq!(a.len(), 2, "the port's IP and the SNAT address");
        let p = super::super::parse_arp(&a[1].packet).unwrap();
        assert_eq!(
            (p.op, p.spa, p.tpa),
            (
                1,
                "172.16.0.10".parse().unwrap(),
                "172.16.0.10".parse().unwrap()
            )
        );
        assert_eq!(p.sha.to_string(), "0a:00:00:00:10:01");
        assert!(a[0]
            .actions
            .contains(&Action::SetField(SetField::Metadata(3))));
    }
}
