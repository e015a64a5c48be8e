//! Applying events to shard state — the one code path shared by live ops and WAL replay, so
//! replay reproduces the live state exactly (rule 3).
//!
//! Each event is applied entity by entity (a SKU, a reservation, a receipt, an order, ...), and
//! an entity is changed only if its own [`Stamp`] is below the event's: in live operation that
//! is always so; after loading a fuzzy snapshot, an entity that was copied after this record had
//! been applied already reflects it and is skipped. Every entity's precondition is checked
//! against that entity's own state right before it changes, and invariants are asserted after.
//! Stock events are here; order, customer, return, alert and purchase-order events are in
//! [`super::apply_orders`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_skiplist::SkipMap;
use smallvec::SmallVec;

use super::shard::{
    IdKind, ProductInfo, ReservationEntry, Retention, Router, Shard, SkuCell, SkuEntry, Stamp,
    StockOpEntry,
};
use super::shard_lock::ShardGuard;
use crate::event::Event;
use crate::limits;
use crate::model::{Line, ReservationState};

/// What applying needs besides the shards.
pub struct Ctx<'a> {
    pub router: Router,
    pub index: &'a SkipMap<String, Arc<SkuCell>>,
    pub live_holds: &'a AtomicU64,
    pub open_orders: &'a AtomicU64,
    pub retention: Retention,
    pub order_retention: Retention,
}

/// Where an event sits: its record's LSN and time, and its own stamp.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub lsn: u64,
    pub ms: u64,
    pub stamp: Stamp,
    /// The event's index in its record.
    pub index: usize,
}

impl At {
    pub fn new(lsn: u64, index: usize, ms: u64) -> Self {
        Self {
            lsn,
            ms,
            stamp: super::shard::stamp(lsn, index),
            index,
        }
    }
}

/// The shards one op holds, in ascending index order (the lock order that rules out deadlock).
pub struct Locked<'a> {
    /// Ascending by shard. Inline for the common case (an op touches a handful of shards):
    /// locking allocates nothing.
    pub guards: SmallVec<[(usize, ShardGuard<'a, Shard>); 4]>,
    /// Whether a hold's start or end may leave its home-shard part ([`HomeTail`]) for
    /// [`Locked::finish_home`], to be applied after the op has let go of its other shards.
    /// Set by the live path for ops whose reply reads only the hold's home shard
    /// (`decide::reply_reads_only_home`); off in replay.
    pub defer_home: bool,
    tail: Option<(HomeTail, At)>,
    /// Whether a SKU this op changed may call for an alert event ([`SkuEntry::may_alert`],
    /// asked right after the change). If none may, `alerting::derive` — which runs with the
    /// SKU shards held — looks nothing up.
    pub may_alert: bool,
}

/// The part of a hold's start or end that touches only its home shard: its slot in the
/// reservations table (an insert, or its end state), its deadline in the home expiry index,
/// and id retention.
///
/// Why it may come last: a flash sale's SKU shard is held by every reserve and release of
/// that SKU in turn. The hold's own bookkeeping — an insert into a table of up to a million
/// retained ids (a cache miss or two), the expiry index, retention — needs only the home
/// shard; done while the SKU's shard was held, every other buyer of the SKU waited for it.
/// So the live path draws the LSN and changes the SKU shards under every lock of the op, lets
/// go of all but the home shard, then applies this.
/// The serial order is unchanged: the LSN is drawn while every shard of the op is held, and
/// nothing sees the home shard before the tail is in. Replay applies it in place.
#[derive(Debug, Clone, Copy)]
pub enum HomeTail {
    /// The event starts a hold (the entry is built from the event itself).
    Created {
        home: usize,
        /// The hold's slot if its id is still remembered from an ended hold (reused in place).
        existing: Option<usize>,
    },
    /// The event ends a hold (a commit's deducted lines are taken from the event).
    Ended {
        home: usize,
        slot: usize,
        /// Its key in the home expiry index.
        key: (u64, u64),
        state: ReservationState,
    },
}

impl HomeTail {
    fn home(self) -> usize {
        match self {
            HomeTail::Created { home, .. } | HomeTail::Ended { home, .. } => home,
        }
    }
}

impl<'a> Locked<'a> {
    pub fn new(guards: SmallVec<[(usize, ShardGuard<'a, Shard>); 4]>) -> Self {
        Self {
            guards,
            defer_home: false,
            tail: None,
            may_alert: false,
        }
    }

    /// If an event of `events` left its home tail, unlocks every shard but the hold's home
    /// and applies the tail. Called once the record's LSN is drawn and all its events,
    /// derived ones included, are applied.
    pub fn finish_home(&mut self, ctx: &Ctx, events: &[Event]) -> Result<(), String> {
        let Some((tail, at)) = self.tail.take() else {
            return Ok(());
        };
        let home = tail.home();
        let at_home = self
            .guards
            .iter()
            .position(|(i, _)| *i == home)
            .unwrap_or_else(|| panic!("the home shard {home} is not locked"));
        // One guard left: still in ascending order.
        self.guards.swap(0, at_home);
        self.guards.truncate(1);
        self.defer_home = false;
        home_tail(ctx, self, tail, at, &events[at.index])
    }
}

/// Applies `tail` of `event` now, or leaves it for [`Locked::finish_home`] if the op defers.
fn home_tail(
    ctx: &Ctx,
    locked: &mut Locked,
    tail: HomeTail,
    at: At,
    event: &Event,
) -> Result<(), String> {
    if locked.defer_home {
        assert!(locked.tail.is_none(), "one deferred hold per op");
        locked.tail = Some((tail, at));
        return Ok(());
    }
    match (tail, event) {
        (
            HomeTail::Created { home, existing },
            Event::InventoryReserved {
                reservation_id,
                lines,
                ttl_seconds,
                created_at_ms,
                expires_at_ms,
            },
        ) => {
            let entry = ReservationEntry {
                lines: lines.clone(),
                state: ReservationState::Active,
                committed: Vec::new(),
                created_at_ms: *created_at_ms,
                expires_at_ms: *expires_at_ms,
                ttl_seconds: *ttl_seconds,
                ended_at_ms: None,
                created_lsn: at.lsn,
                stamp: at.stamp,
            };
            let shard = locked.shard(home);
            // An ended hold whose id is reused after its retention keeps its slot.
            let slot = match existing {
                Some(slot) => {
                    *shard.reservations.entity_mut(slot).expect("found before") = entry;
                    slot
                }
                None => shard.reservations.insert_absent(reservation_id, entry),
            };
            shard.insert_expiry((*expires_at_ms, at.lsn), slot);
            // Here, not with the SKU shards held: both cores write this counter, and its
            // cache line's trips between them should not lengthen the SKU shard's turns. The
            // capacity check that reads it is approximate anyway (reserves in disjoint shards
            // read it concurrently).
            ctx.live_holds.fetch_add(1, Ordering::Relaxed);
        }
        (
            HomeTail::Ended {
                home,
                slot,
                key,
                state,
            },
            _,
        ) => {
            let committed = match event {
                Event::ReservationCommitted { committed, .. } => committed.clone(),
                _ => Vec::new(),
            };
            let shard = locked.shard(home);
            shard.remove_expiry(&key);
            let stored = shard.reservations.entity_mut(slot).expect("found before");
            stored.state = state;
            stored.committed = committed;
            stored.ended_at_ms = Some(at.ms);
            stored.stamp = at.stamp;
            shard.note_ended(at.ms, IdKind::Reservation, slot, ctx.retention);
            ctx.live_holds.fetch_sub(1, Ordering::Relaxed);
        }
        (tail, event) => return Err(format!("bug: tail {tail:?} of {event:?}")),
    }
    Ok(())
}

impl Locked<'_> {
    // A linear scan: an op holds a handful of shards.
    pub fn shard(&mut self, index: usize) -> &mut Shard {
        match self.guards.iter_mut().find(|(i, _)| *i == index) {
            Some((_, guard)) => guard,
            None => panic!("shard {index} is not locked"),
        }
    }
    pub fn holds(&self, index: usize) -> bool {
        self.guards.iter().any(|(i, _)| *i == index)
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
            guard.last_lsn = guard.last_lsn.max(lsn);
        }
    }
}

/// Applies one event of a record.
pub fn apply(ctx: &Ctx, locked: &mut Locked, at: At, event: &Event) -> Result<(), String> {
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
            match shard.skus.get_mut(sku) {
                Some(entry) if entry.stamp >= at.stamp => {}
                Some(entry) => {
                    entry.product = product;
                    // A new reorder level can open an alert, or resolve one.
                    let may_alert = entry.changed(sku, at.stamp);
                    locked.may_alert |= may_alert;
                }
                None => {
                    let cell = Arc::new(SkuCell::new());
                    ctx.index.insert(sku.clone(), cell.clone());
                    let entry = SkuEntry {
                        product,
                        on_hand: 0,
                        reserved: 0,
                        cell,
                        ever_stocked: false,
                        alerts: None,
                        stamp: at.stamp,
                    };
                    entry.publish();
                    shard.skus.insert(sku, entry);
                }
            }
        }
        Event::StockReceived {
            receipt_id,
            sku,
            quantity,
            on_hand_before,
            on_hand_after,
            reserved,
        } => {
            if *on_hand_after != on_hand_before + u64::from(*quantity) {
                return Err(format!(
                    "receipt {receipt_id}: bad on_hand_after {on_hand_after}"
                ));
            }
            let change = StockChange {
                kind: IdKind::Receipt,
                id: receipt_id,
                sku,
                before: *on_hand_before,
                after: *on_hand_after,
                reserved: *reserved,
                remembered: u64::from(*quantity),
                reason: "",
            };
            apply_stock_change(ctx, locked, at, &change)?;
        }
        Event::StockAdjusted {
            adjustment_id,
            sku,
            on_hand_before,
            on_hand_after,
            reserved,
            reason,
        } => {
            let change = StockChange {
                kind: IdKind::Adjustment,
                id: adjustment_id,
                sku,
                before: *on_hand_before,
                after: *on_hand_after,
                reserved: *reserved,
                remembered: *on_hand_after,
                reason,
            };
            apply_stock_change(ctx, locked, at, &change)?;
        }
        Event::InventoryReserved {
            reservation_id,
            lines,
            ttl_seconds: _,
            created_at_ms,
            expires_at_ms,
        } => {
            for line in lines.iter() {
                let entry = sku_entry(ctx, locked, &line.sku)?;
                if entry.stamp >= at.stamp {
                    continue;
                }
                if entry.available() < u64::from(line.quantity) {
                    return Err(format!(
                        "reservation {reservation_id}: {} has {} available, needs {}",
                        line.sku,
                        entry.available(),
                        line.quantity
                    ));
                }
                entry.reserved += u64::from(line.quantity);
                let may_alert = entry.changed(&line.sku, at.stamp);
                locked.may_alert |= may_alert;
            }
            let home = ctx.router.of(reservation_id);
            let existing = locked.shard(home).reservations.slot_of(reservation_id);
            match existing.and_then(|slot| locked.shard(home).reservations.entity(slot)) {
                Some(e) if e.stamp >= at.stamp => return Ok(()),
                Some(e) if e.state == ReservationState::Active => {
                    return Err(format!("reservation {reservation_id} is already active"));
                }
                _ => {}
            }
            if lines.is_empty() || expires_at_ms <= created_at_ms {
                return Err(format!(
                    "reservation {reservation_id}: no lines or already expired"
                ));
            }
            home_tail(ctx, locked, HomeTail::Created { home, existing }, at, event)?;
        }
        Event::ReservationCommitted {
            reservation_id,
            committed,
            released,
        } => {
            let held = merge(committed.iter().chain(released));
            end_hold(
                ctx,
                locked,
                at,
                reservation_id,
                &held,
                committed,
                ReservationState::Committed,
                event,
            )?;
        }
        Event::ReservationReleased {
            reservation_id,
            lines,
        } => {
            end_hold(
                ctx,
                locked,
                at,
                reservation_id,
                lines,
                &[],
                ReservationState::Released,
                event,
            )?;
        }
        Event::ReservationExpired {
            reservation_id,
            lines,
        } => {
            end_hold(
                ctx,
                locked,
                at,
                reservation_id,
                lines,
                &[],
                ReservationState::Expired,
                event,
            )?;
        }
        _ => super::apply_orders::apply(ctx, locked, at, event)?,
    }
    Ok(())
}

pub(super) fn sku_entry<'s>(
    ctx: &Ctx,
    locked: &'s mut Locked,
    sku: &str,
) -> Result<&'s mut SkuEntry, String> {
    locked
        .shard(ctx.router.of(sku))
        .skus
        .get_mut(sku)
        .ok_or_else(|| format!("unknown SKU {sku}"))
}

/// A receipt or an adjustment: `on_hand` goes from `before` to `after` (with `reserved` as
/// recorded), and the id is remembered with `remembered` (the quantity received, or the new
/// count) for idempotent retries.
struct StockChange<'e> {
    kind: IdKind,
    id: &'e str,
    sku: &'e str,
    before: u64,
    after: u64,
    reserved: u64,
    remembered: u64,
    reason: &'e str,
}

fn apply_stock_change(
    ctx: &Ctx,
    locked: &mut Locked,
    at: At,
    change: &StockChange,
) -> Result<(), String> {
    let sku = change.sku;
    let entry = sku_entry(ctx, locked, sku)?;
    if entry.stamp < at.stamp {
        if entry.on_hand != change.before || entry.reserved != change.reserved {
            return Err(format!(
                "{} {}: {sku} has on_hand {} reserved {}, the record says {}/{}",
                if change.kind == IdKind::Receipt {
                    "receipt"
                } else {
                    "adjustment"
                },
                change.id,
                entry.on_hand,
                entry.reserved,
                change.before,
                change.reserved
            ));
        }
        if change.after < entry.reserved || change.after > limits::ON_HAND_MAX {
            return Err(format!("{sku}: on_hand {} out of range", change.after));
        }
        entry.on_hand = change.after;
        entry.ever_stocked |= entry.on_hand > 0;
        let may_alert = entry.changed(sku, at.stamp);
        locked.may_alert |= may_alert;
    }
    let shard = locked.shard(ctx.router.of(change.id));
    let table = match change.kind {
        IdKind::Receipt => &mut shard.receipts,
        IdKind::Adjustment => &mut shard.adjustments,
        IdKind::Reservation | IdKind::Return => unreachable!("not a stock op"),
    };
    if table.get(change.id).is_some_and(|e| e.stamp >= at.stamp) {
        return Ok(());
    }
    let remembered = StockOpEntry {
        sku: sku.to_string(),
        quantity: change.remembered,
        reason: change.reason.to_string(),
        at_ms: at.ms,
        stamp: at.stamp,
    };
    let slot = table.insert(change.id, remembered);
    shard.note_ended(at.ms, change.kind, slot, ctx.retention);
    Ok(())
}

/// Lines summed per SKU, sorted, without zero quantities.
fn merge<'a>(lines: impl Iterator<Item = &'a Line>) -> Vec<Line> {
    let mut merged: BTreeMap<&str, u32> = BTreeMap::new();
    for line in lines {
        *merged.entry(&line.sku).or_default() += line.quantity;
    }
    merged
        .into_iter()
        .filter(|(_, q)| *q > 0)
        .map(|(sku, q)| Line::new(sku, q))
        .collect()
}

/// Ends an active hold: `held` (per SKU) leaves `reserved`, `committed` also leaves `on_hand`.
#[allow(clippy::too_many_arguments)]
fn end_hold(
    ctx: &Ctx,
    locked: &mut Locked,
    at: At,
    id: &str,
    held: &[Line],
    committed: &[Line],
    state: ReservationState,
    event: &Event,
) -> Result<(), String> {
    for line in held {
        let deducted = committed
            .iter()
            .find(|c| c.sku == line.sku)
            .map(|c| u64::from(c.quantity))
            .unwrap_or(0);
        let entry = sku_entry(ctx, locked, &line.sku)?;
        if entry.stamp >= at.stamp {
            continue;
        }
        let quantity = u64::from(line.quantity);
        if entry.reserved < quantity || entry.on_hand < deducted || deducted > quantity {
            return Err(format!(
                "hold {id}: {} has reserved {} on_hand {}, cannot release {quantity} and deduct {deducted}",
                line.sku, entry.reserved, entry.on_hand
            ));
        }
        entry.reserved -= quantity;
        entry.on_hand -= deducted;
        let may_alert = entry.changed(&line.sku, at.stamp);
        locked.may_alert |= may_alert;
    }
    let home = ctx.router.of(id);
    let slot = locked
        .shard(home)
        .reservations
        .slot_of(id)
        .ok_or_else(|| format!("unknown reservation {id}"))?;
    let key = {
        let entry = locked
            .shard(home)
            .reservations
            .entity(slot)
            .expect("found above");
        if entry.stamp >= at.stamp {
            return Ok(());
        }
        if entry.state != ReservationState::Active {
            return Err(format!("reservation {id} is {}", entry.state.name()));
        }
        let due = at.ms >= entry.expires_at_ms;
        if due != (state == ReservationState::Expired) {
            return Err(format!(
                "reservation {id}: {} at {} with deadline {}",
                state.name(),
                at.ms,
                entry.expires_at_ms
            ));
        }
        // Both are sorted by SKU, each SKU once, no zero quantities.
        if *entry.lines != *held {
            return Err(format!(
                "reservation {id}: the record's lines differ from what is held"
            ));
        }
        (entry.expires_at_ms, entry.created_lsn)
    };
    let tail = HomeTail::Ended {
        home,
        slot,
        key,
        state,
    };
    home_tail(ctx, locked, tail, at, event)
}
