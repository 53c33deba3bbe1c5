//! Command-line grammar of `weftctl` (clap derive). Pure: no I/O.
//!
//! Global flags ([`GlobalOpts`]) follow ovn-nbctl and are written before the command
//! (`weftctl --may-exist ls-add sw1`); they are also accepted after it. Per-command arguments
//! live in [`Command`].

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Controller address used when neither `--controller` nor `WEFT_CONTROLLER` is given.
pub const DEFAULT_CONTROLLER: &str = "http://127.0.0.1:7600";

/// `weftctl [GLOBAL FLAGS] COMMAND [ARGS]`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "weftctl",
    version,
    about = "Manage Weft logical networks (ovn-nbctl style)",
    after_help = "Exit status: 0 on success, 1 when the controller rejects the request or cannot \
                  be reached, 2 on a usage error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags that apply to every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// ls-add, lsp-add, lsp-add-batch: creating an object that already exists is not an error.
    #[arg(long, global = true)]
    pub may_exist: bool,

    /// ls-del, lsp-del, chassis-del: deleting an object that does not exist is not an error.
    #[arg(long, global = true)]
    pub if_exists: bool,

    /// Wait mode for writes: `hv` returns when every live chassis has applied the write.
    /// `sync` waits as `hv` unless `--wait=none` is given.
    #[arg(long, value_enum, value_name = "MODE", global = true)]
    pub wait: Option<WaitArg>,

    /// Upper bound in seconds for the wait (and for the whole command).
    #[arg(long, value_name = "SECONDS", global = true,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub timeout: Option<u32>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, value_name = "FORMAT",
          default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,

    /// Controller gRPC address (http://HOST:PORT; `HOST:PORT` is accepted too).
    #[arg(long, value_name = "URL", env = "WEFT_CONTROLLER", default_value = DEFAULT_CONTROLLER,
          value_parser = parse_controller, global = true)]
    pub controller: String,
}

/// `--wait` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitArg {
    /// Answer as soon as the write is committed.
    None,
    /// Answer when every live chassis has applied the write.
    Hv,
}

/// `lsp-set-enabled` states (as in ovn-nbctl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnabledArg {
    /// Forward the port's traffic.
    Enabled,
    /// Drop the port's traffic.
    Disabled,
}

/// `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text (nothing for successful writes, as ovn-nbctl).
    Table,
    /// The reply message as JSON.
    Json,
}

/// The commands, named as in ovn-nbctl.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print an overview of switches, ports and chassis.
    Show,
    /// Create a logical switch.
    LsAdd {
        /// Switch name.
        switch: String,
        /// IPv4 subnet in CIDR form, e.g. 10.0.0.0/24 (needed for `dynamic` addresses).
        #[arg(long, value_name = "CIDR", value_parser = non_empty("--subnet"))]
        subnet: Option<String>,
        /// Tunnel key (1..16777215); allocated when omitted.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16_777_215))]
        vni: Option<u32>,
        /// MTU the switch is meant for (68..65535).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(68..=65_535))]
        mtu: Option<u32>,
    },
    /// Delete a logical switch and all of its ports.
    LsDel {
        /// Switch name.
        switch: String,
    },
    /// List logical switches.
    LsList,
    /// Add a port to a switch.
    LspAdd {
        /// Switch name.
        switch: String,
        /// Port name (unique across all switches).
        port: String,
    },
    /// Add many ports to a switch in one call (one etcd transaction: all or nothing).
    LspAddBatch {
        /// Switch name.
        switch: String,
        /// Port names (unique across all switches).
        #[arg(value_name = "PORT", required = true)]
        ports: Vec<String>,
        /// Give every port the address `dynamic` (MAC and IP allocated from the subnet).
        #[arg(long)]
        dynamic: bool,
    },
    /// Delete a port.
    LspDel {
        /// Port name.
        port: String,
    },
    /// List the ports of a switch.
    LspList {
        /// Switch name.
        switch: String,
    },
    /// Replace a port's addresses; no ADDR clears them.
    LspSetAddresses {
        /// Port name.
        port: String,
        /// Each one "MAC IP...", `dynamic` or `unknown` (quote entries that contain spaces).
        #[arg(value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Print a port's addresses, one entry per line (`dynamic` resolved to "MAC IP").
    LspGetAddresses {
        /// Port name.
        port: String,
    },
    /// Replace a port's port-security entries; no ADDR turns anti-spoofing off.
    LspSetPortSecurity {
        /// Port name.
        port: String,
        /// Each one "MAC [IP[/PREFIX]...]" (quote entries that contain spaces).
        #[arg(value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Print a port's port-security entries, one per line.
    LspGetPortSecurity {
        /// Port name.
        port: String,
    },
    /// Enable or disable a port (a disabled port's traffic is dropped).
    LspSetEnabled {
        /// Port name.
        port: String,
        /// New state.
        #[arg(value_enum)]
        state: EnabledArg,
    },
    /// Print `enabled` or `disabled`.
    LspGetEnabled {
        /// Port name.
        port: String,
    },
    /// Print `up` or `down`.
    LspGetUp {
        /// Port name.
        port: String,
    },
    /// List every registered chassis with liveness and applied revision.
    ChassisList,
    /// Delete a chassis that is no longer alive, with the port bindings naming it.
    ChassisDel {
        /// Chassis name.
        chassis: String,
    },
    /// Wait until every live chassis has applied the current (or given) revision.
    Sync {
        /// Revision to wait for (default: the controller's current revision).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        revision: Option<i64>,
    },
}

impl Command {
    /// The command's name as typed on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Show => "show",
            Command::LsAdd { .. } => "ls-add",
            Command::LsDel { .. } => "ls-del",
            Command::LsList => "ls-list",
            Command::LspAdd { .. } => "lsp-add",
            Command::LspAddBatch { .. } => "lsp-add-batch",
            Command::LspDel { .. } => "lsp-del",
            Command::LspList { .. } => "lsp-list",
            Command::LspSetAddresses { .. } => "lsp-set-addresses",
            Command::LspGetAddresses { .. } => "lsp-get-addresses",
            Command::LspSetPortSecurity { .. } => "lsp-set-port-security",
            Command::LspGetPortSecurity { .. } => "lsp-get-port-security",
            Command::LspGetUp { .. } => "lsp-get-up",
            Command::LspSetEnabled { .. } => "lsp-set-enabled",
            Command::LspGetEnabled { .. } => "lsp-get-enabled",
            Command::ChassisList => "chassis-list",
            Command::ChassisDel { .. } => "chassis-del",
            Command::Sync { .. } => "sync",
        }
    }
}

/// A value parser that rejects empty (or all-blank) strings, naming the flag.
fn non_empty(flag: &'static str) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |s: &str| {
        if s.trim().is_empty() {
            Err(format!("{flag} must not be empty"))
        } else {
            Ok(s.to_string())
        }
    }
}

/// Normalises `--controller`: accepts `http://HOST:PORT` or `HOST:PORT`, rejects other schemes
/// (TLS is not built in) and anything that is not a URI.
pub fn parse_controller(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("controller address must not be empty".to_string());
    }
    let url = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let uri: tonic::codegen::http::Uri = url
        .parse()
        .map_err(|e| format!("invalid controller address {s:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "invalid controller address {s:?}: scheme {other:?} is not supported (use http://)"
            ))
        }
        None => return Err(format!("invalid controller address {s:?}")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("invalid controller address {s:?}: no host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn controller_address_forms() {
        assert_eq!(
            parse_controller("http://10.0.0.1:7600").as_deref(),
            Ok("http://10.0.0.1:7600")
        );
        assert_eq!(
            parse_controller("ctl.example:7600").as_deref(),
            Ok("http://ctl.example:7600")
        );
        let https = parse_controller("https://x:1").expect_err("https rejected");
        assert!(https.contains("\"https\""), "{https}");
        assert!(parse_controller("").is_err());
        assert!(parse_controller("http://").is_err());
        assert!(parse_controller("http://exa mple:1").is_err());
    }
}
