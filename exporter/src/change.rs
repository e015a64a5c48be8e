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

    /// The key of the entity row this change touches (`None` for a fact row).
    pub fn key(&self) -> Option<Vec<&Value>> {
        match self {
            Change::Upsert { table, row } => Some(
                table
                    .key
                    .iter()
                    .map(|c| &row[crate::schema::column_index(table, c)])
                    .collect(),
            ),
            Change::Update { key, .. } => Some(key.iter().collect()),
            Change::Append { .. } => None,
        }
    }
}

/// The engine's stamp of event `index` of the record at `lsn` (`engine::ledger::shard::stamp`).
pub fn stamp(lsn: u64, index: usize) -> u64 {
    (lsn << 16) | (index as u64 + 1)
}

/// Reorders a batch's changes so that a store can apply them in few statements: grouped by
/// table, and within a table in layers — the first change of every key, then the second, … —
/// upserts before updates in each layer. Only changes that commute move past each other: every
/// change touches rows of its own table only, and an entity change only its key's row, so
/// what must stay in feed order is each key's own changes, and it does (a key's n-th change is
/// in layer n). Fact rows (appends) stay in feed order within their table. A layer's upserts
/// have distinct keys, so they form one [`crate::store::upsert_run`].
pub fn group_for_statements(changes: &mut Vec<Change>) {
    // (table, layer, kind) of each change, kind: upserts, then updates, then fact rows.
    let mut order: Vec<(usize, usize, u8)> = Vec::with_capacity(changes.len());
    let mut seen: std::collections::HashMap<(&'static str, Vec<&Value>), usize> =
        std::collections::HashMap::new();
    for change in changes.iter() {
        let table = change.table();
        let table_at = crate::schema::TABLES
            .iter()
            .position(|t| t.name == table.name)
            .unwrap_or(usize::MAX);
        let rank = match change {
            Change::Upsert { .. } => 0,
            Change::Update { .. } => 1,
            Change::Append { .. } => 2,
        };
        let layer = change.key().map_or(0, |key| {
            let n = seen.entry((table.name, key)).or_insert(0);
            *n += 1;
            *n
        });
        order.push((table_at, layer, rank));
    }
    drop(seen);
    let mut keyed: Vec<_> = order.into_iter().zip(changes.drain(..)).collect();
    // Stable: changes of one position keep their feed order.
    keyed.sort_by_key(|(position, _)| *position);
    changes.extend(keyed.into_iter().map(|(_, change)| change));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ORDERS, STOCK_LEVELS, STOCK_MOVEMENTS};

    fn upsert(table: &'static Table, key: &str, stamp: i64) -> Change {
        let mut row = vec![Value::Null; table.columns.len()];
        row[crate::schema::column_index(table, table.key[0])] = Value::text(key);
        row[crate::schema::column_index(table, "stamp")] = Value::Int(stamp);
        Change::Upsert { table, row }
    }

    fn update(table: &'static Table, key: &str, stamp: u64) -> Change {
        Change::Update {
            table,
            key: vec![Value::text(key)],
            stamp,
            set: vec![("status", Set::To(Value::text("PAID")))],
        }
    }

    fn append(n: i64) -> Change {
        let mut row = vec![Value::Null; STOCK_MOVEMENTS.columns.len()];
        row[0] = Value::Int(n);
        Change::Append {
            table: &STOCK_MOVEMENTS,
            row,
        }
    }

    /// Each entity key's changes, and each fact table's rows, in the order they come.
    fn sequences(changes: &[Change]) -> std::collections::BTreeMap<String, Vec<Change>> {
        let mut out: std::collections::BTreeMap<String, Vec<Change>> = Default::default();
        for c in changes {
            let key = format!("{} {:?}", c.table().name, c.key());
            out.entry(key).or_default().push(c.clone());
        }
        out
    }

    #[test]
    fn grouping_keeps_each_keys_changes_in_order_and_makes_runs_of_distinct_keys() {
        // Order O1 created, paid; stock of A moved; order O2 created; O1 updated again; …
        let feed = vec![
            upsert(&ORDERS, "O1", 1),
            append(1),
            upsert(&STOCK_LEVELS, "A", 2),
            update(&ORDERS, "O1", 3),
            upsert(&ORDERS, "O2", 4),
            append(2),
            update(&ORDERS, "O1", 5),
            upsert(&STOCK_LEVELS, "B", 6),
            upsert(&ORDERS, "O3", 7),
            update(&ORDERS, "O2", 8),
            append(3),
        ];
        let mut grouped = feed.clone();
        group_for_statements(&mut grouped);
        assert_eq!(grouped.len(), feed.len());
        assert_eq!(sequences(&grouped), sequences(&feed));
        // Each table's changes are together.
        let tables: Vec<&str> = grouped.iter().map(|c| c.table().name).collect();
        let mut runs = tables.clone();
        runs.dedup();
        let mut distinct = runs.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(runs.len(), distinct.len(), "{tables:?}");
        // The orders: the three creations as one run, then the first updates, then O1's second.
        let orders: Vec<&Change> = grouped
            .iter()
            .filter(|c| c.table().name == ORDERS.name)
            .collect();
        assert_eq!(
            orders,
            [
                &feed[0], &feed[4], &feed[8], // layer 1: upserts
                &feed[3], &feed[9], // layer 2: O1's and O2's first updates
                &feed[6], // layer 3: O1's second update
            ]
        );
        assert_eq!(
            crate::store::upsert_run(
                &ORDERS,
                &grouped[grouped
                    .iter()
                    .position(|c| c.table().name == ORDERS.name)
                    .unwrap()..]
            )
            .len(),
            3
        );
    }
}
