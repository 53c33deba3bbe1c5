//! A view change by kind: what the controller's view computation produces and what the
//! agent's view consumes, converted once here to and from the generic wire form
//! (`ViewUpdate`: objects of any kind, deletions by kind and name).

use crate::v1::{
    view_object::Kind as K, AclView, AddressSetView, LoadBalancerView, ObjectKey, PortGroupView,
    PortView, RemoteChassis, RouterPortView, RouterView, SwitchView, ViewObject, ViewUpdate,
};

/// Kind names on the wire, as ovn-nbctl spells the tables.
pub mod kinds {
    /// Switches.
    pub const SWITCH: &str = "Logical_Switch";
    /// Switch ports.
    pub const PORT: &str = "Logical_Switch_Port";
    /// Chassis.
    pub const CHASSIS: &str = "Chassis";
    /// Routers.
    pub const ROUTER: &str = "Logical_Router";
    /// Router ports.
    pub const ROUTER_PORT: &str = "Logical_Router_Port";
    /// ACLs (named by key).
    pub const ACL: &str = "ACL";
    /// Port groups.
    pub const PORT_GROUP: &str = "Port_Group";
    /// Address sets.
    pub const ADDRESS_SET: &str = "Address_Set";
    /// Load balancers.
    pub const LOAD_BALANCER: &str = "Load_Balancer";
}

/// A view change, by kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewDelta {
    /// Revision the change brings the view to.
    pub revision: i64,
    /// A full snapshot (replace everything).
    pub snapshot: bool,
    /// Switches added or changed.
    pub switches: Vec<SwitchView>,
    /// Switches removed.
    pub deleted_switches: Vec<String>,
    /// Ports added or changed.
    pub ports: Vec<PortView>,
    /// Ports removed.
    pub deleted_ports: Vec<String>,
    /// Remote chassis added or changed.
    pub chassis: Vec<RemoteChassis>,
    /// Remote chassis removed.
    pub deleted_chassis: Vec<String>,
    /// Routers added or changed.
    pub routers: Vec<RouterView>,
    /// Routers removed.
    pub deleted_routers: Vec<String>,
    /// Router ports added or changed.
    pub router_ports: Vec<RouterPortView>,
    /// Router ports removed.
    pub deleted_router_ports: Vec<String>,
    /// ACLs added or changed.
    pub acls: Vec<AclView>,
    /// ACLs removed (by key).
    pub deleted_acls: Vec<String>,
    /// Port groups added or changed.
    pub port_groups: Vec<PortGroupView>,
    /// Port groups removed.
    pub deleted_port_groups: Vec<String>,
    /// Address sets added or changed.
    pub address_sets: Vec<AddressSetView>,
    /// Address sets removed.
    pub deleted_address_sets: Vec<String>,
    /// Load balancers added or changed.
    pub load_balancers: Vec<LoadBalancerView>,
    /// Load balancers removed.
    pub deleted_load_balancers: Vec<String>,
}

/// A `ViewUpdate` the agent cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewFormError {
    /// An upsert without an object.
    #[error("upserts[{0}]: no object set")]
    EmptyObject(usize),
    /// A deletion of an unknown kind.
    #[error("deleted[{0}]: unknown kind {1:?}")]
    UnknownKind(usize, String),
}

fn key(kind: &str, name: String) -> ObjectKey {
    ObjectKey {
        kind: kind.to_string(),
        name,
    }
}

impl ViewDelta {
    /// The generic wire form: routers, switches, router ports, ports, chassis.
    pub fn into_update(self) -> ViewUpdate {
        let obj = |k| ViewObject { kind: Some(k) };
        let mut upserts = Vec::new();
        upserts.extend(self.routers.into_iter().map(|r| obj(K::Router(r))));
        upserts.extend(self.switches.into_iter().map(|s| obj(K::Switch(s))));
        upserts.extend(self.router_ports.into_iter().map(|p| obj(K::RouterPort(p))));
        upserts.extend(self.ports.into_iter().map(|p| obj(K::Port(p))));
        upserts.extend(self.chassis.into_iter().map(|c| obj(K::Chassis(c))));
        upserts.extend(self.address_sets.into_iter().map(|a| obj(K::AddressSet(a))));
        upserts.extend(self.port_groups.into_iter().map(|g| obj(K::PortGroup(g))));
        upserts.extend(self.acls.into_iter().map(|a| obj(K::Acl(a))));
        upserts.extend(
            self.load_balancers
                .into_iter()
                .map(|l| obj(K::LoadBalancer(l))),
        );
        let mut deleted = Vec::new();
        let del = |kind: &'static str, v: Vec<String>| v.into_iter().map(move |n| key(kind, n));
        deleted.extend(del(kinds::ACL, self.deleted_acls));
        deleted.extend(del(kinds::PORT_GROUP, self.deleted_port_groups));
        deleted.extend(del(kinds::ADDRESS_SET, self.deleted_address_sets));
        deleted.extend(del(kinds::PORT, self.deleted_ports));
        deleted.extend(del(kinds::ROUTER_PORT, self.deleted_router_ports));
        deleted.extend(del(kinds::SWITCH, self.deleted_switches));
        deleted.extend(del(kinds::ROUTER, self.deleted_routers));
        deleted.extend(del(kinds::CHASSIS, self.deleted_chassis));
        deleted.extend(del(kinds::LOAD_BALANCER, self.deleted_load_balancers));
        ViewUpdate {
            revision: self.revision,
            snapshot: self.snapshot,
            upserts,
            deleted,
        }
    }

    /// From the wire form; an object without a kind, or a deletion of an unknown kind, is
    /// an error (the agent rejects the update whole).
    pub fn from_update(u: &ViewUpdate) -> Result<ViewDelta, ViewFormError> {
        let mut d = ViewDelta {
            revision: u.revision,
            snapshot: u.snapshot,
            ..Default::default()
        };
        for (i, o) in u.upserts.iter().enumerate() {
            match &o.kind {
                Some(K::Switch(s)) => d.switches.push(s.clone()),
                Some(K::Port(p)) => d.ports.push(p.clone()),
                Some(K::Chassis(c)) => d.chassis.push(c.clone()),
                Some(K::Router(r)) => d.routers.push(r.clone()),
                Some(K::RouterPort(p)) => d.router_ports.push(p.clone()),
                Some(K::Acl(a)) => d.acls.push(a.clone()),
                Some(K::PortGroup(g)) => d.port_groups.push(g.clone()),
                Some(K::AddressSet(a)) => d.address_sets.push(a.clone()),
                Some(K::LoadBalancer(l)) => d.load_balancers.push(l.clone()),
                None => return Err(ViewFormError::EmptyObject(i)),
            }
        }
        for (i, k) in u.deleted.iter().enumerate() {
            let list = match k.kind.as_str() {
                kinds::SWITCH => &mut d.deleted_switches,
                kinds::PORT => &mut d.deleted_ports,
                kinds::CHASSIS => &mut d.deleted_chassis,
                kinds::ROUTER => &mut d.deleted_routers,
                kinds::ROUTER_PORT => &mut d.deleted_router_ports,
                kinds::ACL => &mut d.deleted_acls,
                kinds::PORT_GROUP => &mut d.deleted_port_groups,
                kinds::ADDRESS_SET => &mut d.deleted_address_sets,
                kinds::LOAD_BALANCER => &mut d.deleted_load_balancers,
                other => return Err(ViewFormError::UnknownKind(i, other.to_string())),
            };
            list.push(k.name.clone());
        }
        Ok(d)
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.switches.is_empty()
            && self.deleted_switches.is_empty()
            && self.ports.is_empty()
            && self.deleted_ports.is_empty()
            && self.chassis.is_empty()
            && self.deleted_chassis.is_empty()
            && self.routers.is_empty()
            && self.deleted_routers.is_empty()
            && self.router_ports.is_empty()
            && self.deleted_router_ports.is_empty()
            && self.acls.is_empty()
            && self.deleted_acls.is_empty()
            && self.port_groups.is_empty()
            && self.deleted_port_groups.is_empty()
            && self.address_sets.is_empty()
            && self.deleted_address_sets.is_empty()
            && self.load_balancers.is_empty()
            && self.deleted_load_balancers.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let d = ViewDelta {
            revision: 7,
            snapshot: true,
            switches: vec![SwitchView {
                name: "ls".into(),
                ..Default::default()
            }],
            deleted_ports: vec!["p".into()],
            routers: vec![RouterView {
                name: "r".into(),
                ..Default::default()
            }],
            deleted_chassis: vec!["hv".into()],
            acls: vec![AclView {
                key: "ls:ls:to-lport:1:0".into(),
                ..Default::default()
            }],
            deleted_address_sets: vec!["as".into()],
            load_balancers: vec![LoadBalancerView {
                name: "lb".into(),
                ..Default::default()
            }],
            deleted_load_balancers: vec!["lb2".into()],
            ..Default::default()
        };
        let u = d.clone().into_update();
        assert_eq!(ViewDelta::from_update(&u).unwrap(), d);
        let mut bad = u.clone();
        bad.deleted.push(key("Nope", "x".into()));
        assert!(ViewDelta::from_update(&bad).is_err());
        let mut bad = u;
        bad.upserts.push(ViewObject { kind: None });
        assert!(ViewDelta::from_update(&bad).is_err());
    }
}
