//! The controller's Prometheus metrics (served by [`weft_obs`] on `--metrics-listen`), and
//! the tower layer that counts and times every gRPC request. Series:
//! - `weft_controller_requests_total{method,code}` and
//!   `weft_controller_request_duration_seconds{method}`: every gRPC call;
//! - `weft_controller_etcd_request_duration_seconds{op}`: every etcd call;
//! - `weft_controller_view_computations_total{kind}`: view updates, `full` or `incremental`;
//! - `weft_controller_streams`: open Subscribe streams;
//! - `weft_controller_chassis_lag_revisions{chassis}`: how far each live chassis' applied
//!   revision is behind the latest view-changing one;
//! - `weft_controller_wait_hv_total{result}` and `weft_controller_wait_hv_duration_seconds`;
//! - stage timings of the write path (issue 17): `weft_controller_watch_delay_seconds` (a
//!   successful etcd transaction returned → the cache applied its revision),
//!   `weft_controller_view_update_seconds` (one stream's view delta computed and encoded),
//!   `weft_controller_ack_flush_seconds` (one batched write of held acks, see
//!   [`crate::acks`]).

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::state::ClusterState;

/// Labels of a gRPC request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Service and method, e.g. `weft.v1.Northbound/Transact`.
    pub method: String,
    /// gRPC status code name (`OK`, `INVALID_ARGUMENT`, ...).
    pub code: String,
}

/// A single label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// Service and method.
    pub method: String,
}

/// A single label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    /// etcd operation (range, get, txn, ...).
    pub op: String,
}

/// A single label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `full` or `incremental`.
    pub kind: String,
}

/// A single label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChassisLabel {
    /// Chassis name.
    pub chassis: String,
}

/// A single label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok`, `timeout` or `error`.
    pub result: String,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every controller series.
pub struct Metrics {
    /// Requests by method and code.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by method.
    pub request_seconds: Family<MethodLabel, Histogram, fn() -> Histogram>,
    /// etcd call latency by op.
    pub etcd_seconds: Family<OpLabel, Histogram, fn() -> Histogram>,
    /// View computations by kind.
    pub views: Family<KindLabel, Counter>,
    /// Open Subscribe streams.
    pub streams: Gauge,
    /// Revisions each live chassis is behind.
    pub lag: Family<ChassisLabel, Gauge>,
    /// `--wait=hv` waits by result.
    pub waits: Family<ResultLabel, Counter>,
    /// `--wait=hv` wait duration.
    pub wait_seconds: Histogram,
    /// etcd transaction returned → cache applied its revision.
    pub watch_delay_seconds: Histogram,
    /// One stream's view update computed and encoded.
    pub view_update_seconds: Histogram,
    /// One batched write of held acks.
    pub ack_flush_seconds: Histogram,
}

/// The process-wide controller metrics (registered on first use).
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            etcd_seconds: Family::new_with_constructor(latency),
            views: Family::default(),
            streams: Gauge::default(),
            lag: Family::default(),
            waits: Family::default(),
            wait_seconds: latency(),
            watch_delay_seconds: fine(),
            view_update_seconds: fine(),
            ack_flush_seconds: fine(),
        };
        weft_obs::register("weft_controller_requests", "gRPC requests by method and status code.", m.requests.clone());
        weft_obs::register("weft_controller_request_duration_seconds", "gRPC request latency.", m.request_seconds.clone());
        weft_obs::register("weft_controller_etcd_request_duration_seconds", "etcd call latency.", m.etcd_seconds.clone());
        weft_obs::register("weft_controller_view_computations", "Per-chassis view updates computed, full or incremental.", m.views.clone());
        weft_obs::register("weft_controller_streams", "Open southbound Subscribe streams.", m.streams.clone());
        weft_obs::register("weft_controller_chassis_lag_revisions", "How many revisions a live chassis' applied revision is behind the latest view-changing one.", m.lag.clone());
        weft_obs::register("weft_controller_wait_hv", "--wait=hv waits by result.", m.waits.clone());
        weft_obs::register("weft_controller_wait_hv_duration_seconds", "--wait=hv wait duration.", m.wait_seconds.clone());
        weft_obs::register("weft_controller_watch_delay_seconds", "A successful etcd transaction returned until the cache applied its revision.", m.watch_delay_seconds.clone());
        weft_obs::register("weft_controller_view_update_seconds", "One stream's view update computed and encoded.", m.view_update_seconds.clone());
        weft_obs::register("weft_controller_ack_flush_seconds", "One batched etcd write of the applied-revision acks this replica holds.", m.ack_flush_seconds.clone());
        m
    })
}

fn fine() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.0, 18))
}

/// Transactions this process wrote whose revision the cache has not applied yet (oldest
/// first, at most [`PENDING_WRITES`]).
fn pending_writes() -> &'static Mutex<VecDeque<(i64, Instant)>> {
    static P: OnceLock<Mutex<VecDeque<(i64, Instant)>>> = OnceLock::new();
    P.get_or_init(|| Mutex::new(VecDeque::new()))
}

const PENDING_WRITES: usize = 256;

/// A transaction of this process succeeded at `revision` (see [`applied_up_to`]).
pub fn wrote(revision: i64) {
    let mut p = pending_writes().lock().unwrap_or_else(|e| e.into_inner());
    if p.len() >= PENDING_WRITES {
        p.pop_front();
    }
    p.push_back((revision, Instant::now()));
}

/// The cache applied everything up to `revision`: observes the watch delay of this
/// process' writes it covers.
pub fn applied_up_to(revision: i64) {
    let mut p = pending_writes().lock().unwrap_or_else(|e| e.into_inner());
    while p.front().is_some_and(|(r, _)| *r <= revision) {
        if let Some((_, at)) = p.pop_front() {
            metrics()
                .watch_delay_seconds
                .observe(at.elapsed().as_secs_f64());
        }
    }
}

/// Records one etcd call.
pub fn etcd_call(op: &str, started: Instant) {
    metrics()
        .etcd_seconds
        .get_or_create(&OpLabel { op: op.to_string() })
        .observe(started.elapsed().as_secs_f64());
}

/// Updates the per-chassis lag from a new cached state (O(chassis)).
pub fn chassis_lag(st: &ClusterState) {
    let m = metrics();
    for c in st.chassis.keys() {
        let l = ChassisLabel { chassis: c.clone() };
        if st.alive.contains(c) {
            let applied = st.applied.get(c).copied().unwrap_or(0);
            m.lag
                .get_or_create(&l)
                .set((st.intent_revision - applied).max(0));
        } else {
            m.lag.remove(&l);
        }
    }
}

/// The gRPC status code name of a numeric code.
pub fn code_name(code: &str) -> &'static str {
    match code.parse::<i32>().map(tonic::Code::from) {
        Ok(tonic::Code::Ok) => "OK",
        Ok(tonic::Code::Cancelled) => "CANCELLED",
        Ok(tonic::Code::InvalidArgument) => "INVALID_ARGUMENT",
        Ok(tonic::Code::DeadlineExceeded) => "DEADLINE_EXCEEDED",
        Ok(tonic::Code::NotFound) => "NOT_FOUND",
        Ok(tonic::Code::AlreadyExists) => "ALREADY_EXISTS",
        Ok(tonic::Code::PermissionDenied) => "PERMISSION_DENIED",
        Ok(tonic::Code::FailedPrecondition) => "FAILED_PRECONDITION",
        Ok(tonic::Code::Unavailable) => "UNAVAILABLE",
        Ok(tonic::Code::Unauthenticated) => "UNAUTHENTICATED",
        Ok(tonic::Code::Internal) => "INTERNAL",
        Ok(tonic::Code::Unimplemented) => "UNIMPLEMENTED",
        Ok(_) => "OTHER",
        Err(_) => "UNKNOWN",
    }
}

tokio::task_local! {
    /// Chassis a `--wait=hv` of the current request skipped because they were dead; the
    /// layer below returns them in the `weft-skipped-chassis` response header.
    static SKIPPED: std::cell::RefCell<Vec<String>>;
}

/// Records chassis the current request's wait skipped (no-op outside a request).
pub fn note_skipped(chassis: &[String]) {
    let _ = SKIPPED.try_with(|s| s.borrow_mut().extend(chassis.iter().cloned()));
}

/// The response header naming the chassis a `--wait=hv` skipped.
pub const SKIPPED_HEADER: &str = "weft-skipped-chassis";

/// The tower layer counting and timing every request by path and status.
#[derive(Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner }
    }
}

/// See [`MetricsLayer`].
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
    S::Error: 'static,
    RB: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().trim_start_matches('/').to_string();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let (mut r, skipped) = SKIPPED
                .scope(std::cell::RefCell::new(Vec::new()), async move {
                    let r = fut.await;
                    let skipped = SKIPPED.with(|s| s.borrow().clone());
                    (r, skipped)
                })
                .await;
            if let (Ok(resp), false) = (&mut r, skipped.is_empty()) {
                if let Ok(v) = http::HeaderValue::from_str(&skipped.join(",")) {
                    resp.headers_mut().insert(SKIPPED_HEADER, v);
                }
            }
            let code = match &r {
                // Errors are trailers-only responses: the status is in the headers; a
                // response without it is a success whose status comes in the trailers.
                Ok(resp) => code_name(
                    resp.headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0"),
                ),
                Err(_) => "TRANSPORT",
            };
            let m = metrics();
            m.requests
                .get_or_create(&RequestLabels {
                    method: method.clone(),
                    code: code.to_string(),
                })
                .inc();
            m.request_seconds
                .get_or_create(&MethodLabel { method })
                .observe(started.elapsed().as_secs_f64());
            r
        })
    }
}
