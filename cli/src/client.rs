//! The thin gRPC layer: connects to the controller and makes exactly one northbound call.
//!
//! Start at [`execute`]. Errors come back as [`CliError`] already classified (cannot connect,
//! client timeout, or the controller's status).

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use weft_proto::v1::northbound_client::NorthboundClient;
use weft_proto::v1::{GetRequest, ListChassisRequest, ListSwitchesRequest, ShowRequest};

use crate::error::{from_status, root_cause, CliError};
use crate::format::Reply;
use crate::request::Call;

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
    /// Bound for the call (including any server-side wait).
    pub request_timeout: Duration,
}

/// Connects to the controller and performs `call`.
pub async fn execute(cfg: &ClientConfig, call: Call) -> Result<Reply, CliError> {
    let mut client = connect(cfg).await?;
    let st = |s: tonic::Status| from_status(s, &cfg.url, cfg.request_timeout);
    let reply = match call {
        Call::CreateSwitch(r) => {
            Reply::Switch(client.create_switch(r).await.map_err(st)?.into_inner())
        }
        Call::DeleteSwitch(r) => {
            Reply::Write(client.delete_switch(r).await.map_err(st)?.into_inner())
        }
        Call::ListSwitches => Reply::Switches(
            client
                .list_switches(ListSwitchesRequest {})
                .await
                .map_err(st)?
                .into_inner(),
        ),
        Call::CreatePort(r) => Reply::Port(client.create_port(r).await.map_err(st)?.into_inner()),
        Call::CreatePorts(r) => {
            Reply::CreatedPorts(client.create_ports(r).await.map_err(st)?.into_inner())
        }
        Call::DeletePort(r) => Reply::Write(client.delete_port(r).await.map_err(st)?.into_inner()),
        Call::ListPorts(r) => Reply::Ports(client.list_ports(r).await.map_err(st)?.into_inner()),
        Call::SetPortAddresses(r) => {
            Reply::Port(client.set_port_addresses(r).await.map_err(st)?.into_inner())
        }
        Call::SetPortSecurity(r) => {
            Reply::Port(client.set_port_security(r).await.map_err(st)?.into_inner())
        }
        Call::SetPortEnabled(r) => {
            Reply::Port(client.set_port_enabled(r).await.map_err(st)?.into_inner())
        }
        Call::GetPort { name, field } => Reply::PortField(
            client
                .get_port(GetRequest { name })
                .await
                .map_err(st)?
                .into_inner(),
            field,
        ),
        Call::ListChassis => Reply::Chassis(
            client
                .list_chassis(ListChassisRequest {})
                .await
                .map_err(st)?
                .into_inner(),
        ),
        Call::DeleteChassis(r) => {
            Reply::Write(client.delete_chassis(r).await.map_err(st)?.into_inner())
        }
        Call::Show => Reply::Show(client.show(ShowRequest {}).await.map_err(st)?.into_inner()),
        Call::Sync(r) => Reply::Write(client.sync(r).await.map_err(st)?.into_inner()),
    };
    Ok(reply)
}

async fn connect(cfg: &ClientConfig) -> Result<NorthboundClient<Channel>, CliError> {
    let connect_err = |reason: String| CliError::Connect {
        url: cfg.url.clone(),
        reason,
    };
    let endpoint = Endpoint::from_shared(cfg.url.clone())
        .map_err(|e| connect_err(root_cause(&e)))?
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.request_timeout);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| connect_err(root_cause(&e)))?;
    Ok(NorthboundClient::new(channel).max_decoding_message_size(MAX_REPLY_BYTES))
}
