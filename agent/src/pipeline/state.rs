//! The desired state, organised by owner so that replacing one owner's flows costs only
//! that owner's flows.
//!
//! Two owners may claim the same flow key (or group id), e.g. two ports with the same MAC on
//! one switch during a controller-side mistake. The switch can hold only one, so each key
//! keeps a list of claims and the effective flow is the claim of the smallest [`Owner`]
//! (`Static < Switch < Port < Router < RouterPort`, then by name). When that owner goes away, the next
//! claim becomes effective: nothing is lost and the result does not depend on the order of
//! updates.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hash};

use weft_openflow::flow::{Flow, FlowKey, Group};
use weft_openflow::meter::Meter;

use crate::fingerprint::FlowFingerprint;

use super::{CompileInput, Compiled, Encap, Owner};

/// Deterministic hashing (fixed keys): same iteration order on every run.
type Map<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

/// Claims on one key, sorted by owner; the first is effective.
type Claims<V> = Vec<(Owner, V)>;

#[derive(Clone, Debug, Default)]
struct OwnerEntry {
    flow_keys: Vec<FlowKey>,
    group_ids: Vec<u32>,
    meter_ids: Vec<u32>,
}

/// The effective before/after of every flow key and group id touched by a recompile (see
/// [`super::recompile`]); [`crate::diff::diff_delta`] turns it into a bundle. Entries whose
/// before and after are equal are kept (they diff to nothing).
#[derive(Clone, Debug, Default)]
pub struct DesiredDelta {
    pub flows: HashMap<FlowKey, (Option<Flow>, Option<Flow>)>,
    pub groups: HashMap<u32, (Option<Group>, Option<Group>)>,
    pub meters: HashMap<u32, (Option<Meter>, Option<Meter>)>,
}

impl DesiredDelta {
    /// True when no touched flow or group actually changed.
    pub fn is_noop(&self) -> bool {
        self.flows.values().all(|(b, a)| b == a)
            && self.groups.values().all(|(b, a)| b == a)
            && self.meters.values().all(|(b, a)| b == a)
    }
}

/// The desired flows and groups of br-int, by owner. Build with [`super::compile_all`],
/// update with [`super::recompile`].
#[derive(Clone, Debug, Default)]
pub struct DesiredState {
    chassis: String,
    tunnels: BTreeMap<Encap, u32>,
    owners: Map<Owner, OwnerEntry>,
    flows: Map<FlowKey, Claims<Flow>>,
    groups: Map<u32, Claims<Group>>,
    meters: Map<u32, Claims<Meter>>,
    /// The switch each port's flows were compiled for (to recompile it when the port leaves).
    port_switch: Map<String, String>,
    /// What each router port's flows were compiled for: its router, and the router-type
    /// switch port attaching it with that port's switch.
    router_port_inputs: BTreeMap<String, RouterPortInputs>,
    /// The fingerprint of the effective flows (kept up to date by [`super::compile_all`] and
    /// [`Self::finish_delta`]).
    fingerprint: FlowFingerprint,
    /// Effective flows per table (kept with `fingerprint`), for the switch's table stats.
    table_flows: BTreeMap<u8, u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RouterPortInputs {
    router: Option<String>,
    lsp: Option<(String, String)>,
}

impl DesiredState {
    pub(super) fn new(chassis: &str, tunnels: &BTreeMap<Encap, u32>) -> Self {
        DesiredState {
            chassis: chassis.to_string(),
            tunnels: tunnels.clone(),
            ..Default::default()
        }
    }

    /// The chassis name this state was compiled for.
    pub fn chassis(&self) -> &str {
        &self.chassis
    }

    /// The tunnel ports this state was compiled for.
    pub fn tunnels(&self) -> &BTreeMap<Encap, u32> {
        &self.tunnels
    }

    pub(super) fn set_inputs(&mut self, chassis: &str, tunnels: &BTreeMap<Encap, u32>) {
        self.chassis = chassis.to_string();
        self.tunnels = tunnels.clone();
    }

    /// Every effective flow (one per key), in no particular order.
    pub fn flows(&self) -> impl Iterator<Item = &Flow> {
        self.flows
            .values()
            .filter_map(|c| c.first().map(|(_, f)| f))
    }

    /// Every effective group, in no particular order.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups
            .values()
            .filter_map(|c| c.first().map(|(_, g)| g))
    }

    /// Every effective meter, in no particular order.
    pub fn meters(&self) -> impl Iterator<Item = &Meter> {
        self.meters
            .values()
            .filter_map(|c| c.first().map(|(_, m)| m))
    }

    /// The effective meter with this id.
    pub fn meter(&self, id: u32) -> Option<&Meter> {
        self.meters.get(&id).and_then(|c| c.first()).map(|(_, m)| m)
    }

    pub fn meter_count(&self) -> usize {
        self.meters.len()
    }

    /// The effective flow with this key.
    pub fn flow(&self, key: &FlowKey) -> Option<&Flow> {
        self.flows.get(key).and_then(|c| c.first()).map(|(_, f)| f)
    }

    /// The effective group with this id.
    pub fn group(&self, id: u32) -> Option<&Group> {
        self.groups.get(&id).and_then(|c| c.first()).map(|(_, g)| g)
    }

    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// The fingerprint of the effective flows, in O(1).
    pub fn fingerprint(&self) -> FlowFingerprint {
        self.fingerprint
    }

    /// The number of effective flows in each table that has any, by table (what the
    /// switch's table stats report when it holds exactly this state), in O(tables).
    pub fn table_flow_counts(&self) -> Vec<(u8, u32)> {
        self.table_flows
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(t, n)| (*t, *n))
            .collect()
    }

    /// Computes the fingerprint and the per-table counts from the flows (after a compile
    /// from scratch).
    pub(super) fn refresh_fingerprint(&mut self) {
        self.fingerprint = FlowFingerprint::of(self.flows());
        let mut counts = BTreeMap::new();
        for f in self.flows() {
            *counts.entry(f.table).or_insert(0u32) += 1;
        }
        self.table_flows = counts;
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Every owner that has at least one flow or group.
    pub fn owners(&self) -> impl Iterator<Item = &Owner> {
        self.owners.keys()
    }

    /// The flows `owner` claims (effective or shadowed by a smaller owner).
    pub fn owner_flows(&self, owner: &Owner) -> Vec<&Flow> {
        let Some(entry) = self.owners.get(owner) else {
            return Vec::new();
        };
        entry
            .flow_keys
            .iter()
            .filter_map(|k| self.flows.get(k))
            .filter_map(|claims| claims.iter().find(|(o, _)| o == owner).map(|(_, f)| f))
            .collect()
    }

    /// Flow keys claimed by more than one owner (a view inconsistency worth logging).
    pub fn conflicting_flow_keys(&self) -> impl Iterator<Item = (&FlowKey, Vec<&Owner>)> {
        self.flows
            .iter()
            .filter(|(_, c)| c.len() > 1)
            .map(|(k, c)| (k, c.iter().map(|(o, _)| o).collect()))
    }

    /// The switch the port's flows were last compiled for.
    pub fn compiled_switch_of(&self, port: &str) -> Option<&str> {
        self.port_switch.get(port).map(String::as_str)
    }

    /// The router port whose flows were last compiled with router-type switch port `lsp`.
    pub fn compiled_router_port_of_lsp(&self, lsp: &str) -> Option<&str> {
        self.router_port_inputs
            .iter()
            .find(|(_, i)| i.lsp.as_ref().is_some_and(|(l, _)| l == lsp))
            .map(|(rp, _)| rp.as_str())
    }

    /// The router a router port's flows were last compiled for.
    pub fn compiled_router_of(&self, rp: &str) -> Option<&str> {
        self.router_port_inputs.get(rp)?.router.as_deref()
    }

    /// The switch a router port was attached to when its flows were last compiled.
    pub fn compiled_lsp_switch_of(&self, rp: &str) -> Option<&str> {
        self.router_port_inputs
            .get(rp)?
            .lsp
            .as_ref()
            .map(|(_, s)| s.as_str())
    }

    /// The router ports last compiled for any of `routers`.
    pub fn compiled_ports_of_routers(
        &self,
        routers: &std::collections::BTreeSet<String>,
    ) -> Vec<String> {
        self.router_port_inputs
            .iter()
            .filter(|(_, i)| i.router.as_ref().is_some_and(|r| routers.contains(r)))
            .map(|(rp, _)| rp.clone())
            .collect()
    }

    /// Replaces everything `owner` claims with `flows` and `groups` (first wins for duplicate
    /// keys within the owner). Records effective "before" values in `delta` when given.
    pub(super) fn set_owner(
        &mut self,
        input: &CompileInput,
        owner: Owner,
        compiled: Compiled,
        mut delta: Option<&mut DesiredDelta>,
    ) {
        let Compiled {
            flows,
            groups,
            meters,
        } = compiled;
        if let Owner::Port(name) = &owner {
            match input.view.port(name) {
                Some(p) => {
                    self.port_switch.insert(name.clone(), p.switch.clone());
                }
                None => {
                    self.port_switch.remove(name);
                }
            }
        }
        if let Owner::RouterPort(name) = &owner {
            let inputs = RouterPortInputs {
                router: input.view.router_port(name).map(|p| p.router.clone()),
                lsp: input
                    .view
                    .attached_lsp(name)
                    .map(|l| (l.name.clone(), l.switch.clone())),
            };
            if inputs == RouterPortInputs::default() {
                self.router_port_inputs.remove(name);
            } else {
                self.router_port_inputs.insert(name.clone(), inputs);
            }
        }
        let old = self.owners.remove(&owner).unwrap_or_default();
        for key in old.flow_keys {
            if let Some(d) = delta.as_deref_mut() {
                record_before(&mut d.flows, &self.flows, &key);
            }
            unclaim(&mut self.flows, key, &owner);
        }
        for id in old.group_ids {
            if let Some(d) = delta.as_deref_mut() {
                record_before(&mut d.groups, &self.groups, &id);
            }
            unclaim(&mut self.groups, id, &owner);
        }

        for id in old.meter_ids {
            if let Some(d) = delta.as_deref_mut() {
                record_before(&mut d.meters, &self.meters, &id);
            }
            unclaim(&mut self.meters, id, &owner);
        }
        let mut entry = OwnerEntry::default();
        for flow in flows {
            let key = flow.key();
            if entry.flow_keys.contains(&key) {
                continue;
            }
            if let Some(d) = delta.as_deref_mut() {
                record_before(&mut d.flows, &self.flows, &key);
            }
            entry.flow_keys.push(key.clone());
            claim(&mut self.flows, key, &owner, flow);
        }
        for group in groups {
            if entry.group_ids.contains(&group.id) {
                continue;
            }
            if let Some(d) = delta.as_deref_mut() {
                record_before(&mut d.groups, &self.groups, &group.id);
            }
            entry.group_ids.push(group.id);
            claim(&mut self.groups, group.id, &owner, group);
        }
        for meter in meters {
            if entry.meter_ids.contains(&meter.id) {
                continue;
            }
            if let Some(d) = delta.as_deref_mut() {
                record_before(&mut d.meters, &self.meters, &meter.id);
            }
            entry.meter_ids.push(meter.id);
            claim(&mut self.meters, meter.id, &owner, meter);
        }
        if !entry.flow_keys.is_empty() || !entry.group_ids.is_empty() || !entry.meter_ids.is_empty()
        {
            self.owners.insert(owner, entry);
        }
    }

    /// Fills in the effective "after" value of every key recorded in `delta`.
    pub(super) fn finish_delta(&mut self, delta: &mut DesiredDelta) {
        for (key, (before, after)) in delta.flows.iter_mut() {
            *after = self.flow(key).cloned();
            self.fingerprint.replace(before.as_ref(), after.as_ref());
            match (before.is_some(), after.is_some()) {
                (false, true) => *self.table_flows.entry(key.table).or_insert(0) += 1,
                (true, false) => {
                    if let Some(n) = self.table_flows.get_mut(&key.table) {
                        *n = n.saturating_sub(1);
                    }
                }
                _ => {}
            }
        }
        for (id, (_, after)) in delta.groups.iter_mut() {
            *after = self.group(*id).cloned();
        }
        for (id, (_, after)) in delta.meters.iter_mut() {
            *after = self.meter(*id).cloned();
        }
    }
}

fn record_before<K: Hash + Eq + Clone, V: Clone>(
    delta: &mut HashMap<K, (Option<V>, Option<V>)>,
    claims: &Map<K, Claims<V>>,
    key: &K,
) {
    if !delta.contains_key(key) {
        let before = claims
            .get(key)
            .and_then(|c| c.first())
            .map(|(_, v)| v.clone());
        delta.insert(key.clone(), (before, None));
    }
}

fn claim<K: Hash + Eq, V>(map: &mut Map<K, Claims<V>>, key: K, owner: &Owner, value: V) {
    let claims = map.entry(key).or_default();
    match claims.binary_search_by(|(o, _)| o.cmp(owner)) {
        Ok(i) => claims[i].1 = value,
        Err(i) => claims.insert(i, (owner.clone(), value)),
    }
}

fn unclaim<K: Hash + Eq, V>(map: &mut Map<K, Claims<V>>, key: K, owner: &Owner) {
    if let Entry::Occupied(mut e) = map.entry(key) {
        e.get_mut().retain(|(o, _)| o != owner);
        if e.get().is_empty() {
            e.remove();
        }
    }
}
