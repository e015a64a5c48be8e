//! The async runtime the server runs on: tokio's multi-threaded scheduler, its threads asking
//! the kernel for a short CPU slice when `thread_slice_micros` is set (`engine::sched`).

use std::sync::atomic::{AtomicBool, Ordering};

/// A multi-threaded runtime with `worker_threads` workers (`None`: one per core, tokio's
/// default) whose threads ask for slices of `thread_slice_micros` (0: the kernel's default).
/// A kernel that refuses is logged once and the runtime runs with its default slices.
pub fn build(
    worker_threads: Option<usize>,
    thread_slice_micros: u64,
) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    if thread_slice_micros > 0 {
        let warned = AtomicBool::new(false);
        builder.on_thread_start(move || {
            if let Err(e) = engine::sched::set_current_thread_slice(thread_slice_micros)
                && !warned.swap(true, Ordering::Relaxed)
            {
                tracing::warn!(error = %e, thread_slice_micros, "could not set the runtime threads' CPU slice");
            }
        });
    }
    builder.enable_all().build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_threads_run_with_the_slice_asked_for() {
        let rt = build(Some(1), 300).unwrap();
        let on_worker = rt.block_on(async {
            tokio::spawn(async { engine::sched::thread_slice_micros(0).unwrap() })
                .await
                .unwrap()
        });
        assert_eq!(on_worker, 300);
        let on_blocking = rt.block_on(async {
            tokio::task::spawn_blocking(|| engine::sched::thread_slice_micros(0).unwrap())
                .await
                .unwrap()
        });
        assert_eq!(on_blocking, 300);
    }
}
