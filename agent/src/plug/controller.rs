//! The northbound calls CNI and CNM need: read (create, delete) the switch and the routers it
//! is attached to, create (or find) the logical port, give
//! it a static address, delete it, and wait until its flows are in everywhere (`up`, then
//! `Sync` with `--wait=hv`). Each call tries the configured controller endpoints in order;
//! the connection is kept and shared by concurrent requests (dropped when it fails).

use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::Channel;
use tonic::Code;
use weft_proto::v1::northbound_client::NorthboundClient;
use weft_proto::v1::{
    object, CreatePortRequest, CreateSwitchRequest, DeleteRequest, GetRequest, ListChassisRequest,
    ListObjectsRequest, ListPortsRequest, ListSwitchesRequest, LogicalSwitch, LogicalSwitchPort,
    SetPortAddressesRequest, SyncRequest, WaitMode, WriteOptions,
};

use super::PlugError;

/// Northbound access to any of `endpoints`.
#[derive(Debug)]
pub struct Controller {
    endpoints: Vec<String>,
    timeout: Duration,
    channel: Mutex<Option<Channel>>,
}

fn status(what: &str, s: &tonic::Status) -> PlugError {
    PlugError::Controller(format!("{what}: {:?}: {}", s.code(), s.message()))
}

/// How often [`Controller::wait_ready`] reads the port while waiting for it to come up.
const UP_POLL: Duration = Duration::from_millis(25);

impl Controller {
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Controller {
        Controller {
            endpoints,
            timeout,
            channel: Mutex::new(None),
        }
    }

    /// Forgets the shared connection after a transport failure.
    fn failed(&self, s: &tonic::Status) {
        if matches!(
            s.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ) {
            if let Ok(mut g) = self.channel.lock() {
                *g = None;
            }
        }
    }

    async fn client(&self) -> Result<NorthboundClient<Channel>, PlugError> {
        if let Some(ch) = self.channel.lock().ok().and_then(|g| g.clone()) {
            return Ok(NorthboundClient::new(ch));
        }
        let mut errors = Vec::new();
        for url in &self.endpoints {
            let ep = match crate::southbound::secure_endpoint(url) {
                Ok(e) => e
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(self.timeout)
                    .tcp_nodelay(true),
                Err(e) => {
                    errors.push(format!("{url}: {e}"));
                    continue;
                }
            };
            match ep.connect().await {
                Ok(ch) => {
                    if let Ok(mut g) = self.channel.lock() {
                        *g = Some(ch.clone());
                    }
                    return Ok(NorthboundClient::new(ch));
                }
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        Err(PlugError::Controller(format!(
            "no controller reachable ({})",
            if errors.is_empty() {
                "no endpoint configured".to_string()
            } else {
                errors.join("; ")
            }
        )))
    }

    /// The switch `name`.
    pub async fn get_switch(&self, name: &str) -> Result<LogicalSwitch, PlugError> {
        let mut c = self.client().await?;
        let r = c.get_switch(GetRequest { name: name.into() }).await;
        if let Err(s) = &r {
            self.failed(s);
        }
        match r {
            Ok(r) => Ok(r.into_inner()),
            Err(s) if s.code() == Code::NotFound => Err(PlugError::NoSwitch(name.to_string())),
            Err(s) => Err(status(&format!("get switch {name:?}"), &s)),
        }
    }

    /// The port `name`, None if it does not exist.
    pub async fn get_port(&self, name: &str) -> Result<Option<LogicalSwitchPort>, PlugError> {
        let mut c = self.client().await?;
        let r = c.get_port(GetRequest { name: name.into() }).await;
        if let Err(s) = &r {
            self.failed(s);
        }
        match r {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(status(&format!("get port {name:?}"), &s)),
        }
    }

    /// Finds port `name` on `switch`, or creates it with `addresses` (`["dynamic"]` or one
    /// static "MAC IP" entry). Returns the port and whether this call created it. A port of
    /// that name on another switch is an error.
    pub async fn ensure_port(
        &self,
        name: &str,
        switch: &str,
        addresses: Vec<String>,
    ) -> Result<(LogicalSwitchPort, bool), PlugError> {
        if let Some(p) = self.get_port(name).await? {
            if p.switch_name != switch {
                return Err(PlugError::Controller(format!(
                    "logical port {name:?} already exists on switch {:?}, not {switch:?}",
                    p.switch_name
                )));
            }
            return Ok((p, false));
        }
        let mut c = self.client().await?;
        let req = CreatePortRequest {
            port: Some(LogicalSwitchPort {
                name: name.into(),
                switch_name: switch.into(),
                addresses,
                enabled: true,
                ..Default::default()
            }),
            options: Some(WriteOptions {
                may_exist: true,
                ..Default::default()
            }),
        };
        let reply = c
            .create_port(req)
            .await
            .map_err(|s| {
                self.failed(&s);
                status(&format!("create port {name:?} on {switch:?}"), &s)
            })?
            .into_inner();
        let port = reply.port.ok_or_else(|| {
            PlugError::Controller(format!("create port {name:?}: reply without the port"))
        })?;
        Ok((port, true))
    }

    /// Every switch.
    pub async fn list_switches(&self) -> Result<Vec<LogicalSwitch>, PlugError> {
        let mut c = self.client().await?;
        let r = c.list_switches(ListSwitchesRequest {}).await.map_err(|s| {
            self.failed(&s);
            status("list switches", &s)
        })?;
        Ok(r.into_inner().switches)
    }

    /// Creates switch `ls` (may exist: an existing one of that name is returned as is).
    pub async fn create_switch(&self, ls: LogicalSwitch) -> Result<LogicalSwitch, PlugError> {
        let name = ls.name.clone();
        let mut c = self.client().await?;
        let r = c
            .create_switch(CreateSwitchRequest {
                switch: Some(ls),
                options: Some(WriteOptions {
                    may_exist: true,
                    ..Default::default()
                }),
            })
            .await
            .map_err(|s| {
                self.failed(&s);
                status(&format!("create switch {name:?}"), &s)
            })?;
        r.into_inner().switch.ok_or_else(|| {
            PlugError::Controller(format!("create switch {name:?}: reply without the switch"))
        })
    }

    /// Deletes switch `name`; a missing one is not an error.
    pub async fn delete_switch(&self, name: &str) -> Result<(), PlugError> {
        let mut c = self.client().await?;
        c.delete_switch(DeleteRequest {
            name: name.into(),
            options: Some(WriteOptions {
                if_exists: true,
                ..Default::default()
            }),
        })
        .await
        .map_err(|s| status(&format!("delete switch {name:?}"), &s))?;
        Ok(())
    }

    /// The ports of `switch`, as stored.
    pub async fn list_ports(&self, switch: &str) -> Result<Vec<LogicalSwitchPort>, PlugError> {
        let mut c = self.client().await?;
        let list = c
            .list_ports(ListPortsRequest {
                switch_name: switch.into(),
            })
            .await
            .map_err(|s| {
                self.failed(&s);
                status(&format!("list ports of {switch:?}"), &s)
            })?
            .into_inner();
        Ok(list.ports)
    }

    /// Creates port `port` as given (static addresses, external_ids); fails if it exists.
    pub async fn create_port(
        &self,
        port: LogicalSwitchPort,
    ) -> Result<LogicalSwitchPort, PlugError> {
        let name = port.name.clone();
        let mut c = self.client().await?;
        let reply = c
            .create_port(CreatePortRequest {
                port: Some(port),
                options: None,
            })
            .await
            .map_err(|s| {
                self.failed(&s);
                status(&format!("create port {name:?}"), &s)
            })?
            .into_inner();
        reply.port.ok_or_else(|| {
            PlugError::Controller(format!("create port {name:?}: reply without the port"))
        })
    }

    /// The networks ("IP/LEN") of the router ports `switch` is attached to through its
    /// `router`-type ports (`options:router-port`), in port order.
    pub async fn router_networks(&self, switch: &str) -> Result<Vec<String>, PlugError> {
        let lrps: Vec<String> = self
            .list_ports(switch)
            .await?
            .into_iter()
            .filter(|p| p.r#type == "router")
            .filter_map(|p| p.options.get("router-port").cloned())
            .collect();
        if lrps.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.client().await?;
        let mut out = Vec::new();
        for lrp in lrps {
            let r = c
                .list_objects(ListObjectsRequest {
                    kind: "Logical_Router_Port".into(),
                    names: vec![lrp.clone()],
                })
                .await;
            let reply = match r {
                Ok(r) => r.into_inner(),
                Err(s) if s.code() == Code::NotFound => continue,
                Err(s) => {
                    self.failed(&s);
                    return Err(status(&format!("get router port {lrp:?}"), &s));
                }
            };
            for rec in reply.records {
                if let Some(object::Kind::LogicalRouterPort(p)) = rec.object.and_then(|o| o.kind) {
                    out.extend(p.networks);
                }
            }
        }
        Ok(out)
    }

    /// Whether chassis `name` is alive (its agent connected); false for an unknown one.
    pub async fn chassis_alive(&self, name: &str) -> Result<bool, PlugError> {
        let mut c = self.client().await?;
        let list = c
            .list_chassis(ListChassisRequest {})
            .await
            .map_err(|s| status("list chassis", &s))?
            .into_inner();
        Ok(list.chassis.iter().any(|ch| ch.name == name && ch.alive))
    }

    /// Sets the addresses of port `name`.
    pub async fn set_port_addresses(
        &self,
        name: &str,
        addresses: Vec<String>,
    ) -> Result<LogicalSwitchPort, PlugError> {
        let mut c = self.client().await?;
        let reply = c
            .set_port_addresses(SetPortAddressesRequest {
                port: name.into(),
                addresses,
                options: None,
            })
            .await
            .map_err(|s| {
                self.failed(&s);
                status(&format!("set addresses of port {name:?}"), &s)
            })?
            .into_inner();
        reply.port.ok_or_else(|| {
            PlugError::Controller(format!("set addresses of {name:?}: reply without the port"))
        })
    }

    /// The ports of `switch`: (name, addresses and dynamic addresses).
    pub async fn port_addresses(
        &self,
        switch: &str,
    ) -> Result<Vec<(String, Vec<String>)>, PlugError> {
        let mut c = self.client().await?;
        let list = c
            .list_ports(ListPortsRequest {
                switch_name: switch.into(),
            })
            .await
            .map_err(|s| {
                self.failed(&s);
                status(&format!("list ports of {switch:?}"), &s)
            })?
            .into_inner();
        Ok(list
            .ports
            .into_iter()
            .map(|p| {
                let mut a = p.addresses;
                if !p.dynamic_addresses.is_empty() {
                    a.push(p.dynamic_addresses);
                }
                (p.name, a)
            })
            .collect())
    }

    /// Waits until port `name` is `up` on `chassis` (any chassis when None: the local agent
    /// installed its flows), then until every live chassis has applied the current revision
    /// (`Sync` with `--wait=hv`, which covers the binding), all within `timeout`.
    pub async fn wait_ready(
        &self,
        name: &str,
        chassis: Option<&str>,
        timeout: Duration,
    ) -> Result<(), PlugError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last: String;
        loop {
            match self.get_port(name).await {
                Ok(Some(p)) => {
                    let here = match chassis {
                        Some(c) => p.chassis == c,
                        None => !p.chassis.is_empty(),
                    };
                    if p.up && here {
                        break;
                    }
                    last = format!(
                        "up={} chassis={:?}{}",
                        p.up,
                        p.chassis,
                        if p.enabled { "" } else { " (disabled)" }
                    );
                }
                Ok(None) => last = "the port does not exist".into(),
                Err(e) => last = e.to_string(),
            }
            if tokio::time::Instant::now() + UP_POLL >= deadline {
                return Err(PlugError::Timeout(format!(
                    "logical port {name:?} not up on {} within {} ms (last seen: {last})",
                    chassis.unwrap_or("its chassis"),
                    timeout.as_millis()
                )));
            }
            tokio::time::sleep(UP_POLL).await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1);
        let mut c = self.client().await?;
        c.sync(SyncRequest {
            revision: 0,
            options: Some(WriteOptions {
                wait: WaitMode::WaitHv as i32,
                timeout_ms: ms,
                ..Default::default()
            }),
        })
        .await
        .map_err(|s| {
            self.failed(&s);
            if s.code() == Code::DeadlineExceeded {
                PlugError::Timeout(format!(
                    "logical port {name:?} is up here, but not every live chassis installed its flows within {} ms: {}",
                    timeout.as_millis(),
                    s.message()
                ))
            } else {
                status("sync --wait=hv", &s)
            }
        })?;
        Ok(())
    }

    /// Deletes port `name`; a missing port is not an error.
    pub async fn delete_port(&self, name: &str) -> Result<(), PlugError> {
        let mut c = self.client().await?;
        c.delete_port(DeleteRequest {
            name: name.into(),
            options: Some(WriteOptions {
                if_exists: true,
                ..Default::default()
            }),
        })
        .await
        .map_err(|s| status(&format!("delete port {name:?}"), &s))?;
        Ok(())
    }
}
