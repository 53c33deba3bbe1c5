//! `flows OBJECT [--chassis C]`: the flows installed for an object (a port, a switch), by its
//! cookie, gathered by the controller from every chassis' agent with packet and byte counters
//! (Antrea's `get ovsflows`). OBJECT is `port NAME`, `switch NAME`, a port or switch name, or
//! a cookie (`0x02...`).

use clap::Subcommand;
use serde_json::json;
use weft_proto::v1 as pb;

use super::{one_reply, Call, CmdError, Noun, PlanCtx, Read, Reply, Step};
use crate::format::json_text;

#[derive(Debug, Clone, Subcommand)]
pub enum FlowsCmd {
    /// List the OpenFlow flows installed for OBJECT on every chassis (or one), with
    /// counters: `flows port p1`, `flows switch sw`, `flows p1`, `flows 0x02...`.
    Flows {
        /// `port NAME`, `switch NAME`, `NAME` (a port or a switch) or a cookie.
        #[arg(num_args = 1..=2, required = true, value_name = "OBJECT")]
        object: Vec<String>,
        /// Only this chassis.
        #[arg(long, value_name = "CHASSIS")]
        chassis: Option<String>,
    },
}

/// The kind a word names ("port", "lsp", "Logical_Switch_Port", ...).
fn kind_word(w: &str) -> Option<&'static str> {
    match w.to_ascii_lowercase().as_str() {
        "port" | "lsp" | "logical_switch_port" => Some("Logical_Switch_Port"),
        "switch" | "ls" | "logical_switch" => Some("Logical_Switch"),
        _ => None,
    }
}

/// The request for OBJECT (pure).
pub fn request(
    object: &[String],
    chassis: Option<&str>,
    timeout_ms: u32,
) -> Result<pb::FlowsRequest, CmdError> {
    let mut req = pb::FlowsRequest {
        chassis: chassis.unwrap_or("").to_string(),
        timeout_ms,
        ..Default::default()
    };
    match object {
        [k, name] => {
            req.kind = kind_word(k)
                .ok_or_else(|| CmdError::Usage {
                    command: "flows",
                    reason: format!("invalid object kind {k:?}: expected port or switch"),
                })?
                .to_string();
            req.name = name.clone();
        }
        [one] => match one.strip_prefix("0x") {
            Some(hex) => {
                req.cookie = u64::from_str_radix(hex, 16).map_err(|_| CmdError::Usage {
                    command: "flows",
                    reason: format!("invalid cookie {one:?}"),
                })?
            }
            None => req.name = one.clone(),
        },
        _ => {
            return Err(CmdError::Usage {
                command: "flows",
                reason: "expected OBJECT: port NAME, switch NAME, NAME or a cookie".into(),
            })
        }
    }
    Ok(req)
}

/// The text form.
pub fn render_text(r: &pb::FlowsReply) -> String {
    let what = if r.name.is_empty() {
        format!("cookie {:#x}", r.cookie)
    } else {
        format!("{} {} (cookie {:#x})", r.kind, r.name, r.cookie)
    };
    let mut s = format!("flows of {what}\n");
    for c in &r.chassis {
        match &c.reply {
            None => s.push_str(&format!("{}: {}\n", c.chassis, c.error)),
            Some(rep) if rep.flows.is_empty() => s.push_str(&format!("{}: no flows\n", c.chassis)),
            Some(rep) => {
                s.push_str(&format!(
                    "{}: {} flows{}\n",
                    c.chassis,
                    rep.flows.len(),
                    if rep.truncated { " (truncated)" } else { "" }
                ));
                for f in &rep.flows {
                    s.push_str(&format!(
                        "  n_packets={} n_bytes={} {}\n",
                        f.packets, f.bytes, f.text
                    ));
                }
                for g in &rep.groups {
                    s.push_str(&format!("  {}\n", g.text));
                }
            }
        }
    }
    s
}

/// The JSON form.
pub fn to_json(r: &pb::FlowsReply) -> serde_json::Value {
    json!({
        "cookie": format!("{:#x}", r.cookie),
        "kind": r.kind,
        "name": r.name,
        "chassis": r.chassis.iter().map(|c| json!({
            "chassis": c.chassis,
            "error": c.error,
            "truncated": c.reply.as_ref().is_some_and(|x| x.truncated),
            "flows": c.reply.as_ref().map(|x| x.flows.iter().map(|f| json!({
                "table": f.table, "priority": f.priority, "cookie": format!("{:#x}", f.cookie),
                "owner": f.owner.as_ref().map(|o| json!({"kind": o.kind, "name": o.name})),
                "packets": f.packets, "bytes": f.bytes, "duration_sec": f.duration_sec,
                "flow": f.text,
            })).collect::<Vec<_>>()).unwrap_or_default(),
            "groups": c.reply.as_ref().map(|x| x.groups.iter().map(|g| json!({
                "id": g.id, "group": g.text,
            })).collect::<Vec<_>>()).unwrap_or_default(),
        })).collect::<Vec<_>>(),
    })
}

impl Noun for FlowsCmd {
    fn plan(&self, ctx: &PlanCtx) -> Result<Step, CmdError> {
        let FlowsCmd::Flows { object, chassis } = self;
        let req = request(object, chassis.as_deref(), ctx.chassis_timeout_ms())?;
        Ok(Step::Read(Read {
            calls: vec![Call::Flows(req)],
            render: Box::new(|replies, out| {
                let Reply::Flows(r) = one_reply(replies)? else {
                    return Err(CmdError::MalformedReply("flows: not a FlowsReply"));
                };
                if out.json() {
                    return Ok(json_text(&to_json(r), out)?);
                }
                Ok(render_text(r))
            }),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    fn req(args: &[&str]) -> pb::FlowsRequest {
        match read(args).calls.as_slice() {
            [Call::Flows(t)] => t.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn objects() {
        let r = req(&["flows", "port", "p1", "--chassis", "host2"]);
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.chassis.as_str()),
            ("Logical_Switch_Port", "p1", "host2")
        );
        assert_eq!(req(&["flows", "ls", "sw"]).kind, "Logical_Switch");
        let r = req(&["flows", "p1"]);
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("", "p1"));
        assert_eq!(
            req(&["flows", "0x0200000000000001"]).cookie,
            0x0200000000000001
        );
        let e = request(&["router".into(), "r".into()], None, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"router\""), "{e}");
    }

    #[test]
    fn renders_counters_and_silent_chassis() {
        let r = pb::FlowsReply {
            cookie: 0x02,
            kind: "Logical_Switch_Port".into(),
            name: "p1".into(),
            chassis: vec![
                pb::ChassisFlows {
                    chassis: "host1".into(),
                    reply: Some(pb::AgentFlowsReply {
                        flows: vec![pb::InstalledFlow {
                            packets: 3,
                            bytes: 294,
                            text: "table=0, priority=100,in_port=3 actions=goto_table:5".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    error: String::new(),
                },
                pb::ChassisFlows {
                    chassis: "host2".into(),
                    reply: None,
                    error: "chassis host2: did not answer within 3000 ms".into(),
                },
            ],
        };
        let text = render_read(
            &read(&["flows", "p1"]),
            &[Reply::Flows(r.clone())],
            &out(false),
        );
        assert_eq!(
            text,
            "flows of Logical_Switch_Port p1 (cookie 0x2)\nhost1: 1 flows\n  n_packets=3 n_bytes=294 table=0, priority=100,in_port=3 actions=goto_table:5\nhost2: chassis host2: did not answer within 3000 ms\n"
        );
        let j = json(&render_read(
            &read(&["flows", "p1"]),
            &[Reply::Flows(r)],
            &out(true),
        ));
        assert_eq!(j["chassis"][0]["flows"][0]["packets"], 3);
        assert_eq!(
            j["chassis"][1]["error"],
            "chassis host2: did not answer within 3000 ms"
        );
    }
}
