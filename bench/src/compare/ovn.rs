//! The OVN side of the comparison: the same `weft-testbed` hosts without Weft agents, plus the
//! OVN central processes (NB and SB ovsdb-servers, ovn-northd) in the run directory and one
//! ovn-controller per host inside the host's namespace. Called by [`super::run_compare`].
//!
//! Nothing touches the system-wide OVS/OVN: every daemon gets explicit db, socket and unixctl
//! paths, and `OVS_RUNDIR`/`OVN_RUNDIR` pointing into the run directory (ovn-controller 23.03
//! has no `--unixctl`; it puts its control socket in `OVN_RUNDIR` and connects to
//! `$OVS_RUNDIR/br-int.mgmt`). The SB socket is a pathname unix socket, reachable from every
//! namespace. Every process carries the testbed's `WEFT_TESTBED` marker, so a crashed run is
//! swept like any testbed, and is killed by PID when the run ends.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use weft_testbed::net::MARKER_ENV;
use weft_testbed::process::{self, run_env, wait_until, Proc, ProcSpec};
use weft_testbed::testbed::{Testbed, TestbedConfig};

use super::{
    bind_vifs, cpu_snapshot, flows_per_host, poll_until, switch_name, switch_subnet, usage,
    CompareConfig, PlannedPort, System, SystemReport,
};
use crate::Timing;

const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";

/// The OVN processes of one run; dropping it kills them (before the testbed goes).
pub(crate) struct Central {
    dir: PathBuf,
    /// (role, process), central first, then ovn-controllers by host.
    procs: Vec<(String, Proc)>,
}

impl Central {
    fn nb(&self) -> String {
        format!("--db=unix:{}", self.dir.join("nb.sock").display())
    }
    fn sb_target(&self) -> String {
        format!("unix:{}", self.dir.join("sb.sock").display())
    }

    pub(crate) fn nbctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let db = self.nb();
        let mut full = vec![db.as_str()];
        full.extend_from_slice(args);
        run_env("ovn-nbctl", &full, &self.env_refs())
    }

    fn sbctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let db = format!("--db={}", self.sb_target());
        let mut full = vec![db.as_str()];
        full.extend_from_slice(args);
        run_env("ovn-sbctl", &full, &self.env_refs())
    }

    fn env_refs(&self) -> Vec<(&str, &str)> {
        let d = self.dir.to_str().unwrap_or("/nonexistent");
        vec![("OVS_RUNDIR", d), ("OVN_RUNDIR", d)]
    }

    fn spawn(&mut self, role: &str, spec: ProcSpec) -> anyhow::Result<()> {
        let p = spec.spawn().with_context(|| format!("starting {role}"))?;
        self.procs.push((role.to_string(), p));
        Ok(())
    }

    /// Fail if any of our processes has exited (with its log tail).
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for (role, p) in &mut self.procs {
            if !p.is_running() {
                bail!("{role} exited; log tail:\n{}", p.log_tail(15));
            }
        }
        Ok(())
    }

    fn pids(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .filter_map(|(r, p)| p.pid().map(|pid| (r.clone(), pid)))
            .collect()
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("path {} is not UTF-8", p.display()))
}

fn wait_socket(c: &mut Central, sock: &Path, what: &str) -> anyhow::Result<()> {
    let ok = wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
        sock.exists()
    });
    c.check_alive()?;
    if !ok {
        bail!("{what} did not create {} within 20 s", sock.display());
    }
    Ok(())
}

pub(crate) fn start_central(tb: &Testbed) -> anyhow::Result<Central> {
    let dir = tb.dir().join("ovn");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut c = Central {
        dir: dir.clone(),
        procs: Vec::new(),
    };
    let d = path_str(&dir)?.to_string();
    let marker = tb.prefix().to_string();
    let base = |name: &str, program: &str, log: &str| {
        ProcSpec::new(name, program, dir.join(log))
            .env("OVS_RUNDIR", &d)
            .env("OVN_RUNDIR", &d)
            .env("OVS_DBDIR", &d)
            .env(MARKER_ENV, &marker)
    };
    for (db, schema) in [("nb", NB_SCHEMA), ("sb", SB_SCHEMA)] {
        let file = format!("{d}/{db}.db");
        process::run("ovsdb-tool", &["create", &file, schema])
            .with_context(|| format!("ovsdb-tool create {file} (is ovn-central installed?)"))?;
        let spec = base(
            &format!("ovsdb-server {db}"),
            "ovsdb-server",
            &format!("{db}.log"),
        )
        .args([
            file,
            format!("--remote=punix:{d}/{db}.sock"),
            format!("--unixctl={d}/{db}.ctl"),
            "--no-chdir".into(),
            "-vconsole:warn".into(),
        ]);
        let role = format!("ovsdb-server {}", db.to_uppercase());
        c.spawn(&role, spec)?;
        wait_socket(&mut c, &dir.join(format!("{db}.sock")), &role)?;
    }
    c.nbctl(&["--no-wait", "init"])?;
    c.sbctl(&["init"])?;
    let northd = base("ovn-northd", "ovn-northd", "northd.log").args([
        format!("--ovnnb-db=unix:{d}/nb.sock"),
        format!("--ovnsb-db=unix:{d}/sb.sock"),
        format!("--unixctl={d}/northd.ctl"),
        "--no-chdir".into(),
        "-vconsole:warn".into(),
    ]);
    c.spawn("ovn-northd", northd)?;
    wait_socket(&mut c, &dir.join("northd.ctl"), "ovn-northd")?;

    for h in tb.hosts() {
        let rundir = path_str(h.ovs().rundir())?.to_string();
        h.ovs().vsctl(&[
            "set",
            "open_vswitch",
            ".",
            &format!("external_ids:system-id={}", h.name),
            &format!("external_ids:ovn-remote={}", c.sb_target()),
            "external_ids:ovn-encap-type=geneve",
            &format!("external_ids:ovn-encap-ip={}", h.underlay_ip),
            "external_ids:ovn-bridge-datapath-type=netdev",
            // Inactivity probes off (as large OVN deployments run them): a long
            // recompute must not cost the OpenFlow or SB connection, and a full recompute
            // after the reconnect (seen at the ACL scale with the defaults).
            "external_ids:ovn-openflow-probe-interval=0",
            "external_ids:ovn-remote-probe-interval=0",
        ])?;
        let hdir = dir.join(&h.name);
        std::fs::create_dir_all(&hdir)?;
        let spec = ProcSpec::new(
            format!("ovn-controller {}", h.name),
            "ovn-controller",
            hdir.join("ovn-controller.log"),
        )
        .args([
            h.ovs().db_target(),
            "--no-chdir".into(),
            "-vconsole:warn".into(),
        ])
        .env("OVS_RUNDIR", &rundir)
        .env("OVN_RUNDIR", path_str(&hdir)?)
        .env(MARKER_ENV, &marker)
        .netns(Some(h.netns.clone()));
        c.spawn(&format!("ovn-controller {}", h.name), spec)?;
    }
    // --wait=hv is meaningless until every chassis is in the SB.
    let n = tb.hosts().len();
    let mut seen = 0;
    let ok = wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        seen = c
            .sbctl(&["--bare", "--columns=name", "list", "chassis"])
            .map(|o| o.lines().filter(|l| !l.trim().is_empty()).count())
            .unwrap_or(0);
        seen >= n
    });
    c.check_alive()?;
    if !ok {
        bail!("only {seen} of {n} chassis registered in the OVN SB within 60 s");
    }
    c.nbctl(&["--wait=hv", "--timeout=60", "sync"])?;
    Ok(c)
}

/// `-- lsp-add SW P -- lsp-set-addresses P dynamic` for each port.
pub fn lsp_add_args(ports: &[PlannedPort]) -> Vec<String> {
    let mut v = Vec::new();
    for p in ports {
        v.extend(
            [
                "--",
                "lsp-add",
                &p.switch,
                &p.name,
                "--",
                "lsp-set-addresses",
                &p.name,
                "dynamic",
            ]
            .map(String::from),
        );
    }
    v
}

/// Ports whose NB `up` is true, from `--bare --columns=up list Logical_Switch_Port`.
pub fn count_true(out: &str) -> usize {
    out.lines().filter(|l| l.trim() == "true").count()
}

/// Run the OVN side (see the module docs of [`super`]).
pub fn run(cfg: &CompareConfig, progress: &mut dyn FnMut(&str)) -> anyhow::Result<SystemReport> {
    progress("ovn: starting testbed hosts (no Weft agents)");
    let tb = TestbedConfig::new()
        .hosts(cfg.hosts)
        .controllers(0)
        .agents(false)
        .start()?;
    progress("ovn: NB, SB, northd, ovn-controllers");
    let mut c = start_central(&tb)?;
    // `c` is declared after `tb`, so it is dropped (OVN killed) before the testbed.
    let r = measure(cfg, &tb, &mut c, progress);
    drop(c);
    r
}

fn measure(
    cfg: &CompareConfig,
    tb: &Testbed,
    c: &mut Central,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<SystemReport> {
    progress("ovn: switches and VIFs");
    for s in 0..cfg.switches {
        let name = switch_name(s);
        c.nbctl(&[
            "ls-add",
            &name,
            "--",
            "set",
            "logical_switch",
            &name,
            &format!("other_config:subnet={}", switch_subnet(s)),
        ])?;
    }
    if cfg.topology == super::Topology::Routed {
        progress("ovn: router lr0 on every switch");
        let args = super::routed::ovn_nbctl_args(cfg.switches);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        c.nbctl(&refs)?;
    }
    let plan = cfg.plan();
    for h in tb.hosts() {
        let mine: Vec<PlannedPort> = plan.iter().filter(|p| p.host == h.index).cloned().collect();
        bind_vifs(h, &mine, cfg.batch)?;
    }
    c.nbctl(&["--wait=hv", "--timeout=120", "sync"])?;

    // Ports up before the timed part (router-type ports count as up in OVN) are not ours.
    let up0 = count_true(&c.nbctl(&["--bare", "--columns=up", "list", "Logical_Switch_Port"])?);
    let procs = c.pids();
    let cpu0 = cpu_snapshot(&procs);
    progress(&format!("ovn: creating {} ports", plan.len()));
    let t0 = Instant::now();
    let mut calls = 0;
    for chunk in plan.chunks(cfg.batch) {
        let args = lsp_add_args(chunk);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        c.nbctl(&refs)?;
        calls += 1;
    }
    let create_time = t0.elapsed();
    let ports_up = poll_until(plan.len() + up0, cfg.poll, cfg.timeout, || {
        c.nbctl(&["--bare", "--columns=up", "list", "Logical_Switch_Port"])
            .map(|o| count_true(&o))
    })? - up0;
    let up_time = t0.elapsed();
    let timeout = format!("--timeout={}", cfg.timeout.as_secs().max(1));
    c.nbctl(&["--wait=hv", &timeout, "sync"])?;
    let convergence = t0.elapsed();
    progress(&format!(
        "ovn: converged in {convergence:?} (up {up_time:?}); {} single adds",
        cfg.single_adds
    ));

    let mut single = Timing::default();
    for k in 0..cfg.single_adds {
        let p = cfg.single_port(k);
        bind_vifs(tb.host(p.host)?, std::slice::from_ref(&p), 1)?;
        let args = lsp_add_args(std::slice::from_ref(&p));
        let mut full: Vec<&str> = vec!["--wait=hv", &timeout];
        full.extend(args.iter().map(String::as_str));
        let t = Instant::now();
        c.nbctl(&full)?;
        single.push(t.elapsed());
    }
    c.check_alive()?;
    let processes = usage(&procs, &cpu0);
    let flows = flows_per_host(tb)?;
    let acl = match &cfg.acl {
        Some(s) => Some(acl_phase(cfg, s, tb, c, &timeout, progress)?),
        None => None,
    };
    let lb = match &cfg.lb {
        Some(s) => {
            let r = super::lb::ovn_phase(cfg, s, tb, &mut |a| c.nbctl(a), &timeout, progress)?;
            c.check_alive()?;
            Some(r)
        }
        None => None,
    };
    Ok(SystemReport {
        system: System::Ovn,
        create_path: format!(
            "ovn-nbctl, {} × lsp-add + lsp-set-addresses dynamic per call",
            cfg.batch
        ),
        create_calls: calls,
        ports: plan.len(),
        ports_up,
        create_time,
        up_time,
        convergence,
        single_adds: single,
        stages: Vec::new(),
        flows_per_host: flows,
        processes,
        acl,
        lb,
    })
}

/// The ACL phase (see [`super::acl`]).
fn acl_phase(
    cfg: &CompareConfig,
    s: &super::acl::AclScale,
    tb: &Testbed,
    c: &mut Central,
    timeout: &str,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<super::acl::AclReport> {
    let p = super::acl::plan(cfg, s);
    progress(&format!(
        "ovn: ACL phase: {} groups, {} sets of {}, {} ACLs",
        p.groups.len(),
        p.sets.len(),
        s.set_size,
        p.acls.len()
    ));
    let calls = super::acl::ovn_nbctl_calls(&p, s.batch);
    let t0 = Instant::now();
    for args in &calls {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        c.nbctl(&refs)?;
    }
    let write_time = t0.elapsed();
    c.nbctl(&["--wait=hv", timeout, "sync"])?;
    let convergence = t0.elapsed();
    progress(&format!("ovn: ACLs converged in {convergence:?}"));
    c.check_alive()?;
    let flows_per_host = flows_per_host(tb)?;
    let mut set_change = Timing::default();
    for n in 0..s.set_changes {
        let set = format!("as{}", n % p.sets.len().max(1));
        let addr = format!("\"{}\"", super::acl::change_address(n));
        let t = Instant::now();
        c.nbctl(&[
            "--wait=hv",
            timeout,
            "add",
            "Address_Set",
            &set,
            "addresses",
            &addr,
        ])?;
        set_change.push(t.elapsed());
    }
    Ok(super::acl::AclReport {
        acls: p.acls.len(),
        groups: p.groups.len(),
        sets: p.sets.len(),
        set_size: s.set_size,
        calls: calls.len(),
        write_time,
        convergence,
        flows_per_host,
        set_change,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsp_add_chain() {
        let p = PlannedPort {
            host: 1,
            name: "p1-0".into(),
            switch: "ls0".into(),
            iface: "v0".into(),
        };
        assert_eq!(
            lsp_add_args(&[p]).join(" "),
            "-- lsp-add ls0 p1-0 -- lsp-set-addresses p1-0 dynamic"
        );
    }

    #[test]
    fn up_column_counts_only_true() {
        assert_eq!(count_true("true\nfalse\n\ntrue\n[]\n"), 2);
        assert_eq!(count_true(""), 0);
    }
}
