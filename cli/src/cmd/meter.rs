//! Meters (OVN's `Meter`, one drop band), named by ACLs' `--meter` for the rate of their log
//! packets: `meter-add`, `meter-del`, `meter-list`. The generic database commands
//! (`list/get/set Meter ...`) work on them too.

use clap::Subcommand;
use serde_json::json;
use weft_proto::v1 as pb;

use super::db::list_request;
use super::{delete, insert, CmdError, Noun, PlanCtx, Read, Reply, Step};
use crate::format::{json_text, Out};

pub const KIND: &str = "Meter";

#[derive(Debug, Clone, Subcommand)]
pub enum MeterCmd {
    /// Add a meter: NAME ACTION RATE UNIT [BURST] (ACTION drop, UNIT kbps or pktps).
    MeterAdd {
        /// Meter name.
        name: String,
        /// Band action: drop.
        action: String,
        /// Rate in UNIT (1 or more).
        rate: u32,
        /// kbps or pktps.
        unit: String,
        /// Burst size in UNIT (kilobits or packets).
        burst: Option<u32>,
        /// Each ACL using the meter gets its own instance of the rate.
        #[arg(long)]
        fair: bool,
    },
    /// Delete a meter.
    MeterDel {
        /// Meter name.
        name: String,
        /// A missing meter is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// List meters.
    MeterList,
}

impl Noun for MeterCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        let write = super::revision_write;
        Ok(match self {
            MeterCmd::MeterAdd {
                name,
                action,
                rate,
                unit,
                burst,
                fair,
            } => write(vec![insert(
                pb::object::Kind::Meter(pb::Meter {
                    name: name.clone(),
                    action: action.clone(),
                    unit: unit.clone(),
                    rate: *rate,
                    burst: burst.unwrap_or(0),
                    fair: *fair,
                    ..Default::default()
                }),
                false,
            )]),
            MeterCmd::MeterDel { name, if_exists } => write(vec![delete(KIND, name, *if_exists)]),
            MeterCmd::MeterList => Step::Read(Read {
                calls: vec![list_request(KIND, &[])],
                render: Box::new(render_list),
            }),
        })
    }
}

fn meters(replies: &[Reply]) -> Result<(Vec<pb::Meter>, i64), CmdError> {
    super::db::objects_of(
        replies,
        0,
        |k| match k {
            pb::object::Kind::Meter(m) => Some(m),
            _ => None,
        },
        "meter-list: a record is not a meter",
    )
}

/// ovn-nbctl's layout: `NAME: [(fair) ]bands:` then one line per band.
fn render_list(replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let (ms, revision) = meters(replies)?;
    if out.json() {
        let v: Vec<_> = ms
            .iter()
            .map(|m| {
                json!({"name": m.name, "action": m.action, "unit": m.unit, "rate": m.rate,
                       "burst": m.burst, "fair": m.fair})
            })
            .collect();
        return Ok(json_text(&json!({"meters": v, "revision": revision}), out)?);
    }
    let mut s = String::new();
    for m in &ms {
        s.push_str(&m.name);
        s.push(':');
        if m.fair {
            s.push_str(" (fair)");
        }
        s.push_str(" bands:\n");
        s.push_str(&format!("  {}: {} {}", m.action, m.rate, m.unit));
        if m.burst > 0 {
            let what = if m.unit == "kbps" { "kb" } else { "packet" };
            s.push_str(&format!(", {} {what} burst", m.burst));
        }
        s.push('\n');
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    #[test]
    fn commands_become_ops() {
        let w = write(&["meter-add", "m1", "drop", "10", "pktps", "5", "--fair"]);
        let Some(pb::op::Op::Insert(i)) = &w.ops[0].op else {
            panic!("{:?}", w.ops)
        };
        let Some(pb::object::Kind::Meter(m)) = i.object.as_ref().and_then(|o| o.kind.as_ref())
        else {
            panic!("{i:?}")
        };
        assert_eq!(
            (m.name.as_str(), m.rate, m.unit.as_str(), m.burst, m.fair),
            ("m1", 10, "pktps", 5, true)
        );
        let w = write(&["meter-del", "m1"]);
        assert!(matches!(&w.ops[0].op, Some(pb::op::Op::Delete(_))));
        assert_eq!(read(&["meter-list"]).calls.len(), 1);
    }
}
