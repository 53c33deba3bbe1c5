//! Id allocation for the pipeline: OpenFlow group ids, meter ids and conntrack zones, each
//! an [`IdSpace`] keyed by owner name. Pure; the agent persists the assignments in OVSDB
//! (`Bridge:br-int external_ids`, as OVN does with `ct-zone-*`) so a restarted agent gets
//! the same ids back and its flows do not change:
//!
//! | space  | range         | external_ids key             | owner                     |
//! |--------|---------------|------------------------------|---------------------------|
//! | zone   | 1..=65535     | `ct-zone-<port>`             | one per local port        |
//! |        |               | `ct-zone-lr-nat/<router>`    | one per router with NAT or LBs |
//! | group  | 1..=0xfffffeff| `weft-group-<kind>-<switch>` | 4 per switch ([`GroupKind`]) |
//! |        |               | `weft-group-ecmp-<router>-<policy>-<prefix>` | one per ECMP route |
//! |        |               | `weft-group-lr-lb-<router>/<lb>/<vip>` | one per router LB VIP |
//! | meter  | 1..=65535     | `weft-meter-<name>`          | one per pinctrl handler   |
//!
//! The allocator never hands out an id that is live (assigned to another owner), takes the
//! lowest free one otherwise, and an owner keeps its id until it is released. A zone newly
//! assigned to an owner (not recovered from OVSDB for that same owner) is reported in
//! [`IdChanges::flush_zones`]: the agent flushes its conntrack entries (`ct_flush_zone`)
//! before any flow uses it, so a port never inherits another port's connections.

use std::collections::{BTreeMap, BTreeSet};

use ipnetwork::Ipv4Network;
use weft_proto::model::route::Policy;

use crate::pipeline::{static_routes, GroupKind};
use crate::view::ChassisView;

/// `external_ids` key prefixes.
pub const ZONE_PREFIX: &str = "ct-zone-";
pub const GROUP_PREFIX: &str = "weft-group-";
pub const METER_PREFIX: &str = "weft-meter-";

/// Errors of the allocator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("no free {space} id for {owner:?} ({min}..={max} all in use)")]
    Exhausted {
        space: &'static str,
        owner: String,
        min: u32,
        max: u32,
    },
}

/// One id space: owner name → id, and the reverse.
#[derive(Clone, Debug)]
pub struct IdSpace {
    name: &'static str,
    min: u32,
    max: u32,
    by_owner: BTreeMap<String, u32>,
    live: BTreeMap<u32, String>,
    /// Lowest id that may be free (a search hint).
    hint: u32,
}

impl IdSpace {
    pub fn new(name: &'static str, min: u32, max: u32) -> Self {
        IdSpace {
            name,
            min,
            max,
            by_owner: BTreeMap::new(),
            live: BTreeMap::new(),
            hint: min,
        }
    }

    pub fn get(&self, owner: &str) -> Option<u32> {
        self.by_owner.get(owner).copied()
    }

    /// The owner holding `id`.
    pub fn owner_of(&self, id: u32) -> Option<&str> {
        self.live.get(&id).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_owner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_owner.is_empty()
    }

    /// Every (owner, id).
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.by_owner.iter().map(|(o, i)| (o.as_str(), *i))
    }

    /// Records a recovered assignment. Refused (false) when the id is out of range or
    /// already held by another owner, or the owner already has an id.
    pub fn restore(&mut self, owner: &str, id: u32) -> bool {
        if id < self.min || id > self.max || self.live.contains_key(&id) {
            return false;
        }
        if self.by_owner.contains_key(owner) {
            return false;
        }
        self.by_owner.insert(owner.to_string(), id);
        self.live.insert(id, owner.to_string());
        true
    }

    /// The owner's id, assigning the lowest free one when it has none. `true` = new.
    pub fn assign(&mut self, owner: &str) -> Result<(u32, bool), IdError> {
        if let Some(id) = self.get(owner) {
            return Ok((id, false));
        }
        let span = u64::from(self.max - self.min) + 1;
        if self.live.len() as u64 >= span {
            return Err(self.exhausted(owner));
        }
        // Some id in range is free: search from the hint, wrapping once.
        let start = if self.hint < self.min || self.hint > self.max {
            self.min
        } else {
            self.hint
        };
        let mut id = start;
        while self.live.contains_key(&id) {
            id = if id >= self.max { self.min } else { id + 1 };
        }
        self.by_owner.insert(owner.to_string(), id);
        self.live.insert(id, owner.to_string());
        self.hint = id.saturating_add(1);
        Ok((id, true))
    }

    fn exhausted(&self, owner: &str) -> IdError {
        IdError::Exhausted {
            space: self.name,
            owner: owner.to_string(),
            min: self.min,
            max: self.max,
        }
    }

    /// Frees the owner's id.
    pub fn release(&mut self, owner: &str) -> Option<u32> {
        let id = self.by_owner.remove(owner)?;
        self.live.remove(&id);
        self.hint = self.hint.min(id);
        Some(id)
    }
}

/// What changed since the last [`Ids::take_changes`]: `external_ids` to set and remove on
/// br-int, and zones to flush before flows use them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdChanges {
    pub set: BTreeMap<String, String>,
    pub remove: BTreeSet<String>,
    pub flush_zones: BTreeSet<u16>,
}

impl IdChanges {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty() && self.flush_zones.is_empty()
    }

    fn merge(&mut self, later: IdChanges) {
        for (k, v) in later.set {
            self.remove.remove(&k);
            self.set.insert(k, v);
        }
        for k in later.remove {
            self.set.remove(&k);
            self.remove.insert(k);
        }
        self.flush_zones.extend(later.flush_zones);
    }
}

/// The group-kind part of a group's `external_ids` key.
fn kind_name(k: GroupKind) -> &'static str {
    match k {
        GroupKind::Flood => "flood",
        GroupKind::FloodLocal => "flood-local",
        GroupKind::Unknown => "unknown",
        GroupKind::UnknownLocal => "unknown-local",
    }
}

const KINDS: [GroupKind; 4] = [
    GroupKind::Flood,
    GroupKind::FloodLocal,
    GroupKind::Unknown,
    GroupKind::UnknownLocal,
];

fn group_owner(kind: GroupKind, switch: &str) -> String {
    format!("{}-{switch}", kind_name(kind))
}

/// The group owner of an ECMP route (a router's policy and prefix with several next hops).
fn ecmp_owner(router: &str, policy: Policy, prefix: Ipv4Network) -> String {
    format!("ecmp-{router}-{policy}-{prefix}")
}

/// Owner name of the select group of one VIP of load balancer `lb` on switch `switch`
/// ([`crate::pipeline::lb`]).
pub fn lb_group_owner(switch: &str, lb: &str, vip: &str) -> String {
    format!("lb-{switch}/{lb}/{vip}")
}

/// Owner name of the select group of one VIP of load balancer `lb` on router `router`
/// ([`crate::pipeline::router_lb`]; `lr-lb-` never begins a switch LB's `lb-` owner).
pub fn router_lb_group_owner(router: &str, lb: &str, vip: &str) -> String {
    format!("lr-lb-{router}/{lb}/{vip}")
}

/// Owner name of a switch's hairpin SNAT zone ([`crate::pipeline::lb`]); `/` is in no port
/// name, so it never collides with a port's zone.
pub fn hairpin_zone_owner(switch: &str) -> String {
    format!("lb-hairpin/{switch}")
}

/// The LB select groups the view needs: one per switch, LB of the view it names, and VIP
/// with at least one backend.
fn lb_group_owners(view: &ChassisView) -> Vec<String> {
    let mut out = Vec::new();
    for sw in view.switches() {
        for lb in view.load_balancers_of(sw) {
            for v in lb
                .rules
                .vips
                .iter()
                .filter(|v| !lb.live_backends(v).is_empty())
            {
                out.push(lb_group_owner(&sw.name, &lb.name, &v.vip.to_string()));
            }
        }
    }
    for r in view.routers() {
        for lb in view.router_load_balancers(r) {
            for v in lb
                .rules
                .vips
                .iter()
                .filter(|v| !lb.live_backends(v).is_empty())
            {
                out.push(router_lb_group_owner(&r.name, &lb.name, &v.vip.to_string()));
            }
        }
    }
    out
}

/// Owner name of the meter a logged ACL's `--meter` gives its log packets: one per named
/// meter, shared by the ACLs using it on this chassis, or one per ACL for a `fair` meter
/// (OVN's semantics). `/` is in no meter name, so it never collides with [`METERS`].
pub fn acl_meter_owner(acl: &crate::view_acl::Acl) -> Option<String> {
    let m = acl.meter.as_ref().filter(|_| acl.log)?;
    Some(if m.fair {
        format!("acl-meter/{}/{}", m.name, acl.key)
    } else {
        format!("acl-meter/{}", m.name)
    })
}

/// The pinctrl meters the pipeline installs (one per handler).
pub const METERS: &[&str] = &[
    "pinctrl-arp",
    "pinctrl-icmp",
    "pinctrl-neigh",
    "pinctrl-acl-log",
    "pinctrl-acl-reject",
    "pinctrl-lb-health",
];

/// Every id the pipeline uses. See the module docs.
#[derive(Clone, Debug)]
pub struct Ids {
    pub zones: IdSpace,
    pub groups: IdSpace,
    pub meters: IdSpace,
    pending: IdChanges,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            zones: IdSpace::new("zone", 1, 65535),
            groups: IdSpace::new("group", 1, 0xffff_feff),
            meters: IdSpace::new("meter", 1, 65535),
            pending: IdChanges::default(),
        }
    }
}

impl Ids {
    /// Recovers assignments from br-int's `external_ids` (other keys are ignored). Entries
    /// that cannot be restored (bad number, duplicate id) are dropped from OVSDB at the next
    /// write and returned, for a warning.
    pub fn from_external_ids(ext: &BTreeMap<String, String>) -> (Ids, Vec<String>) {
        let mut ids = Ids::default();
        let mut bad = Vec::new();
        for (k, v) in ext {
            let (space, owner) = if let Some(o) = k.strip_prefix(ZONE_PREFIX) {
                (&mut ids.zones, o)
            } else if let Some(o) = k.strip_prefix(GROUP_PREFIX) {
                (&mut ids.groups, o)
            } else if let Some(o) = k.strip_prefix(METER_PREFIX) {
                (&mut ids.meters, o)
            } else {
                continue;
            };
            let ok = v.parse::<u32>().is_ok_and(|id| space.restore(owner, id));
            if !ok {
                bad.push(format!("{k}={v}"));
                ids.pending.remove.insert(k.clone());
            }
        }
        (ids, bad)
    }

    pub fn zone(&self, port: &str) -> Option<u16> {
        self.zones.get(port).map(|z| z as u16)
    }

    pub fn group(&self, switch: &str, kind: GroupKind) -> Option<u32> {
        self.groups.get(&group_owner(kind, switch))
    }

    /// The select group of `router`'s ECMP route for `policy`/`prefix`.
    pub fn ecmp_group(&self, router: &str, policy: Policy, prefix: Ipv4Network) -> Option<u32> {
        self.groups.get(&ecmp_owner(router, policy, prefix))
    }

    /// The hairpin SNAT zone of `switch` (switches that apply a load balancer).
    pub fn hairpin_zone(&self, switch: &str) -> Option<u16> {
        self.zones
            .get(&hairpin_zone_owner(switch))
            .map(|z| z as u16)
    }

    /// The select group of `vip` of load balancer `lb` on `router`.
    pub fn router_lb_group(&self, router: &str, lb: &str, vip: &str) -> Option<u32> {
        self.groups.get(&router_lb_group_owner(router, lb, vip))
    }

    /// The select group of `vip` of load balancer `lb` on `switch`.
    pub fn lb_group(&self, switch: &str, lb: &str, vip: &str) -> Option<u32> {
        self.groups.get(&lb_group_owner(switch, lb, vip))
    }

    pub fn meter(&self, name: &str) -> Option<u32> {
        self.meters.get(name)
    }

    /// Brings the assignments in line with the view: a zone for every port bound to
    /// `chassis` with a VIF (`vifs`), four group ids per switch, one per ECMP route, one
    /// meter per handler;
    /// everything else is released. Returns true when anything changed.
    pub fn sync(
        &mut self,
        view: &ChassisView,
        chassis: &str,
        vifs: &BTreeMap<String, u32>,
    ) -> Result<bool, IdError> {
        let mut ch = IdChanges::default();
        let mut local: BTreeSet<String> = view
            .ports_on_chassis(chassis)
            .filter(|p| vifs.contains_key(&p.name))
            .map(|p| p.name.clone())
            .collect();
        // One NAT zone per router with NAT rules or load balancers ([`crate::pipeline::nat`],
        // [`crate::pipeline::router_lb`]).
        local.extend(
            view.routers()
                .filter(|r| crate::pipeline::nat::needs_zone(r))
                .map(|r| crate::pipeline::nat::zone_owner(&r.name)),
        );
        // One hairpin SNAT zone per switch that applies a load balancer of the view.
        local.extend(
            view.switches()
                .filter(|s| view.load_balancers_of(s).next().is_some())
                .map(|s| hairpin_zone_owner(&s.name)),
        );
        let stale: Vec<String> = self
            .zones
            .iter()
            .filter(|(o, _)| !local.contains(*o))
            .map(|(o, _)| o.to_string())
            .collect();
        for o in stale {
            self.zones.release(&o);
            ch.remove.insert(format!("{ZONE_PREFIX}{o}"));
        }
        for p in &local {
            let (z, new) = self.zones.assign(p)?;
            if new {
                ch.set.insert(format!("{ZONE_PREFIX}{p}"), z.to_string());
                ch.flush_zones.insert(z as u16);
            }
        }
        let mut want: BTreeSet<String> = view
            .switches()
            .flat_map(|s| KINDS.iter().map(|k| group_owner(*k, &s.name)))
            .chain(lb_group_owners(view))
            .collect();
        for r in view.routers() {
            for (policy, prefix) in static_routes::ecmp_destinations(r) {
                want.insert(ecmp_owner(&r.name, policy, prefix));
            }
        }
        let stale: Vec<String> = self
            .groups
            .iter()
            .filter(|(o, _)| !want.contains(*o))
            .map(|(o, _)| o.to_string())
            .collect();
        for o in stale {
            self.groups.release(&o);
            ch.remove.insert(format!("{GROUP_PREFIX}{o}"));
        }
        for o in &want {
            let (id, new) = self.groups.assign(o)?;
            if new {
                ch.set.insert(format!("{GROUP_PREFIX}{o}"), id.to_string());
            }
        }
        // The handlers' meters first, in their order (stable ids), then the ACLs' meters.
        let acl_meters: BTreeSet<String> = view.acl().acls().filter_map(acl_meter_owner).collect();
        let want: Vec<String> = METERS
            .iter()
            .map(|m| m.to_string())
            .chain(acl_meters)
            .collect();
        let stale: Vec<String> = self
            .meters
            .iter()
            .filter(|(o, _)| !want.iter().any(|w| w == *o))
            .map(|(o, _)| o.to_string())
            .collect();
        for o in stale {
            self.meters.release(&o);
            ch.remove.insert(format!("{METER_PREFIX}{o}"));
        }
        for m in &want {
            let (id, new) = self.meters.assign(m)?;
            if new {
                ch.set.insert(format!("{METER_PREFIX}{m}"), id.to_string());
            }
        }
        let changed = !ch.is_empty();
        self.pending.merge(ch);
        Ok(changed)
    }

    /// The changes not yet persisted (see [`Ids::persisted`]).
    pub fn pending(&self) -> &IdChanges {
        &self.pending
    }

    /// The pending changes were written to OVSDB and the zones flushed.
    pub fn persisted(&mut self, done: &IdChanges) {
        for k in done.set.keys() {
            if self.pending.set.get(k) == done.set.get(k) {
                self.pending.set.remove(k);
            }
        }
        for k in &done.remove {
            self.pending.remove.remove(k);
        }
        for z in &done.flush_zones {
            self.pending.flush_zones.remove(z);
        }
    }

    /// Every assignment as br-int `external_ids` entries.
    pub fn to_external_ids(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (o, z) in self.zones.iter() {
            out.insert(format!("{ZONE_PREFIX}{o}"), z.to_string());
        }
        for (o, g) in self.groups.iter() {
            out.insert(format!("{GROUP_PREFIX}{o}"), g.to_string());
        }
        for (o, m) in self.meters.iter() {
            out.insert(format!("{METER_PREFIX}{o}"), m.to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_never_live_and_stable_per_owner() {
        let mut s = IdSpace::new("t", 1, 3);
        assert_eq!(s.assign("a").unwrap(), (1, true));
        assert_eq!(s.assign("b").unwrap(), (2, true));
        assert_eq!(s.assign("a").unwrap(), (1, false));
        assert_eq!(s.release("a"), Some(1));
        assert_eq!(s.assign("c").unwrap(), (1, true));
        assert_eq!(s.assign("d").unwrap(), (3, true));
        assert!(matches!(s.assign("e"), Err(IdError::Exhausted { .. })));
        assert_eq!(s.owner_of(1), Some("c"));
        // A restored id held by another owner is refused.
        assert!(!s.restore("x", 2));
    }

    fn view() -> ChassisView {
        use weft_proto::model::view::ViewDelta;
        use weft_proto::v1::{PortView, SwitchView};
        let port = |n: &str, k: u32| PortView {
            name: n.into(),
            switch_name: "sw".into(),
            chassis: "hv1".into(),
            enabled: true,
            tunnel_key: k,
            ..Default::default()
        };
        let mut v = ChassisView::new();
        v.apply(&ViewDelta {
            revision: 1,
            snapshot: true,
            switches: vec![SwitchView {
                name: "sw".into(),
                vni: 5,
                tunnel_key: 5,
                ..Default::default()
            }],
            ports: vec![port("a", 1), port("b", 2)],
            ..Default::default()
        })
        .expect("valid");
        v
    }

    #[test]
    fn sync_assigns_persists_and_survives_a_restart() {
        let v = view();
        let vifs: BTreeMap<String, u32> = [("a".to_string(), 1), ("b".to_string(), 2)].into();
        let mut ids = Ids::default();
        assert!(ids.sync(&v, "hv1", &vifs).unwrap());
        let ch = ids.pending().clone();
        assert_eq!(ch.flush_zones, [1, 2].into());
        assert_eq!(ch.set.len(), 2 + 4 + METERS.len(), "{ch:?}");
        ids.persisted(&ch);
        assert!(ids.pending().is_empty());
        // A restarted agent recovers the same ids and has nothing to write or flush.
        let (mut again, bad) = Ids::from_external_ids(&ids.to_external_ids());
        assert!(bad.is_empty());
        assert!(!again.sync(&v, "hv1", &vifs).unwrap());
        assert_eq!(again.to_external_ids(), ids.to_external_ids());
        // a's VIF goes: its zone is released; a new port gets the lowest free zone, flushed.
        let only_b: BTreeMap<String, u32> = [("b".to_string(), 2)].into();
        again.sync(&v, "hv1", &only_b).unwrap();
        assert!(again.pending().remove.contains("ct-zone-a"));
        again.persisted(&again.pending().clone());
        again.sync(&v, "hv1", &vifs).unwrap();
        assert_eq!(again.zone("a"), Some(1));
        assert_eq!(again.pending().flush_zones, [1].into());
    }

    #[test]
    fn restore_skips_restored_ids() {
        let ext: BTreeMap<String, String> = [
            ("ct-zone-p1", "1"),
            ("ct-zone-p2", "bad"),
            ("ct-zone-p3", "1"),
            ("other", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (mut ids, bad) = Ids::from_external_ids(&ext);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(ids.zone("p1"), Some(1));
        let (z, new) = ids.zones.assign("p4").unwrap();
        assert!(new);
        assert_eq!(z, 2);
        assert!(ids.pending().remove.contains("ct-zone-p2"));
    }
}
