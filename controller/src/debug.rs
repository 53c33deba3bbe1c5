//! The controller's side of the agents' debug service (`weft.v1.AgentDebug`): the Northbound
//! `Flows`, `AgentInfo` and `PhysicalTrace` RPCs fan out to each chassis' `debug_addr` with a
//! timeout each. A chassis that does not answer in time (or has no debug address) is reported
//! in its entry while the others still answer. `PhysicalTrace` runs the logical trace
//! ([`crate::trace::trace`]), then `ofproto/trace` on the source chassis and, for each tunnel
//! the packet leaves by, on the chassis it reaches, and lists where the two answers differ
//! ([`disagreements`], pure). Start with [`flows`], [`agent_info`], [`physical_trace`].

use std::future::Future;
use std::time::Duration;

use weft_proto::model::fnv1a64;
use weft_proto::v1::agent_debug_client::AgentDebugClient;
use weft_proto::v1::{
    AgentFlowsRequest, AgentInfoQuery, AgentInfoReply, AgentInfoRequest, AgentTraceRequest,
    ChassisFlows, ChassisInfo, FlowsReply, FlowsRequest, PhysicalTracePart, PhysicalTraceReply,
    PhysicalTraceRequest, TraceReply, TraceVerdict,
};

use crate::error::{ApiError, ApiResult};
use crate::intent::Intent;
use crate::state::ClusterState;
use crate::validate::validate_name;

/// Per-chassis timeout when the request gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);
/// Longest per-chassis timeout a request may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// Most tunnel hops a physical trace follows.
const MAX_HOPS: usize = 8;
/// Most agents asked at once.
const MAX_CONCURRENT: usize = 64;

/// Runs `asks` with at most [`MAX_CONCURRENT`] in flight, results in order.
async fn fan_out<T, F: Future<Output = T>>(asks: impl Iterator<Item = F>) -> Vec<T> {
    use futures::StreamExt;
    futures::stream::iter(asks)
        .buffered(MAX_CONCURRENT)
        .collect()
        .await
}

/// Errors reaching one agent (reported in that chassis' entry, not as the RPC's status).
#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error(
        "chassis {0} has no debug address (its agent runs without --debug-listen, or is older)"
    )]
    NoAddress(String),
    #[error("chassis {chassis}: did not answer within {ms} ms")]
    Timeout { chassis: String, ms: u128 },
    #[error("chassis {chassis} ({addr}): {reason}")]
    Unreachable {
        chassis: String,
        addr: String,
        reason: String,
    },
    #[error("chassis {chassis}: {message}")]
    Agent { chassis: String, message: String },
}

/// Cookie kinds (the agent's `pipeline::cookie_kind`): the high byte of every flow's cookie.
const COOKIE_SWITCH: u8 = 0x01;
const COOKIE_PORT: u8 = 0x02;

/// The cookie of an object's flows, as the agent computes it: `kind << 56 | fnv1a64(name)`
/// in the low 56 bits (pure).
pub fn cookie(kind_byte: u8, name: &str) -> u64 {
    (u64::from(kind_byte) << 56) | (fnv1a64(name.as_bytes()) & 0x00ff_ffff_ffff_ffff)
}

/// Resolves FlowsRequest's object to (cookie, kind, name).
pub fn resolve_object(st: &ClusterState, req: &FlowsRequest) -> ApiResult<(u64, String, String)> {
    if req.kind.is_empty() && req.name.is_empty() {
        // A cookie, or (0) every flow.
        return Ok((req.cookie, String::new(), String::new()));
    }
    validate_name("name", &req.name)?;
    let kind = if req.kind.is_empty() {
        if st.ports.contains_key(&req.name) {
            crate::kinds::port::NAME
        } else if st.switches.contains_key(&req.name) {
            crate::kinds::switch::NAME
        } else {
            return Err(ApiError::NotFound(format!(
                "no port or switch named {:?} (object)",
                req.name
            )));
        }
    } else {
        crate::objects::kind_or_err("kind", &req.kind)?.name()
    };
    let (byte, exists) = match kind {
        k if k == crate::kinds::port::NAME => (COOKIE_PORT, st.ports.contains_key(&req.name)),
        k if k == crate::kinds::switch::NAME => {
            (COOKIE_SWITCH, st.switches.contains_key(&req.name))
        }
        other => {
            return Err(ApiError::InvalidArgument(format!(
            "invalid kind {other:?}: only Logical_Switch and Logical_Switch_Port own flows today"
        )))
        }
    };
    if !exists {
        return Err(ApiError::NotFound(format!(
            "{kind} {:?} not found",
            req.name
        )));
    }
    Ok((cookie(byte, &req.name), kind.to_string(), req.name.clone()))
}

fn timeout_of(ms: u32) -> Duration {
    match ms {
        0 => DEFAULT_TIMEOUT,
        n => Duration::from_millis(u64::from(n)).min(MAX_TIMEOUT),
    }
}

/// The chassis to ask: the named one (NotFound naming it) or every registered one.
fn targets(st: &ClusterState, chassis: &str) -> ApiResult<Vec<(String, String)>> {
    if chassis.is_empty() {
        return Ok(st
            .chassis
            .values()
            .map(|c| (c.name.clone(), c.debug_addr.clone()))
            .collect());
    }
    match st.chassis.get(chassis) {
        Some(c) => Ok(vec![(c.name.clone(), c.debug_addr.clone())]),
        None => Err(ApiError::NotFound(format!(
            "chassis {chassis:?} not found (chassis)"
        ))),
    }
}

/// How the controller dials agents' debug services under TLS (set once by the binary): the
/// CA, and the controller's certificate as the client identity. The agent's certificate is
/// checked for the chassis name (its SAN DNS name), whatever address the record gives.
static AGENT_TLS: std::sync::OnceLock<tonic::transport::ClientTlsConfig> =
    std::sync::OnceLock::new();

/// Dial agents' debug services with TLS (`weft-controller` without `--insecure`).
pub fn set_agent_tls(tls: tonic::transport::ClientTlsConfig) {
    let _ = AGENT_TLS.set(tls);
}

/// Runs `f` against one chassis' agent within `timeout` (connect included).
async fn ask<T, F, Fut>(chassis: &str, addr: &str, timeout: Duration, f: F) -> Result<T, DebugError>
where
    F: FnOnce(AgentDebugClient<tonic::transport::Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    if addr.is_empty() {
        return Err(DebugError::NoAddress(chassis.to_string()));
    }
    let unreachable = |reason: String| DebugError::Unreachable {
        chassis: chassis.to_string(),
        addr: addr.to_string(),
        reason,
    };
    let work = async {
        let tls = AGENT_TLS.get();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut ep = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(timeout)
            .timeout(timeout);
        if let Some(tls) = tls {
            ep = ep
                .tls_config(tls.clone().domain_name(chassis))
                .map_err(|e| unreachable(e.to_string()))?;
        }
        let ch = ep.connect().await.map_err(|e| unreachable(e.to_string()))?;
        let client = AgentDebugClient::new(ch).max_decoding_message_size(16 << 20);
        f(client)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| DebugError::Agent {
                chassis: chassis.to_string(),
                message: s.message().to_string(),
            })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(DebugError::Timeout {
            chassis: chassis.to_string(),
            ms: timeout.as_millis(),
        }),
    }
}

/// Northbound `Flows`.
pub async fn flows(intent: &Intent, req: FlowsRequest) -> ApiResult<FlowsReply> {
    let st = intent.read_state().await?;
    let (cookie, kind, name) = resolve_object(&st, &req)?;
    let timeout = timeout_of(req.timeout_ms);
    let asks = targets(&st, &req.chassis)?
        .into_iter()
        .map(|(c, addr)| async move {
            let r = ask(&c, &addr, timeout, |mut cl| async move {
                cl.flows(AgentFlowsRequest { cookie, limit: 0 }).await
            })
            .await;
            match r {
                Ok(reply) => ChassisFlows {
                    chassis: c,
                    reply: Some(reply),
                    error: String::new(),
                },
                Err(e) => ChassisFlows {
                    chassis: c,
                    reply: None,
                    error: e.to_string(),
                },
            }
        });
    let chassis = fan_out(asks).await;
    Ok(FlowsReply {
        cookie,
        kind,
        name,
        chassis,
    })
}

/// Northbound `AgentInfo`.
pub async fn agent_info(intent: &Intent, req: AgentInfoQuery) -> ApiResult<AgentInfoReply> {
    let st = intent.read_state().await?;
    let timeout = timeout_of(req.timeout_ms);
    let asks = targets(&st, &req.chassis)?.into_iter().map(|(c, addr)| {
        let alive = st.alive.contains(&c);
        async move {
            let r = ask(&c, &addr, timeout, |mut cl| async move {
                cl.info(AgentInfoRequest {}).await
            })
            .await;
            let (info, error) = match r {
                Ok(i) => (Some(i), String::new()),
                Err(e) => (None, e.to_string()),
            };
            ChassisInfo {
                chassis: c,
                info,
                error,
                alive,
            }
        }
    });
    Ok(AgentInfoReply {
        chassis: fan_out(asks).await,
    })
}

/// Northbound `PhysicalTrace`.
pub async fn physical_trace(
    intent: &Intent,
    req: PhysicalTraceRequest,
) -> ApiResult<PhysicalTraceReply> {
    validate_name("inport", &req.inport)?;
    let flow = if req.microflow.trim().is_empty() {
        Default::default()
    } else {
        weft_proto::model::expr::parse_microflow(&req.microflow).map_err(|e| {
            ApiError::InvalidArgument(format!("invalid microflow {:?}: {e}", req.microflow))
        })?
    };
    let st = intent.read_state().await?;
    let logical = crate::trace::trace(&st, &req.inport, flow)?;
    let timeout = timeout_of(req.timeout_ms);
    let mut physical = Vec::new();
    let src = st
        .bindings
        .get(&req.inport)
        .map(|b| b.chassis.clone())
        .unwrap_or_default();
    if !src.is_empty() {
        let addr = st
            .chassis
            .get(&src)
            .map(|c| c.debug_addr.clone())
            .unwrap_or_default();
        let areq = AgentTraceRequest {
            inport: req.inport.clone(),
            tunnel: None,
            // As the packet enters (a routed one still addressed to the router port).
            microflow: logical.ingress_microflow.clone(),
        };
        let first = trace_part(&src, &addr, format!("port {}", req.inport), areq, timeout).await;
        let tunnels = first
            .reply
            .as_ref()
            .map(|r| r.tunnels.clone())
            .unwrap_or_default();
        physical.push(first);
        let hops = tunnels.into_iter().take(MAX_HOPS).map(|t| {
            let dst = st
                .chassis
                .values()
                .find(|c| c.encap_ip == t.tun_dst)
                .cloned();
            let microflow = logical.microflow.clone();
            let src = src.clone();
            async move {
                let Some(c) = dst else {
                    return PhysicalTracePart {
                        chassis: String::new(),
                        entry: format!("tunnel from {src} to {}", t.tun_dst),
                        reply: None,
                        error: format!("no chassis has encap_ip {}", t.tun_dst),
                    };
                };
                let entry = format!("tunnel from {src} ({}), tun_id {:#x}", t.tun_src, t.tun_id);
                let areq = AgentTraceRequest {
                    inport: String::new(),
                    tunnel: Some(t),
                    microflow,
                };
                trace_part(&c.name, &c.debug_addr, entry, areq, timeout).await
            }
        });
        physical.extend(futures::future::join_all(hops).await);
    }
    let disagreements = disagreements(&logical, &physical);
    Ok(PhysicalTraceReply {
        logical: Some(logical),
        physical,
        disagreements,
    })
}

async fn trace_part(
    chassis: &str,
    addr: &str,
    entry: String,
    req: AgentTraceRequest,
    timeout: Duration,
) -> PhysicalTracePart {
    let r = ask(chassis, addr, timeout, |mut cl| async move {
        cl.physical_trace(req).await
    })
    .await;
    let (reply, error) = match r {
        Ok(r) => (Some(r), String::new()),
        Err(e) => (None, e.to_string()),
    };
    PhysicalTracePart {
        chassis: chassis.to_string(),
        entry,
        reply,
        error,
    }
}

/// Where the logical trace and the chassis' physical traces differ, one sentence each
/// (pure). Parts without a reply are not compared (their error says why).
pub fn disagreements(logical: &TraceReply, physical: &[PhysicalTracePart]) -> Vec<String> {
    let mut out = Vec::new();
    let answered: Vec<_> = physical
        .iter()
        .filter_map(|p| p.reply.as_ref().map(|r| (p, r)))
        .collect();
    if answered.is_empty() {
        return out;
    }
    let delivered_to = |port: &str, chassis: &str| {
        answered
            .iter()
            .any(|(p, r)| p.chassis == chassis && r.delivered_ports.iter().any(|d| d == port))
    };
    let ends = |chassis: &str| -> String {
        answered
            .iter()
            .filter(|(p, _)| p.chassis == chassis)
            .map(|(_, r)| {
                let last = r
                    .hits
                    .last()
                    .map(|h| {
                        if h.r#match.is_empty() {
                            format!(
                                " at table {}'s default flow (no flow there matches)",
                                h.table
                            )
                        } else {
                            format!(" after table {} ({})", h.table, h.r#match)
                        }
                    })
                    .unwrap_or_default();
                format!("{}{last}", r.outcome)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verdict = TraceVerdict::try_from(logical.verdict).unwrap_or(TraceVerdict::TraceDropped);
    if verdict == TraceVerdict::TraceDelivered {
        for o in &logical.outputs {
            if TraceVerdict::try_from(o.verdict) != Ok(TraceVerdict::TraceDelivered)
                || !o.chassis_alive
            {
                continue;
            }
            let traced = answered.iter().any(|(p, _)| p.chassis == o.chassis);
            if !traced {
                out.push(format!(
                    "logical trace delivers to {} on {}, but the physical trace never reaches {}",
                    o.port, o.chassis, o.chassis
                ));
            } else if !delivered_to(&o.port, &o.chassis) {
                out.push(format!(
                    "logical trace delivers to {} on {}, but the flows there end in {}",
                    o.port,
                    o.chassis,
                    ends(&o.chassis)
                ));
            }
        }
    } else {
        for (p, r) in &answered {
            if !r.delivered_ports.is_empty() {
                out.push(format!(
                    "logical trace says {} ({}), but on {} the flows deliver to {}",
                    verdict_word(verdict),
                    logical.summary,
                    p.chassis,
                    r.delivered_ports.join(", ")
                ));
            }
        }
    }
    out
}

fn verdict_word(v: TraceVerdict) -> &'static str {
    match v {
        TraceVerdict::TraceDelivered => "delivered",
        TraceVerdict::TraceDropped => "dropped",
        TraceVerdict::TraceNoBinding => "no-binding",
        TraceVerdict::TraceChassisDown => "chassis-down",
        TraceVerdict::TraceNoRoute => "no-route",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weft_proto::v1::{AgentTraceReply, TraceHit, TraceOutput};

    #[test]
    fn cookie_matches_the_agents_layout() {
        let c = cookie(COOKIE_PORT, "p1");
        assert_eq!(c >> 56, 0x02);
        assert_eq!(
            c & 0x00ff_ffff_ffff_ffff,
            fnv1a64(b"p1") & 0x00ff_ffff_ffff_ffff
        );
        assert_ne!(cookie(COOKIE_SWITCH, "p1"), c);
    }

    fn logical_delivered() -> TraceReply {
        TraceReply {
            verdict: TraceVerdict::TraceDelivered as i32,
            summary: "delivered to p2 on host2".into(),
            outputs: vec![TraceOutput {
                port: "p2".into(),
                chassis: "host2".into(),
                chassis_alive: true,
                verdict: TraceVerdict::TraceDelivered as i32,
            }],
            ..Default::default()
        }
    }

    fn part(chassis: &str, outcome: &str, delivered: &[&str]) -> PhysicalTracePart {
        PhysicalTracePart {
            chassis: chassis.into(),
            entry: String::new(),
            reply: Some(AgentTraceReply {
                outcome: outcome.into(),
                delivered_ports: delivered.iter().map(|s| s.to_string()).collect(),
                hits: vec![TraceHit {
                    table: 0,
                    r#match: "in_port=1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            error: String::new(),
        }
    }

    #[test]
    fn agreement_and_disagreement() {
        let l = logical_delivered();
        let ok = [
            part("host1", "tunnelled", &[]),
            part("host2", "delivered", &["p2"]),
        ];
        assert!(disagreements(&l, &ok).is_empty());
        let stale = [
            part("host1", "tunnelled", &[]),
            part("host2", "dropped", &[]),
        ];
        let d = disagreements(&l, &stale);
        assert_eq!(d.len(), 1);
        assert!(
            d[0].contains("p2 on host2") && d[0].contains("dropped after table 0"),
            "{d:?}"
        );
        let short = [part("host1", "dropped", &[])];
        assert!(disagreements(&l, &short)[0].contains("never reaches host2"));
        // No answer at all: nothing to compare.
        let none = [PhysicalTracePart {
            chassis: "host1".into(),
            error: "did not answer".into(),
            ..Default::default()
        }];
        assert!(disagreements(&l, &none).is_empty());
        let mut dropped = logical_delivered();
        dropped.verdict = TraceVerdict::TraceDropped as i32;
        let d = disagreements(&dropped, &[part("host1", "delivered", &["p3"])]);
        assert!(d[0].contains("dropped") && d[0].contains("p3"), "{d:?}");
    }
}
