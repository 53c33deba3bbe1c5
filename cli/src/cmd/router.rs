//! Logical routers: `lr-add`, `lr-del`, `lr-list`.

use clap::Subcommand;
use weft_proto::v1 as pb;

use super::db::{list_request, records_of};
use super::{
    delete, insert, quiet_text, render_revision, result_kind, CmdError, Noun, Outcome, PlanCtx,
    Read, Reply, Step, Write,
};
use crate::args::Format;
use crate::format::{json_text, render_table, Cell, Out, Table};
use crate::json;

pub const KIND: &str = "Logical_Router";

#[derive(Debug, Clone, Subcommand)]
pub enum RouterCmd {
    /// Create a logical router.
    LrAdd {
        /// Router name.
        router: String,
        /// A router of that name already existing is not an error (it is left unchanged).
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete a logical router (and its ports).
    LrDel {
        /// Router name.
        router: String,
        /// A missing router is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// List logical routers.
    LrList,
}

impl Noun for RouterCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        Ok(match self {
            RouterCmd::LrAdd { router, may_exist } => Step::Write(Box::new(Write {
                ops: vec![insert(
                    pb::object::Kind::LogicalRouter(pb::LogicalRouter {
                        name: router.clone(),
                        enabled: true,
                        ..Default::default()
                    }),
                    *may_exist,
                )],
                sugar: None,
                render: Box::new(render_router_reply),
            })),
            RouterCmd::LrDel { router, if_exists } => Step::Write(Box::new(Write {
                ops: vec![delete(KIND, router, *if_exists)],
                sugar: None,
                render: Box::new(render_revision),
            })),
            RouterCmd::LrList => Step::Read(Read {
                calls: vec![list_request(KIND, &[])],
                render: Box::new(render_list),
            }),
        })
    }
}

/// lr-add: nothing, or `{"revision", "router"}`.
fn render_router_reply(o: &Outcome<'_>, out: &Out) -> Result<String, CmdError> {
    if quiet_text(out) {
        return Ok(String::new());
    }
    let router = o
        .results
        .first()
        .and_then(result_kind)
        .and_then(|k| match k {
            pb::object::Kind::LogicalRouter(r) => Some(json::Router::from(r)),
            _ => None,
        });
    Ok(json_text(
        &json::RouterReply {
            revision: o.revision,
            router,
        },
        out,
    )?)
}

fn render_list(replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let reply = records_of(replies, 0)?;
    let mut routers = Vec::new();
    let mut t = Table::new(&["NAME", "STATE", "PORTS"]);
    for rec in &reply.records {
        let Some(pb::object::Kind::LogicalRouter(r)) =
            rec.object.as_ref().and_then(|o| o.kind.as_ref())
        else {
            return Err(CmdError::MalformedReply(
                "lr-list: a record is not a router",
            ));
        };
        let ports = super::db::column(rec, "ports")
            .map(|c| c.values.join(","))
            .unwrap_or_default();
        t.rows.push(vec![
            Cell::text(&r.name),
            Cell::text(if r.enabled { "enabled" } else { "disabled" }),
            Cell::text(ports),
        ]);
        routers.push(json::Router::from(r));
    }
    if out.json() {
        return Ok(json_text(
            &json::ListRoutersReply {
                routers,
                revision: reply.revision,
            },
            out,
        )?);
    }
    Ok(render_table(&t, out, Format::Table)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;
    use crate::cmd::Call;

    #[test]
    fn lr_add_and_del() {
        let w = write(&["--may-exist", "lr-add", "r1"]);
        assert_eq!(
            w.ops,
            vec![insert(
                pb::object::Kind::LogicalRouter(pb::LogicalRouter {
                    name: "r1".into(),
                    enabled: true,
                    ..Default::default()
                }),
                true
            )]
        );
        assert!(w.sugar.is_none());
        let res = [result(pb::object::Kind::LogicalRouter(pb::LogicalRouter {
            name: "r1".into(),
            enabled: true,
            tunnel_key: 3,
            ..Default::default()
        }))];
        assert_eq!(render_write(&w, 2, &res, false), "");
        let v = json(&render_write(&w, 2, &res, true));
        assert_eq!(v["router"]["tunnel_key"], 3);
        let w = write(&["lr-del", "r1", "--if-exists"]);
        assert_eq!(w.ops, vec![delete(KIND, "r1", true)]);
    }

    #[test]
    fn lr_list_table() {
        let r = read(&["lr-list"]);
        assert_eq!(
            r.calls,
            vec![Call::ListObjects(pb::ListObjectsRequest {
                kind: KIND.into(),
                names: vec![]
            })]
        );
        let rec = |name: &str, enabled: bool, ports: &[&str]| pb::Record {
            kind: KIND.into(),
            name: name.into(),
            columns: vec![pb::Column {
                name: "ports".into(),
                r#type: pb::ColumnType::Set as i32,
                values: ports.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }],
            object: Some(crate::cmd::object(pb::object::Kind::LogicalRouter(
                pb::LogicalRouter {
                    name: name.into(),
                    enabled,
                    ..Default::default()
                },
            ))),
        };
        let reply = [Reply::Objects(pb::ListObjectsReply {
            kind: KIND.into(),
            columns: vec!["name".into(), "ports".into()],
            records: vec![rec("r1", true, &["lrp1", "lrp2"]), rec("r2", false, &[])],
            revision: 8,
        })];
        assert_eq!(
            render_read(&r, &reply, &out(false)),
            "NAME  STATE     PORTS\nr1    enabled   lrp1,lrp2\nr2    disabled  -\n"
        );
        let v = json(&render_read(&r, &reply, &out(true)));
        assert_eq!(v["routers"][1]["name"], "r2");
        assert_eq!(v["revision"], 8);
    }
}
