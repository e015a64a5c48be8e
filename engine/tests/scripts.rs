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
//! An argument `-` stands for an empty id.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use engine::engine::lines_text;
use engine::{
    Engine, EngineError, Line, ManualClock, Op, OpOutput, Reservation, StockLevel, SyncMode,
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
                lines: parse_lines(args.get(1).copied().unwrap_or("")),
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
            Ok(other) => format!("{other:?}"),
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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
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
