//! The open loop: every arrival has an intended send time fixed by the schedule (index / rate),
//! independent of how fast the target answers. An arrival is sent at that time (or as soon
//! after as the in-flight cap allows) and its latency is measured *from that time*, so a
//! target that stalls is charged for every arrival it delayed — the coordinated-omission
//! correction, by construction rather than by back-filling a closed loop's histogram.
//!
//! The loop sleeps on tokio's timer, which ticks once a millisecond: arrivals leave in small
//! bursts at each tick, up to a millisecond after their intended time, and that lag counts in
//! their latency (the summary reports it apart, as the send lag: ~0.8 ms at the median). A
//! pacer thread that slept to each arrival's own time was tried (session 11): the median send
//! lag fell to ~0.14 ms, but the generator took ~20 % more CPU and the server more too (an
//! evenly spaced arrival gets no company in its group commit), and on a 2-core machine shared
//! with the server that cost the p99 more than the lag did — so the timer stays.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::limits;
use crate::stats::{Outcome, Stats};

/// Runs `exec` for every `(offset, step)` of `schedule` (offsets non-decreasing, from the
/// start), at most `in_flight_max` at once, until `window` has passed: a target too slow for
/// the rate leaves the rest of the schedule unsent (counted: sent < planned) rather than
/// stretching the run without end. Returns once every arrival sent has answered, or the drain
/// deadline passed; the count of arrivals abandoned then.
pub async fn drive<S, I, F, Fut>(
    schedule: I,
    in_flight_max: usize,
    window: Duration,
    stats: Arc<Stats>,
    exec: F,
) -> (Instant, usize)
where
    I: Iterator<Item = (Duration, S)>,
    F: Fn(S) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(in_flight_max.max(1)));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for (offset, step) in schedule {
        let due = start + offset;
        if Instant::now() > start + window {
            break;
        }
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let fut = exec(step);
        let stats_task = stats.clone();
        stats
            .sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tasks.spawn(async move {
            // The task's first poll is when the arrival really leaves: after the timer's
            // tick, the permit and the runtime's queue.
            let send_lag = due.elapsed();
            let outcome = fut.await;
            stats_task.record(send_lag, due.elapsed(), outcome);
            drop(permit);
        });
        // Reap finished tasks as we go so the set holds only what is in flight.
        while tasks.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(Duration::from_secs(limits::DRAIN_SECONDS), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let abandoned = if drained.is_err() { tasks.len() } else { 0 };
    tasks.abort_all();
    (start, abandoned)
}

/// Offset of arrival `index` at `rate` per second.
pub fn offset(index: u64, rate_per_second: u64) -> Duration {
    let nanos = u128::from(index) * 1_000_000_000 / u128::from(rate_per_second.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_the_rate() {
        assert_eq!(offset(0, 1000), Duration::ZERO);
        assert_eq!(offset(1, 1000), Duration::from_millis(1));
        assert_eq!(offset(2500, 1000), Duration::from_millis(2500));
    }

    #[tokio::test]
    async fn a_slow_answer_is_charged_from_the_intended_time() {
        // One slot in flight and each arrival takes 20 ms: the second arrival, due at 1 ms,
        // cannot start before ~20 ms, and its latency counts from 1 ms.
        let stats = Arc::new(Stats::new());
        let schedule = (0..3u64).map(|i| (offset(i, 1000), i));
        let window = Duration::from_secs(60);
        let (_, abandoned) = drive(schedule, 1, window, stats.clone(), |_| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Outcome::ok(1)
        })
        .await;
        assert_eq!(abandoned, 0);
        let m = stats.summary(Duration::from_secs(1));
        assert_eq!(m.units_ok, 3);
        // The third waited for two before it: ≥ 58 ms from its intended time (60 − 2).
        assert!(m.latency_micros.max >= 58_000, "{:?}", m.latency_micros);
        // ... and 38 ms of that before it was sent (it began at ~40 ms, due at 2 ms); the
        // first went at once.
        let lag = &m.send_lag_micros;
        assert!(lag.max >= 38_000, "{lag:?}");
        assert!(lag.max < m.latency_micros.max, "{lag:?}");
        assert!(lag.p50 < 38_000, "{lag:?}");
    }
}
