//! Deciding an op against the locked state: an idempotent reply, a refusal, or the events to
//! write. Nothing here mutates state — [`super::apply`] does, for live ops and replay alike.

use super::apply::{Ctx, Locked};
use super::shard::{IdKind, ProductInfo};
use crate::engine::EngineConfig;
use crate::error::{EngineError, Result, exists, not_found, precondition};
use crate::event::Event;
use crate::limits;
use crate::model::{Line, Op, OpOutput, Product, Reservation, ReservationState};

// A decision lives for one op on the stack; boxing the reply would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Decision {
    /// Nothing to write: an identical retry, or an upsert that changes nothing.
    Reply(OpOutput),
    Write(Vec<Event>),
}

pub fn decide(
    ctx: &Ctx,
    locked: &mut Locked,
    op: &Op,
    now_ms: u64,
    config: &EngineConfig,
) -> Result<Decision> {
    match op {
        Op::UpsertProduct {
            sku,
            name,
            unit_price_cents,
            reorder_level,
            reorder_quantity,
        } => {
            let wanted = ProductInfo {
                name: name.clone(),
                unit_price_cents: *unit_price_cents,
                reorder_level: *reorder_level,
                reorder_quantity: *reorder_quantity,
            };
            if let Some(entry) = locked.shard(ctx.router.of(sku)).skus.get(sku)
                && entry.product == wanted
            {
                return Ok(Decision::Reply(output(ctx, locked, op, now_ms, config)?));
            }
            Ok(Decision::Write(vec![Event::ProductUpserted {
                sku: sku.clone(),
                name: name.clone(),
                unit_price_cents: *unit_price_cents,
                reorder_level: *reorder_level,
                reorder_quantity: *reorder_quantity,
            }]))
        }
        Op::Receive {
            receipt_id,
            sku,
            quantity,
        } => {
            let home = ctx.router.of(receipt_id);
            if let Some(prior) =
                locked
                    .shard(home)
                    .stock_op(IdKind::Receipt, receipt_id, now_ms, ctx.retention)
            {
                if prior.sku == *sku && prior.quantity == u64::from(*quantity) {
                    return Ok(Decision::Reply(output(ctx, locked, op, now_ms, config)?));
                }
                return Err(exists(format!(
                    "receipt_id {receipt_id} was already used for {} units of {}",
                    prior.quantity, prior.sku
                )));
            }
            let entry = sku_entry(ctx, locked, sku)?;
            let after = entry.on_hand + u64::from(*quantity);
            if after > limits::ON_HAND_MAX {
                return Err(precondition(format!(
                    "receiving {quantity} of {sku} would take on_hand to {after}, above the maximum {}",
                    limits::ON_HAND_MAX
                )));
            }
            Ok(Decision::Write(vec![Event::StockReceived {
                receipt_id: receipt_id.clone(),
                sku: sku.clone(),
                quantity: *quantity,
                on_hand_before: entry.on_hand,
                on_hand_after: after,
                reserved: entry.reserved,
            }]))
        }
        Op::Adjust {
            adjustment_id,
            sku,
            on_hand,
            reason,
        } => {
            let home = ctx.router.of(adjustment_id);
            if let Some(prior) = locked.shard(home).stock_op(
                IdKind::Adjustment,
                adjustment_id,
                now_ms,
                ctx.retention,
            ) {
                if prior.sku == *sku
                    && prior.quantity == u64::from(*on_hand)
                    && prior.reason == *reason
                {
                    return Ok(Decision::Reply(output(ctx, locked, op, now_ms, config)?));
                }
                return Err(exists(format!(
                    "adjustment_id {adjustment_id} was already used to set {} to {}",
                    prior.sku, prior.quantity
                )));
            }
            let entry = sku_entry(ctx, locked, sku)?;
            if u64::from(*on_hand) < entry.reserved {
                return Err(precondition(format!(
                    "on_hand {on_hand} for {sku} is below what is reserved ({})",
                    entry.reserved
                )));
            }
            Ok(Decision::Write(vec![Event::StockAdjusted {
                adjustment_id: adjustment_id.clone(),
                sku: sku.clone(),
                on_hand_before: entry.on_hand,
                on_hand_after: u64::from(*on_hand),
                reserved: entry.reserved,
                reason: reason.clone(),
            }]))
        }
        Op::Reserve {
            reservation_id,
            lines,
            ttl_seconds,
        } => {
            let home = ctx.router.of(reservation_id);
            if let Some(prior) =
                locked
                    .shard(home)
                    .reservation(reservation_id, now_ms, ctx.retention)
            {
                if prior.lines == *lines && prior.ttl_seconds == *ttl_seconds {
                    return Ok(Decision::Reply(output(ctx, locked, op, now_ms, config)?));
                }
                return Err(exists(format!(
                    "reservation_id {reservation_id} was already used with different lines or ttl"
                )));
            }
            check_reservable(ctx, locked, lines, config.live_holds_max)?;
            Ok(Decision::Write(vec![Event::InventoryReserved {
                reservation_id: reservation_id.clone(),
                lines: lines.clone(),
                ttl_seconds: *ttl_seconds,
                created_at_ms: now_ms,
                expires_at_ms: now_ms + u64::from(*ttl_seconds) * 1000,
            }]))
        }
        Op::Commit {
            reservation_id,
            lines,
        } => {
            let held = hold(ctx, locked, reservation_id, now_ms)?;
            let wanted: &[Line] = if lines.is_empty() { &held.lines } else { lines };
            match held.state {
                ReservationState::Committed => {
                    if normal(&held.committed) == normal(wanted) {
                        return Ok(Decision::Reply(output(ctx, locked, op, now_ms, config)?));
                    }
                    return Err(exists(format!(
                        "reservation {reservation_id} was already committed with different lines"
                    )));
                }
                ReservationState::Released | ReservationState::Expired => {
                    return Err(refused(
                        reservation_id,
                        held.state,
                        "COMMITTED",
                        held.expires_at_ms,
                    ));
                }
                ReservationState::Active => {}
            }
            let mut committed = Vec::new();
            let mut released = Vec::new();
            for line in wanted {
                if !held.lines.iter().any(|h| h.sku == line.sku) {
                    return Err(precondition(format!(
                        "{} is not held by reservation {reservation_id}",
                        line.sku
                    )));
                }
            }
            for held_line in held.lines.iter() {
                let take = wanted
                    .iter()
                    .find(|l| l.sku == held_line.sku)
                    .map(|l| l.quantity)
                    .unwrap_or(0);
                if take > held_line.quantity {
                    return Err(precondition(format!(
                        "cannot commit {take} of {}: reservation {reservation_id} holds {}",
                        held_line.sku, held_line.quantity
                    )));
                }
                if take > 0 {
                    committed.push(Line::new(held_line.sku.clone(), take));
                }
                if held_line.quantity > take {
                    released.push(Line::new(held_line.sku.clone(), held_line.quantity - take));
                }
            }
            Ok(Decision::Write(vec![Event::ReservationCommitted {
                reservation_id: reservation_id.clone(),
                committed,
                released,
            }]))
        }
        Op::Release { reservation_id } => {
            let held = hold(ctx, locked, reservation_id, now_ms)?;
            match held.state {
                ReservationState::Released | ReservationState::Expired => {
                    Ok(Decision::Reply(output(ctx, locked, op, now_ms, config)?))
                }
                ReservationState::Committed => {
                    Err(refused(reservation_id, held.state, "RELEASED", 0))
                }
                ReservationState::Active => Ok(Decision::Write(vec![Event::ReservationReleased {
                    reservation_id: reservation_id.clone(),
                    lines: held.lines,
                }])),
            }
        }
        _ => super::decide_orders::decide(ctx, locked, op, now_ms, config),
    }
}

/// Whether every line can be held now (all or none) and a hold slot is free.
pub fn check_reservable(
    ctx: &Ctx,
    locked: &mut Locked,
    lines: &[Line],
    live_holds_max: u64,
) -> Result<()> {
    for line in lines {
        let entry = sku_entry(ctx, locked, &line.sku)?;
        if entry.available() < u64::from(line.quantity) {
            return Err(precondition(format!(
                "insufficient stock for {}: requested {}, available {}",
                line.sku,
                line.quantity,
                entry.available()
            )));
        }
    }
    let live = ctx.live_holds.load(std::sync::atomic::Ordering::Relaxed);
    if live >= live_holds_max {
        return Err(EngineError::ResourceExhausted(format!(
            "live holds at capacity ({live_holds_max}); retry later"
        )));
    }
    Ok(())
}

/// Lines without zero quantities, sorted (what a commit deducted, compared as a set).
fn normal(lines: &[Line]) -> Vec<Line> {
    let mut out: Vec<Line> = lines.iter().filter(|l| l.quantity > 0).cloned().collect();
    out.sort();
    out
}

fn refused(id: &str, state: ReservationState, wanted: &str, expires_at_ms: u64) -> EngineError {
    if state == ReservationState::Expired {
        return precondition(format!(
            "reservation {id} expired at {expires_at_ms} ms; it can no longer be {wanted}"
        ));
    }
    precondition(format!(
        "reservation {id} is {}; it cannot become {wanted}",
        state.name()
    ))
}

fn hold(
    ctx: &Ctx,
    locked: &mut Locked,
    id: &str,
    now_ms: u64,
) -> Result<super::shard::ReservationEntry> {
    let shard = locked.shard(ctx.router.of(id));
    let Some(entry) = shard.reservation(id, now_ms, ctx.retention).cloned() else {
        // An order's hold is in the orders' id space (its order shares the shard).
        if shard.orders.contains(id) {
            return Err(precondition(format!(
                "{id} is an order: its hold is changed through the Orders service \
                 (ConfirmPayment, CancelOrder), not through Commit or Release"
            )));
        }
        return Err(not_found(format!("reservation {id} not found")));
    };
    // Ops expire due holds before deciding, so an active hold here is before its deadline.
    debug_assert!(entry.state != ReservationState::Active || now_ms < entry.expires_at_ms);
    Ok(entry)
}

fn sku_entry<'s>(
    ctx: &Ctx,
    locked: &'s mut Locked,
    sku: &str,
) -> Result<&'s super::shard::SkuEntry> {
    locked
        .shard(ctx.router.of(sku))
        .skus
        .get(sku)
        .ok_or_else(|| not_found(format!("unknown SKU {sku}")))
}

/// The reply to an op that was just written: [`output`], but the op's own strings move into
/// the reply instead of being copied out of the state again.
pub fn output_written(
    ctx: &Ctx,
    locked: &mut Locked,
    op: Op,
    now_ms: u64,
    config: &EngineConfig,
) -> Result<OpOutput> {
    match op {
        Op::Reserve {
            reservation_id,
            lines,
            ttl_seconds,
        } => {
            // The hold just written is the op's: no need to look it up again.
            let reservation = Reservation {
                reservation_id,
                state: ReservationState::Active,
                lines,
                committed_lines: Vec::new(),
                created_at_ms: now_ms,
                expires_at_ms: now_ms + u64::from(ttl_seconds) * 1000,
                ttl_seconds,
            };
            debug_assert_eq!(
                reservation_entry(ctx, locked, &reservation.reservation_id)
                    .map(|e| e.view(&reservation.reservation_id))
                    .as_ref(),
                Ok(&reservation)
            );
            Ok(OpOutput::Reservation(reservation))
        }
        Op::Commit { reservation_id, .. } | Op::Release { reservation_id } => {
            let entry = reservation_entry(ctx, locked, &reservation_id)?;
            Ok(OpOutput::Reservation(entry.view_with(reservation_id)))
        }
        op => output(ctx, locked, &op, now_ms, config),
    }
}

/// Whether the op's reply ([`output_written`]) reads nothing but its hold in the hold's home
/// shard: then the op may let go of its other shards before the hold's home-shard bookkeeping
/// (`Locked::defer_home`, `apply::HomeTail`). Any other op's reply may look at more shards.
pub fn reply_reads_only_home(op: &Op) -> bool {
    matches!(
        op,
        Op::Reserve { .. } | Op::Release { .. } | Op::Commit { .. }
    )
}

fn reservation_entry<'s>(
    ctx: &Ctx,
    locked: &'s mut Locked,
    id: &str,
) -> Result<&'s super::shard::ReservationEntry> {
    locked
        .shard(ctx.router.of(id))
        .reservations
        .get(id)
        .ok_or_else(|| not_found(format!("reservation {id} not found")))
}

/// The reply to an op, from the (possibly just changed) state.
pub fn output(
    ctx: &Ctx,
    locked: &mut Locked,
    op: &Op,
    now_ms: u64,
    config: &EngineConfig,
) -> Result<OpOutput> {
    Ok(match op {
        Op::UpsertProduct { sku, .. } => {
            let entry = sku_entry(ctx, locked, sku)?;
            OpOutput::Product(Product {
                sku: sku.clone(),
                name: entry.product.name.clone(),
                unit_price_cents: entry.product.unit_price_cents,
                reorder_level: entry.product.reorder_level,
                reorder_quantity: entry.product.reorder_quantity,
                stock: entry.level(sku),
            })
        }
        Op::Receive { sku, .. } | Op::Adjust { sku, .. } => {
            OpOutput::Stock(sku_entry(ctx, locked, sku)?.level(sku))
        }
        Op::Reserve { reservation_id, .. }
        | Op::Commit { reservation_id, .. }
        | Op::Release { reservation_id } => OpOutput::Reservation(
            reservation_entry(ctx, locked, reservation_id)?.view(reservation_id),
        ),
        _ => return super::decide_orders::output(ctx, locked, op, now_ms, config),
    })
}
