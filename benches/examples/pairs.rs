//! Quick throughput probe outside criterion:
//! `cargo run --release -p benches --example pairs -- THREADS SKUS PAIRS [SHARDS]`.

use benches::{engine_with_stock, reserve_release_pairs};
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
    let elapsed = reserve_release_pairs(&engine, threads, pairs as u64, skus, 0);
    println!(
        "{threads} threads, {skus} SKUs, {shards} shards: {pairs} pairs in {elapsed:?} = {:.0} pairs/s",
        pairs as f64 / elapsed.as_secs_f64()
    );
}
