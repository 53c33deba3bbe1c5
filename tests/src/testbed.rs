//! The multi-host testbed: etcd, K `weft-controller`s, N simulated hosts, pods — all on one
//! machine, in network namespaces, torn down on drop. Start with [`TestbedConfig`]:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use weft_testbed::testbed::{Encap, TestbedConfig};
//! let mut tb = TestbedConfig::new().hosts(2).encap(Encap::Vxlan).start()?;
//! tb.ctl(&["ls-add", "sw0", "--subnet", "10.0.0.0/24"])?;
//! for p in ["p1", "p2"] {
//!     tb.ctl(&["lsp-add", "sw0", p])?;
//!     tb.ctl(&["lsp-set-addresses", p, "dynamic"])?;
//! }
//! let p1 = tb.add_pod(1, "p1", "p1")?;
//! let p2 = tb.add_pod(2, "p2", "p2")?;
//! tb.sync()?;
//! assert!(p1.ping(p2.ip, 3)?.all());
//! # Ok(()) }
//! ```
//!
//! # Topology
//!
//! ```text
//!  root netns                 PFX-fab (fabric netns)                 PFX-hN (host N)
//!  ─────────────              ──────────────────────                 ─────────────────────────
//!  etcd 127.0.0.1:E
//!  weft-controller ×K         brm (Linux bridge, management)
//!   listen 10.a.b.1:Pk  PFX-m ═ up0 ┤                 ├ mN ══════════ mgmt0 10.a.b.(10+N)/24
//!   (addr on PFX-m)                                                   weft-agent ──▶ 10.a.b.1:Pk
//!                             brf (Linux bridge, underlay)
//!                                 ├ uN ═══════════════════════════ ul0 ─ port of OVS br-phy
//!                                                                   br-phy (netdev) 172.31.0.(10+N)/24
//!                                                                   br-int (netdev) ─ pod veths
//!                                                                   ovsdb-server + ovs-vswitchd
//!  PFX-p-NAME (pod): eth0 ═ veth vXXXXXXXX on the host's br-int (iface-id = logical port)
//! ```
//!
//! **Management network (how agents reach controllers).** A host namespace cannot reach the
//! root namespace's loopback, so controllers listen on `10.a.b.1`, the address of the root end
//! (`PFX-m`) of a veth whose other end is a port of the management bridge `brm` in the fabric.
//! Each host has a second veth `mgmt0` into `brm` — a plain kernel path that never crosses an
//! OVS bridge, like a real out-of-band management network, so agent↔controller TCP needs no
//! checksum workaround and keeps working while OVS on the host is down. The test process (and
//! `weftctl`) reach the controllers at the same URL, since `10.a.b.1` is local in the root
//! namespace. `10.a.b.0/24` is picked at random in `10.128.0.0/9`, avoiding every address and
//! route already in the root namespace; it is the only thing a run adds there besides `PFX-m`.
//!
//! The underlay (`172.31.0.0/24`, the same for every run: it only exists inside the run's
//! namespaces) is separate: tunnel traffic goes pod → br-int → tunnel port → br-phy → ul0 →
//! brf → the other host.
//!
//! Every process gets `WEFT_TESTBED=PFX` in its environment and is tracked by PID; the run's
//! files are in `/tmp/weft-testbed/PFX` (with the owner's PID in `owner.pid`). Drop kills and
//! deletes everything; [`crate::net::cleanup_stale`] and [`crate::net::cleanup_orphans`] clean
//! up after a run that crashed.

use crate::etcd::{Etcd, EtcdConfig};
use crate::net::{self, ip, ip_n, netns_add, netns_del, tx_offload_off, Names, MARKER_ENV};
use crate::ovs::{Ovs, OvsConfig};
use crate::pki::Pki;
use crate::pod::{create_pod, delete_pod, Pod, PodSpec};
use crate::process::{wait_until, Proc, ProcSpec, WorkDir};
use crate::weftctl::{PortAddress, Weftctl};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Integration bridge name.
pub const BR_INT: &str = "br-int";
/// Underlay bridge name.
pub const BR_PHY: &str = "br-phy";
/// Underlay subnet (first three octets); host N has `.10+N`.
pub const UNDERLAY_NET: [u8; 3] = [172, 31, 0];
/// The provider network of `TestbedConfig::external` (inside the namespaces only): every
/// host's `br-ex` and the outside namespace, at [`OUTSIDE_OCTET`], are on it.
pub const EXTERNAL_NET: [u8; 3] = [172, 16, 0];
/// The outside namespace's address on [`EXTERNAL_NET`].
pub const OUTSIDE_OCTET: u8 = 254;
/// A network behind the outside namespace (its loopback has [`BEYOND_IP`]): reached
/// through the outside only with a static route.
pub const BEYOND_NET: [u8; 3] = [198, 51, 100];
pub const BEYOND_IP: &str = "198.51.100.1";
/// The provider bridge of every host, mapped as [`PHYSNET`].
pub const BR_EX: &str = "br-ex";
pub const PHYSNET: &str = "physnet";
/// Set this environment variable to keep a test run's directory (logs, OVS dbs) after
/// teardown; processes and namespaces are removed all the same.
pub const KEEP_ENV: &str = "WEFT_TESTBED_KEEP";
/// etcd key prefix the controllers use.
pub const ETCD_PREFIX: &str = "/weft";

/// Tunnel encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encap {
    #[default]
    Geneve,
    Vxlan,
    Gre,
}

impl Encap {
    pub const ALL: [Encap; 3] = [Encap::Geneve, Encap::Vxlan, Encap::Gre];

    pub fn as_str(self) -> &'static str {
        match self {
            Encap::Geneve => "geneve",
            Encap::Vxlan => "vxlan",
            Encap::Gre => "gre",
        }
    }

    /// Bytes the encapsulation adds on an IPv4 underlay: outer IP 20 + UDP 8 + header 8 +
    /// inner Ethernet 14 for VXLAN (50); Geneve likewise plus room for 8 bytes of options
    /// (58, as OVN); GRE with key: IP 20 + GRE 8 + inner Ethernet 14 (42).
    pub fn overhead(self) -> u32 {
        match self {
            Encap::Geneve => 58,
            Encap::Vxlan => 50,
            Encap::Gre => 42,
        }
    }
}

impl std::str::FromStr for Encap {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Encap> {
        match s.trim().to_ascii_lowercase().as_str() {
            "geneve" => Ok(Encap::Geneve),
            "vxlan" => Ok(Encap::Vxlan),
            "gre" => Ok(Encap::Gre),
            other => bail!("invalid encap {other:?}: want vxlan, geneve or gre"),
        }
    }
}

impl std::fmt::Display for Encap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to build a [`Testbed`]. Setters chain; [`TestbedConfig::start`] builds it.
#[derive(Debug, Clone)]
pub struct TestbedConfig {
    /// Number of simulated hosts (`host1`..`hostN`), 1..=100. Default 2.
    pub hosts: usize,
    /// Number of `weft-controller` replicas, 0..=9. Default 1.
    pub controllers: usize,
    /// Start a `weft-agent` on each host (needs at least one controller). Default true.
    pub agents: bool,
    /// Encapsulation the agents use. Default Geneve.
    pub encap: Encap,
    /// Run prefix (see [`crate::net::validate_prefix`]); default random `wtXXXXXX`.
    pub prefix: Option<String>,
    /// Directory for the run's files; default `/tmp/weft-testbed/PFX`, removed on drop.
    /// A given directory is kept.
    pub dir: Option<PathBuf>,
    /// Start every process in its own session so it survives this process (sandbox); see
    /// [`Testbed::leak`].
    pub detach: bool,
    /// MTU of the underlay links. Default 1500.
    pub underlay_mtu: u32,
    /// `RUST_LOG` for controllers and agents. Default `info`.
    pub log_filter: String,
    /// How long [`TestbedConfig::start`] waits for every agent's chassis to be alive.
    pub chassis_timeout: Duration,
    /// Called with a line of progress for each step (sandbox); default none.
    pub progress: Option<fn(&str)>,
    /// Extra arguments for every agent (e.g. `--resync-interval 600`); default none.
    pub agent_args: Vec<String>,
    /// Plain text everywhere (`--insecure`). Default false: a CA is made in `DIR/pki`, etcd
    /// serves TLS with client certificates, the controllers serve TLS and authorize by
    /// certificate, every agent presents its chassis certificate, weftctl an admin one.
    pub insecure: bool,
    /// Every agent serves CNI (`--cni-socket DIR/hN/cni.sock`, see [`Host::cni_socket`]), so
    /// the real `weft-cni` plugin can be driven against any host. Default false.
    pub cni: bool,
    /// An "outside" namespace on a provider network that every host's `br-ex` reaches
    /// (agents get `--bridge-mappings physnet:br-ex`). Default false.
    pub external: bool,
    /// Every agent serves the Docker plugin (`--docker-plugin-socket DIR/hN/plugins/weft.sock`,
    /// see [`crate::docker`]), so a dockerd started with [`Testbed::start_dockerd`] finds it.
    /// Default false.
    pub docker: bool,
    /// Every agent gets a host management port on this switch (`--mgmt-switch`,
    /// `--cluster-subnets`); the switch is created with its subnet if missing. Default none.
    pub mgmt: Option<MgmtSetup>,
}

/// The management port every agent of a testbed gets ([`TestbedConfig::mgmt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MgmtSetup {
    /// The logical switch (`--mgmt-switch`).
    pub switch: String,
    /// Its subnet, used when the testbed creates it (`ls-add SWITCH --subnet CIDR`).
    pub subnet: String,
    /// `--cluster-subnets` (may be empty).
    pub cluster_subnets: Vec<String>,
}

impl Default for TestbedConfig {
    fn default() -> Self {
        TestbedConfig {
            hosts: 2,
            controllers: 1,
            agents: true,
            // WEFT_TEST_ENCAP=vxlan|gre|geneve runs the tests that do not pick one over it.
            encap: std::env::var("WEFT_TEST_ENCAP")
                .ok()
                .and_then(|e| e.parse().ok())
                .unwrap_or(Encap::Geneve),
            prefix: None,
            dir: None,
            detach: false,
            underlay_mtu: 1500,
            log_filter: "info".into(),
            chassis_timeout: Duration::from_secs(60),
            progress: None,
            agent_args: Vec::new(),
            insecure: false,
            cni: false,
            external: false,
            docker: false,
            mgmt: None,
        }
    }
}

impl TestbedConfig {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn hosts(mut self, n: usize) -> Self {
        self.hosts = n;
        self
    }
    pub fn controllers(mut self, k: usize) -> Self {
        self.controllers = k;
        self
    }
    /// Adds arguments to every agent's command line.
    pub fn agent_args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.agent_args.extend(args.into_iter().map(Into::into));
        self
    }
    /// Agents serve CNI on `DIR/hN/cni.sock`.
    pub fn cni(mut self, on: bool) -> Self {
        self.cni = on;
        self
    }
    /// The outside namespace and every host's provider bridge (see the field).
    pub fn external(mut self, on: bool) -> Self {
        self.external = on;
        self
    }
    /// See [`TestbedConfig::docker`].
    pub fn docker(mut self, on: bool) -> Self {
        self.docker = on;
        self
    }
    pub fn agents(mut self, on: bool) -> Self {
        self.agents = on;
        self
    }
    pub fn encap(mut self, e: Encap) -> Self {
        self.encap = e;
        self
    }
    pub fn prefix(mut self, p: impl Into<String>) -> Self {
        self.prefix = Some(p.into());
        self
    }
    pub fn dir(mut self, d: impl Into<PathBuf>) -> Self {
        self.dir = Some(d.into());
        self
    }
    pub fn detach(mut self, on: bool) -> Self {
        self.detach = on;
        self
    }
    pub fn progress(mut self, f: fn(&str)) -> Self {
        self.progress = Some(f);
        self
    }
    pub fn log_filter(mut self, f: impl Into<String>) -> Self {
        self.log_filter = f.into();
        self
    }
    /// Every agent gets a management port on `switch` (created with `subnet` if missing) and
    /// routes for `cluster_subnets` through it.
    pub fn mgmt(mut self, switch: &str, subnet: &str, cluster_subnets: &[&str]) -> Self {
        self.mgmt = Some(MgmtSetup {
            switch: switch.into(),
            subnet: subnet.into(),
            cluster_subnets: cluster_subnets.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// Plain text everywhere (see [`TestbedConfig::insecure`]).
    pub fn insecure(mut self, on: bool) -> Self {
        self.insecure = on;
        self
    }

    /// Check the config: field and value named on error.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=100).contains(&self.hosts) {
            bail!("hosts = {}: want 1..=100", self.hosts);
        }
        if self.controllers > 9 {
            bail!("controllers = {}: want 0..=9", self.controllers);
        }
        if self.agents && self.controllers == 0 {
            bail!("agents = true needs controllers >= 1 (controllers = 0)");
        }
        if !(576..=9000).contains(&self.underlay_mtu) {
            bail!("underlay_mtu = {}: want 576..=9000", self.underlay_mtu);
        }
        if let Some(p) = &self.prefix {
            net::validate_prefix(p)?;
        }
        if let Some(m) = &self.mgmt {
            if self.controllers == 0 {
                bail!("mgmt = {:?} needs controllers >= 1", m.switch);
            }
            for s in std::iter::once(&m.subnet).chain(&m.cluster_subnets) {
                let ok = s.split_once('/').is_some_and(|(a, l)| {
                    a.parse::<std::net::Ipv4Addr>().is_ok()
                        && l.parse::<u8>().is_ok_and(|l| l <= 32)
                });
                if !ok {
                    bail!("mgmt subnet {s:?}: not an IPv4 CIDR");
                }
            }
        }
        Ok(())
    }

    /// Build the testbed (see the module docs). On error everything started is torn down.
    pub fn start(self) -> anyhow::Result<Testbed> {
        Testbed::start(self)
    }
}

/// Missing prerequisites, each with how to fix it; empty when all is there.
pub fn missing_prerequisites(cfg: &TestbedConfig) -> Vec<String> {
    let mut missing = Vec::new();
    if !crate::is_root() {
        missing.push(
            "root privileges (network namespaces need them): run as root, e.g. with sudo".into(),
        );
    }
    let install = "run scripts/setup.sh, or apt-get install openvswitch-switch etcd-server";
    for (prog, pkg) in [
        ("ip", "iproute2"),
        ("ethtool", "ethtool"),
        ("ping", "iputils-ping"),
        ("ovsdb-server", "openvswitch-switch"),
        ("ovs-vswitchd", "openvswitch-switch"),
        ("ovs-vsctl", "openvswitch-switch"),
        ("ovs-ofctl", "openvswitch-switch"),
        ("ovsdb-tool", "openvswitch-switch"),
        ("etcd", "etcd-server"),
    ] {
        if crate::etcd::which(prog).is_none() {
            missing.push(format!("`{prog}` (package {pkg}): {install}"));
        }
    }
    let mut bins = Vec::new();
    if cfg.controllers > 0 {
        bins.push("weft-controller");
        bins.push("weftctl");
    }
    if cfg.agents {
        bins.push("weft-agent");
    }
    for b in bins {
        if let Err(e) = crate::find_bin(b) {
            missing.push(e.to_string());
        }
    }
    missing
}

/// A `weft-controller` replica.
#[derive(Debug)]
pub struct Controller {
    /// `http://10.a.b.1:PORT`.
    pub url: String,
    pub listen: SocketAddr,
    /// `http://10.a.b.1:PORT/metrics` (also `/healthz`, `/readyz`).
    pub metrics_url: String,
    proc: Proc,
}

/// A simulated host.
#[derive(Debug)]
pub struct Host {
    /// 1-based.
    pub index: usize,
    /// Chassis name, `hostN`.
    pub name: String,
    pub netns: String,
    pub underlay_ip: Ipv4Addr,
    pub mgmt_ip: Ipv4Addr,
    /// Where the agent serves `/metrics`, `/healthz`, `/readyz` (`--metrics-listen`).
    pub metrics_addr: SocketAddr,
    /// Where the agent serves `weft.v1.AgentDebug` (`--debug-listen`).
    pub debug_addr: SocketAddr,
    /// Where the agent serves CNI ([`TestbedConfig::cni`]): `DIR/hN/cni.sock`.
    pub cni_socket: Option<PathBuf>,
    ovs: Ovs,
    agent: Option<Proc>,
}

impl Host {
    /// The agent's `http://MGMT_IP:PORT/metrics` URL (also `/healthz`, `/readyz`).
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_addr)
    }

    /// The host's OVS.
    pub fn ovs(&self) -> &Ovs {
        &self.ovs
    }

    /// Run a command in the host's namespace.
    pub fn exec(&self, cmd: &[&str]) -> anyhow::Result<String> {
        crate::process::run_in(&self.netns, cmd[0], &cmd[1..])
    }

    /// `ovs-ofctl -O OpenFlow15 dump-flows br-int`.
    pub fn dump_flows(&self) -> anyhow::Result<String> {
        self.ovs.ofctl(&["-O", "OpenFlow15", "dump-flows", BR_INT])
    }

    /// Whether the agent process is alive.
    pub fn agent_running(&mut self) -> bool {
        self.agent.as_mut().is_some_and(Proc::is_running)
    }

    /// The agent's PID while running.
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().and_then(Proc::pid)
    }

    /// The agent's log file (stdout + stderr).
    pub fn agent_log(&self) -> Option<&Path> {
        self.agent.as_ref().map(|a| a.spec().log.as_path())
    }
}

/// A running multi-host deployment. Drop tears it all down (unless [`Testbed::leak`]ed).
#[derive(Debug)]
pub struct Testbed {
    cfg: TestbedConfig,
    names: Names,
    dir: WorkDir,
    /// Remove `dir` on teardown (owned run dir under /tmp/weft-testbed).
    remove_dir: bool,
    mgmt_net: Option<[u8; 3]>,
    etcd: Option<Etcd>,
    controllers: Vec<Controller>,
    hosts: Vec<Host>,
    pods: BTreeMap<String, Pod>,
    leaked: bool,
    /// The run's CA (None with [`TestbedConfig::insecure`]).
    pki: Option<Pki>,
}

impl Testbed {
    /// Same as `cfg.start()`.
    pub fn start(cfg: TestbedConfig) -> anyhow::Result<Testbed> {
        cfg.validate()?;
        let missing = missing_prerequisites(&cfg);
        if !missing.is_empty() {
            bail!("missing prerequisites:\n  - {}", missing.join("\n  - "));
        }
        net::cleanup_orphans();
        let prefix = cfg.prefix.clone().unwrap_or_else(net::random_prefix);
        let names = Names::new(&prefix)?;
        if net::netns_exists(&names.fabric()) || net::link_exists(&names.root_link()) {
            bail!(
                "a testbed with prefix {prefix} already exists (netns {} or link {}); \
                 tear it down first (cleanup_stale)",
                names.fabric(),
                names.root_link()
            );
        }
        let (dir, remove_dir) = match &cfg.dir {
            Some(d) => (WorkDir::kept(d)?, false),
            None => (
                WorkDir::kept(&Path::new(net::RUNS_DIR).join(&prefix))?,
                true,
            ),
        };
        if !cfg.detach {
            std::fs::write(dir.path().join("owner.pid"), std::process::id().to_string())?;
        }
        let mut tb = Testbed {
            cfg,
            names,
            dir,
            remove_dir,
            mgmt_net: None,
            etcd: None,
            controllers: Vec::new(),
            hosts: Vec::new(),
            pods: BTreeMap::new(),
            leaked: false,
            pki: None,
        };
        // On error, `tb` is dropped here and tears down what was built.
        tb.build()?;
        Ok(tb)
    }

    fn progress(&self, msg: &str) {
        if let Some(f) = self.cfg.progress {
            f(msg);
        }
    }

    fn marker(&self) -> Vec<(String, String)> {
        vec![(MARKER_ENV.to_string(), self.names.prefix.clone())]
    }

    fn build(&mut self) -> anyhow::Result<()> {
        let etcd_tls = if self.cfg.insecure {
            None
        } else {
            self.progress("creating the CA and etcd's certificate (TLS)");
            let pki = Pki::create(&self.dir.path().join("pki"))?;
            let etcd = pki.issue("etcd", "controller", &["127.0.0.1", "localhost"])?;
            pki.issue("admin", "admin", &[])?;
            self.pki = Some(pki);
            Some(etcd)
        };
        self.progress("starting etcd");
        self.etcd = Some(Etcd::start_with(EtcdConfig {
            dir: Some(self.dir.path().join("etcd")),
            detach: self.cfg.detach,
            env: self.marker(),
            tls: etcd_tls,
        })?);
        self.progress("creating the fabric and management network");
        self.build_fabric()?;
        if self.cfg.external {
            self.progress("creating the outside namespace and the provider network");
            self.build_outside()?;
        }
        if let Some(pki) = &self.pki {
            // One server certificate for every replica: they share the management address.
            let ip = net::addr_in(self.mgmt_net()?, 1).to_string();
            pki.issue(
                "controller",
                "controller",
                &[ip.as_str(), "127.0.0.1", "localhost"],
            )?;
        }
        for k in 1..=self.cfg.controllers {
            self.progress(&format!(
                "starting weft-controller {k}/{}",
                self.cfg.controllers
            ));
            self.add_controller()?;
        }
        if let Some(m) = self.cfg.mgmt.clone() {
            self.progress(&format!(
                "creating the management switch {} ({}) unless it exists",
                m.switch, m.subnet
            ));
            self.ctl(&["ls-add", "--may-exist", &m.switch, "--subnet", &m.subnet])?;
        }
        for n in 1..=self.cfg.hosts {
            self.progress(&format!(
                "starting host{n} ({n}/{}): netns, OVS, underlay{}",
                self.cfg.hosts,
                if self.cfg.agents { ", weft-agent" } else { "" }
            ));
            self.add_host(n)?;
        }
        if self.cfg.agents {
            self.progress("waiting for every chassis to register");
            let names: Vec<String> = self.hosts.iter().map(|h| h.name.clone()).collect();
            self.wait_chassis_alive(&names, self.cfg.chassis_timeout)?;
        }
        Ok(())
    }

    fn build_fabric(&mut self) -> anyhow::Result<()> {
        let fab = self.names.fabric();
        netns_add(&fab)?;
        for br in ["brf", "brm"] {
            ip_n(&fab, &["link", "add", br, "type", "bridge"])?;
            ip_n(&fab, &["link", "set", br, "up"])?;
        }
        let root = self.names.root_link();
        let mut chosen = None;
        for _ in 0..5 {
            let netp = net::pick_mgmt_subnet()?;
            ip(&[
                "link", "add", &root, "type", "veth", "peer", "name", "up0", "netns", &fab,
            ])?;
            let cidr = format!("{}/24", net::addr_in(netp, 1));
            ip(&["addr", "add", &cidr, "dev", &root])?;
            if net::mgmt_subnet_conflicts(netp, &root) {
                // A concurrent run picked the same /24 at the same moment: try another.
                let _ = ip(&["link", "del", &root]);
                continue;
            }
            chosen = Some(netp);
            break;
        }
        let netp = chosen.context("could not find a free management /24")?;
        ip(&["link", "set", &root, "up"])?;
        ip_n(&fab, &["link", "set", "up0", "master", "brm", "up"])?;
        self.mgmt_net = Some(netp);
        Ok(())
    }

    /// The provider network (bridge `brx` in the fabric) and the outside namespace on it,
    /// with [`BEYOND_IP`] behind it.
    fn build_outside(&mut self) -> anyhow::Result<()> {
        let fab = self.names.fabric();
        let out = self.names.outside();
        ip_n(&fab, &["link", "add", "brx", "type", "bridge"])?;
        ip_n(&fab, &["link", "set", "brx", "up"])?;
        netns_add(&out)?;
        ip_n(
            &fab,
            &[
                "link", "add", "xo", "type", "veth", "peer", "name", "x0", "netns", &out,
            ],
        )?;
        ip_n(&fab, &["link", "set", "xo", "master", "brx", "up"])?;
        let addr = format!("{}/24", net::addr_in(EXTERNAL_NET, OUTSIDE_OCTET));
        ip_n(&out, &["addr", "add", &addr, "dev", "x0"])?;
        ip_n(&out, &["link", "set", "x0", "up"])?;
        tx_offload_off(&out, "x0")?;
        // Behind the outside: an address of its own (on lo, no dummy module needed).
        ip_n(
            &out,
            &["addr", "add", &format!("{BEYOND_IP}/32"), "dev", "lo"],
        )?;
        Ok(())
    }

    /// The outside namespace (with [`TestbedConfig::external`]).
    pub fn outside_netns(&self) -> Option<String> {
        self.cfg.external.then(|| self.names.outside())
    }

    /// Runs a command in the outside namespace.
    pub fn outside_exec(&self, cmd: &[&str]) -> anyhow::Result<String> {
        let ns = self
            .outside_netns()
            .context("the testbed has no outside namespace")?;
        crate::process::run_in(&ns, cmd[0], &cmd[1..])
    }

    fn mgmt_net(&self) -> anyhow::Result<[u8; 3]> {
        self.mgmt_net.context("management network not built")
    }

    fn add_controller(&mut self) -> anyhow::Result<()> {
        let k = self.controllers.len() + 1;
        let bin = crate::find_bin("weft-controller")?;
        let etcd = self.etcd.as_ref().context("etcd not started")?.endpoint();
        let addr = net::addr_in(self.mgmt_net()?, 1);
        let port = crate::process::free_port()?;
        let listen = SocketAddr::from((addr, port));
        let metrics = SocketAddr::from((addr, crate::process::free_port()?));
        let spec = ProcSpec::new(
            format!("weft-controller {k}"),
            bin,
            self.dir.path().join(format!("controller{k}.log")),
        )
        .args(["--listen", &listen.to_string(), "--etcd", &etcd])
        .args(["--prefix", ETCD_PREFIX, "--store", "etcd"])
        .args(["--etcd-max-txn-ops", "2048"])
        .args(["--metrics-listen", &metrics.to_string()])
        .args(self.controller_security_args()?)
        .env("RUST_LOG", &self.cfg.log_filter)
        .env("NO_COLOR", "1")
        .env(MARKER_ENV, &self.names.prefix)
        .detach(self.cfg.detach);
        let proc = spec.spawn()?;
        crate::pki::register_url(&format!("http://{listen}"), self.weftctl_env());
        let mut c = Controller {
            url: format!("http://{listen}"),
            listen,
            metrics_url: format!("http://{metrics}/metrics"),
            proc,
        };
        wait_listening(&mut c.proc, listen)?;
        self.controllers.push(c);
        Ok(())
    }

    fn add_host(&mut self, n: usize) -> anyhow::Result<()> {
        let ns = self.names.host(n);
        let fab = self.names.fabric();
        let octet = u8::try_from(10 + n).context("too many hosts")?;
        let underlay_ip = net::addr_in(UNDERLAY_NET, octet);
        let mgmt_ip = net::addr_in(self.mgmt_net()?, octet);
        let mtu = self.cfg.underlay_mtu.to_string();
        netns_add(&ns)?;
        let ovs = Ovs::start(OvsConfig {
            netns: Some(ns.clone()),
            isolate: false,
            dir: Some(self.dir.path().join(format!("h{n}"))),
            detach: self.cfg.detach,
            env: self.marker(),
            ..Default::default()
        })?;
        let host_entry = Host {
            index: n,
            name: format!("host{n}"),
            netns: ns.clone(),
            underlay_ip,
            mgmt_ip,
            metrics_addr: SocketAddr::from((mgmt_ip, crate::process::free_port()?)),
            debug_addr: SocketAddr::from((mgmt_ip, crate::process::free_port()?)),
            ovs,
            agent: None,
            cni_socket: self
                .cfg
                .cni
                .then(|| self.dir.path().join(format!("h{n}")).join("cni.sock")),
        };
        // Push first so that teardown covers it if a later step fails.
        self.hosts.push(host_entry);
        let host = self.hosts.last().context("host just pushed")?;

        // Underlay: veth into the fabric's brf; the host end is a port of OVS br-phy, which
        // carries the underlay IP.
        let un = format!("u{n}");
        ip_n(
            &fab,
            &[
                "link", "add", &un, "mtu", &mtu, "type", "veth", "peer", "name", "ul0", "mtu",
                &mtu, "netns", &ns,
            ],
        )?;
        ip_n(&fab, &["link", "set", &un, "master", "brf", "up"])?;
        ip_n(&ns, &["link", "set", "ul0", "up"])?;
        tx_offload_off(&ns, "ul0")?;
        host.ovs.vsctl(&[
            "--may-exist",
            "add-br",
            BR_PHY,
            "--",
            "set",
            "bridge",
            BR_PHY,
            "datapath_type=netdev",
            "--",
            "--may-exist",
            "add-port",
            BR_PHY,
            "ul0",
        ])?;
        ip_n(&ns, &["link", "set", BR_PHY, "mtu", &mtu, "up"])?;
        ip_n(
            &ns,
            &["addr", "add", &format!("{underlay_ip}/24"), "dev", BR_PHY],
        )?;
        tx_offload_off(&ns, BR_PHY)?;

        // Integration bridge (the agent takes it over).
        host.ovs.vsctl(&[
            "--may-exist",
            "add-br",
            BR_INT,
            "--",
            "set",
            "bridge",
            BR_INT,
            "datapath_type=netdev",
        ])?;

        // Management: second veth into the fabric's brm.
        let mn = format!("m{n}");
        ip_n(
            &fab,
            &[
                "link", "add", &mn, "type", "veth", "peer", "name", "mgmt0", "netns", &ns,
            ],
        )?;
        ip_n(&fab, &["link", "set", &mn, "master", "brm", "up"])?;
        ip_n(
            &ns,
            &["addr", "add", &format!("{mgmt_ip}/24"), "dev", "mgmt0"],
        )?;
        ip_n(&ns, &["link", "set", "mgmt0", "up"])?;

        if self.cfg.external {
            // Provider bridge: a veth into the fabric's brx (the provider network). OVS'
            // default NORMAL flow forwards on it, as on any provider bridge OVN uses.
            let xn = format!("x{n}");
            ip_n(
                &fab,
                &[
                    "link", "add", &xn, "type", "veth", "peer", "name", "ex0", "netns", &ns,
                ],
            )?;
            ip_n(&fab, &["link", "set", &xn, "master", "brx", "up"])?;
            ip_n(&ns, &["link", "set", "ex0", "up"])?;
            tx_offload_off(&ns, "ex0")?;
            host.ovs.vsctl(&[
                "--may-exist",
                "add-br",
                BR_EX,
                "--",
                "set",
                "bridge",
                BR_EX,
                "datapath_type=netdev",
                "--",
                "--may-exist",
                "add-port",
                BR_EX,
                "ex0",
            ])?;
        }

        if self.cfg.agents {
            let spec = self.agent_spec(n)?;
            let agent = spec.spawn()?;
            if let Some(h) = self.hosts.last_mut() {
                h.agent = Some(agent);
            }
        }
        Ok(())
    }

    fn agent_spec(&self, n: usize) -> anyhow::Result<ProcSpec> {
        let host = self.host(n)?;
        let bin = crate::find_bin("weft-agent")?;
        let urls: Vec<&str> = self.controllers.iter().map(|c| c.url.as_str()).collect();
        let rundir = host.ovs.rundir().to_path_buf();
        Ok(ProcSpec::new(
            format!("weft-agent {}", host.name),
            bin,
            self.dir.path().join(format!("h{n}")).join("agent.log"),
        )
        .args(["--chassis", &host.name])
        .args(["--encap-ip", &host.underlay_ip.to_string()])
        .args(["--encap", self.cfg.encap.as_str()])
        .args(["--controller", &urls.join(",")])
        .args(["--ovsdb", &host.ovs.db_target()])
        .args(["--bridge", BR_INT, "--datapath", "netdev"])
        .args(["--metrics-listen", &host.metrics_addr.to_string()])
        .args(["--debug-listen", &host.debug_addr.to_string()])
        .args(match &self.pki {
            Some(pki) => pki
                .issue(&host.name, "agent", &[host.name.as_str()])?
                .args(),
            None => vec!["--insecure".to_string()],
        })
        .args(self.cfg.agent_args.iter().map(String::as_str))
        .args(if self.cfg.external {
            vec![
                "--bridge-mappings".to_string(),
                format!("{PHYSNET}:{BR_EX}"),
            ]
        } else {
            Vec::new()
        })
        .arg("--ovs-rundir")
        .arg(rundir)
        .args(
            host.cni_socket
                .iter()
                .flat_map(|s| ["--cni-socket".into(), s.display().to_string()]),
        )
        .args(self.docker_agent_args(n))
        .args(self.cfg.mgmt.iter().flat_map(|m| {
            let mut a = vec!["--mgmt-switch".to_string(), m.switch.clone()];
            if !m.cluster_subnets.is_empty() {
                a.extend(["--cluster-subnets".to_string(), m.cluster_subnets.join(",")]);
            }
            a
        }))
        .env("RUST_LOG", &self.cfg.log_filter)
        .env("NO_COLOR", "1")
        .env(MARKER_ENV, &self.names.prefix)
        .netns(Some(host.netns.clone()))
        .detach(self.cfg.detach))
    }

    /// `--docker-plugin-socket`/`--docker-state` for host `n` when [`TestbedConfig::docker`].
    fn docker_agent_args(&self, n: usize) -> Vec<String> {
        if self.cfg.docker {
            crate::docker::agent_args(self.dir.path(), n)
        } else {
            Vec::new()
        }
    }

    /// Starts a real dockerd on host `n` that uses the host's Weft plugin (needs
    /// [`TestbedConfig::docker`]); see [`crate::docker`].
    pub fn start_dockerd(&self, n: usize) -> anyhow::Result<crate::docker::Dockerd> {
        anyhow::ensure!(
            self.cfg.docker,
            "the testbed was not configured with .docker(true)"
        );
        let h = self.host(n)?;
        crate::docker::Dockerd::start(
            self.dir.path(),
            n,
            &h.netns,
            &self.names.prefix,
            self.cfg.detach,
        )
    }

    /// The controller's TLS, authorization and etcd TLS flags.
    fn controller_security_args(&self) -> anyhow::Result<Vec<String>> {
        let Some(pki) = &self.pki else {
            return Ok(vec!["--insecure".into()]);
        };
        let c = pki.files("controller");
        let e = pki.files("controller");
        let mut v = c.args();
        v.extend([
            "--etcd-ca".into(),
            e.ca.display().to_string(),
            "--etcd-cert".into(),
            e.cert.display().to_string(),
            "--etcd-key".into(),
            e.key.display().to_string(),
            "--revoked".into(),
            pki.dir().join("revoked").display().to_string(),
        ]);
        // Read when it appears or changes: a test adds tokens with `Pki::token_line`.
        v.extend([
            "--tokens".into(),
            pki.dir().join("tokens").display().to_string(),
        ]);
        Ok(v)
    }

    /// The environment weftctl needs for this testbed's controllers (the admin certificate,
    /// or `WEFT_INSECURE=1`).
    pub fn weftctl_env(&self) -> Vec<(String, String)> {
        match &self.pki {
            Some(pki) => pki.files("admin").env(),
            None => vec![("WEFT_INSECURE".into(), "1".into())],
        }
    }

    /// The run's CA, to issue more credentials (None when insecure).
    pub fn pki(&self) -> Option<&Pki> {
        self.pki.as_ref()
    }

    // ----- accessors -----

    pub fn config(&self) -> &TestbedConfig {
        &self.cfg
    }
    pub fn names(&self) -> &Names {
        &self.names
    }
    pub fn prefix(&self) -> &str {
        &self.names.prefix
    }
    /// The run's directory (logs, OVS rundirs, etcd data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    /// MTU pods get: underlay MTU minus the encap overhead.
    pub fn pod_mtu(&self) -> u32 {
        self.cfg.underlay_mtu - self.cfg.encap.overhead()
    }
    /// The management /24's first three octets.
    pub fn mgmt_subnet(&self) -> Option<[u8; 3]> {
        self.mgmt_net
    }
    pub fn etcd(&self) -> Option<&Etcd> {
        self.etcd.as_ref()
    }
    /// Controller URLs, in order (controller 1 first).
    /// The `/metrics` URL of every controller.
    pub fn controller_metrics_urls(&self) -> Vec<String> {
        self.controllers
            .iter()
            .map(|c| c.metrics_url.clone())
            .collect()
    }
    pub fn controller_urls(&self) -> Vec<String> {
        self.controllers.iter().map(|c| c.url.clone()).collect()
    }
    /// URL of controller `k` (1-based).
    pub fn controller_url(&self, k: usize) -> anyhow::Result<String> {
        Ok(self.controller(k)?.url.clone())
    }
    fn controller(&self, k: usize) -> anyhow::Result<&Controller> {
        k.checked_sub(1)
            .and_then(|i| self.controllers.get(i))
            .with_context(|| format!("no controller {k} (have {})", self.controllers.len()))
    }
    fn controller_mut(&mut self, k: usize) -> anyhow::Result<&mut Controller> {
        let len = self.controllers.len();
        k.checked_sub(1)
            .and_then(|i| self.controllers.get_mut(i))
            .with_context(|| format!("no controller {k} (have {len})"))
    }
    /// Host `n` (1-based).
    pub fn host(&self, n: usize) -> anyhow::Result<&Host> {
        n.checked_sub(1)
            .and_then(|i| self.hosts.get(i))
            .with_context(|| format!("no host {n} (have {})", self.hosts.len()))
    }
    /// Host `n` (1-based), mutable.
    pub fn host_mut(&mut self, n: usize) -> anyhow::Result<&mut Host> {
        let len = self.hosts.len();
        n.checked_sub(1)
            .and_then(|i| self.hosts.get_mut(i))
            .with_context(|| format!("no host {n} (have {len})"))
    }
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    /// A pod by name.
    pub fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods.get(name)
    }
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    // ----- weftctl -----

    /// `weftctl` pointed at the first controller whose process is running.
    pub fn weftctl(&mut self) -> anyhow::Result<Weftctl> {
        let bin = crate::find_bin("weftctl")?;
        let url = self
            .controllers
            .iter_mut()
            .find_map(|c| c.proc.is_running().then(|| c.url.clone()))
            .context("no controller is running")?;
        Ok(Weftctl::new(bin, url))
    }

    /// `weftctl` pointed at controller `k` (1-based).
    pub fn weftctl_via(&self, k: usize) -> anyhow::Result<Weftctl> {
        Ok(Weftctl::new(
            crate::find_bin("weftctl")?,
            self.controller_url(k)?,
        ))
    }

    /// Run `weftctl ARGS` against a running controller; stdout.
    pub fn ctl(&mut self, args: &[&str]) -> anyhow::Result<String> {
        self.weftctl()?.run(args)
    }

    /// `weftctl --wait=hv sync`: returns when every live chassis has applied the current
    /// revision.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.ctl(&["--wait=hv", "--timeout=60", "sync"])?;
        Ok(())
    }

    /// Wait until every named chassis is alive in `chassis-list`.
    pub fn wait_chassis_alive(
        &mut self,
        names: &[String],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let ctl = self.weftctl()?;
        let mut last = String::new();
        let mut dead_agent = None;
        let hosts = &mut self.hosts;
        let ok = wait_until(timeout, Duration::from_millis(250), || {
            // Fail fast when an agent we wait for has exited.
            for h in hosts.iter_mut() {
                if !names.contains(&h.name) {
                    continue;
                }
                if let Some(a) = h.agent.as_mut().filter(|a| a.pid().is_some()) {
                    if !a.is_running() {
                        dead_agent = Some(format!(
                            "weft-agent on {} exited; log tail:\n{}",
                            h.name,
                            a.log_tail(20)
                        ));
                        return true;
                    }
                }
            }
            match ctl.alive_chassis() {
                Ok(alive) => {
                    last = format!("alive: {alive:?}");
                    names.iter().all(|n| alive.contains(n))
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            }
        });
        if let Some(msg) = dead_agent {
            bail!("{msg}");
        }
        if !ok {
            let logs: Vec<String> = self
                .hosts
                .iter()
                .filter_map(|h| {
                    let a = h.agent.as_ref()?;
                    Some(format!("--- {} agent log:\n{}", h.name, a.log_tail(10)))
                })
                .collect();
            bail!(
                "chassis {names:?} not all alive after {timeout:?} ({last})\n{}",
                logs.join("\n")
            );
        }
        Ok(())
    }

    // ----- pods -----

    /// Create pod `name` on host `host` (1-based) bound to logical port `lport`, with the MAC
    /// and IP the controller has for that port.
    pub fn add_pod(&mut self, host: usize, lport: &str, name: &str) -> anyhow::Result<Pod> {
        let addr = self.weftctl()?.port_address(lport)?;
        self.add_pod_with_address(host, lport, name, addr)
    }

    /// Create a pod with explicit addresses (no controller needed).
    pub fn add_pod_with_address(
        &mut self,
        host: usize,
        lport: &str,
        name: &str,
        address: PortAddress,
    ) -> anyhow::Result<Pod> {
        net::validate_pod_name(name)?;
        if self.pods.contains_key(name) {
            bail!("pod {name} already exists");
        }
        let h = self.host(host)?;
        let spec = PodSpec {
            name: name.to_string(),
            lport: lport.to_string(),
            host,
            netns: self.names.pod(name),
            host_netns: h.netns.clone(),
            veth: net::pod_veth_name(name),
            ovsdb: h.ovs.db_target(),
            bridge: BR_INT.to_string(),
            address,
            mtu: self.pod_mtu(),
        };
        let pod = create_pod(&spec)?;
        self.pods.insert(name.to_string(), pod.clone());
        Ok(pod)
    }

    /// Delete a pod (unplug from br-int, delete its namespace).
    pub fn del_pod(&mut self, name: &str) -> anyhow::Result<()> {
        let pod = self
            .pods
            .remove(name)
            .with_context(|| format!("no pod {name}"))?;
        delete_pod(&pod);
        Ok(())
    }

    // ----- faults -----

    /// Stop the agent on host `n` gracefully (SIGTERM, then SIGKILL after 5 s).
    pub fn stop_agent(&mut self, n: usize) -> anyhow::Result<()> {
        let h = self.host_mut(n)?;
        h.agent
            .as_mut()
            .with_context(|| format!("host{n} has no agent"))?
            .terminate(Duration::from_secs(5));
        Ok(())
    }

    /// Kill the agent on host `n` (SIGKILL, like a crash).
    pub fn kill_agent(&mut self, n: usize) -> anyhow::Result<()> {
        let h = self.host_mut(n)?;
        h.agent
            .as_mut()
            .with_context(|| format!("host{n} has no agent"))?
            .kill();
        Ok(())
    }

    /// Start the agent on host `n` again (same command line). Does not wait for it.
    pub fn start_agent(&mut self, n: usize) -> anyhow::Result<()> {
        let spec = self.agent_spec(n)?;
        let h = self.host_mut(n)?;
        match h.agent.as_mut() {
            Some(a) => a.start(),
            None => {
                h.agent = Some(spec.spawn()?);
                Ok(())
            }
        }
    }

    /// Stop (SIGTERM) and start the agent on host `n`, then wait until its chassis is alive.
    pub fn restart_agent(&mut self, n: usize) -> anyhow::Result<()> {
        self.stop_agent(n)?;
        self.start_agent(n)?;
        let name = self.host(n)?.name.clone();
        self.wait_chassis_alive(&[name], Duration::from_secs(30))
    }

    /// Stop controller `k` (1-based) gracefully (SIGTERM, then SIGKILL after 5 s).
    pub fn stop_controller(&mut self, k: usize) -> anyhow::Result<()> {
        self.controller_mut(k)?
            .proc
            .terminate(Duration::from_secs(5));
        Ok(())
    }

    /// Kill controller `k` (SIGKILL).
    pub fn kill_controller(&mut self, k: usize) -> anyhow::Result<()> {
        self.controller_mut(k)?.proc.kill();
        Ok(())
    }

    /// Start controller `k` again on the same address; waits until it listens.
    pub fn start_controller(&mut self, k: usize) -> anyhow::Result<()> {
        let c = self.controller_mut(k)?;
        c.proc.start()?;
        let listen = c.listen;
        wait_listening(&mut c.proc, listen)
    }

    /// Whether controller `k`'s process is alive.
    pub fn controller_running(&mut self, k: usize) -> anyhow::Result<bool> {
        Ok(self.controller_mut(k)?.proc.is_running())
    }

    /// Kill etcd (SIGKILL). Data is kept.
    pub fn stop_etcd(&mut self) -> anyhow::Result<()> {
        self.etcd.as_mut().context("etcd not started")?.stop();
        Ok(())
    }

    /// Start etcd again on the same port and data; waits until healthy.
    pub fn restart_etcd(&mut self) -> anyhow::Result<()> {
        self.etcd.as_mut().context("etcd not started")?.restart()
    }

    /// Kill ovs-vswitchd on host `n` (SIGKILL); ovsdb-server keeps running.
    pub fn stop_vswitchd(&mut self, n: usize) -> anyhow::Result<()> {
        self.host_mut(n)?.ovs.stop_vswitchd();
        Ok(())
    }

    /// Kill ovsdb-server on host `n` (SIGKILL).
    pub fn stop_ovsdb(&mut self, n: usize) -> anyhow::Result<()> {
        self.host_mut(n)?.ovs.stop_ovsdb();
        Ok(())
    }

    /// Start ovsdb-server on host `n` again (same database file); waits until it answers.
    pub fn start_ovsdb(&mut self, n: usize) -> anyhow::Result<()> {
        self.host_mut(n)?.ovs.start_ovsdb()
    }

    /// Start ovs-vswitchd on host `n` again; waits until it has applied the configuration.
    pub fn start_vswitchd(&mut self, n: usize) -> anyhow::Result<()> {
        self.host_mut(n)?.ovs.start_vswitchd()
    }

    // ----- teardown -----

    /// Tear everything down now (same as drop).
    pub fn cleanup(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        if self.leaked {
            return;
        }
        self.leaked = true;
        for h in &mut self.hosts {
            if let Some(a) = h.agent.as_mut() {
                a.kill();
            }
        }
        for c in &mut self.controllers {
            c.proc.kill();
        }
        for pod in self.pods.values() {
            netns_del(&pod.netns);
        }
        self.pods.clear();
        // Dropping Ovs kills its daemons; then the namespaces go.
        let host_ns: Vec<String> = self.hosts.drain(..).map(|h| h.netns.clone()).collect();
        for ns in host_ns {
            netns_del(&ns);
        }
        netns_del(&self.names.fabric());
        let root = self.names.root_link();
        if net::link_exists(&root) {
            let _ = ip(&["link", "del", &root]);
        }
        self.etcd = None;
        // Sweep anything else carrying our prefix (e.g. a process started by a test).
        let _ = net::cleanup_stale(&self.names.prefix);
        if self.remove_dir {
            if std::env::var_os(KEEP_ENV).is_some() {
                eprintln!(
                    "{KEEP_ENV} set: keeping testbed files in {}",
                    self.dir.path().display()
                );
                // Torn down: nothing for cleanup_orphans to do; it must leave the files alone.
                let _ = std::fs::remove_file(self.dir.path().join("owner.pid"));
                let _ = std::fs::write(self.dir.path().join(net::KEPT_MARKER), "");
            } else {
                let _ = std::fs::remove_dir_all(self.dir.path());
            }
        }
    }

    /// Stop owning everything: all processes keep running (start with
    /// [`TestbedConfig::detach`]) and nothing is deleted. Returns the state needed to find
    /// and tear it down later (see [`LeakedTestbed::teardown`]).
    pub fn leak(mut self) -> LeakedTestbed {
        let etcd = self.etcd.take().map(Etcd::leak);
        let controllers = self
            .controllers
            .iter_mut()
            .map(|c| ProcState {
                pid: c.proc.forget(),
                url: c.url.clone(),
                metrics_url: c.metrics_url.clone(),
            })
            .collect();
        let hosts = self
            .hosts
            .drain(..)
            .map(|mut h| {
                let agent_pid = h.agent.as_mut().and_then(Proc::forget);
                let metrics_url = h.metrics_url();
                let db = h.ovs.db_target();
                let ovs = h.ovs.leak();
                HostState {
                    index: h.index,
                    name: h.name,
                    netns: h.netns,
                    underlay_ip: h.underlay_ip,
                    mgmt_ip: h.mgmt_ip,
                    metrics_url,
                    rundir: ovs.rundir,
                    ovsdb: db,
                    ovsdb_pid: ovs.ovsdb_pid,
                    vswitchd_pid: ovs.vswitchd_pid,
                    agent_pid,
                    cni_socket: h.cni_socket,
                }
            })
            .collect();
        self.leaked = true;
        LeakedTestbed {
            prefix: self.names.prefix.clone(),
            dir: self.dir.keep(),
            encap: self.cfg.encap,
            pod_mtu: self.pod_mtu(),
            etcd: ProcState {
                pid: etcd.as_ref().and_then(|e| e.pid),
                url: etcd.map(|e| e.endpoint).unwrap_or_default(),
                ..Default::default()
            },
            controllers,
            hosts,
            pods: std::mem::take(&mut self.pods),
            outside: self.outside_netns(),
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Wait until something accepts TCP connections on `addr`, or the process exits.
fn wait_listening(proc: &mut Proc, addr: SocketAddr) -> anyhow::Result<()> {
    let mut exited = false;
    let ok = wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        if !proc.is_running() {
            exited = true;
            return true;
        }
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
    if exited || !ok {
        let tail = proc.log_tail(15);
        proc.kill();
        bail!(
            "{} {} (listen {addr}); log tail:\n{tail}",
            proc.spec().name,
            if exited {
                "exited"
            } else {
                "did not listen within 30s"
            }
        );
    }
    Ok(())
}

/// A process of a leaked testbed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcState {
    pub pid: Option<u32>,
    /// etcd client URL or controller URL.
    pub url: String,
    /// The process' `/metrics` URL ("" for etcd, or a state file from before metrics).
    #[serde(default)]
    pub metrics_url: String,
}

/// A host of a leaked testbed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    pub index: usize,
    pub name: String,
    pub netns: String,
    pub underlay_ip: Ipv4Addr,
    pub mgmt_ip: Ipv4Addr,
    /// The agent's `/metrics` URL ("" in a state file from before agent metrics).
    #[serde(default)]
    pub metrics_url: String,
    pub rundir: PathBuf,
    pub ovsdb: String,
    pub ovsdb_pid: Option<u32>,
    pub vswitchd_pid: Option<u32>,
    pub agent_pid: Option<u32>,
    /// Where the host's agent serves CNI (None: it does not, or a state file from before).
    #[serde(default)]
    pub cni_socket: Option<PathBuf>,
}

/// Everything needed to find, use and tear down a testbed after [`Testbed::leak`]
/// (serialised into `weft-sandbox`'s state file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakedTestbed {
    pub prefix: String,
    pub dir: PathBuf,
    pub encap: Encap,
    pub pod_mtu: u32,
    pub etcd: ProcState,
    pub controllers: Vec<ProcState>,
    pub hosts: Vec<HostState>,
    pub pods: BTreeMap<String, Pod>,
    /// The outside namespace, when built with `TestbedConfig::external`.
    #[serde(default)]
    pub outside: Option<String>,
}

impl LeakedTestbed {
    /// The environment weftctl needs for this testbed (its admin certificate when it has a
    /// CA in `DIR/pki`, else `WEFT_INSECURE=1`).
    pub fn weftctl_env(&self) -> Vec<(String, String)> {
        let pki = self.dir.join("pki");
        if pki.join("admin.pem").exists() {
            Pki::create(&pki)
                .map(|p| p.files("admin").env())
                .unwrap_or_default()
        } else {
            vec![("WEFT_INSECURE".into(), "1".into())]
        }
    }

    /// All recorded PIDs.
    pub fn pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .hosts
            .iter()
            .flat_map(|h| [h.agent_pid, h.vswitchd_pid, h.ovsdb_pid])
            .flatten()
            .collect();
        v.extend(self.controllers.iter().filter_map(|c| c.pid));
        v.extend(self.etcd.pid);
        v
    }

    /// Host by name (`host2`) or number (`2`).
    pub fn host(&self, key: &str) -> anyhow::Result<&HostState> {
        let key_n = key.trim_start_matches("host").parse::<usize>().ok();
        self.hosts
            .iter()
            .find(|h| h.name == key || Some(h.index) == key_n)
            .with_context(|| {
                let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
                format!("no host {key:?} (hosts: {})", names.join(", "))
            })
    }

    /// Create a pod bound to `lport` on host `host_key`, MAC/IP from the controller.
    pub fn add_pod(&mut self, host_key: &str, lport: &str, name: &str) -> anyhow::Result<Pod> {
        net::validate_pod_name(name)?;
        if self.pods.contains_key(name) {
            bail!("pod {name} already exists");
        }
        let url = self
            .controllers
            .iter()
            .find(|c| c.pid.is_some_and(crate::process::pid_alive))
            .map(|c| c.url.clone())
            .context("no controller of this sandbox is running")?;
        let ctl = Weftctl::new(crate::find_bin("weftctl")?, url).with_env(self.weftctl_env());
        let address = ctl.port_address(lport)?;
        let h = self.host(host_key)?;
        let names = Names::new(&self.prefix)?;
        let spec = PodSpec {
            name: name.to_string(),
            lport: lport.to_string(),
            host: h.index,
            netns: names.pod(name),
            host_netns: h.netns.clone(),
            veth: net::pod_veth_name(name),
            ovsdb: h.ovsdb.clone(),
            bridge: BR_INT.to_string(),
            address,
            mtu: self.pod_mtu,
        };
        let pod = create_pod(&spec)?;
        self.pods.insert(name.to_string(), pod.clone());
        // As weft-cni's ADD does: return once the port is up on its host (its flows are
        // installed there); `weftctl --wait=hv sync` then covers every other host.
        let up = wait_until(Duration::from_secs(30), Duration::from_millis(25), || {
            ctl.run(&["lsp-get-up", lport])
                .is_ok_and(|o| o.trim() == "up")
        });
        if !up {
            bail!("pod {name} created, but logical port {lport} did not come up within 30 s (is it enabled? weftctl lsp-get-enabled {lport})");
        }
        Ok(pod)
    }

    /// Delete a pod.
    pub fn del_pod(&mut self, name: &str) -> anyhow::Result<()> {
        let pod = self.pods.remove(name).with_context(|| {
            let names: Vec<&str> = self.pods.keys().map(String::as_str).collect();
            format!("no pod {name:?} (pods: {})", names.join(", "))
        })?;
        delete_pod(&pod);
        Ok(())
    }

    /// Kill every recorded process, then sweep the prefix (namespaces, root link, marked
    /// processes). The directory is left to the caller.
    pub fn teardown(&self) {
        for pid in self.pids() {
            crate::process::kill_pid(pid);
        }
        let _ = net::cleanup_stale(&self.prefix);
    }
}
