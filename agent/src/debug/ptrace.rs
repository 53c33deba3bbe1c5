//! Pure parts of the physical trace: the OVN microflow turned into the flow string
//! `ofproto/trace` takes ([`ovs_flow`]), and `ofproto/trace`'s text turned into the flows hit,
//! the outputs and the tunnels the packet leaves by ([`parse_trace`]).

use std::collections::BTreeMap;

use weft_proto::model::expr::{Microflow, Value};

/// Why a microflow cannot be traced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PtraceError {
    #[error("invalid microflow field {field}: {reason}")]
    Field { field: String, reason: String },
    #[error("invalid microflow predicate {0:?}: not supported by the physical trace")]
    Predicate(String),
}

/// OVN field → ovs-ofctl field.
const FIELDS: &[(&str, &str)] = &[
    ("eth.src", "dl_src"),
    ("eth.dst", "dl_dst"),
    ("eth.type", "dl_type"),
    ("ip4.src", "nw_src"),
    ("ip4.dst", "nw_dst"),
    ("ip.ttl", "nw_ttl"),
    ("ip.proto", "nw_proto"),
    ("tcp.src", "tp_src"),
    ("tcp.dst", "tp_dst"),
    ("udp.src", "tp_src"),
    ("udp.dst", "tp_dst"),
    ("icmp4.type", "icmp_type"),
    ("icmp4.code", "icmp_code"),
    ("arp.op", "arp_op"),
    ("arp.spa", "arp_spa"),
    ("arp.tpa", "arp_tpa"),
    ("arp.sha", "arp_sha"),
    ("arp.tha", "arp_tha"),
];

/// The protocol keyword a microflow implies ("tcp", "udp", "icmp", "arp", "ip"), if any.
fn protocol(m: &Microflow) -> Result<Option<&'static str>, PtraceError> {
    let mut proto: Option<&'static str> = None;
    let mut set = |p: &'static str| {
        // The most specific wins: ip < tcp/udp/icmp.
        if proto.is_none() || proto == Some("ip") {
            proto = Some(p);
        }
    };
    for p in &m.predicates {
        match p.as_str() {
            "ip4" | "ip" => set("ip"),
            "tcp" => set("tcp"),
            "udp" => set("udp"),
            "icmp4" | "icmp" => set("icmp"),
            "arp" => set("arp"),
            "eth" => {}
            other => return Err(PtraceError::Predicate(other.to_string())),
        }
    }
    for (f, _) in &m.fields {
        if let Some(pfx) = f.split('.').next() {
            match pfx {
                "tcp" => set("tcp"),
                "udp" => set("udp"),
                "icmp4" => set("icmp"),
                "arp" => set("arp"),
                "ip4" | "ip" => set("ip"),
                _ => {}
            }
        }
    }
    Ok(proto)
}

/// `ofproto/trace`'s flow for microflow `m` entering at `start` (`in_port=N` plus, for a
/// tunnel, `tun_id=..,tun_src=..`). `inport` terms are dropped (the start says where the
/// packet enters).
pub fn ovs_flow(start: &str, m: &Microflow) -> Result<String, PtraceError> {
    let mut parts: Vec<String> = Vec::new();
    let proto = protocol(m)?;
    if let Some(p) = proto {
        parts.push(p.to_string());
    }
    parts.push(start.to_string());
    for (f, v) in &m.fields {
        if f == "inport" || f == "outport" {
            continue;
        }
        let Some((_, ovs)) = FIELDS.iter().find(|(o, _)| o == f) else {
            return Err(PtraceError::Field {
                field: f.clone(),
                reason: "not supported by the physical trace".into(),
            });
        };
        let text = match v {
            Value::Int(n) => n.to_string(),
            Value::Mac(_) | Value::Ipv4(..) => v.to_string(),
            other => {
                return Err(PtraceError::Field {
                    field: f.clone(),
                    reason: format!("value {other} is not a constant the switch can match"),
                })
            }
        };
        parts.push(format!("{ovs}={text}"));
    }
    // ofproto/trace's IP TTL defaults to 0, which a router's dec_ttl turns into an
    // invalid-TTL punt; a real sender starts at 64.
    if matches!(proto, Some("ip" | "tcp" | "udp" | "icmp")) && m.get("ip.ttl").is_none() {
        parts.push("nw_ttl=64".to_string());
    }
    Ok(parts.join(","))
}

/// A flow the packet hit (one `N. match, priority P, cookie C` line and its actions).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hit {
    pub table: u32,
    pub priority: u32,
    pub cookie: u64,
    pub matches: String,
    pub actions: Vec<String>,
}

/// Where a packet leaves by a tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelOut {
    /// The tunnel port it is output to (name or number as printed).
    pub port: String,
    pub tun_id: u64,
    pub tun_dst: String,
    pub tun_metadata0: u64,
}

/// What one `ofproto/trace` says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub hits: Vec<Hit>,
    /// Ports output to on the bridge (as printed: a number or a name), in order.
    pub outputs: Vec<String>,
    /// Outputs that are tunnel ports, with the tunnel fields set before them.
    pub tunnels: Vec<TunnelOut>,
    pub controller: bool,
    pub datapath_actions: String,
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses a hit line `70. reg15=0x2,metadata=0x1, priority 100, cookie 0x2000..`.
fn parse_hit(line: &str) -> Option<Hit> {
    let t = line.trim_start();
    let (num, rest) = t.split_once(". ")?;
    let table: u32 = num.parse().ok()?;
    let (head, cookie) = match rest.rsplit_once(", cookie ") {
        Some((h, c)) => (h, parse_u64(c)?),
        None => (rest, 0),
    };
    let (matches, prio) = match head.rsplit_once("priority ") {
        Some((m, p)) => (m.trim_end_matches(", ").trim_end_matches(','), p.trim()),
        None => return None,
    };
    Some(Hit {
        table,
        priority: prio.parse().ok()?,
        cookie,
        matches: matches.to_string(),
        actions: Vec::new(),
    })
}

/// Parses ofproto/trace's output for `bridge`; `tunnel_ports` are the names and numbers of
/// its tunnel ports. Flows of other bridges (a netdev underlay) are skipped.
pub fn parse_trace(text: &str, bridge: &str, tunnel_ports: &[String]) -> Parsed {
    let mut p = Parsed::default();
    let mut in_bridge = false;
    let mut pending = TunnelOut::default();
    let want = format!("bridge(\"{bridge}\")");
    // A bridge the packet passes to (an underlay bridge after a tunnel push) is nested at
    // its indentation; lines indented less are ours again.
    let mut skip_from: Option<usize> = None;
    for line in text.lines() {
        let t = line.trim();
        let indent = line.len() - line.trim_start().len();
        if let Some(k) = skip_from {
            if t.is_empty() || indent >= k {
                if !t.starts_with("Datapath actions:") {
                    continue;
                }
            } else {
                skip_from = None;
            }
        }
        if t.starts_with("bridge(\"") {
            if indent == 0 {
                in_bridge = t == want;
            } else if t != want {
                skip_from = Some(indent);
            }
            continue;
        }
        if let Some(a) = t.strip_prefix("Datapath actions:") {
            p.datapath_actions = a.trim().to_string();
            continue;
        }
        if !in_bridge || t.is_empty() || t.starts_with("---") {
            continue;
        }
        if let Some(h) = parse_hit(line) {
            p.hits.push(h);
            continue;
        }
        if let Some(h) = p.hits.last_mut() {
            h.actions.push(t.to_string());
        }
        if let Some(v) = t.strip_prefix("set_field:") {
            if let Some((val, field)) = v.rsplit_once("->") {
                match field {
                    "tun_id" => pending.tun_id = parse_u64(val).unwrap_or(0),
                    "tun_dst" => pending.tun_dst = val.to_string(),
                    "tun_metadata0" => pending.tun_metadata0 = parse_u64(val).unwrap_or(0),
                    _ => {}
                }
            }
        } else if let Some(rest) = t.strip_prefix("-> NXM_NX_TUN_METADATA0[") {
            // A move into the option: "-> NXM_NX_TUN_METADATA0[16..30] is now 0x3fda".
            if let Some((range, val)) = rest.split_once("] is now ") {
                if let (Some((lo, hi)), Some(v)) = (range.split_once(".."), parse_u64(val)) {
                    if let (Ok(lo), Ok(hi)) = (lo.parse::<u32>(), hi.parse::<u32>()) {
                        if lo <= hi && hi < 64 {
                            let width = hi - lo + 1;
                            let mask = if width == 64 {
                                u64::MAX
                            } else {
                                ((1u64 << width) - 1) << lo
                            };
                            pending.tun_metadata0 =
                                (pending.tun_metadata0 & !mask) | ((v << lo) & mask);
                        }
                    }
                }
            }
        } else if let Some(port) = t.strip_prefix("output:") {
            let port = port.trim_matches('"').to_string();
            if tunnel_ports.contains(&port) {
                p.tunnels.push(TunnelOut {
                    port: port.clone(),
                    ..pending.clone()
                });
            }
            p.outputs.push(port);
        } else if t.ends_with("skipping output to input port") {
            // OVS does not send a packet back where it came from (a flood's own bucket).
            if let Some(port) = p.outputs.pop() {
                if p.tunnels.last().is_some_and(|t| t.port == port) {
                    p.tunnels.pop();
                }
            }
        } else if t.starts_with("controller(") || t.starts_with("CONTROLLER:") {
            p.controller = true;
        }
    }
    p
}

/// The one-word outcome: "delivered", "tunnelled", "delivered,tunnelled", "controller" or
/// "dropped".
pub fn outcome(local: usize, tunnels: usize, controller: bool) -> String {
    match (local > 0, tunnels > 0) {
        (true, true) => "delivered,tunnelled".into(),
        (true, false) => "delivered".into(),
        (false, true) => "tunnelled".into(),
        (false, false) if controller => "controller".into(),
        _ => "dropped".into(),
    }
}

/// Maps printed output ports to logical ports: `ports` maps both the ofport number and the
/// interface name to the logical port.
pub fn delivered(outputs: &[String], ports: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = outputs
        .iter()
        .filter_map(|o| ports.get(o).cloned())
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weft_proto::model::expr::parse_microflow;

    #[test]
    fn microflow_to_ovs_flow() {
        let m = parse_microflow(
            "inport == \"p1\" && eth.src == 0a:00:00:00:00:01 && ip4.dst == 10.0.0.5 && tcp.dst == 80",
        )
        .unwrap();
        assert_eq!(
            ovs_flow("in_port=3", &m).unwrap(),
            "tcp,in_port=3,dl_src=0a:00:00:00:00:01,nw_dst=10.0.0.5,tp_dst=80,nw_ttl=64"
        );
        // A given TTL is kept; without one a sender's 64 (ofproto/trace would use 0).
        let m = parse_microflow("ip4 && ip.ttl == 2 && ip4.dst == 10.0.0.5").unwrap();
        assert_eq!(
            ovs_flow("in_port=3", &m).unwrap(),
            "ip,in_port=3,nw_ttl=2,nw_dst=10.0.0.5"
        );
        let m = parse_microflow("ip4 && icmp4 && ip4.src == 10.0.0.2").unwrap();
        assert_eq!(
            ovs_flow("in_port=1,tun_id=0x5", &m).unwrap(),
            "icmp,in_port=1,tun_id=0x5,nw_src=10.0.0.2,nw_ttl=64"
        );
        let m = parse_microflow("ip6").unwrap();
        assert!(ovs_flow("in_port=1", &m)
            .unwrap_err()
            .to_string()
            .contains("\"ip6\""));
        let m = parse_microflow("ip6.dst == ::1").unwrap();
        let e = ovs_flow("in_port=1", &m).unwrap_err().to_string();
        assert!(e.contains("ip6.dst"), "{e}");
    }

    const TRACE: &str = r#"Flow: icmp,in_port=3,vlan_tci=0x0000,dl_src=0a:00:00:00:00:47,dl_dst=0a:00:00:00:00:05,nw_src=10.0.0.71,nw_dst=10.0.0.5

bridge("br-int")
----------------
 0. in_port=3, priority 100, cookie 0x2001122334455667
    set_field:0x2013->metadata
    set_field:0x5->reg14
    goto_table:5
 5. priority 0, cookie 0xff00000000000000
    goto_table:10
50. metadata=0x2013,dl_dst=0a:00:00:00:00:05, priority 100, cookie 0x2aabbccddeeff00
    set_field:0x2->reg15
    goto_table:58
70. reg15=0x2,metadata=0x2013, priority 100, cookie 0x2aabbccddeeff00
    set_field:0x2ed6c8->tun_id
    set_field:172.31.0.12->tun_dst
    move:NXM_NX_REG14[0..14]->NXM_NX_TUN_METADATA0[16..30]
     -> NXM_NX_TUN_METADATA0[16..30] is now 0x5
    move:NXM_NX_REG15[0..15]->NXM_NX_TUN_METADATA0[0..15]
     -> NXM_NX_TUN_METADATA0[0..15] is now 0x2
    output:1
     -> output to native tunnel
     -> tunneling to 172.31.0.12 via br-underlay

bridge("br-underlay")
---------------------
 0. priority 0
    NORMAL
     -> output to kernel tunnel

Final flow: unchanged
Megaflow: recirc_id=0,eth,icmp,in_port=3
Datapath actions: tnl_push(tnl_port(4789)),2
"#;

    #[test]
    fn parses_hits_outputs_and_tunnels() {
        let p = parse_trace(TRACE, "br-int", &["1".into(), "weft-geneve".into()]);
        assert_eq!(p.hits.len(), 4);
        assert_eq!(p.hits[0].table, 0);
        assert_eq!(p.hits[0].priority, 100);
        assert_eq!(p.hits[0].cookie, 0x2001122334455667);
        assert_eq!(p.hits[0].matches, "in_port=3");
        assert_eq!(p.hits[1].matches, "");
        assert_eq!(p.hits[3].actions[0], "set_field:0x2ed6c8->tun_id");
        assert_eq!(p.outputs, vec!["1"]);
        assert_eq!(
            p.tunnels,
            vec![TunnelOut {
                port: "1".into(),
                tun_id: 0x2ed6c8,
                tun_dst: "172.31.0.12".into(),
                tun_metadata0: 0x50002
            }]
        );
        assert_eq!(p.datapath_actions, "tnl_push(tnl_port(4789)),2");
        assert_eq!(outcome(0, p.tunnels.len(), p.controller), "tunnelled");
    }

    #[test]
    fn output_to_the_input_port_is_skipped() {
        let t = "bridge(\"br-int\")\n----\n 0. in_port=2, priority 100, cookie 0x2\n    group:1\n    bucket 0\n            output:2\n             >> skipping output to input port\n    bucket 1\n            output:1\n\n        bridge(\"br-phy\")\n        ----\n         0. priority 0\n            output:7\n    bucket 2\n            output:3\n\nDatapath actions: 3\n";
        let p = parse_trace(t, "br-int", &[]);
        assert_eq!(p.outputs, vec!["1", "3"]);
        assert_eq!(p.hits.len(), 1);
    }

    #[test]
    fn a_missing_flow_is_a_drop() {
        let t = "bridge(\"br-int\")\n----\n 0. in_port=4, priority 100, cookie 0x2\n    goto_table:5\n70. No match.\n    drop\n\nDatapath actions: drop\n";
        let p = parse_trace(t, "br-int", &[]);
        assert_eq!(p.hits.len(), 1);
        assert!(p.outputs.is_empty());
        assert_eq!(outcome(0, 0, false), "dropped");
        let mut ports = BTreeMap::new();
        ports.insert("5".to_string(), "p2".to_string());
        ports.insert("vif-p2".to_string(), "p2".to_string());
        assert_eq!(
            delivered(&["vif-p2".into(), "9".into()], &ports),
            vec!["p2"]
        );
    }
}
