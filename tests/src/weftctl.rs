//! Running `weftctl` against a testbed's controller, and reading a logical port's addresses
//! (MAC, IP, prefix length, gateway) from its `-o json show` output.

use crate::process::run_env;
use anyhow::{bail, Context};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// `weftctl --controller URL ...` (runs in the root namespace; the controller's management
/// address is local there). `env` carries the credential: by default the one the testbed
/// registered for the URL ([`crate::pki::env_for`]: its admin certificate), else plain text.
#[derive(Debug, Clone)]
pub struct Weftctl {
    pub bin: PathBuf,
    pub controller: String,
    /// Environment for every run (`WEFT_CA`/`WEFT_CERT`/`WEFT_KEY`, `WEFT_TOKEN`,
    /// `WEFT_INSECURE`).
    pub env: Vec<(String, String)>,
}

/// The addresses a pod takes from its logical port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAddress {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    /// First host address of the switch subnet (reserved for the gateway), if known.
    pub gateway: Option<Ipv4Addr>,
}

impl Weftctl {
    pub fn new(bin: PathBuf, controller: impl Into<String>) -> Self {
        let controller = controller.into();
        Weftctl {
            bin,
            env: crate::pki::env_for(&controller),
            controller,
        }
    }

    /// The same weftctl with another credential's environment (only these variables).
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Self {
        self.env = env;
        self
    }

    /// The same weftctl authenticating with certificate `cred`.
    pub fn with_credential(self, cred: &crate::pki::Credential) -> Self {
        self.with_env(cred.env())
    }

    /// The same weftctl authenticating with bearer `token` (checking the server with `ca`).
    pub fn with_token(self, ca: &std::path::Path, token: &str) -> Self {
        self.with_env(vec![
            ("WEFT_CA".into(), ca.display().to_string()),
            ("WEFT_TOKEN".into(), token.to_string()),
        ])
    }

    /// Run `weftctl --controller URL ARGS`; stdout on success.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let bin = self
            .bin
            .to_str()
            .with_context(|| format!("weftctl path not UTF-8: {}", self.bin.display()))?;
        let ctl = format!("--controller={}", self.controller);
        let mut full = vec![ctl.as_str()];
        full.extend_from_slice(args);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        run_env(bin, &full, &env)
    }

    /// Run with `-o json` and parse the output.
    pub fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut full = vec!["-o", "json"];
        full.extend_from_slice(args);
        let out = self.run(&full)?;
        serde_json::from_str(&out)
            .with_context(|| format!("weftctl {} printed invalid JSON: {out}", args.join(" ")))
    }

    /// MAC, IP and prefix of a logical port, from `show` (port addresses or, for `dynamic`,
    /// the allocated `dynamic_addresses`; prefix and gateway from the switch subnet).
    pub fn port_address(&self, lport: &str) -> anyhow::Result<PortAddress> {
        let show = self.json(&["show"])?;
        port_address_from_show(&show, lport)
    }

    /// Names of chassis that are alive.
    pub fn alive_chassis(&self) -> anyhow::Result<Vec<String>> {
        let v = self.json(&["chassis-list"])?;
        Ok(alive_chassis_from_json(&v))
    }
}

/// The command that attaches switch `sw` to router port `lrp` the ovn-nbctl way (weftctl
/// spells it the same), through a new router-type port `lsp`: `lsp-add SW LSP --
/// lsp-set-type LSP router -- lsp-set-addresses LSP router -- lsp-set-options LSP
/// router-port=LRP`.
pub fn attach_router_port_args(sw: &str, lsp: &str, lrp: &str) -> Vec<String> {
    let opt = format!("router-port={lrp}");
    [
        "lsp-add",
        sw,
        lsp,
        "--",
        "lsp-set-type",
        lsp,
        "router",
        "--",
        "lsp-set-addresses",
        lsp,
        "router",
        "--",
        "lsp-set-options",
        lsp,
        &opt,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// Chassis with `alive: true` in a `chassis-list` (or `show`) JSON reply.
pub fn alive_chassis_from_json(v: &Value) -> Vec<String> {
    v.get("chassis")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|c| c.get("alive").and_then(Value::as_bool) == Some(true))
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Pure part of [`Weftctl::port_address`].
pub fn port_address_from_show(show: &Value, lport: &str) -> anyhow::Result<PortAddress> {
    let switches = show
        .get("switches")
        .and_then(Value::as_array)
        .context("`show` JSON has no `switches` array")?;
    for sd in switches {
        let Some(ports) = sd.get("ports").and_then(Value::as_array) else {
            continue;
        };
        let Some(port) = ports
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(lport))
        else {
            continue;
        };
        let subnet = sd
            .get("switch")
            .and_then(|s| s.get("subnet"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut candidates: Vec<String> = port
            .get("addresses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(d) = port.get("dynamic_addresses").and_then(Value::as_str) {
            candidates.push(d.to_string());
        }
        for entry in &candidates {
            if let Some((mac, ip)) = parse_mac_ip(entry) {
                let (prefix_len, gateway) = subnet_info(subnet).unwrap_or((24, None));
                return Ok(PortAddress {
                    mac,
                    ip,
                    prefix_len,
                    gateway,
                });
            }
        }
        bail!("logical port {lport} has no \"MAC IP\" address yet (addresses: {candidates:?})");
    }
    bail!("logical port {lport} not found in `weftctl show`")
}

/// "MAC IP [IP...]" → (MAC, first IPv4).
pub fn parse_mac_ip(entry: &str) -> Option<(String, Ipv4Addr)> {
    let mut it = entry.split_whitespace();
    let mac = it.next()?;
    let is_mac = mac.len() == 17
        && mac.split(':').count() == 6
        && mac
            .split(':')
            .all(|o| o.len() == 2 && u8::from_str_radix(o, 16).is_ok());
    if !is_mac {
        return None;
    }
    let ip = it.find_map(|s| s.split('/').next()?.parse::<Ipv4Addr>().ok())?;
    Some((mac.to_ascii_lowercase(), ip))
}

/// "A.B.C.D/N" → (N, first host address).
pub fn subnet_info(cidr: &str) -> Option<(u8, Option<Ipv4Addr>)> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    if len > 32 {
        return None;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let net = u32::from(addr) & mask;
    let gw = (len <= 30).then(|| Ipv4Addr::from(net + 1));
    Some((len, gw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mac_ip() {
        assert_eq!(
            parse_mac_ip("0A:00:00:00:00:01 10.0.0.5"),
            Some(("0a:00:00:00:00:01".into(), Ipv4Addr::new(10, 0, 0, 5)))
        );
        assert_eq!(parse_mac_ip("dynamic"), None);
        assert_eq!(parse_mac_ip("0a:00:00:00:00:01"), None);
        assert_eq!(parse_mac_ip("zz:00:00:00:00:01 10.0.0.1"), None);
    }

    #[test]
    fn subnet() {
        assert_eq!(
            subnet_info("10.1.2.0/24"),
            Some((24, Some(Ipv4Addr::new(10, 1, 2, 1))))
        );
        assert_eq!(subnet_info("10.1.2.7/31"), Some((31, None)));
        assert_eq!(subnet_info("10.1.2.0/33"), None);
        assert_eq!(subnet_info(""), None);
    }

    #[test]
    fn port_from_show_prefers_static_then_dynamic() {
        let show = serde_json::json!({
            "switches": [
                {"switch": {"name": "sw0", "subnet": "10.0.0.0/16"},
                 "ports": [{"name": "p0", "addresses": ["dynamic"],
                            "dynamic_addresses": "0a:00:00:00:00:07 10.0.0.7"}]},
                {"switch": {"name": "sw1", "subnet": ""},
                 "ports": [{"name": "p1", "addresses": ["02:00:00:00:00:01 192.168.9.9"]}]}
            ],
            "chassis": [{"name": "host1", "alive": true}, {"name": "host2", "alive": false}],
            "revision": 3
        });
        let p0 = port_address_from_show(&show, "p0").expect("p0");
        assert_eq!(p0.ip, Ipv4Addr::new(10, 0, 0, 7));
        assert_eq!(p0.prefix_len, 16);
        assert_eq!(p0.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
        let p1 = port_address_from_show(&show, "p1").expect("p1");
        assert_eq!(p1.mac, "02:00:00:00:00:01");
        assert_eq!(p1.prefix_len, 24);
        assert!(port_address_from_show(&show, "nope").is_err());
        assert_eq!(alive_chassis_from_json(&show), vec!["host1".to_string()]);
    }
}
