//! A tiny local OVS fixture: ovsdb-server + ovs-vswitchd as child processes in a private
//! network namespace (so every test can have its own `br-int` tap), with their sockets, db
//! and logs in a temp dir that is also `OVS_RUNDIR`. Drop kills both (by PID) and deletes
//! the namespace and the dir.

#![allow(dead_code)]

pub mod capture;
pub mod samples;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Ovs {
    dir: tempfile::TempDir,
    netns: String,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Ovs {
    pub fn start() -> anyhow::Result<Ovs> {
        let dir = tempfile::Builder::new().prefix("wof").tempdir_in("/tmp")?;
        let netns = format!(
            "weft-of-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &netns]))?;
        let mut ovs = Ovs {
            dir,
            netns,
            ovsdb: None,
            vswitchd: None,
        };
        let d = ovs.dir.path().to_path_buf();
        let db = d.join("conf.db");
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg("/usr/share/openvswitch/vswitch.ovsschema"))?;
        ovs.ovsdb = Some(
            ovs.daemon("ovsdb-server")
                .arg(&db)
                .arg(format!("--remote=punix:{}", d.join("db.sock").display()))
                .arg(format!("--unixctl={}", d.join("ovsdb.ctl").display()))
                .arg(format!("--log-file={}", d.join("ovsdb.log").display()))
                .spawn()
                .context("starting ovsdb-server")?,
        );
        wait_for(&d.join("db.sock"))?;
        run(Command::new("ovs-vsctl").arg(ovs.db_arg()).args([
            "--no-wait",
            "--timeout=30",
            "init",
        ]))?;
        ovs.start_vswitchd()?;
        Ok(ovs)
    }

    fn daemon(&self, prog: &str) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns, prog])
            .env("OVS_RUNDIR", d)
            .env("OVS_DBDIR", d)
            .env("OVS_LOGDIR", d)
            .env("OVS_SYSCONFDIR", d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    fn db_arg(&self) -> String {
        format!("--db=unix:{}", self.dir.path().join("db.sock").display())
    }

    fn start_vswitchd(&mut self) -> anyhow::Result<()> {
        let d = self.dir.path().to_path_buf();
        let child = self
            .daemon("ovs-vswitchd")
            .arg(format!("unix:{}", d.join("db.sock").display()))
            .arg(format!("--unixctl={}", d.join("vswitchd.ctl").display()))
            .arg(format!("--log-file={}", d.join("vswitchd.log").display()))
            .spawn()
            .context("starting ovs-vswitchd")?;
        self.vswitchd = Some(child);
        wait_for(&d.join("vswitchd.ctl"))
    }

    pub fn mgmt_socket(&self, bridge: &str) -> PathBuf {
        self.dir.path().join(format!("{bridge}.mgmt"))
    }

    pub fn vsctl(&self, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new("ovs-vsctl")
            .arg(self.db_arg())
            .arg("--timeout=30")
            .args(args))
    }

    pub fn ofctl(&self, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new("ovs-ofctl")
            .env("OVS_RUNDIR", self.dir.path())
            .args(args))
    }

    /// Adds a netdev bridge (secure fail mode) and waits for its management socket.
    pub fn add_bridge(&self, bridge: &str) -> anyhow::Result<PathBuf> {
        self.vsctl(&[
            "add-br",
            bridge,
            "--",
            "set",
            "bridge",
            bridge,
            "datapath_type=netdev",
            "fail_mode=secure",
            "other_config:disable-in-band=true",
        ])?;
        let sock = self.mgmt_socket(bridge);
        wait_for(&sock)?;
        Ok(sock)
    }

    pub fn stop_vswitchd(&mut self) {
        if let Some(mut c) = self.vswitchd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(p: &Path) -> anyhow::Result<()> {
    for _ in 0..400 {
        if p.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("{} did not appear", p.display())
}

impl Drop for Ovs {
    fn drop(&mut self) {
        self.stop_vswitchd();
        if let Some(mut c) = self.ovsdb.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

/// Whether the OVS binaries the integration tests need are installed. Missing binaries
/// fail the test unless `WEFT_ALLOW_SKIP=1` is set (then the test returns early).
pub fn ovs_available() -> bool {
    let have = [
        "ovs-vsctl",
        "ovs-ofctl",
        "ovsdb-server",
        "ovs-vswitchd",
        "ovsdb-tool",
    ]
    .iter()
    .all(|b| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if !have {
        if std::env::var("WEFT_ALLOW_SKIP").as_deref() == Ok("1") {
            eprintln!("skipping: Open vSwitch binaries not installed (WEFT_ALLOW_SKIP=1)");
            return false;
        }
        panic!("Open vSwitch binaries (ovs-vsctl, ovs-ofctl, ovsdb-server, ovs-vswitchd) are required; set WEFT_ALLOW_SKIP=1 to skip");
    }
    true
}
