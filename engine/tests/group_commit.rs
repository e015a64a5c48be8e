//! Group commit's delay (`group_commit_delay_micros`) applies only while the log is busy: a
//! quiet log — one submitter, one record per commit — is written at once, whatever the delay.

mod common;

use std::sync::Arc;

use engine::{ManualClock, SyncMode};

#[test]
fn a_quiet_log_is_written_at_once_whatever_the_delay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = common::config(dir.path(), 2, SyncMode::Fsync);
    // An hour: were it applied to a lone submitter's commits, the ops below would never end.
    config.wal.group_commit_delay_micros = 3_600_000_000;
    let engine = common::open(config, Arc::new(ManualClock::new(1_000)));
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = engine.clone();
    std::thread::spawn(move || {
        let mut replies = vec![writer.execute(common::product("A"))];
        for i in 0..50 {
            replies.push(writer.execute(common::receive(&format!("r{i}"), "A", 1)));
        }
        let _ = tx.send(replies);
    });
    // A guard against the hang described above, not a timing assertion.
    let replies = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("sequential durable writes are not held back by the delay");
    for reply in &replies {
        assert!(reply.is_ok(), "{reply:?}");
    }
    let stats = engine.stats();
    assert_eq!(stats.durable_lsn, 51, "every op durable");
    assert_eq!(
        stats.records_written, stats.fsyncs,
        "one record per commit: each op was written alone"
    );
    assert_eq!(engine.get_stock("A").expect("stock").on_hand, 50);
}
