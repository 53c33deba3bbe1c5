//! The Kubernetes manifests of `deploy/kubernetes/` validate against the Kubernetes 1.30
//! schemas (`kubernetes-validate --strict`, from PyPI, installed by scripts/setup.sh into
//! /opt/weft-venv or found as WEFT_KUBERNETES_VALIDATE / on PATH), and keep the promises
//! docs/kubernetes.md makes: locally built images are not pulled, every container requests
//! resources, nothing depends on cluster DNS, the pod subnet comes from the ConfigMap, etcd
//! listens on loopback only, and the conflist in the agent's ConfigMap is
//! deploy/cni/10-weft.conflist verbatim.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .expect("deploy/kubernetes")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

fn validator() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WEFT_KUBERNETES_VALIDATE") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from("/opt/weft-venv/bin/kubernetes-validate");
    if venv.is_file() {
        return Some(venv);
    }
    Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("kubernetes-validate"))
}

fn validate(bin: &Path, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(bin)
        .args(["-k", "1.30.0", "--strict"])
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn manifests_validate_against_kubernetes_1_30() {
    let Some(bin) = validator() else {
        let why = "kubernetes-validate not found (scripts/setup.sh installs it into /opt/weft-venv: \
                   python3 -m venv /opt/weft-venv && /opt/weft-venv/bin/pip install kubernetes-validate)";
        if !weft_testbed::skip::require(
            "manifests_validate_against_kubernetes_1_30",
            &[why.to_string()],
        ) {
            return;
        }
        unreachable!();
    };
    let files = manifests();
    assert!(files.len() >= 4, "{files:?}");
    let (ok, out) = validate(&bin, &files);
    assert!(ok, "kubernetes-validate failed:\n{out}");
    for f in &files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        assert!(out.contains(&name), "{name} not validated:\n{out}");
    }
    assert!(!out.contains("WARN"), "{out}");
    // The validator does reject a broken manifest (so the pass above means something).
    let dir = std::env::temp_dir().join(format!("weft-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let bad = dir.join("bad.yaml");
    let agent =
        std::fs::read_to_string(repo().join("deploy/kubernetes/30-agent.yaml")).expect("read");
    std::fs::write(
        &bad,
        agent.replace(
            "maxUnavailable: 1",
            "maxUnavailable: 1\n      maxSurgeTypo: 1",
        ),
    )
    .expect("write");
    let (ok, out) = validate(&bin, &[bad]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!ok, "a manifest with an unknown field passed:\n{out}");
}

#[test]
fn manifests_keep_their_promises() {
    for f in manifests() {
        let text = std::fs::read_to_string(&f).expect("read");
        let name = f.display().to_string();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.trim_start().starts_with("image:") {
                let next = lines.get(i + 1).map(|n| n.trim()).unwrap_or_default();
                assert_eq!(
                    next,
                    "imagePullPolicy: IfNotPresent",
                    "{name}:{}: {l}",
                    i + 1
                );
            }
        }
        let containers = lines
            .iter()
            .filter(|l| l.trim_start().starts_with("image:"))
            .count();
        let requests = lines.iter().filter(|l| l.trim() == "requests:").count();
        assert_eq!(
            containers, requests,
            "{name}: every container requests resources"
        );
        assert!(!text.contains(".svc"), "{name} depends on cluster DNS");
        assert!(
            !text.contains("10.244.0.0/16") || name.ends_with("00-namespace.yaml"),
            "{name} hard-codes the pod subnet"
        );
        assert!(
            !text.contains("storageClassName") && !text.contains("volumeClaimTemplates"),
            "{name} needs a StorageClass"
        );
    }
    let etcd =
        std::fs::read_to_string(repo().join("deploy/kubernetes/10-etcd.yaml")).expect("etcd");
    for l in etcd.lines().filter(|l| l.contains("--listen-")) {
        assert!(l.contains("127.0.0.1"), "etcd listens beyond loopback: {l}");
    }
    let agent =
        std::fs::read_to_string(repo().join("deploy/kubernetes/30-agent.yaml")).expect("agent");
    assert!(agent.contains("WEFT_CONTROLLER_SERVICE_HOST"));
    // The management port comes from weft-config, whose keys exist.
    let ns = std::fs::read_to_string(repo().join("deploy/kubernetes/00-namespace.yaml"))
        .expect("namespace");
    for (env, key) in [
        ("WEFT_MGMT_SWITCH", "mgmt-switch"),
        ("WEFT_CLUSTER_SUBNETS", "cluster-subnets"),
    ] {
        let block = agent
            .split(&format!("- name: {env}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("30-agent.yaml sets no {env}"));
        let block: String = block.lines().take(5).collect::<Vec<_>>().join("\n");
        assert!(
            block.contains("name: weft-config") && block.contains(&format!("key: {key}")),
            "{env} from weft-config {key}: {block}"
        );
        assert!(
            ns.contains(&format!("\n  {key}: ")),
            "weft-config has no {key}"
        );
    }
    // The ConfigMap's conflist is the shipped file.
    let block: Vec<&str> = agent
        .split("10-weft.conflist: |\n")
        .nth(1)
        .expect("conflist in the ConfigMap")
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    let in_map: Value =
        serde_json::from_str(&block.join("\n")).expect("ConfigMap conflist is JSON");
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/cni/10-weft.conflist")).expect("conflist"),
    )
    .expect("conflist JSON");
    assert_eq!(
        in_map, file,
        "30-agent.yaml's conflist differs from deploy/cni/10-weft.conflist"
    );
}
