//! [`IntentStore`] on etcd v3 (etcd-client). The client connects lazily and is rebuilt after
//! a transport failure; every call is bounded by a timeout, so an unreachable etcd turns into
//! [`StoreError::Unavailable`] instead of a hang.

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, PutOptions, Txn as EtcdTxn, TxnOp, WatchOptions,
};
use futures::StreamExt;
use tokio::sync::Mutex;

use super::{
    Compare, IntentStore, KeyValue, Op, RangeResult, StoreError, StoreResult, Txn, TxnResult,
    WatchBatch, WatchEvent, WatchStream,
};

/// Connection settings for [`EtcdStore`].
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Upper bound for one etcd call (and for connecting).
    pub timeout: Duration,
    /// TLS to etcd (CA, client certificate): `--etcd-ca/--etcd-cert/--etcd-key`. The
    /// endpoints are then dialled as `https://`.
    pub tls: Option<etcd_client::TlsOptions>,
}

/// The etcd-backed store.
pub struct EtcdStore {
    config: EtcdConfig,
    client: Mutex<Option<Client>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl EtcdStore {
    /// Creates the store; it does not connect until the first call.
    pub fn new(config: EtcdConfig) -> Self {
        EtcdStore {
            config,
            client: Mutex::new(None),
        }
    }

    async fn client(&self) -> StoreResult<Client> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let opts = ConnectOptions::new()
            .with_connect_timeout(self.config.timeout)
            .with_timeout(self.config.timeout)
            .with_keep_alive(Duration::from_secs(2), self.config.timeout);
        let (opts, endpoints) = match &self.config.tls {
            Some(tls) => (
                opts.with_tls(tls.clone()),
                self.config
                    .endpoints
                    .iter()
                    .map(|e| match e.strip_prefix("http://") {
                        Some(rest) => format!("https://{rest}"),
                        None => e.clone(),
                    })
                    .collect(),
            ),
            None => (opts, self.config.endpoints.clone()),
        };
        let fut = Client::connect(endpoints, Some(opts));
        let client = tokio::time::timeout(self.config.timeout, fut)
            .await
            .map_err(|_| {
                unavailable(format!(
                    "connecting to {} timed out",
                    self.config.endpoints.join(",")
                ))
            })?
            .map_err(|e| {
                unavailable(format!(
                    "connecting to {}: {e}",
                    self.config.endpoints.join(",")
                ))
            })?;
        *guard = Some(client.clone());
        Ok(client)
    }

    async fn reset(&self) {
        *self.client.lock().await = None;
    }

    /// Runs one etcd call with the timeout; on failure drops the client so the next call
    /// reconnects. A call that could not even connect (the member it was routed to is down:
    /// nothing was sent, so even a transaction is safe to repeat) is tried again, once per
    /// endpoint, within the same timeout, so a cluster that lost a member keeps answering.
    async fn call<T, F, Fut>(&self, what: &str, f: F) -> StoreResult<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let attempts = self.config.endpoints.len().max(1) + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let client = self.client().await?;
            match tokio::time::timeout_at(deadline, f(client)).await {
                Ok(Ok(v)) => {
                    crate::metrics::etcd_call(what, started);
                    let took = started.elapsed();
                    if took >= SLOW_CALL {
                        tracing::warn!(what, took_ms = took.as_millis() as u64, "slow etcd call");
                    }
                    return Ok(v);
                }
                Ok(Err(e)) if attempt < attempts && not_sent(&e) => {
                    tracing::debug!(what, attempt, error = %e, "etcd member unreachable; trying another");
                    continue;
                }
                Ok(Err(e)) => {
                    let err = map_err(what, e);
                    if matches!(err, StoreError::Unavailable(_)) {
                        self.reset().await;
                    }
                    return Err(err);
                }
                Err(_) => {
                    self.reset().await;
                    return Err(unavailable(format!(
                        "{what}: no answer from {} within {:?}",
                        self.config.endpoints.join(","),
                        self.config.timeout
                    )));
                }
            }
        }
    }
}

/// Whether a call failed before anything reached etcd (the connection to the member it was
/// routed to could not be made).
fn not_sent(e: &etcd_client::Error) -> bool {
    let text = match e {
        etcd_client::Error::GRpcStatus(s) => s.message().to_string(),
        other => other.to_string(),
    };
    text.contains("tcp connect error") || text.contains("Connection refused")
}

/// Calls slower than this are logged: the first thing to look at when writes are slow.
const SLOW_CALL: Duration = Duration::from_millis(100);

fn map_err(what: &str, e: etcd_client::Error) -> StoreError {
    match e {
        etcd_client::Error::GRpcStatus(s)
            if s.message().contains("too many operations in txn request")
                || s.message().contains("request is too large") =>
        {
            StoreError::TxnTooLarge(format!("{what}: {}", s.message()))
        }
        etcd_client::Error::GRpcStatus(s) => match s.code() {
            tonic::Code::InvalidArgument
            | tonic::Code::FailedPrecondition
            | tonic::Code::NotFound
            | tonic::Code::OutOfRange => StoreError::Other(format!("{what}: {}", s.message())),
            _ => unavailable(format!("{what}: {}", s.message())),
        },
        other => unavailable(format!("{what}: {other}")),
    }
}

fn convert_kv(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
        lease: kv.lease(),
    }
}

#[tonic::async_trait]
impl IntentStore for EtcdStore {
    fn kind(&self) -> &'static str {
        "etcd"
    }

    async fn range(&self, prefix: &str) -> StoreResult<RangeResult> {
        let key = prefix.to_string();
        let resp = self
            .call("range", |mut c| {
                let key = key.clone();
                async move { c.get(key, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        Ok(RangeResult {
            kvs: resp.kvs().iter().map(convert_kv).collect(),
            revision: resp.header().map(|h| h.revision()).unwrap_or(0),
        })
    }

    async fn get(&self, key: &str) -> StoreResult<(Option<KeyValue>, i64)> {
        let k = key.to_string();
        let resp = self
            .call("get", |mut c| {
                let k = k.clone();
                async move { c.get(k, None).await }
            })
            .await?;
        Ok((
            resp.kvs().first().map(convert_kv),
            resp.header().map(|h| h.revision()).unwrap_or(0),
        ))
    }

    async fn txn(&self, txn: Txn) -> StoreResult<TxnResult> {
        let compares: Vec<EtcdCompare> = txn
            .compares
            .into_iter()
            .map(|c| match c {
                Compare::ModRevision(k, rev) => EtcdCompare::mod_revision(k, CompareOp::Equal, rev),
                Compare::Value(k, v) => EtcdCompare::value(k, CompareOp::Equal, v),
            })
            .collect();
        let ops: Vec<TxnOp> = txn
            .ops
            .into_iter()
            .map(|o| match o {
                Op::Put { key, value, lease } => {
                    let opts = (lease != 0).then(|| PutOptions::new().with_lease(lease));
                    TxnOp::put(key, value, opts)
                }
                Op::Delete(key) => TxnOp::delete(key, None),
                Op::DeletePrefix(p) => TxnOp::delete(p, Some(DeleteOptions::new().with_prefix())),
            })
            .collect();
        let t = EtcdTxn::new().when(compares).and_then(ops);
        let resp = self
            .call("txn", |mut c| {
                let t = t.clone();
                async move { c.txn(t).await }
            })
            .await?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        if resp.succeeded() {
            crate::metrics::wrote(revision);
        }
        Ok(TxnResult {
            succeeded: resp.succeeded(),
            revision,
        })
    }

    async fn watch(&self, prefix: &str, start_revision: i64) -> StoreResult<WatchStream> {
        let key = prefix.to_string();
        let stream = self
            .call("watch", |mut c| {
                let key = key.clone();
                async move {
                    c.watch(
                        key,
                        Some(
                            WatchOptions::new()
                                .with_prefix()
                                .with_start_revision(start_revision)
                                .with_progress_notify(),
                        ),
                    )
                    .await
                }
            })
            .await?;
        let (sender, responses) = stream.split();
        let s = futures::stream::unfold(
            (sender, responses, false),
            |(sender, mut responses, done)| async move {
                if done {
                    return None;
                }
                loop {
                    match responses.message().await {
                        Ok(Some(resp)) => {
                            if resp.compact_revision() > 0 {
                                let item = Err(StoreError::Compacted(resp.compact_revision()));
                                return Some((item, (sender, responses, true)));
                            }
                            if resp.canceled() {
                                let item = Err(unavailable(format!(
                                    "watch canceled: {}",
                                    resp.cancel_reason()
                                )));
                                return Some((item, (sender, responses, true)));
                            }
                            let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
                            let events: Vec<WatchEvent> = resp
                                .events()
                                .iter()
                                .filter_map(|ev| {
                                    let kv = ev.kv()?;
                                    Some(match ev.event_type() {
                                        EventType::Put => WatchEvent::Put(convert_kv(kv)),
                                        EventType::Delete => WatchEvent::Delete {
                                            key: String::from_utf8_lossy(kv.key()).into_owned(),
                                            revision: kv.mod_revision(),
                                        },
                                    })
                                })
                                .collect();
                            if events.is_empty() {
                                // created / progress notification: nothing to apply
                                continue;
                            }
                            return Some((
                                Ok(WatchBatch { revision, events }),
                                (sender, responses, false),
                            ));
                        }
                        Ok(None) => {
                            let item = Err(unavailable("watch stream closed"));
                            return Some((item, (sender, responses, true)));
                        }
                        Err(e) => {
                            let item = Err(map_err("watch", e));
                            return Some((item, (sender, responses, true)));
                        }
                    }
                }
            },
        );
        Ok(s.boxed())
    }

    async fn lease_grant(&self, ttl_secs: i64) -> StoreResult<i64> {
        let resp = self
            .call("lease grant", |mut c| async move {
                c.lease_grant(ttl_secs, None).await
            })
            .await?;
        Ok(resp.id())
    }

    async fn lease_keep_alive(&self, id: i64) -> StoreResult<bool> {
        let r = self
            .call("lease keep-alive", |mut c| async move {
                match c.lease_keep_alive(id).await {
                    Ok(_) => Ok(true),
                    Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(r)
    }

    async fn lease_revoke(&self, id: i64) -> StoreResult<()> {
        let r = self
            .call("lease revoke", |mut c| async move {
                match c.lease_revoke(id).await {
                    Ok(_) => Ok(()),
                    Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::NotFound => {
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            })
            .await;
        match r {
            Err(StoreError::Other(m)) if m.contains("not found") => Ok(()),
            other => other,
        }
    }
}
