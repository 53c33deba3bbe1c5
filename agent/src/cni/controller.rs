//! The northbound calls CNI needs: read the switch, create (or find) the logical port,
//! delete it. Each call tries the configured controller endpoints in order.

use std::time::Duration;

use tonic::transport::Channel;
use tonic::Code;
use weft_proto::v1::northbound_client::NorthboundClient;
use weft_proto::v1::{
    CreatePortRequest, DeleteRequest, GetRequest, ListChassisRequest, LogicalSwitch, LogicalSwitchPort,
    WriteOptions,
};

use super::spec::CniError;

/// Northbound access to any of `endpoints`.
#[derive(Debug, Clone)]
pub struct Controller {
    endpoints: Vec<String>,
    timeout: Duration,
}

fn status(what: &str, s: &tonic::Status) -> CniError {
    CniError::Controller(format!("{what}: {:?}: {}", s.code(), s.message()))
}

impl Controller {
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Controller {
        Controller { endpoints, timeout }
    }

    async fn client(&self) -> Result<NorthboundClient<Channel>, CniError> {
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
                Ok(ch) => return Ok(NorthboundClient::new(ch)),
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
        match c.get_switch(GetRequest { name: name.into() }).await {
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
        match c.get_port(GetRequest { name: name.into() }).await {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(status(&format!("get port {name:?}"), &s)),
        }
    }

    /// Finds port `name` on `switch`, or creates it with a `dynamic` address. Returns the port
    /// and whether this call created it. A port of that name on another switch is an error.
    pub async fn ensure_port(
        &self,
        name: &str,
        switch: &str,
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
                addresses: vec!["dynamic".into()],
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
            .map_err(|s| status(&format!("create port {name:?} on {switch:?}"), &s))?
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
