//! containerd 1.6's CRI plugin, driven by a CRI client (`tests/cri/cri_client.py`, Python
//! grpcio on the CRI `api.proto` of k8s.io/cri-api, vendored as `tests/cri/api.proto`),
//! creates pod sandboxes on two simulated hosts through the shipped conflist
//! (`deploy/cni/10-weft.conflist`: weft-cni then portmap) and the real `weft-cni` binary,
//! exactly as kubelet would through CRI. One containerd per simulated host runs in that host's
//! network namespace (`nsenter --net`) with its own root, state and socket under the testbed
//! directory. The pods then ping each other across hosts (ExecSync in a busybox container),
//! and each host reaches a pod's HTTP port on the other host through its management port
//! (`--mgmt-switch pods`, the kubelet-probe path: busybox httpd in the pod, `curl` from the
//! host's own namespace), and removing a sandbox runs CNI DEL (its logical port goes).
//!
//! Needs containerd and ctr (Debian `containerd`), and python3 with grpcio and grpcio-tools
//! (`/opt/weft-venv`, both installed by scripts/setup.sh). The harness is
//! `weft_testbed::cri`.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use weft_testbed::cri::{self, Containerd, CriAssets};
use weft_testbed::testbed::TestbedConfig;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn containerd_cri_pods_through_weft_cni_ping_across_hosts() {
    let test = "containerd_cri_pods_through_weft_cni_ping_across_hosts";
    // The agents get a management port on the pods switch (as the DaemonSet's weft-config
    // says); the testbed creates the switch.
    let cfg =
        TestbedConfig::new()
            .hosts(2)
            .cni(true)
            .mgmt("pods", "10.91.0.0/16", &["10.91.0.0/16"]);
    if !ready(test, &cfg) {
        return;
    }
    let mut missing = cri::missing();
    if weft_testbed::find_bin("weft-cni").is_err() {
        missing.push("weft-cni not built (cargo build --workspace --bins)".into());
    }
    if !weft_testbed::skip::require(test, &missing) {
        return;
    }
    let mut tb = start(cfg);
    let dir = tb.dir().join("cri");
    let assets = CriAssets::prepare(&dir).expect("CRI stubs and image");

    // One containerd per simulated host: the shipped conflist pointed at that host's agent,
    // weft-cni and the standard plugins in its bin dir.
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/cni/10-weft.conflist")).expect("conflist"),
    )
    .expect("conflist JSON");
    let mut daemons = Vec::new();
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
        let d = Containerd::start(
            &assets,
            &hd.join("containerd"),
            &h.netns,
            &hd.join("bin"),
            &hd.join("net.d"),
            (weft_testbed::net::MARKER_ENV, tb.prefix()),
        )
        .unwrap_or_else(|e| panic!("containerd on host{n}: {e:#}"));
        daemons.push(d);
    }

    // A pod on each host through CRI (RunPodSandbox = CNI ADD through the conflist).
    let pods: Vec<_> = daemons
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.run_pod(&format!("cri{}", i + 1))
                .unwrap_or_else(|e| panic!("CRI pod on host{}: {e:#}", i + 1))
        })
        .collect();
    for p in &pods {
        assert!(
            p.ip.starts_with("10.91."),
            "pod IP from the CNI result: {p:?}"
        );
    }
    let ports = ctl(&mut tb, &["lsp-list", "pods"]);
    assert!(
        ports.contains("default_cri1") && ports.contains("default_cri2"),
        "{ports}"
    );
    // They ping each other across hosts, the first ping included.
    for (a, b) in [(0, 1), (1, 0)] {
        if let Err(e) = daemons[a].exec(&pods[a], 10, &["ping", "-c", "1", "-W", "2", &pods[b].ip])
        {
            panic!(
                "host{} pod -> {} on host{}: {e:#}",
                a + 1,
                pods[b].ip,
                b + 1
            );
        }
    }
    // The kubelet-probe path: each host reaches an HTTP server in the pod on the other host
    // through its management port.
    for (i, (d, p)) in daemons.iter().zip(&pods).enumerate() {
        d.exec(
            p,
            10,
            &[
                "sh",
                "-c",
                "mkdir -p /www && echo weft-probe-ok > /www/index.html && httpd -p 8080 -h /www",
            ],
        )
        .unwrap_or_else(|e| panic!("httpd in the pod on host{}: {e:#}", i + 1));
    }
    for (n, p) in [(1, &pods[1]), (2, &pods[0])] {
        let h = tb.host(n).expect("host");
        let url = format!("http://{}:8080/index.html", p.ip);
        let mut last = String::new();
        let ok = weft_testbed::process::wait_until(
            std::time::Duration::from_secs(30),
            std::time::Duration::from_millis(500),
            || match h.exec(&["curl", "-sS", "-m", "2", &url]) {
                Ok(body) => {
                    last = body.clone();
                    body.contains("weft-probe-ok")
                }
                Err(e) => {
                    last = format!("{e:#}");
                    false
                }
            },
        );
        assert!(ok, "host{n} -> {url} through weft-mp0: {last}");
    }
    // Removing a sandbox runs CNI DEL: its logical port goes.
    daemons[0].remove(&pods[0]).expect("remove sandbox");
    let ports = ctl(&mut tb, &["lsp-list", "pods"]);
    assert!(!ports.contains("default_cri1"), "{ports}");
}
