//! A progress line on stderr, redrawn every second while the schedule runs.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::limits;
use crate::stats::Stats;

pub struct Progress {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub fn start(stats: Arc<Stats>, planned: Duration, arrivals: u64) -> Progress {
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let start = Instant::now();
        let mut tick =
            tokio::time::interval(Duration::from_millis(limits::PROGRESS_INTERVAL_MILLIS));
        // Bounded: the planned length plus the drain, one line per interval.
        let lines = (planned.as_secs() + limits::DRAIN_SECONDS) * 1000
            / limits::PROGRESS_INTERVAL_MILLIS
            + 1;
        for _ in 0..lines {
            tokio::select! {
                _ = tick.tick() => draw(&stats, start, planned, arrivals),
                _ = &mut stopped => break,
            }
        }
        draw(&stats, start, planned, arrivals);
        eprintln!();
    });
    Progress { stop, task }
}

fn draw(stats: &Stats, start: Instant, planned: Duration, arrivals: u64) {
    let sent = stats.sent.load(Ordering::Relaxed);
    let done = stats.done.load(Ordering::Relaxed);
    let width = 30u64;
    let filled = (sent * width)
        .checked_div(arrivals)
        .unwrap_or(width)
        .min(width) as usize;
    eprint!(
        "\r[{}{}] {:>6.1}s/{:.0}s sent {sent} done {done} ok {} failed {} p99 {:.2} ms   ",
        "#".repeat(filled),
        "-".repeat(width as usize - filled),
        start.elapsed().as_secs_f64(),
        planned.as_secs_f64(),
        stats.units_ok.load(Ordering::Relaxed),
        stats.units_failed.load(Ordering::Relaxed),
        stats.p99_micros() as f64 / 1000.0,
    );
    let _ = std::io::stderr().flush();
}

impl Progress {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
