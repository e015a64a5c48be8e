//! Quick throughput probe outside criterion: `cargo run --release -p benches --example pairs -- THREADS SKUS PAIRS [SHARDS]`.
use std::time::Instant;

use benches::{engine_with_stock, release, reserve, sku};
use engine::SyncMode;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("number"))
        .collect();
    let (threads, skus, pairs) = (args[0], args[1], args[2]);
    let shards = args
        .get(3)
        .copied()
        .unwrap_or_else(engine::engine::default_shards);
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_stock(dir.path(), SyncMode::Off, shards, skus);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut rng = benches::XorShift(0x9e37_79b9 + t as u64);
                for i in 0..pairs / threads {
                    let id = format!("{t}-{i}");
                    let s = sku(if skus == 1 { 0 } else { rng.next_below(skus) });
                    engine
                        .submit(reserve(id.clone(), s))
                        .result
                        .expect("reserve");
                    engine.submit(release(id)).result.expect("release");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let elapsed = started.elapsed();
    println!(
        "{threads} threads, {skus} SKUs: {pairs} pairs in {elapsed:?} = {:.0} pairs/s",
        pairs as f64 / elapsed.as_secs_f64()
    );
}
