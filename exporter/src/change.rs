//! What the exporter asks a store to do: store-independent row changes, applied in order
//! within one transaction (see [`crate::store::Store::apply`]).

use crate::schema::Table;
use crate::value::Value;

/// How an [`Change::Update`] sets a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Set {
    To(Value),
    /// `column = column + n` (an order's refunded total).
    Add(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Insert an entity row (every column, in table order), or overwrite an older one (the
    /// stamp rule, see [`crate::schema`]).
    Upsert {
        table: &'static Table,
        row: Vec<Value>,
    },
    /// Set some columns of the entity with this key (one value per key column), if the row is
    /// older than `stamp`; the row's stamp becomes `stamp`.
    Update {
        table: &'static Table,
        key: Vec<Value>,
        stamp: u64,
        set: Vec<(&'static str, Set)>,
    },
    /// Append a fact row (every column, in table order).
    Append {
        table: &'static Table,
        row: Vec<Value>,
    },
}

impl Change {
    pub fn table(&self) -> &'static Table {
        match self {
            Change::Upsert { table, .. }
            | Change::Update { table, .. }
            | Change::Append { table, .. } => table,
        }
    }
}

/// The engine's stamp of event `index` of the record at `lsn` (`engine::ledger::shard::stamp`).
pub fn stamp(lsn: u64, index: usize) -> u64 {
    (lsn << 16) | (index as u64 + 1)
}
