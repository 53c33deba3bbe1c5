//! Codec tests: round trips for every message and model variant, byte-exact comparisons with
//! messages captured between ovs-ofctl and ovs-vswitchd 3.1 (through a logging unix-socket
//! proxy), and garbage/truncated input.

use super::*;
use crate::flow::{ports, Field, Mac, MatchField, SetField};
use std::net::Ipv4Addr;

pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex"))
        .collect()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test ip")
}
fn mac(s: &str) -> Mac {
    s.parse().expect("test mac")
}

/// Flows that together use every MatchField and Action variant.
pub(crate) fn sample_flows() -> Vec<Flow> {
    let f = |table, priority, cookie, m: Vec<MatchField>, a: Vec<Action>| Flow {
        table,
        priority,
        cookie,
        matches: Match::from_fields(m),
        actions: a,
    };
    vec![
        f(
            0,
            100,
            0x1234,
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
        f(
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
        f(
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
        f(
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
        f(
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
        f(
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
        f(
            10,
            80,
            0,
            vec![
                MatchField::EthType(0x0800),
                MatchField::IpProto(6),
                MatchField::NwTtl(1),
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
        f(50, 1, 0, vec![], vec![]),
    ]
}

fn roundtrip(msg: Message) {
    let bytes = encode_to_vec(0x1234_5678, &msg).expect("encode");
    assert_eq!(bytes.len() % 8, 0, "{msg:?} not padded: {}", bytes.len());
    let (h, back) = decode(&bytes).expect("decode");
    assert_eq!(h.xid, 0x1234_5678);
    assert_eq!(h.version, OFP15_VERSION);
    assert_eq!(usize::from(h.length), bytes.len());
    assert_eq!(back, msg);
}

fn roundtrip_unpadded(msg: Message) {
    let bytes = encode_to_vec(7, &msg).expect("encode");
    let (_, back) = decode(&bytes).expect("decode");
    assert_eq!(back, msg);
}

#[test]
fn every_sample_flow_roundtrips_as_flow_mod_and_flow_desc() {
    for flow in sample_flows() {
        roundtrip(Message::FlowMod(FlowMod::add(flow.clone())));
        roundtrip(Message::FlowMod(FlowMod::modify_strict(flow.clone())));
        roundtrip(Message::FlowMod(FlowMod::delete_strict(&flow.key())));
        roundtrip(Message::MultipartReply(MultipartReply {
            flags: OFPMPF_MORE,
            body: MultipartReplyBody::FlowDesc(vec![flow.clone(), flow.clone()]),
        }));
    }
    roundtrip(Message::FlowMod(FlowMod::delete(
        OFPTT_ALL,
        Match::new(),
        0x0100_0000_0000_0000,
        0xff00_0000_0000_0000,
    )));
}

#[test]
fn other_fields_and_actions_roundtrip_raw() {
    // ip_dscp (OXM basic 8) is not modelled; nor is a masked set_field of eth_dst; nor an
    // unknown instruction (write_metadata, type 2).
    let tcp_dst = hex("80001001 08");
    let masked_set_field = hex("0019 0018 8000070c 000000000001 0000000000ff 0000 0000");
    let write_metadata = hex("0002 0018 00000000 0000000000000001 ffffffffffffffff");
    let flow = Flow {
        table: 3,
        priority: 9,
        cookie: 1,
        matches: Match::from_fields([
            MatchField::EthType(0x0800),
            MatchField::IpProto(6),
            MatchField::Other(tcp_dst.clone()),
        ]),
        actions: vec![
            Action::Other(masked_set_field.clone()),
            Action::Other(write_metadata.clone()),
        ],
    };
    roundtrip(Message::FlowMod(FlowMod::add(flow.clone())));
    let bytes = encode_to_vec(1, &Message::FlowMod(FlowMod::add(flow))).expect("encode");
    let (_, Message::FlowMod(fm)) = decode(&bytes).expect("decode") else {
        panic!("not a flow mod");
    };
    assert!(fm
        .flow
        .matches
        .fields()
        .contains(&MatchField::Other(tcp_dst)));
    assert_eq!(
        fm.flow.actions,
        vec![
            Action::Other(masked_set_field),
            Action::Other(write_metadata)
        ]
    );
}

#[test]
fn simple_messages_roundtrip() {
    roundtrip(Message::Hello { versions: vec![6] });
    roundtrip(Message::Hello {
        versions: vec![1, 4, 5, 6],
    });
    roundtrip(Message::Hello { versions: vec![] });
    roundtrip(Message::EchoRequest(b"12345678".to_vec()));
    roundtrip(Message::EchoReply(vec![]));
    roundtrip(Message::FeaturesRequest);
    roundtrip(Message::FeaturesReply(Features {
        datapath_id: 0x0000_76a2_f913_b248,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        capabilities: 0x4f,
    }));
    roundtrip(Message::GetConfigRequest);
    roundtrip_unpadded(Message::GetConfigReply(SwitchConfig {
        flags: 0,
        miss_send_len: 128,
    }));
    roundtrip_unpadded(Message::SetConfig(SwitchConfig {
        flags: 1,
        miss_send_len: 0xffff,
    }));
    roundtrip(Message::BarrierRequest);
    roundtrip(Message::BarrierReply);
    roundtrip_unpadded(Message::Error(ErrorMsg {
        err_type: 2,
        code: 9,
        experimenter: None,
        data: vec![6, 14, 0, 8, 0, 0, 0, 1],
    }));
    roundtrip_unpadded(Message::Error(ErrorMsg {
        err_type: 0xffff,
        code: 3,
        experimenter: Some(0x2320),
        data: vec![],
    }));
    roundtrip(Message::Other {
        version: 6,
        msg_type: 4,
        body: vec![0; 8],
    });
}

#[test]
fn groups_roundtrip() {
    let g = Group {
        id: 7,
        kind: GroupType::All,
        buckets: vec![
            vec![Action::Output(1)],
            vec![
                Action::SetField(SetField::TunId(0x3e9)),
                Action::SetField(SetField::TunDst(ip("10.0.0.5"))),
                Action::Output(3),
            ],
            vec![Action::Resubmit { table: 50 }],
            vec![],
        ],
    };
    for command in [
        GroupModCommand::Add,
        GroupModCommand::Modify,
        GroupModCommand::Delete,
    ] {
        roundtrip(Message::GroupMod(GroupMod {
            command,
            group: g.clone(),
        }));
    }
    let empty = Group {
        id: 8,
        kind: GroupType::All,
        buckets: vec![],
    };
    roundtrip(Message::MultipartReply(MultipartReply {
        flags: 0,
        body: MultipartReplyBody::GroupDesc(vec![g, empty]),
    }));
    roundtrip(Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::GroupDesc { group_id: OFPG_ALL },
    }));
}

#[test]
fn multipart_and_bundles_roundtrip() {
    roundtrip(Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::FlowDesc(FlowStatsRequest::all()),
    }));
    let mut req = FlowStatsRequest::all();
    req.table_id = 10;
    req.matches = Match::from_fields([MatchField::Reg {
        index: 1,
        value: 2,
        mask: None,
    }]);
    roundtrip(Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::FlowDesc(req),
    }));
    roundtrip(Message::MultipartReply(MultipartReply {
        flags: 0,
        body: MultipartReplyBody::Other {
            mp_type: 13,
            body: vec![0; 16],
        },
    }));
    for ctrl_type in [
        BundleCtrlType::OpenRequest,
        BundleCtrlType::OpenReply,
        BundleCtrlType::CloseRequest,
        BundleCtrlType::CloseReply,
        BundleCtrlType::CommitRequest,
        BundleCtrlType::CommitReply,
        BundleCtrlType::DiscardRequest,
        BundleCtrlType::DiscardReply,
    ] {
        roundtrip(Message::BundleControl(BundleControl {
            bundle_id: 9,
            ctrl_type,
            flags: OFPBF_ATOMIC | OFPBF_ORDERED,
            properties: vec![],
        }));
    }
    for flow in sample_flows() {
        roundtrip(Message::BundleAdd(BundleAdd {
            bundle_id: 9,
            flags: OFPBF_ATOMIC | OFPBF_ORDERED,
            message: Box::new(Message::FlowMod(FlowMod::add(flow))),
        }));
    }
    let inner = Message::GroupMod(GroupMod {
        command: GroupModCommand::Add,
        group: Group {
            id: 1,
            kind: GroupType::All,
            buckets: vec![vec![Action::Output(1)]],
        },
    });
    let mut a = Vec::new();
    encode_bundle_add(5, 9, 3, &inner, &mut a).expect("encode");
    let b = encode_to_vec(
        5,
        &Message::BundleAdd(BundleAdd {
            bundle_id: 9,
            flags: 3,
            message: Box::new(inner),
        }),
    )
    .expect("encode");
    assert_eq!(a, b);
}

// ---- Byte-exact comparisons with captured ovs-ofctl <-> ovs-vswitchd 3.1 traffic --------

/// `ovs-ofctl -O OpenFlow15 add-flow 'table=0,priority=100,cookie=0x1234,in_port=5,
/// actions=set_field:0x5->reg14,set_field:0x3e9->metadata,goto_table:10'`
const CAP_FLOW_MOD: &str = "060e007000000006000000000000123400000000000000000000000000000064\
    ffffffffffffffffffffffff000000000001000c80000004000000050000000000040028000000000019001000011c\
    040000000500000000001900108000040800000000000003e9000100080a000000";

#[test]
fn flow_mod_matches_ovs_ofctl_bytes() {
    let flow = sample_flows().remove(0);
    let ours = encode_to_vec(6, &Message::FlowMod(FlowMod::add(flow.clone()))).expect("encode");
    assert_eq!(ours, hex(CAP_FLOW_MOD));
    let (_, msg) = decode(&hex(CAP_FLOW_MOD)).expect("decode");
    assert_eq!(msg, Message::FlowMod(FlowMod::add(flow)));
}

/// `ovs-ofctl -O OpenFlow15 add-group 'group_id=1,type=all,bucket=output:1,
/// bucket=set_field:0x3e9->tun_id,set_field:10.0.0.5->tun_dst,output:3'`
const CAP_GROUP_MOD: &str = "060f006800000006000000000000000100500000ffffffff00180010000000000000\
    001000000001000000000000000000380030000000010019001080004c0800000000000003e9001900100001400\
    40a0000050000000000000010000000030000000000000000";

/// The OFPMP_GROUP_DESC reply for that group.
const CAP_GROUP_DESC: &str =
    "0613007000000002000700000000000000600000000000010050000000000000001800\
    10000000000000001000000001000000000000000000380030000000010019001080004c0800000000000003e900\
    190010000140040a0000050000000000000010000000030000000000000000";

fn captured_group() -> Group {
    Group {
        id: 1,
        kind: GroupType::All,
        buckets: vec![
            vec![Action::Output(1)],
            vec![
                Action::SetField(SetField::TunId(0x3e9)),
                Action::SetField(SetField::TunDst(ip("10.0.0.5"))),
                Action::Output(3),
            ],
        ],
    }
}

#[test]
fn group_mod_and_group_desc_match_ovs_bytes() {
    let gm = Message::GroupMod(GroupMod {
        command: GroupModCommand::Add,
        group: captured_group(),
    });
    assert_eq!(encode_to_vec(6, &gm).expect("encode"), hex(CAP_GROUP_MOD));
    assert_eq!(decode(&hex(CAP_GROUP_MOD)).expect("decode").1, gm);
    let (_, reply) = decode(&hex(CAP_GROUP_DESC)).expect("decode");
    assert_eq!(
        reply,
        Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::GroupDesc(vec![captured_group()]),
        })
    );
    assert_eq!(
        encode_to_vec(2, &reply).expect("encode"),
        hex(CAP_GROUP_DESC)
    );
}

#[test]
fn stats_requests_and_hello_match_ovs_bytes() {
    let req = Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::FlowDesc(FlowStatsRequest::all()),
    });
    assert_eq!(
        encode_to_vec(2, &req).expect("encode"),
        hex(
            "06120038000000020001000000000000ff000000ffffffffffffffff000000000000000000000000\
             00000000000000000001000400000000"
        )
    );
    let req = Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::GroupDesc { group_id: OFPG_ALL },
    });
    assert_eq!(
        encode_to_vec(2, &req).expect("encode"),
        hex("06120018000000020007000000000000fffffffc00000000")
    );
    let hello = Message::Hello { versions: vec![6] };
    assert_eq!(
        encode_to_vec(1, &hello).expect("encode"),
        hex("06000010000000010001000800000040")
    );
    // ovs-vswitchd answers with a bare header.
    let (h, m) = decode(&hex("0600000800000039")).expect("decode");
    assert_eq!((h.version, h.xid), (6, 0x39));
    assert_eq!(m, Message::Hello { versions: vec![] });
}

/// A flow-desc reply from ovs-vswitchd: two flows, registers reported as OpenFlow 1.5
/// packet registers (xreg1 = reg2:reg3, xreg7 = reg14:reg15), and duration/idle/packet/byte
/// OXS statistics to skip.
const CAP_FLOW_DESC_XREG: &str =
    "061301480000000200010000000000000090000000000064000000000000000000\
    000000000012340001000c8000000400000005000000000000003480020008000000031c40aa8080020208000000\
    030000000080020808000000000000000080020a0800000000000000000000000000040028000000000019001000\
    011c040000000500000000001900108000040800000000000003e9000100080a00000000a800000a00005a000000\
    000000000000000000000000000001004a8000080600000000000180004c0800000000000003e900013e04010203\
    0480010310000000000000000900000000ffffffff80010f100000000500000007ffffffff000000ff0000000000\
    0000000034800200080000000001ab3f0080020208000000000000000080020808000000000000000080020a0800\
    00000000000000000000000001000814000000";

#[test]
fn flow_desc_reply_with_xregs_decodes_to_model() {
    let (_, msg) = decode(&hex(CAP_FLOW_DESC_XREG)).expect("decode");
    let Message::MultipartReply(MultipartReply {
        flags: 0,
        body: MultipartReplyBody::FlowDesc(flows),
    }) = msg
    else {
        panic!("unexpected {msg:?}");
    };
    assert_eq!(flows.len(), 2);
    assert_eq!(flows[0], sample_flows().remove(0));
    // table=10,priority=90,reg14=0x5,reg15=0x7/0xff,reg3=9,tun_id=0x3e9,tun_src=1.2.3.4,
    // dl_src=00:00:00:00:00:01 actions=goto_table:20
    let expected = Flow {
        table: 10,
        priority: 90,
        cookie: 0,
        matches: Match::from_fields([
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
                index: 3,
                value: 9,
                mask: None,
            },
            MatchField::TunId {
                value: 0x3e9,
                mask: None,
            },
            MatchField::TunSrc(ip("1.2.3.4")),
            MatchField::EthSrc {
                value: mac("00:00:00:00:00:01"),
                mask: None,
            },
        ]),
        actions: vec![Action::GotoTable(20)],
    };
    assert_eq!(flows[1], expected);
}

/// The ARP responder flow reported back by ovs-vswitchd: `move` comes back as the
/// OpenFlow 1.5 `copy_field` action.
const CAP_FLOW_DESC_COPY_FIELD: &str =
    "061301280000000600010000000000000118000014000064000000000000000000\
    000000000000000001002480000a02080680002a02000180002e040a0000028000040800000000000003e900000000\
    0000003480020008000000000365c04080020208000000000000000080020808000000000000000080020a080000\
    00000000000000000000000400a000000000001c001800300000000000008000080680000606000000000019001080\
    00080600000000000200000019001080002a020002000000000000001c00180020000000000000800000040001\
    0a0400000000ffff001000002320000efff832000000001600080000000100000010fffffff8000000000000000000\
    00001000000003000000000000000000000010fffffffdffff000000000000";

#[test]
fn copy_field_decodes_to_move() {
    let (_, msg) = decode(&hex(CAP_FLOW_DESC_COPY_FIELD)).expect("decode");
    let Message::MultipartReply(MultipartReply {
        body: MultipartReplyBody::FlowDesc(flows),
        ..
    }) = msg
    else {
        panic!("unexpected {msg:?}");
    };
    let expected = Flow {
        table: 20,
        priority: 100,
        cookie: 0,
        matches: Match::from_fields([
            MatchField::EthType(0x0806),
            MatchField::ArpOp(1),
            MatchField::ArpTpa {
                value: ip("10.0.0.2"),
                mask: None,
            },
            MatchField::Metadata {
                value: 0x3e9,
                mask: None,
            },
        ]),
        actions: vec![
            Action::Move {
                src: Field::EthSrc,
                dst: Field::EthDst,
            },
            Action::SetField(SetField::EthSrc(mac("00:00:00:00:00:02"))),
            Action::SetField(SetField::ArpOp(2)),
            Action::Move {
                src: Field::InPort,
                dst: Field::Reg(5),
            },
            Action::Resubmit { table: 50 },
            Action::Group(1),
            Action::Output(ports::IN_PORT),
            Action::Output(3),
            Action::Output(ports::CONTROLLER),
        ],
    };
    assert_eq!(flows, vec![expected]);
}

#[test]
fn bundle_messages_and_errors_match_ovs_bytes() {
    // ovs-ofctl --bundle: open request and vswitchd's reply.
    let open = Message::BundleControl(BundleControl {
        bundle_id: 0,
        ctrl_type: BundleCtrlType::OpenRequest,
        flags: OFPBF_ATOMIC | OFPBF_ORDERED,
        properties: vec![],
    });
    assert_eq!(
        encode_to_vec(8, &open).expect("encode"),
        hex("06210010000000080000000000000003")
    );
    let (_, reply) = decode(&hex("06210010000000080000000000010000")).expect("decode");
    assert!(matches!(
        reply,
        Message::BundleControl(BundleControl {
            ctrl_type: BundleCtrlType::OpenReply,
            ..
        })
    ));
    // A bundled flow_mod: table=31,priority=1,actions=group:99
    let add = hex(
        "06220058000000060000000000000003060e004800000006000000000000000000000000000000001f\
         00000000000001ffffffffffffffffffffffff00000000000100040000000000040010000000000016000800000063",
    );
    let flow = Flow {
        table: 31,
        priority: 1,
        cookie: 0,
        matches: Match::new(),
        actions: vec![Action::Group(99)],
    };
    let mut ours = Vec::new();
    encode_bundle_add(
        6,
        0,
        3,
        &Message::FlowMod(FlowMod::add(flow.clone())),
        &mut ours,
    )
    .expect("encode");
    assert_eq!(ours, add);
    // The error for it (xid of the bundled message, data = the bundle_add) and the commit's
    // OFPBFC_MSG_FAILED.
    let mut err = hex("06010064000000060002000 9".replace(' ', "").as_str());
    err.extend_from_slice(&add);
    let (h, m) = decode(&err).expect("decode");
    let Message::Error(e) = m else {
        panic!("not an error")
    };
    assert_eq!(h.xid, 6);
    assert_eq!(e.name(), "OFPBAC_BAD_OUT_GROUP");
    assert_eq!(e.offending_xid(), Some(6));
    let (h, m) = decode(&hex(
        "0601001c000000090011000d06210010000000090000000000040003",
    ))
    .expect("decode");
    let Message::Error(e) = m else {
        panic!("not an error")
    };
    assert_eq!(
        (h.xid, e.err_type, e.code),
        (9, errors::OFPET_BUNDLE_FAILED, errors::OFPBFC_MSG_FAILED)
    );
    assert_eq!(e.to_string(), "OFPBFC_MSG_FAILED (type=17, code=13)");
}

#[test]
fn reg_load_normalises_to_set_field() {
    // NXAST_REG_LOAD of 0x5 into all 32 bits of reg14 (ofs=0, n_bits=32 -> 0x001f).
    let load = hex("ffff 0018 00002320 0007 001f 00011c04 0000000000000005");
    let mut r = wire::Reader::new(&load, "t");
    assert_eq!(
        actions::decode_actions(&mut r).expect("decode"),
        vec![Action::SetField(SetField::Reg {
            index: 14,
            value: 5
        })]
    );
    // A partial load stays raw.
    let partial = hex("ffff 0018 00002320 0007 000f 00011c04 0000000000000005");
    let mut r = wire::Reader::new(&partial, "t");
    assert_eq!(
        actions::decode_actions(&mut r).expect("decode"),
        vec![Action::Other(partial.clone())]
    );
    // NXAST_REG_LOAD2 with an OXM.
    let load2 = hex("ffff 0018 00002320 0021 00011c04 00000005 000000000000");
    let mut r = wire::Reader::new(&load2, "t");
    assert_eq!(
        actions::decode_actions(&mut r).expect("decode"),
        vec![Action::SetField(SetField::Reg {
            index: 14,
            value: 5
        })]
    );
}

#[test]
fn bad_model_values_are_rejected_without_writing() {
    let mut out = vec![1, 2, 3];
    let flow = Flow {
        table: 0,
        priority: 1,
        cookie: 0,
        matches: Match::from_fields([MatchField::Reg {
            index: 16,
            value: 1,
            mask: None,
        }]),
        actions: vec![],
    };
    let err = encode(1, &Message::FlowMod(FlowMod::add(flow)), &mut out).expect_err("reg16");
    assert!(err.to_string().contains("reg16"), "{err}");
    assert_eq!(out, vec![1, 2, 3]);
    let flow = Flow {
        table: 0,
        priority: 1,
        cookie: 0,
        matches: Match::new(),
        actions: vec![Action::GotoTable(3), Action::Output(1)],
    };
    assert!(encode(1, &Message::FlowMod(FlowMod::add(flow)), &mut out).is_err());
    assert_eq!(out, vec![1, 2, 3]);
}

/// A tiny deterministic PRNG (xorshift) so the garbage test needs no extra crate.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn truncated_and_garbage_input_never_panics() {
    let mut corpus: Vec<Vec<u8>> = vec![
        hex(CAP_FLOW_MOD),
        hex(CAP_GROUP_MOD),
        hex(CAP_GROUP_DESC),
        hex(CAP_FLOW_DESC_XREG),
        hex(CAP_FLOW_DESC_COPY_FIELD),
    ];
    for f in sample_flows() {
        corpus.push(encode_to_vec(1, &Message::FlowMod(FlowMod::add(f))).expect("encode"));
    }
    // Every truncation, with the header length patched to match, must decode or error.
    for msg in &corpus {
        for cut in 0..msg.len() {
            let mut m = msg[..cut].to_vec();
            let _ = decode(&m);
            if m.len() >= 4 {
                let l = m.len() as u16;
                m[2..4].copy_from_slice(&l.to_be_bytes());
                let _ = decode(&m);
            }
        }
    }
    // Random byte flips and random bytes.
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let base = &corpus[(rng.next() % corpus.len() as u64) as usize];
        let mut m = base.clone();
        for _ in 0..(1 + rng.next() % 4) {
            let i = (rng.next() % m.len() as u64) as usize;
            m[i] = rng.next() as u8;
        }
        let l = m.len() as u16;
        m[2..4].copy_from_slice(&l.to_be_bytes());
        let _ = decode(&m);
        let _ = frame_len(&m);
    }
    for _ in 0..5_000 {
        let n = 8 + (rng.next() % 200) as usize;
        let mut m: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        m[0] = 6;
        m[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        let _ = decode(&m);
    }
    assert!(matches!(
        frame_len(&[6, 0, 0, 4, 0, 0, 0, 0]),
        Err(CodecError::BadLength { .. })
    ));
    assert_eq!(frame_len(&[6, 0, 0, 16, 0, 0]), Ok(None));
}

/// `ovs-ofctl --bundle add-flows` of the ARP responder flow: the bundle_add as captured.
/// OVS encodes `move` as OpenFlow 1.5 copy_field with OXM headers; our instructions must be
/// byte-identical.
const CAP_BUNDLE_ADD_ARP: &str = "06220108000000060000000000000003060e00f80000000600000000000000000000\
    0000000000001400000000000064ffffffffffffffffffffffff000000000001002480000a02080680002a020001\
    80002e040a0000028000040800000000000003e900000000000400a000000000001c0018003000000000000080000806\
    8000060600000000001900108000080600000000000200000019001080002a020002000000000000001c00180020\
    0000000000008000000400010a0400000000ffff001000002320000efff832000000001600080000000100000010ff\
    fffff800000000000000000000001000000003000000000000000000000010fffffffdffff000000000000";

#[test]
fn move_encodes_as_ovs_copy_field_bytes() {
    let captured = hex(CAP_BUNDLE_ADD_ARP);
    let (_, msg) = decode(&captured).expect("decode");
    let Message::BundleAdd(BundleAdd {
        bundle_id: 0,
        flags: 3,
        message,
    }) = msg
    else {
        panic!("not a bundle add: {msg:?}");
    };
    let Message::FlowMod(fm) = *message else {
        panic!("not a flow mod")
    };
    assert_eq!(fm.command, FlowModCommand::Add);
    assert_eq!(
        fm.flow.actions[0],
        Action::Move {
            src: Field::EthSrc,
            dst: Field::EthDst
        }
    );
    assert_eq!(
        fm.flow.actions[3],
        Action::Move {
            src: Field::InPort,
            dst: Field::Reg(5)
        }
    );
    let mut ours = Vec::new();
    actions::encode_instructions(&mut ours, &fm.flow.actions).expect("encode");
    // Bundle header (16) + flow_mod fixed part with its header (48) + match (40).
    assert_eq!(ours, captured[16 + 48 + 40..].to_vec());
}

#[test]
fn meter_messages_roundtrip_and_match_ovs_bytes() {
    use crate::meter::{BandStats, BandType, Meter, MeterBand, MeterStats, MeterUnit, OFPM_ALL};
    let m = Meter {
        id: 5,
        unit: MeterUnit::Kbps,
        burst: true,
        stats: true,
        bands: vec![MeterBand {
            kind: BandType::Drop,
            rate: 10000,
            burst_size: 1000,
        }],
    };
    // ovs-ofctl -O OpenFlow15 add-meter br meter=5,kbps,burst,stats,bands=type=drop,
    // rate=10000,burst_size=1000
    let add = Message::MeterMod(MeterMod {
        command: MeterModCommand::Add,
        meter: m.clone(),
    });
    assert_eq!(
        encode_to_vec(2, &add).expect("encode"),
        hex("061d0020000000020000000d000000050001001000002710000003e800000000")
    );
    roundtrip(add);
    // del-meter br meter=6
    let del = Message::MeterMod(MeterMod {
        command: MeterModCommand::Delete,
        meter: Meter {
            id: 6,
            ..Meter::default()
        },
    });
    assert_eq!(
        encode_to_vec(2, &del).expect("encode"),
        hex("061d0010000000020002000000000006")
    );
    roundtrip(del);
    // dump-meters / meter-stats requests.
    let req = Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::MeterConfig { meter_id: OFPM_ALL },
    });
    assert_eq!(
        encode_to_vec(2, &req).expect("encode"),
        hex("0612001800000002000a000000000000ffffffff00000000")
    );
    roundtrip(req);
    roundtrip(Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::MeterStats { meter_id: OFPM_ALL },
    }));
    roundtrip(Message::MultipartReply(MultipartReply {
        flags: 0,
        body: MultipartReplyBody::MeterConfig(vec![m.clone(), Meter { id: 7, ..m }]),
    }));
    roundtrip(Message::MultipartReply(MultipartReply {
        flags: 0,
        body: MultipartReplyBody::MeterStats(vec![MeterStats {
            meter_id: 5,
            flow_count: 1,
            packet_in_count: 10,
            byte_in_count: 1000,
            duration_sec: 3,
            duration_nsec: 5,
            bands: vec![BandStats {
                packet_count: 2,
                byte_count: 200,
            }],
        }]),
    }));
}

#[test]
fn select_groups_roundtrip_with_methods_and_weights() {
    use crate::flow::SelectGroup;
    for sel in [
        SelectGroup::default(),
        SelectGroup {
            hash_fields: vec!["ip_src".into(), "tcp_dst".into()],
            hash_basis: 9,
            weights: vec![3, 1, 7],
        },
    ] {
        let g = Group {
            id: 4,
            kind: GroupType::Select(sel),
            buckets: vec![
                vec![Action::Output(1)],
                vec![Action::Output(2)],
                vec![Action::Output(3)],
            ],
        };
        roundtrip(Message::GroupMod(GroupMod {
            command: GroupModCommand::Add,
            group: g.clone(),
        }));
        roundtrip(Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::GroupDesc(vec![g]),
        }));
    }
}

#[test]
fn packet_path_messages_roundtrip() {
    use crate::codec::nx::{TlvMap, TlvTableCommand, TlvTableMod, TlvTableReply};
    let pin = PacketIn {
        packet: vec![1, 2, 3, 4, 5],
        full_len: Some(1500),
        buffer_id: None,
        table_id: 5,
        cookie: Some(0x0200_0000_0000_0001),
        reason: 1,
        metadata: Match::new()
            .with(MatchField::InPort(3))
            .with(MatchField::Reg {
                index: 14,
                value: 7,
                mask: None,
            })
            .with(MatchField::Metadata {
                value: 0x3e9,
                mask: None,
            }),
        userdata: vec![0, 0, 0, 1],
        continuation: Some(vec![0x80, 0, 0, 8, 0, 0, 0, 0]),
    };
    roundtrip(Message::PacketIn2(pin.clone()));
    let mut resumed = pin.clone();
    resumed.userdata.clear();
    assert_eq!(pin.resume(), Message::Resume(resumed.clone()));
    roundtrip(Message::Resume(resumed));
    roundtrip_unpadded(Message::PacketOut(PacketOut {
        buffer_id: OFP_NO_BUFFER,
        matches: Match::new().with(MatchField::InPort(ports::CONTROLLER)),
        actions: vec![Action::Output(1)],
        packet: vec![9; 60],
    }));
    roundtrip_unpadded(Message::SetPacketInFormat(2));
    roundtrip(Message::SetAsync(vec![(0, 0x3f), (1, 0x3f)]));
    roundtrip(Message::CtFlushZone(5));
    roundtrip(Message::TlvTableRequest);
    let maps = vec![TlvMap {
        option_class: 0x102,
        option_type: 0x80,
        option_len: 4,
        index: 0,
    }];
    roundtrip(Message::TlvTableMod(TlvTableMod {
        command: TlvTableCommand::Add,
        maps: maps.clone(),
    }));
    roundtrip(Message::TlvTableReply(TlvTableReply {
        max_option_space: 256,
        max_fields: 64,
        maps,
    }));
}

/// Fuzz-style: random, truncated and bit-flipped packet-in2 / resume / packet-out / meter /
/// select-group / extension flow messages must decode or return an error, never panic.
#[test]
fn packet_in_and_extension_decoders_never_panic() {
    let pin = PacketIn {
        packet: vec![0xff; 42],
        table_id: 3,
        cookie: Some(7),
        reason: 1,
        metadata: Match::new().with(MatchField::CtState {
            value: 0x22,
            mask: None,
        }),
        userdata: vec![1, 2, 3],
        continuation: Some(vec![0x80, 0, 0, 5, 1, 0, 0, 0]),
        ..PacketIn::default()
    };
    let mut corpus = vec![
        encode_to_vec(1, &Message::PacketIn2(pin.clone())).expect("encode"),
        encode_to_vec(1, &pin.resume()).expect("encode"),
        encode_to_vec(
            1,
            &Message::PacketOut(PacketOut {
                buffer_id: OFP_NO_BUFFER,
                matches: Match::new().with(MatchField::InPort(1)),
                actions: vec![Action::Output(2)],
                packet: vec![0; 20],
            }),
        )
        .expect("encode"),
        encode_to_vec(1, &Message::CtFlushZone(9)).expect("encode"),
    ];
    let flow = Flow {
        table: 1,
        priority: 1,
        cookie: 0,
        matches: Match::new()
            .with(MatchField::EthType(0x0800))
            .with(MatchField::CtLabel {
                value: 5,
                mask: Some(0xff),
            }),
        actions: vec![
            Action::Ct(crate::flow::Ct {
                commit: true,
                nat: Some(crate::flow::Nat {
                    kind: Some(crate::flow::NatKind::Src),
                    addr_min: Some(ip("10.0.0.1").into()),
                    port_min: Some(5),
                    ..Default::default()
                }),
                exec: vec![Action::SetField(SetField::CtMark {
                    value: 1,
                    mask: None,
                })],
                ..Default::default()
            }),
            Action::Learn(crate::flow::Learn {
                specs: vec![crate::flow::LearnSpec::LoadImm {
                    value: 1,
                    dst: crate::flow::SubField::bits(nxm::nxm_nx_reg(10), 0, 0),
                }],
                ..Default::default()
            }),
            Action::Controller(crate::flow::Controller {
                userdata: vec![1],
                pause: true,
                meter_id: Some(3),
                ..Default::default()
            }),
        ],
    };
    corpus.push(encode_to_vec(1, &Message::FlowMod(FlowMod::add(flow))).expect("encode"));
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    for msg in &corpus {
        for cut in 0..msg.len() {
            let mut m = msg[..cut].to_vec();
            let _ = decode(&m);
            if m.len() >= 4 {
                let l = m.len() as u16;
                m[2..4].copy_from_slice(&l.to_be_bytes());
                let _ = decode(&m);
            }
        }
    }
    for _ in 0..30_000 {
        let base = &corpus[(rng.next() % corpus.len() as u64) as usize];
        let mut m = base.clone();
        for _ in 0..(1 + rng.next() % 6) {
            let i = 8 + (rng.next() % (m.len() as u64 - 8)) as usize;
            m[i] = rng.next() as u8;
        }
        let _ = decode(&m);
    }
    // Random bodies behind a valid packet-in2 header.
    for _ in 0..5_000 {
        let n = 16 + (rng.next() % 300) as usize;
        let mut m: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        m[..16].copy_from_slice(&hex("0604000000000001000023200000001e"));
        m[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        let _ = decode(&m);
    }
    // A packet-in2 without its packet property is an error, not a default.
    let empty = hex("0604001000000001000023200000001e");
    assert!(decode(&empty).is_err());
}

#[test]
fn sctp_ports_and_tcp_flags_roundtrip() {
    for fields in [
        vec![
            MatchField::EthType(0x0800),
            MatchField::IpProto(6),
            MatchField::TcpFlags {
                value: 0x002,
                mask: Some(0x012),
            },
        ],
        vec![
            MatchField::EthType(0x0800),
            MatchField::IpProto(6),
            // All 12 bits: an exact match.
            MatchField::TcpFlags {
                value: 0x012,
                mask: Some(0x0fff),
            },
        ],
        vec![
            MatchField::EthType(0x86dd),
            MatchField::IpProto(132),
            MatchField::SctpSrc {
                value: 36412,
                mask: None,
            },
            MatchField::SctpDst {
                value: 0x400,
                mask: Some(0xfc00),
            },
        ],
    ] {
        let flow = Flow {
            table: 62,
            priority: 2000,
            cookie: 6,
            matches: Match::from_fields(fields),
            actions: vec![],
        };
        roundtrip(Message::FlowMod(FlowMod::add(flow)));
    }
    let m = Match::from_fields([MatchField::TcpFlags {
        value: 0x012,
        mask: Some(0x0fff),
    }]);
    assert_eq!(
        m.fields(),
        &[MatchField::TcpFlags {
            value: 0x012,
            mask: None
        }]
    );
}

#[test]
fn table_stats_bodies_give_the_flow_count_of_each_table() {
    let mut body = Vec::new();
    for (table, active) in [(0u8, 12u32), (1, 0), (20, 70_000)] {
        body.push(table);
        body.extend_from_slice(&[0, 0, 0]);
        body.extend_from_slice(&active.to_be_bytes());
        body.extend_from_slice(&5u64.to_be_bytes());
        body.extend_from_slice(&3u64.to_be_bytes());
    }
    assert_eq!(
        decode_table_flow_counts(&body).unwrap(),
        vec![(0, 12), (20, 70_000)]
    );
    assert!(decode_table_flow_counts(&body[..30]).is_err());
    assert!(decode_table_flow_counts(&[]).unwrap().is_empty());
}
