//! Smoke run of the pipeline benchmark (small sizes, no timing assertions): it keeps working
//! and its counts are sane.

use weft_bench::{run_pipeline, AddKind, PipelineConfig, TopologyConfig};

#[test]
fn pipeline_smoke_counts_are_sane() -> anyhow::Result<()> {
    let cfg = PipelineConfig {
        topology: TopologyConfig {
            ports: 50,
            switches: 4,
            chassis: 4,
        },
        iters: 1,
        add_at: 40,
        adds: 3,
    };
    let r = run_pipeline(&cfg)?;

    // 50 ports over 4 chassis: ports 0..3, 16..19, 32..35, 48..49 are local.
    assert_eq!(r.local_ports, 14);
    assert_eq!(r.remote_chassis, 3);
    // Every port has flows; each switch has its two flood groups (the unknown-unicast groups
    // exist only with `unknown` ports, and there are none).
    assert!(r.flows > 50, "{} flows", r.flows);
    assert_eq!(r.groups, 4 * 2);
    // ... plus the pinctrl meters (gateway ARP, ICMP errors, neighbour resolution, ACL log,
    // ACL reject).
    assert_eq!(
        r.diff_empty_ops,
        r.flows + r.groups + weft_agent::ids::METERS.len()
    );
    assert_eq!(r.diff_identical_ops, 0);
    assert!(r.full_bundle_bytes > 16 * r.diff_empty_ops);
    for t in [&r.compile, &r.diff_empty, &r.diff_identical, &r.view_apply] {
        assert_eq!(t.samples.len(), 1);
    }

    for a in [&r.add_local, &r.add_remote] {
        assert_eq!(a.base_ports, 40);
        assert_eq!(a.total.samples.len(), 3);
        assert!(a.max_flow_mods > 0, "{a:?}");
        // One port's own flows (port security for IPv4 and IPv6, ND, the RA/DHCP-server
        // drops, classify, output) and its switch's: bounded, not growing with the switch.
        assert!(a.max_flow_mods < 40, "{a:?}");
        assert_eq!(a.max_bundles, 1, "{a:?}");
        assert!(a.matches_full_diff, "{a:?}");
        // The port and its switch, nothing else.
        assert_eq!(a.max_owners, 2, "{a:?}");
    }
    // A local add changes the flood groups; a remote add on an already-known chassis does not.
    assert_eq!(r.add_local.kind, AddKind::Local);
    assert!(r.add_local.max_group_mods >= 1, "{:?}", r.add_local);
    assert!(r.add_local.max_flow_mods > r.add_remote.max_flow_mods);
    Ok(())
}

#[test]
fn bad_config_is_rejected_with_the_field_named() {
    let mut cfg = PipelineConfig::default();
    cfg.topology.switches = 0;
    let err = run_pipeline(&cfg).expect_err("zero switches");
    assert!(err.to_string().contains("switches"), "{err}");
    let cfg = PipelineConfig {
        iters: 0,
        ..PipelineConfig::default()
    };
    let err = run_pipeline(&cfg).expect_err("zero iters");
    assert!(err.to_string().contains("iters"), "{err}");
}
