//! Recovery: replay of 1M WAL records (the target is ≤ 1 s).

use std::sync::Arc;
use std::time::Duration;

use benches::{engine_with_stock, reserve_release_pairs};
use criterion::{Criterion, criterion_group, criterion_main};
use engine::{Engine, EngineConfig, SyncMode, SystemClock};

const RECORDS: usize = 1_000_000;

fn replay(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // 1,000 SKUs seeded (2,000 records), then reserve/release pairs up to 1M records.
        let engine = engine_with_stock(dir.path(), SyncMode::None, 2, 1000);
        let pairs = (RECORDS - 2000) / 2;
        reserve_release_pairs(&engine, 1, pairs as u64, 1000, 0);
        engine
            .wait_durable(engine.stats().last_lsn)
            .expect("durable");
        engine.shutdown();
    }
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("replay_1m_records", |b| {
        b.iter_with_large_drop(|| {
            let mut config = EngineConfig::new(dir.path());
            config.wal.sync = SyncMode::None;
            config.expiry_sweeper = false;
            let (engine, report) = Engine::open(
                config,
                Arc::new(engine::wal::fs::StdFs),
                Arc::new(SystemClock),
            )
            .expect("open");
            assert_eq!(report.records_replayed as usize, RECORDS);
            engine
        })
    });
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
