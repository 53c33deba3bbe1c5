//! `weft-sandbox` end to end: up, "already running", pod-add on two hosts, exec (cross-host
//! ping), status, pod-del, down (nothing left behind); and the missing-prerequisite message.

mod common;
use common::*;
use std::process::{Command, Output};
use weft_testbed::net;
use weft_testbed::sandbox::prefix_for_dir;

const SANDBOX: &str = env!("CARGO_BIN_EXE_weft-sandbox");

fn sandbox(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(SANDBOX)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("weft-sandbox runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Brings the sandbox down when the test ends, whatever happens.
struct Down(std::path::PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = sandbox(&self.0, &["down"]);
    }
}

#[test]
fn sandbox_lifecycle() {
    // What `weft-sandbox up --hosts 2` needs (the default testbed).
    if !ready(
        "sandbox_lifecycle",
        &weft_testbed::testbed::TestbedConfig::new(),
    ) {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("wsbx-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let dir = tmp.path().join("sb");
    let _down = Down(dir.clone());
    let prefix = prefix_for_dir(&dir);

    let up = sandbox(&dir, &["up", "--hosts", "2", "--encap", "vxlan"]);
    assert!(up.status.success(), "{}", text(&up));
    let stdout = String::from_utf8_lossy(&up.stdout);
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export WEFT_CONTROLLER="))
        .unwrap_or_else(|| panic!("no WEFT_CONTROLLER line: {}", text(&up)))
        .to_string();
    assert!(String::from_utf8_lossy(&up.stderr).contains("==> starting host2"));
    // TLS by default: the export lines carry the CA and an admin credential.
    let exports: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for k in ["WEFT_CA", "WEFT_CERT", "WEFT_KEY"] {
        assert!(
            exports.iter().any(|(n, _)| n == k),
            "no {k} export: {}",
            text(&up)
        );
    }
    let env = sandbox(&dir, &["env"]);
    assert!(env.status.success(), "{}", text(&env));
    assert!(
        String::from_utf8_lossy(&env.stdout).contains("export WEFT_CA="),
        "{}",
        text(&env)
    );

    // A second `up` on the same dir refuses and points at the running one.
    let again = sandbox(&dir, &["up", "--hosts", "2"]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already running"), "{}", text(&again));

    // Logical ports through weftctl, pods through the sandbox.
    let weftctl = weft_testbed::find_bin("weftctl").expect("weftctl");
    let ctl = |args: &[&str]| {
        let o = Command::new(&weftctl)
            .env("WEFT_CONTROLLER", &url)
            .envs(exports.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .output()
            .expect("weftctl runs");
        assert!(o.status.success(), "weftctl {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Without the credential weftctl refuses to talk plain text, and says what to give.
    let bare = Command::new(&weftctl)
        .env("WEFT_CONTROLLER", &url)
        .args(["ls-list"])
        .output()
        .expect("weftctl runs");
    assert!(!bare.status.success());
    assert!(text(&bare).contains("--ca"), "{}", text(&bare));
    ctl(&["ls-add", "sw0", "--subnet", "10.0.0.0/24"]);
    for p in ["p1", "p2"] {
        ctl(&["lsp-add", "sw0", p]);
        ctl(&["lsp-set-addresses", p, "dynamic"]);
    }
    let a1 = sandbox(&dir, &["pod-add", "host1", "p1"]);
    assert!(a1.status.success(), "{}", text(&a1));
    let a2 = sandbox(&dir, &["pod-add", "2", "p2", "--name", "second"]);
    assert!(a2.status.success(), "{}", text(&a2));
    assert!(String::from_utf8_lossy(&a2.stdout).contains("pod second on host2"));
    let dup = sandbox(&dir, &["pod-add", "host1", "p1"]);
    assert!(!dup.status.success(), "duplicate pod name accepted");
    ctl(&["--wait=hv", "sync"]);

    let p2_addr = ctl(&["lsp-get-addresses", "p2"]);
    let p2_ip = p2_addr
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("lsp-get-addresses p2 printed {p2_addr:?}"))
        .to_string();
    let ping = sandbox(
        &dir,
        &[
            "exec", "p1", "--", "ping", "-c", "3", "-i", "0.2", "-W", "2", &p2_ip,
        ],
    );
    assert!(
        ping.status.success(),
        "cross-host ping in the sandbox: {}",
        text(&ping)
    );
    let fail = sandbox(&dir, &["exec", "p1", "--", "false"]);
    assert_eq!(
        fail.status.code(),
        Some(1),
        "exec passes the exit status through"
    );

    let st = sandbox(&dir, &["status"]);
    assert!(st.status.success(), "{}", text(&st));
    let st_text = text(&st);
    assert!(
        st_text.contains("running") && st_text.contains("second"),
        "{st_text}"
    );
    // Every daemon's metrics URL: the controller's and each host's agent's.
    let metrics = st_text
        .lines()
        .filter(|l| l.trim_start().starts_with("metrics http://") && l.ends_with("/metrics"))
        .count();
    assert_eq!(metrics, 3, "{st_text}");

    let del = sandbox(&dir, &["pod-del", "second"]);
    assert!(del.status.success(), "{}", text(&del));
    assert!(!net::netns_exists(&format!("{prefix}-p-second")));

    let down = sandbox(&dir, &["down"]);
    assert!(down.status.success(), "{}", text(&down));
    let left: Vec<String> = net::netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "namespaces left after down: {left:?}");
    assert!(
        net::marked_pids(&prefix).is_empty(),
        "processes left after down"
    );
    assert!(!net::link_exists(&format!("{prefix}-m")));
    let st = sandbox(&dir, &["status"]);
    assert_eq!(st.status.code(), Some(3), "{}", text(&st));
}

#[test]
fn missing_prerequisites_are_named_with_the_fix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // With an empty PATH, etcd and the OVS tools in /usr/bin are not found.
    let out = Command::new(SANDBOX)
        .env("PATH", "/nonexistent")
        .arg("--dir")
        .arg(tmp.path().join("sb"))
        .arg("up")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`etcd`"), "{err}");
    assert!(
        err.contains("apt-get install openvswitch-switch etcd-server"),
        "{err}"
    );
    assert!(err.contains("scripts/setup.sh"), "{err}");
    assert!(!tmp.path().join("sb").join("state.json").exists());
}

/// `weft-sandbox status | head -0`: a closed stdout ends it quietly, never a panic.
#[test]
fn status_into_a_closed_pipe_does_not_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..5 {
        let mut child = Command::new(SANDBOX)
            .arg("--dir")
            .arg(dir.path())
            .arg("status")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("weft-sandbox runs");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert_ne!(out.status.code(), Some(101), "{err}");
    }
}
