//! Load balancers (OVN's `Load_Balancer`): `lb-add`, `lb-del`, `lb-list`, and attaching them
//! to switches with `ls-lb-add`, `ls-lb-del`, `ls-lb-list` (the switch's `load_balancer`
//! column), and to routers with `lr-lb-add`, `lr-lb-del`, `lr-lb-list` (the router's
//! `load_balancer` column; the VIPs are DNATed on the router's gateway chassis). VIPs and backends are checked and spelled canonically with the shared model
//! (`weft_proto::model::load_balancer`) before they are sent; the controller checks again.
//! Options: `set Load_Balancer LB options:affinity_timeout=S options:reject=true`.
//! Health checks: `lb-hc-add LB VIP [--interval=S] [--timeout=S] [--success=N]
//! [--failure=N]` and `lb-hc-del LB VIP` (the LB's `health_check` column), `lb-list --status`
//! (each checked backend's state as the agents reported it).

use clap::Subcommand;
use serde_json::json;
use weft_proto::model::load_balancer::{
    parse_endpoint, parse_health_check, parse_protocol, parse_vip_rule, HealthCheck,
};
use weft_proto::v1 as pb;

use super::db::{list_request, records_of};
use super::{column_op, delete, insert, update, CmdError, Noun, PlanCtx, Read, Reply, Step};
use crate::args::Format;
use crate::format::{json_text, render_table, Cell, Out, Table};

pub const KIND: &str = "Load_Balancer";
const SWITCH: &str = "Logical_Switch";
const ROUTER: &str = "Logical_Router";

#[derive(Debug, Clone, Subcommand)]
pub enum LoadBalancerCmd {
    /// Create load balancer LB with VIP[:PORT] spread over backends IP[:PORT][,...]
    /// (protocol tcp, udp or sctp; tcp by default). With --may-exist, add or replace the VIP
    /// on an existing LB.
    LbAdd {
        /// Load balancer name.
        lb: String,
        /// The VIP, IP or IP:PORT ([IPv6]:PORT).
        vip: String,
        /// Backends, IP[:PORT][,IP[:PORT]...].
        backends: String,
        /// tcp, udp or sctp.
        protocol: Option<String>,
        /// An existing LB gets the VIP added (or its backends replaced).
        #[arg(long)]
        may_exist: bool,
    },
    /// Delete load balancer LB, or only its VIP.
    LbDel {
        /// Load balancer name.
        lb: String,
        /// Only this VIP.
        vip: Option<String>,
        /// A missing LB is not an error.
        #[arg(long)]
        if_exists: bool,
    },
    /// List load balancers (or one) with their VIPs; with --status, each checked backend's
    /// state.
    LbList {
        /// Only this LB.
        lb: Option<String>,
        /// One row per backend with its health (online, offline, or "-" when unchecked or
        /// not reported yet).
        #[arg(long)]
        status: bool,
    },
    /// Check the backends of VIP of load balancer LB (TCP connect or UDP, from the service
    /// address, by the agent of each backend's chassis); replaces an existing check.
    LbHcAdd {
        /// Load balancer name.
        lb: String,
        /// One of the LB's VIPs, with a port.
        vip: String,
        /// Seconds between probes (default 5).
        #[arg(long)]
        interval: Option<u32>,
        /// Seconds a probe waits for an answer (default 3).
        #[arg(long)]
        timeout: Option<u32>,
        /// Successes in a row that bring a backend online (default 1).
        #[arg(long)]
        success: Option<u32>,
        /// Failures in a row that take it offline (default 3).
        #[arg(long)]
        failure: Option<u32>,
    },
    /// Remove the health check of VIP of load balancer LB.
    LbHcDel {
        /// Load balancer name.
        lb: String,
        /// The VIP.
        vip: String,
    },
    /// Apply load balancer LB to switch SWITCH.
    LsLbAdd {
        /// Switch name.
        switch: String,
        /// Load balancer name.
        lb: String,
        /// LB already on the switch is not an error (it never is; accepted for ovn-nbctl).
        #[arg(long)]
        may_exist: bool,
    },
    /// Remove load balancer LB (or every LB) from switch SWITCH.
    LsLbDel {
        /// Switch name.
        switch: String,
        /// Load balancer name.
        lb: Option<String>,
        /// LB not on the switch is not an error (it never is; accepted for ovn-nbctl).
        #[arg(long)]
        if_exists: bool,
    },
    /// List the load balancers of switch SWITCH.
    LsLbList {
        /// Switch name.
        switch: String,
    },
    /// Apply load balancer LB to router ROUTER (its VIPs are DNATed on the router's active
    /// gateway chassis, for traffic entering by the gateway port).
    LrLbAdd {
        /// Router name.
        router: String,
        /// Load balancer name.
        lb: String,
        /// LB already on the router is not an error (it never is; accepted for ovn-nbctl).
        #[arg(long)]
        may_exist: bool,
    },
    /// Remove load balancer LB (or every LB) from router ROUTER.
    LrLbDel {
        /// Router name.
        router: String,
        /// Load balancer name.
        lb: Option<String>,
        /// LB not on the router is not an error (it never is; accepted for ovn-nbctl).
        #[arg(long)]
        if_exists: bool,
    },
    /// List the load balancers of router ROUTER.
    LrLbList {
        /// Router name.
        router: String,
    },
}

/// The op that adds `lb` to (or with `None` under `remove`, clears) the `load_balancer`
/// column of `kind` `entity`.
fn attach_op(kind: &str, entity: &str, lb: Option<&String>, remove: bool) -> pb::Op {
    let op = match (lb, remove) {
        (Some(lb), false) => column_op(
            pb::column_op::Action::Add,
            "load_balancer",
            None,
            vec![lb.clone()],
        ),
        (Some(lb), true) => column_op(
            pb::column_op::Action::Remove,
            "load_balancer",
            None,
            vec![lb.clone()],
        ),
        (None, _) => column_op(pb::column_op::Action::Clear, "load_balancer", None, vec![]),
    };
    update(kind, entity, vec![op], false)
}

use super::usage_error as usage;

impl Noun for LoadBalancerCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        let write = super::revision_write;
        Ok(match self {
            LoadBalancerCmd::LbAdd {
                lb,
                vip,
                backends,
                protocol,
                may_exist,
            } => {
                let rule = parse_vip_rule("vip", vip, backends).map_err(|e| usage("lb-add", e))?;
                let proto = parse_protocol("protocol", protocol.as_deref().unwrap_or(""))
                    .map_err(|e| usage("lb-add", e))?;
                let vip = rule.vip.to_string();
                let b: Vec<String> = rule.backends.iter().map(|e| e.to_string()).collect();
                let b = b.join(",");
                if *may_exist {
                    write(vec![
                        insert(
                            pb::object::Kind::LoadBalancer(pb::LoadBalancer {
                                name: lb.clone(),
                                protocol: proto.to_string(),
                                ..Default::default()
                            }),
                            true,
                        ),
                        update(
                            KIND,
                            lb,
                            vec![column_op(
                                pb::column_op::Action::Set,
                                "vips",
                                Some(&vip),
                                vec![b],
                            )],
                            false,
                        ),
                    ])
                } else {
                    write(vec![insert(
                        pb::object::Kind::LoadBalancer(pb::LoadBalancer {
                            name: lb.clone(),
                            vips: [(vip, b)].into(),
                            protocol: proto.to_string(),
                            ..Default::default()
                        }),
                        false,
                    )])
                }
            }
            LoadBalancerCmd::LbDel { lb, vip, if_exists } => match vip {
                None => write(vec![delete(KIND, lb, *if_exists)]),
                Some(v) => {
                    let v = parse_endpoint("vip", v)
                        .map_err(|e| usage("lb-del", e))?
                        .to_string();
                    write(vec![update(
                        KIND,
                        lb,
                        vec![column_op(
                            pb::column_op::Action::Remove,
                            "vips",
                            None,
                            vec![v],
                        )],
                        *if_exists,
                    )])
                }
            },
            LoadBalancerCmd::LbList { lb, status } => Step::Read(Read {
                calls: vec![list_request(KIND, &lb.iter().cloned().collect::<Vec<_>>())],
                render: if *status {
                    Box::new(render_status)
                } else {
                    Box::new(render_list)
                },
            }),
            LoadBalancerCmd::LbHcAdd {
                lb,
                vip,
                interval,
                timeout,
                success,
                failure,
            } => {
                let v = parse_endpoint("vip", vip)
                    .map_err(|e| usage("lb-hc-add", e))?
                    .to_string();
                let d = HealthCheck::default();
                let text = format!(
                    "interval={},timeout={},success={},failure={}",
                    interval.unwrap_or(d.interval),
                    timeout.unwrap_or(d.timeout),
                    success.unwrap_or(d.success),
                    failure.unwrap_or(d.failure)
                );
                let hc =
                    parse_health_check("health_check", &text).map_err(|e| usage("lb-hc-add", e))?;
                write(vec![update(
                    KIND,
                    lb,
                    vec![column_op(
                        pb::column_op::Action::Set,
                        "health_check",
                        Some(&v),
                        vec![hc.to_string()],
                    )],
                    false,
                )])
            }
            LoadBalancerCmd::LbHcDel { lb, vip } => {
                let v = parse_endpoint("vip", vip)
                    .map_err(|e| usage("lb-hc-del", e))?
                    .to_string();
                write(vec![update(
                    KIND,
                    lb,
                    vec![column_op(
                        pb::column_op::Action::Remove,
                        "health_check",
                        None,
                        vec![v],
                    )],
                    false,
                )])
            }
            LoadBalancerCmd::LsLbAdd { switch, lb, .. } => {
                write(vec![attach_op(SWITCH, switch, Some(lb), false)])
            }
            LoadBalancerCmd::LsLbDel { switch, lb, .. } => {
                write(vec![attach_op(SWITCH, switch, lb.as_ref(), true)])
            }
            LoadBalancerCmd::LrLbAdd { router, lb, .. } => {
                write(vec![attach_op(ROUTER, router, Some(lb), false)])
            }
            LoadBalancerCmd::LrLbDel { router, lb, .. } => {
                write(vec![attach_op(ROUTER, router, lb.as_ref(), true)])
            }
            LoadBalancerCmd::LrLbList { router } => Step::Read(Read {
                calls: vec![
                    list_request(ROUTER, std::slice::from_ref(router)),
                    list_request(KIND, &[]),
                ],
                render: Box::new(render_router_list),
            }),
            LoadBalancerCmd::LsLbList { switch } => Step::Read(Read {
                calls: vec![
                    list_request(SWITCH, std::slice::from_ref(switch)),
                    list_request(KIND, &[]),
                ],
                render: Box::new(render_switch_list),
            }),
        })
    }
}

fn lbs(replies: &[Reply], i: usize) -> Result<(Vec<pb::LoadBalancer>, i64), CmdError> {
    let (mut out, revision) = super::db::objects_of(
        replies,
        i,
        |k| match k {
            pb::object::Kind::LoadBalancer(l) => Some(l),
            _ => None,
        },
        "lb-list: a record is not a load balancer",
    )?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((out, revision))
}

/// The table ovn-nbctl's lb-list prints (without UUIDs): one row per VIP.
fn table(lbs: &[pb::LoadBalancer], out: &Out, revision: i64) -> Result<String, CmdError> {
    if out.json() {
        let v: Vec<_> = lbs
            .iter()
            .map(|l| serde_json::to_value(crate::json::LoadBalancer::from(l)).unwrap_or_default())
            .collect();
        return Ok(json_text(
            &json!({"load_balancers": v, "revision": revision}),
            out,
        )?);
    }
    let mut t = Table::new(&["LB", "PROTO", "VIP", "IPs"]);
    for l in lbs {
        let mut vips: Vec<(&String, &String)> = l.vips.iter().collect();
        vips.sort();
        if vips.is_empty() {
            t.rows.push(vec![
                Cell::text(&l.name),
                Cell::text(&l.protocol),
                Cell::text(""),
                Cell::text(""),
            ]);
        }
        for (v, b) in vips {
            t.rows.push(vec![
                Cell::text(&l.name),
                Cell::text(&l.protocol),
                Cell::text(v),
                Cell::text(b),
            ]);
        }
    }
    Ok(render_table(&t, out, Format::Table)?)
}

fn render_list(replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let (lbs, revision) = lbs(replies, 0)?;
    table(&lbs, out, revision)
}

/// `lb-list --status`: one row per backend, with its health check state.
fn render_status(replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let (lbs, revision) = lbs(replies, 0)?;
    if out.json() {
        return table(&lbs, out, revision);
    }
    let mut t = Table::new(&["LB", "PROTO", "VIP", "BACKEND", "STATUS"]);
    for l in &lbs {
        let mut vips: Vec<(&String, &String)> = l.vips.iter().collect();
        vips.sort();
        for (v, backends) in vips {
            for b in backends.split(',').filter(|b| !b.is_empty()) {
                let st = l
                    .status
                    .get(&format!("{v} {b}"))
                    .map(String::as_str)
                    .unwrap_or("-");
                t.rows.push(vec![
                    Cell::text(&l.name),
                    Cell::text(&l.protocol),
                    Cell::text(v),
                    Cell::text(b),
                    Cell::text(st),
                ]);
            }
        }
    }
    Ok(render_table(&t, out, Format::Table)?)
}

/// `lr-lb-list ROUTER`: the router's LBs, as `lb-list` prints them.
fn render_router_list(replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    render_attached(
        replies,
        out,
        "lr-lb-list: the router is not in the reply",
        |k| match k {
            pb::object::Kind::LogicalRouter(r) => Some(r.load_balancer.clone()),
            _ => None,
        },
    )
}

/// `ls-lb-list SWITCH`: the switch's LBs, as `lb-list` prints them.
fn render_switch_list(replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    render_attached(
        replies,
        out,
        "ls-lb-list: the switch is not in the reply",
        |k| match k {
            pb::object::Kind::LogicalSwitch(s) => Some(s.load_balancer.clone()),
            _ => None,
        },
    )
}

/// The LBs named by the `load_balancer` column of the object in reply 0 (`names_of`), out
/// of all LBs in reply 1, as `lb-list` prints them.
fn render_attached(
    replies: &[Reply],
    out: &Out,
    missing: &'static str,
    names_of: impl Fn(&pb::object::Kind) -> Option<Vec<String>>,
) -> Result<String, CmdError> {
    let r = records_of(replies, 0)?;
    let names = r
        .records
        .first()
        .and_then(|r| r.object.as_ref())
        .and_then(|o| o.kind.as_ref())
        .and_then(names_of)
        .ok_or(CmdError::MalformedReply(missing))?;
    let (all, revision) = lbs(replies, 1)?;
    let mine: Vec<pb::LoadBalancer> = all
        .into_iter()
        .filter(|l| names.contains(&l.name))
        .collect();
    table(&mine, out, revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    #[test]
    fn commands_become_ops() {
        let w = write(&[
            "lb-add",
            "web",
            "10.96.0.10:080",
            "10.0.0.5:80, 10.0.0.6:80",
            "UDP",
        ]);
        let Some(pb::op::Op::Insert(i)) = &w.ops[0].op else {
            panic!()
        };
        let Some(pb::object::Kind::LoadBalancer(l)) =
            i.object.as_ref().and_then(|o| o.kind.clone())
        else {
            panic!()
        };
        assert_eq!(l.vips["10.96.0.10:80"], "10.0.0.5:80,10.0.0.6:80");
        assert_eq!((l.protocol.as_str(), i.may_exist), ("udp", false));
        let w = write(&[
            "lb-add",
            "--may-exist",
            "web",
            "[fd00::10]:80",
            "[fd00::5]:80",
        ]);
        assert_eq!(w.ops.len(), 2);
        let Some(pb::op::Op::Update(u)) = &w.ops[1].op else {
            panic!()
        };
        assert_eq!(
            (u.columns[0].key.as_str(), u.columns[0].values[0].as_str()),
            ("[fd00::10]:80", "[fd00::5]:80")
        );
        let w = write(&["lb-del", "web", "10.96.0.10:80"]);
        let Some(pb::op::Op::Update(u)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(u.columns[0].action, pb::column_op::Action::Remove as i32);
        let w = write(&["ls-lb-add", "ls1", "web"]);
        let Some(pb::op::Op::Update(u)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(
            (u.kind.as_str(), u.columns[0].column.as_str()),
            (SWITCH, "load_balancer")
        );
        let w = write(&["ls-lb-del", "ls1"]);
        let Some(pb::op::Op::Update(u)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(u.columns[0].action, pb::column_op::Action::Clear as i32);
        assert_eq!(read(&["ls-lb-list", "ls1"]).calls.len(), 2);
        let w = write(&["lr-lb-add", "lr1", "web", "--may-exist"]);
        let Some(pb::op::Op::Update(u)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(
            (
                u.kind.as_str(),
                u.name.as_str(),
                u.columns[0].column.as_str(),
                u.columns[0].action,
                u.columns[0].values[0].as_str()
            ),
            (
                ROUTER,
                "lr1",
                "load_balancer",
                pb::column_op::Action::Add as i32,
                "web"
            )
        );
        let w = write(&["lr-lb-del", "lr1", "web"]);
        let Some(pb::op::Op::Update(u)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(u.columns[0].action, pb::column_op::Action::Remove as i32);
        let w = write(&["lr-lb-del", "lr1"]);
        let Some(pb::op::Op::Update(u)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(u.columns[0].action, pb::column_op::Action::Clear as i32);
        assert_eq!(read(&["lr-lb-list", "lr1"]).calls.len(), 2);
        assert_eq!(read(&["lb-list"]).calls.len(), 1);
        assert_eq!(read(&["lb-list", "--status", "web"]).calls.len(), 1);
        let w = write(&[
            "lb-hc-add",
            "web",
            "10.96.0.10:080",
            "--interval=2",
            "--failure=2",
        ]);
        let Some(pb::op::Op::Update(u)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(
            (
                u.columns[0].column.as_str(),
                u.columns[0].key.as_str(),
                u.columns[0].values[0].as_str()
            ),
            (
                "health_check",
                "10.96.0.10:80",
                "interval=2,timeout=3,success=1,failure=2"
            )
        );
        let w = write(&["lb-hc-del", "web", "10.96.0.10:80"]);
        let Some(pb::op::Op::Update(u)) = &w.ops[0].op else {
            panic!()
        };
        assert_eq!(u.columns[0].action, pb::column_op::Action::Remove as i32);
    }

    #[test]
    fn bad_input_is_a_usage_error_naming_the_value() {
        for (args, value) in [
            (
                &["lb-add", "web", "10.96.0.300:80", "10.0.0.5"][..],
                "10.96.0.300:80",
            ),
            (
                &["lb-add", "web", "10.96.0.10:0", "10.0.0.5"][..],
                "10.96.0.10:0",
            ),
            (
                &["lb-add", "web", "10.96.0.10:80", "10.0.0.5,[fd00::1]"][..],
                "fd00::1",
            ),
            (
                &["lb-add", "web", "10.96.0.10:80", "10.0.0.5", "icmp"][..],
                "icmp",
            ),
            (
                &["lb-add", "web", "10.96.0.10", "10.0.0.5:80"][..],
                "10.0.0.5:80",
            ),
            (
                &["lb-hc-add", "web", "10.96.0.10:80", "--interval=0"][..],
                "0",
            ),
            (&["lb-hc-add", "web", "x:80"][..], "x:80"),
        ] {
            let e = plan_err(args);
            assert!(matches!(e, CmdError::Usage { .. }), "{args:?}: {e}");
            assert!(e.to_string().contains(value), "{args:?}: {e}");
        }
    }
}
