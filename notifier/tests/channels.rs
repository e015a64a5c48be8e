//! The real SMTP client and webhook against the test sink and receiver (127.0.0.1:0).

use notifier::channel::smtp::{Smtp, SmtpConfig};
use notifier::channel::webhook::Webhook;
use notifier::message::{Channel, Message, Status, message_id};
use notifier::testing::{SmtpSink, WebhookReceiver};

fn message(channel: Channel, to: &str, body: &str) -> Message {
    Message {
        id: message_id(3, 1, channel, to),
        channel,
        recipient: to.into(),
        subject: "Order o-1 has shipped".into(),
        body: body.into(),
        event_kind: "OrderShipped".into(),
        event_lsn: 3,
        event_index: 1,
        event_at_ms: 1,
        order_id: "o-1".into(),
        created_at_ms: 1,
        status: Status::Pending,
        attempts: 0,
        attempts_base: 0,
        last_error: String::new(),
        next_attempt_ms: 0,
        sent_at_ms: 0,
    }
}

fn smtp(sink: &SmtpSink, username: &str) -> Smtp {
    Smtp::new(SmtpConfig {
        host: "127.0.0.1".into(),
        port: sink.addr.port(),
        starttls: false,
        ca_file: "/nonexistent".into(),
        username: username.into(),
        password: "secret".into(),
        from: "shop@example.com".into(),
        helo: "test".into(),
    })
    .unwrap()
}

#[tokio::test]
async fn smtp_batch_arrives_with_message_ids_auth_and_dot_stuffing() {
    let sink = SmtpSink::start().unwrap();
    let a = message(
        Channel::Email,
        "a@example.com",
        "line one\n.leading dot\nend",
    );
    let b = message(Channel::Email, "b@example.com", "second");
    let results = smtp(&sink, "shop")
        .send_batch(&[a.clone(), b.clone()])
        .await;
    assert_eq!(results, vec![Ok(()), Ok(())]);
    let mails = sink.mails();
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[0].to, ["a@example.com"]);
    assert_eq!(mails[0].from, "shop@example.com");
    assert_eq!(
        mails[0].header("Message-ID").unwrap(),
        format!("<{}@inventory-notifier>", a.id)
    );
    assert_eq!(mails[0].header("Subject").unwrap(), "Order o-1 has shipped");
    assert_eq!(mails[0].body(), "line one\n.leading dot\nend\n");
    // AUTH PLAIN of "\0shop\0secret".
    assert_eq!(
        mails[1].auth.as_deref(),
        Some("AUTH PLAIN AHNob3AAc2VjcmV0")
    );
}

#[tokio::test]
async fn a_down_mail_server_fails_every_message_of_the_batch() {
    let sink = SmtpSink::start().unwrap();
    sink.set_down(true);
    let a = message(Channel::Email, "a@example.com", "x");
    let results = smtp(&sink, "").send_batch(&[a.clone(), a]).await;
    assert_eq!(results.len(), 2);
    for r in results {
        let e = r.unwrap_err();
        assert!(e.contains("421"), "{e}");
    }
    assert!(sink.mails().is_empty());
}

#[tokio::test]
async fn webhook_posts_json_with_the_idempotency_key_and_reports_refusals() {
    let hooks = WebhookReceiver::start().unwrap();
    let hook = Webhook::new(&hooks.url(), std::path::Path::new("/nonexistent")).unwrap();
    let m = message(Channel::Sms, "+15550100", "Order o-1 shipped.");
    assert_eq!(
        hook.send_batch(std::slice::from_ref(&m)).await,
        vec![Ok(())]
    );
    let got = hooks.hooks();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("Idempotency-Key"), Some(m.id.as_str()));
    let json = got[0].json();
    assert_eq!(json["to"], "+15550100");
    assert_eq!(json["text"], "Order o-1 shipped.");
    assert_eq!(json["order_id"], "o-1");
    hooks.set_down(true);
    let e = hook.send_batch(&[m]).await.remove(0).unwrap_err();
    assert!(e.contains("503"), "{e}");
    assert!(Webhook::new("ftp://x", std::path::Path::new("/x")).is_err());
}

/// A one-session mail server that requires STARTTLS (certificate signed by a test CA), then
/// takes one mail; returns its address and the DATA it got.
fn starttls_server(
    cert_pem: String,
    key_pem: String,
) -> (std::net::SocketAddr, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.write_all(b"220 tls-sink\r\n").unwrap();
        {
            let mut plain = BufReader::new(tcp.try_clone().unwrap());
            let mut line = String::new();
            plain.read_line(&mut line).unwrap();
            assert!(line.starts_with("EHLO"), "{line}");
            tcp.write_all(b"250-tls-sink\r\n250 STARTTLS\r\n").unwrap();
            line.clear();
            plain.read_line(&mut line).unwrap();
            assert_eq!(
                line, "STARTTLS\r\n",
                "nothing is sent in clear before STARTTLS"
            );
            tcp.write_all(b"220 go ahead\r\n").unwrap();
        }
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
        let mut data = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            if tls.read_line(&mut line).unwrap() == 0 {
                return data;
            }
            let reply: &[u8] = match line.trim_end() {
                l if l.starts_with("EHLO") => b"250 tls-sink\r\n",
                "DATA" => {
                    tls.get_mut().write_all(b"354 go\r\n").unwrap();
                    loop {
                        line.clear();
                        tls.read_line(&mut line).unwrap();
                        if line == ".\r\n" {
                            break;
                        }
                        data.push_str(&line);
                    }
                    b"250 queued\r\n"
                }
                "QUIT" => {
                    tls.get_mut().write_all(b"221 bye\r\n").unwrap();
                    return data;
                }
                _ => b"250 ok\r\n",
            };
            tls.get_mut().write_all(reply).unwrap();
        }
    });
    (addr, handle)
}

#[tokio::test]
async fn starttls_upgrades_before_anything_is_sent_and_verifies_the_server() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let (addr, server) = starttls_server(cert.pem(), key.serialize_pem());
    let smtp = Smtp::new(SmtpConfig {
        host: "127.0.0.1".into(),
        port: addr.port(),
        starttls: true,
        ca_file,
        username: String::new(),
        password: String::new(),
        from: "shop@example.com".into(),
        helo: "test".into(),
    })
    .unwrap();
    let m = message(Channel::Email, "a@example.com", "over TLS");
    assert_eq!(
        smtp.send_batch(std::slice::from_ref(&m)).await,
        vec![Ok(())]
    );
    let data = server.join().unwrap();
    assert!(
        data.contains(&format!("Message-ID: <{}@inventory-notifier>", m.id)),
        "{data}"
    );
    assert!(data.contains("over TLS"), "{data}");

    // Against the plain sink (no STARTTLS offered) a STARTTLS client refuses to send.
    let sink = SmtpSink::start().unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let ca2 = dir2.path().join("ca.pem");
    std::fs::write(&ca2, ca.pem()).unwrap();
    let strict = Smtp::new(SmtpConfig {
        host: "127.0.0.1".into(),
        port: sink.addr.port(),
        starttls: true,
        ca_file: ca2,
        username: String::new(),
        password: String::new(),
        from: "shop@example.com".into(),
        helo: "test".into(),
    })
    .unwrap();
    let e = strict.send_batch(&[m]).await.remove(0).unwrap_err();
    assert!(e.contains("STARTTLS"), "{e}");
    assert!(sink.mails().is_empty());
}
