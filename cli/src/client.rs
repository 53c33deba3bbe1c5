//! The thin gRPC layer: one connection to the controller, then the calls a plan needs.
//!
//! Errors come back as [`CliError`] already classified (cannot connect, client timeout, or
//! the controller's status).

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use weft_proto::v1 as pb;
use weft_proto::v1::northbound_client::NorthboundClient;

use crate::cmd::{object, Call, Reply, Sugar};
use crate::error::{from_status, root_cause, CliError};

/// Time allowed to open the TCP connection and HTTP/2 session.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest reply accepted (tonic's default is 4 MiB; `show` of a big deployment can exceed it).
pub const MAX_REPLY_BYTES: usize = 256 * 1024 * 1024;

/// Where and how long to talk to the controller.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Controller URL, `http://HOST:PORT`.
    pub url: String,
    /// Bound for opening the connection.
    pub connect_timeout: Duration,
    /// Bound for each call (including any server-side wait).
    pub request_timeout: Duration,
    /// TLS (the default) or plain text.
    pub transport: weft_proto::tls::Transport,
    /// Bearer token sent with every call, when given.
    pub token: Option<String>,
}

/// Adds `authorization: Bearer TOKEN` to every call.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

type Nb = NorthboundClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// A connected northbound client.
pub struct Client {
    nb: Nb,
    cfg: ClientConfig,
    /// Chassis the last write's `--wait=hv` skipped because they were dead (the
    /// controller's `weft-skipped-chassis` reply metadata).
    pub skipped: Vec<String>,
}

/// The chassis a reply says its `--wait=hv` skipped.
fn skipped_of<T>(r: &tonic::Response<T>) -> Vec<String> {
    r.metadata()
        .get("weft-skipped-chassis")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Client {
    /// Opens the connection.
    /// Connects to the first controller of `cfg.url` (a comma-separated list) that answers;
    /// the error names every address tried when none does.
    pub async fn connect(cfg: &ClientConfig) -> Result<Client, CliError> {
        let mut failures = Vec::new();
        let tls = match &cfg.transport {
            weft_proto::tls::Transport::Tls(f) => Some(
                f.client_config()
                    .map_err(|e| CliError::Tls(e.to_string()))?,
            ),
            weft_proto::tls::Transport::Insecure => None,
        };
        let bearer = match &cfg.token {
            Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| {
                CliError::Tls("--token holds characters a header cannot carry".into())
            })?),
            None => None,
        };
        for url in cfg.url.split(',') {
            let dial = weft_proto::tls::url_for(url, &cfg.transport);
            let endpoint = match Endpoint::from_shared(dial) {
                Ok(e) => e
                    .connect_timeout(cfg.connect_timeout)
                    .timeout(cfg.request_timeout),
                Err(e) => {
                    failures.push((url.to_string(), root_cause(&e)));
                    continue;
                }
            };
            let endpoint = match &tls {
                Some(t) => match endpoint.tls_config(t.clone()) {
                    Ok(e) => e,
                    Err(e) => {
                        failures.push((url.to_string(), root_cause(&e)));
                        continue;
                    }
                },
                None => endpoint,
            };
            match endpoint.connect().await {
                Ok(channel) => {
                    let mut cfg = cfg.clone();
                    cfg.url = url.to_string();
                    return Ok(Client {
                        nb: NorthboundClient::with_interceptor(channel, Bearer(bearer.clone()))
                            .max_decoding_message_size(MAX_REPLY_BYTES),
                        cfg,
                        skipped: Vec::new(),
                    });
                }
                Err(e) => failures.push((url.to_string(), root_cause(&e))),
            }
        }
        let (url, reason) = match failures.as_slice() {
            [(u, r)] => (u.clone(), r.clone()),
            all => (
                all.iter()
                    .map(|(u, _)| u.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                all.iter()
                    .map(|(u, r)| format!("{u}: {r}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        Err(CliError::Connect { url, reason })
    }

    fn status(&self, s: tonic::Status) -> CliError {
        from_status(s, &self.cfg.url, self.cfg.request_timeout)
    }

    /// One Transact.
    pub async fn transact(
        &mut self,
        req: pb::TransactRequest,
    ) -> Result<pb::TransactReply, CliError> {
        match self.nb.transact(req).await {
            Ok(r) => {
                self.skipped = skipped_of(&r);
                Ok(r.into_inner())
            }
            Err(s) => Err(self.status(s)),
        }
    }

    /// A dedicated write RPC; its reply as (revision, one result per op of the command).
    pub async fn sugar(&mut self, s: Sugar) -> Result<(i64, Vec<pb::OpResult>), CliError> {
        use pb::object::Kind;
        let done = |kind: Option<Kind>| pb::OpResult {
            object: kind.map(object),
            changed: true,
        };
        let mut skipped = Vec::new();
        let r = match s {
            Sugar::CreateSwitch(r) => self.nb.create_switch(r).await.map(|r| {
                skipped = skipped_of(&r);
                let r = r.into_inner();
                (r.revision, vec![done(r.switch.map(Kind::LogicalSwitch))])
            }),
            Sugar::DeleteSwitch(r) => self.nb.delete_switch(r).await.map(|r| {
                skipped = skipped_of(&r);
                (r.into_inner().revision, vec![done(None)])
            }),
            Sugar::CreatePort(r) => self.nb.create_port(r).await.map(|r| {
                skipped = skipped_of(&r);
                port_result(r)
            }),
            Sugar::CreatePorts(r) => self.nb.create_ports(r).await.map(|r| {
                skipped = skipped_of(&r);
                let r = r.into_inner();
                let ports = r
                    .ports
                    .into_iter()
                    .map(|p| done(Some(Kind::LogicalSwitchPort(p))))
                    .collect();
                (r.revision, ports)
            }),
            Sugar::DeletePort(r) => self.nb.delete_port(r).await.map(|r| {
                skipped = skipped_of(&r);
                (r.into_inner().revision, vec![done(None)])
            }),
            Sugar::SetPortAddresses(r) => self.nb.set_port_addresses(r).await.map(|r| {
                skipped = skipped_of(&r);
                port_result(r)
            }),
            Sugar::SetPortSecurity(r) => self.nb.set_port_security(r).await.map(|r| {
                skipped = skipped_of(&r);
                port_result(r)
            }),
            Sugar::SetPortEnabled(r) => self.nb.set_port_enabled(r).await.map(|r| {
                skipped = skipped_of(&r);
                port_result(r)
            }),
            Sugar::DeleteChassis(r) => self.nb.delete_chassis(r).await.map(|r| {
                skipped = skipped_of(&r);
                (r.into_inner().revision, vec![done(None)])
            }),
        };
        self.skipped = skipped;
        r.map_err(|s| self.status(s))
    }

    /// One read (or Sync).
    pub async fn call(&mut self, c: &Call) -> Result<Reply, CliError> {
        let r = match c {
            Call::Show => self
                .nb
                .show(pb::ShowRequest {})
                .await
                .map(|r| Reply::Show(r.into_inner())),
            Call::ListSwitches => self
                .nb
                .list_switches(pb::ListSwitchesRequest {})
                .await
                .map(|r| Reply::Switches(r.into_inner())),
            Call::ListPorts(switch) => self
                .nb
                .list_ports(pb::ListPortsRequest {
                    switch_name: switch.clone(),
                })
                .await
                .map(|r| Reply::Ports(r.into_inner())),
            Call::GetPort(name) => self
                .nb
                .get_port(pb::GetRequest { name: name.clone() })
                .await
                .map(|r| Reply::Port(r.into_inner())),
            Call::ListChassis => self
                .nb
                .list_chassis(pb::ListChassisRequest {})
                .await
                .map(|r| Reply::Chassis(r.into_inner())),
            Call::ListObjects(req) => self
                .nb
                .list_objects(req.clone())
                .await
                .map(|r| Reply::Objects(r.into_inner())),
            Call::Sync(req) => self.nb.sync(*req).await.map(|r| {
                self.skipped = skipped_of(&r);
                Reply::Sync(r.into_inner())
            }),
            Call::Trace(req) => self
                .nb
                .trace(req.clone())
                .await
                .map(|r| Reply::Trace(r.into_inner())),
            Call::Flows(req) => self
                .nb
                .flows(req.clone())
                .await
                .map(|r| Reply::Flows(r.into_inner())),
            Call::AgentInfo(req) => self
                .nb
                .agent_info(req.clone())
                .await
                .map(|r| Reply::AgentInfo(r.into_inner())),
            Call::PhysicalTrace(req) => self
                .nb
                .physical_trace(req.clone())
                .await
                .map(|r| Reply::PhysicalTrace(r.into_inner())),
        };
        r.map_err(|s| self.status(s))
    }
}

fn port_result(r: tonic::Response<pb::PortReply>) -> (i64, Vec<pb::OpResult>) {
    let r = r.into_inner();
    (
        r.revision,
        vec![pb::OpResult {
            object: r
                .port
                .map(|p| object(pb::object::Kind::LogicalSwitchPort(p))),
            changed: true,
        }],
    )
}
