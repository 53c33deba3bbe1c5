//! End-to-end: a TCP transfer between pods on different hosts succeeds, byte for byte.

mod common;
use common::*;
use weft_testbed::testbed::TestbedConfig;

#[test]
fn tcp_transfer_across_hosts() {
    let cfg = TestbedConfig::new().hosts(2).controllers(1);
    if !ready("tcp_transfer_across_hosts", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw0", "10.30.0.0/24");
    dyn_port(&mut tb, "sw0", "client");
    dyn_port(&mut tb, "sw0", "server");
    let client = pod(&mut tb, 1, "client");
    let server = pod(&mut tb, 2, "server");
    sync(&mut tb);
    assert_ping(&client, &server);

    let tcpcheck = env!("CARGO_BIN_EXE_weft-tcpcheck");
    let addr = format!("{}:5201", server.ip);
    let bytes = (8 * 1024 * 1024).to_string();
    let srv = server
        .spawn(&[tcpcheck, "server", &addr, &bytes])
        .expect("server starts");
    // Wait until the server listens.
    wait_for(10, "tcpcheck server to listen", || {
        server
            .exec(&["cat", "/proc/net/tcp"])
            .map(|t| t.contains(":1451 ")) // 5201 = 0x1451
            .unwrap_or(false)
    });
    let out = client
        .exec_output(&[tcpcheck, "client", &addr, &bytes])
        .expect("client runs");
    let srv_out = srv.wait_with_output().expect("server exits");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        srv_out.status.success(),
        "server failed: {}",
        String::from_utf8_lossy(&srv_out.stderr)
    );
    assert!(String::from_utf8_lossy(&srv_out.stdout).contains(&format!("ok {bytes}")));
}
