//! Durable throughput with async submitters (as the gRPC handlers are: tasks awaiting the
//! durability watermark, not blocked threads):
//! `cargo run --release -p benches --example durable -- TASKS OPS_PER_TASK [SKUS]`.
//! Each task alternates reserve and release on a random SKU, each op awaited until durable
//! (WAL + fdatasync); prints ops/s, ack latency percentiles and records per fsync.
//! `SYNC=none` in the environment skips the fsync (the CPU ceiling of the same path);
//! `WORKERS=n` sets the runtime's worker threads (default 2, the cores of the development
//! machine); `GROUP_COMMIT_DELAY_MICROS=n` overrides the WAL's busy-log delay (0: none).

use benches::{durable_async_ops, engine_with_stock, runtime};
use engine::SyncMode;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("number"))
        .collect();
    let (tasks, ops_per_task) = (args[0], args[1] as u64);
    let skus = args.get(2).copied().unwrap_or(10_000);
    let sync = match std::env::var("SYNC").as_deref() {
        Ok("none") => SyncMode::None,
        _ => SyncMode::Fsync,
    };
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_stock(dir.path(), sync, engine::engine::default_shards(), skus);
    let runtime = runtime(workers);
    let before = engine.stats();
    let (elapsed, mut latencies) =
        durable_async_ops(&engine, &runtime, tasks, ops_per_task, skus, 0);
    let after = engine.stats();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let records = after.records_written - before.records_written;
    let fsyncs = after.fsyncs - before.fsyncs;
    let fsync_micros =
        (after.fsync_nanos_total - before.fsync_nanos_total) as f64 / fsyncs.max(1) as f64 / 1e3;
    println!(
        "{tasks} tasks, {skus} SKUs: {} durable ops in {elapsed:.2?} = {:.0} ops/s; ack p50 {:?} p99 {:?} max {:?}; \
         {:.1} records/fsync, {fsyncs} fsyncs of {fsync_micros:.0} µs on average",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1],
        records as f64 / fsyncs.max(1) as f64
    );
}
