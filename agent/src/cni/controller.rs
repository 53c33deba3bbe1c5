//! The northbound calls CNI needs: read the switch, create (or find) the logical port, give
//! it a static address, delete it, and wait until its flows are in everywhere (`up`, then
//! `Sync` with `--wait=hv`). Each call tries the configured controller endpoints in order;
//! the connection is kept and shared by concurrent requests (dropped when it fails).

use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::Channel;
use tonic::Code;
use weft_proto::v1::northbound_client::NorthboundClient;
use weft_proto::v1::{
    CreatePortRequest, DeleteRequest, GetRequest, ListChassisRequest, ListPortsRequest,
    LogicalSwitch, LogicalSwitchPort, SetPortAddressesRequest, SyncRequest, WaitMode, WriteOptions,
};

use super::spec::CniError;

/// Northbound access to any of `endpoints`.
#[derive(Debug)]
pub struct Controller {
    endpoints: Vec<String>,
    timeout: Duration,
    channel: Mutex<Option<Channel>>,
}

fn status(what: &str, s: &tonic::Status) -> CniError {
    CniError::Controller(format!("{what}: {:?}: {}", s.code(), s.message()))
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

    async fn client(&self) -> Result<NorthboundClient<Channel>, CniError> {
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
        Err(CniError::Controller(format!(
            "no controller reachable ({})",
            if errors.is_empty() {
                "no endpoint configured".to_string()
            } else {
                errors.join("; ")
            }
        )))
    }

    /// The switch `name`.
    pub async fn get_switch(&self, name: &str) -> Result<LogicalSwitch, CniError> {
        let mut c = self.client().await?;
        let r = c.get_switch(GetRequest { name: name.into() }).await;
        if let Err(s) = &r {
            self.failed(s);
        }
        match r {
            Ok(r) => Ok(r.into_inner()),
            Err(s) if s.code() == Code::NotFound => Err(CniError::Controller(format!(
                "logical switch {name:?} (network config field \"switch\") does not exist; create it with `weftctl ls-add {name} --subnet CIDR`"
            ))),
            Err(s) => Err(status(&format!("get switch {name:?}"), &s)),
        }
    }

    /// The port `name`, None if it does not exist.
    pub async fn get_port(&self, name: &str) -> Result<Option<LogicalSwitchPort>, CniError> {
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
    ) -> Result<(LogicalSwitchPort, bool), CniError> {
        if let Some(p) = self.get_port(name).await? {
            if p.switch_name != switch {
                return Err(CniError::Controller(format!(
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
            CniError::Controller(format!("create port {name:?}: reply without the port"))
        })?;
        Ok((port, true))
    }

    /// Whether chassis `name` is alive (its agent connected); false for an unknown one.
    pub async fn chassis_alive(&self, name: &str) -> Result<bool, CniError> {
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
    ) -> Result<LogicalSwitchPort, CniError> {
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
            CniError::Controller(format!("set addresses of {name:?}: reply without the port"))
        })
    }

    /// The ports of `switch`: (name, addresses and dynamic addresses).
    pub async fn port_addresses(
        &self,
        switch: &str,
    ) -> Result<Vec<(String, Vec<String>)>, CniError> {
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
    ) -> Result<(), CniError> {
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
                return Err(CniError::Timeout(format!(
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
                CniError::Timeout(format!(
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
    pub async fn delete_port(&self, name: &str) -> Result<(), CniError> {
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
