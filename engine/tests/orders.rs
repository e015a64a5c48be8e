//! Orders under contention: workers create, pay, fail, cancel, ship, deliver and return orders
//! on a small catalogue with little stock while a clock thread makes payment deadlines pass and
//! an invariant checker runs alongside. At the end every unit is accounted for from what the
//! workers were told, and the WAL replays (with another shard count) to exactly the live state.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::{Engine, EngineError, Line, ManualClock, Op, OpOutput, OrderStatus, SyncMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SKUS: usize = 12;
const STOCK: u32 = 40;

/// Units per SKU a worker saw leave (paid orders) and come back (restocks).
#[derive(Default)]
struct Tally {
    sold: BTreeMap<String, i64>,
    restocked: BTreeMap<String, i64>,
    paid: u64,
    timed_out_refusals: u64,
}

fn add(map: &mut BTreeMap<String, i64>, lines: impl IntoIterator<Item = (String, u32)>) {
    for (sku, q) in lines {
        *map.entry(sku).or_default() += i64::from(q);
    }
}

fn worker(engine: &Engine, t: u64, seed: u64) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed ^ t);
    let mut tally = Tally::default();
    let customer = format!("c{t}");
    engine
        .execute(Op::UpsertCustomer {
            customer_id: customer.clone(),
            name: "someone".into(),
            email: format!("{customer}@example.com"),
            phone: String::new(),
            address: String::new(),
            notify_email: true,
            notify_sms: false,
        })
        .expect("customer");
    let mut orders: Vec<engine::Order> = Vec::new();
    for i in 0..2000 {
        let pick = rng.random_range(0..10);
        if pick < 4 || orders.is_empty() {
            let a = rng.random_range(0..SKUS);
            let b = rng.random_range(0..SKUS);
            let mut lines = vec![Line::new(format!("S{a}"), rng.random_range(1..=4))];
            if a != b {
                lines.push(Line::new(format!("S{b}"), rng.random_range(1..=2)));
            }
            let op = Op::CreateOrder {
                order_id: format!("o{t}-{i}"),
                customer_id: customer.clone(),
                lines,
                shipping_address: String::new(),
                payment_timeout_seconds: rng.random_range(1..=3),
            };
            match engine.execute(op) {
                Ok(OpOutput::Order(o)) => orders.push(o),
                Err(EngineError::FailedPrecondition(m)) => assert!(m.contains("insufficient")),
                other => panic!("create: {other:?}"),
            }
            continue;
        }
        let at = rng.random_range(0..orders.len());
        let o = orders[at].clone();
        let lines = || o.lines.iter().map(|l| (l.sku.clone(), l.quantity));
        let result = match (o.status, pick) {
            (OrderStatus::Pending, 4..=6) => engine.execute(Op::ConfirmPayment {
                order_id: o.order_id.clone(),
                payment_id: format!("p-{}", o.order_id),
                amount_cents: o.totals.total_cents,
            }),
            (OrderStatus::Pending, 7) => engine.execute(Op::FailPayment {
                order_id: o.order_id.clone(),
                payment_id: format!("f-{}", o.order_id),
                reason: "declined".into(),
            }),
            (OrderStatus::Pending | OrderStatus::Paid, 8) => engine.execute(Op::CancelOrder {
                order_id: o.order_id.clone(),
                reason: String::new(),
            }),
            (OrderStatus::Paid, _) => engine.execute(Op::ShipOrder {
                order_id: o.order_id.clone(),
                carrier: "UPS".into(),
                tracking_number: "T".into(),
            }),
            (OrderStatus::Shipped, _) => engine.execute(Op::DeliverOrder {
                order_id: o.order_id.clone(),
            }),
            (OrderStatus::Delivered, _) => {
                let first = &o.lines[0];
                let return_id = format!("x-{}", o.order_id);
                engine
                    .execute(Op::RequestReturn {
                        return_id: return_id.clone(),
                        order_id: o.order_id.clone(),
                        lines: vec![Line::new(first.sku.clone(), first.quantity)],
                        reason: String::new(),
                    })
                    .expect("request return");
                let restock = rng.random_bool(0.5);
                engine
                    .execute(Op::ApproveReturn {
                        return_id,
                        refund_cents: 1,
                        restock,
                    })
                    .expect("approve return");
                if restock {
                    add(&mut tally.restocked, [(first.sku.clone(), first.quantity)]);
                }
                orders.swap_remove(at);
                continue;
            }
            _ => {
                orders.swap_remove(at);
                continue;
            }
        };
        match result {
            Ok(OpOutput::Order(after)) => {
                match (o.status, after.status) {
                    (OrderStatus::Pending, OrderStatus::Paid) => {
                        tally.paid += 1;
                        add(&mut tally.sold, lines());
                    }
                    (OrderStatus::Paid, OrderStatus::Cancelled) => {
                        assert_eq!(after.refund_due_cents, o.totals.total_cents);
                        add(&mut tally.restocked, lines());
                    }
                    (before, now) => assert_ne!(before, now, "a transition happened"),
                }
                orders[at] = after;
            }
            // The payment deadline passed first: the order was cancelled by the timeout.
            Err(EngineError::FailedPrecondition(m)) if o.status == OrderStatus::Pending => {
                assert!(m.contains("CANCELLED"), "{m}");
                let now = engine.get_order(&o.order_id).expect("order");
                assert_eq!(now.cancel_reason, "payment_timeout");
                tally.timed_out_refusals += 1;
                orders.swap_remove(at);
            }
            other => panic!("{} on {:?}: {other:?}", pick, o.status),
        }
    }
    tally
}

#[test]
fn orders_under_contention_account_for_every_unit_and_replay_exactly() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed}");
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let engine = common::open(
        common::config(dir.path(), 8, SyncMode::None),
        Arc::new(clock.clone()),
    );
    for i in 0..SKUS {
        let op = Op::UpsertProduct {
            sku: format!("S{i}"),
            name: format!("product {i}"),
            unit_price_cents: 100 + 250 * i as i64,
            reorder_level: 10,
            reorder_quantity: 30,
        };
        engine.execute(op).expect("product");
        engine
            .execute(common::receive(
                &format!("init{i}"),
                &format!("S{i}"),
                STOCK,
            ))
            .expect("receive");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (engine, stop, clock) = (engine.clone(), stop.clone(), clock.clone());
        std::thread::spawn(move || {
            let mut checks = 0u64;
            while !stop.load(Ordering::SeqCst) {
                // 250 ms of server time per pass: deadlines of 1–3 s pass during the run.
                clock.advance_ms(250);
                engine.expire_due(engine::Clock::now_ms(&clock));
                engine
                    .check_invariants()
                    .expect("invariant broken during load");
                checks += 1;
                std::thread::yield_now();
            }
            checks
        })
    };
    let workers: Vec<_> = (0..6u64)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || worker(&engine, t, seed))
        })
        .collect();
    let tallies: Vec<Tally> = workers
        .into_iter()
        .map(|w| w.join().expect("worker"))
        .collect();
    stop.store(true, Ordering::SeqCst);
    assert!(background.join().expect("checker") > 0, "the checker ran");
    engine.check_invariants().expect("invariants at the end");

    let paid: u64 = tallies.iter().map(|t| t.paid).sum();
    assert!(paid > 0, "some orders were paid");
    let timeouts: u64 = tallies.iter().map(|t| t.timed_out_refusals).sum();
    println!("paid {paid}, refused after a timeout {timeouts}");
    for i in 0..SKUS {
        let sku = format!("S{i}");
        let sold: i64 = tallies.iter().filter_map(|t| t.sold.get(&sku)).sum();
        let back: i64 = tallies.iter().filter_map(|t| t.restocked.get(&sku)).sum();
        let level = engine.get_stock(&sku).expect("stock");
        assert_eq!(
            level.on_hand as i64,
            i64::from(STOCK) - sold + back,
            "{sku}: on_hand is what was received, minus acknowledged sales, plus restocks"
        );
    }
    // Customers' figures agree with their orders; deadlines did pass during the run.
    let dump = engine.dump();
    let timed_out = dump
        .orders
        .values()
        .filter(|o| o.cancel_reason == "payment_timeout")
        .count();
    println!("cancelled by the payment timeout: {timed_out}");
    assert!(timed_out > 0, "some payment deadlines passed under load");
    for (id, c) in &dump.customers {
        let created = dump
            .orders
            .values()
            .filter(|o| o.customer_id == *id)
            .count();
        assert_eq!(c.order_count as usize, created, "{id}: order count");
    }

    common::assert_replays_exactly(engine, dir.path(), Arc::new(clock));
}
