//! Every bound the notifier keeps, in one place (units last in the names). The `*_DEFAULT`s can
//! be changed in the `[notifier]` table of `inventoryd`'s config.

/// Delivery attempts before a message is FAILED (the dead letter); a manual retry grants this
/// many again.
pub const ATTEMPTS_MAX_DEFAULT: u32 = 8;

/// Wait before the second attempt; doubled after each failure ...
pub const BACKOFF_INITIAL_MILLIS_DEFAULT: u64 = 500;

/// ... up to this. Each wait is drawn uniformly from [wait / 2, wait] (jitter), so messages that
/// failed together do not hammer a recovering server together.
pub const BACKOFF_MAX_MILLIS_DEFAULT: u64 = 60_000;

/// WAL records read per blocking read of the change feed.
pub const FEED_RECORDS_PER_READ: usize = 512;

/// A caught-up feed reads again at most this long after its last read started. Each read
/// costs a hand-off to a blocking thread whatever it holds; read at every group commit
/// (~1,000/s under unary load) it also wrote its cursor each time, an fsync per WAL fsync on
/// the same disk. Notifications wait at most this much longer for it.
pub const FEED_INTERVAL_MILLIS: u64 = 50;

/// The feed's cursor is written to the outbox with every message, and on its own (after
/// records that derived no message) at most this often, or when the feed goes idle. A restart
/// re-reads at most this much of the WAL, and only records that derived no message: a message
/// is always saved together with a cursor past its record.
pub const FEED_CURSOR_SAVE_MILLIS: u64 = 1_000;

/// Messages one channel worker takes per round (one SMTP session, one outbox fsync of results).
pub const SEND_BATCH_MAX: usize = 64;

/// One delivery attempt (connect, exchange, reply) gives up after this.
pub const SEND_TIMEOUT_MILLIS: u64 = 10_000;

/// A channel worker with nothing due still looks at its queue this often (a safety net: it is
/// woken on every enqueue and at its earliest due retry).
pub const IDLE_POLL_MILLIS: u64 = 1_000;

/// The outbox file is compacted once it grows past this ...
pub const OUTBOX_COMPACT_BYTES_DEFAULT: u64 = 64 << 20;

/// ... keeping every PENDING and FAILED message and at most this many SENT ones (the newest).
pub const SENT_KEPT_MAX: usize = 10_000;

/// Messages one `ListNotifications` answer carries (newest first).
pub const LIST_MAX: usize = 1_000;

/// Longest SMTP reply or HTTP response head read, in bytes.
pub const REPLY_BYTES_MAX: usize = 64 << 10;

/// Wait after the change feed could not be read before trying again.
pub const FEED_RETRY_MILLIS: u64 = 1_000;
