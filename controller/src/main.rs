//! `weft-controller`: parses flags, sets up logging and runs [`weft_controller::run`] until
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use weft_controller::auth::Policy;
use weft_controller::{Config, Security, StoreKind};
use weft_proto::tls::{TlsFiles, Transport};

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
    /// Timeout for one etcd call, in milliseconds: a frozen or partitioned etcd makes API
    /// calls answer Unavailable after this long (under 5 s).
    #[arg(long, default_value_t = 4000)]
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
    /// CA certificate (PEM) client certificates are checked against (TLS is on by default).
    #[arg(long, env = "WEFT_CA")]
    ca: Option<PathBuf>,
    /// This controller's certificate (PEM, role controller; its SANs must cover the
    /// addresses clients dial).
    #[arg(long, env = "WEFT_CERT")]
    cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "WEFT_KEY")]
    key: Option<PathBuf>,
    /// Serve plain text: no TLS, no certificate identities (development only; logged).
    #[arg(long, env = "WEFT_INSECURE", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    insecure: bool,
    /// Bearer tokens, one `ROLE NAME TOKEN` line each (`weftctl cert token`); re-read when
    /// it changes. With --insecure and no tokens, every call is allowed.
    #[arg(long, env = "WEFT_TOKENS")]
    tokens: Option<PathBuf>,
    /// Revoked certificate serial numbers (hex, one per line; `weftctl cert show`); re-read
    /// when it changes.
    #[arg(long, env = "WEFT_REVOKED")]
    revoked: Option<PathBuf>,
    /// CA certificate etcd's server certificate is checked against (TLS to etcd).
    #[arg(long, env = "WEFT_ETCD_CA")]
    etcd_ca: Option<PathBuf>,
    /// Client certificate for etcd (with --etcd-key).
    #[arg(long, env = "WEFT_ETCD_CERT")]
    etcd_cert: Option<PathBuf>,
    /// Client key for etcd.
    #[arg(long, env = "WEFT_ETCD_KEY")]
    etcd_key: Option<PathBuf>,
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

/// The transport, policy and etcd TLS the flags ask for.
fn security(a: &Args) -> Result<Security, String> {
    let transport = Transport::from_flags(a.insecure, a.ca.clone(), a.cert.clone(), a.key.clone())?;
    if let Transport::Tls(f) = &transport {
        if f.cert.is_none() {
            return Err("a controller needs --cert and --key (its server certificate)".into());
        }
    }
    let policy = if transport.is_tls() || a.tokens.is_some() {
        Policy::enforced(a.tokens.clone(), a.revoked.clone()).map_err(|e| e.to_string())?
    } else {
        Policy::open()
    };
    let etcd_tls = match (&a.etcd_ca, &a.etcd_cert, &a.etcd_key) {
        (None, None, None) => None,
        (Some(ca), cert, key) if cert.is_some() == key.is_some() => Some(TlsFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, ..) => return Err("--etcd-cert/--etcd-key need --etcd-ca".into()),
        _ => return Err("--etcd-cert and --etcd-key go together".into()),
    };
    Ok(Security {
        transport,
        policy,
        etcd_tls,
    })
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
    weft_obs::logging::init();
    let args = Args::parse();
    let security = match security(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weft-controller: {e}");
            std::process::exit(2);
        }
    };
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
    if let Transport::Tls(f) = &security.transport {
        weft_controller::debug::set_agent_tls(f.client_config()?);
    }
    weft_controller::Controller::bind_secure(config, security)
        .await?
        .serve(shutdown_signal())
        .await?;
    Ok(())
}
