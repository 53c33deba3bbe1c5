//! An `ovsdb-server` + `ovs-vswitchd` pair for tests, each with its own db file, unix socket,
//! `--unixctl` socket, pidfile and log in a temp dir that is also `OVS_RUNDIR`, `OVS_DBDIR` and
//! `OVS_LOGDIR` (so `br-int.mgmt` appears in [`Ovs::rundir`]). Both run in the foreground as
//! children we own (killed by PID on drop), optionally inside a network namespace.
//!
//! Bridges must use `datapath_type=netdev` (no kernel module). A netdev bridge's local port is a
//! tap device named after the bridge, created in the namespace ovs-vswitchd runs in; to let
//! several instances each have a `br-int` at once, [`OvsConfig::default`] runs them in a private
//! network namespace that is deleted on drop (see [`OvsConfig::isolate`]).

use crate::etcd::which;
use crate::process::{run, run_env, wait_until, Proc, ProcSpec, WorkDir};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const DEFAULT_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start an [`Ovs`].
#[derive(Debug, Clone)]
pub struct OvsConfig {
    /// Run both daemons in this existing network namespace (not deleted on drop).
    pub netns: Option<String>,
    /// When `netns` is `None`: create a private netns for this instance and delete it on drop
    /// (default `true`). With `false` the daemons run in the caller's namespace and bridge tap
    /// devices appear there — only do that with bridge names unique on the machine.
    pub isolate: bool,
    /// Path of `vswitch.ovsschema` (default `/usr/share/openvswitch/vswitch.ovsschema`, or
    /// `$OVS_SCHEMA`).
    pub schema: Option<PathBuf>,
    /// Extra `-v` log specs for ovs-vswitchd, e.g. `"vconn:dbg"`.
    pub vswitchd_log_levels: Vec<String>,
    /// Use this directory (created if missing, kept on drop) instead of a temp dir. Keep the
    /// path short: unix socket paths are limited to 107 bytes.
    pub dir: Option<PathBuf>,
    /// Start the daemons in their own session so they can outlive this process
    /// (see [`Ovs::leak`]).
    pub detach: bool,
    /// Extra environment variables for both daemons.
    pub env: Vec<(String, String)>,
}

impl Default for OvsConfig {
    fn default() -> Self {
        OvsConfig {
            netns: None,
            isolate: true,
            schema: None,
            vswitchd_log_levels: Vec::new(),
            dir: None,
            detach: false,
            env: Vec::new(),
        }
    }
}

impl OvsConfig {
    /// Run in an existing namespace.
    pub fn in_netns(ns: impl Into<String>) -> Self {
        OvsConfig {
            netns: Some(ns.into()),
            ..Default::default()
        }
    }
}

/// A running ovsdb-server + ovs-vswitchd. Drop kills both and removes the temp dir (and the
/// private netns, if one was created).
#[derive(Debug)]
pub struct Ovs {
    vswitchd: Proc,
    ovsdb: Proc,
    netns: Option<String>,
    private_netns: bool,
    dir: WorkDir,
}

/// What remains of an [`Ovs`] after [`Ovs::leak`]: both daemons keep running.
#[derive(Debug, Clone)]
pub struct LeakedOvs {
    pub ovsdb_pid: Option<u32>,
    pub vswitchd_pid: Option<u32>,
    pub rundir: PathBuf,
    pub netns: Option<String>,
}

static READY_SEQ: AtomicU32 = AtomicU32::new(1);
static PRIVATE_NS_SEQ: AtomicU32 = AtomicU32::new(0);

impl Ovs {
    /// Create the db, start ovsdb-server, initialise the root row, start ovs-vswitchd, and wait
    /// until ovs-vswitchd has applied the configuration.
    pub fn start(cfg: OvsConfig) -> anyhow::Result<Ovs> {
        let missing = |p: &str| {
            format!("`{p}` not found (run scripts/setup.sh, or apt-get install openvswitch-switch)")
        };
        let ovsdb_server = which("ovsdb-server").with_context(|| missing("ovsdb-server"))?;
        let vswitchd = which("ovs-vswitchd").with_context(|| missing("ovs-vswitchd"))?;
        let schema = cfg
            .schema
            .clone()
            .or_else(|| std::env::var_os("OVS_SCHEMA").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SCHEMA));
        if !schema.is_file() {
            bail!(
                "OVS schema {} not found ({})",
                schema.display(),
                missing("vswitch.ovsschema")
            );
        }

        let (netns, private_netns) = match (&cfg.netns, cfg.isolate) {
            (Some(ns), _) => (Some(ns.clone()), false),
            (None, true) => {
                let ns = format!(
                    "weft-ovs-{}-{}",
                    std::process::id(),
                    PRIVATE_NS_SEQ.fetch_add(1, Ordering::Relaxed)
                );
                let _ = run("ip", &["netns", "del", &ns]);
                run("ip", &["netns", "add", &ns])?;
                let _ = run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
                (Some(ns), true)
            }
            (None, false) => (None, false),
        };

        // Short path: unix socket paths are limited to 107 bytes.
        let dir = match &cfg.dir {
            Some(d) => WorkDir::kept(d)?,
            None => WorkDir::temp("weft-ovs-")?,
        };
        let d = dir.path().to_path_buf();
        let db = d.join("conf.db");
        // A kept dir may hold an earlier run's database.
        let _ = std::fs::remove_file(&db);
        run(
            "ovsdb-tool",
            &["create", path_str(&db)?, path_str(&schema)?],
        )?;

        let env = |spec: ProcSpec| {
            let spec = spec
                .env("OVS_RUNDIR", &d)
                .env("OVS_DBDIR", &d)
                .env("OVS_LOGDIR", &d)
                .env("OVS_SYSCONFDIR", &d)
                .detach(cfg.detach);
            cfg.env.iter().fold(spec, |s, (k, v)| s.env(k, v))
        };
        let sock = d.join("db.sock");
        let ovsdb_spec = env(ProcSpec::new(
            "ovsdb-server",
            ovsdb_server,
            d.join("ovsdb-server.out"),
        ))
        .arg(&db)
        .arg(format!("--remote=punix:{}", sock.display()))
        .arg(format!(
            "--unixctl={}",
            d.join("ovsdb-server.ctl").display()
        ))
        .arg(format!(
            "--pidfile={}",
            d.join("ovsdb-server.pid").display()
        ))
        .arg(format!(
            "--log-file={}",
            d.join("ovsdb-server.log").display()
        ))
        .args(["--no-chdir", "-vconsole:off"])
        .netns(netns.clone());
        let mut vs_spec = env(ProcSpec::new(
            "ovs-vswitchd",
            vswitchd,
            d.join("ovs-vswitchd.out"),
        ))
        .arg(format!("unix:{}", sock.display()))
        .arg(format!(
            "--unixctl={}",
            d.join("ovs-vswitchd.ctl").display()
        ))
        .arg(format!(
            "--pidfile={}",
            d.join("ovs-vswitchd.pid").display()
        ))
        .arg(format!(
            "--log-file={}",
            d.join("ovs-vswitchd.log").display()
        ))
        .args(["--no-chdir", "-vconsole:off"])
        .netns(netns.clone());
        for l in &cfg.vswitchd_log_levels {
            vs_spec = vs_spec.arg(format!("-v{l}"));
        }

        // Build the struct early so that Drop cleans up whatever started.
        let mut ovs = Ovs {
            ovsdb: ovsdb_spec.spawn()?,
            vswitchd: vs_spec.spawn_stopped(),
            netns,
            private_netns,
            dir,
        };
        ovs.wait_ovsdb()?;
        ovs.vsctl_no_wait(&["init"])?;
        ovs.start_vswitchd()?;
        Ok(ovs)
    }

    fn wait_ovsdb(&mut self) -> anyhow::Result<()> {
        let sock = self.db_socket();
        let db = format!("--db=unix:{}", sock.display());
        let mut exited = false;
        let ok = wait_until(READY_TIMEOUT, Duration::from_millis(20), || {
            if !self.ovsdb.is_running() {
                exited = true;
                return true;
            }
            sock.exists() && run("ovs-vsctl", &[&db, "--timeout=2", "--no-wait", "show"]).is_ok()
        });
        if exited || !ok {
            bail!(
                "ovsdb-server did not come up ({}); log:\n{}\n{}",
                if exited { "exited" } else { "timeout" },
                self.ovsdb.log_tail(10),
                crate::process::log_tail(&self.dir.path().join("ovsdb-server.log"), 10)
            );
        }
        Ok(())
    }

    /// Directory used as `OVS_RUNDIR` (`BRIDGE.mgmt` sockets appear here), db dir and log dir.
    pub fn rundir(&self) -> &Path {
        self.dir.path()
    }

    /// ovsdb-server's unix socket (`RUNDIR/db.sock`).
    pub fn db_socket(&self) -> PathBuf {
        self.dir.path().join("db.sock")
    }

    /// `unix:RUNDIR/db.sock`, the form OVS tools and the agent's `--ovsdb` take.
    pub fn db_target(&self) -> String {
        format!("unix:{}", self.db_socket().display())
    }

    /// The network namespace the daemons run in, if any.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// `RUNDIR/BRIDGE.mgmt`, the bridge's OpenFlow management socket.
    pub fn mgmt_socket(&self, bridge: &str) -> PathBuf {
        self.dir.path().join(format!("{bridge}.mgmt"))
    }

    /// ovs-vswitchd's unixctl socket (for `ovs-appctl -t`).
    pub fn vswitchd_ctl(&self) -> PathBuf {
        self.dir.path().join("ovs-vswitchd.ctl")
    }

    /// PIDs of (ovsdb-server, ovs-vswitchd) while running.
    pub fn pids(&self) -> (Option<u32>, Option<u32>) {
        (self.ovsdb.pid(), self.vswitchd.pid())
    }

    /// `ovs-vsctl --db=unix:SOCK --timeout=30 ARGS` (waits for ovs-vswitchd to apply writes).
    pub fn vsctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let db = format!("--db={}", self.db_target());
        let mut full = vec![db.as_str(), "--timeout=30"];
        full.extend_from_slice(args);
        run("ovs-vsctl", &full)
    }

    /// Like [`Ovs::vsctl`] with `--no-wait` (does not need ovs-vswitchd to be running).
    pub fn vsctl_no_wait(&self, args: &[&str]) -> anyhow::Result<String> {
        let db = format!("--db={}", self.db_target());
        let mut full = vec![db.as_str(), "--timeout=30", "--no-wait"];
        full.extend_from_slice(args);
        run("ovs-vsctl", &full)
    }

    /// `ovs-ofctl ARGS` with `OVS_RUNDIR` set to [`Ovs::rundir`], so a bridge name resolves to
    /// its `.mgmt` socket here.
    pub fn ofctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let rundir = path_str(self.dir.path())?;
        run_env("ovs-ofctl", args, &[("OVS_RUNDIR", rundir)])
    }

    /// `ovs-appctl -t RUNDIR/ovs-vswitchd.ctl ARGS`.
    pub fn appctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let ctl = self.vswitchd_ctl();
        let mut full = vec!["-t", path_str(&ctl)?];
        full.extend_from_slice(args);
        run("ovs-appctl", &full)
    }

    /// Kill ovs-vswitchd (SIGKILL, like a crash). ovsdb-server keeps running.
    pub fn stop_vswitchd(&mut self) {
        self.vswitchd.kill();
    }

    /// Kill ovsdb-server (SIGKILL, like a crash). ovs-vswitchd keeps forwarding with the
    /// flows it has; the database file stays.
    pub fn stop_ovsdb(&mut self) {
        self.ovsdb.kill();
    }

    /// Start ovsdb-server again on the same database file and socket; waits until it answers.
    pub fn start_ovsdb(&mut self) -> anyhow::Result<()> {
        self.ovsdb.start()?;
        let mut last_err = String::new();
        let ok = wait_until(READY_TIMEOUT, Duration::from_millis(50), || {
            match self.vsctl_no_wait(&["--timeout=2", "show"]) {
                Ok(_) => true,
                Err(e) => {
                    last_err = e.to_string();
                    false
                }
            }
        });
        if !ok {
            bail!(
                "ovsdb-server did not answer after a restart (last error: {last_err}); log:\n{}",
                self.ovsdb.log_tail(10)
            );
        }
        Ok(())
    }

    /// Start ovs-vswitchd (again) and wait until it has applied the current configuration.
    pub fn start_vswitchd(&mut self) -> anyhow::Result<()> {
        self.vswitchd.start()?;
        let mut exited = false;
        let mut last_err = String::new();
        let ok = wait_until(READY_TIMEOUT, Duration::from_millis(50), || {
            if !self.vswitchd.is_running() {
                exited = true;
                return true;
            }
            if !self.vswitchd_ctl().exists() {
                return false;
            }
            // A write without --no-wait returns once ovs-vswitchd reports cur_cfg. The value
            // must change, or ovs-vsctl commits nothing and does not wait.
            let mark = format!(
                "external_ids:weft-testbed-ready={}",
                READY_SEQ.fetch_add(1, Ordering::Relaxed)
            );
            match self.vsctl(&["--timeout=5", "set", "Open_vSwitch", ".", &mark]) {
                Ok(_) => true,
                Err(e) => {
                    last_err = e.to_string();
                    false
                }
            }
        });
        if exited || !ok {
            let log = crate::process::log_tail(&self.dir.path().join("ovs-vswitchd.log"), 15);
            self.vswitchd.kill();
            bail!(
                "ovs-vswitchd did not come up ({}; last error: {last_err}); log:\n{}\n{log}",
                if exited { "exited" } else { "timeout" },
                self.vswitchd.log_tail(10),
            );
        }
        Ok(())
    }

    /// Stop owning the daemons and the directory (and a private netns): they keep running
    /// after this process exits (use with [`OvsConfig::detach`]).
    pub fn leak(mut self) -> LeakedOvs {
        self.private_netns = false;
        LeakedOvs {
            ovsdb_pid: self.ovsdb.forget(),
            vswitchd_pid: self.vswitchd.forget(),
            rundir: self.dir.keep(),
            netns: self.netns.clone(),
        }
    }

    /// Whether ovs-vswitchd is alive.
    pub fn vswitchd_running(&mut self) -> bool {
        self.vswitchd.is_running()
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        if self.netns.is_none() && self.vswitchd.is_running() {
            // Tap devices of netdev bridges live in our namespace: let vswitchd remove them.
            if let Ok(out) = self.vsctl(&["--timeout=5", "list-br"]) {
                for br in out.lines().filter(|l| !l.is_empty()) {
                    let _ = self.vsctl(&["--timeout=5", "--if-exists", "del-br", br]);
                }
            }
        }
        self.vswitchd.kill();
        self.ovsdb.kill();
        if self.private_netns {
            if let Some(ns) = &self.netns {
                let _ = run("ip", &["netns", "del", ns]);
            }
        }
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("path is not UTF-8: {}", p.display()))
}
