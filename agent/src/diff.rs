//! Desired vs installed: what to add, modify and delete so br-int holds exactly the desired
//! flows, groups and meters. Pure functions; the reconciler turns a [`Diff`] into one atomic bundle.
//!
//! - [`diff`]: full diff of what the switch reports (flow-stats / group-desc read back)
//!   against a [`DesiredState`]. Used on start, on OpenFlow reconnect and by the periodic
//!   resync. Flows are identified by [`Flow::key`] (table, priority, match): a desired key
//!   that is missing is an add, one installed with other actions or another cookie is a
//!   modify, and every installed key that is not desired is a delete, whatever its cookie
//!   (the agent owns br-int, so foreign flows go too), except flows the datapath learned
//!   ([`cookie_kind::LEARNED`], LB session affinity): those are left to their timeouts.
//!   Groups likewise by id.
//! - [`diff_except`]: the same, leaving alone the keys incremental bundles [`Written`] after
//!   the read-back started (the periodic resync reads back in the background, so its
//!   snapshot may predate them).
//!   [`diff_indexed`] is the same diff over an [`InstalledIndex`] built off the main loop.
//! - [`diff_delta`]: the incremental diff after [`crate::pipeline::recompile`], from the
//!   before/after of the touched keys only; it costs what changed, not what is installed.
//!
//! Applying a diff (the reconciler's part): meter and group adds and modifies before flow
//! adds and modifies, flow deletes before group and meter deletes (meters are applied around
//! the bundle by the channel: OVS 3.1 refuses meter mods inside one). A modify replaces actions *and* cookie, so
//! send it as `OFPFC_ADD` (which replaces a flow with the same key) rather than
//! `OFPFC_MODIFY_STRICT`, which in OpenFlow 1.1+ leaves the cookie unchanged.
//! Output order: by table, then priority (highest first), then cookie; ties unspecified.

use std::collections::{HashMap, HashSet};

use weft_openflow::flow::{Flow, FlowKey, Group};
use weft_openflow::meter::Meter;

use crate::fingerprint::FlowFingerprint;
use crate::pipeline::{cookie_kind, DesiredDelta, DesiredState, Owner};

/// Flow changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowDiff {
    pub adds: Vec<Flow>,
    /// Flows whose key is installed with different actions or cookie: the desired flow.
    pub modifies: Vec<Flow>,
    pub deletes: Vec<FlowKey>,
}

impl FlowDiff {
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.modifies.is_empty() && self.deletes.is_empty()
    }

    /// Number of flow_mods.
    pub fn len(&self) -> usize {
        self.adds.len() + self.modifies.len() + self.deletes.len()
    }

    fn sort(&mut self) {
        let order = |t: u8, p: u16, c: u64| (t, std::cmp::Reverse(p), c);
        self.adds
            .sort_by_key(|f| order(f.table, f.priority, f.cookie));
        self.modifies
            .sort_by_key(|f| order(f.table, f.priority, f.cookie));
        self.deletes
            .sort_by_key(|k| (k.table, std::cmp::Reverse(k.priority)));
    }
}

/// Group changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupDiff {
    pub adds: Vec<Group>,
    /// Groups installed with other buckets or type: the desired group.
    pub modifies: Vec<Group>,
    pub deletes: Vec<u32>,
}

impl GroupDiff {
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.modifies.is_empty() && self.deletes.is_empty()
    }

    /// Number of group_mods.
    pub fn len(&self) -> usize {
        self.adds.len() + self.modifies.len() + self.deletes.len()
    }

    fn sort(&mut self) {
        self.adds.sort_by_key(|g| g.id);
        self.modifies.sort_by_key(|g| g.id);
        self.deletes.sort_unstable();
    }
}

/// Meter changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterDiff {
    pub adds: Vec<Meter>,
    /// Meters installed with other bands or flags: the desired meter.
    pub modifies: Vec<Meter>,
    pub deletes: Vec<u32>,
}

impl MeterDiff {
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.modifies.is_empty() && self.deletes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.adds.len() + self.modifies.len() + self.deletes.len()
    }

    fn sort(&mut self) {
        self.adds.sort_by_key(|m| m.id);
        self.modifies.sort_by_key(|m| m.id);
        self.deletes.sort_unstable();
    }
}

/// Flow, group and meter changes: one bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub flows: FlowDiff,
    pub groups: GroupDiff,
    pub meters: MeterDiff,
}

impl Diff {
    /// Adds `other`'s changes (keys disjoint from this diff's) and keeps the output order.
    pub fn extend(&mut self, other: Diff) {
        if other.is_empty() {
            return;
        }
        let Diff {
            flows,
            groups,
            meters,
        } = other;
        self.flows.adds.extend(flows.adds);
        self.flows.modifies.extend(flows.modifies);
        self.flows.deletes.extend(flows.deletes);
        self.flows.sort();
        self.groups.adds.extend(groups.adds);
        self.groups.modifies.extend(groups.modifies);
        self.groups.deletes.extend(groups.deletes);
        self.groups.sort();
        self.meters.adds.extend(meters.adds);
        self.meters.modifies.extend(meters.modifies);
        self.meters.deletes.extend(meters.deletes);
        self.meters.sort();
    }

    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty() && self.groups.is_empty() && self.meters.is_empty()
    }

    /// Number of flow_mods, group_mods and meter_mods.
    pub fn len(&self) -> usize {
        self.flows.len() + self.groups.len() + self.meters.len()
    }

    /// The diff as sorted text lines (`add`/`mod` + the ovs-ofctl rendering, `del` + key,
    /// `gadd`/`gmod`/`gdel` for groups): for logs, golden tests and comparing two diffs
    /// (the order of equal-priority flows inside a diff is unspecified).
    pub fn to_sorted_lines(&self) -> Vec<String> {
        use weft_openflow::meter::render_meter;
        use weft_openflow::render::{render_flow, render_group};
        let f = &self.flows;
        let g = &self.groups;
        let mut out: Vec<String> = Vec::with_capacity(self.len());
        out.extend(f.adds.iter().map(|x| format!("add {}", render_flow(x))));
        out.extend(f.modifies.iter().map(|x| format!("mod {}", render_flow(x))));
        out.extend(f.deletes.iter().map(|k| format!("del {k:?}")));
        out.extend(g.adds.iter().map(|x| format!("gadd {}", render_group(x))));
        out.extend(
            g.modifies
                .iter()
                .map(|x| format!("gmod {}", render_group(x))),
        );
        out.extend(g.deletes.iter().map(|id| format!("gdel {id}")));
        let m = &self.meters;
        out.extend(m.adds.iter().map(|x| format!("madd {}", render_meter(x))));
        out.extend(
            m.modifies
                .iter()
                .map(|x| format!("mmod {}", render_meter(x))),
        );
        out.extend(m.deletes.iter().map(|id| format!("mdel {id}")));
        out.sort();
        out
    }
}

/// Keys a full diff leaves alone: what incremental bundles wrote after the table was read
/// back (the read-back may predate them, so it is no evidence of drift there; those bundles
/// committed, so the switch holds the desired value). See [`diff_except`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub flows: HashSet<FlowKey>,
    pub groups: HashSet<u32>,
    pub meters: HashSet<u32>,
    /// The fingerprint of the desired flows when the read-back began and after each diff
    /// handed out since: every flow table the switch has held meanwhile (bundles are atomic,
    /// so the read-back saw one of them unless something else changed the table).
    pub states: Vec<FlowFingerprint>,
}

impl Written {
    /// Adds every key `d` writes.
    pub fn record(&mut self, d: &Diff) {
        let f = &d.flows;
        self.flows
            .extend(f.adds.iter().chain(&f.modifies).map(Flow::key));
        self.flows.extend(f.deletes.iter().cloned());
        let g = &d.groups;
        self.groups
            .extend(g.adds.iter().chain(&g.modifies).map(|g| g.id));
        self.groups.extend(g.deletes.iter().copied());
        let m = &d.meters;
        self.meters
            .extend(m.adds.iter().chain(&m.modifies).map(|m| m.id));
        self.meters.extend(m.deletes.iter().copied());
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty() && self.groups.is_empty() && self.meters.is_empty()
    }

    /// Whether `fp` is the fingerprint of a flow table the switch held since the read-back
    /// began.
    pub fn held(&self, fp: FlowFingerprint) -> bool {
        self.states.contains(&fp)
    }
}

/// Full diff of the installed flows against the desired ones, leaving `skip` alone.
pub fn diff_flows(installed: &[Flow], desired: &DesiredState, skip: &HashSet<FlowKey>) -> FlowDiff {
    let mut out = FlowDiff::default();
    let mut by_key: HashMap<FlowKey, &Flow> = HashMap::with_capacity(installed.len());
    for f in installed {
        if Owner::cookie_kind(f.cookie) == cookie_kind::LEARNED {
            continue;
        }
        by_key.insert(f.key(), f);
    }
    for want in desired.flows() {
        let key = want.key();
        if skip.contains(&key) {
            by_key.remove(&key);
            continue;
        }
        match by_key.remove(&key) {
            None => out.adds.push(want.clone()),
            Some(have) if have != want => out.modifies.push(want.clone()),
            Some(_) => {}
        }
    }
    // What is left is installed and not desired.
    for key in by_key.into_keys() {
        if !skip.contains(&key) {
            out.deletes.push(key);
        }
    }
    out.sort();
    out
}

/// Full diff of the installed groups against the desired ones, leaving `skip` alone.
pub fn diff_groups(installed: &[Group], desired: &DesiredState, skip: &HashSet<u32>) -> GroupDiff {
    let mut out = GroupDiff::default();
    let mut by_id: HashMap<u32, &Group> = HashMap::with_capacity(installed.len());
    for g in installed {
        by_id.insert(g.id, g);
    }
    for want in desired.groups() {
        if skip.contains(&want.id) {
            by_id.remove(&want.id);
            continue;
        }
        match by_id.remove(&want.id) {
            None => out.adds.push(want.clone()),
            Some(have) if have != want => out.modifies.push(want.clone()),
            Some(_) => {}
        }
    }
    for id in by_id.into_keys() {
        if !skip.contains(&id) {
            out.deletes.push(id);
        }
    }
    out.sort();
    out
}

/// Full diff of the installed meters against the desired ones, leaving `skip` alone.
pub fn diff_meters(installed: &[Meter], desired: &DesiredState, skip: &HashSet<u32>) -> MeterDiff {
    let mut out = MeterDiff::default();
    let mut by_id: HashMap<u32, &Meter> = installed.iter().map(|m| (m.id, m)).collect();
    for want in desired.meters() {
        if skip.contains(&want.id) {
            by_id.remove(&want.id);
            continue;
        }
        match by_id.remove(&want.id) {
            None => out.adds.push(want.clone()),
            Some(have) if have != want => out.modifies.push(want.clone()),
            Some(_) => {}
        }
    }
    for id in by_id.into_keys() {
        if !skip.contains(&id) {
            out.deletes.push(id);
        }
    }
    out.sort();
    out
}

/// A table read back and indexed by hashes, built off the main loop (the periodic resync's
/// background task) so that the diff in the main loop, [`diff_indexed`], costs one hash and
/// one comparison per desired flow, with no allocation for the flows that did not drift.
#[derive(Clone, Debug, Default)]
pub struct InstalledIndex {
    /// The flows read back, learned ones left out (they are never diffed).
    flows: Vec<Flow>,
    /// [`flow_hash`] → indexes into `flows`.
    by_flow: ByHash,
    /// [`key_hash`] → indexes into `flows`.
    by_key: ByHash,
    pub groups: Vec<Group>,
    pub meters: Vec<Meter>,
    /// The fingerprint of `flows`.
    fingerprint: FlowFingerprint,
}

/// A fast, deterministic hasher for [`InstalledIndex`] (FxHash's mixing step): the derived
/// `Hash` of a flow is many small writes, which SipHash makes the bulk of a resync's diff.
/// Collisions only cost a comparison: every hit is checked with `==`.
#[derive(Clone, Copy, Default)]
struct Fx(u64);

impl Fx {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// The hashes are already mixed: the index's maps use them as they are.
#[derive(Clone, Copy, Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

type ByHash = HashMap<u64, Vec<usize>, std::hash::BuildHasherDefault<Prehashed>>;

/// The hash of a flow's key (table, priority, match), without building a [`FlowKey`].
fn key_hash(table: u8, priority: u16, matches: &weft_openflow::flow::Match) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = Fx::default();
    table.hash(&mut h);
    priority.hash(&mut h);
    matches.hash(&mut h);
    h.finish()
}

/// The hash of a whole flow (what [`Flow`]'s equality compares).
pub(crate) fn flow_hash(f: &Flow) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = Fx::default();
    f.hash(&mut h);
    h.finish()
}

fn same_key(f: &Flow, table: u8, priority: u16, matches: &weft_openflow::flow::Match) -> bool {
    f.table == table && f.priority == priority && f.matches == *matches
}

impl InstalledIndex {
    /// Indexes what was read back (pure; linear in the table).
    pub fn new(flows: Vec<Flow>, groups: Vec<Group>, meters: Vec<Meter>) -> Self {
        let flows: Vec<Flow> = flows
            .into_iter()
            .filter(|f| Owner::cookie_kind(f.cookie) != cookie_kind::LEARNED)
            .collect();
        let mut by_flow = ByHash::with_capacity_and_hasher(flows.len(), Default::default());
        let mut by_key = ByHash::with_capacity_and_hasher(flows.len(), Default::default());
        for (i, f) in flows.iter().enumerate() {
            by_flow.entry(flow_hash(f)).or_default().push(i);
            by_key
                .entry(key_hash(f.table, f.priority, &f.matches))
                .or_default()
                .push(i);
        }
        InstalledIndex {
            fingerprint: FlowFingerprint::of(&flows),
            flows,
            by_flow,
            by_key,
            groups,
            meters,
        }
    }

    /// The fingerprint of the flows read back (learned ones left out).
    pub fn fingerprint(&self) -> FlowFingerprint {
        self.fingerprint
    }

    /// Flows read back (learned ones not counted).
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    fn find_key(&self, h: u64, f: &Flow) -> Option<usize> {
        self.by_key
            .get(&h)?
            .iter()
            .copied()
            .find(|&i| same_key(&self.flows[i], f.table, f.priority, &f.matches))
    }
}

/// [`diff_indexed`] when the flows read back are known to be a table the switch held since
/// the read-back began ([`Written::held`]): only groups and meters are compared.
pub fn diff_indexed_groups(ix: &InstalledIndex, desired: &DesiredState, skip: &Written) -> Diff {
    Diff {
        flows: FlowDiff::default(),
        groups: diff_groups(&ix.groups, desired, &skip.groups),
        meters: diff_meters(&ix.meters, desired, &skip.meters),
    }
}

/// The same diff as [`diff_except`] over an [`InstalledIndex`].
pub fn diff_indexed(ix: &InstalledIndex, desired: &DesiredState, skip: &Written) -> Diff {
    let mut out = FlowDiff::default();
    let mut seen = vec![false; ix.flows.len()];
    // The skipped keys by hash (few: what was written while the read-back ran).
    let mut skip_by_hash: HashMap<u64, Vec<&FlowKey>> = HashMap::new();
    for k in &skip.flows {
        skip_by_hash
            .entry(key_hash(k.table, k.priority, &k.matches))
            .or_default()
            .push(k);
    }
    for want in desired.flows() {
        if !skip_by_hash.is_empty() {
            let kh = key_hash(want.table, want.priority, &want.matches);
            let skipped = skip_by_hash.get(&kh).is_some_and(|ks| {
                ks.iter()
                    .any(|k| same_key(want, k.table, k.priority, &k.matches))
            });
            if skipped {
                if let Some(i) = ix.find_key(kh, want) {
                    seen[i] = true;
                }
                continue;
            }
        }
        let same = ix
            .by_flow
            .get(&flow_hash(want))
            .and_then(|ids| ids.iter().copied().find(|&i| ix.flows[i] == *want));
        if let Some(i) = same {
            seen[i] = true;
            continue;
        }
        let kh = key_hash(want.table, want.priority, &want.matches);
        match ix.find_key(kh, want) {
            Some(i) => {
                seen[i] = true;
                if ix.flows[i] != *want {
                    out.modifies.push(want.clone());
                }
            }
            None => out.adds.push(want.clone()),
        }
    }
    for (i, f) in ix.flows.iter().enumerate() {
        if seen[i] {
            continue;
        }
        let key = f.key();
        if !skip.flows.contains(&key) {
            out.deletes.push(key);
        }
    }
    out.sort();
    Diff {
        flows: out,
        groups: diff_groups(&ix.groups, desired, &skip.groups),
        meters: diff_meters(&ix.meters, desired, &skip.meters),
    }
}

/// What the switch reports: flows, groups and meters read back.
#[derive(Clone, Copy, Debug)]
pub struct Installed<'a> {
    pub flows: &'a [Flow],
    pub groups: &'a [Group],
    pub meters: &'a [Meter],
}

/// Full diff of what the switch has against what is desired.
pub fn diff(installed: Installed, desired: &DesiredState) -> Diff {
    diff_except(installed, desired, &Written::default())
}

/// Full diff of what the switch has against what is desired, except the keys in `skip`
/// (written after `installed` was read back): the periodic resync's diff, which runs while
/// incremental bundles go on.
pub fn diff_except(installed: Installed, desired: &DesiredState, skip: &Written) -> Diff {
    Diff {
        flows: diff_flows(installed.flows, desired, &skip.flows),
        groups: diff_groups(installed.groups, desired, &skip.groups),
        meters: diff_meters(installed.meters, desired, &skip.meters),
    }
}

/// Incremental diff from a recompile's before/after of the touched keys. Assumes the switch
/// held the "before" state (the periodic full [`diff`] repairs any drift).
pub fn diff_delta(delta: &DesiredDelta) -> Diff {
    let mut out = Diff::default();
    for (key, (before, after)) in &delta.flows {
        match (before, after) {
            (None, Some(a)) => out.flows.adds.push(a.clone()),
            (Some(b), Some(a)) if a != b => out.flows.modifies.push(a.clone()),
            (Some(_), None) => out.flows.deletes.push(key.clone()),
            _ => {}
        }
    }
    for (id, (before, after)) in &delta.groups {
        match (before, after) {
            (None, Some(a)) => out.groups.adds.push(a.clone()),
            (Some(b), Some(a)) if a != b => out.groups.modifies.push(a.clone()),
            (Some(_), None) => out.groups.deletes.push(*id),
            _ => {}
        }
    }
    for (id, (before, after)) in &delta.meters {
        match (before, after) {
            (None, Some(a)) => out.meters.adds.push(a.clone()),
            (Some(b), Some(a)) if a != b => out.meters.modifies.push(a.clone()),
            (Some(_), None) => out.meters.deletes.push(*id),
            _ => {}
        }
    }
    out.flows.sort();
    out.groups.sort();
    out.meters.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use weft_openflow::flow::{Action, GroupType, Match, MatchField};
    use weft_proto::v1::{PortAddress, PortView, RemoteChassis, SwitchView};

    use super::*;
    use crate::ids::Ids;
    use crate::pipeline::{compile_all, recompile, CompileInput, Encap};
    use crate::view::ChassisView;

    fn port(name: &str, n: u8, chassis: &str) -> PortView {
        PortView {
            name: name.into(),
            switch_name: "ls1".into(),
            addresses: vec![PortAddress {
                mac: format!("00:00:00:00:00:{n:02x}"),
                ips: vec![format!("10.0.0.{n}")],
            }],
            unknown: false,
            port_security: vec![],
            chassis: chassis.into(),
            enabled: true,
            tunnel_key: u32::from(n),
            ..Default::default()
        }
    }

    struct Fixture {
        view: ChassisView,
        vifs: BTreeMap<String, u32>,
        tunnels: BTreeMap<Encap, u32>,
        ids: Ids,
    }

    impl Fixture {
        fn new() -> Self {
            let mut view = ChassisView::new();
            view.apply(&weft_proto::model::view::ViewDelta {
                revision: 1,
                snapshot: true,
                switches: vec![SwitchView {
                    name: "ls1".into(),
                    vni: 7,
                    tunnel_key: 3,
                    subnet: String::new(),
                    mtu: 0,
                    ..Default::default()
                }],
                ports: vec![
                    port("a", 1, "hv1"),
                    port("b", 2, "hv1"),
                    port("c", 3, "hv2"),
                ],
                chassis: vec![RemoteChassis {
                    name: "hv2".into(),
                    encap_ip: "192.168.0.2".into(),
                    encap_types: vec!["geneve".into()],
                }],
                ..Default::default()
            })
            .expect("valid view");
            let mut fx = Fixture {
                view,
                vifs: [("a".to_string(), 1), ("b".to_string(), 2)].into(),
                tunnels: [(Encap::Geneve, 100)].into(),
                ids: Ids::default(),
            };
            fx.sync();
            fx
        }

        fn sync(&mut self) {
            self.ids.sync(&self.view, "hv1", &self.vifs).unwrap();
        }

        fn input(&self) -> CompileInput<'_> {
            CompileInput {
                chassis: "hv1",
                view: &self.view,
                vifs: &self.vifs,
                tunnels: &self.tunnels,
                ids: &self.ids,
                neighbours: &crate::pinctrl::neigh::NO_NEIGHBOURS,
                localnets: &crate::pipeline::NO_LOCALNETS,
            }
        }
    }

    fn canonical(d: &Diff) -> Vec<String> {
        d.to_sorted_lines()
    }

    type Snapshot = (Vec<Flow>, Vec<Group>, Vec<Meter>);

    fn installed(d: &DesiredState) -> Snapshot {
        (
            d.flows().cloned().collect(),
            d.groups().cloned().collect(),
            d.meters().cloned().collect(),
        )
    }

    fn on(s: &Snapshot) -> Installed<'_> {
        Installed {
            flows: &s.0,
            groups: &s.1,
            meters: &s.2,
        }
    }

    #[test]
    fn identical_state_gives_empty_diff() {
        let fx = Fixture::new();
        let desired = compile_all(&fx.input());
        let snap = installed(&desired);
        assert!(!snap.0.is_empty() && !snap.2.is_empty());
        let d = diff(on(&snap), &desired);
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn empty_switch_gets_everything_added() {
        let fx = Fixture::new();
        let desired = compile_all(&fx.input());
        let d = diff(on(&(vec![], vec![], vec![])), &desired);
        assert_eq!(d.meters.adds.len(), desired.meter_count());
        assert_eq!(d.flows.adds.len(), desired.flow_count());
        assert_eq!(d.groups.adds.len(), desired.group_count());
        assert!(d.flows.modifies.is_empty() && d.flows.deletes.is_empty());
        // Sorted by table, then priority descending.
        let order: Vec<(u8, u16)> = d
            .flows
            .adds
            .iter()
            .map(|f| (f.table, u16::MAX - f.priority))
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
    }

    #[test]
    fn changed_actions_or_cookie_is_a_modify_and_foreign_flows_are_deleted() {
        let fx = Fixture::new();
        let desired = compile_all(&fx.input());
        let (mut flows, mut groups, mut meters) = installed(&desired);
        // A flow with the right key but stale actions, one with a foreign cookie,
        // one missing, and one nobody wants.
        flows.sort_by_key(|f| (f.table, f.priority, f.cookie));
        flows[0].actions = vec![Action::Output(99)];
        let foreign_cookie = flows[1].clone();
        flows[1].cookie = 0x1234;
        let missing = flows.pop().expect("non-empty");
        let stray = Flow {
            table: 50,
            priority: 50,
            cookie: 0,
            matches: Match::new().with(MatchField::InPort(42)),
            actions: vec![],
        };
        flows.push(stray.clone());
        groups[0].buckets.clear();
        groups.push(Group {
            id: 999,
            kind: GroupType::All,
            buckets: vec![],
        });
        // A meter with another rate and a stray meter.
        meters[0].bands[0].rate += 1;
        meters.push(Meter {
            id: 777,
            ..Meter::default()
        });

        let snap = (flows, groups, meters);
        let d = diff(on(&snap), &desired);
        assert_eq!(d.meters.modifies.len(), 1);
        assert_eq!(d.meters.deletes, vec![777]);
        assert_eq!(d.flows.adds, vec![missing]);
        assert_eq!(d.flows.modifies.len(), 2);
        assert!(d.flows.modifies.contains(&foreign_cookie));
        assert_eq!(d.flows.deletes, vec![stray.key()]);
        assert_eq!(d.groups.modifies.len(), 1);
        assert_eq!(d.groups.deletes, vec![999]);
        assert!(d.groups.adds.is_empty());
        assert_eq!(d.len(), 1 + 2 + 1 + 1 + 1 + 2);
    }

    #[test]
    fn learned_flows_are_left_alone() {
        let fx = Fixture::new();
        let desired = compile_all(&fx.input());
        let (mut flows, groups, meters) = installed(&desired);
        // An LB affinity flow the datapath learned: not desired, never deleted.
        flows.push(Flow {
            table: crate::pipeline::Stage::LbAffinity.table(),
            priority: 100,
            cookie: (u64::from(cookie_kind::LEARNED) << 56) | 7,
            matches: Match::new().with(MatchField::InPort(42)),
            actions: vec![],
        });
        let snap = (flows, groups, meters);
        assert!(diff(on(&snap), &desired).is_empty());
    }

    #[test]
    fn incremental_diff_matches_full_diff() {
        let mut fx = Fixture::new();
        let mut desired = compile_all(&fx.input());
        let old = installed(&desired);

        // Add a remote port on a new chassis, remove a local one, change a MAC.
        let change = fx
            .view
            .apply(&weft_proto::model::view::ViewDelta {
                revision: 2,
                ports: vec![port("d", 4, "hv3"), {
                    let mut p = port("b", 2, "hv1");
                    p.addresses[0].mac = "00:00:00:00:00:22".into();
                    p
                }],
                chassis: vec![RemoteChassis {
                    name: "hv3".into(),
                    encap_ip: "192.168.0.3".into(),
                    encap_types: vec!["geneve".into()],
                }],
                deleted_ports: vec!["a".into()],
                ..Default::default()
            })
            .expect("valid delta");
        fx.vifs.remove("a");
        fx.sync();
        let r = recompile(&mut desired, &fx.input(), &change);
        let inc = diff_delta(&r.delta);
        let full = diff(on(&old), &desired);
        assert!(!inc.is_empty());
        assert_eq!(canonical(&inc), canonical(&full));

        // Recompiling the same change again: nothing to do.
        let r = recompile(&mut desired, &fx.input(), &change);
        assert!(r.delta.is_noop());
        assert!(diff_delta(&r.delta).is_empty());
    }

    #[test]
    fn diff_except_leaves_written_keys_alone() {
        let f = Fixture::new();
        let desired = compile_all(&f.input());
        let all: Vec<Flow> = desired.flows().cloned().collect();
        assert!(all.len() >= 3);
        // The read-back lacks one desired flow and holds one that is no longer desired.
        let missing = all[0].clone();
        let mut extra = all[1].clone();
        extra.priority = extra.priority.wrapping_add(7);
        let mut installed: Vec<Flow> = all[1..].to_vec();
        installed.push(extra.clone());
        let i = Installed {
            flows: &installed,
            groups: &[],
            meters: &[],
        };
        let plain = diff(i, &desired);
        assert_eq!(plain.flows.adds, vec![missing.clone()]);
        assert_eq!(plain.flows.deletes, vec![extra.key()]);
        let mut w = Written::default();
        w.flows.insert(missing.key());
        w.flows.insert(extra.key());
        let d = diff_except(i, &desired, &w);
        assert!(d.flows.is_empty(), "{:?}", d.to_sorted_lines());
        // Recording a diff records its keys.
        let mut w2 = Written::default();
        w2.record(&plain);
        assert_eq!(w2.flows, w.flows);
    }

    #[test]
    fn diff_indexed_matches_diff_except() {
        let f = Fixture::new();
        let desired = compile_all(&f.input());
        let all: Vec<Flow> = desired.flows().cloned().collect();
        assert!(all.len() >= 4);
        // Missing, modified (other actions), foreign and learned flows, and two skipped keys.
        let mut installed: Vec<Flow> = all[1..].to_vec();
        installed[0].actions.clear();
        let mut foreign = all[2].clone();
        foreign.priority = foreign.priority.wrapping_add(3);
        installed.push(foreign.clone());
        let mut learned = all[2].clone();
        learned.priority = learned.priority.wrapping_add(5);
        learned.cookie = (u64::from(cookie_kind::LEARNED) << 56) | 7;
        installed.push(learned);
        let i = Installed {
            flows: &installed,
            groups: &[],
            meters: &[],
        };
        let mut skip = Written::default();
        for w in [Written::default(), {
            skip.flows.insert(all[3].key());
            skip.flows.insert(foreign.key());
            skip.clone()
        }] {
            let ix = InstalledIndex::new(installed.clone(), vec![], vec![]);
            let want = diff_except(i, &desired, &w);
            let got = diff_indexed(&ix, &desired, &w);
            assert_eq!(got.to_sorted_lines(), want.to_sorted_lines());
            if w.is_empty() {
                assert_eq!(got.flows.adds.len(), 1);
                assert_eq!(got.flows.modifies.len(), 1);
                assert_eq!(got.flows.deletes, vec![foreign.key()], "learned flows stay");
            }
        }
    }
}
