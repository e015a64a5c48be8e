//! Applying events to shard state — the one code path shared by live ops and WAL replay, so
//! replay reproduces the live state exactly (rule 3). Every precondition is checked *before*
//! anything is mutated, and the invariants are asserted after.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_skiplist::SkipMap;
use parking_lot::MutexGuard;

use super::shard::{
    IdKind, ProductInfo, ReservationEntry, Retention, Router, Shard, SkuCell, SkuEntry,
    StockOpEntry,
};
use crate::event::Event;
use crate::limits;
use crate::model::{Line, ReservationState};

/// What applying needs besides the shards.
pub struct Ctx<'a> {
    pub router: Router,
    pub index: &'a SkipMap<String, Arc<SkuCell>>,
    pub live_holds: &'a AtomicU64,
    pub retention: Retention,
}

/// The shards one op holds, in ascending index order (the lock order that rules out deadlock).
pub struct Locked<'a> {
    pub guards: Vec<(usize, MutexGuard<'a, Shard>)>,
}

impl Locked<'_> {
    pub fn shard(&mut self, index: usize) -> &mut Shard {
        let at = self
            .guards
            .binary_search_by_key(&index, |(i, _)| *i)
            .unwrap_or_else(|_| panic!("shard {index} is not locked"));
        &mut self.guards[at].1
    }
    pub fn holds(&self, index: usize) -> bool {
        self.guards
            .binary_search_by_key(&index, |(i, _)| *i)
            .is_ok()
    }
    pub fn max_last_lsn(&self) -> u64 {
        self.guards
            .iter()
            .map(|(_, g)| g.last_lsn)
            .max()
            .unwrap_or(0)
    }
    pub fn set_last_lsn(&mut self, lsn: u64) {
        for (_, guard) in &mut self.guards {
            debug_assert!(guard.last_lsn < lsn);
            guard.last_lsn = lsn;
        }
    }
    /// The earliest hold deadline in any locked shard.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.guards
            .iter()
            .filter_map(|(_, g)| g.next_expiry_ms())
            .min()
    }
}

fn sku_entry<'s>(ctx: &Ctx, locked: &'s mut Locked, sku: &str) -> Result<&'s mut SkuEntry, String> {
    locked
        .shard(ctx.router.of(sku))
        .skus
        .get_mut(sku)
        .ok_or_else(|| format!("unknown SKU {sku}"))
}

/// Applies one event at `lsn`, recorded at `at_ms`.
pub fn apply(
    ctx: &Ctx,
    locked: &mut Locked,
    lsn: u64,
    at_ms: u64,
    event: &Event,
) -> Result<(), String> {
    match event {
        Event::ProductUpserted {
            sku,
            name,
            unit_price_cents,
            reorder_level,
            reorder_quantity,
        } => {
            let product = ProductInfo {
                name: name.clone(),
                unit_price_cents: *unit_price_cents,
                reorder_level: *reorder_level,
                reorder_quantity: *reorder_quantity,
            };
            let shard = locked.shard(ctx.router.of(sku));
            let entry = shard.skus.entry(sku.clone()).or_insert_with(|| {
                let cell = Arc::new(SkuCell::new());
                ctx.index.insert(sku.clone(), cell.clone());
                SkuEntry {
                    product: product.clone(),
                    on_hand: 0,
                    reserved: 0,
                    cell,
                    lsn,
                }
            });
            entry.product = product;
            entry.lsn = lsn;
            entry.publish();
        }
        Event::StockReceived {
            receipt_id,
            sku,
            quantity,
            on_hand_before,
            on_hand_after,
            reserved,
        } => {
            let entry = sku_entry(ctx, locked, sku)?;
            if entry.on_hand != *on_hand_before || entry.reserved != *reserved {
                return Err(format!(
                    "receipt {receipt_id}: {sku} has on_hand {} reserved {}, record says {on_hand_before}/{reserved}",
                    entry.on_hand, entry.reserved
                ));
            }
            if *on_hand_after != on_hand_before + u64::from(*quantity)
                || *on_hand_after > limits::ON_HAND_MAX
            {
                return Err(format!(
                    "receipt {receipt_id}: bad on_hand_after {on_hand_after}"
                ));
            }
            entry.on_hand = *on_hand_after;
            entry.lsn = lsn;
            entry.assert_invariants(sku);
            entry.publish();
            let shard = locked.shard(ctx.router.of(receipt_id));
            let op = StockOpEntry {
                sku: sku.clone(),
                quantity: u64::from(*quantity),
                reason: String::new(),
                at_ms,
            };
            shard.receipts.insert(receipt_id.clone(), op);
            shard.note_ended(at_ms, IdKind::Receipt, receipt_id, ctx.retention);
        }
        Event::StockAdjusted {
            adjustment_id,
            sku,
            on_hand_before,
            on_hand_after,
            reserved,
            reason,
        } => {
            let entry = sku_entry(ctx, locked, sku)?;
            if entry.on_hand != *on_hand_before || entry.reserved != *reserved {
                return Err(format!(
                    "adjustment {adjustment_id}: {sku} has on_hand {} reserved {}, record says {on_hand_before}/{reserved}",
                    entry.on_hand, entry.reserved
                ));
            }
            if *on_hand_after < entry.reserved || *on_hand_after > limits::ON_HAND_MAX {
                return Err(format!(
                    "adjustment {adjustment_id}: on_hand {on_hand_after} below reserved"
                ));
            }
            entry.on_hand = *on_hand_after;
            entry.lsn = lsn;
            entry.assert_invariants(sku);
            entry.publish();
            let shard = locked.shard(ctx.router.of(adjustment_id));
            let op = StockOpEntry {
                sku: sku.clone(),
                quantity: *on_hand_after,
                reason: reason.clone(),
                at_ms,
            };
            shard.adjustments.insert(adjustment_id.clone(), op);
            shard.note_ended(at_ms, IdKind::Adjustment, adjustment_id, ctx.retention);
        }
        Event::InventoryReserved {
            reservation_id,
            lines,
            ttl_seconds,
            created_at_ms,
            expires_at_ms,
        } => {
            let home = ctx.router.of(reservation_id);
            if let Some(existing) = locked.shard(home).reservations.get(reservation_id)
                && existing.state == ReservationState::Active
            {
                return Err(format!("reservation {reservation_id} is already active"));
            }
            if lines.is_empty() || expires_at_ms <= created_at_ms {
                return Err(format!(
                    "reservation {reservation_id}: empty or already expired"
                ));
            }
            for line in lines {
                let entry = sku_entry(ctx, locked, &line.sku)?;
                if entry.available() < u64::from(line.quantity) {
                    return Err(format!(
                        "reservation {reservation_id}: {} has {} available, needs {}",
                        line.sku,
                        entry.available(),
                        line.quantity
                    ));
                }
            }
            for line in lines {
                let entry = sku_entry(ctx, locked, &line.sku)?;
                entry.reserved += u64::from(line.quantity);
                entry.lsn = lsn;
                entry.assert_invariants(&line.sku);
                entry.publish();
            }
            for shard in hold_shards(ctx, reservation_id, lines) {
                locked
                    .shard(shard)
                    .expiry
                    .insert((*expires_at_ms, reservation_id.clone()));
            }
            locked.shard(home).reservations.insert(
                reservation_id.clone(),
                ReservationEntry {
                    lines: lines.clone(),
                    state: ReservationState::Active,
                    committed: Vec::new(),
                    created_at_ms: *created_at_ms,
                    expires_at_ms: *expires_at_ms,
                    ttl_seconds: *ttl_seconds,
                    ended_at_ms: None,
                    lsn,
                },
            );
            ctx.live_holds.fetch_add(1, Ordering::Relaxed);
        }
        Event::ReservationCommitted {
            reservation_id,
            committed,
            released,
        } => {
            let held = active_hold(ctx, locked, reservation_id, at_ms, false)?;
            let mut sum: Vec<Line> = committed.iter().chain(released).cloned().collect();
            sum.sort();
            if !same_quantities(&sum, &held.lines) {
                return Err(format!(
                    "commit of {reservation_id}: committed + released != held"
                ));
            }
            end_hold(
                ctx,
                locked,
                lsn,
                at_ms,
                reservation_id,
                &held,
                ReservationState::Committed,
                committed,
            )?;
        }
        Event::ReservationReleased {
            reservation_id,
            lines,
        } => {
            let held = active_hold(ctx, locked, reservation_id, at_ms, false)?;
            if &held.lines != lines {
                return Err(format!(
                    "release of {reservation_id}: lines differ from what is held"
                ));
            }
            end_hold(
                ctx,
                locked,
                lsn,
                at_ms,
                reservation_id,
                &held,
                ReservationState::Released,
                &[],
            )?;
        }
        Event::ReservationExpired {
            reservation_id,
            lines,
        } => {
            let held = active_hold(ctx, locked, reservation_id, at_ms, true)?;
            if &held.lines != lines {
                return Err(format!(
                    "expiry of {reservation_id}: lines differ from what is held"
                ));
            }
            end_hold(
                ctx,
                locked,
                lsn,
                at_ms,
                reservation_id,
                &held,
                ReservationState::Expired,
                &[],
            )?;
        }
    }
    Ok(())
}

/// The shards whose expiry index lists a hold: its home and every SKU's shard.
pub fn hold_shards(ctx: &Ctx, reservation_id: &str, lines: &[Line]) -> BTreeSet<usize> {
    std::iter::once(ctx.router.of(reservation_id))
        .chain(lines.iter().map(|l| ctx.router.of(&l.sku)))
        .collect()
}

/// Lines with the same SKUs and quantities, ignoring zero-quantity lines.
fn same_quantities(a: &[Line], b: &[Line]) -> bool {
    let mut merged: std::collections::BTreeMap<&str, u64> = Default::default();
    for line in a {
        *merged.entry(&line.sku).or_default() += u64::from(line.quantity);
    }
    let mut expected: std::collections::BTreeMap<&str, u64> = Default::default();
    for line in b {
        *expected.entry(&line.sku).or_default() += u64::from(line.quantity);
    }
    merged.retain(|_, q| *q > 0);
    expected.retain(|_, q| *q > 0);
    merged == expected
}

/// The active hold `id`; with `due`, it must be at or past its deadline, else before it.
fn active_hold(
    ctx: &Ctx,
    locked: &mut Locked,
    id: &str,
    at_ms: u64,
    due: bool,
) -> Result<ReservationEntry, String> {
    let entry = locked
        .shard(ctx.router.of(id))
        .reservations
        .get(id)
        .ok_or_else(|| format!("unknown reservation {id}"))?;
    if entry.state != ReservationState::Active {
        return Err(format!("reservation {id} is {}", entry.state.name()));
    }
    if due != (at_ms >= entry.expires_at_ms) {
        return Err(format!(
            "reservation {id}: at {at_ms} vs deadline {} (due expected: {due})",
            entry.expires_at_ms
        ));
    }
    Ok(entry.clone())
}

#[allow(clippy::too_many_arguments)]
fn end_hold(
    ctx: &Ctx,
    locked: &mut Locked,
    lsn: u64,
    at_ms: u64,
    id: &str,
    held: &ReservationEntry,
    state: ReservationState,
    committed: &[Line],
) -> Result<(), String> {
    for line in committed {
        let held_qty = held
            .lines
            .iter()
            .find(|l| l.sku == line.sku)
            .map(|l| l.quantity)
            .unwrap_or(0);
        if line.quantity > held_qty {
            return Err(format!("commit of {id}: {} more than held", line.sku));
        }
    }
    for line in &held.lines {
        let deducted = committed
            .iter()
            .find(|c| c.sku == line.sku)
            .map(|c| u64::from(c.quantity))
            .unwrap_or(0);
        let entry = sku_entry(ctx, locked, &line.sku)?;
        let quantity = u64::from(line.quantity);
        if entry.reserved < quantity || entry.on_hand < deducted {
            return Err(format!(
                "hold {id}: {} reserved {} < {quantity}",
                line.sku, entry.reserved
            ));
        }
        entry.reserved -= quantity;
        entry.on_hand -= deducted;
        entry.lsn = lsn;
        entry.assert_invariants(&line.sku);
        entry.publish();
    }
    for shard in hold_shards(ctx, id, &held.lines) {
        locked
            .shard(shard)
            .expiry
            .remove(&(held.expires_at_ms, id.to_string()));
    }
    let home = locked.shard(ctx.router.of(id));
    let entry = home.reservations.get_mut(id).expect("checked above");
    entry.state = state;
    entry.committed = committed.to_vec();
    entry.ended_at_ms = Some(at_ms);
    entry.lsn = lsn;
    home.note_ended(at_ms, IdKind::Reservation, id, ctx.retention);
    ctx.live_holds.fetch_sub(1, Ordering::Relaxed);
    Ok(())
}
