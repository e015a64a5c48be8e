//! How long opening the DuckDB store takes after a crash left DuckDB's own log un-checkpointed
//! (the price of `limits::DUCKDB_CHECKPOINT_WAL_MB`):
//!
//! ```sh
//! cargo build --release --workspace --examples && target/release/examples/reopen_bench [BATCHES]
//! ```
//!
//! A child process writes BATCHES (default 40) exporter batches of 16,384 stock movements plus
//! 1,000 `stock_levels` upserts through the store's own `apply`, then aborts (no checkpoint on
//! close); the parent prints the size of DuckDB's `.wal` file and times `store::open` on the file,
//! three times (the first open replays the log and checkpoints it; the later ones are the
//! baseline).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use exporter::StoreConfig;
use exporter::change::Change;
use exporter::schema::{STOCK_LEVELS, STOCK_MOVEMENTS};
use exporter::store::Cursor;
use exporter::value::Value;

const MOVEMENTS_PER_BATCH: u64 = 16_384;
const SKUS: u64 = 1_000;

fn config(path: &Path) -> StoreConfig {
    StoreConfig::DuckDb {
        path: path.to_path_buf(),
    }
}

fn write_then_abort(path: &Path, batches: u64) -> ! {
    let (mut store, _) = exporter::store::open(&config(path)).expect("open");
    let mut lsn = 0;
    for _ in 0..batches {
        let mut changes = Vec::new();
        for _ in 0..MOVEMENTS_PER_BATCH {
            lsn += 1;
            changes.push(Change::Append {
                table: &STOCK_MOVEMENTS,
                row: vec![
                    Value::int(lsn),
                    Value::Int(0),
                    Value::ts(1_700_000_000_000 + lsn),
                    Value::text(&format!("SKU-{:04}", lsn % SKUS)),
                    Value::text("reserve"),
                    Value::Int(1),
                    Value::Int(100),
                    Value::Int(100),
                    Value::Int(0),
                    Value::Int(1),
                    Value::text(&format!("hold-{lsn}")),
                    Value::text(""),
                ],
            });
        }
        for sku in 0..SKUS {
            changes.push(Change::Upsert {
                table: &STOCK_LEVELS,
                row: vec![
                    Value::text(&format!("SKU-{sku:04}")),
                    Value::Int(100),
                    Value::int(lsn % 7),
                    Value::Int(90),
                    Value::Int(10),
                    Value::ts(1_700_000_000_000 + lsn),
                    Value::int(lsn << 16),
                ],
            });
        }
        let cursor = Cursor {
            lsn,
            rebuild_lsn_end: 0,
        };
        store.apply(&changes, cursor, false).expect("apply");
    }
    // A crash: no clean close, so DuckDB's log is not checkpointed into the file.
    std::process::abort();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        write_then_abort(Path::new(&args[2]), args[3].parse().expect("batches"));
    }
    let batches: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(40);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("analytics.duckdb");
    let status = Command::new(std::env::current_exe().expect("exe"))
        .arg("--child")
        .arg(&path)
        .arg(batches.to_string())
        .status()
        .expect("child");
    assert!(!status.success(), "the child aborts");
    let mut wal = PathBuf::from(&path);
    wal.as_mut_os_string().push(".wal");
    let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
    println!(
        "{} movements in {batches} batches; DuckDB log left by the crash: {:.1} MB",
        batches * MOVEMENTS_PER_BATCH,
        wal_bytes as f64 / 1e6
    );
    for run in 0..3 {
        let started = Instant::now();
        let (mut store, _) = exporter::store::open(&config(&path)).expect("reopen");
        let opened = started.elapsed();
        let cursor = store.cursor().expect("cursor").expect("a cursor");
        assert_eq!(cursor.lsn, batches * MOVEMENTS_PER_BATCH);
        println!("open {run}: {opened:?} (cursor {})", cursor.lsn);
    }
}
