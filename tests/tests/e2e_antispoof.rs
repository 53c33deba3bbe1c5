//! End-to-end: with port security on, a pod sending from a spoofed source MAC or IP is
//! dropped (the target's ICMP echo counter does not move), and the same pod sending with its
//! own addresses gets through.

mod common;
use common::*;
use weft_testbed::testbed::TestbedConfig;

#[test]
fn spoofed_mac_and_ip_are_dropped() {
    let cfg = TestbedConfig::new().hosts(2).controllers(1);
    if !ready("spoofed_mac_and_ip_are_dropped", &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw0", "10.40.0.0/24");
    for (p, mac, ip) in [
        ("good", "02:00:00:40:00:10", "10.40.0.10"),
        ("evil", "02:00:00:40:00:20", "10.40.0.20"),
    ] {
        static_port(&mut tb, "sw0", p, mac, ip);
        ctl(
            &mut tb,
            &["lsp-set-port-security", p, &format!("{mac} {ip}")],
        );
    }
    let good = pod(&mut tb, 2, "good");
    let evil = pod(&mut tb, 1, "evil");
    sync(&mut tb);

    // Control: legitimate traffic passes and is counted.
    let before = good.icmp_in_echos().expect("counter");
    assert_ping(&evil, &good);
    assert!(good.icmp_in_echos().expect("counter") > before);
    // From here on evil needs no ARP to reach good.
    evil.exec(&[
        "ip",
        "neigh",
        "replace",
        &good.ip.to_string(),
        "lladdr",
        &good.mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ])
    .expect("static neighbour");

    // Spoofed source IP.
    evil.exec(&["ip", "addr", "add", "10.40.0.99/32", "dev", "eth0"])
        .expect("add spoofed ip");
    let before = good.icmp_in_echos().expect("counter");
    let r = evil
        .exec_output(&[
            "ping",
            "-n",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            "10.40.0.99",
            &good.ip.to_string(),
        ])
        .expect("ping runs");
    assert!(!r.status.success(), "spoofed-IP ping was answered");
    assert_eq!(
        good.icmp_in_echos().expect("counter"),
        before,
        "echo requests from spoofed IP 10.40.0.99 reached the target"
    );
    evil.exec(&["ip", "addr", "del", "10.40.0.99/32", "dev", "eth0"])
        .expect("del spoofed ip");

    // Spoofed source MAC.
    evil.exec(&["ip", "link", "set", "eth0", "address", "02:00:00:40:66:66"])
        .expect("spoof mac");
    let before = good.icmp_in_echos().expect("counter");
    let r = evil.ping(good.ip, 3).expect("ping runs");
    assert_eq!(r.received, 0, "spoofed-MAC ping answered: {r:?}");
    assert_eq!(
        good.icmp_in_echos().expect("counter"),
        before,
        "echo requests from spoofed MAC reached the target"
    );

    // Back to its own MAC: traffic passes again (the drops were the spoofing, not breakage).
    evil.exec(&["ip", "link", "set", "eth0", "address", &evil.mac])
        .expect("restore mac");
    assert_ping(&evil, &good);
}
