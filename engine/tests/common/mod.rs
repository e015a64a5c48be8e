//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use engine::wal::fs::{Fs, StdFs};
use engine::{Clock, Engine, EngineConfig, Line, Op, SyncMode};

pub fn config(dir: &Path, shards: usize, sync: SyncMode) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.shards = shards;
    config.wal.sync = sync;
    config.expiry_sweeper = false;
    config
}

pub fn open(config: EngineConfig, clock: Arc<dyn Clock>) -> Arc<Engine> {
    open_fs(config, Arc::new(StdFs), clock)
}

pub fn open_fs(config: EngineConfig, fs: Arc<dyn Fs>, clock: Arc<dyn Clock>) -> Arc<Engine> {
    Engine::open(config, fs, clock).expect("engine opens").0
}

pub fn product(sku: &str) -> Op {
    Op::UpsertProduct {
        sku: sku.into(),
        name: format!("product {sku}"),
        unit_price_cents: 100,
        reorder_level: 0,
        reorder_quantity: 0,
    }
}

pub fn receive(id: &str, sku: &str, quantity: u32) -> Op {
    Op::Receive {
        receipt_id: id.into(),
        sku: sku.into(),
        quantity,
    }
}

pub fn reserve(id: &str, lines: &[(&str, u32)], ttl_seconds: u32) -> Op {
    Op::Reserve {
        reservation_id: id.into(),
        lines: lines.iter().map(|(s, q)| Line::new(*s, *q)).collect(),
        ttl_seconds,
    }
}

pub fn commit(id: &str) -> Op {
    Op::Commit {
        reservation_id: id.into(),
        lines: vec![],
    }
}

pub fn release(id: &str) -> Op {
    Op::Release {
        reservation_id: id.into(),
    }
}

/// Shuts `engine` down, replays its WAL with another shard count (every precondition checked)
/// and asserts the result is exactly the live state, invariants included.
pub fn assert_replays_exactly(engine: Arc<Engine>, dir: &Path, clock: Arc<dyn Clock>) {
    let live = engine.dump();
    let stats = engine.stats();
    engine.shutdown();
    drop(engine);
    let (replayed, report) = Engine::open(config(dir, 3, SyncMode::None), Arc::new(StdFs), clock)
        .expect("replay with every precondition checked");
    assert_eq!(report.records_replayed, stats.last_lsn);
    assert_eq!(
        replayed.dump(),
        live,
        "replayed state differs from the live state"
    );
    replayed
        .check_invariants()
        .expect("invariants after replay");
}
