//! The current per-SKU figures, mirrored from the store's `stock_levels` so every stock
//! movement gets its before/after without a read per event. Loaded from the store when the
//! exporter starts (and after a failed batch), changed as events are translated, and written
//! back as one `stock_levels` row per touched SKU at the end of each batch — in the batch's
//! transaction, so the store and the mirror always agree once it commits.
//!
//! It also holds the lines of the orders not yet delivered or cancelled (the store's
//! `order_lines` of those orders), because a delivery event names only the order and its
//! `sales` rows need the lines.

use std::collections::{BTreeSet, HashMap};

use crate::change::Change;
use crate::schema::STOCK_LEVELS;
use crate::value::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub on_hand: i64,
    pub reserved: i64,
    pub reorder_level: i64,
    /// Stamp of the last event applied to this SKU.
    pub stamp: u64,
    pub updated_at_ms: u64,
}

/// What one change did to a SKU's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub before: Figures,
    pub after: Figures,
}

/// A line of an open order: SKU, quantity, unit price in cents.
pub type OpenLine = (String, u32, i64);

#[derive(Debug, Default)]
pub struct StockBook {
    skus: HashMap<String, Figures>,
    dirty: BTreeSet<String>,
    open_orders: HashMap<String, Vec<OpenLine>>,
}

impl StockBook {
    pub fn from_rows(rows: impl IntoIterator<Item = (String, Figures)>) -> Self {
        Self {
            skus: rows.into_iter().collect(),
            dirty: BTreeSet::new(),
            open_orders: HashMap::new(),
        }
    }

    /// Adds the lines of open orders, as the store lists them ([`crate::store::OPEN_ORDER_LINES_SQL`]).
    pub fn with_open_lines(mut self, rows: impl IntoIterator<Item = (String, OpenLine)>) -> Self {
        for (order_id, line) in rows {
            self.open_orders.entry(order_id).or_default().push(line);
        }
        self
    }

    /// Remembers an order's lines until it is delivered or cancelled.
    pub fn open_order(&mut self, order_id: &str, lines: Vec<OpenLine>) {
        self.open_orders.insert(order_id.to_string(), lines);
    }

    /// Forgets an order, returning its lines (`None` if it was not open here: its delivery is
    /// already in the store, from the snapshot the store was rebuilt from).
    pub fn close_order(&mut self, order_id: &str) -> Option<Vec<OpenLine>> {
        self.open_orders.remove(order_id)
    }

    pub fn get(&self, sku: &str) -> Option<&Figures> {
        self.skus.get(sku)
    }

    /// Applies `f` to the SKU's figures if the SKU is older than `stamp` (else the snapshot the
    /// store was rebuilt from already reflects the event: `None`).
    pub fn change(
        &mut self,
        sku: &str,
        stamp: u64,
        at_ms: u64,
        f: impl FnOnce(&mut Figures),
    ) -> Option<Moved> {
        let figures = self.skus.entry(sku.to_string()).or_default();
        if figures.stamp >= stamp {
            return None;
        }
        let before = *figures;
        f(figures);
        figures.stamp = stamp;
        figures.updated_at_ms = at_ms;
        self.dirty.insert(sku.to_string());
        Some(Moved {
            before,
            after: *figures,
        })
    }

    /// The `stock_levels` rows of the SKUs changed since the last call.
    pub fn drain_changes(&mut self, out: &mut Vec<Change>) {
        for sku in std::mem::take(&mut self.dirty) {
            let f = self.skus[&sku];
            out.push(Change::Upsert {
                table: &STOCK_LEVELS,
                row: vec![
                    Value::text(&sku),
                    Value::Int(f.on_hand),
                    Value::Int(f.reserved),
                    Value::Int((f.on_hand - f.reserved).max(0)),
                    Value::Int(f.reorder_level),
                    Value::ts(f.updated_at_ms),
                    Value::int(f.stamp),
                ],
            });
        }
    }
}
