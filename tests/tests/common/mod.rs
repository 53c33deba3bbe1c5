//! Shared helpers of the end-to-end tests.
#![allow(dead_code)]

use weft_testbed::testbed::{missing_prerequisites, Testbed, TestbedConfig};

/// True when everything a testbed of `cfg` needs is there: root, the OVS and etcd tools and
/// this workspace's binaries. Otherwise the test FAILS naming what is missing and how to get
/// it, or, with `WEFT_ALLOW_SKIP=1`, prints `SKIPPED <test>: <why>` and this returns false
/// (see [`weft_testbed::skip`]).
#[track_caller]
pub fn ready(test: &str, cfg: &TestbedConfig) -> bool {
    weft_testbed::skip::require(test, &missing_prerequisites(cfg))
}

/// Start a testbed or fail the test with the full error (logs included).
pub fn start(cfg: TestbedConfig) -> Testbed {
    match cfg.start() {
        Ok(tb) => tb,
        Err(e) => panic!("testbed did not start: {e:#}"),
    }
}

/// Run weftctl, failing the test with its error.
pub fn ctl(tb: &mut Testbed, args: &[&str]) -> String {
    match tb.ctl(args) {
        Ok(out) => out,
        Err(e) => panic!("weftctl {}: {e:#}", args.join(" ")),
    }
}

/// `ls-add SW --subnet CIDR`.
pub fn switch(tb: &mut Testbed, name: &str, subnet: &str) {
    ctl(tb, &["ls-add", name, "--subnet", subnet]);
}

/// `lsp-add SW PORT` + `lsp-set-addresses PORT dynamic`.
/// Attaches switch `sw` to router port `lrp` the ovn-nbctl way, through a new router-type
/// port `lsp`: `lsp-add SW LSP -- lsp-set-type LSP router -- lsp-set-addresses LSP router
/// -- lsp-set-options LSP router-port=LRP`.
pub fn attach_router_port(tb: &mut Testbed, sw: &str, lsp: &str, lrp: &str) {
    let args = weft_testbed::weftctl::attach_router_port_args(sw, lsp, lrp);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ctl(tb, &args);
}

/// A localnet port `port` on `sw` for provider network `network` (addresses `unknown`), in
/// one transaction.
pub fn localnet_port(tb: &mut Testbed, sw: &str, port: &str, network: &str) {
    let opt = format!("network_name={network}");
    ctl(
        tb,
        &[
            "lsp-add",
            sw,
            port,
            "--",
            "lsp-set-type",
            port,
            "localnet",
            "--",
            "lsp-set-addresses",
            port,
            "unknown",
            "--",
            "lsp-set-options",
            port,
            &opt,
        ],
    );
}

pub fn dyn_port(tb: &mut Testbed, sw: &str, port: &str) {
    ctl(tb, &["lsp-add", sw, port]);
    ctl(tb, &["lsp-set-addresses", port, "dynamic"]);
}

/// `lsp-add SW PORT` + static "MAC IP".
pub fn static_port(tb: &mut Testbed, sw: &str, port: &str, mac: &str, ip: &str) {
    ctl(tb, &["lsp-add", sw, port]);
    ctl(tb, &["lsp-set-addresses", port, &format!("{mac} {ip}")]);
}

/// Add a pod for `port` (named like the port) on `host`, failing the test on error.
pub fn pod(tb: &mut Testbed, host: usize, port: &str) -> weft_testbed::pod::Pod {
    match tb.add_pod(host, port, port) {
        Ok(p) => p,
        Err(e) => panic!("pod {port} on host{host}: {e:#}"),
    }
}

/// `--wait=hv sync`, failing the test on error (with agent logs).
pub fn sync(tb: &mut Testbed) {
    if let Err(e) = tb.sync() {
        let logs: Vec<String> = tb
            .hosts()
            .iter()
            .filter_map(|h| {
                let log = h.agent_log()?;
                Some(format!(
                    "--- {} agent log:\n{}",
                    h.name,
                    weft_testbed::process::log_tail(log, 20)
                ))
            })
            .collect();
        panic!("sync --wait=hv failed: {e:#}\n{}", logs.join("\n"));
    }
}

/// Poll `f` every 250 ms for up to `secs` seconds; panic naming `what` on timeout.
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let ok = weft_testbed::process::wait_until(
        std::time::Duration::from_secs(secs),
        std::time::Duration::from_millis(250),
        &mut f,
    );
    assert!(ok, "timed out after {secs}s waiting for {what}");
}

/// Ping `count` times from `from` to `to`; panic unless at least one reply came back.
pub fn assert_ping(from: &weft_testbed::pod::Pod, to: &weft_testbed::pod::Pod) {
    let r = from.ping(to.ip, 3).expect("ping runs");
    assert!(
        r.any(),
        "{} ({}) cannot ping {} ({}) : {r:?}",
        from.name,
        from.ip,
        to.name,
        to.ip
    );
}

/// Ping and assert that nothing answers.
pub fn assert_no_ping(from: &weft_testbed::pod::Pod, ip: std::net::Ipv4Addr) {
    let r = from.ping(ip, 3).expect("ping runs");
    assert_eq!(
        r.received, 0,
        "{} ({}) unexpectedly reached {ip}: {r:?}",
        from.name, from.ip
    );
}

/// A DF-set ping whose IP packet exactly fills the pod MTU must pass.
pub fn assert_full_mtu(from: &weft_testbed::pod::Pod, to: &weft_testbed::pod::Pod) {
    let size = (from.mtu - 28).to_string();
    let out = from
        .exec_output(&[
            "ping",
            "-n",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            &size,
            &to.ip.to_string(),
        ])
        .expect("ping runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r = weft_testbed::pod::parse_ping(&stdout);
    assert!(
        r.is_some_and(|r| r.any()),
        "full-MTU ({}) ping {} -> {} failed: {stdout}{}",
        from.mtu,
        from.name,
        to.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The JSON of `weftctl -o json show`.
pub fn show(tb: &mut Testbed) -> serde_json::Value {
    match tb.weftctl().and_then(|c| c.json(&["show"])) {
        Ok(v) => v,
        Err(e) => panic!("weftctl show: {e:#}"),
    }
}

/// The chassis a logical port is bound to, per `show` ("" when unbound).
pub fn port_chassis(tb: &mut Testbed, port: &str) -> String {
    let v = show(tb);
    v["switches"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == port)
        .and_then(|p| p["chassis"].as_str())
        .unwrap_or("")
        .to_string()
}

/// A long-lived TCP client (python3): connects to `IP PORT`, then for every line on stdin
/// sends one and prints the answer (or "ERR ...").
pub const LONG_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
f = s.makefile("rb")
for line in sys.stdin:
    try:
        s.sendall(b"x\n"); r = f.readline().decode().strip()
        print(r if r else "ERR eof", flush=True)
    except Exception as e:
        print("ERR", e, flush=True)
"#;
