//! End-to-end: every Inventory and Admin RPC and every error code of API.md against a real
//! `inventoryd` process; a failed request changes nothing.

mod common;

use common::*;
use proto::inventory::v1 as pb;
use tonic::Code;

async fn status(server: &Server) -> pb::StatusResponse {
    pb::admin_client::AdminClient::new(server.channel().await)
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Everything observable: every stock level and the last LSN.
async fn observable(
    server: &Server,
    inv: &mut Inv,
    holds: &[&str],
) -> (Vec<pb::StockLevel>, u64, Vec<String>) {
    let mut rs = Vec::new();
    for id in holds {
        // Code and message only: a status's metadata carries a `date` header.
        rs.push(match inv.reservation(id).await {
            Ok(r) => format!("{r:?}"),
            Err(e) => format!("{:?}: {}", e.code(), e.message()),
        });
    }
    (inv.all_stock().await, status(server).await.last_lsn, rs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_inventory_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut inv = server.inventory().await;

    let p = inv.upsert("APPLE", 5).await.unwrap();
    assert_eq!(
        (p.sku.as_str(), p.unit_price_cents, p.reorder_level),
        ("APPLE", 1999, 5)
    );
    let s = p.stock.unwrap();
    assert_eq!((s.on_hand, s.available), (0, 0));
    assert_eq!(s.status, pb::StockStatus::OutOfStock as i32);
    inv.upsert("PEAR", 0).await.unwrap();
    inv.upsert("PLUM", 100).await.unwrap();

    let s = inv.receive("rcpt-1", "APPLE", 10).await.unwrap();
    assert_eq!((s.on_hand, s.reserved, s.available), (10, 0, 10));
    assert_eq!(s.status, pb::StockStatus::InStock as i32);
    // Idempotent retry: same state, not counted twice.
    let s = inv.receive("rcpt-1", "APPLE", 10).await.unwrap();
    assert_eq!(s.on_hand, 10);
    inv.receive("rcpt-2", "PEAR", 3).await.unwrap();
    inv.receive("rcpt-3", "PLUM", 50).await.unwrap();

    let s = inv.adjust("adj-1", "APPLE", 8).await.unwrap();
    assert_eq!((s.on_hand, s.available), (8, 8));

    let r = inv
        .reserve("hold-1", &[("APPLE", 3), ("PEAR", 1)], 0)
        .await
        .unwrap();
    assert_eq!(state(&r), pb::ReservationState::Active);
    assert_eq!(r.lines.len(), 2);
    let created = r.created_at.unwrap();
    let expires = r.expires_at.unwrap();
    assert_eq!(
        expires.seconds - created.seconds,
        1800,
        "ttl 0 means the default of 1800 s"
    );
    let s = inv.stock("APPLE").await.unwrap();
    assert_eq!((s.on_hand, s.reserved, s.available), (8, 3, 5));
    assert_eq!(s.status, pb::StockStatus::InStock as i32);
    let s = inv.stock("PEAR").await.unwrap();
    assert_eq!(s.available, 2);

    let got = inv.reservation("hold-1").await.unwrap();
    assert_eq!(got, r);

    // Partial commit: 2 of APPLE deducted, the rest (1 APPLE, 1 PEAR) released.
    let c = inv.commit("hold-1", &[("APPLE", 2)]).await.unwrap();
    assert_eq!(state(&c), pb::ReservationState::Committed);
    assert_eq!(c.committed_lines, lines_of(&[("APPLE", 2)]));
    let s = inv.stock("APPLE").await.unwrap();
    assert_eq!((s.on_hand, s.reserved, s.available), (6, 0, 6));
    assert_eq!(inv.stock("PEAR").await.unwrap().available, 3);

    // Reserve retried after its commit returns the current state: COMMITTED.
    let again = inv
        .reserve("hold-1", &[("PEAR", 1), ("APPLE", 3)], 1800)
        .await
        .unwrap();
    assert_eq!(state(&again), pb::ReservationState::Committed);

    inv.reserve("hold-2", &[("PLUM", 10)], 60).await.unwrap();
    let rel = inv.release("hold-2").await.unwrap();
    assert_eq!(state(&rel), pb::ReservationState::Released);
    assert_eq!(
        state(&inv.release("hold-2").await.unwrap()),
        pb::ReservationState::Released
    );
    assert_eq!(inv.stock("PLUM").await.unwrap().available, 50);

    // ListStock: pages in SKU order; low_only.
    let page = inv
        .client
        .list_stock(pb::ListStockRequest {
            page_size: 2,
            page_token: String::new(),
            low_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    let skus: Vec<_> = page.levels.iter().map(|l| l.sku.as_str()).collect();
    assert_eq!(skus, ["APPLE", "PEAR"]);
    assert_eq!(page.next_page_token, "PEAR");
    let page2 = inv
        .client
        .list_stock(pb::ListStockRequest {
            page_size: 2,
            page_token: page.next_page_token,
            low_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page2.levels.len(), 1);
    assert_eq!(page2.levels[0].sku, "PLUM");
    assert_eq!(page2.next_page_token, "");
    let low = inv
        .client
        .list_stock(pb::ListStockRequest {
            page_size: 0,
            page_token: String::new(),
            low_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    let low: Vec<_> = low
        .levels
        .iter()
        .map(|l| (l.sku.as_str(), l.status))
        .collect();
    assert_eq!(low, [("PLUM", pb::StockStatus::LowStock as i32)]);

    // Admin/Status.
    let st = status(&server).await;
    assert_eq!(st.skus, 3);
    assert_eq!(st.active_reservations, 0);
    assert!(st.last_lsn > 0);
    assert_eq!(st.durable_lsn, st.last_lsn, "replies wait for durability");
    assert!(st.wal_bytes > 0);
    assert_eq!(st.snapshot_lsn, 0, "no snapshot taken yet");
    assert!(!st.failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_batch_in_order() {
    use pb::batch_op::Op as O;
    use pb::batch_result::Result as R;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut inv = server.inventory().await;
    let op = |o: O| pb::BatchOp { op: Some(o) };
    let ops = vec![
        op(O::UpsertProduct(pb::UpsertProductRequest {
            sku: "B1".into(),
            name: "b".into(),
            unit_price_cents: 5,
            reorder_level: 0,
            reorder_quantity: 0,
        })),
        op(O::Receive(pb::ReceiveStockRequest {
            receipt_id: "r1".into(),
            sku: "B1".into(),
            quantity: 5,
        })),
        // Depends on the receive before it: ops apply in order.
        op(O::Reserve(pb::ReserveRequest {
            reservation_id: "h1".into(),
            lines: lines_of(&[("B1", 4)]),
            ttl_seconds: 0,
        })),
        op(O::Reserve(pb::ReserveRequest {
            reservation_id: "h2".into(),
            lines: lines_of(&[("B1", 4)]),
            ttl_seconds: 0,
        })),
        op(O::Commit(pb::CommitRequest {
            reservation_id: "h1".into(),
            lines: vec![],
        })),
        op(O::Adjust(pb::AdjustStockRequest {
            adjustment_id: "a1".into(),
            sku: "B1".into(),
            on_hand: 7,
            reason: "count".into(),
        })),
        op(O::CreateOrder(pb::CreateOrderRequest::default())),
        pb::BatchOp { op: None },
        op(O::Release(pb::ReleaseRequest {
            reservation_id: "nope".into(),
        })),
    ];
    let results = inv
        .client
        .execute_batch(pb::ExecuteBatchRequest { ops })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 9);
    let code = |r: &pb::BatchResult| match &r.result {
        Some(R::Error(e)) => e.code,
        _ => 0,
    };
    assert!(matches!(&results[0].result, Some(R::Product(p)) if p.sku == "B1"));
    assert!(matches!(&results[1].result, Some(R::Stock(s)) if s.on_hand == 5));
    assert!(matches!(&results[2].result, Some(R::Reservation(r)) if r.reservation_id == "h1"));
    assert_eq!(code(&results[3]), Code::FailedPrecondition as i32);
    assert!(
        matches!(&results[4].result, Some(R::Reservation(r)) if state(r) == pb::ReservationState::Committed)
    );
    assert!(matches!(&results[5].result, Some(R::Stock(s)) if s.on_hand == 7));
    // An order op with nothing set: the engine names the first missing field.
    assert_eq!(code(&results[6]), Code::InvalidArgument as i32);
    assert_eq!(code(&results[7]), Code::InvalidArgument as i32);
    assert_eq!(code(&results[8]), Code::NotFound as i32);
    let s = inv.stock("B1").await.unwrap();
    assert_eq!((s.on_hand, s.reserved), (7, 0));
    // The failed reserve left no trace: the id is free.
    assert_code(inv.reservation("h2").await, Code::NotFound);

    // Shape limit on the whole request: more than 8,192 ops.
    let too_many = (0..8193)
        .map(|i| {
            op(O::Release(pb::ReleaseRequest {
                reservation_id: format!("x{i}"),
            }))
        })
        .collect();
    let err = assert_code(
        inv.client
            .execute_batch(pb::ExecuteBatchRequest { ops: too_many })
            .await,
        Code::InvalidArgument,
    );
    assert!(err.message().contains("8192"), "{err:?}");

    // A full batch of 8,192 ops works, with results in order.
    let full: Vec<_> = (0..8192)
        .map(|i| {
            op(O::Receive(pb::ReceiveStockRequest {
                receipt_id: format!("bulk-{i}"),
                sku: "B1".into(),
                quantity: 1,
            }))
        })
        .collect();
    let results = inv
        .client
        .execute_batch(pb::ExecuteBatchRequest { ops: full })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 8192);
    for (i, r) in results.iter().enumerate() {
        assert!(
            matches!(&r.result, Some(R::Stock(s)) if s.on_hand == 7 + i as u32 + 1),
            "result {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_and_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut inv = server.inventory().await;
    inv.upsert("A", 0).await.unwrap();
    inv.upsert("B", 0).await.unwrap();
    inv.receive("r-a", "A", 10).await.unwrap();
    inv.receive("r-b", "B", 2).await.unwrap();
    inv.reserve("held", &[("A", 4)], 0).await.unwrap();
    inv.reserve("done", &[("A", 1)], 0).await.unwrap();
    inv.commit("done", &[]).await.unwrap();
    let holds = ["held", "done", "new"];
    let before = observable(&server, &mut inv, &holds).await;

    // INVALID_ARGUMENT: empty ids, zero quantity, 65 lines, a SKU twice.
    let e = assert_code(inv.reserve("", &[("A", 1)], 0).await, Code::InvalidArgument);
    assert!(e.message().contains("reservation_id"), "{e:?}");
    assert_code(inv.receive("", "A", 1).await, Code::InvalidArgument);
    assert_code(inv.adjust("", "A", 1).await, Code::InvalidArgument);
    let e = assert_code(inv.receive("r-zero", "A", 0).await, Code::InvalidArgument);
    assert!(e.message().contains("quantity"), "{e:?}");
    assert_code(
        inv.reserve("new", &[("A", 0)], 0).await,
        Code::InvalidArgument,
    );
    let many: Vec<String> = (0..65).map(|i| format!("S{i}")).collect();
    let lines: Vec<(&str, u32)> = many.iter().map(|s| (s.as_str(), 1)).collect();
    let e = assert_code(inv.reserve("new", &lines, 0).await, Code::InvalidArgument);
    assert!(e.message().contains("64"), "{e:?}");
    let e = assert_code(
        inv.reserve("new", &[("A", 1), ("A", 2)], 0).await,
        Code::InvalidArgument,
    );
    assert!(e.message().contains('A'), "{e:?}");
    assert_code(
        inv.reserve("new", &[("A", 1)], 7 * 24 * 3600 + 1).await,
        Code::InvalidArgument,
    );
    assert_code(inv.stock("").await, Code::InvalidArgument);

    // NOT_FOUND: unknown SKU, unknown reservation.
    let e = assert_code(inv.stock("NOPE").await, Code::NotFound);
    assert!(e.message().contains("NOPE"), "{e:?}");
    assert_code(inv.receive("r-nope", "NOPE", 1).await, Code::NotFound);
    assert_code(
        inv.reserve("new", &[("A", 1), ("NOPE", 1)], 0).await,
        Code::NotFound,
    );
    assert_code(inv.reservation("new").await, Code::NotFound);
    assert_code(inv.commit("new", &[]).await, Code::NotFound);
    assert_code(inv.release("new").await, Code::NotFound);

    // FAILED_PRECONDITION: insufficient stock names the SKU and what is available.
    let e = assert_code(
        inv.reserve("new", &[("A", 1), ("B", 3)], 0).await,
        Code::FailedPrecondition,
    );
    assert!(
        e.message().contains('B') && e.message().contains("available 2"),
        "{e:?}"
    );
    let e = assert_code(
        inv.reserve("new", &[("A", 6)], 0).await,
        Code::FailedPrecondition,
    );
    assert!(e.message().contains("available 5"), "{e:?}");
    // Wrong state, naming both states.
    let e = assert_code(inv.release("done").await, Code::FailedPrecondition);
    assert!(
        e.message().contains("COMMITTED") && e.message().contains("RELEASED"),
        "{e:?}"
    );
    // A commit above what is held.
    assert_code(
        inv.commit("held", &[("A", 5)]).await,
        Code::FailedPrecondition,
    );
    // An adjustment below what is reserved.
    let e = assert_code(
        inv.adjust("adj-low", "A", 3).await,
        Code::FailedPrecondition,
    );
    assert!(
        e.message().contains('4') || e.message().contains("reserved"),
        "{e:?}"
    );

    // ALREADY_EXISTS: an id reused with a different payload.
    assert_code(inv.receive("r-a", "A", 11).await, Code::AlreadyExists);
    assert_code(inv.receive("r-a", "B", 10).await, Code::AlreadyExists);
    assert_code(
        inv.reserve("held", &[("A", 5)], 0).await,
        Code::AlreadyExists,
    );

    // RESOURCE_EXHAUSTED: a 10 MB message, naming the limit.
    let huge = pb::UpsertProductRequest {
        sku: "HUGE".into(),
        name: "x".repeat(10 << 20),
        unit_price_cents: 1,
        reorder_level: 0,
        reorder_quantity: 0,
    };
    let e = assert_code(
        inv.client.upsert_product(huge).await,
        Code::ResourceExhausted,
    );
    assert!(e.message().contains("4194304"), "{e:?}");
    let huge_batch = pb::ExecuteBatchRequest {
        ops: vec![
            pb::BatchOp {
                op: Some(pb::batch_op::Op::Receive(pb::ReceiveStockRequest {
                    receipt_id: "x".repeat(1 << 20),
                    sku: "A".into(),
                    quantity: 1,
                })),
            };
            10
        ],
    };
    assert_code(
        inv.client.execute_batch(huge_batch).await,
        Code::ResourceExhausted,
    );

    // Nothing above changed anything.
    let after = observable(&server, &mut inv, &holds).await;
    assert_eq!(before, after);

    // A failed request leaves no trace: the refused reserve succeeds once stock arrives.
    inv.receive("r-b2", "B", 5).await.unwrap();
    let r = inv.reserve("new", &[("A", 1), ("B", 3)], 0).await.unwrap();
    assert_eq!(state(&r), pb::ReservationState::Active);
    let e = assert_code(
        inv.adjust("adj-low", "A", 4).await,
        Code::FailedPrecondition,
    );
    assert!(e.message().contains("reserved"), "{e:?}");
    inv.adjust("adj-low", "A", 5).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_is_served_and_health_and_reflection_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let channel = server.channel().await;
    // Reports are served by the exporter's store (their contents: `tests/export.rs`).
    let reports = pb::reports_client::ReportsClient::new(channel.clone())
        .list_reports(pb::ListReportsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!reports.reports.is_empty());

    // grpc.health.v1: overall and per service.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "inventory.v1.Inventory"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }

    // Reflection (v1) lists the services.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response {response:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "inventory.v1.Inventory",
        "inventory.v1.Admin",
        "inventory.v1.Orders",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
}

/// The kernel's view of the process (`THP_enabled` in /proc/PID/status): 0 when the
/// process turned transparent huge pages off.
fn thp_enabled(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no THP_enabled line in:\n{status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_huge_pages_are_off_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let off = Server::start(&dir.path().join("off"), Opts::default());
    assert_eq!(thp_enabled(off.pid()), "0");
    let on = Server::start(
        &dir.path().join("on"),
        Opts::default().env("INVENTORY_TRANSPARENT_HUGE_PAGES", "true"),
    );
    // As the kernel gives any process that did not opt out (this test's own, say): "1" where
    // the kernel has transparent huge pages at all.
    assert_eq!(thp_enabled(on.pid()), thp_enabled(std::process::id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_counts_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut inv = server.inventory().await;
    inv.upsert("M", 0).await.unwrap();
    inv.receive("m1", "M", 3).await.unwrap();
    inv.stock("M").await.unwrap();
    assert_code(inv.stock("NOPE").await, Code::NotFound);
    let (status, body) = server.http_get("/metrics");
    assert!(status.contains("200"), "{status}");
    for want in [
        "inventory_grpc_requests_total{rpc=\"inventory.v1.Inventory/GetStock\",code=\"OK\"} 1",
        "inventory_grpc_requests_total{rpc=\"inventory.v1.Inventory/GetStock\",code=\"NOT_FOUND\"} 1",
        "inventory_grpc_request_duration_seconds_count{rpc=\"inventory.v1.Inventory/ReceiveStock\"} 1",
        "inventory_wal_fsyncs_total",
        "inventory_wal_records_written_total",
        "inventory_durable_lsn 2",
        "inventory_live_holds 0",
        "inventory_failed 0",
    ] {
        assert!(body.contains(want), "{want} missing from:\n{body}");
    }
    let (status, _) = server.http_get("/nope");
    assert!(status.contains("404"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_get_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        Opts::default().env("INVENTORY_MAX_CONNECTIONS", "2"),
    );
    let mut first = server.inventory().await;
    let mut second = server.inventory().await;
    assert_code(first.stock("X").await, Code::NotFound);
    assert_code(second.stock("X").await, Code::NotFound);
    let mut third = server.inventory().await;
    let e = assert_code(third.stock("X").await, Code::ResourceExhausted);
    assert!(e.message().contains("max_connections = 2"), "{e:?}");
    // The first two still work.
    assert_code(first.stock("X").await, Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invctl_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let addr = server.url();
    let a = addr.as_str();
    invctl_ends_quietly_when_its_reader_is_gone(a);
    let (code, _, err) = invctl(&[
        "--addr",
        a,
        "product",
        "upsert",
        "CLI-1",
        "--name",
        "Thing",
        "--price-cents",
        "250",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = invctl(&["--addr", a, "receive", "cli-r1", "CLI-1", "7"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = invctl(&["--addr", a, "--json", "stock", "CLI-1"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["on_hand"], 7);
    assert_eq!(v["status"], "IN_STOCK");
    let (code, out, _) = invctl(&[
        "--addr", a, "--json", "reserve", "cli-h1", "CLI-1:2", "--ttl", "60",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["state"], "ACTIVE");
    let (code, out, _) = invctl(&["--addr", a, "commit", "cli-h1"]);
    assert_eq!(code, 0);
    assert!(out.contains("COMMITTED"), "{out}");
    let (code, out, _) = invctl(&["--addr", a, "stock", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("CLI-1") && out.contains('5'), "{out}");
    // Exit codes by failure class.
    assert_eq!(invctl(&["--addr", a, "stock", "NOPE"]).0, 3);
    assert_eq!(invctl(&["--addr", a, "reserve", "cli-h2", "CLI-1:99"]).0, 4);
    assert_eq!(invctl(&["--addr", a, "receive", "", "CLI-1", "1"]).0, 5);
    assert_eq!(
        invctl(&["--addr", a, "receive", "cli-r1", "CLI-1", "8"]).0,
        8
    );
    assert_eq!(invctl(&["--addr", a, "reserve"]).0, 2);
    assert_eq!(invctl(&["--addr", a, "stock"]).0, 2);
    assert_eq!(invctl(&["--addr", a, "reserve", "h", "NOCOLON"]).0, 2);
    assert_eq!(invctl(&["--addr", "http://127.0.0.1:1", "status"]).0, 7);
    let (code, out, _) = invctl(&["--addr", a, "--json", "status"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["skus"], 1);
    let (code, out, _) = invctl(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Exit codes"), "{out}");
}

/// `invctl … | head`: the reader closes the pipe before invctl prints. invctl ends by SIGPIPE,
/// as other command-line tools do, with no panic on stderr.
fn invctl_ends_quietly_when_its_reader_is_gone(addr: &str) {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(common::INVCTL)
        .args(["--addr", addr, "stock", "list"])
        .env_remove("INVENTORY_ADDR")
        .env_remove("INVENTORY_TOKEN")
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {stderr}",
        out.status
    );
}
