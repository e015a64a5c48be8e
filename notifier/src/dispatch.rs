//! A channel worker: sends its channel's due messages in batches and records each outcome.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::channel::Transport;
use crate::feed::stopped_within;
use crate::message::{Channel, Message, Status};
use crate::{Shared, limits};

pub(crate) async fn deliver(
    shared: Arc<Shared>,
    channel: Channel,
    transport: Transport,
    mut stop: watch::Receiver<bool>,
) {
    let idle = limits::IDLE_POLL_MILLIS;
    loop {
        if *stop.borrow() {
            return;
        }
        let now = crate::time::now_ms();
        let (due, next) = shared
            .outbox
            .lock()
            .due(channel, now, limits::SEND_BATCH_MAX);
        if due.is_empty() {
            let wait = next.map_or(idle, |at| at.saturating_sub(now).min(idle));
            tokio::select! {
                () = shared.wake[channel.index()].notified() => {}
                () = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        let results = transport.send_batch(&due).await;
        let now = crate::time::now_ms();
        let updated: Vec<Message> = due
            .into_iter()
            .zip(results)
            .map(|(m, result)| outcome(&shared, m, result, now))
            .collect();
        let writer = shared.clone();
        let written =
            tokio::task::spawn_blocking(move || writer.outbox.lock().update(updated)).await;
        if let Ok(Err(e)) = written {
            // The outcomes are lost, the messages stay PENDING: sent ones go again (same id).
            tracing::error!(channel = channel.name(), "outbox write failed: {e}");
            if stopped_within(&mut stop, Duration::from_millis(limits::FEED_RETRY_MILLIS)).await {
                return;
            }
        }
    }
}

fn outcome(shared: &Shared, mut m: Message, result: Result<(), String>, now: u64) -> Message {
    let config = &shared.config;
    m.attempts += 1;
    match result {
        Ok(()) => {
            m.status = Status::Sent;
            m.sent_at_ms = now;
            m.next_attempt_ms = 0;
            shared
                .stats
                .sent(m.channel, now.saturating_sub(m.event_at_ms));
        }
        Err(e) => {
            let failures = m.attempts - m.attempts_base;
            let dead = failures >= config.attempts_max;
            if dead {
                m.status = Status::Failed;
                m.next_attempt_ms = 0;
                tracing::error!(id = %m.id, channel = m.channel.name(), attempts = m.attempts, "notification FAILED: {e}");
            } else {
                m.next_attempt_ms = now
                    + backoff_millis(
                        config.backoff_initial_millis,
                        config.backoff_max_millis,
                        failures,
                    );
                tracing::warn!(id = %m.id, channel = m.channel.name(), attempts = m.attempts, "notification attempt failed, will retry: {e}");
            }
            m.last_error = e;
            shared.stats.attempt_failed(m.channel, dead);
        }
    }
    m
}

/// The wait after the `failures`-th failure: `initial × 2^(failures − 1)`, capped at `max`,
/// then drawn from [wait / 2, wait] (jitter).
pub(crate) fn backoff_millis(initial: u64, max: u64, failures: u32) -> u64 {
    let shift = failures.saturating_sub(1).min(30);
    let wait = initial.saturating_mul(1u64 << shift).min(max).max(1);
    rand::random_range(wait / 2..=wait)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        for _ in 0..100 {
            let first = super::backoff_millis(100, 1_000, 1);
            assert!((50..=100).contains(&first), "{first}");
            let third = super::backoff_millis(100, 1_000, 3);
            assert!((200..=400).contains(&third), "{third}");
            let capped = super::backoff_millis(100, 1_000, 40);
            assert!((500..=1_000).contains(&capped), "{capped}");
        }
    }
}
