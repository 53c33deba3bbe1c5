//! `topology`: a picture of the network — routers, switches, and the chassis with the ports
//! they bind — as SVG (`-o svg`, the default; drawn by [`draw::render_svg`], no Graphviz
//! needed), Graphviz DOT (`-o dot`, for `dot -Tpng`) or the model as JSON (`-o json`).
//!
//! The data is what `show` reads: the Show reply (switches with their ports, including `up`,
//! `chassis` and `enabled`, and the chassis with `alive`) and ListObjects of
//! Logical_Router and Logical_Router_Port. A switch port of type `router` whose
//! `options:router-port` names a router port becomes a switch—router link; every other port
//! is drawn in the column of the chassis that binds it (or "unbound"). Building the
//! [`Topology`] and drawing it are pure.

mod draw;

use std::collections::{BTreeMap, BTreeSet};

use clap::Subcommand;
use serde::Serialize;
use weft_proto::v1 as pb;

pub use draw::{render_dot, render_svg};

use super::db::{list_request, records_of};
use super::{Call, CmdError, Noun, PlanCtx, Read, Reply, Step};
use crate::args::Format;
use crate::format::json_text;

#[derive(Debug, Clone, Subcommand)]
pub enum TopologyCmd {
    /// Draw switches, routers and chassis with their ports: `-o svg` (default), `-o dot`
    /// (Graphviz) or `-o json`.
    Topology,
}

impl Noun for TopologyCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        Ok(Step::Read(Read {
            calls: vec![
                Call::Show,
                list_request(super::router::KIND, &[]),
                list_request(super::router_port::KIND, &[]),
            ],
            render: Box::new(|replies, out| {
                let t = Topology::from_replies(replies)?;
                match out.format {
                    None | Some(Format::Svg) => Ok(render_svg(&t)),
                    Some(Format::Dot) => Ok(render_dot(&t)),
                    Some(Format::Json) => Ok(json_text(&t, out)?),
                    Some(f @ (Format::Table | Format::List | Format::Csv)) => {
                        Err(CmdError::Usage {
                            command: "topology",
                            reason: format!(
                                "-o {} is not a picture format (use svg, dot or json)",
                                clap::ValueEnum::to_possible_value(&f)
                                    .map(|v| v.get_name().to_string())
                                    .unwrap_or_default()
                            ),
                        })
                    }
                }
            }),
        }))
    }
}

/// What the picture shows. Every list is sorted by name, so the drawing of the same network
/// is the same byte for byte.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// The etcd revision the Show reply was read at.
    pub revision: i64,
    pub routers: Vec<RouterNode>,
    pub switches: Vec<SwitchNode>,
    /// Registered chassis, then any chassis a port names that is not registered.
    pub chassis: Vec<ChassisNode>,
    /// Ports drawn in chassis columns (every switch port except resolved router links).
    pub ports: Vec<PortNode>,
    /// Switch—router links (switch ports of type `router`).
    pub links: Vec<RouterLink>,
    /// Router—router links (router ports with a `peer`), each pair once.
    pub peers: Vec<PeerLink>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SwitchNode {
    pub name: String,
    pub subnet: String,
    pub vni: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouterNode {
    pub name: String,
    pub enabled: bool,
    pub ports: Vec<RouterPortNode>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouterPortNode {
    pub name: String,
    pub networks: Vec<String>,
    pub enabled: bool,
}

/// A chassis' state as the picture marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChassisState {
    Alive,
    /// Registered, but its lease is gone (the agent is not connected).
    Dead,
    /// Named by a port binding but not registered (deleted).
    Unknown,
}

impl ChassisState {
    pub fn word(self) -> &'static str {
        match self {
            ChassisState::Alive => "alive",
            ChassisState::Dead => "dead",
            ChassisState::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChassisNode {
    pub name: String,
    pub encap_ip: String,
    pub state: ChassisState,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortNode {
    pub name: String,
    pub switch: String,
    /// The binding chassis, "" when unbound.
    pub chassis: String,
    pub up: bool,
    pub enabled: bool,
    /// The port's type when not a plain VIF ("" for a VIF).
    #[serde(rename = "type")]
    pub kind: String,
    /// The first IP address of the port (static or dynamic), "" if none.
    pub ip: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouterLink {
    pub switch: String,
    /// The switch port (type router).
    pub switch_port: String,
    pub router: String,
    pub router_port: String,
    pub networks: Vec<String>,
    /// Both sides enabled.
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerLink {
    pub router: String,
    pub port: String,
    pub peer_router: String,
    pub peer_port: String,
}

impl Topology {
    /// From the replies of [`TopologyCmd`]'s calls: Show, Logical_Router, Logical_Router_Port.
    pub fn from_replies(replies: &[Reply]) -> Result<Topology, CmdError> {
        let Some(Reply::Show(show)) = replies.first() else {
            return Err(CmdError::MalformedReply("topology: not a ShowReply"));
        };
        let routers = objects(records_of(replies, 1)?, |k| match k {
            pb::object::Kind::LogicalRouter(r) => Some(r.clone()),
            _ => None,
        });
        let rports = objects(records_of(replies, 2)?, |k| match k {
            pb::object::Kind::LogicalRouterPort(p) => Some(p.clone()),
            _ => None,
        });
        Ok(Topology::build(show, &routers, &rports))
    }

    /// The model of a network.
    pub fn build(
        show: &pb::ShowReply,
        routers: &[pb::LogicalRouter],
        router_ports: &[pb::LogicalRouterPort],
    ) -> Topology {
        let mut t = Topology {
            revision: show.revision,
            ..Default::default()
        };
        let lrps: BTreeMap<&str, &pb::LogicalRouterPort> =
            router_ports.iter().map(|p| (p.name.as_str(), p)).collect();
        let router_names: BTreeSet<&str> = routers.iter().map(|r| r.name.as_str()).collect();

        for r in routers {
            let mut ports: Vec<RouterPortNode> = router_ports
                .iter()
                .filter(|p| p.router == r.name)
                .map(|p| RouterPortNode {
                    name: p.name.clone(),
                    networks: p.networks.clone(),
                    enabled: p.enabled,
                })
                .collect();
            ports.sort_by(|a, b| a.name.cmp(&b.name));
            t.routers.push(RouterNode {
                name: r.name.clone(),
                enabled: r.enabled,
                ports,
            });
        }
        t.routers.sort_by(|a, b| a.name.cmp(&b.name));

        for d in &show.switches {
            let Some(s) = &d.switch else { continue };
            t.switches.push(SwitchNode {
                name: s.name.clone(),
                subnet: s.subnet.clone(),
                vni: s.vni,
            });
            for p in &d.ports {
                let lrp = (p.r#type == "router")
                    .then(|| p.options.get("router-port"))
                    .flatten()
                    .and_then(|n| lrps.get(n.as_str()))
                    .filter(|lrp| router_names.contains(lrp.router.as_str()));
                match lrp {
                    Some(lrp) => t.links.push(RouterLink {
                        switch: s.name.clone(),
                        switch_port: p.name.clone(),
                        router: lrp.router.clone(),
                        router_port: lrp.name.clone(),
                        networks: lrp.networks.clone(),
                        enabled: p.enabled && lrp.enabled,
                    }),
                    None => t.ports.push(PortNode {
                        name: p.name.clone(),
                        switch: s.name.clone(),
                        chassis: p.chassis.clone(),
                        up: p.up,
                        enabled: p.enabled,
                        kind: p.r#type.clone(),
                        ip: first_ip(p),
                    }),
                }
            }
        }
        t.switches.sort_by(|a, b| a.name.cmp(&b.name));
        t.ports.sort_by(|a, b| a.name.cmp(&b.name));
        t.links.sort_by(|a, b| {
            (&a.router, &a.switch, &a.switch_port).cmp(&(&b.router, &b.switch, &b.switch_port))
        });

        for c in &show.chassis {
            t.chassis.push(ChassisNode {
                name: c.name.clone(),
                encap_ip: c.encap_ip.clone(),
                state: if c.alive {
                    ChassisState::Alive
                } else {
                    ChassisState::Dead
                },
            });
        }
        let known: BTreeSet<String> = t.chassis.iter().map(|c| c.name.clone()).collect();
        let unknown: BTreeSet<&str> = t
            .ports
            .iter()
            .map(|p| p.chassis.as_str())
            .filter(|c| !c.is_empty() && !known.contains(*c))
            .collect();
        t.chassis.sort_by(|a, b| a.name.cmp(&b.name));
        t.chassis.extend(unknown.into_iter().map(|c| ChassisNode {
            name: c.to_string(),
            encap_ip: String::new(),
            state: ChassisState::Unknown,
        }));

        let mut seen = BTreeSet::new();
        let mut sorted: Vec<&pb::LogicalRouterPort> = router_ports.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        for p in sorted {
            let Some(peer) = lrps.get(p.peer.as_str()) else {
                continue;
            };
            let key = if p.name <= peer.name {
                (p.name.clone(), peer.name.clone())
            } else {
                (peer.name.clone(), p.name.clone())
            };
            if router_names.contains(p.router.as_str())
                && router_names.contains(peer.router.as_str())
                && seen.insert(key)
            {
                t.peers.push(PeerLink {
                    router: p.router.clone(),
                    port: p.name.clone(),
                    peer_router: peer.router.clone(),
                    peer_port: peer.name.clone(),
                });
            }
        }
        t
    }

    /// The ports of chassis `name` ("" = unbound), in name order.
    pub fn ports_on<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a PortNode> + 'a {
        self.ports.iter().filter(move |p| p.chassis == name)
    }

    /// Whether some port is unbound (the picture then has an "unbound" column).
    pub fn has_unbound(&self) -> bool {
        self.ports.iter().any(|p| p.chassis.is_empty())
    }
}

fn objects<T>(
    reply: &pb::ListObjectsReply,
    pick: impl Fn(&pb::object::Kind) -> Option<T>,
) -> Vec<T> {
    reply
        .records
        .iter()
        .filter_map(|r| r.object.as_ref().and_then(|o| o.kind.as_ref()))
        .filter_map(pick)
        .collect()
}

/// The first IP of "MAC IP..." entries (static first, then the dynamic allocation).
fn first_ip(p: &pb::LogicalSwitchPort) -> String {
    p.addresses
        .iter()
        .chain(std::iter::once(&p.dynamic_addresses))
        .find_map(|a| a.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cmd::testutil::*;
    use std::collections::HashMap;

    pub fn lsp(name: &str, sw: &str, chassis: &str, up: bool) -> pb::LogicalSwitchPort {
        pb::LogicalSwitchPort {
            name: name.into(),
            switch_name: sw.into(),
            chassis: chassis.into(),
            up,
            enabled: true,
            ..Default::default()
        }
    }

    pub fn router_lsp(name: &str, sw: &str, lrp: &str) -> pb::LogicalSwitchPort {
        pb::LogicalSwitchPort {
            r#type: "router".into(),
            options: HashMap::from([("router-port".to_string(), lrp.to_string())]),
            ..lsp(name, sw, "", false)
        }
    }

    pub fn lrp(name: &str, router: &str, net: &str, peer: &str) -> pb::LogicalRouterPort {
        pb::LogicalRouterPort {
            name: name.into(),
            router: router.into(),
            networks: vec![net.into()],
            peer: peer.into(),
            enabled: true,
            ..Default::default()
        }
    }

    fn ls(name: &str, subnet: &str, ports: Vec<pb::LogicalSwitchPort>) -> pb::SwitchDetail {
        pb::SwitchDetail {
            switch: Some(pb::LogicalSwitch {
                name: name.into(),
                subnet: subnet.into(),
                vni: 7,
                ..Default::default()
            }),
            ports,
        }
    }

    fn ch(name: &str, alive: bool) -> pb::Chassis {
        pb::Chassis {
            name: name.into(),
            encap_ip: "192.0.2.1".into(),
            alive,
            ..Default::default()
        }
    }

    /// Two switches joined by r1, ports on an alive and a dead chassis and one unbound.
    pub fn sample() -> Topology {
        let mut p1 = lsp("p1", "sw1", "hv1", true);
        p1.addresses = vec!["0a:00:00:00:00:01 10.0.0.2".into()];
        let mut p3 = lsp("p3", "sw2", "", false);
        p3.dynamic_addresses = "0a:00:00:00:00:03 10.0.1.3".into();
        p3.enabled = false;
        let show = pb::ShowReply {
            switches: vec![
                ls(
                    "sw2",
                    "10.0.1.0/24",
                    vec![p3, router_lsp("sw2-r1", "sw2", "r1-sw2")],
                ),
                ls(
                    "sw1",
                    "10.0.0.0/24",
                    vec![
                        p1,
                        lsp("p2", "sw1", "hv2", false),
                        router_lsp("sw1-r1", "sw1", "r1-sw1"),
                        router_lsp("dangling", "sw1", "nosuch"),
                    ],
                ),
            ],
            chassis: vec![ch("hv2", false), ch("hv1", true)],
            revision: 42,
        };
        let routers = [
            pb::LogicalRouter {
                name: "r1".into(),
                enabled: true,
                ..Default::default()
            },
            pb::LogicalRouter {
                name: "r0".into(),
                enabled: true,
                ..Default::default()
            },
        ];
        let lrps = [
            lrp("r1-sw2", "r1", "10.0.1.1/24", ""),
            lrp("r1-sw1", "r1", "10.0.0.1/24", ""),
            lrp("r1-r0", "r1", "169.254.0.1/30", "r0-r1"),
            lrp("r0-r1", "r0", "169.254.0.2/30", "r1-r0"),
        ];
        Topology::build(&show, &routers, &lrps)
    }

    #[test]
    fn build_sorts_links_routers_and_groups_ports() {
        let t = sample();
        let names = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            t.switches
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
            names(vec!["sw1", "sw2"])
        );
        assert_eq!(t.routers[1].name, "r1");
        assert_eq!(
            t.routers[1]
                .ports
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>(),
            names(vec!["r1-r0", "r1-sw1", "r1-sw2"])
        );
        assert_eq!(
            t.links
                .iter()
                .map(|l| format!(
                    "{}:{}-{}:{}",
                    l.switch, l.switch_port, l.router, l.router_port
                ))
                .collect::<Vec<_>>(),
            names(vec!["sw1:sw1-r1-r1:r1-sw1", "sw2:sw2-r1-r1:r1-sw2"])
        );
        // A router port naming no router port stays a port (unbound).
        assert_eq!(
            t.ports.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
            names(vec!["dangling", "p1", "p2", "p3"])
        );
        assert_eq!(t.ports[3].ip, "10.0.1.3");
        assert_eq!(t.ports[1].ip, "10.0.0.2");
        assert_eq!(
            t.chassis
                .iter()
                .map(|c| (c.name.as_str(), c.state))
                .collect::<Vec<_>>(),
            vec![("hv1", ChassisState::Alive), ("hv2", ChassisState::Dead)]
        );
        assert_eq!(t.peers.len(), 1, "{:?}", t.peers);
        assert_eq!(
            (t.peers[0].port.as_str(), t.peers[0].peer_port.as_str()),
            ("r0-r1", "r1-r0")
        );
        assert!(t.has_unbound());
        assert_eq!(t.ports_on("hv2").count(), 1);
    }

    #[test]
    fn a_chassis_only_a_binding_names_is_unknown() {
        let show = pb::ShowReply {
            switches: vec![ls("s", "", vec![lsp("p", "s", "gone", false)])],
            ..Default::default()
        };
        let t = Topology::build(&show, &[], &[]);
        assert_eq!(t.chassis.len(), 1);
        assert_eq!(t.chassis[0].state, ChassisState::Unknown);
        assert!(!t.has_unbound());
    }

    #[test]
    fn topology_reads_what_show_reads_and_renders_each_format() {
        let r = read(&["topology"]);
        assert_eq!(r.calls.len(), 3);
        assert_eq!(r.calls[0], Call::Show);
        let replies = vec![
            Reply::Show(pb::ShowReply {
                switches: vec![ls("sw1", "", vec![lsp("p1", "sw1", "hv1", true)])],
                chassis: vec![ch("hv1", true)],
                revision: 3,
            }),
            Reply::Objects(pb::ListObjectsReply::default()),
            Reply::Objects(pb::ListObjectsReply::default()),
        ];
        let svg = render_read(&r, &replies, &out(false));
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
        let mut o = out(false);
        o.format = Some(Format::Svg);
        assert_eq!(render_read(&r, &replies, &o), svg);
        o.format = Some(Format::Dot);
        assert!(render_read(&r, &replies, &o).starts_with("graph weft {"));
        let v = json(&render_read(&r, &replies, &out(true)));
        assert_eq!(v["ports"][0]["chassis"], "hv1");
        assert_eq!(v["chassis"][0]["state"], "alive");
        o.format = Some(Format::Csv);
        let e = (r.render)(&replies, &o).expect_err("csv");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("-o csv"), "{e}");
    }
}
