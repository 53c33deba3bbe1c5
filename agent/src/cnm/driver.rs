//! The Docker driver's I/O half: the HTTP server on the plugin socket and the handlers of
//! every network driver and IPAM method, over [`crate::plug`] (controller, veth, OVSDB) and a
//! small JSON state file. Requests are handled one at a time (Docker serialises most of them
//! anyway), so state changes need no finer locking.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;
use tracing::{info, warn};
use weft_ovsdb::DatapathType;
use weft_proto::v1::{LogicalSwitch, LogicalSwitchPort};

use super::portmap::{self, HostNet};
use super::wire::{self, Binding, Method};
use super::CnmError;
use crate::plug::ovs::{self, CNM_KEY, CNM_NETWORK_KEY};
use crate::plug::{Controller, PlugError, Plumber};

/// `external_ids` of a logical port the IPAM driver reserved: the chassis that did.
pub const RESERVED_BY: &str = "weft-cnm-host";
/// `external_ids` of a logical switch the network driver created.
pub const SWITCH_CREATED: &str = "weft-cnm";

/// What the Docker driver needs.
#[derive(Debug, Clone)]
pub struct CnmConfig {
    /// The plugin socket (Docker finds `NAME.sock` in its plugin directory).
    pub socket: PathBuf,
    /// The driver's state file.
    pub state: PathBuf,
    pub controllers: Vec<String>,
    pub ovsdb: String,
    pub bridge: String,
    pub datapath: DatapathType,
    pub default_mtu: u32,
    pub host_netns: Option<String>,
    pub chassis: String,
    pub ready_timeout: Duration,
    pub request_timeout: Duration,
    /// The host's management port link (`--mgmt-interface` when `--mgmt-switch` is set):
    /// published ports are SNATed to its address. None: `-p` is refused.
    pub mgmt_interface: Option<String>,
}

impl CnmConfig {
    /// The driver for the agent configured as `agent`.
    pub fn from_agent(socket: PathBuf, state: PathBuf, agent: &crate::AgentConfig) -> CnmConfig {
        CnmConfig {
            socket,
            state,
            controllers: agent.controllers.clone(),
            ovsdb: agent.ovsdb.clone(),
            bridge: agent.bridge.clone(),
            datapath: agent.datapath.parse().unwrap_or(DatapathType::System),
            default_mtu: 1400,
            host_netns: None,
            chassis: agent.chassis.clone(),
            ready_timeout: agent.cni_ready_timeout,
            request_timeout: Duration::from_secs(90),
            mgmt_interface: agent.mgmt.as_ref().map(|m| m.interface.clone()),
        }
    }
}

/// A Docker network on this host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct NetworkState {
    switch: String,
    subnet: String,
    /// This driver created the switch (no `-o weft.switch`).
    created_switch: bool,
}

/// A Docker endpoint on this host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct EndpointState {
    network: String,
    port: String,
    ip: Ipv4Addr,
    prefix: u8,
    mac: String,
    /// CreateEndpoint created the port (no Weft IPAM reservation behind the address).
    created_port: bool,
    #[serde(default)]
    bindings: Vec<Binding>,
}

/// An address this host's IPAM released recently (its port is gone; others may take it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Released {
    switch: String,
    ip: Ipv4Addr,
    mac: String,
    /// Seconds since the epoch.
    at: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    networks: BTreeMap<String, NetworkState>,
    #[serde(default)]
    endpoints: BTreeMap<String, EndpointState>,
    /// Newest last; a dynamic request prefers these (see [`REUSE_WITHIN`]).
    #[serde(default)]
    released: Vec<Released>,
}

/// How long a released address is preferred for this host's next dynamic request: long
/// enough for a dockerd restart (live-restore off releases every endpoint, then the
/// restarted containers ask again), so a container that is alone in restarting gets its
/// address back. Docker sends nothing that says which container asks.
const REUSE_WITHIN: Duration = Duration::from_secs(300);
/// At most this many released addresses are remembered.
const REUSE_MAX: usize = 64;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Driver {
    cfg: CnmConfig,
    plug: Plumber,
    state: Mutex<State>,
    seq: AtomicU64,
    /// Where published ports are realised.
    host: Arc<dyn HostNet + Send + Sync>,
}

/// How often the published ports' rules are made true again (after the first time, which is
/// retried every second until it succeeds: the management port may not have its address yet).
const PORTMAP_INTERVAL: Duration = Duration::from_secs(30);

/// Serves the plugin socket until `shutdown` completes; removes the socket then.
pub async fn serve(cfg: CnmConfig, shutdown: impl Future<Output = ()>) -> Result<(), CnmError> {
    let listener = bind(&cfg.socket)?;
    let state = load_state(&cfg.state)?;
    info!(socket = %cfg.socket.display(), networks = state.networks.len(), endpoints = state.endpoints.len(), "Docker plugin listening");
    let plug = Plumber {
        controller: Controller::new(cfg.controllers.clone(), cfg.request_timeout),
        ovsdb: cfg.ovsdb.clone(),
        bridge: cfg.bridge.clone(),
        datapath: cfg.datapath,
        host_netns: cfg.host_netns.clone(),
        chassis: Some(cfg.chassis.clone()),
        ready_timeout: cfg.ready_timeout,
    };
    let path = cfg.socket.clone();
    let d = Arc::new(Driver {
        cfg,
        plug,
        state: Mutex::new(state),
        seq: AtomicU64::new(0),
        host: Arc::new(portmap::Iptables),
    });
    let resync = tokio::spawn({
        let d = d.clone();
        async move { d.portmap_loop().await }
    });
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((s, _)) => {
                    let d = d.clone();
                    tokio::spawn(async move { d.connection(s).await });
                }
                Err(e) => {
                    warn!(error = %e, "Docker plugin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    resync.abort();
    let _ = std::fs::remove_file(&path);
    Ok(())
}

fn bind(path: &Path) -> Result<UnixListener, CnmError> {
    use std::os::unix::fs::FileTypeExt;
    let err = |e: std::io::Error| CnmError::Bind {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path).map_err(err)?,
        Ok(_) => {
            return Err(CnmError::Bind {
                path: path.to_path_buf(),
                reason: "exists and is not a socket".into(),
            })
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(path).map_err(err)?;
    // Only root (dockerd) may drive the plugin.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(l)
}

fn load_state(path: &Path) -> Result<State, CnmError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| CnmError::State {
            path: path.to_path_buf(),
            reason: format!("unreadable ({e}); move it away to start empty"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(CnmError::State {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

fn save_state(path: &Path, s: &State) -> Result<(), CnmError> {
    let err = |e: std::io::Error| CnmError::State {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec_pretty(s).unwrap_or_default();
    std::fs::write(&tmp, body).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Reads one request (head and body) off `stream` into `buf`-backed pieces.
async fn read_request(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
) -> Result<Option<(wire::Head, Vec<u8>)>, CnmError> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > wire::MAX_HEAD_BYTES {
            return Err(CnmError::BadRequest(format!(
                "request head larger than {} bytes",
                wire::MAX_HEAD_BYTES
            )));
        }
        let mut chunk = [0u8; 8192];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| CnmError::BadRequest(e.to_string()))?;
        if n == 0 {
            if buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            return Err(CnmError::BadRequest("connection closed mid-request".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = wire::parse_head(&buf[..head_end])?;
    let start = head_end + 4;
    while buf.len() < start + head.content_length {
        let mut chunk = [0u8; 8192];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| CnmError::BadRequest(e.to_string()))?;
        if n == 0 {
            return Err(CnmError::BadRequest("connection closed mid-body".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[start..start + head.content_length].to_vec();
    buf.drain(..start + head.content_length);
    Ok(Some((head, body)))
}

impl Driver {
    async fn connection(&self, mut stream: UnixStream) {
        let mut buf = Vec::new();
        loop {
            let read =
                tokio::time::timeout(Duration::from_secs(60), read_request(&mut stream, &mut buf))
                    .await;
            let (status, body, close) = match read {
                Err(_) | Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    warn!(error = %e, "Docker plugin: bad request");
                    (e.status().max(400), wire::error_body(&e.to_string()), true)
                }
                Ok(Ok(Some((head, body)))) => {
                    let close = head.close;
                    match self.dispatch(&head, &body).await {
                        Ok(v) => (200, v, close),
                        Err(e) => {
                            warn!(path = %head.path, error = %e, "Docker plugin request refused");
                            (e.status(), wire::error_body(&e.to_string()), close)
                        }
                    }
                }
            };
            if stream
                .write_all(&wire::response(status, &body))
                .await
                .is_err()
                || close
            {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }

    async fn dispatch(&self, head: &wire::Head, body: &[u8]) -> Result<Value, CnmError> {
        if head.method != "POST" {
            return Err(CnmError::BadRequest(format!(
                "method {} not allowed; the plugin protocol uses POST",
                head.method
            )));
        }
        let Some(m) = wire::method_of(&head.path) else {
            return Err(CnmError::UnknownMethod(head.path.clone()));
        };
        let mut st = self.state.lock().await;
        let before = serde_json::to_vec(&*st).unwrap_or_default();
        let r = tokio::time::timeout(self.cfg.request_timeout, self.handle(m, body, &mut st))
            .await
            .unwrap_or_else(|_| {
                Err(CnmError::Plug(PlugError::Timeout(format!(
                    "{} did not finish within {:?}",
                    head.path, self.cfg.request_timeout
                ))))
            });
        if serde_json::to_vec(&*st).unwrap_or_default() != before {
            save_state(&self.cfg.state, &st)?;
        }
        r
    }

    async fn handle(&self, m: Method, body: &[u8], st: &mut State) -> Result<Value, CnmError> {
        use Method::*;
        match m {
            Activate => Ok(json!({"Implements": ["NetworkDriver", "IpamDriver"]})),
            GetCapabilities => Ok(json!({"Scope": "local", "ConnectivityScope": "global"})),
            IpamCapabilities => {
                Ok(json!({"RequiresMACAddress": false, "RequiresRequestReplay": false}))
            }
            AddressSpaces => Ok(json!({
                "LocalDefaultAddressSpace": "weft-local",
                "GlobalDefaultAddressSpace": "weft-global"
            })),
            DiscoverNew | DiscoverDelete => {
                let _: Value = wire::decode(body)?;
                Ok(json!({}))
            }
            CreateNetwork => self.create_network(wire::decode(body)?, st).await,
            DeleteNetwork => self.delete_network(wire::decode(body)?, st).await,
            CreateEndpoint => self.create_endpoint(wire::decode(body)?, st).await,
            EndpointOperInfo => {
                let r: wire::EndpointRef = wire::decode(body)?;
                let ep = endpoint(st, &r.endpoint_id)?;
                let sw = st.networks.get(&ep.network).map(|n| n.switch.clone());
                Ok(json!({"Value": {
                    "weft.port": ep.port, "weft.switch": sw, "weft.chassis": self.cfg.chassis,
                    "weft.bindings": ep.bindings.iter().map(ToString::to_string).collect::<Vec<_>>()
                }}))
            }
            DeleteEndpoint => self.delete_endpoint(wire::decode(body)?, st).await,
            Join => self.join(wire::decode(body)?, st).await,
            Leave => {
                let r: wire::EndpointRef = wire::decode(body)?;
                let ep = endpoint(st, &r.endpoint_id)?.clone();
                self.unpublish(&r.endpoint_id, st).await;
                let (host, _) = wire::veth_names(&r.endpoint_id);
                self.unplug(&host, &r.endpoint_id).await?;
                info!(endpoint = %r.endpoint_id, port = %ep.port, "Docker Leave done");
                Ok(json!({}))
            }
            ProgramExternalConnectivity => {
                let r: wire::EndpointRef = wire::decode(body)?;
                let new = wire::parse_bindings(&r.options)?;
                endpoint(st, &r.endpoint_id)?;
                let held: Vec<(String, Vec<Binding>)> = st
                    .endpoints
                    .iter()
                    .map(|(k, e)| (k.clone(), e.bindings.clone()))
                    .collect();
                if let Some((b, other)) = wire::binding_conflict(&new, &held, &r.endpoint_id) {
                    return Err(CnmError::InUse(format!(
                        "port binding {b}: host port {}/{} is already bound on this host by endpoint {}",
                        b.host_port,
                        b.proto,
                        &other[..other.len().min(12)]
                    )));
                }
                self.publish(&r.endpoint_id, new, st).await?;
                Ok(json!({}))
            }
            RevokeExternalConnectivity => {
                let r: wire::EndpointRef = wire::decode(body)?;
                self.unpublish(&r.endpoint_id, st).await;
                Ok(json!({}))
            }
            RequestPool => self.request_pool(wire::decode(body)?).await,
            ReleasePool => {
                let r: Value = wire::decode(body)?;
                wire::PoolId::parse(r.get("PoolID").and_then(Value::as_str).unwrap_or_default())?;
                Ok(json!({}))
            }
            RequestAddress => self.request_address(wire::decode(body)?, st).await,
            ReleaseAddress => self.release_address(wire::decode(body)?, st).await,
        }
    }

    // ---- network driver ----

    async fn create_network(
        &self,
        req: wire::CreateNetwork,
        st: &mut State,
    ) -> Result<Value, CnmError> {
        wire::check_id("NetworkID", &req.network_id)?;
        let named = wire::network_switch_option(&req.options)?;
        let pool = wire::network_pool(&req)?;
        let (switch, created) = match named {
            Some(name) => {
                let ls = self.get_switch(&name, "driver option weft.switch").await?;
                wire::check_switch_subnet(&name, &ls.subnet, &pool)?;
                (name, false)
            }
            None => {
                let name = wire::switch_for_pool(&pool);
                match self.plug.controller.get_switch(&name).await {
                    Ok(ls) => {
                        wire::check_switch_subnet(&name, &ls.subnet, &pool)?;
                    }
                    Err(PlugError::NoSwitch(_)) => {
                        let mut ext = std::collections::HashMap::new();
                        ext.insert(SWITCH_CREATED.to_string(), "created".to_string());
                        self.plug
                            .controller
                            .create_switch(LogicalSwitch {
                                name: name.clone(),
                                subnet: pool.to_string(),
                                external_ids: ext,
                                ..Default::default()
                            })
                            .await
                            .map_err(|e| match e {
                                PlugError::Controller(m) if m.contains("PermissionDenied") => {
                                    CnmError::Plug(PlugError::Controller(format!(
                                        "{m}; this agent's credential may not create switches: create it with `weftctl ls-add {name} --subnet {pool}` or pass -o weft.switch=NAME"
                                    )))
                                }
                                other => other.into(),
                            })?;
                    }
                    Err(e) => return Err(e.into()),
                }
                (name, true)
            }
        };
        info!(network = %req.network_id, switch = %switch, subnet = %pool, created, "Docker network created");
        st.networks.insert(
            req.network_id,
            NetworkState {
                switch,
                subnet: pool.to_string(),
                created_switch: created,
            },
        );
        Ok(json!({}))
    }

    async fn delete_network(
        &self,
        req: wire::EndpointRef,
        st: &mut State,
    ) -> Result<Value, CnmError> {
        let Some(n) = st.networks.get(&req.network_id).cloned() else {
            return Ok(json!({}));
        };
        let still_here = st.endpoints.values().any(|e| e.network == req.network_id);
        let others_on_host = st
            .networks
            .iter()
            .any(|(id, o)| id != &req.network_id && o.switch == n.switch);
        if n.created_switch && !still_here && !others_on_host {
            let ports = self.plug.controller.list_ports(&n.switch).await?;
            let ours = self
                .plug
                .controller
                .get_switch(&n.switch)
                .await
                .map(|ls| ls.external_ids.contains_key(SWITCH_CREATED))
                .unwrap_or(false);
            if ports.is_empty() && ours {
                self.plug.controller.delete_switch(&n.switch).await?;
                info!(switch = %n.switch, "deleted the switch this driver created");
            } else {
                info!(switch = %n.switch, ports = ports.len(), "switch kept: ports elsewhere still use it");
            }
        }
        st.networks.remove(&req.network_id);
        Ok(json!({}))
    }

    async fn create_endpoint(
        &self,
        req: wire::EndpointRef,
        st: &mut State,
    ) -> Result<Value, CnmError> {
        wire::check_id("EndpointID", &req.endpoint_id)?;
        let net = network(st, &req.network_id)?.clone();
        let pool: Ipv4Network = net.subnet.parse().map_err(|_| {
            CnmError::NotFound(format!("network {} has a bad subnet", req.network_id))
        })?;
        let (ip, mac) = wire::endpoint_address(req.interface.as_ref(), &pool)?;
        if let Some(e) = st.endpoints.get(&req.endpoint_id) {
            return Ok(
                json!({"Interface": {"MacAddress": if mac.is_none() { e.mac.clone() } else { String::new() }}}),
            );
        }
        let ports = self.plug.controller.list_ports(&net.switch).await?;
        let holder = ip.and_then(|ip| ports.iter().find(|p| port_ip(p) == Some(ip)).cloned());
        let (port, created_port) = match holder {
            Some(p) if p.external_ids.get(RESERVED_BY) == Some(&self.cfg.chassis) => (p, false),
            Some(p) => {
                return Err(CnmError::InUse(format!(
                    "Interface.Address {:?}: taken by logical port {:?} on switch {:?}",
                    req.interface
                        .as_ref()
                        .map(|i| i.address.clone())
                        .unwrap_or_default(),
                    p.name,
                    net.switch
                )))
            }
            None => {
                let name = wire::endpoint_port_name(&req.endpoint_id);
                let addresses = match ip {
                    Some(ip) => vec![format!(
                        "{} {ip}",
                        mac.clone()
                            .unwrap_or_else(|| crate::cni::address::mac_for_requested_ip(ip))
                    )],
                    None => vec!["dynamic".to_string()],
                };
                let mut ext = std::collections::HashMap::new();
                ext.insert("weft-cnm-endpoint".to_string(), req.endpoint_id.clone());
                let p = self
                    .plug
                    .controller
                    .create_port(LogicalSwitchPort {
                        name,
                        switch_name: net.switch.clone(),
                        addresses,
                        enabled: true,
                        external_ids: ext,
                        ..Default::default()
                    })
                    .await?;
                (p, true)
            }
        };
        let (mut port_mac, port_ipv4) = weft_addr(&port).ok_or_else(|| {
            CnmError::Plug(PlugError::Controller(format!(
                "logical port {:?} has no MAC and IPv4 address",
                port.name
            )))
        })?;
        if let Some(m) = &mac {
            if !m.eq_ignore_ascii_case(&port_mac) {
                self.plug
                    .controller
                    .set_port_addresses(&port.name, vec![format!("{m} {port_ipv4}")])
                    .await?;
                port_mac = m.clone();
            }
        }
        st.endpoints.insert(
            req.endpoint_id.clone(),
            EndpointState {
                network: req.network_id.clone(),
                port: port.name.clone(),
                ip: port_ipv4,
                prefix: pool.prefix(),
                mac: port_mac.clone(),
                created_port,
                bindings: Vec::new(),
            },
        );
        info!(endpoint = %req.endpoint_id, port = %port.name, ip = %port_ipv4, mac = %port_mac, "Docker endpoint created");
        let mut iface = wire::EndpointInterface::default();
        if mac.is_none() {
            iface.mac_address = port_mac;
        }
        if ip.is_none() {
            iface.address = format!("{port_ipv4}/{}", pool.prefix());
        }
        Ok(json!({ "Interface": iface }))
    }

    async fn delete_endpoint(
        &self,
        req: wire::EndpointRef,
        st: &mut State,
    ) -> Result<Value, CnmError> {
        let Some(ep) = st.endpoints.get(&req.endpoint_id).cloned() else {
            return Ok(json!({}));
        };
        self.unpublish(&req.endpoint_id, st).await;
        let (host, _) = wire::veth_names(&req.endpoint_id);
        self.unplug(&host, &req.endpoint_id).await?;
        if ep.created_port {
            self.plug.controller.delete_port(&ep.port).await?;
        }
        st.endpoints.remove(&req.endpoint_id);
        info!(endpoint = %req.endpoint_id, port = %ep.port, "Docker endpoint deleted");
        Ok(json!({}))
    }

    async fn join(&self, req: wire::EndpointRef, st: &mut State) -> Result<Value, CnmError> {
        let ep = endpoint(st, &req.endpoint_id)?.clone();
        let net = network(st, &ep.network)?.clone();
        let ls = self.plug.controller.get_switch(&net.switch).await?;
        let gateway = self.plug.gateway(&ls).await?;
        let (host, peer) = wire::veth_names(&req.endpoint_id);
        // A repeated Join (Docker retrying): start from scratch.
        self.unplug(&host, &req.endpoint_id).await?;
        let _ = crate::plug::link::delete_link(self.plug.host_ns(), &peer).await;
        let mtu = if ls.mtu != 0 {
            ls.mtu
        } else {
            self.cfg.default_mtu
        };
        let mut ids = BTreeMap::new();
        ids.insert("iface-id".to_string(), ep.port.clone());
        ids.insert("attached-mac".to_string(), ep.mac.clone());
        ids.insert(CNM_KEY.to_string(), req.endpoint_id.clone());
        ids.insert(CNM_NETWORK_KEY.to_string(), ep.network.clone());
        let r = async {
            self.plug
                .attach_pair(&host, &peer, &ep.mac, mtu, &ids)
                .await?;
            self.plug.wait_ready(&ep.port).await
        }
        .await;
        if let Err(e) = r {
            let _ = self.plug.undo(&host, &ep.port, false).await;
            return Err(e.into());
        }
        let pool: Ipv4Network = net
            .subnet
            .parse()
            .map_err(|_| CnmError::NotFound(format!("network {} has a bad subnet", ep.network)))?;
        let mut routes = Vec::new();
        if let Some(gw) = gateway.filter(|g| !pool.contains(*g)) {
            // A router port outside the subnet (a wider router network): reach it on-link.
            routes.push(json!({"Destination": format!("{gw}/32"), "RouteType": 1, "NextHop": ""}));
        }
        info!(endpoint = %req.endpoint_id, port = %ep.port, ip = %ep.ip, host_ifname = %host, "Docker Join done: flows installed on every live chassis");
        Ok(json!({
            "InterfaceName": {"SrcName": peer, "DstPrefix": "eth"},
            "Gateway": gateway.map(|g| g.to_string()).unwrap_or_default(),
            "StaticRoutes": routes,
            "DisableGatewayService": false,
        }))
    }

    /// Removes the OVS row and veth of `host` if they are this endpoint's.
    async fn unplug(&self, host: &str, endpoint_id: &str) -> Result<(), CnmError> {
        let c = ovs::connect(&self.plug.ovsdb).await?;
        match ovs::vif_ids(&c, host).await? {
            Some(ids) if ids.get(CNM_KEY).map(String::as_str) == Some(endpoint_id) => {
                ovs::del_vif(&c, host).await?;
            }
            Some(_) => {
                return Err(CnmError::InUse(format!(
                    "OVS interface {host:?} is not marked as Docker endpoint {endpoint_id}'s; left alone"
                )))
            }
            None => {}
        }
        crate::plug::link::delete_link(self.plug.host_ns(), host).await?;
        Ok(())
    }

    // ---- published ports ----

    /// Realises `new` as endpoint `id`'s published ports (replacing its old ones); refused,
    /// with the old ones kept, when the host cannot realise them.
    async fn publish(&self, id: &str, new: Vec<Binding>, st: &mut State) -> Result<(), CnmError> {
        let ep = endpoint(st, id)?.clone();
        if new.is_empty() && ep.bindings.is_empty() {
            return Ok(());
        }
        let shown = new.iter().map(ToString::to_string).collect::<Vec<_>>();
        let first = new.first().map(ToString::to_string);
        let with_binding = |e: CnmError| match (e, &first) {
            (CnmError::Portmap(p), Some(b)) => CnmError::field("port binding", b, p.to_string()),
            (e, _) => e,
        };
        if !new.is_empty() {
            let host = self.host.clone();
            let iface = self.cfg.mgmt_interface.clone();
            let ip = ep.ip;
            tokio::task::spawn_blocking(move || {
                portmap::mgmt_address(host.as_ref(), iface.as_deref())?;
                portmap::check_reachable(host.as_ref(), iface.as_deref().unwrap_or_default(), ip)
            })
            .await
            .map_err(task_failed)?
            .map_err(|e| with_binding(e.into()))?;
        }
        if let Some(e) = st.endpoints.get_mut(id) {
            e.bindings = new;
        }
        match self.sync_ports(st).await {
            Ok(s) => {
                info!(endpoint = %id, ip = %ep.ip, bindings = ?shown, rules = s.rules, hooks_added = s.hooks_added, "published ports realised");
                Ok(())
            }
            Err(e) => {
                if let Some(e) = st.endpoints.get_mut(id) {
                    e.bindings = ep.bindings.clone();
                }
                if let Err(again) = self.sync_ports(st).await {
                    warn!(error = %again, "could not restore the published ports' rules");
                }
                Err(with_binding(e))
            }
        }
    }

    /// Forgets endpoint `id`'s published ports and removes their rules (a failure is logged
    /// and left to the periodic resync: Docker's teardown goes on).
    async fn unpublish(&self, id: &str, st: &mut State) {
        let Some(ep) = st.endpoints.get_mut(id) else {
            return;
        };
        if ep.bindings.is_empty() {
            return;
        }
        ep.bindings.clear();
        match self.sync_ports(st).await {
            Ok(s) => info!(endpoint = %id, rules_left = s.rules, "published ports removed"),
            Err(e) => {
                warn!(endpoint = %id, error = %e, "could not remove the published ports' rules yet; retried")
            }
        }
    }

    /// Makes the host's rules those of every endpoint's bindings in `st`.
    async fn sync_ports(&self, st: &State) -> Result<portmap::Synced, CnmError> {
        let eps: Vec<(String, Ipv4Addr, Vec<Binding>)> = st
            .endpoints
            .iter()
            .filter(|(_, e)| !e.bindings.is_empty())
            .map(|(k, e)| (k.clone(), e.ip, e.bindings.clone()))
            .collect();
        let host = self.host.clone();
        let iface = self.cfg.mgmt_interface.clone();
        tokio::task::spawn_blocking(move || {
            let rules = if eps.is_empty() {
                Vec::new()
            } else {
                let mgmt = portmap::mgmt_address(host.as_ref(), iface.as_deref())?;
                let published: Vec<portmap::Published<'_>> = eps
                    .iter()
                    .map(|(id, ip, b)| portmap::Published {
                        endpoint: id,
                        ip: *ip,
                        bindings: b,
                    })
                    .collect();
                portmap::plan(&published, mgmt)
            };
            portmap::sync(host.as_ref(), &rules)
        })
        .await
        .map_err(task_failed)?
        .map_err(CnmError::from)
    }

    /// Re-derives the published ports' rules from the state: at start (an agent restart
    /// finds its rules in place and replaces them with the same ones), then every
    /// [`PORTMAP_INTERVAL`].
    async fn portmap_loop(&self) {
        let mut last_error = String::new();
        let mut first = true;
        loop {
            let r = {
                let st = self.state.lock().await;
                self.sync_ports(&st).await
            };
            let pause = match r {
                Ok(s) => {
                    if first || !last_error.is_empty() {
                        info!(
                            rules = s.rules,
                            hooks_added = s.hooks_added,
                            "published ports' rules in place"
                        );
                    }
                    first = false;
                    last_error.clear();
                    PORTMAP_INTERVAL
                }
                Err(e) => {
                    let s = e.to_string();
                    if s != last_error {
                        warn!(error = %s, "published ports' rules not in place yet; retrying");
                        last_error = s;
                    }
                    Duration::from_secs(1)
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    // ---- IPAM ----

    async fn get_switch(&self, name: &str, field: &'static str) -> Result<LogicalSwitch, CnmError> {
        match self.plug.controller.get_switch(name).await {
            Ok(ls) => Ok(ls),
            Err(PlugError::NoSwitch(_)) => Err(CnmError::field(
                field,
                name,
                format!("no such Weft logical switch; create it with `weftctl ls-add {name} --subnet CIDR`"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The switch backing a pool: the one it names, else the one switch with its subnet;
    /// None when there is none (yet).
    async fn pool_switch(&self, pool: &wire::PoolId) -> Result<Option<LogicalSwitch>, CnmError> {
        if let Some(s) = &pool.switch {
            return self
                .get_switch(s, "ipam option weft.switch")
                .await
                .map(Some);
        }
        let subnet = pool.subnet.to_string();
        let same: Vec<LogicalSwitch> = self
            .plug
            .controller
            .list_switches()
            .await?
            .into_iter()
            .filter(|s| {
                s.subnet
                    .parse::<Ipv4Network>()
                    .is_ok_and(|n| n == pool.subnet)
            })
            .collect();
        match same.len() {
            0 => Ok(None),
            1 => Ok(same.into_iter().next()),
            _ => {
                let derived = wire::switch_for_pool(&pool.subnet);
                if let Some(s) = same.iter().find(|s| s.name == derived) {
                    return Ok(Some(s.clone()));
                }
                Err(CnmError::field(
                    "Pool",
                    &subnet,
                    format!(
                        "several Weft switches have this subnet ({}); pass --ipam-opt weft.switch=NAME",
                        same.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        }
    }

    async fn request_pool(&self, req: wire::RequestPool) -> Result<Value, CnmError> {
        let (subnet, switch) = wire::check_pool_request(&req)?;
        let subnet = match (&switch, subnet) {
            (Some(name), sub) => {
                let ls = self.get_switch(name, "ipam option weft.switch").await?;
                match sub {
                    Some(p) => {
                        wire::check_switch_subnet(name, &ls.subnet, &p)?;
                        p
                    }
                    None => wire::parse_pool("subnet of switch", &ls.subnet)?,
                }
            }
            (None, Some(p)) => p,
            (None, None) => unreachable_pool()?,
        };
        let id = wire::PoolId { subnet, switch };
        // Resolve now so an ambiguous subnet is refused before Docker goes on.
        self.pool_switch(&id).await?;
        Ok(json!({"PoolID": id.encode(), "Pool": subnet.to_string(), "Data": {}}))
    }

    async fn request_address(
        &self,
        req: wire::AddressRequest,
        st: &mut State,
    ) -> Result<Value, CnmError> {
        let ask = wire::check_address_request(&req)?;
        let prefix = ask.pool.subnet.prefix();
        let ls = self.pool_switch(&ask.pool).await?;
        if ask.gateway {
            let gw = match &ls {
                Some(ls) => self.plug.gateway(ls).await?,
                None => crate::plug::gateway::first_host(&ask.pool.subnet),
            }
            .ok_or_else(|| {
                CnmError::field(
                    "Pool",
                    &ask.pool.subnet.to_string(),
                    "has no gateway address",
                )
            })?;
            if let Some(ip) = ask.ip.filter(|ip| *ip != gw) {
                return Err(CnmError::field(
                    "Gateway",
                    &ip.to_string(),
                    format!("the Weft switch's gateway is {gw}; leave --gateway out or give {gw}"),
                ));
            }
            let len = if ask.pool.subnet.contains(gw) {
                prefix
            } else {
                32
            };
            return Ok(json!({"Address": format!("{gw}/{len}"), "Data": {}}));
        }
        let Some(ls) = ls else {
            return Err(CnmError::field(
                "PoolID",
                &req.pool_id,
                "no Weft switch has this subnet (create the network with -d weft first)",
            ));
        };
        let gw = self.plug.gateway(&ls).await?;
        if let Some(ip) = ask.ip {
            if Some(ip) == gw {
                return Err(CnmError::field(
                    "Address",
                    &ip.to_string(),
                    "is the switch's gateway address",
                ));
            }
            let ports = self.plug.controller.list_ports(&ls.name).await?;
            if let Some(p) = ports.iter().find(|p| port_ip(p) == Some(ip)) {
                return Err(CnmError::InUse(format!(
                    "Address {ip}: taken by logical port {:?} on switch {:?}",
                    p.name, ls.name
                )));
            }
        }
        let seed = (u128::from(self.seq.fetch_add(1, Ordering::Relaxed)) << 64)
            | u128::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0),
            );
        let name = wire::reservation_name(&self.cfg.chassis, seed);
        let mut ext = std::collections::HashMap::new();
        ext.insert(RESERVED_BY.to_string(), self.cfg.chassis.clone());
        if ask.ip.is_none() {
            // Prefer an address this host released recently (a restarted container's).
            let cutoff = now_secs().saturating_sub(REUSE_WITHIN.as_secs());
            st.released.retain(|r| r.at >= cutoff);
            let cands: Vec<Released> = st
                .released
                .iter()
                .rev()
                .filter(|r| r.switch == ls.name && Some(r.ip) != gw)
                .cloned()
                .collect();
            let ports = if cands.is_empty() {
                Vec::new()
            } else {
                self.plug.controller.list_ports(&ls.name).await?
            };
            for r in cands {
                let mac = ask.mac.clone().unwrap_or_else(|| r.mac.clone());
                let taken = ports.iter().any(|p| {
                    weft_addr(p).is_some_and(|(m, ip)| ip == r.ip || m.eq_ignore_ascii_case(&mac))
                });
                if taken {
                    continue;
                }
                let created = self
                    .plug
                    .controller
                    .create_port(LogicalSwitchPort {
                        name: name.clone(),
                        switch_name: ls.name.clone(),
                        addresses: vec![format!("{mac} {}", r.ip)],
                        enabled: true,
                        external_ids: ext.clone(),
                        ..Default::default()
                    })
                    .await;
                match created {
                    Ok(_) => {
                        st.released
                            .retain(|x| !(x.switch == r.switch && x.ip == r.ip));
                        info!(port = %name, ip = %r.ip, switch = %ls.name, "Docker IPAM reserved a recently released address again");
                        return Ok(json!({"Address": format!("{}/{prefix}", r.ip), "Data": {}}));
                    }
                    Err(e) => {
                        warn!(ip = %r.ip, error = %e, "could not take back a released address");
                    }
                }
            }
        }
        let addresses = match ask.ip {
            Some(ip) => vec![format!(
                "{} {ip}",
                ask.mac
                    .clone()
                    .unwrap_or_else(|| crate::cni::address::mac_for_requested_ip(ip))
            )],
            None => vec!["dynamic".into()],
        };
        let p = self
            .plug
            .controller
            .create_port(LogicalSwitchPort {
                name: name.clone(),
                switch_name: ls.name.clone(),
                addresses,
                enabled: true,
                external_ids: ext,
                ..Default::default()
            })
            .await
            .map_err(|e| match (e, ask.ip) {
                (PlugError::Controller(m), Some(ip))
                    if m.contains("in use") || m.contains("already") =>
                {
                    CnmError::InUse(format!("Address {ip}: {m}"))
                }
                (e, _) => e.into(),
            })?;
        let (_, ip) = weft_addr(&p).ok_or_else(|| {
            CnmError::Plug(PlugError::Controller(format!(
                "reservation {name:?} got no IPv4 address"
            )))
        })?;
        info!(port = %name, ip = %ip, switch = %ls.name, "Docker IPAM reserved an address");
        Ok(json!({"Address": format!("{ip}/{prefix}"), "Data": {}}))
    }

    async fn release_address(
        &self,
        req: wire::AddressRequest,
        st: &mut State,
    ) -> Result<Value, CnmError> {
        let pool = wire::PoolId::parse(&req.pool_id)?;
        let Some(ip) = wire::parse_ip_in("Address", &req.address, &pool.subnet)? else {
            return Err(CnmError::field("Address", "", "missing"));
        };
        let Some(ls) = self.pool_switch(&pool).await? else {
            return Ok(json!({}));
        };
        let ports = self.plug.controller.list_ports(&ls.name).await?;
        for p in ports.iter().filter(|p| port_ip(p) == Some(ip)) {
            if p.external_ids.get(RESERVED_BY) == Some(&self.cfg.chassis) {
                self.plug.controller.delete_port(&p.name).await?;
                info!(port = %p.name, ip = %ip, "Docker IPAM released an address");
                if let Some((mac, _)) = weft_addr(p) {
                    st.released.retain(|r| !(r.switch == ls.name && r.ip == ip));
                    st.released.push(Released {
                        switch: ls.name.clone(),
                        ip,
                        mac,
                        at: now_secs(),
                    });
                    let over = st.released.len().saturating_sub(REUSE_MAX);
                    st.released.drain(..over);
                }
            }
        }
        Ok(json!({}))
    }
}

/// A published-port task that did not finish (it panicked or was cancelled).
fn task_failed(e: tokio::task::JoinError) -> CnmError {
    CnmError::Portmap(portmap::PortmapError::Command {
        command: "published-port rules task".into(),
        reason: e.to_string(),
    })
}

fn unreachable_pool() -> Result<Ipv4Network, CnmError> {
    Err(CnmError::field("Pool", "", "no subnet"))
}

fn network<'a>(st: &'a State, id: &str) -> Result<&'a NetworkState, CnmError> {
    st.networks.get(id).ok_or_else(|| {
        CnmError::NotFound(format!(
            "network {} is not known to the Weft driver on this host",
            &id[..id.len().min(12)]
        ))
    })
}

fn endpoint<'a>(st: &'a State, id: &str) -> Result<&'a EndpointState, CnmError> {
    st.endpoints.get(id).ok_or_else(|| {
        CnmError::NotFound(format!(
            "endpoint {} is not known to the Weft driver on this host",
            &id[..id.len().min(12)]
        ))
    })
}

/// The port's (MAC, IPv4), from its dynamic or static addresses.
fn weft_addr(p: &LogicalSwitchPort) -> Option<(String, Ipv4Addr)> {
    crate::cni::spec::port_address(&p.dynamic_addresses, &p.addresses)
}

fn port_ip(p: &LogicalSwitchPort) -> Option<Ipv4Addr> {
    weft_addr(p).map(|a| a.1)
}
