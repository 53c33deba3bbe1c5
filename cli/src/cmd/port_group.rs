//! Port groups (OVN's `Port_Group`): `pg-add PG [PORT...]`, `pg-set-ports PG PORT...`,
//! `pg-del PG`, and `pg-list` (a Weft convenience). A group implies the address sets
//! `PG_ip4` and `PG_ip6` of its ports' addresses; the generic database commands
//! (`list/get/set/add/remove Port_Group ...`) work on groups too.

use clap::Subcommand;
use serde_json::json;
use weft_proto::v1 as pb;

use super::db::list_request;
use super::{
    column_op, delete, insert, quiet_text, update, CmdError, Noun, Outcome, PlanCtx, Read, Reply,
    Step, Write,
};
use crate::args::Format;
use crate::format::{json_text, render_table, Cell, Out, Table};

pub const KIND: &str = "Port_Group";

#[derive(Debug, Clone, Subcommand)]
pub enum PortGroupCmd {
    /// Create a port group with PORTs.
    PgAdd {
        /// Group name (no '-' or '.': it names the address sets NAME_ip4 / NAME_ip6).
        name: String,
        /// Logical switch ports.
        ports: Vec<String>,
        /// A group of that name existing is not an error (it is left unchanged).
        #[arg(long)]
        may_exist: bool,
    },
    /// Replace the ports of a group.
    PgSetPorts {
        name: String,
        #[arg(required = true)]
        ports: Vec<String>,
    },
    /// Delete a port group (and the ACLs on it).
    PgDel {
        name: String,
        /// A missing group is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// List port groups (or one).
    PgList { name: Option<String> },
}

impl Noun for PortGroupCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        let write = super::revision_write;
        Ok(match self {
            PortGroupCmd::PgAdd {
                name,
                ports,
                may_exist,
            } => Step::Write(Box::new(Write {
                ops: vec![insert(
                    pb::object::Kind::PortGroup(pb::PortGroup {
                        name: name.clone(),
                        ports: ports.clone(),
                        ..Default::default()
                    }),
                    *may_exist,
                )],
                sugar: None,
                render: Box::new(render_added),
            })),
            PortGroupCmd::PgSetPorts { name, ports } => write(vec![update(
                KIND,
                name,
                vec![column_op(
                    pb::column_op::Action::Set,
                    "ports",
                    None,
                    ports.clone(),
                )],
                false,
            )]),
            PortGroupCmd::PgDel { name, if_exists } => write(vec![delete(KIND, name, *if_exists)]),
            PortGroupCmd::PgList { name } => {
                let names: Vec<String> = name.iter().cloned().collect();
                Step::Read(Read {
                    calls: vec![list_request(KIND, &names)],
                    render: Box::new(render_list),
                })
            }
        })
    }
}

fn groups(replies: &[Reply]) -> Result<(Vec<pb::PortGroup>, i64), CmdError> {
    super::db::objects_of(
        replies,
        0,
        |k| match k {
            pb::object::Kind::PortGroup(g) => Some(g),
            _ => None,
        },
        "pg-list: a record is not a port group",
    )
}

fn render_added(o: &Outcome<'_>, out: &Out) -> Result<String, CmdError> {
    if quiet_text(out) {
        return Ok(String::new());
    }
    let g = o
        .results
        .first()
        .and_then(super::result_kind)
        .and_then(|k| match k {
            pb::object::Kind::PortGroup(g) => Some(json!({"name": g.name, "ports": g.ports})),
            _ => None,
        });
    Ok(json_text(
        &json!({"revision": o.revision, "port_group": g}),
        out,
    )?)
}

fn render_list(replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let (gs, revision) = groups(replies)?;
    if out.json() {
        let v: Vec<_> = gs
            .iter()
            .map(|g| json!({"name": g.name, "ports": g.ports}))
            .collect();
        return Ok(json_text(
            &json!({"port_groups": v, "revision": revision}),
            out,
        )?);
    }
    let mut t = Table::new(&["NAME", "PORTS"]);
    for g in &gs {
        t.rows
            .push(vec![Cell::text(&g.name), Cell::text(g.ports.join(","))]);
    }
    Ok(render_table(&t, out, Format::Table)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    #[test]
    fn commands_become_ops() {
        let w = write(&["pg-add", "web", "p1", "p2"]);
        let Some(pb::op::Op::Insert(i)) = &w.ops[0].op else {
            panic!()
        };
        let Some(pb::object::Kind::PortGroup(g)) = i.object.as_ref().and_then(|o| o.kind.clone())
        else {
            panic!()
        };
        assert_eq!(g.ports, ["p1", "p2"]);
        let w = write(&["pg-set-ports", "web", "p3"]);
        let Some(pb::op::Op::Update(u)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(u.columns[0].action, pb::column_op::Action::Set as i32);
        let w = write(&["pg-del", "web"]);
        assert!(matches!(&w.ops[0].op, Some(pb::op::Op::Delete(_))));
        assert_eq!(read(&["pg-list"]).calls.len(), 1);
    }
}
