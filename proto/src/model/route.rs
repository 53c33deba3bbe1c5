//! Static routes of a logical router (OVN's `Logical_Router_Static_Route`): the parsed
//! [`StaticRoute`], its column text (`PREFIX NEXTHOP [PORT] [policy=src-ip]`), and the
//! semantics of `lr-route-add` / `lr-route-del` as ovn-nbctl has them, applied to a
//! router's route list ([`apply_add`], [`apply_del`]). The controller stores routes in the
//! router (`static_routes`), weftctl sends the commands as column ops whose values are
//! [`RouteAdd::to_text`] / [`RouteDel::to_text`], and the agent parses the view's routes with
//! [`StaticRoute::from_message`]. IPv4 only, the main route table only, like the rest of the
//! router today.

use std::fmt;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::validate::{validate_name, ValidationError};
use crate::v1::LogicalRouterStaticRoute;

type Result<T> = std::result::Result<T, ValidationError>;

/// The lr-route priority of a connected route of prefix length `len`: longer prefixes
/// first (`100 + 10 * len`).
pub fn connected_priority(len: u8) -> u16 {
    100 + 10 * u16::from(len)
}

/// The lr-route priority of a static route: below a connected route of the same length,
/// dst-ip before src-ip (OVN's order).
pub fn static_priority(len: u8, policy: Policy) -> u16 {
    connected_priority(len)
        - match policy {
            Policy::DstIp => 1,
            Policy::SrcIp => 2,
        }
}

/// Most static routes one router may have.
pub const MAX_ROUTES: usize = 4096;

/// What a route matches: the destination (the default) or the source address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    #[default]
    DstIp,
    SrcIp,
}

impl Policy {
    pub fn as_str(&self) -> &'static str {
        match self {
            Policy::DstIp => "dst-ip",
            Policy::SrcIp => "src-ip",
        }
    }

    /// `dst-ip`, `src-ip`, or "" (= dst-ip, as stored).
    pub fn parse(field: &str, s: &str) -> Result<Policy> {
        match s {
            "" | "dst-ip" => Ok(Policy::DstIp),
            "src-ip" => Ok(Policy::SrcIp),
            _ => Err(ValidationError::new(field, s, "expected dst-ip or src-ip")),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One static route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StaticRoute {
    pub policy: Policy,
    /// Normalized to its network.
    pub prefix: Ipv4Network,
    pub nexthop: Ipv4Addr,
    /// The router port to leave by; `None` = the port whose network contains the next hop.
    pub output_port: Option<String>,
}

/// Parses `A.B.C.D/LEN` or `A.B.C.D` (a /32) and normalizes it to its network, as
/// ovn-nbctl does.
pub fn parse_prefix(field: &str, s: &str) -> Result<Ipv4Network> {
    let net: Ipv4Network = s.parse().map_err(|_| {
        ValidationError::new(
            field,
            s,
            "expected an IPv4 prefix, e.g. 10.9.0.0/16 (IPv6 routes are not supported yet)",
        )
    })?;
    Ipv4Network::new(net.network(), net.prefix())
        .map_err(|_| ValidationError::new(field, s, "bad prefix length"))
}

/// Parses a next hop: a unicast IPv4 address.
pub fn parse_nexthop(field: &str, s: &str) -> Result<Ipv4Addr> {
    let ip: Ipv4Addr = s
        .parse()
        .map_err(|_| ValidationError::new(field, s, "expected an IPv4 address"))?;
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || ip.is_loopback() {
        return Err(ValidationError::new(
            field,
            s,
            "a next hop must be a unicast address",
        ));
    }
    Ok(ip)
}

impl StaticRoute {
    /// Parses a stored route (`field` names it in errors, e.g. `static_routes[2]`).
    pub fn from_message(field: &str, m: &LogicalRouterStaticRoute) -> Result<StaticRoute> {
        let output_port = if m.output_port.is_empty() {
            None
        } else {
            validate_name(&format!("{field}.output_port"), &m.output_port)?;
            Some(m.output_port.clone())
        };
        Ok(StaticRoute {
            policy: Policy::parse(&format!("{field}.policy"), &m.policy)?,
            prefix: parse_prefix(&format!("{field}.ip_prefix"), &m.ip_prefix)?,
            nexthop: parse_nexthop(&format!("{field}.nexthop"), &m.nexthop)?,
            output_port,
        })
    }

    /// The stored form (policy "" for dst-ip).
    pub fn to_message(&self) -> LogicalRouterStaticRoute {
        LogicalRouterStaticRoute {
            ip_prefix: self.prefix.to_string(),
            nexthop: self.nexthop.to_string(),
            output_port: self.output_port.clone().unwrap_or_default(),
            policy: match self.policy {
                Policy::DstIp => String::new(),
                Policy::SrcIp => Policy::SrcIp.as_str().to_string(),
            },
        }
    }

    /// Column text: `PREFIX NEXTHOP [PORT] [policy=src-ip]`.
    pub fn to_text(&self) -> String {
        let mut s = format!("{} {}", self.prefix, self.nexthop);
        if let Some(p) = &self.output_port {
            s.push(' ');
            s.push_str(p);
        }
        if self.policy == Policy::SrcIp {
            s.push_str(" policy=src-ip");
        }
        s
    }

    /// Parses column text (see [`StaticRoute::to_text`]).
    pub fn parse_text(field: &str, s: &str) -> Result<StaticRoute> {
        let mut policy = Policy::DstIp;
        let mut words = Vec::new();
        for w in s.split_whitespace() {
            match w.strip_prefix("policy=") {
                Some(p) => policy = Policy::parse(field, p)?,
                None => words.push(w),
            }
        }
        let (prefix, nexthop, port) = match words.as_slice() {
            [p, n] => (p, n, None),
            [p, n, port] => (p, n, Some(*port)),
            _ => {
                return Err(ValidationError::new(
                    field,
                    s,
                    "expected PREFIX NEXTHOP [PORT] [policy=dst-ip|src-ip]",
                ))
            }
        };
        if let Some(p) = port {
            validate_name(field, p)?;
        }
        Ok(StaticRoute {
            policy,
            prefix: parse_prefix(field, prefix)?,
            nexthop: parse_nexthop(field, nexthop)?,
            output_port: port.map(str::to_string),
        })
    }

    /// Same policy and prefix: the routes are next hops of one (ECMP) route.
    pub fn same_destination(&self, other: &StaticRoute) -> bool {
        self.policy == other.policy && self.prefix == other.prefix
    }
}

/// `lr-route-add`: a route and the command's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteAdd {
    pub route: StaticRoute,
    /// `--ecmp`: another next hop for a prefix that has one is allowed.
    pub ecmp: bool,
    /// `--may-exist`: an existing route for the prefix is updated (without `--ecmp`), an
    /// identical one is not an error (with it).
    pub may_exist: bool,
}

impl RouteAdd {
    /// The column-op value: `[--ecmp] [--may-exist] [--policy=P] PREFIX NEXTHOP [PORT]`.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if self.ecmp {
            s.push_str("--ecmp ");
        }
        if self.may_exist {
            s.push_str("--may-exist ");
        }
        s.push_str(&format!("--policy={} ", self.route.policy));
        s.push_str(&format!("{} {}", self.route.prefix, self.route.nexthop));
        if let Some(p) = &self.route.output_port {
            s.push(' ');
            s.push_str(p);
        }
        s
    }

    /// Parses [`RouteAdd::to_text`] (and the bare column text).
    pub fn parse_text(field: &str, s: &str) -> Result<RouteAdd> {
        let mut ecmp = false;
        let mut may_exist = false;
        let mut rest = Vec::new();
        for w in s.split_whitespace() {
            match w {
                "--ecmp" => ecmp = true,
                "--may-exist" => may_exist = true,
                _ => match w.strip_prefix("--policy=") {
                    Some(p) => rest.push(format!("policy={p}")),
                    None if w.starts_with("--") => {
                        return Err(ValidationError::new(
                            field,
                            s,
                            format!("unknown option {w} (expected --ecmp, --may-exist, --policy=)"),
                        ))
                    }
                    None => rest.push(w.to_string()),
                },
            }
        }
        Ok(RouteAdd {
            route: StaticRoute::parse_text(field, &rest.join(" "))?,
            ecmp,
            may_exist,
        })
    }
}

/// `lr-route-del`: which routes go. Every `None` matches anything; no prefix = every route
/// (of the policy, when given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteDel {
    pub policy: Option<Policy>,
    pub prefix: Option<Ipv4Network>,
    pub nexthop: Option<Ipv4Addr>,
    pub output_port: Option<String>,
    /// `--if-exists`: no matching route is not an error.
    pub if_exists: bool,
}

impl RouteDel {
    /// The column-op value: `[--if-exists] [--policy=P] [PREFIX [NEXTHOP [PORT]]]`.
    pub fn to_text(&self) -> String {
        let mut w: Vec<String> = Vec::new();
        if self.if_exists {
            w.push("--if-exists".into());
        }
        if let Some(p) = self.policy {
            w.push(format!("--policy={p}"));
        }
        if let Some(p) = self.prefix {
            w.push(p.to_string());
            if let Some(n) = self.nexthop {
                w.push(n.to_string());
                if let Some(o) = &self.output_port {
                    w.push(o.clone());
                }
            }
        }
        w.join(" ")
    }

    /// Parses [`RouteDel::to_text`]; a bare route text (`PREFIX NEXTHOP [PORT]
    /// [policy=P]`, as `weftctl remove` would send) works too.
    pub fn parse_text(field: &str, s: &str) -> Result<RouteDel> {
        let mut d = RouteDel::default();
        let mut words = Vec::new();
        for w in s.split_whitespace() {
            if w == "--if-exists" {
                d.if_exists = true;
            } else if let Some(p) = w.strip_prefix("--policy=").or(w.strip_prefix("policy=")) {
                d.policy = Some(Policy::parse(field, p)?);
            } else if w.starts_with("--") {
                return Err(ValidationError::new(
                    field,
                    s,
                    format!("unknown option {w} (expected --if-exists, --policy=)"),
                ));
            } else {
                words.push(w);
            }
        }
        if words.len() > 3 {
            return Err(ValidationError::new(
                field,
                s,
                "expected [PREFIX [NEXTHOP [PORT]]]",
            ));
        }
        if let Some(p) = words.first() {
            d.prefix = Some(parse_prefix(field, p)?);
        }
        if let Some(n) = words.get(1) {
            d.nexthop = Some(parse_nexthop(field, n)?);
        }
        if let Some(o) = words.get(2) {
            validate_name(field, o)?;
            d.output_port = Some(o.to_string());
        }
        Ok(d)
    }

    fn matches(&self, r: &StaticRoute) -> bool {
        self.policy.is_none_or(|p| p == r.policy)
            && self.prefix.is_none_or(|p| p == r.prefix)
            && self.nexthop.is_none_or(|n| n == r.nexthop)
            && self
                .output_port
                .as_ref()
                .is_none_or(|o| r.output_port.as_ref() == Some(o))
    }
}

/// Adds `add` to `routes` with ovn-nbctl's rules: a second route for the same policy and
/// prefix needs `--ecmp` (or, with `--may-exist`, replaces the next hop and port of the
/// existing one); an identical ECMP next hop is an error unless `--may-exist`.
pub fn apply_add(routes: &mut Vec<StaticRoute>, add: &RouteAdd, field: &str) -> Result<()> {
    let r = &add.route;
    let same: Vec<usize> = routes
        .iter()
        .enumerate()
        .filter(|(_, x)| x.same_destination(r))
        .map(|(i, _)| i)
        .collect();
    if add.ecmp {
        if routes.iter().any(|x| x == r) {
            if add.may_exist {
                return Ok(());
            }
            return Err(ValidationError::new(
                field,
                &r.to_text(),
                "duplicate nexthop for the same ECMP route",
            ));
        }
    } else if let Some(&i) = same.first() {
        if !add.may_exist {
            return Err(ValidationError::new(
                field,
                &r.to_text(),
                format!(
                    "duplicate prefix: {} (policy: {}); use --ecmp to add another next hop, \
                     --may-exist to replace it",
                    r.prefix, r.policy
                ),
            ));
        }
        // --may-exist: the route's next hop and port become the new ones (ovn-nbctl updates
        // the first route of the prefix).
        routes[i] = r.clone();
        return Ok(());
    }
    if routes.len() >= MAX_ROUTES {
        return Err(ValidationError::new(
            field,
            &r.to_text(),
            format!("a router has at most {MAX_ROUTES} static routes"),
        ));
    }
    routes.push(r.clone());
    Ok(())
}

/// Removes the routes `del` matches; none matching is an error unless `--if-exists` (or no
/// prefix was given: "delete every route" of an empty list is fine, as in ovn-nbctl).
pub fn apply_del(routes: &mut Vec<StaticRoute>, del: &RouteDel, field: &str) -> Result<()> {
    let before = routes.len();
    routes.retain(|r| !del.matches(r));
    if routes.len() == before && del.prefix.is_some() && !del.if_exists {
        return Err(ValidationError::new(
            field,
            &del.to_text(),
            format!(
                "no matching route: policy '{}', prefix '{}', nexthop '{}', output_port '{}'",
                del.policy.map(|p| p.as_str()).unwrap_or("any"),
                del.prefix.map(|p| p.to_string()).unwrap_or_default(),
                del.nexthop.map(|p| p.to_string()).unwrap_or_default(),
                del.output_port.as_deref().unwrap_or(""),
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn add(s: &str) -> RouteAdd {
        RouteAdd::parse_text("r", s).unwrap()
    }

    fn del(s: &str) -> RouteDel {
        RouteDel::parse_text("r", s).unwrap()
    }

    #[test]
    fn text_forms_roundtrip_and_normalize() {
        let r = StaticRoute::parse_text("r", "10.9.1.7/16 10.0.0.5 lr-p policy=src-ip").unwrap();
        assert_eq!(r.prefix.to_string(), "10.9.0.0/16");
        assert_eq!(r.to_text(), "10.9.0.0/16 10.0.0.5 lr-p policy=src-ip");
        assert_eq!(StaticRoute::parse_text("r", &r.to_text()).unwrap(), r);
        assert_eq!(StaticRoute::from_message("r", &r.to_message()).unwrap(), r);
        let host = StaticRoute::parse_text("r", "192.168.1.1 10.0.0.5").unwrap();
        assert_eq!(host.prefix.to_string(), "192.168.1.1/32");
        assert_eq!(
            host.to_message().policy,
            "",
            "dst-ip is stored as the default"
        );
        let a = add("--ecmp --policy=src-ip 10.9.0.0/16 10.0.0.5 p1");
        assert!(a.ecmp && !a.may_exist);
        assert_eq!(RouteAdd::parse_text("r", &a.to_text()).unwrap(), a);
        let d = del("--if-exists --policy=dst-ip 10.9.0.0/16 10.0.0.5");
        assert_eq!(RouteDel::parse_text("r", &d.to_text()).unwrap(), d);
    }

    #[test]
    fn bad_routes_name_the_value() {
        for (s, why) in [
            ("10.9.0.0/33 10.0.0.5", "prefix"),
            ("fd00::/64 10.0.0.5", "IPv6"),
            ("10.9.0.0/16 224.0.0.1", "unicast"),
            ("10.9.0.0/16 0.0.0.0", "unicast"),
            ("10.9.0.0/16", "PREFIX NEXTHOP"),
            ("10.9.0.0/16 10.0.0.5 p q", "PREFIX NEXTHOP"),
            ("10.9.0.0/16 10.0.0.5 policy=sideways", "dst-ip or src-ip"),
        ] {
            let e = StaticRoute::parse_text("static_routes", s).unwrap_err();
            assert_eq!(e.field, "static_routes");
            assert!(e.to_string().contains(why), "{s}: {e}");
        }
        assert!(RouteAdd::parse_text("r", "--bfd 10.0.0.0/8 10.0.0.5").is_err());
        assert!(RouteDel::parse_text("r", "10.0.0.0/8 10.0.0.5 p extra").is_err());
    }

    #[test]
    fn add_follows_ovn_nbctl() {
        let mut rs = Vec::new();
        apply_add(&mut rs, &add("10.9.0.0/16 10.0.0.5"), "r").unwrap();
        // Same prefix again: needs --ecmp.
        let e = apply_add(&mut rs, &add("10.9.0.0/16 10.0.0.6"), "r").unwrap_err();
        assert!(e.reason.contains("duplicate prefix"), "{e}");
        // A src-ip route of the same prefix is another route.
        apply_add(&mut rs, &add("--policy=src-ip 10.9.0.0/16 10.0.0.6"), "r").unwrap();
        apply_add(&mut rs, &add("--ecmp 10.9.0.0/16 10.0.0.6"), "r").unwrap();
        assert_eq!(rs.len(), 3);
        let e = apply_add(&mut rs, &add("--ecmp 10.9.0.0/16 10.0.0.6"), "r").unwrap_err();
        assert!(e.reason.contains("duplicate nexthop"), "{e}");
        apply_add(
            &mut rs,
            &add("--ecmp --may-exist 10.9.0.0/16 10.0.0.6"),
            "r",
        )
        .unwrap();
        assert_eq!(rs.len(), 3);
        // --may-exist without --ecmp replaces the next hop.
        apply_add(&mut rs, &add("--may-exist 10.8.0.0/16 10.0.0.7"), "r").unwrap();
        apply_add(&mut rs, &add("--may-exist 10.8.0.0/16 10.0.0.8 p2"), "r").unwrap();
        let r8: Vec<_> = rs
            .iter()
            .filter(|r| r.prefix.prefix() == 16 && r.prefix.ip().octets()[1] == 8)
            .collect();
        assert_eq!(r8.len(), 1);
        assert_eq!(r8[0].to_text(), "10.8.0.0/16 10.0.0.8 p2");
    }

    #[test]
    fn del_follows_ovn_nbctl() {
        let mut rs = Vec::new();
        for a in [
            "10.9.0.0/16 10.0.0.5",
            "--ecmp 10.9.0.0/16 10.0.0.6",
            "--policy=src-ip 10.9.0.0/16 10.0.0.6",
            "10.8.0.0/16 10.0.0.6 p1",
        ] {
            apply_add(&mut rs, &add(a), "r").unwrap();
        }
        // One next hop of the ECMP route.
        apply_del(&mut rs, &del("--policy=dst-ip 10.9.0.0/16 10.0.0.6"), "r").unwrap();
        assert_eq!(rs.len(), 3);
        // No match: an error naming the filter, unless --if-exists.
        let e = apply_del(&mut rs, &del("10.7.0.0/16"), "r").unwrap_err();
        assert!(
            e.reason.contains("no matching route") && e.reason.contains("10.7.0.0/16"),
            "{e}"
        );
        apply_del(&mut rs, &del("--if-exists 10.7.0.0/16"), "r").unwrap();
        // The port must match when given.
        assert!(apply_del(&mut rs, &del("10.8.0.0/16 10.0.0.6 p2"), "r").is_err());
        // A prefix of any policy.
        apply_del(&mut rs, &del("10.9.0.0/16"), "r").unwrap();
        assert_eq!(rs.len(), 1);
        // Everything.
        apply_del(&mut rs, &del(""), "r").unwrap();
        assert!(rs.is_empty());
        apply_del(&mut rs, &del(""), "r").unwrap();
    }
}
