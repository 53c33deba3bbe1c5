//! An OVSDB connection: [`Client::connect`] to `unix:PATH` or `tcp:IP:PORT`, then
//! [`Client::list_dbs`], [`Client::get_schema`], [`Client::transact`], [`Client::monitor`]
//! (`monitor_cond`, falling back to `monitor`), [`Client::cancel`] and [`Client::echo`].
//!
//! Each connection runs two tasks: a reader that splits frames ([`FrameDecoder`]), answers
//! the server's `echo` requests, routes responses to their callers by id (any order) and
//! monitor notifications to their channels; and a writer fed by a channel. A probe task sends
//! our own `echo` when nothing was received for `inactivity_probe` and closes the connection
//! if nothing arrives in another interval. When the connection ends (EOF, I/O error,
//! malformed stream, probe failure, or the last [`Client`] clone dropped) every pending call
//! fails with [`ClientError::Disconnected`] and every monitor channel closes. A client does
//! not reconnect; [`crate::session`] does.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::atom::snippet;
use crate::jsonrpc::{FrameDecoder, JsonRpcError, Message, DEFAULT_MAX_FRAME_BYTES};
use crate::monitor::{DbSchema, MonitorError, MonitorRequest, UpdateFormat};
use crate::ops::{check_transact_reply, TransactError};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    #[error("invalid OVSDB endpoint {value:?}: expected unix:PATH or tcp:IP:PORT")]
    BadEndpoint { value: String },
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("OVSDB connection closed: {reason}")]
    Disconnected { reason: String },
    #[error("{method} timed out after {after:?}")]
    Timeout { method: String, after: Duration },
    #[error("{method} failed: {error}")]
    Rpc { method: String, error: String },
    #[error("unexpected {method} reply: {value}")]
    BadReply { method: String, value: String },
    #[error(transparent)]
    Transact(#[from] TransactError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl FromStr for Endpoint {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ClientError::BadEndpoint {
            value: s.to_string(),
        };
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(bad());
            }
            Ok(Endpoint::Unix(PathBuf::from(p)))
        } else if let Some(a) = s.strip_prefix("tcp:") {
            a.parse().map(Endpoint::Tcp).map_err(|_| bad())
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Send an `echo` after this long without receiving anything, and give up after another
    /// such interval of silence. `None` disables probing.
    pub inactivity_probe: Option<Duration>,
    /// Fail a call whose reply has not come after this long. `None` waits forever.
    pub request_timeout: Option<Duration>,
    /// Largest accepted message.
    pub max_frame_bytes: usize,
    /// Timeout for establishing the connection.
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            inactivity_probe: Some(Duration::from_secs(5)),
            request_timeout: Some(Duration::from_secs(60)),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A notification for one monitor.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorMessage {
    /// `<table-updates>` (for [`UpdateFormat::Update`]) or `<table-updates2>`.
    Update(Value),
    /// The server cancelled the monitor (`monitor_canceled`, e.g. the database was removed).
    Canceled,
}

/// An established monitor. `updates` closes when the connection ends or after
/// [`MonitorMessage::Canceled`].
#[derive(Debug)]
pub struct Monitor {
    pub id: String,
    pub db: String,
    pub format: UpdateFormat,
    /// The initial contents, in `format`.
    pub initial: Value,
    pub updates: mpsc::UnboundedReceiver<MonitorMessage>,
}

type Pending = oneshot::Sender<Result<Value, ClientError>>;

struct Shared {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    pending: Mutex<HashMap<u64, (String, Pending)>>,
    monitors: Mutex<HashMap<String, mpsc::UnboundedSender<MonitorMessage>>>,
    next_id: AtomicU64,
    next_monitor: AtomicU64,
    /// `Some(reason)` once closed.
    closed: watch::Sender<Option<String>>,
    /// Milliseconds since `epoch` at the last received frame.
    last_rx_ms: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn close(&self, reason: String) {
        let first = self.closed.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(reason.clone());
                true
            } else {
                false
            }
        });
        if first {
            debug!(%reason, "ovsdb connection closed");
        }
        let pending: Vec<_> = match self.pending.lock() {
            Ok(mut p) => p.drain().collect(),
            Err(_) => Vec::new(),
        };
        for (_, (_, tx)) in pending {
            let _ = tx.send(Err(ClientError::Disconnected {
                reason: reason.clone(),
            }));
        }
        if let Ok(mut m) = self.monitors.lock() {
            m.clear();
        }
    }

    fn send(&self, msg: &Message) -> Result<(), ClientError> {
        if let Some(reason) = self.closed.borrow().clone() {
            return Err(ClientError::Disconnected { reason });
        }
        self.writer
            .send(msg.to_bytes())
            .map_err(|_| ClientError::Disconnected {
                reason: "writer stopped".into(),
            })
    }

    fn touch(&self) {
        self.last_rx_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

struct Handle {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    config: ClientConfig,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close("client dropped".into());
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A cheap-to-clone handle on one OVSDB connection.
#[derive(Clone)]
pub struct Client {
    h: Arc<Handle>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("closed", &self.h.shared.closed.borrow().clone())
            .finish()
    }
}

impl Client {
    /// Connects to `endpoint` and starts the connection's tasks.
    pub async fn connect(endpoint: &Endpoint, config: ClientConfig) -> Result<Client, ClientError> {
        let err = |e: std::io::Error| ClientError::Connect {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        };
        let timeout = config.connect_timeout;
        let fut = async {
            match endpoint {
                Endpoint::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p).await.map_err(err)?;
                    Ok::<_, ClientError>(Client::from_stream(s, config.clone()))
                }
                Endpoint::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a).await.map_err(err)?;
                    let _ = s.set_nodelay(true);
                    Ok(Client::from_stream(s, config.clone()))
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ClientError::Connect {
                endpoint: endpoint.to_string(),
                reason: format!("timed out after {timeout:?}"),
            })?
    }

    /// Runs the protocol over any byte stream (used by tests with in-memory/socketpair
    /// streams).
    pub fn from_stream<S>(stream: S, config: ClientConfig) -> Client
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        let (wtx, wrx) = mpsc::unbounded_channel();
        let (closed, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            writer: wtx,
            pending: Mutex::new(HashMap::new()),
            monitors: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            next_monitor: AtomicU64::new(1),
            closed,
            last_rx_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let mut tasks = vec![
            tokio::spawn(reader_task(rd, shared.clone(), config.max_frame_bytes)),
            tokio::spawn(writer_task(wr, wrx, shared.clone())),
        ];
        if let Some(interval) = config.inactivity_probe {
            tasks.push(tokio::spawn(probe_task(shared.clone(), interval)));
        }
        Client {
            h: Arc::new(Handle {
                shared,
                tasks,
                config,
            }),
        }
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.h.shared.closed.borrow().is_some()
    }

    /// Resolves with the reason once the connection ends.
    pub async fn closed(&self) -> String {
        let mut rx = self.h.shared.closed.subscribe();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return "connection dropped".into();
            }
        }
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.h.shared.close("closed by client".into());
    }

    /// Sends a request and waits for its reply; an `error` reply is [`ClientError::Rpc`].
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let shared = &self.h.shared;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = shared.pending.lock() {
            p.insert(id, (method.to_string(), tx));
        }
        let msg = Message::Request {
            id: json!(id),
            method: method.to_string(),
            params,
        };
        if let Err(e) = shared.send(&msg) {
            if let Ok(mut p) = shared.pending.lock() {
                p.remove(&id);
            }
            return Err(e);
        }
        let res = match self.h.config.request_timeout {
            Some(t) => match tokio::time::timeout(t, rx).await {
                Ok(r) => r,
                Err(_) => {
                    if let Ok(mut p) = shared.pending.lock() {
                        p.remove(&id);
                    }
                    return Err(ClientError::Timeout {
                        method: method.to_string(),
                        after: t,
                    });
                }
            },
            None => rx.await,
        };
        res.unwrap_or_else(|_| {
            Err(ClientError::Disconnected {
                reason: "connection task ended".into(),
            })
        })
    }

    /// `echo`: round trip, returns what the server echoed.
    pub async fn echo(&self) -> Result<Value, ClientError> {
        self.call("echo", json!([])).await
    }

    /// `list_dbs`
    pub async fn list_dbs(&self) -> Result<Vec<String>, ClientError> {
        let v = self.call("list_dbs", json!([])).await?;
        let bad = || ClientError::BadReply {
            method: "list_dbs".into(),
            value: snippet(&v),
        };
        v.as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|d| d.as_str().map(str::to_owned).ok_or_else(bad))
            .collect()
    }

    /// `get_schema`, raw JSON.
    pub async fn get_schema_json(&self, db: &str) -> Result<Value, ClientError> {
        self.call("get_schema", json!([db])).await
    }

    /// `get_schema`, parsed to what [`crate::monitor::Replica`] needs.
    pub async fn get_schema(&self, db: &str) -> Result<DbSchema, ClientError> {
        let v = self.get_schema_json(db).await?;
        Ok(DbSchema::from_json(&v)?)
    }

    /// `transact`: returns one result per op, or [`ClientError::Transact`] naming the
    /// failed op.
    pub async fn transact(&self, db: &str, ops: Vec<Value>) -> Result<Vec<Value>, ClientError> {
        let mut params = Vec::with_capacity(ops.len() + 1);
        params.push(json!(db));
        params.extend(ops.iter().cloned());
        let reply = self.call("transact", Value::Array(params)).await?;
        Ok(check_transact_reply(&ops, reply)?)
    }

    /// Starts a monitor with `monitor_cond` (update2 diffs), or with `monitor` if the server
    /// does not know `monitor_cond`. Updates that arrive after the reply are queued on
    /// [`Monitor::updates`] in order.
    pub async fn monitor(
        &self,
        db: &str,
        tables: &BTreeMap<String, MonitorRequest>,
    ) -> Result<Monitor, ClientError> {
        match self.monitor_with(db, tables, UpdateFormat::Update2).await {
            Err(ClientError::Rpc { error, .. }) if error.contains("unknown method") => {
                debug!("server has no monitor_cond; using monitor");
                self.monitor_with(db, tables, UpdateFormat::Update).await
            }
            other => other,
        }
    }

    /// Starts a monitor with the given method: `monitor_cond` for
    /// [`UpdateFormat::Update2`], `monitor` for [`UpdateFormat::Update`].
    pub async fn monitor_with(
        &self,
        db: &str,
        tables: &BTreeMap<String, MonitorRequest>,
        format: UpdateFormat,
    ) -> Result<Monitor, ClientError> {
        let shared = &self.h.shared;
        let id = format!(
            "weft-{}",
            shared.next_monitor.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = mpsc::unbounded_channel();
        // Register before asking, so no notification after the reply can be missed.
        if let Ok(mut m) = shared.monitors.lock() {
            m.insert(id.clone(), tx);
        }
        let (method, with_where) = match format {
            UpdateFormat::Update2 => ("monitor_cond", true),
            UpdateFormat::Update => ("monitor", false),
        };
        let reqs: serde_json::Map<String, Value> = tables
            .iter()
            .map(|(t, r)| (t.clone(), r.to_json(with_where)))
            .collect();
        match self.call(method, json!([db, id, reqs])).await {
            Ok(initial) => {
                if !(initial.is_object() || initial.is_null()) {
                    self.forget_monitor(&id);
                    return Err(ClientError::BadReply {
                        method: method.into(),
                        value: snippet(&initial),
                    });
                }
                Ok(Monitor {
                    id,
                    db: db.to_string(),
                    format,
                    initial,
                    updates: rx,
                })
            }
            Err(e) => {
                self.forget_monitor(&id);
                Err(e)
            }
        }
    }

    fn forget_monitor(&self, id: &str) {
        if let Ok(mut m) = self.h.shared.monitors.lock() {
            m.remove(id);
        }
    }

    /// `monitor_cancel`: stops a monitor; its channel closes.
    pub async fn cancel(&self, monitor_id: &str) -> Result<(), ClientError> {
        let r = self.call("monitor_cancel", json!([monitor_id])).await;
        self.forget_monitor(monitor_id);
        r.map(|_| ())
    }
}

async fn reader_task<R: AsyncRead>(rd: R, shared: Arc<Shared>, max_frame: usize) {
    let mut rd = std::pin::pin!(rd);
    let mut dec = FrameDecoder::new(max_frame);
    let mut buf = vec![0u8; 64 * 1024];
    let reason = 'outer: loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) => break "end of stream".to_string(),
            Ok(n) => n,
            Err(e) => break format!("read error: {e}"),
        };
        dec.push(&buf[..n]);
        loop {
            match dec.next_frame() {
                Ok(Some(v)) => {
                    shared.touch();
                    if let Err(e) = dispatch(&shared, v) {
                        warn!(error = %e, "malformed message from ovsdb-server");
                        break 'outer e.to_string();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "malformed stream from ovsdb-server");
                    break 'outer e.to_string();
                }
            }
        }
    };
    shared.close(reason);
}

fn dispatch(shared: &Shared, v: Value) -> Result<(), JsonRpcError> {
    match Message::from_value(v)? {
        Message::Response { id, result } => {
            let entry = id
                .as_u64()
                .and_then(|n| shared.pending.lock().ok()?.remove(&n));
            match entry {
                Some((method, tx)) => {
                    let r = result.map_err(|e| ClientError::Rpc {
                        method,
                        error: e.as_str().map(str::to_owned).unwrap_or_else(|| snippet(&e)),
                    });
                    let _ = tx.send(r);
                }
                None if id.as_str().is_some_and(|s| s.starts_with("probe-")) => {}
                None => warn!(id = %id, "reply to no pending request; ignored"),
            }
        }
        Message::Request { id, method, params } => {
            let result = if method == "echo" {
                Ok(params)
            } else {
                warn!(%method, "server request we do not handle");
                Err(json!("unknown method"))
            };
            let _ = shared.send(&Message::Response { id, result });
        }
        Message::Notification { method, params } => {
            let p = params.as_array().map(Vec::as_slice).unwrap_or_default();
            let key = p.first().and_then(Value::as_str).map(str::to_owned);
            match (method.as_str(), key) {
                ("update" | "update2", Some(key)) => {
                    let updates = p.get(1).cloned().unwrap_or(Value::Null);
                    let tx = shared
                        .monitors
                        .lock()
                        .ok()
                        .and_then(|m| m.get(&key).cloned());
                    match tx {
                        Some(tx) => {
                            let _ = tx.send(MonitorMessage::Update(updates));
                        }
                        None => debug!(monitor = %key, "update for unknown monitor"),
                    }
                }
                ("monitor_canceled", Some(key)) => {
                    let tx = shared.monitors.lock().ok().and_then(|mut m| m.remove(&key));
                    if let Some(tx) = tx {
                        let _ = tx.send(MonitorMessage::Canceled);
                    }
                }
                _ => debug!(%method, "notification ignored"),
            }
        }
    }
    Ok(())
}

async fn writer_task<W: AsyncWrite>(
    wr: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    shared: Arc<Shared>,
) {
    let mut wr = std::pin::pin!(wr);
    let mut closed = shared.closed.subscribe();
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(bytes) = msg else { break };
                if let Err(e) = wr.write_all(&bytes).await {
                    shared.close(format!("write error: {e}"));
                    break;
                }
                if let Err(e) = wr.flush().await {
                    shared.close(format!("write error: {e}"));
                    break;
                }
            }
            r = closed.changed() => {
                if r.is_err() || closed.borrow().is_some() {
                    break;
                }
            }
        }
    }
    let _ = wr.shutdown().await;
}

async fn probe_task(shared: Arc<Shared>, interval: Duration) {
    let interval_ms = interval.as_millis().max(1) as u64;
    let mut probe_sent_at: Option<u64> = None;
    let mut tick = tokio::time::interval((interval / 4).max(Duration::from_millis(1)));
    loop {
        tick.tick().await;
        if shared.closed.borrow().is_some() {
            return;
        }
        let now = shared.epoch.elapsed().as_millis() as u64;
        let last = shared.last_rx_ms.load(Ordering::Relaxed);
        match probe_sent_at {
            Some(sent) if last >= sent => probe_sent_at = None,
            Some(sent) if now.saturating_sub(sent) >= interval_ms => {
                shared.close(format!("no reply to inactivity probe in {interval:?}"));
                return;
            }
            Some(_) => {}
            None => {}
        }
        if probe_sent_at.is_none() && now.saturating_sub(last) >= interval_ms {
            let id = json!(format!("probe-{now}"));
            // The reply comes back as a response with an id we do not track; the reader
            // logs and ignores it, but it counts as traffic.
            if shared
                .send(&Message::Request {
                    id,
                    method: "echo".into(),
                    params: json!([]),
                })
                .is_err()
            {
                return;
            }
            probe_sent_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            "unix:/tmp/db.sock".parse::<Endpoint>(),
            Ok(Endpoint::Unix("/tmp/db.sock".into()))
        );
        assert_eq!(
            "tcp:127.0.0.1:6640"
                .parse::<Endpoint>()
                .map(|e| e.to_string()),
            Ok("tcp:127.0.0.1:6640".to_string())
        );
        assert!("tcp:[::1]:6640".parse::<Endpoint>().is_ok());
        for bad in ["", "unix:", "tcp:localhost", "ssl:1.2.3.4:6640", "/tmp/x"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
