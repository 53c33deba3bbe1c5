//! The reconciler's state machine: the chassis view, the local VIFs and tunnel ports, and the
//! desired flow state compiled from them. Pure (no I/O): the agent's event loop in
//! [`crate::agent`] feeds it events and sends the [`Diff`]s it returns to the switch.
//!
//! Two ways to a diff:
//! - [`Reconciler::incremental`]: after a view delta or a VIF change, recompile only the
//!   affected owners and diff their before/after. Cost scales with the change.
//! - [`Reconciler::full`]: against flows read back from the switch (start, OpenFlow
//!   reconnect, OVSDB drift repair, after a failed bundle). Never a flush: only the difference.
//! - [`Reconciler::resync`]: the periodic drift check. The table is read back in the
//!   background ([`Reconciler::read_back_started`]) while incremental diffs go on; every key
//!   they write from then on is [`Written`], and the resync's full diff leaves those keys
//!   alone (the read-back may predate them). A failed bundle or a full diff meanwhile makes
//!   the read-back useless ([`Reconciler::read_back_valid`]). When the read-back's
//!   [`crate::fingerprint::FlowFingerprint`] is that of a table the switch held since it
//!   began (no drift, the common case), the flows are not diffed one by one at all.
//!
//! Nothing is compiled before the first snapshot *and* the first VIF listing have arrived, so
//! a restarted agent never replaces a working table with one built from an empty view.

use std::collections::BTreeMap;

use weft_proto::model::view::ViewDelta;
use weft_proto::v1::{PortBinding, StatusReport};

use crate::diff::{
    diff, diff_delta, diff_indexed, diff_indexed_groups, Diff, Installed, InstalledIndex, Written,
};
use crate::ids::{IdChanges, Ids};
use crate::pinctrl::neigh::{Learned, Neighbours};
use crate::pipeline::{compile_all, recompile, CompileInput, DesiredState, Encap};
use crate::view::{ChassisView, ViewChange, ViewError};

/// Why an update was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("view update rejected, keeping revision {kept}: {source}")]
    View {
        kept: i64,
        #[source]
        source: ViewError,
    },
    #[error("delta at revision {0} ignored: waiting for a snapshot after a rejected update")]
    AwaitingSnapshot(i64),
}

/// What [`Reconciler::resync`] returns.
#[derive(Clone, Debug)]
pub struct Resync {
    /// The pending changes and the repairs, in one diff.
    pub diff: Diff,
    /// How many entries of `diff` are repairs of drift.
    pub repairs: usize,
    /// False when the flows read back matched by fingerprint (no per-flow diff was needed).
    pub flows_compared: bool,
}

/// The agent's desired state and what it was built from.
#[derive(Debug)]
pub struct Reconciler {
    chassis: String,
    view: ChassisView,
    have_snapshot: bool,
    /// After a rejected update, deltas are ignored until the next snapshot.
    need_snapshot: bool,
    vifs: Option<BTreeMap<String, u32>>,
    /// Every local interface with an iface-id, bound or not (reported to the controller).
    local_ifaces: Vec<String>,
    tunnels: BTreeMap<Encap, u32>,
    /// Zones, group and meter ids (recovered from OVSDB at start).
    ids: Ids,
    desired: Option<DesiredState>,
    /// Changes seen before the desired state could be built.
    pending: ViewChange,
    /// Revision of the view the switch holds (after the last successful apply).
    applied_revision: i64,
    last_error: String,
    /// Next-hop bindings learned by ARP on this chassis.
    neighbours: Neighbours,
    /// Provider network → ofport of its patch port on br-int.
    localnets: BTreeMap<String, u32>,
    /// While a background read-back is in flight: the keys diffs handed out since it began.
    since_read_back: Option<Written>,
}

impl Reconciler {
    pub fn new(chassis: &str, tunnels: BTreeMap<Encap, u32>, ids: Ids) -> Self {
        Self {
            ids,
            chassis: chassis.to_string(),
            view: ChassisView::new(),
            have_snapshot: false,
            need_snapshot: false,
            vifs: None,
            local_ifaces: Vec::new(),
            tunnels,
            desired: None,
            pending: ViewChange::default(),
            applied_revision: 0,
            last_error: String::new(),
            neighbours: Neighbours::new(),
            localnets: BTreeMap::new(),
            since_read_back: None,
        }
    }

    /// New patch port ofports of the bridge mappings (provider network → ofport): the
    /// localnet ports of the view are recompiled. Returns whether anything changed.
    pub fn set_localnets(&mut self, localnets: BTreeMap<String, u32>) -> bool {
        if localnets == self.localnets {
            return false;
        }
        self.localnets = localnets;
        let names: Vec<String> = self
            .view
            .ports()
            .filter(|p| p.kind == crate::view::PortKind::Localnet)
            .map(|p| p.name.clone())
            .collect();
        for n in names {
            self.pending.mark_port(n);
        }
        true
    }

    /// The learned next-hop bindings.
    pub fn neighbours(&self) -> &Neighbours {
        &self.neighbours
    }

    /// The router port of router key `rk` with key `pk`, by name.
    fn router_port_by_keys(&self, rk: u32, pk: u32) -> Option<&crate::view::RouterPort> {
        let r = self.view.routers().find(|r| r.key == rk)?;
        self.view.router_ports_of(&r.name).find(|p| p.key == pk)
    }

    /// A binding pinctrl learned: kept when its router port is in the view and the address
    /// is on one of the port's networks; the port is marked for recompile when its flows
    /// change. False when refused or unchanged.
    pub fn learn(&mut self, l: &Learned, now: std::time::Instant) -> bool {
        let Some(p) = self.router_port_by_keys(l.router_key, l.lrp_key) else {
            return false;
        };
        if !p.networks.iter().any(|n| n.contains(l.ip)) {
            return false;
        }
        let name = p.name.clone();
        let (changed, evicted) = self.neighbours.learn(l, now);
        if let Some((rk, pk)) = evicted {
            if let Some(e) = self.router_port_by_keys(rk, pk).map(|p| p.name.clone()) {
                self.pending.router_ports.insert(e);
            }
        }
        if changed {
            self.pending.router_ports.insert(name);
        }
        changed
    }

    /// Drops expired bindings (their ports are marked for recompile); true when any went.
    pub fn expire_neighbours(&mut self, now: std::time::Instant) -> bool {
        let gone = self.neighbours.expire(now);
        for (rk, pk) in &gone {
            if let Some(n) = self.router_port_by_keys(*rk, *pk).map(|p| p.name.clone()) {
                self.pending.router_ports.insert(n);
            }
        }
        !gone.is_empty()
    }

    /// True once a snapshot and the VIF listing are in: only then may the switch be touched.
    pub fn ready(&self) -> bool {
        self.have_snapshot && self.vifs.is_some()
    }

    pub fn view(&self) -> &ChassisView {
        &self.view
    }

    /// The local VIFs' ofports by logical port name (None before the first OVSDB snapshot).
    pub fn vifs(&self) -> Option<&BTreeMap<String, u32>> {
        self.vifs.as_ref()
    }

    /// The desired state (what the switch holds after a successful apply).
    pub fn desired(&self) -> Option<&DesiredState> {
        self.desired.as_ref()
    }

    /// Tunnel ofports by encapsulation.
    pub fn tunnels(&self) -> &BTreeMap<Encap, u32> {
        &self.tunnels
    }

    /// New tunnel ofports (a tunnel port was re-created after drift): everything is
    /// compiled again on the next full diff. Returns whether anything changed.
    pub fn set_tunnels(&mut self, tunnels: BTreeMap<Encap, u32>) -> bool {
        if tunnels == self.tunnels {
            return false;
        }
        self.tunnels = tunnels;
        self.desired = None;
        true
    }

    /// The allocated ids.
    pub fn ids(&self) -> &Ids {
        &self.ids
    }

    /// Id assignments not yet written to OVSDB, and zones to flush, since the last
    /// [`Reconciler::ids_persisted`]. Write them before applying the diff that uses them.
    pub fn pending_ids(&self) -> IdChanges {
        self.ids.pending().clone()
    }

    /// `done` (from [`Reconciler::pending_ids`]) is in OVSDB and its zones are flushed.
    pub fn ids_persisted(&mut self, done: &IdChanges) {
        self.ids.persisted(done);
    }

    /// Applies a snapshot or delta from the controller. An invalid update is rejected whole:
    /// the view stays as it was and later deltas are ignored until the next snapshot.
    pub fn on_update(&mut self, update: &ViewDelta) -> Result<(), ReconcileError> {
        if self.need_snapshot && !update.snapshot {
            return Err(ReconcileError::AwaitingSnapshot(update.revision));
        }
        match self.view.apply(update) {
            Ok(change) => {
                if update.snapshot {
                    self.have_snapshot = true;
                    self.need_snapshot = false;
                }
                self.pending.merge(change);
                Ok(())
            }
            Err(source) => {
                self.need_snapshot = true;
                let err = ReconcileError::View {
                    kept: self.view.revision(),
                    source,
                };
                self.last_error = err.to_string();
                Err(err)
            }
        }
    }

    /// True after a rejected update: the caller should resubscribe for a fresh snapshot.
    pub fn needs_snapshot(&self) -> bool {
        self.need_snapshot
    }

    /// Replaces the set of local interfaces: `ifaces` maps iface-id → ofport (None while
    /// ovs-vswitchd has not assigned one). Ports whose binding changed are marked for recompile.
    pub fn on_vifs(&mut self, ifaces: &BTreeMap<String, Option<u32>>) {
        let new: BTreeMap<String, u32> = ifaces
            .iter()
            .filter_map(|(k, v)| v.map(|p| (k.clone(), p)))
            .collect();
        if let Some(old) = &self.vifs {
            for (name, port) in old {
                if new.get(name) != Some(port) {
                    self.pending.mark_port(name.clone());
                }
            }
            for name in new.keys() {
                if !old.contains_key(name) {
                    self.pending.mark_port(name.clone());
                }
            }
        }
        self.local_ifaces = ifaces.keys().cloned().collect();
        self.vifs = Some(new);
    }

    fn input<'a>(&'a self, vifs: &'a BTreeMap<String, u32>) -> CompileInput<'a> {
        CompileInput {
            chassis: &self.chassis,
            view: &self.view,
            vifs,
            tunnels: &self.tunnels,
            ids: &self.ids,
            neighbours: &self.neighbours,
            localnets: &self.localnets,
        }
    }

    /// Allocates ids for what the view now holds; false (and the error recorded) when an id
    /// space is exhausted.
    fn sync_ids(&mut self, vifs: &BTreeMap<String, u32>) -> bool {
        match self.ids.sync(&self.view, &self.chassis, vifs) {
            Ok(_) => true,
            Err(e) => {
                self.last_error = e.to_string();
                false
            }
        }
    }

    /// Brings the desired state up to date and returns what changed since the last call,
    /// assuming the switch holds the previous desired state. `None` when not ready yet or
    /// when the desired state must first be diffed in full (see [`Reconciler::full`]).
    pub fn incremental(&mut self) -> Option<Diff> {
        if !self.ready() {
            return None;
        }
        // Borrowed out and put back, not cloned (it is every local VIF).
        let vifs = self.vifs.take()?;
        let d = self.incremental_with(&vifs);
        self.vifs = Some(vifs);
        d
    }

    fn incremental_with(&mut self, vifs: &BTreeMap<String, u32>) -> Option<Diff> {
        if !self.sync_ids(vifs) {
            return None;
        }
        let mut desired = self.desired.take()?;
        let change = std::mem::take(&mut self.pending);
        let recompiled = recompile(&mut desired, &self.input(vifs), &change);
        self.desired = Some(desired);
        let d = diff_delta(&recompiled.delta);
        if let Some(w) = self.since_read_back.as_mut() {
            w.record(&d);
            if let Some(desired) = &self.desired {
                w.states.push(desired.fingerprint());
            }
        }
        Some(d)
    }

    /// Whether the switch's flow count per table (`dump-tables`, taken while no bundle is in
    /// flight) is what the desired state has: the cheap drift check between two full
    /// read-backs. It catches flows deleted or added behind the agent's back (and a flushed
    /// table), not a flow modified in place (the full read-back does). The learned-flows
    /// table ([`crate::pipeline::Stage::LbAffinity`]) is left out: the datapath adds to it.
    /// False without a desired state.
    pub fn table_counts_match(&self, switch: &[(u8, u32)]) -> bool {
        let Some(desired) = &self.desired else {
            return false;
        };
        let learned = crate::pipeline::Stage::LbAffinity.table();
        let ours = |c: &[(u8, u32)]| -> Vec<(u8, u32)> {
            c.iter().copied().filter(|(t, _)| *t != learned).collect()
        };
        ours(&desired.table_flow_counts()) == ours(switch)
    }

    /// A background read-back of the switch's table starts now (no bundle is in flight):
    /// from here on the keys of every diff handed out are recorded for [`Reconciler::resync`].
    pub fn read_back_started(&mut self) {
        self.since_read_back = Some(Written {
            states: self.desired.iter().map(|d| d.fingerprint()).collect(),
            ..Written::default()
        });
    }

    /// False once the read-back under way can no longer be used (a full diff or a failed
    /// bundle came in between, or none was started).
    pub fn read_back_valid(&self) -> bool {
        self.since_read_back.is_some()
    }

    /// The periodic resync, with a table read back since [`Reconciler::read_back_started`]:
    /// the pending changes (as in [`Reconciler::incremental`]) plus the repairs of any drift,
    /// i.e. a full diff that leaves alone the keys written since the read-back began. The
    /// second part of the pair is the number of repairs. `None` when the read-back is no
    /// longer valid or there is no desired state to check against (then a
    /// [`Reconciler::full`] is due anyway).
    pub fn resync(&mut self, installed: &InstalledIndex) -> Option<Resync> {
        let mut written = self.since_read_back.take()?;
        self.desired.as_ref()?;
        let mut d = self.incremental()?;
        written.record(&d);
        let desired = self.desired.as_ref()?;
        // The common case, no drift: the flows read back are a table the switch held since
        // the read-back began, and only groups and meters need comparing.
        let flows_compared = !written.held(installed.fingerprint());
        let repairs = if flows_compared {
            diff_indexed(installed, desired, &written)
        } else {
            diff_indexed_groups(installed, desired, &written)
        };
        let n = repairs.len();
        d.extend(repairs);
        Some(Resync {
            diff: d,
            repairs: n,
            flows_compared,
        })
    }

    /// Diffs the desired state against what the switch reports. The desired state does not
    /// depend on the switch, so one that is already built is only brought up to date
    /// (pending changes recompiled); everything is compiled only when there is none yet
    /// (start, or after a failed bundle). A periodic resync thus costs a read-back and a diff,
    /// not a full compile.
    pub fn full(&mut self, installed: Installed) -> Option<Diff> {
        if !self.ready() {
            return None;
        }
        let vifs = self.vifs.clone().unwrap_or_default();
        if !self.sync_ids(&vifs) {
            return None;
        }
        if self.desired.is_none() && self.neighbours.is_empty() {
            // First compile (agent start): carry on with the bindings the switch still has.
            let n = self
                .neighbours
                .recover(installed.flows, std::time::Instant::now());
            if n > 0 {
                tracing::info!(bindings = n, "neighbour bindings recovered from the switch");
            }
        }
        let desired = match self.desired.take() {
            Some(mut desired) => {
                let change = std::mem::take(&mut self.pending);
                recompile(&mut desired, &self.input(&vifs), &change);
                desired
            }
            None => {
                self.pending = ViewChange::default();
                compile_all(&self.input(&vifs))
            }
        };
        let d = diff(installed, &desired);
        self.desired = Some(desired);
        // A table read back before this diff is older than what it is about to write.
        self.since_read_back = None;
        Some(d)
    }

    /// True when a full diff is needed before incremental ones make sense.
    pub fn needs_full(&self) -> bool {
        self.ready() && self.desired.is_none()
    }

    /// Records the outcome of applying a diff to the switch.
    pub fn applied(&mut self, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.applied_revision = self.view.revision();
                self.last_error.clear();
            }
            Err(e) => {
                // The switch kept its previous table; force a full diff next time.
                self.desired = None;
                self.since_read_back = None;
                self.last_error = e;
            }
        }
    }

    /// The status report for the controller: applied revision and every local VIF, `up`
    /// when its port is bound here and its flows are installed. `None` until the VIF listing
    /// is in: the report is a full set, and an empty one would unbind every local port.
    /// The applied revision and last error of [`Reconciler::status`] (`None` when it is
    /// `None`), without building its port list (O(1), for the debug service and readiness).
    pub fn applied_state(&self) -> Option<(i64, &str)> {
        self.vifs.as_ref()?;
        Some((self.applied_revision, self.last_error.as_str()))
    }

    pub fn status(&self) -> Option<StatusReport> {
        let vifs = Some(self.vifs.as_ref()?);
        let installed = self.desired.is_some() && self.last_error.is_empty();
        let ports = self
            .local_ifaces
            .iter()
            .map(|name| {
                let up = installed
                    && vifs.is_some_and(|v| v.contains_key(name))
                    && self.view.port(name).is_some_and(|p| {
                        p.chassis.as_deref() == Some(self.chassis.as_str()) && p.enabled
                    });
                PortBinding {
                    port: name.clone(),
                    chassis: self.chassis.clone(),
                    up,
                }
            })
            .collect();
        Some(StatusReport {
            chassis: self.chassis.clone(),
            applied_revision: self.applied_revision,
            ports,
            last_error: self.last_error.clone(),
        })
    }

    /// Records an error to report (for example an OVSDB or OpenFlow failure).
    pub fn set_error(&mut self, e: impl Into<String>) {
        self.last_error = e.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_proto::v1::{PortAddress, PortView, SwitchView};

    fn snapshot(rev: i64, ports: &[(&str, &str)]) -> ViewDelta {
        ViewDelta {
            revision: rev,
            snapshot: true,
            switches: vec![SwitchView {
                name: "sw".into(),
                vni: 100,
                tunnel_key: 1,
                subnet: "10.0.0.0/24".into(),
                mtu: 0,
                ..Default::default()
            }],
            ports: ports
                .iter()
                .enumerate()
                .map(|(i, (name, chassis))| PortView {
                    name: name.to_string(),
                    switch_name: "sw".into(),
                    addresses: vec![PortAddress {
                        mac: format!("0a:00:00:00:00:{:02x}", i + 2),
                        ips: vec![format!("10.0.0.{}", i + 2)],
                    }],
                    unknown: false,
                    port_security: vec![],
                    chassis: chassis.to_string(),
                    enabled: true,
                    tunnel_key: i as u32 + 1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    const NONE: Installed<'static> = Installed {
        flows: &[],
        groups: &[],
        meters: &[],
    };

    fn inst<'a>(d: &'a Diff) -> Installed<'a> {
        Installed {
            flows: &d.flows.adds,
            groups: &d.groups.adds,
            meters: &d.meters.adds,
        }
    }

    fn index(d: &Diff) -> InstalledIndex {
        InstalledIndex::new(
            d.flows.adds.clone(),
            d.groups.adds.clone(),
            d.meters.adds.clone(),
        )
    }

    fn vifs(list: &[(&str, u32)]) -> BTreeMap<String, Option<u32>> {
        list.iter()
            .map(|(k, v)| (k.to_string(), Some(*v)))
            .collect()
    }

    #[test]
    fn nothing_happens_before_snapshot_and_vifs() {
        let mut r = Reconciler::new("h1", BTreeMap::new(), Ids::default());
        assert!(r.full(NONE).is_none());
        assert!(
            r.status().is_none(),
            "no status (which would unbind ports) before VIFs"
        );
        r.on_update(&snapshot(5, &[("p1", "h1")])).unwrap();
        assert!(r.full(NONE).is_none(), "no VIF listing yet");
        r.on_vifs(&vifs(&[("p1", 3)]));
        let d = r.full(NONE).unwrap();
        assert!(!d.is_empty());
    }

    #[test]
    fn restart_with_installed_flows_changes_nothing() {
        let mut r = Reconciler::new("h1", BTreeMap::new(), Ids::default());
        r.on_update(&snapshot(5, &[("p1", "h1"), ("p2", "h1")]))
            .unwrap();
        r.on_vifs(&vifs(&[("p1", 3), ("p2", 4)]));
        let d = r.full(NONE).unwrap();
        // A second agent over the same switch content: empty diff.
        let mut r2 = Reconciler::new("h1", BTreeMap::new(), Ids::default());
        r2.on_update(&snapshot(5, &[("p1", "h1"), ("p2", "h1")]))
            .unwrap();
        r2.on_vifs(&vifs(&[("p1", 3), ("p2", 4)]));
        assert!(r2.full(inst(&d)).unwrap().is_empty());
    }

    #[test]
    fn vif_change_is_incremental_and_reports_up() {
        let mut r = Reconciler::new("h1", BTreeMap::new(), Ids::default());
        r.on_update(&snapshot(5, &[("p1", "h1"), ("p2", "h1")]))
            .unwrap();
        r.on_vifs(&vifs(&[("p1", 3)]));
        r.full(NONE).unwrap();
        r.applied(Ok(()));
        let st = r.status().unwrap();
        assert_eq!(st.applied_revision, 5);
        assert_eq!(st.ports.len(), 1);
        assert!(st.ports[0].up);
        r.on_vifs(&vifs(&[("p1", 3), ("p2", 4)]));
        let d = r.incremental().unwrap();
        assert!(!d.flows.adds.is_empty());
        assert!(d.flows.deletes.is_empty());
        r.applied(Ok(()));
        assert!(r.status().unwrap().ports.iter().all(|p| p.up));
    }

    #[test]
    fn rejected_update_keeps_state_and_waits_for_snapshot() {
        let mut r = Reconciler::new("h1", BTreeMap::new(), Ids::default());
        r.on_update(&snapshot(5, &[("p1", "h1")])).unwrap();
        r.on_vifs(&vifs(&[("p1", 3)]));
        let mut bad = snapshot(6, &[("p1", "h1")]);
        bad.snapshot = false;
        bad.ports[0].addresses[0].mac = "zz".into();
        let e = r.on_update(&bad).unwrap_err();
        assert!(e.to_string().contains("zz"), "{e}");
        assert_eq!(r.view().revision(), 5);
        assert!(r.needs_snapshot());
        let mut delta = snapshot(7, &[]);
        delta.snapshot = false;
        assert!(matches!(
            r.on_update(&delta),
            Err(ReconcileError::AwaitingSnapshot(7))
        ));
        r.on_update(&snapshot(8, &[("p1", "h1")])).unwrap();
        assert!(!r.needs_snapshot());
        // The rejection is reported until an apply succeeds.
        assert!(r.status().unwrap().last_error.contains("zz"));
    }

    #[test]
    fn resync_reuses_the_desired_state_and_repairs_drift() {
        let mut r = Reconciler::new("h1", BTreeMap::new(), Ids::default());
        r.on_update(&snapshot(5, &[("p1", "h1"), ("p2", "h1")]))
            .unwrap();
        r.on_vifs(&vifs(&[("p1", 3)]));
        let first = r.full(NONE).unwrap();
        r.applied(Ok(()));
        // A change arrives and is not applied incrementally before the resync.
        r.on_vifs(&vifs(&[("p1", 3), ("p2", 4)]));
        let mut installed = first.clone();
        let lost = installed.flows.adds.pop().expect("some flow");
        let d = r.full(inst(&installed)).unwrap();
        // The drifted flow comes back and p2's flows are added: same as a fresh compile.
        let mut fresh = Reconciler::new("h1", BTreeMap::new(), Ids::default());
        fresh
            .on_update(&snapshot(5, &[("p1", "h1"), ("p2", "h1")]))
            .unwrap();
        fresh.on_vifs(&vifs(&[("p1", 3), ("p2", 4)]));
        let expected = fresh.full(inst(&installed)).unwrap();
        assert_eq!(d.to_sorted_lines(), expected.to_sorted_lines());
        assert!(d.flows.adds.contains(&lost) || d.flows.modifies.contains(&lost));
    }

    #[test]
    fn background_resync_skips_what_was_written_after_the_read_back() {
        let mut r = Reconciler::new("h1", BTreeMap::new(), Ids::default());
        r.on_update(&snapshot(5, &[("p1", "h1"), ("p2", "h1")]))
            .unwrap();
        r.on_vifs(&vifs(&[("p1", 3)]));
        let first = r.full(NONE).unwrap();
        r.applied(Ok(()));
        // The read-back starts; it sees the table as the first full diff left it.
        r.read_back_started();
        let snapshot_of_switch = first.clone();
        // Meanwhile p2 comes up: an incremental bundle adds its flows.
        r.on_vifs(&vifs(&[("p1", 3), ("p2", 4)]));
        let inc = r.incremental().unwrap();
        assert!(!inc.flows.adds.is_empty());
        r.applied(Ok(()));
        // The stale read-back lacks p2's flows: they are not re-added, nothing else drifted.
        let rs = r.resync(&index(&snapshot_of_switch)).unwrap();
        assert!(rs.diff.is_empty(), "{:?}", rs.diff.to_sorted_lines());
        assert_eq!(rs.repairs, 0);
        assert!(
            !rs.flows_compared,
            "the read-back is the table before p2's bundle: matched by fingerprint"
        );
        assert!(!r.read_back_valid(), "a read-back is used once");

        // Real drift (a flow deleted by hand) is repaired; the changes pending at the
        // resync go in the same diff.
        r.read_back_started();
        let mut installed = first.clone();
        installed.flows.adds.extend(inc.flows.adds.iter().cloned());
        let lost = installed.flows.adds.remove(0);
        r.on_vifs(&vifs(&[("p1", 3)]));
        let rs = r.resync(&index(&installed)).unwrap();
        assert!(rs.flows_compared, "drift: the fingerprint differs");
        let (d, repairs) = (rs.diff, rs.repairs);
        assert_eq!(repairs, 1, "{:?}", d.to_sorted_lines());
        assert!(d.flows.adds.contains(&lost) || d.flows.modifies.contains(&lost));
        assert!(
            !d.flows.deletes.is_empty(),
            "p2's flows go (pending change)"
        );
    }

    #[test]
    fn table_counts_catch_flows_deleted_or_added_by_hand() {
        let mut r = Reconciler::new("h1", BTreeMap::new(), Ids::default());
        assert!(!r.table_counts_match(&[]), "no desired state yet");
        r.on_update(&snapshot(5, &[("p1", "h1"), ("p2", "h1")]))
            .unwrap();
        r.on_vifs(&vifs(&[("p1", 3), ("p2", 4)]));
        let first = r.full(NONE).unwrap();
        r.applied(Ok(()));
        let mut counts: BTreeMap<u8, u32> = BTreeMap::new();
        for f in &first.flows.adds {
            *counts.entry(f.table).or_default() += 1;
        }
        let switch: Vec<(u8, u32)> = counts.clone().into_iter().collect();
        assert!(r.table_counts_match(&switch));
        // Learned flows in the affinity table do not count.
        let mut learned = counts.clone();
        learned.insert(crate::pipeline::Stage::LbAffinity.table(), 7);
        assert!(r.table_counts_match(&learned.into_iter().collect::<Vec<_>>()));
        // One flow deleted by hand, one added in another table.
        let mut deleted = counts.clone();
        *deleted.get_mut(&first.flows.adds[0].table).unwrap() -= 1;
        assert!(!r.table_counts_match(&deleted.into_iter().collect::<Vec<_>>()));
        let mut added = counts.clone();
        *added.entry(99).or_default() += 1;
        assert!(!r.table_counts_match(&added.into_iter().collect::<Vec<_>>()));
        // After an incremental change the counts follow the desired state.
        r.on_vifs(&vifs(&[("p1", 3)]));
        let d = r.incremental().unwrap();
        r.applied(Ok(()));
        for f in &d.flows.adds {
            *counts.entry(f.table).or_default() += 1;
        }
        for k in &d.flows.deletes {
            *counts.get_mut(&k.table).unwrap() -= 1;
        }
        let now: Vec<(u8, u32)> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
        assert!(r.table_counts_match(&now));
    }

    #[test]
    fn a_full_diff_or_failed_bundle_invalidates_the_read_back() {
        let mut r = Reconciler::new("h1", BTreeMap::new(), Ids::default());
        r.on_update(&snapshot(5, &[("p1", "h1")])).unwrap();
        r.on_vifs(&vifs(&[("p1", 3)]));
        let first = r.full(NONE).unwrap();
        r.applied(Ok(()));
        r.read_back_started();
        assert!(r.read_back_valid());
        r.full(inst(&first)).unwrap();
        assert!(!r.read_back_valid());
        assert!(r.resync(&index(&first)).is_none());
        r.read_back_started();
        r.applied(Err("bundle failed".into()));
        assert!(r.resync(&index(&first)).is_none());
    }

    #[test]
    fn failed_apply_forces_full_diff() {
        let mut r = Reconciler::new("h1", BTreeMap::new(), Ids::default());
        r.on_update(&snapshot(5, &[("p1", "h1")])).unwrap();
        r.on_vifs(&vifs(&[("p1", 3)]));
        r.full(NONE).unwrap();
        r.applied(Err("bundle failed".into()));
        assert!(r.needs_full());
        assert_eq!(r.status().unwrap().last_error, "bundle failed");
        assert_eq!(r.applied_state(), Some((0, "bundle failed")));
        assert!(r.status().unwrap().ports.iter().all(|p| !p.up));
    }
}
