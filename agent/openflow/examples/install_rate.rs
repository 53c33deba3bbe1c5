//! Flow-install rate: 100k flows through our `OfChannel` bundle versus
//! `ovs-ofctl -O OpenFlow15 --bundle add-flows` of the same flows, into the same bridge of a
//! private ovsdb-server + ovs-vswitchd (started here, stopped on exit).
//!
//! Run: `cargo run --release -p weft-openflow --example install_rate [-- N_FLOWS]`
//! (needs root for the network namespace, and openvswitch-switch installed).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use weft_openflow::flow::{Action, Flow, Mac, Match, MatchField};
use weft_openflow::{render_flow, BundleOp, OfChannel};

const BR: &str = "br-int";

/// L2-lookup-like flows: metadata (network) + destination MAC → set tunnel + output.
fn flows(n: u32) -> Vec<Flow> {
    (0..n)
        .map(|i| Flow {
            table: 50,
            priority: 100,
            cookie: 0x0100_0000_0000_0000 | u64::from(i),
            matches: Match::from_fields([
                MatchField::Metadata {
                    value: u64::from(1 + i % 64),
                    mask: None,
                },
                MatchField::EthDst {
                    value: Mac([
                        0x0a,
                        0x58,
                        (i >> 24) as u8,
                        (i >> 16) as u8,
                        (i >> 8) as u8,
                        i as u8,
                    ]),
                    mask: None,
                },
            ]),
            actions: vec![
                Action::SetField(weft_openflow::flow::SetField::Reg {
                    index: 15,
                    value: i,
                }),
                Action::Output(1 + i % 8),
            ],
        })
        .collect()
}

fn count_flows(ovs: &common::Ovs) -> anyhow::Result<usize> {
    let out = ovs.ofctl(&["-O", "OpenFlow15", "--no-stats", "dump-flows", BR])?;
    Ok(out.lines().filter(|l| l.starts_with(' ')).count())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let ovs = common::Ovs::start()?;
    let sock = ovs.add_bridge(BR)?;
    let flows = flows(n);

    // 1. Our channel.
    let ch = OfChannel::connect(&sock).await?;
    let ops: Vec<BundleOp> = flows.iter().cloned().map(BundleOp::FlowAdd).collect();
    let t = Instant::now();
    ch.apply_bundle(ops).await?;
    let ours = t.elapsed();
    let t = Instant::now();
    let dumped = ch.dump_flows().await?;
    let dump = t.elapsed();
    anyhow::ensure!(
        dumped.len() == flows.len(),
        "dumped {} flows, expected {}",
        dumped.len(),
        flows.len()
    );
    drop(ch);

    // 2. ovs-ofctl --bundle add-flows of the same flows (rendered text) into the emptied bridge.
    ovs.ofctl(&["-O", "OpenFlow15", "del-flows", BR])?;
    anyhow::ensure!(count_flows(&ovs)? == 0, "bridge not empty");
    let mut file = tempfile::NamedTempFile::new()?;
    for f in &flows {
        writeln!(file, "{}", render_flow(f))?;
    }
    file.flush()?;
    let path = file.path().to_str().context("temp path")?.to_string();
    let t = Instant::now();
    ovs.ofctl(&["-O", "OpenFlow15", "--bundle", "add-flows", BR, &path])?;
    let ofctl = t.elapsed();
    let installed = count_flows(&ovs)?;
    anyhow::ensure!(
        installed == flows.len(),
        "ovs-ofctl installed {installed} flows"
    );

    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!("flows:                               {n}");
    println!(
        "weft OfChannel bundle:               {:>8.3} s  ({:>9.0} flows/s)",
        ours.as_secs_f64(),
        rate(ours)
    );
    println!(
        "ovs-ofctl --bundle add-flows:        {:>8.3} s  ({:>9.0} flows/s)",
        ofctl.as_secs_f64(),
        rate(ofctl)
    );
    println!(
        "weft dump_flows (read back + decode): {:>7.3} s",
        dump.as_secs_f64()
    );
    Ok(())
}
