//! Cutting and restoring snapshots of the ledger (the file format lives in the `snapshotter`
//! crate). The cut is *fuzzy and per-entity* (DESIGN.md rule 8): it notes the last LSN `L0`,
//! then copies each shard's tables a chunk of slots at a time, holding that shard's lock for
//! one chunk only — writers pause for microseconds, never for the whole copy. Every entity
//! carries the LSN of its last change, and replay after a restore applies a record to an entity
//! only if the entity is older than the record (`ledger::apply`), so restoring the copy and
//! replaying the WAL from `L0 + 1` gives exactly the live state.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::alerts::{Alert, PurchaseOrder};
use crate::engine::Engine;
use crate::ledger::shard::{
    AlertEntry, AlertState, CustomerEntry, IdKind, OrderEntry, ProductInfo, PurchaseOrderEntry,
    ReservationEntry, ReturnEntry, SkuCell, SkuEntry, Stamp, StockOpEntry,
};
use crate::model::{Line, Lines, ReservationState};
use crate::orders::{Customer, Order, Return};

/// Slots copied per lock hold: small enough that a writer waits microseconds.
pub const CHUNK_SLOTS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuSnap {
    pub sku: String,
    pub name: String,
    pub unit_price_cents: i64,
    pub reorder_level: u32,
    pub reorder_quantity: u32,
    pub on_hand: u64,
    pub reserved: u64,
    pub ever_stocked: bool,
    pub alerts: Option<AlertState>,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationSnap {
    pub reservation_id: String,
    pub lines: Lines,
    pub state: ReservationState,
    pub committed: Vec<Line>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub ttl_seconds: u32,
    pub ended_at_ms: Option<u64>,
    pub created_lsn: u64,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockOpSnap {
    pub id: String,
    pub sku: String,
    pub quantity: u64,
    pub reason: String,
    pub at_ms: u64,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSnap {
    pub order: Order,
    pub returned: Vec<Line>,
    pub return_pending: Vec<Line>,
    pub failed_payment_id: String,
    pub closed_at_ms: Option<u64>,
    pub stamp: Stamp,
}

/// A customer, return, alert or purchase order with its stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub value: T,
    pub stamp: Stamp,
}

/// The complete ledger as of a fuzzy cut: replay the WAL from `lsn_start + 1` on top.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnapshotData {
    /// Every record at or below this LSN is reflected; replay starts after it.
    pub lsn_start: u64,
    /// No entity reflects a record above this LSN (the WAL holds at least up to it).
    pub lsn_end: u64,
    pub taken_at_ms: u64,
    pub skus: Vec<SkuSnap>,
    pub reservations: Vec<ReservationSnap>,
    pub receipts: Vec<StockOpSnap>,
    pub adjustments: Vec<StockOpSnap>,
    pub customers: Vec<Stamped<Customer>>,
    pub orders: Vec<OrderSnap>,
    pub returns: Vec<Stamped<Return>>,
    pub alerts: Vec<Stamped<Alert>>,
    pub purchase_orders: Vec<Stamped<PurchaseOrder>>,
}

/// How a cut went: the longest time writers of one shard waited, and the whole copy's time.
#[derive(Debug, Clone, Copy, Default)]
pub struct CutStats {
    pub pause_max: Duration,
    pub copy_total: Duration,
}

impl Engine {
    /// Cuts a snapshot without stopping the world, then waits until every record it reflects
    /// is durable (a snapshot must never hold state the WAL could lose).
    pub fn cut_snapshot(&self) -> crate::Result<(SnapshotData, CutStats)> {
        let started = Instant::now();
        let mut data = SnapshotData {
            lsn_start: self.last_lsn.load(Ordering::Acquire),
            taken_at_ms: self.clock.now_ms(),
            ..SnapshotData::default()
        };
        // Size the output once (a glance at each shard's counts) so it never reallocates.
        let (mut skus, mut holds, mut ops) = (0, 0, 0);
        for shard in self.shards.iter() {
            let shard = shard.lock();
            skus += shard.skus.len();
            holds += shard.reservations.len();
            ops += shard.receipts.len() + shard.adjustments.len();
        }
        let slack = CHUNK_SLOTS * self.shards.len();
        data.skus.reserve(skus + slack);
        data.reservations.reserve(holds + slack);
        data.receipts.reserve(ops + slack);
        let mut pause_max = Duration::ZERO;
        for shard in self.shards.iter() {
            let mut slot = 0;
            loop {
                // Grow the output outside the lock: a reallocation of a million-entry vector
                // would otherwise stall writers for the copy.
                data.skus.reserve(CHUNK_SLOTS);
                data.reservations.reserve(CHUNK_SLOTS);
                data.receipts.reserve(CHUNK_SLOTS);
                data.adjustments.reserve(CHUNK_SLOTS);
                let guard = shard.lock();
                let held = Instant::now();
                let slots_max = guard
                    .skus
                    .slots()
                    .max(guard.reservations.slots())
                    .max(guard.receipts.slots())
                    .max(guard.adjustments.slots())
                    .max(guard.customers.slots())
                    .max(guard.orders.slots())
                    .max(guard.returns.slots())
                    .max(guard.alerts.slots())
                    .max(guard.purchase_orders.slots());
                let end = (slot + CHUNK_SLOTS).min(slots_max);
                for at in slot..end {
                    if let Some((sku, e)) = guard.skus.slot(at) {
                        data.skus.push(sku_snap(sku, e));
                    }
                    if let Some((id, r)) = guard.reservations.slot(at) {
                        data.reservations.push(reservation_snap(id, r));
                    }
                    if let Some((id, op)) = guard.receipts.slot(at) {
                        data.receipts.push(stock_op_snap(id, op));
                    }
                    if let Some((id, op)) = guard.adjustments.slot(at) {
                        data.adjustments.push(stock_op_snap(id, op));
                    }
                    if let Some((_, c)) = guard.customers.slot(at) {
                        data.customers.push(stamped(&c.customer, c.stamp));
                    }
                    if let Some((_, o)) = guard.orders.slot(at) {
                        data.orders.push(order_snap(o));
                    }
                    if let Some((_, r)) = guard.returns.slot(at) {
                        data.returns.push(stamped(&r.ret, r.stamp));
                    }
                    if let Some((_, a)) = guard.alerts.slot(at) {
                        data.alerts.push(stamped(&a.alert, a.stamp));
                    }
                    if let Some((_, p)) = guard.purchase_orders.slot(at) {
                        data.purchase_orders
                            .push(stamped(&p.purchase_order, p.stamp));
                    }
                }
                drop(guard);
                pause_max = pause_max.max(held.elapsed());
                slot = end;
                if slot >= slots_max {
                    break;
                }
            }
        }
        data.lsn_end = self.last_lsn.load(Ordering::Acquire);
        self.wait_durable(data.lsn_end)?;
        Ok((
            data,
            CutStats {
                pause_max,
                copy_total: started.elapsed(),
            },
        ))
    }

    /// Loads a snapshot into an empty engine and rebuilds the derived state (expiry indexes,
    /// live-hold count, retention queues, the lock-free read index). Entities are routed to
    /// their shards first, then each shard is filled by its own thread.
    pub(crate) fn restore(&self, data: SnapshotData) {
        let shards = self.shards.len();
        let mut loads: Vec<ShardLoad> = (0..shards).map(|_| ShardLoad::default()).collect();
        for s in data.skus {
            loads[self.router.of(&s.sku)].skus.push(s);
        }
        for r in data.reservations {
            loads[self.router.of(&r.reservation_id)]
                .reservations
                .push(r);
        }
        for op in data.receipts {
            loads[self.router.of(&op.id)].receipts.push(op);
        }
        for op in data.adjustments {
            loads[self.router.of(&op.id)].adjustments.push(op);
        }
        for c in data.customers {
            loads[self.router.of(&c.value.customer_id)]
                .customers
                .push(c);
        }
        for o in data.orders {
            loads[self.router.of(&o.order.order_id)].orders.push(o);
        }
        for r in data.returns {
            loads[self.router.of(&r.value.return_id)].returns.push(r);
        }
        for a in data.alerts {
            loads[self.router.of(&a.value.sku)].alerts.push(a);
        }
        for p in data.purchase_orders {
            loads[self.router.of(&p.value.sku)].purchase_orders.push(p);
        }
        // One thread per core, each filling a share of the shards.
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(shards);
        let mut groups: Vec<Vec<(usize, ShardLoad)>> = (0..threads).map(|_| Vec::new()).collect();
        for (index, load) in loads.into_iter().enumerate() {
            groups[index % threads].push((index, load));
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .into_iter()
                .map(|group| {
                    scope.spawn(move || {
                        for (index, load) in group {
                            self.restore_shard(index, load);
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.join().expect("restore thread");
            }
        });
        for shard in self.shards.iter() {
            shard.lock().last_lsn = data.lsn_start;
        }
        self.last_lsn.store(data.lsn_start, Ordering::Release);
    }

    fn restore_shard(&self, index: usize, load: ShardLoad) {
        let mut shard = self.shards[index].lock();
        shard.skus.reserve(load.skus.len());
        shard.reservations.reserve(load.reservations.len());
        shard.receipts.reserve(load.receipts.len());
        shard.adjustments.reserve(load.adjustments.len());
        for s in load.skus {
            let cell = Arc::new(SkuCell::new());
            let entry = SkuEntry {
                product: ProductInfo {
                    name: s.name,
                    unit_price_cents: s.unit_price_cents,
                    reorder_level: s.reorder_level,
                    reorder_quantity: s.reorder_quantity,
                },
                on_hand: s.on_hand,
                reserved: s.reserved,
                cell: cell.clone(),
                ever_stocked: s.ever_stocked,
                alerts: s.alerts.map(Box::new),
                stamp: s.stamp,
            };
            entry.assert_invariants(&s.sku);
            entry.publish();
            self.index.insert(s.sku.clone(), cell);
            shard.skus.insert(s.sku, entry);
        }
        let mut ended: Vec<(u64, IdKind, usize)> = Vec::new();
        // A fuzzy cut can hold an id twice (`Table::insert_newest`): every table keeps the
        // newer copy, and the indexes of holds (expiry, retention, live count) and of orders
        // (open count, closed queue) are built from what is kept — each object once.
        for r in load.reservations {
            let entry = ReservationEntry {
                lines: r.lines,
                state: r.state,
                committed: r.committed,
                created_at_ms: r.created_at_ms,
                expires_at_ms: r.expires_at_ms,
                ttl_seconds: r.ttl_seconds,
                ended_at_ms: r.ended_at_ms,
                created_lsn: r.created_lsn,
                stamp: r.stamp,
            };
            shard
                .reservations
                .insert_newest(r.reservation_id, entry, |e| e.stamp);
        }
        for slot in 0..shard.reservations.slots() {
            let Some(entry) = shard.reservations.entity(slot) else {
                continue;
            };
            let key = (entry.expires_at_ms, entry.created_lsn);
            match entry.ended_at_ms {
                Some(at) => ended.push((at, IdKind::Reservation, slot)),
                None => {
                    shard.insert_expiry(key, slot);
                    self.live_holds.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for (kind, ops) in [
            (IdKind::Receipt, load.receipts),
            (IdKind::Adjustment, load.adjustments),
        ] {
            for op in ops {
                let entry = StockOpEntry {
                    sku: op.sku,
                    quantity: op.quantity,
                    reason: op.reason,
                    at_ms: op.at_ms,
                    stamp: op.stamp,
                };
                let at_ms = entry.at_ms;
                let table = match kind {
                    IdKind::Receipt => &mut shard.receipts,
                    _ => &mut shard.adjustments,
                };
                let (slot, kept) = table.insert_newest(op.id, entry, |e| e.stamp);
                if kept {
                    ended.push((at_ms, kind, slot));
                }
            }
        }
        for c in load.customers {
            let entry = CustomerEntry {
                customer: c.value,
                stamp: c.stamp,
            };
            shard
                .customers
                .insert_newest(entry.customer.customer_id.clone(), entry, |e| e.stamp);
        }
        for o in load.orders {
            let id = o.order.order_id.clone();
            let entry = OrderEntry {
                order: o.order,
                returned: o.returned,
                return_pending: o.return_pending,
                failed_payment_id: o.failed_payment_id,
                closed_at_ms: o.closed_at_ms,
                stamp: o.stamp,
            };
            shard.orders.insert_newest(id, entry, |e| e.stamp);
        }
        let mut closed = Vec::new();
        for (id, entry) in shard.orders.iter() {
            match entry.closed_at_ms {
                Some(at) => closed.push((at, id.to_string())),
                None => {
                    self.open_orders.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        closed.sort();
        shard.closed_orders.extend(closed);
        for r in load.returns {
            let decided_at_ms = r.value.decided_at_ms;
            let (slot, kept) = shard.returns.insert_newest(
                r.value.return_id.clone(),
                ReturnEntry {
                    ret: r.value,
                    stamp: r.stamp,
                },
                |e| e.stamp,
            );
            if kept && decided_at_ms > 0 {
                ended.push((decided_at_ms, IdKind::Return, slot));
            }
        }
        for a in load.alerts {
            shard.alerts.insert_newest(
                a.value.alert_id.clone(),
                AlertEntry {
                    alert: a.value,
                    stamp: a.stamp,
                },
                |e| e.stamp,
            );
        }
        for p in load.purchase_orders {
            shard.purchase_orders.insert_newest(
                p.value.purchase_order_id.clone(),
                PurchaseOrderEntry {
                    purchase_order: p.value,
                    stamp: p.stamp,
                },
                |e| e.stamp,
            );
        }
        ended.sort_by_key(|(at, _, _)| *at);
        shard.ended.extend(ended);
    }
}

/// One shard's share of a snapshot, routed before the parallel fill.
#[derive(Default)]
struct ShardLoad {
    skus: Vec<SkuSnap>,
    reservations: Vec<ReservationSnap>,
    receipts: Vec<StockOpSnap>,
    adjustments: Vec<StockOpSnap>,
    customers: Vec<Stamped<Customer>>,
    orders: Vec<OrderSnap>,
    returns: Vec<Stamped<Return>>,
    alerts: Vec<Stamped<Alert>>,
    purchase_orders: Vec<Stamped<PurchaseOrder>>,
}

fn sku_snap(sku: &str, e: &SkuEntry) -> SkuSnap {
    SkuSnap {
        sku: sku.to_string(),
        name: e.product.name.clone(),
        unit_price_cents: e.product.unit_price_cents,
        reorder_level: e.product.reorder_level,
        reorder_quantity: e.product.reorder_quantity,
        on_hand: e.on_hand,
        reserved: e.reserved,
        ever_stocked: e.ever_stocked,
        alerts: e.alerts.as_deref().cloned(),
        stamp: e.stamp,
    }
}

fn reservation_snap(id: &str, r: &ReservationEntry) -> ReservationSnap {
    ReservationSnap {
        reservation_id: id.to_string(),
        lines: r.lines.clone(),
        state: r.state,
        committed: r.committed.clone(),
        created_at_ms: r.created_at_ms,
        expires_at_ms: r.expires_at_ms,
        ttl_seconds: r.ttl_seconds,
        ended_at_ms: r.ended_at_ms,
        created_lsn: r.created_lsn,
        stamp: r.stamp,
    }
}

fn stock_op_snap(id: &str, op: &StockOpEntry) -> StockOpSnap {
    StockOpSnap {
        id: id.to_string(),
        sku: op.sku.clone(),
        quantity: op.quantity,
        reason: op.reason.clone(),
        at_ms: op.at_ms,
        stamp: op.stamp,
    }
}

fn stamped<T: Clone>(value: &T, stamp: Stamp) -> Stamped<T> {
    Stamped {
        value: value.clone(),
        stamp,
    }
}

fn order_snap(o: &OrderEntry) -> OrderSnap {
    OrderSnap {
        order: o.order.clone(),
        returned: o.returned.clone(),
        return_pending: o.return_pending.clone(),
        failed_payment_id: o.failed_payment_id.clone(),
        closed_at_ms: o.closed_at_ms,
        stamp: o.stamp,
    }
}
