//! Shared helpers for the controller integration tests: a real etcd (weft-testbed), the
//! controller in-process or as the real binary, gRPC clients, and a raw dump of the prefix.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use weft_controller::{Config, Controller, StoreKind};
use weft_proto::v1::northbound_client::NorthboundClient;
use weft_proto::v1::southbound_client::SouthboundClient;

pub use weft_testbed::etcd::Etcd;

/// A unique etcd prefix per test, so tests never see each other's keys.
pub fn unique_prefix(tag: &str) -> String {
    format!(
        "/t-{tag}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

pub fn config(endpoint: &str, prefix: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        etcd_endpoints: vec![endpoint.to_string()],
        prefix: prefix.to_string(),
        store: StoreKind::Etcd,
        lease_ttl_secs: 3,
        etcd_timeout: Duration::from_secs(2),
        default_wait_timeout: Duration::from_secs(5),
        // The test etcd (weft-testbed) runs with --max-txn-ops 2048.
        etcd_max_txn_ops: 2048,
        max_batch: 1000,
        metrics_listen: None,
        ..Config::default()
    }
}

/// A controller running inside the test's runtime.
pub struct InProc {
    pub addr: SocketAddr,
    /// Where /metrics is served, when the config asked for it.
    pub metrics: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), weft_controller::ControllerError>>,
}

impl InProc {
    pub async fn start(config: Config) -> InProc {
        let ctl = Controller::bind(config).await.expect("bind controller");
        Self::start_bound(ctl)
    }

    /// Serves an already bound controller (e.g. [`Controller::bind_secure`]).
    pub fn start_bound(ctl: Controller) -> InProc {
        let addr = ctl.local_addr();
        let metrics = ctl.metrics_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(ctl.serve(async move {
            let _ = rx.await;
        }));
        InProc {
            addr,
            metrics,
            stop: Some(tx),
            handle,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let r = tokio::time::timeout(Duration::from_secs(10), &mut self.handle)
            .await
            .expect("controller stops within 10 s");
        r.expect("controller task")
            .expect("controller serve result");
    }
}

/// The real `weft-controller` binary, killed on drop.
pub struct BinCtl {
    child: Child,
    pub addr: SocketAddr,
}

impl BinCtl {
    pub fn start(endpoint: &str, prefix: &str) -> BinCtl {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = Command::new(env!("CARGO_BIN_EXE_weft-controller"))
            .args([
                "--listen",
                &addr.to_string(),
                "--etcd",
                endpoint,
                "--prefix",
                prefix,
            ])
            .args(["--store", "etcd", "--lease-ttl", "3"])
            .args(["--etcd-max-txn-ops", "2048", "--insecure"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn weft-controller");
        BinCtl { child, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BinCtl {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Connects a northbound client, retrying until the server listens (10 s).
pub async fn nb(url: &str) -> NorthboundClient<Channel> {
    for _ in 0..100 {
        if let Ok(c) = NorthboundClient::connect(url.to_string()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {url}");
}

pub async fn sb(url: &str) -> SouthboundClient<Channel> {
    for _ in 0..100 {
        if let Ok(c) = SouthboundClient::connect(url.to_string()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {url}");
}

/// Every key/value under `prefix`, read directly from etcd.
pub async fn dump(endpoint: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut c = Client::connect([endpoint], None)
        .await
        .expect("etcd client");
    let r = c
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("etcd get");
    r.kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.value().to_vec(),
            )
        })
        .collect()
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn start_etcd() -> Etcd {
    Etcd::start().expect("start etcd (is `etcd` installed?)")
}
