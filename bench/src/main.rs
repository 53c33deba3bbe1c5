//! `weft-bench`: prints Weft's benchmark numbers. See the library docs (`weft_bench`) for
//! what is measured and `docs/benchmarks.md` for results.
//!
//! `weft-bench pipeline [--ports 10000] [--switches 4] [--chassis 4] [--iters 5]
//! [--add-at 4000] [--adds 50]` — build in release mode for meaningful numbers.
//!
//! `weft-bench compare --system weft|ovn|both --hosts N --switches S --ports-per-host P
//! [--single-adds 50] [--topology flat|routed] [--out docs/benchmarks.md]` — Weft vs OVN on simulated hosts (root;
//! set `WEFT_BIN_DIR=target/release` to run release binaries).
//!
//! `weft-bench dataplane [--system weft|ovn|both] [--no-raw] [--seconds 10] [--streams 1] [--services]` —
//! pod-to-pod iperf3 over Geneve: raw OVS, Weft, OVN (root, iperf3 installed).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use weft_bench::compare::{self, CompareConfig, System};
use weft_bench::{run_pipeline, AddReport, PipelineConfig, PipelineReport, Timing, TopologyConfig};

#[derive(Parser, Debug)]
#[command(name = "weft-bench", about = "Weft benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pipeline compile and diff times, and the incremental cost of adding one port.
    Pipeline(PipelineArgs),
    /// Weft vs OVN on the same simulated hosts: convergence, one more port, flows, RSS, CPU.
    Compare(CompareArgs),
    /// Pod-to-pod TCP throughput (iperf3) over Geneve: raw OVS, Weft, OVN (root).
    Dataplane(DataplaneArgs),
}

#[derive(Args, Debug)]
struct DataplaneArgs {
    /// Which control plane(s) to run after raw OVS.
    #[arg(long, value_enum, default_value_t = SystemArg::Both)]
    system: SystemArg,
    /// Skip the raw OVS run.
    #[arg(long)]
    no_raw: bool,
    /// Seconds per transfer.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Parallel TCP streams.
    #[arg(long, default_value_t = 1)]
    streams: u32,
    /// Also run each system with stateful ACLs and a TCP load balancer in the path.
    #[arg(long)]
    services: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SystemArg {
    Weft,
    Ovn,
    Both,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Which control plane(s) to run (one after the other).
    #[arg(long, value_enum, default_value_t = SystemArg::Both)]
    system: SystemArg,
    /// Simulated hosts (N).
    #[arg(long, default_value_t = 4)]
    hosts: usize,
    /// Logical switches (S).
    #[arg(long, default_value_t = 4)]
    switches: usize,
    /// Ports per host (P).
    #[arg(long, default_value_t = 50)]
    ports_per_host: usize,
    /// Single-port adds timed after convergence.
    #[arg(long, default_value_t = 50)]
    single_adds: usize,
    /// Ports per create call.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Give up on a wait after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Also write the tables into this Markdown file (replacing this size's earlier section).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Run the ACL phase with this many ACLs after the ports (0: none).
    #[arg(long, default_value_t = 0)]
    acls: usize,
    /// Port groups of the ACL phase.
    #[arg(long, default_value_t = 10)]
    acl_groups: usize,
    /// Address sets of the ACL phase.
    #[arg(long, default_value_t = 10)]
    acl_sets: usize,
    /// Addresses per set.
    #[arg(long, default_value_t = 1000)]
    acl_set_size: usize,
    /// Every n-th ACL matches an address set (the others only a port).
    #[arg(long, default_value_t = 10)]
    acl_set_every: usize,
    /// Timed address-set changes.
    #[arg(long, default_value_t = 10)]
    acl_set_changes: usize,
    /// Run the load balancer phase with this many VIPs (one LB each, on every switch)
    /// after the ports (0: none).
    #[arg(long, default_value_t = 0)]
    lb_vips: usize,
    /// Backends per VIP of the LB phase.
    #[arg(long, default_value_t = 10)]
    lb_backends: usize,
    /// Timed backend changes of the LB phase.
    #[arg(long, default_value_t = 10)]
    lb_changes: usize,
    /// flat: S switches; routed: the S switches on one router (a router port per switch).
    #[arg(long, value_enum, default_value_t = TopologyArg::Flat)]
    topology: TopologyArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TopologyArg {
    Flat,
    Routed,
}

#[derive(Args, Debug)]
struct PipelineArgs {
    /// Logical switch ports in the view.
    #[arg(long, default_value_t = 10_000)]
    ports: usize,
    /// Logical switches the ports are spread over.
    #[arg(long, default_value_t = 4)]
    switches: usize,
    /// Chassis, this one included; 1/chassis of the ports are local.
    #[arg(long, default_value_t = 4)]
    chassis: usize,
    /// Repetitions of each full measurement.
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Ports in the view before the single-port adds.
    #[arg(long, default_value_t = 4_000)]
    add_at: usize,
    /// Single-port adds (local, then again remote).
    #[arg(long, default_value_t = 50)]
    adds: usize,
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn timing_row(what: &str, t: &Timing, note: &str) {
    println!(
        "| {what} | {} | {} | {} | {note} |",
        ms(t.median()),
        ms(t.p99()),
        t.samples.len()
    );
}

fn print_add(a: &AddReport) {
    let kind = match a.kind {
        weft_bench::AddKind::Local => "local",
        weft_bench::AddKind::Remote => "remote",
    };
    println!();
    println!(
        "Add one {kind} port at {} ports ({} flows, {} groups installed), {} adds:",
        a.base_ports, a.base_flows, a.base_groups, a.adds
    );
    println!(
        "  per add (max): {} flow_mods, {} group_mods, {} bundle(s) of {} messages / {} bytes, \
         {} owners recompiled; incremental diff == full diff: {}",
        a.max_flow_mods,
        a.max_group_mods,
        a.max_bundles,
        a.max_ops,
        a.max_bundle_bytes,
        a.max_owners,
        a.matches_full_diff
    );
    println!();
    println!("| step | median | p99 | samples | |");
    println!("|---|---|---|---|---|");
    timing_row("ChassisView::apply (delta)", &a.apply, "");
    timing_row("pipeline::recompile", &a.recompile, "");
    timing_row("diff_delta + bundle_ops", &a.diff, "");
    timing_row("total", &a.total, "delta in, bundle out");
}

fn print(r: &PipelineReport) {
    let t = &r.config.topology;
    println!(
        "Topology: {} ports on {} switches, {} chassis ({} local ports with VIFs, {} remote chassis)",
        t.ports, t.switches, t.chassis, r.local_ports, r.remote_chassis
    );
    println!("Desired state: {} flows, {} groups", r.flows, r.groups);
    println!();
    println!("| step | median | p99 | samples | result |");
    println!("|---|---|---|---|---|");
    timing_row("ChassisView::apply (snapshot)", &r.view_apply, "");
    timing_row(
        "pipeline::compile_all",
        &r.compile,
        &format!("{} flows, {} groups", r.flows, r.groups),
    );
    timing_row(
        "diff::diff vs empty switch",
        &r.diff_empty,
        &format!("{} ops", r.diff_empty_ops),
    );
    timing_row(
        "bundle_ops + encode (full bundle)",
        &r.encode_full,
        &format!("{} bytes", r.full_bundle_bytes),
    );
    timing_row(
        "diff::diff vs identical table",
        &r.diff_identical,
        &format!("{} ops", r.diff_identical_ops),
    );
    timing_row(
        "resync: index the table read back (background)",
        &r.index_installed,
        "",
    );
    timing_row(
        "resync: diff::diff_indexed vs identical table (main loop)",
        &r.diff_indexed,
        &format!("{} ops", r.diff_indexed_ops),
    );
    print_add(&r.add_local);
    print_add(&r.add_remote);
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Pipeline(a) => {
            let cfg = PipelineConfig {
                topology: TopologyConfig {
                    ports: a.ports,
                    switches: a.switches,
                    chassis: a.chassis,
                },
                iters: a.iters,
                add_at: a.add_at,
                adds: a.adds,
            };
            let report = run_pipeline(&cfg)?;
            print(&report);
        }
        Command::Compare(a) => {
            let systems = match a.system {
                SystemArg::Weft => vec![System::Weft],
                SystemArg::Ovn => vec![System::Ovn],
                SystemArg::Both => vec![System::Weft, System::Ovn],
            };
            let cfg = CompareConfig {
                systems,
                hosts: a.hosts,
                switches: a.switches,
                ports_per_host: a.ports_per_host,
                single_adds: a.single_adds,
                batch: a.batch,
                timeout: Duration::from_secs(a.timeout_secs),
                acl: (a.acls > 0).then(|| compare::acl::AclScale {
                    acls: a.acls,
                    groups: a.acl_groups,
                    sets: a.acl_sets,
                    set_size: a.acl_set_size,
                    set_every: a.acl_set_every,
                    set_changes: a.acl_set_changes,
                    ..compare::acl::AclScale::default()
                }),
                topology: match a.topology {
                    TopologyArg::Flat => compare::Topology::Flat,
                    TopologyArg::Routed => compare::Topology::Routed,
                },
                lb: (a.lb_vips > 0).then(|| compare::lb::LbScale {
                    vips: a.lb_vips,
                    backends: a.lb_backends,
                    changes: a.lb_changes,
                    ..compare::lb::LbScale::default()
                }),
                ..CompareConfig::default()
            };
            let start = std::time::Instant::now();
            let report = compare::run_compare(&cfg, &mut |line| {
                eprintln!("[{:>7.1}s] {line}", start.elapsed().as_secs_f64());
            })?;
            println!("{}", compare::render_markdown(&report));
            if let Some(out) = &a.out {
                compare::write_section(out, &report)?;
                eprintln!("wrote {}", out.display());
            }
            if let Some((system, message)) = report.failures.first() {
                anyhow::bail!("{system} did not finish (the others are reported): {message}");
            }
        }
        Command::Dataplane(a) => {
            let cfg = weft_bench::dataplane::DataplaneConfig {
                seconds: a.seconds,
                streams: a.streams,
                raw: !a.no_raw,
                systems: match a.system {
                    SystemArg::Weft => vec![System::Weft],
                    SystemArg::Ovn => vec![System::Ovn],
                    SystemArg::Both => vec![System::Weft, System::Ovn],
                },
                services: a.services,
            };
            let start = std::time::Instant::now();
            let rows = weft_bench::dataplane::run_dataplane(&cfg, &mut |line| {
                eprintln!("[{:>7.1}s] {line}", start.elapsed().as_secs_f64());
            })?;
            println!("{}", weft_bench::dataplane::render(&rows, &cfg));
        }
    }
    Ok(())
}
