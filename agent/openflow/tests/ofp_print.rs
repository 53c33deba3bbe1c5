//! Oracle tests: our encodings, fed to `ovs-ofctl ofp-print HEX`, must decode in Open
//! vSwitch to exactly what we meant (the text OVS prints is built from our renderer).

mod common;

use std::process::Command;

use weft_openflow::codec::{
    self, BundleAdd, BundleControl, BundleCtrlType, FlowMod, FlowStatsRequest, GroupMod,
    GroupModCommand, Message, MultipartReply, MultipartReplyBody, MultipartRequest,
    MultipartRequestBody, OFPBF_ATOMIC, OFPBF_ORDERED, OFPG_ALL,
};
use weft_openflow::flow::Flow;
use weft_openflow::render::{render_actions, render_group, render_match};

use common::samples::{sample_flows, sample_groups};

fn ofp_print(msg: &Message, xid: u32) -> String {
    let bytes = codec::encode_to_vec(xid, msg).expect("encode");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("ovs-ofctl")
        .args(["ofp-print", &hex])
        .output()
        .expect("run ovs-ofctl ofp-print");
    assert!(
        out.status.success(),
        "ofp-print failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// What `ofp-print` shows for a flow_mod: `CMD [table:N ]MATCH[ cookie:C] actions=...`.
fn flow_mod_text(cmd: &str, f: &Flow, with_actions: bool) -> String {
    let mut s = format!("{cmd} ");
    if f.table != 0 {
        s.push_str(&format!("table:{} ", f.table));
    }
    s.push_str(&render_match(f.priority, f.matches.fields()));
    if f.cookie != 0 {
        s.push_str(&format!(" cookie:{:#x}", f.cookie));
    }
    if with_actions {
        s.push_str(&format!(" actions={}", render_actions(&f.actions)));
    }
    s
}

fn match_and_actions(f: &Flow) -> String {
    let m = render_match(f.priority, f.matches.fields());
    let sep = if m.is_empty() { "" } else { " " };
    format!("{m}{sep}actions={}", render_actions(&f.actions))
}

#[test]
fn flow_mods_decode_in_ovs_as_intended() {
    for f in sample_flows() {
        let got = ofp_print(&Message::FlowMod(FlowMod::add(f.clone())), 0x2a);
        assert_eq!(
            got,
            format!(
                "OFPT_FLOW_MOD (OF1.5) (xid=0x2a): {}",
                flow_mod_text("ADD", &f, true)
            )
        );
        // Modify ignores (and OVS does not print) the cookie.
        let mut no_cookie = f.clone();
        no_cookie.cookie = 0;
        let got = ofp_print(&Message::FlowMod(FlowMod::modify_strict(f.clone())), 7);
        assert_eq!(
            got,
            format!(
                "OFPT_FLOW_MOD (OF1.5) (xid=0x7): {}",
                flow_mod_text("MOD_STRICT", &no_cookie, true)
            )
        );
        let got = ofp_print(&Message::FlowMod(FlowMod::delete_strict(&f.key())), 7);
        assert_eq!(
            got,
            format!(
                "OFPT_FLOW_MOD (OF1.5) (xid=0x7): {} actions=drop",
                flow_mod_text("DEL_STRICT", &no_cookie, false)
            )
        );
    }
}

#[test]
fn flow_desc_reply_decodes_in_ovs_as_intended() {
    let flows = sample_flows();
    let got = ofp_print(
        &Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::FlowDesc(flows.clone()),
        }),
        3,
    );
    let mut want = vec!["OFPST_FLOW reply (OF1.5) (xid=0x3):".to_string()];
    for f in &flows {
        want.push(format!(
            " cookie={:#x}, duration=4294967295.4294967295s, table={}, n_packets=?, n_bytes=?, {}",
            f.cookie,
            f.table,
            match_and_actions(f)
        ));
    }
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
}

#[test]
fn groups_decode_in_ovs_as_intended() {
    for g in sample_groups() {
        for (command, name) in [
            (GroupModCommand::Add, "ADD"),
            (GroupModCommand::Modify, "MOD"),
        ] {
            let got = ofp_print(
                &Message::GroupMod(GroupMod {
                    command,
                    group: g.clone(),
                }),
                1,
            );
            assert_eq!(
                got,
                format!(
                    "OFPT_GROUP_MOD (OF1.5) (xid=0x1):\n {name} {}",
                    render_group(&g)
                )
            );
        }
    }
    let got = ofp_print(
        &Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::GroupDesc(sample_groups()),
        }),
        1,
    );
    let mut want = vec!["OFPST_GROUP_DESC reply (OF1.5) (xid=0x1):".to_string()];
    want.extend(
        sample_groups()
            .iter()
            .map(|g| format!(" {}", render_group(g))),
    );
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
}

#[test]
fn control_messages_decode_in_ovs_as_intended() {
    let flags = OFPBF_ATOMIC | OFPBF_ORDERED;
    let cases: Vec<(Message, &str)> = vec![
        (Message::Hello { versions: vec![6] }, "OFPT_HELLO (OF1.5) (xid=0x1):\n version bitmap: 0x06"),
        (Message::BarrierRequest, "OFPT_BARRIER_REQUEST (OF1.5) (xid=0x1):"),
        (Message::FeaturesRequest, "OFPT_FEATURES_REQUEST (OF1.5) (xid=0x1):"),
        (
            Message::MultipartRequest(MultipartRequest {
                flags: 0,
                body: MultipartRequestBody::FlowDesc(FlowStatsRequest::all()),
            }),
            "OFPST_FLOW request (OF1.5) (xid=0x1):",
        ),
        (
            Message::MultipartRequest(MultipartRequest {
                flags: 0,
                body: MultipartRequestBody::GroupDesc { group_id: OFPG_ALL },
            }),
            "OFPST_GROUP_DESC request (OF1.5) (xid=0x1): group_id=ALL",
        ),
        (
            Message::BundleControl(BundleControl {
                bundle_id: 3,
                ctrl_type: BundleCtrlType::OpenRequest,
                flags,
                properties: vec![],
            }),
            "OFPT_BUNDLE_CONTROL (OF1.5) (xid=0x1):\n bundle_id=0x3 type=OPEN_REQUEST flags=atomic ordered",
        ),
        (
            Message::BundleControl(BundleControl {
                bundle_id: 3,
                ctrl_type: BundleCtrlType::CommitRequest,
                flags,
                properties: vec![],
            }),
            "OFPT_BUNDLE_CONTROL (OF1.5) (xid=0x1):\n bundle_id=0x3 type=COMMIT_REQUEST flags=atomic ordered",
        ),
        (
            Message::BundleControl(BundleControl {
                bundle_id: 3,
                ctrl_type: BundleCtrlType::DiscardRequest,
                flags,
                properties: vec![],
            }),
            "OFPT_BUNDLE_CONTROL (OF1.5) (xid=0x1):\n bundle_id=0x3 type=DISCARD_REQUEST flags=atomic ordered",
        ),
    ];
    for (msg, want) in cases {
        assert_eq!(ofp_print(&msg, 1), want, "{msg:?}");
    }
    let f = sample_flows().remove(3);
    let got = ofp_print(
        &Message::BundleAdd(BundleAdd {
            bundle_id: 3,
            flags,
            message: Box::new(Message::FlowMod(FlowMod::add(f.clone()))),
        }),
        9,
    );
    assert_eq!(
        got,
        format!(
            "OFPT_BUNDLE_ADD_MESSAGE (OF1.5) (xid=0x9):\n bundle_id=0x3 flags=atomic ordered\nOFPT_FLOW_MOD (OF1.5) (xid=0x9): {}",
            flow_mod_text("ADD", &f, true)
        )
    );
}
