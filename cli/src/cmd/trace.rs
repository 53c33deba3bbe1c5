//! `trace PORT [MICROFLOW] [--to IP] [--tcp N | --udp N | --icmp] [--eth-dst MAC]`: the
//! controller's logical trace of one packet from PORT (ovn-trace's role). The shorthand
//! flags add `ip4.dst == IP`, `tcp && tcp.dst == N`, ... to the microflow; the controller
//! fills in the rest from the port's addresses. `--physical` adds `ofproto/trace` on the
//! source chassis and on each chassis the packet tunnels to (through the agents' debug
//! service), each flow named by the object its cookie names, and flags disagreements.

use clap::Subcommand;
use serde_json::json;
use weft_proto::v1 as pb;

use super::{one_reply, Call, CmdError, Noun, PlanCtx, Read, Reply, Step};
use crate::format::json_text;

#[derive(Debug, Clone, Subcommand)]
pub enum TraceCmd {
    /// Trace a packet from PORT through the logical pipeline (switch, port security, ACLs,
    /// L2 lookup, output port and its chassis) and print each stage and the verdict.
    Trace {
        /// The logical port the packet enters from.
        port: String,
        /// The packet in OVN's expression syntax, e.g.
        /// 'ip4.dst == 10.0.0.5 && tcp && tcp.dst == 80' (FIELD == value terms and
        /// predicates joined by &&).
        microflow: Option<String>,
        /// Shorthand: ip4.dst == IP.
        #[arg(long, value_name = "IP")]
        to: Option<std::net::Ipv4Addr>,
        /// Shorthand: tcp && tcp.dst == PORT.
        #[arg(long, value_name = "PORT", conflicts_with_all = ["udp", "icmp"])]
        tcp: Option<u16>,
        /// Shorthand: udp && udp.dst == PORT.
        #[arg(long, value_name = "PORT", conflicts_with = "icmp")]
        udp: Option<u16>,
        /// Shorthand: icmp4 (an echo request).
        #[arg(long)]
        icmp: bool,
        /// Shorthand: eth.dst == MAC.
        #[arg(long, value_name = "MAC")]
        eth_dst: Option<String>,
        /// Also trace through the chassis' OpenFlow tables (ofproto/trace on the source
        /// chassis and on each chassis the packet tunnels to) and flag disagreements.
        #[arg(long)]
        physical: bool,
    },
}

/// The microflow text: the given expression and the shorthand terms, joined by `&&`.
fn microflow(cmd: &TraceCmd) -> String {
    let TraceCmd::Trace {
        microflow,
        to,
        tcp,
        udp,
        icmp,
        eth_dst,
        ..
    } = cmd;
    let mut terms: Vec<String> = Vec::new();
    if let Some(m) = microflow.as_ref().filter(|m| !m.trim().is_empty()) {
        terms.push(if m.contains("||") {
            format!("({m})")
        } else {
            m.clone()
        });
    }
    if let Some(mac) = eth_dst {
        terms.push(format!("eth.dst == {mac}"));
    }
    if let Some(ip) = to {
        terms.push(format!("ip4.dst == {ip}"));
    }
    if let Some(p) = tcp {
        terms.push(format!("tcp && tcp.dst == {p}"));
    }
    if let Some(p) = udp {
        terms.push(format!("udp && udp.dst == {p}"));
    }
    if *icmp {
        terms.push("icmp4 && icmp4.type == 8".to_string());
    }
    terms.join(" && ")
}

fn verdict_word(v: i32) -> &'static str {
    match pb::TraceVerdict::try_from(v) {
        Ok(pb::TraceVerdict::TraceDelivered) => "delivered",
        Ok(pb::TraceVerdict::TraceDropped) => "dropped",
        Ok(pb::TraceVerdict::TraceNoBinding) => "no-binding",
        Ok(pb::TraceVerdict::TraceChassisDown) => "chassis-down",
        Ok(pb::TraceVerdict::TraceNoRoute) => "no-route",
        Err(_) => "unknown",
    }
}

/// The text form: the microflow, one line per stage, the verdict.
pub fn render_text(port: &str, r: &pb::TraceReply) -> String {
    let mut s = format!("trace from {port}: {}\n", r.microflow);
    let w = r.stages.iter().map(|st| st.stage.len()).max().unwrap_or(0);
    for st in &r.stages {
        s.push_str(&format!("  {:<w$}  {}\n", st.stage, st.detail));
    }
    s.push_str(&format!(
        "verdict: {} ({})\n",
        verdict_word(r.verdict),
        r.summary
    ));
    s
}

fn owner_text(o: Option<&pb::CookieOwner>) -> String {
    match o {
        Some(o) if o.kind == "static" => "(table default)".to_string(),
        Some(o) if !o.kind.is_empty() => format!("{} {}", o.kind, o.name),
        _ => "(unknown cookie)".to_string(),
    }
}

/// The text form of a physical trace: the logical part as `trace` prints it, then each
/// chassis' part, then one `DISAGREEMENT:` line per disagreement.
pub fn render_physical(port: &str, r: &pb::PhysicalTraceReply) -> String {
    let mut s = match &r.logical {
        Some(l) => render_text(port, l),
        None => String::new(),
    };
    if r.physical.is_empty() {
        s.push_str("physical: port is bound to no chassis; nothing to trace\n");
    }
    for p in &r.physical {
        let Some(a) = &p.reply else {
            s.push_str(&format!(
                "physical on {} ({}): {}\n",
                p.chassis, p.entry, p.error
            ));
            continue;
        };
        let mut outcome = a.outcome.clone();
        if !a.delivered_ports.is_empty() {
            outcome.push_str(&format!(" to {}", a.delivered_ports.join(", ")));
        }
        for t in &a.tunnels {
            outcome.push_str(&format!(" (tunnel to {})", t.tun_dst));
        }
        s.push_str(&format!(
            "physical on {} ({}): {outcome}\n",
            p.chassis, p.entry
        ));
        s.push_str(&format!("  flow: {}\n", a.flow));
        // Runs of table defaults that only pass the packet on are one line.
        let mut i = 0;
        while i < a.hits.len() {
            let h = &a.hits[i];
            let passes = |h: &pb::TraceHit| {
                h.owner.as_ref().is_some_and(|o| o.kind == "static")
                    && h.r#match.is_empty()
                    && h.actions.len() == 1
                    && h.actions[0].starts_with("goto_table:")
            };
            let mut j = i;
            while j + 1 < a.hits.len() && passes(&a.hits[j]) && passes(&a.hits[j + 1]) {
                j += 1;
            }
            if j > i {
                s.push_str(&format!(
                    "  {:>3}-{}  table defaults (pass)\n",
                    h.table, a.hits[j].table
                ));
            } else {
                s.push_str(&format!(
                    "  {:>3}  priority {:<5} {:<34} {}\n",
                    h.table,
                    h.priority,
                    owner_text(h.owner.as_ref()),
                    h.r#match
                ));
            }
            i = j + 1;
        }
        s.push_str(&format!("  datapath actions: {}\n", a.datapath_actions));
    }
    for d in &r.disagreements {
        s.push_str(&format!("DISAGREEMENT: {d}\n"));
    }
    s
}

fn physical_json(r: &pb::PhysicalTraceReply) -> serde_json::Value {
    json!({
        "physical": r.physical.iter().map(|p| json!({
            "chassis": p.chassis,
            "entry": p.entry,
            "error": p.error,
            "outcome": p.reply.as_ref().map(|a| a.outcome.clone()),
            "flow": p.reply.as_ref().map(|a| a.flow.clone()),
            "delivered_ports": p.reply.as_ref().map(|a| a.delivered_ports.clone()),
            "datapath_actions": p.reply.as_ref().map(|a| a.datapath_actions.clone()),
            "output": p.reply.as_ref().map(|a| a.output.clone()),
            "tunnels": p.reply.as_ref().map(|a| a.tunnels.iter().map(|t| json!({
                "encap": t.encap, "tun_id": t.tun_id, "tun_dst": t.tun_dst,
                "tun_metadata0": t.tun_metadata0,
            })).collect::<Vec<_>>()),
            "hits": p.reply.as_ref().map(|a| a.hits.iter().map(|h| json!({
                "table": h.table, "priority": h.priority, "cookie": format!("{:#x}", h.cookie),
                "owner": h.owner.as_ref().map(|o| json!({"kind": o.kind, "name": o.name})),
                "match": h.r#match, "actions": h.actions,
            })).collect::<Vec<_>>()),
        })).collect::<Vec<_>>(),
        "disagreements": r.disagreements,
    })
}

impl Noun for TraceCmd {
    fn plan(&self, ctx: &PlanCtx) -> Result<Step, CmdError> {
        let TraceCmd::Trace { port, physical, .. } = self;
        let port = port.clone();
        if *physical {
            let req = pb::PhysicalTraceRequest {
                inport: port.clone(),
                microflow: microflow(self),
                timeout_ms: ctx.chassis_timeout_ms(),
            };
            return Ok(Step::Read(Read {
                calls: vec![Call::PhysicalTrace(req)],
                render: Box::new(move |replies, out| {
                    let Reply::PhysicalTrace(r) = one_reply(replies)? else {
                        return Err(CmdError::MalformedReply("trace: not a PhysicalTraceReply"));
                    };
                    if !out.json() {
                        return Ok(render_physical(&port, r));
                    }
                    let mut v = r
                        .logical
                        .as_ref()
                        .map(|l| logical_json(&port, l))
                        .unwrap_or_default();
                    if let (Some(o), serde_json::Value::Object(p)) =
                        (v.as_object_mut(), physical_json(r))
                    {
                        o.extend(p);
                    }
                    Ok(json_text(&v, out)?)
                }),
            }));
        }
        let req = pb::TraceRequest {
            inport: port.clone(),
            microflow: microflow(self),
        };
        Ok(Step::Read(Read {
            calls: vec![Call::Trace(req)],
            render: Box::new(move |replies, out| {
                let Reply::Trace(r) = one_reply(replies)? else {
                    return Err(CmdError::MalformedReply("trace: not a TraceReply"));
                };
                if !out.json() {
                    return Ok(render_text(&port, r));
                }
                Ok(json_text(&logical_json(&port, r), out)?)
            }),
        }))
    }
}

/// The JSON form of a logical trace.
fn logical_json(port: &str, r: &pb::TraceReply) -> serde_json::Value {
    json!({
        "inport": port,
        "microflow": r.microflow,
        "verdict": verdict_word(r.verdict),
        "summary": r.summary,
        "stages": r.stages.iter().map(|s| json!({
            "stage": s.stage, "detail": s.detail, "kind": s.kind, "object": s.object,
        })).collect::<Vec<_>>(),
        "outputs": r.outputs.iter().map(|o| json!({
            "port": o.port, "chassis": o.chassis, "chassis_alive": o.chassis_alive,
            "verdict": verdict_word(o.verdict),
        })).collect::<Vec<_>>(),
        "revision": r.revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    fn req(args: &[&str]) -> pb::TraceRequest {
        match read(args).calls.as_slice() {
            [Call::Trace(t)] => t.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shorthand_flags_build_the_microflow() {
        let t = req(&["trace", "p1", "--to", "10.0.0.5", "--tcp", "80"]);
        assert_eq!(t.inport, "p1");
        assert_eq!(t.microflow, "ip4.dst == 10.0.0.5 && tcp && tcp.dst == 80");
        let t = req(&[
            "trace",
            "p1",
            "eth.src == 0a:00:00:00:00:01 || ip4",
            "--icmp",
        ]);
        assert_eq!(
            t.microflow,
            "(eth.src == 0a:00:00:00:00:01 || ip4) && icmp4 && icmp4.type == 8"
        );
        assert_eq!(req(&["trace", "p1"]).microflow, "");
    }

    #[test]
    fn renders_stages_and_verdict() {
        let r = pb::TraceReply {
            stages: vec![pb::TraceStage {
                stage: "ingress".into(),
                detail: "from port p1".into(),
                ..Default::default()
            }],
            verdict: pb::TraceVerdict::TraceChassisDown as i32,
            summary: "chassis hv2 down (port p2)".into(),
            microflow: "inport == \"p1\"".into(),
            ..Default::default()
        };
        let text = render_read(
            &read(&["trace", "p1"]),
            &[Reply::Trace(r.clone())],
            &out(false),
        );
        assert_eq!(
            text,
            "trace from p1: inport == \"p1\"\n  ingress  from port p1\nverdict: chassis-down (chassis hv2 down (port p2))\n"
        );
        let j = json(&render_read(
            &read(&["trace", "p1"]),
            &[Reply::Trace(r)],
            &out(true),
        ));
        assert_eq!(j["verdict"], "chassis-down");
        assert_eq!(j["stages"][0]["stage"], "ingress");
    }

    #[test]
    fn renders_physical_parts_and_disagreements() {
        let r = pb::PhysicalTraceReply {
            logical: Some(pb::TraceReply {
                verdict: pb::TraceVerdict::TraceDelivered as i32,
                summary: "delivered to p2 on host2".into(),
                microflow: "inport == \"p1\"".into(),
                ..Default::default()
            }),
            physical: vec![
                pb::PhysicalTracePart {
                    chassis: "host1".into(),
                    entry: "port p1".into(),
                    reply: Some(pb::AgentTraceReply {
                        outcome: "tunnelled".into(),
                        flow: "in_port=3".into(),
                        hits: vec![pb::TraceHit {
                            table: 0,
                            priority: 100,
                            owner: Some(pb::CookieOwner {
                                kind: "Logical_Switch_Port".into(),
                                name: "p1".into(),
                            }),
                            r#match: "in_port=3".into(),
                            ..Default::default()
                        }],
                        tunnels: vec![pb::TunnelStart {
                            tun_dst: "172.31.0.12".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    error: String::new(),
                },
                pb::PhysicalTracePart {
                    chassis: "host2".into(),
                    entry: "tunnel".into(),
                    reply: None,
                    error: "chassis host2: did not answer within 3000 ms".into(),
                },
            ],
            disagreements: vec!["logical trace delivers to p2 on host2, but x".into()],
        };
        let rd = read(&["trace", "p1", "--physical"]);
        let text = render_read(&rd, &[Reply::PhysicalTrace(r.clone())], &out(false));
        assert!(
            text.contains("physical on host1 (port p1): tunnelled (tunnel to 172.31.0.12)\n"),
            "{text}"
        );
        assert!(text.contains("Logical_Switch_Port p1"), "{text}");
        assert!(
            text.contains("physical on host2 (tunnel): chassis host2: did not answer"),
            "{text}"
        );
        assert!(
            text.ends_with("DISAGREEMENT: logical trace delivers to p2 on host2, but x\n"),
            "{text}"
        );
        let j = json(&render_read(&rd, &[Reply::PhysicalTrace(r)], &out(true)));
        assert_eq!(j["verdict"], "delivered");
        assert_eq!(j["physical"][0]["hits"][0]["owner"]["name"], "p1");
        assert_eq!(
            j["disagreements"][0],
            "logical trace delivers to p2 on host2, but x"
        );
    }
}
