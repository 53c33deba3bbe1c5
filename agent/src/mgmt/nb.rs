//! The management port's northbound calls: read the switch, find or create the logical port
//! `mgmt-<chassis>` (`dynamic` address), and find the router port attached to the switch
//! (its IP is the host's gateway). Each call tries the `--controller` endpoints in order,
//! with the agent's transport (TLS and chassis certificate, or `--insecure`).

use std::time::Duration;

use ipnetwork::Ipv4Network;
use tonic::transport::Channel;
use tonic::Code;
use weft_proto::v1::northbound_client::NorthboundClient;
use weft_proto::v1::object::Kind as ObjectKind;
use weft_proto::v1::{
    CreatePortRequest, GetRequest, ListObjectsRequest, ListPortsRequest, LogicalSwitchPort,
    WriteOptions,
};

use super::{gateway_of, plan, port_address, HostPlan, MgmtConfig, MgmtError, DEFAULT_MTU};

/// Northbound access for the management port.
#[derive(Debug)]
pub struct Nb {
    endpoints: Vec<String>,
}

fn status(what: &str, s: &tonic::Status) -> MgmtError {
    MgmtError::Controller(format!("{what}: {:?}: {}", s.code(), s.message()))
}

impl Nb {
    pub fn new(endpoints: Vec<String>) -> Nb {
        Nb { endpoints }
    }

    async fn client(&self) -> Result<NorthboundClient<Channel>, MgmtError> {
        let mut errors = Vec::new();
        for url in &self.endpoints {
            let ep = match crate::southbound::secure_endpoint(url) {
                Ok(e) => e
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(10)),
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
        Err(MgmtError::Controller(format!(
            "no controller reachable ({})",
            errors.join("; ")
        )))
    }

    /// Reads (or creates) everything the host plan needs.
    pub async fn plan(&self, cfg: &MgmtConfig, lport: &str) -> Result<HostPlan, MgmtError> {
        let mut c = self.client().await?;
        let sw = match c
            .get_switch(GetRequest {
                name: cfg.switch.clone(),
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => {
                return Err(MgmtError::Switch {
                    switch: cfg.switch.clone(),
                    reason: format!(
                        "does not exist; create it with `weftctl ls-add {} --subnet CIDR`",
                        cfg.switch
                    ),
                })
            }
            Err(s) => return Err(status(&format!("get switch {:?}", cfg.switch), &s)),
        };
        let subnet: Ipv4Network = sw.subnet.parse().map_err(|_| MgmtError::Switch {
            switch: cfg.switch.clone(),
            reason: format!(
                "has no subnet ({:?}); the management port needs an address",
                sw.subnet
            ),
        })?;
        let port = self.ensure_port(&mut c, cfg, lport).await?;
        let (mac, ip) = port_address(lport, &port.addresses, &port.dynamic_addresses)?;
        let gateway = self.gateway(&mut c, &cfg.switch, subnet).await?;
        let mtu = if sw.mtu != 0 { sw.mtu } else { DEFAULT_MTU };
        plan(
            &cfg.switch,
            subnet,
            &mac,
            ip,
            mtu,
            gateway,
            &cfg.cluster_subnets,
        )
        .map_err(|e| match e {
            MgmtError::Port { reason, .. } => MgmtError::Port {
                port: lport.to_string(),
                reason,
            },
            e => e,
        })
    }

    /// The port `lport` on the management switch, created (dynamic address) if missing.
    async fn ensure_port(
        &self,
        c: &mut NorthboundClient<Channel>,
        cfg: &MgmtConfig,
        lport: &str,
    ) -> Result<LogicalSwitchPort, MgmtError> {
        match c.get_port(GetRequest { name: lport.into() }).await {
            Ok(p) => {
                let p = p.into_inner();
                if p.switch_name != cfg.switch {
                    return Err(MgmtError::Port {
                        port: lport.to_string(),
                        reason: format!(
                            "exists on switch {:?}, not on --mgmt-switch {:?}",
                            p.switch_name, cfg.switch
                        ),
                    });
                }
                return Ok(p);
            }
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(status(&format!("get port {lport:?}"), &s)),
        }
        let reply = c
            .create_port(CreatePortRequest {
                port: Some(LogicalSwitchPort {
                    name: lport.into(),
                    switch_name: cfg.switch.clone(),
                    addresses: vec!["dynamic".into()],
                    enabled: true,
                    external_ids: [("weft-mgmt".to_string(), "true".to_string())].into(),
                    ..Default::default()
                }),
                options: Some(WriteOptions {
                    may_exist: true,
                    ..Default::default()
                }),
            })
            .await
            .map_err(|s| status(&format!("create port {lport:?} on {:?}", cfg.switch), &s))?
            .into_inner();
        tracing::info!(port = %lport, switch = %cfg.switch, "management logical port created");
        reply.port.ok_or_else(|| MgmtError::Port {
            port: lport.to_string(),
            reason: "create reply without the port".into(),
        })
    }

    /// The IP of the router port attached to `switch` on its subnet, if any.
    async fn gateway(
        &self,
        c: &mut NorthboundClient<Channel>,
        switch: &str,
        subnet: Ipv4Network,
    ) -> Result<Option<std::net::Ipv4Addr>, MgmtError> {
        let ports = c
            .list_ports(ListPortsRequest {
                switch_name: switch.into(),
            })
            .await
            .map_err(|s| status(&format!("list ports of {switch:?}"), &s))?
            .into_inner()
            .ports;
        for p in ports.iter().filter(|p| p.r#type == "router" && p.enabled) {
            let Some(lrp) = p.options.get("router-port") else {
                continue;
            };
            let reply = match c
                .list_objects(ListObjectsRequest {
                    kind: "Logical_Router_Port".into(),
                    names: vec![lrp.clone()],
                })
                .await
            {
                Ok(r) => r.into_inner(),
                Err(s) if s.code() == Code::NotFound => continue,
                Err(s) => return Err(status(&format!("get router port {lrp:?}"), &s)),
            };
            for r in reply.records {
                if let Some(ObjectKind::LogicalRouterPort(rp)) = r.object.and_then(|o| o.kind) {
                    if let Some(gw) = gateway_of(&rp.networks, subnet) {
                        return Ok(Some(gw));
                    }
                }
            }
        }
        Ok(None)
    }
}
