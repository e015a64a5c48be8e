//! The order domain's values: customers, orders (with their totals), returns — what the engine
//! hands out and what [`crate::Event`]s carry. An order wraps a reservation held in the orders'
//! own id space ([`hold_id`]); see `docs/ARCHITECTURE.md`, "Orders".

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::model::Line;

/// The reservation id of an order's hold. NUL-prefixed: client ids may not contain control
/// characters, so no Inventory call can name (and commit or release) an order's hold. The
/// router ignores the prefix, so the hold lives in the same shard as its order.
pub fn hold_id(order_id: &str) -> String {
    format!("\0{order_id}")
}

/// The order whose hold `reservation_id` is, if it is one.
pub fn order_of_hold(reservation_id: &str) -> Option<&str> {
    reservation_id.strip_prefix('\0')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    Pending,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Returned,
}

impl OrderStatus {
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Paid => "PAID",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Returned => "RETURNED",
        }
    }

    /// Open orders hold stock or are on their way; the others are closed (kept for the order
    /// retention window, then forgotten — the analytical store keeps their history).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::Pending | OrderStatus::Paid | OrderStatus::Shipped
        )
    }
}

/// One line of an order, priced from the catalogue at order time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_cents: i64,
}

/// The pricing rules in force when an order was created. Every order's record carries the
/// values it used, so replay and reports never depend on today's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    /// Discount on a line with at least `bulk_discount_units_min` units, in basis points.
    pub bulk_discount_bps: u32,
    pub bulk_discount_units_min: u32,
    /// Tax on (subtotal − discount), in basis points.
    pub tax_bps: u32,
    pub shipping_cents: i64,
    /// Shipping is free when subtotal − discount reaches this.
    pub free_shipping_min_cents: i64,
}

impl Default for Pricing {
    /// DESIGN.md's defaults: 5 % off a line of ≥ 10 units, no tax, 4.99 shipping, free from 50.00.
    fn default() -> Self {
        Self {
            bulk_discount_bps: 500,
            bulk_discount_units_min: 10,
            tax_bps: 0,
            shipping_cents: 499,
            free_shipping_min_cents: 5000,
        }
    }
}

/// An order's money figures, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    pub subtotal_cents: i64,
    pub discount_cents: i64,
    pub tax_cents: i64,
    pub shipping_cents: i64,
    pub total_cents: i64,
}

/// `value × bps / 10 000`, rounded half up (values are never negative here).
fn basis_points(value: i128, bps: u32) -> i128 {
    (value * i128::from(bps) + 5_000) / 10_000
}

impl Pricing {
    /// Totals of `lines`, or `None` if they exceed [`crate::limits::ORDER_TOTAL_CENTS_MAX`].
    pub fn totals(&self, lines: &[OrderLine]) -> Option<Totals> {
        let mut subtotal: i128 = 0;
        let mut discount: i128 = 0;
        for line in lines {
            let amount = i128::from(line.quantity) * i128::from(line.unit_price_cents);
            subtotal += amount;
            if line.quantity >= self.bulk_discount_units_min {
                discount += basis_points(amount, self.bulk_discount_bps);
            }
        }
        let taxable = subtotal - discount;
        let tax = basis_points(taxable, self.tax_bps);
        let shipping = if taxable >= i128::from(self.free_shipping_min_cents) {
            0
        } else {
            i128::from(self.shipping_cents)
        };
        let total = taxable + tax + shipping;
        if total > i128::from(crate::limits::ORDER_TOTAL_CENTS_MAX) {
            return None;
        }
        // Every part is at most the total, so each fits.
        Some(Totals {
            subtotal_cents: subtotal as i64,
            discount_cents: discount as i64,
            tax_cents: tax as i64,
            shipping_cents: shipping as i64,
            total_cents: total as i64,
        })
    }
}

/// Spend thresholds of the customer tiers (Bronze below `silver_cents`, Gold from `gold_cents`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiers {
    pub silver_cents: i64,
    pub gold_cents: i64,
}

impl Default for Tiers {
    fn default() -> Self {
        Self {
            silver_cents: 50_000,
            gold_cents: 200_000,
        }
    }
}

impl Tiers {
    pub fn of(&self, spend_cents: i64) -> &'static str {
        if spend_cents >= self.gold_cents {
            "Gold"
        } else if spend_cents >= self.silver_cents {
            "Silver"
        } else {
            "Bronze"
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub customer_id: String,
    pub name: String,
    pub email: String,
    /// E.164, or empty.
    pub phone: String,
    pub address: String,
    pub notify_email: bool,
    pub notify_sms: bool,
    /// Paid totals minus refunds (cancelled paid orders, approved returns).
    pub lifetime_spend_cents: i64,
    /// Orders created.
    pub order_count: u32,
    /// "Bronze" / "Silver" / "Gold", by spend (filled in by the engine when read).
    pub tier: String,
    pub created_at_ms: u64,
}

/// An order as clients see it. Times are ms since the epoch; 0 = not yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub customer_id: String,
    pub status: OrderStatus,
    /// Sorted by SKU, each SKU once.
    pub lines: Vec<OrderLine>,
    pub totals: Totals,
    pub shipping_address: String,
    pub created_at_ms: u64,
    pub payment_deadline_ms: u64,
    pub paid_at_ms: u64,
    pub shipped_at_ms: u64,
    pub delivered_at_ms: u64,
    pub cancelled_at_ms: u64,
    pub cancel_reason: String,
    pub carrier: String,
    pub tracking_number: String,
    pub payment_id: String,
    pub refund_due_cents: i64,
    pub refunded_cents: i64,
    /// The payment timeout the order was created with (for idempotent retries).
    pub payment_timeout_seconds: u32,
}

impl Order {
    /// The order as created by `event` (an [`Event::OrderCreated`]) at `at_ms`.
    pub fn created(event: &Event, at_ms: u64) -> Option<Order> {
        let Event::OrderCreated {
            order_id,
            customer_id,
            lines,
            shipping_address,
            totals,
            payment_timeout_seconds,
            payment_deadline_ms,
            ..
        } = event
        else {
            return None;
        };
        Some(Order {
            order_id: order_id.clone(),
            customer_id: customer_id.clone(),
            status: OrderStatus::Pending,
            lines: lines.clone(),
            totals: *totals,
            shipping_address: shipping_address.clone(),
            created_at_ms: at_ms,
            payment_deadline_ms: *payment_deadline_ms,
            paid_at_ms: 0,
            shipped_at_ms: 0,
            delivered_at_ms: 0,
            cancelled_at_ms: 0,
            cancel_reason: String::new(),
            carrier: String::new(),
            tracking_number: String::new(),
            payment_id: String::new(),
            refund_due_cents: 0,
            refunded_cents: 0,
            payment_timeout_seconds: *payment_timeout_seconds,
        })
    }

    /// Folds one event of a record written at `at_ms` into the order; returns whether it was
    /// about this order. The engine applies order events through this (after checking their
    /// preconditions) and `WatchOrder` replays the change feed through it, so both see the same
    /// states.
    pub fn fold(&mut self, event: &Event, at_ms: u64) -> bool {
        if event.order_id() != Some(self.order_id.as_str()) {
            return false;
        }
        match event {
            Event::OrderPaid { payment_id, .. } => {
                self.status = OrderStatus::Paid;
                self.paid_at_ms = at_ms;
                self.payment_id = payment_id.clone();
            }
            Event::OrderShipped {
                carrier,
                tracking_number,
                ..
            } => {
                self.status = OrderStatus::Shipped;
                self.shipped_at_ms = at_ms;
                self.carrier = carrier.clone();
                self.tracking_number = tracking_number.clone();
            }
            Event::OrderDelivered { .. } => {
                self.status = OrderStatus::Delivered;
                self.delivered_at_ms = at_ms;
            }
            Event::OrderCancelled {
                reason,
                refund_due_cents,
                ..
            } => {
                self.status = OrderStatus::Cancelled;
                self.cancelled_at_ms = at_ms;
                self.cancel_reason = reason.clone();
                self.refund_due_cents = *refund_due_cents;
            }
            Event::ReturnApproved { refund_cents, .. } => {
                self.refunded_cents += refund_cents;
            }
            Event::OrderReturned { .. } => {
                self.status = OrderStatus::Returned;
            }
            // Creation is `Order::created`; payments and return requests change no figure
            // of the order a client sees.
            _ => return false,
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReturnStatus {
    Requested,
    Approved,
    Rejected,
}

impl ReturnStatus {
    pub fn name(self) -> &'static str {
        match self {
            ReturnStatus::Requested => "REQUESTED",
            ReturnStatus::Approved => "APPROVED",
            ReturnStatus::Rejected => "REJECTED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Return {
    pub return_id: String,
    pub order_id: String,
    pub status: ReturnStatus,
    /// Sorted by SKU, each SKU once.
    pub lines: Vec<Line>,
    pub reason: String,
    pub refund_cents: i64,
    pub restock: bool,
    pub decision_reason: String,
    pub requested_at_ms: u64,
    /// When it was approved or rejected; 0 = not yet.
    pub decided_at_ms: u64,
}

/// The order-related policy in force (from the configuration). What a decision used is written
/// into its record, so none of this is consulted by replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderPolicy {
    pub pricing: Pricing,
    pub payment_timeout_default_seconds: u32,
    pub tiers: Tiers,
    /// Closed orders (CANCELLED, DELIVERED, RETURNED) are remembered this long after they
    /// closed, and at most `retention_count` of them, whichever bound is reached first.
    /// A DELIVERED order can be returned until it is forgotten.
    pub retention_seconds: u64,
    pub retention_count: u64,
}

impl Default for OrderPolicy {
    fn default() -> Self {
        Self {
            pricing: Pricing::default(),
            payment_timeout_default_seconds: crate::limits::TTL_SECONDS_DEFAULT,
            tiers: Tiers::default(),
            retention_seconds: crate::limits::ORDER_RETENTION_SECONDS_DEFAULT,
            retention_count: crate::limits::ORDER_RETENTION_COUNT_DEFAULT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: u32, unit_price_cents: i64) -> OrderLine {
        OrderLine {
            sku: sku.into(),
            quantity,
            unit_price_cents,
        }
    }

    #[test]
    fn totals_at_the_boundaries() {
        let p = Pricing::default();
        // 9 units: no discount; 4,995 < 5,000: shipping charged.
        let t = p.totals(&[line("A", 9, 555)]).unwrap();
        assert_eq!((t.subtotal_cents, t.discount_cents), (4995, 0));
        assert_eq!((t.shipping_cents, t.total_cents), (499, 5494));
        // Exactly 5,000 after discount: shipping free.
        let t = p.totals(&[line("A", 1, 5000)]).unwrap();
        assert_eq!((t.shipping_cents, t.total_cents), (0, 5000));
        // 10 units: 5 % of 10 × 333 = 166.5 → 167 (half up); 3,330 − 167 = 3,163 + 499.
        let t = p.totals(&[line("A", 10, 333)]).unwrap();
        assert_eq!((t.discount_cents, t.total_cents), (167, 3662));
        // Discount is per line, and free shipping counts after the discount.
        let t = p.totals(&[line("A", 10, 500), line("B", 1, 260)]).unwrap();
        assert_eq!((t.subtotal_cents, t.discount_cents), (5260, 250));
        assert_eq!((t.shipping_cents, t.total_cents), (0, 5010));
        let t = p.totals(&[line("A", 10, 500), line("B", 1, 249)]).unwrap();
        assert_eq!((t.shipping_cents, t.total_cents), (499, 4999 + 499));
        // Tax on subtotal − discount, half up: 8.25 % of 1,001 = 82.5825 → 83.
        let taxed = Pricing { tax_bps: 825, ..p };
        let t = taxed.totals(&[line("A", 1, 1001)]).unwrap();
        assert_eq!((t.tax_cents, t.total_cents), (83, 1001 + 83 + 499));
        // Beyond the maximum: refused.
        assert!(
            p.totals(&[line("A", 1_000_000_000, 1_000_000_000)])
                .is_none()
        );
    }

    #[test]
    fn tiers_by_spend() {
        let t = Tiers::default();
        assert_eq!(t.of(0), "Bronze");
        assert_eq!(t.of(49_999), "Bronze");
        assert_eq!(t.of(50_000), "Silver");
        assert_eq!(t.of(200_000), "Gold");
    }
}
