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
