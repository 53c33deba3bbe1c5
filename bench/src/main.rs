//! `weft-bench`: prints Weft's benchmark numbers. See the library docs (`weft_bench`) for
//! what is measured and `docs/benchmarks.md` for results.
//!
//! `weft-bench pipeline [--ports 10000] [--switches 4] [--chassis 4] [--iters 5]
//! [--add-at 4000] [--adds 50]` — build in release mode for meaningful numbers.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
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
    }
    Ok(())
}
