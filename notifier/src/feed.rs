//! The feed task: durable WAL records → messages → the outbox, cursor included.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use engine::{Engine, Record};
use tokio::sync::watch;

use crate::derive::{NOTIFYING_KINDS, Rules, derive};
use crate::message::Message;
use crate::{Shared, limits};

pub(crate) async fn follow(
    shared: Arc<Shared>,
    engine: Arc<Engine>,
    advance: Arc<dyn Fn(u64) + Send + Sync>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(wal) = engine.wal() else {
        tracing::warn!("notifier idle: sync = none keeps no WAL, so there is no change feed");
        return;
    };
    let mut durable = wal.subscribe_durable();
    let retry = Duration::from_millis(limits::FEED_RETRY_MILLIS);
    let interval = Duration::from_millis(limits::FEED_INTERVAL_MILLIS);
    let save_interval = Duration::from_millis(limits::FEED_CURSOR_SAVE_MILLIS);
    let rules = Rules {
        templates: &shared.templates,
        enabled: shared.enabled(),
        managers: &shared.config.managers,
    };
    loop {
        // (Re)start at the outbox cursor: after a failed write the records are read again.
        let mut next = shared.outbox.lock().cursor() + 1;
        let oldest = wal.oldest_lsn();
        if next < oldest {
            tracing::error!(
                from = next,
                oldest,
                "notifier: records before {oldest} are no longer in the WAL and were not notified"
            );
            next = oldest;
        }
        let Some(mut cursor) = engine.feed(next) else {
            return;
        };
        // The cursor goes into the outbox with every message, and on its own at most every
        // `limits::FEED_CURSOR_SAVE_MILLIS` or when the feed goes idle: records that derive no
        // message (most of them) need no outbox fsync each. Until it is saved, `handled_lsn`
        // and the WAL retention stay at the saved cursor, where a restart resumes.
        let mut unsaved: Option<u64> = None;
        let mut saved_at = Instant::now();
        loop {
            let started = Instant::now();
            let read = cursor.next_batch_async(limits::FEED_RECORDS_PER_READ).await;
            let Some((returned, batch)) = read else {
                return;
            };
            cursor = returned;
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!("notifier: change feed unreadable: {e}");
                    if stopped_within(&mut stop, retry).await {
                        return;
                    }
                    break;
                }
            };
            let idle = batch.is_empty();
            let caught_up = batch.len() < limits::FEED_RECORDS_PER_READ;
            let now = crate::time::now_ms();
            let mut messages = Vec::new();
            for (lsn, payload) in batch {
                unsaved = Some(lsn);
                if Record::sole_event_kind(&payload).is_some_and(|k| !NOTIFYING_KINDS.contains(&k))
                {
                    continue;
                }
                match Record::decode(&payload) {
                    Ok(record) => messages.extend(derive(lsn, &record, &*engine, &rules, now)),
                    Err(e) => tracing::error!(lsn, "notifier: undecodable WAL record skipped: {e}"),
                }
            }
            let due = idle || !messages.is_empty() || saved_at.elapsed() >= save_interval;
            if let Some(last) = unsaved.filter(|_| due) {
                match save(&shared, &advance, messages, last).await {
                    Saved::Done => {
                        unsaved = None;
                        saved_at = Instant::now();
                    }
                    Saved::Failed => {
                        if stopped_within(&mut stop, retry).await {
                            return;
                        }
                        break;
                    }
                    Saved::Shutdown => return,
                }
            }
            if idle {
                tokio::select! {
                    changed = durable.changed() => if changed.is_err() { return },
                    _ = stop.changed() => return,
                }
                continue;
            }
            // Caught up: let records gather (`limits::FEED_INTERVAL_MILLIS`).
            if caught_up
                && stopped_within(&mut stop, interval.saturating_sub(started.elapsed())).await
            {
                return;
            }
        }
    }
}

enum Saved {
    Done,
    /// The outbox write failed (logged): the records are read again from the saved cursor.
    Failed,
    /// The runtime is shutting down.
    Shutdown,
}

/// Writes `messages` and the cursor `last` to the outbox in one append (one fsync), then
/// publishes the cursor and wakes the channels that have new messages.
async fn save(
    shared: &Arc<Shared>,
    advance: &Arc<dyn Fn(u64) + Send + Sync>,
    messages: Vec<Message>,
    last: u64,
) -> Saved {
    let channels: Vec<usize> = messages.iter().map(|m| m.channel.index()).collect();
    let writer = shared.clone();
    let written =
        tokio::task::spawn_blocking(move || writer.outbox.lock().enqueue(messages, last)).await;
    match written {
        Ok(Ok(_)) => {
            shared.handled_lsn.store(last, Ordering::Relaxed);
            advance(last);
            for c in channels {
                shared.wake[c].notify_one();
            }
            Saved::Done
        }
        Ok(Err(e)) => {
            tracing::error!("notifier: outbox write failed (will re-read): {e}");
            Saved::Failed
        }
        Err(_) => Saved::Shutdown,
    }
}

/// Waits `wait`; true if told to stop meanwhile.
pub(crate) async fn stopped_within(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = stop.changed() => true,
        () = tokio::time::sleep(wait) => *stop.borrow(),
    }
}
