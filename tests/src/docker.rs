//! A real `dockerd` (Debian's `docker.io`) per simulated host, for the Docker driver's tests
//! and `weft-sandbox up --docker`. Each daemon runs in its host's network namespace (entered
//! with `nsenter --net`, not `ip netns exec`, which remounts /sys and so hides cgroups) and in
//! a mount namespace of its own where the host's plugin directory `DIR/hN/plugins` is bound
//! on `/run/docker/plugins`: there it finds `weft.sock`, which that host's agent serves
//! (`--docker-plugin-socket`, set by [`crate::testbed::TestbedConfig::docker`]). Its data
//! root, exec root, socket and pid file are under `DIR/hN/docker/`. A busybox image is
//! imported as `busybox` (`docker import` of /bin/busybox and its applet links; no registry).
//!
//! ```text
//! DIR/hN/plugins/weft.sock      the agent's Docker plugin socket
//! DIR/hN/docker-driver.json     the agent's Docker driver state
//! DIR/hN/docker/{data,exec,docker.sock,dockerd.pid,dockerd.log,daemon.json}
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::net::MARKER_ENV;
use crate::process::{pid_alive, wait_until, Proc, ProcSpec};

/// The docker CLI of Debian's `docker.io` (another `docker` earlier on PATH may be newer
/// than the daemon).
pub const DOCKER_CLI: &str = "/usr/bin/docker";
/// The daemon.
pub const DOCKERD: &str = "dockerd";
/// The image every host has.
pub const IMAGE: &str = "busybox";

/// What is missing to run dockerd here, each with how to get it.
pub fn missing() -> Vec<String> {
    let how = "apt-get install docker.io busybox-static, or run scripts/setup.sh";
    let mut m = crate::skip::missing_tools(&[(DOCKERD, how), ("nsenter", how), ("unshare", how)]);
    if !Path::new(DOCKER_CLI).is_file() {
        m.push(format!("{DOCKER_CLI} not found ({how})"));
    }
    if !Path::new("/bin/busybox").is_file() {
        m.push(format!("/bin/busybox not found ({how})"));
    }
    m
}

/// The plugin directory of host `n` of the testbed in `dir`.
pub fn plugin_dir(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("h{n}")).join("plugins")
}

/// The agent arguments that make host `n`'s agent serve the Docker plugin.
pub fn agent_args(dir: &Path, n: usize) -> Vec<String> {
    let h = dir.join(format!("h{n}"));
    vec![
        "--docker-plugin-socket".into(),
        plugin_dir(dir, n).join("weft.sock").display().to_string(),
        "--docker-state".into(),
        h.join("docker-driver.json").display().to_string(),
    ]
}

/// One host's dockerd.
#[derive(Debug)]
pub struct Dockerd {
    /// Host index (1-based).
    pub host: usize,
    /// The host's network namespace (`/run/netns/NAME`).
    pub netns: String,
    /// `DIR/hN/docker`.
    pub root: PathBuf,
    /// `DIR/hN/plugins`.
    pub plugins: PathBuf,
    proc: Proc,
}

impl Dockerd {
    /// The daemon's API socket.
    pub fn socket(&self) -> PathBuf {
        self.root.join("docker.sock")
    }

    /// The spec of host `n`'s dockerd (netns `netns`) in the testbed directory `dir`.
    pub fn spec(
        dir: &Path,
        n: usize,
        netns: &str,
        marker: &str,
        detach: bool,
    ) -> anyhow::Result<ProcSpec> {
        let root = dir.join(format!("h{n}")).join("docker");
        let plugins = plugin_dir(dir, n);
        for d in [root.join("data"), root.join("exec"), plugins.clone()] {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        std::fs::create_dir_all("/run/docker/plugins").context("creating /run/docker/plugins")?;
        let conf = root.join("daemon.json");
        std::fs::write(&conf, "{}\n")?;
        let script = format!(
            "mount --bind {plugins} /run/docker/plugins && exec {DOCKERD} --config-file {conf} \
             --data-root {root}/data --exec-root {root}/exec --pidfile {root}/dockerd.pid \
             -H unix://{root}/docker.sock --iptables=false --ip6tables=false --bridge=none \
             --storage-driver=vfs --live-restore=false --shutdown-timeout=2",
            plugins = plugins.display(),
            conf = conf.display(),
            root = root.display(),
        );
        Ok(ProcSpec::new(
            format!("dockerd host{n}"),
            PathBuf::from("nsenter"),
            root.join("dockerd.log"),
        )
        .arg(format!("--net=/run/netns/{netns}"))
        .args(["unshare", "-m", "--propagation", "private", "sh", "-c"])
        .arg(script)
        .env(MARKER_ENV, marker)
        .detach(detach))
    }

    /// Starts host `n`'s dockerd, waits until it answers, and imports busybox (once per data
    /// root).
    pub fn start(
        dir: &Path,
        n: usize,
        netns: &str,
        marker: &str,
        detach: bool,
    ) -> anyhow::Result<Dockerd> {
        let spec = Self::spec(dir, n, netns, marker, detach)?;
        let proc = spec.spawn()?;
        let mut d = Dockerd {
            host: n,
            netns: netns.to_string(),
            root: dir.join(format!("h{n}")).join("docker"),
            plugins: plugin_dir(dir, n),
            proc,
        };
        d.wait_up()?;
        d.import_busybox(dir)?;
        Ok(d)
    }

    fn wait_up(&mut self) -> anyhow::Result<()> {
        let sock = self.socket();
        let mut exited = false;
        let ok = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
            if !self.proc.is_running() {
                exited = true;
                return true;
            }
            sock.exists()
                && cli(&sock, &["version", "--format", "{{.Server.Version}}"])
                    .is_ok_and(|o| o.status.success())
        });
        if exited || !ok {
            bail!(
                "dockerd on host{} {}; log tail:\n{}",
                self.host,
                if exited {
                    "exited"
                } else {
                    "did not answer within 60 s"
                },
                self.proc.log_tail(20)
            );
        }
        Ok(())
    }

    fn import_busybox(&self, dir: &Path) -> anyhow::Result<()> {
        if self.docker(&["image", "inspect", IMAGE]).is_ok() {
            return Ok(());
        }
        let tar = busybox_tar(dir)?;
        self.docker(&[
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            &tar.display().to_string(),
            IMAGE,
        ])?;
        Ok(())
    }

    /// The daemon's PID.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// Whether the daemon runs.
    pub fn running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// `docker ARGS` against this daemon; stdout, or an error with stderr.
    pub fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        let o = self.docker_output(args)?;
        if !o.status.success() {
            bail!(
                "docker {} (host{}): {}{}",
                args.join(" "),
                self.host,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    }

    /// `docker ARGS`, the whole output whatever the exit status.
    pub fn docker_output(&self, args: &[&str]) -> anyhow::Result<Output> {
        cli(&self.socket(), args)
    }

    /// Stops the daemon (SIGTERM; its containers stop with it, live-restore is off).
    pub fn stop(&mut self) {
        self.proc.terminate(Duration::from_secs(30));
    }

    /// Stops and starts the daemon again and waits until it answers.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.proc.start()?;
        self.wait_up()
    }

    /// Leaves the daemon running past this handle (sandbox); its PID.
    pub fn leak(mut self) -> Option<u32> {
        self.proc.forget()
    }

    /// Removes every container, then stops the daemon.
    pub fn shutdown(&mut self) {
        if self.proc.is_running() {
            if let Ok(ids) = self.docker(&["ps", "-aq"]) {
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if !ids.is_empty() {
                    let mut args = vec!["rm", "-f"];
                    args.extend(ids);
                    let _ = self.docker(&args);
                }
            }
        }
        self.stop();
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.proc.pid().is_some() {
            self.shutdown();
        }
    }
}

/// `docker -H unix://SOCK ARGS`.
pub fn cli(sock: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Command::new(DOCKER_CLI)
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(args)
        .env(
            "DOCKER_CONFIG",
            sock.parent().unwrap_or(Path::new("/tmp")).join("cli"),
        )
        .output()
        .with_context(|| format!("running {DOCKER_CLI}"))
}

/// Stops a leaked dockerd by PID (SIGTERM, then SIGKILL after 30 s).
pub fn stop_pid(pid: u32) {
    if !pid_alive(pid) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        !pid_alive(pid)
    });
    crate::process::kill_pid(pid);
}

/// `DIR/busybox.tar`: /bin/busybox with a few applet links, built once.
pub fn busybox_tar(dir: &Path) -> anyhow::Result<PathBuf> {
    let tar = dir.join("busybox.tar");
    if tar.exists() {
        return Ok(tar);
    }
    let root = dir.join("busybox-rootfs");
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).context("copying /bin/busybox")?;
    for a in [
        "sh", "sleep", "ping", "ip", "cat", "nc", "nslookup", "hostname", "ifconfig", "wget",
        "httpd", "echo", "true",
    ] {
        let l = root.join("bin").join(a);
        if !l.exists() {
            std::os::unix::fs::symlink("busybox", l)?;
        }
    }
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()?;
    anyhow::ensure!(st.success(), "tar of the busybox rootfs failed");
    let _ = std::fs::remove_dir_all(&root);
    Ok(tar)
}
