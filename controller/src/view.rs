//! Pure per-chassis view computation (see `southbound.proto`) and view deltas.
//!
//! A chassis' view: the switches with at least one port bound to that chassis, every router
//! reachable from them (through switch ports of type "router" and router peers) and every
//! switch reachable from those routers ([`closure`]), every port of those switches
//! (addresses resolved, with the chassis each is bound to) and routers, and the other
//! chassis those ports live on. [`compute`] builds it from a [`ClusterState`]; [`delta`] turns
//! two views into a `ViewUpdate`. [`ViewState`] keeps one chassis' view up to date from the
//! changed keys only (what the southbound streams use), and yields the same deltas.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use weft_proto::v1::{
    object, AclView, AddressSetView, LoadBalancerView, LogicalRouter, LogicalRouterPort,
    LogicalSwitchPort, PortAddress, PortGroupView, PortView, RemoteChassis, RouterPortView,
    RouterView, SwitchView,
};

use crate::state::{Changed, ClusterState};
use crate::validate::{parse_dynamic, parse_mac};

/// A view change by kind; `into_update` gives the generic wire form.
pub use weft_proto::model::view::ViewDelta as Delta;

/// One chassis' view, keyed by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// Switches by name.
    pub switches: BTreeMap<String, SwitchView>,
    /// Ports by name.
    pub ports: BTreeMap<String, PortView>,
    /// Remote chassis by name.
    pub chassis: BTreeMap<String, RemoteChassis>,
    /// Reachable routers by name.
    pub routers: BTreeMap<String, RouterView>,
    /// Ports of those routers by name.
    pub router_ports: BTreeMap<String, RouterPortView>,
    /// ACLs by key (see [`crate::view_acl`]).
    pub acls: BTreeMap<String, AclView>,
    /// Port groups the ACLs are on or name.
    pub port_groups: BTreeMap<String, PortGroupView>,
    /// Address sets the ACLs name.
    pub address_sets: BTreeMap<String, AddressSetView>,
    /// Load balancers named by the view's switches and routers (`load_balancer`), by name.
    pub load_balancers: BTreeMap<String, LoadBalancerView>,
}

/// The view of load balancer `name` in `state`, `None` when there is none.
fn load_balancer_view(state: &ClusterState, name: &str) -> Option<LoadBalancerView> {
    let o = state
        .objects
        .get(crate::kinds::load_balancer::NAME)?
        .get(name)?;
    match &o.kind {
        Some(object::Kind::LoadBalancer(l)) => Some(LoadBalancerView {
            name: l.name.clone(),
            protocol: l.protocol.clone(),
            vips: l.vips.clone(),
            options: l.options.clone(),
            health_check: l.health_check.clone(),
            backend_status: crate::lb_health::view_status(state, l),
        }),
        _ => None,
    }
}

/// The datapaths a chassis needs, starting from the switches it has ports on (`local`):
/// those switches, every router reachable through a switch port of type "router"
/// (`options:router-port`) or a router port's `peer`, and every switch attached to those
/// routers, transitively. Costs the reachable datapaths and their router links, not ports.
pub fn closure<'a>(
    state: &ClusterState,
    local: impl IntoIterator<Item = &'a str>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut switches = BTreeSet::new();
    let mut routers = BTreeSet::new();
    let mut todo_sw: Vec<String> = local
        .into_iter()
        .filter(|s| state.switches.contains_key(*s))
        .map(str::to_string)
        .collect();
    let mut todo_r: Vec<String> = Vec::new();
    let router_of = |rp: &str| -> Option<String> {
        let lrp = state.router_ports.get(rp)?;
        state
            .routers
            .contains_key(&lrp.router)
            .then(|| lrp.router.clone())
    };
    loop {
        while let Some(s) = todo_sw.pop() {
            if !switches.insert(s.clone()) {
                continue;
            }
            for lsp in state.router_lsps_by_switch.get(&s).into_iter().flatten() {
                let rp = state
                    .ports
                    .get(lsp)
                    .and_then(|p| p.options.get("router-port"));
                if let Some(r) = rp.and_then(|rp| router_of(rp)) {
                    todo_r.push(r);
                }
            }
        }
        let Some(r) = todo_r.pop() else { break };
        if !routers.insert(r.clone()) {
            continue;
        }
        for rp in state.router_ports_by_router.get(&r).into_iter().flatten() {
            for lsp in state.router_port_links.get(rp).into_iter().flatten() {
                if let Some(p) = state.ports.get(lsp) {
                    if state.switches.contains_key(&p.switch_name) {
                        todo_sw.push(p.switch_name.clone());
                    }
                }
            }
            let peer = state.router_ports.get(rp).map(|l| l.peer.as_str());
            if let Some(r2) = peer.filter(|p| !p.is_empty()).and_then(|p| router_of(p)) {
                todo_r.push(r2);
            }
        }
    }
    (switches, routers)
}

fn router_view(r: &LogicalRouter) -> RouterView {
    RouterView {
        name: r.name.clone(),
        tunnel_key: r.tunnel_key,
        enabled: r.enabled,
        static_routes: r.static_routes.clone(),
        nat: r.nat.clone(),
        load_balancer: r.load_balancer.clone(),
    }
}

/// Moves `user` (a switch, or a router as [`router_user`] names it) in `lb_users` from the
/// LBs it named (`old`) to those it names now (`new`); every LB of either goes to
/// `candidates`.
fn move_lb_user<'a>(
    lb_users: &mut HashMap<String, BTreeSet<String>>,
    user: &str,
    old: impl Iterator<Item = &'a String>,
    new: Option<impl Iterator<Item = &'a String>>,
    candidates: &mut BTreeSet<String>,
) {
    for lb in old {
        if let Some(users) = lb_users.get_mut(lb) {
            users.remove(user);
            if users.is_empty() {
                lb_users.remove(lb);
            }
        }
        candidates.insert(lb.clone());
    }
    for lb in new.into_iter().flatten() {
        lb_users
            .entry(lb.clone())
            .or_default()
            .insert(user.to_string());
        candidates.insert(lb.clone());
    }
}

/// The key of router `r` among an LB's users (beside switch names; `/` is in no name).
fn router_user(r: &str) -> String {
    format!("/router/{r}")
}

/// The active gateway chassis of `p`: the alive one of the highest priority ("" = none).
fn active_gateway(state: &ClusterState, p: &LogicalRouterPort) -> String {
    let gs: Vec<weft_proto::model::nat::Gateway> = p
        .gateway_chassis
        .iter()
        .map(|g| weft_proto::model::nat::Gateway {
            chassis: g.chassis_name.clone(),
            priority: g.priority,
        })
        .collect();
    weft_proto::model::nat::active_gateway(&gs, |c| state.alive.contains(c))
        .unwrap_or("")
        .to_string()
}

/// True when `p` is a localnet port whose provider network `chassis` maps (its
/// `bridge_mappings`): the port is present there, and its switch is local.
pub fn localnet_here(state: &ClusterState, p: &LogicalSwitchPort, chassis: &str) -> bool {
    p.r#type == "localnet"
        && p.options
            .get(weft_proto::model::LOCALNET_NETWORK_NAME)
            .is_some_and(|n| {
                state
                    .chassis
                    .get(chassis)
                    .is_some_and(|c| c.bridge_mappings.contains_key(n))
            })
}

fn remote_chassis(rc: &weft_proto::v1::Chassis) -> RemoteChassis {
    RemoteChassis {
        name: rc.name.clone(),
        encap_ip: rc.encap_ip.clone(),
        encap_types: rc.encap_types.clone(),
    }
}

fn router_port_view(state: &ClusterState, p: &LogicalRouterPort) -> RouterPortView {
    RouterPortView {
        gateway_chassis: p.gateway_chassis.clone(),
        active_gateway: active_gateway(state, p),
        name: p.name.clone(),
        router: p.router.clone(),
        mac: p.mac.clone(),
        networks: p.networks.clone(),
        peer: p.peer.clone(),
        tunnel_key: p.tunnel_key,
        enabled: p.enabled,
        // Validated on write; a stored value that no longer parses is no MTU.
        gateway_mtu: weft_proto::model::validate::gateway_mtu(&p.options)
            .ok()
            .flatten()
            .map_or(0, u32::from),
    }
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
                        ips: ip.iter().map(|ip| ip.to_string()).collect(),
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
        tunnel_key: p.tunnel_key,
        r#type: p.r#type.clone(),
        options: p.options.clone(),
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
        .filter(|p| bound_to(&p.name) == chassis || localnet_here(state, p, chassis))
        .map(|p| p.switch_name.as_str())
        .filter(|s| state.switches.contains_key(*s))
        .collect();
    let (dp_switches, dp_routers) = closure(state, local_switches.iter().copied());
    let mut view = View::default();
    for name in &dp_switches {
        if let Some(sw) = state.switches.get(name) {
            view.switches.insert(sw.name.clone(), switch_view(sw));
        }
    }
    for sw in view.switches.values() {
        for lb in &sw.load_balancer {
            if let Some(v) = load_balancer_view(state, lb) {
                view.load_balancers.insert(lb.clone(), v);
            }
        }
    }
    for r in &dp_routers {
        if let Some(lr) = state.routers.get(r) {
            view.routers.insert(r.clone(), router_view(lr));
            for lb in &lr.load_balancer {
                if let Some(v) = load_balancer_view(state, lb) {
                    view.load_balancers.insert(lb.clone(), v);
                }
            }
        }
        for rp in state.router_ports_by_router.get(r).into_iter().flatten() {
            if let Some(lrp) = state.router_ports.get(rp) {
                view.router_ports
                    .insert(rp.clone(), router_port_view(state, lrp));
            }
        }
    }
    for p in state.ports.values() {
        if !dp_switches.contains(p.switch_name.as_str()) {
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
    // The active gateway chassis of the router ports: redirected traffic is tunnelled there.
    for rpv in view.router_ports.values() {
        let g = &rpv.active_gateway;
        if !g.is_empty() && g != chassis {
            if let Some(rc) = state.chassis.get(g) {
                view.chassis.insert(rc.name.clone(), remote_chassis(rc));
            }
        }
    }
    let (acls, pgs, sets) = crate::view_acl::acl_part(state, &view.switches, &view.ports);
    view.acls = acls;
    view.port_groups = pgs;
    view.address_sets = sets;
    view
}

/// One chassis' view maintained incrementally: [`ViewState::update`] re-evaluates only the
/// switches, ports and chassis that changed, so its cost follows the change, not the
/// deployment. Always equal to [`compute`] of the same state (unit-tested on random changes).
#[derive(Debug, Clone)]
pub struct ViewState {
    chassis: String,
    view: View,
    /// Ports bound to this chassis (whatever their switch), by switch: what makes a switch
    /// local.
    local: HashMap<String, BTreeSet<String>>,
    /// Switch of each port bound to this chassis.
    mine: HashMap<String, String>,
    /// Ports in the view, by switch.
    by_switch: HashMap<String, BTreeSet<String>>,
    /// How many ports in the view live on each other chassis.
    remote: HashMap<String, usize>,
    /// Switches in the view ([`closure`] of the local ones).
    dp_switches: BTreeSet<String>,
    /// Routers in the view.
    dp_routers: BTreeSet<String>,
    /// The view's switches (and routers, [`router_user`]) that name each load balancer (an
    /// LB is in the view while some switch or router of the view names it).
    lb_users: HashMap<String, BTreeSet<String>>,
}

/// Old values of what an update touched, to build its delta.
#[derive(Default)]
struct Touched {
    switches: BTreeMap<String, Option<SwitchView>>,
    ports: BTreeMap<String, Option<PortView>>,
    chassis: BTreeSet<String>,
    routers: BTreeMap<String, Option<RouterView>>,
    router_ports: BTreeMap<String, Option<RouterPortView>>,
    load_balancers: BTreeMap<String, Option<LoadBalancerView>>,
}

fn switch_view(sw: &weft_proto::v1::LogicalSwitch) -> SwitchView {
    SwitchView {
        name: sw.name.clone(),
        vni: sw.vni,
        subnet: sw.subnet.clone(),
        mtu: sw.mtu,
        tunnel_key: sw.tunnel_key,
        load_balancer: sw.load_balancer.clone(),
    }
}

fn bound_to<'a>(state: &'a ClusterState, port: &str) -> &'a str {
    state
        .bindings
        .get(port)
        .map(|b| b.chassis.as_str())
        .unwrap_or("")
}

impl ViewState {
    /// The view of `chassis` in `state`, computed in full.
    pub fn new(state: &ClusterState, chassis: &str) -> Self {
        let mut vs = ViewState {
            chassis: chassis.to_string(),
            view: View::default(),
            local: HashMap::new(),
            mine: HashMap::new(),
            by_switch: HashMap::new(),
            remote: HashMap::new(),
            dp_switches: BTreeSet::new(),
            dp_routers: BTreeSet::new(),
            lb_users: HashMap::new(),
        };
        for (name, b) in state.bindings.iter() {
            if b.chassis == chassis {
                if let Some(p) = state.ports.get(name) {
                    vs.bind(name, &p.switch_name);
                }
            }
        }
        for p in state.ports.values() {
            if localnet_here(state, p, chassis) {
                vs.bind(&p.name, &p.switch_name);
            }
        }
        let mut t = Touched::default();
        let (dps, dpr) = closure(state, vs.local.keys().map(String::as_str));
        vs.dp_switches = dps;
        vs.dp_routers = dpr.clone();
        for s in vs.dp_switches.clone() {
            vs.reevaluate_switch(state, &s, false, &mut t);
        }
        for r in &dpr {
            vs.sync_router(state, r, &mut t);
        }
        vs.sync_load_balancers(state, &t, &BTreeSet::new(), &mut BTreeMap::new());
        for c in vs.remote.keys() {
            if let Some(rc) = state.chassis.get(c) {
                vs.view.chassis.insert(
                    c.clone(),
                    RemoteChassis {
                        name: rc.name.clone(),
                        encap_ip: rc.encap_ip.clone(),
                        encap_types: rc.encap_types.clone(),
                    },
                );
            }
        }
        let (acls, pgs, sets) = crate::view_acl::acl_part(state, &vs.view.switches, &vs.view.ports);
        vs.view.acls = acls;
        vs.view.port_groups = pgs;
        vs.view.address_sets = sets;
        vs
    }

    /// The current view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Keeps the view's load balancers in step: `t.switches` are the switches this update
    /// touched (with their old views), `changed` the LBs whose records changed. Costs those
    /// switches' LB lists and the changed LBs, never a scan.
    fn sync_load_balancers(
        &mut self,
        state: &ClusterState,
        t: &Touched,
        changed: &BTreeSet<String>,
        out: &mut BTreeMap<String, Option<LoadBalancerView>>,
    ) {
        let mut candidates: BTreeSet<String> = changed.clone();
        for (r, old) in &t.routers {
            move_lb_user(
                &mut self.lb_users,
                &router_user(r),
                old.iter().flat_map(|o| o.load_balancer.iter()),
                self.view.routers.get(r).map(|v| v.load_balancer.iter()),
                &mut candidates,
            );
        }
        for (s, old) in &t.switches {
            move_lb_user(
                &mut self.lb_users,
                s,
                old.iter().flat_map(|o| o.load_balancer.iter()),
                self.view.switches.get(s).map(|v| v.load_balancer.iter()),
                &mut candidates,
            );
        }
        for lb in candidates {
            let want = if self.lb_users.contains_key(&lb) {
                load_balancer_view(state, &lb)
            } else {
                None
            };
            let had = self.view.load_balancers.get(&lb).cloned();
            if want == had {
                continue;
            }
            out.entry(lb.clone()).or_insert(had);
            match want {
                Some(v) => self.view.load_balancers.insert(lb, v),
                None => self.view.load_balancers.remove(&lb),
            };
        }
    }

    fn bind(&mut self, port: &str, switch: &str) {
        self.mine.insert(port.to_string(), switch.to_string());
        self.local
            .entry(switch.to_string())
            .or_default()
            .insert(port.to_string());
    }

    fn unbind(&mut self, port: &str) -> Option<String> {
        let sw = self.mine.remove(port)?;
        if let Some(set) = self.local.get_mut(&sw) {
            set.remove(port);
            if set.is_empty() {
                self.local.remove(&sw);
            }
        }
        Some(sw)
    }

    fn is_local(&self, state: &ClusterState, switch: &str) -> bool {
        state.switches.contains_key(switch) && self.dp_switches.contains(switch)
    }

    /// Brings router `r` and its ports in line with `state` and the closure.
    fn sync_router(&mut self, state: &ClusterState, r: &str, t: &mut Touched) {
        let want = state
            .routers
            .get(r)
            .filter(|_| self.dp_routers.contains(r))
            .map(router_view);
        if self.view.routers.get(r) != want.as_ref() {
            let old = match &want {
                Some(v) => self.view.routers.insert(r.to_string(), v.clone()),
                None => self.view.routers.remove(r),
            };
            t.routers.entry(r.to_string()).or_insert(old);
        }
        let mut rps: BTreeSet<String> = state
            .router_ports_by_router
            .get(r)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        rps.extend(
            self.view
                .router_ports
                .values()
                .filter(|p| p.router == r)
                .map(|p| p.name.clone()),
        );
        for rp in rps {
            self.sync_router_port(state, &rp, t);
        }
    }

    /// Brings router port `rp` in line with `state` and the closure.
    fn sync_router_port(&mut self, state: &ClusterState, rp: &str, t: &mut Touched) {
        let want = state
            .router_ports
            .get(rp)
            .filter(|p| self.dp_routers.contains(&p.router))
            .map(|p| router_port_view(state, p));
        if self.view.router_ports.get(rp) != want.as_ref() {
            let old = match &want {
                Some(v) => self.view.router_ports.insert(rp.to_string(), v.clone()),
                None => self.view.router_ports.remove(rp),
            };
            // The active gateway is a remote chassis of the view while a port names it.
            let was = old
                .as_ref()
                .map(|o| o.active_gateway.clone())
                .unwrap_or_default();
            let now = want
                .as_ref()
                .map(|o| o.active_gateway.clone())
                .unwrap_or_default();
            if was != now {
                self.count_remote(&was, false, t);
                self.count_remote(&now, true, t);
            }
            t.router_ports.entry(rp.to_string()).or_insert(old);
        }
    }

    fn count_remote(&mut self, c: &str, add: bool, t: &mut Touched) {
        if c.is_empty() || c == self.chassis {
            return;
        }
        t.chassis.insert(c.to_string());
        if add {
            *self.remote.entry(c.to_string()).or_insert(0) += 1;
        } else if let Some(n) = self.remote.get_mut(c) {
            *n -= 1;
            if *n == 0 {
                self.remote.remove(c);
            }
        }
    }

    fn remove_port(&mut self, port: &str, t: &mut Touched) {
        let Some(old) = self.view.ports.remove(port) else {
            return;
        };
        if let Some(set) = self.by_switch.get_mut(&old.switch_name) {
            set.remove(port);
            if set.is_empty() {
                self.by_switch.remove(&old.switch_name);
            }
        }
        self.count_remote(&old.chassis, false, t);
        t.ports.entry(port.to_string()).or_insert(Some(old));
    }

    fn upsert_port(&mut self, state: &ClusterState, port: &str, t: &mut Touched) {
        let Some(p) = state.ports.get(port) else {
            self.remove_port(port, t);
            return;
        };
        let c = bound_to(state, port);
        let pv = match state.resolved.get(port) {
            Some(r) => PortView {
                chassis: c.to_string(),
                ..r.clone()
            },
            None => resolve_port(p, c),
        };
        if self.view.ports.get(port) == Some(&pv) {
            return;
        }
        self.remove_port(port, t);
        t.ports.entry(port.to_string()).or_insert(None);
        self.count_remote(c, true, t);
        self.by_switch
            .entry(pv.switch_name.clone())
            .or_default()
            .insert(port.to_string());
        self.view.ports.insert(port.to_string(), pv);
    }

    /// Brings switch `s` (and, when it turns local or stops being local, all its ports) in
    /// line with `state`.
    fn reevaluate_switch(
        &mut self,
        state: &ClusterState,
        s: &str,
        record_changed: bool,
        t: &mut Touched,
    ) {
        let now = self.is_local(state, s);
        let was = self.view.switches.contains_key(s);
        match (was, now) {
            (true, false) => {
                let old = self.view.switches.remove(s);
                t.switches.entry(s.to_string()).or_insert(old);
                for p in self.by_switch.get(s).cloned().unwrap_or_default() {
                    self.remove_port(&p, t);
                }
            }
            (false, true) => {
                if let Some(sw) = state.switches.get(s) {
                    t.switches.entry(s.to_string()).or_insert(None);
                    self.view.switches.insert(s.to_string(), switch_view(sw));
                }
                if let Some(names) = state.ports_by_switch.get(s) {
                    for p in names.iter() {
                        self.upsert_port(state, p, t);
                    }
                }
            }
            (true, true) if record_changed => {
                if let Some(sw) = state.switches.get(s) {
                    let new = switch_view(sw);
                    if self.view.switches.get(s) != Some(&new) {
                        let old = self.view.switches.insert(s.to_string(), new);
                        t.switches.entry(s.to_string()).or_insert(old);
                    }
                }
            }
            _ => {}
        }
    }

    /// Applies `changes` (see [`ClusterState::changes_since`]) to the view, now reflecting
    /// `state`, and returns the delta tagged with `revision` (possibly empty).
    pub fn update(&mut self, state: &ClusterState, changes: &[Changed], revision: i64) -> Delta {
        let mut switches: BTreeSet<String> = BTreeSet::new();
        let mut ports: BTreeSet<String> = BTreeSet::new();
        let mut chassis: BTreeSet<String> = BTreeSet::new();
        let mut routers: BTreeSet<String> = BTreeSet::new();
        let mut router_ports: BTreeSet<String> = BTreeSet::new();
        let mut acl_objects = false;
        let mut load_balancers: BTreeSet<String> = BTreeSet::new();
        for c in changes {
            match c {
                Changed::Switch(s) => {
                    switches.insert(s.clone());
                }
                Changed::Port(p) => {
                    ports.insert(p.clone());
                }
                Changed::Chassis(c) => {
                    chassis.insert(c.clone());
                    // Its liveness may change which gateway chassis is active.
                    for rp in self.view.router_ports.values() {
                        if rp.gateway_chassis.iter().any(|g| &g.chassis_name == c) {
                            router_ports.insert(rp.name.clone());
                        }
                    }
                    // Our own bridge mappings decide which localnet ports are here.
                    if c == &self.chassis {
                        ports.extend(
                            state
                                .ports
                                .values()
                                .filter(|p| p.r#type == "localnet")
                                .map(|p| p.name.clone()),
                        );
                        ports.extend(
                            self.mine
                                .keys()
                                .filter(|p| !state.ports.contains_key(*p))
                                .cloned(),
                        );
                    }
                }
                Changed::Router(r) => {
                    routers.insert(r.clone());
                }
                Changed::RouterPort(p) => {
                    router_ports.insert(p.clone());
                }
                Changed::Object(kind, name) if *kind == crate::kinds::load_balancer::NAME => {
                    load_balancers.insert(name.clone());
                }
                Changed::Object(k, _) => {
                    if crate::view_acl::is_acl_kind(k) {
                        acl_objects = true;
                    }
                }
            }
        }
        let mut t = Touched::default();
        let local_before: BTreeSet<String> = self.local.keys().cloned().collect();
        // A router-type switch port changing can change what is reachable.
        let links_changed = ports.iter().any(|p| {
            state.ports.get(p).is_some_and(|x| x.r#type == "router")
                || self.view.ports.get(p).is_some_and(|x| x.r#type == "router")
        });
        // Which switches may have turned local or stopped being local.
        let mut candidates = switches.clone();
        for p in &ports {
            if let Some(sw) = self.unbind(p) {
                candidates.insert(sw);
            }
            if let Some(port) = state.ports.get(p) {
                if bound_to(state, p) == self.chassis || localnet_here(state, port, &self.chassis) {
                    self.bind(p, &port.switch_name);
                }
                candidates.insert(port.switch_name.clone());
            }
            if let Some(pv) = self.view.ports.get(p) {
                candidates.insert(pv.switch_name.clone());
            }
        }
        let local_now = self.local.len() != local_before.len()
            || self.local.keys().any(|k| !local_before.contains(k));
        if local_now
            || links_changed
            || !switches.is_empty()
            || !routers.is_empty()
            || !router_ports.is_empty()
        {
            let (dps, dpr) = closure(state, self.local.keys().map(String::as_str));
            candidates.extend(dps.symmetric_difference(&self.dp_switches).cloned());
            routers.extend(dpr.symmetric_difference(&self.dp_routers).cloned());
            self.dp_switches = dps;
            self.dp_routers = dpr;
        }
        for s in &candidates {
            self.reevaluate_switch(state, s, switches.contains(s), &mut t);
        }
        for r in &routers {
            self.sync_router(state, r, &mut t);
        }
        for rp in &router_ports {
            self.sync_router_port(state, rp, &mut t);
        }
        // Changed ports on switches that stayed local (upserts are no-ops when equal).
        for p in &ports {
            let local = state
                .ports
                .get(p)
                .is_some_and(|port| self.view.switches.contains_key(&port.switch_name));
            if local {
                self.upsert_port(state, p, &mut t);
            } else {
                self.remove_port(p, &mut t);
            }
        }
        let mut lbs = BTreeMap::new();
        self.sync_load_balancers(state, &t, &load_balancers, &mut lbs);
        t.load_balancers = lbs;
        let view_changed = !t.switches.is_empty() || !t.ports.is_empty() || !ports.is_empty();
        // Remote chassis: referenced by a port in the view and registered.
        chassis.extend(t.chassis.iter().cloned());
        let mut d = Delta {
            revision,
            snapshot: false,
            ..Default::default()
        };
        for c in &chassis {
            let want = if self.remote.contains_key(c) {
                state.chassis.get(c).map(|rc| RemoteChassis {
                    name: rc.name.clone(),
                    encap_ip: rc.encap_ip.clone(),
                    encap_types: rc.encap_types.clone(),
                })
            } else {
                None
            };
            let had = self.view.chassis.get(c).cloned();
            match want {
                Some(rc) => {
                    if had.as_ref() != Some(&rc) {
                        d.chassis.push(rc.clone());
                        self.view.chassis.insert(c.clone(), rc);
                    }
                }
                None => {
                    if had.is_some() {
                        self.view.chassis.remove(c);
                        d.deleted_chassis.push(c.clone());
                    }
                }
            }
        }
        for (s, old) in t.switches {
            match self.view.switches.get(&s) {
                Some(new) if old.as_ref() != Some(new) => d.switches.push(new.clone()),
                Some(_) => {}
                None if old.is_some() => d.deleted_switches.push(s),
                None => {}
            }
        }
        for (p, old) in t.ports {
            match self.view.ports.get(&p) {
                Some(new) if old.as_ref() != Some(new) => d.ports.push(new.clone()),
                Some(_) => {}
                None if old.is_some() => d.deleted_ports.push(p),
                None => {}
            }
        }
        // The ACL part: recomputed when ACLs, port groups or address sets changed, or when
        // switches or ports changed while there are ACLs (port group addresses, which
        // switches are in the view); the diff sends only what differs (an address set change:
        // that set).
        if acl_objects || (view_changed && crate::view_acl::has_acls(state)) {
            let (acls, pgs, sets) =
                crate::view_acl::acl_part(state, &self.view.switches, &self.view.ports);
            (d.acls, d.deleted_acls) = diff_map(&self.view.acls, &acls);
            (d.port_groups, d.deleted_port_groups) = diff_map(&self.view.port_groups, &pgs);
            (d.address_sets, d.deleted_address_sets) = diff_map(&self.view.address_sets, &sets);
            self.view.acls = acls;
            self.view.port_groups = pgs;
            self.view.address_sets = sets;
        }
        for (r, old) in t.routers {
            match self.view.routers.get(&r) {
                Some(new) if old.as_ref() != Some(new) => d.routers.push(new.clone()),
                Some(_) => {}
                None if old.is_some() => d.deleted_routers.push(r),
                None => {}
            }
        }
        for (p, old) in t.router_ports {
            match self.view.router_ports.get(&p) {
                Some(new) if old.as_ref() != Some(new) => d.router_ports.push(new.clone()),
                Some(_) => {}
                None if old.is_some() => d.deleted_router_ports.push(p),
                None => {}
            }
        }
        for (l, old) in t.load_balancers {
            match self.view.load_balancers.get(&l) {
                Some(new) if old.as_ref() != Some(new) => d.load_balancers.push(new.clone()),
                Some(_) => {}
                None if old.is_some() => d.deleted_load_balancers.push(l),
                None => {}
            }
        }
        d
    }
}

/// A snapshot update that replaces the whole view.
pub fn snapshot(view: &View, revision: i64) -> Delta {
    Delta {
        revision,
        snapshot: true,
        switches: view.switches.values().cloned().collect(),
        ports: view.ports.values().cloned().collect(),
        chassis: view.chassis.values().cloned().collect(),
        routers: view.routers.values().cloned().collect(),
        router_ports: view.router_ports.values().cloned().collect(),
        acls: view.acls.values().cloned().collect(),
        port_groups: view.port_groups.values().cloned().collect(),
        address_sets: view.address_sets.values().cloned().collect(),
        load_balancers: view.load_balancers.values().cloned().collect(),
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
pub fn delta(old: &View, new: &View, revision: i64) -> Delta {
    let (switches, deleted_switches) = diff_map(&old.switches, &new.switches);
    let (ports, deleted_ports) = diff_map(&old.ports, &new.ports);
    let (chassis, deleted_chassis) = diff_map(&old.chassis, &new.chassis);
    let (routers, deleted_routers) = diff_map(&old.routers, &new.routers);
    let (router_ports, deleted_router_ports) = diff_map(&old.router_ports, &new.router_ports);
    let (acls, deleted_acls) = diff_map(&old.acls, &new.acls);
    let (port_groups, deleted_port_groups) = diff_map(&old.port_groups, &new.port_groups);
    let (address_sets, deleted_address_sets) = diff_map(&old.address_sets, &new.address_sets);
    let (load_balancers, deleted_load_balancers) =
        diff_map(&old.load_balancers, &new.load_balancers);
    Delta {
        acls,
        deleted_acls,
        port_groups,
        deleted_port_groups,
        address_sets,
        deleted_address_sets,
        load_balancers,
        deleted_load_balancers,
        routers,
        deleted_routers,
        router_ports,
        deleted_router_ports,
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

/// Applies a wire update to a view (what an agent does); used to check streams. An update
/// the agent would reject (see [`Delta::from_update`]) panics: test use only.
pub fn apply(view: &mut View, u: &weft_proto::v1::ViewUpdate) {
    #[allow(clippy::expect_used)]
    let d = Delta::from_update(u).expect("well-formed view update");
    apply_delta(view, &d);
}

/// Applies a delta to a view (what an agent does); used to check deltas.
pub fn apply_delta(view: &mut View, u: &Delta) {
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
    for r in &u.routers {
        view.routers.insert(r.name.clone(), r.clone());
    }
    for p in &u.router_ports {
        view.router_ports.insert(p.name.clone(), p.clone());
    }
    for n in &u.deleted_routers {
        view.routers.remove(n);
    }
    for n in &u.deleted_router_ports {
        view.router_ports.remove(n);
    }
    for a in &u.acls {
        view.acls.insert(a.key.clone(), a.clone());
    }
    for g in &u.port_groups {
        view.port_groups.insert(g.name.clone(), g.clone());
    }
    for a in &u.address_sets {
        view.address_sets.insert(a.name.clone(), a.clone());
    }
    for n in &u.deleted_acls {
        view.acls.remove(n);
    }
    for n in &u.deleted_port_groups {
        view.port_groups.remove(n);
    }
    for n in &u.deleted_address_sets {
        view.address_sets.remove(n);
    }
    for l in &u.load_balancers {
        view.load_balancers.insert(l.name.clone(), l.clone());
    }
    for n in &u.deleted_load_balancers {
        view.load_balancers.remove(n);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weft_proto::v1::{Chassis, LogicalRouter, LogicalRouterPort, LogicalSwitch, PortBinding};

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
    fn routers_make_other_switches_reachable() {
        let mut s = state();
        for (n, p) in s.ports.clone() {
            s.store_port(&n, Some(p), 1); // the indexes ViewState uses
        }
        // hv1 has p1 on "a" only; connect a and b through router r (OVN style).
        s.store_router(
            "r",
            Some(LogicalRouter {
                name: "r".into(),
                tunnel_key: 9,
                enabled: true,
                ..Default::default()
            }),
            1,
        );
        for (rp, sw, lsp) in [("r-a", "a", "a-r"), ("r-b", "b", "b-r")] {
            s.store_router_port(
                rp,
                Some(LogicalRouterPort {
                    name: rp.into(),
                    router: "r".into(),
                    mac: "0a:00:00:00:01:01".into(),
                    networks: vec!["10.0.0.1/24".into()],
                    ..Default::default()
                }),
                1,
            );
            let mut p = LogicalSwitchPort {
                name: lsp.into(),
                switch_name: sw.into(),
                r#type: "router".into(),
                addresses: vec!["router".into()],
                enabled: true,
                ..Default::default()
            };
            p.options.insert("router-port".into(), rp.into());
            s.store_port(lsp, Some(p), 1);
        }
        let v = compute(&s, "hv1");
        assert_eq!(v.switches.keys().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(v.routers.keys().collect::<Vec<_>>(), vec!["r"]);
        assert_eq!(
            v.router_ports.keys().collect::<Vec<_>>(),
            vec!["r-a", "r-b"]
        );
        assert!(v.ports.contains_key("p3"), "b's ports come with it");
        assert_eq!(ViewState::new(&s, "hv1").view(), &v);
        // Without the link, b drops out again.
        s.store_port("b-r", None, 2);
        let v = compute(&s, "hv1");
        assert_eq!(v.switches.keys().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(v.router_ports.len(), 2, "r is still reachable from a");
    }

    #[test]
    fn view_of_hv2_and_unknown_chassis() {
        let v = compute(&state(), "hv2");
        assert_eq!(v.switches.len(), 2);
        assert_eq!(v.ports.len(), 4);
        assert_eq!(v.chassis.keys().collect::<Vec<_>>(), vec!["hv1"]);
        assert_eq!(compute(&state(), "hv9"), View::default());
    }

    /// Random changes applied through the state's key events: the incremental view equals
    /// the full computation after every step, and its delta turns the previous view into it.
    #[test]
    fn incremental_matches_full_compute_on_random_changes() {
        use crate::state::Keys;
        use prost::Message;
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let k = Keys::new("/t");
        let chassis = ["hv1", "hv2", "hv3"];
        let switches = ["a", "b", "c"];
        // The sequences must exercise reachability: some view gets a router, and some view a
        // switch it has no port on (reached through a router).
        let (mut reached_router, mut reached_far, mut reached_acl) = (false, false, false);
        let mut reached_lb = false;
        let mut reached_router_lb = false;
        let (mut reached_gateway, mut reached_localnet) = (false, false);
        for seed in 0..40u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut st = ClusterState::default();
            let mut rev = 1;
            let mut streams: Vec<(ViewState, i64)> = chassis
                .iter()
                .map(|c| (ViewState::new(&st, c), 0))
                .collect();
            for step in 0..300 {
                // One to five key changes per revision batch.
                for _ in 0..rng.random_range(1..=5) {
                    rev += 1;
                    let port = format!("p{}", rng.random_range(0..12));
                    let sw = switches[rng.random_range(0..switches.len())];
                    let ch = chassis[rng.random_range(0..chassis.len())];
                    let router = format!("r{}", rng.random_range(0..3));
                    let rport = format!("rp{}", rng.random_range(0..6));
                    let lb = format!("lb{}", rng.random_range(0..3));
                    match rng.random_range(0..22) {
                        // ACLs, port groups, address sets (the ACL part of the view).
                        14 => {
                            use weft_proto::model::acl::{acl_key, Direction, Entity};
                            let on_pg = rng.random_bool(0.5);
                            let pg = format!("g{}", rng.random_range(0..3));
                            let entity = if on_pg {
                                Entity::PortGroup(pg.clone())
                            } else {
                                Entity::Switch(sw.into())
                            };
                            let m = match rng.random_range(0..3) {
                                0 => format!("ip4.src == $s{}", rng.random_range(0..3)),
                                1 => format!("outport == @g{} && ip", rng.random_range(0..3)),
                                _ => format!("ip4.src == $g{}_ip4", rng.random_range(0..3)),
                            };
                            let prio = rng.random_range(0..3);
                            let key = acl_key(&entity, Direction::ToLport, prio, &m);
                            let rel = format!("{}nb/acls/{key}", k.root());
                            if rng.random_bool(0.75) {
                                let a = weft_proto::v1::Acl {
                                    key,
                                    switch: if on_pg { String::new() } else { sw.into() },
                                    port_group: if on_pg { pg } else { String::new() },
                                    direction: "to-lport".into(),
                                    priority: prio,
                                    r#match: m,
                                    action: "drop".into(),
                                    ..Default::default()
                                };
                                st.apply_put(&k, &rel, &a.encode_to_vec(), rev);
                            } else {
                                st.apply_delete(&k, &rel, rev);
                            }
                        }
                        15 => {
                            let g = format!("g{}", rng.random_range(0..3));
                            let rel = format!("{}nb/port_groups/{g}", k.root());
                            if rng.random_bool(0.8) {
                                let ports = (0..rng.random_range(0..4))
                                    .map(|_| format!("p{}", rng.random_range(0..12)))
                                    .collect();
                                let v = weft_proto::v1::PortGroup {
                                    name: g,
                                    ports,
                                    ..Default::default()
                                };
                                st.apply_put(&k, &rel, &v.encode_to_vec(), rev);
                            } else {
                                st.apply_delete(&k, &rel, rev);
                            }
                        }
                        16 => {
                            let n = format!("s{}", rng.random_range(0..3));
                            let rel = format!("{}nb/address_sets/{n}", k.root());
                            if rng.random_bool(0.8) {
                                let v = weft_proto::v1::AddressSet {
                                    name: n,
                                    addresses: vec![format!("10.9.0.{}", rng.random_range(1..9))],
                                    ..Default::default()
                                };
                                st.apply_put(&k, &rel, &v.encode_to_vec(), rev);
                            } else {
                                st.apply_delete(&k, &rel, rev);
                            }
                        }
                        0 => {
                            let mut v = LogicalSwitch {
                                name: sw.into(),
                                vni: rng.random_range(1..4),
                                subnet: "10.0.0.0/24".into(),
                                ..Default::default()
                            };
                            for lb in ["lb0", "lb1", "lb2"] {
                                if rng.random_bool(0.4) {
                                    v.load_balancer.push(lb.into());
                                }
                            }
                            st.apply_put(&k, &k.switch(sw), &v.encode_to_vec(), rev);
                        }
                        1 => {
                            st.apply_delete(&k, &k.switch(sw), rev);
                        }
                        2..=4 => {
                            let mut p = LogicalSwitchPort {
                                name: port.clone(),
                                switch_name: sw.into(),
                                enabled: rng.random_bool(0.8),
                                ..Default::default()
                            };
                            if rng.random_bool(0.5) {
                                p.addresses = vec![format!(
                                    "0a:00:00:00:00:{:02x} 10.0.0.{}",
                                    rng.random_range(0..255u8),
                                    rng.random_range(2..250u8)
                                )];
                            }
                            // Some ports connect their switch to a router port, some to
                            // the provider network.
                            if rng.random_bool(0.3) {
                                p.r#type = "router".into();
                                p.options.insert("router-port".into(), rport.clone());
                            } else if rng.random_bool(0.15) {
                                p.r#type = "localnet".into();
                                p.options.insert("network_name".into(), "physnet".into());
                            }
                            st.apply_put(&k, &k.port(&port), &p.encode_to_vec(), rev);
                        }
                        5 => {
                            st.apply_delete(&k, &k.port(&port), rev);
                        }
                        6 | 7 => {
                            let b = PortBinding {
                                port: port.clone(),
                                chassis: ch.into(),
                                up: rng.random_bool(0.5),
                            };
                            st.apply_put(&k, &k.binding(&port), &b.encode_to_vec(), rev);
                        }
                        8 => {
                            st.apply_delete(&k, &k.binding(&port), rev);
                        }
                        10 => {
                            let mut r = LogicalRouter {
                                name: router.clone(),
                                tunnel_key: rng.random_range(1..5),
                                enabled: rng.random_bool(0.9),
                                ..Default::default()
                            };
                            // Router load balancers (lr-lb-add), some shared with switches.
                            for lb in ["lb0", "lb1", "lb2"] {
                                if rng.random_bool(0.3) {
                                    r.load_balancer.push(lb.into());
                                }
                            }
                            let key = format!("{}nb/routers/{router}", k.root());
                            st.apply_put(&k, &key, &r.encode_to_vec(), rev);
                        }
                        11 => {
                            let key = format!("{}nb/routers/{router}", k.root());
                            st.apply_delete(&k, &key, rev);
                        }
                        12 => {
                            let peer = if rng.random_bool(0.3) {
                                format!("rp{}", rng.random_range(0..6))
                            } else {
                                String::new()
                            };
                            let lrp = LogicalRouterPort {
                                name: rport.clone(),
                                router: router.clone(),
                                mac: format!("0a:00:00:00:01:{:02x}", rng.random_range(0..255u8)),
                                networks: vec!["10.0.0.1/24".into()],
                                peer,
                                tunnel_key: rng.random_range(1..5),
                                gateway_chassis: chassis
                                    .iter()
                                    .map(|c| (c, rng.random_bool(0.3), rng.random_range(0..3)))
                                    .filter(|(_, on, _)| *on)
                                    .map(|(c, _, priority)| weft_proto::v1::GatewayChassis {
                                        chassis_name: c.to_string(),
                                        priority,
                                    })
                                    .collect(),
                                ..Default::default()
                            };
                            let key = format!("{}nb/router_ports/{rport}", k.root());
                            st.apply_put(&k, &key, &lrp.encode_to_vec(), rev);
                        }
                        13 => {
                            let key = format!("{}nb/router_ports/{rport}", k.root());
                            st.apply_delete(&k, &key, rev);
                        }
                        17 => {
                            let l = weft_proto::v1::LoadBalancer {
                                name: lb.clone(),
                                protocol: "tcp".into(),
                                vips: [(
                                    "10.96.0.10:80".to_string(),
                                    format!("10.0.0.{}:80", rng.random_range(2..9)),
                                )]
                                .into(),
                                ..Default::default()
                            };
                            let key = format!("{}nb/load_balancers/{lb}", k.root());
                            st.apply_put(&k, &key, &l.encode_to_vec(), rev);
                        }
                        18 => {
                            let key = format!("{}nb/load_balancers/{lb}", k.root());
                            st.apply_delete(&k, &key, rev);
                        }
                        // Liveness: it decides the active gateway chassis.
                        20 | 21 => {
                            if rng.random_bool(0.6) {
                                st.apply_put(&k, &k.alive(ch), b"", rev);
                            } else {
                                st.apply_delete(&k, &k.alive(ch), rev);
                            }
                        }
                        _ => {
                            if rng.random_bool(0.7) {
                                let mut c = Chassis {
                                    name: ch.into(),
                                    encap_ip: format!("192.168.0.{}", rng.random_range(1..4)),
                                    encap_types: vec!["geneve".into()],
                                    ..Default::default()
                                };
                                if rng.random_bool(0.5) {
                                    c.bridge_mappings.insert("physnet".into(), "br-ex".into());
                                }
                                st.apply_put(&k, &k.chassis(ch), &c.encode_to_vec(), rev);
                            } else {
                                st.apply_delete(&k, &k.chassis(ch), rev);
                            }
                        }
                    }
                }
                st.revision = rev;
                // Streams catch up at different paces (some skip revisions).
                for (i, (vs, seen)) in streams.iter_mut().enumerate() {
                    if rng.random_bool(0.3) && step != 299 {
                        continue;
                    }
                    let before = vs.view().clone();
                    let changes = st.changes_since(*seen).expect("log reaches back");
                    let d = vs.update(&st, &changes, rev);
                    *seen = rev;
                    let full = compute(&st, chassis[i]);
                    assert_eq!(vs.view(), &full, "seed {seed} step {step} {}", chassis[i]);
                    assert_eq!(d, delta(&before, &full, rev), "seed {seed} step {step}");
                    let mut applied = before;
                    apply_delta(&mut applied, &d);
                    assert_eq!(applied, full);
                }
                reached_router |= streams.iter().any(|(vs, _)| !vs.view().routers.is_empty());
                reached_acl |= streams.iter().any(|(vs, _)| {
                    vs.view().acls.values().any(|a| !a.port_group.is_empty())
                        && !vs.view().address_sets.is_empty()
                        && vs.view().port_groups.values().any(|g| !g.ip4.is_empty())
                });
                reached_lb |= streams
                    .iter()
                    .any(|(vs, _)| !vs.view().load_balancers.is_empty());
                reached_router_lb |= streams.iter().any(|(vs, _)| {
                    let v = vs.view();
                    v.routers.values().any(|r| {
                        r.load_balancer.iter().any(|l| {
                            v.load_balancers.contains_key(l)
                                && !v.switches.values().any(|s| s.load_balancer.contains(l))
                        })
                    })
                });
                reached_gateway |= streams.iter().any(|(vs, _)| {
                    vs.view()
                        .router_ports
                        .values()
                        .any(|p| !p.active_gateway.is_empty())
                });
                reached_localnet |= streams.iter().any(|(vs, _)| {
                    vs.view().ports.values().any(|p| p.r#type == "localnet")
                        && vs.local.values().flatten().any(|p| {
                            vs.view()
                                .ports
                                .get(p)
                                .is_some_and(|x| x.r#type == "localnet")
                        })
                });
                reached_far |= streams
                    .iter()
                    .any(|(vs, _)| vs.view().switches.keys().any(|s| !vs.local.contains_key(s)));
            }
            // A fresh full computation agrees too.
            for c in chassis {
                assert_eq!(ViewState::new(&st, c).view(), &compute(&st, c));
            }
        }
        assert!(
            reached_router && reached_far,
            "router reachability never exercised"
        );
        assert!(reached_acl, "the ACL part was never exercised");
        assert!(reached_lb, "no view ever carried a load balancer");
        assert!(
            reached_router_lb,
            "no view ever carried a load balancer only a router names"
        );
        assert!(
            reached_gateway,
            "no view ever had an active gateway chassis"
        );
        assert!(
            reached_localnet,
            "no switch was ever local through a localnet port"
        );
    }

    #[test]
    fn changes_since_reports_what_a_stream_missed() {
        use crate::state::{Changed, Keys};
        let k = Keys::new("/t");
        let mut st = ClusterState::from_kvs(&k, &[], 10);
        assert_eq!(st.changes_since(9), None, "before a load: unknown");
        assert_eq!(st.changes_since(10), Some(vec![]));
        st.apply_delete(&k, &k.port("nothing"), 11);
        assert_eq!(
            st.changes_since(10),
            Some(vec![]),
            "deleting nothing changes nothing"
        );
        st.apply_put(&k, &k.binding("p"), &[], 12);
        st.apply_put(&k, &k.applied("hv1"), b"12", 13);
        assert_eq!(st.changes_since(10), Some(vec![Changed::Port("p".into())]));
        assert_eq!(st.changes_since(12), Some(vec![]));
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
        apply_delta(&mut applied, &d);
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
        apply_delta(&mut applied, &d);
        assert_eq!(applied, View::default());
        let snap = snapshot(&v2, 45);
        let mut fresh = View::default();
        apply_delta(&mut fresh, &snap);
        assert_eq!(fresh, v2);
    }
}
