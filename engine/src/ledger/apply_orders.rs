//! Applying order, customer, return, alert and purchase-order events — the second half of
//! [`super::apply`], with the same rules: one code path for live ops and replay, every entity
//! changed only if its stamp is below the event's, its precondition checked right before.
//!
//! Stock effects of orders go through the ordinary hold events (an order's hold is a
//! reservation in the orders' id space), except restocking (a cancelled paid order, an
//! approved return), which is here.

use std::sync::atomic::Ordering;

use super::apply::{At, Ctx, Locked, sku_entry};
use super::shard::{
    AlertEntry, CustomerEntry, HistoryKind, IdKind, OrderEntry, PurchaseOrderEntry, ReturnEntry,
};
use crate::alerts::{Alert, AlertKind, PurchaseOrder, PurchaseOrderStatus};
use crate::event::Event;
use crate::limits;
use crate::model::Line;
use crate::orders::{Customer, Order, OrderStatus, Return, ReturnStatus};

pub fn apply(ctx: &Ctx, locked: &mut Locked, at: At, event: &Event) -> Result<(), String> {
    match event {
        Event::CustomerUpserted {
            customer_id,
            name,
            email,
            phone,
            address,
            notify_email,
            notify_sms,
        } => {
            let shard = locked.shard(ctx.router.of(customer_id));
            match shard.customers.get_mut(customer_id) {
                Some(entry) if entry.stamp >= at.stamp => {}
                Some(entry) => {
                    let c = &mut entry.customer;
                    c.name = name.clone();
                    c.email = email.clone();
                    c.phone = phone.clone();
                    c.address = address.clone();
                    c.notify_email = *notify_email;
                    c.notify_sms = *notify_sms;
                    entry.stamp = at.stamp;
                }
                None => {
                    let customer = Customer {
                        customer_id: customer_id.clone(),
                        name: name.clone(),
                        email: email.clone(),
                        phone: phone.clone(),
                        address: address.clone(),
                        notify_email: *notify_email,
                        notify_sms: *notify_sms,
                        lifetime_spend_cents: 0,
                        order_count: 0,
                        tier: String::new(),
                        created_at_ms: at.ms,
                    };
                    shard.customers.insert(
                        customer_id.clone(),
                        CustomerEntry {
                            customer,
                            stamp: at.stamp,
                        },
                    );
                }
            }
        }
        Event::OrderCreated {
            order_id,
            customer_id,
            ..
        } => {
            customer_change(ctx, locked, at, customer_id, 0, 1)?;
            let home = ctx.router.of(order_id);
            let shard = locked.shard(home);
            if let Some(existing) = shard.orders.get(order_id) {
                if existing.stamp >= at.stamp {
                    return Ok(());
                }
                if existing.order.status.is_open() {
                    return Err(format!("order {order_id} already exists and is open"));
                }
            }
            let order = Order::created(event, at.ms).expect("an OrderCreated event");
            shard.orders.insert(
                order_id.clone(),
                OrderEntry {
                    order,
                    returned: Vec::new(),
                    return_pending: Vec::new(),
                    failed_payment_id: String::new(),
                    closed_at_ms: None,
                    stamp: at.stamp,
                },
            );
            ctx.open_orders.fetch_add(1, Ordering::Relaxed);
        }
        Event::PaymentProcessed {
            order_id,
            payment_id,
            succeeded,
            ..
        } => {
            if let Some(entry) = order_entry(ctx, locked, at, order_id)? {
                if entry.order.status != OrderStatus::Pending {
                    return Err(wrong_state(order_id, entry.order.status, "paid or failed"));
                }
                if !succeeded {
                    entry.failed_payment_id = payment_id.clone();
                }
                entry.stamp = at.stamp;
            }
        }
        Event::OrderPaid {
            order_id,
            customer_id,
            amount_cents,
            ..
        } => {
            customer_change(ctx, locked, at, customer_id, *amount_cents, 0)?;
            transition(ctx, locked, at, event, order_id, &[OrderStatus::Pending])?;
        }
        Event::OrderShipped { order_id, .. } => {
            transition(ctx, locked, at, event, order_id, &[OrderStatus::Paid])?;
        }
        Event::OrderDelivered { order_id } => {
            transition(ctx, locked, at, event, order_id, &[OrderStatus::Shipped])?;
        }
        Event::OrderCancelled {
            order_id,
            customer_id,
            from,
            refund_due_cents,
            restocked,
            ..
        } => {
            if !matches!(from, OrderStatus::Pending | OrderStatus::Paid) {
                return Err(format!(
                    "order {order_id}: cannot be cancelled from {}",
                    from.name()
                ));
            }
            customer_change(ctx, locked, at, customer_id, -refund_due_cents, 0)?;
            restock(ctx, locked, at, restocked)?;
            transition(ctx, locked, at, event, order_id, &[*from])?;
        }
        Event::OrderReturned { order_id } => {
            transition(ctx, locked, at, event, order_id, &[OrderStatus::Delivered])?;
        }
        Event::ReturnRequested {
            return_id,
            order_id,
            lines,
            reason,
        } => {
            if let Some(entry) = order_entry(ctx, locked, at, order_id)? {
                if entry.order.status != OrderStatus::Delivered {
                    return Err(wrong_state(order_id, entry.order.status, "returned"));
                }
                for line in lines {
                    let open = returnable(entry, &line.sku);
                    if u64::from(line.quantity) > open {
                        return Err(format!(
                            "return {return_id}: {} of {} asked, {open} returnable",
                            line.quantity, line.sku
                        ));
                    }
                }
                add_lines(&mut entry.return_pending, lines, 1);
                entry.stamp = at.stamp;
            }
            let shard = locked.shard(ctx.router.of(return_id));
            if let Some(existing) = shard.returns.get(return_id) {
                if existing.stamp >= at.stamp {
                    return Ok(());
                }
                if existing.ret.status == ReturnStatus::Requested {
                    return Err(format!("return {return_id} already exists and is open"));
                }
            }
            let ret = Return {
                return_id: return_id.clone(),
                order_id: order_id.clone(),
                status: ReturnStatus::Requested,
                lines: lines.clone(),
                reason: reason.clone(),
                refund_cents: 0,
                restock: false,
                decision_reason: String::new(),
                requested_at_ms: at.ms,
                decided_at_ms: 0,
            };
            shard.returns.insert(
                return_id.clone(),
                ReturnEntry {
                    ret,
                    stamp: at.stamp,
                },
            );
        }
        Event::ReturnApproved {
            return_id,
            order_id,
            customer_id,
            lines,
            refund_cents,
            restocked,
        } => {
            customer_change(ctx, locked, at, customer_id, -refund_cents, 0)?;
            restock(ctx, locked, at, restocked)?;
            if let Some(entry) = order_entry(ctx, locked, at, order_id)? {
                let refundable = entry.order.totals.total_cents - entry.order.refunded_cents;
                if *refund_cents < 0 || *refund_cents > refundable {
                    return Err(format!(
                        "return {return_id}: refund {refund_cents} exceeds the refundable {refundable}"
                    ));
                }
                add_lines(&mut entry.return_pending, lines, -1);
                add_lines(&mut entry.returned, lines, 1);
                entry.order.fold(event, at.ms);
                entry.stamp = at.stamp;
            }
            decide_return(ctx, locked, at, return_id, |r| {
                r.status = ReturnStatus::Approved;
                r.refund_cents = *refund_cents;
                r.restock = !restocked.is_empty();
            })?;
        }
        Event::ReturnRejected {
            return_id,
            order_id,
            lines,
            reason,
        } => {
            if let Some(entry) = order_entry(ctx, locked, at, order_id)? {
                add_lines(&mut entry.return_pending, lines, -1);
                entry.stamp = at.stamp;
            }
            decide_return(ctx, locked, at, return_id, |r| {
                r.status = ReturnStatus::Rejected;
                r.decision_reason = reason.clone();
            })?;
        }
        Event::InventoryLevelLow {
            alert_id,
            sku,
            kind,
            available,
            reorder_level,
            suggested_quantity,
        } => {
            let entry = sku_entry(ctx, locked, sku)?;
            if entry.stamp < at.stamp {
                let state = entry.alerts.get_or_insert_with(Box::default);
                let slot = match kind {
                    AlertKind::LowStock => &mut state.low,
                    AlertKind::OutOfStock => &mut state.out,
                };
                if slot.is_some() {
                    return Err(format!("{sku}: a {} alert is already open", kind.name()));
                }
                *slot = Some(alert_id.clone());
                state.openings += 1;
                entry.stamp = at.stamp;
            }
            let shard = locked.shard(ctx.router.of(sku));
            if shard
                .alerts
                .get(alert_id)
                .is_none_or(|a| a.stamp < at.stamp)
            {
                let alert = Alert {
                    alert_id: alert_id.clone(),
                    sku: sku.clone(),
                    kind: *kind,
                    available: *available,
                    reorder_level: *reorder_level,
                    suggested_quantity: *suggested_quantity,
                    opened_at_ms: at.ms,
                    resolved_at_ms: None,
                };
                shard.alerts.insert(
                    alert_id.clone(),
                    AlertEntry {
                        alert,
                        stamp: at.stamp,
                    },
                );
            }
        }
        Event::InventoryRestored {
            alert_id,
            sku,
            kind,
            forgotten,
            ..
        } => {
            let entry = sku_entry(ctx, locked, sku)?;
            if entry.stamp < at.stamp {
                let state = entry
                    .alerts
                    .as_mut()
                    .ok_or_else(|| format!("{sku}: no alert to resolve"))?;
                let slot = match kind {
                    AlertKind::LowStock => &mut state.low,
                    AlertKind::OutOfStock => &mut state.out,
                };
                if slot.as_deref() != Some(alert_id.as_str()) {
                    return Err(format!("{sku}: alert {alert_id} is not open"));
                }
                *slot = None;
                state
                    .history
                    .push_back((HistoryKind::Alert, alert_id.clone()));
                state
                    .history
                    .drain(..forgotten.len().min(state.history.len()));
                entry.stamp = at.stamp;
            }
            let shard = locked.shard(ctx.router.of(sku));
            if let Some(alert) = shard.alerts.get_mut(alert_id)
                && alert.stamp < at.stamp
            {
                alert.alert.resolved_at_ms = Some(at.ms);
                alert.stamp = at.stamp;
            }
            forget(shard, forgotten);
        }
        Event::PurchaseOrderSuggested {
            purchase_order_id,
            sku,
            quantity,
            alert_id,
        } => {
            let entry = sku_entry(ctx, locked, sku)?;
            if entry.stamp < at.stamp {
                let state = entry.alerts.get_or_insert_with(Box::default);
                if state.open_purchase_order.is_some() {
                    return Err(format!("{sku}: a purchase order is already open"));
                }
                state.open_purchase_order = Some(purchase_order_id.clone());
                entry.stamp = at.stamp;
            }
            let shard = locked.shard(ctx.router.of(sku));
            if shard
                .purchase_orders
                .get(purchase_order_id)
                .is_none_or(|p| p.stamp < at.stamp)
            {
                let purchase_order = PurchaseOrder {
                    purchase_order_id: purchase_order_id.clone(),
                    sku: sku.clone(),
                    quantity: *quantity,
                    status: PurchaseOrderStatus::Suggested,
                    alert_id: alert_id.clone(),
                    created_at_ms: at.ms,
                    updated_at_ms: at.ms,
                };
                shard.purchase_orders.insert(
                    purchase_order_id.clone(),
                    PurchaseOrderEntry {
                        purchase_order,
                        stamp: at.stamp,
                    },
                );
            }
        }
        Event::PurchaseOrderUpdated {
            purchase_order_id,
            sku,
            status,
            forgotten,
        } => {
            let shard = locked.shard(ctx.router.of(sku));
            let entry = shard
                .purchase_orders
                .get_mut(purchase_order_id)
                .ok_or_else(|| format!("unknown purchase order {purchase_order_id}"))?;
            if entry.stamp < at.stamp {
                let current = entry.purchase_order.status;
                if !current.may_become(*status) {
                    return Err(format!(
                        "purchase order {purchase_order_id}: {} cannot become {}",
                        current.name(),
                        status.name()
                    ));
                }
                entry.purchase_order.status = *status;
                entry.purchase_order.updated_at_ms = at.ms;
                entry.stamp = at.stamp;
            }
            if !status.is_open() {
                let entry = sku_entry(ctx, locked, sku)?;
                if entry.stamp < at.stamp {
                    if let Some(state) = entry.alerts.as_mut() {
                        if state.open_purchase_order.as_deref() == Some(purchase_order_id.as_str())
                        {
                            state.open_purchase_order = None;
                        }
                        state
                            .history
                            .push_back((HistoryKind::PurchaseOrder, purchase_order_id.clone()));
                        state
                            .history
                            .drain(..forgotten.len().min(state.history.len()));
                    }
                    entry.stamp = at.stamp;
                }
                forget(locked.shard(ctx.router.of(sku)), forgotten);
            }
        }
        other => return Err(format!("{} is not an order event", other.kind())),
    }
    Ok(())
}

/// Drops resolved alerts and closed purchase orders the record lets go of (idempotent, so it
/// does not depend on the SKU entity's stamp).
fn forget(shard: &mut super::shard::Shard, ids: &[String]) {
    for id in ids {
        shard.alerts.remove(id);
        shard.purchase_orders.remove(id);
    }
}

/// The order, if this event still has to change it (`None`: it already reflects the event).
fn order_entry<'s>(
    ctx: &Ctx,
    locked: &'s mut Locked,
    at: At,
    order_id: &str,
) -> Result<Option<&'s mut OrderEntry>, String> {
    let entry = locked
        .shard(ctx.router.of(order_id))
        .orders
        .get_mut(order_id)
        .ok_or_else(|| format!("unknown order {order_id}"))?;
    Ok((entry.stamp < at.stamp).then_some(entry))
}

fn wrong_state(order_id: &str, status: OrderStatus, wanted: &str) -> String {
    format!(
        "order {order_id} is {}; it cannot be {wanted}",
        status.name()
    )
}

/// A status change of an order (`Order::fold`), from one of `from`; keeps the open-order count
/// and the closed-order retention.
fn transition(
    ctx: &Ctx,
    locked: &mut Locked,
    at: At,
    event: &Event,
    order_id: &str,
    from: &[OrderStatus],
) -> Result<(), String> {
    let home = ctx.router.of(order_id);
    let Some(entry) = order_entry(ctx, locked, at, order_id)? else {
        return Ok(());
    };
    let before = entry.order.status;
    if !from.contains(&before) {
        return Err(wrong_state(order_id, before, event.kind()));
    }
    entry.order.fold(event, at.ms);
    entry.stamp = at.stamp;
    let after = entry.order.status;
    if before.is_open() && !after.is_open() {
        ctx.open_orders.fetch_sub(1, Ordering::Relaxed);
    }
    if !after.is_open() {
        entry.closed_at_ms = Some(at.ms);
        locked
            .shard(home)
            .note_order_closed(at.ms, order_id, ctx.order_retention);
    }
    Ok(())
}

/// Changes a customer's derived figures (spend in cents, orders created).
fn customer_change(
    ctx: &Ctx,
    locked: &mut Locked,
    at: At,
    customer_id: &str,
    spend_cents: i64,
    orders: u32,
) -> Result<(), String> {
    // Nothing to change (a timed-out or unpaid cancellation): the customer's shard need not
    // even be locked.
    if spend_cents == 0 && orders == 0 {
        return Ok(());
    }
    let entry = locked
        .shard(ctx.router.of(customer_id))
        .customers
        .get_mut(customer_id)
        .ok_or_else(|| format!("unknown customer {customer_id}"))?;
    if entry.stamp < at.stamp {
        entry.customer.lifetime_spend_cents += spend_cents;
        entry.customer.order_count += orders;
        entry.stamp = at.stamp;
    }
    Ok(())
}

/// Puts units back on hand.
fn restock(ctx: &Ctx, locked: &mut Locked, at: At, lines: &[Line]) -> Result<(), String> {
    for line in lines {
        let entry = sku_entry(ctx, locked, &line.sku)?;
        if entry.stamp >= at.stamp {
            continue;
        }
        let after = entry.on_hand + u64::from(line.quantity);
        if after > limits::ON_HAND_MAX {
            return Err(format!(
                "{}: restocking would exceed the on-hand maximum",
                line.sku
            ));
        }
        entry.on_hand = after;
        entry.ever_stocked = true;
        let may_alert = entry.changed(&line.sku, at.stamp);
        locked.may_alert |= may_alert;
    }
    Ok(())
}

/// Decides a REQUESTED return (approve or reject) and starts its id retention.
fn decide_return(
    ctx: &Ctx,
    locked: &mut Locked,
    at: At,
    return_id: &str,
    decide: impl FnOnce(&mut Return),
) -> Result<(), String> {
    let shard = locked.shard(ctx.router.of(return_id));
    let slot = shard
        .returns
        .slot_of(return_id)
        .ok_or_else(|| format!("unknown return {return_id}"))?;
    let entry = shard.returns.entity_mut(slot).expect("found above");
    if entry.stamp >= at.stamp {
        return Ok(());
    }
    if entry.ret.status != ReturnStatus::Requested {
        return Err(format!(
            "return {return_id} is {}; it cannot be decided again",
            entry.ret.status.name()
        ));
    }
    decide(&mut entry.ret);
    entry.ret.decided_at_ms = at.ms;
    entry.stamp = at.stamp;
    shard.note_ended(at.ms, IdKind::Return, slot, ctx.retention);
    Ok(())
}

/// Units of `sku` on the order that may still be asked back: delivered − returned − pending.
pub fn returnable(entry: &OrderEntry, sku: &str) -> u64 {
    let count = |lines: &[Line]| {
        lines
            .iter()
            .find(|l| l.sku == sku)
            .map_or(0, |l| u64::from(l.quantity))
    };
    let ordered = entry
        .order
        .lines
        .iter()
        .find(|l| l.sku == sku)
        .map_or(0, |l| u64::from(l.quantity));
    ordered.saturating_sub(count(&entry.returned) + count(&entry.return_pending))
}

/// Adds (`sign` 1) or removes (−1) `lines` to a per-SKU tally kept sorted, without zeros.
fn add_lines(tally: &mut Vec<Line>, lines: &[Line], sign: i64) {
    for line in lines {
        match tally.binary_search_by(|t| t.sku.as_str().cmp(&line.sku)) {
            Ok(i) => {
                let q = i64::from(tally[i].quantity) + sign * i64::from(line.quantity);
                if q <= 0 {
                    tally.remove(i);
                } else {
                    tally[i].quantity = q as u32;
                }
            }
            Err(i) if sign > 0 => tally.insert(i, line.clone()),
            Err(_) => {}
        }
    }
}
