//! The exporter against real stores: the same change feed into DuckDB and into a throw-away
//! PostgreSQL cluster gives identical report results and matches the engine (exactly once:
//! every stock movement chains before → after); a store rebuilt from a snapshot matches the
//! engine; reports on an empty store are empty tables; `Query` is read-only; the exporter
//! thread runs at its configured (lower) priority.

mod common;

use std::collections::BTreeMap;

use common::*;
use exporter::reports;
use exporter::{Error, Reader, StoreConfig};

fn all_reports(reader: &dyn Reader) -> BTreeMap<String, exporter::ResultTable> {
    let mut out = BTreeMap::new();
    for r in reports::catalogue() {
        let mut variants: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
        if r.params.contains(&"from".to_string()) {
            variants.push(BTreeMap::from([
                ("from".into(), "2026-02-01".into()),
                ("to".into(), "2026-04-01".into()),
            ]));
        }
        if r.name == "revenue_trend" {
            variants.push(BTreeMap::from([("period".into(), "quarter".into())]));
        }
        for (i, params) in variants.iter().enumerate() {
            let t = reports::run(reader, r.name, params)
                .unwrap_or_else(|e| panic!("{} on {}: {e}", r.name, reader.dialect()));
            out.insert(format!("{}#{i}", r.name), t);
        }
    }
    out
}

fn assert_query_is_read_only(reader: &dyn Reader) {
    let before = scalar(reader, "SELECT CAST(COUNT(*) AS BIGINT) FROM orders");
    for sql in [
        "DELETE FROM orders",
        "INSERT INTO orders (order_id) VALUES ('x')",
        "UPDATE stock_levels SET on_hand = 0",
        "SELECT 1; DELETE FROM orders",
        "ATTACH 'other.db' AS other",
        "COPY orders TO '/tmp/exporter-query-test.csv'",
        "SET threads = 1",
        "DROP TABLE orders",
    ] {
        assert!(
            matches!(reports::query(reader, sql), Err(Error::InvalidArgument(_))),
            "{sql} on {}",
            reader.dialect()
        );
    }
    // By construction, not by the check: even run directly, a write leaves no trace.
    let _ = reader.select("DELETE FROM orders");
    let _ = reader.select("SELECT 1; COMMIT; DELETE FROM orders");
    let _ = reader.select("COPY orders TO '/tmp/exporter-query-test.csv'");
    assert_eq!(
        scalar(reader, "SELECT CAST(COUNT(*) AS BIGINT) FROM orders"),
        before
    );
    assert!(!std::path::Path::new("/tmp/exporter-query-test.csv").exists());
    let t = reports::query(
        reader,
        "SELECT order_id FROM orders ORDER BY order_id LIMIT 2",
    )
    .unwrap();
    assert_eq!(t.columns, vec!["order_id"]);
    // API.md's column names, as users write them (`at` is a DuckDB keyword: quoted).
    let t = reports::query(
        reader,
        "SELECT \"at\", sku, kind FROM stock_movements ORDER BY lsn LIMIT 1",
    )
    .unwrap();
    assert_eq!(t.columns, vec!["at", "sku", "kind"]);
    if reader.dialect() == "duckdb" {
        let t = reports::query(reader, "DESCRIBE stock_movements").unwrap();
        assert!(t.rows.iter().any(|r| r[0] == "at"), "{t:?}");
    }
}

#[test]
fn the_same_feed_gives_identical_reports_in_duckdb_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(&dir.path().join("data"));
    let created = workload(&o, 80);

    let duck = start(
        StoreConfig::DuckDb {
            path: dir.path().join("analytics.duckdb"),
        },
        &o,
    );
    caught_up(&duck, &o.engine);
    let duck_reader = duck.reader().expect("store open");
    assert_matches_engine(duck_reader.as_ref(), &o.engine, created, true);
    duck.stop();

    let pg = PgCluster::start();
    let postgres = start(
        StoreConfig::Postgres {
            url: pg.url.clone(),
        },
        &o,
    );
    caught_up(&postgres, &o.engine);
    let pg_reader = postgres.reader().expect("store open");
    assert_matches_engine(pg_reader.as_ref(), &o.engine, created, true);

    let (a, b) = (
        all_reports(duck_reader.as_ref()),
        all_reports(pg_reader.as_ref()),
    );
    for (name, t) in &a {
        assert_eq!(
            Some(t),
            b.get(name),
            "{name} differs between DuckDB and PostgreSQL"
        );
    }
    let monthly = &a["monthly_sales#0"];
    assert_eq!(monthly.columns, ["month", "sku", "units", "revenue_cents"]);
    assert!(monthly.rows.len() >= 6, "{monthly:?}");
    assert!(
        monthly
            .rows
            .iter()
            .all(|r| r[0].len() == 7 && r[0].starts_with("2026-"))
    );
    // Variants: #0 defaults, #1 from/to, #2 period = quarter.
    assert!(!a["revenue_trend#2"].rows.is_empty());
    assert_eq!(a["revenue_trend#2"].columns[0], "quarter");
    // Delivered revenue per the engine's own orders equals the report's total.
    let total: i64 = monthly
        .rows
        .iter()
        .map(|r| r[3].parse::<i64>().unwrap())
        .sum();
    let expected = scalar(
        duck_reader.as_ref(),
        "SELECT CAST(SUM(l.quantity * l.unit_price_cents) AS BIGINT) FROM orders o \
         JOIN order_lines l ON l.order_id = o.order_id WHERE o.delivered_at IS NOT NULL",
    );
    assert_eq!(total.to_string(), expected);

    assert_query_is_read_only(duck_reader.as_ref());
    assert_query_is_read_only(pg_reader.as_ref());
    postgres.stop();
}

#[test]
fn reports_on_an_empty_store_are_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (_, reader) = exporter::store::open(&StoreConfig::DuckDb {
        path: dir.path().join("empty.duckdb"),
    })
    .unwrap();
    for (name, t) in all_reports(reader.as_ref()) {
        assert!(t.rows.is_empty(), "{name}: {t:?}");
        assert!(!t.columns.is_empty(), "{name} has no columns");
    }
}

#[test]
fn a_store_rebuilt_from_a_snapshot_matches_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(&dir.path().join("data"));
    let created = workload(&o, 150);
    // The snapshot lets the WAL's first segments go, so a new store cannot replay from LSN 1.
    o.snapshotter.take(&o.engine).unwrap();
    assert!(
        o.engine.wal().unwrap().oldest_lsn() > 1,
        "WAL not truncated"
    );
    let duck = start(
        StoreConfig::DuckDb {
            path: dir.path().join("analytics.duckdb"),
        },
        &o,
    );
    caught_up(&duck, &o.engine);
    assert_eq!(duck.stats().rebuilds_total, 1);
    // More changes after the rebuild are followed from the feed.
    o.engine
        .execute(engine::Op::Receive {
            receipt_id: "late".into(),
            sku: "SKU-1".into(),
            quantity: 5,
        })
        .unwrap();
    caught_up(&duck, &o.engine);
    assert_matches_engine(
        duck.reader().expect("store open").as_ref(),
        &o.engine,
        created,
        false,
    );
    duck.stop();
    // While the exporter is down, an order shipped before is delivered: the restarted exporter
    // has its lines for the sales rows from the store (the open orders' lines).
    let stopped_at = o.engine.stats().durable_lsn;
    o.engine
        .execute(engine::Op::DeliverOrder {
            order_id: "o18".into(),
        })
        .unwrap();

    // A restart resumes from the store's cursor: nothing replayed twice, nothing rebuilt.
    let again = start(
        StoreConfig::DuckDb {
            path: dir.path().join("analytics.duckdb"),
        },
        &o,
    );
    caught_up(&again, &o.engine);
    assert_eq!(again.stats().rebuilds_total, 0);
    assert_eq!(
        again.stats().records_total,
        o.engine.stats().durable_lsn - stopped_at
    );
    assert_eq!(
        scalar(
            again.reader().expect("store open").as_ref(),
            "SELECT CAST(COUNT(*) AS BIGINT) FROM sales WHERE order_id = 'o18'"
        ),
        "2"
    );
    assert_matches_engine(
        again.reader().expect("store open").as_ref(),
        &o.engine,
        created,
        false,
    );
}

/// The ids of this process's threads named `name` (Linux `/proc`).
fn thread_ids(name: &str) -> Vec<i32> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            (comm.trim_end() == name).then_some(())?;
            dir.file_name()?.to_str()?.parse().ok()
        })
        .collect()
}

/// The nice values of this process's threads named `name` (Linux `/proc`).
fn thread_nice_values(name: &str) -> Vec<i32> {
    thread_ids(name)
        .into_iter()
        .filter_map(|tid| {
            // None: the thread ended meanwhile.
            let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
            // After the `(comm)` field: state is field 3 of stat(5), nice field 19.
            let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
            Some(fields[19 - 3].parse().unwrap())
        })
        .collect()
}

/// Started from a thread with a short CPU slice (as the server starts it from a runtime thread
/// when `thread_slice_micros` is set), the export must not inherit that slice.
const STARTER_SLICE_MICROS: u64 = 300;

#[test]
fn the_exporter_thread_runs_at_its_configured_nice_value_and_the_default_slice() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(&dir.path().join("data"));
    workload(&o, 5);
    let config = exporter::ExporterConfig {
        store: StoreConfig::DuckDb {
            path: dir.path().join("analytics.duckdb"),
        },
        batch_records: 64,
        nice: 7,
        batch_interval_millis: exporter::limits::BATCH_INTERVAL_MILLIS_DEFAULT,
    };
    let (engine, snapshotter) = (o.engine.clone(), o.snapshotter.clone());
    let duck = std::thread::spawn(move || {
        engine::sched::set_current_thread_slice(STARTER_SLICE_MICROS).unwrap();
        exporter::Exporter::start(config, engine, snapshotter).unwrap()
    })
    .join()
    .unwrap();
    // Caught up: the thread has lowered its priority (before opening the store) and exported.
    caught_up(&duck, &o.engine);
    // Other tests' exporters run in parallel at nice 0; this one's thread must be at 7.
    let found = thread_nice_values("exporter");
    assert!(
        found.contains(&7),
        "exporter threads' nice values: {found:?}"
    );
    let slices: Vec<u64> = thread_ids("exporter")
        .into_iter()
        .filter_map(|tid| engine::sched::thread_slice_micros(tid).ok())
        .collect();
    assert!(
        !slices.is_empty() && !slices.contains(&STARTER_SLICE_MICROS),
        "exporter threads' slices (µs): {slices:?}"
    );
    duck.stop();
}

/// A `stock_levels` row as the exporter writes it: sku, on_hand, reserved, available,
/// reorder_level, updated_at, stamp.
fn level(sku: &str, on_hand: i64, stamp: u64) -> exporter::change::Change {
    use exporter::value::Value;
    exporter::change::Change::Upsert {
        table: &exporter::schema::STOCK_LEVELS,
        row: vec![
            Value::text(sku),
            Value::Int(on_hand),
            Value::Int(0),
            Value::Int(on_hand),
            Value::Int(5),
            Value::ts(1_700_000_000_000 + stamp),
            Value::int(stamp),
        ],
    }
}

/// Upsert runs of every length a store treats differently (one row, two, and more than
/// either store's staged threshold) insert new keys, overwrite older rows and leave newer ones
/// alone; the cursor written with each batch is the one read back.
fn upserts_follow_the_stamp_rule(store: &mut dyn exporter::store::Store, reader: &dyn Reader) {
    use exporter::store::Cursor;
    let levels = |reader: &dyn Reader| {
        reader
            .select("SELECT sku, on_hand, stamp FROM stock_levels ORDER BY sku")
            .expect("select")
            .rows
            .iter()
            .map(|r| r.join(" "))
            .collect::<Vec<_>>()
    };
    let many = exporter::limits::STAGED_UPSERT_ROWS_MIN + 2;
    let batches: Vec<Vec<exporter::change::Change>> = vec![
        vec![level("A", 10, 10)],
        // A newer, B new.
        vec![level("A", 20, 20), level("B", 7, 5)],
        // A older: kept at 20.
        vec![level("A", 15, 15)],
        // A run past the staged thresholds: A older, B newer, the rest new.
        (0..many)
            .map(|i| match i {
                0 => level("A", 1, 1),
                1 => level("B", 8, 30),
                i => level(&format!("C{i:02}"), i as i64, 40),
            })
            .collect(),
    ];
    for (i, changes) in batches.iter().enumerate() {
        let cursor = Cursor {
            lsn: 100 + i as u64,
            rebuild_lsn_end: 50 - i as u64,
        };
        store.apply(changes, cursor, false).expect("apply");
        assert_eq!(
            store.cursor().expect("cursor"),
            Some(cursor),
            "after batch {i}"
        );
    }
    let mut expected = vec!["A 20 20".to_string(), "B 8 30".to_string()];
    expected.extend((2..many).map(|i| format!("C{i:02} {i} 40")));
    assert_eq!(levels(reader), expected);
}

#[test]
fn upserts_of_every_run_length_follow_the_stamp_rule_in_duckdb_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let (mut duck, duck_reader) =
        exporter::store::duck::open(&dir.path().join("analytics.duckdb")).expect("open duckdb");
    upserts_follow_the_stamp_rule(&mut duck, &duck_reader);
    let pg = PgCluster::start();
    let (mut store, reader) = exporter::store::pg::open(&pg.url).expect("open postgres");
    upserts_follow_the_stamp_rule(&mut store, &reader);
}
