//! The agent's event loop: [`run`] wires the adapters (OVSDB session, VIF watch, OpenFlow
//! channel, controller subscription, status reporter) to the pure [`Reconciler`].
//!
//! Order of events on start: connect OVSDB, ensure br-int and the tunnel ports, start watching
//! interfaces and subscribing to the controller, connect OpenFlow. The first diff is a *full*
//! one against the flows read back from the switch, and only once both the view snapshot and
//! the VIF listing are in; after that every change is an incremental diff in one bundle. An
//! OpenFlow reconnect, a failed bundle and the periodic resync trigger a full diff again.
//! Losing the controller changes nothing in OVS.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, info_span, warn, Instrument};
use weft_openflow::channel::{BundleOp, OfChannel, OfError};
use weft_ovsdb::session::SessionConfig;
use weft_ovsdb::vswitch::{self, BridgeConfig, DatapathType, TunnelConfig, VifEvent};
use weft_ovsdb::Endpoint;
use weft_proto::v1::{Chassis, StatusReport};

use crate::config::AgentConfig;
use crate::diff::Diff;
use crate::pipeline::Encap;
use crate::reconcile::{ReconcileError, Reconciler};
use crate::southbound::{run_subscription, Backoff, SbEvent, StatusReporter};

/// Fatal agent errors (everything else is retried).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid --ovsdb endpoint {endpoint:?}: {reason}")]
    OvsdbEndpoint { endpoint: String, reason: String },
}

fn ovsdb_encap(e: Encap) -> vswitch::Encap {
    match e {
        Encap::Geneve => vswitch::Encap::Geneve,
        Encap::Vxlan => vswitch::Encap::Vxlan,
        Encap::Gre => vswitch::Encap::Gre,
    }
}

fn pipeline_encap(e: vswitch::Encap) -> Encap {
    match e {
        vswitch::Encap::Geneve => Encap::Geneve,
        vswitch::Encap::Vxlan => Encap::Vxlan,
        vswitch::Encap::Gre => Encap::Gre,
    }
}

/// Turns a diff into bundle operations in a safe order: groups a flow may reference exist
/// before the flow, and flows referencing a group are gone before the group.
pub fn bundle_ops(d: &Diff) -> Vec<BundleOp> {
    let mut ops = Vec::with_capacity(d.len());
    ops.extend(d.groups.adds.iter().cloned().map(BundleOp::GroupAdd));
    ops.extend(d.groups.modifies.iter().cloned().map(BundleOp::GroupModify));
    ops.extend(
        d.flows
            .deletes
            .iter()
            .cloned()
            .map(BundleOp::FlowDeleteStrict),
    );
    ops.extend(d.flows.adds.iter().cloned().map(BundleOp::FlowAdd));
    // An add replaces a flow with the same key, cookie included (modify would keep the cookie).
    ops.extend(d.flows.modifies.iter().cloned().map(BundleOp::FlowAdd));
    ops.extend(d.groups.deletes.iter().copied().map(BundleOp::GroupDelete));
    ops
}

/// Sets up br-int and the tunnel ports, retrying until it works or `shutdown` fires.
async fn setup_bridge(config: &AgentConfig, endpoint: &Endpoint) -> BTreeMap<Encap, u32> {
    let mut delay = Duration::from_millis(100);
    loop {
        match try_setup_bridge(config, endpoint).await {
            Ok(t) => return t,
            Err(e) => {
                warn!(error = %e, "bridge setup failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn try_setup_bridge(
    config: &AgentConfig,
    endpoint: &Endpoint,
) -> Result<BTreeMap<Encap, u32>, String> {
    let client = weft_ovsdb::Client::connect(endpoint, Default::default())
        .await
        .map_err(|e| format!("connecting to OVSDB {}: {e}", config.ovsdb))?;
    let dp = if config.datapath == "netdev" {
        DatapathType::Netdev
    } else {
        DatapathType::System
    };
    let state = vswitch::ensure_bridge(&client, &BridgeConfig::new(&config.bridge, dp))
        .await
        .map_err(|e| format!("ensuring bridge {}: {e}", config.bridge))?;
    if state.created || !state.fixed.is_empty() {
        info!(bridge = %config.bridge, created = state.created, fixed = ?state.fixed, "bridge ready");
    }
    let encaps: Vec<vswitch::Encap> = config.encaps.iter().copied().map(ovsdb_encap).collect();
    let tunnels =
        vswitch::ensure_tunnel_ports(&client, &TunnelConfig::new(&config.bridge, &encaps))
            .await
            .map_err(|e| format!("ensuring tunnel ports: {e}"))?;
    client.close();
    Ok(tunnels
        .into_iter()
        .map(|(e, p)| (pipeline_encap(e), p))
        .collect())
}

/// iface-id → ofport of every local VIF (the first interface with an ofport wins when two
/// claim the same logical port).
fn vif_map(snapshot: &BTreeMap<String, vswitch::Vif>) -> BTreeMap<String, Option<u32>> {
    let mut out: BTreeMap<String, Option<u32>> = BTreeMap::new();
    for vif in snapshot.values() {
        let slot = out.entry(vif.iface_id.clone()).or_insert(None);
        if slot.is_none() {
            *slot = vif.ofport;
        }
    }
    out
}

/// Sends the latest status to the controller whenever it changes, and every 10 s.
fn spawn_reporter(
    endpoints: Vec<String>,
    mut rx: watch::Receiver<Option<StatusReport>>,
) -> JoinHandle<()> {
    tokio::spawn(
        async move {
            let mut reporter = StatusReporter::new(endpoints);
            loop {
                let report = rx.borrow_and_update().clone();
                if let Some(report) = report {
                    if let Err(e) = reporter.report(&report).await {
                        debug!(error = %e, "status report failed; will retry");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                }
            }
        }
        .instrument(info_span!("status")),
    )
}

/// Runs the agent until `shutdown` completes. OVS keeps whatever was programmed last.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let endpoint: Endpoint =
        config
            .ovsdb
            .parse()
            .map_err(|e: weft_ovsdb::ClientError| AgentError::OvsdbEndpoint {
                endpoint: config.ovsdb.clone(),
                reason: e.to_string(),
            })?;
    let span = info_span!("agent", chassis = %config.chassis);
    run_loop(config, endpoint, shutdown).instrument(span).await;
    Ok(())
}

async fn run_loop(config: AgentConfig, endpoint: Endpoint, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);

    let tunnels = tokio::select! {
        t = setup_bridge(&config, &endpoint) => t,
        _ = &mut shutdown => return,
    };
    info!(?tunnels, "tunnel ports ready");
    // The CNI server starts once br-int exists, and stops with the loop.
    let (cni_stop, cni_stopped) = tokio::sync::oneshot::channel::<()>();
    let cni_task = config.cni_socket.clone().map(|socket| {
        let cfg = crate::cni::CniServerConfig::from_agent(socket, &config);
        tokio::spawn(async move {
            let stopped = async {
                let _ = cni_stopped.await;
            };
            if let Err(e) = crate::cni::serve(cfg, stopped).await {
                error!(error = %e, "CNI server failed");
            }
        })
    });
    let mut reconciler = Reconciler::new(&config.chassis, tunnels);

    let mut vif_watch =
        vswitch::watch_interfaces(SessionConfig::new(endpoint.clone(), "Open_vSwitch"));

    let chassis = Chassis {
        name: config.chassis.clone(),
        encap_ip: config.encap_ip.to_string(),
        encap_types: config
            .encaps
            .iter()
            .map(|e| e.as_str().to_string())
            .collect(),
        datapath_type: config.datapath.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        applied_revision: 0,
        alive: false,
        ..Default::default()
    };
    let (sb_tx, mut sb_rx) = mpsc::channel::<SbEvent>(256);
    let spawn_sub = |tx: mpsc::Sender<SbEvent>, delay: Duration| {
        let sub = run_subscription(
            config.controllers.clone(),
            chassis.clone(),
            Backoff::default(),
            tx,
        );
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            sub.await
        })
    };
    let mut sub_task = spawn_sub(sb_tx.clone(), Duration::ZERO);
    let mut resubscribe = false;

    let (status_tx, status_rx) = watch::channel::<Option<StatusReport>>(None);
    let reporter = spawn_reporter(config.controllers.clone(), status_rx);

    let mgmt = config.ovs_rundir.join(format!("{}.mgmt", config.bridge));
    let mut of: Option<OfChannel> = None;
    let mut of_retry = tokio::time::interval(Duration::from_millis(500));
    let mut resync = tokio::time::interval(config.resync_interval);
    resync.tick().await;
    let mut full_needed = true;

    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            ev = vif_watch.next() => match ev {
                Some(VifEvent::Snapshot(snap)) => {
                    let vifs = vif_map(&snap);
                    debug!(vifs = ?vifs, "local interfaces");
                    reconciler.on_vifs(&vifs);
                }
                Some(VifEvent::Disconnected { reason }) => warn!(%reason, "OVSDB disconnected"),
                Some(_) => {}
                None => { error!("interface watch ended"); break }
            },
            ev = sb_rx.recv() => match ev {
                Some(SbEvent::Connected { endpoint }) => info!(%endpoint, "controller stream open"),
                Some(SbEvent::Update(u)) => resubscribe |= on_view_update(&mut reconciler, &u),
                Some(SbEvent::Disconnected { endpoint, error }) => {
                    warn!(%endpoint, %error, "controller stream lost; keeping the data plane as is")
                }
                None => break,
            },
            _ = of_retry.tick(), if of.is_none() => {
                match OfChannel::connect(&mgmt).await {
                    Ok(c) => { info!(socket = %mgmt.display(), "OpenFlow connected"); of = Some(c); full_needed = true; }
                    Err(e) => debug!(error = %e, "OpenFlow connect failed"),
                }
            },
            _ = resync.tick() => full_needed = true,
        }
        // Coalesce whatever else is already queued into the same bundle.
        while let Ok(ev) = sb_rx.try_recv() {
            if let SbEvent::Update(u) = ev {
                resubscribe |= on_view_update(&mut reconciler, &u);
            }
        }
        if std::mem::take(&mut resubscribe) {
            // A rejected update: resubscribe (after a pause) for a fresh snapshot; the switch
            // keeps its last good state meanwhile.
            sub_task.abort();
            sub_task = spawn_sub(sb_tx.clone(), Duration::from_secs(1));
        }

        if let Some(chan) = &of {
            if chan.is_closed() {
                warn!("OpenFlow connection lost; reconnecting");
                of = None;
            }
        }
        if let Some(chan) = &of {
            if reconciler.ready() {
                let full = full_needed || reconciler.needs_full();
                let span = info_span!("reconcile", revision = reconciler.view().revision(), full);
                let result = apply(chan, &mut reconciler, full).instrument(span).await;
                match result {
                    Ok(()) => full_needed = false,
                    Err(e) => {
                        if matches!(e, OfError::Disconnected | OfError::Io(_)) {
                            of = None;
                        }
                        full_needed = true;
                    }
                }
            }
        }
        let Some(report) = reconciler.status() else {
            continue;
        };
        status_tx.send_if_modified(|cur| {
            if cur.as_ref() != Some(&report) {
                *cur = Some(report);
                true
            } else {
                false
            }
        });
    }
    sub_task.abort();
    reporter.abort();
    let _ = cni_stop.send(());
    if let Some(t) = cni_task {
        let _ = t.await;
    }
    info!("agent stopped; OVS keeps its flows");
}

/// Applies one view update; true when it was rejected and a fresh snapshot is needed.
fn on_view_update(reconciler: &mut Reconciler, u: &weft_proto::v1::ViewUpdate) -> bool {
    debug!(
        revision = u.revision,
        snapshot = u.snapshot,
        upserts = u.upserts.len(),
        deleted = u.deleted.len(),
        "view update"
    );
    let u = match weft_proto::model::view::ViewDelta::from_update(u) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "view update rejected; resubscribing for a fresh snapshot");
            return true;
        }
    };
    match reconciler.on_update(&u) {
        Ok(()) => false,
        // Deltas queued behind a rejected one; the resubscription is already under way.
        Err(e @ ReconcileError::AwaitingSnapshot(_)) => {
            debug!(error = %e, "view update skipped");
            false
        }
        Err(e) => {
            warn!(error = %e, "view update rejected; resubscribing for a fresh snapshot");
            true
        }
    }
}

/// One reconcile step: a full diff against what the switch has, or an incremental one.
async fn apply(chan: &OfChannel, r: &mut Reconciler, full: bool) -> Result<(), OfError> {
    let d = if full {
        let flows = chan.dump_flows().await;
        let groups = chan.dump_groups().await;
        let (flows, groups) = match (flows, groups) {
            (Ok(f), Ok(g)) => (f, g),
            (Err(e), _) | (_, Err(e)) => {
                r.set_error(format!("reading flows back: {e}"));
                return Err(e);
            }
        };
        match r.full(&flows, &groups) {
            Some(d) => {
                if !d.is_empty() {
                    info!(installed = flows.len(), changes = d.len(), "full resync");
                }
                d
            }
            None => return Ok(()),
        }
    } else {
        match r.incremental() {
            Some(d) => d,
            None => return Ok(()),
        }
    };
    if d.is_empty() {
        r.applied(Ok(()));
        return Ok(());
    }
    let ops = bundle_ops(&d);
    let n = ops.len();
    match chan.apply_bundle(ops).await {
        Ok(()) => {
            debug!(ops = n, "bundle committed");
            r.applied(Ok(()));
            Ok(())
        }
        Err(e) => {
            error!(error = %e, ops = n, "bundle failed; the switch keeps its previous flows");
            r.applied(Err(e.to_string()));
            Err(e)
        }
    }
}
