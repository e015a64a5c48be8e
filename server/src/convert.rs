//! Between the engine's types and the wire's: requests → [`Op`], results → messages, and
//! [`EngineError`] → [`Status`] — the one place where engine errors get their gRPC code.

use engine::{EngineError, Op};
use prost_types::Timestamp;
use proto::inventory::v1 as pb;
use tonic::{Code, Status};

/// The one mapping of engine errors to gRPC status codes (API.md's error table).
pub fn status(err: EngineError) -> Status {
    match err {
        EngineError::InvalidArgument(m) => Status::invalid_argument(m),
        EngineError::NotFound(m) => Status::not_found(m),
        EngineError::FailedPrecondition(m) => Status::failed_precondition(m),
        EngineError::AlreadyExists(m) => Status::already_exists(m),
        EngineError::ResourceExhausted(m) => Status::resource_exhausted(m),
        EngineError::Unavailable(m) => Status::unavailable(m),
        e @ EngineError::Internal(_) => Status::internal(e.to_string()),
    }
}

/// The one mapping of exporter and report errors to gRPC status codes.
pub fn export_status(err: exporter::Error) -> Status {
    use exporter::Error as E;
    match err {
        E::UnknownReport(_) => Status::not_found(err.to_string()),
        E::InvalidArgument(m) => Status::invalid_argument(m),
        E::ResourceExhausted(m) => Status::resource_exhausted(m),
        e @ (E::Store(_) | E::Feed(_)) => Status::unavailable(e.to_string()),
    }
}

/// A normalised result table on the wire.
pub fn report_result(t: exporter::ResultTable, export_lsn: u64) -> pb::ReportResult {
    pb::ReportResult {
        columns: t.columns,
        rows: t
            .rows
            .into_iter()
            .map(|values| pb::Row { values })
            .collect(),
        export_lsn,
    }
}

pub fn batch_error(status: &Status) -> pb::BatchError {
    pb::BatchError {
        code: status.code() as i32,
        message: status.message().to_string(),
    }
}

pub fn batch_error_of(code: Code, message: impl Into<String>) -> pb::BatchResult {
    pb::BatchResult {
        result: Some(pb::batch_result::Result::Error(pb::BatchError {
            code: code as i32,
            message: message.into(),
        })),
    }
}

/// Milliseconds since the epoch → `google.protobuf.Timestamp`; 0 → unset.
pub fn timestamp(ms: u64) -> Option<Timestamp> {
    (ms > 0).then(|| Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    })
}

fn q(x: u64) -> u32 {
    // The engine keeps every figure within u32 (engine::limits::ON_HAND_MAX).
    u32::try_from(x).unwrap_or(u32::MAX)
}

pub fn stock_status(s: engine::StockStatus) -> pb::StockStatus {
    match s {
        engine::StockStatus::InStock => pb::StockStatus::InStock,
        engine::StockStatus::LowStock => pb::StockStatus::LowStock,
        engine::StockStatus::OutOfStock => pb::StockStatus::OutOfStock,
    }
}

pub fn stock(s: engine::StockLevel) -> pb::StockLevel {
    pb::StockLevel {
        status: stock_status(s.status) as i32,
        sku: s.sku,
        on_hand: q(s.on_hand),
        reserved: q(s.reserved),
        available: q(s.available),
        reorder_level: s.reorder_level,
    }
}

pub fn product(p: engine::Product) -> pb::Product {
    pb::Product {
        sku: p.sku,
        name: p.name,
        unit_price_cents: p.unit_price_cents,
        reorder_level: p.reorder_level,
        reorder_quantity: p.reorder_quantity,
        stock: Some(stock(p.stock)),
    }
}

pub fn reservation_state(s: engine::ReservationState) -> pb::ReservationState {
    match s {
        engine::ReservationState::Active => pb::ReservationState::Active,
        engine::ReservationState::Committed => pb::ReservationState::Committed,
        engine::ReservationState::Released => pb::ReservationState::Released,
        engine::ReservationState::Expired => pb::ReservationState::Expired,
    }
}

/// Owned lines move their SKUs to the wire; a hold's shared lines are copied (`.cloned()`).
fn lines_out(lines: impl IntoIterator<Item = engine::Line>) -> Vec<pb::Line> {
    lines
        .into_iter()
        .map(|l| pb::Line {
            sku: l.sku,
            quantity: l.quantity,
        })
        .collect()
}

fn lines_in(lines: Vec<pb::Line>) -> Vec<engine::Line> {
    lines
        .into_iter()
        .map(|l| engine::Line::new(l.sku, l.quantity))
        .collect()
}

pub fn reservation(r: engine::Reservation) -> pb::Reservation {
    pb::Reservation {
        reservation_id: r.reservation_id,
        state: reservation_state(r.state) as i32,
        lines: lines_out(r.lines.iter().cloned()),
        committed_lines: lines_out(r.committed_lines),
        created_at: timestamp(r.created_at_ms),
        expires_at: timestamp(r.expires_at_ms),
    }
}

pub fn upsert_op(r: pb::UpsertProductRequest) -> Op {
    Op::UpsertProduct {
        sku: r.sku,
        name: r.name,
        unit_price_cents: r.unit_price_cents,
        reorder_level: r.reorder_level,
        reorder_quantity: r.reorder_quantity,
    }
}

pub fn receive_op(r: pb::ReceiveStockRequest) -> Op {
    Op::Receive {
        receipt_id: r.receipt_id,
        sku: r.sku,
        quantity: r.quantity,
    }
}

pub fn adjust_op(r: pb::AdjustStockRequest) -> Op {
    Op::Adjust {
        adjustment_id: r.adjustment_id,
        sku: r.sku,
        on_hand: r.on_hand,
        reason: r.reason,
    }
}

pub fn reserve_op(r: pb::ReserveRequest) -> Op {
    Op::Reserve {
        reservation_id: r.reservation_id,
        lines: lines_in(r.lines).into(),
        ttl_seconds: r.ttl_seconds,
    }
}

pub fn commit_op(r: pb::CommitRequest) -> Op {
    Op::Commit {
        reservation_id: r.reservation_id,
        lines: lines_in(r.lines),
    }
}

pub fn release_op(r: pb::ReleaseRequest) -> Op {
    Op::Release {
        reservation_id: r.reservation_id,
    }
}

// ---------------------------------------------------------------------------
// Orders, customers, returns
// ---------------------------------------------------------------------------

pub fn order_status(s: engine::OrderStatus) -> pb::OrderStatus {
    use engine::OrderStatus as S;
    match s {
        S::Pending => pb::OrderStatus::Pending,
        S::Paid => pb::OrderStatus::Paid,
        S::Shipped => pb::OrderStatus::Shipped,
        S::Delivered => pb::OrderStatus::Delivered,
        S::Cancelled => pb::OrderStatus::Cancelled,
        S::Returned => pb::OrderStatus::Returned,
    }
}

/// A wire enum value (prost keeps it as an `i32`) → the engine's, `None` for UNSPECIFIED (`of`
/// says which); a number the proto does not define is INVALID_ARGUMENT naming `field`.
fn enum_in<P: TryFrom<i32>, E>(
    field: &str,
    value: i32,
    of: impl Fn(P) -> Option<E>,
) -> Result<Option<E>, Status> {
    P::try_from(value)
        .map(of)
        .map_err(|_| Status::invalid_argument(format!("{field}: unknown value {value}")))
}

/// ListOrders' status filter: UNSPECIFIED = any status.
pub fn order_status_filter(value: i32) -> Result<Option<engine::OrderStatus>, Status> {
    use engine::OrderStatus as S;
    enum_in("status", value, |s| match s {
        pb::OrderStatus::Unspecified => None,
        pb::OrderStatus::Pending => Some(S::Pending),
        pb::OrderStatus::Paid => Some(S::Paid),
        pb::OrderStatus::Shipped => Some(S::Shipped),
        pb::OrderStatus::Delivered => Some(S::Delivered),
        pb::OrderStatus::Cancelled => Some(S::Cancelled),
        pb::OrderStatus::Returned => Some(S::Returned),
    })
}

pub fn return_status(s: engine::ReturnStatus) -> pb::ReturnStatus {
    match s {
        engine::ReturnStatus::Requested => pb::ReturnStatus::Requested,
        engine::ReturnStatus::Approved => pb::ReturnStatus::Approved,
        engine::ReturnStatus::Rejected => pb::ReturnStatus::Rejected,
    }
}

pub fn alert_kind(k: engine::AlertKind) -> pb::AlertKind {
    match k {
        engine::AlertKind::LowStock => pb::AlertKind::LowStock,
        engine::AlertKind::OutOfStock => pb::AlertKind::OutOfStock,
    }
}

pub fn purchase_order_status(s: engine::PurchaseOrderStatus) -> pb::PurchaseOrderStatus {
    use engine::PurchaseOrderStatus as S;
    match s {
        S::Suggested => pb::PurchaseOrderStatus::Suggested,
        S::Ordered => pb::PurchaseOrderStatus::Ordered,
        S::Received => pb::PurchaseOrderStatus::Received,
        S::Cancelled => pb::PurchaseOrderStatus::Cancelled,
    }
}

pub fn customer(c: engine::Customer) -> pb::Customer {
    pb::Customer {
        customer_id: c.customer_id,
        name: c.name,
        email: c.email,
        phone: c.phone,
        address: c.address,
        notify_email: c.notify_email,
        notify_sms: c.notify_sms,
        lifetime_spend_cents: c.lifetime_spend_cents,
        order_count: c.order_count,
        tier: c.tier,
        created_at: timestamp(c.created_at_ms),
    }
}

pub fn order(o: engine::Order) -> pb::Order {
    let t = o.totals;
    pb::Order {
        order_id: o.order_id,
        customer_id: o.customer_id,
        status: order_status(o.status) as i32,
        lines: o
            .lines
            .into_iter()
            .map(|l| pb::OrderLine {
                sku: l.sku,
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
            })
            .collect(),
        subtotal_cents: t.subtotal_cents,
        discount_cents: t.discount_cents,
        tax_cents: t.tax_cents,
        shipping_cents: t.shipping_cents,
        total_cents: t.total_cents,
        created_at: timestamp(o.created_at_ms),
        paid_at: timestamp(o.paid_at_ms),
        shipped_at: timestamp(o.shipped_at_ms),
        delivered_at: timestamp(o.delivered_at_ms),
        cancelled_at: timestamp(o.cancelled_at_ms),
        cancel_reason: o.cancel_reason,
        carrier: o.carrier,
        tracking_number: o.tracking_number,
        payment_deadline: timestamp(o.payment_deadline_ms),
        refund_due_cents: o.refund_due_cents,
        refunded_cents: o.refunded_cents,
        shipping_address: o.shipping_address,
        payment_id: o.payment_id,
    }
}

pub fn return_(r: engine::Return) -> pb::Return {
    pb::Return {
        return_id: r.return_id,
        order_id: r.order_id,
        status: return_status(r.status) as i32,
        lines: lines_out(r.lines),
        refund_cents: r.refund_cents,
        requested_at: timestamp(r.requested_at_ms),
        decided_at: timestamp(r.decided_at_ms),
        reason: r.reason,
        restock: r.restock,
        decision_reason: r.decision_reason,
    }
}

pub fn alert(a: engine::Alert) -> pb::Alert {
    pb::Alert {
        alert_id: a.alert_id,
        sku: a.sku,
        kind: alert_kind(a.kind) as i32,
        available: q(a.available),
        reorder_level: a.reorder_level,
        suggested_quantity: a.suggested_quantity,
        opened_at: timestamp(a.opened_at_ms),
        resolved_at: a.resolved_at_ms.and_then(timestamp),
    }
}

pub fn purchase_order(p: engine::PurchaseOrder) -> pb::PurchaseOrder {
    pb::PurchaseOrder {
        purchase_order_id: p.purchase_order_id,
        sku: p.sku,
        quantity: p.quantity,
        status: purchase_order_status(p.status) as i32,
        alert_id: p.alert_id,
        created_at: timestamp(p.created_at_ms),
        updated_at: timestamp(p.updated_at_ms),
    }
}

pub fn upsert_customer_op(r: pb::UpsertCustomerRequest) -> Op {
    Op::UpsertCustomer {
        customer_id: r.customer_id,
        name: r.name,
        email: r.email,
        phone: r.phone,
        address: r.address,
        notify_email: r.notify_email,
        notify_sms: r.notify_sms,
    }
}

pub fn create_order_op(r: pb::CreateOrderRequest) -> Op {
    Op::CreateOrder {
        order_id: r.order_id,
        customer_id: r.customer_id,
        lines: lines_in(r.lines),
        shipping_address: r.shipping_address,
        payment_timeout_seconds: r.payment_timeout_seconds,
    }
}

pub fn confirm_payment_op(r: pb::ConfirmPaymentRequest) -> Op {
    Op::ConfirmPayment {
        order_id: r.order_id,
        payment_id: r.payment_id,
        amount_cents: r.amount_cents,
    }
}

pub fn fail_payment_op(r: pb::FailPaymentRequest) -> Op {
    Op::FailPayment {
        order_id: r.order_id,
        payment_id: r.payment_id,
        reason: r.reason,
    }
}

pub fn ship_order_op(r: pb::ShipOrderRequest) -> Op {
    Op::ShipOrder {
        order_id: r.order_id,
        carrier: r.carrier,
        tracking_number: r.tracking_number,
    }
}

pub fn deliver_order_op(r: pb::DeliverOrderRequest) -> Op {
    Op::DeliverOrder {
        order_id: r.order_id,
    }
}

pub fn cancel_order_op(r: pb::CancelOrderRequest) -> Op {
    Op::CancelOrder {
        order_id: r.order_id,
        reason: r.reason,
    }
}

pub fn request_return_op(r: pb::RequestReturnRequest) -> Op {
    Op::RequestReturn {
        return_id: r.return_id,
        order_id: r.order_id,
        lines: lines_in(r.lines),
        reason: r.reason,
    }
}

pub fn approve_return_op(r: pb::ApproveReturnRequest) -> Op {
    Op::ApproveReturn {
        return_id: r.return_id,
        refund_cents: r.refund_cents,
        restock: r.restock,
    }
}

pub fn reject_return_op(r: pb::RejectReturnRequest) -> Op {
    Op::RejectReturn {
        return_id: r.return_id,
        reason: r.reason,
    }
}

/// UpdatePurchaseOrder: the status is required (UNSPECIFIED → INVALID_ARGUMENT naming it).
pub fn update_purchase_order_op(r: pb::UpdatePurchaseOrderRequest) -> Result<Op, Status> {
    use engine::PurchaseOrderStatus as S;
    let status = enum_in("status", r.status, |s| match s {
        pb::PurchaseOrderStatus::Unspecified => None,
        pb::PurchaseOrderStatus::Suggested => Some(S::Suggested),
        pb::PurchaseOrderStatus::Ordered => Some(S::Ordered),
        pb::PurchaseOrderStatus::Received => Some(S::Received),
        pb::PurchaseOrderStatus::Cancelled => Some(S::Cancelled),
    })?
    .ok_or_else(|| {
        Status::invalid_argument(
            "status: PURCHASE_ORDER_STATUS_UNSPECIFIED; give the status to move the purchase order to",
        )
    })?;
    Ok(Op::UpdatePurchaseOrder {
        purchase_order_id: r.purchase_order_id,
        status,
    })
}

/// An op's output as a batch result.
pub fn batch_ok(out: engine::OpOutput) -> pb::BatchResult {
    use pb::batch_result::Result as R;
    let result = match out {
        engine::OpOutput::Product(p) => R::Product(product(p)),
        engine::OpOutput::Stock(s) => R::Stock(stock(s)),
        engine::OpOutput::Reservation(r) => R::Reservation(reservation(r)),
        engine::OpOutput::Order(o) => R::Order(order(o)),
        // Batches carry only the ops of `BatchOp` (no customer, return or purchase-order op).
        other => {
            return batch_error_of(
                Code::Internal,
                format!("engine returned an unexpected result for a batch op: {other:?}"),
            );
        }
    };
    pb::BatchResult {
        result: Some(result),
    }
}

/// The name of a batch op's kind, as the role matrix spells it.
pub fn batch_op_kind(op: &pb::batch_op::Op) -> &'static str {
    use pb::batch_op::Op as O;
    match op {
        O::UpsertProduct(_) => "upsert_product",
        O::Receive(_) => "receive",
        O::Adjust(_) => "adjust",
        O::Reserve(_) => "reserve",
        O::Commit(_) => "commit",
        O::Release(_) => "release",
        O::CreateOrder(_) => "create_order",
        O::ConfirmPayment(_) => "confirm_payment",
    }
}

/// Lines a batch op carries (for the batch's line limit).
pub fn batch_op_lines(op: &pb::batch_op::Op) -> usize {
    use pb::batch_op::Op as O;
    match op {
        O::Reserve(r) => r.lines.len(),
        O::Commit(r) => r.lines.len(),
        O::CreateOrder(r) => r.lines.len(),
        _ => 0,
    }
}

/// A notification from the outbox.
pub fn notification(m: &notifier::Message) -> pb::Notification {
    let status = match m.status {
        notifier::Status::Pending => pb::NotificationStatus::Pending,
        notifier::Status::Sent => pb::NotificationStatus::Sent,
        notifier::Status::Failed => pb::NotificationStatus::Failed,
    };
    pb::Notification {
        notification_id: m.id.clone(),
        channel: m.channel.name().to_string(),
        recipient: m.recipient.clone(),
        event_kind: m.event_kind.clone(),
        status: status as i32,
        attempts: m.attempts,
        last_error: m.last_error.clone(),
        sent_at: timestamp(m.sent_at_ms),
        event_lsn: m.event_lsn,
        created_at: timestamp(m.created_at_ms),
        next_attempt_at: timestamp(m.next_attempt_ms),
    }
}

/// `ListNotifications.status`: UNSPECIFIED = every status.
pub fn notification_status_filter(status: i32) -> Result<Option<notifier::Status>, Status> {
    match pb::NotificationStatus::try_from(status) {
        Ok(pb::NotificationStatus::Unspecified) => Ok(None),
        Ok(pb::NotificationStatus::Pending) => Ok(Some(notifier::Status::Pending)),
        Ok(pb::NotificationStatus::Sent) => Ok(Some(notifier::Status::Sent)),
        Ok(pb::NotificationStatus::Failed) => Ok(Some(notifier::Status::Failed)),
        Err(_) => Err(Status::invalid_argument(format!(
            "status {status} is not a NotificationStatus"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_error_has_its_code() {
        let cases = [
            (
                EngineError::InvalidArgument("a".into()),
                Code::InvalidArgument,
            ),
            (EngineError::NotFound("a".into()), Code::NotFound),
            (
                EngineError::FailedPrecondition("a".into()),
                Code::FailedPrecondition,
            ),
            (EngineError::AlreadyExists("a".into()), Code::AlreadyExists),
            (
                EngineError::ResourceExhausted("a".into()),
                Code::ResourceExhausted,
            ),
            (EngineError::Unavailable("a".into()), Code::Unavailable),
            (EngineError::Internal("a".into()), Code::Internal),
        ];
        for (err, code) in cases {
            assert_eq!(status(err).code(), code);
        }
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        assert_eq!(timestamp(0), None);
        let t = timestamp(1_700_000_000_123).unwrap();
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
    }
}
