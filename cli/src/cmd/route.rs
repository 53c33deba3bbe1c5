//! Static routes: `lr-route-add`, `lr-route-del`, `lr-route-list`, as ovn-nbctl has them.
//! Routes are the router's `static_routes` column; add and del are column ops whose values
//! carry the command's options ([`weft_proto::model::route`]), so the controller applies
//! ovn-nbctl's rules (`--ecmp`, `--may-exist`, deletion by prefix) inside the transaction,
//! and `--` chains work.

use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use weft_proto::model::route::{Policy, RouteAdd, RouteDel, StaticRoute};
use weft_proto::v1 as pb;

use super::db::{list_request, named_record};
use super::{
    column_op, render_revision, update, CmdError, Noun, PlanCtx, Read, Reply, Step, Write,
};
use crate::format::{json_text, Out};

pub const KIND: &str = super::router::KIND;
const COLUMN: &str = "static_routes";

/// `--policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    DstIp,
    SrcIp,
}

impl From<PolicyArg> for Policy {
    fn from(p: PolicyArg) -> Policy {
        match p {
            PolicyArg::DstIp => Policy::DstIp,
            PolicyArg::SrcIp => Policy::SrcIp,
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum RouteCmd {
    /// Add a static route: packets to PREFIX (or from it, --policy=src-ip) go to NEXTHOP,
    /// out of PORT (default: the router port whose network contains NEXTHOP).
    LrRouteAdd {
        /// Router name.
        router: String,
        /// IPv4 prefix, e.g. 10.9.0.0/16 (an address alone is a /32).
        prefix: String,
        /// IPv4 next hop.
        nexthop: String,
        /// Output router port.
        port: Option<String>,
        /// Another next hop for a prefix that already has one (ECMP).
        #[arg(long)]
        ecmp: bool,
        /// A route for the prefix existing is not an error: it is updated (without --ecmp).
        #[arg(long)]
        may_exist: bool,
        /// Match the destination (default) or the source address.
        #[arg(long, value_enum)]
        policy: Option<PolicyArg>,
    },
    /// Delete static routes: every route of ROUTER, those for PREFIX, or one next hop.
    LrRouteDel {
        /// Router name.
        router: String,
        /// IPv4 prefix.
        prefix: Option<String>,
        /// IPv4 next hop.
        nexthop: Option<String>,
        /// Output router port.
        port: Option<String>,
        /// No matching route is not an error.
        #[arg(long)]
        if_exists: bool,
        /// Only routes of this policy.
        #[arg(long, value_enum)]
        policy: Option<PolicyArg>,
    },
    /// List a router's static routes (longest prefix first).
    LrRouteList {
        /// Router name.
        router: String,
    },
}

use super::usage_error as usage;

impl Noun for RouteCmd {
    fn plan(&self, _ctx: &PlanCtx) -> Result<Step, CmdError> {
        Ok(match self {
            RouteCmd::LrRouteAdd {
                router,
                prefix,
                nexthop,
                port,
                ecmp,
                may_exist,
                policy,
            } => {
                let c = "lr-route-add";
                let route = StaticRoute {
                    policy: policy.map(Policy::from).unwrap_or_default(),
                    prefix: weft_proto::model::route::parse_prefix("PREFIX", prefix)
                        .map_err(|e| usage(c, e))?,
                    nexthop: weft_proto::model::route::parse_nexthop("NEXTHOP", nexthop)
                        .map_err(|e| usage(c, e))?,
                    output_port: port.clone(),
                };
                let add = RouteAdd {
                    route,
                    ecmp: *ecmp,
                    may_exist: *may_exist,
                };
                Step::Write(Box::new(Write {
                    ops: vec![update(
                        KIND,
                        router,
                        vec![column_op(
                            pb::column_op::Action::Add,
                            COLUMN,
                            None,
                            vec![add.to_text()],
                        )],
                        false,
                    )],
                    sugar: None,
                    render: Box::new(render_revision),
                }))
            }
            RouteCmd::LrRouteDel {
                router,
                prefix,
                nexthop,
                port,
                if_exists,
                policy,
            } => {
                let c = "lr-route-del";
                let prefix = prefix
                    .as_deref()
                    .map(|p| weft_proto::model::route::parse_prefix("PREFIX", p))
                    .transpose()
                    .map_err(|e| usage(c, e))?;
                let nexthop = nexthop
                    .as_deref()
                    .map(|p| weft_proto::model::route::parse_nexthop("NEXTHOP", p))
                    .transpose()
                    .map_err(|e| usage(c, e))?;
                let del = RouteDel {
                    policy: policy.map(Policy::from),
                    prefix,
                    nexthop,
                    output_port: port.clone(),
                    if_exists: *if_exists,
                };
                Step::Write(Box::new(Write {
                    ops: vec![update(
                        KIND,
                        router,
                        vec![column_op(
                            pb::column_op::Action::Remove,
                            COLUMN,
                            None,
                            vec![del.to_text()],
                        )],
                        false,
                    )],
                    sugar: None,
                    render: Box::new(render_revision),
                }))
            }
            RouteCmd::LrRouteList { router } => {
                let router = router.clone();
                Step::Read(Read {
                    calls: vec![list_request(KIND, std::slice::from_ref(&router))],
                    render: Box::new(move |replies, out| render_list(&router, replies, out)),
                })
            }
        })
    }
}

/// One route as `lr-route-list --format json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteJson {
    pub prefix: String,
    pub nexthop: String,
    pub policy: String,
    pub output_port: String,
    /// The prefix has several next hops.
    pub ecmp: bool,
}

#[derive(Debug, Serialize)]
struct ListRoutesReply {
    router: String,
    routes: Vec<RouteJson>,
    revision: i64,
}

/// The routes of a router, longest prefix first, then by prefix, policy and stored order;
/// with whether each is one of several next hops (ECMP).
pub fn sorted_routes(r: &pb::LogicalRouter) -> Vec<RouteJson> {
    let routes: Vec<StaticRoute> = r
        .static_routes
        .iter()
        .filter_map(|m| StaticRoute::from_message("static_routes", m).ok())
        .collect();
    let mut out: Vec<(usize, &StaticRoute)> = routes.iter().enumerate().collect();
    out.sort_by(|(i, a), (j, b)| {
        b.prefix
            .prefix()
            .cmp(&a.prefix.prefix())
            .then(a.prefix.network().cmp(&b.prefix.network()))
            .then(a.policy.cmp(&b.policy))
            .then(i.cmp(j))
    });
    out.into_iter()
        .map(|(_, x)| RouteJson {
            prefix: x.prefix.to_string(),
            nexthop: x.nexthop.to_string(),
            policy: x.policy.to_string(),
            output_port: x.output_port.clone().unwrap_or_default(),
            ecmp: routes.iter().filter(|y| y.same_destination(x)).count() > 1,
        })
        .collect()
}

/// One line of ovn-nbctl's `lr-route-list`: `%25s %25s POLICY[ PORT][ ecmp]`.
pub fn route_line(r: &RouteJson) -> String {
    let mut s = format!("{:>25} {:>25} {}", r.prefix, r.nexthop, r.policy);
    if !r.output_port.is_empty() {
        s.push(' ');
        s.push_str(&r.output_port);
    }
    if r.ecmp {
        s.push_str(" ecmp");
    }
    s
}

fn render_list(router: &str, replies: &[Reply], out: &Out) -> Result<String, CmdError> {
    let (r, revision) = named_record(replies, 0, "router", router, |k| match k {
        pb::object::Kind::LogicalRouter(r) => Some((r.name.as_str(), r)),
        _ => None,
    })?;
    let routes = sorted_routes(r);
    if out.json() {
        return Ok(json_text(
            &ListRoutesReply {
                router: router.to_string(),
                routes,
                revision,
            },
            out,
        )?);
    }
    if routes.is_empty() {
        return Ok(String::new());
    }
    let mut s = String::from("IPv4 Routes\nRoute Table <main>:\n");
    for r in &routes {
        s.push_str(&route_line(r));
        s.push('\n');
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testutil::*;

    fn col(w: &Write) -> (i32, Vec<String>) {
        first_column(w, KIND, "lr1")
    }

    #[test]
    fn add_and_del_are_column_ops_with_the_options() {
        let w = write(&["lr-route-add", "lr1", "10.9.1.0/16", "10.0.0.5"]);
        assert_eq!(
            col(&w),
            (
                pb::column_op::Action::Add as i32,
                vec!["--policy=dst-ip 10.9.0.0/16 10.0.0.5".to_string()]
            )
        );
        let w = write(&[
            "lr-route-add",
            "--ecmp",
            "--may-exist",
            "--policy=src-ip",
            "lr1",
            "10.9.0.0/16",
            "10.0.0.5",
            "lr1-p",
        ]);
        assert_eq!(
            col(&w).1,
            ["--ecmp --may-exist --policy=src-ip 10.9.0.0/16 10.0.0.5 lr1-p"]
        );
        // Options before the command, as ovn-nbctl writes them.
        let w2 = write(&[
            "--ecmp",
            "--may-exist",
            "--policy=src-ip",
            "lr-route-add",
            "lr1",
            "10.9.0.0/16",
            "10.0.0.5",
            "lr1-p",
        ]);
        assert_eq!(col(&w2), col(&w));
        let w = write(&["lr-route-del", "lr1"]);
        assert_eq!(
            col(&w),
            (pb::column_op::Action::Remove as i32, vec![String::new()])
        );
        let w = write(&[
            "lr-route-del",
            "--if-exists",
            "lr1",
            "10.9.0.0/16",
            "10.0.0.5",
        ]);
        assert_eq!(col(&w).1, ["--if-exists 10.9.0.0/16 10.0.0.5"]);
        // Bad values are refused before anything is sent, naming the argument.
        for args in [
            &["lr-route-add", "lr1", "10.9.0.0/33", "10.0.0.5"][..],
            &["lr-route-add", "lr1", "10.9.0.0/16", "224.0.0.1"][..],
            &["lr-route-del", "lr1", "bogus"][..],
        ] {
            let e = plan_err(args).to_string();
            assert!(e.contains("PREFIX") || e.contains("NEXTHOP"), "{e}");
        }
    }

    #[test]
    fn list_prints_like_ovn_nbctl() {
        let r = pb::LogicalRouter {
            name: "lr1".into(),
            static_routes: vec![
                pb::LogicalRouterStaticRoute {
                    ip_prefix: "10.9.0.0/16".into(),
                    nexthop: "10.0.0.5".into(),
                    ..Default::default()
                },
                pb::LogicalRouterStaticRoute {
                    ip_prefix: "0.0.0.0/0".into(),
                    nexthop: "10.0.0.1".into(),
                    output_port: "lr1-ext".into(),
                    ..Default::default()
                },
                pb::LogicalRouterStaticRoute {
                    ip_prefix: "10.9.0.0/16".into(),
                    nexthop: "10.0.0.6".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let reply = [Reply::Objects(pb::ListObjectsReply {
            kind: KIND.into(),
            columns: vec![],
            records: vec![pb::Record {
                kind: KIND.into(),
                name: "lr1".into(),
                columns: vec![],
                object: Some(crate::cmd::object(pb::object::Kind::LogicalRouter(r))),
            }],
            revision: 4,
        })];
        let rd = read(&["lr-route-list", "lr1"]);
        assert_eq!(
            render_read(&rd, &reply, &out(false)),
            "IPv4 Routes\nRoute Table <main>:\n\
             \x20             10.9.0.0/16                  10.0.0.5 dst-ip ecmp\n\
             \x20             10.9.0.0/16                  10.0.0.6 dst-ip ecmp\n\
             \x20               0.0.0.0/0                  10.0.0.1 dst-ip lr1-ext\n"
        );
        let v = json(&render_read(&rd, &reply, &out(true)));
        assert_eq!(v["routes"][2]["output_port"], "lr1-ext");
        assert_eq!(v["routes"][0]["ecmp"], true);
        let rd = read(&["lr-route-list", "nosuch"]);
        let Err(e) = (rd.render)(&reply, &out(false)) else {
            panic!("an unknown router rendered");
        };
        assert!(e.to_string().contains("router \"nosuch\" not found"), "{e}");
    }
}
