//! The `weft.v1.Southbound` service: agent streams (chassis registration: a persistent
//! record plus an alive key on a lease kept alive while the stream is open; snapshot then
//! deltas) and status reports.
//!
//! Update rule per stream: on every intent change (anything under `nb/`) send an update with
//! the new revision even if the view did not change (agents ack it for `--wait=hv`); on
//! status/chassis changes send only if the view changed, so acks never cause updates.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use weft_proto::v1::southbound_server::Southbound;
use weft_proto::v1::{
    Chassis, HealthReport, StatusReply, StatusReport, SubscribeRequest, ViewUpdate,
};

use crate::cache::CacheSnapshot;
use crate::error::ApiError;
use crate::intent::Intent;
use crate::validate::validate_chassis;
use crate::view::{self, ViewState};

/// The southbound service.
#[derive(Clone)]
pub struct SouthboundService {
    intent: Intent,
    cache: watch::Receiver<Arc<CacheSnapshot>>,
    lease_ttl_secs: i64,
    shutdown: watch::Receiver<bool>,
}

impl SouthboundService {
    /// Service over `intent`; streams follow `cache`; stream tasks end when `shutdown` flips.
    pub fn new(
        intent: Intent,
        cache: watch::Receiver<Arc<CacheSnapshot>>,
        lease_ttl_secs: i64,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        SouthboundService {
            intent,
            cache,
            lease_ttl_secs: lease_ttl_secs.max(2),
            shutdown,
        }
    }
}

/// How a send on the stream ended.
enum Sent {
    Ok,
    /// The agent went away.
    Closed,
    /// The agent stopped reading for longer than the stall limit.
    Stalled,
}

/// One open stream's state.
struct StreamTask {
    intent: Intent,
    chassis: Chassis,
    lease: i64,
    ttl: i64,
    cache: watch::Receiver<Arc<CacheSnapshot>>,
    shutdown: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<ViewUpdate, Status>>,
}

impl StreamTask {
    async fn run(mut self) {
        let streams = &crate::metrics::metrics().streams;
        streams.inc();
        self.run_stream().await;
        streams.dec();
    }

    async fn run_stream(&mut self) {
        let mut keepalive =
            tokio::time::interval(Duration::from_millis((self.ttl as u64 * 1000 / 3).max(500)));
        keepalive.tick().await;
        // The view kept up to date from changed keys, the state revision it reflects, and
        // the view revision last sent.
        let mut vs: Option<ViewState> = None;
        let mut seen = 0;
        let mut sent_rev: Option<i64> = None;
        self.cache.mark_changed();
        loop {
            tokio::select! {
                _ = self.tx.closed() => break,
                r = self.shutdown.changed() => {
                    if r.is_err() || *self.shutdown.borrow() { break; }
                }
                _ = keepalive.tick() => self.keep_alive().await,
                r = self.cache.changed() => {
                    if r.is_err() { break; }
                    let snap = self.cache.borrow_and_update().clone();
                    if !snap.connected {
                        continue;
                    }
                    let st = &snap.state;
                    // A view depends only on keys that bump `intent_revision` (intent, chassis
                    // records, bindings): acks and error reports cannot change it, so they
                    // cost nothing here (there are several per write).
                    if sent_rev.is_some_and(|rev| st.intent_revision <= rev) {
                        continue;
                    }
                    let computing = std::time::Instant::now();
                    let update = match (vs.as_mut(), st.changes_since(seen)) {
                        // Only what changed since the last update is re-evaluated.
                        (Some(v), Some(changes)) => {
                            crate::metrics::metrics()
                                .views
                                .get_or_create(&crate::metrics::KindLabel {
                                    kind: "incremental".into(),
                                })
                                .inc();
                            v.update(st, &changes, st.revision)
                        }
                        (old, _) => {
                            // First update, or the change log no longer reaches back (cache
                            // reloaded): compute in full.
                            crate::metrics::metrics()
                                .views
                                .get_or_create(&crate::metrics::KindLabel {
                                    kind: "full".into(),
                                })
                                .inc();
                            let new = ViewState::new(st, &self.chassis.name);
                            let u = match old {
                                None => view::snapshot(new.view(), st.revision),
                                Some(old) => view::delta(old.view(), new.view(), st.revision),
                            };
                            vs = Some(new);
                            u
                        }
                    };
                    seen = st.revision;
                    tracing::debug!(revision = update.revision, snapshot = update.snapshot, ports = update.ports.len(), deleted_ports = update.deleted_ports.len(), "sending view update");
                    let update = update.into_update();
                    crate::metrics::metrics()
                        .view_update_seconds
                        .observe(computing.elapsed().as_secs_f64());
                    match self.send_keeping_alive(update, &mut keepalive).await {
                        Sent::Ok => {}
                        Sent::Closed => break,
                        Sent::Stalled => {
                            tracing::warn!(
                                stalled_secs = self.stall_limit().as_secs(),
                                "agent stopped reading its view stream; closing it (the agent resubscribes)"
                            );
                            break;
                        }
                    }
                    sent_rev = Some(st.intent_revision);
                }
            }
        }
        // The lease is not revoked: it expires after the TTL unless the agent subscribes
        // again first (then its alive key moves to the new lease), so an agent restart does
        // not even blip `alive`. The chassis record is not leased either way: other hosts keep
        // their tunnels to a chassis whose agent is down, its OVS still forwards.
        tracing::info!(
            lease = self.lease,
            ttl = self.ttl,
            "stream closed; chassis lease left to expire unless the agent resubscribes"
        );
    }

    /// How long an agent may leave its stream unread (the channel and the HTTP/2 window
    /// full) before the stream is closed: three lease TTLs.
    fn stall_limit(&self) -> Duration {
        Duration::from_secs(self.ttl.max(1) as u64 * 3)
    }

    /// Sends `update`, keeping the lease alive while the send waits (a slow reader is not
    /// a dead chassis), and gives up after [`StreamTask::stall_limit`].
    async fn send_keeping_alive(
        &mut self,
        update: ViewUpdate,
        keepalive: &mut tokio::time::Interval,
    ) -> Sent {
        let tx = self.tx.clone();
        let send = tx.send(Ok(update));
        tokio::pin!(send);
        let stall = tokio::time::sleep(self.stall_limit());
        tokio::pin!(stall);
        loop {
            tokio::select! {
                r = &mut send => return if r.is_ok() { Sent::Ok } else { Sent::Closed },
                _ = keepalive.tick() => self.keep_alive().await,
                _ = &mut stall => return Sent::Stalled,
            }
        }
    }

    async fn keep_alive(&mut self) {
        let store = self.intent.store().clone();
        match store.lease_keep_alive(self.lease).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    lease = self.lease,
                    "chassis lease expired; registering again"
                );
                match store.lease_grant(self.ttl).await {
                    Ok(id) => {
                        self.lease = id;
                        if let Err(e) = self.intent.register_chassis(&self.chassis, id).await {
                            tracing::warn!(error = %e, "re-registering chassis failed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "lease grant failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "lease keep-alive failed; retrying"),
        }
    }
}

/// A chassis speaks only for itself: the caller's certificate (or agent token) must name the
/// chassis the request is about. No caller (the open policy of `--insecure` without
/// tokens): anything goes.
fn speaks_for(
    caller: Option<&weft_proto::model::identity::Identity>,
    rpc: &str,
    chassis: &str,
) -> Result<(), Status> {
    match caller {
        Some(id) if id.name != chassis => {
            tracing::warn!(caller = %id, claimed = %chassis, rpc, "refused: a chassis may only speak for itself");
            Err(Status::permission_denied(format!(
                "{rpc} for chassis {chassis:?} refused: the caller is {id}, which may only speak for chassis {:?}",
                id.name
            )))
        }
        _ => Ok(()),
    }
}

#[tonic::async_trait]
impl Southbound for SouthboundService {
    type SubscribeStream = ReceiverStream<Result<ViewUpdate, Status>>;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = crate::auth::caller(&request).cloned();
        let chassis = request.into_inner().chassis.unwrap_or_default();
        speaks_for(caller.as_ref(), "Subscribe", &chassis.name)?;
        let span = tracing::info_span!("subscribe", chassis = %chassis.name);
        let (task, rx) = async {
            validate_chassis(&chassis).map_err(ApiError::from)?;
            let lease = self
                .intent
                .store()
                .lease_grant(self.lease_ttl_secs)
                .await
                .map_err(ApiError::from)?;
            if let Err(e) = self.intent.register_chassis(&chassis, lease).await {
                let _ = self.intent.store().lease_revoke(lease).await;
                return Err(e);
            }
            tracing::info!(lease, encap_ip = %chassis.encap_ip, "chassis registered");
            let (tx, rx) = mpsc::channel(64);
            Ok::<_, ApiError>((
                StreamTask {
                    intent: self.intent.clone(),
                    chassis: chassis.clone(),
                    lease,
                    ttl: self.lease_ttl_secs,
                    cache: self.cache.clone(),
                    shutdown: self.shutdown.clone(),
                    tx,
                },
                rx,
            ))
        }
        .instrument(span.clone())
        .await
        .map_err(|e| {
            tracing::info!(error = %e, "subscribe rejected");
            Status::from(e)
        })?;
        tokio::spawn(
            task.run()
                .instrument(tracing::info_span!("stream", chassis = %chassis.name)),
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn report_status(
        &self,
        request: Request<StatusReport>,
    ) -> Result<Response<StatusReply>, Status> {
        let caller = crate::auth::caller(&request).cloned();
        let report = request.into_inner();
        speaks_for(caller.as_ref(), "ReportStatus", &report.chassis)?;
        let span = tracing::debug_span!("report_status", chassis = %report.chassis, applied = report.applied_revision);
        async {
            let cached = {
                let snap = self.cache.borrow();
                snap.connected.then(|| snap.state.clone())
            };
            let revision = self
                .intent
                .report_status(&report, cached.as_deref())
                .await?;
            Ok(Response::new(StatusReply { revision }))
        }
        .instrument(span)
        .await
        .map_err(|e: ApiError| Status::from(e))
    }

    async fn report_health(
        &self,
        request: Request<HealthReport>,
    ) -> Result<Response<StatusReply>, Status> {
        let caller = crate::auth::caller(&request).cloned();
        let report = request.into_inner();
        speaks_for(caller.as_ref(), "ReportHealth", &report.chassis)?;
        let span = tracing::debug_span!("report_health", chassis = %report.chassis, n = report.backends.len());
        async {
            let revision = self.intent.report_health(&report).await?;
            Ok(Response::new(StatusReply { revision }))
        }
        .instrument(span)
        .await
        .map_err(|e: ApiError| Status::from(e))
    }
}
