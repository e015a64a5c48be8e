//! `monthly_sales` over N order lines (default 10,000,000; 3 lines per order, a year of
//! delivered orders over 500 SKUs), on DuckDB and optionally PostgreSQL:
//!
//! ```sh
//! cargo build --release --workspace --examples && target/release/examples/report_bench [ROWS] [POSTGRES_URL]
//! ```
//!
//! The rows (orders, their lines, and the `sales` rows of their deliveries) are generated
//! inside the store (`range` / `generate_series`), not through the exporter: this measures the
//! report, not the load. Prints load time, then the best and the median of 5 runs of
//! `monthly_sales` (all time) for each store.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use exporter::{Reader, StoreConfig, reports};

const RUNS: usize = 5;

/// The `sales` rows the exporter writes at each delivery, from the generated orders.
const SALES: &str = "INSERT INTO sales (order_id, sku, quantity, unit_price_cents, delivered_at, delivered_month) \
     SELECT l.order_id, l.sku, l.quantity, l.unit_price_cents, o.delivered_at, date_trunc('month', o.delivered_at) \
     FROM order_lines l JOIN orders o ON o.order_id = l.order_id;";

fn time_report(reader: &dyn Reader) -> (Duration, Duration, usize) {
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        rows = reports::run(reader, "monthly_sales", &BTreeMap::new())
            .expect("monthly_sales")
            .rows
            .len();
        times.push(t.elapsed());
    }
    times.sort();
    (times[0], times[RUNS / 2], rows)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let lines: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let orders = lines / 3;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.duckdb");
    {
        let (_, _) = exporter::store::open(&StoreConfig::DuckDb { path: path.clone() })
            .expect("create tables");
    }
    let started = Instant::now();
    {
        let conn = duckdb::Connection::open(&path).expect("open");
        conn.execute_batch(&format!(
            "INSERT INTO orders (order_id, customer_id, status, created_at, paid_at, shipped_at, delivered_at, \
             subtotal_cents, discount_cents, tax_cents, shipping_cents, total_cents, refunded_cents, stamp) \
             SELECT 'o' || i, 'c' || (i % 10000), 'DELIVERED', t, t, t, t + INTERVAL 2 DAY, 3000, 0, 0, 0, 3000, 0, i \
             FROM (SELECT i, TIMESTAMP '2025-01-01' + to_seconds(i * 31536000 // {orders}) AS t FROM range({orders}) r(i)); \
             INSERT INTO order_lines (order_id, sku, quantity, unit_price_cents) \
             SELECT 'o' || (i // 3), 'SKU-' || (i % 500), 1 + i % 3, 1000 FROM range({}) r(i); {SALES}",
            orders * 3
        ))
        .expect("load DuckDB");
    }
    println!(
        "duckdb: loaded {} order lines in {:?}",
        orders * 3,
        started.elapsed()
    );
    let (_, reader) = exporter::store::open(&StoreConfig::DuckDb { path }).expect("open");
    let (best, median, rows) = time_report(reader.as_ref());
    println!("duckdb: monthly_sales best {best:?} median {median:?} ({rows} rows)");

    if let Some(url) = args.get(2) {
        let (_, reader) =
            exporter::store::open(&StoreConfig::Postgres { url: url.clone() }).expect("connect");
        let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
        let started = Instant::now();
        client
            .batch_execute(&format!(
                "TRUNCATE orders, order_lines, sales; \
                 INSERT INTO orders (order_id, customer_id, status, created_at, paid_at, shipped_at, delivered_at, \
                 subtotal_cents, discount_cents, tax_cents, shipping_cents, total_cents, refunded_cents, stamp) \
                 SELECT 'o' || i, 'c' || (i % 10000), 'DELIVERED', t, t, t, t + INTERVAL '2 days', 3000, 0, 0, 0, 3000, 0, i \
                 FROM (SELECT i, TIMESTAMP '2025-01-01' + (i * 31536000 / {orders}) * INTERVAL '1 second' AS t \
                       FROM generate_series(0::bigint, {orders} - 1) i) g; \
                 INSERT INTO order_lines (order_id, sku, quantity, unit_price_cents) \
                 SELECT 'o' || (i / 3), 'SKU-' || (i % 500), 1 + i % 3, 1000 FROM generate_series(0::bigint, {} - 1) i; \
                 {SALES} ANALYZE orders; ANALYZE order_lines; ANALYZE sales;",
                orders * 3
            ))
            .expect("load PostgreSQL");
        println!(
            "postgres: loaded {} order lines in {:?}",
            orders * 3,
            started.elapsed()
        );
        let (best, median, rows) = time_report(reader.as_ref());
        println!("postgres: monthly_sales best {best:?} median {median:?} ({rows} rows)");
    }
}
