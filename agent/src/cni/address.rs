//! Static addresses the runtime asks for: `IP=`/`MAC=` in `CNI_ARGS` (what podman's CNI
//! backend sends for `--ip`/`--mac-address`) and `runtimeConfig.ips`/`runtimeConfig.mac`
//! (the `ips`/`mac` capabilities, what Kubernetes and Multus send). Pure: parsing, merging
//! and checking against the switch's subnet; errors name where the value came from with the
//! CNI code the spec gives that place (4 for `CNI_ARGS`, 7 for the configuration).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::spec::CniError;

/// Where a requested value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `CNI_ARGS` (`IP=`, `MAC=`).
    CniArgs,
    /// `runtimeConfig.ips` / `runtimeConfig.mac`.
    RuntimeConfig,
}

/// A value the runtime asked for, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requested<T> {
    pub value: T,
    pub from: Source,
}

/// What the runtime asked for; both None: a dynamic address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Requested<Ipv4Addr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Requested<String>>,
}

/// The error for a bad requested value: code 4 naming `CNI_ARGS KEY=VALUE`, or code 7 naming
/// the `runtimeConfig` field.
pub fn refuse(from: Source, key: &str, value: &str, reason: impl Into<String>) -> CniError {
    match from {
        Source::CniArgs => CniError::InvalidEnv {
            var: "CNI_ARGS",
            value: format!("{key}={value}"),
            reason: reason.into(),
        },
        Source::RuntimeConfig => CniError::InvalidConfig {
            field: if key == "MAC" {
                "runtimeConfig.mac"
            } else {
                "runtimeConfig.ips"
            },
            value: format!("{value:?}"),
            reason: reason.into(),
        },
    }
}

/// One IPv4 address out of a list of `IP` or `IP/PREFIX` strings (IPv6 and more than one
/// IPv4 address are refused: a pod interface gets one IPv4 address).
fn one_ipv4<'a>(
    from: Source,
    raw: &str,
    items: impl Iterator<Item = &'a str>,
) -> Result<Option<Ipv4Addr>, CniError> {
    let mut found = None;
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let addr = item.split_once('/').map_or(item, |(a, p)| {
            if p.parse::<u8>().is_ok_and(|p| p <= 32) {
                a
            } else {
                "invalid"
            }
        });
        match addr.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => {
                if found.is_some() {
                    return Err(refuse(
                        from,
                        "IP",
                        raw,
                        "more than one IPv4 address; a pod interface gets one",
                    ));
                }
                found = Some(ip);
            }
            Ok(IpAddr::V6(_)) => {
                return Err(refuse(
                    from,
                    "IP",
                    raw,
                    format!("{item} is IPv6; Weft pod interfaces are IPv4 only"),
                ))
            }
            Err(_) => {
                return Err(refuse(
                    from,
                    "IP",
                    raw,
                    format!("{item:?} is not an IPv4 address (expected A.B.C.D or A.B.C.D/LEN)"),
                ))
            }
        }
    }
    Ok(found)
}

fn mac(from: Source, raw: &str) -> Result<String, CniError> {
    weft_proto::model::parse_mac(raw.trim()).map_err(|reason| refuse(from, "MAC", raw, reason))
}

/// Reads the request from `CNI_ARGS` and the configuration's `runtimeConfig` (`ips`, `mac`).
/// `runtimeConfig` wins when both set the same thing (it is what the capability asks for);
/// a malformed value in either is an error.
pub fn parse(
    args: &BTreeMap<String, String>,
    runtime_config: Option<&Value>,
) -> Result<AddressRequest, CniError> {
    let mut req = AddressRequest::default();
    if let Some(raw) = args.get("IP") {
        req.ip = one_ipv4(Source::CniArgs, raw, raw.split(','))?.map(|value| Requested {
            value,
            from: Source::CniArgs,
        });
    }
    if let Some(raw) = args.get("MAC") {
        req.mac = Some(Requested {
            value: mac(Source::CniArgs, raw)?,
            from: Source::CniArgs,
        });
    }
    let Some(rc) = runtime_config else {
        return Ok(req);
    };
    let Some(rc) = rc.as_object() else {
        return Err(CniError::InvalidConfig {
            field: "runtimeConfig",
            value: rc.to_string(),
            reason: "expected an object".into(),
        });
    };
    match rc.get("ips") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            let mut strs = Vec::new();
            for i in items {
                match i.as_str() {
                    Some(s) => strs.push(s),
                    None => {
                        return Err(refuse(
                            Source::RuntimeConfig,
                            "IP",
                            &Value::Array(items.clone()).to_string(),
                            format!("entry {i} is not a string"),
                        ))
                    }
                }
            }
            let raw = strs.join(",");
            if let Some(value) = one_ipv4(Source::RuntimeConfig, &raw, strs.iter().copied())? {
                req.ip = Some(Requested {
                    value,
                    from: Source::RuntimeConfig,
                });
            }
        }
        Some(other) => {
            return Err(refuse(
                Source::RuntimeConfig,
                "IP",
                &other.to_string(),
                "expected an array of address strings",
            ))
        }
    }
    match rc.get("mac") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            req.mac = Some(Requested {
                value: mac(Source::RuntimeConfig, s)?,
                from: Source::RuntimeConfig,
            });
        }
        Some(other) => {
            return Err(refuse(
                Source::RuntimeConfig,
                "MAC",
                &other.to_string(),
                "expected a MAC address string",
            ))
        }
    }
    Ok(req)
}

/// The MAC for a requested IP without a requested MAC: `0a:58:` and the four octets of the
/// IP (the convention ovn-kubernetes uses; the controller's own derived MACs start with
/// `0a:00:00`, so the two never meet by derivation).
pub fn mac_for_requested_ip(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    weft_proto::model::format_mac([0x0a, 0x58, o[0], o[1], o[2], o[3]])
}

/// Checks a requested IP against the switch (subnet membership, not the network, broadcast
/// or gateway address) with the model's own address rules, returning the error for where it
/// came from.
pub fn check_in_subnet(
    ip: &Requested<Ipv4Addr>,
    subnet: &str,
    switch: &str,
) -> Result<(), CniError> {
    let net = weft_proto::model::parse_subnet("subnet", subnet).map_err(|e| {
        CniError::Controller(format!(
            "logical switch {switch:?} has an unusable subnet {subnet:?}: {e}"
        ))
    })?;
    let entry = format!("0a:58:00:00:00:01 {}", ip.value);
    weft_proto::model::parse_addresses(&[entry], Some(net), switch)
        .map(|_| ())
        .map_err(|e| refuse(ip.from, "IP", &ip.value.to_string(), e.reason))
}

/// Which port, if any, already holds `ip` or `mac` on the switch: `ports` are (name, its
/// addresses and dynamic addresses as stored). `own` is the port the request is for.
pub fn holder<'a>(
    ports: &'a [(String, Vec<String>)],
    own: &str,
    ip: Option<Ipv4Addr>,
    mac: Option<&str>,
) -> Option<(&'a str, String)> {
    for (name, addrs) in ports {
        if name == own {
            continue;
        }
        for a in addrs {
            let mut words = a.split_whitespace();
            let Some(first) = words.next() else { continue };
            if mac.is_some_and(|m| first.eq_ignore_ascii_case(m)) {
                return Some((name.as_str(), format!("MAC {first}")));
            }
            for w in words {
                let w = w.split('/').next().unwrap_or(w);
                if ip.is_some_and(|ip| w.parse::<Ipv4Addr>().ok() == Some(ip)) {
                    return Some((name.as_str(), format!("IP {w}")));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(s: &str) -> BTreeMap<String, String> {
        super::super::spec::parse_cni_args(s).expect("args")
    }

    #[test]
    fn cni_args_and_runtime_config() {
        let r = parse(
            &args("IgnoreUnknown=1;IP=10.0.0.50;MAC=0A:58:00:00:00:32"),
            None,
        )
        .expect("ok");
        assert_eq!(
            r.ip.as_ref().map(|i| i.value),
            Some(Ipv4Addr::new(10, 0, 0, 50))
        );
        assert_eq!(r.ip.as_ref().map(|i| i.from), Some(Source::CniArgs));
        assert_eq!(
            r.mac.as_ref().map(|m| m.value.as_str()),
            Some("0a:58:00:00:00:32")
        );
        let r = parse(&args("IP=10.0.0.50/24"), None).expect("cidr ok");
        assert_eq!(r.ip.map(|i| i.value), Some(Ipv4Addr::new(10, 0, 0, 50)));
        let rc = json!({"ips": ["10.0.0.7/24"], "mac": "0a:00:00:00:00:07", "portMappings": []});
        let r = parse(&args("IP=10.0.0.50"), Some(&rc)).expect("ok");
        assert_eq!(
            r.ip.as_ref().map(|i| i.value),
            Some(Ipv4Addr::new(10, 0, 0, 7))
        );
        assert_eq!(r.ip.map(|i| i.from), Some(Source::RuntimeConfig));
        assert_eq!(r.mac.map(|m| m.from), Some(Source::RuntimeConfig));
        assert_eq!(
            parse(&args(""), Some(&json!({}))).expect("none"),
            AddressRequest::default()
        );
    }

    #[test]
    fn malformed_requests_name_their_source() {
        let e = parse(&args("IP=10.0.0.300"), None).expect_err("refused");
        assert_eq!(e.code(), 4);
        assert!(
            e.to_string().contains("CNI_ARGS") && e.to_string().contains("IP=10.0.0.300"),
            "{e}"
        );
        let e = parse(&args("IP=10.0.0.5,10.0.0.6"), None).expect_err("refused");
        assert!(e.to_string().contains("more than one"), "{e}");
        let e = parse(&args("IP=fd00::5"), None).expect_err("refused");
        assert!(e.to_string().contains("IPv6"), "{e}");
        let e = parse(&args("MAC=01:00:00:00:00:01"), None).expect_err("refused");
        assert_eq!(e.code(), 4);
        assert!(e.to_string().contains("multicast"), "{e}");
        let e = parse(&args(""), Some(&json!({"ips": "10.0.0.5"}))).expect_err("refused");
        assert_eq!(e.code(), 7);
        assert!(e.to_string().contains("runtimeConfig.ips"), "{e}");
        let e = parse(&args(""), Some(&json!({"ips": [5]}))).expect_err("refused");
        assert_eq!(e.code(), 7);
        let e = parse(&args(""), Some(&json!({"mac": "zz"}))).expect_err("refused");
        assert!(e.to_string().contains("runtimeConfig.mac"), "{e}");
        let e = parse(&args(""), Some(&json!({"ips": ["10.0.0.5/40"]}))).expect_err("refused");
        assert_eq!(e.code(), 7);
        assert_eq!(
            parse(&args(""), Some(&json!([])))
                .expect_err("refused")
                .code(),
            7
        );
    }

    #[test]
    fn subnet_and_holders() {
        let ip = |a: [u8; 4], from| Requested {
            value: Ipv4Addr::from(a),
            from,
        };
        assert!(check_in_subnet(&ip([10, 0, 0, 50], Source::CniArgs), "10.0.0.0/24", "s").is_ok());
        let e = check_in_subnet(&ip([10, 9, 0, 50], Source::CniArgs), "10.0.0.0/24", "s")
            .expect_err("refused");
        assert_eq!(e.code(), 4);
        assert!(e.to_string().contains("outside subnet"), "{e}");
        let e = check_in_subnet(
            &ip([10, 0, 0, 1], Source::RuntimeConfig),
            "10.0.0.0/24",
            "s",
        )
        .expect_err("refused");
        assert_eq!(e.code(), 7);
        assert!(e.to_string().contains("gateway"), "{e}");
        assert!(
            check_in_subnet(&ip([10, 0, 0, 255], Source::CniArgs), "10.0.0.0/24", "s").is_err()
        );
        let ports = vec![
            (
                "a".to_string(),
                vec!["0a:00:00:00:00:05 10.0.0.5".to_string()],
            ),
            (
                "b".to_string(),
                vec![
                    "dynamic".to_string(),
                    "0a:00:00:00:00:06 10.0.0.6".to_string(),
                ],
            ),
        ];
        assert_eq!(
            holder(&ports, "x", Some(Ipv4Addr::new(10, 0, 0, 6)), None),
            Some(("b", "IP 10.0.0.6".to_string()))
        );
        assert_eq!(
            holder(&ports, "b", Some(Ipv4Addr::new(10, 0, 0, 6)), None),
            None
        );
        assert_eq!(
            holder(&ports, "x", None, Some("0A:00:00:00:00:05")).map(|h| h.0),
            Some("a")
        );
        assert_eq!(
            holder(&ports, "x", Some(Ipv4Addr::new(10, 0, 0, 7)), None),
            None
        );
        assert_eq!(
            mac_for_requested_ip(Ipv4Addr::new(10, 244, 0, 50)),
            "0a:58:0a:f4:00:32"
        );
    }
}
