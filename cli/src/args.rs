//! Command-line grammar of `weftctl` (clap derive). Pure: no I/O.
//!
//! [`Cli`] is one command of an invocation: the global options ([`GlobalOpts`]) and a
//! [`Command`] (the registry in [`crate::cmd`]). [`crate::chain`] splits `weftctl A -- B -- C`
//! into such pieces, moves global options to the front and per-command flags (`--may-exist`)
//! behind the command name, so clap sees `weftctl [GLOBAL] CMD [CMD-FLAGS] ARGS` every time
//! and each command's `--help` lists only its own flags.

use clap::{Args, Parser, ValueEnum};
use thiserror::Error;

use crate::cmd::Command;

/// Controller address used when neither `--controller` nor `WEFT_CONTROLLER` is given.
pub const DEFAULT_CONTROLLER: &str = "http://127.0.0.1:7600";
/// Port used when a controller address has none.
pub const DEFAULT_PORT: u16 = 7600;
/// The environment variable naming the controller.
pub const CONTROLLER_ENV: &str = "WEFT_CONTROLLER";

/// `weftctl [GLOBAL OPTIONS] COMMAND [ARGS] [-- [OPTIONS] COMMAND [ARGS]]...`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "weftctl",
    version,
    about = "Manage Weft logical networks (ovn-nbctl style)",
    override_usage = "weftctl [OPTIONS] COMMAND [ARGS]... [-- [CMD-OPTIONS] COMMAND [ARGS]...]...",
    after_help = "Commands joined with `--` run as ONE transaction (all or nothing); the output \
                  is then one line per command. Global options may also be written after the \
                  command. Exit status: 0 on success, 1 when the controller rejects the request \
                  or cannot be reached, 2 on a usage error. Certificates and tokens: `weftctl cert \
                  init|issue|token|show` (local; see docs/security.md)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options that apply to the whole invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct GlobalOpts {
    /// Wait mode for writes: `hv` returns when every live chassis has applied the write.
    /// `sync` waits as `hv` unless `--wait=none` is given.
    #[arg(long, value_enum, value_name = "MODE")]
    pub wait: Option<WaitArg>,

    /// With --wait=hv: fail when registered chassis are dead (cannot be waited for) instead
    /// of skipping them with a warning that names them.
    #[arg(long)]
    pub strict: bool,

    /// Upper bound in seconds for the wait (and for the whole command).
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub timeout: Option<u32>,

    /// Validate the whole transaction and print what it would change; commit nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Output format (default: table; `list` and `find` default to list).
    #[arg(
        short = 'f',
        long = "format",
        visible_short_alias = 'o',
        visible_alias = "output",
        value_enum,
        value_name = "FORMAT"
    )]
    pub format: Option<Format>,

    /// List output: values only (no headings, no quoting, no alignment).
    #[arg(long)]
    pub bare: bool,

    /// List output: only these columns, in this order (comma-separated).
    #[arg(long, value_name = "COLUMN,...", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,

    /// List output: omit the heading line.
    #[arg(long)]
    pub no_headings: bool,

    /// Print each command's output on one line (newlines as `\n`); implied by `--` chains.
    #[arg(long)]
    pub oneline: bool,

    /// Controller gRPC address(es): HOST, HOST:PORT or http://HOST[:PORT] (port 7600 when
    /// omitted), comma separated to fail over between replicas (tried in order). Default:
    /// $WEFT_CONTROLLER, else http://127.0.0.1:7600.
    #[arg(long, value_name = "ADDRESS[,ADDRESS...]", value_parser = parse_controllers)]
    pub controller: Option<String>,

    /// CA certificate (PEM) the controller's certificate is checked against. TLS is on
    /// unless --insecure. Default: $WEFT_CA.
    #[arg(long, value_name = "FILE", env = "WEFT_CA", hide_env = true)]
    pub ca: Option<std::path::PathBuf>,

    /// Client certificate (PEM; role admin or reader) proving who you are. Default: $WEFT_CERT.
    #[arg(long, value_name = "FILE", env = "WEFT_CERT", hide_env = true)]
    pub cert: Option<std::path::PathBuf>,

    /// The client certificate's private key (PEM). Default: $WEFT_KEY.
    #[arg(long, value_name = "FILE", env = "WEFT_KEY", hide_env = true)]
    pub key: Option<std::path::PathBuf>,

    /// Bearer token (instead of a client certificate). Default: $WEFT_TOKEN.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "WEFT_TOKEN",
        hide_env = true,
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Talk to the controller in plain text (development only). Default: $WEFT_INSECURE.
    #[arg(long, env = "WEFT_INSECURE", hide_env = true, action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure: bool,
}

/// `--wait` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitArg {
    /// Answer as soon as the write is committed.
    None,
    /// Answer when every live chassis has applied the write.
    Hv,
}

/// `lsp-set-enabled` / `lrp-set-enabled` states (as in ovn-nbctl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnabledArg {
    /// Forward the port's traffic.
    Enabled,
    /// Drop the port's traffic.
    Disabled,
}

impl EnabledArg {
    pub fn as_bool(self) -> bool {
        self == EnabledArg::Enabled
    }
}

/// `-f` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text: aligned columns, trees (nothing for successful writes).
    Table,
    /// ovn-nbctl `list` form: `column : value` lines, a blank line between records.
    List,
    /// The reply as JSON.
    Json,
    /// Comma-separated values with a heading line.
    Csv,
    /// `topology`: an SVG picture.
    Svg,
    /// `topology`: a Graphviz graph.
    Dot,
}

/// The clap command of [`Cli`], with a note on every command's help about the global
/// options (which are not repeated in each command's option list).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().mut_subcommands(|s| {
        s.after_help(
            "Global options (see `weftctl --help`) may be written before or after the command: \
             --wait, --timeout, --dry-run, -f/--format, --bare, --columns, --no-headings, \
             --oneline, --controller.",
        )
    })
}

/// A `--controller` / `WEFT_CONTROLLER` value weftctl cannot use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControllerError {
    #[error("invalid {source_name} {value:?}: {reason}")]
    Invalid {
        source_name: &'static str,
        value: String,
        reason: String,
    },
}

/// Normalises a controller address: `HOST`, `HOST:PORT`, `http://HOST[:PORT]` → an
/// `http://HOST:PORT` URL (port [`DEFAULT_PORT`] when omitted); `https://` is accepted as a
/// synonym. The scheme does not choose TLS: `--insecure` does (TLS is on by default, and
/// the address is then dialled as `https://`). Other schemes are refused.
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
        Some("http") | Some("https") => {}
        Some(other) => {
            return Err(format!(
                "invalid controller address {s:?}: scheme {other:?} is not supported (use http:// or https://)"
            ))
        }
        None => return Err(format!("invalid controller address {s:?}")),
    }
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return Err(format!("invalid controller address {s:?}: no host"));
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    if !path.is_empty() && path != "/" {
        return Err(format!(
            "invalid controller address {s:?}: a path is not allowed"
        ));
    }
    // `Uri::port` hides a malformed port (it is then None), so read it from the authority.
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let port = match authority.strip_prefix(host).map(|r| r.strip_prefix(':')) {
        Some(None) => DEFAULT_PORT,
        Some(Some(p)) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("invalid controller address {s:?}: bad port {p:?}"))?,
        None => return Err(format!("invalid controller address {s:?}: use HOST[:PORT]")),
    };
    // `Uri::host` keeps the brackets of an IPv6 literal.
    Ok(format!("http://{host}:{port}"))
}

/// A comma-separated list of controller addresses, each normalised by [`parse_controller`]
/// (joined back with commas).
pub fn parse_controllers(s: &str) -> Result<String, String> {
    let v: Result<Vec<String>, String> = s.split(',').map(|a| parse_controller(a.trim())).collect();
    Ok(v?.join(","))
}

/// The controller to talk to: `--controller`, else `WEFT_CONTROLLER` (`env`, when set and
/// not blank), else [`DEFAULT_CONTROLLER`].
pub fn resolve_controller(
    flag: Option<&str>,
    env: Option<&str>,
) -> Result<String, ControllerError> {
    if let Some(f) = flag {
        return Ok(f.to_string());
    }
    match env.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => parse_controllers(e).map_err(|reason| ControllerError::Invalid {
            source_name: CONTROLLER_ENV,
            value: e.to_string(),
            reason,
        }),
        None => Ok(DEFAULT_CONTROLLER.to_string()),
    }
}

/// A value parser that rejects empty (or all-blank) strings, naming the flag.
pub fn non_empty(flag: &'static str) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |s: &str| {
        if s.trim().is_empty() {
            Err(format!("{flag} must not be empty"))
        } else {
            Ok(s.to_string())
        }
    }
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
        let ok = |s: &str| parse_controller(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("http://10.0.0.1:7600"), "http://10.0.0.1:7600");
        assert_eq!(ok("ctl.example:7601"), "http://ctl.example:7601");
        // No port: 7600.
        assert_eq!(ok("ctl.example"), "http://ctl.example:7600");
        assert_eq!(ok("http://10.0.0.1"), "http://10.0.0.1:7600");
        assert_eq!(ok("http://10.0.0.1/"), "http://10.0.0.1:7600");
        assert_eq!(ok("[::1]"), "http://[::1]:7600");
        assert_eq!(ok("[::1]:9000"), "http://[::1]:9000");
        assert_eq!(ok(" 127.0.0.1 "), "http://127.0.0.1:7600");
        assert_eq!(parse_controller("https://x:1").unwrap(), "http://x:1");
        let ftp = parse_controller("ftp://x:1").expect_err("ftp rejected");
        assert!(ftp.contains("\"ftp\""), "{ftp}");
        assert!(parse_controller("").is_err());
        assert!(parse_controller("http://").is_err());
        assert!(parse_controller("http://exa mple:1").is_err());
        assert!(parse_controller("http://h:1/x").is_err());
        assert!(parse_controller("h:99999").is_err());
        assert!(parse_controller("h:0").is_err());
        assert!(parse_controller("u@h:1").is_err());
    }

    #[test]
    fn controller_resolution_order() {
        let flag = Some("http://a:1");
        assert_eq!(
            resolve_controller(flag, Some("b:2")).as_deref(),
            Ok("http://a:1")
        );
        assert_eq!(
            resolve_controller(None, Some("b")).as_deref(),
            Ok("http://b:7600")
        );
        assert_eq!(
            resolve_controller(None, Some("  ")).as_deref(),
            Ok(DEFAULT_CONTROLLER)
        );
        assert_eq!(
            resolve_controller(None, None).as_deref(),
            Ok(DEFAULT_CONTROLLER)
        );
        let e = resolve_controller(None, Some("ftp://b")).expect_err("refused");
        assert!(
            e.to_string()
                .starts_with("invalid WEFT_CONTROLLER \"ftp://b\""),
            "{e}"
        );
    }

    #[test]
    fn usage_line_never_shows_controller_as_required() {
        // clap shows env-backed args in the usage of an error once they are "present"; the
        // controller has no clap env or default, so it can never appear there.
        let mut cmd = Cli::command();
        let usage = cmd.render_usage().to_string();
        assert!(!usage.contains("--controller"), "{usage}");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == "controller")
            .expect("controller arg");
        assert!(arg.get_env().is_none() && arg.get_default_values().is_empty());
    }
}
