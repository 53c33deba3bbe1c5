//! Packet-in flows and their meters: every `controller(...)` action of the pipeline is
//! built here, carries a `userdata` opcode for the agent's dispatcher ([`crate::pinctrl`])
//! and a meter (`meter_id=`) that rate-limits it in the datapath, before the dispatcher's
//! own bounded queue.
//!
//! Userdata: 4 bytes big-endian opcode ([`OP_ARP_GATEWAY`], ...), then the handler's
//! arguments, so handlers are stateless.
//!
//! Handlers now: the subnet gateway's ARP responder ([`OP_ARP_GATEWAY`]) and the router's
//! ICMP time-exceeded sender ([`OP_ICMP_TIME_EXCEEDED`], [`icmp_time_exceeded`]). A switch with a subnet answers ARP
//! requests for its gateway address (the first host, `weft_proto::model::validate::gateway`)
//! from MAC [`gateway_mac`] (`0a:58:` + the IPv4 address, as Kubernetes CNIs do), unless a
//! port's own responder (a flow of higher priority) answers for that address.

use std::net::Ipv4Addr;

use weft_openflow::flow::{Action, Controller, Flow, Mac};
use weft_openflow::meter::{BandType, Meter, MeterBand, MeterUnit};

use super::{arp, Stage};
use crate::ids::Ids;
use crate::view::Switch;

/// Opcode of the gateway ARP handler; arguments: gateway IPv4 (4 bytes), MAC (6 bytes).
pub const OP_ARP_GATEWAY: u32 = 1;
/// The meter of the gateway ARP handler (name in [`crate::ids::METERS`]).
pub const METER_ARP: &str = "pinctrl-arp";
/// Opcode of the ICMP time-exceeded handler; arguments: the router port's IPv4 (4 bytes,
/// the error's source) and MAC (6 bytes).
pub const OP_ICMP_TIME_EXCEEDED: u32 = 2;
/// The meter of the router's ICMP error handlers (name in [`crate::ids::METERS`]).
pub const METER_ICMP: &str = "pinctrl-icmp";
/// Opcode of the next-hop ARP request ([`crate::pinctrl::neigh`]); arguments: the router
/// port's MAC (6), its switch's datapath key (4), the router-type switch port's key (4).
pub const OP_ARP_RESOLVE: u32 = 3;
/// Opcode of the ARP reply learner; arguments: router key (4), router port key (4).
pub const OP_ARP_LEARN: u32 = 4;
/// The meter of both neighbour handlers.
pub const METER_NEIGH: &str = "pinctrl-neigh";
/// Opcode of the ACL reject handler; arguments: direction (1 byte), ACL cookie (8 bytes).
pub const OP_ACL_REJECT: u32 = 5;
/// Opcode of the ACL log handler; arguments: direction, verdict (1 byte each), ACL cookie.
pub const OP_ACL_LOG: u32 = 6;
/// The meter of ACL logging (copies of packets to the agent).
pub const METER_ACL_LOG: &str = "pinctrl-acl-log";
/// The meter of ACL rejects.
pub const METER_ACL_REJECT: &str = "pinctrl-acl-reject";
/// Opcode of the router port MTU handler ([`crate::pinctrl::mtu`]); arguments in
/// [`crate::pipeline::mtu::userdata`]: the output port's MTU (2), the input router port's
/// IPv4 (4) and MAC (6), the router's key (4), the input port's key (4), the output switch's
/// key (4) and its router-type port's key (4). Metered by [`METER_ICMP`].
pub const OP_ICMP_FRAG_NEEDED: u32 = 10;
/// Opcode of the load balancer health check answers ([`crate::lb_health`]); no
/// arguments. 12..14 are the LB's.
pub const OP_LB_HEALTH: u32 = 12;
/// The meter of health check answers.
pub const METER_LB_HEALTH: &str = "pinctrl-lb-health";
/// Packets per second each handler's meter lets through to the controller.
pub const METER_RATE_PPS: u32 = 100;
/// Below the per-port responders (50): a port that owns the address answers itself.
pub const PRIO_GATEWAY_ARP: u16 = 40;

/// `0a:58:a.b.c.d`.
pub fn gateway_mac(ip: Ipv4Addr) -> Mac {
    let o = ip.octets();
    Mac([0x0a, 0x58, o[0], o[1], o[2], o[3]])
}

/// The gateway address of a switch with a subnet.
pub fn gateway_ip(sw: &Switch) -> Option<Ipv4Addr> {
    let s = sw.subnet?;
    if s.len >= 31 {
        return None;
    }
    Some(Ipv4Addr::from(u32::from(s.network()) + 1))
}

/// The userdata of a gateway ARP punt.
pub fn arp_gateway_userdata(ip: Ipv4Addr, mac: Mac) -> Vec<u8> {
    let mut u = OP_ARP_GATEWAY.to_be_bytes().to_vec();
    u.extend_from_slice(&ip.octets());
    u.extend_from_slice(&mac.0);
    u
}

/// Every handler's meter (installed before the flows that use them).
pub fn meters(ids: &Ids) -> Vec<Meter> {
    crate::ids::METERS
        .iter()
        .filter_map(|name| ids.meter(name))
        .map(|id| Meter {
            id,
            unit: MeterUnit::Pktps,
            burst: false,
            stats: true,
            bands: vec![MeterBand {
                kind: BandType::Drop,
                rate: METER_RATE_PPS,
                burst_size: 0,
            }],
        })
        .collect()
}

/// `controller(userdata=OP meter=pinctrl-neigh)` for a neighbour handler (none without the
/// meter).
pub fn neigh(ids: &Ids, userdata: Vec<u8>) -> Option<Action> {
    let meter = ids.meter(METER_NEIGH)?;
    Some(Action::Controller(Controller {
        max_len: u16::MAX,
        userdata,
        meter_id: Some(meter),
        ..Controller::default()
    }))
}

/// The userdata of an ICMP time-exceeded punt from router port `ip`/`mac`.
pub fn icmp_time_exceeded_userdata(ip: Ipv4Addr, mac: Mac) -> Vec<u8> {
    let mut u = OP_ICMP_TIME_EXCEEDED.to_be_bytes().to_vec();
    u.extend_from_slice(&ip.octets());
    u.extend_from_slice(&mac.0);
    u
}

/// The controller action that sends an ICMP time exceeded from router port `ip`/`mac` for
/// the packet (none without the meter).
pub fn icmp_time_exceeded(ids: &Ids, ip: Ipv4Addr, mac: Mac) -> Option<Action> {
    let meter = ids.meter(METER_ICMP)?;
    Some(Action::Controller(Controller {
        max_len: u16::MAX,
        userdata: icmp_time_exceeded_userdata(ip, mac),
        meter_id: Some(meter),
        ..Controller::default()
    }))
}

/// The switch's gateway ARP punt (none without a subnet or a meter).
pub fn gateway_arp(sw: &Switch, ids: &Ids, cookie: u64) -> Vec<Flow> {
    let (Some(ip), Some(meter)) = (gateway_ip(sw), ids.meter(METER_ARP)) else {
        return Vec::new();
    };
    vec![Flow {
        table: Stage::ArpNd.table(),
        priority: PRIO_GATEWAY_ARP,
        cookie,
        matches: arp::request_for(sw, ip),
        actions: vec![Action::Controller(Controller {
            max_len: u16::MAX,
            userdata: arp_gateway_userdata(ip, gateway_mac(ip)),
            meter_id: Some(meter),
            ..Controller::default()
        })],
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::Ipv4Prefix;

    /// The address answered here is the default gateway the CNI gives pods.
    #[test]
    fn gateway_is_the_one_pods_route_via() {
        for subnet in [
            "10.0.0.0/24",
            "10.20.0.0/16",
            "192.168.7.0/30",
            "10.0.0.0/31",
            "10.0.0.5/32",
        ] {
            let p: Ipv4Prefix = subnet.parse().unwrap();
            let sw = Switch {
                name: "sw".into(),
                vni: 1,
                key: 1,
                subnet: Some(p),
                mtu: 0,
                load_balancers: vec![],
            };
            assert_eq!(
                gateway_ip(&sw),
                crate::cni::spec::gateway_of(subnet),
                "{subnet}"
            );
        }
        assert_eq!(
            gateway_mac(Ipv4Addr::new(10, 30, 0, 1)).to_string(),
            "0a:58:0a:1e:00:01"
        );
    }
}
