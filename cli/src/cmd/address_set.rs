//! Address sets (OVN's `Address_Set`, for ACL matches `ip4.src == $NAME`): `as-add`,
//! `as-del`, `as-list`, `as-add-addresses`, `as-remove-addresses`. The generic database
//! commands (`list/get/set/add/remove Address_Set ...`) work on them too.

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

pub const KIND: &str = "Address_Set";

#[derive(Debug, Clone, Subcommand)]
pub enum AddressSetCmd {
    /// Create an address set with ADDRESSes (IPv4/IPv6 addresses or prefixes).
    AsAdd {
        /// Set name.
        name: String,
        /// Addresses or prefixes, e.g. 10.0.0.5 10.0.1.0/24 fd00::1.
        addresses: Vec<String>,
        /// A set of that name already existing is not an error (it is left unchanged).
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete an address set.
    AsDel {
        /// Set name.
        name: String,
        /// A missing set is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// List address sets (or one).
    AsList {
        /// Only this set.
        name: Option<String>,
    },
    /// Add addresses to a set.
    AsAddAddresses {
        /// Set name.
        name: String,
        /// Addresses or prefixes.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Remove addresses from a set.
    AsRemoveAddresses {
        /// Set name.
        name: String,
        /// Addresses or prefixes.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
}

impl Noun for AddressSetCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        let write = super::revision_write;
        Ok(match self {
            AddressSetCmd::AsAdd {
                name,
                addresses,
                may_exist,
            } => Step::Write(Box::new(Write {
                ops: vec![insert(
                    pb::object::Kind::AddressSet(pb::AddressSet {
                        name: name.clone(),
                        addresses: addresses.clone(),
                        ..Default::default()
                    }),
                    *may_exist,
                )],
                sugar: None,
                render: Box::new(render_added),
            })),
            AddressSetCmd::AsDel { name, if_exists } => write(vec![delete(KIND, name, *if_exists)]),
            AddressSetCmd::AsAddAddresses { name, addresses } => write(vec![update(
                KIND,
                name,
                vec![column_op(
                    pb::column_op::Action::Add,
                    "addresses",
                    None,
                    addresses.clone(),
                )],
                false,
            )]),
            AddressSetCmd::AsRemoveAddresses { name, addresses } => write(vec![update(
                KIND,
                name,
                vec![column_op(
                    pb::column_op::Action::Remove,
                    "addresses",
                    None,
                    addresses.clone(),
                )],
                false,
            )]),
            AddressSetCmd::AsList { name } => {
                let names: Vec<String> = name.iter().cloned().collect();
                Step::Read(Read {
                    calls: vec![list_request(KIND, &names)],
                    render: Box::new(render_list),
                })
            }
        })
    }
}

fn sets(replies: &[Reply]) -> Result<(Vec<pb::AddressSet>, i64), CmdError> {
    super::db::objects_of(
        replies,
        0,
        |k| match k {
            pb::object::Kind::AddressSet(a) => Some(a),
            _ => None,
        },
        "as-list: a record is not an address set",
    )
}

/// as-add: nothing, or the set as JSON.
fn render_added(o: &Outcome<'_>, out: &Out) -> Result<String, CmdError> {
    if quiet_text(out) {
        return Ok(String::new());
    }
    let set = o
        .results
        .first()
        .and_then(super::result_kind)
        .and_then(|k| match k {
            pb::object::Kind::AddressSet(a) => {
                Some(json!({"name": a.name, "addresses": a.addresses}))
            }
            _ => None,
        });
    Ok(json_text(
        &json!({"revision": o.revision, "address_set": set}),
        out,
    )?)
}

fn render_list(replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let (sets, revision) = sets(replies)?;
    if out.json() {
        let v: Vec<_> = sets
            .iter()
            .map(|a| json!({"name": a.name, "addresses": a.addresses}))
            .collect();
        return Ok(json_text(
            &json!({"address_sets": v, "revision": revision}),
            out,
        )?);
    }
    let mut t = Table::new(&["NAME", "ADDRESSES"]);
    for a in &sets {
        t.rows
            .push(vec![Cell::text(&a.name), Cell::text(a.addresses.join(","))]);
    }
    Ok(render_table(&t, out, Format::Table)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    #[test]
    fn commands_become_ops() {
        let w = write(&["as-add", "web", "10.0.0.5", "10.0.1.0/24"]);
        assert_eq!(w.ops.len(), 1);
        let w = write(&["as-add-addresses", "web", "10.0.0.9"]);
        let Some(pb::op::Op::Update(u)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(
            (u.kind.as_str(), u.columns[0].column.as_str()),
            (KIND, "addresses")
        );
        assert_eq!(u.columns[0].action, pb::column_op::Action::Add as i32);
        let w = write(&["as-remove-addresses", "web", "10.0.0.9"]);
        let Some(pb::op::Op::Update(u)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(u.columns[0].action, pb::column_op::Action::Remove as i32);
        let r = read(&["as-list"]);
        assert_eq!(r.calls.len(), 1);
    }
}
