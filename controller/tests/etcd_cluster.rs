//! A controller on a real 3-member etcd cluster keeps taking writes when one member dies
//! (SIGKILL): the measured gap before the next write succeeds is printed, and every write
//! after it succeeds; the write made before the failure is still there.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::*;
use weft_proto::v1::*;
use weft_testbed::etcd::EtcdCluster;

fn switch(name: &str, subnet: &str) -> CreateSwitchRequest {
    CreateSwitchRequest {
        switch: Some(LogicalSwitch {
            name: name.into(),
            subnet: subnet.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn writes_continue_when_one_of_three_etcd_members_dies() {
    let mut cluster = EtcdCluster::start(3).expect("3-member etcd (is `etcd` installed?)");
    let prefix = unique_prefix("cluster");
    let mut cfg = config(&cluster.endpoints()[0], &prefix);
    cfg.etcd_endpoints = cluster.endpoints();
    let ctl = InProc::start(cfg).await;
    let mut nb = nb(&ctl.url()).await;
    nb.create_switch(switch("before", "10.60.0.0/24"))
        .await
        .expect("write with all members up");

    cluster.member(0).unwrap().stop();
    let t = Instant::now();
    let mut first_ok = None;
    let mut failures = 0;
    while t.elapsed() < Duration::from_secs(30) {
        match nb.create_switch(switch("after0", "10.61.0.0/24")).await {
            Ok(_) => {
                first_ok = Some(t.elapsed());
                break;
            }
            Err(e) if e.code() == tonic::Code::AlreadyExists => {
                first_ok = Some(t.elapsed());
                break;
            }
            Err(_) => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    println!(
        "etcd member 0 of 3 killed: the next write succeeded after {first_ok:?} ({failures} failed attempts)"
    );
    let gap = first_ok.expect("writes did not continue with 2 of 3 members");
    assert!(gap < Duration::from_secs(10), "took {gap:?}");
    for i in 1..=10 {
        nb.create_switch(switch(
            &format!("after{i}"),
            &format!("10.{}.0.0/24", 61 + i),
        ))
        .await
        .unwrap_or_else(|e| panic!("write {i} with one member down: {e}"));
    }
    let names: Vec<String> = nb
        .list_switches(ListSwitchesRequest {})
        .await
        .unwrap()
        .into_inner()
        .switches
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(names.contains(&"before".to_string()), "{names:?}");
    assert_eq!(names.len(), 12, "{names:?}");
    ctl.stop().await;
}
