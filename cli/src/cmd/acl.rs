//! ACLs, with ovn-nbctl's commands and semantics: `acl-add`, `acl-del`, `acl-list`.
//!
//! ```text
//! acl-add [--type=port-group] ENTITY {from-lport|to-lport} PRIORITY MATCH VERDICT
//!         [--log] [--name=NAME] [--severity=SEV] [--meter=METER] [--label=N] [--may-exist]
//! acl-del [--type=port-group] ENTITY [DIRECTION [PRIORITY MATCH]]
//! acl-list [--type=port-group] ENTITY [--stats]
//! ```
//! ENTITY is a switch, or a port group with `--type=port-group`. Each ACL's key is derived
//! from (entity, direction, priority, match) by the shared `weft_proto::model::acl::acl_key`,
//! so `acl-add` is one insert (a duplicate is AlreadyExists unless `--may-exist`) and
//! `acl-del ENTITY [DIRECTION]` one delete of the key range `ls:ENTITY:[DIRECTION:]`.
//! `--stats` adds the packets counted by every chassis' flows of each ACL (from the agents'
//! flow statistics, through the controller's `Flows` fan-out, at most 10,000 flows per
//! chassis).

use std::collections::HashMap;

use clap::{Subcommand, ValueEnum};
use serde_json::json;
use weft_proto::model::acl::{acl_cookie, acl_key, check_priority, parse_direction, Entity};
use weft_proto::v1 as pb;

use super::db::{list_request, records_of};
use super::{
    delete, insert, quiet_text, render_revision, Call, CmdError, Noun, Outcome, PlanCtx, Read,
    Reply, Step, Write,
};
use crate::args::Format;
use crate::format::{json_text, render_table, Cell, Out, Table};

pub const KIND: &str = "ACL";

/// What ENTITY names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum EntityType {
    /// A logical switch (the default).
    #[default]
    Switch,
    /// A port group.
    PortGroup,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AclCmd {
    /// Add an ACL to a switch (or, with --type=port-group, a port group).
    AclAdd {
        /// What ENTITY names.
        #[arg(long = "type", value_enum, default_value_t)]
        entity_type: EntityType,
        /// Switch or port group.
        entity: String,
        /// from-lport or to-lport.
        direction: String,
        /// 0..32767; higher wins.
        #[arg(allow_negative_numbers = true)]
        priority: i64,
        /// OVN match expression, e.g. 'outport == @web && tcp.dst == 80'.
        #[arg(value_name = "MATCH")]
        matches: String,
        /// allow, allow-related, allow-stateless, drop or reject.
        verdict: String,
        /// Log packets that hit the ACL.
        #[arg(long)]
        log: bool,
        /// Name shown in log lines.
        #[arg(long)]
        name: Option<String>,
        /// Log severity: alert, warning, notice, info, debug.
        #[arg(long)]
        severity: Option<String>,
        /// Meter name for the log rate.
        #[arg(long)]
        meter: Option<String>,
        /// Label stored in ct_label of committed connections.
        #[arg(long)]
        label: Option<u32>,
        /// The same ACL (entity, direction, priority, match) existing is not an error.
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete the ACLs of ENTITY: all, those of one DIRECTION, or one (PRIORITY MATCH).
    AclDel {
        #[arg(long = "type", value_enum, default_value_t)]
        entity_type: EntityType,
        entity: String,
        direction: Option<String>,
        #[arg(allow_negative_numbers = true)]
        priority: Option<i64>,
        #[arg(value_name = "MATCH")]
        matches: Option<String>,
    },
    /// List the ACLs of ENTITY (with --stats, their hit counts summed over the chassis).
    AclList {
        #[arg(long = "type", value_enum, default_value_t)]
        entity_type: EntityType,
        entity: String,
        /// Add each ACL's packet count from the agents' flow statistics.
        #[arg(long)]
        stats: bool,
    },
}

fn entity_of(t: EntityType, name: &str) -> Entity {
    match t {
        EntityType::Switch => Entity::Switch(name.to_string()),
        EntityType::PortGroup => Entity::PortGroup(name.to_string()),
    }
}

fn usage(command: &'static str, e: impl std::fmt::Display) -> CmdError {
    CmdError::Usage {
        command,
        reason: e.to_string(),
    }
}

impl Noun for AclCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        Ok(match self {
            AclCmd::AclAdd {
                entity_type,
                entity,
                direction,
                priority,
                matches,
                verdict,
                log,
                name,
                severity,
                meter,
                label,
                may_exist,
            } => {
                let prio = check_priority(*priority).map_err(|e| usage("acl-add", e))?;
                let ent = entity_of(*entity_type, entity);
                // An unknown direction is left to the controller (it names field and value);
                // the key is derived there then.
                let key = parse_direction(direction)
                    .map(|d| acl_key(&ent, d, prio, matches))
                    .unwrap_or_default();
                let (switch, port_group) = match &ent {
                    Entity::Switch(s) => (s.clone(), String::new()),
                    Entity::PortGroup(g) => (String::new(), g.clone()),
                };
                Step::Write(Box::new(Write {
                    ops: vec![insert(
                        pb::object::Kind::Acl(pb::Acl {
                            key,
                            switch,
                            port_group,
                            direction: direction.clone(),
                            priority: prio,
                            r#match: matches.clone(),
                            action: verdict.clone(),
                            log: *log,
                            name: name.clone().unwrap_or_default(),
                            severity: severity.clone().unwrap_or_default(),
                            meter: meter.clone().unwrap_or_default(),
                            label: label.unwrap_or(0),
                            ..Default::default()
                        }),
                        *may_exist,
                    )],
                    sugar: None,
                    render: Box::new(render_added),
                }))
            }
            AclCmd::AclDel {
                entity_type,
                entity,
                direction,
                priority,
                matches,
            } => {
                let ent = entity_of(*entity_type, entity);
                let name = match (direction, priority, matches) {
                    (None, None, None) => format!("{}:", ent.prefix()),
                    (Some(d), None, None) => {
                        let d = parse_direction(d).map_err(|e| usage("acl-del", e))?;
                        format!("{}:{}:", ent.prefix(), d.as_str())
                    }
                    (Some(d), Some(p), Some(m)) => {
                        let d = parse_direction(d).map_err(|e| usage("acl-del", e))?;
                        let p = check_priority(*p).map_err(|e| usage("acl-del", e))?;
                        acl_key(&ent, d, p, m)
                    }
                    _ => return Err(usage(
                        "acl-del",
                        "a PRIORITY needs a MATCH (acl-del ENTITY [DIRECTION [PRIORITY MATCH]])",
                    )),
                };
                Step::Write(Box::new(Write {
                    ops: vec![delete(KIND, &name, false)],
                    sugar: None,
                    render: Box::new(render_revision),
                }))
            }
            AclCmd::AclList {
                entity_type,
                entity,
                stats,
            } => {
                let mut calls = vec![list_request(KIND, &[])];
                if *stats {
                    calls.push(Call::Flows(pb::FlowsRequest::default()));
                }
                let prefix = format!("{}:", entity_of(*entity_type, entity).prefix());
                let stats = *stats;
                Step::Read(Read {
                    calls,
                    render: Box::new(move |replies, out| render_list(replies, out, &prefix, stats)),
                })
            }
        })
    }
}

fn acls(replies: &[Reply], prefix: &str) -> Result<(Vec<pb::Acl>, i64), CmdError> {
    let reply = records_of(replies, 0)?;
    let mut out = Vec::new();
    for rec in &reply.records {
        match rec.object.as_ref().and_then(|o| o.kind.as_ref()) {
            Some(pb::object::Kind::Acl(a)) => {
                if a.key.starts_with(prefix) {
                    out.push(a.clone());
                }
            }
            _ => return Err(CmdError::MalformedReply("acl-list: a record is not an ACL")),
        }
    }
    // ovn-nbctl's order: direction (from-lport first), priority descending, match.
    out.sort_by(|a, b| {
        (
            a.direction.as_str(),
            std::cmp::Reverse(a.priority),
            a.r#match.as_str(),
        )
            .cmp(&(
                b.direction.as_str(),
                std::cmp::Reverse(b.priority),
                b.r#match.as_str(),
            ))
    });
    Ok((out, reply.revision))
}

/// Packets per cookie summed over every chassis that answered.
fn hits(replies: &[Reply]) -> HashMap<u64, u64> {
    let mut m = HashMap::new();
    if let Some(Reply::Flows(f)) = replies.get(1) {
        for c in &f.chassis {
            for fl in c.reply.iter().flat_map(|r| r.flows.iter()) {
                *m.entry(fl.cookie).or_insert(0) += fl.packets;
            }
        }
    }
    m
}

fn acl_json(a: &pb::Acl, hits: Option<u64>) -> serde_json::Value {
    let mut v = json!({
        "key": a.key, "switch": a.switch, "port_group": a.port_group,
        "direction": a.direction, "priority": a.priority, "match": a.r#match,
        "action": a.action, "log": a.log, "name": a.name, "severity": a.severity,
        "meter": a.meter, "label": a.label,
    });
    if let Some(h) = hits {
        v["hits"] = json!(h);
    }
    v
}

/// acl-add: nothing, or the ACL as JSON.
fn render_added(o: &Outcome<'_>, out: &Out) -> Result<String, CmdError> {
    if quiet_text(out) {
        return Ok(String::new());
    }
    let acl = o
        .results
        .first()
        .and_then(super::result_kind)
        .and_then(|k| match k {
            pb::object::Kind::Acl(a) => Some(acl_json(a, None)),
            _ => None,
        });
    Ok(json_text(
        &json!({"revision": o.revision, "acl": acl}),
        out,
    )?)
}

fn render_list(
    replies: &[Reply],
    out: &Out,
    prefix: &str,
    stats: bool,
) -> Result<String, CmdError> {
    let (list, revision) = acls(replies, prefix)?;
    let counts = stats.then(|| hits(replies));
    let hit = |a: &pb::Acl| {
        counts
            .as_ref()
            .map(|m| *m.get(&acl_cookie(&a.key)).unwrap_or(&0))
    };
    if out.json() {
        let v: Vec<_> = list.iter().map(|a| acl_json(a, hit(a))).collect();
        return Ok(json_text(&json!({"acls": v, "revision": revision}), out)?);
    }
    if matches!(out.format, Some(Format::Table)) || stats {
        let mut cols = vec!["DIRECTION", "PRIORITY", "MATCH", "VERDICT", "LOG", "NAME"];
        if stats {
            cols.push("HITS");
        }
        let mut t = Table::new(&cols);
        for a in &list {
            let mut row = vec![
                Cell::text(&a.direction),
                Cell::text(a.priority.to_string()),
                Cell::text(&a.r#match),
                Cell::text(&a.action),
                Cell::text(if a.log { "log" } else { "" }),
                Cell::text(&a.name),
            ];
            if let Some(h) = hit(a) {
                row.push(Cell::text(h.to_string()));
            }
            t.rows.push(row);
        }
        return Ok(render_table(&t, out, Format::Table)?);
    }
    // ovn-nbctl's text: `to-lport  1000 (tcp.dst == 80) allow-related [log]`.
    let mut s = String::new();
    for a in &list {
        let mut extra = String::new();
        if a.log {
            extra.push_str(" log(");
            if !a.name.is_empty() {
                extra.push_str(&format!("name={},", a.name));
            }
            extra.push_str(&format!("severity={})", a.severity));
        }
        s.push_str(&format!(
            "{:>10} {:>5} ({}) {}{}\n",
            a.direction, a.priority, a.r#match, a.action, extra
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    #[test]
    fn commands_become_ops() {
        let w = write(&[
            "acl-add",
            "sw",
            "to-lport",
            "1000",
            "tcp.dst == 80",
            "allow-related",
            "--log",
            "--name=web80",
        ]);
        let Some(pb::op::Op::Insert(i)) = &w.ops[0].op else {
            panic!()
        };
        let Some(pb::object::Kind::Acl(a)) = i.object.as_ref().and_then(|o| o.kind.clone()) else {
            panic!()
        };
        assert!(a.key.starts_with("ls:sw:to-lport:1000:"), "{}", a.key);
        assert!(a.log && a.name == "web80" && a.switch == "sw");
        let w = write(&[
            "acl-add",
            "--type=port-group",
            "web",
            "from-lport",
            "0",
            "ip",
            "drop",
            "--may-exist",
        ]);
        let Some(pb::op::Op::Insert(i)) = &w.ops[0].op else {
            panic!()
        };
        assert!(i.may_exist);
        let del = |args: &[&str]| match &write(args).ops[0].op {
            Some(pb::op::Op::Delete(d)) => d.name.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(del(&["acl-del", "sw"]), "ls:sw:");
        assert_eq!(del(&["acl-del", "sw", "to-lport"]), "ls:sw:to-lport:");
        assert!(del(&["acl-del", "sw", "to-lport", "1000", "tcp.dst == 80"])
            .starts_with("ls:sw:to-lport:1000:"));
        assert_eq!(del(&["acl-del", "--type=port-group", "web"]), "pg:web:");
        let r = read(&["acl-list", "sw", "--stats"]);
        assert_eq!(r.calls.len(), 2);
    }
}
