//! `weft-cni`: the CNI plugin (spec 1.1.0; 0.3.x, 0.4.0 and 1.0.0 configurations accepted). It reads
//! the `CNI_*` environment and the network configuration on stdin, forwards ADD/DEL/CHECK to
//! (and STATUS/GC) to the local weft-agent over its unix socket (`agentSocket`, default
//! `/var/run/weft/cni.sock`) and prints the CNI result, or a CNI error object with exit
//! status 1. VERSION is answered locally. See `docs/cni.md`.
//!
//! Run by hand, `weft-cni --version` (`-V`) prints `weft-cni <version>` and `weft-cni --help`
//! (`-h`) a short usage, both with exit status 0. Runtimes call CNI plugins without
//! arguments, so these never collide with a CNI call.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use weft_agent::cni::spec::{
    self, CniError, Command, ErrorReply, NetConf, Reply, Request, DEFAULT_VERSION,
};

/// How long to wait for the agent's answer (an ADD may wait for the controller).
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

const USAGE: &str = "\
weft-cni: the Weft CNI plugin (CNI spec 1.1.0; 0.3.x, 0.4.0 and 1.0.0 configurations accepted)

A container runtime runs it with CNI_COMMAND (ADD, DEL, CHECK, STATUS, GC or VERSION), CNI_CONTAINERID,
CNI_NETNS, CNI_IFNAME and CNI_ARGS in the environment and the network configuration on stdin.
ADD, DEL, CHECK, STATUS and GC go to the local weft-agent over its unix socket (the configuration's
`agentSocket`, default /var/run/weft/cni.sock); the result, or a CNI error object with exit
status 1, goes to stdout. See docs/cni.md.

Usage:
  weft-cni              run as a CNI plugin (CNI_* environment, configuration on stdin)
  weft-cni --version    print the version (also -V)
  weft-cni --help       print this help (also -h)
";

/// What `weft-cni ARGS` prints by itself, if anything: `--version`/`-V` and `--help`/`-h`.
/// Anything else (in particular no arguments, as runtimes call it) is a CNI invocation.
fn local_answer(args: &[String]) -> Option<String> {
    match args {
        [a] if a == "--version" || a == "-V" => {
            Some(format!("weft-cni {}\n", env!("CARGO_PKG_VERSION")))
        }
        [a] if a == "--help" || a == "-h" => Some(USAGE.to_string()),
        _ => None,
    }
}

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(text) = local_answer(&args) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        return;
    }
    let mut stdin = Vec::new();
    let read = std::io::stdin()
        .take(spec::MAX_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut stdin);
    let version = spec::conf_version(&stdin)
        .filter(|v| spec::SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| DEFAULT_VERSION.to_string());
    let outcome = match read {
        Ok(_) => run(&stdin, &version),
        Err(e) => Err(ErrorReply::from(&CniError::Decode(format!(
            "cannot read stdin: {e}"
        )))),
    };
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok(Some(v)) => {
            let _ = writeln!(out, "{v}");
        }
        Ok(None) => {}
        Err(e) => {
            let _ = writeln!(out, "{}", spec::error_json(&version, &e));
            let _ = out.flush();
            eprintln!("weft-cni: {}", e.msg);
            std::process::exit(1);
        }
    }
}

fn run(stdin: &[u8], version: &str) -> Result<Option<Value>, ErrorReply> {
    let err = |e: CniError| ErrorReply::from(&e);
    let env = spec::parse_env(|k| std::env::var(k).ok()).map_err(err)?;
    if env.command == Command::Version {
        return Ok(Some(spec::version_result(version)));
    }
    let conf = spec::parse_netconf(stdin).map_err(err)?;
    if env.command == Command::Check && conf.cni_version.starts_with("0.3.") {
        return Err(err(CniError::IncompatibleVersion(format!(
            "{} (CHECK needs 0.4.0 or later)",
            conf.cni_version
        ))));
    }
    if matches!(env.command, Command::Status | Command::Gc) && conf.cni_version != "1.1.0" {
        return Err(err(CniError::IncompatibleVersion(format!(
            "{} ({} needs 1.1.0)",
            conf.cni_version, env.command
        ))));
    }
    if env.command == Command::Gc && conf.valid_attachments.is_none() {
        return Err(err(CniError::InvalidConfig {
            field: spec::VALID_ATTACHMENTS_KEY,
            value: "null".into(),
            reason: "required for GC (the attachments to keep; [] keeps none)".into(),
        }));
    }
    if env.command == Command::Check && conf.prev_result.is_none() {
        return Err(err(CniError::InvalidConfig {
            field: "prevResult",
            value: "null".into(),
            reason: "required for CHECK (the result ADD returned)".into(),
        }));
    }
    let req = Request::new(&env, &conf).map_err(err)?;
    let reply = match call_agent(&conf, &req) {
        // STATUS: an agent that is not there cannot serve ADDs (code 50).
        Err(e) if env.command == Command::Status && e.code == 11 => {
            return Err(err(CniError::NotReady(e.msg)));
        }
        r => r?,
    };
    match reply {
        Reply::Error(e) => Err(e),
        Reply::Ok(Some(a)) if env.command == Command::Add => Ok(Some(spec::build_result(
            &conf.cni_version,
            &a,
            conf.dns.as_ref(),
        ))),
        Reply::Ok(None) if env.command == Command::Add => Err(err(CniError::Protocol(
            "ADD succeeded without an attachment".into(),
        ))),
        Reply::Ok(Some(a)) if env.command == Command::Check => {
            if let Some(prev) = &conf.prev_result {
                spec::check_prev_result(prev, &a).map_err(err)?;
            }
            Ok(None)
        }
        Reply::Ok(_) => Ok(None),
    }
}

fn call_agent(conf: &NetConf, req: &Request) -> Result<Reply, ErrorReply> {
    let socket = &conf.agent_socket;
    let unreachable = |reason: String| {
        ErrorReply::from(&CniError::AgentUnreachable {
            socket: socket.display().to_string(),
            reason,
        })
    };
    let mut s = connect(socket).map_err(|e| unreachable(e.to_string()))?;
    let body = serde_json::to_vec(req)
        .map_err(|e| ErrorReply::from(&CniError::Protocol(e.to_string())))?;
    s.set_read_timeout(Some(REPLY_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(Duration::from_secs(10))))
        .and_then(|()| s.write_all(&body))
        .and_then(|()| s.shutdown(std::net::Shutdown::Write))
        .map_err(|e| unreachable(format!("sending the request: {e}")))?;
    let mut buf = Vec::new();
    (&mut s)
        .take(spec::MAX_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ErrorReply::from(&CniError::Protocol(format!("reading the reply: {e}"))))?;
    serde_json::from_slice(&buf).map_err(|e| {
        ErrorReply::from(&CniError::Protocol(format!(
            "{e} in {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(200)])
        )))
    })
}

fn connect(path: &Path) -> std::io::Result<UnixStream> {
    UnixStream::connect(path)
}
