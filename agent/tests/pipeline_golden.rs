//! Golden tests of the pipeline compiler: a fixed small view (two switches, local and remote
//! ports over Geneve, VXLAN and GRE, port security, `unknown`, a disabled port, an
//! unreachable chassis, subnets with a gateway) compiles to exactly the flows, groups and
//! meters in `tests/golden/pipeline.txt`, rendered as `ovs-ofctl -O OpenFlow15 --no-stats
//! dump-flows` / `dump-groups` / `dump-meters` print them.
//!
//! A second view (`tests/golden/routing.txt`): two subnets on one router, pods on this
//! chassis and on a remote one, renders the routing stages (l3-entry .. lr-exit).
//!
//! A third (`tests/golden/lb.txt`): a switch with TCP, UDP, IPv6 and backend-less load
//! balancers renders lb-vip, lb-dnat, lb-out and the hash select groups.
//!
//! The file is sorted: flows by table, priority (highest first), then text; then groups by
//! id. To regenerate after an intended change: `WEFT_UPDATE_GOLDEN=1 cargo test -p weft-agent
//! --test pipeline_golden`, then review the diff of the .txt file line by line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use weft_agent::diff::{diff, diff_delta, Installed};
use weft_agent::ids::Ids;
use weft_agent::pipeline::{compile_all, recompile, CompileInput, DesiredState, Encap, Owner};
use weft_agent::view::ChassisView;
use weft_openflow::meter::render_meter;
use weft_openflow::render::{render_flow, render_group};
use weft_proto::model::view::ViewDelta as ViewUpdate;
use weft_proto::v1::{
    PortAddress, PortView, RemoteChassis, RouterPortView, RouterView, SwitchView,
};

fn addr(mac: &str, ips: &[&str]) -> PortAddress {
    PortAddress {
        mac: mac.into(),
        ips: ips.iter().map(|s| s.to_string()).collect(),
    }
}

fn port(name: &str, switch: &str, mac: &str, ips: &[&str], chassis: &str) -> PortView {
    // Port key: the last MAC byte (unique per switch in this view).
    let key = u32::from_str_radix(&mac[15..], 16).expect("hex");
    PortView {
        tunnel_key: key,
        name: name.into(),
        switch_name: switch.into(),
        addresses: vec![addr(mac, ips)],
        unknown: false,
        port_security: vec![],
        chassis: chassis.into(),
        enabled: true,
        ..Default::default()
    }
}

fn snapshot() -> ViewUpdate {
    let mut vm1 = port("vm1", "ls1", "00:00:00:00:01:01", &["10.0.0.11"], "hv1");
    vm1.port_security = vec![addr("00:00:00:00:01:01", &["10.0.0.11"])];
    let mut vm4 = port("vm4", "ls1", "00:00:00:00:01:04", &[], "hv3");
    vm4.unknown = true;
    let mut vm5 = port("vm5", "ls1", "00:00:00:00:01:05", &["10.0.0.15"], "hv1");
    vm5.enabled = false;
    let mut web1 = port("web1", "ls2", "00:00:00:00:02:01", &["10.1.0.11"], "hv1");
    // IPv4 and IPv6 sources (plus the MAC's link-local address, always allowed).
    web1.port_security = vec![addr(
        "00:00:00:00:02:01",
        &["10.1.0.0/24", "fd00:2::11", "fd00:3::/64"],
    )];
    // A VIF allowed to send router advertisements and DHCP replies: no rogue-server drops.
    let mut vm2 = port("vm2", "ls1", "00:00:00:00:01:02", &["10.0.0.12"], "hv1");
    vm2.options
        .insert("allow-ra-dhcp-server".into(), "true".into());
    web1.unknown = true;
    ViewUpdate {
        revision: 10,
        snapshot: true,
        switches: vec![
            SwitchView {
                name: "ls1".into(),
                vni: 100,
                subnet: "10.0.0.0/24".into(),
                mtu: 1500,
                tunnel_key: 1,
                load_balancer: vec![],
            },
            SwitchView {
                name: "ls2".into(),
                vni: 200,
                subnet: "10.1.0.0/24".into(),
                mtu: 1500,
                tunnel_key: 2,
                load_balancer: vec![],
            },
        ],
        ports: vec![
            vm1,
            vm2,
            port("vm3", "ls1", "00:00:00:00:01:03", &["10.0.0.13"], "hv2"),
            vm4,
            vm5,
            web1,
            port("web2", "ls2", "00:00:00:00:02:02", &["10.1.0.12"], "hv3"),
            // On a chassis we cannot reach (no common encap): ARP reply, no L2 flow, no bucket.
            port("web3", "ls2", "00:00:00:00:02:03", &["10.1.0.13"], "hv4"),
            // Over VXLAN.
            port("web4", "ls2", "00:00:00:00:02:04", &["10.1.0.14"], "hv5"),
        ],
        chassis: vec![
            RemoteChassis {
                name: "hv2".into(),
                encap_ip: "192.168.0.2".into(),
                encap_types: vec!["geneve".into()],
            },
            RemoteChassis {
                name: "hv3".into(),
                encap_ip: "192.168.0.3".into(),
                encap_types: vec!["gre".into(), "vxlan".into(), "geneve".into()],
            },
            RemoteChassis {
                name: "hv4".into(),
                encap_ip: "192.168.0.4".into(),
                encap_types: vec![],
            },
            RemoteChassis {
                name: "hv5".into(),
                encap_ip: "192.168.0.5".into(),
                encap_types: vec!["vxlan".into()],
            },
        ],
        ..Default::default()
    }
}

struct Fixture {
    view: ChassisView,
    vifs: BTreeMap<String, u32>,
    tunnels: BTreeMap<Encap, u32>,
    ids: Ids,
}

impl Fixture {
    fn new() -> Self {
        let mut view = ChassisView::new();
        view.apply(&snapshot()).expect("the golden view is valid");
        let mut fx = Fixture {
            ids: Ids::default(),
            view,
            vifs: [("vm1", 1), ("vm2", 2), ("vm5", 5), ("web1", 4)]
                .into_iter()
                .map(|(n, o)| (n.to_string(), o))
                .collect(),
            tunnels: [(Encap::Geneve, 10), (Encap::Vxlan, 11), (Encap::Gre, 12)].into(),
        };
        fx.sync();
        fx
    }

    fn sync(&mut self) {
        self.ids.sync(&self.view, "hv1", &self.vifs).expect("ids");
    }

    fn input(&self) -> CompileInput<'_> {
        CompileInput {
            chassis: "hv1",
            view: &self.view,
            vifs: &self.vifs,
            tunnels: &self.tunnels,
            ids: &self.ids,
            neighbours: &weft_agent::pinctrl::neigh::NO_NEIGHBOURS,
            localnets: &weft_agent::pipeline::NO_LOCALNETS,
        }
    }
}

fn render_state(d: &DesiredState) -> String {
    let mut flows: Vec<_> = d.flows().collect();
    flows.sort_by_cached_key(|f| (f.table, std::cmp::Reverse(f.priority), render_flow(f)));
    let mut groups: Vec<_> = d.groups().collect();
    groups.sort_by_key(|g| g.id);
    let mut out = String::new();
    for f in flows {
        out.push_str(&render_flow(f));
        out.push('\n');
    }
    for g in groups {
        out.push_str(&render_group(g));
        out.push('\n');
    }
    let mut meters: Vec<_> = d.meters().collect();
    meters.sort_by_key(|m| m.id);
    for m in meters {
        out.push_str(&render_meter(m));
        out.push('\n');
    }
    out
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn check_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("WEFT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("read golden file");
    if expected != actual {
        for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
            if e != a {
                panic!("{name} line {}:\nexpected: {e}\n  actual: {a}", i + 1);
            }
        }
        panic!(
            "{name}: expected {} lines, got {}",
            expected.lines().count(),
            actual.lines().count()
        );
    }
}

#[test]
fn golden_view_compiles_to_the_expected_flows_and_groups() {
    let fx = Fixture::new();
    let desired = compile_all(&fx.input());
    check_golden("pipeline.txt", &render_state(&desired));
    assert_eq!(desired.conflicting_flow_keys().count(), 0);
}

#[test]
fn compiling_twice_gives_the_same_text() {
    let fx = Fixture::new();
    assert_eq!(
        render_state(&compile_all(&fx.input())),
        render_state(&compile_all(&fx.input()))
    );
}

#[test]
fn adding_a_local_port_changes_only_its_flows_and_the_flood_groups() {
    let mut fx = Fixture::new();
    let mut desired = compile_all(&fx.input());
    let before_flows: Vec<_> = desired.flows().cloned().collect();
    let before_groups: Vec<_> = desired.groups().cloned().collect();
    let before_meters: Vec<_> = desired.meters().cloned().collect();

    let change = fx
        .view
        .apply(&ViewUpdate {
            revision: 11,
            ports: vec![port(
                "vm6",
                "ls1",
                "00:00:00:00:01:06",
                &["10.0.0.16"],
                "hv1",
            )],
            ..Default::default()
        })
        .expect("valid delta");
    fx.vifs.insert("vm6".into(), 6);
    fx.sync();
    let r = recompile(&mut desired, &fx.input(), &change);
    assert_eq!(
        r.owners.into_iter().collect::<Vec<_>>(),
        [Owner::Switch("ls1".into()), Owner::Port("vm6".into())]
    );
    let d = diff_delta(&r.delta);
    let c = Owner::Port("vm6".into()).cookie();
    let mut adds: Vec<String> = d.flows.adds.iter().map(render_flow).collect();
    adds.sort();
    let expected = [
        format!("cookie={c:#x}, priority=100,in_port=6 actions=set_field:0x1->metadata,set_field:0x6->reg14,set_field:0x5->reg13,goto_table:5"),
        format!("cookie={c:#x}, table=10, priority=110,icmp6,reg14=0x6,metadata=0x1,icmp_type=134 actions=drop"),
        format!("cookie={c:#x}, table=10, priority=110,udp,reg14=0x6,metadata=0x1,tp_src=67,tp_dst=68 actions=drop"),
        format!("cookie={c:#x}, table=10, priority=110,udp6,reg14=0x6,metadata=0x1,tp_src=547,tp_dst=546 actions=drop"),
        format!("cookie={c:#x}, table=20, priority=50,arp,metadata=0x1,arp_tpa=10.0.0.16,arp_op=1 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:00:00:00:00:01:06->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:00:00:00:00:01:06->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:10.0.0.16->arp_spa,IN_PORT"),
        format!("cookie={c:#x}, table=20, priority=60,arp,reg14=0x6,metadata=0x1,arp_tpa=10.0.0.16,arp_op=1 actions=goto_table:25"),
        format!("cookie={c:#x}, table=50, priority=50,metadata=0x1,dl_dst=00:00:00:00:01:06 actions=set_field:0x6->reg15,goto_table:58"),
        format!("cookie={c:#x}, table=70, priority=100,reg15=0x6,metadata=0x1 actions=output:6"),
    ];
    assert_eq!(adds, expected);
    assert!(d.flows.modifies.is_empty() && d.flows.deletes.is_empty());
    let groups: Vec<String> = d.groups.modifies.iter().map(render_group).collect();
    assert_eq!(
        groups, ["group_id=1,type=all,bucket=bucket_id:0,actions=set_field:0x1->reg15,resubmit(,60),bucket=bucket_id:1,actions=set_field:0x2->reg15,resubmit(,60),bucket=bucket_id:2,actions=set_field:0x6->reg15,resubmit(,60)", "group_id=3,type=all,bucket=bucket_id:0,actions=set_field:0x1->reg15,resubmit(,60),bucket=bucket_id:1,actions=set_field:0x2->reg15,resubmit(,60),bucket=bucket_id:2,actions=set_field:0x6->reg15,resubmit(,60),bucket=bucket_id:3,actions=set_field:0x8000->reg15,set_field:0x64->tun_id,set_field:192.168.0.2->tun_dst,move:NXM_NX_REG14[0..14]->NXM_NX_TUN_METADATA0[16..30],move:NXM_NX_REG15[0..15]->NXM_NX_TUN_METADATA0[0..15],output:10,bucket=bucket_id:4,actions=set_field:0x8000->reg15,set_field:0x64->tun_id,set_field:192.168.0.3->tun_dst,output:12"]);
    // The incremental diff is exactly the full diff against the old state.
    let full = diff(
        Installed {
            flows: &before_flows,
            groups: &before_groups,
            meters: &before_meters,
        },
        &desired,
    );
    assert_eq!(full.len(), d.len());
    assert_eq!(full.flows.adds.len(), expected.len());
}

/// Two switches (10.31.0.0/24, 10.32.0.0/24) attached to router lr1 through router-type
/// ports; pods on this chassis (hv1) and on hv2 over Geneve.
fn routed_snapshot() -> ViewUpdate {
    let lsp = |name: &str, switch: &str, lrp: &str| PortView {
        name: name.into(),
        switch_name: switch.into(),
        r#type: "router".into(),
        options: [("router-port".to_string(), lrp.to_string())].into(),
        enabled: true,
        tunnel_key: 1,
        ..Default::default()
    };
    let lrp = |name: &str, mac: &str, net: &str, key: u32| RouterPortView {
        name: name.into(),
        router: "lr1".into(),
        mac: mac.into(),
        networks: vec![net.into()],
        peer: String::new(),
        tunnel_key: key,
        enabled: true,
        ..Default::default()
    };
    let sw = |name: &str, vni: u32, subnet: &str| SwitchView {
        name: name.into(),
        vni,
        subnet: subnet.into(),
        mtu: 1400,
        tunnel_key: vni,
        load_balancer: vec![],
    };
    ViewUpdate {
        revision: 10,
        snapshot: true,
        switches: vec![sw("ls1", 31, "10.31.0.0/24"), sw("ls2", 32, "10.32.0.0/24")],
        ports: vec![
            lsp("ls1-lr1", "ls1", "lr1-ls1"),
            lsp("ls2-lr1", "ls2", "lr1-ls2"),
            port("pa", "ls1", "00:00:00:00:01:0a", &["10.31.0.10"], "hv1"),
            port("pb", "ls2", "00:00:00:00:02:0b", &["10.32.0.11"], "hv2"),
            port("pc", "ls2", "00:00:00:00:02:0c", &["10.32.0.12"], "hv1"),
        ],
        chassis: vec![RemoteChassis {
            name: "hv2".into(),
            encap_ip: "192.168.0.2".into(),
            encap_types: vec!["geneve".into()],
        }],
        routers: vec![RouterView {
            name: "lr1".into(),
            tunnel_key: 100,
            enabled: true,
            static_routes: Vec::new(),
            ..Default::default()
        }],
        router_ports: vec![
            lrp("lr1-ls1", "0a:00:00:00:01:01", "10.31.0.1/24", 1),
            lrp("lr1-ls2", "0a:00:00:00:02:01", "10.32.0.1/24", 2),
        ],
        ..Default::default()
    }
}

#[test]
fn routed_view_compiles_to_the_expected_flows() {
    let mut view = ChassisView::new();
    view.apply(&routed_snapshot())
        .expect("the routed view is valid");
    let mut fx = Fixture {
        ids: Ids::default(),
        view,
        vifs: [("pa", 1), ("pc", 3)]
            .into_iter()
            .map(|(n, o)| (n.to_string(), o))
            .collect(),
        tunnels: [(Encap::Geneve, 10)].into(),
    };
    fx.sync();
    let desired = compile_all(&fx.input());
    check_golden("routing.txt", &render_state(&desired));
    assert_eq!(desired.conflicting_flow_keys().count(), 0);
}

fn lb_view(vips: &[(&str, &str, &str, &str)]) -> weft_proto::v1::LoadBalancerView {
    // (name, protocol, vip, backends): one VIP per entry, all entries one LB.
    weft_proto::v1::LoadBalancerView {
        name: vips[0].0.into(),
        protocol: vips[0].1.into(),
        vips: vips
            .iter()
            .map(|(_, _, v, b)| (v.to_string(), b.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// A switch with four load balancers (TCP with two backends, UDP, IPv6, a port-less VIP
/// without backends), a local client and backend and a remote backend.
fn lb_snapshot() -> ViewUpdate {
    ViewUpdate {
        revision: 10,
        snapshot: true,
        switches: vec![SwitchView {
            name: "ls1".into(),
            vni: 41,
            subnet: "10.41.0.0/24".into(),
            mtu: 1400,
            tunnel_key: 41,
            load_balancer: vec!["dns".into(), "empty".into(), "web".into(), "web6".into()],
        }],
        ports: vec![
            port("client", "ls1", "00:00:00:00:04:0a", &["10.41.0.10"], "hv1"),
            port("be1", "ls1", "00:00:00:00:04:0b", &["10.41.0.11"], "hv1"),
            port("be2", "ls1", "00:00:00:00:04:0c", &["10.41.0.12"], "hv2"),
        ],
        chassis: vec![RemoteChassis {
            name: "hv2".into(),
            encap_ip: "192.168.0.2".into(),
            encap_types: vec!["geneve".into()],
        }],
        load_balancers: vec![
            lb_view(&[(
                "web",
                "tcp",
                "10.96.0.10:80",
                "10.41.0.11:8080,10.41.0.12:8080",
            )]),
            lb_view(&[("dns", "udp", "10.96.0.53:53", "10.41.0.12:53")]),
            lb_view(&[("web6", "tcp", "[fd00::10]:80", "[fd00::11]:80")]),
            lb_view(&[("empty", "", "10.96.0.99", "")]),
        ],
        ..Default::default()
    }
}

fn lb_fixture() -> Fixture {
    let mut view = ChassisView::new();
    view.apply(&lb_snapshot()).expect("the LB view is valid");
    let mut fx = Fixture {
        ids: Ids::default(),
        view,
        vifs: [("client", 1), ("be1", 2)]
            .into_iter()
            .map(|(n, o)| (n.to_string(), o))
            .collect(),
        tunnels: [(Encap::Geneve, 10)].into(),
    };
    fx.sync();
    fx
}

#[test]
fn load_balancer_view_compiles_to_the_expected_flows_and_groups() {
    let fx = lb_fixture();
    let desired = compile_all(&fx.input());
    let text = render_state(&desired);
    check_golden("lb.txt", &text);
    assert_eq!(desired.conflicting_flow_keys().count(), 0);
    // Only new connections reach the select group; hash selection, no dp_hash.
    for line in text
        .lines()
        .filter(|l| l.contains("actions=group:") && !l.contains("table=50,"))
    {
        assert!(
            line.contains("table=36") && line.contains("ct_state=+new+trk"),
            "{line}"
        );
    }
    let groups: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("group_id=") && l.contains("type=select"))
        .collect();
    assert_eq!(
        groups.len(),
        3,
        "web, dns, web6 (empty has no backend): {text}"
    );
    for g in &groups {
        assert!(
            g.contains("selection_method=hash") && !g.contains("dp_hash"),
            "{g}"
        );
    }
}

/// Changing a VIP's backends recompiles only the switch, rewrites its group and the removed
/// backend's hairpin flows only, and the result is what a full compile gives. Established connections are untouched by design:
/// the group is only consulted by `+new` packets.
#[test]
fn changing_backends_rewrites_only_the_group() {
    let mut fx = lb_fixture();
    let mut desired = compile_all(&fx.input());
    // Flows other than the hairpin flows of the backend that goes (10.41.0.12:8080).
    let kept = |d: &DesiredState| -> Vec<String> {
        d.flows()
            .map(render_flow)
            .filter(|f| !(f.contains("10.41.0.12") && f.contains("8080")))
            .collect()
    };
    let before_flows = kept(&desired);
    let before_all = desired.flows().count();
    let change = fx
        .view
        .apply(&ViewUpdate {
            revision: 11,
            load_balancers: vec![lb_view(&[(
                "web",
                "tcp",
                "10.96.0.10:80",
                "10.41.0.11:8080",
            )])],
            ..Default::default()
        })
        .expect("valid delta");
    assert_eq!(change.load_balancers.len(), 1);
    fx.sync();
    let r = recompile(&mut desired, &fx.input(), &change);
    assert_eq!(
        r.owners.into_iter().collect::<Vec<_>>(),
        [Owner::LoadBalancer("ls1/web".into())],
        "only the changed LB on its switch is recompiled"
    );
    assert_eq!(before_flows, kept(&desired), "other flows unchanged");
    assert_eq!(
        desired.flows().count(),
        before_all - 3,
        "its three hairpin flows go"
    );
    assert_eq!(
        render_state(&desired),
        render_state(&compile_all(&fx.input()))
    );
    let d = diff_delta(&r.delta);
    assert!(
        format!("{d:?}").contains("10.41.0.11"),
        "the group is rewritten: {d:?}"
    );
}

/// A load balancer the shared rules refuse is rejected with the view update, naming it; the
/// view is unchanged.
#[test]
fn a_bad_load_balancer_in_the_view_is_rejected() {
    let mut fx = lb_fixture();
    let err = fx
        .view
        .apply(&ViewUpdate {
            revision: 11,
            load_balancers: vec![lb_view(&[("web", "tcp", "10.96.0.10:0", "10.41.0.11")])],
            ..Default::default()
        })
        .expect_err("port 0 is refused");
    let text = err.to_string();
    assert!(
        text.contains("load balancer") && text.contains("web") && text.contains("10.96.0.10:0"),
        "{text}"
    );
    assert!(fx
        .view
        .load_balancer("web")
        .is_some_and(|l| l.rules.vips[0].backends.len() == 2));
    fx.sync();
}
