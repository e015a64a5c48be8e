//! What each arrival does, target-neutral: the schedule of steps and their seeded choices.

use std::time::Duration;

use rand::Rng;

use crate::config::{Config, Scenario};
use crate::driver::offset;
use crate::limits;
use crate::rng::{self, Zipf};

/// How a checkout order's payment goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payment {
    Pay,
    Fail,
    /// Never answered: the server cancels the order at its (short) payment deadline.
    TimeOut,
}

/// One arrival.
#[derive(Clone, Debug)]
pub enum Step {
    /// flash-sale / catalog: `skus.len()` units of work, one unit of one SKU each; unit `k`
    /// has id `first + k`.
    Units { first: u64, skus: Vec<usize> },
    /// A user takes its hold of one unit of `sku`.
    UserBegin { user: u64, sku: usize },
    /// The same user, a think time later, commits or releases it.
    UserEnd { user: u64, sku: usize, commit: bool },
    /// The whole order flow for order `order`.
    Checkout {
        order: u64,
        customer: usize,
        lines: Vec<(usize, u32)>,
        payment: Payment,
        /// Paid, shipped and delivered, then returned in full and restocked.
        returned: bool,
    },
}

/// The steps of a run in intended-send-time order.
pub struct Schedule {
    config: Config,
    zipf: Zipf,
    next: u64,
    /// users: the next user to begin and the next to end (ends trail begins by the think time).
    next_end: u64,
}

impl Schedule {
    pub fn new(config: &Config) -> Schedule {
        Schedule {
            zipf: Zipf::new(config.skus, config.zipf_exponent),
            config: config.clone(),
            next: 0,
            next_end: 0,
        }
    }

    fn user(&self, user: u64) -> (usize, bool) {
        let mut r = rng::for_arrival(self.config.seed, user);
        let sku = self.zipf.sample(&mut r);
        let commit = r.random_range(0..100) < self.config.commit_percent;
        (sku, commit)
    }

    fn arrival(&self, index: u64) -> Step {
        let c = &self.config;
        let mut r = rng::for_arrival(c.seed, index);
        match c.scenario {
            Scenario::FlashSale => Step::Units {
                first: index * c.batch as u64,
                skus: vec![0; c.batch],
            },
            Scenario::Catalog => Step::Units {
                first: index * c.batch as u64,
                skus: (0..c.batch).map(|_| self.zipf.sample(&mut r)).collect(),
            },
            Scenario::Checkout => {
                let wanted = r.random_range(1..=limits::ORDER_LINES_MAX.min(c.skus));
                let mut lines: Vec<(usize, u32)> = Vec::with_capacity(wanted);
                // Distinct SKUs (a SKU twice is INVALID_ARGUMENT); bounded draws.
                for _ in 0..wanted * 8 {
                    if lines.len() == wanted {
                        break;
                    }
                    let sku = self.zipf.sample(&mut r);
                    if !lines.iter().any(|(s, _)| *s == sku) {
                        lines.push((sku, r.random_range(1..=limits::ORDER_LINE_UNITS_MAX)));
                    }
                }
                let roll = r.random_range(0..100u32);
                // Of the rest, commit_percent pay; the others split between failing and
                // letting the deadline pass.
                let payment = if roll < c.commit_percent {
                    Payment::Pay
                } else if roll % 2 == 0 {
                    Payment::Fail
                } else {
                    Payment::TimeOut
                };
                Step::Checkout {
                    order: index,
                    customer: r.random_range(0..limits::CUSTOMERS),
                    lines,
                    payment,
                    returned: payment == Payment::Pay && r.random_range(0..100) < 20,
                }
            }
            Scenario::Users => unreachable!("users are scheduled by begin/end"),
        }
    }
}

impl Iterator for Schedule {
    type Item = (Duration, Step);

    fn next(&mut self) -> Option<(Duration, Step)> {
        let c = &self.config;
        if c.scenario != Scenario::Users {
            if self.next >= c.arrivals() {
                return None;
            }
            let i = self.next;
            self.next += 1;
            return Some((offset(i, c.rate_per_second), self.arrival(i)));
        }
        let begin_at = |u: u64| offset(u, c.rate_per_second);
        let end_at = |u: u64| begin_at(u) + c.think();
        let begin_due = (self.next < c.users).then(|| begin_at(self.next));
        let end_due = (self.next_end < self.next).then(|| end_at(self.next_end));
        match (begin_due, end_due) {
            (Some(b), e) if e.is_none_or(|e| b <= e) => {
                let user = self.next;
                self.next += 1;
                let (sku, _) = self.user(user);
                Some((b, Step::UserBegin { user, sku }))
            }
            (_, Some(e)) => {
                let user = self.next_end;
                self.next_end += 1;
                let (sku, commit) = self.user(user);
                Some((e, Step::UserEnd { user, sku, commit }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_begin_then_end_in_time_order() {
        let mut c = Config::new(Scenario::Users, "http://127.0.0.1:1");
        c.users = 50;
        c.rate_per_second = 10;
        c.think_millis = 1_500;
        let steps: Vec<_> = Schedule::new(&c).collect();
        assert_eq!(steps.len(), 100);
        assert!(steps.windows(2).all(|w| w[0].0 <= w[1].0));
        let mut begun = std::collections::HashSet::new();
        for (_, s) in &steps {
            match s {
                Step::UserBegin { user, .. } => assert!(begun.insert(*user)),
                Step::UserEnd { user, .. } => assert!(begun.contains(user), "end before begin"),
                _ => panic!("unexpected step"),
            }
        }
    }

    #[test]
    fn checkout_lines_are_distinct_skus() {
        let mut c = Config::new(Scenario::Checkout, "http://127.0.0.1:1");
        c.skus = 3;
        for (_, s) in Schedule::new(&c).take(300) {
            let Step::Checkout { lines, .. } = s else {
                panic!("unexpected step")
            };
            let mut skus: Vec<_> = lines.iter().map(|l| l.0).collect();
            skus.sort();
            skus.dedup();
            assert_eq!(skus.len(), lines.len());
            assert!(!lines.is_empty());
        }
    }
}
