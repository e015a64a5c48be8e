//! Durable throughput with async submitters (as the gRPC handlers are: tasks awaiting the
//! durability watermark, not blocked threads):
//! `cargo run --release -p benches --example durable -- TASKS SECONDS [SKUS]`.
//! Each task loops reserve → release on a random SKU, each op awaited until durable (WAL +
//! fdatasync); prints ops/s, ack latency percentiles and records per fsync.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use benches::{XorShift, engine_with_stock, numbered, release, reserve, sku};
use engine::SyncMode;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("number"))
        .collect();
    let (tasks, seconds) = (args[0], args[1] as u64);
    let skus = args.get(2).copied().unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_stock(
        dir.path(),
        SyncMode::Fsync,
        engine::engine::default_shards(),
        skus,
    );
    let names: Arc<Vec<String>> = Arc::new((0..skus).map(sku).collect());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let before = engine.stats();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut latencies: Vec<Duration> = runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (engine, names, stop) = (engine.clone(), names.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut rng = XorShift(0x51ed + t as u64);
                    let prefix = format!("{t}-");
                    let mut mine = Vec::new();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let id = numbered(&prefix, i);
                        i += 1;
                        let s = names[rng.next_below(names.len())].clone();
                        let op_started = Instant::now();
                        engine
                            .execute_async(reserve(id.clone(), s))
                            .await
                            .expect("reserve");
                        mine.push(op_started.elapsed());
                        let op_started = Instant::now();
                        engine.execute_async(release(id)).await.expect("release");
                        mine.push(op_started.elapsed());
                    }
                    mine
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.expect("task"));
        }
        all
    });
    let elapsed = started.elapsed();
    let after = engine.stats();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let records = after.records_written - before.records_written;
    let fsyncs = after.fsyncs - before.fsyncs;
    println!(
        "{tasks} tasks, {skus} SKUs: {} durable ops in {elapsed:.2?} = {:.0} ops/s; ack p50 {:?} p99 {:?} max {:?}; {:.1} records/fsync",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1],
        records as f64 / fsyncs.max(1) as f64
    );
}
