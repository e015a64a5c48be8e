//! `invctl`'s commands for the Orders and Alerts services: customers, orders, returns, alerts,
//! purchase orders, and `watch` (WatchOrder, WatchEvents).

use clap::{Subcommand, ValueEnum};
use proto::inventory::v1 as pb;
use serde_json::{Value, json};

use super::{Client, Failure, iso8601, lines_json, parse_line};

#[derive(Subcommand, Debug)]
pub enum CustomerCmd {
    /// Create or replace a customer's profile (Orders/UpsertCustomer).
    Upsert {
        customer_id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        /// E.164, e.g. +15551234567.
        #[arg(long, default_value = "")]
        phone: String,
        #[arg(long, default_value = "")]
        address: String,
        /// Send order notifications by email.
        #[arg(long)]
        notify_email: bool,
        /// Send order notifications by SMS.
        #[arg(long)]
        notify_sms: bool,
    },
    /// Show a customer with lifetime spend, order count and tier (Orders/GetCustomer).
    Get { customer_id: String },
}

#[derive(Subcommand, Debug)]
pub enum OrderCmd {
    /// Place an order: holds every line or none, priced from the catalogue (Orders/CreateOrder).
    Create {
        /// Client-chosen id: a retry with the same id and lines is applied once.
        order_id: String,
        #[arg(long)]
        customer: String,
        /// Lines as SKU:QTY.
        #[arg(required = true, value_parser = parse_line)]
        lines: Vec<pb::Line>,
        #[arg(long, default_value = "")]
        address: String,
        /// Seconds to pay before the order is cancelled (0 = the server's default, 1800).
        #[arg(long, default_value_t = 0, value_name = "S")]
        payment_timeout: u32,
    },
    /// Show an order (Orders/GetOrder).
    Get { order_id: String },
    /// List orders in id order (Orders/ListOrders), following pages.
    List {
        #[arg(long, default_value = "")]
        customer: String,
        #[arg(long, value_enum)]
        status: Option<OrderStatusArg>,
        /// Orders per page (0 = server default).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// Start after this order id (a page token).
        #[arg(long, default_value = "")]
        page_token: String,
        /// Stop after this many pages (0 = all).
        #[arg(long, default_value_t = 0)]
        pages: u32,
    },
    /// Confirm the payment: PENDING → PAID; the amount must equal the total (Orders/ConfirmPayment).
    Pay {
        order_id: String,
        payment_id: String,
        amount_cents: i64,
    },
    /// Record a failed payment: PENDING → CANCELLED, hold released (Orders/FailPayment).
    Fail {
        order_id: String,
        payment_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// PAID → SHIPPED (Orders/ShipOrder).
    Ship {
        order_id: String,
        carrier: String,
        tracking_number: String,
    },
    /// SHIPPED → DELIVERED (Orders/DeliverOrder).
    Deliver { order_id: String },
    /// PENDING → CANCELLED (released) or PAID → CANCELLED (restocked, refund due)
    /// (Orders/CancelOrder).
    Cancel {
        order_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReturnCmd {
    /// Ask to return lines of a DELIVERED order (Orders/RequestReturn).
    Request {
        return_id: String,
        order_id: String,
        /// Lines as SKU:QTY.
        #[arg(required = true, value_parser = parse_line)]
        lines: Vec<pb::Line>,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Approve a return with a refund, optionally restocking (Orders/ApproveReturn).
    Approve {
        return_id: String,
        refund_cents: i64,
        /// Put the returned units back on hand.
        #[arg(long)]
        restock: bool,
    },
    /// Reject a return (Orders/RejectReturn).
    Reject {
        return_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PoCmd {
    /// List purchase orders, oldest first (Alerts/ListPurchaseOrders).
    List {
        /// Only SUGGESTED and ORDERED ones.
        #[arg(long)]
        open_only: bool,
    },
    /// Move a purchase order on: SUGGESTED → ORDERED → RECEIVED | CANCELLED; receiving it is a
    /// stock receipt (Alerts/UpdatePurchaseOrder).
    Update {
        purchase_order_id: String,
        #[arg(value_enum)]
        status: PoStatusArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum WatchCmd {
    /// Follow an order: its current state, then every change; ends after CANCELLED or
    /// RETURNED (Orders/WatchOrder).
    Order { order_id: String },
    /// Follow the change feed: durable events in LSN order, then live ones (Alerts/WatchEvents).
    Events {
        /// First LSN (inclusive; 0 = the oldest retained).
        #[arg(long, default_value_t = 0, value_name = "LSN")]
        from: u64,
        /// Skip events of the first LSN before this index.
        #[arg(long, default_value_t = 0)]
        index: u32,
        /// Only events of this kind (e.g. OrderShipped); repeatable.
        #[arg(long = "kind", value_name = "KIND")]
        kinds: Vec<String>,
        /// Stop after this many events (0 = follow until the stream ends).
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum OrderStatusArg {
    Pending,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Returned,
}

impl From<OrderStatusArg> for pb::OrderStatus {
    fn from(s: OrderStatusArg) -> Self {
        match s {
            OrderStatusArg::Pending => pb::OrderStatus::Pending,
            OrderStatusArg::Paid => pb::OrderStatus::Paid,
            OrderStatusArg::Shipped => pb::OrderStatus::Shipped,
            OrderStatusArg::Delivered => pb::OrderStatus::Delivered,
            OrderStatusArg::Cancelled => pb::OrderStatus::Cancelled,
            OrderStatusArg::Returned => pb::OrderStatus::Returned,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PoStatusArg {
    Ordered,
    Received,
    Cancelled,
}

impl From<PoStatusArg> for pb::PurchaseOrderStatus {
    fn from(s: PoStatusArg) -> Self {
        match s {
            PoStatusArg::Ordered => pb::PurchaseOrderStatus::Ordered,
            PoStatusArg::Received => pb::PurchaseOrderStatus::Received,
            PoStatusArg::Cancelled => pb::PurchaseOrderStatus::Cancelled,
        }
    }
}

/// An enum value's name without its type prefix (`ORDER_STATUS_PAID` → `PAID`).
fn name_of<E: TryFrom<i32>>(value: i32, full: fn(&E) -> &'static str, prefix: &str) -> String {
    match E::try_from(value) {
        Ok(e) => full(&e).trim_start_matches(prefix).to_string(),
        Err(_) => format!("UNKNOWN({value})"),
    }
}

fn order_status(v: i32) -> String {
    name_of(v, pb::OrderStatus::as_str_name, "ORDER_STATUS_")
}

fn ts(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref().map(iso8601).into()
}

fn ts_text(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref().map(iso8601).unwrap_or_else(|| "-".into())
}

pub fn order_json(o: &pb::Order) -> Value {
    json!({
        "order_id": o.order_id, "customer_id": o.customer_id, "status": order_status(o.status),
        "lines": o.lines.iter().map(|l| json!({
            "sku": l.sku, "quantity": l.quantity, "unit_price_cents": l.unit_price_cents,
        })).collect::<Vec<_>>(),
        "subtotal_cents": o.subtotal_cents, "discount_cents": o.discount_cents,
        "tax_cents": o.tax_cents, "shipping_cents": o.shipping_cents, "total_cents": o.total_cents,
        "created_at": ts(&o.created_at), "payment_deadline": ts(&o.payment_deadline),
        "paid_at": ts(&o.paid_at), "shipped_at": ts(&o.shipped_at),
        "delivered_at": ts(&o.delivered_at), "cancelled_at": ts(&o.cancelled_at),
        "cancel_reason": o.cancel_reason, "carrier": o.carrier,
        "tracking_number": o.tracking_number, "payment_id": o.payment_id,
        "refund_due_cents": o.refund_due_cents, "refunded_cents": o.refunded_cents,
        "shipping_address": o.shipping_address,
    })
}

fn print_order(o: &pb::Order) {
    println!(
        "order {}  {}  customer {}",
        o.order_id,
        order_status(o.status),
        o.customer_id
    );
    println!(
        "created {}  deadline {}  paid {}  shipped {}  delivered {}  cancelled {}",
        ts_text(&o.created_at),
        ts_text(&o.payment_deadline),
        ts_text(&o.paid_at),
        ts_text(&o.shipped_at),
        ts_text(&o.delivered_at),
        ts_text(&o.cancelled_at)
    );
    if !o.cancel_reason.is_empty() {
        println!("cancel reason {:?}", o.cancel_reason);
    }
    if !o.carrier.is_empty() {
        println!("carrier {}  tracking {}", o.carrier, o.tracking_number);
    }
    println!("{:<24} {:>10} {:>14}", "SKU", "QUANTITY", "UNIT_CENTS");
    for l in &o.lines {
        println!(
            "{:<24} {:>10} {:>14}",
            l.sku, l.quantity, l.unit_price_cents
        );
    }
    println!(
        "subtotal {}  discount {}  tax {}  shipping {}  total {}  (cents)",
        o.subtotal_cents, o.discount_cents, o.tax_cents, o.shipping_cents, o.total_cents
    );
    if o.refund_due_cents != 0 || o.refunded_cents != 0 {
        println!(
            "refund due {}  refunded {}  (cents)",
            o.refund_due_cents, o.refunded_cents
        );
    }
}

fn order_out(json_out: bool, o: pb::Order) -> Value {
    if !json_out {
        print_order(&o);
    }
    order_json(&o)
}

fn customer_out(json_out: bool, c: pb::Customer) -> Value {
    if !json_out {
        println!(
            "customer {}  {:?}  {}  {}  tier {}",
            c.customer_id, c.name, c.email, c.phone, c.tier
        );
        println!(
            "lifetime spend {} cents  orders {}  notify email {}  sms {}  since {}",
            c.lifetime_spend_cents,
            c.order_count,
            c.notify_email,
            c.notify_sms,
            ts_text(&c.created_at)
        );
    }
    json!({
        "customer_id": c.customer_id, "name": c.name, "email": c.email, "phone": c.phone,
        "address": c.address, "notify_email": c.notify_email, "notify_sms": c.notify_sms,
        "lifetime_spend_cents": c.lifetime_spend_cents, "order_count": c.order_count,
        "tier": c.tier, "created_at": ts(&c.created_at),
    })
}

fn return_out(json_out: bool, r: pb::Return) -> Value {
    let status = name_of(r.status, pb::ReturnStatus::as_str_name, "RETURN_STATUS_");
    if !json_out {
        println!(
            "return {}  {}  order {}  refund {} cents  restock {}",
            r.return_id, status, r.order_id, r.refund_cents, r.restock
        );
        println!(
            "requested {}  decided {}",
            ts_text(&r.requested_at),
            ts_text(&r.decided_at)
        );
        println!("{:<24} {:>10}", "SKU", "QUANTITY");
        for l in &r.lines {
            println!("{:<24} {:>10}", l.sku, l.quantity);
        }
    }
    json!({
        "return_id": r.return_id, "order_id": r.order_id, "status": status,
        "lines": lines_json(&r.lines), "refund_cents": r.refund_cents, "restock": r.restock,
        "reason": r.reason, "decision_reason": r.decision_reason,
        "requested_at": ts(&r.requested_at), "decided_at": ts(&r.decided_at),
    })
}

fn purchase_order_json(p: &pb::PurchaseOrder) -> Value {
    json!({
        "purchase_order_id": p.purchase_order_id, "sku": p.sku, "quantity": p.quantity,
        "status": name_of(p.status, pb::PurchaseOrderStatus::as_str_name, "PURCHASE_ORDER_STATUS_"),
        "alert_id": p.alert_id, "created_at": ts(&p.created_at), "updated_at": ts(&p.updated_at),
    })
}

fn print_purchase_orders<'a>(pos: impl Iterator<Item = &'a pb::PurchaseOrder>) {
    println!(
        "{:<32} {:<24} {:>10} {:<10} CREATED",
        "PURCHASE_ORDER", "SKU", "QUANTITY", "STATUS"
    );
    for p in pos {
        let status = name_of(
            p.status,
            pb::PurchaseOrderStatus::as_str_name,
            "PURCHASE_ORDER_STATUS_",
        );
        println!(
            "{:<32} {:<24} {:>10} {:<10} {}",
            p.purchase_order_id,
            p.sku,
            p.quantity,
            status,
            ts_text(&p.created_at)
        );
    }
}

pub async fn customer(client: &Client, cmd: CustomerCmd, json_out: bool) -> Result<Value, Failure> {
    let mut orders = client.orders();
    let c = match cmd {
        CustomerCmd::Upsert {
            customer_id,
            name,
            email,
            phone,
            address,
            notify_email,
            notify_sms,
        } => {
            orders
                .upsert_customer(client.request(pb::UpsertCustomerRequest {
                    customer_id,
                    name,
                    email,
                    phone,
                    address,
                    notify_email,
                    notify_sms,
                }))
                .await?
        }
        CustomerCmd::Get { customer_id } => {
            orders
                .get_customer(client.request(pb::GetCustomerRequest { customer_id }))
                .await?
        }
    };
    Ok(customer_out(json_out, c.into_inner()))
}

pub async fn order(client: &Client, cmd: OrderCmd, json_out: bool) -> Result<Value, Failure> {
    let mut orders = client.orders();
    let o = match cmd {
        OrderCmd::Create {
            order_id,
            customer,
            lines,
            address,
            payment_timeout,
        } => {
            orders
                .create_order(client.request(pb::CreateOrderRequest {
                    order_id,
                    customer_id: customer,
                    lines,
                    shipping_address: address,
                    payment_timeout_seconds: payment_timeout,
                }))
                .await?
        }
        OrderCmd::Get { order_id } => {
            orders
                .get_order(client.request(pb::GetOrderRequest { order_id }))
                .await?
        }
        OrderCmd::Pay {
            order_id,
            payment_id,
            amount_cents,
        } => {
            orders
                .confirm_payment(client.request(pb::ConfirmPaymentRequest {
                    order_id,
                    payment_id,
                    amount_cents,
                }))
                .await?
        }
        OrderCmd::Fail {
            order_id,
            payment_id,
            reason,
        } => {
            orders
                .fail_payment(client.request(pb::FailPaymentRequest {
                    order_id,
                    payment_id,
                    reason,
                }))
                .await?
        }
        OrderCmd::Ship {
            order_id,
            carrier,
            tracking_number,
        } => {
            orders
                .ship_order(client.request(pb::ShipOrderRequest {
                    order_id,
                    carrier,
                    tracking_number,
                }))
                .await?
        }
        OrderCmd::Deliver { order_id } => {
            orders
                .deliver_order(client.request(pb::DeliverOrderRequest { order_id }))
                .await?
        }
        OrderCmd::Cancel { order_id, reason } => {
            orders
                .cancel_order(client.request(pb::CancelOrderRequest { order_id, reason }))
                .await?
        }
        OrderCmd::List {
            customer,
            status,
            page_size,
            mut page_token,
            pages,
        } => {
            let status = status.map(pb::OrderStatus::from).unwrap_or_default() as i32;
            let mut found = Vec::new();
            let mut fetched = 0;
            loop {
                let page = orders
                    .list_orders(client.request(pb::ListOrdersRequest {
                        customer_id: customer.clone(),
                        status,
                        page_size,
                        page_token: page_token.clone(),
                    }))
                    .await?
                    .into_inner();
                found.extend(page.orders);
                page_token = page.next_page_token;
                fetched += 1;
                if page_token.is_empty() || (pages > 0 && fetched >= pages) {
                    break;
                }
            }
            if !json_out {
                println!(
                    "{:<32} {:<24} {:<10} {:>6} {:>12}  CREATED",
                    "ORDER", "CUSTOMER", "STATUS", "LINES", "TOTAL_CENTS"
                );
                for o in &found {
                    println!(
                        "{:<32} {:<24} {:<10} {:>6} {:>12}  {}",
                        o.order_id,
                        o.customer_id,
                        order_status(o.status),
                        o.lines.len(),
                        o.total_cents,
                        ts_text(&o.created_at)
                    );
                }
                if !page_token.is_empty() {
                    println!("(more: --page-token {page_token})");
                }
            }
            return Ok(json!({
                "orders": found.iter().map(order_json).collect::<Vec<_>>(),
                "next_page_token": page_token,
            }));
        }
    };
    Ok(order_out(json_out, o.into_inner()))
}

pub async fn returns(client: &Client, cmd: ReturnCmd, json_out: bool) -> Result<Value, Failure> {
    let mut orders = client.orders();
    let r = match cmd {
        ReturnCmd::Request {
            return_id,
            order_id,
            lines,
            reason,
        } => {
            orders
                .request_return(client.request(pb::RequestReturnRequest {
                    return_id,
                    order_id,
                    lines,
                    reason,
                }))
                .await?
        }
        ReturnCmd::Approve {
            return_id,
            refund_cents,
            restock,
        } => {
            orders
                .approve_return(client.request(pb::ApproveReturnRequest {
                    return_id,
                    refund_cents,
                    restock,
                }))
                .await?
        }
        ReturnCmd::Reject { return_id, reason } => {
            orders
                .reject_return(client.request(pb::RejectReturnRequest { return_id, reason }))
                .await?
        }
    };
    Ok(return_out(json_out, r.into_inner()))
}

pub async fn alerts(
    client: &Client,
    include_resolved: bool,
    json_out: bool,
) -> Result<Value, Failure> {
    let alerts = client
        .alerts()
        .list_alerts(client.request(pb::ListAlertsRequest { include_resolved }))
        .await?
        .into_inner()
        .alerts;
    let kind = |a: &pb::Alert| name_of(a.kind, pb::AlertKind::as_str_name, "ALERT_KIND_");
    if !json_out {
        println!(
            "{:<28} {:<24} {:<13} {:>9} {:>8} {:>9}  OPENED / RESOLVED",
            "ALERT", "SKU", "KIND", "AVAILABLE", "REORDER", "SUGGESTED"
        );
        for a in &alerts {
            println!(
                "{:<28} {:<24} {:<13} {:>9} {:>8} {:>9}  {} / {}",
                a.alert_id,
                a.sku,
                kind(a),
                a.available,
                a.reorder_level,
                a.suggested_quantity,
                ts_text(&a.opened_at),
                ts_text(&a.resolved_at)
            );
        }
    }
    Ok(json!({
        "alerts": alerts.iter().map(|a| json!({
            "alert_id": a.alert_id, "sku": a.sku, "kind": kind(a), "available": a.available,
            "reorder_level": a.reorder_level, "suggested_quantity": a.suggested_quantity,
            "opened_at": ts(&a.opened_at), "resolved_at": ts(&a.resolved_at),
        })).collect::<Vec<_>>(),
    }))
}

pub async fn purchase_orders(
    client: &Client,
    cmd: PoCmd,
    json_out: bool,
) -> Result<Value, Failure> {
    let mut alerts = client.alerts();
    match cmd {
        PoCmd::List { open_only } => {
            let pos = alerts
                .list_purchase_orders(client.request(pb::ListPurchaseOrdersRequest { open_only }))
                .await?
                .into_inner()
                .purchase_orders;
            if !json_out {
                print_purchase_orders(pos.iter());
            }
            Ok(json!({"purchase_orders": pos.iter().map(purchase_order_json).collect::<Vec<_>>()}))
        }
        PoCmd::Update {
            purchase_order_id,
            status,
        } => {
            let p = alerts
                .update_purchase_order(client.request(pb::UpdatePurchaseOrderRequest {
                    purchase_order_id,
                    status: pb::PurchaseOrderStatus::from(status) as i32,
                }))
                .await?
                .into_inner();
            if !json_out {
                print_purchase_orders(std::iter::once(&p));
            }
            Ok(purchase_order_json(&p))
        }
    }
}

/// Follows a stream until it ends, printing each message as it arrives: a table row, or with
/// `--json` one JSON document per line.
pub async fn watch(client: &Client, cmd: WatchCmd, json_out: bool) -> Result<u8, Failure> {
    match cmd {
        WatchCmd::Order { order_id } => {
            let mut stream = client
                .orders()
                .watch_order(client.stream_request(pb::WatchOrderRequest { order_id }))
                .await?
                .into_inner();
            while let Some(o) = stream.message().await? {
                if json_out {
                    println!("{}", order_json(&o));
                } else {
                    let at = [&o.cancelled_at, &o.delivered_at, &o.shipped_at, &o.paid_at]
                        .into_iter()
                        .find(|t| t.is_some())
                        .unwrap_or(&o.created_at);
                    println!(
                        "{}  {}  {}  total {}  refunded {}",
                        ts_text(at),
                        o.order_id,
                        order_status(o.status),
                        o.total_cents,
                        o.refunded_cents
                    );
                }
            }
        }
        WatchCmd::Events {
            from,
            index,
            kinds,
            count,
        } => {
            let mut stream = client
                .alerts()
                .watch_events(client.stream_request(pb::WatchEventsRequest {
                    from_lsn: from,
                    from_index: index,
                    kinds,
                }))
                .await?
                .into_inner();
            let mut seen = 0;
            while count == 0 || seen < count {
                let Some(e) = stream.message().await? else {
                    break;
                };
                seen += 1;
                if json_out {
                    let event: Value = serde_json::from_str(&e.json).unwrap_or(Value::Null);
                    println!(
                        "{}",
                        json!({
                            "lsn": e.lsn, "index": e.index, "at": ts(&e.at), "kind": e.kind,
                            "subject": e.subject, "event": event,
                        })
                    );
                } else {
                    println!(
                        "{:>10} {:>3}  {}  {:<24} {}",
                        e.lsn,
                        e.index,
                        ts_text(&e.at),
                        e.kind,
                        e.subject
                    );
                }
            }
        }
    }
    Ok(0)
}
