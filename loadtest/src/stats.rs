//! What the run measured: latency from each arrival's *intended* send time (so a stalled
//! server's backlog counts against it — the coordinated-omission correction of an open loop),
//! units done, and failures by status code. Beside it, each arrival's *send lag*: how late
//! the generator itself began it (its timer's 1 ms tick, a starved runtime, the in-flight cap),
//! so a run shows how much of its latency the target never saw.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::limits;

/// What one arrival came to: units of work that succeeded, and a status code name for each
/// that failed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: u64,
    pub failed: Vec<&'static str>,
}

impl Outcome {
    pub fn ok(units: u64) -> Outcome {
        Outcome {
            ok: units,
            failed: Vec::new(),
        }
    }

    pub fn failed(code: &'static str) -> Outcome {
        Outcome {
            ok: 0,
            failed: vec![code],
        }
    }
}

/// The two timings of every arrival, in microseconds: recorded together, under one lock.
struct Histograms {
    latency: Histogram<u64>,
    send_lag: Histogram<u64>,
}

/// Shared by every request task; the histograms sit behind a mutex taken once per arrival
/// (microseconds of work at tens of thousands of arrivals a second).
pub struct Stats {
    histograms: Mutex<Histograms>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    pub sent: AtomicU64,
    pub done: AtomicU64,
    pub units_ok: AtomicU64,
    pub units_failed: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        let histogram = || {
            Histogram::new_with_bounds(
                1,
                limits::LATENCY_MICROS_MAX,
                limits::LATENCY_SIGNIFICANT_FIGURES,
            )
            .expect("histogram bounds are constants")
        };
        Stats {
            histograms: Mutex::new(Histograms {
                latency: histogram(),
                send_lag: histogram(),
            }),
            errors: Mutex::new(BTreeMap::new()),
            sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            units_ok: AtomicU64::new(0),
            units_failed: AtomicU64::new(0),
        }
    }

    /// Records an arrival that began `send_lag` after its intended send time (its first RPC
    /// left then) and took `latency` from that intended time. An arrival that had nothing to
    /// send (a user whose hold was refused) is counted as done, not timed.
    pub fn record(&self, send_lag: Duration, latency: Duration, outcome: Outcome) {
        if outcome.ok == 0 && outcome.failed.is_empty() {
            self.done.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        {
            let mut h = lock(&self.histograms);
            h.latency.saturating_record(micros(latency));
            h.send_lag.saturating_record(micros(send_lag));
        }
        self.units_ok.fetch_add(outcome.ok, Ordering::Relaxed);
        if !outcome.failed.is_empty() {
            self.units_failed
                .fetch_add(outcome.failed.len() as u64, Ordering::Relaxed);
            let mut errors = lock(&self.errors);
            for code in outcome.failed {
                *errors.entry(code).or_default() += 1;
            }
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// p99 so far, for the progress line.
    pub fn p99_micros(&self) -> u64 {
        lock(&self.histograms).latency.value_at_quantile(0.99)
    }

    pub fn summary(&self, elapsed: Duration) -> Measured {
        let h = lock(&self.histograms);
        let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let units_ok = self.units_ok.load(Ordering::Relaxed);
        let done = self.done.load(Ordering::Relaxed);
        Measured {
            elapsed_seconds: seconds,
            arrivals_sent: self.sent.load(Ordering::Relaxed),
            arrivals_done: done,
            units_ok,
            units_failed: self.units_failed.load(Ordering::Relaxed),
            units_ok_per_second: units_ok as f64 / seconds,
            arrivals_per_second: done as f64 / seconds,
            latency_micros: Latency::of(&h.latency),
            send_lag_micros: Latency::of(&h.send_lag),
            errors_by_code: lock(&self.errors)
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}

/// A poisoned lock only means another task panicked mid-record; the figures are still sound.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Latency of an arrival (all of its RPCs), from its intended send time, in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    /// From the first intended send time to the last answer.
    pub elapsed_seconds: f64,
    pub arrivals_sent: u64,
    pub arrivals_done: u64,
    pub units_ok: u64,
    pub units_failed: u64,
    pub units_ok_per_second: f64,
    pub arrivals_per_second: f64,
    pub latency_micros: Latency,
    /// How late the generator began each arrival, in microseconds: part of `latency_micros`
    /// that the target never saw. Large figures mean the load generator, not the target, was
    /// short of CPU (or held back by the in-flight cap).
    pub send_lag_micros: Latency,
    /// Failed units by gRPC status code name (peers map theirs onto the same names).
    pub errors_by_code: BTreeMap<String, u64>,
}

/// The gRPC name of a status code, as the errors table shows it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Whether a failure with this code may still have taken effect (the answer was lost, not a
/// refusal): the check then allows for the units either way.
pub fn outcome_unknown(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Cancelled | Unknown | DeadlineExceeded | Internal | Unavailable | DataLoss | Aborted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_orders_percentiles() {
        let stats = Stats::new();
        for ms in 1..=1000u64 {
            stats.record(Duration::ZERO, Duration::from_millis(ms), Outcome::ok(1));
        }
        stats.record(
            Duration::ZERO,
            Duration::from_millis(5),
            Outcome::failed("UNAVAILABLE"),
        );
        let m = stats.summary(Duration::from_secs(1));
        assert_eq!(m.units_ok, 1000);
        assert_eq!(m.units_failed, 1);
        assert_eq!(m.errors_by_code.get("UNAVAILABLE"), Some(&1));
        let l = &m.latency_micros;
        assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
        assert!((985_000..=995_000).contains(&l.p99), "p99 {}", l.p99);
    }
}
