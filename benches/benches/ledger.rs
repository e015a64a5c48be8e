//! Ledger throughput: reserve+release pairs in process (WAL off), and durable ops with fsync
//! from many concurrent submitters — blocked threads, and async tasks as the server's are
//! (with p99 ack latency printed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use benches::{Submitters, XorShift, engine_with_stock, release, reserve, sku};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::engine::default_shards;
use engine::{Engine, SyncMode};

static RUN: AtomicU64 = AtomicU64::new(0);

/// Ids stay unique across samples on one engine.
fn next_run() -> u64 {
    RUN.fetch_add(1, Ordering::Relaxed)
}

fn in_process(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_off");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    let dir = tempfile::tempdir().expect("tempdir");
    let hot = engine_with_stock(&dir.path().join("hot"), SyncMode::Off, default_shards(), 1);
    let one = Submitters::new(&hot, 1, 1);
    group.bench_function("reserve_release_pair/hot_sku_1_thread", |b| {
        b.iter_custom(|iters| one.run(iters, next_run()))
    });
    // Its thread ends here. The next bench's threads free what it allocated, and mimalloc
    // takes a page's frees from other threads back into use when the page's owner allocates
    // again, or when the owner exits and its heap is adopted — not while it sits idle.
    drop(one);
    let two = Submitters::new(&hot, 2, 1);
    group.bench_function("reserve_release_pair/hot_sku_2_threads", |b| {
        b.iter_custom(|iters| two.run(iters, next_run()))
    });
    drop(two);
    let spread = engine_with_stock(
        &dir.path().join("spread"),
        SyncMode::Off,
        default_shards(),
        100_000,
    );
    let spread_two = Submitters::new(&spread, 2, 100_000);
    group.bench_function("reserve_release_pair/uniform_100k_skus_2_threads", |b| {
        b.iter_custom(|iters| spread_two.run(iters, next_run()))
    });
    group.finish();
}

/// The durable benchmarks' group (few long samples: every op waits for an fsync) and engine.
fn durable_setup(
    c: &mut Criterion,
) -> (
    criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    tempfile::TempDir,
    Arc<Engine>,
) {
    let mut group = c.benchmark_group("wal_fsync");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_stock(dir.path(), SyncMode::Fsync, default_shards(), 10_000);
    (group, dir, engine)
}

fn durable(c: &mut Criterion) {
    let (mut group, _dir, engine) = durable_setup(c);
    const SUBMITTERS: usize = 128;
    let latencies = Arc::new(parking_latencies::Latencies::default());
    group.bench_function(format!("reserve_or_release/{SUBMITTERS}_submitters"), |b| {
        b.iter_custom(|iters| {
            let run = RUN.fetch_add(1, Ordering::Relaxed);
            let per_thread = iters.div_ceil(SUBMITTERS as u64 * 2).max(1);
            let started = Instant::now();
            let handles: Vec<_> = (0..SUBMITTERS)
                .map(|t| {
                    let engine = engine.clone();
                    let latencies = latencies.clone();
                    std::thread::spawn(move || {
                        let mut rng = XorShift(0x51ed + t as u64);
                        let mut mine = Vec::with_capacity(per_thread as usize * 2);
                        for i in 0..per_thread {
                            let id = format!("{run}-{t}-{i}");
                            let op_started = Instant::now();
                            engine
                                .execute(reserve(id.clone(), sku(rng.next_below(10_000))))
                                .expect("reserve");
                            mine.push(op_started.elapsed());
                            let op_started = Instant::now();
                            engine.execute(release(id)).expect("release");
                            mine.push(op_started.elapsed());
                        }
                        latencies.extend(mine);
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("thread");
            }
            // Elapsed per op: criterion divides by iters, we ran per_thread × 2 × SUBMITTERS.
            let ran = per_thread * 2 * SUBMITTERS as u64;
            started.elapsed().mul_f64(iters as f64 / ran as f64)
        })
    });
    group.finish();
    let stats = engine.stats();
    latencies.report(stats.records_written, stats.fsyncs);
}

mod parking_latencies {
    use std::sync::Mutex;
    use std::time::Duration;

    #[derive(Default)]
    pub struct Latencies(Mutex<Vec<Duration>>);

    impl Latencies {
        pub fn extend(&self, more: Vec<Duration>) {
            self.0.lock().expect("lock").extend(more);
        }
        pub fn report(&self, records: u64, fsyncs: u64) {
            let mut all = self.0.lock().expect("lock").clone();
            all.sort();
            if all.is_empty() {
                return;
            }
            let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
            println!(
                "durable ack latency over {} ops: p50 {:?} p99 {:?} max {:?}; {} records in {} fsyncs ({:.1} records/fsync)",
                all.len(),
                pct(0.50),
                pct(0.99),
                all[all.len() - 1],
                records,
                fsyncs,
                records as f64 / fsyncs.max(1) as f64
            );
        }
    }
}

/// The same durable ops from async tasks, as the server submits them (one task per client
/// request in flight).
fn durable_async(c: &mut Criterion) {
    let (mut group, _dir, engine) = durable_setup(c);
    let runtime = benches::runtime(2);
    const TASKS: usize = 512;
    let latencies = Arc::new(parking_latencies::Latencies::default());
    group.bench_function(format!("reserve_or_release/{TASKS}_async_tasks"), |b| {
        b.iter_custom(|iters| {
            let run = RUN.fetch_add(1, Ordering::Relaxed);
            let per_task = iters.div_ceil(TASKS as u64).max(2);
            let (elapsed, mine) =
                benches::durable_async_ops(&engine, &runtime, TASKS, per_task, 10_000, run);
            let ran = mine.len() as u64;
            latencies.extend(mine);
            elapsed.mul_f64(iters as f64 / ran as f64)
        })
    });
    group.finish();
    let stats = engine.stats();
    latencies.report(stats.records_written, stats.fsyncs);
}

criterion_group!(benches, in_process, durable, durable_async);
criterion_main!(benches);
