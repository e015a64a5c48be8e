//! `Orders.WatchOrder`: one order's current state, then every change to it as it becomes
//! durable, read off the change feed (the WAL) with the reader shared with `WatchEvents`
//! ([`crate::watch::follow`]).
//!
//! The stream never asks the engine for the order again: it folds the feed's events into the
//! state it started from ([`engine::Order::fold`], the function the engine applies order events
//! with), so what it sends is exactly the sequence of durable states, one message per WAL record
//! that changed the order. It starts reading at the LSN after the order's last change: every
//! later record is either still in the WAL or, if the WAL no longer retains it, was not about
//! the order (its last change is older), so starting at the oldest retained record instead
//! loses nothing.

use std::sync::Arc;

use engine::{Engine, OrderStatus};
use proto::inventory::v1 as pb;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tonic::Status;

use crate::convert::{self, status};
use crate::limits;
use crate::watch::{Flow, follow};

/// After these the order can change no more: its stream ends.
fn is_final(s: OrderStatus) -> bool {
    matches!(s, OrderStatus::Cancelled | OrderStatus::Returned)
}

/// Opens a watch: the order as of its last change, once that change is durable (NOT_FOUND for
/// an unknown order, before any message), and a receiver of the stream's messages.
pub async fn start(
    engine: Arc<Engine>,
    order_id: &str,
) -> Result<mpsc::Receiver<Result<pb::Order, Status>>, Status> {
    let wal = engine.wal().ok_or_else(|| {
        Status::unavailable("WatchOrder needs the change feed, i.e. the WAL, which is off")
    })?;
    let (order, lsn) = engine.get_order_at(order_id).map_err(status)?;
    // The current state is shown only once durable, like every reply.
    engine.wait_durable_async(lsn).await.map_err(status)?;
    let from_lsn = (lsn + 1).max(wal.oldest_lsn());
    let (tx, rx) = mpsc::channel(limits::WATCH_ORDER_BUFFER);
    // The buffer is empty: the first message always fits.
    let _ = tx.try_send(Ok(convert::order(order.clone())));
    if !is_final(order.status) {
        tokio::spawn(feed(engine, order, from_lsn, tx));
    }
    Ok(rx)
}

async fn feed(
    engine: Arc<Engine>,
    mut order: engine::Order,
    from_lsn: u64,
    tx: mpsc::Sender<Result<pb::Order, Status>>,
) {
    let order_id = order.order_id.clone();
    follow(&engine, from_lsn, &tx, |lsn, record| {
        let mut changed = false;
        for event in &record.events {
            changed |= order.fold(event, record.at_ms);
        }
        if !changed {
            return Flow::More;
        }
        match tx.try_send(Ok(convert::order(order.clone()))) {
            Ok(()) if is_final(order.status) => Flow::End,
            Ok(()) => Flow::More,
            Err(TrySendError::Closed(_)) => Flow::End,
            Err(TrySendError::Full(_)) => Flow::Fail(Status::resource_exhausted(format!(
                "WatchOrder {order_id}: client too slow for the server's buffer of {} states \
                 (at LSN {lsn}); call WatchOrder again for the current state",
                limits::WATCH_ORDER_BUFFER
            ))),
        }
    })
    .await;
}
