//! End-to-end: restarting an agent (gracefully, and by SIGKILL) under a continuous ping
//! between hosts loses no packets: the agent never flushes flows on restart.

mod common;
use common::*;
use weft_testbed::testbed::TestbedConfig;

/// 1000 echoes 20 ms apart: a 20 s window around each restart.
const COUNT: u32 = 1000;
const INTERVAL_MS: u32 = 20;

#[test]
fn agent_restart_loses_no_packets() {
    let cfg = TestbedConfig::new().hosts(2).controllers(1);
    if !ready("agent_restart_loses_no_packets", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw0", "10.80.0.0/24");
    dyn_port(&mut tb, "sw0", "p1");
    dyn_port(&mut tb, "sw0", "p2");
    let p1 = pod(&mut tb, 1, "p1");
    let p2 = pod(&mut tb, 2, "p2");
    sync(&mut tb);
    assert_ping(&p1, &p2);

    // Baseline: the same ping without any restart loses nothing on this machine.
    let r = p1
        .ping_interval(p2.ip, COUNT / 4, INTERVAL_MS)
        .expect("baseline ping");
    assert_eq!(r.lost(), 0, "baseline without restart: {r:?}");

    for (how, graceful) in [("graceful restart", true), ("SIGKILL + start", false)] {
        let mut ping = p1
            .ping_background(p2.ip, COUNT, INTERVAL_MS)
            .expect("ping starts");
        std::thread::sleep(std::time::Duration::from_secs(1));
        if graceful {
            tb.restart_agent(1).expect("restart agent on host1");
        } else {
            tb.kill_agent(1).expect("kill agent");
            tb.start_agent(1).expect("start agent");
            let host1 = vec!["host1".to_string()];
            tb.wait_chassis_alive(&host1, std::time::Duration::from_secs(30))
                .expect("host1 back");
        }
        // The restarted agent has reconciled (read back and replaced its flows).
        sync(&mut tb);
        assert!(
            ping.is_running(),
            "{how}: restart + sync outlasted the {} s ping window; the test proves nothing",
            COUNT * INTERVAL_MS / 1000
        );
        let r = ping.wait().expect("ping finishes");
        println!(
            "agent {how} under a {} pps ping: {} of {} echoes lost",
            1000 / INTERVAL_MS,
            r.lost(),
            r.transmitted
        );
        assert_eq!(r.transmitted, COUNT, "{how}: {r:?}");
        assert_eq!(r.lost(), 0, "{how}: lost {} of {COUNT} echoes", r.lost());
    }
}
