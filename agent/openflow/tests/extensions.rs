//! The conntrack / NAT / learn / conjunction / controller / IPv6 / select-group additions,
//! checked two ways against Open vSwitch 3.1:
//! - byte-exact: `ovs-ofctl -O OpenFlow15 add-flow`/`add-group` of our rendering, captured
//!   by a fake switch, equals our encoding, and decodes to the same model;
//! - round trip: installed on a real ovs-vswitchd (netdev) in one bundle, `ovs-ofctl
//!   dump-flows`/`dump-groups` print exactly our rendering, and the flow/group stats decode
//!   back to the models we sent.

mod common;

use weft_openflow::channel::{BundleOp, OfChannel};
use weft_openflow::codec::{self, FlowMod, GroupMod, GroupModCommand, Message};
use weft_openflow::flow::Flow;
use weft_openflow::{render_flow, render_group};

use common::capture::{hex, ofctl_one};
use common::samples::{ext_flows, ext_groups};
use common::{ovs_available, Ovs};

const BR: &str = "br-int";

#[test]
fn ext_flows_encode_exactly_like_ovs_ofctl() -> anyhow::Result<()> {
    if !ovs_available() {
        return Ok(());
    }
    for f in ext_flows() {
        let text = render_flow(&f);
        let theirs = ofctl_one("add-flow", &[&text], 7)?;
        let msg = Message::FlowMod(FlowMod::add(f.clone()));
        let ours = codec::encode_to_vec(7, &msg)?;
        assert_eq!(hex(&ours), hex(&theirs), "{text}");
        assert_eq!(codec::decode(&theirs)?.1, msg, "{text}");
    }
    Ok(())
}

#[test]
fn ext_groups_encode_exactly_like_ovs_ofctl() -> anyhow::Result<()> {
    if !ovs_available() {
        return Ok(());
    }
    for g in ext_groups() {
        let text = render_group(&g);
        let theirs = ofctl_one("add-group", &[&text], 7)?;
        let msg = Message::GroupMod(GroupMod {
            command: GroupModCommand::Add,
            group: g.clone(),
        });
        let ours = codec::encode_to_vec(7, &msg)?;
        assert_eq!(hex(&ours), hex(&theirs), "{text}");
        assert_eq!(codec::decode(&theirs)?.1, msg, "{text}");
    }
    Ok(())
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn sort_flows(mut v: Vec<Flow>) -> Vec<Flow> {
    v.sort_by_key(render_flow);
    v
}

fn ofctl_lines(ovs: &Ovs, args: &[&str]) -> anyhow::Result<Vec<String>> {
    Ok(ovs
        .ofctl(args)?
        .lines()
        .filter(|l| l.starts_with(' '))
        .map(|l| l.trim_start().to_string())
        .collect())
}

#[tokio::test]
async fn ext_flows_and_groups_install_render_and_read_back() -> anyhow::Result<()> {
    if !ovs_available() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    ovs.add_bridge(BR)?;
    let ch = OfChannel::connect(&ovs.mgmt_socket(BR)).await?;
    let mut ops: Vec<BundleOp> = ext_groups().into_iter().map(BundleOp::GroupAdd).collect();
    ops.extend(ext_flows().into_iter().map(BundleOp::FlowAdd));
    ch.apply_bundle(ops).await?;

    let flows = ofctl_lines(&ovs, &["-O", "OpenFlow15", "--no-stats", "dump-flows", BR])?;
    assert_eq!(
        sorted(flows),
        sorted(ext_flows().iter().map(render_flow).collect())
    );
    let groups = ofctl_lines(&ovs, &["-O", "OpenFlow15", "dump-groups", BR])?;
    assert_eq!(
        sorted(groups),
        sorted(ext_groups().iter().map(render_group).collect())
    );
    assert_eq!(sort_flows(ch.dump_flows().await?), sort_flows(ext_flows()));
    let mut got = ch.dump_groups().await?;
    got.sort_by_key(|g| g.id);
    assert_eq!(got, ext_groups());
    Ok(())
}
