//! Every bound the load generator applies, in one place. The command line is checked against
//! these (a value outside names its flag); the request loops use them so that no loop runs
//! unbounded in count or time.

/// HTTP/2 connections (or Redis / PostgreSQL connections) to the target. The server accepts
/// 1,024 connections by default; storefront fleets are tens of servers, not thousands.
pub const CONNECTIONS_MAX: usize = 1024;

/// Arrivals per second. Far above what 2 cores can send (≈ 40k unary RPCs/s); the cap only
/// stops a typo from building a schedule of billions of arrivals.
pub const RATE_PER_SECOND_MAX: u64 = 1_000_000;

/// Length of the arrival window. A load test is minutes, not days.
pub const DURATION_SECONDS_MAX: u64 = 3_600;

/// Arrivals (or virtual users) in one run: the users scenario's 500k users start and end a
/// session each, so 10M arrivals leaves room without letting the per-user state (one byte
/// each) grow without end.
pub const ARRIVALS_MAX: u64 = 10_000_000;

/// Virtual users of the `users` scenario. The server's default live-hold capacity is 1M
/// (API.md); the users scenario is meant to reach half of it.
pub const USERS_MAX: u64 = 2_000_000;

/// SKUs one run creates (the catalog scenario's 100k, with room).
pub const SKUS_MAX: usize = 1_000_000;

/// Requests in flight at once, across connections. The server takes 256 concurrent streams per
/// connection; beyond the cap the scheduler waits (and the wait counts as latency, measured from
/// the intended send time, so the cap never hides queueing).
pub const IN_FLIGHT_MAX: usize = 262_144;

/// Default in-flight cap per connection: the server's `max_concurrent_streams`.
pub const IN_FLIGHT_PER_CONNECTION_DEFAULT: usize = 256;

/// Think time of a virtual user between taking its hold and committing or releasing it.
pub const THINK_SECONDS_MAX: u64 = 3_600;

/// Extra life a user's hold gets past its think time, so that the hold is still live when the
/// (possibly late) commit arrives; a hold never expires under a healthy run.
pub const HOLD_GRACE_SECONDS: u32 = 600;

/// Payment timeout given to the checkout scenario's orders that are left unpaid on purpose:
/// short, so that the run can wait for the server to cancel them before the check.
pub const PAYMENT_TIMEOUT_SECONDS: u32 = 2;

/// After the last unpaid order's deadline: the server writes a timeout within 1 s of the
/// deadline (API.md); wait a little longer before reading back.
pub const PAYMENT_TIMEOUT_SLACK_SECONDS: u64 = 3;

/// Deadline of each request (client side; sent as `grpc-timeout`). An answer later than this
/// is an error with an unknown outcome, which the check then allows for.
pub const REQUEST_TIMEOUT_MILLIS_DEFAULT: u64 = 10_000;
pub const REQUEST_TIMEOUT_MILLIS_MAX: u64 = 60_000;

/// After the arrival window: how long in-flight requests may take to finish before the run
/// gives up on them (each is bounded by its own request timeout too).
pub const DRAIN_SECONDS: u64 = 120;

/// After the schedule's last intended send time: how long arrivals still waiting for an
/// in-flight slot may be sent. A target that keeps up never needs it; one that does not has
/// shown its capacity, and the rest of its backlog is reported unsent.
pub const WINDOW_GRACE_MILLIS: u64 = 1_000;

/// How often a user's commit checks whether its own hold (sent earlier) has been answered.
pub const HOLD_POLL_MILLIS: u64 = 1;

/// Units of stock per SKU at most (a `uint32` on the wire).
pub const STOCK_MAX: u32 = 1_000_000_000;

/// Units per checkout line at most (a shopper's basket, not a wholesaler's; below the bulk
/// discount's 10 units, so totals stay simple to reason about).
pub const ORDER_LINE_UNITS_MAX: u32 = 3;

/// Ops per `ExecuteBatch` (the server's own limit is 8,192).
pub const BATCH_OPS_MAX: usize = 8_192;

/// Ops per `ExecuteBatch` when creating the run's products and stock.
pub const SETUP_BATCH_OPS: usize = 2_000;

/// Levels per `ListStock` page when reading back (0 lets the server choose its default).
pub const READ_BACK_PAGE_SIZE: u32 = 0;

/// Pages read back at most: 1M SKUs at the server's smallest sensible page, with room. A
/// server that keeps returning a next page token cannot keep the check going forever.
pub const READ_BACK_PAGES_MAX: usize = 1_000_000;

/// Largest latency the histogram holds, in microseconds (an hour); larger values saturate.
pub const LATENCY_MICROS_MAX: u64 = 3_600_000_000;

/// Significant figures of the histogram (0.1 % resolution).
pub const LATENCY_SIGNIFICANT_FIGURES: u8 = 3;

/// Zipf exponent of the catalog scenario (s = 1: the classic web-shop skew).
pub const ZIPF_EXPONENT_DEFAULT: f64 = 1.0;
pub const ZIPF_EXPONENT_MAX: f64 = 4.0;

/// Customers the order scenarios spread their orders over.
pub const CUSTOMERS: usize = 64;

/// Lines per checkout order at most.
pub const ORDER_LINES_MAX: usize = 3;

/// How often the progress line is redrawn.
pub const PROGRESS_INTERVAL_MILLIS: u64 = 1_000;

/// Messages to and from the server (the catalog read-back pages and large batches).
pub const MESSAGE_BYTES_MAX: usize = 64 << 20;

/// A Redis reply line (status, error, integer or bulk length) at most, in bytes.
pub const REDIS_LINE_BYTES_MAX: usize = 64 << 10;

/// A Redis bulk reply at most (a GET of a stock figure is a few bytes).
pub const REDIS_BULK_BYTES_MAX: usize = 1 << 20;

/// Commands queued per Redis connection before a sender waits.
pub const REDIS_QUEUE_DEPTH: usize = 4_096;

/// Keys per MGET when reading Redis back.
pub const REDIS_READ_BACK_KEYS: usize = 1_000;

/// Rows per INSERT when creating the PostgreSQL peer's products.
pub const POSTGRES_SETUP_ROWS: usize = 5_000;
