//! Against a real ovsdb-server + ovs-vswitchd (weft-testbed's `Ovs`, one private instance per
//! test): bridge and tunnel setup is idempotent and race-free, drift is fixed, VIFs appear
//! and disappear in `watch_interfaces`, and a session survives an ovsdb-server restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use weft_ovsdb::client::{Client, ClientConfig, Endpoint};
use weft_ovsdb::session::{Session, SessionConfig, SessionEvent};
use weft_ovsdb::vswitch::{
    ensure_bridge, ensure_tunnel_ports, watch_interfaces, BridgeConfig, DatapathType, Encap,
    TunnelConfig, Vif, VifEvent, VifWatch,
};
use weft_ovsdb::MonitorRequest;
use weft_testbed::ovs::{Ovs, OvsConfig};

const WAIT: Duration = Duration::from_secs(20);

fn start_ovs() -> Result<Ovs> {
    Ovs::start(OvsConfig::default())
}

async fn connect(target: &str) -> Result<Client> {
    let ep: Endpoint = target.parse()?;
    Ok(Client::connect(&ep, ClientConfig::default()).await?)
}

fn bridge_cfg() -> BridgeConfig {
    BridgeConfig::new("br-int", DatapathType::Netdev)
}

/// Everything that identifies our rows: `ovs-vsctl show` plus uuids and names.
fn inventory(ovs: &Ovs) -> Result<String> {
    let mut s = ovs.vsctl(&["show"])?;
    for t in ["Bridge", "Port", "Interface"] {
        s.push_str(
            &ovs.vsctl(&["--columns=_uuid,name,ofport", "list", t])
                .or_else(|_| ovs.vsctl(&["--columns=_uuid,name", "list", t]))?,
        );
    }
    Ok(s)
}

fn get(ovs: &Ovs, args: &[&str]) -> Result<String> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    Ok(ovs.vsctl(&full)?.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_and_tunnels_are_idempotent() -> Result<()> {
    let ovs = start_ovs()?;
    let client = connect(&ovs.db_target()).await?;
    let cfg = bridge_cfg();
    let first = ensure_bridge(&client, &cfg).await?;
    assert!(first.created);
    let tcfg = TunnelConfig::new("br-int", &[Encap::Geneve, Encap::Vxlan, Encap::Gre]);
    let ports1 = ensure_tunnel_ports(&client, &tcfg).await?;
    assert_eq!(ports1.len(), 3, "{ports1:?}");
    assert!(ports1.values().all(|p| *p >= 1));
    // ovs-vswitchd must agree.
    for (e, p) in &ports1 {
        assert_eq!(
            get(&ovs, &["interface", e.port_name(), "ofport"])?,
            p.to_string()
        );
    }
    let before = inventory(&ovs)?;

    let second = ensure_bridge(&client, &cfg).await?;
    assert!(!second.created);
    assert!(second.fixed.is_empty(), "{:?}", second.fixed);
    assert_eq!(second.uuid, first.uuid);
    let ports2 = ensure_tunnel_ports(&client, &tcfg).await?;
    assert_eq!(ports1, ports2);
    assert_eq!(before, inventory(&ovs)?, "a second run changed rows");

    // The settings are what we asked for.
    assert_eq!(get(&ovs, &["bridge", "br-int", "fail_mode"])?, "secure");
    assert_eq!(get(&ovs, &["bridge", "br-int", "datapath_type"])?, "netdev");
    assert!(get(&ovs, &["bridge", "br-int", "protocols"])?.contains("OpenFlow15"));
    assert_eq!(
        get(&ovs, &["bridge", "br-int", "other_config:disable-in-band"])?,
        "\"true\""
    );
    for (table, row) in [
        ("bridge", "br-int"),
        ("port", "br-int"),
        ("interface", "br-int"),
        ("port", "weft-vxlan"),
        ("interface", "weft-gre"),
    ] {
        assert_eq!(
            get(&ovs, &[table, row, "external_ids:weft-owner"])?,
            "weft-agent",
            "{table} {row}"
        );
    }
    assert_eq!(get(&ovs, &["interface", "br-int", "type"])?, "internal");
    assert_eq!(get(&ovs, &["interface", "weft-geneve", "type"])?, "geneve");
    let opts = get(&ovs, &["interface", "weft-vxlan", "options"])?;
    assert!(
        opts.contains("remote_ip=flow")
            && opts.contains("key=flow")
            && opts.contains("dst_port=\"4789\""),
        "{opts}"
    );
    // The bridge is really up in ovs-vswitchd.
    assert!(ovs.mgmt_socket("br-int").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ensures_do_not_duplicate() -> Result<()> {
    let ovs = start_ovs()?;
    let a = connect(&ovs.db_target()).await?;
    let b = connect(&ovs.db_target()).await?;
    let cfg = bridge_cfg();
    let (ra, rb) = tokio::join!(ensure_bridge(&a, &cfg), ensure_bridge(&b, &cfg));
    let (ra, rb) = (ra?, rb?);
    assert_eq!(ra.uuid, rb.uuid);
    assert!(
        ra.created ^ rb.created,
        "exactly one creates: {ra:?} {rb:?}"
    );
    let tcfg = TunnelConfig::new("br-int", &[Encap::Geneve]);
    let (ta, tb) = tokio::join!(
        ensure_tunnel_ports(&a, &tcfg),
        ensure_tunnel_ports(&b, &tcfg)
    );
    assert_eq!(ta?, tb?);
    let bridges = ovs.vsctl(&["list-br"])?;
    assert_eq!(bridges.lines().collect::<Vec<_>>(), vec!["br-int"]);
    let ports = ovs.vsctl(&["list-ports", "br-int"])?;
    assert_eq!(ports.lines().collect::<Vec<_>>(), vec!["weft-geneve"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_fixed_and_disabled_encaps_removed() -> Result<()> {
    let ovs = start_ovs()?;
    let client = connect(&ovs.db_target()).await?;
    let cfg = bridge_cfg();
    let first = ensure_bridge(&client, &cfg).await?;
    let all = TunnelConfig::new("br-int", &[Encap::Geneve, Encap::Vxlan, Encap::Gre]);
    ensure_tunnel_ports(&client, &all).await?;

    ovs.vsctl(&[
        "set",
        "bridge",
        "br-int",
        "fail_mode=standalone",
        "protocols=OpenFlow10",
        "other_config:disable-in-band=false",
        "other_config:keep-me=1",
    ])?;
    ovs.vsctl(&["set", "interface", "weft-vxlan", "options:key=5"])?;
    let fixed = ensure_bridge(&client, &cfg).await?;
    assert_eq!(fixed.uuid, first.uuid);
    let mut f = fixed.fixed.clone();
    f.sort();
    assert_eq!(f, vec!["fail_mode", "other_config", "protocols"]);
    assert_eq!(get(&ovs, &["bridge", "br-int", "fail_mode"])?, "secure");
    assert!(get(&ovs, &["bridge", "br-int", "protocols"])?.contains("OpenFlow15"));
    assert_eq!(
        get(&ovs, &["bridge", "br-int", "other_config:disable-in-band"])?,
        "\"true\""
    );
    assert_eq!(
        get(&ovs, &["bridge", "br-int", "other_config:keep-me"])?,
        "\"1\""
    );

    let only_vxlan = TunnelConfig::new("br-int", &[Encap::Vxlan]);
    let ports = ensure_tunnel_ports(&client, &only_vxlan).await?;
    assert_eq!(
        ports.keys().copied().collect::<Vec<_>>(),
        vec![Encap::Vxlan]
    );
    assert_eq!(
        get(&ovs, &["interface", "weft-vxlan", "options:key"])?,
        "flow"
    );
    let mut listed: Vec<String> = ovs
        .vsctl(&["list-ports", "br-int"])?
        .lines()
        .map(str::to_owned)
        .collect();
    listed.sort();
    assert_eq!(listed, vec!["weft-vxlan"]);
    // Port/Interface rows were garbage-collected, not just unlinked.
    assert!(ovs
        .vsctl(&["--columns=name", "find", "interface", "name=weft-gre"])?
        .trim()
        .is_empty());

    // A foreign port with one of our names is left alone when its encap is disabled.
    ovs.vsctl(&[
        "add-port",
        "br-int",
        "weft-gre",
        "--",
        "set",
        "interface",
        "weft-gre",
        "type=internal",
    ])?;
    ensure_tunnel_ports(&client, &only_vxlan).await?;
    assert!(ovs.vsctl(&["list-ports", "br-int"])?.contains("weft-gre"));
    Ok(())
}

async fn next_snapshot_where(
    w: &mut VifWatch,
    what: &str,
    pred: impl Fn(&BTreeMap<String, Vif>) -> bool,
) -> Result<BTreeMap<String, Vif>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, w.next())
            .await
            .with_context(|| format!("timed out waiting for {what}; current: {:?}", w.current()))?;
        match ev {
            Some(VifEvent::Snapshot(s)) if pred(&s) => return Ok((*s).clone()),
            Some(_) => {}
            None => bail!("watch ended while waiting for {what}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_interfaces_reports_vifs() -> Result<()> {
    let ovs = start_ovs()?;
    let client = connect(&ovs.db_target()).await?;
    ensure_bridge(&client, &bridge_cfg()).await?;
    let mut w = watch_interfaces(SessionConfig::new(ovs.db_target().parse()?, "Open_vSwitch"));
    assert_eq!(
        tokio::time::timeout(WAIT, w.next()).await?,
        Some(VifEvent::Connected)
    );
    next_snapshot_where(&mut w, "initial snapshot", |s| s.is_empty()).await?;

    ovs.vsctl(&[
        "add-port",
        "br-int",
        "vif1",
        "--",
        "set",
        "interface",
        "vif1",
        "type=internal",
        "external_ids:iface-id=lp1",
    ])?;
    // A port without iface-id is not a VIF.
    ovs.vsctl(&[
        "add-port",
        "br-int",
        "plain1",
        "--",
        "set",
        "interface",
        "plain1",
        "type=internal",
    ])?;
    let snap = next_snapshot_where(&mut w, "vif1 with ofport", |s| {
        s.get("vif1").is_some_and(|v| v.ofport.is_some())
    })
    .await?;
    let vif = &snap["vif1"];
    assert_eq!(vif.iface_id, "lp1");
    let ofport: u32 = get(&ovs, &["interface", "vif1", "ofport"])?.parse()?;
    assert_eq!(vif.ofport, Some(ofport));
    assert!(vif.mac_in_use.is_some());
    assert!(!snap.contains_key("plain1"));

    // Rebinding to another logical port shows up too.
    ovs.vsctl(&["set", "interface", "vif1", "external_ids:iface-id=lp2"])?;
    next_snapshot_where(&mut w, "vif1 rebound", |s| {
        s.get("vif1").is_some_and(|v| v.iface_id == "lp2")
    })
    .await?;

    ovs.vsctl(&["del-port", "br-int", "vif1"])?;
    next_snapshot_where(&mut w, "vif1 gone", |s| !s.contains_key("vif1")).await?;
    assert!(w.current().is_empty());
    Ok(())
}

/// An ovsdb-server alone (no ovs-vswitchd), which this test can kill and start again on the
/// same database and socket.
struct Ovsdb {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Ovsdb {
    fn start() -> Result<Ovsdb> {
        let dir = tempfile::Builder::new().prefix("weft-ovsdb-").tempdir()?;
        let db = dir.path().join("conf.db");
        let st = Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg("/usr/share/openvswitch/vswitch.ovsschema")
            .status()?;
        if !st.success() {
            bail!("ovsdb-tool create failed");
        }
        let mut s = Ovsdb { dir, child: None };
        s.spawn()?;
        s.vsctl(&["init"])?;
        Ok(s)
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("db.sock")
    }

    fn target(&self) -> String {
        format!("unix:{}", self.sock().display())
    }

    fn spawn(&mut self) -> Result<()> {
        let d: &Path = self.dir.path();
        let _ = std::fs::remove_file(self.sock());
        let child = Command::new("ovsdb-server")
            .arg(d.join("conf.db"))
            .arg(format!("--remote=punix:{}", self.sock().display()))
            .arg(format!("--unixctl={}", d.join("ovsdb.ctl").display()))
            .arg(format!("--log-file={}", d.join("ovsdb.log").display()))
            .args(["--no-chdir", "-vconsole:off"])
            .env("OVS_RUNDIR", d)
            .env("OVS_DBDIR", d)
            .env("OVS_LOGDIR", d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            if self.sock().exists() && self.vsctl(&["show"]).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("ovsdb-server did not come up")
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn vsctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("ovs-vsctl")
            .arg(format!("--db={}", self.target()))
            .args(["--no-wait", "--timeout=10"])
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "ovs-vsctl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Ovsdb {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_reconnects_after_ovsdb_restart() -> Result<()> {
    let mut db = Ovsdb::start()?;
    db.vsctl(&[
        "add-br",
        "br-x",
        "--",
        "add-port",
        "br-x",
        "v1",
        "--",
        "set",
        "interface",
        "v1",
        "external_ids:iface-id=lp1",
    ])?;
    let mut base = SessionConfig::new(db.target().parse()?, "Open_vSwitch");
    base.backoff_initial = Duration::from_millis(50);
    base.backoff_max = Duration::from_millis(400);
    base.client.inactivity_probe = Some(Duration::from_secs(2));
    let mut w = watch_interfaces(base);
    next_snapshot_where(&mut w, "lp1", |s| {
        s.get("v1").is_some_and(|v| v.iface_id == "lp1")
    })
    .await?;

    db.kill();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, w.next()).await? {
            Some(VifEvent::Disconnected { .. }) => break,
            Some(_) => {}
            None => bail!("watch ended"),
        }
    }
    assert!(w.session().client().is_none());
    db.spawn()?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, w.next()).await? {
            Some(VifEvent::Connected) => break,
            Some(_) => {}
            None => bail!("watch ended"),
        }
    }
    // The re-established monitor sees new changes.
    db.vsctl(&[
        "add-port",
        "br-x",
        "v2",
        "--",
        "set",
        "interface",
        "v2",
        "external_ids:iface-id=lp2",
    ])?;
    let snap = next_snapshot_where(&mut w, "v2 after restart", |s| s.contains_key("v2")).await?;
    assert_eq!(snap["v1"].iface_id, "lp1");
    // And the session's client works for transactions again.
    let client = w.session().wait_connected(WAIT).await?;
    assert!(client
        .list_dbs()
        .await?
        .contains(&"Open_vSwitch".to_string()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_resyncs_changes_made_while_down() -> Result<()> {
    let mut db = Ovsdb::start()?;
    db.vsctl(&["add-br", "br-y"])?;
    let mut base = SessionConfig::new(db.target().parse()?, "Open_vSwitch")
        .monitor("Bridge", MonitorRequest::columns(["name", "external_ids"]));
    base.backoff_initial = Duration::from_millis(50);
    base.backoff_max = Duration::from_millis(400);
    let (session, mut events) = Session::start(base);
    assert_eq!(
        tokio::time::timeout(WAIT, events.recv()).await?,
        Some(SessionEvent::Connected)
    );
    assert_eq!(session.rows("Bridge").len(), 1);
    // The first resync reports the initial rows as inserts.
    match tokio::time::timeout(WAIT, events.recv()).await? {
        Some(SessionEvent::Changes(ch)) => {
            assert_eq!(ch.len(), 1);
            assert!(ch[0].old.is_none());
        }
        other => bail!("expected initial changes, got {other:?}"),
    }

    db.kill();
    // Change the database file while the server is down.
    let file = db.dir.path().join("conf.db");
    let out = Command::new("ovsdb-tool")
        .arg("transact")
        .arg(&file)
        .arg(r#"["Open_vSwitch",{"op":"mutate","table":"Bridge","where":[["name","==","br-y"]],"mutations":[["external_ids","insert",["map",[["k","v"]]]]]}]"#)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db.spawn()?;

    let deadline = tokio::time::Instant::now() + WAIT;
    let mut saw = Vec::new();
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .with_context(|| format!("events so far: {saw:?}"))?;
        match ev {
            Some(SessionEvent::Changes(ch)) if !saw.is_empty() => {
                let c = ch
                    .iter()
                    .find(|c| c.table == "Bridge")
                    .context("bridge change")?;
                let new = c.new.as_ref().context("modified, not deleted")?;
                use weft_ovsdb::RowExt;
                assert_eq!(
                    new.str_map_col("external_ids").get("k").map(String::as_str),
                    Some("v")
                );
                assert!(c.old.is_some());
                break;
            }
            Some(e) => saw.push(e),
            None => bail!("session ended"),
        }
    }
    assert!(
        matches!(saw.first(), Some(SessionEvent::Disconnected { .. })),
        "{saw:?}"
    );
    assert!(
        matches!(saw.last(), Some(SessionEvent::Connected)),
        "{saw:?}"
    );
    Ok(())
}
