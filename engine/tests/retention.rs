//! The count bound of id retention: the oldest ended ids are forgotten first, a forgotten id
//! is a new op, a retained one is still idempotent, and an id reused after it was forgotten is
//! not forgotten again by its old end (the retention queue names entities by table slot, and
//! slots are reused); and restore from a snapshot that holds one id twice.

mod common;

use std::sync::Arc;

use common::{config, open, product, receive, release, reserve};
use engine::snapshot::{OrderSnap, ReservationSnap};
use engine::{
    Clock, Engine, EngineConfig, EngineError, ManualClock, ReservationState, SnapshotData, SyncMode,
};

#[test]
fn the_oldest_ended_ids_are_forgotten_beyond_the_count_and_slots_are_reused_safely() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000));
    let mut cfg = config(dir.path(), 1, SyncMode::None);
    cfg.id_retention_count = 3;
    let engine = open(cfg.clone(), clock.clone());
    let run = |op| engine.execute(op);
    run(product("A")).expect("product");
    // Ended objects, oldest first: r1, h1, h2, h3, h4 — the count keeps h2, h3, h4.
    run(receive("r1", "A", 100)).expect("receive");
    for h in ["h1", "h2", "h3", "h4"] {
        run(reserve(h, &[("A", 1)], 60)).expect("reserve");
        clock.advance_ms(1);
        run(release(h)).expect("release");
    }
    let retained = run(reserve("h4", &[("A", 2)], 60));
    assert!(
        matches!(retained, Err(EngineError::AlreadyExists(_))),
        "h4 is retained: {retained:?}"
    );
    assert!(engine.get_reservation("h2").is_ok(), "h2 is retained");
    assert!(engine.get_reservation("h1").is_err(), "h1 was forgotten");
    // Forgotten ids are new ops (the receipt adds stock again).
    run(receive("r1", "A", 5)).expect("a forgotten receipt id is new");
    assert_eq!(engine.get_stock("A").expect("stock").on_hand, 105);
    run(reserve("h1", &[("A", 2)], 60)).expect("a forgotten hold id is new");
    // More ends push out h2, h3, h4 and the new r1 — and must leave the live h1 alone, whatever
    // slots the forgotten ones had.
    for h in ["h5", "h6", "h7", "h8"] {
        run(reserve(h, &[("A", 1)], 60)).expect("reserve");
        clock.advance_ms(1);
        run(release(h)).expect("release");
    }
    for h in ["h2", "h3", "h4"] {
        assert!(engine.get_reservation(h).is_err(), "{h} was forgotten");
    }
    let h1 = engine.get_reservation("h1").expect("the live h1 is kept");
    assert_eq!(h1.state, ReservationState::Active);
    assert_eq!(engine.get_stock("A").expect("stock").reserved, 2);
    run(release("h1")).expect("release h1");
    engine.check_invariants().expect("invariants");
    // Replay forgets the same ids at the same records (the count bound is per shard, so the
    // replay keeps the shard count and the bound).
    let live = engine.dump();
    assert_eq!(live.reservations.len(), 3, "h1, h7, h8 remain: {live:?}");
    engine.shutdown();
    drop(engine);
    let replayed = open(cfg, clock);
    assert_eq!(
        replayed.dump(),
        live,
        "replay forgets what the live engine forgot"
    );
    replayed
        .check_invariants()
        .expect("invariants after replay");
}

/// A fuzzy snapshot can hold one id twice: a hold that ended, was forgotten and had its id
/// reused while the cut ran. Restore keeps the newer copy and indexes it once — one live hold,
/// one deadline, and the hold still expires.
#[test]
fn a_snapshot_holding_an_id_twice_restores_the_newer_copy_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, clock, engine) = stocked(dir.path());
    engine
        .execute(reserve("h1", &[("A", 2)], 60))
        .expect("reserve");
    let (data, _) = engine.cut_snapshot().expect("cut");
    let live = data
        .reservations
        .iter()
        .find(|r| r.reservation_id == "h1")
        .cloned()
        .expect("h1 in the snapshot");
    // The earlier incarnation of h1: released, with an older stamp.
    let mut earlier = live.clone();
    earlier.state = ReservationState::Released;
    earlier.ended_at_ms = Some(900);
    earlier.created_lsn = 1;
    earlier.expires_at_ms = 500;
    earlier.stamp = 1 << 16;
    let place = |data: &mut SnapshotData, copies: [ReservationSnap; 2]| {
        data.reservations.retain(|r| r.reservation_id != "h1");
        data.reservations.extend(copies);
    };
    restore_both_orders(&cfg, &clock, &data, [earlier, live], place, |restored| {
        assert_eq!(restored.stats().active_reservations, 1, "one live hold");
        assert_eq!(
            restored.get_reservation("h1").expect("h1").state,
            ReservationState::Active,
            "the newer copy is kept"
        );
        restored.check_invariants().expect("invariants");
        clock.advance_ms(60_000);
        assert_eq!(
            restored.expire_due(clock.now_ms()),
            1,
            "the hold expires once"
        );
        assert_eq!(restored.stats().active_reservations, 0);
        assert_eq!(restored.get_stock("A").expect("stock").reserved, 0);
        assert_eq!(
            restored.expire_due(clock.now_ms()),
            0,
            "no deadline is left behind"
        );
        restored
            .check_invariants()
            .expect("invariants after expiry");
        clock.set_ms(1_000);
    });
}

/// The same for an order id a fuzzy cut held twice (closed, forgotten and reused while the cut
/// ran): the newer copy is kept and counted once as open.
#[test]
fn a_snapshot_holding_an_order_id_twice_restores_the_newer_copy_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, clock, engine) = stocked(dir.path());
    engine
        .execute(engine::Op::UpsertCustomer {
            customer_id: "c1".into(),
            name: "someone".into(),
            email: "c1@example.com".into(),
            phone: String::new(),
            address: String::new(),
            notify_email: false,
            notify_sms: false,
        })
        .expect("customer");
    engine
        .execute(engine::Op::CreateOrder {
            order_id: "o1".into(),
            customer_id: "c1".into(),
            lines: vec![engine::Line::new("A", 1)],
            shipping_address: String::new(),
            payment_timeout_seconds: 600,
        })
        .expect("order");
    let (data, _) = engine.cut_snapshot().expect("cut");
    let live = data
        .orders
        .iter()
        .find(|o| o.order.order_id == "o1")
        .cloned()
        .expect("o1 in the snapshot");
    let mut earlier = live.clone();
    earlier.order.status = engine::OrderStatus::Delivered;
    earlier.closed_at_ms = Some(900);
    earlier.stamp = 1 << 16;
    let place = |data: &mut SnapshotData, copies: [OrderSnap; 2]| {
        data.orders.retain(|o| o.order.order_id != "o1");
        data.orders.extend(copies);
    };
    restore_both_orders(&cfg, &clock, &data, [earlier, live], place, |restored| {
        assert_eq!(restored.stats().open_orders, 1, "one open order");
        assert_eq!(
            restored.get_order("o1").expect("o1").status,
            engine::OrderStatus::Pending,
            "the newer copy is kept"
        );
        restored.check_invariants().expect("invariants");
    });
}

/// A memory-only engine (2 shards, manual clock at 1,000 ms) with product A and 10 received:
/// the starting point of the duplicate-id restore tests.
fn stocked(dir: &std::path::Path) -> (EngineConfig, Arc<ManualClock>, Arc<Engine>) {
    let clock = Arc::new(ManualClock::new(1_000));
    let cfg = config(dir, 2, SyncMode::Off);
    let engine = open(cfg.clone(), clock.clone());
    engine.execute(product("A")).expect("product");
    engine.execute(receive("r1", "A", 10)).expect("receive");
    (cfg, clock, engine)
}

/// Restores `data` with two copies of one object placed (by `place`) in both orders — the
/// older first, then the newer first — and runs `check` on each restored engine.
fn restore_both_orders<T: Clone>(
    cfg: &EngineConfig,
    clock: &Arc<ManualClock>,
    data: &SnapshotData,
    [older, newer]: [T; 2],
    place: impl Fn(&mut SnapshotData, [T; 2]),
    check: impl Fn(&Engine),
) {
    for copies in [[older.clone(), newer.clone()], [newer, older]] {
        let mut data = data.clone();
        place(&mut data, copies);
        let (restored, _) = Engine::open_from(
            cfg.clone(),
            Arc::new(engine::wal::fs::StdFs),
            clock.clone(),
            Some(data),
        )
        .expect("restore");
        check(&restored);
    }
}
