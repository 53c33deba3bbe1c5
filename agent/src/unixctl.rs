//! A small client for Open vSwitch's unixctl JSON-RPC socket (what `ovs-appctl` speaks):
//! `{"method": M, "params": [...], "id": N}` → `{"result": TEXT, "error": null, "id": N}`
//! over a unix stream. Used by the debug service for `ofproto/trace`, `version` and
//! `dpif/show-dp-features`; no process is spawned. Every call has a timeout and a reply size
//! limit. Start with [`call`] and [`vswitchd_socket`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Largest reply accepted.
pub const MAX_REPLY: usize = 4 << 20;

/// Errors of a unixctl call.
#[derive(Debug, thiserror::Error)]
pub enum UnixctlError {
    #[error("no ovs-vswitchd control socket in {dir}: {reason}")]
    NoSocket { dir: String, reason: String },
    #[error("unixctl {socket}: {source}")]
    Io {
        socket: String,
        source: std::io::Error,
    },
    #[error("unixctl {method}: no answer within {0:?}", .timeout)]
    Timeout { method: String, timeout: Duration },
    #[error("unixctl {method}: reply larger than {MAX_REPLY} bytes")]
    TooLarge { method: String },
    #[error("unixctl {method}: malformed reply: {reason}")]
    Malformed { method: String, reason: String },
    #[error("{method}: {message}")]
    Command { method: String, message: String },
}

/// The control socket of ovs-vswitchd in `rundir`: `ovs-vswitchd.ctl` when it was started
/// with `--unixctl` there, else `ovs-vswitchd.PID.ctl`, PID from `ovs-vswitchd.pid`.
pub fn vswitchd_socket(rundir: &Path) -> Result<PathBuf, UnixctlError> {
    let fixed = rundir.join("ovs-vswitchd.ctl");
    if fixed.exists() {
        return Ok(fixed);
    }
    let err = |reason: String| UnixctlError::NoSocket {
        dir: rundir.display().to_string(),
        reason,
    };
    let pidfile = rundir.join("ovs-vswitchd.pid");
    let pid = std::fs::read_to_string(&pidfile)
        .map_err(|e| err(format!("{}: {e}", pidfile.display())))?;
    let pid: u32 = pid.trim().parse().map_err(|_| {
        err(format!(
            "{} holds {:?}, not a pid",
            pidfile.display(),
            pid.trim()
        ))
    })?;
    Ok(rundir.join(format!("ovs-vswitchd.{pid}.ctl")))
}

/// The request bytes (pure).
pub fn request(method: &str, params: &[&str], id: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"method": method, "params": params, "id": id}))
        .unwrap_or_default()
}

/// Decodes a complete reply, `None` while `buf` holds only part of one (pure).
pub fn parse_reply(method: &str, buf: &[u8]) -> Option<Result<String, UnixctlError>> {
    let mut de = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    let v = match de.next()? {
        Ok(v) => v,
        Err(e) if e.is_eof() => return None,
        Err(e) => {
            return Some(Err(UnixctlError::Malformed {
                method: method.into(),
                reason: e.to_string(),
            }))
        }
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(match (v.get("error"), v.get("result")) {
        (Some(e), _) if !e.is_null() => Err(UnixctlError::Command {
            method: method.into(),
            message: text(e).trim_end().to_string(),
        }),
        (_, Some(r)) => Ok(text(r)),
        _ => Err(UnixctlError::Malformed {
            method: method.into(),
            reason: "neither result nor error".into(),
        }),
    })
}

/// Runs one unixctl command on `socket`.
pub async fn call(
    socket: &Path,
    method: &str,
    params: &[&str],
    timeout: Duration,
) -> Result<String, UnixctlError> {
    let io = |source| UnixctlError::Io {
        socket: socket.display().to_string(),
        source,
    };
    let work = async {
        let mut s = UnixStream::connect(socket).await.map_err(io)?;
        s.write_all(&request(method, params, 0)).await.map_err(io)?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 16384];
        loop {
            let n = s.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                return parse_reply(method, &buf).unwrap_or_else(|| {
                    Err(UnixctlError::Malformed {
                        method: method.into(),
                        reason: "connection closed mid-reply".into(),
                    })
                });
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_REPLY {
                return Err(UnixctlError::TooLarge {
                    method: method.into(),
                });
            }
            if let Some(r) = parse_reply(method, &buf) {
                return r;
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| UnixctlError::Timeout {
            method: method.into(),
            timeout,
        })?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_and_replies() {
        let r = String::from_utf8(request("ofproto/trace", &["br-int", "in_port=1"], 7)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["method"], "ofproto/trace");
        assert_eq!(v["params"][1], "in_port=1");
        assert_eq!(v["id"], 7);
        let full = br#"{"id":0,"result":"ovs-vswitchd (Open vSwitch) 3.1.0\n","error":null}"#;
        assert!(parse_reply("version", &full[..20]).is_none());
        assert_eq!(
            parse_reply("version", full).unwrap().unwrap(),
            "ovs-vswitchd (Open vSwitch) 3.1.0\n"
        );
        let e = br#"{"id":0,"result":null,"error":"br-x: unknown bridge\n"}"#;
        let e = parse_reply("ofproto/trace", e)
            .unwrap()
            .unwrap_err()
            .to_string();
        assert_eq!(e, "ofproto/trace: br-x: unknown bridge");
        assert!(parse_reply("x", b"{]").unwrap().is_err());
    }

    #[test]
    fn socket_path_from_the_pidfile() {
        let d = tempfile::tempdir().unwrap();
        let e = vswitchd_socket(d.path()).unwrap_err().to_string();
        assert!(e.contains("ovs-vswitchd.pid"), "{e}");
        std::fs::write(d.path().join("ovs-vswitchd.pid"), "1234\n").unwrap();
        assert_eq!(
            vswitchd_socket(d.path()).unwrap(),
            d.path().join("ovs-vswitchd.1234.ctl")
        );
        std::fs::write(d.path().join("ovs-vswitchd.ctl"), "").unwrap();
        assert_eq!(
            vswitchd_socket(d.path()).unwrap(),
            d.path().join("ovs-vswitchd.ctl")
        );
    }
}
