//! Gateway chassis of a router port: `lrp-set-gateway-chassis PORT CHASSIS [PRIORITY]`,
//! `lrp-del-gateway-chassis PORT CHASSIS`, `lrp-get-gateway-chassis PORT`, as ovn-nbctl has
//! them. They are the port's `gateway_chassis` column (`CHASSIS PRIORITY` each); set and del
//! are column ops the controller applies with ovn-nbctl's rules
//! ([`weft_proto::model::nat::apply_gateway_set`]).

use clap::Subcommand;
use serde::Serialize;
use weft_proto::model::nat::{by_priority, Gateway};
use weft_proto::v1 as pb;

use super::db::{list_request, named_record};
use super::{
    column_op, render_revision, update, CmdError, Noun, PlanCtx, Read, Reply, Step, Write,
};
use crate::format::{json_text, Out};

pub const KIND: &str = super::router_port::KIND;
const COLUMN: &str = "gateway_chassis";

#[derive(Debug, Clone, Subcommand)]
pub enum GatewayChassisCmd {
    /// Make CHASSIS a gateway chassis of router port PORT with PRIORITY (0..32767, default
    /// 0; higher wins), or change its priority.
    LrpSetGatewayChassis {
        /// Router port name.
        port: String,
        /// Chassis name.
        chassis: String,
        /// Priority.
        priority: Option<u32>,
    },
    /// Remove CHASSIS from the gateway chassis of PORT.
    LrpDelGatewayChassis {
        /// Router port name.
        port: String,
        /// Chassis name.
        chassis: String,
    },
    /// Print the gateway chassis of PORT, highest priority first: `PORT-CHASSIS PRIORITY`.
    LrpGetGatewayChassis {
        /// Router port name.
        port: String,
    },
}

use super::usage_error as usage;

fn column_write(port: &str, action: pb::column_op::Action, value: String) -> Step {
    Step::Write(Box::new(Write {
        ops: vec![update(
            KIND,
            port,
            vec![column_op(action, COLUMN, None, vec![value])],
            false,
        )],
        sugar: None,
        render: Box::new(render_revision),
    }))
}

impl Noun for GatewayChassisCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        Ok(match self {
            GatewayChassisCmd::LrpSetGatewayChassis {
                port,
                chassis,
                priority,
            } => {
                let g = Gateway::new("CHASSIS", chassis, priority.unwrap_or(0))
                    .map_err(|e| usage("lrp-set-gateway-chassis", e))?;
                column_write(port, pb::column_op::Action::Add, g.to_text())
            }
            GatewayChassisCmd::LrpDelGatewayChassis { port, chassis } => {
                Gateway::new("CHASSIS", chassis, 0)
                    .map_err(|e| usage("lrp-del-gateway-chassis", e))?;
                column_write(port, pb::column_op::Action::Remove, chassis.clone())
            }
            GatewayChassisCmd::LrpGetGatewayChassis { port } => {
                let port = port.clone();
                Step::Read(Read {
                    calls: vec![list_request(KIND, std::slice::from_ref(&port))],
                    render: Box::new(move |replies, out| render_get(&port, replies, out)),
                })
            }
        })
    }
}

/// One gateway chassis as `--format json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayJson {
    pub chassis: String,
    pub priority: u32,
}

/// The port's gateway chassis, highest priority first.
pub fn sorted_gateways(p: &pb::LogicalRouterPort) -> Vec<GatewayJson> {
    let gs: Vec<Gateway> = p
        .gateway_chassis
        .iter()
        .filter_map(|g| Gateway::from_message("gateway_chassis", g).ok())
        .collect();
    by_priority(&gs)
        .into_iter()
        .map(|g| GatewayJson {
            chassis: g.chassis,
            priority: g.priority,
        })
        .collect()
}

fn render_get(port: &str, replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let (p, _) = named_record(replies, 0, "router port", port, |k| match k {
        pb::object::Kind::LogicalRouterPort(p) => Some((p.name.as_str(), p)),
        _ => None,
    })?;
    let gs = sorted_gateways(p);
    if out.json() {
        return Ok(json_text(&gs, out)?);
    }
    // ovn-nbctl: "%s %5"PRId64, the Gateway_Chassis row name being PORT-CHASSIS.
    Ok(gs
        .iter()
        .map(|g| format!("{port}-{} {:>5}\n", g.chassis, g.priority))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    #[test]
    fn set_del_get() {
        let w = write(&["lrp-set-gateway-chassis", "lrp1", "hv1", "20"]);
        match &w.ops[0].op {
            Some(pb::op::Op::Update(u)) => {
                assert_eq!((u.kind.as_str(), u.name.as_str()), (KIND, "lrp1"));
                assert_eq!(u.columns[0].values, ["hv1 20"]);
            }
            other => panic!("{other:?}"),
        }
        let w = write(&["lrp-del-gateway-chassis", "lrp1", "hv1"]);
        match &w.ops[0].op {
            Some(pb::op::Op::Update(u)) => {
                assert_eq!(u.columns[0].action, pb::column_op::Action::Remove as i32);
                assert_eq!(u.columns[0].values, ["hv1"]);
            }
            other => panic!("{other:?}"),
        }
        let e = plan_err(&["lrp-set-gateway-chassis", "lrp1", "hv1", "40000"]).to_string();
        assert!(e.contains("priority"), "{e}");
        let p = pb::LogicalRouterPort {
            name: "lrp1".into(),
            gateway_chassis: vec![
                pb::GatewayChassis {
                    chassis_name: "hv2".into(),
                    priority: 10,
                },
                pb::GatewayChassis {
                    chassis_name: "hv1".into(),
                    priority: 20,
                },
            ],
            ..Default::default()
        };
        let reply = [Reply::Objects(pb::ListObjectsReply {
            kind: KIND.into(),
            columns: vec![],
            records: vec![pb::Record {
                kind: KIND.into(),
                name: "lrp1".into(),
                columns: vec![],
                object: Some(crate::cmd::object(pb::object::Kind::LogicalRouterPort(p))),
            }],
            revision: 4,
        })];
        let rd = read(&["lrp-get-gateway-chassis", "lrp1"]);
        assert_eq!(
            render_read(&rd, &reply, &out(false)),
            "lrp1-hv1    20\nlrp1-hv2    10\n"
        );
    }
}
