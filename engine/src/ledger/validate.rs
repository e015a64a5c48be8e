//! Shape checks and normalisation of requests, before any lock is taken. A request that fails
//! here is malformed (`InvalidArgument`, naming the field) and observed nothing.

use std::collections::BTreeSet;

use crate::error::{Result, invalid};
use crate::limits;
use crate::model::{Line, Op};

/// A client id: 1..=ID_BYTES_MAX bytes, no control characters (NUL-prefixed keys are reserved
/// for the engine's own id spaces).
pub fn id(field: &str, value: &str) -> Result<()> {
    key(field, value, limits::ID_BYTES_MAX)
}

/// A SKU: 1..=SKU_BYTES_MAX bytes of UTF-8, no control characters.
pub fn sku(field: &str, value: &str) -> Result<()> {
    key(field, value, limits::SKU_BYTES_MAX)
}

fn key(field: &str, value: &str, bytes_max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if value.len() > bytes_max {
        return Err(invalid(format!(
            "{field} is {} bytes, at most {bytes_max} allowed",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

pub fn quantity(field: &str, value: u32) -> Result<()> {
    if value == 0 {
        return Err(invalid(format!("{field} must be greater than 0")));
    }
    if value > limits::QUANTITY_MAX {
        return Err(invalid(format!(
            "{field} {value} exceeds the maximum {}",
            limits::QUANTITY_MAX
        )));
    }
    Ok(())
}

pub fn text(field: &str, value: &str, bytes_max: usize) -> Result<()> {
    if value.len() > bytes_max {
        return Err(invalid(format!(
            "{field} is {} bytes, at most {bytes_max} allowed",
            value.len()
        )));
    }
    Ok(())
}

/// Lines: 1..=LINES_PER_OP_MAX (0 allowed when `may_be_empty`), valid SKUs and quantities, each
/// SKU once. Returns them sorted by SKU (payloads compare as sets).
pub fn lines(lines: &[Line], may_be_empty: bool) -> Result<Vec<Line>> {
    if lines.is_empty() && !may_be_empty {
        return Err(invalid("lines must not be empty"));
    }
    if lines.len() > limits::LINES_PER_OP_MAX {
        return Err(invalid(format!(
            "lines has {} entries, at most {} allowed",
            lines.len(),
            limits::LINES_PER_OP_MAX
        )));
    }
    let mut seen = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        sku(&format!("lines[{i}].sku"), &line.sku)?;
        quantity(&format!("lines[{i}].quantity"), line.quantity)?;
        if !seen.insert(line.sku.as_str()) {
            return Err(invalid(format!(
                "lines[{i}].sku {} appears more than once",
                line.sku
            )));
        }
    }
    let mut sorted = lines.to_vec();
    sorted.sort();
    Ok(sorted)
}

pub fn ttl_seconds(value: u32, default: u32) -> Result<u32> {
    if value > limits::TTL_SECONDS_MAX {
        return Err(invalid(format!(
            "ttl_seconds {value} exceeds the maximum {} (7 days)",
            limits::TTL_SECONDS_MAX
        )));
    }
    Ok(if value == 0 { default } else { value })
}

/// Checks an op and returns its normal form.
pub fn op(op: Op, ttl_default_seconds: u32) -> Result<Op> {
    Ok(match op {
        Op::UpsertProduct {
            sku: s,
            name,
            unit_price_cents,
            reorder_level,
            reorder_quantity,
        } => {
            sku("sku", &s)?;
            if name.trim().is_empty() {
                return Err(invalid("name must not be empty"));
            }
            text("name", &name, limits::NAME_BYTES_MAX)?;
            if !(0..=limits::UNIT_PRICE_CENTS_MAX).contains(&unit_price_cents) {
                return Err(invalid(format!(
                    "unit_price_cents {unit_price_cents} must be between 0 and {}",
                    limits::UNIT_PRICE_CENTS_MAX
                )));
            }
            if reorder_level > limits::QUANTITY_MAX || reorder_quantity > limits::QUANTITY_MAX {
                return Err(invalid(
                    "reorder_level and reorder_quantity must not exceed the quantity maximum",
                ));
            }
            Op::UpsertProduct {
                sku: s,
                name,
                unit_price_cents,
                reorder_level,
                reorder_quantity,
            }
        }
        Op::Receive {
            receipt_id,
            sku: s,
            quantity: q,
        } => {
            id("receipt_id", &receipt_id)?;
            sku("sku", &s)?;
            quantity("quantity", q)?;
            Op::Receive {
                receipt_id,
                sku: s,
                quantity: q,
            }
        }
        Op::Adjust {
            adjustment_id,
            sku: s,
            on_hand,
            reason,
        } => {
            id("adjustment_id", &adjustment_id)?;
            sku("sku", &s)?;
            if on_hand > limits::QUANTITY_MAX {
                return Err(invalid(format!(
                    "on_hand {on_hand} exceeds the maximum {}",
                    limits::QUANTITY_MAX
                )));
            }
            text("reason", &reason, limits::REASON_BYTES_MAX)?;
            Op::Adjust {
                adjustment_id,
                sku: s,
                on_hand,
                reason,
            }
        }
        Op::Reserve {
            reservation_id,
            lines: l,
            ttl_seconds: ttl,
        } => {
            id("reservation_id", &reservation_id)?;
            Op::Reserve {
                reservation_id,
                lines: lines(&l, false)?,
                ttl_seconds: ttl_seconds(ttl, ttl_default_seconds)?,
            }
        }
        Op::Commit {
            reservation_id,
            lines: l,
        } => {
            id("reservation_id", &reservation_id)?;
            Op::Commit {
                reservation_id,
                lines: lines(&l, true)?,
            }
        }
        Op::Release { reservation_id } => {
            id("reservation_id", &reservation_id)?;
            Op::Release { reservation_id }
        }
    })
}
