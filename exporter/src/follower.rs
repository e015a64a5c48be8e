//! The exporter's thread: follows the change feed from the store's own cursor, one batch of WAL
//! records per store transaction (rows and cursor together: exactly once across crashes), and
//! keeps the WAL retained for it by advancing its snapshotter consumer cursor after each commit.
//!
//! On start (and after any failure) it reconciles three positions: the store's cursor, the
//! snapshotter's consumer cursor and the oldest WAL record on disk. A new store, a consumer
//! dropped for lagging past the retained-WAL cap, or a cursor the WAL no longer reaches is
//! rebuilt from `Engine::cut_snapshot` and then follows the feed from the cut's `lsn_start + 1`
//! — except a new store while the WAL still starts at LSN 1, which simply replays it all (and so
//! gets the whole history).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::{Engine, Record, WalError};
use parking_lot::Mutex;
use snapshotter::Snapshotter;

use crate::change::Change;
use crate::error::{Error, Result};
use crate::limits;
use crate::rebuild::snapshot_changes;
use crate::store::{Cursor, Reader, Store, StoreConfig};
use crate::translate;

/// The exporter's name as a snapshotter consumer (in `consumers.json`).
pub const CONSUMER: &str = "exporter";

#[derive(Debug, Clone)]
pub struct ExporterConfig {
    pub store: StoreConfig,
    pub batch_records: usize,
    /// The thread's nice value, `0..=limits::NICE_MAX` (see [`limits::NICE_DEFAULT`]).
    pub nice: i32,
    /// When caught up, the least time between two store transactions'
    /// starts, `0..=limits::BATCH_INTERVAL_MILLIS_MAX` (see
    /// [`limits::BATCH_INTERVAL_MILLIS_DEFAULT`]).
    pub batch_interval_millis: u64,
}

/// Counters for metrics and `Admin.Status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Highest LSN fully in the store (API.md's `export_lsn`).
    pub export_lsn: u64,
    pub records_total: u64,
    pub rows_total: u64,
    pub batches_total: u64,
    pub rebuilds_total: u64,
    pub failures_total: u64,
}

#[derive(Default)]
struct Shared {
    /// Set once the exporter's thread has opened the store.
    reader: Mutex<Option<Arc<dyn Reader>>>,
    export_lsn: AtomicU64,
    records_total: AtomicU64,
    rows_total: AtomicU64,
    batches_total: AtomicU64,
    rebuilds_total: AtomicU64,
    failures_total: AtomicU64,
    stop: AtomicBool,
}

pub struct Exporter {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Exporter {
    /// Starts the exporter's thread. It opens the store itself and keeps retrying while it
    /// cannot (DESIGN.md rule 7: storefronts never stop because a report store is down).
    pub fn start(
        config: ExporterConfig,
        engine: Arc<Engine>,
        snapshotter: Arc<Snapshotter>,
    ) -> Result<Exporter> {
        let shared = Arc::new(Shared::default());
        let pace = Pace {
            batch: config.batch_records.clamp(1, limits::BATCH_RECORDS_MAX),
            interval: Duration::from_millis(
                config
                    .batch_interval_millis
                    .min(limits::BATCH_INTERVAL_MILLIS_MAX),
            ),
        };
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("exporter".into())
                .spawn(move || {
                    // Before the store opens, so that DuckDB's workers inherit it. The export is
                    // the one consumer whose delay nobody waits on: it yields the CPU to
                    // requests (`limits::NICE_DEFAULT`), and does not keep a short slice it may
                    // have inherited from a runtime thread (`engine::sched`).
                    engine::sched::become_background("exporter", config.nice);
                    if let Some(store) = open_store(&config.store, &shared) {
                        run(store, &engine, &snapshotter, &shared, pace);
                    }
                })
                .map_err(|e| Error::Store(format!("starting the exporter thread: {e}")))?
        };
        Ok(Exporter {
            shared,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// The store's reading side; UNAVAILABLE (`Error::Store`) until the store could be opened.
    pub fn reader(&self) -> Result<Arc<dyn Reader>> {
        self.shared.reader.lock().clone().ok_or_else(|| {
            Error::Store("the analytical store is not open (yet): see the server log".into())
        })
    }

    pub fn export_lsn(&self) -> u64 {
        self.shared.export_lsn.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> ExportStats {
        let s = &self.shared;
        ExportStats {
            export_lsn: self.export_lsn(),
            records_total: s.records_total.load(Ordering::Relaxed),
            rows_total: s.rows_total.load(Ordering::Relaxed),
            batches_total: s.batches_total.load(Ordering::Relaxed),
            rebuilds_total: s.rebuilds_total.load(Ordering::Relaxed),
            failures_total: s.failures_total.load(Ordering::Relaxed),
        }
    }

    /// Stops the thread after the batch in progress (idempotent).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(worker) = self.worker.lock().take() {
            let _ = worker.join();
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Opens the store, retrying until it opens or the exporter is stopped (`None`).
fn open_store(config: &StoreConfig, shared: &Shared) -> Option<Box<dyn Store>> {
    while !shared.stop.load(Ordering::Acquire) {
        match crate::store::open(config) {
            Ok((store, reader)) => {
                *shared.reader.lock() = Some(reader);
                return Some(store);
            }
            Err(e) => {
                shared.failures_total.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "exporter: cannot open the analytical store; retrying");
                sleep_unless_stopped(shared, Duration::from_millis(limits::RETRY_MILLIS));
            }
        }
    }
    None
}

/// How much the exporter takes at a time, and how often when it is caught up.
#[derive(Debug, Clone, Copy)]
struct Pace {
    batch: usize,
    interval: Duration,
}

fn run(
    mut store: Box<dyn Store>,
    engine: &Engine,
    snapshotter: &Snapshotter,
    shared: &Shared,
    pace: Pace,
) {
    while !shared.stop.load(Ordering::Acquire) {
        match follow(store.as_mut(), engine, snapshotter, shared, pace) {
            Ok(()) => return,
            Err(e) => {
                shared.failures_total.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "exporter failed; retrying");
                sleep_unless_stopped(shared, Duration::from_millis(limits::RETRY_MILLIS));
            }
        }
    }
}

fn sleep_unless_stopped(shared: &Shared, total: Duration) {
    let step = Duration::from_millis(limits::IDLE_POLL_MILLIS);
    let mut slept = Duration::ZERO;
    while slept < total && !shared.stop.load(Ordering::Acquire) {
        let nap = step.min(total - slept);
        std::thread::sleep(nap);
        slept += nap;
    }
}

/// Where to start: the store's cursor if the feed still reaches it, else a rebuild.
fn reconcile(
    store: &mut dyn Store,
    engine: &Engine,
    snapshotter: &Snapshotter,
    shared: &Shared,
) -> Result<Cursor> {
    let stored = store.cursor()?;
    let consumer = snapshotter
        .register_consumer(CONSUMER, stored.map_or(0, |c| c.lsn))
        .map_err(Error::Feed)?;
    let durable = engine.stats().durable_lsn;
    let oldest = engine.wal().map_or(1, |w| w.oldest_lsn());
    match stored {
        Some(c) if !consumer.dropped && c.lsn <= durable && c.lsn + 1 >= oldest => {
            // The store is the truth: it may be behind the consumer file (which is saved
            // lazily), never ahead of what the WAL holds.
            snapshotter
                .rejoin_consumer(CONSUMER, c.lsn)
                .map_err(Error::Feed)?;
            Ok(c)
        }
        None if oldest <= 1 => {
            // The WAL still holds the whole history: replay it all (stock movements and
            // payments from the very first record) instead of starting from a snapshot.
            store.reset()?;
            snapshotter
                .rejoin_consumer(CONSUMER, 0)
                .map_err(Error::Feed)?;
            Ok(Cursor::default())
        }
        _ => {
            let why = match stored {
                None => "new store".to_string(),
                Some(_) if consumer.dropped => "dropped for lagging past the WAL cap".into(),
                Some(c) => format!("cursor {} outside the WAL ({oldest}..={durable})", c.lsn),
            };
            tracing::info!("exporter: rebuilding the analytical store from a snapshot ({why})");
            rebuild(store, engine, snapshotter, shared)
        }
    }
}

fn rebuild(
    store: &mut dyn Store,
    engine: &Engine,
    snapshotter: &Snapshotter,
    shared: &Shared,
) -> Result<Cursor> {
    // Hold the WAL from here on before cutting: the cut's lsn_start is at least this.
    let last = engine.stats().last_lsn;
    snapshotter
        .rejoin_consumer(CONSUMER, last)
        .map_err(Error::Feed)?;
    let (snap, _) = engine
        .cut_snapshot()
        .map_err(|e| Error::Feed(format!("cutting a snapshot: {e}")))?;
    store.reset()?;
    let (mut changes, _) = snapshot_changes(&snap);
    crate::change::group_for_statements(&mut changes);
    let cursor = Cursor {
        lsn: snap.lsn_start,
        rebuild_lsn_end: snap.lsn_end,
    };
    store.apply(&changes, cursor, false)?;
    shared.rebuilds_total.fetch_add(1, Ordering::Relaxed);
    snapshotter
        .rejoin_consumer(CONSUMER, snap.lsn_start)
        .map_err(Error::Feed)?;
    tracing::info!(
        lsn = snap.lsn_start,
        rows = changes.len(),
        "exporter: store rebuilt"
    );
    Ok(cursor)
}

fn follow(
    store: &mut dyn Store,
    engine: &Engine,
    snapshotter: &Snapshotter,
    shared: &Shared,
    pace: Pace,
) -> Result<()> {
    let mut cursor = reconcile(store, engine, snapshotter, shared)?;
    shared.export_lsn.store(cursor.lsn, Ordering::Release);
    let mut book = store.book()?;
    let mut feed = engine
        .feed(cursor.lsn + 1)
        .ok_or_else(|| Error::Feed("the engine has no WAL".into()))?;
    let mut changes: Vec<Change> = Vec::new();
    let Pace { batch, interval } = pace;
    // How long after the last read's start the next read waits.
    let mut wait = Duration::ZERO;
    let mut started = Instant::now();
    while !shared.stop.load(Ordering::Acquire) {
        sleep_unless_stopped(shared, wait.saturating_sub(started.elapsed()));
        started = Instant::now();
        let records = feed.next_batch(batch).map_err(|e| match e {
            WalError::Truncated { oldest_lsn } => Error::Feed(format!(
                "the WAL no longer holds LSN {} (oldest {oldest_lsn})",
                feed.next_lsn()
            )),
            other => Error::Feed(other.to_string()),
        })?;
        // Behind: go on at once. Caught up: let records gather, as one transaction costs about
        // the same for a few records as for thousands (`limits::BATCH_INTERVAL_MILLIS_DEFAULT`).
        // Idle: poll.
        wait = if records.len() == batch {
            Duration::ZERO
        } else {
            interval
        };
        let (Some(&(first, _)), Some(&(last, _))) = (records.first(), records.last()) else {
            wait = wait.max(Duration::from_millis(limits::IDLE_POLL_MILLIS));
            continue;
        };
        changes.clear();
        for (lsn, payload) in &records {
            let record = Record::decode(payload)
                .map_err(|e| Error::Feed(format!("record {lsn} does not decode: {e}")))?;
            translate::record(&mut book, *lsn, &record, &mut changes);
        }
        book.drain_changes(&mut changes);
        crate::change::group_for_statements(&mut changes);
        let next = Cursor {
            lsn: last,
            ..cursor
        };
        // A failure leaves the book ahead of the store: `run` restarts from the store.
        store.apply(&changes, next, first <= cursor.rebuild_lsn_end)?;
        cursor = next;
        shared.export_lsn.store(last, Ordering::Release);
        snapshotter.advance_consumer(CONSUMER, last);
        shared
            .records_total
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        shared
            .rows_total
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        shared.batches_total.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
