//! Recovery: a WAL cut at every byte offset recovers to exactly the prefix of complete
//! records; a flipped byte before the tail refuses to start naming file and offset; injected
//! fsync and write failures stop writes and never acknowledge what is not on disk.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use engine::wal::fs::{Faults, FaultyFs, StdFs};
use engine::{Engine, EngineError, ManualClock, RecoveryMode, StateDump, SyncMode, WalError};

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// Builds a small WAL with a mix of ops, in one segment that grew by appends (the tests cut and
/// damage that file; a zero-filled one is made from it where they need one); returns the dump
/// after each LSN (index = LSN).
fn build_log(dir: &Path) -> Vec<StateDump> {
    let clock = ManualClock::new(1_000);
    let mut config = common::config(dir, 2, SyncMode::Fsync);
    config.wal.preallocate = false;
    let engine = common::open(config, Arc::new(clock.clone()));
    let mut dumps = vec![engine.dump()];
    let mut run = |op| {
        engine.execute(op).expect("op");
        assert_eq!(engine.stats().last_lsn as usize, dumps.len());
        dumps.push(engine.dump());
    };
    for i in 0..6 {
        run(common::product(&format!("P{i}")));
        run(common::receive(&format!("r{i}"), &format!("P{i}"), 50));
    }
    for i in 0..30 {
        let a = format!("P{}", i % 6);
        let b = format!("P{}", (i + 1) % 6);
        run(common::reserve(&format!("h{i}"), &[(&a, 1), (&b, 2)], 600));
        if i % 3 == 0 {
            run(common::commit(&format!("h{i}")));
        } else if i % 3 == 1 {
            run(common::release(&format!("h{i}")));
        }
    }
    engine.shutdown();
    dumps
}

/// What a crash can leave of a segment's last write, by how the segment was made.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Grown by appends: the file ends where the write stopped.
    Appended,
    /// Zero-filled ahead of need: zeros follow where the write stopped, to the file's full size.
    ZeroFilled,
}

#[test]
fn truncation_at_every_byte_offset_recovers_a_prefix() {
    cut_at_every_byte_offset(Cut::Appended);
}

#[test]
fn a_zero_filled_segment_cut_at_every_byte_offset_recovers_a_prefix() {
    cut_at_every_byte_offset(Cut::ZeroFilled);
}

fn cut_at_every_byte_offset(how: Cut) {
    let original = tempfile::tempdir().expect("tempdir");
    let dumps = build_log(original.path());
    let files = segment_files(original.path());
    assert_eq!(files.len(), 1, "one small segment");
    let bytes = std::fs::read(&files[0]).expect("read segment");
    assert!(
        bytes.len() < 64 * 1024,
        "keep the quadratic test small: {} bytes",
        bytes.len()
    );

    // Recovery logic is what is under test here, not fsync: the loop runs without it so the
    // quadratic test stays fast on a busy disk.
    let work = tempfile::tempdir().expect("tempdir");
    let wal_dir = work.path().join("wal");
    let mut torn_reports = 0;
    for cut in 0..=bytes.len() {
        let _ = std::fs::remove_dir_all(&wal_dir);
        std::fs::create_dir_all(&wal_dir).expect("mkdir");
        let mut left = bytes[..cut].to_vec();
        if let Cut::ZeroFilled = how {
            left.resize(bytes.len() + 4096, 0);
        }
        std::fs::write(wal_dir.join(files[0].file_name().expect("name")), &left).expect("write");
        let (engine, report) = Engine::open(
            common::config(work.path(), 2, SyncMode::None),
            Arc::new(StdFs),
            Arc::new(ManualClock::new(1_000)),
        )
        .unwrap_or_else(|e| panic!("{how:?} cut at {cut}: recovery failed: {e}"));
        let lsn = engine.stats().last_lsn as usize;
        assert!(lsn < dumps.len());
        assert_eq!(
            engine.dump(),
            dumps[lsn],
            "{how:?} cut at {cut}: state is not the prefix up to LSN {lsn}"
        );
        engine
            .check_invariants()
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        if report.torn_tail.is_some() {
            torn_reports += 1;
        }
        // The recovered log accepts appends and survives another restart.
        engine
            .execute(common::product("AFTER"))
            .expect("append after recovery");
        engine.shutdown();
        drop(engine);
        let (again, _) = Engine::open(
            common::config(work.path(), 2, SyncMode::None),
            Arc::new(StdFs),
            Arc::new(ManualClock::new(1_000)),
        )
        .unwrap_or_else(|e| panic!("{how:?} cut at {cut}: second recovery failed: {e}"));
        assert_eq!(again.stats().last_lsn as usize, lsn + 1);
    }
    // Cutting anywhere but a record boundary leaves a torn tail that must be reported.
    assert!(
        torn_reports > bytes.len() / 2,
        "torn tails reported: {torn_reports}"
    );
    // The whole file recovers everything.
    assert_eq!(dumps.len() - 1, {
        let (engine, _) = Engine::open(
            common::config(original.path(), 2, SyncMode::Fsync),
            Arc::new(StdFs),
            Arc::new(ManualClock::new(1_000)),
        )
        .expect("open");
        engine.stats().last_lsn as usize
    });
}

#[test]
fn flipped_byte_before_the_tail_refuses_to_start_naming_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dumps = build_log(dir.path());
    let file = segment_files(dir.path()).remove(0);
    let mut bytes = std::fs::read(&file).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&file, &bytes).expect("write");
    let err = Engine::open(
        common::config(dir.path(), 2, SyncMode::Fsync),
        Arc::new(StdFs),
        Arc::new(ManualClock::new(1_000)),
    )
    .err()
    .expect("refuses to start");
    match &err {
        WalError::Corrupt {
            file: named,
            offset,
            ..
        } => {
            assert_eq!(named, &file);
            assert!(
                *offset as usize <= at,
                "the damaged record starts at or before the flipped byte"
            );
            assert!(err.to_string().contains(&file.display().to_string()));
            assert!(err.to_string().contains(&format!("offset {offset}")));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The explicit override keeps the prefix before the damage.
    let mut config = common::config(dir.path(), 2, SyncMode::Fsync);
    config.wal.recovery = RecoveryMode::TruncateCorruption;
    let (engine, report) = Engine::open(config, Arc::new(StdFs), Arc::new(ManualClock::new(1_000)))
        .expect("override opens");
    assert!(report.corruption_dropped.is_some());
    let lsn = engine.stats().last_lsn as usize;
    assert!(lsn > 0 && lsn < dumps.len() - 1);
    assert_eq!(engine.dump(), dumps[lsn]);
}

#[test]
fn fsync_failure_stops_writes_and_acknowledges_nothing_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000);
    let (engine, faults) = faulty_engine(dir.path(), 2, Arc::new(clock.clone()));
    engine.execute(common::product("A")).expect("product");
    engine
        .execute(common::receive("r1", "A", 10))
        .expect("receive");
    engine
        .execute(common::reserve("h1", &[("A", 1)], 1))
        .expect("hold");
    assert!(faults.syncs.load(Ordering::SeqCst) > 0);
    faults.fail_sync.store(true, Ordering::SeqCst);
    let err = engine
        .execute(common::receive("r2", "A", 5))
        .expect_err("no ack without fsync");
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    // Fail-stop: every later write is refused up front, reads still answer.
    let err = engine
        .execute(common::receive("r3", "A", 5))
        .expect_err("writes stopped");
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    assert!(engine.stats().failed);
    assert!(engine.get_stock("A").is_ok());
    // A hold falls due while writes are stopped: its expiry cannot be logged, and nothing
    // spins waiting for it — reads answer, writes are refused.
    clock.advance_ms(5_000);
    assert!(engine.get_stock("A").is_ok());
    let err = engine
        .execute(common::release("h1"))
        .expect_err("writes stopped");
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    engine.shutdown();
    drop(engine);
    let (engine, _) = Engine::open(
        common::config(dir.path(), 2, SyncMode::Fsync),
        Arc::new(StdFs),
        Arc::new(ManualClock::new(1_000)),
    )
    .expect("restart recovers the durable truth");
    let level = engine.get_stock("A").expect("stock");
    // r2 was written but never fsynced or acknowledged; on this file system it may or may not
    // have reached the disk, but r3 was never written at all.
    assert!(level.on_hand == 10 || level.on_hand == 15, "{level:?}");
    assert!(!engine.dump().receipts.contains("r3"));
}

#[test]
fn torn_write_is_truncated_on_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, faults) = faulty_engine(dir.path(), 2, Arc::new(ManualClock::new(1_000)));
    engine.execute(common::product("A")).expect("product");
    engine
        .execute(common::receive("r1", "A", 10))
        .expect("receive");
    let acked = engine.dump();
    // The next write reaches the disk only partly.
    faults.write_budget_bytes.store(9, Ordering::SeqCst);
    let err = engine
        .execute(common::receive("r2", "A", 5))
        .expect_err("torn write is not acked");
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    engine.shutdown();
    drop(engine);
    let (engine, report) = Engine::open(
        common::config(dir.path(), 2, SyncMode::Fsync),
        Arc::new(StdFs),
        Arc::new(ManualClock::new(1_000)),
    )
    .expect("restart");
    let (_, _, dropped) = report.torn_tail.expect("torn tail reported");
    // The damage ends at the last non-zero byte of the 9 written (the frame's LSN field is
    // mostly zeros).
    assert!((1..=9).contains(&dropped), "{dropped} bytes dropped");
    assert_eq!(engine.dump(), acked);
}

/// Opens an engine whose WAL zero-fills segments of 16 KiB ahead of need, and waits until the
/// first spare is ready, so the next write leaves the segment begun by appends for it.
fn preallocating_engine(dir: &Path, fs: Arc<dyn engine::wal::fs::Fs>) -> Arc<Engine> {
    let mut config = common::config(dir, 2, SyncMode::Fsync);
    config.wal.segment_bytes = 16 * 1024;
    assert!(config.wal.preallocate, "on by default");
    let engine = common::open_fs(config, fs, Arc::new(ManualClock::new(1_000)));
    engine.execute(common::product("A")).expect("product");
    wait_for_spare(engine.wal().expect("wal"));
    engine
}

fn wait_for_spare(wal: &engine::wal::Wal) {
    // A guard against a preparer that never finishes, not a timing assertion.
    let waited_since = std::time::Instant::now();
    while !wal.spare_ready() {
        assert!(
            waited_since.elapsed() < std::time::Duration::from_secs(60),
            "no spare"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Records written over a zero-filled segment's zeros, across several such segments, all come
/// back after a restart; the zeros after the last record are its clean end, not a torn tail;
/// and writes go on after the last record, not after the zeros.
#[test]
fn records_written_into_zero_filled_segments_recover_with_no_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = preallocating_engine(dir.path(), Arc::new(StdFs));
    let wal = engine.wal().expect("wal");
    let mut receipts = 0;
    for filled in 1..=3 {
        // Each round waits for the next spare, then writes until the writer has taken it.
        wait_for_spare(wal);
        while wal.stats().segments_preallocated < filled {
            engine
                .execute(common::receive(&format!("r{receipts}"), "A", 1))
                .expect("receive");
            receipts += 1;
            assert!(receipts < 100_000, "the writer never took the spare");
        }
    }
    let before = engine.dump();
    let files = segment_files(dir.path());
    let last = files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "wal"))
        .max()
        .expect("a segment");
    assert_eq!(
        std::fs::metadata(last).expect("metadata").len(),
        16 * 1024,
        "the open segment keeps its zero-filled size"
    );
    engine.shutdown();
    drop(engine);
    let mut expected = before;
    for restart in 0..2 {
        let mut config = common::config(dir.path(), 2, SyncMode::Fsync);
        config.wal.segment_bytes = 16 * 1024;
        let (engine, report) =
            Engine::open(config, Arc::new(StdFs), Arc::new(ManualClock::new(1_000)))
                .expect("restart");
        assert_eq!(report.torn_tail, None, "restart {restart}");
        assert_eq!(report.corruption_dropped, None, "restart {restart}");
        assert_eq!(engine.dump(), expected, "restart {restart}");
        // Written after the last record, or the next restart would not find it.
        engine
            .execute(common::receive(&format!("after-{restart}"), "A", 1))
            .expect("write after a restart");
        expected = engine.dump();
        engine.shutdown();
    }
    assert!(expected.receipts.contains("after-1"));
}

/// A write torn inside a zero-filled segment: the damaged bytes are dropped, the zeros after
/// them are not counted as damage, and the state is what was acknowledged.
#[test]
fn a_write_torn_inside_a_zero_filled_segment_is_dropped_on_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = Faults::new();
    let engine = preallocating_engine(
        dir.path(),
        Arc::new(FaultyFs {
            faults: faults.clone(),
        }),
    );
    for i in 0..5 {
        engine
            .execute(common::receive(&format!("r{i}"), "A", 1))
            .expect("receive");
    }
    assert_eq!(
        engine.wal().expect("wal").stats().segments_preallocated,
        1,
        "the records went to the zero-filled segment"
    );
    let acked = engine.dump();
    // Torn inside the frame's header: its checksum is not written. (A write torn only where
    // the record's own bytes are zeros would leave it whole over the zero fill: unacknowledged,
    // and as rightly kept as one whose write completed just before a crash.)
    faults.write_budget_bytes.store(9, Ordering::SeqCst);
    engine
        .execute(common::receive("torn", "A", 1))
        .expect_err("a torn write is not acknowledged");
    engine.shutdown();
    drop(engine);
    let mut config = common::config(dir.path(), 2, SyncMode::Fsync);
    config.wal.segment_bytes = 16 * 1024;
    let (engine, report) =
        Engine::open(config, Arc::new(StdFs), Arc::new(ManualClock::new(1_000))).expect("restart");
    let (_, _, dropped) = report.torn_tail.expect("torn tail reported");
    assert!((1..=9).contains(&dropped), "{dropped} bytes dropped");
    assert_eq!(engine.dump(), acked);
}

/// Replies awaited by tasks (as the server's are): each is woken once its record is durable,
/// and on a failed fsync every waiting task gets UNAVAILABLE — none is left waiting.
#[test]
fn async_waiters_are_woken_by_their_commit_and_all_by_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, faults) = faulty_engine(dir.path(), 4, Arc::new(ManualClock::new(1_000)));
    engine.execute(common::product("A")).expect("product");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    const TASKS: usize = 64;
    let run_all = |prefix: &'static str| {
        let engine = engine.clone();
        runtime.block_on(async move {
            let tasks: Vec<_> = (0..TASKS)
                .map(|i| {
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        let id = format!("{prefix}{i}");
                        let submitted = engine.submit(common::receive(&id, "A", 1));
                        let waited = engine.wait_durable_async(submitted.wait_lsn).await;
                        let durable_at_wake = engine.stats().durable_lsn;
                        (
                            waited.and(submitted.result),
                            submitted.wait_lsn,
                            durable_at_wake,
                        )
                    })
                })
                .collect();
            let mut out = Vec::new();
            for task in tasks {
                // A guard against a lost wakeup hanging the suite, not a timing assertion.
                let joined = tokio::time::timeout(std::time::Duration::from_secs(60), task)
                    .await
                    .expect("every waiting task is woken");
                out.push(joined.expect("task"));
            }
            out
        })
    };
    let acked = run_all("ok-");
    for (result, lsn, durable_at_wake) in &acked {
        assert!(result.is_ok(), "{result:?}");
        assert!(
            durable_at_wake >= lsn,
            "woken before record {lsn} was durable"
        );
    }
    assert_eq!(engine.get_stock("A").expect("stock").on_hand, TASKS as u64);
    faults.fail_sync.store(true, Ordering::SeqCst);
    let refused = run_all("failed-");
    for (result, _, _) in &refused {
        assert!(
            matches!(result, Err(EngineError::Unavailable(_))),
            "{result:?}"
        );
    }
}

/// A request racing the shutdown: its record is queued after the writer's last pass and is
/// never written. Its reply is UNAVAILABLE — blocking or async — instead of a wait forever.
#[test]
fn a_write_after_shutdown_is_refused_not_left_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = common::open(
        common::config(dir.path(), 2, SyncMode::Fsync),
        Arc::new(ManualClock::new(1_000)),
    );
    engine.execute(common::product("A")).expect("product");
    engine.shutdown();
    let (tx, rx) = std::sync::mpsc::channel();
    let late = engine.clone();
    std::thread::spawn(move || {
        let blocking = late.execute(common::receive("r1", "A", 1));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let async_reply = runtime.block_on(late.execute_async(common::receive("r2", "A", 1)));
        let _ = tx.send((blocking, async_reply));
    });
    // A guard against a hang, not a timing assertion.
    let (blocking, async_reply) = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the late writes are answered");
    for reply in [blocking, async_reply] {
        assert!(
            matches!(reply, Err(EngineError::Unavailable(_))),
            "{reply:?}"
        );
    }
}

/// An engine (WAL with fsync) on a file system whose faults the test switches on.
fn faulty_engine(
    dir: &Path,
    shards: usize,
    clock: Arc<dyn engine::Clock>,
) -> (Arc<Engine>, Arc<Faults>) {
    let faults = Faults::new();
    let fs = Arc::new(FaultyFs {
        faults: faults.clone(),
    });
    let engine = common::open_fs(common::config(dir, shards, SyncMode::Fsync), fs, clock);
    (engine, faults)
}
