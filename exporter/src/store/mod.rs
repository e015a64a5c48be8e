//! The analytical stores: DuckDB (an embedded file, the default) and PostgreSQL (a server, for
//! BI tools). Both get the same tables ([`crate::schema`]) and the same changes; the exporter
//! writes through [`Store`], reports and `Query` read through [`Reader`].

pub mod duck;
pub mod pg;

use std::collections::HashSet;

use crate::book::StockBook;
use crate::change::{Change, Set};
use crate::error::Result;
use crate::schema::{self, Placeholder, Table};
use crate::table::ResultTable;
use crate::value::Value;

/// The exporter's durable position, kept in the store's `export_meta` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Every record at or below this LSN is in the store.
    pub lsn: u64,
    /// Fact rows of records at or below this LSN may already be in the store (from the
    /// snapshot the store was rebuilt from): insert them only if missing.
    pub rebuild_lsn_end: u64,
}

/// The writing side of a store, owned by the exporter's thread.
pub trait Store: Send {
    /// The cursor, or `None` for a new store (or one whose rebuild did not finish).
    fn cursor(&mut self) -> Result<Option<Cursor>>;
    /// The `stock_levels` table and the open orders' lines as the exporter's book.
    fn book(&mut self) -> Result<StockBook>;
    /// Drops and recreates every table (before a rebuild).
    fn reset(&mut self) -> Result<()>;
    /// Applies `changes` in order and sets the cursor, in one transaction. `dedupe`: insert fact
    /// rows only when no row with their identity exists.
    fn apply(&mut self, changes: &[Change], cursor: Cursor, dedupe: bool) -> Result<()>;
}

/// The reading side: runs one read-only statement (in a transaction that is rolled back, with
/// the time limit) and returns its rows normalised.
pub trait Reader: Send + Sync {
    fn select(&self, sql: &str) -> Result<ResultTable>;
    /// "duckdb" or "postgres": picks per-store report variants.
    fn dialect(&self) -> &'static str;
}

/// `UPDATE t SET c = v, d = d + v, stamp = s WHERE key = k AND stamp < s`, and the order of its
/// parameters is: the set values, the stamp, the key values, the stamp.
pub fn update_sql(t: &Table, set: &[(&'static str, Set)], placeholder: Placeholder) -> String {
    let mut n = 0;
    let mut next = |ty| {
        n += 1;
        placeholder(n, ty)
    };
    let ty = |c: &str| t.columns[schema::column_index(t, c)].1;
    let mut sets: Vec<String> = set
        .iter()
        .map(|(c, s)| match s {
            Set::To(_) => format!("{} = {}", schema::ident(c), next(ty(c))),
            Set::Add(_) => format!("{0} = {0} + {1}", schema::ident(c), next(ty(c))),
        })
        .collect();
    sets.push(format!("stamp = {}", next(schema::Type::Int)));
    let keys: Vec<String> = t
        .key
        .iter()
        .map(|k| format!("{} = {}", schema::ident(k), next(ty(k))))
        .collect();
    let stamp = next(schema::Type::Int);
    format!(
        "UPDATE {} SET {} WHERE {} AND stamp < {stamp}",
        t.name,
        sets.join(", "),
        keys.join(" AND ")
    )
}

/// An upsert's effect on a row that is already there and older, as the [`Change::Update`]
/// that has it: every column the upsert overwrites set to the row's value, under the row's
/// stamp ([`update_sql`] sets `stamp` itself). An update that changes nothing leaves the upsert
/// to do (the row is not there, or not older). `None` for a table without stamps.
pub fn upsert_as_update(table: &'static Table, row: &[Value]) -> Option<Change> {
    let stamp = match row.get(table.column_names().position(|c| c == "stamp")?) {
        Some(Value::Int(stamp)) => *stamp as u64,
        _ => return None,
    };
    Some(Change::Update {
        table,
        key: table
            .key
            .iter()
            .map(|c| row[schema::column_index(table, c)].clone())
            .collect(),
        stamp,
        set: schema::updated_columns(table)
            .filter(|(c, _)| *c != "stamp")
            .map(|(c, _)| (c, Set::To(row[schema::column_index(table, c)].clone())))
            .collect(),
    })
}

/// The lines of the orders neither delivered nor cancelled, for the book
/// ([`StockBook::with_open_lines`]): order_id, sku, quantity, unit_price_cents.
pub const OPEN_ORDER_LINES_SQL: &str = "SELECT l.order_id, l.sku, l.quantity, l.unit_price_cents \
     FROM order_lines l JOIN orders o ON o.order_id = l.order_id \
     WHERE o.delivered_at IS NULL AND o.cancelled_at IS NULL";

/// The rows of the upserts of `table` at the start of `changes`, up to the first change of
/// another kind or table, or the first key seen twice: keys are distinct in one statement, so
/// the order of the rows inside it does not matter (each key's upserts stay in feed order).
pub fn upsert_run<'c>(table: &Table, changes: &'c [Change]) -> Vec<&'c [Value]> {
    let mut keys = HashSet::new();
    let mut run = Vec::new();
    for change in changes {
        let Change::Upsert { table: t, row } = change else {
            break;
        };
        if t.name != table.name || !keys.insert(change.key()) {
            break;
        }
        run.push(row.as_slice());
    }
    run
}

/// The name of a table's staging table (temporary, the writer connection's own), which the
/// staged upserts of [`upsert_run`]s go through.
pub fn staging(t: &Table) -> String {
    format!("staging_{}", t.name)
}

/// The meta rows of a cursor.
pub fn cursor_rows(cursor: Cursor) -> [(&'static str, i64); 2] {
    [
        ("cursor_lsn", cursor.lsn as i64),
        ("rebuild_lsn_end", cursor.rebuild_lsn_end as i64),
    ]
}

/// Which store, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    DuckDb { path: std::path::PathBuf },
    Postgres { url: String },
}

/// Opens the configured store: its writer (for the exporter) and its reader.
pub fn open(config: &StoreConfig) -> Result<(Box<dyn Store>, std::sync::Arc<dyn Reader>)> {
    match config {
        StoreConfig::DuckDb { path } => {
            let (store, reader) = duck::open(path)?;
            Ok((Box::new(store), std::sync::Arc::new(reader)))
        }
        StoreConfig::Postgres { url } => {
            let (store, reader) = pg::open(url)?;
            Ok((Box::new(store), std::sync::Arc::new(reader)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{PRODUCTS, STOCK_LEVELS};

    fn level(sku: &str, on_hand: i64) -> Change {
        Change::Upsert {
            table: &STOCK_LEVELS,
            row: vec![
                Value::text(sku),
                Value::Int(on_hand),
                Value::Int(0),
                Value::Int(on_hand),
                Value::Int(0),
                Value::Ts(1),
                Value::Int(on_hand),
            ],
        }
    }

    fn skus(run: &[&[Value]]) -> Vec<Value> {
        run.iter().map(|row| row[0].clone()).collect()
    }

    fn numbered(n: usize, _: schema::Type) -> String {
        format!("${n}")
    }

    #[test]
    fn an_upserts_update_sets_what_the_upsert_overwrites_and_keeps_its_stamp_rule() {
        let row: Vec<Value> = (0..7).map(Value::Int).collect();
        let Some(Change::Update {
            key, stamp, set, ..
        }) = upsert_as_update(&STOCK_LEVELS, &row)
        else {
            panic!("stock_levels has stamps");
        };
        assert_eq!(
            update_sql(&STOCK_LEVELS, &set, numbered),
            "UPDATE stock_levels SET \"on_hand\" = $1, \"reserved\" = $2, \"available\" = $3, \
             \"reorder_level\" = $4, \"updated_at\" = $5, stamp = $6 \
             WHERE \"sku\" = $7 AND stamp < $8"
        );
        // Its parameters (the set values, the stamp, the key, the stamp): the row's columns
        // 1–5, its stamp 6, its key 0.
        let values: Vec<&Value> = set
            .iter()
            .map(|(_, s)| match s {
                Set::To(v) => v,
                Set::Add(_) => panic!("an upsert sets values"),
            })
            .collect();
        assert_eq!(
            values,
            [1, 2, 3, 4, 5].map(Value::Int).iter().collect::<Vec<_>>()
        );
        assert_eq!((stamp, key), (6, vec![Value::Int(0)]));
        // A table with insert-only columns: those stay out of the SET, as in the upsert.
        let with_insert_only = schema::TABLES
            .iter()
            .find(|t| !t.insert_only.is_empty())
            .expect("some table keeps columns from its insert");
        let mut row: Vec<Value> = vec![Value::Null; with_insert_only.columns.len()];
        row[schema::column_index(with_insert_only, "stamp")] = Value::Int(1);
        let Some(Change::Update { set, .. }) = upsert_as_update(with_insert_only, &row) else {
            panic!("entity tables have stamps");
        };
        for c in with_insert_only.insert_only {
            assert!(set.iter().all(|(s, _)| s != c), "{set:?}");
        }
        assert_eq!(
            upsert_as_update(&schema::META, &[Value::text("cursor_lsn"), Value::Int(1)]),
            None
        );
    }

    #[test]
    fn a_run_stops_at_a_repeated_key_and_at_another_table() {
        let changes = vec![level("A", 1), level("B", 2), level("A", 3), level("C", 4)];
        // The second upsert of A must wait for the first one's statement.
        assert_eq!(
            skus(&upsert_run(&STOCK_LEVELS, &changes)),
            [Value::text("A"), Value::text("B")]
        );
        assert_eq!(
            skus(&upsert_run(&STOCK_LEVELS, &changes[2..])),
            [Value::text("A"), Value::text("C")]
        );
        let mut mixed = vec![level("A", 1)];
        mixed.push(Change::Upsert {
            table: &PRODUCTS,
            row: vec![Value::text("B")],
        });
        mixed.push(level("C", 3));
        assert_eq!(skus(&upsert_run(&STOCK_LEVELS, &mixed)), [Value::text("A")]);
    }
}
