//! The etcd key layout ([`Keys`]) and the decoded state under the prefix ([`ClusterState`]).
//! Pure: built from key/values, updated by watch events, read by the view computation and the
//! northbound reads.
//!
//! Layout under `{prefix}/v1/` (values are protobuf of `weft.v1` types unless noted):
//! ```text
//! nb/switches/<name>         LogicalSwitch
//! nb/ports/<name>            LogicalSwitchPort (port names are global)
//! claims/vni/<vni>           switch name (text)
//! claims/ip/<switch>/<ip>    port name (text)
//! claims/mac/<switch>/<mac>  port name (text)
//! gen/<switch>               empty; rewritten on every port create/delete of the switch
//! chassis/<name>             Chassis (persistent: written on Subscribe when it changed)
//! status/alive/<chassis>     empty; on the chassis' lease (present = agent connected)
//! status/applied/<chassis>   applied revision, decimal text (same lease)
//! status/error/<chassis>     the agent's last apply error, text (not leased; absent = none)
//! status/bindings/<port>     PortBinding (not leased)
//! status/sightings/<port>    chassis name (text): a VIF with iface-id=<port> seen on that
//!                            chassis while no port <port> exists; a create binds from it
//! ```

// Persistent maps: the cache publishes a new state on every etcd event while streams still
// hold the previous one, so a copy must cost O(changed), not O(everything).
use imbl::{OrdMap as BTreeMap, OrdSet as BTreeSet};
use std::net::Ipv4Addr;

use prost::Message;
use weft_proto::v1::{
    Chassis, LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort, PortBinding,
    PortView,
};

use crate::store::KeyValue;

/// Builds the keys of the layout above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

impl Keys {
    /// Keys under `{prefix}/v1/`; `prefix` like `/weft` (a trailing slash is ignored).
    pub fn new(prefix: &str) -> Self {
        let p = prefix.trim_end_matches('/');
        Keys {
            root: format!("{p}/v1/"),
        }
    }
    /// `{prefix}/v1/`: everything the controller owns.
    pub fn root(&self) -> &str {
        &self.root
    }
    /// Switch key.
    pub fn switch(&self, name: &str) -> String {
        format!("{}nb/switches/{name}", self.root)
    }
    /// All switches.
    pub fn switches(&self) -> String {
        format!("{}nb/switches/", self.root)
    }
    /// Port key.
    pub fn port(&self, name: &str) -> String {
        format!("{}nb/ports/{name}", self.root)
    }
    /// All ports.
    pub fn ports(&self) -> String {
        format!("{}nb/ports/", self.root)
    }
    /// VNI claim.
    pub fn claim_vni(&self, vni: u32) -> String {
        format!("{}claims/vni/{vni}", self.root)
    }
    /// All VNI claims.
    pub fn claims_vni(&self) -> String {
        format!("{}claims/vni/", self.root)
    }
    /// IP claim on a switch.
    pub fn claim_ip(&self, switch: &str, ip: Ipv4Addr) -> String {
        format!("{}claims/ip/{switch}/{ip}", self.root)
    }
    /// All IP claims of a switch.
    pub fn claims_ip(&self, switch: &str) -> String {
        format!("{}claims/ip/{switch}/", self.root)
    }
    /// MAC claim on a switch.
    pub fn claim_mac(&self, switch: &str, mac: &str) -> String {
        format!("{}claims/mac/{switch}/{mac}", self.root)
    }
    /// All MAC claims of a switch.
    pub fn claims_mac(&self, switch: &str) -> String {
        format!("{}claims/mac/{switch}/", self.root)
    }
    /// Port-set generation of a switch.
    pub fn gen(&self, switch: &str) -> String {
        format!("{}gen/{switch}", self.root)
    }
    /// Chassis registration.
    pub fn chassis(&self, name: &str) -> String {
        format!("{}chassis/{name}", self.root)
    }
    /// Liveness of a chassis (on its lease).
    pub fn alive(&self, chassis: &str) -> String {
        format!("{}status/alive/{chassis}", self.root)
    }
    /// Last apply error of a chassis.
    pub fn error(&self, chassis: &str) -> String {
        format!("{}status/error/{chassis}", self.root)
    }
    /// Applied revision of a chassis.
    pub fn applied(&self, chassis: &str) -> String {
        format!("{}status/applied/{chassis}", self.root)
    }
    /// Binding of a port.
    pub fn binding(&self, port: &str) -> String {
        format!("{}status/bindings/{port}", self.root)
    }
    /// All bindings.
    pub fn bindings(&self) -> String {
        format!("{}status/bindings/", self.root)
    }
    /// Sighting of a VIF for a port that does not exist (yet).
    pub fn sighting(&self, port: &str) -> String {
        format!("{}status/sightings/{port}", self.root)
    }
    /// All sightings.
    pub fn sightings(&self) -> String {
        format!("{}status/sightings/", self.root)
    }
}

/// A VIF seen on a chassis for a port that did not exist when the chassis reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The chassis that reported the VIF.
    pub chassis: String,
    /// mod_revision of the sighting key (for compares).
    pub mod_revision: i64,
}

/// How many view-relevant key changes a state remembers (see [`ClusterState::changes_since`]);
/// a stream further behind recomputes its view in full.
pub const CHANGE_LOG_LEN: usize = 16384;

/// A view-relevant object that changed (what [`crate::view::ViewState`] re-evaluates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// A switch record.
    Switch(String),
    /// A port record or its binding.
    Port(String),
    /// A chassis record.
    Chassis(String),
    /// A router record.
    Router(String),
    /// A router port record.
    RouterPort(String),
    /// An object of a kind kept in [`ClusterState::objects`] (kind, name).
    Object(&'static str, String),
}

/// What a key change touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Something under `nb/`.
    Intent,
    /// Chassis, bindings or applied revisions.
    Status,
    /// Claims, generations, foreign keys.
    Other,
}

/// True for changes that every stream gets an update for: everything but acks
/// (`status/applied/`), which must never cause updates (an ack would cause an ack).
fn bumps_views(rel: &str, change: Change) -> bool {
    match change {
        Change::Intent => true,
        Change::Status => {
            rel.starts_with("chassis/")
                || rel.starts_with("status/bindings/")
                || rel.starts_with(crate::lb_health::PREFIX)
        }
        Change::Other => false,
    }
}

/// Everything under the prefix, decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterState {
    /// Store revision this state reflects.
    pub revision: i64,
    /// Revision of the latest change that can alter a chassis view: intent (`nb/`), chassis
    /// records and port bindings; not applied-revision acks (0 if none seen). Every stream is
    /// sent an update at this revision, so `Sync` with revision 0 waits for it.
    pub intent_revision: i64,
    /// Switches by name.
    pub switches: BTreeMap<String, LogicalSwitch>,
    /// Ports by name (status fields empty; see [`ClusterState::port_with_status`]).
    pub ports: BTreeMap<String, LogicalSwitchPort>,
    /// Each port as views carry it (addresses parsed, dynamic ones included; `chassis`
    /// empty), kept in step with `ports`.
    pub resolved: BTreeMap<String, PortView>,
    /// Bindings by port name.
    pub bindings: BTreeMap<String, PortBinding>,
    /// Registered chassis by name, alive or not (status fields empty; see
    /// [`ClusterState::chassis_list`]).
    pub chassis: BTreeMap<String, Chassis>,
    /// Names of the chassis whose lease is alive (agent connected).
    pub alive: BTreeSet<String>,
    /// Last apply error by chassis name (only non-empty ones are stored).
    pub errors: BTreeMap<String, String>,
    /// Applied revision by chassis name.
    pub applied: BTreeMap<String, i64>,
    /// VIF sightings by port name (ports that did not exist when reported).
    pub sightings: BTreeMap<String, Sighting>,
    /// Bound port names by chassis (kept in step with `bindings`).
    pub bindings_by_chassis: BTreeMap<String, BTreeSet<String>>,
    /// Sighted port names by chassis (kept in step with `sightings`).
    pub sightings_by_chassis: BTreeMap<String, BTreeSet<String>>,
    /// Every claim (`claims/...` key relative to the root, e.g. `claims/ip/sw/10.0.0.5`) →
    /// its owner: IPs, MACs, VNIs, datapath and port keys.
    pub claims: BTreeMap<String, String>,
    /// mod_revision of every key (relative to the root), for the planner's compares.
    pub revs: BTreeMap<String, i64>,
    /// Routers by name.
    pub routers: BTreeMap<String, LogicalRouter>,
    /// Router ports by name.
    pub router_ports: BTreeMap<String, LogicalRouterPort>,
    /// Router port names by router (kept in step with `router_ports`).
    pub router_ports_by_router: BTreeMap<String, BTreeSet<String>>,
    /// Switch ports of type "router" by the router port they connect to
    /// (`options:router-port`): router port → switch port names.
    pub router_port_links: BTreeMap<String, BTreeSet<String>>,
    /// Switch ports of type "router" by switch (what a view follows to reach routers).
    pub router_lsps_by_switch: BTreeMap<String, BTreeSet<String>>,
    /// Objects of kinds without a map of their own, by kind name, then object name (what a
    /// new kind uses until it needs an index; see `kinds::generic_methods!`).
    pub objects: BTreeMap<&'static str, BTreeMap<String, weft_proto::v1::Object>>,
    /// Port names by switch name (kept in step with `ports`).
    pub ports_by_switch: BTreeMap<String, BTreeSet<String>>,
    /// The latest view-relevant changes, oldest first, with their revisions (at most
    /// [`CHANGE_LOG_LEN`]).
    pub change_log: imbl::Vector<(i64, Changed)>,
    /// Changes at or below this revision are no longer (or were never) in `change_log`.
    pub change_floor: i64,
    /// Load balancer backend health reported by agents (`status/lb_health/LB/VIP/BACKEND`):
    /// LB name → `"VIP BACKEND"` → `online` / `offline` (see [`crate::lb_health`]).
    pub lb_health: BTreeMap<String, BTreeMap<String, String>>,
}

/// Adds `v` to the set `outer[k]`.
fn add_to_set(outer: &mut BTreeMap<String, BTreeSet<String>>, k: &str, v: &str) {
    let mut set = outer.get(k).cloned().unwrap_or_default();
    set.insert(v.to_string());
    outer.insert(k.to_string(), set);
}

/// Removes `v` from the set `outer[k]` (dropping it when it becomes empty).
fn remove_from_set(outer: &mut BTreeMap<String, BTreeSet<String>>, k: &str, v: &str) {
    let Some(mut set) = outer.get(k).cloned() else {
        return;
    };
    set.remove(v);
    if set.is_empty() {
        outer.remove(k);
    } else {
        outer.insert(k.to_string(), set);
    }
}

impl ClusterState {
    /// Decodes a full range read.
    pub fn from_kvs(keys: &Keys, kvs: &[KeyValue], revision: i64) -> Self {
        let mut s = ClusterState::default();
        for kv in kvs {
            if s.apply_put(keys, &kv.key, &kv.value, kv.mod_revision) == Change::Intent {
                s.intent_revision = s.intent_revision.max(kv.mod_revision);
            }
        }
        s.revision = revision;
        // A fresh load says nothing about what changed before it.
        s.change_log.clear();
        s.change_floor = revision;
        s
    }

    /// The switches, ports and chassis changed after `revision`, or None when the log no
    /// longer reaches back that far (the caller recomputes in full).
    pub fn changes_since(&self, revision: i64) -> Option<Vec<Changed>> {
        if revision < self.change_floor {
            return None;
        }
        // The log is in revision order: skip what the caller has seen.
        let start = self.change_log.binary_search_by(|(r, _)| {
            if *r <= revision {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        });
        let start = start.unwrap_or_else(|i| i);
        Some(
            self.change_log
                .iter()
                .skip(start)
                .map(|(_, c)| c.clone())
                .collect(),
        )
    }

    /// The liveness of `chassis` changed: when it is a gateway chassis of a router port, the
    /// active gateway may change, so views are updated (liveness alone changes no view).
    fn gateway_liveness(&mut self, chassis: &str, revision: i64) {
        let is_gateway = self
            .router_ports
            .values()
            .any(|p| p.gateway_chassis.iter().any(|g| g.chassis_name == chassis));
        if is_gateway {
            self.log_change(revision, Changed::Chassis(chassis.to_string()));
            self.intent_revision = self.intent_revision.max(revision);
        }
    }

    fn log_change(&mut self, revision: i64, c: Changed) {
        self.change_log.push_back((revision, c));
        while self.change_log.len() > CHANGE_LOG_LEN {
            if let Some((r, _)) = self.change_log.pop_front() {
                self.change_floor = self.change_floor.max(r);
            }
        }
    }

    fn index_port(&mut self, name: &str, switch: Option<&str>) {
        if let Some(old) = self.ports.get(name).map(|p| p.switch_name.clone()) {
            if switch != Some(old.as_str()) {
                if let Some(mut set) = self.ports_by_switch.get(&old).cloned() {
                    set.remove(name);
                    if set.is_empty() {
                        self.ports_by_switch.remove(&old);
                    } else {
                        self.ports_by_switch.insert(old, set);
                    }
                }
            }
        }
        if let Some(sw) = switch {
            let mut set = self.ports_by_switch.get(sw).cloned().unwrap_or_default();
            set.insert(name.to_string());
            self.ports_by_switch.insert(sw.to_string(), set);
        }
    }

    /// Applies a put; undecodable values are skipped (logged).
    pub fn apply_put(&mut self, keys: &Keys, key: &str, value: &[u8], mod_rev: i64) -> Change {
        let Some(rel) = key.strip_prefix(keys.root()) else {
            return Change::Other;
        };
        fn decode<M: Message + Default>(key: &str, v: &[u8]) -> Option<M> {
            match M::decode(v) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(key, error = %e, "undecodable value in store, skipped");
                    None
                }
            }
        }
        self.revs.insert(rel.to_string(), mod_rev);
        let change = if let Some((kind, name)) = crate::objects::by_key(rel) {
            match kind.decode(value) {
                Ok(obj) => kind.store(self, name, Some(obj), mod_rev),
                Err(e) => tracing::warn!(key, error = %e, "undecodable value in store, skipped"),
            }
            if rel.starts_with("nb/") {
                Change::Intent
            } else {
                Change::Status
            }
        } else if let Some(name) = rel.strip_prefix("status/bindings/") {
            if let Some(m) = decode::<PortBinding>(key, value) {
                if let Some(old) = self.bindings.get(name).map(|b| b.chassis.clone()) {
                    remove_from_set(&mut self.bindings_by_chassis, &old, name);
                }
                add_to_set(&mut self.bindings_by_chassis, &m.chassis, name);
                self.bindings.insert(name.to_string(), m);
                self.log_change(mod_rev, Changed::Port(name.to_string()));
            }
            Change::Status
        } else if let Some(name) = rel.strip_prefix("status/applied/") {
            if let Some(r) = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()) {
                self.applied.insert(name.to_string(), r);
            }
            Change::Status
        } else if let Some(name) = rel.strip_prefix("status/alive/") {
            self.alive.insert(name.to_string());
            self.gateway_liveness(name, mod_rev);
            Change::Status
        } else if let Some(name) = rel.strip_prefix("status/error/") {
            self.errors.insert(
                name.to_string(),
                String::from_utf8_lossy(value).into_owned(),
            );
            Change::Status
        } else if let Some(rest) = rel.strip_prefix(crate::lb_health::PREFIX) {
            if let Some((lb, k)) = crate::lb_health::parse_key(rest) {
                let mut m = self.lb_health.get(lb).cloned().unwrap_or_default();
                m.insert(k, String::from_utf8_lossy(value).into_owned());
                self.lb_health.insert(lb.to_string(), m);
                self.log_change(
                    mod_rev,
                    Changed::Object(crate::kinds::load_balancer::NAME, lb.to_string()),
                );
            }
            Change::Status
        } else if let Some(name) = rel.strip_prefix("status/sightings/") {
            let chassis = String::from_utf8_lossy(value).into_owned();
            if let Some(old) = self.sightings.get(name).map(|s| s.chassis.clone()) {
                remove_from_set(&mut self.sightings_by_chassis, &old, name);
            }
            add_to_set(&mut self.sightings_by_chassis, &chassis, name);
            self.sightings.insert(
                name.to_string(),
                Sighting {
                    chassis,
                    mod_revision: mod_rev,
                },
            );
            Change::Status
        } else if rel.starts_with("claims/") {
            self.claims
                .insert(rel.to_string(), String::from_utf8_lossy(value).into_owned());
            Change::Other
        } else if rel.starts_with("nb/") {
            Change::Intent
        } else {
            Change::Other
        };
        if bumps_views(rel, change) {
            self.intent_revision = self.intent_revision.max(mod_rev);
        }
        change
    }

    /// Applies a delete at `rev`.
    pub fn apply_delete(&mut self, keys: &Keys, key: &str, rev: i64) -> Change {
        let Some(rel) = key.strip_prefix(keys.root()) else {
            return Change::Other;
        };
        self.revs.remove(rel);
        let change = if let Some((kind, name)) = crate::objects::by_key(rel) {
            kind.store(self, name, None, rev);
            if rel.starts_with("nb/") {
                Change::Intent
            } else {
                Change::Status
            }
        } else if let Some(name) = rel.strip_prefix("status/bindings/") {
            if let Some(old) = self.bindings.remove(name) {
                remove_from_set(&mut self.bindings_by_chassis, &old.chassis, name);
                self.log_change(rev, Changed::Port(name.to_string()));
            }
            Change::Status
        } else if let Some(name) = rel.strip_prefix("status/applied/") {
            self.applied.remove(name);
            Change::Status
        } else if let Some(name) = rel.strip_prefix("status/alive/") {
            self.alive.remove(name);
            self.gateway_liveness(name, rev);
            Change::Status
        } else if let Some(name) = rel.strip_prefix("status/error/") {
            self.errors.remove(name);
            Change::Status
        } else if let Some(rest) = rel.strip_prefix(crate::lb_health::PREFIX) {
            if let Some((lb, k)) = crate::lb_health::parse_key(rest) {
                if let Some(mut m) = self.lb_health.get(lb).cloned() {
                    m.remove(&k);
                    if m.is_empty() {
                        self.lb_health.remove(lb);
                    } else {
                        self.lb_health.insert(lb.to_string(), m);
                    }
                }
                self.log_change(
                    rev,
                    Changed::Object(crate::kinds::load_balancer::NAME, lb.to_string()),
                );
            }
            Change::Status
        } else if let Some(name) = rel.strip_prefix("status/sightings/") {
            if let Some(old) = self.sightings.remove(name) {
                remove_from_set(&mut self.sightings_by_chassis, &old.chassis, name);
            }
            Change::Status
        } else if rel.starts_with("claims/") {
            self.claims.remove(rel);
            Change::Other
        } else if rel.starts_with("nb/") {
            Change::Intent
        } else {
            Change::Other
        };
        if bumps_views(rel, change) {
            self.intent_revision = self.intent_revision.max(rev);
        }
        change
    }

    /// Keeps the switch map and the change log in step (called by the switch kind).
    pub fn store_switch(&mut self, name: &str, sw: Option<LogicalSwitch>, rev: i64) {
        let changed = match sw {
            Some(s) => {
                self.switches.insert(name.to_string(), s);
                true
            }
            None => self.switches.remove(name).is_some(),
        };
        if changed {
            self.log_change(rev, Changed::Switch(name.to_string()));
        }
    }

    /// Keeps the port maps, indexes and the change log in step (called by the port kind).
    pub fn store_port(&mut self, name: &str, port: Option<LogicalSwitchPort>, rev: i64) {
        if let Some(old) = self.ports.get(name).cloned() {
            if let Some(rp) = old.options.get("router-port") {
                remove_from_set(&mut self.router_port_links, rp, name);
            }
            remove_from_set(&mut self.router_lsps_by_switch, &old.switch_name, name);
        }
        match port {
            Some(m) => {
                // Resolved once here, not on every view computation of every stream.
                self.resolved
                    .insert(name.to_string(), crate::view::resolve_port(&m, ""));
                self.index_port(name, Some(&m.switch_name));
                if m.r#type == "router" {
                    if let Some(rp) = m.options.get("router-port") {
                        add_to_set(&mut self.router_port_links, rp, name);
                    }
                    add_to_set(&mut self.router_lsps_by_switch, &m.switch_name, name);
                }
                self.ports.insert(name.to_string(), m);
                self.log_change(rev, Changed::Port(name.to_string()));
            }
            None => {
                self.index_port(name, None);
                if self.ports.remove(name).is_some() {
                    self.log_change(rev, Changed::Port(name.to_string()));
                }
                self.resolved.remove(name);
            }
        }
    }

    /// Keeps the chassis map and the change log in step (called by the chassis kind).
    pub fn store_chassis(&mut self, name: &str, c: Option<Chassis>, rev: i64) {
        let changed = match c {
            Some(c) => {
                self.chassis.insert(name.to_string(), c);
                true
            }
            None => self.chassis.remove(name).is_some(),
        };
        if changed {
            self.log_change(rev, Changed::Chassis(name.to_string()));
        }
    }

    /// Keeps the router map and the change log in step (called by the router kind).
    pub fn store_router(&mut self, name: &str, r: Option<LogicalRouter>, rev: i64) {
        let changed = match r {
            Some(r) => {
                self.routers.insert(name.to_string(), r);
                true
            }
            None => self.routers.remove(name).is_some(),
        };
        if changed {
            self.log_change(rev, Changed::Router(name.to_string()));
        }
    }

    /// Keeps the router port map, its index and the change log in step.
    pub fn store_router_port(&mut self, name: &str, p: Option<LogicalRouterPort>, rev: i64) {
        if let Some(old) = self.router_ports.get(name).cloned() {
            remove_from_set(&mut self.router_ports_by_router, &old.router, name);
        }
        let changed = match p {
            Some(p) => {
                add_to_set(&mut self.router_ports_by_router, &p.router, name);
                self.router_ports.insert(name.to_string(), p);
                true
            }
            None => self.router_ports.remove(name).is_some(),
        };
        if changed {
            self.log_change(rev, Changed::RouterPort(name.to_string()));
        }
    }

    /// Keeps [`ClusterState::objects`] and the change log in step (kinds without a map of
    /// their own).
    pub fn store_object(
        &mut self,
        kind: &'static str,
        name: &str,
        obj: Option<weft_proto::v1::Object>,
        rev: i64,
    ) {
        let mut m = self.objects.get(kind).cloned().unwrap_or_default();
        let changed = match obj {
            Some(o) => {
                m.insert(name.to_string(), o);
                true
            }
            None => m.remove(name).is_some(),
        };
        if m.is_empty() {
            self.objects.remove(kind);
        } else {
            self.objects.insert(kind, m);
        }
        if changed {
            self.log_change(rev, Changed::Object(kind, name.to_string()));
        }
    }

    /// A port with `up` and `chassis` filled from its binding.
    pub fn port_with_status(&self, p: &LogicalSwitchPort) -> LogicalSwitchPort {
        let mut p = p.clone();
        if let Some(b) = self.bindings.get(&p.name) {
            p.chassis = b.chassis.clone();
            p.up = b.up;
        } else {
            p.chassis.clear();
            p.up = false;
        }
        p
    }

    /// Ports of one switch with status, sorted by name.
    pub fn ports_of(&self, switch: &str) -> Vec<LogicalSwitchPort> {
        let Some(names) = self.ports_by_switch.get(switch) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|n| self.ports.get(n))
            .map(|p| self.port_with_status(p))
            .collect()
    }

    /// Every registered chassis with `alive` and `applied_revision` filled, sorted by name.
    pub fn chassis_list(&self) -> Vec<Chassis> {
        self.chassis
            .values()
            .map(|c| {
                let mut c = c.clone();
                c.alive = self.alive.contains(&c.name);
                c.last_error = self.errors.get(&c.name).cloned().unwrap_or_default();
                c.applied_revision = self.applied.get(&c.name).copied().unwrap_or(0);
                c
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kv(key: String, value: Vec<u8>, rev: i64) -> KeyValue {
        KeyValue {
            key,
            value,
            mod_revision: rev,
            lease: 0,
        }
    }

    #[test]
    fn decode_and_track_intent_revision() {
        let k = Keys::new("/weft/");
        assert_eq!(k.switch("a"), "/weft/v1/nb/switches/a");
        let sw = LogicalSwitch {
            name: "a".into(),
            ..Default::default()
        };
        let p = LogicalSwitchPort {
            name: "p".into(),
            switch_name: "a".into(),
            ..Default::default()
        };
        let b = PortBinding {
            port: "p".into(),
            chassis: "hv1".into(),
            up: true,
        };
        let mut s = ClusterState::from_kvs(
            &k,
            &[
                kv(k.switch("a"), sw.encode_to_vec(), 5),
                kv(k.port("p"), p.encode_to_vec(), 6),
                kv(k.binding("p"), b.encode_to_vec(), 9),
                kv(k.applied("hv1"), b"8".to_vec(), 10),
                kv(k.switch("bad"), vec![0xff, 0xff], 7),
            ],
            10,
        );
        // The binding (9) counts, the ack (10) does not.
        assert_eq!(s.intent_revision, 9);
        assert_eq!(s.switches.len(), 1);
        assert_eq!(s.applied["hv1"], 8);
        let ps = s.ports_of("a");
        assert!(ps[0].up);
        assert_eq!(ps[0].chassis, "hv1");
        assert_eq!(s.apply_delete(&k, &k.binding("p"), 11), Change::Status);
        assert_eq!(s.intent_revision, 11);
        assert_eq!(
            s.apply_put(&k, &k.applied("hv1"), b"11", 12),
            Change::Status
        );
        assert_eq!(
            s.intent_revision, 11,
            "acks must not bump the view revision"
        );
        assert!(!s.ports_of("a")[0].up);
        assert_eq!(s.apply_delete(&k, &k.port("p"), 12), Change::Intent);
        assert_eq!(s.intent_revision, 12);
        assert_eq!(s.apply_put(&k, &k.gen("a"), b"", 13), Change::Other);
        // Liveness never changes a view: no bump; the record stays when the lease goes.
        let c = Chassis {
            name: "hv1".into(),
            ..Default::default()
        };
        s.apply_put(&k, &k.chassis("hv1"), &c.encode_to_vec(), 14);
        assert_eq!(s.intent_revision, 14, "a chassis record changes views");
        assert_eq!(s.apply_put(&k, &k.alive("hv1"), b"", 15), Change::Status);
        assert_eq!(s.intent_revision, 14);
        assert!(s.chassis_list()[0].alive);
        assert_eq!(
            s.apply_put(&k, &k.error("hv1"), b"bundle failed", 16),
            Change::Status
        );
        assert_eq!(s.intent_revision, 14, "an error report changes no view");
        assert_eq!(s.chassis_list()[0].last_error, "bundle failed");
        s.apply_delete(&k, &k.alive("hv1"), 16);
        assert_eq!(s.intent_revision, 14);
        let l = s.chassis_list();
        assert_eq!(l.len(), 1);
        assert!(!l[0].alive);
        assert_eq!(s.apply_put(&k, "/other/x", b"", 14), Change::Other);
    }

    #[test]
    fn claims_and_sightings_are_indexed_without_bumping_views() {
        let k = Keys::new("/weft");
        let ip: Ipv4Addr = "10.0.0.5".parse().unwrap();
        let mut s = ClusterState::from_kvs(
            &k,
            &[
                kv(k.claim_ip("sw", ip), b"p1".to_vec(), 3),
                kv(k.claim_mac("sw", "0a:00:00:00:00:05"), b"p1".to_vec(), 3),
                kv(k.claim_ip("sw.2", ip), b"q1".to_vec(), 4),
                kv(k.sighting("p9"), b"hv1".to_vec(), 5),
            ],
            5,
        );
        assert_eq!(s.intent_revision, 0);
        assert_eq!(s.claims["claims/ip/sw/10.0.0.5"], "p1");
        assert_eq!(s.claims["claims/ip/sw.2/10.0.0.5"], "q1");
        assert_eq!(s.claims["claims/mac/sw/0a:00:00:00:00:05"], "p1");
        assert_eq!(
            s.sightings["p9"],
            Sighting {
                chassis: "hv1".into(),
                mod_revision: 5
            }
        );
        // A snapshot taken before a change keeps its claims (persistent maps).
        let before = s.clone();
        assert_eq!(s.apply_delete(&k, &k.claim_ip("sw", ip), 6), Change::Other);
        assert!(!s.claims.contains_key("claims/ip/sw/10.0.0.5"));
        assert_eq!(before.claims.len(), 3);
        assert_eq!(
            s.apply_delete(&k, &k.claim_mac("sw", "0a:00:00:00:00:05"), 7),
            Change::Other
        );
        assert_eq!(s.claims.len(), 1);
        assert_eq!(s.apply_delete(&k, &k.sighting("p9"), 8), Change::Status);
        assert!(s.sightings.is_empty());
        assert_eq!(s.intent_revision, 0, "sightings and claims change no view");
    }
}
