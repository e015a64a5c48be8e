//! Events: every state change, as carried in WAL records. The WAL *is* the change feed.
//!
//! One client op is one [`Record`] (one LSN) carrying one or more events. Events carry
//! everything replay needs (times, computed figures, before/after counts), so replay never
//! consults today's clock or configuration, and consumers (exporter, notifier) never need the
//! engine's state to interpret them.

use serde::{Deserialize, Serialize};

use crate::model::Line;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    ProductUpserted {
        sku: String,
        name: String,
        unit_price_cents: i64,
        reorder_level: u32,
        reorder_quantity: u32,
    },
    StockReceived {
        receipt_id: String,
        sku: String,
        quantity: u32,
        on_hand_before: u64,
        on_hand_after: u64,
        reserved: u64,
    },
    StockAdjusted {
        adjustment_id: String,
        sku: String,
        on_hand_before: u64,
        on_hand_after: u64,
        reserved: u64,
        reason: String,
    },
    InventoryReserved {
        reservation_id: String,
        /// Sorted by SKU, each SKU once.
        lines: Vec<Line>,
        ttl_seconds: u32,
        created_at_ms: u64,
        expires_at_ms: u64,
    },
    ReservationCommitted {
        reservation_id: String,
        /// Deducted from on_hand and reserved.
        committed: Vec<Line>,
        /// Returned to available (partial commit).
        released: Vec<Line>,
    },
    ReservationReleased {
        reservation_id: String,
        lines: Vec<Line>,
    },
    ReservationExpired {
        reservation_id: String,
        lines: Vec<Line>,
    },
}

impl Event {
    /// The event's name as in DESIGN.md (and `WatchEvents.kinds`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ProductUpserted { .. } => "ProductUpserted",
            Event::StockReceived { .. } => "StockReceived",
            Event::StockAdjusted { .. } => "StockAdjusted",
            Event::InventoryReserved { .. } => "InventoryReserved",
            Event::ReservationCommitted { .. } => "ReservationCommitted",
            Event::ReservationReleased { .. } => "ReservationReleased",
            Event::ReservationExpired { .. } => "ReservationExpired",
        }
    }

    /// The entity the event is about: a SKU or a reservation id.
    pub fn subject(&self) -> &str {
        match self {
            Event::ProductUpserted { sku, .. }
            | Event::StockReceived { sku, .. }
            | Event::StockAdjusted { sku, .. } => sku,
            Event::InventoryReserved { reservation_id, .. }
            | Event::ReservationCommitted { reservation_id, .. }
            | Event::ReservationReleased { reservation_id, .. }
            | Event::ReservationExpired { reservation_id, .. } => reservation_id,
        }
    }

    /// The event as JSON (`{"kind": {...fields}}`), for `WatchEvents` and webhooks.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// The payload of one WAL record: the server time the op ran at and its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub at_ms: u64,
    pub events: Vec<Event>,
}

impl Record {
    /// Payload encoding: postcard (varint integers, length-prefixed strings and sequences, enum
    /// variants as varint indexes in declaration order — so variants are only ever appended).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a record always serialises")
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}
