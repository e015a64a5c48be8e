//! Snapshots at scale: 1M SKUs + 1M live holds — the cut's writer pause and the full write
//! time — and a restart from that snapshot plus a 100k-record WAL tail (target ≤ 2 s).

use std::sync::Arc;
use std::time::Duration;

use benches::{engine_with_stock, reserve, reserve_release_pairs, sku};
use criterion::{Criterion, criterion_group, criterion_main};
use engine::engine::default_shards;
use engine::{EngineConfig, SyncMode, SystemClock};
use snapshotter::{SnapshotterConfig, open_engine};

const SKUS: usize = 1_000_000;
const HOLDS: usize = 1_000_000;
const TAIL: usize = 100_000;

fn snapshot(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_stock(dir.path(), SyncMode::None, default_shards(), SKUS);
    for i in 0..HOLDS {
        engine
            .submit(reserve(format!("hold-{i}"), sku(i % SKUS)))
            .result
            .expect("hold");
    }
    let mut snap_config = SnapshotterConfig::new(dir.path());
    snap_config.keep = 2;
    let snapshots = snapshotter::Snapshotter::new(snap_config.clone(), dir.path());
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    let mut pauses = Vec::new();
    group.bench_function("take_1m_skus_1m_holds", |b| {
        b.iter(|| {
            let info = snapshots.take(&engine).expect("take");
            pauses.push(info.pause_max);
            info.bytes
        })
    });
    pauses.sort();
    if let Some(max) = pauses.last() {
        println!(
            "writer pause per shard during the cut: median {:?}, max {:?} over {} snapshots",
            pauses[pauses.len() / 2],
            max,
            pauses.len()
        );
    }
    // The WAL tail after the newest snapshot: reserve/release pairs.
    reserve_release_pairs(&engine, 1, (TAIL / 2) as u64, SKUS, 1);
    engine
        .wait_durable(engine.stats().last_lsn)
        .expect("durable");
    engine.shutdown();
    drop(engine);
    group.bench_function("restart_snapshot_plus_100k_tail", |b| {
        b.iter_with_large_drop(|| {
            let mut config = EngineConfig::new(dir.path());
            config.wal.sync = SyncMode::None;
            config.expiry_sweeper = false;
            let (engine, snapshots, report) = open_engine(
                config,
                snap_config.clone(),
                Arc::new(engine::wal::fs::StdFs),
                Arc::new(SystemClock),
            )
            .expect("open");
            assert!(report.snapshot.used.is_some());
            assert!(report.wal.records_replayed as usize >= TAIL);
            (engine, snapshots)
        })
    });
    group.finish();
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
