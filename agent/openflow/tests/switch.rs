//! Integration tests against a real ovsdb-server + ovs-vswitchd (started per test by the
//! local fixture in `common/`, each in its own temp dir and network namespace): handshake,
//! echo, bundles, read-back equality, rendering equality with `ovs-ofctl dump-flows`, failed
//! bundles leaving the switch untouched, foreign flows, disconnects and version mismatch.

use std::time::Duration;

use anyhow::Context;
use weft_openflow::channel::{BundleOp, OfChannel, OfError};
use weft_openflow::flow::{Action, Flow, Mac, MatchField};
use weft_openflow::{render_flow, render_group};

mod common;
use common::samples::{flow, sample_flows, sample_groups};
use common::Ovs;

const BR: &str = "br-int";

fn start_ovs() -> anyhow::Result<Ovs> {
    let ovs = Ovs::start()?;
    ovs.add_bridge(BR)?;
    Ok(ovs)
}

fn install_ops() -> Vec<BundleOp> {
    let mut ops: Vec<BundleOp> = sample_groups()
        .into_iter()
        .map(BundleOp::GroupAdd)
        .collect();
    ops.extend(sample_flows().into_iter().map(BundleOp::FlowAdd));
    ops
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn sort_flows(mut v: Vec<Flow>) -> Vec<Flow> {
    v.sort_by_key(render_flow);
    v
}

fn ofctl_lines(ovs: &Ovs, args: &[&str]) -> anyhow::Result<Vec<String>> {
    let out = ovs.ofctl(args)?;
    Ok(out
        .lines()
        .filter(|l| l.starts_with(' '))
        .map(|l| l.trim_start().to_string())
        .collect())
}

fn ofctl_flows(ovs: &Ovs) -> anyhow::Result<Vec<String>> {
    ofctl_lines(ovs, &["-O", "OpenFlow15", "--no-stats", "dump-flows", BR])
}

#[tokio::test]
async fn handshake_echo_barrier_features() -> anyhow::Result<()> {
    let ovs = start_ovs()?;
    let ch = OfChannel::connect(&ovs.mgmt_socket(BR)).await?;
    assert_eq!(ch.echo(b"weft-echo".to_vec()).await?, b"weft-echo".to_vec());
    ch.barrier().await?;
    let f = ch.features().await?;
    assert!(f.n_tables >= 200, "n_tables={}", f.n_tables);
    assert!(!ch.is_closed());
    Ok(())
}

#[tokio::test]
async fn bundle_installs_flows_that_render_and_read_back_identically() -> anyhow::Result<()> {
    let ovs = start_ovs()?;
    let ch = OfChannel::connect(&ovs.mgmt_socket(BR)).await?;
    ch.apply_bundle(install_ops()).await?;

    // ovs-ofctl prints exactly our rendering, line for line.
    let expected: Vec<String> = sorted(sample_flows().iter().map(render_flow).collect());
    assert_eq!(sorted(ofctl_flows(&ovs)?), expected);
    let groups = sorted(ofctl_lines(&ovs, &["-O", "OpenFlow15", "dump-groups", BR])?);
    assert_eq!(
        groups,
        sorted(sample_groups().iter().map(render_group).collect())
    );

    // Flow stats decode to exactly the flows we sent.
    assert_eq!(
        sort_flows(ch.dump_flows().await?),
        sort_flows(sample_flows())
    );
    let mut got = ch.dump_groups().await?;
    got.sort_by_key(|g| g.id);
    assert_eq!(got, sample_groups());

    // Installing the same set again changes nothing.
    ch.apply_bundle(install_ops()[2..].to_vec()).await?;
    assert_eq!(
        sort_flows(ch.dump_flows().await?),
        sort_flows(sample_flows())
    );
    Ok(())
}

#[tokio::test]
async fn bundle_with_one_bad_flow_reports_index_and_changes_nothing() -> anyhow::Result<()> {
    let ovs = start_ovs()?;
    let ch = OfChannel::connect(&ovs.mgmt_socket(BR)).await?;
    ch.apply_bundle(install_ops()).await?;
    let before = ofctl_flows(&ovs)?;

    let good = flow(
        30,
        5,
        7,
        vec![MatchField::InPort(9)],
        vec![Action::Output(1)],
    );
    let good2 = flow(
        30,
        6,
        7,
        vec![MatchField::InPort(10)],
        vec![Action::Output(2)],
    );
    // Output to a group that does not exist.
    let bad_group = flow(
        30,
        7,
        7,
        vec![MatchField::InPort(11)],
        vec![Action::Group(999)],
    );
    let err = ch
        .apply_bundle(vec![
            BundleOp::FlowAdd(good.clone()),
            BundleOp::FlowDeleteStrict(sample_flows()[0].key()),
            BundleOp::FlowAdd(bad_group),
            BundleOp::FlowAdd(good2.clone()),
        ])
        .await
        .expect_err("bundle with a bad flow must fail");
    match &err {
        OfError::BundleOp { index, error, .. } => {
            assert_eq!(*index, 2, "{err}");
            assert_eq!(error.name(), "OFPBAC_BAD_OUT_GROUP", "{err}");
        }
        other => panic!("unexpected error {other}"),
    }
    assert_eq!(ofctl_flows(&ovs)?, before);
    assert_eq!(
        sort_flows(ch.dump_flows().await?),
        sort_flows(sample_flows())
    );

    // goto_table to an earlier table is rejected too.
    let backwards = flow(40, 1, 0, vec![], vec![Action::GotoTable(10)]);
    let err = ch
        .apply_bundle(vec![
            BundleOp::FlowAdd(good.clone()),
            BundleOp::FlowAdd(backwards),
        ])
        .await
        .expect_err("goto to an earlier table must fail");
    let OfError::BundleOp {
        index: 1, error, ..
    } = &err
    else {
        panic!("unexpected error {err}");
    };
    assert_eq!(error.name(), "OFPBIC_BAD_TABLE_ID", "{err}");
    assert_eq!(ofctl_flows(&ovs)?, before);

    // The channel is still usable and a good bundle applies.
    ch.apply_bundle(vec![
        BundleOp::FlowAdd(good.clone()),
        BundleOp::FlowAdd(good2.clone()),
    ])
    .await?;
    let mut want = sample_flows();
    want.extend([good, good2]);
    assert_eq!(sort_flows(ch.dump_flows().await?), sort_flows(want));
    Ok(())
}

#[tokio::test]
async fn modify_delete_groups_and_foreign_flows() -> anyhow::Result<()> {
    let ovs = start_ovs()?;
    let ch = OfChannel::connect(&ovs.mgmt_socket(BR)).await?;
    ch.apply_bundle(install_ops()).await?;

    // A flow someone added by hand with a field Weft does not model (nw_tos).
    ovs.ofctl(&[
        "-O",
        "OpenFlow15",
        "add-flow",
        BR,
        "table=5,priority=10,ip,nw_tos=8,actions=drop",
    ])?;
    let flows = ch.dump_flows().await?;
    let foreign = flows
        .iter()
        .find(|f| f.table == 5)
        .context("foreign flow not dumped")?
        .clone();
    assert!(
        foreign
            .matches
            .fields()
            .iter()
            .any(|f| matches!(f, MatchField::Other(_))),
        "{foreign:?}"
    );

    let mut modified = sample_flows()[5].clone();
    modified.actions = vec![Action::Output(4)];
    let mut group1 = sample_groups()[0].clone();
    group1.buckets.pop();
    let deleted = sample_flows()[4].clone(); // the only user of group 1 besides nothing
    ch.apply_bundle(vec![
        BundleOp::FlowDeleteStrict(foreign.key()),
        BundleOp::FlowModifyStrict(modified.clone()),
        BundleOp::FlowDeleteStrict(deleted.key()),
        BundleOp::GroupModify(group1.clone()),
        BundleOp::GroupDelete(2),
        BundleOp::FlowDeleteStrict(sample_flows()[7].key()),
    ])
    .await?;

    let mut want: Vec<Flow> = sample_flows();
    want[5] = modified;
    want.retain(|f| f.key() != deleted.key() && f.key() != sample_flows()[7].key());
    assert_eq!(sort_flows(ch.dump_flows().await?), sort_flows(want.clone()));
    assert_eq!(
        sorted(ofctl_flows(&ovs)?),
        sorted(want.iter().map(render_flow).collect())
    );
    assert_eq!(ch.dump_groups().await?, vec![group1.clone()]);
    assert_eq!(
        ofctl_lines(&ovs, &["-O", "OpenFlow15", "dump-groups", BR])?,
        vec![render_group(&group1)]
    );
    Ok(())
}

#[tokio::test]
async fn large_bundle_streams_and_reads_back() -> anyhow::Result<()> {
    let ovs = start_ovs()?;
    let ch = OfChannel::connect(&ovs.mgmt_socket(BR)).await?;
    let flows: Vec<Flow> = (0..5000u32)
        .map(|i| {
            flow(
                50,
                100,
                u64::from(i),
                vec![
                    MatchField::Metadata {
                        value: u64::from(i % 7),
                        mask: None,
                    },
                    MatchField::EthDst {
                        value: Mac([0x0a, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
                        mask: None,
                    },
                ],
                vec![Action::Output(1 + i % 4)],
            )
        })
        .collect();
    ch.apply_bundle(flows.iter().cloned().map(BundleOp::FlowAdd).collect())
        .await?;
    let got = ch.dump_flows().await?;
    assert_eq!(got.len(), flows.len());
    assert_eq!(sort_flows(got), sort_flows(flows));
    Ok(())
}

#[tokio::test]
async fn disconnect_surfaces_as_error() -> anyhow::Result<()> {
    let mut ovs = start_ovs()?;
    let ch = OfChannel::connect(&ovs.mgmt_socket(BR)).await?;
    ch.barrier().await?;
    ovs.stop_vswitchd();
    let mut saw_error = false;
    for _ in 0..50 {
        match ch.barrier().await {
            Err(OfError::Disconnected) => {
                saw_error = true;
                break;
            }
            Err(e) => panic!("expected Disconnected, got {e}"),
            Ok(()) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(
        saw_error,
        "barrier kept succeeding after ovs-vswitchd stopped"
    );
    assert!(ch.is_closed());
    assert!(matches!(ch.dump_flows().await, Err(OfError::Disconnected)));
    Ok(())
}

#[tokio::test]
async fn bridge_without_openflow15_is_a_clear_version_error() -> anyhow::Result<()> {
    let ovs = start_ovs()?;
    ovs.vsctl(&["set", "bridge", BR, "protocols=OpenFlow13"])?;
    let err = OfChannel::connect(&ovs.mgmt_socket(BR))
        .await
        .expect_err("1.3-only bridge");
    assert!(matches!(err, OfError::Version(_)), "{err}");
    assert!(err.to_string().contains("OpenFlow 1.5"), "{err}");
    Ok(())
}

#[tokio::test]
async fn missing_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = OfChannel::connect(&dir.path().join("nope.mgmt"))
        .await
        .expect_err("no socket");
    assert!(matches!(err, OfError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("nope.mgmt"), "{err}");
}

/// A scripted fake switch on a unix socket, for behaviour OVS does not trigger on demand.
mod fake {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;
    use weft_openflow::codec::{self, Message};

    pub async fn read_msg(s: &mut UnixStream) -> anyhow::Result<(u32, Message)> {
        let mut hdr = [0u8; 8];
        s.read_exact(&mut hdr).await?;
        let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
        let mut buf = hdr.to_vec();
        buf.resize(len, 0);
        s.read_exact(&mut buf[8..]).await?;
        let (h, m) = codec::decode(&buf)?;
        Ok((h.xid, m))
    }

    pub async fn send(s: &mut UnixStream, xid: u32, m: &Message) -> anyhow::Result<()> {
        s.write_all(&codec::encode_to_vec(xid, m)?).await?;
        Ok(())
    }
}

#[tokio::test]
async fn switch_echo_requests_are_answered_and_close_fails_pending_requests() -> anyhow::Result<()>
{
    use weft_openflow::codec::Message;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("fake.mgmt");
    let listener = tokio::net::UnixListener::bind(&path)?;
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let (_, hello) = fake::read_msg(&mut s).await?;
        anyhow::ensure!(
            hello == Message::Hello { versions: vec![6] },
            "bad hello {hello:?}"
        );
        fake::send(
            &mut s,
            1,
            &Message::Hello {
                versions: vec![1, 4, 6],
            },
        )
        .await?;
        fake::send(&mut s, 77, &Message::EchoRequest(b"ping".to_vec())).await?;
        // Expect the echo reply and the client's barrier (in either order); never answer the
        // barrier, then hang up.
        let (mut echoed, mut barrier) = (false, false);
        while !(echoed && barrier) {
            match fake::read_msg(&mut s).await? {
                (77, Message::EchoReply(d)) if d == b"ping" => echoed = true,
                (_, Message::BarrierRequest) => barrier = true,
                other => anyhow::bail!("unexpected {other:?}"),
            }
        }
        drop(s);
        Ok(())
    });
    let ch = OfChannel::connect(&path).await?;
    let r = ch.barrier().await;
    server.await??;
    assert!(matches!(r, Err(OfError::Disconnected)), "{r:?}");
    Ok(())
}

#[tokio::test]
async fn switch_offering_only_older_versions_is_rejected() -> anyhow::Result<()> {
    use weft_openflow::codec::Message;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("old.mgmt");
    let listener = tokio::net::UnixListener::bind(&path)?;
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let _ = fake::read_msg(&mut s).await?;
        // A bare OpenFlow 1.3 hello (no bitmap).
        s_write_raw(&mut s, &[4, 0, 0, 8, 0, 0, 0, 1]).await?;
        // The client answers with HELLO_FAILED before closing.
        let (_, m) = fake::read_msg(&mut s).await?;
        anyhow::ensure!(
            matches!(m, Message::Error(ref e) if e.err_type == 0),
            "{m:?}"
        );
        Ok::<_, anyhow::Error>(())
    });
    let err = OfChannel::connect(&path).await.expect_err("1.3 switch");
    assert!(matches!(err, OfError::Version(_)), "{err}");
    server.await??;
    Ok(())
}

async fn s_write_raw(s: &mut tokio::net::UnixStream, b: &[u8]) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    s.write_all(b).await?;
    Ok(())
}
