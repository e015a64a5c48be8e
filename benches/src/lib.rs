//! Shared set-up for the criterion benchmarks in `benches/` (see BENCHMARKS.md).

use std::path::Path;
use std::sync::Arc;

use engine::{Engine, EngineConfig, Line, Op, SyncMode, SystemClock};

/// The memory policy `inventoryd` ships with (`engine::memory`): transparent huge pages off,
/// unless `TRANSPARENT_HUGE_PAGES=true` asks to measure with them. Every bench reaches it
/// through [`engine_with_stock`] before its ledger grows (the flag governs later page faults).
pub fn memory_as_shipped() {
    let allowed = std::env::var("TRANSPARENT_HUGE_PAGES").is_ok_and(|v| v == "true");
    engine::memory::apply_transparent_huge_pages(allowed).expect("prctl(PR_SET_THP_DISABLE)");
}

/// An engine with `skus` products of ample stock, in a process under [`memory_as_shipped`].
pub fn engine_with_stock(dir: &Path, sync: SyncMode, shards: usize, skus: usize) -> Arc<Engine> {
    memory_as_shipped();
    let mut config = EngineConfig::new(dir);
    config.wal.sync = sync;
    config.shards = shards;
    // `GROUP_COMMIT_DELAY_MICROS=0` measures group commit without its busy-log delay.
    if let Some(delay) = std::env::var("GROUP_COMMIT_DELAY_MICROS")
        .ok()
        .and_then(|d| d.parse().ok())
    {
        config.wal.group_commit_delay_micros = delay;
    }
    // `PREALLOCATE_SEGMENTS=false` measures segments that grow by appends.
    if let Ok(preallocate) = std::env::var("PREALLOCATE_SEGMENTS") {
        config.wal.preallocate = preallocate != "false";
    }
    let engine = Engine::open(
        config,
        Arc::new(engine::wal::fs::StdFs),
        Arc::new(SystemClock),
    )
    .expect("open")
    .0;
    let ops: Vec<Op> = (0..skus)
        .flat_map(|i| {
            [
                Op::UpsertProduct {
                    sku: sku(i),
                    name: format!("product {i}"),
                    unit_price_cents: 100,
                    reorder_level: 0,
                    reorder_quantity: 0,
                },
                Op::Receive {
                    receipt_id: format!("seed-{i}"),
                    sku: sku(i),
                    quantity: 1_000_000_000,
                },
            ]
        })
        .collect();
    for op in ops {
        let submitted = engine.submit(op);
        submitted.result.expect("seed op");
    }
    engine
        .wait_durable(engine.stats().last_lsn)
        .expect("seed durable");
    engine
}

pub fn sku(i: usize) -> String {
    format!("SKU-{i:06}")
}

pub fn reserve(id: String, sku: String) -> Op {
    Op::Reserve {
        reservation_id: id,
        lines: vec![Line::new(sku, 1)].into(),
        ttl_seconds: 600,
    }
}

pub fn release(id: String) -> Op {
    Op::Release { reservation_id: id }
}

/// Runs `pairs` reserve+release pairs (WAL state as configured, no durability wait) split over
/// `threads` threads, on one SKU or uniformly over `skus`; returns the wall time. `run` keeps
/// ids unique across calls on one engine.
pub fn reserve_release_pairs(
    engine: &Arc<Engine>,
    threads: usize,
    pairs: u64,
    skus: usize,
    run: u64,
) -> std::time::Duration {
    Submitters::new(engine, threads, skus).run(pairs, run)
}

/// Submitting threads that live across runs, as the server's runtime workers do: criterion
/// hands every sample to the same threads, so a sample measures the ops — not starting
/// threads, nor the allocator abandoning each exited thread's heap and adopting its pages.
pub struct Submitters {
    jobs: Vec<std::sync::mpsc::Sender<(u64, u64)>>,
    done: std::sync::mpsc::Receiver<()>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Submitters {
    /// `threads` threads submitting reserve+release pairs on one SKU, or uniformly over `skus`.
    pub fn new(engine: &Arc<Engine>, threads: usize, skus: usize) -> Self {
        let names: Arc<Vec<String>> = Arc::new((0..skus).map(sku).collect());
        let (finished, done) = std::sync::mpsc::channel();
        let mut jobs = Vec::new();
        let handles = (0..threads)
            .map(|t| {
                let (job, next) = std::sync::mpsc::channel::<(u64, u64)>();
                jobs.push(job);
                let (engine, names, finished) = (engine.clone(), names.clone(), finished.clone());
                std::thread::spawn(move || {
                    let mut rng = XorShift(0x9e37_79b9 + t as u64);
                    while let Ok((pairs, run)) = next.recv() {
                        let prefix = format!("{run}-{t}-");
                        for i in 0..pairs {
                            let id = numbered(&prefix, i);
                            let s = names[if skus == 1 { 0 } else { rng.next_below(skus) }].clone();
                            engine
                                .submit(reserve(id.clone(), s))
                                .result
                                .expect("reserve");
                            engine.submit(release(id)).result.expect("release");
                        }
                        finished.send(()).expect("the run waits for every thread");
                    }
                })
            })
            .collect();
        Self {
            jobs,
            done,
            handles,
        }
    }

    /// Runs `pairs` pairs split over the threads; returns the wall time. `run` keeps ids
    /// unique across runs on one engine.
    pub fn run(&self, pairs: u64, run: u64) -> std::time::Duration {
        let per_thread = pairs.div_ceil(self.jobs.len() as u64);
        let started = std::time::Instant::now();
        for job in &self.jobs {
            job.send((per_thread, run)).expect("submitter thread");
        }
        for _ in &self.jobs {
            // A thread that died (a failed op panics) never reports: fail, do not hang.
            while self
                .done
                .recv_timeout(std::time::Duration::from_millis(100))
                .is_err()
            {
                assert!(
                    !self.handles.iter().any(|h| h.is_finished()),
                    "a submitter thread died"
                );
            }
        }
        started.elapsed()
    }
}

impl Drop for Submitters {
    fn drop(&mut self) {
        self.jobs.clear();
        for handle in self.handles.drain(..) {
            handle.join().expect("submitter thread");
        }
    }
}

/// `prefix` followed by `n` in decimal: a client's id, built without the formatting machinery
/// (which cost more than the engine's own key handling in the pairs loop).
pub fn numbered(prefix: &str, mut n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut id = String::with_capacity(prefix.len() + digits.len() - at);
    id.push_str(prefix);
    id.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
    id
}

/// Small deterministic generator (xorshift) so benches need no RNG crate.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The allocator the server ships with (see `server/src/bin/inventoryd.rs`), so figures are comparable.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs `ops_per_task` durable ops (alternately reserve and release of the hold just taken, on
/// a random one of `skus`) from each of `tasks` async tasks on `runtime` — the way the
/// server's handlers submit: tasks awaiting the durability watermark, not blocked threads.
/// Returns the wall time and every op's ack latency. `run` keeps ids unique across calls.
pub fn durable_async_ops(
    engine: &Arc<Engine>,
    runtime: &tokio::runtime::Runtime,
    tasks: usize,
    ops_per_task: u64,
    skus: usize,
    run: u64,
) -> (std::time::Duration, Vec<std::time::Duration>) {
    let names: Arc<Vec<String>> = Arc::new((0..skus).map(sku).collect());
    let started = std::time::Instant::now();
    let latencies = runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (engine, names) = (engine.clone(), names.clone());
                tokio::spawn(async move {
                    let mut rng = XorShift(0x51ed + t as u64);
                    let prefix = format!("a{run}-{t}-");
                    let mut mine = Vec::with_capacity(ops_per_task as usize);
                    for i in 0..ops_per_task.div_ceil(2) {
                        let id = numbered(&prefix, i);
                        let s = names[rng.next_below(names.len())].clone();
                        let op_started = std::time::Instant::now();
                        engine
                            .execute_async(reserve(id.clone(), s))
                            .await
                            .expect("reserve");
                        mine.push(op_started.elapsed());
                        let op_started = std::time::Instant::now();
                        engine.execute_async(release(id)).await.expect("release");
                        mine.push(op_started.elapsed());
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.expect("task"));
        }
        all
    });
    (started.elapsed(), latencies)
}

/// A runtime like the server's: `workers` threads (the development machine has 2 cores).
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}
