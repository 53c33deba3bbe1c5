//! weft-agent against a real ovsdb-server + ovs-vswitchd (userspace datapath, private netns)
//! and a real weft-controller (in-memory store; the etcd path is covered by the controller's
//! own tests). The agent runs in the root namespace and reaches OVS over its unix sockets.
//!
//! Covers: bridge and tunnel setup idempotent across agent restarts; flows installed for a
//! bound VIF; an agent restart changes and removes nothing (watched with `ovs-ofctl monitor`),
//! and keeps the conntrack zones (br-int `external_ids:ct-zone-*`), the meters and the Geneve
//! TLV map; a hand-deleted flow and a hand-deleted or altered meter come back at the next
//! resync (meters installed, diffed and read back); the port is reported up.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use weft_testbed::ovs::{Ovs, OvsConfig};
use weft_testbed::process::{free_port, wait_until, Proc, ProcSpec, WorkDir};

struct Setup {
    ovs: Ovs,
    dir: WorkDir,
    controller_url: String,
    _controller: Proc,
    agent_spec: ProcSpec,
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

fn setup(resync_secs: u32) -> anyhow::Result<Setup> {
    let ovs = Ovs::start(OvsConfig::default())?;
    let dir = WorkDir::temp("wagt")?;
    let port = free_port()?;
    let controller_url = format!("http://127.0.0.1:{port}");
    let controller = ProcSpec::new(
        "controller",
        weft_testbed::find_bin("weft-controller")?,
        dir.path().join("controller.log"),
    )
    .env("WEFT_INSECURE", "1")
    .args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--store",
        "memory",
    ])
    .spawn()?;
    anyhow::ensure!(
        wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            weftctl(&controller_url, &["ls-list"]).is_ok()
        }),
        "controller did not come up"
    );
    let agent_spec = ProcSpec::new(
        "agent",
        PathBuf::from(env!("CARGO_BIN_EXE_weft-agent")),
        dir.path().join("agent.log"),
    )
    .env("WEFT_INSECURE", "1")
    .args([
        "--chassis",
        "hv1",
        "--encap-ip",
        "192.0.2.1",
        "--encap",
        "geneve,vxlan",
        "--controller",
        &controller_url,
        "--ovsdb",
        &ovs.db_target(),
        "--datapath",
        "netdev",
        "--resync-interval",
        &resync_secs.to_string(),
    ])
    .arg("--ovs-rundir")
    .arg(ovs.rundir())
    .env("WEFT_LOG", "weft_agent=debug,info")
    .env("NO_COLOR", "1");
    Ok(Setup {
        ovs,
        dir,
        controller_url,
        _controller: controller,
        agent_spec,
    })
}

fn flows(ovs: &Ovs) -> Vec<String> {
    let out = ovs
        .ofctl(&["-O", "OpenFlow15", "--no-stats", "dump-flows", "br-int"])
        .unwrap_or_default();
    let mut v: Vec<String> = out
        .lines()
        .filter(|l| l.contains("cookie=") || l.contains("priority="))
        .map(|l| l.trim().to_string())
        .collect();
    v.sort();
    v
}

fn meters(ovs: &Ovs) -> String {
    ovs.ofctl(&["-O", "OpenFlow15", "dump-meters", "br-int"])
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("OFPST_METER_CONFIG"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Creates sw0 with ports p1 (local VIF) and p2 (no VIF) and waits until p1 is up.
fn bind_one_port(s: &Setup) -> anyhow::Result<()> {
    let url = &s.controller_url;
    weftctl(
        url,
        &["ls-add", "sw0", "--subnet", "10.0.0.0/24", "--vni", "77"],
    )?;
    weftctl(url, &["lsp-add", "sw0", "p1"])?;
    weftctl(
        url,
        &["lsp-set-addresses", "p1", "0a:00:00:00:00:02 10.0.0.2"],
    )?;
    weftctl(url, &["lsp-add", "sw0", "p2"])?;
    weftctl(
        url,
        &["lsp-set-addresses", "p2", "0a:00:00:00:00:03 10.0.0.3"],
    )?;
    s.ovs.vsctl(&[
        "add-port",
        "br-int",
        "vif1",
        "--",
        "set",
        "interface",
        "vif1",
        "type=internal",
        "external_ids:iface-id=p1",
    ])?;
    anyhow::ensure!(
        wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            weftctl(url, &["lsp-get-up", "p1"]).is_ok_and(|o| o.trim() == "up")
        }),
        "p1 never came up; agent log:\n{}",
        weft_testbed::process::log_tail(&s.dir.path().join("agent.log"), 40)
    );
    weftctl(url, &["--wait=hv", "--timeout", "20", "sync"])?;
    Ok(())
}

/// `ovs-ofctl monitor br-int watch:` prints every flow added, modified or deleted.
fn start_monitor(ovs: &Ovs, out: &std::path::Path) -> anyhow::Result<Child> {
    let file = std::fs::File::create(out)?;
    let mut cmd = Command::new("ovs-ofctl");
    cmd.env("OVS_RUNDIR", ovs.rundir())
        .args(["monitor", "br-int", "watch:!initial"])
        .stdout(file)
        .stderr(Stdio::null());
    if let Some(ns) = ovs.netns() {
        let mut c = Command::new("ip");
        c.env("OVS_RUNDIR", ovs.rundir())
            .args([
                "netns",
                "exec",
                ns,
                "ovs-ofctl",
                "monitor",
                "br-int",
                "watch:!initial",
            ])
            .stdout(std::fs::File::create(out)?)
            .stderr(Stdio::null());
        return Ok(c.spawn()?);
    }
    Ok(cmd.spawn()?)
}

fn flow_events(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("event="))
        .map(str::to_string)
        .collect()
}

#[test]
fn agent_programs_flows_and_restart_changes_nothing() -> anyhow::Result<()> {
    let s = setup(30)?;
    let mut agent = s.agent_spec.spawn()?;
    bind_one_port(&s)?;

    let before = flows(&s.ovs);
    assert!(
        before
            .iter()
            .any(|l| l.contains("in_port=") && l.contains("->metadata") && l.contains("->reg13")),
        "no classify flow for p1 (metadata = datapath key, reg13 = zone):\n{}",
        before.join("\n")
    );
    let ext_before = s.ovs.vsctl(&["get", "bridge", "br-int", "external_ids"])?;
    assert!(
        ext_before.contains("ct-zone-p1"),
        "no zone for p1 in br-int external_ids: {ext_before}"
    );
    let zone: String = ext_before
        .split("ct-zone-p1=")
        .nth(1)
        .unwrap_or_default()
        .trim_matches('"')
        .chars()
        .skip_while(|c| *c == '"')
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let zone_hex = format!("set_field:{:#x}->reg13", zone.parse::<u32>()?);
    assert!(
        before.iter().any(|l| l.contains(&zone_hex)),
        "classify does not load p1's zone {zone}:\n{}",
        before.join("\n")
    );
    let meters_before = meters(&s.ovs);
    assert!(
        meters_before.contains("pktps") && meters_before.contains("rate=100"),
        "no pinctrl meter:\n{meters_before}"
    );
    assert!(
        before.iter().any(|l| l.contains("arp_tpa=10.0.0.1")
            && l.contains("controller(userdata=00.00.00.01")
            && l.contains("meter_id=")),
        "no gateway ARP punt:\n{}",
        before.join("\n")
    );
    let tlv = s.ovs.ofctl(&["dump-tlv-map", "br-int"])?;
    assert!(
        tlv.contains("0x102") && tlv.contains("0x80"),
        "no Geneve TLV map:\n{tlv}"
    );
    assert!(
        before.iter().any(|l| l.contains("arp_tpa=10.0.0.3")),
        "no ARP responder for p2:\n{}",
        before.join("\n")
    );
    let bridge_before = s.ovs.vsctl(&["show"])?;

    // Restart the agent while watching every flow change.
    let mon_path = s.dir.path().join("monitor.txt");
    let mut monitor = start_monitor(&s.ovs, &mon_path)?;
    std::thread::sleep(Duration::from_millis(500));
    agent.kill();
    let mut agent = s.agent_spec.spawn()?;
    // The new agent is done once it has reported its applied revision again.
    weftctl(&s.controller_url, &["--wait=hv", "--timeout", "20", "sync"])?;
    std::thread::sleep(Duration::from_secs(1));
    let _ = monitor.kill();
    let _ = monitor.wait();

    let events = flow_events(&mon_path);
    assert!(
        events.is_empty(),
        "agent restart changed flows:\n{}",
        events.join("\n")
    );
    assert_eq!(flows(&s.ovs), before, "flow table changed across restart");
    assert_eq!(
        meters(&s.ovs),
        meters_before,
        "meters changed across restart"
    );
    assert_eq!(
        s.ovs.vsctl(&["get", "bridge", "br-int", "external_ids"])?,
        ext_before,
        "zones (br-int external_ids) changed across restart"
    );
    assert_eq!(
        s.ovs.vsctl(&["show"])?,
        bridge_before,
        "bridge/tunnel setup not idempotent"
    );
    agent.kill();
    Ok(())
}

#[test]
fn hand_deleted_flow_is_restored() -> anyhow::Result<()> {
    let s = setup(1)?;
    let _agent = s.agent_spec.spawn()?;
    bind_one_port(&s)?;
    let before = flows(&s.ovs);
    let meters_before = meters(&s.ovs);
    let victim = before
        .iter()
        .find(|l| l.contains("arp_tpa=10.0.0.3"))
        .cloned()
        .expect("ARP flow for p2");
    s.ovs
        .ofctl(&["del-flows", "br-int", "table=20,arp,arp_tpa=10.0.0.3"])?;
    assert!(!flows(&s.ovs).contains(&victim), "flow was not deleted");
    // A flow someone added by hand is removed too: the agent owns br-int.
    s.ovs
        .ofctl(&["add-flow", "br-int", "table=33,priority=7,actions=drop"])?;
    // Meter drift: a foreign meter and an altered one.
    s.ovs.ofctl(&[
        "-O",
        "OpenFlow15",
        "add-meter",
        "br-int",
        "meter=99,pktps,band=type=drop,rate=5",
    ])?;
    s.ovs.ofctl(&[
        "-O",
        "OpenFlow15",
        "mod-meter",
        "br-int",
        "meter=1,pktps,stats,band=type=drop,rate=7",
    ])?;
    assert_ne!(meters(&s.ovs), meters_before, "meter drift not applied");
    let restored = wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        flows(&s.ovs) == before && meters(&s.ovs) == meters_before
    });
    assert!(
        restored,
        "drift not repaired:\nexpected\n{}\n{}\ngot\n{}\n{}",
        before.join("\n"),
        meters_before,
        flows(&s.ovs).join("\n"),
        meters(&s.ovs)
    );
    Ok(())
}

#[test]
fn bridge_mappings_create_owned_patch_ports() -> anyhow::Result<()> {
    let s = setup(30)?;
    s.ovs.vsctl(&[
        "add-br",
        "br-ex",
        "--",
        "set",
        "bridge",
        "br-ex",
        "datapath_type=netdev",
    ])?;
    let spec = s
        .agent_spec
        .clone()
        .args(["--bridge-mappings", "physnet:br-ex"]);
    let mut agent = spec.clone().spawn()?;
    let patch_ok = |ovs: &Ovs| -> bool {
        let int = ovs
            .vsctl(&["get", "interface", "patch-br-int-to-br-ex", "options:peer"])
            .unwrap_or_default();
        let ext = ovs
            .vsctl(&["get", "interface", "patch-br-ex-to-br-int", "options:peer"])
            .unwrap_or_default();
        int.contains("patch-br-ex-to-br-int") && ext.contains("patch-br-int-to-br-ex")
    };
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            patch_ok(&s.ovs)
        }),
        "no patch ports; agent log:\n{}",
        weft_testbed::process::log_tail(&s.dir.path().join("agent.log"), 30)
    );
    for (port, bridge) in [
        ("patch-br-int-to-br-ex", "br-int"),
        ("patch-br-ex-to-br-int", "br-ex"),
    ] {
        let ids = s.ovs.vsctl(&["get", "port", port, "external_ids"])?;
        assert!(
            ids.contains("weft-owner") && ids.contains("physnet"),
            "{port}: {ids}"
        );
        let on = s.ovs.vsctl(&["port-to-br", port])?;
        assert_eq!(on.trim(), bridge);
    }
    // Idempotent across a restart.
    let before = s.ovs.vsctl(&["show"])?;
    agent.kill();
    let mut agent = spec.spawn()?;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.ovs.vsctl(&["show"])?, before);
    agent.kill();
    Ok(())
}

/// A UDP/IPv4 frame 10.0.0.2:1000 → 10.0.0.3:2000 (valid IP checksum, no UDP checksum), hex.
fn udp_frame_hex() -> String {
    let mut ip = vec![
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 3,
    ];
    let sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    let ck = !((sum & 0xffff) + (sum >> 16)) as u16;
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    let mut f = vec![0x0a, 0, 0, 0, 0, 3, 0x0a, 0, 0, 0, 0, 2, 0x08, 0x00];
    f.extend(ip);
    f.extend([0x03, 0xe8, 0x07, 0xd0, 0, 8, 0, 0]);
    f.iter().map(|b| format!("{b:02x}")).collect()
}

fn zone_of(ovs: &Ovs, port: &str) -> Option<u32> {
    let ext = ovs
        .vsctl(&["get", "bridge", "br-int", "external_ids"])
        .ok()?;
    let rest = ext.split(&format!("ct-zone-{port}=")).nth(1)?;
    rest.trim_start_matches('"')
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_zone_given_to_another_port_is_flushed_first() -> anyhow::Result<()> {
    let s = setup(30)?;
    let mut agent = s.agent_spec.spawn()?;
    bind_one_port(&s)?;
    let z = zone_of(&s.ovs, "p1").expect("p1 has a zone");
    // A connection in p1's zone.
    s.ovs.ofctl(&[
        "-O",
        "OpenFlow15",
        "packet-out",
        "br-int",
        &format!(
            "in_port=controller packet={} actions=ct(commit,zone={z})",
            udp_frame_hex()
        ),
    ])?;
    let conns = |ovs: &Ovs| {
        ovs.appctl(&["dpctl/dump-conntrack", &format!("zone={z}")])
            .unwrap_or_default()
    };
    assert!(
        conns(&s.ovs).contains("udp"),
        "no conntrack entry in zone {z}: {}",
        conns(&s.ovs)
    );
    // p1's VIF goes, p2's comes: p2 gets the lowest free zone, p1's old one.
    s.ovs.vsctl(&["del-port", "br-int", "vif1"])?;
    s.ovs.vsctl(&[
        "add-port",
        "br-int",
        "vif2",
        "--",
        "set",
        "interface",
        "vif2",
        "type=internal",
        "external_ids:iface-id=p2",
    ])?;
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            zone_of(&s.ovs, "p2") == Some(z) && zone_of(&s.ovs, "p1").is_none()
        }),
        "p2 did not get zone {z}: {}",
        s.ovs.vsctl(&["get", "bridge", "br-int", "external_ids"])?
    );
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
            !conns(&s.ovs).contains("udp")
        }),
        "zone {z} was not flushed before p2 got it: {}",
        conns(&s.ovs)
    );
    agent.kill();
    Ok(())
}
