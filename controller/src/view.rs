//! Pure per-chassis view computation (see `southbound.proto`) and view deltas.
//!
//! A chassis' view: the switches with at least one port bound to that chassis, every port of
//! those switches (addresses resolved, with the chassis each is bound to), and the other live
//! chassis those ports live on. [`compute`] builds it from a [`ClusterState`]; [`delta`] turns
//! two views into a `ViewUpdate`.

use std::collections::{BTreeMap, BTreeSet};

use weft_proto::v1::{
    LogicalSwitchPort, PortAddress, PortView, RemoteChassis, SwitchView, ViewUpdate,
};

use crate::state::ClusterState;
use crate::validate::{parse_dynamic, parse_mac};

/// One chassis' view, keyed by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// Switches by name.
    pub switches: BTreeMap<String, SwitchView>,
    /// Ports by name.
    pub ports: BTreeMap<String, PortView>,
    /// Remote chassis by name.
    pub chassis: BTreeMap<String, RemoteChassis>,
}

/// Parses "MAC [IP...]" leniently (stored values were validated on write).
fn parse_entry(e: &str) -> Option<PortAddress> {
    let mut w = e.split_whitespace();
    let mac = parse_mac(w.next()?).ok()?;
    Some(PortAddress {
        mac,
        ips: w.map(str::to_string).collect(),
    })
}

/// Resolves a port for the southbound: addresses parsed, `dynamic` replaced by its allocation.
pub fn resolve_port(p: &LogicalSwitchPort, chassis: &str) -> PortView {
    let mut addresses = Vec::new();
    let mut unknown = false;
    for e in &p.addresses {
        match e.trim() {
            "unknown" => unknown = true,
            "dynamic" => {
                if let Some((mac, ip)) = parse_dynamic(&p.dynamic_addresses) {
                    addresses.push(PortAddress {
                        mac,
                        ips: vec![ip.to_string()],
                    });
                }
            }
            other => addresses.extend(parse_entry(other)),
        }
    }
    PortView {
        name: p.name.clone(),
        switch_name: p.switch_name.clone(),
        addresses,
        unknown,
        port_security: p
            .port_security
            .iter()
            .filter_map(|e| parse_entry(e))
            .collect(),
        chassis: chassis.to_string(),
        enabled: p.enabled,
    }
}

/// Computes the view of `chassis`.
pub fn compute(state: &ClusterState, chassis: &str) -> View {
    let bound_to = |port: &str| -> &str {
        state
            .bindings
            .get(port)
            .map(|b| b.chassis.as_str())
            .unwrap_or("")
    };
    let local_switches: BTreeSet<&str> = state
        .ports
        .values()
        .filter(|p| bound_to(&p.name) == chassis)
        .map(|p| p.switch_name.as_str())
        .filter(|s| state.switches.contains_key(*s))
        .collect();
    let mut view = View::default();
    for name in &local_switches {
        if let Some(sw) = state.switches.get(*name) {
            view.switches.insert(
                sw.name.clone(),
                SwitchView {
                    name: sw.name.clone(),
                    vni: sw.vni,
                    subnet: sw.subnet.clone(),
                    mtu: sw.mtu,
                },
            );
        }
    }
    for p in state.ports.values() {
        if !local_switches.contains(p.switch_name.as_str()) {
            continue;
        }
        let c = bound_to(&p.name);
        let pv = match state.resolved.get(&p.name) {
            Some(r) => PortView {
                chassis: c.to_string(),
                ..r.clone()
            },
            None => resolve_port(p, c),
        };
        view.ports.insert(p.name.clone(), pv);
        if !c.is_empty() && c != chassis {
            if let Some(rc) = state.chassis.get(c) {
                view.chassis.insert(
                    rc.name.clone(),
                    RemoteChassis {
                        name: rc.name.clone(),
                        encap_ip: rc.encap_ip.clone(),
                        encap_types: rc.encap_types.clone(),
                    },
                );
            }
        }
    }
    view
}

/// A snapshot update that replaces the whole view.
pub fn snapshot(view: &View, revision: i64) -> ViewUpdate {
    ViewUpdate {
        revision,
        snapshot: true,
        switches: view.switches.values().cloned().collect(),
        ports: view.ports.values().cloned().collect(),
        chassis: view.chassis.values().cloned().collect(),
        ..Default::default()
    }
}

fn diff_map<T: Clone + PartialEq>(
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
) -> (Vec<T>, Vec<String>) {
    let upserts = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(_, v)| v.clone())
        .collect();
    let deletions = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    (upserts, deletions)
}

/// The delta from `old` to `new`, tagged with `revision` (possibly empty).
pub fn delta(old: &View, new: &View, revision: i64) -> ViewUpdate {
    let (switches, deleted_switches) = diff_map(&old.switches, &new.switches);
    let (ports, deleted_ports) = diff_map(&old.ports, &new.ports);
    let (chassis, deleted_chassis) = diff_map(&old.chassis, &new.chassis);
    ViewUpdate {
        revision,
        snapshot: false,
        switches,
        deleted_switches,
        ports,
        deleted_ports,
        chassis,
        deleted_chassis,
    }
}

/// Applies an update to a view (what an agent does); used to check deltas.
pub fn apply(view: &mut View, u: &ViewUpdate) {
    if u.snapshot {
        *view = View::default();
    }
    for s in &u.switches {
        view.switches.insert(s.name.clone(), s.clone());
    }
    for p in &u.ports {
        view.ports.insert(p.name.clone(), p.clone());
    }
    for c in &u.chassis {
        view.chassis.insert(c.name.clone(), c.clone());
    }
    for n in &u.deleted_switches {
        view.switches.remove(n);
    }
    for n in &u.deleted_ports {
        view.ports.remove(n);
    }
    for n in &u.deleted_chassis {
        view.chassis.remove(n);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weft_proto::v1::{Chassis, LogicalSwitch, PortBinding};

    fn state() -> ClusterState {
        let mut s = ClusterState::default();
        for (name, vni) in [("a", 1), ("b", 2)] {
            s.switches.insert(
                name.into(),
                LogicalSwitch {
                    name: name.into(),
                    subnet: "10.0.0.0/24".into(),
                    vni,
                    ..Default::default()
                },
            );
        }
        let port = |n: &str, sw: &str, addrs: &[&str]| LogicalSwitchPort {
            name: n.into(),
            switch_name: sw.into(),
            addresses: addrs.iter().map(|s| s.to_string()).collect(),
            enabled: true,
            ..Default::default()
        };
        let mut p1 = port("p1", "a", &["dynamic", "unknown"]);
        p1.dynamic_addresses = "0a:00:00:00:00:05 10.0.0.5".into();
        p1.port_security = vec!["0a:00:00:00:00:05 10.0.0.5".into()];
        s.ports.insert("p1".into(), p1);
        s.ports.insert(
            "p2".into(),
            port("p2", "a", &["0a:00:00:00:00:06 10.0.0.6"]),
        );
        s.ports.insert("p3".into(), port("p3", "b", &[]));
        s.ports.insert("p4".into(), port("p4", "a", &[]));
        for (p, c) in [("p1", "hv1"), ("p2", "hv2"), ("p3", "hv2")] {
            s.bindings.insert(
                p.into(),
                PortBinding {
                    port: p.into(),
                    chassis: c.into(),
                    up: true,
                },
            );
        }
        for (c, ip) in [("hv1", "192.168.0.1"), ("hv2", "192.168.0.2")] {
            s.chassis.insert(
                c.into(),
                Chassis {
                    name: c.into(),
                    encap_ip: ip.into(),
                    encap_types: vec!["geneve".into()],
                    ..Default::default()
                },
            );
        }
        s
    }

    #[test]
    fn view_of_hv1() {
        let v = compute(&state(), "hv1");
        assert_eq!(v.switches.keys().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(v.ports.keys().collect::<Vec<_>>(), vec!["p1", "p2", "p4"]);
        let p1 = &v.ports["p1"];
        assert_eq!(p1.chassis, "hv1");
        assert!(p1.unknown);
        assert_eq!(p1.addresses[0].mac, "0a:00:00:00:00:05");
        assert_eq!(p1.addresses[0].ips, vec!["10.0.0.5"]);
        assert_eq!(p1.port_security.len(), 1);
        assert_eq!(v.ports["p2"].chassis, "hv2");
        assert_eq!(v.ports["p4"].chassis, "");
        assert_eq!(v.chassis.keys().collect::<Vec<_>>(), vec!["hv2"]);
        assert_eq!(v.chassis["hv2"].encap_ip, "192.168.0.2");
    }

    #[test]
    fn view_of_hv2_and_unknown_chassis() {
        let v = compute(&state(), "hv2");
        assert_eq!(v.switches.len(), 2);
        assert_eq!(v.ports.len(), 4);
        assert_eq!(v.chassis.keys().collect::<Vec<_>>(), vec!["hv1"]);
        assert_eq!(compute(&state(), "hv9"), View::default());
    }

    #[test]
    fn deltas() {
        let s1 = state();
        let v1 = compute(&s1, "hv1");
        let mut s2 = s1.clone();
        // p2 moves to hv1 (hv2 no longer needed), p4 deleted, new port p5 on a
        s2.bindings.get_mut("p2").unwrap().chassis = "hv1".into();
        s2.ports.remove("p4");
        s2.ports.insert(
            "p5".into(),
            LogicalSwitchPort {
                name: "p5".into(),
                switch_name: "a".into(),
                ..Default::default()
            },
        );
        let v2 = compute(&s2, "hv1");
        let d = delta(&v1, &v2, 42);
        assert_eq!(d.revision, 42);
        assert!(!d.snapshot);
        assert!(d.switches.is_empty());
        let names: Vec<_> = d.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["p2", "p5"]);
        assert_eq!(d.deleted_ports, vec!["p4"]);
        assert_eq!(d.deleted_chassis, vec!["hv2"]);
        let mut applied = v1.clone();
        apply(&mut applied, &d);
        assert_eq!(applied, v2);
        // no change → empty delta
        let e = delta(&v2, &v2, 43);
        assert!(e.ports.is_empty() && e.deleted_ports.is_empty() && e.switches.is_empty());
        // unbinding the last local port removes the switch
        let mut s3 = s2.clone();
        s3.bindings.remove("p1");
        s3.bindings.remove("p2");
        let v3 = compute(&s3, "hv1");
        let d = delta(&v2, &v3, 44);
        assert_eq!(d.deleted_switches, vec!["a"]);
        let mut applied = v2.clone();
        apply(&mut applied, &d);
        assert_eq!(applied, View::default());
        let snap = snapshot(&v2, 45);
        let mut fresh = View::default();
        apply(&mut fresh, &snap);
        assert_eq!(fresh, v2);
    }
}
