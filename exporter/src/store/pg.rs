//! The PostgreSQL store: the same tables in a real server (for BI tools), fact rows loaded with
//! `COPY ... FROM STDIN`. The exporter writes on one connection; reports and `Query` read on a
//! second one, each statement in a `READ ONLY` transaction that is rolled back, with
//! `statement_timeout` as the time limit.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use postgres::types::ToSql;
use postgres::{Client, NoTls, SimpleQueryMessage, Statement};

use crate::book::{Figures, StockBook};
use crate::change::{Change, Set};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::{self, META, TABLES, Table, Type};
use crate::store::{
    Cursor, OPEN_ORDER_LINES_SQL, Reader, Store, cursor_rows, staging, update_sql, upsert_run,
};
use crate::table::{Cell, ResultTable, normalise};
use crate::value::Value;

fn placeholder(n: usize, ty: Type) -> String {
    format!("${n}::{}", ty.sql())
}

type Param = Box<dyn ToSql + Sync>;

/// A value as a parameter of column type `ty` (NULLs must be typed too).
fn param(v: &Value, ty: Type) -> Param {
    let time = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
    match (v, ty) {
        (Value::Null, Type::Text) => Box::new(None::<String>),
        (Value::Null, Type::Int) => Box::new(None::<i64>),
        (Value::Null, Type::Bool) => Box::new(None::<bool>),
        (Value::Null, Type::Ts) => Box::new(None::<SystemTime>),
        (Value::Int(i), _) => Box::new(*i),
        (Value::Text(s), _) => Box::new(s.clone()),
        (Value::Bool(b), _) => Box::new(*b),
        (Value::Ts(ms), _) => Box::new(time(*ms)),
    }
}

fn column_type(t: &Table, c: &str) -> Type {
    t.columns[schema::column_index(t, c)].1
}

pub struct PgStore {
    client: Client,
    statements: HashMap<String, Statement>,
}

pub struct PgReader {
    client: Mutex<Client>,
    /// The role every read runs as (`SET LOCAL ROLE`), when the store could set it up.
    role: Option<&'static str>,
}

/// A role that may only read the exporter's tables: `Query` runs as it, so that even a
/// superuser connection URL cannot write server files (`COPY … TO '/file'`) or read other
/// tables through `Query`.
const REPORT_ROLE: &str = "inventory_reports";

fn connect(url: &str) -> Result<Client> {
    Client::connect(url, NoTls).map_err(|e| Error::Store(format!("connecting to PostgreSQL: {e}")))
}

/// Connects twice (writer and reader) and creates the tables if needed.
pub fn open(url: &str) -> Result<(PgStore, PgReader)> {
    let mut client = connect(url)?;
    create_tables(&mut client)?;
    let role = match create_report_role(&mut client) {
        Ok(()) => Some(REPORT_ROLE),
        Err(e) => {
            // A role without CREATEROLE: reads run with its own privileges (SERVER.md asks for
            // one without superuser or pg_write_server_files).
            tracing::warn!(error = %e, "exporter: cannot set up the {REPORT_ROLE} role; Query runs as the configured role");
            None
        }
    };
    let reader = connect(url)?;
    Ok((
        PgStore {
            client,
            statements: HashMap::new(),
        },
        PgReader {
            client: Mutex::new(reader),
            role,
        },
    ))
}

fn create_tables(client: &mut Client) -> Result<()> {
    for t in TABLES {
        client.batch_execute(&t.create_sql())?;
    }
    // The staging tables of the staged upserts: this session's own, never seen by readers.
    for t in TABLES.iter().filter(|t| t.is_entity()) {
        client.batch_execute(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS",
            staging(t),
            t.name
        ))?;
    }
    Ok(())
}

fn create_report_role(client: &mut Client) -> Result<()> {
    client.batch_execute(&format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{REPORT_ROLE}') THEN \
             CREATE ROLE {REPORT_ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; \
           END IF; \
         END $$; \
         GRANT {REPORT_ROLE} TO CURRENT_USER;"
    ))?;
    grant_reads(client);
    Ok(())
}

/// SELECT on the exporter's tables for the report role, if it exists (at open, and after a
/// reset recreates the tables).
fn grant_reads(client: &mut Client) {
    let tables: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    let grant = format!(
        "DO $$ BEGIN \
           IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{REPORT_ROLE}') THEN \
             EXECUTE 'GRANT USAGE ON SCHEMA ' || quote_ident(current_schema()) || ' TO {REPORT_ROLE}'; \
             GRANT SELECT ON {} TO {REPORT_ROLE}; \
           END IF; \
         END $$;",
        tables.join(", ")
    );
    if let Err(e) = client.batch_execute(&grant) {
        tracing::warn!(error = %e, "exporter: cannot grant reads to {REPORT_ROLE}");
    }
}

impl Store for PgStore {
    fn cursor(&mut self) -> Result<Option<Cursor>> {
        let rows = self
            .client
            .query(&format!("SELECT name, value FROM {}", META.name), &[])?;
        let mut found = false;
        let mut cursor = Cursor::default();
        for row in rows {
            let name: String = row.get(0);
            let value: i64 = row.get(1);
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
        let rows = self.client.query(
            "SELECT sku, on_hand, reserved, reorder_level, stamp, updated_at FROM stock_levels",
            &[],
        )?;
        let book = StockBook::from_rows(rows.into_iter().map(|row| {
            let updated: Option<SystemTime> = row.get(5);
            let updated_at_ms = updated
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            (
                row.get(0),
                Figures {
                    on_hand: row.get(1),
                    reserved: row.get(2),
                    reorder_level: row.get(3),
                    stamp: row.get::<_, i64>(4) as u64,
                    updated_at_ms,
                },
            )
        }));
        let lines = self.client.query(OPEN_ORDER_LINES_SQL, &[])?;
        Ok(book.with_open_lines(lines.into_iter().map(|row| {
            let quantity: i64 = row.get(2);
            (
                row.get(0),
                (row.get(1), quantity as u32, row.get::<_, i64>(3)),
            )
        })))
    }

    fn reset(&mut self) -> Result<()> {
        for t in TABLES {
            self.client
                .batch_execute(&format!("DROP TABLE IF EXISTS {}", t.name))?;
        }
        self.statements.clear();
        create_tables(&mut self.client)?;
        // New tables: the report role's grants went with the old ones.
        grant_reads(&mut self.client);
        Ok(())
    }

    fn apply(&mut self, changes: &[Change], cursor: Cursor, dedupe: bool) -> Result<()> {
        let mut tx = self.client.transaction()?;
        let statements = &mut self.statements;
        let mut prepared = |tx: &mut postgres::Transaction<'_>, sql: String| -> Result<Statement> {
            if let Some(s) = statements.get(&sql) {
                return Ok(s.clone());
            }
            let s = tx.prepare(&sql)?;
            statements.insert(sql, s.clone());
            Ok(s)
        };
        // Fact rows wait for one COPY per table at the end of the batch.
        let mut copies: Vec<(&'static Table, String)> = Vec::new();
        let mut next = 0;
        while next < changes.len() {
            let change = &changes[next];
            next += 1;
            match change {
                Change::Upsert { table, .. } => {
                    // The whole run at once: staged if long, else row by row (same order).
                    let run = upsert_run(table, &changes[next - 1..]);
                    next += run.len() - 1;
                    if run.len() >= limits::STAGED_UPSERT_ROWS_MIN {
                        let staging = staging(table);
                        let mut text = String::new();
                        for row in &run {
                            copy_row(row, &mut text);
                        }
                        copy_in(&mut tx, table, &staging, &text)?;
                        let rows = format!(
                            "SELECT {} FROM {staging}",
                            schema::idents(table.column_names())
                        );
                        tx.batch_execute(&format!(
                            "{}; TRUNCATE {staging}",
                            schema::upsert_rows_sql(table, &rows)
                        ))?;
                        continue;
                    }
                    let stmt = prepared(&mut tx, schema::upsert_sql(table, placeholder))?;
                    for row in run {
                        let params: Vec<Param> = row
                            .iter()
                            .zip(table.columns)
                            .map(|(v, (_, ty))| param(v, *ty))
                            .collect();
                        tx.execute(&stmt, &refs(&params))?;
                    }
                }
                Change::Update {
                    table,
                    key,
                    stamp,
                    set,
                } => {
                    let stmt = prepared(&mut tx, update_sql(table, set, placeholder))?;
                    let stamp = *stamp as i64;
                    let mut params: Vec<Param> = set
                        .iter()
                        .map(|(c, s)| match s {
                            Set::To(v) => param(v, column_type(table, c)),
                            Set::Add(n) => Box::new(*n) as Param,
                        })
                        .collect();
                    params.push(Box::new(stamp));
                    params.extend(
                        key.iter()
                            .zip(table.key)
                            .map(|(v, c)| param(v, column_type(table, c))),
                    );
                    params.push(Box::new(stamp));
                    tx.execute(&stmt, &refs(&params))?;
                }
                Change::Append { table, row } if dedupe => {
                    let stmt = prepared(&mut tx, schema::insert_missing_sql(table, placeholder))?;
                    let mut params: Vec<Param> = row
                        .iter()
                        .zip(table.columns)
                        .map(|(v, (_, ty))| param(v, *ty))
                        .collect();
                    params.extend(table.identity.iter().map(|c| {
                        param(&row[schema::column_index(table, c)], column_type(table, c))
                    }));
                    tx.execute(&stmt, &refs(&params))?;
                }
                Change::Append { table, row } => {
                    let at = match copies.iter().position(|(t, _)| t.name == table.name) {
                        Some(i) => i,
                        None => {
                            copies.push((table, String::new()));
                            copies.len() - 1
                        }
                    };
                    copy_row(row, &mut copies[at].1);
                }
            }
        }
        for (table, text) in copies {
            copy_in(&mut tx, table, table.name, &text)?;
        }
        let upsert_meta = format!(
            "INSERT INTO {} (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            META.name
        );
        for (name, value) in cursor_rows(cursor) {
            tx.execute(&upsert_meta, &[&name, &value])?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// One row in COPY's text format.
fn copy_row(row: &[Value], buf: &mut String) {
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            buf.push('\t');
        }
        v.copy_text(buf);
    }
    buf.push('\n');
}

/// COPYs `text` (rows of `table`'s columns) into `into` (the table or its staging table).
fn copy_in(
    tx: &mut postgres::Transaction<'_>,
    table: &Table,
    into: &str,
    text: &str,
) -> Result<()> {
    let cols: Vec<String> = table.column_names().map(schema::ident).collect();
    let mut writer = tx.copy_in(&format!("COPY {into} ({}) FROM STDIN", cols.join(", ")))?;
    writer
        .write_all(text.as_bytes())
        .map_err(|e| Error::Store(format!("COPY into {into}: {e}")))?;
    writer.finish()?;
    Ok(())
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl Reader for PgReader {
    fn select(&self, sql: &str) -> Result<ResultTable> {
        let mut client = self.client.lock();
        let role = self
            .role
            .map_or(String::new(), |r| format!("; SET LOCAL ROLE {r}"));
        client.batch_execute(&format!(
            "BEGIN READ ONLY; SET LOCAL statement_timeout = {}{role}",
            limits::QUERY_TIME_MILLIS
        ))?;
        // Preparing it first makes it one statement by construction (the simple protocol
        // below would run `SELECT 1; COMMIT; DELETE …` as three); the rows are then read as
        // text through the simple protocol.
        let result = client.prepare(sql).and_then(|_| client.simple_query(sql));
        // Whatever the statement was, nothing it did is kept.
        let _ = client.batch_execute("ROLLBACK");
        let messages = result.map_err(|e| {
            let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
            match code.as_str() {
                "57014" => Error::ResourceExhausted(format!(
                    "query ran past its time limit of {} ms",
                    limits::QUERY_TIME_MILLIS
                )),
                "" => Error::Store(e.to_string()),
                _ => Error::InvalidArgument(format!(
                    "sql: {}",
                    e.as_db_error()
                        .map_or(e.to_string(), |d| d.message().to_string())
                )),
            }
        })?;
        let mut out = ResultTable::default();
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(columns) => {
                    out.columns = columns.iter().map(|c| c.name().to_string()).collect();
                }
                SimpleQueryMessage::Row(row) => {
                    if out.rows.len() == limits::RESULT_ROWS_MAX {
                        return Err(Error::ResourceExhausted(format!(
                            "more than {} rows: add a LIMIT",
                            limits::RESULT_ROWS_MAX
                        )));
                    }
                    if out.columns.is_empty() {
                        out.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                    }
                    let values = out
                        .columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let cell = match row.get(i) {
                                None => Cell::Null,
                                Some(text) => Cell::Text(text.to_string()),
                            };
                            normalise(c, cell)
                        })
                        .collect();
                    out.rows.push(values);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn dialect(&self) -> &'static str {
        "postgres"
    }
}
