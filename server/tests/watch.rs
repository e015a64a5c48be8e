//! End-to-end `Alerts.WatchEvents` against the real `inventoryd`: the durable change feed from
//! the start, then live events as they become durable; the kinds filter; resuming at
//! (lsn, index).

mod common;

use std::time::Duration;

use common::*;
use proto::inventory::v1 as pb;
use tonic::Streaming;

/// A guard against a hung stream, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn next(stream: &mut Streaming<pb::Event>) -> pb::Event {
    tokio::time::timeout(HANG_GUARD, stream.message())
        .await
        .expect("an event arrives")
        .expect("no error")
        .expect("stream open")
}

async fn watch(
    server: &Server,
    from_lsn: u64,
    from_index: u32,
    kinds: &[&str],
) -> Streaming<pb::Event> {
    pb::alerts_client::AlertsClient::new(server.channel().await)
        .watch_events(pb::WatchEventsRequest {
            from_lsn,
            from_index,
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
        })
        .await
        .expect("watch starts")
        .into_inner()
}

#[tokio::test]
async fn watch_events_streams_the_durable_feed_then_live_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut inv = server.inventory().await;
    inv.upsert("A", 0).await.unwrap();
    inv.receive("r1", "A", 5).await.unwrap();
    inv.reserve("h1", &[("A", 2)], 0).await.unwrap();
    inv.commit("h1", &[]).await.unwrap();

    let mut all = watch(&server, 0, 0, &[]).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next(&mut all).await);
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ProductUpserted",
            "StockReceived",
            "InventoryReserved",
            "ReservationCommitted"
        ]
    );
    assert_eq!(seen.iter().map(|e| e.lsn).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(seen.iter().all(|e| e.index == 0 && e.at.is_some()));
    assert_eq!(seen[1].subject, "A");
    assert_eq!(seen[2].subject, "h1");
    let json: serde_json::Value = serde_json::from_str(&seen[1].json).expect("json");
    assert_eq!(json["StockReceived"]["receipt_id"], "r1");
    assert_eq!(json["StockReceived"]["on_hand_after"], 5);

    // Live: a new receipt appears on the open stream once durable.
    inv.receive("r2", "A", 1).await.unwrap();
    let live = next(&mut all).await;
    assert_eq!((live.lsn, live.kind.as_str()), (5, "StockReceived"));

    // The kinds filter.
    let mut receipts = watch(&server, 1, 0, &["StockReceived"]).await;
    let first = next(&mut receipts).await;
    let second = next(&mut receipts).await;
    assert_eq!((first.lsn, second.lsn), (2, 5));
    assert!([&first, &second].iter().all(|e| e.kind == "StockReceived"));

    // Resuming at (lsn, index): index 1 of LSN 2 skips that record's only event.
    let mut resumed = watch(&server, 2, 1, &[]).await;
    assert_eq!(next(&mut resumed).await.lsn, 3);
}

#[tokio::test]
async fn watch_events_from_a_deleted_lsn_is_out_of_range_naming_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so two snapshots let the start of the WAL be deleted.
    let opts = Opts::default().env("INVENTORY_SEGMENT_BYTES", "4096");
    let server = Server::start(&dir.path().join("data"), opts);
    let mut inv = server.inventory().await;
    inv.upsert("A", 0).await.unwrap();
    for i in 0..200 {
        inv.receive(&format!("r{i}"), "A", 1).await.unwrap();
    }
    server.snapshot().await.unwrap();
    inv.receive("last", "A", 1).await.unwrap();
    // The exporter's and the notifier's cursors hold the WAL back too until they catch up.
    server.consumers_caught_up().await;
    server.snapshot().await.unwrap();

    let err = pb::alerts_client::AlertsClient::new(server.channel().await)
        .watch_events(pb::WatchEventsRequest {
            from_lsn: 1,
            from_index: 0,
            kinds: vec![],
        })
        .await
        .expect_err("LSN 1 is gone");
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    let oldest: u64 = err
        .message()
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("message names the oldest LSN: {}", err.message()));
    assert!(oldest > 1);
    // From 0 (= the oldest retained) the feed starts exactly there.
    let mut stream = watch(&server, 0, 0, &[]).await;
    assert_eq!(next(&mut stream).await.lsn, oldest);
    let mut from_oldest = watch(&server, oldest, 0, &[]).await;
    assert_eq!(next(&mut from_oldest).await.lsn, oldest);
}
