//! Applied-revision acks kept in the replica that receives them (issue 17).
//!
//! Every chassis acks every revision it applies. Writing each ack to etcd before answering
//! made one change cost 1 + N etcd writes (N chassis) and put N etcd round trips on the
//! `--wait=hv` path. Instead, [`AckTable`] holds the latest ack of each chassis in memory:
//! `--wait=hv`, `chassis-list` and `show` on this replica see it at once
//! ([`AckTable::applied`]), and a background flush ([`AckTable::kick`]) writes the acks that
//! changed to `status/applied/<chassis>` in as few transactions as possible (group commit:
//! one transaction in flight, whatever arrives meanwhile goes into the next). Other replicas
//! see acks through their etcd cache, one batched write later.
//!
//! An ack is tied to the chassis' registration: it records the mod_revision of the chassis'
//! `status/alive/` key when it was made, and counts only while that key is unchanged (an
//! agent that restarts registers a new lease, so its old in-memory ack stops counting).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use weft_proto::v1::Chassis;

use crate::state::{ClusterState, Keys};
use crate::store::{Compare, IntentStore, Op, Txn};

/// One chassis' latest ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The revision the chassis reports applied.
    pub applied: i64,
    /// mod_revision of the chassis' `status/alive/` key when the ack was made.
    pub alive_rev: i64,
}

/// Pure: the applied revision of a chassis as this replica knows it: the in-memory ack while
/// the chassis' registration (`alive_rev`, None when not alive) is the one it was made under,
/// else (and at least) what etcd holds.
pub fn effective_applied(local: Option<Ack>, etcd: Option<i64>, alive_rev: Option<i64>) -> i64 {
    let etcd = etcd.unwrap_or(0);
    match (local, alive_rev) {
        (Some(a), Some(rev)) if a.alive_rev == rev => a.applied.max(etcd),
        _ => etcd,
    }
}

#[derive(Debug, Default)]
struct Inner {
    acks: HashMap<String, Ack>,
    /// Acks not yet written to etcd.
    dirty: BTreeMap<String, Ack>,
}

/// The in-memory acks of one replica (see the module docs).
#[derive(Debug)]
pub struct AckTable {
    inner: Mutex<Inner>,
    /// Bumped on every recorded ack (what `--wait=hv` waits on besides the cache).
    changed: watch::Sender<u64>,
    flushing: AtomicBool,
}

impl Default for AckTable {
    fn default() -> Self {
        AckTable {
            inner: Mutex::new(Inner::default()),
            changed: watch::channel(0).0,
            flushing: AtomicBool::new(false),
        }
    }
}

fn alive_rel(chassis: &str) -> String {
    format!("status/alive/{chassis}")
}

impl AckTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `chassis`' ack of `applied`, made while its alive key had `alive_rev`. An
    /// older ack under the same registration is ignored. Returns true when it changed
    /// anything (the caller then [`AckTable::kick`]s the flush).
    pub fn record(&self, chassis: &str, applied: i64, alive_rev: i64) -> bool {
        let ack = Ack { applied, alive_rev };
        {
            let mut inner = self.lock();
            match inner.acks.get(chassis) {
                Some(a) if a.alive_rev == alive_rev && a.applied >= applied => return false,
                _ => {}
            }
            inner.acks.insert(chassis.to_string(), ack);
            inner.dirty.insert(chassis.to_string(), ack);
        }
        self.changed.send_modify(|n| *n += 1);
        true
    }

    /// The latest ack held for `chassis`.
    pub fn get(&self, chassis: &str) -> Option<Ack> {
        self.lock().acks.get(chassis).copied()
    }

    /// `chassis`' applied revision: [`effective_applied`] of the held ack and `st`.
    pub fn applied(&self, st: &ClusterState, chassis: &str) -> i64 {
        let alive_rev = st
            .alive
            .contains(chassis)
            .then(|| st.revs.get(&alive_rel(chassis)).copied())
            .flatten();
        effective_applied(
            self.get(chassis),
            st.applied.get(chassis).copied(),
            alive_rev,
        )
    }

    /// `st.chassis_list()` with the held acks applied.
    pub fn chassis_list(&self, st: &ClusterState) -> Vec<Chassis> {
        let mut list = st.chassis_list();
        for c in &mut list {
            c.applied_revision = self.applied(st, &c.name);
        }
        list
    }

    /// Wakes on every recorded ack.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn take_dirty(&self) -> BTreeMap<String, Ack> {
        std::mem::take(&mut self.lock().dirty)
    }

    fn has_dirty(&self) -> bool {
        !self.lock().dirty.is_empty()
    }

    /// Starts the background flush unless one is running (it then picks the new acks up).
    pub fn kick(self: &Arc<Self>, store: Arc<dyn IntentStore>, keys: Keys, max_ops: usize) {
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let table = self.clone();
        tokio::spawn(async move {
            loop {
                let dirty = table.take_dirty();
                if !dirty.is_empty() {
                    flush(store.as_ref(), &keys, &dirty, max_ops).await;
                    continue;
                }
                table.flushing.store(false, Ordering::Release);
                // An ack recorded between the take and the store above is not lost.
                if !table.has_dirty() || table.flushing.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        });
    }
}

/// Pure: the transactions that write `dirty` acks, each guarded by its chassis' alive key
/// still being the one the ack was made under (`alive`: chassis → (mod_revision, lease) of
/// the alive key now), at most `max_ops` compares and ops per transaction. Acks of
/// registrations that are gone are dropped.
pub fn flush_txns(
    keys: &Keys,
    dirty: &BTreeMap<String, Ack>,
    alive: &HashMap<String, (i64, i64)>,
    max_ops: usize,
) -> Vec<Txn> {
    let mut txns: Vec<Txn> = Vec::new();
    for (chassis, ack) in dirty {
        let Some(&(rev, lease)) = alive.get(chassis) else {
            continue;
        };
        if rev != ack.alive_rev {
            continue;
        }
        if txns
            .last()
            .is_none_or(|t| t.ops.len() >= max_ops.max(1) || t.compares.len() >= max_ops.max(1))
        {
            txns.push(Txn::default());
        }
        if let Some(t) = txns.last_mut() {
            t.compares
                .push(Compare::ModRevision(keys.alive(chassis), ack.alive_rev));
            t.ops.push(Op::Put {
                key: keys.applied(chassis),
                value: ack.applied.to_string().into_bytes(),
                lease,
            });
        }
    }
    txns
}

/// Writes `dirty` (see [`flush_txns`]); a batch whose guard fails is retried one ack per
/// transaction, so one re-registered chassis does not hold back the others. Errors are
/// logged: the next ack of that chassis writes again.
async fn flush(
    store: &dyn IntentStore,
    keys: &Keys,
    dirty: &BTreeMap<String, Ack>,
    max_ops: usize,
) {
    let started = std::time::Instant::now();
    let alive = match store.range(&keys.alive("")).await {
        Ok(r) => r
            .kvs
            .iter()
            .filter_map(|kv| {
                kv.key
                    .strip_prefix(&keys.alive(""))
                    .map(|c| (c.to_string(), (kv.mod_revision, kv.lease)))
            })
            .collect::<HashMap<_, _>>(),
        Err(e) => {
            tracing::warn!(error = %e, acks = dirty.len(), "ack flush: reading alive keys failed");
            return;
        }
    };
    for t in flush_txns(keys, dirty, &alive, max_ops) {
        match store.txn(t.clone()).await {
            Ok(r) if r.succeeded => {}
            Ok(_) => {
                for (c, o) in t.compares.into_iter().zip(t.ops) {
                    let one = Txn {
                        compares: vec![c],
                        ops: vec![o],
                    };
                    if let Err(e) = store.txn(one).await {
                        tracing::warn!(error = %e, "ack flush failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "ack flush failed"),
        }
    }
    crate::metrics::metrics()
        .ack_flush_seconds
        .observe(started.elapsed().as_secs_f64());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn held_ack_counts_only_under_its_registration() {
        let a = Some(Ack {
            applied: 10,
            alive_rev: 5,
        });
        assert_eq!(effective_applied(a, Some(7), Some(5)), 10);
        assert_eq!(effective_applied(a, Some(12), Some(5)), 12);
        // Re-registered (new alive key): only etcd counts.
        assert_eq!(effective_applied(a, Some(7), Some(6)), 7);
        // Not alive.
        assert_eq!(effective_applied(a, None, None), 0);
        assert_eq!(effective_applied(None, Some(3), Some(5)), 3);
    }

    #[test]
    fn record_keeps_the_newest_and_marks_dirty() {
        let t = AckTable::default();
        let rx = t.subscribe();
        assert!(t.record("hv1", 10, 5));
        assert!(
            !t.record("hv1", 9, 5),
            "older ack under the same registration"
        );
        assert!(!t.record("hv1", 10, 5));
        assert!(t.record("hv1", 3, 8), "a new registration starts over");
        assert_eq!(
            t.get("hv1"),
            Some(Ack {
                applied: 3,
                alive_rev: 8
            })
        );
        assert_eq!(*rx.borrow(), 2);
        let d = t.take_dirty();
        assert_eq!(d.len(), 1);
        assert!(!t.has_dirty());
    }

    #[test]
    fn applied_reads_the_cache_registration() {
        let keys = Keys::new("/w");
        let mut st = ClusterState::default();
        st.apply_put(&keys, &keys.alive("hv1"), b"", 5);
        st.apply_put(&keys, &keys.applied("hv1"), b"4", 6);
        let t = AckTable::default();
        assert_eq!(t.applied(&st, "hv1"), 4);
        t.record("hv1", 9, 5);
        assert_eq!(t.applied(&st, "hv1"), 9);
        // The agent re-registers: the held ack no longer counts.
        st.apply_put(&keys, &keys.alive("hv1"), b"", 7);
        assert_eq!(t.applied(&st, "hv1"), 4);
    }

    #[test]
    fn flush_batches_and_drops_stale_registrations() {
        let keys = Keys::new("/w");
        let mut dirty = BTreeMap::new();
        for i in 0..5 {
            dirty.insert(
                format!("hv{i}"),
                Ack {
                    applied: 100 + i,
                    alive_rev: 10 + i,
                },
            );
        }
        let mut alive = HashMap::new();
        for i in 0..5 {
            alive.insert(format!("hv{i}"), (10 + i, 1000 + i));
        }
        alive.insert("hv2".into(), (99, 1002)); // re-registered since its ack
        alive.remove("hv4"); // gone
        let txns = flush_txns(&keys, &dirty, &alive, 2);
        assert_eq!(txns.len(), 2, "{txns:?}");
        assert_eq!(txns[0].ops.len(), 2);
        assert_eq!(txns[1].ops.len(), 1);
        let all: Vec<_> = txns.iter().flat_map(|t| t.ops.clone()).collect();
        assert_eq!(
            all[2],
            Op::Put {
                key: keys.applied("hv3"),
                value: b"103".to_vec(),
                lease: 1003
            }
        );
        assert_eq!(
            txns[1].compares,
            vec![Compare::ModRevision(keys.alive("hv3"), 13)]
        );
        assert!(flush_txns(&keys, &dirty, &alive, 128).len() == 1);
    }
}
