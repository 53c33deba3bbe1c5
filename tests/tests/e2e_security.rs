//! End-to-end trust boundary with the real binaries (TLS on, the testbed default):
//!
//! - a rogue `weft-agent` holding host2's certificate that claims to be host1 (another
//!   encap IP, the attack of issue 16) is refused with a clear error in its own log and in
//!   the controller's; host1's record, liveness and traffic are untouched;
//! - weftctl with a reader certificate reads and cannot write (the error names role
//!   admin); with a token from `weftctl cert token` likewise, and the token stops working
//!   once removed from the token file; with an agent's certificate it may create and delete
//!   ports only; with no credential it is refused as unauthenticated; in plain text it
//!   does not reach the TLS controller.

mod common;
use common::*;
use std::time::Duration;
use weft_testbed::ovs::{Ovs, OvsConfig};
use weft_testbed::process::{wait_until, ProcSpec, WorkDir};
use weft_testbed::testbed::TestbedConfig;

fn encap_of(tb: &mut weft_testbed::testbed::Testbed, chassis: &str) -> String {
    let v = tb
        .weftctl()
        .expect("weftctl")
        .json(&["chassis-list"])
        .expect("chassis-list");
    v["chassis"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == chassis)
        .and_then(|c| c["encap_ip"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn forged_chassis_and_roles_are_refused_end_to_end() {
    let cfg = TestbedConfig::new().hosts(2).controllers(1);
    if !ready("forged_chassis_and_roles_are_refused_end_to_end", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw", "10.55.0.0/24");
    dyn_port(&mut tb, "sw", "s1");
    dyn_port(&mut tb, "sw", "s2");
    let a = pod(&mut tb, 1, "s1");
    let b = pod(&mut tb, 2, "s2");
    sync(&mut tb);
    assert_ping(&a, &b);
    let host1_ip = encap_of(&mut tb, "host1");
    let pki = tb.pki().expect("the testbed has a CA").clone();
    let url = tb.controller_url(1).expect("url");

    // The rogue agent: host2's certificate, --chassis host1, its own OVS.
    let ovs = Ovs::start(OvsConfig::default()).expect("a private OVS for the rogue agent");
    let dir = WorkDir::temp("wrogue").expect("dir");
    let log = dir.path().join("rogue.log");
    let host2 = pki.files("host2");
    let mut rogue = ProcSpec::new(
        "rogue agent",
        weft_testbed::find_bin("weft-agent").expect("weft-agent"),
        log.clone(),
    )
    .args(["--chassis", "host1", "--encap-ip", "172.31.99.99"])
    .args(["--controller", &url, "--ovsdb", &ovs.db_target()])
    .args([
        "--datapath",
        "netdev",
        "--metrics-listen",
        "off",
        "--debug-listen",
        "off",
    ])
    .args(host2.args())
    .arg("--ovs-rundir")
    .arg(ovs.rundir())
    .spawn()
    .expect("rogue agent starts");
    let refused = wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("PermissionDenied") || l.contains("permission"))
    });
    let rogue_log = weft_testbed::process::log_tail(&log, 15);
    rogue.kill();
    assert!(
        refused,
        "the rogue agent was not refused; its log:\n{rogue_log}"
    );
    assert!(
        rogue_log.contains("may only speak for chassis \\\"host2\\\"")
            || rogue_log.contains("may only speak for chassis \"host2\""),
        "the rogue agent's error does not say why:\n{rogue_log}"
    );
    let ctl_log = std::fs::read_to_string(tb.dir().join("controller1.log")).unwrap_or_default();
    assert!(
        ctl_log.contains("refused: a chassis may only speak for itself"),
        "the controller did not log the refusal"
    );
    assert_eq!(
        encap_of(&mut tb, "host1"),
        host1_ip,
        "host1's record changed"
    );
    let alive = tb
        .weftctl()
        .expect("weftctl")
        .alive_chassis()
        .expect("alive");
    assert!(
        alive.contains(&"host1".to_string()),
        "host1 not alive: {alive:?}"
    );
    let r = a.ping_interval(b.ip, 20, 50).expect("ping");
    assert_eq!(r.lost(), 0, "traffic after the forged Subscribe: {r:?}");
    println!(
        "rogue agent (host2's certificate claiming host1) refused; host1 untouched, 0 of 20 lost"
    );

    let base = tb.weftctl().expect("weftctl");
    // A reader reads and cannot write.
    let bob = pki.issue("bob", "reader", &[]).expect("reader cert");
    let reader = base.clone().with_credential(&bob);
    reader.run(&["ls-list"]).expect("a reader lists");
    let e = reader
        .run(&["ls-add", "nope"])
        .expect_err("a reader cannot write");
    assert!(format!("{e:#}").contains("needs role admin"), "{e:#}");

    // A token, issued with weftctl cert token into the controller's token file.
    let line = weft_testbed::pki::Pki::token_line("reader", "carol").expect("token");
    let token = line
        .split_whitespace()
        .nth(2)
        .expect("token field")
        .to_string();
    let tokens = pki.dir().join("tokens");
    std::fs::write(&tokens, format!("{line}\n")).expect("token file");
    let carol = base.clone().with_token(&pki.ca(), &token);
    wait_for(10, "the token to be accepted", || {
        carol.run(&["ls-list"]).is_ok()
    });
    let e = carol
        .run(&["ls-add", "nope"])
        .expect_err("a token reader cannot write");
    assert!(format!("{e:#}").contains("carol (reader, token)"), "{e:#}");
    std::fs::write(&tokens, "").expect("revoke token");
    wait_for(10, "the removed token to be refused", || {
        carol
            .run(&["ls-list"])
            .is_err_and(|e| format!("{e:#}").contains("not known"))
    });

    // An agent's certificate (what its CNI front end uses) creates and deletes ports only.
    let agent = base.clone().with_credential(&pki.files("host1"));
    agent
        .run(&["lsp-add", "sw", "cni1"])
        .expect("agent creates a port");
    agent
        .run(&["lsp-del", "cni1"])
        .expect("agent deletes a port");
    let e = agent
        .run(&["ls-del", "sw"])
        .expect_err("agent cannot delete a switch");
    assert!(format!("{e:#}").contains("needs role admin"), "{e:#}");

    // No credential; plain text.
    let anon = base
        .clone()
        .with_env(vec![("WEFT_CA".into(), pki.ca().display().to_string())]);
    let e = anon.run(&["ls-list"]).expect_err("anonymous refused");
    assert!(format!("{e:#}").contains("needs a credential"), "{e:#}");
    let plain = base
        .clone()
        .with_env(vec![("WEFT_INSECURE".into(), "1".into())]);
    assert!(
        plain.run(&["ls-list"]).is_err(),
        "plain text reached the TLS controller"
    );
    // The switch is still there: every refused write changed nothing.
    let out = base.run(&["ls-list"]).expect("admin lists");
    assert!(out.contains("sw") && !out.contains("nope"), "{out}");
}
