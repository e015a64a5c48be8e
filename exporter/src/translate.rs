//! Events → row changes. One function per kind of entity; every change carries the event's
//! stamp so the store applies it only to rows older than the event (exact replay over a fuzzy
//! snapshot, see [`crate::schema`]).

use engine::model::Line;
use engine::{Event, Record};

use crate::book::{Moved, OpenLine, StockBook};
use crate::change::{Change, Set, stamp};
use crate::schema::{
    ALERTS, CUSTOMERS, ORDER_LINES, ORDERS, PAYMENTS, PRODUCTS, PURCHASE_ORDERS, RETURNS, SALES,
    SHIPMENTS, STOCK_MOVEMENTS, Table,
};
use crate::value::Value;

/// Where an event sits.
#[derive(Debug, Clone, Copy)]
struct At {
    lsn: u64,
    index: usize,
    ms: u64,
    stamp: u64,
}

/// Appends the changes of one WAL record to `out` (stock figures go through `book`; call
/// [`StockBook::drain_changes`] once per batch for their `stock_levels` rows).
pub fn record(book: &mut StockBook, lsn: u64, rec: &Record, out: &mut Vec<Change>) {
    for (index, event) in rec.events.iter().enumerate() {
        let at = At {
            lsn,
            index,
            ms: rec.at_ms,
            stamp: stamp(lsn, index),
        };
        self::event(book, at, event, out);
    }
}

fn update(table: &'static Table, key: &str, at: At, set: Vec<(&'static str, Set)>) -> Change {
    Change::Update {
        table,
        key: vec![Value::text(key)],
        stamp: at.stamp,
        set,
    }
}

fn to(v: Value) -> Set {
    Set::To(v)
}

fn status(s: &str) -> (&'static str, Set) {
    ("status", to(Value::text(s)))
}

fn event(book: &mut StockBook, at: At, event: &Event, out: &mut Vec<Change>) {
    let stamp = Value::int(at.stamp);
    let now = Value::ts(at.ms);
    match event {
        Event::ProductUpserted {
            sku,
            name,
            unit_price_cents,
            reorder_level,
            reorder_quantity,
        } => {
            out.push(Change::Upsert {
                table: &PRODUCTS,
                row: vec![
                    Value::text(sku),
                    Value::text(name),
                    Value::Int(*unit_price_cents),
                    Value::int(*reorder_level),
                    Value::int(*reorder_quantity),
                    now,
                    stamp,
                ],
            });
            book.change(sku, at.stamp, at.ms, |f| {
                f.reorder_level = i64::from(*reorder_level)
            });
        }
        Event::StockReceived {
            receipt_id,
            sku,
            quantity,
            on_hand_after,
            ..
        } => {
            let moved = book.change(sku, at.stamp, at.ms, |f| f.on_hand = *on_hand_after as i64);
            movement(at, sku, "receive", *quantity, moved, receipt_id, "", out);
        }
        Event::StockAdjusted {
            adjustment_id,
            sku,
            on_hand_before,
            on_hand_after,
            reason,
            ..
        } => {
            let moved = book.change(sku, at.stamp, at.ms, |f| f.on_hand = *on_hand_after as i64);
            let units = on_hand_after.abs_diff(*on_hand_before);
            let units = u32::try_from(units).unwrap_or(u32::MAX);
            movement(at, sku, "adjust", units, moved, adjustment_id, reason, out);
        }
        Event::InventoryReserved {
            reservation_id,
            lines,
            ..
        } => lines_moved(book, at, lines, "reserve", reservation_id, out, |f, q| {
            f.reserved += q
        }),
        Event::ReservationCommitted {
            reservation_id,
            committed,
            released,
        } => {
            // A SKU is changed once per event (the stamp rule), so the released rest of a
            // partly committed SKU is folded into its commit row (reserved_after shows it).
            for line in committed {
                let q = i64::from(line.quantity);
                let rest: i64 = released
                    .iter()
                    .filter(|r| r.sku == line.sku)
                    .map(|r| i64::from(r.quantity))
                    .sum();
                let moved = book.change(&line.sku, at.stamp, at.ms, |f| {
                    f.on_hand -= q;
                    f.reserved -= q + rest;
                });
                movement(
                    at,
                    &line.sku,
                    "commit",
                    line.quantity,
                    moved,
                    reservation_id,
                    "",
                    out,
                );
            }
            let only_released: Vec<Line> = released
                .iter()
                .filter(|r| !committed.iter().any(|c| c.sku == r.sku))
                .cloned()
                .collect();
            lines_moved(
                book,
                at,
                &only_released,
                "release",
                reservation_id,
                out,
                |f, q| f.reserved -= q,
            );
        }
        Event::ReservationReleased {
            reservation_id,
            lines,
        } => lines_moved(book, at, lines, "release", reservation_id, out, |f, q| {
            f.reserved -= q
        }),
        Event::ReservationExpired {
            reservation_id,
            lines,
        } => lines_moved(book, at, lines, "expire", reservation_id, out, |f, q| {
            f.reserved -= q
        }),
        Event::CustomerUpserted {
            customer_id,
            name,
            email,
            phone,
            address,
            notify_email,
            notify_sms,
        } => out.push(Change::Upsert {
            table: &CUSTOMERS,
            row: vec![
                Value::text(customer_id),
                Value::text(name),
                Value::text(email),
                Value::text(phone),
                Value::text(address),
                Value::Bool(*notify_email),
                Value::Bool(*notify_sms),
                now.clone(),
                now,
                stamp,
            ],
        }),
        Event::OrderCreated { .. } => {
            if let Some(order) = engine::Order::created(event, at.ms) {
                order_rows(book, &order, at.stamp, out);
            }
        }
        Event::PaymentProcessed {
            order_id,
            payment_id,
            amount_cents,
            succeeded,
            reason,
        } => out.push(Change::Append {
            table: &PAYMENTS,
            row: vec![
                Value::text(payment_id),
                Value::text(order_id),
                Value::Int(*amount_cents),
                Value::Bool(*succeeded),
                Value::text(reason),
                now,
                Value::int(at.lsn),
            ],
        }),
        Event::OrderPaid {
            order_id,
            payment_id,
            ..
        } => out.push(update(
            &ORDERS,
            order_id,
            at,
            vec![
                status("PAID"),
                ("paid_at", to(now)),
                ("payment_id", to(Value::text(payment_id))),
            ],
        )),
        Event::OrderShipped {
            order_id,
            carrier,
            tracking_number,
        } => {
            out.push(update(
                &ORDERS,
                order_id,
                at,
                vec![status("SHIPPED"), ("shipped_at", to(now.clone()))],
            ));
            out.push(Change::Upsert {
                table: &SHIPMENTS,
                row: vec![
                    Value::text(order_id),
                    Value::text(carrier),
                    Value::text(tracking_number),
                    now,
                    Value::Null,
                    stamp,
                ],
            });
        }
        Event::OrderDelivered { order_id } => {
            if let Some(lines) = book.close_order(order_id) {
                sales_rows(order_id, &lines, at.ms, out);
            }
            out.push(update(
                &ORDERS,
                order_id,
                at,
                vec![status("DELIVERED"), ("delivered_at", to(now.clone()))],
            ));
            out.push(update(
                &SHIPMENTS,
                order_id,
                at,
                vec![("delivered_at", to(now))],
            ));
        }
        Event::OrderCancelled {
            order_id,
            reason,
            refund_due_cents,
            restocked,
            ..
        } => {
            book.close_order(order_id);
            out.push(update(
                &ORDERS,
                order_id,
                at,
                vec![
                    status("CANCELLED"),
                    ("cancelled_at", to(now)),
                    ("cancel_reason", to(Value::text(reason))),
                    ("refund_due_cents", to(Value::Int(*refund_due_cents))),
                ],
            ));
            lines_moved(
                book,
                at,
                restocked,
                "restock_cancel",
                order_id,
                out,
                |f, q| f.on_hand += q,
            );
        }
        Event::ReturnRequested {
            return_id,
            order_id,
            lines,
            reason,
        } => out.push(Change::Upsert {
            table: &RETURNS,
            row: vec![
                Value::text(return_id),
                Value::text(order_id),
                Value::text("REQUESTED"),
                Value::int(lines.iter().map(|l| u64::from(l.quantity)).sum::<u64>()),
                Value::text(reason),
                Value::Int(0),
                Value::Bool(false),
                Value::text(""),
                now,
                Value::Null,
                stamp,
            ],
        }),
        Event::ReturnApproved {
            return_id,
            order_id,
            refund_cents,
            restocked,
            ..
        } => {
            out.push(update(
                &RETURNS,
                return_id,
                at,
                vec![
                    status("APPROVED"),
                    ("refund_cents", to(Value::Int(*refund_cents))),
                    ("restock", to(Value::Bool(!restocked.is_empty()))),
                    ("decided_at", to(now)),
                ],
            ));
            out.push(update(
                &ORDERS,
                order_id,
                at,
                vec![("refunded_cents", Set::Add(*refund_cents))],
            ));
            lines_moved(
                book,
                at,
                restocked,
                "restock_return",
                return_id,
                out,
                |f, q| f.on_hand += q,
            );
        }
        Event::ReturnRejected {
            return_id, reason, ..
        } => out.push(update(
            &RETURNS,
            return_id,
            at,
            vec![
                status("REJECTED"),
                ("decision_reason", to(Value::text(reason))),
                ("decided_at", to(now)),
            ],
        )),
        Event::OrderReturned { order_id } => {
            out.push(update(&ORDERS, order_id, at, vec![status("RETURNED")]))
        }
        Event::InventoryLevelLow {
            alert_id,
            sku,
            kind,
            available,
            reorder_level,
            suggested_quantity,
        } => out.push(Change::Upsert {
            table: &ALERTS,
            row: vec![
                Value::text(alert_id),
                Value::text(sku),
                Value::text(kind.name()),
                Value::int(*available),
                Value::int(*reorder_level),
                Value::int(*suggested_quantity),
                now,
                Value::Null,
                stamp,
            ],
        }),
        Event::InventoryRestored { alert_id, .. } => out.push(update(
            &ALERTS,
            alert_id,
            at,
            vec![("resolved_at", to(now))],
        )),
        Event::PurchaseOrderSuggested {
            purchase_order_id,
            sku,
            quantity,
            alert_id,
        } => out.push(Change::Upsert {
            table: &PURCHASE_ORDERS,
            row: vec![
                Value::text(purchase_order_id),
                Value::text(sku),
                Value::int(*quantity),
                Value::text("SUGGESTED"),
                Value::text(alert_id),
                now.clone(),
                now,
                stamp,
            ],
        }),
        Event::PurchaseOrderUpdated {
            purchase_order_id,
            status: s,
            ..
        } => out.push(update(
            &PURCHASE_ORDERS,
            purchase_order_id,
            at,
            vec![status(s.name()), ("updated_at", to(now))],
        )),
    }
}

/// An order's row (current state) and its lines: from `OrderCreated`, or from a snapshot.
/// An order's `orders` and `order_lines` rows, and its `sales` rows if it is delivered (else,
/// unless cancelled, its lines go into the book for the delivery to come).
pub fn order_rows(book: &mut StockBook, order: &engine::Order, stamp: u64, out: &mut Vec<Change>) {
    let t = &order.totals;
    out.push(Change::Upsert {
        table: &ORDERS,
        row: vec![
            Value::text(&order.order_id),
            Value::text(&order.customer_id),
            Value::text(order.status.name()),
            Value::ts(order.created_at_ms),
            Value::ts(order.paid_at_ms),
            Value::ts(order.shipped_at_ms),
            Value::ts(order.delivered_at_ms),
            Value::ts(order.cancelled_at_ms),
            Value::Int(t.subtotal_cents),
            Value::Int(t.discount_cents),
            Value::Int(t.tax_cents),
            Value::Int(t.shipping_cents),
            Value::Int(t.total_cents),
            Value::text(&order.shipping_address),
            Value::ts(order.payment_deadline_ms),
            Value::text(&order.payment_id),
            Value::text(&order.cancel_reason),
            Value::Int(order.refund_due_cents),
            Value::Int(order.refunded_cents),
            Value::int(stamp),
        ],
    });
    for line in &order.lines {
        out.push(Change::Append {
            table: &ORDER_LINES,
            row: vec![
                Value::text(&order.order_id),
                Value::text(&line.sku),
                Value::int(line.quantity),
                Value::Int(line.unit_price_cents),
            ],
        });
    }
    let lines: Vec<OpenLine> = order
        .lines
        .iter()
        .map(|l| (l.sku.clone(), l.quantity, l.unit_price_cents))
        .collect();
    if order.delivered_at_ms > 0 {
        sales_rows(&order.order_id, &lines, order.delivered_at_ms, out);
    } else if order.cancelled_at_ms == 0 {
        book.open_order(&order.order_id, lines);
    }
}

/// The `sales` rows of an order delivered at `delivered_ms`.
fn sales_rows(order_id: &str, lines: &[OpenLine], delivered_ms: u64, out: &mut Vec<Change>) {
    let month_ms = crate::value::month_start_ms(delivered_ms);
    for (sku, quantity, unit_price_cents) in lines {
        out.push(Change::Append {
            table: &SALES,
            row: vec![
                Value::text(order_id),
                Value::text(sku),
                Value::int(*quantity),
                Value::Int(*unit_price_cents),
                Value::ts(delivered_ms),
                Value::ts(month_ms),
            ],
        });
    }
}

/// The same change to each line's SKU, with one movement row each.
fn lines_moved(
    book: &mut StockBook,
    at: At,
    lines: &[Line],
    kind: &str,
    reference: &str,
    out: &mut Vec<Change>,
    f: impl Fn(&mut crate::book::Figures, i64),
) {
    for line in lines {
        let q = i64::from(line.quantity);
        let moved = book.change(&line.sku, at.stamp, at.ms, |fig| f(fig, q));
        movement(
            at,
            &line.sku,
            kind,
            line.quantity,
            moved,
            reference,
            "",
            out,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn movement(
    at: At,
    sku: &str,
    kind: &str,
    quantity: u32,
    moved: Option<Moved>,
    reference: &str,
    reason: &str,
    out: &mut Vec<Change>,
) {
    // None: the store was rebuilt from a snapshot that already reflects this change, and the
    // history before a rebuild is not in the store.
    let Some(Moved { before, after }) = moved else {
        return;
    };
    out.push(Change::Append {
        table: &STOCK_MOVEMENTS,
        row: vec![
            Value::int(at.lsn),
            Value::int(at.index),
            Value::ts(at.ms),
            Value::text(sku),
            Value::text(kind),
            Value::int(quantity),
            Value::Int(before.on_hand),
            Value::Int(after.on_hand),
            Value::Int(before.reserved),
            Value::Int(after.reserved),
            Value::text(reference),
            Value::text(reason),
        ],
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Figures;

    fn movements(out: &[Change]) -> Vec<(String, String, i64, i64, String)> {
        out.iter()
            .filter_map(|c| match c {
                Change::Append { table, row } if table.name == STOCK_MOVEMENTS.name => {
                    let text = |i: usize| match &row[i] {
                        Value::Text(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    let int = |i: usize| match row[i] {
                        Value::Int(v) => v,
                        _ => -1,
                    };
                    Some((text(3), text(4), int(8), int(9), text(10)))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_partial_commit_folds_its_released_rest_and_holds_name_their_order() {
        let mut book = StockBook::from_rows([
            (
                "A".to_string(),
                Figures {
                    on_hand: 10,
                    ..Figures::default()
                },
            ),
            (
                "B".to_string(),
                Figures {
                    on_hand: 10,
                    ..Figures::default()
                },
            ),
        ]);
        let hold = engine::orders::hold_id("o1");
        let rec = Record {
            at_ms: 1_000,
            events: vec![Event::InventoryReserved {
                reservation_id: hold.clone(),
                lines: vec![Line::new("A", 5), Line::new("B", 3)].into(),
                ttl_seconds: 60,
                created_at_ms: 1_000,
                expires_at_ms: 61_000,
            }],
        };
        let mut out = Vec::new();
        record(&mut book, 7, &rec, &mut out);
        let rec = Record {
            at_ms: 2_000,
            events: vec![Event::ReservationCommitted {
                reservation_id: hold,
                committed: vec![Line::new("A", 2)],
                released: vec![Line::new("A", 3), Line::new("B", 3)],
            }],
        };
        record(&mut book, 8, &rec, &mut out);
        let m = movements(&out);
        assert_eq!(m[0], ("A".into(), "reserve".into(), 0, 5, "o1".into()));
        assert_eq!(m[2], ("A".into(), "commit".into(), 5, 0, "o1".into()));
        assert_eq!(m[3], ("B".into(), "release".into(), 3, 0, "o1".into()));
        assert_eq!(book.get("A").map(|f| (f.on_hand, f.reserved)), Some((8, 0)));
        assert_eq!(
            book.get("B").map(|f| (f.on_hand, f.reserved)),
            Some((10, 0))
        );
        // Replaying a record the SKUs already reflect changes nothing (the stamp rule).
        let before = out.len();
        record(&mut book, 8, &rec, &mut out);
        assert_eq!(out.len(), before);
    }
}
