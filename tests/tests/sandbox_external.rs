//! `weft-sandbox up --external` end to end: the outside namespace is there (`exec outside`),
//! `status` names it, a pod behind a router with a gateway chassis and SNAT reaches it, and
//! `down` removes it with everything else.

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
fn sandbox_external_outside_namespace() {
    let cfg = weft_testbed::testbed::TestbedConfig::new().external(true);
    if !ready("sandbox_external_outside_namespace", &cfg) {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("wsbx-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let dir = tmp.path().join("sb");
    let _down = Down(dir.clone());
    let prefix = prefix_for_dir(&dir);

    let up = sandbox(&dir, &["up", "--hosts", "2", "--external", "--insecure"]);
    assert!(up.status.success(), "{}", text(&up));
    let stdout = String::from_utf8_lossy(&up.stdout).to_string();
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export WEFT_CONTROLLER="))
        .unwrap_or_else(|| panic!("no WEFT_CONTROLLER line: {}", text(&up)))
        .to_string();
    let addr = sandbox(
        &dir,
        &["exec", "outside", "--", "ip", "-4", "addr", "show", "x0"],
    );
    assert!(addr.status.success(), "{}", text(&addr));
    assert!(text(&addr).contains("172.16.0.254/24"), "{}", text(&addr));
    let st = sandbox(&dir, &["status"]);
    assert!(
        text(&st).contains(&format!("outside     netns {prefix}-out")),
        "{}",
        text(&st)
    );

    let weftctl = weft_testbed::find_bin("weftctl").expect("weftctl");
    let ctl = |args: &[&str]| {
        let o = Command::new(&weftctl)
            .env("WEFT_CONTROLLER", &url)
            .env("WEFT_INSECURE", "1")
            .args(args)
            .output()
            .expect("weftctl runs");
        assert!(o.status.success(), "weftctl {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ctl(&["ls-add", "ls1", "--subnet", "10.71.0.0/24"]);
    ctl(&["ls-add", "ext", "--subnet", "172.16.0.0/24"]);
    ctl(&["lr-add", "lr1"]);
    ctl(&[
        "lrp-add",
        "lr1",
        "lr1-ls1",
        "0a:00:00:47:00:01",
        "10.71.0.1/24",
    ]);
    ctl(&[
        "lrp-add",
        "lr1",
        "lr1-ext",
        "0a:00:00:10:00:01",
        "172.16.0.1/24",
    ]);
    for sw in ["ls1", "ext"] {
        let lsp = format!("{sw}-lr1");
        let opt = format!("router-port=lr1-{sw}");
        ctl(&[
            "lsp-add",
            sw,
            &lsp,
            "--",
            "lsp-set-type",
            &lsp,
            "router",
            "--",
            "lsp-set-addresses",
            &lsp,
            "router",
            "--",
            "lsp-set-options",
            &lsp,
            &opt,
        ]);
    }
    ctl(&[
        "lsp-add",
        "ext",
        "ln",
        "--",
        "lsp-set-type",
        "ln",
        "localnet",
        "--",
        "lsp-set-addresses",
        "ln",
        "unknown",
        "--",
        "lsp-set-options",
        "ln",
        "network_name=physnet",
    ]);
    ctl(&["lrp-set-gateway-chassis", "lr1-ext", "host1", "10"]);
    ctl(&["lr-nat-add", "lr1", "snat", "172.16.0.10", "10.71.0.0/24"]);
    ctl(&["lsp-add", "ls1", "p1"]);
    ctl(&["lsp-set-addresses", "p1", "dynamic"]);
    let pod = sandbox(&dir, &["pod-add", "host2", "p1"]);
    assert!(pod.status.success(), "{}", text(&pod));
    ctl(&["--wait=hv", "sync"]);
    let ping = sandbox(
        &dir,
        &[
            "exec",
            "p1",
            "--",
            "ping",
            "-c",
            "5",
            "-i",
            "0.2",
            "-W",
            "2",
            "172.16.0.254",
        ],
    );
    let out = text(&ping);
    assert!(
        !out.contains(" 0 received") && out.contains("received"),
        "p1 (host2) → outside through host1's SNAT: {out}"
    );

    let down = sandbox(&dir, &["down"]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(
        !net::netns_exists(&format!("{prefix}-out")),
        "the outside namespace is left"
    );
}
