//! What an order costs in memory: `cargo run --release -p benches --example order_memory -- N`.
//! Creates N open (PENDING, 2-line) orders, then pays, ships and delivers them (closed orders
//! are kept for the order retention window), printing the resident-set growth per order.

use benches::{engine_with_stock, sku};
use engine::{Line, Op, OpOutput, SyncMode};

/// Resident set size in bytes (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("number"))
        .unwrap_or(200_000);
    let skus = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_stock(
        dir.path(),
        SyncMode::Off,
        engine::engine::default_shards(),
        skus,
    );
    engine
        .execute(Op::UpsertCustomer {
            customer_id: "customer-1".into(),
            name: "A customer".into(),
            email: "customer@example.com".into(),
            phone: String::new(),
            address: String::new(),
            notify_email: true,
            notify_sms: false,
        })
        .expect("customer");
    let before = rss_bytes();
    let mut totals = Vec::with_capacity(n);
    for i in 0..n {
        let op = Op::CreateOrder {
            order_id: format!("order-{i:09}"),
            customer_id: "customer-1".into(),
            lines: vec![
                Line::new(sku(i % skus), 1),
                Line::new(sku((i + 1) % skus), 2),
            ],
            shipping_address: "1 Main Street, Springfield".into(),
            payment_timeout_seconds: 0,
        };
        let Ok(OpOutput::Order(order)) = engine.execute(op) else {
            panic!("order {i}");
        };
        totals.push(order.totals.total_cents);
    }
    let open = rss_bytes();
    for (i, total) in totals.iter().enumerate() {
        let id = format!("order-{i:09}");
        for op in [
            Op::ConfirmPayment {
                order_id: id.clone(),
                payment_id: format!("pay-{i}"),
                amount_cents: *total,
            },
            Op::ShipOrder {
                order_id: id.clone(),
                carrier: "UPS".into(),
                tracking_number: format!("1Z{i:012}"),
            },
            Op::DeliverOrder { order_id: id },
        ] {
            engine.execute(op).expect("transition");
        }
    }
    let closed = rss_bytes();
    println!(
        "{n} open orders (2 lines, with their holds): {:.0} bytes each; after pay+ship+deliver: {:.0} bytes each",
        (open - before) as f64 / n as f64,
        (closed - before) as f64 / n as f64
    );
}
