//! The agent's side of the southbound API: one Subscribe stream to any of the configured
//! controller endpoints (rotating with capped exponential backoff when one fails), and unary
//! status reports. Start with [`run_subscription`].
//!
//! The agent never clears its data plane when it loses the controller: the subscription task
//! only forwards [`SbEvent`]s; the reconciler keeps the last good state programmed.

use std::time::Duration;

use std::sync::OnceLock;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tracing::{info, info_span, warn, Instrument};
use weft_proto::tls::{url_for, TlsError, Transport};
use weft_proto::v1::southbound_client::SouthboundClient;
use weft_proto::v1::{Chassis, HealthReport, StatusReport, SubscribeRequest, ViewUpdate};

/// Errors talking to a controller.
#[derive(Debug, thiserror::Error)]
pub enum SouthboundError {
    #[error("invalid controller URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("controller {url} unreachable: {source}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("controller {url} rejected the request: {status}")]
    Rpc { url: String, status: tonic::Status },
    #[error("no controller endpoint configured")]
    NoEndpoint,
}

/// What the subscription task tells the reconciler.
#[derive(Debug)]
pub enum SbEvent {
    /// A stream to `endpoint` is open; a snapshot follows.
    Connected { endpoint: String },
    /// A snapshot or delta.
    Update(Box<ViewUpdate>),
    /// The stream broke; the agent keeps its state and retries.
    Disconnected { endpoint: String, error: String },
}

/// Backoff between attempts, doubling from `initial` up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(3),
        }
    }
}

/// The process' gRPC transport (set once by [`set_transport`] from `--ca/--cert/--key` or
/// `--insecure`), with the client TLS config built from it.
static TRANSPORT: OnceLock<(Transport, Option<ClientTlsConfig>)> = OnceLock::new();

/// Sets how this agent talks to the controllers (its Southbound stream, status reports and
/// the CNI front end's northbound calls): once, at start-up; later calls are ignored.
pub fn set_transport(t: Transport) -> Result<(), TlsError> {
    let tls = match &t {
        Transport::Tls(f) => Some(f.client_config()?),
        Transport::Insecure => None,
    };
    let _ = TRANSPORT.set((t, tls));
    Ok(())
}

/// The transport set by [`set_transport`] (plain text when never set: in-process tests).
pub fn transport() -> &'static Transport {
    static INSECURE: Transport = Transport::Insecure;
    TRANSPORT.get().map(|(t, _)| t).unwrap_or(&INSECURE)
}

/// `url` as an [`Endpoint`] under this process' transport (TLS unless `--insecure`).
pub fn secure_endpoint(url: &str) -> Result<Endpoint, tonic::transport::Error> {
    let e = Endpoint::from_shared(url_for(url, transport()))?;
    match TRANSPORT.get().and_then(|(_, tls)| tls.clone()) {
        Some(tls) => e.tls_config(tls),
        None => Ok(e),
    }
}

fn endpoint(url: &str) -> Result<Endpoint, SouthboundError> {
    secure_endpoint(url)
        .map(|e| {
            e.connect_timeout(Duration::from_secs(2))
                .http2_keep_alive_interval(Duration::from_secs(2))
                .keep_alive_timeout(Duration::from_secs(3))
                .keep_alive_while_idle(true)
                .tcp_nodelay(true)
        })
        .map_err(|e| SouthboundError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })
}

/// Checks every URL parses, so a typo is reported at start-up rather than in a retry loop.
pub fn validate_endpoints(urls: &[String]) -> Result<(), SouthboundError> {
    if urls.is_empty() {
        return Err(SouthboundError::NoEndpoint);
    }
    for u in urls {
        endpoint(u)?;
    }
    Ok(())
}

/// Keeps one Subscribe stream open to some endpoint until `tx` is closed. Rotates through the
/// endpoints on failure with backoff; the backoff resets once a stream delivered its snapshot.
pub async fn run_subscription(
    endpoints: Vec<String>,
    chassis: Chassis,
    backoff: Backoff,
    tx: mpsc::Sender<SbEvent>,
) {
    let mut delay = backoff.initial;
    let mut idx = 0usize;
    loop {
        if tx.is_closed() || endpoints.is_empty() {
            return;
        }
        let url = endpoints[idx % endpoints.len()].clone();
        idx += 1;
        let span = info_span!("subscribe", endpoint = %url, chassis = %chassis.name);
        let (got_data, result) = subscribe_once(&url, &chassis, &tx).instrument(span).await;
        if got_data {
            delay = backoff.initial;
        }
        match result {
            Ok(()) => return,
            Err(e) => {
                if let SouthboundError::Rpc { status, .. } = &e {
                    if matches!(
                        status.code(),
                        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
                    ) {
                        tracing::error!(
                            endpoint = %url,
                            code = ?status.code(),
                            reason = %status.message(),
                            "the controller refused this chassis: --chassis must be the CN of --cert (a chassis certificate, role agent, from the same CA)"
                        );
                    }
                }
                if tx
                    .send(SbEvent::Disconnected {
                        endpoint: url.clone(),
                        error: e.to_string(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(backoff.max);
    }
}

/// One stream. Returns whether it delivered at least one update, and how it ended: `Ok(())`
/// only when the receiver is gone (the agent is shutting down).
async fn subscribe_once(
    url: &str,
    chassis: &Chassis,
    tx: &mpsc::Sender<SbEvent>,
) -> (bool, Result<(), SouthboundError>) {
    let mut got = false;
    let result = stream_updates(url, chassis, tx, &mut got).await;
    (got, result)
}

async fn stream_updates(
    url: &str,
    chassis: &Chassis,
    tx: &mpsc::Sender<SbEvent>,
    got: &mut bool,
) -> Result<(), SouthboundError> {
    let channel = endpoint(url)?
        .connect()
        .await
        .map_err(|source| SouthboundError::Connect {
            url: url.to_string(),
            source,
        })?;
    let mut client = SouthboundClient::new(channel).max_decoding_message_size(256 << 20);
    let mut stream = client
        .subscribe(SubscribeRequest {
            chassis: Some(chassis.clone()),
        })
        .await
        .map_err(|status| SouthboundError::Rpc {
            url: url.to_string(),
            status,
        })?
        .into_inner();
    info!("subscribed");
    if tx
        .send(SbEvent::Connected {
            endpoint: url.to_string(),
        })
        .await
        .is_err()
    {
        return Ok(());
    }
    while let Some(item) = stream.next().await {
        match item {
            Ok(update) => {
                *got = true;
                if tx.send(SbEvent::Update(Box::new(update))).await.is_err() {
                    return Ok(());
                }
            }
            Err(status) => {
                warn!(%status, "stream ended with error");
                return Err(SouthboundError::Rpc {
                    url: url.to_string(),
                    status,
                });
            }
        }
    }
    Err(SouthboundError::Rpc {
        url: url.to_string(),
        status: tonic::Status::unavailable("stream closed by controller"),
    })
}

/// Sends status reports to whichever endpoint answers, starting with the last one that did.
/// What [`StatusReporter`] sends.
#[derive(Clone, Copy)]
enum Report<'a> {
    Status(&'a StatusReport),
    Health(&'a HealthReport),
}

pub struct StatusReporter {
    endpoints: Vec<String>,
    channels: Vec<Option<Channel>>,
    preferred: usize,
}

impl StatusReporter {
    pub fn new(endpoints: Vec<String>) -> Self {
        let channels = endpoints.iter().map(|_| None).collect();
        Self {
            endpoints,
            channels,
            preferred: 0,
        }
    }

    /// Reports to the preferred endpoint, falling back to the others.
    pub async fn report(&mut self, report: &StatusReport) -> Result<i64, SouthboundError> {
        self.call(Report::Status(report)).await
    }

    /// Reports load balancer backend health ([`crate::lb_health`]) the same way.
    pub async fn report_health(&mut self, report: &HealthReport) -> Result<i64, SouthboundError> {
        self.call(Report::Health(report)).await
    }

    async fn call(&mut self, report: Report<'_>) -> Result<i64, SouthboundError> {
        let n = self.endpoints.len();
        if n == 0 {
            return Err(SouthboundError::NoEndpoint);
        }
        let mut last = None;
        for k in 0..n {
            let i = (self.preferred + k) % n;
            let url = self.endpoints[i].clone();
            let channel = match &self.channels[i] {
                Some(c) => c.clone(),
                None => {
                    let c = endpoint(&url)?.connect_lazy();
                    self.channels[i] = Some(c.clone());
                    c
                }
            };
            let mut client = SouthboundClient::new(channel);
            let reply = match report {
                Report::Status(r) => client.report_status(r.clone()).await,
                Report::Health(r) => client.report_health(r.clone()).await,
            };
            match reply {
                Ok(r) => {
                    self.preferred = i;
                    return Ok(r.into_inner().revision);
                }
                Err(status) => {
                    // Drop the channel so the next attempt reconnects from scratch.
                    self.channels[i] = None;
                    last = Some(SouthboundError::Rpc { url, status });
                }
            }
        }
        Err(last.unwrap_or(SouthboundError::NoEndpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_validated() {
        assert!(matches!(
            validate_endpoints(&[]),
            Err(SouthboundError::NoEndpoint)
        ));
        assert!(validate_endpoints(&["http://127.0.0.1:7600".into()]).is_ok());
        let err = validate_endpoints(&["not a url".into()]).unwrap_err();
        assert!(err.to_string().contains("not a url"), "{err}");
    }
}
