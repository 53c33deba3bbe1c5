//! State and naming for `weft-sandbox` (the binary in `src/bin/weft-sandbox.rs` is a thin
//! CLI over this): the JSON state file in `--dir`, the run prefix derived from the directory,
//! and the "is it running" check.

use crate::testbed::LeakedTestbed;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Default `--dir`.
pub const DEFAULT_DIR: &str = "/tmp/weft-sandbox";
/// State file name inside `--dir`.
pub const STATE_FILE: &str = "state.json";
/// Lock file held while `up` runs.
pub const LOCK_FILE: &str = "up.lock";

/// What `up` leaves behind for the other commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxState {
    /// Format version of this file.
    pub version: u32,
    pub testbed: LeakedTestbed,
    /// The hosts' dockerds (`up --docker`); empty otherwise.
    #[serde(default)]
    pub docker: Vec<DockerState>,
}

/// One host's dockerd started by `up --docker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerState {
    /// Host index (1-based).
    pub host: usize,
    pub pid: Option<u32>,
    /// The daemon's API socket (`docker -H unix://SOCKET`).
    pub socket: PathBuf,
}

impl SandboxState {
    pub const VERSION: u32 = 1;

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Read `DIR/state.json`; `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> anyhow::Result<Option<SandboxState>> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let st: SandboxState = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a weft-sandbox state file (delete it, or run `weft-sandbox down`)",
                path.display()
            )
        })?;
        if st.version != Self::VERSION {
            anyhow::bail!(
                "{} has version {}, this weft-sandbox writes version {}",
                path.display(),
                st.version,
                Self::VERSION
            );
        }
        Ok(Some(st))
    }

    /// Write atomically (temp file + rename).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// PIDs from the state that are still alive.
    pub fn live_pids(&self) -> Vec<u32> {
        self.testbed
            .pids()
            .into_iter()
            .chain(self.docker.iter().filter_map(|d| d.pid))
            .filter(|&p| crate::process::pid_alive(p))
            .collect()
    }

    /// The first controller URL (what `WEFT_CONTROLLER` should be).
    pub fn controller_url(&self) -> Option<&str> {
        self.testbed.controllers.first().map(|c| c.url.as_str())
    }

    /// `export NAME=VALUE` lines a shell evaluates to use this sandbox with weftctl: the
    /// controller and the admin credential (TLS), or `WEFT_INSECURE=1`.
    pub fn exports(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .controller_url()
            .map(|u| format!("export WEFT_CONTROLLER={u}"))
            .into_iter()
            .collect();
        v.extend(
            self.testbed
                .weftctl_env()
                .into_iter()
                .map(|(k, val)| format!("export {k}={val}")),
        );
        v
    }
}

/// The run prefix for a sandbox directory: `ws` + 6 base-36 characters of a stable hash of
/// the absolute path, so leftovers of a sandbox whose state file is lost can still be found.
pub fn prefix_for_dir(dir: &Path) -> String {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in abs.to_string_lossy().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut s = String::from("ws");
    for _ in 0..6 {
        // Index < 36, so the cast cannot truncate.
        s.push(char::from(ALPHABET[(h % 36) as usize]));
        h /= 36;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testbed::{Encap, ProcState};
    use std::collections::BTreeMap;

    fn state() -> SandboxState {
        SandboxState {
            version: SandboxState::VERSION,
            testbed: LeakedTestbed {
                prefix: "wsabc123".into(),
                dir: "/tmp/x".into(),
                encap: Encap::Vxlan,
                pod_mtu: 1450,
                etcd: ProcState {
                    pid: Some(u32::MAX),
                    url: "http://127.0.0.1:1".into(),
                    ..Default::default()
                },
                controllers: vec![ProcState {
                    pid: None,
                    url: "http://10.200.1.1:7600".into(),
                    ..Default::default()
                }],
                hosts: Vec::new(),
                pods: BTreeMap::new(),
                outside: None,
            },
            docker: Vec::new(),
        }
    }

    #[test]
    fn prefix_is_stable_valid_and_dir_specific() {
        let a = prefix_for_dir(Path::new("/tmp/weft-sandbox"));
        assert_eq!(a, prefix_for_dir(Path::new("/tmp/weft-sandbox")));
        assert_ne!(a, prefix_for_dir(Path::new("/tmp/other")));
        crate::net::validate_prefix(&a).expect("valid prefix");
    }

    #[test]
    fn state_round_trip_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(SandboxState::load(dir.path()).expect("load"), None);
        let st = state();
        st.save(dir.path()).expect("save");
        assert_eq!(
            SandboxState::load(dir.path()).expect("load"),
            Some(st.clone())
        );
        assert_eq!(st.controller_url(), Some("http://10.200.1.1:7600"));
        assert!(st.live_pids().is_empty(), "u32::MAX is no live pid");

        std::fs::write(SandboxState::path(dir.path()), "{not json").expect("write");
        let e = SandboxState::load(dir.path())
            .expect_err("garbage rejected")
            .to_string();
        assert!(e.contains("state.json"), "{e}");
    }
}
