//! The agent's debug service (`weft.v1.AgentDebug`) over real gRPC, without OVS: Info
//! answers (the OVS part names what it could not reach, within the timeout), reflection
//! lists the service, and bad requests name their field.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use weft_agent::debug::{bind, serve, DebugHandle};
use weft_proto::v1::agent_debug_client::AgentDebugClient;
use weft_proto::v1::{AgentInfoRequest, AgentTraceRequest, TunnelStart};

#[tokio::test]
async fn info_reflection_and_errors_without_ovs() {
    let rundir = tempfile::tempdir().unwrap();
    let h = DebugHandle::new("hv1", "192.0.2.1", "br-int", rundir.path().to_path_buf());
    h.set_metrics_url("http://192.0.2.1:9601/metrics".into());
    let l = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(l, h, async {
        let _ = rx.await;
    }));
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = AgentDebugClient::new(ch.clone());

    let started = std::time::Instant::now();
    let info = c.info(AgentInfoRequest {}).await.unwrap().into_inner();
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(info.chassis, "hv1");
    assert_eq!(info.encap_ip, "192.0.2.1");
    assert_eq!(info.metrics_url, "http://192.0.2.1:9601/metrics");
    assert!(!info.ready);
    assert!(
        info.ovs_error.contains("ovs-vswitchd.pid"),
        "{}",
        info.ovs_error
    );

    let e = c
        .physical_trace(AgentTraceRequest {
            inport: "p9".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("\"p9\""), "{}", e.message());
    let e = c
        .physical_trace(AgentTraceRequest {
            tunnel: Some(TunnelStart {
                encap: "ipip".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        e.message().contains("tunnel.encap \"ipip\""),
        "{}",
        e.message()
    );
    let e = c
        .physical_trace(AgentTraceRequest {
            inport: "p1".into(),
            microflow: "ip4.dst == 10.0.0.300".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

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
    assert!(
        l.service.iter().any(|s| s.name == "weft.v1.AgentDebug"),
        "{:?}",
        l.service
    );
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}
