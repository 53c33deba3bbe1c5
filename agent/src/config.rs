//! The agent's configuration: command-line flags (and environment variables), validated once
//! at start-up into [`AgentConfig`].

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::pipeline::Encap;

/// Errors in the agent's configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid --chassis {0:?}: 1-63 characters of [A-Za-z0-9_.-], starting with a letter or digit")]
    Chassis(String),
    #[error("invalid --encap {0:?}: expected vxlan, geneve or gre")]
    Encap(String),
    #[error("invalid --datapath {0:?}: expected netdev or system")]
    Datapath(String),
    #[error("invalid --ovsdb {0:?}: expected unix:PATH or tcp:IP:PORT")]
    Ovsdb(String),
    #[error("invalid --controller: {0}")]
    Controller(String),
    #[error("{0}")]
    Tls(String),
    #[error("invalid --bridge-mappings: {0}")]
    BridgeMappings(String),
    #[error("invalid {flag} {value:?}: expected ADDRESS:PORT (e.g. 127.0.0.1:9601) or \"off\"")]
    Listen { flag: String, value: String },
    #[error("invalid {flag} {value:?}: {reason}")]
    Mgmt {
        flag: &'static str,
        value: String,
        reason: String,
    },
}

/// Command-line flags of `weft-agent`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "weft-agent",
    version,
    about = "Weft per-host agent: programs Open vSwitch from the controller's chassis view"
)]
pub struct AgentArgs {
    /// Chassis name (unique per host).
    #[arg(long, env = "WEFT_CHASSIS")]
    pub chassis: String,
    /// Underlay IPv4 address other hosts send tunnelled traffic to.
    #[arg(long, env = "WEFT_ENCAP_IP")]
    pub encap_ip: Ipv4Addr,
    /// Encapsulations to enable, comma separated, preferred first (vxlan, geneve, gre).
    #[arg(
        long,
        env = "WEFT_ENCAP",
        default_value = "geneve",
        value_delimiter = ','
    )]
    pub encap: Vec<String>,
    /// Controller endpoints, comma separated; the agent uses any one that answers.
    #[arg(
        long,
        env = "WEFT_CONTROLLER",
        default_value = "http://127.0.0.1:7600",
        value_delimiter = ','
    )]
    pub controller: Vec<String>,
    /// OVSDB server of the local Open vSwitch.
    #[arg(
        long,
        env = "WEFT_OVSDB",
        default_value = "unix:/var/run/openvswitch/db.sock"
    )]
    pub ovsdb: String,
    /// Integration bridge the agent owns.
    #[arg(long, env = "WEFT_BRIDGE", default_value = "br-int")]
    pub bridge: String,
    /// OVS datapath type of the integration bridge.
    #[arg(long, env = "WEFT_DATAPATH", default_value = "system")]
    pub datapath: String,
    /// OVS run directory, where BRIDGE.mgmt (the OpenFlow socket) lives.
    #[arg(long, env = "OVS_RUNDIR", default_value = "/var/run/openvswitch")]
    pub ovs_rundir: PathBuf,
    /// Seconds between full resyncs (read back all flows, repair drift).
    #[arg(long, env = "WEFT_RESYNC_INTERVAL", default_value_t = 30)]
    pub resync_interval: u64,
    /// Provider networks: PHYSNET:BRIDGE pairs, comma separated (OVN's ovn-bridge-mappings);
    /// each gets a patch port pair between the integration bridge and BRIDGE.
    #[arg(long, env = "WEFT_BRIDGE_MAPPINGS", value_delimiter = ',')]
    pub bridge_mappings: Vec<String>,
    /// Serve the weft-cni plugin on this unix socket (e.g. /var/run/weft/cni.sock); off when unset.
    #[arg(long, env = "WEFT_CNI_SOCKET")]
    pub cni_socket: Option<PathBuf>,
    /// Serve Docker's remote network and IPAM driver `weft` on this unix socket (Docker finds
    /// it as /run/docker/plugins/weft.sock); off when unset.
    #[arg(long, env = "WEFT_DOCKER_PLUGIN_SOCKET")]
    pub docker_plugin_socket: Option<PathBuf>,
    /// The Docker driver's state file (networks and endpoints of this host).
    #[arg(
        long,
        env = "WEFT_DOCKER_STATE",
        default_value = "/var/lib/weft/docker-driver.json"
    )]
    pub docker_state: PathBuf,
    /// Seconds a CNI ADD waits, after plumbing the pod, for its flows to be installed on this
    /// host and every other live chassis (port up, then `--wait=hv`); past it ADD fails and
    /// undoes what it did.
    #[arg(long, env = "WEFT_CNI_READY_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub cni_ready_timeout: u64,
    /// Where /metrics, /healthz and /readyz are served (HTTP), or "off".
    #[arg(long, env = "WEFT_METRICS_LISTEN", default_value = "127.0.0.1:9601")]
    pub metrics_listen: String,
    /// Where the debug service (weft.v1.AgentDebug: flows, agent-info, physical trace) is
    /// served, or "off"; advertised to the controller in the chassis record.
    #[arg(long, env = "WEFT_DEBUG_LISTEN", default_value = "127.0.0.1:7601")]
    pub debug_listen: String,
    /// Give this host a management port on this logical switch (an OVS internal port in the
    /// host's namespace bound to the logical port `mgmt-<chassis>`, address from the
    /// controller), so the host reaches its pods and pods reach the host; off when unset.
    #[arg(long, env = "WEFT_MGMT_SWITCH")]
    pub mgmt_switch: Option<String>,
    /// The cluster's pod subnets, comma separated: the host routes them through the management
    /// port (via the router port of the management switch). Needs --mgmt-switch.
    #[arg(long, env = "WEFT_CLUSTER_SUBNETS", value_delimiter = ',')]
    pub cluster_subnets: Vec<String>,
    /// Name of the management port's link on the host (at most 15 characters).
    #[arg(long, env = "WEFT_MGMT_INTERFACE", default_value = crate::mgmt::DEFAULT_INTERFACE)]
    pub mgmt_interface: String,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// TLS flags (docs/security.md): TLS is on unless `--insecure`.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// CA certificate (PEM) the controller's certificate is checked against.
    #[arg(long, env = "WEFT_CA")]
    pub ca: Option<PathBuf>,
    /// This chassis' certificate (PEM, role agent, CN = the chassis name, SAN DNS = the
    /// chassis name); also serves the debug service.
    #[arg(long, env = "WEFT_CERT")]
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "WEFT_KEY")]
    pub key: Option<PathBuf>,
    /// Talk to the controllers in plain text (development only; logged).
    #[arg(long, env = "WEFT_INSECURE", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure: bool,
}

/// The validated configuration `run` takes.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub chassis: String,
    pub encap_ip: Ipv4Addr,
    pub encaps: Vec<Encap>,
    pub controllers: Vec<String>,
    pub ovsdb: String,
    pub bridge: String,
    pub datapath: String,
    pub ovs_rundir: PathBuf,
    pub resync_interval: Duration,
    /// Where to serve CNI requests (`crate::cni`); None: no CNI server.
    pub cni_socket: Option<PathBuf>,
    /// `--cni-ready-timeout` (also how long a Docker Join waits for flows).
    pub cni_ready_timeout: Duration,
    /// Where to serve the Docker plugin (`crate::cnm`); None: not served.
    pub docker_plugin_socket: Option<PathBuf>,
    /// `--docker-state`.
    pub docker_state: PathBuf,
    /// `--bridge-mappings`.
    pub bridge_mappings: Vec<crate::physical::BridgeMapping>,
    /// `--metrics-listen` (None: off).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `--debug-listen` (None: off).
    pub debug_listen: Option<std::net::SocketAddr>,
    /// `--ca/--cert/--key` or `--insecure`.
    pub transport: weft_proto::tls::Transport,
    /// `--mgmt-switch`, `--cluster-subnets`, `--mgmt-interface` (None: no management port).
    pub mgmt: Option<crate::mgmt::MgmtConfig>,
}

/// Validates the management port flags.
fn parse_mgmt(a: &AgentArgs) -> Result<Option<crate::mgmt::MgmtConfig>, ConfigError> {
    let bad = |flag: &'static str, value: &str, reason: String| ConfigError::Mgmt {
        flag,
        value: value.to_string(),
        reason,
    };
    let mut subnets = Vec::new();
    for s in a
        .cluster_subnets
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        let n: ipnetwork::Ipv4Network = s
            .parse()
            .map_err(|e| bad("--cluster-subnets", s, format!("not an IPv4 CIDR: {e}")))?;
        if n.ip() != n.network() {
            return Err(bad(
                "--cluster-subnets",
                s,
                format!(
                    "host bits set (the network is {}/{})",
                    n.network(),
                    n.prefix()
                ),
            ));
        }
        subnets.push(n);
    }
    let Some(sw) = a
        .mgmt_switch
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        if !subnets.is_empty() {
            return Err(bad(
                "--cluster-subnets",
                &a.cluster_subnets.join(","),
                "needs --mgmt-switch (the routes go through the management port)".into(),
            ));
        }
        return Ok(None);
    };
    weft_proto::model::validate::validate_name("--mgmt-switch", sw)
        .map_err(|e| bad("--mgmt-switch", sw, e.reason))?;
    if crate::mgmt::port_name(&a.chassis).is_none() {
        return Err(bad(
            "--chassis",
            &a.chassis,
            "too long for the management port name mgmt-<chassis> (63 characters)".into(),
        ));
    }
    let i = a.mgmt_interface.as_str();
    if i.is_empty() || i.len() > 15 || i.contains(['/', ' ', ':']) || !i.is_ascii() {
        return Err(bad(
            "--mgmt-interface",
            i,
            "a Linux link name: 1-15 characters, no '/', ':' or spaces".into(),
        ));
    }
    Ok(Some(crate::mgmt::MgmtConfig {
        switch: sw.to_string(),
        cluster_subnets: subnets,
        interface: i.to_string(),
    }))
}

/// An `ADDRESS:PORT` flag value, or "off" (None).
fn parse_listen(flag: &str, s: &str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    if s.trim() == "off" {
        return Ok(None);
    }
    s.trim().parse().map(Some).map_err(|_| ConfigError::Listen {
        flag: flag.to_string(),
        value: s.to_string(),
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl TryFrom<AgentArgs> for AgentConfig {
    type Error = ConfigError;
    fn try_from(a: AgentArgs) -> Result<Self, ConfigError> {
        if !valid_name(&a.chassis) {
            return Err(ConfigError::Chassis(a.chassis));
        }
        let mut encaps = Vec::new();
        for e in &a.encap {
            let t: Encap = e
                .trim()
                .to_ascii_lowercase()
                .parse()
                .map_err(|_| ConfigError::Encap(e.clone()))?;
            if !encaps.contains(&t) {
                encaps.push(t);
            }
        }
        if encaps.is_empty() {
            return Err(ConfigError::Encap(String::new()));
        }
        if a.datapath != "netdev" && a.datapath != "system" {
            return Err(ConfigError::Datapath(a.datapath));
        }
        if !(a.ovsdb.starts_with("unix:") || a.ovsdb.starts_with("tcp:")) {
            return Err(ConfigError::Ovsdb(a.ovsdb));
        }
        let controllers: Vec<String> = a
            .controller
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        crate::southbound::validate_endpoints(&controllers)
            .map_err(|e| ConfigError::Controller(e.to_string()))?;
        let bridge_mappings = crate::physical::parse_bridge_mappings(&a.bridge_mappings)
            .map_err(ConfigError::BridgeMappings)?;
        if bridge_mappings.iter().any(|m| m.bridge == a.bridge) {
            return Err(ConfigError::BridgeMappings(format!(
                "{} is the integration bridge",
                a.bridge
            )));
        }
        let mgmt = parse_mgmt(&a)?;
        let metrics_listen = parse_listen("--metrics-listen", &a.metrics_listen)?;
        let debug_listen = parse_listen("--debug-listen", &a.debug_listen)?;
        let t = a.tls;
        let transport = weft_proto::tls::Transport::from_flags(t.insecure, t.ca, t.cert, t.key)
            .map_err(ConfigError::Tls)?;
        if let weft_proto::tls::Transport::Tls(f) = &transport {
            if f.cert.is_none() {
                return Err(ConfigError::Tls(
                    "an agent needs --cert and --key (its chassis certificate)".into(),
                ));
            }
        }
        Ok(AgentConfig {
            mgmt,
            transport,
            metrics_listen,
            debug_listen,
            chassis: a.chassis,
            encap_ip: a.encap_ip,
            encaps,
            controllers,
            ovsdb: a.ovsdb,
            bridge: a.bridge,
            datapath: a.datapath,
            ovs_rundir: a.ovs_rundir,
            resync_interval: Duration::from_secs(a.resync_interval.max(1)),
            cni_socket: a.cni_socket,
            cni_ready_timeout: Duration::from_secs(a.cni_ready_timeout),
            docker_plugin_socket: a.docker_plugin_socket,
            docker_state: a.docker_state,
            bridge_mappings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(extra: &[&str]) -> Result<AgentConfig, ConfigError> {
        let mut argv = vec![
            "weft-agent",
            "--chassis",
            "host1",
            "--encap-ip",
            "172.31.0.1",
            "--insecure",
        ];
        argv.extend_from_slice(extra);
        AgentConfig::try_from(AgentArgs::parse_from(argv))
    }

    #[test]
    fn defaults_and_lists() {
        let c = parse(&[
            "--encap",
            "vxlan,gre",
            "--controller",
            "http://a:1,http://b:2",
        ])
        .unwrap();
        assert_eq!(c.encaps, vec![Encap::Vxlan, Encap::Gre]);
        assert_eq!(c.controllers.len(), 2);
        assert_eq!(c.bridge, "br-int");
        assert!(c.bridge_mappings.is_empty());
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9601".parse().unwrap()));
        assert_eq!(c.debug_listen, Some("127.0.0.1:7601".parse().unwrap()));
        let c = parse(&["--metrics-listen", "off", "--debug-listen", "off"]).unwrap();
        assert_eq!((c.metrics_listen, c.debug_listen), (None, None));
        let c = parse(&["--bridge-mappings", "physnet:br-ex"]).unwrap();
        assert_eq!(c.bridge_mappings[0].physnet, "physnet");
        let e = parse(&["--bridge-mappings", "br-ex"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--bridge-mappings"), "{e}");
    }

    #[test]
    fn management_port_flags() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.mgmt, None);
        let c = parse(&[
            "--mgmt-switch",
            "mgmt",
            "--cluster-subnets",
            "10.62.0.0/16,10.63.0.0/24",
        ])
        .unwrap();
        let m = c.mgmt.unwrap();
        assert_eq!(m.switch, "mgmt");
        assert_eq!(m.interface, "weft-mp0");
        assert_eq!(m.cluster_subnets.len(), 2);
        for (args, flag, value) in [
            (
                &["--cluster-subnets", "10.62.0.0/16"][..],
                "--cluster-subnets",
                "10.62.0.0/16",
            ),
            (
                &["--mgmt-switch", "m", "--cluster-subnets", "10.62.0.0/33"][..],
                "--cluster-subnets",
                "10.62.0.0/33",
            ),
            (
                &["--mgmt-switch", "m", "--cluster-subnets", "10.62.0.1/16"][..],
                "--cluster-subnets",
                "10.62.0.1/16",
            ),
            (&["--mgmt-switch", "a b"][..], "--mgmt-switch", "a b"),
            (
                &[
                    "--mgmt-switch",
                    "m",
                    "--mgmt-interface",
                    "much-too-long-name",
                ][..],
                "--mgmt-interface",
                "much-too-long-name",
            ),
        ] {
            let e = parse(args).unwrap_err().to_string();
            assert!(e.contains(flag) && e.contains(&format!("{value:?}")), "{e}");
        }
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = parse(&["--encap", "ipip"]).unwrap_err().to_string();
        assert!(e.contains("--encap") && e.contains("ipip"), "{e}");
        let e = parse(&["--datapath", "dpdk"]).unwrap_err().to_string();
        assert!(e.contains("--datapath") && e.contains("dpdk"), "{e}");
        let e = parse(&["--ovsdb", "/run/db.sock"]).unwrap_err().to_string();
        assert!(e.contains("--ovsdb"), "{e}");
        let e = parse(&["--metrics-listen", "9601"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--metrics-listen") && e.contains("\"9601\""),
            "{e}"
        );
        let e = parse(&["--debug-listen", "x:y"]).unwrap_err().to_string();
        assert!(e.contains("--debug-listen") && e.contains("x:y"), "{e}");
    }
}
