//! Switch load balancers (stages lb-vip 34, lb-dnat 36, lb-out 65): a new connection to a
//! VIP picks a backend in a `selection_method=hash` select group and is DNATed by conntrack
//! in the client port's zone (`reg13`); replies are un-DNATed on the client's chassis, in the
//! same zone, on their way out to the client. Established connections keep their backend
//! whatever the group says now: only `+new` packets reach the group.
//!
//! Per switch (owner = the switch), for each VIP of each load balancer the switch names
//! (rules parsed by [`weft_proto::model::load_balancer`]); priority [`PRIO_VIP_PORT`] for a
//! VIP with a port (`ip,nw_dst=VIP,tcp,tp_dst=PORT`), [`PRIO_VIP`] for a port-less one
//! (`ip,nw_dst=VIP`):
//! - lb-vip, `ct_state=-trk` → `ct(zone=reg13,nat,table=lb-learn)`: the conntrack lookup that
//!   applies an established connection's DNAT (skipped when an earlier stage, ct-in, already
//!   tracked the packet: then it costs no recirculation);
//! - lb-dnat, `ct_state=+new+trk` → `group:G`, one bucket per backend:
//!   `ct(commit,zone=reg13,nat(dst=BACKEND),table=lb-hairpin)`; a VIP without backends
//!   drops new connections.
//!
//! Per local port of a switch that names a load balancer (owner = the port), lb-out:
//! `reg15=PORT,ct_state=-trk,ip` → `ct(zone=ZONE(port),nat,table=commit-out)`, which turns a
//! backend's reply back into the VIP's. Packets already tracked on this pass (the DNATed
//! request when client and backend share a chassis, or a to-lport ACL's ct-out) skip it.
//!
//! Hairpin (a backend connecting to its own VIP, see [`hairpin_flows`]): SNATed to the VIP
//! in the switch's hairpin zone ([`crate::ids::Ids::hairpin_zone`]) so the backend's reply
//! comes back through the LB; the output stage sends a packet going back out the VIF it
//! came from with `IN_PORT`.
//!
//! Recirculations: a new connection 2 (lookup, commit), an established one 1, a reply 1 on
//! the client's chassis. Order relative to the ACL stages: ct-in (26) before lb-vip, the
//! from-lport ACL verdict (30-31) before lb-dnat, ct-out (61) before lb-out; see
//! docs/architecture.md, "Recirculation budget". SCTP VIPs with a port get no flows yet (the
//! OpenFlow layer has no SCTP port match).

use std::net::IpAddr;

use weft_openflow::codec::nxm::{
    nxm_nx_reg, NXM_NX_IPV6_DST, NXM_NX_IPV6_SRC, NXM_OF_ETH_TYPE, NXM_OF_IP_DST, NXM_OF_IP_PROTO,
    NXM_OF_IP_SRC, NXM_OF_TCP_DST, NXM_OF_UDP_DST, OXM_OF_METADATA,
};
use weft_openflow::flow::{
    ct_state, Action, Controller, Ct, CtZone, Flow, Group, GroupType, Learn, LearnSpec, Match,
    MatchField, Nat, NatKind, SelectGroup, SetField, SubField,
};
use weft_proto::model::load_balancer::{Endpoint, VipRule};

use super::l2::metadata;
use super::{cookie_kind, fnv1a64, punt, reg, CompileInput, Stage};
use crate::view::{LoadBalancer, Port, Switch};

/// Priority of a VIP with a port.
pub const PRIO_VIP_PORT: u16 = 120;
/// Priority of a port-less VIP.
pub const PRIO_VIP: u16 = 110;
/// Priority of the hairpin flows (above the VIP lookups they must win over).
pub const PRIO_HAIRPIN: u16 = 130;
/// Priority of the output stage's hairpin flow (above the port's `output:VIF`).
pub const PRIO_HAIRPIN_OUTPUT: u16 = 110;
/// Priority of the lb-out reply lookup.
pub const PRIO_OUT: u16 = 100;
/// Priority of the learned affinity flows in lb-affinity.
pub const PRIO_LEARNED: u16 = 100;
/// How far above its VIP's lb-dnat flow a backend's affinity flow is.
pub const PRIO_AFFINITY_BOOST: u16 = 5;
/// The register a learned affinity flow loads with the backend's key ([`affinity_key`]);
/// 0 = no affinity yet.
pub const REG_AFFINITY: u8 = 2;

const ETH_IP: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
pub(super) const PROTO_TCP: u8 = 6;
pub(super) const PROTO_UDP: u8 = 17;
const PROTO_SCTP: u8 = 132;

/// The zone register as a ct zone: `NXM_NX_REG13[0..15]`.
fn zone_reg() -> CtZone {
    CtZone::Field(SubField::bits(nxm_nx_reg(reg::ZONE), 0, 15))
}

/// The IP protocol number of an LB protocol (tcp by default).
pub(super) fn ip_proto(protocol: &str) -> u8 {
    match protocol {
        "udp" => PROTO_UDP,
        "sctp" => PROTO_SCTP,
        _ => PROTO_TCP,
    }
}

/// The match of traffic to `vip` (`None`: not expressible, an SCTP port).
fn vip_match(sw: &Switch, vip: &Endpoint, protocol: &str) -> Option<Vec<MatchField>> {
    let mut m = vec![metadata(sw)];
    match vip.ip {
        IpAddr::V4(a) => {
            m.push(MatchField::EthType(ETH_IP));
            m.push(MatchField::Ipv4Dst {
                value: a,
                mask: None,
            });
        }
        IpAddr::V6(a) => {
            m.push(MatchField::EthType(ETH_IPV6));
            m.push(MatchField::Ipv6Dst {
                value: a,
                mask: None,
            });
        }
    }
    if let Some(port) = vip.port {
        let proto = ip_proto(protocol);
        m.push(MatchField::IpProto(proto));
        m.push(match proto {
            PROTO_TCP => MatchField::TcpDst {
                value: port,
                mask: None,
            },
            PROTO_UDP => MatchField::UdpDst {
                value: port,
                mask: None,
            },
            _ => return None,
        });
    }
    Some(m)
}

fn ct_state(value: u8, mask: u8) -> MatchField {
    MatchField::CtState {
        value,
        mask: Some(mask),
    }
}

/// The fields the select group hashes (the connection's 5-tuple, as OVS names them).
pub(super) fn hash_fields(vip: &Endpoint, protocol: &str) -> Vec<String> {
    let (src, dst) = match vip.ip {
        IpAddr::V4(_) => ("ip_src", "ip_dst"),
        IpAddr::V6(_) => ("ipv6_src", "ipv6_dst"),
    };
    let mut f = vec![src.to_string(), dst.to_string()];
    if vip.port.is_some() {
        let p = if protocol == "udp" { "udp" } else { "tcp" };
        f.push(format!("{p}_src"));
        f.push(format!("{p}_dst"));
    }
    f
}

/// The 32-bit key of `backend` of `vip` that a learned affinity flow loads into
/// [`REG_AFFINITY`] (never 0): a hash of both, so a key names the same backend whatever
/// the backend list's order becomes.
pub fn affinity_key(vip: &Endpoint, backend: &Endpoint) -> u32 {
    let h = fnv1a64(format!("{vip}>{backend}").as_bytes());
    ((h >> 32) as u32 ^ h as u32) | 1
}

/// The cookie of flows the datapath learns for `vip` (kind [`cookie_kind::LEARNED`]).
pub fn learned_cookie(sw: &Switch, vip: &Endpoint) -> u64 {
    (u64::from(cookie_kind::LEARNED) << 56)
        | (fnv1a64(format!("{}/{vip}", sw.name).as_bytes()) & 0x00ff_ffff_ffff_ffff)
}

/// The `learn` action of one backend of a VIP with session affinity: a flow in lb-affinity
/// (idle timeout `timeout` seconds) that matches this client and VIP (datapath, source
/// address, VIP address, protocol and VIP port, taken from the packet before DNAT) and
/// loads the backend's [`affinity_key`] into [`REG_AFFINITY`].
fn affinity_learn(
    sw: &Switch,
    vip: &Endpoint,
    backend: &Endpoint,
    protocol: &str,
    timeout: u32,
) -> Action {
    let whole = SubField::whole;
    let (eth, src, dst) = match vip.ip {
        IpAddr::V4(_) => (ETH_IP, NXM_OF_IP_SRC, NXM_OF_IP_DST),
        IpAddr::V6(_) => (ETH_IPV6, NXM_NX_IPV6_SRC, NXM_NX_IPV6_DST),
    };
    let mut specs = vec![
        LearnSpec::MatchImm {
            dst: whole(NXM_OF_ETH_TYPE),
            value: u128::from(eth),
        },
        LearnSpec::Match {
            dst: whole(OXM_OF_METADATA),
            src: whole(OXM_OF_METADATA),
        },
        LearnSpec::Match {
            dst: whole(src),
            src: whole(src),
        },
        LearnSpec::Match {
            dst: whole(dst),
            src: whole(dst),
        },
    ];
    if vip.port.is_some() {
        let proto = ip_proto(protocol);
        let port = if proto == PROTO_UDP {
            NXM_OF_UDP_DST
        } else {
            NXM_OF_TCP_DST
        };
        specs.push(LearnSpec::MatchImm {
            dst: whole(NXM_OF_IP_PROTO),
            value: u128::from(proto),
        });
        specs.push(LearnSpec::Match {
            dst: whole(port),
            src: whole(port),
        });
    }
    specs.push(LearnSpec::LoadImm {
        value: u128::from(affinity_key(vip, backend)),
        dst: SubField::whole(nxm_nx_reg(REG_AFFINITY)),
    });
    Action::Learn(Learn {
        table: Stage::LbAffinity.table(),
        idle_timeout: u16::try_from(timeout).unwrap_or(u16::MAX),
        priority: PRIO_LEARNED,
        cookie: learned_cookie(sw, vip),
        specs,
        ..Learn::default()
    })
}

/// One backend's bucket: commit the connection with its DNAT, in the client port's zone.
fn bucket(backend: &Endpoint) -> Vec<Action> {
    vec![Action::Ct(Ct {
        commit: true,
        table: Some(Stage::LbDnat.next()),
        zone: zone_reg(),
        nat: Some(Nat {
            kind: Some(NatKind::Dst),
            addr_min: Some(backend.ip),
            port_min: backend.port,
            ..Nat::default()
        }),
        ..Ct::default()
    })]
}

/// The match of traffic from `backend` (its address and, for a VIP with a port, its
/// protocol and source port) plus `dst`.
fn from_backend(sw: &Switch, backend: &Endpoint, protocol: &str, dst: IpAddr) -> Vec<MatchField> {
    let mut m = vec![metadata(sw)];
    match (backend.ip, dst) {
        (IpAddr::V4(b), IpAddr::V4(d)) => {
            m.push(MatchField::EthType(ETH_IP));
            m.push(MatchField::Ipv4Src {
                value: b,
                mask: None,
            });
            m.push(MatchField::Ipv4Dst {
                value: d,
                mask: None,
            });
        }
        (IpAddr::V6(b), IpAddr::V6(d)) => {
            m.push(MatchField::EthType(ETH_IPV6));
            m.push(MatchField::Ipv6Src {
                value: b,
                mask: None,
            });
            m.push(MatchField::Ipv6Dst {
                value: d,
                mask: None,
            });
        }
        _ => {}
    }
    if let Some(port) = backend.port {
        let proto = ip_proto(protocol);
        m.push(MatchField::IpProto(proto));
        m.push(if proto == PROTO_UDP {
            MatchField::UdpSrc {
                value: port,
                mask: None,
            }
        } else {
            MatchField::TcpSrc {
                value: port,
                mask: None,
            }
        });
    }
    m
}

/// Hairpin (a backend connecting to its own VIP) for `backend` of `vip`, SNATed to the VIP
/// in the switch's hairpin zone `hz` so that the reply comes back through the LB:
/// - lb-hairpin, request (`+trk-rpl`, source = destination = the backend, to its port) →
///   `ct(commit,zone=hz,nat(src=VIP),table=commit-in)`;
/// - lb-vip, the backend's reply to the VIP (`-trk`, from its port) → `ct(zone=hz,nat,
///   table=lb-learn)` (un-SNAT), then lb-hairpin, `+rpl+trk,ct_zone=hz` →
///   `ct(zone=reg13,nat,table=commit-in)` (un-DNAT: the source is the VIP again).
fn hairpin_flows(
    sw: &Switch,
    vip: &Endpoint,
    backend: &Endpoint,
    protocol: &str,
    hz: u16,
    cookie: u64,
    flows: &mut Vec<Flow>,
) {
    if backend.ip.is_ipv4() != vip.ip.is_ipv4()
        || (backend.port.is_some() && ip_proto(protocol) == PROTO_SCTP)
    {
        return;
    }
    // Request: from the backend to itself (after DNAT), to the backend's port.
    let mut req = vec![metadata(sw)];
    let mut reply_match = from_backend(sw, backend, protocol, backend.ip);
    match backend.ip {
        IpAddr::V4(b) => {
            req.push(MatchField::EthType(ETH_IP));
            req.push(MatchField::Ipv4Src {
                value: b,
                mask: None,
            });
            req.push(MatchField::Ipv4Dst {
                value: b,
                mask: None,
            });
        }
        IpAddr::V6(b) => {
            req.push(MatchField::EthType(ETH_IPV6));
            req.push(MatchField::Ipv6Src {
                value: b,
                mask: None,
            });
            req.push(MatchField::Ipv6Dst {
                value: b,
                mask: None,
            });
        }
    }
    if let Some(port) = backend.port {
        let proto = ip_proto(protocol);
        req.push(MatchField::IpProto(proto));
        req.push(if proto == PROTO_UDP {
            MatchField::UdpDst {
                value: port,
                mask: None,
            }
        } else {
            MatchField::TcpDst {
                value: port,
                mask: None,
            }
        });
    }
    req.push(ct_state(ct_state::TRK, ct_state::TRK | ct_state::RPL));
    flows.push(Flow {
        table: Stage::LbHairpin.table(),
        priority: PRIO_HAIRPIN,
        cookie,
        matches: Match::from_fields(req),
        actions: vec![Action::Ct(Ct {
            commit: true,
            table: Some(Stage::LbHairpin.next()),
            zone: CtZone::Imm(hz),
            nat: Some(Nat {
                kind: Some(NatKind::Src),
                addr_min: Some(vip.ip),
                ..Nat::default()
            }),
            ..Ct::default()
        })],
    });
    // Reply, un-SNAT: from the backend's port to the VIP.
    let mut un_snat = from_backend(sw, backend, protocol, vip.ip);
    un_snat.push(ct_state(0, ct_state::TRK));
    flows.push(Flow {
        table: Stage::LbVip.table(),
        priority: PRIO_HAIRPIN,
        cookie,
        matches: Match::from_fields(un_snat),
        actions: vec![Action::Ct(Ct {
            table: Some(Stage::LbVip.next()),
            zone: CtZone::Imm(hz),
            nat: Some(Nat::default()),
            ..Ct::default()
        })],
    });
    // Reply, un-DNAT in the client's (= the backend port's) zone.
    reply_match.push(MatchField::CtZone(hz));
    reply_match.push(ct_state(
        ct_state::TRK | ct_state::RPL,
        ct_state::TRK | ct_state::RPL,
    ));
    flows.push(Flow {
        table: Stage::LbHairpin.table(),
        priority: PRIO_HAIRPIN,
        cookie,
        matches: Match::from_fields(reply_match),
        actions: vec![Action::Ct(Ct {
            table: Some(Stage::LbHairpin.next()),
            zone: zone_reg(),
            nat: Some(Nat::default()),
            ..Ct::default()
        })],
    });
}

/// The flows and group of one VIP of `lb` on `sw`.
fn vip_flows(
    input: &CompileInput,
    sw: &Switch,
    lb: &LoadBalancer,
    rule: &VipRule,
    cookie: u64,
    flows: &mut Vec<Flow>,
    groups: &mut Vec<Group>,
) {
    let protocol = lb.rules.protocol;
    // Only live backends: those a health check reported offline take no new connection.
    let rule = &VipRule {
        vip: rule.vip,
        backends: lb.live_backends(rule).into_iter().copied().collect(),
    };
    let Some(m) = vip_match(sw, &rule.vip, protocol) else {
        return;
    };
    let priority = if rule.vip.port.is_some() {
        PRIO_VIP_PORT
    } else {
        PRIO_VIP
    };
    let mut lookup = m.clone();
    lookup.push(ct_state(0, ct_state::TRK));
    flows.push(Flow {
        table: Stage::LbVip.table(),
        priority,
        cookie,
        matches: Match::from_fields(lookup),
        actions: vec![Action::Ct(Ct {
            table: Some(Stage::LbVip.next()),
            zone: zone_reg(),
            nat: Some(Nat::default()),
            ..Ct::default()
        })],
    });
    let mut new = m;
    new.push(ct_state(
        ct_state::NEW | ct_state::TRK,
        ct_state::NEW | ct_state::TRK,
    ));
    if let Some(hz) = input.ids.hairpin_zone(&sw.name) {
        for b in &rule.backends {
            hairpin_flows(sw, &rule.vip, b, protocol, hz, cookie, flows);
        }
    }
    let vip = rule.vip.to_string();
    let affinity = lb.rules.affinity_timeout;
    let actions = match input.ids.lb_group(&sw.name, &lb.name, &vip) {
        Some(id) if !rule.backends.is_empty() => {
            groups.push(Group {
                id,
                kind: GroupType::Select(SelectGroup {
                    hash_fields: hash_fields(&rule.vip, protocol),
                    ..SelectGroup::default()
                }),
                buckets: rule
                    .backends
                    .iter()
                    .map(|b| match affinity {
                        // OVS runs a bucket as an action set (no `learn` there): the
                        // bucket names the backend and its lb-dnat flow learns and commits.
                        Some(_) => vec![
                            Action::SetField(SetField::Reg {
                                index: REG_AFFINITY,
                                value: affinity_key(&rule.vip, b),
                            }),
                            Action::Resubmit {
                                table: Stage::LbDnat.table(),
                            },
                        ],
                        None => bucket(b),
                    })
                    .collect(),
            });
            vec![Action::Group(id)]
        }
        // No backend: rejected (`options:reject=true`: TCP RST, ICMP unreachable, by the
        // ACL reject handler, as a from-lport reject) or dropped.
        _ if rule.backends.is_empty() && lb.rules.reject => reject_actions(input, sw, &rule.vip),
        // No group id yet: new connections are dropped.
        _ => Vec::new(),
    };
    if let (Some(t), false) = (affinity, rule.backends.is_empty()) {
        affinity_flows(sw, rule, protocol, t, &new, priority, cookie, flows);
    }
    flows.push(Flow {
        table: Stage::LbDnat.table(),
        priority,
        cookie,
        matches: Match::from_fields(new),
        actions,
    });
}

/// Session affinity of `rule` (its new connections match `new`; `timeout` seconds):
/// - lb-learn looks the client up in what lb-affinity learned (`reg2=0,
///   resubmit(,lb-affinity)`: a learned flow loads `reg2` with its backend's
///   [`affinity_key`]);
/// - the group's buckets load `reg2` with their backend's key and resubmit to lb-dnat
///   (OVS executes a bucket as an action set, where `learn` is not allowed);
/// - lb-dnat, per backend, above the group flow: `reg2=KEY` → `learn(lb-affinity, this
///   client and VIP → reg2=KEY, idle_timeout), ct(commit,nat(dst=BACKEND))`, for a
///   connection the group sent there and for one whose client has the backend learned
///   (which refreshes it).
///
/// A learned key whose backend is gone matches nothing: the group picks a new backend, and
/// that one is learned.
#[allow(clippy::too_many_arguments)]
fn affinity_flows(
    sw: &Switch,
    rule: &VipRule,
    protocol: &str,
    timeout: u32,
    new: &[MatchField],
    priority: u16,
    cookie: u64,
    flows: &mut Vec<Flow>,
) {
    flows.push(Flow {
        table: Stage::LbLearn.table(),
        priority,
        cookie,
        matches: Match::from_fields(new.to_vec()),
        actions: vec![
            Action::SetField(SetField::Reg {
                index: REG_AFFINITY,
                value: 0,
            }),
            Action::Resubmit {
                table: Stage::LbAffinity.table(),
            },
            Stage::LbLearn.goto_next(),
        ],
    });
    for b in &rule.backends {
        let mut m = new.to_vec();
        m.push(MatchField::Reg {
            index: REG_AFFINITY,
            value: affinity_key(&rule.vip, b),
            mask: None,
        });
        let mut actions = vec![affinity_learn(sw, &rule.vip, b, protocol, timeout)];
        actions.extend(bucket(b));
        flows.push(Flow {
            table: Stage::LbDnat.table(),
            priority: priority + PRIO_AFFINITY_BOOST,
            cookie,
            matches: Match::from_fields(m),
            actions,
        });
    }
}

/// `options:reject=true` for a VIP without a live backend: the packet goes to the ACL
/// reject handler ([`crate::pinctrl::acl::reject`]) as a from-lport reject, answered out of
/// the VIF it came in on: TCP gets a RST, anything else an ICMP unreachable.
fn reject_actions(input: &CompileInput, sw: &Switch, vip: &Endpoint) -> Vec<Action> {
    let Some(m) = input.ids.meter(punt::METER_ACL_REJECT) else {
        return Vec::new();
    };
    let mut userdata = punt::OP_ACL_REJECT.to_be_bytes().to_vec();
    userdata.push(0);
    userdata.extend_from_slice(&learned_cookie(sw, vip).to_be_bytes());
    vec![Action::Controller(Controller {
        max_len: u16::MAX,
        userdata,
        meter_id: Some(m),
        ..Controller::default()
    })]
}

/// Priority of the health check answers' punt.
pub const PRIO_SVC_MONITOR: u16 = 200;

/// On a switch with an LB that has health checks: the punt stage sends whatever a port sends to
/// the service address ([`weft_proto::model::load_balancer::SVC_MONITOR_IP`]: the answers
/// to [`crate::lb_health`]'s probes) to pinctrl, before port security and conntrack (the
/// probes never went through conntrack, so their answers would be invalid there).
/// Every LB with health checks on the switch emits the same flow (the state keeps one).
pub fn svc_monitor_flows(
    input: &CompileInput,
    sw: &Switch,
    lb: &LoadBalancer,
    cookie: u64,
) -> Vec<Flow> {
    let Some(meter) = input.ids.meter(punt::METER_LB_HEALTH) else {
        return Vec::new();
    };
    if lb.rules.health_checks.is_empty() {
        return Vec::new();
    }
    vec![Flow {
        table: Stage::Punt.table(),
        priority: PRIO_SVC_MONITOR,
        cookie,
        matches: Match::from_fields([
            metadata(sw),
            MatchField::EthType(ETH_IP),
            MatchField::Ipv4Dst {
                value: weft_proto::model::load_balancer::SVC_MONITOR_IP,
                mask: None,
            },
        ]),
        actions: vec![Action::Controller(Controller {
            max_len: 256,
            userdata: punt::OP_LB_HEALTH.to_be_bytes().to_vec(),
            meter_id: Some(meter),
            ..Controller::default()
        })],
    }]
}

/// The lb-vip, lb-learn and lb-dnat flows, the hairpin flows and the select groups of `lb`
/// on `sw` (owner: [`crate::pipeline::Owner::LoadBalancer`], one per switch and LB).
pub fn lb_flows(
    input: &CompileInput,
    sw: &Switch,
    lb: &LoadBalancer,
    cookie: u64,
) -> (Vec<Flow>, Vec<Group>) {
    let mut flows = svc_monitor_flows(input, sw, lb, cookie);
    let mut groups = Vec::new();
    for rule in &lb.rules.vips {
        vip_flows(input, sw, lb, rule, cookie, &mut flows, &mut groups);
    }
    (flows, groups)
}

/// The lb-out flows of local port `port` (zone `zone`, VIF `ofport`) on `sw`: replies
/// un-DNATed in the port's zone, and in output a hairpinned packet (one that goes back to
/// the VIF it came from) sent with `IN_PORT` (OpenFlow drops `output:N` to the input port).
/// None when the switch names no load balancer.
pub fn port_out_flows(sw: &Switch, port: &Port, zone: u16, ofport: u32, cookie: u64) -> Vec<Flow> {
    if sw.load_balancers.is_empty() {
        return Vec::new();
    }
    let hairpin_out = Flow {
        table: Stage::Output.table(),
        priority: PRIO_HAIRPIN_OUTPUT,
        cookie,
        matches: Match::from_fields([
            metadata(sw),
            MatchField::Reg {
                index: reg::OUTPORT,
                value: port.key,
                mask: None,
            },
            MatchField::InPort(ofport),
        ]),
        actions: vec![Action::Output(weft_openflow::flow::ports::IN_PORT)],
    };
    let mut flows = vec![hairpin_out];
    flows.extend([ETH_IP, ETH_IPV6].into_iter().map(|eth| Flow {
        table: Stage::LbOut.table(),
        priority: PRIO_OUT,
        cookie,
        matches: Match::from_fields([
            metadata(sw),
            MatchField::Reg {
                index: reg::OUTPORT,
                value: port.key,
                mask: None,
            },
            MatchField::EthType(eth),
            ct_state(0, ct_state::TRK),
        ]),
        actions: vec![Action::Ct(Ct {
            table: Some(Stage::LbOut.next()),
            zone: CtZone::Imm(zone),
            nat: Some(Nat::default()),
            ..Ct::default()
        })],
    }));
    flows
}
