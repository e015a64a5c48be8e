//! The exporter inside inventoryd: kill -9 while it exports, restart, and every table's rows
//! and sums equal what the engine says (exactly once: each SKU's stock movements chain
//! before → after and add up to its on-hand); Admin.Status.export_lsn reaches durable_lsn; the
//! Reports service answers NOT_FOUND / INVALID_ARGUMENT as API.md says, and Query refuses
//! writes; `invctl report --db` reads the file once the server is stopped.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use proto::inventory::v1 as pb;
use tonic::Code;

const SKUS: usize = 4;

fn sku(i: usize) -> String {
    format!("SKU-{}", i % SKUS)
}

async fn reports(server: &Server) -> pb::reports_client::ReportsClient<tonic::transport::Channel> {
    pb::reports_client::ReportsClient::new(server.channel().await)
}

async fn query(server: &Server, sql: &str) -> Result<pb::ReportResult, tonic::Status> {
    reports(server)
        .await
        .query(pb::QueryRequest { sql: sql.into() })
        .await
        .map(|r| r.into_inner())
}

const CONFIG: &str = "[exporter]\nbatch_records = 8\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_export_then_restart_exports_every_change_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Opts::default().config(CONFIG));
    let mut inv = server.inventory().await;
    for i in 0..SKUS {
        inv.upsert(&sku(i), 5).await.unwrap();
        inv.receive(&format!("init-{i}"), &sku(i), 10_000)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let mut client = Inv::new(server.channel().await);
        tasks.push(tokio::spawn(async move {
            for i in 0..400 {
                let s = sku(w + i);
                let id = format!("h-{w}-{i}");
                let ok = match i % 3 {
                    0 => client.receive(&format!("r-{w}-{i}"), &s, 2).await.is_ok(),
                    1 => {
                        client.reserve(&id, &[(&s, 3)], 0).await.is_ok()
                            && client.commit(&id, &[]).await.is_ok()
                    }
                    _ => {
                        client.reserve(&id, &[(&s, 1)], 0).await.is_ok()
                            && client.release(&id).await.is_ok()
                    }
                };
                if !ok {
                    return;
                }
            }
        }));
    }
    // Kill while the load runs and the exporter is mid-stream (small batches).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = server.status().await;
        if s.export_lsn > 200 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }

    let server = Server::start(&data, Opts::default().config(CONFIG));
    let lsn = server.export_caught_up().await;
    assert!(lsn > 0);
    let mut inv = server.inventory().await;
    let engine: HashMap<String, pb::StockLevel> = inv
        .all_stock()
        .await
        .into_iter()
        .map(|s| (s.sku.clone(), s))
        .collect();
    let levels = query(
        &server,
        "SELECT sku, on_hand, reserved, available FROM stock_levels ORDER BY sku",
    )
    .await
    .unwrap();
    assert_eq!(levels.rows.len(), SKUS);
    assert!(levels.export_lsn >= lsn);
    for row in &levels.rows {
        let v = &row.values;
        let e = &engine[&v[0]];
        assert_eq!(
            (v[1].as_str(), v[2].as_str(), v[3].as_str()),
            (
                e.on_hand.to_string().as_str(),
                e.reserved.to_string().as_str(),
                e.available.to_string().as_str()
            ),
            "{}",
            v[0]
        );
        let moved = query(
            &server,
            &format!(
                "SELECT CAST(SUM(on_hand_after - on_hand_before) AS BIGINT), \
                 CAST(SUM(reserved_after - reserved_before) AS BIGINT) FROM stock_movements WHERE sku = '{}'",
                v[0]
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            moved.rows[0].values,
            vec![e.on_hand.to_string(), e.reserved.to_string()],
            "movements of {} (a lost or doubled batch breaks this)",
            v[0]
        );
        let gaps = query(
            &server,
            &format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT on_hand_before, reserved_before, \
                 LAG(on_hand_after) OVER (ORDER BY lsn, event_index) AS prev_on_hand, \
                 LAG(reserved_after) OVER (ORDER BY lsn, event_index) AS prev_reserved \
                 FROM stock_movements WHERE sku = '{}') t \
                 WHERE prev_on_hand <> on_hand_before OR prev_reserved <> reserved_before",
                v[0]
            ),
        )
        .await
        .unwrap();
        assert_eq!(gaps.rows[0].values, vec!["0"], "chain of {}", v[0]);
    }
    // One movement row per (record, event, SKU): none twice.
    let dup = query(
        &server,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT lsn, event_index, sku FROM stock_movements \
         GROUP BY lsn, event_index, sku HAVING COUNT(*) > 1) d",
    )
    .await
    .unwrap();
    assert_eq!(dup.rows[0].values, vec!["0"]);
    let products = query(&server, "SELECT CAST(COUNT(*) AS BIGINT) FROM products")
        .await
        .unwrap();
    assert_eq!(products.rows[0].values, vec![SKUS.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_service_errors_query_refusals_and_the_db_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Opts::default());
    let mut r = reports(&server).await;

    // An empty store: empty tables, not errors (UNAVAILABLE only until the exporter has opened it).
    let deadline = Instant::now() + Duration::from_secs(60);
    let empty = loop {
        match r
            .run_report(pb::RunReportRequest {
                name: "monthly_sales".into(),
                params: Default::default(),
            })
            .await
        {
            Ok(t) => break t.into_inner(),
            Err(e) if e.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(empty.columns, ["month", "sku", "units", "revenue_cents"]);
    assert!(empty.rows.is_empty());

    let list = r
        .list_reports(pb::ListReportsRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = list.reports.iter().map(|r| r.name.as_str()).collect();
    for name in [
        "monthly_sales",
        "weekly_sales",
        "refunds_monthly",
        "stock_levels",
        "low_stock",
        "pending_orders",
        "top_products",
        "customer_tiers",
        "inventory_turnover",
        "sales_ranking",
        "customer_ltv",
        "revenue_trend",
        "slow_movers",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let run = |name: &str, k: &str, v: &str| pb::RunReportRequest {
        name: name.into(),
        params: [(k.to_string(), v.to_string())].into_iter().collect(),
    };
    let err = r
        .run_report(run("no_such", "from", "2026-01-01"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = r
        .run_report(run("monthly_sales", "from", "yesterday"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("from"), "{}", err.message());
    let err = r
        .run_report(run("top_products", "limit", "-3"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("limit"), "{}", err.message());

    let mut inv = server.inventory().await;
    inv.upsert("A", 5).await.unwrap();
    inv.receive("r1", "A", 3).await.unwrap();
    server.export_caught_up().await;
    for sql in [
        "DELETE FROM products",
        "INSERT INTO products (sku) VALUES ('B')",
        "ATTACH 'x.db'",
        "SET threads = 1",
        "COPY products TO 'out.csv'",
    ] {
        let err = query(&server, sql).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{sql}");
    }
    let low = r.run_report(run("low_stock", "", "")).await;
    assert_eq!(
        low.unwrap_err().code(),
        Code::InvalidArgument,
        "unknown param ''"
    );
    let low = r
        .run_report(pb::RunReportRequest {
            name: "low_stock".into(),
            params: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(low.rows.len(), 1, "A has 3 < 5");
    assert_eq!(low.rows[0].values[0], "A");

    // Stopped: the file is read directly.
    assert!(server.sigterm().success());
    let db = data.join("analytics.duckdb");
    let (code, out, err) = invctl(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "stock_levels",
        "--csv",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("sku,name,on_hand"), "{out}");
    assert!(out.contains("A,"), "{out}");
    let svg = dir.path().join("chart.svg");
    let (code, _, err) = invctl(&[
        "report",
        "--db",
        db.to_str().unwrap(),
        "monthly_sales",
        "--chart",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let (code, _, _) = invctl(&[
        "query",
        "--db",
        db.to_str().unwrap(),
        "DELETE FROM products",
    ]);
    assert_eq!(code, 5, "INVALID_ARGUMENT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_never_stops_the_storefront() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: the exporter keeps retrying, the server serves anyway.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "[exporter]\nstore = \"postgres\"\npostgres_url = \"host=127.0.0.1 port={port} user=nobody dbname=none connect_timeout=1\"\n"
    );
    let server = Server::start(&dir.path().join("data"), Opts::default().config(config));
    let mut inv = server.inventory().await;
    inv.upsert("A", 1).await.unwrap();
    inv.receive("r1", "A", 3).await.unwrap();
    let err = reports(&server)
        .await
        .run_report(pb::RunReportRequest {
            name: "stock_levels".into(),
            params: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(server.status().await.export_lsn, 0);
}
