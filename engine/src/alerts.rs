//! Low-stock alerts and purchase-order suggestions: the values, and the policy that opens and
//! resolves them. The engine derives alert events from each op's effect on stock, inside the
//! op's own record (see `ledger::alerting`), so the WAL says exactly when each one opened.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    LowStock,
    OutOfStock,
}

impl AlertKind {
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::LowStock => "LOW_STOCK",
            AlertKind::OutOfStock => "OUT_OF_STOCK",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub sku: String,
    pub kind: AlertKind,
    /// Available units when it opened.
    pub available: u64,
    pub reorder_level: u32,
    pub suggested_quantity: u32,
    pub opened_at_ms: u64,
    /// `None` while open.
    pub resolved_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PurchaseOrderStatus {
    Suggested,
    Ordered,
    Received,
    Cancelled,
}

impl PurchaseOrderStatus {
    pub fn name(self) -> &'static str {
        match self {
            PurchaseOrderStatus::Suggested => "SUGGESTED",
            PurchaseOrderStatus::Ordered => "ORDERED",
            PurchaseOrderStatus::Received => "RECEIVED",
            PurchaseOrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn is_open(self) -> bool {
        matches!(
            self,
            PurchaseOrderStatus::Suggested | PurchaseOrderStatus::Ordered
        )
    }

    /// SUGGESTED → ORDERED → RECEIVED, and either open state → CANCELLED. (A suggestion may be
    /// received directly: the goods arrived without the ORDERED step being recorded.)
    pub fn may_become(self, next: PurchaseOrderStatus) -> bool {
        use PurchaseOrderStatus::*;
        matches!(
            (self, next),
            (Suggested, Ordered) | (Suggested | Ordered, Received | Cancelled)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseOrder {
    pub purchase_order_id: String,
    pub sku: String,
    pub quantity: u32,
    pub status: PurchaseOrderStatus,
    pub alert_id: String,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// Alert and purchase-order ids name their SKU, so an update finds the SKU's shard from the id
/// alone: `{sku}/A{n}` and `{sku}/PO{n}`, `n` counting the SKU's alert openings from 1.
pub fn alert_id(sku: &str, n: u32) -> String {
    format!("{sku}/A{n}")
}

pub fn purchase_order_id(sku: &str, n: u32) -> String {
    format!("{sku}/PO{n}")
}

/// The SKU a purchase-order id belongs to, if the id has the engine's shape.
pub fn purchase_order_sku(id: &str) -> Option<&str> {
    let (sku, n) = id.rsplit_once("/PO")?;
    (!sku.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(sku)
}

/// When alerts open and resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    /// Hysteresis: an alert resolves once `available ≥ reorder_level + margin`, the margin being
    /// this share of the level (basis points), at least 1 unit — so holds and releases around
    /// the level do not make alerts flap.
    pub hysteresis_bps: u32,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            hysteresis_bps: 1000,
        }
    }
}

impl AlertPolicy {
    /// The available count at or above which a SKU's open alerts resolve.
    pub fn resolve_at(&self, reorder_level: u32) -> u64 {
        let level = u64::from(reorder_level);
        let margin = (level * u64::from(self.hysteresis_bps))
            .div_ceil(10_000)
            .max(1);
        level + margin
    }

    /// What to buy: the product's usual reorder quantity, or enough to resolve the alert if
    /// that is more.
    pub fn suggested_quantity(
        &self,
        reorder_level: u32,
        reorder_quantity: u32,
        available: u64,
    ) -> u32 {
        let to_resolve = self.resolve_at(reorder_level).saturating_sub(available);
        let to_resolve = u32::try_from(to_resolve).unwrap_or(u32::MAX);
        reorder_quantity
            .max(to_resolve)
            .min(crate::limits::QUANTITY_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_sku() {
        assert_eq!(
            purchase_order_sku(&purchase_order_id("MUG/PO-1", 12)),
            Some("MUG/PO-1")
        );
        assert_eq!(purchase_order_sku("MUG/PO"), None);
        assert_eq!(purchase_order_sku("MUG/POx1"), None);
        assert_eq!(purchase_order_sku("/PO1"), None);
    }

    #[test]
    fn hysteresis_margin() {
        let p = AlertPolicy::default();
        assert_eq!(p.resolve_at(0), 1);
        assert_eq!(p.resolve_at(5), 6, "10 % of 5 rounds up to 1");
        assert_eq!(p.resolve_at(10), 11);
        assert_eq!(p.resolve_at(25), 28);
        assert_eq!(p.suggested_quantity(10, 20, 3), 20);
        assert_eq!(p.suggested_quantity(10, 0, 3), 8);
    }
}
