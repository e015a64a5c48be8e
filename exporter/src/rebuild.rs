//! A brand-new (or dropped) store is rebuilt from [`engine::SnapshotData`]: one row per entity
//! as of the fuzzy cut, stamped with each entity's own stamp, so the WAL replayed from
//! `lsn_start + 1` changes exactly the rows that are older than each event. History (stock
//! movements, failed payments) from before the cut is not recovered: the store's history starts
//! at the rebuild.

use engine::SnapshotData;

use crate::book::{Figures, StockBook};
use crate::change::Change;
use crate::schema::{ALERTS, CUSTOMERS, PAYMENTS, PRODUCTS, PURCHASE_ORDERS, RETURNS, SHIPMENTS};
use crate::translate::order_rows;
use crate::value::Value;

/// The rows of a snapshot, and the stock mirror it implies (its `stock_levels` rows come from
/// the book's [`StockBook::drain_changes`]).
pub fn snapshot_changes(snap: &SnapshotData) -> (Vec<Change>, StockBook) {
    let mut out = Vec::new();
    let mut book = StockBook::default();
    for s in &snap.skus {
        out.push(Change::Upsert {
            table: &PRODUCTS,
            row: vec![
                Value::text(&s.sku),
                Value::text(&s.name),
                Value::Int(s.unit_price_cents),
                Value::int(s.reorder_level),
                Value::int(s.reorder_quantity),
                Value::ts(snap.taken_at_ms),
                Value::int(s.stamp),
            ],
        });
        // Stamp 0 first so the change applies, then the SKU's own stamp.
        book.change(&s.sku, s.stamp.max(1), snap.taken_at_ms, |f| {
            *f = Figures {
                on_hand: s.on_hand as i64,
                reserved: s.reserved as i64,
                reorder_level: i64::from(s.reorder_level),
                stamp: 0,
                updated_at_ms: 0,
            }
        });
    }
    book.drain_changes(&mut out);
    for c in &snap.customers {
        let v = &c.value;
        out.push(Change::Upsert {
            table: &CUSTOMERS,
            row: vec![
                Value::text(&v.customer_id),
                Value::text(&v.name),
                Value::text(&v.email),
                Value::text(&v.phone),
                Value::text(&v.address),
                Value::Bool(v.notify_email),
                Value::Bool(v.notify_sms),
                Value::ts(v.created_at_ms),
                Value::ts(snap.taken_at_ms),
                Value::int(c.stamp),
            ],
        });
    }
    for o in &snap.orders {
        let order = &o.order;
        order_rows(&mut book, order, o.stamp, &mut out);
        if !order.payment_id.is_empty() {
            out.push(Change::Append {
                table: &PAYMENTS,
                row: vec![
                    Value::text(&order.payment_id),
                    Value::text(&order.order_id),
                    Value::Int(order.totals.total_cents),
                    Value::Bool(true),
                    Value::text(""),
                    Value::ts(order.paid_at_ms),
                    Value::Int(0),
                ],
            });
        }
        if order.shipped_at_ms > 0 {
            out.push(Change::Upsert {
                table: &SHIPMENTS,
                row: vec![
                    Value::text(&order.order_id),
                    Value::text(&order.carrier),
                    Value::text(&order.tracking_number),
                    Value::ts(order.shipped_at_ms),
                    Value::ts(order.delivered_at_ms),
                    Value::int(o.stamp),
                ],
            });
        }
    }
    for r in &snap.returns {
        let v = &r.value;
        out.push(Change::Upsert {
            table: &RETURNS,
            row: vec![
                Value::text(&v.return_id),
                Value::text(&v.order_id),
                Value::text(v.status.name()),
                Value::int(v.lines.iter().map(|l| u64::from(l.quantity)).sum::<u64>()),
                Value::text(&v.reason),
                Value::Int(v.refund_cents),
                Value::Bool(v.restock),
                Value::text(&v.decision_reason),
                Value::ts(v.requested_at_ms),
                Value::ts(v.decided_at_ms),
                Value::int(r.stamp),
            ],
        });
    }
    for a in &snap.alerts {
        let v = &a.value;
        out.push(Change::Upsert {
            table: &ALERTS,
            row: vec![
                Value::text(&v.alert_id),
                Value::text(&v.sku),
                Value::text(v.kind.name()),
                Value::int(v.available),
                Value::int(v.reorder_level),
                Value::int(v.suggested_quantity),
                Value::ts(v.opened_at_ms),
                Value::opt_ts(v.resolved_at_ms),
                Value::int(a.stamp),
            ],
        });
    }
    for p in &snap.purchase_orders {
        let v = &p.value;
        out.push(Change::Upsert {
            table: &PURCHASE_ORDERS,
            row: vec![
                Value::text(&v.purchase_order_id),
                Value::text(&v.sku),
                Value::int(v.quantity),
                Value::text(v.status.name()),
                Value::text(&v.alert_id),
                Value::ts(v.created_at_ms),
                Value::ts(v.updated_at_ms),
                Value::int(p.stamp),
            ],
        });
    }
    (out, book)
}
