//! Meters against Open vSwitch 3.1: meter_mod bytes identical to `ovs-ofctl add-meter` /
//! `mod-meter` / `del-meter`; install, read back (`dump-meters` text and the decoded config),
//! statistics, modify and delete on a real ovs-vswitchd (netdev); and the finding that OVS
//! refuses meter_mods inside a bundle, which is why the channel applies them around it.

mod common;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_openflow::channel::{BundleOp, OfChannel};
use weft_openflow::codec::{
    self, BundleAdd, BundleControl, BundleCtrlType, Message, MeterMod, MeterModCommand,
    OFPBF_ATOMIC, OFPBF_ORDERED,
};
use weft_openflow::flow::{Action, MatchField};
use weft_openflow::meter::{render_meter, BandType, Meter, MeterBand, MeterUnit};
use weft_openflow::render_flow;

use common::capture::{hex, ofctl_one};
use common::samples::flow;
use common::{ovs_available, Ovs};

const BR: &str = "br-int";

fn meter5() -> Meter {
    Meter {
        id: 5,
        unit: MeterUnit::Kbps,
        burst: true,
        stats: true,
        bands: vec![MeterBand {
            kind: BandType::Drop,
            rate: 10000,
            burst_size: 1000,
        }],
    }
}

fn meter6(rate: u32) -> Meter {
    Meter {
        id: 6,
        unit: MeterUnit::Pktps,
        burst: false,
        stats: false,
        bands: vec![MeterBand {
            kind: BandType::Drop,
            rate,
            burst_size: 0,
        }],
    }
}

/// `meter=5 kbps burst stats bands=\ntype=drop ...` -> the add-meter argument.
fn ofctl_arg(m: &Meter) -> String {
    render_meter(m)
        .replace(" bands=\n", ",bands=")
        .replace(['\n', ' '], ",")
}

#[test]
fn meter_mods_encode_exactly_like_ovs_ofctl() -> anyhow::Result<()> {
    if !ovs_available() {
        return Ok(());
    }
    for (cmd, command, m) in [
        ("add-meter", MeterModCommand::Add, meter5()),
        ("add-meter", MeterModCommand::Add, meter6(100)),
        ("mod-meter", MeterModCommand::Modify, meter6(50)),
    ] {
        let theirs = ofctl_one(cmd, &[&ofctl_arg(&m)], 3)?;
        let msg = Message::MeterMod(MeterMod { command, meter: m });
        assert_eq!(hex(&codec::encode_to_vec(3, &msg)?), hex(&theirs), "{cmd}");
        assert_eq!(codec::decode(&theirs)?.1, msg);
    }
    let theirs = ofctl_one("del-meter", &["meter=6"], 3)?;
    let msg = Message::MeterMod(MeterMod {
        command: MeterModCommand::Delete,
        meter: Meter {
            id: 6,
            ..Meter::default()
        },
    });
    assert_eq!(hex(&codec::encode_to_vec(3, &msg)?), hex(&theirs));
    Ok(())
}

/// `dump-meters` output: one entry per meter (separated by blank lines), sorted.
fn dump_meters_text(ovs: &Ovs) -> anyhow::Result<Vec<String>> {
    let out = ovs.ofctl(&["-O", "OpenFlow15", "dump-meters", BR])?;
    let body: Vec<&str> = out.lines().skip(1).collect();
    let mut entries: Vec<String> = body
        .join("\n")
        .split("\n\n")
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect();
    entries.sort();
    Ok(entries)
}

#[tokio::test]
async fn meters_install_read_back_modify_and_delete_around_bundles() -> anyhow::Result<()> {
    if !ovs_available() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    ovs.add_bridge(BR)?;
    let ch = OfChannel::connect(&ovs.mgmt_socket(BR)).await?;
    let metered = flow(
        32,
        100,
        0,
        vec![MatchField::Reg {
            index: 14,
            value: 3,
            mask: None,
        }],
        vec![Action::Meter(5), Action::Resubmit { table: 33 }],
    );
    // The flow comes first in the ops: the channel still creates the meter before it.
    ch.apply_bundle(vec![
        BundleOp::FlowAdd(metered.clone()),
        BundleOp::MeterAdd(meter5()),
        BundleOp::MeterAdd(meter6(100)),
    ])
    .await?;
    assert_eq!(
        dump_meters_text(&ovs)?,
        vec![render_meter(&meter5()), render_meter(&meter6(100))]
    );
    let mut got = ch.dump_meters().await?;
    got.sort_by_key(|m| m.id);
    assert_eq!(got, vec![meter5(), meter6(100)]);
    let flows = ovs.ofctl(&["-O", "OpenFlow15", "--no-stats", "dump-flows", BR])?;
    assert_eq!(flows.trim(), render_flow(&metered));
    assert_eq!(ch.dump_flows().await?, vec![metered.clone()]);
    let stats = ch.meter_stats().await?;
    let s5 = stats
        .iter()
        .find(|s| s.meter_id == 5)
        .expect("meter 5 stats");
    assert_eq!((s5.flow_count, s5.bands.len()), (1, 1));

    ch.meter_mod(MeterModCommand::Modify, meter6(50)).await?;
    let mut got = ch.dump_meters().await?;
    got.sort_by_key(|m| m.id);
    assert_eq!(got, vec![meter5(), meter6(50)]);

    // Deleting the flow and its meter together: the meter goes after the bundle.
    ch.apply_bundle(vec![
        BundleOp::MeterDelete(5),
        BundleOp::FlowDeleteStrict(metered.key()),
    ])
    .await?;
    assert_eq!(ch.dump_meters().await?, vec![meter6(50)]);
    assert!(ch.dump_flows().await?.is_empty());

    // A meter error names the op.
    let err = ch
        .apply_bundle(vec![BundleOp::MeterModify(Meter {
            id: 77,
            ..meter6(1)
        })])
        .await
        .expect_err("modify of a missing meter");
    assert!(
        matches!(err, weft_openflow::OfError::BundleOp { index: 0, .. }),
        "{err}"
    );
    Ok(())
}

async fn read_msg(s: &mut tokio::net::UnixStream) -> anyhow::Result<(u32, Message)> {
    let mut hdr = [0u8; 8];
    s.read_exact(&mut hdr).await?;
    let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
    let mut buf = hdr.to_vec();
    buf.resize(len, 0);
    s.read_exact(&mut buf[8..]).await?;
    let (h, m) = codec::decode(&buf)?;
    Ok((h.xid, m))
}

/// Finding recorded in `BundleOp::MeterAdd`: ovs-vswitchd 3.1 rejects a meter_mod added to
/// a bundle with OFPBFC_MSG_UNSUP.
#[tokio::test]
async fn meters_are_refused_inside_a_bundle() -> anyhow::Result<()> {
    if !ovs_available() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    ovs.add_bridge(BR)?;
    let mut s = tokio::net::UnixStream::connect(ovs.mgmt_socket(BR)).await?;
    let flags = OFPBF_ATOMIC | OFPBF_ORDERED;
    let mut out = codec::encode_to_vec(1, &Message::Hello { versions: vec![6] })?;
    codec::encode(
        2,
        &Message::BundleControl(BundleControl {
            bundle_id: 1,
            ctrl_type: BundleCtrlType::OpenRequest,
            flags,
            properties: vec![],
        }),
        &mut out,
    )?;
    codec::encode(
        3,
        &Message::BundleAdd(BundleAdd {
            bundle_id: 1,
            flags,
            message: Box::new(Message::MeterMod(MeterMod {
                command: MeterModCommand::Add,
                meter: meter5(),
            })),
        }),
        &mut out,
    )?;
    codec::encode(4, &Message::BarrierRequest, &mut out)?;
    s.write_all(&out).await?;
    let mut error = None;
    loop {
        match read_msg(&mut s).await? {
            (3, Message::Error(e)) => error = Some(e),
            (4, Message::BarrierReply) => break,
            _ => {}
        }
    }
    let e = error.expect("OVS accepted a meter_mod inside a bundle");
    assert_eq!(e.name(), "OFPBFC_MSG_UNSUP", "{e}");
    Ok(())
}
