//! containerd's CRI plugin for the end-to-end tests: one containerd per simulated host, run
//! in that host's network namespace (`nsenter --net`) with its own root, state, socket and CNI
//! directories, driven by the CRI client `tests/cri/cri_client.py` (Python grpcio on the
//! vendored k8s.io/cri-api `tests/cri/api.proto`), as kubelet drives it.
//!
//! Start with [`CriAssets::prepare`] (stubs and a busybox image archive, once per test), then
//! [`Containerd::start`] per host and [`Containerd::run_pod`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::process::wait_until;

/// The image used as sandbox ("pause") and workload image: busybox, `CMD sleep 3600`.
pub const IMAGE: &str = "localhost/weft-cri-busybox:e2e";
/// The Python with grpcio and grpcio-tools (scripts/setup.sh).
pub const VENV_PYTHON: &str = "/opt/weft-venv/bin/python";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{cmd:?} failed: {text}");
    }
    Ok(text)
}

/// What is missing to run containerd CRI tests, each with how to get it.
pub fn missing() -> Vec<String> {
    let how = "apt-get install -y containerd podman busybox-static, or run scripts/setup.sh";
    let mut m = crate::skip::missing_tools(&[("containerd", how), ("ctr", how), ("podman", how)]);
    let py = Command::new(VENV_PYTHON)
        .args(["-c", "import grpc, grpc_tools"])
        .status()
        .is_ok_and(|s| s.success());
    if !py {
        m.push(format!(
            "{VENV_PYTHON} with grpcio and grpcio-tools (scripts/setup.sh installs them)"
        ));
    }
    if !Path::new("/bin/busybox").is_file() {
        m.push(format!("/bin/busybox not found ({how})"));
    }
    m
}

/// The generated CRI stubs and the busybox image archive.
#[derive(Debug, Clone)]
pub struct CriAssets {
    pub gen: PathBuf,
    pub archive: PathBuf,
}

impl CriAssets {
    /// Builds both under `dir`.
    pub fn prepare(dir: &Path) -> anyhow::Result<CriAssets> {
        let gen = dir.join("gen");
        std::fs::create_dir_all(&gen)?;
        run(Command::new(VENV_PYTHON)
            .args(["-m", "grpc_tools.protoc"])
            .arg(format!("-I{}", repo().join("tests/cri").display()))
            .arg(format!("--python_out={}", gen.display()))
            .arg(format!("--grpc_python_out={}", gen.display()))
            .arg("api.proto"))
        .context("generating the CRI stubs")?;
        let root = dir.join("busybox");
        std::fs::create_dir_all(root.join("bin"))?;
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
        for a in ["sh", "sleep", "ping", "ip", "cat"] {
            let l = root.join("bin").join(a);
            if !l.exists() {
                std::os::unix::fs::symlink("busybox", l)?;
            }
        }
        let tar = dir.join("busybox.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."))?;
        // podman builds the image archive ctr imports (private storage, removed after).
        let conf = dir.join("containers.conf");
        let s = dir.display();
        std::fs::write(
            &conf,
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 events_logfile_path = \"{s}/events.log\"\n"
            ),
        )?;
        let storage = dir.join("storage.conf");
        std::fs::write(
            &storage,
            format!("[storage]\ndriver = \"overlay\"\ngraphroot = \"{s}/storage\"\nrunroot = \"{s}/runroot\"\n"),
        )?;
        let podman = |args: &[&str]| {
            let mut c = Command::new("podman");
            c.args(args)
                .env("CONTAINERS_CONF", &conf)
                .env("CONTAINERS_STORAGE_CONF", &storage);
            run(&mut c)
        };
        let archive = dir.join("image.tar");
        podman(&[
            "import",
            "--change",
            "CMD [\"/bin/sleep\",\"3600\"]",
            &tar.display().to_string(),
            IMAGE,
        ])?;
        podman(&[
            "save",
            "--format",
            "docker-archive",
            "-o",
            &archive.display().to_string(),
            IMAGE,
        ])?;
        let _ = podman(&["system", "reset", "--force"]);
        Ok(CriAssets { gen, archive })
    }
}

/// A pod created through CRI.
#[derive(Debug, Clone)]
pub struct CriPod {
    pub sandbox: String,
    pub container: String,
    /// From `PodSandboxStatus` (the CNI result).
    pub ip: String,
}

/// A containerd of a simulated host. On drop its pod sandboxes are removed (CNI DEL; no
/// shim or container left), then it is killed by its PID.
pub struct Containerd {
    child: Child,
    pub sock: PathBuf,
    pub dir: PathBuf,
    gen: PathBuf,
}

impl Containerd {
    /// Starts containerd in the network namespace `netns` (a name under /run/netns) with
    /// everything under `dir`; CNI plugins from `bin_dir`, configurations from `conf_dir`.
    /// The image of `assets` is imported. `marker` goes into its environment (the testbed's
    /// sweep finds it by that).
    pub fn start(
        assets: &CriAssets,
        dir: &Path,
        netns: &str,
        bin_dir: &Path,
        conf_dir: &Path,
        marker: (&str, &str),
    ) -> anyhow::Result<Containerd> {
        std::fs::create_dir_all(dir)?;
        let sock = dir.join("containerd.sock");
        let d = dir.display();
        // disable_apparmor and restrict_oom_score_adj: without them runc cannot start a
        // sandbox on these machines.
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n[grpc]\n  address = \"{}\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{IMAGE}\"\n\
                 enable_selinux = false\n  disable_apparmor = true\n  restrict_oom_score_adj = true\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"{}\"\n  conf_dir = \"{}\"\n",
                sock.display(),
                bin_dir.display(),
                conf_dir.display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("containerd.log"))?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .arg("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env(marker.0, marker.1)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting containerd")?;
        let c = Containerd {
            child,
            sock: sock.clone(),
            dir: dir.to_path_buf(),
            gen: assets.gen.clone(),
        };
        if !wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            sock.exists()
        }) {
            bail!(
                "containerd did not open {}:\n{}",
                sock.display(),
                c.log_tail(20)
            );
        }
        run(Command::new("ctr")
            .arg("-a")
            .arg(&sock)
            .args(["-n", "k8s.io", "images", "import"])
            .arg(&assets.archive))?;
        Ok(c)
    }

    fn cri(&self, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new(VENV_PYTHON)
            .arg(repo().join("tests/cri/cri_client.py"))
            .arg(&self.sock)
            .args(args)
            .env("CRI_GEN", &self.gen))
    }

    /// The last `n` lines of containerd's log.
    pub fn log_tail(&self, n: usize) -> String {
        crate::process::log_tail(&self.dir.join("containerd.log"), n)
    }

    /// RunPodSandbox (CNI ADD) named `name`, and a busybox container in it.
    pub fn run_pod(&self, name: &str) -> anyhow::Result<CriPod> {
        let out = self
            .cri(&["run", name, IMAGE])
            .with_context(|| format!("containerd log:\n{}", self.log_tail(15)))?;
        let w: Vec<&str> = out.split_whitespace().collect();
        match w.as_slice() {
            [s, c, ip] => Ok(CriPod {
                sandbox: s.to_string(),
                container: c.to_string(),
                ip: ip.to_string(),
            }),
            _ => bail!("unexpected CRI client output {out:?}"),
        }
    }

    /// ExecSync `cmd` in `pod`'s container: its output, Err when it exits non-zero.
    pub fn exec(&self, pod: &CriPod, timeout_s: u32, cmd: &[&str]) -> anyhow::Result<String> {
        let t = timeout_s.to_string();
        let mut args = vec!["exec", pod.container.as_str(), t.as_str()];
        args.extend_from_slice(cmd);
        self.cri(&args)
    }

    /// StopPodSandbox + RemovePodSandbox (CNI DEL).
    pub fn remove(&self, pod: &CriPod) -> anyhow::Result<()> {
        self.cri(&["rm", &pod.sandbox]).map(|_| ())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.cri(&["rmall"]);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
