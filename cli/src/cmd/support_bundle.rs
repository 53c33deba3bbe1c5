//! `support-bundle DIR [--metrics URL]...`: everything a bug report needs in one directory
//! (and `DIR.tar.gz` when `tar` is installed): `show`, every chassis' `agent-info` and flows,
//! and the `/metrics` text of each agent (the address its agent-info reports) and of the
//! controllers given with `--metrics`. Reads only; a chassis that does not answer is noted in
//! its file. The file contents are built by [`files`] (pure); writing them and the HTTP
//! scrapes (bounded: 5 s, 8 MiB each) happen when the command prints.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use weft_proto::v1 as pb;

use super::{agent_info, flows, show, CmdError, Noun, PlanCtx, Read, Reply, Step};
use crate::format::Out;

#[derive(Debug, Clone, Subcommand)]
pub enum SupportBundleCmd {
    /// Write show, every chassis' agent-info and flows, and agent and controller metrics
    /// into DIR (plus DIR.tar.gz when tar is installed).
    SupportBundle {
        /// Directory to write (created; files in it are overwritten).
        dir: PathBuf,
        /// A controller's metrics URL (http://HOST:PORT/metrics) to include; repeatable.
        #[arg(long = "metrics", value_name = "URL")]
        metrics: Vec<String>,
    },
}

/// Largest metrics body kept.
const MAX_METRICS: usize = 8 << 20;

/// GET `url` (`http://HOST:PORT/PATH`) with a timeout and a size limit.
pub fn http_get(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("invalid metrics URL {url:?}: expected http://HOST:PORT/PATH"))?;
    let (hostport, path) = match rest.split_once('/') {
        Some((h, p)) => (h, format!("/{p}")),
        None => (rest, "/metrics".to_string()),
    };
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let t = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&addr, t).map_err(|e| format!("{url}: {e}"))?;
    let _ = s.set_read_timeout(Some(t));
    let _ = s.set_write_timeout(Some(t));
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("{url}: {e}"))?;
    let mut buf = Vec::new();
    s.take(MAX_METRICS as u64)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&buf).to_string();
    match text.split_once("\r\n\r\n") {
        Some((_, body)) => Ok(body.to_string()),
        None => Err(format!("{url}: malformed HTTP reply")),
    }
}

/// A file name for a chassis (its name is validated by the controller; keep it safe anyway).
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// (file name, contents) of the bundle, from the replies (pure): `show.txt`,
/// `agent-info.txt`, `flows-CHASSIS.txt`.
pub fn files(
    show_text: &str,
    info: &pb::AgentInfoReply,
    all: &pb::FlowsReply,
) -> Vec<(String, String)> {
    let mut out = vec![
        ("show.txt".to_string(), show_text.to_string()),
        ("agent-info.txt".to_string(), agent_info::render_text(info)),
    ];
    for c in &all.chassis {
        let one = pb::FlowsReply {
            chassis: vec![c.clone()],
            ..all.clone()
        };
        out.push((
            format!("flows-{}.txt", safe(&c.chassis)),
            flows::render_text(&one),
        ));
    }
    out
}

fn write_bundle(dir: &Path, files: &[(String, String)]) -> Result<String, CmdError> {
    let io = |what: String, e: std::io::Error| CmdError::Usage {
        command: "support-bundle",
        reason: format!("{what}: {e}"),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir.display().to_string(), e))?;
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| io(p.display().to_string(), e))?;
    }
    let mut msg = format!("wrote {} files to {}\n", files.len(), dir.display());
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Some(base) = dir.file_name() {
        let tgz = parent.join(format!("{}.tar.gz", base.to_string_lossy()));
        let r = std::process::Command::new("tar")
            .arg("-czf")
            .arg(&tgz)
            .arg("-C")
            .arg(parent)
            .arg(base)
            .status();
        match r {
            Ok(s) if s.success() => msg.push_str(&format!("and {}\n", tgz.display())),
            Ok(s) => msg.push_str(&format!("tar failed ({s}); the directory is complete\n")),
            Err(_) => msg.push_str("no tar: the directory is the bundle\n"),
        }
    }
    Ok(msg)
}

impl Noun for SupportBundleCmd {
    fn plan(&self, ctx: &PlanCtx) -> Result<Step, CmdError> {
        let SupportBundleCmd::SupportBundle { dir, metrics } = self;
        let Step::Read(show_read) = (show::ShowCmd::Show { switch: None }).plan(ctx)? else {
            return Err(CmdError::MalformedReply("show is not a read"));
        };
        let n_show = show_read.calls.len();
        let mut calls = show_read.calls;
        calls.push(super::Call::AgentInfo(pb::AgentInfoQuery {
            chassis: String::new(),
            timeout_ms: ctx.chassis_timeout_ms(),
        }));
        calls.push(super::Call::Flows(pb::FlowsRequest {
            timeout_ms: ctx.chassis_timeout_ms(),
            ..Default::default()
        }));
        let show_render = show_read.render;
        let dir = dir.clone();
        let metrics = metrics.clone();
        Ok(Step::Read(Read {
            calls,
            render: Box::new(move |replies, out| {
                let text_out = Out::default();
                let show_text = show_render(&replies[..n_show.min(replies.len())], &text_out)?;
                let (Some(Reply::AgentInfo(info)), Some(Reply::Flows(all))) =
                    (replies.get(n_show), replies.get(n_show + 1))
                else {
                    return Err(CmdError::MalformedReply("support-bundle: missing replies"));
                };
                let mut fs = files(&show_text, info, all);
                for c in &info.chassis {
                    if let Some(url) = c
                        .info
                        .as_ref()
                        .map(|i| &i.metrics_url)
                        .filter(|u| !u.is_empty())
                    {
                        let body =
                            http_get(url).unwrap_or_else(|e| format!("# not scraped: {e}\n"));
                        fs.push((format!("metrics-{}.txt", safe(&c.chassis)), body));
                    }
                }
                for (i, url) in metrics.iter().enumerate() {
                    let body = http_get(url).unwrap_or_else(|e| format!("# not scraped: {e}\n"));
                    fs.push((format!("metrics-controller{}.txt", i + 1), body));
                }
                let _ = out;
                write_bundle(&dir, &fs)
            }),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_flows_file_per_chassis() {
        let info = pb::AgentInfoReply::default();
        let all = pb::FlowsReply {
            chassis: vec![
                pb::ChassisFlows {
                    chassis: "host1".into(),
                    ..Default::default()
                },
                pb::ChassisFlows {
                    chassis: "h/2".into(),
                    error: "no debug address".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let f = files("switch sw\n", &info, &all);
        let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "show.txt",
                "agent-info.txt",
                "flows-host1.txt",
                "flows-h_2.txt"
            ]
        );
        assert!(f[3].1.contains("no debug address"));
        assert!(http_get("ftp://x").unwrap_err().contains("ftp://x"));
    }

    #[test]
    fn writes_the_directory() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path().join("bundle");
        let msg = write_bundle(&dir, &[("a.txt".into(), "x".into())]).expect("write");
        assert_eq!(
            std::fs::read_to_string(dir.join("a.txt")).expect("read"),
            "x"
        );
        assert!(msg.starts_with("wrote 1 files"), "{msg}");
    }
}
