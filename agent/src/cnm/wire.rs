//! The pure half of the Docker driver: HTTP/1.1 request framing on the plugin socket,
//! libnetwork's remote driver and IPAM JSON messages, and the parsing and validation of
//! everything Docker hands us (driver options, pools, addresses, port bindings). Every
//! refusal names the field and the value. No sockets or processes here; unit-tested below.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::CnmError;

/// Largest request body accepted (Docker's are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Largest request head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// The media type of every plugin reply.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1+json";
/// The driver option (`-o`) and IPAM option (`--ipam-opt`) naming the Weft switch.
pub const SWITCH_OPTION: &str = "weft.switch";
/// `Options` key under which Docker passes `-o` options to CreateNetwork.
pub const GENERIC_OPTIONS: &str = "com.docker.network.generic";
/// `Options` key of ProgramExternalConnectivity's port bindings.
pub const PORTMAP_OPTION: &str = "com.docker.network.portmap";
/// IPAM `RequestAddress` option saying what the address is for.
pub const ADDRESS_TYPE_OPTION: &str = "RequestAddressType";
/// Its value for the network's gateway.
pub const GATEWAY_TYPE: &str = "com.docker.network.gateway";
/// IPAM `RequestAddress` option with the endpoint's MAC (`--mac-address`).
pub const MAC_OPTION: &str = "com.docker.network.endpoint.macaddress";
/// Prefix of PoolIDs this driver hands out.
pub const POOL_PREFIX: &str = "weft";

/// A parsed request head: the method path (`/NetworkDriver.Join`) and the body length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub content_length: usize,
    /// `Connection: close` or HTTP/1.0 without keep-alive.
    pub close: bool,
}

/// Parses the head (up to and without the blank line). Refuses chunked bodies, a missing or
/// bad Content-Length on a body-carrying request, and bodies over [`MAX_BODY_BYTES`].
pub fn parse_head(raw: &[u8]) -> Result<Head, CnmError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| CnmError::BadRequest("request head is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CnmError::BadRequest(format!(
            "malformed request line {first:?}"
        )));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(CnmError::BadRequest(format!(
            "unsupported protocol {version:?}"
        )));
    }
    let mut content_length = None;
    let mut close = version == "HTTP/1.0";
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err(CnmError::BadRequest(format!("malformed header {l:?}")));
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n: usize = v.parse().map_err(|_| {
                    CnmError::BadRequest(format!("header Content-Length {v:?} is not a number"))
                })?;
                content_length = Some(n);
            }
            "transfer-encoding" if !v.eq_ignore_ascii_case("identity") => {
                return Err(CnmError::BadRequest(format!(
                    "header Transfer-Encoding {v:?} is not supported; send Content-Length"
                )))
            }
            "connection" => close = v.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY_BYTES {
        return Err(CnmError::TooLarge(content_length));
    }
    Ok(Head {
        method: method.to_string(),
        path: path.to_string(),
        content_length,
        close,
    })
}

/// The whole HTTP response for `status` with a JSON body.
pub fn response(status: u16, body: &Value) -> Vec<u8> {
    let text = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        _ => "Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
    .into_bytes()
}

/// The error body: libnetwork's network driver reads `Err`, its IPAM client `Error`.
pub fn error_body(msg: &str) -> Value {
    json!({ "Err": msg, "Error": msg })
}

/// Every method the plugin serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Activate,
    GetCapabilities,
    CreateNetwork,
    DeleteNetwork,
    CreateEndpoint,
    EndpointOperInfo,
    DeleteEndpoint,
    Join,
    Leave,
    DiscoverNew,
    DiscoverDelete,
    ProgramExternalConnectivity,
    RevokeExternalConnectivity,
    IpamCapabilities,
    AddressSpaces,
    RequestPool,
    ReleasePool,
    RequestAddress,
    ReleaseAddress,
}

/// The method a URL path names, None for an unknown one.
pub fn method_of(path: &str) -> Option<Method> {
    use Method::*;
    Some(match path.trim_start_matches('/') {
        "Plugin.Activate" => Activate,
        "NetworkDriver.GetCapabilities" => GetCapabilities,
        "NetworkDriver.CreateNetwork" => CreateNetwork,
        "NetworkDriver.DeleteNetwork" => DeleteNetwork,
        "NetworkDriver.CreateEndpoint" => CreateEndpoint,
        "NetworkDriver.EndpointOperInfo" => EndpointOperInfo,
        "NetworkDriver.DeleteEndpoint" => DeleteEndpoint,
        "NetworkDriver.Join" => Join,
        "NetworkDriver.Leave" => Leave,
        "NetworkDriver.DiscoverNew" => DiscoverNew,
        "NetworkDriver.DiscoverDelete" => DiscoverDelete,
        "NetworkDriver.ProgramExternalConnectivity" => ProgramExternalConnectivity,
        "NetworkDriver.RevokeExternalConnectivity" => RevokeExternalConnectivity,
        "IpamDriver.GetCapabilities" => IpamCapabilities,
        "IpamDriver.GetDefaultAddressSpaces" => AddressSpaces,
        "IpamDriver.RequestPool" => RequestPool,
        "IpamDriver.ReleasePool" => ReleasePool,
        "IpamDriver.RequestAddress" => RequestAddress,
        "IpamDriver.ReleaseAddress" => ReleaseAddress,
        _ => return None,
    })
}

/// Decodes a request body; an empty body is `{}`.
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CnmError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| CnmError::BadRequest(format!("malformed JSON: {e}")))
}

/// The IPv4 data of one pool in CreateNetwork.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamData {
    pub address_space: String,
    pub pool: String,
    pub gateway: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    pub options: Map<String, Value>,
    #[serde(rename = "IPv4Data")]
    pub ipv4_data: Option<Vec<IpamData>>,
    #[serde(rename = "IPv6Data")]
    pub ipv6_data: Option<Vec<IpamData>>,
}

/// Requests naming a network and (maybe) an endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub sandbox_key: String,
    pub options: Map<String, Value>,
    pub interface: Option<EndpointInterface>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointInterface {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(rename = "AddressIPv6", skip_serializing_if = "String::is_empty")]
    pub address_ipv6: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestPool {
    pub address_space: String,
    pub pool: String,
    pub sub_pool: String,
    pub options: Option<BTreeMap<String, String>>,
    #[serde(rename = "V6")]
    pub v6: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub address: String,
    pub options: Option<BTreeMap<String, String>>,
}

/// Whether `s` is a valid Weft object name (the model's rule).
pub fn valid_name(s: &str) -> bool {
    weft_proto::model::validate_name("name", s).is_ok()
}

/// Checks a network id Docker sent (hex, as Docker makes them).
pub fn check_id(field: &'static str, v: &str) -> Result<(), CnmError> {
    if v.len() < 12 || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CnmError::field(
            field,
            v,
            "expected Docker's hexadecimal id",
        ));
    }
    Ok(())
}

/// The Weft switch named by driver options (`-o`), checked for unknown keys.
pub fn network_switch_option(options: &Map<String, Value>) -> Result<Option<String>, CnmError> {
    let generic = match options.get(GENERIC_OPTIONS) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(CnmError::field(
                "Options.com.docker.network.generic",
                &other.to_string(),
                "expected an object of driver options",
            ))
        }
    };
    let mut switch = None;
    for (k, v) in generic {
        if k == SWITCH_OPTION {
            let s = v.as_str().unwrap_or_default();
            if !valid_name(s) {
                return Err(CnmError::field(
                    "driver option weft.switch",
                    &v.to_string(),
                    "not a valid switch name (1-63 of A-Z a-z 0-9 _ . -, starting with a letter or digit)",
                ));
            }
            switch = Some(s.to_string());
        } else if !k.starts_with("com.docker.") {
            return Err(CnmError::field(
                "driver option",
                k,
                "unknown; the Weft driver takes -o weft.switch=NAME",
            ));
        }
    }
    Ok(switch)
}

/// The one IPv4 pool of a network (a Weft switch has one subnet; IPv6 is not supported).
pub fn network_pool(req: &CreateNetwork) -> Result<Ipv4Network, CnmError> {
    if req.ipv6_data.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(CnmError::field(
            "IPv6Data",
            &format!(
                "{:?}",
                req.ipv6_data
                    .as_ref()
                    .map(|v| v.iter().map(|d| d.pool.clone()).collect::<Vec<_>>())
            ),
            "IPv6 is not supported by Weft switches",
        ));
    }
    let pools = req.ipv4_data.clone().unwrap_or_default();
    match pools.as_slice() {
        [one] => parse_pool("IPv4Data.Pool", &one.pool),
        [] => Err(CnmError::field(
            "IPv4Data",
            "[]",
            "no IPv4 pool; give --subnet",
        )),
        many => Err(CnmError::field(
            "IPv4Data",
            &many
                .iter()
                .map(|d| d.pool.as_str())
                .collect::<Vec<_>>()
                .join(","),
            "more than one IPv4 pool; a Weft switch has one subnet",
        )),
    }
}

/// A pool in CIDR form, normalised (host bits must be zero), /8 to /30.
pub fn parse_pool(field: &'static str, s: &str) -> Result<Ipv4Network, CnmError> {
    let net: Ipv4Network = s
        .parse()
        .map_err(|_| CnmError::field(field, s, "not an IPv4 CIDR (A.B.C.D/LEN)"))?;
    if net.ip() != net.network() {
        return Err(CnmError::field(
            field,
            s,
            format!(
                "has host bits set; did you mean {}/{}?",
                net.network(),
                net.prefix()
            ),
        ));
    }
    if !(8..=30).contains(&net.prefix()) {
        return Err(CnmError::field(field, s, "prefix length must be 8..30"));
    }
    Ok(net)
}

/// Whether the switch's `subnet` is the network's `pool`; a conflict names both.
pub fn check_switch_subnet(switch: &str, subnet: &str, pool: &Ipv4Network) -> Result<(), CnmError> {
    let ok = subnet.parse::<Ipv4Network>().is_ok_and(|s| s == *pool);
    if ok {
        Ok(())
    } else {
        Err(CnmError::field(
            "subnet",
            &pool.to_string(),
            format!(
                "conflicts with Weft switch {switch:?}, whose subnet is {:?}",
                subnet
            ),
        ))
    }
}

/// The switch a network made without `-o weft.switch` maps to: named from its subnet, so
/// every Docker host creating a network with that subnet gets the same one.
pub fn switch_for_pool(pool: &Ipv4Network) -> String {
    format!("dk-{}-{}", pool.network(), pool.prefix())
}

/// A PoolID: `weft/SUBNET` or `weft/SUBNET/SWITCH` (`--ipam-opt weft.switch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolId {
    pub subnet: Ipv4Network,
    pub switch: Option<String>,
}

impl PoolId {
    pub fn encode(&self) -> String {
        match &self.switch {
            Some(s) => format!("{POOL_PREFIX}/{}/{s}", self.subnet),
            None => format!("{POOL_PREFIX}/{}", self.subnet),
        }
    }

    pub fn parse(s: &str) -> Result<PoolId, CnmError> {
        let bad = |why: &str| CnmError::field("PoolID", s, why.to_string());
        let rest = s
            .strip_prefix(POOL_PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| bad("not a pool of the Weft IPAM driver"))?;
        let mut parts = rest.splitn(3, '/');
        let (Some(a), Some(len)) = (parts.next(), parts.next()) else {
            return Err(bad("malformed"));
        };
        let subnet = parse_pool("PoolID", &format!("{a}/{len}"))?;
        let switch = parts.next().map(str::to_string);
        if let Some(sw) = &switch {
            if !valid_name(sw) {
                return Err(bad("names an invalid switch"));
            }
        }
        Ok(PoolId { subnet, switch })
    }
}

/// Checks a RequestPool: IPv4, a subnet (or a switch to take it from), no sub-pool, known
/// options. Returns the subnet (None: take the switch's) and the switch option.
pub fn check_pool_request(
    req: &RequestPool,
) -> Result<(Option<Ipv4Network>, Option<String>), CnmError> {
    if req.v6 {
        return Err(CnmError::field(
            "V6",
            "true",
            "IPv6 pools are not supported by Weft",
        ));
    }
    let mut switch = None;
    for (k, v) in req.options.iter().flatten() {
        if k == SWITCH_OPTION {
            if !valid_name(v) {
                return Err(CnmError::field(
                    "ipam option weft.switch",
                    v,
                    "not a valid switch name",
                ));
            }
            switch = Some(v.clone());
        } else if !k.starts_with("com.docker.") {
            return Err(CnmError::field(
                "ipam option",
                k,
                "unknown; the Weft IPAM driver takes --ipam-opt weft.switch=NAME",
            ));
        }
    }
    let subnet = if req.pool.is_empty() {
        if switch.is_none() {
            return Err(CnmError::field(
                "Pool",
                "",
                "no subnet; give --subnet (or --ipam-opt weft.switch=NAME to take the switch's)",
            ));
        }
        None
    } else {
        Some(parse_pool("Pool", &req.pool)?)
    };
    if !req.sub_pool.is_empty() && subnet.is_none_or(|s| req.sub_pool != s.to_string()) {
        return Err(CnmError::field(
            "SubPool",
            &req.sub_pool,
            "--ip-range is not supported; Weft allocates from the whole subnet",
        ));
    }
    Ok((subnet, switch))
}

/// What a RequestAddress asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressAsk {
    pub pool: PoolId,
    /// A specific address (`--ip`, `--gateway`).
    pub ip: Option<Ipv4Addr>,
    /// The network's gateway rather than an endpoint's address.
    pub gateway: bool,
    /// `--mac-address`.
    pub mac: Option<String>,
}

/// Parses and checks a RequestAddress against its pool (inside, not network or broadcast).
pub fn check_address_request(req: &AddressRequest) -> Result<AddressAsk, CnmError> {
    let pool = PoolId::parse(&req.pool_id)?;
    let ip = parse_ip_in("Address", &req.address, &pool.subnet)?;
    let mut gateway = false;
    let mut mac = None;
    for (k, v) in req.options.iter().flatten() {
        match k.as_str() {
            ADDRESS_TYPE_OPTION => {
                if v == GATEWAY_TYPE {
                    gateway = true;
                } else {
                    return Err(CnmError::field(
                        "Options.RequestAddressType",
                        v,
                        "unknown address type",
                    ));
                }
            }
            MAC_OPTION => {
                let m = weft_proto::model::parse_mac(v).map_err(|e| {
                    CnmError::field("Options.com.docker.network.endpoint.macaddress", v, e)
                })?;
                mac = Some(m);
            }
            _ => {}
        }
    }
    Ok(AddressAsk {
        pool,
        ip,
        gateway,
        mac,
    })
}

/// An optional address (`""` = none; `A.B.C.D` or `A.B.C.D/LEN`) that must be a host address
/// of `net`.
pub fn parse_ip_in(
    field: &'static str,
    s: &str,
    net: &Ipv4Network,
) -> Result<Option<Ipv4Addr>, CnmError> {
    if s.is_empty() {
        return Ok(None);
    }
    let a = s.split_once('/').map_or(s, |(a, _)| a);
    let ip: Ipv4Addr = a
        .parse()
        .map_err(|_| CnmError::field(field, s, "not an IPv4 address"))?;
    if !net.contains(ip) {
        return Err(CnmError::field(field, s, format!("outside the pool {net}")));
    }
    if ip == net.network() || ip == net.broadcast() {
        return Err(CnmError::field(
            field,
            s,
            format!("is the network or broadcast address of {net}"),
        ));
    }
    Ok(Some(ip))
}

/// The endpoint's IPv4 address from CreateEndpoint's `Interface.Address` ("IP/LEN"); IPv6
/// refused.
pub fn endpoint_address(
    iface: Option<&EndpointInterface>,
    pool: &Ipv4Network,
) -> Result<(Option<Ipv4Addr>, Option<String>), CnmError> {
    let Some(i) = iface else {
        return Ok((None, None));
    };
    if !i.address_ipv6.is_empty() {
        return Err(CnmError::field(
            "Interface.AddressIPv6",
            &i.address_ipv6,
            "IPv6 is not supported by Weft switches",
        ));
    }
    let ip = parse_ip_in("Interface.Address", &i.address, pool)?;
    let mac = if i.mac_address.is_empty() {
        None
    } else {
        Some(
            weft_proto::model::parse_mac(&i.mac_address)
                .map_err(|e| CnmError::field("Interface.MacAddress", &i.mac_address, e))?,
        )
    };
    Ok((ip, mac))
}

/// One published port (`-p HOSTIP:HOSTPORT:PORT/PROTO`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub struct Binding {
    /// "tcp", "udp" or "sctp".
    pub proto: String,
    /// "" = every host address.
    pub host_ip: String,
    pub host_port: u16,
    pub port: u16,
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = if self.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            &self.host_ip
        };
        write!(f, "{ip}:{}->{}/{}", self.host_port, self.port, self.proto)
    }
}

/// The port bindings of ProgramExternalConnectivity's options (libnetwork's PortBinding:
/// `Proto` 6/17/132, `IP`, `Port`, `HostIP`, `HostPort`, `HostPortEnd`).
pub fn parse_bindings(options: &Map<String, Value>) -> Result<Vec<Binding>, CnmError> {
    let list = match options.get(PORTMAP_OPTION) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(CnmError::field(
                "Options.com.docker.network.portmap",
                &other.to_string(),
                "expected a list of port bindings",
            ))
        }
    };
    let mut out = Vec::new();
    for b in list {
        let bad = |why: &str| CnmError::field("port binding", &b.to_string(), why.to_string());
        let num = |k: &str| b.get(k).and_then(Value::as_u64);
        let proto = match num("Proto") {
            Some(6) => "tcp",
            Some(17) => "udp",
            Some(132) => "sctp",
            _ => return Err(bad("Proto must be 6 (tcp), 17 (udp) or 132 (sctp)")),
        };
        let port = num("Port")
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("Port must be 1..65535"))?;
        let host_port = num("HostPort")
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("HostPort must be 1..65535 (Weft does not pick host ports)"))?;
        if num("HostPortEnd").is_some_and(|e| e != 0 && e != u64::from(host_port)) {
            return Err(bad("host port ranges are not supported"));
        }
        let host_ip = b.get("HostIP").and_then(Value::as_str).unwrap_or_default();
        if !host_ip.is_empty() && host_ip.parse::<Ipv4Addr>().is_err() {
            return Err(bad("HostIP must be an IPv4 address"));
        }
        let host_ip = if host_ip == "0.0.0.0" { "" } else { host_ip };
        out.push(Binding {
            proto: proto.into(),
            host_ip: host_ip.into(),
            host_port,
            port,
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The first of `new` that collides with a binding another endpoint holds on this host:
/// (the new binding, the endpoint holding it). Same protocol and host port collide unless
/// both name different specific host addresses.
pub fn binding_conflict<'a>(
    new: &'a [Binding],
    held: &'a [(String, Vec<Binding>)],
    own: &str,
) -> Option<(&'a Binding, &'a str)> {
    for n in new {
        for (ep, bs) in held {
            if ep == own {
                continue;
            }
            for b in bs {
                let ips_overlap =
                    b.host_ip.is_empty() || n.host_ip.is_empty() || b.host_ip == n.host_ip;
                if b.proto == n.proto && b.host_port == n.host_port && ips_overlap {
                    return Some((n, ep.as_str()));
                }
            }
        }
    }
    None
}

/// Host-side names of an endpoint's veth: `wd` + 10 hex (on the bridge) and `wp` + 10 hex
/// (the peer Docker moves into the sandbox); both within IFNAMSIZ.
pub fn veth_names(endpoint_id: &str) -> (String, String) {
    let short: String = endpoint_id.chars().take(10).collect();
    (format!("wd{short}"), format!("wp{short}"))
}

/// The logical port an endpoint gets when no Weft IPAM reservation backs its address.
pub fn endpoint_port_name(endpoint_id: &str) -> String {
    format!("dk-{}", endpoint_id.chars().take(12).collect::<String>())
}

/// A fresh IPAM reservation name, from the chassis and a unique seed.
pub fn reservation_name(chassis: &str, seed: u128) -> String {
    let h = weft_proto::model::hash::fnv1a64(format!("{chassis}/{seed}").as_bytes());
    format!("dk-{:012x}", h & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = parse_head(
            b"POST /NetworkDriver.Join HTTP/1.1\r\nHost: plugin\r\nContent-Length: 12\r\n",
        )
        .expect("ok");
        assert_eq!(h.path, "/NetworkDriver.Join");
        assert_eq!(h.content_length, 12);
        assert!(!h.close);
        let h = parse_head(b"POST /Plugin.Activate HTTP/1.0\r\n").expect("ok");
        assert!(h.close);
        assert_eq!(h.content_length, 0);
        assert!(matches!(
            parse_head(b"POST /x HTTP/1.1\r\nContent-Length: 99999999\r\n"),
            Err(CnmError::TooLarge(99999999))
        ));
        assert!(parse_head(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n").is_err());
        assert!(parse_head(b"POST /x HTTP/1.1\r\nContent-Length: x\r\n").is_err());
        assert!(parse_head(b"garbage").is_err());
        assert!(parse_head(b"POST /x SPDY/3\r\n").is_err());
        assert!(parse_head(b"POST /x HTTP/1.1\r\nnocolon\r\n").is_err());
        assert_eq!(
            method_of("/IpamDriver.RequestAddress"),
            Some(Method::RequestAddress)
        );
        assert_eq!(method_of("/NetworkDriver.Nope"), None);
        let r = String::from_utf8(response(200, &json!({}))).expect("utf8");
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\n{}"),
            "{r}"
        );
    }

    #[test]
    fn network_options_and_pools() {
        let opts = |v: Value| v.as_object().cloned().expect("object");
        assert_eq!(network_switch_option(&opts(json!({}))).expect("ok"), None);
        assert_eq!(
            network_switch_option(&opts(json!({GENERIC_OPTIONS: {"weft.switch": "blue"}, "com.docker.network.enable_ipv6": false})))
                .expect("ok"),
            Some("blue".into())
        );
        let e = network_switch_option(&opts(json!({GENERIC_OPTIONS: {"weft.swtich": "blue"}})))
            .expect_err("unknown");
        assert!(e.to_string().contains("weft.swtich"), "{e}");
        let e = network_switch_option(&opts(json!({GENERIC_OPTIONS: {"weft.switch": "bad name"}})))
            .expect_err("bad");
        assert!(
            e.to_string().contains("weft.switch") && e.to_string().contains("bad name"),
            "{e}"
        );
        assert!(network_switch_option(&opts(json!({GENERIC_OPTIONS: 5}))).is_err());

        let mut cn = CreateNetwork {
            ipv4_data: Some(vec![IpamData {
                pool: "10.5.0.0/24".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(network_pool(&cn).expect("ok").to_string(), "10.5.0.0/24");
        cn.ipv6_data = Some(vec![IpamData {
            pool: "fd00::/64".into(),
            ..Default::default()
        }]);
        assert!(network_pool(&cn)
            .expect_err("v6")
            .to_string()
            .contains("IPv6"));
        cn.ipv6_data = None;
        cn.ipv4_data = Some(vec![]);
        assert!(network_pool(&cn).is_err());
        let e = parse_pool("Pool", "10.5.0.1/24").expect_err("host bits");
        assert!(e.to_string().contains("10.5.0.0/24"), "{e}");
        assert!(parse_pool("Pool", "10.5.0.0/31").is_err());
        assert!(parse_pool("Pool", "nonsense").is_err());
        let pool = parse_pool("Pool", "10.5.0.0/24").expect("ok");
        assert!(check_switch_subnet("blue", "10.5.0.0/24", &pool).is_ok());
        let e = check_switch_subnet("blue", "10.6.0.0/24", &pool).expect_err("conflict");
        let m = e.to_string();
        assert!(
            m.contains("10.5.0.0/24") && m.contains("10.6.0.0/24") && m.contains("blue"),
            "{m}"
        );
        assert_eq!(switch_for_pool(&pool), "dk-10.5.0.0-24");
        assert!(valid_name(&switch_for_pool(&pool)));
    }

    #[test]
    fn ipam_requests() {
        let id = PoolId {
            subnet: "10.5.0.0/24".parse().expect("net"),
            switch: Some("blue".into()),
        };
        assert_eq!(id.encode(), "weft/10.5.0.0/24/blue");
        assert_eq!(PoolId::parse(&id.encode()).expect("ok"), id);
        let plain = PoolId::parse("weft/10.5.0.0/24").expect("ok");
        assert_eq!(plain.switch, None);
        assert!(PoolId::parse("default/10.5.0.0/24").is_err());
        assert!(PoolId::parse("weft/10.5.0.0").is_err());
        assert!(PoolId::parse("weft/10.5.0.0/24/bad name").is_err());

        let rp = |pool: &str, opts: &[(&str, &str)], v6| RequestPool {
            pool: pool.into(),
            options: Some(
                opts.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            v6,
            ..Default::default()
        };
        assert_eq!(
            check_pool_request(&rp("10.5.0.0/24", &[], false))
                .expect("ok")
                .0
                .map(|n| n.to_string()),
            Some("10.5.0.0/24".into())
        );
        assert!(check_pool_request(&rp("10.5.0.0/24", &[], true)).is_err());
        assert!(check_pool_request(&rp("", &[], false)).is_err());
        assert_eq!(
            check_pool_request(&rp("", &[("weft.switch", "blue")], false))
                .expect("ok")
                .1,
            Some("blue".into())
        );
        let e = check_pool_request(&rp("10.5.0.0/24", &[("color", "red")], false))
            .expect_err("unknown");
        assert!(e.to_string().contains("color"), "{e}");
        let mut sub = rp("10.5.0.0/24", &[], false);
        sub.sub_pool = "10.5.0.0/25".into();
        assert!(check_pool_request(&sub)
            .expect_err("range")
            .to_string()
            .contains("10.5.0.0/25"));

        let ar = |addr: &str, opts: &[(&str, &str)]| AddressRequest {
            pool_id: "weft/10.5.0.0/24".into(),
            address: addr.into(),
            options: Some(
                opts.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        };
        let a = check_address_request(&ar("", &[(ADDRESS_TYPE_OPTION, GATEWAY_TYPE)])).expect("ok");
        assert!(a.gateway && a.ip.is_none());
        let a = check_address_request(&ar("10.5.0.9", &[(MAC_OPTION, "0A:58:00:00:00:09")]))
            .expect("ok");
        assert_eq!(a.ip, Some(Ipv4Addr::new(10, 5, 0, 9)));
        assert_eq!(a.mac.as_deref(), Some("0a:58:00:00:00:09"));
        let e = check_address_request(&ar("10.6.0.9", &[])).expect_err("outside");
        assert!(
            e.to_string().contains("10.6.0.9") && e.to_string().contains("outside"),
            "{e}"
        );
        assert!(check_address_request(&ar("10.5.0.255", &[])).is_err());
        assert!(check_address_request(&ar("10.5.0.x", &[])).is_err());
        assert!(check_address_request(&ar("10.5.0.9", &[(ADDRESS_TYPE_OPTION, "weird")])).is_err());
        assert!(check_address_request(&ar("10.5.0.9", &[(MAC_OPTION, "zz")])).is_err());

        let pool: Ipv4Network = "10.5.0.0/24".parse().expect("net");
        let i = EndpointInterface {
            address: "10.5.0.7/24".into(),
            ..Default::default()
        };
        assert_eq!(
            endpoint_address(Some(&i), &pool).expect("ok"),
            (Some(Ipv4Addr::new(10, 5, 0, 7)), None)
        );
        let mut v6 = i.clone();
        v6.address_ipv6 = "fd00::7/64".into();
        assert!(endpoint_address(Some(&v6), &pool).is_err());
        assert_eq!(endpoint_address(None, &pool).expect("ok"), (None, None));
    }

    #[test]
    fn port_bindings() {
        let opts = |v: Value| {
            json!({ PORTMAP_OPTION: v })
                .as_object()
                .cloned()
                .expect("obj")
        };
        let b = parse_bindings(&opts(json!([
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
            {"Proto": 17, "Port": 53, "HostIP": "0.0.0.0", "HostPort": 5353}
        ])))
        .expect("ok");
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].to_string(), "0.0.0.0:8080->80/tcp");
        assert!(parse_bindings(&opts(json!([{"Proto": 1, "Port": 80, "HostPort": 1}]))).is_err());
        assert!(parse_bindings(&opts(json!([{"Proto": 6, "Port": 80, "HostPort": 0}]))).is_err());
        assert!(parse_bindings(&opts(
            json!([{"Proto": 6, "Port": 80, "HostPort": 80, "HostPortEnd": 90}])
        ))
        .is_err());
        assert!(parse_bindings(&opts(json!("x"))).is_err());
        assert!(parse_bindings(&Map::new()).expect("none").is_empty());
        let held = vec![("ep1".to_string(), vec![b[0].clone()])];
        let again =
            parse_bindings(&opts(json!([{"Proto": 6, "Port": 81, "HostPort": 8080}]))).expect("ok");
        assert_eq!(
            binding_conflict(&again, &held, "ep2").map(|c| c.1),
            Some("ep1")
        );
        assert_eq!(binding_conflict(&again, &held, "ep1"), None);
        let udp = parse_bindings(&opts(json!([{"Proto": 17, "Port": 81, "HostPort": 8080}])))
            .expect("ok");
        assert_eq!(binding_conflict(&udp, &held, "ep2"), None);
    }

    #[test]
    fn names() {
        let (h, p) = veth_names("0123456789abcdef0123");
        assert_eq!((h.as_str(), p.as_str()), ("wd0123456789", "wp0123456789"));
        assert!(h.len() <= 15);
        assert_eq!(endpoint_port_name("0123456789abcdef"), "dk-0123456789ab");
        let a = reservation_name("hv1", 1);
        assert_ne!(a, reservation_name("hv1", 2));
        assert!(valid_name(&a) && a.len() == 15, "{a}");
        assert!(check_id("NetworkID", "0123456789abcdef").is_ok());
        assert!(check_id("NetworkID", "../etc").is_err());
    }
}
