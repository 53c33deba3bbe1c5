//! containerd 1.6's CRI plugin, driven by a CRI client (`tests/cri/cri_client.py`, Python
//! grpcio on the CRI `api.proto` of k8s.io/cri-api, vendored as `tests/cri/api.proto`),
//! creates pod sandboxes on two simulated hosts through the shipped conflist
//! (`deploy/cni/10-weft.conflist`: weft-cni then portmap) and the real `weft-cni` binary,
//! exactly as kubelet would through CRI. One containerd per simulated host runs in that host's
//! network namespace (`nsenter --net`) with its own root, state and socket under the testbed
//! directory. The pods then ping each other across hosts (ExecSync in a busybox container),
//! and removing a sandbox runs CNI DEL (its logical port goes).
//!
//! Needs containerd and ctr (Debian `containerd`), and python3 with grpcio and grpcio-tools
//! (`/opt/weft-venv`, both installed by scripts/setup.sh).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use weft_testbed::process::wait_until;
use weft_testbed::testbed::TestbedConfig;

const IMAGE: &str = "localhost/weft-cri-busybox:e2e";
const VENV_PYTHON: &str = "/opt/weft-venv/bin/python";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("spawn");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A containerd of this test: on drop its pod sandboxes are removed (so no shim or container
/// is left), then it is killed by its PID.
struct Containerd {
    child: Child,
    sock: PathBuf,
    gen: PathBuf,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = cri(&self.gen, &self.sock, &["rmall"]);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cri(gen: &Path, sock: &Path, args: &[&str]) -> (bool, String) {
    run(Command::new(VENV_PYTHON)
        .arg(repo().join("tests/cri/cri_client.py"))
        .arg(sock)
        .args(args)
        .env("CRI_GEN", gen))
}

#[test]
fn containerd_cri_pods_through_weft_cni_ping_across_hosts() {
    let test = "containerd_cri_pods_through_weft_cni_ping_across_hosts";
    let cfg = TestbedConfig::new().hosts(2).cni(true);
    if !ready(test, &cfg) {
        return;
    }
    let how = "apt-get install -y containerd podman busybox-static, or run scripts/setup.sh";
    let mut missing =
        weft_testbed::skip::missing_tools(&[("containerd", how), ("ctr", how), ("podman", how)]);
    let py_ok = Command::new(VENV_PYTHON)
        .args(["-c", "import grpc, grpc_tools"])
        .status()
        .is_ok_and(|s| s.success());
    if !py_ok {
        missing.push(format!(
            "{VENV_PYTHON} with grpcio and grpcio-tools (scripts/setup.sh installs them)"
        ));
    }
    if weft_testbed::find_bin("weft-cni").is_err() {
        missing.push("weft-cni not built (cargo build --workspace --bins)".into());
    }
    if !weft_testbed::skip::require(test, &missing) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "pods", "10.91.0.0/16");
    let dir = tb.dir().join("cri");
    let gen = dir.join("gen");
    std::fs::create_dir_all(&gen).expect("mkdir");
    // CRI stubs from the vendored api.proto.
    let (ok, out) = run(Command::new(VENV_PYTHON)
        .args(["-m", "grpc_tools.protoc"])
        .arg(format!("-I{}", repo().join("tests/cri").display()))
        .arg(format!("--python_out={}", gen.display()))
        .arg(format!("--grpc_python_out={}", gen.display()))
        .arg("api.proto"));
    assert!(ok, "protoc: {out}");

    // A busybox image (sandbox and workload) as an image archive for ctr.
    let root = dir.join("busybox");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox");
    for a in ["sh", "sleep", "ping", "ip", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).expect("symlink");
    }
    let tar = dir.join("busybox.tar");
    let (ok, out) = run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    assert!(ok, "{out}");
    let pconf = dir.join("containers.conf");
    std::fs::write(
        &pconf,
        format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{}/events.log\"\n",
            dir.display()
        ),
    )
    .expect("containers.conf");
    let penv = [("CONTAINERS_CONF", pconf.display().to_string())];
    let (ok, out) = run(Command::new("podman")
        .args(["import", "--change", "CMD [\"/bin/sleep\",\"3600\"]"])
        .arg(&tar)
        .arg(IMAGE)
        .envs(penv.iter().map(|(k, v)| (k, v))));
    assert!(ok, "podman import: {out}");
    let archive = dir.join("image.tar");
    let (ok, out) = run(Command::new("podman")
        .args(["save", "--format", "docker-archive", "-o"])
        .arg(&archive)
        .arg(IMAGE)
        .envs(penv.iter().map(|(k, v)| (k, v))));
    assert!(ok, "podman save: {out}");
    let _ = run(Command::new("podman")
        .args(["rmi", IMAGE])
        .envs(penv.iter().map(|(k, v)| (k, v))));

    // One containerd per simulated host: the shipped conflist pointed at that host's agent,
    // weft-cni and the standard plugins in its bin dir.
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/cni/10-weft.conflist")).expect("conflist"),
    )
    .expect("conflist JSON");
    let mut daemons = Vec::new();
    let mut socks = Vec::new();
    for n in 1..=2 {
        let h = tb.host(n).expect("host");
        let hd = dir.join(format!("h{n}"));
        for d in ["net.d", "bin"] {
            std::fs::create_dir_all(hd.join(d)).expect("mkdir");
        }
        std::fs::copy(
            weft_testbed::find_bin("weft-cni").expect("weft-cni"),
            hd.join("bin/weft-cni"),
        )
        .expect("copy weft-cni");
        for p in ["portmap", "loopback"] {
            std::fs::copy(Path::new("/usr/lib/cni").join(p), hd.join("bin").join(p))
                .expect("copy a standard plugin (containernetworking-plugins)");
        }
        let mut c = shipped.clone();
        c["plugins"][0]["agentSocket"] = serde_json::json!(h
            .cni_socket
            .as_ref()
            .expect("cni socket")
            .display()
            .to_string());
        std::fs::write(
            hd.join("net.d/10-weft.conflist"),
            serde_json::to_vec_pretty(&c).expect("json"),
        )
        .expect("conflist");
        let sock = hd.join("containerd.sock");
        std::fs::write(
            hd.join("config.toml"),
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n[grpc]\n  address = \"{s}\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{IMAGE}\"\n\
                 enable_selinux = false\n  disable_apparmor = true\n  restrict_oom_score_adj = true\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"{d}/bin\"\n  conf_dir = \"{d}/net.d\"\n",
                d = hd.display(),
                s = sock.display()
            ),
        )
        .expect("config.toml");
        let log = std::fs::File::create(hd.join("containerd.log")).expect("log");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", h.netns))
            .arg("containerd")
            .arg("--config")
            .arg(hd.join("config.toml"))
            .env(weft_testbed::net::MARKER_ENV, tb.prefix())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        daemons.push(Containerd {
            child,
            sock: sock.clone(),
            gen: gen.clone(),
        });
        assert!(
            wait_until(Duration::from_secs(20), Duration::from_millis(100), || sock
                .exists()),
            "containerd on host{n} did not open {}",
            sock.display()
        );
        let (ok, out) = run(Command::new("ctr")
            .arg("-a")
            .arg(&sock)
            .args(["-n", "k8s.io", "images", "import"])
            .arg(&archive));
        assert!(ok, "ctr images import on host{n}: {out}");
        socks.push(sock);
    }

    // A pod on each host through CRI (RunPodSandbox = CNI ADD through the conflist).
    let mut pods = Vec::new();
    for (i, sock) in socks.iter().enumerate() {
        let (ok, out) = cri(&gen, sock, &["run", &format!("cri{}", i + 1), IMAGE]);
        let log = std::fs::read_to_string(dir.join(format!("h{}/containerd.log", i + 1)))
            .unwrap_or_default();
        assert!(
            ok,
            "CRI pod on host{}: {out}\ncontainerd log tail:\n{}",
            i + 1,
            log.lines().rev().take(15).collect::<Vec<_>>().join("\n")
        );
        let w: Vec<String> = out.split_whitespace().map(str::to_string).collect();
        assert_eq!(w.len(), 3, "{out}");
        assert!(
            w[2].starts_with("10.91."),
            "pod IP from the CNI result: {out}"
        );
        pods.push(w);
    }
    let ports = ctl(&mut tb, &["lsp-list", "pods"]);
    assert!(
        ports.contains("default_cri1") && ports.contains("default_cri2"),
        "{ports}"
    );
    // They ping each other across hosts, the first ping included.
    for (a, b) in [(0, 1), (1, 0)] {
        let (ok, out) = cri(
            &gen,
            &socks[a],
            &[
                "exec",
                &pods[a][1],
                "10",
                "ping",
                "-c",
                "1",
                "-W",
                "2",
                &pods[b][2],
            ],
        );
        assert!(
            ok,
            "host{} pod -> {} on host{}: {out}",
            a + 1,
            pods[b][2],
            b + 1
        );
    }
    // Removing a sandbox runs CNI DEL: its logical port goes.
    let (ok, out) = cri(&gen, &socks[0], &["rm", &pods[0][0]]);
    assert!(ok, "remove sandbox: {out}");
    let ports = ctl(&mut tb, &["lsp-list", "pods"]);
    assert!(!ports.contains("default_cri1"), "{ports}");
    let _ = cri(&gen, &socks[1], &["rm", &pods[1][0]]);
}
