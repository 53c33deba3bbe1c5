//! The ACL part of a chassis' view (pure): the ACLs of the switches in the view and of the
//! port groups with a port in the view, the port groups those ACLs are on or name (`@PG`,
//! `$PG_ip4`, `$PG_ip6`) with their ports and their ports' addresses (the implied sets,
//! resolved here so that ports outside the view count), and the address sets they name.
//!
//! An ACL's key starts with its entity (`ls:SW:`, `pg:PG:`), so the ACLs of one switch are
//! one range of the ordered map: the part costs the ACLs in the view, not all ACLs.
//! [`crate::view::ViewState`] recomputes it when ACLs, groups or sets changed, or when the
//! view's switches or ports did while ACLs exist, and sends the difference (an address set
//! change: that set only).

use std::collections::{BTreeMap, BTreeSet};

use weft_proto::model::acl::{implied_port_group, references};
use weft_proto::v1::{
    object, AclView, AddressSetView, MeterView, PortGroupView, PortView, SwitchView,
};

use crate::state::ClusterState;

/// Kinds whose changes touch the ACL part.
pub fn is_acl_kind(kind: &str) -> bool {
    kind == crate::kinds::acl::NAME
        || kind == crate::kinds::port_group::NAME
        || kind == crate::kinds::address_set::NAME
        || kind == crate::kinds::meter::NAME
}

/// Whether any ACL exists.
pub fn has_acls(state: &ClusterState) -> bool {
    state
        .objects
        .get(crate::kinds::acl::NAME)
        .is_some_and(|m| !m.is_empty())
}

/// An ACL's `--meter`, resolved: none without one or when no such meter exists (then the
/// agent's own log meter applies, as OVN's ovn-controller does).
fn meter_view(state: &ClusterState, name: &str) -> Option<MeterView> {
    if name.is_empty() {
        return None;
    }
    match &state
        .objects
        .get(crate::kinds::meter::NAME)?
        .get(name)?
        .kind
    {
        Some(object::Kind::Meter(m)) => Some(MeterView {
            name: m.name.clone(),
            unit: m.unit.clone(),
            rate: m.rate,
            burst: m.burst,
            fair: m.fair,
        }),
        _ => None,
    }
}

fn acl_view(state: &ClusterState, a: &weft_proto::v1::Acl) -> AclView {
    AclView {
        key: a.key.clone(),
        switch: a.switch.clone(),
        port_group: a.port_group.clone(),
        direction: a.direction.clone(),
        priority: a.priority,
        r#match: a.r#match.clone(),
        action: a.action.clone(),
        log: a.log,
        name: a.name.clone(),
        severity: a.severity.clone(),
        label: a.label,
        meter: meter_view(state, &a.meter),
    }
}

fn port_group_view(state: &ClusterState, g: &weft_proto::v1::PortGroup) -> PortGroupView {
    let mut v = PortGroupView {
        name: g.name.clone(),
        ..Default::default()
    };
    for p in &g.ports {
        // Weak references: a deleted port drops out.
        let Some(lsp) = state.ports.get(p) else {
            continue;
        };
        v.ports.push(p.clone());
        let pv = match state.resolved.get(p) {
            Some(r) => r.clone(),
            None => crate::view::resolve_port(lsp, ""),
        };
        for a in pv.addresses {
            for ip in a.ips {
                if ip.contains(':') {
                    v.ip6.push(ip);
                } else {
                    v.ip4.push(ip);
                }
            }
        }
    }
    v
}

type Part = (
    BTreeMap<String, AclView>,
    BTreeMap<String, PortGroupView>,
    BTreeMap<String, AddressSetView>,
);

/// The ACL part for a view holding `switches` and `ports`.
pub fn acl_part(
    state: &ClusterState,
    switches: &BTreeMap<String, SwitchView>,
    ports: &BTreeMap<String, PortView>,
) -> Part {
    let mut acls = BTreeMap::new();
    let mut groups = BTreeMap::new();
    let mut sets = BTreeMap::new();
    let (Some(all), pgs) = (
        state.objects.get(crate::kinds::acl::NAME),
        state.objects.get(crate::kinds::port_group::NAME),
    ) else {
        return (acls, groups, sets);
    };
    let mut entities: Vec<String> = switches.keys().map(|s| format!("ls:{s}:")).collect();
    for (name, o) in pgs.into_iter().flat_map(|m| m.iter()) {
        if let Some(object::Kind::PortGroup(g)) = &o.kind {
            if g.ports.iter().any(|p| ports.contains_key(p)) {
                entities.push(format!("pg:{name}:"));
            }
        }
    }
    let mut want_groups: BTreeSet<String> = BTreeSet::new();
    let mut want_sets: BTreeSet<String> = BTreeSet::new();
    for prefix in entities {
        for (key, o) in all.range(prefix.clone()..) {
            if !key.starts_with(&prefix) {
                break;
            }
            let Some(object::Kind::Acl(a)) = &o.kind else {
                continue;
            };
            if !a.port_group.is_empty() {
                want_groups.insert(a.port_group.clone());
            }
            if let Ok(e) = weft_proto::model::expr::parse(&a.r#match) {
                let (s, g) = references(&e);
                for name in s {
                    match implied_port_group(&name) {
                        Some((pg, _)) => {
                            want_groups.insert(pg.to_string());
                        }
                        None => {
                            want_sets.insert(name);
                        }
                    }
                }
                want_groups.extend(g);
            }
            acls.insert(key.clone(), acl_view(state, a));
        }
    }
    for g in want_groups {
        if let Some(Some(object::Kind::PortGroup(pg))) =
            pgs.and_then(|m| m.get(&g)).map(|o| o.kind.as_ref())
        {
            groups.insert(g.clone(), port_group_view(state, pg));
        }
    }
    let set_map = state.objects.get(crate::kinds::address_set::NAME);
    for s in want_sets {
        if let Some(Some(object::Kind::AddressSet(a))) =
            set_map.and_then(|m| m.get(&s)).map(|o| o.kind.as_ref())
        {
            sets.insert(
                s.clone(),
                AddressSetView {
                    name: a.name.clone(),
                    addresses: a.addresses.clone(),
                },
            );
        }
    }
    (acls, groups, sets)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::Changed;
    use crate::view::{compute, ViewState};
    use weft_proto::v1::{
        Acl, AddressSet, LogicalSwitch, LogicalSwitchPort, Object, PortBinding, PortGroup,
    };

    fn obj(k: object::Kind) -> Object {
        Object { kind: Some(k) }
    }

    fn state() -> ClusterState {
        let mut s = ClusterState::default();
        for (n, vni) in [("a", 1), ("b", 2)] {
            s.switches.insert(
                n.into(),
                LogicalSwitch {
                    name: n.into(),
                    vni,
                    ..Default::default()
                },
            );
        }
        for (p, sw, ip, c) in [
            ("w1", "a", "10.0.0.11", "hv1"),
            ("w2", "b", "10.0.1.12", "hv2"),
            ("x", "b", "10.0.1.13", "hv2"),
        ] {
            s.ports.insert(
                p.into(),
                LogicalSwitchPort {
                    name: p.into(),
                    switch_name: sw.into(),
                    addresses: vec![format!("0a:00:00:00:00:01 {ip}")],
                    enabled: true,
                    ..Default::default()
                },
            );
            let mut set = s.ports_by_switch.get(sw).cloned().unwrap_or_default();
            set.insert(p.to_string());
            s.ports_by_switch.insert(sw.to_string(), set);
            s.bindings.insert(
                p.into(),
                PortBinding {
                    port: p.into(),
                    chassis: c.into(),
                    up: true,
                },
            );
        }
        s.store_object(
            "Port_Group",
            "web",
            Some(obj(object::Kind::PortGroup(PortGroup {
                name: "web".into(),
                ports: vec!["w1".into(), "w2".into()],
                ..Default::default()
            }))),
            1,
        );
        for n in ["clients", "other"] {
            s.store_object(
                "Address_Set",
                n,
                Some(obj(object::Kind::AddressSet(AddressSet {
                    name: n.into(),
                    addresses: vec!["192.0.2.0/24".into()],
                    ..Default::default()
                }))),
                1,
            );
        }
        let acl = |key: &str, sw: &str, pg: &str, m: &str| {
            obj(object::Kind::Acl(Acl {
                key: key.into(),
                switch: sw.into(),
                port_group: pg.into(),
                direction: "to-lport".into(),
                priority: 1000,
                r#match: m.into(),
                action: "allow-related".into(),
                ..Default::default()
            }))
        };
        s.store_object(
            "ACL",
            "pg:web:to-lport:1000:1",
            Some(acl(
                "pg:web:to-lport:1000:1",
                "",
                "web",
                "ip4.src == $clients",
            )),
            1,
        );
        s.store_object(
            "ACL",
            "ls:b:to-lport:1000:2",
            Some(acl("ls:b:to-lport:1000:2", "b", "", "ip4.src == $other")),
            1,
        );
        s
    }

    #[test]
    fn the_view_holds_the_acls_groups_and_sets_it_needs() {
        let s = state();
        let v = compute(&s, "hv1");
        assert_eq!(
            v.acls.keys().collect::<Vec<_>>(),
            ["pg:web:to-lport:1000:1"]
        );
        let g = &v.port_groups["web"];
        assert_eq!(g.ports, ["w1", "w2"]);
        assert_eq!(g.ip4, ["10.0.0.11", "10.0.1.12"], "w2 is outside the view");
        assert_eq!(v.address_sets.keys().collect::<Vec<_>>(), ["clients"]);
        let v2 = compute(&s, "hv2");
        assert_eq!(v2.acls.len(), 2);
        assert_eq!(v2.address_sets.len(), 2);
    }

    #[test]
    fn an_address_set_change_sends_only_that_set() {
        let mut s = state();
        let mut vs = ViewState::new(&s, "hv2");
        assert_eq!(vs.view(), &compute(&s, "hv2"));
        s.store_object(
            "Address_Set",
            "clients",
            Some(obj(object::Kind::AddressSet(AddressSet {
                name: "clients".into(),
                addresses: vec!["192.0.2.0/24".into(), "198.51.100.7".into()],
                ..Default::default()
            }))),
            2,
        );
        let d = vs.update(&s, &[Changed::Object("Address_Set", "clients".into())], 2);
        assert_eq!(d.address_sets.len(), 1);
        assert_eq!(d.address_sets[0].addresses.len(), 2);
        assert!(d.acls.is_empty() && d.port_groups.is_empty() && d.ports.is_empty());
        assert_eq!(vs.view(), &compute(&s, "hv2"));
        // Dropping w2 from the group changes the group's view only.
        s.store_object(
            "Port_Group",
            "web",
            Some(obj(object::Kind::PortGroup(PortGroup {
                name: "web".into(),
                ports: vec!["w1".into()],
                ..Default::default()
            }))),
            3,
        );
        let d = vs.update(&s, &[Changed::Object("Port_Group", "web".into())], 3);
        // hv2 no longer has a port of web: its ACL (and the group, and its set) leave.
        assert_eq!(d.deleted_acls, ["pg:web:to-lport:1000:1"]);
        assert_eq!(d.deleted_port_groups, ["web"]);
        assert_eq!(d.deleted_address_sets, ["clients"]);
        assert_eq!(vs.view(), &compute(&s, "hv2"));
    }
}
