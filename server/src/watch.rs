//! `Alerts.WatchEvents`: the change feed (the WAL itself) as a gRPC stream — durable events only,
//! in LSN order, from any retained (lsn, index), then live ones as they become durable.

use std::sync::Arc;

use engine::{Engine, Record};
use proto::inventory::v1 as pb;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tonic::Status;

use crate::convert;
use crate::limits;

/// Where a stream starts, after checking the request against what the WAL retains.
pub fn start(engine: &Engine, req: &pb::WatchEventsRequest) -> Result<(u64, u32), Status> {
    let wal = engine.wal().ok_or_else(|| {
        Status::unavailable("the change feed needs the WAL (sync = off has none)")
    })?;
    let oldest = wal.oldest_lsn();
    if req.from_lsn == 0 {
        return Ok((oldest, 0));
    }
    if req.from_lsn < oldest {
        return Err(Status::out_of_range(format!(
            "from_lsn {} is no longer retained; the oldest available is {oldest}",
            req.from_lsn
        )));
    }
    Ok((req.from_lsn, req.from_index))
}

/// What a [`follow`] callback wants next.
pub enum Flow {
    /// Keep reading.
    More,
    /// End the stream normally.
    End,
    /// End the stream with this status (sent once there is room for it).
    Fail(Status),
}

/// The change-feed reader shared by `WatchEvents` and `WatchOrder`: hands `each` every durable
/// record from `from_lsn` on, in LSN order, then live ones as they become durable, until `each`
/// ends it, the client goes away (`tx` closed), or the WAL cannot be read (the client is told).
/// Never blocks writers: file reads run on blocking threads, and waiting for new records is a
/// watch on the durable watermark.
pub async fn follow<T>(
    engine: &Engine,
    from_lsn: u64,
    tx: &mpsc::Sender<Result<T, Status>>,
    mut each: impl FnMut(u64, &Record) -> Flow,
) {
    let Some(wal) = engine.wal() else { return };
    let mut durable = wal.subscribe_durable();
    let Some(mut cursor) = engine.feed(from_lsn) else {
        return;
    };
    loop {
        let read = cursor
            .next_batch_async(limits::WATCH_EVENTS_RECORDS_PER_READ)
            .await;
        let Some((returned, batch)) = read else {
            return;
        };
        cursor = returned;
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                let _ = tx.send(Err(Status::out_of_range(e.to_string()))).await;
                return;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                changed = durable.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
            }
            continue;
        }
        for (lsn, payload) in batch {
            let record = match Record::decode(&payload) {
                Ok(record) => record,
                Err(e) => {
                    let _ = tx
                        .send(Err(Status::internal(format!(
                            "WAL record {lsn} undecodable: {e}"
                        ))))
                        .await;
                    return;
                }
            };
            match each(lsn, &record) {
                Flow::More => {}
                Flow::End => return,
                Flow::Fail(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
        }
    }
}

/// Feeds `tx` with the events of the feed from `from` (an (lsn, index) checked by [`start`]),
/// filtered by `kinds`, until the client goes away, the buffer overflows, or the WAL cannot be
/// read.
pub async fn feed(
    engine: Arc<Engine>,
    from: (u64, u32),
    kinds: Vec<String>,
    tx: mpsc::Sender<Result<pb::Event, Status>>,
) {
    let mut last: Option<(u64, u32)> = None;
    follow(&engine, from.0, &tx, |lsn, record| {
        for (index, event) in record.events.iter().enumerate() {
            let index = index as u32;
            if lsn == from.0 && index < from.1 {
                continue;
            }
            if !kinds.is_empty() && !kinds.iter().any(|k| k == event.kind()) {
                continue;
            }
            let message = pb::Event {
                lsn,
                index,
                at: convert::timestamp(record.at_ms),
                kind: event.kind().to_string(),
                subject: event.subject().to_string(),
                json: event.to_json(),
            };
            match tx.try_send(Ok(message)) {
                Ok(()) => last = Some((lsn, index)),
                Err(TrySendError::Closed(_)) => return Flow::End,
                Err(TrySendError::Full(_)) => {
                    let position = match last {
                        Some((lsn, index)) => format!("lsn {lsn}, index {index}"),
                        None => "nothing yet".to_string(),
                    };
                    return Flow::Fail(Status::resource_exhausted(format!(
                        "consumer too slow for the server's buffer of {} events; last delivered: \
                         {position}; resume from the next one",
                        limits::WATCH_EVENTS_BUFFER
                    )));
                }
            }
        }
        Flow::More
    })
    .await;
}
