//! `weft-sandbox`: bring up a whole local Weft deployment (etcd, controllers, N simulated
//! hosts with OVS and weft-agent, pods) in network namespaces, and leave it running.
//!
//! ```text
//! weft-sandbox up [--hosts N] [--encap vxlan|geneve|gre] [--controllers K] [--dir DIR]
//!                  [--external]
//! weft-sandbox pod-add HOST LPORT [--name POD]   (returns once the port is up)
//! weft-sandbox pod-del POD
//! weft-sandbox exec POD|outside -- CMD [ARGS...]
//! weft-sandbox host-exec HOST -- CMD [ARGS...]   (in the host's own namespace)
//! weft-sandbox docker HOST -- ARGS...            (with `up --docker`: the docker CLI on HOST)
//! weft-sandbox status
//! weft-sandbox down
//! ```
//! State lives in `--dir` (default /tmp/weft-sandbox, or `WEFT_SANDBOX_DIR`). The topology is
//! described in `weft_testbed::testbed`. Every agent serves CNI on `DIR/hN/cni.sock` (listed
//! by `status`), so the real `weft-cni` plugin can be driven against any host (docs/cni.md).
//! `up --docker` also starts a real dockerd per host using that host's agent as network and
//! IPAM driver `weft` (docs/docker.md).
//! With `--external` an "outside" namespace (172.16.0.254, with 198.51.100.1 behind it) sits
//! on a provider network that every host's `br-ex` reaches; agents map it as `physnet`
//! (`--bridge-mappings physnet:br-ex`), for localnet ports, gateway chassis and NAT
//! (docs/routing.md).
//! `up --mgmt-switch SWITCH --mgmt-subnet CIDR [--cluster-subnets CIDR,...]` gives every
//! host a management port on SWITCH (created with CIDR if missing) and routes for the
//! cluster subnets through it (docs/routing.md).

/// `println!` that ends the program quietly when stdout is closed (`weft-sandbox status |
/// head`) instead of panicking on the broken pipe.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use weft_testbed::net;
use weft_testbed::process::pid_alive;
use weft_testbed::sandbox::{prefix_for_dir, DockerState, SandboxState, DEFAULT_DIR, LOCK_FILE};
use weft_testbed::testbed::{missing_prerequisites, Encap, MgmtSetup, TestbedConfig};

#[derive(Debug, Parser)]
#[command(
    name = "weft-sandbox",
    version,
    about = "A local multi-host Weft deployment in network namespaces"
)]
struct Cli {
    /// Directory holding the sandbox state, logs and OVS/etcd files.
    #[arg(long, global = true, env = "WEFT_SANDBOX_DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start etcd, controllers and hosts (TLS with a fresh CA in DIR/pki); prints the
    /// `export WEFT_CONTROLLER=... WEFT_CA=... WEFT_CERT=... WEFT_KEY=...` lines for weftctl.
    Up {
        /// Number of hosts (host1..hostN).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
        hosts: u16,
        /// Tunnel encapsulation.
        #[arg(long, default_value = "geneve", value_parser = parse_encap)]
        encap: Encap,
        /// Number of controller replicas.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=9))]
        controllers: u16,
        /// Plain text everywhere (no CA, no TLS, no authorization): development only.
        #[arg(long)]
        insecure: bool,
        /// Give every host a management port on this logical switch (agent `--mgmt-switch`).
        #[arg(long, requires = "mgmt_subnet")]
        mgmt_switch: Option<String>,
        /// The management switch's subnet, used to create it when it does not exist.
        #[arg(long, requires = "mgmt_switch")]
        mgmt_subnet: Option<String>,
        /// Cluster subnets the hosts route through their management port (agent
        /// `--cluster-subnets`), comma separated.
        #[arg(long, value_delimiter = ',', requires = "mgmt_switch")]
        cluster_subnets: Vec<String>,
        /// Also an "outside" namespace on a provider network every host's br-ex (mapped as
        /// physnet) reaches; `exec outside -- CMD` runs a command there.
        #[arg(long)]
        external: bool,
        /// Also start a real dockerd on every host, with the Weft network and IPAM driver
        /// `weft` (served by the host's agent) and a `busybox` image (docs/docker.md).
        #[arg(long)]
        docker: bool,
    },
    /// Run the docker CLI against HOST's dockerd (host1 or 1; needs `up --docker`).
    Docker {
        host: String,
        #[arg(last = true, required = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Create a pod on HOST (host1 or 1) bound to logical port LPORT.
    PodAdd {
        host: String,
        lport: String,
        /// Pod name (default: the logical port's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete a pod.
    PodDel { pod: String },
    /// Run a command inside a pod's network namespace (or the outside namespace: `outside`).
    Exec {
        pod: String,
        #[arg(last = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Run a command in a host's own network namespace (HOST: host1 or 1), where its
    /// OVS, agent and management port live.
    HostExec {
        host: String,
        #[arg(last = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Show what is running.
    Status,
    /// Print the `export WEFT_...=` lines weftctl needs (`eval "$(weft-sandbox env)"`).
    Env,
    /// Stop everything and delete namespaces, links and files.
    Down,
}

fn parse_encap(s: &str) -> Result<Encap, String> {
    s.parse::<Encap>().map_err(|e| e.to_string())
}

fn progress(msg: &str) {
    eprintln!("==> {msg}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    use_sibling_binaries();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft-sandbox: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Find weft-controller/weft-agent/weftctl next to this binary unless WEFT_BIN_DIR says
/// otherwise (the installed layout; in the workspace they are siblings in target/*/).
fn use_sibling_binaries() {
    if std::env::var_os("WEFT_BIN_DIR").is_some() {
        return;
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        if dir.join("weft-agent").is_file() && dir.join("weft-controller").is_file() {
            std::env::set_var("WEFT_BIN_DIR", dir);
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&cli.dir).unwrap_or(cli.dir.clone());
    match cli.cmd {
        Cmd::Up {
            hosts,
            encap,
            controllers,
            insecure,
            docker,
            external,
            mgmt_switch,
            mgmt_subnet,
            cluster_subnets,
        } => up(
            &dir,
            usize::from(hosts),
            encap,
            usize::from(controllers),
            insecure,
            docker,
            external,
            mgmt_switch
                .zip(mgmt_subnet)
                .map(|(switch, subnet)| MgmtSetup {
                    switch,
                    subnet,
                    cluster_subnets,
                }),
        ),
        Cmd::Docker { host, args } => {
            require_root()?;
            docker_cli(&dir, &host, &args)
        }
        Cmd::HostExec { host, cmd } => {
            require_root()?;
            let st = load_state(&dir)?;
            let h = st.testbed.host(&host)?;
            let status = std::process::Command::new("ip")
                .args(["netns", "exec", &h.netns])
                .args(&cmd)
                .status()
                .context("running ip netns exec")?;
            Ok(match status.code() {
                Some(0) => ExitCode::SUCCESS,
                Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
                None => ExitCode::FAILURE,
            })
        }
        Cmd::PodAdd { host, lport, name } => {
            require_root()?;
            let mut st = load_running(&dir)?;
            let name = name.unwrap_or_else(|| lport.clone());
            let pod = st.testbed.add_pod(&host, &lport, &name)?;
            st.save(&dir)?;
            out!(
                "pod {} on host{}: {} {}/{} mtu {} (netns {})",
                pod.name,
                pod.host,
                pod.mac,
                pod.ip,
                pod.prefix_len,
                pod.mtu,
                pod.netns
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::PodDel { pod } => {
            require_root()?;
            let mut st = load_running(&dir)?;
            st.testbed.del_pod(&pod)?;
            st.save(&dir)?;
            out!("pod {pod} deleted");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Exec { pod, cmd } => {
            require_root()?;
            let st = load_state(&dir)?;
            let netns = match (st.testbed.pods.get(&pod), &st.testbed.outside) {
                (Some(p), _) => p.netns.clone(),
                (None, Some(out)) if pod == "outside" => out.clone(),
                _ => {
                    let names: Vec<&str> = st.testbed.pods.keys().map(String::as_str).collect();
                    bail!(
                        "no pod {pod:?} (pods: {}{})",
                        names.join(", "),
                        if st.testbed.outside.is_some() {
                            "; and outside"
                        } else {
                            ""
                        }
                    )
                }
            };
            let status = std::process::Command::new("ip")
                .args(["netns", "exec", &netns])
                .args(&cmd)
                .status()
                .context("running ip netns exec")?;
            Ok(match status.code() {
                Some(0) => ExitCode::SUCCESS,
                Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
                None => ExitCode::FAILURE,
            })
        }
        Cmd::Status => status(&dir),
        Cmd::Env => {
            let Some(st) = SandboxState::load(&dir)? else {
                eprintln!("weft-sandbox: no sandbox in {}", dir.display());
                return Ok(ExitCode::from(3));
            };
            for line in st.exports() {
                out!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down => {
            require_root()?;
            down(&dir)
        }
    }
}

fn require_root() -> anyhow::Result<()> {
    let missing = missing_prerequisites(&TestbedConfig::new().controllers(0).agents(false));
    if let Some(root) = missing.iter().find(|m| m.starts_with("root")) {
        bail!("needs {root}");
    }
    Ok(())
}

fn load_state(dir: &Path) -> anyhow::Result<SandboxState> {
    SandboxState::load(dir)?.with_context(|| {
        format!(
            "no sandbox in {} (start one with `weft-sandbox up --dir {}`)",
            dir.display(),
            dir.display()
        )
    })
}

fn load_running(dir: &Path) -> anyhow::Result<SandboxState> {
    let st = load_state(dir)?;
    if st.live_pids().is_empty() {
        bail!(
            "the sandbox in {} is not running any more (run `weft-sandbox down`, then `up`)",
            dir.display()
        );
    }
    Ok(st)
}

/// Held while `up` works, so two `up`s on one dir cannot race. Removed on drop.
struct UpLock(PathBuf);

impl UpLock {
    fn take(dir: &Path) -> anyhow::Result<UpLock> {
        let path = dir.join(LOCK_FILE);
        let stale = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .is_some_and(|pid| !pid_alive(pid));
        if stale {
            let _ = std::fs::remove_file(&path);
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|_| {
                anyhow::anyhow!(
                    "another `weft-sandbox up` is working on {} (lock {})",
                    dir.display(),
                    path.display()
                )
            })?;
        use std::io::Write;
        write!(f, "{}", std::process::id())?;
        Ok(UpLock(path))
    }
}

impl Drop for UpLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn up(
    dir: &Path,
    hosts: usize,
    encap: Encap,
    controllers: usize,
    insecure: bool,
    docker: bool,
    external: bool,
    mgmt: Option<MgmtSetup>,
) -> anyhow::Result<ExitCode> {
    let mut cfg = TestbedConfig::new()
        .insecure(insecure)
        .docker(docker)
        .external(external)
        .hosts(hosts)
        .controllers(controllers)
        .encap(encap)
        .agents(true)
        .cni(true)
        .detach(true)
        .prefix(prefix_for_dir(dir))
        .dir(dir)
        .progress(progress);
    cfg.mgmt = mgmt;
    cfg.validate()?;
    let mut missing = missing_prerequisites(&cfg);
    if docker {
        missing.extend(weft_testbed::docker::missing());
    }
    if !missing.is_empty() {
        eprintln!("weft-sandbox: missing prerequisites:");
        for m in &missing {
            eprintln!("  - {m}");
        }
        return Ok(ExitCode::FAILURE);
    }
    // Unix socket paths (DIR/hN/br-int.mgmt) are limited to 107 bytes.
    if dir.as_os_str().len() > 80 {
        bail!(
            "--dir {} is too long (max 80 bytes: OVS unix sockets live there)",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = UpLock::take(dir)?;
    if let Some(st) = SandboxState::load(dir)? {
        if !st.live_pids().is_empty() {
            eprintln!(
                "weft-sandbox: a sandbox is already running in {} ({} hosts, prefix {}).",
                dir.display(),
                st.testbed.hosts.len(),
                st.testbed.prefix
            );
            eprintln!(
                "Use it, or stop it first with `weft-sandbox down --dir {}`.",
                dir.display()
            );
            for line in st.exports() {
                out!("{line}");
            }
            return Ok(ExitCode::FAILURE);
        }
        progress("cleaning up a sandbox that is no longer running");
        st.testbed.teardown();
        remove_run_files(dir);
    }
    // Leftovers of an `up` that died before writing its state.
    net::cleanup_stale(&prefix_for_dir(dir))?;

    progress(&format!(
        "bringing up {hosts} host(s), {controllers} controller(s), {encap} tunnels in {}",
        dir.display()
    ));
    let tb = cfg.start().with_context(|| {
        format!(
            "bringing up the sandbox failed (everything started was stopped; logs are in {})",
            dir.display()
        )
    })?;
    let mut dockers = Vec::new();
    if docker {
        for n in 1..=hosts {
            progress(&format!("starting dockerd on host{n}"));
            match tb.start_dockerd(n) {
                Ok(d) => {
                    let socket = d.socket();
                    dockers.push(DockerState {
                        host: n,
                        pid: d.leak(),
                        socket,
                    });
                }
                Err(e) => {
                    stop_dockers(&dockers);
                    return Err(e.context(format!("starting dockerd on host{n}")));
                }
            }
        }
    }
    let leaked = tb.leak();
    let st = SandboxState {
        version: SandboxState::VERSION,
        testbed: leaked,
        docker: dockers,
    };
    if let Err(e) = st.save(dir) {
        stop_dockers(&st.docker);
        st.testbed.teardown();
        return Err(e);
    }
    progress(&format!(
        "sandbox is up: hosts {}; logs in {}",
        st.testbed
            .hosts
            .iter()
            .map(|h| format!("{} ({})", h.name, h.underlay_ip))
            .collect::<Vec<_>>()
            .join(", "),
        dir.display()
    ));
    progress(
        "next: weftctl ls-add sw0 --subnet 10.0.0.0/24; weftctl lsp-add sw0 p1; \
         weftctl lsp-set-addresses p1 dynamic; weft-sandbox pod-add host1 p1",
    );
    if docker {
        progress(
            "docker: weftctl ls-add blue --subnet 10.66.0.0/24; weft-sandbox docker host1 -- \
             network create -d weft --ipam-driver weft --subnet 10.66.0.0/24 -o weft.switch=blue blue",
        );
    }
    for line in st.exports() {
        out!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn alive(pid: Option<u32>) -> &'static str {
    match pid {
        Some(p) if pid_alive(p) => "running",
        Some(_) => "DEAD",
        None => "not started",
    }
}

fn status(dir: &Path) -> anyhow::Result<ExitCode> {
    let Some(st) = SandboxState::load(dir)? else {
        out!("no sandbox in {}", dir.display());
        return Ok(ExitCode::from(3));
    };
    let tb = &st.testbed;
    let running = !st.live_pids().is_empty();
    out!(
        "sandbox {} in {}: {} ({} tunnels, pod MTU {})",
        tb.prefix,
        dir.display(),
        if running { "running" } else { "NOT RUNNING" },
        tb.encap,
        tb.pod_mtu
    );
    for line in st.exports() {
        out!("{}", line.trim_start_matches("export "));
    }
    out!("etcd        {:<28} {}", tb.etcd.url, alive(tb.etcd.pid));
    if let Some(out) = &tb.outside {
        out!("outside     netns {out}: 172.16.0.254/24 on physnet (br-ex), 198.51.100.1 behind");
    }
    for (i, c) in tb.controllers.iter().enumerate() {
        out!("controller{} {:<28} {}", i + 1, c.url, alive(c.pid));
        if !c.metrics_url.is_empty() {
            out!("            metrics {}", c.metrics_url);
        }
    }
    for h in &tb.hosts {
        out!(
            "{:<11} underlay {:<15} mgmt {:<15} agent {}, ovs-vswitchd {}, ovsdb-server {}",
            h.name,
            h.underlay_ip,
            h.mgmt_ip,
            alive(h.agent_pid),
            alive(h.vswitchd_pid),
            alive(h.ovsdb_pid)
        );
        if !h.metrics_url.is_empty() {
            out!("            metrics {}", h.metrics_url);
        }
        if let Some(s) = &h.cni_socket {
            out!("            cni {} (agentSocket for weft-cni)", s.display());
        }
        if let Some(d) = st.docker.iter().find(|d| d.host == h.index) {
            out!(
                "            dockerd {} ({}; weft-sandbox docker {} -- ...)",
                d.socket.display(),
                alive(d.pid),
                h.name
            );
        }
        // The management port, when the agents have one (`up --mgmt-switch`).
        let mp = weft_agent_mgmt_interface();
        if let Ok(a) =
            weft_testbed::process::run_in(&h.netns, "ip", &["-4", "-o", "addr", "show", "dev", mp])
        {
            if let Some(addr) = a.split_whitespace().skip_while(|w| *w != "inet").nth(1) {
                out!("            management port {mp} {addr}");
            }
        }
    }
    if tb.pods.is_empty() {
        out!("no pods");
    }
    for p in tb.pods.values() {
        out!(
            "pod {:<16} host{} lport {:<16} {} {}/{}",
            p.name,
            p.host,
            p.lport,
            p.mac,
            p.ip,
            p.prefix_len
        );
    }
    Ok(if running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// The agents' management link name (the agent's default `--mgmt-interface`).
fn weft_agent_mgmt_interface() -> &'static str {
    "weft-mp0"
}

fn remove_run_files(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name == "etcd"
            || name == "pki"
            || name == "state.json"
            || name == "state.json.tmp"
            || name == "busybox.tar"
            || name.starts_with("controller") && name.ends_with(".log")
            || (name.starts_with('h') && name[1..].parse::<u32>().is_ok());
        if ours {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

fn down(dir: &Path) -> anyhow::Result<ExitCode> {
    let prefix = prefix_for_dir(dir);
    match SandboxState::load(dir) {
        Ok(Some(st)) => {
            progress(&format!(
                "stopping sandbox {} in {}",
                st.testbed.prefix,
                dir.display()
            ));
            stop_dockers(&st.docker);
            st.testbed.teardown();
        }
        Ok(None) => progress(&format!(
            "no sandbox state in {}; removing leftovers",
            dir.display()
        )),
        Err(e) => progress(&format!("{e:#}; removing leftovers by prefix {prefix}")),
    }
    net::cleanup_stale(&prefix)?;
    remove_run_files(dir);
    let _ = std::fs::remove_dir(dir); // only if empty
    out!("sandbox down");
    Ok(ExitCode::SUCCESS)
}

/// Removes every container of each dockerd, then stops it (before the agents go).
fn stop_dockers(dockers: &[DockerState]) {
    for d in dockers {
        let Some(pid) = d.pid.filter(|p| pid_alive(*p)) else {
            continue;
        };
        progress(&format!("stopping dockerd on host{}", d.host));
        if let Ok(o) = weft_testbed::docker::cli(&d.socket, &["ps", "-aq"]) {
            let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = weft_testbed::docker::cli(&d.socket, &args);
            }
        }
        weft_testbed::docker::stop_pid(pid);
    }
}

/// `weft-sandbox docker HOST -- ARGS`: the docker CLI against that host's dockerd.
fn docker_cli(dir: &Path, host: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let st = load_running(dir)?;
    let n: usize = host
        .strip_prefix("host")
        .unwrap_or(host)
        .parse()
        .with_context(|| format!("HOST {host:?}: expected host1..hostN or 1..N"))?;
    let Some(d) = st.docker.iter().find(|d| d.host == n) else {
        bail!(
            "host{n} has no dockerd (start the sandbox with `weft-sandbox up --docker`; hosts with one: {})",
            st.docker
                .iter()
                .map(|d| format!("host{}", d.host))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let status = std::process::Command::new(weft_testbed::docker::DOCKER_CLI)
        .arg("-H")
        .arg(format!("unix://{}", d.socket.display()))
        .args(args)
        .status()
        .with_context(|| format!("running {}", weft_testbed::docker::DOCKER_CLI))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
