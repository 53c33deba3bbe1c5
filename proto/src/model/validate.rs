//! Pure validation and parsing of northbound input: names, CIDRs, MACs, `addresses` and
//! `port_security` entries, VNIs, chassis registrations and request size limits.
//!
//! Every check returns a [`ValidationError`] naming the field and the offending value, e.g.
//! `invalid addresses[0] "zz:00:00:00:00:01 10.0.0.5": invalid MAC "zz:00:00:00:00:01"`.
//! No I/O here; start with [`parse_addresses`] and [`validate_switch`].

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::v1::{Chassis, LogicalSwitch, PortAddress};
use ipnetwork::Ipv4Network;

/// Longest allowed name (switch, port, chassis).
pub const MAX_NAME_LEN: usize = 63;
/// Largest number of entries in `addresses` or `port_security`.
pub const MAX_ENTRIES: usize = 64;
/// Largest number of IPs in one address entry.
pub const MAX_IPS_PER_ENTRY: usize = 64;
/// Longest accepted string (an address entry, an other_config value, ...).
pub const MAX_STRING_LEN: usize = 4096;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;
/// Largest prefix length accepted for a switch subnet (a /30 still has one usable host).
pub const MAX_SUBNET_PREFIX: u8 = 30;
/// Shortest prefix length accepted for a switch subnet (a /8 has 16M addresses; anything
/// larger is a mistake, and `/0` would claim the whole address space).
pub const MIN_SUBNET_PREFIX: u8 = 8;

/// Why an IPv4 range cannot hold switch ports or tunnel endpoints, if it cannot: "this
/// network" (0/8), loopback (127/8), link-local (169.254/16), multicast (224/4) and
/// reserved (240/4, broadcast included).
pub fn special_ipv4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if o[0] == 0 {
        Some("in 0.0.0.0/8 (\"this network\")")
    } else if o[0] == 127 {
        Some("a loopback address (127.0.0.0/8)")
    } else if o[0] == 169 && o[1] == 254 {
        Some("link-local (169.254.0.0/16)")
    } else if (224..240).contains(&o[0]) {
        Some("a multicast address (224.0.0.0/4)")
    } else if o[0] >= 240 {
        Some("reserved (240.0.0.0/4, broadcast included)")
    } else {
        None
    }
}

/// Refuses control characters (a string that reaches terminals and logs).
pub fn no_control_chars(field: &str, s: &str) -> Result<()> {
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(ValidationError::new(
            field,
            &s.escape_debug().to_string(),
            format!("control character {c:?} not allowed"),
        )),
        None => Ok(()),
    }
}

/// `s` with every control character replaced by its escape (for text that must be kept,
/// like an agent's error report).
pub fn escape_control_chars(s: &str) -> String {
    if s.chars().any(|c| c.is_control()) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        s.to_string()
    }
}
/// Encapsulations a chassis may announce.
pub const ENCAP_TYPES: [&str; 3] = ["geneve", "vxlan", "gre"];

/// A rejected field: which one, its value, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} \"{value}\": {reason}")]
pub struct ValidationError {
    /// Field path, e.g. `addresses[2]` or `switch.subnet`.
    pub field: String,
    /// The offending value (truncated when very long).
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

impl ValidationError {
    /// Builds an error; long values are truncated so messages stay one readable line.
    pub fn new(field: impl Into<String>, value: &str, reason: impl Into<String>) -> Self {
        let value = if value.len() > 80 {
            let mut end = 80;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}...", &value[..end])
        } else {
            value.to_string()
        };
        ValidationError {
            field: field.into(),
            value,
            reason: reason.into(),
        }
    }
}

type Result<T> = std::result::Result<T, ValidationError>;

/// Checks a switch, port or chassis name: 1-63 characters of `[A-Za-z0-9_.-]`, starting with a
/// letter or digit.
pub fn validate_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(ValidationError::new(field, name, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            field,
            name,
            format!("longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ValidationError::new(
            field,
            name,
            format!("character {c:?} not allowed (use A-Z a-z 0-9 _ . -)"),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(ValidationError::new(
            field,
            name,
            "must start with a letter or digit",
        ));
    }
    Ok(())
}

/// Parses an IPv4 subnet in CIDR form; it must be the network address and have a prefix of
/// at most /30.
pub fn parse_subnet(field: &str, s: &str) -> Result<Ipv4Network> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| ValidationError::new(field, s, "expected CIDR like 10.0.0.0/24"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| ValidationError::new(field, s, format!("invalid IPv4 address {addr:?}")))?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| {
        ValidationError::new(field, s, format!("invalid prefix length {prefix:?}"))
    })?;
    if prefix > MAX_SUBNET_PREFIX {
        return Err(ValidationError::new(
            field,
            s,
            format!("prefix /{prefix} too long (at most /{MAX_SUBNET_PREFIX})"),
        ));
    }
    if prefix < MIN_SUBNET_PREFIX {
        return Err(ValidationError::new(
            field,
            s,
            format!("prefix /{prefix} too short (at least /{MIN_SUBNET_PREFIX})"),
        ));
    }
    if let Some(why) = special_ipv4(addr) {
        return Err(ValidationError::new(
            field,
            s,
            format!("the subnet is {why}"),
        ));
    }
    let net = Ipv4Network::new(addr, prefix)
        .map_err(|e| ValidationError::new(field, s, e.to_string()))?;
    if net.network() != addr {
        return Err(ValidationError::new(
            field,
            s,
            format!(
                "not a network address (did you mean {}/{prefix}?)",
                net.network()
            ),
        ));
    }
    Ok(net)
}

/// Parses a unicast Ethernet address and returns its lower-case canonical form.
pub fn parse_mac(s: &str) -> std::result::Result<String, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("invalid MAC {s:?}"));
    }
    let mut bytes = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(format!("invalid MAC {s:?}"));
        }
        bytes[i] = u8::from_str_radix(p, 16).map_err(|_| format!("invalid MAC {s:?}"))?;
    }
    if bytes[0] & 1 == 1 {
        return Err(format!("MAC {s:?} is a multicast address"));
    }
    if bytes == [0; 6] {
        return Err(format!("MAC {s:?} is all zeros"));
    }
    Ok(format_mac(bytes))
}

/// Formats six bytes as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(b: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

fn parse_ipv4(s: &str) -> std::result::Result<Ipv4Addr, String> {
    s.parse().map_err(|_| format!("invalid IPv4 address {s:?}"))
}

/// The gateway address of a subnet: its first host, reserved (never allocated, refused as a
/// static port address).
pub fn gateway(subnet: Ipv4Network) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// One parsed `addresses` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressEntry {
    /// "MAC [IP...]".
    Static {
        /// Canonical MAC.
        mac: String,
        /// IPs (inside the switch subnet when it has one).
        ips: Vec<Ipv4Addr>,
    },
    /// "dynamic": MAC and IP allocated by the controller.
    Dynamic,
    /// "unknown": also receive traffic for unknown destination MACs.
    Unknown,
    /// "router": the addresses of the router port this port (type "router") connects to.
    Router,
}

/// Parses a port's `addresses` against its switch's subnet (None = switch without subnet).
/// Rejects duplicates within the list and `dynamic` on a switch without subnet.
pub fn parse_addresses(
    entries: &[String],
    subnet: Option<Ipv4Network>,
    switch: &str,
) -> std::result::Result<Vec<AddressEntry>, ValidationError> {
    if entries.len() > MAX_ENTRIES {
        return Err(ValidationError::new(
            "addresses",
            &format!("{} entries", entries.len()),
            format!("too many entries (at most {MAX_ENTRIES})"),
        ));
    }
    let mut out = Vec::with_capacity(entries.len());
    let mut macs = HashSet::new();
    let mut ips = HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        let field = format!("addresses[{i}]");
        let err = |reason: String| ValidationError::new(field.clone(), e, reason);
        if e.len() > MAX_STRING_LEN {
            return Err(err(format!("longer than {MAX_STRING_LEN} bytes")));
        }
        let words: Vec<&str> = e.split_whitespace().collect();
        let entry = match words.as_slice() {
            [] => return Err(err("empty entry".into())),
            ["dynamic"] => {
                // On a switch without a subnet `dynamic` allocates a MAC only (as OVN).
                if out.contains(&AddressEntry::Dynamic) {
                    return Err(err("\"dynamic\" given twice".into()));
                }
                AddressEntry::Dynamic
            }
            ["unknown"] => AddressEntry::Unknown,
            ["router"] => AddressEntry::Router,
            [mac, rest @ ..] => {
                let mac = parse_mac(mac).map_err(&err)?;
                if rest.len() > MAX_IPS_PER_ENTRY {
                    return Err(err(format!("more than {MAX_IPS_PER_ENTRY} IPs")));
                }
                if !macs.insert(mac.clone()) {
                    return Err(err(format!("duplicate MAC {mac}")));
                }
                let mut v = Vec::with_capacity(rest.len());
                for ip in rest {
                    let ip = parse_ipv4(ip).map_err(&err)?;
                    if let Some(net) = subnet {
                        if !net.contains(ip) {
                            return Err(err(format!(
                                "IP {ip} is outside subnet {net} of switch {switch:?}"
                            )));
                        }
                        if ip == net.network() || ip == net.broadcast() {
                            return Err(err(format!(
                                "IP {ip} is the network or broadcast address of {net}"
                            )));
                        }
                        if ip == gateway(net) {
                            return Err(err(format!(
                                "IP {ip} is the gateway address of {net} (its first host), \
                                 reserved for the router port"
                            )));
                        }
                    }
                    if !ips.insert(ip) {
                        return Err(err(format!("duplicate IP {ip}")));
                    }
                    v.push(ip);
                }
                AddressEntry::Static { mac, ips: v }
            }
        };
        out.push(entry);
    }
    Ok(out)
}

/// Parses one "MAC [IP[/prefix]...]" entry into a [`PortAddress`].
fn parse_security_entry(field: &str, e: &str) -> Result<PortAddress> {
    let err = |reason: String| ValidationError::new(field, e, reason);
    if e.len() > MAX_STRING_LEN {
        return Err(err(format!("longer than {MAX_STRING_LEN} bytes")));
    }
    let mut words = e.split_whitespace();
    let mac = words.next().ok_or_else(|| err("empty entry".into()))?;
    let mac = parse_mac(mac).map_err(&err)?;
    let mut ips = Vec::new();
    for w in words {
        if ips.len() >= MAX_IPS_PER_ENTRY {
            return Err(err(format!("more than {MAX_IPS_PER_ENTRY} IPs")));
        }
        ips.push(parse_security_ip(w).map_err(&err)?);
    }
    Ok(PortAddress { mac, ips })
}

/// Parses one source of a `port_security` entry: an IPv4 or IPv6 address, optionally with
/// a prefix length (at most 32 / 128). Returns it in canonical form: IPv4 as written (or
/// `IP/len`), IPv6 compressed and lower case (`fd00::5`, `fd00::/64`).
pub fn parse_security_ip(w: &str) -> std::result::Result<String, String> {
    let (ip, prefix) = match w.split_once('/') {
        None => (w, None),
        Some((ip, p)) => (ip, Some(p)),
    };
    let (addr, max) = if ip.contains(':') {
        let a: std::net::Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("invalid IPv6 address {ip:?}"))?;
        (std::net::IpAddr::V6(a), 128)
    } else {
        (std::net::IpAddr::V4(parse_ipv4(ip)?), 32)
    };
    match prefix {
        None if addr.is_ipv4() => Ok(w.to_string()),
        None => Ok(addr.to_string()),
        Some(p) => {
            let len: u8 = p
                .parse()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("invalid prefix length in {w:?} (at most {max})"))?;
            Ok(format!("{addr}/{len}"))
        }
    }
}

/// Parses `port_security` entries ("MAC [IP[/prefix]...]").
pub fn parse_port_security(entries: &[String]) -> Result<Vec<PortAddress>> {
    if entries.len() > MAX_ENTRIES {
        return Err(ValidationError::new(
            "port_security",
            &format!("{} entries", entries.len()),
            format!("too many entries (at most {MAX_ENTRIES})"),
        ));
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| parse_security_entry(&format!("port_security[{i}]"), e))
        .collect()
}

/// Checks a VNI given on create: 0 (allocate) or 1..=16777215.
pub fn validate_vni(field: &str, vni: u32) -> Result<()> {
    if vni > MAX_VNI {
        return Err(ValidationError::new(
            field,
            &vni.to_string(),
            format!("out of range 1..={MAX_VNI}"),
        ));
    }
    Ok(())
}

/// Validates a switch on create and returns its parsed subnet.
pub fn validate_switch(sw: &LogicalSwitch) -> Result<Option<Ipv4Network>> {
    validate_name("switch.name", &sw.name)?;
    let subnet = if sw.subnet.is_empty() {
        None
    } else {
        Some(parse_subnet("switch.subnet", &sw.subnet)?)
    };
    validate_vni("switch.vni", sw.vni)?;
    if sw.mtu != 0 && !(68..=65535).contains(&sw.mtu) {
        return Err(ValidationError::new(
            "switch.mtu",
            &sw.mtu.to_string(),
            "must be 0 (default) or 68..=65535",
        ));
    }
    validate_map("switch.other_config", sw.other_config.iter())?;
    Ok(subnet)
}

/// Parses the subnet stored on a switch (already validated when written).
pub fn stored_subnet(sw: &LogicalSwitch) -> Option<Ipv4Network> {
    if sw.subnet.is_empty() {
        None
    } else {
        parse_subnet("subnet", &sw.subnet).ok()
    }
}

/// Port types: "" (a VIF), "router" (the switch end of a router port) and "localnet" (the
/// switch's connection to a provider network, `options:network_name=PHYSNET`, present on
/// every chassis whose bridge mappings have PHYSNET).
pub const PORT_TYPES: [&str; 3] = ["", "router", "localnet"];

/// The option of a localnet port naming its provider network.
pub const LOCALNET_NETWORK_NAME: &str = "network_name";

/// Validates a port type.
pub fn validate_port_type(t: &str) -> Result<()> {
    if PORT_TYPES.contains(&t) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "port.type",
            t,
            "unsupported port type (\"\" for a VIF, \"router\" or \"localnet\")",
        ))
    }
}

/// Largest number of entries in an `external_ids` or `options` map.
pub const MAX_MAP_ENTRIES: usize = 64;

/// Validates a string map column (`external_ids`, `options`, `other_config`): at most
/// [`MAX_MAP_ENTRIES`] entries, keys 1..=256 bytes, values up to [`MAX_STRING_LEN`].
pub fn validate_map<'a>(
    field: &str,
    m: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Result<()> {
    if m.len() > MAX_MAP_ENTRIES {
        return Err(ValidationError::new(
            field,
            &format!("{} entries", m.len()),
            format!("too many entries (at most {MAX_MAP_ENTRIES})"),
        ));
    }
    for (k, v) in m {
        if k.is_empty() || k.len() > 256 {
            return Err(ValidationError::new(
                format!("{field} key"),
                k,
                "must be 1..=256 bytes",
            ));
        }
        no_control_chars(&format!("{field} key"), k)?;
        no_control_chars(&format!("{field}[{k}]"), v)?;
        if v.len() > MAX_STRING_LEN {
            return Err(ValidationError::new(
                format!("{field}[{k}]"),
                v,
                format!("longer than {MAX_STRING_LEN} bytes"),
            ));
        }
    }
    Ok(())
}

/// Validates a chassis registration (Subscribe).
pub fn validate_chassis(c: &Chassis) -> Result<()> {
    validate_name("chassis.name", &c.name)?;
    let mut bridges: Vec<&String> = Vec::new();
    for (physnet, bridge) in &c.bridge_mappings {
        validate_name("chassis.bridge_mappings", physnet)?;
        validate_name(&format!("chassis.bridge_mappings:{physnet}"), bridge)?;
        if bridges.contains(&bridge) {
            return Err(ValidationError::new(
                format!("chassis.bridge_mappings:{physnet}"),
                bridge,
                "bridge mapped twice",
            ));
        }
        bridges.push(bridge);
    }
    let ip = parse_ipv4(&c.encap_ip)
        .map_err(|r| ValidationError::new("chassis.encap_ip", &c.encap_ip, r))?;
    if let Some(why) = special_ipv4(ip) {
        return Err(ValidationError::new(
            "chassis.encap_ip",
            &c.encap_ip,
            format!("a tunnel endpoint must be a unicast address, not {why}"),
        ));
    }
    if c.encap_types.len() > ENCAP_TYPES.len() {
        return Err(ValidationError::new(
            "chassis.encap_types",
            &format!("{} entries", c.encap_types.len()),
            format!(
                "at most {} (each of geneve, vxlan, gre once)",
                ENCAP_TYPES.len()
            ),
        ));
    }
    if c.encap_types.is_empty() {
        return Err(ValidationError::new(
            "chassis.encap_types",
            "",
            "at least one of geneve, vxlan, gre is required",
        ));
    }
    for (i, t) in c.encap_types.iter().enumerate() {
        if !ENCAP_TYPES.contains(&t.as_str()) {
            return Err(ValidationError::new(
                format!("chassis.encap_types[{i}]"),
                t,
                "unknown encapsulation (geneve, vxlan or gre)",
            ));
        }
        if c.encap_types[..i].contains(t) {
            return Err(ValidationError::new(
                format!("chassis.encap_types[{i}]"),
                t,
                "given twice",
            ));
        }
    }
    if !matches!(c.datapath_type.as_str(), "" | "system" | "netdev") {
        return Err(ValidationError::new(
            "chassis.datapath_type",
            &c.datapath_type,
            "must be \"system\" or \"netdev\"",
        ));
    }
    if c.version.len() > 256 {
        return Err(ValidationError::new(
            "chassis.version",
            &c.version,
            "longer than 256 bytes",
        ));
    }
    no_control_chars("chassis.version", &c.version)?;
    validate_map("chassis.external_ids", c.external_ids.iter())?;
    Ok(())
}

/// The router port option that sets the MTU of the network behind the port (OVN's
/// `options:gateway_mtu`): routed packets leaving by the port that are longer get ICMP
/// "fragmentation needed" (DF set) or are fragmented.
pub const GATEWAY_MTU_OPTION: &str = "gateway_mtu";
/// The smallest MTU an IPv4 link may have (RFC 791).
pub const MIN_GATEWAY_MTU: u16 = 68;

/// `options:gateway_mtu` of a router port: None when unset, else 68..=65535.
pub fn gateway_mtu<'a, I>(options: I) -> Result<Option<u16>>
where
    I: IntoIterator<Item = (&'a String, &'a String)>,
{
    let Some((_, v)) = options.into_iter().find(|(k, _)| *k == GATEWAY_MTU_OPTION) else {
        return Ok(None);
    };
    match v.trim().parse::<u16>() {
        Ok(m) if m >= MIN_GATEWAY_MTU => Ok(Some(m)),
        _ => Err(ValidationError::new(
            "router_port.options:gateway_mtu",
            v,
            format!("expected an MTU in {MIN_GATEWAY_MTU}..=65535"),
        )),
    }
}

/// Parses a stored `dynamic_addresses` value "MAC IP".
/// Parses a stored `dynamic_addresses` value: "MAC IP", or "MAC" alone on a switch without a
/// subnet.
pub fn parse_dynamic(s: &str) -> Option<(String, Option<Ipv4Addr>)> {
    let mut w = s.split_whitespace();
    let mac = parse_mac(w.next()?).ok()?;
    let ip = match w.next() {
        Some(ip) => Some(ip.parse().ok()?),
        None => None,
    };
    Some((mac, ip))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn net(s: &str) -> Ipv4Network {
        parse_subnet("subnet", s).expect("valid subnet")
    }

    #[test]
    fn gateway_mtus() {
        let o = |v: &str| -> BTreeMap<String, String> {
            [(GATEWAY_MTU_OPTION.to_string(), v.to_string())].into()
        };
        assert_eq!(gateway_mtu(&BTreeMap::new()).unwrap(), None);
        assert_eq!(gateway_mtu(&o("1400")).unwrap(), Some(1400));
        assert_eq!(gateway_mtu(&o("68")).unwrap(), Some(68));
        for bad in ["67", "0", "65536", "x", "", "-1"] {
            let e = gateway_mtu(&o(bad)).unwrap_err();
            assert_eq!(e.field, "router_port.options:gateway_mtu");
            assert_eq!(e.value, bad);
        }
    }

    #[test]
    fn names() {
        assert!(validate_name("n", "sw0").is_ok());
        assert!(validate_name("n", "a.b_c-d").is_ok());
        assert!(validate_name("n", &"a".repeat(63)).is_ok());
        let e = validate_name("switch.name", "").unwrap_err();
        assert_eq!(e.field, "switch.name");
        assert!(validate_name("n", &"a".repeat(64)).is_err());
        assert!(validate_name("n", "-abc").is_err());
        assert!(validate_name("n", ".abc").is_err());
        let e = validate_name("port.name", "a b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid port.name \"a b\": character ' ' not allowed (use A-Z a-z 0-9 _ . -)"
        );
        assert!(validate_name("n", "é").is_err());
    }

    #[test]
    fn special_ranges_and_control_characters_are_refused() {
        for s in [
            "0.0.0.0/0",
            "10.0.0.0/7",
            "0.0.0.0/8",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "224.0.0.0/24",
            "239.1.0.0/16",
            "240.0.0.0/24",
            "255.255.255.0/24",
        ] {
            assert!(parse_subnet("s", s).is_err(), "{s}");
        }
        assert!(parse_subnet("s", "10.0.0.0/8").is_ok());
        let mut c = Chassis {
            name: "hv1".into(),
            encap_ip: "192.0.2.1".into(),
            encap_types: vec!["geneve".into()],
            ..Default::default()
        };
        assert!(validate_chassis(&c).is_ok());
        for ip in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "127.0.0.1"] {
            c.encap_ip = ip.into();
            let e = validate_chassis(&c).unwrap_err();
            assert_eq!(e.field, "chassis.encap_ip", "{ip}");
        }
        c.encap_ip = "192.0.2.1".into();
        c.encap_types = vec!["geneve".into(), "geneve".into()];
        assert!(validate_chassis(&c).unwrap_err().reason.contains("twice"));
        c.encap_types = vec!["gre".into(); 1000];
        assert!(validate_chassis(&c).is_err());
        c.encap_types = vec!["vxlan".into()];
        c.version = "1.0\u{1b}[31m".into();
        assert!(validate_chassis(&c).unwrap_err().reason.contains("control"));
        let m: std::collections::HashMap<String, String> =
            [("k".to_string(), "a\nb".to_string())].into();
        let e = validate_map("port.external_ids", m.iter()).unwrap_err();
        assert_eq!(e.field, "port.external_ids[k]");
        assert_eq!(
            escape_control_chars("bundle\nfailed\u{7}"),
            "bundle\\nfailed\\u{7}"
        );
    }

    #[test]
    fn subnets() {
        assert_eq!(net("10.0.0.0/24").prefix(), 24);
        assert!(parse_subnet("s", "10.0.0.0/30").is_ok());
        let e = parse_subnet("switch.subnet", "10.0.0.1/24").unwrap_err();
        assert!(e.to_string().contains("10.0.0.1/24"), "{e}");
        assert!(e.reason.contains("10.0.0.0/24"));
        assert!(parse_subnet("s", "10.0.0.0/31").is_err());
        assert!(parse_subnet("s", "10.0.0.0/33").is_err());
        assert!(parse_subnet("s", "10.0.0.0").is_err());
        assert!(parse_subnet("s", "10.0.0/24").is_err());
        assert!(parse_subnet("s", "fe80::/64").is_err());
        assert!(parse_subnet("s", "10.0.0.0/x").is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("0A:00:00:00:00:01").unwrap(), "0a:00:00:00:00:01");
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .contains("multicast"));
        assert!(parse_mac("ff:ff:ff:ff:ff:ff").is_err());
        assert!(parse_mac("00:00:00:00:00:00").is_err());
        assert!(parse_mac("zz:00:00:00:00:01").is_err());
        assert!(parse_mac("0a:00:00:00:01").is_err());
        assert!(parse_mac("0a:00:00:00:00:001").is_err());
        assert!(parse_mac("0a-00-00-00-00-01").is_err());
    }

    #[test]
    fn addresses() {
        let n = Some(net("10.0.0.0/24"));
        let v = parse_addresses(
            &[
                "0A:00:00:00:00:05 10.0.0.5 10.0.0.6".into(),
                "unknown".into(),
            ],
            n,
            "sw",
        )
        .unwrap();
        assert_eq!(
            v,
            vec![
                AddressEntry::Static {
                    mac: "0a:00:00:00:00:05".into(),
                    ips: vec![Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6)]
                },
                AddressEntry::Unknown
            ]
        );
        assert_eq!(
            parse_addresses(&["dynamic".into()], n, "sw").unwrap(),
            vec![AddressEntry::Dynamic]
        );
        // Without a subnet `dynamic` means a MAC only (as OVN).
        assert_eq!(
            parse_addresses(&["dynamic".into()], None, "sw").unwrap(),
            vec![AddressEntry::Dynamic]
        );
        let e = parse_addresses(&["zz:00:00:00:00:01 10.0.0.5".into()], n, "sw").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid addresses[0] \"zz:00:00:00:00:01 10.0.0.5\": invalid MAC \"zz:00:00:00:00:01\""
        );
        let e = parse_addresses(
            &["unknown".into(), "0a:00:00:00:00:01 10.0.1.5".into()],
            n,
            "sw",
        )
        .unwrap_err();
        assert_eq!(e.field, "addresses[1]");
        assert!(e.reason.contains("outside subnet"));
        assert!(parse_addresses(&["0a:00:00:00:00:01 10.0.0.255".into()], n, "sw").is_err());
        assert!(parse_addresses(&["0a:00:00:00:00:01 10.0.0".into()], n, "sw").is_err());
        assert!(parse_addresses(&["".into()], n, "sw").is_err());
        // duplicates within one request
        assert!(parse_addresses(
            &[
                "0a:00:00:00:00:01 10.0.0.5".into(),
                "0a:00:00:00:00:01".into()
            ],
            n,
            "sw"
        )
        .is_err());
        assert!(parse_addresses(
            &[
                "0a:00:00:00:00:01 10.0.0.5".into(),
                "0a:00:00:00:00:02 10.0.0.5".into()
            ],
            n,
            "sw"
        )
        .is_err());
        // no subnet: any IPv4 goes, MAC only goes
        assert!(parse_addresses(&["0a:00:00:00:00:01 192.168.1.1".into()], None, "sw").is_ok());
        assert!(parse_addresses(&["0a:00:00:00:00:01".into()], n, "sw").is_ok());
        // size limits
        let many: Vec<String> = (0..65).map(|_| "unknown".to_string()).collect();
        assert!(parse_addresses(&many, n, "sw")
            .unwrap_err()
            .reason
            .contains("too many"));
        let long = format!("0a:00:00:00:00:01 {}", "10.0.0.5 ".repeat(600));
        assert!(parse_addresses(&[long], n, "sw").is_err());
    }

    #[test]
    fn port_security() {
        let v = parse_port_security(&["0A:00:00:00:00:01 10.0.0.5 10.0.0.0/24".into()]).unwrap();
        assert_eq!(v[0].mac, "0a:00:00:00:00:01");
        assert_eq!(v[0].ips, vec!["10.0.0.5", "10.0.0.0/24"]);
        let e = parse_port_security(&["0a:00:00:00:00:01 10.0.0.5/40".into()]).unwrap_err();
        assert_eq!(e.field, "port_security[0]");
        assert!(parse_port_security(&["10.0.0.5".into()]).is_err());
        assert!(parse_port_security(&["".into()]).is_err());
    }

    #[test]
    fn port_security_ipv6() {
        let v = parse_port_security(&[
            "0a:00:00:00:00:01 10.0.0.5 FD00:0:0::5 fd00:1::/64 10.0.0.0/24".into(),
        ])
        .unwrap();
        assert_eq!(
            v[0].ips,
            vec!["10.0.0.5", "fd00::5", "fd00:1::/64", "10.0.0.0/24"]
        );
        let e = parse_port_security(&["0a:00:00:00:00:01 fd00::5/129".into()]).unwrap_err();
        assert_eq!(e.field, "port_security[0]");
        assert!(e.reason.contains("at most 128"), "{}", e.reason);
        let e = parse_port_security(&["0a:00:00:00:00:01 fd00::zz".into()]).unwrap_err();
        assert!(
            e.reason.contains("invalid IPv6 address \"fd00::zz\""),
            "{}",
            e.reason
        );
        let e = parse_port_security(&["0a:00:00:00:00:01 10.0.0.5/33".into()]).unwrap_err();
        assert!(e.reason.contains("at most 32"), "{}", e.reason);
        assert!(parse_port_security(&["0a:00:00:00:00:01 fd00::/x".into()]).is_err());
    }

    #[test]
    fn vni_and_switch() {
        assert!(validate_vni("vni", 0).is_ok());
        assert!(validate_vni("vni", MAX_VNI).is_ok());
        assert!(validate_vni("vni", MAX_VNI + 1).is_err());
        let mut sw = LogicalSwitch {
            name: "sw".into(),
            subnet: "10.0.0.0/24".into(),
            ..Default::default()
        };
        assert!(validate_switch(&sw).unwrap().is_some());
        sw.mtu = 10;
        assert_eq!(validate_switch(&sw).unwrap_err().field, "switch.mtu");
        sw.mtu = 1500;
        for i in 0..65 {
            sw.other_config.insert(format!("k{i}"), "v".into());
        }
        assert_eq!(
            validate_switch(&sw).unwrap_err().field,
            "switch.other_config"
        );
    }

    #[test]
    fn chassis() {
        let mut c = Chassis {
            name: "hv1".into(),
            encap_ip: "192.168.0.1".into(),
            encap_types: vec!["geneve".into()],
            datapath_type: "netdev".into(),
            ..Default::default()
        };
        assert!(validate_chassis(&c).is_ok());
        c.encap_types.push("ipip".into());
        assert_eq!(
            validate_chassis(&c).unwrap_err().field,
            "chassis.encap_types[1]"
        );
        c.encap_types.pop();
        // Bridge mappings: names as elsewhere, one bridge per provider network.
        c.bridge_mappings = [("physnet".to_string(), "br-ex".to_string())].into();
        assert!(validate_chassis(&c).is_ok());
        c.bridge_mappings.insert("other".into(), "br-ex".into());
        let e = validate_chassis(&c).unwrap_err();
        assert!(e.reason.contains("mapped twice"), "{e}");
        c.bridge_mappings = [("bad name".to_string(), "br-ex".to_string())].into();
        assert_eq!(
            validate_chassis(&c).unwrap_err().field,
            "chassis.bridge_mappings"
        );
        c.bridge_mappings.clear();
        c.encap_ip = "x".into();
        assert_eq!(validate_chassis(&c).unwrap_err().field, "chassis.encap_ip");
    }

    #[test]
    fn dynamic_value() {
        assert_eq!(
            parse_dynamic("0a:00:00:00:00:05 10.0.0.5"),
            Some(("0a:00:00:00:00:05".into(), Some(Ipv4Addr::new(10, 0, 0, 5))))
        );
        assert_eq!(
            parse_dynamic("0a:00:00:00:00:05"),
            Some(("0a:00:00:00:00:05".into(), None))
        );
        assert_eq!(parse_dynamic("junk"), None);
        assert_eq!(parse_dynamic("0a:00:00:00:00:05 junk"), None);
    }
}
