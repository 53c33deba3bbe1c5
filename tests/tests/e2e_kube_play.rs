//! The agent DaemonSet of `deploy/kubernetes/30-agent.yaml`, as written, runs under
//! `podman kube play` from the image `scripts/build-image.sh` builds, on two simulated hosts
//! (each `podman kube play` runs in the host's network namespace, via `nsenter --net`: `hostNetwork: true` is
//! that namespace). The pod spec is extracted from the DaemonSet's template, not kept as a
//! second copy; only what a real node provides differently here is substituted: the host
//! paths of each simulated host (its OVS run directory, /var/run/weft, /opt/cni/bin,
//! /etc/cni/net.d), the values Kubernetes fills in (node name, host IP, the controller
//! Service's address) and the datapath (the simulated hosts' OVS is userspace).
//!
//! The agents come up from the image (the init containers check OVS and install weft-cni,
//! portmap, loopback and the conflist), register their chassis, and then containerd 1.6's CRI
//! plugin on each simulated host (driven by the CRI client of `weft_testbed::cri`, as kubelet
//! drives it) creates pods through the installed plugins and conflist; they ping each other
//! across hosts (whether each very first ping was answered is printed; the guarantee itself is
//! tested by e2e_cni), and removing a sandbox runs DEL.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use weft_testbed::cri::{self, Containerd, CriAssets};
use weft_testbed::process::wait_until;
use weft_testbed::testbed::{Testbed, TestbedConfig};

/// The image the manifests name, and the tag this test builds from the workspace's debug
/// binaries (so it runs the code under test, and leaves a release `latest` alone).
const MANIFEST_IMAGE: &str = "localhost/weft:latest";
const IMAGE: &str = "localhost/weft:e2e";
const MANIFEST: &str = include_str!("../../deploy/kubernetes/30-agent.yaml");

fn indent(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

/// The document of `yaml` (split on `---`) whose `kind` is `kind`.
fn document<'a>(yaml: &'a str, kind: &str) -> &'a str {
    yaml.split("\n---\n")
        .find(|d| d.lines().any(|l| l == format!("kind: {kind}")))
        .unwrap_or_else(|| panic!("no {kind} in 30-agent.yaml"))
}

/// Pure: a Pod named `name` whose spec is the DaemonSet's `spec.template.spec`, verbatim.
fn pod_from_daemonset(daemonset: &str, name: &str) -> String {
    let lines: Vec<&str> = daemonset.lines().collect();
    let t = lines
        .iter()
        .position(|l| *l == "  template:")
        .expect("spec.template");
    let s = t + lines[t..]
        .iter()
        .position(|l| *l == "    spec:")
        .expect("spec.template.spec");
    // podman 4.3 removes a finished "once" init container while it still counts it as running
    // and fails the play; "always" keeps it (the only podman-specific line; Kubernetes ignores
    // the annotation).
    let mut out = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: weft-agent\n  \
         annotations:\n    io.podman.annotations.init.container.type: always\nspec:\n"
    );
    for l in &lines[s + 1..] {
        if !l.trim().is_empty() && indent(l) < 6 {
            break;
        }
        out.push_str(l.get(4..).unwrap_or(""));
        out.push('\n');
    }
    out
}

/// Pure: sets env variable `name` to `value` wherever it is defined (replacing `value:` or a
/// `valueFrom:` block).
fn set_env(yaml: &str, name: &str, value: &str) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut found = false;
    while i < lines.len() {
        let l = lines[i];
        out.push(l.to_string());
        if l.trim() == format!("- name: {name}") {
            found = true;
            let k = indent(l);
            i += 1;
            while i < lines.len() && !lines[i].trim().is_empty() && indent(lines[i]) > k {
                i += 1;
            }
            out.push(format!("{}value: \"{value}\"", " ".repeat(k + 2)));
            continue;
        }
        i += 1;
    }
    assert!(found, "env {name} not in the pod spec");
    out.join("\n") + "\n"
}

/// Pure: replaces the volume of Secret `secret` (a `secret:` block with `secretName:` and
/// more keys) by the hostPath `to`.
fn secret_to_host_path(yaml: &str, secret: &str, to: &Path) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut found = false;
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let next = lines.get(i + 1).map(|n| n.trim()).unwrap_or_default();
        if l.trim() == "secret:" && next == format!("secretName: {secret}") {
            found = true;
            let ind = indent(l);
            out.push(format!("{}hostPath:", " ".repeat(ind)));
            out.push(format!("{}path: {}", " ".repeat(ind + 2), to.display()));
            i += 1;
            while i < lines.len() && indent(lines[i]) > ind && !lines[i].trim().is_empty() {
                i += 1;
            }
            continue;
        }
        out.push(l.to_string());
        i += 1;
    }
    assert!(found, "Secret volume {secret} not in the pod spec");
    out.join("\n") + "\n"
}

/// Pure: replaces the hostPath `from` by `to`.
fn set_host_path(yaml: &str, from: &str, to: &Path) -> String {
    let want = format!("path: {from}");
    let mut found = false;
    let s: Vec<String> = yaml
        .lines()
        .map(|l| {
            if l.trim() == want {
                found = true;
                format!("{}path: {}", " ".repeat(indent(l)), to.display())
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(found, "hostPath {from} not in the pod spec");
    s.join("\n") + "\n"
}

fn podman(envs: &[(&str, String)], args: &[&str], netns: Option<&str>) -> (bool, String) {
    let mut cmd = match netns {
        // nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup tree podman needs.
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg("podman");
            c
        }
        None => Command::new("podman"),
    };
    let out = cmd
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run podman");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// What `podman kube play` created (with the environment it ran with); removed on drop.
struct Played(Vec<String>, Vec<(&'static str, String)>);

impl Drop for Played {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = podman(&self.1, &["pod", "rm", "-f", "-t", "2", p], None);
        }
        // The ConfigMap volume kube play made.
        let _ = podman(&self.1, &["volume", "rm", "-f", "weft-cni-config"], None);
    }
}

/// containers.conf lines every podman of this test needs on these machines (rlimits a
/// container may not raise here; cgroupfs; events to a file).
fn base_conf(state: &str) -> String {
    "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
     log_driver = \"k8s-file\"\n"
        .to_string()
        + &format!(
            "\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
         events_logfile_path = \"{state}/events.log\"\nruntime = \"runc\"\n"
        )
}

struct Paths {
    weft_run: PathBuf,
    cni_bin: PathBuf,
    cni_conf: PathBuf,
}

fn host_paths(tb: &Testbed, n: usize) -> Paths {
    let base = tb.dir().join(format!("h{n}-node"));
    let p = Paths {
        weft_run: base.join("run-weft"),
        cni_bin: base.join("opt-cni-bin"),
        cni_conf: base.join("etc-cni-net.d"),
    };
    for d in [&p.weft_run, &p.cni_bin, &p.cni_conf] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    p
}

#[test]
fn daemonset_pod_spec_runs_under_podman_kube_play() {
    let cfg = TestbedConfig::new().hosts(2).agents(false);
    if !ready("daemonset_pod_spec_runs_under_podman_kube_play", &cfg) {
        return;
    }
    let how = "apt-get install -y podman catatonit busybox-static, or run scripts/setup.sh";
    let mut missing = weft_testbed::skip::missing_tools(&[("podman", how), ("catatonit", how)]);
    missing.extend(cri::missing());
    if !Path::new("/bin/busybox").is_file() {
        missing.push(format!("/bin/busybox not found ({how})"));
    }
    if !weft_testbed::skip::require("daemonset_pod_spec_runs_under_podman_kube_play", &missing) {
        return;
    }
    // The image, as scripts/build-image.sh builds it (debug binaries, already built).
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(repo.join("scripts/build-image.sh"))
        .env("WEFT_IMAGE_PROFILE", "debug")
        .env("WEFT_IMAGE", IMAGE)
        .env("WEFT_IMAGE_BASE", "localhost/weft-base:e2e")
        .output()
        .expect("run scripts/build-image.sh");
    assert!(
        out.status.success(),
        "scripts/build-image.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "scripts/build-image.sh (debug binaries): {} ms",
        started.elapsed().as_millis()
    );
    let mut tb = start(cfg);
    switch(&mut tb, "pods", "10.90.0.0/16");
    let controller = tb.controller_url(1).expect("controller url");
    let configmap = tb.dir().join("weft-cni-config.yaml");
    std::fs::write(&configmap, document(MANIFEST, "ConfigMap")).expect("write configmap");
    let daemonset = document(MANIFEST, "DaemonSet");
    let kube_conf = tb.dir().join("kube-containers.conf");
    std::fs::write(&kube_conf, base_conf(&tb.dir().display().to_string())).expect("conf");
    let kube_env = vec![("CONTAINERS_CONF", kube_conf.display().to_string())];
    let mut played = Played(Vec::new(), kube_env.clone());
    let mut paths = Vec::new();
    for n in 1..=2 {
        let h = tb.host(n).expect("host");
        let name = format!("weft-agent-{}-h{n}", tb.prefix());
        let p = host_paths(&tb, n);
        let mut y = pod_from_daemonset(daemonset, &name).replace(MANIFEST_IMAGE, IMAGE);
        y = set_env(&y, "WEFT_CHASSIS", &h.name);
        y = set_env(&y, "WEFT_ENCAP_IP", &h.underlay_ip.to_string());
        y = set_env(&y, "WEFT_CONTROLLER", &controller);
        y = set_env(&y, "WEFT_DATAPATH", "netdev");
        y = set_host_path(&y, "/var/run/openvswitch", h.ovs().rundir());
        y = set_host_path(&y, "/var/run/weft", &p.weft_run);
        y = set_host_path(&y, "/opt/cni/bin", &p.cni_bin);
        y = set_host_path(&y, "/etc/cni/net.d", &p.cni_conf);
        // The weft-agents Secret (scripts/k8s-pki.sh) is the testbed's PKI directory here: the
        // same file names (ca.pem, NODE.pem, NODE-key.pem), as a host path.
        let pki = tb.pki().expect("the testbed runs TLS");
        pki.issue(&h.name, "agent", &[h.name.as_str()])
            .expect("issue the chassis certificate");
        let pki = pki.dir().to_path_buf();
        y = secret_to_host_path(&y, "weft-agents", &pki);
        // podman 4.3 does not expand `$(WEFT_CHASSIS)` in later env values as Kubernetes does.
        y = set_env(&y, "WEFT_CERT", &format!("/etc/weft/pki/{}.pem", h.name));
        y = set_env(&y, "WEFT_KEY", &format!("/etc/weft/pki/{}-key.pem", h.name));
        let file = tb.dir().join(format!("{name}.yaml"));
        std::fs::write(&file, &y).expect("write pod yaml");
        played.0.push(name.clone());
        let (ok, out) = podman(
            &kube_env,
            &[
                "kube",
                "play",
                "--configmap",
                &configmap.display().to_string(),
                &file.display().to_string(),
            ],
            Some(&h.netns),
        );
        assert!(
            ok,
            "podman kube play on host{n}:\n{out}\n--- pod spec:\n{y}"
        );
        paths.push(p);
    }
    println!(
        "podman kube play on both hosts: {} ms",
        started.elapsed().as_millis()
    );
    // The agents register their chassis.
    let logs = |n: usize| {
        podman(
            &[],
            &[
                "logs",
                "--tail",
                "30",
                &format!("{}-agent", played.0[n - 1]),
            ],
            None,
        )
        .1
    };
    if let Err(e) =
        tb.wait_chassis_alive(&["host1".into(), "host2".into()], Duration::from_secs(60))
    {
        panic!(
            "agents from the image did not register: {e:#}\nhost1:\n{}\nhost2:\n{}",
            logs(1),
            logs(2)
        );
    }
    println!("both chassis alive: {} ms", started.elapsed().as_millis());
    // The init containers installed the plugin, portmap and the conflist.
    for p in &paths {
        for f in ["weft-cni", "portmap"] {
            assert!(
                p.cni_bin.join(f).is_file(),
                "{f} not installed in {}",
                p.cni_bin.display()
            );
        }
        assert!(p.cni_conf.join("10-weft.conflist").is_file());
        assert!(
            wait_until(Duration::from_secs(20), Duration::from_millis(100), || p
                .weft_run
                .join("cni.sock")
                .exists()),
            "the agent never opened its CNI socket"
        );
    }

    println!("agents up: {} ms", started.elapsed().as_millis());
    // containerd's CRI plugin on each host creates pods through the installed plugins and
    // conflist. The simulated hosts share one filesystem, so each containerd reads a copy of
    // the installed conflist pointed at its own agent's socket (on a real node
    // /var/run/weft/cni.sock is the host's).
    let cri_dir = tb.dir().join("cri");
    let assets = CriAssets::prepare(&cri_dir).expect("CRI stubs and image");
    let mut daemons = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let n = i + 1;
        let installed = p.cni_conf.join("10-weft.conflist");
        let mut c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&installed).expect("conflist"))
                .expect("JSON");
        c["plugins"][0]["agentSocket"] =
            serde_json::json!(p.weft_run.join("cni.sock").display().to_string());
        let net_dir = cri_dir.join(format!("net.d-h{n}"));
        std::fs::create_dir_all(&net_dir).expect("mkdir");
        std::fs::write(
            net_dir.join("10-weft.conflist"),
            serde_json::to_vec_pretty(&c).expect("json"),
        )
        .expect("write");
        let h = tb.host(n).expect("host");
        let d = Containerd::start(
            &assets,
            &cri_dir.join(format!("containerd-h{n}")),
            &h.netns,
            &p.cni_bin,
            &net_dir,
            (weft_testbed::net::MARKER_ENV, tb.prefix()),
        )
        .unwrap_or_else(|e| panic!("containerd on host{n}: {e:#}"));
        daemons.push(d);
    }
    let pods: Vec<_> = daemons
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.run_pod(&format!("kp{}", i + 1)).unwrap_or_else(|e| {
                panic!("CRI pod on host{}: {e:#}\nagent:\n{}", i + 1, logs(i + 1))
            })
        })
        .collect();
    // Pods on the two hosts ping each other. Whether each very first ping was answered is
    // printed (the first-ping guarantee has its own test, e2e_cni); if not, five more must be.
    for (a, b) in [(0, 1), (1, 0)] {
        let target = &pods[b].ip;
        let first = daemons[a].exec(&pods[a], 10, &["ping", "-c", "1", "-W", "2", target]);
        println!(
            "host{} -> host{} first ping: {}",
            a + 1,
            b + 1,
            if first.is_ok() { "answered" } else { "LOST" }
        );
        if first.is_err() {
            if let Err(e) = daemons[a].exec(&pods[a], 20, &["ping", "-c", "5", "-W", "2", target]) {
                panic!(
                    "pods on host{} and host{} do not reach each other ({target}): {e:#}\nagent host{}:\n{}",
                    a + 1,
                    b + 1,
                    a + 1,
                    logs(a + 1)
                );
            }
        }
    }
    println!(
        "cross-host pings done: {} ms",
        started.elapsed().as_millis()
    );
    // Removing a sandbox runs CNI DEL through the kube-played agent.
    daemons[0].remove(&pods[0]).expect("remove sandbox");
    let ports = ctl(&mut tb, &["lsp-list", "pods"]);
    assert!(!ports.contains("default_kp1"), "{ports}");
}

#[test]
fn pod_spec_extraction() {
    let ds = document(MANIFEST, "DaemonSet");
    let pod = pod_from_daemonset(ds, "x");
    assert!(pod.starts_with("apiVersion: v1\nkind: Pod\n"), "{pod}");
    assert!(pod.contains("\n  hostNetwork: true\n"), "{pod}");
    assert!(pod.contains("\n  initContainers:\n"), "{pod}");
    assert!(pod.contains("\n    - name: agent\n"), "{pod}");
    assert!(!pod.contains("updateStrategy"), "{pod}");
    let p = set_env(&pod, "WEFT_CHASSIS", "host1");
    let h = secret_to_host_path(&p, "weft-agents", Path::new("/tmp/pki"));
    let lines: Vec<&str> = h.lines().map(str::trim).collect();
    assert!(
        lines
            .windows(2)
            .any(|w| w == ["hostPath:", "path: /tmp/pki"]),
        "{h}"
    );
    assert!(!h.contains("secretName: weft-agents"), "{h}");
    let next = p
        .lines()
        .skip_while(|l| l.trim() != "- name: WEFT_CHASSIS")
        .nth(1)
        .unwrap_or_default();
    assert_eq!(next.trim(), "value: \"host1\"", "{p}");
    assert!(!p.contains("spec.nodeName"));
    let p = set_host_path(&p, "/var/run/weft", Path::new("/tmp/x"));
    assert!(p.contains("path: /tmp/x\n") && p.contains("mountPath: /var/run/weft\n"));
}
