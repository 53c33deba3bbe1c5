//! The Open_vSwitch schema operations the agent needs, each idempotent:
//!
//! - [`ensure_bridge`]: the integration bridge with its internal port, datapath type,
//!   `fail_mode`, OpenFlow versions and `other_config` (e.g. `disable-in-band=true`), linked
//!   from the root `Open_vSwitch` row; settings that drifted are put back.
//! - [`ensure_tunnel_ports`]: one flow-based tunnel port per enabled encap
//!   (`weft-geneve`, `weft-vxlan`, `weft-gre`), our ports for disabled encaps removed, and
//!   the ofports ovs-vswitchd assigned.
//! - [`watch_interfaces`]: a reconnecting monitor of the Interface table yielding **full
//!   snapshots** of the VIFs (interfaces with `external_ids:iface-id`, the OVN convention).
//!
//! Every row we create carries `external_ids:weft-owner=weft-agent` ([`OWNER_KEY`],
//! [`OWNER_VALUE`]); we only remove rows that carry it. Each ensure reads the current rows,
//! then writes the difference in one `transact` whose `wait` ops (timeout 0) fail if a row
//! we decided to create appeared meanwhile (or a unique index catches it); then it re-reads
//! and tries again, so concurrent runs never duplicate rows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::atom::{json_named_uuid, json_str_map, json_str_set, DataError, Row, RowExt, Uuid};
use crate::client::{Client, ClientError, MonitorMessage};
use crate::monitor::{MonitorRequest, Replica};
use crate::ops::{self, eq, selected_rows};
use crate::session::{Session, SessionConfig, SessionEvent};

/// The database name.
pub const DB: &str = "Open_vSwitch";
/// `external_ids` key marking rows this agent created.
pub const OWNER_KEY: &str = "weft-owner";
pub const OWNER_VALUE: &str = "weft-agent";

const MAX_ATTEMPTS: usize = 5;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VswitchError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("bridge {name:?} does not exist")]
    NoBridge { name: String },
    #[error("port {port:?} exists but is not on bridge {bridge:?}")]
    PortElsewhere { port: String, bridge: String },
    #[error("{what}: still conflicting with concurrent changes after {attempts} attempts")]
    Conflict { what: String, attempts: usize },
    #[error("no ofport for {ports:?} after {after:?}{}", if errors.is_empty() { String::new() } else { format!(" (errors: {errors})") })]
    OfportTimeout {
        ports: Vec<String>,
        after: Duration,
        errors: String,
    },
}

/// `Bridge.datapath_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatapathType {
    /// The kernel datapath (`system`).
    System,
    /// The userspace datapath (`netdev`).
    Netdev,
}

impl DatapathType {
    pub fn as_str(self) -> &'static str {
        match self {
            DatapathType::System => "system",
            DatapathType::Netdev => "netdev",
        }
    }
}

impl FromStr for DatapathType {
    type Err = VswitchError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(DatapathType::System),
            "netdev" => Ok(DatapathType::Netdev),
            _ => Err(VswitchError::Invalid {
                field: "datapath_type",
                value: s.into(),
                reason: "expected system or netdev",
            }),
        }
    }
}

/// `Bridge.fail_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    Secure,
    Standalone,
}

impl FailMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Secure => "secure",
            FailMode::Standalone => "standalone",
        }
    }
}

/// The integration bridge we want.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConfig {
    pub name: String,
    pub datapath_type: DatapathType,
    pub fail_mode: FailMode,
    /// `Bridge.protocols`, e.g. `OpenFlow15`.
    pub protocols: Vec<String>,
    /// Keys enforced in `Bridge.other_config` (other keys are left alone).
    pub other_config: BTreeMap<String, String>,
    /// Extra `external_ids` put on the rows we create (the owner key is always added).
    pub external_ids: BTreeMap<String, String>,
}

impl BridgeConfig {
    /// `fail_mode=secure`, OpenFlow 1.0 through 1.5, `other_config:disable-in-band=true`.
    pub fn new(name: &str, datapath_type: DatapathType) -> Self {
        BridgeConfig {
            name: name.to_string(),
            datapath_type,
            fail_mode: FailMode::Secure,
            protocols: [
                "OpenFlow10",
                "OpenFlow11",
                "OpenFlow12",
                "OpenFlow13",
                "OpenFlow14",
                "OpenFlow15",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            other_config: [("disable-in-band".to_string(), "true".to_string())].into(),
            external_ids: BTreeMap::new(),
        }
    }
}

/// What [`ensure_bridge`] found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeState {
    pub uuid: Uuid,
    /// The bridge did not exist and was created.
    pub created: bool,
    /// Columns that had drifted and were put back (e.g. `fail_mode`, `other_config`).
    pub fixed: Vec<String>,
}

fn validate_name(field: &'static str, name: &str) -> Result<(), VswitchError> {
    let bad = |reason| VswitchError::Invalid {
        field,
        value: name.into(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > 15 {
        return Err(bad("longer than 15 bytes (Linux interface name limit)"));
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(bad("contains '/', whitespace or control characters"));
    }
    Ok(())
}

fn owner_ids(extra: &BTreeMap<String, String>) -> Value {
    let mut m = extra.clone();
    m.insert(OWNER_KEY.into(), OWNER_VALUE.into());
    json_str_map(&m)
}

fn is_owned(row: &Row) -> bool {
    row.str_map_col("external_ids")
        .get(OWNER_KEY)
        .map(String::as_str)
        == Some(OWNER_VALUE)
}

fn uuid_of(row: &Row) -> Result<Uuid, VswitchError> {
    row.get("_uuid")
        .and_then(|d| d.uuids().into_iter().next())
        .ok_or_else(|| {
            VswitchError::Data(DataError::WrongType {
                column: "_uuid".into(),
                expected: "uuid",
                value: format!("{:?}", row.get("_uuid")),
            })
        })
}

/// Is this failure one that a re-read and retry resolves (a guard `wait` or a unique index)?
fn is_race(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Transact(t) if matches!(t.ovsdb_error(), Some("timed out") | Some("constraint violation"))
    )
}

/// Pure: the ops that create a port (+ interface) named `name` and add it to `bridge_ref`.
fn create_port_ops(
    name: &str,
    iface_row: Map<String, Value>,
    port_extra: Map<String, Value>,
    bridge_ref: Value,
    tag: &str,
) -> Vec<Value> {
    let iface_name = format!("iface_{tag}");
    let port_name = format!("port_{tag}");
    let mut port = ops::row([
        ("name", json!(name)),
        ("interfaces", json_named_uuid(&iface_name)),
    ]);
    port.extend(port_extra);
    vec![
        ops::wait(
            "Port",
            vec![eq("name", json!(name))],
            &["name"],
            "==",
            vec![],
            Some(0),
        ),
        ops::insert("Interface", iface_row, Some(&iface_name)),
        ops::insert("Port", port, Some(&port_name)),
        ops::mutate(
            "Bridge",
            vec![eq("_uuid", bridge_ref)],
            vec![ops::mutation(
                "ports",
                "insert",
                json_named_uuid(&port_name),
            )],
        ),
    ]
}

/// Pure: the transaction that brings the bridge to `cfg`, given what the server holds.
/// Returns the ops (empty when nothing needs doing) and the columns fixed.
fn plan_bridge(
    cfg: &BridgeConfig,
    root: Option<&Row>,
    bridge: Option<&Row>,
    port: Option<&Row>,
) -> Result<(Vec<Value>, Vec<String>), VswitchError> {
    let mut ops_out = Vec::new();
    let mut fixed = Vec::new();
    let ids = owner_ids(&cfg.external_ids);
    let bridge_ref;
    match bridge {
        None => {
            ops_out.push(ops::wait(
                "Bridge",
                vec![eq("name", json!(cfg.name))],
                &["name"],
                "==",
                vec![],
                Some(0),
            ));
            ops_out.push(ops::insert(
                "Interface",
                ops::row([
                    ("name", json!(cfg.name)),
                    ("type", json!("internal")),
                    ("external_ids", ids.clone()),
                ]),
                Some("br_iface"),
            ));
            ops_out.push(ops::insert(
                "Port",
                ops::row([
                    ("name", json!(cfg.name)),
                    ("interfaces", json_named_uuid("br_iface")),
                    ("external_ids", ids.clone()),
                ]),
                Some("br_port"),
            ));
            ops_out.push(ops::insert(
                "Bridge",
                ops::row([
                    ("name", json!(cfg.name)),
                    ("ports", json_named_uuid("br_port")),
                    ("datapath_type", json!(cfg.datapath_type.as_str())),
                    ("fail_mode", json!(cfg.fail_mode.as_str())),
                    ("protocols", json_str_set(cfg.protocols.iter().cloned())),
                    ("other_config", json_str_map(&cfg.other_config)),
                    ("external_ids", ids.clone()),
                ]),
                Some("bridge"),
            ));
            bridge_ref = json_named_uuid("bridge");
        }
        Some(b) => {
            let uuid = uuid_of(b)?;
            bridge_ref = uuid.to_json();
            let mut set = Map::new();
            if b.str_col("datapath_type") != Some(cfg.datapath_type.as_str()) {
                set.insert("datapath_type".into(), json!(cfg.datapath_type.as_str()));
                fixed.push("datapath_type".to_string());
            }
            if b.str_col("fail_mode") != Some(cfg.fail_mode.as_str()) {
                set.insert("fail_mode".into(), json!(cfg.fail_mode.as_str()));
                fixed.push("fail_mode".to_string());
            }
            let have: BTreeSet<String> = b.strings_col("protocols").into_iter().collect();
            let want: BTreeSet<String> = cfg.protocols.iter().cloned().collect();
            if have != want {
                set.insert("protocols".into(), json_str_set(want));
                fixed.push("protocols".to_string());
            }
            if !set.is_empty() {
                ops_out.push(ops::update(
                    "Bridge",
                    vec![eq("_uuid", uuid.to_json())],
                    set,
                ));
            }
            let oc = b.str_map_col("other_config");
            let drift: BTreeMap<String, String> = cfg
                .other_config
                .iter()
                .filter(|(k, v)| oc.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !drift.is_empty() {
                ops_out.push(ops::mutate(
                    "Bridge",
                    vec![eq("_uuid", uuid.to_json())],
                    vec![
                        ops::mutation(
                            "other_config",
                            "delete",
                            json_str_set(drift.keys().cloned()),
                        ),
                        ops::mutation("other_config", "insert", json_str_map(&drift)),
                    ],
                ));
                fixed.push("other_config".to_string());
            }
            let port_on_bridge = port
                .map(|p| uuid_of(p).map(|pu| b.uuids_col("ports").contains(&pu)))
                .transpose()?;
            match port_on_bridge {
                Some(true) => {}
                Some(false) => {
                    return Err(VswitchError::PortElsewhere {
                        port: cfg.name.clone(),
                        bridge: cfg.name.clone(),
                    })
                }
                None => {
                    ops_out.extend(create_port_ops(
                        &cfg.name,
                        ops::row([
                            ("name", json!(cfg.name)),
                            ("type", json!("internal")),
                            ("external_ids", ids.clone()),
                        ]),
                        ops::row([("external_ids", ids.clone())]),
                        uuid.to_json(),
                        "br",
                    ));
                    fixed.push("ports".to_string());
                }
            }
        }
    }
    match root {
        Some(r) => {
            let linked = match bridge {
                Some(b) => r.uuids_col("bridges").contains(&uuid_of(b)?),
                None => false,
            };
            if !linked {
                let root_uuid = uuid_of(r)?;
                ops_out.push(ops::mutate(
                    "Open_vSwitch",
                    vec![eq("_uuid", root_uuid.to_json())],
                    vec![ops::mutation("bridges", "insert", bridge_ref)],
                ));
                if bridge.is_some() {
                    fixed.push("Open_vSwitch.bridges".to_string());
                }
            }
        }
        None => {
            ops_out.push(ops::wait(
                "Open_vSwitch",
                vec![],
                &["_uuid"],
                "==",
                vec![],
                Some(0),
            ));
            ops_out.push(ops::insert(
                "Open_vSwitch",
                ops::row([("bridges", json!(["set", [bridge_ref]]))]),
                None,
            ));
            if bridge.is_some() {
                fixed.push("Open_vSwitch".to_string());
            }
        }
    }
    if !ops_out.is_empty() {
        ops_out.push(ops::comment(&format!(
            "weft-agent: ensure bridge {}",
            cfg.name
        )));
    }
    Ok((ops_out, fixed))
}

/// Creates the bridge (Bridge + internal Port + Interface, linked from `Open_vSwitch`, the
/// root row created too if the database is fresh) or fixes its settings. Doing nothing when
/// everything matches.
pub async fn ensure_bridge(
    client: &Client,
    cfg: &BridgeConfig,
) -> Result<BridgeState, VswitchError> {
    validate_name("bridge name", &cfg.name)?;
    for attempt in 1..=MAX_ATTEMPTS {
        let reads = client
            .transact(
                DB,
                vec![
                    ops::select("Open_vSwitch", vec![], Some(&["_uuid", "bridges"])),
                    ops::select("Bridge", vec![eq("name", json!(cfg.name))], None),
                    ops::select(
                        "Port",
                        vec![eq("name", json!(cfg.name))],
                        Some(&["_uuid", "name"]),
                    ),
                ],
            )
            .await?;
        let roots = selected_rows(&reads[0])?;
        let bridges = selected_rows(&reads[1])?;
        let ports = selected_rows(&reads[2])?;
        let (ops_v, fixed) = plan_bridge(cfg, roots.first(), bridges.first(), ports.first())?;
        let existing = bridges.first().map(uuid_of).transpose()?;
        if ops_v.is_empty() {
            if let Some(uuid) = existing {
                return Ok(BridgeState {
                    uuid,
                    created: false,
                    fixed,
                });
            }
        }
        let n_ops = ops_v.len();
        match client.transact(DB, ops_v).await {
            Ok(results) => {
                let created = existing.is_none();
                let uuid = match existing {
                    Some(u) => u,
                    None => results.get(3).and_then(ops::inserted_uuid).ok_or_else(|| {
                        ClientError::BadReply {
                            method: "transact".into(),
                            value: format!("no bridge uuid in {n_ops} results"),
                        }
                    })?,
                };
                if created {
                    info!(bridge = %cfg.name, %uuid, "created bridge");
                } else if !fixed.is_empty() {
                    info!(bridge = %cfg.name, ?fixed, "fixed bridge settings");
                }
                return Ok(BridgeState {
                    uuid,
                    created,
                    fixed,
                });
            }
            Err(e) if is_race(&e) => {
                debug!(bridge = %cfg.name, attempt, error = %e, "ensure_bridge raced; retrying");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(VswitchError::Conflict {
        what: format!("ensure bridge {}", cfg.name),
        attempts: MAX_ATTEMPTS,
    })
}

/// A tunnel encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Encap {
    Geneve,
    Vxlan,
    Gre,
}

impl Encap {
    pub const ALL: [Encap; 3] = [Encap::Geneve, Encap::Vxlan, Encap::Gre];

    /// The Interface `type`.
    pub fn ovs_type(self) -> &'static str {
        match self {
            Encap::Geneve => "geneve",
            Encap::Vxlan => "vxlan",
            Encap::Gre => "gre",
        }
    }

    /// Our port name for this encap.
    pub fn port_name(self) -> &'static str {
        match self {
            Encap::Geneve => "weft-geneve",
            Encap::Vxlan => "weft-vxlan",
            Encap::Gre => "weft-gre",
        }
    }

    /// The IANA UDP port, set explicitly as `options:dst_port` (none for GRE).
    pub fn default_dst_port(self) -> Option<u16> {
        match self {
            Encap::Geneve => Some(6081),
            Encap::Vxlan => Some(4789),
            Encap::Gre => None,
        }
    }
}

impl fmt::Display for Encap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ovs_type())
    }
}

impl FromStr for Encap {
    type Err = VswitchError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "geneve" => Ok(Encap::Geneve),
            "vxlan" => Ok(Encap::Vxlan),
            "gre" => Ok(Encap::Gre),
            _ => Err(VswitchError::Invalid {
                field: "encap",
                value: s.into(),
                reason: "expected geneve, vxlan or gre",
            }),
        }
    }
}

/// The tunnel ports we want.
#[derive(Debug, Clone, PartialEq)]
pub struct TunnelConfig {
    pub bridge: String,
    /// Enabled encaps; our ports for the others are removed.
    pub encaps: Vec<Encap>,
    /// `options:local_ip`; `None` lets OVS pick the source by route.
    pub local_ip: Option<IpAddr>,
    /// How long to wait for ovs-vswitchd to assign ofports.
    pub ofport_timeout: Duration,
}

impl TunnelConfig {
    pub fn new(bridge: &str, encaps: &[Encap]) -> Self {
        TunnelConfig {
            bridge: bridge.to_string(),
            encaps: encaps.to_vec(),
            local_ip: None,
            ofport_timeout: Duration::from_secs(10),
        }
    }

    /// Pure: the `options` map for one encap.
    pub fn options(&self, encap: Encap) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("remote_ip".to_string(), "flow".to_string());
        m.insert("key".to_string(), "flow".to_string());
        if let Some(p) = encap.default_dst_port() {
            m.insert("dst_port".to_string(), p.to_string());
        }
        if let Some(ip) = self.local_ip {
            m.insert("local_ip".to_string(), ip.to_string());
        }
        m
    }
}

/// Pure: ops bringing our tunnel ports to `cfg` given the bridge row and, per encap, the
/// Port and Interface rows with that name.
fn plan_tunnels(
    cfg: &TunnelConfig,
    bridge: &Row,
    ports: &BTreeMap<Encap, Row>,
    ifaces: &BTreeMap<Encap, Row>,
) -> Result<Vec<Value>, VswitchError> {
    let buuid = uuid_of(bridge)?;
    let on_bridge = bridge.uuids_col("ports");
    let mut out = Vec::new();
    for encap in Encap::ALL {
        let name = encap.port_name();
        let enabled = cfg.encaps.contains(&encap);
        let port = ports.get(&encap);
        match (enabled, port) {
            (true, None) => {
                let ids = owner_ids(&BTreeMap::new());
                out.extend(create_port_ops(
                    name,
                    ops::row([
                        ("name", json!(name)),
                        ("type", json!(encap.ovs_type())),
                        ("options", json_str_map(&cfg.options(encap))),
                        ("external_ids", ids.clone()),
                    ]),
                    ops::row([("external_ids", ids)]),
                    buuid.to_json(),
                    encap.ovs_type(),
                ));
            }
            (true, Some(p)) => {
                if !on_bridge.contains(&uuid_of(p)?) {
                    return Err(VswitchError::PortElsewhere {
                        port: name.into(),
                        bridge: cfg.bridge.clone(),
                    });
                }
                if let Some(i) = ifaces.get(&encap) {
                    let mut set = Map::new();
                    if i.str_col("type") != Some(encap.ovs_type()) {
                        set.insert("type".into(), json!(encap.ovs_type()));
                    }
                    let want = cfg.options(encap);
                    if i.str_map_col("options") != want {
                        set.insert("options".into(), json_str_map(&want));
                    }
                    if !set.is_empty() {
                        out.push(ops::update(
                            "Interface",
                            vec![eq("_uuid", uuid_of(i)?.to_json())],
                            set,
                        ));
                    }
                }
            }
            (false, Some(p)) => {
                let pu = uuid_of(p)?;
                if is_owned(p) && on_bridge.contains(&pu) {
                    // Port and Interface are not root tables: unreferenced, they are removed.
                    out.push(ops::mutate(
                        "Bridge",
                        vec![eq("_uuid", buuid.to_json())],
                        vec![ops::mutation("ports", "delete", pu.to_json())],
                    ));
                }
            }
            (false, None) => {}
        }
    }
    if !out.is_empty() {
        out.push(ops::comment("weft-agent: ensure tunnel ports"));
    }
    Ok(out)
}

/// Ensures one flow-based tunnel port per enabled encap on `cfg.bridge`, removes our ports
/// for the other encaps, and waits until ovs-vswitchd has given each an ofport.
pub async fn ensure_tunnel_ports(
    client: &Client,
    cfg: &TunnelConfig,
) -> Result<BTreeMap<Encap, u32>, VswitchError> {
    validate_name("bridge name", &cfg.bridge)?;
    let mut done = false;
    for attempt in 1..=MAX_ATTEMPTS {
        let mut reads = vec![ops::select(
            "Bridge",
            vec![eq("name", json!(cfg.bridge))],
            Some(&["_uuid", "ports"]),
        )];
        for e in Encap::ALL {
            reads.push(ops::select(
                "Port",
                vec![eq("name", json!(e.port_name()))],
                Some(&["_uuid", "name", "external_ids"]),
            ));
            reads.push(ops::select(
                "Interface",
                vec![eq("name", json!(e.port_name()))],
                Some(&["_uuid", "name", "type", "options"]),
            ));
        }
        let res = client.transact(DB, reads).await?;
        let bridge =
            selected_rows(&res[0])?
                .into_iter()
                .next()
                .ok_or_else(|| VswitchError::NoBridge {
                    name: cfg.bridge.clone(),
                })?;
        let mut ports = BTreeMap::new();
        let mut ifaces = BTreeMap::new();
        for (i, e) in Encap::ALL.into_iter().enumerate() {
            if let Some(p) = selected_rows(&res[1 + 2 * i])?.into_iter().next() {
                ports.insert(e, p);
            }
            if let Some(r) = selected_rows(&res[2 + 2 * i])?.into_iter().next() {
                ifaces.insert(e, r);
            }
        }
        let plan = plan_tunnels(cfg, &bridge, &ports, &ifaces)?;
        if plan.is_empty() {
            done = true;
            break;
        }
        match client.transact(DB, plan).await {
            Ok(_) => {
                info!(bridge = %cfg.bridge, encaps = ?cfg.encaps, "tunnel ports updated");
                done = true;
                break;
            }
            Err(e) if is_race(&e) => {
                debug!(attempt, error = %e, "ensure_tunnel_ports raced; retrying");
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !done {
        return Err(VswitchError::Conflict {
            what: format!("ensure tunnel ports on {}", cfg.bridge),
            attempts: MAX_ATTEMPTS,
        });
    }
    let names: Vec<&str> = cfg.encaps.iter().map(|e| e.port_name()).collect();
    let found = wait_ofports(client, &names, cfg.ofport_timeout).await?;
    Ok(cfg
        .encaps
        .iter()
        .filter_map(|e| found.get(e.port_name()).map(|p| (*e, *p)))
        .collect())
}

/// Waits (through a temporary monitor on Interface) until every named interface has an
/// ofport ≥ 1. Returns name → ofport.
pub async fn wait_ofports(
    client: &Client,
    names: &[&str],
    timeout: Duration,
) -> Result<BTreeMap<String, u32>, VswitchError> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let schema = client.get_schema(DB).await?;
    let tables: BTreeMap<String, MonitorRequest> = [(
        "Interface".to_string(),
        MonitorRequest::columns(["name", "ofport", "error"]),
    )]
    .into();
    let mut mon = client.monitor(DB, &tables).await?;
    let mut replica = Replica::new(schema);
    replica
        .reset(mon.format, &mon.initial)
        .map_err(ClientError::from)?;
    let check = |r: &Replica| -> (BTreeMap<String, u32>, Vec<String>) {
        let mut got = BTreeMap::new();
        let mut errors = Vec::new();
        for row in r.table("Interface").into_iter().flat_map(|t| t.values()) {
            let Some(name) = row.str_col("name") else {
                continue;
            };
            if !names.contains(&name) {
                continue;
            }
            match row.i64_col("ofport").and_then(|p| u32::try_from(p).ok()) {
                Some(p) if p >= 1 => {
                    got.insert(name.to_string(), p);
                }
                _ => {
                    if let Some(e) = row.str_col("error") {
                        errors.push(format!("{name}: {e}"));
                    }
                }
            }
        }
        (got, errors)
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let result = loop {
        let (got, errors) = check(&replica);
        if got.len() == names.len() {
            break Ok(got);
        }
        match tokio::time::timeout_at(deadline, mon.updates.recv()).await {
            Ok(Some(MonitorMessage::Update(v))) => {
                if let Err(e) = replica.apply(mon.format, &v) {
                    break Err(ClientError::from(e).into());
                }
            }
            Ok(Some(MonitorMessage::Canceled)) | Ok(None) => {
                break Err(ClientError::Disconnected {
                    reason: "monitor ended while waiting for ofports".into(),
                }
                .into())
            }
            Err(_) => {
                break Err(VswitchError::OfportTimeout {
                    ports: names
                        .iter()
                        .filter(|n| !got.contains_key(**n))
                        .map(|n| n.to_string())
                        .collect(),
                    after: timeout,
                    errors: errors.join("; "),
                })
            }
        }
    };
    let _ = client.cancel(&mon.id).await;
    result
}

/// The `external_ids` of a bridge (the agent keeps its id allocations there).
pub async fn bridge_external_ids(
    client: &Client,
    bridge: &str,
) -> Result<BTreeMap<String, String>, VswitchError> {
    validate_name("bridge name", bridge)?;
    let res = client
        .transact(
            DB,
            vec![ops::select(
                "Bridge",
                vec![eq("name", json!(bridge))],
                Some(&["external_ids"]),
            )],
        )
        .await?;
    let row = selected_rows(&res[0])?
        .into_iter()
        .next()
        .ok_or_else(|| VswitchError::NoBridge {
            name: bridge.to_string(),
        })?;
    Ok(row.str_map_col("external_ids"))
}

/// Sets the keys in `set` and removes the keys in `remove` from a bridge's `external_ids`,
/// in one transaction (other keys are untouched).
pub async fn update_bridge_external_ids(
    client: &Client,
    bridge: &str,
    set: &BTreeMap<String, String>,
    remove: &BTreeSet<String>,
) -> Result<(), VswitchError> {
    validate_name("bridge name", bridge)?;
    if set.is_empty() && remove.is_empty() {
        return Ok(());
    }
    let gone: BTreeSet<&str> = remove
        .iter()
        .chain(set.keys())
        .map(String::as_str)
        .collect();
    let mut muts = vec![ops::mutation("external_ids", "delete", json_str_set(gone))];
    if !set.is_empty() {
        muts.push(ops::mutation("external_ids", "insert", json_str_map(set)));
    }
    let res = client
        .transact(
            DB,
            vec![
                ops::mutate("Bridge", vec![eq("name", json!(bridge))], muts),
                ops::comment("weft-agent: id allocations"),
            ],
        )
        .await?;
    if res
        .first()
        .and_then(|r| r.get("count"))
        .and_then(Value::as_u64)
        == Some(0)
    {
        return Err(VswitchError::NoBridge {
            name: bridge.to_string(),
        });
    }
    Ok(())
}

/// Ensures the patch port pair between `integration` and the provider bridge `provider`
/// (`patch-<int>-to-<prov>` on the first, `patch-<prov>-to-<int>` on the second, each
/// `external_ids:weft-owner=weft-agent` plus `weft-physnet=<physnet>`). The provider bridge
/// must exist (it is the operator's, as with OVN's bridge mappings). Returns true when it
/// created anything.
pub async fn ensure_patch_ports(
    client: &Client,
    integration: &str,
    provider: &str,
    physnet: &str,
) -> Result<bool, VswitchError> {
    validate_name("bridge name", integration)?;
    validate_name("bridge name", provider)?;
    let names = [
        (
            integration,
            format!("patch-{integration}-to-{provider}"),
            format!("patch-{provider}-to-{integration}"),
        ),
        (
            provider,
            format!("patch-{provider}-to-{integration}"),
            format!("patch-{integration}-to-{provider}"),
        ),
    ];
    let mut reads = Vec::new();
    for (bridge, port, _) in &names {
        reads.push(ops::select(
            "Bridge",
            vec![eq("name", json!(bridge))],
            Some(&["_uuid"]),
        ));
        reads.push(ops::select(
            "Port",
            vec![eq("name", json!(port))],
            Some(&["_uuid"]),
        ));
    }
    let res = client.transact(DB, reads).await?;
    let mut plan = Vec::new();
    for (i, (bridge, port, peer)) in names.iter().enumerate() {
        let b = selected_rows(&res[2 * i])?
            .into_iter()
            .next()
            .ok_or_else(|| VswitchError::NoBridge {
                name: bridge.to_string(),
            })?;
        if selected_rows(&res[2 * i + 1])?.into_iter().next().is_some() {
            continue;
        }
        let extra: BTreeMap<String, String> =
            [("weft-physnet".to_string(), physnet.to_string())].into();
        let ids = owner_ids(&extra);
        let options: BTreeMap<String, String> = [("peer".to_string(), peer.clone())].into();
        plan.extend(create_port_ops(
            port,
            ops::row([
                ("name", json!(port)),
                ("type", json!("patch")),
                ("options", json_str_map(&options)),
                ("external_ids", ids.clone()),
            ]),
            ops::row([("external_ids", ids)]),
            uuid_of(&b)?.to_json(),
            &format!("patch{i}"),
        ));
    }
    if plan.is_empty() {
        return Ok(false);
    }
    plan.push(ops::comment("weft-agent: bridge mapping patch ports"));
    client.transact(DB, plan).await?;
    info!(%integration, %provider, %physnet, "patch ports created");
    Ok(true)
}

/// A VIF: an interface that names a logical port in `external_ids:iface-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vif {
    /// Interface name.
    pub name: String,
    pub uuid: Uuid,
    /// `external_ids:iface-id`, the logical port name.
    pub iface_id: String,
    /// `None` until ovs-vswitchd assigned one (or if it failed: see `error`).
    pub ofport: Option<u32>,
    pub mac_in_use: Option<String>,
    /// `external_ids:attached-mac`, if set.
    pub attached_mac: Option<String>,
    pub error: Option<String>,
    pub external_ids: BTreeMap<String, String>,
}

/// Pure: the VIFs among Interface rows, keyed by interface name; also the bridge-mapping
/// patch ports (`external_ids:weft-physnet`), with an empty `iface_id`, for their ofports.
pub fn vifs_from_rows<'a, I: IntoIterator<Item = (&'a Uuid, &'a Row)>>(
    rows: I,
) -> BTreeMap<String, Vif> {
    let mut out = BTreeMap::new();
    for (uuid, row) in rows {
        let ext = row.str_map_col("external_ids");
        let iface_id = match ext.get("iface-id").filter(|s| !s.is_empty()) {
            Some(id) => id.clone(),
            None if ext.contains_key("weft-physnet") => String::new(),
            None => continue,
        };
        let Some(name) = row.str_col("name") else {
            continue;
        };
        out.insert(
            name.to_string(),
            Vif {
                name: name.to_string(),
                uuid: uuid.clone(),
                iface_id,
                ofport: row
                    .i64_col("ofport")
                    .filter(|p| *p >= 1)
                    .and_then(|p| u32::try_from(p).ok()),
                mac_in_use: row.str_col("mac_in_use").map(str::to_owned),
                attached_mac: ext.get("attached-mac").cloned(),
                error: row.str_col("error").map(str::to_owned),
                external_ids: ext,
            },
        );
    }
    out
}

/// What [`VifWatch::next`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum VifEvent {
    /// (Re)connected; a `Snapshot` with the server's current state follows.
    Connected,
    /// The complete current set of VIFs (interface name → VIF). Sent after every
    /// `Connected` and whenever the set or any VIF changes; never two equal in a row.
    Snapshot(Arc<BTreeMap<String, Vif>>),
    /// Lost the connection; the session is reconnecting. The last snapshot may be stale.
    Disconnected { reason: String },
}

/// A running Interface watch; dropping it stops the session.
pub struct VifWatch {
    session: Session,
    rx: mpsc::UnboundedReceiver<VifEvent>,
    task: JoinHandle<()>,
}

impl Drop for VifWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl VifWatch {
    /// The next event; `None` only if the session task ended.
    pub async fn next(&mut self) -> Option<VifEvent> {
        self.rx.recv().await
    }

    /// The session (for its current [`Client`], or other monitored tables).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The VIFs as the replica holds them now.
    pub fn current(&self) -> BTreeMap<String, Vif> {
        self.session.with_replica(|r| {
            r.table("Interface")
                .map(|t| vifs_from_rows(t.iter()))
                .unwrap_or_default()
        })
    }
}

/// Starts a reconnecting session on `base` (its endpoint, backoff, client settings, and any
/// extra monitored tables) that also monitors Interface, and turns it into [`VifEvent`]s:
/// full snapshots, documented on [`VifEvent::Snapshot`].
pub fn watch_interfaces(base: SessionConfig) -> VifWatch {
    let cfg = base.monitor(
        "Interface",
        MonitorRequest::columns(["name", "ofport", "external_ids", "mac_in_use", "error"]),
    );
    let (session, mut events) = Session::start(cfg);
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = session.replica_reader();
    let snapshot_src = move || {
        reader.with(|r| {
            r.table("Interface")
                .map(|t| vifs_from_rows(t.iter()))
                .unwrap_or_default()
        })
    };
    let task = tokio::spawn(async move {
        let mut last: Option<Arc<BTreeMap<String, Vif>>> = None;
        let mut force = false;
        while let Some(ev) = events.recv().await {
            match ev {
                SessionEvent::Connected => {
                    force = true;
                    if tx.send(VifEvent::Connected).is_err() {
                        return;
                    }
                }
                SessionEvent::Disconnected { reason } => {
                    if tx.send(VifEvent::Disconnected { reason }).is_err() {
                        return;
                    }
                    continue;
                }
                SessionEvent::Changes(ch) => {
                    if !force && !ch.iter().any(|c| c.table == "Interface") {
                        continue;
                    }
                }
            }
            // After Connected, the replica already holds the fresh state (the resync
            // Changes, if any, only repeat it), so a snapshot can be taken right away.
            let snap = Arc::new(snapshot_src());
            if force || last.as_deref() != Some(&*snap) {
                force = false;
                last = Some(snap.clone());
                if tx.send(VifEvent::Snapshot(snap)).is_err() {
                    return;
                }
            }
        }
    });
    VifWatch { session, rx, task }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atom::row_from_json;

    const BU: &str = "11111111-1111-1111-1111-111111111111";
    const RU: &str = "22222222-2222-2222-2222-222222222222";
    const PU: &str = "33333333-3333-3333-3333-333333333333";

    fn row(v: Value) -> Row {
        row_from_json(&v).expect("row")
    }

    fn good_bridge() -> Row {
        row(json!({
            "_uuid": ["uuid", BU], "name": "br-int", "datapath_type": "netdev",
            "fail_mode": "secure",
            "protocols": ["set", ["OpenFlow10","OpenFlow11","OpenFlow12","OpenFlow13","OpenFlow14","OpenFlow15"]],
            "other_config": ["map", [["disable-in-band", "true"], ["other", "x"]]],
            "ports": ["set", [["uuid", PU]]]
        }))
    }

    fn cfg() -> BridgeConfig {
        BridgeConfig::new("br-int", DatapathType::Netdev)
    }

    #[test]
    fn plan_creates_everything_on_fresh_db() {
        let (ops_v, fixed) = plan_bridge(&cfg(), None, None, None).expect("plan");
        assert!(fixed.is_empty());
        let kinds: Vec<String> = ops_v
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o["op"].as_str().unwrap_or(""),
                    o["table"].as_str().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "wait Bridge",
                "insert Interface",
                "insert Port",
                "insert Bridge",
                "wait Open_vSwitch",
                "insert Open_vSwitch",
                "comment ",
            ]
        );
        let bridge = &ops_v[3]["row"];
        assert_eq!(bridge["fail_mode"], json!("secure"));
        assert_eq!(bridge["datapath_type"], json!("netdev"));
        assert_eq!(
            bridge["other_config"],
            json!(["map", [["disable-in-band", "true"]]])
        );
        assert_eq!(
            bridge["external_ids"],
            json!(["map", [["weft-owner", "weft-agent"]]])
        );
        assert!(bridge["protocols"][1]
            .as_array()
            .is_some_and(|p| p.contains(&json!("OpenFlow15"))));
        assert_eq!(ops_v[1]["row"]["type"], json!("internal"));
    }

    #[test]
    fn plan_links_into_existing_root() {
        let root = row(json!({"_uuid": ["uuid", RU], "bridges": ["set", []]}));
        let (ops_v, _) = plan_bridge(&cfg(), Some(&root), None, None).expect("plan");
        let last = &ops_v[ops_v.len() - 2];
        assert_eq!(last["op"], json!("mutate"));
        assert_eq!(
            last["mutations"],
            json!([["bridges", "insert", ["named-uuid", "bridge"]]])
        );
    }

    #[test]
    fn plan_is_empty_when_in_sync() {
        let root = row(json!({"_uuid": ["uuid", RU], "bridges": ["uuid", BU]}));
        let port = row(json!({"_uuid": ["uuid", PU], "name": "br-int"}));
        let (ops_v, fixed) =
            plan_bridge(&cfg(), Some(&root), Some(&good_bridge()), Some(&port)).expect("plan");
        assert!(ops_v.is_empty(), "{ops_v:?}");
        assert!(fixed.is_empty());
    }

    #[test]
    fn plan_fixes_drift_only() {
        let root = row(json!({"_uuid": ["uuid", RU], "bridges": ["uuid", BU]}));
        let port = row(json!({"_uuid": ["uuid", PU], "name": "br-int"}));
        let mut b = good_bridge();
        b.insert("fail_mode".into(), crate::atom::Datum::Set(vec![]));
        b.insert(
            "other_config".into(),
            crate::atom::Datum::from_json(&json!([
                "map",
                [["disable-in-band", "false"], ["other", "x"]]
            ]))
            .expect("d"),
        );
        let (ops_v, fixed) = plan_bridge(&cfg(), Some(&root), Some(&b), Some(&port)).expect("plan");
        assert_eq!(fixed, vec!["fail_mode", "other_config"]);
        assert_eq!(ops_v[0]["op"], json!("update"));
        assert_eq!(ops_v[0]["row"], json!({"fail_mode": "secure"}));
        assert_eq!(
            ops_v[1]["mutations"],
            json!([
                ["other_config", "delete", ["set", ["disable-in-band"]]],
                [
                    "other_config",
                    "insert",
                    ["map", [["disable-in-band", "true"]]]
                ]
            ])
        );
    }

    #[test]
    fn plan_tunnels_create_update_remove() {
        let bridge = row(json!({"_uuid": ["uuid", BU], "ports": ["set", [["uuid", PU]]]}));
        let cfg = TunnelConfig::new("br-int", &[Encap::Geneve, Encap::Vxlan]);
        let mut ports = BTreeMap::new();
        // Our GRE port exists and is no longer wanted; the VXLAN one exists with stale options.
        ports.insert(
            Encap::Gre,
            row(json!({"_uuid": ["uuid", PU], "name": "weft-gre",
                       "external_ids": ["map", [["weft-owner", "weft-agent"]]]})),
        );
        let vx = "44444444-4444-4444-4444-444444444444";
        let vxi = "55555555-5555-5555-5555-555555555555";
        let bridge = {
            let mut b = bridge;
            b.insert(
                "ports".into(),
                crate::atom::Datum::from_json(&json!(["set", [["uuid", PU], ["uuid", vx]]]))
                    .expect("d"),
            );
            b
        };
        ports.insert(
            Encap::Vxlan,
            row(json!({"_uuid": ["uuid", vx], "name": "weft-vxlan"})),
        );
        let mut ifaces = BTreeMap::new();
        ifaces.insert(
            Encap::Vxlan,
            row(
                json!({"_uuid": ["uuid", vxi], "name": "weft-vxlan", "type": "vxlan",
                       "options": ["map", [["remote_ip", "flow"]]]}),
            ),
        );
        let plan = plan_tunnels(&cfg, &bridge, &ports, &ifaces).expect("plan");
        let kinds: Vec<String> = plan
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o["op"].as_str().unwrap_or(""),
                    o["table"].as_str().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "wait Port",
                "insert Interface",
                "insert Port",
                "mutate Bridge",
                "update Interface",
                "mutate Bridge",
                "comment "
            ]
        );
        assert_eq!(
            plan[1]["row"]["options"],
            json!([
                "map",
                [["dst_port", "6081"], ["key", "flow"], ["remote_ip", "flow"]]
            ])
        );
        assert_eq!(
            plan[5]["mutations"],
            json!([["ports", "delete", ["uuid", PU]]])
        );
    }

    #[test]
    fn plan_tunnels_leaves_foreign_ports() {
        let bridge = row(json!({"_uuid": ["uuid", BU], "ports": ["set", [["uuid", PU]]]}));
        let cfg = TunnelConfig::new("br-int", &[]);
        let mut ports = BTreeMap::new();
        ports.insert(
            Encap::Gre,
            row(json!({"_uuid": ["uuid", PU], "name": "weft-gre"})),
        );
        let plan = plan_tunnels(&cfg, &bridge, &ports, &BTreeMap::new()).expect("plan");
        assert!(plan.is_empty());
    }

    #[test]
    fn vifs_need_iface_id() {
        let u1 = Uuid::parse(BU).expect("u");
        let u2 = Uuid::parse(RU).expect("u");
        let r1 = row(json!({"name": "tap1", "ofport": 5,
                            "external_ids": ["map", [["iface-id", "lp1"], ["attached-mac", "02:00:00:00:00:01"]]]}));
        let r2 = row(json!({"name": "weft-vxlan", "ofport": 2}));
        let r3 = row(
            json!({"name": "tap3", "ofport": -1, "error": "could not open",
                            "external_ids": ["map", [["iface-id", "lp3"]]]}),
        );
        let u3 = Uuid::parse(PU).expect("u");
        let vifs = vifs_from_rows([(&u1, &r1), (&u2, &r2), (&u3, &r3)]);
        assert_eq!(vifs.len(), 2);
        assert_eq!(vifs["tap1"].iface_id, "lp1");
        assert_eq!(vifs["tap1"].ofport, Some(5));
        assert_eq!(
            vifs["tap1"].attached_mac.as_deref(),
            Some("02:00:00:00:00:01")
        );
        assert_eq!(vifs["tap3"].ofport, None);
        assert_eq!(vifs["tap3"].error.as_deref(), Some("could not open"));
    }

    #[test]
    fn names_validated() {
        assert!(validate_name("bridge name", "br-int").is_ok());
        for bad in ["", "a/b", "a b", "this-name-is-too-long"] {
            assert!(validate_name("bridge name", bad).is_err(), "{bad}");
        }
        assert!("ipip".parse::<Encap>().is_err());
        assert_eq!("gre".parse::<Encap>().ok(), Some(Encap::Gre));
        assert!("dpdk".parse::<DatapathType>().is_err());
    }
}
