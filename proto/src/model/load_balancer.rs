//! Load balancer rules (OVN's `Load_Balancer`): the VIP and backend grammar
//! (`IP`, `IP:PORT`, `[IPv6]:PORT`), protocols and the `options` an LB understands. One copy,
//! used by the controller's kind, weftctl and the agent's LB stage. No I/O.
//!
//! A load balancer maps each VIP (`10.96.0.10:80`, `[fd00::10]:80` or a port-less
//! `10.96.0.11`) to a list of backends (`10.0.0.5:8080,10.0.1.5:8080`). Every rule is checked
//! by [`validate_load_balancer`], which names the field and the value it refuses.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use super::validate::ValidationError;

type Result<T> = std::result::Result<T, ValidationError>;

/// Protocols a load balancer can have (ovn-nbctl's `tcp|udp|sctp`; "" means tcp).
pub const PROTOCOLS: &[&str] = &["tcp", "udp", "sctp"];

/// Smallest `options:affinity_timeout`, seconds.
pub const MIN_AFFINITY_TIMEOUT: u32 = 1;
/// Largest `options:affinity_timeout`, seconds (12 h).
pub const MAX_AFFINITY_TIMEOUT: u32 = 43200;

/// Largest number of VIPs in one load balancer.
pub const MAX_VIPS: usize = 4096;
/// Largest number of backends of one VIP (one select group's buckets).
pub const MAX_BACKENDS: usize = 1024;

/// `options` keys a load balancer understands.
pub const OPTIONS: &[&str] = &["affinity_timeout", "reject"];

/// Health check settings: defaults ([`HealthCheck::default`]) and bounds.
pub const HC_INTERVAL_DEFAULT: u32 = 5;
pub const HC_TIMEOUT_DEFAULT: u32 = 3;
pub const HC_SUCCESS_DEFAULT: u32 = 1;
pub const HC_FAILURE_DEFAULT: u32 = 3;
/// Largest interval and timeout, seconds.
pub const HC_MAX_SECONDS: u32 = 3600;
/// Largest success / failure count.
pub const HC_MAX_COUNT: u32 = 100;

/// The health checks' service address (OVN's `svc_monitor_mac` and service monitor source
/// IP): agents send probes from it, straight into the backend's VIF, and the pipeline
/// punts what comes back to it. A link-local address no pod owns, so a backend's answer
/// goes to its default gateway, where the switch pipeline catches it before routing.
pub const SVC_MONITOR_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 253);
/// The health checks' source MAC (locally administered).
pub const SVC_MONITOR_MAC: [u8; 6] = [0x0a, 0x58, 0xa9, 0xfe, 0xa9, 0xfd];

/// A backend's reported state.
pub const STATUS_ONLINE: &str = "online";
pub const STATUS_OFFLINE: &str = "offline";

/// The key of a backend's state in `LoadBalancerView.backend_status`: `"VIP BACKEND"`.
pub fn status_key(vip: &Endpoint, backend: &Endpoint) -> String {
    format!("{vip} {backend}")
}

/// One VIP's health check (`lb-hc-add LB VIP --interval=S --timeout=S --success=N
/// --failure=N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    /// Seconds between probes of a backend.
    pub interval: u32,
    /// Seconds a probe waits for its answer.
    pub timeout: u32,
    /// Consecutive successes that bring a backend online.
    pub success: u32,
    /// Consecutive failures that take it offline.
    pub failure: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            interval: HC_INTERVAL_DEFAULT,
            timeout: HC_TIMEOUT_DEFAULT,
            success: HC_SUCCESS_DEFAULT,
            failure: HC_FAILURE_DEFAULT,
        }
    }
}

impl std::fmt::Display for HealthCheck {
    /// Canonical text: `interval=5,timeout=3,success=1,failure=3`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interval={},timeout={},success={},failure={}",
            self.interval, self.timeout, self.success, self.failure
        )
    }
}

/// Parses `KEY=VALUE[,KEY=VALUE...]` (keys `interval`, `timeout`, `success`, `failure`;
/// missing ones take the defaults). `field` names it in errors.
pub fn parse_health_check(field: &str, s: &str) -> Result<HealthCheck> {
    let mut hc = HealthCheck::default();
    for kv in s.split(',').map(str::trim).filter(|kv| !kv.is_empty()) {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(ValidationError::new(
                field,
                kv,
                "expected KEY=VALUE (interval, timeout, success, failure)",
            ));
        };
        let (slot, max) = match k.trim() {
            "interval" => (&mut hc.interval, HC_MAX_SECONDS),
            "timeout" => (&mut hc.timeout, HC_MAX_SECONDS),
            "success" => (&mut hc.success, HC_MAX_COUNT),
            "failure" => (&mut hc.failure, HC_MAX_COUNT),
            other => {
                return Err(ValidationError::new(
                    field,
                    other,
                    "unknown health check setting (interval, timeout, success, failure)",
                ))
            }
        };
        match v.trim().parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => *slot = n,
            _ => {
                return Err(ValidationError::new(
                    format!("{field}.{}", k.trim()),
                    v,
                    format!("expected a whole number from 1 to {max}"),
                ))
            }
        }
    }
    Ok(hc)
}

/// An address with an optional L4 port: a VIP or a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The IPv4 or IPv6 address.
    pub ip: IpAddr,
    /// The port (1..65535), `None` for a port-less VIP or backend.
    pub port: Option<u16>,
}

impl std::fmt::Display for Endpoint {
    /// Canonical text: `10.0.0.5`, `10.0.0.5:80`, `fd00::5`, `[fd00::5]:80`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.ip, self.port) {
            (ip, None) => write!(f, "{ip}"),
            (IpAddr::V4(ip), Some(p)) => write!(f, "{ip}:{p}"),
            (IpAddr::V6(ip), Some(p)) => write!(f, "[{ip}]:{p}"),
        }
    }
}

fn port_of(field: &str, whole: &str, p: &str) -> Result<u16> {
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(ValidationError::new(
            field,
            whole,
            format!("port {p:?} is out of range (1-65535)"),
        )),
    }
}

/// Parses `IP`, `IPv4:PORT`, `IPv6` or `[IPv6]:PORT`; `field` names it in the error.
pub fn parse_endpoint(field: &str, s: &str) -> Result<Endpoint> {
    let t = s.trim();
    let bad = || {
        ValidationError::new(
            field,
            s,
            "expected an IP address or IP:PORT (10.96.0.10, 10.96.0.10:80, [fd00::10]:80)",
        )
    };
    if let Some(rest) = t.strip_prefix('[') {
        let (ip, tail) = rest.split_once(']').ok_or_else(bad)?;
        let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad())?;
        let port = match tail {
            "" => None,
            _ => Some(port_of(field, s, tail.strip_prefix(':').ok_or_else(bad)?)?),
        };
        return Ok(Endpoint {
            ip: IpAddr::V6(ip),
            port,
        });
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(Endpoint { ip, port: None });
    }
    let (ip, p) = t.rsplit_once(':').ok_or_else(bad)?;
    let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| bad())?;
    Ok(Endpoint {
        ip: IpAddr::V4(ip),
        port: Some(port_of(field, s, p)?),
    })
}

/// Parses a backend list `IP[:PORT][,IP[:PORT]...]` (empty: no backend). All backends are of
/// one address family.
pub fn parse_backends(field: &str, s: &str) -> Result<Vec<Endpoint>> {
    let mut out: Vec<Endpoint> = Vec::new();
    for (i, b) in s
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .enumerate()
    {
        let e = parse_endpoint(&format!("{field}[{i}]"), b)?;
        if let Some(first) = out.first() {
            if first.ip.is_ipv4() != e.ip.is_ipv4() {
                return Err(ValidationError::new(
                    field,
                    s,
                    "backends mix IPv4 and IPv6 addresses",
                ));
            }
        }
        if !out.contains(&e) {
            out.push(e);
        }
    }
    if out.len() > MAX_BACKENDS {
        return Err(ValidationError::new(
            field,
            &format!("{} backends", out.len()),
            format!("too many backends (at most {MAX_BACKENDS})"),
        ));
    }
    Ok(out)
}

/// Checks a protocol ("" is tcp) and returns its canonical spelling.
pub fn parse_protocol(field: &str, s: &str) -> Result<&'static str> {
    let t = s.trim().to_ascii_lowercase();
    if t.is_empty() {
        return Ok("tcp");
    }
    PROTOCOLS
        .iter()
        .copied()
        .find(|p| *p == t)
        .ok_or_else(|| ValidationError::new(field, s, "expected a protocol: tcp, udp or sctp"))
}

/// One VIP with its parsed backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipRule {
    /// The VIP.
    pub vip: Endpoint,
    /// Its backends, in the order given, duplicates dropped.
    pub backends: Vec<Endpoint>,
}

/// Checks one VIP and its backends together: families agree, and a port-less VIP has
/// port-less backends.
pub fn parse_vip_rule(field: &str, vip: &str, backends: &str) -> Result<VipRule> {
    let v = parse_endpoint(&format!("{field}.vip"), vip)?;
    let bf = format!("{field}[{vip}]");
    let b = parse_backends(&bf, backends)?;
    if let Some(first) = b.first() {
        if first.ip.is_ipv4() != v.ip.is_ipv4() {
            return Err(ValidationError::new(
                bf,
                backends,
                format!("backends are not of the VIP's address family ({vip})"),
            ));
        }
    }
    if v.port.is_none() {
        if let Some(e) = b.iter().find(|e| e.port.is_some()) {
            return Err(ValidationError::new(
                bf,
                &e.to_string(),
                format!("VIP {vip} has no port, so its backends cannot have one"),
            ));
        }
    }
    Ok(VipRule {
        vip: v,
        backends: b,
    })
}

/// The parsed `options:affinity_timeout` (seconds), `None` when unset.
pub fn affinity_timeout(options: &HashMap<String, String>) -> Result<Option<u32>> {
    let Some(v) = options.get("affinity_timeout") else {
        return Ok(None);
    };
    match v.trim().parse::<u32>() {
        Ok(n) if (MIN_AFFINITY_TIMEOUT..=MAX_AFFINITY_TIMEOUT).contains(&n) => Ok(Some(n)),
        _ => Err(ValidationError::new(
            "load_balancer.options:affinity_timeout",
            v,
            format!(
                "expected seconds from {MIN_AFFINITY_TIMEOUT} to {MAX_AFFINITY_TIMEOUT} (12 h)"
            ),
        )),
    }
}

/// The parsed `options:reject` (false when unset).
pub fn reject(options: &HashMap<String, String>) -> Result<bool> {
    match options.get("reject").map(|s| s.trim()) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(ValidationError::new(
            "load_balancer.options:reject",
            v,
            "expected true or false",
        )),
    }
}

/// A load balancer's rules, parsed: VIPs sorted by VIP (a stable order for flows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerRules {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: &'static str,
    /// The VIPs.
    pub vips: Vec<VipRule>,
    /// `options:affinity_timeout`.
    pub affinity_timeout: Option<u32>,
    /// `options:reject`.
    pub reject: bool,
    /// Health checks by VIP (each a VIP of `vips`, with a port).
    pub health_checks: BTreeMap<Endpoint, HealthCheck>,
}

impl LoadBalancerRules {
    /// `rule`'s backends that can take new connections: all of them, less those a health
    /// check reported offline (`offline` holds [`status_key`]s) when the VIP has one.
    pub fn live_backends<'a>(
        &self,
        rule: &'a VipRule,
        offline: &std::collections::BTreeSet<String>,
    ) -> Vec<&'a Endpoint> {
        let checked = self.health_checks.contains_key(&rule.vip);
        rule.backends
            .iter()
            .filter(|b| !checked || !offline.contains(&status_key(&rule.vip, b)))
            .collect()
    }
}

/// Validates a whole load balancer: every VIP and backend list, the protocol, the options
/// (unknown option keys are refused, naming them) and the health checks (each on a VIP the
/// LB has, with a port).
pub fn validate_load_balancer(
    vips: &HashMap<String, String>,
    protocol: &str,
    options: &HashMap<String, String>,
    health_check: &HashMap<String, String>,
) -> Result<LoadBalancerRules> {
    let protocol = parse_protocol("load_balancer.protocol", protocol)?;
    if vips.len() > MAX_VIPS {
        return Err(ValidationError::new(
            "load_balancer.vips",
            &format!("{} VIPs", vips.len()),
            format!("too many VIPs (at most {MAX_VIPS})"),
        ));
    }
    let mut keys: Vec<&String> = vips.keys().collect();
    keys.sort();
    let mut rules: Vec<VipRule> = Vec::with_capacity(keys.len());
    for k in keys {
        let r = parse_vip_rule("load_balancer.vips", k, &vips[k])?;
        if rules.iter().any(|x| x.vip == r.vip) {
            return Err(ValidationError::new(
                "load_balancer.vips",
                k,
                "the VIP is given twice (in two spellings)",
            ));
        }
        rules.push(r);
    }
    rules.sort_by_key(|r| r.vip);
    for k in options.keys() {
        if !OPTIONS.contains(&k.as_str()) {
            return Err(ValidationError::new(
                "load_balancer.options",
                k,
                format!("unknown option (known: {})", OPTIONS.join(", ")),
            ));
        }
    }
    let mut health_checks = BTreeMap::new();
    let mut hk: Vec<&String> = health_check.keys().collect();
    hk.sort();
    for k in hk {
        let field = "load_balancer.health_check";
        let v = parse_endpoint(field, k)?;
        if !rules.iter().any(|r| r.vip == v) {
            return Err(ValidationError::new(
                field,
                k,
                "the load balancer has no such VIP",
            ));
        }
        if v.port.is_none() {
            return Err(ValidationError::new(
                field,
                k,
                "a health check needs a VIP with a port",
            ));
        }
        if protocol == "sctp" {
            return Err(ValidationError::new(
                field,
                k,
                "health checks are for tcp and udp load balancers",
            ));
        }
        let hc = parse_health_check(&format!("{field}[{k}]"), &health_check[k])?;
        health_checks.insert(v, hc);
    }
    Ok(LoadBalancerRules {
        protocol,
        vips: rules,
        affinity_timeout: affinity_timeout(options)?,
        reject: reject(options)?,
        health_checks,
    })
}

/// The canonical health check map (VIP and settings in canonical text).
pub fn canonical_health_checks(rules: &LoadBalancerRules) -> HashMap<String, String> {
    rules
        .health_checks
        .iter()
        .map(|(v, hc)| (v.to_string(), hc.to_string()))
        .collect()
}

/// The canonical VIP map: keys and backend lists in canonical text (what is stored).
pub fn canonical_vips(rules: &LoadBalancerRules) -> HashMap<String, String> {
    rules
        .vips
        .iter()
        .map(|r| {
            let b: Vec<String> = r.backends.iter().map(|e| e.to_string()).collect();
            (r.vip.to_string(), b.join(","))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn endpoints_parse_and_print() {
        for (s, out) in [
            ("10.96.0.10", "10.96.0.10"),
            ("10.96.0.10:80", "10.96.0.10:80"),
            ("fd00::10", "fd00::10"),
            ("[fd00::10]:80", "[fd00::10]:80"),
            ("[fd00:0::10]", "fd00::10"),
        ] {
            assert_eq!(parse_endpoint("vip", s).unwrap().to_string(), out, "{s}");
        }
        for s in [
            "",
            "x",
            "10.0.0.300",
            "10.0.0.1:",
            "[fd00::1",
            "fd00::1]:80",
            "[::1]80",
        ] {
            let e = parse_endpoint("vip", s).unwrap_err();
            assert_eq!((e.field.as_str(), e.value.as_str()), ("vip", s));
        }
        for s in [
            "10.0.0.1:0",
            "10.0.0.1:65536",
            "[fd00::1]:99999",
            "10.0.0.1:-1",
        ] {
            let e = parse_endpoint("vip", s).unwrap_err();
            assert!(e.reason.contains("out of range"), "{s}: {e:?}");
        }
    }

    #[test]
    fn backends_and_vip_rules() {
        let b = parse_backends("b", "10.0.0.5:80, 10.0.0.6:80,10.0.0.5:80").unwrap();
        assert_eq!(b.len(), 2);
        let e = parse_backends("b", "10.0.0.5:80,[fd00::5]:80").unwrap_err();
        assert!(e.reason.contains("mix IPv4 and IPv6"), "{e:?}");
        let e = parse_vip_rule("v", "10.96.0.10:80", "[fd00::5]:80").unwrap_err();
        assert!(e.reason.contains("address family"), "{e:?}");
        let e = parse_vip_rule("v", "10.96.0.10", "10.0.0.5:80").unwrap_err();
        assert!(e.reason.contains("has no port"), "{e:?}");
        assert_eq!(e.value, "10.0.0.5:80");
        let r = parse_vip_rule("v", "10.96.0.10:80", "10.0.0.5").unwrap();
        assert_eq!(r.backends[0].port, None);
        assert!(parse_vip_rule("v", "10.96.0.10", "")
            .unwrap()
            .backends
            .is_empty());
    }

    #[test]
    fn whole_load_balancer() {
        let r = validate_load_balancer(
            &m(&[
                ("10.96.0.10:80", "10.0.0.5:8080,10.0.0.6:8080"),
                ("10.96.0.9", "10.0.0.7"),
            ]),
            "",
            &m(&[("affinity_timeout", "60"), ("reject", "true")]),
            &m(&[]),
        )
        .unwrap();
        assert_eq!(r.protocol, "tcp");
        assert_eq!(r.vips[0].vip.to_string(), "10.96.0.9");
        assert_eq!((r.affinity_timeout, r.reject), (Some(60), true));
        let e = validate_load_balancer(&m(&[]), "icmp", &m(&[]), &m(&[])).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.value.as_str()),
            ("load_balancer.protocol", "icmp")
        );
        for (k, v) in [
            ("affinity_timeout", "0"),
            ("affinity_timeout", "43201"),
            ("reject", "yes"),
        ] {
            let e = validate_load_balancer(&m(&[]), "udp", &m(&[(k, v)]), &m(&[])).unwrap_err();
            assert_eq!(e.value, v);
            assert!(e.field.ends_with(k));
        }
        let e =
            validate_load_balancer(&m(&[]), "udp", &m(&[("hairpin", "x")]), &m(&[])).unwrap_err();
        assert_eq!(e.value, "hairpin");
        let e = validate_load_balancer(
            &m(&[
                ("10.96.0.10:80", "10.0.0.6"),
                ("10.96.0.10:080", "10.0.0.5"),
            ]),
            "",
            &m(&[]),
            &m(&[]),
        )
        .unwrap_err();
        assert!(e.field.starts_with("load_balancer.vips"), "{e:?}");
    }

    #[test]
    fn health_checks() {
        let vips = m(&[
            ("10.96.0.10:80", "10.0.0.5:8080"),
            ("10.96.0.11", "10.0.0.6"),
        ]);
        let r = validate_load_balancer(
            &vips,
            "tcp",
            &m(&[]),
            &m(&[("10.96.0.10:80", "interval=2, failure=2")]),
        )
        .unwrap();
        let hc = r.health_checks.values().next().unwrap();
        assert_eq!(hc.to_string(), "interval=2,timeout=3,success=1,failure=2");
        assert_eq!(parse_health_check("h", &hc.to_string()).unwrap(), *hc);
        for (k, v, field, value) in [
            ("10.96.0.12:80", "", "health_check", "10.96.0.12:80"),
            ("10.96.0.11", "", "health_check", "10.96.0.11"),
            ("x", "", "health_check", "x"),
            ("10.96.0.10:80", "interval=0", "interval", "0"),
            ("10.96.0.10:80", "failure=101", "failure", "101"),
            ("10.96.0.10:80", "every=3", "health_check", "every"),
        ] {
            let e = validate_load_balancer(&vips, "tcp", &m(&[]), &m(&[(k, v)])).unwrap_err();
            assert!(
                e.field.contains(field) && e.value == value,
                "{k} {v}: {e:?}"
            );
        }
        // Offline backends leave the live list only where the VIP is checked.
        let r = validate_load_balancer(
            &m(&[
                ("10.96.0.10:80", "10.0.0.5:80,10.0.0.6:80"),
                ("10.96.0.9:80", "10.0.0.5:80"),
            ]),
            "tcp",
            &m(&[]),
            &m(&[("10.96.0.10:80", "")]),
        )
        .unwrap();
        let offline: std::collections::BTreeSet<String> = [
            "10.96.0.10:80 10.0.0.5:80".to_string(),
            "10.96.0.9:80 10.0.0.5:80".to_string(),
        ]
        .into();
        let checked = r
            .vips
            .iter()
            .find(|v| v.vip.to_string() == "10.96.0.10:80")
            .unwrap();
        let unchecked = r
            .vips
            .iter()
            .find(|v| v.vip.to_string() == "10.96.0.9:80")
            .unwrap();
        assert_eq!(r.live_backends(checked, &offline).len(), 1);
        assert_eq!(r.live_backends(unchecked, &offline).len(), 1);
    }
}
