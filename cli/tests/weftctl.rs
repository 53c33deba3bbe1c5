//! End-to-end tests of the real `weftctl` binary against a real `weft-controller` over a real
//! etcd. Each test starts its own etcd (temp dir, free ports) and controller (free port),
//! killed on drop, so tests run in parallel without colliding.
//!
//! The controller binary must be built first (`cargo build -p weft-controller`); a missing
//! binary fails the test with the fix in the message.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use weft_testbed::etcd::Etcd;
use weft_testbed::process::{free_port, wait_until, Proc, ProcSpec};

/// etcd + one controller on it.
struct Deployment {
    url: String,
    controller: Proc,
    // Field order: the controller dies before etcd, then the temp dir goes.
    _etcd: Etcd,
    _dir: tempfile::TempDir,
}

impl Deployment {
    fn start() -> anyhow::Result<Deployment> {
        Deployment::start_with(&[])
    }

    /// Like `start`, with extra controller arguments.
    fn start_with(extra: &[&str]) -> anyhow::Result<Deployment> {
        let bin = weft_testbed::find_bin("weft-controller")?;
        let etcd = Etcd::start()?;
        let dir = tempfile::Builder::new().prefix("weftctl-it-").tempdir()?;
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let spec = ProcSpec::new("weft-controller", bin, dir.path().join("controller.log"))
            .args(["--listen", &listen])
            .args(["--etcd", &etcd.endpoint()])
            .args(["--prefix", "/weft"])
            .args(["--store", "etcd", "--insecure"])
            .args(extra.iter().copied());
        let mut controller = spec.spawn()?;
        let url = format!("http://{listen}");
        let mut exited = false;
        let ready = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
            if !controller.is_running() {
                exited = true;
                return true;
            }
            weftctl_with(&url, &["ls-list"])
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        if exited || !ready {
            bail!(
                "weft-controller on {listen} {}; log tail:\n{}",
                if exited {
                    "exited"
                } else {
                    "did not answer in 30s"
                },
                controller.log_tail(20)
            );
        }
        Ok(Deployment {
            url,
            controller,
            _etcd: etcd,
            _dir: dir,
        })
    }

    /// Runs weftctl; panics only if the binary cannot be run at all.
    fn ctl(&self, args: &[&str]) -> Run {
        match weftctl_with(&self.url, args) {
            Ok(o) => Run::from(o),
            Err(e) => panic!("cannot run weftctl {args:?}: {e:#}"),
        }
    }

    /// Runs weftctl and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let r = self.ctl(args);
        assert_eq!(
            r.code,
            0,
            "weftctl {args:?} failed: {}\ncontroller log:\n{}",
            r.stderr,
            self.controller.log_tail(10)
        );
        r.stdout
    }

    /// Runs weftctl with `-o json`, requires success, parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-o", "json"];
        full.extend_from_slice(args);
        let out = self.ok(&full);
        match serde_json::from_str(&out) {
            Ok(v) => v,
            Err(e) => panic!("weftctl {full:?} printed invalid JSON ({e}): {out}"),
        }
    }

    /// Runs weftctl, requires exit status 1 with exactly one `weftctl: ` line on stderr and
    /// nothing on stdout; returns that line.
    fn fails(&self, args: &[&str]) -> String {
        let r = self.ctl(args);
        assert_eq!(r.code, 1, "weftctl {args:?}: expected exit 1, got {r:?}");
        r.one_error_line(args)
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    fn one_error_line(&self, args: &[&str]) -> String {
        assert_eq!(self.stdout, "", "weftctl {args:?}: stdout on error");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "weftctl {args:?}: stderr is not one line: {:?}",
            self.stderr
        );
        assert!(
            lines[0].starts_with("weftctl: ") && lines[0].len() > "weftctl: ".len(),
            "weftctl {args:?}: {:?}",
            lines[0]
        );
        lines[0].to_string()
    }
}

fn weftctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weftctl"))
}

fn weftctl_with(url: &str, args: &[&str]) -> anyhow::Result<Output> {
    Command::new(weftctl_bin())
        .env("WEFT_INSECURE", "1")
        .env_remove("WEFT_CONTROLLER")
        .arg("--controller")
        .arg(url)
        .args(args)
        .output()
        .context("spawning weftctl")
}

fn deployment() -> Deployment {
    match Deployment::start() {
        Ok(d) => d,
        Err(e) => panic!("cannot start etcd + weft-controller: {e:#}"),
    }
}

fn names(v: &Value, list: &str) -> Vec<String> {
    v[list]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// "MAC IP" → (MAC, IP) if the MAC is well-formed and there is exactly one IPv4 address.
fn mac_ip(entry: &str) -> Option<(String, Ipv4Addr)> {
    let mut it = entry.split_whitespace();
    let mac = it.next()?;
    let ip = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    let octets: Vec<&str> = mac.split(':').collect();
    let ok = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && u8::from_str_radix(o, 16).is_ok());
    ok.then(|| (mac.to_string(), ip))
}

#[test]
fn switch_commands_round_trip() {
    let d = deployment();
    assert_eq!(d.ok(&["ls-add", "sw1", "--subnet", "10.0.0.0/24"]), "");
    let reply = d.json(&["ls-add", "sw2", "--vni", "4242", "--mtu", "1400"]);
    assert!(reply["revision"].as_i64().unwrap_or(0) > 0, "{reply}");
    assert_eq!(reply["switch"]["vni"], 4242);

    let text = d.ok(&["ls-list"]);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[0].starts_with("NAME"), "{text}");
    assert!(
        rows[1].starts_with("sw1 ") && rows[1].contains("10.0.0.0/24"),
        "{text}"
    );
    assert!(
        rows[2].starts_with("sw2 ") && rows[2].contains("4242"),
        "{text}"
    );

    let list = d.json(&["ls-list"]);
    assert_eq!(names(&list, "switches"), ["sw1", "sw2"]);
    let vni1 = list["switches"][0]["vni"].as_u64().unwrap_or(0);
    assert!(vni1 > 0 && vni1 != 4242, "allocated VNI {vni1}");
    assert_eq!(list["switches"][1]["mtu"], 1400);

    // Duplicate: one line naming the switch; --may-exist makes it a no-op.
    let err = d.fails(&["ls-add", "sw1"]);
    assert!(err.contains("sw1"), "{err}");
    assert_eq!(d.ok(&["--may-exist", "ls-add", "sw1"]), "");
    assert_eq!(
        d.json(&["ls-list"])["switches"],
        list["switches"],
        "--may-exist changed sw1"
    );

    // Delete; deleting again fails unless --if-exists.
    assert_eq!(d.ok(&["ls-del", "sw2"]), "");
    assert_eq!(names(&d.json(&["ls-list"]), "switches"), ["sw1"]);
    let err = d.fails(&["ls-del", "sw2"]);
    assert!(err.contains("sw2"), "{err}");
    assert_eq!(d.ok(&["--if-exists", "ls-del", "sw2"]), "");
    let del = d.json(&["--if-exists", "ls-del", "sw2"]);
    assert!(del["revision"].is_i64(), "{del}");
}

#[test]
fn port_commands_round_trip() {
    let d = deployment();
    d.ok(&["ls-add", "sw1", "--subnet", "10.0.0.0/24"]);
    assert_eq!(d.ok(&["lsp-add", "sw1", "p1"]), "");
    assert_eq!(d.ok(&["lsp-add", "sw1", "p2"]), "");
    assert_eq!(names(&d.json(&["lsp-list", "sw1"]), "ports"), ["p1", "p2"]);
    let text = d.ok(&["lsp-list", "sw1"]);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("p1 ")), "{text}");

    // dynamic → a MAC and an IP from the subnet (not network, gateway or broadcast).
    assert_eq!(d.ok(&["lsp-set-addresses", "p1", "dynamic"]), "");
    let got = d.ok(&["lsp-get-addresses", "p1"]);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 1, "{got}");
    let Some((mac, ip)) = mac_ip(lines[0]) else {
        panic!("lsp-get-addresses p1 printed {got:?}, not \"MAC IP\"");
    };
    let o = ip.octets();
    assert!(
        o[..3] == [10, 0, 0] && o[3] > 1 && o[3] < 255,
        "{ip} not a host in 10.0.0.0/24"
    );
    let port = d.json(&["lsp-get-addresses", "p1"]);
    assert_eq!(port["addresses"], serde_json::json!(["dynamic"]));
    assert_eq!(port["dynamic_addresses"], format!("{mac} {ip}"));

    // Static addresses and "unknown", one entry per line.
    // (any address p1's random dynamic one did not take)
    let host = if o[3] == 99 { 98 } else { 99 };
    let addr = &format!("0a:00:00:00:00:99 10.0.0.{host}");
    d.ok(&["lsp-set-addresses", "p2", addr, "unknown"]);
    assert_eq!(
        d.ok(&["lsp-get-addresses", "p2"]),
        format!("{addr}\nunknown\n")
    );

    // Port security: set, read, clear.
    d.ok(&["lsp-set-port-security", "p2", addr]);
    assert_eq!(d.ok(&["lsp-get-port-security", "p2"]), format!("{addr}\n"));
    d.ok(&["lsp-set-port-security", "p2"]);
    assert_eq!(d.ok(&["lsp-get-port-security", "p2"]), "");

    // No chassis binds the ports.
    assert_eq!(d.ok(&["lsp-get-up", "p1"]), "down\n");

    // Administrative state, ovn-nbctl words.
    assert_eq!(d.ok(&["lsp-get-enabled", "p1"]), "enabled\n");
    assert_eq!(d.ok(&["lsp-set-enabled", "p1", "disabled"]), "");
    assert_eq!(d.ok(&["lsp-get-enabled", "p1"]), "disabled\n");
    assert!(d.ok(&["show"]).contains("    port p1 (down, disabled)\n"));
    assert_eq!(d.json(&["lsp-get-enabled", "p1"])["enabled"], false);
    d.ok(&["lsp-set-enabled", "p1", "enabled"]);
    assert_eq!(d.ok(&["lsp-get-enabled", "p1"]), "enabled\n");
    let err = d.fails(&["lsp-set-enabled", "nosuch", "enabled"]);
    assert!(err.contains("nosuch"), "{err}");

    // show: the tree, and the same data as JSON.
    let show = d.ok(&["show"]);
    assert!(show.starts_with("switch sw1 (vni "), "{show}");
    assert!(show.contains("subnet 10.0.0.0/24)"), "{show}");
    assert!(show.contains("\n    port p1 (down)\n"), "{show}");
    assert!(
        show.contains(&format!("dynamic addresses: [\"{mac} {ip}\"]")),
        "{show}"
    );
    assert!(
        show.contains(&format!("addresses: [\"{addr}\", \"unknown\"]")),
        "{show}"
    );
    let js = d.json(&["show"]);
    assert_eq!(js["switches"][0]["switch"]["name"], "sw1");
    assert_eq!(names(&js["switches"][0], "ports"), ["p1", "p2"]);

    // Duplicate port name (also on another switch): error; --may-exist: no-op.
    d.ok(&["ls-add", "sw2"]);
    let err = d.fails(&["lsp-add", "sw2", "p1"]);
    assert!(err.contains("p1"), "{err}");
    assert_eq!(d.ok(&["--may-exist", "lsp-add", "sw1", "p1"]), "");
    assert_eq!(
        d.ok(&["lsp-get-addresses", "p1"]),
        got,
        "--may-exist changed p1"
    );

    // Delete a port, then the switch with the rest.
    assert_eq!(d.ok(&["lsp-del", "p1"]), "");
    assert_eq!(names(&d.json(&["lsp-list", "sw1"]), "ports"), ["p2"]);
    let err = d.fails(&["lsp-del", "p1"]);
    assert!(err.contains("p1"), "{err}");
    assert_eq!(d.ok(&["--if-exists", "lsp-del", "p1"]), "");
    d.ok(&["ls-del", "sw1"]);
    let err = d.fails(&["lsp-get-up", "p2"]);
    assert!(err.contains("p2"), "{err}");
}

#[test]
fn lsp_add_batch_creates_all_or_nothing() {
    let d = deployment();
    d.ok(&["ls-add", "sw1", "--subnet", "10.0.0.0/24"]);
    assert_eq!(
        d.ok(&["lsp-add-batch", "sw1", "b1", "b2", "b3", "--dynamic"]),
        ""
    );
    let mut seen = std::collections::HashSet::new();
    for p in ["b1", "b2", "b3"] {
        let got = d.ok(&["lsp-get-addresses", p]);
        assert!(mac_ip(got.trim()).is_some(), "{p}: {got:?}");
        assert!(seen.insert(got), "{p} got a duplicate address");
    }
    let js = d.json(&["--may-exist", "lsp-add-batch", "sw1", "b3", "b4"]);
    assert_eq!(names(&js, "ports"), ["b3", "b4"]);
    assert!(js["revision"].as_i64().unwrap_or(0) > 0, "{js}");
    // One bad name: nothing is created.
    let err = d.fails(&["lsp-add-batch", "sw1", "c1", "c 2"]);
    assert!(err.contains("ports[1].name"), "{err}");
    let err = d.fails(&["lsp-add-batch", "sw1", "c1", "c1"]);
    assert!(err.contains("duplicate"), "{err}");
    assert_eq!(
        names(&d.json(&["lsp-list", "sw1"]), "ports"),
        ["b1", "b2", "b3", "b4"]
    );
}

#[test]
fn sync_and_chassis_list_without_chassis() {
    let d = deployment();
    // No chassis registered: nothing to wait for.
    assert_eq!(d.ok(&["chassis-list"]), "");
    assert_eq!(d.json(&["chassis-list"])["chassis"], serde_json::json!([]));
    let w = d.json(&[
        "--wait=hv",
        "--timeout=10",
        "ls-add",
        "sw1",
        "--subnet",
        "10.1.0.0/24",
    ]);
    let rev = w["revision"].as_i64().unwrap_or(0);
    assert!(rev > 0, "{w}");
    assert_eq!(d.ok(&["sync"]), "");
    let s = d.json(&["--timeout", "10", "sync"]);
    assert!(s["revision"].as_i64().unwrap_or(0) >= rev, "{s} < {rev}");
    let s = d.json(&["sync", "--revision", &rev.to_string()]);
    assert!(s["revision"].is_i64(), "{s}");
    assert_eq!(d.ok(&["--wait=none", "sync"]), "");
    // A --wait=hv write with dynamic addresses answers with the allocation.
    d.ok(&["--wait=hv", "lsp-add", "sw1", "p1"]);
    let p = d.json(&["--wait=hv", "lsp-set-addresses", "p1", "dynamic"]);
    let dynamic = p["port"]["dynamic_addresses"].as_str().unwrap_or("");
    assert!(mac_ip(dynamic).is_some(), "{p}");
}

#[test]
fn every_read_prints_json() {
    let d = deployment();
    d.ok(&["ls-add", "sw1", "--subnet", "10.2.0.0/24"]);
    d.ok(&["lsp-add", "sw1", "p1"]);
    for args in [
        &["show"][..],
        &["ls-list"],
        &["lsp-list", "sw1"],
        &["lsp-get-addresses", "p1"],
        &["lsp-get-port-security", "p1"],
        &["lsp-get-up", "p1"],
        &["chassis-list"],
        &["--wait=none", "sync"],
    ] {
        let v = d.json(args);
        assert!(v.is_object(), "{args:?}: {v}");
    }
    let p = d.json(&["lsp-get-up", "p1"]);
    assert_eq!(
        (p["name"].as_str(), p["up"].as_bool()),
        (Some("p1"), Some(false))
    );
}

#[test]
fn bad_input_prints_one_line_and_changes_nothing() {
    let d = deployment();
    d.ok(&["ls-add", "sw1", "--subnet", "10.3.0.0/24"]);
    d.ok(&["lsp-add", "sw1", "p1"]);
    d.ok(&["lsp-set-addresses", "p1", "0a:00:00:00:00:05 10.3.0.5"]);
    let before = d.json(&["show"]);

    let err = d.fails(&["ls-add", "bad", "--subnet", "10.0.0.0/33"]);
    assert!(err.contains("10.0.0.0/33"), "bad CIDR: {err}");
    let err = d.fails(&["ls-add", "bad", "--subnet", "not-a-cidr"]);
    assert!(err.contains("not-a-cidr"), "bad CIDR: {err}");
    let err = d.fails(&["lsp-set-addresses", "p1", "zz:00:00:00:00:01 10.3.0.7"]);
    assert!(err.contains("zz:00:00:00:00:01"), "bad MAC: {err}");
    let err = d.fails(&["lsp-set-addresses", "p1", "0a:00:00:00:00:07 192.168.9.9"]);
    assert!(err.contains("192.168.9.9"), "IP outside subnet: {err}");
    let err = d.fails(&["lsp-add", "nosuch", "p9"]);
    assert!(err.contains("nosuch"), "unknown switch: {err}");
    let err = d.fails(&["lsp-list", "nosuch"]);
    assert!(err.contains("nosuch"), "unknown switch: {err}");
    let err = d.fails(&["lsp-set-addresses", "ghost", "dynamic"]);
    assert!(err.contains("ghost"), "unknown port: {err}");
    let err = d.fails(&["ls-add", "sw1"]);
    assert!(err.contains("sw1"), "duplicate switch: {err}");
    let err = d.fails(&["lsp-add", "sw1", "p1"]);
    assert!(err.contains("p1"), "duplicate port: {err}");
    let err = d.fails(&["ls-add", "bad name!"]);
    assert!(err.contains("bad name!"), "bad name: {err}");
    // `dynamic` on a switch without subnet allocates a MAC only (as OVN).
    d.ok(&["ls-add", "nosubnet"]);
    d.ok(&["lsp-add", "nosubnet", "q1"]);
    d.ok(&["lsp-set-addresses", "q1", "dynamic"]);
    let got = d.ok(&["get", "Logical_Switch_Port", "q1", "dynamic_addresses"]);
    let mac = got.trim().trim_matches('"');
    assert!(
        mac.len() == 17 && mac.starts_with("0a:") && !mac.contains(' '),
        "{got}"
    );
    d.ok(&["ls-del", "nosubnet"]);

    let after = d.json(&["show"]);
    assert_eq!(
        after["switches"], before["switches"],
        "a rejected write changed state"
    );
}

#[test]
fn usage_errors_exit_2() {
    // No controller needed: these are rejected before any call.
    for args in [
        &["ls-add", "sw1", "--vni", "abc"][..],
        &["ls-add", "sw1", "--subnet", ""],
        &["--wait=sb", "sync"],
        &["-o", "yaml", "show"],
        &["nonsense"],
    ] {
        let r =
            Run::from(weftctl_with("http://127.0.0.1:9", args).unwrap_or_else(|e| panic!("{e:#}")));
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains("error:"), "{args:?}: {r:?}");
    }
    let args = ["--may-exist", "ls-del", "sw1"];
    let r =
        Run::from(weftctl_with("http://127.0.0.1:9", &args).unwrap_or_else(|e| panic!("{e:#}")));
    assert_eq!(r.code, 2, "{r:?}");
    let line = r.one_error_line(&args);
    assert!(line.contains("--may-exist"), "{line}");
}

#[test]
fn unreachable_controller_is_one_clear_line() {
    let port = free_port().unwrap_or_else(|e| panic!("{e:#}"));
    let url = format!("http://127.0.0.1:{port}");
    let r = Run::from(weftctl_with(&url, &["ls-list"]).unwrap_or_else(|e| panic!("{e:#}")));
    assert_eq!(r.code, 1, "{r:?}");
    let line = r.one_error_line(&["ls-list"]);
    assert!(
        line.starts_with(&format!("weftctl: cannot reach controller at {url}: ")),
        "{line}"
    );
    // The same through WEFT_CONTROLLER.
    let out = Command::new(weftctl_bin())
        .env("WEFT_INSECURE", "1")
        .env("WEFT_CONTROLLER", &url)
        .arg("show")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let r = Run::from(out);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.one_error_line(&["show"]).contains(&url), "{r:?}");
}

/// Several controller addresses: weftctl uses the first that answers; when none does, the
/// one error line names every address tried.
#[test]
fn several_controllers_fail_over() {
    let d = deployment();
    let dead = format!(
        "http://127.0.0.1:{}",
        free_port().unwrap_or_else(|e| panic!("{e:#}"))
    );
    let both = format!("{dead},{}", d.url);
    let r = Run::from(weftctl_with(&both, &["ls-add", "fo"]).unwrap_or_else(|e| panic!("{e:#}")));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(d.ok(&["ls-list"]).contains("fo"));
    let dead2 = format!(
        "http://127.0.0.1:{}",
        free_port().unwrap_or_else(|e| panic!("{e:#}"))
    );
    let none = format!("{dead},{dead2}");
    let r = Run::from(weftctl_with(&none, &["ls-list"]).unwrap_or_else(|e| panic!("{e:#}")));
    assert_eq!(r.code, 1, "{r:?}");
    let line = r.one_error_line(&["ls-list"]);
    assert!(line.contains(&dead) && line.contains(&dead2), "{line}");
}

/// A chassis registered over the real southbound API (the test plays the agent): it shows up
/// in chassis-list and show, its port status reaches lsp-get-up, `--wait=hv` times out while
/// it has not applied a write, and `sync` returns once it reports the revision.
#[test]
fn chassis_status_and_wait_for_hypervisors() {
    use weft_proto::v1::southbound_client::SouthboundClient;
    use weft_proto::v1::{Chassis, PortBinding, StatusReport, SubscribeRequest};

    let d = deployment();
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let url = d.url.clone();
    let mut sb = rt
        .block_on(SouthboundClient::connect(url))
        .unwrap_or_else(|e| panic!("southbound connect: {e}"));
    let mut stream = rt
        .block_on(sb.subscribe(SubscribeRequest {
            chassis: Some(Chassis {
                name: "hv1".into(),
                encap_ip: "192.0.2.1".into(),
                encap_types: vec!["geneve".into()],
                datapath_type: "netdev".into(),
                version: "test".into(),
                ..Default::default()
            }),
        }))
        .unwrap_or_else(|e| panic!("subscribe: {e}"))
        .into_inner();
    // Keep reading the view stream so the subscription stays healthy.
    let reader = rt.spawn(async move { while let Ok(Some(_)) = stream.message().await {} });

    let alive = wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let v = d.json(&["chassis-list"]);
        v["chassis"][0]["name"] == "hv1" && v["chassis"][0]["alive"] == true
    });
    assert!(alive, "hv1 not alive: {}", d.ok(&["chassis-list"]));
    let text = d.ok(&["chassis-list"]);
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("hv1") && l.contains("192.0.2.1")),
        "{text}"
    );

    d.ok(&["ls-add", "sw1", "--subnet", "10.4.0.0/24"]);
    d.ok(&["lsp-add", "sw1", "vif1"]);
    let report = |applied: i64| StatusReport {
        chassis: "hv1".into(),
        applied_revision: applied,
        ports: vec![PortBinding {
            port: "vif1".into(),
            chassis: "hv1".into(),
            up: true,
        }],
        last_error: String::new(),
    };
    rt.block_on(sb.report_status(report(1)))
        .unwrap_or_else(|e| panic!("report: {e}"));
    let up = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        d.ok(&["lsp-get-up", "vif1"]) == "up\n"
    });
    assert!(up, "vif1 never reported up: {}", d.ok(&["show"]));
    let show = d.ok(&["show"]);
    assert!(show.contains("    port vif1 (up on hv1)\n"), "{show}");
    assert!(
        show.contains("chassis hv1 (192.0.2.1, geneve) alive applied="),
        "{show}"
    );

    // hv1 has not applied the next write: --wait=hv gives up after --timeout, one line, exit 1.
    let err = d.fails(&["--wait=hv", "--timeout=2", "ls-add", "sw2"]);
    assert!(
        err.contains("hv1"),
        "the timeout should name the lagging chassis: {err}"
    );
    let err = d.fails(&["--timeout=1", "sync"]);
    assert!(err.len() > "weftctl: ".len(), "{err}");

    // Once hv1 reports the current revision, sync returns.
    let current = d.json(&["--wait=none", "sync"])["revision"]
        .as_i64()
        .unwrap_or(0);
    assert!(current > 0);
    rt.block_on(sb.report_status(report(current)))
        .unwrap_or_else(|e| panic!("report: {e}"));
    let synced = d.json(&["--timeout=10", "sync", "--revision", &current.to_string()]);
    assert!(
        synced["revision"].as_i64().unwrap_or(0) >= current,
        "{synced}"
    );
    // An alive chassis cannot be deleted; an unknown one is NotFound unless --if-exists.
    let err = d.fails(&["chassis-del", "hv1"]);
    assert!(err.contains("alive"), "{err}");
    let err = d.fails(&["chassis-del", "hv9"]);
    assert!(err.contains("hv9"), "{err}");
    assert_eq!(d.ok(&["--if-exists", "chassis-del", "hv9"]), "");
    reader.abort();
}

// ---- Transact, `--` chains and the generic database commands ----

impl Deployment {
    /// etcd's current revision (a `--wait=none sync`: nothing else writes without chassis).
    fn revision(&self) -> i64 {
        let v = self.json(&["--wait=none", "sync"]);
        v["revision"]
            .as_i64()
            .unwrap_or_else(|| panic!("sync printed no revision: {v}"))
    }

    /// Every object of every kind, as `list -f json` prints it (the state, for comparisons).
    fn state(&self) -> Value {
        let kinds = [
            "Logical_Switch",
            "Logical_Switch_Port",
            "Chassis",
            "Logical_Router",
            "Logical_Router_Port",
        ];
        Value::Array(
            kinds
                .iter()
                .map(|k| self.json(&["list", k])["records"].clone())
                .collect(),
        )
    }

    /// The command's stdout split into lines.
    fn lines(&self, args: &[&str]) -> Vec<String> {
        self.ok(args).lines().map(str::to_string).collect()
    }
}

fn deployment_with(extra: &[&str]) -> Deployment {
    match Deployment::start_with(extra) {
        Ok(d) => d,
        Err(e) => panic!("cannot start etcd + weft-controller: {e:#}"),
    }
}

const CHAIN: [&str; 17] = [
    "ls-add",
    "a",
    "--subnet",
    "10.5.0.0/24",
    "--",
    "lsp-add",
    "a",
    "p1",
    "--",
    "lsp-set-addresses",
    "p1",
    "dynamic",
    "--",
    "lsp-add",
    "a",
    "p2",
    "--",
];

/// The issue's chain exactly as written (no subnet: `dynamic` is a MAC only, as OVN).
#[test]
fn the_issues_chain_as_written() {
    let d = deployment();
    let before = d.revision();
    let chain = [
        "ls-add",
        "a",
        "--",
        "lsp-add",
        "a",
        "p1",
        "--",
        "lsp-set-addresses",
        "p1",
        "dynamic",
        "--",
        "lsp-add",
        "a",
        "p2",
    ];
    assert_eq!(d.ok(&chain), "\n\n\n\n");
    assert_eq!(d.revision(), before + 1, "one etcd revision");
    assert_eq!(names(&d.json(&["lsp-list", "a"]), "ports"), ["p1", "p2"]);
    // The same chain with a bad last op changes nothing.
    let before = d.revision();
    let bad = [
        "ls-add",
        "b",
        "--",
        "lsp-add",
        "b",
        "q1",
        "--",
        "lsp-set-addresses",
        "q1",
        "dynamic",
        "--",
        "lsp-add",
        "nosuch",
        "q2",
    ];
    let err = d.fails(&bad);
    assert!(err.contains("ops[3]") && err.contains("nosuch"), "{err}");
    assert_eq!(d.revision(), before, "a rejected chain writes nothing");
}

#[test]
fn chain_is_one_transaction_with_one_line_per_command() {
    let d = deployment();
    let before = d.revision();
    let chain = &CHAIN[..CHAIN.len() - 1];
    assert_eq!(d.ok(chain), "\n\n\n\n", "writes print an empty line each");
    assert_eq!(d.revision(), before + 1, "the chain is one etcd revision");
    let got = d.ok(&["lsp-get-addresses", "p1"]);
    assert!(mac_ip(got.trim()).is_some(), "{got:?}");
    assert_eq!(names(&d.json(&["lsp-list", "a"]), "ports"), ["p1", "p2"]);

    // -f json: one compact JSON document per line, all with the chain's revision.
    let before = d.revision();
    let mut args = vec!["-f", "json", "ls-add", "b", "--", "lsp-add", "b", "q1"];
    args.extend(["--", "lsp-set-type", "q1", "router", "--", "ls-list"]);
    let lines = d.lines(&args);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let docs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let rev = before + 1;
    assert_eq!(docs[0]["revision"], rev, "{}", docs[0]);
    assert_eq!(docs[0]["switch"]["name"], "b");
    assert_eq!(docs[1]["port"]["name"], "q1");
    assert_eq!(docs[2]["port"]["type"], "router");
    // The read runs after the commit and sees it.
    assert_eq!(names(&docs[3], "switches"), ["a", "b"]);

    // Reads in a chain print their output on their line (`\n` between entries). (A
    // router-type port's router-port must exist.)
    d.ok(&[
        "lr-add",
        "rq",
        "--",
        "lrp-add",
        "rq",
        "lrp1",
        "0a:00:00:00:0f:01",
        "10.99.0.1/24",
    ]);
    let lines = d.lines(&[
        "lsp-set-options",
        "q1",
        "router-port=lrp1",
        "nat-addresses=router",
        "--",
        "lsp-get-options",
        "q1",
        "--",
        "lsp-get-type",
        "q1",
        "--",
        "lsp-get-ls",
        "q1",
    ]);
    assert_eq!(
        lines,
        ["", "nat-addresses=router\\nrouter-port=lrp1", "router", "b"]
    );
    // --oneline for a single command.
    assert_eq!(
        d.ok(&["--oneline", "lsp-get-options", "q1"]),
        "nat-addresses=router\\nrouter-port=lrp1\n"
    );
    // Per-command options before the command, after `--`.
    assert_eq!(
        d.ok(&[
            "--",
            "--may-exist",
            "ls-add",
            "a",
            "--",
            "--if-exists",
            "ls-del",
            "zz"
        ]),
        "\n\n"
    );
}

#[test]
fn failed_chain_changes_nothing() {
    let d = deployment();
    d.ok(&["ls-add", "sw0", "--subnet", "10.6.0.0/24"]);
    d.ok(&["lsp-add", "sw0", "taken"]);
    let before = (d.revision(), d.state());
    // The same chain with a bad last op: a port name that exists.
    let mut bad: Vec<&str> = CHAIN[..CHAIN.len() - 4].to_vec();
    bad.extend(["lsp-add", "a", "taken"]);
    let err = d.fails(&bad);
    assert!(err.contains("ops[3]") && err.contains("taken"), "{err}");
    // A bad value in the middle; an unknown column; a kind that does not exist.
    for (chain, want) in [
        (
            vec![
                "ls-add",
                "a",
                "--",
                "lsp-add",
                "a",
                "p1",
                "--",
                "lsp-set-addresses",
                "p1",
                "zz",
                "--",
                "lsp-add",
                "a",
                "p2",
            ],
            "ops[2]",
        ),
        (
            vec!["ls-add", "a", "--", "set", "Logical_Switch", "a", "bogus=1"],
            "bogus",
        ),
        (
            vec!["ls-add", "a", "--", "destroy", "NoSuchKind", "a"],
            "NoSuchKind",
        ),
        (
            vec!["ls-add", "a", "--", "lsp-add", "nosuch", "p1"],
            "nosuch",
        ),
    ] {
        let err = d.fails(&chain);
        assert!(err.contains(want), "{chain:?}: {err}");
    }
    assert_eq!(
        (d.revision(), d.state()),
        before,
        "a rejected chain changed state"
    );
}

#[test]
fn dry_run_commits_nothing() {
    let d = deployment();
    d.ok(&["ls-add", "sw0"]);
    let before = (d.revision(), d.state());
    let out = d.ok(&[
        "--dry-run",
        "ls-add",
        "a",
        "--subnet",
        "10.7.0.0/24",
        "--",
        "lsp-add",
        "a",
        "p1",
    ]);
    assert!(out.lines().any(|l| l == "put nb/switches/a"), "{out}");
    assert!(out.lines().any(|l| l == "put nb/ports/p1"), "{out}");
    let js = d.json(&["--dry-run", "ls-del", "sw0"]);
    assert!(
        js["changes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|l| l == "delete nb/switches/sw0")),
        "{js}"
    );
    // A dry run still validates everything.
    let err = d.fails(&["--dry-run", "lsp-add", "nosuch", "p1"]);
    assert!(err.contains("nosuch"), "{err}");
    assert_eq!((d.revision(), d.state()), before, "--dry-run changed state");
}

/// set/get/add/remove/clear of external_ids, then list and find, on one record of `kind`.
fn external_ids_round_trip(d: &Deployment, kind: &str, name: &str) {
    assert_eq!(
        d.ok(&[
            "set",
            kind,
            name,
            "external_ids:owner=cni",
            r#"external_ids:note="a b""#
        ]),
        ""
    );
    assert_eq!(
        d.ok(&[
            "get",
            kind,
            name,
            "external_ids",
            "external_ids:owner",
            "external_ids:note"
        ]),
        "{note=\"a b\", owner=cni}\ncni\n\"a b\"\n"
    );
    assert_eq!(
        d.ok(&["--bare", "get", kind, name, "external_ids:note"]),
        "a b\n"
    );
    d.ok(&["add", kind, name, "external_ids", "k1=v1", "{k2=v2}"]);
    d.ok(&["remove", kind, name, "external_ids", "owner", "k2=v2"]);
    assert_eq!(
        d.json(&["get", kind, name, "external_ids"]),
        serde_json::json!([{"k1": "v1", "note": "a b"}])
    );
    let err = d.fails(&["get", kind, name, "external_ids:owner"]);
    assert!(err.contains("owner"), "{err}");
    assert_eq!(
        d.ok(&["get", "--if-exists", kind, name, "external_ids:owner"]),
        ""
    );
    // list: every column in ovn-nbctl form, and find by an external_id.
    let listed = d.ok(&["list", kind, name]);
    // (OVSDB quotes strings with digits: "k1".)
    assert!(
        listed.contains("external_ids        : {\"k1\"=\"v1\", note=\"a b\"}\n"),
        "{listed}"
    );
    assert_eq!(
        d.ok(&[
            "--bare",
            "--columns=name",
            "find",
            kind,
            "external_ids:k1=v1"
        ]),
        format!("{name}\n")
    );
    assert_eq!(d.ok(&["find", kind, "external_ids:k1=nope"]), "");
    let js = d.json(&["list", kind, name]);
    assert_eq!(js["records"][0]["name"], name, "{js}");
    assert_eq!(js["records"][0]["external_ids"]["note"], "a b", "{js}");
    d.ok(&["clear", kind, name, "external_ids"]);
    assert_eq!(d.ok(&["get", kind, name, "external_ids"]), "{}\n");
    // Case-insensitive kind; unknown column and kind name themselves.
    assert_eq!(
        d.ok(&["get", &kind.to_lowercase(), name, "name"])
            .trim_matches(['"', '\n']),
        name
    );
    let err = d.fails(&["set", kind, name, "bogus=1"]);
    assert!(err.contains("bogus"), "{err}");
    let err = d.fails(&["get", kind, name, "bogus"]);
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn database_commands_on_switches_and_ports() {
    let d = deployment();
    d.ok(&[
        "ls-add",
        "sw1",
        "--subnet",
        "10.8.0.0/24",
        "--",
        "lsp-add",
        "sw1",
        "p1",
        "--",
        "lsp-add",
        "sw1",
        "p2",
    ]);
    external_ids_round_trip(&d, "Logical_Switch", "sw1");
    external_ids_round_trip(&d, "Logical_Switch_Port", "p1");

    // Sets and scalars through set/add/remove; get prints OVSDB syntax.
    d.ok(&[
        "set",
        "Logical_Switch_Port",
        "p1",
        r#"addresses=["0a:00:00:00:00:11 10.8.0.11", unknown]"#,
    ]);
    assert_eq!(
        d.ok(&["lsp-get-addresses", "p1"]),
        "0a:00:00:00:00:11 10.8.0.11\nunknown\n"
    );
    d.ok(&[
        "remove",
        "Logical_Switch_Port",
        "p1",
        "addresses",
        "unknown",
    ]);
    d.ok(&["add", "Logical_Switch_Port", "p2", "addresses", "dynamic"]);
    assert_eq!(
        d.ok(&["get", "Logical_Switch_Port", "p2", "addresses"]),
        "[dynamic]\n"
    );
    d.ok(&["set", "Logical_Switch_Port", "p2", "enabled=false"]);
    assert_eq!(d.ok(&["lsp-get-enabled", "p2"]), "disabled\n");
    assert_eq!(
        d.ok(&["get", "Logical_Switch_Port", "p2", "switch"]),
        "\"sw1\"\n"
    );
    assert_eq!(
        d.ok(&[
            "--bare",
            "--columns=name",
            "find",
            "Logical_Switch_Port",
            "addresses{>=}dynamic"
        ]),
        "p2\n"
    );
    assert_eq!(
        d.ok(&["get", "Logical_Switch", "sw1", "ports"]),
        "[\"p1\", \"p2\"]\n"
    );
    // Table and csv forms of list, with --columns.
    let t = d.ok(&[
        "-f",
        "table",
        "--columns=name,enabled",
        "list",
        "Logical_Switch_Port",
    ]);
    assert_eq!(t, "name  enabled\n\"p1\"  true\n\"p2\"  false\n", "{t}");
    let c = d.ok(&[
        "-f",
        "csv",
        "--no-headings",
        "--bare",
        "--columns=name,addresses",
        "list",
        "Logical_Switch_Port",
    ]);
    assert_eq!(c, "p1,0a:00:00:00:00:11 10.8.0.11\np2,dynamic\n", "{c}");

    // destroy: a port, then the switch (cascading to its other port).
    d.ok(&["destroy", "Logical_Switch_Port", "p1"]);
    assert_eq!(names(&d.json(&["lsp-list", "sw1"]), "ports"), ["p2"]);
    let err = d.fails(&["destroy", "Logical_Switch_Port", "p1"]);
    assert!(err.contains("p1"), "{err}");
    d.ok(&["--if-exists", "destroy", "Logical_Switch_Port", "p1"]);
    d.ok(&["destroy", "Logical_Switch", "sw1"]);
    assert_eq!(d.ok(&["list", "Logical_Switch_Port"]), "");
    assert_eq!(d.ok(&["ls-list"]), "");
}

#[test]
fn database_commands_on_chassis() {
    use weft_proto::v1::southbound_client::SouthboundClient;
    use weft_proto::v1::{Chassis, SubscribeRequest};

    let d = deployment_with(&["--lease-ttl", "2"]);
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let mut sb = rt
        .block_on(SouthboundClient::connect(d.url.clone()))
        .unwrap_or_else(|e| panic!("southbound connect: {e}"));
    let mut stream = rt
        .block_on(sb.subscribe(SubscribeRequest {
            chassis: Some(Chassis {
                name: "hv1".into(),
                encap_ip: "192.0.2.1".into(),
                encap_types: vec!["geneve".into()],
                datapath_type: "netdev".into(),
                version: "test".into(),
                ..Default::default()
            }),
        }))
        .unwrap_or_else(|e| panic!("subscribe: {e}"))
        .into_inner();
    let reader = rt.spawn(async move { while let Ok(Some(_)) = stream.message().await {} });
    let alive = wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        d.ok(&["get", "Chassis", "hv1", "alive"]) == "true\n"
    });
    assert!(alive, "hv1 not alive: {}", d.ok(&["chassis-list"]));

    external_ids_round_trip(&d, "Chassis", "hv1");
    assert_eq!(
        d.ok(&["get", "Chassis", "hv1", "encap_ip", "encap_types"]),
        "\"192.0.2.1\"\n[geneve]\n"
    );
    d.ok(&["set", "Chassis", "hv1", "external_ids:rack=r7"]);
    assert_eq!(
        d.ok(&[
            "--bare",
            "--columns=name",
            "find",
            "Chassis",
            "external_ids:rack=r7",
            "alive=true"
        ]),
        "hv1\n"
    );
    // An alive chassis cannot be destroyed; once its agent is gone and the lease ran out, it can.
    let err = d.fails(&["destroy", "Chassis", "hv1"]);
    assert!(err.contains("alive"), "{err}");
    reader.abort();
    drop(sb);
    let dead = wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        d.ok(&["get", "Chassis", "hv1", "alive"]) == "false\n"
    });
    assert!(dead, "hv1 still alive: {}", d.ok(&["chassis-list"]));
    // The registration keeps external_ids; destroy removes the record.
    assert_eq!(
        d.ok(&["--bare", "get", "Chassis", "hv1", "external_ids:rack"]),
        "r7\n"
    );
    d.ok(&["destroy", "Chassis", "hv1"]);
    assert_eq!(d.ok(&["list", "Chassis"]), "");
    d.ok(&["--if-exists", "destroy", "Chassis", "hv1"]);
}

#[test]
fn routers_and_router_ports() {
    let d = deployment();
    assert_eq!(
        d.ok(&[
            "lr-add",
            "r1",
            "--",
            "lrp-add",
            "r1",
            "lrp1",
            "0a:00:00:00:01:01",
            "10.9.0.1/24",
            "--",
            "lrp-add",
            "r1",
            "lrp2",
            "0a:00:00:00:01:02",
            "10.9.1.1/24",
            "fd00::1/64",
            "peer=lrp9",
        ]),
        "\n\n\n"
    );
    let t = d.ok(&["lr-list"]);
    assert_eq!(t, "NAME  STATE    PORTS\nr1    enabled  lrp1,lrp2\n", "{t}");
    let t = d.ok(&["lrp-list", "r1"]);
    assert!(
        t.lines()
            .nth(2)
            .is_some_and(|l| l.contains("10.9.1.1/24,fd00::1/64") && l.contains("lrp9")),
        "{t}"
    );
    let show = d.ok(&["show"]);
    assert!(
        show.contains("router r1\n    port lrp1\n        mac: \"0a:00:00:00:01:01\"\n        networks: [\"10.9.0.1/24\"]\n"),
        "{show}"
    );
    assert!(show.contains("        peer: lrp9\n"), "{show}");
    assert_eq!(d.json(&["show"])["routers"][0]["ports"][1]["name"], "lrp2");
    d.ok(&["lrp-set-enabled", "lrp1", "disabled"]);
    assert_eq!(d.ok(&["lrp-get-enabled", "lrp1"]), "disabled\n");
    assert_eq!(
        d.ok(&["get", "Logical_Router_Port", "lrp1", "enabled", "router"]),
        "false\n\"r1\"\n"
    );
    external_ids_round_trip(&d, "Logical_Router", "r1");
    external_ids_round_trip(&d, "Logical_Router_Port", "lrp2");
    d.ok(&["--may-exist", "lr-add", "r1"]);
    let err = d.fails(&["lr-add", "r1"]);
    assert!(err.contains("r1"), "{err}");
    let err = d.fails(&["lrp-add", "r9", "x", "0a:00:00:00:01:09", "10.9.9.1/24"]);
    assert!(err.contains("r9"), "{err}");
    d.ok(&["lrp-del", "lrp1"]);
    assert_eq!(names(&d.json(&["lrp-list", "r1"]), "ports"), ["lrp2"]);
    d.ok(&["--if-exists", "lrp-del", "lrp1"]);
    d.ok(&["lr-del", "r1"]);
    assert_eq!(d.ok(&["lr-list"]), "");
    let err = d.fails(&["lrp-list", "r1"]);
    assert!(err.contains("r1"), "{err}");
    d.ok(&["--if-exists", "lr-del", "r1"]);
}

#[test]
fn show_one_switch_and_list_formats() {
    let d = deployment();
    d.ok(&[
        "ls-add",
        "sw1",
        "--subnet",
        "10.10.0.0/24",
        "--",
        "ls-add",
        "sw2",
        "--",
        "lsp-add",
        "sw2",
        "q1",
    ]);
    let vni = d.ok(&["get", "Logical_Switch", "sw2", "vni"]);
    assert_eq!(
        d.ok(&["show", "sw2"]),
        format!("switch sw2 (vni {})\n    port q1 (down)\n", vni.trim())
    );
    let err = d.fails(&["show", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
    assert_eq!(d.ok(&["--bare", "--columns=name", "ls-list"]), "sw1\nsw2\n");
    assert_eq!(
        d.ok(&["--no-headings", "--columns=name,subnet", "ls-list"]),
        "sw1  10.10.0.0/24\nsw2  -\n"
    );
    let csv = d.ok(&["-f", "csv", "--columns=name,subnet", "ls-list"]);
    assert_eq!(csv, "NAME,SUBNET\nsw1,10.10.0.0/24\nsw2,\n");
    let err = d.ctl(&["--columns=bogus", "ls-list"]);
    assert_eq!(err.code, 1, "{err:?}");
    assert!(
        err.one_error_line(&["--columns=bogus"]).contains("bogus"),
        "{err:?}"
    );
}

#[test]
fn controller_address_defaults_and_usage_line() {
    // HOST without a port means 7600, from the flag and from WEFT_CONTROLLER.
    let r = Run::from(
        Command::new(weftctl_bin())
            .env("WEFT_INSECURE", "1")
            .env_remove("WEFT_CONTROLLER")
            .args(["--controller", "127.0.0.9", "ls-list"])
            .output()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.one_error_line(&[])
            .starts_with("weftctl: cannot reach controller at http://127.0.0.9:7600: "),
        "{r:?}"
    );
    let r = Run::from(
        Command::new(weftctl_bin())
            .env("WEFT_INSECURE", "1")
            .env("WEFT_CONTROLLER", "127.0.0.9")
            .arg("ls-list")
            .output()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(r.stderr.contains("http://127.0.0.9:7600"), "{r:?}");
    // With WEFT_CONTROLLER set, a usage error's usage line does not show --controller.
    let r = Run::from(
        Command::new(weftctl_bin())
            .env("WEFT_INSECURE", "1")
            .env("WEFT_CONTROLLER", "http://127.0.0.9:1")
            .arg("ls-add")
            .output()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(r.code, 2, "{r:?}");
    let usage = r
        .stderr
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap_or_default();
    assert_eq!(usage, "Usage: weftctl ls-add <SWITCH>", "{r:?}");
    // A bad WEFT_CONTROLLER is a usage error naming it.
    let r = Run::from(
        Command::new(weftctl_bin())
            .env("WEFT_INSECURE", "1")
            .env("WEFT_CONTROLLER", "ftp://x")
            .arg("ls-list")
            .output()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.one_error_line(&[]).contains("invalid WEFT_CONTROLLER"),
        "{r:?}"
    );
}

#[test]
fn completion_scripts_generate() {
    for shell in ["bash", "zsh", "fish"] {
        let r = Run::from(
            Command::new(weftctl_bin())
                .env("WEFT_INSECURE", "1")
                .env_remove("WEFT_CONTROLLER")
                .args(["completion", shell])
                .output()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(r.code, 0, "{shell}: {r:?}");
        for word in [
            "ls-add",
            "lsp-set-options",
            "lrp-add",
            "destroy",
            "Logical_Switch_Port",
            "--may-exist",
        ] {
            assert!(
                r.stdout.contains(word.trim_start_matches('-')),
                "{shell}: {word}"
            );
        }
    }
    // The bash script is valid bash and completes commands and kinds.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let script = dir.path().join("weftctl.bash");
    let out = Command::new(weftctl_bin())
        .env("WEFT_INSECURE", "1")
        .args(["completion", "bash"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&script, &out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let probe = format!(
        "source {}; COMP_WORDS=(weftctl ls-add a -- set Logical_S); COMP_CWORD=5; _weftctl; echo \"${{COMPREPLY[*]}}\"",
        script.display()
    );
    let out = Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap_or_else(|e| panic!("bash: {e}"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Logical_Switch Logical_Switch_Port\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--wait=hv` and dead chassis: skipped with a warning naming them, or with `--strict` a
/// failure naming them.
#[test]
fn wait_hv_names_dead_chassis_and_strict_fails_on_them() {
    use weft_proto::v1::southbound_client::SouthboundClient;
    use weft_proto::v1::{Chassis, SubscribeRequest};

    let d = deployment_with(&["--lease-ttl", "2"]);
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let mut sb = rt
        .block_on(SouthboundClient::connect(d.url.clone()))
        .unwrap_or_else(|e| panic!("southbound connect: {e}"));
    let stream = rt
        .block_on(sb.subscribe(SubscribeRequest {
            chassis: Some(Chassis {
                name: "hv-gone".into(),
                encap_ip: "192.0.2.7".into(),
                encap_types: vec!["geneve".into()],
                ..Default::default()
            }),
        }))
        .unwrap_or_else(|e| panic!("subscribe: {e}"))
        .into_inner();
    drop(stream);
    let dead = wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        let v = d.json(&["chassis-list"]);
        v["chassis"][0]["name"] == "hv-gone" && v["chassis"][0]["alive"] == false
    });
    assert!(dead, "hv-gone not dead: {}", d.ok(&["chassis-list"]));
    let r = d.ctl(&["--wait=hv", "ls-add", "w1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("hv-gone"),
        "{r:?}"
    );
    let r = d.ctl(&["--wait=hv", "--strict", "ls-add", "w2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("hv-gone") && r.stderr.contains("strict"),
        "{r:?}"
    );
    let r = d.ctl(&["--wait=hv", "ls-add", "w3", "--", "lsp-add", "w3", "q"]);
    assert!(r.code == 0 && r.stderr.contains("hv-gone"), "{r:?}");
}

/// Address sets: the as-* commands and the generic database commands on `Address_Set`.
#[test]
fn address_sets_round_trip() {
    let d = deployment();
    d.ok(&["as-add", "web", "10.0.0.5", "10.0.1.7/24"]);
    assert!(d.ok(&["as-list"]).contains("10.0.0.5,10.0.1.0/24"));
    d.ok(&["as-add-addresses", "web", "fd00::1"]);
    d.ok(&["as-remove-addresses", "web", "10.0.0.5"]);
    let got = d.ok(&["get", "Address_Set", "web", "addresses"]);
    assert!(
        got.contains("10.0.1.0/24") && got.contains("fd00::1") && !got.contains("10.0.0.5"),
        "{got}"
    );
    d.ok(&["set", "address_set", "web", "external_ids:owner=acl"]);
    assert_eq!(
        d.ok(&["get", "Address_Set", "web", "external_ids:owner"])
            .trim(),
        "acl"
    );
    let err = d.fails(&["as-add", "bad", "10.0.0.300"]);
    assert!(
        err.contains("addresses[0]") && err.contains("10.0.0.300"),
        "{err}"
    );
    d.ok(&["destroy", "Address_Set", "web"]);
    assert!(!d.ok(&["as-list"]).contains("web"));
}
