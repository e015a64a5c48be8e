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
use engine::{EngineError, ManualClock, ReservationState, SyncMode};

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

#[test]
fn a_hold_homed_in_another_shard_stops_counting_at_its_deadline_for_a_write_on_its_sku() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(0));
    let engine = open(config(dir.path(), SHARDS, SyncMode::None), clock.clone());
    engine.execute(product("A")).expect("product");
    engine.execute(receive("r1", "A", 5)).expect("receive");
    let holds = ids_homed_away_from("A", "h", 6);
    let takers = ids_homed_away_from("A", "t", 6);
    for (hold, taker) in holds.iter().zip(&takers) {
        engine
            .execute(reserve(hold, &[("A", 5)], 1))
            .expect("reserve all");
        clock.advance_ms(999);
        let early = engine.execute(reserve(taker, &[("A", 1)], 1));
        assert!(
            is_short_of_stock(&early),
            "{hold} still counts 1 ms before its deadline: {early:?}"
        );
        clock.advance_ms(1);
        engine
            .execute(reserve(taker, &[("A", 5)], 1))
            .unwrap_or_else(|e| panic!("{hold} is due: its stock is free for {taker}: {e}"));
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
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(0));
    let engine = open(config(dir.path(), SHARDS, SyncMode::None), clock.clone());
    engine.execute(product("A")).expect("product");
    engine.execute(receive("r1", "A", 10)).expect("receive");
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
    clock.set_ms(59_999);
    let short = engine.execute(reserve("x", &[("A", 10)], 60));
    assert!(
        is_short_of_stock(&short),
        "late counts until 60 s: {short:?}"
    );
    clock.set_ms(60_000);
    engine
        .execute(reserve("x", &[("A", 10)], 60))
        .expect("late is due at 60 s");
    engine.check_invariants().expect("invariants");
}

#[test]
fn holds_falling_due_one_after_another_each_stop_counting_at_their_own_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(0));
    let engine = open(config(dir.path(), SHARDS, SyncMode::None), clock.clone());
    engine.execute(product("A")).expect("product");
    engine.execute(receive("r1", "A", 4)).expect("receive");
    // Deadlines 1, 2, 3 and 4 s, one unit each: all 4 units held.
    let holds = ids_homed_away_from("A", "h", 4);
    for (i, hold) in holds.iter().enumerate() {
        engine
            .execute(reserve(hold, &[("A", 1)], i as u32 + 1))
            .expect("reserve");
    }
    for (i, hold) in holds.iter().enumerate() {
        let deadline_ms = (i as u64 + 1) * 1_000;
        clock.set_ms(deadline_ms - 1);
        let taker = format!("t{i}");
        let short = engine.execute(reserve(&taker, &[("A", 1)], 60));
        assert!(
            is_short_of_stock(&short),
            "{hold} counts until {deadline_ms} ms: {short:?}"
        );
        clock.set_ms(deadline_ms);
        engine
            .execute(reserve(&taker, &[("A", 1)], 60))
            .unwrap_or_else(|e| panic!("{hold} is due at {deadline_ms} ms: {e}"));
        // The taker keeps its unit: every unit stays held by someone.
    }
    engine.check_invariants().expect("invariants");
}

#[test]
fn after_a_restart_a_hold_that_fell_due_meanwhile_is_expired_by_the_next_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(0));
    let hold = ids_homed_away_from("A", "h", 1).remove(0);
    {
        let engine = open(config(dir.path(), SHARDS, SyncMode::Fsync), clock.clone());
        engine.execute(product("A")).expect("product");
        engine.execute(receive("r1", "A", 3)).expect("receive");
        engine
            .execute(reserve(&hold, &[("A", 3)], 10))
            .expect("reserve");
        engine.shutdown();
    }
    let engine = open(config(dir.path(), SHARDS, SyncMode::Fsync), clock.clone());
    clock.set_ms(9_999);
    let short = engine.execute(reserve("t", &[("A", 1)], 60));
    assert!(is_short_of_stock(&short), "replayed hold counts: {short:?}");
    clock.set_ms(10_000);
    engine
        .execute(reserve("t", &[("A", 3)], 60))
        .expect("the replayed hold is due at 10 s");
    assert_eq!(
        engine.get_reservation(&hold).expect("remembered").state,
        ReservationState::Expired
    );
    engine.check_invariants().expect("invariants");
}
