//! The ACL part of the chassis view: ACLs, port groups and address sets as the controller
//! sent them (`AclView`, `PortGroupView`, `AddressSetView`), validated with the shared rules
//! (`weft_proto::model::acl`: direction, verdict, priority, match) and indexed by what each
//! ACL uses, so that a change of one set, group, port or switch finds the ACLs to recompile
//! without scanning them all ([`AclPart::using_set`], [`AclPart::using_group`], ...).
//!
//! [`AclPart::next`] builds the part an update leads to (all-or-nothing, like the rest of
//! [`crate::view::ChassisView::apply`]) and what changed.

use std::collections::{BTreeMap, BTreeSet};

use weft_proto::model::acl::{
    check_priority, implied_port_group, parse_direction, parse_match, parse_verdict, references,
    Direction, Entity, Verdict,
};
use weft_proto::model::expr::{Expr, Value};
use weft_proto::model::meter::{validate_meter, MeterUnit};
use weft_proto::model::view::ViewDelta;
use weft_proto::v1::{AclView, AddressSetView, MeterView, PortGroupView};

use crate::view::ViewError;

/// A validated ACL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    pub key: String,
    pub entity: Entity,
    pub direction: Direction,
    pub priority: u32,
    pub matches: String,
    pub expr: Expr,
    pub verdict: Verdict,
    pub log: bool,
    pub name: String,
    pub severity: String,
    pub label: u32,
    /// The `--meter` for its log packets, resolved by the controller (none: the agent's
    /// own log meter).
    pub meter: Option<AclMeter>,
    /// Address sets the match names (not the implied ones).
    pub sets: BTreeSet<String>,
    /// Port groups the ACL is on or names (`@PG`, `$PG_ip4`).
    pub groups: BTreeSet<String>,
    /// Ports the match names by name (`inport == "p1"`).
    pub ports: BTreeSet<String>,
}

/// A named meter as an ACL uses it (validated with [`weft_proto::model::meter`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclMeter {
    pub name: String,
    pub unit: MeterUnit,
    pub rate: u32,
    pub burst: u32,
    pub fair: bool,
}

fn parse_meter(key: &str, m: &MeterView) -> Result<AclMeter, ViewError> {
    let mut pb = weft_proto::v1::Meter {
        name: m.name.clone(),
        unit: m.unit.clone(),
        rate: m.rate,
        burst: m.burst,
        ..Default::default()
    };
    let unit = validate_meter(&mut pb).map_err(|e| invalid(key, "meter", e))?;
    Ok(AclMeter {
        name: m.name.clone(),
        unit,
        rate: m.rate,
        burst: m.burst,
        fair: m.fair,
    })
}

/// A port group: its ports and the addresses of all of them (the implied sets).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PortGroup {
    pub name: String,
    pub ports: Vec<String>,
    pub ip4: Vec<String>,
    pub ip6: Vec<String>,
}

/// The ACLs, groups and sets of a view, with indexes.
#[derive(Clone, Debug, Default)]
pub struct AclPart {
    acls: BTreeMap<String, Acl>,
    groups: BTreeMap<String, PortGroup>,
    sets: BTreeMap<String, Vec<String>>,
    by_set: BTreeMap<String, BTreeSet<String>>,
    by_group: BTreeMap<String, BTreeSet<String>>,
    by_switch: BTreeMap<String, BTreeSet<String>>,
    by_port: BTreeMap<String, BTreeSet<String>>,
    groups_of_port: BTreeMap<String, BTreeSet<String>>,
}

/// What an update changed in the part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclChange {
    pub acls: BTreeSet<String>,
    pub port_groups: BTreeSet<String>,
    pub address_sets: BTreeSet<String>,
}

fn port_names(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Cmp {
            value: Value::Str(s),
            ..
        } => {
            out.insert(s.clone());
        }
        Expr::InSet { values, .. } => {
            for v in values {
                if let Value::Str(s) = v {
                    out.insert(s.clone());
                }
            }
        }
        Expr::Not(x) => port_names(x, out),
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| port_names(x, out)),
        _ => {}
    }
}

fn invalid(key: &str, field: &str, e: impl std::fmt::Display) -> ViewError {
    ViewError::Invalid {
        kind: "acl",
        name: key.to_string(),
        field: field.to_string(),
        value: String::new(),
        reason: e.to_string(),
    }
}

/// Validates one ACL of an update.
pub fn parse_acl(a: &AclView) -> Result<Acl, ViewError> {
    let entity = Entity::of(&a.switch, &a.port_group).map_err(|e| invalid(&a.key, "entity", e))?;
    let direction = parse_direction(&a.direction).map_err(|e| invalid(&a.key, "direction", e))?;
    let priority =
        check_priority(i64::from(a.priority)).map_err(|e| invalid(&a.key, "priority", e))?;
    let verdict = parse_verdict(&a.action).map_err(|e| invalid(&a.key, "action", e))?;
    let expr = parse_match(&a.r#match).map_err(|e| invalid(&a.key, "match", e))?;
    let (all_sets, mut groups) = references(&expr);
    let mut sets = BTreeSet::new();
    for s in all_sets {
        match implied_port_group(&s) {
            Some((pg, _)) => {
                groups.insert(pg.to_string());
            }
            None => {
                sets.insert(s);
            }
        }
    }
    if let Entity::PortGroup(g) = &entity {
        groups.insert(g.clone());
    }
    let mut ports = BTreeSet::new();
    port_names(&expr, &mut ports);
    Ok(Acl {
        key: a.key.clone(),
        entity,
        direction,
        priority,
        matches: a.r#match.clone(),
        expr,
        verdict,
        log: a.log,
        name: a.name.clone(),
        severity: a.severity.clone(),
        label: a.label,
        meter: a
            .meter
            .as_ref()
            .map(|m| parse_meter(&a.key, m))
            .transpose()?,
        sets,
        groups,
        ports,
    })
}

fn group_of(g: &PortGroupView) -> PortGroup {
    PortGroup {
        name: g.name.clone(),
        ports: g.ports.clone(),
        ip4: g.ip4.clone(),
        ip6: g.ip6.clone(),
    }
}

fn set_of(a: &AddressSetView) -> Vec<String> {
    a.addresses.clone()
}

fn changed<V: PartialEq>(old: &BTreeMap<String, V>, new: &BTreeMap<String, V>) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(old.keys().filter(|k| !new.contains_key(*k)).cloned());
    out
}

fn touches(u: &ViewDelta) -> bool {
    u.snapshot
        || !(u.acls.is_empty()
            && u.deleted_acls.is_empty()
            && u.port_groups.is_empty()
            && u.deleted_port_groups.is_empty()
            && u.address_sets.is_empty()
            && u.deleted_address_sets.is_empty())
}

fn index(m: &mut BTreeMap<String, BTreeSet<String>>, k: &str, v: &str) {
    m.entry(k.to_string()).or_default().insert(v.to_string());
}

impl AclPart {
    /// The part `u` leads to and what changed, or None when `u` touches no ACL kind.
    pub fn next(&self, u: &ViewDelta) -> Result<Option<(AclPart, AclChange)>, ViewError> {
        if !touches(u) {
            return Ok(None);
        }
        let mut acls = if u.snapshot {
            BTreeMap::new()
        } else {
            self.acls.clone()
        };
        let mut groups = if u.snapshot {
            BTreeMap::new()
        } else {
            self.groups.clone()
        };
        let mut sets = if u.snapshot {
            BTreeMap::new()
        } else {
            self.sets.clone()
        };
        for a in &u.acls {
            if a.key.is_empty() {
                return Err(invalid("", "key", "must not be empty"));
            }
            acls.insert(a.key.clone(), parse_acl(a)?);
        }
        for g in &u.port_groups {
            groups.insert(g.name.clone(), group_of(g));
        }
        for s in &u.address_sets {
            sets.insert(s.name.clone(), set_of(s));
        }
        if !u.snapshot {
            for k in &u.deleted_acls {
                acls.remove(k);
            }
            for k in &u.deleted_port_groups {
                groups.remove(k);
            }
            for k in &u.deleted_address_sets {
                sets.remove(k);
            }
        }
        let change = AclChange {
            acls: changed(&self.acls, &acls),
            port_groups: changed(&self.groups, &groups),
            address_sets: changed(&self.sets, &sets),
        };
        let mut part = AclPart {
            acls,
            groups,
            sets,
            ..Default::default()
        };
        for a in part.acls.values() {
            for s in &a.sets {
                index(&mut part.by_set, s, &a.key);
            }
            for g in &a.groups {
                index(&mut part.by_group, g, &a.key);
            }
            for p in &a.ports {
                index(&mut part.by_port, p, &a.key);
            }
            if let Entity::Switch(s) = &a.entity {
                index(&mut part.by_switch, s, &a.key);
            }
        }
        for g in part.groups.values() {
            for p in &g.ports {
                index(&mut part.groups_of_port, p, &g.name);
            }
        }
        Ok(Some((part, change)))
    }

    pub fn acl(&self, key: &str) -> Option<&Acl> {
        self.acls.get(key)
    }

    pub fn acls(&self) -> impl Iterator<Item = &Acl> {
        self.acls.values()
    }

    pub fn port_group(&self, name: &str) -> Option<&PortGroup> {
        self.groups.get(name)
    }

    pub fn address_set(&self, name: &str) -> Option<&Vec<String>> {
        self.sets.get(name)
    }

    fn keys<'a>(
        m: &'a BTreeMap<String, BTreeSet<String>>,
        k: &str,
    ) -> impl Iterator<Item = &'a String> + 'a {
        m.get(k).into_iter().flatten()
    }

    /// ACLs whose match names address set `name`.
    pub fn using_set<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a String> + 'a {
        Self::keys(&self.by_set, name)
    }

    /// ACLs on port group `name` or naming it.
    pub fn using_group<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a String> + 'a {
        Self::keys(&self.by_group, name)
    }

    /// ACLs on switch `name`.
    pub fn on_switch<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a String> + 'a {
        Self::keys(&self.by_switch, name)
    }

    /// ACLs that name port `name`, or are on or name a group holding it.
    pub fn using_port(&self, name: &str) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = Self::keys(&self.by_port, name).cloned().collect();
        for g in Self::keys(&self.groups_of_port, name) {
            out.extend(Self::keys(&self.by_group, g).cloned());
        }
        out
    }

    /// The groups holding port `name`.
    pub fn groups_of_port<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a String> + 'a {
        Self::keys(&self.groups_of_port, name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn acl(key: &str, pg: &str, m: &str) -> AclView {
        AclView {
            key: key.into(),
            port_group: pg.into(),
            direction: "to-lport".into(),
            priority: 10,
            r#match: m.into(),
            action: "drop".into(),
            ..Default::default()
        }
    }

    #[test]
    fn indexes_follow_updates_and_bad_acls_are_refused() {
        let p = AclPart::default();
        let u = ViewDelta {
            snapshot: true,
            acls: vec![
                acl("a", "web", "ip4.src == $clients"),
                acl("b", "db", "ip4.src == $web_ip4 && inport == \"p9\""),
            ],
            port_groups: vec![PortGroupView {
                name: "web".into(),
                ports: vec!["w1".into()],
                ..Default::default()
            }],
            address_sets: vec![AddressSetView {
                name: "clients".into(),
                addresses: vec!["10.0.0.0/24".into()],
            }],
            ..Default::default()
        };
        let (p2, ch) = p.next(&u).unwrap().unwrap();
        assert_eq!(ch.acls.len(), 2);
        assert_eq!(p2.using_set("clients").collect::<Vec<_>>(), ["a"]);
        assert_eq!(p2.using_group("web").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            p2.using_port("w1").into_iter().collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(p2.using_port("p9").into_iter().collect::<Vec<_>>(), ["b"]);
        let u = ViewDelta {
            address_sets: vec![AddressSetView {
                name: "clients".into(),
                addresses: vec!["10.0.1.0/24".into()],
            }],
            ..Default::default()
        };
        let (_, ch) = p2.next(&u).unwrap().unwrap();
        assert!(ch.acls.is_empty());
        assert_eq!(ch.address_sets.into_iter().collect::<Vec<_>>(), ["clients"]);
        assert!(p2.next(&ViewDelta::default()).unwrap().is_none());
        let bad = ViewDelta {
            acls: vec![acl("c", "web", "tcp.dts == 1")],
            ..Default::default()
        };
        assert!(p2.next(&bad).is_err());
    }
}
