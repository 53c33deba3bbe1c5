//! Unit tests of the compiler: one per feature function, plus recompile behaviour.

use std::collections::{BTreeMap, BTreeSet};

use weft_openflow::flow::Flow;
use weft_openflow::render::{render_flow, render_group};
use weft_proto::model::view::ViewDelta;
use weft_proto::v1::{LoadBalancerView, PortAddress, PortView, RemoteChassis, SwitchView};

use super::*;
use crate::ids::Ids;
use crate::view::ChassisView;

fn addr(mac: &str, ips: &[&str]) -> PortAddress {
    PortAddress {
        mac: mac.into(),
        ips: ips.iter().map(|s| s.to_string()).collect(),
    }
}

fn pv(name: &str, switch: &str, n: u16, chassis: &str) -> PortView {
    PortView {
        name: name.into(),
        switch_name: switch.into(),
        addresses: vec![addr(
            &format!("00:00:00:00:{:02x}:{:02x}", n >> 8, n & 0xff),
            &[&format!("10.0.{}.{}", n >> 8, n & 0xff)],
        )],
        unknown: false,
        port_security: vec![],
        chassis: chassis.into(),
        enabled: true,
        tunnel_key: u32::from(n) + 0x100,
        ..Default::default()
    }
}

fn sv(name: &str, vni: u32) -> SwitchView {
    SwitchView {
        name: name.into(),
        vni,
        tunnel_key: vni + 0x100,
        subnet: String::new(),
        mtu: 0,
        ..Default::default()
    }
}

fn cv(name: &str, ip: &str, encaps: &[&str]) -> RemoteChassis {
    RemoteChassis {
        name: name.into(),
        encap_ip: ip.into(),
        encap_types: encaps.iter().map(|s| s.to_string()).collect(),
    }
}

struct Fx {
    view: ChassisView,
    vifs: BTreeMap<String, u32>,
    tunnels: BTreeMap<Encap, u32>,
    ids: Ids,
}

impl Fx {
    fn new(update: ViewDelta, vifs: &[(&str, u32)]) -> Self {
        let mut view = ChassisView::new();
        view.apply(&update).expect("valid view");
        let mut fx = Fx {
            view,
            vifs: vifs.iter().map(|(n, o)| (n.to_string(), *o)).collect(),
            tunnels: [(Encap::Geneve, 100), (Encap::Vxlan, 101)].into(),
            ids: Ids::default(),
        };
        fx.sync();
        fx
    }

    /// Allocates ids for the current view and VIFs (as the reconciler does before compiling).
    fn sync(&mut self) {
        self.ids
            .sync(&self.view, "hv1", &self.vifs)
            .expect("ids available");
    }

    fn group(&self, sw: &str, k: GroupKind) -> u32 {
        self.ids.group(sw, k).expect("group id")
    }

    fn input(&self) -> CompileInput<'_> {
        CompileInput {
            chassis: "hv1",
            view: &self.view,
            vifs: &self.vifs,
            tunnels: &self.tunnels,
            ids: &self.ids,
            neighbours: &crate::pinctrl::neigh::NO_NEIGHBOURS,
            localnets: &crate::pipeline::NO_LOCALNETS,
        }
    }

    fn apply(&mut self, u: ViewDelta) -> ViewChange {
        let c = self.view.apply(&u).expect("valid delta");
        self.sync();
        c
    }
}

fn small() -> Fx {
    Fx::new(
        ViewDelta {
            revision: 1,
            snapshot: true,
            switches: vec![sv("ls1", 5)],
            ports: vec![
                pv("a", "ls1", 1, "hv1"),
                pv("b", "ls1", 2, "hv2"),
                pv("c", "ls1", 3, "hv3"),
                pv("d", "ls1", 4, ""),
            ],
            chassis: vec![
                cv("hv2", "192.168.0.2", &["gre", "vxlan", "geneve"]),
                cv("hv3", "192.168.0.3", &["gre"]),
            ],
            ..Default::default()
        },
        &[("a", 1)],
    )
}

fn rendered(flows: &[Flow]) -> Vec<String> {
    flows.iter().map(render_flow).collect()
}

fn sorted_state(d: &DesiredState) -> Vec<String> {
    let mut v: Vec<String> = d.flows().map(render_flow).collect();
    v.extend(d.groups().map(render_group));
    v.sort();
    v
}

#[test]
fn encap_parses_and_displays() {
    for e in Encap::ALL {
        assert_eq!(e.to_string().parse::<Encap>(), Ok(e));
    }
    assert_eq!(
        "stt".parse::<Encap>().map_err(|e| e.to_string()),
        Err("unknown encapsulation \"stt\": expected geneve, vxlan or gre".to_string())
    );
}

#[test]
fn cookies_are_kind_plus_stable_fnv_hash() {
    // FNV-1a 64 of "" is 0xcbf29ce484222325 and of "a" is 0xaf63dc4c8601ec8c.
    assert_eq!(Owner::Static.cookie(), 0xfff2_9ce4_8422_2325);
    assert_eq!(Owner::Port("a".into()).cookie(), 0x0263_dc4c_8601_ec8c);
    assert_eq!(Owner::Switch("a".into()).cookie(), 0x0163_dc4c_8601_ec8c);
    assert_eq!(
        Owner::cookie_kind(Owner::Switch("x".into()).cookie()),
        cookie_kind::SWITCH
    );
    assert_ne!(
        Owner::Port("a".into()).cookie(),
        Owner::Port("b".into()).cookie()
    );
}

#[test]
fn locate_needs_a_vif_or_a_reachable_chassis() {
    let mut fx = small();
    let view = fx.view.clone();
    let port = |n: &str| view.port(n).expect("port").clone();
    let input = fx.input();
    assert_eq!(input.locate(&port("a")), Location::Local { ofport: 1 });
    // hv2 prefers gre (no tunnel port here), then vxlan.
    assert_eq!(
        input.locate(&port("b")),
        Location::Remote(TunnelTarget {
            encap: Encap::Vxlan,
            ofport: 101,
            remote_ip: "192.168.0.2".parse().expect("ip"),
        })
    );
    // hv3 only speaks gre: unreachable. d is unbound.
    assert_eq!(input.locate(&port("c")), Location::Nowhere);
    assert_eq!(input.locate(&port("d")), Location::Nowhere);
    // Bound here but no VIF yet.
    fx.vifs.clear();
    assert_eq!(fx.input().locate(&port("a")), Location::Nowhere);
}

#[test]
fn classify_flows() {
    let fx = small();
    let sw = fx.view.switch("ls1").expect("ls1");
    let a = fx.view.port("a").expect("a");
    assert_eq!(
        render_flow(&classify::vif(sw, a, 1, 3, 0)), "priority=100,in_port=1 actions=set_field:0x105->metadata,set_field:0x101->reg14,set_field:0x3->reg13,goto_table:5");
    assert_eq!(
        render_flow(&classify::vif_disabled(1, 0)),
        "priority=100,in_port=1 actions=drop"
    );
    assert_eq!(
        rendered(&crate::physical::tunnel_ingress(sw, &fx.tunnels, 0)), ["priority=110,tun_id=0x5,tun_metadata0=0x8000/0x8000,in_port=100 actions=set_field:0x105->metadata,set_field:0x1->reg10,move:NXM_NX_TUN_METADATA0[16..30]->NXM_NX_REG14[0..14],goto_table:50", "priority=100,tun_id=0x5,in_port=100 actions=set_field:0x105->metadata,set_field:0x1->reg10,move:NXM_NX_TUN_METADATA0[16..30]->NXM_NX_REG14[0..14],move:NXM_NX_TUN_METADATA0[0..15]->NXM_NX_REG15[0..15],goto_table:60", "priority=100,tun_id=0x5,in_port=101 actions=set_field:0x105->metadata,set_field:0x1->reg10,goto_table:50"]);
}

#[test]
fn port_security_flows() {
    let mut p = pv("a", "ls1", 1, "hv1");
    p.port_security = vec![
        addr("00:00:00:00:00:01", &["10.0.0.1", "10.0.1.0/24"]),
        addr("00:00:00:00:00:11", &[]),
    ];
    let mut fx = small();
    fx.apply(ViewDelta {
        revision: 2,
        ports: vec![p],
        ..Default::default()
    });
    let port = fx.view.port("a").expect("a");
    assert_eq!(
        rendered(&port_security::flows(fx.view.switch("ls1").expect("ls1"), port, 0)), ["table=10, priority=110,icmp6,reg14=0x101,metadata=0x105,icmp_type=134 actions=drop", "table=10, priority=110,udp,reg14=0x101,metadata=0x105,tp_src=67,tp_dst=68 actions=drop", "table=10, priority=110,udp6,reg14=0x101,metadata=0x105,tp_src=547,tp_dst=546 actions=drop", "table=10, priority=100,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,ipv6_src=fe80::200:ff:fe00:1,icmp_type=135,icmp_code=0,nd_sll=00:00:00:00:00:01 actions=goto_table:20", "table=10, priority=100,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,ipv6_src=fe80::200:ff:fe00:1,icmp_type=135,icmp_code=0,nd_sll=00:00:00:00:00:00 actions=goto_table:20", "table=10, priority=100,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,ipv6_src=fe80::200:ff:fe00:1,icmp_type=136,icmp_code=0,nd_target=fe80::200:ff:fe00:1,nd_tll=00:00:00:00:00:01 actions=goto_table:20", "table=10, priority=100,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,ipv6_src=fe80::200:ff:fe00:1,icmp_type=136,icmp_code=0,nd_target=fe80::200:ff:fe00:1,nd_tll=00:00:00:00:00:00 actions=goto_table:20", "table=10, priority=100,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,ipv6_src=::,ipv6_dst=ff02::/16,icmp_type=135,icmp_code=0,nd_sll=00:00:00:00:00:00 actions=goto_table:20", "table=10, priority=90,ipv6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,ipv6_src=fe80::200:ff:fe00:1 actions=goto_table:20", "table=10, priority=90,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,ipv6_src=::,ipv6_dst=ff02::/16,icmp_type=131 actions=goto_table:20", "table=10, priority=90,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,ipv6_src=::,ipv6_dst=ff02::/16,icmp_type=143 actions=goto_table:20", "table=10, priority=95,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,icmp_type=135 actions=drop", "table=10, priority=95,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,icmp_type=136 actions=drop", "table=10, priority=90,ip,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,nw_src=10.0.0.1 actions=goto_table:20", "table=10, priority=90,arp,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,arp_spa=10.0.0.1,arp_sha=00:00:00:00:00:01 actions=goto_table:20", "table=10, priority=90,ip,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,nw_src=10.0.1.0/24 actions=goto_table:20", "table=10, priority=90,arp,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,arp_spa=10.0.1.0/24,arp_sha=00:00:00:00:00:01 actions=goto_table:20", "table=10, priority=90,udp,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:01,nw_src=0.0.0.0,nw_dst=255.255.255.255,tp_src=68,tp_dst=67 actions=goto_table:20", "table=10, priority=100,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:11,icmp_type=135,icmp_code=0,nd_sll=00:00:00:00:00:11 actions=goto_table:20", "table=10, priority=100,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:11,icmp_type=136,icmp_code=0,nd_tll=00:00:00:00:00:11 actions=goto_table:20", "table=10, priority=100,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:11,icmp_type=135,icmp_code=0,nd_sll=00:00:00:00:00:00 actions=goto_table:20", "table=10, priority=100,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:11,icmp_type=136,icmp_code=0,nd_tll=00:00:00:00:00:00 actions=goto_table:20", "table=10, priority=95,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:11,icmp_type=135 actions=drop", "table=10, priority=95,icmp6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:11,icmp_type=136 actions=drop", "table=10, priority=90,ip,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:11 actions=goto_table:20", "table=10, priority=90,ipv6,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:11 actions=goto_table:20", "table=10, priority=90,arp,reg14=0x101,metadata=0x105,dl_src=00:00:00:00:00:11,arp_sha=00:00:00:00:00:11 actions=goto_table:20", "table=10, priority=60,reg14=0x101,metadata=0x105 actions=drop"]);
    // Without port security: only the rogue-server drops of a VIF (the table default
    // passes the rest).
    let b = fx.view.port("b").expect("b");
    let sw = fx.view.switch("ls1").expect("ls1");
    assert_eq!(
        rendered(&port_security::flows(sw, b, 0)),
        [
            "table=10, priority=110,icmp6,reg14=0x102,metadata=0x105,icmp_type=134 actions=drop",
            "table=10, priority=110,udp,reg14=0x102,metadata=0x105,tp_src=67,tp_dst=68 actions=drop",
            "table=10, priority=110,udp6,reg14=0x102,metadata=0x105,tp_src=547,tp_dst=546 actions=drop"
        ]
    );
}

#[test]
fn port_security_ipv6_and_allowed_servers() {
    let mut p = pv("a", "ls1", 1, "hv1");
    p.port_security = vec![addr(
        "0a:58:0a:00:00:05",
        &["10.0.0.5", "fd00::5", "fd00:1::/64"],
    )];
    p.options
        .insert(port_security::OPT_ALLOW_SERVER.into(), "true".into());
    let mut fx = small();
    fx.apply(ViewDelta {
        revision: 2,
        ports: vec![p],
        ..Default::default()
    });
    let port = fx.view.port("a").expect("a");
    let flows = rendered(&port_security::flows(
        fx.view.switch("ls1").expect("ls1"),
        port,
        0,
    ));
    let m = "reg14=0x101,metadata=0x105,dl_src=0a:58:0a:00:00:05";
    for want in [
        format!("priority=90,ipv6,{m},ipv6_src=fe80::858:aff:fe00:5 actions=goto_table:20"),
        format!("priority=90,ipv6,{m},ipv6_src=fd00::5 actions=goto_table:20"),
        format!("priority=90,ipv6,{m},ipv6_src=fd00:1::/64 actions=goto_table:20"),
        format!("priority=100,icmp6,{m},ipv6_src=fd00::5,icmp_type=136,icmp_code=0,nd_target=fd00::5,nd_tll=0a:58:0a:00:00:05 actions=goto_table:20"),
        format!("priority=100,icmp6,{m},ipv6_src=fd00:1::/64,icmp_type=136,icmp_code=0,nd_tll=00:00:00:00:00:00 actions=goto_table:20"),
        format!("priority=100,icmp6,{m},ipv6_src=fd00:1::/64,icmp_type=135,icmp_code=0,nd_sll=0a:58:0a:00:00:05 actions=goto_table:20"),
        format!("priority=100,icmp6,{m},ipv6_src=::,ipv6_dst=ff02::/16,icmp_type=135,icmp_code=0,nd_sll=00:00:00:00:00:00 actions=goto_table:20"),
        format!("priority=95,icmp6,{m},icmp_type=135 actions=drop"),
        format!("priority=90,ip,{m},nw_src=10.0.0.5 actions=goto_table:20"),
        "priority=60,reg14=0x101,metadata=0x105 actions=drop".to_string(),
    ] {
        assert!(
            flows.iter().any(|f| f.ends_with(&want)),
            "missing {want} in {flows:#?}"
        );
    }
    // allow-ra-dhcp-server=true: no rogue-server drops; no other ethertype passes.
    assert!(
        !flows.iter().any(|f| f.contains("priority=110")),
        "{flows:#?}"
    );
    assert!(
        !flows.iter().any(|f| f.contains("priority=70")),
        "no catch-all for other ethertypes: {flows:#?}"
    );
}

#[test]
fn arp_responder_flows() {
    let fx = small();
    let sw = fx.view.switch("ls1").expect("ls1");
    let a = fx.view.port("a").expect("a");
    let _reply = "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:00:00:00:00:00:01->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:00:00:00:00:00:01->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:10.0.0.1->arp_spa,IN_PORT";
    assert_eq!(
        rendered(&arp::responder(sw, a, true, 0)), ["table=20, priority=60,arp,reg14=0x101,metadata=0x105,arp_tpa=10.0.0.1,arp_op=1 actions=goto_table:25", "table=20, priority=50,arp,metadata=0x105,arp_tpa=10.0.0.1,arp_op=1 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:00:00:00:00:00:01->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:00:00:00:00:00:01->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:10.0.0.1->arp_spa,IN_PORT"]);
    // A remote or unbound port: only the reply.
    assert_eq!(arp::responder(sw, a, false, 0).len(), 1);
}

#[test]
fn l2_unicast_dispatch_and_output_flows() {
    let fx = small();
    let input = fx.input();
    let sw = fx.view.switch("ls1").expect("ls1");
    let a = fx.view.port("a").expect("a");
    let b = fx.view.port("b").expect("b");
    assert_eq!(rendered(&l2::unicast(sw, a, 0)), ["table=50, priority=50,metadata=0x105,dl_dst=00:00:00:00:00:01 actions=set_field:0x101->reg15,goto_table:58"]);
    assert_eq!(
        rendered(&l2::unicast_drop(sw, b, 0)),
        ["table=50, priority=50,metadata=0x105,dl_dst=00:00:00:00:00:02 actions=drop"]
    );
    let Location::Remote(t) = input.locate(b) else {
        panic!("b is remote");
    };
    let mut geneve = t;
    geneve.encap = Encap::Geneve;
    geneve.ofport = 100;
    assert_eq!(
        [
            render_flow(&crate::physical::output_local(sw, a, 1, 0)),
            render_flow(&crate::physical::dispatch_remote(sw, b, 0)),
            render_flow(&crate::physical::output_remote(sw, b, &t, 0)),
            render_flow(&crate::physical::output_remote(sw, b, &geneve, 0)),
        ], ["table=70, priority=100,reg15=0x101,metadata=0x105 actions=output:1", "table=58, priority=50,reg15=0x102,metadata=0x105 actions=goto_table:70", "table=70, priority=100,reg10=0/0x1,reg15=0x102,metadata=0x105 actions=set_field:0x5->tun_id,set_field:192.168.0.2->tun_dst,output:101", "table=70, priority=100,reg10=0/0x1,reg15=0x102,metadata=0x105 actions=set_field:0x5->tun_id,set_field:192.168.0.2->tun_dst,move:NXM_NX_REG14[0..14]->NXM_NX_TUN_METADATA0[16..30],move:NXM_NX_REG15[0..15]->NXM_NX_TUN_METADATA0[0..15],output:100"]);
}

#[test]
fn flood_groups_cover_local_ports_and_reachable_chassis() {
    let mut fx = small();
    // A second local port, a disabled local port, and a second port on hv2.
    let mut disabled = pv("e", "ls1", 5, "hv1");
    disabled.enabled = false;
    fx.apply(ViewDelta {
        revision: 2,
        ports: vec![pv("f", "ls1", 6, "hv1"), disabled, pv("g", "ls1", 7, "hv2")],
        ..Default::default()
    });
    fx.vifs.insert("e".into(), 5);
    fx.vifs.insert("f".into(), 6);
    fx.sync();
    let input = fx.input();
    let sw = fx.view.switch("ls1").expect("ls1");
    let m = l2::members(&input, sw);
    assert_eq!(m.local, [0x101, 0x106], "port keys");
    assert_eq!(m.remote.len(), 1, "one bucket per chassis, hv3 unreachable");
    assert!(m.unknown_local.is_empty() && m.unknown_remote.is_empty());
    let (flows, groups) = l2::flood(&input, sw, 0);
    assert_eq!(rendered(&flows), ["table=50, priority=100,reg10=0x1/0x1,metadata=0x105,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=group:1", "table=50, priority=90,metadata=0x105,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=group:2"]);
    let groups: Vec<String> = groups.iter().map(render_group).collect();
    assert_eq!(groups, ["group_id=2,type=all,bucket=bucket_id:0,actions=set_field:0x101->reg15,resubmit(,60),bucket=bucket_id:1,actions=set_field:0x106->reg15,resubmit(,60),bucket=bucket_id:2,actions=set_field:0x8000->reg15,set_field:0x5->tun_id,set_field:192.168.0.2->tun_dst,output:101", "group_id=1,type=all,bucket=bucket_id:0,actions=set_field:0x101->reg15,resubmit(,60),bucket=bucket_id:1,actions=set_field:0x106->reg15,resubmit(,60)"]);
}

#[test]
fn unknown_unicast_floods_to_unknown_ports_only() {
    let mut fx = small();
    // Only a remote port has `unknown`: traffic from tunnels must not bounce back.
    let mut b = pv("b", "ls1", 2, "hv2");
    b.unknown = true;
    fx.apply(ViewDelta {
        revision: 2,
        ports: vec![b],
        ..Default::default()
    });
    let input = fx.input();
    let sw = fx.view.switch("ls1").expect("ls1");
    let (flows, groups) = l2::flood(&input, sw, 0);
    let flows = rendered(&flows);
    assert_eq!(
        flows[2..],
        [
            "table=50, priority=20,reg10=0x1/0x1,metadata=0x105 actions=drop",
            "table=50, priority=10,metadata=0x105 actions=group:4"
        ]
    );
    assert_eq!(render_group(&groups[2]), "group_id=4,type=all,bucket=bucket_id:0,actions=set_field:0x8000->reg15,set_field:0x5->tun_id,set_field:192.168.0.2->tun_dst,output:101");
    assert_eq!(groups.len(), 3);

    // A local unknown port adds the local-only group for tunnel traffic.
    let mut a = pv("a", "ls1", 1, "hv1");
    a.unknown = true;
    fx.apply(ViewDelta {
        revision: 3,
        ports: vec![a],
        ..Default::default()
    });
    let input = fx.input();
    let sw = fx.view.switch("ls1").expect("ls1");
    let (flows, groups) = l2::flood(&input, sw, 0);
    assert_eq!(
        render_flow(&flows[2]),
        "table=50, priority=20,reg10=0x1/0x1,metadata=0x105 actions=group:3"
    );
    assert_eq!(
        render_group(&groups[3]),
        "group_id=3,type=all,bucket=bucket_id:0,actions=set_field:0x101->reg15,resubmit(,60)"
    );
}

#[test]
fn disabled_ports_only_get_drops() {
    let mut fx = small();
    let mut a = pv("a", "ls1", 1, "hv1");
    a.enabled = false;
    a.port_security = vec![addr("00:00:00:00:00:01", &[])];
    fx.apply(ViewDelta {
        revision: 2,
        ports: vec![a],
        ..Default::default()
    });
    let d = compile_all(&fx.input());
    let flows: Vec<String> = d
        .owner_flows(&Owner::Port("a".into()))
        .into_iter()
        .map(render_flow)
        .collect();
    let c = Owner::Port("a".into()).cookie();
    assert_eq!(
        flows,
        [
            format!("cookie={c:#x}, priority=100,in_port=1 actions=drop"),
            format!(
                "cookie={c:#x}, table=50, priority=50,metadata=0x105,dl_dst=00:00:00:00:00:01 actions=drop"
            ),
        ]
    );
    // And it is in no flood group.
    let flood = d
        .group(fx.group("ls1", GroupKind::Flood))
        .expect("flood group");
    assert!(!render_group(flood).contains("0x101->reg15"));
}

#[test]
fn defaults_cover_every_stage() {
    let flows = rendered(&framework::default_flows(0));
    assert_eq!(
        flows,
        [
            "priority=0 actions=drop",
            "table=5, priority=0 actions=goto_table:10",
            "table=10, priority=0 actions=goto_table:20",
            "table=20, priority=0 actions=goto_table:25",
            "table=25, priority=0 actions=goto_table:26",
            "table=26, priority=0 actions=goto_table:27",
            "table=27, priority=0 actions=goto_table:30",
            "table=30, priority=0 actions=goto_table:31",
            "table=31, priority=0 actions=goto_table:32",
            "table=32, priority=0 actions=goto_table:34",
            "table=34, priority=0 actions=goto_table:35",
            "table=35, priority=0 actions=goto_table:36",
            "table=36, priority=0 actions=goto_table:37",
            "table=37, priority=0 actions=goto_table:38",
            "table=38, priority=0 actions=goto_table:40",
            "table=40, priority=0 actions=goto_table:50",
            "table=41, priority=0 actions=goto_table:42",
            "table=42, priority=0 actions=goto_table:43",
            "table=43, priority=0 actions=goto_table:44",
            "table=44, priority=0 actions=goto_table:45",
            "table=45, priority=0 actions=goto_table:46",
            "table=46, priority=0 actions=goto_table:47",
            "table=47, priority=0 actions=goto_table:48",
            "table=48, priority=0 actions=goto_table:49",
            "table=49, priority=0 actions=goto_table:50",
            "table=50, priority=0 actions=drop",
            "table=58, priority=0 actions=goto_table:60",
            "table=60, priority=0 actions=goto_table:61",
            "table=61, priority=0 actions=goto_table:62",
            "table=62, priority=0 actions=goto_table:63",
            "table=63, priority=0 actions=goto_table:64",
            "table=64, priority=0 actions=goto_table:65",
            "table=65, priority=0 actions=goto_table:66",
            "table=66, priority=0 actions=goto_table:68",
            "table=68, priority=0 actions=goto_table:70",
            "table=70, priority=0 actions=drop"
        ]
    );
}

#[test]
fn duplicate_keys_resolve_to_the_smallest_owner_and_survive_removal() {
    let mut fx = small();
    // Port "z" claims a's MAC (a controller-side mistake): a stays effective.
    let mut z = pv("z", "ls1", 1, "hv2");
    z.addresses[0].ips.clear();
    z.tunnel_key = 0x200;
    let change = fx.apply(ViewDelta {
        revision: 2,
        ports: vec![z],
        ..Default::default()
    });
    let mut d = compile_all(&fx.input());
    let key = l2::unicast(
        fx.view.switch("ls1").expect("ls1"),
        fx.view.port("a").expect("a"),
        0,
    )[0]
    .key();
    assert_eq!(
        d.flow(&key).map(|f| f.cookie),
        Some(Owner::Port("a".into()).cookie())
    );
    assert_eq!(d.conflicting_flow_keys().count(), 1);
    let _ = change;
    // Remove a: z's flow takes over.
    let change = fx.apply(ViewDelta {
        revision: 3,
        deleted_ports: vec!["a".into()],
        ..Default::default()
    });
    let r = recompile(&mut d, &fx.input(), &change);
    assert_eq!(
        d.flow(&key).map(|f| f.cookie),
        Some(Owner::Port("z".into()).cookie())
    );
    let (before, after) = r.delta.flows.get(&key).expect("touched");
    assert_ne!(before, after);
}

/// A view with `n` ports on one switch: every 4th local, the rest spread over 10 chassis.
fn big(n: u16) -> Fx {
    let chassis: Vec<RemoteChassis> = (2..12)
        .map(|i| cv(&format!("hv{i}"), &format!("192.168.0.{i}"), &["geneve"]))
        .collect();
    let mut vifs = Vec::new();
    let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let ports = (0..n)
        .map(|i| {
            let ch = if i % 4 == 0 {
                vifs.push((names[usize::from(i)].as_str(), u32::from(i) + 1));
                "hv1".to_string()
            } else {
                format!("hv{}", 2 + i % 10)
            };
            pv(&names[usize::from(i)], "ls1", i, &ch)
        })
        .collect();
    let mut fx = Fx::new(
        ViewDelta {
            revision: 1,
            snapshot: true,
            switches: vec![sv("ls1", 5), sv("ls2", 6)],
            ports,
            chassis,
            ..Default::default()
        },
        &[],
    );
    fx.vifs = vifs.into_iter().map(|(n, o)| (n.to_string(), o)).collect();
    fx.sync();
    fx
}

#[test]
fn adding_one_port_to_4000_recompiles_only_that_port_and_its_switch() {
    let mut fx = big(4000);
    let mut d = compile_all(&fx.input());
    // 1000 local ports x 5 flows + 3000 remote ports x 2 flows + switch and static flows.
    assert!(d.flow_count() > 11_000, "{}", d.flow_count());

    let change = fx.apply(ViewDelta {
        revision: 2,
        ports: vec![pv("new", "ls1", 4000, "hv1")],
        ..Default::default()
    });
    fx.vifs.insert("new".into(), 5000);
    fx.sync();
    let r = recompile(&mut d, &fx.input(), &change);
    assert!(!r.full);
    let expected: BTreeSet<Owner> = [Owner::Port("new".into()), Owner::Switch("ls1".into())].into();
    assert_eq!(r.owners, expected);
    // New: classify, 3 rogue-server drops (port-sec-in), ARP (own-request + reply), L2
    // unicast, output; the two flood groups change. Nothing else.
    let diff = crate::diff::diff_delta(&r.delta);
    assert_eq!(diff.flows.adds.len(), 8, "{:?}", diff.flows.adds);
    assert!(diff.flows.modifies.is_empty() && diff.flows.deletes.is_empty());
    assert_eq!(diff.groups.modifies.len(), 2);
    assert_eq!(diff.groups.len(), 2);
    assert!(
        r.delta.flows.len() <= 13,
        "touched {} keys",
        r.delta.flows.len()
    );

    // A remote port on a chassis already on the switch: the groups don't change.
    let change = fx.apply(ViewDelta {
        revision: 3,
        ports: vec![pv("new2", "ls1", 4001, "hv2")],
        ..Default::default()
    });
    let r = recompile(&mut d, &fx.input(), &change);
    assert_eq!(r.owners.len(), 2);
    let diff = crate::diff::diff_delta(&r.delta);
    assert_eq!(
        diff.flows.adds.len(),
        4,
        "ARP reply, L2 unicast, dispatch, output"
    );
    assert!(diff.groups.is_empty());
}

/// After any sequence of changes, the incrementally maintained state equals a fresh compile,
/// and so does its fingerprint (kept up to date in O(change), for the periodic resync).
fn assert_consistent(fx: &Fx, d: &DesiredState) {
    let fresh = compile_all(&fx.input());
    assert_eq!(sorted_state(d), sorted_state(&fresh));
    assert_eq!(d.fingerprint(), fresh.fingerprint());
    assert_eq!(d.table_flow_counts(), fresh.table_flow_counts());
    assert_eq!(
        d.fingerprint(),
        crate::fingerprint::FlowFingerprint::of(d.flows())
    );
}

#[test]
fn recompile_tracks_switch_chassis_and_port_changes() {
    let mut fx = big(40);
    let mut d = compile_all(&fx.input());

    // A switch VNI change recompiles the switch and all its ports (the VNI is in each).
    let change = fx.apply(ViewDelta {
        revision: 2,
        switches: vec![sv("ls1", 9)],
        ..Default::default()
    });
    let r = recompile(&mut d, &fx.input(), &change);
    assert_eq!(r.owners.len(), 41);
    let flood = d.group(fx.group("ls1", GroupKind::Flood)).expect("same id");
    assert!(render_group(flood).contains("0x9->tun_id"));
    assert_consistent(&fx, &d);

    // A chassis IP change recompiles the ports on it and their switch.
    let change = fx.apply(ViewDelta {
        revision: 3,
        chassis: vec![cv("hv2", "192.168.1.2", &["geneve"])],
        ..Default::default()
    });
    let r = recompile(&mut d, &fx.input(), &change);
    // p10 and p30 live on hv2.
    assert_eq!(r.owners.len(), 2 + 1, "{:?}", r.owners);
    assert_consistent(&fx, &d);

    // A chassis removal makes its ports unreachable.
    let change = fx.apply(ViewDelta {
        revision: 4,
        deleted_chassis: vec!["hv3".into()],
        ..Default::default()
    });
    recompile(&mut d, &fx.input(), &change);
    assert_consistent(&fx, &d);

    // A port moving to another switch recompiles both switches.
    let mut moved = pv("p1", "ls2", 1, "hv2");
    moved.unknown = true;
    let change = fx.apply(ViewDelta {
        revision: 5,
        ports: vec![moved],
        ..Default::default()
    });
    let r = recompile(&mut d, &fx.input(), &change);
    assert!(r.owners.contains(&Owner::Switch("ls1".into())));
    assert!(r.owners.contains(&Owner::Switch("ls2".into())));
    assert_consistent(&fx, &d);

    // A VIF disappearing (the agent marks the port).
    fx.vifs.remove("p0");
    fx.sync();
    let mut change = ViewChange::default();
    change.mark_port("p0");
    recompile(&mut d, &fx.input(), &change);
    assert_consistent(&fx, &d);

    // Deleting a switch cascades.
    let change = fx.apply(ViewDelta {
        revision: 6,
        deleted_switches: vec!["ls2".into()],
        ..Default::default()
    });
    recompile(&mut d, &fx.input(), &change);
    assert_consistent(&fx, &d);
    assert!(d.owners().all(|o| *o != Owner::Switch("ls2".into())));

    // A tunnel port change recompiles everything.
    fx.tunnels.insert(Encap::Geneve, 200);
    let r = recompile(&mut d, &fx.input(), &ViewChange::default());
    assert!(r.full);
    assert_consistent(&fx, &d);

    // An empty change does nothing.
    let r = recompile(&mut d, &fx.input(), &ViewChange::default());
    assert!(r.owners.is_empty() && r.delta.is_noop());
}

// ---- Routing (l3.rs) ----

use weft_proto::v1::{RouterPortView, RouterView};

fn rv(name: &str, key: u32) -> RouterView {
    RouterView {
        name: name.into(),
        tunnel_key: key,
        enabled: true,
        static_routes: Vec::new(),
        ..Default::default()
    }
}

fn rpv(name: &str, router: &str, mac: &str, net: &str, key: u32) -> RouterPortView {
    RouterPortView {
        name: name.into(),
        router: router.into(),
        mac: mac.into(),
        networks: vec![net.into()],
        peer: String::new(),
        tunnel_key: key,
        enabled: true,
        ..Default::default()
    }
}

/// The switch end of router port `lrp`.
fn router_lsp(name: &str, switch: &str, lrp: &str, key: u32) -> PortView {
    PortView {
        name: name.into(),
        switch_name: switch.into(),
        r#type: "router".into(),
        options: [("router-port".to_string(), lrp.to_string())].into(),
        enabled: true,
        tunnel_key: key,
        ..Default::default()
    }
}

fn subnet_switch(name: &str, vni: u32, subnet: &str) -> SwitchView {
    SwitchView {
        subnet: subnet.into(),
        ..sv(name, vni)
    }
}

fn vif(name: &str, switch: &str, mac: &str, ip: &str, key: u32, chassis: &str) -> PortView {
    PortView {
        name: name.into(),
        switch_name: switch.into(),
        addresses: vec![addr(mac, &[ip])],
        chassis: chassis.into(),
        enabled: true,
        tunnel_key: key,
        ..Default::default()
    }
}

/// Two switches (10.31.0.0/24 key 0x101, 10.32.0.0/24 key 0x102) on router lr1 (key 0x200).
fn routed() -> Fx {
    Fx::new(
        ViewDelta {
            revision: 1,
            snapshot: true,
            switches: vec![
                subnet_switch("ls1", 1, "10.31.0.0/24"),
                subnet_switch("ls2", 2, "10.32.0.0/24"),
            ],
            ports: vec![
                vif("a", "ls1", "00:00:00:00:01:0a", "10.31.0.10", 10, "hv1"),
                vif("b", "ls2", "00:00:00:00:02:0b", "10.32.0.11", 11, "hv2"),
                router_lsp("ls1-lr1", "ls1", "lr1-ls1", 1),
                router_lsp("ls2-lr1", "ls2", "lr1-ls2", 1),
            ],
            chassis: vec![cv("hv2", "192.168.0.2", &["geneve"])],
            routers: vec![rv("lr1", 0x200)],
            router_ports: vec![
                rpv("lr1-ls1", "lr1", "0a:00:00:00:01:01", "10.31.0.1/24", 1),
                rpv("lr1-ls2", "lr1", "0a:00:00:00:02:01", "10.32.0.1/24", 2),
            ],
            ..Default::default()
        },
        &[("a", 1)],
    )
}

fn owner_rendered(d: &DesiredState, o: &Owner) -> Vec<String> {
    let mut v: Vec<String> = d.owner_flows(o).into_iter().map(render_flow).collect();
    v.sort();
    v
}

#[test]
fn router_port_flows_enter_route_resolve_and_exit() {
    let fx = routed();
    let d = compile_all(&fx.input());
    let o = Owner::RouterPort("lr1-ls2".into());
    let c = o.cookie();
    assert_eq!(c >> 56, u64::from(cookie_kind::ROUTER_PORT));
    let flows = owner_rendered(&d, &o);
    let want = [
        // Switch side: ARP for the router IP (= the gateway) and entry into the router.
        format!("cookie={c:#x}, table=20, priority=50,arp,metadata=0x102,arp_tpa=10.32.0.1,arp_op=1 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:0a:00:00:00:02:01->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:0a:00:00:00:02:01->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:10.32.0.1->arp_spa,IN_PORT"),
        format!("cookie={c:#x}, table=40, priority=100,metadata=0x102,dl_dst=0a:00:00:00:02:01 actions=set_field:0x200->metadata,set_field:0x2->reg14,set_field:0->reg15,goto_table:41"),
        // Connected route, /24.
        format!("cookie={c:#x}, table=44, priority=340,ip,metadata=0x200,nw_dst=10.32.0.0/24 actions=dec_ttl,move:NXM_OF_IP_DST[]->NXM_NX_REG0[],set_field:0xa200001->reg1,set_field:0a:00:00:00:02:01->eth_src,set_field:0x2->reg15,goto_table:45"),
        // Next hop b.
        format!("cookie={c:#x}, table=46, priority=100,reg0=0xa20000b,reg15=0x2,metadata=0x200 actions=set_field:00:00:00:00:02:0b->eth_dst,goto_table:47"),
        // Exit into ls2 as its router port, at l2-lookup.
        format!("cookie={c:#x}, table=48, priority=100,reg15=0x2,metadata=0x200 actions=set_field:0x102->metadata,set_field:0x1->reg14,set_field:0->reg15,goto_table:50"),
    ];
    for w in &want {
        assert!(flows.contains(w), "missing {w}\nin {flows:#?}");
    }
    // Ping to either router IP arriving on this port is answered; ARP only for its own.
    let echo: Vec<_> = flows.iter().filter(|f| f.contains("icmp_type=8")).collect();
    assert_eq!(echo.len(), 2, "{echo:#?}");
    assert!(echo.iter().any(|f| f.contains("nw_dst=10.31.0.1") && f.contains("reg14=0x2")
        && f.ends_with("actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:0a:00:00:00:02:01->eth_src,move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[],set_field:10.31.0.1->ip_src,set_field:0->icmp_type,IN_PORT")));
    assert!(flows.iter().any(
        |f| f.contains("table=41, priority=80,ip,metadata=0x200,nw_dst=10.32.0.1 actions=drop")
    ));
    // The router's own defaults.
    let r = owner_rendered(&d, &Owner::Router("lr1".into()));
    assert_eq!(r.len(), 6, "{r:#?}");
    // ARP replies to each port from a local port go to every other chassis (hv2), then into
    // the router here.
    assert!(r.iter().any(|f| f.contains("table=20, priority=115,arp,reg10=0/0x1,metadata=0x102,dl_dst=0a:00:00:00:02:01,arp_op=2 actions=set_field:0x8000->reg15,set_field:0x2->tun_id,set_field:192.168.0.2->tun_dst,")
        && f.ends_with("output:100,goto_table:40")), "{r:#?}");
    assert!(r
        .iter()
        .any(|f| f.contains("table=41, priority=50,ip,metadata=0x200 actions=goto_table:42")));
    // TTL 0 and 1 arriving on this port are punted for an ICMP time exceeded from its
    // address (10.32.0.1 = 0a.20.00.01) and MAC, metered; below the router's own addresses.
    let ttl: Vec<_> = flows.iter().filter(|f| f.contains("nw_ttl=")).collect();
    assert_eq!(ttl.len(), 2, "{ttl:#?}");
    for t in [0, 1] {
        assert!(ttl.iter().any(|f| f.contains(&format!(
            "table=41, priority=70,ip,reg14=0x2,metadata=0x200,nw_ttl={t} actions=controller(userdata=00.00.00.02.0a.20.00.01.0a.00.00.00.02.01,meter_id="
        ))), "{ttl:#?}");
    }
    // The router answers the gateway: no pinctrl gateway punt on either switch (the only
    // punts are the time-exceeded ones).
    let all = sorted_state(&d);
    assert!(
        !all.iter()
            .any(|f| f.contains("controller(userdata=00.00.00.01")),
        "{all:#?}"
    );
    // lr-neigh miss: ARP for the next hop from lr1-ls2 (MAC, ls2 key 0x102, ls2-lr1 key 1);
    // ARP replies to the port are learned (router 0x200, port 2).
    assert!(flows.iter().any(|f| f.contains(
        "table=46, priority=10,reg15=0x2,metadata=0x200 actions=controller(userdata=00.00.00.03.0a.00.00.00.02.01.00.00.01.02.00.00.00.01,meter_id="
    )), "{flows:#?}");
    assert!(flows.iter().any(|f| f.contains(
        "table=41, priority=90,arp,reg14=0x2,metadata=0x200,arp_op=2 actions=controller(userdata=00.00.00.04.00.00.02.00.00.00.00.02,meter_id="
    )), "{flows:#?}");
    assert_eq!(d.conflicting_flow_keys().count(), 0);
}

#[test]
fn longer_prefixes_route_first_and_disabled_routers_have_no_flows() {
    assert!(l3::route_priority(32) > l3::route_priority(24));
    assert!(l3::route_priority(24) > l3::route_priority(16));
    let mut fx = routed();
    let mut d = compile_all(&fx.input());
    let mut off = rv("lr1", 0x200);
    off.enabled = false;
    let change = fx.apply(ViewDelta {
        revision: 2,
        routers: vec![off],
        ..Default::default()
    });
    recompile(&mut d, &fx.input(), &change);
    assert_consistent(&fx, &d);
    let all = sorted_state(&d);
    assert!(!all.iter().any(|f| f.contains("0x200")), "{all:#?}");
    // The switch gateway punt comes back when no router answers for it.
    assert!(all.iter().any(|f| f.contains("controller(")));
}

/// Incremental recompiles track router, router port and switch port changes exactly.
#[test]
fn recompile_tracks_router_changes() {
    let mut fx = routed();
    let mut d = compile_all(&fx.input());
    let steps: Vec<ViewDelta> = vec![
        // A new pod on ls2 gets a neighbour binding.
        ViewDelta {
            ports: vec![vif(
                "c",
                "ls2",
                "00:00:00:00:02:0c",
                "10.32.0.12",
                12,
                "hv1",
            )],
            ..Default::default()
        },
        // Its address changes.
        ViewDelta {
            ports: vec![vif(
                "c",
                "ls2",
                "00:00:00:00:02:0d",
                "10.32.0.13",
                12,
                "hv1",
            )],
            ..Default::default()
        },
        // The router port's network and MAC change.
        ViewDelta {
            router_ports: vec![rpv(
                "lr1-ls2",
                "lr1",
                "0a:00:00:00:02:02",
                "10.32.0.254/16",
                2,
            )],
            ..Default::default()
        },
        // A third switch and router port.
        ViewDelta {
            switches: vec![subnet_switch("ls3", 3, "10.33.0.0/24")],
            ports: vec![
                router_lsp("ls3-lr1", "ls3", "lr1-ls3", 1),
                vif("e", "ls3", "00:00:00:00:03:0e", "10.33.0.14", 14, "hv2"),
            ],
            router_ports: vec![rpv(
                "lr1-ls3",
                "lr1",
                "0a:00:00:00:03:01",
                "10.33.0.1/24",
                3,
            )],
            ..Default::default()
        },
        // The router-type port is re-pointed at nothing, then deleted.
        ViewDelta {
            ports: vec![router_lsp("ls3-lr1", "ls3", "nosuch", 1)],
            ..Default::default()
        },
        ViewDelta {
            deleted_ports: vec!["ls3-lr1".into()],
            ..Default::default()
        },
        // A router port is deleted.
        ViewDelta {
            deleted_router_ports: vec!["lr1-ls3".into()],
            ..Default::default()
        },
        // A pod leaves.
        ViewDelta {
            deleted_ports: vec!["b".into()],
            ..Default::default()
        },
        // The router's key changes.
        ViewDelta {
            routers: vec![rv("lr1", 0x300)],
            ..Default::default()
        },
        // The switch's key changes.
        ViewDelta {
            switches: vec![SwitchView {
                tunnel_key: 0x150,
                ..subnet_switch("ls1", 1, "10.31.0.0/24")
            }],
            ..Default::default()
        },
        // The router goes, with its ports.
        ViewDelta {
            deleted_routers: vec!["lr1".into()],
            ..Default::default()
        },
    ];
    for (i, mut step) in steps.into_iter().enumerate() {
        step.revision = 2 + i as i64;
        let change = fx.apply(step);
        recompile(&mut d, &fx.input(), &change);
        assert_consistent(&fx, &d);
    }
    assert!(d
        .owners()
        .all(|o| !matches!(o, Owner::Router(_) | Owner::RouterPort(_))));
}

/// Every routing flow survives the wire: encoded as a flow-stats reply and decoded, it is
/// the flow compiled (so a restarted agent or a resync sees no difference). The move of
/// IPv4 addresses uses the OXM header OVS reports back.
#[test]
fn routing_flows_roundtrip_through_the_codec() {
    use weft_openflow::codec::{
        decode, encode_to_vec, Message, MultipartReply, MultipartReplyBody,
    };
    let fx = routed();
    let d = compile_all(&fx.input());
    let flows: Vec<Flow> = d
        .flows()
        .filter(|f| (Stage::L3Entry.table()..=Stage::LrExit.table()).contains(&f.table))
        .cloned()
        .collect();
    assert!(flows.len() > 10);
    let msg = Message::MultipartReply(MultipartReply {
        flags: 0,
        body: MultipartReplyBody::FlowDesc(flows.clone()),
    });
    let bytes = encode_to_vec(1, &msg).expect("encode");
    let (_, back) = decode(&bytes).expect("decode");
    assert_eq!(back, msg);
}

// ---- Static routes (static_routes.rs) ----

fn route(
    prefix: &str,
    nexthop: &str,
    port: &str,
    policy: &str,
) -> weft_proto::v1::LogicalRouterStaticRoute {
    weft_proto::v1::LogicalRouterStaticRoute {
        ip_prefix: prefix.into(),
        nexthop: nexthop.into(),
        output_port: port.into(),
        policy: policy.into(),
    }
}

fn routed_with(routes: Vec<weft_proto::v1::LogicalRouterStaticRoute>) -> RouterView {
    RouterView {
        static_routes: routes,
        ..rv("lr1", 0x200)
    }
}

#[test]
fn static_routes_pick_their_port_and_ecmp_hashes_over_next_hops() {
    let mut fx = routed();
    let mut d = compile_all(&fx.input());
    let change = fx.apply(ViewDelta {
        revision: 2,
        routers: vec![routed_with(vec![
            // One next hop, port inferred from the next hop's network (lr1-ls2).
            route("10.99.0.0/16", "10.32.0.11", "", ""),
            // ECMP across a pod on each switch.
            route("10.98.0.0/16", "10.32.0.11", "", ""),
            route("10.98.0.0/16", "10.31.0.10", "", ""),
            // Source routing, explicit port.
            route("10.31.0.0/24", "10.32.0.11", "lr1-ls2", "src-ip"),
            // A default route, and one whose next hop no port reaches (left out).
            route("0.0.0.0/0", "10.31.0.10", "", ""),
            route("10.97.0.0/16", "192.0.2.1", "", ""),
        ])],
        ..Default::default()
    });
    fx.sync();
    let r = recompile(&mut d, &fx.input(), &change);
    assert!(r.owners.contains(&Owner::Router("lr1".into())));
    assert_consistent(&fx, &d);
    let o = Owner::Router("lr1".into());
    let c = o.cookie();
    let flows = owner_rendered(&d, &o);
    let g = fx
        .ids
        .ecmp_group(
            "lr1",
            weft_proto::model::route::Policy::DstIp,
            "10.98.0.0/16".parse().unwrap(),
        )
        .expect("an ECMP group id");
    let want = [
        format!("cookie={c:#x}, table=44, priority=259,ip,metadata=0x200,nw_dst=10.99.0.0/16 actions=dec_ttl,set_field:0xa20000b->reg0,set_field:0xa200001->reg1,set_field:0a:00:00:00:02:01->eth_src,set_field:0x2->reg15,goto_table:45"),
        format!("cookie={c:#x}, table=44, priority=259,ip,metadata=0x200,nw_dst=10.98.0.0/16 actions=dec_ttl,group:{g}"),
        format!("cookie={c:#x}, table=44, priority=338,ip,metadata=0x200,nw_src=10.31.0.0/24 actions=dec_ttl,set_field:0xa20000b->reg0,set_field:0xa200001->reg1,set_field:0a:00:00:00:02:01->eth_src,set_field:0x2->reg15,goto_table:45"),
        format!("cookie={c:#x}, table=44, priority=99,ip,metadata=0x200 actions=dec_ttl,set_field:0xa1f000a->reg0,set_field:0xa1f0001->reg1,set_field:0a:00:00:00:01:01->eth_src,set_field:0x1->reg15,goto_table:45"),
    ];
    for w in &want {
        assert!(flows.contains(w), "missing {w}\nin {flows:#?}");
    }
    assert!(!flows.iter().any(|f| f.contains("10.97.0.0")), "{flows:#?}");
    // Longer prefixes first; connected before static before src-ip at one length.
    assert!(
        super::l3::route_priority(24)
            > super::static_routes::static_priority(24, weft_proto::model::route::Policy::DstIp)
    );
    assert!(
        super::static_routes::static_priority(24, weft_proto::model::route::Policy::DstIp)
            > super::static_routes::static_priority(24, weft_proto::model::route::Policy::SrcIp)
    );
    assert!(
        super::static_routes::static_priority(25, weft_proto::model::route::Policy::SrcIp)
            > super::l3::route_priority(24)
    );
    let groups: Vec<String> = d.groups().map(render_group).collect();
    let want_group = format!("group_id={g},type=select,selection_method=hash,fields(ip_src,ip_dst,tcp_src,tcp_dst,udp_src,udp_dst),bucket=bucket_id:0,actions=set_field:0xa20000b->reg0,set_field:0xa200001->reg1,set_field:0a:00:00:00:02:01->eth_src,set_field:0x2->reg15,resubmit(,45),bucket=bucket_id:1,actions=set_field:0xa1f000a->reg0,set_field:0xa1f0001->reg1,set_field:0a:00:00:00:01:01->eth_src,set_field:0x1->reg15,resubmit(,45)");
    assert!(groups.contains(&want_group), "{groups:#?}");

    // A router port change re-resolves the routes (the router is recompiled).
    let change = fx.apply(ViewDelta {
        revision: 3,
        router_ports: vec![rpv(
            "lr1-ls2",
            "lr1",
            "0a:00:00:00:02:99",
            "10.32.0.1/24",
            2,
        )],
        ..Default::default()
    });
    fx.sync();
    let r = recompile(&mut d, &fx.input(), &change);
    assert!(r.owners.contains(&Owner::Router("lr1".into())));
    assert_consistent(&fx, &d);
    // One ECMP next hop removed: the group goes, its id is released.
    let change = fx.apply(ViewDelta {
        revision: 4,
        routers: vec![routed_with(vec![route(
            "10.98.0.0/16",
            "10.32.0.11",
            "",
            "",
        )])],
        ..Default::default()
    });
    fx.sync();
    recompile(&mut d, &fx.input(), &change);
    assert_consistent(&fx, &d);
    assert_eq!(
        d.groups()
            .filter(|g| g.id == g.id && matches!(g.kind, weft_openflow::flow::GroupType::Select(_)))
            .count(),
        0
    );
    assert!(fx
        .ids
        .ecmp_group(
            "lr1",
            weft_proto::model::route::Policy::DstIp,
            "10.98.0.0/16".parse().unwrap()
        )
        .is_none());
}

#[test]
fn learned_neighbours_are_lr_neigh_flows_below_the_views() {
    use crate::pinctrl::neigh::{Learned, Neighbours};
    let fx = routed();
    let mut n = Neighbours::new();
    let now = std::time::Instant::now();
    for (ip, mac) in [([10, 32, 0, 200], 0xc8), ([10, 32, 0, 11], 0xee)] {
        n.learn(
            &Learned {
                router_key: 0x200,
                lrp_key: 2,
                ip: std::net::Ipv4Addr::from(ip),
                mac: weft_openflow::flow::Mac([0x0a, 0, 0, 0, 9, mac]),
            },
            now,
        );
    }
    let input = CompileInput {
        neighbours: &n,
        localnets: &crate::pipeline::NO_LOCALNETS,
        ..fx.input()
    };
    let d = compile_all(&input);
    let o = Owner::RouterPort("lr1-ls2".into());
    let c = o.cookie();
    let flows = owner_rendered(&d, &o);
    assert!(flows.contains(&format!("cookie={c:#x}, table=46, priority=90,reg0=0xa2000c8,reg15=0x2,metadata=0x200 actions=set_field:0a:00:00:00:09:c8->eth_dst,goto_table:47")), "{flows:#?}");
    // b's address is the view's (00:00:00:00:02:0b): a learned MAC never overrides it.
    assert!(
        !flows.iter().any(|f| f.contains("0a:00:00:00:09:ee")),
        "{flows:#?}"
    );
    assert_eq!(d.conflicting_flow_keys().count(), 0);
}

#[test]
fn learned_neighbours_are_recovered_from_their_flows() {
    use crate::pinctrl::neigh::{Learned, Neighbours};
    let fx = routed();
    let mut n = Neighbours::new();
    let now = std::time::Instant::now();
    let l = Learned {
        router_key: 0x200,
        lrp_key: 2,
        ip: std::net::Ipv4Addr::new(10, 32, 0, 200),
        mac: weft_openflow::flow::Mac([0x0a, 0, 0, 0, 9, 0xc8]),
    };
    n.learn(&l, now);
    let d = compile_all(&CompileInput {
        neighbours: &n,
        localnets: &crate::pipeline::NO_LOCALNETS,
        ..fx.input()
    });
    let flows: Vec<weft_openflow::flow::Flow> = d.flows().cloned().collect();
    let mut again = Neighbours::new();
    assert_eq!(again.recover(&flows, now), 1);
    assert_eq!(
        again.of_port(0x200, 2).collect::<Vec<_>>(),
        vec![(l.ip, l.mac)]
    );
    // The same compile from the recovered bindings: nothing for the restarted agent to change.
    let d2 = compile_all(&CompileInput {
        neighbours: &again,
        localnets: &crate::pipeline::NO_LOCALNETS,
        ..fx.input()
    });
    assert_eq!(sorted_state(&d), sorted_state(&d2));
}

#[test]
fn recompile_tracks_chassis_and_attachments_for_router_owned_flows() {
    let mut fx = routed();
    let mut d = compile_all(&fx.input());
    // A third chassis joins with a pod on ls1: the router's ARP reply floods reach it.
    let change = fx.apply(ViewDelta {
        revision: 2,
        chassis: vec![cv("hv3", "192.168.0.3", &["vxlan"])],
        ports: vec![vif(
            "c3",
            "ls1",
            "00:00:00:00:01:33",
            "10.31.0.33",
            33,
            "hv3",
        )],
        ..Default::default()
    });
    fx.sync();
    let r = recompile(&mut d, &fx.input(), &change);
    assert!(
        r.owners.contains(&Owner::Router("lr1".into())),
        "{:?}",
        r.owners
    );
    assert_consistent(&fx, &d);
    let rf = owner_rendered(&d, &Owner::Router("lr1".into()));
    assert!(
        rf.iter()
            .any(|f| f.contains("table=20") && f.contains("192.168.0.3")),
        "{rf:#?}"
    );
    // ls2's router-type port goes away: its flood flow goes with it.
    let change = fx.apply(ViewDelta {
        revision: 3,
        deleted_ports: vec!["ls2-lr1".into()],
        ..Default::default()
    });
    fx.sync();
    let r = recompile(&mut d, &fx.input(), &change);
    assert!(
        r.owners.contains(&Owner::Router("lr1".into())),
        "{:?}",
        r.owners
    );
    assert_consistent(&fx, &d);
    // And it comes back.
    let change = fx.apply(ViewDelta {
        revision: 4,
        ports: vec![router_lsp("ls2-lr1", "ls2", "lr1-ls2", 1)],
        ..Default::default()
    });
    fx.sync();
    recompile(&mut d, &fx.input(), &change);
    assert_consistent(&fx, &d);
    // The chassis leaves.
    let change = fx.apply(ViewDelta {
        revision: 5,
        deleted_ports: vec!["c3".into()],
        deleted_chassis: vec!["hv3".into()],
        ..Default::default()
    });
    fx.sync();
    recompile(&mut d, &fx.input(), &change);
    assert_consistent(&fx, &d);
}

/// `routed()` plus an external switch `ext` (172.16.0.0/24, key 3) with a localnet port on
/// physnet and router port lr1-ext (key 3) whose gateway chassis are hv1 (20) and hv2 (10),
/// `active` being the active one; lr1 has `nat` (column text).
fn gatewayed(active: &str, nat: &[&str]) -> Fx {
    let mut r = rv("lr1", 0x200);
    r.nat = nat
        .iter()
        .map(|t| {
            weft_proto::model::nat::NatRule::parse_text("nat", t)
                .expect("rule")
                .to_message()
        })
        .collect();
    let mut ext_port = rpv("lr1-ext", "lr1", "0a:00:00:00:10:01", "172.16.0.1/24", 3);
    ext_port.gateway_chassis = vec![
        weft_proto::v1::GatewayChassis {
            chassis_name: "hv1".into(),
            priority: 20,
        },
        weft_proto::v1::GatewayChassis {
            chassis_name: "hv2".into(),
            priority: 10,
        },
    ];
    ext_port.active_gateway = active.into();
    let ln = PortView {
        name: "ln".into(),
        switch_name: "ext".into(),
        r#type: "localnet".into(),
        options: [("network_name".to_string(), "physnet".to_string())].into(),
        enabled: true,
        tunnel_key: 5,
        ..Default::default()
    };
    Fx::new(
        ViewDelta {
            revision: 1,
            snapshot: true,
            switches: vec![
                subnet_switch("ls1", 1, "10.31.0.0/24"),
                subnet_switch("ext", 3, "172.16.0.0/24"),
            ],
            ports: vec![
                vif("a", "ls1", "00:00:00:00:01:0a", "10.31.0.10", 10, "hv1"),
                router_lsp("ls1-lr1", "ls1", "lr1-ls1", 1),
                router_lsp("ext-lr1", "ext", "lr1-ext", 1),
                ln,
            ],
            chassis: vec![cv("hv2", "192.168.0.2", &["geneve"])],
            routers: vec![r],
            router_ports: vec![
                rpv("lr1-ls1", "lr1", "0a:00:00:00:01:01", "10.31.0.1/24", 1),
                ext_port,
            ],
            ..Default::default()
        },
        &[("a", 1)],
    )
}

fn gateway_input<'a>(fx: &'a Fx, localnets: &'a BTreeMap<String, u32>) -> CompileInput<'a> {
    CompileInput {
        localnets,
        ..fx.input()
    }
}

#[test]
fn gateway_port_redirects_off_its_chassis_and_receives_on_it() {
    let localnets: BTreeMap<String, u32> = [("physnet".to_string(), 7)].into();
    // Active on hv2: hv1 redirects and takes nothing in.
    let fx = gatewayed("hv2", &[]);
    let d = compile_all(&gateway_input(&fx, &localnets));
    let flows = owner_rendered(&d, &Owner::RouterPort("lr1-ext".into()));
    let has = |needles: &[&str]| flows.iter().any(|f| needles.iter().all(|n| f.contains(n)));
    assert!(
        has(&[
            "table=47",
            "priority=200",
            "reg15=0x3",
            "set_field:0x8000->reg14",
            "set_field:192.168.0.2->tun_dst",
            "NXM_NX_TUN_METADATA0[16..31]",
            "output:100"
        ]),
        "{flows:#?}"
    );
    assert!(
        has(&["table=46", "priority=10", "set_field:0x8001->reg14"]),
        "{flows:#?}"
    );
    assert!(
        has(&[
            "table=40",
            "priority=100",
            "metadata=0x103",
            "dl_dst=0a:00:00:00:10:01 actions=drop"
        ]),
        "{flows:#?}"
    );
    assert!(
        !has(&["table=20", "arp_tpa=172.16.0.1"]),
        "ARP answered off the gateway"
    );
    assert!(
        !has(&["table=46", "controller("]),
        "next hop resolved off the gateway: {flows:#?}"
    );
    // The localnet port is on its patch port.
    let ln = owner_rendered(&d, &Owner::Port("ln".into()));
    assert!(
        ln.iter()
            .any(|f| f.contains("in_port=7") && f.contains("goto_table:5")),
        "{ln:#?}"
    );
    assert!(
        ln.iter()
            .any(|f| f.contains("table=70") && f.ends_with("actions=output:7")),
        "{ln:#?}"
    );

    // Active on hv1: it receives redirects, answers ARP, resolves next hops.
    let fx = gatewayed("hv1", &[]);
    let d = compile_all(&gateway_input(&fx, &localnets));
    let flows = owner_rendered(&d, &Owner::RouterPort("lr1-ext".into()));
    let has = |needles: &[&str]| flows.iter().any(|f| needles.iter().all(|n| f.contains(n)));
    assert!(
        has(&[
            "priority=120",
            "in_port=100",
            "tun_metadata0=0x80000003",
            "set_field:0x200->metadata",
            "goto_table:47"
        ]),
        "{flows:#?}"
    );
    assert!(
        has(&["priority=120", "tun_metadata0=0x80010003", "goto_table:44"]),
        "{flows:#?}"
    );
    assert!(has(&["table=20", "arp_tpa=172.16.0.1"]), "{flows:#?}");
    assert!(
        !has(&["0x8000->reg14"]),
        "the gateway redirects: {flows:#?}"
    );
}

#[test]
fn nat_flows_run_on_the_gateway_and_fips_on_their_chassis() {
    let localnets: BTreeMap<String, u32> = [("physnet".to_string(), 7)].into();
    let nat = [
        "snat 172.16.0.10 10.31.0.0/24",
        "dnat_and_snat 172.16.0.30 10.31.0.10 a 0a:00:00:00:f1:30",
    ];
    // hv1 is not the gateway, but a (the FIP's port) is here: only the FIP's flows.
    let fx = gatewayed("hv2", &nat);
    let zone = fx.ids.zone(&nat::zone_owner("lr1")).expect("a NAT zone");
    let d = compile_all(&gateway_input(&fx, &localnets));
    let flows = owner_rendered(&d, &Owner::Router("lr1".into()));
    let has = |needles: &[&str]| flows.iter().any(|f| needles.iter().all(|n| f.contains(n)));
    let z = format!("zone={zone}");
    assert!(
        has(&[
            "table=47",
            "priority=210",
            "nw_src=10.31.0.10",
            "set_field:0a:00:00:00:f1:30->eth_src",
            "ct(table=80",
            &z
        ]),
        "{flows:#?}"
    );
    assert!(
        has(&[
            "table=80",
            "+new+trk",
            "nw_src=10.31.0.10",
            "ct(commit,table=48",
            "nat(src=172.16.0.30)"
        ]),
        "{flows:#?}"
    );
    assert!(
        has(&["table=43", "nw_dst=172.16.0.30", "nat(dst=10.31.0.10)"]),
        "{flows:#?}"
    );
    assert!(
        has(&[
            "table=20",
            "arp_tpa=172.16.0.30",
            "0a:00:00:00:f1:30->arp_sha"
        ]),
        "{flows:#?}"
    );
    assert!(
        has(&[
            "table=40",
            "dl_dst=0a:00:00:00:f1:30",
            "set_field:0x3->reg14"
        ]),
        "{flows:#?}"
    );
    assert!(
        has(&[
            "table=46",
            "priority=11",
            "nw_src=10.31.0.10",
            "controller("
        ]),
        "{flows:#?}"
    );
    assert!(
        !has(&["nat(src=172.16.0.10)"]),
        "SNAT off the gateway: {flows:#?}"
    );
    assert!(!has(&["table=47", "priority=100"]), "{flows:#?}");

    // On the gateway: everything, ARP for the SNAT address with the port's MAC.
    let fx = gatewayed("hv1", &nat);
    let d = compile_all(&gateway_input(&fx, &localnets));
    let flows = owner_rendered(&d, &Owner::Router("lr1".into()));
    let has = |needles: &[&str]| flows.iter().any(|f| needles.iter().all(|n| f.contains(n)));
    assert!(has(&["table=42", "reg14=0x3", "ct(table=43"]), "{flows:#?}");
    assert!(
        has(&["table=47", "priority=100", "reg15=0x3", "ct(table=80"]),
        "{flows:#?}"
    );
    assert!(
        has(&[
            "table=80",
            "priority=124",
            "nw_src=10.31.0.0/24",
            "nat(src=172.16.0.10)"
        ]),
        "{flows:#?}"
    );
    assert!(
        has(&["table=80", "priority=1,", "resubmit(,48)"]),
        "{flows:#?}"
    );
    assert!(
        has(&[
            "table=20",
            "arp_tpa=172.16.0.10",
            "0a:00:00:00:10:01->arp_sha"
        ]),
        "{flows:#?}"
    );
    assert!(
        has(&[
            "table=43",
            "priority=90",
            "nw_dst=172.16.0.10",
            "actions=drop"
        ]),
        "{flows:#?}"
    );
    // No NAT rules: no zone, no flows.
    let fx = gatewayed("hv1", &[]);
    assert!(fx.ids.zone(&nat::zone_owner("lr1")).is_none());
    let d = compile_all(&gateway_input(&fx, &localnets));
    assert!(owner_rendered(&d, &Owner::Router("lr1".into()))
        .iter()
        .all(|f| !f.contains("ct(")));
}

#[test]
fn a_router_port_mtu_checks_lengths_at_exit_and_punts_the_too_big() {
    let mut fx = routed();
    let mut rp = rpv("lr1-ls2", "lr1", "0a:00:00:00:02:01", "10.32.0.1/24", 2);
    rp.gateway_mtu = 1400;
    fx.apply(ViewDelta {
        revision: 2,
        router_ports: vec![rp],
        ..Default::default()
    });
    let d = compile_all(&fx.input());
    let o = Owner::RouterPort("lr1-ls2".into());
    let c = o.cookie();
    let flows = owner_rendered(&d, &o);
    let want = [
        format!("cookie={c:#x}, table=48, priority=110,ip,reg15=0x2,metadata=0x200 actions=check_pkt_larger(1414)->NXM_NX_REG9[1],goto_table:49"),
        format!("cookie={c:#x}, table=49, priority=50,reg15=0x2,metadata=0x200 actions=set_field:0x102->metadata,set_field:0x1->reg14,set_field:0->reg15,goto_table:50"),
    ];
    for w in &want {
        assert!(flows.contains(w), "missing {w}\nin {flows:#?}");
    }
    // One punt per input port: from lr1-ls1 (10.31.0.1 = 0a.1f.00.01), MTU 1400 = 05.78,
    // router 0x200, in key 1, out switch 0x102, out router-type port 1.
    let punts: Vec<_> = flows
        .iter()
        .filter(|f| f.contains("table=49, priority=100"))
        .collect();
    assert_eq!(punts.len(), 2, "{punts:#?}");
    assert!(punts.iter().any(|f| f.contains(
        "ip,reg9=0x2/0x2,reg14=0x1,reg15=0x2,metadata=0x200 actions=controller(userdata=00.00.00.0a.05.78.0a.1f.00.01.0a.00.00.00.01.01.00.00.02.00.00.00.00.01.00.00.01.02.00.00.00.01,meter_id="
    )), "{punts:#?}");
    // The other port has no MTU: its exit is the plain one only.
    let other = owner_rendered(&d, &Owner::RouterPort("lr1-ls1".into()));
    assert!(
        !other
            .iter()
            .any(|f| f.contains("table=49") || f.contains("check_pkt_larger")),
        "{other:#?}"
    );
}

fn lb_view(
    name: &str,
    vips: &[(&str, &str)],
    proto: &str,
    opts: &[(&str, &str)],
) -> LoadBalancerView {
    LoadBalancerView {
        name: name.into(),
        protocol: proto.into(),
        vips: vips
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        options: opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn lb_fx(lbs: Vec<LoadBalancerView>) -> Fx {
    let mut sw = sv("ls1", 5);
    sw.load_balancer = lbs.iter().map(|l| l.name.clone()).collect();
    Fx::new(
        ViewDelta {
            revision: 1,
            snapshot: true,
            switches: vec![sw],
            ports: vec![pv("a", "ls1", 1, "hv1"), pv("b", "ls1", 2, "hv2")],
            chassis: vec![cv("hv2", "192.168.0.2", &["geneve"])],
            load_balancers: lbs,
            ..Default::default()
        },
        &[("a", 1)],
    )
}

fn table_lines(d: &DesiredState, table: u8) -> Vec<String> {
    let mut v: Vec<String> = d
        .flows()
        .filter(|f| f.table == table && f.priority > 0)
        .map(render_flow)
        .collect();
    v.sort();
    v
}

#[test]
fn lb_reject_sends_vips_without_backends_to_the_reject_handler() {
    let fx = lb_fx(vec![
        lb_view("r", &[("10.96.0.20:80", "")], "tcp", &[("reject", "true")]),
        lb_view("d", &[("10.96.0.21:80", "")], "tcp", &[]),
    ]);
    let d = compile_all(&fx.input());
    let dnat = table_lines(&d, Stage::LbDnat.table());
    let rej: Vec<&String> = dnat.iter().filter(|l| l.contains("10.96.0.20")).collect();
    let drop: Vec<&String> = dnat.iter().filter(|l| l.contains("10.96.0.21")).collect();
    assert_eq!(rej.len(), 1, "{dnat:#?}");
    assert!(rej[0].contains("controller("), "{}", rej[0]);
    // The ACL reject opcode (5), from-lport (0).
    assert!(rej[0].contains("userdata=00.00.00.05.00"), "{}", rej[0]);
    assert!(drop[0].ends_with("actions=drop"), "{}", drop[0]);
}

#[test]
fn lb_affinity_learns_in_lb_affinity_and_pins_backends_in_lb_dnat() {
    let fx = lb_fx(vec![lb_view(
        "web",
        &[("10.96.0.10:80", "10.0.0.1:8080,10.0.0.2:8080")],
        "tcp",
        &[("affinity_timeout", "60")],
    )]);
    let d = compile_all(&fx.input());
    // lb-affinity holds no desired flow: only what the datapath learns.
    assert!(table_lines(&d, Stage::LbAffinity.table()).is_empty());
    let learn = table_lines(&d, Stage::LbLearn.table());
    assert_eq!(learn.len(), 1, "{learn:#?}");
    assert!(
        learn[0].contains("set_field:0->reg2,resubmit(,33),goto_table:36"),
        "{}",
        learn[0]
    );
    let dnat = table_lines(&d, Stage::LbDnat.table());
    // The group flow and one pinned flow per backend.
    assert_eq!(dnat.len(), 3, "{dnat:#?}");
    let vip: weft_proto::model::load_balancer::Endpoint =
        weft_proto::model::load_balancer::parse_endpoint("v", "10.96.0.10:80").expect("vip");
    for b in ["10.0.0.1:8080", "10.0.0.2:8080"] {
        let be = weft_proto::model::load_balancer::parse_endpoint("b", b).expect("b");
        let key = lb::affinity_key(&vip, &be);
        let line = dnat
            .iter()
            .find(|l| l.contains(&format!("reg2={key:#x}")))
            .unwrap_or_else(|| panic!("no pinned flow for {b}: {dnat:#?}"));
        assert!(line.contains(&format!("nat(dst={})", b)), "{line}");
        assert!(line.contains("learn(table=33,idle_timeout=60"), "{line}");
    }
    let groups: Vec<String> = d.groups().map(render_group).collect();
    let g = groups
        .iter()
        .find(|g| g.contains("select"))
        .expect("select group");
    // Buckets name the backend and resubmit (a bucket is an action set: no learn there).
    assert_eq!(g.matches("resubmit(,36)").count(), 2, "{g}");
    assert!(!g.contains("learn"), "{g}");
    // Without the option: no learn, no lb-learn flows.
    let fx = lb_fx(vec![lb_view(
        "web",
        &[("10.96.0.10:80", "10.0.0.1:8080,10.0.0.2:8080")],
        "tcp",
        &[],
    )]);
    let d = compile_all(&fx.input());
    assert!(table_lines(&d, Stage::LbLearn.table()).is_empty());
    assert!(d.groups().all(|g| !render_group(g).contains("learn")));
}

#[test]
fn lb_health_checks_punt_answers_and_offline_backends_leave_the_group() {
    let mut l = lb_view(
        "web",
        &[("10.96.0.10:80", "10.0.0.1:8080,10.0.0.2:8080")],
        "tcp",
        &[],
    );
    l.health_check = [("10.96.0.10:80".to_string(), "interval=1".to_string())].into();
    l.backend_status = [(
        "10.96.0.10:80 10.0.0.2:8080".to_string(),
        "offline".to_string(),
    )]
    .into();
    let fx = lb_fx(vec![l.clone()]);
    let d = compile_all(&fx.input());
    let punt = table_lines(&d, Stage::Punt.table());
    assert_eq!(punt.len(), 1, "{punt:#?}");
    assert!(
        punt[0].contains("nw_dst=169.254.169.253") && punt[0].contains("userdata=00.00.00.0c"),
        "{}",
        punt[0]
    );
    let groups: Vec<String> = d.groups().map(render_group).collect();
    let g = groups.iter().find(|g| g.contains("select")).expect("group");
    assert!(
        g.contains("10.0.0.1:8080") && !g.contains("10.0.0.2:8080"),
        "{g}"
    );
    // Every backend offline: no group, new connections dropped (or rejected).
    l.backend_status.insert(
        "10.96.0.10:80 10.0.0.1:8080".to_string(),
        "offline".to_string(),
    );
    let fx = lb_fx(vec![l]);
    let d = compile_all(&fx.input());
    assert!(d.groups().all(|g| !render_group(g).contains("select")));
    let dnat = table_lines(&d, Stage::LbDnat.table());
    assert!(
        dnat.iter().all(|l| l.ends_with("actions=drop")),
        "{dnat:#?}"
    );
}

/// [`gatewayed`] (gateway active on `active`) with router LBs: a port mapping
/// 172.16.0.10:8080 → 10.31.0.10:80 and `web` on the gateway port's own address,
/// 172.16.0.1:80 → two backends.
fn router_lb_fx(active: &str) -> Fx {
    let mut fx = gatewayed(active, &[]);
    let mut r = rv("lr1", 0x200);
    r.load_balancer = vec!["pm".into(), "web".into()];
    fx.apply(ViewDelta {
        revision: 2,
        routers: vec![r],
        load_balancers: vec![
            lb_view("pm", &[("172.16.0.10:8080", "10.31.0.10:80")], "tcp", &[]),
            lb_view(
                "web",
                &[("172.16.0.1:80", "10.31.0.10:8080,10.31.0.11:8080")],
                "tcp",
                &[],
            ),
        ],
        ..Default::default()
    });
    fx
}

#[test]
fn router_lb_vips_are_dnated_in_the_router_zone_on_the_gateway_only() {
    let localnets: BTreeMap<String, u32> = [("physnet".to_string(), 7)].into();
    let fx = router_lb_fx("hv1");
    let zone = fx
        .ids
        .zone(&nat::zone_owner("lr1"))
        .expect("an LB router gets its zone");
    let d = compile_all(&gateway_input(&fx, &localnets));
    let o = router_lb_owner("lr1", "pm");
    let c = o.cookie();
    assert_eq!(c >> 56, u64::from(cookie_kind::ROUTER_LOAD_BALANCER));
    let g = fx
        .ids
        .router_lb_group("lr1", "pm", "172.16.0.10:8080")
        .expect("a group per VIP");
    let flows = owner_rendered(&d, &o);
    assert_eq!(
        flows,
        vec![
            // ARP for the external IP (not a router address): the gateway port's MAC.
            format!("cookie={c:#x}, table=20, priority=50,arp,metadata=0x103,arp_tpa=172.16.0.10,arp_op=1 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:0a:00:00:00:10:01->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:0a:00:00:00:10:01->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:172.16.0.10->arp_spa,IN_PORT"),
            format!("cookie={c:#x}, table=43, priority=120,ct_state=+new+trk,tcp,reg14=0x3,metadata=0x200,nw_dst=172.16.0.10,tp_dst=8080 actions=group:{g}"),
        ],
        "{flows:#?}"
    );
    let groups: Vec<String> = d.groups().filter(|x| x.id == g).map(render_group).collect();
    assert_eq!(
        groups,
        vec![format!("group_id={g},type=select,selection_method=hash,fields(ip_src,ip_dst,tcp_src,tcp_dst),bucket=bucket_id:0,actions=ct(commit,table=44,zone={zone},nat(dst=10.31.0.10:80))")]
    );
    // A VIP on the router's own address is let through lr-input (above its drop, 80);
    // two backends, two buckets.
    let web = owner_rendered(&d, &router_lb_owner("lr1", "web"));
    let gw = fx
        .ids
        .router_lb_group("lr1", "web", "172.16.0.1:80")
        .expect("group");
    assert!(web.contains(&format!("cookie={:#x}, table=41, priority=85,tcp,reg14=0x3,metadata=0x200,nw_dst=172.16.0.1,tp_dst=80 actions=goto_table:42", router_lb_owner("lr1", "web").cookie())), "{web:#?}");
    assert!(
        !web.iter().any(|f| f.contains("table=20")),
        "the port answers ARP itself: {web:#?}"
    );
    let gw_group: Vec<String> = d
        .groups()
        .filter(|x| x.id == gw)
        .map(render_group)
        .collect();
    assert_eq!(gw_group.len(), 1);
    assert!(
        gw_group[0].contains("nat(dst=10.31.0.10:8080)")
            && gw_group[0].contains("nat(dst=10.31.0.11:8080)"),
        "{gw_group:#?}"
    );
    // The router (no NAT rules) has the zone's lookups: in from the gateway port, out to
    // it (un-DNAT of replies), and lr-snat-commit's pass-through.
    let r = owner_rendered(&d, &Owner::Router("lr1".into()));
    let z = format!("zone={zone}");
    assert!(
        r.iter().any(|f| f.contains("table=42")
            && f.contains("reg14=0x3")
            && f.contains("ct(table=43")
            && f.contains(&z)),
        "{r:#?}"
    );
    assert!(
        r.iter().any(|f| f.contains("table=47")
            && f.contains("reg15=0x3")
            && f.contains("ct(table=80")
            && f.contains(&z)),
        "{r:#?}"
    );
    assert!(
        r.iter()
            .any(|f| f.contains("table=80") && f.contains("resubmit(,48)")),
        "{r:#?}"
    );

    // Off the gateway chassis: no VIP flows, no lookups (replies are redirected to the
    // gateway, which un-DNATs them).
    let fx = router_lb_fx("hv2");
    let d = compile_all(&gateway_input(&fx, &localnets));
    assert!(owner_rendered(&d, &router_lb_owner("lr1", "pm")).is_empty());
    assert!(owner_rendered(&d, &Owner::Router("lr1".into()))
        .iter()
        .all(|f| !f.contains("ct(")));
}

#[test]
fn a_router_lb_backend_change_recompiles_that_lb_only() {
    let localnets: BTreeMap<String, u32> = [("physnet".to_string(), 7)].into();
    let mut fx = router_lb_fx("hv1");
    let mut d = compile_all(&gateway_input(&fx, &localnets));
    let change = fx.apply(ViewDelta {
        revision: 3,
        load_balancers: vec![lb_view(
            "pm",
            &[("172.16.0.10:8080", "10.31.0.12:80")],
            "tcp",
            &[],
        )],
        ..Default::default()
    });
    let rc = recompile(&mut d, &gateway_input(&fx, &localnets), &change);
    assert_eq!(
        rc.owners,
        BTreeSet::from([router_lb_owner("lr1", "pm")]),
        "{:?}",
        rc.owners
    );
    assert_eq!(
        sorted_state(&d),
        sorted_state(&compile_all(&gateway_input(&fx, &localnets)))
    );
    assert!(d
        .groups()
        .any(|g| render_group(g).contains("nat(dst=10.31.0.12:80)")));
    // Detaching the LB from the router removes its flows and group.
    let mut r = rv("lr1", 0x200);
    r.load_balancer = vec!["web".into()];
    let change = fx.apply(ViewDelta {
        revision: 4,
        routers: vec![r],
        deleted_load_balancers: vec!["pm".into()],
        ..Default::default()
    });
    recompile(&mut d, &gateway_input(&fx, &localnets), &change);
    assert!(owner_rendered(&d, &router_lb_owner("lr1", "pm")).is_empty());
    assert_eq!(
        sorted_state(&d),
        sorted_state(&compile_all(&gateway_input(&fx, &localnets)))
    );
    // Failover: the gateway moves to hv2; the remaining LB's flows leave hv1.
    assert!(!owner_rendered(&d, &router_lb_owner("lr1", "web")).is_empty());
    let mut ext_port = rpv("lr1-ext", "lr1", "0a:00:00:00:10:01", "172.16.0.1/24", 3);
    ext_port.gateway_chassis = vec![weft_proto::v1::GatewayChassis {
        chassis_name: "hv2".into(),
        priority: 10,
    }];
    ext_port.active_gateway = "hv2".into();
    let change = fx.apply(ViewDelta {
        revision: 5,
        router_ports: vec![ext_port],
        ..Default::default()
    });
    let rc = recompile(&mut d, &gateway_input(&fx, &localnets), &change);
    assert!(
        rc.owners.contains(&router_lb_owner("lr1", "web")),
        "{:?}",
        rc.owners
    );
    assert!(owner_rendered(&d, &router_lb_owner("lr1", "web")).is_empty());
    assert_eq!(
        sorted_state(&d),
        sorted_state(&compile_all(&gateway_input(&fx, &localnets)))
    );
}
