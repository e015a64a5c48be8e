//! Shared by the exporter's tests: an engine on a manual clock with a deterministic workload
//! spread over several months, a throw-away PostgreSQL cluster, and the checks that compare a
//! store with the engine.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::wal::fs::StdFs;
use engine::{Engine, EngineConfig, Line, ManualClock, Op};
use exporter::{Exporter, ExporterConfig, Reader, StoreConfig};
use snapshotter::{Snapshotter, SnapshotterConfig};

/// 2026-01-05T10:00:00Z.
pub const START_MS: u64 = 1_767_607_200_000;
pub const DAY_MS: u64 = 86_400_000;

pub struct Opened {
    pub engine: Arc<Engine>,
    pub snapshotter: Arc<Snapshotter>,
    pub clock: Arc<ManualClock>,
}

pub fn open(dir: &Path) -> Opened {
    let mut config = EngineConfig::new(dir);
    config.shards = 4;
    config.expiry_sweeper = false;
    // Small segments, so a snapshot lets the first ones go (the rebuild test needs that).
    config.wal.segment_bytes = 4096;
    let clock = Arc::new(ManualClock::new(START_MS));
    let (engine, snapshotter, _) = snapshotter::open_engine(
        config,
        SnapshotterConfig::new(dir),
        Arc::new(StdFs),
        clock.clone(),
    )
    .expect("open engine");
    Opened {
        engine,
        snapshotter,
        clock,
    }
}

/// More SKUs than `limits::STAGED_UPSERT_ROWS_MIN`, so a batch's `stock_levels` rows take the
/// stores' staged (set-based) upsert as well as the per-row one.
const SKUS: usize = 40;

fn sku(i: usize) -> String {
    format!("SKU-{}", i % SKUS)
}

/// Products, stock, customers and `orders` order lifecycles, one every 2 days from START_MS:
/// most paid, shipped and delivered; some cancelled before or after payment; some returned
/// (approved with restock, approved without, rejected); plus holds committed in part and
/// released, and a stock adjustment.
/// What a workload created (closed orders leave the engine's memory after the retention
/// window; the store keeps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub orders: usize,
    pub order_lines: usize,
}

pub fn workload(o: &Opened, orders: usize) -> Created {
    let mut created = Created {
        orders,
        order_lines: 0,
    };
    let e = &o.engine;
    let run = |op: Op| e.execute(op).unwrap_or_else(|err| panic!("{err}"));
    for i in 0..SKUS {
        run(Op::UpsertProduct {
            sku: sku(i),
            name: format!("Product {i}"),
            unit_price_cents: 250 + 175 * i as i64,
            reorder_level: 20,
            reorder_quantity: 50,
        });
        run(Op::Receive {
            receipt_id: format!("r-{i}"),
            sku: sku(i),
            quantity: 10_000,
        });
    }
    for c in 0..4 {
        run(Op::UpsertCustomer {
            customer_id: format!("c{c}"),
            name: format!("Customer {c}"),
            email: format!("c{c}@example.com"),
            phone: String::new(),
            address: "1 Main St".into(),
            notify_email: true,
            notify_sms: false,
        });
    }
    for n in 0..orders {
        o.clock.set_ms(START_MS + n as u64 * 2 * DAY_MS);
        let id = format!("o{n}");
        let mut lines = vec![Line::new(sku(n), 1 + (n % 4) as u32)];
        if n % 3 == 0 {
            lines.push(Line::new(sku(n + 1), 12));
        }
        created.order_lines += lines.len();
        let order = match run(Op::CreateOrder {
            order_id: id.clone(),
            customer_id: format!("c{}", n % 4),
            lines: lines.clone(),
            shipping_address: "1 Main St".into(),
            payment_timeout_seconds: 3600,
        }) {
            engine::OpOutput::Order(order) => order,
            other => panic!("{other:?}"),
        };
        if n % 11 == 5 {
            run(Op::CancelOrder {
                order_id: id,
                reason: "changed mind".into(),
            });
            continue;
        }
        if n % 13 == 7 {
            run(Op::FailPayment {
                order_id: id.clone(),
                payment_id: format!("pf-{n}"),
                reason: "declined".into(),
            });
            continue;
        }
        run(Op::ConfirmPayment {
            order_id: id.clone(),
            payment_id: format!("p-{n}"),
            amount_cents: order.totals.total_cents,
        });
        if n % 9 == 4 {
            run(Op::CancelOrder {
                order_id: id,
                reason: "out of time".into(),
            });
            continue;
        }
        if n % 10 == 3 {
            continue; // paid, not yet shipped
        }
        o.clock.advance_ms(DAY_MS / 2);
        run(Op::ShipOrder {
            order_id: id.clone(),
            carrier: "UPS".into(),
            tracking_number: format!("1Z{n}"),
        });
        if n % 10 == 8 {
            continue; // on its way
        }
        o.clock.advance_ms(DAY_MS / 2);
        run(Op::DeliverOrder {
            order_id: id.clone(),
        });
        if n % 7 == 2 {
            let ret = format!("ret-{n}");
            run(Op::RequestReturn {
                return_id: ret.clone(),
                order_id: id.clone(),
                lines: vec![Line::new(sku(n), 1)],
                reason: "broken".into(),
            });
            o.clock.advance_ms(DAY_MS / 4);
            if n % 2 == 0 {
                run(Op::ApproveReturn {
                    return_id: ret,
                    refund_cents: 100,
                    restock: n % 4 == 0,
                });
            } else {
                run(Op::RejectReturn {
                    return_id: ret,
                    reason: "worn".into(),
                });
            }
        }
    }
    run(Op::Reserve {
        reservation_id: "h1".into(),
        lines: vec![Line::new(sku(0), 5), Line::new(sku(1), 4)].into(),
        ttl_seconds: 600,
    });
    run(Op::Commit {
        reservation_id: "h1".into(),
        lines: vec![Line::new(sku(0), 2)],
    });
    run(Op::Reserve {
        reservation_id: "h2".into(),
        lines: vec![Line::new(sku(2), 3)].into(),
        ttl_seconds: 600,
    });
    run(Op::Release {
        reservation_id: "h2".into(),
    });
    run(Op::Reserve {
        reservation_id: "h3".into(),
        lines: vec![Line::new(sku(3), 7)].into(),
        ttl_seconds: 600,
    });
    run(Op::Adjust {
        adjustment_id: "a1".into(),
        sku: sku(5),
        on_hand: 9,
        reason: "stocktake".into(),
    });
    created
}

/// Polls until the exporter holds everything durable (deadline: 120 s).
pub fn caught_up(exporter: &Exporter, engine: &Engine) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let durable = engine.stats().durable_lsn;
        if exporter.export_lsn() == durable && durable > 0 {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "exporter stuck at {} of {durable}: {:?}",
                exporter.export_lsn(),
                exporter.stats()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn start(store: StoreConfig, o: &Opened) -> Exporter {
    Exporter::start(
        ExporterConfig {
            store,
            batch_records: 64,
            nice: 0,
            batch_interval_millis: exporter::limits::BATCH_INTERVAL_MILLIS_DEFAULT,
        },
        o.engine.clone(),
        o.snapshotter.clone(),
    )
    .expect("start exporter")
}

/// One value of a one-row query.
pub fn scalar(reader: &dyn Reader, sql: &str) -> String {
    let t = reader.select(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(t.rows.len(), 1, "{sql}");
    t.rows[0][0].clone()
}

/// Every SKU's figures, every order's status and totals, and the stock history add up to what
/// the engine says.
pub fn assert_matches_engine(
    reader: &dyn Reader,
    engine: &Engine,
    created: Created,
    full_history: bool,
) {
    let dump = engine.dump();
    for id in dump.products.keys() {
        let sku = engine.get_stock(id).expect("stock");
        let row = reader
            .select(&format!(
                "SELECT on_hand, reserved, available FROM stock_levels WHERE sku = '{}'",
                sku.sku
            ))
            .unwrap();
        assert_eq!(
            row.rows,
            vec![vec![
                sku.on_hand.to_string(),
                sku.reserved.to_string(),
                sku.available.to_string()
            ]],
            "stock of {}",
            sku.sku
        );
        if full_history {
            // Exactly once: a lost or doubled batch breaks the chain of before/after figures.
            let moved = scalar(
                reader,
                &format!(
                    "SELECT CAST(COALESCE(SUM(on_hand_after - on_hand_before), 0) AS BIGINT) \
                     FROM stock_movements WHERE sku = '{}'",
                    sku.sku
                ),
            );
            assert_eq!(moved, sku.on_hand.to_string(), "movements of {}", sku.sku);
            let gaps = scalar(
                reader,
                &format!(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT on_hand_before, \
                     LAG(on_hand_after) OVER (ORDER BY lsn, event_index) AS prev \
                     FROM stock_movements WHERE sku = '{}') t WHERE prev IS NOT NULL AND prev <> on_hand_before",
                    sku.sku
                ),
            );
            assert_eq!(gaps, "0", "chain of {}", sku.sku);
        }
    }
    let orders: Vec<&engine::Order> = dump.orders.values().collect();
    if full_history {
        assert_eq!(
            scalar(reader, "SELECT CAST(COUNT(*) AS BIGINT) FROM orders"),
            created.orders.to_string()
        );
        assert_eq!(
            scalar(reader, "SELECT CAST(COUNT(*) AS BIGINT) FROM order_lines"),
            created.order_lines.to_string()
        );
    }
    for order in orders.iter().copied() {
        let row = reader
            .select(&format!(
                "SELECT status, total_cents, refunded_cents FROM orders WHERE order_id = '{}'",
                order.order_id
            ))
            .unwrap();
        assert_eq!(
            row.rows,
            vec![vec![
                order.status.name().to_string(),
                order.totals.total_cents.to_string(),
                order.refunded_cents.to_string()
            ]],
            "order {}",
            order.order_id
        );
        // A delivered order's lines are its sales rows, once each.
        let delivered = if order.delivered_at_ms > 0 {
            order.lines.iter().map(|l| l.quantity).sum::<u32>()
        } else {
            0
        };
        let lines = if order.delivered_at_ms > 0 {
            order.lines.len()
        } else {
            0
        };
        assert_eq!(
            scalar(
                reader,
                &format!(
                    "SELECT CAST(COUNT(*) AS BIGINT) || '/' || CAST(COALESCE(SUM(quantity), 0) AS BIGINT) \
                     FROM sales WHERE order_id = '{}'",
                    order.order_id
                )
            ),
            format!("{lines}/{delivered}"),
            "sales of order {}",
            order.order_id
        );
    }
}

/// A throw-away PostgreSQL cluster from the machine's PostgreSQL packages, on a free port, as
/// an unprivileged user (initdb refuses root). Stopped (immediate) and removed on drop.
pub struct PgCluster {
    pub url: String,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
    user: Option<String>,
}

fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort();
    // Fail, never skip: CI installs the package (scripts/test.sh).
    found.pop().expect(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: \
         install the `postgresql` package (scripts/test.sh does)",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let bin = pg_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("pgdata");
        let socket = dir.path().join("sock");
        std::fs::create_dir_all(&socket).unwrap();
        let user = is_root().then(|| "pgrun".to_string());
        if let Some(u) = &user {
            // Idempotent: exit status 9 = the user exists already.
            let _ = Command::new("useradd").args(["-M", "-r", u]).status();
            let ok = Command::new("chown")
                .args(["-R", &format!("{u}:"), &dir.path().display().to_string()])
                .status()
                .expect("chown");
            assert!(ok.success(), "chown for {u}");
            // The temp dir itself must be reachable by that user.
            let _ = Command::new("chmod")
                .args(["755", &dir.path().display().to_string()])
                .status();
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = PgCluster {
            url: format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            bin,
            data,
            _dir: dir,
            user,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
            ],
        );
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &cluster.data.display().to_string(),
                "-l",
                &cluster.data.join("log").display().to_string(),
                "-w",
                "-o",
                &format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                    socket.display()
                ),
                "start",
            ],
        );
        cluster
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let out = match &self.user {
            Some(u) => Command::new("runuser")
                .args(["-u", u, "--"])
                .arg(&exe)
                .args(args)
                .output(),
            None => Command::new(&exe).args(args).output(),
        }
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = match &self.user {
            Some(u) => Command::new("runuser")
                .args(["-u", u, "--"])
                .arg(&exe)
                .args(args)
                .output(),
            None => Command::new(&exe).args(args).output(),
        };
    }
}
