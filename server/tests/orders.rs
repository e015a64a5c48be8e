//! End-to-end Orders and Alerts against the real `inventoryd`: the order lifecycle with its
//! stock figures, totals and customer figures; the payment timeout; bad input on every RPC;
//! `WatchOrder`; order ops in `ExecuteBatch`; low-stock alerts and purchase orders; kill -9 in
//! the middle of order traffic.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use proto::inventory::v1 as pb;
use tokio::sync::Mutex;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

/// Guards against a hung stream or a deadline that never fires — not timing assertions.
const HANG_GUARD: Duration = Duration::from_secs(60);

type Orders = pb::orders_client::OrdersClient<Channel>;
type Alerts = pb::alerts_client::AlertsClient<Channel>;

struct Shop {
    inv: Inv,
    orders: Orders,
    alerts: Alerts,
}

async fn shop(server: &Server) -> Shop {
    let channel = server.channel().await;
    Shop {
        inv: Inv::new(channel.clone()),
        orders: Orders::new(channel.clone()),
        alerts: Alerts::new(channel),
    }
}

impl Shop {
    async fn product(&mut self, sku: &str, price_cents: i64, reorder_level: u32, on_hand: u32) {
        self.inv
            .client
            .upsert_product(pb::UpsertProductRequest {
                sku: sku.into(),
                name: format!("product {sku}"),
                unit_price_cents: price_cents,
                reorder_level,
                reorder_quantity: 25,
            })
            .await
            .unwrap();
        if on_hand > 0 {
            self.inv
                .receive(&format!("init-{sku}"), sku, on_hand)
                .await
                .unwrap();
        }
    }

    async fn customer(&mut self, id: &str) -> pb::Customer {
        self.orders
            .upsert_customer(pb::UpsertCustomerRequest {
                customer_id: id.into(),
                name: format!("customer {id}"),
                email: format!("{id}@example.com"),
                phone: "+15551234567".into(),
                address: "1 Main St".into(),
                notify_email: true,
                notify_sms: false,
            })
            .await
            .unwrap()
            .into_inner()
    }

    async fn create(
        &mut self,
        id: &str,
        customer: &str,
        lines: &[(&str, u32)],
        payment_timeout_seconds: u32,
    ) -> Result<pb::Order, Status> {
        self.orders
            .create_order(create_req(id, customer, lines, payment_timeout_seconds))
            .await
            .map(|r| r.into_inner())
    }

    async fn pay(&mut self, id: &str, payment_id: &str, amount: i64) -> Result<pb::Order, Status> {
        self.orders
            .confirm_payment(pay_req(id, payment_id, amount))
            .await
            .map(|r| r.into_inner())
    }

    async fn ship(&mut self, id: &str) -> Result<pb::Order, Status> {
        self.orders
            .ship_order(pb::ShipOrderRequest {
                order_id: id.into(),
                carrier: "UPS".into(),
                tracking_number: format!("1Z-{id}"),
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn deliver(&mut self, id: &str) -> Result<pb::Order, Status> {
        self.orders
            .deliver_order(pb::DeliverOrderRequest {
                order_id: id.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn cancel(&mut self, id: &str) -> Result<pb::Order, Status> {
        self.orders
            .cancel_order(pb::CancelOrderRequest {
                order_id: id.into(),
                reason: "changed my mind".into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn order(&mut self, id: &str) -> Result<pb::Order, Status> {
        self.orders
            .get_order(pb::GetOrderRequest {
                order_id: id.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn get_customer(&mut self, id: &str) -> Result<pb::Customer, Status> {
        self.orders
            .get_customer(pb::GetCustomerRequest {
                customer_id: id.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn request_return(
        &mut self,
        id: &str,
        order_id: &str,
        lines: &[(&str, u32)],
    ) -> Result<pb::Return, Status> {
        self.orders
            .request_return(pb::RequestReturnRequest {
                return_id: id.into(),
                order_id: order_id.into(),
                lines: lines_of(lines),
                reason: "does not fit".into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn approve(
        &mut self,
        id: &str,
        refund: i64,
        restock: bool,
    ) -> Result<pb::Return, Status> {
        self.orders
            .approve_return(pb::ApproveReturnRequest {
                return_id: id.into(),
                refund_cents: refund,
                restock,
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn update_po(
        &mut self,
        id: &str,
        status: pb::PurchaseOrderStatus,
    ) -> Result<pb::PurchaseOrder, Status> {
        self.alerts
            .update_purchase_order(pb::UpdatePurchaseOrderRequest {
                purchase_order_id: id.into(),
                status: status as i32,
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn alerts(&mut self, include_resolved: bool) -> Vec<pb::Alert> {
        self.alerts
            .list_alerts(pb::ListAlertsRequest { include_resolved })
            .await
            .unwrap()
            .into_inner()
            .alerts
    }

    async fn purchase_orders(&mut self, open_only: bool) -> Vec<pb::PurchaseOrder> {
        self.alerts
            .list_purchase_orders(pb::ListPurchaseOrdersRequest { open_only })
            .await
            .unwrap()
            .into_inner()
            .purchase_orders
    }

    /// Every order (optionally in one status), following pages of `page_size`.
    async fn all_orders(&mut self, status: pb::OrderStatus, page_size: u32) -> Vec<pb::Order> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .orders
                .list_orders(pb::ListOrdersRequest {
                    customer_id: String::new(),
                    status: status as i32,
                    page_size,
                    page_token,
                })
                .await
                .unwrap()
                .into_inner();
            out.extend(page.orders);
            page_token = page.next_page_token;
            if page_token.is_empty() {
                return out;
            }
        }
    }
}

fn create_req(
    id: &str,
    customer: &str,
    lines: &[(&str, u32)],
    timeout: u32,
) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        order_id: id.into(),
        customer_id: customer.into(),
        lines: lines_of(lines),
        shipping_address: "1 Main St".into(),
        payment_timeout_seconds: timeout,
    }
}

fn pay_req(id: &str, payment_id: &str, amount: i64) -> pb::ConfirmPaymentRequest {
    pb::ConfirmPaymentRequest {
        order_id: id.into(),
        payment_id: payment_id.into(),
        amount_cents: amount,
    }
}

fn status_of(o: &pb::Order) -> pb::OrderStatus {
    pb::OrderStatus::try_from(o.status).unwrap()
}

/// Asserts the code and that the message names every one of `names`.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, names: &[&str]) {
    let status = assert_code(result, code);
    for name in names {
        assert!(
            status.message().contains(name),
            "{code:?} message should name {name:?}: {:?}",
            status.message()
        );
    }
}

async fn figures(inv: &mut Inv, sku: &str) -> (u32, u32, u32) {
    let s = inv.stock(sku).await.unwrap();
    (s.on_hand, s.reserved, s.available)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_lifecycle_create_pay_ship_deliver_return() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut s = shop(&server).await;
    s.product("MUG", 6000, 0, 50).await;
    s.product("PEN", 250, 0, 20).await;
    let c = s.customer("c1").await;
    assert_eq!(
        (c.tier.as_str(), c.order_count, c.lifetime_spend_cents),
        ("Bronze", 0, 0)
    );

    // 10 mugs: 5 % bulk discount on that line (3,000 of 60,000); 2 pens: none. 57,500 ≥ 5,000
    // after the discount: free shipping; no tax by default.
    let o = s
        .create("o1", "c1", &[("MUG", 10), ("PEN", 2)], 0)
        .await
        .unwrap();
    assert_eq!(status_of(&o), pb::OrderStatus::Pending);
    assert_eq!(
        (
            o.subtotal_cents,
            o.discount_cents,
            o.tax_cents,
            o.shipping_cents,
            o.total_cents
        ),
        (60_500, 3_000, 0, 0, 57_500)
    );
    assert_eq!(o.lines.len(), 2);
    assert_eq!(
        (
            o.lines[0].sku.as_str(),
            o.lines[0].quantity,
            o.lines[0].unit_price_cents
        ),
        ("MUG", 10, 6000)
    );
    let created = o.created_at.unwrap().seconds;
    let deadline = o.payment_deadline.unwrap().seconds;
    assert_eq!(deadline - created, 1800, "default payment timeout");
    assert!(o.paid_at.is_none() && o.shipped_at.is_none() && o.cancelled_at.is_none());
    assert_eq!(figures(&mut s.inv, "MUG").await, (50, 10, 40));
    assert_eq!(figures(&mut s.inv, "PEN").await, (20, 2, 18));

    // A small order pays shipping (250 < 5,000); cancelled while PENDING it releases its hold.
    let small = s.create("o2", "c1", &[("PEN", 1)], 0).await.unwrap();
    assert_eq!(
        (
            small.subtotal_cents,
            small.shipping_cents,
            small.total_cents
        ),
        (250, 499, 749)
    );
    assert_eq!(figures(&mut s.inv, "PEN").await, (20, 3, 17));
    let cancelled = s.cancel("o2").await.unwrap();
    assert_eq!(status_of(&cancelled), pb::OrderStatus::Cancelled);
    assert_eq!(cancelled.cancel_reason, "changed my mind");
    assert!(cancelled.cancelled_at.is_some());
    assert_eq!(cancelled.refund_due_cents, 0, "nothing was paid");
    assert_eq!(figures(&mut s.inv, "PEN").await, (20, 2, 18));

    let paid = s.pay("o1", "pay-1", 57_500).await.unwrap();
    assert_eq!(status_of(&paid), pb::OrderStatus::Paid);
    assert_eq!(paid.payment_id, "pay-1");
    assert!(paid.paid_at.is_some());
    assert_eq!(figures(&mut s.inv, "MUG").await, (40, 0, 40));
    assert_eq!(figures(&mut s.inv, "PEN").await, (18, 0, 18));
    let c = s.get_customer("c1").await.unwrap();
    assert_eq!(
        (c.lifetime_spend_cents, c.order_count, c.tier.as_str()),
        (57_500, 2, "Silver")
    );

    let shipped = s.ship("o1").await.unwrap();
    assert_eq!(status_of(&shipped), pb::OrderStatus::Shipped);
    assert_eq!(
        (shipped.carrier.as_str(), shipped.tracking_number.as_str()),
        ("UPS", "1Z-o1")
    );
    assert!(shipped.shipped_at.is_some());
    let delivered = s.deliver("o1").await.unwrap();
    assert_eq!(status_of(&delivered), pb::OrderStatus::Delivered);
    assert!(delivered.delivered_at.is_some());

    // Return everything, refunded in full, restocked.
    let r = s
        .request_return("r1", "o1", &[("MUG", 10), ("PEN", 2)])
        .await
        .unwrap();
    assert_eq!(
        pb::ReturnStatus::try_from(r.status).unwrap(),
        pb::ReturnStatus::Requested
    );
    assert!(r.requested_at.is_some() && r.decided_at.is_none());
    let r = s.approve("r1", 57_500, true).await.unwrap();
    assert_eq!(
        pb::ReturnStatus::try_from(r.status).unwrap(),
        pb::ReturnStatus::Approved
    );
    assert_eq!((r.refund_cents, r.restock), (57_500, true));
    assert!(r.decided_at.is_some());
    let o = s.order("o1").await.unwrap();
    assert_eq!(status_of(&o), pb::OrderStatus::Returned);
    assert_eq!(o.refunded_cents, 57_500);
    assert_eq!(figures(&mut s.inv, "MUG").await, (50, 0, 50));
    assert_eq!(figures(&mut s.inv, "PEN").await, (20, 0, 20));
    let c = s.get_customer("c1").await.unwrap();
    assert_eq!(
        (c.lifetime_spend_cents, c.order_count, c.tier.as_str()),
        (0, 2, "Bronze")
    );

    // Listing: by customer, by status, paged.
    let returned = s.all_orders(pb::OrderStatus::Returned, 0).await;
    assert_eq!(
        returned
            .iter()
            .map(|o| o.order_id.as_str())
            .collect::<Vec<_>>(),
        ["o1"]
    );
    let all = s.all_orders(pb::OrderStatus::Unspecified, 1).await;
    assert_eq!(
        all.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(),
        ["o1", "o2"]
    );
    let of_nobody = s
        .orders
        .list_orders(pb::ListOrdersRequest {
            customer_id: "c-none".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(of_nobody.orders.is_empty() && of_nobody.next_page_token.is_empty());
    // Closed orders are not open: Admin.Status counts none.
    assert_eq!(server.status().await.open_orders, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_order_is_cancelled_at_its_payment_deadline_and_releases_stock() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut s = shop(&server).await;
    s.product("MUG", 1000, 0, 5).await;
    s.customer("c1").await;
    let o = s.create("late", "c1", &[("MUG", 3)], 1).await.unwrap();
    assert_eq!(status_of(&o), pb::OrderStatus::Pending);
    assert_eq!(figures(&mut s.inv, "MUG").await, (5, 3, 2));
    assert_eq!(server.status().await.open_orders, 1);
    let mut watch = s
        .orders
        .watch_order(pb::WatchOrderRequest {
            order_id: "late".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status_of(&next_order(&mut watch).await),
        pb::OrderStatus::Pending
    );

    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    let cancelled = loop {
        let o = s.order("late").await.unwrap();
        if status_of(&o) != pb::OrderStatus::Pending {
            break o;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never cancelled: {o:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status_of(&cancelled), pb::OrderStatus::Cancelled);
    assert_eq!(cancelled.cancel_reason, "payment_timeout");
    assert!(cancelled.cancelled_at.is_some());
    assert_eq!(figures(&mut s.inv, "MUG").await, (5, 0, 5));
    assert_eq!(server.status().await.open_orders, 0);
    // Paying now is refused, naming both states.
    refused(
        s.pay("late", "p", o.total_cents).await,
        Code::FailedPrecondition,
        &["CANCELLED", "PAID"],
    );
    // The watch saw the cancellation (written by the server itself) and ended.
    let seen = next_order(&mut watch).await;
    assert_eq!(
        (status_of(&seen), seen.cancel_reason.as_str()),
        (pb::OrderStatus::Cancelled, "payment_timeout")
    );
    assert_stream_ends(&mut watch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut s = shop(&server).await;
    s.product("MUG", 1000, 0, 5).await;
    s.customer("c1").await;

    // UpsertCustomer / GetCustomer.
    let customer = |id: &str, email: &str, phone: &str| pb::UpsertCustomerRequest {
        customer_id: id.into(),
        name: "n".into(),
        email: email.into(),
        phone: phone.into(),
        ..Default::default()
    };
    refused(
        s.orders.upsert_customer(customer("", "a@b.com", "")).await,
        Code::InvalidArgument,
        &["customer_id"],
    );
    refused(
        s.orders
            .upsert_customer(customer("c2", "not-an-email", ""))
            .await,
        Code::InvalidArgument,
        &["email"],
    );
    refused(
        s.orders
            .upsert_customer(customer("c2", "a@b.com", "555-1234"))
            .await,
        Code::InvalidArgument,
        &["phone"],
    );
    refused(s.get_customer("c2").await, Code::NotFound, &["c2"]);
    // UpsertCustomer is idempotent by customer_id.
    let again = s.customer("c1").await;
    assert_eq!(again.customer_id, "c1");

    // CreateOrder.
    refused(
        s.create("", "c1", &[("MUG", 1)], 0).await,
        Code::InvalidArgument,
        &["order_id"],
    );
    refused(
        s.create("o-bad", "c-none", &[("MUG", 1)], 0).await,
        Code::NotFound,
        &["c-none"],
    );
    refused(
        s.create("o-bad", "c1", &[("NOPE", 1)], 0).await,
        Code::NotFound,
        &["NOPE"],
    );
    refused(
        s.create("o-bad", "c1", &[("MUG", 0)], 0).await,
        Code::InvalidArgument,
        &["quantity"],
    );
    refused(
        s.create("o-bad", "c1", &[("MUG", 1), ("MUG", 2)], 0).await,
        Code::InvalidArgument,
        &["MUG"],
    );
    refused(
        s.create("o-bad", "c1", &[], 0).await,
        Code::InvalidArgument,
        &["lines"],
    );
    refused(
        s.create("o-bad", "c1", &[("MUG", 6)], 0).await,
        Code::FailedPrecondition,
        &["MUG", "5"],
    );
    refused(
        s.create("o-bad", "c1", &[("MUG", 1)], 7 * 24 * 3600 + 1)
            .await,
        Code::InvalidArgument,
        &["payment_timeout_seconds"],
    );
    let many: Vec<(String, u32)> = (0..65).map(|i| (format!("S{i}"), 1)).collect();
    let many: Vec<(&str, u32)> = many.iter().map(|(s, q)| (s.as_str(), *q)).collect();
    refused(
        s.create("o-bad", "c1", &many, 0).await,
        Code::InvalidArgument,
        &["lines"],
    );
    // None of these left a trace.
    refused(s.order("o-bad").await, Code::NotFound, &["o-bad"]);
    assert_eq!(figures(&mut s.inv, "MUG").await, (5, 0, 5));
    assert_eq!(s.get_customer("c1").await.unwrap().order_count, 0);

    // Idempotent retries: same payload → current state; other lines → ALREADY_EXISTS.
    let o = s.create("o1", "c1", &[("MUG", 2)], 0).await.unwrap();
    let retry = s.create("o1", "c1", &[("MUG", 2)], 0).await.unwrap();
    assert_eq!(retry, o);
    refused(
        s.create("o1", "c1", &[("MUG", 3)], 0).await,
        Code::AlreadyExists,
        &["o1"],
    );
    assert_eq!(figures(&mut s.inv, "MUG").await, (5, 2, 3));

    // The order's hold is not the Inventory service's to commit or release.
    refused(
        s.inv.commit("o1", &[]).await,
        Code::FailedPrecondition,
        &["o1"],
    );
    refused(s.inv.release("o1").await, Code::FailedPrecondition, &["o1"]);
    assert_eq!(figures(&mut s.inv, "MUG").await, (5, 2, 3));

    // Payments.
    refused(s.pay("o-none", "p1", 1).await, Code::NotFound, &["o-none"]);
    refused(
        s.pay("o1", "", o.total_cents).await,
        Code::InvalidArgument,
        &["payment_id"],
    );
    refused(
        s.pay("o1", "p1", o.total_cents - 1).await,
        Code::FailedPrecondition,
        &["amount"],
    );
    refused(
        s.ship("o1").await,
        Code::FailedPrecondition,
        &["PENDING", "SHIPPED"],
    );
    refused(
        s.deliver("o1").await,
        Code::FailedPrecondition,
        &["PENDING", "DELIVERED"],
    );
    refused(
        s.request_return("r0", "o1", &[("MUG", 1)]).await,
        Code::FailedPrecondition,
        &["PENDING"],
    );
    assert_eq!(s.order("o1").await.unwrap(), o, "refusals changed nothing");
    let paid = s.pay("o1", "p1", o.total_cents).await.unwrap();
    assert_eq!(
        s.pay("o1", "p1", o.total_cents).await.unwrap(),
        paid,
        "same payment id: success"
    );
    refused(
        s.orders
            .fail_payment(pb::FailPaymentRequest {
                order_id: "o1".into(),
                payment_id: "p2".into(),
                reason: "declined".into(),
            })
            .await,
        Code::FailedPrecondition,
        &["PAID"],
    );
    refused(
        s.orders
            .ship_order(pb::ShipOrderRequest {
                order_id: "o1".into(),
                carrier: String::new(),
                tracking_number: "t".into(),
            })
            .await,
        Code::InvalidArgument,
        &["carrier"],
    );
    refused(
        s.orders
            .ship_order(pb::ShipOrderRequest {
                order_id: "o1".into(),
                carrier: "UPS".into(),
                tracking_number: String::new(),
            })
            .await,
        Code::InvalidArgument,
        &["tracking_number"],
    );
    s.ship("o1").await.unwrap();
    refused(
        s.cancel("o1").await,
        Code::FailedPrecondition,
        &["SHIPPED", "CANCELLED"],
    );
    s.deliver("o1").await.unwrap();
    refused(s.deliver("o1-x").await, Code::NotFound, &["o1-x"]);

    // Returns: no more than delivered; a refund beyond what was paid is refused.
    refused(
        s.request_return("r1", "o1", &[("MUG", 3)]).await,
        Code::FailedPrecondition,
        &["MUG"],
    );
    refused(
        s.request_return("r1", "o1", &[("PEN", 1)]).await,
        Code::FailedPrecondition,
        &["PEN"],
    );
    refused(
        s.request_return("", "o1", &[("MUG", 1)]).await,
        Code::InvalidArgument,
        &["return_id"],
    );
    s.request_return("r1", "o1", &[("MUG", 1)]).await.unwrap();
    refused(
        s.approve("r1", o.total_cents + 1, true).await,
        Code::FailedPrecondition,
        &["refund"],
    );
    refused(
        s.approve("r-none", 1, true).await,
        Code::NotFound,
        &["r-none"],
    );
    let stock_before = figures(&mut s.inv, "MUG").await;
    assert_eq!(stock_before, (3, 0, 3));
    let approved = s.approve("r1", 1000, true).await.unwrap();
    assert_eq!(approved.refund_cents, 1000);
    assert_eq!(figures(&mut s.inv, "MUG").await, (4, 0, 4));
    refused(
        s.orders
            .reject_return(pb::RejectReturnRequest {
                return_id: "r1".into(),
                reason: "late".into(),
            })
            .await,
        Code::FailedPrecondition,
        &["APPROVED", "REJECTED"],
    );
    // The second return may refund at most what is left of the payment.
    s.request_return("r2", "o1", &[("MUG", 1)]).await.unwrap();
    refused(
        s.approve("r2", o.total_cents - 1000 + 1, false).await,
        Code::FailedPrecondition,
        &["refund"],
    );
    let o_after = s.order("o1").await.unwrap();
    assert_eq!(
        (status_of(&o_after), o_after.refunded_cents),
        (pb::OrderStatus::Delivered, 1000)
    );

    // Reads.
    refused(s.order("").await, Code::InvalidArgument, &["order_id"]);
    refused(s.order("o-none").await, Code::NotFound, &["o-none"]);
    refused(
        s.orders
            .list_orders(pb::ListOrdersRequest {
                status: 99,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &["status"],
    );
    refused(
        s.orders
            .watch_order(pb::WatchOrderRequest {
                order_id: "o-none".into(),
            })
            .await,
        Code::NotFound,
        &["o-none"],
    );

    // Alerts.
    refused(
        s.update_po("MUG/PO1", pb::PurchaseOrderStatus::Unspecified)
            .await,
        Code::InvalidArgument,
        &["status"],
    );
    refused(
        s.alerts
            .update_purchase_order(pb::UpdatePurchaseOrderRequest {
                purchase_order_id: "MUG/PO1".into(),
                status: 42,
            })
            .await,
        Code::InvalidArgument,
        &["status"],
    );
    refused(
        s.update_po("MUG/PO1", pb::PurchaseOrderStatus::Ordered)
            .await,
        Code::NotFound,
        &["MUG/PO1"],
    );
    refused(
        s.update_po("", pb::PurchaseOrderStatus::Ordered).await,
        Code::InvalidArgument,
        &["purchase_order_id"],
    );
}

async fn next_order(stream: &mut Streaming<pb::Order>) -> pb::Order {
    tokio::time::timeout(HANG_GUARD, stream.message())
        .await
        .expect("a state arrives")
        .expect("no error")
        .expect("stream open")
}

async fn assert_stream_ends(stream: &mut Streaming<pb::Order>) {
    let end = tokio::time::timeout(HANG_GUARD, stream.message())
        .await
        .expect("the stream ends");
    assert!(
        matches!(end, Ok(None)),
        "expected the end of the stream: {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_order_sees_every_state_then_ends() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut s = shop(&server).await;
    s.product("MUG", 1000, 0, 10).await;
    s.product("OTHER", 1000, 0, 10).await;
    s.customer("c1").await;
    let o = s.create("w1", "c1", &[("MUG", 2)], 0).await.unwrap();
    let mut watch = s
        .orders
        .watch_order(pb::WatchOrderRequest {
            order_id: "w1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = next_order(&mut watch).await;
    assert_eq!(first, o, "the current state first");

    // Traffic on other orders and SKUs is not in this stream.
    s.create("w2", "c1", &[("OTHER", 1)], 0).await.unwrap();
    s.inv.receive("more", "MUG", 1).await.unwrap();
    let paid = s.pay("w1", "p1", o.total_cents).await.unwrap();
    let shipped = s.ship("w1").await.unwrap();
    let delivered = s.deliver("w1").await.unwrap();
    s.request_return("r1", "w1", &[("MUG", 2)]).await.unwrap();
    s.approve("r1", o.total_cents, true).await.unwrap();
    let returned = s.order("w1").await.unwrap();

    let seen: Vec<pb::Order> = [
        next_order(&mut watch).await,
        next_order(&mut watch).await,
        next_order(&mut watch).await,
        next_order(&mut watch).await,
    ]
    .into();
    let statuses: Vec<pb::OrderStatus> = seen.iter().map(status_of).collect();
    assert_eq!(
        statuses,
        [
            pb::OrderStatus::Paid,
            pb::OrderStatus::Shipped,
            pb::OrderStatus::Delivered,
            pb::OrderStatus::Returned
        ]
    );
    // Each state as the RPC that made it returned it.
    assert_eq!(seen, [paid, shipped, delivered, returned]);
    assert_stream_ends(&mut watch).await;

    // Watching a finished order: its state, then the end.
    let mut again = s
        .orders
        .watch_order(pb::WatchOrderRequest {
            order_id: "w1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status_of(&next_order(&mut again).await),
        pb::OrderStatus::Returned
    );
    assert_stream_ends(&mut again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_batch_creates_and_pays_orders() {
    use pb::batch_op::Op as O;
    use pb::batch_result::Result as R;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut s = shop(&server).await;
    s.product("B", 1999, 0, 10).await;
    s.customer("c1").await;
    // 3 × 19.99 = 59.97: no bulk discount, free shipping (≥ 50.00).
    let ops = vec![
        O::CreateOrder(create_req("bo1", "c1", &[("B", 3)], 0)),
        O::ConfirmPayment(pay_req("bo1", "bp1", 5997)),
        O::CreateOrder(create_req("bo2", "c1", &[("B", 100)], 0)),
        O::ConfirmPayment(pay_req("bo-none", "bp2", 1)),
        O::CreateOrder(create_req("bo3", "c1", &[("B", 1)], 0)),
    ];
    let results = s
        .inv
        .client
        .execute_batch(pb::ExecuteBatchRequest {
            ops: ops
                .into_iter()
                .map(|op| pb::BatchOp { op: Some(op) })
                .collect(),
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let order = |i: usize| match &results[i].result {
        Some(R::Order(o)) => o.clone(),
        other => panic!("ops[{i}]: expected an order, got {other:?}"),
    };
    let error = |i: usize| match &results[i].result {
        Some(R::Error(e)) => (Code::from_i32(e.code), e.message.clone()),
        other => panic!("ops[{i}]: expected an error, got {other:?}"),
    };
    assert_eq!(results.len(), 5);
    assert_eq!(
        (status_of(&order(0)), order(0).total_cents),
        (pb::OrderStatus::Pending, 5997)
    );
    assert_eq!(
        (status_of(&order(1)), order(1).payment_id.as_str()),
        (pb::OrderStatus::Paid, "bp1")
    );
    let (code, message) = error(2);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains('B'), "{message}");
    assert_eq!(error(3).0, Code::NotFound);
    assert_eq!(status_of(&order(4)), pb::OrderStatus::Pending);
    assert_eq!(figures(&mut s.inv, "B").await, (7, 1, 6));
    refused(s.order("bo2").await, Code::NotFound, &["bo2"]);
    assert_eq!(
        status_of(&s.order("bo1").await.unwrap()),
        pb::OrderStatus::Paid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_stock_opens_one_alert_and_one_purchase_order_until_received() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut s = shop(&server).await;
    s.product("LOW", 100, 10, 20).await;
    s.customer("c1").await;
    assert!(s.alerts(true).await.is_empty(), "at the level: no alert");
    // Sales of 3 units: 20 → 17 → 14 → 11 → 8 (below 10: the alert opens) → 5 → 2.
    for i in 0..6 {
        let id = format!("sale-{i}");
        let o = s.create(&id, "c1", &[("LOW", 3)], 0).await.unwrap();
        s.pay(&id, &format!("pay-{i}"), o.total_cents)
            .await
            .unwrap();
    }
    assert_eq!(figures(&mut s.inv, "LOW").await, (2, 0, 2));
    let alerts = s.alerts(false).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert.sku, "LOW");
    assert_eq!(
        pb::AlertKind::try_from(alert.kind).unwrap(),
        pb::AlertKind::LowStock
    );
    assert_eq!((alert.available, alert.reorder_level), (8, 10));
    assert!(alert.opened_at.is_some() && alert.resolved_at.is_none());
    let pos = s.purchase_orders(false).await;
    assert_eq!(pos.len(), 1, "{pos:?}");
    let po = pos[0].clone();
    assert_eq!(
        pb::PurchaseOrderStatus::try_from(po.status).unwrap(),
        pb::PurchaseOrderStatus::Suggested
    );
    assert_eq!(
        (po.sku.as_str(), po.alert_id.as_str()),
        ("LOW", alert.alert_id.as_str())
    );
    assert_eq!(po.quantity, alert.suggested_quantity);
    assert_eq!(po.quantity, 25, "the product's reorder quantity");

    let ordered = s
        .update_po(&po.purchase_order_id, pb::PurchaseOrderStatus::Ordered)
        .await
        .unwrap();
    assert_eq!(
        pb::PurchaseOrderStatus::try_from(ordered.status).unwrap(),
        pb::PurchaseOrderStatus::Ordered
    );
    // Idempotent: the status it already has.
    assert_eq!(
        s.update_po(&po.purchase_order_id, pb::PurchaseOrderStatus::Ordered)
            .await
            .unwrap(),
        ordered
    );
    refused(
        s.update_po(&po.purchase_order_id, pb::PurchaseOrderStatus::Suggested)
            .await,
        Code::FailedPrecondition,
        &["ORDERED", "SUGGESTED"],
    );
    let received = s
        .update_po(&po.purchase_order_id, pb::PurchaseOrderStatus::Received)
        .await
        .unwrap();
    assert_eq!(
        pb::PurchaseOrderStatus::try_from(received.status).unwrap(),
        pb::PurchaseOrderStatus::Received
    );
    assert_eq!(figures(&mut s.inv, "LOW").await, (27, 0, 27));
    assert!(s.alerts(false).await.is_empty(), "resolved by the receipt");
    let all = s.alerts(true).await;
    assert_eq!(all.len(), 1);
    assert!(all[0].resolved_at.is_some());
    assert!(s.purchase_orders(true).await.is_empty());
    refused(
        s.update_po(&po.purchase_order_id, pb::PurchaseOrderStatus::Cancelled)
            .await,
        Code::FailedPrecondition,
        &["RECEIVED", "CANCELLED"],
    );
}

const CRASH_SKUS: usize = 4;
const CRASH_INITIAL: u32 = 100_000;

/// Per order: (sku, create acknowledged, payment sent, payment acknowledged).
type OrderLedger = BTreeMap<String, (String, bool, bool, bool)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_order_traffic_keeps_every_acknowledged_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Opts::default());
    let mut s = shop(&server).await;
    let sku = |i: usize| format!("SKU-{}", i % CRASH_SKUS);
    for i in 0..CRASH_SKUS {
        s.product(&sku(i), 500, 0, CRASH_INITIAL).await;
    }
    s.customer("c1").await;

    let ledger = Arc::new(Mutex::new(OrderLedger::new()));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let mut client = shop(&server).await;
        let (ledger, acked) = (ledger.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("o-{w}-{i}");
                let sku = sku(w + i);
                ledger
                    .lock()
                    .await
                    .insert(id.clone(), (sku.clone(), false, false, false));
                let Ok(o) = client.create(&id, "c1", &[(&sku, 2)], 0).await else {
                    return;
                };
                ledger.lock().await.get_mut(&id).unwrap().1 = true;
                if i % 3 != 0 {
                    ledger.lock().await.get_mut(&id).unwrap().2 = true;
                    if client
                        .pay(&id, &format!("p-{id}"), o.total_cents)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    ledger.lock().await.get_mut(&id).unwrap().3 = true;
                }
                acked.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while acked.load(Ordering::Relaxed) < 600 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let ledger = ledger.lock().await;

    let server = Server::start(&data, Opts::default());
    let mut s = shop(&server).await;
    let mut paid: BTreeMap<String, u32> = BTreeMap::new();
    let mut pending: BTreeMap<String, u32> = BTreeMap::new();
    let mut open = 0;
    for (id, (sku, create_acked, pay_sent, pay_acked)) in ledger.iter() {
        match s.order(id).await {
            Ok(o) => {
                let st = status_of(&o);
                if *pay_acked {
                    assert_eq!(st, pb::OrderStatus::Paid, "{id}");
                } else if *pay_sent {
                    assert!(
                        matches!(st, pb::OrderStatus::Pending | pb::OrderStatus::Paid),
                        "{id}: {st:?}"
                    );
                } else {
                    assert_eq!(st, pb::OrderStatus::Pending, "{id}: never paid");
                }
                let per_sku = if st == pb::OrderStatus::Paid {
                    &mut paid
                } else {
                    &mut pending
                };
                *per_sku.entry(sku.clone()).or_default() += 2;
                open += 1;
            }
            Err(e) => {
                assert_eq!(e.code(), Code::NotFound, "{id}: {e:?}");
                assert!(!create_acked, "acknowledged order {id} lost");
            }
        }
    }
    assert!(paid.values().sum::<u32>() > 100, "load too small: {paid:?}");
    // Nothing else exists: the orders listed are exactly those found above.
    let listed = s.all_orders(pb::OrderStatus::Unspecified, 0).await;
    assert_eq!(listed.len(), open);
    assert_eq!(server.status().await.open_orders, open as u64);
    // Holds and stock: reserved = the PENDING orders' lines, on_hand = initial − what was paid.
    for i in 0..CRASH_SKUS {
        let sku = sku(i);
        let held = pending.get(&sku).copied().unwrap_or(0);
        let sold = paid.get(&sku).copied().unwrap_or(0);
        let (on_hand, reserved, available) = figures(&mut s.inv, &sku).await;
        assert_eq!((on_hand, reserved), (CRASH_INITIAL - sold, held), "{sku}");
        assert_eq!(available, on_hand - reserved, "{sku}");
    }
    // And the recovered server keeps taking orders on top of that state.
    let o = s.create("after", "c1", &[(&sku(0), 1)], 0).await.unwrap();
    s.pay("after", "p-after", o.total_cents).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_pricing_and_timeout_apply_to_new_orders() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        "[orders]\ntax_bps = 825\nshipping_cents = 100\npayment_timeout_default_seconds = 600\n";
    let server = Server::start(&dir.path().join("data"), Opts::default().config(config));
    let mut s = shop(&server).await;
    s.product("MUG", 1001, 0, 5).await;
    s.customer("c1").await;
    let o = s.create("o1", "c1", &[("MUG", 1)], 0).await.unwrap();
    // 8.25 % of 10.01 = 0.825825 → 83 cents (half up); shipping 1.00 below the threshold.
    assert_eq!(
        (o.tax_cents, o.shipping_cents, o.total_cents),
        (83, 100, 1001 + 83 + 100)
    );
    let window = o.payment_deadline.unwrap().seconds - o.created_at.unwrap().seconds;
    assert_eq!(window, 600);
}

#[test]
fn invctl_orders_returns_alerts_purchase_orders_and_watch() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let addr = server.url();
    let ok = |args: &[&str]| -> String {
        let mut all = vec!["--addr", addr.as_str()];
        all.extend_from_slice(args);
        let (code, out, err) = invctl(&all);
        assert_eq!(code, 0, "invctl {args:?}: {err}");
        out
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(ok(&all).trim()).unwrap()
    };
    ok(&[
        "product",
        "upsert",
        "CLI",
        "--name",
        "Thing",
        "--price-cents",
        "1000",
        "--reorder-level",
        "5",
        "--reorder-quantity",
        "20",
    ]);
    ok(&["receive", "r1", "CLI", "10"]);
    let c = json(&[
        "customer",
        "upsert",
        "c1",
        "--name",
        "Ann",
        "--email",
        "ann@example.com",
        "--phone",
        "+15551234567",
    ]);
    assert_eq!(c["tier"], "Bronze");
    let o = json(&["order", "create", "o1", "--customer", "c1", "CLI:6"]);
    assert_eq!(
        (o["status"].as_str(), o["total_cents"].as_i64()),
        (Some("PENDING"), Some(6000))
    );
    assert!(ok(&["order", "get", "o1"]).contains("PENDING"));
    assert_eq!(
        json(&["order", "pay", "o1", "p1", "6000"])["status"],
        "PAID"
    );
    ok(&["order", "ship", "o1", "UPS", "1Z"]);
    assert_eq!(json(&["order", "deliver", "o1"])["status"], "DELIVERED");
    let list = json(&["order", "list", "--status", "delivered", "--customer", "c1"]);
    assert_eq!(list["orders"][0]["order_id"], "o1");
    assert!(ok(&["order", "list"]).contains("o1"));
    assert_eq!(
        json(&["return", "request", "ret1", "o1", "CLI:6"])["status"],
        "REQUESTED"
    );
    assert_eq!(
        json(&["return", "approve", "ret1", "6000", "--restock"])["status"],
        "APPROVED"
    );
    assert_eq!(json(&["customer", "get", "c1"])["lifetime_spend_cents"], 0);
    // The order is RETURNED: its watch prints that state and ends.
    let watched = ok(&["--json", "watch", "order", "o1"]);
    let states: Vec<serde_json::Value> = watched
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(states.len(), 1, "{watched}");
    assert_eq!(states[0]["status"], "RETURNED");

    // Alerts and purchase orders: selling 6 of 10 leaves 4 < 5.
    let batch = dir.path().join("ops.txt");
    std::fs::write(&batch, "order o2 c1 CLI:6\npay o2 p2 6000\n").unwrap();
    let results = json(&["batch", batch.to_str().unwrap()]);
    assert_eq!(results["results"][1]["status"], "PAID", "{results}");
    let alerts = json(&["alerts"]);
    assert_eq!(alerts["alerts"][0]["kind"], "LOW_STOCK", "{alerts}");
    let pos = json(&["po", "list", "--open-only"]);
    let po = pos["purchase_orders"][0]["purchase_order_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        json(&["po", "update", &po, "received"])["status"],
        "RECEIVED"
    );
    assert!(json(&["alerts"])["alerts"].as_array().unwrap().is_empty());
    assert!(ok(&["alerts", "--all"]).contains("LOW_STOCK"));
    // The change feed, filtered by kind.
    let events = ok(&[
        "--json",
        "watch",
        "events",
        "--kind",
        "OrderReturned",
        "--from",
        "1",
        "--count",
        "1",
    ]);
    let first: serde_json::Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["kind"].as_str(), first["subject"].as_str()),
        (Some("OrderReturned"), Some("o1"))
    );

    // Exit codes; usage errors come before connecting.
    let code = |args: &[&str]| {
        let mut all = vec!["--addr", addr.as_str()];
        all.extend_from_slice(args);
        invctl(&all).0
    };
    assert_eq!(code(&["order", "get", "nope"]), 3);
    assert_eq!(code(&["order", "pay", "o1", "p9", "1"]), 4);
    assert_eq!(
        code(&[
            "order",
            "create",
            "o3",
            "--customer",
            "c1",
            "CLI:6",
            "CLI:1"
        ]),
        5
    );
    assert_eq!(
        code(&["order", "create", "o2", "--customer", "c1", "CLI:1"]),
        8
    );
    let offline = |args: &[&str]| {
        let mut all = vec!["--addr", "http://127.0.0.1:1"];
        all.extend_from_slice(args);
        invctl(&all).0
    };
    assert_eq!(
        offline(&["order", "create", "o4", "--customer", "c1", "NOCOLON"]),
        2
    );
    assert_eq!(offline(&["po", "update", "X/PO1", "shipped"]), 2);
    assert_eq!(offline(&["order", "list", "--status", "lost"]), 2);
    assert_eq!(offline(&["watch"]), 2);
    assert_eq!(offline(&["order", "get", "o1"]), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_order_whose_last_change_left_the_wal_starts_at_the_oldest_retained() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so two snapshots let the start of the WAL (the order's creation) go.
    let opts = Opts::default().env("INVENTORY_SEGMENT_BYTES", "4096");
    let server = Server::start(&dir.path().join("data"), opts);
    let mut s = shop(&server).await;
    s.product("MUG", 1000, 0, 10).await;
    s.customer("c1").await;
    let o = s.create("old", "c1", &[("MUG", 1)], 0).await.unwrap();
    for i in 0..200 {
        s.inv.receive(&format!("r{i}"), "MUG", 1).await.unwrap();
    }
    server.snapshot().await.unwrap();
    s.inv.receive("last", "MUG", 1).await.unwrap();
    // The exporter's and the notifier's cursors hold the WAL back too until they catch up.
    server.consumers_caught_up().await;
    server.snapshot().await.unwrap();
    let gone = pb::alerts_client::AlertsClient::new(server.channel().await)
        .watch_events(pb::WatchEventsRequest {
            from_lsn: 1,
            from_index: 0,
            kinds: vec![],
        })
        .await;
    assert_code(gone, Code::OutOfRange);

    let mut watch = s
        .orders
        .watch_order(pb::WatchOrderRequest {
            order_id: "old".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_order(&mut watch).await, o);
    let paid = s.pay("old", "p1", o.total_cents).await.unwrap();
    assert_eq!(next_order(&mut watch).await, paid);
    s.cancel("old").await.unwrap();
    let cancelled = next_order(&mut watch).await;
    assert_eq!(
        (status_of(&cancelled), cancelled.refund_due_cents),
        (pb::OrderStatus::Cancelled, o.total_cents)
    );
    assert_stream_ends(&mut watch).await;
}
