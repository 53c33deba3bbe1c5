//! The `weft.v1.Northbound` service: thin gRPC glue over [`Intent`] plus `--wait=hv`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use weft_proto::v1::northbound_server::Northbound;
use weft_proto::v1::{
    Chassis, CreatePortRequest, CreatePortsReply, CreatePortsRequest, CreateSwitchRequest,
    DeleteRequest, GetRequest, ListChassisReply, ListChassisRequest, ListObjectsReply,
    ListObjectsRequest, ListPortsReply, ListPortsRequest, ListSwitchesReply, ListSwitchesRequest,
    LogicalSwitch, LogicalSwitchPort, PortReply, Record, SetPortAddressesRequest,
    SetPortEnabledRequest, SetPortSecurityRequest, ShowReply, ShowRequest, SwitchDetail,
    SwitchReply, SyncRequest, TraceReply, TraceRequest, TransactReply, TransactRequest, WaitMode,
    WriteOptions, WriteReply,
};

use crate::acks::AckTable;
use crate::cache::CacheSnapshot;
use crate::error::{ApiError, ApiResult};
use crate::intent::Intent;
use crate::objects::{self, transact::Oversize};
use crate::validate::validate_name;

/// Longest wait a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// The northbound service.
#[derive(Clone)]
pub struct NorthboundService {
    intent: Intent,
    cache: watch::Receiver<Arc<CacheSnapshot>>,
    default_wait: Duration,
}

impl NorthboundService {
    /// Service over `intent`, waiting on `cache` for `--wait=hv`.
    pub fn new(
        intent: Intent,
        cache: watch::Receiver<Arc<CacheSnapshot>>,
        default_wait: Duration,
    ) -> Self {
        NorthboundService {
            intent,
            cache,
            default_wait,
        }
    }

    /// The shape shared by every write that returns a port: run `write` in `span`, wait as
    /// `options` asks, answer with the stored port and the write's revision.
    async fn port_write(
        &self,
        span: tracing::Span,
        options: Option<&WriteOptions>,
        write: impl std::future::Future<Output = ApiResult<(i64, LogicalSwitchPort)>>,
    ) -> Result<Response<PortReply>, Status> {
        async {
            let (revision, port) = write.await?;
            self.wait(revision, options).await?;
            Ok(Response::new(PortReply {
                revision,
                port: Some(port),
            }))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    /// After a write at `revision`, waits as `options` asks.
    async fn wait(&self, revision: i64, options: Option<&WriteOptions>) -> ApiResult<()> {
        let Some(o) = options else { return Ok(()) };
        let mode = WaitMode::try_from(o.wait).map_err(|_| {
            ApiError::InvalidArgument(format!(
                "invalid options.wait \"{}\": unknown wait mode (WAIT_NONE or WAIT_HV)",
                o.wait
            ))
        })?;
        if mode != WaitMode::WaitHv {
            return Ok(());
        }
        let timeout = if o.timeout_ms == 0 {
            self.default_wait
        } else {
            Duration::from_millis(u64::from(o.timeout_ms)).min(MAX_WAIT)
        };
        // Dead chassis cannot apply anything: they are skipped, and named (in the reply's
        // metadata, see crate::metrics::SKIPPED), or, with `strict`, refused.
        let dead: Vec<String> = {
            let snap = self.cache.borrow();
            snap.state
                .chassis
                .keys()
                .filter(|c| !snap.state.alive.contains(*c))
                .cloned()
                .collect()
        };
        if o.strict && !dead.is_empty() {
            return Err(ApiError::FailedPrecondition(format!(
                "--wait=hv --strict: chassis {} not alive (their agents are not connected), so \
                 the write cannot be confirmed on them",
                dead.join(", ")
            )));
        }
        wait_hv(self.cache.clone(), self.intent.acks(), revision, timeout).await?;
        if !dead.is_empty() {
            tracing::info!(revision, skipped = %dead.join(","), "--wait=hv did not wait for dead chassis");
            crate::metrics::note_skipped(&dead);
        }
        Ok(())
    }
}

/// Waits until every live chassis has applied `revision`, or DeadlineExceeded naming the
/// chassis that lag.
///
/// Agents only ever see revisions that changed some view (see `ClusterState::intent_revision`):
/// acks and error reports bump etcd's revision without being sent. So once the cache has
/// reached `revision`, the target is the latest view-changing revision at or below it; for a
/// real write that is the write itself, for a no-op write or `Sync` it is the state the
/// agents were last sent.
///
/// A chassis' applied revision is the ack this replica holds for it, or what etcd holds
/// (acks other replicas received, written in batches; see [`crate::acks`]).
pub async fn wait_hv(
    cache: watch::Receiver<Arc<CacheSnapshot>>,
    acks: &AckTable,
    revision: i64,
    timeout: Duration,
) -> ApiResult<()> {
    let started = std::time::Instant::now();
    let r = wait_hv_inner(cache, acks, revision, timeout).await;
    let m = crate::metrics::metrics();
    let result = match &r {
        Ok(()) => "ok",
        Err(ApiError::DeadlineExceeded(_)) => "timeout",
        Err(_) => "error",
    };
    m.waits
        .get_or_create(&crate::metrics::ResultLabel {
            result: result.into(),
        })
        .inc();
    m.wait_seconds.observe(started.elapsed().as_secs_f64());
    r
}

async fn wait_hv_inner(
    mut cache: watch::Receiver<Arc<CacheSnapshot>>,
    acks: &AckTable,
    revision: i64,
    timeout: Duration,
) -> ApiResult<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut acked = acks.subscribe();
    loop {
        acked.borrow_and_update();
        let lagging: Option<Vec<(String, i64)>> = {
            let snap = cache.borrow_and_update();
            let st = &snap.state;
            (snap.connected && st.revision >= revision).then(|| {
                let target = st.intent_revision.min(revision);
                st.alive
                    .iter()
                    .filter(|c| st.chassis.contains_key(*c))
                    .map(|c| (c.clone(), acks.applied(st, c)))
                    .filter(|(_, applied)| *applied < target)
                    .collect()
            })
        };
        if let Some(l) = &lagging {
            if l.is_empty() {
                return Ok(());
            }
        }
        let woke = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                r = cache.changed() => r.is_ok(),
                r = acked.changed() => r.is_ok(),
            }
        });
        match woke.await {
            Ok(true) => continue,
            Ok(false) => return Err(ApiError::Unavailable("controller shutting down".into())),
            Err(_) => {
                let detail = match lagging {
                    Some(l) => l
                        .iter()
                        .map(|(n, a)| format!("{n} (applied {a})"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => "controller cache not caught up with etcd".to_string(),
                };
                return Err(ApiError::DeadlineExceeded(format!(
                    "timed out after {} ms waiting for revision {revision} on every live chassis; lagging: {detail}",
                    timeout.as_millis()
                )));
            }
        }
    }
}

fn status(e: ApiError) -> Status {
    match &e {
        ApiError::Unavailable(m) | ApiError::Internal(m) => {
            tracing::warn!(error = %m, "request failed")
        }
        other => tracing::info!(error = %other, "request rejected"),
    }
    e.into()
}

/// Largest number of ops one Transact may carry.
pub const MAX_OPS: usize = 1000;

#[tonic::async_trait]
impl Northbound for NorthboundService {
    async fn transact(
        &self,
        request: Request<TransactRequest>,
    ) -> Result<Response<TransactReply>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("transact", ops = req.ops.len(), dry_run = req.dry_run);
        async {
            if req.ops.is_empty() {
                return Err(ApiError::InvalidArgument(
                    "invalid ops \"0 entries\": at least one op is required".into(),
                ));
            }
            if req.ops.len() > MAX_OPS {
                return Err(ApiError::InvalidArgument(format!(
                    "invalid ops \"{} entries\": too many ops in one transaction (at most {MAX_OPS})",
                    req.ops.len()
                )));
            }
            let out = self
                .intent
                .transact(&req.ops, req.dry_run, Oversize::Refuse)
                .await
                .map_err(|e| e.with_op_prefix())?;
            if out.committed {
                let opts = WriteOptions {
                    wait: req.wait,
                    timeout_ms: req.timeout_ms,
                    strict: req.strict,
                    ..Default::default()
                };
                self.wait(out.revision, Some(&opts)).await?;
            }
            Ok(Response::new(TransactReply {
                results: out.results.into_iter().map(Into::into).collect(),
                revision: out.revision,
                changes: out.changes,
            }))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    async fn trace(&self, request: Request<TraceRequest>) -> Result<Response<TraceReply>, Status> {
        let req = request.into_inner();
        let span = tracing::debug_span!("trace", inport = %req.inport);
        async {
            validate_name("inport", &req.inport)?;
            let flow = if req.microflow.trim().is_empty() {
                Default::default()
            } else {
                weft_proto::model::expr::parse_microflow(&req.microflow).map_err(|e| {
                    ApiError::InvalidArgument(format!("invalid microflow {:?}: {e}", req.microflow))
                })?
            };
            let st = self.intent.read_state().await?;
            Ok(Response::new(crate::trace::trace(&st, &req.inport, flow)?))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    async fn flows(
        &self,
        request: Request<weft_proto::v1::FlowsRequest>,
    ) -> Result<Response<weft_proto::v1::FlowsReply>, Status> {
        let r = crate::debug::flows(&self.intent, request.into_inner()).await;
        r.map(Response::new).map_err(status)
    }

    async fn agent_info(
        &self,
        request: Request<weft_proto::v1::AgentInfoQuery>,
    ) -> Result<Response<weft_proto::v1::AgentInfoReply>, Status> {
        let r = crate::debug::agent_info(&self.intent, request.into_inner()).await;
        r.map(Response::new).map_err(status)
    }

    async fn physical_trace(
        &self,
        request: Request<weft_proto::v1::PhysicalTraceRequest>,
    ) -> Result<Response<weft_proto::v1::PhysicalTraceReply>, Status> {
        let r = crate::debug::physical_trace(&self.intent, request.into_inner()).await;
        r.map(Response::new).map_err(status)
    }

    async fn list_objects(
        &self,
        request: Request<ListObjectsRequest>,
    ) -> Result<Response<ListObjectsReply>, Status> {
        let req = request.into_inner();
        let span = tracing::debug_span!("list_objects", kind = %req.kind);
        async {
            let kind = objects::kind_or_err("kind", &req.kind)?;
            let st = self.intent.read_state().await?;
            let names = if req.names.is_empty() {
                kind.names(&st)
            } else {
                req.names.clone()
            };
            let mut records = Vec::with_capacity(names.len());
            for n in &names {
                let Some(obj) = kind.load(&st, n) else {
                    return Err(objects::plan::not_found(kind, n));
                };
                let columns = kind
                    .columns()
                    .iter()
                    .filter_map(|c| {
                        kind.get_column(&obj, c.name, &st)
                            .map(|v| v.to_column(c.name))
                    })
                    .collect();
                let plan = objects::Plan::new(&st, self.intent.keys());
                records.push(Record {
                    kind: kind.name().to_string(),
                    name: n.clone(),
                    columns,
                    object: Some(kind.with_status(obj, &plan)),
                });
            }
            Ok(Response::new(ListObjectsReply {
                kind: kind.name().to_string(),
                columns: kind.columns().iter().map(|c| c.name.to_string()).collect(),
                records,
                revision: st.revision,
            }))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    async fn create_switch(
        &self,
        request: Request<CreateSwitchRequest>,
    ) -> Result<Response<SwitchReply>, Status> {
        let req = request.into_inner();
        let sw = req.switch.unwrap_or_default();
        let span = tracing::info_span!("create_switch", switch = %sw.name);
        async {
            let opts = req.options.unwrap_or_default();
            let (revision, sw) = self.intent.create_switch(sw, opts.may_exist).await?;
            self.wait(revision, Some(&opts)).await?;
            Ok(Response::new(SwitchReply {
                revision,
                switch: Some(sw),
            }))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    async fn delete_switch(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("delete_switch", switch = %req.name);
        async {
            let opts = req.options.unwrap_or_default();
            let revision = self.intent.delete_switch(&req.name, opts.if_exists).await?;
            self.wait(revision, Some(&opts)).await?;
            Ok(Response::new(WriteReply { revision }))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    async fn get_switch(
        &self,
        request: Request<GetRequest>,
    ) -> Result<Response<LogicalSwitch>, Status> {
        let name = request.into_inner().name;
        let span = tracing::debug_span!("get_switch", switch = %name);
        async {
            validate_name("name", &name)?;
            let st = self.intent.read_state().await?;
            st.switches
                .get(&name)
                .cloned()
                .map(Response::new)
                .ok_or_else(|| ApiError::NotFound(format!("switch {name:?} not found")))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    async fn list_switches(
        &self,
        _request: Request<ListSwitchesRequest>,
    ) -> Result<Response<ListSwitchesReply>, Status> {
        async {
            let st = self.intent.read_state().await?;
            Ok(Response::new(ListSwitchesReply {
                switches: st.switches.values().cloned().collect(),
                revision: st.revision,
            }))
        }
        .instrument(tracing::debug_span!("list_switches"))
        .await
        .map_err(status)
    }

    async fn create_port(
        &self,
        request: Request<CreatePortRequest>,
    ) -> Result<Response<PortReply>, Status> {
        let req = request.into_inner();
        let port = req.port.unwrap_or_default();
        let span =
            tracing::info_span!("create_port", port = %port.name, switch = %port.switch_name);
        let may_exist = req.options.as_ref().is_some_and(|o| o.may_exist);
        let write = self.intent.create_port(port, may_exist);
        self.port_write(span, req.options.as_ref(), write).await
    }

    async fn create_ports(
        &self,
        request: Request<CreatePortsRequest>,
    ) -> Result<Response<CreatePortsReply>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("create_ports", ports = req.ports.len());
        async {
            let opts = req.options.unwrap_or_default();
            let (revision, ports) = self.intent.create_ports(req.ports, opts.may_exist).await?;
            self.wait(revision, Some(&opts)).await?;
            Ok(Response::new(CreatePortsReply { revision, ports }))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    async fn delete_port(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("delete_port", port = %req.name);
        async {
            let opts = req.options.unwrap_or_default();
            let revision = self.intent.delete_port(&req.name, opts.if_exists).await?;
            self.wait(revision, Some(&opts)).await?;
            Ok(Response::new(WriteReply { revision }))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    async fn get_port(
        &self,
        request: Request<GetRequest>,
    ) -> Result<Response<LogicalSwitchPort>, Status> {
        let name = request.into_inner().name;
        let span = tracing::debug_span!("get_port", port = %name);
        async {
            validate_name("name", &name)?;
            let st = self.intent.read_state().await?;
            st.ports
                .get(&name)
                .map(|p| Response::new(st.port_with_status(p)))
                .ok_or_else(|| ApiError::NotFound(format!("port {name:?} not found")))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    async fn list_ports(
        &self,
        request: Request<ListPortsRequest>,
    ) -> Result<Response<ListPortsReply>, Status> {
        let name = request.into_inner().switch_name;
        let span = tracing::debug_span!("list_ports", switch = %name);
        async {
            validate_name("switch_name", &name)?;
            let st = self.intent.read_state().await?;
            if !st.switches.contains_key(&name) {
                return Err(ApiError::NotFound(format!("switch {name:?} not found")));
            }
            Ok(Response::new(ListPortsReply {
                ports: st.ports_of(&name),
                revision: st.revision,
            }))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    async fn set_port_addresses(
        &self,
        request: Request<SetPortAddressesRequest>,
    ) -> Result<Response<PortReply>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("set_port_addresses", port = %req.port);
        let write = self.intent.set_port_addresses(&req.port, &req.addresses);
        self.port_write(span, req.options.as_ref(), write).await
    }

    async fn set_port_security(
        &self,
        request: Request<SetPortSecurityRequest>,
    ) -> Result<Response<PortReply>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("set_port_security", port = %req.port);
        let write = self.intent.set_port_security(&req.port, &req.port_security);
        self.port_write(span, req.options.as_ref(), write).await
    }

    async fn set_port_enabled(
        &self,
        request: Request<SetPortEnabledRequest>,
    ) -> Result<Response<PortReply>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("set_port_enabled", port = %req.port, enabled = req.enabled);
        let write = self.intent.set_port_enabled(&req.port, req.enabled);
        self.port_write(span, req.options.as_ref(), write).await
    }

    async fn list_chassis(
        &self,
        _request: Request<ListChassisRequest>,
    ) -> Result<Response<ListChassisReply>, Status> {
        async {
            let st = self.intent.read_state().await?;
            Ok(Response::new(ListChassisReply {
                chassis: self.intent.acks().chassis_list(&st),
                revision: st.revision,
            }))
        }
        .instrument(tracing::debug_span!("list_chassis"))
        .await
        .map_err(status)
    }

    async fn delete_chassis(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("delete_chassis", chassis = %req.name);
        async {
            let opts = req.options.unwrap_or_default();
            let revision = self
                .intent
                .delete_chassis(&req.name, opts.if_exists)
                .await?;
            self.wait(revision, Some(&opts)).await?;
            Ok(Response::new(WriteReply { revision }))
        }
        .instrument(span)
        .await
        .map_err(status)
    }

    async fn show(&self, _request: Request<ShowRequest>) -> Result<Response<ShowReply>, Status> {
        async {
            let st = self.intent.read_state().await?;
            let switches = st
                .switches
                .values()
                .map(|sw| SwitchDetail {
                    switch: Some(sw.clone()),
                    ports: st.ports_of(&sw.name),
                })
                .collect();
            let chassis: Vec<Chassis> = self.intent.acks().chassis_list(&st);
            Ok(Response::new(ShowReply {
                switches,
                chassis,
                revision: st.revision,
            }))
        }
        .instrument(tracing::debug_span!("show"))
        .await
        .map_err(status)
    }

    async fn sync(&self, request: Request<SyncRequest>) -> Result<Response<WriteReply>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!("sync", revision = req.revision);
        async {
            if req.revision < 0 {
                return Err(ApiError::InvalidArgument(format!(
                    "invalid revision \"{}\": must be 0 (current) or positive",
                    req.revision
                )));
            }
            let current = self.intent.current_revision().await?;
            if req.revision > current {
                return Err(ApiError::InvalidArgument(format!(
                    "invalid revision \"{}\": beyond etcd's current revision {current}",
                    req.revision
                )));
            }
            let revision = if req.revision == 0 {
                current
            } else {
                req.revision
            };
            self.wait(revision, req.options.as_ref()).await?;
            Ok(Response::new(WriteReply { revision }))
        }
        .instrument(span)
        .await
        .map_err(status)
    }
}
