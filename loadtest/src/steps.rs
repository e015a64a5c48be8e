//! What each step of the schedule sends to the engine, and what its answers tell the check.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use proto::inventory::v1 as pb;
use tonic::{Code, Status};

use crate::config::Unit;
use crate::engine::{Engine, lines};
use crate::expect::Expected;
use crate::limits;
use crate::names::Names;
use crate::plan::{Payment, Step};
use crate::stats::{Outcome, code_name, outcome_unknown};

/// A user's hold, as its begin step left it (one byte per user: 500k users are 500 kB).
const PENDING: u8 = 0;
const HELD: u8 = 1;
const REFUSED: u8 = 2;
const UNKNOWN: u8 = 3;

/// Everything the request tasks share.
pub struct Ctx {
    pub engine: Engine,
    pub names: Names,
    pub expect: Expected,
    pub unit: Unit,
    pub users: Vec<AtomicU8>,
    pub user_ttl_seconds: u32,
    /// How long a user's end step waits for its begin step's answer.
    pub hold_wait: Duration,
    /// The latest payment deadline of the orders left unpaid on purpose.
    pub last_deadline: Mutex<Option<Instant>>,
}

type Lines<'a> = &'a [(usize, u32)];

impl Ctx {
    /// The code name of a failure; its units become uncertain if it may have taken effect.
    fn failure(&self, s: &Status, lines: Lines) -> &'static str {
        self.failure_code(s.code(), lines)
    }

    fn failure_code(&self, code: Code, lines: Lines) -> &'static str {
        if outcome_unknown(code) {
            for &(sku, q) in lines {
                self.expect.uncertain(sku, q);
            }
        }
        code_name(code)
    }

    fn each(&self, lines: Lines, f: impl Fn(&Expected, usize, u32)) {
        for &(sku, q) in lines {
            f(&self.expect, sku, q);
        }
    }
}

pub async fn execute(ctx: &Ctx, step: Step) -> Outcome {
    match step {
        Step::Units { first, skus } if skus.len() == 1 => match ctx.unit {
            Unit::Hold => hold(ctx, first, skus[0]).await,
            Unit::Order => {
                let line = [(skus[0], 1)];
                match place(ctx, first, &line, 0).await {
                    Ok(order) => match pay(ctx, first, &order, &line).await {
                        Ok(_) => Outcome::ok(1),
                        Err(code) => Outcome::failed(code),
                    },
                    Err(code) => Outcome::failed(code),
                }
            }
        },
        Step::Units { first, skus } => match ctx.unit {
            Unit::Hold => hold_batch(ctx, first, &skus).await,
            Unit::Order => order_batch(ctx, first, &skus).await,
        },
        Step::UserBegin { user, sku } => user_begin(ctx, user, sku).await,
        Step::UserEnd { user, sku, commit } => user_end(ctx, user, sku, commit).await,
        Step::Checkout {
            order,
            customer,
            lines,
            payment,
            returned,
        } => checkout(ctx, order, customer, &lines, payment, returned).await,
    }
}

fn reserve_request(ctx: &Ctx, id: String, sku: usize, ttl_seconds: u32) -> pb::ReserveRequest {
    pb::ReserveRequest {
        reservation_id: id,
        lines: lines(&ctx.names, &[(sku, 1)]),
        ttl_seconds,
    }
}

/// One durable hold of one unit (default ttl: it stays live through the check).
async fn hold(ctx: &Ctx, id: u64, sku: usize) -> Outcome {
    let msg = reserve_request(ctx, ctx.names.hold(id), sku, 0);
    match ctx.engine.inventory(id).reserve(ctx.engine.req(msg)).await {
        Ok(_) => {
            ctx.expect.held(sku, 1);
            Outcome::ok(1)
        }
        Err(s) => Outcome::failed(ctx.failure(&s, &[(sku, 1)])),
    }
}

fn create_request(
    ctx: &Ctx,
    id: u64,
    customer: usize,
    lines_: Lines,
    payment_timeout_seconds: u32,
) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        order_id: ctx.names.order(id),
        customer_id: ctx.names.customer(customer),
        lines: lines(&ctx.names, lines_),
        shipping_address: format!("{id} Load Street"),
        payment_timeout_seconds,
    }
}

fn confirm_request(ctx: &Ctx, id: u64, order: &pb::Order) -> pb::ConfirmPaymentRequest {
    pb::ConfirmPaymentRequest {
        order_id: order.order_id.clone(),
        payment_id: ctx.names.payment(id),
        amount_cents: order.total_cents,
    }
}

/// CreateOrder: a PENDING order holds its lines (unless `payment_timeout_seconds` is set: those
/// orders are left to time out, and the check runs after their deadline).
async fn place(
    ctx: &Ctx,
    id: u64,
    lines: Lines<'_>,
    payment_timeout_seconds: u32,
) -> Result<pb::Order, &'static str> {
    let customer = (id % limits::CUSTOMERS as u64) as usize;
    place_for(ctx, id, customer, lines, payment_timeout_seconds).await
}

async fn place_for(
    ctx: &Ctx,
    id: u64,
    customer: usize,
    lines: Lines<'_>,
    payment_timeout_seconds: u32,
) -> Result<pb::Order, &'static str> {
    let msg = create_request(ctx, id, customer, lines, payment_timeout_seconds);
    match ctx
        .engine
        .orders(id)
        .create_order(ctx.engine.req(msg))
        .await
    {
        Ok(order) => {
            if payment_timeout_seconds == 0 {
                ctx.each(lines, Expected::held);
            }
            Ok(order.into_inner())
        }
        Err(s) => Err(ctx.failure(&s, lines)),
    }
}

/// ConfirmPayment with the total the server computed: the hold becomes a sale.
async fn pay(
    ctx: &Ctx,
    id: u64,
    order: &pb::Order,
    lines: Lines<'_>,
) -> Result<pb::Order, &'static str> {
    let msg = confirm_request(ctx, id, order);
    match ctx
        .engine
        .orders(id)
        .confirm_payment(ctx.engine.req(msg))
        .await
    {
        Ok(order) => {
            ctx.each(lines, Expected::committed);
            Ok(order.into_inner())
        }
        Err(s) => Err(ctx.failure(&s, lines)),
    }
}

/// Runs one ExecuteBatch; a whole-request failure fails every unit.
async fn batch(
    ctx: &Ctx,
    first: u64,
    ops: Vec<pb::batch_op::Op>,
) -> Result<Vec<pb::batch_result::Result>, Status> {
    let ops = ops
        .into_iter()
        .map(|op| pb::BatchOp { op: Some(op) })
        .collect();
    let reply = ctx
        .engine
        .inventory(first)
        .execute_batch(ctx.engine.req(pb::ExecuteBatchRequest { ops }))
        .await?;
    Ok(reply
        .into_inner()
        .results
        .into_iter()
        .map(|r| {
            r.result
                .unwrap_or(pb::batch_result::Result::Error(pb::BatchError {
                    code: Code::Internal as i32,
                    message: "empty result".into(),
                }))
        })
        .collect())
}

fn whole_batch_failed(ctx: &Ctx, s: &Status, skus: &[usize]) -> Outcome {
    let failed = skus
        .iter()
        .map(|&sku| ctx.failure(s, &[(sku, 1)]))
        .collect();
    Outcome { ok: 0, failed }
}

async fn hold_batch(ctx: &Ctx, first: u64, skus: &[usize]) -> Outcome {
    use pb::batch_op::Op;
    let ops = (0..skus.len())
        .map(|k| {
            let id = first + k as u64;
            Op::Reserve(reserve_request(ctx, ctx.names.hold(id), skus[k], 0))
        })
        .collect();
    let results = match batch(ctx, first, ops).await {
        Ok(r) => r,
        Err(s) => return whole_batch_failed(ctx, &s, skus),
    };
    let mut out = Outcome::default();
    for (sku, result) in skus.iter().zip(results) {
        match result {
            pb::batch_result::Result::Error(e) => {
                out.failed
                    .push(ctx.failure_code(Code::from_i32(e.code), &[(*sku, 1)]));
            }
            _ => {
                ctx.expect.held(*sku, 1);
                out.ok += 1;
            }
        }
    }
    out
}

/// A storefront gateway's order placement: one ExecuteBatch of creates, then one of payments
/// with the totals the creates returned.
async fn order_batch(ctx: &Ctx, first: u64, skus: &[usize]) -> Outcome {
    use pb::batch_op::Op;
    let creates = (0..skus.len())
        .map(|k| {
            let id = first + k as u64;
            let customer = (id % limits::CUSTOMERS as u64) as usize;
            Op::CreateOrder(create_request(ctx, id, customer, &[(skus[k], 1)], 0))
        })
        .collect();
    let results = match batch(ctx, first, creates).await {
        Ok(r) => r,
        Err(s) => return whole_batch_failed(ctx, &s, skus),
    };
    let mut out = Outcome::default();
    let mut created = Vec::new();
    for (k, result) in results.into_iter().enumerate() {
        match result {
            pb::batch_result::Result::Order(order) => {
                ctx.expect.held(skus[k], 1);
                created.push((k, order));
            }
            pb::batch_result::Result::Error(e) => out
                .failed
                .push(ctx.failure_code(Code::from_i32(e.code), &[(skus[k], 1)])),
            _ => out.failed.push(code_name(Code::Internal)),
        }
    }
    if created.is_empty() {
        return out;
    }
    let payments = created
        .iter()
        .map(|(k, order)| Op::ConfirmPayment(confirm_request(ctx, first + *k as u64, order)))
        .collect();
    let paid_skus: Vec<usize> = created.iter().map(|(k, _)| skus[*k]).collect();
    let results = match batch(ctx, first, payments).await {
        Ok(r) => r,
        Err(s) => {
            let failed = whole_batch_failed(ctx, &s, &paid_skus);
            out.failed.extend(failed.failed);
            return out;
        }
    };
    for (sku, result) in paid_skus.iter().zip(results) {
        match result {
            pb::batch_result::Result::Order(_) => {
                ctx.expect.committed(*sku, 1);
                out.ok += 1;
            }
            pb::batch_result::Result::Error(e) => out
                .failed
                .push(ctx.failure_code(Code::from_i32(e.code), &[(*sku, 1)])),
            _ => out.failed.push(code_name(Code::Internal)),
        }
    }
    out
}

async fn user_begin(ctx: &Ctx, user: u64, sku: usize) -> Outcome {
    let msg = reserve_request(ctx, ctx.names.user_hold(user), sku, ctx.user_ttl_seconds);
    let state = &ctx.users[user as usize];
    match ctx
        .engine
        .inventory(user)
        .reserve(ctx.engine.req(msg))
        .await
    {
        Ok(_) => {
            ctx.expect.held(sku, 1);
            state.store(HELD, Ordering::Release);
            Outcome::ok(1)
        }
        Err(s) => {
            let unknown = outcome_unknown(s.code());
            state.store(if unknown { UNKNOWN } else { REFUSED }, Ordering::Release);
            Outcome::failed(ctx.failure(&s, &[(sku, 1)]))
        }
    }
}

async fn user_end(ctx: &Ctx, user: u64, sku: usize, commit: bool) -> Outcome {
    let state = &ctx.users[user as usize];
    // The begin step is normally answered a think time ago; if it is late, wait for it (a
    // bounded number of short polls).
    let polls = ctx.hold_wait.as_millis() as u64 / limits::HOLD_POLL_MILLIS;
    for _ in 0..polls {
        if state.load(Ordering::Acquire) != PENDING {
            break;
        }
        tokio::time::sleep(Duration::from_millis(limits::HOLD_POLL_MILLIS)).await;
    }
    let id = ctx.names.user_hold(user);
    let mut inv = ctx.engine.inventory(user);
    match state.load(Ordering::Acquire) {
        HELD if commit => {
            let msg = pb::CommitRequest {
                reservation_id: id,
                lines: Vec::new(),
            };
            match inv.commit(ctx.engine.req(msg)).await {
                Ok(_) => {
                    ctx.expect.committed(sku, 1);
                    Outcome::ok(1)
                }
                Err(s) => Outcome::failed(ctx.failure(&s, &[(sku, 1)])),
            }
        }
        HELD => match release(ctx, &mut inv, id).await {
            Ok(()) => {
                ctx.expect.unheld(sku, 1);
                Outcome::ok(1)
            }
            Err(s) => Outcome::failed(ctx.failure(&s, &[(sku, 1)])),
        },
        // The hold may or may not exist: release it either way (its units are already
        // uncertain), so that nothing of this user outlives the run.
        UNKNOWN => match release(ctx, &mut inv, id).await {
            Ok(()) => Outcome::ok(1),
            Err(s) => Outcome::failed(code_name(s.code())),
        },
        _ => Outcome::default(),
    }
}

async fn release(
    ctx: &Ctx,
    inv: &mut pb::inventory_client::InventoryClient<tonic::transport::Channel>,
    id: String,
) -> Result<(), Status> {
    let msg = pb::ReleaseRequest { reservation_id: id };
    inv.release(ctx.engine.req(msg)).await.map(|_| ())
}

/// The order flow; latency is the whole flow's.
async fn checkout(
    ctx: &Ctx,
    id: u64,
    customer: usize,
    lines: Lines<'_>,
    payment: Payment,
    returned: bool,
) -> Outcome {
    let timeout = match payment {
        Payment::TimeOut => limits::PAYMENT_TIMEOUT_SECONDS,
        _ => 0,
    };
    let order = match place_for(ctx, id, customer, lines, timeout).await {
        Ok(o) => o,
        Err(code) => return Outcome::failed(code),
    };
    let mut orders = ctx.engine.orders(id);
    let order_id = order.order_id.clone();
    let result = match payment {
        Payment::TimeOut => {
            let deadline = Instant::now() + Duration::from_secs(u64::from(timeout));
            let mut last = ctx.last_deadline.lock().unwrap_or_else(|e| e.into_inner());
            *last = Some(last.map_or(deadline, |d| d.max(deadline)));
            Ok(())
        }
        Payment::Fail => {
            let msg = pb::FailPaymentRequest {
                order_id,
                payment_id: ctx.names.payment(id),
                reason: "card declined (load test)".into(),
            };
            match orders.fail_payment(ctx.engine.req(msg)).await {
                Ok(_) => {
                    ctx.each(lines, Expected::unheld);
                    Ok(())
                }
                Err(s) => Err(ctx.failure(&s, lines)),
            }
        }
        Payment::Pay => match pay(ctx, id, &order, lines).await {
            Ok(paid) => fulfil(ctx, &mut orders, id, &paid, lines, returned).await,
            Err(code) => Err(code),
        },
    };
    match result {
        Ok(()) => Outcome::ok(1),
        Err(code) => Outcome::failed(code),
    }
}

/// Ship, deliver, and for some orders a full return, approved and restocked.
async fn fulfil(
    ctx: &Ctx,
    orders: &mut pb::orders_client::OrdersClient<tonic::transport::Channel>,
    id: u64,
    order: &pb::Order,
    lines_: Lines<'_>,
    returned: bool,
) -> Result<(), &'static str> {
    let code = |s: Status| code_name(s.code());
    let e = &ctx.engine;
    let order_id = order.order_id.clone();
    orders
        .ship_order(e.req(pb::ShipOrderRequest {
            order_id: order_id.clone(),
            carrier: "LoadPost".into(),
            tracking_number: format!("LT{id}"),
        }))
        .await
        .map_err(code)?;
    orders
        .deliver_order(e.req(pb::DeliverOrderRequest {
            order_id: order_id.clone(),
        }))
        .await
        .map_err(code)?;
    if !returned {
        return Ok(());
    }
    let return_id = ctx.names.return_id(id);
    orders
        .request_return(e.req(pb::RequestReturnRequest {
            return_id: return_id.clone(),
            order_id,
            lines: lines(&ctx.names, lines_),
            reason: "changed my mind (load test)".into(),
        }))
        .await
        .map_err(code)?;
    match orders
        .approve_return(e.req(pb::ApproveReturnRequest {
            return_id,
            refund_cents: order.total_cents,
            restock: true,
        }))
        .await
    {
        Ok(_) => {
            ctx.each(lines_, Expected::restocked);
            Ok(())
        }
        Err(s) => Err(ctx.failure(&s, lines_)),
    }
}
