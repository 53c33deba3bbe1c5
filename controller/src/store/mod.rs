//! The intent store: a small etcd-shaped key/value interface (range reads, one-transaction
//! writes with compares, watches, leases) with two implementations:
//! [`etcd::EtcdStore`] (production) and [`memory::MemoryStore`] (dev runs, nothing persisted).
//!
//! All intent logic (preconditions, claims, IPAM) lives above this trait in `intent.rs`, so it
//! is the same code whichever store runs underneath. Keys are full keys including the prefix.

pub mod etcd;
pub mod memory;

use futures::stream::BoxStream;

/// A store failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached (etcd down, timeout).
    #[error("etcd unavailable: {0}")]
    Unavailable(String),
    /// The backend refused a transaction as too large (etcd's `--max-txn-ops` or
    /// `--max-request-bytes`).
    #[error("transaction too large for etcd: {0}")]
    TxnTooLarge(String),
    /// A watch asked for a revision that was compacted away.
    #[error("watch revision {0} compacted")]
    Compacted(i64),
    /// Anything else the backend reported.
    #[error("store error: {0}")]
    Other(String),
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// One key with its value and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key.
    pub key: String,
    /// Raw value.
    pub value: Vec<u8>,
    /// Revision of the last write to this key.
    pub mod_revision: i64,
    /// Lease the key is attached to (0 = none).
    pub lease: i64,
}

/// Result of a range read.
#[derive(Debug, Clone, Default)]
pub struct RangeResult {
    /// Keys in ascending order.
    pub kvs: Vec<KeyValue>,
    /// Store revision the read was served at.
    pub revision: i64,
}

/// A transaction precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's mod_revision equals this value (0 = the key does not exist).
    ModRevision(String, i64),
    /// The key exists and holds exactly this value.
    Value(String, Vec<u8>),
}

/// A transaction operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Put a key, attached to a lease when `lease != 0`.
    Put {
        /// Full key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// Lease id or 0.
        lease: i64,
    },
    /// Delete one key.
    Delete(String),
    /// Delete every key starting with this prefix.
    DeletePrefix(String),
}

impl Op {
    /// A put without lease.
    pub fn put(key: impl Into<String>, value: Vec<u8>) -> Op {
        Op::Put {
            key: key.into(),
            value,
            lease: 0,
        }
    }
}

/// A transaction: if every compare holds, apply every op atomically; otherwise nothing.
#[derive(Debug, Clone, Default)]
pub struct Txn {
    /// Preconditions.
    pub compares: Vec<Compare>,
    /// Writes.
    pub ops: Vec<Op>,
}

/// Outcome of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether the compares held and the ops were applied.
    pub succeeded: bool,
    /// Store revision after the transaction.
    pub revision: i64,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Key created or updated.
    Put(KeyValue),
    /// Key deleted (at `revision`).
    Delete {
        /// Full key.
        key: String,
        /// Revision of the delete.
        revision: i64,
    },
}

/// The events of one or more revisions, delivered together.
#[derive(Debug, Clone, Default)]
pub struct WatchBatch {
    /// Store revision after these events.
    pub revision: i64,
    /// Events in revision order.
    pub events: Vec<WatchEvent>,
}

/// A stream of watch batches; ends or yields an error when the watch breaks.
pub type WatchStream = BoxStream<'static, StoreResult<WatchBatch>>;

/// The etcd-shaped store the controller keeps its intent and status in.
#[tonic::async_trait]
pub trait IntentStore: Send + Sync + 'static {
    /// Short name for logs ("etcd", "memory").
    fn kind(&self) -> &'static str;
    /// Every key starting with `prefix`, in key order.
    async fn range(&self, prefix: &str) -> StoreResult<RangeResult>;
    /// One key.
    async fn get(&self, key: &str) -> StoreResult<(Option<KeyValue>, i64)>;
    /// Apply a transaction.
    async fn txn(&self, txn: Txn) -> StoreResult<TxnResult>;
    /// Watch every key under `prefix` from `start_revision` (inclusive).
    async fn watch(&self, prefix: &str, start_revision: i64) -> StoreResult<WatchStream>;
    /// Grant a lease with a TTL in seconds; returns its id.
    async fn lease_grant(&self, ttl_secs: i64) -> StoreResult<i64>;
    /// Refresh a lease once; `Ok(false)` when the lease no longer exists.
    async fn lease_keep_alive(&self, id: i64) -> StoreResult<bool>;
    /// Revoke a lease (deletes its keys). Revoking an unknown lease is not an error.
    async fn lease_revoke(&self, id: i64) -> StoreResult<()>;
}

/// The first key after every key starting with `prefix` (etcd's range_end for a prefix).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
