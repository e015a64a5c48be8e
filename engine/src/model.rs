//! The values the engine hands out: products, stock levels, reservations, and the requests it takes.

use serde::{Deserialize, Serialize};

/// One SKU and a quantity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
}

impl Line {
    pub fn new(sku: impl Into<String>, quantity: u32) -> Self {
        Self {
            sku: sku.into(),
            quantity,
        }
    }
}

/// A pure function of the current figures: OUT when `available = 0`; LOW when
/// `0 < available < reorder_level`; else IN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockStatus {
    InStock,
    LowStock,
    OutOfStock,
}

impl StockStatus {
    pub fn of(available: u64, reorder_level: u32) -> Self {
        if available == 0 {
            StockStatus::OutOfStock
        } else if available < u64::from(reorder_level) {
            StockStatus::LowStock
        } else {
            StockStatus::InStock
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            StockStatus::InStock => "IN_STOCK",
            StockStatus::LowStock => "LOW_STOCK",
            StockStatus::OutOfStock => "OUT_OF_STOCK",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub sku: String,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
    pub reorder_level: u32,
    pub status: StockStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub unit_price_cents: i64,
    pub reorder_level: u32,
    pub reorder_quantity: u32,
    pub stock: StockLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservationState {
    Active,
    Committed,
    Released,
    Expired,
}

impl ReservationState {
    pub fn name(self) -> &'static str {
        match self {
            ReservationState::Active => "ACTIVE",
            ReservationState::Committed => "COMMITTED",
            ReservationState::Released => "RELEASED",
            ReservationState::Expired => "EXPIRED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub reservation_id: String,
    pub state: ReservationState,
    /// As held, sorted by SKU.
    pub lines: Vec<Line>,
    /// What a commit deducted, sorted by SKU (empty unless committed).
    pub committed_lines: Vec<Line>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub ttl_seconds: u32,
}

/// A client operation on the ledger. Validated and normalised by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    UpsertProduct {
        sku: String,
        name: String,
        unit_price_cents: i64,
        reorder_level: u32,
        reorder_quantity: u32,
    },
    Receive {
        receipt_id: String,
        sku: String,
        quantity: u32,
    },
    Adjust {
        adjustment_id: String,
        sku: String,
        on_hand: u32,
        reason: String,
    },
    Reserve {
        reservation_id: String,
        lines: Vec<Line>,
        /// 0 means the default.
        ttl_seconds: u32,
    },
    Commit {
        reservation_id: String,
        /// Empty: commit everything held.
        lines: Vec<Line>,
    },
    Release {
        reservation_id: String,
    },
}

/// What a successful op returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutput {
    Product(Product),
    Stock(StockLevel),
    Reservation(Reservation),
}

impl OpOutput {
    pub fn into_stock(self) -> Option<StockLevel> {
        match self {
            OpOutput::Stock(s) => Some(s),
            OpOutput::Product(p) => Some(p.stock),
            OpOutput::Reservation(_) => None,
        }
    }
    pub fn into_reservation(self) -> Option<Reservation> {
        match self {
            OpOutput::Reservation(r) => Some(r),
            _ => None,
        }
    }
}
