//! Expiry seen by writes, with no sweeper and no reads in between (reads expire due holds
//! themselves, which would hide what an op does): an op expires every due hold before it
//! decides, whichever shard the hold lives in. The engine finds them through one engine-wide
//! lower bound of all deadlines (`Engine::submit`, step 3), raised only with every shard
//! locked — these tests pin what that bound must never get wrong: a hold homed in another
//! shard than its SKU's, a bound left low by a hold released early, holds falling due one
//! after another, and the bound after a restart.

mod common;

use std::sync::Arc;

use common::{config, open, product, receive, release, reserve};
use engine::ledger::shard::Router;
use engine::{Clock, Engine, EngineError, ManualClock, ReservationState, SyncMode};

const SHARDS: usize = 16;

/// `count` hold ids whose home shard is not the shard of `sku`.
fn ids_homed_away_from(sku: &str, prefix: &str, count: usize) -> Vec<String> {
    let router = Router::new(SHARDS);
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|id| router.of(id) != router.of(sku))
        .take(count)
        .collect()
}

fn is_short_of_stock(result: &Result<engine::OpOutput, EngineError>) -> bool {
    matches!(result, Err(EngineError::FailedPrecondition(m)) if m.contains("insufficient stock"))
}

/// An engine in `dir` on `clock` (no sweeper) with SKU "A" and `units` of it in stock.
fn engine_with_a(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    sync: SyncMode,
    units: u32,
) -> Arc<Engine> {
    let engine = open(config(dir, SHARDS, sync), clock.clone());
    engine.execute(product("A")).expect("product");
    engine.execute(receive("r1", "A", units)).expect("receive");
    engine
}

/// A fresh engine ([`engine_with_a`], no WAL) in a new directory, its clock at 0.
fn fresh_with_a(units: u32) -> (tempfile::TempDir, Arc<ManualClock>, Arc<Engine>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(0));
    let engine = engine_with_a(dir.path(), &clock, SyncMode::None, units);
    (dir, clock, engine)
}

/// Asserts that what `what` holds of A counts until `deadline_ms` and is free from then on: 1 ms
/// before, `taker` cannot reserve `short` units; at the deadline it reserves `free` units (and
/// keeps them).
fn assert_held_until(
    engine: &Engine,
    clock: &ManualClock,
    deadline_ms: u64,
    taker: &str,
    (short, free): (u32, u32),
    what: &str,
) {
    clock.set_ms(deadline_ms - 1);
    let early = engine.execute(reserve(taker, &[("A", short)], 60));
    assert!(
        is_short_of_stock(&early),
        "{what} counts until {deadline_ms} ms: {early:?}"
    );
    clock.set_ms(deadline_ms);
    engine
        .execute(reserve(taker, &[("A", free)], 60))
        .unwrap_or_else(|e| panic!("{what} is due at {deadline_ms} ms, free for {taker}: {e}"));
}

#[test]
fn a_hold_homed_in_another_shard_stops_counting_at_its_deadline_for_a_write_on_its_sku() {
    let (_dir, clock, engine) = fresh_with_a(5);
    let holds = ids_homed_away_from("A", "h", 6);
    let takers = ids_homed_away_from("A", "t", 6);
    for (hold, taker) in holds.iter().zip(&takers) {
        engine
            .execute(reserve(hold, &[("A", 5)], 1))
            .expect("reserve all");
        assert_held_until(&engine, &clock, clock.now_ms() + 1_000, taker, (1, 5), hold);
        let expired = engine
            .get_reservation(hold)
            .expect("the hold is remembered");
        assert_eq!(expired.state, ReservationState::Expired, "{hold}");
        engine.execute(release(taker)).expect("release");
    }
    engine.check_invariants().expect("invariants");
}

#[test]
fn a_bound_left_low_by_a_hold_released_early_neither_blocks_nor_fails_writes() {
    let (_dir, clock, engine) = fresh_with_a(10);
    // The earliest deadline ever set (1 s), released at once: the bound stays at 1 s.
    engine
        .execute(reserve("early", &[("A", 1)], 1))
        .expect("reserve");
    engine.execute(release("early")).expect("release");
    engine
        .execute(reserve("late", &[("A", 9)], 60))
        .expect("reserve");
    // Past the stale bound, with nothing due: writes go on, and count the live hold.
    clock.advance_ms(5_000);
    for i in 0..5 {
        let id = format!("w{i}");
        let short = engine.execute(reserve(&id, &[("A", 2)], 60));
        assert!(is_short_of_stock(&short), "late still holds 9: {short:?}");
        engine
            .execute(reserve(&id, &[("A", 1)], 60))
            .expect("the one unit left");
        engine.execute(release(&id)).expect("release");
    }
    // And the live hold still expires exactly at its own deadline.
    assert_held_until(&engine, &clock, 60_000, "x", (10, 10), "late");
    engine.check_invariants().expect("invariants");
}

#[test]
fn holds_falling_due_one_after_another_each_stop_counting_at_their_own_deadline() {
    let (_dir, clock, engine) = fresh_with_a(4);
    // Deadlines 1, 2, 3 and 4 s, one unit each: all 4 units held.
    let holds = ids_homed_away_from("A", "h", 4);
    for (i, hold) in holds.iter().enumerate() {
        engine
            .execute(reserve(hold, &[("A", 1)], i as u32 + 1))
            .expect("reserve");
    }
    // Each taker keeps its unit: every unit stays held by someone.
    for (i, hold) in holds.iter().enumerate() {
        let deadline_ms = (i as u64 + 1) * 1_000;
        assert_held_until(&engine, &clock, deadline_ms, &format!("t{i}"), (1, 1), hold);
    }
    engine.check_invariants().expect("invariants");
}

#[test]
fn after_a_restart_a_hold_that_fell_due_meanwhile_is_expired_by_the_next_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(0));
    let hold = ids_homed_away_from("A", "h", 1).remove(0);
    {
        let engine = engine_with_a(dir.path(), &clock, SyncMode::Fsync, 3);
        engine
            .execute(reserve(&hold, &[("A", 3)], 10))
            .expect("reserve");
        engine.shutdown();
    }
    let engine = open(config(dir.path(), SHARDS, SyncMode::Fsync), clock.clone());
    assert_held_until(&engine, &clock, 10_000, "t", (1, 3), "the replayed hold");
    assert_eq!(
        engine.get_reservation(&hold).expect("remembered").state,
        ReservationState::Expired
    );
    engine.check_invariants().expect("invariants");
}
