//! `agent-info [CHASSIS]`: each chassis' agent — version, uptime, readiness, what it has
//! installed, the last applied revision and error, OVS version and datapath features — asked
//! by the controller with a timeout each.

use clap::Subcommand;
use serde_json::json;
use weft_proto::v1 as pb;

use super::{one_reply, Call, CmdError, Noun, PlanCtx, Read, Reply, Step};
use crate::format::json_text;

#[derive(Debug, Clone, Subcommand)]
pub enum AgentInfoCmd {
    /// Show every chassis' agent (or CHASSIS'): version, uptime, flows, groups and meters
    /// installed, last applied revision and error, OVS version and datapath features.
    AgentInfo {
        /// Only this chassis.
        chassis: Option<String>,
    },
}

/// The text form.
pub fn render_text(r: &pb::AgentInfoReply) -> String {
    let mut s = String::new();
    for c in &r.chassis {
        let alive = if c.alive { "alive" } else { "dead" };
        let Some(i) = &c.info else {
            s.push_str(&format!("{} ({alive}): {}\n", c.chassis, c.error));
            continue;
        };
        s.push_str(&format!(
            "{} ({alive}): weft-agent {}, up {} s, {}\n",
            c.chassis,
            i.version,
            i.uptime_sec,
            if i.ready {
                "ready"
            } else {
                "NOT READY (no snapshot applied yet)"
            }
        ));
        s.push_str(&format!(
            "  installed       {} flows, {} groups, {} meters\n",
            i.flows, i.groups, i.meters
        ));
        s.push_str(&format!(
            "  applied         revision {}\n",
            i.applied_revision
        ));
        s.push_str(&format!(
            "  last error      {}\n",
            if i.last_error.is_empty() {
                "none"
            } else {
                &i.last_error
            }
        ));
        s.push_str(&format!("  encap ip        {}\n", i.encap_ip));
        s.push_str(&format!("  local ports     {}\n", i.local_ports.join(" ")));
        s.push_str(&format!("  ovs             {}\n", i.ovs_version));
        if !i.ovs_error.is_empty() {
            s.push_str(&format!("  ovs error       {}\n", i.ovs_error));
        }
        if !i.dp_features.is_empty() {
            s.push_str("  datapath features\n");
            for f in &i.dp_features {
                s.push_str(&format!("    {f}\n"));
            }
        }
    }
    s
}

/// The JSON form.
pub fn to_json(r: &pb::AgentInfoReply) -> serde_json::Value {
    json!(r.chassis.iter().map(|c| json!({
        "chassis": c.chassis,
        "alive": c.alive,
        "error": c.error,
        "info": c.info.as_ref().map(|i| json!({
            "version": i.version, "uptime_sec": i.uptime_sec, "ready": i.ready,
            "flows": i.flows, "groups": i.groups, "meters": i.meters,
            "applied_revision": i.applied_revision, "last_error": i.last_error,
            "encap_ip": i.encap_ip, "local_ports": i.local_ports,
            "ovs_version": i.ovs_version, "ovs_error": i.ovs_error, "dp_features": i.dp_features,
        })),
    })).collect::<Vec<_>>())
}

impl Noun for AgentInfoCmd {
    fn plan(&self, ctx: &PlanCtx) -> Result<Step, CmdError> {
        let AgentInfoCmd::AgentInfo { chassis } = self;
        let req = pb::AgentInfoQuery {
            chassis: chassis.clone().unwrap_or_default(),
            timeout_ms: ctx.chassis_timeout_ms(),
        };
        Ok(Step::Read(Read {
            calls: vec![Call::AgentInfo(req)],
            render: Box::new(|replies, out| {
                let Reply::AgentInfo(r) = one_reply(replies)? else {
                    return Err(CmdError::MalformedReply(
                        "agent-info: not an AgentInfoReply",
                    ));
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
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    #[test]
    fn renders_answers_and_silence() {
        let r = pb::AgentInfoReply {
            chassis: vec![
                pb::ChassisInfo {
                    chassis: "host1".into(),
                    alive: true,
                    info: Some(pb::AgentInfo {
                        version: "0.1.0".into(),
                        uptime_sec: 5,
                        ready: true,
                        flows: 40,
                        ovs_version: "ovs-vswitchd (Open vSwitch) 3.1.0".into(),
                        dp_features: vec!["Recirc: Yes".into()],
                        ..Default::default()
                    }),
                    error: String::new(),
                },
                pb::ChassisInfo {
                    chassis: "host2".into(),
                    alive: false,
                    info: None,
                    error: "chassis host2: did not answer within 3000 ms".into(),
                },
            ],
        };
        let rd = read(&["agent-info"]);
        let text = render_read(&rd, &[Reply::AgentInfo(r.clone())], &out(false));
        assert!(
            text.starts_with("host1 (alive): weft-agent 0.1.0, up 5 s, ready\n"),
            "{text}"
        );
        assert!(
            text.contains("  installed       40 flows, 0 groups, 0 meters\n"),
            "{text}"
        );
        assert!(text.contains("    Recirc: Yes\n"), "{text}");
        assert!(
            text.ends_with("host2 (dead): chassis host2: did not answer within 3000 ms\n"),
            "{text}"
        );
        let j = json(&render_read(&rd, &[Reply::AgentInfo(r)], &out(true)));
        assert_eq!(j[0]["info"]["flows"], 40);
        match read(&["agent-info", "host2"]).calls.as_slice() {
            [Call::AgentInfo(q)] => assert_eq!(q.chassis, "host2"),
            other => panic!("{other:?}"),
        }
    }
}
