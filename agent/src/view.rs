//! The chassis view as the agent holds it: the switches, ports and remote chassis the
//! controller sent (southbound `ViewUpdate`s), parsed and validated into typed values.
//!
//! Start with [`ChassisView::apply`]: a snapshot replaces the view, a delta upserts then
//! deletes. Every object of an update is validated before anything changes; an invalid update
//! is rejected as a whole with a [`ViewError`] naming the object, the field and the value, and
//! the view is left exactly as it was. The returned [`ViewChange`] lists the objects whose
//! value actually changed, so the pipeline compiler can recompile only those.
//!
//! The view also keeps indexes (ports by switch, ports by chassis, router ports by router,
//! router-type switch ports by switch and by the router port they attach) so that the
//! compiler can find the objects affected by a change without scanning every port.
//!
//! Routers and router ports (see [`Router`], [`RouterPort`]) are validated together with
//! the rest of an update: datapath keys unique across switches and routers, router port
//! keys unique per router, unicast MACs, networks in CIDR form, every router port on a
//! router of the view. Deleting a router deletes its ports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use weft_openflow::flow::Mac;
use weft_proto::model::route::StaticRoute;
use weft_proto::model::view::ViewDelta;
use weft_proto::v1::{
    PortAddress, PortView, RemoteChassis, RouterPortView, RouterView, SwitchView,
};

use crate::pipeline::Encap;

/// Largest VNI a switch can have (24 bits, shared by VXLAN and Geneve; GRE keys are wider).
pub const MAX_VNI: u32 = 0xFF_FFFF;
/// Largest logical datapath key (`SwitchView.tunnel_key`, OpenFlow metadata).
pub const MAX_DATAPATH_KEY: u32 = 0xFF_FFFF;
/// Largest logical port key (`PortView.tunnel_key`, reg14/reg15 and the Geneve option).
pub const MAX_PORT_KEY: u32 = 0x7FFF;

/// An IPv4 address with a prefix length; `/32` when written without a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Prefix {
    /// The netmask of the prefix (`255.255.255.0` for `/24`).
    pub fn mask(&self) -> Ipv4Addr {
        let bits = if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        };
        Ipv4Addr::from(bits)
    }

    /// The address with its host bits cleared (what OpenFlow stores for a masked match).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & u32::from(self.mask()))
    }

    pub fn is_host(&self) -> bool {
        self.len == 32
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                let len: u8 = l
                    .parse()
                    .map_err(|_| format!("prefix length {l:?} is not a number"))?;
                if len > 32 {
                    return Err(format!("prefix length {len} is larger than 32"));
                }
                (a, len)
            }
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        Ok(Ipv4Prefix { addr, len })
    }
}

/// An IPv6 address with a prefix length; `/128` when written without a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Prefix {
    pub addr: std::net::Ipv6Addr,
    pub len: u8,
}

impl Ipv6Prefix {
    /// The prefix mask (`ffff:ffff:ffff:ffff::` for `/64`).
    pub fn mask(&self) -> std::net::Ipv6Addr {
        let bits = if self.len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.len))
        };
        std::net::Ipv6Addr::from(bits)
    }

    /// The address with its host bits cleared.
    pub fn network(&self) -> std::net::Ipv6Addr {
        std::net::Ipv6Addr::from(u128::from(self.addr) & u128::from(self.mask()))
    }

    pub fn is_host(&self) -> bool {
        self.len == 128
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                let len: u8 = l
                    .parse()
                    .map_err(|_| format!("prefix length {l:?} is not a number"))?;
                if len > 128 {
                    return Err(format!("prefix length {len} is larger than 128"));
                }
                (a, len)
            }
            None => (s, 128),
        };
        let addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv6 address"))?;
        Ok(Ipv6Prefix { addr, len })
    }
}

/// A logical switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Switch {
    pub name: String,
    /// Tunnel key on the wire, 1..=[`MAX_VNI`]; unique within the view.
    pub vni: u32,
    /// Logical datapath key (OpenFlow `metadata`), 1..=[`MAX_DATAPATH_KEY`]; unique within
    /// the view.
    pub key: u32,
    pub subnet: Option<Ipv4Prefix>,
    pub mtu: u32,
    /// Names of the load balancers applied on the switch (sorted; those in the view are in
    /// [`ChassisView::load_balancer`]).
    pub load_balancers: Vec<String>,
}

/// A load balancer of the view, its rules parsed by the shared model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancer {
    pub name: String,
    pub rules: weft_proto::model::load_balancer::LoadBalancerRules,
    /// Backends a health check reported offline
    /// ([`weft_proto::model::load_balancer::status_key`]s).
    pub offline: BTreeSet<String>,
}

impl LoadBalancer {
    /// The backends of `rule` that take new connections (see
    /// [`weft_proto::model::load_balancer::LoadBalancerRules::live_backends`]).
    pub fn live_backends<'a>(
        &self,
        rule: &'a weft_proto::model::load_balancer::VipRule,
    ) -> Vec<&'a weft_proto::model::load_balancer::Endpoint> {
        self.rules.live_backends(rule, &self.offline)
    }
}

/// One resolved port address: a MAC and the IPv4 addresses that go with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub mac: Mac,
    /// Host addresses (a `/prefix` written in the view is dropped, the address kept).
    pub ips: Vec<Ipv4Addr>,
}

/// One port-security entry: a source MAC and the source IPv4 and IPv6 prefixes allowed
/// with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityAddress {
    pub mac: Mac,
    /// IPv4 sources. Both lists empty = only the MAC is checked.
    pub ips: Vec<Ipv4Prefix>,
    /// IPv6 sources (the MAC's EUI-64 link-local address is allowed besides these).
    pub ipv6: Vec<Ipv6Prefix>,
}

/// A logical switch port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub switch: String,
    pub addresses: Vec<Address>,
    /// Also receives traffic for unknown destination MACs.
    pub unknown: bool,
    /// Empty = no anti-spoofing.
    pub port_security: Vec<SecurityAddress>,
    /// Chassis the port is bound to; `None` when unbound.
    pub chassis: Option<String>,
    pub enabled: bool,
    /// Logical port key (reg14/reg15), 1..=[`MAX_PORT_KEY`]; unique within its switch.
    pub key: u32,
    pub kind: PortKind,
    /// Type options (`router-port=LRP` for a router port).
    pub options: BTreeMap<String, String>,
}

/// A port's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// A VIF (type "").
    Vif,
    /// The switch side of a router port (type "router").
    Router,
    /// The switch's connection to a provider network (type "localnet",
    /// `options:network_name`); present on every chassis that maps the network.
    Localnet,
}

/// A logical router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Router {
    pub name: String,
    /// Logical datapath key (OpenFlow `metadata`), 1..=[`MAX_DATAPATH_KEY`]; unique among
    /// the switches and routers of the view.
    pub key: u32,
    pub enabled: bool,
    /// Static routes, as stored (parsed by the shared model).
    pub routes: Vec<StaticRoute>,
    /// NAT rules, as stored (parsed by the shared model).
    pub nat: Vec<weft_proto::model::nat::NatRule>,
    /// Names of the load balancers applied on the router (`lr-lb-add`; see
    /// [`ChassisView::router_load_balancers`]).
    pub load_balancers: Vec<String>,
}

/// A logical router port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterPort {
    pub name: String,
    pub router: String,
    /// Unicast.
    pub mac: Mac,
    /// The port's addresses with their prefix lengths (`10.31.0.1/24`).
    pub networks: Vec<Ipv4Prefix>,
    /// The peer router port, if any (router-to-router links).
    pub peer: Option<String>,
    /// Logical port key (reg14/reg15 on the router datapath), 1..=[`MAX_PORT_KEY`]; unique
    /// within its router.
    pub key: u32,
    pub enabled: bool,
    /// `options:gateway_mtu`: the MTU of the network behind the port
    /// ([`crate::pipeline::mtu`]).
    pub gateway_mtu: Option<u16>,
    /// Gateway chassis (a distributed gateway port when not empty).
    pub gateway_chassis: Vec<weft_proto::model::nat::Gateway>,
    /// The active one, computed by the controller from the leases; `None` = none alive.
    pub active_gateway: Option<String>,
}

impl RouterPort {
    /// A distributed gateway port (it has gateway chassis).
    pub fn is_gateway(&self) -> bool {
        !self.gateway_chassis.is_empty()
    }
}

impl Ipv4Prefix {
    /// True when `ip` is inside this prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.mask()) == u32::from(self.network())
    }
}

/// A remote chassis: a tunnel endpoint other ports live on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chassis {
    pub name: String,
    pub encap_ip: Ipv4Addr,
    /// In order of preference.
    pub encap_types: Vec<Encap>,
}

/// Why an update was rejected. The view is unchanged when `apply` returns one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// One field of one object is invalid.
    #[error("invalid {kind} {name:?}: {field} = {value:?}: {reason}")]
    Invalid {
        /// "switch", "port", "chassis", "router" or "router port".
        kind: &'static str,
        name: String,
        /// The field, e.g. "vni" or "addresses[1].mac".
        field: String,
        value: String,
        reason: String,
    },
    /// The update's revision is older than the view's.
    #[error("update revision {got} is older than the view's revision {current}")]
    RevisionBackwards { current: i64, got: i64 },
}

impl ViewError {
    fn invalid(
        kind: &'static str,
        name: &str,
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ViewError::Invalid {
            kind,
            name: name.to_string(),
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// What an applied update changed: the names of the objects that were added, modified or
/// removed (an upsert of an identical object is not a change). The compiler recompiles the
/// owners derived from these; the agent may also add port names itself when a VIF binding
/// changes ([`ViewChange::mark_port`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewChange {
    /// Revision of the view after the update.
    pub revision: i64,
    /// The update was a snapshot (the sets still hold only what differs).
    pub snapshot: bool,
    pub switches: BTreeSet<String>,
    pub ports: BTreeSet<String>,
    pub chassis: BTreeSet<String>,
    pub routers: BTreeSet<String>,
    pub router_ports: BTreeSet<String>,
    /// ACLs (by key), port groups and address sets that changed.
    pub acls: BTreeSet<String>,
    pub port_groups: BTreeSet<String>,
    pub address_sets: BTreeSet<String>,
    /// Switches that became or stopped being stateful (an ACL other than allow-stateless
    /// applies to one of their ports).
    pub stateful_switches: BTreeSet<String>,
    pub load_balancers: BTreeSet<String>,
}

impl ViewChange {
    /// No object changed.
    pub fn is_empty(&self) -> bool {
        self.switches.is_empty()
            && self.ports.is_empty()
            && self.chassis.is_empty()
            && self.routers.is_empty()
            && self.router_ports.is_empty()
            && self.acls.is_empty()
            && self.port_groups.is_empty()
            && self.address_sets.is_empty()
            && self.stateful_switches.is_empty()
            && self.load_balancers.is_empty()
    }

    /// Marks a port as changed (for example because its VIF appeared or its ofport changed).
    pub fn mark_port(&mut self, name: impl Into<String>) {
        self.ports.insert(name.into());
    }

    /// Folds a later change into this one.
    pub fn merge(&mut self, other: ViewChange) {
        self.revision = self.revision.max(other.revision);
        self.snapshot |= other.snapshot;
        self.switches.extend(other.switches);
        self.ports.extend(other.ports);
        self.chassis.extend(other.chassis);
        self.routers.extend(other.routers);
        self.router_ports.extend(other.router_ports);
        self.acls.extend(other.acls);
        self.port_groups.extend(other.port_groups);
        self.address_sets.extend(other.address_sets);
        self.stateful_switches.extend(other.stateful_switches);
        self.load_balancers.extend(other.load_balancers);
    }
}

/// The validated view of one chassis. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct ChassisView {
    revision: i64,
    switches: BTreeMap<String, Switch>,
    ports: BTreeMap<String, Port>,
    chassis: BTreeMap<String, Chassis>,
    ports_by_switch: BTreeMap<String, BTreeSet<String>>,
    /// Keyed by the port's chassis name (bound ports only), whether or not that chassis is in
    /// the view.
    ports_by_chassis: BTreeMap<String, BTreeSet<String>>,
    vni_index: BTreeMap<u32, String>,
    /// Datapath key → switch.
    key_index: BTreeMap<u32, String>,
    /// (switch, port key) → port.
    port_key_index: BTreeMap<(String, u32), String>,
    routers: BTreeMap<String, Router>,
    router_ports: BTreeMap<String, RouterPort>,
    router_ports_by_router: BTreeMap<String, BTreeSet<String>>,
    /// Router port name (`options:router-port`) → the router-type switch ports naming it.
    router_lsps: BTreeMap<String, BTreeSet<String>>,
    /// Switch → its router-type ports.
    router_lsps_by_switch: BTreeMap<String, BTreeSet<String>>,
    /// ACLs, port groups and address sets ([`crate::view_acl`]).
    acl: crate::view_acl::AclPart,
    /// Switches an ACL other than allow-stateless applies to (conntrack runs there).
    stateful: BTreeSet<String>,
    load_balancers: BTreeMap<String, LoadBalancer>,
}

/// The routers and router ports an update leads to, validated, and what changed.
struct RouterPart {
    routers: BTreeMap<String, Router>,
    router_ports: BTreeMap<String, RouterPort>,
    changed_routers: BTreeSet<String>,
    changed_router_ports: BTreeSet<String>,
}

impl ChassisView {
    pub fn new() -> Self {
        Self::default()
    }

    /// The revision of the last applied update (0 before the first).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// A load balancer of the view.
    pub fn load_balancer(&self, name: &str) -> Option<&LoadBalancer> {
        self.load_balancers.get(name)
    }

    /// Every load balancer of the view, by name.
    pub fn all_load_balancers(&self) -> impl Iterator<Item = &LoadBalancer> {
        self.load_balancers.values()
    }

    /// The load balancers of switch `sw` that are in the view, in name order.
    pub fn load_balancers_of<'a>(
        &'a self,
        sw: &'a Switch,
    ) -> impl Iterator<Item = &'a LoadBalancer> + 'a {
        sw.load_balancers
            .iter()
            .filter_map(|n| self.load_balancers.get(n))
    }

    /// The load balancers of router `r` that are in the view, in name order.
    pub fn router_load_balancers<'a>(
        &'a self,
        r: &'a Router,
    ) -> impl Iterator<Item = &'a LoadBalancer> + 'a {
        r.load_balancers
            .iter()
            .filter_map(|n| self.load_balancers.get(n))
    }

    pub fn switch(&self, name: &str) -> Option<&Switch> {
        self.switches.get(name)
    }

    pub fn port(&self, name: &str) -> Option<&Port> {
        self.ports.get(name)
    }

    /// A remote chassis by name.
    pub fn chassis(&self, name: &str) -> Option<&Chassis> {
        self.chassis.get(name)
    }

    /// Every remote chassis, by name.
    pub fn all_chassis(&self) -> impl Iterator<Item = &Chassis> {
        self.chassis.values()
    }

    /// Every switch, by name.
    pub fn switches(&self) -> impl Iterator<Item = &Switch> {
        self.switches.values()
    }

    /// Every port, by name.
    pub fn ports(&self) -> impl Iterator<Item = &Port> {
        self.ports.values()
    }

    /// The ports of one switch, by name.
    pub fn ports_of_switch<'a>(&'a self, switch: &str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ports_by_switch
            .get(switch)
            .into_iter()
            .flatten()
            .filter_map(|p| self.ports.get(p))
    }

    /// The ports bound to one chassis (local or remote), by name.
    pub fn ports_on_chassis<'a>(&'a self, chassis: &str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ports_by_chassis
            .get(chassis)
            .into_iter()
            .flatten()
            .filter_map(|p| self.ports.get(p))
    }

    pub fn router(&self, name: &str) -> Option<&Router> {
        self.routers.get(name)
    }

    /// Every router, by name.
    pub fn routers(&self) -> impl Iterator<Item = &Router> {
        self.routers.values()
    }

    pub fn router_port(&self, name: &str) -> Option<&RouterPort> {
        self.router_ports.get(name)
    }

    /// Every router port, by name.
    pub fn router_ports(&self) -> impl Iterator<Item = &RouterPort> {
        self.router_ports.values()
    }

    /// The ports of one router, by name.
    pub fn router_ports_of<'a>(
        &'a self,
        router: &str,
    ) -> impl Iterator<Item = &'a RouterPort> + 'a {
        self.router_ports_by_router
            .get(router)
            .into_iter()
            .flatten()
            .filter_map(|p| self.router_ports.get(p))
    }

    /// The router-type switch port attaching router port `lrp` to a switch (the first by
    /// name when several name it).
    pub fn attached_lsp(&self, lrp: &str) -> Option<&Port> {
        self.router_lsps
            .get(lrp)
            .into_iter()
            .flatten()
            .find_map(|p| self.ports.get(p))
    }

    /// The router-type ports of one switch, by name.
    pub fn router_lsps_of_switch<'a>(
        &'a self,
        switch: &str,
    ) -> impl Iterator<Item = &'a Port> + 'a {
        self.router_lsps_by_switch
            .get(switch)
            .into_iter()
            .flatten()
            .filter_map(|p| self.ports.get(p))
    }

    /// The ACL part: ACLs, port groups, address sets.
    pub fn acl(&self) -> &crate::view_acl::AclPart {
        &self.acl
    }

    /// Whether conntrack runs on `switch` (an ACL other than allow-stateless applies to it).
    pub fn is_stateful(&self, switch: &str) -> bool {
        self.stateful.contains(switch)
    }

    fn compute_stateful(&self) -> BTreeSet<String> {
        use weft_proto::model::acl::Entity;
        let mut out = BTreeSet::new();
        for a in self.acl.acls().filter(|a| a.verdict.is_stateful()) {
            match &a.entity {
                Entity::Switch(s) => {
                    out.insert(s.clone());
                }
                Entity::PortGroup(g) => {
                    for p in self
                        .acl
                        .port_group(g)
                        .into_iter()
                        .flat_map(|g| g.ports.iter())
                    {
                        if let Some(p) = self.ports.get(p) {
                            out.insert(p.switch.clone());
                        }
                    }
                }
            }
        }
        out.retain(|s| self.switches.contains_key(s));
        out
    }

    /// Applies a snapshot or a delta. All-or-nothing: on error the view is unchanged.
    ///
    /// A snapshot ignores the `deleted_*` lists. A delta upserts switches, chassis and ports,
    /// then deletes ports, switches (with the ports still on them) and chassis; deleting a
    /// name the view does not hold is not an error. Ports may name a chassis that is not in
    /// the view (they are unreachable until it arrives).
    pub fn apply(&mut self, update: &ViewDelta) -> Result<ViewChange, ViewError> {
        if update.revision < self.revision {
            return Err(ViewError::RevisionBackwards {
                current: self.revision,
                got: update.revision,
            });
        }
        let switches = parse_unique(&update.switches, "switch", |s| &s.name, parse_switch)?;
        let chassis = parse_unique(&update.chassis, "chassis", |c| &c.name, parse_chassis)?;
        let ports = parse_unique(&update.ports, "port", |p| &p.name, parse_port)?;
        let routers = parse_unique(&update.routers, "router", |r| &r.name, parse_router)?;
        let router_ports = parse_unique(
            &update.router_ports,
            "router port",
            |p| &p.name,
            parse_router_port,
        )?;
        let part = self.router_part(update, &switches, routers, router_ports)?;
        let acl_next = self.acl.next(update)?;
        let lbs = parse_unique(
            &update.load_balancers,
            "load balancer",
            |l| &l.name,
            parse_load_balancer,
        )?;
        // A delta's LB changes cost the LBs it names, not every LB in the view (no copy of
        // the map: it is changed only once the rest of the update is accepted).
        let lb_changes = if update.snapshot {
            changed_keys(&self.load_balancers, &lbs)
        } else {
            changed_lbs(&self.load_balancers, &update.deleted_load_balancers, &lbs)
        };
        let mut change = if update.snapshot {
            self.apply_snapshot(update.revision, switches, ports, chassis)?
        } else {
            self.apply_delta(update, switches, ports, chassis)?
        };
        if let Some((acl, ac)) = acl_next {
            self.acl = acl;
            change.acls = ac.acls;
            change.port_groups = ac.port_groups;
            change.address_sets = ac.address_sets;
        }
        let stateful = self.compute_stateful();
        change.stateful_switches = stateful
            .symmetric_difference(&self.stateful)
            .cloned()
            .collect();
        self.stateful = stateful;
        change.load_balancers = lb_changes;
        if update.snapshot {
            self.load_balancers = lbs;
        } else {
            for name in &update.deleted_load_balancers {
                self.load_balancers.remove(name);
            }
            self.load_balancers.extend(lbs);
        }
        change.routers = part.changed_routers;
        change.router_ports = part.changed_router_ports;
        self.routers = part.routers;
        self.router_ports = part.router_ports;
        self.router_ports_by_router.clear();
        for p in self.router_ports.values() {
            self.router_ports_by_router
                .entry(p.router.clone())
                .or_default()
                .insert(p.name.clone());
        }
        Ok(change)
    }

    /// The routers and router ports after `update`, validated against the switches it leads
    /// to (datapath keys are shared). Routers are few: this rebuilds their maps.
    fn router_part(
        &self,
        update: &ViewDelta,
        switches: &BTreeMap<String, Switch>,
        routers: BTreeMap<String, Router>,
        router_ports: BTreeMap<String, RouterPort>,
    ) -> Result<RouterPart, ViewError> {
        let (next_routers, next_ports) = if update.snapshot {
            (routers, router_ports)
        } else {
            let mut r = self.routers.clone();
            r.extend(routers);
            for name in &update.deleted_routers {
                r.remove(name);
            }
            let mut p = self.router_ports.clone();
            for name in &update.deleted_router_ports {
                p.remove(name);
            }
            // Cascade: the ports of a deleted router go with it (upserted ones are rejected
            // below).
            p.retain(|_, rp| r.contains_key(&rp.router));
            p.extend(router_ports);
            (r, p)
        };
        // Datapath keys of the switches after the update.
        let mut switch_keys: BTreeMap<u32, &str> = BTreeMap::new();
        if !update.snapshot {
            let deleted: BTreeSet<&str> =
                update.deleted_switches.iter().map(String::as_str).collect();
            for s in self.switches.values() {
                if !deleted.contains(s.name.as_str()) && !switches.contains_key(&s.name) {
                    switch_keys.insert(s.key, &s.name);
                }
            }
        }
        for s in switches.values() {
            switch_keys.insert(s.key, &s.name);
        }
        let mut router_keys: BTreeMap<u32, &str> = BTreeMap::new();
        for r in next_routers.values() {
            let conflict = switch_keys
                .get(&r.key)
                .map(|s| format!("already used by switch {s:?}"))
                .or_else(|| {
                    router_keys
                        .insert(r.key, &r.name)
                        .map(|o| format!("already used by router {o:?}"))
                });
            if let Some(reason) = conflict {
                return Err(ViewError::invalid(
                    "router",
                    &r.name,
                    "tunnel_key",
                    r.key.to_string(),
                    reason,
                ));
            }
        }
        let mut port_keys: BTreeMap<(&str, u32), &str> = BTreeMap::new();
        for p in next_ports.values() {
            if !next_routers.contains_key(&p.router) {
                return Err(ViewError::invalid(
                    "router port",
                    &p.name,
                    "router",
                    &p.router,
                    "no such router in the view after this update",
                ));
            }
            if let Some(o) = port_keys.insert((p.router.as_str(), p.key), &p.name) {
                return Err(ViewError::invalid(
                    "router port",
                    &p.name,
                    "tunnel_key",
                    p.key.to_string(),
                    format!("already used by router port {o:?} on router {:?}", p.router),
                ));
            }
        }
        Ok(RouterPart {
            changed_routers: changed_keys(&self.routers, &next_routers),
            changed_router_ports: changed_keys(&self.router_ports, &next_ports),
            routers: next_routers,
            router_ports: next_ports,
        })
    }

    fn apply_snapshot(
        &mut self,
        revision: i64,
        switches: BTreeMap<String, Switch>,
        ports: BTreeMap<String, Port>,
        chassis: BTreeMap<String, Chassis>,
    ) -> Result<ViewChange, ViewError> {
        let mut vni_index = BTreeMap::new();
        let mut key_index = BTreeMap::new();
        for s in switches.values() {
            if let Some(other) = vni_index.insert(s.vni, s.name.clone()) {
                return Err(vni_conflict(s, &other));
            }
            if let Some(other) = key_index.insert(s.key, s.name.clone()) {
                return Err(key_conflict(s, &other));
            }
        }
        let mut port_keys: BTreeMap<(&str, u32), &str> = BTreeMap::new();
        for p in ports.values() {
            if !switches.contains_key(&p.switch) {
                return Err(unknown_switch(p));
            }
            if let Some(other) = port_keys.insert((p.switch.as_str(), p.key), p.name.as_str()) {
                return Err(port_key_conflict(p, other));
            }
        }
        let change = ViewChange {
            revision,
            snapshot: true,
            switches: changed_keys(&self.switches, &switches),
            ports: changed_keys(&self.ports, &ports),
            chassis: changed_keys(&self.chassis, &chassis),
            ..ViewChange::default()
        };
        let mut next = ChassisView {
            revision,
            switches,
            ports: BTreeMap::new(),
            chassis,
            ports_by_switch: BTreeMap::new(),
            ports_by_chassis: BTreeMap::new(),
            vni_index,
            key_index,
            port_key_index: BTreeMap::new(),
            routers: BTreeMap::new(),
            router_ports: BTreeMap::new(),
            router_ports_by_router: BTreeMap::new(),
            router_lsps: BTreeMap::new(),
            router_lsps_by_switch: BTreeMap::new(),
            acl: std::mem::take(&mut self.acl),
            stateful: std::mem::take(&mut self.stateful),
            // Replaced by `apply` (which compares with the old ones).
            load_balancers: std::mem::take(&mut self.load_balancers),
        };
        for p in ports.into_values() {
            next.insert_port(p);
        }
        *self = next;
        Ok(change)
    }

    fn apply_delta(
        &mut self,
        update: &ViewDelta,
        switches: BTreeMap<String, Switch>,
        ports: BTreeMap<String, Port>,
        chassis: BTreeMap<String, Chassis>,
    ) -> Result<ViewChange, ViewError> {
        let deleted_switches: BTreeSet<&str> =
            update.deleted_switches.iter().map(String::as_str).collect();
        let survives = |name: &str| !deleted_switches.contains(name);

        // Validate against the state the delta leads to, without building it.
        for p in ports.values() {
            let known = switches.contains_key(&p.switch) || self.switches.contains_key(&p.switch);
            if !known || !survives(&p.switch) {
                return Err(unknown_switch(p));
            }
        }
        let deleted_ports: BTreeSet<&str> =
            update.deleted_ports.iter().map(String::as_str).collect();
        let mut new_port_keys: BTreeMap<(&str, u32), &str> = BTreeMap::new();
        for p in ports.values() {
            if let Some(other) = new_port_keys.insert((p.switch.as_str(), p.key), &p.name) {
                return Err(port_key_conflict(p, other));
            }
            if let Some(holder) = self.port_key_index.get(&(p.switch.clone(), p.key)) {
                let holder_keeps_key = holder != &p.name
                    && !deleted_ports.contains(holder.as_str())
                    && !ports.contains_key(holder.as_str());
                if holder_keeps_key {
                    return Err(port_key_conflict(p, holder));
                }
            }
        }
        let mut new_keys: BTreeMap<u32, &str> = BTreeMap::new();
        for s in switches.values().filter(|s| survives(&s.name)) {
            if let Some(other) = new_keys.insert(s.key, &s.name) {
                return Err(key_conflict(s, other));
            }
            if let Some(holder) = self.key_index.get(&s.key) {
                let holder_keeps_key = holder != &s.name
                    && survives(holder)
                    && !switches.contains_key(holder.as_str());
                if holder_keeps_key {
                    return Err(key_conflict(s, holder));
                }
            }
        }
        let mut new_vnis: BTreeMap<u32, &str> = BTreeMap::new();
        for s in switches.values().filter(|s| survives(&s.name)) {
            if let Some(other) = new_vnis.insert(s.vni, &s.name) {
                return Err(vni_conflict(s, other));
            }
            if let Some(holder) = self.vni_index.get(&s.vni) {
                let holder_keeps_vni = holder != &s.name
                    && survives(holder)
                    && !switches.contains_key(holder.as_str());
                if holder_keeps_vni {
                    return Err(vni_conflict(s, holder));
                }
            }
        }

        // Everything is valid: mutate. Upserts first, then deletions.
        let mut change = ViewChange {
            revision: update.revision,
            snapshot: false,
            ..ViewChange::default()
        };
        for s in switches.into_values() {
            if self.switches.get(&s.name) == Some(&s) {
                continue;
            }
            if let Some(old) = self.switches.get(&s.name) {
                if self.vni_index.get(&old.vni) == Some(&old.name) {
                    self.vni_index.remove(&old.vni);
                }
                if self.key_index.get(&old.key) == Some(&old.name) {
                    self.key_index.remove(&old.key);
                }
            }
            change.switches.insert(s.name.clone());
            self.vni_index.insert(s.vni, s.name.clone());
            self.key_index.insert(s.key, s.name.clone());
            self.switches.insert(s.name.clone(), s);
        }
        for c in chassis.into_values() {
            if self.chassis.get(&c.name) != Some(&c) {
                change.chassis.insert(c.name.clone());
                self.chassis.insert(c.name.clone(), c);
            }
        }
        for p in ports.into_values() {
            if self.ports.get(&p.name) != Some(&p) {
                change.ports.insert(p.name.clone());
                self.remove_port(&p.name);
                self.insert_port(p);
            }
        }
        for name in &update.deleted_ports {
            if self.remove_port(name).is_some() {
                change.ports.insert(name.clone());
            }
        }
        for name in &update.deleted_switches {
            if let Some(old) = self.switches.remove(name) {
                if self.vni_index.get(&old.vni) == Some(name) {
                    self.vni_index.remove(&old.vni);
                }
                if self.key_index.get(&old.key) == Some(name) {
                    self.key_index.remove(&old.key);
                }
                change.switches.insert(name.clone());
                // Cascade: a port cannot outlive its switch.
                let orphans: Vec<String> = self
                    .ports_by_switch
                    .get(name)
                    .map(|set| set.iter().cloned().collect())
                    .unwrap_or_default();
                for p in orphans {
                    self.remove_port(&p);
                    change.ports.insert(p);
                }
            }
        }
        for name in &update.deleted_chassis {
            if self.chassis.remove(name).is_some() {
                change.chassis.insert(name.clone());
            }
        }
        self.revision = update.revision;
        Ok(change)
    }

    fn insert_port(&mut self, p: Port) {
        if let Some(lrp) = router_port_option(&p) {
            self.router_lsps
                .entry(lrp.to_string())
                .or_default()
                .insert(p.name.clone());
            self.router_lsps_by_switch
                .entry(p.switch.clone())
                .or_default()
                .insert(p.name.clone());
        }
        self.port_key_index
            .insert((p.switch.clone(), p.key), p.name.clone());
        self.ports_by_switch
            .entry(p.switch.clone())
            .or_default()
            .insert(p.name.clone());
        if let Some(c) = &p.chassis {
            self.ports_by_chassis
                .entry(c.clone())
                .or_default()
                .insert(p.name.clone());
        }
        self.ports.insert(p.name.clone(), p);
    }

    fn remove_port(&mut self, name: &str) -> Option<Port> {
        let p = self.ports.remove(name)?;
        let k = (p.switch.clone(), p.key);
        if self.port_key_index.get(&k).map(String::as_str) == Some(name) {
            self.port_key_index.remove(&k);
        }
        remove_from_index(&mut self.ports_by_switch, &p.switch, name);
        if let Some(lrp) = router_port_option(&p) {
            remove_from_index(&mut self.router_lsps, lrp, name);
            remove_from_index(&mut self.router_lsps_by_switch, &p.switch, name);
        }
        if let Some(c) = &p.chassis {
            remove_from_index(&mut self.ports_by_chassis, c, name);
        }
        Some(p)
    }
}

/// The router port a router-type switch port attaches (`options:router-port`).
/// The provider network of a localnet port (`options:network_name`).
pub fn localnet_network(p: &Port) -> Option<&str> {
    (p.kind == PortKind::Localnet)
        .then(|| {
            p.options
                .get(weft_proto::model::LOCALNET_NETWORK_NAME)
                .map(String::as_str)
        })
        .flatten()
        .filter(|s| !s.is_empty())
}

pub fn router_port_option(p: &Port) -> Option<&str> {
    (p.kind == PortKind::Router)
        .then(|| p.options.get("router-port").map(String::as_str))
        .flatten()
        .filter(|s| !s.is_empty())
}

fn remove_from_index(index: &mut BTreeMap<String, BTreeSet<String>>, key: &str, name: &str) {
    if let Some(set) = index.get_mut(key) {
        set.remove(name);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

/// The names whose value a delta changes: `deleted` (then `upserts`) applied to `old`.
fn changed_lbs<V: PartialEq>(
    old: &BTreeMap<String, V>,
    deleted: &[String],
    upserts: &BTreeMap<String, V>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in deleted {
        if old.contains_key(name) && !upserts.contains_key(name) {
            out.insert(name.clone());
        }
    }
    for (name, v) in upserts {
        if old.get(name) != Some(v) {
            out.insert(name.clone());
        }
    }
    out
}

fn changed_keys<V: PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            out.insert(k.clone());
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.insert(k.clone());
        }
    }
    out
}

fn unknown_switch(p: &Port) -> ViewError {
    ViewError::invalid(
        "port",
        &p.name,
        "switch_name",
        &p.switch,
        "no such switch in the view after this update",
    )
}

fn key_conflict(s: &Switch, other: &str) -> ViewError {
    ViewError::invalid(
        "switch",
        &s.name,
        "tunnel_key",
        s.key.to_string(),
        format!("already used by switch {other:?}"),
    )
}

fn port_key_conflict(p: &Port, other: &str) -> ViewError {
    ViewError::invalid(
        "port",
        &p.name,
        "tunnel_key",
        p.key.to_string(),
        format!("already used by port {other:?} on switch {:?}", p.switch),
    )
}

fn vni_conflict(s: &Switch, other: &str) -> ViewError {
    ViewError::invalid(
        "switch",
        &s.name,
        "vni",
        s.vni.to_string(),
        format!("already used by switch {other:?}"),
    )
}

/// Parses every object of one kind, rejecting empty and duplicate names.
fn parse_unique<T, U>(
    items: &[T],
    kind: &'static str,
    name: impl Fn(&T) -> &String,
    parse: impl Fn(&T) -> Result<U, ViewError>,
) -> Result<BTreeMap<String, U>, ViewError> {
    let mut out = BTreeMap::new();
    for item in items {
        let n = name(item);
        if n.is_empty() {
            return Err(ViewError::invalid(kind, n, "name", n, "must not be empty"));
        }
        if out.contains_key(n) {
            return Err(ViewError::invalid(
                kind,
                n,
                "name",
                n,
                "appears more than once in the update",
            ));
        }
        out.insert(n.clone(), parse(item)?);
    }
    Ok(out)
}

fn parse_switch(s: &SwitchView) -> Result<Switch, ViewError> {
    if s.vni == 0 || s.vni > MAX_VNI {
        return Err(ViewError::invalid(
            "switch",
            &s.name,
            "vni",
            s.vni.to_string(),
            format!("must be in 1..={MAX_VNI}"),
        ));
    }
    let subnet = if s.subnet.is_empty() {
        None
    } else {
        let p: Ipv4Prefix = s
            .subnet
            .parse()
            .map_err(|e| ViewError::invalid("switch", &s.name, "subnet", &s.subnet, e))?;
        if !s.subnet.contains('/') {
            return Err(ViewError::invalid(
                "switch",
                &s.name,
                "subnet",
                &s.subnet,
                "must be in CIDR form a.b.c.d/len",
            ));
        }
        Some(p)
    };
    if s.tunnel_key == 0 || s.tunnel_key > MAX_DATAPATH_KEY {
        return Err(ViewError::invalid(
            "switch",
            &s.name,
            "tunnel_key",
            s.tunnel_key.to_string(),
            format!("must be in 1..={MAX_DATAPATH_KEY}"),
        ));
    }
    Ok(Switch {
        name: s.name.clone(),
        vni: s.vni,
        key: s.tunnel_key,
        subnet,
        mtu: s.mtu,
        load_balancers: s.load_balancer.clone(),
    })
}

fn parse_load_balancer(l: &weft_proto::v1::LoadBalancerView) -> Result<LoadBalancer, ViewError> {
    let rules = weft_proto::model::load_balancer::validate_load_balancer(
        &l.vips,
        &l.protocol,
        &l.options,
        &l.health_check,
    )
    .map_err(|e| ViewError::invalid("load balancer", &l.name, e.field, e.value, e.reason))?;
    let offline = l
        .backend_status
        .iter()
        .filter(|(_, s)| s.as_str() == weft_proto::model::load_balancer::STATUS_OFFLINE)
        .map(|(k, _)| k.clone())
        .collect();
    Ok(LoadBalancer {
        name: l.name.clone(),
        rules,
        offline,
    })
}

fn parse_chassis(c: &RemoteChassis) -> Result<Chassis, ViewError> {
    let encap_ip: Ipv4Addr = c.encap_ip.parse().map_err(|_| {
        ViewError::invalid(
            "chassis",
            &c.name,
            "encap_ip",
            &c.encap_ip,
            "not an IPv4 address",
        )
    })?;
    let mut encap_types = Vec::with_capacity(c.encap_types.len());
    for (i, t) in c.encap_types.iter().enumerate() {
        let e: Encap = t.parse().map_err(|_| {
            ViewError::invalid(
                "chassis",
                &c.name,
                format!("encap_types[{i}]"),
                t,
                "expected geneve, vxlan or gre",
            )
        })?;
        if !encap_types.contains(&e) {
            encap_types.push(e);
        }
    }
    Ok(Chassis {
        name: c.name.clone(),
        encap_ip,
        encap_types,
    })
}

fn parse_router(r: &RouterView) -> Result<Router, ViewError> {
    if r.tunnel_key == 0 || r.tunnel_key > MAX_DATAPATH_KEY {
        return Err(ViewError::invalid(
            "router",
            &r.name,
            "tunnel_key",
            r.tunnel_key.to_string(),
            format!("must be in 1..={MAX_DATAPATH_KEY}"),
        ));
    }
    let mut routes = Vec::with_capacity(r.static_routes.len());
    for (i, m) in r.static_routes.iter().enumerate() {
        let field = format!("static_routes[{i}]");
        let route = StaticRoute::from_message(&field, m)
            .map_err(|e| ViewError::invalid("router", &r.name, e.field, e.value, e.reason))?;
        routes.push(route);
    }
    let mut nat = Vec::with_capacity(r.nat.len());
    for (i, m) in r.nat.iter().enumerate() {
        let rule = weft_proto::model::nat::NatRule::from_message(&format!("nat[{i}]"), m)
            .map_err(|e| ViewError::invalid("router", &r.name, e.field, e.value, e.reason))?;
        nat.push(rule);
    }
    Ok(Router {
        name: r.name.clone(),
        key: r.tunnel_key,
        enabled: r.enabled,
        routes,
        nat,
        load_balancers: r.load_balancer.clone(),
    })
}

fn parse_router_port(p: &RouterPortView) -> Result<RouterPort, ViewError> {
    let bad = |field: &str, value: &str, reason: String| {
        ViewError::invalid("router port", &p.name, field, value, reason)
    };
    if p.router.is_empty() {
        return Err(bad("router", "", "must not be empty".into()));
    }
    let mac: Mac = p
        .mac
        .parse()
        .map_err(|_| bad("mac", &p.mac, "not a MAC address".into()))?;
    if mac.is_multicast() {
        return Err(bad(
            "mac",
            &p.mac,
            "a router port MAC must be unicast".into(),
        ));
    }
    let mut networks = Vec::with_capacity(p.networks.len());
    for (i, n) in p.networks.iter().enumerate() {
        let field = format!("networks[{i}]");
        let prefix: Ipv4Prefix = n.parse().map_err(|e| bad(&field, n, e))?;
        if !n.contains('/') {
            return Err(bad(&field, n, "must be in CIDR form a.b.c.d/len".into()));
        }
        networks.push(prefix);
    }
    if p.tunnel_key == 0 || p.tunnel_key > MAX_PORT_KEY {
        return Err(bad(
            "tunnel_key",
            &p.tunnel_key.to_string(),
            format!("must be in 1..={MAX_PORT_KEY}"),
        ));
    }
    let mut gateway_chassis = Vec::with_capacity(p.gateway_chassis.len());
    for (i, g) in p.gateway_chassis.iter().enumerate() {
        let g = weft_proto::model::nat::Gateway::from_message(&format!("gateway_chassis[{i}]"), g)
            .map_err(|e| bad(&e.field, &e.value, e.reason))?;
        gateway_chassis.push(g);
    }
    Ok(RouterPort {
        name: p.name.clone(),
        router: p.router.clone(),
        mac,
        networks,
        peer: (!p.peer.is_empty()).then(|| p.peer.clone()),
        key: p.tunnel_key,
        enabled: p.enabled,
        gateway_chassis,
        active_gateway: (!p.active_gateway.is_empty()).then(|| p.active_gateway.clone()),
        gateway_mtu: match p.gateway_mtu {
            0 => None,
            m => Some(
                u16::try_from(m)
                    .ok()
                    .filter(|m| *m >= weft_proto::model::validate::MIN_GATEWAY_MTU)
                    .ok_or_else(|| {
                        bad(
                            "gateway_mtu",
                            &m.to_string(),
                            "must be in 68..=65535 (or 0: none)".into(),
                        )
                    })?,
            ),
        },
    })
}

fn parse_mac(port: &str, field: &str, s: &str) -> Result<Mac, ViewError> {
    let mac: Mac = s
        .parse()
        .map_err(|_| ViewError::invalid("port", port, field, s, "not a MAC address"))?;
    if mac.is_multicast() {
        return Err(ViewError::invalid(
            "port",
            port,
            field,
            s,
            "a port address must be unicast",
        ));
    }
    Ok(mac)
}

fn parse_addresses(
    port: &str,
    list: &str,
    addrs: &[PortAddress],
) -> Result<Vec<(Mac, Vec<Ipv4Prefix>)>, ViewError> {
    let mut out = Vec::with_capacity(addrs.len());
    for (i, a) in addrs.iter().enumerate() {
        let mac = parse_mac(port, &format!("{list}[{i}].mac"), &a.mac)?;
        let mut ips = Vec::with_capacity(a.ips.len());
        for (j, ip) in a.ips.iter().enumerate() {
            let p: Ipv4Prefix = ip.parse().map_err(|e| {
                ViewError::invalid("port", port, format!("{list}[{i}].ips[{j}]"), ip, e)
            })?;
            ips.push(p);
        }
        out.push((mac, ips));
    }
    Ok(out)
}

/// `port_security` entries: each IP is IPv4 or IPv6 (a `:` makes it IPv6), with an
/// optional prefix length.
fn parse_security(port: &str, addrs: &[PortAddress]) -> Result<Vec<SecurityAddress>, ViewError> {
    let mut out = Vec::with_capacity(addrs.len());
    for (i, a) in addrs.iter().enumerate() {
        let mac = parse_mac(port, &format!("port_security[{i}].mac"), &a.mac)?;
        let (mut ips, mut ipv6) = (Vec::new(), Vec::new());
        for (j, ip) in a.ips.iter().enumerate() {
            let bad =
                |e| ViewError::invalid("port", port, format!("port_security[{i}].ips[{j}]"), ip, e);
            if ip.contains(':') {
                ipv6.push(ip.parse::<Ipv6Prefix>().map_err(bad)?);
            } else {
                ips.push(ip.parse::<Ipv4Prefix>().map_err(bad)?);
            }
        }
        out.push(SecurityAddress { mac, ips, ipv6 });
    }
    Ok(out)
}

fn parse_port(p: &PortView) -> Result<Port, ViewError> {
    if p.switch_name.is_empty() {
        return Err(ViewError::invalid(
            "port",
            &p.name,
            "switch_name",
            "",
            "must not be empty",
        ));
    }
    let addresses = parse_addresses(&p.name, "addresses", &p.addresses)?
        .into_iter()
        .map(|(mac, ips)| Address {
            mac,
            ips: ips.into_iter().map(|ip| ip.addr).collect(),
        })
        .collect();
    let port_security = parse_security(&p.name, &p.port_security)?;
    if p.tunnel_key == 0 || p.tunnel_key > MAX_PORT_KEY {
        return Err(ViewError::invalid(
            "port",
            &p.name,
            "tunnel_key",
            p.tunnel_key.to_string(),
            format!("must be in 1..={MAX_PORT_KEY}"),
        ));
    }
    let kind = match p.r#type.as_str() {
        "" => PortKind::Vif,
        "router" => PortKind::Router,
        "localnet" => PortKind::Localnet,
        other => {
            return Err(ViewError::invalid(
                "port",
                &p.name,
                "type",
                other,
                "expected \"\", \"router\" or \"localnet\"",
            ))
        }
    };
    Ok(Port {
        key: p.tunnel_key,
        kind,
        options: p.options.clone().into_iter().collect(),
        name: p.name.clone(),
        switch: p.switch_name.clone(),
        addresses,
        // A localnet port stands for the whole provider network: unknown MACs are there.
        unknown: p.unknown || kind == PortKind::Localnet,
        port_security,
        chassis: (!p.chassis.is_empty()).then(|| p.chassis.clone()),
        enabled: p.enabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw(name: &str, vni: u32) -> SwitchView {
        SwitchView {
            name: name.into(),
            vni,
            tunnel_key: vni,
            subnet: "10.0.0.0/24".into(),
            mtu: 1500,
            ..Default::default()
        }
    }

    fn port(name: &str, switch: &str, mac: &str, ip: &str, chassis: &str) -> PortView {
        PortView {
            name: name.into(),
            switch_name: switch.into(),
            addresses: vec![PortAddress {
                mac: mac.into(),
                ips: vec![ip.into()],
            }],
            unknown: false,
            port_security: vec![],
            chassis: chassis.into(),
            enabled: true,
            tunnel_key: name.bytes().map(u32::from).sum::<u32>() % 32000 + 1,
            ..Default::default()
        }
    }

    fn chassis(name: &str, ip: &str) -> RemoteChassis {
        RemoteChassis {
            name: name.into(),
            encap_ip: ip.into(),
            encap_types: vec!["geneve".into(), "vxlan".into()],
        }
    }

    fn snapshot(revision: i64) -> ViewDelta {
        ViewDelta {
            revision,
            snapshot: true,
            switches: vec![sw("ls1", 100), sw("ls2", 200)],
            ports: vec![
                port("p1", "ls1", "00:00:00:00:00:01", "10.0.0.1", "hv1"),
                port("p2", "ls1", "00:00:00:00:00:02", "10.0.0.2", "hv2"),
                port("p3", "ls2", "00:00:00:00:00:03", "10.0.0.3", "hv1"),
            ],
            chassis: vec![chassis("hv2", "192.168.0.2")],
            ..Default::default()
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn view() -> ChassisView {
        let mut v = ChassisView::new();
        v.apply(&snapshot(5)).expect("valid snapshot");
        v
    }

    #[test]
    fn snapshot_builds_view_and_indexes() {
        let v = view();
        assert_eq!(v.revision(), 5);
        assert_eq!(v.switch("ls1").map(|s| s.vni), Some(100));
        let on_ls1: Vec<_> = v.ports_of_switch("ls1").map(|p| p.name.as_str()).collect();
        assert_eq!(on_ls1, ["p1", "p2"]);
        let on_hv1: Vec<_> = v.ports_on_chassis("hv1").map(|p| p.name.as_str()).collect();
        assert_eq!(on_hv1, ["p1", "p3"]);
        let hv2 = v.chassis("hv2").expect("hv2");
        assert_eq!(hv2.encap_types, [Encap::Geneve, Encap::Vxlan]);
        assert_eq!(
            v.port("p1").map(|p| p.addresses[0].mac.to_string()),
            Some("00:00:00:00:00:01".to_string())
        );
    }

    #[test]
    fn second_identical_snapshot_changes_nothing() {
        let mut v = view();
        let change = v.apply(&snapshot(6)).expect("valid");
        assert!(change.is_empty(), "{change:?}");
        assert_eq!(change.revision, 6);
    }

    #[test]
    fn snapshot_reports_removed_and_modified_objects() {
        let mut v = view();
        let mut s = snapshot(7);
        s.ports.retain(|p| p.name != "p3");
        s.ports[0].enabled = false;
        s.chassis.clear();
        let change = v.apply(&s).expect("valid");
        assert_eq!(change.ports, set(&["p1", "p3"]));
        assert_eq!(change.chassis, set(&["hv2"]));
        assert!(change.switches.is_empty());
        assert!(v.port("p3").is_none());
        assert_eq!(v.ports_on_chassis("hv1").count(), 1);
    }

    #[test]
    fn delta_upserts_then_deletes() {
        let mut v = view();
        let d = ViewDelta {
            revision: 6,
            ports: vec![
                port("p4", "ls2", "00:00:00:00:00:04", "10.0.0.4", "hv2"),
                // identical upsert: not a change
                port("p1", "ls1", "00:00:00:00:00:01", "10.0.0.1", "hv1"),
            ],
            deleted_ports: vec!["p2".into(), "nope".into()],
            ..Default::default()
        };
        let change = v.apply(&d).expect("valid");
        assert_eq!(change.ports, set(&["p2", "p4"]));
        assert!(v.port("p2").is_none());
        assert_eq!(v.ports_on_chassis("hv2").count(), 1);
        assert_eq!(v.revision(), 6);
    }

    #[test]
    fn port_moving_between_switches_updates_indexes() {
        let mut v = view();
        let d = ViewDelta {
            revision: 6,
            ports: vec![port("p1", "ls2", "00:00:00:00:00:01", "10.0.0.1", "hv2")],
            ..Default::default()
        };
        v.apply(&d).expect("valid");
        assert_eq!(v.ports_of_switch("ls1").count(), 1);
        assert_eq!(v.ports_of_switch("ls2").count(), 2);
        assert_eq!(v.ports_on_chassis("hv1").count(), 1);
        assert_eq!(v.ports_on_chassis("hv2").count(), 2);
    }

    #[test]
    fn deleting_a_switch_cascades_to_its_ports() {
        let mut v = view();
        let d = ViewDelta {
            revision: 6,
            deleted_switches: vec!["ls1".into()],
            ..Default::default()
        };
        let change = v.apply(&d).expect("valid");
        assert_eq!(change.switches, set(&["ls1"]));
        assert_eq!(change.ports, set(&["p1", "p2"]));
        assert_eq!(v.ports().count(), 1);
        assert_eq!(v.ports_of_switch("ls1").count(), 0);
    }

    /// Applies `u` to a fresh view and checks that it is rejected naming `needle`, and that
    /// the view did not change.
    fn rejected(u: ViewDelta, needle: &str) {
        let mut v = view();
        let before = format!("{v:?}");
        let err = v.apply(&u).expect_err("must be rejected");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
        assert_eq!(
            format!("{v:?}"),
            before,
            "a rejected update changed the view"
        );
    }

    fn delta() -> ViewDelta {
        ViewDelta {
            revision: 6,
            // A valid change that must not be applied when something else is invalid.
            ports: vec![port("p9", "ls1", "00:00:00:00:00:09", "10.0.0.9", "hv1")],
            ..Default::default()
        }
    }

    #[test]
    fn invalid_objects_reject_the_whole_update() {
        let mut u = delta();
        u.switches.push(sw("", 5));
        rejected(u, "name");

        let mut u = delta();
        u.switches.push(sw("ls9", 0));
        rejected(u, "vni = \"0\"");

        let mut u = delta();
        u.switches.push(sw("ls9", 0x100_0000));
        rejected(u, "16777216");

        let mut u = delta();
        u.switches.push(SwitchView {
            subnet: "10.0.0.0/33".into(),
            ..sw("ls9", 9)
        });
        rejected(u, "subnet");

        let mut u = delta();
        u.ports
            .push(port("p8", "ls1", "00:00:00:00:00:zz", "10.0.0.8", "hv1"));
        rejected(u, "addresses[0].mac = \"00:00:00:00:00:zz\"");

        let mut u = delta();
        u.ports
            .push(port("p8", "ls1", "ff:ff:ff:ff:ff:ff", "10.0.0.8", "hv1"));
        rejected(u, "unicast");

        let mut u = delta();
        u.ports
            .push(port("p8", "ls1", "00:00:00:00:00:08", "10.0.0.256", "hv1"));
        rejected(u, "addresses[0].ips[0] = \"10.0.0.256\"");

        let mut u = delta();
        let mut p = port("p8", "ls1", "00:00:00:00:00:08", "10.0.0.8", "hv1");
        p.port_security = vec![PortAddress {
            mac: "00:00:00:00:00:08".into(),
            ips: vec!["10.0.0.8/40".into()],
        }];
        u.ports.push(p);
        rejected(u, "port_security[0].ips[0]");

        let mut u = delta();
        u.ports
            .push(port("p8", "nosuch", "00:00:00:00:00:08", "10.0.0.8", "hv1"));
        rejected(u, "switch_name = \"nosuch\"");

        let mut u = delta();
        u.chassis.push(chassis("hv3", "not-an-ip"));
        rejected(u, "encap_ip = \"not-an-ip\"");

        let mut u = delta();
        let mut c = chassis("hv3", "192.168.0.3");
        c.encap_types.push("stt".into());
        u.chassis.push(c);
        rejected(u, "encap_types[2] = \"stt\"");

        let mut u = delta();
        u.ports
            .push(port("p9", "ls1", "00:00:00:00:00:09", "10.0.0.9", "hv1"));
        rejected(u, "more than once");
    }

    #[test]
    fn port_on_switch_deleted_in_same_delta_is_rejected() {
        let mut u = delta();
        u.deleted_switches.push("ls1".into());
        rejected(u, "switch_name = \"ls1\"");
    }

    #[test]
    fn duplicate_vni_is_rejected_but_swaps_are_fine() {
        let mut u = delta();
        u.switches.push(sw("ls9", 100));
        rejected(u, "already used by switch \"ls1\"");

        let mut v = view();
        let swap = ViewDelta {
            revision: 6,
            switches: vec![sw("ls1", 200), sw("ls2", 100)],
            ..Default::default()
        };
        let change = v.apply(&swap).expect("a swap is valid");
        assert_eq!(change.switches, set(&["ls1", "ls2"]));
        // Reusing the VNI of a switch deleted in the same delta is valid too.
        let reuse = ViewDelta {
            revision: 7,
            switches: vec![sw("ls3", 100)],
            deleted_switches: vec!["ls2".into()],
            ..Default::default()
        };
        v.apply(&reuse).expect("valid");
        let bad = ViewDelta {
            revision: 8,
            switches: vec![sw("ls4", 100)],
            ..Default::default()
        };
        assert!(v.apply(&bad).is_err());
    }

    #[test]
    fn datapath_and_port_keys_must_be_valid_and_unique() {
        let mut u = snapshot(5);
        u.switches[1].tunnel_key = u.switches[0].tunnel_key;
        rejected(u, "tunnel_key");
        let mut u = snapshot(5);
        u.switches[0].tunnel_key = 0;
        rejected(u, "must be in 1..=16777215");
        let mut u = snapshot(5);
        u.ports[1].tunnel_key = u.ports[0].tunnel_key;
        rejected(u, "already used by port \"p1\"");
        let mut u = snapshot(5);
        u.ports[0].tunnel_key = 40000;
        rejected(u, "must be in 1..=32767");
        let mut u = snapshot(5);
        u.ports[0].r#type = "vtep".into();
        rejected(u, "type");
        // The same port key on another switch is fine.
        let mut u = snapshot(5);
        u.ports[2].tunnel_key = u.ports[0].tunnel_key;
        ChassisView::new().apply(&u).expect("keys are per switch");
        // A delta: a new port taking p1's key is rejected; taking the key of a port deleted
        // in the same delta, or swapping, is fine.
        let mut v = view();
        let k1 = v.port("p1").unwrap().key;
        let k2 = v.port("p2").unwrap().key;
        let mut np = port("p9", "ls1", "00:00:00:00:00:09", "10.0.0.9", "");
        np.tunnel_key = k1;
        let bad = ViewDelta {
            revision: 6,
            ports: vec![np.clone()],
            ..Default::default()
        };
        assert!(v.apply(&bad).is_err());
        let ok = ViewDelta {
            revision: 6,
            ports: vec![np],
            deleted_ports: vec!["p1".into()],
            ..Default::default()
        };
        v.apply(&ok).expect("reuse of a deleted port's key");
        assert_eq!(v.port("p9").unwrap().key, k1);
        let mut a = port("p9", "ls1", "00:00:00:00:00:09", "10.0.0.9", "");
        a.tunnel_key = k2;
        let mut b = port("p2", "ls1", "00:00:00:00:00:02", "10.0.0.2", "hv1");
        b.tunnel_key = k1;
        let swap = ViewDelta {
            revision: 7,
            ports: vec![a, b],
            ..Default::default()
        };
        v.apply(&swap).expect("a swap is valid");
    }

    #[test]
    fn revision_may_not_go_backwards() {
        let mut u = delta();
        u.revision = 4;
        rejected(u, "older");
        // Same revision is accepted (an empty update for an unrelated change).
        let mut v = view();
        let mut u = delta();
        u.revision = 5;
        assert!(v.apply(&u).is_ok());
    }

    #[test]
    fn invalid_snapshot_keeps_the_old_view() {
        let mut s = snapshot(9);
        s.switches[1].vni = 100;
        rejected(s, "vni");
        let mut s = snapshot(9);
        s.switches.pop();
        rejected(s, "switch_name = \"ls2\"");
    }

    fn router(name: &str, key: u32) -> RouterView {
        RouterView {
            name: name.into(),
            tunnel_key: key,
            enabled: true,
            static_routes: Vec::new(),
            ..Default::default()
        }
    }

    fn rport(name: &str, router: &str, mac: &str, net: &str, key: u32) -> RouterPortView {
        RouterPortView {
            name: name.into(),
            router: router.into(),
            mac: mac.into(),
            networks: vec![net.into()],
            tunnel_key: key,
            enabled: true,
            ..Default::default()
        }
    }

    fn routed_snapshot() -> ViewDelta {
        let mut s = snapshot(5);
        s.routers = vec![router("lr1", 500)];
        s.router_ports = vec![
            rport("lr1-ls1", "lr1", "0a:00:00:00:00:01", "10.0.0.254/24", 1),
            rport("lr1-ls2", "lr1", "0a:00:00:00:00:02", "10.1.0.1/24", 2),
        ];
        let mut lsp = port("ls1-lr1", "ls1", "00:00:00:00:00:aa", "10.0.0.250", "");
        lsp.addresses.clear();
        lsp.r#type = "router".into();
        lsp.options = [("router-port".to_string(), "lr1-ls1".to_string())].into();
        s.ports.push(lsp);
        s
    }

    #[test]
    fn routers_and_router_ports_are_parsed_indexed_and_cascade() {
        let mut v = ChassisView::new();
        let c = v.apply(&routed_snapshot()).expect("valid");
        assert_eq!(c.routers, set(&["lr1"]));
        assert_eq!(c.router_ports, set(&["lr1-ls1", "lr1-ls2"]));
        let rp = v.router_port("lr1-ls1").expect("rp");
        assert_eq!(rp.networks[0].to_string(), "10.0.0.254/24");
        assert!(rp.networks[0].contains(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(v.router_ports_of("lr1").count(), 2);
        assert_eq!(
            v.attached_lsp("lr1-ls1").map(|p| p.name.as_str()),
            Some("ls1-lr1")
        );
        assert_eq!(v.router_lsps_of_switch("ls1").count(), 1);
        // Deleting the router takes its ports.
        let c = v
            .apply(&ViewDelta {
                revision: 6,
                deleted_routers: vec!["lr1".into()],
                ..Default::default()
            })
            .expect("valid");
        assert_eq!(c.router_ports, set(&["lr1-ls1", "lr1-ls2"]));
        assert_eq!(v.router_ports().count(), 0);
        // Deleting the router-type port drops the index entry.
        v.apply(&ViewDelta {
            revision: 7,
            deleted_ports: vec!["ls1-lr1".into()],
            ..Default::default()
        })
        .expect("valid");
        assert!(v.attached_lsp("lr1-ls1").is_none());
        assert_eq!(v.router_lsps_of_switch("ls1").count(), 0);
    }

    #[test]
    fn invalid_routers_reject_the_whole_update() {
        let bad = |f: &dyn Fn(&mut ViewDelta), needle: &str| {
            let mut u = routed_snapshot();
            f(&mut u);
            let mut v = view();
            let before = format!("{v:?}");
            let msg = v.apply(&u).expect_err("must be rejected").to_string();
            assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
            assert_eq!(format!("{v:?}"), before);
        };
        bad(&|u| u.routers[0].tunnel_key = 0, "tunnel_key = \"0\"");
        bad(
            &|u| u.routers[0].tunnel_key = 100,
            "already used by switch \"ls1\"",
        );
        bad(
            &|u| u.routers.push(router("lr2", 500)),
            "already used by router \"lr1\"",
        );
        bad(
            &|u| u.router_ports[0].mac = "01:00:00:00:00:01".into(),
            "unicast",
        );
        bad(&|u| u.router_ports[0].mac = "zz".into(), "mac = \"zz\"");
        bad(
            &|u| u.router_ports[0].networks[0] = "10.0.0.1".into(),
            "CIDR",
        );
        bad(
            &|u| u.router_ports[0].networks[0] = "10.0.0.1/33".into(),
            "networks[0]",
        );
        bad(
            &|u| u.router_ports[1].tunnel_key = 1,
            "already used by router port \"lr1-ls1\"",
        );
        bad(
            &|u| u.router_ports[1].tunnel_key = 40000,
            "must be in 1..=32767",
        );
        bad(
            &|u| u.router_ports[1].router = "nosuch".into(),
            "router = \"nosuch\"",
        );
        // A delta: a port on a router deleted in the same delta, a switch taking a router's key.
        let mut v = ChassisView::new();
        v.apply(&routed_snapshot()).expect("valid");
        let before = format!("{v:?}");
        let d = ViewDelta {
            revision: 6,
            router_ports: vec![rport("lr1-x", "lr1", "0a:00:00:00:00:09", "10.9.0.1/24", 9)],
            deleted_routers: vec!["lr1".into()],
            ..Default::default()
        };
        assert!(v.apply(&d).is_err());
        let mut s = sw("ls9", 9);
        s.tunnel_key = 500;
        let d = ViewDelta {
            revision: 6,
            switches: vec![s],
            ..Default::default()
        };
        assert!(v
            .apply(&d)
            .unwrap_err()
            .to_string()
            .contains("already used by switch \"ls9\""));
        assert_eq!(format!("{v:?}"), before);
    }

    #[test]
    fn prefix_parsing() {
        let p: Ipv4Prefix = "10.1.2.3/24".parse().expect("valid");
        assert_eq!(p.network(), Ipv4Addr::new(10, 1, 2, 0));
        assert_eq!(p.mask(), Ipv4Addr::new(255, 255, 255, 0));
        let h: Ipv4Prefix = "10.1.2.3".parse().expect("valid");
        assert!(h.is_host());
        let z: Ipv4Prefix = "0.0.0.0/0".parse().expect("valid");
        assert_eq!(z.mask(), Ipv4Addr::UNSPECIFIED);
        assert!("10.1.2.3/x".parse::<Ipv4Prefix>().is_err());
    }

    #[test]
    fn ipv6_prefix_parsing_and_security_entries() {
        let p: Ipv6Prefix = "fd00:1::5/64".parse().expect("valid");
        assert_eq!(
            p.network(),
            "fd00:1::".parse::<std::net::Ipv6Addr>().expect("ip")
        );
        assert_eq!(
            p.mask(),
            "ffff:ffff:ffff:ffff::"
                .parse::<std::net::Ipv6Addr>()
                .expect("ip")
        );
        assert!("fd00::5".parse::<Ipv6Prefix>().expect("valid").is_host());
        assert!("fd00::5/129".parse::<Ipv6Prefix>().is_err());
        let sec = parse_security(
            "p1",
            &[PortAddress {
                mac: "0a:00:00:00:00:01".into(),
                ips: vec!["10.0.0.5".into(), "fd00::5".into(), "fd00:1::/64".into()],
            }],
        )
        .expect("valid");
        assert_eq!(
            sec[0].ips,
            vec!["10.0.0.5".parse::<Ipv4Prefix>().expect("v4")]
        );
        assert_eq!(sec[0].ipv6.len(), 2);
        let e = parse_security(
            "p1",
            &[PortAddress {
                mac: "0a:00:00:00:00:01".into(),
                ips: vec!["fd00::zz".into()],
            }],
        )
        .expect_err("invalid");
        assert!(e.to_string().contains("port_security[0].ips[0]"), "{e}");
    }

    fn lb(name: &str, backends: &str) -> weft_proto::v1::LoadBalancerView {
        weft_proto::v1::LoadBalancerView {
            name: name.into(),
            vips: [("10.96.0.1:80".to_string(), backends.to_string())].into(),
            protocol: "tcp".into(),
            ..Default::default()
        }
    }

    #[test]
    fn lb_deltas_report_only_the_lbs_they_change() {
        let mut v = view();
        let mut s = snapshot(6);
        s.load_balancers = vec![lb("a", "10.1.0.1:8080"), lb("b", "10.1.0.2:8080")];
        let c = v.apply(&s).unwrap();
        assert_eq!(c.load_balancers, set(&["a", "b"]));
        // A backend change of a; b sent again unchanged; c deleted though never there.
        let d = ViewDelta {
            revision: 7,
            load_balancers: vec![lb("a", "10.1.0.9:8080"), lb("b", "10.1.0.2:8080")],
            deleted_load_balancers: vec!["c".into()],
            ..Default::default()
        };
        let c = v.apply(&d).unwrap();
        assert_eq!(c.load_balancers, set(&["a"]));
        assert_eq!(v.all_load_balancers().count(), 2);
        // Deleted and upserted in one delta: kept, with the new value.
        let d = ViewDelta {
            revision: 8,
            load_balancers: vec![lb("b", "10.1.0.3:8080")],
            deleted_load_balancers: vec!["b".into(), "a".into()],
            ..Default::default()
        };
        let c = v.apply(&d).unwrap();
        assert_eq!(c.load_balancers, set(&["a", "b"]));
        assert!(v.load_balancer("a").is_none());
        let b = v.load_balancer("b").unwrap();
        assert_eq!(b.rules.vips[0].backends[0].to_string(), "10.1.0.3:8080");
        // A rejected delta changes no LB.
        let mut bad = ViewDelta {
            revision: 9,
            load_balancers: vec![lb("b", "10.1.0.4:8080")],
            ..Default::default()
        };
        bad.ports = vec![port("p9", "nowhere", "zz", "10.0.0.9", "hv1")];
        assert!(v.apply(&bad).is_err());
        let b = v.load_balancer("b").unwrap();
        assert_eq!(b.rules.vips[0].backends[0].to_string(), "10.1.0.3:8080");
    }
}
