//! End-to-end durability: kill -9 under load then restart (every acknowledged op present);
//! SIGTERM → exit 0 with nothing lost; a corrupt WAL makes inventoryd refuse to start.
//! Snapshots across restarts: `tests/snapshots.rs`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use proto::inventory::v1 as pb;
use tokio::sync::Mutex;
use tonic::Code;

const SKUS: usize = 4;
const INITIAL: u32 = 100_000;

fn sku(i: usize) -> String {
    format!("SKU-{}", i % SKUS)
}

/// What the load acknowledged, and what was in flight (maybe applied) when the server died.
#[derive(Default, Debug)]
struct Ledger {
    receipts_acked: Vec<(String, String, u32)>,
    receipts_unacked: Vec<(String, String, u32)>,
    /// Reservation id → (sku, acked reserve, acked commit).
    holds: BTreeMap<String, (String, bool, bool)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_op() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Opts::default());
    let mut inv = server.inventory().await;
    for i in 0..SKUS {
        inv.upsert(&sku(i), 0).await.unwrap();
        inv.receive(&format!("init-{i}"), &sku(i), INITIAL)
            .await
            .unwrap();
    }

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let mut client = Inv::new(server.channel().await);
        let ledger = ledger.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let s = sku(w + i);
                if w % 2 == 0 {
                    let id = format!("rcpt-{w}-{i}");
                    let r = client.receive(&id, &s, 3).await;
                    let mut l = ledger.lock().await;
                    match r {
                        Ok(_) => l.receipts_acked.push((id, s, 3)),
                        Err(_) => {
                            l.receipts_unacked.push((id, s, 3));
                            return;
                        }
                    }
                } else {
                    let id = format!("hold-{w}-{i}");
                    ledger
                        .lock()
                        .await
                        .holds
                        .insert(id.clone(), (s.clone(), false, false));
                    if client.reserve(&id, &[(&s, 2)], 0).await.is_err() {
                        return;
                    }
                    ledger.lock().await.holds.get_mut(&id).unwrap().1 = true;
                    if i % 3 != 0 {
                        if client.commit(&id, &[]).await.is_err() {
                            return;
                        }
                        ledger.lock().await.holds.get_mut(&id).unwrap().2 = true;
                    }
                }
                acked.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Let the load run until plenty is acknowledged, then kill -9 mid-flight.
    while acked.load(Ordering::Relaxed) < 1500 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let ledger = ledger.lock().await;
    assert!(
        ledger.receipts_acked.len() > 100,
        "load too small: {}",
        ledger.receipts_acked.len()
    );

    let server = Server::start(&data, Opts::default());
    let mut inv = server.inventory().await;
    assert!(
        server.log_text().contains("recovered the WAL"),
        "{}",
        server.log_text()
    );

    // Every acknowledged hold is there, in at least its acknowledged state; count what is.
    let mut committed: BTreeMap<String, u32> = BTreeMap::new();
    let mut active: BTreeMap<String, u32> = BTreeMap::new();
    for (id, (s, reserve_acked, commit_acked)) in &ledger.holds {
        match inv.reservation(id).await {
            Ok(r) => {
                let st = state(&r);
                if *commit_acked {
                    assert_eq!(st, pb::ReservationState::Committed, "{id}");
                } else {
                    assert!(
                        matches!(
                            st,
                            pb::ReservationState::Active | pb::ReservationState::Committed
                        ),
                        "{id}: {st:?}"
                    );
                }
                match st {
                    pb::ReservationState::Committed => {
                        *committed.entry(s.clone()).or_default() += 2
                    }
                    pb::ReservationState::Active => *active.entry(s.clone()).or_default() += 2,
                    other => panic!("{id}: unexpected {other:?}"),
                }
            }
            Err(e) => {
                assert_eq!(e.code(), Code::NotFound);
                assert!(!reserve_acked, "acknowledged hold {id} lost");
            }
        }
    }
    // Stock: on_hand = initial + receipts present − committed, where every acknowledged
    // receipt is present and unacknowledged ones may be.
    let mut acked_in: BTreeMap<String, u32> = BTreeMap::new();
    let mut maybe_in: BTreeMap<String, u32> = BTreeMap::new();
    for (_, s, q) in &ledger.receipts_acked {
        *acked_in.entry(s.clone()).or_default() += q;
    }
    for (_, s, q) in &ledger.receipts_unacked {
        *maybe_in.entry(s.clone()).or_default() += q;
    }
    let mut before = Vec::new();
    for i in 0..SKUS {
        let s = sku(i);
        let level = inv.stock(&s).await.unwrap();
        let base = INITIAL - committed.get(&s).copied().unwrap_or(0);
        let received = level.on_hand - base;
        let acked = acked_in.get(&s).copied().unwrap_or(0);
        let maybe = maybe_in.get(&s).copied().unwrap_or(0);
        assert!(
            received >= acked && received <= acked + maybe,
            "{s}: on_hand {} implies {received} received; acknowledged {acked}, in flight {maybe}",
            level.on_hand
        );
        assert_eq!(level.reserved, active.get(&s).copied().unwrap_or(0), "{s}");
        before.push(level);
    }
    // Re-sending every acknowledged receipt is an idempotent no-op: each one is on record.
    for (id, s, q) in &ledger.receipts_acked {
        inv.receive(id, s, *q).await.unwrap();
    }
    for (i, level) in before.iter().enumerate() {
        assert_eq!(&inv.stock(&sku(i)).await.unwrap(), level);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_0_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Opts::default());
    let mut inv = server.inventory().await;
    inv.upsert("T", 3).await.unwrap();
    inv.receive("t1", "T", 40).await.unwrap();
    inv.reserve("th1", &[("T", 5)], 0).await.unwrap();
    inv.reserve("th2", &[("T", 6)], 0).await.unwrap();
    inv.commit("th2", &[("T", 4)]).await.unwrap();
    inv.adjust("ta1", "T", 30).await.unwrap();
    let stock = inv.all_stock().await;
    let holds = (
        inv.reservation("th1").await.unwrap(),
        inv.reservation("th2").await.unwrap(),
    );
    drop(inv);
    let status = server.sigterm();
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.log_text()
    );
    assert!(
        server.log_text().contains("WAL flushed"),
        "{}",
        server.log_text()
    );

    let server = Server::start(&data, Opts::default());
    let mut inv = server.inventory().await;
    assert_eq!(inv.all_stock().await, stock);
    assert_eq!(
        (
            inv.reservation("th1").await.unwrap(),
            inv.reservation("th2").await.unwrap()
        ),
        holds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_wal_refuses_to_start_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Opts::default());
    let mut inv = server.inventory().await;
    inv.upsert("C", 0).await.unwrap();
    for i in 0..50 {
        inv.receive(&format!("c{i}"), "C", 1).await.unwrap();
    }
    drop(inv);
    // kill -9, not SIGTERM: a clean stop takes a final snapshot, and the WAL it covers would no
    // longer be the only copy of these ops (the truncate-corruption restart below would then
    // lose nothing).
    server.kill9();
    // Flip a byte early in the records of the segment holding most of them: damage before the
    // tail. (Segments are zero-filled ahead of need: a file's records end where its zeros
    // begin, not where the file does.)
    let records_end = |bytes: &[u8]| bytes.iter().rposition(|b| *b != 0).map_or(0, |at| at + 1);
    let wal = data.join("wal");
    let segment = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .max_by_key(|p| records_end(&std::fs::read(p).unwrap()))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = records_end(&bytes) / 4;
    bytes[at] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();

    let (status, log) = Server::try_start(&data, Opts::default())
        .err()
        .expect("must refuse to start");
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    assert!(log.contains(&name) && log.contains("offset"), "{log}");

    // The operator's explicit override starts, dropping the damaged part.
    let server = Server::start(
        &data,
        Opts::default().env("INVENTORY_RECOVERY", "truncate-corruption"),
    );
    let mut inv = server.inventory().await;
    let level = inv.stock("C").await.unwrap();
    assert!(level.on_hand < 50, "{level:?}");
}
