//! What the run was told, per SKU, and the end-of-run check against what the target holds.
//!
//! Every acknowledged effect is counted: units held (and not yet ended), deducted (commits,
//! paid orders, peers' decrements) and restocked (approved returns). A failure whose outcome is
//! unknown (a timeout, a lost connection) counts its units as *uncertain*: the check allows the
//! figures to be off by at most that much, and says how much it allowed. A clean run has none,
//! and the check is exact.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

#[derive(Default)]
struct Sku {
    held: AtomicI64,
    deducted: AtomicU64,
    restocked: AtomicU64,
    uncertain: AtomicU64,
}

pub struct Expected {
    initial: u32,
    skus: Vec<Sku>,
}

impl Expected {
    pub fn new(skus: usize, initial: u32) -> Expected {
        Expected {
            initial,
            skus: (0..skus).map(|_| Sku::default()).collect(),
        }
    }

    pub fn held(&self, sku: usize, units: u32) {
        self.skus[sku]
            .held
            .fetch_add(i64::from(units), Ordering::Relaxed);
    }

    /// A hold ended without a deduction (released, payment failed).
    pub fn unheld(&self, sku: usize, units: u32) {
        self.skus[sku]
            .held
            .fetch_sub(i64::from(units), Ordering::Relaxed);
    }

    /// A hold became a sale.
    pub fn committed(&self, sku: usize, units: u32) {
        self.unheld(sku, units);
        self.deducted(sku, units);
    }

    /// A sale without a hold (the peers' decrement and place_order).
    pub fn deducted(&self, sku: usize, units: u32) {
        self.skus[sku]
            .deducted
            .fetch_add(u64::from(units), Ordering::Relaxed);
    }

    pub fn restocked(&self, sku: usize, units: u32) {
        self.skus[sku]
            .restocked
            .fetch_add(u64::from(units), Ordering::Relaxed);
    }

    pub fn uncertain(&self, sku: usize, units: u32) {
        self.skus[sku]
            .uncertain
            .fetch_add(u64::from(units), Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.skus.len()
    }

    pub fn is_empty(&self) -> bool {
        self.skus.is_empty()
    }

    /// Compares with what the target holds: `read[i]` is SKU `i`'s (on_hand, reserved), `None`
    /// if the target did not return it.
    pub fn check(&self, read: &[Option<Level>]) -> Check {
        let mut check = Check {
            skus_checked: self.skus.len(),
            ..Check::default()
        };
        for (i, sku) in self.skus.iter().enumerate() {
            let held = sku.held.load(Ordering::Relaxed).max(0) as u64;
            let deducted = sku.deducted.load(Ordering::Relaxed);
            let restocked = sku.restocked.load(Ordering::Relaxed);
            let uncertain = sku.uncertain.load(Ordering::Relaxed);
            check.uncertain_units += uncertain;
            let supply = u64::from(self.initial) + restocked;
            // Acknowledged sales and live holds beyond the supply: the target sold what it did
            // not have.
            let told_over = (deducted + held).saturating_sub(supply);
            let expected_on_hand = supply as i64 - deducted as i64;
            let Some(Some(level)) = read.get(i) else {
                check.missing_skus += 1;
                check.oversold_units += told_over;
                check.note(Mismatch::new(i, None, expected_on_hand, held, uncertain));
                continue;
            };
            let over_reserved = u64::from(level.reserved.saturating_sub(level.on_hand));
            check.oversold_units += told_over.max(over_reserved);
            let on_hand_off = (i64::from(level.on_hand) - expected_on_hand).unsigned_abs();
            let reserved_off = (i64::from(level.reserved) - held as i64).unsigned_abs();
            if on_hand_off > uncertain || reserved_off > uncertain || told_over > 0 {
                check.note(Mismatch::new(
                    i,
                    Some(*level),
                    expected_on_hand,
                    held,
                    uncertain,
                ));
            }
            check.units_deducted += deducted;
            check.units_held += held;
            check.units_restocked += restocked;
        }
        check.passed = check.oversold_units == 0 && check.mismatched_skus == 0;
        check
    }
}

/// A SKU's figures as the target reports them (peers without holds report reserved 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Level {
    pub on_hand: u32,
    pub reserved: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Mismatch {
    /// Index of the SKU in the run (its name is `<run_id>-s<index>`).
    pub sku_index: usize,
    /// None: the target did not return the SKU.
    pub found: Option<Level>,
    pub expected_on_hand: i64,
    pub expected_reserved: u64,
    pub uncertain_units: u64,
}

impl Mismatch {
    fn new(i: usize, found: Option<Level>, on_hand: i64, held: u64, uncertain: u64) -> Mismatch {
        Mismatch {
            sku_index: i,
            found,
            expected_on_hand: on_hand,
            expected_reserved: held,
            uncertain_units: uncertain,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Check {
    pub passed: bool,
    pub skus_checked: usize,
    pub missing_skus: usize,
    pub mismatched_skus: usize,
    pub oversold_units: u64,
    /// Acknowledged sales and live holds across the run's SKUs.
    pub units_deducted: u64,
    pub units_held: u64,
    /// Acknowledged restocks (approved returns).
    pub units_restocked: u64,
    /// Units of failures with unknown outcomes, allowed for.
    pub uncertain_units: u64,
    /// The first mismatches (at most `MISMATCHES_SHOWN`).
    pub mismatches: Vec<Mismatch>,
}

/// Mismatches listed in a check (all are counted).
pub const MISMATCHES_SHOWN: usize = 20;

impl Check {
    fn note(&mut self, m: Mismatch) {
        self.mismatched_skus += 1;
        if self.mismatches.len() < MISMATCHES_SHOWN {
            self.mismatches.push(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(on_hand: u32, reserved: u32) -> Option<Level> {
        Some(Level { on_hand, reserved })
    }

    #[test]
    fn exact_figures_pass() {
        let e = Expected::new(2, 10);
        e.held(0, 3);
        e.committed(0, 2);
        e.deducted(1, 4);
        e.restocked(1, 1);
        let c = e.check(&[level(8, 1), level(7, 0)]);
        assert!(c.passed, "{c:?}");
        assert_eq!(c.units_deducted, 6);
    }

    #[test]
    fn a_lost_commit_fails() {
        let e = Expected::new(1, 10);
        e.deducted(0, 4);
        let c = e.check(&[level(7, 0)]);
        assert!(!c.passed);
        assert_eq!(c.mismatched_skus, 1);
    }

    #[test]
    fn selling_beyond_stock_is_oversold() {
        let e = Expected::new(1, 2);
        e.deducted(0, 3);
        let c = e.check(&[level(0, 0)]);
        assert!(!c.passed);
        assert_eq!(c.oversold_units, 1);
    }

    #[test]
    fn uncertain_units_are_allowed_for_and_missing_skus_fail() {
        let e = Expected::new(2, 10);
        e.uncertain(0, 1);
        assert!(e.check(&[level(9, 0), level(10, 0)]).passed);
        let c = e.check(&[level(10, 0), None]);
        assert!(!c.passed);
        assert_eq!(c.missing_skus, 1);
    }
}
