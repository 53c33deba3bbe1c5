//! The trust boundary against a real etcd and a TLS controller (certificates made with the
//! real `weftctl cert`): a chassis speaks only for itself (forged Subscribe and forged
//! ReportStatus are refused and change nothing in etcd, byte for byte), a second agent with a
//! live name is refused, no credential is `Unauthenticated`, a reader cannot write
//! (`PermissionDenied` naming admin), an agent credential can create and delete ports only,
//! tokens and the revocation list work without a restart, and plain text does not reach a
//! TLS controller.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use weft_controller::auth::Policy;
use weft_controller::{Controller, Security};
use weft_proto::tls::{TlsFiles, Transport};
use weft_proto::v1::northbound_client::NorthboundClient;
use weft_proto::v1::southbound_client::SouthboundClient;
use weft_proto::v1::*;
use weft_testbed::pki::{Credential, Pki};

struct Tls {
    _dir: tempfile::TempDir,
    pki: Pki,
    tokens: std::path::PathBuf,
    revoked: std::path::PathBuf,
}

fn pki() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let pki =
        Pki::create(&dir.path().join("pki")).expect("weftctl cert init (build the binaries first)");
    pki.issue("controller", "controller", &["127.0.0.1"])
        .unwrap();
    for (n, r) in [
        ("host1", "agent"),
        ("host2", "agent"),
        ("alice", "admin"),
        ("bob", "reader"),
    ] {
        pki.issue(n, r, &[n]).unwrap();
    }
    Tls {
        tokens: dir.path().join("tokens"),
        revoked: dir.path().join("revoked"),
        pki,
        _dir: dir,
    }
}

fn files(c: &Credential) -> TlsFiles {
    TlsFiles {
        ca: c.ca.clone(),
        cert: Some(c.cert.clone()),
        key: Some(c.key.clone()),
    }
}

async fn start(t: &Tls, etcd: &Etcd, prefix: &str) -> InProc {
    let security = Security {
        transport: Transport::Tls(files(&t.pki.files("controller"))),
        policy: Policy::enforced(Some(t.tokens.clone()), Some(t.revoked.clone())).unwrap(),
        etcd_tls: None,
    };
    let ctl = Controller::bind_secure(config(&etcd.endpoint(), prefix), security)
        .await
        .unwrap();
    InProc::start_bound(ctl)
}

/// A TLS channel presenting `cred` (None: only the CA, no client certificate).
async fn channel(addr: std::net::SocketAddr, ca: &Path, cred: Option<&Credential>) -> Channel {
    let f = TlsFiles {
        ca: ca.to_path_buf(),
        cert: cred.map(|c| c.cert.clone()),
        key: cred.map(|c| c.key.clone()),
    };
    let ep = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(f.client_config().unwrap())
        .unwrap();
    for _ in 0..100 {
        if let Ok(c) = ep.connect().await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {addr} over TLS");
}

fn chassis(name: &str, ip: &str) -> SubscribeRequest {
    SubscribeRequest {
        chassis: Some(Chassis {
            name: name.into(),
            encap_ip: ip.into(),
            encap_types: vec!["geneve".into()],
            datapath_type: "netdev".into(),
            version: "test".into(),
            ..Default::default()
        }),
    }
}

fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test]
async fn a_chassis_speaks_only_for_itself_and_roles_are_enforced() {
    let t = pki();
    let etcd = start_etcd();
    let prefix = unique_prefix("security");
    let ctl = start(&t, &etcd, &prefix).await;
    let ca = t.pki.ca();
    let host1 = t.pki.files("host1");
    let host2 = t.pki.files("host2");

    // The real host1 subscribes with its own certificate.
    let mut sb1 = SouthboundClient::new(channel(ctl.addr, &ca, Some(&host1)).await);
    let mut stream = sb1
        .subscribe(chassis("host1", "172.31.0.1"))
        .await
        .expect("host1 subscribes as itself")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let applied = first.revision;
    sb1.report_status(StatusReport {
        chassis: "host1".into(),
        applied_revision: applied,
        ..Default::default()
    })
    .await
    .expect("host1 reports for itself");
    // The controller holds the ack and writes it in its next batch: take the snapshot once
    // it is in etcd, so that only the refused calls below could change it.
    let mut before = dump(&etcd.endpoint(), &prefix).await;
    let t0 = std::time::Instant::now();
    while !before
        .iter()
        .any(|(k, _)| k.ends_with("/status/applied/host1"))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "host1's ack never reached etcd: {before:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        before = dump(&etcd.endpoint(), &prefix).await;
    }

    // host2's certificate claiming host1, with another encap IP: refused, nothing changed.
    let mut sb2 = SouthboundClient::new(channel(ctl.addr, &ca, Some(&host2)).await);
    let e = sb2
        .subscribe(chassis("host1", "172.31.0.99"))
        .await
        .expect_err("forged Subscribe refused");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("\"host1\"") && e.message().contains("host2"),
        "{}",
        e.message()
    );
    let e = sb2
        .report_status(StatusReport {
            chassis: "host1".into(),
            applied_revision: applied,
            ..Default::default()
        })
        .await
        .expect_err("forged ReportStatus refused");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // No certificate at all: Unauthenticated.
    let mut anon = SouthboundClient::new(channel(ctl.addr, &ca, None).await);
    let e = anon
        .subscribe(chassis("host1", "172.31.0.99"))
        .await
        .expect_err("anonymous Subscribe refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    // A second agent with host1's name and certificate but another encap IP, while the
    // first is live: refused naming the live one.
    let mut sb1b = SouthboundClient::new(channel(ctl.addr, &ca, Some(&host1)).await);
    let e = sb1b
        .subscribe(chassis("host1", "172.31.0.98"))
        .await
        .expect_err("second agent refused");
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert!(e.message().contains("172.31.0.1"), "{}", e.message());

    // An admin's certificate cannot use the Southbound either.
    let alice = t.pki.files("alice");
    let mut sba = SouthboundClient::new(channel(ctl.addr, &ca, Some(&alice)).await);
    let e = sba
        .subscribe(chassis("host1", "172.31.0.97"))
        .await
        .expect_err("admin cannot subscribe");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("needs role agent"), "{}", e.message());

    let after = dump(&etcd.endpoint(), &prefix).await;
    assert_eq!(before, after, "refused calls changed etcd");
    println!("forged Subscribe, forged ReportStatus, anonymous and duplicate agents refused; etcd byte-identical ({} keys)", after.len());

    // Northbound roles. A reader can read, not write; the error names the role needed.
    let bob = t.pki.files("bob");
    let mut nb_bob = NorthboundClient::new(channel(ctl.addr, &ca, Some(&bob)).await);
    nb_bob
        .list_switches(ListSwitchesRequest {})
        .await
        .expect("reader lists");
    let e = nb_bob
        .create_switch(CreateSwitchRequest {
            switch: Some(LogicalSwitch {
                name: "sw0".into(),
                subnet: "10.0.0.0/24".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("reader cannot write");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("needs role admin") && e.message().contains("bob (reader"),
        "{}",
        e.message()
    );
    assert_eq!(before, dump(&etcd.endpoint(), &prefix).await);

    // No credential on the northbound: Unauthenticated.
    let mut nb_anon = NorthboundClient::new(channel(ctl.addr, &ca, None).await);
    let e = nb_anon
        .list_switches(ListSwitchesRequest {})
        .await
        .expect_err("anonymous read refused");
    assert_eq!(e.code(), Code::Unauthenticated);

    // The admin writes.
    let mut nb_alice = NorthboundClient::new(channel(ctl.addr, &ca, Some(&alice)).await);
    nb_alice
        .create_switch(CreateSwitchRequest {
            switch: Some(LogicalSwitch {
                name: "sw0".into(),
                subnet: "10.0.0.0/24".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("admin writes");

    // An agent's credential (its CNI front end) creates and deletes ports only.
    let mut nb_h1 = NorthboundClient::new(channel(ctl.addr, &ca, Some(&host1)).await);
    nb_h1
        .create_port(CreatePortRequest {
            port: Some(LogicalSwitchPort {
                switch_name: "sw0".into(),
                name: "p1".into(),
                addresses: vec!["dynamic".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("agent creates a port");
    nb_h1
        .delete_port(DeleteRequest {
            name: "p1".into(),
            ..Default::default()
        })
        .await
        .expect("agent deletes a port");
    let e = nb_h1
        .delete_switch(DeleteRequest {
            name: "sw0".into(),
            ..Default::default()
        })
        .await
        .expect_err("agent cannot delete a switch");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("needs role admin"), "{}", e.message());

    // Tokens: issued into the token file, used without a restart, revoked by removing them.
    let line = Pki::token_line("reader", "carol").unwrap();
    let token = line.split_whitespace().nth(2).unwrap().to_string();
    std::fs::write(&t.tokens, format!("{line}\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    nb_anon
        .list_switches(with_token(ListSwitchesRequest {}, &token))
        .await
        .expect("token reader lists");
    let e = nb_anon
        .create_switch(with_token(
            CreateSwitchRequest {
                switch: Some(LogicalSwitch {
                    name: "sw1".into(),
                    subnet: "10.1.0.0/24".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect_err("token reader cannot write");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("carol (reader, token)"),
        "{}",
        e.message()
    );
    std::fs::write(&t.tokens, "").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = nb_anon
        .list_switches(with_token(ListSwitchesRequest {}, &token))
        .await
        .expect_err("removed token refused");
    assert_eq!(e.code(), Code::Unauthenticated);

    // Revoking bob's certificate by serial: refused on the next call, no restart.
    std::fs::write(&t.revoked, format!("{}\n", t.pki.serial("bob").unwrap())).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = nb_bob
        .list_switches(ListSwitchesRequest {})
        .await
        .expect_err("revoked certificate refused");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("revoked"), "{}", e.message());

    // Plain text does not reach a TLS controller.
    let plain = Endpoint::from_shared(format!("http://{}", ctl.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2));
    let r = match plain.connect().await {
        Ok(ch) => NorthboundClient::new(ch)
            .list_switches(ListSwitchesRequest {})
            .await
            .map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(
        r.is_err(),
        "a plain-text call was answered by a TLS controller"
    );

    // A certificate from another CA is refused at the handshake.
    let other = pki();
    let ep = Endpoint::from_shared(format!("https://{}", ctl.addr))
        .unwrap()
        .tls_config(
            TlsFiles {
                ca: ca.clone(),
                cert: Some(other.pki.files("alice").cert),
                key: Some(other.pki.files("alice").key),
            }
            .client_config()
            .unwrap(),
        )
        .unwrap()
        .timeout(Duration::from_secs(2));
    let r = match ep.connect().await {
        Ok(ch) => NorthboundClient::new(ch)
            .list_switches(ListSwitchesRequest {})
            .await
            .map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(r.is_err(), "a certificate of another CA was accepted");
    drop(stream);
    ctl.stop().await;
}
