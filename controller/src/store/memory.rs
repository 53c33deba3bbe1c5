//! An in-memory [`IntentStore`] that behaves like a single etcd member: revisions, atomic
//! transactions with compares, watches (with a bounded history), and leases that expire.
//! Nothing is persisted; the controller logs a warning when it runs on this store.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::{
    Compare, IntentStore, KeyValue, Op, RangeResult, StoreError, StoreResult, Txn, TxnResult,
    WatchBatch, WatchEvent, WatchStream,
};

/// How many events the store keeps for watches that start in the past.
const HISTORY: usize = 100_000;

struct Entry {
    value: Vec<u8>,
    mod_revision: i64,
    lease: i64,
}

struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: HashSet<String>,
}

struct Watcher {
    prefix: String,
    tx: mpsc::UnboundedSender<StoreResult<WatchBatch>>,
}

#[derive(Default)]
struct Inner {
    revision: i64,
    kvs: BTreeMap<String, Entry>,
    leases: HashMap<i64, Lease>,
    next_lease: i64,
    history: VecDeque<(i64, WatchEvent)>,
    /// Lowest revision whose events are all still in `history`.
    history_floor: i64,
    watchers: Vec<Watcher>,
}

/// The in-memory store. Cheap to clone (shared state).
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store at revision 1. When called inside a tokio runtime, a background task
    /// expires leases even when nobody calls the store.
    pub fn new() -> Self {
        let inner = Inner {
            revision: 1,
            history_floor: 1,
            next_lease: 1,
            ..Default::default()
        };
        let store = MemoryStore {
            inner: Arc::new(Mutex::new(inner)),
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak: Weak<Mutex<Inner>> = Arc::downgrade(&store.inner);
            handle.spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let Some(inner) = weak.upgrade() else { break };
                    let mut g = lock(&inner);
                    g.expire(Instant::now());
                }
            });
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut g = lock(&self.inner);
        g.expire(Instant::now());
        g
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        let expired: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.revoke(id);
        }
    }

    fn revoke(&mut self, id: i64) {
        if let Some(lease) = self.leases.remove(&id) {
            let ops: Vec<Op> = lease.keys.into_iter().map(Op::Delete).collect();
            self.apply(&ops);
        }
    }

    fn check(&self, c: &Compare) -> bool {
        match c {
            Compare::ModRevision(k, rev) => {
                self.kvs.get(k).map(|e| e.mod_revision).unwrap_or(0) == *rev
            }
            Compare::Value(k, v) => self.kvs.get(k).is_some_and(|e| &e.value == v),
        }
    }

    fn delete_key(&mut self, key: &str, rev: i64, events: &mut Vec<WatchEvent>) {
        if let Some(e) = self.kvs.remove(key) {
            if let Some(l) = self.leases.get_mut(&e.lease) {
                l.keys.remove(key);
            }
            events.push(WatchEvent::Delete {
                key: key.to_string(),
                revision: rev,
            });
        }
    }

    /// Applies ops at the next revision (only bumped if something changed); notifies watchers.
    fn apply(&mut self, ops: &[Op]) {
        let rev = self.revision + 1;
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    if let Some(old) = self.kvs.get(key) {
                        if old.lease != *lease {
                            let old_lease = old.lease;
                            if let Some(l) = self.leases.get_mut(&old_lease) {
                                l.keys.remove(key);
                            }
                        }
                    }
                    if let Some(l) = self.leases.get_mut(lease) {
                        l.keys.insert(key.clone());
                    }
                    self.kvs.insert(
                        key.clone(),
                        Entry {
                            value: value.clone(),
                            mod_revision: rev,
                            lease: *lease,
                        },
                    );
                    events.push(WatchEvent::Put(KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        mod_revision: rev,
                        lease: *lease,
                    }));
                }
                Op::Delete(key) => self.delete_key(key, rev, &mut events),
                Op::DeletePrefix(prefix) => {
                    let keys: Vec<String> = self
                        .kvs
                        .range(prefix.clone()..)
                        .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in keys {
                        self.delete_key(&k, rev, &mut events);
                    }
                }
            }
        }
        if events.is_empty() {
            return;
        }
        self.revision = rev;
        for ev in &events {
            self.history.push_back((rev, ev.clone()));
        }
        while self.history.len() > HISTORY {
            if let Some((r, _)) = self.history.pop_front() {
                self.history_floor = r + 1;
            }
        }
        self.watchers.retain(|w| {
            let evs: Vec<WatchEvent> = events
                .iter()
                .filter(|e| event_key(e).starts_with(w.prefix.as_str()))
                .cloned()
                .collect();
            if evs.is_empty() {
                return !w.tx.is_closed();
            }
            w.tx.send(Ok(WatchBatch {
                revision: rev,
                events: evs,
            }))
            .is_ok()
        });
    }
}

fn event_key(e: &WatchEvent) -> &str {
    match e {
        WatchEvent::Put(kv) => &kv.key,
        WatchEvent::Delete { key, .. } => key,
    }
}

#[tonic::async_trait]
impl IntentStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn range(&self, prefix: &str) -> StoreResult<RangeResult> {
        let g = self.lock();
        let kvs = g
            .kvs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| KeyValue {
                key: k.clone(),
                value: e.value.clone(),
                mod_revision: e.mod_revision,
                lease: e.lease,
            })
            .collect();
        Ok(RangeResult {
            kvs,
            revision: g.revision,
        })
    }

    async fn get(&self, key: &str) -> StoreResult<(Option<KeyValue>, i64)> {
        let g = self.lock();
        let kv = g.kvs.get(key).map(|e| KeyValue {
            key: key.to_string(),
            value: e.value.clone(),
            mod_revision: e.mod_revision,
            lease: e.lease,
        });
        Ok((kv, g.revision))
    }

    async fn txn(&self, txn: Txn) -> StoreResult<TxnResult> {
        let mut g = self.lock();
        for op in &txn.ops {
            if let Op::Put { lease, .. } = op {
                if *lease != 0 && !g.leases.contains_key(lease) {
                    return Err(StoreError::Other(format!("lease {lease} not found")));
                }
            }
        }
        if !txn.compares.iter().all(|c| g.check(c)) {
            return Ok(TxnResult {
                succeeded: false,
                revision: g.revision,
            });
        }
        g.apply(&txn.ops);
        Ok(TxnResult {
            succeeded: true,
            revision: g.revision,
        })
    }

    async fn watch(&self, prefix: &str, start_revision: i64) -> StoreResult<WatchStream> {
        let mut g = self.lock();
        if start_revision < g.history_floor {
            return Err(StoreError::Compacted(start_revision));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // Replay history from start_revision, grouped by revision.
        let mut batch: Option<WatchBatch> = None;
        for (rev, ev) in g.history.iter() {
            if *rev < start_revision || !event_key(ev).starts_with(prefix) {
                continue;
            }
            match &mut batch {
                Some(b) if b.revision == *rev => b.events.push(ev.clone()),
                _ => {
                    if let Some(b) = batch.take() {
                        let _ = tx.send(Ok(b));
                    }
                    batch = Some(WatchBatch {
                        revision: *rev,
                        events: vec![ev.clone()],
                    });
                }
            }
        }
        if let Some(b) = batch {
            let _ = tx.send(Ok(b));
        }
        g.watchers.push(Watcher {
            prefix: prefix.to_string(),
            tx,
        });
        Ok(UnboundedReceiverStream::new(rx).boxed())
    }

    async fn lease_grant(&self, ttl_secs: i64) -> StoreResult<i64> {
        let mut g = self.lock();
        let id = g.next_lease;
        g.next_lease += 1;
        let ttl = Duration::from_secs(ttl_secs.max(1) as u64);
        g.leases.insert(
            id,
            Lease {
                ttl,
                deadline: Instant::now() + ttl,
                keys: HashSet::new(),
            },
        );
        Ok(id)
    }

    async fn lease_keep_alive(&self, id: i64) -> StoreResult<bool> {
        let mut g = self.lock();
        match g.leases.get_mut(&id) {
            Some(l) => {
                l.deadline = Instant::now() + l.ttl;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn lease_revoke(&self, id: i64) -> StoreResult<()> {
        let mut g = self.lock();
        g.revoke(id);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn txn_compare_and_watch() {
        let s = MemoryStore::new();
        let r = s
            .txn(Txn {
                compares: vec![Compare::ModRevision("/a".into(), 0)],
                ops: vec![Op::put("/a", b"1".to_vec()), Op::put("/b", b"2".to_vec())],
            })
            .await
            .unwrap();
        assert!(r.succeeded);
        assert_eq!(r.revision, 2);
        let r2 = s
            .txn(Txn {
                compares: vec![Compare::ModRevision("/a".into(), 0)],
                ops: vec![Op::put("/c", b"3".to_vec())],
            })
            .await
            .unwrap();
        assert!(!r2.succeeded);
        assert_eq!(s.range("/").await.unwrap().kvs.len(), 2);
        let mut w = s.watch("/", 1).await.unwrap();
        let b = w.next().await.unwrap().unwrap();
        assert_eq!(b.revision, 2);
        assert_eq!(b.events.len(), 2);
        s.txn(Txn {
            compares: vec![Compare::Value("/a".into(), b"1".to_vec())],
            ops: vec![Op::DeletePrefix("/".into())],
        })
        .await
        .unwrap();
        let b = w.next().await.unwrap().unwrap();
        assert_eq!(b.revision, 3);
        assert!(matches!(b.events[0], WatchEvent::Delete { .. }));
    }

    #[tokio::test]
    async fn lease_revoke_deletes_keys() {
        let s = MemoryStore::new();
        let l = s.lease_grant(10).await.unwrap();
        s.txn(Txn {
            compares: vec![],
            ops: vec![Op::Put {
                key: "/x".into(),
                value: vec![],
                lease: l,
            }],
        })
        .await
        .unwrap();
        assert!(s.get("/x").await.unwrap().0.is_some());
        assert!(s.lease_keep_alive(l).await.unwrap());
        s.lease_revoke(l).await.unwrap();
        assert!(s.get("/x").await.unwrap().0.is_none());
        assert!(!s.lease_keep_alive(l).await.unwrap());
    }
}
