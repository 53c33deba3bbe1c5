//! NAT rules: `lr-nat-add`, `lr-nat-del`, `lr-nat-list`, as ovn-nbctl has them. Rules are
//! the router's `nat` column; add and del are column ops whose values carry the command's
//! options ([`weft_proto::model::nat`]), so the controller applies ovn-nbctl's rules
//! (`--may-exist`, `--if-exists`, duplicates, the external IP on a gateway port's network)
//! inside the transaction, and `--` chains work.

use clap::Subcommand;
use serde::Serialize;
use weft_proto::model::nat::{NatAdd, NatDel, NatRule, NatType};
use weft_proto::v1 as pb;

use super::db::{list_request, named_record};
use super::{
    column_op, render_revision, update, CmdError, Noun, PlanCtx, Read, Reply, Step, Write,
};
use crate::format::{json_text, Out};

pub const KIND: &str = super::router::KIND;
const COLUMN: &str = "nat";

#[derive(Debug, Clone, Subcommand)]
pub enum NatCmd {
    /// Add a NAT rule: snat (LOGICAL_IP may be a prefix), dnat or dnat_and_snat; a
    /// dnat_and_snat with LOGICAL_PORT and EXTERNAL_MAC is distributed (handled on the
    /// chassis of the port).
    LrNatAdd {
        /// Router name.
        router: String,
        /// snat, dnat or dnat_and_snat.
        #[arg(value_name = "TYPE")]
        nat_type: String,
        /// External IPv4 address (on a network of the router's gateway port).
        external_ip: String,
        /// Logical IPv4 address (snat: or prefix).
        logical_ip: String,
        /// dnat_and_snat: the logical switch port of LOGICAL_IP.
        logical_port: Option<String>,
        /// dnat_and_snat: the MAC the external IP answers with.
        external_mac: Option<String>,
        /// The same rule existing is not an error (its port and MAC are updated).
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete NAT rules: every rule of ROUTER, every rule of TYPE, or the one of TYPE whose
    /// logical IP (snat) or external IP (dnat, dnat_and_snat) is IP.
    LrNatDel {
        /// Router name.
        router: String,
        /// snat, dnat or dnat_and_snat.
        #[arg(value_name = "TYPE")]
        nat_type: Option<String>,
        /// The rule's IP.
        ip: Option<String>,
        /// No matching rule is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// List a router's NAT rules.
    LrNatList {
        /// Router name.
        router: String,
    },
}

use super::usage_error as usage;

fn column_write(router: &str, action: pb::column_op::Action, value: String) -> Step {
    Step::Write(Box::new(Write {
        ops: vec![update(
            KIND,
            router,
            vec![column_op(action, COLUMN, None, vec![value])],
            false,
        )],
        sugar: None,
        render: Box::new(render_revision),
    }))
}

impl Noun for NatCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        Ok(match self {
            NatCmd::LrNatAdd {
                router,
                nat_type,
                external_ip,
                logical_ip,
                logical_port,
                external_mac,
                may_exist,
            } => {
                let c = "lr-nat-add";
                let rule = NatRule::new(
                    "",
                    nat_type,
                    external_ip,
                    logical_ip,
                    logical_port.as_deref(),
                    external_mac.as_deref(),
                )
                .map_err(|e| usage(c, e))?;
                let add = NatAdd {
                    rule,
                    may_exist: *may_exist,
                };
                column_write(router, pb::column_op::Action::Add, add.to_text())
            }
            NatCmd::LrNatDel {
                router,
                nat_type,
                ip,
                if_exists,
            } => {
                let c = "lr-nat-del";
                let kind = nat_type
                    .as_deref()
                    .map(|t| NatType::parse("TYPE", t))
                    .transpose()
                    .map_err(|e| usage(c, e))?;
                if let (Some(k), Some(ip)) = (kind, ip) {
                    weft_proto::model::nat::parse_logical_ip("IP", k, ip)
                        .map_err(|e| usage(c, e))?;
                }
                let del = NatDel {
                    kind,
                    ip: ip.clone(),
                    if_exists: *if_exists,
                };
                column_write(router, pb::column_op::Action::Remove, del.to_text())
            }
            NatCmd::LrNatList { router } => {
                let router = router.clone();
                Step::Read(Read {
                    calls: vec![list_request(KIND, std::slice::from_ref(&router))],
                    render: Box::new(move |replies, out| render_list(&router, replies, out)),
                })
            }
        })
    }
}

/// One rule as `lr-nat-list --format json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatJson {
    #[serde(rename = "type")]
    pub kind: String,
    pub external_ip: String,
    pub logical_ip: String,
    pub external_mac: String,
    pub logical_port: String,
}

#[derive(Debug, Serialize)]
struct ListNatReply {
    router: String,
    nat: Vec<NatJson>,
    revision: i64,
}

/// A router's rules in ovn-nbctl's order: by type, then external IP, then logical IP.
pub fn sorted_nat(r: &pb::LogicalRouter) -> Vec<NatJson> {
    let mut rules: Vec<NatRule> = r
        .nat
        .iter()
        .filter_map(|m| NatRule::from_message("nat", m).ok())
        .collect();
    rules.sort_by(|a, b| {
        a.kind
            .as_str()
            .cmp(b.kind.as_str())
            .then(a.external_ip.cmp(&b.external_ip))
            .then(a.logical_ip.cmp(&b.logical_ip))
    });
    rules
        .into_iter()
        .map(|x| NatJson {
            kind: x.kind.to_string(),
            external_ip: x.external_ip.to_string(),
            logical_ip: x.logical_ip_text(),
            external_mac: x.external_mac.clone().unwrap_or_default(),
            logical_port: x.logical_port.clone().unwrap_or_default(),
        })
        .collect()
}

/// ovn-nbctl's `lr-nat-list` header.
pub const HEADER: &str =
    "TYPE             EXTERNAL_IP        LOGICAL_IP            EXTERNAL_MAC         LOGICAL_PORT";

/// One line of ovn-nbctl's `lr-nat-list`: `%-17s%-19s%-22s` then, for a distributed rule,
/// `%-21s%s` (MAC, port).
pub fn nat_line(r: &NatJson) -> String {
    let mut s = format!("{:<17}{:<19}{:<22}", r.kind, r.external_ip, r.logical_ip);
    if !r.external_mac.is_empty() {
        s.push_str(&format!("{:<21}{}", r.external_mac, r.logical_port));
    }
    s.trim_end().to_string()
}

fn render_list(router: &str, replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let (r, revision) = named_record(replies, 0, "router", router, |k| match k {
        pb::object::Kind::LogicalRouter(r) => Some((r.name.as_str(), r)),
        _ => None,
    })?;
    let nat = sorted_nat(r);
    if out.json() {
        return Ok(json_text(
            &ListNatReply {
                router: router.to_string(),
                nat,
                revision,
            },
            out,
        )?);
    }
    if nat.is_empty() {
        return Ok(String::new());
    }
    let mut s = format!("{HEADER}\n");
    for r in &nat {
        s.push_str(&nat_line(r));
        s.push('\n');
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    fn col(w: &Write) -> (i32, Vec<String>) {
        first_column(w, KIND, "lr1")
    }

    #[test]
    fn add_and_del_are_column_ops() {
        let w = write(&["lr-nat-add", "lr1", "snat", "172.16.0.10", "10.1.2.0/16"]);
        assert_eq!(
            col(&w),
            (
                pb::column_op::Action::Add as i32,
                vec!["snat 172.16.0.10 10.1.0.0/16".to_string()]
            )
        );
        let w = write(&[
            "--may-exist",
            "lr-nat-add",
            "lr1",
            "dnat_and_snat",
            "172.16.0.20",
            "10.1.0.5",
            "p1",
            "0a:00:00:00:00:01",
        ]);
        assert_eq!(
            col(&w).1,
            ["--may-exist dnat_and_snat 172.16.0.20 10.1.0.5 p1 0a:00:00:00:00:01"]
        );
        let w = write(&["lr-nat-del", "--if-exists", "lr1", "dnat", "172.16.0.20"]);
        assert_eq!(
            col(&w),
            (
                pb::column_op::Action::Remove as i32,
                vec!["--if-exists dnat 172.16.0.20".to_string()]
            )
        );
        for (args, field) in [
            (
                &["lr-nat-add", "lr1", "masq", "1.1.1.1", "10.0.0.0/8"][..],
                "type",
            ),
            (
                &["lr-nat-add", "lr1", "snat", "1.1.1", "10.0.0.0/8"][..],
                "external_ip",
            ),
            (
                &["lr-nat-add", "lr1", "dnat", "1.1.1.1", "10.0.0.0/8"][..],
                "logical_ip",
            ),
            (
                &[
                    "lr-nat-add",
                    "lr1",
                    "dnat_and_snat",
                    "1.1.1.1",
                    "10.0.0.5",
                    "p1",
                    "ff:ff:ff:ff:ff:ff",
                ][..],
                "external_mac",
            ),
            (&["lr-nat-del", "lr1", "bogus"][..], "TYPE"),
        ] {
            let e = plan_err(args).to_string();
            assert!(e.contains(field), "{args:?}: {e}");
        }
    }

    #[test]
    fn list_prints_like_ovn_nbctl() {
        let r = pb::LogicalRouter {
            name: "lr1".into(),
            nat: vec![
                NatRule::parse_text("n", "snat 172.16.0.10 10.1.0.0/16")
                    .expect("rule")
                    .to_message(),
                NatRule::parse_text(
                    "n",
                    "dnat_and_snat 172.16.0.20 10.1.0.5 p1 0a:00:00:00:00:01",
                )
                .expect("rule")
                .to_message(),
            ],
            ..Default::default()
        };
        let reply = [Reply::Objects(pb::ListObjectsReply {
            kind: KIND.into(),
            columns: vec![],
            records: vec![pb::Record {
                kind: KIND.into(),
                name: "lr1".into(),
                columns: vec![],
                object: Some(crate::cmd::object(pb::object::Kind::LogicalRouter(r))),
            }],
            revision: 4,
        })];
        let rd = read(&["lr-nat-list", "lr1"]);
        assert_eq!(
            render_read(&rd, &reply, &out(false)),
            format!(
                "{HEADER}\n\
                 dnat_and_snat    172.16.0.20        10.1.0.5              0a:00:00:00:00:01    p1\n\
                 snat             172.16.0.10        10.1.0.0/16\n"
            )
        );
        let v = json(&render_read(&rd, &reply, &out(true)));
        assert_eq!(v["nat"][1]["type"], "snat");
    }
}
