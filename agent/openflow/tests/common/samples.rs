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
