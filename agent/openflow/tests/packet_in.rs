//! The packet path against a real ovs-vswitchd 3.1: packet-out, packet-in2 with userdata,
//! registers in the metadata and a continuation (`controller(pause)`), NXT_RESUME, conntrack
//! zone flush, and the Geneve TLV table (NXT_TLV_TABLE_MOD / REQUEST, byte-exact against
//! `ovs-ofctl add-tlv-map`) with `tun_metadata0` matches and set_field read back.

mod common;

use std::time::Duration;

use weft_openflow::channel::{BundleOp, OfChannel};
use weft_openflow::codec::{
    self, packet_in_reason, Message, PacketOut, TlvMap, TlvTableCommand, TlvTableMod, OFP_NO_BUFFER,
};
use weft_openflow::flow::{ports, Action, Controller, Match, MatchField, SetField};
use weft_openflow::render_flow;

use common::capture::{hex, ofctl_one};
use common::samples::flow;
use common::{ovs_available, Ovs};

const BR: &str = "br-int";

/// A broadcast ARP request, 42 bytes.
fn arp_packet() -> Vec<u8> {
    let mut p = vec![0xff; 6];
    p.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0x08, 0x06]);
    p.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    p.extend_from_slice(&[0, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    p
}

#[tokio::test]
async fn packet_out_packet_in2_pause_and_resume() -> anyhow::Result<()> {
    if !ovs_available() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    ovs.add_bridge(BR)?;
    let ch = OfChannel::connect(&ovs.mgmt_socket(BR)).await?;
    let mut rx = ch.take_packet_ins().expect("receiver");
    assert!(ch.take_packet_ins().is_none());
    ch.enable_packet_in().await?;

    ch.packet_out(PacketOut {
        buffer_id: OFP_NO_BUFFER,
        matches: Match::new().with(MatchField::InPort(ports::CONTROLLER)),
        actions: vec![
            Action::SetField(SetField::Reg {
                index: 14,
                value: 7,
            }),
            Action::Controller(Controller {
                userdata: vec![1, 2, 3, 4],
                pause: true,
                ..Controller::default()
            }),
            Action::SetField(SetField::Reg {
                index: 15,
                value: 9,
            }),
            Action::Controller(Controller {
                userdata: vec![0xaa],
                ..Controller::default()
            }),
        ],
        packet: arp_packet(),
    })
    .await?;
    // The barrier inside packet_out keeps working while packet-ins arrive.
    ch.barrier().await?;
    let pin = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await?
        .expect("packet-in");
    assert_eq!(pin.packet, arp_packet());
    assert_eq!(pin.userdata, vec![1, 2, 3, 4]);
    assert_eq!(pin.reason, packet_in_reason::ACTION);
    assert!(pin.continuation.is_some(), "{pin:?}");
    assert!(
        pin.metadata.fields().contains(&MatchField::Reg {
            index: 14,
            value: 7,
            mask: None
        }),
        "{:?}",
        pin.metadata
    );
    // Resume: the rest of the actions run, ending in the second controller action.
    ch.resume(&pin).await?;
    let pin2 = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await?
        .expect("second packet-in");
    assert_eq!(pin2.userdata, vec![0xaa]);
    assert!(pin2.continuation.is_none());
    assert!(pin2.metadata.fields().contains(&MatchField::Reg {
        index: 15,
        value: 9,
        mask: None
    }));
    assert_eq!(ch.dropped_packet_ins(), 0);
    assert_eq!(ch.malformed_packet_ins(), 0);

    // Conntrack flush by zone is accepted.
    ch.ct_flush_zone(5).await?;
    Ok(())
}

fn geneve_map() -> TlvTableMod {
    TlvTableMod {
        command: TlvTableCommand::Add,
        maps: vec![TlvMap {
            option_class: 0x0102,
            option_type: 0x80,
            option_len: 4,
            index: 0,
        }],
    }
}

#[test]
fn tlv_table_mod_encodes_exactly_like_ovs_ofctl() -> anyhow::Result<()> {
    if !ovs_available() {
        return Ok(());
    }
    let theirs = ofctl_one(
        "add-tlv-map",
        &["{class=0x102,type=0x80,len=4}->tun_metadata0"],
        4,
    )?;
    let msg = Message::TlvTableMod(geneve_map());
    assert_eq!(hex(&codec::encode_to_vec(4, &msg)?), hex(&theirs));
    assert_eq!(codec::decode(&theirs)?.1, msg);
    let theirs = ofctl_one("del-tlv-map", &[], 4)?;
    let clear = Message::TlvTableMod(TlvTableMod {
        command: TlvTableCommand::Clear,
        maps: vec![],
    });
    assert_eq!(hex(&codec::encode_to_vec(4, &clear)?), hex(&theirs));
    Ok(())
}

#[tokio::test]
async fn tlv_map_and_tun_metadata_flows_read_back() -> anyhow::Result<()> {
    if !ovs_available() {
        return Ok(());
    }
    let ovs = Ovs::start()?;
    ovs.add_bridge(BR)?;
    let ch = OfChannel::connect(&ovs.mgmt_socket(BR)).await?;
    ch.tlv_table_mod(geneve_map()).await?;
    let table = ch.tlv_table().await?;
    assert_eq!(table.maps, geneve_map().maps);
    assert!(table.max_fields >= 64);

    let f = flow(
        0,
        100,
        0,
        vec![
            MatchField::TunMetadata {
                index: 0,
                value: vec![0, 1, 0, 0],
                mask: Some(vec![0xff, 0xff, 0, 0]),
            },
            MatchField::InPort(7),
        ],
        vec![
            Action::SetField(SetField::TunMetadata {
                index: 0,
                value: vec![5],
                mask: None,
            }),
            Action::Resubmit { table: 60 },
        ],
    );
    ch.apply_bundle(vec![BundleOp::FlowAdd(f.clone())]).await?;
    let text = ovs.ofctl(&["-O", "OpenFlow15", "--no-stats", "dump-flows", BR])?;
    assert_eq!(text.trim(), render_flow(&f));
    assert_eq!(ch.dump_flows().await?, vec![f]);
    Ok(())
}
