//! End-to-end: tokens with roles (the API.md matrix), the start-up security rules, TLS and
//! mutual TLS with certificates generated at test time.

mod common;

use std::path::Path;

use common::*;
use proto::inventory::v1 as pb;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const TOKENS: [(&str, &str); 5] = [
    ("storefront", "tok-storefront"),
    ("inventory_manager", "tok-manager"),
    ("support", "tok-support"),
    ("reporter", "tok-reporter"),
    ("admin", "tok-admin"),
];

fn tokens_toml() -> String {
    let mut s = String::new();
    for (role, token) in TOKENS {
        s.push_str(&format!(
            "[[tokens]]\nrole = \"{role}\"\nsha256 = \"{}\"\n\n",
            server::auth::hash_token(token)
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        Opts::default().config(tokens_toml()),
    );
    let channel = server.channel().await;
    let anon = Inv::new(channel.clone());
    let mut manager = Inv::new(channel.clone()).with_token("tok-manager");
    let mut storefront = Inv::new(channel.clone()).with_token("tok-storefront");
    let mut support = Inv::new(channel.clone()).with_token("tok-support");
    let mut reporter = Inv::new(channel.clone()).with_token("tok-reporter");
    let mut admin = Inv::new(channel.clone()).with_token("tok-admin");

    // Missing and unknown tokens.
    assert_code(anon.clone().stock("S").await, Code::Unauthenticated);
    assert_code(
        Inv::new(channel.clone())
            .with_token("wrong")
            .stock("S")
            .await,
        Code::Unauthenticated,
    );

    // Right role.
    manager.upsert("S", 0).await.unwrap();
    manager.receive("r1", "S", 10).await.unwrap();
    storefront.reserve("h1", &[("S", 2)], 0).await.unwrap();
    storefront.commit("h1", &[]).await.unwrap();
    support.stock("S").await.unwrap();
    support.reservation("h1").await.unwrap();
    admin.adjust("a1", "S", 9).await.unwrap();

    // Wrong role: PERMISSION_DENIED naming the role and the RPC; nothing applied.
    let e = assert_code(
        storefront.receive("r2", "S", 5).await,
        Code::PermissionDenied,
    );
    assert!(
        e.message().contains("storefront") && e.message().contains("ReceiveStock"),
        "{e:?}"
    );
    assert_code(
        support.reserve("h2", &[("S", 1)], 0).await,
        Code::PermissionDenied,
    );
    assert_code(reporter.stock("S").await, Code::PermissionDenied);
    assert_code(
        storefront.adjust("a2", "S", 100).await,
        Code::PermissionDenied,
    );
    assert_eq!(admin.stock("S").await.unwrap().on_hand, 9);

    // Admin RPCs: admin only.
    let status = |token: &'static str| {
        let channel = channel.clone();
        async move {
            pb::admin_client::AdminClient::new(channel)
                .status(req(pb::StatusRequest {}, Some(token)))
                .await
        }
    };
    let snapshot = |token: Option<&'static str>| {
        let channel = channel.clone();
        async move {
            pb::admin_client::AdminClient::new(channel)
                .snapshot(req(pb::SnapshotRequest {}, token))
                .await
        }
    };
    assert!(status("tok-admin").await.is_ok());
    for token in [
        "tok-storefront",
        "tok-manager",
        "tok-support",
        "tok-reporter",
    ] {
        assert_code(status(token).await, Code::PermissionDenied);
        let e = assert_code(snapshot(Some(token)).await, Code::PermissionDenied);
        assert!(e.message().contains("Admin/Snapshot"), "{e:?}");
    }
    assert_code(snapshot(None).await, Code::Unauthenticated);
    let taken = snapshot(Some("tok-admin")).await.unwrap().into_inner();
    assert!(taken.lsn > 0 && taken.bytes > 0, "{taken:?}");
    // Only the admin's call took one.
    let st = pb::admin_client::AdminClient::new(channel.clone())
        .status(req(pb::StatusRequest {}, Some("tok-admin")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.snapshot_lsn, taken.lsn);

    // ExecuteBatch: each op kind is checked against the role; a refused batch applies nothing.
    use pb::batch_op::Op as O;
    let batch = |ops: Vec<O>| pb::ExecuteBatchRequest {
        ops: ops
            .into_iter()
            .map(|o| pb::BatchOp { op: Some(o) })
            .collect(),
    };
    let reserve = O::Reserve(pb::ReserveRequest {
        reservation_id: "b1".into(),
        lines: lines_of(&[("S", 1)]),
        ttl_seconds: 0,
    });
    let receive = O::Receive(pb::ReceiveStockRequest {
        receipt_id: "b-r".into(),
        sku: "S".into(),
        quantity: 1,
    });
    let e = assert_code(
        storefront
            .client
            .execute_batch(req(
                batch(vec![reserve.clone(), receive.clone()]),
                Some("tok-storefront"),
            ))
            .await,
        Code::PermissionDenied,
    );
    assert!(e.message().contains("receive"), "{e:?}");
    assert_code(storefront.reservation("b1").await, Code::NotFound);
    let ok = storefront
        .client
        .execute_batch(req(batch(vec![reserve.clone()]), Some("tok-storefront")))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        ok.results[0].result,
        Some(pb::batch_result::Result::Reservation(_))
    ));
    manager
        .client
        .execute_batch(req(batch(vec![receive]), Some("tok-manager")))
        .await
        .unwrap();
    assert_code(
        support
            .client
            .execute_batch(req(batch(vec![reserve]), Some("tok-support")))
            .await,
        Code::PermissionDenied,
    );

    // Health needs no token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
}

#[test]
fn startup_security_rules() {
    let dir = tempfile::tempdir().unwrap();
    // No tokens on a non-loopback address: refused.
    let err = Server::try_start(
        &dir.path().join("a"),
        Opts::default().arg("--listen").arg("0.0.0.0:0"),
    )
    .err()
    .expect("must refuse");
    assert!(err.0.is_some_and(|s| !s.success()));
    assert!(err.1.contains("loopback"), "{}", err.1);
    // Tokens without TLS on a non-loopback address: refused unless --insecure.
    let err = Server::try_start(
        &dir.path().join("b"),
        Opts::default()
            .config(tokens_toml())
            .arg("--listen")
            .arg("0.0.0.0:0"),
    )
    .err()
    .expect("must refuse");
    assert!(err.1.contains("--insecure"), "{}", err.1);
    let server = Server::start(
        &dir.path().join("c"),
        Opts::default()
            .config(tokens_toml())
            .arg("--listen")
            .arg("0.0.0.0:0")
            .arg("--insecure"),
    );
    assert!(server.addr.ip().is_unspecified());
    // Development mode on loopback says so in the log.
    let dev = Server::start(&dir.path().join("d"), Opts::default());
    assert!(
        dev.log_text().contains("development mode"),
        "{}",
        dev.log_text()
    );
}

struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn make_pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "inventory test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "inventoryd");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().unwrap();
    let server_cert = params.signed_by(&server_key, &ca).unwrap();

    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "storefront-1");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().unwrap();
    let client_cert = params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

async fn tls_call(
    server: &Server,
    ca: &str,
    identity: Option<(&str, &str)>,
) -> Result<pb::StockLevel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Endpoint::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    Inv::new(channel)
        .with_token("tok-admin")
        .stock("T")
        .await
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki();
    let ca = write(dir.path(), "ca.pem", &pki.ca_pem);
    let cert = write(dir.path(), "server.pem", &pki.server_cert);
    let key = write(dir.path(), "server.key", &pki.server_key);

    // TLS: a client trusting the CA gets through (NOT_FOUND = the call reached the engine).
    let config = format!(
        "{}[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n",
        tokens_toml()
    );
    let server = Server::start(&dir.path().join("tls"), Opts::default().config(config));
    let r = tls_call(&server, &pki.ca_pem, None).await;
    assert!(r.as_ref().is_err_and(|e| e.contains("NotFound")), "{r:?}");
    // Plain text to a TLS port fails.
    let plain = Endpoint::from_shared(server.url()).unwrap().connect().await;
    if let Ok(channel) = plain {
        let e = Inv::new(channel)
            .with_token("tok-admin")
            .stock("T")
            .await
            .unwrap_err();
        assert_ne!(e.code(), Code::NotFound, "{e:?}");
    }
    // invctl over TLS.
    let url = format!("https://{}", server.addr);
    let (code, _, err) = invctl(&[
        "--addr",
        &url,
        "--ca",
        &ca,
        "--token",
        "tok-admin",
        "stock",
        "T",
    ]);
    assert_eq!(code, 3, "{err}");
    drop(server);

    // Mutual TLS: without a client certificate the handshake fails; with one signed by the
    // client CA it works.
    let config = format!(
        "{}[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\nclient_ca = \"{ca}\"\n",
        tokens_toml()
    );
    let server = Server::start(&dir.path().join("mtls"), Opts::default().config(config));
    let r = tls_call(&server, &pki.ca_pem, None).await;
    assert!(r.as_ref().is_err_and(|e| !e.contains("NotFound")), "{r:?}");
    let r = tls_call(
        &server,
        &pki.ca_pem,
        Some((&pki.client_cert, &pki.client_key)),
    )
    .await;
    assert!(r.as_ref().is_err_and(|e| e.contains("NotFound")), "{r:?}");
    // A client certificate from another CA is refused.
    let other = make_pki();
    let r = tls_call(
        &server,
        &pki.ca_pem,
        Some((&other.client_cert, &other.client_key)),
    )
    .await;
    assert!(r.as_ref().is_err_and(|e| !e.contains("NotFound")), "{r:?}");
}
