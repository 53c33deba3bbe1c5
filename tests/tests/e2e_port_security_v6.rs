//! End-to-end: port security covers IPv6. A port-secured pod ("evil") that sends IPv6 from a
//! forged source or a rogue router advertisement is dropped (the victim's counters do not
//! move and it learns no default route), while evil's own link-local IPv6 ping to the victim
//! works and another port-secured pod's IPv4 and IPv6 traffic still flows.
//!
//! The RA is written by `python3` (an AF_PACKET socket in the pod's namespace; setup.sh
//! installs python3).

mod common;
use common::*;
use weft_testbed::pod::Pod;
use weft_testbed::testbed::TestbedConfig;

/// The IPv6 link-local address of the pod's eth0 (waits for DAD to finish).
fn link_local(p: &Pod) -> String {
    let mut found = String::new();
    wait_for(10, &format!("a link-local address on {}", p.name), || {
        let out = p
            .exec(&[
                "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link",
            ])
            .unwrap_or_default();
        if out.contains("tentative") {
            return false;
        }
        found = out
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .unwrap_or_default()
            .to_string();
        !found.is_empty()
    });
    found
}

/// A counter of the pod's /proc/net/snmp6 (`Icmp6InEchos`, ...).
fn snmp6(p: &Pod, name: &str) -> u64 {
    let out = p.exec(&["cat", "/proc/net/snmp6"]).expect("snmp6");
    out.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next().and_then(|v| v.parse().ok()))?
        })
        .unwrap_or_else(|| panic!("no {name} in /proc/net/snmp6"))
}

/// Sends one router advertisement (prefix-less, router lifetime 1800 s) from `p`'s eth0 to
/// ff02::1, with `p`'s own MAC and link-local source: only the type makes it rogue.
fn send_rogue_ra(p: &Pod, src_ll: &str) {
    let script = r#"
import socket, struct, sys
mac = bytes.fromhex(sys.argv[1].replace(':', ''))
src = socket.inet_pton(socket.AF_INET6, sys.argv[2])
dst = socket.inet_pton(socket.AF_INET6, 'ff02::1')
# type 134, code 0, checksum, hop limit 64, flags 0, router lifetime 1800, reachable, retrans
icmp = struct.pack('!BBHBBHII', 134, 0, 0, 64, 0, 1800, 0, 0)
icmp += struct.pack('!BB6s', 1, 1, mac)  # source link-layer address option
pseudo = src + dst + struct.pack('!I3xB', len(icmp), 58)
data = pseudo + icmp
s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
while s >> 16:
    s = (s & 0xffff) + (s >> 16)
icmp = icmp[:2] + struct.pack('!H', ~s & 0xffff) + icmp[4:]
ip6 = struct.pack('!IHBB', 6 << 28, len(icmp), 58, 255) + src + dst
eth = bytes.fromhex('333300000001') + mac + b'\x86\xdd'
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind(('eth0', 0))
for _ in range(3):
    sock.send(eth + ip6 + icmp)
"#;
    p.exec(&["python3", "-c", script, &p.mac, src_ll])
        .expect("send the RA with python3");
}

#[test]
fn forged_ipv6_and_rogue_ra_are_dropped_link_local_works() {
    let cfg = TestbedConfig::new().hosts(2).controllers(1);
    if !ready(
        "forged_ipv6_and_rogue_ra_are_dropped_link_local_works",
        &cfg,
    ) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw6", "10.46.0.0/24");
    for (p, mac, ip, secured) in [
        ("evil", "02:00:00:46:00:20", "10.46.0.20", true),
        ("good", "02:00:00:46:00:30", "10.46.0.30", true),
        ("victim", "02:00:00:46:00:10", "10.46.0.10", false),
    ] {
        static_port(&mut tb, "sw6", p, mac, ip);
        if secured {
            ctl(
                &mut tb,
                &[
                    "lsp-set-port-security",
                    p,
                    &format!("{mac} {ip} fd00:46::30"),
                ],
            );
        }
    }
    let evil = pod(&mut tb, 1, "evil");
    let good = pod(&mut tb, 1, "good");
    let victim = pod(&mut tb, 2, "victim");
    sync(&mut tb);
    for p in [&evil, &good, &victim] {
        p.exec(&["sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=2"])
            .expect("accept_ra");
    }
    victim
        .exec(&[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:46::10/64",
            "dev",
            "eth0",
            "nodad",
        ])
        .expect("victim v6 address");
    good.exec(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd00:46::30/64",
        "dev",
        "eth0",
        "nodad",
    ])
    .expect("good v6 address");
    let (evil_ll, victim_ll) = (link_local(&evil), link_local(&victim));
    let _ = link_local(&good);

    // Control: evil's own link-local ping to the victim works.
    let r = evil
        .ping(format!("{victim_ll}%eth0"), 3)
        .expect("link-local ping runs");
    assert!(
        r.any(),
        "evil's link-local ping to {victim_ll} failed: {r:?}"
    );
    // The allowed pod's IPv4 and IPv6 traffic flows.
    assert_ping(&good, &victim);
    let r = good.ping("fd00:46::10", 3).expect("ping6 runs");
    assert!(
        r.any(),
        "good's IPv6 ping from an allowed address failed: {r:?}"
    );

    // Forged IPv6 source (not in evil's port security): dropped.
    evil.exec(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd00:46::99/64",
        "dev",
        "eth0",
        "nodad",
    ])
    .expect("forged v6 address");
    evil.exec(&[
        "ip",
        "-6",
        "neigh",
        "replace",
        "fd00:46::10",
        "lladdr",
        &victim.mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ])
    .expect("static neighbour");
    let before = snmp6(&victim, "Icmp6InEchos");
    let r = evil
        .exec_output(&[
            "ping",
            "-6",
            "-n",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            "fd00:46::99",
            "fd00:46::10",
        ])
        .expect("ping runs");
    assert!(
        !r.status.success(),
        "the forged-source IPv6 ping was answered"
    );
    assert_eq!(
        snmp6(&victim, "Icmp6InEchos"),
        before,
        "echo requests from forged fd00:46::99 reached the victim"
    );

    // Rogue RA: dropped; the victim (accept_ra=2) learns no default route from evil.
    let ras = snmp6(&victim, "Icmp6InRouterAdvertisements");
    send_rogue_ra(&evil, &evil_ll);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        snmp6(&victim, "Icmp6InRouterAdvertisements"),
        ras,
        "the rogue RA reached the victim"
    );
    let routes = victim
        .exec(&["ip", "-6", "route", "show", "default"])
        .unwrap_or_default();
    assert!(!routes.contains(&evil_ll), "rogue default route: {routes}");

    // With options:allow-ra-dhcp-server=true the same RA passes (the drop was the filter).
    ctl(
        &mut tb,
        &[
            "set",
            "Logical_Switch_Port",
            "evil",
            "options:allow-ra-dhcp-server=true",
        ],
    );
    sync(&mut tb);
    send_rogue_ra(&evil, &evil_ll);
    wait_for(5, "the allowed RA to reach the victim", || {
        snmp6(&victim, "Icmp6InRouterAdvertisements") > ras
    });
}
