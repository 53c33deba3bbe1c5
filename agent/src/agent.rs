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
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, info_span, warn, Instrument};
use weft_openflow::channel::{BundleOp, OfChannel, OfError};
use weft_openflow::codec::{TlvTableCommand, TlvTableMod};
use weft_ovsdb::session::SessionConfig;
use weft_ovsdb::vswitch::{self, BridgeConfig, DatapathType, TunnelConfig, VifEvent};
use weft_ovsdb::Endpoint;
use weft_proto::v1::{Chassis, StatusReport};

use crate::config::AgentConfig;
use crate::diff::{Diff, Installed, InstalledIndex};
use crate::ids::Ids;
use crate::pipeline::Encap;
use crate::reconcile::{ReconcileError, Reconciler};
use crate::southbound::{run_subscription, Backoff, SbEvent, StatusReporter};

/// Fatal agent errors (everything else is retried).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid --ovsdb endpoint {endpoint:?}: {reason}")]
    OvsdbEndpoint { endpoint: String, reason: String },
    #[error("TLS: {0}")]
    Tls(#[from] weft_proto::tls::TlsError),
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

/// Turns a diff into bundle operations in a safe order: meters and groups a flow may
/// reference exist before the flow, and flows referencing a group or meter are gone before
/// it. (The channel applies the meter ops around the bundle, in this order.)
pub fn bundle_ops(d: &Diff) -> Vec<BundleOp> {
    let mut ops = Vec::with_capacity(d.len());
    ops.extend(d.meters.adds.iter().cloned().map(BundleOp::MeterAdd));
    ops.extend(d.meters.modifies.iter().cloned().map(BundleOp::MeterModify));
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
    ops.extend(d.meters.deletes.iter().copied().map(BundleOp::MeterDelete));
    ops
}

/// What bridge setup found: the tunnel ports and br-int's `external_ids` (the persisted ids).
pub(crate) struct BridgeSetup {
    pub(crate) tunnels: BTreeMap<Encap, u32>,
    pub(crate) external_ids: BTreeMap<String, String>,
}

/// Puts back the OVSDB state the agent owns (bridge settings, tunnel ports, patch ports):
/// the same idempotent calls as start-up, used by [`crate::drift`] after a change.
pub(crate) async fn ensure_owned_state(
    config: &AgentConfig,
    endpoint: &Endpoint,
) -> Result<BridgeSetup, String> {
    try_setup_bridge(config, endpoint).await
}

/// Sets up br-int, the tunnel ports and the bridge-mapping patch ports, retrying until it
/// works.
async fn setup_bridge(config: &AgentConfig, endpoint: &Endpoint) -> BridgeSetup {
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
) -> Result<BridgeSetup, String> {
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
        info!(bridge = %config.bridge, created = state.created, fixed = ?state.fixed, "bridge ready (drift repaired where fixed is not empty)");
    }
    let encaps: Vec<vswitch::Encap> = config.encaps.iter().copied().map(ovsdb_encap).collect();
    let tunnels =
        vswitch::ensure_tunnel_ports(&client, &TunnelConfig::new(&config.bridge, &encaps))
            .await
            .map_err(|e| format!("ensuring tunnel ports: {e}"))?;
    for m in &config.bridge_mappings {
        vswitch::ensure_patch_ports(&client, &config.bridge, &m.bridge, &m.physnet)
            .await
            .map_err(|e| format!("bridge mapping {}:{}: {e}", m.physnet, m.bridge))?;
    }
    let external_ids = vswitch::bridge_external_ids(&client, &config.bridge)
        .await
        .map_err(|e| format!("reading {} external_ids: {e}", config.bridge))?;
    client.close();
    Ok(BridgeSetup {
        tunnels: tunnels
            .into_iter()
            .map(|(e, p)| (pipeline_encap(e), p))
            .collect(),
        external_ids,
    })
}

/// Installs the Geneve option ↔ tun_metadata0 mapping unless the switch already has it
/// (idempotent: the TLV table outlives agent restarts).
async fn ensure_tlv(chan: &OfChannel) -> Result<(), String> {
    let want = crate::physical::tlv_map();
    let have = chan
        .tlv_table()
        .await
        .map_err(|e| format!("reading the TLV table: {e}"))?;
    if have.maps.contains(&want) {
        return Ok(());
    }
    if let Some(other) = have.maps.iter().find(|m| m.index == want.index) {
        return Err(format!(
            "tun_metadata{} is already mapped to {other:?}; Geneve port keys need it",
            want.index
        ));
    }
    chan.tlv_table_mod(TlvTableMod {
        command: TlvTableCommand::Add,
        maps: vec![want],
    })
    .await
    .map_err(|e| format!("adding the Geneve TLV mapping: {e}"))
}

/// Everything an OpenFlow connection needs before the first bundle: the TLV map (Geneve),
/// packet-ins on this connection and the pinctrl dispatcher.
async fn setup_channel(
    chan: &Arc<OfChannel>,
    geneve: bool,
    stats: &watch::Sender<crate::pinctrl::Stats>,
    learned: &mpsc::Sender<crate::pinctrl::neigh::Learned>,
    health: &mpsc::Sender<crate::lb_health::ProbeReply>,
) -> Result<JoinHandle<()>, String> {
    if geneve {
        ensure_tlv(chan).await?;
    }
    chan.enable_packet_in()
        .await
        .map_err(|e| format!("enabling packet-ins: {e}"))?;
    let rx = chan
        .take_packet_ins()
        .ok_or_else(|| "packet-ins already taken".to_string())?;
    let stats = stats.clone();
    Ok(tokio::spawn(
        crate::pinctrl::run(chan.clone(), rx, stats, learned.clone(), health.clone())
            .instrument(info_span!("pinctrl")),
    ))
}

/// Provider network → ofport of its patch port on the integration bridge (the interfaces
/// the bridge mappings created, by name).
fn localnet_map(
    config: &AgentConfig,
    snapshot: &BTreeMap<String, vswitch::Vif>,
) -> BTreeMap<String, u32> {
    config
        .bridge_mappings
        .iter()
        .filter_map(|m| {
            let (int_side, _) = crate::physical::patch_port_names(&config.bridge, &m.bridge);
            let ofport = snapshot.get(&int_side)?.ofport?;
            Some((m.physnet.clone(), ofport))
        })
        .collect()
}

/// iface-id → ofport of every local VIF (the first interface with an ofport wins when two
/// claim the same logical port).
fn vif_map(snapshot: &BTreeMap<String, vswitch::Vif>) -> BTreeMap<String, Option<u32>> {
    let mut out: BTreeMap<String, Option<u32>> = BTreeMap::new();
    for vif in snapshot.values().filter(|v| !v.iface_id.is_empty()) {
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
                    let started = std::time::Instant::now();
                    let sent = reporter.report(&report).await;
                    crate::metrics::metrics()
                        .report_seconds
                        .observe(started.elapsed().as_secs_f64());
                    if let Err(e) = sent {
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
    crate::southbound::set_transport(config.transport.clone())?;
    match &config.transport {
        weft_proto::tls::Transport::Tls(f) => {
            info!(ca = %f.ca.display(), "TLS on: the controllers are checked against the CA, this chassis presents its certificate")
        }
        weft_proto::tls::Transport::Insecure => {
            warn!("INSECURE: talking to the controllers in plain text (--insecure): no encryption, no chassis identity")
        }
    }
    let span = info_span!("agent", chassis = %config.chassis);
    run_loop(config, endpoint, shutdown).instrument(span).await;
    Ok(())
}

async fn run_loop(config: AgentConfig, endpoint: Endpoint, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);

    let BridgeSetup {
        tunnels,
        external_ids,
    } = tokio::select! {
        t = setup_bridge(&config, &endpoint) => t,
        _ = &mut shutdown => return,
    };
    info!(?tunnels, "tunnel ports ready");
    let (ids, bad) = Ids::from_external_ids(&external_ids);
    if !bad.is_empty() {
        warn!(entries = ?bad, "ignoring unusable id allocations in br-int external_ids");
    }
    info!(
        zones = ids.zones.len(),
        groups = ids.groups.len(),
        meters = ids.meters.len(),
        "id allocations recovered"
    );
    let geneve = tunnels.contains_key(&Encap::Geneve);
    let (drift_tx, mut drift_rx) = mpsc::channel::<crate::drift::Repaired>(4);
    let drift_task =
        crate::drift::spawn(config.clone(), endpoint.clone(), tunnels.clone(), drift_tx);
    let mut reconciler = Reconciler::new(&config.chassis, tunnels, ids);
    let (pin_stats, pin_stats_rx) = watch::channel(crate::pinctrl::Stats::default());
    let mut pin_logged = crate::pinctrl::Stats::default();
    let mut pinctrl_task: Option<JoinHandle<()>> = None;
    let (learned_tx, mut learned_rx) = mpsc::channel::<crate::pinctrl::neigh::Learned>(256);
    // LB health checks: probes go out on the current OpenFlow channel, answers come from
    // pinctrl, the targets follow the view and the local VIFs.
    let (hc_reply_tx, hc_reply_rx) = mpsc::channel::<crate::lb_health::ProbeReply>(1024);
    let (hc_chan_tx, hc_chan_rx) = watch::channel::<Option<Arc<OfChannel>>>(None);
    let (hc_targets_tx, hc_targets_rx) =
        watch::channel::<Vec<crate::lb_health::Target>>(Vec::new());
    let hc_task = tokio::spawn(
        crate::lb_health::run(
            config.chassis.clone(),
            config.controllers.clone(),
            hc_chan_rx,
            hc_targets_rx,
            hc_reply_rx,
        )
        .instrument(info_span!("lb_health")),
    );

    let mut vif_watch =
        vswitch::watch_interfaces(SessionConfig::new(endpoint.clone(), "Open_vSwitch"));
    let mut observe = crate::observe::Observe::start(&config).await;
    // The CNI server starts once br-int exists, and stops with the loop.
    let (cni_stop, cni_stopped) = tokio::sync::oneshot::channel::<()>();
    let cni_task = config.cni_socket.clone().map(|socket| {
        let mut cfg = crate::cni::CniServerConfig::from_agent(socket, &config);
        cfg.readiness = Some(crate::cni::server::ReadyHandle(observe.readiness()));
        tokio::spawn(async move {
            let stopped = async {
                let _ = cni_stopped.await;
            };
            if let Err(e) = crate::cni::serve(cfg, stopped).await {
                error!(error = %e, "CNI server failed");
            }
        })
    });
    let (cnm_stop, cnm_stopped) = tokio::sync::oneshot::channel::<()>();
    let cnm_task = config.docker_plugin_socket.clone().map(|socket| {
        let cfg = crate::cnm::CnmConfig::from_agent(socket, config.docker_state.clone(), &config);
        tokio::spawn(async move {
            let stopped = async {
                let _ = cnm_stopped.await;
            };
            if let Err(e) = crate::cnm::serve(cfg, stopped).await {
                error!(error = %e, "Docker plugin failed");
            }
        })
    });
    observe.watch_pinctrl(pin_stats_rx.clone());
    // The host management port (br-int exists by now); it runs on its own and is never
    // removed on exit, so an agent restart does not disturb host↔pod traffic.
    let mgmt_task = config
        .mgmt
        .clone()
        .map(|m| tokio::spawn(crate::mgmt::run(m, config.clone()).instrument(info_span!("mgmt"))));

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
        debug_addr: observe.debug_addr.clone(),
        bridge_mappings: config
            .bridge_mappings
            .iter()
            .map(|m| (m.physnet.clone(), m.bridge.clone()))
            .collect(),
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
    let mut of: Option<Arc<OfChannel>> = None;
    // Retry quickly: a restarted ovs-vswitchd gets its flows back within ~100 ms of listening.
    let mut of_retry = tokio::time::interval(Duration::from_millis(100));
    of_retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resync = tokio::time::interval(config.resync_interval);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    let mut full_needed = true;
    // The periodic drift check: a read-back in the background, then a diff (see `resync`).
    let mut read_back_task: Option<JoinHandle<Result<ReadBack, String>>> = None;
    let mut read_back: Option<ReadBack> = None;
    let mut pacing = ResyncPacing::new(config.resync_interval, std::time::Instant::now());
    // Gateway ports resident here at the last apply (their GARPs were sent).
    let mut gateways_here = std::collections::BTreeSet::new();
    // The OVSDB connection id allocations are written over (see `write_ids`).
    let mut ids_db: Option<weft_ovsdb::Client> = None;
    // The debug service's requests for the cookie → owner map (built on demand: it is
    // O(deployment)).
    let mut owner_requests = observe.debug.owner_requests();

    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(reply) = async {
                match owner_requests.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let _ = reply.send(crate::debug::owners_of(&reconciler));
            },
            ev = vif_watch.next() => match ev {
                Some(VifEvent::Snapshot(snap)) => {
                    let vifs = vif_map(&snap);
                    observe.vifs(&snap);
                    debug!(vifs = ?vifs, "local interfaces");
                    reconciler.set_localnets(localnet_map(&config, &snap));
                    reconciler.on_vifs(&vifs);
                }
                Some(VifEvent::Disconnected { reason }) => warn!(%reason, "OVSDB disconnected"),
                Some(_) => {}
                None => { error!("interface watch ended"); break }
            },
            // OVSDB drift was checked (and repaired): OVS may have dropped flows meanwhile
            // (a fail_mode change flushes them), so read back, diff and bundle.
            Some(r) = drift_rx.recv() => {
                reconciler.set_tunnels(r.tunnels);
                full_needed = true;
            },
            ev = sb_rx.recv() => match ev {
                Some(SbEvent::Connected { endpoint }) => info!(%endpoint, "controller stream open"),
                Some(SbEvent::Update(u)) => resubscribe |= on_view_update(&mut reconciler, &u),
                Some(SbEvent::Disconnected { endpoint, error }) => {
                    warn!(%endpoint, %error, "controller stream lost; keeping the data plane as is")
                }
                None => break,
            },
            // A lost OpenFlow connection (ovs-vswitchd restarted) is noticed at once, not at
            // the next request: reconnect, then the usual read-back, diff and bundle.
            _ = async {
                match &of {
                    Some(c) => c.closed().await,
                    None => std::future::pending().await,
                }
            } => {
                warn!("OpenFlow connection lost; reconnecting");
                of = None;
                full_needed = true;
            },
            _ = of_retry.tick(), if of.is_none() => {
                match OfChannel::connect(&mgmt).await {
                    Ok(c) => {
                        let c = Arc::new(c);
                        match setup_channel(&c, geneve, &pin_stats, &learned_tx, &hc_reply_tx).await {
                            Ok(task) => {
                                info!(socket = %mgmt.display(), "OpenFlow connected");
                                if let Some(old) = pinctrl_task.replace(task) { old.abort(); }
                                of = Some(c);
                                full_needed = true;
                            }
                            Err(e) => {
                                reconciler.set_error(e.clone());
                                warn!(error = %e, "OpenFlow setup failed; retrying");
                            }
                        }
                    }
                    Err(e) => debug!(error = %e, "OpenFlow connect failed"),
                }
            },
            done = async {
                match read_back_task.as_mut() {
                    Some(t) => t.await,
                    None => std::future::pending().await,
                }
            } => {
                read_back_task = None;
                match done {
                    Ok(Ok(rb)) => {
                        crate::metrics::observe_reconcile("read_back", rb.took);
                        read_back = Some(rb);
                    }
                    Ok(Err(e)) => {
                        warn!(error = %e, "periodic read-back failed; next one at the next interval");
                        pacing.done(std::time::Instant::now(), std::time::Duration::ZERO);
                    }
                    Err(e) => warn!(error = %e, "periodic read-back task ended"),
                }
            },
            Some(l) = learned_rx.recv() => {
                if reconciler.learn(&l, std::time::Instant::now()) {
                    debug!(ip = %l.ip, mac = %l.mac, "neighbour learned");
                }
            },
            _ = resync.tick() => {
                let now = std::time::Instant::now();
                let idle = read_back_task.is_none()
                    && read_back.is_none()
                    && !full_needed
                    && reconciler.desired().is_some();
                // A full read-back when its (cost-paced) turn comes, or at once when the
                // switch's flow count per table differs from the desired state's (checked
                // every interval: O(tables) for the switch, no flow dump).
                let due = match (&of, idle) {
                    (Some(chan), true) => {
                        pacing.due(now) || table_counts_drifted(chan, &reconciler).await
                    }
                    _ => false,
                };
                if due {
                    // No bundle is in flight here: the read-back sees every bundle so far, and
                    // what the next ones write is recorded from now on.
                    reconciler.read_back_started();
                    read_back_task = Some(tokio::spawn(
                        read_back_table(mgmt.clone()).instrument(info_span!("read_back")),
                    ));
                }
                reconciler.expire_neighbours(std::time::Instant::now());
                let st = pin_stats_rx.borrow().clone();
                observe.resync(&st);
                if st != pin_logged {
                    info!(
                        received = st.received,
                        answered = st.answered,
                        dropped = st.dropped(),
                        queue_dropped = st.queue_dropped,
                        undecodable = st.undecodable,
                        send_failed = st.send_failed,
                        "pinctrl counters"
                    );
                    pin_logged = st;
                }
            }
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
                let rb = read_back.take();
                let step = match &rb {
                    _ if full => Step::Full,
                    Some(rb) => Step::Resync(rb),
                    None => Step::Incremental,
                };
                let kind = step.kind();
                let span = info_span!("reconcile", revision = reconciler.view().revision(), kind);
                let started = std::time::Instant::now();
                let result = apply(
                    chan,
                    &endpoint,
                    &mut ids_db,
                    &config.bridge,
                    &mut reconciler,
                    step,
                )
                .instrument(span)
                .await;
                crate::metrics::observe_reconcile(kind, started.elapsed());
                if let Some(rb) = &rb {
                    let cost = rb.took + started.elapsed();
                    let now = std::time::Instant::now();
                    if let Some(gap) = pacing.done(now, cost) {
                        info!(
                            cost_ms = cost.as_millis() as u64,
                            read_back_ms = rb.took.as_millis() as u64,
                            flows = rb.installed.flow_count(),
                            next_in_s = gap.as_secs(),
                            "periodic resync costs more than a tenth of its interval: spacing them out"
                        );
                    }
                } else if full {
                    // A full diff just checked everything: the next periodic one can wait.
                    pacing.done(std::time::Instant::now(), started.elapsed());
                }
                observe.applied(&reconciler);
                match result {
                    Ok(()) => {
                        full_needed = false;
                        announce_gateways(chan, &reconciler, &config.chassis, &mut gateways_here)
                            .await;
                    }
                    Err(e) => {
                        if matches!(e, OfError::Disconnected | OfError::Io(_)) {
                            of = None;
                        }
                        full_needed = true;
                    }
                }
            }
        }
        hc_chan_tx.send_if_modified(|cur| {
            let same = match (cur.as_ref(), of.as_ref()) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                *cur = of.clone();
            }
            !same
        });
        let targets = match reconciler.vifs() {
            Some(vifs) => crate::lb_health::targets(reconciler.view(), &config.chassis, vifs),
            None => Vec::new(),
        };
        hc_targets_tx.send_if_modified(|cur| {
            let changed = *cur != targets;
            if changed {
                *cur = targets;
            }
            changed
        });
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
    hc_task.abort();
    if let Some(t) = read_back_task {
        t.abort();
    }
    drift_task.abort();
    if let Some(t) = mgmt_task {
        t.abort();
    }
    if let Some(t) = pinctrl_task {
        t.abort();
    }
    let _ = cni_stop.send(());
    let _ = cnm_stop.send(());
    if let Some(t) = cnm_task {
        let _ = t.await;
    }
    if let Some(t) = cni_task {
        let _ = t.await;
    }
    observe.stop();
    info!("agent stopped; OVS keeps its flows");
}

/// Applies one view update; true when it was rejected and a fresh snapshot is needed.
fn on_view_update(reconciler: &mut Reconciler, u: &weft_proto::v1::ViewUpdate) -> bool {
    let started = std::time::Instant::now();
    let r = on_view_update_inner(reconciler, u);
    crate::metrics::metrics()
        .view_update_seconds
        .observe(started.elapsed().as_secs_f64());
    r
}

fn on_view_update_inner(reconciler: &mut Reconciler, u: &weft_proto::v1::ViewUpdate) -> bool {
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
    crate::underlay::on_delta(&u);
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

/// Flushes the conntrack entries of newly assigned zones, before any flow uses them (a port
/// never inherits another port's connections).
async fn flush_new_zones(chan: &OfChannel, ch: &crate::ids::IdChanges) -> Result<(), String> {
    for z in &ch.flush_zones {
        chan.ct_flush_zone(*z)
            .await
            .map_err(|e| format!("flushing conntrack zone {z}: {e}"))?;
    }
    Ok(())
}

/// Writes newly assigned ids to br-int's external_ids (so a restarted agent gets them back).
async fn write_ids(
    endpoint: &Endpoint,
    db: &mut Option<weft_ovsdb::Client>,
    bridge: &str,
    ch: &crate::ids::IdChanges,
) -> Result<(), String> {
    if ch.set.is_empty() && ch.remove.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let res = write_ids_inner(endpoint, db, bridge, ch).await;
    crate::metrics::metrics()
        .persist_ids_seconds
        .observe(started.elapsed().as_secs_f64());
    res
}

async fn write_ids_inner(
    endpoint: &Endpoint,
    db: &mut Option<weft_ovsdb::Client>,
    bridge: &str,
    ch: &crate::ids::IdChanges,
) -> Result<(), String> {
    // One OVSDB connection kept for id writes (a new local port costs one transaction, not a
    // connect and a transaction); dropped on any error and made again on the next write.
    if db.as_ref().is_some_and(|c| c.is_closed()) {
        *db = None;
    }
    if db.is_none() {
        let c = weft_ovsdb::Client::connect(endpoint, Default::default())
            .await
            .map_err(|e| format!("connecting to OVSDB: {e}"))?;
        *db = Some(c);
    }
    let Some(client) = db.as_ref() else {
        return Err("no OVSDB connection".into());
    };
    let res = vswitch::update_bridge_external_ids(client, bridge, &ch.set, &ch.remove).await;
    if res.is_err() {
        if let Some(c) = db.take() {
            c.close();
        }
    }
    res.map_err(|e| format!("writing id allocations: {e}"))?;
    debug!(
        set = ch.set.len(),
        removed = ch.remove.len(),
        "ids persisted"
    );
    Ok(())
}

/// One reconcile step: a full diff against what the switch has, or an incremental one.
/// Sends gratuitous ARPs for the gateway ports that became resident on this chassis since
/// the last apply ([`crate::pinctrl::garp`]), so the provider network learns the new place
/// of their MACs at once after a failover.
async fn announce_gateways(
    chan: &OfChannel,
    r: &Reconciler,
    chassis: &str,
    here: &mut std::collections::BTreeSet<String>,
) {
    let now = crate::pinctrl::garp::resident_gateways(r.view(), chassis);
    for lrp in now.difference(here) {
        for po in crate::pinctrl::garp::announcements(r.view(), lrp) {
            if let Err(e) = chan.packet_out(po).await {
                warn!(port = %lrp, error = %e, "gratuitous ARP not sent");
            }
        }
        info!(port = %lrp, "gateway port active here; gratuitous ARPs sent");
    }
    *here = now;
}

/// What one reconcile step diffs.
enum Step<'a> {
    /// Against a table read back now (start, reconnect, drift repair, failed bundle).
    Full,
    /// The changes since the last step only.
    Incremental,
    /// The changes since the last step, and a drift check against a table read back in the
    /// background ([`read_back_table`]).
    Resync(&'a ReadBack),
}

impl Step<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Step::Full => "full",
            Step::Incremental => "incremental",
            Step::Resync(_) => "resync",
        }
    }
}

/// A table read back (and indexed) for the periodic resync, and how long that took.
pub(crate) struct ReadBack {
    installed: InstalledIndex,
    took: Duration,
}

/// The cheap drift check: the switch's flow count per table against the desired state's
/// ([`Reconciler::table_counts_match`]). Run while no bundle is in flight.
async fn table_counts_drifted(chan: &OfChannel, r: &Reconciler) -> bool {
    match chan.table_flow_counts().await {
        Ok(counts) => {
            let drifted = !r.table_counts_match(&counts);
            if drifted {
                info!(
                    "flow counts per table differ from the desired state: reading the table back"
                );
            }
            drifted
        }
        Err(e) => {
            warn!(error = %e, "table stats not read; the next full read-back checks drift");
            false
        }
    }
}

/// Reads the table back over an OpenFlow connection of its own, so that the bundles of the
/// main connection do not queue behind a large dump (and the main loop goes on meanwhile).
async fn read_back_table(mgmt: std::path::PathBuf) -> Result<ReadBack, String> {
    let started = std::time::Instant::now();
    let chan = OfChannel::connect(&mgmt)
        .await
        .map_err(|e| format!("connecting to {}: {e}", mgmt.display()))?;
    let flows = chan
        .dump_flows()
        .await
        .map_err(|e| format!("reading flows back: {e}"))?;
    let groups = chan
        .dump_groups()
        .await
        .map_err(|e| format!("reading groups back: {e}"))?;
    let meters = chan
        .dump_meters()
        .await
        .map_err(|e| format!("reading meters back: {e}"))?;
    drop(chan);
    // Indexing is most of a diff's work: it is done here, off the main loop.
    let installed = tokio::task::spawn_blocking(move || InstalledIndex::new(flows, groups, meters))
        .await
        .map_err(|e| format!("indexing the flows read back: {e}"))?;
    Ok(ReadBack {
        installed,
        took: started.elapsed(),
    })
}

/// When the next periodic full read-back may start: every `interval`, but never sooner than
/// [`ResyncPacing::COST_FACTOR`] times what the last one cost after it ended, so that a
/// large table's drift check takes a bounded share (1%) of the agent's and the switch's
/// time. Between two, the flow count per table is checked every interval
/// (`table_counts_drifted`), and a difference starts a read-back at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResyncPacing {
    interval: Duration,
    gap: Duration,
    next: std::time::Instant,
}

impl ResyncPacing {
    /// A resync costs at most one part in this many of the time between two.
    pub const COST_FACTOR: u32 = 100;

    pub fn new(interval: Duration, now: std::time::Instant) -> Self {
        Self {
            interval,
            gap: interval,
            next: now + interval,
        }
    }

    /// Whether a resync may start at `now` (a tenth of the interval early is on time: the
    /// caller checks on a timer of that interval).
    pub fn due(&self, now: std::time::Instant) -> bool {
        now + self.interval / 10 >= self.next
    }

    /// The gap after a resync that cost `cost`.
    pub fn gap_for(interval: Duration, cost: Duration) -> Duration {
        interval.max(cost.saturating_mul(Self::COST_FACTOR))
    }

    /// A resync (or a full diff) that cost `cost` ended at `now`: the next one is due `gap`
    /// after this one started. Returns the gap when it is longer than the interval (worth a
    /// log line).
    pub fn done(&mut self, now: std::time::Instant, cost: Duration) -> Option<Duration> {
        let gap = Self::gap_for(self.interval, cost);
        self.gap = gap;
        self.next = now.checked_sub(cost).unwrap_or(now) + gap;
        (gap > self.interval).then_some(gap)
    }

    /// The gap now in force.
    pub fn gap(&self) -> Duration {
        self.gap
    }
}

async fn apply(
    chan: &OfChannel,
    endpoint: &Endpoint,
    db: &mut Option<weft_ovsdb::Client>,
    bridge: &str,
    r: &mut Reconciler,
    step: Step<'_>,
) -> Result<(), OfError> {
    let d = match step {
        Step::Full => {
            let flows = chan.dump_flows().await;
            let groups = chan.dump_groups().await;
            let meters = chan.dump_meters().await;
            let (flows, groups, meters) = match (flows, groups, meters) {
                (Ok(f), Ok(g), Ok(m)) => (f, g, m),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    r.set_error(format!("reading flows back: {e}"));
                    return Err(e);
                }
            };
            let installed = Installed {
                flows: &flows,
                groups: &groups,
                meters: &meters,
            };
            match r.full(installed) {
                Some(d) => {
                    if !d.is_empty() {
                        info!(installed = flows.len(), changes = d.len(), "full resync");
                        if r.applied_state().is_some_and(|(applied, _)| applied > 0) {
                            crate::metrics::metrics()
                                .drift_repairs
                                .inc_by(d.len() as u64);
                        }
                    }
                    d
                }
                None => return Ok(()),
            }
        }
        Step::Resync(rb) => {
            let installed = &rb.installed;
            match r.resync(installed) {
                Some(crate::reconcile::Resync {
                    diff: d,
                    repairs,
                    flows_compared,
                }) => {
                    if repairs > 0 {
                        info!(
                            installed = rb.installed.flow_count(),
                            repairs, "periodic resync repaired drift"
                        );
                        crate::metrics::metrics()
                            .drift_repairs
                            .inc_by(repairs as u64);
                    } else {
                        debug!(
                            installed = rb.installed.flow_count(),
                            flows_compared, "periodic resync: no drift"
                        );
                    }
                    d
                }
                // The read-back is stale (a full diff or a failed bundle came in between).
                None => match r.incremental() {
                    Some(d) => d,
                    None => return Ok(()),
                },
            }
        }
        Step::Incremental => match r.incremental() {
            Some(d) => d,
            None => return Ok(()),
        },
    };
    // New zones are flushed first. The ids write (one OVSDB transaction) and the bundle then
    // run at the same time: the wall-clock cost of a change with new ids is the slower of
    // the two, not their sum. A crash between the two loses nothing: ids not in OVSDB are
    // assigned again on restart (a zone given to another port is flushed first, as any new
    // zone), and the restart's full diff replaces whatever flows used them.
    let ch = r.pending_ids();
    if let Err(e) = flush_new_zones(chan, &ch).await {
        error!(error = %e, "new zones not flushed; not applying");
        r.applied(Err(e));
        return Ok(());
    }
    let ops = bundle_ops(&d);
    let n = ops.len();
    let bundle = async {
        if n == 0 {
            return None;
        }
        let started = std::time::Instant::now();
        let res = chan.apply_bundle(ops).await;
        crate::metrics::bundle(n, started, res.is_ok());
        Some(res)
    };
    let (written, bundled) = tokio::join!(write_ids(endpoint, db, bridge, &ch), bundle);
    match &written {
        Ok(()) => r.ids_persisted(&ch),
        Err(e) => error!(error = %e, "id allocations not persisted; a full diff follows"),
    }
    match bundled {
        None | Some(Ok(())) => {
            if n > 0 {
                debug!(ops = n, "bundle committed");
            }
            // Flows that use ids not in OVSDB count as not applied: the next step is a full
            // diff, after the write is tried again.
            r.applied(written);
            Ok(())
        }
        Some(Err(e)) => {
            error!(error = %e, ops = n, "bundle failed; the switch keeps its previous flows");
            r.applied(Err(e.to_string()));
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn resync_pacing_keeps_the_interval_for_cheap_resyncs() {
        let t0 = Instant::now();
        let i = Duration::from_secs(30);
        let mut p = ResyncPacing::new(i, t0);
        assert!(!p.due(t0));
        assert!(p.due(t0 + i));
        // A 100 ms resync started on the tick at 30 s: the next tick (60 s) is due.
        let end = t0 + i + Duration::from_millis(100);
        assert_eq!(p.done(end, Duration::from_millis(100)), None);
        assert_eq!(p.gap(), i);
        assert!(!p.due(t0 + Duration::from_secs(45)));
        assert!(p.due(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn resync_pacing_spaces_out_expensive_resyncs() {
        let t0 = Instant::now();
        let i = Duration::from_secs(30);
        let mut p = ResyncPacing::new(i, t0);
        // A 2.6 s resync (85k flows, release build, 16 hosts on 2 cores) started at 30 s.
        let cost = Duration::from_millis(2600);
        let end = t0 + i + cost;
        assert_eq!(p.done(end, cost), Some(Duration::from_secs(260)));
        assert!(!p.due(t0 + Duration::from_secs(60)));
        assert!(!p.due(t0 + Duration::from_secs(240)));
        assert!(p.due(t0 + Duration::from_secs(290)));
        // It got cheap again: back to the interval.
        let end2 = t0 + Duration::from_secs(291);
        assert_eq!(p.done(end2, Duration::from_millis(100)), None);
        assert!(p.due(t0 + Duration::from_secs(320)));
        assert_eq!(ResyncPacing::gap_for(i, Duration::ZERO), i);
    }

    #[test]
    fn bundle_ops_order_groups_around_flows() {
        let mut d = Diff::default();
        d.groups.adds.push(weft_openflow::flow::Group {
            id: 7,
            kind: weft_openflow::flow::GroupType::All,
            buckets: vec![],
        });
        d.groups.deletes.push(8);
        d.flows.deletes.push(weft_openflow::flow::FlowKey {
            table: 1,
            priority: 2,
            matches: weft_openflow::flow::Match::from_fields([]),
        });
        let ops = bundle_ops(&d);
        assert!(matches!(ops.first(), Some(BundleOp::GroupAdd(_))));
        assert!(matches!(ops.last(), Some(BundleOp::GroupDelete(8))));
    }
}
