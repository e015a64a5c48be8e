//! End-to-end: 64 concurrent clients (each its own connection) race for one SKU with stock S
//! through gRPC; exactly S units are granted and the figures end consistent.

mod common;

use common::*;
use proto::inventory::v1 as pb;
use tonic::Code;

const CLIENTS: usize = 64;
const ATTEMPTS_PER_CLIENT: usize = 20;
const STOCK: u32 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_oversell_through_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Opts::default());
    let mut inv = server.inventory().await;
    inv.upsert("HOT", 0).await.unwrap();
    inv.upsert("COLD", 0).await.unwrap();
    inv.receive("initial", "HOT", STOCK).await.unwrap();
    inv.receive("initial-cold", "COLD", 1_000_000)
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut client = Inv::new(server.channel().await);
        tasks.push(tokio::spawn(async move {
            let mut granted = Vec::new();
            for i in 0..ATTEMPTS_PER_CLIENT {
                let id = format!("c{c}-{i}");
                // A second line on an uncontended SKU: all lines or none.
                match client.reserve(&id, &[("HOT", 1), ("COLD", 1)], 0).await {
                    Ok(r) => {
                        assert_eq!(state(&r), pb::ReservationState::Active);
                        granted.push(id);
                    }
                    Err(e) => {
                        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
                        assert!(
                            e.message().contains("HOT") && e.message().contains("available 0"),
                            "{e:?}"
                        );
                    }
                }
            }
            (client, granted)
        }));
    }
    let mut granted = Vec::new();
    for t in tasks {
        let (client, ids) = t.await.unwrap();
        granted.push((client, ids));
    }
    let total: usize = granted.iter().map(|(_, ids)| ids.len()).sum();
    assert_eq!(total, STOCK as usize, "exactly the stock is granted");
    let hot = inv.stock("HOT").await.unwrap();
    assert_eq!(
        (hot.on_hand, hot.reserved, hot.available),
        (STOCK, STOCK, 0)
    );
    assert_eq!(hot.status, pb::StockStatus::OutOfStock as i32);
    let cold = inv.stock("COLD").await.unwrap();
    assert_eq!(
        cold.reserved, STOCK,
        "the refused holds left nothing on COLD"
    );

    // Commit half, release the other half, concurrently: the figures add up.
    let mut tasks = Vec::new();
    for (mut client, ids) in granted {
        tasks.push(tokio::spawn(async move {
            let mut committed = 0u32;
            for (i, id) in ids.iter().enumerate() {
                if i % 2 == 0 {
                    client.commit(id, &[]).await.unwrap();
                    committed += 1;
                } else {
                    client.release(id).await.unwrap();
                }
            }
            committed
        }));
    }
    let mut committed = 0;
    for t in tasks {
        committed += t.await.unwrap();
    }
    let hot = inv.stock("HOT").await.unwrap();
    assert_eq!(
        (hot.on_hand, hot.reserved, hot.available),
        (STOCK - committed, 0, STOCK - committed)
    );
    let cold = inv.stock("COLD").await.unwrap();
    assert_eq!((cold.on_hand, cold.reserved), (1_000_000 - committed, 0));
}
