//! The controller's in-memory copy of everything under the prefix: one range read, then a
//! watch from the next revision, re-established (with a fresh read) whenever it breaks.
//! Published through a `tokio::sync::watch` channel; southbound streams and `--wait=hv` read it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use crate::state::{ClusterState, Keys};
use crate::store::{IntentStore, WatchEvent};

/// What the cache publishes.
#[derive(Debug, Clone, Default)]
pub struct CacheSnapshot {
    /// True while the watch is established and the state is current.
    pub connected: bool,
    /// The latest state (kept, possibly stale, while disconnected).
    pub state: Arc<ClusterState>,
    /// Last error seen while disconnected.
    pub error: Option<String>,
}

/// Starts the cache task; returns the receiver and the task handle (abort it to stop).
pub fn spawn(
    store: Arc<dyn IntentStore>,
    keys: Keys,
) -> (
    watch::Receiver<Arc<CacheSnapshot>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = watch::channel(Arc::new(CacheSnapshot::default()));
    let handle = tokio::spawn(run(store, keys, tx));
    (rx, handle)
}

async fn run(store: Arc<dyn IntentStore>, keys: Keys, tx: watch::Sender<Arc<CacheSnapshot>>) {
    let mut delay = Duration::from_millis(200);
    // Logged once per outage (including "never connected yet").
    let down_logged = AtomicBool::new(false);
    let disconnected = |tx: &watch::Sender<Arc<CacheSnapshot>>, err: String| {
        let state = tx.borrow().state.clone();
        if !down_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %err, "store unreachable; calls answer Unavailable, retrying in the background");
        }
        tx.send_replace(Arc::new(CacheSnapshot {
            connected: false,
            state,
            error: Some(err),
        }));
    };
    loop {
        if tx.is_closed() {
            return;
        }
        let range = match store.range(keys.root()).await {
            Ok(r) => r,
            Err(e) => {
                disconnected(&tx, e.to_string());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let mut state = ClusterState::from_kvs(&keys, &range.kvs, range.revision);
        // After a (re)load we cannot tell what changed: treat it as an intent change.
        state.intent_revision = state.revision;
        let mut watch = match store.watch(keys.root(), range.revision + 1).await {
            Ok(w) => w,
            Err(e) => {
                disconnected(&tx, e.to_string());
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        delay = Duration::from_millis(200);
        down_logged.store(false, Ordering::Relaxed);
        tracing::info!(
            revision = state.revision,
            switches = state.switches.len(),
            ports = state.ports.len(),
            chassis = state.chassis.len(),
            "cache loaded"
        );
        crate::metrics::applied_up_to(state.revision);
        let mut shared = Arc::new(state);
        tx.send_replace(Arc::new(CacheSnapshot {
            connected: true,
            state: shared.clone(),
            error: None,
        }));
        loop {
            let item = watch.next().await;
            let batch = match item {
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    disconnected(&tx, e.to_string());
                    break;
                }
                None => {
                    disconnected(&tx, "watch ended".into());
                    break;
                }
            };
            let state = Arc::make_mut(&mut shared);
            for ev in &batch.events {
                match ev {
                    WatchEvent::Put(kv) => {
                        state.apply_put(&keys, &kv.key, &kv.value, kv.mod_revision);
                    }
                    WatchEvent::Delete { key, revision } => {
                        state.apply_delete(&keys, key, *revision);
                    }
                }
            }
            state.revision = state.revision.max(batch.revision);
            crate::metrics::applied_up_to(state.revision);
            crate::metrics::chassis_lag(state);
            tx.send_replace(Arc::new(CacheSnapshot {
                connected: true,
                state: shared.clone(),
                error: None,
            }));
            if tx.is_closed() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
