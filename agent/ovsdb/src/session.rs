//! A self-healing OVSDB session: [`Session::start`] connects, fetches the schema, starts one
//! monitor over the configured tables, keeps a [`Replica`] of them, and on any disconnect
//! reconnects with capped exponential backoff and re-establishes the monitor.
//!
//! Events ([`SessionEvent`]) come on an unbounded channel, in this order per connection:
//! `Connected`, then `Changes` with the resync difference between what the replica held and
//! the fresh initial state (omitted when nothing differs), then `Changes` for each update,
//! then `Disconnected`. So a consumer that applies `Changes` in order always matches the
//! server once it has seen the `Changes` after `Connected`, and can resync its own state on
//! `Connected`. Use [`Session::client`] / [`Session::wait_connected`] to transact over the
//! current connection.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::atom::{Row, Uuid};
use crate::client::{Client, ClientConfig, ClientError, Endpoint, MonitorMessage};
use crate::monitor::{MonitorRequest, Replica, RowChange};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    #[error("not connected to {endpoint} after {after:?}")]
    NotConnected { endpoint: String, after: Duration },
    #[error("session stopped")]
    Stopped,
}

/// Capped exponential backoff: `initial`, doubling up to `max`; [`Backoff::reset`] after a
/// successful connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// What a session connects to and monitors.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub endpoint: Endpoint,
    /// Usually `Open_vSwitch`.
    pub database: String,
    /// Tables to monitor (may be empty: then the session only keeps a connection).
    pub tables: BTreeMap<String, MonitorRequest>,
    pub client: ClientConfig,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl SessionConfig {
    pub fn new(endpoint: Endpoint, database: &str) -> Self {
        SessionConfig {
            endpoint,
            database: database.to_string(),
            tables: BTreeMap::new(),
            client: ClientConfig::default(),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(8),
        }
    }

    pub fn monitor(mut self, table: &str, req: MonitorRequest) -> Self {
        self.tables.insert(table.to_string(), req);
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A connection and its monitor are up.
    Connected,
    /// Rows changed (after `Connected`: the resync difference first).
    Changes(Vec<RowChange>),
    /// The connection ended; the session is reconnecting. The replica keeps the last rows.
    Disconnected { reason: String },
}

struct Shared {
    client: watch::Sender<Option<Client>>,
    replica: Mutex<Replica>,
}

/// A running session; dropping it stops the session and closes its connection.
pub struct Session {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    task: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(c) = self.shared.client.borrow().as_ref() {
            c.close();
        }
    }
}

impl Session {
    /// Starts the session task. Must be called inside a tokio runtime.
    pub fn start(config: SessionConfig) -> (Session, mpsc::UnboundedReceiver<SessionEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (client, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            client,
            replica: Mutex::new(Replica::default()),
        });
        let endpoint = config.endpoint.clone();
        let task = tokio::spawn(run(config, shared.clone(), tx));
        (
            Session {
                shared,
                endpoint,
                task,
            },
            rx,
        )
    }

    /// The current connection, if up.
    pub fn client(&self) -> Option<Client> {
        self.shared
            .client
            .borrow()
            .as_ref()
            .filter(|c| !c.is_closed())
            .cloned()
    }

    /// Waits up to `timeout` for a connection with its monitor established.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<Client, SessionError> {
        let mut rx = self.shared.client.subscribe();
        let wait = async {
            loop {
                if let Some(c) = rx.borrow_and_update().as_ref().filter(|c| !c.is_closed()) {
                    return Ok(c.clone());
                }
                if rx.changed().await.is_err() {
                    return Err(SessionError::Stopped);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| SessionError::NotConnected {
                endpoint: self.endpoint.to_string(),
                after: timeout,
            })?
    }

    /// A cloneable read handle on the replica, for tasks that outlive a borrow of `self`.
    pub fn replica_reader(&self) -> ReplicaReader {
        ReplicaReader {
            shared: self.shared.clone(),
        }
    }

    /// A copy of one monitored table's rows.
    pub fn rows(&self, table: &str) -> BTreeMap<Uuid, Row> {
        self.with_replica(|r| r.table(table).cloned().unwrap_or_default())
    }

    /// Runs `f` on the replica (do not block inside).
    pub fn with_replica<R>(&self, f: impl FnOnce(&Replica) -> R) -> R {
        match self.shared.replica.lock() {
            Ok(r) => f(&r),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }
}

/// Read access to a [`Session`]'s replica.
#[derive(Clone)]
pub struct ReplicaReader {
    shared: Arc<Shared>,
}

impl ReplicaReader {
    /// Runs `f` on the replica (do not block inside).
    pub fn with<R>(&self, f: impl FnOnce(&Replica) -> R) -> R {
        match self.shared.replica.lock() {
            Ok(r) => f(&r),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }
}

async fn run(
    config: SessionConfig,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<SessionEvent>,
) {
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    loop {
        match connect_once(&config, &shared).await {
            Ok((client, mut monitor)) => {
                backoff.reset();
                info!(endpoint = %config.endpoint, "ovsdb session connected");
                shared.client.send_replace(Some(client.clone()));
                let _ = events.send(SessionEvent::Connected);
                if !monitor.1.is_empty() {
                    let _ = events.send(SessionEvent::Changes(std::mem::take(&mut monitor.1)));
                }
                let reason = pump(&shared, &client, &mut monitor.0, &events).await;
                warn!(endpoint = %config.endpoint, %reason, "ovsdb session disconnected");
                client.close();
                shared.client.send_replace(None);
                let _ = events.send(SessionEvent::Disconnected { reason });
            }
            Err(e) => {
                warn!(endpoint = %config.endpoint, error = %e, "ovsdb connect failed");
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

type Established = (Client, (crate::client::Monitor, Vec<RowChange>));

async fn connect_once(config: &SessionConfig, shared: &Shared) -> Result<Established, ClientError> {
    let client = Client::connect(&config.endpoint, config.client.clone()).await?;
    let schema = client.get_schema(&config.database).await?;
    let monitor = client.monitor(&config.database, &config.tables).await?;
    let changes = {
        let mut r = match shared.replica.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        r.set_schema(schema);
        r.reset(monitor.format, &monitor.initial)?
    };
    Ok((client, (monitor, changes)))
}

async fn pump(
    shared: &Shared,
    client: &Client,
    monitor: &mut crate::client::Monitor,
    events: &mpsc::UnboundedSender<SessionEvent>,
) -> String {
    loop {
        match monitor.updates.recv().await {
            Some(MonitorMessage::Update(v)) => {
                let res = match shared.replica.lock() {
                    Ok(mut r) => r.apply(monitor.format, &v),
                    Err(p) => p.into_inner().apply(monitor.format, &v),
                };
                match res {
                    Ok(ch) if ch.is_empty() => {}
                    Ok(ch) => {
                        let _ = events.send(SessionEvent::Changes(ch));
                    }
                    // The replica no longer matches the server; start over.
                    Err(e) => return format!("bad update: {e}"),
                }
            }
            Some(MonitorMessage::Canceled) => return "monitor canceled by server".into(),
            None => {
                return tokio::time::timeout(Duration::from_secs(1), client.closed())
                    .await
                    .unwrap_or_else(|_| "monitor channel closed".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let seq: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(seq, vec![100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
