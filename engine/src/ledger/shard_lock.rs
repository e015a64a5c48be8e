//! The shard mutex: parking_lot's raw mutex, with a short spin of its own before it parks.
//!
//! A shard is held for the in-memory part of one op — about a microsecond — so a thread that
//! finds it taken nearly always gets it soon. parking_lot spins only briefly before it parks
//! on a futex, and a park costs a sleep, a wake-up syscall from the unlocking thread and two
//! context switches: more than the op itself. A waiter here spins (with the CPU's pause hint)
//! for up to [`SHARD_LOCK_SPIN_NANOS_MAX`] first, then falls back to parking_lot's own lock,
//! which parks. Fairness and the unlock path are parking_lot's.
//!
//! One waiter per shard spins; the others park at once. With many more threads than cores (a
//! benchmark's 128 blocking submitters) spinners burn the CPU that a preempted holder — or the
//! WAL writer — needs; one spinner is what two cores can use, and the spin is kept short.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use lock_api::{GuardSend, RawMutex as _};

use crate::limits::SHARD_LOCK_SPIN_NANOS_MAX;

/// Spin attempts between two reads of the clock: the clock costs more than a pause.
const SPINS_PER_CLOCK_READ: u32 = 64;

pub struct SpinThenPark {
    inner: parking_lot::RawMutex,
    /// Some waiter is spinning.
    spinner: AtomicBool,
}

// SAFETY: every method delegates to parking_lot's RawMutex, which upholds the trait's contract;
// the spin only calls its `try_lock` and `is_locked` (the `spinner` flag guards nothing but
// the spin itself).
#[allow(unsafe_code)]
unsafe impl lock_api::RawMutex for SpinThenPark {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = Self {
        inner: parking_lot::RawMutex::INIT,
        spinner: AtomicBool::new(false),
    };
    type GuardMarker = GuardSend;

    fn lock(&self) {
        if self.inner.try_lock() || self.spin() {
            return;
        }
        self.inner.lock();
    }

    fn try_lock(&self) -> bool {
        self.inner.try_lock()
    }

    #[allow(unsafe_code)]
    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (the trait's contract), so the inner mutex is held.
        unsafe { self.inner.unlock() }
    }

    fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }
}

impl SpinThenPark {
    /// Waits for the mutex without sleeping, for a bounded time, unless another waiter
    /// already does. True if it took the mutex.
    fn spin(&self) -> bool {
        if self.spinner.swap(true, Ordering::Acquire) {
            return false;
        }
        let start = Instant::now();
        let took = 'spin: loop {
            for _ in 0..SPINS_PER_CLOCK_READ {
                std::hint::spin_loop();
                // Read before trying: a failed compare-and-swap takes the cache line away
                // from the holder.
                if !self.inner.is_locked() && self.inner.try_lock() {
                    break 'spin true;
                }
            }
            if start.elapsed().as_nanos() >= u128::from(SHARD_LOCK_SPIN_NANOS_MAX) {
                break false;
            }
        };
        self.spinner.store(false, Ordering::Release);
        took
    }
}

pub type ShardMutex<T> = lock_api::Mutex<SpinThenPark, T>;
pub type ShardGuard<'a, T> = lock_api::MutexGuard<'a, SpinThenPark, T>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn contended_increments_are_all_kept() {
        let counter = Arc::new(ShardMutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        *counter.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*counter.lock(), 400_000);
    }

    #[test]
    fn a_long_holder_makes_waiters_park_not_fail() {
        let mutex = Arc::new(ShardMutex::new(()));
        let guard = mutex.lock();
        let waiter = {
            let mutex = Arc::clone(&mutex);
            std::thread::spawn(move || {
                let _held = mutex.lock();
                true
            })
        };
        // Longer than the spin bound: the waiter has given up spinning and parked.
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(mutex.is_locked() && !waiter.is_finished());
        drop(guard);
        assert!(waiter.join().unwrap());
        assert!(mutex.try_lock().is_some());
    }
}
