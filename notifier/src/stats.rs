//! Delivery counters and the event-to-send latency histogram, in atomics (workers update them,
//! `/metrics` reads them), rendered in Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::message::Channel;

/// Upper bounds of the event-to-send latency buckets, in seconds.
const BUCKETS_SECONDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

#[derive(Default)]
pub struct Stats {
    sent: [AtomicU64; 3],
    /// Failed attempts (each one, not only dead letters).
    attempts_failed: [AtomicU64; 3],
    /// Messages that ran out of attempts.
    dead: [AtomicU64; 3],
    buckets: [AtomicU64; BUCKETS_SECONDS.len() + 1],
    latency_count: AtomicU64,
    latency_sum_millis: AtomicU64,
}

impl Stats {
    pub fn sent(&self, channel: Channel, latency_millis: u64) {
        self.sent[channel.index()].fetch_add(1, Ordering::Relaxed);
        let seconds = latency_millis as f64 / 1000.0;
        let slot = BUCKETS_SECONDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS_SECONDS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_millis
            .fetch_add(latency_millis, Ordering::Relaxed);
    }

    pub fn attempt_failed(&self, channel: Channel, dead: bool) {
        self.attempts_failed[channel.index()].fetch_add(1, Ordering::Relaxed);
        if dead {
            self.dead[channel.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn sent_total(&self, channel: Channel) -> u64 {
        self.sent[channel.index()].load(Ordering::Relaxed)
    }

    /// Appends the metrics; `depth` is the PENDING count per channel.
    pub fn render(&self, depth: [usize; 3], handled_lsn: u64, out: &mut String) {
        let each =
            |out: &mut String, name: &str, help: &str, kind: &str, v: &dyn Fn(Channel) -> u64| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for c in Channel::ALL {
                    let _ = writeln!(out, "{name}{{channel=\"{}\"}} {}", c.name(), v(c));
                }
            };
        let load = |a: &[AtomicU64; 3], c: Channel| a[c.index()].load(Ordering::Relaxed);
        each(
            out,
            "inventory_notifications_sent_total",
            "Notifications delivered.",
            "counter",
            &|c| load(&self.sent, c),
        );
        each(
            out,
            "inventory_notifications_attempts_failed_total",
            "Delivery attempts that failed (each is retried until attempts_max).",
            "counter",
            &|c| load(&self.attempts_failed, c),
        );
        each(
            out,
            "inventory_notifications_failed_total",
            "Notifications that ran out of attempts (dead letters).",
            "counter",
            &|c| load(&self.dead, c),
        );
        each(
            out,
            "inventory_notifications_queue_depth",
            "PENDING notifications.",
            "gauge",
            &|c| depth[c.index()] as u64,
        );
        let _ = writeln!(
            out,
            "# HELP inventory_notify_lsn Highest WAL LSN the notifier has durably turned into messages.\n# TYPE inventory_notify_lsn gauge\ninventory_notify_lsn {handled_lsn}"
        );
        let name = "inventory_notification_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From the event's commit to the message's delivery.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_SECONDS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[BUCKETS_SECONDS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.latency_sum_millis.load(Ordering::Relaxed) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "{name}_sum {sum}\n{name}_count {}",
            self.latency_count.load(Ordering::Relaxed)
        );
    }
}
