//! The analytical store's tables: one description, from which both stores' DDL and every
//! statement the exporter runs are generated (so the two stores cannot drift apart).
//!
//! Entity tables (one row per entity, current state) have a primary key and a `stamp` column:
//! the engine's per-entity stamp (`lsn << 16 | event index + 1`) of the last event applied. A
//! change is applied only to a row older than the event — the engine's own rule — which makes
//! replaying the WAL over a fuzzy snapshot exact. Fact tables (`stock_movements`,
//! `order_lines`, `payments`) are append-only. `export_meta` holds the exporter's cursor,
//! written in the same transaction as each batch's rows.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Text,
    Int,
    Bool,
    Ts,
}

impl Type {
    pub fn sql(self) -> &'static str {
        match self {
            Type::Text => "TEXT",
            Type::Int => "BIGINT",
            Type::Bool => "BOOLEAN",
            Type::Ts => "TIMESTAMP",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Type)],
    /// Primary key columns (entity tables); empty for fact tables.
    pub key: &'static [&'static str],
    /// For fact tables: the columns that identify a row, used to skip a duplicate while
    /// replaying over a fresh snapshot.
    pub identity: &'static [&'static str],
    /// Columns an upsert sets only when inserting (e.g. a customer's `created_at`).
    pub insert_only: &'static [&'static str],
}

impl Table {
    pub fn is_entity(&self) -> bool {
        !self.key.is_empty()
    }
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> {
        self.columns.iter().map(|(n, _)| *n)
    }
    pub fn create_sql(&self) -> String {
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .map(|(n, t)| format!("{} {}", ident(n), t.sql()))
            .collect();
        if self.is_entity() {
            cols.push(format!(
                "PRIMARY KEY ({})",
                idents(self.key.iter().copied())
            ));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.name,
            cols.join(", ")
        )
    }
}

use Type::{Bool, Int, Text, Ts};

pub const PRODUCTS: Table = Table {
    name: "products",
    columns: &[
        ("sku", Text),
        ("name", Text),
        ("unit_price_cents", Int),
        ("reorder_level", Int),
        ("reorder_quantity", Int),
        ("updated_at", Ts),
        ("stamp", Int),
    ],
    key: &["sku"],
    identity: &[],
    insert_only: &[],
};

pub const STOCK_LEVELS: Table = Table {
    name: "stock_levels",
    columns: &[
        ("sku", Text),
        ("on_hand", Int),
        ("reserved", Int),
        ("available", Int),
        ("reorder_level", Int),
        ("updated_at", Ts),
        ("stamp", Int),
    ],
    key: &["sku"],
    identity: &[],
    insert_only: &[],
};

pub const STOCK_MOVEMENTS: Table = Table {
    name: "stock_movements",
    columns: &[
        ("lsn", Int),
        ("event_index", Int),
        ("at", Ts),
        ("sku", Text),
        // receive, adjust, reserve, commit, release, expire, restock_cancel, restock_return
        ("kind", Text),
        ("quantity", Int),
        ("on_hand_before", Int),
        ("on_hand_after", Int),
        ("reserved_before", Int),
        ("reserved_after", Int),
        // The receipt, adjustment, reservation, order or return id.
        ("reference", Text),
        ("reason", Text),
    ],
    key: &[],
    identity: &["lsn", "event_index", "sku"],
    insert_only: &[],
};

pub const ORDERS: Table = Table {
    name: "orders",
    columns: &[
        ("order_id", Text),
        ("customer_id", Text),
        ("status", Text),
        ("created_at", Ts),
        ("paid_at", Ts),
        ("shipped_at", Ts),
        ("delivered_at", Ts),
        ("cancelled_at", Ts),
        ("subtotal_cents", Int),
        ("discount_cents", Int),
        ("tax_cents", Int),
        ("shipping_cents", Int),
        ("total_cents", Int),
        ("shipping_address", Text),
        ("payment_deadline_at", Ts),
        ("payment_id", Text),
        ("cancel_reason", Text),
        ("refund_due_cents", Int),
        ("refunded_cents", Int),
        ("stamp", Int),
    ],
    key: &["order_id"],
    identity: &[],
    insert_only: &[],
};

pub const ORDER_LINES: Table = Table {
    name: "order_lines",
    columns: &[
        ("order_id", Text),
        ("sku", Text),
        ("quantity", Int),
        ("unit_price_cents", Int),
    ],
    key: &[],
    identity: &["order_id", "sku"],
    insert_only: &[],
};

/// One row per line of a delivered order, written when the delivery is exported (the lines come
/// from the exporter's book of open orders): the sales facts reports aggregate without joining
/// `orders` to `order_lines`. `delivered_month` is `delivered_at` truncated to its UTC month,
/// computed once here rather than in every monthly report.
pub const SALES: Table = Table {
    name: "sales",
    columns: &[
        ("order_id", Text),
        ("sku", Text),
        ("quantity", Int),
        ("unit_price_cents", Int),
        ("delivered_at", Ts),
        ("delivered_month", Ts),
    ],
    key: &[],
    identity: &["order_id", "sku"],
    insert_only: &[],
};

pub const PAYMENTS: Table = Table {
    name: "payments",
    columns: &[
        ("payment_id", Text),
        ("order_id", Text),
        ("amount_cents", Int),
        ("succeeded", Bool),
        ("reason", Text),
        ("at", Ts),
        ("lsn", Int),
    ],
    key: &[],
    identity: &["order_id", "payment_id", "succeeded"],
    insert_only: &[],
};

pub const SHIPMENTS: Table = Table {
    name: "shipments",
    columns: &[
        ("order_id", Text),
        ("carrier", Text),
        ("tracking_number", Text),
        ("shipped_at", Ts),
        ("delivered_at", Ts),
        ("stamp", Int),
    ],
    key: &["order_id"],
    identity: &[],
    insert_only: &[],
};

pub const RETURNS: Table = Table {
    name: "returns",
    columns: &[
        ("return_id", Text),
        ("order_id", Text),
        ("status", Text),
        ("units", Int),
        ("reason", Text),
        ("refund_cents", Int),
        ("restock", Bool),
        ("decision_reason", Text),
        ("requested_at", Ts),
        ("decided_at", Ts),
        ("stamp", Int),
    ],
    key: &["return_id"],
    identity: &[],
    insert_only: &[],
};

pub const ALERTS: Table = Table {
    name: "alerts",
    columns: &[
        ("alert_id", Text),
        ("sku", Text),
        ("kind", Text),
        ("available", Int),
        ("reorder_level", Int),
        ("suggested_quantity", Int),
        ("opened_at", Ts),
        ("resolved_at", Ts),
        ("stamp", Int),
    ],
    key: &["alert_id"],
    identity: &[],
    insert_only: &[],
};

pub const PURCHASE_ORDERS: Table = Table {
    name: "purchase_orders",
    columns: &[
        ("purchase_order_id", Text),
        ("sku", Text),
        ("quantity", Int),
        ("status", Text),
        ("alert_id", Text),
        ("created_at", Ts),
        ("updated_at", Ts),
        ("stamp", Int),
    ],
    key: &["purchase_order_id"],
    identity: &[],
    insert_only: &["created_at"],
};

pub const CUSTOMERS: Table = Table {
    name: "customers",
    columns: &[
        ("customer_id", Text),
        ("name", Text),
        ("email", Text),
        ("phone", Text),
        ("address", Text),
        ("notify_email", Bool),
        ("notify_sms", Bool),
        ("created_at", Ts),
        ("updated_at", Ts),
        ("stamp", Int),
    ],
    key: &["customer_id"],
    identity: &[],
    insert_only: &["created_at"],
};

/// The exporter's own state: `cursor_lsn` (every record at or below it is in the store) and
/// `rebuild_lsn_end` (the last rebuild's snapshot may reflect records up to here, so fact rows
/// of records at or below it are deduplicated).
pub const META: Table = Table {
    name: "export_meta",
    columns: &[("name", Text), ("value", Int)],
    key: &["name"],
    identity: &[],
    insert_only: &[],
};

/// Every table, in creation order.
pub const TABLES: &[&Table] = &[
    &PRODUCTS,
    &STOCK_LEVELS,
    &STOCK_MOVEMENTS,
    &ORDERS,
    &ORDER_LINES,
    &SALES,
    &PAYMENTS,
    &SHIPMENTS,
    &RETURNS,
    &ALERTS,
    &PURCHASE_ORDERS,
    &CUSTOMERS,
    &META,
];

/// The tables a user's `Query` sees (everything but the exporter's own state).
pub fn data_tables() -> impl Iterator<Item = &'static Table> {
    TABLES.iter().copied().filter(|t| t.name != META.name)
}

/// Spells the `n`th (from 1) parameter of a statement, of column type `Type`: `?` in DuckDB,
/// `$n::TYPE` in PostgreSQL (which cannot infer types in a SELECT list).
pub type Placeholder = fn(usize, Type) -> String;

/// A column name as it goes into generated SQL: double-quoted, because API.md's column names
/// include words the stores' parsers reserve (`at` is a keyword in DuckDB). Users write
/// `"at"` the same way in their own queries.
pub fn ident(column: &str) -> String {
    debug_assert!(
        column
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    );
    format!("\"{column}\"")
}

pub fn idents<'a>(columns: impl IntoIterator<Item = &'a str>) -> String {
    columns
        .into_iter()
        .map(ident)
        .collect::<Vec<_>>()
        .join(", ")
}

fn placeholders(t: &Table, placeholder: Placeholder) -> Vec<String> {
    t.columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| placeholder(i + 1, *ty))
        .collect()
}

pub fn upsert_sql(t: &Table, placeholder: Placeholder) -> String {
    upsert_rows_sql(
        t,
        &format!("VALUES ({})", placeholders(t, placeholder).join(", ")),
    )
}

/// The upsert of [`upsert_sql`] with its rows from `rows` (`VALUES (…)`, or a `SELECT` of a
/// staging table holding many rows, each key at most once).
pub fn upsert_rows_sql(t: &Table, rows: &str) -> String {
    let cols: Vec<&str> = t.column_names().collect();
    let sets: Vec<String> = updated_columns(t)
        .map(|(c, _)| format!("{0} = excluded.{0}", ident(c)))
        .collect();
    let guard = if t.column_names().any(|c| c == "stamp") {
        format!(" WHERE {}.stamp < excluded.stamp", t.name)
    } else {
        String::new()
    };
    format!(
        "INSERT INTO {} ({}) {rows} ON CONFLICT ({}) DO UPDATE SET {}{guard}",
        t.name,
        idents(cols),
        idents(t.key.iter().copied()),
        sets.join(", ")
    )
}

/// The columns an upsert overwrites in a row that is already there.
pub fn updated_columns(t: &Table) -> impl Iterator<Item = (&'static str, Type)> + '_ {
    t.columns
        .iter()
        .copied()
        .filter(|(c, _)| !t.key.contains(c) && !t.insert_only.contains(c))
}

/// A fact row inserted unless a row with the same identity is there (replay over a snapshot).
pub fn insert_missing_sql(t: &Table, placeholder: Placeholder) -> String {
    let cols: Vec<&str> = t.column_names().collect();
    let values = placeholders(t, placeholder);
    let n = cols.len();
    let same: Vec<String> = t
        .identity
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ty = t.columns[column_index(t, c)].1;
            format!("{} = {}", ident(c), placeholder(n + i + 1, ty))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) SELECT {} WHERE NOT EXISTS (SELECT 1 FROM {} WHERE {})",
        t.name,
        idents(cols),
        values.join(", "),
        t.name,
        same.join(" AND ")
    )
}

/// The column of `t` at position `i` (for the identity values of [`insert_missing_sql`]).
pub fn column_index(t: &Table, name: &str) -> usize {
    t.columns
        .iter()
        .position(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("{} has no column {name}", t.name))
}
