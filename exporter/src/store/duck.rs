//! The DuckDB store: one database file (default `DATA_DIR/analytics.duckdb`), owned by the
//! server process. The exporter writes on one connection (fact rows through the Appender);
//! reports and `Query` read on a second connection of the same database. The database is opened
//! with external access off and its configuration locked, so no statement can read or write
//! other files, attach databases or change settings.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use duckdb::ToSql;
use duckdb::types::{TimeUnit, ToSqlOutput, Value as Dv, ValueRef};
use duckdb::{Config, Connection, appender_params_from_iter, params_from_iter};
use parking_lot::Mutex;

use crate::book::{Figures, StockBook};
use crate::change::{Change, Set};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::{self, META, TABLES, Table, Type};
use crate::store::{
    Cursor, OPEN_ORDER_LINES_SQL, Reader, Store, cursor_rows, staging, update_sql,
    upsert_as_update, upsert_run,
};
use crate::table::{Cell, ResultTable, normalise};
use crate::value::Value;

/// Typed, so that DuckDB never has to guess a parameter's type (it cannot in a SELECT list).
fn placeholder(_: usize, ty: Type) -> String {
    format!("CAST(? AS {})", ty.sql())
}

/// Borrowed, so that a batch's text cells reach DuckDB without being copied first.
impl ToSql for Value {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::BigInt(*i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Bool(b) => ValueRef::Boolean(*b),
            Value::Ts(ms) => ValueRef::Timestamp(TimeUnit::Microsecond, (*ms as i64) * 1000),
        }))
    }
}

pub struct DuckStore {
    conn: Connection,
}

pub struct DuckReader {
    conn: Mutex<Connection>,
}

/// Opens (creating if needed) the database file and its tables.
pub fn open(path: &Path) -> Result<(DuckStore, DuckReader)> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Store(format!("creating {}: {e}", dir.display())))?;
    }
    let config = Config::default()
        .enable_external_access(false)?
        .with("threads", limits::DUCKDB_THREADS.to_string())?
        .with(
            "checkpoint_threshold",
            format!("{}MB", limits::DUCKDB_CHECKPOINT_WAL_MB),
        )?
        .with("lock_configuration", "true")?;
    let conn = Connection::open_with_flags(path, config)
        .map_err(|e| Error::Store(format!("opening {}: {e}", path.display())))?;
    conn.set_prepared_statement_cache_capacity(64);
    create_tables(&conn)?;
    let reader = conn.try_clone()?;
    Ok((
        DuckStore { conn },
        DuckReader {
            conn: Mutex::new(reader),
        },
    ))
}

fn create_tables(conn: &Connection) -> Result<()> {
    for t in TABLES {
        conn.execute_batch(&t.create_sql())?;
    }
    // The staging tables of `upsert_staged`: temporary (this connection's, never in the
    // file), made once here rather than in every batch.
    for t in TABLES.iter().filter(|t| t.is_entity()) {
        conn.execute_batch(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS {} AS SELECT * FROM main.{} LIMIT 0",
            staging(t),
            t.name
        ))?;
    }
    Ok(())
}

impl Store for DuckStore {
    fn cursor(&mut self) -> Result<Option<Cursor>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT name, value FROM {}", META.name))?;
        let mut rows = stmt.query([])?;
        let mut found = false;
        let mut cursor = Cursor::default();
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            let value: i64 = row.get(1)?;
            match name.as_str() {
                "cursor_lsn" => {
                    cursor.lsn = value as u64;
                    found = true;
                }
                "rebuild_lsn_end" => cursor.rebuild_lsn_end = value as u64,
                _ => {}
            }
        }
        Ok(found.then_some(cursor))
    }

    fn book(&mut self) -> Result<StockBook> {
        let mut stmt = self.conn.prepare(
            "SELECT sku, on_hand, reserved, reorder_level, stamp, updated_at FROM stock_levels",
        )?;
        let rows = stmt.query_map([], |row| {
            let updated: Option<Dv> = row.get(5).ok();
            let updated_at_ms = match updated {
                Some(Dv::Timestamp(unit, v)) => (unit.to_micros(v) / 1000) as u64,
                _ => 0,
            };
            Ok((
                row.get::<_, String>(0)?,
                Figures {
                    on_hand: row.get(1)?,
                    reserved: row.get(2)?,
                    reorder_level: row.get(3)?,
                    stamp: row.get::<_, i64>(4)? as u64,
                    updated_at_ms,
                },
            ))
        })?;
        let rows: std::result::Result<Vec<_>, _> = rows.collect();
        let book = StockBook::from_rows(rows?);
        let mut stmt = self.conn.prepare(OPEN_ORDER_LINES_SQL)?;
        let lines = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                (
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)? as u32,
                    row.get::<_, i64>(3)?,
                ),
            ))
        })?;
        let lines: std::result::Result<Vec<_>, _> = lines.collect();
        Ok(book.with_open_lines(lines?))
    }

    fn reset(&mut self) -> Result<()> {
        for t in TABLES {
            self.conn
                .execute_batch(&format!("DROP TABLE IF EXISTS {}", t.name))?;
        }
        create_tables(&self.conn)
    }

    fn apply(&mut self, changes: &[Change], cursor: Cursor, dedupe: bool) -> Result<()> {
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        match apply_in_transaction(&self.conn, changes, cursor, dedupe) {
            Ok(()) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

fn apply_in_transaction(
    conn: &Connection,
    changes: &[Change],
    cursor: Cursor,
    dedupe: bool,
) -> Result<()> {
    // Fact tables are append-only and never read while a batch is applied, so their rows can
    // wait in the Appender until the end of the batch.
    let mut appenders: Vec<(&'static str, duckdb::Appender<'_>)> = Vec::new();
    let mut next = 0;
    while next < changes.len() {
        let change = &changes[next];
        next += 1;
        match change {
            Change::Upsert { table, .. } => {
                // The whole run at once: staged if long, else row by row (same order).
                let run = upsert_run(table, &changes[next - 1..]);
                next += run.len() - 1;
                if run.len() >= limits::DUCK_STAGED_UPSERT_ROWS_MIN {
                    upsert_staged(conn, table, &run)?;
                } else {
                    upsert_rows_singly(conn, table, &run)?;
                }
            }
            Change::Update {
                table,
                key,
                stamp,
                set,
            } => {
                update(conn, table, key, *stamp, set)?;
            }
            Change::Append { table, row } if dedupe => {
                let sql = schema::insert_missing_sql(table, placeholder);
                let mut stmt = conn.prepare_cached(&sql)?;
                let mut params: Vec<&Value> = row.iter().collect();
                params.extend(
                    table
                        .identity
                        .iter()
                        .map(|c| &row[schema::column_index(table, c)]),
                );
                stmt.execute(params_from_iter(params))?;
            }
            Change::Append { table, row } => {
                let at = match appenders.iter().position(|(n, _)| *n == table.name) {
                    Some(i) => i,
                    None => {
                        appenders.push((table.name, conn.appender(table.name)?));
                        appenders.len() - 1
                    }
                };
                appenders[at]
                    .1
                    .append_row(appender_params_from_iter(row.iter()))?;
            }
        }
    }
    for (_, mut appender) in appenders {
        appender.flush()?;
    }
    write_cursor(conn, cursor)
}

/// Both meta rows in one `UPDATE` (a DuckDB statement is planned at every execution, so one
/// statement instead of one upsert per row halves the cost of a small batch); the upserts only
/// while the rows are not there yet (a new or reset store).
fn write_cursor(conn: &Connection, cursor: Cursor) -> Result<()> {
    let rows = cursor_rows(cursor);
    let cases: Vec<String> = rows
        .iter()
        .map(|(name, _)| format!("WHEN '{name}' THEN CAST(? AS BIGINT)"))
        .collect();
    let names: Vec<String> = rows.iter().map(|(name, _)| format!("'{name}'")).collect();
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE {} SET value = CASE name {} END WHERE name IN ({})",
        META.name,
        cases.join(" "),
        names.join(", ")
    ))?;
    let updated = stmt.execute(params_from_iter(rows.iter().map(|(_, value)| value)))?;
    if updated == rows.len() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO {} (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        META.name
    ))?;
    for (name, value) in rows {
        stmt.execute(duckdb::params![name, value])?;
    }
    Ok(())
}

/// `UPDATE t SET … WHERE key = k AND stamp < s` ([`update_sql`]); returns the rows changed.
fn update(
    conn: &Connection,
    table: &Table,
    key: &[Value],
    stamp: u64,
    set: &[(&'static str, Set)],
) -> Result<usize> {
    let mut stmt = conn.prepare_cached(&update_sql(table, set, placeholder))?;
    let stamp = Value::Int(stamp as i64);
    // The increments as values, each beside its column.
    let adds: Vec<Value> = set
        .iter()
        .map(|(_, s)| match s {
            Set::Add(n) => Value::Int(*n),
            Set::To(_) => Value::Null,
        })
        .collect();
    let params = set
        .iter()
        .zip(&adds)
        .map(|((_, s), add)| match s {
            Set::To(v) => v,
            Set::Add(_) => add,
        })
        .chain([&stamp])
        .chain(key)
        .chain([&stamp]);
    Ok(stmt.execute(params_from_iter(params))?)
}

/// Upserts a short run one row at a time, each as its [`upsert_as_update`] first: DuckDB runs
/// that `UPDATE` in a third of the time of its `INSERT … ON CONFLICT` (which plans a duplicate-key
/// check at every execution), and it is enough for the usual row, one already there and older.
fn upsert_rows_singly(conn: &Connection, table: &'static Table, rows: &[&[Value]]) -> Result<()> {
    for row in rows {
        if let Some(Change::Update {
            key, stamp, set, ..
        }) = upsert_as_update(table, row)
            && update(conn, table, &key, stamp, &set)? == 1
        {
            continue;
        }
        let mut stmt = conn.prepare_cached(&schema::upsert_sql(table, placeholder))?;
        stmt.execute(params_from_iter(row.iter()))?;
    }
    Ok(())
}

/// Upserts `rows` (distinct keys) in one statement: the Appender fills a temporary staging
/// table of the same columns (made by `create_tables`), emptied again before the transaction
/// ends. `INSERT … SELECT … ON CONFLICT` finds the rows through the key's index; an `UPDATE …
/// FROM` was a third cheaper on a 1,000-row table but scans the table, so new keys in a
/// million-row one (orders being placed) cost 2–3× as much (`duck_statement_bench`).
fn upsert_staged(conn: &Connection, table: &Table, rows: &[&[Value]]) -> Result<()> {
    let staging = staging(table);
    {
        let mut appender = conn.appender_to_catalog_and_db(&staging, "temp", "main")?;
        for row in rows {
            appender.append_row(appender_params_from_iter(row.iter()))?;
        }
        appender.flush()?;
    }
    let rows_sql = format!(
        "SELECT {} FROM temp.main.{staging}",
        schema::idents(table.column_names())
    );
    conn.execute(&schema::upsert_rows_sql(table, &rows_sql), [])?;
    conn.execute(&format!("DELETE FROM temp.main.{staging}"), [])?;
    Ok(())
}

/// Interrupts the query on `conn` if it is still running after the time limit.
fn watchdog(conn: &Connection) -> mpsc::Sender<()> {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let handle = conn.interrupt_handle();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) =
            done_rx.recv_timeout(Duration::from_millis(limits::QUERY_TIME_MILLIS))
        {
            handle.interrupt();
        }
    });
    done_tx
}

fn cell(v: Dv) -> Cell {
    match v {
        Dv::Null => Cell::Null,
        Dv::Timestamp(unit, t) => Cell::Ts(unit.to_micros(t).div_euclid(1000)),
        Dv::Date32(days) => Cell::Date(i64::from(days)),
        Dv::Boolean(b) => Cell::Text(b.to_string()),
        Dv::TinyInt(i) => Cell::Text(i.to_string()),
        Dv::SmallInt(i) => Cell::Text(i.to_string()),
        Dv::Int(i) => Cell::Text(i.to_string()),
        Dv::BigInt(i) => Cell::Text(i.to_string()),
        Dv::HugeInt(i) => Cell::Text(i.to_string()),
        Dv::UTinyInt(i) => Cell::Text(i.to_string()),
        Dv::USmallInt(i) => Cell::Text(i.to_string()),
        Dv::UInt(i) => Cell::Text(i.to_string()),
        Dv::UBigInt(i) => Cell::Text(i.to_string()),
        Dv::UHugeInt(i) => Cell::Text(i.to_string()),
        Dv::Float(f) => Cell::Text(f.to_string()),
        Dv::Double(f) => Cell::Text(f.to_string()),
        Dv::Decimal(d) => Cell::Text(d.to_string()),
        Dv::Text(s) | Dv::Enum(s) => Cell::Text(s),
        other => Cell::Text(format!("{other:?}")),
    }
}

impl Reader for DuckReader {
    fn select(&self, sql: &str) -> Result<ResultTable> {
        let conn = self.conn.lock();
        conn.execute_batch("BEGIN TRANSACTION")?;
        let done = watchdog(&conn);
        let result = read(&conn, sql);
        drop(done);
        // Whatever the statement was, nothing it did is kept.
        let _ = conn.execute_batch("ROLLBACK");
        result.map_err(|e| match e {
            Error::Store(m) if m.contains("INTERRUPT") || m.contains("nterrupt") => {
                Error::ResourceExhausted(format!(
                    "query ran past its time limit of {} ms",
                    limits::QUERY_TIME_MILLIS
                ))
            }
            Error::Store(m) => Error::InvalidArgument(format!("sql: {m}")),
            other => other,
        })
    }

    fn dialect(&self) -> &'static str {
        "duckdb"
    }
}

fn read(conn: &Connection, sql: &str) -> Result<ResultTable> {
    // As a subquery it is one statement by construction: duckdb-rs's `prepare` would run every
    // statement before the last (`SELECT 1; COMMIT; DELETE …` would commit). The newlines keep
    // a trailing `--` comment from swallowing the closing parenthesis.
    let mut stmt = conn.prepare(&format!("SELECT * FROM (\n{sql}\n) AS query_result"))?;
    let mut rows = stmt.query([])?;
    let columns = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
    let mut out = ResultTable {
        columns,
        rows: Vec::new(),
    };
    while let Some(row) = rows.next()? {
        if out.rows.len() == limits::RESULT_ROWS_MAX {
            return Err(Error::ResourceExhausted(format!(
                "more than {} rows: add a LIMIT",
                limits::RESULT_ROWS_MAX
            )));
        }
        let mut values = Vec::with_capacity(out.columns.len());
        for (i, column) in out.columns.iter().enumerate() {
            values.push(normalise(column, cell(row.get::<_, Dv>(i)?)));
        }
        out.rows.push(values);
    }
    Ok(out)
}
