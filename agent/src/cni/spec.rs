//! The pure half of Weft's CNI support: parsing what the runtime hands the plugin (the `CNI_*`
//! environment and the network configuration on stdin), the plugin ⇄ agent wire messages,
//! logical-port and interface naming, and building the CNI result JSON.
//!
//! No sockets, no processes: everything here is unit-tested below.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// CNI spec versions the plugin accepts in a network configuration and answers with.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The network configuration key (CNI 1.1.0) that lists the attachments GC must keep.
pub const VALID_ATTACHMENTS_KEY: &str = "cni.dev/valid-attachments";
/// The version used for errors when the configuration's own cannot be read.
pub const DEFAULT_VERSION: &str = "1.0.0";
/// Where the agent serves CNI requests unless `agentSocket` says otherwise.
pub const DEFAULT_AGENT_SOCKET: &str = "/var/run/weft/cni.sock";
/// Largest network configuration / wire message accepted.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// A CNI failure, with the spec's error codes (1-99 reserved by the spec, 100+ ours).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CniError {
    /// Code 1.
    #[error("incompatible CNI version {0:?} (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)")]
    IncompatibleVersion(String),
    /// Code 4.
    #[error("invalid environment variable {var}={value:?}: {reason}")]
    InvalidEnv {
        var: &'static str,
        value: String,
        reason: String,
    },
    /// Code 6.
    #[error("cannot decode the network configuration: {0}")]
    Decode(String),
    /// Code 7.
    #[error("invalid network configuration field {field:?} ({value}): {reason}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// Code 11: the agent is not there (yet); the runtime may retry.
    #[error("weft-agent unreachable at {socket}: {reason}")]
    AgentUnreachable { socket: String, reason: String },
    /// Code 11 as well: ADD plumbed the pod but its flows were not installed on every live
    /// chassis in time (undone; the runtime may retry).
    #[error("pod not ready: {0}")]
    Timeout(String),
    /// Code 50 (STATUS): the agent cannot serve ADD now.
    #[error("weft-agent not ready: {0}")]
    NotReady(String),
    /// Code 100: the controller refused or could not be reached.
    #[error("controller: {0}")]
    Controller(String),
    /// Code 101: plumbing the interface (ip, ethtool, OVSDB) failed.
    #[error("datapath: {0}")]
    Datapath(String),
    /// Code 102: CHECK found the attachment not as ADD left it.
    #[error("check failed: {0}")]
    CheckFailed(String),
    /// Code 103: the agent broke the wire protocol.
    #[error("bad reply from weft-agent: {0}")]
    Protocol(String),
    /// Code 104: the requested static address is held by another port.
    #[error("requested address in use: {0}")]
    AddressInUse(String),
}

impl CniError {
    /// The CNI error code.
    pub fn code(&self) -> u32 {
        match self {
            CniError::IncompatibleVersion(_) => 1,
            CniError::InvalidEnv { .. } => 4,
            CniError::Decode(_) => 6,
            CniError::InvalidConfig { .. } => 7,
            CniError::AgentUnreachable { .. } | CniError::Timeout(_) => 11,
            CniError::NotReady(_) => 50,
            CniError::Controller(_) => 100,
            CniError::Datapath(_) => 101,
            CniError::CheckFailed(_) => 102,
            CniError::Protocol(_) => 103,
            CniError::AddressInUse(_) => 104,
        }
    }

    fn env(var: &'static str, value: &str, reason: impl Into<String>) -> CniError {
        CniError::InvalidEnv {
            var,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn config(
        field: &'static str,
        value: &Value,
        reason: impl Into<String>,
    ) -> CniError {
        let mut v = value.to_string();
        if v.len() > 80 {
            v.truncate(80);
            v.push('…');
        }
        CniError::InvalidConfig {
            field,
            value: v,
            reason: reason.into(),
        }
    }
}

impl From<crate::plug::PlugError> for CniError {
    fn from(e: crate::plug::PlugError) -> CniError {
        use crate::plug::PlugError as P;
        match e {
            P::Controller(m) => CniError::Controller(m),
            P::NoSwitch(name) => CniError::Controller(format!(
                "logical switch {name:?} (network config field \"switch\") does not exist; create it with `weftctl ls-add {name} --subnet CIDR`"
            )),
            P::Datapath(m) => CniError::Datapath(m),
            P::Timeout(m) => CniError::Timeout(m),
            P::Netns { path, reason } => CniError::InvalidEnv {
                var: "CNI_NETNS",
                value: path,
                reason,
            },
        }
    }
}

/// The error JSON the plugin prints (`{"cniVersion","code","msg","details"}`) and the agent
/// sends back on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl From<&CniError> for ErrorReply {
    fn from(e: &CniError) -> Self {
        ErrorReply {
            code: e.code(),
            msg: e.to_string(),
            details: String::new(),
        }
    }
}

/// The CNI error object for `version`.
pub fn error_json(version: &str, e: &ErrorReply) -> Value {
    let mut v = json!({"cniVersion": version, "code": e.code, "msg": e.msg});
    if !e.details.is_empty() {
        v["details"] = json!(e.details);
    }
    v
}

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    /// CNI 1.1.0: is the plugin (the agent) ready for ADDs.
    Status,
    /// CNI 1.1.0: remove attachments not in `cni.dev/valid-attachments`.
    Gc,
}

impl Command {
    /// Commands that concern the network, not one container: no `CNI_CONTAINERID`,
    /// `CNI_NETNS` or `CNI_IFNAME`.
    pub fn is_network_wide(self) -> bool {
        matches!(self, Command::Version | Command::Status | Command::Gc)
    }
}

impl FromStr for Command {
    type Err = CniError;
    fn from_str(s: &str) -> Result<Self, CniError> {
        match s {
            "ADD" => Ok(Command::Add),
            "DEL" => Ok(Command::Del),
            "CHECK" => Ok(Command::Check),
            "VERSION" => Ok(Command::Version),
            "STATUS" => Ok(Command::Status),
            "GC" => Ok(Command::Gc),
            _ => Err(CniError::env(
                "CNI_COMMAND",
                s,
                "expected ADD, DEL, CHECK, STATUS, GC or VERSION",
            )),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        })
    }
}

/// The `CNI_*` environment, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    pub command: Command,
    /// Empty only for VERSION.
    pub container_id: String,
    /// Path of the network namespace; optional for DEL (the runtime may have removed it).
    pub netns: Option<String>,
    /// Interface name inside the namespace; empty only for VERSION.
    pub ifname: String,
    /// `CNI_ARGS` as key → value.
    pub args: BTreeMap<String, String>,
}

/// A Linux interface name: 1-15 bytes, no '/', ':', whitespace; not "." or "..".
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
}

/// A Weft object name: 1-63 characters of [A-Za-z0-9_.-], starting with a letter or digit.
pub fn valid_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Parses `CNI_ARGS` (`K=V;K=V`, empty allowed).
pub fn parse_cni_args(s: &str) -> Result<BTreeMap<String, String>, CniError> {
    let mut out = BTreeMap::new();
    for pair in s.split(';').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(CniError::env(
                "CNI_ARGS",
                s,
                format!("entry {pair:?} is not KEY=VALUE"),
            ));
        };
        if k.is_empty() {
            return Err(CniError::env(
                "CNI_ARGS",
                s,
                format!("entry {pair:?} has an empty key"),
            ));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Reads and validates the `CNI_*` variables through `get` (e.g. `std::env::var`).
pub fn parse_env(get: impl Fn(&str) -> Option<String>) -> Result<CniEnv, CniError> {
    let raw = get("CNI_COMMAND").unwrap_or_default();
    if raw.is_empty() {
        return Err(CniError::env("CNI_COMMAND", "", "not set"));
    }
    let command: Command = raw.parse()?;
    if command.is_network_wide() {
        return Ok(CniEnv {
            command,
            container_id: String::new(),
            netns: None,
            ifname: String::new(),
            args: BTreeMap::new(),
        });
    }
    let container_id = get("CNI_CONTAINERID").unwrap_or_default();
    if container_id.is_empty() {
        return Err(CniError::env("CNI_CONTAINERID", "", "not set"));
    }
    if container_id.len() > 256
        || !container_id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        || !container_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(CniError::env(
            "CNI_CONTAINERID",
            &container_id,
            "expected up to 256 characters of [A-Za-z0-9_.-], starting with a letter or digit",
        ));
    }
    let ifname = get("CNI_IFNAME").unwrap_or_default();
    if !valid_ifname(&ifname) {
        return Err(CniError::env(
            "CNI_IFNAME",
            &ifname,
            "expected an interface name of 1-15 bytes without '/', ':' or whitespace",
        ));
    }
    let netns = get("CNI_NETNS").filter(|s| !s.is_empty());
    match &netns {
        None if command != Command::Del => {
            return Err(CniError::env("CNI_NETNS", "", "not set"));
        }
        Some(p) if !p.starts_with('/') => {
            return Err(CniError::env(
                "CNI_NETNS",
                p,
                "expected an absolute path to a network namespace",
            ));
        }
        _ => {}
    }
    let args = parse_cni_args(&get("CNI_ARGS").unwrap_or_default())?;
    Ok(CniEnv {
        command,
        container_id,
        netns,
        ifname,
        args,
    })
}

/// The fields of the network configuration Weft reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConf {
    pub cni_version: String,
    /// The network name (`name`).
    pub name: String,
    /// The logical switch pods of this network attach to (`switch`).
    pub switch: String,
    /// The agent's CNI socket (`agentSocket`).
    pub agent_socket: PathBuf,
    /// Pod interface MTU (`mtu`); when absent the switch's MTU, then the agent's default.
    pub mtu: Option<u32>,
    /// `dns` (nameservers, domain, search, options), copied into the ADD result.
    pub dns: Option<Value>,
    /// `runtimeConfig` as the runtime passed it (`ips`, `mac`, `portMappings` are checked).
    pub runtime_config: Option<Value>,
    /// `prevResult` (CHECK compares it with the attachment; chained plugins' input).
    pub prev_result: Option<Value>,
    /// `cni.dev/valid-attachments` (GC): the attachments to keep.
    pub valid_attachments: Option<Vec<AttachmentId>>,
}

/// One attachment a runtime still uses (`cni.dev/valid-attachments` entries).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttachmentId {
    pub container_id: String,
    pub ifname: String,
}

/// Checks `dns`: an object with optional `nameservers` (IP strings), `domain` (string),
/// `search` and `options` (string arrays).
fn parse_dns(v: &Value) -> Result<Value, CniError> {
    let Some(o) = v.as_object() else {
        return Err(CniError::config("dns", v, "expected an object"));
    };
    for (k, x) in o {
        let ok = match k.as_str() {
            "nameservers" => x.as_array().is_some_and(|a| {
                a.iter().all(|n| {
                    n.as_str()
                        .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok())
                })
            }),
            "domain" => x.is_string(),
            "search" | "options" => x.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            _ => {
                return Err(CniError::config(
                    "dns",
                    v,
                    format!("unknown key {k:?} (expected nameservers, domain, search, options)"),
                ))
            }
        };
        if !ok {
            return Err(CniError::config(
                "dns",
                v,
                format!(
                    "{k:?} must be {}",
                    match k.as_str() {
                        "nameservers" => "an array of IP address strings",
                        "domain" => "a string",
                        _ => "an array of strings",
                    }
                ),
            ));
        }
    }
    Ok(v.clone())
}

/// Checks `runtimeConfig.portMappings` (the `portMappings` capability, served by the chained
/// `portmap` plugin): each entry `{hostPort, containerPort, protocol?, hostIP?}` with ports
/// 1-65535 and protocol tcp, udp or sctp. A bad entry fails ADD before anything changes.
pub fn check_port_mappings(v: &Value) -> Result<(), CniError> {
    let field = "runtimeConfig.portMappings";
    let Some(list) = v.as_array() else {
        return Err(CniError::config(field, v, "expected an array"));
    };
    for (i, m) in list.iter().enumerate() {
        let bad = |reason: String| CniError::config(field, m, format!("entry {i}: {reason}"));
        let Some(o) = m.as_object() else {
            return Err(bad("expected an object".into()));
        };
        for k in ["hostPort", "containerPort"] {
            match o.get(k).and_then(Value::as_u64) {
                Some(1..=65535) => {}
                _ => return Err(bad(format!("{k} must be an integer from 1 to 65535"))),
            }
        }
        match o.get("protocol") {
            None => {}
            Some(Value::String(p))
                if ["tcp", "udp", "sctp"].contains(&p.to_ascii_lowercase().as_str()) => {}
            Some(p) => return Err(bad(format!("protocol {p} is not tcp, udp or sctp"))),
        }
        match o.get("hostIP") {
            None => {}
            Some(Value::String(s)) if s.is_empty() || s.parse::<std::net::IpAddr>().is_ok() => {}
            Some(h) => return Err(bad(format!("hostIP {h} is not an IP address"))),
        }
    }
    Ok(())
}

/// Parses `cni.dev/valid-attachments`: an array of `{"containerID", "ifname"}` objects.
fn parse_valid_attachments(v: &Value) -> Result<Vec<AttachmentId>, CniError> {
    let field = VALID_ATTACHMENTS_KEY;
    let Some(list) = v.as_array() else {
        return Err(CniError::config(
            field,
            v,
            "expected an array of {\"containerID\", \"ifname\"} objects",
        ));
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let s = |k: &str| a.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        match (s("containerID"), s("ifname")) {
            (Some(c), Some(n)) if valid_ifname(n) => out.push(AttachmentId {
                container_id: c.to_string(),
                ifname: n.to_string(),
            }),
            _ => {
                return Err(CniError::config(
                    field,
                    a,
                    format!("entry {i}: expected {{\"containerID\": non-empty string, \"ifname\": interface name}}"),
                ))
            }
        }
    }
    Ok(out)
}

/// The `cniVersion` of a configuration, if it can be read at all (for error replies).
pub fn conf_version(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_owned)
}

/// Parses the network configuration on stdin. Only `cniVersion` is needed for VERSION; use
/// [`parse_netconf`] for the other commands.
pub fn parse_netconf(bytes: &[u8]) -> Result<NetConf, CniError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CniError::Decode(format!(
            "{} bytes, more than the {MAX_MESSAGE_BYTES} accepted",
            bytes.len()
        )));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| CniError::Decode(e.to_string()))?;
    let Some(obj) = v.as_object() else {
        return Err(CniError::Decode("not a JSON object".into()));
    };
    let null = Value::Null;
    let field = |k: &str| obj.get(k).unwrap_or(&null);
    let string = |k: &'static str, required: bool| -> Result<Option<String>, CniError> {
        match field(k) {
            Value::Null if !required => Ok(None),
            Value::Null => Err(CniError::config(k, &Value::Null, "required")),
            Value::String(s) if s.is_empty() => {
                Err(CniError::config(k, field(k), "must not be empty"))
            }
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(CniError::config(k, other, "expected a string")),
        }
    };
    let cni_version = string("cniVersion", true)?.unwrap_or_default();
    if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
        return Err(CniError::IncompatibleVersion(cni_version));
    }
    string("type", true)?;
    let name = string("name", true)?.unwrap_or_default();
    let switch = string("switch", true)?.unwrap_or_default();
    if !valid_object_name(&switch) {
        return Err(CniError::config(
            "switch",
            field("switch"),
            "expected a logical switch name: 1-63 characters of [A-Za-z0-9_.-], starting with a letter or digit",
        ));
    }
    let agent_socket = match string("agentSocket", false)? {
        None => PathBuf::from(DEFAULT_AGENT_SOCKET),
        Some(s) if s.starts_with('/') => PathBuf::from(s),
        Some(_) => {
            return Err(CniError::config(
                "agentSocket",
                field("agentSocket"),
                "expected an absolute path",
            ))
        }
    };
    let mtu = match field("mtu") {
        Value::Null => None,
        m => match m.as_u64() {
            Some(n @ 68..=65535) => Some(n as u32),
            _ => {
                return Err(CniError::config(
                    "mtu",
                    m,
                    "expected an integer from 68 to 65535",
                ))
            }
        },
    };
    let dns = match field("dns") {
        Value::Null => None,
        d => Some(parse_dns(d)?),
    };
    let runtime_config = match field("runtimeConfig") {
        Value::Null => None,
        rc @ Value::Object(o) => {
            if let Some(pm) = o.get("portMappings") {
                check_port_mappings(pm)?;
            }
            Some(rc.clone())
        }
        other => {
            return Err(CniError::config(
                "runtimeConfig",
                other,
                "expected an object",
            ))
        }
    };
    let prev_result = match field("prevResult") {
        Value::Null => None,
        p @ Value::Object(_) => Some(p.clone()),
        other => return Err(CniError::config("prevResult", other, "expected an object")),
    };
    let valid_attachments = match field(VALID_ATTACHMENTS_KEY) {
        Value::Null => None,
        v => Some(parse_valid_attachments(v)?),
    };
    Ok(NetConf {
        cni_version,
        name,
        switch,
        agent_socket,
        mtu,
        dns,
        runtime_config,
        prev_result,
        valid_attachments,
    })
}

/// What the plugin sends the agent: one JSON object per connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub command: Command,
    pub container_id: String,
    #[serde(default)]
    pub netns: Option<String>,
    pub ifname: String,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// The network's name (`name` in the configuration), for logs.
    #[serde(default)]
    pub network: String,
    pub switch: String,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// ADD: the static address asked for (`IP=`/`MAC=`, `runtimeConfig.ips`/`mac`).
    #[serde(default)]
    pub address: super::address::AddressRequest,
    /// GC: the attachments to keep.
    #[serde(default)]
    pub valid_attachments: Vec<AttachmentId>,
}

impl Request {
    /// The request for `env` and `conf`; fails on a malformed address request.
    pub fn new(env: &CniEnv, conf: &NetConf) -> Result<Request, CniError> {
        let address = if env.command == Command::Add {
            super::address::parse(&env.args, conf.runtime_config.as_ref())?
        } else {
            Default::default()
        };
        Ok(Request {
            command: env.command,
            container_id: env.container_id.clone(),
            netns: env.netns.clone(),
            ifname: env.ifname.clone(),
            args: env.args.clone(),
            network: conf.name.clone(),
            switch: conf.switch.clone(),
            mtu: conf.mtu,
            address,
            valid_attachments: conf.valid_attachments.clone().unwrap_or_default(),
        })
    }

    /// Checks a request that arrived on the socket as strictly as the plugin checks its input.
    pub fn validate(&self) -> Result<(), CniError> {
        let mut env: BTreeMap<&str, String> = BTreeMap::new();
        env.insert("CNI_COMMAND", self.command.to_string());
        env.insert("CNI_CONTAINERID", self.container_id.clone());
        env.insert("CNI_IFNAME", self.ifname.clone());
        if let Some(n) = &self.netns {
            env.insert("CNI_NETNS", n.clone());
        }
        parse_env(|k| env.get(k).cloned())?;
        if let Some(m) = &self.address.mac {
            weft_proto::model::parse_mac(&m.value)
                .map_err(|reason| super::address::refuse(m.from, "MAC", &m.value, reason))?;
        }
        for a in &self.valid_attachments {
            if a.container_id.is_empty() || !valid_ifname(&a.ifname) {
                return Err(CniError::config(
                    "cni.dev/valid-attachments",
                    &json!({"containerID": a.container_id, "ifname": a.ifname}),
                    "expected a container id and an interface name",
                ));
            }
        }
        if !valid_object_name(&self.switch) {
            return Err(CniError::config(
                "switch",
                &json!(self.switch),
                "expected a logical switch name",
            ));
        }
        if let Some(m) = self.mtu {
            if !(68..=65535).contains(&m) {
                return Err(CniError::config(
                    "mtu",
                    &json!(m),
                    "expected an integer from 68 to 65535",
                ));
            }
        }
        Ok(())
    }
}

/// What ADD (and CHECK) produced: everything the CNI result needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The logical port.
    pub port: String,
    /// Host end of the veth (a port of the integration bridge).
    pub host_ifname: String,
    #[serde(default)]
    pub host_mac: Option<String>,
    /// Interface in the container.
    pub ifname: String,
    pub mac: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    pub mtu: u32,
    /// The namespace path.
    pub sandbox: String,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Success; ADD and CHECK carry the attachment, DEL none.
    #[serde(rename = "ok")]
    Ok(Option<Attachment>),
    #[serde(rename = "error")]
    Error(ErrorReply),
}

/// The CNI success result for `version` (0.3.x/0.4.0 add `"version": "4"` to each IP), with
/// `dns` from the network configuration (empty when it has none).
pub fn build_result(version: &str, a: &Attachment, dns: Option<&Value>) -> Value {
    let mut host = json!({"name": a.host_ifname});
    if let Some(m) = &a.host_mac {
        host["mac"] = json!(m);
    }
    let mut ip = json!({
        "address": format!("{}/{}", a.ip, a.prefix_len),
        "interface": 1,
    });
    if let Some(gw) = a.gateway {
        ip["gateway"] = json!(gw.to_string());
    }
    if version.starts_with("0.") {
        ip["version"] = json!("4");
    }
    let routes: Vec<Value> = a
        .gateway
        .map(|gw| json!({"dst": "0.0.0.0/0", "gw": gw.to_string()}))
        .into_iter()
        .collect();
    json!({
        "cniVersion": version,
        "interfaces": [host, {"name": a.ifname, "mac": a.mac, "sandbox": a.sandbox}],
        "ips": [ip],
        "routes": routes,
        "dns": dns.cloned().unwrap_or_else(|| json!({})),
    })
}

/// Pure: CHECK's comparison of the configuration's `prevResult` (what ADD returned, as the
/// runtime cached it) with the attachment as it is now: the container interface (by name,
/// with its sandbox) must be listed with the same MAC, and an `ips` entry on it must carry the
/// attachment's address. Code 7 for a malformed `prevResult`, 102 for a mismatch.
pub fn check_prev_result(prev: &Value, a: &Attachment) -> Result<(), CniError> {
    let malformed = |reason: &str| CniError::config("prevResult", prev, reason.to_string());
    let ifaces = prev
        .get("interfaces")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("has no \"interfaces\" array"))?;
    let ips = prev
        .get("ips")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("has no \"ips\" array"))?;
    let idx = ifaces
        .iter()
        .position(|i| {
            i.get("name").and_then(Value::as_str) == Some(a.ifname.as_str())
                && i.get("sandbox")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
        })
        .ok_or_else(|| {
            CniError::CheckFailed(format!(
                "prevResult lists no interface {:?} in a sandbox",
                a.ifname
            ))
        })?;
    let mac = ifaces[idx].get("mac").and_then(Value::as_str).unwrap_or("");
    if !mac.eq_ignore_ascii_case(&a.mac) {
        return Err(CniError::CheckFailed(format!(
            "prevResult gives {} MAC {mac:?}, the interface has {}",
            a.ifname, a.mac
        )));
    }
    let want = format!("{}/{}", a.ip, a.prefix_len);
    let found = ips.iter().any(|ip| {
        ip.get("address").and_then(Value::as_str) == Some(want.as_str())
            && ip
                .get("interface")
                .and_then(Value::as_u64)
                .is_none_or(|n| n as usize == idx)
    });
    if !found {
        return Err(CniError::CheckFailed(format!(
            "prevResult has no address {want} on {} (the interface has it)",
            a.ifname
        )));
    }
    Ok(())
}

/// The VERSION answer.
pub fn version_result(version: &str) -> Value {
    json!({"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS})
}

use weft_proto::model::fnv1a64 as fnv1a;

/// `CNI_ARGS` key that names the logical port explicitly.
pub const PORT_ARG: &str = "WEFT_PORT";

/// The logical port for a container:
/// 1. `WEFT_PORT=<name>` in `CNI_ARGS`, if it is a valid name;
/// 2. `<K8S_POD_NAMESPACE>_<K8S_POD_NAME>` when both are present (characters outside
///    [A-Za-z0-9_.-] become '-'; longer than 63 → the first 46 characters, '-', and 16 hex
///    digits of a hash of the whole name);
/// 3. otherwise `cni-` and the first 12 characters of the container id.
pub fn port_name(container_id: &str, args: &BTreeMap<String, String>) -> Result<String, CniError> {
    if let Some(p) = args.get(PORT_ARG) {
        if !valid_object_name(p) {
            return Err(CniError::env(
                "CNI_ARGS",
                &format!("{PORT_ARG}={p}"),
                "expected a logical port name: 1-63 characters of [A-Za-z0-9_.-], starting with a letter or digit",
            ));
        }
        return Ok(p.clone());
    }
    let get = |k: &str| args.get(k).filter(|v| !v.is_empty());
    if let (Some(ns), Some(pod)) = (get("K8S_POD_NAMESPACE"), get("K8S_POD_NAME")) {
        let full = format!("{ns}_{pod}");
        let mut clean: String = full
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if !clean.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            clean.insert(0, 'p');
        }
        if clean.len() > 63 {
            clean.truncate(46);
            clean = format!("{clean}-{:016x}", fnv1a(full.as_bytes()));
        }
        return Ok(clean);
    }
    let prefix: String = container_id.chars().take(12).collect();
    Ok(format!("cni-{prefix}"))
}

/// Host end of the veth: `weft` + 11 hex digits of a hash of container id and ifname (15
/// bytes, deterministic so DEL finds it without state).
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    let h = fnv1a(format!("{container_id}/{ifname}").as_bytes());
    format!("weft{:011x}", h & 0xfff_ffff_ffff)
}

/// The temporary name of the container end before it is renamed to `CNI_IFNAME`.
pub fn temp_ifname(container_id: &str, ifname: &str) -> String {
    let h = fnv1a(format!("tmp/{container_id}/{ifname}").as_bytes());
    format!("wtmp{:011x}", h & 0xfff_ffff_ffff)
}

/// The network and prefix length of an IPv4 CIDR.
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = s.trim().split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    if len > 32 {
        return None;
    }
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    Some((Ipv4Addr::from(u32::from(ip) & mask), len))
}

/// The gateway of a subnet: its first host address (none for /31 and /32).
pub fn gateway_of(subnet: &str) -> Option<Ipv4Addr> {
    let net: ipnetwork::Ipv4Network = subnet.trim().parse().ok()?;
    crate::plug::gateway::first_host(&net)
}

/// A MAC address `xx:xx:xx:xx:xx:xx` (any case), unicast.
pub fn valid_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        && u8::from_str_radix(parts[0], 16).is_ok_and(|b| b & 1 == 0)
}

/// The MAC and IPv4 address of a logical port: the controller-allocated `dynamic_addresses`
/// ("MAC IP"), else the first static "MAC IP..." entry with an IPv4 address.
pub fn port_address(dynamic: &str, addresses: &[String]) -> Option<(String, Ipv4Addr)> {
    let parse = |s: &str| -> Option<(String, Ipv4Addr)> {
        let mut it = s.split_whitespace();
        let mac = it.next()?;
        if !valid_mac(mac) {
            return None;
        }
        let ip = it.find_map(|t| t.split('/').next()?.parse::<Ipv4Addr>().ok())?;
        Some((mac.to_ascii_lowercase(), ip))
    };
    parse(dynamic).or_else(|| addresses.iter().find_map(|a| parse(a)))
}

/// Pure: refuses an ADD whose logical port `port` is already in use by another VIF.
/// `local` are the OVS interfaces of this host whose `iface-id` is `port` (name, external
/// ids); the one named `host_ifname` that this container owns is its own leftover (ADD
/// replaces it). `binding` is the port's binding chassis and whether it is alive; a
/// binding to another live chassis than `own_chassis` means a VIF there uses the port
/// (None `own_chassis`: every live binding counts as another host's). `from_arg` says
/// whether the name came from `WEFT_PORT` (the error then names CNI_ARGS).
pub fn check_port_free(
    port: &str,
    from_arg: bool,
    container_id: &str,
    host_ifname: &str,
    local: &[(String, BTreeMap<String, String>)],
    binding: Option<(&str, bool)>,
    own_chassis: Option<&str>,
) -> Result<(), CniError> {
    let refuse = |reason: String| {
        if from_arg {
            CniError::env("CNI_ARGS", &format!("{PORT_ARG}={port}"), reason)
        } else {
            CniError::Datapath(format!("logical port {port:?}: {reason}"))
        }
    };
    for (name, ids) in local {
        let ours =
            name == host_ifname && ids.get("weft-cni").map(String::as_str) == Some(container_id);
        if !ours {
            let owner = match ids.get("weft-cni") {
                Some(c) => format!("container {c:?}"),
                None => "a VIF not created by weft-cni".to_string(),
            };
            return Err(refuse(format!(
                "the port is already bound to OVS interface {name:?} on this host ({owner}); \
                 one logical port can serve one interface"
            )));
        }
    }
    if let Some((chassis, alive)) = binding {
        if alive && Some(chassis) != own_chassis {
            return Err(refuse(format!(
                "the port is already bound to a VIF on chassis {chassis:?}, which is alive; \
                 delete that pod first (or its binding goes when that chassis stops reporting it)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "0123456789abcdef0123"),
        ("CNI_NETNS", "/run/netns/p1"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
        ),
        ("CNI_PATH", "/opt/cni/bin"),
    ];

    #[test]
    fn env_add_parses() {
        let e = parse_env(env_of(ADD)).expect("env");
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.netns.as_deref(), Some("/run/netns/p1"));
        assert_eq!(e.args["K8S_POD_NAME"], "web-0");
        assert_eq!(e.args["IgnoreUnknown"], "1");
    }

    #[test]
    fn env_errors_name_the_variable() {
        let with = |k: &str, v: Option<&str>| {
            let mut m: Vec<(&str, &str)> = ADD.iter().copied().filter(|(x, _)| *x != k).collect();
            if let Some(v) = v {
                m.push((k, v));
            }
            let owned: Vec<(String, String)> = m
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            let f = move |key: &str| owned.iter().find(|(a, _)| a == key).map(|(_, b)| b.clone());
            parse_env(f).expect_err("should fail").to_string()
        };
        assert!(with("CNI_COMMAND", None).contains("CNI_COMMAND"));
        assert!(with("CNI_COMMAND", Some("FOO")).contains("FOO"));
        assert!(with("CNI_CONTAINERID", None).contains("CNI_CONTAINERID"));
        assert!(with("CNI_CONTAINERID", Some("../x")).contains("CNI_CONTAINERID"));
        assert!(with("CNI_IFNAME", Some("a-very-long-interface")).contains("CNI_IFNAME"));
        assert!(with("CNI_IFNAME", Some("a/b")).contains("CNI_IFNAME"));
        assert!(with("CNI_NETNS", None).contains("CNI_NETNS"));
        assert!(with("CNI_NETNS", Some("relative")).contains("CNI_NETNS"));
        assert!(with("CNI_ARGS", Some("a=1;b")).contains("CNI_ARGS"));
        let e = parse_env(env_of(&[("CNI_COMMAND", "ADD")])).expect_err("e");
        assert_eq!(e.code(), 4);
    }

    #[test]
    fn del_without_netns_and_version_without_anything() {
        let e = parse_env(env_of(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ]))
        .expect("del");
        assert_eq!(e.netns, None);
        let v = parse_env(env_of(&[("CNI_COMMAND", "VERSION")])).expect("version");
        assert_eq!(v.command, Command::Version);
    }

    #[test]
    fn netconf_parses_with_defaults() {
        let c = parse_netconf(
            br#"{"cniVersion":"1.0.0","name":"weft","type":"weft-cni","switch":"pods"}"#,
        )
        .expect("conf");
        assert_eq!(c.switch, "pods");
        assert_eq!(c.agent_socket, PathBuf::from(DEFAULT_AGENT_SOCKET));
        assert_eq!(c.mtu, None);
        let c = parse_netconf(
            br#"{"cniVersion":"0.3.1","name":"n","type":"weft-cni","switch":"s","agentSocket":"/tmp/x.sock","mtu":1400,"runtimeConfig":{"portMappings":[]}}"#,
        )
        .expect("conf");
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.agent_socket, PathBuf::from("/tmp/x.sock"));
    }

    #[test]
    fn netconf_errors_name_the_field() {
        let err = |s: &str| parse_netconf(s.as_bytes()).expect_err("should fail");
        assert_eq!(err("{").code(), 6);
        assert_eq!(err("[]").code(), 6);
        let e = err(r#"{"cniVersion":"2.0.0","name":"n","type":"t","switch":"s"}"#);
        assert_eq!(e.code(), 1);
        assert!(e.to_string().contains("2.0.0"));
        let e = err(r#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#);
        assert!(e.to_string().contains("\"switch\""), "{e}");
        assert_eq!(e.code(), 7);
        let e = err(r#"{"cniVersion":"1.0.0","name":"n","type":"t","switch":"a b"}"#);
        assert!(e.to_string().contains("switch") && e.to_string().contains("a b"));
        let e = err(r#"{"cniVersion":"1.0.0","name":"n","type":"t","switch":"s","mtu":"big"}"#);
        assert!(e.to_string().contains("mtu"));
        let e = err(r#"{"cniVersion":"1.0.0","name":"n","type":"t","switch":"s","mtu":20}"#);
        assert!(e.to_string().contains("mtu"));
        let e =
            err(r#"{"cniVersion":"1.0.0","name":"n","type":"t","switch":"s","agentSocket":"rel"}"#);
        assert!(e.to_string().contains("agentSocket"));
        let e = err(r#"{"cniVersion":1,"name":"n","type":"t","switch":"s"}"#);
        assert!(e.to_string().contains("cniVersion"));
        let e = err(r#"{"cniVersion":"1.0.0","type":"t","switch":"s"}"#);
        assert!(e.to_string().contains("name"));
    }

    #[test]
    fn port_names() {
        let args = parse_cni_args("K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0").expect("a");
        assert_eq!(port_name("abc", &args).expect("p"), "default_web-0");
        let args = parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=only").expect("a");
        assert_eq!(
            port_name("0123456789abcdef", &args).expect("p"),
            "cni-0123456789ab"
        );
        let args = parse_cni_args("WEFT_PORT=lp1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b").expect("a");
        assert_eq!(port_name("x", &args).expect("p"), "lp1");
        let args = parse_cni_args("WEFT_PORT=bad name").expect("a");
        assert_eq!(port_name("x", &args).expect_err("bad").code(), 4);
        let long = "x".repeat(100);
        let args = parse_cni_args(&format!("K8S_POD_NAMESPACE=ns;K8S_POD_NAME={long}")).expect("a");
        let p = port_name("x", &args).expect("p");
        assert_eq!(p.len(), 63);
        assert!(valid_object_name(&p));
        let args2 =
            parse_cni_args(&format!("K8S_POD_NAMESPACE=ns;K8S_POD_NAME={long}y")).expect("a");
        assert_ne!(port_name("x", &args2).expect("p"), p);
    }

    #[test]
    fn interface_names_fit_and_are_stable() {
        let a = host_ifname("c1", "eth0");
        assert_eq!(a.len(), 15);
        assert!(valid_ifname(&a));
        assert_eq!(a, host_ifname("c1", "eth0"));
        assert_ne!(a, host_ifname("c1", "eth1"));
        assert_ne!(a, temp_ifname("c1", "eth0"));
        assert!(valid_ifname(&temp_ifname("c1", "eth0")));
    }

    #[test]
    fn cidr_gateway_and_addresses() {
        assert_eq!(
            parse_cidr("10.1.2.77/24"),
            Some((Ipv4Addr::new(10, 1, 2, 0), 24))
        );
        assert_eq!(parse_cidr("10.1.2.0/33"), None);
        assert_eq!(gateway_of("10.1.2.0/24"), Some(Ipv4Addr::new(10, 1, 2, 1)));
        assert_eq!(gateway_of("10.1.2.0/31"), None);
        assert_eq!(
            port_address("0a:00:00:00:00:05 10.0.0.5", &[]),
            Some(("0a:00:00:00:00:05".into(), Ipv4Addr::new(10, 0, 0, 5)))
        );
        assert_eq!(
            port_address(
                "",
                &[
                    "dynamic".into(),
                    "0A:00:00:00:00:06 fd00::6 10.0.0.6".into()
                ]
            ),
            Some(("0a:00:00:00:00:06".into(), Ipv4Addr::new(10, 0, 0, 6)))
        );
        assert_eq!(port_address("", &["unknown".into()]), None);
        assert!(!valid_mac("01:00:00:00:00:00"));
    }

    fn attachment() -> Attachment {
        Attachment {
            port: "default_web-0".into(),
            host_ifname: "weft0123456789a".into(),
            host_mac: Some("aa:bb:cc:00:00:01".into()),
            ifname: "eth0".into(),
            mac: "0a:00:00:00:00:05".into(),
            ip: Ipv4Addr::new(10, 0, 0, 5),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
            mtu: 1400,
            sandbox: "/run/netns/p1".into(),
        }
    }

    #[test]
    fn results_per_version() {
        let r = build_result("1.0.0", &attachment(), None);
        assert_eq!(
            r,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "weft0123456789a", "mac": "aa:bb:cc:00:00:01"},
                    {"name": "eth0", "mac": "0a:00:00:00:00:05", "sandbox": "/run/netns/p1"}
                ],
                "ips": [{"address": "10.0.0.5/24", "gateway": "10.0.0.1", "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
                "dns": {}
            })
        );
        let r = build_result("0.4.0", &attachment(), None);
        assert_eq!(r["ips"][0]["version"], json!("4"));
        let mut a = attachment();
        a.gateway = None;
        assert_eq!(build_result("1.0.0", &a, None)["routes"], json!([]));
        let dns = json!({"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]});
        let r = build_result("1.1.0", &attachment(), Some(&dns));
        assert_eq!(r["dns"], dns);
        assert!(r["ips"][0].get("version").is_none());
        check_prev_result(&r, &attachment()).expect("own result passes");
        let mut moved = attachment();
        moved.ip = Ipv4Addr::new(10, 0, 0, 9);
        let e = check_prev_result(&r, &moved).expect_err("moved");
        assert_eq!(e.code(), 102);
        assert!(
            e.to_string().contains("10.0.0.5/24") || e.to_string().contains("10.0.0.9/24"),
            "{e}"
        );
        let mut remac = attachment();
        remac.mac = "0a:00:00:00:00:99".into();
        assert_eq!(
            check_prev_result(&r, &remac).expect_err("remac").code(),
            102
        );
        assert_eq!(
            check_prev_result(&json!({"ips": []}), &attachment())
                .expect_err("malformed")
                .code(),
            7
        );
        assert_eq!(
            version_result("0.4.0")["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }

    #[test]
    fn wire_roundtrip() {
        let r = Reply::Ok(Some(attachment()));
        let s = serde_json::to_string(&r).expect("ser");
        assert!(s.starts_with("{\"ok\":"));
        assert_eq!(serde_json::from_str::<Reply>(&s).expect("de"), r);
        let e = Reply::Error(ErrorReply::from(&CniError::Controller("down".into())));
        let s = serde_json::to_string(&e).expect("ser");
        assert_eq!(s, r#"{"error":{"code":100,"msg":"controller: down"}}"#);
        assert_eq!(
            serde_json::to_string(&Reply::Ok(None)).expect("ser"),
            r#"{"ok":null}"#
        );
        let env = parse_env(env_of(ADD)).expect("env");
        let conf = parse_netconf(
            br#"{"cniVersion":"1.0.0","name":"weft","type":"weft-cni","switch":"pods"}"#,
        )
        .expect("conf");
        let req = Request::new(&env, &conf).expect("request");
        req.validate().expect("valid");
        let mut bad = req.clone();
        bad.ifname = "x/y".into();
        assert!(bad.validate().is_err());
    }

    /// The shipped example conflist is something the plugin accepts.
    #[test]
    fn deploy_conflist_parses() {
        let list: Value =
            serde_json::from_str(include_str!("../../../deploy/cni/10-weft.conflist"))
                .expect("conflist JSON");
        let plugins = list["plugins"].as_array().expect("plugins");
        let mut conf = plugins[0].clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        conf["name"] = list["name"].clone();
        let c = parse_netconf(conf.to_string().as_bytes()).expect("parses");
        assert_eq!(c.switch, "pods");
        assert_eq!(c.agent_socket, PathBuf::from(DEFAULT_AGENT_SOCKET));
    }

    #[test]
    fn error_json_shape() {
        let e = ErrorReply::from(&CniError::AgentUnreachable {
            socket: "/s".into(),
            reason: "no such file".into(),
        });
        let v = error_json("0.4.0", &e);
        assert_eq!(v["code"], json!(11));
        assert_eq!(v["cniVersion"], json!("0.4.0"));
        assert!(v["msg"].as_str().is_some_and(|m| m.contains("/s")));
    }
}

#[cfg(test)]
mod port_free_tests {
    use super::*;

    fn ids(c: Option<&str>) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("iface-id".to_string(), "lp".to_string());
        if let Some(c) = c {
            m.insert("weft-cni".to_string(), c.to_string());
        }
        m
    }

    #[test]
    fn a_port_in_use_is_refused() {
        let own = [("weftabc".to_string(), ids(Some("c1")))];
        // Own leftovers and a binding to this chassis or a dead one pass.
        assert!(check_port_free(
            "lp",
            true,
            "c1",
            "weftabc",
            &own,
            Some(("hv1", true)),
            Some("hv1")
        )
        .is_ok());
        assert!(check_port_free(
            "lp",
            true,
            "c1",
            "weftabc",
            &[],
            Some(("hv2", false)),
            Some("hv1")
        )
        .is_ok());
        assert!(check_port_free("lp", true, "c1", "weftabc", &[], None, None).is_ok());
        // Another container's interface on this host.
        let other = [("weftdef".to_string(), ids(Some("c2")))];
        let e =
            check_port_free("lp", true, "c1", "weftabc", &other, None, Some("hv1")).unwrap_err();
        assert_eq!(e.code(), 4);
        let m = e.to_string();
        assert!(
            m.contains("WEFT_PORT=lp") && m.contains("weftdef") && m.contains("\"c2\""),
            "{m}"
        );
        // A VIF someone plugged by hand.
        let hand = [("tap0".to_string(), ids(None))];
        let e = check_port_free("lp", false, "c1", "weftabc", &hand, None, None).unwrap_err();
        assert_eq!(e.code(), 101);
        assert!(e.to_string().contains("not created by weft-cni"), "{e}");
        // A live binding elsewhere.
        let e = check_port_free(
            "lp",
            true,
            "c1",
            "weftabc",
            &[],
            Some(("hv2", true)),
            Some("hv1"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("chassis \"hv2\""), "{e}");
        assert!(
            check_port_free("lp", true, "c1", "weftabc", &[], Some(("hv1", true)), None).is_err()
        );
    }
}
