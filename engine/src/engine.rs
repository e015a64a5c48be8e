//! [`Engine`]: the sharded ledger tied to the WAL — op execution, durability waits, expiry,
//! reads, recovery.
//!
//! An op runs as: validate (no locks) → lock the shards it touches in ascending order → expire
//! every due hold first (if the engine-wide lower bound of all deadlines says one may be) →
//! decide → draw the next LSN, apply the events → (an op that starts or ends one hold: unlock
//! all but the hold's home shard, finish the hold there, [`apply::HomeTail`]) → queue the
//! record for the WAL → unlock → wake the WAL writer if it sleeps → wait until the record (or,
//! for a refusal or an idempotent reply, everything the op observed) is durable → reply. The
//! LSN is drawn while every shard the op touches is locked, so on every SKU the LSN order is
//! the apply order, and replaying the WAL in LSN order is a valid serial history (rule 3).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_skiplist::SkipMap;
use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};

use crate::alerts::{Alert, AlertPolicy, PurchaseOrder};
use crate::clock::Clock;
use crate::error::{EngineError, Result, not_found};
use crate::event::{Event, Record};
use crate::ledger::alerting;
use crate::ledger::apply::{self, At, Ctx, Locked};
use crate::ledger::decide::{self, Decision};
use crate::ledger::shard::{Retention, Router, Shard, SkuCell};
use crate::ledger::shard_lock::ShardMutex;
use crate::ledger::shard_set::ShardSet;
use crate::ledger::validate;
use crate::limits;
use crate::model::{Line, Op, OpOutput, Product, Reservation, StockLevel};
use crate::orders::{Customer, Order, OrderPolicy, OrderStatus, Return};
use crate::wal::fs::Fs;
use crate::wal::{RecoveryReport, SyncMode, Wal, WalConfig, WalCursor, WalError, WriterWake};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub shards: usize,
    pub wal: WalConfig,
    pub ttl_default_seconds: u32,
    pub id_retention_seconds: u64,
    pub id_retention_count: u64,
    pub live_holds_max: u64,
    /// Pricing, payment timeout, customer tiers and closed-order retention.
    pub orders: OrderPolicy,
    /// When low-stock alerts open and resolve.
    pub alerts: AlertPolicy,
    /// Run the background thread that writes expiry records for due holds. Tests that drive a
    /// manual clock may turn it off and call [`Engine::expire_due`] themselves.
    pub expiry_sweeper: bool,
    /// Where the data lives (the WAL in `wal/`, snapshots in `snapshots/`, consumer cursors).
    pub data_dir: PathBuf,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            shards: default_shards(),
            wal: WalConfig::new(data_dir.join("wal")),
            ttl_default_seconds: limits::TTL_SECONDS_DEFAULT,
            id_retention_seconds: limits::ID_RETENTION_SECONDS_DEFAULT,
            id_retention_count: limits::ID_RETENTION_COUNT_DEFAULT,
            live_holds_max: limits::LIVE_HOLDS_MAX_DEFAULT,
            orders: OrderPolicy::default(),
            alerts: AlertPolicy::default(),
            expiry_sweeper: true,
            data_dir,
        }
    }
}

/// Shards are lock domains, not threads: more of them than cores keeps two writers on
/// different SKUs from meeting on one lock. 8 per core (16 on the 2-core machines here): the
/// 2-thread uniform reserve+release rate rises ~20 % over one per core, while a restart from
/// a 1M SKU + 1M hold snapshot stays under 2 s (64 shards gave +100 % but a 2.2 s restart —
/// BENCHMARKS.md).
pub fn default_shards() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    (cores * 8).clamp(1, limits::SHARDS_MAX)
}

/// The outcome of an op before its durability wait: the reply, and the LSN that must be
/// durable before the reply may be sent.
#[derive(Debug)]
pub struct Submitted {
    pub result: Result<OpOutput>,
    pub wait_lsn: u64,
}

/// A canonical dump of the whole ledger, for equality checks in tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateDump {
    pub products: BTreeMap<String, (String, i64, u32, u32, u64, u64)>,
    pub reservations: BTreeMap<String, Reservation>,
    pub receipts: BTreeSet<String>,
    pub adjustments: BTreeSet<String>,
    pub customers: BTreeMap<String, Customer>,
    pub orders: BTreeMap<String, Order>,
    pub returns: BTreeMap<String, Return>,
    pub alerts: BTreeMap<String, Alert>,
    pub purchase_orders: BTreeMap<String, PurchaseOrder>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct EngineStats {
    pub last_lsn: u64,
    pub durable_lsn: u64,
    pub skus: u64,
    pub active_reservations: u64,
    pub open_orders: u64,
    pub wal_bytes: u64,
    pub fsyncs: u64,
    pub fsync_nanos_total: u64,
    pub records_written: u64,
    pub failed: bool,
}

pub struct Engine {
    pub(crate) shards: Box<[ShardMutex<Shard>]>,
    pub(crate) router: Router,
    pub(crate) index: SkipMap<String, Arc<SkuCell>>,
    /// The last LSN drawn (records up to it exist in memory; durable_lsn trails it).
    pub(crate) last_lsn: AtomicU64,
    pub(crate) live_holds: AtomicU64,
    pub(crate) open_orders: AtomicU64,
    /// Expiry records written so far (progress for ops waiting on a due hold).
    expired_total: AtomicU64,
    /// No active hold has an earlier deadline (a lower bound; `u64::MAX`: no hold). Every op
    /// reads it with its shards locked, in place of looking for due holds in them (step 3 of
    /// `submit`), so it sits on a cache line of its own that changes only when an earlier
    /// deadline arrives or expiry recomputes it: both cores keep a copy. A hold lowers it
    /// (`fetch_min`) with the shards of its record locked; [`Engine::recompute_expiry_hint`]
    /// raises it with every shard locked — so nothing can slip below it in between.
    expiry_hint_ms: CachePadded<AtomicU64>,
    pub(crate) wal: Option<Wal>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: EngineConfig,
    pub(crate) retention: Retention,
    pub(crate) order_retention: Retention,
    stop: Arc<(Mutex<bool>, Condvar)>,
    sweeper: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
}

impl Engine {
    /// Opens the engine: replays the WAL (torn tail truncated, corruption refused per the
    /// recovery mode), then starts the WAL writer and the expiry sweeper.
    pub fn open(
        config: EngineConfig,
        fs: Arc<dyn Fs>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Arc<Engine>, RecoveryReport), WalError> {
        Self::open_from(config, fs, clock, None)
    }

    /// Opens the engine from a snapshot (if any) plus the WAL after the snapshot's start LSN.
    pub fn open_from(
        config: EngineConfig,
        fs: Arc<dyn Fs>,
        clock: Arc<dyn Clock>,
        snapshot: Option<crate::snapshot::SnapshotData>,
    ) -> Result<(Arc<Engine>, RecoveryReport), WalError> {
        assert!(
            config.shards >= 1 && config.shards <= limits::SHARDS_MAX,
            "shards out of range"
        );
        let retention = Retention {
            ms: config.id_retention_seconds.saturating_mul(1000),
            count_per_shard: (config.id_retention_count as usize)
                .div_ceil(config.shards)
                .max(1),
        };
        let order_retention = Retention {
            ms: config.orders.retention_seconds.saturating_mul(1000),
            count_per_shard: (config.orders.retention_count as usize)
                .div_ceil(config.shards)
                .max(1),
        };
        let mut engine = Engine {
            shards: (0..config.shards)
                .map(|_| ShardMutex::new(Shard::default()))
                .collect(),
            router: Router::new(config.shards),
            index: SkipMap::new(),
            last_lsn: AtomicU64::new(0),
            live_holds: AtomicU64::new(0),
            open_orders: AtomicU64::new(0),
            expired_total: AtomicU64::new(0),
            expiry_hint_ms: CachePadded::new(AtomicU64::new(u64::MAX)),
            wal: None,
            clock,
            config: config.clone(),
            retention,
            order_retention,
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            sweeper: Mutex::new(None),
            closed: AtomicBool::new(false),
        };
        let mut report = RecoveryReport::default();
        let mut skip_through = 0;
        if let Some(snapshot) = snapshot {
            skip_through = snapshot.lsn_start;
            engine.restore(snapshot);
        }
        if config.wal.sync != SyncMode::Off {
            let (wal, recovered) =
                Wal::open(fs, config.wal.clone(), skip_through, |lsn, payload| {
                    engine.replay(lsn, payload)
                })?;
            engine.wal = Some(wal);
            report = recovered;
        }
        engine.recompute_expiry_hint();
        let engine = Arc::new(engine);
        if config.expiry_sweeper {
            let weak = Arc::downgrade(&engine);
            let stop = engine.stop.clone();
            let handle = std::thread::Builder::new()
                .name("expiry-sweeper".into())
                .spawn(move || sweep_loop(weak, stop))
                .expect("spawn expiry sweeper");
            *engine.sweeper.lock() = Some(handle);
        }
        Ok((engine, report))
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            router: self.router,
            index: &self.index,
            live_holds: &self.live_holds,
            open_orders: &self.open_orders,
            retention: self.retention,
            order_retention: self.order_retention,
        }
    }

    fn lock(&self, shards: &ShardSet) -> Locked<'_> {
        Locked::new(shards.iter().map(|i| (i, self.shards[i].lock())).collect())
    }

    /// Adds `more` to the locked shards without letting go of the ones held, if that cannot
    /// deadlock: a shard above every held one is locked (waiting is fine: the order stays
    /// ascending), one below is only tried. Returns false — holding what it managed to add —
    /// when a lower shard was busy; the caller then unlocks everything and locks the union
    /// in order.
    fn extend_lock<'a>(&'a self, locked: &mut Locked<'a>, more: &ShardSet) -> bool {
        for shard in more.iter() {
            let at = match locked.guards.binary_search_by_key(&shard, |(i, _)| *i) {
                Ok(_) => continue,
                Err(at) => at,
            };
            let guard = if at == locked.guards.len() {
                self.shards[shard].lock()
            } else {
                match self.shards[shard].try_lock() {
                    Some(guard) => guard,
                    None => return false,
                }
            };
            locked.guards.insert(at, (shard, guard));
        }
        true
    }

    /// Applies one WAL record during recovery, with every precondition checked.
    fn replay(&self, lsn: u64, payload: &[u8]) -> Result<(), String> {
        let record = Record::decode(payload).map_err(|e| format!("undecodable payload: {e}"))?;
        if record.events.is_empty() {
            return Err("record without events".into());
        }
        let mut shards = ShardSet::default();
        for event in &record.events {
            self.event_shards(event, &mut shards);
        }
        if record.events.len() > limits::EVENTS_PER_RECORD_MAX {
            return Err(format!("{} events in one record", record.events.len()));
        }
        let mut locked = self.lock(&shards);
        let ctx = self.ctx();
        for (index, event) in record.events.iter().enumerate() {
            apply::apply(&ctx, &mut locked, At::new(lsn, index, record.at_ms), event)?;
        }
        locked.set_last_lsn(lsn);
        self.last_lsn.store(lsn, Ordering::Release);
        Ok(())
    }

    fn event_shards(&self, event: &Event, out: &mut ShardSet) {
        let r = &self.router;
        match event {
            Event::ProductUpserted { sku, .. } => {
                out.insert(r.of(sku));
            }
            Event::StockReceived {
                receipt_id: id,
                sku,
                ..
            }
            | Event::StockAdjusted {
                adjustment_id: id,
                sku,
                ..
            } => {
                out.insert(r.of(id));
                out.insert(r.of(sku));
            }
            Event::InventoryReserved {
                reservation_id: id,
                lines,
                ..
            }
            | Event::ReservationReleased {
                reservation_id: id,
                lines,
            }
            | Event::ReservationExpired {
                reservation_id: id,
                lines,
            } => {
                out.insert(r.of(id));
                out.extend(lines.iter().map(|l| r.of(&l.sku)));
            }
            Event::ReservationCommitted {
                reservation_id,
                committed,
                released,
            } => {
                out.insert(r.of(reservation_id));
                out.extend(committed.iter().chain(released).map(|l| r.of(&l.sku)));
            }
            Event::CustomerUpserted { customer_id, .. } => out.insert(r.of(customer_id)),
            Event::OrderCreated {
                order_id,
                customer_id,
                ..
            }
            | Event::OrderPaid {
                order_id,
                customer_id,
                ..
            } => {
                out.insert(r.of(order_id));
                out.insert(r.of(customer_id));
            }
            Event::OrderCancelled {
                order_id,
                customer_id,
                restocked,
                ..
            } => {
                out.insert(r.of(order_id));
                out.insert(r.of(customer_id));
                out.extend(restocked.iter().map(|l| r.of(&l.sku)));
            }
            Event::PaymentProcessed { order_id, .. }
            | Event::OrderShipped { order_id, .. }
            | Event::OrderDelivered { order_id }
            | Event::OrderReturned { order_id } => out.insert(r.of(order_id)),
            Event::ReturnRequested {
                return_id,
                order_id,
                ..
            }
            | Event::ReturnRejected {
                return_id,
                order_id,
                ..
            } => {
                out.insert(r.of(return_id));
                out.insert(r.of(order_id));
            }
            Event::ReturnApproved {
                return_id,
                order_id,
                customer_id,
                restocked,
                ..
            } => {
                out.insert(r.of(return_id));
                out.insert(r.of(order_id));
                out.insert(r.of(customer_id));
                out.extend(restocked.iter().map(|l| r.of(&l.sku)));
            }
            Event::InventoryLevelLow { sku, .. }
            | Event::InventoryRestored { sku, .. }
            | Event::PurchaseOrderSuggested { sku, .. }
            | Event::PurchaseOrderUpdated { sku, .. } => out.insert(r.of(sku)),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Runs an op up to (not including) its durability wait.
    pub fn submit(&self, op: Op) -> Submitted {
        let op = match validate::op(
            op,
            self.config.ttl_default_seconds,
            self.config.orders.payment_timeout_default_seconds,
        ) {
            Ok(op) => op,
            Err(e) => {
                return Submitted {
                    result: Err(e),
                    wait_lsn: 0,
                };
            }
        };
        if let Some(failure) = self.wal.as_ref().and_then(|w| w.failure()) {
            return Submitted {
                result: Err(EngineError::Unavailable(format!(
                    "storage failed, writes stopped: {failure}"
                ))),
                wait_lsn: 0,
            };
        }
        let ctx = self.ctx();
        let mut stuck = 0;
        // The shards to lock grow until they cover everything the op touches: each pass locks
        // the set, then looks (under those locks) at the entities the op names for the keys
        // they lead to — a commit's hold lines, an order's customer and SKUs, a return's order.
        // Most ops name every key they touch; only these reach more through entities.
        let discovers = matches!(
            op,
            Op::Commit { .. }
                | Op::Release { .. }
                | Op::ConfirmPayment { .. }
                | Op::FailPayment { .. }
                | Op::ShipOrder { .. }
                | Op::DeliverOrder { .. }
                | Op::CancelOrder { .. }
                | Op::ApproveReturn { .. }
                | Op::RejectReturn { .. }
        );
        // A return leads to its order only once the return's shard is locked, and to the
        // order's customer and SKUs only once the order's is: two steps. Every other
        // discovering op looks at one entity in its home shard, locked from the first pass on,
        // so once the lock set covers what that entity leads to it is complete.
        let discovers_in_steps = matches!(op, Op::ApproveReturn { .. } | Op::RejectReturn { .. });
        let mut shards = {
            // With nothing locked no entity is looked at, so the time does not matter.
            let mut nothing = self.lock(&ShardSet::default());
            self.op_shards(&op, &mut nothing, 0)
        };
        'pass: loop {
            // Expiries written by anyone since this pass began: progress, not a stuck index.
            let expired_before = self.expired_total.load(Ordering::Acquire);
            let now = self.clock.now_ms();
            let mut locked = self.lock(&shards);
            // Grow the lock set in place while that is deadlock-free (the entities looked at
            // stay locked, so what they lead to stays true); else unlock and lock the union.
            if discovers {
                loop {
                    let needed = self.op_shards(&op, &mut locked, now);
                    if shards.covers(&needed) {
                        break;
                    }
                    let grown = self.extend_lock(&mut locked, &needed);
                    shards.extend(needed.iter());
                    if !grown {
                        drop(locked);
                        continue 'pass;
                    }
                    if !discovers_in_steps {
                        break;
                    }
                }
            }
            if self.expiry_hint_ms.load(Ordering::Acquire) <= now {
                drop(locked);
                // Another op or the sweeper may expire it first — and with the clock moving,
                // other holds keep falling due — so progress is any expiry by anyone during this
                // pass. Passes in which nobody expires anything mean the log has failed (expiry
                // records cannot be written) or an index is stale. Never spin: refuse, naming why.
                self.expire_due(now);
                stuck = if self.expired_total.load(Ordering::Acquire) == expired_before {
                    stuck + 1
                } else {
                    0
                };
                if stuck >= 3 {
                    let reason = self.failure().map_or_else(
                        || EngineError::Internal("a due hold could not be expired".into()),
                        |f| {
                            EngineError::Unavailable(format!("storage failed, writes stopped: {f}"))
                        },
                    );
                    return Submitted {
                        result: Err(reason),
                        wait_lsn: 0,
                    };
                }
                continue;
            }
            let decision = decide::decide(&ctx, &mut locked, &op, now, &self.config);
            return match decision {
                Err(e) => Submitted {
                    result: Err(e),
                    wait_lsn: locked.max_last_lsn(),
                },
                Ok(Decision::Reply(out)) => Submitted {
                    result: Ok(out),
                    wait_lsn: locked.max_last_lsn(),
                },
                Ok(Decision::Write(events)) => {
                    locked.defer_home = decide::reply_reads_only_home(&op);
                    let (lsn, wake) = self.write(&ctx, &mut locked, now, events);
                    let result = decide::output_written(&ctx, &mut locked, op, now, &self.config);
                    drop(locked);
                    drop(wake);
                    Submitted {
                        result,
                        wait_lsn: lsn,
                    }
                }
            };
        }
    }

    /// Draws the next LSN, applies the events, derives and applies the alert events they call
    /// for, and queues the record — under the locks, except that a hold's home-shard tail and
    /// the queueing may come after the op let go of its other shards (`Locked::finish_home`).
    /// The caller drops the returned wake-up of the WAL writer after it unlocks.
    fn write(
        &self,
        ctx: &Ctx,
        locked: &mut Locked,
        now: u64,
        mut events: Vec<Event>,
    ) -> (u64, Option<WriterWake<'_>>) {
        let lsn = self.last_lsn.fetch_add(1, Ordering::AcqRel) + 1;
        let applied = |locked: &mut Locked, first: usize, events: &[Event]| {
            for (i, event) in events.iter().enumerate() {
                if let Err(reason) = apply::apply(ctx, locked, At::new(lsn, first + i, now), event)
                {
                    panic!("bug: a decided event does not apply at LSN {lsn}: {reason}");
                }
                // Most holds end after the earliest deadline already hinted: a load (the
                // cache line stays shared between cores) instead of a write on every reserve.
                if let Event::InventoryReserved { expires_at_ms, .. } = event
                    && self.expiry_hint_ms.load(Ordering::Acquire) > *expires_at_ms
                {
                    self.expiry_hint_ms
                        .fetch_min(*expires_at_ms, Ordering::AcqRel);
                }
            }
        };
        applied(locked, 0, &events);
        let derived = alerting::derive(ctx, locked, &events, &self.config.alerts);
        applied(locked, events.len(), &derived);
        events.extend(derived);
        locked.set_last_lsn(lsn);
        if let Err(reason) = locked.finish_home(ctx, &events) {
            panic!("bug: a decided hold's home part does not apply at LSN {lsn}: {reason}");
        }
        let wake = self.wal.as_ref().map(|wal| {
            let payload = Record { at_ms: now, events }.encode();
            assert!(
                payload.len() <= limits::RECORD_BYTES_MAX,
                "record too large"
            );
            wal.push_waking_later(lsn, payload)
        });
        (lsn, wake)
    }

    /// The shards an op touches, as far as `locked` lets one see: the keys the op names, and
    /// the keys of the entities it names that sit in locked shards.
    fn op_shards(&self, op: &Op, locked: &mut Locked, now: u64) -> ShardSet {
        let r = &self.router;
        let mut out = ShardSet::default();
        match op {
            Op::UpsertProduct { sku, .. } => {
                out.insert(r.of(sku));
            }
            Op::Receive {
                receipt_id: id,
                sku,
                ..
            }
            | Op::Adjust {
                adjustment_id: id,
                sku,
                ..
            } => {
                out.insert(r.of(id));
                out.insert(r.of(sku));
            }
            Op::Reserve {
                reservation_id,
                lines,
                ..
            } => {
                out.insert(r.of(reservation_id));
                out.extend(lines.iter().map(|l| r.of(&l.sku)));
            }
            Op::Commit { reservation_id, .. } | Op::Release { reservation_id } => {
                let home = r.of(reservation_id);
                out.insert(home);
                self.hold_shards(locked, home, reservation_id, now, &mut out);
            }
            Op::UpsertCustomer { customer_id, .. } => out.insert(r.of(customer_id)),
            Op::CreateOrder {
                order_id,
                customer_id,
                lines,
                ..
            } => {
                out.insert(r.of(order_id));
                out.insert(r.of(customer_id));
                out.extend(lines.iter().map(|l| r.of(&l.sku)));
            }
            Op::ConfirmPayment { order_id, .. }
            | Op::FailPayment { order_id, .. }
            | Op::ShipOrder { order_id, .. }
            | Op::DeliverOrder { order_id }
            | Op::CancelOrder { order_id, .. } => {
                self.order_shards(locked, order_id, now, &mut out)
            }
            Op::RequestReturn {
                return_id,
                order_id,
                ..
            } => {
                out.insert(r.of(return_id));
                out.insert(r.of(order_id));
            }
            Op::ApproveReturn { return_id, .. } | Op::RejectReturn { return_id, .. } => {
                let home = r.of(return_id);
                out.insert(home);
                if locked.holds(home)
                    && let Some(entry) =
                        locked
                            .shard(home)
                            .return_entry(return_id, now, self.retention)
                {
                    let order_id = entry.ret.order_id.clone();
                    self.order_shards(locked, &order_id, now, &mut out);
                }
            }
            Op::UpdatePurchaseOrder {
                purchase_order_id, ..
            } => {
                // A received purchase order is remembered as a stock receipt under its id.
                out.insert(r.of(purchase_order_id));
                if let Some(sku) = crate::alerts::purchase_order_sku(purchase_order_id) {
                    out.insert(r.of(sku));
                }
            }
        }
        out
    }

    /// Adds the shards of a hold's SKUs to `out`, if its home shard (`home`, the shard of
    /// `id`) is locked.
    fn hold_shards(
        &self,
        locked: &mut Locked,
        home: usize,
        id: &str,
        now: u64,
        out: &mut ShardSet,
    ) {
        if !locked.holds(home) {
            return;
        }
        if let Some(entry) = locked.shard(home).reservation(id, now, self.retention) {
            out.extend(entry.lines.iter().map(|l| self.router.of(&l.sku)));
        }
    }

    /// Adds an order's home shard and, if that is locked, its customer's and SKUs' shards.
    fn order_shards(&self, locked: &mut Locked, order_id: &str, now: u64, out: &mut ShardSet) {
        let home = self.router.of(order_id);
        out.insert(home);
        if !locked.holds(home) {
            return;
        }
        if let Some(entry) = locked
            .shard(home)
            .order(order_id, now, self.order_retention)
        {
            out.insert(self.router.of(&entry.order.customer_id));
            out.extend(entry.order.lines.iter().map(|l| self.router.of(&l.sku)));
        }
    }

    /// Writes an expiry record for every hold whose deadline is at or before `now`.
    pub fn expire_due(&self, now: u64) -> usize {
        let mut due: BTreeSet<String> = BTreeSet::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let mut stale = Vec::new();
            for (&key, &slot) in shard
                .expiry()
                .iter()
                .take_while(|((at, _), _)| *at <= now)
                .take(limits::EXPIRY_SWEEP_BATCH_MAX)
            {
                match shard.reservations.slot(slot) {
                    Some((id, r))
                        if r.state == crate::model::ReservationState::Active
                            && (r.expires_at_ms, r.created_lsn) == key =>
                    {
                        due.insert(id.to_string());
                    }
                    // A bug, not a state: an index entry whose hold is gone or was replaced.
                    // Dropped (with an error in the log) rather than left to stall every op
                    // on this shard behind a deadline nothing can expire.
                    _ => stale.push(key),
                }
            }
            for key in stale {
                tracing::error!(?key, "expiry index named a slot without its hold; dropped");
                shard.remove_expiry(&key);
            }
        }
        let mut expired = 0;
        for id in &due {
            if self.expire_one(id, now) {
                expired += 1;
            }
        }
        self.recompute_expiry_hint();
        expired
    }

    fn expire_one(&self, id: &str, now: u64) -> bool {
        let ctx = self.ctx();
        let home = self.router.of(id);
        let mut shards = ShardSet::one(home);
        {
            let mut locked_home = self.lock(&shards);
            self.hold_shards(&mut locked_home, home, id, now, &mut shards);
        }
        let mut locked = self.lock(&shards);
        let Some(entry) = locked.shard(home).reservations.get(id) else {
            return false;
        };
        let lines = entry.lines.clone();
        let due =
            entry.state == crate::model::ReservationState::Active && entry.expires_at_ms <= now;
        let covered = lines.iter().all(|l| locked.holds(self.router.of(&l.sku)));
        if !due || !covered {
            return false;
        }
        if self.wal.as_ref().is_some_and(|w| w.failure().is_some()) {
            return false;
        }
        let mut events = vec![Event::ReservationExpired {
            reservation_id: id.to_string(),
            lines,
        }];
        // An order's hold expiring is its payment timeout: one record, release + cancel.
        if let Some(order_id) = crate::orders::order_of_hold(id)
            && let Some(order) = locked.shard(home).orders.get(order_id)
            && order.order.status == OrderStatus::Pending
        {
            events.push(Event::OrderCancelled {
                order_id: order_id.to_string(),
                customer_id: order.order.customer_id.clone(),
                from: OrderStatus::Pending,
                reason: "payment_timeout".into(),
                refund_due_cents: 0,
                restocked: Vec::new(),
            });
        }
        let (_, wake) = self.write(&ctx, &mut locked, now, events);
        // Counted before the hold's shards are let go: an op that finds them next must see the
        // progress (see `submit`).
        self.expired_total.fetch_add(1, Ordering::AcqRel);
        drop(locked);
        drop(wake);
        true
    }

    /// Sets the expiry hint to the earliest deadline of all active holds, with every shard
    /// locked (in ascending order, holding nothing else): a hold created meanwhile either is in
    /// a tree looked at, or lowers the hint after this store. A few microseconds of every
    /// shard, after each expiry pass (the sweeper's every 50 ms).
    fn recompute_expiry_hint(&self) {
        let all: Vec<_> = self.shards.iter().map(|shard| shard.lock()).collect();
        let earliest = all
            .iter()
            .filter_map(|shard| shard.next_expiry_ms())
            .min()
            .unwrap_or(u64::MAX);
        self.expiry_hint_ms.store(earliest, Ordering::Release);
    }

    /// Expires due holds if the engine-wide lower bound of all deadlines says one may be due:
    /// before a read (so a hold is never counted after its deadline), and the sweeper's tick
    /// (which would otherwise lock every shard every tick to find nothing).
    fn expire_if_due(&self) {
        let now = self.clock.now_ms();
        if self.expiry_hint_ms.load(Ordering::Acquire) <= now {
            self.expire_due(now);
        }
    }

    /// Blocks until `lsn` is durable (no-op without a WAL).
    pub fn wait_durable(&self, lsn: u64) -> Result<()> {
        match &self.wal {
            Some(wal) => wal.wait_durable(lsn),
            None => Ok(()),
        }
    }

    pub async fn wait_durable_async(&self, lsn: u64) -> Result<()> {
        match &self.wal {
            Some(wal) => wal.wait_durable_async(lsn).await,
            None => Ok(()),
        }
    }

    /// Runs an op and waits for durability: the reply a client may be sent.
    pub fn execute(&self, op: Op) -> Result<OpOutput> {
        let submitted = self.submit(op);
        self.wait_durable(submitted.wait_lsn)?;
        submitted.result
    }

    pub async fn execute_async(&self, op: Op) -> Result<OpOutput> {
        let submitted = self.submit(op);
        self.wait_durable_async(submitted.wait_lsn).await?;
        submitted.result
    }

    /// Runs ops in order and waits once for all of them (one group commit for the batch).
    pub async fn execute_batch_async(&self, ops: Vec<Op>) -> Vec<Result<OpOutput>> {
        let mut wait_lsn = 0;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let submitted = self.submit(op);
            wait_lsn = wait_lsn.max(submitted.wait_lsn);
            results.push(submitted.result);
        }
        match self.wait_durable_async(wait_lsn).await {
            Ok(()) => results,
            Err(e) => results.into_iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// Current stock of a SKU, lock-free. May be ahead of disk by one group commit.
    pub fn get_stock(&self, sku: &str) -> Result<StockLevel> {
        validate::sku("sku", sku)?;
        self.expire_if_due();
        self.index
            .get(sku)
            .map(|e| e.value().level(sku))
            .ok_or_else(|| not_found(format!("unknown SKU {sku}")))
    }

    /// A page of stock levels in SKU order, after `after` (exclusive). Lock-free.
    pub fn list_stock(
        &self,
        after: Option<&str>,
        page_size: usize,
        low_only: bool,
    ) -> (Vec<StockLevel>, Option<String>) {
        self.expire_if_due();
        let page_size = page_size.clamp(1, limits::PAGE_SIZE_MAX);
        let mut out = Vec::with_capacity(page_size);
        let lower = match after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Unbounded,
        };
        let range = self
            .index
            .range::<str, _>((lower, std::ops::Bound::Unbounded));
        let mut more = false;
        for entry in range {
            let level = entry.value().level(entry.key());
            if low_only && level.status == crate::model::StockStatus::InStock {
                continue;
            }
            if out.len() == page_size {
                more = true;
                break;
            }
            out.push(level);
        }
        let next = if more {
            out.last().map(|l| l.sku.clone())
        } else {
            None
        };
        (out, next)
    }

    pub fn get_product(&self, sku: &str) -> Result<Product> {
        validate::sku("sku", sku)?;
        let shard = self.shards[self.router.of(sku)].lock();
        let entry = shard
            .skus
            .get(sku)
            .ok_or_else(|| not_found(format!("unknown SKU {sku}")))?;
        Ok(Product {
            sku: sku.to_string(),
            name: entry.product.name.clone(),
            unit_price_cents: entry.product.unit_price_cents,
            reorder_level: entry.product.reorder_level,
            reorder_quantity: entry.product.reorder_quantity,
            stock: entry.level(sku),
        })
    }

    pub fn get_reservation(&self, id: &str) -> Result<Reservation> {
        validate::id("reservation_id", id)?;
        self.expire_if_due();
        let now = self.clock.now_ms();
        let shard = self.shards[self.router.of(id)].lock();
        shard
            .reservation(id, now, self.retention)
            .map(|e| e.view(id))
            .ok_or_else(|| not_found(format!("reservation {id} not found")))
    }

    pub fn get_customer(&self, id: &str) -> Result<Customer> {
        validate::id("customer_id", id)?;
        let shard = self.shards[self.router.of(id)].lock();
        let entry = shard
            .customers
            .get(id)
            .ok_or_else(|| not_found(format!("unknown customer {id}")))?;
        let mut customer = entry.customer.clone();
        customer.tier = self
            .config
            .orders
            .tiers
            .of(customer.lifetime_spend_cents)
            .into();
        Ok(customer)
    }

    pub fn get_order(&self, id: &str) -> Result<Order> {
        self.get_order_at(id).map(|(order, _)| order)
    }

    /// An order and the LSN of its last change (where `WatchOrder` follows the feed from).
    pub fn get_order_at(&self, id: &str) -> Result<(Order, u64)> {
        validate::id("order_id", id)?;
        self.expire_if_due();
        let now = self.clock.now_ms();
        let shard = self.shards[self.router.of(id)].lock();
        shard
            .order(id, now, self.order_retention)
            .map(|e| (e.order.clone(), crate::ledger::shard::stamp_lsn(e.stamp)))
            .ok_or_else(|| not_found(format!("order {id} not found")))
    }

    /// A page of orders in id order after `after` (exclusive), optionally of one customer
    /// and/or in one status. Scans every shard (one lock at a time), keeping only a page.
    pub fn list_orders(
        &self,
        customer_id: Option<&str>,
        status: Option<OrderStatus>,
        after: Option<&str>,
        page_size: usize,
    ) -> (Vec<Order>, Option<String>) {
        self.expire_if_due();
        let now = self.clock.now_ms();
        let page_size = page_size.clamp(1, limits::PAGE_SIZE_MAX);
        let mut page: BTreeMap<String, Order> = BTreeMap::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (id, entry) in shard.orders.iter() {
                let o = &entry.order;
                let wanted = after.is_none_or(|a| id > a)
                    && customer_id.is_none_or(|c| o.customer_id == c)
                    && status.is_none_or(|s| o.status == s)
                    && shard.order(id, now, self.order_retention).is_some();
                // One more than a page tells whether another page follows.
                if wanted
                    && (page.len() <= page_size
                        || page
                            .last_key_value()
                            .is_some_and(|(last, _)| id < last.as_str()))
                {
                    page.insert(id.to_string(), o.clone());
                    if page.len() > page_size + 1 {
                        page.pop_last();
                    }
                }
            }
        }
        let more = page.len() > page_size;
        let orders: Vec<Order> = page.into_values().take(page_size).collect();
        let next = if more {
            orders.last().map(|o| o.order_id.clone())
        } else {
            None
        };
        (orders, next)
    }

    /// Open alerts (and resolved ones still kept, with `include_resolved`), oldest first.
    pub fn list_alerts(&self, include_resolved: bool) -> Vec<Alert> {
        self.expire_if_due();
        let mut out: Vec<Alert> = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            out.extend(
                shard
                    .alerts
                    .values()
                    .filter(|a| include_resolved || a.alert.resolved_at_ms.is_none())
                    .map(|a| a.alert.clone()),
            );
        }
        out.sort_by(|a, b| (a.opened_at_ms, &a.alert_id).cmp(&(b.opened_at_ms, &b.alert_id)));
        out
    }

    /// Purchase orders (only SUGGESTED and ORDERED with `open_only`), oldest first.
    pub fn list_purchase_orders(&self, open_only: bool) -> Vec<PurchaseOrder> {
        let mut out: Vec<PurchaseOrder> = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            out.extend(
                shard
                    .purchase_orders
                    .values()
                    .filter(|p| !open_only || p.purchase_order.status.is_open())
                    .map(|p| p.purchase_order.clone()),
            );
        }
        out.sort_by(|a, b| {
            (a.created_at_ms, &a.purchase_order_id).cmp(&(b.created_at_ms, &b.purchase_order_id))
        });
        out
    }

    pub fn stats(&self) -> EngineStats {
        let wal = self.wal.as_ref().map(|w| w.stats()).unwrap_or_default();
        let last_lsn = self.last_lsn.load(Ordering::Acquire);
        EngineStats {
            last_lsn,
            durable_lsn: if self.wal.is_some() {
                wal.durable_lsn
            } else {
                last_lsn
            },
            skus: self.index.len() as u64,
            active_reservations: self.live_holds.load(Ordering::Relaxed),
            open_orders: self.open_orders.load(Ordering::Relaxed),
            wal_bytes: wal.bytes_on_disk,
            fsyncs: wal.fsyncs,
            fsync_nanos_total: wal.fsync_nanos_total,
            records_written: wal.records_written,
            failed: self.wal.as_ref().is_some_and(|w| w.failure().is_some()),
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.wal.as_ref().and_then(|w| w.failure())
    }

    /// Reads the change feed: durable records from `from_lsn` on.
    pub fn feed(&self, from_lsn: u64) -> Option<WalCursor> {
        self.wal.as_ref().map(|w| w.cursor(from_lsn))
    }

    pub fn wal(&self) -> Option<&Wal> {
        self.wal.as_ref()
    }

    /// Every SKU's figures and every reservation, sorted — for tests that compare states.
    pub fn dump(&self) -> StateDump {
        let mut dump = StateDump::default();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (sku, e) in shard.skus.iter() {
                let p = &e.product;
                dump.products.insert(
                    sku.to_string(),
                    (
                        p.name.clone(),
                        p.unit_price_cents,
                        p.reorder_level,
                        p.reorder_quantity,
                        e.on_hand,
                        e.reserved,
                    ),
                );
            }
            for (id, r) in shard.reservations.iter() {
                dump.reservations.insert(id.to_string(), r.view(id));
            }
            dump.receipts
                .extend(shard.receipts.iter().map(|(k, _)| k.to_string()));
            dump.adjustments
                .extend(shard.adjustments.iter().map(|(k, _)| k.to_string()));
            for (id, e) in shard.customers.iter() {
                dump.customers.insert(id.to_string(), e.customer.clone());
            }
            for (id, e) in shard.orders.iter() {
                dump.orders.insert(id.to_string(), e.order.clone());
            }
            for (id, e) in shard.returns.iter() {
                dump.returns.insert(id.to_string(), e.ret.clone());
            }
            for (id, e) in shard.alerts.iter() {
                dump.alerts.insert(id.to_string(), e.alert.clone());
            }
            for (id, e) in shard.purchase_orders.iter() {
                dump.purchase_orders
                    .insert(id.to_string(), e.purchase_order.clone());
            }
        }
        dump
    }

    /// Checks `0 ≤ reserved ≤ on_hand` for every SKU and that `reserved` equals the sum of
    /// active holds — the invariant checker tests run alongside load. Locks every shard.
    pub fn check_invariants(&self) -> Result<(), String> {
        let guards: Vec<_> = self.shards.iter().map(|s| s.lock()).collect();
        let mut held: BTreeMap<&str, u64> = BTreeMap::new();
        let mut active = 0u64;
        for shard in &guards {
            for r in shard.reservations.values() {
                if r.state == crate::model::ReservationState::Active {
                    active += 1;
                    for line in r.lines.iter() {
                        *held.entry(line.sku.as_str()).or_default() += u64::from(line.quantity);
                    }
                }
            }
        }
        for shard in &guards {
            for (sku, e) in shard.skus.iter() {
                if e.reserved > e.on_hand {
                    return Err(format!(
                        "{sku}: reserved {} > on_hand {}",
                        e.reserved, e.on_hand
                    ));
                }
                let expected = held.get(sku).copied().unwrap_or(0);
                if e.reserved != expected {
                    return Err(format!(
                        "{sku}: reserved {} but active holds sum to {expected}",
                        e.reserved
                    ));
                }
                let published = e.cell.level(sku);
                if published.on_hand != e.on_hand || published.reserved != e.reserved {
                    return Err(format!("{sku}: published figures differ from the ledger"));
                }
            }
        }
        let live = self.live_holds.load(Ordering::Relaxed);
        if live != active {
            return Err(format!(
                "live hold counter {live} but {active} active holds"
            ));
        }
        // Orders: a PENDING order holds exactly its lines; an active order hold has a PENDING
        // order; the open-order counter counts the open ones.
        let mut open = 0u64;
        for shard in &guards {
            for (id, entry) in shard.orders.iter() {
                let o = &entry.order;
                open += u64::from(o.status.is_open());
                let hold = shard.reservations.get(&crate::orders::hold_id(id));
                let active =
                    hold.is_some_and(|h| h.state == crate::model::ReservationState::Active);
                if (o.status == OrderStatus::Pending) != active {
                    return Err(format!(
                        "order {id} is {} but its hold is {}",
                        o.status.name(),
                        hold.map_or("missing", |h| h.state.name())
                    ));
                }
                if let Some(h) = hold.filter(|_| active) {
                    let same = h.lines.len() == o.lines.len()
                        && h.lines
                            .iter()
                            .zip(&o.lines)
                            .all(|(a, b)| a.sku == b.sku && a.quantity == b.quantity);
                    if !same {
                        return Err(format!(
                            "order {id}: its hold's lines differ from the order's"
                        ));
                    }
                }
            }
            for (id, h) in shard.reservations.iter() {
                if let Some(order_id) = crate::orders::order_of_hold(id)
                    && h.state == crate::model::ReservationState::Active
                    && !shard.orders.contains(order_id)
                {
                    return Err(format!(
                        "an active hold of order {order_id}, which is unknown"
                    ));
                }
            }
        }
        let counted = self.open_orders.load(Ordering::Relaxed);
        if counted != open {
            return Err(format!(
                "open-order counter {counted} but {open} open orders"
            ));
        }
        Ok(())
    }

    /// Stops the sweeper and flushes the WAL. Idempotent; also runs on drop.
    pub fn shutdown(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let (flag, cv) = &*self.stop;
            *flag.lock() = true;
            cv.notify_all();
        }
        if let Some(handle) = self.sweeper.lock().take()
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
        if let Some(wal) = &self.wal {
            wal.shutdown();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn sweep_loop(engine: std::sync::Weak<Engine>, stop: Arc<(Mutex<bool>, Condvar)>) {
    let interval = Duration::from_millis(limits::EXPIRY_SWEEP_INTERVAL_MILLIS);
    loop {
        {
            let (flag, cv) = &*stop;
            let mut stopped = flag.lock();
            if !*stopped {
                cv.wait_for(&mut stopped, interval);
            }
            if *stopped {
                return;
            }
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        engine.expire_if_due();
    }
}

/// Lines as "SKU×qty" for messages and script output.
pub fn lines_text(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| format!("{}×{}", l.sku, l.quantity))
        .collect::<Vec<_>>()
        .join(",")
}
