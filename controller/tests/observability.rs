//! The controller's /metrics, /healthz and /readyz (HTTP on --metrics-listen), the standard
//! gRPC health service and server reflection, against a real etcd: the metrics parse with a
//! Prometheus text-format parser and the key series move when the test makes changes.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_proto::v1::*;

/// GET `path` from `addr`: (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

/// The samples of `/metrics`, parsed by prometheus-parse: name{labels} → value.
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let mut out = HashMap::new();
    for s in parsed.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => h.last().map(|b| b.count).unwrap_or(0.0),
            prometheus_parse::Value::Summary(_) => 0.0,
        };
        out.insert(format!("{}{{{}}}", s.metric, labels.join(",")), v);
    }
    out
}

fn value(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_reflection() {
    let etcd = start_etcd();
    let prefix = unique_prefix("obs");
    let mut cfg = config(&etcd.endpoint(), &prefix);
    cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let ctl = InProc::start(cfg).await;
    let maddr = ctl.metrics.expect("metrics bound");
    assert_eq!(get(maddr, "/healthz").await, (200, "ok\n".to_string()));
    let ok = eventually(Duration::from_secs(10), || async move {
        get(maddr, "/readyz").await.0 == 200
    })
    .await;
    assert!(ok, "readyz never turned ready");

    let mut c = nb(&ctl.url()).await;
    let before = scrape(maddr).await;
    let ok_key = "weft_controller_requests_total{code=OK,method=weft.v1.Northbound/CreateSwitch}";
    let bad_key =
        "weft_controller_requests_total{code=INVALID_ARGUMENT,method=weft.v1.Northbound/CreateSwitch}";
    c.create_switch(CreateSwitchRequest {
        switch: Some(LogicalSwitch {
            name: "m1".into(),
            ..Default::default()
        }),
        options: None,
    })
    .await
    .unwrap();
    c.create_switch(CreateSwitchRequest {
        switch: Some(LogicalSwitch {
            name: "bad name".into(),
            ..Default::default()
        }),
        options: None,
    })
    .await
    .unwrap_err();
    // A chassis stream moves the stream gauge and the view counters.
    let mut s = sb(&ctl.url()).await;
    let mut st = s
        .subscribe(SubscribeRequest {
            chassis: Some(Chassis {
                name: "hv1".into(),
                encap_ip: "192.0.2.1".into(),
                encap_types: vec!["geneve".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let _ = st.message().await.unwrap();
    c.sync(SyncRequest {
        revision: 0,
        options: Some(WriteOptions {
            wait: WaitMode::WaitHv as i32,
            timeout_ms: 200,
            ..Default::default()
        }),
    })
    .await
    .ok();
    let after = scrape(maddr).await;
    assert_eq!(
        value(&after, ok_key),
        value(&before, ok_key) + 1.0,
        "{after:?}"
    );
    assert_eq!(value(&after, bad_key), value(&before, bad_key) + 1.0);
    assert!(
        value(&after, "weft_controller_streams{}") >= 1.0,
        "{after:?}"
    );
    assert!(value(&after, "weft_controller_view_computations_total{kind=full}") >= 1.0);
    assert!(
        value(
            &after,
            "weft_controller_etcd_request_duration_seconds{op=txn}"
        ) >= 1.0,
        "{after:?}"
    );
    let waits: f64 = after
        .iter()
        .filter(|(k, _)| k.starts_with("weft_controller_wait_hv_total"))
        .map(|(_, v)| *v)
        .sum();
    assert!(waits >= 1.0, "{after:?}");

    // Every controller series the shipped Grafana dashboard queries exists.
    let (_, raw) = get(maddr, "/metrics").await;
    let dash = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/weft-dashboard.json"
    ))
    .expect("dashboard");
    let mut names: Vec<&str> = dash
        .match_indices("weft_controller_")
        .map(|(i, _)| {
            let rest = &dash[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 6, "{names:?}");
    for n in names {
        let base = n.trim_end_matches("_bucket");
        assert!(
            raw.contains(base),
            "dashboard queries {n}, which /metrics does not have"
        );
    }

    // grpc.health.v1 and server reflection answer without the .proto files.
    let ch = tonic::transport::Channel::from_shared(ctl.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let r = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: "weft.v1.Northbound".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut refl = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(l)) = msg.message_response else {
        panic!("{msg:?}")
    };
    let names: Vec<String> = l.service.into_iter().map(|s| s.name).collect();
    for n in ["weft.v1.Northbound", "weft.v1.Southbound"] {
        assert!(names.iter().any(|x| x == n), "{names:?}");
    }
    drop(st);
    ctl.stop().await;
}
