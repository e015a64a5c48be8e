//! Data-driven ledger tests (toydb goldenscript style): each file in `tests/scripts/` is a list
//! of commands (`> command`) each followed by the output it must produce. The runner executes
//! the commands against a real engine (WAL on, manual clock) and compares the regenerated
//! file with the stored one. `UPDATE_SCRIPTS=1 cargo test --release -p engine --test scripts`
//! rewrites the files; review the diff before committing.
//!
//! Commands:
//!   product SKU [name=N] [price=C] [reorder=L] [reorder_qty=Q]
//!   receive ID SKU QTY            adjust ID SKU ON_HAND [REASON...]
//!   reserve ID SKU:Q[,SKU:Q...] [ttl=S]
//!   commit ID [SKU:Q,...]         release ID
//!   stock SKU                     get ID              list [after=SKU] [n=N] [low]
//!   advance SECONDS | advance ms=MS
//!   expire                        check               restart             lsn
//!   customer ID [email=E] [phone=P] [sms] [noemail]      getcustomer ID
//!   order ID CUSTOMER SKU:Q[,...] [timeout=S]            getorder ID
//!   pay ORDER PAYMENT AMOUNT      failpay ORDER PAYMENT [REASON...]
//!   ship ORDER CARRIER TRACKING   deliver ORDER       cancel ORDER [REASON...]
//!   return ID ORDER SKU:Q[,...] [REASON...]            approve ID REFUND [restock]
//!   reject ID [REASON...]         orders [customer=C] [status=S]
//!   alerts [all] [sku=X]          pos [open]          po ID STATUS
//! An argument `-` stands for an empty id.

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use engine::engine::lines_text;
use engine::{
    Alert, Customer, Engine, EngineError, Line, ManualClock, Op, OpOutput, Order, OrderStatus,
    PurchaseOrder, PurchaseOrderStatus, Reservation, Return, StockLevel, SyncMode,
};

struct Runner {
    dir: tempfile::TempDir,
    clock: ManualClock,
    engine: Arc<Engine>,
}

impl Runner {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(0);
        let engine = common::open(
            common::config(dir.path(), 4, SyncMode::Fsync),
            Arc::new(clock.clone()),
        );
        Self { dir, clock, engine }
    }

    fn run(&mut self, command: &str) -> String {
        let words: Vec<&str> = command.split_whitespace().collect();
        let (name, args) = words.split_first().expect("a command");
        let kv = |key: &str| {
            args.iter()
                .find_map(|a| a.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        let num = |key: &str, default: u64| {
            kv(key)
                .map(|v| v.parse::<u64>().expect("number"))
                .unwrap_or(default)
        };
        match *name {
            "product" => self.op(Op::UpsertProduct {
                sku: args[0].into(),
                name: kv("name").unwrap_or_else(|| format!("{} name", args[0])),
                unit_price_cents: kv("price")
                    .map(|v| v.parse().expect("price"))
                    .unwrap_or(100),
                reorder_level: num("reorder", 0) as u32,
                reorder_quantity: num("reorder_qty", 0) as u32,
            }),
            "receive" => self.op(Op::Receive {
                receipt_id: empty_if_dash(args[0]),
                sku: args[1].into(),
                quantity: args[2].parse().expect("qty"),
            }),
            "adjust" => self.op(Op::Adjust {
                adjustment_id: args[0].into(),
                sku: args[1].into(),
                on_hand: args[2].parse().expect("on_hand"),
                reason: args[3..].join(" "),
            }),
            "reserve" => self.op(Op::Reserve {
                reservation_id: empty_if_dash(args[0]),
                lines: parse_lines(args.get(1).copied().unwrap_or("")).into(),
                ttl_seconds: num("ttl", 0) as u32,
            }),
            "commit" => self.op(Op::Commit {
                reservation_id: args[0].into(),
                lines: parse_lines(args.get(1).copied().unwrap_or("")),
            }),
            "release" => self.op(Op::Release {
                reservation_id: args[0].into(),
            }),
            "stock" => match self.engine.get_stock(args[0]) {
                Ok(level) => stock_text(&level),
                Err(e) => error_text(&e),
            },
            "get" => match self.engine.get_reservation(args[0]) {
                Ok(r) => reservation_text(&r),
                Err(e) => error_text(&e),
            },
            "list" => {
                let after = kv("after");
                let (levels, next) = self.engine.list_stock(
                    after.as_deref(),
                    num("n", 100) as usize,
                    args.contains(&"low"),
                );
                let mut out = String::new();
                for level in &levels {
                    writeln!(out, "{}", stock_text(level)).expect("write");
                }
                write!(out, "next={}", next.unwrap_or_default()).expect("write");
                out
            }
            "advance" => {
                let ms = kv("ms")
                    .map(|v| v.parse::<u64>().expect("ms"))
                    .unwrap_or_else(|| args[0].parse::<u64>().expect("seconds") * 1000);
                self.clock.advance_ms(ms);
                format!("now={}ms", self.clock.now_ms_value())
            }
            "expire" => format!(
                "expired {}",
                self.engine.expire_due(self.clock.now_ms_value())
            ),
            "check" => match self.engine.check_invariants() {
                Ok(()) => "invariants ok".into(),
                Err(e) => format!("INVARIANT BROKEN: {e}"),
            },
            "lsn" => {
                let stats = self.engine.stats();
                format!(
                    "last_lsn={} durable_lsn={}",
                    stats.last_lsn, stats.durable_lsn
                )
            }
            "restart" => {
                let before = self.engine.dump();
                self.engine.shutdown();
                let config = common::config(self.dir.path(), 4, SyncMode::Fsync);
                let (engine, report) = Engine::open(
                    config,
                    Arc::new(engine::wal::fs::StdFs),
                    Arc::new(self.clock.clone()),
                )
                .expect("reopen");
                self.engine = engine;
                let after = self.engine.dump();
                let same = if before == after {
                    "state identical"
                } else {
                    "STATE DIFFERS"
                };
                format!(
                    "restarted: replayed {} records, {same}",
                    report.records_replayed
                )
            }
            "customer" => self.op(Op::UpsertCustomer {
                customer_id: empty_if_dash(args[0]),
                name: format!("{} name", args[0]),
                email: kv("email").unwrap_or_else(|| format!("{}@example.com", args[0])),
                phone: kv("phone").unwrap_or_default(),
                address: "1 Main St".into(),
                notify_email: !args.contains(&"noemail"),
                notify_sms: args.contains(&"sms"),
            }),
            "getcustomer" => match self.engine.get_customer(args[0]) {
                Ok(c) => customer_text(&c),
                Err(e) => error_text(&e),
            },
            "order" => self.op(Op::CreateOrder {
                order_id: empty_if_dash(args[0]),
                customer_id: args[1].into(),
                lines: parse_lines(args.get(2).copied().unwrap_or("")),
                shipping_address: "1 Main St".into(),
                payment_timeout_seconds: num("timeout", 0) as u32,
            }),
            "getorder" => match self.engine.get_order(args[0]) {
                Ok(o) => order_text(&o),
                Err(e) => error_text(&e),
            },
            "pay" => self.op(Op::ConfirmPayment {
                order_id: args[0].into(),
                payment_id: empty_if_dash(args[1]),
                amount_cents: args[2].parse().expect("amount"),
            }),
            "failpay" => self.op(Op::FailPayment {
                order_id: args[0].into(),
                payment_id: args[1].into(),
                reason: args[2..].join(" "),
            }),
            "ship" => self.op(Op::ShipOrder {
                order_id: args[0].into(),
                carrier: empty_if_dash(args[1]),
                tracking_number: empty_if_dash(args[2]),
            }),
            "deliver" => self.op(Op::DeliverOrder {
                order_id: args[0].into(),
            }),
            "cancel" => self.op(Op::CancelOrder {
                order_id: args[0].into(),
                reason: args[1..].join(" "),
            }),
            "return" => self.op(Op::RequestReturn {
                return_id: args[0].into(),
                order_id: args[1].into(),
                lines: parse_lines(args[2]),
                reason: args[3..].join(" "),
            }),
            "approve" => self.op(Op::ApproveReturn {
                return_id: args[0].into(),
                refund_cents: args[1].parse().expect("refund"),
                restock: args.contains(&"restock"),
            }),
            "reject" => self.op(Op::RejectReturn {
                return_id: args[0].into(),
                reason: args[1..].join(" "),
            }),
            "orders" => {
                let status = kv("status").map(|s| parse_status(&s));
                let (orders, next) =
                    self.engine
                        .list_orders(kv("customer").as_deref(), status, None, 100);
                let mut out = String::new();
                for o in &orders {
                    writeln!(out, "{}", order_text(o)).expect("write");
                }
                write!(out, "next={}", next.unwrap_or_default()).expect("write");
                out
            }
            "alerts" => {
                let alerts = self.engine.list_alerts(args.contains(&"all"));
                // `sku=X`: only X's alerts.
                let sku = args.iter().find_map(|a| a.strip_prefix("sku="));
                let lines: Vec<String> = alerts
                    .iter()
                    .filter(|a| sku.is_none_or(|sku| a.sku == sku))
                    .map(alert_text)
                    .collect();
                if lines.is_empty() {
                    "no alerts".into()
                } else {
                    lines.join("\n")
                }
            }
            "pos" => {
                let pos = self.engine.list_purchase_orders(args.contains(&"open"));
                let lines: Vec<String> = pos.iter().map(purchase_order_text).collect();
                if lines.is_empty() {
                    "no purchase orders".into()
                } else {
                    lines.join("\n")
                }
            }
            "po" => self.op(Op::UpdatePurchaseOrder {
                purchase_order_id: args[0].into(),
                status: match args[1] {
                    "ORDERED" => PurchaseOrderStatus::Ordered,
                    "RECEIVED" => PurchaseOrderStatus::Received,
                    "CANCELLED" => PurchaseOrderStatus::Cancelled,
                    _ => PurchaseOrderStatus::Suggested,
                },
            }),
            other => panic!("unknown command {other}"),
        }
    }

    fn op(&self, op: Op) -> String {
        match self.engine.execute(op) {
            Ok(OpOutput::Stock(level)) => stock_text(&level),
            Ok(OpOutput::Reservation(r)) => reservation_text(&r),
            Ok(OpOutput::Product(p)) => format!(
                "product {} name={:?} price={} reorder={}/{} | {}",
                p.sku,
                p.name,
                p.unit_price_cents,
                p.reorder_level,
                p.reorder_quantity,
                stock_text(&p.stock)
            ),
            Ok(OpOutput::Customer(c)) => customer_text(&c),
            Ok(OpOutput::Order(o)) => order_text(&o),
            Ok(OpOutput::Return(r)) => return_text(&r),
            Ok(OpOutput::PurchaseOrder(p)) => purchase_order_text(&p),
            Err(e) => error_text(&e),
        }
    }
}

trait NowValue {
    fn now_ms_value(&self) -> u64;
}

impl NowValue for ManualClock {
    fn now_ms_value(&self) -> u64 {
        engine::Clock::now_ms(self)
    }
}

/// `-` stands for an empty string in scripts.
fn empty_if_dash(arg: &str) -> String {
    if arg == "-" {
        String::new()
    } else {
        arg.to_string()
    }
}

fn parse_lines(text: &str) -> Vec<Line> {
    text.split(',')
        .filter(|s| !s.is_empty() && !s.contains('='))
        .map(|item| {
            let (sku, qty) = item.split_once(':').expect("SKU:QTY");
            Line::new(sku, qty.parse().expect("qty"))
        })
        .collect()
}

fn stock_text(level: &StockLevel) -> String {
    format!(
        "stock {} on_hand={} reserved={} available={} reorder={} {}",
        level.sku,
        level.on_hand,
        level.reserved,
        level.available,
        level.reorder_level,
        level.status.name()
    )
}

fn reservation_text(r: &Reservation) -> String {
    format!(
        "reservation {} {} lines={} committed={} created={}ms expires={}ms",
        r.reservation_id,
        r.state.name(),
        lines_text(&r.lines),
        lines_text(&r.committed_lines),
        r.created_at_ms,
        r.expires_at_ms
    )
}

fn parse_status(s: &str) -> OrderStatus {
    match s {
        "PENDING" => OrderStatus::Pending,
        "PAID" => OrderStatus::Paid,
        "SHIPPED" => OrderStatus::Shipped,
        "DELIVERED" => OrderStatus::Delivered,
        "CANCELLED" => OrderStatus::Cancelled,
        _ => OrderStatus::Returned,
    }
}

fn customer_text(c: &Customer) -> String {
    format!(
        "customer {} email={} phone={} notify={}{} spend={} orders={} tier={}",
        c.customer_id,
        c.email,
        if c.phone.is_empty() { "-" } else { &c.phone },
        if c.notify_email { "email" } else { "" },
        if c.notify_sms { "+sms" } else { "" },
        c.lifetime_spend_cents,
        c.order_count,
        c.tier
    )
}

/// An order with its figures; times and texts only once set.
fn order_text(o: &Order) -> String {
    let t = &o.totals;
    let lines: Vec<String> = o
        .lines
        .iter()
        .map(|l| format!("{}×{}@{}", l.sku, l.quantity, l.unit_price_cents))
        .collect();
    let mut out = format!(
        "order {} {} customer={} lines={} subtotal={} discount={} tax={} shipping={} total={} deadline={}ms",
        o.order_id,
        o.status.name(),
        o.customer_id,
        lines.join(","),
        t.subtotal_cents,
        t.discount_cents,
        t.tax_cents,
        t.shipping_cents,
        t.total_cents,
        o.payment_deadline_ms
    );
    for (name, at) in [
        ("paid", o.paid_at_ms),
        ("shipped", o.shipped_at_ms),
        ("delivered", o.delivered_at_ms),
        ("cancelled", o.cancelled_at_ms),
    ] {
        if at > 0 {
            write!(out, " {name}={at}ms").expect("write");
        }
    }
    for (name, text) in [
        ("payment", &o.payment_id),
        ("carrier", &o.carrier),
        ("tracking", &o.tracking_number),
        ("reason", &o.cancel_reason),
    ] {
        if !text.is_empty() {
            write!(out, " {name}={text:?}").expect("write");
        }
    }
    if o.refund_due_cents > 0 || o.refunded_cents > 0 {
        write!(
            out,
            " refund_due={} refunded={}",
            o.refund_due_cents, o.refunded_cents
        )
        .expect("write");
    }
    out
}

fn return_text(r: &Return) -> String {
    format!(
        "return {} {} order={} lines={} refund={} restock={} requested={}ms decided={}ms",
        r.return_id,
        r.status.name(),
        r.order_id,
        lines_text(&r.lines),
        r.refund_cents,
        r.restock,
        r.requested_at_ms,
        r.decided_at_ms
    )
}

fn alert_text(a: &Alert) -> String {
    format!(
        "alert {} {} {} available={} level={} suggest={} opened={}ms resolved={}",
        a.alert_id,
        a.kind.name(),
        a.sku,
        a.available,
        a.reorder_level,
        a.suggested_quantity,
        a.opened_at_ms,
        a.resolved_at_ms
            .map_or_else(|| "no".to_string(), |at| format!("{at}ms"))
    )
}

fn purchase_order_text(p: &PurchaseOrder) -> String {
    format!(
        "purchase_order {} {} {}×{} alert={} created={}ms updated={}ms",
        p.purchase_order_id,
        p.status.name(),
        p.sku,
        p.quantity,
        p.alert_id,
        p.created_at_ms,
        p.updated_at_ms
    )
}

fn error_text(e: &EngineError) -> String {
    let kind = format!("{e:?}");
    let kind = kind.split('(').next().unwrap_or("Error");
    format!("error {kind}: {e}")
}

/// Re-runs a script and returns the text it should contain.
fn regenerate(script: &str) -> String {
    let mut runner = Runner::new();
    let mut out = String::new();
    for line in script.lines() {
        if let Some(command) = line.strip_prefix("> ") {
            writeln!(out, "{line}").expect("write");
            for output in runner.run(command).lines() {
                writeln!(out, "{output}").expect("write");
            }
        } else if line.starts_with('#') || line.trim().is_empty() {
            writeln!(out, "{line}").expect("write");
        }
    }
    out
}

#[test]
fn scripts() {
    // The directory cargo runs the test from, not the one it was compiled in: a shared target
    // directory can hold a binary built in another checkout (cargo does not rebuild it when
    // this one's sources are older), whose compile-time path may be gone.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let dir = manifest_dir.join("tests/scripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scripts dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts found in {}", dir.display());
    let update = std::env::var_os("UPDATE_SCRIPTS").is_some();
    let mut failures = Vec::new();
    for file in files {
        let stored = std::fs::read_to_string(&file).expect("read script");
        let actual = regenerate(&stored);
        if actual != stored {
            if update {
                std::fs::write(&file, &actual).expect("write script");
            } else {
                failures.push(format!("{}:\n{}", file.display(), diff(&stored, &actual)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "script output differs:\n{}",
        failures.join("\n")
    );
}

fn diff(expected: &str, actual: &str) -> String {
    let mut out = String::new();
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            writeln!(out, "line {}:\n  expected: {e}\n  actual:   {a}", i + 1).expect("write");
        }
    }
    let (e, a) = (expected.lines().count(), actual.lines().count());
    if e != a {
        writeln!(out, "expected {e} lines, got {a}").expect("write");
    }
    out
}
