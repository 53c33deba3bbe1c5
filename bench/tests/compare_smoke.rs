//! Smoke run of `weft-bench compare` (issue 5): both systems on 2 simulated hosts, 2 switches,
//! 5 ports per host and 3 single adds; and of `weft-bench dataplane --services` (1 s
//! transfers, plain and through ACLs and a load balancer). Counts only, no timing
//! assertions. Needs root, iperf3, openvswitch-switch, etcd, OVN (ovn-central, ovn-host)
//! and the workspace binaries (`cargo build --workspace --bins`).

use weft_bench::compare::{render_markdown, run_compare, CompareConfig, System};

#[test]
fn compare_smoke_both_systems_converge_with_sane_counts() -> anyhow::Result<()> {
    let cfg = CompareConfig {
        systems: vec![System::Weft, System::Ovn],
        hosts: 2,
        switches: 2,
        ports_per_host: 5,
        single_adds: 3,
        timeout: std::time::Duration::from_secs(60),
        ..CompareConfig::default()
    };
    let report = run_compare(&cfg, &mut |l| eprintln!("{l}"))?;
    assert_eq!(report.systems.len(), 2);
    for s in &report.systems {
        assert_eq!(s.ports, 10, "{s:?}");
        assert_eq!(s.ports_up, 10, "{s:?}");
        assert_eq!(s.create_calls, 1, "{s:?}");
        assert_eq!(s.single_adds.samples.len(), 3, "{s:?}");
        assert!(s.up_time <= s.convergence, "{s:?}");
        assert_eq!(s.flows_per_host.len(), 2, "{s:?}");
        for (host, flows) in &s.flows_per_host {
            assert!(*flows > 10, "{} {host}: {flows} flows", s.system);
        }
        assert!(s.processes.iter().all(|p| p.rss_kib > 0), "{s:?}");
    }
    let weft = report.get(System::Weft).expect("weft ran");
    let roles: Vec<&str> = weft.processes.iter().map(|p| p.role.as_str()).collect();
    assert_eq!(
        roles,
        [
            "etcd",
            "weft-agent host1",
            "weft-agent host2",
            "weft-controller"
        ]
    );
    // The stage breakdown: one CreatePort per add, and every add waited for acks.
    let stage = |prefix: &str| {
        weft.stages
            .iter()
            .find(|r| r.stage.starts_with(prefix))
            .unwrap_or_else(|| panic!("no stage {prefix:?} in {:?}", weft.stages))
    };
    assert_eq!(stage("CreatePort RPC").calls_per_add, 1.0);
    assert!(stage("… `--wait=hv` part").mean_s > 0.0);
    assert!(
        stage("agent: status report RPC").calls_per_add >= 2.0,
        "{:?}",
        weft.stages
    );
    let ovn = report.get(System::Ovn).expect("ovn ran");
    assert!(ovn.stages.is_empty());
    let roles: Vec<&str> = ovn.processes.iter().map(|p| p.role.as_str()).collect();
    assert_eq!(
        roles,
        [
            "ovsdb-server NB",
            "ovsdb-server SB",
            "ovn-northd",
            "ovn-controller host1",
            "ovn-controller host2"
        ]
    );
    let md = render_markdown(&report);
    assert!(md.contains("| metric | Weft | OVN | Weft / OVN |"), "{md}");
    Ok(())
}

/// The routed topology (one router on every switch): both systems converge with the router
/// in place, the router-type ports are not counted as the run's ports, and every host gets
/// more flows than the same ports without the router.
#[test]
fn compare_smoke_routed_topology() -> anyhow::Result<()> {
    use weft_bench::compare::Topology;
    let flat = CompareConfig {
        systems: vec![System::Weft, System::Ovn],
        hosts: 2,
        switches: 2,
        ports_per_host: 3,
        single_adds: 1,
        timeout: std::time::Duration::from_secs(60),
        ..CompareConfig::default()
    };
    let routed = CompareConfig {
        topology: Topology::Routed,
        ..flat.clone()
    };
    let f = run_compare(&flat, &mut |l| eprintln!("{l}"))?;
    let r = run_compare(&routed, &mut |l| eprintln!("{l}"))?;
    for s in &r.systems {
        assert_eq!((s.ports, s.ports_up), (6, 6), "{s:?}");
        let flat_min = f.get(s.system).expect("flat ran").flows_min_max().0;
        let (min, _) = s.flows_min_max();
        assert!(
            min > flat_min,
            "{}: routed {min} flows vs flat {flat_min}",
            s.system
        );
    }
    let md = render_markdown(&r);
    assert!(md.contains("routed: 1 router, 2 router ports"), "{md}");
    Ok(())
}

/// `weft-bench dataplane --services` in small: for Weft and OVN, an iperf3 transfer between
/// pods on two hosts, then another through the same stateful ACLs and a TCP load balancer
/// VIP (the ACLs drop every other to-lport IPv4 flow, so the second transfer only passes if
/// conntrack, the ACL verdicts and the VIP's DNAT and its reverse all work). Rates are not
/// asserted, only that each transfer moved data.
#[test]
fn dataplane_smoke_with_and_without_acls_and_lb() -> anyhow::Result<()> {
    use weft_bench::dataplane::{render, run_dataplane, DataplaneConfig};
    let cfg = DataplaneConfig {
        seconds: 1,
        streams: 1,
        raw: false,
        systems: vec![System::Weft, System::Ovn],
        services: true,
    };
    let rows = run_dataplane(&cfg, &mut |l| eprintln!("{l}"))?;
    eprintln!("{}", render(&rows, &cfg));
    let names: Vec<&str> = rows.iter().map(|r| r.what.as_str()).collect();
    assert_eq!(
        names,
        ["Weft", "Weft, ACLs + LB", "OVN", "OVN, ACLs + LB"],
        "{rows:?}"
    );
    for r in &rows {
        assert!(r.bits_per_second > 1e6, "{}: {r:?}", r.what);
    }
    Ok(())
}
