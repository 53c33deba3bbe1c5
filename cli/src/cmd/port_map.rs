//! Port mapping, Docker's `-p` on a router: `lr-port-map-add ROUTER EXTERNAL_IP:PORT
//! LOGICAL_IP:PORT [tcp|udp]`, `lr-port-map-del ROUTER EXTERNAL_IP:PORT [tcp|udp]`,
//! `lr-port-map-list ROUTER`. A mapping is a load balancer underneath
//! ([`weft_proto::model::port_map`]: one VIP, one backend, named `pm-ROUTER-IP-PORT-PROTO`,
//! marked in `external_ids`), applied on the router; add creates it and attaches it in one
//! transaction (two ops, so `--` chains work), del deletes it (which detaches it). The
//! controller refuses a mapping whose external IP is on no gateway port network of the
//! router, and a duplicate (the same external IP, port and protocol).

use clap::Subcommand;
use serde::Serialize;
use weft_proto::model::port_map::{self, PortMap};
use weft_proto::v1 as pb;

use super::db::{list_request, named_record, objects_of};
use super::{column_op, delete, insert, update, CmdError, Noun, PlanCtx, Read, Reply, Step};
use crate::format::{json_text, render_table, Cell, Out, Table};

const ROUTER: &str = super::router::KIND;
const LB: &str = super::load_balancer::KIND;

#[derive(Debug, Clone, Subcommand)]
pub enum PortMapCmd {
    /// Map EXTERNAL_IP:PORT (on a network of ROUTER's gateway port) to LOGICAL_IP:PORT
    /// (tcp by default): new connections from outside are DNATed on the gateway chassis.
    LrPortMapAdd {
        /// Router name.
        router: String,
        /// External IPv4 address and port.
        external: String,
        /// Logical IPv4 address and port.
        logical: String,
        /// tcp or udp.
        protocol: Option<String>,
    },
    /// Remove the mapping of EXTERNAL_IP:PORT (tcp by default) from ROUTER.
    LrPortMapDel {
        /// Router name.
        router: String,
        /// External IPv4 address and port.
        external: String,
        /// tcp or udp.
        protocol: Option<String>,
        /// No such mapping is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// List ROUTER's port mappings.
    LrPortMapList {
        /// Router name.
        router: String,
    },
}

use super::usage_error as usage;

impl Noun for PortMapCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        let write = super::revision_write;
        Ok(match self {
            PortMapCmd::LrPortMapAdd {
                router,
                external,
                logical,
                protocol,
            } => {
                let pm =
                    PortMap::parse(router, external, logical, protocol.as_deref().unwrap_or(""))
                        .map_err(|e| usage("lr-port-map-add", e))?;
                write(vec![
                    insert(pb::object::Kind::LoadBalancer(pm.to_load_balancer()), false),
                    update(
                        ROUTER,
                        router,
                        vec![column_op(
                            pb::column_op::Action::Add,
                            "load_balancer",
                            None,
                            vec![pm.name()],
                        )],
                        false,
                    ),
                ])
            }
            PortMapCmd::LrPortMapDel {
                router,
                external,
                protocol,
                if_exists,
            } => {
                let (ip, port) = port_map::parse_address("port_map.external", external)
                    .map_err(|e| usage("lr-port-map-del", e))?;
                let proto = port_map::parse_protocol(
                    "port_map.protocol",
                    protocol.as_deref().unwrap_or(""),
                )
                .map_err(|e| usage("lr-port-map-del", e))?;
                write(vec![delete(
                    LB,
                    &port_map::lb_name(router, ip, port, proto),
                    *if_exists,
                )])
            }
            PortMapCmd::LrPortMapList { router } => {
                let router = router.clone();
                Step::Read(Read {
                    calls: vec![
                        list_request(ROUTER, std::slice::from_ref(&router)),
                        list_request(LB, &[]),
                    ],
                    render: Box::new(move |replies, out| render_list(&router, replies, out)),
                })
            }
        })
    }
}

/// One mapping as `lr-port-map-list --format json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct PortMapJson {
    external: String,
    logical: String,
    protocol: String,
    load_balancer: String,
}

#[derive(Debug, Serialize)]
struct ListReply {
    router: String,
    port_maps: Vec<PortMapJson>,
    revision: i64,
}

/// The router's port mappings: the LBs it names that are port mappings of it, sorted by
/// external address, port and protocol.
fn mappings(r: &pb::LogicalRouter, lbs: &[pb::LoadBalancer]) -> Vec<PortMap> {
    let mut out: Vec<PortMap> = lbs
        .iter()
        .filter(|l| r.load_balancer.contains(&l.name))
        .filter_map(|l| PortMap::from_load_balancer(l)?.ok())
        .filter(|pm| pm.router == r.name)
        .collect();
    out.sort_by(|a, b| (a.external, a.protocol).cmp(&(b.external, b.protocol)));
    out
}

fn render_list(router: &str, replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let (r, _) = named_record(replies, 0, "router", router, |k| match k {
        pb::object::Kind::LogicalRouter(r) => Some((r.name.as_str(), r)),
        _ => None,
    })?;
    let (lbs, revision) = objects_of(
        replies,
        1,
        |k| match k {
            pb::object::Kind::LoadBalancer(l) => Some(l),
            _ => None,
        },
        "lr-port-map-list: a record is not a load balancer",
    )?;
    let maps = mappings(r, &lbs);
    if out.json() {
        return Ok(json_text(
            &ListReply {
                router: router.to_string(),
                port_maps: maps
                    .iter()
                    .map(|m| PortMapJson {
                        external: m.external_text(),
                        logical: m.logical_text(),
                        protocol: m.protocol.to_string(),
                        load_balancer: m.name(),
                    })
                    .collect(),
                revision,
            },
            out,
        )?);
    }
    if maps.is_empty() {
        return Ok(String::new());
    }
    let mut t = Table::new(&["EXTERNAL", "LOGICAL", "PROTO"]);
    for m in &maps {
        t.rows.push(vec![
            Cell::text(m.external_text()),
            Cell::text(m.logical_text()),
            Cell::text(m.protocol),
        ]);
    }
    Ok(render_table(&t, out, crate::args::Format::Table)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    #[test]
    fn add_is_an_lb_insert_and_an_attach_in_one_write() {
        let w = write(&["lr-port-map-add", "lr1", "172.16.0.10:8080", "10.31.0.5:80"]);
        assert_eq!(w.ops.len(), 2);
        let Some(pb::op::Op::Insert(i)) = &w.ops[0].op else {
            panic!("{:?}", w.ops[0])
        };
        let Some(pb::object::Kind::LoadBalancer(l)) =
            i.object.as_ref().and_then(|o| o.kind.clone())
        else {
            panic!()
        };
        assert_eq!(l.name, "pm-lr1-172.16.0.10-8080-tcp");
        assert_eq!(l.vips["172.16.0.10:8080"], "10.31.0.5:80");
        assert_eq!(l.external_ids[port_map::EXTERNAL_ID_ROUTER], "lr1");
        assert!(!i.may_exist);
        let Some(pb::op::Op::Update(u)) = &w.ops[1].op else {
            panic!()
        };
        assert_eq!(
            (
                u.kind.as_str(),
                u.name.as_str(),
                u.columns[0].column.as_str(),
                u.columns[0].values[0].as_str()
            ),
            (
                ROUTER,
                "lr1",
                "load_balancer",
                "pm-lr1-172.16.0.10-8080-tcp"
            )
        );
        let w = write(&["lr-port-map-del", "lr1", "172.16.0.10:8080", "udp"]);
        let Some(pb::op::Op::Delete(d)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(
            (d.kind.as_str(), d.name.as_str()),
            (LB, "pm-lr1-172.16.0.10-8080-udp")
        );
        assert_eq!(read(&["lr-port-map-list", "lr1"]).calls.len(), 2);
    }

    #[test]
    fn bad_input_is_a_usage_error_naming_the_value() {
        for (args, value) in [
            (
                &["lr-port-map-add", "lr1", "172.16.0.10", "10.31.0.5:80"][..],
                "172.16.0.10",
            ),
            (
                &["lr-port-map-add", "lr1", "172.16.0.10:8080", "10.31.0.5:0"][..],
                "10.31.0.5:0",
            ),
            (
                &[
                    "lr-port-map-add",
                    "lr1",
                    "172.16.0.10:8080",
                    "10.31.0.5:80",
                    "sctp",
                ][..],
                "sctp",
            ),
            (
                &["lr-port-map-del", "lr1", "172.16.0.10:99999"][..],
                "172.16.0.10:99999",
            ),
        ] {
            let e = plan_err(args);
            assert!(matches!(e, CmdError::Usage { .. }), "{args:?}: {e}");
            assert!(e.to_string().contains(value), "{args:?}: {e}");
        }
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn list_shows_only_the_routers_mappings() {
        let pm = PortMap::parse("lr1", "172.16.0.10:8080", "10.31.0.5:80", "tcp").unwrap();
        let other = PortMap::parse("lr2", "172.16.0.10:8080", "10.31.0.6:80", "tcp").unwrap();
        let plain = pb::LoadBalancer {
            name: "web".into(),
            ..Default::default()
        };
        let r = pb::LogicalRouter {
            name: "lr1".into(),
            load_balancer: vec![pm.name(), "web".into()],
            ..Default::default()
        };
        let lbs = vec![pm.to_load_balancer(), other.to_load_balancer(), plain];
        assert_eq!(mappings(&r, &lbs), vec![pm]);
    }
}
