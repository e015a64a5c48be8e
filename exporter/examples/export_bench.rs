//! Export throughput and lag at a steady offered load:
//!
//! ```sh
//! cargo build --release --workspace --examples && target/release/examples/export_bench [OPS_PER_SECOND] [SECONDS] [POSTGRES_URL]
//! ```
//!
//! Defaults: 100,000 ops/s for 10 s into a DuckDB file (or PostgreSQL with a URL); env `NICE`
//! sets the exporter thread's nice value and `INTERVAL_MS` its batch interval when caught up
//! (defaults: as shipped, `limits::NICE_DEFAULT`, `limits::BATCH_INTERVAL_MILLIS_DEFAULT`). A durable
//! engine (fsync WAL, group commit) takes a paced open-loop stream of Reserve / Commit pairs over
//! 1,000 SKUs (each Commit is a stock movement row, each Reserve a reservation upsert) from two
//! submitting threads, while the exporter follows the feed. Every 5 ms a sampler notes
//! `durable_lsn` and `export_lsn`; the lag at a sample is how long the oldest durable record not
//! yet in the store has been durable (0 when the exporter is caught up). Prints the achieved
//! op rate, rows/s written, and the lag's median, p99 and maximum.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use engine::wal::fs::StdFs;
use engine::{Engine, EngineConfig, Line, Op, SystemClock};
use exporter::{Exporter, ExporterConfig, StoreConfig};
use snapshotter::SnapshotterConfig;

const SKUS: usize = 1_000;
const SUBMITTERS: usize = 2;
const SAMPLE_MILLIS: u64 = 5;

fn sku(i: usize) -> String {
    format!("SKU-{:04}", i % SKUS)
}

fn run(engine: &Engine, op: Op) {
    if let Err(e) = engine.execute(op) {
        panic!("setup: {e}");
    }
}

/// Paces `rate` ops/s (Reserve then Commit of the same hold) until `stop`; returns ops done.
fn submit(engine: &Engine, worker: usize, rate: f64, stop: &AtomicBool) -> u64 {
    let started = Instant::now();
    let mut done = 0u64;
    let mut last_lsn = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        if done >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        while done < due {
            let n = done / 2;
            let id = format!("w{worker}-{n}");
            let op = if done.is_multiple_of(2) {
                Op::Reserve {
                    reservation_id: id,
                    lines: vec![Line::new(sku(worker * 7919 + n as usize), 1)].into(),
                    ttl_seconds: 600,
                }
            } else {
                Op::Commit {
                    reservation_id: id,
                    lines: Vec::new(),
                }
            };
            let s = engine.submit(op);
            if let Err(e) = s.result {
                panic!("op {done}: {e}");
            }
            last_lsn = last_lsn.max(s.wait_lsn);
            done += 1;
        }
    }
    engine.wait_durable(last_lsn).expect("durable");
    done
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rate: f64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000.0);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = match args.get(3) {
        Some(url) => StoreConfig::Postgres { url: url.clone() },
        None => StoreConfig::DuckDb {
            path: dir.path().join("analytics.duckdb"),
        },
    };
    let (engine, snapshotter, _) = snapshotter::open_engine(
        EngineConfig::new(dir.path()),
        SnapshotterConfig::new(dir.path()),
        Arc::new(StdFs),
        Arc::new(SystemClock),
    )
    .expect("open engine");
    for i in 0..SKUS {
        run(
            &engine,
            Op::UpsertProduct {
                sku: sku(i),
                name: format!("Product {i}"),
                unit_price_cents: 1_000,
                reorder_level: 0,
                reorder_quantity: 0,
            },
        );
        run(
            &engine,
            Op::Receive {
                receipt_id: format!("r-{i}"),
                sku: sku(i),
                quantity: 100_000_000,
            },
        );
    }
    let exporter = Exporter::start(
        ExporterConfig {
            store: store.clone(),
            batch_records: exporter::limits::BATCH_RECORDS_DEFAULT,
            // As shipped unless `NICE` says otherwise (0 = the submitters' priority).
            nice: std::env::var("NICE").map_or(exporter::limits::NICE_DEFAULT, |v| {
                v.parse().expect("NICE: a nice value 0..=19")
            }),
            // As shipped unless `INTERVAL_MS` says otherwise.
            batch_interval_millis: std::env::var("INTERVAL_MS")
                .map_or(exporter::limits::BATCH_INTERVAL_MILLIS_DEFAULT, |v| {
                    v.parse().expect("INTERVAL_MS: milliseconds")
                }),
        },
        engine.clone(),
        snapshotter.clone(),
    )
    .expect("start exporter");
    // Start from a caught-up store, so the figures are the steady state's.
    while exporter.export_lsn() < engine.stats().durable_lsn {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = exporter.stats();

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..SUBMITTERS)
        .map(|w| {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::spawn(move || submit(&engine, w, rate / SUBMITTERS as f64, &stop))
        })
        .collect();
    // (time a durable LSN was first seen, that LSN), ascending.
    let mut durable_seen: Vec<(Instant, u64)> = Vec::new();
    let mut lags = Vec::new();
    let run_for = Duration::from_secs(seconds);
    while started.elapsed() < run_for {
        std::thread::sleep(Duration::from_millis(SAMPLE_MILLIS));
        let now = Instant::now();
        let durable = engine.stats().durable_lsn;
        if durable_seen.last().is_none_or(|(_, l)| *l < durable) {
            durable_seen.push((now, durable));
        }
        let exported = exporter.export_lsn();
        let lag = if exported >= durable {
            Duration::ZERO
        } else {
            // The first sample at which record exported+1 was durable.
            let i = durable_seen.partition_point(|(_, l)| *l <= exported);
            now - durable_seen[i].0
        };
        lags.push(lag);
    }
    stop.store(true, Ordering::Relaxed);
    let ops: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    let offered_for = started.elapsed();
    let target = engine.stats().durable_lsn;
    while exporter.export_lsn() < target {
        std::thread::sleep(Duration::from_millis(1));
    }
    let drained_after = started.elapsed() - offered_for;
    let after = exporter.stats();
    let elapsed = started.elapsed();
    lags.sort();
    let rows = after.rows_total - before.rows_total;
    println!(
        "store {}: {ops} ops in {offered_for:.2?} = {:.0} ops/s offered+durable",
        match store {
            StoreConfig::DuckDb { .. } => "duckdb",
            StoreConfig::Postgres { .. } => "postgres",
        },
        ops as f64 / offered_for.as_secs_f64()
    );
    println!(
        "exported {} records, {rows} rows in {:?} batches: {:.0} rows/s, {:.0} records/s",
        after.records_total - before.records_total,
        after.batches_total - before.batches_total,
        rows as f64 / elapsed.as_secs_f64(),
        (after.records_total - before.records_total) as f64 / elapsed.as_secs_f64()
    );
    println!(
        "lag over {} samples: median {:?}, p99 {:?}, max {:?}; drained {drained_after:.2?} after the load stopped",
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or_default()
    );
    exporter.stop();
    engine.shutdown();
}
