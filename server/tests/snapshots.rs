//! End-to-end snapshots against the real `inventoryd`: Admin/Snapshot and Status; a clean stop
//! takes a final snapshot so the restart replays nothing; kill -9 after a snapshot plus more
//! writes restores everything acknowledged (snapshot + WAL tail, with the WAL below the
//! snapshots deleted); a damaged newest snapshot and a half-written temp file are skipped and
//! reported; periodic snapshots follow `snapshot_every_records`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use proto::inventory::v1 as pb;

/// A deadline against hangs while polling, not a timing assertion.
const POLL_DEADLINE: Duration = Duration::from_secs(120);

/// Products, receipts, adjustments and holds in every state; returns the reservation ids.
async fn populate(inv: &mut Inv, tag: &str, skus: usize) -> Vec<String> {
    let mut holds = Vec::new();
    for i in 0..skus {
        let sku = format!("SKU-{i}");
        inv.upsert(&sku, (i % 4) as u32 * 5).await.unwrap();
        inv.receive(&format!("{tag}-rcpt-{i}"), &sku, 50 + i as u32)
            .await
            .unwrap();
    }
    for i in 0..skus {
        let a = format!("SKU-{i}");
        let b = format!("SKU-{}", (i + 1) % skus);
        let id = format!("{tag}-hold-{i}");
        inv.reserve(&id, &[(&a, 2), (&b, 1)], 0).await.unwrap();
        match i % 4 {
            0 => {} // stays active
            1 => {
                inv.commit(&id, &[]).await.unwrap();
            }
            2 => {
                inv.commit(&id, &[(&a, 1)]).await.unwrap();
            }
            _ => {
                inv.release(&id).await.unwrap();
            }
        }
        holds.push(id);
    }
    inv.adjust(&format!("{tag}-adj"), "SKU-0", 200)
        .await
        .unwrap();
    holds
}

/// Every stock level (all pages) and every reservation, as GetStock / GetReservation show them.
async fn observe(inv: &mut Inv, holds: &[String]) -> (Vec<pb::StockLevel>, Vec<pb::Reservation>) {
    let mut levels = Vec::new();
    for listed in inv.all_stock().await {
        levels.push(inv.stock(&listed.sku).await.unwrap());
    }
    let mut reservations = Vec::new();
    for id in holds {
        reservations.push(inv.reservation(id).await.unwrap());
    }
    (levels, reservations)
}

fn snapshot_files(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("snapshots"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn wal_segments(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_rpc_returns_lsn_and_bytes_and_status_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, Opts::default());
    let mut inv = server.inventory().await;
    assert_eq!(server.status().await.snapshot_lsn, 0);
    populate(&mut inv, "a", 6).await;
    let before = server.status().await;

    let snap = server.snapshot().await.unwrap();
    assert!(snap.lsn > 0 && snap.bytes > 0, "{snap:?}");
    assert_eq!(snap.lsn, before.last_lsn, "nothing was written meanwhile");
    let st = server.status().await;
    assert_eq!(st.snapshot_lsn, snap.lsn);
    assert_eq!(st.last_lsn, before.last_lsn, "a snapshot writes no record");
    let files = snapshot_files(&data);
    assert_eq!(files, [format!("{:020}.snap", snap.lsn)]);
    assert_eq!(
        std::fs::metadata(data.join("snapshots").join(&files[0]))
            .unwrap()
            .len(),
        snap.bytes
    );

    // Metrics follow.
    assert_eq!(
        server.metric("inventory_snapshot_lsn"),
        Some(snap.lsn as f64)
    );
    assert_eq!(server.metric("inventory_snapshots_total"), Some(1.0));
    assert_eq!(
        server.metric("inventory_snapshot_failures_total"),
        Some(0.0)
    );
    assert_eq!(
        server.metric("inventory_snapshot_bytes"),
        Some(snap.bytes as f64)
    );
    assert!(
        server
            .metric("inventory_snapshot_pause_max_microseconds")
            .is_some()
    );
    assert_eq!(
        server.metric("inventory_wal_bytes"),
        Some(st.wal_bytes as f64)
    );

    // A later snapshot moves forward.
    inv.receive("a-more", "SKU-1", 5).await.unwrap();
    let again = server.snapshot().await.unwrap();
    assert!(again.lsn > snap.lsn, "{again:?} after {snap:?}");
    assert_eq!(server.status().await.snapshot_lsn, again.lsn);
    assert_eq!(server.metric("inventory_snapshots_total"), Some(2.0));

    // invctl drives the same RPC.
    let (code, out, err) = invctl(&["--addr", &server.url(), "--json", "snapshot"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["lsn"].as_u64(), Some(again.lsn), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_takes_a_final_snapshot_and_the_restart_replays_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Opts::default());
    let mut inv = server.inventory().await;
    let holds = populate(&mut inv, "t", 8).await;
    let state = observe(&mut inv, &holds).await;
    let before = server.status().await;
    assert_eq!(before.snapshot_lsn, 0, "no snapshot before the stop");
    drop(inv);

    let status = server.sigterm();
    let log = server.log_text();
    assert!(status.success(), "exit status {status:?}\n{log}");
    assert!(
        log.contains("final snapshot taken") && log.contains("WAL flushed"),
        "{log}"
    );
    assert_eq!(
        snapshot_files(&data),
        [format!("{:020}.snap", before.last_lsn)]
    );

    let offset = server.log_len();
    let server = Server::start(&data, Opts::default());
    let restart = server.log_since(offset);
    assert!(
        restart.contains(&format!(
            "snapshot at LSN {} + 0 WAL records replayed",
            before.last_lsn
        )),
        "{restart}"
    );
    let mut inv = server.inventory().await;
    assert_eq!(observe(&mut inv, &holds).await, state);
    let after = server.status().await;
    assert_eq!(
        (
            after.last_lsn,
            after.snapshot_lsn,
            after.active_reservations
        ),
        (before.last_lsn, before.last_lsn, before.active_reservations)
    );
    // Idempotency records came through the snapshot: a retried receipt changes nothing.
    let level = inv.stock("SKU-3").await.unwrap();
    assert_eq!(inv.receive("t-rcpt-3", "SKU-3", 53).await.unwrap(), level);
    assert_eq!(server.status().await.last_lsn, before.last_lsn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_a_snapshot_restores_snapshot_plus_wal_tail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Small segments, so the snapshots let the WAL below them be deleted.
    let opts = Opts::default().env("INVENTORY_SEGMENT_BYTES", "4096");
    let mut server = Server::start(&data, opts.clone());
    let mut inv = server.inventory().await;
    let mut holds = populate(&mut inv, "a", 40).await;
    let first = server.snapshot().await.unwrap();
    holds.extend(populate(&mut inv, "b", 12).await);
    // The exporter's and the notifier's cursors hold WAL deletion back too (they ran while we
    // wrote): once they have caught up, only the snapshots decide what goes.
    server.consumers_caught_up().await;
    let second = server.snapshot().await.unwrap();
    assert!(second.lsn > first.lsn);
    // Segments wholly below the oldest kept snapshot (the first) are gone: the start of the
    // log is recoverable only from a snapshot now.
    let segments = wal_segments(&data);
    assert!(
        segments[0].as_str() > format!("{:020}.wal", 1).as_str()
            && segments[0].as_str() <= format!("{:020}.wal", first.lsn + 1).as_str(),
        "WAL segments {segments:?} with snapshots at {} and {}",
        first.lsn,
        second.lsn
    );

    // More writes after the snapshot, touching entities it holds: commit and release holds
    // that were active in it, receive and adjust its SKUs, add new ones.
    inv.commit("a-hold-0", &[]).await.unwrap();
    inv.release("b-hold-4").await.unwrap();
    inv.commit("b-hold-8", &[("SKU-8", 1)]).await.unwrap();
    inv.receive("c-rcpt", "SKU-5", 7).await.unwrap();
    inv.adjust("c-adj", "SKU-2", 90).await.unwrap();
    inv.upsert("NEW-1", 3).await.unwrap();
    inv.receive("c-rcpt-new", "NEW-1", 4).await.unwrap();
    inv.reserve("c-hold", &[("NEW-1", 2), ("SKU-7", 1)], 0)
        .await
        .unwrap();
    holds.push("c-hold".into());
    let state = observe(&mut inv, &holds).await;
    let before = server.status().await;
    let tail = before.last_lsn - second.lsn;
    assert!(tail > 0);
    drop(inv);
    server.kill9();

    let offset = server.log_len();
    let server = Server::start(&data, opts);
    let restart = server.log_since(offset);
    assert!(
        restart.contains(&format!("{:020}.snap", second.lsn))
            && restart.contains(&format!(
                "snapshot at LSN {} + {tail} WAL records replayed",
                second.lsn
            )),
        "{restart}"
    );
    let mut inv = server.inventory().await;
    assert_eq!(observe(&mut inv, &holds).await, state);
    let after = server.status().await;
    assert_eq!(
        (
            after.last_lsn,
            after.snapshot_lsn,
            after.skus,
            after.active_reservations
        ),
        (
            before.last_lsn,
            second.lsn,
            before.skus,
            before.active_reservations
        )
    );
    // Receipts from the part of the log that was deleted are still known (idempotent).
    let level = inv.stock("SKU-1").await.unwrap();
    assert_eq!(inv.receive("a-rcpt-1", "SKU-1", 51).await.unwrap(), level);
    // And the restored server keeps working: a new snapshot past the old one.
    inv.receive("d-rcpt", "SKU-1", 1).await.unwrap();
    assert!(server.snapshot().await.unwrap().lsn > before.last_lsn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_snapshots_follow_the_record_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        Opts::default().env("INVENTORY_SNAPSHOT_EVERY_RECORDS", "25"),
    );
    let mut inv = server.inventory().await;
    inv.upsert("P", 0).await.unwrap();
    for i in 0..60 {
        inv.receive(&format!("p{i}"), "P", 1).await.unwrap();
    }
    let started = Instant::now();
    let st = loop {
        let st = server.status().await;
        if st.snapshot_lsn > 0 {
            break st;
        }
        assert!(
            started.elapsed() < POLL_DEADLINE,
            "no periodic snapshot after {POLL_DEADLINE:?}: {st:?}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(st.snapshot_lsn >= 25, "{st:?}");
    assert!(!snapshot_files(&data).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_newest_snapshot_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Opts::default());
    let mut inv = server.inventory().await;
    let mut holds = populate(&mut inv, "a", 6).await;
    let first = server.snapshot().await.unwrap();
    holds.extend(populate(&mut inv, "b", 6).await);
    let state = observe(&mut inv, &holds).await;
    let before = server.status().await;
    drop(inv);
    assert!(server.sigterm().success(), "{}", server.log_text());

    // The final snapshot gets a flipped byte; a crash left a half-written temp file.
    let snapshots = data.join("snapshots");
    let newest = snapshots.join(format!("{:020}.snap", before.last_lsn));
    let mut bytes = std::fs::read(&newest).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();
    let temp = snapshots.join(format!("{:020}.snap.tmp", before.last_lsn + 7));
    std::fs::write(&temp, b"INVSNAP\n half").unwrap();

    let offset = server.log_len();
    let server = Server::start(&data, Opts::default());
    let restart = server.log_since(offset);
    let tail = before.last_lsn - first.lsn;
    for expected in [
        format!("snapshot skipped: {}", newest.display()),
        format!(
            "snapshot skipped: {}: half-written temp file",
            temp.display()
        ),
        format!(
            "loaded snapshot {}",
            snapshots.join(format!("{:020}.snap", first.lsn)).display()
        ),
        format!(
            "snapshot at LSN {} + {tail} WAL records replayed",
            first.lsn
        ),
    ] {
        assert!(
            restart.contains(&expected),
            "missing {expected:?} in\n{restart}"
        );
    }
    assert!(!temp.exists());
    let mut inv = server.inventory().await;
    assert_eq!(observe(&mut inv, &holds).await, state);
    assert_eq!(server.status().await.last_lsn, before.last_lsn);
}
