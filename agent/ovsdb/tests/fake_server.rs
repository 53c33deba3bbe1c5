//! The client against a scripted fake server over a socketpair: out-of-order replies,
//! partial frames, server echo, monitor fallback and notifications, per-op transact errors,
//! malformed replies and garbage. None of these may panic; each must surface as an error.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use weft_ovsdb::client::{Client, ClientConfig, ClientError, MonitorMessage};
use weft_ovsdb::jsonrpc::FrameDecoder;
use weft_ovsdb::monitor::{MonitorRequest, UpdateFormat};

struct FakeServer {
    s: UnixStream,
    dec: FrameDecoder,
}

impl FakeServer {
    async fn recv(&mut self) -> Value {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(v) = self.dec.next_frame().expect("client sent valid JSON") {
                return v;
            }
            let n = tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut buf))
                .await
                .expect("client message in time")
                .expect("read");
            assert!(n > 0, "client closed");
            self.dec.push(&buf[..n]);
        }
    }

    async fn send(&mut self, v: Value) {
        self.send_raw(v.to_string().as_bytes()).await;
    }

    async fn send_raw(&mut self, b: &[u8]) {
        self.s.write_all(b).await.expect("write");
    }
}

fn pair(config: ClientConfig) -> (Client, FakeServer) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    (
        Client::from_stream(a, config),
        FakeServer {
            s: b,
            dec: FrameDecoder::default(),
        },
    )
}

fn quiet() -> ClientConfig {
    ClientConfig {
        inactivity_probe: None,
        request_timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn replies_out_of_order_and_split_into_bytes() {
    let (client, mut srv) = pair(quiet());
    let c1 = client.clone();
    let c2 = client.clone();
    let t1 = tokio::spawn(async move { c1.list_dbs().await });
    let r1 = srv.recv().await;
    let t2 = tokio::spawn(async move { c2.call("get_schema", json!(["Open_vSwitch"])).await });
    let r2 = srv.recv().await;
    assert_eq!(r1["method"], json!("list_dbs"));
    assert_eq!(r2["method"], json!("get_schema"));
    assert_ne!(r1["id"], r2["id"]);
    // Answer the second first, one byte at a time, with a reply to an unknown id mixed in.
    srv.send(json!({"id": 9999, "result": [], "error": null}))
        .await;
    let second = json!({"id": r2["id"], "result": {"name": "x"}, "error": null}).to_string();
    for b in second.as_bytes() {
        srv.send_raw(&[*b]).await;
    }
    let got2 = t2.await.expect("join").expect("schema");
    assert_eq!(got2, json!({"name": "x"}));
    srv.send(json!({"id": r1["id"], "result": ["Open_vSwitch", "_Server"], "error": null}))
        .await;
    assert_eq!(
        t1.await.expect("join").expect("dbs"),
        vec!["Open_vSwitch".to_string(), "_Server".to_string()]
    );
}

#[tokio::test]
async fn answers_server_echo() {
    let (_client, mut srv) = pair(quiet());
    srv.send(json!({"id": "echo", "method": "echo", "params": ["x", 1]}))
        .await;
    let reply = srv.recv().await;
    assert_eq!(
        reply,
        json!({"id": "echo", "result": ["x", 1], "error": null})
    );
    // An unknown server request gets an error reply, not a crash.
    srv.send(json!({"id": 5, "method": "lock", "params": ["l"]}))
        .await;
    let reply = srv.recv().await;
    assert_eq!(reply["id"], json!(5));
    assert_eq!(reply["error"], json!("unknown method"));
}

#[tokio::test]
async fn sends_inactivity_probe_and_gives_up_on_silence() {
    let (client, mut srv) = pair(ClientConfig {
        inactivity_probe: Some(Duration::from_millis(200)),
        ..quiet()
    });
    let probe = srv.recv().await;
    assert_eq!(probe["method"], json!("echo"));
    // Answer the first probe: the connection stays up.
    srv.send(json!({"id": probe["id"], "result": [], "error": null}))
        .await;
    let probe2 = srv.recv().await;
    assert_eq!(probe2["method"], json!("echo"));
    assert!(!client.is_closed());
    // Ignore the second: the client closes.
    let reason = tokio::time::timeout(Duration::from_secs(5), client.closed())
        .await
        .expect("closed after silence");
    assert!(reason.contains("probe"), "{reason}");
    assert!(matches!(
        client.echo().await,
        Err(ClientError::Disconnected { .. })
    ));
}

#[tokio::test]
async fn garbage_fails_pending_calls() {
    let (client, mut srv) = pair(quiet());
    let c = client.clone();
    let call = tokio::spawn(async move { c.list_dbs().await });
    let _req = srv.recv().await;
    srv.send_raw(b"{\"id\":1,\"res").await;
    srv.send_raw(b"ult\":[1}garbage").await;
    let err = call.await.expect("join").expect_err("must fail");
    assert!(matches!(err, ClientError::Disconnected { .. }), "{err}");
    assert!(client.is_closed());

    let (client, mut srv) = pair(quiet());
    let c = client.clone();
    let call = tokio::spawn(async move { c.list_dbs().await });
    let _req = srv.recv().await;
    srv.send_raw(b"   not json at all").await;
    assert!(call.await.expect("join").is_err());

    // A reply that is JSON but not a message closes the connection too.
    let (client, mut srv) = pair(quiet());
    let c = client.clone();
    let call = tokio::spawn(async move { c.list_dbs().await });
    let _req = srv.recv().await;
    srv.send(json!([1, 2, 3])).await;
    assert!(call.await.expect("join").is_err());
}

#[tokio::test]
async fn eof_fails_pending_calls() {
    let (client, mut srv) = pair(quiet());
    let c = client.clone();
    let call = tokio::spawn(async move { c.list_dbs().await });
    let _req = srv.recv().await;
    drop(srv);
    let err = call.await.expect("join").expect_err("must fail");
    assert!(matches!(err, ClientError::Disconnected { .. }), "{err}");
}

#[tokio::test]
async fn malformed_replies_are_errors() {
    let (client, mut srv) = pair(quiet());
    let c = client.clone();
    let call = tokio::spawn(async move { c.list_dbs().await });
    let req = srv.recv().await;
    srv.send(json!({"id": req["id"], "result": {"not": "a list"}, "error": null}))
        .await;
    assert!(matches!(
        call.await.expect("join"),
        Err(ClientError::BadReply { .. })
    ));

    let c = client.clone();
    let call = tokio::spawn(async move { c.get_schema("Open_vSwitch").await });
    let req = srv.recv().await;
    srv.send(json!({"id": req["id"], "result": {"tables": 5}, "error": null}))
        .await;
    assert!(matches!(
        call.await.expect("join"),
        Err(ClientError::Monitor(_))
    ));

    let c = client.clone();
    let call = tokio::spawn(async move {
        c.transact(
            "Open_vSwitch",
            vec![json!({"op": "comment", "comment": "x"})],
        )
        .await
    });
    let req = srv.recv().await;
    srv.send(json!({"id": req["id"], "result": "nope", "error": null}))
        .await;
    assert!(matches!(
        call.await.expect("join"),
        Err(ClientError::Transact(_))
    ));
    // The connection survived all of that.
    assert!(!client.is_closed());
}

#[tokio::test]
async fn transact_error_names_the_op() {
    let (client, mut srv) = pair(quiet());
    let c = client.clone();
    let call = tokio::spawn(async move {
        c.transact(
            "Open_vSwitch",
            vec![
                json!({"op": "comment", "comment": "x"}),
                json!({"op": "insert", "table": "Bridge", "row": {}}),
            ],
        )
        .await
    });
    let req = srv.recv().await;
    assert_eq!(req["method"], json!("transact"));
    assert_eq!(req["params"][0], json!("Open_vSwitch"));
    assert_eq!(req["params"].as_array().map(Vec::len), Some(3));
    srv.send(json!({"id": req["id"], "error": null, "result": [
        {}, {"error": "constraint violation", "details": "name is required"}]}))
        .await;
    let err = call.await.expect("join").expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("op 1") && msg.contains("insert Bridge"),
        "{msg}"
    );
    assert!(
        msg.contains("constraint violation") && msg.contains("name is required"),
        "{msg}"
    );

    // An RPC-level error (unknown database) is an Rpc error.
    let c = client.clone();
    let call = tokio::spawn(async move { c.transact("Nope", vec![]).await });
    let req = srv.recv().await;
    srv.send(json!({"id": req["id"], "result": null,
                    "error": {"error": "unknown database", "details": "Nope"}}))
        .await;
    let err = call.await.expect("join").expect_err("must fail");
    assert!(matches!(err, ClientError::Rpc { .. }), "{err}");
    assert!(err.to_string().contains("unknown database"), "{err}");
}

#[tokio::test]
async fn monitor_falls_back_and_delivers_updates() {
    let (client, mut srv) = pair(quiet());
    let c = client.clone();
    let tables: BTreeMap<String, MonitorRequest> =
        [("Interface".to_string(), MonitorRequest::columns(["name"]))].into();
    let call = tokio::spawn(async move { c.monitor("Open_vSwitch", &tables).await });
    let req = srv.recv().await;
    assert_eq!(req["method"], json!("monitor_cond"));
    srv.send(json!({"id": req["id"], "result": null, "error": "unknown method"}))
        .await;
    let req = srv.recv().await;
    assert_eq!(req["method"], json!("monitor"));
    assert_eq!(
        req["params"][2],
        json!({"Interface": {"columns": ["name"]}})
    );
    let mon_id = req["params"][1].clone();
    let u = "11111111-1111-1111-1111-111111111111";
    // The reply and the first update arrive in one write.
    let reply = json!({"id": req["id"], "error": null,
                       "result": {"Interface": {u: {"new": {"name": "a"}}}}});
    let update = json!({"id": null, "method": "update",
                        "params": [mon_id, {"Interface": {u: {"old": {"name": "a"}, "new": {"name": "b"}}}}]});
    srv.send_raw(format!("{reply}{update}").as_bytes()).await;
    let mut mon = call.await.expect("join").expect("monitor");
    assert_eq!(mon.format, UpdateFormat::Update);
    assert_eq!(mon.initial["Interface"][u]["new"]["name"], json!("a"));
    let msg = tokio::time::timeout(Duration::from_secs(5), mon.updates.recv())
        .await
        .expect("in time");
    assert!(
        matches!(msg, Some(MonitorMessage::Update(ref v)) if v["Interface"][u]["new"]["name"] == json!("b"))
    );

    // Cancel: the request goes out and the channel ends.
    let c = client.clone();
    let id = mon.id.clone();
    let call = tokio::spawn(async move { c.cancel(&id).await });
    let req = srv.recv().await;
    assert_eq!(req["method"], json!("monitor_cancel"));
    assert_eq!(req["params"], json!([mon.id]));
    srv.send(json!({"id": req["id"], "result": {}, "error": null}))
        .await;
    call.await.expect("join").expect("cancel");
    assert!(mon.updates.recv().await.is_none());
}

#[tokio::test]
async fn monitor_cond_update2_and_server_cancel() {
    let (client, mut srv) = pair(quiet());
    let c = client.clone();
    let tables: BTreeMap<String, MonitorRequest> = [(
        "Interface".to_string(),
        MonitorRequest {
            columns: Some(vec!["name".into()]),
            where_: Some(vec![json!(["name", "==", "a"])]),
        },
    )]
    .into();
    let call = tokio::spawn(async move { c.monitor("Open_vSwitch", &tables).await });
    let req = srv.recv().await;
    assert_eq!(req["method"], json!("monitor_cond"));
    assert_eq!(
        req["params"][2],
        json!({"Interface": {"columns": ["name"], "where": [["name", "==", "a"]]}})
    );
    let mon_id = req["params"][1].clone();
    srv.send(json!({"id": req["id"], "result": {}, "error": null}))
        .await;
    let mut mon = call.await.expect("join").expect("monitor");
    assert_eq!(mon.format, UpdateFormat::Update2);
    srv.send(json!({"id": null, "method": "update2", "params": [mon_id, {"Interface": {}}]}))
        .await;
    assert!(matches!(
        mon.updates.recv().await,
        Some(MonitorMessage::Update(_))
    ));
    srv.send(json!({"id": null, "method": "monitor_canceled", "params": [mon_id]}))
        .await;
    assert_eq!(mon.updates.recv().await, Some(MonitorMessage::Canceled));
    assert!(mon.updates.recv().await.is_none());
    // Notifications for unknown monitors and unknown methods are ignored.
    srv.send(json!({"id": null, "method": "update2", "params": ["nobody", {}]}))
        .await;
    srv.send(json!({"id": null, "method": "locked", "params": ["l"]}))
        .await;
    let c = client.clone();
    let call = tokio::spawn(async move { c.echo().await });
    let req = srv.recv().await;
    srv.send(json!({"id": req["id"], "result": [], "error": null}))
        .await;
    call.await.expect("join").expect("still alive");
}

#[tokio::test]
async fn request_timeout() {
    let (client, mut srv) = pair(ClientConfig {
        request_timeout: Some(Duration::from_millis(100)),
        ..quiet()
    });
    let c = client.clone();
    let call = tokio::spawn(async move { c.list_dbs().await });
    let req = srv.recv().await;
    let err = call.await.expect("join").expect_err("must time out");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    // A late reply is ignored, not a crash.
    srv.send(json!({"id": req["id"], "result": [], "error": null}))
        .await;
    let c = client.clone();
    let call = tokio::spawn(async move { c.echo().await });
    let req = srv.recv().await;
    srv.send(json!({"id": req["id"], "result": [], "error": null}))
        .await;
    call.await.expect("join").expect("alive");
}
