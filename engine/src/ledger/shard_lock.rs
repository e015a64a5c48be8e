//! The shard mutex: parking_lot's raw mutex behind a longer spin.
//!
//! A shard is held for the in-memory part of one op — a few microseconds — so a thread that
//! finds it taken nearly always gets it soon. parking_lot spins only briefly before it parks
//! on a futex, and a park costs a sleep, a wake-up syscall from the unlocking thread and two
//! context switches: more than the op itself. Waiters here spin (with the CPU's pause hint)
//! for up to [`SHARD_LOCK_SPIN_NANOS_MAX`] first, then fall back to parking_lot's own lock,
//! which parks. Fairness and the unlock path are parking_lot's.

use std::time::Instant;

use lock_api::{GuardSend, RawMutex as _};

use crate::limits::SHARD_LOCK_SPIN_NANOS_MAX;

/// Spin attempts between two reads of the clock: the clock costs more than a pause.
const SPINS_PER_CLOCK_READ: u32 = 64;

pub struct SpinThenPark(parking_lot::RawMutex);

// SAFETY: every method delegates to parking_lot's RawMutex, which upholds the trait's contract;
// the spin only calls its `try_lock` and `is_locked`.
#[allow(unsafe_code)]
unsafe impl lock_api::RawMutex for SpinThenPark {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = Self(parking_lot::RawMutex::INIT);
    type GuardMarker = GuardSend;

    fn lock(&self) {
        if self.0.try_lock() || self.spin() {
            return;
        }
        self.0.lock();
    }

    fn try_lock(&self) -> bool {
        self.0.try_lock()
    }

    #[allow(unsafe_code)]
    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (the trait's contract), so the inner mutex is held.
        unsafe { self.0.unlock() }
    }

    fn is_locked(&self) -> bool {
        self.0.is_locked()
    }
}

impl SpinThenPark {
    /// Waits for the mutex without sleeping, for a bounded time. True if it took it.
    fn spin(&self) -> bool {
        let start = Instant::now();
        loop {
            for _ in 0..SPINS_PER_CLOCK_READ {
                std::hint::spin_loop();
                // Read before trying: a failed compare-and-swap takes the cache line away
                // from the holder.
                if !self.0.is_locked() && self.0.try_lock() {
                    return true;
                }
            }
            if start.elapsed().as_nanos() >= u128::from(SHARD_LOCK_SPIN_NANOS_MAX) {
                return false;
            }
        }
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
