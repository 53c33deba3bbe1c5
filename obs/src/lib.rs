//! weft-obs: what both daemons share to be observed — the process-wide Prometheus registry
//! ([`register`], [`encode`]), a readiness flag ([`Readiness`]), and a deliberately small
//! HTTP/1.1 server ([`serve`]) for `/metrics`, `/healthz` and `/readyz`. The server reads at
//! most one small request per connection with a timeout and never touches the data path.
//! Start with [`serve`].

pub mod logging;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::registry::{Metric, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use prometheus_client;

/// Errors of the observability server.
#[derive(Debug, thiserror::Error)]
pub enum ObsError {
    /// The listen address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Registry::default()))
}

/// Registers a metric in the process-wide registry (name without the `_total` suffix for
/// counters; prometheus-client adds it).
pub fn register(name: &str, help: &str, metric: impl Metric) {
    if let Ok(mut r) = registry().lock() {
        r.register(name, help, metric);
    }
}

/// Every registered metric in the Prometheus/OpenMetrics text format.
pub fn encode() -> String {
    let mut s = String::new();
    if let Ok(r) = registry().lock() {
        if prometheus_client::encoding::text::encode(&mut s, &r).is_err() {
            s.clear();
        }
    }
    s
}

/// Whether the daemon is ready (`/readyz`), with the reason when it is not.
#[derive(Clone, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    reason: Arc<Mutex<String>>,
}

impl Readiness {
    /// Not ready, because of `reason`.
    pub fn new(reason: &str) -> Self {
        let r = Readiness::default();
        r.set(false, reason);
        r
    }
    /// Sets the state (`reason` says why it is not ready; ignored when ready).
    pub fn set(&self, ready: bool, reason: &str) {
        self.ready.store(ready, Ordering::SeqCst);
        if let Ok(mut g) = self.reason.lock() {
            *g = reason.to_string();
        }
    }
    /// Whether ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    /// Why it is not ready (the last reason given).
    pub fn reason(&self) -> String {
        self.reason.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// Longest request head read.
const MAX_REQUEST: usize = 8192;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ObsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ObsError::Bind { addr, source })
}

/// The response to a request line (`GET /path HTTP/1.1`): status, content type, body.
pub fn respond(request_line: &str, ready: &Readiness) -> (u16, &'static str, String) {
    let mut w = request_line.split_whitespace();
    let (method, path) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", "only GET\n".into());
    }
    match path {
        "/metrics" => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            encode(),
        ),
        "/healthz" => (200, "text/plain", "ok\n".into()),
        "/readyz" if ready.is_ready() => (200, "text/plain", "ready\n".into()),
        "/readyz" => (
            503,
            "text/plain",
            format!("not ready: {}\n", ready.reason()),
        ),
        _ => (
            404,
            "text/plain",
            "not found (try /metrics, /healthz, /readyz)\n".into(),
        ),
    }
}

async fn handle(mut s: TcpStream, ready: Readiness) {
    let mut buf = Vec::with_capacity(512);
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= MAX_REQUEST {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    if !matches!(tokio::time::timeout(READ_TIMEOUT, read).await, Ok(Ok(()))) {
        return;
    }
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next().unwrap_or("");
    let (code, ctype, body) = respond(line, &ready);
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let resp = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    if !line.starts_with("HEAD ") {
        let _ = s.write_all(body.as_bytes()).await;
    }
    let _ = s.shutdown().await;
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    ready: Readiness,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => match a {
                Ok((s, _)) => {
                    tokio::spawn(handle(s, ready.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn routes() {
        let c: Counter = Counter::default();
        register("weft_obs_test_events", "Test events.", c.clone());
        c.inc();
        let r = Readiness::new("no snapshot yet");
        let (code, _, body) = respond("GET /metrics HTTP/1.1", &r);
        assert_eq!(code, 200);
        assert!(body.contains("weft_obs_test_events_total 1"), "{body}");
        assert!(body.ends_with("# EOF\n"));
        assert_eq!(respond("GET /healthz HTTP/1.1", &r).0, 200);
        let (code, _, body) = respond("GET /readyz HTTP/1.1", &r);
        assert_eq!((code, body.as_str()), (503, "not ready: no snapshot yet\n"));
        r.set(true, "");
        assert_eq!(respond("GET /readyz?x HTTP/1.1", &r).0, 200);
        assert_eq!(respond("GET /nope HTTP/1.1", &r).0, 404);
        assert_eq!(respond("POST /metrics HTTP/1.1", &r).0, 405);
        assert_eq!(respond("", &r).0, 405);
    }

    #[tokio::test]
    async fn serves_over_tcp() {
        let l = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let t = tokio::spawn(serve(l, Readiness::new("x"), async {
            let _ = rx.await;
        }));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nok\n"), "{out}");
        let _ = tx.send(());
        t.await.unwrap();
    }
}
