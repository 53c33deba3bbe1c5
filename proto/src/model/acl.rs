//! ACL rules shared by the controller, weftctl and the agent: directions, verdicts,
//! severities, the priority range, the derived ACL key and the match check (parse, type
//! check, references, flow count). Pure.
//!
//! An ACL is keyed by `ls:SWITCH:DIRECTION:PRIORITY:HASH` or `pg:PG:DIRECTION:PRIORITY:HASH`
//! ([`acl_key`]; HASH = FNV-1a 64 of the match text, 16 hex digits), so each ACL is its own
//! etcd key: adding or deleting one costs one key, and a duplicate (same entity, direction,
//! priority and match) is the same key. Names never contain ':', so the key splits back.

use std::collections::BTreeSet;

use super::expr::{self, Expr, Value};
use super::hash::fnv1a64;
use super::match_dnf::{self, DnfError, Resolver};
use super::validate::{validate_name, ValidationError};

/// Highest ACL priority (as OVN's).
pub const MAX_PRIORITY: u32 = 32767;
/// Default for the largest number of flows one ACL may compile to.
pub const DEFAULT_MAX_FLOWS: usize = 10_000;

/// The cookie kind (high byte) of an ACL's flows on the agents.
pub const COOKIE_KIND: u8 = 0x06;

/// The cookie of an ACL's flows: `0x06 << 56 | fnv1a64(key)` in the low 56 bits (as every
/// owner's cookie), so flow stats can be summed per ACL.
pub fn acl_cookie(key: &str) -> u64 {
    (u64::from(COOKIE_KIND) << 56) | (fnv1a64(key.as_bytes()) & 0x00ff_ffff_ffff_ffff)
}

/// Where an ACL runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// As the packet enters the switch from its input port (its chassis, its zone).
    FromLport,
    /// As the packet leaves the switch to its output port (that port's chassis and zone).
    ToLport,
}

impl Direction {
    /// ovn-nbctl spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::FromLport => "from-lport",
            Direction::ToLport => "to-lport",
        }
    }
}

/// What an ACL does with a matching packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Pass (committed to conntrack when the switch is stateful).
    Allow,
    /// Pass and admit the connection's replies and related traffic.
    AllowRelated,
    /// Pass without conntrack commit.
    AllowStateless,
    /// Drop silently.
    Drop,
    /// Drop and answer: TCP RST, else ICMP unreachable.
    Reject,
}

impl Verdict {
    /// ovn-nbctl spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::AllowRelated => "allow-related",
            Verdict::AllowStateless => "allow-stateless",
            Verdict::Drop => "drop",
            Verdict::Reject => "reject",
        }
    }
    /// Whether the verdict makes the switch stateful (everything but allow-stateless).
    pub fn is_stateful(self) -> bool {
        self != Verdict::AllowStateless
    }
}

/// Log severities (OVN's).
pub const SEVERITIES: &[&str] = &["alert", "warning", "notice", "info", "debug"];

/// The entity an ACL is on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entity {
    /// A logical switch.
    Switch(String),
    /// A port group.
    PortGroup(String),
}

impl Entity {
    /// `ls:NAME` / `pg:NAME`: the key prefix.
    pub fn prefix(&self) -> String {
        match self {
            Entity::Switch(n) => format!("ls:{n}"),
            Entity::PortGroup(n) => format!("pg:{n}"),
        }
    }
    /// The entity from an ACL's (switch, port_group) fields.
    pub fn of(switch: &str, port_group: &str) -> Result<Entity, ValidationError> {
        match (switch.is_empty(), port_group.is_empty()) {
            (false, true) => {
                validate_name("acl.switch", switch)?;
                Ok(Entity::Switch(switch.to_string()))
            }
            (true, false) => {
                validate_name("acl.port_group", port_group)?;
                Ok(Entity::PortGroup(port_group.to_string()))
            }
            _ => Err(ValidationError::new(
                "acl.switch",
                &format!("{switch}|{port_group}"),
                "exactly one of switch and port_group must be set",
            )),
        }
    }
}

/// Parses a direction (field `acl.direction`).
pub fn parse_direction(s: &str) -> Result<Direction, ValidationError> {
    match s {
        "from-lport" => Ok(Direction::FromLport),
        "to-lport" => Ok(Direction::ToLport),
        _ => Err(ValidationError::new(
            "acl.direction",
            s,
            "expected from-lport or to-lport",
        )),
    }
}

/// Parses a verdict (field `acl.action`).
pub fn parse_verdict(s: &str) -> Result<Verdict, ValidationError> {
    Ok(match s {
        "allow" => Verdict::Allow,
        "allow-related" => Verdict::AllowRelated,
        "allow-stateless" => Verdict::AllowStateless,
        "drop" => Verdict::Drop,
        "reject" => Verdict::Reject,
        _ => {
            return Err(ValidationError::new(
                "acl.action",
                s,
                "unknown verdict (expected allow, allow-related, allow-stateless, drop or reject)",
            ))
        }
    })
}

/// Checks a priority (field `acl.priority`).
pub fn check_priority(p: i64) -> Result<u32, ValidationError> {
    if (0..=i64::from(MAX_PRIORITY)).contains(&p) {
        Ok(p as u32)
    } else {
        Err(ValidationError::new(
            "acl.priority",
            &p.to_string(),
            format!("priority out of range (0..{MAX_PRIORITY})"),
        ))
    }
}

/// Checks a severity ("" = info).
pub fn check_severity(s: &str) -> Result<(), ValidationError> {
    if s.is_empty() || SEVERITIES.contains(&s) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "acl.severity",
            s,
            format!("unknown severity (one of {})", SEVERITIES.join(", ")),
        ))
    }
}

/// The ACL's key: `ENTITY:DIRECTION:PRIORITY:HASH` (see the module doc).
pub fn acl_key(entity: &Entity, direction: Direction, priority: u32, matches: &str) -> String {
    format!(
        "{}:{}:{}:{:016x}",
        entity.prefix(),
        direction.as_str(),
        priority,
        fnv1a64(matches.trim().as_bytes())
    )
}

/// Parses a match for an ACL; the error names the column and quotes the match, as
/// `acl.match "tcp.dts == 80": unknown field "tcp.dts" at column 1`.
pub fn parse_match(s: &str) -> Result<Expr, ValidationError> {
    if s.trim().is_empty() {
        return Err(ValidationError::new("acl.match", s, "must not be empty"));
    }
    expr::parse(s).map_err(|e| {
        ValidationError::new(
            "acl.match",
            s,
            format!("{} at column {}", e.message, e.column),
        )
    })
}

/// The address sets (`$NAME`) and port groups (`@NAME`) a match names.
pub fn references(e: &Expr) -> (BTreeSet<String>, BTreeSet<String>) {
    fn walk(e: &Expr, sets: &mut BTreeSet<String>, groups: &mut BTreeSet<String>) {
        let mut value = |v: &Value| match v {
            Value::AddressSet(n) => {
                sets.insert(n.clone());
            }
            Value::PortGroup(n) => {
                groups.insert(n.clone());
            }
            _ => {}
        };
        match e {
            Expr::Cmp { value: v, .. } => value(v),
            Expr::InSet { values, .. } => values.iter().for_each(value),
            Expr::Not(x) => walk(x, sets, groups),
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| walk(x, sets, groups)),
            Expr::Const(_) | Expr::Predicate(_) => {}
        }
    }
    let mut sets = BTreeSet::new();
    let mut groups = BTreeSet::new();
    walk(e, &mut sets, &mut groups);
    (sets, groups)
}

/// The port group an implied address set name stands for: `PG_ip4` / `PG_ip6` → `PG`.
pub fn implied_port_group(set: &str) -> Option<(&str, bool)> {
    if let Some(pg) = set.strip_suffix("_ip4") {
        return Some((pg, true));
    }
    set.strip_suffix("_ip6").map(|pg| (pg, false))
}

/// Checks a port group name: a switch-style name without '-' (the implied address set names
/// `PG_ip4` must be valid `$` names, and OVN refuses '-' there too).
pub fn check_port_group_name(name: &str) -> Result<(), ValidationError> {
    validate_name("port_group.name", name)?;
    if name.contains('-') || name.contains('.') {
        return Err(ValidationError::new(
            "port_group.name",
            name,
            "port group names may not contain '-' or '.' (they name address sets NAME_ip4)",
        ));
    }
    Ok(())
}

/// How many flows the ACL's match (plus the entity's port dimension) compiles to with the
/// sets `r` resolves, refused above `max_flows` with the number it would need.
pub fn check_flow_count(
    entity: &Entity,
    direction: Direction,
    e: &Expr,
    r: &dyn Resolver,
    max_flows: usize,
) -> Result<usize, ValidationError> {
    let dnf = match_dnf::acl_dnf(entity, direction, e, r, max_flows).map_err(|err| match err {
        DnfError::TooMany(n) => ValidationError::new(
            "acl.match",
            &n.to_string(),
            format!("the match would need {n} flows or more (at most {max_flows})"),
        ),
        other => ValidationError::new("acl.match", "", other.to_string()),
    })?;
    let n = match_dnf::flow_count(&dnf);
    if n > max_flows {
        return Err(ValidationError::new(
            "acl.match",
            &n.to_string(),
            format!("the match would need {n} flows (at most {max_flows})"),
        ));
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_back_and_differ_per_match() {
        let k = acl_key(
            &Entity::Switch("sw1".into()),
            Direction::ToLport,
            1000,
            "tcp.dst == 80",
        );
        assert!(k.starts_with("ls:sw1:to-lport:1000:"), "{k}");
        assert_eq!(k.split(':').count(), 5);
        let k2 = acl_key(
            &Entity::Switch("sw1".into()),
            Direction::ToLport,
            1000,
            " tcp.dst == 80 ",
        );
        assert_eq!(k, k2, "surrounding blanks do not make a different ACL");
        let k3 = acl_key(
            &Entity::PortGroup("web".into()),
            Direction::ToLport,
            1000,
            "tcp.dst == 80",
        );
        assert!(k3.starts_with("pg:web:"));
    }

    #[test]
    fn bad_values_name_field_and_value() {
        let e = check_priority(32768).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.value.as_str()),
            ("acl.priority", "32768")
        );
        assert!(check_priority(-1).is_err());
        assert_eq!(check_priority(0).unwrap(), 0);
        let e = parse_verdict("accept").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.value.as_str()),
            ("acl.action", "accept")
        );
        assert!(parse_direction("both").is_err());
        assert!(check_severity("loud").is_err());
        check_severity("").unwrap();
        let e = parse_match("tcp.dts == 80").unwrap_err();
        assert!(e.to_string().contains("column 1"), "{e}");
        assert!(e.to_string().contains("tcp.dts"), "{e}");
        let e = parse_match("tcp.dst == 10.0.0.1").unwrap_err();
        assert!(e.to_string().contains("column 12"), "{e}");
        assert!(check_port_group_name("web-tier").is_err());
        check_port_group_name("web_tier").unwrap();
    }

    #[test]
    fn references_and_implied_sets() {
        let e = parse_match("ip4.src == {$a, $web_ip4} && outport == @web").unwrap();
        let (s, g) = references(&e);
        assert_eq!(s.into_iter().collect::<Vec<_>>(), ["a", "web_ip4"]);
        assert_eq!(g.into_iter().collect::<Vec<_>>(), ["web"]);
        assert_eq!(implied_port_group("web_ip4"), Some(("web", true)));
        assert_eq!(implied_port_group("web_ip6"), Some(("web", false)));
        assert_eq!(implied_port_group("web"), None);
    }
}
