//! Serde mirrors of the northbound reply messages, for `-o json`. Pure: no I/O.
//!
//! Field names are the proto field names (snake_case); int64 revisions are JSON numbers.
//! Each `From` impl converts one generated prost message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weft_proto::v1 as pb;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    pub name: String,
    pub subnet: String,
    pub vni: u32,
    pub mtu: u32,
    pub other_config: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
    pub tunnel_key: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub name: String,
    pub switch_name: String,
    pub addresses: Vec<String>,
    pub port_security: Vec<String>,
    #[serde(rename = "type")]
    pub port_type: String,
    pub enabled: bool,
    pub dynamic_addresses: String,
    pub up: bool,
    pub chassis: String,
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
    pub tunnel_key: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chassis {
    pub name: String,
    pub encap_ip: String,
    pub encap_types: Vec<String>,
    pub datapath_type: String,
    pub version: String,
    pub applied_revision: i64,
    pub alive: bool,
    pub last_error: String,
    pub external_ids: BTreeMap<String, String>,
    /// Provider network → bridge (`--bridge-mappings`).
    #[serde(default)]
    pub bridge_mappings: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Router {
    pub name: String,
    pub enabled: bool,
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
    pub tunnel_key: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterPort {
    pub name: String,
    pub router: String,
    pub mac: String,
    pub networks: Vec<String>,
    pub peer: String,
    pub enabled: bool,
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
    pub tunnel_key: u32,
}

/// An `Object` (the proto oneof): `{"logical_switch": {...}}`, as proto3 JSON names the arm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Object {
    LogicalSwitch(Switch),
    LogicalSwitchPort(Port),
    Chassis(Chassis),
    LogicalRouter(Router),
    LogicalRouterPort(RouterPort),
    AddressSet(AddressSet),
    Acl(Acl),
    PortGroup(PortGroup),
    LoadBalancer(LoadBalancer),
    Meter(Meter),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meter {
    pub name: String,
    pub action: String,
    pub unit: String,
    pub rate: u32,
    pub burst: u32,
    pub fair: bool,
    pub external_ids: BTreeMap<String, String>,
}

impl From<&pb::Meter> for Meter {
    fn from(m: &pb::Meter) -> Self {
        Meter {
            name: m.name.clone(),
            action: m.action.clone(),
            unit: m.unit.clone(),
            rate: m.rate,
            burst: m.burst,
            fair: m.fair,
            external_ids: sorted(&m.external_ids),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub name: String,
    pub vips: BTreeMap<String, String>,
    pub protocol: String,
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
    /// VIP → health check settings.
    #[serde(default)]
    pub health_check: BTreeMap<String, String>,
    /// "VIP BACKEND" → online / offline (reported by the agents).
    #[serde(default)]
    pub status: BTreeMap<String, String>,
}

impl From<&pb::LoadBalancer> for LoadBalancer {
    fn from(l: &pb::LoadBalancer) -> Self {
        LoadBalancer {
            name: l.name.clone(),
            vips: sorted(&l.vips),
            protocol: l.protocol.clone(),
            options: sorted(&l.options),
            external_ids: sorted(&l.external_ids),
            health_check: sorted(&l.health_check),
            status: sorted(&l.status),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub key: String,
    pub switch: String,
    pub port_group: String,
    pub direction: String,
    pub priority: u32,
    pub r#match: String,
    pub action: String,
    pub log: bool,
    pub name: String,
    pub severity: String,
    pub meter: String,
    pub label: u32,
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

impl From<&pb::Acl> for Acl {
    fn from(a: &pb::Acl) -> Self {
        Acl {
            key: a.key.clone(),
            switch: a.switch.clone(),
            port_group: a.port_group.clone(),
            direction: a.direction.clone(),
            priority: a.priority,
            r#match: a.r#match.clone(),
            action: a.action.clone(),
            log: a.log,
            name: a.name.clone(),
            severity: a.severity.clone(),
            meter: a.meter.clone(),
            label: a.label,
            options: sorted(&a.options),
            external_ids: sorted(&a.external_ids),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortGroup {
    pub name: String,
    pub ports: Vec<String>,
    pub external_ids: BTreeMap<String, String>,
}

impl From<&pb::PortGroup> for PortGroup {
    fn from(g: &pb::PortGroup) -> Self {
        PortGroup {
            name: g.name.clone(),
            ports: g.ports.clone(),
            external_ids: sorted(&g.external_ids),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressSet {
    pub name: String,
    pub addresses: Vec<String>,
    pub external_ids: BTreeMap<String, String>,
}

impl From<&pb::AddressSet> for AddressSet {
    fn from(a: &pb::AddressSet) -> Self {
        AddressSet {
            name: a.name.clone(),
            addresses: a.addresses.clone(),
            external_ids: sorted(&a.external_ids),
        }
    }
}

/// One OpResult of a Transact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpResult {
    pub object: Option<Object>,
    pub changed: bool,
}

/// The results of one command's ops in a Transact (writes without a dedicated reply shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactReply {
    pub revision: i64,
    pub results: Vec<OpResult>,
}

/// A `--dry-run` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunReply {
    pub revision: i64,
    pub changes: Vec<String>,
    pub results: Vec<OpResult>,
}

/// lr-list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRoutersReply {
    pub routers: Vec<Router>,
    pub revision: i64,
}

/// lrp-list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRouterPortsReply {
    pub ports: Vec<RouterPort>,
    pub revision: i64,
}

/// WriteReply (ls-del, lsp-del, sync).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReply {
    pub revision: i64,
}

/// SwitchReply (ls-add).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchReply {
    pub revision: i64,
    pub switch: Option<Switch>,
}

/// PortReply (lsp-add, lsp-set-addresses, lsp-set-port-security).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortReply {
    pub revision: i64,
    pub port: Option<Port>,
}

/// CreatePortsReply (lsp-add-batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePortsReply {
    pub revision: i64,
    pub ports: Vec<Port>,
}

/// ListSwitchesReply (ls-list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSwitchesReply {
    pub switches: Vec<Switch>,
    pub revision: i64,
}

/// ListPortsReply (lsp-list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPortsReply {
    pub ports: Vec<Port>,
    pub revision: i64,
}

/// ListChassisReply (chassis-list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListChassisReply {
    pub chassis: Vec<Chassis>,
    pub revision: i64,
}

/// RouterReply-like shape for lr-add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterReply {
    pub revision: i64,
    pub router: Option<Router>,
}

/// RouterPortReply-like shape for lrp-add and lrp-set-*.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterPortReply {
    pub revision: i64,
    pub port: Option<RouterPort>,
}

/// One router with its ports (in `show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterDetail {
    pub router: Router,
    pub ports: Vec<RouterPort>,
}

/// One switch with its ports (in `show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchDetail {
    pub switch: Option<Switch>,
    pub ports: Vec<Port>,
}

/// ShowReply (show).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowReply {
    pub switches: Vec<SwitchDetail>,
    pub chassis: Vec<Chassis>,
    pub revision: i64,
}

impl From<&pb::LogicalSwitch> for Switch {
    fn from(s: &pb::LogicalSwitch) -> Self {
        Switch {
            name: s.name.clone(),
            subnet: s.subnet.clone(),
            vni: s.vni,
            mtu: s.mtu,
            other_config: sorted(&s.other_config),
            external_ids: sorted(&s.external_ids),
            tunnel_key: s.tunnel_key,
        }
    }
}

impl From<&pb::LogicalSwitchPort> for Port {
    fn from(p: &pb::LogicalSwitchPort) -> Self {
        Port {
            name: p.name.clone(),
            switch_name: p.switch_name.clone(),
            addresses: p.addresses.clone(),
            port_security: p.port_security.clone(),
            port_type: p.r#type.clone(),
            enabled: p.enabled,
            dynamic_addresses: p.dynamic_addresses.clone(),
            up: p.up,
            chassis: p.chassis.clone(),
            options: sorted(&p.options),
            external_ids: sorted(&p.external_ids),
            tunnel_key: p.tunnel_key,
        }
    }
}

impl From<&pb::Chassis> for Chassis {
    fn from(c: &pb::Chassis) -> Self {
        Chassis {
            name: c.name.clone(),
            encap_ip: c.encap_ip.clone(),
            encap_types: c.encap_types.clone(),
            datapath_type: c.datapath_type.clone(),
            version: c.version.clone(),
            applied_revision: c.applied_revision,
            alive: c.alive,
            last_error: c.last_error.clone(),
            external_ids: sorted(&c.external_ids),
            bridge_mappings: sorted(&c.bridge_mappings),
        }
    }
}

impl From<&pb::LogicalRouter> for Router {
    fn from(r: &pb::LogicalRouter) -> Self {
        Router {
            name: r.name.clone(),
            enabled: r.enabled,
            options: sorted(&r.options),
            external_ids: sorted(&r.external_ids),
            tunnel_key: r.tunnel_key,
        }
    }
}

impl From<&pb::LogicalRouterPort> for RouterPort {
    fn from(p: &pb::LogicalRouterPort) -> Self {
        RouterPort {
            name: p.name.clone(),
            router: p.router.clone(),
            mac: p.mac.clone(),
            networks: p.networks.clone(),
            peer: p.peer.clone(),
            enabled: p.enabled,
            options: sorted(&p.options),
            external_ids: sorted(&p.external_ids),
            tunnel_key: p.tunnel_key,
        }
    }
}

impl Object {
    /// The mirror of a proto `Object`; `None` when its oneof is unset.
    pub fn from_pb(o: &pb::Object) -> Option<Object> {
        use pb::object::Kind;
        Some(match o.kind.as_ref()? {
            Kind::LogicalSwitch(s) => Object::LogicalSwitch(s.into()),
            Kind::LogicalSwitchPort(p) => Object::LogicalSwitchPort(p.into()),
            Kind::Chassis(c) => Object::Chassis(c.into()),
            Kind::LogicalRouter(r) => Object::LogicalRouter(r.into()),
            Kind::LogicalRouterPort(p) => Object::LogicalRouterPort(p.into()),
            Kind::AddressSet(a) => Object::AddressSet(a.into()),
            Kind::Acl(a) => Object::Acl(a.into()),
            Kind::PortGroup(g) => Object::PortGroup(g.into()),
            Kind::LoadBalancer(l) => Object::LoadBalancer(l.into()),
            Kind::Meter(m) => Object::Meter(m.into()),
        })
    }
}

impl From<&pb::OpResult> for OpResult {
    fn from(r: &pb::OpResult) -> Self {
        OpResult {
            object: r.object.as_ref().and_then(Object::from_pb),
            changed: r.changed,
        }
    }
}

/// A proto map (a HashMap) as a sorted map.
fn sorted(m: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl From<&pb::WriteReply> for WriteReply {
    fn from(r: &pb::WriteReply) -> Self {
        WriteReply {
            revision: r.revision,
        }
    }
}

impl From<&pb::SwitchReply> for SwitchReply {
    fn from(r: &pb::SwitchReply) -> Self {
        SwitchReply {
            revision: r.revision,
            switch: r.switch.as_ref().map(Switch::from),
        }
    }
}

impl From<&pb::PortReply> for PortReply {
    fn from(r: &pb::PortReply) -> Self {
        PortReply {
            revision: r.revision,
            port: r.port.as_ref().map(Port::from),
        }
    }
}

impl From<&pb::ListSwitchesReply> for ListSwitchesReply {
    fn from(r: &pb::ListSwitchesReply) -> Self {
        ListSwitchesReply {
            switches: r.switches.iter().map(Switch::from).collect(),
            revision: r.revision,
        }
    }
}

impl From<&pb::ListPortsReply> for ListPortsReply {
    fn from(r: &pb::ListPortsReply) -> Self {
        ListPortsReply {
            ports: r.ports.iter().map(Port::from).collect(),
            revision: r.revision,
        }
    }
}

impl From<&pb::CreatePortsReply> for CreatePortsReply {
    fn from(r: &pb::CreatePortsReply) -> Self {
        CreatePortsReply {
            revision: r.revision,
            ports: r.ports.iter().map(Port::from).collect(),
        }
    }
}

impl From<&pb::ListChassisReply> for ListChassisReply {
    fn from(r: &pb::ListChassisReply) -> Self {
        ListChassisReply {
            chassis: r.chassis.iter().map(Chassis::from).collect(),
            revision: r.revision,
        }
    }
}

impl From<&pb::ShowReply> for ShowReply {
    fn from(r: &pb::ShowReply) -> Self {
        ShowReply {
            switches: r
                .switches
                .iter()
                .map(|d| SwitchDetail {
                    switch: d.switch.as_ref().map(Switch::from),
                    ports: d.ports.iter().map(Port::from).collect(),
                })
                .collect(),
            chassis: r.chassis.iter().map(Chassis::from).collect(),
            revision: r.revision,
        }
    }
}
