//! Logical switches: `ls-add`, `ls-del`, `ls-list`.

use clap::Subcommand;
use weft_proto::v1 as pb;

use super::{
    delete, insert, one_reply, quiet_text, render_revision, result_kind, Call, CmdError, Noun,
    Outcome, PlanCtx, Read, Reply, Step, Sugar, Write,
};
use crate::args::{non_empty, Format};
use crate::format::{json_text, render_table, Cell, Out, Table};
use crate::json;

pub const KIND: &str = "Logical_Switch";

#[derive(Debug, Clone, Subcommand)]
pub enum SwitchCmd {
    /// Create a logical switch.
    LsAdd {
        /// Switch name.
        switch: String,
        /// IPv4 subnet in CIDR form, e.g. 10.0.0.0/24 (needed for `dynamic` addresses).
        #[arg(long, value_name = "CIDR", value_parser = non_empty("--subnet"))]
        subnet: Option<String>,
        /// Tunnel key (1..16777215); allocated when omitted.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16_777_215))]
        vni: Option<u32>,
        /// MTU the switch is meant for (68..65535).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(68..=65_535))]
        mtu: Option<u32>,
        /// A switch of that name already existing is not an error (it is left unchanged).
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete a logical switch and all of its ports.
    LsDel {
        /// Switch name.
        switch: String,
        /// A missing switch is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// List logical switches.
    LsList,
}

impl Noun for SwitchCmd {
    fn plan(&self, ctx: &PlanCtx) -> Result<Step, CmdError> {
        Ok(match self {
            SwitchCmd::LsAdd {
                switch,
                subnet,
                vni,
                mtu,
                may_exist,
            } => {
                let sw = pb::LogicalSwitch {
                    name: switch.clone(),
                    subnet: subnet.clone().unwrap_or_default(),
                    vni: vni.unwrap_or(0),
                    mtu: mtu.unwrap_or(0),
                    ..Default::default()
                };
                Step::Write(Box::new(Write {
                    ops: vec![insert(
                        pb::object::Kind::LogicalSwitch(sw.clone()),
                        *may_exist,
                    )],
                    sugar: Some(Sugar::CreateSwitch(pb::CreateSwitchRequest {
                        switch: Some(sw),
                        options: Some(ctx.write_options(*may_exist, false)),
                    })),
                    render: Box::new(render_switch_reply),
                }))
            }
            SwitchCmd::LsDel { switch, if_exists } => Step::Write(Box::new(Write {
                ops: vec![delete(KIND, switch, *if_exists)],
                sugar: Some(Sugar::DeleteSwitch(pb::DeleteRequest {
                    name: switch.clone(),
                    options: Some(ctx.write_options(false, *if_exists)),
                })),
                render: Box::new(render_revision),
            })),
            SwitchCmd::LsList => Step::Read(Read {
                calls: vec![Call::ListSwitches],
                render: Box::new(render_list),
            }),
        })
    }
}

/// ls-add: nothing, or `{"revision", "switch"}` (the SwitchReply shape).
fn render_switch_reply(o: &Outcome<'_>, out: &Out) -> Result<String, CmdError> {
    if quiet_text(out) {
        return Ok(String::new());
    }
    let switch = o
        .results
        .first()
        .and_then(result_kind)
        .and_then(|k| match k {
            pb::object::Kind::LogicalSwitch(s) => Some(json::Switch::from(s)),
            _ => None,
        });
    Ok(json_text(
        &json::SwitchReply {
            revision: o.revision,
            switch,
        },
        out,
    )?)
}

fn render_list(replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let Reply::Switches(r) = one_reply(replies)? else {
        return Err(CmdError::MalformedReply("ls-list: not a switch list"));
    };
    if out.json() {
        return Ok(json_text(&json::ListSwitchesReply::from(r), out)?);
    }
    Ok(render_table(
        &switches_table(&r.switches),
        out,
        Format::Table,
    )?)
}

fn num_or_empty(n: u32) -> String {
    if n == 0 {
        String::new()
    } else {
        n.to_string()
    }
}

/// NAME VNI SUBNET MTU.
pub fn switches_table(switches: &[pb::LogicalSwitch]) -> Table {
    let mut t = Table::new(&["NAME", "VNI", "SUBNET", "MTU"]);
    for s in switches {
        t.rows.push(vec![
            Cell::text(&s.name),
            Cell::text(s.vni.to_string()),
            Cell::text(&s.subnet),
            Cell::text(num_or_empty(s.mtu)),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::WaitArg;
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

    #[test]
    fn ls_add_minimal_and_full() {
        let w = write(&["ls-add", "sw1"]);
        assert_eq!(
            w.ops,
            vec![insert(
                pb::object::Kind::LogicalSwitch(sw("sw1", 0, "", 0)),
                false
            )]
        );
        let ctx = PlanCtx {
            wait: Some(WaitArg::Hv),
            timeout_ms: 5000,
            ..Default::default()
        };
        let Step::Write(w) = step_with(
            &[
                "--may-exist",
                "ls-add",
                "sw1",
                "--subnet",
                "10.0.0.0/24",
                "--vni",
                "1001",
                "--mtu",
                "1400",
            ],
            ctx,
        ) else {
            panic!("not a write")
        };
        let full = sw("sw1", 1001, "10.0.0.0/24", 1400);
        assert_eq!(
            w.ops,
            vec![insert(pb::object::Kind::LogicalSwitch(full.clone()), true)]
        );
        assert_eq!(
            w.sugar,
            Some(Sugar::CreateSwitch(pb::CreateSwitchRequest {
                switch: Some(full),
                options: Some(pb::WriteOptions {
                    may_exist: true,
                    if_exists: false,
                    wait: pb::WaitMode::WaitHv as i32,
                    timeout_ms: 5000,
                    ..Default::default()
                }),
            }))
        );
    }

    #[test]
    fn ls_add_reply_prints_nothing_or_the_switch() {
        let w = write(&["ls-add", "sw1"]);
        let res = [result(pb::object::Kind::LogicalSwitch(sw("sw1", 7, "", 0)))];
        assert_eq!(render_write(&w, 5, &res, false), "");
        let v = json(&render_write(&w, 5, &res, true));
        assert_eq!(v["revision"], 5);
        assert_eq!(v["switch"]["vni"], 7);
        assert_eq!(v["switch"]["external_ids"], serde_json::json!({}));
    }

    #[test]
    fn ls_del_carries_if_exists() {
        let w = write(&["--if-exists", "ls-del", "sw1"]);
        assert_eq!(w.ops, vec![delete(KIND, "sw1", true)]);
        let v = json(&render_write(&w, 9, &[pb::OpResult::default()], true));
        assert_eq!(v, serde_json::json!({"revision": 9}));
    }

    #[test]
    fn ls_list_table_json_and_columns() {
        let r = read(&["ls-list"]);
        assert_eq!(r.calls, vec![Call::ListSwitches]);
        let reply = [Reply::Switches(pb::ListSwitchesReply {
            switches: vec![
                sw("sw1", 1001, "10.0.0.0/24", 0),
                sw("backend-long-name", 2, "", 1400),
            ],
            revision: 3,
        })];
        assert_eq!(
            render_read(&r, &reply, &out(false)),
            "\
NAME               VNI   SUBNET       MTU
sw1                1001  10.0.0.0/24  -
backend-long-name  2     -            1400
"
        );
        let v = json(&render_read(&r, &reply, &out(true)));
        assert_eq!(v["switches"][1]["name"], "backend-long-name");
        assert_eq!(v["revision"], 3);
        let names = Out {
            bare: true,
            columns: Some(vec!["name".into()]),
            ..Default::default()
        };
        assert_eq!(render_read(&r, &reply, &names), "sw1\nbackend-long-name\n");
        let csv = Out {
            format: Some(Format::Csv),
            ..Default::default()
        };
        assert_eq!(
            render_read(&r, &reply, &csv),
            "NAME,VNI,SUBNET,MTU\nsw1,1001,10.0.0.0/24,\nbackend-long-name,2,,1400\n"
        );
        let empty = [Reply::Switches(pb::ListSwitchesReply::default())];
        assert_eq!(render_read(&r, &empty, &out(false)), "");
        assert_eq!(
            json(&render_read(&r, &empty, &out(true))),
            serde_json::json!({"switches": [], "revision": 0})
        );
    }

    #[test]
    fn bad_numbers_are_usage_errors() {
        for args in [
            &["ls-add", "sw1", "--vni", "abc"][..],
            &["ls-add", "sw1", "--vni", "0"],
            &["ls-add", "sw1", "--vni", "16777216"],
            &["ls-add", "sw1", "--mtu", "12"],
            &["ls-add", "sw1", "--subnet", ""],
            &["ls-add"],
        ] {
            let argv: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            match crate::chain::parse(&argv) {
                Err(crate::chain::ParseError::Clap(e)) => assert_eq!(e.exit_code(), 2),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }
}
