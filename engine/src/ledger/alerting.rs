//! Deriving alert events from an op's effect on stock. After an op's own events are applied
//! (under the same locks, before the record is queued), every SKU they touched is looked at:
//!
//! - no alert open, the SKU had stock once, `0 < available < reorder_level` → LOW_STOCK opens;
//!   `available = 0` → OUT_OF_STOCK opens (straight away, if it fell from above the level);
//! - LOW_STOCK open and `available = 0` → OUT_OF_STOCK opens too;
//! - any open and `available ≥ reorder_level + margin` (the hysteresis of
//!   [`crate::alerts::AlertPolicy`]) → they resolve (`InventoryRestored`).
//!
//! An alert opening suggests one purchase order unless one is already open for the SKU. A
//! SKU with `reorder_level = 0` opens no alerts (the level is how a manager asks for them).
//! The derived events go into the op's own record, so replay never re-derives them — the WAL
//! says when each alert opened, under the policy then in force.

use std::collections::VecDeque;

use smallvec::SmallVec;

use super::apply::{Ctx, Locked};
use super::decide_orders::history_push;
use super::shard::{AlertState, HistoryKind};
use crate::alerts::{AlertKind, AlertPolicy, alert_id, purchase_order_id};
use crate::event::Event;
use crate::model::Line;

/// The SKUs whose stock figures or reorder level an event changes: at most one named SKU and
/// two slices of lines.
fn touched_by(event: &Event) -> (Option<&str>, &[Line], &[Line]) {
    match event {
        Event::ProductUpserted { sku, .. }
        | Event::StockReceived { sku, .. }
        | Event::StockAdjusted { sku, .. } => (Some(sku), &[], &[]),
        Event::InventoryReserved { lines, .. }
        | Event::ReservationReleased { lines, .. }
        | Event::ReservationExpired { lines, .. } => (None, lines, &[]),
        Event::OrderCancelled {
            restocked: lines, ..
        }
        | Event::ReturnApproved {
            restocked: lines, ..
        } => (None, lines, &[]),
        Event::ReservationCommitted {
            committed,
            released,
            ..
        } => (None, committed, released),
        _ => (None, &[], &[]),
    }
}

/// Every SKU the events touch, once each, in order of first touch (inline for the common
/// few: no allocation on the hot path).
fn touched_skus(events: &[Event]) -> SmallVec<[&str; 8]> {
    let mut skus: SmallVec<[&str; 8]> = SmallVec::new();
    for event in events {
        let (one, lines, more) = touched_by(event);
        for sku in one
            .into_iter()
            .chain(lines.iter().chain(more).map(|l| l.sku.as_str()))
        {
            if !skus.contains(&sku) {
                skus.push(sku);
            }
        }
    }
    skus
}

/// The alert events the current state of the SKUs that `applied` touched calls for (each SKU
/// looked at once).
pub fn derive(
    ctx: &Ctx,
    locked: &mut Locked,
    applied: &[Event],
    policy: &AlertPolicy,
) -> Vec<Event> {
    let mut events = Vec::new();
    // Most ops leave every SKU they change with nothing open and nothing to open (apply
    // noted it): nothing to look up, with the SKU shards still held.
    if !locked.may_alert {
        return events;
    }
    let none = AlertState::default();
    for sku in touched_skus(applied) {
        let Some(entry) = locked.shard(ctx.router.of(sku)).skus.get(sku) else {
            continue;
        };
        if !entry.may_alert() {
            continue;
        }
        let available = entry.available();
        let level = entry.product.reorder_level;
        let state = entry.alerts.as_deref().unwrap_or(&none);
        let open: Vec<(AlertKind, &String)> = [
            (AlertKind::LowStock, state.low.as_ref()),
            (AlertKind::OutOfStock, state.out.as_ref()),
        ]
        .into_iter()
        .filter_map(|(kind, id)| id.map(|id| (kind, id)))
        .collect();
        if !open.is_empty() && available >= policy.resolve_at(level) {
            let mut history: VecDeque<_> = state.history.clone();
            for (kind, id) in open {
                let forgotten = history_push(&mut history, HistoryKind::Alert, id);
                events.push(Event::InventoryRestored {
                    alert_id: id.clone(),
                    sku: sku.to_string(),
                    kind,
                    available,
                    forgotten,
                });
            }
            continue;
        }
        if level == 0 || !entry.ever_stocked || u64::from(level) <= available {
            continue;
        }
        let kind = match (&state.low, &state.out) {
            (None, None) if available == 0 => AlertKind::OutOfStock,
            (None, None) => AlertKind::LowStock,
            (Some(_), None) if available == 0 => AlertKind::OutOfStock,
            _ => continue,
        };
        let n = state.openings + 1;
        let id = alert_id(sku, n);
        let suggested = policy.suggested_quantity(level, entry.product.reorder_quantity, available);
        events.push(Event::InventoryLevelLow {
            alert_id: id.clone(),
            sku: sku.to_string(),
            kind,
            available,
            reorder_level: level,
            suggested_quantity: suggested,
        });
        if state.open_purchase_order.is_none() {
            events.push(Event::PurchaseOrderSuggested {
                purchase_order_id: purchase_order_id(sku, n),
                sku: sku.to_string(),
                quantity: suggested,
                alert_id: id,
            });
        }
    }
    events
}
