//! The values the engine hands out: products, stock levels, reservations, and the requests it takes.

use serde::{Deserialize, Serialize};

use crate::alerts::{PurchaseOrder, PurchaseOrderStatus};
use crate::orders::{Customer, Order, Return};

/// A hold's lines, shared: the op's normalised lines become one allocation that the hold's
/// event, its ledger entry, its reply and its release or expiry event all point at (each
/// `Vec<Line>` copy was an allocation per line and per SKU string, ~15 % of a reserve+release
/// pair's instructions). Serialised as a sequence, exactly like a `Vec<Line>`.
pub type Lines = std::sync::Arc<[Line]>;

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
    pub lines: Lines,
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
        lines: Lines,
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
    UpsertCustomer {
        customer_id: String,
        name: String,
        email: String,
        phone: String,
        address: String,
        notify_email: bool,
        notify_sms: bool,
    },
    CreateOrder {
        order_id: String,
        customer_id: String,
        lines: Vec<Line>,
        shipping_address: String,
        /// 0 means the default.
        payment_timeout_seconds: u32,
    },
    ConfirmPayment {
        order_id: String,
        payment_id: String,
        amount_cents: i64,
    },
    FailPayment {
        order_id: String,
        payment_id: String,
        reason: String,
    },
    ShipOrder {
        order_id: String,
        carrier: String,
        tracking_number: String,
    },
    DeliverOrder {
        order_id: String,
    },
    CancelOrder {
        order_id: String,
        reason: String,
    },
    RequestReturn {
        return_id: String,
        order_id: String,
        lines: Vec<Line>,
        reason: String,
    },
    ApproveReturn {
        return_id: String,
        refund_cents: i64,
        restock: bool,
    },
    RejectReturn {
        return_id: String,
        reason: String,
    },
    UpdatePurchaseOrder {
        purchase_order_id: String,
        status: PurchaseOrderStatus,
    },
}

impl Op {
    /// The op's name as the API calls it (metrics, logs, messages).
    pub fn name(&self) -> &'static str {
        match self {
            Op::UpsertProduct { .. } => "UpsertProduct",
            Op::Receive { .. } => "ReceiveStock",
            Op::Adjust { .. } => "AdjustStock",
            Op::Reserve { .. } => "Reserve",
            Op::Commit { .. } => "Commit",
            Op::Release { .. } => "Release",
            Op::UpsertCustomer { .. } => "UpsertCustomer",
            Op::CreateOrder { .. } => "CreateOrder",
            Op::ConfirmPayment { .. } => "ConfirmPayment",
            Op::FailPayment { .. } => "FailPayment",
            Op::ShipOrder { .. } => "ShipOrder",
            Op::DeliverOrder { .. } => "DeliverOrder",
            Op::CancelOrder { .. } => "CancelOrder",
            Op::RequestReturn { .. } => "RequestReturn",
            Op::ApproveReturn { .. } => "ApproveReturn",
            Op::RejectReturn { .. } => "RejectReturn",
            Op::UpdatePurchaseOrder { .. } => "UpdatePurchaseOrder",
        }
    }
}

/// What a successful op returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutput {
    Product(Product),
    Stock(StockLevel),
    Reservation(Reservation),
    Customer(Customer),
    Order(Order),
    Return(Return),
    PurchaseOrder(PurchaseOrder),
}

impl OpOutput {
    pub fn into_stock(self) -> Option<StockLevel> {
        match self {
            OpOutput::Stock(s) => Some(s),
            OpOutput::Product(p) => Some(p.stock),
            _ => None,
        }
    }
    pub fn into_reservation(self) -> Option<Reservation> {
        match self {
            OpOutput::Reservation(r) => Some(r),
            _ => None,
        }
    }
}

impl OpOutput {
    pub fn into_customer(self) -> Option<Customer> {
        match self {
            OpOutput::Customer(c) => Some(c),
            _ => None,
        }
    }
    pub fn into_order(self) -> Option<Order> {
        match self {
            OpOutput::Order(o) => Some(o),
            _ => None,
        }
    }
    pub fn into_return(self) -> Option<Return> {
        match self {
            OpOutput::Return(r) => Some(r),
            _ => None,
        }
    }
    pub fn into_purchase_order(self) -> Option<PurchaseOrder> {
        match self {
            OpOutput::PurchaseOrder(p) => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WAL records and snapshots written before lines were shared read back as they were:
    /// shared lines and a `Vec<Line>` are the same bytes, both ways.
    #[test]
    fn shared_lines_serialise_exactly_as_a_vec_of_lines() {
        let vec = vec![Line::new("A-1", 3), Line::new("ÄÖ-2", u32::MAX)];
        let shared: Lines = vec.clone().into();
        let vec_bytes = postcard::to_allocvec(&vec).expect("vec serialises");
        assert_eq!(
            postcard::to_allocvec(&shared).expect("serialises"),
            vec_bytes
        );
        let back: Lines = postcard::from_bytes(&vec_bytes).expect("reads a vec's bytes");
        assert_eq!(&*back, vec.as_slice());
        let json = serde_json::to_string(&vec).expect("json");
        assert_eq!(serde_json::to_string(&shared).expect("json"), json);
    }
}
