//! Concurrency: many threads try hard to oversell; an invariant checker runs alongside; the
//! WAL written under contention replays to exactly the live state (rule 3).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use engine::{EngineError, OpOutput, SyncMode, SystemClock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn hot_sku_is_never_oversold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = common::open(
        common::config(dir.path(), 4, SyncMode::Fsync),
        Arc::new(SystemClock),
    );
    const STOCK: u32 = 1000;
    engine.execute(common::product("HOT")).expect("product");
    engine
        .execute(common::receive("r", "HOT", STOCK))
        .expect("receive");

    let held = Arc::new(AtomicU64::new(0));
    let committed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let engine = engine.clone();
            let held = held.clone();
            let committed = committed.clone();
            std::thread::spawn(move || {
                let mut refusals = 0;
                for i in 0..200 {
                    let id = format!("t{t}-{i}");
                    let qty = 1 + (i % 3) as u32;
                    match engine.execute(common::reserve(&id, &[("HOT", qty)], 600)) {
                        Ok(_) => {
                            if i % 2 == 0 {
                                engine
                                    .execute(common::commit(&id))
                                    .expect("commit own hold");
                                committed.fetch_add(u64::from(qty), Ordering::SeqCst);
                            } else {
                                held.fetch_add(u64::from(qty), Ordering::SeqCst);
                            }
                        }
                        Err(EngineError::FailedPrecondition(msg)) => {
                            assert!(msg.contains("HOT"), "message names the SKU: {msg}");
                            refusals += 1;
                        }
                        Err(other) => panic!("unexpected error {other:?}"),
                    }
                }
                refusals
            })
        })
        .collect();
    let refusals: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    let level = engine.get_stock("HOT").expect("stock");
    let (held, committed) = (
        held.load(Ordering::SeqCst),
        committed.load(Ordering::SeqCst),
    );
    assert!(refusals > 0, "the run must actually run out of stock");
    assert_eq!(
        level.reserved, held,
        "reserved equals the holds acknowledged"
    );
    assert_eq!(level.on_hand, u64::from(STOCK) - committed);
    assert!(
        held + committed <= u64::from(STOCK),
        "oversold: {held} held + {committed} sold > {STOCK}"
    );
    // Every unit went somewhere: demand (16×200 reservations) far exceeds the stock.
    assert_eq!(level.available, u64::from(STOCK) - held - committed);
    assert!(
        level.available < 3,
        "stock left over although demand was unmet: {level:?}"
    );
    engine.check_invariants().expect("invariants");
}

/// Random mixed ops over 1,000 SKUs from 8 threads, with multi-SKU holds spanning shards,
/// an invariant checker running alongside, then a replay of the WAL compared with the live
/// state.
#[test]
fn mixed_workload_keeps_invariants_and_replays_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    println!("seed {seed}");
    let engine = common::open(
        common::config(dir.path(), 8, SyncMode::None),
        Arc::new(SystemClock),
    );
    const SKUS: usize = 1000;
    for i in 0..SKUS {
        engine
            .execute(common::product(&format!("S{i}")))
            .expect("product");
        engine
            .execute(common::receive(&format!("init{i}"), &format!("S{i}"), 20))
            .expect("receive");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let engine = engine.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut checks = 0u64;
            while !stop.load(Ordering::SeqCst) {
                engine
                    .check_invariants()
                    .expect("invariant broken during load");
                for i in (0..SKUS).step_by(97) {
                    let level = engine.get_stock(&format!("S{i}")).expect("stock");
                    assert!(
                        level.reserved <= level.on_hand,
                        "published figures broken: {level:?}"
                    );
                }
                checks += 1;
            }
            checks
        })
    };
    let workers: Vec<_> = (0..8u64)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed ^ t);
                let mut mine: Vec<String> = Vec::new();
                for i in 0..3000 {
                    let sku = |rng: &mut StdRng| format!("S{}", rng.random_range(0..SKUS));
                    match rng.random_range(0..10) {
                        0..=3 => {
                            let n = rng.random_range(1..=4);
                            let mut lines: Vec<(String, u32)> = Vec::new();
                            while lines.len() < n {
                                let s = sku(&mut rng);
                                if !lines.iter().any(|(x, _)| *x == s) {
                                    lines.push((s, rng.random_range(1..=5)));
                                }
                            }
                            let lines: Vec<(&str, u32)> =
                                lines.iter().map(|(s, q)| (s.as_str(), *q)).collect();
                            let id = format!("h{t}-{i}");
                            if engine.execute(common::reserve(&id, &lines, 600)).is_ok() {
                                mine.push(id);
                            }
                        }
                        4..=5 if !mine.is_empty() => {
                            let id = mine.swap_remove(rng.random_range(0..mine.len()));
                            engine.execute(common::commit(&id)).expect("commit");
                        }
                        6 if !mine.is_empty() => {
                            let id = mine.swap_remove(rng.random_range(0..mine.len()));
                            engine.execute(common::release(&id)).expect("release");
                        }
                        7 => {
                            let s = sku(&mut rng);
                            engine
                                .execute(common::receive(
                                    &format!("r{t}-{i}"),
                                    &s,
                                    rng.random_range(1..=10),
                                ))
                                .expect("receive");
                        }
                        8 => {
                            let s = sku(&mut rng);
                            let current = engine.get_stock(&s).expect("stock");
                            let target =
                                current.on_hand.saturating_sub(rng.random_range(0..3)) as u32;
                            let op = engine::Op::Adjust {
                                adjustment_id: format!("a{t}-{i}"),
                                sku: s,
                                on_hand: target,
                                reason: "count".into(),
                            };
                            match engine.execute(op) {
                                Ok(OpOutput::Stock(_))
                                | Err(EngineError::FailedPrecondition(_)) => {}
                                other => panic!("adjust: {other:?}"),
                            }
                        }
                        _ => {
                            let s = sku(&mut rng);
                            engine.get_stock(&s).expect("stock");
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    stop.store(true, Ordering::SeqCst);
    let checks = checker.join().expect("checker");
    assert!(checks > 0, "the checker ran");
    engine.check_invariants().expect("invariants at the end");

    common::assert_replays_exactly(engine, dir.path(), Arc::new(SystemClock));
}
