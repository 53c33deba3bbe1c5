//! The logical trace (`weftctl trace`, ovn-trace's role): one packet through the intent, stage
//! by stage as the pipeline runs it (docs/architecture.md's table map), ending in a verdict.
//! Pure: computed from a [`ClusterState`]; no chassis is asked. Start with [`trace`].
//!
//! An IPv4 destination off the input switch goes through the router attached to it (a
//! switch port of type "router"), as the agents' distributed router does: the router port's
//! own addresses answer ping (other traffic to them is dropped), connected networks and
//! static routes are routed by the agents' lr-route priorities (longest prefix first; TTL
//! decremented, eth.src = the output router port's MAC, eth.dst = the owner of the next hop
//! on the destination switch: the destination itself, or a static route's next hop), and the
//! packet continues on the destination switch to its output port.

use std::net::Ipv4Addr;

use weft_proto::model::expr::{Microflow, Value};
use weft_proto::v1::{PortAddress, TraceOutput, TraceReply, TraceStage, TraceVerdict};

use crate::error::{ApiError, ApiResult};
use crate::kinds;
use crate::state::ClusterState;
use crate::validate::parse_mac;

/// One routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hop {
    router: String,
    /// The router port the packet enters by.
    in_lrp: String,
    /// The router port it leaves by.
    out_lrp: String,
    /// The route taken, as the lr-route stage says it ("connected route 10.1.0.0/24").
    via: String,
    /// The address whose MAC lr-neigh looks up (the destination, or a static route's next
    /// hop).
    nexthop: Ipv4Addr,
    out_mac: String,
    /// The destination switch and the router-type port on it.
    out_switch: String,
    out_lsp: String,
}

/// What the router attached to `sw` does with a packet to `dst`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Routing {
    Forward(Hop),
    /// `dst` is an address of router port `lrp` of `router` (entered by `in_lrp`).
    Own {
        router: String,
        lrp: String,
    },
    /// Why not.
    NoRoute(String),
}

fn networks(lrp: &weft_proto::v1::LogicalRouterPort) -> Vec<ipnetwork::Ipv4Network> {
    lrp.networks.iter().filter_map(|n| n.parse().ok()).collect()
}

/// The first enabled switch-side router port of `sw` whose router port and router are
/// enabled, then the best route to `dst` (from `src`) on that router: the highest lr-route
/// priority among its connected networks and static routes, as the agents order them
/// ([`weft_proto::model::route`]); of ECMP next hops the first is traced.
fn route(state: &ClusterState, sw: &str, dst: Ipv4Addr, src: Option<Ipv4Addr>) -> Routing {
    use weft_proto::model::route::{connected_priority, static_priority, Policy, StaticRoute};
    let lsps: Vec<&String> = state
        .router_lsps_by_switch
        .get(sw)
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    if lsps.is_empty() {
        return Routing::NoRoute(format!(
            "{dst} is off switch {sw} and no router is attached to it"
        ));
    }
    let attached = lsps.iter().find_map(|lsp| {
        let p = state.ports.get(*lsp).filter(|p| p.enabled)?;
        let lrp = state
            .router_ports
            .get(p.options.get("router-port")?)
            .filter(|l| l.enabled)?;
        let r = state.routers.get(&lrp.router).filter(|r| r.enabled)?;
        Some((lrp, r))
    });
    let Some((in_lrp, router)) = attached else {
        return Routing::NoRoute(format!(
            "{dst} is off switch {sw}; its router port(s) {} lead to no enabled router port and router",
            lsps.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    };
    let ports: Vec<&weft_proto::v1::LogicalRouterPort> = state
        .router_ports_by_router
        .get(&router.name)
        .into_iter()
        .flatten()
        .filter_map(|n| state.router_ports.get(n))
        .filter(|p| p.enabled)
        .collect();
    for p in &ports {
        if networks(p).iter().any(|n| n.ip() == dst) {
            return Routing::Own {
                router: router.name.clone(),
                lrp: p.name.clone(),
            };
        }
    }
    // (priority, output port, next hop, description)
    let mut candidates: Vec<(u16, &weft_proto::v1::LogicalRouterPort, Ipv4Addr, String)> =
        Vec::new();
    for p in &ports {
        for n in networks(p).into_iter().filter(|n| n.contains(dst)) {
            candidates.push((
                connected_priority(n.prefix()),
                *p,
                dst,
                format!("connected route {}/{}", n.network(), n.prefix()),
            ));
        }
    }
    let routes: Vec<StaticRoute> = router
        .static_routes
        .iter()
        .filter_map(|m| StaticRoute::from_message("static_routes", m).ok())
        .collect();
    for r in &routes {
        let hit = match r.policy {
            Policy::DstIp => r.prefix.contains(dst),
            Policy::SrcIp => src.is_some_and(|s| r.prefix.contains(s)),
        };
        if !hit {
            continue;
        }
        let out = match &r.output_port {
            Some(name) => ports.iter().find(|p| &p.name == name).copied(),
            None => ports
                .iter()
                .filter_map(|p| {
                    networks(p)
                        .iter()
                        .filter(|n| n.contains(r.nexthop))
                        .map(|n| n.prefix())
                        .max()
                        .map(|l| (l, *p))
                })
                .max_by_key(|(l, _)| *l)
                .map(|(_, p)| p),
        };
        let Some(out) = out else {
            continue;
        };
        let hops = routes.iter().filter(|x| x.same_destination(r)).count();
        let ecmp = if hops > 1 {
            format!(" (ECMP: one of {hops} next hops by flow hash; traced via the first)")
        } else {
            String::new()
        };
        candidates.push((
            static_priority(r.prefix.prefix(), r.policy),
            out,
            r.nexthop,
            format!(
                "static route {} {} via {}{ecmp}",
                r.policy, r.prefix, r.nexthop
            ),
        ));
    }
    // The highest priority; the first of equals (ECMP: the first next hop).
    let best = candidates
        .into_iter()
        .fold(None, |b: Option<(u16, _, _, _)>, c| match b {
            Some(b) if b.0 >= c.0 => Some(b),
            _ => Some(c),
        });
    let Some((_, out, nexthop, via)) = best else {
        return Routing::NoRoute(format!("router {} has no route to {dst}", router.name));
    };
    let link = state
        .router_port_links
        .get(&out.name)
        .into_iter()
        .flatten()
        .find_map(|lsp| state.ports.get(lsp).filter(|p| p.enabled));
    let Some(link) = link else {
        return Routing::NoRoute(format!(
            "router {} routes {dst} out of port {}, which is attached to no switch",
            router.name, out.name
        ));
    };
    Routing::Forward(Hop {
        router: router.name.clone(),
        in_lrp: in_lrp.name.clone(),
        out_lrp: out.name.clone(),
        via,
        nexthop,
        out_mac: out.mac.clone(),
        out_switch: link.switch_name.clone(),
        out_lsp: link.name.clone(),
    })
}

fn stage(stage: &str, detail: impl Into<String>, kind: &str, object: &str) -> TraceStage {
    TraceStage {
        stage: stage.into(),
        detail: detail.into(),
        kind: kind.into(),
        object: object.into(),
    }
}

fn mac_bytes(s: &str) -> Option<[u8; 6]> {
    let m = parse_mac(s).ok()?;
    let mut b = [0u8; 6];
    for (i, p) in m.split(':').enumerate() {
        b[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(b)
}

fn mac_text(m: &[u8; 6]) -> String {
    Value::Mac(*m).to_string()
}

/// Whether `ip` is allowed by a port-security entry's IPs ("10.0.0.5" or "10.0.0.0/24"; none
/// = any).
fn ip_allowed(entry: &PortAddress, ip: Ipv4Addr) -> bool {
    entry.ips.is_empty()
        || entry.ips.iter().any(|a| match a.split_once('/') {
            Some((net, p)) => match (net.parse::<Ipv4Addr>(), p.parse::<u32>()) {
                (Ok(net), Ok(p)) if p <= 32 => {
                    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                    u32::from(ip) & mask == u32::from(net) & mask
                }
                _ => false,
            },
            None => a.parse::<Ipv4Addr>().is_ok_and(|x| x == ip),
        })
}

/// Renders a microflow back to OVN syntax.
pub fn render(m: &Microflow) -> String {
    let mut parts: Vec<String> = m
        .fields
        .iter()
        .map(|(f, v)| format!("{f} == {v}"))
        .collect();
    parts.extend(m.predicates.iter().cloned());
    parts.join(" && ")
}

struct Out {
    stages: Vec<TraceStage>,
    outputs: Vec<TraceOutput>,
    /// The packet as it entered, when a router rewrote it later.
    ingress: Option<String>,
}

impl Out {
    fn done(self, verdict: TraceVerdict, summary: String, m: &Microflow, rev: i64) -> TraceReply {
        TraceReply {
            stages: self.stages,
            verdict: verdict as i32,
            summary,
            outputs: self.outputs,
            microflow: render(m),
            revision: rev,
            ingress_microflow: self.ingress.unwrap_or_else(|| render(m)),
        }
    }
}

/// Traces `m` entering from `inport`. Errors: an unknown inport (NotFound, naming it), an
/// inport in the microflow that disagrees (InvalidArgument).
pub fn trace(state: &ClusterState, inport: &str, mut m: Microflow) -> ApiResult<TraceReply> {
    match m.get("inport") {
        Some(Value::Str(p)) if p != inport => {
            return Err(ApiError::InvalidArgument(format!(
                "invalid microflow inport \"{p}\": the trace starts at port {inport:?}"
            )))
        }
        Some(Value::Str(_)) => {}
        _ => m.or_default("inport", Value::Str(inport.to_string())),
    }
    let Some(port) = state.ports.get(inport) else {
        return Err(ApiError::NotFound(format!(
            "port {inport:?} not found (inport)"
        )));
    };
    let rev = state.revision;
    let mut sw_name = port.switch_name.clone();
    let view = state.resolved.get(inport).cloned().unwrap_or_default();
    let src_chassis = state
        .bindings
        .get(inport)
        .map(|b| b.chassis.clone())
        .unwrap_or_default();
    let mut out = Out {
        stages: Vec::new(),
        outputs: Vec::new(),
        ingress: None,
    };
    let mut sw = state.switches.get(&sw_name);
    out.stages.push(stage(
        "ingress",
        format!(
            "from port {inport} on switch {sw_name} (datapath key {}), {}",
            sw.map(|s| s.tunnel_key).unwrap_or(0),
            if src_chassis.is_empty() {
                "bound to no chassis".to_string()
            } else {
                format!("bound to chassis {src_chassis}")
            }
        ),
        kinds::port::NAME,
        inport,
    ));
    if !port.enabled {
        out.stages.push(stage(
            "ingress",
            "port is disabled: dropped",
            kinds::port::NAME,
            inport,
        ));
        let s = format!("dropped: port {inport} is disabled");
        return Ok(out.done(TraceVerdict::TraceDropped, s, &m, rev));
    }
    // Fill in what the sender would: its own MAC and IP.
    if let Some(a) = view.addresses.first() {
        if let Some(b) = mac_bytes(&a.mac) {
            m.or_default("eth.src", Value::Mac(b));
        }
        let is_ip = m.has("ip4")
            || m.has("ip")
            || m.has("tcp")
            || m.has("udp")
            || m.has("icmp4")
            || m.has("icmp")
            || m.fields.iter().any(|(f, _)| {
                f.starts_with("ip4.")
                    || f.starts_with("tcp.")
                    || f.starts_with("udp.")
                    || f.starts_with("icmp4.")
            });
        if is_ip {
            if let Some(ip) = a.ips.first().and_then(|i| i.parse::<Ipv4Addr>().ok()) {
                m.or_default("ip4.src", Value::Ipv4(ip, 32));
            }
        }
    }
    let eth_src = match m.get("eth.src") {
        Some(Value::Mac(b)) => *b,
        _ => {
            return Err(ApiError::InvalidArgument(format!(
            "invalid microflow: no eth.src given and port {inport} has no address to take it from"
        )))
        }
    };
    // Port security.
    if view.port_security.is_empty() {
        out.stages
            .push(stage("port-security", "none set on the port", "", ""));
    } else {
        let src = mac_text(&eth_src);
        let Some(entry) = view.port_security.iter().find(|e| e.mac == src) else {
            out.stages.push(stage(
                "port-security",
                format!("eth.src {src} is not in port_security: dropped"),
                kinds::port::NAME,
                inport,
            ));
            let s = format!("dropped by port security of {inport} (eth.src {src})");
            return Ok(out.done(TraceVerdict::TraceDropped, s, &m, rev));
        };
        if let Some(Value::Ipv4(ip, _)) = m.get("ip4.src") {
            if !ip_allowed(entry, *ip) {
                out.stages.push(stage(
                    "port-security",
                    format!("ip4.src {ip} is not allowed for {src}: dropped"),
                    kinds::port::NAME,
                    inport,
                ));
                let s = format!("dropped by port security of {inport} (ip4.src {ip})");
                return Ok(out.done(TraceVerdict::TraceDropped, s, &m, rev));
            }
        }
        out.stages.push(stage(
            "port-security",
            format!("eth.src {src} allowed"),
            kinds::port::NAME,
            inport,
        ));
    }
    let ports_of = |sw: &str| -> Vec<String> {
        state
            .ports_by_switch
            .get(sw)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    };
    let mut ports_on: Vec<String> = ports_of(&sw_name);
    let owner_of_ip_on = |ports_on: &[String], ip: Ipv4Addr| -> Option<(String, String)> {
        let ip = ip.to_string();
        ports_on.iter().find_map(|p| {
            state
                .resolved
                .get(p)?
                .addresses
                .iter()
                .find(|a| a.ips.contains(&ip))
                .map(|a| (p.clone(), a.mac.clone()))
        })
    };
    let owner_of_ip = |ip: Ipv4Addr| owner_of_ip_on(&ports_on, ip);
    // ARP responder.
    let is_arp = m.has("arp") || m.get("arp.op").is_some();
    if is_arp {
        if let (Some(Value::Int(1)), Some(Value::Ipv4(tpa, _))) =
            (m.get("arp.op"), m.get("arp.tpa"))
        {
            if let Some((owner, mac)) = owner_of_ip(*tpa).filter(|(o, _)| o != inport) {
                out.stages.push(stage(
                    "arp",
                    format!("ARP request for {tpa}: the switch answers {tpa} is-at {mac} (port {owner}) out of {inport}"),
                    kinds::port::NAME,
                    &owner,
                ));
                out.outputs.push(TraceOutput {
                    port: inport.to_string(),
                    chassis: src_chassis.clone(),
                    chassis_alive: state.alive.contains(&src_chassis),
                    verdict: TraceVerdict::TraceDelivered as i32,
                });
                let s = format!("ARP reply to {inport} from the switch's responder");
                return Ok(out.done(TraceVerdict::TraceDelivered, s, &m, rev));
            }
        }
        out.stages
            .push(stage("arp", "no responder flow matches: forwarded", "", ""));
    }
    out.stages.push(stage(
        "acl-in",
        "no ACLs (the ACL stages pass everything)",
        "",
        "",
    ));
    // L3: resolve eth.dst from ip4.dst on the switch, as the sender's ARP would.
    if m.get("eth.dst").is_none() {
        if let Some(Value::Ipv4(dst, _)) = m.get("ip4.dst").cloned() {
            match owner_of_ip(dst) {
                Some((owner, mac)) => {
                    out.stages.push(stage(
                        "l3",
                        format!("ip4.dst {dst} is port {owner}'s address: eth.dst {mac}"),
                        kinds::port::NAME,
                        &owner,
                    ));
                    if let Some(b) = mac_bytes(&mac) {
                        m.or_default("eth.dst", Value::Mac(b));
                    }
                }
                None => {
                    let subnet = sw.and_then(crate::validate::stored_subnet);
                    let on_link = subnet.is_some_and(|n| n.contains(dst));
                    if on_link {
                        out.stages.push(stage(
                            "l3",
                            format!("no port on {sw_name} has {dst}: ARP for it gets no answer"),
                            kinds::switch::NAME,
                            &sw_name,
                        ));
                        let s = format!("dropped: no port on switch {sw_name} has {dst}");
                        return Ok(out.done(TraceVerdict::TraceDropped, s, &m, rev));
                    }
                    let src_ip = match m.get("ip4.src") {
                        Some(Value::Ipv4(ip, _)) => Some(*ip),
                        _ => None,
                    };
                    let hop = match route(state, &sw_name, dst, src_ip) {
                        Routing::NoRoute(why) => {
                            out.stages.push(stage(
                                "l3",
                                why.clone(),
                                kinds::switch::NAME,
                                &sw_name,
                            ));
                            return Ok(out.done(
                                TraceVerdict::TraceNoRoute,
                                format!("no route: {why}"),
                                &m,
                                rev,
                            ));
                        }
                        Routing::Own { router, lrp } => {
                            let echo = m.has("icmp4") || m.has("icmp");
                            let detail = if echo {
                                format!("ip4.dst {dst} is router port {lrp}'s address: router {router} answers the echo out of {inport}")
                            } else {
                                format!("ip4.dst {dst} is router port {lrp}'s address: router {router} answers only ARP and ping, dropped")
                            };
                            out.stages.push(stage(
                                "lr-input",
                                detail.clone(),
                                kinds::router_port::NAME,
                                &lrp,
                            ));
                            if echo {
                                out.outputs.push(TraceOutput {
                                    port: inport.to_string(),
                                    chassis: src_chassis.clone(),
                                    chassis_alive: state.alive.contains(&src_chassis),
                                    verdict: TraceVerdict::TraceDelivered as i32,
                                });
                                let s =
                                    format!("echo reply to {inport} from router {router} ({lrp})");
                                return Ok(out.done(TraceVerdict::TraceDelivered, s, &m, rev));
                            }
                            let s = format!("dropped by router {router}: {dst} is its own address");
                            return Ok(out.done(TraceVerdict::TraceDropped, s, &m, rev));
                        }
                        Routing::Forward(hop) => hop,
                    };
                    // The packet as it enters: addressed to the router port's MAC.
                    let mut entering = m.clone();
                    if let Some(b) = state
                        .router_ports
                        .get(&hop.in_lrp)
                        .and_then(|p| mac_bytes(&p.mac))
                    {
                        entering.or_default("eth.dst", Value::Mac(b));
                    }
                    out.ingress = Some(render(&entering));
                    out.stages.push(stage(
                        "l3-entry",
                        format!(
                            "{dst} is off switch {sw_name}: to router {} by port {}",
                            hop.router, hop.in_lrp
                        ),
                        kinds::router::NAME,
                        &hop.router,
                    ));
                    if let Some(Value::Int(ttl)) = m.get("ip.ttl") {
                        if *ttl <= 1 {
                            out.stages.push(stage(
                                "lr-route",
                                format!(
                                    "ip.ttl {ttl}: expires at router {}, dropped; ICMP time \
                                     exceeded from {} to the sender",
                                    hop.router, hop.in_lrp
                                ),
                                kinds::router::NAME,
                                &hop.router,
                            ));
                            let s = format!("dropped: TTL expired at router {}", hop.router);
                            return Ok(out.done(TraceVerdict::TraceDropped, s, &m, rev));
                        }
                    }
                    out.stages.push(stage(
                        "lr-route",
                        format!(
                            "{} out of router port {} (ttl - 1, eth.src {})",
                            hop.via, hop.out_lrp, hop.out_mac
                        ),
                        kinds::router_port::NAME,
                        &hop.out_lrp,
                    ));
                    if let Some(b) = mac_bytes(&hop.out_mac) {
                        m.fields.retain(|(f, _)| f != "eth.src");
                        m.fields.push(("eth.src".into(), Value::Mac(b)));
                    }
                    if let Some(Value::Int(ttl)) = m.get("ip.ttl").cloned() {
                        m.fields.retain(|(f, _)| f != "ip.ttl");
                        m.fields.push(("ip.ttl".into(), Value::Int(ttl - 1)));
                    }
                    let dst_ports = ports_of(&hop.out_switch);
                    let nh = hop.nexthop;
                    let Some((owner, mac)) = owner_of_ip_on(&dst_ports, nh) else {
                        let detail = format!(
                            "no port on switch {} has {nh}: unless the chassis has learned it by \
                             ARP, the router sends an ARP request for it and drops the packet",
                            hop.out_switch
                        );
                        out.stages.push(stage(
                            "lr-neigh",
                            detail,
                            kinds::switch::NAME,
                            &hop.out_switch,
                        ));
                        let s = format!(
                            "dropped: router {} knows no MAC for {nh} on switch {}",
                            hop.router, hop.out_switch
                        );
                        return Ok(out.done(TraceVerdict::TraceDropped, s, &m, rev));
                    };
                    out.stages.push(stage(
                        "lr-neigh",
                        format!("next hop {nh} is port {owner}: eth.dst {mac}"),
                        kinds::port::NAME,
                        &owner,
                    ));
                    if let Some(b) = mac_bytes(&mac) {
                        m.or_default("eth.dst", Value::Mac(b));
                    }
                    out.stages.push(stage(
                        "lr-exit",
                        format!(
                            "into switch {} from its router port {}",
                            hop.out_switch, hop.out_lsp
                        ),
                        kinds::switch::NAME,
                        &hop.out_switch,
                    ));
                    sw_name = hop.out_switch.clone();
                    sw = state.switches.get(&sw_name);
                    ports_on = dst_ports;
                }
            }
        }
    }
    let eth_dst = match m.get("eth.dst") {
        Some(Value::Mac(b)) => *b,
        _ => {
            return Err(ApiError::InvalidArgument(
                "invalid microflow: give eth.dst or ip4.dst (or arp.tpa with arp.op == 1)".into(),
            ))
        }
    };
    // L2 lookup.
    let dst_text = mac_text(&eth_dst);
    let targets: Vec<String> = if eth_dst[0] & 1 == 1 {
        let t: Vec<String> = ports_on
            .iter()
            .filter(|p| p.as_str() != inport)
            .cloned()
            .collect();
        out.stages.push(stage(
            "l2-lookup",
            format!(
                "eth.dst {dst_text} is multicast: flooded to {} other port(s) of {sw_name}",
                t.len()
            ),
            kinds::switch::NAME,
            &sw_name,
        ));
        t
    } else if let Some(p) = ports_on.iter().find(|p| {
        state
            .resolved
            .get(*p)
            .is_some_and(|v| v.addresses.iter().any(|a| a.mac == dst_text))
    }) {
        out.stages.push(stage(
            "l2-lookup",
            format!("eth.dst {dst_text} is port {p}"),
            kinds::port::NAME,
            p,
        ));
        vec![p.clone()]
    } else {
        let unknown: Vec<String> = ports_on
            .iter()
            .filter(|p| p.as_str() != inport && state.resolved.get(*p).is_some_and(|v| v.unknown))
            .cloned()
            .collect();
        if unknown.is_empty() {
            out.stages.push(stage(
                "l2-lookup",
                format!("eth.dst {dst_text} is no port of {sw_name} and no port takes unknown addresses: dropped"),
                kinds::switch::NAME,
                &sw_name,
            ));
            let s = format!("dropped: unknown destination {dst_text} on switch {sw_name}");
            return Ok(out.done(TraceVerdict::TraceDropped, s, &m, rev));
        }
        out.stages.push(stage(
            "l2-lookup",
            format!(
                "eth.dst {dst_text} unknown: to the port(s) with \"unknown\": {}",
                unknown.join(", ")
            ),
            kinds::switch::NAME,
            &sw_name,
        ));
        unknown
    };
    out.stages.push(stage(
        "acl-out",
        "no ACLs (the ACL stages pass everything)",
        "",
        "",
    ));
    // Egress, per copy.
    let mut summaries = Vec::new();
    for t in &targets {
        let Some(tp) = state.ports.get(t) else {
            continue;
        };
        let chassis = state
            .bindings
            .get(t)
            .map(|b| b.chassis.clone())
            .unwrap_or_default();
        let alive = state.alive.contains(&chassis);
        let (verdict, detail) = if !tp.enabled {
            (
                TraceVerdict::TraceDropped,
                format!("port {t} is disabled: dropped"),
            )
        } else if chassis.is_empty() {
            (
                TraceVerdict::TraceNoBinding,
                format!("port {t} is bound to no chassis: no binding, dropped"),
            )
        } else if !alive {
            (
                TraceVerdict::TraceChassisDown,
                format!(
                    "port {t} is on chassis {chassis}, which is down (its agent is not connected)"
                ),
            )
        } else if chassis == src_chassis {
            (
                TraceVerdict::TraceDelivered,
                format!("delivered to port {t}, local on chassis {chassis}"),
            )
        } else {
            let encap = state
                .chassis
                .get(&chassis)
                .map(|c| {
                    format!(
                        "{} to {}",
                        c.encap_types.first().cloned().unwrap_or_default(),
                        c.encap_ip
                    )
                })
                .unwrap_or_default();
            (
                TraceVerdict::TraceDelivered,
                format!(
                    "tunnel {} → {chassis} ({encap}, VNI {}), delivered to port {t}",
                    if src_chassis.is_empty() {
                        "?"
                    } else {
                        &src_chassis
                    },
                    sw.map(|s| s.vni).unwrap_or(0)
                ),
            )
        };
        out.stages
            .push(stage("output", detail.clone(), kinds::port::NAME, t));
        summaries.push((verdict, t.clone(), chassis.clone(), detail));
        out.outputs.push(TraceOutput {
            port: t.clone(),
            chassis,
            chassis_alive: alive,
            verdict: verdict as i32,
        });
    }
    let delivered: Vec<&(TraceVerdict, String, String, String)> = summaries
        .iter()
        .filter(|s| s.0 == TraceVerdict::TraceDelivered)
        .collect();
    let (verdict, summary) = match (summaries.as_slice(), delivered.as_slice()) {
        ([], _) => (
            TraceVerdict::TraceDropped,
            format!("dropped: no other port on switch {sw_name}"),
        ),
        ([(v, p, c, d)], _) => (
            *v,
            match v {
                TraceVerdict::TraceDelivered => format!("delivered to {p} on {c}"),
                TraceVerdict::TraceChassisDown => format!("chassis {c} down (port {p})"),
                TraceVerdict::TraceNoBinding => format!("no binding for port {p}"),
                _ => d.clone(),
            },
        ),
        (all, []) => (
            all[0].0,
            format!("no copy delivered ({} port(s) tried)", all.len()),
        ),
        (all, ok) => (
            TraceVerdict::TraceDelivered,
            format!("delivered to {} of {} port(s)", ok.len(), all.len()),
        ),
    };
    Ok(out.done(verdict, summary, &m, rev))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weft_proto::model::expr::parse_microflow;
    use weft_proto::v1::{Chassis, LogicalSwitch, LogicalSwitchPort, PortBinding};

    fn state() -> ClusterState {
        let mut s = ClusterState::default();
        s.store_switch(
            "sw",
            Some(LogicalSwitch {
                name: "sw".into(),
                subnet: "10.0.0.0/24".into(),
                vni: 7,
                ..Default::default()
            }),
            1,
        );
        let port = |n: &str, addr: &str, sec: bool| LogicalSwitchPort {
            name: n.into(),
            switch_name: "sw".into(),
            addresses: vec![addr.into()],
            port_security: if sec { vec![addr.into()] } else { vec![] },
            enabled: true,
            ..Default::default()
        };
        s.store_port(
            "p1",
            Some(port("p1", "0a:00:00:00:00:01 10.0.0.11", true)),
            1,
        );
        s.store_port(
            "p2",
            Some(port("p2", "0a:00:00:00:00:02 10.0.0.12", false)),
            1,
        );
        s.store_port(
            "p3",
            Some(port("p3", "0a:00:00:00:00:03 10.0.0.13", false)),
            1,
        );
        for (p, c) in [("p1", "hv1"), ("p2", "hv2"), ("p3", "hv3")] {
            s.bindings.insert(
                p.into(),
                PortBinding {
                    port: p.into(),
                    chassis: c.into(),
                    up: true,
                },
            );
        }
        for c in ["hv1", "hv2", "hv3"] {
            s.store_chassis(
                c,
                Some(Chassis {
                    name: c.into(),
                    encap_ip: "192.0.2.1".into(),
                    encap_types: vec!["geneve".into()],
                    ..Default::default()
                }),
                1,
            );
        }
        s.alive.insert("hv1".into());
        s.alive.insert("hv2".into());
        s
    }

    fn run(st: &ClusterState, flow: &str) -> TraceReply {
        trace(st, "p1", parse_microflow(flow).unwrap()).unwrap()
    }

    #[test]
    fn delivered_across_chassis_names_every_stage() {
        let r = run(&state(), "ip4.dst == 10.0.0.12 && tcp && tcp.dst == 80");
        assert_eq!(r.verdict, TraceVerdict::TraceDelivered as i32, "{r:?}");
        assert_eq!(r.summary, "delivered to p2 on hv2");
        let stages: Vec<&str> = r.stages.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(
            stages,
            [
                "ingress",
                "port-security",
                "acl-in",
                "l3",
                "l2-lookup",
                "acl-out",
                "output"
            ]
        );
        assert!(
            r.stages.last().unwrap().detail.contains("tunnel hv1 → hv2"),
            "{r:?}"
        );
        assert!(
            r.microflow.contains("eth.src == 0a:00:00:00:00:01"),
            "{}",
            r.microflow
        );
        assert!(r.microflow.contains("ip4.src == 10.0.0.11"));
    }

    #[test]
    fn verdicts() {
        let mut st = state();
        let r = run(&st, "ip4.dst == 10.0.0.13");
        assert_eq!(r.verdict, TraceVerdict::TraceChassisDown as i32);
        assert!(r.summary.contains("hv3"), "{}", r.summary);
        let r = run(
            &st,
            "eth.src == 0a:00:00:00:00:99 && eth.dst == 0a:00:00:00:00:02",
        );
        assert_eq!(r.verdict, TraceVerdict::TraceDropped as i32);
        assert!(r.summary.contains("port security of p1"), "{}", r.summary);
        let r = run(&st, "ip4.src == 10.0.0.99 && ip4.dst == 10.0.0.12");
        assert!(r.summary.contains("ip4.src 10.0.0.99"), "{}", r.summary);
        let r = run(&st, "ip4.dst == 10.0.0.50");
        assert_eq!(r.verdict, TraceVerdict::TraceDropped as i32);
        let r = run(&st, "ip4.dst == 8.8.8.8");
        assert_eq!(r.verdict, TraceVerdict::TraceNoRoute as i32);
        let r = run(&st, "arp && arp.op == 1 && arp.tpa == 10.0.0.12");
        assert!(r.summary.contains("ARP reply"), "{}", r.summary);
        let r = run(&st, "eth.dst == ff:ff:ff:ff:ff:ff");
        assert_eq!(r.outputs.len(), 2);
        assert_eq!(r.summary, "delivered to 1 of 2 port(s)");
        st.bindings.remove("p2");
        let r = run(&st, "ip4.dst == 10.0.0.12");
        assert_eq!(r.verdict, TraceVerdict::TraceNoBinding as i32);
        assert_eq!(r.summary, "no binding for port p2");
        let mut p2 = st.ports["p2"].clone();
        p2.enabled = false;
        st.store_port("p2", Some(p2), 2);
        let r = run(&st, "ip4.dst == 10.0.0.12");
        assert!(r.summary.contains("p2 is disabled"), "{}", r.summary);
        let mut p1 = st.ports["p1"].clone();
        p1.enabled = false;
        st.store_port("p1", Some(p1), 3);
        let r = run(&st, "ip4.dst == 10.0.0.12");
        assert_eq!(r.summary, "dropped: port p1 is disabled");
    }

    /// `state()` plus router lr: port lr-sw 10.0.0.1/24 on sw, port lr-sw2 10.1.0.1/24 on
    /// sw2 (10.1.0.0/24) where q1 (10.1.0.21) lives on hv2.
    fn routed() -> ClusterState {
        use weft_proto::v1::{LogicalRouter, LogicalRouterPort};
        let mut s = state();
        s.store_switch(
            "sw2",
            Some(LogicalSwitch {
                name: "sw2".into(),
                subnet: "10.1.0.0/24".into(),
                vni: 8,
                ..Default::default()
            }),
            2,
        );
        s.store_router(
            "lr",
            Some(LogicalRouter {
                name: "lr".into(),
                enabled: true,
                tunnel_key: 9,
                ..Default::default()
            }),
            2,
        );
        for (lrp, mac, net, sw) in [
            ("lr-sw", "0a:00:00:00:01:01", "10.0.0.1/24", "sw"),
            ("lr-sw2", "0a:00:00:00:02:01", "10.1.0.1/24", "sw2"),
        ] {
            s.store_router_port(
                lrp,
                Some(LogicalRouterPort {
                    name: lrp.into(),
                    router: "lr".into(),
                    mac: mac.into(),
                    networks: vec![net.into()],
                    enabled: true,
                    ..Default::default()
                }),
                2,
            );
            let lsp = format!("{sw}-lr");
            s.store_port(
                &lsp,
                Some(LogicalSwitchPort {
                    name: lsp.clone(),
                    switch_name: sw.into(),
                    r#type: "router".into(),
                    addresses: vec!["router".into()],
                    options: [("router-port".to_string(), lrp.to_string())].into(),
                    enabled: true,
                    ..Default::default()
                }),
                2,
            );
        }
        s.store_port(
            "q1",
            Some(LogicalSwitchPort {
                name: "q1".into(),
                switch_name: "sw2".into(),
                addresses: vec!["0a:00:00:00:00:21 10.1.0.21".into()],
                enabled: true,
                ..Default::default()
            }),
            2,
        );
        s.bindings.insert(
            "q1".into(),
            PortBinding {
                port: "q1".into(),
                chassis: "hv2".into(),
                up: true,
            },
        );
        s
    }

    #[test]
    fn off_switch_destinations_are_routed_through_the_attached_router() {
        let st = routed();
        let r = run(&st, "ip4.dst == 10.1.0.21 && icmp4 && ip.ttl == 64");
        assert_eq!(r.verdict, TraceVerdict::TraceDelivered as i32, "{r:#?}");
        assert_eq!(r.summary, "delivered to q1 on hv2");
        let stages: Vec<&str> = r.stages.iter().map(|s| s.stage.as_str()).collect();
        assert_eq!(
            stages,
            [
                "ingress",
                "port-security",
                "acl-in",
                "l3-entry",
                "lr-route",
                "lr-neigh",
                "lr-exit",
                "l2-lookup",
                "acl-out",
                "output"
            ]
        );
        let detail = |st: &str| {
            r.stages
                .iter()
                .find(|s| s.stage == st)
                .map(|s| (s.detail.clone(), s.object.clone()))
                .unwrap()
        };
        assert_eq!(detail("l3-entry").1, "lr");
        assert!(detail("l3-entry").0.contains("by port lr-sw"));
        assert_eq!(detail("lr-route").1, "lr-sw2");
        assert!(
            detail("lr-route").0.contains("10.1.0.0/24"),
            "{:?}",
            detail("lr-route")
        );
        assert_eq!(detail("lr-neigh").1, "q1");
        // The egress runs on the destination switch: its VNI on the tunnel.
        assert!(
            detail("output").0.contains("VNI 8"),
            "{:?}",
            detail("output")
        );
        assert!(r.microflow.contains("ip.ttl == 63"), "{}", r.microflow);
        assert!(
            r.microflow.contains("eth.src == 0a:00:00:00:02:01"),
            "{}",
            r.microflow
        );
        assert!(
            r.microflow.contains("eth.dst == 0a:00:00:00:00:21"),
            "{}",
            r.microflow
        );
    }

    #[test]
    fn static_routes_are_traced_with_the_agents_priorities() {
        use weft_proto::v1::LogicalRouterStaticRoute;
        let mut st = routed();
        let mut lr = st.routers["lr"].clone();
        let r = |p: &str, n: &str, policy: &str| LogicalRouterStaticRoute {
            ip_prefix: p.into(),
            nexthop: n.into(),
            policy: policy.into(),
            ..Default::default()
        };
        lr.static_routes = vec![
            r("192.168.0.0/16", "10.1.0.21", ""),
            r("192.168.5.0/24", "10.1.0.99", ""),
            r("172.16.0.0/12", "10.1.0.21", ""),
            r("172.16.0.0/12", "10.1.0.22", ""),
            r("10.0.0.0/8", "10.1.0.21", "src-ip"),
        ];
        st.store_router("lr", Some(lr), 3);
        let stage_of = |r: &TraceReply, name: &str| {
            r.stages
                .iter()
                .find(|s| s.stage == name)
                .map(|s| s.detail.clone())
                .unwrap_or_default()
        };
        // A /16 via q1: delivered to q1 (the next hop), not to the destination.
        let t = run(&st, "ip4.dst == 192.168.1.1 && icmp4");
        assert_eq!(t.summary, "delivered to q1 on hv2", "{t:#?}");
        assert!(
            stage_of(&t, "lr-route").starts_with(
                "static route dst-ip 192.168.0.0/16 via 10.1.0.21 out of router port lr-sw2"
            ),
            "{t:#?}"
        );
        assert!(stage_of(&t, "lr-neigh").contains("next hop 10.1.0.21 is port q1"));
        // The /24 wins; its next hop has no port: dropped at lr-neigh, naming it.
        let t = run(&st, "ip4.dst == 192.168.5.1 && icmp4");
        assert_eq!(t.verdict, TraceVerdict::TraceDropped as i32, "{t:#?}");
        assert!(
            t.summary.contains("knows no MAC for 10.1.0.99"),
            "{}",
            t.summary
        );
        // ECMP: the first next hop, saying so.
        let t = run(&st, "ip4.dst == 172.16.9.9 && icmp4");
        assert!(
            stage_of(&t, "lr-route").contains("ECMP: one of 2 next hops"),
            "{t:#?}"
        );
        // src-ip (a /8: below the dst-ip /16, longest prefix first across policies, as OVN):
        // p1 (10.0.0.11) to an address with no dst route goes to q1; a connected
        // destination still wins.
        let t = run(&st, "ip4.dst == 8.8.8.8 && icmp4");
        assert!(
            stage_of(&t, "lr-route").starts_with("static route src-ip 10.0.0.0/8"),
            "{t:#?}"
        );
        let t = run(&st, "ip4.dst == 10.1.0.21 && icmp4");
        assert!(
            stage_of(&t, "lr-route").starts_with("connected route 10.1.0.0/24"),
            "{t:#?}"
        );
        // An expiring TTL: the router says it sends time exceeded.
        let t = run(&st, "ip4.dst == 192.168.1.1 && icmp4 && ip.ttl == 1");
        assert!(
            stage_of(&t, "lr-route").contains("ICMP time exceeded from lr-sw"),
            "{t:#?}"
        );
    }

    #[test]
    fn routing_verdicts() {
        let mut st = routed();
        // The router's own addresses answer ping, nothing else.
        let r = run(&st, "ip4.dst == 10.1.0.1 && icmp4");
        assert_eq!(r.verdict, TraceVerdict::TraceDelivered as i32, "{r:#?}");
        assert!(
            r.summary.contains("echo reply to p1 from router lr"),
            "{}",
            r.summary
        );
        let r = run(&st, "ip4.dst == 10.0.0.1 && tcp");
        assert_eq!(r.verdict, TraceVerdict::TraceDropped as i32);
        // TTL 1 expires at the router.
        let r = run(&st, "ip4.dst == 10.1.0.21 && ip.ttl == 1");
        assert_eq!(r.verdict, TraceVerdict::TraceDropped as i32);
        assert!(
            r.summary.contains("TTL expired at router lr"),
            "{}",
            r.summary
        );
        // A connected network but no port with that address: unknown next hop.
        let r = run(&st, "ip4.dst == 10.1.0.99");
        assert_eq!(r.verdict, TraceVerdict::TraceDropped as i32);
        assert!(
            r.summary.contains("knows no MAC for 10.1.0.99"),
            "{}",
            r.summary
        );
        // Off every connected network: no route, naming the router.
        let r = run(&st, "ip4.dst == 8.8.8.8");
        assert_eq!(r.verdict, TraceVerdict::TraceNoRoute as i32);
        assert!(
            r.summary.contains("router lr has no route"),
            "{}",
            r.summary
        );
        // A disabled router routes nothing.
        let mut lr = st.routers["lr"].clone();
        lr.enabled = false;
        st.store_router("lr", Some(lr), 3);
        let r = run(&st, "ip4.dst == 10.1.0.21");
        assert_eq!(r.verdict, TraceVerdict::TraceNoRoute as i32);
        assert!(r.summary.contains("no enabled router"), "{}", r.summary);
    }

    #[test]
    fn bad_requests_name_what_is_wrong() {
        let st = state();
        let e = trace(&st, "ghost", Microflow::default()).unwrap_err();
        assert!(matches!(e, ApiError::NotFound(ref m) if m.contains("ghost")));
        let e = trace(&st, "p1", parse_microflow("inport == \"p2\"").unwrap()).unwrap_err();
        assert!(matches!(e, ApiError::InvalidArgument(ref m) if m.contains("p2")));
        let e = trace(&st, "p1", parse_microflow("tcp").unwrap()).unwrap_err();
        assert!(matches!(e, ApiError::InvalidArgument(ref m) if m.contains("eth.dst")));
    }
}
