//! Snapshots: consistent under concurrent load, fallback past a damaged file, kill -9 while a
//! snapshot is being written, idempotent retries across a restart, bounded WAL disk use, and
//! consumers that hold WAL back up to a cap.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use engine::wal::fs::StdFs;
use engine::{
    Engine, EngineConfig, EngineError, Line, Op, OpOutput, ReservationState, SyncMode, SystemClock,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use snapshotter::{Snapshotter, SnapshotterConfig, open_engine};

fn configs(dir: &Path) -> (EngineConfig, SnapshotterConfig) {
    let mut engine = EngineConfig::new(dir);
    engine.shards = 4;
    engine.expiry_sweeper = false;
    engine.wal.segment_bytes = 64 * 1024;
    let snapshots = SnapshotterConfig::new(dir);
    (engine, snapshots)
}

fn open(dir: &Path) -> (Arc<Engine>, Arc<Snapshotter>, snapshotter::OpenReport) {
    let (engine, snapshots) = configs(dir);
    open_engine(engine, snapshots, Arc::new(StdFs), Arc::new(SystemClock)).expect("open")
}

fn seed(engine: &Engine, skus: usize) {
    for i in 0..skus {
        engine
            .execute(Op::UpsertProduct {
                sku: format!("S{i}"),
                name: format!("product {i}"),
                unit_price_cents: 100,
                reorder_level: 3,
                reorder_quantity: 10,
            })
            .expect("product");
        engine
            .execute(Op::Receive {
                receipt_id: format!("seed{i}"),
                sku: format!("S{i}"),
                quantity: 50,
            })
            .expect("receive");
    }
}

/// Random ops from one worker — holds, receipts and whole order lifecycles (create, pay,
/// cancel, ship, deliver, return) — until `stop` is set.
fn work(engine: &Engine, t: u64, skus: usize, stop: &AtomicBool) {
    let mut rng = StdRng::seed_from_u64(t);
    let mut mine: Vec<String> = Vec::new();
    let customer = format!("c{t}");
    engine
        .execute(Op::UpsertCustomer {
            customer_id: customer.clone(),
            name: format!("customer {t}"),
            email: format!("c{t}@example.com"),
            phone: "+15550100".into(),
            address: "1 Main St".into(),
            notify_email: true,
            notify_sms: false,
        })
        .expect("customer");
    // (order id, total) of orders this worker created, by status.
    let (mut pending, mut paid, mut delivered) = (Vec::new(), Vec::new(), Vec::new());
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let sku = format!("S{}", rng.random_range(0..skus));
        let other = format!("S{}", rng.random_range(0..skus));
        match rng.random_range(0..11) {
            6 => {
                let mut lines = vec![Line::new(sku.clone(), rng.random_range(1..=3))];
                if other != sku {
                    lines.push(Line::new(other, 1));
                }
                let op = Op::CreateOrder {
                    order_id: format!("o{t}-{i}"),
                    customer_id: customer.clone(),
                    lines,
                    shipping_address: String::new(),
                    payment_timeout_seconds: 600,
                };
                if let Ok(OpOutput::Order(o)) = engine.execute(op) {
                    pending.push((o.order_id, o.totals.total_cents));
                }
            }
            7 if !pending.is_empty() => {
                let (id, total) = pending.swap_remove(0);
                engine
                    .execute(Op::ConfirmPayment {
                        order_id: id.clone(),
                        payment_id: format!("p-{id}"),
                        amount_cents: total,
                    })
                    .expect("pay");
                paid.push((id, total));
            }
            8 if !pending.is_empty() || !paid.is_empty() => {
                let (id, _) = if rng.random_bool(0.5) && !paid.is_empty() {
                    paid.swap_remove(0)
                } else if !pending.is_empty() {
                    pending.swap_remove(0)
                } else {
                    paid.swap_remove(0)
                };
                engine
                    .execute(Op::CancelOrder {
                        order_id: id,
                        reason: String::new(),
                    })
                    .expect("cancel");
            }
            9 if !paid.is_empty() => {
                let (id, total) = paid.swap_remove(0);
                let ship = Op::ShipOrder {
                    order_id: id.clone(),
                    carrier: "UPS".into(),
                    tracking_number: format!("T-{id}"),
                };
                engine.execute(ship).expect("ship");
                engine
                    .execute(Op::DeliverOrder {
                        order_id: id.clone(),
                    })
                    .expect("deliver");
                delivered.push((id, total));
            }
            10 if !delivered.is_empty() => {
                let (id, total) = delivered.swap_remove(0);
                let Ok(OpOutput::Order(order)) = engine.execute(Op::DeliverOrder {
                    order_id: id.clone(),
                }) else {
                    panic!("delivered order {id} readable");
                };
                let line = &order.lines[0];
                engine
                    .execute(Op::RequestReturn {
                        return_id: format!("x-{id}"),
                        order_id: id.clone(),
                        lines: vec![Line::new(line.sku.clone(), line.quantity)],
                        reason: "damaged".into(),
                    })
                    .expect("request return");
                engine
                    .execute(Op::ApproveReturn {
                        return_id: format!("x-{id}"),
                        refund_cents: total / 2,
                        restock: rng.random_bool(0.5),
                    })
                    .expect("approve return");
            }
            0..=2 => {
                let mut lines = vec![Line::new(sku.clone(), rng.random_range(1..=3))];
                if other != sku {
                    lines.push(Line::new(other, 1));
                }
                let id = format!("h{t}-{i}");
                let op = Op::Reserve {
                    reservation_id: id.clone(),
                    lines: lines.into(),
                    ttl_seconds: 600,
                };
                if engine.execute(op).is_ok() {
                    mine.push(id);
                }
            }
            3 if !mine.is_empty() => {
                let id = mine.swap_remove(0);
                engine
                    .execute(Op::Commit {
                        reservation_id: id,
                        lines: vec![],
                    })
                    .expect("commit");
            }
            4 if !mine.is_empty() => {
                let id = mine.swap_remove(0);
                engine
                    .execute(Op::Release { reservation_id: id })
                    .expect("release");
            }
            _ => {
                engine
                    .execute(Op::Receive {
                        receipt_id: format!("r{t}-{i}"),
                        sku,
                        quantity: 2,
                    })
                    .expect("receive");
            }
        }
    }
}

#[test]
fn snapshot_under_concurrent_load_then_restart_is_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, snapshots, _) = open(dir.path());
    seed(&engine, 200);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::spawn(move || work(&engine, t, 200, &stop))
        })
        .collect();
    let mut taken = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(100));
        taken.push(snapshots.take(&engine).expect("snapshot under load"));
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker");
    }
    let live = engine.dump();
    let last_lsn = engine.stats().last_lsn;
    let paid = live.orders.values().filter(|o| o.paid_at_ms > 0).count();
    let delivered = live
        .orders
        .values()
        .filter(|o| o.delivered_at_ms > 0)
        .count();
    assert!(
        paid > 0 && delivered > 0 && !live.returns.is_empty() && !live.customers.is_empty(),
        "the load exercised the order lifecycle: {} orders, {paid} paid, {delivered} delivered, {} returns",
        live.orders.len(),
        live.returns.len()
    );
    assert!(
        taken.last().expect("taken").lsn < last_lsn,
        "records follow the last snapshot"
    );
    engine.shutdown();
    drop(engine);
    drop(snapshots);

    let (engine, _, report) = open(dir.path());
    assert!(report.snapshot.used.is_some(), "restart used a snapshot");
    assert!(report.wal.records_replayed > 0, "and replayed the WAL tail");
    assert!(
        report.wal.records_replayed < last_lsn,
        "only the tail was replayed: {} of {last_lsn}",
        report.wal.records_replayed
    );
    assert_eq!(
        engine.dump(),
        live,
        "restored state differs from the live state"
    );
    engine.check_invariants().expect("invariants");
    assert_eq!(engine.stats().last_lsn, last_lsn);
}

#[test]
fn damaged_newest_snapshot_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, snapshots, _) = open(dir.path());
    seed(&engine, 20);
    let first = snapshots.take(&engine).expect("first");
    engine
        .execute(Op::Reserve {
            reservation_id: "h1".into(),
            lines: vec![Line::new("S1", 5)].into(),
            ttl_seconds: 600,
        })
        .expect("reserve");
    let second = snapshots.take(&engine).expect("second");
    assert!(second.lsn > first.lsn);
    engine
        .execute(Op::Commit {
            reservation_id: "h1".into(),
            lines: vec![],
        })
        .expect("commit");
    let live = engine.dump();
    engine.shutdown();
    drop(engine);
    drop(snapshots);

    let mut bytes = std::fs::read(&second.path).expect("read");
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&second.path, &bytes).expect("damage");
    // A half-written temp file from an interrupted snapshot is ignored too.
    std::fs::write(second.path.with_extension("snap.tmp"), b"INVSNAP\npartial").expect("temp");

    let (engine, snapshots, report) = open(dir.path());
    assert_eq!(report.snapshot.used.as_deref(), Some(first.path.as_path()));
    assert_eq!(
        snapshots.snapshot_lsn(),
        first.lsn,
        "the snapshot in use is the newest now"
    );
    assert!(!second.path.exists(), "the damaged file is set aside");
    assert!(second.path.with_extension("snap.damaged").exists());
    assert_eq!(
        report.snapshot.skipped.len(),
        2,
        "{:?}",
        report.snapshot.skipped
    );
    assert_eq!(engine.dump(), live);
}

#[test]
fn idempotent_retry_after_restart_returns_the_current_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, snapshots, _) = open(dir.path());
    seed(&engine, 2);
    let reserve = Op::Reserve {
        reservation_id: "cart-1".into(),
        lines: vec![Line::new("S0", 2)].into(),
        ttl_seconds: 0,
    };
    engine.execute(reserve.clone()).expect("reserve");
    engine
        .execute(Op::Commit {
            reservation_id: "cart-1".into(),
            lines: vec![],
        })
        .expect("commit");
    snapshots.take(&engine).expect("snapshot");
    engine.shutdown();
    drop(engine);
    drop(snapshots);

    let (engine, _, report) = open(dir.path());
    assert!(report.snapshot.used.is_some());
    assert_eq!(
        report.wal.records_replayed, 0,
        "everything came from the snapshot"
    );
    let retried = engine.execute(reserve).expect("retry succeeds");
    let OpOutput::Reservation(r) = retried else {
        panic!("reservation expected")
    };
    assert_eq!(r.state, ReservationState::Committed);
    assert_eq!(
        engine.get_stock("S0").expect("stock").on_hand,
        48,
        "no second deduction"
    );
    let different = engine.execute(Op::Reserve {
        reservation_id: "cart-1".into(),
        lines: vec![Line::new("S0", 3)].into(),
        ttl_seconds: 0,
    });
    assert!(matches!(different, Err(EngineError::AlreadyExists(_))));
}

#[test]
fn wal_disk_use_stays_bounded_with_periodic_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut engine_config, mut snapshot_config) = configs(dir.path());
    engine_config.wal.sync = SyncMode::None;
    snapshot_config.every_records = 2_000;
    snapshot_config.every_seconds = 3600;
    snapshot_config.tick_millis = 10;
    let (engine, snapshots, _) = open_engine(
        engine_config,
        snapshot_config,
        Arc::new(StdFs),
        Arc::new(SystemClock),
    )
    .expect("open");
    snapshots.spawn_periodic(engine.clone());
    seed(&engine, 50);
    // Peak WAL bytes on disk in the first and the second half of the run: under steady load
    // the second half writes as much again, but what is kept on disk must not grow with it.
    let mut peaks = [0u64; 2];
    for round in 0..60 {
        for i in 0..1000 {
            let id = format!("h{round}-{i}");
            engine
                .execute(Op::Reserve {
                    reservation_id: id.clone(),
                    lines: vec![Line::new(format!("S{}", i % 50), 1)].into(),
                    ttl_seconds: 600,
                })
                .expect("reserve");
            engine
                .execute(Op::Release { reservation_id: id })
                .expect("release");
        }
        // Steady load, not a burst: let the periodic snapshotter catch up with each round
        // (it snapshots every 2,000 records; wait for that, with a deadline against hangs, so
        // the figures do not depend on how the machine schedules its thread).
        let wanted = engine.stats().last_lsn.saturating_sub(2_000);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while snapshots.snapshot_lsn() < wanted && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let half = round / 30;
        peaks[half] = peaks[half].max(engine.stats().wal_bytes);
    }
    snapshots.stop();
    let written_bytes = engine.stats().records_written * 90;
    assert!(
        snapshots.snapshot_lsn() > 0,
        "periodic snapshots were taken"
    );
    println!(
        "WAL peak bytes: first half {}, second half {}; ~{written_bytes} written",
        peaks[0], peaks[1]
    );
    let slack = 2 * 64 * 1024;
    assert!(
        peaks[1] <= peaks[0] + slack,
        "WAL on disk grows with the run: {peaks:?}"
    );
    assert!(
        peaks[1] * 4 < written_bytes,
        "WAL kept {} of ~{written_bytes} bytes written",
        peaks[1]
    );
    let snapshot_files = std::fs::read_dir(dir.path().join("snapshots"))
        .expect("dir")
        .count();
    assert!(
        snapshot_files <= 2,
        "only the last 2 snapshots are kept: {snapshot_files}"
    );
}

#[test]
fn consumers_hold_wal_back_up_to_the_cap_then_are_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut engine_config, mut snapshot_config) = configs(dir.path());
    engine_config.wal.sync = SyncMode::None;
    snapshot_config.consumer_retained_bytes_max = 100_000;
    let (engine, snapshots, _) = open_engine(
        engine_config,
        snapshot_config,
        Arc::new(StdFs),
        Arc::new(SystemClock),
    )
    .expect("open");
    seed(&engine, 10);
    snapshots
        .register_consumer("exporter", 0)
        .expect("register");
    snapshots
        .register_consumer("notifier", 0)
        .expect("register");
    let mut round = 0;
    let mut write = |n: usize| {
        round += 1;
        for i in 0..n {
            engine
                .execute(Op::Receive {
                    receipt_id: format!("r{round}-{i}"),
                    sku: format!("S{}", i % 10),
                    quantity: 1,
                })
                .expect("receive");
        }
    };
    write(1000);
    snapshots.take(&engine).expect("snapshot");
    snapshots.take(&engine).expect("snapshot");
    // Both consumers are at 0: the WAL from LSN 1 is still there for them.
    assert_eq!(engine.wal().expect("wal").oldest_lsn(), 1);
    // The notifier keeps up; the exporter is stuck.
    write(4000);
    snapshots.take(&engine).expect("snapshot");
    write(10);
    snapshots.advance_consumer("notifier", engine.stats().last_lsn);
    snapshots.take(&engine).expect("snapshot");
    let exporter = snapshots.consumer("exporter").expect("known");
    assert!(
        exporter.dropped,
        "the stuck consumer is dropped past the cap"
    );
    assert!(!snapshots.consumer("notifier").expect("known").dropped);
    assert!(
        engine.wal().expect("wal").oldest_lsn() > 1,
        "its WAL is no longer kept"
    );
    // Its state survives a restart of the snapshotter (persisted).
    drop(snapshots);
    let again = Snapshotter::new(SnapshotterConfig::new(dir.path()), dir.path());
    assert!(again.consumer("exporter").expect("persisted").dropped);
    // A rebuilt consumer rejoins at the snapshot it rebuilt from.
    again
        .rejoin_consumer("exporter", again.snapshot_lsn())
        .expect("rejoin");
    assert!(!again.consumer("exporter").expect("known").dropped);
}

/// Child side of the kill -9 test: load plus back-to-back snapshots, acks on stdout.
#[test]
fn snapshot_crash_child() {
    let Some(dir) = std::env::var_os("SNAP_CHILD_DIR") else {
        return;
    };
    let round: u64 = std::env::var("SNAP_ROUND")
        .expect("round")
        .parse()
        .expect("number");
    let (engine, snapshots, _) = open(Path::new(&dir));
    if round == 0 {
        seed(&engine, 50);
    }
    engine
        .execute(Op::UpsertCustomer {
            customer_id: "c".into(),
            name: "crash customer".into(),
            email: "c@example.com".into(),
            phone: String::new(),
            address: String::new(),
            notify_email: false,
            notify_sms: false,
        })
        .expect("customer");
    println!("\nready");
    let snapper = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            loop {
                snapshots.take(&engine).expect("snapshot");
            }
        })
    };
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(round * 10 + t);
                for i in 0.. {
                    let id = format!("h{round}-{t}-{i}");
                    let op = Op::Reserve {
                        reservation_id: id.clone(),
                        lines: vec![Line::new(format!("S{}", rng.random_range(0..50)), 1)].into(),
                        ttl_seconds: 600,
                    };
                    if engine.execute(op).is_ok() {
                        println!("ack reserve {id}");
                        let commit = Op::Commit {
                            reservation_id: id.clone(),
                            lines: vec![],
                        };
                        engine.execute(commit).expect("commit");
                        println!("ack commit {id}");
                    }
                    // Every third round trip places and pays an order as well.
                    if i % 3 != 0 {
                        continue;
                    }
                    let order_id = format!("o{round}-{t}-{i}");
                    let create = Op::CreateOrder {
                        order_id: order_id.clone(),
                        customer_id: "c".into(),
                        lines: vec![Line::new(format!("S{}", rng.random_range(0..50)), 1)],
                        shipping_address: String::new(),
                        payment_timeout_seconds: 600,
                    };
                    if let Ok(OpOutput::Order(order)) = engine.execute(create) {
                        println!("ack order {order_id}");
                        let pay = Op::ConfirmPayment {
                            order_id: order_id.clone(),
                            payment_id: format!("p-{order_id}"),
                            amount_cents: order.totals.total_cents,
                        };
                        engine.execute(pay).expect("pay");
                        println!("ack paid {order_id}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    snapper.join().expect("snapper");
}

#[test]
fn kill_9_while_snapshotting_recovers_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = StdRng::seed_from_u64(7);
    let mut acked: Vec<(String, String)> = Vec::new();
    for round in 0..8u64 {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args([
                "--exact",
                "snapshot_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SNAP_CHILD_DIR", dir.path())
            .env("SNAP_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "ready" {
                    let _ = ready_tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        let ready = ready_rx.recv_timeout(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(rng.random_range(100..600)));
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        let lines = reader.join().expect("reader");
        assert!(ready.is_ok(), "round {round}: child never became ready");
        for line in lines {
            if let Some((kind, id)) = line.strip_prefix("ack ").and_then(|r| r.split_once(' ')) {
                acked.push((kind.to_string(), id.to_string()));
            }
        }
        let (engine, _, report) = open(dir.path());
        let dump = engine.dump();
        for (kind, id) in &acked {
            let state = dump.reservations.get(id).map(|r| r.state);
            let order = dump.orders.get(id).map(|o| o.status);
            match kind.as_str() {
                "reserve" => assert!(state.is_some(), "round {round}: acked hold {id} lost"),
                "order" => assert!(order.is_some(), "round {round}: acked order {id} lost"),
                "paid" => assert_eq!(
                    order,
                    Some(engine::OrderStatus::Paid),
                    "round {round}: payment of {id} lost"
                ),
                _ => assert_eq!(
                    state,
                    Some(ReservationState::Committed),
                    "round {round}: commit {id} lost"
                ),
            }
        }
        engine
            .check_invariants()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // Units are conserved: 50 received per SKU = on hand + sold.
        for s in 0..50 {
            let sku = format!("S{s}");
            let on_hand = dump.products[&sku].4;
            let sold: u64 = dump
                .reservations
                .values()
                .filter(|r| r.state == ReservationState::Committed)
                .flat_map(|r| &r.committed_lines)
                .filter(|l| l.sku == sku)
                .map(|l| u64::from(l.quantity))
                .sum();
            assert_eq!(on_hand + sold, 50, "round {round}: {sku} does not add up");
        }
        if round > 0 {
            assert!(report.snapshot.used.is_some() || !report.snapshot.skipped.is_empty());
        }
    }
    assert!(acked.len() > 50, "load was acknowledged: {}", acked.len());
    let paid = acked.iter().filter(|(kind, _)| kind == "paid").count();
    assert!(paid > 10, "orders were paid under the kills: {paid}");
}
