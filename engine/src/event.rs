//! Events: every state change, as carried in WAL records. The WAL *is* the change feed.
//!
//! One client op is one [`Record`] (one LSN) carrying one or more events. Events carry
//! everything replay needs (times, computed figures, before/after counts), so replay never
//! consults today's clock or configuration, and consumers (exporter, notifier) never need the
//! engine's state to interpret them.

use serde::{Deserialize, Serialize};

use crate::alerts::{AlertKind, PurchaseOrderStatus};
use crate::model::{Line, Lines};
use crate::orders::{OrderLine, OrderStatus, Pricing, Totals};

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
        lines: Lines,
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
        lines: Lines,
    },
    ReservationExpired {
        reservation_id: String,
        lines: Lines,
    },
    // Orders (issue 5). Postcard encodes variants by index: append only.
    CustomerUpserted {
        customer_id: String,
        name: String,
        email: String,
        phone: String,
        address: String,
        notify_email: bool,
        notify_sms: bool,
    },
    /// Follows the `InventoryReserved` of the order's hold (`orders::hold_id`) in one record.
    OrderCreated {
        order_id: String,
        customer_id: String,
        /// Sorted by SKU, priced from the catalogue at order time.
        lines: Vec<OrderLine>,
        shipping_address: String,
        totals: Totals,
        /// The rules the totals were computed with.
        pricing: Pricing,
        payment_timeout_seconds: u32,
        payment_deadline_ms: u64,
    },
    /// A payment attempt: a success is followed by the hold's `ReservationCommitted` and
    /// `OrderPaid`; a failure by its `ReservationReleased` and `OrderCancelled`.
    PaymentProcessed {
        order_id: String,
        payment_id: String,
        amount_cents: i64,
        succeeded: bool,
        reason: String,
    },
    OrderPaid {
        order_id: String,
        customer_id: String,
        payment_id: String,
        amount_cents: i64,
    },
    OrderShipped {
        order_id: String,
        carrier: String,
        tracking_number: String,
    },
    OrderDelivered {
        order_id: String,
    },
    /// From PENDING it follows the hold's release or expiry; from PAID it puts `restocked`
    /// back on hand and records the refund due.
    OrderCancelled {
        order_id: String,
        customer_id: String,
        from: OrderStatus,
        reason: String,
        refund_due_cents: i64,
        restocked: Vec<Line>,
    },
    ReturnRequested {
        return_id: String,
        order_id: String,
        lines: Vec<Line>,
        reason: String,
    },
    /// `restocked` (the return's lines when it restocks, else empty) goes back on hand.
    ReturnApproved {
        return_id: String,
        order_id: String,
        customer_id: String,
        lines: Vec<Line>,
        refund_cents: i64,
        restocked: Vec<Line>,
    },
    ReturnRejected {
        return_id: String,
        order_id: String,
        lines: Vec<Line>,
        reason: String,
    },
    OrderReturned {
        order_id: String,
    },
    // Alerts and purchase orders.
    InventoryLevelLow {
        alert_id: String,
        sku: String,
        kind: AlertKind,
        available: u64,
        reorder_level: u32,
        suggested_quantity: u32,
    },
    InventoryRestored {
        alert_id: String,
        sku: String,
        kind: AlertKind,
        available: u64,
        /// Resolved alerts and closed purchase orders of this SKU that memory lets go of
        /// (beyond `limits::ALERT_HISTORY_PER_SKU_MAX`), oldest first.
        forgotten: Vec<String>,
    },
    PurchaseOrderSuggested {
        purchase_order_id: String,
        sku: String,
        quantity: u32,
        alert_id: String,
    },
    PurchaseOrderUpdated {
        purchase_order_id: String,
        sku: String,
        status: PurchaseOrderStatus,
        /// As in `InventoryRestored`, when this update closes the purchase order.
        forgotten: Vec<String>,
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
            Event::CustomerUpserted { .. } => "CustomerUpserted",
            Event::OrderCreated { .. } => "OrderCreated",
            Event::PaymentProcessed { .. } => "PaymentProcessed",
            Event::OrderPaid { .. } => "OrderPaid",
            Event::OrderShipped { .. } => "OrderShipped",
            Event::OrderDelivered { .. } => "OrderDelivered",
            Event::OrderCancelled { .. } => "OrderCancelled",
            Event::ReturnRequested { .. } => "ReturnRequested",
            Event::ReturnApproved { .. } => "ReturnApproved",
            Event::ReturnRejected { .. } => "ReturnRejected",
            Event::OrderReturned { .. } => "OrderReturned",
            Event::InventoryLevelLow { .. } => "InventoryLevelLow",
            Event::InventoryRestored { .. } => "InventoryRestored",
            Event::PurchaseOrderSuggested { .. } => "PurchaseOrderSuggested",
            Event::PurchaseOrderUpdated { .. } => "PurchaseOrderUpdated",
        }
    }

    /// The order the event is about, if any (an order's hold counts as its order).
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Event::OrderCreated { order_id, .. }
            | Event::PaymentProcessed { order_id, .. }
            | Event::OrderPaid { order_id, .. }
            | Event::OrderShipped { order_id, .. }
            | Event::OrderDelivered { order_id }
            | Event::OrderCancelled { order_id, .. }
            | Event::ReturnRequested { order_id, .. }
            | Event::ReturnApproved { order_id, .. }
            | Event::ReturnRejected { order_id, .. }
            | Event::OrderReturned { order_id } => Some(order_id),
            Event::InventoryReserved { reservation_id, .. }
            | Event::ReservationCommitted { reservation_id, .. }
            | Event::ReservationReleased { reservation_id, .. }
            | Event::ReservationExpired { reservation_id, .. } => {
                crate::orders::order_of_hold(reservation_id)
            }
            _ => None,
        }
    }

    /// The entity the event is about: a SKU, a reservation, an order (also for an order's
    /// hold), a customer, a return or a purchase order.
    pub fn subject(&self) -> &str {
        if let Some(order_id) = self.order_id()
            && !matches!(
                self,
                Event::ReturnRequested { .. }
                    | Event::ReturnApproved { .. }
                    | Event::ReturnRejected { .. }
            )
        {
            return order_id;
        }
        match self {
            Event::ProductUpserted { sku, .. }
            | Event::StockReceived { sku, .. }
            | Event::StockAdjusted { sku, .. }
            | Event::InventoryLevelLow { sku, .. }
            | Event::InventoryRestored { sku, .. } => sku,
            Event::InventoryReserved { reservation_id, .. }
            | Event::ReservationCommitted { reservation_id, .. }
            | Event::ReservationReleased { reservation_id, .. }
            | Event::ReservationExpired { reservation_id, .. } => reservation_id,
            Event::CustomerUpserted { customer_id, .. } => customer_id,
            Event::ReturnRequested { return_id, .. }
            | Event::ReturnApproved { return_id, .. }
            | Event::ReturnRejected { return_id, .. } => return_id,
            Event::PurchaseOrderSuggested {
                purchase_order_id, ..
            }
            | Event::PurchaseOrderUpdated {
                purchase_order_id, ..
            } => purchase_order_id,
            Event::OrderCreated { order_id, .. }
            | Event::PaymentProcessed { order_id, .. }
            | Event::OrderPaid { order_id, .. }
            | Event::OrderShipped { order_id, .. }
            | Event::OrderDelivered { order_id }
            | Event::OrderCancelled { order_id, .. }
            | Event::OrderReturned { order_id } => order_id,
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

/// A generous size for one encoded event (ids, a line or two, counts).
const EVENT_BYTES_TYPICAL: usize = 128;

impl Record {
    /// Payload encoding: postcard (varint integers, length-prefixed strings and sequences, enum
    /// variants as varint indexes in declaration order — so variants are only ever appended).
    pub fn encode(&self) -> Vec<u8> {
        // Sized for a typical record up front: growing from empty reallocated several times
        // per record (~5 % of a durable op's CPU).
        let estimate = EVENT_BYTES_TYPICAL * self.events.len().max(1);
        postcard::to_extend(self, Vec::with_capacity(estimate)).expect("a record always serialises")
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// The kind ([`Event::kind`]) of a record's event if it holds exactly one, read from the
    /// payload's first few bytes — `at_ms`, the event count, the variant index — without
    /// decoding the rest. A consumer that wants a few kinds skips most records this way (a
    /// stock op is one event unless it opens an alert). `None`: several events (decode
    /// them), or bytes that do not start a record.
    pub fn sole_event_kind(bytes: &[u8]) -> Option<&'static str> {
        let mut rest = bytes;
        let _at_ms = varint(&mut rest)?;
        if varint(&mut rest)? != 1 {
            return None;
        }
        let index = usize::try_from(varint(&mut rest)?).ok()?;
        event_kinds().get(index).copied()
    }
}

/// A postcard varint (LEB128: 7 bits a byte, low first) at the front of `bytes`, consumed.
fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

/// The names of [`Event`]'s variants by postcard's variant index — their declaration order —
/// as serde's derive lists them (so no second list can fall out of step with the enum). The
/// names are the kinds [`Event::kind`] returns.
fn event_kinds() -> &'static [&'static str] {
    static KINDS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KINDS.get_or_init(|| match Event::deserialize(variants::Listing) {
        Err(variants::Listed(names)) => names,
        Ok(_) => unreachable!("the listing deserializer yields no value"),
    })
}

/// A deserializer that yields nothing but the variant names an enum's derived `Deserialize`
/// hands to it.
mod variants {
    use serde::de::{Deserializer, Visitor};

    pub struct Listing;

    #[derive(Debug)]
    pub struct Listed(pub &'static [&'static str]);

    impl std::fmt::Display for Listed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "variants {:?}", self.0)
        }
    }

    impl std::error::Error for Listed {}

    impl serde::de::Error for Listed {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Listed(&[])
        }
    }

    impl<'de> Deserializer<'de> for Listing {
        type Error = Listed;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Listed> {
            Err(Listed(&[]))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Listed> {
            Err(Listed(variants))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map struct
            identifier ignored_any
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::PurchaseOrderStatus;
    use crate::model::Line;

    fn samples() -> Vec<Event> {
        vec![
            Event::ProductUpserted {
                sku: "A".into(),
                name: "a".into(),
                unit_price_cents: 100,
                reorder_level: 1,
                reorder_quantity: 2,
            },
            Event::InventoryReserved {
                reservation_id: "h1".into(),
                lines: vec![Line::new("A", 3)].into(),
                ttl_seconds: 60,
                created_at_ms: 1,
                expires_at_ms: 60_001,
            },
            Event::ReservationReleased {
                reservation_id: "h1".into(),
                lines: vec![Line::new("A", 3)].into(),
            },
            Event::OrderDelivered {
                order_id: "o1".into(),
            },
            Event::PurchaseOrderUpdated {
                purchase_order_id: "A/PO1".into(),
                sku: "A".into(),
                status: PurchaseOrderStatus::Received,
                forgotten: vec![],
            },
        ]
    }

    #[test]
    fn sole_event_kind_reads_the_first_variant_of_a_one_event_record() {
        // A late `at_ms` takes a multi-byte varint.
        for at_ms in [0, 1_765_000_000_000] {
            for event in samples() {
                let kind = event.kind();
                let bytes = Record {
                    at_ms,
                    events: vec![event],
                }
                .encode();
                assert_eq!(Record::sole_event_kind(&bytes), Some(kind));
            }
        }
    }

    #[test]
    fn sole_event_kind_declines_several_events_none_and_cut_bytes() {
        let both = Record {
            at_ms: 5,
            events: samples(),
        }
        .encode();
        assert_eq!(Record::sole_event_kind(&both), None);
        let none = Record {
            at_ms: 5,
            events: vec![],
        }
        .encode();
        assert_eq!(Record::sole_event_kind(&none), None);
        // Cut before the variant index: nothing to read, and no panic.
        let one = Record {
            at_ms: 1_765_000_000_000,
            events: samples().split_off(4),
        }
        .encode();
        let head = 6 + 1 + 1;
        for cut in 0..head {
            assert_eq!(Record::sole_event_kind(&one[..cut]), None, "cut at {cut}");
        }
        assert_eq!(
            Record::sole_event_kind(&one[..head]),
            Some("PurchaseOrderUpdated")
        );
    }

    #[test]
    fn event_kinds_are_the_variants_in_declaration_order() {
        let kinds = event_kinds();
        assert_eq!(kinds.first(), Some(&"ProductUpserted"));
        assert_eq!(kinds.last(), Some(&"PurchaseOrderUpdated"));
        let mut unique = kinds.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), kinds.len());
    }
}
