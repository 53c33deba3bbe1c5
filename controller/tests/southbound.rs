//! Southbound against a real etcd: Subscribe sends a snapshot then deltas, every intent change
//! reaches every stream (even with an empty delta), acks do not cause updates, ReportStatus
//! binds ports and sets `up`, a chassis record outlives its stream (only `alive` follows the
//! lease) until chassis-del, and
//! `--wait=hv` waits for acks or times out naming the laggards.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::*;
use tonic::{Code, Streaming};
use weft_controller::view::{self, View};
use weft_proto::v1::northbound_client::NorthboundClient;
use weft_proto::v1::southbound_client::SouthboundClient;
use weft_proto::v1::*;

fn chassis(name: &str, ip: &str) -> SubscribeRequest {
    SubscribeRequest {
        chassis: Some(Chassis {
            name: name.into(),
            encap_ip: ip.into(),
            encap_types: vec!["geneve".into(), "vxlan".into()],
            datapath_type: "netdev".into(),
            version: "test".into(),
            ..Default::default()
        }),
    }
}

/// The next update of `stream`, by kind.
async fn next(stream: &mut Streaming<ViewUpdate>) -> view::Delta {
    let u = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("an update within 5 s")
        .expect("stream ok")
        .expect("stream open");
    view::Delta::from_update(&u).expect("well-formed update")
}

/// Reads updates into `view` until `pred` holds; returns the last update.
async fn until(
    stream: &mut Streaming<ViewUpdate>,
    v: &mut View,
    pred: impl Fn(&View, &view::Delta) -> bool,
) -> view::Delta {
    for _ in 0..50 {
        let u = next(stream).await;
        view::apply_delta(v, &u);
        if pred(v, &u) {
            return u;
        }
    }
    panic!("condition not reached; view: {v:?}");
}

async fn report(
    s: &mut SouthboundClient<tonic::transport::Channel>,
    chassis: &str,
    applied: i64,
    ports: &[(&str, bool)],
) -> i64 {
    s.report_status(StatusReport {
        chassis: chassis.into(),
        applied_revision: applied,
        ports: ports
            .iter()
            .map(|(p, up)| PortBinding {
                port: p.to_string(),
                chassis: chassis.into(),
                up: *up,
            })
            .collect(),
        last_error: String::new(),
    })
    .await
    .expect("report status")
    .into_inner()
    .revision
}

fn create_port(switch: &str, name: &str, addrs: &[&str]) -> CreatePortRequest {
    CreatePortRequest {
        port: Some(LogicalSwitchPort {
            name: name.into(),
            switch_name: switch.into(),
            addresses: addrs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
        options: None,
    }
}

fn create_switch(name: &str, subnet: &str) -> CreateSwitchRequest {
    CreateSwitchRequest {
        switch: Some(LogicalSwitch {
            name: name.into(),
            subnet: subnet.into(),
            ..Default::default()
        }),
        options: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_deltas_and_status() {
    let etcd = start_etcd();
    let prefix = unique_prefix("sb");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    let mut s = sb(&ctl.url()).await;
    c.create_switch(create_switch("sw", "10.0.0.0/24"))
        .await
        .unwrap();
    // p2's static address first: a dynamic p1 created first could draw 10.0.0.22 (and its
    // derived MAC) itself, and p2 would then be refused as a duplicate.
    c.create_port(create_port("sw", "p2", &["0a:00:00:00:00:22 10.0.0.22"]))
        .await
        .unwrap();
    let p1 = c
        .create_port(create_port("sw", "p1", &["dynamic"]))
        .await
        .unwrap()
        .into_inner();
    let p1_dyn = p1.port.unwrap().dynamic_addresses;

    let mut hv1 = s
        .subscribe(chassis("hv1", "192.168.0.1"))
        .await
        .unwrap()
        .into_inner();
    let snap = next(&mut hv1).await;
    assert!(snap.snapshot);
    assert!(snap.revision >= p1.revision);
    assert!(
        snap.switches.is_empty() && snap.ports.is_empty(),
        "nothing bound yet: {snap:?}"
    );
    let mut v1 = View::default();
    view::apply_delta(&mut v1, &snap);

    let chassis_list = c
        .list_chassis(ListChassisRequest {})
        .await
        .unwrap()
        .into_inner()
        .chassis;
    assert_eq!(chassis_list.len(), 1);
    assert_eq!(chassis_list[0].name, "hv1");
    assert!(chassis_list[0].alive);
    assert_eq!(chassis_list[0].encap_ip, "192.168.0.1");

    // Binding p1 on hv1 brings switch sw and all its ports into hv1's view.
    report(&mut s, "hv1", snap.revision, &[("p1", true)]).await;
    let got = c
        .get_port(GetRequest { name: "p1".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(got.up);
    assert_eq!(got.chassis, "hv1");
    let u = until(&mut hv1, &mut v1, |v, _| v.ports.len() == 2).await;
    assert!(!u.snapshot);
    assert_eq!(v1.switches["sw"].subnet, "10.0.0.0/24");
    let vp1 = &v1.ports["p1"];
    assert_eq!(vp1.chassis, "hv1");
    let (mac, ip) = p1_dyn.split_once(' ').unwrap();
    assert_eq!(vp1.addresses[0].mac, mac);
    assert_eq!(vp1.addresses[0].ips, vec![ip.to_string()]);
    assert_eq!(v1.ports["p2"].chassis, "");
    assert!(v1.chassis.is_empty());

    // Acks (status with unchanged bindings) do not produce updates.
    // (Acks are held in the controller and written to etcd in batches, so an ack no longer
    // bumps etcd's revision before the call returns: the repeat is of the same revision.)
    report(&mut s, "hv1", u.revision, &[("p1", true)]).await;
    report(&mut s, "hv1", u.revision, &[("p1", true)]).await;
    let quiet = tokio::time::timeout(Duration::from_millis(700), hv1.message()).await;
    assert!(quiet.is_err(), "an ack caused an update: {quiet:?}");

    // A second chassis binds p2: hv1 learns the remote chassis, hv2 gets its snapshot.
    let mut hv2 = s
        .subscribe(chassis("hv2", "192.168.0.2"))
        .await
        .unwrap()
        .into_inner();
    let mut v2 = View::default();
    view::apply_delta(&mut v2, &next(&mut hv2).await);
    report(&mut s, "hv2", 0, &[("p2", false)]).await;
    until(&mut hv1, &mut v1, |v, _| v.chassis.contains_key("hv2")).await;
    assert_eq!(v1.ports["p2"].chassis, "hv2");
    assert_eq!(v1.chassis["hv2"].encap_ip, "192.168.0.2");
    assert_eq!(v1.chassis["hv2"].encap_types, vec!["geneve", "vxlan"]);
    until(&mut hv2, &mut v2, |v, _| {
        v.chassis.contains_key("hv1") && v.ports.len() == 2
    })
    .await;

    // An intent change outside hv1's view still reaches hv1, as an empty delta.
    let other = c
        .create_switch(create_switch("other", ""))
        .await
        .unwrap()
        .into_inner();
    let u = next(&mut hv1).await;
    assert!(u.revision >= other.revision, "{u:?}");
    assert!(u.ports.is_empty() && u.switches.is_empty() && u.deleted_ports.is_empty());

    // Port add / delete deltas.
    c.create_port(create_port("sw", "p3", &[])).await.unwrap();
    let u = until(&mut hv1, &mut v1, |v, _| v.ports.contains_key("p3")).await;
    assert_eq!(u.ports.len(), 1);
    c.delete_port(DeleteRequest {
        name: "p2".into(),
        options: None,
    })
    .await
    .unwrap();
    let u = until(&mut hv1, &mut v1, |v, _| !v.ports.contains_key("p2")).await;
    assert_eq!(u.deleted_ports, vec!["p2"]);
    assert_eq!(
        u.deleted_chassis,
        vec!["hv2"],
        "hv2 has no port left in hv1's view"
    );
    until(&mut hv2, &mut v2, |v, _| {
        v.switches.is_empty() && v.ports.is_empty()
    })
    .await;

    // Reporting the full set without p1 unbinds it.
    report(&mut s, "hv1", u.revision, &[]).await;
    let got = c
        .get_port(GetRequest { name: "p1".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!got.up);
    assert_eq!(got.chassis, "");
    until(&mut hv1, &mut v1, |v, _| v.switches.is_empty()).await;
    ctl.stop().await;
}

async fn alive_of(c: &mut NorthboundClient<tonic::transport::Channel>) -> Vec<(String, bool)> {
    c.list_chassis(ListChassisRequest {})
        .await
        .map(|r| {
            r.into_inner()
                .chassis
                .into_iter()
                .map(|c| (c.name, c.alive))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chassis_record_outlives_its_stream_and_lease() {
    let etcd = start_etcd();
    let prefix = unique_prefix("lease");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    let mut s = sb(&ctl.url()).await;
    c.create_switch(create_switch("sw", "10.0.0.0/24"))
        .await
        .unwrap();
    c.create_port(create_port("sw", "p1", &["dynamic"]))
        .await
        .unwrap();
    c.create_port(create_port("sw", "p2", &["dynamic"]))
        .await
        .unwrap();
    let mut st = s
        .subscribe(chassis("hv1", "192.168.0.1"))
        .await
        .unwrap()
        .into_inner();
    let u = next(&mut st).await;
    report(&mut s, "hv1", u.revision, &[("p1", true)]).await;
    // hv3 watches: its port p2 shares the switch with hv1's p1.
    let mut s3 = sb(&ctl.url()).await;
    let mut st3 = s3
        .subscribe(chassis("hv3", "192.168.0.3"))
        .await
        .unwrap()
        .into_inner();
    let u3 = next(&mut st3).await;
    report(&mut s3, "hv3", u3.revision, &[("p2", true)]).await;
    let mut v3 = View::default();
    view::apply_delta(&mut v3, &u3);
    until(&mut st3, &mut v3, |v, _| v.chassis.contains_key("hv1")).await;
    // Keeps living beyond the TTL (3 s) while the stream is open.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        alive_of(&mut c).await,
        [("hv1".to_string(), true), ("hv3".to_string(), true)],
        "lease kept alive while the stream is open"
    );
    // Deleting an alive chassis is refused.
    let e = c
        .delete_chassis(DeleteRequest {
            name: "hv1".into(),
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    assert!(e.message().contains("alive"), "{}", e.message());
    let before_close = dump(&etcd.endpoint(), &prefix).await;
    drop(st);
    // The lease is left to expire (not revoked, so an agent restart causes no gap): alive
    // becomes false within the TTL after the last keep-alive; the record stays.
    let dead = eventually(Duration::from_secs(6), || {
        let mut c = c.clone();
        async move { alive_of(&mut c).await.first() == Some(&("hv1".to_string(), false)) }
    })
    .await;
    assert!(dead, "hv1 still alive after the lease TTL");
    let after = dump(&etcd.endpoint(), &prefix).await;
    let key = |k: &str| format!("{prefix}/v1/{k}");
    let find = |d: &[(String, Vec<u8>)], k: &str| d.iter().find(|(x, _)| *x == key(k)).cloned();
    assert_eq!(
        find(&after, "chassis/hv1"),
        find(&before_close, "chassis/hv1"),
        "the record is untouched"
    );
    assert!(find(&after, "status/alive/hv1").is_none());
    assert!(
        find(&after, "status/bindings/p1").is_some(),
        "bindings stay"
    );
    // hv3 keeps its tunnel to hv1 (its OVS still forwards): no update removed it.
    c.create_port(create_port("sw", "p3", &[])).await.unwrap();
    let u = until(&mut st3, &mut v3, |v, _| v.ports.contains_key("p3")).await;
    assert!(u.deleted_chassis.is_empty(), "{u:?}");
    assert!(v3.chassis.contains_key("hv1"), "{v3:?}");
    assert_eq!(v3.ports["p1"].chassis, "hv1");
    // --wait=hv waits only for alive chassis: hv3 acks, dead hv1 is not waited for.
    let r = c
        .sync(SyncRequest {
            revision: 0,
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    report(&mut s3, "hv3", r.revision, &[("p2", true)]).await;
    c.sync(SyncRequest {
        revision: r.revision,
        options: Some(WriteOptions {
            wait: WaitMode::WaitHv as i32,
            timeout_ms: 3000,
            ..Default::default()
        }),
    })
    .await
    .expect("wait=hv ignores the dead chassis");

    // chassis-del: the record and its bindings go; hv3's view drops hv1.
    c.delete_chassis(DeleteRequest {
        name: "hv1".into(),
        options: None,
    })
    .await
    .unwrap();
    assert_eq!(alive_of(&mut c).await, [("hv3".to_string(), true)]);
    let p1 = c
        .get_port(GetRequest { name: "p1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((p1.chassis.as_str(), p1.up), ("", false));
    until(&mut st3, &mut v3, |v, _| !v.chassis.contains_key("hv1")).await;
    let e = c
        .delete_chassis(DeleteRequest {
            name: "hv1".into(),
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    c.delete_chassis(DeleteRequest {
        name: "hv1".into(),
        options: Some(WriteOptions {
            if_exists: true,
            ..Default::default()
        }),
    })
    .await
    .expect("--if-exists");

    // A controller that dies without revoking: alive goes false within the lease TTL.
    let bin = BinCtl::start(&etcd.endpoint(), &prefix);
    let mut s2 = sb(&bin.url()).await;
    let mut st2 = None;
    for _ in 0..50 {
        match s2.subscribe(chassis("hv2", "192.168.0.2")).await {
            Ok(r) => {
                st2 = Some(r.into_inner());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut st2 = st2.expect("subscribe to the binary");
    next(&mut st2).await;
    assert!(alive_of(&mut c).await.contains(&("hv2".to_string(), true)));
    drop(bin); // SIGKILL: nobody revokes the lease
    let dead = eventually(Duration::from_secs(6), || {
        let mut c = c.clone();
        async move { alive_of(&mut c).await.contains(&("hv2".to_string(), false)) }
    })
    .await;
    assert!(
        dead,
        "crashed controller's chassis still alive after the 3 s lease TTL"
    );
    drop(st3);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_hv_returns_after_ack_and_times_out_without() {
    let etcd = start_etcd();
    let prefix = unique_prefix("wait");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    let s = sb(&ctl.url()).await;
    c.create_switch(create_switch("sw", "10.0.0.0/24"))
        .await
        .unwrap();

    // hv1 behaves like an agent: acks every update it receives.
    let mut agent = s.clone();
    let mut st = agent
        .subscribe(chassis("hv1", "192.168.0.1"))
        .await
        .unwrap()
        .into_inner();
    let acker = tokio::spawn(async move {
        while let Ok(Some(u)) = st.message().await {
            report(&mut agent, "hv1", u.revision, &[]).await;
        }
    });
    let wait = |ms: u32| {
        Some(WriteOptions {
            wait: WaitMode::WaitHv as i32,
            timeout_ms: ms,
            ..Default::default()
        })
    };
    let mut req = create_port("sw", "p1", &["dynamic"]);
    req.options = wait(5000);
    let r = c
        .create_port(req)
        .await
        .expect("wait=hv returns once hv1 acked")
        .into_inner();
    let applied = c
        .list_chassis(ListChassisRequest {})
        .await
        .unwrap()
        .into_inner()
        .chassis;
    assert!(
        applied[0].applied_revision >= r.revision,
        "{applied:?} vs {}",
        r.revision
    );

    // hv2 subscribes but never acks.
    let mut silent = s.clone();
    let _st2 = silent
        .subscribe(chassis("hv2", "192.168.0.2"))
        .await
        .unwrap()
        .into_inner();
    let mut req = create_port("sw", "p2", &[]);
    req.options = wait(1000);
    let e = c.create_port(req).await.unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{}", e.message());
    assert!(e.message().contains("hv2"), "{}", e.message());
    assert!(!e.message().contains("hv1"), "{}", e.message());
    // The write itself was committed.
    c.get_port(GetRequest { name: "p2".into() }).await.unwrap();
    // Sync with WAIT_HV also times out naming hv2; WAIT_NONE returns at once.
    let e = c
        .sync(SyncRequest {
            revision: 0,
            options: wait(500),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded);
    assert!(e.message().contains("hv2"));
    c.sync(SyncRequest {
        revision: 0,
        options: None,
    })
    .await
    .unwrap();
    acker.abort();
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_errors_are_recorded_only_when_changed() {
    let etcd = start_etcd();
    let prefix = unique_prefix("err");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    let mut s = sb(&ctl.url()).await;
    let mut st = s
        .subscribe(chassis("hv1", "192.168.0.1"))
        .await
        .unwrap()
        .into_inner();
    let u = next(&mut st).await;
    let status = |e: &str| StatusReport {
        chassis: "hv1".into(),
        applied_revision: u.revision,
        ports: vec![],
        last_error: e.into(),
    };
    let r1 = s
        .report_status(status("bundle failed: OFPBAC_BAD_OUT_PORT"))
        .await
        .unwrap()
        .into_inner()
        .revision;
    let list = c
        .list_chassis(ListChassisRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        list.chassis[0].last_error,
        "bundle failed: OFPBAC_BAD_OUT_PORT"
    );
    let shown = c.show(ShowRequest {}).await.unwrap().into_inner();
    assert_eq!(shown.chassis[0].last_error, list.chassis[0].last_error);
    // The same error again writes nothing.
    let r2 = s
        .report_status(status("bundle failed: OFPBAC_BAD_OUT_PORT"))
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_eq!(r2, r1, "an unchanged error was written again");
    // A successful apply clears it (the key goes).
    s.report_status(status("")).await.unwrap();
    let list = c
        .list_chassis(ListChassisRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.chassis[0].last_error, "");
    let raw = dump(&etcd.endpoint(), &prefix).await;
    assert!(!raw.iter().any(|(k, _)| k.contains("/status/error/")));
    drop(st);
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_port_reaches_the_view() {
    let etcd = start_etcd();
    let prefix = unique_prefix("enabled");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    let mut s = sb(&ctl.url()).await;
    c.create_switch(create_switch("sw", "10.0.0.0/24"))
        .await
        .unwrap();
    let p = c
        .create_port(create_port("sw", "p1", &["dynamic"]))
        .await
        .unwrap()
        .into_inner();
    assert!(p.port.unwrap().enabled, "stored enabled on create");
    let mut st = s
        .subscribe(chassis("hv1", "192.168.0.1"))
        .await
        .unwrap()
        .into_inner();
    let mut v = View::default();
    let u = next(&mut st).await;
    view::apply_delta(&mut v, &u);
    report(&mut s, "hv1", u.revision, &[("p1", true)]).await;
    until(&mut st, &mut v, |v, _| v.ports.contains_key("p1")).await;
    assert!(v.ports["p1"].enabled);
    let set = |enabled: bool| SetPortEnabledRequest {
        port: "p1".into(),
        enabled,
        options: None,
    };
    let r = c.set_port_enabled(set(false)).await.unwrap().into_inner();
    let port = r.port.unwrap();
    assert!(!port.enabled);
    assert_eq!(port.chassis, "hv1", "reply carries the status");
    until(&mut st, &mut v, |v, _| !v.ports["p1"].enabled).await;
    // The same state again writes nothing.
    let again = c.set_port_enabled(set(false)).await.unwrap().into_inner();
    assert_eq!(again.revision, r.revision);
    let got = c
        .get_port(GetRequest { name: "p1".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!got.enabled);
    c.set_port_enabled(set(true)).await.unwrap();
    until(&mut st, &mut v, |v, _| v.ports["p1"].enabled).await;
    let e = c
        .set_port_enabled(SetPortEnabledRequest {
            port: "nosuch".into(),
            enabled: true,
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .set_port_enabled(SetPortEnabledRequest {
            port: "bad name".into(),
            enabled: true,
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    drop(st);
    ctl.stop().await;
}

fn key_of(prefix: &str, rel: &str) -> String {
    format!("{prefix}/v1/{rel}")
}

async fn has_key(endpoint: &str, prefix: &str, rel: &str) -> Option<Vec<u8>> {
    let k = key_of(prefix, rel);
    dump(endpoint, prefix)
        .await
        .into_iter()
        .find(|(x, _)| *x == k)
        .map(|(_, v)| v)
}

/// What a fake agent acked: (revision, whether the watched port was bound to it).
type AckLog = std::sync::Arc<std::sync::Mutex<Vec<(i64, bool)>>>;

/// A fake agent: acks every update after `delay`, reporting `vifs` (up when the port is in
/// its view and bound to it), and records (revision acked, whether `watch` was bound here).
fn fake_agent(
    mut s: SouthboundClient<tonic::transport::Channel>,
    mut st: Streaming<ViewUpdate>,
    name: &'static str,
    vifs: Vec<&'static str>,
    watch: &'static str,
    delay: Duration,
) -> (tokio::task::JoinHandle<()>, AckLog) {
    let log: AckLog = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log2 = log.clone();
    let h = tokio::spawn(async move {
        let mut v = View::default();
        while let Ok(Some(u)) = st.message().await {
            view::apply(&mut v, &u);
            tokio::time::sleep(delay).await;
            let ports: Vec<(&str, bool)> = vifs
                .iter()
                .map(|p| (*p, v.ports.get(*p).is_some_and(|pv| pv.chassis == name)))
                .collect();
            let bound = v.ports.get(watch).is_some_and(|pv| pv.chassis == name);
            // Logged before the ack is sent: the controller may answer a waiting write as
            // soon as it sees the ack.
            log2.lock().unwrap().push((u.revision, bound));
            report(&mut s, name, u.revision, &ports).await;
        }
    });
    (h, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_binds_in_one_round_from_a_vif_sighting() {
    let etcd = start_etcd();
    let ep = etcd.endpoint();
    let prefix = unique_prefix("sight");
    let ctl = InProc::start(config(&ep, &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    let mut s = sb(&ctl.url()).await;
    c.create_switch(create_switch("sw", "10.0.0.0/24"))
        .await
        .unwrap();
    let mut st1 = s
        .subscribe(chassis("hv1", "192.168.0.1"))
        .await
        .unwrap()
        .into_inner();
    let mut v1 = View::default();
    let u = next(&mut st1).await;
    view::apply_delta(&mut v1, &u);

    // hv1 has the VIF of p9 before p9 exists: recorded as a sighting, nothing bound.
    report(&mut s, "hv1", u.revision, &[("p9", false)]).await;
    assert_eq!(
        has_key(&ep, &prefix, "status/sightings/p9")
            .await
            .as_deref(),
        Some(&b"hv1"[..])
    );
    assert!(has_key(&ep, &prefix, "status/bindings/p9").await.is_none());
    // The create binds it in its own transaction: right after the write, before any
    // further report, the port is bound to hv1, and the sighting is consumed.
    let r = c
        .create_port(create_port("sw", "p9", &["dynamic"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.port.as_ref().unwrap().chassis, "hv1");
    let got = c
        .get_port(GetRequest { name: "p9".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.chassis.as_str(), got.up), ("hv1", false));
    assert!(has_key(&ep, &prefix, "status/sightings/p9").await.is_none());
    // The first update that carries p9 already has it bound to hv1 (one round).
    let u = until(&mut st1, &mut v1, |v, _| v.ports.contains_key("p9")).await;
    assert!(u.revision >= r.revision);
    assert_eq!(v1.ports["p9"].chassis, "hv1");
    assert!(v1.switches.contains_key("sw"));

    // --wait=hv on a create whose VIF is on hv2 returns only after hv2 acked the create's
    // revision, and that revision already had the port bound to hv2.
    let (a1, _) = fake_agent(
        s.clone(),
        st1,
        "hv1",
        vec!["p9"],
        "p9",
        Duration::from_millis(0),
    );
    let mut s2 = sb(&ctl.url()).await;
    let st2 = s2
        .subscribe(chassis("hv2", "192.168.0.2"))
        .await
        .unwrap()
        .into_inner();
    let (a2, log2) = fake_agent(
        s2.clone(),
        st2,
        "hv2",
        vec!["p10"],
        "p10",
        Duration::from_millis(300),
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            has_key(&ep, &prefix, "status/sightings/p10")
                .await
                .as_deref()
                == Some(&b"hv2"[..])
        })
        .await,
        "hv2's VIF sighting of p10 recorded"
    );
    let mut req = create_port("sw", "p10", &["dynamic"]);
    req.options = Some(WriteOptions {
        wait: WaitMode::WaitHv as i32,
        timeout_ms: 5000,
        ..Default::default()
    });
    let r = c
        .create_port(req)
        .await
        .expect("wait=hv returns once both acked")
        .into_inner();
    {
        let log = log2.lock().unwrap().clone();
        let acked: Vec<_> = log.iter().filter(|(rev, _)| *rev >= r.revision).collect();
        assert!(!acked.is_empty(), "returned before hv2 acked: {log:?}");
        assert!(
            acked.iter().all(|(_, bound)| *bound),
            "hv2 acked the create's revision without p10 bound to it: {log:?}"
        );
    }
    let got = c
        .get_port(GetRequest { name: "p10".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.chassis, "hv2");
    // hv2 then reports it up (after its apply), as before.
    assert!(
        eventually(Duration::from_secs(5), || {
            let mut c = c.clone();
            async move {
                c.get_port(GetRequest { name: "p10".into() })
                    .await
                    .is_ok_and(|p| p.into_inner().up)
            }
        })
        .await
    );
    a1.abort();
    a2.abort();

    // A sighting goes when the VIF disappears from its chassis' report, and with the chassis.
    let mut s3 = sb(&ctl.url()).await;
    let st3 = s3
        .subscribe(chassis("hv3", "192.168.0.3"))
        .await
        .unwrap()
        .into_inner();
    report(&mut s3, "hv3", 0, &[("ghost", false), ("ghost2", false)]).await;
    assert!(has_key(&ep, &prefix, "status/sightings/ghost")
        .await
        .is_some());
    report(&mut s3, "hv3", 0, &[("ghost2", false)]).await;
    assert!(has_key(&ep, &prefix, "status/sightings/ghost")
        .await
        .is_none());
    assert!(has_key(&ep, &prefix, "status/sightings/ghost2")
        .await
        .is_some());
    drop(st3);
    let dead = eventually(Duration::from_secs(8), || {
        let mut c = c.clone();
        async move { alive_of(&mut c).await.contains(&("hv3".to_string(), false)) }
    })
    .await;
    assert!(dead, "hv3's lease expired");
    c.delete_chassis(DeleteRequest {
        name: "hv3".into(),
        options: None,
    })
    .await
    .unwrap();
    assert!(has_key(&ep, &prefix, "status/sightings/ghost2")
        .await
        .is_none());
    ctl.stop().await;
}

/// An agent that stops reading its stream (HTTP/2 window and the stream's queue full) keeps
/// its lease while the controller waits to send, so it does not turn dead while connected;
/// after the stall limit (three TTLs) the controller closes the stream, and only then the
/// lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_stays_alive_then_its_stream_is_closed() {
    let etcd = start_etcd();
    let prefix = unique_prefix("stall");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await; // lease TTL 3 s
    let mut c = nb(&ctl.url()).await;
    // A tiny HTTP/2 window: a few updates fill it.
    let ch = tonic::transport::Endpoint::from_shared(ctl.url())
        .unwrap()
        .initial_stream_window_size(Some(64))
        .initial_connection_window_size(Some(64))
        .connect()
        .await
        .unwrap();
    let mut s = SouthboundClient::new(ch);
    let mut st = s
        .subscribe(chassis("hv1", "192.0.2.1"))
        .await
        .unwrap()
        .into_inner();
    let _ = st.message().await.unwrap();
    let alive = |c: &mut NorthboundClient<tonic::transport::Channel>| {
        let mut c = c.clone();
        async move { alive_of(&mut c).await.contains(&("hv1".to_string(), true)) }
    };
    assert!(eventually(Duration::from_secs(5), || alive(&mut c)).await);
    // 150 view-changing writes: every stream gets an update for each; hv1 reads none.
    for i in 0..150 {
        c.create_switch(CreateSwitchRequest {
            switch: Some(LogicalSwitch {
                name: format!("s{i}"),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap();
    }
    // Well past one TTL the stalled chassis is still alive (the lease is kept while waiting).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        alive(&mut c).await,
        "a slow reader turned dead while connected"
    );
    // After the stall limit (9 s) the stream is closed and, a TTL later, hv1 is dead.
    let dead = eventually(Duration::from_secs(15), || {
        let mut c = c.clone();
        async move { alive_of(&mut c).await.contains(&("hv1".to_string(), false)) }
    })
    .await;
    assert!(dead, "stalled stream never closed");
    drop(st);
    ctl.stop().await;
}

/// A forged ack (`applied_revision` beyond etcd's current revision) is refused naming the
/// field and the value, and `--wait=hv` is not fooled: with only a forged ack a write waits
/// and times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_applied_revision_is_refused_and_wait_hv_does_not_lie() {
    let etcd = start_etcd();
    let prefix = unique_prefix("forged");
    let ctl = InProc::start(config(&etcd.endpoint(), &prefix)).await;
    let mut c = nb(&ctl.url()).await;
    let mut s = sb(&ctl.url()).await;
    c.create_switch(create_switch("sw", "10.0.0.0/24"))
        .await
        .unwrap();
    let mut st = s
        .subscribe(chassis("hv1", "192.168.0.1"))
        .await
        .unwrap()
        .into_inner();
    let u = next(&mut st).await;
    let forged = |applied: i64| StatusReport {
        chassis: "hv1".into(),
        applied_revision: applied,
        ports: vec![],
        last_error: String::new(),
    };
    let e = s.report_status(forged(999_999_999)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("applied_revision") && e.message().contains("999999999"),
        "{}",
        e.message()
    );
    let e = s.report_status(forged(-5)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let list = c
        .list_chassis(ListChassisRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        list.chassis[0].applied_revision < 999_999_999,
        "the forged ack was recorded: {:?}",
        list.chassis[0]
    );
    // The real ack of what it was sent is accepted.
    report(&mut s, "hv1", u.revision, &[]).await;
    // A write with --wait=hv then waits for hv1, which acks nothing more: it times out.
    let mut req = create_port("sw", "p1", &["dynamic"]);
    req.options = Some(WriteOptions {
        wait: WaitMode::WaitHv as i32,
        timeout_ms: 700,
        ..Default::default()
    });
    let _ = s.report_status(forged(i64::MAX)).await;
    let e = c.create_port(req).await.unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(e.message().contains("hv1"), "{}", e.message());
    drop(st);
    ctl.stop().await;
}
