//! What one batch's statements cost in DuckDB, by the way they are written — the figures
//! behind the DuckDB store's choices (`exporter/src/store/duck.rs`, `limits`):
//!
//! ```sh
//! cargo build --release --workspace --examples && target/release/examples/duck_statement_bench
//! ```
//!
//! A `stock_levels` table of 1,000 rows (env `SKUS`; `STAGED_ONLY=1` times the staged ways
//! alone) in the exporter's shape, in a database file; each line is
//! one transaction of N rows written one way, timed over many transactions, twice (the second
//! round is the one to quote). Ways: a prepared `INSERT … ON CONFLICT` executed per row (DuckDB
//! re-plans it at every execution), a prepared `UPDATE` by key per row, the staged upsert (rows
//! appended to a temporary table, then one `INSERT … SELECT … ON CONFLICT`), the staged
//! `UPDATE … FROM`; the cursor's two meta rows as two upserts or one `UPDATE`; an empty
//! transaction; and the Appender's fact rows.

use std::time::Instant;

use duckdb::types::{TimeUnit, Value};
use duckdb::{Connection, params};

const COLS: &str = "sku, on_hand, reserved, available, reorder_level, updated_at, stamp";
const SETS: &str = "on_hand = excluded.on_hand, reserved = excluded.reserved, \
    available = excluded.available, reorder_level = excluded.reorder_level, \
    updated_at = excluded.updated_at, stamp = excluded.stamp \
    WHERE stock_levels.stamp < excluded.stamp";
const TYPED: &str = "CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), \
    CAST(? AS BIGINT), CAST(? AS TIMESTAMP), CAST(? AS BIGINT)";
/// `stock_levels` rows (env `SKUS`; default 1,000).
fn skus() -> i64 {
    std::env::var("SKUS").map_or(1_000, |v| v.parse().expect("SKUS: a row count"))
}

/// Runs `batch` `reps` times, each in its own transaction, and prints the mean per batch.
fn time(conn: &Connection, name: &str, rows: i64, reps: i64, mut batch: impl FnMut(i64)) {
    let t = Instant::now();
    for i in 0..reps {
        conn.execute_batch("BEGIN").unwrap();
        batch(i);
        conn.execute_batch("COMMIT").unwrap();
    }
    let micros = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
    println!(
        "{name:44} rows {rows:4}: {:8.2} ms per transaction",
        micros / 1000.0
    );
}

/// A fresh `stock_levels` row for SKU `n` at stamp `stamp`.
fn level(n: i64, stamp: i64) -> (String, i64, i64, i64, i64, Value, i64) {
    let ts = Value::Timestamp(TimeUnit::Microsecond, stamp * 1000);
    (
        format!("SKU-{:04}", n % skus()),
        stamp % 100,
        1,
        stamp % 100 - 1,
        5,
        ts,
        stamp,
    )
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("bench.duckdb")).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE stock_levels (sku TEXT PRIMARY KEY, on_hand BIGINT, reserved BIGINT, \
           available BIGINT, reorder_level BIGINT, updated_at TIMESTAMP, stamp BIGINT);
         CREATE TABLE meta (name TEXT PRIMARY KEY, value BIGINT);
         INSERT INTO meta VALUES ('cursor_lsn', 0), ('rebuild_lsn_end', 0);
         INSERT INTO stock_levels SELECT printf('SKU-%04d', i), 100, 0, 100, 5, \
           TIMESTAMP '2026-01-01', 0 FROM range({}) t(i);
         CREATE TABLE movements (lsn BIGINT, sku TEXT, kind TEXT, quantity BIGINT, \
           on_hand_after BIGINT, reference TEXT);
         CREATE TEMP TABLE staging AS SELECT * FROM main.stock_levels LIMIT 0;",
        skus()
    ))
    .unwrap();
    let mut stamp = 0i64;
    let mut next_stamp = || {
        stamp += 1;
        stamp
    };
    for round in 1..=2 {
        println!("round {round}");
        let staged_only = std::env::var_os("STAGED_ONLY").is_some();
        if !staged_only {
            time(&conn, "meta: two upserts", 2, 200, |i| {
                let mut stmt = conn
                    .prepare_cached(
                        "INSERT INTO meta (name, value) VALUES (?, ?) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    )
                    .unwrap();
                stmt.execute(params!["cursor_lsn", i]).unwrap();
                stmt.execute(params!["rebuild_lsn_end", 0]).unwrap();
            });
            time(&conn, "meta: one UPDATE", 2, 200, |i| {
                let mut stmt = conn
                .prepare_cached(
                    "UPDATE meta SET value = CASE name WHEN 'cursor_lsn' THEN CAST(? AS BIGINT) \
                     WHEN 'rebuild_lsn_end' THEN CAST(? AS BIGINT) END \
                     WHERE name IN ('cursor_lsn', 'rebuild_lsn_end')",
                )
                .unwrap();
                stmt.execute(params![i, 0]).unwrap();
            });
            time(&conn, "empty transaction", 0, 200, |_| {});
            for rows in [1i64, 64, 1024, 8192] {
                time(&conn, "Appender: fact rows", rows, 20, |i| {
                    let mut app = conn.appender("movements").unwrap();
                    for j in 0..rows {
                        let n = i * rows + j;
                        app.append_row(params![
                            n,
                            format!("SKU-{:04}", n % skus()),
                            "reserve",
                            1,
                            5,
                            format!("r-{n}")
                        ])
                        .unwrap();
                    }
                    app.flush().unwrap();
                });
            }
        }
        for rows in [1i64, 4, 16, 64, 200] {
            let reps = (800 / rows).clamp(20, 200);
            if !staged_only {
                time(
                    &conn,
                    "per row: prepared INSERT … ON CONFLICT",
                    rows,
                    reps,
                    |i| {
                        let sql = format!(
                            "INSERT INTO stock_levels ({COLS}) VALUES ({TYPED}) ON CONFLICT (sku) DO UPDATE SET {SETS}"
                        );
                        let mut stmt = conn.prepare_cached(&sql).unwrap();
                        for j in 0..rows {
                            let r = level(i * rows + j, next_stamp());
                            stmt.execute(params![r.0, r.1, r.2, r.3, r.4, r.5, r.6])
                                .unwrap();
                        }
                    },
                );
                time(&conn, "per row: prepared UPDATE by key", rows, reps, |i| {
                    let mut stmt = conn
                    .prepare_cached(
                        "UPDATE stock_levels SET on_hand = CAST(? AS BIGINT), \
                         reserved = CAST(? AS BIGINT), available = CAST(? AS BIGINT), \
                         reorder_level = CAST(? AS BIGINT), updated_at = CAST(? AS TIMESTAMP), \
                         stamp = CAST(? AS BIGINT) WHERE sku = CAST(? AS TEXT) AND stamp < CAST(? AS BIGINT)",
                    )
                    .unwrap();
                    for j in 0..rows {
                        let r = level(i * rows + j, next_stamp());
                        stmt.execute(params![r.1, r.2, r.3, r.4, r.5, r.6, r.0, r.6])
                            .unwrap();
                    }
                });
            }
            // `fresh`: keys not in the table yet (new entities, such as orders being placed).
            let mut fill = |i: i64, fresh: bool| {
                let mut app = conn
                    .appender_to_catalog_and_db("staging", "temp", "main")
                    .unwrap();
                for j in 0..rows {
                    let stamp = next_stamp();
                    let mut r = level(i * rows + j, stamp);
                    if fresh {
                        r.0 = format!("NEW-{stamp}");
                    }
                    app.append_row(params![r.0, r.1, r.2, r.3, r.4, r.5, r.6])
                        .unwrap();
                }
                app.flush().unwrap();
            };
            let upsert = format!(
                "INSERT INTO stock_levels ({COLS}) SELECT {COLS} FROM temp.main.staging \
                 ON CONFLICT (sku) DO UPDATE SET {SETS}"
            );
            let update_from = "UPDATE stock_levels SET on_hand = s.on_hand, reserved = s.reserved, \
                available = s.available, reorder_level = s.reorder_level, \
                updated_at = s.updated_at, stamp = s.stamp FROM temp.main.staging s \
                WHERE stock_levels.sku = s.sku AND stock_levels.stamp < s.stamp";
            let insert_new = format!(
                "INSERT INTO stock_levels ({COLS}) SELECT {COLS} FROM temp.main.staging s \
                 WHERE NOT EXISTS (SELECT 1 FROM stock_levels there WHERE there.sku = s.sku)"
            );
            // (name, keys not in the table yet, the statements after filling the staging table)
            let ways: [(&str, bool, Vec<&str>); 4] = [
                (
                    "staged: INSERT … SELECT … ON CONFLICT",
                    false,
                    vec![&upsert],
                ),
                ("staged: UPDATE … FROM", false, vec![update_from]),
                (
                    "staged, new keys: INSERT … ON CONFLICT",
                    true,
                    vec![&upsert],
                ),
                (
                    "staged, new keys: UPDATE … FROM + INSERT",
                    true,
                    vec![update_from, &insert_new],
                ),
            ];
            for (name, fresh, statements) in ways {
                time(&conn, name, rows, 30, |i| {
                    fill(i, fresh);
                    for sql in &statements {
                        conn.execute(sql, []).unwrap();
                    }
                    conn.execute("DELETE FROM temp.main.staging", []).unwrap();
                });
            }
        }
    }
}
