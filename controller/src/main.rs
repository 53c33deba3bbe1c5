//! `weft-controller`: parses flags, sets up logging and runs [`weft_controller::run`] until
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use weft_controller::{Config, StoreKind};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreArg {
    Etcd,
    Memory,
}

/// Weft controller: network intent in etcd, northbound and southbound gRPC on one port.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7600", env = "WEFT_LISTEN")]
    listen: SocketAddr,
    /// etcd client URL(s), comma separated.
    #[arg(
        long,
        default_value = "http://127.0.0.1:2379",
        value_delimiter = ',',
        env = "WEFT_ETCD"
    )]
    etcd: Vec<String>,
    /// Key prefix in etcd.
    #[arg(long, default_value = "/weft", env = "WEFT_PREFIX")]
    prefix: String,
    /// Store backend (memory persists nothing).
    #[arg(long, value_enum, default_value = "etcd")]
    store: StoreArg,
    /// Chassis lease TTL in seconds.
    #[arg(long, default_value_t = 10)]
    lease_ttl: i64,
    /// Timeout for one etcd call, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    etcd_timeout_ms: u64,
    /// Largest etcd transaction the controller builds; must not exceed etcd's --max-txn-ops
    /// (etcd's default is 128). A CreatePorts batch needs about 3 per port with one address.
    #[arg(long, default_value_t = 128, env = "WEFT_ETCD_MAX_TXN_OPS",
          value_parser = clap::value_parser!(u32).range(8..))]
    etcd_max_txn_ops: u32,
    /// Where /metrics, /healthz and /readyz are served (HTTP), or "off".
    #[arg(long, default_value = "127.0.0.1:9600", env = "WEFT_METRICS_LISTEN",
          value_parser = parse_listen)]
    metrics_listen: Listen,
    /// Largest number of ports one CreatePorts call (lsp-add-batch) may carry.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    max_batch: u32,
    /// Largest number of flows one ACL's match may compile to (address sets and port groups
    /// expanded); a larger one is refused with the number it would need.
    #[arg(long, default_value_t = 10_000, env = "WEFT_ACL_MAX_FLOWS",
          value_parser = clap::value_parser!(u32).range(1..))]
    acl_max_flows: u32,
}

/// An HTTP listen address, or off.
#[derive(Debug, Clone, Copy)]
struct Listen(Option<SocketAddr>);

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s == "off" {
        return Ok(Listen(None));
    }
    s.parse()
        .map(|a| Listen(Some(a)))
        .map_err(|_| format!("expected ADDRESS:PORT (e.g. 127.0.0.1:9600) or \"off\", got {s:?}"))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = Config {
        listen: args.listen,
        etcd_endpoints: args.etcd,
        prefix: args.prefix,
        store: match args.store {
            StoreArg::Etcd => StoreKind::Etcd,
            StoreArg::Memory => StoreKind::Memory,
        },
        lease_ttl_secs: args.lease_ttl,
        etcd_timeout: Duration::from_millis(args.etcd_timeout_ms),
        etcd_max_txn_ops: args.etcd_max_txn_ops as usize,
        max_batch: args.max_batch as usize,
        acl_max_flows: args.acl_max_flows as usize,
        metrics_listen: args.metrics_listen.0,
        ..Config::default()
    };
    weft_controller::run(config, shutdown_signal()).await?;
    Ok(())
}
