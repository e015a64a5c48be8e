//! End-to-end notifications against the real `inventoryd`: an SMTP sink and a webhook receiver
//! started here on 127.0.0.1:0 receive what order flows through gRPC produce; a mail server
//! that is down, dead letters and retries, kill -9 in the middle, SMS opt-out, and one mail per
//! low-stock alert opening. No timing assertions: every wait polls until a deadline.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use notifier::testing::{Mail, SmtpSink, WebhookReceiver};
use proto::inventory::v1 as pb;
use tonic::Code;
use tonic::transport::Channel;

/// How long any awaited delivery may take before the test fails (a hang guard, not a target).
const DEADLINE: Duration = Duration::from_secs(60);

type Orders = pb::orders_client::OrdersClient<Channel>;
type Alerts = pb::alerts_client::AlertsClient<Channel>;

/// Polls `check` (an expression, re-evaluated each round) until it holds or [`DEADLINE`].
macro_rules! eventually {
    ($what:expr, $check:expr) => {{
        let give_up_at = Instant::now() + DEADLINE;
        while !$check {
            if Instant::now() >= give_up_at {
                panic!(
                    "gave up waiting for: {} (a hang guard: {DEADLINE:?})",
                    $what
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

fn config(sink: &SmtpSink, hooks: Option<&WebhookReceiver>, extra: &str) -> String {
    let (channels, url) = match hooks {
        Some(h) => (r#"["log", "email", "sms"]"#, h.url()),
        None => (r#"["log", "email"]"#, String::new()),
    };
    format!(
        "[notifier]\nchannels = {channels}\nmanagers = [\"boss@example.com\"]\n\
         backoff_initial_millis = 20\nbackoff_max_millis = 200\nwebhook_url = \"{url}\"\n{extra}\n\
         [notifier.smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"shop@example.com\"\n",
        sink.addr.port()
    )
}

struct Shop {
    inv: Inv,
    orders: Orders,
    alerts: Alerts,
}

impl Shop {
    async fn new(server: &Server) -> Self {
        let channel = server.channel().await;
        Self {
            inv: Inv::new(channel.clone()),
            orders: Orders::new(channel.clone()),
            alerts: Alerts::new(channel),
        }
    }

    async fn product(&mut self, sku: &str, reorder_level: u32, on_hand: u32) {
        self.inv
            .client
            .upsert_product(pb::UpsertProductRequest {
                sku: sku.into(),
                name: format!("product {sku}"),
                unit_price_cents: 1000,
                reorder_level,
                reorder_quantity: 40,
            })
            .await
            .unwrap();
        self.inv
            .receive(&format!("init-{sku}"), sku, on_hand)
            .await
            .unwrap();
    }

    async fn customer(&mut self, id: &str, email: bool, sms: bool) {
        self.orders
            .upsert_customer(pb::UpsertCustomerRequest {
                customer_id: id.into(),
                name: format!("Customer {id}"),
                email: format!("{id}@example.com"),
                phone: format!("+1555000{}", id.len()),
                address: "1 Main St".into(),
                notify_email: email,
                notify_sms: sms,
            })
            .await
            .unwrap();
    }

    async fn order(&mut self, id: &str, customer: &str, sku: &str, quantity: u32) -> pb::Order {
        self.orders
            .create_order(pb::CreateOrderRequest {
                order_id: id.into(),
                customer_id: customer.into(),
                lines: lines_of(&[(sku, quantity)]),
                shipping_address: "1 Main St".into(),
                payment_timeout_seconds: 3600,
            })
            .await
            .unwrap()
            .into_inner()
    }

    async fn pay(&mut self, order: &pb::Order) {
        let total = order.total_cents;
        self.orders
            .confirm_payment(pb::ConfirmPaymentRequest {
                order_id: order.order_id.clone(),
                payment_id: format!("pay-{}", order.order_id),
                amount_cents: total,
            })
            .await
            .unwrap();
    }

    async fn notifications(&mut self, status: pb::NotificationStatus) -> Vec<pb::Notification> {
        self.alerts
            .list_notifications(pb::ListNotificationsRequest {
                status: status as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .notifications
    }

    async fn retry(&mut self, id: &str) -> Result<pb::Notification, tonic::Status> {
        self.alerts
            .retry_notification(pb::RetryNotificationRequest {
                notification_id: id.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Every record so far is handled and nothing is waiting to be sent.
    async fn settled(&mut self, server: &Server) -> bool {
        let s = server.status().await;
        s.notify_lsn >= s.durable_lsn
            && self
                .notifications(pb::NotificationStatus::Pending)
                .await
                .is_empty()
    }
}

fn to(mails: &[Mail], who: &str) -> Vec<Mail> {
    mails.iter().filter(|m| m.to == [who]).cloned().collect()
}

fn subjects(mails: &[Mail]) -> Vec<String> {
    mails.iter().map(|m| m.header("Subject").unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_flow_sends_the_right_mails_and_sms_through_the_opted_in_channels() {
    let sink = SmtpSink::start().unwrap();
    let hooks = WebhookReceiver::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        Opts::default().config(config(&sink, Some(&hooks), "")),
    );
    let mut shop = Shop::new(&server).await;
    shop.product("SKU-1", 0, 100).await;
    shop.customer("alice", true, true).await;
    shop.customer("bob", true, false).await;

    let o1 = shop.order("o1", "alice", "SKU-1", 2).await;
    shop.pay(&o1).await;
    shop.orders
        .ship_order(pb::ShipOrderRequest {
            order_id: "o1".into(),
            carrier: "UPS".into(),
            tracking_number: "1Z999".into(),
        })
        .await
        .unwrap();
    shop.orders
        .deliver_order(pb::DeliverOrderRequest {
            order_id: "o1".into(),
        })
        .await
        .unwrap();
    shop.orders
        .request_return(pb::RequestReturnRequest {
            return_id: "r1".into(),
            order_id: "o1".into(),
            lines: lines_of(&[("SKU-1", 1)]),
            reason: "too big".into(),
        })
        .await
        .unwrap();
    shop.orders
        .approve_return(pb::ApproveReturnRequest {
            return_id: "r1".into(),
            refund_cents: 1000,
            restock: true,
        })
        .await
        .unwrap();
    let o2 = shop.order("o2", "bob", "SKU-1", 1).await;
    shop.pay(&o2).await;
    shop.orders
        .cancel_order(pb::CancelOrderRequest {
            order_id: "o2".into(),
            reason: "changed my mind".into(),
        })
        .await
        .unwrap();

    eventually!("alice's 5 mails and bob's 3", {
        let m = sink.mails();
        to(&m, "alice@example.com").len() >= 5 && to(&m, "bob@example.com").len() >= 3
    });
    eventually!("alice's 5 SMS", { hooks.hooks().len() >= 5 });
    eventually!("everything handled", shop.settled(&server).await);

    let mails = sink.mails();
    let alice = to(&mails, "alice@example.com");
    assert_eq!(
        subjects(&alice),
        [
            "Order o1 confirmed",
            "Payment received for order o1",
            "Order o1 has shipped",
            "Order o1 was delivered",
            "Return r1 approved",
        ]
    );
    assert!(
        alice[0].body().contains("2 x SKU-1 at 10.00"),
        "{}",
        alice[0].body()
    );
    assert!(alice[0].body().contains("Hello Customer alice"));
    assert!(alice[2].body().contains("Carrier: UPS"));
    assert!(alice[2].body().contains("Tracking number: 1Z999"));
    assert!(alice[3].body().contains("review"), "{}", alice[3].body());
    assert!(
        alice[4].body().contains("Refund: 10.00"),
        "{}",
        alice[4].body()
    );
    let bob = to(&mails, "bob@example.com");
    assert_eq!(
        subjects(&bob),
        [
            "Order o2 confirmed",
            "Payment received for order o2",
            "Order o2 was cancelled"
        ]
    );
    let cancelled = bob[2].body();
    assert!(cancelled.contains("Reason: changed my mind"), "{cancelled}");
    let paid = o2.total_cents;
    let refund = format!("Refund due: {}.{:02}", paid / 100, paid % 100);
    assert!(cancelled.contains(&refund), "{cancelled} lacks {refund}");

    // SMS: alice's five, none for bob (opted out); each keyed by its message id.
    let sms = hooks.hooks();
    assert_eq!(sms.len(), 5, "{sms:#?}");
    assert!(sms.iter().all(|h| h.json()["to"] == "+15550005"));
    let shipped = sms
        .iter()
        .find(|h| h.json()["event_kind"] == "OrderShipped")
        .unwrap();
    assert_eq!(
        shipped.json()["text"],
        "Order o1 shipped with UPS, tracking 1Z999."
    );

    // The outbox agrees: all SENT, ids match the Message-ID and Idempotency-Key headers.
    let listed = shop.notifications(pb::NotificationStatus::Sent).await;
    let ids: BTreeSet<String> = listed.iter().map(|n| n.notification_id.clone()).collect();
    for m in &mails {
        let header = m.header("Message-ID").unwrap();
        let id = header.trim_start_matches('<').split('@').next().unwrap();
        assert!(ids.contains(id), "{header} not listed");
    }
    for h in &sms {
        assert!(ids.contains(h.header("Idempotency-Key").unwrap()));
    }
    assert!(
        listed
            .iter()
            .all(|n| n.attempts == 1 && n.sent_at.is_some())
    );
    assert!(
        shop.notifications(pb::NotificationStatus::Failed)
            .await
            .is_empty()
    );

    // The log copies every message; metrics count by channel.
    let log = std::fs::read_to_string(data.join("notifications.log")).unwrap();
    assert!(log.contains("Subject: Order o1 has shipped"), "{log}");
    assert!(log.contains("sms (+15550005): Order o1 shipped"), "{log}");
    let (_, metrics) = server.http_get("/metrics");
    assert!(
        metrics.contains("inventory_notifications_sent_total{channel=\"email\"} 8"),
        "{metrics}"
    );
    assert!(metrics.contains("inventory_notifications_sent_total{channel=\"sms\"} 5"));
    assert!(metrics.contains("inventory_notification_latency_seconds_count 26"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_write_rendered_notifications_to_the_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, Opts::default());
    let mut shop = Shop::new(&server).await;
    shop.product("SKU-1", 0, 10).await;
    shop.customer("carol", true, false).await;
    shop.order("o1", "carol", "SKU-1", 1).await;
    let log = data.join("notifications.log");
    eventually!("the confirmation in the log", {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("Subject: Order o1 confirmed"))
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("to carol@example.com (OrderCreated"),
        "{text}"
    );
    assert!(server.status().await.notify_lsn > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_down_for_a_while_delays_mails_and_loses_none() {
    let sink = SmtpSink::start().unwrap();
    sink.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let extra = "attempts_max = 1000";
    let server = Server::start(
        &dir.path().join("data"),
        Opts::default().config(config(&sink, None, extra)),
    );
    let mut shop = Shop::new(&server).await;
    shop.product("SKU-1", 0, 100).await;
    shop.customer("dave", true, false).await;
    for i in 0..5 {
        shop.order(&format!("o{i}"), "dave", "SKU-1", 1).await;
    }
    eventually!("retries while the server is down", {
        let pending = shop.notifications(pb::NotificationStatus::Pending).await;
        let email: Vec<_> = pending.iter().filter(|n| n.channel == "email").collect();
        email.len() == 5
            && email
                .iter()
                .all(|n| n.attempts >= 2 && n.last_error.contains("421"))
    });
    // The log channel is not held up by the mail server.
    let sent = shop.notifications(pb::NotificationStatus::Sent).await;
    assert!(
        sent.iter().filter(|n| n.channel == "log").count() == 5,
        "{sent:#?}"
    );
    assert!(sink.mails().is_empty());
    sink.set_down(false);
    eventually!("all five mails", { sink.mails().len() >= 5 });
    eventually!("everything handled", shop.settled(&server).await);
    let mails = sink.mails();
    let mut got = subjects(&mails);
    got.sort();
    let want: Vec<String> = (0..5).map(|i| format!("Order o{i} confirmed")).collect();
    assert_eq!(got, want, "every mail once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_stay_visible_and_retry_delivers_them() {
    let sink = SmtpSink::start().unwrap();
    sink.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        Opts::default().config(config(&sink, None, "attempts_max = 2")),
    );
    let mut shop = Shop::new(&server).await;
    shop.product("SKU-1", 0, 100).await;
    shop.customer("erin", true, false).await;
    shop.order("o1", "erin", "SKU-1", 1).await;
    eventually!("the dead letter", {
        !shop
            .notifications(pb::NotificationStatus::Failed)
            .await
            .is_empty()
    });
    let failed = shop.notifications(pb::NotificationStatus::Failed).await;
    assert_eq!(failed.len(), 1);
    let dead = &failed[0];
    assert_eq!((dead.channel.as_str(), dead.attempts), ("email", 2));
    assert!(dead.last_error.contains("421"), "{}", dead.last_error);
    assert!(dead.next_attempt_at.is_none());

    // invctl lists the dead letter.
    let addr = server.addr.to_string();
    let (code, out, err) = invctl(&[
        "--addr",
        &addr,
        "--json",
        "notifications",
        "--status",
        "failed",
    ]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["notifications"][0]["notification_id"],
        dead.notification_id.as_str()
    );
    assert_eq!(doc["notifications"][0]["status"], "FAILED");
    let (code, _, err) = invctl(&["--addr", &addr, "notifications", "retry", "no-such-id"]);
    assert_eq!(code, 3, "NOT_FOUND exits 3: {err}");

    let err = shop.retry("no-such-id").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let log_copy = shop.notifications(pb::NotificationStatus::Sent).await;
    let err = shop.retry(&log_copy[0].notification_id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");

    sink.set_down(false);
    let (code, out, err) = invctl(&[
        "--addr",
        &addr,
        "notifications",
        "retry",
        &dead.notification_id,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&dead.notification_id), "{out}");
    // Retrying again is idempotent while PENDING, refused once SENT.
    match shop.retry(&dead.notification_id).await {
        Ok(n) => assert!(matches!(
            pb::NotificationStatus::try_from(n.status).unwrap(),
            pb::NotificationStatus::Pending
        )),
        Err(e) => assert_eq!(e.code(), Code::FailedPrecondition, "{e}"),
    }
    eventually!("the retried mail", { sink.mails().len() == 1 });
    eventually!("it is SENT", {
        shop.notifications(pb::NotificationStatus::Failed)
            .await
            .is_empty()
            && shop.settled(&server).await
    });
    let sent = shop.notifications(pb::NotificationStatus::Sent).await;
    let mail = sent
        .iter()
        .find(|n| n.notification_id == dead.notification_id)
        .unwrap();
    assert_eq!(mail.attempts, 3);
    // Retrying a SENT one is refused.
    let err = shop.retry(&dead.notification_id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_in_the_middle_loses_no_mail_and_duplicates_share_their_message_id() {
    let sink = SmtpSink::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let opts = || Opts::default().config(config(&sink, None, ""));
    let mut server = Server::start(&data, opts());
    let mut acknowledged = Vec::new();
    {
        let mut shop = Shop::new(&server).await;
        shop.product("SKU-1", 0, 1000).await;
        shop.customer("frank", true, false).await;
        for i in 0..40 {
            let id = format!("o{i}");
            shop.order(&id, "frank", "SKU-1", 1).await;
            acknowledged.push(id);
            if i == 25 {
                // Mid-flight: some mails sent, some not, the cursor somewhere behind.
                server.kill9();
                break;
            }
        }
    }
    let server = Server::start(&data, opts());
    let mut shop = Shop::new(&server).await;
    for i in 100..110 {
        let id = format!("o{i}");
        shop.order(&id, "frank", "SKU-1", 1).await;
        acknowledged.push(id);
    }
    eventually!("every acknowledged order's confirmation", {
        let got: BTreeSet<String> = subjects(&sink.mails()).into_iter().collect();
        acknowledged
            .iter()
            .all(|id| got.contains(&format!("Order {id} confirmed")))
    });
    eventually!("everything handled", shop.settled(&server).await);
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in sink.mails() {
        by_id
            .entry(m.header("Message-ID").unwrap())
            .or_default()
            .push(m.header("Subject").unwrap());
    }
    // A resend carries the same Message-ID; distinct mails never share one.
    let mut subjects_seen = BTreeSet::new();
    for (id, subjects) in &by_id {
        assert!(
            subjects.iter().all(|s| *s == subjects[0]),
            "{id}: {subjects:?}"
        );
        assert!(
            subjects_seen.insert(subjects[0].clone()),
            "two ids for {}",
            subjects[0]
        );
    }
    assert_eq!(by_id.len(), acknowledged.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_stock_alert_mails_managers_once_with_its_purchase_order() {
    let sink = SmtpSink::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        Opts::default().config(config(&sink, None, "")),
    );
    let mut shop = Shop::new(&server).await;
    shop.product("SKU-LOW", 10, 30).await;
    // Opted out of everything: only the managers hear anything.
    shop.customer("gina", false, false).await;
    for i in 0..12 {
        let o = shop.order(&format!("o{i}"), "gina", "SKU-LOW", 2).await;
        shop.pay(&o).await;
    }
    // 30 - 24 = 6 available: below 10 since the 11th unit, and never out of stock.
    eventually!("everything handled", shop.settled(&server).await);
    let mails = to(&sink.mails(), "boss@example.com");
    assert_eq!(mails.len(), 1, "{:#?}", subjects(&mails));
    let body = mails[0].body();
    assert_eq!(
        mails[0].header("Subject").unwrap(),
        format!("LOW_STOCK: SKU-LOW ({} available)", available_in(&body))
    );
    assert!(body.contains("Reorder level: 10"), "{body}");
    assert!(body.contains("suggested for"), "{body}");
    let pos = shop
        .alerts
        .list_purchase_orders(pb::ListPurchaseOrdersRequest { open_only: true })
        .await
        .unwrap()
        .into_inner()
        .purchase_orders;
    assert_eq!(pos.len(), 1);
    assert!(body.contains(&pos[0].purchase_order_id), "{body}");
    assert!(sink.mails().iter().all(|m| m.to == ["boss@example.com"]));
}

fn available_in(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("Available: "))
        .unwrap_or("?")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_notifier_answers_unavailable_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        Opts::default().env("INVENTORY_NOTIFIER_ENABLED", "false"),
    );
    let mut shop = Shop::new(&server).await;
    shop.product("SKU-1", 0, 10).await;
    shop.customer("hal", true, false).await;
    shop.order("o1", "hal", "SKU-1", 1).await;
    let e = shop
        .alerts
        .list_notifications(pb::ListNotificationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    assert_eq!(server.status().await.notify_lsn, 0);
    assert!(!data.join("notifications.log").exists());
}

/// Records that derive no message do not each write the outbox: the feed saves its cursor past
/// them once it is idle (or at most a second later), durably — a server killed after that
/// starts with the cursor there, and the WAL they held back is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_feed_saves_its_cursor_past_records_that_derive_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Opts::default());
    let mut shop = Shop::new(&server).await;
    shop.product("SKU-1", 0, 10).await;
    for i in 0..20 {
        shop.inv
            .receive(&format!("more-{i}"), "SKU-1", 1)
            .await
            .unwrap();
    }
    eventually!(
        "the cursor past the last record",
        shop.settled(&server).await
    );
    let handled = server.status().await.notify_lsn;
    assert!(handled >= 22, "upsert + 21 receipts, got {handled}");
    server.kill9();
    let server = Server::start(&data, Opts::default());
    assert_eq!(server.status().await.notify_lsn, handled);
}
