//! Async waiters on the durability watermark, each woken once — when its LSN is durable.
//!
//! A `watch` channel wakes every receiver on every group commit, and each re-checks its LSN:
//! with hundreds of tasks waiting that is hundreds of task polls per fsync, most of them
//! for nothing (measured: the durable benchmark with 512 waiting tasks spent its CPU on
//! wakeups and reached ~80 records per fsync). Here waiters are kept by LSN and the writer
//! wakes exactly the ones its commit covered.

use std::collections::BTreeMap;
use std::task::Waker;

use parking_lot::Mutex;

/// A registration: (the LSN waited for, a sequence number that makes it unique).
pub type Key = (u64, u64);

#[derive(Default)]
pub struct Waiters {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_seq: u64,
    by_lsn: BTreeMap<Key, Waker>,
}

impl Waiters {
    /// Registers (or refreshes) the waker of a wait for `lsn`, unless `ready` — checked under
    /// the lock, so a commit published before it is seen and one published after it wakes
    /// this waker — says there is no need. Returns the registration, or None if ready.
    pub fn register(
        &self,
        key: Option<Key>,
        lsn: u64,
        waker: &Waker,
        ready: impl Fn() -> bool,
    ) -> Option<Key> {
        let mut inner = self.inner.lock();
        if ready() {
            if let Some(key) = key {
                inner.by_lsn.remove(&key);
            }
            return None;
        }
        let key = key.unwrap_or_else(|| {
            inner.next_seq += 1;
            (lsn, inner.next_seq)
        });
        match inner.by_lsn.get_mut(&key) {
            Some(stored) if stored.will_wake(waker) => {}
            Some(stored) => stored.clone_from(waker),
            None => {
                inner.by_lsn.insert(key, waker.clone());
            }
        }
        Some(key)
    }

    /// Drops a registration (a wait that ended, or was dropped, before its wakeup).
    pub fn cancel(&self, key: Key) {
        self.inner.lock().by_lsn.remove(&key);
    }

    /// Wakes every wait for an LSN at or below `lsn` (`u64::MAX`: all of them). The caller
    /// has already published what makes them ready.
    pub fn wake_through(&self, lsn: u64) {
        let due = {
            let mut inner = self.inner.lock();
            if inner
                .by_lsn
                .first_key_value()
                .is_none_or(|(&(first, _), _)| first > lsn)
            {
                return;
            }
            match lsn.checked_add(1) {
                Some(above) => {
                    let rest = inner.by_lsn.split_off(&(above, 0));
                    std::mem::replace(&mut inner.by_lsn, rest)
                }
                None => std::mem::take(&mut inner.by_lsn),
            }
        };
        for waker in due.into_values() {
            waker.wake();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().by_lsn.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::Waiters;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_only_the_waits_a_commit_covers() {
        let waiters = Waiters::default();
        let counts: Vec<Arc<Count>> = (0..3)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        let wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(c.clone())).collect();
        let keys: Vec<_> = [5, 7, 9]
            .iter()
            .zip(&wakers)
            .map(|(&lsn, w)| {
                waiters
                    .register(None, lsn, w, || false)
                    .expect("registered")
            })
            .collect();
        waiters.wake_through(7);
        let woken: Vec<usize> = counts.iter().map(|c| c.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken, vec![1, 1, 0]);
        assert_eq!(waiters.len(), 1);
        assert_eq!(
            waiters.register(Some(keys[2]), 9, &wakers[2], || true),
            None
        );
        assert!(waiters.is_empty(), "a ready wait leaves no registration");
        waiters
            .register(None, 11, &wakers[0], || false)
            .expect("registered");
        waiters.wake_through(u64::MAX);
        assert_eq!(counts[0].0.load(Ordering::SeqCst), 2, "u64::MAX wakes all");
        assert!(waiters.is_empty());
    }
}
