//! `trace PORT [MICROFLOW] [--to IP] [--tcp N | --udp N | --icmp] [--eth-dst MAC]`: the
//! controller's logical trace of one packet from PORT (ovn-trace's role). The shorthand
//! flags add `ip4.dst == IP`, `tcp && tcp.dst == N`, ... to the microflow; the controller
//! fills in the rest from the port's addresses.

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

impl Noun for TraceCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        let TraceCmd::Trace { port, .. } = self;
        let port = port.clone();
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
                let v = json!({
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
                });
                Ok(json_text(&v, out)?)
            }),
        }))
    }
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
}
