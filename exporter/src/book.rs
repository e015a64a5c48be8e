//! The current per-SKU figures, mirrored from the store's `stock_levels` so every stock
//! movement gets its before/after without a read per event. Loaded from the store when the
//! exporter starts (and after a failed batch), changed as events are translated, and written
//! back as one `stock_levels` row per touched SKU at the end of each batch — in the batch's
//! transaction, so the store and the mirror always agree once it commits.

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

#[derive(Debug, Default)]
pub struct StockBook {
    skus: HashMap<String, Figures>,
    dirty: BTreeSet<String>,
}

impl StockBook {
    pub fn from_rows(rows: impl IntoIterator<Item = (String, Figures)>) -> Self {
        Self {
            skus: rows.into_iter().collect(),
            dirty: BTreeSet::new(),
        }
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
