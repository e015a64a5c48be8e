//! Shape checks and normalisation of requests, before any lock is taken. A request that fails
//! here is malformed (`InvalidArgument`, naming the field) and observed nothing.

use std::fmt::Display;
use std::sync::Arc;

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

/// `field` is only formatted when the check fails (a line's field name is built per line).
fn key(field: impl Display, value: &str, bytes_max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if value.len() > bytes_max {
        return Err(invalid(format!(
            "{field} is {} bytes, at most {bytes_max} allowed",
            value.len()
        )));
    }
    if has_control(value) {
        return Err(invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// Whether `value` has a control character (Unicode Cc: U+0000–U+001F, U+007F–U+009F). Keys
/// are mostly ASCII: bytes are checked directly, and only a string with a non-ASCII byte is
/// decoded.
fn has_control(value: &str) -> bool {
    for &byte in value.as_bytes() {
        if byte >= 0x80 {
            return value.chars().any(char::is_control);
        }
        if byte < 0x20 || byte == 0x7f {
            return true;
        }
    }
    false
}

pub fn quantity(field: impl Display, value: u32) -> Result<()> {
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

/// `lines[i].field`, formatted only for an error message.
struct LineField(usize, &'static str);

impl Display for LineField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lines[{}].{}", self.0, self.1)
    }
}

/// Lines: 1..=LINES_PER_OP_MAX (0 allowed when `may_be_empty`), valid SKUs and quantities, each
/// SKU once. Sorts them by SKU in place (the normal form: payloads compare as sets).
pub fn lines(lines: &mut [Line], may_be_empty: bool) -> Result<()> {
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
    for (i, line) in lines.iter().enumerate() {
        key(LineField(i, "sku"), &line.sku, limits::SKU_BYTES_MAX)?;
        quantity(LineField(i, "quantity"), line.quantity)?;
        // Quadratic, but over at most LINES_PER_OP_MAX lines and with no allocation: most ops
        // have one to three lines.
        if lines[..i].iter().any(|seen| seen.sku == line.sku) {
            return Err(invalid(format!(
                "lines[{i}].sku {} appears more than once",
                line.sku
            )));
        }
    }
    lines.sort_unstable();
    Ok(())
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
pub fn op(
    mut op: Op,
    ttl_default_seconds: u32,
    payment_timeout_default_seconds: u32,
) -> Result<Op> {
    order_op(&mut op, payment_timeout_default_seconds)?;
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
            let mut l = l;
            // Fresh from a request the lines are not shared: normalised in place, no copy.
            lines(Arc::make_mut(&mut l), false)?;
            Op::Reserve {
                reservation_id,
                lines: l,
                ttl_seconds: ttl_seconds(ttl, ttl_default_seconds)?,
            }
        }
        Op::Commit {
            reservation_id,
            lines: l,
        } => {
            id("reservation_id", &reservation_id)?;
            let mut l = l;
            lines(&mut l, true)?;
            Op::Commit {
                reservation_id,
                lines: l,
            }
        }
        Op::Release { reservation_id } => {
            id("reservation_id", &reservation_id)?;
            Op::Release { reservation_id }
        }
        // Checked and normalised by `order_op`.
        order => order,
    })
}

/// An email address: `local@domain` with a dot in the domain, no spaces, at most
/// `EMAIL_BYTES_MAX` bytes. Deliverability is the mail server's business; this catches typos.
pub fn email(field: &str, value: &str) -> Result<()> {
    text(field, value, limits::EMAIL_BYTES_MAX)?;
    let valid = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    }) && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(invalid(format!(
            "{field} {value:?} is not an email address (local@domain.tld)"
        )));
    }
    Ok(())
}

/// A phone number in E.164: `+`, then 2 to 15 digits, the first not 0.
pub fn phone(field: &str, value: &str) -> Result<()> {
    let digits = value.strip_prefix('+').unwrap_or("");
    let valid = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if !valid {
        return Err(invalid(format!(
            "{field} {value:?} is not an E.164 phone number (e.g. +15551234567)"
        )));
    }
    Ok(())
}

/// A non-empty single-line text field.
fn required(field: &str, value: &str, bytes_max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    text(field, value, bytes_max)
}

/// Checks an order-domain op and puts it in its normal form (lines sorted, a 0 timeout made the
/// default); any other op is left alone for [`op`].
fn order_op(op: &mut Op, payment_timeout_default_seconds: u32) -> Result<()> {
    match op {
        Op::UpsertCustomer {
            customer_id,
            name,
            email: e,
            phone: p,
            address,
            notify_sms,
            ..
        } => {
            id("customer_id", customer_id)?;
            required("name", name, limits::NAME_BYTES_MAX)?;
            email("email", e)?;
            if !p.is_empty() {
                phone("phone", p)?;
            } else if *notify_sms {
                return Err(invalid("phone is required when notify_sms is set"));
            }
            text("address", address, limits::ADDRESS_BYTES_MAX)?;
        }
        Op::CreateOrder {
            order_id,
            customer_id,
            lines: l,
            shipping_address,
            payment_timeout_seconds,
        } => {
            id("order_id", order_id)?;
            id("customer_id", customer_id)?;
            lines(l, false)?;
            text(
                "shipping_address",
                shipping_address,
                limits::ADDRESS_BYTES_MAX,
            )?;
            let given = *payment_timeout_seconds;
            *payment_timeout_seconds = ttl_seconds(given, payment_timeout_default_seconds)
                .map_err(|_| {
                    invalid(format!(
                        "payment_timeout_seconds {given} exceeds the maximum {} (7 days)",
                        limits::TTL_SECONDS_MAX
                    ))
                })?;
        }
        Op::ConfirmPayment {
            order_id,
            payment_id,
            amount_cents,
        } => {
            id("order_id", order_id)?;
            id("payment_id", payment_id)?;
            if *amount_cents < 0 {
                return Err(invalid(format!(
                    "amount_cents {amount_cents} must not be negative"
                )));
            }
        }
        Op::FailPayment {
            order_id,
            payment_id,
            reason,
        } => {
            id("order_id", order_id)?;
            id("payment_id", payment_id)?;
            text("reason", reason, limits::REASON_BYTES_MAX)?;
        }
        Op::ShipOrder {
            order_id,
            carrier,
            tracking_number,
        } => {
            id("order_id", order_id)?;
            required("carrier", carrier, limits::CARRIER_BYTES_MAX)?;
            required(
                "tracking_number",
                tracking_number,
                limits::TRACKING_NUMBER_BYTES_MAX,
            )?;
        }
        Op::DeliverOrder { order_id } => id("order_id", order_id)?,
        Op::CancelOrder { order_id, reason } => {
            id("order_id", order_id)?;
            text("reason", reason, limits::REASON_BYTES_MAX)?;
        }
        Op::RequestReturn {
            return_id,
            order_id,
            lines: l,
            reason,
        } => {
            id("return_id", return_id)?;
            id("order_id", order_id)?;
            text("reason", reason, limits::REASON_BYTES_MAX)?;
            lines(l, false)?;
        }
        Op::ApproveReturn {
            return_id,
            refund_cents,
            ..
        } => {
            id("return_id", return_id)?;
            if *refund_cents < 0 {
                return Err(invalid(format!(
                    "refund_cents {refund_cents} must not be negative"
                )));
            }
        }
        Op::RejectReturn { return_id, reason } => {
            id("return_id", return_id)?;
            text("reason", reason, limits::REASON_BYTES_MAX)?;
        }
        Op::UpdatePurchaseOrder {
            purchase_order_id, ..
        } => id("purchase_order_id", purchase_order_id)?,
        Op::UpsertProduct { .. }
        | Op::Receive { .. }
        | Op::Adjust { .. }
        | Op::Reserve { .. }
        | Op::Commit { .. }
        | Op::Release { .. } => {}
    }
    Ok(())
}
