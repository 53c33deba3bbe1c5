//! weft-controller: keeps Weft's network intent in etcd and serves it over gRPC.
//!
//! Start with [`run`] (or [`Controller::bind`] + [`Controller::serve`] when the caller needs the
//! bound address). Layers, bottom up:
//! - [`store`]: the etcd-shaped [`store::IntentStore`] trait, etcd and in-memory backends;
//! - [`validate`], [`ipam`], [`state`], [`view`]: pure logic (no I/O), unit-tested;
//! - [`intent`]: every write as one transaction with its preconditions as compares;
//! - [`cache`]: in-memory copy of the prefix, fed by an etcd watch;
//! - [`northbound`], [`southbound`]: the gRPC services.

pub mod acks;
pub mod auth;
pub mod cache;
pub mod debug;
pub mod error;
pub mod intent;
pub mod ipam;
pub mod kinds;
pub mod lb_health;
pub mod metrics;
pub mod northbound;
pub mod objects;
pub mod southbound;
pub mod state;
pub mod status;
pub mod store;
pub mod trace;
pub mod validate;
pub mod view;
pub mod view_acl;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::server::TcpIncoming;
use weft_proto::v1::northbound_server::NorthboundServer;
use weft_proto::v1::southbound_server::SouthboundServer;

use crate::intent::{Intent, Limits};
use crate::northbound::NorthboundService;
use crate::southbound::SouthboundService;
use crate::store::etcd::{EtcdConfig, EtcdStore};
use crate::store::memory::MemoryStore;
use crate::store::IntentStore;

/// Largest accepted gRPC request.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Which store backs the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// etcd (production).
    #[default]
    Etcd,
    /// In memory; nothing persisted (dev runs).
    Memory,
}

/// Controller configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// etcd client URLs.
    pub etcd_endpoints: Vec<String>,
    /// Key prefix, e.g. `/weft`; keys live under `{prefix}/v1/`.
    pub prefix: String,
    /// Store backend.
    pub store: StoreKind,
    /// Chassis lease TTL in seconds.
    pub lease_ttl_secs: i64,
    /// Upper bound for one etcd call.
    pub etcd_timeout: Duration,
    /// `--wait=hv` timeout when the request gives none.
    pub default_wait_timeout: Duration,
    /// Largest etcd transaction the controller builds (compares or ops): etcd's
    /// `--max-txn-ops`, 128 unless etcd was started with more.
    pub etcd_max_txn_ops: usize,
    /// Largest number of ports one CreatePorts call may carry.
    pub max_batch: usize,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (None: not served). A failure to
    /// bind it is logged, not fatal: the API and the data path do not depend on it.
    pub metrics_listen: Option<SocketAddr>,
    /// Largest number of flows one ACL's match may compile to; a larger one is refused
    /// with the number it would need.
    pub acl_max_flows: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7600)),
            etcd_endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/weft".into(),
            store: StoreKind::Etcd,
            lease_ttl_secs: 10,
            etcd_timeout: Duration::from_secs(4),
            default_wait_timeout: Duration::from_secs(30),
            etcd_max_txn_ops: 128,
            max_batch: 1000,
            metrics_listen: None,
            acl_max_flows: weft_proto::model::acl::DEFAULT_MAX_FLOWS,
        }
    }
}

/// Who may connect and how: the gRPC transport, the authorization policy and etcd's TLS.
/// The default (what [`Controller::bind`] uses) is plain text with every call allowed, for
/// in-process tests; the `weft-controller` binary defaults to TLS and refuses to start
/// without certificates unless `--insecure` is given.
#[derive(Clone)]
pub struct Security {
    /// TLS (server certificate, client CA) or plain text.
    pub transport: weft_proto::tls::Transport,
    /// Who may call what.
    pub policy: auth::Policy,
    /// TLS to etcd.
    pub etcd_tls: Option<weft_proto::tls::TlsFiles>,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            transport: weft_proto::tls::Transport::Insecure,
            policy: auth::Policy::open(),
            etcd_tls: None,
        }
    }
}

/// Failures that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// TLS material could not be loaded.
    #[error("{0}")]
    Tls(#[from] weft_proto::tls::TlsError),
}

/// A bound, not yet serving controller.
pub struct Controller {
    config: Config,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    store: Arc<dyn IntentStore>,
    metrics: Option<tokio::net::TcpListener>,
    security: Security,
}

impl Controller {
    /// Binds the listen address and creates the store (without contacting etcd); plain
    /// text, every call allowed (see [`Security`]).
    pub async fn bind(config: Config) -> Result<Self, ControllerError> {
        Self::bind_secure(config, Security::default()).await
    }

    /// Like [`Controller::bind`] with TLS, authorization and etcd TLS as `security` says.
    pub async fn bind_secure(config: Config, security: Security) -> Result<Self, ControllerError> {
        if config.lease_ttl_secs < 2 {
            return Err(ControllerError::Config(format!(
                "lease TTL {} s is too short (at least 2)",
                config.lease_ttl_secs
            )));
        }
        if config.etcd_max_txn_ops < 8 {
            return Err(ControllerError::Config(format!(
                "etcd max txn ops {} is too small (at least 8)",
                config.etcd_max_txn_ops
            )));
        }
        if config.max_batch < 1 {
            return Err(ControllerError::Config(
                "max batch must be at least 1".to_string(),
            ));
        }
        if !config.prefix.starts_with('/') {
            return Err(ControllerError::Config(format!(
                "prefix {:?} must start with '/'",
                config.prefix
            )));
        }
        let store: Arc<dyn IntentStore> = match config.store {
            StoreKind::Etcd => Arc::new(EtcdStore::new(EtcdConfig {
                endpoints: config.etcd_endpoints.clone(),
                timeout: config.etcd_timeout,
                tls: match &security.etcd_tls {
                    Some(f) => Some(f.client_config()?),
                    None => None,
                },
            })),
            StoreKind::Memory => {
                tracing::warn!("running on the in-memory store: NOTHING IS PERSISTED, state is lost on exit and not shared with other replicas");
                Arc::new(MemoryStore::new())
            }
        };
        let mut c = Self::bind_with_store(config, store).await?;
        c.security = security;
        Ok(c)
    }

    /// Like [`Controller::bind`] with a caller-provided store.
    pub async fn bind_with_store(
        config: Config,
        store: Arc<dyn IntentStore>,
    ) -> Result<Self, ControllerError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ControllerError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ControllerError::Bind {
                addr: config.listen,
                source,
            })?;
        // The metrics endpoint is not needed to serve: a failure to bind it is logged only.
        let metrics = match config.metrics_listen {
            Some(addr) => match weft_obs::bind(addr).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::error!(error = %e, "metrics endpoint not served");
                    None
                }
            },
            None => None,
        };
        Ok(Controller {
            config,
            listener,
            local_addr,
            store,
            metrics,
            security: Security::default(),
        })
    }

    /// Replaces the transport and policy (for [`Controller::bind_with_store`] callers; etcd
    /// TLS applies only through [`Controller::bind_secure`]).
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address `/metrics`, `/healthz` and `/readyz` are served on, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves northbound and southbound until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ControllerError> {
        let cfg = &self.config;
        let intent = Intent::new(self.store.clone(), &cfg.prefix).with_limits(Limits {
            max_txn_ops: cfg.etcd_max_txn_ops,
            max_batch: cfg.max_batch,
            acl_max_flows: cfg.acl_max_flows,
        });
        let (cache, cache_task) = cache::spawn(self.store.clone(), intent.keys().clone());
        let intent = intent.with_cache(cache.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let nb = NorthboundService::new(intent.clone(), cache.clone(), cfg.default_wait_timeout);
        let sb = SouthboundService::new(intent, cache.clone(), cfg.lease_ttl_secs, stop_rx.clone());
        tracing::info!(listen = %self.local_addr, store = self.store.kind(), endpoints = ?cfg.etcd_endpoints, prefix = %cfg.prefix, "weft-controller serving");
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        // gRPC health (grpc.health.v1) and /readyz follow the cache: serving once it holds
        // etcd's state, not serving while etcd is unreachable.
        let (health, health_svc) = tonic_health::server::health_reporter();
        let ready = weft_obs::Readiness::new("cache not loaded from etcd yet");
        let health_task = tokio::spawn(track_health(cache.clone(), health, ready.clone()));
        let metrics_task = self.metrics.map(|l| {
            let bound = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(url = %format!("http://{bound}/metrics"), "serving metrics, /healthz and /readyz");
            let mut stop = stop_rx.clone();
            tokio::spawn(weft_obs::serve(l, ready, async move {
                let _ = stop.wait_for(|s| *s).await;
            }))
        });
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(weft_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ControllerError::Config(format!("gRPC reflection: {e}")))?;
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        };
        let mut builder = tonic::transport::Server::builder();
        match &self.security.transport {
            weft_proto::tls::Transport::Tls(files) => {
                builder = builder.tls_config(files.server_config()?)?;
                tracing::info!(ca = %files.ca.display(), "TLS on: clients are checked against the CA");
            }
            weft_proto::tls::Transport::Insecure => {
                tracing::warn!("INSECURE: serving gRPC in plain text (--insecure): no encryption, no certificate identities");
            }
        }
        if !self.security.policy.is_enforced() {
            tracing::warn!("INSECURE: no authentication: every caller may read and write everything and speak for any chassis");
        }
        let result = builder
            .layer(metrics::MetricsLayer)
            .layer(auth::AuthLayer::new(self.security.policy.clone()))
            .add_service(NorthboundServer::new(nb).max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(SouthboundServer::new(sb).max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(health_svc)
            .add_service(reflection)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        cache_task.abort();
        health_task.abort();
        if let Some(t) = metrics_task {
            t.abort();
        }
        result.map_err(ControllerError::from)
    }
}

/// Keeps the gRPC health service and `/readyz` in step with the cache.
async fn track_health(
    mut cache: tokio::sync::watch::Receiver<Arc<cache::CacheSnapshot>>,
    health: tonic_health::server::HealthReporter,
    ready: weft_obs::Readiness,
) {
    use tonic_health::ServingStatus;
    let services = ["", "weft.v1.Northbound", "weft.v1.Southbound"];
    loop {
        let connected = cache.borrow_and_update().connected;
        let status = if connected {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for s in services {
            health.set_service_status(s, status).await;
        }
        ready.set(connected, "etcd unreachable or the cache not caught up");
        if cache.changed().await.is_err() {
            return;
        }
    }
}

/// Binds and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    Controller::bind(config).await?.serve(shutdown).await
}
