//! `show [SWITCH]`: the tree of switches and their ports, routers with their ports and static
//! routes (from ListObjects), then the chassis.

use clap::Subcommand;
use weft_proto::v1 as pb;

use super::db::{list_request, records_of};
use super::{one_reply, Call, CmdError, Noun, PlanCtx, Read, Reply, Step};
use crate::format::{json_text, one_line, quoted_list};
use crate::json;

#[derive(Debug, Clone, Subcommand)]
pub enum ShowCmd {
    /// Print an overview of switches, ports and chassis (only SWITCH and its ports, if given).
    Show {
        /// Only this switch.
        switch: Option<String>,
    },
}

impl Noun for ShowCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        let ShowCmd::Show { switch } = self;
        let only = switch.clone();
        let mut calls = vec![Call::Show];
        if only.is_none() {
            calls.push(list_request(super::router::KIND, &[]));
            calls.push(list_request(super::router_port::KIND, &[]));
        }
        Ok(Step::Read(Read {
            calls,
            render: Box::new(move |replies, out| {
                let Reply::Show(r) = one_reply(replies)? else {
                    return Err(CmdError::MalformedReply("show: not a ShowReply"));
                };
                let r = filter(r, only.as_deref())?;
                let routers = if replies.len() == 3 {
                    routers(replies)?
                } else {
                    Vec::new()
                };
                if out.json() {
                    let mut v = serde_json::to_value(json::ShowReply::from(&r))?;
                    if only.is_none() {
                        v["routers"] = serde_json::to_value(
                            routers
                                .iter()
                                .map(|(r, ports)| json::RouterDetail {
                                    router: json::Router::from(r),
                                    ports: ports.iter().map(json::RouterPort::from).collect(),
                                })
                                .collect::<Vec<_>>(),
                        )?;
                        for (i, (r, ports)) in routers.iter().enumerate() {
                            v["routers"][i]["routes"] =
                                serde_json::to_value(super::route::sorted_routes(r))?;
                            v["routers"][i]["nat"] =
                                serde_json::to_value(super::nat::sorted_nat(r))?;
                            for (j, p) in ports.iter().enumerate() {
                                v["routers"][i]["ports"][j]["gateway_chassis"] =
                                    serde_json::to_value(super::gateway_chassis::sorted_gateways(
                                        p,
                                    ))?;
                            }
                        }
                    }
                    return Ok(json_text(&v, out)?);
                }
                Ok(show(&r, &routers))
            }),
        }))
    }
}

/// Routers sorted by name, each with its ports sorted by name.
fn routers(
    replies: &[Reply],
) -> Result<Vec<(pb::LogicalRouter, Vec<pb::LogicalRouterPort>)>, CmdError> {
    let mut routers: Vec<(pb::LogicalRouter, Vec<pb::LogicalRouterPort>)> = Vec::new();
    for rec in &records_of(replies, 1)?.records {
        if let Some(pb::object::Kind::LogicalRouter(r)) =
            rec.object.as_ref().and_then(|o| o.kind.as_ref())
        {
            routers.push((r.clone(), Vec::new()));
        }
    }
    routers.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    for rec in &records_of(replies, 2)?.records {
        if let Some(pb::object::Kind::LogicalRouterPort(p)) =
            rec.object.as_ref().and_then(|o| o.kind.as_ref())
        {
            if let Some((_, ports)) = routers.iter_mut().find(|(r, _)| r.name == p.router) {
                ports.push(p.clone());
            }
        }
    }
    for (_, ports) in &mut routers {
        ports.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(routers)
}

fn router_block(r: &pb::LogicalRouter, ports: &[pb::LogicalRouterPort]) -> String {
    let mut out = format!(
        "router {}{}\n",
        r.name,
        if r.enabled { "" } else { " (disabled)" }
    );
    for p in ports {
        out.push_str(&format!(
            "    port {}{}\n",
            p.name,
            if p.enabled { "" } else { " (disabled)" }
        ));
        out.push_str(&format!("        mac: {}\n", crate::value::quote(&p.mac)));
        if !p.networks.is_empty() {
            out.push_str(&format!("        networks: {}\n", quoted_list(&p.networks)));
        }
        if !p.peer.is_empty() {
            out.push_str(&format!("        peer: {}\n", p.peer));
        }
        // As ovn-nbctl: highest priority first.
        let gws = super::gateway_chassis::sorted_gateways(p);
        if !gws.is_empty() {
            let names: Vec<String> = gws.iter().map(|g| g.chassis.clone()).collect();
            out.push_str(&format!("        gateway chassis: [{}]\n", names.join(" ")));
        }
    }
    // NAT rules (as lr-nat-list orders them), in ovn-nbctl's block form.
    for n in super::nat::sorted_nat(r) {
        out.push_str(&format!("    nat {} {}\n", n.kind, n.external_ip));
        out.push_str(&format!("        external ip: \"{}\"\n", n.external_ip));
        if !n.external_mac.is_empty() {
            out.push_str(&format!("        external mac: \"{}\"\n", n.external_mac));
        }
        out.push_str(&format!("        logical ip: \"{}\"\n", n.logical_ip));
        if !n.logical_port.is_empty() {
            out.push_str(&format!("        logical port: \"{}\"\n", n.logical_port));
        }
        out.push_str(&format!("        type: \"{}\"\n", n.kind));
    }
    // Static routes, longest prefix first (as lr-route-list).
    for rt in super::route::sorted_routes(r) {
        let mut line = format!("    route {} via {} {}", rt.prefix, rt.nexthop, rt.policy);
        if !rt.output_port.is_empty() {
            line.push_str(&format!(" port {}", rt.output_port));
        }
        if rt.ecmp {
            line.push_str(" ecmp");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Only switch `only` (and no chassis) when given; NotFound when it is not there.
fn filter(r: &pb::ShowReply, only: Option<&str>) -> Result<pb::ShowReply, CmdError> {
    let Some(name) = only else {
        return Ok(r.clone());
    };
    let switches: Vec<pb::SwitchDetail> = r
        .switches
        .iter()
        .filter(|d| d.switch.as_ref().is_some_and(|s| s.name == name))
        .cloned()
        .collect();
    if switches.is_empty() {
        return Err(CmdError::NotFound {
            what: "switch",
            name: name.to_string(),
        });
    }
    Ok(pb::ShowReply {
        switches,
        chassis: Vec::new(),
        revision: r.revision,
    })
}

fn switch_line(s: &pb::LogicalSwitch) -> String {
    let mut attrs = vec![format!("vni {}", s.vni)];
    if !s.subnet.is_empty() {
        attrs.push(format!("subnet {}", s.subnet));
    }
    if s.mtu != 0 {
        attrs.push(format!("mtu {}", s.mtu));
    }
    format!("switch {} ({})\n", s.name, attrs.join(", "))
}

fn port_block(p: &pb::LogicalSwitchPort) -> String {
    let mut state = if p.up { "up" } else { "down" }.to_string();
    if !p.chassis.is_empty() {
        state.push_str(&format!(" on {}", p.chassis));
    }
    if !p.enabled {
        state.push_str(", disabled");
    }
    let mut out = format!("    port {} ({state})\n", p.name);
    if !p.r#type.is_empty() {
        out.push_str(&format!("        type: {}\n", p.r#type));
    }
    if !p.addresses.is_empty() {
        out.push_str(&format!(
            "        addresses: {}\n",
            quoted_list(&p.addresses)
        ));
    }
    if !p.dynamic_addresses.is_empty() {
        out.push_str(&format!(
            "        dynamic addresses: {}\n",
            quoted_list([&p.dynamic_addresses])
        ));
    }
    if !p.port_security.is_empty() {
        out.push_str(&format!(
            "        port security: {}\n",
            quoted_list(&p.port_security)
        ));
    }
    out
}

fn chassis_line(c: &pb::Chassis) -> String {
    let mut attrs = vec![if c.encap_ip.is_empty() {
        "-".to_string()
    } else {
        c.encap_ip.clone()
    }];
    attrs.extend(c.encap_types.iter().cloned());
    let mut line = format!(
        "chassis {} ({}) {} applied={}\n",
        c.name,
        attrs.join(", "),
        if c.alive { "alive" } else { "dead" },
        c.applied_revision
    );
    if !c.last_error.is_empty() {
        line.push_str(&format!(
            "    last error: {}\n",
            quoted_list([&one_line(&c.last_error)])
        ));
    }
    line
}

/// The tree.
pub fn show(
    r: &pb::ShowReply,
    routers: &[(pb::LogicalRouter, Vec<pb::LogicalRouterPort>)],
) -> String {
    let mut out = String::new();
    for d in &r.switches {
        match &d.switch {
            Some(s) => out.push_str(&switch_line(s)),
            None => out.push_str("switch ?\n"),
        }
        for p in &d.ports {
            out.push_str(&port_block(p));
        }
    }
    for (router, ports) in routers {
        out.push_str(&router_block(router, ports));
    }
    for c in &r.chassis {
        out.push_str(&chassis_line(c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    fn sw(name: &str, vni: u32, subnet: &str, mtu: u32) -> pb::LogicalSwitch {
        pb::LogicalSwitch {
            name: name.into(),
            subnet: subnet.into(),
            vni,
            mtu,
            ..Default::default()
        }
    }

    fn port(name: &str, addresses: &[&str]) -> pb::LogicalSwitchPort {
        pb::LogicalSwitchPort {
            name: name.into(),
            switch_name: "sw1".into(),
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            enabled: true,
            ..Default::default()
        }
    }

    fn chassis(name: &str, ip: &str, alive: bool, applied: i64) -> pb::Chassis {
        pb::Chassis {
            name: name.into(),
            encap_ip: ip.into(),
            encap_types: vec!["geneve".into()],
            applied_revision: applied,
            alive,
            ..Default::default()
        }
    }

    fn reply() -> pb::ShowReply {
        let mut p1 = port("p1", &["0a:00:00:00:00:01 10.0.0.2"]);
        p1.up = true;
        p1.chassis = "host1".into();
        let mut p2 = port("p2", &["dynamic", "unknown"]);
        p2.dynamic_addresses = "0a:00:00:00:00:03 10.0.0.3".into();
        p2.port_security = vec!["0a:00:00:00:00:03 10.0.0.3".into()];
        p2.chassis = "host2".into();
        let mut p3 = port("p3", &[]);
        p3.enabled = false;
        p3.r#type = "router".into();
        pb::ShowReply {
            switches: vec![
                pb::SwitchDetail {
                    switch: Some(sw("sw1", 1001, "10.0.0.0/24", 0)),
                    ports: vec![p1, p2, p3],
                },
                pb::SwitchDetail {
                    switch: Some(sw("sw2", 7, "", 1400)),
                    ports: vec![],
                },
            ],
            chassis: vec![
                chassis("host1", "10.1.0.1", true, 123),
                chassis("host2", "10.1.0.2", false, 99),
            ],
            revision: 124,
        }
    }

    fn objects(kind: &str, objs: Vec<pb::object::Kind>) -> Reply {
        Reply::Objects(pb::ListObjectsReply {
            kind: kind.into(),
            records: objs
                .into_iter()
                .map(|o| pb::Record {
                    object: Some(crate::cmd::object(o)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    fn no_routers() -> [Reply; 2] {
        [
            objects("Logical_Router", vec![]),
            objects("Logical_Router_Port", vec![]),
        ]
    }

    fn all(show: pb::ShowReply) -> Vec<Reply> {
        let mut v = vec![Reply::Show(show)];
        v.extend(no_routers());
        v
    }

    #[test]
    fn show_prints_routers_after_switches() {
        use pb::object::Kind;
        let r = read(&["show"]);
        let lrp = |name: &str, router: &str, nets: &[&str], peer: &str| {
            Kind::LogicalRouterPort(pb::LogicalRouterPort {
                name: name.into(),
                router: router.into(),
                mac: "0a:00:00:00:01:01".into(),
                networks: nets.iter().map(|s| s.to_string()).collect(),
                peer: peer.into(),
                enabled: true,
                ..Default::default()
            })
        };
        let replies = vec![
            Reply::Show(pb::ShowReply {
                chassis: vec![chassis("host1", "10.1.0.1", true, 3)],
                ..Default::default()
            }),
            objects(
                "Logical_Router",
                vec![
                    Kind::LogicalRouter(pb::LogicalRouter {
                        name: "r2".into(),
                        enabled: false,
                        ..Default::default()
                    }),
                    Kind::LogicalRouter(pb::LogicalRouter {
                        name: "r1".into(),
                        enabled: true,
                        static_routes: vec![pb::LogicalRouterStaticRoute {
                            ip_prefix: "0.0.0.0/0".into(),
                            nexthop: "10.0.0.254".into(),
                            output_port: "lrp1".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                ],
            ),
            objects(
                "Logical_Router_Port",
                vec![
                    lrp("lrp2", "r1", &["10.1.0.1/24", "fd00::1/64"], "lrp9"),
                    lrp("lrp1", "r1", &["10.0.0.1/24"], ""),
                ],
            ),
        ];
        assert_eq!(
            render_read(&r, &replies, &out(false)),
            "\
router r1
    port lrp1
        mac: \"0a:00:00:00:01:01\"
        networks: [\"10.0.0.1/24\"]
    port lrp2
        mac: \"0a:00:00:00:01:01\"
        networks: [\"10.1.0.1/24\", \"fd00::1/64\"]
        peer: lrp9
    route 0.0.0.0/0 via 10.0.0.254 dst-ip port lrp1
router r2 (disabled)
chassis host1 (10.1.0.1, geneve) alive applied=3
"
        );
        let v = json(&render_read(&r, &replies, &out(true)));
        assert_eq!(v["routers"][0]["router"]["name"], "r1");
        assert_eq!(v["routers"][0]["ports"][1]["peer"], "lrp9");
        assert_eq!(v["routers"][0]["routes"][0]["nexthop"], "10.0.0.254");
    }

    #[test]
    fn show_matches_the_documented_layout() {
        let r = read(&["show"]);
        assert_eq!(r.calls[0], Call::Show);
        assert_eq!(r.calls.len(), 3);
        let expected = "\
switch sw1 (vni 1001, subnet 10.0.0.0/24)
    port p1 (up on host1)
        addresses: [\"0a:00:00:00:00:01 10.0.0.2\"]
    port p2 (down on host2)
        addresses: [\"dynamic\", \"unknown\"]
        dynamic addresses: [\"0a:00:00:00:00:03 10.0.0.3\"]
        port security: [\"0a:00:00:00:00:03 10.0.0.3\"]
    port p3 (down, disabled)
        type: router
switch sw2 (vni 7, mtu 1400)
chassis host1 (10.1.0.1, geneve) alive applied=123
chassis host2 (10.1.0.2, geneve) dead applied=99
";
        assert_eq!(
            render_read(&r, &[Reply::Show(reply())], &out(false)),
            expected
        );
        assert_eq!(
            render_read(&r, &[Reply::Show(pb::ShowReply::default())], &out(false)),
            ""
        );
    }

    #[test]
    fn show_one_switch() {
        let r = read(&["show", "sw2"]);
        assert_eq!(r.calls, vec![Call::Show]);
        assert_eq!(
            render_read(&r, &[Reply::Show(reply())], &out(false)),
            "switch sw2 (vni 7, mtu 1400)\n"
        );
        let v = json(&render_read(&r, &[Reply::Show(reply())], &out(true)));
        assert_eq!(v["switches"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["chassis"], serde_json::json!([]));
        let r = read(&["show", "nosuch"]);
        let e = (r.render)(&[Reply::Show(reply())], &out(false)).expect_err("missing");
        assert_eq!(e.to_string(), "switch \"nosuch\" not found");
    }

    #[test]
    fn show_quotes_odd_characters_and_json_round_trips() {
        let odd = pb::ShowReply {
            switches: vec![pb::SwitchDetail {
                switch: Some(sw("s", 1, "", 0)),
                ports: vec![port("p", &["a\"b"])],
            }],
            ..Default::default()
        };
        assert!(show(&odd, &[]).contains(r#"addresses: ["a\"b"]"#));
        let s = render_read(&read(&["show"]), &all(reply()), &out(true));
        let back: json::ShowReply = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json(&s)["routers"], serde_json::json!([]));
        assert_eq!(back, json::ShowReply::from(&reply()));
    }
}
