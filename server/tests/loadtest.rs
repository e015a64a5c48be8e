//! The load test (issue 7) against a real `inventoryd`: each scenario runs for a few seconds at
//! a small rate and its end-of-run check passes with exact figures; and the check fails when
//! the server's figures are tampered with between the run and the check.
//!
//! No timing assertions: the rates are far below what the server sustains, so every assertion
//! is on counts (units acknowledged, refused, held, sold), which the seed and the stock fix.

mod common;

use common::{Opts, Server};
use loadtest::{Config, Scenario, Unit};

fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    (dir, server)
}

fn config(server: &Server, scenario: Scenario, run_id: &str) -> Config {
    let mut c = Config::new(scenario, &server.url());
    c.run_id = run_id.to_string();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_sale_sells_out_exactly_and_the_check_passes() {
    let (_dir, server) = start();
    let mut c = config(&server, Scenario::FlashSale, "flash");
    c.rate_per_second = 200;
    c.duration_seconds = 3;
    c.stock_per_sku = 150;
    let s = loadtest::run(&c).await.unwrap();
    let check = s.check.clone().unwrap();
    assert!(check.passed, "{check:#?}");
    // 600 arrivals want the one SKU; exactly its 150 units are held, the rest refused.
    assert_eq!(s.measured.arrivals_done, 600);
    assert_eq!(s.measured.units_ok, 150, "{:?}", s.measured);
    assert_eq!(check.units_held, 150);
    assert_eq!(check.oversold_units, 0);
    assert_eq!(
        s.measured.errors_by_code.get("FAILED_PRECONDITION"),
        Some(&450)
    );
    assert_eq!(check.uncertain_units, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_holds_are_all_reflected_unary_and_batched() {
    let (_dir, server) = start();
    for (batch, run_id) in [(1, "cat1"), (16, "cat16")] {
        let mut c = config(&server, Scenario::Catalog, run_id);
        c.skus = 2_000;
        c.rate_per_second = 100;
        c.duration_seconds = 3;
        c.batch = batch;
        let s = loadtest::run(&c).await.unwrap();
        let check = s.check.clone().unwrap();
        assert!(check.passed, "batch {batch}: {check:#?}");
        let units = 300 * batch as u64;
        assert_eq!(s.measured.units_ok, units, "{:?}", s.measured);
        assert!(s.measured.errors_by_code.is_empty(), "{:?}", s.measured);
        assert_eq!(check.units_held, units);
        assert_eq!(check.skus_checked, 2_000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_hold_think_then_commit_or_release() {
    let (_dir, server) = start();
    let mut c = config(&server, Scenario::Users, "users");
    c.users = 300;
    c.rate_per_second = 150;
    c.think_millis = 1_000;
    c.skus = 50;
    c.commit_percent = 50;
    let s = loadtest::run(&c).await.unwrap();
    let check = s.check.clone().unwrap();
    assert!(check.passed, "{check:#?}");
    // Every user began and ended; nothing is left held; about half committed.
    assert_eq!(s.measured.units_ok, 600, "{:?}", s.measured);
    assert_eq!(check.units_held, 0);
    assert!(
        (90..=210).contains(&check.units_deducted),
        "{} committed",
        check.units_deducted
    );
    assert_eq!(check.uncertain_units, 0);
}

/// The order flow (Orders, issue 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_flow_leaves_exact_stock() {
    let (_dir, server) = start();
    let mut c = config(&server, Scenario::Checkout, "checkout");
    c.skus = 20;
    c.rate_per_second = 40;
    c.duration_seconds = 3;
    c.commit_percent = 60;
    let s = loadtest::run(&c).await.unwrap();
    let check = s.check.clone().unwrap();
    assert!(check.passed, "{check:#?}");
    assert_eq!(s.measured.units_ok, 120, "{:?}", s.measured);
    assert!(s.measured.errors_by_code.is_empty(), "{:?}", s.measured);
    // Unpaid orders were cancelled (failed payment or deadline): nothing stays held; paid
    // orders were sold and some of them returned and restocked, all reflected exactly.
    assert_eq!(check.units_held, 0);
    assert!(check.units_deducted > 0);
    assert!(check.units_restocked > 0, "{check:#?}");
}

/// Order placement as a unit of work, unary and through two ExecuteBatch calls (Orders, issue 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_placements_unary_and_batched_are_reflected() {
    let (_dir, server) = start();
    for (batch, run_id) in [(1, "ord1"), (8, "ord8")] {
        let mut c = config(&server, Scenario::FlashSale, run_id);
        c.unit = Unit::Order;
        c.batch = batch;
        c.rate_per_second = 50;
        c.duration_seconds = 2;
        c.stock_per_sku = 60 * batch as u32;
        let s = loadtest::run(&c).await.unwrap();
        let check = s.check.clone().unwrap();
        assert!(check.passed, "batch {batch}: {check:#?}");
        // 100 × batch placements want 60 × batch units: the stock sells out exactly.
        assert_eq!(s.measured.units_ok, 60 * batch as u64, "{:?}", s.measured);
        assert_eq!(check.units_deducted, 60 * batch as u64);
        assert_eq!(check.units_held, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_fails_when_a_stock_figure_is_tampered_with() {
    let (_dir, server) = start();
    let mut c = config(&server, Scenario::Catalog, "tamper");
    c.skus = 100;
    c.rate_per_second = 100;
    c.duration_seconds = 2;
    c.stock_per_sku = 1_000;
    let load = loadtest::load(&c).await.unwrap();
    assert!(load.check().await.unwrap().passed);

    // Ghost stock on SKU 7: the server now claims 5 units the run never received.
    let sku = load.sku_name(7);
    let mut inv = server.inventory().await;
    let level = inv.stock(&sku).await.unwrap();
    inv.adjust("tamper-adj-1", &sku, level.on_hand + 5)
        .await
        .unwrap();
    let check = load.check().await.unwrap();
    assert!(!check.passed, "{check:#?}");
    assert_eq!(check.mismatched_skus, 1);
    assert_eq!(check.mismatches[0].sku_index, 7);
    assert_eq!(
        check.mismatches[0].found.unwrap().on_hand,
        check.mismatches[0].expected_on_hand as u32 + 5
    );

    // And a lost sale: SKU 7 back to what was expected, SKU 3 short of one unit.
    inv.adjust("tamper-adj-2", &sku, level.on_hand)
        .await
        .unwrap();
    let sku3 = load.sku_name(3);
    let level3 = inv.stock(&sku3).await.unwrap();
    inv.adjust("tamper-adj-3", &sku3, level3.on_hand - 1)
        .await
        .unwrap();
    let check = load.check().await.unwrap();
    assert!(!check.passed);
    assert_eq!(check.mismatches.len(), 1);
    assert_eq!(check.mismatches[0].sku_index, 3);
}
