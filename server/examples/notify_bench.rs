//! Event-to-send latency of the notifier at a steady rate of order events: CreateOrder calls
//! paced at `--rate` per second against the real server (in-process, durable, default
//! config plus the log and email channels), each yielding a confirmation mail to an SMTP sink
//! (`notifier::testing::SmtpSink`, 127.0.0.1:0) and a log-file copy. Latency per message:
//! from the CreateOrder call's start (the event cannot be older) to the sink accepting the mail
//! / the log block appearing in `notifications.log` (polled every millisecond).
//!
//! ```sh
//! cargo run --release -p server --example notify_bench -- --rate 1000 --seconds 10
//! ```

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use parking_lot::Mutex;
use proto::inventory::v1 as pb;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Order events (CreateOrder calls) per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Client connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Give up waiting for deliveries after this.
    #[arg(long, default_value_t = 120)]
    drain_seconds: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn order_of(subject: &str) -> Option<usize> {
    subject
        .strip_prefix("Order b")?
        .strip_suffix(" confirmed")?
        .parse()
        .ok()
}

fn main() {
    let args = Args::parse();
    let total = (args.rate * args.seconds) as usize;
    let sink = notifier::testing::SmtpSink::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = server::Config {
        data_dir: dir.path().join("data"),
        ..server::Config::default()
    };
    config.notifier.channels = vec!["log".into(), "email".into()];
    config.notifier.smtp.host = "127.0.0.1".into();
    config.notifier.smtp.port = sink.addr.port();
    let log_path = config.data_dir.join("notifications.log");

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opened = server::open_engine(&config).unwrap();
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let metrics_listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = server_rt.spawn({
        let config = config.clone();
        async move {
            server::run(
                &config,
                opened.engine,
                opened.snapshotter,
                listener,
                metrics_listener,
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
        }
    });

    // The log tail: when each confirmation's block appears.
    let seen_log: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let tailing = Arc::new(AtomicBool::new(true));
    let tail = {
        let (seen, on, path) = (seen_log.clone(), tailing.clone(), log_path.clone());
        std::thread::spawn(move || {
            let mut offset = 0u64;
            let mut partial = String::new();
            while on.load(Ordering::Relaxed) {
                if let Ok(mut f) = std::fs::File::open(&path) {
                    let _ = f.seek(SeekFrom::Start(offset));
                    let mut text = String::new();
                    if let Ok(n) = f.read_to_string(&mut text) {
                        offset += n as u64;
                        let now = Instant::now();
                        partial.push_str(&text);
                        let keep = partial.rfind('\n').map_or(0, |i| i + 1);
                        for line in partial[..keep].lines() {
                            if let Some(i) = line.strip_prefix("Subject: ").and_then(order_of) {
                                seen.lock().entry(i).or_insert(now);
                            }
                        }
                        partial.drain(..keep);
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sent_at, elapsed, errors) = client_rt.block_on(async {
        let mut chans: Vec<Channel> = Vec::new();
        for _ in 0..args.connections {
            chans.push(
                Endpoint::from_shared(format!("http://{addr}"))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap(),
            );
        }
        let mut inv = pb::inventory_client::InventoryClient::new(chans[0].clone());
        let mut orders = pb::orders_client::OrdersClient::new(chans[0].clone());
        for s in 0..10 {
            inv.upsert_product(pb::UpsertProductRequest {
                sku: format!("SKU-{s}"),
                name: "bench".into(),
                unit_price_cents: 100,
                reorder_level: 0,
                reorder_quantity: 0,
            })
            .await
            .unwrap();
            inv.receive_stock(pb::ReceiveStockRequest {
                receipt_id: format!("init-{s}"),
                sku: format!("SKU-{s}"),
                quantity: 1_000_000,
            })
            .await
            .unwrap();
        }
        for c in 0..100 {
            orders
                .upsert_customer(pb::UpsertCustomerRequest {
                    customer_id: format!("c{c}"),
                    name: format!("Customer {c}"),
                    email: format!("c{c}@example.com"),
                    phone: String::new(),
                    address: "1 Main St".into(),
                    notify_email: true,
                    notify_sms: false,
                })
                .await
                .unwrap();
        }
        let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; total]));
        let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let in_flight = Arc::new(tokio::sync::Semaphore::new(512));
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(total);
        for i in 0..total {
            let due = start + Duration::from_nanos(i as u64 * 1_000_000_000 / args.rate);
            tokio::time::sleep_until(due).await;
            let permit = in_flight.clone().acquire_owned().await.unwrap();
            let mut client = pb::orders_client::OrdersClient::new(chans[i % chans.len()].clone());
            let (sent_at, errors) = (sent_at.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let r = client
                    .create_order(pb::CreateOrderRequest {
                        order_id: format!("b{i}"),
                        customer_id: format!("c{}", i % 100),
                        lines: vec![pb::Line {
                            sku: format!("SKU-{}", i % 10),
                            quantity: 1,
                        }],
                        shipping_address: "1 Main St".into(),
                        payment_timeout_seconds: 3600,
                    })
                    .await;
                match r {
                    Ok(_) => sent_at.lock()[i] = Some(t),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                drop(permit);
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let elapsed = start.elapsed();
        let sent_at = sent_at.lock().clone();
        (sent_at, elapsed, errors.load(Ordering::Relaxed))
    });
    let acknowledged = sent_at.iter().filter(|t| t.is_some()).count();
    let deadline = Instant::now() + Duration::from_secs(args.drain_seconds);
    while Instant::now() < deadline
        && (sink.mails().len() < acknowledged || seen_log.lock().len() < acknowledged)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    tailing.store(false, Ordering::Relaxed);
    let _ = tail.join();

    let mut smtp: Vec<f64> = sink
        .mails()
        .iter()
        .filter_map(|m| {
            let i = order_of(&m.header("Subject")?)?;
            Some((m.received - sent_at[i]?).as_secs_f64() * 1000.0)
        })
        .collect();
    let mut log: Vec<f64> = seen_log
        .lock()
        .iter()
        .filter_map(|(i, at)| Some((*at - sent_at[*i]?).as_secs_f64() * 1000.0))
        .collect();
    smtp.sort_by(f64::total_cmp);
    log.sort_by(f64::total_cmp);
    println!(
        "orders: {acknowledged} acknowledged ({errors} errors) in {:.2} s = {:.0} order events/s",
        elapsed.as_secs_f64(),
        acknowledged as f64 / elapsed.as_secs_f64()
    );
    println!("| channel | delivered | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (name, v) in [("smtp", &smtp), ("log", &log)] {
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} |",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    let _ = stop_tx.send(());
    let _ = server_rt.block_on(served);
}
