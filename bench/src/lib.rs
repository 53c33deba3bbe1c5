//! Weft benchmarks (issue 3, "Performance"). Pure CPU measurements of the agent's pipeline:
//! no sockets, no OVS. The OpenFlow install rate is measured by the `weft-openflow`
//! example `install_rate` instead (see `docs/benchmarks.md`).
//!
//! Start with [`run_pipeline`]: it builds a synthetic chassis view ([`topology`]) from one
//! southbound `ViewUpdate` snapshot, then times [`compile_all`], a full [`diff`] against an
//! empty and against an identical installed table, and the incremental path of adding ONE
//! port to a view that already holds [`PipelineConfig::add_at`] ports
//! ([`ChassisView::apply`] of a delta, [`recompile`], [`diff_delta`], [`bundle_ops`]).
//! Everything lands in a [`PipelineReport`]; the binary prints it.
//!
//! The side-by-side comparison with OVN on simulated hosts (issue 5) is [`compare`]: start
//! with [`compare::run_compare`].
//!
//! Topology: port `i` is on switch `i % switches` and chassis `hv{(i / switches) % chassis + 1}`;
//! `hv1` is this chassis (its ports get a VIF ofport and port security), the others are
//! remote chassis reached over Geneve.

pub mod compare;
pub mod dataplane;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use weft_agent::agent::bundle_ops;
use weft_agent::diff::{diff, diff_delta, Installed};
use weft_agent::ids::Ids;
use weft_agent::pipeline::{compile_all, recompile, CompileInput, DesiredState, Encap};
use weft_agent::view::{ChassisView, ViewError};
use weft_openflow::codec::{self, BundleControl, BundleCtrlType, CodecError, Message};
use weft_openflow::flow::{Flow, Group};
use weft_openflow::BundleOp;
use weft_proto::model::view::ViewDelta;
use weft_proto::v1::{PortAddress, PortView, RemoteChassis, SwitchView};

/// The name of the chassis the benchmark compiles for.
pub const LOCAL_CHASSIS: &str = "hv1";
/// Ofport of the Geneve tunnel port; VIF ofports start after it.
pub const GENEVE_OFPORT: u32 = 1;
/// Largest number of switches (each gets a `10.<n>.0.0/16` subnet).
pub const MAX_SWITCHES: usize = 254;
/// Largest number of ports per switch (host part of a /16).
pub const MAX_PORTS_PER_SWITCH: usize = 65_000;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid {field} = {value}: {reason}")]
    Config {
        field: &'static str,
        value: usize,
        reason: &'static str,
    },
    #[error("the synthetic view was rejected: {0}")]
    View(#[from] ViewError),
    #[error("encoding a bundle message failed: {0}")]
    Codec(#[from] CodecError),
    #[error("id allocation failed: {0}")]
    Ids(#[from] weft_agent::ids::IdError),
}

fn ids_for(view: &ChassisView, vifs: &BTreeMap<String, u32>) -> Result<Ids, BenchError> {
    let mut ids = Ids::default();
    ids.sync(view, LOCAL_CHASSIS, vifs)?;
    Ok(ids)
}

fn none_installed() -> Installed<'static> {
    Installed {
        flows: &[],
        groups: &[],
        meters: &[],
    }
}

/// The shape of the synthetic topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopologyConfig {
    /// Logical switch ports in the view.
    pub ports: usize,
    /// Logical switches the ports are spread over.
    pub switches: usize,
    /// Chassis, this one included (1 = every port is local).
    pub chassis: usize,
}

/// What [`run_pipeline`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Topology for the compile and full-diff measurements.
    pub topology: TopologyConfig,
    /// Repetitions of each full measurement.
    pub iters: usize,
    /// Ports in the view before the single-port adds.
    pub add_at: usize,
    /// Single-port adds measured, for a local port and again for a remote port.
    pub adds: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            topology: TopologyConfig {
                ports: 10_000,
                switches: 4,
                chassis: 4,
            },
            iters: 5,
            add_at: 4_000,
            adds: 50,
        }
    }
}

/// Samples of one measurement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    pub samples: Vec<Duration>,
}

impl Timing {
    fn push(&mut self, d: Duration) {
        self.samples.push(d);
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut s = self.samples.clone();
        s.sort_unstable();
        s
    }

    /// Median (upper median for an even count); zero without samples.
    pub fn median(&self) -> Duration {
        let s = self.sorted();
        s.get(s.len() / 2).copied().unwrap_or_default()
    }

    /// 99th percentile (nearest rank); zero without samples.
    pub fn p99(&self) -> Duration {
        let s = self.sorted();
        if s.is_empty() {
            return Duration::ZERO;
        }
        let rank = (s.len() * 99).div_ceil(100).max(1);
        s[rank - 1]
    }
}

/// The synthetic input of the compiler.
#[derive(Clone, Debug)]
pub struct Topology {
    /// The snapshot the view is built from.
    pub snapshot: ViewDelta,
    /// Local port name → VIF ofport.
    pub vifs: BTreeMap<String, u32>,
    pub tunnels: BTreeMap<Encap, u32>,
    /// Number of ports bound to [`LOCAL_CHASSIS`].
    pub local_ports: usize,
}

fn check(cfg: &TopologyConfig) -> Result<(), BenchError> {
    if cfg.switches == 0 || cfg.switches > MAX_SWITCHES {
        return Err(BenchError::Config {
            field: "switches",
            value: cfg.switches,
            reason: "must be in 1..=254",
        });
    }
    if cfg.chassis == 0 || cfg.chassis > 250 {
        return Err(BenchError::Config {
            field: "chassis",
            value: cfg.chassis,
            reason: "must be in 1..=250",
        });
    }
    if cfg.ports / cfg.switches >= MAX_PORTS_PER_SWITCH {
        return Err(BenchError::Config {
            field: "ports",
            value: cfg.ports,
            reason: "more than 65,000 ports per switch",
        });
    }
    Ok(())
}

fn switch_name(s: usize) -> String {
    format!("ls{s}")
}

fn chassis_name(c: usize) -> String {
    format!("hv{}", c + 1)
}

/// The view entry of port number `i` (its switch is `i % switches`), bound to `chassis`.
fn port_view(i: usize, switches: usize, chassis: &str, name: String) -> PortView {
    let s = i % switches;
    let host = i / switches + 2;
    let (hi, lo) = ((host >> 8) as u8, (host & 0xff) as u8);
    let mac = format!("0a:58:0a:{:02x}:{hi:02x}:{lo:02x}", s + 1);
    let ip = format!("10.{}.{hi}.{lo}", s + 1);
    let local = chassis == LOCAL_CHASSIS;
    PortView {
        name,
        switch_name: switch_name(s),
        addresses: vec![PortAddress {
            mac: mac.clone(),
            ips: vec![ip.clone()],
        }],
        unknown: false,
        port_security: if local {
            vec![PortAddress { mac, ips: vec![ip] }]
        } else {
            Vec::new()
        },
        chassis: chassis.to_string(),
        enabled: true,
        tunnel_key: (i / switches + 1) as u32,
        ..Default::default()
    }
}

/// Builds the snapshot, VIFs and tunnels of `cfg` (see the module docs for the layout).
pub fn topology(cfg: &TopologyConfig) -> Result<Topology, BenchError> {
    check(cfg)?;
    let switches = (0..cfg.switches)
        .map(|s| SwitchView {
            name: switch_name(s),
            vni: s as u32 + 1,
            subnet: format!("10.{}.0.0/16", s + 1),
            mtu: 1442,
            tunnel_key: s as u32 + 1,
            load_balancer: Vec::new(),
        })
        .collect();
    let chassis = (1..cfg.chassis)
        .map(|c| RemoteChassis {
            name: chassis_name(c),
            encap_ip: format!("192.168.0.{}", c + 1),
            encap_types: vec!["geneve".into()],
        })
        .collect();
    let mut vifs = BTreeMap::new();
    let mut ports = Vec::with_capacity(cfg.ports);
    for i in 0..cfg.ports {
        let c = chassis_name((i / cfg.switches) % cfg.chassis);
        let name = format!("p{i}");
        if c == LOCAL_CHASSIS {
            vifs.insert(name.clone(), GENEVE_OFPORT + 1 + vifs.len() as u32);
        }
        ports.push(port_view(i, cfg.switches, &c, name));
    }
    Ok(Topology {
        snapshot: ViewDelta {
            revision: 1,
            snapshot: true,
            switches,
            ports,
            chassis,
            ..Default::default()
        },
        local_ports: vifs.len(),
        vifs,
        tunnels: [(Encap::Geneve, GENEVE_OFPORT)].into(),
    })
}

/// Bytes on the wire of one OpenFlow 1.5 bundle carrying `ops`: open, one
/// `BUNDLE_ADD_MESSAGE` per op, commit (what `OfChannel::apply_bundle` sends).
pub fn bundle_bytes(ops: &[BundleOp]) -> Result<usize, BenchError> {
    const FLAGS: u16 = 0x3; // OFPBF_ATOMIC | OFPBF_ORDERED
    let ctrl = |ctrl_type| {
        Message::BundleControl(BundleControl {
            bundle_id: 1,
            ctrl_type,
            flags: FLAGS,
            properties: Vec::new(),
        })
    };
    let mut out = Vec::new();
    codec::encode(1, &ctrl(BundleCtrlType::OpenRequest), &mut out)?;
    for (i, op) in ops.iter().enumerate() {
        codec::encode_bundle_add(i as u32 + 2, 1, FLAGS, &op.to_message(), &mut out)?;
    }
    codec::encode(0, &ctrl(BundleCtrlType::CommitRequest), &mut out)?;
    Ok(out.len())
}

/// Which kind of port the single-port adds create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddKind {
    /// Bound to this chassis, with a VIF (what the host that gets the pod does).
    Local,
    /// Bound to a remote chassis (what every other host does for the same add).
    Remote,
}

/// The incremental path for single-port adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddReport {
    pub kind: AddKind,
    /// Ports in the view before the first add.
    pub base_ports: usize,
    /// Flows and groups installed before the first add.
    pub base_flows: usize,
    pub base_groups: usize,
    pub adds: usize,
    /// Largest number of flow_mods / group_mods of one add.
    pub max_flow_mods: usize,
    pub max_group_mods: usize,
    /// Largest bundle of one add: messages inside it, bytes on the wire.
    pub max_ops: usize,
    pub max_bundle_bytes: usize,
    /// Bundles one add needs (the largest over all adds): 1 per non-empty diff.
    pub max_bundles: usize,
    /// Owners recompiled by one add (the largest).
    pub max_owners: usize,
    /// The incremental diff of the first add equals a full diff of the same change.
    pub matches_full_diff: bool,
    /// `ChassisView::apply` of the delta.
    pub apply: Timing,
    /// `pipeline::recompile`.
    pub recompile: Timing,
    /// `diff::diff_delta` + `bundle_ops`.
    pub diff: Timing,
    /// All of the above: the agent's CPU cost from the delta to the bundle.
    pub total: Timing,
}

/// Everything [`run_pipeline`] measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineReport {
    pub config: PipelineConfig,
    pub local_ports: usize,
    pub remote_chassis: usize,
    /// Desired flows and groups of the full topology.
    pub flows: usize,
    pub groups: usize,
    /// `ChassisView::apply` of the snapshot.
    pub view_apply: Timing,
    /// `pipeline::compile_all`.
    pub compile: Timing,
    /// Full `diff::diff` against an empty switch, and its bundle.
    pub diff_empty: Timing,
    pub diff_empty_ops: usize,
    pub full_bundle_bytes: usize,
    /// `bundle_ops` + encoding the full bundle.
    pub encode_full: Timing,
    /// Full `diff::diff` against a switch that already holds the desired table.
    pub diff_identical: Timing,
    pub diff_identical_ops: usize,
    /// The periodic resync's split of the same diff: indexing the read-back (background
    /// task) and `diff::diff_indexed` (the agent's main loop).
    pub index_installed: Timing,
    pub diff_indexed: Timing,
    pub diff_indexed_ops: usize,
    pub add_local: AddReport,
    pub add_remote: AddReport,
}

/// Builds a view from `cfg` and compiles it, timing the snapshot apply.
fn build_view(topo: &Topology, timing: &mut Timing) -> Result<ChassisView, BenchError> {
    let mut view = ChassisView::new();
    let t = Instant::now();
    view.apply(&topo.snapshot)?;
    timing.push(t.elapsed());
    Ok(view)
}

/// Runs the pipeline benchmark. Deterministic apart from the timings.
pub fn run_pipeline(cfg: &PipelineConfig) -> Result<PipelineReport, BenchError> {
    if cfg.iters == 0 {
        return Err(BenchError::Config {
            field: "iters",
            value: 0,
            reason: "must be at least 1",
        });
    }
    let topo = topology(&cfg.topology)?;

    let mut view_apply = Timing::default();
    let mut compile = Timing::default();
    let mut diff_empty = Timing::default();
    let mut encode_full = Timing::default();
    let mut diff_identical = Timing::default();
    let mut index_installed = Timing::default();
    let mut diff_indexed = Timing::default();
    let mut diff_indexed_ops = 0;
    let (mut flows, mut groups, mut diff_empty_ops, mut full_bundle_bytes, mut diff_identical_ops) =
        (0, 0, 0, 0, 0);
    for _ in 0..cfg.iters {
        let view = build_view(&topo, &mut view_apply)?;
        let ids = ids_for(&view, &topo.vifs)?;
        let input = CompileInput {
            chassis: LOCAL_CHASSIS,
            view: &view,
            vifs: &topo.vifs,
            tunnels: &topo.tunnels,
            ids: &ids,
            neighbours: &weft_agent::pinctrl::neigh::NO_NEIGHBOURS,
            localnets: &weft_agent::pipeline::NO_LOCALNETS,
        };
        let t = Instant::now();
        let desired = compile_all(&input);
        compile.push(t.elapsed());
        flows = desired.flow_count();
        groups = desired.group_count();

        let t = Instant::now();
        let d = diff(none_installed(), &desired);
        diff_empty.push(t.elapsed());
        diff_empty_ops = d.len();

        let t = Instant::now();
        let ops = bundle_ops(&d);
        full_bundle_bytes = bundle_bytes(&ops)?;
        encode_full.push(t.elapsed());

        let installed_flows: Vec<Flow> = desired.flows().cloned().collect();
        let installed_groups: Vec<Group> = desired.groups().cloned().collect();
        let installed_meters: Vec<_> = desired.meters().cloned().collect();
        let t = Instant::now();
        let d = diff(
            Installed {
                flows: &installed_flows,
                groups: &installed_groups,
                meters: &installed_meters,
            },
            &desired,
        );
        diff_identical.push(t.elapsed());
        diff_identical_ops = d.len();

        let t = Instant::now();
        let ix = weft_agent::diff::InstalledIndex::new(
            installed_flows,
            installed_groups,
            installed_meters,
        );
        index_installed.push(t.elapsed());
        let t = Instant::now();
        let d = weft_agent::diff::diff_indexed(&ix, &desired, &Default::default());
        diff_indexed.push(t.elapsed());
        diff_indexed_ops = d.len();
    }

    let add_local = run_adds(cfg, AddKind::Local)?;
    let add_remote = run_adds(cfg, AddKind::Remote)?;
    Ok(PipelineReport {
        config: *cfg,
        local_ports: topo.local_ports,
        remote_chassis: cfg.topology.chassis - 1,
        flows,
        groups,
        view_apply,
        compile,
        diff_empty,
        diff_empty_ops,
        full_bundle_bytes,
        encode_full,
        diff_identical,
        diff_identical_ops,
        index_installed,
        diff_indexed,
        diff_indexed_ops,
        add_local,
        add_remote,
    })
}

/// `cfg.adds` single-port adds on top of a view of `cfg.add_at` ports, one after the other
/// (each add sees the ports of the previous ones), as the agent does them.
fn run_adds(cfg: &PipelineConfig, kind: AddKind) -> Result<AddReport, BenchError> {
    let base = TopologyConfig {
        ports: cfg.add_at,
        ..cfg.topology
    };
    let mut topo = topology(&base)?;
    if kind == AddKind::Remote && base.chassis < 2 {
        return Err(BenchError::Config {
            field: "chassis",
            value: base.chassis,
            reason: "a remote add needs at least 2 chassis",
        });
    }
    let mut view = ChassisView::new();
    view.apply(&topo.snapshot)?;
    let mut ids = ids_for(&view, &topo.vifs)?;
    let mut desired: DesiredState = compile_all(&CompileInput {
        chassis: LOCAL_CHASSIS,
        view: &view,
        vifs: &topo.vifs,
        tunnels: &topo.tunnels,
        ids: &ids,
        neighbours: &weft_agent::pinctrl::neigh::NO_NEIGHBOURS,
        localnets: &weft_agent::pipeline::NO_LOCALNETS,
    });
    let mut report = AddReport {
        kind,
        base_ports: cfg.add_at,
        base_flows: desired.flow_count(),
        base_groups: desired.group_count(),
        adds: cfg.adds,
        max_flow_mods: 0,
        max_group_mods: 0,
        max_ops: 0,
        max_bundle_bytes: 0,
        max_bundles: 0,
        max_owners: 0,
        matches_full_diff: false,
        apply: Timing::default(),
        recompile: Timing::default(),
        diff: Timing::default(),
        total: Timing::default(),
    };
    let mut next_ofport = GENEVE_OFPORT + 1 + topo.vifs.len() as u32;
    for n in 0..cfg.adds {
        let i = cfg.add_at + n;
        let name = format!("new-{i}");
        let chassis = match kind {
            AddKind::Local => LOCAL_CHASSIS.to_string(),
            AddKind::Remote => chassis_name(1 + n % (base.chassis - 1)),
        };
        let delta = ViewDelta {
            revision: 2 + n as i64,
            snapshot: false,
            ports: vec![port_view(i, base.switches, &chassis, name.clone())],
            ..Default::default()
        };
        // For the first add, keep the table the switch holds to check against a full diff.
        let before = (n == 0).then(|| {
            (
                desired.flows().cloned().collect::<Vec<_>>(),
                desired.groups().cloned().collect::<Vec<_>>(),
                desired.meters().cloned().collect::<Vec<_>>(),
            )
        });

        let start = Instant::now();
        let mut change = view.apply(&delta)?;
        let applied = Instant::now();
        if kind == AddKind::Local {
            // The VIF shows up on br-int (the agent learns it from OVSDB).
            topo.vifs.insert(name.clone(), next_ofport);
            next_ofport += 1;
            change.mark_port(name.clone());
        }
        ids.sync(&view, LOCAL_CHASSIS, &topo.vifs)?;
        let input = CompileInput {
            chassis: LOCAL_CHASSIS,
            view: &view,
            vifs: &topo.vifs,
            tunnels: &topo.tunnels,
            ids: &ids,
            neighbours: &weft_agent::pinctrl::neigh::NO_NEIGHBOURS,
            localnets: &weft_agent::pipeline::NO_LOCALNETS,
        };
        let recompiled = recompile(&mut desired, &input, &change);
        let compiled = Instant::now();
        let d = diff_delta(&recompiled.delta);
        let ops = bundle_ops(&d);
        let done = Instant::now();

        report.apply.push(applied - start);
        report.recompile.push(compiled - applied);
        report.diff.push(done - compiled);
        report.total.push(done - start);

        report.max_flow_mods = report.max_flow_mods.max(d.flows.len());
        report.max_group_mods = report.max_group_mods.max(d.groups.len());
        report.max_ops = report.max_ops.max(ops.len());
        report.max_bundles = report.max_bundles.max(usize::from(!ops.is_empty()));
        report.max_owners = report.max_owners.max(recompiled.owners.len());
        report.max_bundle_bytes = report.max_bundle_bytes.max(bundle_bytes(&ops)?);
        if let Some((flows, groups, meters)) = before {
            let full = diff(
                Installed {
                    flows: &flows,
                    groups: &groups,
                    meters: &meters,
                },
                &desired,
            );
            report.matches_full_diff = full.to_sorted_lines() == d.to_sorted_lines();
        }
    }
    Ok(report)
}
