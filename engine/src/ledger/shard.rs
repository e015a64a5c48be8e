//! One shard's state. A shard owns the SKUs, reservations and idempotency records whose keys
//! hash to it ([`Router`]); it is mutated only under its mutex, which is held for the in-memory
//! apply and the LSN draw — never across I/O.

use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::table::Table;
use crate::alerts::{Alert, PurchaseOrder};
use crate::model::{Line, Lines, Reservation, ReservationState, StockLevel, StockStatus};
use crate::orders::{Customer, Order, Return};

/// An entity's version: the position of the last event applied to it,
/// `(lsn << 16) | (event index + 1)`. One record may change an entity through several of its
/// events (a reserve and the low-stock alert it opens); replay after a fuzzy snapshot applies
/// an event to an entity only if the entity's stamp is below the event's, so an entity copied
/// after its record was applied skips all of that record and no other.
pub type Stamp = u64;

pub fn stamp(lsn: u64, index: usize) -> Stamp {
    assert!(index < crate::limits::EVENTS_PER_RECORD_MAX && lsn < (1 << 48));
    (lsn << 16) | (index as u64 + 1)
}

/// The LSN of a stamp.
pub fn stamp_lsn(stamp: Stamp) -> u64 {
    stamp >> 16
}

/// Maps a key (SKU or client id) to its shard: foldhash with a fixed seed (word at a time —
/// FNV-1a's byte loop cost more than the table lookup it routes); the same on every run of one
/// build (the foldhash version is pinned in the workspace). No shard number is stored:
/// snapshots and the WAL are routed again on load, so the function and the shard count may
/// change between versions. One thing does depend on routing: the id-retention *count* bound is
/// per shard, so after a change a replay may remember a slightly different set of ended ids
/// than the live engine did near that bound (the time bound does not depend on it).
#[derive(Debug, Clone, Copy)]
pub struct Router {
    shards: usize,
}

impl Router {
    pub fn new(shards: usize) -> Self {
        assert!(shards >= 1);
        Self { shards }
    }
    pub fn shards(&self) -> usize {
        self.shards
    }
    /// The shard of a key. A leading NUL (the engine's own id spaces: an order's hold) is
    /// ignored, so an order's hold lives with its order.
    pub fn of(&self, key: &str) -> usize {
        let key = key.strip_prefix('\0').unwrap_or(key);
        let hash = ROUTING.hash_one(key.as_bytes());
        // The high half of hash × shards (Lemire's range reduction): no division.
        ((u128::from(hash) * self.shards as u128) >> 64) as usize
    }
}

const ROUTING: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x1a7e_5ca1_ab1e);

/// The published stock figures of one SKU, read lock-free by `GetStock`/`ListStock`.
/// `stock` packs `on_hand` (high 32 bits) and `reserved` (low 32 bits) so a reader always sees
/// a pair that existed together. Written only by the holder of the SKU's shard lock.
#[derive(Debug)]
pub struct SkuCell {
    stock: AtomicU64,
    reorder_level: AtomicU32,
}

impl SkuCell {
    pub fn new() -> Self {
        Self {
            stock: AtomicU64::new(0),
            reorder_level: AtomicU32::new(0),
        }
    }
    pub fn publish(&self, on_hand: u64, reserved: u64, reorder_level: u32) {
        debug_assert!(reserved <= on_hand && on_hand <= u64::from(u32::MAX));
        self.stock
            .store((on_hand << 32) | reserved, Ordering::Release);
        self.reorder_level.store(reorder_level, Ordering::Release);
    }
    pub fn level(&self, sku: &str) -> StockLevel {
        let word = self.stock.load(Ordering::Acquire);
        let (on_hand, reserved) = (word >> 32, word & 0xffff_ffff);
        stock_level(
            sku,
            on_hand,
            reserved,
            self.reorder_level.load(Ordering::Acquire),
        )
    }
}

impl Default for SkuCell {
    fn default() -> Self {
        Self::new()
    }
}

pub fn stock_level(sku: &str, on_hand: u64, reserved: u64, reorder_level: u32) -> StockLevel {
    let available = on_hand - reserved;
    StockLevel {
        sku: sku.to_string(),
        on_hand,
        reserved,
        available,
        reorder_level,
        status: StockStatus::of(available, reorder_level),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductInfo {
    pub name: String,
    pub unit_price_cents: i64,
    pub reorder_level: u32,
    pub reorder_quantity: u32,
}

#[derive(Debug, Clone)]
pub struct SkuEntry {
    pub product: ProductInfo,
    pub on_hand: u64,
    pub reserved: u64,
    pub cell: Arc<SkuCell>,
    /// Whether on_hand was ever above zero: a new product opens no alert before it had stock.
    pub ever_stocked: bool,
    /// Alert bookkeeping, allocated when the SKU's first alert opens.
    pub alerts: Option<Box<AlertState>>,
    /// The last change (for snapshots that skip what they already hold).
    pub stamp: Stamp,
}

/// A SKU's alerts: which are open, how many opened so far (their ids count from 1), and the
/// resolved alerts and closed purchase orders still kept (oldest first, bounded by
/// `limits::ALERT_HISTORY_PER_SKU_MAX`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlertState {
    pub openings: u32,
    pub low: Option<String>,
    pub out: Option<String>,
    pub open_purchase_order: Option<String>,
    pub history: VecDeque<(HistoryKind, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HistoryKind {
    Alert,
    PurchaseOrder,
}

impl SkuEntry {
    pub fn available(&self) -> u64 {
        self.on_hand - self.reserved
    }
    pub fn level(&self, sku: &str) -> StockLevel {
        stock_level(sku, self.on_hand, self.reserved, self.product.reorder_level)
    }
    /// Whether the SKU's state may call for an alert event — one to open, or open ones to
    /// resolve — so that [`super::alerting::derive`] looks closer. False in the common case:
    /// nothing open, and no level set, never stocked, or stock at or above the level.
    pub fn may_alert(&self) -> bool {
        let any_open = self
            .alerts
            .as_deref()
            .is_some_and(|s| s.low.is_some() || s.out.is_some());
        let level = self.product.reorder_level;
        any_open || (level != 0 && self.ever_stocked && u64::from(level) > self.available())
    }
    /// Ends a change made by the event at `stamp`: stamps the SKU, checks its invariants,
    /// publishes its figures to lock-free readers, and says whether alerts need a look
    /// ([`SkuEntry::may_alert`]).
    #[must_use]
    pub fn changed(&mut self, sku: &str, stamp: Stamp) -> bool {
        self.stamp = stamp;
        self.assert_invariants(sku);
        self.publish();
        self.may_alert()
    }
    pub fn publish(&self) {
        self.cell
            .publish(self.on_hand, self.reserved, self.product.reorder_level);
    }
    /// TIGER_STYLE: checked after every change.
    pub fn assert_invariants(&self, sku: &str) {
        assert!(
            self.reserved <= self.on_hand,
            "invariant broken for {sku}: reserved {} > on_hand {}",
            self.reserved,
            self.on_hand
        );
        assert!(self.on_hand <= crate::limits::ON_HAND_MAX);
    }
}

#[derive(Debug, Clone)]
pub struct ReservationEntry {
    pub lines: Lines,
    pub state: ReservationState,
    pub committed: Vec<Line>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub ttl_seconds: u32,
    /// When it stopped being active; idempotency retention counts from here.
    pub ended_at_ms: Option<u64>,
    /// LSN of the record that created it (with `expires_at_ms`, its key in the expiry index).
    pub created_lsn: u64,
    pub stamp: Stamp,
}

impl ReservationEntry {
    pub fn view(&self, id: &str) -> Reservation {
        self.view_with(id.to_string())
    }

    /// The view, given its id already owned.
    pub fn view_with(&self, id: String) -> Reservation {
        Reservation {
            reservation_id: id,
            state: self.state,
            lines: self.lines.clone(),
            committed_lines: self.committed.clone(),
            created_at_ms: self.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            ttl_seconds: self.ttl_seconds,
        }
    }
}

/// A stock receipt or adjustment remembered for idempotent retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockOpEntry {
    pub sku: String,
    /// Received quantity, or the new absolute on_hand of an adjustment.
    pub quantity: u64,
    pub reason: String,
    pub at_ms: u64,
    pub stamp: Stamp,
}

#[derive(Debug, Clone)]
pub struct CustomerEntry {
    /// `tier` is filled in when read (it depends on the configured thresholds).
    pub customer: Customer,
    pub stamp: Stamp,
}

#[derive(Debug, Clone)]
pub struct OrderEntry {
    pub order: Order,
    /// Units of approved returns, and of requested ones not decided yet (sorted by SKU).
    pub returned: Vec<Line>,
    pub return_pending: Vec<Line>,
    /// The payment id of a failed payment (FailPayment retries are idempotent by it).
    pub failed_payment_id: String,
    /// When it closed (CANCELLED, DELIVERED, RETURNED): retention counts from here.
    pub closed_at_ms: Option<u64>,
    pub stamp: Stamp,
}

#[derive(Debug, Clone)]
pub struct ReturnEntry {
    pub ret: Return,
    pub stamp: Stamp,
}

#[derive(Debug, Clone)]
pub struct AlertEntry {
    pub alert: Alert,
    pub stamp: Stamp,
}

#[derive(Debug, Clone)]
pub struct PurchaseOrderEntry {
    pub purchase_order: PurchaseOrder,
    pub stamp: Stamp,
}

/// Which id space an ended id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Reservation,
    Receipt,
    Adjustment,
    Return,
}

#[derive(Debug, Default)]
pub struct Shard {
    pub skus: Table<SkuEntry>,
    pub reservations: Table<ReservationEntry>,
    pub receipts: Table<StockOpEntry>,
    pub adjustments: Table<StockOpEntry>,
    pub customers: Table<CustomerEntry>,
    pub orders: Table<OrderEntry>,
    pub returns: Table<ReturnEntry>,
    /// Alerts and purchase orders live in their SKU's shard.
    pub alerts: Table<AlertEntry>,
    pub purchase_orders: Table<PurchaseOrderEntry>,
    /// Closed orders in the order they closed, for the order retention (time and count).
    pub closed_orders: VecDeque<(u64, String)>,
    /// Ended objects in the order they ended (end time, table, slot in that table), for
    /// retention by count and time. Slots, not ids: a slot is vacated only by this queue's
    /// `forget`, so an entry names its object until it is popped.
    pub ended: VecDeque<(u64, IdKind, usize)>,
    /// Active holds homed here, by (deadline, creating LSN), to their slot in `reservations`
    /// (an active hold is never removed from the table).
    expiry: BTreeMap<(u64, u64), usize>,
    /// The highest LSN applied to this shard: a reply that observed this shard waits for it.
    pub last_lsn: u64,
}

/// Idempotency retention: ids are remembered for `ms` after their object ends, and at most
/// `count_per_shard` ended ids per shard, whichever bound is reached first.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub ms: u64,
    pub count_per_shard: usize,
}

impl Retention {
    pub fn retained(&self, ended_at_ms: u64, now_ms: u64) -> bool {
        now_ms < ended_at_ms.saturating_add(self.ms)
    }
}

impl Shard {
    /// A reservation that is live, or ended within retention (else treated as unknown).
    pub fn reservation(
        &self,
        id: &str,
        now_ms: u64,
        retention: Retention,
    ) -> Option<&ReservationEntry> {
        self.reservations.get(id).filter(|r| {
            r.ended_at_ms
                .is_none_or(|ended| retention.retained(ended, now_ms))
        })
    }

    pub fn stock_op(
        &self,
        kind: IdKind,
        id: &str,
        now_ms: u64,
        retention: Retention,
    ) -> Option<&StockOpEntry> {
        let map = match kind {
            IdKind::Receipt => &self.receipts,
            IdKind::Adjustment => &self.adjustments,
            IdKind::Reservation | IdKind::Return => return None,
        };
        map.get(id).filter(|e| retention.retained(e.at_ms, now_ms))
    }

    /// Records that an object ended and forgets the oldest ended ids beyond the retention bounds.
    pub fn note_ended(&mut self, at_ms: u64, kind: IdKind, slot: usize, retention: Retention) {
        self.ended.push_back((at_ms, kind, slot));
        while let Some((ended_at, _, _)) = self.ended.front() {
            let over_count = self.ended.len() > retention.count_per_shard;
            if !over_count && retention.retained(*ended_at, at_ms) {
                break;
            }
            let (ended_at, kind, slot) = self.ended.pop_front().expect("front exists");
            self.forget(ended_at, kind, slot);
        }
    }

    /// Drops an ended id unless the id has since been reused by a newer object (which keeps
    /// the slot: a key is replaced in place).
    fn forget(&mut self, ended_at: u64, kind: IdKind, slot: usize) {
        fn drop_if<E>(table: &mut Table<E>, slot: usize, ended: impl Fn(&E) -> bool) {
            if table.entity(slot).is_some_and(ended) {
                table.remove_slot(slot);
            }
        }
        match kind {
            IdKind::Reservation => drop_if(&mut self.reservations, slot, |r| {
                r.ended_at_ms == Some(ended_at)
            }),
            IdKind::Receipt => drop_if(&mut self.receipts, slot, |e| e.at_ms == ended_at),
            IdKind::Adjustment => drop_if(&mut self.adjustments, slot, |e| e.at_ms == ended_at),
            IdKind::Return => drop_if(&mut self.returns, slot, |e| e.ret.decided_at_ms == ended_at),
        }
    }

    /// A return that is open, or decided within retention (else treated as unknown).
    pub fn return_entry(
        &self,
        id: &str,
        now_ms: u64,
        retention: Retention,
    ) -> Option<&ReturnEntry> {
        self.returns
            .get(id)
            .filter(|e| e.ret.decided_at_ms == 0 || retention.retained(e.ret.decided_at_ms, now_ms))
    }

    /// An order that is open, or closed within the order retention (else treated as unknown).
    pub fn order(&self, id: &str, now_ms: u64, retention: Retention) -> Option<&OrderEntry> {
        self.orders.get(id).filter(|e| {
            e.closed_at_ms
                .is_none_or(|closed| retention.retained(closed, now_ms))
        })
    }

    /// Records that an order closed and forgets the oldest closed orders beyond the order
    /// retention bounds.
    pub fn note_order_closed(&mut self, at_ms: u64, id: &str, retention: Retention) {
        self.closed_orders.push_back((at_ms, id.to_string()));
        while let Some((closed_at, _)) = self.closed_orders.front() {
            let over_count = self.closed_orders.len() > retention.count_per_shard;
            if !over_count && retention.retained(*closed_at, at_ms) {
                break;
            }
            let (closed_at, id) = self.closed_orders.pop_front().expect("front exists");
            // Unless it changed since (a DELIVERED order returned later closes again).
            if self
                .orders
                .get(&id)
                .is_some_and(|o| o.closed_at_ms == Some(closed_at))
            {
                self.orders.remove(&id);
            }
        }
    }

    /// The earliest deadline of the holds homed here, if any.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiry.first_key_value().map(|((at, _), _)| *at)
    }

    /// The active holds homed here, by (deadline, creating LSN), to their slots.
    pub fn expiry(&self) -> &BTreeMap<(u64, u64), usize> {
        &self.expiry
    }

    pub fn insert_expiry(&mut self, key: (u64, u64), slot: usize) {
        self.expiry.insert(key, slot);
    }

    pub fn remove_expiry(&mut self, key: &(u64, u64)) {
        self.expiry.remove(key);
    }
}
