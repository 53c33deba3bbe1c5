//! The real `weft-cni` binary against the agent's CNI server (in-process), a real
//! weft-controller on a real etcd, a real weft-agent and a real ovsdb-server + ovs-vswitchd
//! (userspace datapath, private netns; the server creates host veth ends there).
//!
//! Covers: ADD plumbs the container netns (MAC, IP, MTU, default route via the gateway) and
//! the OVS interface (iface-id, marks) and the agent binds the port (up); CHECK passes; DEL
//! removes everything and is idempotent (twice, and for an unknown container); a logical port
//! that existed before ADD survives DEL; a failed ADD leaves no logical port behind; bad input
//! and an absent agent give CNI error JSON with the right code and exit status 1;
//! `--version`/`--help` answer locally with exit status 0.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use weft_agent::cni::{CniServerConfig, DEFAULT_AGENT_SOCKET};
use weft_testbed::etcd::Etcd;
use weft_testbed::ovs::{Ovs, OvsConfig};
use weft_testbed::process::{free_port, log_tail, wait_until, Proc, ProcSpec, WorkDir};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn weftctl(url: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(weft_testbed::find_bin("weftctl")?)
        .env("WEFT_INSECURE", "1")
        .arg("--controller")
        .arg(url)
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "weftctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The CNI server on its own runtime thread; stopped on drop.
struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(cfg: CniServerConfig) -> anyhow::Result<Server> {
        let socket = cfg.socket.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Err(e) = weft_agent::cni::serve(cfg, async {
                    let _ = rx.await;
                })
                .await
                {
                    eprintln!("CNI server: {e}");
                }
            });
        });
        anyhow::ensure!(
            wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
                socket.exists()
            }),
            "CNI socket {} never appeared",
            socket.display()
        );
        Ok(Server {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> anyhow::Result<Netns> {
        let name = unique("wcni");
        let st = Command::new("ip").args(["netns", "add", &name]).status()?;
        anyhow::ensure!(st.success(), "ip netns add {name}");
        Ok(Netns(name))
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Env {
    dir: WorkDir,
    url: String,
    socket: PathBuf,
    ovs: Ovs,
    // Dropped in reverse order of declaration: server first, then agent, controller, etcd.
    _server: Server,
    _agent: Proc,
    _controller: Proc,
    _etcd: Etcd,
}

fn setup(switch: &str, subnet: &str) -> anyhow::Result<Env> {
    let etcd = Etcd::start()?;
    let ovs = Ovs::start(OvsConfig::default())?;
    let dir = WorkDir::temp("wcni")?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let controller = ProcSpec::new(
        "controller",
        weft_testbed::find_bin("weft-controller")?,
        dir.path().join("controller.log"),
    )
    .env("WEFT_INSECURE", "1")
    .args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--etcd",
        &etcd.endpoint(),
        "--prefix",
        &format!("/{}", unique("t")),
    ])
    .spawn()?;
    anyhow::ensure!(
        wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            weftctl(&url, &["ls-list"]).is_ok()
        }),
        "controller did not come up:\n{}",
        log_tail(&dir.path().join("controller.log"), 30)
    );
    let chassis = unique("hv");
    let agent = ProcSpec::new(
        "agent",
        PathBuf::from(env!("CARGO_BIN_EXE_weft-agent")),
        dir.path().join("agent.log"),
    )
    .env("WEFT_INSECURE", "1")
    .args([
        "--chassis",
        &chassis,
        "--encap-ip",
        "192.0.2.1",
        "--controller",
        &url,
        "--ovsdb",
        &ovs.db_target(),
        "--datapath",
        "netdev",
    ])
    .arg("--ovs-rundir")
    .arg(ovs.rundir())
    .env("WEFT_LOG", "info")
    .env("NO_COLOR", "1")
    .spawn()?;
    anyhow::ensure!(
        wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            ovs.vsctl(&["br-exists", "br-int"]).is_ok()
        }),
        "agent did not create br-int:\n{}",
        log_tail(&dir.path().join("agent.log"), 30)
    );
    weftctl(&url, &["ls-add", switch, "--subnet", subnet])?;
    let socket = dir.path().join("cni.sock");
    let server = Server::start(CniServerConfig {
        socket: socket.clone(),
        controllers: vec![url.clone()],
        ovsdb: ovs.db_target(),
        bridge: "br-int".into(),
        datapath: weft_ovsdb::DatapathType::Netdev,
        host_netns: ovs.netns().map(|n| format!("/run/netns/{n}")),
        chassis: Some(chassis),
        ..CniServerConfig::defaults()
    })?;
    Ok(Env {
        dir,
        url,
        socket,
        ovs,
        _server: server,
        _agent: agent,
        _controller: controller,
        _etcd: etcd,
    })
}

struct Call<'a> {
    command: &'a str,
    container: &'a str,
    netns: Option<&'a str>,
    args: &'a str,
    conf: Value,
}

/// Runs the real plugin; returns (exit code, stdout parsed as JSON or Null when empty).
fn cni(c: &Call) -> (i32, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft-cni"));
    cmd.env_clear()
        .env("CNI_COMMAND", c.command)
        .env("CNI_CONTAINERID", c.container)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/opt/cni/bin")
        .env("CNI_ARGS", c.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(n) = c.netns {
        cmd.env("CNI_NETNS", n);
    }
    let mut child = cmd.spawn().expect("spawn weft-cni");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(c.conf.to_string().as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("weft-cni");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout not JSON ({e}): {stdout}"))
    };
    (out.status.code().unwrap_or(-1), v)
}

fn conf(switch: &str, socket: &Path, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.0.0",
        "name": "weft",
        "type": "weft-cni",
        "switch": switch,
        "agentSocket": socket.display().to_string(),
    });
    if let (Some(o), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    c
}

fn ports(url: &str, switch: &str) -> Vec<String> {
    weftctl(url, &["lsp-list", switch])
        .unwrap_or_default()
        .lines()
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn add_check_del_with_real_plugin() -> anyhow::Result<()> {
    let e = setup("pods", "10.77.0.0/24")?;
    let ns = Netns::new()?;
    let container = format!("{:016x}{}", std::process::id(), "c0ffee");
    let pod = unique("web-");
    let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=team1;K8S_POD_NAME={pod}");
    let lport = format!("team1_{pod}");
    let c = conf("pods", &e.socket, json!({"mtu": 1450}));
    let nspath = ns.path();
    let call = |command| Call {
        command,
        container: &container,
        netns: Some(&nspath),
        args: &args,
        conf: c.clone(),
    };

    let (code, r) = cni(&call("ADD"));
    assert_eq!(
        code,
        0,
        "ADD failed: {r}\nagent log:\n{}",
        log_tail(&e.dir.path().join("agent.log"), 20)
    );
    assert_eq!(r["cniVersion"], json!("1.0.0"));
    let addr = r["ips"][0]["address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(addr.starts_with("10.77.0.") && addr.ends_with("/24"), "{r}");
    assert_eq!(r["ips"][0]["gateway"], json!("10.77.0.1"));
    assert_eq!(r["ips"][0]["interface"], json!(1));
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.77.0.1"}])
    );
    assert_eq!(r["interfaces"][1]["name"], json!("eth0"));
    assert_eq!(r["interfaces"][1]["sandbox"], json!(nspath));
    let mac = r["interfaces"][1]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let host = r["interfaces"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // The container side.
    let link = ns.ip(&["addr", "show", "dev", "eth0"]);
    assert!(link.contains(&format!("link/ether {mac}")), "{link}");
    assert!(link.contains(&format!("inet {addr}")), "{link}");
    assert!(link.contains("mtu 1450") && link.contains("UP"), "{link}");
    let route = ns.ip(&["route", "show", "default"]);
    assert!(route.contains("via 10.77.0.1 dev eth0"), "{route}");

    // The OVS side, and the controller's port bound by the agent.
    let iface_id = e
        .ovs
        .vsctl(&["get", "interface", &host, "external_ids:iface-id"])?;
    assert_eq!(iface_id.trim().trim_matches('"'), lport);
    let owner = e
        .ovs
        .vsctl(&["get", "interface", &host, "external_ids:weft-cni"])?;
    assert_eq!(owner.trim().trim_matches('"'), container);
    let dynamic = weftctl(&e.url, &["show"])?;
    assert!(dynamic.contains(&mac), "{dynamic}");
    // ADD returned only once the port was up (its flows installed).
    assert_eq!(weftctl(&e.url, &["lsp-get-up", &lport])?.trim(), "up");

    // A second ADD for the same container and interface: the same port and address.
    let added = r.clone();
    let (code, again) = cni(&call("ADD"));
    assert_eq!(code, 0, "repeated ADD: {again}");
    assert_eq!(
        again["ips"], added["ips"],
        "repeated ADD changed the address"
    );
    assert_eq!(again["interfaces"], added["interfaces"]);
    assert_eq!(
        ports(&e.url, "pods")
            .iter()
            .filter(|l| l.contains(&lport))
            .count(),
        1
    );

    // CHECK with the ADD result as prevResult passes and prints nothing.
    let check = |prev: Value| {
        let mut c = call("CHECK");
        c.conf["prevResult"] = prev;
        cni(&c)
    };
    let (code, r) = check(added.clone());
    assert_eq!((code, &r), (0, &Value::Null), "CHECK: {r}");
    // A prevResult that disagrees with the interface fails (102); none at all is refused (7).
    let mut wrong = added.clone();
    wrong["ips"][0]["address"] = json!("10.77.0.250/24");
    let (code, r) = check(wrong);
    assert_eq!((code, r["code"].clone()), (1, json!(102)), "{r}");
    assert!(
        r["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("10.77.0.250/24")
            || r["msg"].as_str().unwrap_or_default().contains(&addr),
        "{r}"
    );
    let mut wrong = added.clone();
    wrong["interfaces"][1]["mac"] = json!("0a:00:00:00:99:99");
    let (code, r) = check(wrong);
    assert_eq!((code, r["code"].clone()), (1, json!(102)), "{r}");
    let (code, r) = cni(&call("CHECK"));
    assert_eq!((code, r["code"].clone()), (1, json!(7)), "{r}");
    assert!(
        r["msg"].as_str().unwrap_or_default().contains("prevResult"),
        "{r}"
    );

    // DEL removes everything; a second DEL (as CRI sends) is a no-op.
    for round in 0..2 {
        let (code, r) = cni(&call("DEL"));
        assert_eq!((code, &r), (0, &Value::Null), "DEL round {round}: {r}");
    }
    assert!(ns.ip(&["link", "show", "dev", "eth0"]).is_empty());
    assert!(e.ovs.vsctl(&["get", "interface", &host, "name"]).is_err());
    assert!(!ports(&e.url, "pods").iter().any(|l| l.contains(&lport)));
    // CHECK after DEL fails with a CNI error.
    let mut c_after = call("CHECK");
    c_after.conf["prevResult"] = added.clone();
    let (code, r) = cni(&c_after);
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["code"], json!(102));

    // DEL of a container never added, without a netns, succeeds.
    let (code, r) = cni(&Call {
        command: "DEL",
        container: "neveradded1",
        netns: None,
        args: "",
        conf: c.clone(),
    });
    assert_eq!((code, &r), (0, &Value::Null), "{r}");
    Ok(())
}

#[test]
fn existing_ports_survive_del_and_failed_add_cleans_up() -> anyhow::Result<()> {
    let e = setup("net2", "10.78.0.0/24")?;
    let c = conf("net2", &e.socket, json!({}));

    // A port created beforehand (by an operator) is used but not deleted by DEL.
    let keep = unique("keep");
    weftctl(&e.url, &["lsp-add", "net2", &keep])?;
    weftctl(&e.url, &["lsp-set-addresses", &keep, "dynamic"])?;
    let ns = Netns::new()?;
    let nspath = ns.path();
    let args = format!("WEFT_PORT={keep}");
    let call = |command| Call {
        command,
        container: "keepcontainer1",
        netns: Some(&nspath),
        args: &args,
        conf: c.clone(),
    };
    let (code, r) = cni(&call("ADD"));
    assert_eq!(code, 0, "ADD: {r}");
    assert!(ns.ip(&["addr", "show", "dev", "eth0"]).contains("mtu 1400"));
    let (code, r) = cni(&call("DEL"));
    assert_eq!(code, 0, "DEL: {r}");
    assert!(ports(&e.url, "net2").iter().any(|l| l.contains(&keep)));

    // ADD into a namespace that does not exist fails and leaves no logical port.
    let before = ports(&e.url, "net2");
    let (code, r) = cni(&Call {
        command: "ADD",
        container: "ghost1",
        netns: Some("/run/netns/weft-cni-does-not-exist"),
        args: "K8S_POD_NAMESPACE=x;K8S_POD_NAME=ghost",
        conf: c.clone(),
    });
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["code"], json!(4), "{r}");
    assert!(
        r["msg"].as_str().is_some_and(|m| m.contains("CNI_NETNS")),
        "{r}"
    );
    assert_eq!(ports(&e.url, "net2"), before);

    // A switch that does not exist: a clear controller error.
    let (code, r) = cni(&Call {
        command: "ADD",
        container: "nosw1",
        netns: Some(&nspath),
        args: "",
        conf: conf("nosuchswitch", &e.socket, json!({})),
    });
    assert_eq!(code, 1);
    assert!(
        r["msg"]
            .as_str()
            .is_some_and(|m| m.contains("nosuchswitch")),
        "{r}"
    );
    Ok(())
}

/// Refused ADDs change nothing: a CNI_NETNS that is the agent's or the host's namespace,
/// not a network namespace, or no namespace at all; a WEFT_PORT another live container's
/// VIF uses. No logical port appears, the host's routes and the other pod stay as they were.
#[test]
fn unsafe_namespaces_and_ports_in_use_are_refused() -> anyhow::Result<()> {
    let e = setup("net3", "10.79.0.0/24")?;
    let c = conf("net3", &e.socket, json!({}));
    let routes = || {
        String::from_utf8_lossy(
            &Command::new("ip")
                .args(["route", "show"])
                .output()
                .expect("ip route")
                .stdout,
        )
        .into_owned()
    };
    let host_routes = routes();
    let before = ports(&e.url, "net3");
    for (netns, reason) in [
        // PID 1's namespace: refused as the host's, or (without the right to open
        // another process's namespace, as in some sandboxes) as one it cannot open.
        ("/proc/1/ns/net", "network namespace of its own|cannot open"),
        ("/proc/self/ns/net", "network namespace of its own"),
        ("/proc/self/ns/mnt", "not a network namespace"),
        ("/etc/hostname", "not a network namespace"),
    ] {
        let (code, r) = cni(&Call {
            command: "ADD",
            container: "hostile1",
            netns: Some(netns),
            args: "WEFT_PORT=hostile",
            conf: c.clone(),
        });
        assert_eq!(code, 1, "ADD into {netns} was not refused: {r}");
        assert_eq!(r["code"], json!(4), "{netns}: {r}");
        let msg = r["msg"].as_str().unwrap_or_default();
        assert!(
            msg.contains("CNI_NETNS")
                && msg.contains(netns)
                && reason.split('|').any(|r| msg.contains(r)),
            "{netns}: {r}"
        );
    }
    assert_eq!(
        ports(&e.url, "net3"),
        before,
        "a refused ADD created a port"
    );
    assert_eq!(
        routes(),
        host_routes,
        "a refused ADD changed the host's routes"
    );

    // Pod A takes WEFT_PORT=shared; pod B asking for the same port is refused.
    let (a, b) = (Netns::new()?, Netns::new()?);
    let (apath, bpath) = (a.path(), b.path());
    let call = |command, container, netns| Call {
        command,
        container,
        netns: Some(netns),
        args: "WEFT_PORT=shared",
        conf: c.clone(),
    };
    let (code, a_result) = cni(&call("ADD", "sharecontainera", &apath));
    assert_eq!(code, 0, "ADD A: {a_result}");
    let a_addr = a.ip(&["addr", "show", "dev", "eth0"]);
    let (code, r) = cni(&call("ADD", "sharecontainerb", &bpath));
    assert_eq!(code, 1, "a second ADD of port shared was not refused: {r}");
    assert_eq!(r["code"], json!(4), "{r}");
    let msg = r["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("WEFT_PORT=shared")
            && msg.contains("already bound")
            && msg.contains("sharecontainera"),
        "{r}"
    );
    assert!(
        !b.ip(&["link", "show"]).contains("eth0"),
        "the refused ADD touched namespace B"
    );
    // A is intact: same address, CHECK passes.
    assert_eq!(a.ip(&["addr", "show", "dev", "eth0"]), a_addr);
    let mut check_a = call("CHECK", "sharecontainera", &apath);
    check_a.conf["prevResult"] = a_result.clone();
    let (code, r) = cni(&check_a);
    assert_eq!(code, 0, "CHECK A after the refused ADD: {r}");
    // Once A is gone, B may take the port.
    let (code, r) = cni(&call("DEL", "sharecontainera", &apath));
    assert_eq!(code, 0, "DEL A: {r}");
    let (code, r) = cni(&call("ADD", "sharecontainerb", &bpath));
    assert_eq!(code, 0, "ADD B after A's DEL: {r}");
    let (code, r) = cni(&call("DEL", "sharecontainerb", &bpath));
    assert_eq!(code, 0, "DEL B: {r}");
    Ok(())
}

/// Input errors are answered by the plugin alone (no agent needed).
#[test]
fn plugin_input_errors_and_version() {
    let sock = PathBuf::from("/nonexistent/weft-cni-test.sock");
    let (code, r) = cni(&Call {
        command: "VERSION",
        container: "",
        netns: None,
        args: "",
        conf: json!({"cniVersion": "0.4.0"}),
    });
    assert_eq!(code, 0);
    assert_eq!(r["cniVersion"], json!("0.4.0"));
    assert!(r["supportedVersions"]
        .as_array()
        .is_some_and(|v| v.contains(&json!("1.0.0"))));

    let base = Call {
        command: "ADD",
        container: "abc1",
        netns: Some("/run/netns/x"),
        args: "",
        conf: conf("s", &sock, json!({})),
    };
    let mut no_switch = conf("s", &sock, json!({}));
    if let Some(o) = no_switch.as_object_mut() {
        o.remove("switch");
    }
    let cases: Vec<(Call, u64, &str)> = vec![
        (
            Call {
                conf: no_switch,
                ..base_clone(&base)
            },
            7,
            "switch",
        ),
        (
            Call {
                conf: json!({"cniVersion": "9.9.9", "name": "n", "type": "weft-cni", "switch": "s"}),
                ..base_clone(&base)
            },
            1,
            "9.9.9",
        ),
        (
            Call {
                command: "FROB",
                ..base_clone(&base)
            },
            4,
            "CNI_COMMAND",
        ),
        (
            Call {
                args: "novalue",
                ..base_clone(&base)
            },
            4,
            "CNI_ARGS",
        ),
        (
            Call {
                netns: None,
                ..base_clone(&base)
            },
            4,
            "CNI_NETNS",
        ),
        (base_clone(&base), 11, "/nonexistent/weft-cni-test.sock"),
    ];
    for (call, want, needle) in cases {
        let (code, r) = cni(&call);
        assert_eq!(code, 1, "{r}");
        assert_eq!(r["code"], json!(want), "{r}");
        assert!(
            r["msg"].as_str().is_some_and(|m| m.contains(needle)),
            "{needle} not in {r}"
        );
        assert!(r["cniVersion"].is_string(), "{r}");
    }
    // Garbage on stdin.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft-cni"));
    let out = cmd
        .env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "x1")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", "/run/netns/x")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["code"], json!(6));
    assert_eq!(DEFAULT_AGENT_SOCKET, "/var/run/weft/cni.sock");
}

/// `weft-cni --version`/`-V` prints the version and `--help`/`-h` a usage, exit 0, without
/// reading stdin; any other invocation without CNI_COMMAND is still a CNI error (exit 1).
#[test]
fn version_and_help_flags() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weft-cni"))
            .env_clear()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run weft-cni")
    };
    let want = format!("weft-cni {}\n", env!("CARGO_PKG_VERSION"));
    for flag in ["--version", "-V"] {
        let out = run(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{flag}");
        assert!(out.stderr.is_empty(), "{flag}: {out:?}");
    }
    for flag in ["--help", "-h"] {
        let out = run(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("CNI_COMMAND"), "{flag}: {text}");
        assert!(text.contains("--version"), "{flag}: {text}");
    }
    // No CNI_COMMAND and no (or an unknown) flag: the CNI error object, exit 1, as before.
    for args in [&[][..], &["--bogus"][..], &["--version", "x"][..]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("CNI error JSON");
        assert!(v["code"].is_u64(), "{args:?}: {v}");
        assert!(
            v["msg"].as_str().is_some_and(|m| m.contains("CNI_COMMAND")),
            "{args:?}: {v}"
        );
    }
}

fn base_clone<'a>(c: &Call<'a>) -> Call<'a> {
    Call {
        command: c.command,
        container: c.container,
        netns: c.netns,
        args: c.args,
        conf: c.conf.clone(),
    }
}

/// podman 4.3 with its CNI backend (the recipe in DESIGN §5) calling the real plugin. Without
/// podman, runc or /bin/busybox it fails naming them, unless WEFT_ALLOW_SKIP=1 (then it skips).
#[test]
fn podman_run_uses_weft_cni() -> anyhow::Result<()> {
    let how = "apt-get install -y podman containernetworking-plugins runc busybox-static, \
               or run scripts/setup.sh";
    let mut missing = weft_testbed::skip::missing_tools(&[("podman", how), ("runc", how)]);
    if !Path::new("/bin/busybox").is_file() {
        missing.push(format!("/bin/busybox not found ({how})"));
    }
    if !weft_testbed::skip::require("podman_run_uses_weft_cni", &missing) {
        return Ok(());
    }
    let e = setup("podnet", "10.79.0.0/24")?;
    let state = e.dir.path().join("podman");
    let podman = Podman::new(&state, &e.socket)?;
    podman.import_busybox()?;

    let name = unique("bb");
    let out = podman.run(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        "weftnet",
        "localhost/busybox",
        "sh",
        "-c",
        "ip addr show dev eth0; ip route",
    ])?;
    assert!(out.contains("inet 10.79.0."), "{out}");
    assert!(out.contains("default via 10.79.0.1"), "{out}");
    assert!(out.contains("mtu 1400"), "{out}");
    // --rm ran DEL: no logical port and no VIF left.
    assert!(
        !ports(&e.url, "podnet").iter().any(|l| l.contains("cni-")),
        "{:?}",
        ports(&e.url, "podnet")
    );
    let vifs = e.ovs.vsctl(&["--columns=name", "list", "interface"])?;
    assert!(
        !vifs.contains("weft0") && !vifs.contains("\"weft"),
        "{vifs}"
    );
    Ok(())
}

/// A podman configured per the recipe, all state under one directory (removed on drop).
struct Podman {
    state: PathBuf,
    env: Vec<(String, String)>,
}

impl Podman {
    fn new(state: &Path, agent_socket: &Path) -> anyhow::Result<Podman> {
        for d in ["cni-bin", "cni.d", "tmp", "rootfs/bin"] {
            std::fs::create_dir_all(state.join(d))?;
        }
        let s = state.display().to_string();
        std::fs::write(
            state.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
                 netns = \"bridge\"\nlog_driver = \"k8s-file\"\n\n[network]\n\
                 network_backend = \"cni\"\ncni_plugin_dirs = [\"{s}/cni-bin\", \"/usr/lib/cni\"]\n\
                 network_config_dir = \"{s}/cni.d\"\n\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\nevents_logfile_path = \"{s}/events.log\"\n\
                 runtime = \"runc\"\ntmp_dir = \"{s}/tmp\"\n"
            ),
        )?;
        std::fs::write(
            state.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{s}/storage\"\nrunroot = \"{s}/runroot\"\n"
            ),
        )?;
        std::fs::copy(
            env!("CARGO_BIN_EXE_weft-cni"),
            state.join("cni-bin/weft-cni"),
        )?;
        // The shipped conflist (weft-cni, then the standard portmap plugin), pointed at this
        // test's switch and agent.
        let mut conflist: Value =
            serde_json::from_str(include_str!("../../deploy/cni/10-weft.conflist"))?;
        conflist["name"] = json!("weftnet");
        conflist["plugins"][0]["switch"] = json!("podnet");
        conflist["plugins"][0]["agentSocket"] = json!(agent_socket.display().to_string());
        std::fs::write(
            state.join("cni.d/weftnet.conflist"),
            serde_json::to_vec_pretty(&conflist)?,
        )?;
        Ok(Podman {
            state: state.to_path_buf(),
            env: vec![
                ("CONTAINERS_CONF".into(), format!("{s}/containers.conf")),
                (
                    "CONTAINERS_STORAGE_CONF".into(),
                    format!("{s}/storage.conf"),
                ),
            ],
        })
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("podman")
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "podman {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `localhost/busybox` from /bin/busybox and a few applet links, without a registry.
    fn import_busybox(&self) -> anyhow::Result<()> {
        let root = self.state.join("rootfs");
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
        for applet in ["sh", "ip", "ls", "cat", "sleep", "ping"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
        }
        let tar = self.state.join("busybox.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()?;
        anyhow::ensure!(st.success(), "tar failed");
        self.run(&[
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            &tar.display().to_string(),
            "localhost/busybox",
        ])?;
        Ok(())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--all", "--force"]);
        let _ = self.run(&["system", "reset", "--force"]);
    }
}

/// The wiring: `weft-agent --cni-socket` serves the plugin. OVS runs in our namespace here
/// (the agent creates host veth ends in its own), so the bridge gets a name unique on the
/// machine instead of br-int.
#[test]
fn agent_binary_serves_cni() -> anyhow::Result<()> {
    let etcd = Etcd::start()?;
    let ovs = Ovs::start(OvsConfig {
        isolate: false,
        ..OvsConfig::default()
    })?;
    let bridge = format!("brc{}", std::process::id() % 1_000_000);
    let dir = WorkDir::temp("wcnia")?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let _controller = ProcSpec::new(
        "controller",
        weft_testbed::find_bin("weft-controller")?,
        dir.path().join("controller.log"),
    )
    .env("WEFT_INSECURE", "1")
    .args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--etcd",
        &etcd.endpoint(),
        "--prefix",
        &format!("/{}", unique("t")),
    ])
    .spawn()?;
    anyhow::ensure!(
        wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            weftctl(&url, &["ls-list"]).is_ok()
        }),
        "controller did not come up"
    );
    weftctl(&url, &["ls-add", "wired", "--subnet", "10.80.0.0/24"])?;
    let socket = dir.path().join("agent-cni.sock");
    let _agent = ProcSpec::new(
        "agent",
        PathBuf::from(env!("CARGO_BIN_EXE_weft-agent")),
        dir.path().join("agent.log"),
    )
    .env("WEFT_INSECURE", "1")
    .args([
        "--chassis",
        &unique("hv"),
        "--encap-ip",
        "192.0.2.1",
        "--controller",
        &url,
        "--ovsdb",
        &ovs.db_target(),
        "--datapath",
        "netdev",
        "--bridge",
        &bridge,
    ])
    .arg("--ovs-rundir")
    .arg(ovs.rundir())
    .arg("--cni-socket")
    .arg(&socket)
    .env("WEFT_LOG", "info")
    .env("NO_COLOR", "1")
    .spawn()?;
    anyhow::ensure!(
        wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            socket.exists()
        }),
        "agent never opened its CNI socket:\n{}",
        log_tail(&dir.path().join("agent.log"), 30)
    );
    let ns = Netns::new()?;
    let nspath = ns.path();
    let pod = unique("p");
    let args = format!("K8S_POD_NAMESPACE=wired;K8S_POD_NAME={pod}");
    let call = |command| Call {
        command,
        container: "wiredcontainer1",
        netns: Some(&nspath),
        args: &args,
        conf: conf("wired", &socket, json!({})),
    };
    let (code, r) = cni(&call("ADD"));
    assert_eq!(
        code,
        0,
        "ADD: {r}\n{}",
        log_tail(&dir.path().join("agent.log"), 30)
    );
    let lport = format!("wired_{pod}");
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            weftctl(&url, &["lsp-get-up", &lport]).is_ok_and(|o| o.trim() == "up")
        }),
        "{lport} never came up:\n{}",
        log_tail(&dir.path().join("agent.log"), 30)
    );
    let host = r["interfaces"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (code, r) = cni(&call("DEL"));
    assert_eq!(code, 0, "DEL: {r}");
    assert!(!Path::new("/sys/class/net").join(&host).exists());
    assert!(!ports(&url, "wired").iter().any(|l| l.contains(&lport)));
    Ok(())
}

/// Static addresses through the real plugin: `IP=`/`MAC=` in CNI_ARGS and
/// `runtimeConfig.ips`/`mac`; a malformed, outside-the-subnet or taken address is refused
/// with the right code and leaves nothing behind; `dns` from the config is in the result; bad
/// `portMappings` entries are refused before anything changes.
#[test]
fn static_addresses_and_bad_requests() -> anyhow::Result<()> {
    let e = setup("statics", "10.81.0.0/24")?;
    let c = conf(
        "statics",
        &e.socket,
        json!({"dns": {"nameservers": ["10.81.0.53"], "search": ["example.test"]}}),
    );
    let (a, b) = (Netns::new()?, Netns::new()?);
    let (apath, bpath) = (a.path(), b.path());
    let call = |command, container, netns, args| Call {
        command,
        container,
        netns: Some(netns),
        args,
        conf: c.clone(),
    };
    // IP= and MAC= from CNI_ARGS (podman --ip / --mac-address).
    let (code, r) = cni(&call(
        "ADD",
        "statica",
        &apath,
        "IgnoreUnknown=1;IP=10.81.0.50;MAC=0a:58:11:22:33:44",
    ));
    assert_eq!(code, 0, "ADD with IP=/MAC=: {r}");
    assert_eq!(r["ips"][0]["address"], json!("10.81.0.50/24"));
    assert_eq!(r["interfaces"][1]["mac"], json!("0a:58:11:22:33:44"));
    assert_eq!(
        r["dns"],
        json!({"nameservers": ["10.81.0.53"], "search": ["example.test"]})
    );
    let link = a.ip(&["addr", "show", "dev", "eth0"]);
    assert!(
        link.contains("inet 10.81.0.50/24") && link.contains("0a:58:11:22:33:44"),
        "{link}"
    );
    // Repeating it is the same attachment.
    let (code, again) = cni(&call(
        "ADD",
        "statica",
        &apath,
        "IgnoreUnknown=1;IP=10.81.0.50;MAC=0a:58:11:22:33:44",
    ));
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["ips"], r["ips"]);

    let snapshot = |e: &Env| -> anyhow::Result<(Vec<String>, String)> {
        Ok((
            ports(&e.url, "statics"),
            e.ovs.vsctl(&["--columns=name", "list", "interface"])?,
        ))
    };
    let before = snapshot(&e)?;
    let refused = |args: &str, extra: Value, want: u64, words: &[&str]| -> anyhow::Result<()> {
        let mut cl = Call {
            command: "ADD",
            container: "staticb",
            netns: Some(&bpath),
            args,
            conf: c.clone(),
        };
        if let (Some(o), Some(x)) = (cl.conf.as_object_mut(), extra.as_object()) {
            for (k, v) in x {
                o.insert(k.clone(), v.clone());
            }
        }
        let (code, r) = cni(&cl);
        assert_eq!(
            (code, r["code"].clone()),
            (1, json!(want)),
            "{args} {extra}: {r}"
        );
        let msg = r["msg"].as_str().unwrap_or_default();
        for w in words {
            assert!(msg.contains(w), "{args} {extra}: {w:?} not in {msg}");
        }
        assert_eq!(
            snapshot(&e)?,
            before,
            "{args} {extra} left something behind"
        );
        assert!(
            !b.ip(&["link", "show"]).contains("eth0"),
            "{args}: namespace B touched"
        );
        Ok(())
    };
    refused(
        "IP=10.81.0.300",
        json!({}),
        4,
        &["CNI_ARGS", "IP=10.81.0.300"],
    )?;
    refused(
        "IP=10.99.0.5",
        json!({}),
        4,
        &["IP=10.99.0.5", "outside subnet"],
    )?;
    refused("IP=10.81.0.1", json!({}), 4, &["gateway"])?;
    refused(
        "IP=10.81.0.50",
        json!({}),
        104,
        &["10.81.0.50", "taken by logical port"],
    )?;
    refused(
        "MAC=0a:58:11:22:33:44",
        json!({}),
        104,
        &["0a:58:11:22:33:44", "taken"],
    )?;
    refused(
        "MAC=01:00:5e:00:00:01",
        json!({}),
        4,
        &["MAC=01:00:5e:00:00:01", "multicast"],
    )?;
    refused(
        "",
        json!({"runtimeConfig": {"ips": ["10.99.0.5/24"]}}),
        7,
        &["runtimeConfig.ips", "outside subnet"],
    )?;
    refused(
        "",
        json!({"runtimeConfig": {"ips": "10.81.0.5"}}),
        7,
        &["runtimeConfig.ips"],
    )?;
    refused(
        "",
        json!({"runtimeConfig": {"mac": 5}}),
        7,
        &["runtimeConfig.mac"],
    )?;
    refused(
        "",
        json!({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}}),
        7,
        &["portMappings", "hostPort"],
    )?;
    refused(
        "",
        json!({"runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "icmp"}]}}),
        7,
        &["protocol"],
    )?;
    refused(
        "",
        json!({"dns": {"nameservers": ["not-an-ip"]}}),
        7,
        &["dns", "nameservers"],
    )?;

    // runtimeConfig.ips (the ips capability) without a MAC: the MAC is derived from the IP.
    let mut cl = call("ADD", "staticb", &bpath, "");
    cl.conf["runtimeConfig"] = json!({"ips": ["10.81.0.60/24"]});
    let (code, r) = cni(&cl);
    assert_eq!(code, 0, "ADD with runtimeConfig.ips: {r}");
    assert_eq!(r["ips"][0]["address"], json!("10.81.0.60/24"));
    assert_eq!(r["interfaces"][1]["mac"], json!("0a:58:0a:51:00:3c"));
    // A MAC alone: the IP is allocated, the port gets that MAC.
    let cn = Netns::new()?;
    let cpath = cn.path();
    let (code, r) = cni(&call("ADD", "staticc", &cpath, "MAC=0a:58:00:00:77:77"));
    assert_eq!(code, 0, "ADD with MAC= alone: {r}");
    assert_eq!(r["interfaces"][1]["mac"], json!("0a:58:00:00:77:77"));
    assert!(cn
        .ip(&["link", "show", "eth0"])
        .contains("0a:58:00:00:77:77"));
    for (cid, p) in [
        ("statica", &apath),
        ("staticb", &bpath),
        ("staticc", &cpath),
    ] {
        let (code, r) = cni(&call("DEL", cid, p, ""));
        assert_eq!(code, 0, "DEL {cid}: {r}");
    }
    assert!(
        !ports(&e.url, "statics")
            .iter()
            .any(|l| l.starts_with("cni-")),
        "{:?}",
        ports(&e.url, "statics")
    );
    Ok(())
}

/// podman 4.3's `--ip` and `--mac-address` reach the port through the real plugin.
#[test]
fn podman_ip_and_mac_address() -> anyhow::Result<()> {
    let how = "apt-get install -y podman containernetworking-plugins runc busybox-static, \
               or run scripts/setup.sh";
    let mut missing = weft_testbed::skip::missing_tools(&[("podman", how), ("runc", how)]);
    if !Path::new("/bin/busybox").is_file() {
        missing.push(format!("/bin/busybox not found ({how})"));
    }
    if !weft_testbed::skip::require("podman_ip_and_mac_address", &missing) {
        return Ok(());
    }
    let e = setup("podnet", "10.79.0.0/24")?;
    let state = e.dir.path().join("podman");
    let podman = Podman::new(&state, &e.socket)?;
    podman.import_busybox()?;
    let out = podman.run(&[
        "run",
        "--rm",
        "--network",
        "weftnet",
        "--ip",
        "10.79.0.50",
        "--mac-address",
        "0a:58:0a:4f:00:99",
        "localhost/busybox",
        "sh",
        "-c",
        "ip addr show dev eth0",
    ])?;
    assert!(out.contains("inet 10.79.0.50/24"), "{out}");
    assert!(out.contains("link/ether 0a:58:0a:4f:00:99"), "{out}");
    // An address outside the switch's subnet is refused naming it, and nothing is left.
    let out = Command::new("podman")
        .args([
            "run",
            "--rm",
            "--network",
            "weftnet",
            "--ip",
            "10.99.0.50",
            "localhost/busybox",
            "true",
        ])
        .envs(podman.env.iter().map(|(k, v)| (k, v)))
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "podman --ip outside the subnet succeeded"
    );
    assert!(err.contains("10.99.0.50"), "{err}");
    assert!(!ports(&e.url, "podnet").iter().any(|l| l.contains("cni-")));
    Ok(())
}

/// `podman run -p HOST:CONTAINER` through the shipped conflist: the chained standard `portmap`
/// plugin gets the `portMappings` capability and installs its DNAT rule to the address
/// weft-cni gave the pod, and removes it with the container. (Reaching the mapped port from
/// the host needs host→pod routing, the management port of the routing work.)
#[test]
fn podman_publish_goes_to_portmap() -> anyhow::Result<()> {
    let how =
        "apt-get install -y podman containernetworking-plugins runc busybox-static iptables, \
               or run scripts/setup.sh";
    let mut missing =
        weft_testbed::skip::missing_tools(&[("podman", how), ("runc", how), ("iptables", how)]);
    if !Path::new("/bin/busybox").is_file() {
        missing.push(format!("/bin/busybox not found ({how})"));
    }
    if !Path::new("/usr/lib/cni/portmap").is_file() {
        missing.push(format!("/usr/lib/cni/portmap not found ({how})"));
    }
    if !weft_testbed::skip::require("podman_publish_goes_to_portmap", &missing) {
        return Ok(());
    }
    let e = setup("podnet", "10.79.0.0/24")?;
    let state = e.dir.path().join("podman");
    let podman = Podman::new(&state, &e.socket)?;
    podman.import_busybox()?;
    let host_port = 20000 + (std::process::id() % 20000);
    let name = unique("pm");
    let publish = format!("{host_port}:80");
    podman.run(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "weftnet",
        "-p",
        &publish,
        "--ip",
        "10.79.0.77",
        "localhost/busybox",
        "sleep",
        "60",
    ])?;
    let nat = || {
        Command::new("iptables")
            .args(["-w", "-t", "nat", "-S"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let rules = nat();
    let dnat = rules
        .lines()
        .find(|l| l.contains(&format!("--dport {host_port}")) && l.contains("10.79.0.77:80"));
    assert!(
        dnat.is_some(),
        "no portmap DNAT to 10.79.0.77:80 for {host_port}:\n{rules}"
    );
    podman.run(&["rm", "-f", &name])?;
    let rules = nat();
    assert!(
        !rules.contains("10.79.0.77:80"),
        "portmap rule left after the container went:\n{rules}"
    );
    Ok(())
}
