//! Chassis (hosts running weft-agent): `chassis-list`, `chassis-del`.

use clap::Subcommand;
use weft_proto::v1 as pb;

use super::{
    delete, one_reply, render_revision, Call, CmdError, Noun, PlanCtx, Read, Reply, Step, Sugar,
    Write,
};
use crate::args::Format;
use crate::format::{json_text, one_line, render_table, Cell, Out, Table};
use crate::json;

pub const KIND: &str = "Chassis";

#[derive(Debug, Clone, Subcommand)]
pub enum ChassisCmd {
    /// List every registered chassis with liveness and applied revision.
    ChassisList,
    /// Delete a chassis that is no longer alive, with the port bindings naming it.
    ChassisDel {
        /// Chassis name.
        chassis: String,
        /// A missing chassis is not an error.
        #[arg(long)]
        if_exists: bool,
    },
}

impl Noun for ChassisCmd {
    fn plan(&self, ctx: &PlanCtx) -> Result<Step, CmdError> {
        Ok(match self {
            ChassisCmd::ChassisList => Step::Read(Read {
                calls: vec![Call::ListChassis],
                render: Box::new(render_list),
            }),
            ChassisCmd::ChassisDel { chassis, if_exists } => Step::Write(Box::new(Write {
                ops: vec![delete(KIND, chassis, *if_exists)],
                sugar: Some(Sugar::DeleteChassis(pb::DeleteRequest {
                    name: chassis.clone(),
                    options: Some(ctx.write_options(false, *if_exists)),
                })),
                render: Box::new(render_revision),
            })),
        })
    }
}

fn render_list(replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let Reply::Chassis(r) = one_reply(replies)? else {
        return Err(CmdError::MalformedReply("chassis-list: not a chassis list"));
    };
    if out.json() {
        return Ok(json_text(&json::ListChassisReply::from(r), out)?);
    }
    Ok(render_table(
        &chassis_table(&r.chassis),
        out,
        Format::Table,
    )?)
}

/// NAME ENCAP_IP ENCAP DATAPATH STATE APPLIED VERSION LAST_ERROR.
pub fn chassis_table(chassis: &[pb::Chassis]) -> Table {
    let mut t = Table::new(&[
        "NAME",
        "ENCAP_IP",
        "ENCAP",
        "DATAPATH",
        "STATE",
        "APPLIED",
        "VERSION",
        "LAST_ERROR",
    ]);
    for c in chassis {
        t.rows.push(vec![
            Cell::text(&c.name),
            Cell::text(&c.encap_ip),
            Cell::text(c.encap_types.join(",")),
            Cell::text(&c.datapath_type),
            Cell::text(if c.alive { "alive" } else { "dead" }),
            Cell::text(c.applied_revision.to_string()),
            Cell::text(&c.version),
            Cell::text(one_line(&c.last_error)),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    pub fn chassis(name: &str, ip: &str, alive: bool, applied: i64) -> pb::Chassis {
        pb::Chassis {
            name: name.into(),
            encap_ip: ip.into(),
            encap_types: vec!["geneve".into()],
            datapath_type: "netdev".into(),
            version: "0.1.0".into(),
            applied_revision: applied,
            alive,
            ..Default::default()
        }
    }

    #[test]
    fn chassis_list_table_and_json() {
        let mut h2 = chassis("host2", "10.1.0.2", false, 7);
        h2.encap_types = vec!["geneve".into(), "vxlan".into()];
        h2.version = String::new();
        h2.last_error = "bundle failed:\n bad match".into();
        let r = read(&["chassis-list"]);
        let reply = [Reply::Chassis(pb::ListChassisReply {
            chassis: vec![chassis("host1", "10.1.0.1", true, 123), h2],
            revision: 1,
        })];
        assert_eq!(
            render_read(&r, &reply, &out(false)),
            "\
NAME   ENCAP_IP  ENCAP         DATAPATH  STATE  APPLIED  VERSION  LAST_ERROR
host1  10.1.0.1  geneve        netdev    alive  123      0.1.0    -
host2  10.1.0.2  geneve,vxlan  netdev    dead   7        -        bundle failed: bad match
"
        );
        let v = json(&render_read(&r, &reply, &out(true)));
        assert_eq!(v["chassis"][0]["alive"], true);
        assert_eq!(
            v["chassis"][0]["encap_types"],
            serde_json::json!(["geneve"])
        );
        assert_eq!(v["chassis"][0]["external_ids"], serde_json::json!({}));
    }

    #[test]
    fn chassis_del() {
        let w = write(&["--if-exists", "chassis-del", "hv1"]);
        assert_eq!(w.ops, vec![delete(KIND, "hv1", true)]);
        assert!(matches!(w.sugar, Some(Sugar::DeleteChassis(ref r)) if r.name == "hv1"));
    }
}
