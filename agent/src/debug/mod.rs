//! The agent's debug service, `weft.v1.AgentDebug` (agent.proto), served on
//! `--debug-listen`: installed flows with counters ([`ofstats`]), agent-info, and the
//! physical trace (`ofproto/trace` through OVS's unixctl socket, [`crate::unixctl`], parsed by
//! [`ptrace`]), each flow annotated with the Weft object its cookie names.
//!
//! The event loop publishes what the service needs into a [`DebugHandle`] after each apply
//! (a few maps, copied under a short lock); the service never touches the loop, the agent's
//! OpenFlow channel or the reconciler, and every request has a timeout and a size limit.
//! Start with [`serve`].

pub mod ofstats;
pub mod ptrace;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};
use weft_openflow::{render_flow, render_group};
use weft_proto::v1::agent_debug_server::{AgentDebug, AgentDebugServer};
use weft_proto::v1::{
    AgentFlowsReply, AgentFlowsRequest, AgentInfo, AgentInfoRequest, AgentTraceReply,
    AgentTraceRequest, CookieOwner, InstalledFlow, InstalledGroup, TraceHit, TunnelStart,
};

use crate::pipeline::{Encap, Owner};
use crate::reconcile::Reconciler;

/// Errors of the debug service.
#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error("cannot serve the debug service on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("debug service: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("debug service TLS: {0}")]
    Tls(#[from] weft_proto::tls::TlsError),
}

/// Under TLS only a controller (or an admin) certificate may use the debug service: it
/// shows flows and runs traces on this host.
#[allow(clippy::result_large_err)]
fn debug_caller(req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    use weft_proto::model::identity::{cert_identity, Role};
    if !crate::southbound::transport().is_tls() {
        return Ok(req);
    }
    let certs = req.peer_certs();
    let Some(der) = certs.as_ref().and_then(|c| c.first()) else {
        return Err(tonic::Status::unauthenticated(
            "the agent debug service needs a controller or admin client certificate",
        ));
    };
    match cert_identity(der.as_ref()) {
        Ok(id) if matches!(id.role, Role::Controller | Role::Admin) => Ok(req),
        Ok(id) => Err(tonic::Status::permission_denied(format!(
            "the agent debug service needs role controller or admin; {id} does not have it"
        ))),
        Err(e) => Err(tonic::Status::unauthenticated(format!(
            "client certificate not usable: {e}"
        ))),
    }
}

/// Longest a unixctl or OpenFlow request of the service may take.
const OVS_TIMEOUT: Duration = Duration::from_secs(3);
/// Most flows one Flows reply carries.
const MAX_FLOWS: usize = 10_000;
/// Longest ofproto/trace text passed back.
const MAX_TRACE_TEXT: usize = 64 << 10;

/// What the event loop publishes for the service.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub ready: bool,
    pub applied_revision: i64,
    pub last_error: String,
    pub flows: usize,
    pub groups: usize,
    pub meters: usize,
    /// Logical port → (interface name, ofport) of local VIFs.
    pub ports: BTreeMap<String, (String, u32)>,
    /// Encap → tunnel ofport.
    pub tunnels: BTreeMap<Encap, u32>,
}

/// Cookie → (kind, name) of every owner in the view ([`owners_of`]).
pub type OwnerMap = HashMap<u64, (String, String)>;

/// A request for the current [`OwnerMap`], answered by the event loop (which holds the
/// view): the map is O(deployment) to build, so it is built when a debug call needs it,
/// not after every reconcile.
pub type OwnerRequest = tokio::sync::oneshot::Sender<OwnerMap>;

/// Static facts plus what the loop publishes.
#[derive(Debug)]
struct Inner {
    chassis: String,
    encap_ip: String,
    bridge: String,
    rundir: PathBuf,
    started: Instant,
    state: RwLock<Published>,
    metrics_url: RwLock<String>,
    owner_tx: tokio::sync::mpsc::UnboundedSender<OwnerRequest>,
    owner_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<OwnerRequest>>>,
}

/// Shared between the event loop (writer) and the service (reader).
#[derive(Debug, Clone)]
pub struct DebugHandle(Arc<Inner>);

/// Kind names as ovn-nbctl spells tables.
pub const PORT_KIND: &str = "Logical_Switch_Port";
pub const SWITCH_KIND: &str = "Logical_Switch";
pub const ROUTER_KIND: &str = "Logical_Router";
pub const ROUTER_PORT_KIND: &str = "Logical_Router_Port";
pub const LB_KIND: &str = "Load_Balancer";

/// The cookie → owner map of a reconciler's view (pure).
pub fn owners_of(r: &Reconciler) -> OwnerMap {
    let v = r.view();
    let mut m = HashMap::new();
    m.insert(
        Owner::Static.cookie(),
        ("static".to_string(), String::new()),
    );
    for s in v.switches() {
        m.insert(
            Owner::Switch(s.name.clone()).cookie(),
            (SWITCH_KIND.to_string(), s.name.clone()),
        );
    }
    for p in v.ports() {
        m.insert(
            Owner::Port(p.name.clone()).cookie(),
            (PORT_KIND.to_string(), p.name.clone()),
        );
    }
    for r in v.routers() {
        m.insert(
            Owner::Router(r.name.clone()).cookie(),
            (ROUTER_KIND.to_string(), r.name.clone()),
        );
    }
    for p in v.router_ports() {
        m.insert(
            Owner::RouterPort(p.name.clone()).cookie(),
            (ROUTER_PORT_KIND.to_string(), p.name.clone()),
        );
    }
    for a in v.acl().acls() {
        m.insert(
            Owner::Acl(a.key.clone()).cookie(),
            ("ACL".to_string(), a.key.clone()),
        );
    }
    // An LB's flows are owned per (switch or router, LB): named `LB on SWITCH`.
    for s in v.switches() {
        for lb in &s.load_balancers {
            m.insert(
                crate::pipeline::lb_owner(&s.name, lb).cookie(),
                (LB_KIND.to_string(), format!("{lb} on {}", s.name)),
            );
        }
    }
    for r in v.routers() {
        for lb in &r.load_balancers {
            m.insert(
                crate::pipeline::router_lb_owner(&r.name, lb).cookie(),
                (LB_KIND.to_string(), format!("{lb} on {}", r.name)),
            );
        }
    }
    m
}

impl DebugHandle {
    pub fn new(chassis: &str, encap_ip: &str, bridge: &str, rundir: PathBuf) -> Self {
        let (owner_tx, owner_rx) = tokio::sync::mpsc::unbounded_channel();
        DebugHandle(Arc::new(Inner {
            owner_tx,
            owner_rx: Mutex::new(Some(owner_rx)),
            chassis: chassis.into(),
            encap_ip: encap_ip.into(),
            bridge: bridge.into(),
            rundir,
            started: Instant::now(),
            state: RwLock::new(Published::default()),
            metrics_url: RwLock::new(String::new()),
        }))
    }

    /// Where the agent's `/metrics` is served (reported by Info).
    pub fn set_metrics_url(&self, url: String) {
        if let Ok(mut g) = self.0.metrics_url.write() {
            *g = url;
        }
    }

    /// Publishes the reconciler's state after an apply (`ready`: the switch holds a view).
    pub fn publish(&self, r: &Reconciler, ready: bool) {
        let (flows, groups, meters) = r
            .desired()
            .map(|d| (d.flow_count(), d.group_count(), d.meter_count()))
            .unwrap_or_default();
        let status = r.applied_state();
        if let Ok(mut s) = self.0.state.write() {
            s.ready |= ready;
            s.flows = flows;
            s.groups = groups;
            s.meters = meters;
            if let Some((applied, error)) = status {
                s.applied_revision = applied;
                s.last_error = error.to_string();
            }
            s.tunnels = r.tunnels().clone();
        }
    }

    /// Publishes the local VIFs (logical port → interface name, ofport).
    pub fn publish_vifs(&self, ports: BTreeMap<String, (String, u32)>) {
        if let Ok(mut s) = self.0.state.write() {
            s.ports = ports;
        }
    }

    /// The requests for the owner map, for the event loop to answer (once: later calls get
    /// `None`).
    pub fn owner_requests(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<OwnerRequest>> {
        self.0.owner_rx.lock().ok()?.take()
    }

    /// The current owner map from the event loop; empty when the loop does not answer
    /// within [`OVS_TIMEOUT`] (the flows are then shown without owners).
    async fn owners(&self) -> OwnerMap {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.0.owner_tx.send(tx).is_err() {
            return OwnerMap::new();
        }
        match tokio::time::timeout(OVS_TIMEOUT, rx).await {
            Ok(Ok(m)) => m,
            _ => OwnerMap::new(),
        }
    }

    fn snapshot(&self) -> Published {
        self.0.state.read().map(|s| s.clone()).unwrap_or_default()
    }

    fn mgmt(&self) -> PathBuf {
        self.0.rundir.join(format!("{}.mgmt", self.0.bridge))
    }
}

fn owner(owners: &OwnerMap, cookie: u64) -> CookieOwner {
    match owners.get(&cookie) {
        Some((k, n)) => CookieOwner {
            kind: k.clone(),
            name: n.clone(),
        },
        None => CookieOwner::default(),
    }
}

/// The service.
pub struct Service {
    h: DebugHandle,
}

fn unavailable(e: impl std::fmt::Display) -> Status {
    Status::unavailable(e.to_string())
}

impl Service {
    async fn unixctl(&self, method: &str, params: &[&str]) -> Result<String, Status> {
        let sock = crate::unixctl::vswitchd_socket(&self.h.0.rundir).map_err(unavailable)?;
        crate::unixctl::call(&sock, method, params, OVS_TIMEOUT)
            .await
            .map_err(|e| match e {
                crate::unixctl::UnixctlError::Command { .. } => {
                    Status::invalid_argument(e.to_string())
                }
                e => unavailable(e),
            })
    }
}

#[tonic::async_trait]
impl AgentDebug for Service {
    async fn flows(
        &self,
        request: Request<AgentFlowsRequest>,
    ) -> Result<Response<AgentFlowsReply>, Status> {
        let req = request.into_inner();
        let limit = match req.limit {
            0 => MAX_FLOWS,
            n => (n as usize).min(MAX_FLOWS),
        };
        let (flows, truncated) = ofstats::dump(&self.h.mgmt(), req.cookie, limit, OVS_TIMEOUT)
            .await
            .map_err(unavailable)?;
        let owners = self.h.owners().await;
        let mut flows: Vec<InstalledFlow> = flows
            .into_iter()
            .map(|(f, c)| InstalledFlow {
                table: u32::from(f.table),
                priority: u32::from(f.priority),
                cookie: f.cookie,
                owner: Some(owner(&owners, f.cookie)),
                text: render_flow(&f),
                packets: c.packets,
                bytes: c.bytes,
                duration_sec: c.duration_sec,
            })
            .collect();
        flows.sort_by(|a, b| {
            (a.table, std::cmp::Reverse(a.priority), &a.text).cmp(&(
                b.table,
                std::cmp::Reverse(b.priority),
                &b.text,
            ))
        });
        // Groups carry no cookie: listed only when every flow is asked for.
        let groups = if req.cookie == 0 {
            ofstats::dump_groups(&self.h.mgmt(), OVS_TIMEOUT)
                .await
                .map_err(unavailable)?
                .iter()
                .map(|g| InstalledGroup {
                    id: g.id,
                    text: render_group(g),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Response::new(AgentFlowsReply {
            chassis: self.h.0.chassis.clone(),
            flows,
            groups,
            truncated,
        }))
    }

    async fn info(&self, _: Request<AgentInfoRequest>) -> Result<Response<AgentInfo>, Status> {
        let p = self.h.snapshot();
        let mut info = AgentInfo {
            chassis: self.h.0.chassis.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_sec: self.h.0.started.elapsed().as_secs(),
            flows: p.flows as u32,
            groups: p.groups as u32,
            meters: p.meters as u32,
            applied_revision: p.applied_revision,
            last_error: p.last_error.clone(),
            ready: p.ready,
            encap_ip: self.h.0.encap_ip.clone(),
            metrics_url: self
                .h
                .0
                .metrics_url
                .read()
                .map(|u| u.clone())
                .unwrap_or_default(),
            local_ports: p
                .ports
                .iter()
                .map(|(lp, (_, ofport))| format!("{lp}={ofport}"))
                .collect(),
            ..Default::default()
        };
        let mut errors = Vec::new();
        match self.unixctl("version", &[]).await {
            Ok(v) => info.ovs_version = v.lines().next().unwrap_or("").trim().to_string(),
            Err(e) => errors.push(e.message().to_string()),
        }
        match self
            .unixctl("dpif/show-dp-features", &[&self.h.0.bridge])
            .await
        {
            Ok(v) => {
                info.dp_features = v
                    .lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect()
            }
            Err(e) => errors.push(e.message().to_string()),
        }
        info.ovs_error = errors.join("; ");
        Ok(Response::new(info))
    }

    async fn physical_trace(
        &self,
        request: Request<AgentTraceRequest>,
    ) -> Result<Response<AgentTraceReply>, Status> {
        let req = request.into_inner();
        let p = self.h.snapshot();
        let m = if req.microflow.trim().is_empty() {
            Default::default()
        } else {
            weft_proto::model::expr::parse_microflow(&req.microflow).map_err(|e| {
                Status::invalid_argument(format!("invalid microflow {:?}: {e}", req.microflow))
            })?
        };
        let start = match (&req.tunnel, req.inport.as_str()) {
            (Some(t), _) => {
                let encap: Encap = t.encap.parse().map_err(|_| {
                    Status::invalid_argument(format!("invalid tunnel.encap {:?}", t.encap))
                })?;
                let Some(ofport) = p.tunnels.get(&encap) else {
                    return Err(Status::failed_precondition(format!(
                        "chassis {} has no {} tunnel port",
                        self.h.0.chassis, t.encap
                    )));
                };
                let mut s = format!("in_port={ofport},tun_id={:#x}", t.tun_id);
                for (k, v) in [("tun_src", &t.tun_src), ("tun_dst", &t.tun_dst)] {
                    if !v.is_empty() {
                        let ip: std::net::Ipv4Addr = v.parse().map_err(|_| {
                            Status::invalid_argument(format!("invalid tunnel.{k} {v:?}"))
                        })?;
                        s.push_str(&format!(",{k}={ip}"));
                    }
                }
                if t.tun_metadata0 != 0 {
                    s.push_str(&format!(",tun_metadata0={:#x}", t.tun_metadata0));
                }
                s
            }
            (None, "") => {
                return Err(Status::invalid_argument(
                    "invalid request: neither inport nor tunnel given",
                ))
            }
            (None, port) => match p.ports.get(port) {
                Some((_, ofport)) => format!("in_port={ofport}"),
                None => {
                    return Err(Status::not_found(format!(
                        "port {port:?} has no VIF on chassis {} (inport)",
                        self.h.0.chassis
                    )))
                }
            },
        };
        let flow =
            ptrace::ovs_flow(&start, &m).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let text = self
            .unixctl("ofproto/trace", &[&self.h.0.bridge, &flow])
            .await?;
        let mut tunnel_ports: Vec<String> = Vec::new();
        let mut tunnel_encap: BTreeMap<String, Encap> = BTreeMap::new();
        for (e, ofport) in &p.tunnels {
            for n in [ofport.to_string(), format!("weft-{}", e.as_str())] {
                tunnel_ports.push(n.clone());
                tunnel_encap.insert(n, *e);
            }
        }
        let parsed = ptrace::parse_trace(&text, &self.h.0.bridge, &tunnel_ports);
        let mut port_names = BTreeMap::new();
        for (lp, (ifname, ofport)) in &p.ports {
            port_names.insert(ofport.to_string(), lp.clone());
            port_names.insert(ifname.clone(), lp.clone());
        }
        let delivered = ptrace::delivered(&parsed.outputs, &port_names);
        let outcome = ptrace::outcome(delivered.len(), parsed.tunnels.len(), parsed.controller);
        let owners = self.h.owners().await;
        let hits = parsed
            .hits
            .iter()
            .map(|h| TraceHit {
                table: h.table,
                priority: h.priority,
                cookie: h.cookie,
                owner: Some(owner(&owners, h.cookie)),
                r#match: h.matches.clone(),
                actions: h.actions.clone(),
            })
            .collect();
        let tunnels = parsed
            .tunnels
            .iter()
            .map(|t| TunnelStart {
                encap: tunnel_encap
                    .get(&t.port)
                    .map(|e| e.as_str().to_string())
                    .unwrap_or_default(),
                tun_id: t.tun_id,
                tun_src: self.h.0.encap_ip.clone(),
                tun_dst: t.tun_dst.clone(),
                tun_metadata0: t.tun_metadata0,
            })
            .collect();
        let truncated = text.len() > MAX_TRACE_TEXT;
        let mut output = text;
        if truncated {
            let mut cut = MAX_TRACE_TEXT;
            while !output.is_char_boundary(cut) {
                cut -= 1;
            }
            output.truncate(cut);
        }
        Ok(Response::new(AgentTraceReply {
            chassis: self.h.0.chassis.clone(),
            flow,
            hits,
            datapath_actions: parsed.datapath_actions,
            outcome,
            delivered_ports: delivered,
            tunnels,
            output,
            truncated,
        }))
    }
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, DebugError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DebugError::Bind { addr, source })
}

/// Serves `weft.v1.AgentDebug` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    h: DebugHandle,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DebugError> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    // Reflection, so grpcurl works against an agent without the .proto files.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(weft_proto::FILE_DESCRIPTOR_SET)
        .build_v1();
    let mut server = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(10))
        .concurrency_limit_per_connection(4);
    if let weft_proto::tls::Transport::Tls(f) = crate::southbound::transport() {
        server = server.tls_config(f.server_config()?)?;
    }
    let router = server.add_service(tonic::service::interceptor::InterceptedService::new(
        AgentDebugServer::new(Service { h }).max_decoding_message_size(64 << 10),
        debug_caller,
    ));
    let router = match reflection {
        Ok(r) => router.add_service(r),
        Err(e) => {
            tracing::warn!(error = %e, "debug service without gRPC reflection");
            router
        }
    };
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cookies_map_to_objects() {
        let p: OwnerMap = [(
            Owner::Port("p1".into()).cookie(),
            (PORT_KIND.to_string(), "p1".to_string()),
        )]
        .into_iter()
        .collect();
        let o = owner(&p, Owner::Port("p1".into()).cookie());
        assert_eq!((o.kind.as_str(), o.name.as_str()), (PORT_KIND, "p1"));
        assert_eq!(owner(&p, 42).kind, "");
    }

    #[test]
    fn switch_and_router_lb_cookies_name_the_lb_and_where_it_applies() {
        use weft_proto::model::view::ViewDelta;
        use weft_proto::v1::{LoadBalancerView, RouterView, SwitchView};
        let lb = |name: &str| LoadBalancerView {
            name: name.into(),
            protocol: "tcp".into(),
            vips: [("10.96.0.10:80".to_string(), "10.0.0.5:8080".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let mut r = Reconciler::new("h1", BTreeMap::new(), crate::ids::Ids::default());
        r.on_update(&ViewDelta {
            revision: 1,
            snapshot: true,
            switches: vec![SwitchView {
                name: "sw".into(),
                tunnel_key: 1,
                vni: 1,
                load_balancer: vec!["web".into()],
                ..Default::default()
            }],
            routers: vec![RouterView {
                name: "lr".into(),
                tunnel_key: 2,
                enabled: true,
                load_balancer: vec!["pm".into()],
                ..Default::default()
            }],
            load_balancers: vec![lb("web"), lb("pm")],
            ..Default::default()
        })
        .unwrap();
        let m = owners_of(&r);
        assert_eq!(
            m.get(&crate::pipeline::lb_owner("sw", "web").cookie()),
            Some(&(LB_KIND.to_string(), "web on sw".to_string()))
        );
        assert_eq!(
            m.get(&crate::pipeline::router_lb_owner("lr", "pm").cookie()),
            Some(&(LB_KIND.to_string(), "pm on lr".to_string()))
        );
    }
}
