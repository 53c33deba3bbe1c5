//! End-to-end: cross-host traffic over each encapsulation (VXLAN, GRE, Geneve): the agents
//! create a tunnel port of that type and full-MTU pings pass.

mod common;
use common::*;
use weft_testbed::testbed::{Encap, TestbedConfig};

fn cross_host_over(encap: Encap) {
    let name = format!("cross_host_over_{encap}");
    let cfg = TestbedConfig::new().hosts(2).controllers(1).encap(encap);
    if !ready(&name, &cfg) {
        return;
    }
    let mut tb = start(cfg);
    switch(&mut tb, "sw0", "10.20.0.0/24");
    dyn_port(&mut tb, "sw0", "p1");
    dyn_port(&mut tb, "sw0", "p2");
    let p1 = pod(&mut tb, 1, "p1");
    let p2 = pod(&mut tb, 2, "p2");
    assert_eq!(p1.mtu, 1500 - encap.overhead());
    sync(&mut tb);

    assert_ping(&p1, &p2);
    assert_ping(&p2, &p1);
    assert_full_mtu(&p1, &p2);
    for h in tb.hosts() {
        let tunnels = h
            .ovs()
            .vsctl(&[
                "--bare",
                "--columns=name",
                "find",
                "interface",
                &format!("type={encap}"),
            ])
            .expect("find interface");
        assert!(
            !tunnels.trim().is_empty(),
            "{}: no {encap} tunnel interface in OVS",
            h.name
        );
    }
}

#[test]
fn cross_host_vxlan() {
    cross_host_over(Encap::Vxlan);
}

#[test]
fn cross_host_gre() {
    cross_host_over(Encap::Gre);
}

#[test]
fn cross_host_geneve() {
    cross_host_over(Encap::Geneve);
}
