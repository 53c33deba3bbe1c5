//! The agent's CNI server: a unix socket on which `weft-cni` sends one JSON
//! [`Request`] per connection and reads one JSON [`Reply`] back.
//!
//! - **ADD**: logical port on the controller (created with a `dynamic` address unless it
//!   exists on the same switch), veth pair, container side addressed with the port's
//!   MAC/IP, MTU and a default route via the switch gateway (first host of its subnet), tx
//!   offload off on both ends for the netdev datapath, host end on the bridge with
//!   `external_ids:iface-id`. Any failure undoes what this ADD did.
//! - **DEL**: idempotent; removes the logical port only if ADD created it, then the OVS port
//!   and the veth, each only if marked as ours.
//! - **CHECK**: verifies all of the above is still in place.
//!
//! Requests are handled one at a time (a pod's ADD takes a few `ip` calls).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;
use tracing::{info, warn};
use weft_ovsdb::DatapathType;

use super::controller::Controller;
use super::link::{self, ContainerSide};
use super::ovs::{self, CNI_KEY, LPORT_CREATED, LPORT_KEY};
use super::spec::{self, Attachment, CniError, Command, ErrorReply, Reply, Request};

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
            request_timeout: Duration::from_secs(60),
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

struct Handler {
    cfg: CniServerConfig,
    controller: Controller,
    lock: Mutex<()>,
}

impl Handler {
    fn new(cfg: CniServerConfig) -> Handler {
        let controller = Controller::new(cfg.controllers.clone(), Duration::from_secs(15));
        Handler {
            cfg,
            controller,
            lock: Mutex::new(()),
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
                    let _g = self.lock.lock().await;
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
        crate::metrics::cni(
            &format!("{:?}", req.command).to_uppercase(),
            started,
            r.is_ok(),
        );
        r
    }

    async fn handle_inner(&self, req: &Request) -> Result<Option<Attachment>, CniError> {
        req.validate()?;
        match req.command {
            Command::Add => self.add(req).await.map(Some),
            Command::Del => self.del(req).await.map(|()| None),
            Command::Check => self.check(req).await.map(Some),
            Command::Version => Ok(None),
        }
    }

    async fn add(&self, req: &Request) -> Result<Attachment, CniError> {
        let netns = req.netns.clone().unwrap_or_default();
        let port = spec::port_name(&req.container_id, &req.args)?;
        let host = spec::host_ifname(&req.container_id, &req.ifname);
        let ls = self.controller.get_switch(&req.switch).await?;
        let Some((_, prefix_len)) = spec::parse_cidr(&ls.subnet) else {
            return Err(CniError::Controller(format!(
                "logical switch {:?} has no IPv4 subnet ({:?}); pods need one for dynamic addresses",
                req.switch, ls.subnet
            )));
        };
        let gateway = spec::gateway_of(&ls.subnet);
        // Leftovers of an earlier ADD for the same container and interface.
        self.del(req).await?;
        let (lport, created) = self.controller.ensure_port(&port, &req.switch).await?;
        let result = self
            .plumb(
                req, &netns, &port, &host, &lport, created, prefix_len, gateway, &ls,
            )
            .await;
        match result {
            Ok(a) => {
                info!(container = %req.container_id, port = %port, ip = %a.ip, mac = %a.mac, host_ifname = %host, created, "CNI ADD done");
                Ok(a)
            }
            Err(e) => {
                if let Ok(c) = ovs::connect(&self.cfg.ovsdb).await {
                    let _ = ovs::del_vif(&c, &host).await;
                }
                let _ = link::delete_link(self.host_ns(), &host).await;
                if created {
                    if let Err(de) = self.controller.delete_port(&port).await {
                        warn!(port = %port, error = %de, "could not delete the logical port after a failed ADD");
                    }
                }
                Err(e)
            }
        }
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
        link::create_veth(
            self.host_ns(),
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
                tx_offload_off: self.cfg.datapath == DatapathType::Netdev,
            },
        )
        .await?;
        let mut ids = BTreeMap::new();
        ids.insert("iface-id".to_string(), port.to_string());
        ids.insert("attached-mac".to_string(), mac.clone());
        ids.insert(CNI_KEY.to_string(), req.container_id.clone());
        if created {
            ids.insert(LPORT_KEY.to_string(), LPORT_CREATED.to_string());
        }
        let client = ovs::connect(&self.cfg.ovsdb).await?;
        ovs::add_vif(&client, &self.cfg.bridge, host, &ids).await?;
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
            sandbox: netns.to_string(),
        })
    }

    async fn del(&self, req: &Request) -> Result<(), CniError> {
        let host = spec::host_ifname(&req.container_id, &req.ifname);
        let client = ovs::connect(&self.cfg.ovsdb).await?;
        match ovs::vif_ids(&client, &host).await? {
            Some(ids) if ids.get(CNI_KEY) == Some(&req.container_id) => {
                if ids.get(LPORT_KEY).map(String::as_str) == Some(LPORT_CREATED) {
                    if let Some(p) = ids.get("iface-id") {
                        self.controller.delete_port(p).await?;
                        info!(port = %p, "deleted logical port");
                    }
                }
                ovs::del_vif(&client, &host).await?;
            }
            Some(_) => {
                return Err(CniError::Datapath(format!(
                    "OVS interface {host:?} is not marked as belonging to container {:?}; left alone",
                    req.container_id
                )));
            }
            None => {}
        }
        link::delete_link(self.host_ns(), &host).await?;
        info!(container = %req.container_id, host_ifname = %host, "CNI DEL done");
        Ok(())
    }

    async fn check(&self, req: &Request) -> Result<Attachment, CniError> {
        let netns = req.netns.clone().unwrap_or_default();
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
            .controller
            .get_port(&port)
            .await?
            .ok_or_else(|| fail(format!("logical port {port:?} no longer exists")))?;
        let (mac, ip) = spec::port_address(&lport.dynamic_addresses, &lport.addresses)
            .ok_or_else(|| fail(format!("logical port {port:?} has no address")))?;
        let ls = self.controller.get_switch(&lport.switch_name).await?;
        let gateway = spec::gateway_of(&ls.subnet);
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
            sandbox: netns,
        })
    }
}
