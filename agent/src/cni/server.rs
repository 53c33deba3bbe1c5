//! The agent's CNI server: a unix socket on which `weft-cni` sends one JSON
//! [`Request`] per connection and reads one JSON [`Reply`] back.
//!
//! - **ADD**: logical port on the controller (created with a `dynamic` address, or the
//!   static one the runtime asked for, unless it exists on the same switch), veth pair, container side addressed with the port's
//!   MAC/IP, MTU and a default route via the switch gateway (first host of its subnet), tx
//!   offload off on both ends for the netdev datapath, host end on the bridge with
//!   `external_ids:iface-id`. Any failure undoes what this ADD did.
//! - **DEL**: idempotent; removes the logical port only if ADD created it, then the OVS port
//!   and the veth, each only if marked as ours.
//! - **CHECK**: verifies all of the above is still in place.
//! - **STATUS**: the agent's readiness; **GC**: removes this network's attachments the
//!   runtime no longer lists.
//!
//! ADD returns only when the port is up on this chassis and every live chassis has applied
//! the revision with its binding (`--wait=hv`), so the pod's first packet is not lost; past
//! `ready_timeout` it fails and undoes. A repeated ADD for the same container and interface
//! returns the same port and address. Requests for the same container (or the same logical
//! port) run one after the other; all others run concurrently.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;
use tracing::{info, warn};
use weft_ovsdb::DatapathType;

use super::address::{self, AddressRequest, Source};
use super::spec::{self, Attachment, CniError, Command, ErrorReply, Reply, Request};
use crate::plug::link::{self, ContainerSide};
use crate::plug::ovs::{self, CNI_KEY, IFNAME_KEY, LPORT_CREATED, LPORT_KEY, NETWORK_KEY};
use crate::plug::{Controller, Plumber};
use weft_proto::v1::LogicalSwitchPort;

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum CniServerError {
    #[error("cannot listen on CNI socket {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI socket path {path} exists and is not a socket")]
    NotASocket { path: PathBuf },
}

/// What the CNI server needs.
#[derive(Debug, Clone)]
pub struct CniServerConfig {
    /// The unix socket to serve on (its directory is created).
    pub socket: PathBuf,
    /// Controller endpoints (northbound), tried in order.
    pub controllers: Vec<String>,
    /// OVSDB of the local Open vSwitch (`unix:PATH` / `tcp:IP:PORT`).
    pub ovsdb: String,
    /// The integration bridge.
    pub bridge: String,
    /// Netdev: turn tx checksum offload off on both veth ends.
    pub datapath: DatapathType,
    /// Pod MTU when neither the network config nor the switch sets one.
    pub default_mtu: u32,
    /// Path of the network namespace ovs-vswitchd runs in, where host veth ends are created;
    /// None: the agent's own (the usual case: both run in the host's namespace).
    pub host_netns: Option<String>,
    /// Upper bound for handling one request.
    pub request_timeout: Duration,
    /// This host's chassis name: a port bound to it is not "in use elsewhere", and ADD waits
    /// for the port to be up here. None: every live binding counts as another host's, and
    /// up on any chassis will do.
    pub chassis: Option<String>,
    /// How long ADD waits, after plumbing, for the port to be up here and for every live
    /// chassis to have installed its flows (`--wait=hv`); past it ADD fails and undoes.
    pub ready_timeout: Duration,
    /// The agent's readiness (what `/readyz` serves), for STATUS; None: always ready.
    pub readiness: Option<ReadyHandle>,
}

/// The agent's readiness as the CNI server sees it.
#[derive(Clone)]
pub struct ReadyHandle(pub weft_obs::Readiness);

impl std::fmt::Debug for ReadyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadyHandle({})", self.0.is_ready())
    }
}

/// What an earlier ADD of the same container and interface left (read from its OVS row).
struct Prior {
    port: String,
    created: bool,
}

/// The addresses a new port is created with: the requested IP with the requested MAC (or
/// one derived from the IP), else `dynamic` (a requested MAC alone is set once the
/// controller allocated the IP).
fn initial_addresses(r: &AddressRequest) -> Vec<String> {
    match (&r.ip, &r.mac) {
        (Some(ip), Some(mac)) => vec![format!("{} {}", mac.value, ip.value)],
        (Some(ip), None) => vec![format!(
            "{} {}",
            address::mac_for_requested_ip(ip.value),
            ip.value
        )],
        _ => vec!["dynamic".into()],
    }
}

/// Where the request's static address came from, for messages.
fn requested_where(req: &Request) -> String {
    let from = |s: Source, key: &str| match s {
        Source::CniArgs => format!("CNI_ARGS {key}="),
        Source::RuntimeConfig => {
            format!("runtimeConfig.{}", if key == "IP" { "ips" } else { "mac" })
        }
    };
    let mut parts = Vec::new();
    if let Some(ip) = &req.address.ip {
        parts.push(format!("{}{}", from(ip.from, "IP"), ip.value));
    }
    if let Some(m) = &req.address.mac {
        parts.push(format!("{}{}", from(m.from, "MAC"), m.value));
    }
    parts.join(", ")
}

/// A controller refusal of a static address (another port took it between our check and the
/// write) as code 104.
fn requested_conflict(req: &Request, e: impl Into<CniError>) -> CniError {
    let static_asked = req.address.ip.is_some() || req.address.mac.is_some();
    match e.into() {
        CniError::Controller(m)
            if static_asked
                && (m.contains("AlreadyExists")
                    || m.contains("in use")
                    || m.contains("already")) =>
        {
            CniError::AddressInUse(format!(
                "{} refused by the controller: {m}",
                requested_where(req)
            ))
        }
        other => other,
    }
}

impl CniServerConfig {
    /// The server for the agent configured as `agent`, listening on `socket`.
    pub fn from_agent(socket: PathBuf, agent: &crate::AgentConfig) -> CniServerConfig {
        CniServerConfig {
            socket,
            controllers: agent.controllers.clone(),
            ovsdb: agent.ovsdb.clone(),
            bridge: agent.bridge.clone(),
            datapath: agent.datapath.parse().unwrap_or(DatapathType::System),
            chassis: Some(agent.chassis.clone()),
            ready_timeout: agent.cni_ready_timeout,
            ..CniServerConfig::defaults()
        }
    }

    /// Defaults for everything but where to listen and what to talk to.
    pub fn defaults() -> CniServerConfig {
        CniServerConfig {
            socket: PathBuf::from(spec::DEFAULT_AGENT_SOCKET),
            controllers: vec!["http://127.0.0.1:7600".into()],
            ovsdb: "unix:/var/run/openvswitch/db.sock".into(),
            bridge: "br-int".into(),
            datapath: DatapathType::System,
            default_mtu: 1400,
            host_netns: None,
            request_timeout: Duration::from_secs(90),
            chassis: None,
            ready_timeout: Duration::from_secs(30),
            readiness: None,
        }
    }
}

/// Serves CNI requests on `cfg.socket` until `shutdown` completes; removes the socket then.
pub async fn serve(
    cfg: CniServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CniServerError> {
    let path = cfg.socket.clone();
    let listener = bind(&path)?;
    info!(socket = %path.display(), "CNI server listening");
    let handler = Arc::new(Handler::new(cfg));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let h = handler.clone();
                    tokio::spawn(async move { h.connection(stream).await });
                }
                Err(e) => {
                    warn!(error = %e, "CNI accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    info!(socket = %path.display(), "CNI server stopped");
    Ok(())
}

fn bind(path: &Path) -> Result<UnixListener, CniServerError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let bind_err = |source| CniServerError::Bind {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(bind_err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path).map_err(bind_err)?,
        Ok(_) => {
            return Err(CniServerError::NotASocket {
                path: path.to_path_buf(),
            })
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok(l)
}

/// Per-key locks: requests for the same container (and for the same logical port) run one
/// after the other, all others concurrently.
#[derive(Default)]
struct Locks(std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>);

impl Locks {
    async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let m = {
            let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
            g.entry(key.to_string()).or_default().clone()
        };
        let guard = m.clone().lock_owned().await;
        KeyGuard {
            locks: self,
            key: key.to_string(),
            _guard: Some(guard),
            m,
        }
    }
}

struct KeyGuard<'a> {
    locks: &'a Locks,
    key: String,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    m: Arc<Mutex<()>>,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self._guard = None;
        let mut g = self.locks.0.lock().unwrap_or_else(|p| p.into_inner());
        // Ours, the map's, and nobody waiting: forget the key.
        if Arc::strong_count(&self.m) == 2 {
            g.remove(&self.key);
        }
    }
}

struct Handler {
    cfg: CniServerConfig,
    plug: Plumber,
    locks: Locks,
}

impl CniServerConfig {
    /// The shared plumbing steps configured as this server is.
    pub fn plumber(&self) -> Plumber {
        Plumber {
            controller: Controller::new(self.controllers.clone(), self.request_timeout),
            ovsdb: self.ovsdb.clone(),
            bridge: self.bridge.clone(),
            datapath: self.datapath,
            host_netns: self.host_netns.clone(),
            chassis: self.chassis.clone(),
            ready_timeout: self.ready_timeout,
        }
    }
}

impl Handler {
    fn new(cfg: CniServerConfig) -> Handler {
        Handler {
            plug: cfg.plumber(),
            cfg,
            locks: Locks::default(),
        }
    }

    fn host_ns(&self) -> Option<&str> {
        self.cfg.host_netns.as_deref()
    }

    async fn connection(&self, mut stream: UnixStream) {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            (&mut stream)
                .take(spec::MAX_MESSAGE_BYTES as u64 + 1)
                .read_to_end(&mut buf),
        )
        .await;
        let reply = match read {
            Err(_) => Reply::Error(ErrorReply::from(&CniError::Decode(
                "request not received within 10 s".into(),
            ))),
            Ok(Err(e)) => Reply::Error(ErrorReply::from(&CniError::Decode(e.to_string()))),
            Ok(Ok(_)) if buf.len() > spec::MAX_MESSAGE_BYTES => Reply::Error(ErrorReply::from(
                &CniError::Decode("request too large".into()),
            )),
            Ok(Ok(_)) => match serde_json::from_slice::<Request>(&buf) {
                Err(e) => Reply::Error(ErrorReply::from(&CniError::Decode(format!(
                    "bad request: {e}"
                )))),
                Ok(req) => {
                    let _g = if req.command.is_network_wide() {
                        None
                    } else {
                        Some(self.locks.lock(&format!("c/{}", req.container_id)).await)
                    };
                    match tokio::time::timeout(self.cfg.request_timeout, self.handle(&req)).await {
                        Ok(Ok(a)) => Reply::Ok(a),
                        Ok(Err(e)) => {
                            warn!(command = %req.command, container = %req.container_id, error = %e, "CNI request failed");
                            Reply::Error(ErrorReply::from(&e))
                        }
                        Err(_) => Reply::Error(ErrorReply::from(&CniError::Datapath(format!(
                            "{} did not finish within {:?}",
                            req.command, self.cfg.request_timeout
                        )))),
                    }
                }
            },
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{}".to_vec());
        out.push(b'\n');
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    }

    async fn handle(&self, req: &Request) -> Result<Option<Attachment>, CniError> {
        let started = std::time::Instant::now();
        let r = self.handle_inner(req).await;
        crate::metrics::cni(&req.command.to_string(), started, r.is_ok());
        r
    }

    async fn handle_inner(&self, req: &Request) -> Result<Option<Attachment>, CniError> {
        req.validate()?;
        match req.command {
            Command::Add => self.add(req).await.map(Some),
            Command::Del => self.del(req).await.map(|()| None),
            Command::Check => self.check(req).await.map(Some),
            Command::Status => self.status().map(|()| None),
            Command::Gc => self.gc(req).await.map(|()| None),
            Command::Version => Ok(None),
        }
    }

    /// STATUS: ready once the agent applied its first view snapshot to OVS (what `/readyz`
    /// says); without a readiness handle (the library server alone), always ready.
    fn status(&self) -> Result<(), CniError> {
        match &self.cfg.readiness {
            Some(r) if !r.0.is_ready() => Err(CniError::NotReady(r.0.reason())),
            _ => Ok(()),
        }
    }

    /// GC: deletes every attachment of network `req.network` on this host (OVS interface
    /// marked by weft-cni) that is not in `req.valid_attachments`, as DEL would.
    async fn gc(&self, req: &Request) -> Result<(), CniError> {
        let keep: HashSet<String> = req
            .valid_attachments
            .iter()
            .map(|a| spec::host_ifname(&a.container_id, &a.ifname))
            .collect();
        let client = ovs::connect(&self.cfg.ovsdb).await?;
        let ours = ovs::cni_vifs(&client).await?;
        let mut removed = 0;
        let mut errors = Vec::new();
        for (name, ids) in ours {
            let network_matches = ids.get(NETWORK_KEY).is_none_or(|n| n == &req.network);
            if keep.contains(&name) || !network_matches {
                continue;
            }
            let Some(container) = ids.get(CNI_KEY).cloned() else {
                continue;
            };
            let _g = self.locks.lock(&format!("c/{container}")).await;
            match self.del_host(&name, &container).await {
                Ok(()) => {
                    removed += 1;
                    info!(container = %container, host_ifname = %name, "CNI GC removed a stale attachment");
                }
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        info!(network = %req.network, kept = keep.len(), removed, "CNI GC done");
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CniError::Datapath(format!(
                "GC could not remove {}",
                errors.join("; ")
            )))
        }
    }

    async fn add(&self, req: &Request) -> Result<Attachment, CniError> {
        let netns = crate::plug::netns::resolve(req.netns.as_deref().unwrap_or_default());
        let port = spec::port_name(&req.container_id, &req.args)?;
        let host = spec::host_ifname(&req.container_id, &req.ifname);
        let _port_lock = self.locks.lock(&format!("p/{port}")).await;
        // Every check before anything changes: the namespace, the port, the switch, the
        // requested address.
        crate::plug::netns::check_path(&netns, self.host_ns()).await?;
        self.check_port_free(req, &port, &host).await?;
        let ls = self.plug.controller.get_switch(&req.switch).await?;
        let Some((_, prefix_len)) = spec::parse_cidr(&ls.subnet) else {
            return Err(CniError::Controller(format!(
                "logical switch {:?} has no IPv4 subnet ({:?}); pods need one for dynamic addresses",
                req.switch, ls.subnet
            )));
        };
        if let Some(ip) = &req.address.ip {
            address::check_in_subnet(ip, &ls.subnet, &req.switch)?;
        }
        let gateway = self.plug.gateway(&ls).await?;
        // A second ADD for the same container and interface: the same port and address. If
        // everything is still in place it is returned as is; otherwise the local plumbing is
        // redone on the same logical port.
        let prior = self.prior_attachment(req, &host).await?;
        if let Some(p) = &prior {
            if p.port == port {
                if let Ok(a) = self.check(req).await {
                    if self.address_matches(req, &a) {
                        self.plug.wait_ready(&port).await?;
                        info!(container = %req.container_id, port = %port, ip = %a.ip, "CNI ADD repeated: attachment unchanged");
                        return Ok(a);
                    }
                }
            }
        }
        let prior_created = prior.as_ref().is_some_and(|p| p.created && p.port == port);
        self.teardown_local(req, &host, prior.as_ref().is_some_and(|p| p.port != port))
            .await?;
        let existing = self.plug.controller.get_port(&port).await?;
        let (lport, created_now) = match &existing {
            Some(p) => {
                if p.switch_name != req.switch {
                    return Err(CniError::Controller(format!(
                        "logical port {port:?} already exists on switch {:?}, not {:?}",
                        p.switch_name, req.switch
                    )));
                }
                (p.clone(), false)
            }
            None => {
                self.check_address_free(req, &port).await?;
                let addresses = initial_addresses(&req.address);
                self.plug
                    .controller
                    .ensure_port(&port, &req.switch, addresses)
                    .await
                    .map_err(|e| requested_conflict(req, e))?
            }
        };
        let created = created_now || prior_created;
        let result = async {
            let lport = self.settle_address(req, &port, lport, created_now).await?;
            let a = self
                .plumb(
                    req, &netns, &port, &host, &lport, created, prefix_len, gateway, &ls,
                )
                .await?;
            self.plug.wait_ready(&port).await?;
            Ok::<_, CniError>(a)
        }
        .await;
        match result {
            Ok(a) => {
                info!(container = %req.container_id, port = %port, ip = %a.ip, mac = %a.mac, host_ifname = %host, created, "CNI ADD done: flows installed on every live chassis");
                Ok(a)
            }
            Err(e) => {
                if let Err(de) = self.plug.undo(&host, &port, created).await {
                    warn!(port = %port, error = %de, "could not undo everything after a failed ADD");
                }
                Err(e)
            }
        }
    }

    /// Whether an existing attachment has what this ADD asks for.
    fn address_matches(&self, req: &Request, a: &Attachment) -> bool {
        req.address.ip.as_ref().is_none_or(|ip| ip.value == a.ip)
            && req
                .address
                .mac
                .as_ref()
                .is_none_or(|m| m.value.eq_ignore_ascii_case(&a.mac))
    }

    /// Refuses a requested IP or MAC another port of the switch holds (code 104, naming it).
    async fn check_address_free(&self, req: &Request, port: &str) -> Result<(), CniError> {
        let ip = req.address.ip.as_ref().map(|i| i.value);
        let mac = req.address.mac.as_ref().map(|m| m.value.as_str());
        if ip.is_none() && mac.is_none() {
            return Ok(());
        }
        let ports = self.plug.controller.port_addresses(&req.switch).await?;
        if let Some((holder, what)) = address::holder(&ports, port, ip, mac) {
            return Err(CniError::AddressInUse(format!(
                "{what} (asked for in {}) is taken by logical port {holder:?} on switch {:?}",
                requested_where(req),
                req.switch
            )));
        }
        Ok(())
    }

    /// Makes the port's address what was asked for: a MAC without an IP is set once the
    /// controller allocated the IP; an existing port must already have the requested values.
    async fn settle_address(
        &self,
        req: &Request,
        port: &str,
        lport: LogicalSwitchPort,
        created_now: bool,
    ) -> Result<LogicalSwitchPort, CniError> {
        let have = spec::port_address(&lport.dynamic_addresses, &lport.addresses);
        let want_ip = req.address.ip.as_ref().map(|i| i.value);
        let want_mac = req.address.mac.as_ref().map(|m| m.value.clone());
        match (&have, created_now) {
            (Some((mac, ip)), true)
                if want_ip.is_none() && want_mac.as_deref().is_some_and(|m| m != mac) =>
            {
                let entry = format!("{} {ip}", want_mac.unwrap_or_default());
                self.plug
                    .controller
                    .set_port_addresses(port, vec![entry])
                    .await
                    .map_err(|e| requested_conflict(req, e))
            }
            (Some((mac, ip)), _) => {
                let ip_ok = want_ip.is_none_or(|w| w == *ip);
                let mac_ok = want_mac.as_deref().is_none_or(|w| w == mac);
                if ip_ok && mac_ok {
                    Ok(lport)
                } else {
                    Err(CniError::AddressInUse(format!(
                        "logical port {port:?} already exists with {mac} {ip}, not the address asked for in {}",
                        requested_where(req)
                    )))
                }
            }
            (None, _) => Ok(lport),
        }
    }

    /// The attachment an earlier ADD of this container and interface left on this host.
    async fn prior_attachment(&self, req: &Request, host: &str) -> Result<Option<Prior>, CniError> {
        let client = ovs::connect(&self.cfg.ovsdb).await?;
        Ok(ovs::vif_ids(&client, host).await?.and_then(|ids| {
            (ids.get(CNI_KEY) == Some(&req.container_id)).then(|| Prior {
                port: ids.get("iface-id").cloned().unwrap_or_default(),
                created: ids.get(LPORT_KEY).map(String::as_str) == Some(LPORT_CREATED),
            })
        }))
    }

    /// Removes this container's OVS row and veth (not the logical port unless
    /// `delete_port`: the earlier ADD used another port name).
    async fn teardown_local(
        &self,
        req: &Request,
        host: &str,
        delete_port: bool,
    ) -> Result<(), CniError> {
        if delete_port {
            return self.del_host(host, &req.container_id).await;
        }
        let client = ovs::connect(&self.cfg.ovsdb).await?;
        if let Some(ids) = ovs::vif_ids(&client, host).await? {
            if ids.get(CNI_KEY) != Some(&req.container_id) {
                return Err(CniError::Datapath(format!(
                    "OVS interface {host:?} is not marked as belonging to container {:?}; left alone",
                    req.container_id
                )));
            }
            ovs::del_vif(&client, host).await?;
        }
        Ok(link::delete_link(self.host_ns(), host).await?)
    }
    /// Refuses a port already bound to another live VIF: an OVS interface of this host with
    /// its iface-id (other than this container's leftover), or a binding to another chassis
    /// that is alive.
    async fn check_port_free(&self, req: &Request, port: &str, host: &str) -> Result<(), CniError> {
        let client = ovs::connect(&self.cfg.ovsdb).await?;
        let local = ovs::vifs_with_iface_id(&client, port).await?;
        let bound = self
            .plug
            .controller
            .get_port(port)
            .await?
            .map(|p| p.chassis)
            .filter(|c| !c.is_empty());
        let binding = match &bound {
            Some(c) if Some(c.as_str()) != self.cfg.chassis.as_deref() => {
                Some((c.as_str(), self.plug.controller.chassis_alive(c).await?))
            }
            Some(c) => Some((c.as_str(), true)),
            None => None,
        };
        spec::check_port_free(
            port,
            req.args.contains_key(spec::PORT_ARG),
            &req.container_id,
            host,
            &local,
            binding,
            self.cfg.chassis.as_deref(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    async fn plumb(
        &self,
        req: &Request,
        netns: &str,
        port: &str,
        host: &str,
        lport: &weft_proto::v1::LogicalSwitchPort,
        created: bool,
        prefix_len: u8,
        gateway: Option<std::net::Ipv4Addr>,
        ls: &weft_proto::v1::LogicalSwitch,
    ) -> Result<Attachment, CniError> {
        let Some((mac, ip)) = spec::port_address(&lport.dynamic_addresses, &lport.addresses) else {
            return Err(CniError::Controller(format!(
                "logical port {port:?} has no MAC and IPv4 address (addresses {:?})",
                lport.addresses
            )));
        };
        let mtu = req
            .mtu
            .or((ls.mtu != 0).then_some(ls.mtu))
            .unwrap_or(self.cfg.default_mtu);
        let temp = spec::temp_ifname(&req.container_id, &req.ifname);
        let mut ids = BTreeMap::new();
        ids.insert("iface-id".to_string(), port.to_string());
        ids.insert("attached-mac".to_string(), mac.clone());
        ids.insert(CNI_KEY.to_string(), req.container_id.clone());
        ids.insert(NETWORK_KEY.to_string(), req.network.clone());
        ids.insert(IFNAME_KEY.to_string(), req.ifname.clone());
        if created {
            ids.insert(LPORT_KEY.to_string(), LPORT_CREATED.to_string());
        }
        self.plug
            .attach_into_netns(
                host,
                &ContainerSide {
                    netns,
                    temp_ifname: &temp,
                    ifname: &req.ifname,
                    mac: &mac,
                    ip,
                    prefix_len,
                    gateway,
                    mtu,
                    tx_offload_off: self.plug.tx_offload_off(),
                },
                &ids,
            )
            .await?;
        let host_mac = link::link_info(self.host_ns(), host)
            .await
            .ok()
            .and_then(|l| l.mac);
        Ok(Attachment {
            port: port.to_string(),
            host_ifname: host.to_string(),
            host_mac,
            ifname: req.ifname.clone(),
            mac,
            ip,
            prefix_len,
            gateway,
            mtu,
            sandbox: req.netns.clone().unwrap_or_default(),
        })
    }

    async fn del(&self, req: &Request) -> Result<(), CniError> {
        let host = spec::host_ifname(&req.container_id, &req.ifname);
        self.del_host(&host, &req.container_id).await
    }

    /// DEL by host interface: the logical port if ADD created it, the OVS row and the veth,
    /// each only if marked as this container's. Nothing there is success.
    async fn del_host(&self, host: &str, container_id: &str) -> Result<(), CniError> {
        let client = ovs::connect(&self.cfg.ovsdb).await?;
        match ovs::vif_ids(&client, host).await? {
            Some(ids) if ids.get(CNI_KEY).map(String::as_str) == Some(container_id) => {
                if ids.get(LPORT_KEY).map(String::as_str) == Some(LPORT_CREATED) {
                    if let Some(p) = ids.get("iface-id") {
                        self.plug.controller.delete_port(p).await?;
                        info!(port = %p, "deleted logical port");
                    }
                }
                ovs::del_vif(&client, host).await?;
            }
            Some(_) => {
                return Err(CniError::Datapath(format!(
                    "OVS interface {host:?} is not marked as belonging to container {container_id:?}; left alone"
                )));
            }
            None => {}
        }
        link::delete_link(self.host_ns(), host).await?;
        info!(container = %container_id, host_ifname = %host, "CNI DEL done");
        Ok(())
    }

    async fn check(&self, req: &Request) -> Result<Attachment, CniError> {
        let netns = crate::plug::netns::resolve(req.netns.as_deref().unwrap_or_default());
        let host = spec::host_ifname(&req.container_id, &req.ifname);
        let fail = |m: String| CniError::CheckFailed(m);
        let client = ovs::connect(&self.cfg.ovsdb).await?;
        let ids = ovs::vif_ids(&client, &host)
            .await?
            .ok_or_else(|| fail(format!("OVS interface {host:?} is missing")))?;
        if ids.get(CNI_KEY) != Some(&req.container_id) {
            return Err(fail(format!(
                "OVS interface {host:?} does not belong to this container"
            )));
        }
        let port = ids
            .get("iface-id")
            .cloned()
            .ok_or_else(|| fail(format!("OVS interface {host:?} has no iface-id")))?;
        let lport = self
            .plug
            .controller
            .get_port(&port)
            .await?
            .ok_or_else(|| fail(format!("logical port {port:?} no longer exists")))?;
        let (mac, ip) = spec::port_address(&lport.dynamic_addresses, &lport.addresses)
            .ok_or_else(|| fail(format!("logical port {port:?} has no address")))?;
        let ls = self.plug.controller.get_switch(&lport.switch_name).await?;
        let gateway = self.plug.gateway(&ls).await?;
        let host_info = link::link_info(self.host_ns(), &host)
            .await
            .map_err(|e| fail(format!("host interface {host}: {e}")))?;
        let info = link::link_info(Some(&netns), &req.ifname)
            .await
            .map_err(|e| fail(format!("{} in {netns}: {e}", req.ifname)))?;
        if info.mac.as_deref() != Some(mac.as_str()) {
            return Err(fail(format!(
                "{} has MAC {:?}, the port has {mac}",
                req.ifname, info.mac
            )));
        }
        let Some(&(_, prefix_len)) = info.ipv4.iter().find(|(a, _)| *a == ip) else {
            return Err(fail(format!("{} lacks address {ip}", req.ifname)));
        };
        if let Some(gw) = gateway {
            if !link::has_default_route(&netns, gw).await? {
                return Err(fail(format!("no default route via {gw} in {netns}")));
            }
        }
        Ok(Attachment {
            port,
            host_ifname: host,
            host_mac: host_info.mac,
            ifname: req.ifname.clone(),
            mac,
            ip,
            prefix_len,
            gateway,
            mtu: info.mtu.unwrap_or(0),
            sandbox: req.netns.clone().unwrap_or_default(),
        })
    }
}
