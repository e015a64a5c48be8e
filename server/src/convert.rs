//! Between the engine's types and the wire's: requests → [`Op`], results → messages, and
//! [`EngineError`] → [`Status`] — the one place where engine errors get their gRPC code.

use engine::{EngineError, Op};
use prost_types::Timestamp;
use proto::inventory::v1 as pb;
use tonic::{Code, Status};

/// The one mapping of engine errors to gRPC status codes (API.md's error table).
pub fn status(err: EngineError) -> Status {
    match err {
        EngineError::InvalidArgument(m) => Status::invalid_argument(m),
        EngineError::NotFound(m) => Status::not_found(m),
        EngineError::FailedPrecondition(m) => Status::failed_precondition(m),
        EngineError::AlreadyExists(m) => Status::already_exists(m),
        EngineError::ResourceExhausted(m) => Status::resource_exhausted(m),
        EngineError::Unavailable(m) => Status::unavailable(m),
        e @ EngineError::Internal(_) => Status::internal(e.to_string()),
    }
}

pub fn batch_error(status: &Status) -> pb::BatchError {
    pb::BatchError {
        code: status.code() as i32,
        message: status.message().to_string(),
    }
}

pub fn batch_error_of(code: Code, message: impl Into<String>) -> pb::BatchResult {
    pb::BatchResult {
        result: Some(pb::batch_result::Result::Error(pb::BatchError {
            code: code as i32,
            message: message.into(),
        })),
    }
}

/// Milliseconds since the epoch → `google.protobuf.Timestamp`; 0 → unset.
pub fn timestamp(ms: u64) -> Option<Timestamp> {
    (ms > 0).then(|| Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    })
}

fn q(x: u64) -> u32 {
    // The engine keeps every figure within u32 (engine::limits::ON_HAND_MAX).
    u32::try_from(x).unwrap_or(u32::MAX)
}

pub fn stock_status(s: engine::StockStatus) -> pb::StockStatus {
    match s {
        engine::StockStatus::InStock => pb::StockStatus::InStock,
        engine::StockStatus::LowStock => pb::StockStatus::LowStock,
        engine::StockStatus::OutOfStock => pb::StockStatus::OutOfStock,
    }
}

pub fn stock(s: engine::StockLevel) -> pb::StockLevel {
    pb::StockLevel {
        status: stock_status(s.status) as i32,
        sku: s.sku,
        on_hand: q(s.on_hand),
        reserved: q(s.reserved),
        available: q(s.available),
        reorder_level: s.reorder_level,
    }
}

pub fn product(p: engine::Product) -> pb::Product {
    pb::Product {
        sku: p.sku,
        name: p.name,
        unit_price_cents: p.unit_price_cents,
        reorder_level: p.reorder_level,
        reorder_quantity: p.reorder_quantity,
        stock: Some(stock(p.stock)),
    }
}

pub fn reservation_state(s: engine::ReservationState) -> pb::ReservationState {
    match s {
        engine::ReservationState::Active => pb::ReservationState::Active,
        engine::ReservationState::Committed => pb::ReservationState::Committed,
        engine::ReservationState::Released => pb::ReservationState::Released,
        engine::ReservationState::Expired => pb::ReservationState::Expired,
    }
}

fn lines_out(lines: Vec<engine::Line>) -> Vec<pb::Line> {
    lines
        .into_iter()
        .map(|l| pb::Line {
            sku: l.sku,
            quantity: l.quantity,
        })
        .collect()
}

fn lines_in(lines: Vec<pb::Line>) -> Vec<engine::Line> {
    lines
        .into_iter()
        .map(|l| engine::Line::new(l.sku, l.quantity))
        .collect()
}

pub fn reservation(r: engine::Reservation) -> pb::Reservation {
    pb::Reservation {
        reservation_id: r.reservation_id,
        state: reservation_state(r.state) as i32,
        lines: lines_out(r.lines),
        committed_lines: lines_out(r.committed_lines),
        created_at: timestamp(r.created_at_ms),
        expires_at: timestamp(r.expires_at_ms),
    }
}

pub fn upsert_op(r: pb::UpsertProductRequest) -> Op {
    Op::UpsertProduct {
        sku: r.sku,
        name: r.name,
        unit_price_cents: r.unit_price_cents,
        reorder_level: r.reorder_level,
        reorder_quantity: r.reorder_quantity,
    }
}

pub fn receive_op(r: pb::ReceiveStockRequest) -> Op {
    Op::Receive {
        receipt_id: r.receipt_id,
        sku: r.sku,
        quantity: r.quantity,
    }
}

pub fn adjust_op(r: pb::AdjustStockRequest) -> Op {
    Op::Adjust {
        adjustment_id: r.adjustment_id,
        sku: r.sku,
        on_hand: r.on_hand,
        reason: r.reason,
    }
}

pub fn reserve_op(r: pb::ReserveRequest) -> Op {
    Op::Reserve {
        reservation_id: r.reservation_id,
        lines: lines_in(r.lines),
        ttl_seconds: r.ttl_seconds,
    }
}

pub fn commit_op(r: pb::CommitRequest) -> Op {
    Op::Commit {
        reservation_id: r.reservation_id,
        lines: lines_in(r.lines),
    }
}

pub fn release_op(r: pb::ReleaseRequest) -> Op {
    Op::Release {
        reservation_id: r.reservation_id,
    }
}

/// An op's output as a batch result.
pub fn batch_ok(out: engine::OpOutput) -> pb::BatchResult {
    use pb::batch_result::Result as R;
    let result = match out {
        engine::OpOutput::Product(p) => R::Product(product(p)),
        engine::OpOutput::Stock(s) => R::Stock(stock(s)),
        engine::OpOutput::Reservation(r) => R::Reservation(reservation(r)),
    };
    pb::BatchResult {
        result: Some(result),
    }
}

/// The name of a batch op's kind, as the role matrix spells it.
pub fn batch_op_kind(op: &pb::batch_op::Op) -> &'static str {
    use pb::batch_op::Op as O;
    match op {
        O::UpsertProduct(_) => "upsert_product",
        O::Receive(_) => "receive",
        O::Adjust(_) => "adjust",
        O::Reserve(_) => "reserve",
        O::Commit(_) => "commit",
        O::Release(_) => "release",
        O::CreateOrder(_) => "create_order",
        O::ConfirmPayment(_) => "confirm_payment",
    }
}

/// Lines a batch op carries (for the batch's line limit).
pub fn batch_op_lines(op: &pb::batch_op::Op) -> usize {
    use pb::batch_op::Op as O;
    match op {
        O::Reserve(r) => r.lines.len(),
        O::Commit(r) => r.lines.len(),
        O::CreateOrder(r) => r.lines.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_error_has_its_code() {
        let cases = [
            (
                EngineError::InvalidArgument("a".into()),
                Code::InvalidArgument,
            ),
            (EngineError::NotFound("a".into()), Code::NotFound),
            (
                EngineError::FailedPrecondition("a".into()),
                Code::FailedPrecondition,
            ),
            (EngineError::AlreadyExists("a".into()), Code::AlreadyExists),
            (
                EngineError::ResourceExhausted("a".into()),
                Code::ResourceExhausted,
            ),
            (EngineError::Unavailable("a".into()), Code::Unavailable),
            (EngineError::Internal("a".into()), Code::Internal),
        ];
        for (err, code) in cases {
            assert_eq!(status(err).code(), code);
        }
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        assert_eq!(timestamp(0), None);
        let t = timestamp(1_700_000_000_123).unwrap();
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
    }
}
