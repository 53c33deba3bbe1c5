//! Weft vs OVN on the same simulated topology (issue 5). Start with [`run_compare`]: for each
//! [`System`] it brings up N simulated hosts with the `weft-testbed` library (network
//! namespaces, one ovsdb-server + ovs-vswitchd netdev per host, Geneve underlay), then
//!
//! 1. creates S logical switches (with a subnet, so ports can take `dynamic` addresses),
//! 2. binds P OVS interfaces per host (`type=internal`, `external_ids:iface-id=PORT`) before
//!    any logical port exists, so the timed part is control plane only,
//! 3. **convergence**: from the first create call, creates the N×P logical ports in batches of
//!    [`CompareConfig::batch`] per call, polls until every port is up, then waits for every
//!    hypervisor (`--wait=hv sync`),
//! 4. **one more port**: [`CompareConfig::single_adds`] times, binds one more interface on a
//!    host (untimed), then times one create call with `--wait=hv`,
//! 5. counts OpenFlow flows on each host's br-int (`ovs-ofctl dump-aggregate`) and reads RSS
//!    and CPU time of every control-plane process from `/proc` ([`procstat`]).
//!
//! Weft ([`weft`]): etcd, one weft-controller, one weft-agent per host; ports go in through the
//! northbound gRPC API (`CreatePorts` when the controller has it, otherwise 100 concurrent
//! `CreatePort` calls per batch). OVN ([`ovn`]): NB and SB ovsdb-servers, ovn-northd and one
//! ovn-controller per host (in the host's namespace), ports through `ovn-nbctl`, 100 chained
//! `lsp-add` + `lsp-set-addresses dynamic` per invocation.
//!
//! [`render_markdown`] turns a [`CompareReport`] into the tables of `docs/benchmarks.md`;
//! [`write_section`] replaces (or appends) one size's section of that file.

pub mod acl;
pub mod lb;
pub mod ovn;
pub mod procstat;
pub mod routed;
pub mod stages;
pub mod weft;

pub use routed::Topology;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::Timing;

/// Which control plane to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum System {
    Weft,
    Ovn,
}

impl System {
    pub fn as_str(self) -> &'static str {
        match self {
            System::Weft => "Weft",
            System::Ovn => "OVN",
        }
    }
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("invalid {field} = {value}: {reason}")]
    Config {
        field: &'static str,
        value: usize,
        reason: &'static str,
    },
    #[error("{system} run failed: {message}")]
    Run { system: System, message: String },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// What [`run_compare`] builds and measures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompareConfig {
    /// Systems to run, one after the other (never at the same time).
    pub systems: Vec<System>,
    /// Simulated hosts (N).
    pub hosts: usize,
    /// Logical switches (S); port `j` of every host is on switch `ls{j % S}`.
    pub switches: usize,
    /// Ports per host (P).
    pub ports_per_host: usize,
    /// Single-port adds timed after convergence.
    pub single_adds: usize,
    /// Ports per create call during convergence.
    pub batch: usize,
    /// How often to poll for ports being up.
    pub poll: Duration,
    /// Upper bound for convergence and for each wait.
    pub timeout: Duration,
    /// The ACL phase after the ports ([`acl`]), when asked for.
    pub acl: Option<acl::AclScale>,
    /// Flat switches, or switches on one router ([`routed`]).
    pub topology: Topology,
    /// The load balancer phase after the ports (and ACLs) ([`lb`]), when asked for.
    pub lb: Option<lb::LbScale>,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig {
            systems: vec![System::Weft, System::Ovn],
            hosts: 4,
            switches: 4,
            ports_per_host: 50,
            single_adds: 50,
            batch: 100,
            poll: Duration::from_millis(100),
            timeout: Duration::from_secs(600),
            acl: None,
            topology: Topology::Flat,
            lb: None,
        }
    }
}

impl CompareConfig {
    /// Check the sizes; the error names the field and the value.
    pub fn validate(&self) -> Result<(), CompareError> {
        let bad = |field, value, reason| {
            Err(CompareError::Config {
                field,
                value,
                reason,
            })
        };
        if self.systems.is_empty() {
            return bad("systems", 0, "want weft, ovn or both");
        }
        if !(1..=50).contains(&self.hosts) {
            return bad("hosts", self.hosts, "want 1..=50");
        }
        if !(1..=200).contains(&self.switches) {
            return bad("switches", self.switches, "want 1..=200");
        }
        if !(1..=20_000).contains(&self.ports_per_host) {
            return bad("ports_per_host", self.ports_per_host, "want 1..=20000");
        }
        if self.single_adds > 10_000 {
            return bad("single_adds", self.single_adds, "want 0..=10000");
        }
        if !(1..=100).contains(&self.batch) {
            return bad(
                "batch",
                self.batch,
                "want 1..=100 (the controller's batch limit)",
            );
        }
        Ok(())
    }

    /// The ports of the topology, host by host.
    pub fn plan(&self) -> Vec<PlannedPort> {
        let mut v = Vec::with_capacity(self.hosts * self.ports_per_host);
        for h in 1..=self.hosts {
            for j in 0..self.ports_per_host {
                v.push(PlannedPort {
                    host: h,
                    name: format!("p{h}-{j}"),
                    switch: switch_name(j % self.switches),
                    iface: format!("v{j}"),
                });
            }
        }
        v
    }

    /// The `k`-th single-port add (0-based): round robin over the hosts and switches.
    pub fn single_port(&self, k: usize) -> PlannedPort {
        let h = k % self.hosts + 1;
        PlannedPort {
            host: h,
            name: format!("x{h}-{k}"),
            switch: switch_name(k % self.switches),
            iface: format!("x{k}"),
        }
    }

    /// Total ports created during convergence.
    pub fn total_ports(&self) -> usize {
        self.hosts * self.ports_per_host
    }
}

/// Logical switch `s`.
pub fn switch_name(s: usize) -> String {
    format!("ls{s}")
}

/// Subnet of switch `s` (`10.s.0.0/16`, room for 65k ports).
pub fn switch_subnet(s: usize) -> String {
    format!("10.{}.0.0/16", s + 1)
}

/// One logical port and the OVS interface that binds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPort {
    /// 1-based host.
    pub host: usize,
    /// Logical port name (= `external_ids:iface-id`).
    pub name: String,
    pub switch: String,
    /// OVS interface name on the host (at most 15 characters).
    pub iface: String,
}

/// `ovs-vsctl` arguments that add the interfaces of `ports` to br-int in one transaction.
pub fn vif_vsctl_args(ports: &[PlannedPort]) -> Vec<String> {
    let mut args = Vec::new();
    for p in ports {
        args.extend(
            [
                "--",
                "add-port",
                "br-int",
                &p.iface,
                "--",
                "set",
                "interface",
                &p.iface,
                "type=internal",
            ]
            .map(String::from),
        );
        args.push(format!("external_ids:iface-id={}", p.name));
    }
    args
}

/// `flow_count=N` out of `ovs-ofctl dump-aggregate`.
pub fn parse_flow_count(out: &str) -> Option<u64> {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("flow_count="))
        .and_then(|n| n.parse().ok())
}

/// RSS and CPU of one control-plane process.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcUsage {
    /// What it is: `etcd`, `weft-controller`, `weft-agent host1`, `ovn-northd`, ...
    pub role: String,
    pub pid: u32,
    /// RSS at the end of the run, KiB.
    pub rss_kib: u64,
    /// CPU seconds (user + system) from the first create call to the end of the single adds.
    pub cpu_run_s: f64,
    /// CPU seconds since the process started.
    pub cpu_total_s: f64,
}

/// Everything measured for one system.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemReport {
    pub system: System,
    /// How the ports went in (e.g. "CreatePorts, 100 per call").
    pub create_path: String,
    /// Create calls made during convergence.
    pub create_calls: usize,
    pub ports: usize,
    /// Ports up at the end of convergence.
    pub ports_up: usize,
    /// First create call → last create call answered.
    pub create_time: Duration,
    /// First create call → every port up.
    pub up_time: Duration,
    /// First create call → every port up and `--wait=hv sync` returned.
    pub convergence: Duration,
    /// One more port with `--wait=hv`, each.
    pub single_adds: Timing,
    /// Where the time of the single adds went ([`stages`]; Weft only).
    pub stages: Vec<stages::StageRow>,
    /// (host name, flows on br-int), after the single adds.
    pub flows_per_host: Vec<(String, u64)>,
    pub processes: Vec<ProcUsage>,
    /// The ACL phase, when it ran.
    pub acl: Option<acl::AclReport>,
    /// The LB phase, when it ran.
    pub lb: Option<lb::LbReport>,
}

impl SystemReport {
    pub fn rss_total_kib(&self) -> u64 {
        self.processes.iter().map(|p| p.rss_kib).sum()
    }
    pub fn cpu_run_total_s(&self) -> f64 {
        self.processes.iter().map(|p| p.cpu_run_s).sum()
    }
    pub fn cpu_total_s(&self) -> f64 {
        self.processes.iter().map(|p| p.cpu_total_s).sum()
    }
    /// Flows on the first host (all hosts have the same shape).
    pub fn flows_min_max(&self) -> (u64, u64) {
        let it = self.flows_per_host.iter().map(|(_, f)| *f);
        (it.clone().min().unwrap_or(0), it.max().unwrap_or(0))
    }
}

/// The result of [`run_compare`].
#[derive(Clone, Debug, PartialEq)]
pub struct CompareReport {
    pub config: CompareConfig,
    pub systems: Vec<SystemReport>,
    /// Systems whose run failed (did not converge in time, a tool failed), with the error:
    /// the others' results are still reported.
    pub failures: Vec<(System, String)>,
}

impl CompareReport {
    pub fn get(&self, s: System) -> Option<&SystemReport> {
        self.systems.iter().find(|r| r.system == s)
    }
}

/// Run every configured system, one after the other, each on a fresh testbed torn down
/// before the next starts. `progress` gets one line per step.
pub fn run_compare(
    cfg: &CompareConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<CompareReport, CompareError> {
    cfg.validate()?;
    let mut systems = Vec::new();
    let mut failures = Vec::new();
    for &s in &cfg.systems {
        progress(&format!(
            "== {s}: N={} S={} P={} ({})",
            cfg.hosts,
            cfg.switches,
            cfg.ports_per_host,
            cfg.topology.as_str()
        ));
        let r = match s {
            System::Weft => weft::run(cfg, progress),
            System::Ovn => ovn::run(cfg, progress),
        };
        match r {
            Ok(r) => systems.push(r),
            Err(e) => {
                let message = format!("{e:#}");
                progress(&format!("{s} failed: {message}"));
                failures.push((s, message));
            }
        }
    }
    if systems.is_empty() {
        if let Some((system, message)) = failures.pop() {
            return Err(CompareError::Run { system, message });
        }
    }
    Ok(CompareReport {
        config: cfg.clone(),
        systems,
        failures,
    })
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Weft / OVN as "0.42×" when both are positive.
fn ratio(weft: f64, ovn: f64) -> String {
    if weft > 0.0 && ovn > 0.0 {
        format!("{:.2}×", weft / ovn)
    } else {
        String::new()
    }
}

/// The heading of one size's section.
pub fn section_title(cfg: &CompareConfig) -> String {
    let routed = match cfg.topology {
        Topology::Flat => String::new(),
        Topology::Routed => format!(", routed: 1 router, {} router ports", cfg.switches),
    };
    format!(
        "N={} hosts, S={} switches, P={} ports per host ({} ports){routed}",
        cfg.hosts,
        cfg.switches,
        cfg.ports_per_host,
        cfg.total_ports()
    )
}

/// Markdown: a summary table (one column per system, Weft/OVN ratio when both ran) and a
/// per-process table.
pub fn render_markdown(r: &CompareReport) -> String {
    let mut out = String::new();
    let cfg = &r.config;
    let cols: Vec<&SystemReport> = r.systems.iter().collect();
    let both = r.get(System::Weft).zip(r.get(System::Ovn));
    let _ = writeln!(out, "#### {}\n", section_title(cfg));
    let mut header = String::from("| metric |");
    let mut rule = String::from("|---|");
    for c in &cols {
        let _ = write!(header, " {} |", c.system);
        rule.push_str("---|");
    }
    if both.is_some() {
        header.push_str(" Weft / OVN |");
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let mut row = |name: &str,
                   f: &dyn Fn(&SystemReport) -> String,
                   num: Option<&dyn Fn(&SystemReport) -> f64>| {
        let _ = write!(out, "| {name} |");
        for c in &cols {
            let _ = write!(out, " {} |", f(c));
        }
        if let Some((w, o)) = both {
            let _ = write!(
                out,
                " {} |",
                num.map(|n| ratio(n(w), n(o))).unwrap_or_default()
            );
        }
        out.push('\n');
    };
    row(
        "ports up / created",
        &|s| format!("{} / {}", s.ports_up, s.ports),
        None,
    );
    row(
        "create calls (convergence)",
        &|s| format!("{} ({})", s.create_calls, s.create_path),
        None,
    );
    row(
        "**convergence**: first create → all up + `--wait=hv sync`",
        &|s| format!("**{}**", secs(s.convergence)),
        Some(&|s| s.convergence.as_secs_f64()),
    );
    row(
        "… first create → last create answered",
        &|s| secs(s.create_time),
        Some(&|s| s.create_time.as_secs_f64()),
    );
    row(
        "… first create → every port up",
        &|s| secs(s.up_time),
        Some(&|s| s.up_time.as_secs_f64()),
    );
    row(
        "**one more port** (`--wait=hv`), median",
        &|s| format!("**{}**", secs(s.single_adds.median())),
        Some(&|s| s.single_adds.median().as_secs_f64()),
    );
    row(
        "one more port, p99",
        &|s| secs(s.single_adds.p99()),
        Some(&|s| s.single_adds.p99().as_secs_f64()),
    );
    row(
        "one more port, samples",
        &|s| s.single_adds.samples.len().to_string(),
        None,
    );
    row(
        "OpenFlow flows per host (min–max)",
        &|s| {
            let (lo, hi) = s.flows_min_max();
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}–{hi}")
            }
        },
        Some(&|s| s.flows_min_max().1 as f64),
    );
    row(
        "control-plane RSS, total",
        &|s| mib(s.rss_total_kib()),
        Some(&|s| s.rss_total_kib() as f64),
    );
    row(
        "control-plane CPU during the run (convergence + adds)",
        &|s| format!("{:.2} s", s.cpu_run_total_s()),
        Some(&|s| s.cpu_run_total_s()),
    );
    row(
        "control-plane CPU since start",
        &|s| format!("{:.2} s", s.cpu_total_s()),
        Some(&|s| s.cpu_total_s()),
    );
    out.push('\n');
    for c in &cols {
        if !c.stages.is_empty() {
            out.push_str(&stages::render(&c.stages, c.single_adds.samples.len()));
            out.push('\n');
        }
    }
    if cols.iter().any(|c| c.acl.is_some()) {
        render_acl(&mut out, &cols, both.is_some());
    }
    lb::render(&mut out, &cols, both.is_some());
    let _ = writeln!(
        out,
        "| system | process | RSS | CPU during run | CPU since start |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for c in &cols {
        for p in &c.processes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2} s | {:.2} s |",
                c.system,
                p.role,
                mib(p.rss_kib),
                p.cpu_run_s,
                p.cpu_total_s
            );
        }
    }
    for (system, message) in &r.failures {
        let _ = writeln!(out, "\n**{system} did not finish:** {message}");
    }
    out
}

/// What the ACL and LB phases measure alike, borrowed from one system's report.
pub struct PhaseView<'r> {
    /// Write calls made.
    pub calls: usize,
    /// First write → last write answered.
    pub write_time: Duration,
    /// First write → `--wait=hv sync` returned.
    pub convergence: Duration,
    /// (host, flows on br-int) after convergence.
    pub flows_per_host: &'r [(String, u64)],
    /// The timed change (`--wait=hv`, each).
    pub change: &'r Timing,
}

/// The words of a phase table: "ACL", "write calls (groups, sets, ACL batches)", "the
/// ACLs", "one address-set change".
pub struct PhaseLabels<'a> {
    pub what: &'a str,
    pub calls: &'a str,
    pub objects: &'a str,
    pub change: &'a str,
}

/// A phase's table (`| ACL metric | Weft | OVN | Weft / OVN |`) over the columns whose
/// report has that phase (`get`).
pub fn render_phase(
    out: &mut String,
    cols: &[&SystemReport],
    both: bool,
    l: &PhaseLabels,
    get: impl for<'r> Fn(&'r SystemReport) -> Option<PhaseView<'r>>,
) {
    let mut header = format!("| {} metric |", l.what);
    let mut rule = String::from("|---|");
    for c in cols {
        let _ = write!(header, " {} |", c.system);
        rule.push_str("---|");
    }
    if both {
        header.push_str(" Weft / OVN |");
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    type Cell = dyn Fn(&PhaseView) -> (String, f64);
    let rows: Vec<(String, Box<Cell>)> = vec![
        (
            l.calls.to_string(),
            Box::new(|a| (a.calls.to_string(), 0.0)),
        ),
        (
            format!("**{} convergence**: first write → `--wait=hv sync`", l.what),
            Box::new(|a| {
                (
                    format!("**{}**", secs(a.convergence)),
                    a.convergence.as_secs_f64(),
                )
            }),
        ),
        (
            "… first write → last write answered".to_string(),
            Box::new(|a| (secs(a.write_time), a.write_time.as_secs_f64())),
        ),
        (
            format!("OpenFlow flows per host after {} (min–max)", l.objects),
            Box::new(|a| {
                let it = a.flows_per_host.iter().map(|(_, f)| *f);
                let (lo, hi) = (it.clone().min().unwrap_or(0), it.max().unwrap_or(0));
                (
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}–{hi}")
                    },
                    hi as f64,
                )
            }),
        ),
        (
            format!("**{}** (`--wait=hv`, every host), median", l.change),
            Box::new(|a| {
                (
                    format!("**{}**", secs(a.change.median())),
                    a.change.median().as_secs_f64(),
                )
            }),
        ),
        (
            format!("{}, p99", l.change),
            Box::new(|a| (secs(a.change.p99()), a.change.p99().as_secs_f64())),
        ),
        (
            format!("{}, samples", l.change),
            Box::new(|a| (a.change.samples.len().to_string(), 0.0)),
        ),
    ];
    for (name, f) in rows {
        let _ = write!(out, "| {name} |");
        let mut vals = Vec::new();
        for c in cols {
            match get(c) {
                Some(a) => {
                    let (t, v) = f(&a);
                    let _ = write!(out, " {t} |");
                    vals.push(v);
                }
                None => {
                    let _ = write!(out, " |");
                    vals.push(0.0);
                }
            }
        }
        if both {
            let r = if vals.len() == 2 {
                ratio(vals[0], vals[1])
            } else {
                String::new()
            };
            let _ = write!(out, " {r} |");
        }
        out.push('\n');
    }
    out.push('\n');
}

/// The ACL phase's table.
fn render_acl(out: &mut String, cols: &[&SystemReport], both: bool) {
    let Some(first) = cols.iter().find_map(|c| c.acl.as_ref()) else {
        return;
    };
    let _ = writeln!(
        out,
        "ACL phase: {} ACLs over {} port groups, {} address sets of {} addresses.\n",
        first.acls, first.groups, first.sets, first.set_size
    );
    let labels = PhaseLabels {
        what: "ACL",
        calls: "write calls (groups, sets, ACL batches)",
        objects: "the ACLs",
        change: "one address-set change",
    };
    render_phase(out, cols, both, &labels, |c| {
        c.acl.as_ref().map(|a| PhaseView {
            calls: a.calls,
            write_time: a.write_time,
            convergence: a.convergence,
            flows_per_host: &a.flows_per_host,
            change: &a.set_change,
        })
    });
}

/// Markers around one size's section in a Markdown file.
pub fn section_markers(cfg: &CompareConfig) -> (String, String) {
    let mut key = format!(
        "N={} S={} P={}",
        cfg.hosts, cfg.switches, cfg.ports_per_host
    );
    if let Some(a) = &cfg.acl {
        key.push_str(&format!(" ACLs={}", a.acls));
    }
    if cfg.topology == Topology::Routed {
        key.push_str(" routed");
    }
    if let Some(l) = &cfg.lb {
        key.push_str(&format!(" VIPs={}x{}", l.vips, l.backends));
    }
    (
        format!("<!-- weft-bench compare {key} begin -->"),
        format!("<!-- weft-bench compare {key} end -->"),
    )
}

/// `doc` with the section between the markers replaced by `body`, or the marked section
/// appended at the end when the markers are not there.
pub fn replace_section(doc: &str, begin: &str, end: &str, body: &str) -> String {
    let block = format!("{begin}\n{}\n{end}", body.trim_end());
    if let (Some(b), Some(e)) = (doc.find(begin), doc.find(end)) {
        if b < e {
            return format!("{}{block}{}", &doc[..b], &doc[e + end.len()..]);
        }
    }
    let mut s = doc.trim_end().to_string();
    if !s.is_empty() {
        s.push_str("\n\n");
    }
    s.push_str(&block);
    s.push('\n');
    s
}

/// Write `report`'s tables into `path` (created if missing), replacing that size's earlier
/// section.
pub fn write_section(path: &Path, report: &CompareReport) -> Result<(), CompareError> {
    let werr = |source| CompareError::Write {
        path: path.display().to_string(),
        source,
    };
    let doc = match std::fs::read_to_string(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(werr(e)),
    };
    let (begin, end) = section_markers(&report.config);
    let new = replace_section(&doc, &begin, &end, &render_markdown(report));
    std::fs::write(path, new).map_err(werr)
}

// ----- helpers shared by the two drivers (need a running testbed) -----

/// Bind `ports` (all of one host) to new br-int interfaces, `batch` per `ovs-vsctl` call.
pub(crate) fn bind_vifs(
    host: &weft_testbed::testbed::Host,
    ports: &[PlannedPort],
    batch: usize,
) -> anyhow::Result<()> {
    for chunk in ports.chunks(batch.max(1)) {
        let args = vif_vsctl_args(chunk);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        host.ovs().vsctl(&refs)?;
    }
    Ok(())
}

/// Flows on br-int of every host.
pub(crate) fn flows_per_host(
    tb: &weft_testbed::testbed::Testbed,
) -> anyhow::Result<Vec<(String, u64)>> {
    use anyhow::Context as _;
    let mut v = Vec::new();
    for h in tb.hosts() {
        let out = h
            .ovs()
            .ofctl(&["-O", "OpenFlow15", "dump-aggregate", "br-int"])
            .or_else(|_| h.ovs().ofctl(&["dump-aggregate", "br-int"]))?;
        let n = parse_flow_count(&out)
            .with_context(|| format!("no flow_count in dump-aggregate on {}: {out}", h.name))?;
        v.push((h.name.clone(), n));
    }
    Ok(v)
}

/// CPU ticks of each process now (missing processes count 0).
pub(crate) fn cpu_snapshot(procs: &[(String, u32)]) -> Vec<u64> {
    procs
        .iter()
        .map(|(_, pid)| procstat::sample(*pid).map(|s| s.cpu_ticks).unwrap_or(0))
        .collect()
}

/// Usage of each process, CPU during the run = now − `before`.
pub(crate) fn usage(procs: &[(String, u32)], before: &[u64]) -> Vec<ProcUsage> {
    let tck = procstat::clk_tck() as f64;
    procs
        .iter()
        .zip(before)
        .map(|((role, pid), &b)| {
            let s = procstat::sample(*pid);
            let ticks = s.as_ref().map(|s| s.cpu_ticks).unwrap_or(0);
            ProcUsage {
                role: role.clone(),
                pid: *pid,
                rss_kib: s.map(|s| s.rss_kib).unwrap_or(0),
                cpu_run_s: ticks.saturating_sub(b) as f64 / tck,
                cpu_total_s: ticks as f64 / tck,
            }
        })
        .collect()
}

/// Poll `f` (which returns how many of `want` are done) until all are, or `timeout`.
/// Returns the last count.
pub(crate) fn poll_until(
    want: usize,
    every: Duration,
    timeout: Duration,
    mut f: impl FnMut() -> anyhow::Result<usize>,
) -> anyhow::Result<usize> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let n = f()?;
        if n >= want {
            return Ok(n);
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("only {n} of {want} ports up after {timeout:?}");
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> CompareConfig {
        CompareConfig {
            hosts: 2,
            switches: 2,
            ports_per_host: 3,
            single_adds: 3,
            ..CompareConfig::default()
        }
    }

    #[test]
    fn plan_spreads_ports_over_hosts_and_switches() {
        let cfg = small();
        let plan = cfg.plan();
        assert_eq!(plan.len(), 6);
        assert_eq!(plan[0].name, "p1-0");
        assert_eq!(plan[0].switch, "ls0");
        assert_eq!(plan[1].switch, "ls1");
        assert_eq!(plan[3].host, 2);
        assert_eq!(plan[3].iface, "v0");
        let names: std::collections::BTreeSet<_> = plan.iter().map(|p| &p.name).collect();
        assert_eq!(names.len(), 6);
        let x = cfg.single_port(3);
        assert_eq!(
            (x.host, x.name.as_str(), x.switch.as_str()),
            (2, "x2-3", "ls1")
        );
        assert!(plan.iter().all(|p| p.name != x.name));
    }

    #[test]
    fn bad_sizes_name_the_field() {
        let cfg = CompareConfig {
            batch: 101,
            ..small()
        };
        assert!(cfg
            .validate()
            .expect_err("batch")
            .to_string()
            .contains("batch = 101"));
        let cfg = CompareConfig {
            switches: 0,
            ..small()
        };
        assert!(cfg
            .validate()
            .expect_err("switches")
            .to_string()
            .contains("switches = 0"));
        assert!(small().validate().is_ok());
    }

    #[test]
    fn vsctl_args_bind_each_interface() {
        let plan = small().plan();
        let args = vif_vsctl_args(&plan[..2]);
        let s = args.join(" ");
        assert_eq!(
            s,
            "-- add-port br-int v0 -- set interface v0 type=internal external_ids:iface-id=p1-0 \
             -- add-port br-int v1 -- set interface v1 type=internal external_ids:iface-id=p1-1"
        );
    }

    #[test]
    fn flow_count_from_dump_aggregate() {
        let out = "OFPST_AGGREGATE reply (OF1.5) (xid=0x2): packet_count=0 byte_count=0 flow_count=4711\n";
        assert_eq!(parse_flow_count(out), Some(4711));
        assert_eq!(parse_flow_count("nothing"), None);
    }

    #[test]
    fn section_is_replaced_or_appended() {
        let doc = "# B\n\ntext\n";
        let once = replace_section(doc, "<!-- a -->", "<!-- b -->", "T1\n");
        assert_eq!(once, "# B\n\ntext\n\n<!-- a -->\nT1\n<!-- b -->\n");
        let twice = replace_section(&once, "<!-- a -->", "<!-- b -->", "T2");
        assert_eq!(twice, "# B\n\ntext\n\n<!-- a -->\nT2\n<!-- b -->\n");
        let other = replace_section(&twice, "<!-- c -->", "<!-- d -->", "U");
        assert!(other.contains("T2") && other.ends_with("<!-- c -->\nU\n<!-- d -->\n"));
    }

    #[test]
    fn markdown_has_both_columns_and_a_ratio() {
        let sys = |system, conv_ms| SystemReport {
            system,
            create_path: "x".into(),
            create_calls: 1,
            ports: 6,
            ports_up: 6,
            create_time: Duration::from_millis(10),
            up_time: Duration::from_millis(conv_ms / 2),
            convergence: Duration::from_millis(conv_ms),
            single_adds: Timing {
                samples: vec![Duration::from_millis(5); 3],
            },
            stages: Vec::new(),
            flows_per_host: vec![("host1".into(), 40), ("host2".into(), 42)],
            processes: vec![ProcUsage {
                role: "etcd".into(),
                pid: 1,
                rss_kib: 2048,
                cpu_run_s: 0.5,
                cpu_total_s: 1.0,
            }],
            acl: None,
            lb: None,
        };
        let r = CompareReport {
            config: small(),
            systems: vec![sys(System::Weft, 500), sys(System::Ovn, 2000)],
            failures: Vec::new(),
        };
        let md = render_markdown(&r);
        assert!(md.contains("| metric | Weft | OVN | Weft / OVN |"), "{md}");
        assert!(md.contains("**500 ms** | **2.00 s** | 0.25× |"), "{md}");
        assert!(md.contains("| 40–42 | 40–42 |"), "{md}");
        assert!(
            md.contains("| OVN | etcd | 2.0 MiB | 0.50 s | 1.00 s |"),
            "{md}"
        );
        let failed = CompareReport {
            config: small(),
            systems: vec![sys(System::Weft, 500)],
            failures: vec![(System::Ovn, "--wait=hv sync timed out after 600 s".into())],
        };
        let md = render_markdown(&failed);
        assert!(md.contains("| metric | Weft |\n"), "{md}");
        assert!(
            md.contains("**OVN did not finish:** --wait=hv sync timed out after 600 s"),
            "{md}"
        );
    }
}
