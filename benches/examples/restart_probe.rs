//! Times the phases of a restart from a 1M SKU + 1M hold snapshot:
//! `cargo run --release -p benches --example restart_probe -- SHARDS`.

use std::sync::Arc;
use std::time::Instant;

use benches::{engine_with_stock, reserve, sku};
use engine::{Engine, EngineConfig, SyncMode, SystemClock};
use snapshotter::{Snapshotter, SnapshotterConfig};

fn main() {
    let shards: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("shards"))
        .unwrap_or(16);
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_stock(dir.path(), SyncMode::None, shards, 1_000_000);
    for i in 0..1_000_000 {
        engine
            .submit(reserve(format!("hold-{i}"), sku(i)))
            .result
            .expect("hold");
    }
    let snapshots = Snapshotter::new(SnapshotterConfig::new(dir.path()), dir.path());
    let started = Instant::now();
    let info = snapshots.take(&engine).expect("take");
    println!(
        "take {:?} (pause max {:?})",
        started.elapsed(),
        info.pause_max
    );
    engine.shutdown();
    drop(engine);
    for _ in 0..2 {
        let started = Instant::now();
        let (data, _) = snapshots.load_newest();
        let loaded = started.elapsed();
        let mut config = EngineConfig::new(dir.path());
        config.shards = shards;
        config.wal.sync = SyncMode::None;
        config.expiry_sweeper = false;
        let opened = Instant::now();
        let (engine, _) = Engine::open_from(
            config,
            Arc::new(engine::wal::fs::StdFs),
            Arc::new(SystemClock),
            data,
        )
        .expect("open");
        println!(
            "{shards} shards: load {loaded:?}, restore + replay {:?}",
            opened.elapsed()
        );
        let dropped = Instant::now();
        drop(engine);
        println!("drop {:?}", dropped.elapsed());
    }
}
