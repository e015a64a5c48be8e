//! Deciding order-domain ops (customers, orders, returns, purchase orders) against the locked
//! state: an idempotent reply, a refusal, or the events to write. Like [`super::decide`],
//! nothing here mutates state.
//!
//! Idempotency: CreateOrder and RequestReturn are keyed by their ids (same payload → current
//! state; different → ALREADY_EXISTS). A transition retried after it happened, with the same
//! payload (the same payment id, carrier and tracking number, reason, refund), returns the
//! current state; any other request in the wrong state is FAILED_PRECONDITION naming both
//! states.

use std::collections::VecDeque;

use super::apply::{Ctx, Locked};
use super::apply_orders::returnable;
use super::decide::{Decision, check_reservable};
use super::shard::{HistoryKind, OrderEntry, ReturnEntry};
use crate::alerts::{PurchaseOrderStatus, purchase_order_sku};
use crate::engine::EngineConfig;
use crate::error::{EngineError, Result, exists, invalid, not_found, precondition};
use crate::event::Event;
use crate::limits;
use crate::model::{Line, Lines, Op, OpOutput};
use crate::orders::{OrderLine, OrderStatus, ReturnStatus, hold_id};

pub fn decide(
    ctx: &Ctx,
    locked: &mut Locked,
    op: &Op,
    now_ms: u64,
    config: &EngineConfig,
) -> Result<Decision> {
    let reply = |locked: &mut Locked| Ok(Decision::Reply(output(ctx, locked, op, now_ms, config)?));
    match op {
        Op::UpsertCustomer {
            customer_id,
            name,
            email,
            phone,
            address,
            notify_email,
            notify_sms,
        } => {
            if let Some(entry) = locked
                .shard(ctx.router.of(customer_id))
                .customers
                .get(customer_id)
            {
                let c = &entry.customer;
                if (
                    &c.name,
                    &c.email,
                    &c.phone,
                    &c.address,
                    c.notify_email,
                    c.notify_sms,
                ) == (name, email, phone, address, *notify_email, *notify_sms)
                {
                    return reply(locked);
                }
            }
            Ok(Decision::Write(vec![Event::CustomerUpserted {
                customer_id: customer_id.clone(),
                name: name.clone(),
                email: email.clone(),
                phone: phone.clone(),
                address: address.clone(),
                notify_email: *notify_email,
                notify_sms: *notify_sms,
            }]))
        }
        Op::CreateOrder {
            order_id,
            customer_id,
            lines,
            shipping_address,
            payment_timeout_seconds,
        } => {
            if let Some(prior) =
                locked
                    .shard(ctx.router.of(order_id))
                    .order(order_id, now_ms, ctx.order_retention)
            {
                let o = &prior.order;
                let same_lines = o.lines.len() == lines.len()
                    && o.lines
                        .iter()
                        .zip(lines)
                        .all(|(a, b)| a.sku == b.sku && a.quantity == b.quantity);
                if o.customer_id == *customer_id
                    && same_lines
                    && o.shipping_address == *shipping_address
                    && o.payment_timeout_seconds == *payment_timeout_seconds
                {
                    return reply(locked);
                }
                return Err(exists(format!(
                    "order_id {order_id} was already used with a different customer, lines, address or timeout"
                )));
            }
            if !locked
                .shard(ctx.router.of(customer_id))
                .customers
                .contains(customer_id)
            {
                return Err(not_found(format!("unknown customer {customer_id}")));
            }
            check_reservable(ctx, locked, lines, config.live_holds_max)?;
            let mut priced = Vec::with_capacity(lines.len());
            for line in lines {
                let entry = locked
                    .shard(ctx.router.of(&line.sku))
                    .skus
                    .get(&line.sku)
                    .ok_or_else(|| not_found(format!("unknown SKU {}", line.sku)))?;
                priced.push(OrderLine {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                    unit_price_cents: entry.product.unit_price_cents,
                });
            }
            let pricing = config.orders.pricing;
            let totals = pricing.totals(&priced).ok_or_else(|| {
                invalid(format!(
                    "lines: the order total would exceed the maximum of {} cents",
                    limits::ORDER_TOTAL_CENTS_MAX
                ))
            })?;
            let deadline = now_ms + u64::from(*payment_timeout_seconds) * 1000;
            Ok(Decision::Write(vec![
                Event::InventoryReserved {
                    reservation_id: hold_id(order_id),
                    lines: lines.as_slice().into(),
                    ttl_seconds: *payment_timeout_seconds,
                    created_at_ms: now_ms,
                    expires_at_ms: deadline,
                },
                Event::OrderCreated {
                    order_id: order_id.clone(),
                    customer_id: customer_id.clone(),
                    lines: priced,
                    shipping_address: shipping_address.clone(),
                    totals,
                    pricing,
                    payment_timeout_seconds: *payment_timeout_seconds,
                    payment_deadline_ms: deadline,
                },
            ]))
        }
        Op::ConfirmPayment {
            order_id,
            payment_id,
            amount_cents,
        } => {
            let o = order(ctx, locked, order_id, now_ms)?;
            if !o.order.payment_id.is_empty() && o.order.payment_id == *payment_id {
                if o.order.totals.total_cents == *amount_cents {
                    return reply(locked);
                }
                return Err(exists(format!(
                    "payment_id {payment_id} was already used for {} cents",
                    o.order.totals.total_cents
                )));
            }
            if o.order.status != OrderStatus::Pending {
                return Err(wrong_state(order_id, o.order.status, OrderStatus::Paid));
            }
            if *amount_cents != o.order.totals.total_cents {
                return Err(precondition(format!(
                    "amount_cents {amount_cents} does not equal the order's total_cents {}",
                    o.order.totals.total_cents
                )));
            }
            let held = held_lines(ctx, locked, order_id, now_ms)?;
            Ok(Decision::Write(vec![
                Event::PaymentProcessed {
                    order_id: order_id.clone(),
                    payment_id: payment_id.clone(),
                    amount_cents: *amount_cents,
                    succeeded: true,
                    reason: String::new(),
                },
                Event::ReservationCommitted {
                    reservation_id: hold_id(order_id),
                    committed: held.to_vec(),
                    released: Vec::new(),
                },
                Event::OrderPaid {
                    order_id: order_id.clone(),
                    customer_id: o.order.customer_id.clone(),
                    payment_id: payment_id.clone(),
                    amount_cents: *amount_cents,
                },
            ]))
        }
        Op::FailPayment {
            order_id,
            payment_id,
            reason,
        } => {
            let o = order(ctx, locked, order_id, now_ms)?;
            if o.failed_payment_id == *payment_id {
                return reply(locked);
            }
            if o.order.status != OrderStatus::Pending {
                return Err(wrong_state(
                    order_id,
                    o.order.status,
                    OrderStatus::Cancelled,
                ));
            }
            let held = held_lines(ctx, locked, order_id, now_ms)?;
            let why = if reason.is_empty() {
                "payment_failed".to_string()
            } else {
                format!("payment_failed: {reason}")
            };
            Ok(Decision::Write(vec![
                Event::PaymentProcessed {
                    order_id: order_id.clone(),
                    payment_id: payment_id.clone(),
                    amount_cents: o.order.totals.total_cents,
                    succeeded: false,
                    reason: reason.clone(),
                },
                Event::ReservationReleased {
                    reservation_id: hold_id(order_id),
                    lines: held,
                },
                cancelled(&o, OrderStatus::Pending, why),
            ]))
        }
        Op::ShipOrder {
            order_id,
            carrier,
            tracking_number,
        } => {
            let o = order(ctx, locked, order_id, now_ms)?;
            let status = o.order.status;
            let shipped = matches!(
                status,
                OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Returned
            );
            if shipped && o.order.carrier == *carrier && o.order.tracking_number == *tracking_number
            {
                return reply(locked);
            }
            if status != OrderStatus::Paid {
                return Err(wrong_state(order_id, status, OrderStatus::Shipped));
            }
            Ok(Decision::Write(vec![Event::OrderShipped {
                order_id: order_id.clone(),
                carrier: carrier.clone(),
                tracking_number: tracking_number.clone(),
            }]))
        }
        Op::DeliverOrder { order_id } => {
            let status = order(ctx, locked, order_id, now_ms)?.order.status;
            if matches!(status, OrderStatus::Delivered | OrderStatus::Returned) {
                return reply(locked);
            }
            if status != OrderStatus::Shipped {
                return Err(wrong_state(order_id, status, OrderStatus::Delivered));
            }
            Ok(Decision::Write(vec![Event::OrderDelivered {
                order_id: order_id.clone(),
            }]))
        }
        Op::CancelOrder { order_id, reason } => {
            let o = order(ctx, locked, order_id, now_ms)?;
            let why = if reason.is_empty() {
                "cancelled".to_string()
            } else {
                reason.clone()
            };
            match o.order.status {
                OrderStatus::Cancelled if o.order.cancel_reason == why => reply(locked),
                OrderStatus::Pending => {
                    let held = held_lines(ctx, locked, order_id, now_ms)?;
                    Ok(Decision::Write(vec![
                        Event::ReservationReleased {
                            reservation_id: hold_id(order_id),
                            lines: held,
                        },
                        cancelled(&o, OrderStatus::Pending, why),
                    ]))
                }
                OrderStatus::Paid => {
                    Ok(Decision::Write(vec![cancelled(&o, OrderStatus::Paid, why)]))
                }
                status => Err(wrong_state(order_id, status, OrderStatus::Cancelled)),
            }
        }
        Op::RequestReturn {
            return_id,
            order_id,
            lines,
            reason,
        } => {
            if let Some(prior) = locked.shard(ctx.router.of(return_id)).return_entry(
                return_id,
                now_ms,
                ctx.retention,
            ) {
                let r = &prior.ret;
                if r.order_id == *order_id && r.lines == *lines && r.reason == *reason {
                    return reply(locked);
                }
                return Err(exists(format!(
                    "return_id {return_id} was already used with a different order, lines or reason"
                )));
            }
            let o = order(ctx, locked, order_id, now_ms)?;
            if o.order.status != OrderStatus::Delivered {
                return Err(precondition(format!(
                    "order {order_id} is {}; only a DELIVERED order can be returned",
                    o.order.status.name()
                )));
            }
            for line in lines {
                if !o.order.lines.iter().any(|l| l.sku == line.sku) {
                    return Err(precondition(format!(
                        "{} is not on order {order_id}",
                        line.sku
                    )));
                }
                let open = returnable(&o, &line.sku);
                if u64::from(line.quantity) > open {
                    return Err(precondition(format!(
                        "cannot return {} of {}: {open} delivered and not yet returned or requested",
                        line.quantity, line.sku
                    )));
                }
            }
            Ok(Decision::Write(vec![Event::ReturnRequested {
                return_id: return_id.clone(),
                order_id: order_id.clone(),
                lines: lines.clone(),
                reason: reason.clone(),
            }]))
        }
        Op::ApproveReturn {
            return_id,
            refund_cents,
            restock,
        } => {
            let r = return_entry(ctx, locked, return_id, now_ms)?.ret;
            if r.status == ReturnStatus::Approved
                && r.refund_cents == *refund_cents
                && r.restock == *restock
            {
                return reply(locked);
            }
            if r.status != ReturnStatus::Requested {
                return Err(return_state(return_id, r.status, ReturnStatus::Approved));
            }
            let o = order(ctx, locked, &r.order_id, now_ms)?;
            let paid = o.order.totals.total_cents;
            let refundable = paid - o.order.refunded_cents;
            if *refund_cents > refundable {
                return Err(precondition(format!(
                    "refund_cents {refund_cents} exceeds what is refundable: paid {paid} minus earlier refunds {} = {refundable}",
                    o.order.refunded_cents
                )));
            }
            let mut events = vec![Event::ReturnApproved {
                return_id: return_id.clone(),
                order_id: r.order_id.clone(),
                customer_id: o.order.customer_id.clone(),
                lines: r.lines.clone(),
                refund_cents: *refund_cents,
                restocked: if *restock {
                    r.lines.clone()
                } else {
                    Vec::new()
                },
            }];
            // All returned once approved returns cover every unit of every line.
            let all_back = o.order.lines.iter().all(|line| {
                let returned = |lines: &[Line]| {
                    lines
                        .iter()
                        .find(|l| l.sku == line.sku)
                        .map_or(0, |l| l.quantity)
                };
                returned(&o.returned) + returned(&r.lines) >= line.quantity
            });
            if all_back {
                events.push(Event::OrderReturned {
                    order_id: r.order_id.clone(),
                });
            }
            Ok(Decision::Write(events))
        }
        Op::RejectReturn { return_id, reason } => {
            let r = return_entry(ctx, locked, return_id, now_ms)?.ret;
            if r.status == ReturnStatus::Rejected && r.decision_reason == *reason {
                return reply(locked);
            }
            if r.status != ReturnStatus::Requested {
                return Err(return_state(return_id, r.status, ReturnStatus::Rejected));
            }
            Ok(Decision::Write(vec![Event::ReturnRejected {
                return_id: return_id.clone(),
                order_id: r.order_id.clone(),
                lines: r.lines.clone(),
                reason: reason.clone(),
            }]))
        }
        Op::UpdatePurchaseOrder {
            purchase_order_id,
            status,
        } => {
            let (sku, po) = purchase_order(ctx, locked, purchase_order_id)?;
            if po.status == *status {
                return reply(locked);
            }
            if !po.status.may_become(*status) {
                return Err(precondition(format!(
                    "purchase order {purchase_order_id} is {}; it cannot become {}",
                    po.status.name(),
                    status.name()
                )));
            }
            let entry = locked
                .shard(ctx.router.of(&sku))
                .skus
                .get(&sku)
                .ok_or_else(|| not_found(format!("unknown SKU {sku}")))?;
            let mut events = Vec::new();
            if *status == PurchaseOrderStatus::Received {
                let after = entry.on_hand + u64::from(po.quantity);
                if after > limits::ON_HAND_MAX {
                    return Err(precondition(format!(
                        "receiving {} of {sku} would take on_hand to {after}, above the maximum {}",
                        po.quantity,
                        limits::ON_HAND_MAX
                    )));
                }
                events.push(Event::StockReceived {
                    receipt_id: purchase_order_id.clone(),
                    sku: sku.clone(),
                    quantity: po.quantity,
                    on_hand_before: entry.on_hand,
                    on_hand_after: after,
                    reserved: entry.reserved,
                });
            }
            let forgotten = if status.is_open() {
                Vec::new()
            } else {
                let mut history = entry
                    .alerts
                    .as_ref()
                    .map(|a| a.history.clone())
                    .unwrap_or_default();
                history_push(&mut history, HistoryKind::PurchaseOrder, purchase_order_id)
            };
            events.push(Event::PurchaseOrderUpdated {
                purchase_order_id: purchase_order_id.clone(),
                sku,
                status: *status,
                forgotten,
            });
            Ok(Decision::Write(events))
        }
        other => Err(EngineError::Internal(format!(
            "{} is not an order-domain op",
            other.name()
        ))),
    }
}

/// Pushes an id onto a SKU's alert history and returns the ids that fall off its front.
pub fn history_push(
    history: &mut VecDeque<(HistoryKind, String)>,
    kind: HistoryKind,
    id: &str,
) -> Vec<String> {
    history.push_back((kind, id.to_string()));
    let over = history
        .len()
        .saturating_sub(limits::ALERT_HISTORY_PER_SKU_MAX);
    history.drain(..over).map(|(_, id)| id).collect()
}

fn cancelled(o: &OrderEntry, from: OrderStatus, reason: String) -> Event {
    let paid = from == OrderStatus::Paid;
    Event::OrderCancelled {
        order_id: o.order.order_id.clone(),
        customer_id: o.order.customer_id.clone(),
        from,
        reason,
        refund_due_cents: if paid { o.order.totals.total_cents } else { 0 },
        restocked: if paid {
            o.order
                .lines
                .iter()
                .map(|l| Line::new(l.sku.clone(), l.quantity))
                .collect()
        } else {
            Vec::new()
        },
    }
}

fn wrong_state(order_id: &str, status: OrderStatus, wanted: OrderStatus) -> EngineError {
    precondition(format!(
        "order {order_id} is {}; it cannot become {}",
        status.name(),
        wanted.name()
    ))
}

fn return_state(return_id: &str, status: ReturnStatus, wanted: ReturnStatus) -> EngineError {
    precondition(format!(
        "return {return_id} is {}; it cannot become {}",
        status.name(),
        wanted.name()
    ))
}

fn order(ctx: &Ctx, locked: &mut Locked, order_id: &str, now_ms: u64) -> Result<OrderEntry> {
    locked
        .shard(ctx.router.of(order_id))
        .order(order_id, now_ms, ctx.order_retention)
        .cloned()
        .ok_or_else(|| not_found(format!("order {order_id} not found")))
}

fn return_entry(
    ctx: &Ctx,
    locked: &mut Locked,
    return_id: &str,
    now_ms: u64,
) -> Result<ReturnEntry> {
    locked
        .shard(ctx.router.of(return_id))
        .return_entry(return_id, now_ms, ctx.retention)
        .cloned()
        .ok_or_else(|| not_found(format!("return {return_id} not found")))
}

fn purchase_order(
    ctx: &Ctx,
    locked: &mut Locked,
    id: &str,
) -> Result<(String, crate::alerts::PurchaseOrder)> {
    let unknown = || not_found(format!("purchase order {id} not found"));
    let sku = purchase_order_sku(id).ok_or_else(unknown)?;
    let po = locked
        .shard(ctx.router.of(sku))
        .purchase_orders
        .get(id)
        .ok_or_else(unknown)?
        .purchase_order
        .clone();
    Ok((sku.to_string(), po))
}

/// What a PENDING order's hold holds. Ops expire due holds before deciding, so the hold of a
/// PENDING order is active here; anything else is a bug.
fn held_lines(ctx: &Ctx, locked: &mut Locked, order_id: &str, now_ms: u64) -> Result<Lines> {
    let id = hold_id(order_id);
    let hold = locked
        .shard(ctx.router.of(&id))
        .reservation(&id, now_ms, ctx.retention)
        .filter(|h| h.state == crate::model::ReservationState::Active)
        .ok_or_else(|| {
            EngineError::Internal(format!(
                "order {order_id} is PENDING but its hold is not active"
            ))
        })?;
    Ok(hold.lines.clone())
}

/// The reply to an order-domain op, from the (possibly just changed) state.
pub fn output(
    ctx: &Ctx,
    locked: &mut Locked,
    op: &Op,
    now_ms: u64,
    config: &EngineConfig,
) -> Result<OpOutput> {
    Ok(match op {
        Op::UpsertCustomer { customer_id, .. } => {
            let entry = locked
                .shard(ctx.router.of(customer_id))
                .customers
                .get(customer_id)
                .ok_or_else(|| not_found(format!("unknown customer {customer_id}")))?;
            let mut customer = entry.customer.clone();
            customer.tier = config.orders.tiers.of(customer.lifetime_spend_cents).into();
            OpOutput::Customer(customer)
        }
        Op::CreateOrder { order_id, .. }
        | Op::ConfirmPayment { order_id, .. }
        | Op::FailPayment { order_id, .. }
        | Op::ShipOrder { order_id, .. }
        | Op::DeliverOrder { order_id }
        | Op::CancelOrder { order_id, .. } => {
            OpOutput::Order(order(ctx, locked, order_id, now_ms)?.order)
        }
        Op::RequestReturn { return_id, .. }
        | Op::ApproveReturn { return_id, .. }
        | Op::RejectReturn { return_id, .. } => {
            OpOutput::Return(return_entry(ctx, locked, return_id, now_ms)?.ret)
        }
        Op::UpdatePurchaseOrder {
            purchase_order_id, ..
        } => OpOutput::PurchaseOrder(purchase_order(ctx, locked, purchase_order_id)?.1),
        other => {
            return Err(EngineError::Internal(format!(
                "{} is not an order-domain op",
                other.name()
            )));
        }
    })
}
