//! Process crash: a child process runs the engine under concurrent load and reports every
//! acknowledged op on stdout; the parent kill -9s it at random moments, restarts it on the
//! same directory, and checks that every acknowledged op survived and no unit is oversold.
//!
//! The child is this test binary re-executed with `CRASH_CHILD_DIR` set (see `crash_child`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use engine::{Engine, EngineError, ReservationState, SyncMode, SystemClock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SKUS: usize = 8;
const RECEIPT_UNITS: u32 = 5;

#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os("CRASH_CHILD_DIR") else {
        return; // only does something when re-executed by `kill_9_at_random_moments`
    };
    let round: u64 = std::env::var("CRASH_ROUND")
        .expect("round")
        .parse()
        .expect("number");
    let engine = common::open(
        common::config(dir.as_ref(), 4, SyncMode::Fsync),
        Arc::new(SystemClock),
    );
    for s in 0..SKUS {
        engine
            .execute(common::product(&format!("S{s}")))
            .expect("product");
    }
    println!("ready");
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(round * 100 + t);
                for i in 0.. {
                    let sku = format!("S{}", rng.random_range(0..SKUS));
                    if rng.random_bool(0.3) {
                        let id = format!("r{round}-{t}-{i}");
                        engine
                            .execute(common::receive(&id, &sku, RECEIPT_UNITS))
                            .expect("receive");
                        println!("ack receive {id}");
                    } else {
                        let id = format!("h{round}-{t}-{i}");
                        match engine.execute(common::reserve(
                            &id,
                            &[(&sku, rng.random_range(1..=3))],
                            3600,
                        )) {
                            Ok(_) => println!("ack reserve {id}"),
                            Err(EngineError::FailedPrecondition(_)) => continue,
                            Err(e) => panic!("{e:?}"),
                        }
                        if rng.random_bool(0.7) {
                            engine.execute(common::commit(&id)).expect("commit");
                            println!("ack commit {id}");
                        } else {
                            engine.execute(common::release(&id)).expect("release");
                            println!("ack release {id}");
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker");
    }
}

#[test]
fn kill_9_at_random_moments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = StdRng::seed_from_u64(0xc4a5);
    let mut acked: Vec<(String, String)> = Vec::new();
    for round in 0..20u64 {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("CRASH_CHILD_DIR", dir.path())
            .env("CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.ends_with("ready") {
                    let _ = ready_tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        // Let it recover and start its load, then kill it at a random moment.
        let ready = ready_rx.recv_timeout(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(rng.random_range(20..400)));
        child.kill().expect("kill -9"); // SIGKILL on Unix
        child.wait().expect("reap");
        let lines = reader.join().expect("reader");
        assert!(ready.is_ok(), "round {round}: child never became ready");
        for line in lines {
            if let Some(rest) = line.strip_prefix("ack ") {
                let (kind, id) = rest.split_once(' ').expect("ack KIND ID");
                acked.push((kind.to_string(), id.to_string()));
            }
        }
        verify(dir.path(), &acked, round);
    }
    assert!(
        acked.len() > 100,
        "the load must have acknowledged ops: {}",
        acked.len()
    );
}

fn verify(dir: &std::path::Path, acked: &[(String, String)], round: u64) {
    let (engine, _) = Engine::open(
        common::config(dir, 4, SyncMode::Fsync),
        Arc::new(engine::wal::fs::StdFs),
        Arc::new(SystemClock),
    )
    .unwrap_or_else(|e| panic!("round {round}: recovery failed: {e}"));
    let dump = engine.dump();
    for (kind, id) in acked {
        match kind.as_str() {
            "receive" => assert!(
                dump.receipts.contains(id),
                "round {round}: acked receipt {id} lost"
            ),
            "reserve" => assert!(
                dump.reservations.contains_key(id),
                "round {round}: acked hold {id} lost"
            ),
            "commit" => assert_eq!(
                dump.reservations.get(id).map(|r| r.state),
                Some(ReservationState::Committed),
                "round {round}: acked commit {id} lost"
            ),
            "release" => assert_eq!(
                dump.reservations.get(id).map(|r| r.state),
                Some(ReservationState::Released),
                "round {round}: acked release {id} lost"
            ),
            other => panic!("unknown ack {other}"),
        }
    }
    engine
        .check_invariants()
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
    // Conservation per SKU: what was received = what is on hand + what was sold. Nothing sold
    // that was not received (no oversell), nothing vanished.
    for s in 0..SKUS {
        let sku = format!("S{s}");
        let (.., on_hand, _) = dump.products[&sku].clone();
        let sold: u64 = dump
            .reservations
            .values()
            .filter(|r| r.state == ReservationState::Committed)
            .flat_map(|r| r.committed_lines.iter())
            .filter(|l| l.sku == sku)
            .map(|l| u64::from(l.quantity))
            .sum();
        let received = engine_received(&engine, &sku);
        assert_eq!(
            on_hand + sold,
            received,
            "round {round}: {sku} units do not add up"
        );
    }
}

/// Sum of receipts for a SKU, read from the change feed (the WAL itself).
fn engine_received(engine: &Engine, sku: &str) -> u64 {
    let mut cursor = engine.feed(1).expect("wal on");
    let mut total = 0;
    loop {
        let batch = cursor.next_batch(10_000).expect("read feed");
        if batch.is_empty() {
            return total;
        }
        for (_, payload) in batch {
            let record = engine::Record::decode(&payload).expect("decode");
            for event in record.events {
                if let engine::Event::StockReceived {
                    sku: s, quantity, ..
                } = event
                    && s == sku
                {
                    total += u64::from(quantity);
                }
            }
        }
    }
}
