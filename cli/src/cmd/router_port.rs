//! Logical router ports: `lrp-add`, `lrp-del`, `lrp-list`, `lrp-set-enabled`,
//! `lrp-get-enabled`.

use clap::Subcommand;
use weft_proto::v1 as pb;

use super::db::{list_request, records_of};
use super::{
    delete, insert, quiet_text, render_revision, result_kind, set_scalar, update, CmdError, Noun,
    Outcome, PlanCtx, Read, Reply, Step, Write,
};
use crate::args::{EnabledArg, Format};
use crate::format::{json_text, lines, render_table, Cell, Out, Table};
use crate::json;

pub const KIND: &str = "Logical_Router_Port";

#[derive(Debug, Clone, Subcommand)]
pub enum RouterPortCmd {
    /// Add a port to a router: MAC, one or more networks (CIDR with the port's address),
    /// optionally peer=PEER.
    LrpAdd {
        /// Router name.
        router: String,
        /// Router port name (unique across router ports).
        port: String,
        /// Ethernet address, e.g. 0a:00:00:00:01:01.
        mac: String,
        /// NETWORK... (e.g. 10.0.0.1/24), then optionally peer=PEER.
        #[arg(value_name = "NETWORK", required = true)]
        networks: Vec<String>,
        /// A router port of that name already existing is not an error.
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete a router port.
    LrpDel {
        /// Router port name.
        port: String,
        /// A missing router port is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// List the ports of a router.
    LrpList {
        /// Router name.
        router: String,
    },
    /// Enable or disable a router port.
    LrpSetEnabled {
        /// Router port name.
        port: String,
        /// New state.
        #[arg(value_enum)]
        state: EnabledArg,
    },
    /// Print `enabled` or `disabled`.
    LrpGetEnabled {
        /// Router port name.
        port: String,
    },
}

impl Noun for RouterPortCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        Ok(match self {
            RouterPortCmd::LrpAdd {
                router,
                port,
                mac,
                networks,
                may_exist,
            } => {
                let (networks, peer) = split_peer(networks)?;
                Step::Write(Box::new(Write {
                    ops: vec![insert(
                        pb::object::Kind::LogicalRouterPort(pb::LogicalRouterPort {
                            name: port.clone(),
                            router: router.clone(),
                            mac: mac.clone(),
                            networks,
                            peer,
                            enabled: true,
                            ..Default::default()
                        }),
                        *may_exist,
                    )],
                    sugar: None,
                    render: Box::new(render_port_reply),
                }))
            }
            RouterPortCmd::LrpDel { port, if_exists } => Step::Write(Box::new(Write {
                ops: vec![delete(KIND, port, *if_exists)],
                sugar: None,
                render: Box::new(render_revision),
            })),
            RouterPortCmd::LrpList { router } => {
                let router = router.clone();
                Step::Read(Read {
                    // The router first, so that an unknown router is an error naming it.
                    calls: vec![
                        list_request(super::router::KIND, std::slice::from_ref(&router)),
                        list_request(KIND, &[]),
                    ],
                    render: Box::new(move |replies, out| render_list(&router, replies, out)),
                })
            }
            RouterPortCmd::LrpSetEnabled { port, state } => Step::Write(Box::new(Write {
                ops: vec![update(
                    KIND,
                    port,
                    vec![set_scalar("enabled", state.as_bool().to_string())],
                    false,
                )],
                sugar: None,
                render: Box::new(render_port_reply),
            })),
            RouterPortCmd::LrpGetEnabled { port } => Step::Read(Read {
                calls: vec![list_request(KIND, std::slice::from_ref(port))],
                render: Box::new(|replies, out| {
                    let ports = router_ports(replies, 0)?;
                    if out.json() {
                        let p = ports.first().map(|p| json::RouterPort::from(*p));
                        return Ok(json_text(&p, out)?);
                    }
                    Ok(lines(
                        &ports
                            .iter()
                            .map(|p| if p.enabled { "enabled" } else { "disabled" })
                            .collect::<Vec<_>>(),
                    ))
                }),
            }),
        })
    }
}

/// NETWORK... [peer=PEER] → (networks, peer).
fn split_peer(args: &[String]) -> Result<(Vec<String>, String), CmdError> {
    let mut networks = Vec::new();
    let mut peer = String::new();
    for a in args {
        match a.strip_prefix("peer=") {
            Some(p) if peer.is_empty() && !p.is_empty() => peer = p.to_string(),
            Some(_) => {
                return Err(CmdError::Usage {
                    command: "lrp-add",
                    reason: format!("{a:?}: give one non-empty peer=PEER"),
                })
            }
            None => networks.push(a.clone()),
        }
    }
    if networks.is_empty() {
        return Err(CmdError::Usage {
            command: "lrp-add",
            reason: "at least one NETWORK is required".into(),
        });
    }
    Ok((networks, peer))
}

fn router_ports(replies: &[Reply], i: usize) -> Result<Vec<&pb::LogicalRouterPort>, CmdError> {
    records_of(replies, i)?
        .records
        .iter()
        .map(
            |rec| match rec.object.as_ref().and_then(|o| o.kind.as_ref()) {
                Some(pb::object::Kind::LogicalRouterPort(p)) => Ok(p),
                _ => Err(CmdError::MalformedReply("a record is not a router port")),
            },
        )
        .collect()
}

/// lrp-add, lrp-set-*: nothing, or `{"revision", "port"}`.
fn render_port_reply(o: &Outcome<'_>, out: &Out) -> Result<String, CmdError> {
    if quiet_text(out) {
        return Ok(String::new());
    }
    let port = o
        .results
        .first()
        .and_then(result_kind)
        .and_then(|k| match k {
            pb::object::Kind::LogicalRouterPort(p) => Some(json::RouterPort::from(p)),
            _ => None,
        });
    Ok(json_text(
        &json::RouterPortReply {
            revision: o.revision,
            port,
        },
        out,
    )?)
}

fn render_list(router: &str, replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    if records_of(replies, 0)?.records.is_empty() {
        return Err(CmdError::NotFound {
            what: "router",
            name: router.to_string(),
        });
    }
    let mut ports: Vec<&pb::LogicalRouterPort> = router_ports(replies, 1)?
        .into_iter()
        .filter(|p| p.router == router)
        .collect();
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    if out.json() {
        return Ok(json_text(
            &json::ListRouterPortsReply {
                ports: ports.iter().map(|p| json::RouterPort::from(*p)).collect(),
                revision: records_of(replies, 1)?.revision,
            },
            out,
        )?);
    }
    let mut t = Table::new(&["NAME", "MAC", "NETWORKS", "PEER", "STATE"]);
    for p in ports {
        t.rows.push(vec![
            Cell::text(&p.name),
            Cell::text(&p.mac),
            Cell::text(p.networks.join(",")),
            Cell::text(&p.peer),
            Cell::text(if p.enabled { "enabled" } else { "disabled" }),
        ]);
    }
    Ok(render_table(&t, out, Format::Table)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;
    use crate::cmd::{column_op, object, Call};

    fn lrp(name: &str, router: &str, nets: &[&str], peer: &str) -> pb::LogicalRouterPort {
        pb::LogicalRouterPort {
            name: name.into(),
            router: router.into(),
            mac: "0a:00:00:00:01:01".into(),
            networks: nets.iter().map(|s| s.to_string()).collect(),
            peer: peer.into(),
            enabled: true,
            ..Default::default()
        }
    }

    #[test]
    fn lrp_add_with_networks_and_peer() {
        let w = write(&[
            "lrp-add",
            "r1",
            "lrp1",
            "0a:00:00:00:01:01",
            "10.0.0.1/24",
            "fd00::1/64",
            "peer=lrp9",
        ]);
        assert_eq!(
            w.ops,
            vec![insert(
                pb::object::Kind::LogicalRouterPort(lrp(
                    "lrp1",
                    "r1",
                    &["10.0.0.1/24", "fd00::1/64"],
                    "lrp9"
                )),
                false
            )]
        );
        let w = write(&[
            "--may-exist",
            "lrp-add",
            "r1",
            "lrp1",
            "0a:00:00:00:01:01",
            "10.0.0.1/24",
        ]);
        assert!(matches!(&w.ops[0].op, Some(pb::op::Op::Insert(i)) if i.may_exist));
        let e = plan_err(&["lrp-add", "r1", "lrp1", "0a:00:00:00:01:01", "peer=x"]);
        assert!(e.to_string().contains("at least one NETWORK"), "{e}");
        assert_eq!(e.exit_code(), 2);
        let e = plan_err(&["lrp-add", "r1", "p", "m", "10.0.0.1/24", "peer=a", "peer=b"]);
        assert!(e.to_string().contains("peer=b"), "{e}");
    }

    #[test]
    fn lrp_del_and_enabled() {
        assert_eq!(
            write(&["--if-exists", "lrp-del", "lrp1"]).ops,
            vec![delete(KIND, "lrp1", true)]
        );
        assert_eq!(
            write(&["lrp-set-enabled", "lrp1", "disabled"]).ops,
            vec![update(
                KIND,
                "lrp1",
                vec![column_op(
                    pb::column_op::Action::Set,
                    "enabled",
                    None,
                    vec!["false".into()]
                )],
                false
            )]
        );
    }

    fn records(kind: &str, objs: Vec<pb::object::Kind>) -> Reply {
        Reply::Objects(pb::ListObjectsReply {
            kind: kind.into(),
            columns: vec![],
            records: objs
                .into_iter()
                .map(|o| pb::Record {
                    kind: kind.into(),
                    object: Some(object(o)),
                    ..Default::default()
                })
                .collect(),
            revision: 5,
        })
    }

    #[test]
    fn lrp_list_filters_by_router() {
        let r = read(&["lrp-list", "r1"]);
        assert_eq!(
            r.calls[0],
            Call::ListObjects(pb::ListObjectsRequest {
                kind: "Logical_Router".into(),
                names: vec!["r1".into()]
            })
        );
        let routers = records(
            "Logical_Router",
            vec![pb::object::Kind::LogicalRouter(pb::LogicalRouter {
                name: "r1".into(),
                ..Default::default()
            })],
        );
        let ports = records(
            KIND,
            vec![
                pb::object::Kind::LogicalRouterPort(lrp("lrp2", "r1", &["10.0.1.1/24"], "")),
                pb::object::Kind::LogicalRouterPort(lrp("x", "r2", &["10.9.0.1/24"], "")),
                pb::object::Kind::LogicalRouterPort(lrp(
                    "lrp1",
                    "r1",
                    &["10.0.0.1/24", "fd00::1/64"],
                    "peer1",
                )),
            ],
        );
        assert_eq!(
            render_read(&r, &[routers.clone(), ports.clone()], &out(false)),
            "\
NAME  MAC                NETWORKS                PEER   STATE
lrp1  0a:00:00:00:01:01  10.0.0.1/24,fd00::1/64  peer1  enabled
lrp2  0a:00:00:00:01:01  10.0.1.1/24             -      enabled
"
        );
        let v = json(&render_read(&r, &[routers, ports.clone()], &out(true)));
        assert_eq!(v["ports"][0]["name"], "lrp1");
        let none = records("Logical_Router", vec![]);
        let e = (r.render)(&[none, ports], &out(false)).expect_err("unknown router");
        assert_eq!(e.to_string(), "router \"r1\" not found");
    }
}
