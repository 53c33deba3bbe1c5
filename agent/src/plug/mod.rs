//! Plugging a container into Weft: the steps the CNI plugin ([`crate::cni`]) and the Docker
//! CNM driver ([`crate::cnm`]) share. A front end parses its runtime's request, then uses a
//! [`Plumber`] to ensure the logical port on the controller ([`controller`]), create the
//! veth ([`link`]: into the container's namespace for CNI, both ends here for Docker, which
//! moves the peer itself), create the OVS interface row with `external_ids:iface-id`
//! ([`ovs`]), wait until the port's flows are installed on every live chassis, and undo all
//! of it ([`Plumber::undo`]). [`netns`] checks a namespace path; [`gateway`] picks the
//! gateway a container is told about (the router port's address when the switch is attached
//! to a router, else the subnet's first address).

pub mod controller;
pub mod gateway;
pub mod link;
pub mod netns;
pub mod ovs;

use std::collections::BTreeMap;
use std::time::Duration;

use weft_ovsdb::DatapathType;
use weft_proto::v1::{LogicalSwitch, LogicalSwitchPort};

pub use controller::Controller;

/// A failed plumbing step; each front end turns it into its own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlugError {
    /// The controller refused or could not be reached.
    #[error("controller: {0}")]
    Controller(String),
    /// The logical switch does not exist.
    #[error(
        "logical switch {0:?} does not exist; create it with `weftctl ls-add {0} --subnet CIDR`"
    )]
    NoSwitch(String),
    /// `ip`, `ethtool` or OVSDB failed.
    #[error("datapath: {0}")]
    Datapath(String),
    /// The flows were not installed in time.
    #[error("not ready: {0}")]
    Timeout(String),
    /// A namespace path is not one a container may use.
    #[error("network namespace {path:?}: {reason}")]
    Netns { path: String, reason: String },
}

/// Where and how the plumbing happens on this host.
#[derive(Debug)]
pub struct Plumber {
    /// Northbound access.
    pub controller: Controller,
    /// OVSDB of the local Open vSwitch (`unix:PATH` / `tcp:IP:PORT`).
    pub ovsdb: String,
    /// The integration bridge.
    pub bridge: String,
    /// Netdev: tx checksum offload off on both veth ends.
    pub datapath: DatapathType,
    /// Namespace ovs-vswitchd runs in (host veth ends are created there); None: ours.
    pub host_netns: Option<String>,
    /// This host's chassis (waits are for the port up here); None: any chassis.
    pub chassis: Option<String>,
    /// How long [`Plumber::wait_ready`] waits.
    pub ready_timeout: Duration,
}

impl Plumber {
    /// The namespace host veth ends live in (None: ours).
    pub fn host_ns(&self) -> Option<&str> {
        self.host_netns.as_deref()
    }

    /// Whether veth ends need tx checksum offload off (userspace datapath).
    pub fn tx_offload_off(&self) -> bool {
        self.datapath == DatapathType::Netdev
    }

    /// Finds port `name` on `switch` or creates it with `addresses`; (port, created now).
    pub async fn ensure_port(
        &self,
        name: &str,
        switch: &str,
        addresses: Vec<String>,
    ) -> Result<(LogicalSwitchPort, bool), PlugError> {
        self.controller.ensure_port(name, switch, addresses).await
    }

    /// Creates the veth with its peer configured inside `side.netns` (CNI) and adds the host
    /// end `host` to the bridge with `ids`. Not undone on failure: call [`Plumber::undo`].
    pub async fn attach_into_netns(
        &self,
        host: &str,
        side: &link::ContainerSide<'_>,
        ids: &BTreeMap<String, String>,
    ) -> Result<(), PlugError> {
        link::create_veth(self.host_ns(), host, side).await?;
        self.add_vif(host, ids).await
    }

    /// Creates the veth `host`/`peer` with both ends here, the peer carrying `mac` and left
    /// down for the runtime to move into its sandbox (Docker), and adds `host` to the bridge
    /// with `ids`. Not undone on failure: call [`Plumber::undo`].
    pub async fn attach_pair(
        &self,
        host: &str,
        peer: &str,
        mac: &str,
        mtu: u32,
        ids: &BTreeMap<String, String>,
    ) -> Result<(), PlugError> {
        link::create_pair(self.host_ns(), host, peer, mac, mtu, self.tx_offload_off()).await?;
        self.add_vif(host, ids).await
    }

    async fn add_vif(&self, host: &str, ids: &BTreeMap<String, String>) -> Result<(), PlugError> {
        let client = ovs::connect(&self.ovsdb).await?;
        ovs::add_vif(&client, &self.bridge, host, ids).await
    }

    /// Waits until `port` is up here and every live chassis installed its flows.
    pub async fn wait_ready(&self, port: &str) -> Result<(), PlugError> {
        self.controller
            .wait_ready(port, self.chassis.as_deref(), self.ready_timeout)
            .await
    }

    /// The gateway to give a container on `ls` (see [`gateway`]).
    pub async fn gateway(
        &self,
        ls: &LogicalSwitch,
    ) -> Result<Option<std::net::Ipv4Addr>, PlugError> {
        let routers = self.controller.router_networks(&ls.name).await?;
        Ok(gateway::choose(&ls.subnet, &routers))
    }

    /// Undoes an attachment: the OVS row and veth of `host`, and the logical port `port`
    /// when `delete_port` (this attachment created it). Best effort; every step runs and
    /// the first failure is returned.
    pub async fn undo(&self, host: &str, port: &str, delete_port: bool) -> Result<(), PlugError> {
        let mut first = None;
        match ovs::connect(&self.ovsdb).await {
            Ok(c) => {
                if let Err(e) = ovs::del_vif(&c, host).await {
                    first.get_or_insert(e);
                }
            }
            Err(e) => {
                first.get_or_insert(e);
            }
        }
        if let Err(e) = link::delete_link(self.host_ns(), host).await {
            first.get_or_insert(e);
        }
        if delete_port {
            if let Err(e) = self.controller.delete_port(port).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
