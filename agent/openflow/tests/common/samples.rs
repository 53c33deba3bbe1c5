//! Flows and groups shared by the integration tests: together they use every
//! [`MatchField`] and [`Action`] variant, and every flow is valid for Open vSwitch
//! (prerequisites included).

use std::net::Ipv4Addr;

use weft_openflow::flow::{
    ports, Action, Field, Flow, Group, GroupType, Mac, Match, MatchField, SetField,
};

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test ip")
}
pub fn mac(s: &str) -> Mac {
    s.parse().expect("test mac")
}

pub fn flow(table: u8, priority: u16, cookie: u64, m: Vec<MatchField>, a: Vec<Action>) -> Flow {
    Flow {
        table,
        priority,
        cookie,
        matches: Match::from_fields(m),
        actions: a,
    }
}

/// Flood group used by the sample flows.
pub fn sample_groups() -> Vec<Group> {
    vec![
        Group {
            id: 1,
            kind: GroupType::All,
            buckets: vec![
                vec![Action::Output(1)],
                vec![
                    Action::SetField(SetField::TunId(0x3e9)),
                    Action::SetField(SetField::TunDst(ip("192.168.1.2"))),
                    Action::Output(3),
                ],
                vec![Action::Resubmit { table: 60 }],
            ],
        },
        Group {
            id: 2,
            kind: GroupType::All,
            buckets: vec![],
        },
    ]
}

/// Flows that together use every MatchField and Action variant, each valid for OVS.
pub fn sample_flows() -> Vec<Flow> {
    vec![
        flow(
            0,
            100,
            0x0100_0000_0000_0005,
            vec![MatchField::InPort(5)],
            vec![
                Action::SetField(SetField::Reg {
                    index: 14,
                    value: 5,
                }),
                Action::SetField(SetField::Metadata(0x3e9)),
                Action::GotoTable(10),
            ],
        ),
        flow(
            0,
            100,
            0,
            vec![
                MatchField::TunId {
                    value: 0x3e9,
                    mask: None,
                },
                MatchField::TunSrc(ip("192.168.1.1")),
                MatchField::TunDst(ip("192.168.1.2")),
            ],
            vec![
                Action::SetField(SetField::Metadata(0x3e9)),
                Action::Resubmit { table: 50 },
            ],
        ),
        flow(
            10,
            90,
            0,
            vec![
                MatchField::Reg {
                    index: 14,
                    value: 5,
                    mask: None,
                },
                MatchField::Reg {
                    index: 15,
                    value: 7,
                    mask: Some(0xff),
                },
                MatchField::Reg {
                    index: 0,
                    value: 1,
                    mask: None,
                },
                MatchField::EthSrc {
                    value: mac("00:00:00:00:00:01"),
                    mask: None,
                },
                MatchField::Metadata {
                    value: 0x3e9,
                    mask: Some(0xffff),
                },
                MatchField::TunId {
                    value: 0x5,
                    mask: Some(0xff),
                },
            ],
            vec![Action::GotoTable(20)],
        ),
        flow(
            20,
            100,
            0xdead_beef_0000_0001,
            vec![
                MatchField::EthType(0x0806),
                MatchField::ArpOp(1),
                MatchField::ArpTpa {
                    value: ip("10.0.0.2"),
                    mask: None,
                },
                MatchField::ArpSpa {
                    value: ip("10.0.0.0"),
                    mask: Some(ip("255.255.255.0")),
                },
                MatchField::ArpSha(mac("00:00:00:00:00:03")),
                MatchField::ArpTha(mac("00:00:00:00:00:04")),
                MatchField::Metadata {
                    value: 0x3e9,
                    mask: None,
                },
            ],
            vec![
                Action::Move {
                    src: Field::EthSrc,
                    dst: Field::EthDst,
                },
                Action::SetField(SetField::EthSrc(mac("00:00:00:00:00:02"))),
                Action::SetField(SetField::ArpOp(2)),
                Action::Move {
                    src: Field::ArpSha,
                    dst: Field::ArpTha,
                },
                Action::SetField(SetField::ArpSha(mac("00:00:00:00:00:02"))),
                Action::Move {
                    src: Field::ArpSpa,
                    dst: Field::ArpTpa,
                },
                Action::SetField(SetField::ArpSpa(ip("10.0.0.2"))),
                Action::SetField(SetField::ArpTpa(ip("10.0.0.9"))),
                Action::SetField(SetField::ArpTha(mac("00:00:00:00:00:09"))),
                Action::Output(ports::IN_PORT),
            ],
        ),
        flow(
            50,
            50,
            0,
            vec![
                MatchField::Metadata {
                    value: 0x3e9,
                    mask: None,
                },
                MatchField::EthDst {
                    value: Mac::MULTICAST_BIT,
                    mask: Some(Mac::MULTICAST_BIT),
                },
            ],
            vec![Action::Group(1)],
        ),
        flow(
            50,
            60,
            0,
            vec![
                MatchField::Metadata {
                    value: 0x3e9,
                    mask: None,
                },
                MatchField::EthDst {
                    value: mac("00:00:00:00:00:09"),
                    mask: None,
                },
            ],
            vec![
                Action::SetField(SetField::EthDst(mac("00:00:00:00:00:0a"))),
                Action::SetField(SetField::TunId(0x3e9)),
                Action::SetField(SetField::TunDst(ip("192.168.1.2"))),
                Action::Output(3),
            ],
        ),
        flow(
            10,
            80,
            0,
            vec![
                MatchField::EthType(0x0800),
                MatchField::IpProto(6),
                MatchField::Ipv4Src {
                    value: ip("10.0.0.0"),
                    mask: Some(ip("255.255.255.0")),
                },
                MatchField::Ipv4Dst {
                    value: ip("10.0.0.5"),
                    mask: None,
                },
            ],
            vec![
                Action::Move {
                    src: Field::Reg(1),
                    dst: Field::Reg(2),
                },
                Action::Move {
                    src: Field::TunId,
                    dst: Field::Metadata,
                },
                Action::Move {
                    src: Field::InPort,
                    dst: Field::Reg(3),
                },
                Action::Move {
                    src: Field::Reg(4),
                    dst: Field::TunDst,
                },
                Action::Output(ports::CONTROLLER),
                Action::Output(ports::LOCAL),
            ],
        ),
        flow(
            10,
            70,
            0,
            vec![MatchField::EthType(0x0800), MatchField::IpProto(47)],
            vec![Action::Group(2)],
        ),
        flow(50, 1, 0, vec![], vec![]),
    ]
}

/// `SubField` helpers for the extension samples.
pub mod sub {
    use weft_openflow::codec::nxm;
    use weft_openflow::flow::SubField;
    pub fn reg(n: u8) -> SubField {
        SubField::whole(nxm::nxm_nx_reg(n))
    }
    pub fn reg_bits(n: u8, a: u16, b: u16) -> SubField {
        SubField::bits(nxm::nxm_nx_reg(n), a, b)
    }
}

/// Flows using the conntrack, NAT, conjunction, learn, controller, IPv6 and masked
/// set_field additions; each is valid for OVS 3.1 on its own (no meters or TLV maps).
pub fn ext_flows() -> Vec<Flow> {
    use weft_openflow::codec::nxm;
    use weft_openflow::flow::{
        ct_state as cs, Controller, Ct, CtZone, Learn, LearnSpec, Nat, NatKind, SubField,
    };
    let ip4 = || MatchField::EthType(0x0800);
    let zone13 = CtZone::Field(sub::reg_bits(13, 0, 15));
    vec![
        // A packet length check into one register bit (router port MTU).
        flow(
            48,
            110,
            0,
            vec![MatchField::Metadata {
                value: 9,
                mask: None,
            }],
            vec![
                Action::CheckPktLarger {
                    len: 1414,
                    dst: sub::reg_bits(10, 2, 2),
                },
                Action::GotoTable(49),
            ],
        ),
        // A bit-range move (copy_field with offsets).
        flow(
            0,
            90,
            0,
            vec![MatchField::InPort(3)],
            vec![
                Action::MoveBits {
                    src: sub::reg_bits(14, 0, 14),
                    dst: sub::reg_bits(13, 16, 30),
                },
                Action::MoveBits {
                    src: sub::reg_bits(15, 0, 15),
                    dst: SubField::bits(nxm::nxm_nx_reg(12), 0, 15),
                },
            ],
        ),
        flow(
            26,
            100,
            0x0200_0000_0000_0001,
            vec![ip4()],
            vec![Action::Ct(Ct {
                table: Some(27),
                zone: zone13,
                nat: Some(Nat::default()),
                ..Ct::default()
            })],
        ),
        flow(
            27,
            200,
            0,
            vec![
                ip4(),
                MatchField::CtState {
                    value: cs::INV | cs::TRK,
                    mask: Some(cs::INV | cs::TRK),
                },
            ],
            vec![],
        ),
        flow(
            27,
            100,
            0,
            vec![
                ip4(),
                MatchField::CtState {
                    value: cs::EST | cs::TRK,
                    mask: Some(cs::NEW | cs::EST | cs::REL | cs::TRK),
                },
                MatchField::CtMark {
                    value: 1,
                    mask: Some(1),
                },
                MatchField::CtLabel {
                    value: 0x10,
                    mask: Some(0xf0),
                },
            ],
            vec![Action::Resubmit { table: 38 }],
        ),
        flow(
            38,
            100,
            0,
            vec![
                ip4(),
                MatchField::CtState {
                    value: cs::NEW | cs::TRK,
                    mask: Some(cs::NEW | cs::TRK),
                },
            ],
            vec![
                Action::Ct(Ct {
                    commit: true,
                    zone: zone13,
                    exec: vec![
                        Action::SetField(SetField::CtMark {
                            value: 0,
                            mask: Some(1),
                        }),
                        Action::SetField(SetField::CtLabel {
                            value: 0x5_0000_0000,
                            mask: Some(0xffff_ffff_0000_0000),
                        }),
                    ],
                    ..Ct::default()
                }),
                Action::Resubmit { table: 40 },
            ],
        ),
        flow(
            43,
            100,
            0,
            vec![
                ip4(),
                MatchField::IpProto(6),
                MatchField::Ipv4Dst {
                    value: ip("10.0.0.10"),
                    mask: None,
                },
                MatchField::TcpDst {
                    value: 80,
                    mask: None,
                },
            ],
            vec![Action::Ct(Ct {
                commit: true,
                table: Some(44),
                zone: CtZone::Imm(5),
                nat: Some(Nat {
                    kind: Some(NatKind::Dst),
                    addr_min: Some(ip("10.0.0.2").into()),
                    addr_max: Some(ip("10.0.0.3").into()),
                    port_min: Some(8080),
                    port_max: Some(8081),
                    ..Nat::default()
                }),
                ..Ct::default()
            })],
        ),
        flow(
            47,
            100,
            0,
            vec![ip4()],
            vec![
                Action::Ct(Ct {
                    commit: true,
                    table: Some(48),
                    zone: CtZone::Field(sub::reg_bits(12, 0, 15)),
                    nat: Some(Nat {
                        kind: Some(NatKind::Src),
                        addr_min: Some(ip("192.168.0.1").into()),
                        random: true,
                        ..Nat::default()
                    }),
                    ..Ct::default()
                }),
                Action::CtClear,
            ],
        ),
        flow(
            30,
            100,
            0,
            vec![
                ip4(),
                MatchField::Ipv4Src {
                    value: ip("10.0.0.1"),
                    mask: None,
                },
            ],
            vec![Action::Conjunction {
                id: 7,
                clause: 1,
                n_clauses: 2,
            }],
        ),
        flow(
            30,
            100,
            0,
            vec![
                ip4(),
                MatchField::IpProto(6),
                MatchField::TcpDst {
                    value: 0x400,
                    mask: Some(0xfc00),
                },
            ],
            vec![
                Action::Conjunction {
                    id: 7,
                    clause: 2,
                    n_clauses: 2,
                },
                Action::Conjunction {
                    id: 8,
                    clause: 1,
                    n_clauses: 3,
                },
            ],
        ),
        flow(
            30,
            100,
            0,
            vec![ip4(), MatchField::ConjId(7)],
            vec![Action::DecTtl, Action::Resubmit { table: 31 }],
        ),
        flow(
            5,
            100,
            0,
            vec![
                ip4(),
                MatchField::IpProto(17),
                MatchField::UdpSrc {
                    value: 68,
                    mask: None,
                },
                MatchField::UdpDst {
                    value: 67,
                    mask: None,
                },
            ],
            vec![
                Action::Controller(Controller {
                    userdata: vec![0, 0, 0, 1],
                    pause: true,
                    ..Controller::default()
                }),
                Action::Controller(Controller {
                    reason: 0,
                    max_len: 128,
                    controller_id: 3,
                    ..Controller::default()
                }),
            ],
        ),
        flow(
            36,
            100,
            0,
            vec![
                ip4(),
                MatchField::IpProto(6),
                MatchField::TcpSrc {
                    value: 1000,
                    mask: None,
                },
            ],
            vec![
                Action::Learn(Learn {
                    table: 91,
                    idle_timeout: 30,
                    hard_timeout: 60,
                    priority: 100,
                    cookie: 5,
                    flags: 2,
                    specs: vec![
                        LearnSpec::MatchImm {
                            dst: SubField::whole(nxm::NXM_OF_ETH_TYPE),
                            value: 0x800,
                        },
                        LearnSpec::Match {
                            dst: SubField::whole(nxm::NXM_OF_ETH_DST),
                            src: SubField::whole(nxm::NXM_OF_ETH_SRC),
                        },
                        LearnSpec::Match {
                            dst: SubField::whole(nxm::NXM_OF_IP_DST),
                            src: SubField::whole(nxm::NXM_OF_IP_SRC),
                        },
                        LearnSpec::Match {
                            dst: sub::reg(14),
                            src: sub::reg(14),
                        },
                        LearnSpec::MatchImm {
                            dst: sub::reg_bits(10, 0, 7),
                            value: 0x12,
                        },
                        LearnSpec::Load {
                            src: sub::reg(14),
                            dst: sub::reg(15),
                        },
                        LearnSpec::LoadImm {
                            value: 1,
                            dst: sub::reg_bits(10, 3, 3),
                        },
                        LearnSpec::Output {
                            src: SubField::whole(nxm::NXM_OF_IN_PORT),
                        },
                    ],
                    ..Learn::default()
                }),
                Action::Resubmit { table: 37 },
            ],
        ),
        flow(
            91,
            10,
            0,
            vec![
                ip4(),
                MatchField::IpProto(6),
                MatchField::CtState {
                    value: cs::EST | cs::TRK,
                    mask: Some(cs::EST | cs::TRK),
                },
                MatchField::CtZone(5),
                MatchField::CtNwSrc {
                    value: ip("10.0.0.1"),
                    mask: None,
                },
                MatchField::CtNwDst {
                    value: ip("10.0.0.0"),
                    mask: Some(ip("255.255.255.0")),
                },
                MatchField::CtNwProto(6),
                MatchField::CtTpSrc {
                    value: 1000,
                    mask: None,
                },
                MatchField::CtTpDst {
                    value: 80,
                    mask: None,
                },
            ],
            vec![],
        ),
        flow(
            0,
            90,
            0,
            vec![MatchField::InPort(5)],
            vec![
                Action::SetField(SetField::RegMasked {
                    index: 13,
                    value: 5,
                    mask: 0xffff,
                }),
                Action::SetField(SetField::MetadataMasked {
                    value: 0x100,
                    mask: 0xff00,
                }),
                Action::Resubmit { table: 10 },
            ],
        ),
        flow(
            20,
            100,
            0,
            vec![
                MatchField::EthType(0x86dd),
                MatchField::Ipv6Src {
                    value: "fe80::".parse().expect("v6"),
                    mask: Some("ffff:ffff:ffff:ffff::".parse().expect("v6")),
                },
                MatchField::Ipv6Dst {
                    value: "2001:db8::1".parse().expect("v6"),
                    mask: None,
                },
            ],
            vec![
                Action::SetField(SetField::Ipv6Dst("2001:db8::2".parse().expect("v6"))),
                Action::DecTtl,
                Action::Output(1),
            ],
        ),
        flow(
            20,
            110,
            0,
            vec![
                MatchField::EthType(0x86dd),
                MatchField::IpProto(58),
                MatchField::Icmpv6Type(135),
                MatchField::Icmpv6Code(0),
                MatchField::NdTarget("fe80::1".parse().expect("v6")),
                MatchField::NdSll(mac("00:00:00:00:00:01")),
            ],
            vec![
                Action::SetField(SetField::Icmpv6Type(136)),
                Action::Output(ports::IN_PORT),
            ],
        ),
        flow(
            20,
            120,
            0,
            vec![
                ip4(),
                MatchField::IpProto(1),
                MatchField::IcmpType(8),
                MatchField::IcmpCode(0),
            ],
            vec![
                Action::SetField(SetField::Ipv4Src(ip("10.0.0.254"))),
                Action::SetField(SetField::Ipv4Dst(ip("10.0.0.1"))),
                Action::Output(ports::IN_PORT),
            ],
        ),
    ]
}

/// Select groups: hashed with weights, default method, one field with a basis.
pub fn ext_groups() -> Vec<Group> {
    use weft_openflow::flow::SelectGroup;
    vec![
        Group {
            id: 10,
            kind: GroupType::Select(SelectGroup {
                hash_fields: vec!["ip_src".into(), "ip_dst".into(), "tcp_src".into()],
                hash_basis: 0,
                weights: vec![100],
            }),
            buckets: vec![vec![Action::Output(1)], vec![Action::Output(2)]],
        },
        Group {
            id: 11,
            kind: GroupType::Select(SelectGroup::default()),
            buckets: vec![
                vec![Action::Resubmit { table: 50 }],
                vec![Action::Output(2)],
            ],
        },
        Group {
            id: 12,
            kind: GroupType::Select(SelectGroup {
                hash_fields: vec!["ip_dst".into()],
                hash_basis: 5,
                weights: vec![1, 5],
            }),
            buckets: vec![vec![Action::Output(1)], vec![Action::Output(3)]],
        },
    ]
}
